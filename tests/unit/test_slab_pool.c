/* The slab pool (state/slab_pool.h) and the stores on it: a revoked
 * partition's slabs and a destroyed scratch store's go to the next restore
 * instead of fresh memory (counted by the store's slabs_fresh/slabs_reused),
 * the states are the same as in a store without a pool, the bound
 * (in use + held <= keep_bytes) holds, the pre-touch fills the pool in the
 * background up to its target and stops at destroy, slabs of several chunks
 * are assembled, and stores on two threads share one pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "state/slab_pool.h"
#include "state/store.h"

#define MIB ((uint64_t)1 << 20)
#define CH SLAB_POOL_CHUNK

static slab_pool_t *new_pool(uint64_t keep, uint64_t pretouch) {
  slab_pool_opts_t o = {.keep_bytes = keep, .pretouch_bytes = pretouch};
  slab_pool_t *pool = NULL;
  assert_int_equal(slab_pool_new(&o, &pool), 0);
  assert_non_null(pool);
  return pool;
}

static store_t *new_store(size_t blob, slab_pool_t *pool) {
  store_opts_t o = {.blob_size = blob, .pool = pool};
  store_t *st = NULL;
  assert_int_equal(store_new(&o, &st), 0);
  return st;
}

static void fill(uint8_t *b, size_t len, uint64_t u) {
  uint64_t x = u * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (uint8_t)x;
  }
}

/* users [from, from + n) into partition p, as a restore does */
static void load(store_t *st, int32_t p, uint64_t from, uint64_t n) {
  size_t blob = store_blob_size(st);
  uint8_t *b = malloc(blob);
  for (uint64_t u = from; u < from + n; u++) {
    fill(b, blob, u);
    assert_int_equal(store_load(st, p, u, (int64_t)u, b), 0);
  }
  free(b);
}

typedef struct {
  const store_t *other;
  int32_t p;
  size_t n;
} same_t;

static int same_user(void *ctx, uint64_t user, int64_t seen, const void *blob) {
  same_t *s = ctx;
  int64_t seen2 = -1;
  const void *b2 = store_peek_seen((store_t *)s->other, s->p, user, &seen2);
  assert_non_null(b2);
  assert_int_equal(seen, seen2);
  assert_memory_equal(blob, b2, store_blob_size(s->other));
  s->n++;
  return 0;
}

/* partition p holds the same users, times and states in a and b */
static void assert_same_partition(const store_t *a, const store_t *b, int32_t p) {
  assert_int_equal(store_partition_users(a, p), store_partition_users(b, p));
  same_t s = {.other = b, .p = p};
  assert_int_equal(store_foreach(a, p, same_user, &s), 0);
  assert_int_equal(s.n, store_partition_users(a, p));
}

static store_stats_t stats_of(const store_t *st) {
  store_stats_t s;
  store_get_stats(st, &s);
  return s;
}

static slab_pool_stats_t pool_stats(slab_pool_t *pool) {
  slab_pool_stats_t s;
  slab_pool_get_stats(pool, &s);
  return s;
}

/* A revoked partition's slabs are the next partition's: no fresh slab for a
 * restore of the same size, and the states equal those of a store that
 * mapped fresh memory. */
