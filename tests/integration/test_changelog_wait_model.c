/* A partition that waits for its changelog (docs/STATE.md, "A restore that
 * cannot read") is started, once the read succeeds, as an assignment starts
 * it (daemon.c part_start), on the mock cluster. Each mode: a first daemon
 * (changelog_mode = changelog, model A) answers the first half of the
 * events, writes its changelog and is killed with SIGKILL before its
 * offsets are committed (auto.commit.interval.ms 10 min: the group's
 * committed offset stays behind the changelog's); a second daemon starts
 * while the cluster answers ListOffsets (how the changelog reader asks the
 * watermarks) with NOT_LEADER_FOR_PARTITION, so every partition waits,
 * until the test clears the errors (after the reload in mode reset); then:
 *   store  (default) the same model; once every partition is restored after
 *          waiting, with no new input, the daemon stops: the group's
 *          committed offset of every partition is the restored one (the
 *          changelog's), as after an assignment at that offset. Fails when
 *          nothing stores the restored offset (the committed offset stays
 *          behind: a member without the changelog re-reads that span).
 *   warm   (test_changelog_wait_model_warm) model B with model.reload = warm
 *          (model.warm_start auto = on): the changelog holds model A's states,
 *          so the waiting partition is warm-started under B from the input
 *          (the window covers the whole partition: exact), served from the
 *          changelog's offset; after a clean stop a third daemon (B, no errors)
 *          restores the warmed states from the changelog's new epoch and
 *          answers the second half. Every event answered exactly once: the
 *          first half by A, the second by B over all events (offline
 *          replay). Fails when the waiting partition starts cold from the
 *          committed offset (the first half answered again, by B).
 *   swap   (test_changelog_wait_model_swap) model A with model.reload = warm
 *          and model.warm_start = off; while the partitions wait, the model
 *          file becomes B and SIGHUP swaps it (a warm-up of no partition):
 *          each waiting partition is warm-started under B once its changelog
 *          (A's) is read, whatever model.warm_start says, and answers the
 *          second half: the first half by A, the second by B over all events.
 *          Fails when it starts cold from the committed offset.
 *   eos    (test_changelog_wait_model_eos) the first daemon runs at_least_once
 *          with local checkpoints only (its offsets committed, the changelog
 *          empty); the second runs exactly_once: each waiting partition,
 *          with nothing in the changelog, is rebuilt from the input up to
 *          the committed offset without output (txn_assigned) when it
 *          resumes; every event answered once, equal to offline replay.
 *          Fails when the daemon stops at the assignment (the re-seek asked
 *          of a partition whose cluster is away) or serves it from the
 *          committed offset with empty states.
 *   reset  (test_changelog_wait_model_reset) model A with model.reload =
 *          reset; while the partitions wait, the model file becomes B and
 *          SIGHUP resets the model: the waiting partitions resume at their
 *          changelog's offset with empty states of B (what the reset did to the
 *          served ones) and answer the second half: each event exactly once,
 *          the first half by A, the second by B over the second half only.
 *          Fails when a waiting partition starts cold from the committed
 *          offset (the first half answered again). */

#include "daemon_harness.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define N_EVENTS 8000
#define HALF 4000
#define PARTS 4

