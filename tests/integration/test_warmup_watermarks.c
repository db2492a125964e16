/* The warm-up's start (daemon/warmup.c pick_start: warm_max_events before
 * the serving position, not below the low watermark) while the cluster
 * answers ListOffsets with errors, on the mock cluster, four partitions.
 * warm_max_events covers the whole partition; warm_window_s = 0.
 *   swap   (default) a daemon (model A, reload = warm) answers the first
 *          half; the cluster is told to answer the next 3 ListOffsets
 *          requests with NOT_LEADER_FOR_PARTITION; the model file becomes B
 *          and SIGHUP swaps it. With librdkafka 2.0.2's
 *          rd_kafka_query_watermark_offsets() (the reader's ask before the
 *          fix) partition 0's ask failed (two requests sent at once, both
 *          failed: the fallback, right) and partition 1's, with the third
 *          error, returned success with low = high = its end offset: "warming
 *          from offset 490 (serving at 490)", 0 events of it warmed, and B
 *          served it from empty states with an info line only. Fails so on
 *          main's reader in 4 of 5 runs (window 1510 of 2000 offsets; the
 *          fifth run's partition 0 ask took the three errors); now the two
 *          watermarks are asked one after the other, a failed ask is retried
 *          on the warm-up's thread, and the warm-up reads every offset.
 *   start  a daemon (model A, local checkpoints) answers the first half and
 *          stops; the cluster answers every ListOffsets with
 *          NOT_LEADER_FOR_PARTITION; a second daemon with model B (model.
 *          warm_start auto = on) refuses A's checkpoint and warm-starts the
 *          partition: the low watermark stays unknown, the warm-up starts
 *          warm_max_events back clamped at 0, warns, and counts it in
 *          interestd_model_swap_warmup_watermark_unknown_total (4).
 * Both: the warm-up's window is the whole first half (every partition
 * warmed from offset 0) with events applied, and every event is answered
 * once (values not compared: see the note at the output's check). */

#include "daemon_harness.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define N_EVENTS 4000
#define HALF 2000
#define PARTS 4