static void test_slab_pool_store_reuses_a_revoked_partitions_slabs(void **unused) {
  slab_pool_t *pool = new_pool(64 * MIB, 0);
  store_t *st = new_store(1064, pool), *ref = new_store(1064, NULL);
  uint64_t n = 5 * store_slab_slots(st); /* five slabs' worth */
  load(st, 0, 0, n);
  store_stats_t s0 = stats_of(st);
  assert_true(s0.slabs_fresh >= 5);
  assert_int_equal(s0.slabs_reused, 0);
  assert_int_equal(store_drop_partition(st, 0), n);
  slab_pool_stats_t ps = pool_stats(pool);
  /* every emptied slab but the store's two spare ones went to the pool */
  assert_true(ps.held_bytes >= (s0.slabs_fresh - 2) * CH);
  assert_int_equal(ps.in_use_bytes + ps.held_bytes, s0.slabs_fresh * CH);
  load(st, 1, 1000000, n);
  load(ref, 1, 1000000, n);
  store_stats_t s1 = stats_of(st);
  assert_int_equal(s1.slabs_fresh, s0.slabs_fresh); /* nothing fresh */
  assert_true(s1.slabs_reused >= s0.slabs_fresh - 2);
  assert_int_equal(s1.bytes, stats_of(ref).bytes); /* the same accounting */
  assert_same_partition(st, ref, 1);
  assert_same_partition(ref, st, 1);
  assert_int_equal(store_partition_users(st, 0), 0);
  /* an old user's bytes are not visible: a new user starts zeroed */
  int created = 0;
  const uint8_t *z = store_get(st, 2, 7, 1, 1, &created);
  assert_true(created);
  for (size_t i = 0; i < 1064; i++) assert_int_equal(z[i], 0);
  uint64_t mapped = stats_of(st).slabs_fresh; /* one more for that user */
  store_destroy(st);
  store_destroy(ref);
  ps = pool_stats(pool);
  assert_int_equal(ps.in_use_bytes, 0);
  assert_int_equal(ps.held_bytes, mapped * CH); /* all of it, within 64 MiB */
  slab_pool_destroy(pool);
}

/* A scratch store (clog_assign with a local checkpoint) destroyed after
 * its copy: the next one takes its memory. */
static void test_slab_pool_destroyed_store_memory_goes_to_the_next(void **unused) {
  slab_pool_t *pool = new_pool(64 * MIB, 0);
  store_t *a = new_store(1064, pool);
  load(a, 3, 0, 3 * store_slab_slots(a));
  uint64_t mapped = stats_of(a).slabs_fresh;
  store_destroy(a);
  assert_int_equal(pool_stats(pool).held_bytes, mapped * CH);
  store_t *b = new_store(1064, pool);
  load(b, 3, 0, 3 * store_slab_slots(b));
  assert_int_equal(stats_of(b).slabs_fresh, 0);
  assert_int_equal(stats_of(b).slabs_reused, mapped);
  slab_pool_stats_t ps = pool_stats(pool);
  assert_int_equal(ps.reused_chunks, mapped);
  assert_int_equal(ps.fresh_chunks, mapped);
  assert_int_equal(ps.held_bytes, 0);
  store_destroy(b);
  slab_pool_destroy(pool);
}

/* The bound: slabs in use plus held stay within keep_bytes; what is over
 * goes back to the kernel. keep 0: nothing held. */
static void test_slab_pool_keeps_within_its_bound(void **unused) {
  slab_pool_t *pool = new_pool(6 * CH, 0);
  store_t *a = new_store(1064, pool), *b = new_store(1064, pool);
  load(a, 0, 0, 4 * store_slab_slots(a));
  load(b, 0, 0, 4 * store_slab_slots(b));
  uint64_t na = stats_of(a).slabs_fresh, nb = stats_of(b).slabs_fresh;
  assert_int_equal(pool_stats(pool).in_use_bytes, (na + nb) * CH);
  store_destroy(a); /* b still holds nb slabs: room for 6 - nb */
  slab_pool_stats_t ps = pool_stats(pool);
  assert_int_equal(ps.in_use_bytes, nb * CH);
  assert_int_equal(ps.held_bytes, nb < 6 ? (6 - nb) * CH : 0);
  assert_int_equal(ps.released_chunks, na - (nb < 6 ? 6 - nb : 0));
  store_destroy(b);
  ps = pool_stats(pool);
  assert_int_equal(ps.in_use_bytes, 0);
  assert_int_equal(ps.held_bytes, 6 * CH);
  assert_int_equal(ps.released_chunks, na + nb - 6);
  slab_pool_destroy(pool);

  pool = new_pool(0, 0);
  a = new_store(1064, pool);
  load(a, 0, 0, 2 * store_slab_slots(a));
  store_destroy(a);
  assert_int_equal(pool_stats(pool).held_bytes, 0);
  slab_pool_destroy(pool);

  slab_pool_opts_t bad = {.keep_bytes = 4 * CH, .pretouch_bytes = 5 * CH};
  pool = (slab_pool_t *)1;
  assert_int_equal(slab_pool_new(&bad, &pool), IX_EINVAL);
  assert_null(pool);
  slab_pool_destroy(NULL);
}

