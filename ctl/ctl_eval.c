/* interestctl eval: the LSTM (through the serving path) and every baseline
 * (tuned on the dev window) on the time-held-out test window of a record
 * file of events; prints one table, optionally as Markdown, and the metrics
 * by user-history length as a TSV for plots. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlevents.h"
#include "ctl/ctlutil.h"
#include "model/baselines.h"
#include "model/eval.h"
#include "model/model.h"

extern void openblas_set_num_threads(int);

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl eval --events FILE.rec [--model FILE.ixm] [options]\n"
          "  --drop-user ID        leave a user out (repeatable; e.g. a truncated last user)\n"
          "  --tz +HH:MM           local time for the default day windows (default +00:00)\n"
          "  --input-config F      read the events as the [input] section of interestd.conf F says\n"
          "  --input KEY=VALUE     one [input] key (format=json, user_field=..., ...); repeatable\n"
          "  --dev-start T --test-start T --test-end T\n"
          "                        windows (ISO-8601 or epoch ms); default: test = last local\n"
          "                        day of the data, dev = the day before, train = earlier\n"
          "  --split test|dev|users\n"
          "                        what to report (default test; baselines tune on dev):\n"
          "                        test/dev = that day, every user (the time split);\n"
          "                        users = every event before test end of the users held\n"
          "                        out by --holdout-users (the user split)\n"
          "  --holdout-users PCT   percent of users held out, as `interestctl train\n"
          "                        --holdout-users` left them out (same --holdout-seed);\n"
          "                        baselines then tune on the other users' dev day only\n"
          "  --holdout-seed N      seed of the user split (default 1)\n"
          "  --half-life H         long-term profile half-life in hours (default: the model's,\n"
          "                        else 72)\n"
          "  --no-baselines        evaluate the model only\n"
          "  --markdown FILE       also write the table as Markdown\n"
          "  --buckets FILE        metrics by user-history length (TSV, for gnuplot)\n"
          "  --wave N              users per model_step_batch (default 256)\n");
}

int ctl_eval(int argc, char **argv) {
  static const struct option opts[] = {
      CTLEV_LONG_OPTIONS,
      CTLEV_LONG_OPTION_TEST_END,
      {"model", required_argument, 0, 'm'},
      {"split", required_argument, 0, 's'},
      {"half-life", required_argument, 0, 'l'},
      {"no-baselines", no_argument, 0, 'n'},
      {"markdown", required_argument, 0, 'M'},
      {"buckets", required_argument, 0, 'b'},
      {"wave", required_argument, 0, 'w'},
      {"holdout-users", required_argument, 0, 'U'},
      {"holdout-seed", required_argument, 0, 'S'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  ctlev_args_t ea = {0};
  const char *model_path = NULL, *md_path = NULL, *bk_path = NULL;
  int use_dev = 0, use_users = 0, baselines = 1;
  uint64_t holdout_pct = 0, holdout_seed = 1;
  double half_life_h = 0;
  uint64_t wave = 256;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int bad = 0, r;
    switch (c) {
    case 'm': model_path = optarg; break;
    case 's':
      if (strcmp(optarg, "dev") == 0) use_dev = 1, use_users = 0;
      else if (strcmp(optarg, "test") == 0) use_dev = 0, use_users = 0;
      else if (strcmp(optarg, "users") == 0) use_dev = 0, use_users = 1;
      else bad = 1;
      break;
    case 'l': bad = ctlutil_parse_double(optarg, &half_life_h) < 0 || half_life_h <= 0; break;
    case 'n': baselines = 0; break;
    case 'U': bad = ctlutil_parse_u64(optarg, &holdout_pct) < 0 || holdout_pct == 0 || holdout_pct > 99; break;
    case 'S': bad = ctlutil_parse_u64(optarg, &holdout_seed) < 0; break;
    case 'M': md_path = optarg; break;
    case 'b': bk_path = optarg; break;
    case 'w': bad = ctlutil_parse_u64(optarg, &wave) < 0 || wave == 0 || wave > 65536; break;
    case 'h': ctlev_args_free(&ea); usage(stdout); return 0;
    default: /* --events, --drop-user, --tz, the windows, --input(-config) */
      if ((r = ctlev_args_option(&ea, c, optarg, "eval", usage)) > 0) return r;
      bad = r < 0;
    }
    if (bad) {
      fprintf(stderr, "interestctl eval: invalid value '%s'\n", optarg);
      usage(stderr);
      ctlev_args_free(&ea);
      return 2;
    }
  }
  ctlev_args_finish(&ea);
  if (!ea.events_path && optind < argc) ea.events_path = argv[optind++];
  if (!ea.events_path || optind < argc || (!model_path && !baselines)) {
    ctlev_args_free(&ea);
    usage(stderr);
    return 2;
  }
  if (use_users && holdout_pct == 0) {
    ctlev_args_free(&ea);
    fprintf(stderr, "interestctl eval: --split users needs --holdout-users PCT\n");
    return 2;
  }
  openblas_set_num_threads(1);
  char err[512] = "";
  int rc = 0, status = 1;
  event_t *ev = NULL;
  size_t n = 0;
  model_t *m = NULL;
  eval_data_t dev = {0}, rep = {0};
  eval_row_t rows[1 + BL__COUNT];
  size_t nrows = 0;
  if ((rc = ctlev_args_load(&ea, &ev, &n, err, sizeof err)) < 0) {
    fprintf(stderr, "interestctl eval: %s\n", err);
    return 1;
  }
  if (model_path && (rc = model_load(model_path, &m, err, sizeof err)) < 0) {
    fprintf(stderr, "interestctl eval: %s\n", err);
    goto out;
  }
  if (m && half_life_h > 0) model_set_half_life(m, (float)(half_life_h * 3600.0));
  float hl = m ? model_half_life(m) : (float)(half_life_h > 0 ? half_life_h * 3600.0
                                                              : ARCH_DEFAULT_HALF_LIFE_S);
  ctlev_windows(ev, n, ea.tz, &ea.win);
  if (!(ea.win.dev_start_ms < ea.win.test_start_ms && ea.win.test_start_ms < ea.win.test_end_ms)) {
    fprintf(stderr, "interestctl eval: windows must satisfy dev start < test start < test end\n");
    goto out;
  }
  /* with a user split, nothing is tuned on the held-out users */
  eval_users_t tune_users = holdout_pct ? EVAL_USERS_TRAINING : EVAL_USERS_ALL;
  eval_window_t wdev = {ea.win.dev_start_ms, ea.win.test_start_ms, hl, tune_users,
                        (uint32_t)holdout_pct, holdout_seed};
  eval_window_t wtest = {ea.win.test_start_ms, ea.win.test_end_ms, hl, EVAL_USERS_ALL,
                         (uint32_t)holdout_pct, holdout_seed};
  eval_window_t wusers = {INT64_MIN, ea.win.test_end_ms, hl, EVAL_USERS_HELD_OUT,
                          (uint32_t)holdout_pct, holdout_seed};
  eval_window_t wrep = use_users ? wusers : use_dev ? wdev : wtest;
  if (use_dev) wrep.users = EVAL_USERS_ALL;
  /* the dev window is where the baselines tune: without them it is not needed */
  int need_dev = baselines || use_dev;
  if ((need_dev && (rc = eval_data_build(ev, n, &wdev, &dev)) < 0) ||
      (rc = eval_data_build(ev, n, &wrep, &rep)) < 0) {
    fprintf(stderr, "interestctl eval: cannot prepare the data: %s\n", ix_strerror(rc));
    goto out;
  }
  char a[64], b[64], d[64];
  ctlev_fmt_time(ea.win.dev_start_ms, ea.tz, a, sizeof a);
  ctlev_fmt_time(ea.win.test_start_ms, ea.tz, b, sizeof b);
  ctlev_fmt_time(ea.win.test_end_ms, ea.tz, d, sizeof d);
  printf("events %zu (users %u) from %s\n", n, rep.n_users, ea.events_path);
  if (use_users)
    printf("user split: %llu%% of users held out (seed %llu); reporting every event before %s "
           "of the %s: %zu targets; baselines tuned on the other users' dev day (%zu targets)\n",
           (unsigned long long)holdout_pct, (unsigned long long)holdout_seed, d,
           "held-out users", rep.n_targets, dev.n_targets);
  else
    printf("train < %s <= dev < %s <= test < %s; reporting the %s window: %zu targets\n", a, b,
           d, use_dev ? "dev" : "test", rep.n_targets);
  fflush(stdout);
  if (rep.n_targets == 0 || (need_dev && dev.n_targets == 0)) {
    int dev_empty = use_dev ? rep.n_targets == 0 : dev.n_targets == 0 && rep.n_targets != 0;
    if (dev_empty)
      fprintf(stderr,
              "interestctl eval: the dev window [%s, %s) has no targets (no event in it follows an "
              "earlier event of the same user). It is the local day (--tz) before the test window "
              "unless --dev-start and --test-start set it; the baselines tune on it: with "
              "--no-baselines (and --model) none is needed\n",
              a, b);
    else
      fprintf(stderr,
              "interestctl eval: the test window [%s, %s) has no targets (no event in it follows an "
              "earlier event of the same user). By default it is the last local day (--tz) of the "
              "data; set it with --test-start and --test-end\n",
              b, d);
    goto out;
  }
  if (m) {
    double t0 = ix_mono_s();
    if ((rc = eval_run_model(m, &rep, (size_t)wave, &rows[nrows])) < 0) {
      fprintf(stderr, "interestctl eval: model run failed: %s\n", ix_strerror(rc));
      goto out;
    }
    fprintf(stderr, "eval: lstm done in %.1fs (%s)\n", ix_mono_s() - t0, model_describe(m));
    nrows++;
  }
  if (baselines) {
    for (int k = 0; k < BL__COUNT; k++) {
      double t0 = ix_mono_s();
      bl_params_t p;
      eval_row_t drow;
      if ((rc = bl_tune((bl_kind_t)k, &dev, &p, &drow)) < 0 ||
          (rc = bl_run(&p, &rep, &rows[nrows])) < 0) {
        fprintf(stderr, "interestctl eval: baseline %s failed: %s\n", bl_name((bl_kind_t)k),
                ix_strerror(rc));
        goto out;
      }
      fprintf(stderr, "eval: %-8s tuned on dev (MRR@10 %.4f, NLL %.4f): %s  [%.1fs]\n",
              bl_name((bl_kind_t)k), drow.mrr10, drow.nll, rows[nrows].params, ix_mono_s() - t0);
      nrows++;
    }
  }
  eval_print_table(stdout, rows, nrows, 0);
  if (m) eval_print_falling(stdout, &rows[0], 0);
  if (md_path) {
    FILE *f = fopen(md_path, "w");
    if (!f) {
      fprintf(stderr, "interestctl eval: cannot write %s\n", md_path);
      goto out;
    }
    eval_print_table(f, rows, nrows, 1);
    if (m) eval_print_falling(f, &rows[0], 1);
    if (fclose(f) != 0) goto out;
  }
  if (bk_path) {
    FILE *f = fopen(bk_path, "w");
    if (!f) {
      fprintf(stderr, "interestctl eval: cannot write %s\n", bk_path);
      goto out;
    }
    eval_print_buckets(f, rows, nrows);
    if (fclose(f) != 0) goto out;
  }
  status = 0;
out:
  eval_data_free(&dev);
  eval_data_free(&rep);
  model_destroy(m);
  free(ev);
  return status;
}