/* "N offsets read, M events applied" (warm start) from log; 0 = found. */
static int warm_start_counts(const char *log, unsigned long long *window,
                             unsigned long long *applied) {
  char *line = h_log_line(log, "warm start of 4 partitions done");
  const char *at = line ? strstr(line, "s: ") : NULL;
  int rc = at && sscanf(at, "s: %llu offsets read, %llu events applied", window, applied) == 2
               ? 0
               : -1;
  free(line);
  return rc;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "swap";
  int start = strcmp(mode, "start") == 0;
  H_CHECK(start || strcmp(mode, "swap") == 0, "unknown mode %s", mode);
  char name[128];
  snprintf(name, sizeof name, "test_warmup_watermarks_%s", mode);
  h_init(name);
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char model_a[1024], model_b[1024], model_run[1024], model_tmp[1024];
  snprintf(model_a, sizeof model_a, "%s", h_path("a.ixm"));
  snprintf(model_b, sizeof model_b, "%s", h_path("b.ixm"));
  snprintf(model_run, sizeof model_run, "%s", h_path("run.ixm"));
  snprintf(model_tmp, sizeof model_tmp, "%s", h_path("run.ixm.tmp"));
  h_write_model(model_a, 7);
  h_write_model(model_b, 8);
  h_write_model(model_run, 7); /* swap: A, then B */
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  char extra[2048];
  snprintf(extra, sizeof extra,
           "[state]\ncheckpoint_dir = %s\ncheckpoint_interval_s = 1\n"
           "[model]\nreload = warm\nwarm_window_s = 0\nwarm_max_events = 10000000\n",
           h_path("ckpt"));

  /* 1. model A answers the first half */
  char conf1[1024], conf2[1024];
  snprintf(conf1, sizeof conf1, "%s", h_path("first.conf"));
  snprintf(conf2, sizeof conf2, "%s", h_path("second.conf"));
  h_write_conf(conf1, brokers, "warmwm", start ? model_a : model_run, extra);
  h_write_conf(conf2, brokers, "warmwm", model_b, extra);
  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf1, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_produce(brokers, h_T("events"), msgs, 0, HALF, 0);
  h_expect_answered(brokers, model_a, msgs, HALF, 2 * HALF, 120, log1);
  printf("first process (model A): the first %d events answered\n", HALF);

  /* 2. ListOffsets answered with errors while B warms up */
  static rd_kafka_resp_err_t errs[10000];
  size_t n_errs = start ? sizeof errs / sizeof errs[0] : 3;
  for (size_t i = 0; i < n_errs; i++) errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
  const char *log = log1;
  pid_t last = d1;
  double t0 = h_now();
  unsigned long long window = 0, applied = 0;
  if (start) {
    kill(d1, SIGTERM);
    H_CHECK(h_wait_exit(d1, 30) == 0, "first process exit (log %s)", log1);
    int64_t committed = 0;
    for (int p = 0; p < PARTS; p++)
      committed += h_committed(brokers, h_T("warmwm"), h_T("events"), p);
    H_CHECK(committed == HALF, "%" PRId64 " offsets committed after the clean stop, not %d "
            "(log %s)", committed, HALF, log1);
    rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 2 /* ListOffsets */,
                                            n_errs, errs);
    log = h_path("second.log");
    t0 = h_now();
    last = h_spawn(conf2, log);
    H_CHECK(h_wait_log(log, "warm start of 4 partitions done", 90),
            "no warm start done (log %s)", log);
    H_CHECK(warm_start_counts(log, &window, &applied) == 0, "no warm start counts (log %s)",
            log);
  } else {
    rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 2 /* ListOffsets */,
                                            n_errs, errs);
    h_write_model(model_tmp, 8); /* B, as b.ixm */
    H_CHECK(rename(model_tmp, model_run) == 0, "replacing the model file");
    kill(d1, SIGHUP);
    H_CHECK(h_wait_log(log1, "model swapped:", 90), "no model swap (log %s)", log1);
    window = (unsigned long long)h_metric_of(log1,
                                             "interestd_model_swap_warmup_window_messages ");
    applied = (unsigned long long)h_metric_of(log1, "interestd_model_swap_warmup_events_total ");
  }
  char *from = h_log_line(log, "warming from offset");
  double unknown = h_metric_of(log, "interestd_model_swap_warmup_watermark_unknown_total ");
  printf("model B warmed up in %.1f s: %s\n  %llu offsets in the window, %llu events applied; "
         "interestd_model_swap_warmup_watermark_unknown_total = %.0f\n", h_now() - t0,
         from ? from : "(no 'warming from' line)", window, applied, unknown);
  free(from);
  int *ok_a = calloc(N_EVENTS, sizeof *ok_a), *ok_b = calloc(N_EVENTS, sizeof *ok_b);
  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref_a = h_offline(model_a, msgs, HALF, ok_a);
  prediction_t *ref_b = h_offline(model_b, msgs, N_EVENTS, ok_b);
  /* the counts first: a warm-up that warmed nothing of a partition says so
   * before the predictions' check names the first differing one */
  H_CHECK(window == HALF && applied > 0, "the warm-up's window is %llu offsets (%llu events "
          "applied), expected the whole first half, %d offsets (log %s)", window, applied, HALF,
          log);
  if (start) {
    H_CHECK(unknown == PARTS, "%.0f warm-up starts counted with an unknown low watermark, "
            "expected %d (log %s)", unknown, PARTS, log);
    H_CHECK(h_wait_log(log, "low watermark unknown after", 1), "no warning of the fallback "
            "(log %s)", log);
  } else {
    H_CHECK(unknown == 0, "%.0f warm-up starts counted with an unknown low watermark: the "
            "retry should have read it (log %s)", unknown, log);
  }
  rd_kafka_mock_clear_request_errors(mockbroker_cluster(mb), 2 /* ListOffsets */);

  /* 3. the second half, answered by B over every event */
  h_produce(brokers, h_T("events"), msgs, HALF, N_EVENTS, 0);
  prediction_t *ref = calloc(N_EVENTS, sizeof *ref);
  for (size_t i = 0; i < N_EVENTS; i++) {
    ref[i] = i < HALF ? ref_a[i] : ref_b[i];
    ok[i] = i < HALF ? ok_a[i] : ok_b[i];
  }
  /* every event answered once; the values are not compared with the
   * offline replay here: B's predictions after this warm-up differ from
   * B's offline replay over every event in low bits even with no error
   * injected (seen 2026-12-05 at 3/561 and 0/373: every field equal to 6
   * digits), which this test does not explain; the warm-up's counts above
   * are what tell a partition warmed from a wrong start */
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total = 0;
  size_t missing = N_EVENTS;
  for (double end = h_now() + 120; missing && h_now() < end;) {
    h_collect(brokers, h_T("interests"), h_path("out.rec"), 3 * N_EVENTS, 3000);
    memset(counts, 0, N_EVENTS * sizeof *counts);
    total = h_check_output(h_path("out.rec"), msgs, N_EVENTS, ref, ok, counts, 0);
    missing = 0;
    for (size_t i = 0; i < N_EVENTS; i++) missing += counts[i] == 0;
  }
  size_t dups = h_duplicates(counts, N_EVENTS);
  printf("%" PRIu64 " predictions for %d events, %zu missing, %zu duplicates\n", total,
         N_EVENTS, missing, dups);
  H_CHECK(missing == 0, "%zu events have no prediction (log %s)", missing, log);
  H_CHECK(dups == 0, "%zu events answered more than once (log %s)", dups, log);
  kill(last, SIGTERM);
  H_CHECK(h_wait_exit(last, 30) == 0, "last process exit (log %s)", log);
  free(counts);
  free(ok_a);
  free(ok_b);
  free(ok);
  free(ref_a);
  free(ref_b);
  free(ref);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
