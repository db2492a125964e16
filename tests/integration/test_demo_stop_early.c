/* SIGINT or SIGTERM very early in the demo (interestctl demo, and interestd
 * --demo, which execs it): every exit is clean (status 0, no signal), through
 * the demo daemon's handler ("SIG...: shutting down", "demo done:"), and no
 * signal is lost (the demo runs --loop: a lost one leaves it running).
 *
 * Each round starts the demo on 20,000 events of the bundled data (a file of
 * the test's) and waits until the demo opens that file (inotify: its main()
 * runs, so the dynamic loader's and the constructors' milliseconds before
 * main(), when no program can handle a signal, are not in the window); then
 * sends the signal at a seeded delay: 0 .. 2 ms in two rounds of three
 * (mostly while the demo still loads its data), else 0 .. 300 ms (into the
 * broker's and the daemon's start). Every sixth round, an interestd --demo
 * one, waits instead until the process catches the stop signals
 * (/proc/PID/status, SigCgt: interestd's hold before its exec, or the
 * demo's) and sends the signal at once: now and then before the exec, which
 * interestd passes on pending. Half the rounds run interestd --demo.
 * Without the signals held from the demo's start, the rounds whose signal
 * comes before the demo daemon's handlers die of it. IX_SEED=N repeats a run's delays; IX_STOP_ROUNDS=N sets the
 * rounds. */
#include "daemon_harness.h"

#include <poll.h>
#include <sys/inotify.h>

#define ROUNDS 24

/* The main thread's blocked signals (SigBlk), or 0 when unreadable; with
 * caught, the process's caught ones (SigCgt) into *caught. */
static uint64_t sig_blocked_caught(pid_t pid, uint64_t *caught) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  uint64_t mask = 0, cgt = 0;
  if (f) {
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "SigBlk:", 7)) mask = strtoull(line + 7, NULL, 16);
      else if (!strncmp(line, "SigCgt:", 7)) cgt = strtoull(line + 7, NULL, 16);
    fclose(f);
  }
  if (caught) *caught = cgt;
  return mask;
}

static uint64_t sig_blocked(pid_t pid) { return sig_blocked_caught(pid, NULL); }

static int holds(uint64_t mask) {
  return (mask >> (SIGINT - 1) & 1) && (mask >> (SIGTERM - 1) & 1);
}

