/* Training (train.h): truncated BPTT with hand-written backward passes for
 * the head and the LSTM cell, checked against torch.autograd by
 * tests/integration/test_torch_grad.sh. One chunk = bptt steps of B slots.
 * The slots are split across opts.threads workers (a pool kept for the
 * whole run; worker 0 is the caller): a serial schedule says which event
 * each (step, slot) row runs, then each worker runs its slots forward (per
 * step one sgemm over its slots' gate pre-activations), the head of its
 * target rows, and the backward of both into its own gradient; the
 * gradients are then added in worker order (each worker sums one slice of
 * the parameters) and Adam updates the slices. The result is deterministic
 * for a thread count; other counts differ in the rounding of those sums. */
#include "model/train.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

typedef struct trainer trainer_t;

/* One thread's share of a chunk: the slots [b0, b0 + Bk) over every step of
 * the chunk (forward and backward), the head of their target rows, and
 * their gradient; then, for the sum and the update, the parameter slice
 * [p0, p1). Rows are local: step s, slot b is row s * Bk + (b - b0). */
typedef struct {
  trainer_t *t;
  unsigned k;
  int threaded;         /* has its own pool thread (else the caller runs it) */
  size_t b0, Bk;
  size_t p0, p1;
  float *grad;          /* worker 0: the trainer's grad (the sum) */
  float *XH, *PRE, *ACT, *CP, *C, *Hs, *dH;
  uint8_t *active, *aidx;
  int32_t *cidx;
  size_t R;             /* target rows of this worker in the chunk */
  uint32_t *trow;       /* local row of each target */
  arch_state_t *tsnap;
  uint64_t *tcat;
  int32_t *tidx;
  float *HT, *Z, *dHT;
  head_out_t *hout;
  float *dXH, *dh_next, *dc_next, *dWcat, *tc;
  /* per target row: forward probability of the target; backward the copy
   * and mixture/gate logit gradients (accumulated into grad in row order) */
  float *tprob, *tds, *tdl;
  double loss;          /* summed NLL of its targets */
  double nrm2;          /* sum of squares of the summed gradient over [p0, p1) */
  double busy_s;        /* thread CPU seconds in its shares (train_epoch_t) */
} worker_t;

typedef void (*work_fn)(trainer_t *t, worker_t *w);

struct trainer {
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
  /* the chunk's schedule, T*B rows (step-major): the event of each row
   * (ROW_IDLE = idle slot), whether the slot took a new user there, and
   * whether the row has a training target (the user's next event) */
  size_t *sev;
  uint8_t *sreset, *stgt;
  size_t T_eff;
  size_t R;                 /* target rows of the chunk, all workers */
  size_t R_sched;           /* the same, counted by the schedule */
  float *Wcat, *bias;       /* [W_ih | W_hh] and b_ih + b_hh, packed per chunk */
  float bscale;             /* chunk_backward's scale */
  float adam_sc, adam_step, adam_b1, adam_b2, adam_eps;
  /* workers and their pool: worker 0 is the calling thread; the others
   * wait on `go` for the next phase (gen changes) and report on `done` */
  unsigned nthreads;
  float log1p_tab[256]; /* log1pf(i), from log1pf (same bits) */
  worker_t *w;
  pthread_t *th;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int pool_init;
  unsigned gen, pending;
  int quit;
  work_fn fn;
  double pool_s;            /* the caller's wall seconds in pool_run */
};

#define ROW_IDLE SIZE_MAX
#define TRAIN_MAX_THREADS 64

static void worker_free(worker_t *w) {
  void *ptrs[] = {w->XH,    w->PRE,   w->ACT,   w->CP,      w->C,       w->Hs,   w->dH,
                  w->active, w->aidx, w->cidx,  w->trow,    w->tsnap,   w->tcat, w->tidx,
                  w->HT,    w->Z,     w->dHT,   w->hout,    w->dXH,     w->dh_next,
                  w->dc_next, w->dWcat, w->tc,  w->tprob,   w->tds,     w->tdl};
  for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
  if (w->k != 0) free(w->grad);
}

