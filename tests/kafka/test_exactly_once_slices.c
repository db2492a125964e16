/* Changelog checkpoints encoded in slices under exactly-once output, on a
 * real Apache Kafka (label kafka: transactions; tests/kafka/kafka.sh broker
 * through IX_KAFKA_DIR, or IX_KAFKA_BOOTSTRAP). docs/STATE.md, "Incremental
 * encoding": a user encoded after the checkpoint's start carries events of
 * the open transaction, whose outputs are acknowledged but may still be
 * aborted; a restore skips every event at or below a user's recorded offset,
 * so a record may reach the topic only once the transaction holding its
 * events is committed.
 *
 * A changelog-only daemon with kafka.processing_guarantee = exactly_once,
 * commit_interval_ms 2000 (long transactions) and a checkpoint every second
 * answers the bundled 100,001 events streamed at 12,000/s. While it runs, and
 * once more after it is killed with SIGKILL mid-transaction, the test reads
 * the changelog, then the group's committed offsets: every user record's
 * offset must be below its partition's committed offset (no record covers
 * an uncommitted event), and some records must carry an offset past their
 * checkpoint's (users encoded in a later slice, with events of the next
 * transaction: the case exercised). The daemon's metrics must show slices
 * and no at-once encoding. A second daemon then restores from the
 * changelog and answers the rest: every event has a committed prediction
 * equal to the offline pipeline's (a skipped uncommitted event would have
 * none). */
#include "../integration/daemon_harness.h"


#include "state/changelog.h"
#include "stream/changelog_topic.h"

#define PARTS 4
#define N 100001
#define RATE 12000.0

typedef struct {
  int64_t max_r;      /* the largest user record offset */
  int64_t last_m;     /* the newest completion's offset (-1 none) */
  uint64_t users;     /* user records */
  uint64_t past_m;    /* user records whose offset is at or past their checkpoint's M */
  int64_t off[65536]; /* the offsets of the user records since the last completion */
  size_t n_off;
} scan_t;

static int scan_rec(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl) {
  (void)off;
  scan_t *s = ctx;
  if (!v || !vl) return 0; /* a tombstone */
  changelog_rec_t rec;
  char why[200];
  H_CHECK(changelog_decode(k, kl, v, vl, &rec, why, sizeof why) == 0, "changelog record: %s",
          why);
  if (rec.kind == CHANGELOG_COMPLETE) {
    for (size_t i = 0; i < s->n_off; i++) s->past_m += s->off[i] >= rec.offset;
    s->n_off = 0;
    s->last_m = rec.offset;
    return 0;
  }
  s->users++;
  if (rec.offset > s->max_r) s->max_r = rec.offset;
  if (s->n_off < sizeof s->off / sizeof s->off[0]) s->off[s->n_off++] = rec.offset;
  return 0;
}

/* The changelog, then the committed offsets (which only grow): every user
 * record's offset below its partition's committed offset. Returns the
 * records past their checkpoint's offset. */
static uint64_t check_covered(const char *brokers, const char *topic, const char *group,
                              const char *when) {
  static scan_t s;
  uint64_t past = 0, users = 0;
  int64_t max_r[PARTS], committed[PARTS];
  for (int32_t p = 0; p < PARTS; p++) {
    memset(&s, 0, sizeof s);
    s.max_r = s.last_m = -1;
    char err[512];
    uint64_t nr, nb;
    H_CHECK(changelog_topic_read(brokers, NULL, topic, p, 30000, scan_rec, &s, &nr, &nb, err,
                                 sizeof err) == 0, "%s", err);
    max_r[p] = s.max_r;
    past += s.past_m;
    users += s.users;
  }
  for (int32_t p = 0; p < PARTS; p++) committed[p] = h_committed(brokers, group, h_T("events"), p);
  printf("%s: %" PRIu64 " user records, %" PRIu64 " past their checkpoint's offset; per "
         "partition the largest record offset / the committed offset:", when, users, past);
  for (int32_t p = 0; p < PARTS; p++) printf(" %" PRId64 "/%" PRId64, max_r[p], committed[p]);
  printf("\n");
  for (int32_t p = 0; p < PARTS; p++)
    H_CHECK(max_r[p] < committed[p] || max_r[p] < 0,
            "%s: partition %d has a changelog record covering offset %" PRId64 ", whose output "
            "is not committed (the group's committed offset is %" PRId64 ")", when, (int)p,
            max_r[p], committed[p]);
  return past;
}

