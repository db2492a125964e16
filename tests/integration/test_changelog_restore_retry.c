/* A changelog read that fails at the moment of the restore (issue 14: "no
 * cold users on failover"), on the mock cluster. A daemon with
 * changelog_mode = changelog (no local directory) is killed with SIGKILL
 * mid-stream with states in the changelog; before a fresh daemon starts,
 * the cluster is told to answer the next LISTOFFSETS_ERRORS ListOffsets
 * requests (how the restore reader asks the changelog's watermarks) with
 * NOT_LEADER_FOR_PARTITION, as during a leader election. The restore's read
 * fails, more times than its one read in the assignment; the
 * partitions it failed for must not be served cold: they wait (paused, no
 * event applied, no offset committed) and the restore is retried on a
 * timer until the errors are spent. Checked: the read failures are counted
 * (interestd_changelog_restore_failures_total > 0) and logged, the gauge of
 * partitions waiting returns to 0, no partition started cold
 * (interestd_state_restores_total{source="cold"} 0, {source="changelog"}
 * one per partition), and every input event gets a prediction equal to the
 * offline pipeline's (each event applied to its user's state exactly once:
 * a partition served cold would apply the events after the committed
 * offset to empty states, and its predictions would differ).
 * With the argument "both" (test_changelog_restore_retry_both): mode both,
 * a local checkpoint directory kept across the kill; the restore reads the
 * changelog's tail over the local checkpoint and that read fails the same
 * way; no partition cold, each from the changelog over (or instead of) its
 * local checkpoint, or from the local one where it is the newer.
 * With the argument "nomem" (test_changelog_restore_retry_nomem): the
 * changelog reads, but the restoring daemon cannot map its store's slabs
 * (the test-only failpoint IX_TEST_SLAB_FAIL=fresh:0, state/slab_pool.c):
 * its partitions must wait as after a failed read, not start cold (every
 * partition waiting, no partition cold, no prediction and no event
 * applied while the feed goes on); SIGTERM stops it cleanly, and a third
 * daemon with memory restores every partition from the changelog and
 * answers every event as the offline pipeline does. */

#include "daemon_harness.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define N_EVENTS 12000
#define PARTS 4
#define RATE 4000.0
#ifndef LISTOFFSETS_ERRORS
#define LISTOFFSETS_ERRORS 40
#endif

