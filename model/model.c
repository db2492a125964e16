/* The serving engine (model.h): one batched step for a wave of distinct users.
 * The input projection of the embeddings is folded into lookup tables at load
 * (T_cat = E_c W_ih[:, cat]^T, T_act = E_a W_ih[:, act]^T + b_ih + b_hh), so
 * the per-wave GEMM runs over [time features, h] only, in bf16: h is stored
 * as bf16 in the state (arch.h), the time features are rounded to bf16 and
 * the weights of that GEMM, [W_ih[:, time] | W_hh], are rounded to bf16 at
 * load (products exact, sums float32: vdpbf16ps where the CPU has it, the
 * same bits without); the embedding tables and biases stay float32. Every
 * kernel is batch-invariant, so a user's state does not depend on which wave
 * it was in. The head's vocabulary logits run in bf16 too when the model
 * file says so (ARCH_F_HEAD_BF16: W_v rounded at load, h taken from the
 * state as it is; kern_gemm_bf16p), else in float32 (kern_gemm). */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/err.h"
#include "model/head.h"
#include "model/kernels.h"
#include "model/lstm.h"
#include "model/modelfile.h"
#include "model/profile.h"
#include "model/vocab.h"

#define MODEL_MAX_BATCH 1024 /* rows per LSTM chunk; larger waves are chunked */
#define MODEL_HEAD_BATCH 64  /* rows per head GEMM chunk (keeps logits in L2) */
#define MODEL_CAND (PRED_TOPK + ARCH_P)

_Static_assert(PRED_MAX_NEXT <= MODEL_CAND, "next categories come from the head's candidates");

struct model {
  uint32_t n_next;      /* next categories per prediction (model_set_next_count) */
  arch_dims_t dims;
  arch_layout_t L;
  float *params;
  float half_life_s;
  vocab_t *vocab;
  uint32_t fingerprint;
  char note[MODELFILE_NOTE_MAX + 1];
  char describe[256];
  size_t G, Vp;
  float *t_cat; /* V x G */
  float *t_act; /* ARCH_N_ACTIONS x G, biases folded in */
  lstm_t *cell; /* bf16 cell: x = time features, W = [W_ih[:, time] | W_hh], no bias */
  kern_w_t head_w;    /* W_v, float32 (without ARCH_F_HEAD_BF16) */
  kern_wbp_t head_wb; /* W_v, bf16 (with ARCH_F_HEAD_BF16) */
  kern_w_t dots_w; /* [copy_wp (K rows) ; gate_wg or mix_w], head_n_dots() rows of H */
  /* scratch, sized at load */
  float *x;    /* MODEL_MAX_BATCH x ARCH_N_TIME */
  const float **tc, **ta; /* MODEL_MAX_BATCH rows of t_cat, t_act (the GEMM's start) */
  uint16_t **hp, **cp; /* the wave's h, c in their state blobs (bf16) */
  int32_t *idx;
  float *hbuf; /* MODEL_HEAD_BATCH x H */
  uint16_t *hbuf16; /* MODEL_HEAD_BATCH x H16 (H rounded up to even, pad 0) */
  size_t H16;
  float *z;    /* MODEL_HEAD_BATCH x Vp */
  float *dots; /* MODEL_HEAD_BATCH x dots_w.Np */
};

static void model_free_parts(model_t *m) {
  free(m->params);
  vocab_destroy(m->vocab);
  free(m->t_cat);
  free(m->t_act);
  lstm_destroy(m->cell);
  kern_w_free(&m->head_w);
  kern_wbp_free(&m->head_wb);
  free(m->hbuf16);
  kern_w_free(&m->dots_w);
  free(m->dots);
  free(m->x);
  free(m->tc);
  free(m->ta);
  free(m->hp);
  free(m->cp);
  free(m->idx);
  free(m->hbuf);
  free(m->z);
}

void model_destroy(model_t *m) {
  if (!m) return;
  model_free_parts(m);
  free(m);
}