int main(void) {
  h_init("test_exactly_once_slices");
  if (!h_real_bootstrap()) {
    printf("SKIP: exactly-once needs a real Kafka (the mock has no transactions); run "
           "test_exactly_once_slices through ctest's kafka fixture\n");
    return 77;
  }
  const char *brokers = h_cluster(PARTS);
  const char *model = h_path("model.ixm");
  h_write_model(model, 11);
  h_msg_t *msgs = h_load_events(N, PARTS);
  const char *topic = h_T("eos-slices-state");
  const char *group = h_T("eos-slices");
  char extra[1024];
  snprintf(extra, sizeof extra,
           "[kafka]\nprocessing_guarantee = exactly_once\ninstance_id = a\n"
           "commit_interval_ms = 2000\n"
           "[state]\nchangelog_mode = changelog\nchangelog_topic = %s\ncheckpoint_interval_s = 1\n",
           topic);
  const char *conf = h_path("d.conf");
  h_write_conf(conf, brokers, "eos-slices", model, extra);

  const char *log1 = h_path("d1.log");
  pid_t d1 = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 60), "no assignment (log %s)", log1);
  int port = h_metrics_port(log1);
  h_feed_t f = {.brokers = brokers, .topic = h_T("events"), .msgs = msgs,
                .lo = 0, .hi = N, .rate = RATE};
  h_feed_start(&f);
  uint64_t past = 0;
  double t0 = h_now();
  int samples = 0;
  /* sample while it runs, until about 70 % of the events are in */
  while (h_now() - t0 < 0.7 * N / RATE) {
    h_sleep_ms(700);
    char when[64];
    snprintf(when, sizeof when, "running, %.1f s", h_now() - t0);
    past += check_covered(brokers, topic, group, when);
    samples++;
  }
  char *body = h_http_get(port, "/metrics");
  H_CHECK(body, "no /metrics");
  double slices = 0, once = 0;
  const char *sl = strstr(body, "interestd_changelog_encode_seconds_count{mode=\"slices\"} ");
  const char *ao = strstr(body, "interestd_changelog_encode_seconds_count{mode=\"at_once\"} ");
  if (sl) slices = strtod(strchr(sl, '}') + 1, NULL);
  if (ao) once = strtod(strchr(ao, '}') + 1, NULL);
  printf("daemon 1: %g encoding slices, %g at once; longest loop turn %.1f ms\n", slices, once,
         h_metric_sum(body, "interestd_loop_stall_max_seconds") * 1e3);
  free(body);
  H_CHECK(slices > 0 && once == 0, "exactly_once encoded %g checkpoints at once, %g slices",
          once, slices);
  kill(d1, SIGKILL);
  h_wait_exit(d1, 10);
  uint64_t past_end = check_covered(brokers, topic, group, "after SIGKILL");
  printf("%d samples while running (%" PRIu64 " records past their checkpoint's offset seen "
         "in them)\n", samples, past);
  H_CHECK(past_end > 0, "no user record carries an offset past its checkpoint's: the test did "
          "not exercise users encoded with events of the next transaction");

  /* a new incarnation (the same transactional id fences the old one's open
   * transaction) restores from the changelog and answers the rest */
  const char *log2 = h_path("d2.log");
  pid_t d2 = h_spawn(conf, log2);
  h_feed_join(&f);
  h_expect_answered(brokers, model, msgs, N, (uint64_t)N * 3, 240, log2);
  printf("all %d events have a committed prediction equal to the offline pipeline's\n", N);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 60) == 0, "daemon 2 did not exit cleanly");
  check_covered(brokers, topic, group, "after SIGTERM");
  h_free_msgs(msgs, N);
  printf("test_exactly_once_slices: ok\n");
  return 0;
}
