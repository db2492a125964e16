/* The standby placement's rule as group descriptions arrive
 * (daemon/standby.h, standby_described): the membership rule once the group
 * is described, the fallback to the own-assignment rule after 3 failed
 * descriptions in a row, and back. Its own executable, labelled novalgrind:
 * the standby's changelog follower is a librdkafka consumer, and librdkafka
 * 2.0.2 loses 1-3 blocks allocated on its own threads around that
 * consumer's destroy (valgrind: "definitely lost" in 10 of 11 runs here,
 * with the mock cluster or an unreachable broker, polled first or not); the
 * ASan+UBSan run (LeakSanitizer) covers it. */
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
      cmocka_unit_test(test_standby_falls_back_to_the_own_assignment_rule_after_3_failed_describes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
