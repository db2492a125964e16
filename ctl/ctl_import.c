/* interestctl import: a real CSV data set -> a record file of event messages
 * (ctl/importer). Prints every count docs/FORMATS.md promises and the
 * first malformed lines with their line numbers. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlevents.h"
#include "ctl/ctlutil.h"
#include "ctl/importer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl import --format taobao|tmall|csv --input CSV --output FILE.rec\n"
          "                          [--partitions N] [--strict] [--max-malformed SHARE] [--tz OFFSET]\n"
          "                          [--user-column NAME] [--category-column NAME] [--item-column NAME]\n"
          "                          [--action-column NAME] [--time-column NAME]\n"
          "                          [--time-format ms|s|iso8601] [--action-map NAME=ACTION,...]\n"
          "  --format      taobao: UserBehavior.csv (user,item,category,pv|cart|fav|buy,seconds)\n"
          "                tmall:  user_log_format1.csv (header; mmdd days of %d at 00:00 UTC+8)\n"
          "                csv:    any CSV with a header line; columns by name (defaults fit\n"
          "                        event_time,event_type,product_id,category_id,category_code,brand,\n"
          "                        price,user_id,user_session with times like 2019-10-01 00:00:00 UTC)\n"
          "  --partitions  partitions to assign users to, as Kafka's murmur2 partitioner would (default %d)\n"
          "  --strict      fail (and write nothing) if any line is malformed\n"
          "  --max-malformed SHARE  fail (and write nothing) if more than SHARE (0..1) of the lines\n"
          "                are malformed; a file whose every line is malformed always fails\n"
          "  --tz          zone the summary prints times in, and csv: of times written without\n"
          "                one (+08:00, -05:30, Z; default UTC)\n"
          "  csv mapping (as the daemon's [input] JSON mapping, docs/FORMATS.md):\n"
          "  --user-column, --category-column, --time-column (required columns),\n"
          "  --item-column, --action-column (optional)   default user_id, category_id,\n"
          "                event_time, product_id, event_type\n"
          "  --time-format ms | s | iso8601 (default iso8601)\n"
          "  --action-map  NAME=view|cart|fav|buy|other,... (default purchase=buy,\n"
          "                remove_from_cart=other; view, pv, click, cart, fav, buy are built in)\n",
          IMPORT_TMALL_YEAR, IMPORT_DEFAULT_PARTITIONS);
}

int ctl_import(int argc, char **argv) {
  enum { O_USER = 256, O_CAT, O_ITEM, O_ACTION, O_TIME, O_TFMT, O_AMAP, O_TZ, O_MAXBAD };
  static const struct option longopts[] = {
      {"format", required_argument, NULL, 'f'}, {"input", required_argument, NULL, 'i'},
      {"output", required_argument, NULL, 'o'}, {"partitions", required_argument, NULL, 'p'},
      {"strict", no_argument, NULL, 's'},       {"help", no_argument, NULL, 'h'},
      {"user-column", required_argument, NULL, O_USER},
      {"category-column", required_argument, NULL, O_CAT},
      {"item-column", required_argument, NULL, O_ITEM},
      {"action-column", required_argument, NULL, O_ACTION},
      {"time-column", required_argument, NULL, O_TIME},
      {"time-format", required_argument, NULL, O_TFMT},
      {"action-map", required_argument, NULL, O_AMAP},
      {"tz", required_argument, NULL, O_TZ},
      {"max-malformed", required_argument, NULL, O_MAXBAD},
      {NULL, 0, NULL, 0}};
  importer_opts_t opts = {.format = IMPORT_TAOBAO, .partitions = IMPORT_DEFAULT_PARTITIONS};
  input_opts_t csv;
  if (importer_csv_defaults(&csv)) return 1;
  int have_format = 0, have_mapping = 0, c, status = 2;
  uint64_t u;
  char why[300];
  optind = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    const char *key = NULL;
    switch (c) {
    case 'f':
      have_format = 1;
      if (strcmp(optarg, "taobao") == 0) opts.format = IMPORT_TAOBAO;
      else if (strcmp(optarg, "tmall") == 0) opts.format = IMPORT_TMALL;
      else if (strcmp(optarg, "csv") == 0) opts.format = IMPORT_CSV;
      else {
        fprintf(stderr, "interestctl import: unknown --format '%s' (taobao, tmall or csv)\n", optarg);
        goto out;
      }
      break;
    case 'i': opts.input = optarg; break;
    case 'o': opts.output = optarg; break;
    case 'p':
      if (ctlutil_parse_u64(optarg, &u) || u == 0 || u > 100000) {
        fprintf(stderr, "interestctl import: --partitions must be 1..100000, not '%s'\n", optarg);
        goto out;
      }
      opts.partitions = (int32_t)u;
      break;
    case 's': opts.strict = 1; break;
    case O_USER: key = "user_field"; break;
    case O_CAT: key = "category_field"; break;
    case O_ITEM: key = "item_field"; break;
    case O_ACTION: key = "action_field"; break;
    case O_TIME: key = "time_field"; break;
    case O_TFMT:
      if (strcmp(optarg, "kafka") == 0) {
        fprintf(stderr, "interestctl import: --time-format must be ms, s or iso8601\n");
        goto out;
      }
      key = "time_format";
      break;
    case O_AMAP: key = "action_map"; break;
    case O_TZ:
      if (ctlev_parse_offset(optarg, &opts.utc_offset_s)) {
        fprintf(stderr, "interestctl import: --tz must be an offset like +08:00, -05:30 or Z, not '%s'\n",
                optarg);
        goto out;
      }
      break;
    case O_MAXBAD:
      if (ctlutil_parse_double(optarg, &opts.max_malformed_share) || opts.max_malformed_share > 1) {
        fprintf(stderr, "interestctl import: --max-malformed must be a share in [0, 1], not '%s'\n",
                optarg);
        goto out;
      }
      if (opts.max_malformed_share == 0) opts.strict = 1;
      break;
    case 'h': usage(stdout); status = 0; goto out;
    default: usage(stderr); goto out;
    }
    if (key) {
      have_mapping = 1;
      int f = strcmp(key, "user_field") == 0       ? INPUT_F_USER
              : strcmp(key, "category_field") == 0 ? INPUT_F_CATEGORY
              : strcmp(key, "item_field") == 0     ? INPUT_F_ITEM
              : strcmp(key, "action_field") == 0   ? INPUT_F_ACTION
              : strcmp(key, "time_field") == 0     ? INPUT_F_TIME
                                                   : -1;
      if (f >= 0) {
        /* a column is one header name (the daemon's dotted paths do not apply) */
        char *name = *optarg ? strdup(optarg) : NULL;
        if (!name) {
          fprintf(stderr, "interestctl import: a column name must not be empty\n");
          goto out;
        }
        free(csv.field[f]);
        csv.field[f] = name;
      } else if (input_opts_set(&csv, key, optarg, why, sizeof why)) {
        fprintf(stderr, "interestctl import: %s\n", why);
        goto out;
      }
    }
  }
  if (!have_format || !opts.input || !opts.output || optind != argc) {
    usage(stderr);
    goto out;
  }
  if (have_mapping && opts.format != IMPORT_CSV) {
    fprintf(stderr, "interestctl import: the column and time options apply to --format csv only\n");
    goto out;
  }
  opts.csv = &csv;

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
    for (size_t i = 0; i < stats.n_reasons; i++)
      fprintf(stderr, "interestctl import: %llu lines: %s\n",
              (unsigned long long)stats.by_reason[i].n, stats.by_reason[i].reason);
    fprintf(stderr, "interestctl import: %s\n", errstr);
    status = 1;
    goto out;
  }
  importer_print_summary_tz(&stats, opts.utc_offset_s, stdout);
  printf("wrote %llu records to %s in %.3f s\n", (unsigned long long)stats.events, opts.output,
         secs);
  status = 0;
out:
  input_opts_free(&csv);
  return status;
}
