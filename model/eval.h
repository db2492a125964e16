/* Evaluation of next-category predictors on a time-held-out window
 * (docs/MODEL.md, "Evaluation protocol"): every predictor runs causally over
 * each user's full history in global event-time order; a target is an event
 * whose time is in [start, end) and that is not its user's first event; the
 * prediction scored is the one made after the user's previous event.
 * Metrics: Acc@1, Recall@5, Recall@10, MRR@10, NLL, and the AUC (ties count
 * one half) of the shift score and of the fluctuation score for the label
 * "the next category is not in the user's long-term profile". */
#ifndef IX_MODEL_EVAL_H
#define IX_MODEL_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/event.h"
#include "model/model.h"

#define EVAL_TOPK 10
#define EVAL_NAME_MAX 48
#define EVAL_P_FLOOR 1e-9 /* probabilities are clamped below at this for the NLL */
/* History-length buckets (events of the user before the target):
 * 1, 2-4, 5-9, 10-19, 20-49, 50-99, 100-199, 200+ */
#define EVAL_N_BUCKETS 8
#define EVAL_FALL_BINS 5

/* ---- Metric accumulator (pure arithmetic; unit-tested on hand-made input) -- */

typedef struct eval_acc eval_acc_t;

/* Free with eval_acc_destroy(). Returns NULL when out of memory. */
eval_acc_t *eval_acc_new(void);
void eval_acc_destroy(eval_acc_t *acc);

/* One target: rank = 1-based position of the true category in the top-10
 * list (0 = not in the list); p = the predictor's probability of the true
 * category; shift, fluct = the two scores; outside = the label (true
 * category not in the long-term profile); hist = events of the user before
 * the target. Returns 0 or IX_ENOMEM. */
int eval_acc_add(eval_acc_t *acc, unsigned rank, double p, float shift, float fluct,
                 int outside, uint32_t hist);

/* Area under the ROC curve of scores for binary labels (1 = positive), by
 * the rank-sum formula with ties counted one half. NaN when one class is
 * empty. score and label have n entries; scratch-free (allocates). */
double eval_auc(size_t n, const float *score, const uint8_t *label);

/* History-length bucket of a target (0 .. EVAL_N_BUCKETS-1). */
unsigned eval_bucket(uint32_t hist);
/* Lower bound of a bucket's history length (for labels: 1, 2, 5, 10, ...). */
uint32_t eval_bucket_lo(unsigned bucket);

typedef struct {
  char name[EVAL_NAME_MAX];
  char params[160];      /* tuned hyper-parameters, free text */
  uint64_t n_targets;
  uint64_t n_outside;    /* targets outside the long-term profile */
  double acc1, rec5, rec10, mrr10; /* fractions in [0, 1] */
  double nll;            /* mean -ln p, p clamped at EVAL_P_FLOOR */
  double auc_shift, auc_fluct;
  uint64_t b_n[EVAL_N_BUCKETS];
  double b_mrr10[EVAL_N_BUCKETS], b_rec5[EVAL_N_BUCKETS];
  /* The falling side (lstm only): every (target, category of the previous
   * prediction's falling list) pair, by bin of the category's predicted
   * p_next (EVAL_FALL_BINS, upper bounds eval_fall_bin_hi): pairs, sums of its
   * long-term share p_long and of p_next, and how often it was the target.
   * Calibrated when observed ~ p_next; "falling" holds when observed < p_long. */
  uint64_t fall_n[EVAL_FALL_BINS + 1]; /* last: all bins */
  double fall_plong[EVAL_FALL_BINS + 1], fall_pnext[EVAL_FALL_BINS + 1];
  uint64_t fall_hit[EVAL_FALL_BINS + 1];
} eval_row_t;

/* Upper bound of falling bin b's p_next (0.02, 0.05, 0.1, 0.2, 1). */
double eval_fall_bin_hi(unsigned b);
/* The falling calibration table of row (nothing when it has no pairs). */
void eval_print_falling(FILE *out, const eval_row_t *row, int markdown);

/* Summarise the accumulator into row (name and params are left alone). */
void eval_acc_summary(const eval_acc_t *acc, eval_row_t *row);

/* ---- The data: events in evaluation order, with targets and labels -------- */

/* Which users' events may be targets (eval_window_t.users). */
typedef enum {
  EVAL_USERS_ALL = 0,  /* every user (the time split) */
  EVAL_USERS_HELD_OUT, /* only users eval_user_held_out() selects (the user split) */
  EVAL_USERS_TRAINING  /* only the others (what training and tuning may see) */
} eval_users_t;

typedef struct {
  int64_t start_ms, end_ms; /* target window [start, end); events at or after end are not fed */
  float half_life_s;        /* long-term profile half-life for the labels (model's default) */
  eval_users_t users;       /* whose events are targets (every user is still fed) */
  uint32_t holdout_pct;     /* the user split: percent of users held out (1..99) */
  uint64_t holdout_seed;    /* and its seed */
} eval_window_t;

/* The user split, one rule for `interestctl train` and `eval`: user_id is
 * held out when fmix64(user_id ^ fmix64(seed + 1)) % 100 < pct. Depends only
 * on the id, so every tool and every file of the same users agrees. */
int eval_user_held_out(uint64_t user_id, uint32_t pct, uint64_t seed);

typedef struct {
  size_t n;           /* events, sorted by (time, input order) */
  event_t *ev;        /* owned */
  uint32_t *user;     /* dense user index per event, owned */
  uint32_t n_users;
  uint32_t *hist;     /* events of the user before this one, owned */
  uint8_t *target;    /* 1 when the event is a target of the window, owned */
  uint8_t *outside;   /* label for targets: category not in the profile, owned */
  size_t n_fed;       /* prefix of ev[] that is fed (events before window end) */
  size_t n_targets;
  eval_window_t win;
} eval_data_t;

/* Sort a copy of events by (ts, input order), index users, mark the targets
 * of the window and compute their labels with the profile of model/profile.h.
 * Returns 0, IX_EINVAL (no events) or IX_ENOMEM. Free with eval_data_free(). */
int eval_data_build(const event_t *events, size_t n, const eval_window_t *win,
                    eval_data_t *data);
void eval_data_free(eval_data_t *data);

/* Sort events in place by (ts, input order): the order every run uses. */
int eval_sort_events(event_t *events, size_t n);

/* ---- Runs ------------------------------------------------------------------ */

/* The LSTM through the serving path: model_state_init, model_step_batch in
 * waves of distinct users (at most wave users per call), top-10 from the
 * prediction's next list, p from model_prob, shift_prob and fluctuation from
 * the prediction. Fills row (name "lstm"). Returns 0 or a negative IX_E*. */
int eval_run_model(model_t *m, const eval_data_t *data, size_t wave, eval_row_t *row);

/* ---- Output ---------------------------------------------------------------- */

/* Print rows as an aligned text table (markdown = 0) or a Markdown table. */
void eval_print_table(FILE *out, const eval_row_t *rows, size_t n, int markdown);
/* Rows' metrics by history-length bucket as a TSV for gnuplot:
 * bucket_lo, then n and MRR@10 per row. */
void eval_print_buckets(FILE *out, const eval_row_t *rows, size_t n);

#endif
