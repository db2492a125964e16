/* Tombstones for evicted users (issue 14), on the mock cluster: a daemon in
 * changelog mode with idle_ttl_s = 1 answers a stream, its users all expire,
 * and its changelog checkpoints then write a tombstone per user; it is
 * killed (SIGKILL) and a fresh daemon restores every partition from the
 * changelog with no user (an evicted user does not come back with its old
 * state). Without the tombstones the second daemon restores every user. */
#include "daemon_harness.h"

#define N 3000
#define PARTS 4


int main(void) {
  h_init("test_changelog_evict");
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "evict-interestd-state", PARTS, err, sizeof err) == 0,
          "%s", err);
  const char *model = h_path("model.ixm");
  h_write_model(model, 11);
  h_msg_t *msgs = h_load_events(N, PARTS);

  const char *conf1 = h_path("ttl.conf");
  h_write_conf(conf1, brokers, "evict", model,
               "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\nidle_ttl_s = 1\n");
  const char *log1 = h_path("ttl.log");
  pid_t d1 = h_spawn(conf1, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_produce(brokers, "events", msgs, 0, N, 0);
  /* every event answered (predictions are not compared: users expire mid-stream) */
  const char *out = h_path("out.rec");
  uint64_t got = 0;
  double end = h_now() + 90;
  while (got < N && h_now() < end) got = h_collect(brokers, "interests", out, N, 2000);
  H_CHECK(got >= N, "%" PRIu64 " predictions for %d events (log %s)", got, N, log1);
  double users = -1, ttl = 0;
  end = h_now() + 30;
  while (h_now() < end) {
    users = h_metric_of(log1, "interestd_users_in_state ");
    ttl = h_metric_of(log1, "interestd_evictions_total{cause=\"ttl\"} ");
    if (users == 0 && ttl > 0) break;
    h_sleep_ms(200);
  }
  H_CHECK(users == 0 && ttl > 0, "users in state %.0f, ttl evictions %.0f (log %s)", users, ttl,
          log1);
  /* tombstones: the checkpoint after one that completed past the evictions */
  h_sleep_ms(4000);
  double written = h_metric_of(log1, "interestd_changelog_records_written_total ");
  kill(d1, SIGKILL);
  H_CHECK(h_wait_exit(d1, 10) == -2, "ttl daemon did not die of SIGKILL");
  printf("ttl daemon: %" PRIu64 " predictions, %.0f users expired, %.0f changelog records "
         "acknowledged, then SIGKILL\n", got, ttl, written);

  const char *conf2 = h_path("restore.conf");
  h_write_conf(conf2, brokers, "evict", model,
               "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\n");
  const char *log2 = h_path("restore.log");
  pid_t d2 = h_spawn(conf2, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  double from_cl = -1, restored = -1;
  end = h_now() + 30;
  while (h_now() < end) {
    from_cl = h_metric_of(log2, "interestd_state_restores_total{source=\"changelog\"} ");
    if (from_cl == PARTS) break;
    h_sleep_ms(200);
  }
  restored = h_metric_of(log2, "interestd_state_restored_users_total{source=\"changelog\"} ");
  double held = h_metric_of(log2, "interestd_users_in_state ");
  printf("restore: %.0f partitions from the changelog, %.0f users restored, %.0f held\n",
         from_cl, restored, held);
  H_CHECK(from_cl == PARTS, "%.0f of %d partitions from the changelog (log %s)", from_cl, PARTS,
          log2);
  H_CHECK(restored == 0 && held == 0,
          "%.0f evicted users came back from the changelog, %.0f held (log %s)", restored, held,
          log2);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 20) == 0, "restore daemon exit (log %s)", log2);
  h_free_msgs(msgs, N);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
