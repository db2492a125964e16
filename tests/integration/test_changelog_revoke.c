/* A changelog checkpoint at SIGTERM (issue 14), on the mock cluster: a
 * daemon in changelog mode whose periodic changelog checkpoints never come
 * (checkpoint_interval_s = 3600) answers a stream and is stopped with
 * SIGTERM; the revocation at shutdown writes a changelog checkpoint at the
 * consumed offset, so a fresh daemon restores every partition from the
 * changelog (none cold) and resumes there: the events of a second stream
 * are all answered with predictions equal to the offline pipeline's over
 * both streams. Without the checkpoint at revocation the topic holds no
 * completion record and the fresh daemon starts every partition cold.
 * The fresh daemon pre-touches 64 MiB (state.pretouch_mb): its restore
 * takes its slabs from the pool, with the same predictions. */
#include "daemon_harness.h"

#define N1 4000
#define N2 2000
#define N (N1 + N2)
#define PARTS 4

static h_msg_t *msgs;
static const char *brokers, *model;

int main(void) {
  h_init("test_changelog_revoke");
  mockbroker_t *mb = h_mockbroker(PARTS);
  brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "revoke-interestd-state", PARTS, err, sizeof err) == 0,
          "%s", err);
  model = h_path("model.ixm");
  h_write_model(model, 11);
  msgs = h_load_events(N, PARTS);
  const char *extra = "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 3600\n"
                      "[daemon]\nshutdown_timeout_s = 10\n";

  const char *conf1 = h_path("first.conf");
  h_write_conf(conf1, brokers, "revoke", model, extra);
  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf1, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_produce(brokers, "events", msgs, 0, N1, 0);
  h_expect_answered(brokers, model, msgs, N1, 3 * N, 90, log1);
  double periodic = h_metric_of(log1, "interestd_changelog_records_written_total ");
  kill(d1, SIGTERM);
  H_CHECK(h_wait_exit(d1, 30) == 0, "first daemon exit (log %s)", log1);
  H_CHECK(periodic == 0, "%.0f changelog records before SIGTERM (log %s)", periodic, log1);
  printf("first daemon: %d events answered, no changelog record before SIGTERM\n", N1);

  const char *conf2 = h_path("second.conf");
  const char *extra2 = "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 3600\n"
                       "pretouch_mb = 64\n[daemon]\nshutdown_timeout_s = 10\n";
  h_write_conf(conf2, brokers, "revoke", model, extra2);
  const char *log2 = h_path("second.log");
  pid_t d2 = h_spawn(conf2, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  h_produce(brokers, "events", msgs, N1, N, 0);
  h_expect_answered(brokers, model, msgs, N, 3 * N, 90, log2);
  double from_cl = h_metric_of(log2, "interestd_state_restores_total{source=\"changelog\"} ");
  double cold = h_metric_of(log2, "interestd_state_restores_total{source=\"cold\"} ");
  double users = h_metric_of(log2, "interestd_state_restored_users_total{source=\"changelog\"} ");
  printf("second daemon: %.0f partitions from the changelog (%.0f users), %.0f cold; all %d "
         "events answered, every prediction equal to the offline pipeline's\n",
         from_cl, users, cold, N);
  H_CHECK(from_cl == PARTS && cold == 0, "restores: changelog %.0f, cold %.0f (log %s)", from_cl,
          cold, log2);
  double pooled = h_metric_of(log2, "interestd_state_memory_chunks_total{from=\"pool\"} ");
  double fresh = h_metric_of(log2, "interestd_state_memory_chunks_total{from=\"fresh\"} ");
  double held = h_metric_of(log2, "interestd_state_pool_bytes ");
  printf("second daemon: slabs' chunks from the pre-touched pool %.0f, fresh %.0f; the pool "
         "holds %.0f MiB\n", pooled, fresh, held / (1 << 20));
  H_CHECK(pooled >= 1 && h_wait_log(log2, "state.pretouch_mb: 64 MiB populated", 30),
          "no slab from the pre-touched pool, or no pre-touch end logged (log %s)", log2);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 30) == 0, "second daemon exit (log %s)", log2);
  h_free_msgs(msgs, N);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
