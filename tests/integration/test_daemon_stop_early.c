/* SIGTERM while interestd's consumer is still joining its group: every exit
 * is clean (status 0, no signal, no librdkafka assertion in the log).
 *
 * librdkafka 2.0.2 with cooperative-sticky aborts in rd_kafka_destroy when
 * the group's JoinGroup was answered (an assignor chosen) but no SyncGroup
 * assignment was handled yet (librdkafka issue #4312, fixed in 2.3.0). On the
 * mock that window is a few milliseconds for a lone member, so each round
 * widens it deterministically: the SyncGroup response is delayed by
 * SYNC_DELAY_MS (rd_kafka_mock_broker_push_request_error_rtts), and the
 * JoinGroup answer is found in the daemon's log (debug = cgrp). (A second
 * member joining a running one hits the window on its own now and then: its
 * first SyncGroup is answered "Invalid request" and its rejoin waits about
 * session.timeout.ms - 1 s with the assignor chosen; test_daemon_redis's
 * second daemon was stopped in that window. Too rare to test here.)
 *  window: ROUNDS rounds, each on a fresh mock cluster and a fresh daemon;
 *     SIGTERM at a seeded delay after the JoinGroup answer (0 ..
 *     SYNC_DELAY_MS + 500 ms), or, every third round, after the daemon is up
 *     (0 .. 3 s: mostly before the join is answered, the mock waits 3 s).
 *     The daemon takes no partition after the SIGTERM (the assignment that
 *     completes the join is handed back unprocessed) and keeps no handle.
 *  bound: the SyncGroup answer delayed beyond the shutdown budget
 *     (shutdown_timeout_s = 2): the daemon still exits 0 within the budget
 *     and says in its log that it left the consumer handle undestroyed.
 *  start-up: EARLY_ROUNDS rounds, each on a fresh mock cluster and a fresh
 *     daemon, SIGTERM at a seeded delay after the daemon's main() opened its
 *     configuration file (seen with inotify, so the dynamic loader's
 *     milliseconds before main(), when no program can handle a signal, are
 *     not in the window): 0 .. 2 ms in two rounds of three, else 0 .. 50 ms;
 *     mostly before the "metrics on http" line, while daemon_new() creates
 *     the Kafka clients and subscribes. Every sixth round sends SIGHUP first,
 *     then SIGTERM 0 .. 20 ms later. A last, slow round has a changelog topic
 *     (state.changelog_mode = changelog) and every answer of the mock delayed
 *     SLOW_RTT_MS: the SIGTERM (0 .. SLOW_DELAY_MS ms) comes while
 *     daemon_new() waits for the changelog topic's metadata, with the
 *     changelog producer and the state pool's threads already running. Each exits 0 through its SIGTERM
 *     handler ("SIGTERM: shutting down", "stopped:"), takes no partition, and
 *     tells systemd (NOTIFY_SOCKET, a socket of the test's) nothing but
 *     STOPPING=1: no READY=1 (the SIGHUP's reload neither). Without the
 *     signals held from main()'s start (daemon_hold_signals()), these
 *     rounds die of the signal.
 * IX_SEED=N repeats a run's delays; IX_STOP_ROUNDS=N sets the rounds. */
#include "daemon_harness.h"

#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/un.h>

#define PARTS 4
#define SYNC_DELAY_MS 2500
#define ROUNDS 8
#define EARLY_ROUNDS 12
#define SLOW_RTT_MS 100
#define SLOW_DELAY_MS 300

static const char *const JOINED = "JoinGroup response: GenerationId";
static const char *const PARKED = "left undestroyed";

/* Waits for pid (up to timeout_s); fails the test unless it exited 0. */
static void expect_clean_exit(pid_t pid, double timeout_s, const char *log, const char *what) {
  double end = h_now() + timeout_s;
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 && h_now() < end) h_sleep_ms(10);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  for (int i = 0; i < h_n_children; i++)
    if (h_children[i] == pid) h_children[i] = 0;
  char *text = h_read_file(log);
  int asserted = strstr(text, "Assertion") != NULL;
  free(text);
  H_CHECK(r != 0, "%s: no exit within %.0f s (log %s)", what, timeout_s, log);
  H_CHECK(!WIFSIGNALED(status), "%s: killed by signal %d (%s)%s (log %s)", what,
          WTERMSIG(status), strsignal(WTERMSIG(status)),
          WCOREDUMP(status) ? ", core dumped" : "", log);
  H_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit status %d (log %s)", what,
          WEXITSTATUS(status), log);
  H_CHECK(!asserted, "%s: an assertion in the log %s", what, log);
}

/* A fresh cluster whose next SyncGroup response waits delay_ms; a daemon on
 * it, up (signals handled). Returns its pid; *mb the cluster. */
