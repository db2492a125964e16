/* Model engine benchmark, one thread: events/s of the LSTM cell for one user
 * and for batches of 1..512, with and without the head; achieved GFLOP/s
 * against OpenBLAS sgemm measured in the same run; PyTorch LSTMCell at batch
 * 1 and 256 in the same run (tests/bench/torch_lstmcell.py as a subprocess).
 * Each figure is the best of several timed repetitions (the machine is shared).
 *   bench_lstm [--quick] [--no-torch] [--cputime] [--batch N]
 *              [--only cell|bf16|blas|model|head|bf16head|experts]
 * --cputime times with this thread's CPU clock instead of the wall clock (for
 * A/B runs on a busy machine: time the thread spent descheduled is not
 * counted; cache interference still is). --batch N runs only that batch row
 * (for perf; no PyTorch, no ratios); --only cell|blas|model|head|bf16head times one
 * column of it (the others print as 1 event/s); bf16 = the bf16 cell
 * (lstm_new_bf16: weights and x rounded to bf16, h and c stored as bf16, the
 * serving model's cell) on the same I=48 -> H=64 shape as the generic cell;
 * cell+head = the serving step with predictions and the float32 head
 * (kern_gemm), bf16 head = the same model served with ARCH_F_HEAD_BF16
 * (kern_gemm_bf16p), timed right after it on the same states (A/B).
 * Env: IX_SOURCE_DIR (to find the python script; default: from argv[0]). */
#include <cblas.h>
#undef I
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/arch.h"
#include "model/kernels.h"
#include "model/lstm.h"
#include "model/model.h"

#define IN 48
#define HID 64
#define POOL 32768 /* users whose states the waves cycle through (~35 MB) */

