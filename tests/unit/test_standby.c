/* The standby rules (daemon/standby.h): which partitions a member follows,
 * from its own assignment (standby_want, the fallback) and from the group's
 * membership (standby_place). The switch between them as descriptions
 * arrive: tests/unit/test_standby_fallback.c. */
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

/* ---- the membership rule (standby_place) */

#define M(id, inst, ...) \
  {.member_id = id, .instance_id = inst, .client_id = "interestd", \
   .parts = (const int32_t[]){__VA_ARGS__}, .n_parts = sizeof((int32_t[]){__VA_ARGS__}) / 4}
#define M0(id, inst) {.member_id = id, .instance_id = inst, .client_id = "interestd"}

/* what members[self] follows, as a bit mask; checks it never follows its own */
static uint64_t place_mask(const groupdesc_member_t *m, size_t n, size_t self, int32_t parts,
                           uint32_t replicas) {
  uint8_t want[64];
  size_t got = standby_place(m, n, self, parts, replicas, want);
  uint64_t mask = 0;
  size_t k = 0;
  for (int32_t p = 0; p < parts; p++)
    if (want[p]) {
      mask |= 1ull << p;
      k++;
    }
  assert_int_equal(k, got);
  for (size_t i = 0; i < m[self].n_parts; i++)
    if (m[self].parts[i] >= 0 && m[self].parts[i] < parts)
      assert_false(mask & (1ull << m[self].parts[i]));
  return mask;
}

/* followers[p]: how many members follow p; every member's mask in masks[] */
static void place_all(const groupdesc_member_t *m, size_t n, int32_t parts, uint32_t replicas,
                      int *followers, uint64_t *masks) {
  memset(followers, 0, (size_t)parts * sizeof *followers);
  for (size_t i = 0; i < n; i++) {
    masks[i] = place_mask(m, n, i, parts, replicas);
    for (int32_t p = 0; p < parts; p++) followers[p] += !!(masks[i] & (1ull << p));
  }
}

static void test_standby_place_gives_each_partition_the_next_member_in_id_order(void **state) {
  (void)state;
  /* given in another order than the ring a < b < c */
  groupdesc_member_t m[] = {M("c-3", "", 4, 5), M("a-1", "", 0, 1), M("b-2", "", 2, 3)};
  int f[6];
  uint64_t masks[3];
  place_all(m, 3, 6, 1, f, masks);
  assert_int_equal(masks[1], 0x30); /* a follows c's 4,5 */
  assert_int_equal(masks[2], 0x03); /* b follows a's 0,1 */
  assert_int_equal(masks[0], 0x0c); /* c follows b's 2,3 */
  for (int p = 0; p < 6; p++) assert_int_equal(f[p], 1);
}

static void test_standby_place_uneven_assignments_and_a_member_without_partitions(void **state) {
  (void)state;
  /* ring a, b, c, d: a owns 5, b one, c none, d two; partition 8 unclaimed */
  groupdesc_member_t m[] = {M("a", "", 0, 1, 2, 3, 4), M("b", "", 5), M0("c", ""),
                            M("d", "", 6, 7)};
  int f[9];
  uint64_t masks[4];
  place_all(m, 4, 9, 1, f, masks);
  assert_int_equal(masks[1], 0x1f);  /* b: a's five */
  assert_int_equal(masks[2], 0x20);  /* c (no partitions): b's one */
  assert_int_equal(masks[3], 0x000); /* d: c's none */
  assert_int_equal(masks[0], 0x1c0); /* a: d's 6,7 and the unclaimed 8 (8 mod 4 = rank 0) */
  for (int p = 0; p < 9; p++) assert_int_equal(f[p], 1);
  /* two replicas: each partition on the next two non-owners */
  place_all(m, 4, 9, 2, f, masks);
  for (int p = 0; p < 9; p++) assert_int_equal(f[p], 2);
  assert_int_equal(masks[2], 0x3f); /* c: a's and b's */
}

