/* Store throughput: insert, random get, get-or-create with eviction at a
 * memory limit, TTL sweep, and the loop stall of a checkpoint fork (plus the
 * parent's copy-on-write cost right after it).
 * Usage: bench_store [users=1000000] [blob_bytes=1032] [small_pages=0] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "state/checkpoint.h"
#include "state/store.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int g_small_pages;
static store_t *make(size_t blob, size_t limit, int64_t ttl) {
  store_opts_t o = {.blob_size = blob, .mem_limit_bytes = limit, .idle_ttl_ms = ttl,
                    .small_pages = g_small_pages};
  store_t *st;
  if (store_new(&o, &st) != 0) {
    fprintf(stderr, "store_new failed\n");
    exit(1);
  }
  return st;
}

#define PARTS 8

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  size_t blob = argc > 2 ? strtoull(argv[2], NULL, 10) : 1032;
  g_small_pages = argc > 3 ? atoi(argv[3]) : 0;
  log_set_level(LOG_LVL_WARN);
  printf("bench_store: users=%zu blob=%zu partitions=%d pages=%s\n", n, blob, PARTS,
         g_small_pages ? "4KiB" : "huge (THP)");

  store_t *st = make(blob, 0, 0);
  double t0 = now_s();
  for (size_t u = 0; u < n; u++) {
    unsigned char *b = store_get(st, (int32_t)(u % PARTS), u * 2654435761u, (int64_t)u, 1, NULL);
    if (!b) return 1;
    b[0] = (unsigned char)u;
  }
  double t1 = now_s();
  store_stats_t s;
  store_get_stats(st, &s);
  printf("insert:        %8.1f ns/user  (%.2f M/s)\n", (t1 - t0) * 1e9 / (double)n, (double)n / (t1 - t0) / 1e6);
  printf("memory:        %8.1f bytes/user (%.1f MiB for %llu users; blob %zu)\n",
         (double)s.bytes / (double)s.users, (double)s.bytes / 1048576.0,
         (unsigned long long)s.users, blob);

  size_t gets = n * 2;
  uint64_t sum = 0;
  t0 = now_s();
  for (size_t i = 0; i < gets; i++) {
    size_t u = rnd() % n;
    unsigned char *b = store_get(st, (int32_t)(u % PARTS), u * 2654435761u, (int64_t)(n + i), 0, NULL);
    sum += b[0];
    b[1]++;
  }
  t1 = now_s();
  printf("get (random):  %8.1f ns/get   (%.2f M/s, touches blob)\n", (t1 - t0) * 1e9 / (double)gets,
         (double)gets / (t1 - t0) / 1e6);
  t0 = now_s();
  for (size_t i = 0; i < gets; i++) {
    size_t u = rnd() % n;
    if (store_get(st, (int32_t)(u % PARTS), u * 2654435761u + 1, 0, 0, NULL)) sum++;
  }
  t1 = now_s();
  printf("get (miss):    %8.1f ns/get\n", (t1 - t0) * 1e9 / (double)gets);

  /* Fork stall and copy-on-write: a 1-partition snapshot into /dev/shm is
   * enough to measure the fork; then time the parent touching users while
   * the child still holds the old pages. */
  char dir[] = "/dev/shm/ix_bench_store_XXXXXX";
  if (mkdtemp(dir)) {
    ckpt_opts_t co = {.dir = dir};
    ckpt_t *ck;
    char err[256];
    if (ckpt_new(&co, &ck, err, sizeof err) == 0) {
      int32_t parts[PARTS];
      int64_t offs[PARTS];
      for (int p = 0; p < PARTS; p++) parts[p] = p, offs[p] = 0;
      size_t touch = n / 10 > 0 ? n / 10 : 1;
      double base0 = now_s();
      for (size_t i = 0; i < touch; i++) {
        size_t u = rnd() % n;
        ((unsigned char *)store_get(st, (int32_t)(u % PARTS), u * 2654435761u, 0, 0, NULL))[2]++;
      }
      double base = now_s() - base0;
      if (ckpt_snapshot_start(ck, st, parts, offs, PARTS, 1, err, sizeof err) == 0) {
        double c0 = now_s();
        for (size_t i = 0; i < touch; i++) {
          size_t u = rnd() % n;
          ((unsigned char *)store_get(st, (int32_t)(u % PARTS), u * 2654435761u, 0, 0, NULL))[2]++;
        }
        double cow = now_s() - c0;
        const ckpt_result_t *res;
        size_t nr;
        ckpt_snapshot_wait(ck, &res, &nr);
        ckpt_stats_t cs;
        ckpt_get_stats(ck, &cs);
        printf("snapshot start: %7.3f ms for %.1f MiB of store (snapshot of %d partitions took %llu ms, %.1f MiB, longest step %.2f ms)\n",
               (double)cs.last_start_us / 1000.0, (double)s.bytes / 1048576.0, PARTS,
               (unsigned long long)cs.last_snapshot_ms, (double)cs.last_bytes / 1048576.0,
               (double)cs.max_step_us / 1000.0);
        printf("copy-before-change: %8.1f ns/touch during the snapshot vs %.1f ns/touch before (%zu random touches, %llu users copied first)\n",
               cow * 1e9 / (double)touch, base * 1e9 / (double)touch, touch,
               (unsigned long long)cs.last_before_change);
        for (size_t i = 0; i < nr; i++)
          if (res[i].err) printf("  snapshot error: %s\n", res[i].reason);
      } else {
        printf("snapshot: %s\n", err);
      }
      ckpt_destroy(ck);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
  }

  t0 = now_s();
  for (int p = 0; p < PARTS; p++) store_drop_partition(st, p);
  t1 = now_s();
  printf("drop:          %8.1f ns/user\n", (t1 - t0) * 1e9 / (double)n);
  store_destroy(st);

  /* Memory limit at half the users; a stream over 2n distinct users with
   * store_evict() after every batch of 256, as the daemon would. */
  size_t limit = (size_t)((double)s.bytes * 0.5);
  st = make(blob, limit, 0);
  size_t evicted = 0, batch = 256;
  t0 = now_s();
  for (size_t i = 0; i < 2 * n; i++) {
    size_t u = (i % 4 == 0) ? rnd() % (2 * n) : i; /* some returning users */
    unsigned char *b = store_get(st, (int32_t)(u % PARTS), u, (int64_t)i, 1, NULL);
    if (!b) return 1;
    b[0]++;
    if (i % batch == batch - 1) store_evict(st);
  }
  t1 = now_s();
  store_get_stats(st, &s);
  evicted = (size_t)s.evicted_lru; /* store_get() evicts at capacity too */
  printf("evicting:      %8.1f ns/event (get-or-create + evict per %zu), %zu evicted, %llu held (capacity %llu), %.1f MiB used of %.1f MiB limit\n",
         (t1 - t0) * 1e9 / (double)(2 * n), batch, evicted, (unsigned long long)s.users,
         (unsigned long long)store_capacity(st), (double)s.bytes / 1048576.0,
         (double)limit / 1048576.0);
  store_destroy(st);

  /* TTL sweep: users seen over 1000 s; expire the oldest half. */
  st = make(blob, 0, 500000);
  for (size_t u = 0; u < n; u++) store_get(st, (int32_t)(u % PARTS), u, (int64_t)(u * 1000000 / n), 1, NULL);
  t0 = now_s();
  size_t expired = store_expire(st, 1000000);
  t1 = now_s();
  double sweep_empty0 = now_s();
  store_expire(st, 1000000);
  double sweep_empty = now_s() - sweep_empty0;
  printf("ttl expire:    %8.1f ns/user expired (%zu expired); a sweep with nothing to expire takes %.1f us\n",
         (t1 - t0) * 1e9 / (double)(expired ? expired : 1), expired, sweep_empty * 1e6);
  store_destroy(st);
  if (sum == 42) printf("\n");
  return 0;
}
