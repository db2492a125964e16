/* interestctl record: consume a topic into a record file. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlutil.h"
#include "stream/recorder.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl record --brokers HOSTS --topic T --output FILE.rec\n"
          "         [--from beginning|end|OFFSET] [--from-time ISO8601|EPOCH_MS]\n"
          "         [--count N] [--until-end] [--timeout-ms MS] [-X key=value]...\n"
          "Consumes every partition of T (no consumer group) into a record file that keeps\n"
          "partition, offset, timestamp, key and value. Stops after --count records, at the\n"
          "end offsets seen at start (--until-end), or after --timeout-ms without data.\n");
}

int ctl_record(int argc, char **argv) {
  recorder_opts_t o = {.from_offset = RECORDER_FROM_BEGINNING, .timeout_ms = 0};
  ctlutil_props_t props = {.n = 0};
  static const struct option longopts[] = {
      {"brokers", required_argument, 0, 'b'}, {"topic", required_argument, 0, 't'},
      {"output", required_argument, 0, 'o'},  {"from", required_argument, 0, 'f'},
      {"from-time", required_argument, 0, 'T'}, {"count", required_argument, 0, 'n'},
      {"until-end", no_argument, 0, 'e'},     {"timeout-ms", required_argument, 0, 'w'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "b:t:o:f:T:n:ew:X:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'b': o.brokers = optarg; break;
    case 't': o.topic = optarg; break;
    case 'o': o.output = optarg; break;
    case 'f':
      if (strcmp(optarg, "beginning") == 0) o.from_offset = RECORDER_FROM_BEGINNING;
      else if (strcmp(optarg, "end") == 0) o.from_offset = RECORDER_FROM_END;
      else if (ctlutil_parse_u64(optarg, (uint64_t *)&o.from_offset) || o.from_offset < 0) {
        fprintf(stderr, "interestctl record: --from takes beginning, end or an offset, not '%s'\n", optarg);
        return 2;
      }
      break;
    case 'T':
      if (ctlutil_parse_time_ms(optarg, &o.from_time_ms)) {
        fprintf(stderr, "interestctl record: --from-time '%s' is not ISO-8601 or epoch ms\n", optarg);
        return 2;
      }
      break;
    case 'n':
      if (ctlutil_opt_u64("record", "count", optarg, &o.max_count)) return 2;
      break;
    case 'e': o.until_end = 1; break;
    case 'w': o.timeout_ms = atoi(optarg); break;
    case 'X':
      if (ctlutil_props_add(&props, "record", optarg)) return 2;
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  o.props = props.v;
  if (!o.brokers || !o.topic || !o.output) {
    usage(stderr);
    return 2;
  }
  recorder_stats_t st;
  char errstr[512] = "";
  int rc = recorder_run(&o, &st, errstr, sizeof errstr);
  fprintf(stderr, "interestctl record: %llu records (%llu bytes) from %d partitions of %s into %s\n",
          (unsigned long long)st.records, (unsigned long long)st.bytes, (int)st.partitions,
          o.topic, o.output);
  if (rc) {
    fprintf(stderr, "interestctl record: %s\n", errstr);
    return 1;
  }
  return 0;
}
