/* The per-user state store: lookup, LRU eviction order, TTL expiry,
 * partitions, foreach, stats, a randomised run against a reference, and the
 * snapshot capture (copy before change) and re-ordering after a load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "state/store.h"
#include "under_valgrind.h"

static store_t *new_store(size_t blob, size_t limit, int64_t ttl) {
  store_opts_t o = {.blob_size = blob, .mem_limit_bytes = limit, .idle_ttl_ms = ttl};
  store_t *st = NULL;
  assert_int_equal(store_new(&o, &st), 0);
  assert_non_null(st);
  return st;
}

static void test_store_rejects_bad_options(void **unused) {
  store_t *st = (store_t *)1;
  store_opts_t o = {.blob_size = 0};
  assert_int_equal(store_new(&o, &st), IX_EINVAL);
  assert_null(st);
  o = (store_opts_t){.blob_size = 64, .mem_limit_bytes = 100};
  assert_int_equal(store_new(&o, &st), IX_EINVAL); /* too small for one user */
  store_destroy(NULL);
}

/* Filled to capacity, the store's bytes stay within the limit, whatever the
 * limit's remainder in slabs (it ran up to one slab, ~0.8%, over when the
 * last, partly used slab was not counted in full). */
static void test_store_full_stays_within_memory_limit(void **unused) {
  for (int k = 0; k < 6; k++) {
    size_t limit = ((size_t)24 << 20) + (size_t)k * 350 * 1024;
    store_t *st = new_store(680, limit, 0);
    uint64_t cap = store_capacity(st);
    int created;
    for (uint64_t u = 0; u < cap; u++) assert_non_null(store_get(st, 0, u + 1, 1, 1, &created));
    store_stats_t s;
    store_get_stats(st, &s);
    assert_int_equal(s.users, cap);
    assert_true(s.bytes <= limit);
    assert_true(s.bytes > limit - ((size_t)3 << 20)); /* and not far below: at most a slab */
    store_destroy(st);
  }
}

