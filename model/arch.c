/* Architecture plumbing shared by training and serving (arch.h): dims,
 * the flat parameter layout, the state blob and the input features. */
#include "model/arch.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "model/kernels.h"
#include "model/profile.h"

void arch_dims_default(arch_dims_t *d) {
  d->V = ARCH_DEFAULT_V;
  d->H = ARCH_DEFAULT_H;
  d->EC = ARCH_DEFAULT_EC;
  d->EA = ARCH_DEFAULT_EA;
  d->I = arch_input_size(d->EC, d->EA);
  d->flags = 0;
}

uint32_t arch_input_size(uint32_t EC, uint32_t EA) {
  return (EC + EA + ARCH_N_TIME + 7u) / 8u * 8u;
}

int arch_dims_check(const arch_dims_t *d, char *errstr, size_t errstr_size) {
  if (d->V < 2 || d->V > ARCH_MAX_V) {
    snprintf(errstr, errstr_size, "vocabulary size %u out of range [2, %u]", d->V, ARCH_MAX_V);
    return IX_ERANGE;
  }
  if (d->H == 0 || d->H > ARCH_MAX_H) {
    snprintf(errstr, errstr_size, "hidden size %u out of range [1, %u]", d->H, ARCH_MAX_H);
    return IX_ERANGE;
  }
  if (d->EC > ARCH_MAX_E || d->EA > ARCH_MAX_E) {
    snprintf(errstr, errstr_size, "embedding widths %u/%u exceed %u", d->EC, d->EA, ARCH_MAX_E);
    return IX_ERANGE;
  }
  if (d->I < d->EC + d->EA + ARCH_N_TIME || d->I > 2 * ARCH_MAX_E + 64) {
    snprintf(errstr, errstr_size,
             "input size %u does not fit category %u + action %u + %u time features",
             d->I, d->EC, d->EA, ARCH_N_TIME);
    return IX_EMISMATCH;
  }
  if (d->flags & ~(uint32_t)ARCH_F_ALL) {
    snprintf(errstr, errstr_size, "unknown architecture flags 0x%x", d->flags);
    return IX_EMISMATCH;
  }
  return 0;
}

void arch_layout(const arch_dims_t *d, arch_layout_t *L) {
  size_t V = d->V, H = d->H, G = 4 * (size_t)d->H, off = 0;
  L->emb_cat = off; off += V * d->EC;
  L->emb_act = off; off += (size_t)ARCH_N_ACTIONS * d->EA;
  L->w_ih = off; off += G * d->I;
  L->w_hh = off; off += G * H;
  L->b_ih = off; off += G;
  L->b_hh = off; off += G;
  L->head_wv = off; off += V * H;
  L->head_bv = off; off += V;
  L->copy_wp = off; off += (size_t)ARCH_K * H;
  L->copy_bp = off; off += ARCH_K;
  L->copy_wf = off; off += 1;
  if (d->flags & ARCH_F_EXPERTS) {
    L->mix_w = off; off += (size_t)ARCH_N_EXPERTS * H;
    L->mix_b = off; off += ARCH_N_EXPERTS;
    L->x_beta = off; off += 1;
    L->x_gamma = off; off += 1;
    L->x_hl = off; off += 1;
  } else {
    L->gate_wg = off; off += H;
    L->gate_bg = off; off += 1;
  }
  if (d->flags & ARCH_F_SHIFT_UNIT) {
    L->shift_w = off; off += H;
    L->shift_wd = off; off += 1;
    L->shift_b = off; off += 1;
  }
  L->total = off;
  if (!(d->flags & ARCH_F_SHIFT_UNIT)) L->shift_w = L->shift_wd = L->shift_b = off;
  if (d->flags & ARCH_F_EXPERTS) L->gate_wg = L->gate_bg = off;
  else L->mix_w = L->mix_b = L->x_beta = L->x_gamma = L->x_hl = off;
}

void arch_state_init(const arch_dims_t *d, arch_state_t *s) {
  memset(s, 0, arch_state_size(d));
}

void arch_state_get_h(const arch_dims_t *d, const arch_state_t *s, float *h) {
  const uint16_t *h16 = arch_state_hc16(s);
  for (size_t j = 0; j < d->H; j++) h[j] = kern_bf16_to_f32(h16[j]);
}

/* log1pf(n) for small n, from log1pf itself (same bits): one call fewer per
 * event on the serving path. */
#define LOGN_TAB 512
static float logn_tab[LOGN_TAB];
static pthread_once_t logn_once = PTHREAD_ONCE_INIT;
static void logn_init(void) {
  for (unsigned i = 0; i < LOGN_TAB; i++) logn_tab[i] = log1pf((float)i);
}