static uint32_t compute_fingerprint(const model_t *m) {
  /* ARCH_STATE_FORMAT: a checkpoint of float32 h, c (format 1) must not be
   * read as bf16 ones; its fingerprint differs, so restore refuses it.
   * ARCH_F_HEAD_BF16 is left out: the head's precision does not change what
   * a state means, so states stay valid across it. */
  uint32_t layout[11] = {ARCH_VERSION, (uint32_t)ARCH_STATE_HEADER_BYTES, ARCH_K, ARCH_P,
                         m->dims.V, m->dims.H, m->dims.EC, m->dims.EA, m->dims.I,
                         m->dims.flags & ~(uint32_t)ARCH_F_HEAD_BF16, ARCH_STATE_FORMAT};
  uint32_t crc = ix_crc32(0, layout, sizeof layout);
  crc = ix_crc32(crc, vocab_ids(m->vocab), (size_t)m->dims.V * sizeof(uint64_t));
  return ix_crc32(crc, m->params, m->L.total * sizeof(float));
}

/* Takes ownership of params on success and on failure. */
static int model_build(const arch_dims_t *dims, float half_life_s, const uint64_t *vocab_ids_in,
                       float *params, const char *note, model_t **out, char *errstr,
                       size_t errstr_size) {
  *out = NULL;
  int rc = arch_dims_check(dims, errstr, errstr_size);
  if (rc < 0) {
    free(params);
    return rc;
  }
  if (!(half_life_s > 0.0f)) {
    free(params);
    snprintf(errstr, errstr_size, "half-life must be positive (got %g s)", (double)half_life_s);
    return IX_EINVAL;
  }
  model_t *m = calloc(1, sizeof(*m));
  if (m) m->n_next = PRED_TOPK;
  if (!m) {
    free(params);
    snprintf(errstr, errstr_size, "out of memory creating the model");
    return IX_ENOMEM;
  }
  m->dims = *dims;
  arch_layout(dims, &m->L);
  m->params = params;
  m->half_life_s = half_life_s;
  snprintf(m->note, sizeof m->note, "%s", note ? note : "");
  const size_t V = dims->V, H = dims->H, G = 4 * (size_t)dims->H, EC = dims->EC,
               EA = dims->EA, I = dims->I;
  m->G = G;
  const arch_layout_t *L = &m->L;
  for (size_t i = 0; i < L->total; i++) {
    if (!isfinite(params[i])) {
      snprintf(errstr, errstr_size, "model parameter %zu is not finite", i);
      rc = IX_EMALFORMED;
      goto err;
    }
  }
  rc = vocab_new(vocab_ids_in, V, &m->vocab);
  if (rc < 0) {
    snprintf(errstr, errstr_size, rc == IX_EINVAL ? "model vocabulary has duplicate category ids"
                                                  : "out of memory building the vocabulary");
    goto err;
  }
  rc = IX_ENOMEM;
  m->t_cat = malloc(V * G * sizeof(float));
  m->t_act = malloc(ARCH_N_ACTIONS * G * sizeof(float));
  if (!m->t_cat || !m->t_act) goto oom;
  const float *w_ih = params + L->w_ih;
  for (size_t v = 0; v < V; v++) {
    const float *e = params + L->emb_cat + v * EC;
    for (size_t j = 0; j < G; j++) {
      double s = 0.0;
      for (size_t k = 0; k < EC; k++) s += (double)e[k] * w_ih[j * I + k];
      m->t_cat[v * G + j] = (float)s;
    }
  }
  for (size_t a = 0; a < ARCH_N_ACTIONS; a++) {
    const float *e = params + L->emb_act + a * EA;
    for (size_t j = 0; j < G; j++) {
      double s = (double)params[L->b_ih + j] + (double)params[L->b_hh + j];
      for (size_t k = 0; k < EA; k++) s += (double)e[k] * w_ih[j * I + EC + k];
      m->t_act[a * G + j] = (float)s;
    }
  }
  {
    float *w_t = malloc(G * ARCH_N_TIME * sizeof(float));
    if (!w_t) goto oom;
    for (size_t j = 0; j < G; j++)
      for (size_t k = 0; k < ARCH_N_TIME; k++) w_t[j * ARCH_N_TIME + k] = w_ih[j * I + EC + EA + k];
    rc = lstm_new_bf16(ARCH_N_TIME, H, w_t, params + L->w_hh, NULL, NULL, MODEL_MAX_BATCH,
                       &m->cell);
    free(w_t);
    if (rc < 0) goto oom;
  }
  if (dims->flags & ARCH_F_HEAD_BF16) {
    if ((rc = kern_wbp_pack(&m->head_wb, H, V, params + L->head_wv, H)) < 0) goto oom;
    m->Vp = m->head_wb.Np;
  } else {
    if ((rc = kern_w_pack(&m->head_w, H, V, params + L->head_wv, H)) < 0) goto oom;
    m->Vp = m->head_w.Np;
  }
  m->H16 = (H + 1) / 2 * 2;
  {
    const unsigned nd = head_n_dots(dims);
    float *wd = malloc(nd * H * sizeof(float));
    if (!wd) goto oom;
    memcpy(wd, params + L->copy_wp, (size_t)ARCH_K * H * sizeof(float));
    if (dims->flags & ARCH_F_EXPERTS)
      memcpy(wd + (size_t)ARCH_K * H, params + L->mix_w, ARCH_N_EXPERTS * H * sizeof(float));
    else
      memcpy(wd + (size_t)ARCH_K * H, params + L->gate_wg, H * sizeof(float));
    rc = kern_w_pack(&m->dots_w, H, nd, wd, H);
    free(wd);
    if (rc < 0) goto oom;
  }
  m->dots = malloc(MODEL_HEAD_BATCH * m->dots_w.Np * sizeof(float));
  rc = IX_ENOMEM;
  m->x = malloc(MODEL_MAX_BATCH * ARCH_N_TIME * sizeof(float));
  m->tc = malloc(MODEL_MAX_BATCH * sizeof(float *));
  m->ta = malloc(MODEL_MAX_BATCH * sizeof(float *));
  m->hp = malloc(MODEL_MAX_BATCH * sizeof(uint16_t *));
  m->cp = malloc(MODEL_MAX_BATCH * sizeof(uint16_t *));
  m->idx = malloc(MODEL_MAX_BATCH * sizeof(int32_t));
  m->hbuf = malloc(MODEL_HEAD_BATCH * H * sizeof(float));
  m->hbuf16 = calloc(MODEL_HEAD_BATCH * m->H16, sizeof(uint16_t)); /* pads stay 0 */
  m->z = malloc(MODEL_HEAD_BATCH * m->Vp * sizeof(float));
  if (!m->x || !m->tc || !m->ta || !m->hp || !m->cp || !m->idx || !m->hbuf || !m->hbuf16 || !m->z ||
      !m->dots)
    goto oom;
  m->fingerprint = compute_fingerprint(m);
  snprintf(m->describe, sizeof m->describe,
           "lstm h=%u vocab=%u emb=%u+%u in=%u%s%s half_life=%.0fs state=%zuB fp=%08x kernel=%s",
           dims->H, dims->V, dims->EC, dims->EA, dims->I,
           (dims->flags & ARCH_F_SHIFT_UNIT) ? " shift_unit" : "",
           (dims->flags & ARCH_F_HEAD_BF16) ? " head=bf16" : "", (double)half_life_s,
           arch_state_size(dims), m->fingerprint, kern_name());
  *out = m;
  return 0;
oom:
  rc = IX_ENOMEM;
  snprintf(errstr, errstr_size, "out of memory creating the model");
err:
  model_destroy(m);
  return rc;
}

