/* The changelog writer killed at random points (issue 14), on the mock
 * cluster. A changelog-only daemon (no local directory) runs with the
 * test-only failpoint IX_TEST_CLOG_KILL_AFTER=K: it raises SIGKILL right
 * after its K-th acknowledged changelog record, which lands inside a
 * checkpoint's user records, between a checkpoint's last user record and
 * its completion record, or just after a completion (before the group's
 * commit). K is drawn from a seed (IX_KP_SEED=N repeats a run); each round
 * starts a fresh daemon that restores from what the killed ones left, with
 * a new K; every other round uses IX_TEST_CLOG_KILL_BEFORE_COMPLETE=K
 * instead (killed with a checkpoint's user records all acknowledged and
 * its completion record not sent: the case that needs the per-user
 * offsets; the last such round kills after the first checkpoint's
 * completions, so that something completed survives). A last daemon
 * without the failpoint consumes everything: every input event is
 * answered and every prediction equals the offline pipeline's (each event
 * applied to its user's state exactly once), and no partition of that last
 * daemon starts cold. */

#include "daemon_harness.h"

#define N_EVENTS 8000
#define PARTS 4
#define RATE 1000.0
#define ROUNDS 4

static double metric(const char *page, const char *series) {
  char line[256];
  snprintf(line, sizeof line, "\n%s", series);
  const char *p = page ? strstr(page, line) : NULL;
  return p ? atof(p + strlen(line)) : -1;
}

/* The failpoint's line from a log ("" when it did not fire). */
static void killpoint_line(const char *log, char *out, size_t n) {
  char *s = h_read_file(log);
  const char *p = strstr(s, "IX_TEST_CLOG_KILL_AFTER: SIGKILL after");
  if (!p) p = strstr(s, "IX_TEST_CLOG_KILL_BEFORE_COMPLETE: SIGKILL before");
  out[0] = '\0';
  if (p) {
    size_t k = strcspn(p, "\n");
    snprintf(out, n, "%.*s", (int)k, p);
  }
  free(s);
}

