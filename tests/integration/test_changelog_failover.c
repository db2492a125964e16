/* State that follows its partition through the changelog topic (issue 14),
 * on the mock cluster. A daemon with changelog_mode = changelog (no local
 * checkpoint directory at all) is killed with SIGKILL mid-stream; a fresh
 * daemon (nothing on disk) restores every partition from the changelog:
 * every input event gets a prediction and every prediction equals the
 * offline pipeline's (each event applied to its user's state exactly once),
 * no partition starts cold (interestd_state_restores_total{source="cold"}
 * is 0, {source="changelog"} counts every partition). A changelog topic with
 * another partition count than the input is refused with a clear message. */
#include <pthread.h>

#include "daemon_harness.h"

#ifndef N_EVENTS
#define N_EVENTS 20000
#endif
#define PARTS 4
#define RATE 4000.0

typedef struct {
  const char *brokers;
  h_msg_t *msgs;
} feed_t;

static void *feeder(void *arg) {
  feed_t *f = arg;
  h_produce(f->brokers, "events", f->msgs, 0, N_EVENTS, RATE);
  return NULL;
}

/* the value of one metric series line "name{labels} value" */
static double metric(const char *page, const char *series) {
  char line[256];
  snprintf(line, sizeof line, "\n%s", series); /* a sample, not its # HELP line */
  const char *p = page ? strstr(page, line) : NULL;
  return p ? atof(p + strlen(line)) : -1;
}

static void refuses_wrong_partition_count(mockbroker_t *mb, const char *brokers,
                                          const char *model) {
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "wrong-interestd-state", PARTS + 1, err, sizeof err) == 0,
          "%s", err);
  const char *conf = h_path("wrong.conf");
  h_write_conf(conf, brokers, "wrong", model, "[state]\nchangelog_mode = changelog\n");
  const char *log = h_path("wrong.log");
  pid_t d = h_spawn(conf, log);
  int st = h_wait_exit(d, 30);
  H_CHECK(st != 0 && st != -1, "a changelog with %d partitions for %d input partitions was "
          "not refused (exit %d, log %s)", PARTS + 1, PARTS, st, log);
  H_CHECK(h_wait_log(log, "has 5 partitions but input topic 'events' has 4", 1),
          "no clear message (log %s)", log);
  printf("a changelog topic with %d partitions for %d input partitions: refused (exit %d)\n",
         PARTS + 1, PARTS, st);
}

int main(void) {
  h_init("test_changelog_failover");
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "clog-interestd-state", PARTS, err, sizeof err) == 0, "%s",
          err);
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  refuses_wrong_partition_count(mb, brokers, model);

  const char *conf = h_path("interestd.conf");
  h_write_conf(conf, brokers, "clog", model,
               "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\n[log]\nlevel = debug\n");
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);

  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  feed_t f = {brokers, msgs};
  pthread_t th;
  H_CHECK(pthread_create(&th, NULL, feeder, &f) == 0, "thread");
  h_sleep_ms((int)(N_EVENTS / RATE * 1000 / 2)); /* mid-stream */
  int port1 = h_metrics_port(log1);
  char *page1 = port1 ? h_http_get(port1, "/metrics") : NULL;
  double written = metric(page1, "interestd_changelog_records_written_total ");
  free(page1);
  kill(d1, SIGKILL);
  H_CHECK(h_wait_exit(d1, 10) == -2, "first process did not die of SIGKILL");
  printf("first process: SIGKILL mid-stream after %.0f changelog records acknowledged\n",
         written);
  H_CHECK(written > 0, "no changelog record was written before the kill (log %s)", log1);

  const char *log2 = h_path("second.log");
  pid_t d2 = h_spawn(conf, log2);
  pthread_join(th, NULL);

  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = NULL;
  uint64_t total = 0;
  size_t missing = N_EVENTS;
  double end = h_now() + 90;
  while (missing && h_now() < end) {
    const char *out = h_path("out.rec");
    h_collect(brokers, "interests", out, 3 * N_EVENTS, 3000);
    free(counts);
    counts = calloc(N_EVENTS, sizeof *counts);
    total = h_check_output(out, msgs, N_EVENTS, ref, ok, counts, 1);
    missing = 0;
    for (size_t i = 0; i < N_EVENTS; i++) missing += counts[i] == 0;
  }
  size_t dups = 0;
  for (size_t i = 0; i < N_EVENTS; i++) dups += counts[i] > 1 ? counts[i] - 1 : 0;
  printf("after the failover: %" PRIu64 " predictions for %d events, %zu missing, %zu "
         "duplicates\n", total, N_EVENTS, missing, dups);
  H_CHECK(missing == 0, "%zu events have no prediction (logs %s %s)", missing, log1, log2);
  printf("every prediction equals the offline pipeline's: each event applied once to state\n");

  int port2 = h_metrics_port(log2);
  H_CHECK(port2 > 0, "no metrics port in %s", log2);
  char *page = h_http_get(port2, "/metrics");
  double cold = metric(page, "interestd_state_restores_total{source=\"cold\"} ");
  double from_cl = metric(page, "interestd_state_restores_total{source=\"changelog\"} ");
  double users = metric(page, "interestd_state_restored_users_total{source=\"changelog\"} ");
  double bytes = metric(page, "interestd_changelog_read_bytes_total ");
  printf("second process: partitions from the changelog %.0f, cold %.0f; %.0f users, %.0f bytes "
         "read\n", from_cl, cold, users, bytes);
  H_CHECK(cold == 0, "a partition started cold (log %s)", log2);
  H_CHECK(from_cl == PARTS, "%.0f of %d partitions came from the changelog (log %s)", from_cl,
          PARTS, log2);
  H_CHECK(users > 0 && bytes > 0, "nothing was restored (log %s)", log2);
  free(page);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 20) == 0, "second process exit (log %s)", log2);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