extern void openblas_set_num_threads(int);

int model_load(const char *path, model_t **out, char *errstr, size_t errstr_size) {
  modelfile_t mf;
  *out = NULL;
  /* Serving is one thread by design (scale-out is more processes); OpenBLAS's
   * own threads only add hand-off latency to the head's small sgemm. */
  openblas_set_num_threads(1);
  int rc = modelfile_read(path, &mf, errstr, errstr_size);
  if (rc < 0) return rc;
  float *params = mf.params;
  mf.params = NULL;
  char why[512];
  rc = model_build(&mf.dims, mf.half_life_s, mf.vocab_ids, params, mf.note, out, why, sizeof why);
  if (rc < 0) snprintf(errstr, errstr_size, "%s: %s", path, why);
  modelfile_free(&mf);
  return rc;
}

int model_from_params(const arch_dims_t *dims, float half_life_s, const uint64_t *vocab_ids_in,
                      const float *params, const char *note, model_t **out, char *errstr,
                      size_t errstr_size) {
  *out = NULL;
  int rc = arch_dims_check(dims, errstr, errstr_size);
  if (rc < 0) return rc;
  arch_layout_t L;
  arch_layout(dims, &L);
  float *copy = malloc(L.total * sizeof(float));
  if (!copy) {
    snprintf(errstr, errstr_size, "out of memory creating the model");
    return IX_ENOMEM;
  }
  memcpy(copy, params, L.total * sizeof(float));
  return model_build(dims, half_life_s, vocab_ids_in, copy, note, out, errstr, errstr_size);
}