static clockid_t bench_clock = CLOCK_MONOTONIC;
static double now(void) {
  struct timespec t;
  clock_gettime(bench_clock, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t seed = 1;
static float frand(void) {
  seed = seed * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((seed >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static double rep_time = 0.25; /* seconds per repetition */
static int reps = 5;

/* Best seconds per call of fn over reps repetitions of ~rep_time each. */
#define BEST_OF(OUT, ...)                                         \
  do {                                                            \
    double best_ = 1e30;                                          \
    long calls_ = 1;                                              \
    for (int r_ = 0; r_ < reps; r_++) {                           \
      double t0_ = now();                                         \
      for (long k_ = 0; k_ < calls_; k_++) { __VA_ARGS__; }              \
      double dt_ = now() - t0_;                                   \
      if (dt_ < rep_time && r_ == 0) {                            \
        calls_ = (long)(calls_ * (rep_time / (dt_ + 1e-9))) + 1;  \
        r_ = -1;                                                  \
        continue;                                                 \
      }                                                           \
      if (dt_ / calls_ < best_) best_ = dt_ / calls_;             \
    }                                                             \
    OUT = best_;                                                  \
  } while (0)

int main(int argc, char **argv) {
  int quick = 0, torch = 1;
  size_t only_batch = 0;
  const char *only = NULL; /* --only cell|bf16|blas|model|head|bf16head|experts: one column (for perf) */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) quick = 1, reps = 3, rep_time = 0.1;
    else if (!strcmp(argv[i], "--no-torch")) torch = 0;
    else if (!strcmp(argv[i], "--cputime")) bench_clock = CLOCK_THREAD_CPUTIME_ID;
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) only_batch = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
  }
  openblas_set_num_threads(1);
  const char *ct = getenv("OPENBLAS_CORETYPE");
  printf("bench_lstm: %s clock; one thread; OPENBLAS_CORETYPE=%s; OpenBLAS core %s; model kernels %s\n",
         bench_clock == CLOCK_MONOTONIC ? "wall" : "thread CPU", ct ? ct : "(unset: auto-detected)",
         openblas_get_corename(), kern_name());

  /* ---- sgemm peak reference: 256x96 . 96x256 ---- */
  enum { PM = 256, PK = 96, PN = 256 };
  float *A = malloc(PM * PK * 4), *B = malloc(PK * PN * 4), *C = malloc(PM * PN * 4);
  for (int i = 0; i < PM * PK; i++) A[i] = frand();
  for (int i = 0; i < PK * PN; i++) B[i] = frand();
  double t_sgemm = 1.0, t_kern = 1.0;
  if (!only) BEST_OF(t_sgemm, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PM, PN, PK, 1.0f, A, PK, B, PN,
                      0.0f, C, PN));
  double peak = 2.0 * PM * PN * PK / t_sgemm * 1e-9;
  kern_w_t kw;
  kern_w_pack(&kw, PK, PN, B, PK); /* (shape only; values irrelevant) */
  if (!only) BEST_OF(t_kern, kern_gemm(&kw, PM, A, PK, C, PN));
  double kpeak = 2.0 * PM * PN * PK / t_kern * 1e-9;
  printf("sgemm 256x96.96x256: OpenBLAS %.1f GFLOP/s (the peak reference); model kern_gemm "
         "%.1f GFLOP/s\n", peak, kpeak);
  kern_w_free(&kw);
  free(A), free(B), free(C);

  /* ---- generic cell (I=48 -> H=64), PyTorch layout ---- */
  const size_t G = 4 * HID;
  float *w_ih = malloc(G * IN * 4), *w_hh = malloc(G * HID * 4), *b_ih = malloc(G * 4),
        *b_hh = malloc(G * 4);
  for (size_t i = 0; i < G * IN; i++) w_ih[i] = 0.2f * frand();
  for (size_t i = 0; i < G * HID; i++) w_hh[i] = 0.2f * frand();
  for (size_t i = 0; i < G; i++) b_ih[i] = 0.1f * frand(), b_hh[i] = 0.1f * frand();
  lstm_t *cell;
  if (lstm_new(IN, HID, w_ih, w_hh, b_ih, b_hh, 1024, &cell) < 0) return 1;
  lstm_t *cellb;
  if (lstm_new_bf16(IN, HID, w_ih, w_hh, b_ih, b_hh, 1024, &cellb) < 0) return 1;
  uint16_t *hcb = calloc((size_t)POOL * 2 * HID, 2);
  uint16_t **hpb = malloc(1024 * sizeof(uint16_t *)), **cpb = malloc(1024 * sizeof(uint16_t *));
  float *hc = calloc((size_t)POOL * 2 * HID, 4);
  float *x = malloc(1024 * IN * 4);
  for (int i = 0; i < 1024 * IN; i++) x[i] = frand();
  float **hp = malloc(1024 * sizeof(float *)), **cp = malloc(1024 * sizeof(float *));
  const double cell_flops = 2.0 * G * (IN + HID);

  double t1 = 1.0;
  size_t u1 = 0;
  if (!only) BEST_OF(t1, {
        float *h = hc + (u1 % POOL) * 2 * HID;
        lstm_step(cell, x, h, h + HID);
        u1++;
      });
  printf("\nsingle-user step, generic cell I=%d H=%d: %.0f ns/event, %.2f M events/s, %.1f GFLOP/s\n",
         IN, HID, t1 * 1e9, 1e-6 / t1, cell_flops / t1 * 1e-9);

  /* OpenBLAS sgemm formulation of the same cell (not batch-invariant), for comparison */
  float *wcat = malloc(G * (IN + HID) * 4), *xh = malloc(1024 * (IN + HID) * 4),
        *pre = malloc(1024 * G * 4);
  for (size_t j = 0; j < G; j++) {
    memcpy(wcat + j * (IN + HID), w_ih + j * IN, IN * 4);
    memcpy(wcat + j * (IN + HID) + IN, w_hh + j * HID, HID * 4);
  }

  static const size_t batches[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  const size_t nb = sizeof batches / sizeof batches[0];
  double t_cell[10], t_bf[10], t_blas[10], t_mcell[10], t_mhead[10], t_mheadb[10], t_mx[10];
  printf("\n%6s %12s %9s %12s %12s %12s %14s %9s %14s %14s %14s\n", "batch", "cell Mev/s", "GFLOP/s",
         "bf16 Mev/s", "blas Mev/s", "model cell", "model GFLOP/s", "peak %", "cell+head k/s",
         "bf16 head k/s", "experts k/s");
  /* the serving model: default dims V=1000, H=64, random weights */
  arch_dims_t d;
  arch_dims_default(&d);
  arch_layout_t L;
  arch_layout(&d, &L);
  float *params = malloc(L.total * 4);
  for (size_t i = 0; i < L.total; i++) params[i] = 0.2f * frand();
  uint64_t *ids = malloc(d.V * 8);
  ids[0] = 0;
  for (uint32_t j = 1; j < d.V; j++) ids[j] = 100 + j;
  model_t *m;
  char err[256];
  if (model_from_params(&d, ARCH_DEFAULT_HALF_LIFE_S, ids, params, NULL, &m, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  /* the same model served with the bf16 head: same states (same fingerprint) */
  model_t *mb;
  d.flags |= ARCH_F_HEAD_BF16;
  if (model_from_params(&d, ARCH_DEFAULT_HALF_LIFE_S, ids, params, NULL, &mb, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  /* the bf16-head model with experts (ARCH_F_EXPERTS): what `interestctl
   * train` writes now; same state size, its own parameter layout */
  model_t *mx;
  arch_dims_t dx = d;
  dx.flags |= ARCH_F_EXPERTS;
  arch_layout_t LX;
  arch_layout(&dx, &LX);
  float *params_x = malloc(LX.total * 4);
  for (size_t i = 0; i < LX.total; i++) params_x[i] = 0.2f * frand();
  params_x[LX.x_beta] = 0.65f;
  params_x[LX.x_gamma] = 0.7f;
  params_x[LX.x_hl] = 21600.0f;
  if (model_from_params(&dx, ARCH_DEFAULT_HALF_LIFE_S, ids, params_x, NULL, &mx, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  d.flags &= ~(uint32_t)ARCH_F_HEAD_BF16;
  size_t ss = model_state_size(m);
  unsigned char *states = malloc((size_t)POOL * ss);
  for (size_t u = 0; u < POOL; u++) model_state_init(m, states + u * ss);
  event_t *evs = malloc(1024 * sizeof(event_t));
  void **sp = malloc(1024 * sizeof(void *));
  prediction_t *preds = malloc(1024 * sizeof(prediction_t));
  /* warm the states to steady state: 40 events each fill the recent list and
   * the profile (ARCH_K = ARCH_P = 16 slots), so every row of the table sees
   * the same per-user work (with 3 events each, later rows ran on fuller
   * states than earlier ones and the head looked slower at large batches) */
  int64_t ts = 1511700000000;
  for (int e = 0; e < 40; e++)
    for (size_t u0 = 0; u0 < POOL; u0 += 512) {
      for (size_t b = 0; b < 512; b++) {
        sp[b] = states + (u0 + b) * ss;
        evs[b] = (event_t){u0 + b, 1, ids[1 + (seed = seed * 6364136223846793005ull + 1) % 1200 % 999],
                           ts += 1000, ACTION_VIEW};
      }
      model_step_batch(m, sp, evs, 512, NULL);
    }
  const double model_flops = 2.0 * G * (ARCH_N_TIME + HID);
  for (size_t bi = 0; bi < nb; bi++) {
    size_t n = batches[bi], u = 0;
    t_cell[bi] = t_bf[bi] = t_blas[bi] = t_mcell[bi] = t_mhead[bi] = t_mheadb[bi] = t_mx[bi] = 1.0;
    if (only_batch && n != only_batch) continue;
    if (!only || !strcmp(only, "cell")) BEST_OF(t_cell[bi], {
          for (size_t b = 0; b < n; b++) {
            float *h = hc + ((u + b) % POOL) * 2 * HID;
            hp[b] = h, cp[b] = h + HID;
          }
          u += n;
          lstm_step_batch(cell, n, x, hp, cp);
        });
    t_cell[bi] /= n;
    u = 0;
    if (!only || !strcmp(only, "bf16")) BEST_OF(t_bf[bi], {
          for (size_t b = 0; b < n; b++) {
            uint16_t *h = hcb + ((u + b) % POOL) * 2 * HID;
            hpb[b] = h, cpb[b] = h + HID;
          }
          u += n;
          lstm_step_batch_bf16(cellb, n, x, hpb, cpb, NULL, NULL);
        });
    t_bf[bi] /= n;
    u = 0;
    if (!only || !strcmp(only, "blas")) BEST_OF(t_blas[bi], {
          for (size_t b = 0; b < n; b++) {
            float *h = hc + ((u + b) % POOL) * 2 * HID;
            hp[b] = h;
            memcpy(xh + b * (IN + HID), x + b * IN, IN * 4);
            memcpy(xh + b * (IN + HID) + IN, h, HID * 4);
            for (size_t j = 0; j < G; j++) pre[b * G + j] = b_ih[j] + b_hh[j];
          }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)G, IN + HID, 1.0f, xh,
                      IN + HID, wcat, IN + HID, 1.0f, pre, (int)G);
          for (size_t b = 0; b < n; b++) lstm_pointwise(HID, pre + b * G, hp[b] + HID, hp[b] + HID, hp[b], NULL);
          u += n;
        });
    t_blas[bi] /= n;
    for (int head = 0; head < 4; head++) {
      static const char *const col[4] = {"model", "head", "bf16head", "experts"};
      if (only && strcmp(only, col[head])) continue;
      size_t uu = 0;
      double t;
      BEST_OF(t, {
            for (size_t b = 0; b < n; b++) {
              size_t k = (uu + b) % POOL;
              sp[b] = states + k * ss;
              seed = seed * 6364136223846793005ull + 1442695040888963407ull;
              uint64_t r = seed >> 33;
              evs[b] = (event_t){k, r, (r % 10 < 4) ? 0 : ids[1 + r % 999], ts += 500,
                                 (action_t)(r % 5)};
              if (evs[b].category_id == 0) evs[b].category_id = ((arch_state_t *)sp[b])->prev_cat;
            }
            uu += n;
            model_step_batch(head == 3 ? mx : head == 2 ? mb : m, sp, evs, n, head ? preds : NULL);
          });
      (head == 3 ? t_mx : head == 2 ? t_mheadb : head ? t_mhead : t_mcell)[bi] = t / n;
    }
    printf("%6zu %12.2f %9.1f %12.2f %12.2f %12.2f %14.1f %9.0f %14.0f %14.0f %14.0f\n", n,
           1e-6 / t_cell[bi], cell_flops / t_cell[bi] * 1e-9, 1e-6 / t_bf[bi], 1e-6 / t_blas[bi],
           1e-6 / t_mcell[bi], model_flops / t_mcell[bi] * 1e-9,
           100.0 * (cell_flops / t_cell[bi] * 1e-9) / peak, 1e-3 / t_mhead[bi], 1e-3 / t_mheadb[bi],
           1e-3 / t_mx[bi]);
  }
  printf("(cell = generic lstm_step_batch I=%d H=%d, GEMM over [x,h] K=%d; bf16 = the bf16 cell "
         "lstm_step_batch_bf16 on the same shape (bf16 weights, x, h, c); blas = the same with "
         "cblas_sgemm instead of kern_gemm (not batch-invariant); model cell = model_step_batch "
         "without head: embedding projections folded into tables, GEMM over [time, h] K=%d, "
         "plus features/recent/profile; cell+head = model_step_batch with predictions, V=%u, "
         "float32 head; bf16 head = the same with ARCH_F_HEAD_BF16; "
         "states cycle through %d users)\n",
         IN, HID, IN + HID, ARCH_N_TIME + HID, d.V, POOL);

  if (only_batch) torch = 0; /* --batch: one row only, no ratios */
  if (torch) {
    char script[1024], cmd[1200];
    const char *src = getenv("IX_SOURCE_DIR");
    if (src) snprintf(script, sizeof script, "%s/tests/bench/torch_lstmcell.py", src);
    else snprintf(script, sizeof script, "%s", __FILE__);
    if (!src) {
      char *slash = strrchr(script, '/');
      if (slash) strcpy(slash + 1, "torch_lstmcell.py");
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %d %d 1,256 %s", script, IN, HID,
             bench_clock == CLOCK_MONOTONIC ? "wall" : "cpu");
    FILE *p = popen(cmd, "r");
    double tt[2] = {0, 0};
    char line[256];
    while (p && fgets(line, sizeof line, p)) {
      int b;
      double us;
      if (sscanf(line, "torch_lstmcell batch=%d us_per_step=%lf", &b, &us) == 2)
        tt[b == 1 ? 0 : 1] = us * 1e-6;
    }
    int prc = p ? pclose(p) : -1;
    if (prc != 0 || tt[0] == 0 || tt[1] == 0) {
      fprintf(stderr, "bench_lstm: PyTorch baseline failed (%s)\n", cmd);
      return 1;
    }
    printf("\nPyTorch LSTMCell(%d->%d), no_grad, 1 thread, %s clock: batch 1 %.2f us/step (%.3f M ev/s); "
           "batch 256 %.1f us/step (%.2f M ev/s)\n",
           IN, HID, bench_clock == CLOCK_MONOTONIC ? "wall" : "thread CPU", tt[0] * 1e6,
           1e-6 / tt[0], tt[1] * 1e6, 256e-6 / tt[1]);
    printf("ratio C/PyTorch: batch 1: single-user lstm_step %.1fx, lstm_step_batch(1) %.1fx, "
           "bf16 cell %.1fx; batch 256: lstm_step_batch %.1fx, bf16 cell %.1fx, model cell %.1fx\n",
           tt[0] / t1, tt[0] / t_cell[0], tt[0] / t_bf[0], (tt[1] / 256) / t_cell[8],
           (tt[1] / 256) / t_bf[8], (tt[1] / 256) / t_mcell[8]);
  }
  if (!only_batch)
    printf("\ntargets (H=64): batched cell >= 3 M ev/s: %s (generic fp32 %.2f, bf16 %.2f, model "
         "%.2f at 256); cell+head >= 300 k ev/s: %s (%.0f k at 256; bf16 head %.0f k)\n",
         (1e-6 / t_bf[8] >= 3 || 1e-6 / t_mcell[8] >= 3) ? "yes" : "NO", 1e-6 / t_cell[8],
         1e-6 / t_bf[8], 1e-6 / t_mcell[8], 1e-3 / t_mhead[8] >= 300 ? "yes" : "NO",
         1e-3 / t_mhead[8], 1e-3 / t_mheadb[8]);
  (void)quick;
  model_destroy(m);
  model_destroy(mb);
  model_destroy(mx);
  free(params_x);
  lstm_destroy(cell);
  lstm_destroy(cellb);
  free(hcb), free(hpb), free(cpb);
  free(states), free(evs), free(sp), free(preds), free(params), free(ids), free(hc), free(x),
      free(hp), free(cp), free(wcat), free(xh), free(pre), free(w_ih), free(w_hh), free(b_ih),
      free(b_hh);
  return 0;
}
