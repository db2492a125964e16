/* Training the model of arch.h: truncated back-propagation through time over
 * users' event sequences, mini-batches of users (B slots; a slot takes the
 * next user when its user ends, so every step is one sgemm over B rows),
 * Adam, global-norm gradient clipping, early stopping on a dev metric.
 * The forward pass is built from the serving pieces (arch_features,
 * arch_state_advance, head_vocab_logits, head_finish, lstm_pointwise), so
 * what is trained is what serves. Deterministic for a seed and a thread
 * count (OpenBLAS runs single-threaded). */
#ifndef IX_MODEL_TRAIN_H
#define IX_MODEL_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/event.h"
#include "model/arch.h"

typedef struct {
  uint32_t epoch;
  double train_loss;  /* mean NLL over the epoch's training targets */
  double dev_metric;  /* from dev_eval (e.g. MRR@10), NaN without one */
  double dev_nll;
  double seconds;     /* wall time since the start, after this epoch */
  double events_per_s;
  /* the training pass of the epoch (dev scoring not included): wall and
   * process CPU seconds; the workers' CPU seconds in their shares of the
   * chunks (sum, least and most of one worker; a worker runs on its own
   * thread, worker 0 on the caller's); and the caller's wall seconds
   * outside the shares (schedule, packing, dispatch), the serial part */
  double train_s, cpu_s;
  double work_sum_s, work_min_s, work_max_s, serial_s;
  unsigned workers;
} train_epoch_t;

/* Called after each epoch with the current model; fills *metric (higher is
 * better, drives early stopping) and *nll. Returns 0 or a negative IX_E*. */
typedef int (*train_dev_fn)(void *ctx, const arch_dims_t *dims, float half_life_s,
                            const uint64_t *vocab_ids, const float *params, double *metric,
                            double *nll);

typedef struct {
  arch_dims_t dims;       /* V, H, EC, EA, I, flags */
  float half_life_s;      /* profile half-life stored in the model */
  uint32_t batch;         /* users per step (slots) */
  uint32_t bptt;          /* steps per truncated-BPTT chunk */
  uint32_t max_epochs;
  uint32_t patience;      /* epochs without dev improvement before stopping */
  float lr;               /* Adam step size */
  float lr_decay;         /* lr *= lr_decay after an epoch without improvement */
  float clip;             /* global gradient norm clip (0 = none) */
  /* the fixed expert constants stored with ARCH_F_EXPERTS (arch.h): recency
   * beta, decay gamma and half-life (seconds, 0 = none); not trained */
  float x_beta, x_gamma, x_hl_s;
  uint64_t seed;
  int threads;            /* workers: the batch's slots are split across them (forward,
                           * backward and their gradients; deterministic for a count,
                           * other counts differ in the rounding of the gradient sums;
                           * OpenBLAS runs single-threaded; at most batch) */
  int64_t train_end_ms;   /* only events before this time are trained on */
  FILE *progress;         /* one line per epoch (NULL = quiet) */
  train_dev_fn dev_eval;  /* NULL = no early stopping: all epochs run */
  void *dev_ctx;
} train_opts_t;

/* Defaults: dims of arch_dims_default with ARCH_F_HEAD_BF16 (new models are
 * served with the bf16 head) and ARCH_F_EXPERTS (beta 0.65, gamma 0.7,
 * half-life 6 h: the baselines' Taobao tuning; `interestctl train` tunes them), half-life ARCH_DEFAULT_HALF_LIFE_S,
 * batch 32, bptt 32, 30 epochs, patience 3, lr 3e-3, lr_decay 0.5, clip 5,
 * seed 1, 1 thread, no time limit. */
void train_opts_default(train_opts_t *o);

typedef struct {
  arch_dims_t dims;
  float half_life_s;
  uint64_t *vocab_ids;     /* V ids, [0] = 0 ("other"); owned */
  float *params;           /* arch_layout(dims).total floats (best on dev); owned */
  train_epoch_t *curve;    /* n_epochs entries; owned */
  uint32_t n_epochs;
  uint32_t best_epoch;     /* 1-based; 0 when no dev */
  double seconds;          /* total wall time */
  uint64_t train_events, train_targets;
} train_result_t;

/* Train on events (any order; each user's events are taken in (time, input
 * order)). Returns 0 or a negative IX_E* with errstr filled. Free the
 * result with train_result_free(). */
int train_run(const train_opts_t *o, const event_t *events, size_t n, train_result_t *res,
              char *errstr, size_t errstr_size);
void train_result_free(train_result_t *res);

/* The vocabulary of the training data: the V-1 most frequent categories of
 * events before train_end_ms (ties by smaller id) after ids[0] = 0. ids has
 * V entries; unused tail entries are left 0 only when fewer categories
 * exist (then the function returns the number filled, else V). */
size_t train_build_vocab(const event_t *events, size_t n, int64_t train_end_ms, uint32_t V,
                         uint64_t *ids);

/* Mean training loss (NLL of every non-first training event, by the
 * training forward pass) of params over the same data and vocabulary
 * train_run would build from (o, events). For tests: it must equal the
 * serving path's NLL on the same targets. Returns 0 or IX_E*. */
int train_loss(const train_opts_t *o, const event_t *events, size_t n, const float *params,
               double *mean_nll, uint64_t *targets, char *errstr, size_t errstr_size);

/* Gradient check support (tests/integration/test_torch_grad.sh): initialise
 * as train_run would, run chunks 0 .. chunk-1 forward only (carrying the
 * slots' states, no update), then compute chunk `chunk`'s mean loss and its
 * gradient (before clipping), and write <prefix>.params.f32, .grad.f32 and
 * .json (dims, layout, the slots' event sequences, the loss). */
int train_grad_dump(const train_opts_t *o, const event_t *events, size_t n, uint32_t chunk,
                    const char *prefix, char *errstr, size_t errstr_size);

#endif