int main(int argc, char **argv) {
  int both = argc > 1 && strcmp(argv[1], "both") == 0;
  int nomem = argc > 1 && strcmp(argv[1], "nomem") == 0;
  h_init(both ? "test_changelog_restore_retry_both"
              : nomem ? "test_changelog_restore_retry_nomem" : "test_changelog_restore_retry");
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "clog-interestd-state", PARTS, err, sizeof err) == 0, "%s",
          err);
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("interestd.conf");
  char extra[1024];
  if (both)
    snprintf(extra, sizeof extra, "[state]\nchangelog_mode = both\ncheckpoint_dir = %s\n"
             "checkpoint_interval_s = 1\n", h_path("ckpt"));
  else
    snprintf(extra, sizeof extra, "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\n");
  h_write_conf(conf, brokers, "clog", model, extra);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);

  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_feed_t f = {.brokers = brokers, .topic = "events", .msgs = msgs,
                .lo = 0, .hi = N_EVENTS, .rate = RATE};
  h_feed_start(&f);
  h_sleep_ms((int)(N_EVENTS / RATE * 1000 / 2)); /* mid-stream */
  double written = h_metric_of(log1, "interestd_changelog_records_written_total ");
  kill(d1, SIGKILL);
  H_CHECK(h_wait_exit(d1, 10) == -2, "first process did not die of SIGKILL");
  printf("first process: SIGKILL mid-stream after %.0f changelog records acknowledged\n",
         written);
  H_CHECK(written > 0, "no changelog record was written before the kill (log %s)", log1);

  if (nomem) {
    /* a daemon that cannot map a slab: its restores cannot hold the states */
    const char *logm = h_path("nomem.log");
    H_CHECK(setenv("IX_TEST_SLAB_FAIL", "fresh:0", 1) == 0, "setenv");
    pid_t dm = h_spawn(conf, logm);
    unsetenv("IX_TEST_SLAB_FAIL");
    H_CHECK(h_wait_log(logm, "assigned partitions", 60), "no assignment (log %s)", logm);
    double waiting = 0;
    for (double end = h_now() + 30; h_now() < end && waiting < PARTS; h_sleep_ms(200))
      waiting = h_metric_of(logm, "interestd_changelog_partitions_waiting ");
    h_sleep_ms(2000); /* retries fail meanwhile; the feed goes on */
    waiting = h_metric_of(logm, "interestd_changelog_partitions_waiting ");
    double fails = h_metric_of(logm, "interestd_changelog_restore_failures_total ");
    double cold = h_metric_of(logm, "interestd_state_restores_total{source=\"cold\"} ");
    double applied = h_metric_of(logm, "interestd_events_processed_total ");
    double produced = h_metric_of(logm, "interestd_predictions_produced_total ");
    printf("without memory: partitions waiting %.0f, restore failures %.0f, cold %.0f, events "
           "applied %.0f, predictions %.0f\n", waiting, fails, cold, applied, produced);
    H_CHECK(h_wait_log(logm, "out of memory", 1), "the restore did not fail for memory: the "
            "test did not exercise it (log %s)", logm);
    H_CHECK(waiting == PARTS, "%.0f of %d partitions wait (log %s)", waiting, PARTS, logm);
    H_CHECK(fails >= PARTS, "%.0f restore failures counted (log %s)", fails, logm);
    H_CHECK(cold == 0, "a partition started cold (log %s)", logm);
    H_CHECK(applied == 0 && produced == 0, "a waiting partition was served: %.0f events "
            "applied, %.0f predictions (log %s)", applied, produced, logm);
    kill(dm, SIGTERM);
    H_CHECK(h_wait_exit(dm, 30) == 0, "the daemon without memory did not stop cleanly (log %s)",
            logm);
  } else {
    /* the changelog's partitions lose their leader for a while */
    /* the _array form: the variadic one reads one error code per count */
    rd_kafka_resp_err_t errs[LISTOFFSETS_ERRORS];
    for (size_t i = 0; i < LISTOFFSETS_ERRORS; i++)
      errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
    rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 2 /* ListOffsets */,
                                            LISTOFFSETS_ERRORS, errs);
  }
  const char *log2 = h_path("second.log");
  pid_t d2 = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 60), "no assignment (log %s)", log2);
  h_feed_join(&f);

  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, "interests", h_path("out.rec"), msgs, N_EVENTS, ref,
                                  ok, 3 * N_EVENTS, 120, counts, &total);
  printf("after the restart: %" PRIu64 " predictions for %d events, %zu missing, %zu "
         "duplicates\n", total, N_EVENTS, missing, h_duplicates(counts, N_EVENTS));
  double fails = h_metric_of(log2, "interestd_changelog_restore_failures_total ");
  double waiting = h_metric_of(log2, "interestd_changelog_partitions_waiting ");
  double cold = h_metric_of(log2, "interestd_state_restores_total{source=\"cold\"} ");
  double from_cl = h_metric_of(log2, "interestd_state_restores_total{source=\"changelog\"} ");
  double from_tail = h_metric_of(log2, "interestd_state_restores_total{source=\"local+changelog\"} ");
  double from_local = h_metric_of(log2, "interestd_state_restores_total{source=\"local\"} ");
  printf("second process: changelog restore failures %.0f, partitions waiting %.0f; partitions "
         "from the changelog %.0f, local+changelog %.0f, local %.0f, cold %.0f\n", fails, waiting,
         from_cl, from_tail, from_local, cold);
  H_CHECK(missing == 0, "%zu events have no prediction (logs %s %s)", missing, log1, log2);
  printf("every prediction equals the offline pipeline's: each event applied once to state\n");
  if (!nomem) {
    H_CHECK(h_wait_log(log2, "changelog not restored", 1), "the injected errors never failed a "
            "restore: the test did not exercise the failure (log %s)", log2);
    H_CHECK(fails > 0, "no restore failure counted (log %s)", log2);
    /* past the assignment's read: a partition waited and was served later */
    H_CHECK(h_wait_log(log2, "the partition waits for its states", 1), "no partition waited: "
            "the errors were spent within the assignment's read (log %s)", log2);
    H_CHECK(h_wait_log(log2, both ? "restored after waiting (states from" :
                       "restored after waiting (states from changelog)", 1),
            "no partition was restored from the changelog after waiting (log %s)", log2);
  }
  H_CHECK(waiting == 0, "%.0f partitions still wait for their state (log %s)", waiting, log2);
  H_CHECK(cold == 0, "a partition started cold (log %s)", log2);
  if (both)
    H_CHECK(from_cl + from_tail + from_local == PARTS, "%.0f of %d partitions restored (log %s)",
            from_cl + from_tail + from_local, PARTS, log2);
  else
    H_CHECK(from_cl == PARTS, "%.0f of %d partitions came from the changelog (log %s)", from_cl,
            PARTS, log2);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 30) == 0, "second process exit (log %s)", log2);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
