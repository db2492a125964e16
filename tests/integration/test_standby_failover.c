/* Standby replicas (issue 14), on the mock cluster: two changelog-only
 * daemons (no local directory) in one group with state.standby_replicas = 1,
 * each owning two of four partitions and standing by for the other two.
 * While events stream, the first is killed with SIGKILL; the second takes
 * its partitions over from its standby copies:
 *   - interestd_state_restores_total{source="standby"} counts both moved
 *     partitions, and the restores read only the changelog's tail: per moved
 *     partition, the offset the read began at (the daemon's log) has records
 *     below it that were not read, and no more records were read than lie at
 *     or above it (the test reads the changelog itself). (In records against
 *     offsets, not as a share of the changelog's bytes: how far behind the
 *     copy is when the owner dies grows with the machine's load.)
 *   - the time from each moved partition's assignment (the daemon's log) to
 *     its first prediction (the prediction's emit time) is printed and
 *     bounded;
 *   - every input event is answered and every prediction equals the offline
 *     pipeline's (each event applied to its user's state exactly once).
 * test_standby_failover_kafka runs it against a real broker (tests/kafka). */

#include "daemon_harness.h"
#include "stream/changelog_topic.h"

#define N_EVENTS 16000
#define PARTS 4
#define RATE 2000.0

static double metric(const char *page, const char *series) {
  char line[256];
  snprintf(line, sizeof line, "\n%s", series);
  const char *p = page ? strstr(page, line) : NULL;
  return p ? atof(p + strlen(line)) : -1;
}

static double metric_at(int port, const char *series) {
  char *page = h_http_get(port, "/metrics");
  double v = metric(page, series);
  free(page);
  return v;
}

/* Wall-clock ms of the first log line containing needle (-1: none). */
static int64_t log_time_ms(const char *log, const char *needle) {
  char *s = h_read_file(log);
  int64_t ms = -1;
  for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
    if (!strstr(line, needle)) continue;
    struct tm tm = {0};
    int msec = 0;
    if (sscanf(line, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &msec) == 7) {
      tm.tm_year -= 1900;
      tm.tm_mon -= 1;
      ms = (int64_t)timegm(&tm) * 1000 + msec;
    }
    break;
  }
  free(s);
  return ms;
}

/* the changelog's records below and at or above an offset */
typedef struct {
  int64_t from;
  uint64_t below, above;
} split_t;

static int count_split(void *ctx, int64_t off, const void *k, size_t kl, const void *v,
                       size_t vl) {
  (void)k, (void)kl, (void)v, (void)vl;
  split_t *sp = ctx;
  if (off < sp->from) sp->below++;
  else sp->above++;
  return 0;
}

/* From log's "partition p: states from standby" line: the offset the tail's
 * read began at and the records it read. Fails the test without one. */
static void standby_read(const char *log, int p, int64_t *from, uint64_t *records) {
  char want[64];
  snprintf(want, sizeof want, "partition %d: states from standby", p);
  char *line = h_log_line(log, want);
  H_CHECK(line, "no \"%s\" line (log %s)", want, log);
  const char *r = strstr(line, "changelog read "), *t = strstr(line, "the tail from offset ");
  H_CHECK(r && t && sscanf(r, "changelog read %" SCNu64, records) == 1 &&
          sscanf(t, "the tail from offset %" SCNd64, from) == 1,
          "partition %d: no records and offset in \"%s\" (log %s)", p, line, log);
  free(line);
}

