/* Training (train.h): truncated BPTT with hand-written backward passes for
 * the head and the LSTM cell, checked against torch.autograd by
 * tests/integration/test_torch_grad.sh. One chunk = bptt steps of B slots;
 * per step the gate pre-activations of all slots are one sgemm, and the
 * head and the weight gradients of a chunk are one sgemm each. The head of
 * the target rows (softmax, copy and mixture terms, forward and backward)
 * is split across opts.threads threads; sums over rows stay serial and in
 * row order, so the result has the same bits at any thread count. */
#include "model/train.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#undef I

#include "common/clock.h"
#include "common/err.h"
#include "common/hash.h"
#include "model/head.h"
#include "model/lstm.h"
#include "model/vocab.h"

void train_opts_default(train_opts_t *o) {
  memset(o, 0, sizeof *o);
  arch_dims_default(&o->dims);
  o->dims.flags |= ARCH_F_HEAD_BF16; /* new models are served with the bf16 head */
  o->dims.flags |= ARCH_F_EXPERTS;
  o->x_beta = 0.65f;
  o->x_gamma = 0.7f;
  o->x_hl_s = 21600.0f;
  o->half_life_s = ARCH_DEFAULT_HALF_LIFE_S;
  o->batch = 32;
  o->bptt = 32;
  o->max_epochs = 30;
  o->patience = 3;
  o->lr = 3e-3f;
  o->lr_decay = 0.5f;
  o->clip = 5.0f;
  o->seed = 1;
  o->threads = 1;
  o->train_end_ms = INT64_MAX;
}

void train_result_free(train_result_t *res) {
  if (!res) return;
  free(res->vocab_ids);
  free(res->params);
  free(res->curve);
  memset(res, 0, sizeof *res);
}

/* ------------------------------------------------------------------ rng */

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = ix_splitmix64(*s);
  *s += 0x9e3779b97f4a7c15ULL;
  return x;
}
static float rng_uniform(uint64_t *s, float a) { /* U(-a, a) */
  return a * (2.0f * (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f) - 1.0f);
}

/* ---------------------------------------------------------------- vocab */

typedef struct {
  uint64_t id;
  uint64_t count;
} catcount_t;

