/* interestd: the streaming daemon's entry point (options, then daemon/ or demo). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/demo.h"

#define MAX_SETS 256

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestd [-c FILE] [--set SECTION.KEY=VALUE]... [--log-level LEVEL]\n"
          "       interestd --check-config [-c FILE] [--set ...] [--print-config]\n"
          "       interestd --demo [--rate N] [--loop] [--data CSV] [--events N] [--json] [--quiet]\n"
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
          "      --rate N           demo: events per second fed (default %.0f; 0 = max)\n"
          "      --loop             demo: replay the data until Ctrl-C\n"
          "      --data CSV         demo: Taobao UserBehavior CSV to stream\n"
          "      --events N         demo: stream only the first N events\n"
          "      --json             demo: Segment-style JSON events in, JSON predictions out\n"
          "      --quiet            demo: final summary only\n"
          "  -V, --version          print the version\n",
          config_default_path(), DEMO_DEFAULT_RATE);
}

int main(int argc, char **argv) {
  const char *config_path = NULL, *log_level = NULL, *data = NULL;
  const char *sets[MAX_SETS];
  size_t n_sets = 0;
  int check = 0, print = 0, demo = 0, loop = 0, quiet = 0, json = 0;
  double rate = DEMO_DEFAULT_RATE;
  unsigned long max_events = 0;
  enum { OPT_CHECK = 256, OPT_PRINT, OPT_DEMO, OPT_RATE, OPT_LOOP, OPT_DATA, OPT_EVENTS, OPT_QUIET, OPT_JSON };
  static const struct option longopts[] = {
      {"config", required_argument, 0, 'c'},  {"set", required_argument, 0, 's'},
      {"log-level", required_argument, 0, 'l'}, {"check-config", no_argument, 0, OPT_CHECK},
      {"print-config", no_argument, 0, OPT_PRINT}, {"demo", no_argument, 0, OPT_DEMO},
      {"rate", required_argument, 0, OPT_RATE}, {"loop", no_argument, 0, OPT_LOOP},
      {"data", required_argument, 0, OPT_DATA}, {"events", required_argument, 0, OPT_EVENTS},
      {"quiet", no_argument, 0, OPT_QUIET},   {"json", no_argument, 0, OPT_JSON},
      {"version", no_argument, 0, 'V'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "c:s:l:Vh", longopts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 'c': config_path = optarg; break;
    case 's':
      if (n_sets == MAX_SETS) {
        fprintf(stderr, "interestd: too many --set options\n");
        return 2;
      }
      sets[n_sets++] = optarg;
      break;
    case 'l': log_level = optarg; break;
    case OPT_CHECK: check = 1; break;
    case OPT_PRINT: print = 1; break;
    case OPT_DEMO: demo = 1; break;
    case OPT_RATE:
      rate = strtod(optarg, &end);
      if (*end || rate < 0) {
        fprintf(stderr, "interestd: --rate must be a number >= 0\n");
        return 2;
      }
      break;
    case OPT_LOOP: loop = 1; break;
    case OPT_DATA: data = optarg; break;
    case OPT_EVENTS: max_events = strtoul(optarg, NULL, 10); break;
    case OPT_QUIET: quiet = 1; break;
    case OPT_JSON: json = 1; break;
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
  if (!config_path && !demo && access(config_default_path(), R_OK) == 0)
    config_path = config_default_path();
  char errstr[1024];
  config_t *cfg = NULL;
  int rc = config_load(config_path, sets, n_sets, &cfg, errstr, sizeof errstr);
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
  } else if (demo) {
    cfg->log.level = LOG_LVL_WARN; /* keep the demo's display readable */
  }
  log_set_level(cfg->log.level);

  if (check) {
    rc = config_check(cfg, errstr, sizeof errstr);
    if (rc) fprintf(stderr, "interestd: %s\n", errstr);
    else fprintf(stderr, "interestd: configuration %s is valid\n",
                 config_path ? config_path : "(defaults)");
    if (print) config_print(cfg, stdout);
    config_destroy(cfg);
    return rc ? 1 : 0;
  }

  if (demo) {
    int model_given = 0;
    for (size_t i = 0; i < n_sets; i++)
      if (strncmp(sets[i], "model.path=", 11) == 0) model_given = 1;
    if (config_path) model_given = 1;
    if (!config_path) {
      /* demo defaults for the mock broker: short fetch waits, quick group joins */
      const char *demo_sets[] = {"kafka.consumer.fetch.wait.max.ms=5",
                                 "kafka.consumer.session.timeout.ms=6000",
                                 "kafka.consumer.heartbeat.interval.ms=500",
                                 "metrics.port=0"};
      config_t *tmp = NULL;
      const char *all[MAX_SETS + 4];
      size_t n = 0;
      for (size_t i = 0; i < 4; i++) all[n++] = demo_sets[i];
      for (size_t i = 0; i < n_sets; i++) all[n++] = sets[i];
      if (config_load(NULL, all, n, &tmp, errstr, sizeof errstr) == 0) {
        tmp->log.level = cfg->log.level;
        config_destroy(cfg);
        cfg = tmp;
      }
    }
    demo_opts_t dopts = {.cfg = cfg, .config_path = config_path, .overrides = sets,
                         .n_overrides = n_sets, .model_given = model_given, .data = data,
                         .rate = rate, .loop = loop, .max_events = max_events, .quiet = quiet,
                         .json = json};
    return demo_run(&dopts);
  }

  daemon_t *d = NULL;
  daemon_opts_t dopts = {.cfg = cfg, .config_path = config_path, .overrides = sets,
                         .n_overrides = n_sets, .handle_signals = 1, .ready_fd = -1};
  rc = daemon_new(&dopts, &d, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestd: %s\n", errstr);
    return 1;
  }
  rc = daemon_run(d);
  daemon_destroy(d);
  return rc ? 1 : 0;
}