static int count_in_log(const char *log, const char *needle) {
  char *s = h_read_file(log);
  int n = 0;
  for (char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
  free(s);
  return n;
}

/* Waits until `needle` occurs `want` times in log; returns the count seen. */
static int wait_count(const char *log, const char *needle, int want, double timeout_s) {
  int n = 0;
  for (double end = h_now() + timeout_s; h_now() < end; h_sleep_ms(100))
    if ((n = count_in_log(log, needle)) >= want) break;
  return n;
}

/* eos: no changelog (local checkpoints in a directory of its own: the
 * changelog holds nothing) and offsets committed every second; txn:
 * kafka.processing_guarantee = exactly_once */
static void write_conf(const char *conf, const char *brokers, const char *model,
                       const char *reload, int eos, int txn, int warm_start_off) {
  char extra[2048], local[1200];
  snprintf(local, sizeof local, "local\ncheckpoint_dir = %s", h_path("first-ckpt"));
  snprintf(extra, sizeof extra,
           "[state]\nchangelog_mode = %s\ncheckpoint_interval_s = %d\n"
           "[model]\nreload = %s\nwarm_window_s = 315360000\nwarm_max_events = 10000000\n%s"
           "[kafka.consumer]\nauto.commit.interval.ms = %d\n%s",
           eos && !txn ? local : "changelog", 1, reload,
           warm_start_off ? "warm_start = off\n" : "",
           eos ? 1000 : 600000,
           txn ? "[kafka]\nprocessing_guarantee = exactly_once\ninstance_id = a\n" : "");
  h_write_conf(conf, brokers, "waitmodel", model, extra);
}

/* The end offset of each partition of msgs[0, n). */
static void ends_of(const h_msg_t *msgs, size_t n, int64_t *end) {
  for (int p = 0; p < PARTS; p++) end[p] = 0;
  for (size_t i = 0; i < n; i++)
    if (msgs[i].offset + 1 > end[msgs[i].partition]) end[msgs[i].partition] = msgs[i].offset + 1;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "store";
  int warm = strcmp(mode, "warm") == 0, reset = strcmp(mode, "reset") == 0;
  int eos = strcmp(mode, "eos") == 0, swap = strcmp(mode, "swap") == 0;
  char name[128];
  snprintf(name, sizeof name, "test_changelog_wait_model_%s", mode);
  h_init(name);
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "waitmodel-interestd-state", PARTS, err, sizeof err) == 0, "%s",
          err);
  char model_a[1024], model_b[1024], model_run[1024], model_tmp[1024];
  snprintf(model_a, sizeof model_a, "%s", h_path("a.ixm"));
  snprintf(model_b, sizeof model_b, "%s", h_path("b.ixm"));
  snprintf(model_run, sizeof model_run, "%s", h_path("run.ixm"));
  snprintf(model_tmp, sizeof model_tmp, "%s", h_path("run.ixm.tmp"));
  h_write_model(model_a, 7);
  h_write_model(model_b, 8);
  h_write_model(model_run, 7); /* the reset mode's model file: A, then B */
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);

  /* 1. model A answers the first half, writes its changelog, dies uncommitted */
  char conf1[1024];
  snprintf(conf1, sizeof conf1, "%s", h_path("first.conf"));
  write_conf(conf1, brokers, model_a, "warm", eos, 0, 0);
  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf1, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_sleep_ms(3000); /* past the consumer's prompt commits after an assignment */
  h_produce(brokers, h_T("events"), msgs, 0, HALF, 0);
  h_expect_answered(brokers, model_a, msgs, HALF, 2 * HALF, 120, log1);
  h_sleep_ms(4000); /* changelog checkpoints (every 1 s) complete at the half's end; eos:
                     * the offsets are committed (every 1 s) */
  double written = h_metric_of(log1, "interestd_changelog_records_written_total ");
  kill(d1, SIGKILL);
  H_CHECK(h_wait_exit(d1, 10) == -2, "first process did not die of SIGKILL");
  int64_t end_half[PARTS], end_all[PARTS];
  ends_of(msgs, HALF, end_half);
  int behind = 0;
  for (int p = 0; p < PARTS; p++) {
    int64_t c = h_committed(brokers, h_T("waitmodel"), h_T("events"), p);
    printf("partition %d: end of the first half %" PRId64 ", committed %" PRId64 "\n", p,
           end_half[p], c);
    behind += c < end_half[p];
    if (eos)
      H_CHECK(c == end_half[p], "partition %d: committed %" PRId64 " before the kill, not the "
              "half's end %" PRId64 " (log %s)", p, c, end_half[p], log1);
  }
  printf("first process (model A): SIGKILL after %.0f changelog records; %d partitions' "
         "committed offsets behind the changelog\n", written, behind);
  if (eos) {
    H_CHECK(written <= 0, "the changelog was written: the test wants it without a completion "
            "(log %s)", log1);
    printf("the first process ran at_least_once with its offsets committed and local "
           "checkpoints only; the second runs exactly_once with the changelog (empty)\n");
  } else {
    H_CHECK(written > 0, "no changelog record written (log %s)", log1);
    H_CHECK(behind > 0, "every committed offset caught up before the kill: the test does not "
            "tell a stored restored offset from a processed one (log %s)", log1);
  }

  /* 2. the second daemon's changelog reads fail: its partitions wait */
  static rd_kafka_resp_err_t errs[10000];
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
    errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
  rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 2 /* ListOffsets */,
                                          sizeof errs / sizeof errs[0], errs);
  char conf2[1024];
  snprintf(conf2, sizeof conf2, "%s", h_path("second.conf"));
  write_conf(conf2, brokers, warm ? model_b : reset || swap ? model_run : model_a,
             reset ? "reset" : "warm", eos, eos, swap);
  const char *log2 = h_path("second.log");
  double t0 = h_now();
  pid_t d2 = h_spawn(conf2, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 60), "no assignment (log %s)", log2);
  int waited = wait_count(log2, "the partition waits for its states", PARTS, 60);
  H_CHECK(waited == PARTS, "%d of %d partitions waited (log %s)", waited, PARTS, log2);
  if (reset || swap) {
    double waiting = h_metric_of(log2, "interestd_changelog_partitions_waiting ");
    h_write_model(model_tmp, 8); /* B, as b.ixm */
    H_CHECK(rename(model_tmp, model_run) == 0, "replacing the model file");
    kill(d2, SIGHUP);
    H_CHECK(h_wait_log(log2, reset ? "reloaded: model" : "model swapped:", 60),
            "no model %s (log %s)", reset ? "reset" : "swap", log2);
    double still = h_metric_of(log2, "interestd_changelog_partitions_waiting ");
    printf("model %s to B with %.0f partitions waiting (%.0f after it)\n",
           reset ? "reset" : "swapped (warm)", waiting, still);
    H_CHECK(waiting == PARTS && still == PARTS, "%.0f and %.0f of %d partitions waited through "
            "the %s (log %s)", waiting, still, PARTS, reset ? "reset" : "swap", log2);
  }
  /* the changelog's leaders are back: the retries read it */
  rd_kafka_mock_clear_request_errors(mockbroker_cluster(mb), 2 /* ListOffsets */);
  int restored = wait_count(log2, "restored after waiting", waited, 180);
  printf("second process: %d partitions waited, %d restored after waiting within %.1f s; "
         "restore failures %.0f\n", waited, restored, h_now() - t0,
         h_metric_of(log2, "interestd_changelog_restore_failures_total "));
  H_CHECK(restored == waited, "%d of %d waiting partitions restored (log %s)", restored, waited,
          log2);

  int *ok_a = calloc(N_EVENTS, sizeof *ok_a), *ok_b = calloc(N_EVENTS, sizeof *ok_b);
  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = NULL;
  const char *last_log = log2;
  pid_t last = d2;
  if (!warm && !reset && !eos && !swap) {
    /* store: no new input; the clean stop commits what was stored */
    kill(d2, SIGTERM);
    H_CHECK(h_wait_exit(d2, 30) == 0, "second process exit (log %s)", log2);
    int bad = 0;
    for (int p = 0; p < PARTS; p++) {
      int64_t c = h_committed(brokers, h_T("waitmodel"), h_T("events"), p);
      printf("partition %d: committed %" PRId64 " after the restore (changelog at %" PRId64 ")\n",
             p, c, end_half[p]);
      bad += c != end_half[p];
    }
    H_CHECK(bad == 0, "%d partitions' committed offsets are not the restored ones (log %s)", bad,
            log2);
    printf("every restored offset was stored and committed with no new input\n");
    goto done;
  }
  if (warm) {
    /* the warmed states reach the changelog (a new epoch of B) at the stop;
     * a third daemon restores them and answers the second half */
    kill(d2, SIGTERM);
    H_CHECK(h_wait_exit(d2, 30) == 0, "second process exit (log %s)", log2);
    for (int p = 0; p < PARTS; p++) {
      int64_t c = h_committed(brokers, h_T("waitmodel"), h_T("events"), p);
      H_CHECK(c == end_half[p], "partition %d: committed %" PRId64 ", the warm start resumed at "
              "%" PRId64 " (log %s)", p, c, end_half[p], log2);
    }
    const char *log3 = h_path("third.log");
    last = h_spawn(conf2, log3);
    last_log = log3;
    H_CHECK(h_wait_log(log3, "assigned partitions", 60), "no assignment (log %s)", log3);
    double from_cl = h_metric_of(log3, "interestd_state_restores_total{source=\"changelog\"} ");
    H_CHECK(from_cl == PARTS, "%.0f of %d partitions restored from the changelog's epoch of the "
            "new model (log %s)", from_cl, PARTS, log3);
  }
  h_produce(brokers, h_T("events"), msgs, HALF, N_EVENTS, 0);
  ends_of(msgs, N_EVENTS, end_all);
  /* the reference: A over the first half; B over every event (warm: the
   * warm-up read the whole partition) or over the second half only (reset) */
  prediction_t *ref_a = h_offline(model_a, msgs, HALF, ok_a);
  prediction_t *ref_b = eos  ? h_offline(model_a, msgs, N_EVENTS, ok_b)
                       : warm || swap ? h_offline(model_b, msgs, N_EVENTS, ok_b)
                             : h_offline(model_b, msgs + HALF, N_EVENTS - HALF, ok_b + HALF);
  if (reset) { /* h_offline indexes from its first message */
    prediction_t *grown = realloc(ref_b, N_EVENTS * sizeof *ref_b);
    H_CHECK(grown, "out of memory");
    ref_b = grown;
    memmove(ref_b + HALF, ref_b, (N_EVENTS - HALF) * sizeof *ref_b);
  }
  ref = calloc(N_EVENTS, sizeof *ref);
  for (size_t i = 0; i < N_EVENTS; i++) {
    ref[i] = i < HALF ? ref_a[i] : ref_b[i];
    ok[i] = i < HALF ? ok_a[i] : ok_b[i];
  }
  free(ref_a);
  free(ref_b);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, h_T("interests"), h_path("out.rec"), msgs, N_EVENTS,
                                  ref, ok, 3 * N_EVENTS, 120, counts, &total);
  size_t dups = h_duplicates(counts, N_EVENTS);
  printf("%" PRIu64 " predictions for %d events, %zu missing, %zu duplicates; each equal to the "
         "offline pipeline's (first half model A, second half %s)\n", total, N_EVENTS, missing,
         dups, eos ? "model A over every event: rebuilt from the input" :
         warm || swap ? "model B over every event" : "model B from empty states at the reset");
  H_CHECK(missing == 0, "%zu events have no prediction (logs %s %s)", missing, log2, last_log);
  H_CHECK(dups == 0, "%zu events answered more than once (logs %s %s)", dups, log2, last_log);
  free(counts);
  /* the logs say how: after the predictions, so that a wrong start fails on them */
  if (warm)
    H_CHECK(count_in_log(log2, "restored after waiting (states from warm start)") == waited,
            "a waiting partition was not warm-started under the new model (log %s)", log2);
  if (swap)
    H_CHECK(count_in_log(log2, "waits for its states through the model swap") == waited &&
                count_in_log(log2, "restored after waiting (states from warm start)") == waited,
            "the swap did not mark the waiting partitions, or they were not warm-started "
            "(log %s)", log2);
  if (eos)
    H_CHECK(count_in_log(log2, "no checkpoint; rebuilding the states from the input") >= waited,
            "a waiting partition was not rebuilt from the input (log %s)", log2);
  if (reset)
    H_CHECK(count_in_log(log2, "waits for its states through the model reset") == waited,
            "the reset did not mark the waiting partitions (log %s)", log2);
  kill(last, SIGTERM);
  H_CHECK(h_wait_exit(last, 30) == 0, "last process exit (log %s)", last_log);
done:
  free(ok_a);
  free(ok_b);
  free(ok);
  free(ref);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
