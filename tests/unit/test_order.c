/* core/order: the oldest-first window is a permutation that keeps every
 * partition's order, sorts by the partition's running maximum timestamp with
 * ties in input order, leaves an ordered window alone, and refuses a window
 * over its size. Checked against a straightforward reference on random
 * windows shaped like consumer output (runs of one partition). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/order.h"

static uint64_t rng(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* Reference: repeatedly take the partition whose next message has the
 * smallest running-max key, the earliest in input order on ties. O(n^2)
 * (partitions 0..63). */
static void reference(const rec_t *in, size_t n, rec_t *out) {
  int64_t *key = malloc(n * sizeof *key);
  for (size_t i = 0; i < n; i++) {
    key[i] = in[i].ts_ms;
    for (size_t j = 0; j < i; j++)
      if (in[j].partition == in[i].partition && in[j].ts_ms > key[i]) key[i] = in[j].ts_ms;
  }
  /* head[p]: the index of partition p's first message not taken yet (n: none);
   * only these are candidates */
  size_t head[64];
  for (int p = 0; p < 64; p++) head[p] = n;
  for (size_t i = n; i-- > 0;) head[in[i].partition] = i;
  for (size_t k = 0; k < n; k++) {
    size_t best = n;
    for (size_t i = 0; i < n; i++)
      if (head[in[i].partition] == i && (best == n || key[i] < key[best])) best = i;
    out[k] = in[best];
    size_t next = best + 1;
    while (next < n && in[next].partition != in[best].partition) next++;
    head[in[best].partition] = next;
  }
  free(key);
}

/* runs of one partition, like a fetch response; timestamps mostly rising
 * within a partition, sometimes going back (several producers) */
static size_t random_window(uint64_t *s, rec_t *w, size_t n, int nparts) {
  int64_t last[64] = {0};
  int64_t off[64] = {0};
  size_t i = 0;
  while (i < n) {
    int p = (int)(rng(s) % (uint64_t)nparts);
    size_t run = 1 + rng(s) % 40;
    for (size_t k = 0; k < run && i < n; k++, i++) {
      int64_t ts = last[p] + (int64_t)(rng(s) % 7) - (rng(s) % 10 == 0 ? 9 : 0);
      if (ts > last[p]) last[p] = ts;
      w[i] = (rec_t){.partition = p, .offset = off[p]++, .ts_ms = 1000 + ts};
    }
  }
  return n;
}

static void test_matches_reference(void **state) {
  (void)state;
  uint64_t s = 42;
  order_t *o = order_new(600);
  assert_non_null(o);
  rec_t w[600], ref[600];
  int moved_any = 0;
  for (int iter = 0; iter < 300; iter++) {
    size_t n = 1 + rng(&s) % 600;
    int nparts = 1 + (int)(rng(&s) % 12);
    random_window(&s, w, n, nparts);
    reference(w, n, ref);
    moved_any |= order_oldest_first(o, w, n);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(w[i].partition, ref[i].partition);
      assert_int_equal(w[i].offset, ref[i].offset);
    }
    /* each partition's offsets still rise */
    int64_t next[64];
    memset(next, 0, sizeof next);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(w[i].offset, next[w[i].partition]);
      next[w[i].partition]++;
    }
  }
  assert_true(moved_any);
  order_free(o);
}

static void test_oldest_first_across_partitions(void **state) {
  (void)state;
  /* partition 1's old event waits behind partition 0's young ones in the
   * queue; it goes first, and partition 0 keeps its order */
  rec_t w[5] = {{.partition = 0, .offset = 10, .ts_ms = 105},
                {.partition = 0, .offset = 11, .ts_ms = 106},
                {.partition = 0, .offset = 12, .ts_ms = 107},
                {.partition = 1, .offset = 3, .ts_ms = 101},
                {.partition = 1, .offset = 4, .ts_ms = 106}};
  order_t *o = order_new(8);
  assert_int_equal(order_oldest_first(o, w, 5), 1);
  int64_t want_p[5] = {1, 0, 0, 1, 0}, want_off[5] = {3, 10, 11, 4, 12};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(w[i].partition, want_p[i]);
    assert_int_equal(w[i].offset, want_off[i]);
  }
  /* a timestamp going back does not jump ahead of its own partition */
  rec_t v[3] = {{.partition = 0, .offset = 0, .ts_ms = 200},
                {.partition = 0, .offset = 1, .ts_ms = 50},
                {.partition = 1, .offset = 0, .ts_ms = 100}};
  assert_int_equal(order_oldest_first(o, v, 3), 1);
  assert_int_equal(v[0].partition, 1);
  assert_int_equal(v[1].offset, 0);
  assert_int_equal(v[2].offset, 1);
  order_free(o);
}

static void test_in_order_and_oversize_untouched(void **state) {
  (void)state;
  order_t *o = order_new(4);
  rec_t w[6];
  for (int i = 0; i < 6; i++) w[i] = (rec_t){.partition = i % 2, .offset = i, .ts_ms = 100 + i};
  rec_t copy[6];
  memcpy(copy, w, sizeof w);
  assert_int_equal(order_oldest_first(o, w, 4), 0); /* already oldest first */
  assert_memory_equal(w, copy, sizeof w);
  w[0].ts_ms = 900; /* out of order, but larger than the scratch: left alone */
  memcpy(copy, w, sizeof w);
  assert_int_equal(order_oldest_first(o, w, 6), 0);
  assert_memory_equal(w, copy, sizeof w);
  order_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_reference),
      cmocka_unit_test(test_oldest_first_across_partitions),
      cmocka_unit_test(test_in_order_and_oversize_untouched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