static void pool_stop(trainer_t *t) {
  if (!t->pool_init) return;
  pthread_mutex_lock(&t->mu);
  t->quit = 1;
  pthread_cond_broadcast(&t->go);
  pthread_mutex_unlock(&t->mu);
  for (unsigned k = 1; k < t->nthreads; k++)
    if (t->w[k].threaded) pthread_join(t->th[k], NULL);
  pthread_cond_destroy(&t->go);
  pthread_cond_destroy(&t->done);
  pthread_mutex_destroy(&t->mu);
  t->pool_init = 0;
}

static void trainer_free(trainer_t *t) {
  if (!t) return;
  if (t->w) {
    pool_stop(t);
    for (unsigned k = 0; k < t->nthreads; k++) worker_free(&t->w[k]);
  }
  void *ptrs[] = {t->params, t->grad,  t->am,      t->av,     t->ev,        t->idx,
                  t->u_start, t->u_len, t->order,  t->vocab_ids, t->vocab_count, t->s_user,
                  t->s_pos,  t->s_state, t->s_h,   t->s_c,    t->sev,       t->sreset,
                  t->stgt,   t->Wcat,  t->bias,    t->w,      t->th};
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

/* ----------------------------------------------------------------- pool */

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *pool_thread(void *arg) {
  worker_t *w = arg;
  trainer_t *t = w->t;
  unsigned seen = 0;
  pthread_mutex_lock(&t->mu);
  for (;;) {
    while (t->gen == seen && !t->quit) pthread_cond_wait(&t->go, &t->mu);
    if (t->quit) break;
    seen = t->gen;
    work_fn fn = t->fn;
    pthread_mutex_unlock(&t->mu);
    double c0 = thread_cpu_s();
    fn(t, w);
    w->busy_s += thread_cpu_s() - c0;
    pthread_mutex_lock(&t->mu);
    if (--t->pending == 0) pthread_cond_signal(&t->done);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* Run fn for every worker and return when all are done: worker 0 (and any
 * worker whose thread could not be started) on the calling thread. */
static void pool_run(trainer_t *t, work_fn fn) {
  unsigned n = t->nthreads, threaded = 0;
  double w0 = ix_mono_s();
  for (unsigned k = 1; k < n; k++) threaded += (unsigned)t->w[k].threaded;
  if (threaded) {
    pthread_mutex_lock(&t->mu);
    t->fn = fn;
    t->pending = threaded;
    t->gen++;
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
  }
  for (unsigned k = 0; k < n; k++) {
    if (k > 0 && t->w[k].threaded) continue;
    double c0 = thread_cpu_s();
    fn(t, &t->w[k]);
    t->w[k].busy_s += thread_cpu_s() - c0;
  }
  if (threaded) {
    pthread_mutex_lock(&t->mu);
    while (t->pending) pthread_cond_wait(&t->done, &t->mu);
    pthread_mutex_unlock(&t->mu);
  }
  t->pool_s += ix_mono_s() - w0;
}

/* The workers: slots split into nthreads contiguous ranges (as even as B
 * allows), parameters likewise (in 16-float blocks). Returns 0 or
 * IX_ENOMEM. A thread that cannot be started leaves its share to the
 * caller (same results: the split, not the thread, decides the sums). */
static int workers_new(trainer_t *t, int threads) {
  size_t n = threads > 1 ? (size_t)threads : 1;
  if (n > TRAIN_MAX_THREADS) n = TRAIN_MAX_THREADS;
  if (n > t->B) n = t->B;
  t->nthreads = (unsigned)n;
  if (!ALLOC(t->w, n) || !ALLOC(t->th, n)) return IX_ENOMEM;
  const size_t T = t->T, H = t->H, G = t->G, XW = t->XW, V = t->V;
  size_t nb = (t->P + 15) / 16;
  for (size_t k = 0; k < n; k++) {
    worker_t *w = &t->w[k];
    w->t = t;
    w->k = (unsigned)k;
    w->b0 = t->B * k / n;
    w->Bk = t->B * (k + 1) / n - w->b0;
    w->p0 = nb * k / n * 16;
    w->p1 = k + 1 == n ? t->P : nb * (k + 1) / n * 16;
    if (w->p1 > t->P) w->p1 = t->P;
    if (w->p0 > w->p1) w->p0 = w->p1;
    size_t TB = T * w->Bk, Bk = w->Bk;
    if (k == 0)
      w->grad = t->grad;
    else if (!ALLOC(w->grad, t->P))
      return IX_ENOMEM;
    if (!ALLOC(w->XH, TB * XW) || !ALLOC(w->PRE, TB * G) || !ALLOC(w->ACT, TB * G) ||
        !ALLOC(w->CP, TB * H) || !ALLOC(w->C, TB * H) || !ALLOC(w->Hs, TB * H) ||
        !ALLOC(w->dH, TB * H) || !ALLOC(w->active, TB) || !ALLOC(w->aidx, TB) ||
        !ALLOC(w->cidx, TB) || !ALLOC(w->trow, TB) || !ALLOC(w->tsnap, TB) ||
        !ALLOC(w->tcat, TB) || !ALLOC(w->tidx, TB) || !ALLOC(w->HT, TB * H) ||
        !ALLOC(w->Z, TB * V) || !ALLOC(w->dHT, TB * H) || !ALLOC(w->hout, TB) ||
        !ALLOC(w->dXH, Bk * XW) || !ALLOC(w->dh_next, Bk * H) || !ALLOC(w->dc_next, Bk * H) ||
        !ALLOC(w->dWcat, G * XW) || !ALLOC(w->tc, H) || !ALLOC(w->tprob, TB) ||
        !ALLOC(w->tds, TB * ARCH_K) || !ALLOC(w->tdl, TB * ARCH_N_EXPERTS))
      return IX_ENOMEM;
  }
  if (n == 1) return 0;
  if (pthread_mutex_init(&t->mu, NULL) != 0) return 0; /* no pool: the caller runs every share */
  if (pthread_cond_init(&t->go, NULL) != 0) {
    pthread_mutex_destroy(&t->mu);
    return 0;
  }
  if (pthread_cond_init(&t->done, NULL) != 0) {
    pthread_cond_destroy(&t->go);
    pthread_mutex_destroy(&t->mu);
    return 0;
  }
  t->pool_init = 1;
  for (size_t k = 1; k < n; k++)
    t->w[k].threaded = pthread_create(&t->th[k], NULL, pool_thread, &t->w[k]) == 0;
  return 0;
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
  /* slots, schedule and workers */
  size_t B = t->B, TB = t->T * t->B, H = t->H;
  if (!ALLOC(t->s_user, B) || !ALLOC(t->s_pos, B) || !ALLOC(t->s_state, B) ||
      !ALLOC(t->s_h, B * H) || !ALLOC(t->s_c, B * H) || !ALLOC(t->sev, TB) ||
      !ALLOC(t->sreset, TB) || !ALLOC(t->stgt, TB) || !ALLOC(t->Wcat, t->G * t->XW) ||
      !ALLOC(t->bias, t->G))
    goto err;
  if (workers_new(t, o->threads) < 0) goto err;
  for (unsigned i = 0; i < 256; i++) t->log1p_tab[i] = log1pf((float)i);
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

/* The chunk's schedule: which event each (step, slot) row runs, up to T
 * steps; an idle slot takes the next user in slot order. It depends on
 * the users' lengths only, so it is made here, serially, and the workers
 * run their slots' rows from it. Sets T_eff (0 when the epoch is over). */
static void chunk_schedule(trainer_t *t) {
  const size_t B = t->B;
  t->T_eff = 0;
  t->R_sched = 0;
  for (size_t s = 0; s < t->T; s++) {
    size_t n_active = 0;
    for (size_t b = 0; b < B; b++) {
      size_t row = s * B + b;
      t->sreset[row] = 0;
      t->stgt[row] = 0;
      if (t->s_user[b] < 0 && t->next_user < t->n_users) {
        t->s_user[b] = t->order[t->next_user++];
        t->s_pos[b] = 0;
        t->sreset[row] = 1;
      }
      if (t->s_user[b] < 0) {
        t->sev[row] = ROW_IDLE;
        continue;
      }
      n_active++;
      uint32_t u = (uint32_t)t->s_user[b];
      t->sev[row] = t->u_start[u] + t->s_pos[b];
      t->stgt[row] = t->s_pos[b] + 1 < t->u_len[u];
      t->R_sched += t->stgt[row];
      if (++t->s_pos[b] == t->u_len[u]) t->s_user[b] = -1;
    }
    if (n_active == 0) break;
    t->T_eff = s + 1;
  }
}

/* Forward of a worker's slots over the chunk: the LSTM step by step (one
 * sgemm over its slots per step), then the head of every row that has a
 * training target. Sets w->R and w->loss. */
static void work_forward(trainer_t *t, worker_t *w) {
  const size_t B = t->B, Bk = w->Bk, H = t->H, I = t->I, XW = t->XW, G = t->G;
  w->R = 0;
  w->loss = 0;
  for (size_t s = 0; s < t->T_eff; s++) {
    for (size_t lb = 0; lb < Bk; lb++) {
      size_t b = w->b0 + lb, row = s * B + b, lr = s * Bk + lb;
      if (t->sreset[row]) {
        memset(&t->s_state[b], 0, sizeof t->s_state[b]);
        memset(t->s_h + b * H, 0, H * sizeof(float));
        memset(t->s_c + b * H, 0, H * sizeof(float));
      }
      float *xh = w->XH + lr * XW;
      size_t e = t->sev[row];
      if (e == ROW_IDLE) {
        w->active[lr] = 0;
        memset(xh, 0, XW * sizeof(float));
        continue;
      }
      w->active[lr] = 1;
      const event_t *ev = &t->ev[e];
      arch_state_t *st = &t->s_state[b];
      arch_features(&t->d, t->params, st, ev, t->idx[e], xh);
      memcpy(xh + I, t->s_h + b * H, H * sizeof(float));
      memcpy(w->CP + lr * H, t->s_c + b * H, H * sizeof(float));
      w->cidx[lr] = t->idx[e];
      w->aidx[lr] = (uint8_t)arch_action_index(ev->action);
      arch_state_advance_model(&t->d, t->params, st, ev, t->idx[e], t->half_life_s);
      if (t->stgt[row]) {
        size_t r = w->R++;
        w->trow[r] = (uint32_t)lr;
        w->tsnap[r] = *st;
        w->tcat[r] = t->ev[e + 1].category_id;
        w->tidx[r] = t->idx[e + 1];
      }
    }
    float *pre = w->PRE + s * Bk * G;
    for (size_t lb = 0; lb < Bk; lb++) memcpy(pre + lb * G, t->bias, G * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Bk, (int)G, (int)XW, 1.0f,
                w->XH + s * Bk * XW, (int)XW, t->Wcat, (int)XW, 1.0f, pre, (int)G);
    for (size_t lb = 0; lb < Bk; lb++) {
      size_t b = w->b0 + lb, lr = s * Bk + lb;
      if (!w->active[lr]) continue;
      lstm_pointwise(H, pre + lb * G, w->CP + lr * H, w->C + lr * H, w->Hs + lr * H,
                     w->ACT + lr * G);
      memcpy(t->s_h + b * H, w->Hs + lr * H, H * sizeof(float));
      memcpy(t->s_c + b * H, w->C + lr * H, H * sizeof(float));
    }
  }
  if (w->R == 0) return;
  for (size_t r = 0; r < w->R; r++)
    memcpy(w->HT + r * H, w->Hs + (size_t)w->trow[r] * H, H * sizeof(float));
  head_vocab_logits(&t->d, t->params, w->R, w->HT, H, w->Z, t->V);
  double loss = 0;
  for (size_t r = 0; r < w->R; r++) {
    float *z = w->Z + r * t->V;
    head_finish(&t->d, t->params, w->HT + r * H, &w->tsnap[r], z, &w->hout[r]);
    float p = head_prob_target(&w->hout[r], z, &w->tsnap[r], w->tcat[r], w->tidx[r]);
    w->tprob[r] = p;
    loss -= log(p > 1e-30f ? (double)p : 1e-30);
  }
  w->loss = loss;
}

/* Forward one chunk: schedule, then every worker's slots. Returns the
 * summed loss (workers' sums added in worker order); sets T_eff (0 when
 * the epoch is over) and R. */
static double chunk_forward(trainer_t *t) {
  pack_cell(t);
  t->R = 0;
  chunk_schedule(t);
  if (t->T_eff == 0) return 0.0;
  pool_run(t, work_forward);
  double loss = 0;
  for (unsigned k = 0; k < t->nthreads; k++) {
    t->R += t->w[k].R;
    loss += t->w[k].loss;
  }
  return loss;
}

/* Head backward of a worker's target rows: turns Z into dz, writes dHT and
 * the rows' copy (tds) and mixture or gate (tdl) logit gradients. */
static void head_rows_backward(trainer_t *t, worker_t *w) {
  const size_t H = t->H, V = t->V;
  const arch_layout_t *L = &t->L;
  const float *p = t->params;
  const double scale = t->bscale;
  const int experts = (t->d.flags & ARCH_F_EXPERTS) != 0;
  for (size_t r = 0; r < w->R; r++) {
    float *z = w->Z + r * V; /* p_vocab, becomes dz */
    const head_out_t *ho = &w->hout[r];
    const arch_state_t *st = &w->tsnap[r];
    float *dh = w->dHT + r * H;
    float *tds = w->tds + r * ARCH_K, *tdl = w->tdl + r * ARCH_N_EXPERTS;
    int32_t j = w->tidx[r];
    int kstar = -1;
    for (unsigned k = 0; k < ho->n_recent; k++)
      if (st->recent[k].cat == w->tcat[r]) kstar = (int)k;
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

/* Backward of a worker's share of the chunk work_forward just ran:
 * w->grad = d(its loss * t->bscale). */
static void work_backward(trainer_t *t, worker_t *w) {
  const size_t B = t->B, Bk = w->Bk, H = t->H, I = t->I, XW = t->XW, G = t->G, V = t->V;
  const arch_layout_t *L = &t->L;
  const float *p = t->params;
  float *gr = w->grad;
  memset(gr, 0, t->P * sizeof(float));
  /* no targets: every gradient of this share is zero */
  if (t->T_eff == 0 || w->R == 0) return;
  size_t TB = t->T_eff * Bk;
  memset(w->dH, 0, TB * H * sizeof(float));
  /* head: dz, dh and the copy / mixture logit gradients per target row,
   * then their parameter gradients in row order */
  head_rows_backward(t, w);
  for (size_t r = 0; r < w->R; r++) {
    const head_out_t *ho = &w->hout[r];
    const arch_state_t *st = &w->tsnap[r];
    const float *h = w->HT + r * H;
    for (unsigned k = 0; k < ho->n_recent; k++) {
      float ds = w->tds[r * ARCH_K + k];
      if (ds == 0.0f) continue;
      float *gk = gr + L->copy_wp + k * H;
      for (size_t i = 0; i < H; i++) gk[i] += ds * h[i];
      gr[L->copy_bp + k] += ds;
      uint32_t cnt = st->recent[k].count;
      gr[L->copy_wf] += ds * (cnt < 256 ? t->log1p_tab[cnt] : log1pf((float)cnt));
    }
    if (t->d.flags & ARCH_F_EXPERTS) {
      for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) {
        float dl = w->tdl[r * ARCH_N_EXPERTS + e];
        float *ge = gr + L->mix_w + e * H;
        for (size_t i = 0; i < H; i++) ge[i] += dl * h[i];
        gr[L->mix_b + e] += dl;
      }
    } else {
      float dgl = w->tdl[r * ARCH_N_EXPERTS];
      for (size_t i = 0; i < H; i++) gr[L->gate_wg + i] += dgl * h[i];
      gr[L->gate_bg] += dgl;
    }
  }
  /* dW_v += dZ^T HT; db_v += colsum dZ; dHT += dZ W_v */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)V, (int)H, (int)w->R, 1.0f, w->Z,
              (int)V, w->HT, (int)H, 1.0f, gr + L->head_wv, (int)H);
  for (size_t r = 0; r < w->R; r++) {
    const float *dz = w->Z + r * V;
    float *gb = gr + L->head_bv;
    for (size_t i = 0; i < V; i++) gb[i] += dz[i];
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)w->R, (int)H, (int)V, 1.0f, w->Z,
              (int)V, p + L->head_wv, (int)H, 1.0f, w->dHT, (int)H);
  for (size_t r = 0; r < w->R; r++) {
    float *dst = w->dH + (size_t)w->trow[r] * H;
    for (size_t i = 0; i < H; i++) dst[i] += w->dHT[r * H + i];
  }
  /* LSTM, backwards through the chunk */
  memset(w->dh_next, 0, Bk * H * sizeof(float));
  memset(w->dc_next, 0, Bk * H * sizeof(float));
  float *dPRE = w->PRE; /* the pre-activations are no longer needed */
  for (size_t s = t->T_eff; s-- > 0;) {
    for (size_t lb = 0; lb < Bk; lb++) {
      size_t lr = s * Bk + lb;
      float *restrict dp = dPRE + lr * G;
      if (!w->active[lr]) {
        memset(dp, 0, G * sizeof(float));
        continue;
      }
      /* restrict: the buffers are disjoint, so the loop below is
       * vectorised (elementwise, the same operations: the same bits) */
      const float *restrict a = w->ACT + lr * G;
      const float *restrict c = w->C + lr * H, *restrict cp = w->CP + lr * H;
      const float *restrict dhh = w->dH + lr * H;
      const float *restrict dhn = w->dh_next + lb * H;
      float *restrict dcn = w->dc_next + lb * H, *restrict tc = w->tc;
      for (size_t k = 0; k < H; k++) tc[k] = tanhf(c[k]);
      size_t k0 = 0;
#if defined(__SSE2__)
      /* four units at a time, each the scalar loop's operations in its
       * order (separate multiplies and adds): the same bits */
      const __m128 one = _mm_set1_ps(1.0f);
      for (; k0 + 4 <= H; k0 += 4) {
        size_t k = k0;
        __m128 ig = _mm_loadu_ps(a + k), fg = _mm_loadu_ps(a + H + k),
               gg = _mm_loadu_ps(a + 2 * H + k), og = _mm_loadu_ps(a + 3 * H + k);
        __m128 dh = _mm_add_ps(_mm_loadu_ps(dhh + k), _mm_loadu_ps(dhn + k));
        __m128 tck = _mm_loadu_ps(tc + k);
        __m128 dtc = _mm_mul_ps(_mm_mul_ps(dh, og), _mm_sub_ps(one, _mm_mul_ps(tck, tck)));
        __m128 dc = _mm_add_ps(_mm_loadu_ps(dcn + k), dtc);
        _mm_storeu_ps(dp + k, _mm_mul_ps(_mm_mul_ps(_mm_mul_ps(dc, gg), ig), _mm_sub_ps(one, ig)));
        _mm_storeu_ps(dp + H + k, _mm_mul_ps(_mm_mul_ps(_mm_mul_ps(dc, _mm_loadu_ps(cp + k)), fg),
                                             _mm_sub_ps(one, fg)));
        _mm_storeu_ps(dp + 2 * H + k,
                      _mm_mul_ps(_mm_mul_ps(dc, ig), _mm_sub_ps(one, _mm_mul_ps(gg, gg))));
        _mm_storeu_ps(dp + 3 * H + k,
                      _mm_mul_ps(_mm_mul_ps(_mm_mul_ps(dh, tck), og), _mm_sub_ps(one, og)));
        _mm_storeu_ps(dcn + k, _mm_mul_ps(dc, fg));
      }
#endif
      for (size_t k = k0; k < H; k++) {
        float ig = a[k], fg = a[H + k], gg = a[2 * H + k], og = a[3 * H + k];
        float dh = dhh[k] + dhn[k];
        float tck = tc[k];
        float dc = dcn[k] + dh * og * (1.0f - tck * tck);
        dp[k] = dc * gg * ig * (1.0f - ig);
        dp[H + k] = dc * cp[k] * fg * (1.0f - fg);
        dp[2 * H + k] = dc * ig * (1.0f - gg * gg);
        dp[3 * H + k] = dh * tck * og * (1.0f - og);
        dcn[k] = dc * fg;
      }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Bk, (int)XW, (int)G, 1.0f,
                dPRE + s * Bk * G, (int)G, t->Wcat, (int)XW, 0.0f, w->dXH, (int)XW);
    for (size_t lb = 0; lb < Bk; lb++) {
      size_t lr = s * Bk + lb, row = s * B + w->b0 + lb;
      float *dhn = w->dh_next + lb * H, *dcn = w->dc_next + lb * H;
      if (!w->active[lr] || t->sreset[row]) {
        memset(dhn, 0, H * sizeof(float));
        memset(dcn, 0, H * sizeof(float));
      } else {
        memcpy(dhn, w->dXH + lb * XW + I, H * sizeof(float));
      }
      if (!w->active[lr]) continue;
      const float *dx = w->dXH + lb * XW;
      float *ge = gr + L->emb_cat + (size_t)w->cidx[lr] * t->EC;
      for (size_t k = 0; k < t->EC; k++) ge[k] += dx[k];
      float *ga = gr + L->emb_act + (size_t)w->aidx[lr] * t->EA;
      for (size_t k = 0; k < t->EA; k++) ga[k] += dx[t->EC + k];
    }
  }
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)G, (int)XW, (int)TB, 1.0f, dPRE,
              (int)G, w->XH, (int)XW, 0.0f, w->dWcat, (int)XW);
  for (size_t r = 0; r < G; r++) {
    float *gi = gr + L->w_ih + r * I, *gh = gr + L->w_hh + r * H;
    const float *wc = w->dWcat + r * XW;
    for (size_t k = 0; k < I; k++) gi[k] += wc[k];
    for (size_t k = 0; k < H; k++) gh[k] += wc[I + k];
  }
  for (size_t lr = 0; lr < TB; lr++) {
    const float *dp = dPRE + lr * G;
    for (size_t r = 0; r < G; r++) {
      gr[L->b_ih + r] += dp[r];
      gr[L->b_hh + r] += dp[r];
    }
  }
}