/* The pre-touch fills the pool up to its target in the background, once;
 * a store then takes populated slabs and maps fresh ones only beyond. */
static void test_slab_pool_pretouch_fills_the_pool_once(void **unused) {
  slab_pool_t *pool = new_pool(32 * MIB, 12 * MIB);
  assert_int_equal(slab_pool_wait_pretouch(pool, -1), 1);
  slab_pool_stats_t ps = pool_stats(pool);
  assert_int_equal(ps.pretouch_running, 0);
  assert_int_equal(ps.held_bytes, 12 * MIB);
  assert_int_equal(ps.pretouched_bytes, 12 * MIB);
  assert_true(ps.pretouch_ns > 0);
  store_t *st = new_store(1064, pool);
  load(st, 0, 0, 6 * store_slab_slots(st)); /* six 2 MiB slabs, all held */
  store_stats_t s = stats_of(st);
  assert_int_equal(s.slabs_reused, 6);
  assert_int_equal(s.slabs_fresh, 0);
  load(st, 0, 1000000, 1);
  s = stats_of(st);
  assert_int_equal(s.slabs_fresh, 1); /* beyond: fresh, no refill */
  ps = pool_stats(pool);
  assert_int_equal(ps.pretouched_bytes, 12 * MIB);
  assert_int_equal(ps.in_use_bytes, 7 * CH);
  store_destroy(st);
  slab_pool_destroy(pool);
}

/* Slabs in use count towards the target: a store that took memory before
 * the pre-touch leaves it less to do. */
static void test_slab_pool_pretouch_counts_what_is_in_use(void **unused) {
  slab_pool_t *pool = new_pool(16 * MIB, 16 * MIB);
  store_t *st = new_store(1064, pool);
  load(st, 0, 0, 3 * store_slab_slots(st));
  assert_int_equal(slab_pool_wait_pretouch(pool, -1), 1);
  slab_pool_stats_t ps = pool_stats(pool);
  /* the pre-touch ended at its target; a store that mapped fresh slabs
   * while a chunk was being populated left that chunk to be released */
  assert_true(ps.in_use_bytes + ps.held_bytes >= 16 * MIB - CH);
  assert_true(ps.in_use_bytes + ps.held_bytes <= 16 * MIB);
  /* nothing given back yet: what was pre-touched is held or was taken */
  assert_int_equal(ps.pretouched_bytes,
                   ps.held_bytes + (ps.reused_chunks + ps.released_chunks) * CH);
  store_destroy(st);
  ps = pool_stats(pool);
  assert_int_equal(ps.held_bytes, 16 * MIB);
  slab_pool_destroy(pool);
}

/* Destroy stops a long pre-touch after the chunk it populates. */
static void test_slab_pool_destroy_stops_the_pretouch(void **unused) {
  slab_pool_t *pool = new_pool(1024 * MIB, 1024 * MIB);
  assert_int_equal(slab_pool_wait_pretouch(pool, 0), 0); /* not done at once */
  slab_pool_destroy(pool);                                /* joins; nothing leaks */
}

/* A slab of several chunks (large states) is assembled from held chunks
 * (moved next to each other) and given back chunk by chunk. */
