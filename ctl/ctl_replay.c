/* interestctl replay: produce a record file into a topic (paced or as fast
 * as possible), or with --offline run the daemon's own processing over it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlutil.h"
#include "stream/replayer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl replay --brokers HOSTS --topic T --input FILE.rec\n"
          "         [--speed X | --fast] [--count N] [--repartition] [-X key=value]...\n"
          "       interestctl replay --offline --input FILE.rec --output PRED.rec\n"
          "         [-c interestd.conf] [--set section.key=value]...\n"
          "Online: produces each record to its recorded partition with its key, value and\n"
          "timestamp, paced by the timestamps (--speed 1 = original pacing, 10 = ten times\n"
          "faster; --fast = no pacing, the default).\n"
          "Offline: runs the daemon's processing (codec, state store, model, emission policy)\n"
          "over the records with no broker and writes the predictions to a record file.\n");
}

int ctl_replay_offline(int argc, char **argv);

int ctl_replay(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--offline") == 0) return ctl_replay_offline(argc, argv);

  replayer_opts_t o = {.speed = 0};
  ctlutil_props_t props = {.n = 0};
  static const struct option longopts[] = {
      {"brokers", required_argument, 0, 'b'}, {"topic", required_argument, 0, 't'},
      {"input", required_argument, 0, 'i'},   {"speed", required_argument, 0, 's'},
      {"fast", no_argument, 0, 'F'},          {"count", required_argument, 0, 'n'},
      {"repartition", no_argument, 0, 'R'},   {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "b:t:i:s:Fn:RX:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'b': o.brokers = optarg; break;
    case 't': o.topic = optarg; break;
    case 'i': o.input = optarg; break;
    case 's':
      if (ctlutil_parse_double(optarg, &o.speed)) {
        fprintf(stderr, "interestctl replay: --speed takes a non-negative number, not '%s'\n", optarg);
        return 2;
      }
      break;
    case 'F': o.speed = 0; break;
    case 'n':
      if (ctlutil_opt_u64("replay", "count", optarg, &o.max_count)) return 2;
      break;
    case 'R': o.repartition = 1; break;
    case 'X':
      if (ctlutil_props_add(&props, "replay", optarg)) return 2;
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  o.props = props.v;
  if (!o.brokers || !o.topic || !o.input) {
    usage(stderr);
    return 2;
  }
  replayer_stats_t st;
  char errstr[512] = "";
  int rc = replayer_run(&o, &st, errstr, sizeof errstr);
  fprintf(stderr, "interestctl replay: %llu records produced, %llu delivered, %llu failed in %.2f s (%.0f/s)\n",
          (unsigned long long)st.records, (unsigned long long)st.delivered,
          (unsigned long long)st.failed, st.seconds, st.seconds > 0 ? (double)st.records / st.seconds : 0.0);
  if (rc) {
    fprintf(stderr, "interestctl replay: %s\n", errstr);
    return 1;
  }
  return 0;
}