/* Virtual memory of the process in bytes (/proc/self/status VmSize). */
static uint64_t vm_size(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  uint64_t kb = 0;
  assert_non_null(f);
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %" SCNu64, &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

#if defined(__SANITIZE_ADDRESS__)
#define IX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IX_ASAN 1
#endif
#endif

/* Churn: many more distinct users than the capacity, as a stream of new
 * users does (batches of new and returning users, store_evict() after each
 * batch as the pipeline does). Neither the store's own accounting nor what
 * the process really mapped and allocated (VmSize: slabs, index, tables)
 * may pass the limit at any point, also within a batch; the blob pointers
 * of a batch stay valid until its store_evict(). Both ran up to one slab
 * over (new users of a batch mapped a slab that eviction then left mapped:
 * 1 MiB, 1.57 %, over 64 MiB in test_state_soak). */
static void test_store_churn_stays_within_memory_limit(void **unused) {
  static const size_t limits[] = {8u << 20, (8u << 20) + 700 * 1024, 64u << 20};
  static const size_t blobs[] = {200, 1000, 1032, 3000};
  enum { BATCH = 256 };
  for (size_t li = 0; li < sizeof limits / sizeof *limits; li++)
    for (size_t bi = 0; bi < sizeof blobs / sizeof *blobs; bi++) {
      size_t limit = limits[li], blob = blobs[bi];
      uint64_t vm0 = vm_size();
      store_t *st = new_store(blob, limit, 0);
      uint64_t cap = store_capacity(st), next = 1, created_n = 0;
      uint64_t max_bytes = 0, max_vm = 0;
      unsigned seed = 12345;
      unsigned char *ptrs[BATCH];
      uint64_t ids[BATCH];
      for (int64_t batch = 1; next <= 4 * cap + 1000; batch++) {
        for (int j = 0; j < BATCH; j++) {
          uint64_t u = next++;
          seed = seed * 1103515245u + 12345u;
          /* a quarter are users seen before (evicted by now or not) */
          if ((seed >> 16) % 4 == 0 && next > cap) u = next - 1 - (seed >> 8) % cap;
          int created = 0;
          unsigned char *b = store_get(st, (int32_t)(u % 8), u, batch, 1, &created);
          assert_non_null(b);
          created_n += (uint64_t)created;
          memcpy(b, &u, sizeof u);
          ptrs[j] = b;
          ids[j] = u;
          store_stats_t s;
          store_get_stats(st, &s);
          if (s.bytes > max_bytes) max_bytes = s.bytes;
          if (s.bytes > limit)
            fail_msg("limit %zu, blob %zu: %" PRIu64 " bytes after an insert", limit, blob,
                     s.bytes);
        }
        for (int j = 0; j < BATCH; j++) /* this batch's pointers still hold their users */
          assert_memory_equal(ptrs[j], &ids[j], sizeof ids[j]);
        store_evict(st);
        assert_true(store_users(st) <= cap);
        uint64_t vm = vm_size() - vm0;
        if (vm > max_vm) max_vm = vm;
      }
      store_stats_t s;
      store_get_stats(st, &s);
      printf("limit %.2f MiB, blob %zu: capacity %" PRIu64 ", %" PRIu64 " created; peak store "
             "bytes %.3f MiB (%+.2f %%), peak VmSize growth %.3f MiB (%+.2f %%)\n",
             (double)limit / 1048576.0, blob, cap, created_n, (double)max_bytes / 1048576.0,
             100.0 * ((double)max_bytes / (double)limit - 1), (double)max_vm / 1048576.0,
             100.0 * ((double)max_vm / (double)limit - 1));
      assert_int_equal(s.users, cap);
      assert_int_equal(s.evicted_lru, created_n - cap); /* every eviction was needed */
      assert_true(max_bytes <= limit);
      /* and it used the limit: short of it by less than a slab and the index */
      assert_true(max_bytes + store_slab_slots(st) * (blob + 56) + (1u << 20) > limit);
#ifdef IX_ASAN
      printf("VmSize not checked under AddressSanitizer (its shadow memory counts)\n");
#else
      if (under_valgrind()) /* it maps its own heap */
        printf("VmSize not checked under valgrind (its own allocator maps the memory)\n");
      else
        assert_true(max_vm <= limit);
#endif
      store_destroy(st);
    }
}

static void test_store_get_creates_zeroed_blob_and_finds_it(void **unused) {
  store_t *st = new_store(100, 0, 0);
  int created = -1;
  assert_null(store_get(st, 0, 42, 1, 0, &created));
  assert_int_equal(created, 0);
  unsigned char *b = store_get(st, 0, 42, 1, 1, &created);
  assert_non_null(b);
  assert_int_equal(created, 1);
  for (int i = 0; i < 100; i++) assert_int_equal(b[i], 0);
  assert_int_equal((uintptr_t)b % 16, 0);
  memset(b, 0xAB, 100);
  unsigned char *again = store_get(st, 0, 42, 2, 1, &created);
  assert_ptr_equal(again, b);
  assert_int_equal(created, 0);
  assert_int_equal(again[99], 0xAB);
  /* Same user id in another partition is another key. */
  unsigned char *other = store_get(st, 1, 42, 3, 1, &created);
  assert_int_equal(created, 1);
  assert_ptr_not_equal(other, b);
  assert_int_equal(other[0], 0);
  assert_int_equal(store_partition_users(st, 0), 1);
  assert_int_equal(store_partition_users(st, 1), 1);
  assert_int_equal(store_partition_users(st, 7), 0);
  assert_int_equal(store_users(st), 2);
  assert_int_equal(store_blob_size(st), 100);
  assert_true(store_capacity(st) == UINT64_MAX);
  store_destroy(st);
}

static void test_store_blob_pointers_stay_valid_while_growing(void **unused) {
  store_t *st = new_store(24, 0, 0);
  unsigned char *first = store_get(st, 3, 1, 0, 1, NULL);
  memcpy(first, "first-user-blob-content", 24);
  for (uint64_t u = 2; u < 50000; u++) assert_non_null(store_get(st, 3, u, 0, 1, NULL));
  /* Index resized and many slabs mapped: the first blob has not moved. */
  assert_ptr_equal(store_get(st, 3, 1, 0, 0, NULL), first);
  assert_memory_equal(first, "first-user-blob-content", 24);
  store_destroy(st);
}

static int in_list(const uint64_t *v, size_t n, uint64_t x) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == x) return 1;
  return 0;
}