size_t model_state_size(const model_t *m) { return arch_state_size(&m->dims); }
uint32_t model_fingerprint(const model_t *m) { return m->fingerprint; }
const char *model_describe(const model_t *m) { return m->describe; }
void model_state_init(const model_t *m, void *state) { arch_state_init(&m->dims, state); }
const arch_dims_t *model_dims(const model_t *m) { return &m->dims; }
const float *model_params(const model_t *m) { return m->params; }
const uint64_t *model_vocab_ids(const model_t *m) { return vocab_ids(m->vocab); }
float model_half_life(const model_t *m) { return m->half_life_s; }
int32_t model_vocab_index(const model_t *m, uint64_t category_id) {
  return vocab_index(m->vocab, category_id);
}
int model_set_next_count(model_t *m, uint32_t n) {
  if (!m || n < 1 || n > PRED_MAX_NEXT) return IX_EINVAL;
  m->n_next = n;
  return 0;
}

void model_set_half_life(model_t *m, float half_life_s) {
  if (half_life_s > 0.0f) m->half_life_s = half_life_s;
}

/* Head logits for n (<= MODEL_HEAD_BATCH) states into m->z rows. */
static void head_logits(model_t *m, size_t n, arch_state_t *const *st) {
  const size_t H = m->dims.H, V = m->dims.V, Vp = m->Vp;
  const float *bv = m->params + m->L.head_bv;
  for (size_t b = 0; b < n; b++) {
    arch_state_get_h(&m->dims, st[b], m->hbuf + b * H);
    float *z = m->z + b * Vp;
    memcpy(z, bv, V * sizeof(float));
    memset(z + V, 0, (Vp - V) * sizeof(float));
  }
  if (m->dims.flags & ARCH_F_HEAD_BF16) {
    for (size_t b = 0; b < n; b++)
      memcpy(m->hbuf16 + b * m->H16, arch_state_h16(st[b]), H * sizeof(uint16_t));
    kern_gemm_bf16p(&m->head_wb, n, m->hbuf16, m->H16, m->z, Vp);
  } else {
    kern_gemm(&m->head_w, n, m->hbuf, H, m->z, Vp);
  }
  memset(m->dots, 0, n * m->dots_w.Np * sizeof(float));
  kern_gemm(&m->dots_w, n, m->hbuf, H, m->dots, m->dots_w.Np);
}

static int cmp_desc_long(const void *a, const void *b) {
  const pred_cat_t *x = a, *y = b;
  if (x->p > y->p) return -1;
  if (x->p < y->p) return 1;
  return 0;
}