static void test_slab_pool_assembles_slabs_of_several_chunks(void **unused) {
  slab_pool_t *pool = new_pool(64 * MIB, 24 * MIB);
  assert_int_equal(slab_pool_wait_pretouch(pool, -1), 1);
  store_t *st = new_store(4000, pool), *ref = new_store(4000, NULL);
  load(st, 5, 0, 2 * store_slab_slots(st));
  load(ref, 5, 0, 2 * store_slab_slots(ref));
  store_stats_t s = stats_of(st);
  assert_int_equal(s.slabs_fresh, 0);
  assert_int_equal(s.slabs_reused, 2);
  assert_int_equal(s.bytes, stats_of(ref).bytes);
  assert_same_partition(st, ref, 5);
  slab_pool_stats_t ps = pool_stats(pool);
  size_t k = (size_t)(ps.in_use_bytes / 2 / CH); /* chunks per slab */
  assert_true(k > 1);
  assert_int_equal(ps.reused_chunks, 2 * k);
  store_destroy(st);
  store_destroy(ref);
  assert_int_equal(pool_stats(pool).held_bytes, 24 * MIB);
  /* a slab needing more chunks than are held is mapped fresh */
  void *mem;
  int reused = -1;
  assert_int_equal(slab_pool_take(pool, 13 * CH, 0, &mem, &reused), 0);
  assert_int_equal(reused, 0);
  memset(mem, 0x5a, 13 * CH);
  slab_pool_give(pool, mem, 13 * CH);
  assert_int_equal(slab_pool_take(pool, 3 * CH, 0, &mem, &reused), IX_OK);
  assert_int_equal(reused, 1);
  slab_pool_give(pool, mem, 3 * CH);
  assert_int_equal(slab_pool_take(pool, CH + 1, 0, &mem, &reused), IX_EINVAL);
  slab_pool_destroy(pool);
  /* no pool: fresh memory, 4 KiB pages when asked */
  assert_int_equal(slab_pool_take(NULL, CH, 1, &mem, &reused), 0);
  assert_int_equal(reused, 0);
  ((volatile char *)mem)[CH - 1] = 1;
  slab_pool_give(NULL, mem, CH);
}

typedef struct {
  slab_pool_t *pool;
  int32_t base;
  uint64_t fresh, reused;
} churn_t;

static void *churn(void *arg) {
  churn_t *c = arg;
  store_t *st = new_store(1064, c->pool);
  for (int r = 0; r < 6; r++) {
    load(st, c->base + r, (uint64_t)r << 32, 2 * store_slab_slots(st) + 17);
    store_drop_partition(st, c->base + r);
  }
  store_stats_t s = stats_of(st);
  c->fresh = s.slabs_fresh;
  c->reused = s.slabs_reused;
  store_destroy(st);
  return NULL;
}

/* Stores on two threads share a pool while its pre-touch runs: the
 * accounting adds up and the bound holds. */