static pid_t start_round(int round, int delay_ms, const char *extra, mockbroker_t **mb,
                         const char **log) {
  *mb = h_mockbroker(PARTS);
  rd_kafka_mock_cluster_t *mc = mockbroker_cluster(*mb);
  H_CHECK(rd_kafka_mock_broker_push_request_error_rtts(mc, 1, 14 /* SyncGroup */, 1,
                                                       RD_KAFKA_RESP_ERR_NO_ERROR,
                                                       delay_ms) == 0,
          "delaying SyncGroup");
  char name[64], conf_extra[512];
  snprintf(name, sizeof name, "round%d.conf", round);
  const char *conf = h_path(name);
  snprintf(conf_extra, sizeof conf_extra,
           "[kafka.consumer]\ndebug = cgrp\n[log]\nlevel = debug\n%s", extra);
  h_write_conf(conf, mockbroker_bootstraps(*mb), "early", h_path("model.ixm"), conf_extra);
  snprintf(name, sizeof name, "round%d.log", round);
  *log = h_path(name);
  pid_t pid = h_spawn(conf, *log);
  H_CHECK(h_wait_log(*log, "metrics on http", 30), "round %d: the daemon did not start (log %s)",
          round, *log);
  return pid;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* One start-up round: a signal (SIGHUP then SIGTERM with hup) delay_us after
 * the daemon opened its configuration. Returns 1 when the SIGTERM came before
 * the "metrics on http" line. */
static int early_round(int r, long delay_us, int hup, int slow, uint64_t *s) {
  mockbroker_t *mb = h_mockbroker(PARTS);
  char err[512];
  if (slow)
    H_CHECK(mockbroker_create_topic(mb, "early-interestd-state", PARTS, err, sizeof err) == 0,
            "%s", err);
  if (slow)
    H_CHECK(rd_kafka_mock_broker_set_rtt(mockbroker_cluster(mb), 1, SLOW_RTT_MS) == 0,
            "delaying the broker's answers");
  char name[64];
  snprintf(name, sizeof name, "early%d.conf", r);
  const char *conf = h_path(name);
  h_write_conf(conf, mockbroker_bootstraps(mb), "early", h_path("model.ixm"),
               slow ? "[state]\nchangelog_mode = changelog\n" : "");
  snprintf(name, sizeof name, "early%d.log", r);
  const char *log = h_path(name);
  snprintf(name, sizeof name, "early%d.sock", r);
  const char *sock = h_path(name);
  int in = inotify_init1(IN_CLOEXEC);
  H_CHECK(in >= 0 && inotify_add_watch(in, conf, IN_OPEN) >= 0, "inotify on %s", conf);
  int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  H_CHECK(ns >= 0 && bind(ns, (struct sockaddr *)&sa, sizeof sa) == 0, "binding %s", sock);
  setenv("NOTIFY_SOCKET", sock, 1);
  pid_t pid = h_spawn(conf, log);
  unsetenv("NOTIFY_SOCKET");
  struct pollfd pf = {.fd = in, .events = POLLIN};
  H_CHECK(poll(&pf, 1, 20000) == 1, "start-up round %d: the daemon never opened %s", r, conf);
  sleep_us(delay_us);
  long hup_gap_us = 0;
  if (hup) {
    kill(pid, SIGHUP);
    hup_gap_us = (long)(h_rng(s) % 20000);
    sleep_us(hup_gap_us);
  }
  char *text = h_read_file(log);
  int before_up = strstr(text, "metrics on http") == NULL;
  free(text);
  double t0 = h_now();
  kill(pid, SIGTERM);
  if (slow) rd_kafka_mock_broker_set_rtt(mockbroker_cluster(mb), 1, 0);
  char what[64];
  snprintf(what, sizeof what, "start-up round %d", r);
  expect_clean_exit(pid, 20, log, what);
  text = h_read_file(log);
  const char *stop = strstr(text, "SIGTERM: shutting down");
  H_CHECK(stop && strstr(stop, "stopped:"), "%s: no SIGTERM handled, no 'stopped:' (log %s)",
          what, log);
  H_CHECK(!strstr(text, "assigned partitions ["), "%s: the daemon took partitions (log %s)",
          what, log);
  H_CHECK(!strstr(text, PARKED), "%s: consumer handle left undestroyed (log %s)", what, log);
  if (hup)
    H_CHECK(strstr(text, "SIGHUP: reloading"), "%s: the SIGHUP was not handled (log %s)", what,
            log);
  free(text);
  char msg[512], seen[1024] = "";
  ssize_t n;
  while ((n = recv(ns, msg, sizeof msg - 1, 0)) > 0) {
    msg[n] = '\0';
    for (char *c = msg; *c; c++)
      if (*c == '\n') *c = ' ';
    H_CHECK(!strstr(msg, "READY=1") && !strstr(msg, "RELOADING=1"),
            "%s: told systemd '%s' though it never took a partition (log %s)", what, msg, log);
    if (strlen(seen) + strlen(msg) + 3 < sizeof seen) {
      if (*seen) strcat(seen, ", ");
      strcat(seen, msg);
    }
  }
  H_CHECK(strstr(seen, "STOPPING=1"), "%s: no STOPPING=1 on NOTIFY_SOCKET (saw '%s')", what, seen);
  close(ns);
  close(in);
  printf("start-up round %d%s: %sSIGTERM %.3f ms after the configuration was opened (%s), "
         "exit 0 after %.2f s; systemd heard: %s\n", r, slow ? " (slow)" : "",
         hup ? "SIGHUP, " : "",
         (delay_us + hup_gap_us) / 1000.0,
         before_up ? "before the metrics line" : "after the metrics line", h_now() - t0, seen);
  mockbroker_destroy(mb);
  return before_up;
}

int main(void) {
  h_init("test_daemon_stop_early");
  h_write_model(h_path("model.ixm"), 3);
  uint64_t seed = h_seed("IX_SEED", "the delays");
  int rounds = getenv("IX_STOP_ROUNDS") ? atoi(getenv("IX_STOP_ROUNDS")) : ROUNDS;
  printf("%d rounds\n", rounds);
  uint64_t s = seed * 2654435761u + 1;
  double t_start = h_now();
  int early = 0;
  for (int r = 0; r < EARLY_ROUNDS; r++) {
    long delay_us = (long)(h_rng(&s) % (r % 3 == 2 ? 50000 : 2000));
    early += early_round(r, delay_us, r % 6 == 5, 0, &s);
  }
  early += early_round(EARLY_ROUNDS, (long)(h_rng(&s) % (SLOW_DELAY_MS * 1000)), 0, 1, &s);
  printf("start-up: %d of %d signals came before the metrics line; all exited 0 (%.1f s)\n",
         early, EARLY_ROUNDS + 1, h_now() - t_start);
  H_CHECK(early > 0, "no SIGTERM came before the metrics line: the start-up rounds prove nothing");

  int in_window = 0;
  t_start = h_now();
  for (int r = 0; r < rounds; r++) {
    mockbroker_t *mb;
    const char *log;
    pid_t pid = start_round(r, SYNC_DELAY_MS, "", &mb, &log);
    int after_join = r % 3 != 2;
    int delay_ms;
    if (after_join) {
      H_CHECK(h_wait_log(log, JOINED, 20), "round %d: no JoinGroup answer (log %s)", r, log);
      delay_ms = (int)(h_rng(&s) % (SYNC_DELAY_MS + 500));
    } else {
      delay_ms = (int)(h_rng(&s) % 3000);
    }
    h_sleep_ms(delay_ms);
    char *text = h_read_file(log);
    int joined = strstr(text, JOINED) != NULL;
    int assigned = strstr(text, "assigned partitions [") != NULL;
    free(text);
    in_window += joined && !assigned;
    double t0 = h_now();
    kill(pid, SIGTERM);
    char what[64];
    snprintf(what, sizeof what, "round %d", r);
    expect_clean_exit(pid, 20, log, what);
    /* the daemon neither took partitions after the SIGTERM (no restore while
     * it shuts down) nor gave up on the assignment within its budget */
    text = h_read_file(log);
    const char *stop = strstr(text, "SIGTERM: shutting down");
    H_CHECK(stop && !strstr(stop, "assigned partitions ["),
            "round %d: the daemon took partitions while shutting down (log %s)", r, log);
    H_CHECK(!strstr(text, PARKED), "round %d: consumer handle left undestroyed (log %s)", r, log);
    free(text);
    printf("round %d: SIGTERM %d ms after %s (%s), exit 0 after %.2f s\n", r, delay_ms,
           after_join ? "the JoinGroup answer" : "start-up",
           assigned ? "assigned" : joined ? "joined, not yet assigned" : "not yet joined",
           h_now() - t0);
    mockbroker_destroy(mb);
  }
  printf("window: %d of %d SIGTERMs fell between the JoinGroup answer and the first "
         "assignment; all exited 0 (%.1f s)\n", in_window, rounds, h_now() - t_start);
  H_CHECK(rounds < 3 || in_window > 0, "no SIGTERM fell into the window: the test proves nothing");

  /* bound: the assignment never comes within the shutdown budget */
  mockbroker_t *mb;
  const char *log;
  pid_t pid = start_round(rounds, 30000, "[daemon]\nshutdown_timeout_s = 2\n", &mb, &log);
  H_CHECK(h_wait_log(log, JOINED, 20), "bound: no JoinGroup answer (log %s)", log);
  h_sleep_ms(200);
  double t0 = h_now();
  kill(pid, SIGTERM);
  expect_clean_exit(pid, 20, log, "bound");
  double took = h_now() - t0;
  printf("bound: SIGTERM 200 ms after the JoinGroup answer, SyncGroup delayed 30 s: exit 0 "
         "after %.2f s\n", took);
  H_CHECK(took < 8.0, "bound: exit took %.1f s (shutdown_timeout_s = 2)", took);
  H_CHECK(h_wait_log(log, PARKED, 1), "bound: no '%s' line (log %s)", PARKED, log);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