static int cmp_catcount(const void *a, const void *b) {
  const catcount_t *x = a, *y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

size_t train_build_vocab(const event_t *events, size_t n, int64_t train_end_ms, uint32_t V,
                         uint64_t *ids) {
  memset(ids, 0, (size_t)V * sizeof *ids);
  uint64_t *all = malloc((n ? n : 1) * sizeof *all);
  catcount_t *cc = malloc((n ? n : 1) * sizeof *cc);
  size_t m = 0, nc = 0, filled = 1;
  if (!all || !cc) goto out;
  for (size_t i = 0; i < n; i++)
    if (events[i].ts_ms < train_end_ms) all[m++] = events[i].category_id;
  qsort(all, m, sizeof *all, cmp_u64);
  for (size_t i = 0; i < m;) {
    size_t j = i;
    while (j < m && all[j] == all[i]) j++;
    if (all[i] != 0) { /* id 0 is reserved for the "other" bucket */
      cc[nc].id = all[i];
      cc[nc].count = j - i;
      nc++;
    }
    i = j;
  }
  qsort(cc, nc, sizeof *cc, cmp_catcount);
  for (size_t k = 0; k < nc && filled < V; k++) ids[filled++] = cc[k].id;
out:
  free(all);
  free(cc);
  return filled;
}

/* -------------------------------------------------------------- trainer */

typedef struct {
  arch_dims_t d;
  arch_layout_t L;
  size_t P, B, T, I, H, G, XW, V, EC, EA;
  float half_life_s;
  float x_beta, x_gamma, x_hl_s; /* fixed expert constants (ARCH_F_EXPERTS) */
  float *params, *grad, *am, *av;
  uint64_t adam_t;
  /* data: events grouped by user, (time, input order) within a user */
  event_t *ev;
  int32_t *idx;
  size_t n_ev;
  uint32_t n_users;
  size_t *u_start;
  uint32_t *u_len;
  uint32_t *order;
  uint32_t next_user;
  uint64_t rng;
  uint64_t *vocab_ids;
  uint64_t *vocab_count; /* training-event count per vocab index (index 0: the rest) */
  /* slots */
  int64_t *s_user; /* -1 = idle */
  uint32_t *s_pos;
  arch_state_t *s_state; /* headers only */
  float *s_h, *s_c;
  /* chunk buffers, T*B rows */
  float *XH, *PRE, *ACT, *CP, *C, *Hs, *dH;
  uint8_t *active, *reset;
  int32_t *cidx;
  uint8_t *aidx;
  size_t T_eff;
  /* targets of the chunk */
  size_t R;
  uint32_t *trow;
  arch_state_t *tsnap;
  uint64_t *tcat;
  int32_t *tidx;
  float *HT, *Z, *dHT;
  head_out_t *hout;
  /* backward scratch */
  float *dXH, *dh_next, *dc_next, *Wcat, *bias, *dWcat, *tc;
  /* per target row: forward probability of the target; backward the copy
   * and mixture/gate logit gradients (accumulated into grad in row order) */
  float *tprob, *tds, *tdl;
  float bscale; /* chunk_backward's scale, for the row workers */
  unsigned nthreads;
} trainer_t;

static void trainer_free(trainer_t *t) {
  if (!t) return;
  void *ptrs[] = {t->params, t->grad,   t->am,     t->av,      t->ev,    t->idx,     t->u_start,
                  t->u_len,  t->order,  t->vocab_ids, t->vocab_count, t->s_user, t->s_pos,
                  t->s_state, t->s_h,   t->s_c,    t->XH,      t->PRE,   t->ACT,     t->CP,
                  t->C,      t->Hs,     t->dH,     t->active,  t->reset, t->cidx,    t->aidx,
                  t->trow,   t->tsnap,  t->tcat,   t->tidx,    t->HT,    t->Z,       t->dHT,
                  t->hout,   t->dXH,    t->dh_next, t->dc_next, t->Wcat, t->bias,    t->dWcat,
                  t->tc,     t->tprob,  t->tds,    t->tdl};
  for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
  free(t);
}

typedef struct {
  event_t ev;
  size_t pos;
} uev_t;

static int cmp_uev(const void *a, const void *b) {
  const uev_t *x = a, *y = b;
  if (x->ev.user_id != y->ev.user_id) return x->ev.user_id < y->ev.user_id ? -1 : 1;
  if (x->ev.ts_ms != y->ev.ts_ms) return x->ev.ts_ms < y->ev.ts_ms ? -1 : 1;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

static void *zalloc(size_t n, size_t size) { return calloc(n ? n : 1, size); }
#define ALLOC(p, n) ((p) = zalloc((n), sizeof *(p)))

static void init_params(trainer_t *t) {
  uint64_t *s = &t->rng;
  const arch_layout_t *L = &t->L;
  float *p = t->params;
  float k = 1.0f / sqrtf((float)t->H);
  for (size_t i = 0; i < t->V * t->EC; i++) p[L->emb_cat + i] = rng_uniform(s, 0.1f);
  for (size_t i = 0; i < ARCH_N_ACTIONS * t->EA; i++) p[L->emb_act + i] = rng_uniform(s, 0.1f);
  for (size_t i = 0; i < t->G * t->I; i++) p[L->w_ih + i] = rng_uniform(s, k);
  for (size_t i = 0; i < t->G * t->H; i++) p[L->w_hh + i] = rng_uniform(s, k);
  for (size_t i = 0; i < t->G; i++) p[L->b_ih + i] = rng_uniform(s, k);
  for (size_t i = 0; i < t->G; i++) p[L->b_hh + i] = rng_uniform(s, k);
  for (size_t i = t->H; i < 2 * t->H; i++) p[L->b_ih + i] += 1.0f; /* remember by default */
  for (size_t i = 0; i < t->V * t->H; i++) p[L->head_wv + i] = rng_uniform(s, k);
  /* vocabulary bias: log unigram frequency of the training events */
  double tot = 0;
  for (size_t j = 0; j < t->V; j++) tot += (double)t->vocab_count[j] + 1.0;
  for (size_t j = 0; j < t->V; j++)
    p[L->head_bv + j] = (float)log(((double)t->vocab_count[j] + 1.0) / tot);
  for (size_t i = 0; i < ARCH_K * t->H; i++) p[L->copy_wp + i] = rng_uniform(s, 0.1f * k);
  for (size_t r = 0; r < ARCH_K; r++) p[L->copy_bp + r] = -0.5f * (float)r;
  p[L->copy_wf] = 0.3f;
  if (t->d.flags & ARCH_F_EXPERTS) {
    for (size_t i = 0; i < ARCH_N_EXPERTS * t->H; i++) p[L->mix_w + i] = rng_uniform(s, 0.1f * k);
    for (size_t e = 0; e < ARCH_N_EXPERTS; e++) p[L->mix_b + e] = 0.0f;
    p[L->x_beta] = t->x_beta;
    p[L->x_gamma] = t->x_gamma;
    p[L->x_hl] = t->x_hl_s;
  } else {
    for (size_t i = 0; i < t->H; i++) p[L->gate_wg + i] = rng_uniform(s, 0.1f * k);
    p[L->gate_bg] = 0.0f;
  }
}

static int trainer_new(const train_opts_t *o, const event_t *events, size_t n, trainer_t **out,
                       char *errstr, size_t errstr_size) {
  *out = NULL;
  int rc = arch_dims_check(&o->dims, errstr, errstr_size);
  if (rc < 0) return rc;
  if (o->dims.flags & ARCH_F_SHIFT_UNIT)
    return ix_fail(IX_EINVAL, errstr, errstr_size, "training the optional shift unit is not supported");
  if (o->batch == 0 || o->bptt == 0 || !(o->lr > 0) || !(o->half_life_s > 0))
    return ix_fail(IX_EINVAL, errstr, errstr_size, "batch, bptt, lr and half-life must be positive");
  trainer_t *t = calloc(1, sizeof *t);
  if (!t) return IX_ENOMEM;
  rc = IX_ENOMEM;
  vocab_t *vb = NULL;
  uev_t *tmp = NULL;
  t->d = o->dims;
  arch_layout(&t->d, &t->L);
  t->P = t->L.total;
  t->B = o->batch;
  t->T = o->bptt;
  t->I = t->d.I;
  t->H = t->d.H;
  t->G = 4 * t->H;
  t->XW = t->I + t->H;
  t->V = t->d.V;
  t->EC = t->d.EC;
  t->EA = t->d.EA;
  t->half_life_s = o->half_life_s;
  t->x_beta = o->x_beta;
  t->x_gamma = o->x_gamma;
  t->x_hl_s = o->x_hl_s;
  t->rng = o->seed;
  /* the training events, grouped by user */
  size_t m = 0;
  for (size_t i = 0; i < n; i++) m += events[i].ts_ms < o->train_end_ms;
  if (m == 0) {
    rc = ix_fail(IX_EINVAL, errstr, errstr_size, "no events before the end of the training window");
    goto err;
  }
  if (!ALLOC(tmp, m) || !ALLOC(t->ev, m) || !ALLOC(t->idx, m)) goto err;
  m = 0;
  for (size_t i = 0; i < n; i++)
    if (events[i].ts_ms < o->train_end_ms) {
      tmp[m].ev = events[i];
      tmp[m].pos = i;
      m++;
    }
  qsort(tmp, m, sizeof *tmp, cmp_uev);
  t->n_ev = m;
  for (size_t i = 0; i < m; i++) t->ev[i] = tmp[i].ev;
  uint32_t nu = 0;
  for (size_t i = 0; i < m; i++) nu += (i == 0 || t->ev[i].user_id != t->ev[i - 1].user_id);
  t->n_users = nu;
  if (!ALLOC(t->u_start, nu) || !ALLOC(t->u_len, nu) || !ALLOC(t->order, nu)) goto err;
  nu = 0;
  for (size_t i = 0; i < m; i++) {
    if (i == 0 || t->ev[i].user_id != t->ev[i - 1].user_id) t->u_start[nu++] = i;
    t->u_len[nu - 1]++;
  }
  /* vocabulary */
  if (!ALLOC(t->vocab_ids, t->V) || !ALLOC(t->vocab_count, t->V)) goto err;
  train_build_vocab(t->ev, m, INT64_MAX, (uint32_t)t->V, t->vocab_ids);
  {
    /* train_build_vocab leaves zero ids when the data has fewer categories;
     * make the tail distinct (ids that never occur) so the vocab is valid */
    uint64_t fake = UINT64_MAX;
    for (size_t j = 1; j < t->V; j++)
      if (t->vocab_ids[j] == 0) t->vocab_ids[j] = fake--;
  }
  if ((rc = vocab_new(t->vocab_ids, t->V, &vb)) < 0) {
    ix_fail(rc, errstr, errstr_size, "cannot build the category vocabulary");
    goto err;
  }
  rc = IX_ENOMEM;
  for (size_t i = 0; i < m; i++) {
    t->idx[i] = vocab_index(vb, t->ev[i].category_id);
    t->vocab_count[t->idx[i]]++;
  }
  /* parameters and optimiser */
  if (!ALLOC(t->params, t->P) || !ALLOC(t->grad, t->P) || !ALLOC(t->am, t->P) ||
      !ALLOC(t->av, t->P))
    goto err;
  init_params(t);
  /* slots and chunk buffers */
  size_t B = t->B, TB = t->T * t->B, H = t->H;
  if (!ALLOC(t->s_user, B) || !ALLOC(t->s_pos, B) || !ALLOC(t->s_state, B) ||
      !ALLOC(t->s_h, B * H) || !ALLOC(t->s_c, B * H) || !ALLOC(t->XH, TB * t->XW) ||
      !ALLOC(t->PRE, TB * t->G) || !ALLOC(t->ACT, TB * t->G) || !ALLOC(t->CP, TB * H) ||
      !ALLOC(t->C, TB * H) || !ALLOC(t->Hs, TB * H) || !ALLOC(t->dH, TB * H) ||
      !ALLOC(t->active, TB) || !ALLOC(t->reset, TB) || !ALLOC(t->cidx, TB) ||
      !ALLOC(t->aidx, TB) || !ALLOC(t->trow, TB) || !ALLOC(t->tsnap, TB) ||
      !ALLOC(t->tcat, TB) || !ALLOC(t->tidx, TB) || !ALLOC(t->HT, TB * H) ||
      !ALLOC(t->Z, TB * t->V) || !ALLOC(t->dHT, TB * H) || !ALLOC(t->hout, TB) ||
      !ALLOC(t->dXH, B * t->XW) || !ALLOC(t->dh_next, B * H) || !ALLOC(t->dc_next, B * H) ||
      !ALLOC(t->Wcat, t->G * t->XW) || !ALLOC(t->bias, t->G) || !ALLOC(t->dWcat, t->G * t->XW) ||
      !ALLOC(t->tc, H) || !ALLOC(t->tprob, TB) || !ALLOC(t->tds, TB * ARCH_K) ||
      !ALLOC(t->tdl, TB * ARCH_N_EXPERTS))
    goto err;
  t->nthreads = o->threads > 1 ? o->threads : 1;
  for (size_t b = 0; b < B; b++) t->s_user[b] = -1;
  free(tmp);
  vocab_destroy(vb);
  *out = t;
  return 0;
err:
  if (rc == IX_ENOMEM) ix_fail(rc, errstr, errstr_size, "out of memory while preparing training");
  free(tmp);
  vocab_destroy(vb);
  trainer_free(t);
  return rc;
}

/* Start an epoch: shuffle the users (Fisher-Yates on the seeded stream),
 * all slots idle. */
static void epoch_begin(trainer_t *t) {
  for (uint32_t u = 0; u < t->n_users; u++) t->order[u] = u;
  for (uint32_t u = t->n_users; u > 1; u--) {
    uint32_t j = (uint32_t)(rng_next(&t->rng) % u);
    uint32_t x = t->order[u - 1];
    t->order[u - 1] = t->order[j];
    t->order[j] = x;
  }
  t->next_user = 0;
  for (size_t b = 0; b < t->B; b++) t->s_user[b] = -1;
}

/* [W_ih | W_hh] and b_ih + b_hh from the flat parameters. */
static void pack_cell(trainer_t *t) {
  const float *p = t->params;
  for (size_t r = 0; r < t->G; r++) {
    memcpy(t->Wcat + r * t->XW, p + t->L.w_ih + r * t->I, t->I * sizeof(float));
    memcpy(t->Wcat + r * t->XW + t->I, p + t->L.w_hh + r * t->H, t->H * sizeof(float));
    t->bias[r] = p[t->L.b_ih + r] + p[t->L.b_hh + r];
  }
}

/* Run fn over the chunk's target rows [0, R), split into nthreads
 * contiguous ranges run on their own threads. fn must write only per-row
 * outputs, so the result does not depend on the split (same bits at any
 * thread count); whatever sums over rows is done after, in row order. */
typedef void (*rows_fn)(trainer_t *t, size_t r0, size_t r1);
typedef struct {
  trainer_t *t;
  rows_fn fn;
  size_t r0, r1;
} rows_job_t;
#define ROWS_MAX_THREADS 8
#define ROWS_MIN_PER_THREAD 32

static void *rows_worker(void *arg) {
  rows_job_t *j = arg;
  j->fn(j->t, j->r0, j->r1);
  return NULL;
}

static void for_rows(trainer_t *t, rows_fn fn) {
  size_t R = t->R, n = t->nthreads;
  if (n > ROWS_MAX_THREADS) n = ROWS_MAX_THREADS;
  if (n > R / ROWS_MIN_PER_THREAD) n = R / ROWS_MIN_PER_THREAD;
  if (n <= 1) {
    fn(t, 0, R);
    return;
  }
  pthread_t th[ROWS_MAX_THREADS];
  rows_job_t jb[ROWS_MAX_THREADS];
  int started[ROWS_MAX_THREADS] = {0};
  for (size_t k = 0; k < n; k++) jb[k] = (rows_job_t){t, fn, R * k / n, R * (k + 1) / n};
  for (size_t k = 1; k < n; k++)
    started[k] = pthread_create(&th[k], NULL, rows_worker, &jb[k]) == 0;
  fn(t, jb[0].r0, jb[0].r1);
  for (size_t k = 1; k < n; k++) {
    if (started[k])
      pthread_join(th[k], NULL);
    else
      fn(t, jb[k].r0, jb[k].r1); /* no thread: run the range here */
  }
}

static void head_rows_forward(trainer_t *t, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; r++) {
    float *z = t->Z + r * t->V;
    head_finish(&t->d, t->params, t->HT + r * t->H, &t->tsnap[r], z, &t->hout[r]);
    t->tprob[r] = head_prob_target(&t->hout[r], z, &t->tsnap[r], t->tcat[r], t->tidx[r]);
  }
}

/* Forward one chunk: LSTM over up to T steps of the B slots, then the head
 * of every row that has a training target. Returns the summed loss; sets
 * T_eff (0 when the epoch is over) and R. */
static double chunk_forward(trainer_t *t) {
  const size_t B = t->B, H = t->H, I = t->I, XW = t->XW, G = t->G;
  pack_cell(t);
  t->R = 0;
  t->T_eff = 0;
  for (size_t s = 0; s < t->T; s++) {
    size_t n_active = 0;
    for (size_t b = 0; b < B; b++) {
      size_t row = s * B + b;
      t->reset[row] = 0;
      if (t->s_user[b] < 0 && t->next_user < t->n_users) {
        t->s_user[b] = t->order[t->next_user++];
        t->s_pos[b] = 0;
        memset(&t->s_state[b], 0, sizeof t->s_state[b]);
        memset(t->s_h + b * H, 0, H * sizeof(float));
        memset(t->s_c + b * H, 0, H * sizeof(float));
        t->reset[row] = 1;
      }
      float *xh = t->XH + row * XW;
      if (t->s_user[b] < 0) {
        t->active[row] = 0;
        memset(xh, 0, XW * sizeof(float));
        continue;
      }
      t->active[row] = 1;
      n_active++;
      uint32_t u = (uint32_t)t->s_user[b];
      size_t e = t->u_start[u] + t->s_pos[b];
      const event_t *ev = &t->ev[e];
      arch_state_t *st = &t->s_state[b];
      arch_features(&t->d, t->params, st, ev, t->idx[e], xh);
      memcpy(xh + I, t->s_h + b * H, H * sizeof(float));
      memcpy(t->CP + row * H, t->s_c + b * H, H * sizeof(float));
      t->cidx[row] = t->idx[e];
      t->aidx[row] = (uint8_t)arch_action_index(ev->action);
      arch_state_advance_model(&t->d, t->params, st, ev, t->idx[e], t->half_life_s);
      if (t->s_pos[b] + 1 < t->u_len[u]) {
        size_t r = t->R++;
        t->trow[r] = (uint32_t)row;
        t->tsnap[r] = *st;
        t->tcat[r] = t->ev[e + 1].category_id;
        t->tidx[r] = t->idx[e + 1];
      }
      if (++t->s_pos[b] == t->u_len[u]) t->s_user[b] = -1;
    }
    if (n_active == 0) break;
    t->T_eff = s + 1;
    float *pre = t->PRE + s * B * G;
    for (size_t b = 0; b < B; b++) memcpy(pre + b * G, t->bias, G * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)G, (int)XW, 1.0f,
                t->XH + s * B * XW, (int)XW, t->Wcat, (int)XW, 1.0f, pre, (int)G);
    for (size_t b = 0; b < B; b++) {
      size_t row = s * B + b;
      if (!t->active[row]) continue;
      lstm_pointwise(H, pre + b * G, t->CP + row * H, t->C + row * H, t->Hs + row * H,
                     t->ACT + row * G);
      memcpy(t->s_h + b * H, t->Hs + row * H, H * sizeof(float));
      memcpy(t->s_c + b * H, t->C + row * H, H * sizeof(float));
    }
  }
  if (t->R == 0) return 0.0;
  for (size_t r = 0; r < t->R; r++) memcpy(t->HT + r * H, t->Hs + t->trow[r] * H, H * sizeof(float));
  head_vocab_logits(&t->d, t->params, t->R, t->HT, H, t->Z, t->V);
  for_rows(t, head_rows_forward);
  double loss = 0;
  for (size_t r = 0; r < t->R; r++) {
    float p = t->tprob[r];
    loss -= log(p > 1e-30f ? (double)p : 1e-30);
  }
  return loss;
}

