/* interestctl train: train the model of model/arch.h on the training window
 * of a record file of events, early-stopping on the dev window (scored
 * through the serving path), and write a model file. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlevents.h"
#include "ctl/ctlutil.h"
#include "model/baselines.h"
#include "model/eval.h"
#include "model/model.h"
#include "model/modelfile.h"
#include "model/train.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl train --events FILE.rec --out MODEL.ixm [options]\n"
          "  --drop-user ID     leave a user out (repeatable)\n"
          "  --tz +HH:MM        local time for the default day windows (default +00:00)\n"
          "  --input-config F   read the events as the [input] section of interestd.conf F says\n"
          "  --input KEY=VALUE  one [input] key (format=json, user_field=..., ...); repeatable\n"
          "  --dev-start T --test-start T\n"
          "                     train on events before dev start, early-stop on dev\n"
          "                     (default: dev = the day before the last local day)\n"
          "  --hidden H (64) --vocab V (1000) --emb-cat N (32) --emb-act N (8)\n"
          "  --batch B (32) --bptt T (32) --epochs N (30) --patience N (3)\n"
          "  --lr X (0.003) --lr-decay X (0.5) --clip X (5) --seed N (1)\n"
          "  --threads N (1)    workers that split the batch's slots (at most --batch);\n"
          "                     deterministic for a seed and a thread count\n"
          "  --half-life H      profile half-life in hours (72)\n"
          "  --curve FILE       the training curve as a TSV\n"
          "  --holdout-users PCT  leave out every event of PCT%% of the users (the user\n"
          "                     split of `interestctl eval --split users`; same seed)\n"
          "  --holdout-seed N   seed of the user split (default 1)\n"
          "  --no-experts       the v1 head (vocabulary/copy gate) instead of the mixture\n"
          "                     of experts; with experts, their fixed constants (recency\n"
          "                     beta, decay gamma and half-life) are tuned on the dev day\n"
          "                     as `interestctl eval` tunes those baselines\n"
          "  --refit            after early stopping, retrain from scratch on train + dev\n"
          "                     (events before test start) for the best epoch count\n"
          "  --grad-dump PREFIX --grad-chunk N\n"
          "                     write chunk N's gradient at initialisation and exit\n"
          "                     (tests/integration/test_torch_grad.sh)\n");
}

typedef struct {
  eval_data_t dev;
} devctx_t;

static int dev_eval(void *ctx, const arch_dims_t *dims, float half_life_s,
                    const uint64_t *vocab_ids, const float *params, double *metric,
                    double *nll) {
  devctx_t *dc = ctx;
  model_t *m = NULL;
  char err[256];
  int rc = model_from_params(dims, half_life_s, vocab_ids, params, NULL, &m, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "interestctl train: %s\n", err);
    return rc;
  }
  eval_row_t row;
  rc = eval_run_model(m, &dc->dev, 256, &row);
  model_destroy(m);
  if (rc < 0) return rc;
  *metric = row.mrr10;
  *nll = row.nll;
  return 0;
}

int ctl_train(int argc, char **argv) {
  static const struct option opts[] = {
      CTLEV_LONG_OPTIONS, /* train has no --test-end */
      {"out", required_argument, 0, 'o'},
      {"hidden", required_argument, 0, 'H'},    {"vocab", required_argument, 0, 'V'},
      {"emb-cat", required_argument, 0, 'C'},   {"emb-act", required_argument, 0, 'A'},
      {"batch", required_argument, 0, 'B'},     {"bptt", required_argument, 0, 'L'},
      {"epochs", required_argument, 0, 'N'},    {"patience", required_argument, 0, 'P'},
      {"lr", required_argument, 0, 'r'},        {"lr-decay", required_argument, 0, 'y'},
      {"clip", required_argument, 0, 'c'},      {"seed", required_argument, 0, 's'},
      {"threads", required_argument, 0, 't'},   {"half-life", required_argument, 0, 'l'},
      {"curve", required_argument, 0, 'u'},     {"grad-dump", required_argument, 0, 'g'},
      {"grad-chunk", required_argument, 0, 'k'}, {"refit", no_argument, 0, 'R'},
      {"holdout-users", required_argument, 0, 'U'}, {"holdout-seed", required_argument, 0, 'S'},
      {"no-experts", no_argument, 0, 'X'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  train_opts_t to;
  train_opts_default(&to);
  ctlev_args_t ea = {0};
  const char *out_path = NULL, *curve_path = NULL, *dump = NULL;
  uint64_t u;
  uint64_t grad_chunk = 0;
  int refit = 0;
  uint64_t holdout_pct = 0, holdout_seed = 1;
  double x;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int bad = 0, r;
    switch (c) {
    case 'o': out_path = optarg; break;
    case 'u': curve_path = optarg; break;
    case 'g': dump = optarg; break;
    case 'R': refit = 1; break;
    case 'X': to.dims.flags &= ~(uint32_t)ARCH_F_EXPERTS; break;
    case 'U': bad = ctlutil_parse_u64(optarg, &holdout_pct) < 0 || holdout_pct == 0 || holdout_pct > 99; break;
    case 'S': bad = ctlutil_parse_u64(optarg, &holdout_seed) < 0; break;
    case 'k': bad = ctlutil_parse_u64(optarg, &grad_chunk) < 0 || grad_chunk > 1000000; break;
    case 'H': case 'V': case 'C': case 'A': case 'B': case 'L': case 'N': case 'P': case 't':
      bad = ctlutil_parse_u64(optarg, &u) < 0 || u > (1u << 24);
      if (c == 'H') to.dims.H = (uint32_t)u;
      if (c == 'V') to.dims.V = (uint32_t)u;
      if (c == 'C') to.dims.EC = (uint32_t)u;
      if (c == 'A') to.dims.EA = (uint32_t)u;
      if (c == 'B') to.batch = (uint32_t)u;
      if (c == 'L') to.bptt = (uint32_t)u;
      if (c == 'N') to.max_epochs = (uint32_t)u;
      if (c == 'P') to.patience = (uint32_t)u;
      if (c == 't') to.threads = (int)u;
      break;
    case 's': bad = ctlutil_parse_u64(optarg, &to.seed) < 0; break;
    case 'r': case 'y': case 'c': case 'l':
      bad = ctlutil_parse_double(optarg, &x) < 0;
      if (c == 'r') to.lr = (float)x;
      if (c == 'y') to.lr_decay = (float)x;
      if (c == 'c') to.clip = (float)x;
      if (c == 'l') to.half_life_s = (float)(x * 3600.0);
      break;
    case 'h': ctlev_args_free(&ea); usage(stdout); return 0;
    default: /* --events, --drop-user, --tz, the windows, --input(-config) */
      if ((r = ctlev_args_option(&ea, c, optarg, "train", usage)) > 0) return r;
      bad = r < 0;
    }
    if (bad) {
      fprintf(stderr, "interestctl train: invalid value '%s'\n", optarg);
      ctlev_args_free(&ea);
      return 2;
    }
  }
  ctlev_args_finish(&ea);
  if (!ea.events_path || (!out_path && !dump) || optind < argc) {
    ctlev_args_free(&ea);
    usage(stderr);
    return 2;
  }
  to.dims.I = arch_input_size(to.dims.EC, to.dims.EA);
  char err[512] = "";
  int status = 1, rc;
  event_t *ev = NULL;
  size_t n = 0;
  devctx_t dc = {0};
  train_result_t res = {0};
  if ((rc = ctlev_args_load(&ea, &ev, &n, err, sizeof err)) < 0) {
    fprintf(stderr, "interestctl train: %s\n", err);
    return 1;
  }
  /* windows from every event, so train and eval derive the same days */
  ctlev_windows(ev, n, ea.tz, &ea.win);
  to.train_end_ms = ea.win.dev_start_ms;
  size_t n_all = n, n_users_out = 0;
  if (holdout_pct) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (!eval_user_held_out(ev[i].user_id, (uint32_t)holdout_pct, holdout_seed)) ev[k++] = ev[i];
      else n_users_out++;
    n = k;
    fprintf(stderr, "train: user split: %llu%% of users held out (seed %llu): %zu of %zu events "
                    "left out\n", (unsigned long long)holdout_pct, (unsigned long long)holdout_seed,
            n_users_out, n_all);
    if (n == 0) {
      fprintf(stderr, "interestctl train: the user split leaves no events\n");
      goto out;
    }
  }
  if (dump) {
    if ((rc = train_grad_dump(&to, ev, n, (uint32_t)grad_chunk, dump, err, sizeof err)) < 0) {
      fprintf(stderr, "interestctl train: %s\n", err);
      goto out;
    }
    status = 0;
    goto out;
  }
  if (!(ea.win.dev_start_ms < ea.win.test_start_ms)) {
    fprintf(stderr, "interestctl train: the dev window is empty\n");
    goto out;
  }
  eval_window_t wdev = {.start_ms = ea.win.dev_start_ms, .end_ms = ea.win.test_start_ms,
                        .half_life_s = to.half_life_s};
  if ((rc = eval_data_build(ev, n, &wdev, &dc.dev)) < 0 || dc.dev.n_targets == 0) {
    fprintf(stderr, "interestctl train: the dev window has no targets\n");
    goto out;
  }
  char a[64], b[64];
  ctlev_fmt_time(ea.win.dev_start_ms, ea.tz, a, sizeof a);
  ctlev_fmt_time(ea.win.test_start_ms, ea.tz, b, sizeof b);
  fprintf(stderr, "train: %zu events; training on events before %s, early stopping on dev "
                  "(%zu targets, until %s)\n", n, a, dc.dev.n_targets, b);
  if (to.dims.flags & ARCH_F_EXPERTS) {
    /* the experts' constants: the recency and decay baselines' tuning on the
     * dev day (the same grid and data as `interestctl eval`) */
    bl_params_t pr, pd;
    eval_row_t rr_, rd_;
    if ((rc = bl_tune(BL_RECENCY, &dc.dev, &pr, &rr_)) < 0 ||
        (rc = bl_tune(BL_DECAY, &dc.dev, &pd, &rd_)) < 0) {
      fprintf(stderr, "interestctl train: tuning the expert constants failed: %s\n",
              ix_strerror(rc));
      goto out;
    }
    to.x_beta = pr.beta;
    to.x_gamma = pd.gamma;
    to.x_hl_s = pd.half_life_s;
    fprintf(stderr, "train: experts: recency beta=%g (dev MRR@10 %.4f), decay gamma=%g "
                    "half-life=%gs (dev MRR@10 %.4f)\n", (double)to.x_beta, rr_.mrr10,
            (double)to.x_gamma, (double)to.x_hl_s, rd_.mrr10);
  }
  to.progress = stderr;
  to.dev_eval = dev_eval;
  to.dev_ctx = &dc;
  if ((rc = train_run(&to, ev, n, &res, err, sizeof err)) < 0) {
    fprintf(stderr, "interestctl train: %s\n", err);
    goto out;
  }
  double sel_metric = res.curve[res.best_epoch ? res.best_epoch - 1 : 0].dev_metric;
  double sel_nll = res.curve[res.best_epoch ? res.best_epoch - 1 : 0].dev_nll;
  uint32_t sel_epoch = res.best_epoch, ran_epochs = res.n_epochs;
  double sel_seconds = res.seconds;
  if (refit) {
    train_opts_t ro = to;
    ro.max_epochs = res.best_epoch;
    ro.train_end_ms = ea.win.test_start_ms;
    ro.dev_eval = NULL;
    ro.lr = to.lr;
    train_result_t rr;
    fprintf(stderr, "train: refit on events before %s for %u epochs\n", b, ro.max_epochs);
    if ((rc = train_run(&ro, ev, n, &rr, err, sizeof err)) < 0) {
      fprintf(stderr, "interestctl train: %s\n", err);
      goto out;
    }
    rr.seconds += res.seconds;
    train_result_t old = res;
    res = rr;
    /* keep the selection run's curve for --curve */
    free(res.curve);
    res.curve = old.curve;
    res.n_epochs = old.n_epochs;
    old.curve = NULL;
    train_result_free(&old);
  }
  char hbuf[64] = "";
  if (holdout_pct)
    snprintf(hbuf, sizeof hbuf, "; users held out %llu%% seed %llu", (unsigned long long)holdout_pct,
             (unsigned long long)holdout_seed);
  modelfile_t mf = {0};
  mf.dims = res.dims;
  mf.half_life_s = res.half_life_s;
  mf.vocab_ids = res.vocab_ids;
  mf.params = res.params;
  snprintf(mf.note, sizeof mf.note,
           "interestctl train: H=%u V=%u EC=%u EA=%u batch=%u bptt=%u lr=%g clip=%g seed=%llu; "
           "best epoch %u of %u on dev (MRR@10 %.4f NLL %.4f, %.0fs)%s; %llu events trained on; "
           "%.0fs in all%s",
           res.dims.H, res.dims.V, res.dims.EC, res.dims.EA, to.batch, to.bptt, (double)to.lr,
           (double)to.clip, (unsigned long long)to.seed, sel_epoch, ran_epochs, sel_metric,
           sel_nll, sel_seconds, refit ? "; refit on train+dev" : "",
           (unsigned long long)res.train_events, res.seconds, hbuf);
  if ((rc = modelfile_write(out_path, &mf, err, sizeof err)) < 0) {
    fprintf(stderr, "interestctl train: %s\n", err);
    goto out;
  }
  fprintf(stderr, "train: wrote %s (crc %08x): %s\n", out_path, mf.crc, mf.note);
  if (curve_path) {
    FILE *f = fopen(curve_path, "w");
    if (!f) {
      fprintf(stderr, "interestctl train: cannot write %s\n", curve_path);
      goto out;
    }
    /* after events_per_s, the training pass's wall and CPU split (train.h) */
    fprintf(f, "# epoch\ttrain_nll\tdev_mrr10\tdev_nll\tseconds\tevents_per_s\ttrain_s\tcpu_s\t"
               "workers\twork_sum_s\twork_min_s\twork_max_s\tserial_s\n");
    for (uint32_t i = 0; i < res.n_epochs; i++) {
      const train_epoch_t *ep = &res.curve[i];
      fprintf(f, "%u\t%.5f\t%.5f\t%.5f\t%.1f\t%.0f\t%.4f\t%.4f\t%u\t%.4f\t%.4f\t%.4f\t%.4f\n",
              ep->epoch, ep->train_loss, ep->dev_metric, ep->dev_nll, ep->seconds,
              ep->events_per_s, ep->train_s, ep->cpu_s, ep->workers, ep->work_sum_s,
              ep->work_min_s, ep->work_max_s, ep->serial_s);
    }
    if (fclose(f) != 0) goto out;
  }
  status = 0;
out:
  train_result_free(&res);
  eval_data_free(&dc.dev);
  free(ev);
  return status;
}