static void test_store_evicts_least_recent_when_full(void **unused) {
  store_t *st = new_store(64, 48 * 1024, 0);
  uint64_t cap = store_capacity(st);
  assert_true(cap >= 20 && cap < 1000);
  size_t n = (size_t)cap + 8;
  /* Users over three partitions, seen at times 100, 101, ... */
  for (uint64_t u = 0; u < n; u++) assert_non_null(store_get(st, (int32_t)(u % 3), u, 100 + (int64_t)u, 1, NULL));
  /* Touch the five oldest again: now most recent. */
  for (uint64_t u = 0; u < 5; u++) assert_non_null(store_get(st, (int32_t)(u % 3), u, 10000 + (int64_t)u, 0, NULL));
  assert_int_equal(store_evict(st), 8);
  assert_int_equal(store_users(st), cap);
  /* Evicted: users 5..12, the least recently seen. */
  uint64_t gone[8] = {5, 6, 7, 8, 9, 10, 11, 12};
  for (uint64_t u = 0; u < n; u++) {
    void *b = store_get(st, (int32_t)(u % 3), u, 20000, 0, NULL);
    if (in_list(gone, 8, u)) assert_null(b);
    else assert_non_null(b);
  }
  store_stats_t s;
  store_get_stats(st, &s);
  assert_int_equal(s.evicted_lru, 8);
  assert_int_equal(s.evicted_ttl, 0);
  assert_int_equal(s.users, cap);
  assert_int_equal(store_evict(st), 0);
  store_destroy(st);
}

static void test_store_eviction_breaks_time_ties_by_touch_order(void **unused) {
  store_t *st = new_store(64, 48 * 1024, 0);
  uint64_t cap = store_capacity(st);
  /* All seen at the same millisecond, in two partitions. */
  for (uint64_t u = 0; u < cap + 3; u++) assert_non_null(store_get(st, (int32_t)(u & 1), u, 7, 1, NULL));
  assert_non_null(store_get(st, 0, 0, 7, 0, NULL)); /* user 0 touched last */
  assert_int_equal(store_evict(st), 3);
  assert_non_null(store_get(st, 0, 0, 7, 0, NULL));
  for (uint64_t u = 1; u <= 3; u++) assert_null(store_get(st, (int32_t)(u & 1), u, 7, 0, NULL));
  assert_non_null(store_get(st, 0, 4, 7, 0, NULL));
  store_destroy(st);
}

static void test_store_expires_idle_users_after_ttl(void **unused) {
  store_t *st = new_store(32, 0, 1000);
  store_get(st, 0, 1, 0, 1, NULL);
  store_get(st, 1, 2, 500, 1, NULL);
  store_get(st, 0, 3, 900, 1, NULL);
  store_get(st, 2, 4, 0, 1, NULL);
  assert_int_equal(store_expire(st, 1000), 0); /* idle exactly the TTL: kept */
  store_get(st, 2, 4, 1000, 0, NULL);          /* seen again: refreshed */
  assert_int_equal(store_expire(st, 1200), 1);
  assert_null(store_get(st, 0, 1, 1200, 0, NULL));
  assert_int_equal(store_expire(st, 1600), 1);
  assert_null(store_get(st, 1, 2, 1600, 0, NULL));
  assert_int_equal(store_users(st), 2);
  assert_int_equal(store_expire(st, 2001), 2); /* users 3 (900) and 4 (1000) */
  store_stats_t s;
  store_get_stats(st, &s);
  assert_int_equal(s.evicted_ttl, 4);
  assert_int_equal(s.users, 0);
  store_destroy(st);

  st = new_store(32, 0, 0); /* TTL 0: never expires */
  store_get(st, 0, 1, 0, 1, NULL);
  assert_int_equal(store_expire(st, INT64_MAX / 2), 0);
  store_destroy(st);
}

static void test_store_drop_partition_leaves_other_partitions_intact(void **unused) {
  store_t *st = new_store(16, 0, 0);
  for (int32_t p = 0; p < 3; p++)
    for (uint64_t u = 0; u < 3000; u++) {
      uint64_t *b = store_get(st, p, u, 1, 1, NULL);
      b[0] = u * 10 + (uint64_t)p;
      b[1] = ~u;
    }
  assert_int_equal(store_drop_partition(st, 1), 3000);
  assert_int_equal(store_drop_partition(st, 1), 0);
  assert_int_equal(store_drop_partition(st, 99), 0);
  assert_int_equal(store_partition_users(st, 1), 0);
  assert_int_equal(store_users(st), 6000);
  for (int32_t p = 0; p < 3; p++)
    for (uint64_t u = 0; u < 3000; u++) {
      uint64_t *b = store_get(st, p, u, 2, 0, NULL);
      if (p == 1) {
        assert_null(b);
        continue;
      }
      assert_non_null(b);
      assert_true(b[0] == u * 10 + (uint64_t)p);
      assert_true(b[1] == ~u);
    }
  /* The partition can be filled again (as after a re-assignment). */
  int created = 0;
  assert_non_null(store_get(st, 1, 5, 3, 1, &created));
  assert_int_equal(created, 1);
  store_destroy(st);
}

