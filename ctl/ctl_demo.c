/* interestctl demo (also reached as interestd --demo): the whole product on
 * one machine, an embedded mock broker fed with the bundled clickstream and
 * the real daemon (ctl/demo.c). Options as interestd's, plus the feed's. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ctl/ctl.h"
#include "ctl/demo.h"
#include "daemon/config.h"
#include "daemon/daemon.h"


static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl demo [-c FILE] [--set SECTION.KEY=VALUE]... [--log-level LEVEL]\n"
          "                        [--rate N] [--loop] [--data CSV] [--events N] [--json] [--quiet]\n"
          "(interestd --demo runs this.) Starts an embedded Kafka-protocol broker, streams the\n"
          "bundled Taobao clickstream into it and runs the daemon on it, showing throughput,\n"
          "latency and a few users' interests each second.\n"
          "\n"
          "  -c, --config FILE      INI configuration (its model is used; brokers and topics\n"
          "                         are the demo's)\n"
          "  -s, --set S.K=V        override one setting (repeatable)\n"
          "  -l, --log-level L      error | warn | info | debug (default warn)\n"
          "      --rate N           events per second fed (default %.0f; 0 = max)\n"
          "      --loop             replay the data until Ctrl-C\n"
          "      --data CSV         Taobao UserBehavior CSV (plain or gzip) to stream\n"
          "                         (default: the bundled sample)\n"
          "      --events N         stream only the first N events\n"
          "      --json             events in as Segment-style JSON (the [input] mapping of\n"
          "                         docs/OPERATIONS.md), predictions out as JSON\n"
          "      --quiet            final summary only\n",
          DEMO_DEFAULT_RATE);
}

int ctl_demo(int argc, char **argv) {
  /* first, as interestd's main(): a SIGTERM, SIGINT or SIGHUP from now on
   * (also one interestd --demo held before its exec) waits for the demo
   * daemon's handlers and stops it cleanly; the threads started before
   * main() (OpenBLAS's) would otherwise die of it (daemon_hold_signals()) */
  if (daemon_hold_signals()) {
    fprintf(stderr, "interestctl demo: cannot hold the stop signals during start-up\n");
    return 1;
  }
  config_args_t ca = {0};
  const char *log_level = NULL, *data = NULL;
  int loop = 0, quiet = 0, json = 0;
  double rate = DEMO_DEFAULT_RATE;
  unsigned long max_events = 0;
  enum { OPT_RATE = 256, OPT_LOOP, OPT_DATA, OPT_EVENTS, OPT_QUIET, OPT_JSON };
  static const struct option longopts[] = {
      {"config", required_argument, 0, 'c'},   {"set", required_argument, 0, 's'},
      {"log-level", required_argument, 0, 'l'}, {"rate", required_argument, 0, OPT_RATE},
      {"loop", no_argument, 0, OPT_LOOP},       {"data", required_argument, 0, OPT_DATA},
      {"events", required_argument, 0, OPT_EVENTS}, {"quiet", no_argument, 0, OPT_QUIET},
      {"json", no_argument, 0, OPT_JSON},       {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:s:l:h", longopts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 'c':
    case 's':
      if (config_args_take(&ca, c, optarg, "interestctl demo")) return 2;
      break;
    case 'l': log_level = optarg; break;
    case OPT_RATE:
      rate = strtod(optarg, &end);
      if (*end || rate < 0) {
        fprintf(stderr, "interestctl demo: --rate must be a number >= 0\n");
        return 2;
      }
      break;
    case OPT_LOOP: loop = 1; break;
    case OPT_DATA: data = optarg; break;
    case OPT_EVENTS: max_events = strtoul(optarg, NULL, 10); break;
    case OPT_QUIET: quiet = 1; break;
    case OPT_JSON: json = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "interestctl demo: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  int model_given = ca.path != NULL;
  for (size_t i = 0; i < ca.n_sets; i++)
    if (strncmp(ca.sets[i], "model.path=", 11) == 0) model_given = 1;
  /* demo defaults for the mock broker (short fetch waits, quick group joins)
   * unless a config file is given; --set overrides them */
  const char *demo_sets[] = {"kafka.consumer.fetch.wait.max.ms=5",
                             "kafka.consumer.session.timeout.ms=6000",
                             "kafka.consumer.heartbeat.interval.ms=500", "metrics.port=0"};
  const size_t n_demo = sizeof demo_sets / sizeof demo_sets[0];
  const char *all[CONFIG_MAX_SETS + sizeof demo_sets / sizeof demo_sets[0]];
  size_t n = 0;
  if (!ca.path)
    for (size_t i = 0; i < n_demo; i++) all[n++] = demo_sets[i];
  for (size_t i = 0; i < ca.n_sets; i++) all[n++] = ca.sets[i];
  char errstr[1024];
  config_t *cfg = NULL;
  if (config_load(ca.path, all, n, &cfg, errstr, sizeof errstr)) {
    fprintf(stderr, "interestctl demo: %s\n", errstr);
    return 2;
  }
  cfg->log.level = LOG_LVL_WARN; /* keep the display readable */
  if (log_level && log_parse_level(log_level, &cfg->log.level)) {
    fprintf(stderr, "interestctl demo: --log-level must be error, warn, info or debug\n");
    config_destroy(cfg);
    return 2;
  }
  log_set_level(cfg->log.level);
  demo_opts_t dopts = {.cfg = cfg, .config_path = ca.path, .overrides = ca.sets,
                       .n_overrides = ca.n_sets, .model_given = model_given, .data = data,
                       .rate = rate, .loop = loop, .max_events = max_events, .quiet = quiet,
                       .json = json};
  return demo_run(&dopts);
}