static void test_standby_place_replicas_beyond_the_members_follow_everything_else(void **state) {
  (void)state;
  groupdesc_member_t m[] = {M("a", "", 0, 3), M("b", "", 1, 4), M("c", "", 2)};
  int f[5];
  uint64_t masks[3];
  for (uint32_t n = 2; n <= 7; n += 5) { /* N = members - 1, and N > members */
    place_all(m, 3, 5, n, f, masks);
    assert_int_equal(masks[0], 0x16);
    assert_int_equal(masks[1], 0x0d);
    assert_int_equal(masks[2], 0x1b);
    for (int p = 0; p < 5; p++) assert_int_equal(f[p], 2);
  }
  /* one member alone owns everything: nothing to follow */
  groupdesc_member_t one[] = {M("a", "", 0, 1, 2)};
  assert_int_equal(place_mask(one, 1, 0, 3, 3), 0);
  /* no replicas, no partitions */
  assert_int_equal(place_mask(m, 3, 0, 5, 0), 0);
  assert_int_equal(place_mask(m, 3, 0, 0, 1), 0);
}

static void test_standby_place_is_the_same_for_every_input_order_and_ties(void **state) {
  (void)state;
  /* static membership orders by group.instance.id first; two entries with
   * the same ids (a description never has them, but the order must still
   * be one) are ordered by their partitions */
  groupdesc_member_t m[] = {M("z", "host-1", 0, 1), M("y", "host-2", 2), M("x", "host-3", 3),
                            M("dup", "", 4), M("dup", "", 5, 6)};
  size_t n = 5;
  int f[7];
  uint64_t ref[5];
  place_all(m, n, 7, 1, f, ref);
  /* ring: dup{4}, dup{5,6}, host-1, host-2, host-3 (empty instance id first) */
  assert_int_equal(ref[4], 0x01 << 4);        /* dup{5,6} follows dup{4}'s 4 */
  assert_int_equal(ref[0], 0x3 << 5);         /* host-1 follows 5,6 */
  assert_int_equal(ref[1], 0x3);              /* host-2 follows host-1's 0,1 */
  assert_int_equal(ref[2], 0x4);              /* host-3 follows host-2's 2 */
  assert_int_equal(ref[3], 0x8);              /* dup{4} follows host-3's 3 (wraps) */
  for (int p = 0; p < 7; p++) assert_int_equal(f[p], 1);
  /* every rotation and the reversal of the input: the same placement */
  for (size_t rot = 0; rot < 2 * n; rot++) {
    groupdesc_member_t q[5];
    size_t back[5];
    for (size_t i = 0; i < n; i++) {
      size_t src = rot < n ? (i + rot) % n : (n - 1 - (i + rot) % n);
      q[i] = m[src];
      back[i] = src;
    }
    for (size_t i = 0; i < n; i++) assert_int_equal(place_mask(q, n, i, 7, 1), ref[back[i]]);
  }
}

static void test_standby_place_a_doubly_claimed_partition_goes_to_neither_claimer(void **state) {
  (void)state;
  /* two descriptions overlapping (a transient disagreement): 1 is claimed by
   * a and b; it goes to the next member after a that claims it not */
  groupdesc_member_t m[] = {M("a", "", 0, 1), M("b", "", 1, 2), M("c", "", 3, 99, -1)};
  int f[4];
  uint64_t masks[3];
  place_all(m, 3, 4, 1, f, masks);
  assert_false(masks[0] & 0x2);
  assert_false(masks[1] & 0x2);
  assert_true(masks[2] & 0x2);
  for (int p = 0; p < 4; p++) assert_int_equal(f[p], 1); /* 99 and -1 ignored */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_standby_follows_the_next_range_block),
      cmocka_unit_test(test_standby_follows_the_next_round_robin_member),
      cmocka_unit_test(test_standby_uneven_blocks_leave_no_partition_without_a_copy),
      cmocka_unit_test(test_standby_none_without_owned_partitions_or_replicas),
      cmocka_unit_test(test_standby_place_gives_each_partition_the_next_member_in_id_order),
      cmocka_unit_test(test_standby_place_uneven_assignments_and_a_member_without_partitions),
      cmocka_unit_test(test_standby_place_replicas_beyond_the_members_follow_everything_else),
      cmocka_unit_test(test_standby_place_is_the_same_for_every_input_order_and_ties),
      cmocka_unit_test(test_standby_place_a_doubly_claimed_partition_goes_to_neither_claimer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