typedef struct {
  uint64_t ids[16];
  int64_t seen[16];
  size_t n;
  size_t stop_after;
} visit_t;

static int visit(void *ctx, uint64_t user_id, int64_t last_seen_ms, const void *blob) {
  visit_t *v = ctx;
  assert_true(*(const uint64_t *)blob == user_id * 3);
  v->ids[v->n] = user_id;
  v->seen[v->n] = last_seen_ms;
  v->n++;
  return v->n == v->stop_after ? 77 : 0;
}

static void test_store_foreach_visits_one_partition_oldest_first(void **unused) {
  store_t *st = new_store(8, 0, 0);
  uint64_t order[] = {5, 3, 9, 1};
  for (size_t i = 0; i < 4; i++) *(uint64_t *)store_get(st, 2, order[i], 10 + (int64_t)i, 1, NULL) = order[i] * 3;
  *(uint64_t *)store_get(st, 4, 100, 1, 1, NULL) = 300;
  store_get(st, 2, 3, 50, 0, NULL); /* 3 becomes newest */
  visit_t v = {.stop_after = 100};
  assert_int_equal(store_foreach(st, 2, visit, &v), 0);
  assert_int_equal(v.n, 4);
  uint64_t want[] = {5, 9, 1, 3};
  int64_t want_seen[] = {10, 12, 13, 50};
  for (int i = 0; i < 4; i++) {
    assert_true(v.ids[i] == want[i]);
    assert_true(v.seen[i] == want_seen[i]);
  }
  visit_t early = {.stop_after = 2};
  assert_int_equal(store_foreach(st, 2, visit, &early), 77);
  assert_int_equal(early.n, 2);
  visit_t none = {.stop_after = 100};
  assert_int_equal(store_foreach(st, 8, visit, &none), 0);
  assert_int_equal(none.n, 0);
  store_destroy(st);
}

static void test_store_put_inserts_or_overwrites_verbatim(void **unused) {
  store_t *st = new_store(12, 0, 500);
  unsigned char a[12] = "hello world", b[12] = "HELLO WORLD";
  assert_int_equal(store_put(st, 0, 7, 1000, a), 0);
  int created = 1;
  unsigned char *p = store_get(st, 0, 7, 1001, 0, &created);
  assert_memory_equal(p, a, 12);
  assert_int_equal(store_put(st, 0, 7, 2000, b), 0);
  assert_memory_equal(store_get(st, 0, 7, 2000, 0, NULL), b, 12);
  assert_int_equal(store_users(st), 1);
  assert_int_equal(store_put(st, 0, 8, 100, a), 0); /* old last-seen kept */
  assert_int_equal(store_expire(st, 700), 1);
  assert_null(store_get(st, 0, 8, 700, 0, NULL));
  store_destroy(st);
}

static void test_store_stats_count_slabs_and_index_and_release_memory(void **unused) {
  store_t *st = new_store(1000, 0, 0);
  store_stats_t s0, s1, s2;
  store_get_stats(st, &s0);
  assert_int_equal(s0.users, 0);
  assert_true(s0.bytes > 0 && s0.bytes < 64 * 1024);
  uint64_t sps = store_slab_slots(st);
  assert_true(sps >= 1024);
  for (uint64_t u = 0; u < 10 * sps; u++) assert_non_null(store_get(st, (int32_t)(u % 4), u, 0, 1, NULL));
  store_get_stats(st, &s1);
  assert_int_equal(s1.users, 10 * sps);
  /* Honest: at least blob + metadata per user and the index, not wildly more. */
  assert_true(s1.bytes >= s1.users * (1008 + 40) + s1.users * 8 * 4 / 3);
  assert_true(s1.bytes <= s1.users * (1008 + 40 + 32) + 64 * 1024);
  for (int32_t p = 0; p < 4; p++) store_drop_partition(st, p);
  store_get_stats(st, &s2);
  assert_int_equal(s2.users, 0);
  /* Empty slabs are unmapped, except about one kept for reuse. */
  assert_true(s2.bytes < s1.bytes / 4);
  for (uint64_t u = 0; u < 3 * sps; u++) assert_non_null(store_get(st, 0, u, 0, 1, NULL));
  assert_int_equal(store_users(st), 3 * sps);
  store_destroy(st);
}

