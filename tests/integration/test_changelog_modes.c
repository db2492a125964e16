/* The changelog modes together (issue 14), on the mock cluster: a daemon in
 * local mode leaves a checkpoint directory (SIGTERM); a daemon in mode both
 * restores from it (the changelog is empty, so the local checkpoint is the
 * newer) and must then write every user to the changelog, not only those
 * changed after the restore; it is killed (SIGKILL); a third daemon in
 * changelog mode, with no directory, restores from the topic alone. Every
 * event of the three streams is answered and every prediction equals the
 * offline pipeline's; the second daemon's partitions came from the local
 * checkpoint, the third's from the changelog, none cold. A fourth daemon in
 * mode both with the first two's directory finds a local checkpoint older
 * than the changelog (the third daemon's events are only in the topic): it
 * restores the local one and lays over it only the users the changelog
 * recorded after it (source local+changelog). */
#include "daemon_harness.h"

#define N1 6000
#define N2 3000
#define N3 3000
#define N4 3000
#define N (N1 + N2 + N3 + N4)
#define PARTS 4

static h_msg_t *msgs;
static const char *brokers, *model;

int main(void) {
  h_init("test_changelog_modes");
  mockbroker_t *mb = h_mockbroker(PARTS);
  brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "modes-interestd-state", PARTS, err, sizeof err) == 0, "%s",
          err);
  model = h_path("model.ixm");
  h_write_model(model, 11);
  msgs = h_load_events(N, PARTS);
  char extra[1024];

  /* 1. local only */
  snprintf(extra, sizeof extra, "[state]\nchangelog_mode = local\ncheckpoint_dir = %s\n"
           "checkpoint_interval_s = 1\n[daemon]\nshutdown_timeout_s = 10\n", h_path("ckpt"));
  const char *conf1 = h_path("local.conf");
  h_write_conf(conf1, brokers, "modes", model, extra);
  const char *log1 = h_path("local.log");
  pid_t d1 = h_spawn(conf1, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_produce(brokers, "events", msgs, 0, N1, 0);
  h_expect_answered(brokers, model, msgs, N1, 3 * N, 90, log1);
  kill(d1, SIGTERM);
  H_CHECK(h_wait_exit(d1, 20) == 0, "local daemon exit (log %s)", log1);
  printf("local mode: %d events answered, checkpoint directory left at SIGTERM\n", N1);

  /* 2. both: restores the local checkpoint, then writes every user to the changelog */
  snprintf(extra, sizeof extra, "[state]\nchangelog_mode = both\ncheckpoint_dir = %s\n"
           "checkpoint_interval_s = 1\n[log]\nlevel = debug\n", h_path("ckpt"));
  const char *conf2 = h_path("both.conf");
  h_write_conf(conf2, brokers, "modes", model, extra);
  const char *log2 = h_path("both.log");
  pid_t d2 = h_spawn(conf2, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  h_produce(brokers, "events", msgs, N1, N1 + N2, 0);
  h_expect_answered(brokers, model, msgs, N1 + N2, 3 * N, 90, log2);
  h_sleep_ms(2500); /* a changelog checkpoint after the last event */
  double local2 = h_metric_of(log2, "interestd_state_restores_total{source=\"local\"} ");
  double written = h_metric_of(log2, "interestd_changelog_records_written_total ");
  kill(d2, SIGKILL);
  H_CHECK(h_wait_exit(d2, 10) == -2, "both daemon did not die of SIGKILL");
  printf("mode both: %.0f partitions from the local checkpoint, %.0f changelog records "
         "acknowledged, then SIGKILL\n", local2, written);
  H_CHECK(local2 == PARTS, "%.0f of %d partitions from the local checkpoint (log %s)", local2,
          PARTS, log2);

  /* 3. changelog only, no directory */
  const char *conf3 = h_path("changelog.conf");
  h_write_conf(conf3, brokers, "modes", model,
               "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\n"
               "idle_ttl_s = 120\n");
  const char *log3 = h_path("changelog.log");
  pid_t d3 = h_spawn(conf3, log3);
  H_CHECK(h_wait_log(log3, "assigned partitions", 30), "no assignment (log %s)", log3);
  h_produce(brokers, "events", msgs, N1 + N2, N1 + N2 + N3, 0);
  h_expect_answered(brokers, model, msgs, N1 + N2 + N3, 3 * N, 90, log3);
  double from_cl = h_metric_of(log3, "interestd_state_restores_total{source=\"changelog\"} ");
  double cold = h_metric_of(log3, "interestd_state_restores_total{source=\"cold\"} ");
  /* restored users keep the last-seen time they had (seconds ago): the first
   * sweep (30 s after the start with idle_ttl_s = 120) expires none of them */
  h_sleep_ms(31000);
  double expired = h_metric_of(log3, "interestd_evictions_total{cause=\"ttl\"} ");
  printf("changelog mode with idle_ttl_s = 120, 31 s on: %.0f users expired\n", expired);
  H_CHECK(expired == 0, "%.0f restored users expired at once (log %s)", expired, log3);
  printf("changelog mode: %.0f partitions from the changelog, %.0f cold; all %d events answered, "
         "every prediction equal to the offline pipeline's\n", from_cl, cold, N1 + N2 + N3);
  H_CHECK(from_cl == PARTS && cold == 0, "restores: changelog %.0f, cold %.0f (log %s)", from_cl,
          cold, log3);
  kill(d3, SIGTERM);
  H_CHECK(h_wait_exit(d3, 20) == 0, "changelog daemon exit (log %s)", log3);

  /* 4. both again, on the directory of 1 and 2: its checkpoint is older than the changelog */
  const char *log4 = h_path("both4.log");
  pid_t d4 = h_spawn(conf2, log4);
  H_CHECK(h_wait_log(log4, "assigned partitions", 30), "no assignment (log %s)", log4);
  h_produce(brokers, "events", msgs, N1 + N2 + N3, N, 0);
  h_expect_answered(brokers, model, msgs, N, 3 * N, 90, log4);
  double tail = h_metric_of(log4, "interestd_state_restores_total{source=\"local+changelog\"} ");
  double users = h_metric_of(log4, "interestd_state_restored_users_total{source=\"local+changelog\"} ");
  double bytes = h_metric_of(log4, "interestd_changelog_read_bytes_total ");
  cold = h_metric_of(log4, "interestd_state_restores_total{source=\"cold\"} ");
  char *l4 = h_read_file(log4);
  unsigned long long over = 0, sum = 0;
  for (const char *q = l4; q && (q = strstr(q, " from the changelog over the local")) != NULL; q++) {
    const char *b = q;
    while (b > l4 && b[-1] != '(') b--;
    over = strtoull(b, NULL, 10);
    sum += over;
  }
  free(l4);
  printf("mode both over an older local checkpoint: %.0f partitions from local+changelog (%.0f "
         "users, %llu of them laid over from the changelog; %.0f changelog bytes read), %.0f "
         "cold; all %d events answered, every prediction equal to the offline pipeline's\n",
         tail, users, sum, bytes, cold, N);
  H_CHECK(tail == PARTS && cold == 0, "restores: local+changelog %.0f, cold %.0f (log %s)", tail,
          cold, log4);
  H_CHECK(sum > 0 && sum < users, "%llu of %.0f users from the changelog: expected only those "
          "recorded after the local checkpoint (log %s)", sum, users, log4);
  kill(d4, SIGTERM);
  H_CHECK(h_wait_exit(d4, 20) == 0, "both daemon exit (log %s)", log4);
  h_free_msgs(msgs, N);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
