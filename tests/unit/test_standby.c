/* The standby rules (daemon/standby.h): which partitions a member follows,
 * from its own assignment (standby_want, the fallback) and from the group's
 * membership (standby_place), and the switch between them as group
 * descriptions arrive (standby_described): the fallback after 3 failed
 * descriptions in a row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "daemon/metrics.h"
#include "daemon/standby.h"
#include "stream/mockbroker.h"

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

/* ---- the rule in force as descriptions arrive (standby_described) ---------
 * A failed DescribeConsumerGroups cannot be had from the test broker (Kafka
 * 4.1.1 without an authorizer answers every member; a denied Describe ACL
 * would also deny the consumer's OffsetFetch), and the mock cluster cannot
 * describe groups at all (stream/groupdesc.h): the descriptions are fed
 * here, as the group watch's poll callback feeds them. */

#define FB_PARTS 6

typedef struct {
  mockbroker_t *mb;
  metrics_t *reg;
  standby_t *sb;
} fb_t;

/* the rendered /metrics text; free() it */
static char *fb_render(fb_t *f) {
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_render(f->reg, &buf), 0);
  char *t = strdup(buf.data ? buf.data : "");
  metrics_buf_free(&buf);
  return t;
}

/* the value of the sample "series " (series with its labels), -1 when absent */
static double fb_metric(fb_t *f, const char *series) {
  char *t = fb_render(f);
  char line[160];
  snprintf(line, sizeof line, "\n%s ", series);
  const char *p = strstr(t, line);
  double v = p ? atof(p + strlen(line)) : -1;
  free(t);
  return v;
}

/* the partitions followed, from their lag gauges (one per followed partition) */
static uint64_t fb_followed(fb_t *f) {
  char *t = fb_render(f);
  uint64_t m = 0;
  for (int p = 0; p < FB_PARTS; p++) {
    char series[96];
    snprintf(series, sizeof series, "interestd_standby_lag_records{partition=\"%d\"}", p);
    if (strstr(t, series)) m |= 1ull << p;
  }
  free(t);
  return m;
}

static void fb_setup(fb_t *f) {
  char err[512];
  assert_int_equal(mockbroker_new(1, &f->mb, err, sizeof err), 0);
  assert_int_equal(mockbroker_create_topic(f->mb, "fb-interestd-state", FB_PARTS, err,
                                           sizeof err), 0);
  assert_int_equal(metrics_new(&f->reg), 0);
  standby_opts_t o = {.brokers = mockbroker_bootstraps(f->mb), .topic = "fb-interestd-state",
                      .partitions = FB_PARTS, .replicas = 1, .fingerprint = 0x1234,
                      .blob_size = 64, .metrics = f->reg};
  int rc = standby_new(&o, &f->sb, err, sizeof err);
  if (rc) fail_msg("standby_new: %s", err);
}

static void fb_teardown(fb_t *f) {
  standby_destroy(f->sb);
  metrics_destroy(f->reg);
  mockbroker_destroy(f->mb);
}

static const int32_t fb_a[] = {0, 1}, fb_b[] = {2, 3}, fb_c[] = {4, 5};
static const groupdesc_member_t fb_members[] = {
    {.member_id = "m-a", .instance_id = "", .client_id = "a", .parts = fb_a, .n_parts = 2},
    {.member_id = "m-b", .instance_id = "", .client_id = "b", .parts = fb_b, .n_parts = 2},
    {.member_id = "m-c", .instance_id = "", .client_id = "c", .parts = fb_c, .n_parts = 2},
};

static void fb_ok(fb_t *f) {
  groupdesc_view_t v = {.stable = 1, .state = "Stable", .members = fb_members, .n_members = 3,
                        .took_ms = 3};
  standby_described(f->sb, &v);
}

static void fb_failed(fb_t *f) {
  groupdesc_view_t v = {.err = IX_EKAFKA, .error = "Broker: Group authorization failed",
                        .state = "", .took_ms = 5};
  standby_described(f->sb, &v);
}

/* the rule gauges say r (and only r) */
static void fb_assert_rule(fb_t *f, standby_rule_t r) {
  assert_int_equal(standby_rule(f->sb), r);
  assert_true(fb_metric(f, "interestd_standby_rule{rule=\"assignment\"}") ==
              (r == STANDBY_RULE_ASSIGNMENT));
  assert_true(fb_metric(f, "interestd_standby_rule{rule=\"membership\"}") ==
              (r == STANDBY_RULE_MEMBERSHIP));
}

