/* interestd: the streaming daemon's entry point (options, then daemon/).
 * --demo hands over to interestctl demo: the production binary carries no
 * mock broker, importer or demo. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "daemon/config.h"
#include "daemon/daemon.h"


static void usage(FILE *out) {
  fprintf(out,
          "usage: interestd [-c FILE] [--set SECTION.KEY=VALUE]... [--log-level LEVEL]\n"
          "       interestd --check-config [-c FILE] [--set ...] [--print-config]\n"
          "       interestd --demo [OPTIONS]   (runs interestctl demo; see its --help)\n"
          "       interestd --version\n"
          "\n"
          "Consumes clickstream events from Kafka, keeps a per-user LSTM state and\n"
          "publishes each user's short-term interests (docs/DAEMON.md).\n"
          "\n"
          "  -c, --config FILE      INI configuration (default %s when it exists)\n"
          "  -s, --set S.K=V        override one setting, e.g. --set kafka.brokers=k1:9092\n"
          "                         or --set kafka.security.protocol=SASL_SSL (repeatable)\n"
          "  -l, --log-level L      error | warn | info | debug (overrides log.level)\n"
          "      --check-config     validate the configuration and the model, then exit\n"
          "                         (non-zero with the file, line and reason on error)\n"
          "      --print-config     with --check-config: print the effective configuration\n"
          "      --demo             run on an embedded broker with the bundled clickstream\n"
          "                         (interestctl demo, with the other options passed on:\n"
          "                         --rate N, --loop, --data CSV, --events N, --json, --quiet)\n"
          "  -V, --version          print the version\n",
          config_default_path());
}

/* interestd --demo, from main()'s start to the exec: SIGTERM, SIGINT and
 * SIGHUP are blocked in main()'s thread, and the threads that ran before
 * main() (OpenBLAS's pool, nothing blocked) pass each they catch on to it.
 * There they wait, pending; the exec keeps the mask and the pending
 * signals, and interestctl demo holds them on (daemon_hold_signals()) until
 * its daemon's handlers take them: a stop signal at any point after main()
 * stops the demo through its handler. */
static pid_t demo_main_tid;

static void demo_forward_cb(int signum) {
  int saved = errno;
  syscall(SYS_tgkill, getpid(), demo_main_tid, signum);
  errno = saved;
}

static int demo_hold_signals(void) {
  static const int sigs[] = {SIGHUP, SIGINT, SIGTERM};
  demo_main_tid = (pid_t)syscall(SYS_gettid);
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
  if (pthread_sigmask(SIG_BLOCK, &set, NULL)) return -1;
  struct sigaction sa = {.sa_handler = demo_forward_cb, .sa_flags = SA_RESTART};
  sigfillset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (sigaction(sigs[i], &sa, NULL)) return -1;
  return 0;
}

/* interestd --demo: exec interestctl demo with the other arguments, from
 * beside this binary (an installed package) or from the build tree. Returns
 * only when neither can be run. */
static int run_demo(int argc, char **argv) {
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args) {
    fprintf(stderr, "interestd --demo: out of memory\n");
    return 2;
  }
  size_t n = 0;
  args[n++] = "interestctl";
  args[n++] = "demo";
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--demo") != 0) args[n++] = argv[i];
  args[n] = NULL;
  char self[4096], beside[4096 + 16] = "(unknown)";
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len > 0) {
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(beside, sizeof beside, "%s/interestctl", self);
    execv(beside, args);
  }
  execv(INTERESTD_CTL_BUILD_PATH, args);
  fprintf(stderr, "interestd --demo: the demo is `interestctl demo`; no interestctl at %s or %s "
                  "(install interestctl, from the same package)\n", beside,
          INTERESTD_CTL_BUILD_PATH);
  free(args);
  return 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--demo") == 0) {
      if (demo_hold_signals()) {
        fprintf(stderr, "interestd --demo: cannot hold the stop signals during start-up\n");
        return 1;
      }
      return run_demo(argc, argv);
    }
  /* before anything else: a SIGTERM, SIGINT or SIGHUP during start-up waits
   * for the daemon's handlers (daemon_hold_signals()) */
  if (daemon_hold_signals()) {
    fprintf(stderr, "interestd: cannot hold the stop signals during start-up\n");
    return 1;
  }
  config_args_t ca = {0};
  const char *log_level = NULL;
  int check = 0, print = 0;
  enum { OPT_CHECK = 256, OPT_PRINT };
  static const struct option longopts[] = {
      {"config", required_argument, 0, 'c'},  {"set", required_argument, 0, 's'},
      {"log-level", required_argument, 0, 'l'}, {"check-config", no_argument, 0, OPT_CHECK},
      {"print-config", no_argument, 0, OPT_PRINT}, {"version", no_argument, 0, 'V'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "c:s:l:Vh", longopts, NULL)) != -1) {
    switch (c) {
    case 'c':
    case 's':
      if (config_args_take(&ca, c, optarg, "interestd")) return 2;
      break;
    case 'l': log_level = optarg; break;
    case OPT_CHECK: check = 1; break;
    case OPT_PRINT: print = 1; break;
    case 'V': printf("interestd %s\n", INTERESTD_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "interestd: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  if (!ca.path && access(config_default_path(), R_OK) == 0)
    ca.path = config_default_path();
  char errstr[1024];
  config_t *cfg = NULL;
  int rc = config_load(ca.path, ca.sets, ca.n_sets, &cfg, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestd: %s\n", errstr);
    return check ? 1 : 2;
  }
  if (log_level) {
    if (log_parse_level(log_level, &cfg->log.level)) {
      fprintf(stderr, "interestd: --log-level must be error, warn, info or debug\n");
      config_destroy(cfg);
      return 2;
    }
  }
  log_set_level(cfg->log.level);

  if (check) {
    rc = config_check(cfg, errstr, sizeof errstr);
    if (rc) fprintf(stderr, "interestd: %s\n", errstr);
    else fprintf(stderr, "interestd: configuration %s is valid\n",
                 ca.path ? ca.path : "(defaults)");
    if (print) config_print(cfg, stdout);
    config_destroy(cfg);
    return rc ? 1 : 0;
  }

  daemon_t *d = NULL;
  daemon_opts_t dopts = {.cfg = cfg, .config_path = ca.path, .overrides = ca.sets,
                         .n_overrides = ca.n_sets, .handle_signals = 1, .ready_fd = -1};
  rc = daemon_new(&dopts, &d, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestd: %s\n", errstr);
    return 1;
  }
  rc = daemon_run(d);
  daemon_destroy(d);
  return rc ? 1 : 0;
}