/* Head backward of target rows [r0, r1): turns Z into dz, writes dHT and
 * the rows' copy (tds) and mixture or gate (tdl) logit gradients. */
static void head_rows_backward(trainer_t *t, size_t r0, size_t r1) {
  const size_t H = t->H, V = t->V;
  const arch_layout_t *L = &t->L;
  const float *p = t->params;
  const double scale = t->bscale;
  const int experts = (t->d.flags & ARCH_F_EXPERTS) != 0;
  for (size_t r = r0; r < r1; r++) {
    float *z = t->Z + r * V; /* p_vocab, becomes dz */
    const head_out_t *ho = &t->hout[r];
    const arch_state_t *st = &t->tsnap[r];
    float *dh = t->dHT + r * H;
    float *tds = t->tds + r * ARCH_K, *tdl = t->tdl + r * ARCH_N_EXPERTS;
    int32_t j = t->tidx[r];
    int kstar = -1;
    for (unsigned k = 0; k < ho->n_recent; k++)
      if (st->recent[k].cat == t->tcat[r]) kstar = (int)k;
    int has_a = 1;
    if (j <= 0) {
      j = 0;
      if (kstar >= 0) has_a = 0; /* out of vocabulary, copied: no vocab term */
    }
    double g = ho->g;
    double A = has_a ? z[j] : 0.0;
    /* pt = sum_e pi_e P_e; w_e = pi_e P_e / pt (the expert's share of the
     * target's probability); d loss / d logit_e = pi_e - w_e (experts) */
    double P[ARCH_N_EXPERTS] = {A, 0, 0, 0};
    if (kstar >= 0) {
      P[ARCH_X_COPY] = ho->p_copy[kstar];
      P[ARCH_X_RECENCY] = ho->p_rec[kstar];
      P[ARCH_X_DECAY] = ho->p_dec[kstar];
    }
    double pt = 0, wgt[ARCH_N_EXPERTS];
    for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) pt += (double)ho->pi[e] * P[e];
    if (pt < 1e-30) pt = 1e-30;
    for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) wgt[e] = (double)ho->pi[e] * P[e] / pt;
    double wv = wgt[ARCH_X_VOCAB], wc = wgt[ARCH_X_COPY];
    float sv = (float)(scale * wv);
    if (has_a && sv != 0.0f) {
      for (size_t i = 0; i < V; i++) z[i] *= sv;
      z[j] -= sv;
    } else {
      memset(z, 0, V * sizeof(float));
    }
    memset(dh, 0, H * sizeof(float));
    for (unsigned k = 0; k < ho->n_recent; k++) {
      float ds = (float)(scale * wc * (ho->p_copy[k] - (kstar == (int)k ? 1.0 : 0.0)));
      tds[k] = ds;
      if (ds == 0.0f) continue;
      const float *pk = p + L->copy_wp + k * H;
      for (size_t i = 0; i < H; i++) dh[i] += ds * pk[i];
    }
    if (experts) {
      for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) {
        float dl = (float)(scale * ((double)ho->pi[e] - wgt[e]));
        tdl[e] = dl;
        const float *we = p + L->mix_w + e * H;
        for (size_t i = 0; i < H; i++) dh[i] += dl * we[i];
      }
    } else {
      float dgl = (float)(-scale * (wv * (1.0 - g) - wc * g));
      tdl[0] = dgl;
      for (size_t i = 0; i < H; i++) dh[i] += dgl * p[L->gate_wg + i];
    }
  }
}