static void fb_assert_describes(fb_t *f, double ok, double failed) {
  assert_true(fb_metric(f, "interestd_standby_describes_total{result=\"ok\"}") == ok);
  assert_true(fb_metric(f, "interestd_standby_describes_total{result=\"failed\"}") == failed);
}

/* stderr into a file while fn runs; returns what was logged (free() it) */
static char *fb_logged(fb_t *f, void (*fn)(fb_t *)) {
  char path[] = "/tmp/test_standby_log_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0 && dup2(fd, 2) == 2);
  fn(f);
  fflush(stderr);
  assert_int_equal(dup2(saved, 2), 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  char *t = calloc((size_t)len + 1, 1);
  assert_int_equal(pread(fd, t, (size_t)len, 0), len);
  close(fd);
  unlink(path);
  fputs(t, stderr); /* still shown */
  return t;
}

/* This member owns {0,1} of 6; the others {2,3} and {4,5}. Membership rule:
 * it stands by for {4,5} (the member before it in id order owns them); own-
 * assignment rule: {2,3,4}. Two failed descriptions leave the membership
 * rule and its copies; the third switches to the own-assignment rule (its
 * copies, the gauges, a warning); a good one restores the membership rule,
 * and the count of failures starts over. */
static void test_standby_falls_back_to_the_own_assignment_rule_after_3_failed_describes(
    void **state) {
  (void)state;
  fb_t f = {0};
  fb_setup(&f);
  uint8_t w[FB_PARTS];
  uint64_t own = 0, members = 0;
  standby_want(fb_a, 2, FB_PARTS, 1, w);
  for (int p = 0; p < FB_PARTS; p++) own |= (uint64_t)w[p] << p;
  assert_int_not_equal(standby_place(fb_members, 3, 0, FB_PARTS, 1, w), SIZE_MAX);
  for (int p = 0; p < FB_PARTS; p++) members |= (uint64_t)w[p] << p;
  assert_int_equal(own, 0x1c);     /* {2,3,4} */
  assert_int_equal(members, 0x30); /* {4,5} */

  standby_set_owned(f.sb, fb_a, 2);
  fb_assert_rule(&f, STANDBY_RULE_ASSIGNMENT);
  assert_int_equal(fb_followed(&f), own);
  fb_ok(&f);
  fb_assert_rule(&f, STANDBY_RULE_MEMBERSHIP);
  assert_int_equal(fb_followed(&f), members);
  fb_assert_describes(&f, 1, 0);

  fb_failed(&f);
  fb_failed(&f);
  fb_assert_rule(&f, STANDBY_RULE_MEMBERSHIP); /* two are not enough */
  assert_int_equal(fb_followed(&f), members);
  fb_assert_describes(&f, 1, 2);
  char *log = fb_logged(&f, fb_failed);
  fb_assert_rule(&f, STANDBY_RULE_ASSIGNMENT);
  assert_int_equal(fb_followed(&f), own);
  fb_assert_describes(&f, 1, 3);
  assert_non_null(strstr(log, "could not be described 3 times in a row (Broker: Group "
                              "authorization failed): standby placement falls back to the "
                              "own-assignment rule"));
  free(log);
  fb_failed(&f); /* further failures change nothing */
  fb_assert_rule(&f, STANDBY_RULE_ASSIGNMENT);
  assert_int_equal(fb_followed(&f), own);

  fb_ok(&f);
  fb_assert_rule(&f, STANDBY_RULE_MEMBERSHIP);
  assert_int_equal(fb_followed(&f), members);
  fb_assert_describes(&f, 2, 4);
  /* failures are counted in a row: an answer in between starts over */
  fb_failed(&f);
  fb_failed(&f);
  fb_ok(&f);
  fb_failed(&f);
  fb_failed(&f);
  fb_assert_rule(&f, STANDBY_RULE_MEMBERSHIP);
  assert_int_equal(fb_followed(&f), members);
  fb_assert_describes(&f, 3, 8);
  fb_failed(&f);
  fb_assert_rule(&f, STANDBY_RULE_ASSIGNMENT);
  assert_int_equal(fb_followed(&f), own);
  fb_teardown(&f);
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
      cmocka_unit_test(test_standby_falls_back_to_the_own_assignment_rule_after_3_failed_describes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