void arch_time_features(const arch_state_t *s, const event_t *ev, float *t) {
  pthread_once(&logn_once, logn_init);
  memset(t, 0, ARCH_N_TIME * sizeof(float));
  if (s->n_events == 0) {
    t[ARCH_T_FIRST] = 1.0f;
  } else {
    int64_t dms = ev->ts_ms - s->prev_ts_ms;
    float gap_s = dms > 0 ? (float)((double)dms / 1000.0) : 0.0f;
    t[ARCH_T_LOGGAP] = log1pf(gap_s) / 12.0f;
    t[ARCH_T_LT60S] = gap_s < 60.0f ? 1.0f : 0.0f;
    t[ARCH_T_LT1H] = gap_s < 3600.0f ? 1.0f : 0.0f;
    t[ARCH_T_GT1D] = gap_s > 86400.0f ? 1.0f : 0.0f;
    t[ARCH_T_REPEAT] = ev->category_id == s->prev_cat ? 1.0f : 0.0f;
  }
  t[ARCH_T_LOGN] =
      (s->n_events < LOGN_TAB ? logn_tab[s->n_events] : log1pf((float)s->n_events)) / 8.0f;
}

void arch_features(const arch_dims_t *d, const float *params, const arch_state_t *s,
                   const event_t *ev, int32_t cat_idx, float *x) {
  arch_layout_t L;
  arch_layout(d, &L);
  if (cat_idx < 0 || (uint32_t)cat_idx >= d->V) cat_idx = 0;
  memcpy(x, params + L.emb_cat + (size_t)cat_idx * d->EC, d->EC * sizeof(float));
  memcpy(x + d->EC, params + L.emb_act + (size_t)arch_action_index(ev->action) * d->EA,
         d->EA * sizeof(float));
  arch_time_features(s, ev, x + d->EC + d->EA);
  size_t used = (size_t)d->EC + d->EA + ARCH_N_TIME;
  if (d->I > used) memset(x + used, 0, (d->I - used) * sizeof(float));
}

/* dec_w (NULL without experts) moves with its slot. */
static void recent_touch(arch_state_t *s, uint64_t cat, int32_t idx, float *dec_w) {
  unsigned n = s->n_recent, r;
  for (r = 0; r < n; r++)
    if (s->recent[r].cat == cat) break;
  arch_recent_t e;
  float w = 1.0f;
  if (r < n) {
    e = s->recent[r];
    if (e.count < UINT32_MAX) e.count++;
    if (dec_w) w = dec_w[r] + 1.0f;
  } else {
    e.cat = cat;
    e.count = 1;
    e.idx = idx;
    if (n < ARCH_K) s->n_recent = (uint8_t)(++n);
    r = n - 1; /* drop the least recent when full */
  }
  memmove(&s->recent[1], &s->recent[0], r * sizeof(arch_recent_t));
  s->recent[0] = e;
  if (dec_w) {
    memmove(&dec_w[1], &dec_w[0], r * sizeof(float));
    dec_w[0] = w;
  }
}

static void state_advance(arch_state_t *s, const event_t *ev, int32_t cat_idx,
                          float half_life_s, float *dec_w) {
  recent_touch(s, ev->category_id, cat_idx, dec_w);
  profile_decay(s, ev->ts_ms, half_life_s);
  profile_add(s, ev->category_id, cat_idx);
  s->prev_cat = ev->category_id;
  s->prev_idx = cat_idx;
  s->prev_ts_ms = ev->ts_ms;
  s->prev_action = (uint8_t)arch_action_index(ev->action);
  if (s->n_events < UINT32_MAX) s->n_events++;
}

void arch_state_advance(arch_state_t *s, const event_t *ev, int32_t cat_idx,
                        float half_life_s) {
  state_advance(s, ev, cat_idx, half_life_s, NULL);
}

void arch_state_advance_model(const arch_dims_t *d, const float *params, arch_state_t *s,
                              const event_t *ev, int32_t cat_idx, float half_life_s) {
  if (!(d->flags & ARCH_F_EXPERTS)) {
    state_advance(s, ev, cat_idx, half_life_s, NULL);
    return;
  }
  arch_layout_t L;
  arch_layout(d, &L);
  float *w = s->dec_w;
  if (s->n_events > 0) {
    /* the decay baseline's factor (model/baselines.c decay_factor), one event */
    double f = (double)params[L.x_gamma], hl = (double)params[L.x_hl];
    int64_t dms = ev->ts_ms - s->prev_ts_ms;
    if (hl > 0 && dms > 0) f *= exp2(-(double)dms / 1000.0 / hl);
    for (unsigned k = 0; k < s->n_recent && k < ARCH_K; k++) w[k] = (float)((double)w[k] * f);
  }
  state_advance(s, ev, cat_idx, half_life_s, w);
}