/* Fill one prediction from the finished head (z = q of head_mix, oov_p). */
static void predict_one(model_t *m, const arch_state_t *s, const float *h, float *z,
                        const head_out_t *ho, const float *oov_p, prediction_t *pred) {
  memset(pred->next, 0, sizeof pred->next);
  memset(pred->longterm, 0, sizeof pred->longterm);
  memset(pred->rising, 0, sizeof pred->rising);
  memset(pred->falling, 0, sizeof pred->falling);
  float pp[ARCH_P], plong[ARCH_P];
  unsigned np = s->n_profile <= ARCH_P ? s->n_profile : ARCH_P;
  for (unsigned j = 0; j < np; j++) {
    int32_t idx = s->profile[j].idx;
    float p = 0.0f;
    if (idx > 0 && (uint32_t)idx < m->dims.V) {
      p = z[idx];
    } else {
      for (unsigned k = 0; k < ho->n_recent; k++)
        if (s->recent[k].cat == s->profile[j].cat) p = oov_p[k];
    }
    pp[j] = p;
  }
  profile_plong(s, plong);
  pred->n_events = s->n_events;
  pred->fluctuation = profile_js(np, pp, plong);
  float shift = profile_shift_prob(np, pp);
  if (m->dims.flags & ARCH_F_SHIFT_UNIT) {
    const size_t H = m->dims.H;
    float ds = shift < 1e-6f ? 1e-6f : shift > 1.0f - 1e-6f ? 1.0f - 1e-6f : shift;
    float a = m->params[m->L.shift_b] + m->params[m->L.shift_wd] * logf(ds / (1.0f - ds));
    for (size_t j = 0; j < H; j++) a += m->params[m->L.shift_w + j] * h[j];
    shift = 1.0f / (1.0f + expf(-a));
  }
  pred->shift_prob = shift;
  uint64_t cand[MODEL_CAND];
  float cp[MODEL_CAND];
  size_t nc = head_topk(&m->dims, z, oov_p, s, vocab_ids(m->vocab), MODEL_CAND, cand, cp);
  size_t nn = nc < m->n_next ? nc : m->n_next;
  /* field by field: the arrays were zeroed, padding included, so the bytes
   * of a prediction are deterministic */
  for (size_t i = 0; i < nn; i++) pred->next[i].category_id = cand[i], pred->next[i].p = cp[i];
  pred->n_next = (uint32_t)nn;
  uint64_t rc[PRED_TOPK];
  float rd[PRED_TOPK];
  size_t nr = profile_rising(s, plong, pp, nc, cand, cp, PRED_TOPK, rc, rd);
  for (size_t i = 0; i < nr; i++) pred->rising[i].category_id = rc[i], pred->rising[i].p = rd[i];
  pred->n_rising = (uint32_t)nr;
  size_t nf = profile_falling(s, plong, pp, PRED_TOPK, rc, rd);
  for (size_t i = 0; i < nf; i++) pred->falling[i].category_id = rc[i], pred->falling[i].p = rd[i];
  pred->n_falling = (uint32_t)nf;
  pred_cat_t lt[ARCH_P];
  for (unsigned j = 0; j < np; j++) lt[j] = (pred_cat_t){s->profile[j].cat, plong[j]};
  /* insertion sort: stable, so ties keep slot order (qsort is not stable) */
  for (unsigned j = 1; j < np; j++) {
    pred_cat_t e = lt[j];
    unsigned i = j;
    while (i > 0 && cmp_desc_long(&lt[i - 1], &e) > 0) {
      lt[i] = lt[i - 1];
      i--;
    }
    lt[i] = e;
  }
  unsigned nl = np < PRED_TOPK ? np : PRED_TOPK;
  for (unsigned i = 0; i < nl; i++)
    pred->longterm[i].category_id = lt[i].category_id, pred->longterm[i].p = lt[i].p;
  pred->n_long = nl;
}


static void predict_chunk(model_t *m, void *const *states, size_t n, prediction_t *preds);