int main(void) {
  h_init("test_changelog_killpoint");
  uint64_t seed = getenv("IX_KP_SEED") ? strtoull(getenv("IX_KP_SEED"), NULL, 10)
                                       : (uint64_t)time(NULL) % 100000;
  printf("seed %" PRIu64 " (IX_KP_SEED=%" PRIu64 " repeats the kill points)\n", seed, seed);
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "kp-interestd-state", PARTS, err, sizeof err) == 0, "%s",
          err);
  char model[512];
  snprintf(model, sizeof model, "%s", h_path("model.ixm"));
  h_write_model(model, 5);
  char conf[512], logpath[512]; /* h_path()'s buffers are reused after 64 calls */
  snprintf(conf, sizeof conf, "%s", h_path("interestd.conf"));
  h_write_conf(conf, brokers, "kp", model,
               "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\n");
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);

  uint64_t s = seed * 2654435761u + 1;
  int fired = 0;
  for (int round = 0; round < ROUNDS; round++) {
    /* one checkpoint of all four partitions writes a few hundred records */
    int before_complete = round % 2;
    const char *var = before_complete ? "IX_TEST_CLOG_KILL_BEFORE_COMPLETE"
                                      : "IX_TEST_CLOG_KILL_AFTER";
    /* a checkpoint writes the users changed in a second (up to a few
     * hundred records over the four partitions): K spans the round's first
     * two or three checkpoints */
    uint64_t k = before_complete ? 1 + h_rng(&s) % 10 : 1 + h_rng(&s) % 500;
    /* completion records are counted over all partitions and not awaited:
     * the last such round kills in a later checkpoint than the first, so
     * the first checkpoint's completions (one per partition, a second
     * earlier) are acknowledged and the last daemon has something to
     * restore from even on a slow (sanitizer) run */
    if (before_complete && round + 2 >= ROUNDS) k = PARTS + 1 + h_rng(&s) % (2 * PARTS);
    char env[32], log[64];
    snprintf(env, sizeof env, "%" PRIu64, k);
    snprintf(log, sizeof log, "round%d.log", round);
    snprintf(logpath, sizeof logpath, "%s", h_path(log));
    setenv(var, env, 1);
    pid_t d = h_spawn(conf, logpath);
    unsetenv(var);
    for (double end = h_now() + 40;
         h_now() < end && h_owned_from_log(logpath) != (1u << PARTS) - 1;)
      h_sleep_ms(100);
    H_CHECK(h_owned_from_log(logpath) == (1u << PARTS) - 1,
            "round %d: the partitions were not assigned (log %s)", round, logpath);
    /* each round streams its own slice of the events while its daemon runs */
    h_feed_t f = {.brokers = brokers, .topic = h_T("events"), .msgs = msgs,
                  .lo = (size_t)round * N_EVENTS / ROUNDS,
                  .hi = (size_t)(round + 1) * N_EVENTS / ROUNDS, .rate = RATE};
    h_feed_start(&f);
    int st = h_wait_exit(d, 12);
    h_feed_join(&f);
    if (st == -1) { /* K not reached (h_wait_exit killed it): the stream moved on */
      printf("round %d: %s=%" PRIu64 " not reached in 12 s; killed by the test\n", round, var,
             k);
      continue;
    }
    char line[300];
    killpoint_line(logpath, line, sizeof line);
    H_CHECK(st == -2 && line[0], "round %d: the daemon exited with %d without its failpoint "
            "(log %s)", round, st, logpath);
    printf("round %d: %s=%" PRIu64 ": %s\n", round, var, k, strchr(line, ' ') + 1);
    fired++;
  }
  H_CHECK(fired > 0, "no round reached its kill point");
  int restored = 0;
  for (int round = 1; round < ROUNDS; round++) {
    char log[64];
    snprintf(log, sizeof log, "round%d.log", round);
    char *lg = h_read_file(h_path(log));
    restored += strstr(lg, "states from changelog") != NULL;
    free(lg);
  }
  printf("%d of %d rounds after the first restored partitions from the changelog\n", restored,
         ROUNDS - 1);

  char logf[512];
  snprintf(logf, sizeof logf, "%s", h_path("final.log"));
  pid_t d = h_spawn(conf, logf);
  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, h_T("interests"), h_path("out.rec"), msgs, N_EVENTS,
                                  ref, ok, 4 * N_EVENTS, 120, counts, &total);
  printf("after %d kills: %" PRIu64 " predictions for %d events, %zu missing\n", fired, total,
         N_EVENTS, missing);
  H_CHECK(missing == 0, "%zu events have no prediction (log %s)", missing, logf);
  printf("every prediction equals the offline pipeline's: each event applied once to state\n");
  int port = h_metrics_port(logf);
  H_CHECK(port > 0, "no metrics port (log %s)", logf);
  double cold = -1, from_cl = -1, skipped = -1;
  for (double end = h_now() + 60; h_now() < end; h_sleep_ms(200)) {
    char *page = h_http_get(port, "/metrics");
    cold = metric(page, "interestd_state_restores_total{source=\"cold\"} ");
    from_cl = metric(page, "interestd_state_restores_total{source=\"changelog\"} ");
    skipped = metric(page, "interestd_state_events_skipped_total ");
    free(page);
    if (cold + from_cl >= PARTS) break;
  }
  printf("last daemon: %.0f partitions from the changelog, %.0f cold, %.0f events skipped as "
         "already applied\n", from_cl, cold, skipped);
  /* cold only where no checkpoint of the partition ever completed */
  char *lg = h_read_file(logf);
  for (char *l = strstr(lg, "states from cold"); l; l = strstr(l + 1, "states from cold")) {
    size_t k = strcspn(l, "\n");
    H_CHECK(memmem(l, k, "newest completion at -1", 23) != NULL,
            "a partition started cold although its changelog held a completion: %.*s", (int)k, l);
  }
  free(lg);
  H_CHECK(from_cl + cold == PARTS && from_cl > 0, "the last daemon's restores: %.0f from the "
          "changelog, %.0f cold (log %s)", from_cl, cold, logf);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "last daemon exit (log %s)", logf);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
