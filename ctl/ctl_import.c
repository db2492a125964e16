/* interestctl import: a real CSV data set -> a record file of event messages
 * (ctl/importer). Prints every count docs/FORMATS.md promises and the
 * first malformed lines with their line numbers. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlutil.h"
#include "ctl/importer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl import --format taobao|tmall --input CSV --output FILE.rec\n"
          "                          [--partitions N] [--strict]\n"
          "  --format      taobao: UserBehavior.csv (user,item,category,pv|cart|fav|buy,seconds)\n"
          "                tmall:  user_log_format1.csv (header; mmdd days of %d at 00:00 UTC+8)\n"
          "  --partitions  partitions to assign users to, as Kafka's murmur2 partitioner would (default %d)\n"
          "  --strict      fail (and write nothing) if any line is malformed\n",
          IMPORT_TMALL_YEAR, IMPORT_DEFAULT_PARTITIONS);
}

int ctl_import(int argc, char **argv) {
  static const struct option longopts[] = {
      {"format", required_argument, NULL, 'f'}, {"input", required_argument, NULL, 'i'},
      {"output", required_argument, NULL, 'o'}, {"partitions", required_argument, NULL, 'p'},
      {"strict", no_argument, NULL, 's'},       {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  importer_opts_t opts = {.format = IMPORT_TAOBAO, .partitions = IMPORT_DEFAULT_PARTITIONS};
  int have_format = 0, c;
  uint64_t u;
  optind = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'f':
      have_format = 1;
      if (strcmp(optarg, "taobao") == 0) opts.format = IMPORT_TAOBAO;
      else if (strcmp(optarg, "tmall") == 0) opts.format = IMPORT_TMALL;
      else {
        fprintf(stderr, "interestctl import: unknown --format '%s' (taobao or tmall)\n", optarg);
        return 2;
      }
      break;
    case 'i': opts.input = optarg; break;
    case 'o': opts.output = optarg; break;
    case 'p':
      if (ctlutil_parse_u64(optarg, &u) || u == 0 || u > 100000) {
        fprintf(stderr, "interestctl import: --partitions must be 1..100000, not '%s'\n", optarg);
        return 2;
      }
      opts.partitions = (int32_t)u;
      break;
    case 's': opts.strict = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!have_format || !opts.input || !opts.output || optind != argc) {
    usage(stderr);
    return 2;
  }

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  importer_stats_t stats;
  char errstr[512] = "";
  int rc = importer_run(&opts, &stats, errstr, sizeof errstr);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;

  for (uint64_t i = 0; i < stats.n_bad_kept; i++)
    fprintf(stderr, "interestctl import: %s:%llu: malformed: %s\n", opts.input,
            (unsigned long long)stats.bad[i].line, stats.bad[i].reason);
  if (stats.malformed > stats.n_bad_kept)
    fprintf(stderr, "interestctl import: ... and %llu more malformed lines\n",
            (unsigned long long)(stats.malformed - stats.n_bad_kept));
  if (rc) {
    fprintf(stderr, "interestctl import: %s\n", errstr);
    return 1;
  }
  importer_print_summary(&stats, stdout);
  printf("wrote %llu records to %s in %.3f s\n", (unsigned long long)stats.events, opts.output,
         secs);
  return 0;
}
