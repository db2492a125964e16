/* SIGTERM in the middle of a stream: interestd finishes in-flight work,
 * checkpoints, commits and exits 0 within its bound; a restarted process
 * resumes from the checkpoint, so no event is lost and every prediction
 * (before and after the restart) equals the offline pipeline's, i.e. every
 * event was applied to its user's state exactly once. Prints how many
 * events were re-processed (duplicate predictions). */

#include "daemon_harness.h"

#define N_EVENTS 12000
#define PARTS 4
#define RATE 4000.0

int main(void) {
  h_init("test_daemon_restart");
  const char *brokers = h_cluster(PARTS);
  const char *model = h_path("model.ixm");
  h_write_model(model, 5);
  char extra[1024];
  snprintf(extra, sizeof extra,
           "[state]\ncheckpoint_dir = %s\ncheckpoint_interval_s = 1\n[daemon]\n"
           "shutdown_timeout_s = 10\n", h_path("ckpt"));
  const char *conf = h_path("interestd.conf");
  h_write_conf(conf, brokers, "restart", model, extra);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);

  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 20), "no assignment (log %s)", log1);
  h_feed_t f = {.brokers = brokers, .topic = h_T("events"), .msgs = msgs,
                .lo = 0, .hi = N_EVENTS, .rate = RATE};
  h_feed_start(&f);
  h_sleep_ms(1500); /* mid-stream: about half of the events are in */
  double t0 = h_now();
  kill(d1, SIGTERM);
  int st = h_wait_exit(d1, 20);
  double took = h_now() - t0;
  printf("first process: SIGTERM mid-stream, exit %d after %.2f s\n", st, took);
  H_CHECK(st == 0, "exit status %d (log %s)", st, log1);
  H_CHECK(took < 12.0, "shutdown took %.1f s (bound: shutdown_timeout_s = 10)", took);
  H_CHECK(h_wait_log(log1, "stopped: consumed", 1), "no final summary");

  const char *log2 = h_path("second.log");
  pid_t d2 = h_spawn(conf, log2);
  h_feed_join(&f);

  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, h_T("interests"), h_path("out.rec"), msgs, N_EVENTS,
                                  ref, ok, 2 * N_EVENTS, 60, counts, &total);
  size_t dups = h_duplicates(counts, N_EVENTS);
  printf("after the restart: %" PRIu64 " predictions for %d events, %zu missing, %zu "
         "re-processed (duplicates)\n", total, N_EVENTS, missing, dups);
  H_CHECK(missing == 0, "%zu events have no prediction (logs %s %s)", missing, log1, log2);
  H_CHECK(h_wait_log(log2, "restored", 1), "the second process restored no checkpoint");
  printf("every prediction equals the offline pipeline's: each event applied once to state\n");
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 20) == 0, "second process exit");
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  h_cluster_destroy();
  printf("PASS\n");
  return 0;
}