static void test_slab_pool_is_shared_by_stores_on_two_threads(void **unused) {
  slab_pool_t *pool = new_pool(16 * MIB, 16 * MIB);
  churn_t c[2] = {{pool, 0, 0, 0}, {pool, 100, 0, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, churn, &c[i]), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  assert_int_equal(slab_pool_wait_pretouch(pool, -1), 1);
  slab_pool_stats_t ps = pool_stats(pool);
  assert_int_equal(ps.in_use_bytes, 0);
  assert_true(ps.held_bytes <= 16 * MIB);
  assert_int_equal(ps.fresh_chunks, c[0].fresh + c[1].fresh);
  assert_int_equal(ps.reused_chunks, c[0].reused + c[1].reused);
  assert_int_equal(ps.held_bytes / CH + ps.released_chunks,
                   ps.fresh_chunks + ps.pretouched_bytes / CH);
  printf("two threads: %" PRIu64 " fresh, %" PRIu64 " reused, %" PRIu64 " pre-touched chunks\n",
         ps.fresh_chunks, ps.reused_chunks, ps.pretouched_bytes / CH);
  slab_pool_destroy(pool);
}

/* ---- failures (the test-only failpoints IX_TEST_SLAB_FAIL, read by
 * slab_pool_new(): state/slab_pool.c) --------------------------------------- */

static slab_pool_t *new_failing_pool(const char *fail, uint64_t keep, uint64_t pretouch) {
  assert_int_equal(setenv("IX_TEST_SLAB_FAIL", fail, 1), 0);
  slab_pool_t *pool = new_pool(keep, pretouch);
  unsetenv("IX_TEST_SLAB_FAIL");
  return pool;
}

/* The pre-touch cannot map memory: it ends at once and says so
 * (pretouch_failed), nothing is held or pending, and a store on the pool
 * maps its slabs fresh (fresh_chunks, not reused) with the same states as
 * a store without a pool. */
static void test_slab_pool_pretouch_failure_leaves_stores_mapping_fresh(void **unused) {
  slab_pool_t *pool = new_failing_pool("pretouch", 64 * MIB, 32 * MIB);
  assert_int_equal(slab_pool_wait_pretouch(pool, 10000), 1);
  slab_pool_stats_t ps = pool_stats(pool);
  assert_int_equal(ps.pretouch_failed, 1);
  assert_int_equal(ps.pretouch_running, 0);
  assert_int_equal(ps.pretouched_bytes, 0);
  assert_int_equal(ps.held_bytes, 0);
  assert_int_equal(ps.in_use_bytes, 0);
  store_t *st = new_store(1064, pool), *ref = new_store(1064, NULL);
  uint64_t n = 3 * store_slab_slots(st);
  load(st, 0, 0, n);
  load(ref, 0, 0, n);
  store_stats_t s = stats_of(st);
  assert_int_equal(s.slabs_reused, 0);
  assert_int_equal(s.slabs_fresh, 3);
  assert_int_equal(s.slab_failures, 0);
  ps = pool_stats(pool);
  assert_int_equal(ps.fresh_chunks, 3);
  assert_int_equal(ps.reused_chunks, 0);
  assert_int_equal(ps.failed_takes, 0);
  assert_int_equal(ps.in_use_bytes, 3 * CH);
  assert_same_partition(st, ref, 0);
  assert_same_partition(ref, st, 0);
  store_destroy(st);
  store_destroy(ref);
  slab_pool_destroy(pool);
  /* without the failpoint the same pool pre-touches: the test's check above
   * is of the failure, not of a pre-touch that never runs */
  pool = new_pool(64 * MIB, 32 * MIB);
  assert_int_equal(slab_pool_wait_pretouch(pool, -1), 1);
  assert_int_equal(pool_stats(pool).pretouch_failed, 0);
  assert_int_equal(pool_stats(pool).held_bytes, 32 * MIB);
  slab_pool_destroy(pool);
}

/* Held chunks that the kernel refuses to move into one slab (mremap): the
 * slab is mapped fresh instead (zeroed, writable, counted fresh), the
 * chunks already moved are released, the one not moved stays held, and the
 * accounting adds up. A store of multi-chunk slabs on such a pool keeps
 * the same states as one without a pool. */
static void test_slab_pool_assemble_failure_maps_the_slab_fresh(void **unused) {
  slab_pool_t *pool = new_failing_pool("assemble", 64 * MIB, 0);
  void *mem;
  int reused = -1;
  assert_int_equal(slab_pool_take(pool, 3 * CH, 0, &mem, &reused), 0);
  assert_int_equal(reused, 0);
  memset(mem, 0x5a, 3 * CH);
  slab_pool_give(pool, mem, 3 * CH);
  assert_int_equal(pool_stats(pool).held_bytes, 3 * CH);
  assert_int_equal(slab_pool_take(pool, 3 * CH, 0, &mem, &reused), 0);
  assert_int_equal(reused, 0); /* fresh, not the held chunks */
  for (size_t off = 0; off < 3 * CH; off += 4096) assert_int_equal(((uint8_t *)mem)[off], 0);
  memset(mem, 0x11, 3 * CH);
  slab_pool_stats_t ps = pool_stats(pool);
  assert_int_equal(ps.fresh_chunks, 6);
  assert_int_equal(ps.reused_chunks, 0);
  assert_int_equal(ps.released_chunks, 2); /* moved before the refusal: unmapped */
  assert_int_equal(ps.held_bytes, CH);     /* the one not moved */
  assert_int_equal(ps.in_use_bytes, 3 * CH);
  assert_int_equal(ps.failed_takes, 0);
  slab_pool_give(pool, mem, 3 * CH);
  /* one chunk still comes from what is held: no move needed */
  assert_int_equal(slab_pool_take(pool, CH, 0, &mem, &reused), 0);
  assert_int_equal(reused, 1);
  slab_pool_give(pool, mem, CH);
  /* a store of 3-chunk slabs (4000-byte states) on the failing pool */
  store_t *st = new_store(4000, pool), *ref = new_store(4000, NULL);
  for (int r = 0; r < 3; r++) {
    load(st, r, (uint64_t)r << 32, store_slab_slots(st) + 5);
    load(ref, r, (uint64_t)r << 32, store_slab_slots(ref) + 5);
    if (r < 2) {
      store_drop_partition(st, r);
      store_drop_partition(ref, r);
    }
  }
  assert_same_partition(st, ref, 2);
  assert_same_partition(ref, st, 2);
  assert_int_equal(stats_of(st).slabs_reused, 0);
  store_destroy(st);
  store_destroy(ref);
  ps = pool_stats(pool);
  assert_int_equal(ps.in_use_bytes, 0);
  assert_true(ps.held_bytes <= 64 * MIB);
  slab_pool_destroy(pool);
}

/* A fresh slab that cannot be populated (out of memory): IX_ENOMEM, no
 * memory handed out, counted in failed_takes, the in-use accounting back
 * where it was; memory the pool holds is still handed out. */
static void test_slab_pool_fresh_failure_reports_out_of_memory(void **unused) {
  slab_pool_t *pool = new_failing_pool("fresh:2", 64 * MIB, 0);
  void *a, *b, *c = (void *)1;
  int reused = -1;
  assert_int_equal(slab_pool_take(pool, CH, 0, &a, &reused), 0);
  assert_int_equal(slab_pool_take(pool, 2 * CH, 0, &b, &reused), 0);
  assert_int_equal(slab_pool_take(pool, CH, 0, &c, &reused), IX_ENOMEM);
  assert_null(c);
  assert_int_equal(reused, 0);
  slab_pool_stats_t ps = pool_stats(pool);
  assert_int_equal(ps.failed_takes, 1);
  assert_int_equal(ps.in_use_bytes, 3 * CH);
  assert_int_equal(ps.fresh_chunks, 3);
  assert_int_equal(slab_pool_take(pool, 4 * CH, 0, &c, &reused), IX_ENOMEM);
  assert_int_equal(pool_stats(pool).failed_takes, 2);
  slab_pool_give(pool, b, 2 * CH); /* held: two chunks */
  assert_int_equal(slab_pool_take(pool, 2 * CH, 0, &c, &reused), 0);
  assert_int_equal(reused, 1);
  memset(c, 7, 2 * CH);
  slab_pool_give(pool, c, 2 * CH);
  slab_pool_give(pool, a, CH);
  ps = pool_stats(pool);
  assert_int_equal(ps.in_use_bytes, 0);
  assert_int_equal(ps.held_bytes, 3 * CH);
  slab_pool_destroy(pool);
}

/* A store whose next slab cannot be had: store_get() evicts the least
 * recently seen user not touched since the last store_evict() and takes its
 * slot (counted: slab_failures, evicted_lru; the evict hook called), the
 * other users' states intact; when every user was touched since the last
 * store_evict() there is nobody to evict and store_get() returns NULL. */
typedef struct {
  int n;
  int32_t p;
  uint64_t user;
} evicted_t;

static void on_evict(void *ctx, int32_t p, uint64_t user) {
  evicted_t *e = ctx;
  e->n++;
  e->p = p;
  e->user = user;
}

static void test_store_evicts_to_make_room_when_no_slab_can_be_mapped(void **unused) {
  slab_pool_t *pool = new_failing_pool("fresh:1", 64 * MIB, 0);
  store_t *st = new_store(1064, pool);
  evicted_t ev = {0};
  store_set_evict_hook(st, on_evict, &ev);
  size_t sps = store_slab_slots(st);
  for (uint64_t u = 0; u < sps; u++) {
    uint8_t *b = store_get(st, 4, u, (int64_t)(100 + u), 1, NULL);
    assert_non_null(b);
    fill(b, 1064, u);
  }
  store_evict(st); /* the batch ends: nobody pinned */
  int created = 0;
  uint8_t *b = store_get(st, 4, 1u << 20, 5000, 1, &created);
  assert_non_null(b);
  assert_true(created);
  for (size_t i = 0; i < 1064; i++) assert_int_equal(b[i], 0);
  fill(b, 1064, 1u << 20);
  store_stats_t s = stats_of(st);
  assert_int_equal(s.slab_failures, 1);
  assert_int_equal(s.evicted_lru, 1);
  assert_int_equal(s.users, sps);
  assert_int_equal(s.slabs_fresh, 1);
  assert_int_equal(ev.n, 1);
  assert_int_equal(ev.p, 4);
  assert_int_equal(ev.user, 0); /* the least recently seen */
  assert_null(store_peek(st, 4, 0));
  uint8_t want[1064];
  for (uint64_t u = 1; u < sps; u++) {
    const uint8_t *g = store_peek(st, 4, u);
    assert_non_null(g);
    fill(want, 1064, u);
    assert_memory_equal(g, want, 1064);
  }
  assert_int_equal(pool_stats(pool).failed_takes, 1);
  /* every user pinned (touched in this batch, after the insert above):
   * nothing may be evicted, the insert fails */
  for (uint64_t u = 1; u < sps; u++) assert_non_null(store_get(st, 4, u, 6000, 0, NULL));
  assert_null(store_get(st, 4, 2u << 20, 6000, 1, &created));
  s = stats_of(st);
  assert_int_equal(s.slab_failures, 2);
  assert_int_equal(s.evicted_lru, 1);
  assert_int_equal(s.users, sps);
  /* the next batch may evict again */
  store_evict(st);
  assert_non_null(store_get(st, 4, 2u << 20, 7000, 1, &created));
  assert_int_equal(stats_of(st).evicted_lru, 2);
  assert_null(store_peek(st, 4, 1u << 20)); /* seen at 5000: the oldest now */
  /* no new attempt to map for a slab's worth of inserts after a failure */
  store_evict(st);
  for (uint64_t u = 0; u < 100; u++)
    assert_non_null(store_get(st, 4, (3u << 20) + u, 8000 + (int64_t)u, 1, &created));
  s = stats_of(st);
  assert_int_equal(s.slab_failures, 2);
  assert_int_equal(s.evicted_lru, 102);
  assert_int_equal(s.users, sps);
  assert_int_equal(pool_stats(pool).failed_takes, 2);
  store_destroy(st);
  slab_pool_destroy(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slab_pool_store_reuses_a_revoked_partitions_slabs),
      cmocka_unit_test(test_slab_pool_destroyed_store_memory_goes_to_the_next),
      cmocka_unit_test(test_slab_pool_keeps_within_its_bound),
      cmocka_unit_test(test_slab_pool_pretouch_fills_the_pool_once),
      cmocka_unit_test(test_slab_pool_pretouch_counts_what_is_in_use),
      cmocka_unit_test(test_slab_pool_destroy_stops_the_pretouch),
      cmocka_unit_test(test_slab_pool_assembles_slabs_of_several_chunks),
      cmocka_unit_test(test_slab_pool_is_shared_by_stores_on_two_threads),
      cmocka_unit_test(test_slab_pool_pretouch_failure_leaves_stores_mapping_fresh),
      cmocka_unit_test(test_slab_pool_assemble_failure_maps_the_slab_fresh),
      cmocka_unit_test(test_slab_pool_fresh_failure_reports_out_of_memory),
      cmocka_unit_test(test_store_evicts_to_make_room_when_no_slab_can_be_mapped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
