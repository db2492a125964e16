/* The state store's memory cannot be had (docs/STATE.md, "Slab pool": when
 * memory cannot be had), on the mock cluster: a daemon with
 * state.memory_limit_mb = 64 and state.pretouch_mb = 8 runs with the
 * test-only failpoint IX_TEST_SLAB_FAIL=pretouch,fresh:1 (state/slab_pool.c):
 * the pre-touch cannot map anything, and after the first fresh slab no slab
 * can be populated, as on a host with less memory than the limit allows.
 * The input holds more users than one slab holds (N events of the sample,
 * each user's dealt over SPREAD user ids). Checked: the
 * daemon keeps serving (every event answered, it stops with exit 0 at
 * SIGTERM); the pre-touch's early end is logged; the failed slabs are
 * counted (interestd_state_memory_failures_total > 0) and logged ("slabs
 * could not be mapped or populated"); the store made room by evicting
 * (interestd_evictions_total{cause="lru"} > 0) and holds one slab's users;
 * interestd_state_memory_chunks_total says the one slab it has was mapped
 * fresh ({from="fresh"} 1, {from="pool"} 0). Predictions are not compared
 * with the offline pipeline: an evicted user starts again from an empty
 * state, by design. */
#include "daemon_harness.h"

#define N 30000
#define PARTS 4
#define SPREAD 32

/* Each user's events dealt round-robin over SPREAD users (user + k *
 * H_REPLAY_ID_STEP, re-keyed and re-partitioned like the importer does):
 * about 8000 users in N events, more than one slab holds (2290 states of
 * this model's 872 bytes), with few events, so the output stays far below
 * the mock's 5 MiB per partition. */
static void spread_users(h_msg_t *m, size_t n) {
  codec_buf_t buf = {0};
  char err[512];
  for (size_t i = 0; i < n; i++) {
    event_t ev;
    H_CHECK(codec_decode_event(m[i].value, m[i].value_len, &ev, err, sizeof err) == 0, "%s", err);
    ev.user_id += (uint64_t)(i % SPREAD) * H_REPLAY_ID_STEP;
    h_msg_set_event(&m[i], &ev, PARTS, &buf);
  }
  codec_buf_free(&buf);
}

int main(void) {
  h_init("test_state_memory_fail");
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  const char *model = h_path("model.ixm");
  h_write_model(model, 17);
  h_msg_t *msgs = h_load_events(N, PARTS);
  spread_users(msgs, N);
  const char *conf = h_path("interestd.conf");
  h_write_conf(conf, brokers, "memfail", model,
               "[state]\nmemory_limit_mb = 64\npretouch_mb = 8\n");
  const char *log = h_path("daemon.log");
  H_CHECK(setenv("IX_TEST_SLAB_FAIL", "pretouch,fresh:1", 1) == 0, "setenv");
  pid_t d = h_spawn(conf, log);
  unsetenv("IX_TEST_SLAB_FAIL");
  H_CHECK(h_wait_log(log, "assigned partitions", 30), "no assignment (log %s)", log);
  h_produce(brokers, "events", msgs, 0, N, 0);

  const char *out = h_path("out.rec");
  int *ok = calloc(N, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N, ok);
  uint32_t *counts = calloc(N, sizeof *counts);
  size_t missing = N;
  uint64_t total = 0;
  double t0 = h_now();
  int exited = 0, status = 0;
  for (double end = h_now() + 240; missing && h_now() < end && !exited;) {
    exited = waitpid(d, &status, WNOHANG) == d; /* it stopped serving: no use waiting */
    h_collect(brokers, "interests", out, 3 * N, 3000);
    memset(counts, 0, N * sizeof *counts);
    total = h_check_output(out, msgs, N, ref, ok, counts, 0);
    missing = 0;
    for (size_t i = 0; i < N; i++) missing += ok[i] && counts[i] == 0;
    printf("%.0f s: %" PRIu64 " predictions, %zu events missing; memory failures %.0f\n",
           h_now() - t0, total, missing,
           h_metric_of(log, "interestd_state_memory_failures_total "));
  }
  printf("%" PRIu64 " predictions for %d events, %zu missing\n", total, N, missing);
  H_CHECK(!exited, "the daemon exited (status %d) while serving (log %s)", status, log);
  H_CHECK(missing == 0, "%zu events have no prediction: the daemon stopped serving (log %s)",
          missing, log);
  H_CHECK(h_wait_log(log, "the pre-touch ended early", 10), "the pre-touch's failure was not "
          "logged (log %s)", log);
  H_CHECK(h_wait_log(log, "slabs could not be mapped or populated", 10), "the slab failures were "
          "not logged (log %s)", log);
  double fails = h_metric_of(log, "interestd_state_memory_failures_total ");
  double lru = h_metric_of(log, "interestd_evictions_total{cause=\"lru\"} ");
  double fresh = h_metric_of(log, "interestd_state_memory_chunks_total{from=\"fresh\"} ");
  double pool = h_metric_of(log, "interestd_state_memory_chunks_total{from=\"pool\"} ");
  double users = h_metric_of(log, "interestd_users_in_state ");
  printf("memory failures %.0f, LRU evictions %.0f, chunks fresh %.0f pool %.0f, users held "
         "%.0f\n", fails, lru, fresh, pool, users);
  H_CHECK(fails > 0, "no slab failure counted: the failpoint was not reached (log %s)", log);
  H_CHECK(lru > 0, "no user evicted to make room (log %s)", log);
  H_CHECK(fresh == 1 && pool == 0, "chunks: %.0f fresh, %.0f from the pool; 1 and 0 expected",
          fresh, pool);
  H_CHECK(users > 0 && users <= 2400, "%.0f users held in one slab", users);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
