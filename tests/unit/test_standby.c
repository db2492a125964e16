/* The standby rule (daemon/standby.h, standby_want): which partitions a
 * member follows, from its own assignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "daemon/standby.h"

/* the set as a bit mask */
static uint64_t want_mask(const int32_t *owned, size_t n, int32_t parts, uint32_t replicas,
                          size_t *count) {
  uint8_t want[64];
  *count = standby_want(owned, n, parts, replicas, want);
  uint64_t m = 0;
  size_t k = 0;
  for (int32_t p = 0; p < parts; p++)
    if (want[p]) {
      m |= 1ull << p;
      k++;
    }
  assert_int_equal(k, *count);
  for (size_t i = 0; i < n; i++) assert_false(m & (1ull << owned[i])); /* never its own */
  return m;
}

static void test_standby_follows_the_next_range_block(void **state) {
  (void)state;
  /* range assignment, 12 partitions, 3 members of 4: the next block plus one */
  int32_t a[] = {0, 1, 2, 3};
  size_t n;
  assert_int_equal(want_mask(a, 4, 12, 1, &n), 0x1f0); /* 4..8 */
  assert_int_equal(n, 5);
  int32_t c[] = {8, 9, 10, 11};
  assert_int_equal(want_mask(c, 4, 12, 1, &n), 0x01f); /* wraps: 0..4 */
}

static void test_standby_follows_the_next_round_robin_member(void **state) {
  (void)state;
  /* round-robin, 12 partitions, 3 members: member 0 owns 0,3,6,9 and
   * follows member 1's 1,4,7,10, plus 2 */
  int32_t a[] = {0, 3, 6, 9};
  size_t n;
  uint64_t m = want_mask(a, 4, 12, 1, &n);
  assert_int_equal(n, 5);
  assert_int_equal(m & 0x492, 0x492); /* 1,4,7,10 */
  /* two replicas: everything it does not own */
  assert_int_equal(want_mask(a, 4, 12, 2, &n), 0xfff & ~0x249ull);
}

static void test_standby_uneven_blocks_leave_no_partition_without_a_copy(void **state) {
  (void)state;
  /* 8 partitions over 3 members (3, 3, 2): every partition is followed by
   * some other member with one replica */
  int32_t a[] = {0, 1, 2}, b[] = {3, 4, 5}, c[] = {6, 7};
  size_t n;
  uint64_t m = want_mask(a, 3, 8, 1, &n) | want_mask(b, 3, 8, 1, &n) | want_mask(c, 2, 8, 1, &n);
  assert_int_equal(m, 0xff);
}

static void test_standby_none_without_owned_partitions_or_replicas(void **state) {
  (void)state;
  int32_t a[] = {0, 1};
  size_t n;
  assert_int_equal(want_mask(a, 0, 8, 1, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(want_mask(a, 2, 8, 0, &n), 0);
  /* owning everything: nothing to follow */
  int32_t all[] = {0, 1, 2, 3};
  assert_int_equal(want_mask(all, 4, 4, 3, &n), 0);
  /* fewer partitions left than asked for: all of them */
  assert_int_equal(want_mask(a, 2, 4, 5, &n), 0xc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_standby_follows_the_next_range_block),
      cmocka_unit_test(test_standby_follows_the_next_round_robin_member),
      cmocka_unit_test(test_standby_uneven_blocks_leave_no_partition_without_a_copy),
      cmocka_unit_test(test_standby_none_without_owned_partitions_or_replicas),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