/* The executable's name (after the last '/') of pid, into out. */
static void exe_name(pid_t pid, char *out, size_t size) {
  char path[64], target[1024];
  snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
  ssize_t n = readlink(path, target, sizeof target - 1);
  target[n > 0 ? n : 0] = '\0';
  const char *slash = strrchr(target, '/');
  const char *base = slash ? slash + 1 : target;
  size_t len = strnlen(base, size - 1);
  memcpy(out, base, len);
  out[len] = '\0';
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* One round; returns 1 when the signal came while the stop signals were
 * still held (before the demo daemon's handlers), *pre_exec 1 when it came
 * to interestd before its exec. */
static int round_run(int r, int via_interestd, int sig, long delay_us, int at_caught,
                     const char *data, int *pre_exec) {
  const char *bin = getenv("IX_BINARY_DIR");
  H_CHECK(bin, "IX_BINARY_DIR is not set");
  char exe[1024], name[64];
  if (via_interestd) snprintf(exe, sizeof exe, "%s/daemon/interestd", bin);
  else snprintf(exe, sizeof exe, "%s/ctl/interestctl", bin);
  H_CHECK(access(exe, X_OK) == 0, "not built: %s", exe);
  snprintf(name, sizeof name, "demo%d.log", r);
  const char *log = h_path(name);
  const char *argv_d[] = {exe, "--demo", "--loop", "--rate", "2000", "--log-level", "info",
                          "--data", data, NULL};
  const char *argv_c[] = {exe, "demo", "--loop", "--rate", "2000", "--log-level", "info",
                          "--data", data, NULL};
  int in = inotify_init1(IN_CLOEXEC);
  H_CHECK(in >= 0 && inotify_add_watch(in, data, IN_OPEN) >= 0, "inotify on %s", data);
  pid_t pid = h_spawn_argv(via_interestd ? argv_d : argv_c, log, 1);
  double t0 = h_now();
  if (!at_caught) {
    /* the demo's main() opens its data (after its options and configuration)
     * whether or not it holds the signals */
    struct pollfd pf = {.fd = in, .events = POLLIN};
    H_CHECK(poll(&pf, 1, 20000) == 1, "round %d: the demo never opened %s (log %s)", r, data, log);
  }
  close(in);
  /* the program's own code has taken the signals: blocked and caught (held,
   * or the demo daemon's handlers already up when this poll came late).
   * Blocked alone is no sign: the forked child runs the test's code (fork()
   * may block every signal in it for a moment) until its exec, and
   * pthread_create() blocks every signal in its caller while it starts a
   * thread (OpenBLAS's constructor, before main()) */
  char at[64] = "";
  uint64_t mask = 0, caught = 0;
  for (; at_caught;) {
    mask = sig_blocked_caught(pid, &caught);
    exe_name(pid, at, sizeof at);
    int ours = !strcmp(at, "interestctl") || (via_interestd && !strcmp(at, "interestd"));
    if ((ours && holds(caught)) || h_now() > t0 + 20) break;
    sleep_us(50);
  }
  H_CHECK(!at_caught || holds(caught), "round %d: %s never caught SIGINT and SIGTERM within 20 s "
          "(SigCgt %" PRIx64 ", SigBlk %" PRIx64 ", running %s; log %s)", r, exe, caught, mask,
          at, log);
  double held_after = h_now() - t0;
  sleep_us(delay_us);
  int held = holds(sig_blocked(pid));
  exe_name(pid, at, sizeof at);
  *pre_exec = via_interestd && !strcmp(at, "interestd");
  double t1 = h_now();
  kill(pid, sig);
  int status = 0;
  pid_t w = 0;
  while ((w = waitpid(pid, &status, WNOHANG)) == 0 && h_now() < t1 + 30) h_sleep_ms(10);
  if (w == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  for (int i = 0; i < h_n_children; i++)
    if (h_children[i] == pid) h_children[i] = 0;
  const char *what = via_interestd ? "interestd --demo" : "interestctl demo";
  H_CHECK(w != 0, "round %d (%s): still running 30 s after its %s: the signal was lost (log %s)",
          r, what, strsignal(sig), log);
  H_CHECK(!WIFSIGNALED(status), "round %d (%s): killed by signal %d (%s) (log %s)", r, what,
          WTERMSIG(status), strsignal(WTERMSIG(status)), log);
  H_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d (%s): exit status %d (log %s)",
          r, what, WEXITSTATUS(status), log);
  char *text = h_read_file(log), want[64];
  snprintf(want, sizeof want, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  const char *stop = strstr(text, want);
  H_CHECK(stop && strstr(stop, "demo done:"), "round %d (%s): no \"%s\" then \"demo done:\" "
          "(log %s)", r, what, want, log);
  free(text);
  printf("round %d: %s, %s %.3f ms after %s (%.3f s after the start; %s%s), "
         "exit 0 after %.2f s\n", r, what, sig == SIGINT ? "SIGINT" : "SIGTERM",
         delay_us / 1000.0, at_caught ? "it caught the signals" : "it opened its data", held_after, held ? "still blocked" : "the daemon's handlers up",
         *pre_exec ? ", interestd before its exec" : "", h_now() - t1);
  return held;
}

int main(void) {
  h_init("test_demo_stop_early");
  uint64_t seed = h_seed("IX_SEED", "the delays");
  int rounds = getenv("IX_STOP_ROUNDS") ? atoi(getenv("IX_STOP_ROUNDS")) : ROUNDS;
  printf("%d rounds\n", rounds);
  uint64_t s = seed * 2654435761u + 1;
  /* the demo's data: the bundled sample's first 20,000 events, a file of the
   * test's own (its opening is the demo's sign of life) */
  const char *src = getenv("IX_SOURCE_DIR");
  H_CHECK(src, "IX_SOURCE_DIR is not set");
  const char *data = h_path("events.csv");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "gzip -dc '%s/data/taobao_userbehavior_head100k/small_sample.csv.gz' "
           "| head -n 20000 > '%s'", src, data);
  H_CHECK(system(cmd) == 0 && access(data, R_OK) == 0, "cannot write %s", data);
  int held = 0, pre_exec = 0;
  double t_start = h_now();
  for (int r = 0; r < rounds; r++) {
    /* every sixth round (interestd --demo) at once: mostly before its exec */
    long delay_us = (long)(h_rng(&s) % (r % 3 == 2 ? 300000 : 2000));
    if (r % 6 == 1) delay_us = 0;
    int pe = 0;
    held += round_run(r, r % 2, (r / 2) % 2 ? SIGTERM : SIGINT, delay_us, r % 6 == 1, data,
                      &pe);
    pre_exec += pe;
  }
  printf("%d of %d signals came while blocked (before the demo daemon's handlers), %d to interestd "
         "before its exec; all exited 0 (%.1f s)\n", held, rounds, pre_exec, h_now() - t_start);
  H_CHECK(held > 0, "no signal came while the signals were blocked: the rounds prove nothing");
  printf("PASS\n");
  return 0;
}