/* Backward of the chunk forward_chunk just ran: grad += d(loss * scale). */
static void chunk_backward(trainer_t *t, float scale) {
  const size_t B = t->B, H = t->H, I = t->I, XW = t->XW, G = t->G, V = t->V;
  const arch_layout_t *L = &t->L;
  const float *p = t->params;
  float *gr = t->grad;
  if (t->T_eff == 0) return;
  size_t TB = t->T_eff * B;
  memset(t->dH, 0, TB * H * sizeof(float));
  if (t->R > 0) {
    /* head: dz, dh and the copy / mixture logit gradients per target row
     * (threads), then their parameter gradients in row order */
    t->bscale = scale;
    for_rows(t, head_rows_backward);
    for (size_t r = 0; r < t->R; r++) {
      const head_out_t *ho = &t->hout[r];
      const arch_state_t *st = &t->tsnap[r];
      const float *h = t->HT + r * H;
      for (unsigned k = 0; k < ho->n_recent; k++) {
        float ds = t->tds[r * ARCH_K + k];
        if (ds == 0.0f) continue;
        float *gk = gr + L->copy_wp + k * H;
        for (size_t i = 0; i < H; i++) gk[i] += ds * h[i];
        gr[L->copy_bp + k] += ds;
        gr[L->copy_wf] += ds * log1pf((float)st->recent[k].count);
      }
      if (t->d.flags & ARCH_F_EXPERTS) {
        for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) {
          float dl = t->tdl[r * ARCH_N_EXPERTS + e];
          float *ge = gr + L->mix_w + e * H;
          for (size_t i = 0; i < H; i++) ge[i] += dl * h[i];
          gr[L->mix_b + e] += dl;
        }
      } else {
        float dgl = t->tdl[r * ARCH_N_EXPERTS];
        for (size_t i = 0; i < H; i++) gr[L->gate_wg + i] += dgl * h[i];
        gr[L->gate_bg] += dgl;
      }
    }
    /* dW_v += dZ^T HT; db_v += colsum dZ; dHT += dZ W_v */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)V, (int)H, (int)t->R, 1.0f, t->Z,
                (int)V, t->HT, (int)H, 1.0f, gr + L->head_wv, (int)H);
    for (size_t r = 0; r < t->R; r++) {
      const float *dz = t->Z + r * V;
      float *gb = gr + L->head_bv;
      for (size_t i = 0; i < V; i++) gb[i] += dz[i];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)t->R, (int)H, (int)V, 1.0f, t->Z,
                (int)V, p + L->head_wv, (int)H, 1.0f, t->dHT, (int)H);
    for (size_t r = 0; r < t->R; r++) {
      float *dst = t->dH + (size_t)t->trow[r] * H;
      for (size_t i = 0; i < H; i++) dst[i] += t->dHT[r * H + i];
    }
  }
  /* LSTM, backwards through the chunk */
  memset(t->dh_next, 0, B * H * sizeof(float));
  memset(t->dc_next, 0, B * H * sizeof(float));
  float *dPRE = t->PRE; /* the pre-activations are no longer needed */
  for (size_t s = t->T_eff; s-- > 0;) {
    for (size_t b = 0; b < B; b++) {
      size_t row = s * B + b;
      float *dp = dPRE + row * G;
      if (!t->active[row]) {
        memset(dp, 0, G * sizeof(float));
        continue;
      }
      const float *a = t->ACT + row * G;
      const float *c = t->C + row * H, *cp = t->CP + row * H;
      const float *dhh = t->dH + row * H;
      float *dhn = t->dh_next + b * H, *dcn = t->dc_next + b * H;
      for (size_t k = 0; k < H; k++) t->tc[k] = tanhf(c[k]);
      for (size_t k = 0; k < H; k++) {
        float ig = a[k], fg = a[H + k], gg = a[2 * H + k], og = a[3 * H + k];
        float dh = dhh[k] + dhn[k];
        float tck = t->tc[k];
        float dc = dcn[k] + dh * og * (1.0f - tck * tck);
        dp[k] = dc * gg * ig * (1.0f - ig);
        dp[H + k] = dc * cp[k] * fg * (1.0f - fg);
        dp[2 * H + k] = dc * ig * (1.0f - gg * gg);
        dp[3 * H + k] = dh * tck * og * (1.0f - og);
        dcn[k] = dc * fg;
      }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)XW, (int)G, 1.0f,
                dPRE + s * B * G, (int)G, t->Wcat, (int)XW, 0.0f, t->dXH, (int)XW);
    for (size_t b = 0; b < B; b++) {
      size_t row = s * B + b;
      float *dhn = t->dh_next + b * H, *dcn = t->dc_next + b * H;
      if (!t->active[row] || t->reset[row]) {
        memset(dhn, 0, H * sizeof(float));
        memset(dcn, 0, H * sizeof(float));
      } else {
        memcpy(dhn, t->dXH + b * XW + I, H * sizeof(float));
      }
      if (!t->active[row]) continue;
      const float *dx = t->dXH + b * XW;
      float *ge = gr + L->emb_cat + (size_t)t->cidx[row] * t->EC;
      for (size_t k = 0; k < t->EC; k++) ge[k] += dx[k];
      float *ga = gr + L->emb_act + (size_t)t->aidx[row] * t->EA;
      for (size_t k = 0; k < t->EA; k++) ga[k] += dx[t->EC + k];
    }
  }
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)G, (int)XW, (int)TB, 1.0f, dPRE,
              (int)G, t->XH, (int)XW, 0.0f, t->dWcat, (int)XW);
  for (size_t r = 0; r < G; r++) {
    float *gi = gr + L->w_ih + r * I, *gh = gr + L->w_hh + r * H;
    const float *w = t->dWcat + r * XW;
    for (size_t k = 0; k < I; k++) gi[k] += w[k];
    for (size_t k = 0; k < H; k++) gh[k] += w[I + k];
  }
  for (size_t row = 0; row < TB; row++) {
    const float *dp = dPRE + row * G;
    for (size_t r = 0; r < G; r++) {
      gr[L->b_ih + r] += dp[r];
      gr[L->b_hh + r] += dp[r];
    }
  }
}