int main(void) {
  h_init("test_standby_failover");
  const char *brokers = h_cluster(PARTS);
  char err[512], clog_topic[128], extra[512];
  /* on a real cluster the daemon creates the changelog topic itself (Admin
   * API, compacted); the mock has no Admin API: the test creates it */
  snprintf(clog_topic, sizeof clog_topic, "%s", h_T("sbstate"));
  if (!h_real_bootstrap()) h_create_topic("sbstate", PARTS);
  const char *model = h_path("model.ixm");
  h_write_model(model, 11);
  const char *conf = h_path("interestd.conf");
  snprintf(extra, sizeof extra,
           "[state]\nchangelog_mode = changelog\nchangelog_topic = %s\n"
           "checkpoint_interval_s = 1\nstandby_replicas = 1\n", clog_topic);
  h_write_conf(conf, brokers, "sb", model, extra);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);

  const char *log1 = h_path("first.log"), *log2 = h_path("second.log");
  pid_t d1 = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  pid_t d2 = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 60), "second member got nothing (log %s)",
          log2);
  uint64_t own1 = 0, own2 = 0;
  for (double end = h_now() + 60; h_now() < end; h_sleep_ms(200)) {
    own1 = h_owned_from_log(log1);
    own2 = h_owned_from_log(log2);
    if (own1 && own2 && !(own1 & own2) && (own1 | own2) == (1u << PARTS) - 1) break;
  }
  printf("members: first owns mask %#llx, second %#llx\n", (unsigned long long)own1,
         (unsigned long long)own2);
  H_CHECK(own1 && own2 && !(own1 & own2) && (own1 | own2) == (1u << PARTS) - 1,
          "the partitions are not split between the two members");

  h_feed_t f = {.brokers = brokers, .topic = h_T("events"), .msgs = msgs,
                .lo = 0, .hi = N_EVENTS, .rate = RATE};
  h_feed_start(&f);
  h_sleep_ms((int)(N_EVENTS / RATE * 1000 / 2));
  int port2 = h_metrics_port(log2);
  H_CHECK(port2 > 0, "no metrics port in %s", log2);
  /* the copies have caught up with what the first member wrote */
  double sb_parts = -1, sb_users = -1, lag = -1;
  for (double end = h_now() + 20; h_now() < end; h_sleep_ms(200)) {
    char *page = h_http_get(port2, "/metrics");
    sb_parts = metric(page, "interestd_standby_partitions ");
    sb_users = metric(page, "interestd_standby_users ");
    lag = h_metric_sum(page, "interestd_standby_lag_records");
    free(page);
    if (sb_parts == 2 && sb_users > 0 && lag < 50) break;
  }
  printf("second member before the kill: standby partitions %.0f, users %.0f, lag %.0f records\n",
         sb_parts, sb_users, lag);
  H_CHECK(sb_parts == 2 && sb_users > 0, "no warm standby copy (log %s)", log2);
  /* the placement rule: the group's membership on a real cluster, the
   * member's own assignment on the mock (no Admin API: never described) */
  double by_members = metric_at(port2, "interestd_standby_rule{rule=\"membership\"} ");
  double by_own = metric_at(port2, "interestd_standby_rule{rule=\"assignment\"} ");
  double described = metric_at(port2, "interestd_standby_describes_total{result=\"ok\"} ");
  printf("second member: standby rule membership %.0f, own assignment %.0f; %.0f group "
         "descriptions\n", by_members, by_own, described);
  if (h_real_bootstrap())
    H_CHECK(by_members == 1 && by_own == 0 && described > 0, "not placed by the group's "
            "membership on a real cluster (log %s)", log2);
  else
    H_CHECK(by_members == 0 && by_own == 1 && described == 0, "not placed by the own-assignment "
            "rule on the mock (log %s)", log2);
  double read_before = metric_at(port2, "interestd_changelog_read_bytes_total ");

  kill(d1, SIGKILL);
  H_CHECK(h_wait_exit(d1, 10) == -2, "first process did not die of SIGKILL");
  printf("first member killed mid-stream\n");
  for (int p = 0; p < PARTS; p++) {
    if (!(own1 & (1u << p))) continue;
    char want[96];
    snprintf(want, sizeof want, "partition %d: states from standby", p);
    H_CHECK(h_wait_log(log2, want, 60), "partition %d not taken over from the standby copy "
            "(log %s)", p, log2);
  }
  h_feed_join(&f);

  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total;
  const char *out = h_path("out.rec");
  size_t missing = h_await_output(brokers, h_T("interests"), out, msgs, N_EVENTS, ref, ok,
                                  3 * N_EVENTS, 90, counts, &total);
  printf("after the failover: %" PRIu64 " predictions for %d events, %zu missing\n", total,
         N_EVENTS, missing);
  H_CHECK(missing == 0, "%zu events have no prediction (logs %s %s)", missing, log1, log2);
  printf("every prediction equals the offline pipeline's: each event applied once to state\n");

  /* time from each moved partition's assignment (its log line) to its first
   * prediction made after it */
  int64_t t_assign[PARTS], first[PARTS];
  for (int p = 0; p < PARTS; p++) {
    first[p] = INT64_MAX;
    t_assign[p] = -1;
    if (!(own1 & (1u << p))) continue;
    char want[96];
    snprintf(want, sizeof want, "partition %d: assigned; its standby copy", p);
    t_assign[p] = log_time_ms(log2, want);
    H_CHECK(t_assign[p] > 0, "no assignment time for partition %d (log %s)", p, log2);
  }
  rec_reader_t *r;
  H_CHECK(recfile_reader_open(out, &r, err, sizeof err) == 0, "%s", err);
  rec_t x;
  while (recfile_read(r, &x) == 0) {
    prediction_t pr;
    H_CHECK(codec_decode_prediction(x.value, x.value_len, &pr, err, sizeof err) == 0, "%s", err);
    int p = pr.src_partition;
    if (p >= 0 && p < PARTS && t_assign[p] > 0 && pr.emit_ts_ms >= t_assign[p] &&
        pr.emit_ts_ms < first[p])
      first[p] = pr.emit_ts_ms;
  }
  recfile_reader_close(r);
  double worst = 0;
  for (int p = 0; p < PARTS; p++) {
    if (t_assign[p] < 0) continue;
    H_CHECK(first[p] != INT64_MAX, "no prediction for partition %d after its hand-over", p);
    double s = (double)(first[p] - t_assign[p]) / 1000.0;
    printf("partition %d: first prediction %.3f s after its assignment to the standby holder\n",
           p, s);
    if (s > worst) worst = s;
  }
  /* the goal (issue 14); 0.05 s measured on the loaded 2-core build machine */
  H_CHECK(worst < 1.0, "a moved partition served %.3f s after its assignment (goal: 1 s)", worst);

  /* the hand-over read only the tail: per moved partition, records below
   * the read's start offset that it did not read (the mock compacts
   * nothing: they are all still there), and no more read than lie at or
   * above it (the second member has written more since) */
  for (int p = 0; p < PARTS; p++) {
    if (!(own1 & (1u << p))) continue;
    uint64_t nrec, nb, read;
    split_t sp = {0};
    standby_read(log2, p, &sp.from, &read);
    H_CHECK(changelog_topic_read(brokers, NULL, clog_topic, p, 10000, count_split, &sp, &nrec,
                                 &nb, err, sizeof err) == 0, "%s", err);
    printf("partition %d: the hand-over read %" PRIu64 " records from offset %" PRId64 "; the "
           "changelog now holds %" PRIu64 " below it and %" PRIu64 " at or above it\n", p,
           read, sp.from, sp.below, sp.above);
    H_CHECK(sp.from > 0 && sp.below > 0, "partition %d: the hand-over read from offset %" PRId64
            " (%" PRIu64 " records below it): not only the tail (log %s)", p, sp.from, sp.below,
            log2);
    H_CHECK(read <= sp.above, "partition %d: %" PRIu64 " records read, only %" PRIu64 " at or "
            "above offset %" PRId64 " (log %s)", p, read, sp.above, sp.from, log2);
  }
  char *page = h_http_get(port2, "/metrics");
  double from_sb = metric(page, "interestd_state_restores_total{source=\"standby\"} ");
  double from_cl = metric(page, "interestd_state_restores_total{source=\"changelog\"} ");
  double users_sb = metric(page, "interestd_state_restored_users_total{source=\"standby\"} ");
  double read_after = metric(page, "interestd_changelog_read_bytes_total ");
  free(page);
  double tail = read_after - read_before;
  printf("second member: %.0f partitions from standby copies (%.0f users), %.0f from the "
         "changelog; the hand-over read %.0f bytes of the changelog\n", from_sb, users_sb,
         from_cl, tail);
  H_CHECK(from_sb == 2 && users_sb > 0, "the moved partitions did not come from the standby "
          "copies (log %s)", log2);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 30) == 0, "second process exit (log %s)", log2);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  h_cluster_destroy();
  printf("PASS\n");
  return 0;
}