static void step_chunk(model_t *m, void *const *states, const event_t *events, size_t n,
                       prediction_t *preds) {
  const size_t G = m->G;
  for (size_t b = 0; b < n; b++) {
    arch_state_t *s = states[b];
    const event_t *ev = &events[b];
    int32_t idx = vocab_index(m->vocab, ev->category_id);
    m->idx[b] = idx;
    arch_time_features(s, ev, m->x + b * ARCH_N_TIME);
    m->tc[b] = m->t_cat + (size_t)idx * G;
    m->ta[b] = m->t_act + (size_t)arch_action_index(ev->action) * G;
    m->hp[b] = arch_state_h16(s);
    m->cp[b] = arch_state_c16(s, &m->dims);
  }
  /* h, c read and written in place, as bf16 */
  lstm_step_batch_bf16(m->cell, n, m->x, m->hp, m->cp, m->tc, m->ta);
  for (size_t b = 0; b < n; b++)
    arch_state_advance_model(&m->dims, m->params, states[b], &events[b], m->idx[b], m->half_life_s);
  if (preds) predict_chunk(m, states, n, preds);
}

/* The head for n states (read only), in chunks of MODEL_HEAD_BATCH rows. */
static void predict_chunk(model_t *m, void *const *states, size_t n, prediction_t *preds) {
  for (size_t b0 = 0; b0 < n; b0 += MODEL_HEAD_BATCH) {
    size_t nb = n - b0 < MODEL_HEAD_BATCH ? n - b0 : MODEL_HEAD_BATCH;
    arch_state_t *const *st = (arch_state_t *const *)(states + b0);
    head_logits(m, nb, st);
    for (size_t b = 0; b < nb; b++) {
      head_out_t ho;
      const float *h = m->hbuf + b * m->dims.H;
      float *z = m->z + b * m->Vp;
      float oov_p[ARCH_K];
      head_finish_mix(&m->dims, m->params, m->dots + b * m->dots_w.Np, st[b], z, &ho, oov_p);
      predict_one(m, st[b], h, z, &ho, oov_p, &preds[b0 + b]);
    }
  }
}

int model_step_batch(model_t *m, void *const *states, const event_t *events, size_t n,
                     prediction_t *preds) {
  if (n == 0) return 0;
  if (!m || !states || !events) return IX_EINVAL;
  for (size_t b0 = 0; b0 < n; b0 += MODEL_MAX_BATCH) {
    size_t nb = n - b0 < MODEL_MAX_BATCH ? n - b0 : MODEL_MAX_BATCH;
    step_chunk(m, states + b0, events + b0, nb, preds ? preds + b0 : NULL);
  }
  return 0;
}

int model_predict_batch(model_t *m, const void *const *states, size_t n, prediction_t *preds) {
  if (n == 0) return 0;
  if (!m || !states || !preds) return IX_EINVAL;
  /* the head only reads the states */
  predict_chunk(m, (void *const *)(uintptr_t)states, n, preds);
  return 0;
}

float model_prob(model_t *m, const void *state, uint64_t category_id) {
  arch_state_t *s = (arch_state_t *)(uintptr_t)state; /* read only */
  head_logits(m, 1, &s);
  head_out_t ho;
  head_finish_dots(&m->dims, m->params, m->dots, s, m->z, &ho);
  return head_prob_target(&ho, m->z, s, category_id, vocab_index(m->vocab, category_id));
}

unsigned model_heuristic_rank(const model_t *m, const void *state, model_heuristic_t h,
                              uint64_t category_id, unsigned k) {
  const arch_state_t *s = state;
  unsigned n = s->n_recent <= ARCH_K ? s->n_recent : ARCH_K, at = n;
  for (unsigned r = 0; r < n; r++)
    if (s->recent[r].cat == category_id) at = r;
  if (at == n) return 0;
  unsigned rank = at + 1;
  if (h == MODEL_H_DECAY) {
    if (!(m->dims.flags & ARCH_F_EXPERTS)) return 0;
    rank = 1;
    for (unsigned r = 0; r < n; r++)
      rank += s->dec_w[r] > s->dec_w[at] || (s->dec_w[r] == s->dec_w[at] && r < at);
  }
  return rank <= k ? rank : 0;
}