static void adam_step(trainer_t *t, float lr, float clip) {
  double nrm = 0;
  for (size_t i = 0; i < t->P; i++) nrm += (double)t->grad[i] * t->grad[i];
  nrm = sqrt(nrm);
  float sc = (clip > 0 && nrm > clip) ? (float)(clip / nrm) : 1.0f;
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  t->adam_t++;
  float c1 = 1.0f - powf(b1, (float)t->adam_t), c2 = 1.0f - powf(b2, (float)t->adam_t);
  float step = lr * sqrtf(c2) / c1;
  for (size_t i = 0; i < t->P; i++) {
    float g = t->grad[i] * sc;
    t->am[i] = b1 * t->am[i] + (1.0f - b1) * g;
    t->av[i] = b2 * t->av[i] + (1.0f - b2) * g * g;
    t->params[i] -= step * t->am[i] / (sqrtf(t->av[i]) + eps);
  }
}

extern void openblas_set_num_threads(int);

static void fmt_dur(char *buf, size_t n, double s) {
  if (s < 60)
    snprintf(buf, n, "%.0fs", s);
  else
    snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

int train_run(const train_opts_t *o, const event_t *events, size_t n, train_result_t *res,
              char *errstr, size_t errstr_size) {
  memset(res, 0, sizeof *res);
  openblas_set_num_threads(1); /* the row workers are the threads (same bits at any count) */
  trainer_t *t = NULL;
  int rc = trainer_new(o, events, n, &t, errstr, errstr_size);
  if (rc < 0) return rc;
  rc = IX_ENOMEM;
  float *best = malloc(t->P * sizeof *best);
  res->curve = calloc(o->max_epochs ? o->max_epochs : 1, sizeof *res->curve);
  res->vocab_ids = malloc(t->V * sizeof *res->vocab_ids);
  if (!best || !res->curve || !res->vocab_ids) goto out;
  memcpy(res->vocab_ids, t->vocab_ids, t->V * sizeof *res->vocab_ids);
  memcpy(best, t->params, t->P * sizeof *best);
  res->dims = t->d;
  res->half_life_s = t->half_life_s;
  res->train_events = t->n_ev;
  res->train_targets = t->n_ev - t->n_users;
  double t0 = ix_mono_s(), best_metric = -INFINITY;
  float lr = o->lr;
  uint32_t bad = 0;
  for (uint32_t ep = 1; ep <= o->max_epochs; ep++) {
    double te = ix_mono_s(), loss_sum = 0;
    uint64_t targets = 0;
    epoch_begin(t);
    for (;;) {
      double loss = chunk_forward(t);
      if (t->T_eff == 0) break;
      if (t->R == 0) continue;
      loss_sum += loss;
      targets += t->R;
      memset(t->grad, 0, t->P * sizeof(float));
      chunk_backward(t, 1.0f / (float)t->R);
      adam_step(t, lr, o->clip);
    }
    train_epoch_t *c = &res->curve[res->n_epochs++];
    c->epoch = ep;
    c->train_loss = targets ? loss_sum / (double)targets : NAN;
    c->events_per_s = (double)t->n_ev / (ix_mono_s() - te);
    c->dev_metric = c->dev_nll = NAN;
    int improved = 1;
    if (o->dev_eval) {
      if ((rc = o->dev_eval(o->dev_ctx, &t->d, t->half_life_s, t->vocab_ids, t->params,
                            &c->dev_metric, &c->dev_nll)) < 0) {
        ix_fail(rc, errstr, errstr_size, "the dev evaluation failed");
        goto out;
      }
      improved = c->dev_metric > best_metric;
    }
    if (improved) {
      best_metric = o->dev_eval ? c->dev_metric : best_metric;
      memcpy(best, t->params, t->P * sizeof *best);
      res->best_epoch = ep;
      bad = 0;
    } else {
      bad++;
      lr *= o->lr_decay;
    }
    c->seconds = ix_mono_s() - t0;
    if (o->progress) {
      char el[32], left[32];
      fmt_dur(el, sizeof el, c->seconds);
      fmt_dur(left, sizeof left, c->seconds / ep * (o->max_epochs - ep));
      if (o->dev_eval)
        fprintf(o->progress,
                "epoch %2u/%u  loss %.4f  dev MRR@10 %.4f  dev NLL %.4f  best %.4f@%u  "
                "%.0f ev/s  elapsed %s  left <= %s%s\n",
                ep, o->max_epochs, c->train_loss, c->dev_metric, c->dev_nll, best_metric,
                res->best_epoch, c->events_per_s, el, left, improved ? "" : "  (lr decayed)");
      else
        fprintf(o->progress, "epoch %2u/%u  loss %.4f  %.0f ev/s  elapsed %s  left %s\n", ep,
                o->max_epochs, c->train_loss, c->events_per_s, el, left);
      fflush(o->progress);
    }
    if (o->dev_eval && bad >= o->patience) break;
  }
  res->params = best;
  best = NULL;
  res->seconds = ix_mono_s() - t0;
  rc = 0;
out:
  free(best);
  trainer_free(t);
  if (rc < 0) {
    if (errstr && errstr_size && !errstr[0]) snprintf(errstr, errstr_size, "%s", ix_strerror(rc));
    train_result_free(res);
  }
  return rc;
}

int train_loss(const train_opts_t *o, const event_t *events, size_t n, const float *params,
               double *mean_nll, uint64_t *targets, char *errstr, size_t errstr_size) {
  trainer_t *t = NULL;
  int rc = trainer_new(o, events, n, &t, errstr, errstr_size);
  if (rc < 0) return rc;
  memcpy(t->params, params, t->P * sizeof(float));
  epoch_begin(t);
  double sum = 0;
  uint64_t cnt = 0;
  for (;;) {
    double loss = chunk_forward(t);
    if (t->T_eff == 0) break;
    sum += loss;
    cnt += t->R;
  }
  *mean_nll = cnt ? sum / (double)cnt : NAN;
  *targets = cnt;
  trainer_free(t);
  return 0;
}

/* ------------------------------------------------------- gradient dump */

static int write_floats(const char *path, const float *x, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return IX_EIO;
  size_t w = fwrite(x, sizeof *x, n, f);
  int rc = fclose(f);
  return (w == n && rc == 0) ? 0 : IX_EIO;
}

int train_grad_dump(const train_opts_t *o, const event_t *events, size_t n, uint32_t chunk,
                    const char *prefix, char *errstr, size_t errstr_size) {
  openblas_set_num_threads(1);
  trainer_t *t = NULL;
  int rc = trainer_new(o, events, n, &t, errstr, errstr_size);
  if (rc < 0) return rc;
  char path[4096];
  FILE *js = NULL;
  snprintf(path, sizeof path, "%s.json", prefix);
  if (!(js = fopen(path, "w"))) {
    rc = ix_fail(IX_EIO, errstr, errstr_size, "cannot create the gradient dump file");
    goto out;
  }
  epoch_begin(t);
  fprintf(js, "{\"V\":%zu,\"H\":%zu,\"EC\":%zu,\"EA\":%zu,\"I\":%zu,\"K\":%d,\"B\":%zu,",
          t->V, t->H, t->EC, t->EA, t->I, ARCH_K, t->B);
  const arch_layout_t *L = &t->L;
  fprintf(js,
          "\"layout\":{\"emb_cat\":%zu,\"emb_act\":%zu,\"w_ih\":%zu,\"w_hh\":%zu,\"b_ih\":%zu,"
          "\"b_hh\":%zu,\"head_wv\":%zu,\"head_bv\":%zu,\"copy_wp\":%zu,\"copy_bp\":%zu,"
          "\"copy_wf\":%zu,\"gate_wg\":%zu,\"gate_bg\":%zu,\"mix_w\":%zu,\"mix_b\":%zu,"
          "\"x_beta\":%zu,\"x_gamma\":%zu,\"x_hl\":%zu,\"total\":%zu},\"experts\":%d,"
          "\"chunks\":[",
          L->emb_cat, L->emb_act, L->w_ih, L->w_hh, L->b_ih, L->b_hh, L->head_wv, L->head_bv,
          L->copy_wp, L->copy_bp, L->copy_wf, L->gate_wg, L->gate_bg, L->mix_w, L->mix_b,
          L->x_beta, L->x_gamma, L->x_hl, L->total, (t->d.flags & ARCH_F_EXPERTS) ? 1 : 0);
  double loss = 0;
  for (uint32_t k = 0; k <= chunk; k++) {
    /* record the rows before they run: slot user and event per (step, slot) */
    loss = chunk_forward(t);
    if (t->T_eff == 0) {
      rc = ix_fail(IX_EINVAL, errstr, errstr_size, "the data has fewer chunks than requested");
      goto out;
    }
    fprintf(js, "%s[", k ? "," : "");
    /* every active row: [step, slot, reset, user, cat, idx, action, ts_ms] */
    int first = 1;
    for (size_t s = 0; s < t->T_eff; s++)
      for (size_t b = 0; b < t->B; b++) {
        size_t row = s * t->B + b;
        if (!t->active[row]) continue;
        fprintf(js, "%s[%zu,%zu,%d,%d]", first ? "" : ",", s, b, t->reset[row], t->cidx[row]);
        first = 0;
      }
    fprintf(js, "]");
  }
  memset(t->grad, 0, t->P * sizeof(float));
  if (t->R == 0) {
    rc = ix_fail(IX_EINVAL, errstr, errstr_size, "the requested chunk has no targets");
    goto out;
  }
  chunk_backward(t, 1.0f / (float)t->R);
  fprintf(js, "],\"loss\":%.9g,\"targets\":%zu,\"events\":[", loss / (double)t->R, t->R);
  /* the slots' events, in slot-assignment order: user order and events */
  for (uint32_t q = 0; q < t->next_user; q++) {
    uint32_t u = t->order[q];
    fprintf(js, "%s[", q ? "," : "");
    for (uint32_t i = 0; i < t->u_len[u]; i++) {
      const event_t *ev = &t->ev[t->u_start[u] + i];
      fprintf(js, "%s[%llu,%d,%d,%lld]", i ? "," : "", (unsigned long long)ev->category_id,
              t->idx[t->u_start[u] + i], (int)arch_action_index(ev->action), (long long)ev->ts_ms);
    }
    fprintf(js, "]");
  }
  fprintf(js, "]}\n");
  if (fclose(js) != 0) {
    js = NULL;
    rc = ix_fail(IX_EIO, errstr, errstr_size, "cannot write the gradient dump file");
    goto out;
  }
  js = NULL;
  snprintf(path, sizeof path, "%s.grad.f32", prefix);
  if ((rc = write_floats(path, t->grad, t->P)) < 0) {
    ix_fail(rc, errstr, errstr_size, "cannot write the gradient file");
    goto out;
  }
  /* the parameters the gradient was taken at (init: no update ran) */
  snprintf(path, sizeof path, "%s.params.f32", prefix);
  if ((rc = write_floats(path, t->params, t->P)) < 0) {
    ix_fail(rc, errstr, errstr_size, "cannot write the parameter file");
    goto out;
  }
  rc = 0;
out:
  if (js) fclose(js);
  trainer_free(t);
  return rc;
}
