/* Populated slab memory shared by the stores: a stack of held 2 MiB chunks
 * under one mutex, the bound (in use + held + being pre-touched <= keep),
 * and the pre-touch thread. Fresh memory is mapped here too, so every slab's
 * memory is mapped, populated and unmapped in one place. */
#include "state/slab_pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define CHUNK SLAB_POOL_CHUNK
/* The pre-touch maps this many chunks at a time (fewer mappings) and hands
 * each one over as soon as it is populated. */
#define PRETOUCH_BATCH 16u

struct slab_pool {
  pthread_mutex_t mu;
  pthread_cond_t done_cv;
  uint64_t keep;
  uint64_t pretouch;
  void **held; /* held chunks, a stack (the last given back goes first) */
  size_t n_held, cap_held;
  uint64_t in_use, pending; /* bytes handed out; bytes the pre-touch is populating */
  uint64_t reused, fresh, released, pretouched;
  uint64_t failed_takes;
  uint64_t t_start_ns, t_end_ns;
  int stop, running, thread_on, pretouch_failed;
  /* test-only failpoints (below) */
  int fail_pretouch, fail_assemble, fail_fresh; /* set at creation only */
  int64_t fresh_ok_left; /* with fail_fresh: fresh slabs left before every one fails */
  pthread_t thr;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Test-only failpoints (docs/STATE.md, "Slab pool"), read once by
 * slab_pool_new() from the environment variable IX_TEST_SLAB_FAIL, a list
 * of: "pretouch" (the pre-touch thread's mapping fails), "assemble" (moving
 * held chunks into one slab fails, as an mremap the kernel refuses),
 * "fresh:N" (after N fresh slabs, populating every further one fails, as
 * out of memory). Unset in production; they cost one branch per slab. */
static void failpoints_read(slab_pool_t *pool) {
  const char *e = getenv("IX_TEST_SLAB_FAIL");
  if (!e) return;
  pool->fail_pretouch = strstr(e, "pretouch") != NULL;
  pool->fail_assemble = strstr(e, "assemble") != NULL;
  const char *f = strstr(e, "fresh:");
  if (f) {
    pool->fail_fresh = 1;
    pool->fresh_ok_left = strtoll(f + 6, NULL, 10);
  }
}

/* 1 when the "fresh:N" failpoint fails this fresh slab (under the lock). */
static int fresh_fails(slab_pool_t *pool) {
  if (pool->fresh_ok_left <= 0) return 1;
  pool->fresh_ok_left--;
  return 0;
}

/* Populate [mem, mem + len) for writing in one call (a fraction of taking
 * one fault per page: 4.5 vs 27 us per 4 KiB measured on the build VM);
 * before Linux 5.14 (no MADV_POPULATE_WRITE: EINVAL), a write to each page.
 * Returns 0, or IX_ENOMEM when the kernel cannot back the pages (a cgroup's
 * memory limit, no swap): writing to them then would call the OOM killer,
 * so the caller unmaps them and reports instead. */
static int populate(unsigned char *mem, size_t len) {
  for (int tries = 0; tries < 3; tries++) {
    if (madvise(mem, len, MADV_POPULATE_WRITE) == 0) return 0;
    if (errno != EINTR && errno != EAGAIN) break;
  }
  if (errno != EINVAL) return IX_ENOMEM;
  long pg = sysconf(_SC_PAGESIZE);
  for (size_t off = 0; off < len; off += (size_t)(pg > 0 ? pg : 4096))
    ((volatile unsigned char *)mem)[off] = 0;
  return 0;
}

/* len bytes (a multiple of CHUNK) of fresh anonymous memory, 2 MiB-aligned
 * so the kernel can back it with huge pages; NULL when out of memory. Not
 * populated. */
static unsigned char *map_aligned(size_t len, int small_pages) {
  size_t span = len + CHUNK;
  unsigned char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  unsigned char *mem = (unsigned char *)(((uintptr_t)raw + CHUNK - 1) / CHUNK * CHUNK);
  if (mem > raw) munmap(raw, (size_t)(mem - raw));
  size_t tail = (size_t)(raw + span - (mem + len));
  if (tail) munmap(mem + len, tail);
  /* huge pages: one TLB entry per 2 MiB of random per-user accesses, and a
   * restore reuses the checkpoint file's 2 MiB page-cache folios */
  (void)madvise(mem, len, small_pages ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
  return mem;
}

/* ---- taking and giving back ------------------------------------------------ */

/* Room to hold n chunks (under the lock); 0 or IX_ENOMEM. */
static int held_room(slab_pool_t *pool, size_t n) {
  if (pool->n_held + n <= pool->cap_held) return 0;
  size_t cap = pool->cap_held ? pool->cap_held : 64;
  while (cap < pool->n_held + n) cap *= 2;
  void **h = realloc(pool->held, cap * sizeof *h);
  if (!h) return IX_ENOMEM;
  pool->held = h;
  pool->cap_held = cap;
  return 0;
}

/* Hold chunk c (under the lock); unmapped when there is no room to note it. */
static void hold(slab_pool_t *pool, void *c) {
  if (held_room(pool, 1) == 0) {
    pool->held[pool->n_held++] = c;
    return;
  }
  munmap(c, CHUNK);
  pool->released++;
}

/* Moves chunks c[0..k) next to each other into one k-chunk slab; NULL when
 * the kernel refused (the chunks not moved are left in c, moved ones and
 * the reservation are unmapped; *moved says how many were). */
static unsigned char *assemble(void **c, size_t k, size_t *moved, int fail_at_last) {
  *moved = 0;
  size_t len = k * CHUNK;
  unsigned char *dst = map_aligned(len, 0); /* the address range, replaced below */
  if (!dst) return NULL;
  for (size_t i = 0; i < k; i++) {
    void *r = fail_at_last && i == k - 1
                  ? MAP_FAILED
                  : mremap(c[i], CHUNK, CHUNK, MREMAP_MAYMOVE | MREMAP_FIXED, dst + i * CHUNK);
    if (r == MAP_FAILED) {
      munmap(dst, len);
      return NULL;
    }
    *moved = i + 1;
  }
  return dst;
}

int slab_pool_take(slab_pool_t *pool, size_t len, int small_pages, void **mem, int *reused) {
  *mem = NULL;
  *reused = 0;
  if (len == 0 || len % CHUNK) return IX_EINVAL;
  size_t k = len / CHUNK;
  void *one[1], **got = NULL;
  if (pool) {
    pthread_mutex_lock(&pool->mu);
    pool->in_use += len;
    if (pool->n_held >= k) {
      got = k == 1 ? one : malloc(k * sizeof *got);
      if (got) {
        pool->n_held -= k;
        memcpy(got, pool->held + pool->n_held, k * sizeof *got);
      }
    }
    pthread_mutex_unlock(&pool->mu);
  }
  if (got && k == 1) {
    *mem = got[0];
    *reused = 1;
  } else if (got) {
    size_t moved;
    *mem = assemble(got, k, &moved, pool->fail_assemble);
    if (!*mem) { /* the unmoved ones go back; the moved ones were unmapped */
      pthread_mutex_lock(&pool->mu);
      for (size_t i = moved; i < k; i++) hold(pool, got[i]);
      pool->released += moved;
      pthread_mutex_unlock(&pool->mu);
    } else {
      *reused = 1;
    }
    free(got);
  }
  if (*reused) {
    pthread_mutex_lock(&pool->mu);
    pool->reused += k;
    pthread_mutex_unlock(&pool->mu);
    return 0;
  }
  unsigned char *m = map_aligned(len, pool ? 0 : small_pages);
  int fails = 0;
  if (m && pool && pool->fail_fresh) {
    pthread_mutex_lock(&pool->mu);
    fails = fresh_fails(pool);
    pthread_mutex_unlock(&pool->mu);
  }
  if (m && (fails || populate(m, len))) {
    munmap(m, len);
    m = NULL;
  }
  if (!m) {
    if (pool) {
      pthread_mutex_lock(&pool->mu);
      pool->in_use -= len;
      pool->failed_takes++;
      pthread_mutex_unlock(&pool->mu);
    }
    return IX_ENOMEM;
  }
  *mem = m;
  if (pool) {
    pthread_mutex_lock(&pool->mu);
    pool->fresh += k;
    pthread_mutex_unlock(&pool->mu);
  }
  return 0;
}

void slab_pool_give(slab_pool_t *pool, void *mem, size_t len) {
  if (!mem || !len) return;
  if (!pool) {
    munmap(mem, len);
    return;
  }
  size_t k = len / CHUNK, keep = 0;
  pthread_mutex_lock(&pool->mu);
  pool->in_use -= len;
  uint64_t total = pool->in_use + pool->pending + (uint64_t)pool->n_held * CHUNK;
  while (keep < k && total + CHUNK <= pool->keep) {
    keep++;
    total += CHUNK;
  }
  if (keep && held_room(pool, keep)) keep = 0;
  /* the first `keep` chunks are held; one slab's chunks are separate from
   * here on (a later take of several moves them together again) */
  for (size_t i = 0; i < keep; i++) pool->held[pool->n_held++] = (unsigned char *)mem + i * CHUNK;
  pool->released += k - keep;
  pthread_mutex_unlock(&pool->mu);
  if (keep < k) munmap((unsigned char *)mem + keep * CHUNK, (k - keep) * CHUNK);
}

/* ---- pre-touch -------------------------------------------------------------- */

static void *pretouch_main(void *arg) {
  slab_pool_t *pool = arg;
  for (;;) {
    pthread_mutex_lock(&pool->mu);
    uint64_t total = pool->in_use + pool->pending + (uint64_t)pool->n_held * CHUNK;
    size_t n = 0;
    while (n < PRETOUCH_BATCH && total + CHUNK <= pool->pretouch) {
      n++;
      total += CHUNK;
    }
    int stop = pool->stop || n == 0;
    if (!stop) pool->pending += n * CHUNK;
    pthread_mutex_unlock(&pool->mu);
    if (stop) break;
    unsigned char *m = pool->fail_pretouch ? NULL : map_aligned(n * CHUNK, 0);
    size_t i = 0;
    int failed = !m;
    for (; m && i < n; i++) {
      if (populate(m + i * CHUNK, CHUNK)) {
        failed = 1;
        break;
      }
      pthread_mutex_lock(&pool->mu);
      pool->pending -= CHUNK;
      /* stores may have mapped fresh slabs meanwhile: held only within the
       * bound still */
      int fits = pool->in_use + pool->pending + (uint64_t)pool->n_held * CHUNK + CHUNK <= pool->keep;
      pool->pretouched += CHUNK;
      if (fits) hold(pool, m + i * CHUNK);
      else pool->released++;
      stop = pool->stop || !fits;
      pthread_mutex_unlock(&pool->mu);
      if (!fits) munmap(m + i * CHUNK, CHUNK);
      if (stop) {
        i++;
        break;
      }
    }
    /* out of memory: the pre-touch ends; stores map what they need fresh */
    pthread_mutex_lock(&pool->mu);
    pool->pending -= (n - i) * CHUNK;
    if (failed) pool->pretouch_failed = 1;
    stop = pool->stop || failed;
    pthread_mutex_unlock(&pool->mu);
    if (m && i < n) munmap(m + i * CHUNK, (n - i) * CHUNK);
    if (stop) break;
  }
  pthread_mutex_lock(&pool->mu);
  pool->t_end_ns = now_ns();
  pool->running = 0;
  pthread_cond_broadcast(&pool->done_cv);
  pthread_mutex_unlock(&pool->mu);
  return NULL;
}

/* ---- the pool ----------------------------------------------------------------- */

int slab_pool_new(const slab_pool_opts_t *opts, slab_pool_t **out) {
  *out = NULL;
  if (!opts || opts->pretouch_bytes > opts->keep_bytes) return IX_EINVAL;
  slab_pool_t *pool = calloc(1, sizeof *pool);
  if (!pool) return IX_ENOMEM;
  pool->keep = opts->keep_bytes;
  pool->pretouch = opts->pretouch_bytes;
  failpoints_read(pool);
  pthread_mutex_init(&pool->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&pool->done_cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pool->pretouch >= CHUNK) {
    pool->running = 1;
    pool->t_start_ns = now_ns();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop's thread */
    int rc = pthread_create(&pool->thr, NULL, pretouch_main, pool);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
      pool->running = 0;
      slab_pool_destroy(pool);
      return IX_ESYS;
    }
    pool->thread_on = 1;
    (void)pthread_setname_np(pool->thr, "ix-pretouch");
  }
  *out = pool;
  return 0;
}

void slab_pool_destroy(slab_pool_t *pool) {
  if (!pool) return;
  if (pool->thread_on) {
    pthread_mutex_lock(&pool->mu);
    pool->stop = 1;
    pthread_mutex_unlock(&pool->mu);
    pthread_join(pool->thr, NULL);
  }
  for (size_t i = 0; i < pool->n_held; i++) munmap(pool->held[i], CHUNK);
  free(pool->held);
  pthread_cond_destroy(&pool->done_cv);
  pthread_mutex_destroy(&pool->mu);
  free(pool);
}

int slab_pool_wait_pretouch(slab_pool_t *pool, int64_t timeout_ms) {
  if (!pool) return 1;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  if (timeout_ms > 0) {
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
  }
  pthread_mutex_lock(&pool->mu);
  while (pool->running && timeout_ms != 0) {
    if (timeout_ms < 0) pthread_cond_wait(&pool->done_cv, &pool->mu);
    else if (pthread_cond_timedwait(&pool->done_cv, &pool->mu, &until) == ETIMEDOUT) break;
  }
  int done = !pool->running;
  pthread_mutex_unlock(&pool->mu);
  return done;
}

void slab_pool_get_stats(slab_pool_t *pool, slab_pool_stats_t *s) {
  memset(s, 0, sizeof *s);
  if (!pool) return;
  pthread_mutex_lock(&pool->mu);
  s->held_bytes = (uint64_t)pool->n_held * CHUNK;
  s->in_use_bytes = pool->in_use;
  s->reused_chunks = pool->reused;
  s->fresh_chunks = pool->fresh;
  s->released_chunks = pool->released;
  s->pretouched_bytes = pool->pretouched;
  s->pretouch_running = pool->running;
  s->pretouch_failed = pool->pretouch_failed;
  s->failed_takes = pool->failed_takes;
  if (pool->t_start_ns) s->pretouch_ns = (pool->running ? now_ns() : pool->t_end_ns) - pool->t_start_ns;
  pthread_mutex_unlock(&pool->mu);
}