/* The gradient over [p0, p1): worker 0's plus the others' in worker order
 * (into worker 0's, the trainer's grad), and its sum of squares. */
static void work_sum(trainer_t *t, worker_t *w) {
  float *g0 = t->grad;
  double nrm = 0;
  for (size_t i = w->p0; i < w->p1; i++) {
    float g = g0[i];
    for (unsigned k = 1; k < t->nthreads; k++) g += t->w[k].grad[i];
    g0[i] = g;
    nrm += (double)g * g;
  }
  w->nrm2 = nrm;
}

/* Backward of the chunk chunk_forward just ran: t->grad = d(loss * scale),
 * the workers' gradients added in worker order; w->nrm2 over the slices. */
static void chunk_backward(trainer_t *t, float scale) {
  t->bscale = scale;
  pool_run(t, work_backward);
  pool_run(t, work_sum);
}

static void work_forward_backward(trainer_t *t, worker_t *w) {
  work_forward(t, w);
  work_backward(t, w);
}

/* One training chunk: chunk_forward then chunk_backward with scale 1/R,
 * but each worker runs its backward right after its forward (the schedule
 * knows R, so one wait fewer per chunk). Returns the summed loss; sets
 * T_eff and R (no gradient when R is 0). */
static double chunk_train(trainer_t *t) {
  pack_cell(t);
  t->R = 0;
  chunk_schedule(t);
  if (t->T_eff == 0) return 0.0;
  if (t->R_sched > 0) t->bscale = 1.0f / (float)t->R_sched;
  pool_run(t, t->R_sched > 0 ? work_forward_backward : work_forward);
  double loss = 0;
  for (unsigned k = 0; k < t->nthreads; k++) {
    t->R += t->w[k].R;
    loss += t->w[k].loss;
  }
  if (t->R > 0) pool_run(t, work_sum);
  return loss;
}

