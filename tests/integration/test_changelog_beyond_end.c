/* A changelog topic ahead of the input (docs/STATE.md; daemon.c's
 * topic_beyond_end), on the mock cluster: the changelog's consistent input
 * offset is beyond the input partition's end, as when the input topic was
 * deleted and recreated (shorter) while the changelog topic stayed. A
 * first daemon answers N1 events of topic "events" and is stopped with
 * SIGTERM: its revocation writes a changelog checkpoint at offset ~N1/PARTS
 * per partition. A second daemon of the same group and changelog topic
 * reads a new input topic "events2" holding only N2 << N1 events (the same
 * users: the first N2 of the sample). Checked: every partition's changelog
 * states are dropped and it starts cold, logged ("is beyond the input's
 * end; starting cold") and counted (interestd_checkpoints_refused_total ==
 * PARTS, and as cold starts: interestd_state_restores_total{source="cold"}
 * == PARTS); the daemon keeps serving: every event of events2, those produced
 * before its start and after, gets a prediction equal to the offline
 * pipeline's over events2 alone. A daemon that used the changelog's states
 * would predict from histories of N1 events (values differ); one that
 * resumed at the changelog's offset would skip every event of events2
 * (missing predictions). */
#include "daemon_harness.h"

#define N1 6000
#define N2 800
#define PARTS 2

int main(void) {
  h_init("test_changelog_beyond_end");
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "beyond-interestd-state", PARTS, err, sizeof err) == 0,
          "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "events2", PARTS, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "interests2", PARTS, err, sizeof err) == 0, "%s", err);
  const char *model = h_path("model.ixm");
  h_write_model(model, 13);
  h_msg_t *msgs = h_load_events(N1, PARTS);
  const char *extra = "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 3600\n"
                      "[daemon]\nshutdown_timeout_s = 10\n";

  /* the first daemon fills the changelog from "events" */
  const char *conf1 = h_path("first.conf");
  h_write_conf(conf1, brokers, "beyond", model, extra);
  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf1, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_produce(brokers, "events", msgs, 0, N1, 0);
  h_expect_answered(brokers, model, msgs, N1, 3 * N1, 120, log1);
  int64_t ends[PARTS] = {0};
  for (size_t i = 0; i < N1; i++)
    if (msgs[i].offset + 1 > ends[msgs[i].partition]) ends[msgs[i].partition] = msgs[i].offset + 1;
  kill(d1, SIGTERM);
  H_CHECK(h_wait_exit(d1, 30) == 0, "first process exit (log %s)", log1);
  printf("first daemon: %d events of \"events\" answered (partition ends %" PRId64 ", %" PRId64
         "), stopped; its changelog checkpoint is at those offsets\n", N1, ends[0], ends[1]);

  /* the second reads a shorter input topic with the same changelog topic */
  h_msg_t *msgs2 = h_load_events(N2, PARTS);
  h_produce(brokers, "events2", msgs2, 0, N2 / 2, 0);
  char extra2[512];
  snprintf(extra2, sizeof extra2, "%s[kafka]\ninput_topic = events2\noutput_topic = interests2\n",
           extra);
  const char *conf2 = h_path("second.conf");
  h_write_conf(conf2, brokers, "beyond", model, extra2);
  const char *log2 = h_path("second.log");
  pid_t d2 = h_spawn(conf2, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  h_produce(brokers, "events2", msgs2, N2 / 2, N2, 0); /* it keeps serving */
  int64_t ends2[PARTS] = {0};
  for (size_t i = 0; i < N2; i++)
    if (msgs2[i].offset + 1 > ends2[msgs2[i].partition])
      ends2[msgs2[i].partition] = msgs2[i].offset + 1;
  for (int p = 0; p < PARTS; p++)
    H_CHECK(ends2[p] < ends[p], "partition %d: events2 ends at %" PRId64 ", not before the "
            "changelog's offset %" PRId64 ": the test does not make the case", p, ends2[p], ends[p]);

  int *ok = calloc(N2, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs2, N2, ok);
  uint32_t *counts = calloc(N2, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, "interests2", h_path("out2.rec"), msgs2, N2, ref, ok,
                                  3 * N2, 120, counts, &total);
  printf("second daemon: %" PRIu64 " predictions for the %d events of \"events2\", %zu missing\n",
         total, N2, missing);
  H_CHECK(missing == 0, "%zu events of events2 have no prediction (log %s)", missing, log2);
  printf("every prediction equals the offline pipeline's over events2 alone: the changelog's "
         "states were dropped\n");

  /* logged once per partition, and counted */
  char *text = h_read_file(log2);
  int lines = 0;
  for (const char *s = text; s && (s = strstr(s, "is beyond the input's end; starting cold")); s++)
    lines++;
  free(text);
  double refused = h_metric_of(log2, "interestd_checkpoints_refused_total ");
  double cold = h_metric_of(log2, "interestd_state_restores_total{source=\"cold\"} ");
  double from_cl = h_metric_of(log2, "interestd_state_restores_total{source=\"changelog\"} ");
  printf("second daemon: %d 'beyond the input's end' lines, checkpoints refused %.0f, restores "
         "cold %.0f, from the changelog %.0f\n", lines, refused, cold, from_cl);
  H_CHECK(lines == PARTS, "%d of %d partitions logged the changelog beyond the input's end "
          "(log %s)", lines, PARTS, log2);
  H_CHECK(cold == PARTS, "%.0f partitions counted cold, %d expected: a partition that starts "
          "without states must show in interestd_state_restores_total{source=\"cold\"} (log %s)",
          cold, PARTS, log2);
  H_CHECK(refused == PARTS, "%.0f refused changelog checkpoints counted, %d expected (log %s)",
          refused, PARTS, log2);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 30) == 0, "second process exit (log %s)", log2);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N1);
  h_free_msgs(msgs2, N2);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
