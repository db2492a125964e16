/* interestctl split: a record file of events -> <prefix>.train/.dev/.test.rec,
 * by event time or by user (ctl/importer.h, split_run). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlutil.h"
#include "ctl/split.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl split --input F [--out-prefix P] --by time --dev-start T --test-start T\n"
          "                         [--test-end T]\n"
          "       interestctl split --input F [--out-prefix P] --by user --dev-pct N --test-pct N\n"
          "                         [--seed S]\n"
          "  writes P.train.rec, P.dev.rec, P.test.rec (P defaults to F without .rec)\n"
          "  T: epoch milliseconds or ISO-8601, e.g. 2017-12-02T00:00:00+08:00\n"
          "  By time, events are split by their event time; models evaluated on dev/test still\n"
          "  need each user's earlier history, so `interestctl eval` takes the boundaries itself;\n"
          "  split is for export and sharing.\n");
}

int ctl_split(int argc, char **argv) {
  static const struct option longopts[] = {
      {"input", required_argument, NULL, 'i'},      {"out-prefix", required_argument, NULL, 'o'},
      {"by", required_argument, NULL, 'b'},         {"dev-start", required_argument, NULL, 'd'},
      {"test-start", required_argument, NULL, 't'}, {"test-end", required_argument, NULL, 'e'},
      {"dev-pct", required_argument, NULL, 'D'},    {"test-pct", required_argument, NULL, 'T'},
      {"seed", required_argument, NULL, 's'},       {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  split_opts_t opts = {0};
  int by = -1, have_dev = 0, have_test = 0, have_dpct = 0, have_tpct = 0, c;
  uint64_t u;
  optind = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'i': opts.input = optarg; break;
    case 'o': opts.out_prefix = optarg; break;
    case 'b':
      if (strcmp(optarg, "time") == 0) by = SPLIT_BY_TIME;
      else if (strcmp(optarg, "user") == 0) by = SPLIT_BY_USER;
      else {
        fprintf(stderr, "interestctl split: --by must be time or user, not '%s'\n", optarg);
        return 2;
      }
      break;
    case 'd':
    case 't':
    case 'e': {
      int64_t ms;
      if (ctlutil_parse_time_ms(optarg, &ms)) {
        fprintf(stderr, "interestctl split: bad time '%s' (epoch ms or ISO-8601)\n", optarg);
        return 2;
      }
      if (c == 'd') opts.dev_start_ms = ms, have_dev = 1;
      else if (c == 't') opts.test_start_ms = ms, have_test = 1;
      else opts.test_end_ms = ms;
      break;
    }
    case 'D':
    case 'T':
      if (ctlutil_parse_u64(optarg, &u) || u > 100) {
        fprintf(stderr, "interestctl split: percentages are 0..100, not '%s'\n", optarg);
        return 2;
      }
      if (c == 'D') opts.dev_pct = (unsigned)u, have_dpct = 1;
      else opts.test_pct = (unsigned)u, have_tpct = 1;
      break;
    case 's':
      if (ctlutil_parse_u64(optarg, &opts.seed)) {
        fprintf(stderr, "interestctl split: --seed must be an unsigned number\n");
        return 2;
      }
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!opts.input || optind != argc || by < 0 ||
      (by == SPLIT_BY_TIME && (!have_dev || !have_test)) ||
      (by == SPLIT_BY_USER && (!have_dpct || !have_tpct))) {
    usage(stderr);
    return 2;
  }
  opts.by = (split_by_t)by;
  char prefix[4096];
  if (!opts.out_prefix) {
    size_t n = strlen(opts.input);
    if (n >= sizeof prefix) return 2;
    memcpy(prefix, opts.input, n + 1);
    if (n > 4 && strcmp(prefix + n - 4, ".rec") == 0) prefix[n - 4] = '\0';
    opts.out_prefix = prefix;
  }
  split_stats_t stats;
  char errstr[512] = "";
  int rc = split_run(&opts, &stats, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestctl split: %s\n", errstr);
    return 1;
  }
  static const char *const names[SPLIT__COUNT] = {"train", "dev", "test"};
  for (int s = 0; s < SPLIT__COUNT; s++)
    printf("%-5s  %10llu records  %7llu users  -> %s.%s.rec\n", names[s],
           (unsigned long long)stats.records[s], (unsigned long long)stats.users[s],
           opts.out_prefix, names[s]);
  if (opts.by == SPLIT_BY_TIME && opts.test_end_ms)
    printf("dropped %llu records at or after --test-end\n", (unsigned long long)stats.dropped);
  printf("total  %10llu records\n", (unsigned long long)stats.total);
  return 0;
}