/* Adam over the worker's slice. The arrays are taken into restrict locals
 * (stores through t->am could otherwise alias t) and, with SSE2, four
 * floats at a time: each element gets the same operations in the same
 * order as the scalar loop (separate multiply and add, IEEE sqrt and
 * division), so the bits are the same. */
static void work_adam(trainer_t *t, worker_t *w) {
  const float b1 = t->adam_b1, b2 = t->adam_b2, eps = t->adam_eps, sc = t->adam_sc,
              step = t->adam_step, c1 = 1.0f - b1, c2 = 1.0f - b2;
  const float *restrict grad = t->grad;
  float *restrict am = t->am, *restrict av = t->av, *restrict par = t->params;
  size_t i = w->p0;
#if defined(__SSE2__)
  const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1),
               vc2 = _mm_set1_ps(c2), veps = _mm_set1_ps(eps), vsc = _mm_set1_ps(sc),
               vstep = _mm_set1_ps(step);
  for (; i + 4 <= w->p1; i += 4) {
    __m128 g = _mm_mul_ps(_mm_loadu_ps(grad + i), vsc);
    __m128 m = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(am + i)), _mm_mul_ps(vc1, g));
    __m128 v = _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(av + i)), _mm_mul_ps(_mm_mul_ps(vc2, g), g));
    _mm_storeu_ps(am + i, m);
    _mm_storeu_ps(av + i, v);
    __m128 d = _mm_div_ps(_mm_mul_ps(vstep, m), _mm_add_ps(_mm_sqrt_ps(v), veps));
    _mm_storeu_ps(par + i, _mm_sub_ps(_mm_loadu_ps(par + i), d));
  }