/* ---- randomised run against a reference model --------------------------- */

#define REF_USERS 200000u
#define REF_PARTS 8
typedef struct {
  uint8_t present;
  uint64_t value;
  int64_t seen;
  uint64_t seq;
} ref_t;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static ref_t *g_ref;
static int cmp_lru(const void *a, const void *b) {
  const ref_t *x = &g_ref[*(const uint32_t *)a], *y = &g_ref[*(const uint32_t *)b];
  if (x->seen != y->seen) return x->seen < y->seen ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void check_all(store_t *st, ref_t *ref, int64_t now) {
  size_t n = 0;
  for (uint32_t u = 0; u < REF_USERS; u++) {
    uint64_t *b = store_get(st, (int32_t)(u % REF_PARTS), u, now, 0, NULL);
    if (!ref[u].present) {
      assert_null(b);
      continue;
    }
    n++;
    assert_non_null(b);
    assert_true(b[0] == u && b[1] == ref[u].value);
    ref[u].seen = now; /* the check itself touched it */
  }
  assert_int_equal(store_users(st), n);
}

static void test_store_random_access_matches_reference(void **unused) {
  store_t *st = new_store(24, 8u << 20, 0);
  uint64_t cap = store_capacity(st);
  assert_true(cap > 50000 && cap < REF_USERS);
  ref_t *ref = calloc(REF_USERS, sizeof *ref);
  uint32_t *order = malloc(REF_USERS * sizeof *order);
  assert_non_null(ref);
  assert_non_null(order);
  uint64_t seq = 0;
  int64_t now = 0;
  size_t users = 0;
  for (int round = 0; round < 6; round++) {
    for (int op = 0; op < 60000; op++) {
      uint32_t u = (uint32_t)(rnd() % REF_USERS);
      int32_t p = (int32_t)(u % REF_PARTS);
      now += (int64_t)(rnd() % 3); /* ties on purpose */
      uint64_t r = rnd() % 10;
      if (r < 6) { /* get, create */
        int created = 0;
        uint64_t *b = store_get(st, p, u, now, 1, &created);
        assert_non_null(b);
        assert_int_equal(created, !ref[u].present);
        if (created) {
          assert_true(b[0] == 0 && b[1] == 0 && b[2] == 0);
          b[0] = u;
          ref[u].present = 1;
          users++;
        } else {
          assert_true(b[0] == u && b[1] == ref[u].value);
        }
        b[1] = ref[u].value = rnd();
        ref[u].seen = now;
        ref[u].seq = ++seq;
      } else if (r < 8) { /* lookup only */
        uint64_t *b = store_get(st, p, u, now, 0, NULL);
        if (!ref[u].present) {
          assert_null(b);
        } else {
          assert_non_null(b);
          assert_true(b[1] == ref[u].value);
          ref[u].seen = now;
          ref[u].seq = ++seq;
        }
      } else { /* put */
        uint64_t blob[3] = {u, rnd(), 0};
        int64_t seen = now; /* monotonic, as the daemon's clock: exact LRU */
        assert_int_equal(store_put(st, p, u, seen, blob), 0);
        if (!ref[u].present) users++;
        ref[u] = (ref_t){1, blob[1], seen, ++seq};
      }
    }
    if (round == 3) { /* drop one partition */
      size_t dropped = store_drop_partition(st, 5);
      size_t want = 0;
      for (uint32_t u = 5; u < REF_USERS; u += REF_PARTS)
        if (ref[u].present) {
          ref[u].present = 0;
          want++;
        }
      assert_int_equal(dropped, want);
      users -= want;
    }
    /* Evict to the limit; the reference drops its oldest (seen, seq). */
    size_t m = 0;
    for (uint32_t u = 0; u < REF_USERS; u++)
      if (ref[u].present) order[m++] = u;
    assert_int_equal(m, users);
    g_ref = ref;
    qsort(order, m, sizeof *order, cmp_lru);
    size_t excess = m > cap ? m - (size_t)cap : 0;
    for (size_t i = 0; i < excess; i++) ref[order[i]].present = 0;
    assert_int_equal(store_evict(st), excess);
    users -= excess;
    check_all(st, ref, ++now);
    /* check_all touched every present user in id order: mirror that order. */
    for (uint32_t u = 0; u < REF_USERS; u++) ref[u].seq = ref[u].present ? ++seq : 0;
  }
  store_stats_t s;
  store_get_stats(st, &s);
  assert_int_equal(s.users, users);
  assert_true(s.evicted_lru > 0);
  free(order);
  free(ref);
  store_destroy(st);
}

/* ---- snapshot capture ---------------------------------------------------- */

#define CAP_USERS 3000u

typedef struct {
  unsigned count[2 * CAP_USERS + 64]; /* hand-overs per user id */
  int64_t seen[2 * CAP_USERS + 64];
  unsigned char first[2 * CAP_USERS + 64]; /* blob byte 0 when handed over */
  size_t index_of[2 * CAP_USERS + 64];
  uint64_t total;
} capture_log_t;

static void on_cap(void *ctx, size_t index, uint64_t user_id, int64_t seen, const void *blob) {
  capture_log_t *c = ctx;
  assert_true(user_id < 2 * CAP_USERS + 64);
  c->count[user_id]++;
  c->seen[user_id] = seen;
  c->first[user_id] = ((const unsigned char *)blob)[0];
  c->index_of[user_id] = index;
  c->total++;
}

/* Every user of the captured partitions is handed over exactly once, with
 * its last-seen time and blob as of the begin call, whether the scan reaches
 * it first or a change (get, put, eviction, expiry) does; users created
 * later, and users of other partitions, are not. */
static void test_store_capture_hands_each_user_over_once_as_of_begin(void **unused) {
  store_t *st = new_store(64, 0, 100000);
  /* users 0..2999 in partition 5, 3000..5999 in partition 6, 6000.. in 7 */
  for (uint64_t u = 0; u < 2 * CAP_USERS + 10; u++) {
    int32_t p = u < CAP_USERS ? 5 : u < 2 * CAP_USERS ? 6 : 7;
    unsigned char *b = store_get(st, p, u, 1000 + (int64_t)u, 1, NULL);
    b[0] = (unsigned char)(u * 7);
  }
  static capture_log_t log; /* large: not on the stack */
  memset(&log, 0, sizeof log);
  int32_t parts[2] = {6, 5};
  uint64_t users[2];
  assert_int_equal(store_capture_begin(st, parts, 2, on_cap, &log, users), 0);
  assert_int_equal(store_capture_begin(st, parts, 2, on_cap, &log, users), IX_ESTATE);
  assert_int_equal(users[0], CAP_USERS);
  assert_int_equal(users[1], CAP_USERS);
  assert_int_equal(store_capture_left(st), 2 * CAP_USERS);
  int done = store_capture_step(st, 100);
  assert_false(done);
  /* changes before the scan gets there */
  for (uint64_t u = 0; u < 2 * CAP_USERS; u += 3) {
    unsigned char *b = store_get(st, u < CAP_USERS ? 5 : 6, u, 900000, 0, NULL);
    b[0] = 0xEE;
  }
  unsigned char blob[64];
  memset(blob, 0xDD, sizeof blob);
  assert_int_equal(store_put(st, 5, 1, 5, blob), 0);
  assert_int_equal(store_load(st, 6, CAP_USERS + 1, 5, blob), 0);
  size_t expired = store_expire(st, 1000 + 100000 + 50); /* idle users 0..49 of partition 5 */
  assert_true(expired >= 30); /* 1049 - 1000 minus the re-touched multiples of 3 */
  for (uint64_t u = 0; u < 20; u++) /* created after the begin */
    assert_non_null(store_get(st, 5, 2 * CAP_USERS + 30 + u, 900001, 1, NULL));
  while (!done) done = store_capture_step(st, 100);
  assert_int_equal(store_capture_left(st), 0);
  assert_true(store_capture_before_change(st) > CAP_USERS / 2);
  assert_int_equal(log.total, 2 * CAP_USERS);
  for (uint64_t u = 0; u < 2 * CAP_USERS; u++) {
    assert_int_equal(log.count[u], 1);
    assert_true(log.seen[u] == 1000 + (int64_t)u);
    assert_int_equal(log.first[u], (unsigned char)(u * 7));
    assert_int_equal(log.index_of[u], u < CAP_USERS ? 1 : 0);
  }
  for (uint64_t u = 2 * CAP_USERS; u < 2 * CAP_USERS + 50; u++) assert_int_equal(log.count[u], 0);
  store_capture_end(st);
  assert_false(store_capture_active(st));
  /* No capture: changes hand nothing over. */
  store_get(st, 6, CAP_USERS + 5, 900002, 0, NULL);
  assert_int_equal(log.total, 2 * CAP_USERS);

  /* A cancelled (dropped) partition stops being handed over; the other
   * partition completes. */
  memset(&log, 0, sizeof log);
  assert_int_equal(store_capture_begin(st, parts, 2, on_cap, &log, users), 0);
  store_drop_partition(st, 6);
  while (!store_capture_step(st, 1000)) {
  }
  assert_int_equal(log.total, users[1]);
  assert_int_equal(store_capture_left(st), 0);
  store_capture_end(st);
  int32_t twice[2] = {5, 5};
  assert_int_equal(store_capture_begin(st, twice, 2, on_cap, &log, NULL), IX_EINVAL);
  assert_false(store_capture_active(st));
  store_destroy(st);
}

typedef struct {
  int64_t prev;
  size_t n, out_of_order;
} order_check_t;

static int order_visit(void *ctx, uint64_t id, int64_t seen, const void *b) {
  order_check_t *c = ctx;
  if (seen < c->prev) c->out_of_order++;
  c->prev = seen;
  c->n++;
  return 0;
}

/* store_load() inserts in any order; store_order_partition() restores
 * last-seen order, which eviction then follows. */
static void test_store_order_partition_sorts_loaded_users(void **unused) {
  store_t *st = new_store(32, 0, 100);
  unsigned char blob[32] = {0};
  uint64_t x = 99;
  int64_t oldest = INT64_MAX;
  for (uint64_t u = 0; u < 5000; u++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int64_t seen = 1000 + (int64_t)(x >> 50);
    if (seen < oldest) oldest = seen;
    assert_int_equal(store_load(st, 3, u, seen, blob), 0);
  }
  order_check_t c = {.prev = INT64_MIN};
  store_foreach(st, 3, order_visit, &c);
  assert_true(c.out_of_order > 1000); /* loaded in random order */
  assert_int_equal(store_order_partition(st, 3), 0);
  c = (order_check_t){.prev = INT64_MIN};
  store_foreach(st, 3, order_visit, &c);
  assert_int_equal(c.n, 5000);
  assert_int_equal(c.out_of_order, 0);
  /* expiry pops from the tail: exactly the users idle past the TTL */
  size_t due = 0;
  x = 99;
  for (uint64_t u = 0; u < 5000; u++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    if (1000 + (int64_t)(x >> 50) < oldest + 10) due++;
  }
  assert_int_equal(store_expire(st, oldest + 10 + 100), due);
  assert_int_equal(store_order_partition(st, 3), 0); /* in order: a no-op */
  store_destroy(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_rejects_bad_options),
      cmocka_unit_test(test_store_full_stays_within_memory_limit),
      cmocka_unit_test(test_store_churn_stays_within_memory_limit),
      cmocka_unit_test(test_store_get_creates_zeroed_blob_and_finds_it),
      cmocka_unit_test(test_store_blob_pointers_stay_valid_while_growing),
      cmocka_unit_test(test_store_evicts_least_recent_when_full),
      cmocka_unit_test(test_store_eviction_breaks_time_ties_by_touch_order),
      cmocka_unit_test(test_store_expires_idle_users_after_ttl),
      cmocka_unit_test(test_store_drop_partition_leaves_other_partitions_intact),
      cmocka_unit_test(test_store_foreach_visits_one_partition_oldest_first),
      cmocka_unit_test(test_store_put_inserts_or_overwrites_verbatim),
      cmocka_unit_test(test_store_stats_count_slabs_and_index_and_release_memory),
      cmocka_unit_test(test_store_random_access_matches_reference),
      cmocka_unit_test(test_store_capture_hands_each_user_over_once_as_of_begin),
      cmocka_unit_test(test_store_order_partition_sorts_loaded_users),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