#endif
  for (; i < w->p1; i++) {
    float g = grad[i] * sc;
    am[i] = b1 * am[i] + c1 * g;
    av[i] = b2 * av[i] + c2 * g * g;
    par[i] -= step * am[i] / (sqrtf(av[i]) + eps);
  }
}

/* Adam on the gradient chunk_backward left (global-norm clipped: the
 * slices' sums of squares added in worker order). */
static void adam_step(trainer_t *t, float lr, float clip) {
  double nrm = 0;
  for (unsigned k = 0; k < t->nthreads; k++) nrm += t->w[k].nrm2;
  nrm = sqrt(nrm);
  t->adam_sc = (clip > 0 && nrm > clip) ? (float)(clip / nrm) : 1.0f;
  t->adam_b1 = 0.9f;
  t->adam_b2 = 0.999f;
  t->adam_eps = 1e-8f;
  t->adam_t++;
  float c1 = 1.0f - powf(t->adam_b1, (float)t->adam_t),
        c2 = 1.0f - powf(t->adam_b2, (float)t->adam_t);
  t->adam_step = lr * sqrtf(c2) / c1;
  pool_run(t, work_adam);
}

extern void openblas_set_num_threads(int);

static double process_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_dur(char *buf, size_t n, double s) {
  if (s < 60)
    snprintf(buf, n, "%.0fs", s);
  else
    snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

int train_run(const train_opts_t *o, const event_t *events, size_t n, train_result_t *res,
              char *errstr, size_t errstr_size) {
  memset(res, 0, sizeof *res);
  openblas_set_num_threads(1); /* the slot workers are the threads */
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
    double te = ix_mono_s(), ce = process_cpu_s(), loss_sum = 0;
    uint64_t targets = 0;
    t->pool_s = 0;
    for (unsigned k = 0; k < t->nthreads; k++) t->w[k].busy_s = 0;
    epoch_begin(t);
    for (;;) {
      double loss = chunk_train(t);
      if (t->T_eff == 0) break;
      if (t->R == 0) continue;
      loss_sum += loss;
      targets += t->R;
      adam_step(t, lr, o->clip);
    }
    train_epoch_t *c = &res->curve[res->n_epochs++];
    c->epoch = ep;
    c->train_loss = targets ? loss_sum / (double)targets : NAN;
    c->train_s = ix_mono_s() - te;
    c->cpu_s = process_cpu_s() - ce;
    c->events_per_s = (double)t->n_ev / c->train_s;
    c->serial_s = c->train_s - t->pool_s;
    c->workers = t->nthreads;
    c->work_min_s = INFINITY;
    for (unsigned k = 0; k < t->nthreads; k++) {
      double b = t->w[k].busy_s;
      c->work_sum_s += b;
      if (b < c->work_min_s) c->work_min_s = b;
      if (b > c->work_max_s) c->work_max_s = b;
    }
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
        if (t->sev[row] == ROW_IDLE) continue;
        fprintf(js, "%s[%zu,%zu,%d,%d]", first ? "" : ",", s, b, t->sreset[row],
                t->idx[t->sev[row]]);
        first = 0;
      }
    fprintf(js, "]");
  }
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
