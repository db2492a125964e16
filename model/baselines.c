/* Streaming baselines for next-category prediction. Every baseline's
 * distribution has the form  p(c) = e(c) + a * pop(c):  an explicit part over
 * a small candidate set (the user's categories, the last category's
 * successors) plus a multiple of causal global popularity, so the top-k over
 * all categories only needs the candidates and the most popular few. */
#include "model/baselines.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hash.h"
#include "model/arch.h"
#include "model/profile.h"

/* ---------------------------------------------------------------- helpers */

typedef struct {
  uint32_t cat; /* dense category */
  uint32_t count;
  float w;      /* decayed weight as of (w_ts, w_n) */
  uint32_t w_n;
  int64_t w_ts;
} ucat_t;

typedef struct {
  ucat_t *list; /* distinct categories, most recent first */
  uint32_t n_list, cap;
  uint32_t n_events;
  int64_t last_ts;
  arch_state_t prof; /* long-term profile (header only: h, c unused) */
} buser_t;

typedef struct {
  uint32_t next, count;
} succ_t;

typedef struct {
  succ_t *s;
  uint32_t n, cap;
  uint32_t total;
} chain_t;

struct bl {
  bl_params_t p;
  float prof_half_life_s;
  uint32_t n_users;
  buser_t *users;
  /* category map raw id -> dense */
  uint64_t *map_key;
  uint32_t *map_val;
  size_t map_mask, n_cats, cap_cats;
  uint64_t *cat_id;   /* dense -> raw */
  uint32_t *cnt;      /* global count per dense category */
  uint32_t *order;    /* dense categories by count, descending */
  uint32_t *pos;      /* position of each dense category in order */
  uint32_t *start;    /* start[k] = number of categories with count > k */
  size_t cap_start;
  chain_t *chain;     /* per dense category: its successors */
  uint64_t total;     /* events observed */
  /* per-prediction scratch */
  uint32_t *mark;     /* stamp per dense category */
  uint32_t stamp;
  uint32_t *cand;
  float *cand_e;
  size_t cap_cand;
};

static const char *const g_names[BL__COUNT] = {"repeat", "recency", "freq", "decay",
                                               "pop",    "markov",  "blend"};

const char *bl_name(bl_kind_t kind) { return (unsigned)kind < BL__COUNT ? g_names[kind] : "?"; }

void bl_params_default(bl_kind_t kind, bl_params_t *p) {
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->lambda_rank = 0.01f;
  p->lambda_prob = 0.05f;
  p->beta = 0.6f;
  p->gamma = 0.9f;
  p->half_life_s = 0;
  p->alpha = 1.0f;
  p->w_markov = 0.3f;
}

static void bl_params_describe(const bl_params_t *p, char *buf, size_t n) {
  switch (p->kind) {
  case BL_RECENCY:
    snprintf(buf, n, "beta=%g lr=%g lp=%g", p->beta, p->lambda_rank, p->lambda_prob);
    break;
  case BL_DECAY:
    snprintf(buf, n, "gamma=%g hl=%gs lr=%g lp=%g", p->gamma, p->half_life_s, p->lambda_rank,
             p->lambda_prob);
    break;
  case BL_MARKOV:
    snprintf(buf, n, "alpha=%g lr=%g lp=%g", p->alpha, p->lambda_rank, p->lambda_prob);
    break;
  case BL_BLEND:
    snprintf(buf, n, "beta=%g w_mk=%g alpha=%g lr=%g lp=%g", p->beta, p->w_markov, p->alpha,
             p->lambda_rank, p->lambda_prob);
    break;
  case BL_POP:
    snprintf(buf, n, "add-one");
    break;
  default:
    snprintf(buf, n, "lr=%g lp=%g", p->lambda_rank, p->lambda_prob);
    break;
  }
}

void bl_destroy(bl_t *b) {
  if (!b) return;
  if (b->users)
    for (uint32_t u = 0; u < b->n_users; u++) free(b->users[u].list);
  free(b->users);
  if (b->chain)
    for (size_t c = 0; c < b->n_cats; c++) free(b->chain[c].s);
  free(b->chain);
  free(b->map_key);
  free(b->map_val);
  free(b->cat_id);
  free(b->cnt);
  free(b->order);
  free(b->pos);
  free(b->start);
  free(b->mark);
  free(b->cand);
  free(b->cand_e);
  free(b);
}

int bl_new(const bl_params_t *p, uint32_t n_users, float profile_half_life_s, bl_t **out) {
  *out = NULL;
  if (!p || (unsigned)p->kind >= BL__COUNT || !(profile_half_life_s > 0) ||
      !(p->lambda_rank >= 0 && p->lambda_rank <= 1) || !(p->lambda_prob >= 0 && p->lambda_prob <= 1))
    return IX_EINVAL;
  if (p->kind == BL_DECAY && !(p->gamma > 0 && p->gamma <= 1)) return IX_EINVAL;
  bl_t *b = calloc(1, sizeof *b);
  if (!b) return IX_ENOMEM;
  b->p = *p;
  b->prof_half_life_s = profile_half_life_s;
  b->n_users = n_users;
  b->users = calloc(n_users ? n_users : 1, sizeof *b->users);
  b->map_mask = 1023;
  b->map_key = malloc((b->map_mask + 1) * sizeof *b->map_key);
  b->map_val = malloc((b->map_mask + 1) * sizeof *b->map_val);
  if (!b->users || !b->map_key || !b->map_val) {
    bl_destroy(b);
    return IX_ENOMEM;
  }
  memset(b->map_val, 0xff, (b->map_mask + 1) * sizeof *b->map_val);
  *out = b;
  return 0;
}

static uint32_t cat_find(const bl_t *b, uint64_t id) {
  size_t h = ix_fmix64(id) & b->map_mask;
  while (b->map_val[h] != UINT32_MAX) {
    if (b->map_key[h] == id) return b->map_val[h];
    h = (h + 1) & b->map_mask;
  }
  return UINT32_MAX;
}

static int grow(void **ptr, size_t elem, size_t n) {
  void *q = realloc(*ptr, elem * n);
  if (!q) return IX_ENOMEM;
  *ptr = q;
  return 0;
}

/* Dense index of id, creating it (count 0, last in the popularity order). */
static int cat_intern(bl_t *b, uint64_t id, uint32_t *out) {
  uint32_t c = cat_find(b, id);
  if (c != UINT32_MAX) {
    *out = c;
    return 0;
  }
  if (2 * (b->n_cats + 1) > b->map_mask + 1) { /* rehash */
    size_t cap = (b->map_mask + 1) * 2;
    uint64_t *k = malloc(cap * sizeof *k);
    uint32_t *v = malloc(cap * sizeof *v);
    if (!k || !v) {
      free(k);
      free(v);
      return IX_ENOMEM;
    }
    memset(v, 0xff, cap * sizeof *v);
    for (size_t i = 0; i < b->n_cats; i++) {
      size_t h = ix_fmix64(b->cat_id[i]) & (cap - 1);
      while (v[h] != UINT32_MAX) h = (h + 1) & (cap - 1);
      k[h] = b->cat_id[i];
      v[h] = (uint32_t)i;
    }
    free(b->map_key);
    free(b->map_val);
    b->map_key = k;
    b->map_val = v;
    b->map_mask = cap - 1;
  }
  if (b->n_cats == b->cap_cats) {
    size_t cap = b->cap_cats ? b->cap_cats * 2 : 1024;
    if (grow((void **)&b->cat_id, sizeof *b->cat_id, cap) ||
        grow((void **)&b->cnt, sizeof *b->cnt, cap) ||
        grow((void **)&b->order, sizeof *b->order, cap) ||
        grow((void **)&b->pos, sizeof *b->pos, cap) ||
        grow((void **)&b->chain, sizeof *b->chain, cap) ||
        grow((void **)&b->mark, sizeof *b->mark, cap))
      return IX_ENOMEM;
    b->cap_cats = cap;
  }
  c = (uint32_t)b->n_cats++;
  size_t h = ix_fmix64(id) & b->map_mask;
  while (b->map_val[h] != UINT32_MAX) h = (h + 1) & b->map_mask;
  b->map_key[h] = id;
  b->map_val[h] = c;
  b->cat_id[c] = id;
  b->cnt[c] = 0;
  b->order[c] = c;
  b->pos[c] = c;
  memset(&b->chain[c], 0, sizeof b->chain[c]);
  b->mark[c] = 0;
  *out = c;
  return 0;
}

/* Global count of c += 1, keeping order[] sorted by count (descending):
 * c swaps with the first category of its count block. */
static int pop_increment(bl_t *b, uint32_t c) {
  uint32_t k = b->cnt[c];
  if (k + 2 > b->cap_start) {
    size_t cap = b->cap_start ? b->cap_start * 2 : 64;
    while (cap < k + 2) cap *= 2;
    if (grow((void **)&b->start, sizeof *b->start, cap)) return IX_ENOMEM;
    for (size_t i = b->cap_start; i < cap; i++) b->start[i] = 0;
    b->cap_start = cap;
  }
  uint32_t q = b->start[k];
  uint32_t p = b->pos[c];
  uint32_t other = b->order[q];
  b->order[q] = c;
  b->pos[c] = q;
  b->order[p] = other;
  b->pos[other] = p;
  b->start[k]++;
  b->cnt[c] = k + 1;
  return 0;
}

static double pop_p(const bl_t *b, uint32_t c) {
  double den = (double)b->total + (double)b->n_cats + 1.0;
  return ((c == UINT32_MAX ? 0.0 : (double)b->cnt[c]) + 1.0) / den;
}

static double decay_factor(const bl_params_t *p, int64_t dt_ms, uint32_t dn) {
  double f = pow(p->gamma, (double)dn);
  if (p->half_life_s > 0 && dt_ms > 0) f *= exp2(-(double)dt_ms / 1000.0 / p->half_life_s);
  return f;
}

int bl_observe(bl_t *b, uint32_t user, const event_t *ev) {
  if (user >= b->n_users) return IX_EINVAL;
  buser_t *u = &b->users[user];
  uint32_t c;
  int rc;
  if ((rc = cat_intern(b, ev->category_id, &c)) < 0) return rc;
  /* Markov transition last -> c (all users, causal) */
  if (u->n_list > 0) {
    chain_t *ch = &b->chain[u->list[0].cat];
    uint32_t j = 0;
    while (j < ch->n && ch->s[j].next != c) j++;
    if (j == ch->n) {
      if (ch->n == ch->cap) {
        uint32_t cap = ch->cap ? ch->cap * 2 : 4;
        if (grow((void **)&ch->s, sizeof *ch->s, cap)) return IX_ENOMEM;
        ch->cap = cap;
      }
      ch->s[ch->n].next = c;
      ch->s[ch->n].count = 0;
      ch->n++;
    }
    ch->s[j].count++;
    ch->total++;
  }
  if ((rc = pop_increment(b, c)) < 0) return rc;
  b->total++;
  /* user list: move c to the front */
  uint32_t j = 0;
  while (j < u->n_list && u->list[j].cat != c) j++;
  ucat_t item;
  if (j < u->n_list) {
    item = u->list[j];
    memmove(&u->list[1], &u->list[0], j * sizeof *u->list);
  } else {
    if (u->n_list == u->cap) {
      uint32_t cap = u->cap ? u->cap * 2 : 8;
      if (grow((void **)&u->list, sizeof *u->list, cap)) return IX_ENOMEM;
      u->cap = cap;
    }
    memset(&item, 0, sizeof item);
    item.cat = c;
    item.w_n = u->n_events;
    item.w_ts = ev->ts_ms;
    memmove(&u->list[1], &u->list[0], u->n_list * sizeof *u->list);
    u->n_list++;
  }
  item.count++;
  item.w = (float)(item.w * decay_factor(&b->p, ev->ts_ms - item.w_ts, u->n_events - item.w_n) +
                   1.0);
  item.w_n = u->n_events;
  item.w_ts = ev->ts_ms;
  u->list[0] = item;
  u->n_events++;
  u->last_ts = ev->ts_ms;
  arch_state_advance(&u->prof, ev, 0, b->prof_half_life_s);
  return 0;
}

/* The explicit part e(c) over the user's list and the last category's
 * successors, and the popularity coefficient k, for the baseline's own
 * distribution (before mixing with popularity by lambda). */
typedef struct {
  const buser_t *u;
  const chain_t *ch; /* successors of the last category, or NULL */
  double rec_norm;   /* sum of beta^r over the list */
  double dec_norm;   /* sum of decayed weights */
  double k_pop;      /* coefficient of pop(c) in the baseline's own distribution */
  double mk_den;     /* T + alpha */
} own_t;

static double ucat_decayed(const bl_t *b, const buser_t *u, const ucat_t *it) {
  return it->w * decay_factor(&b->p, u->last_ts - it->w_ts, u->n_events - 1 - it->w_n);
}

static void own_prepare(const bl_t *b, const buser_t *u, own_t *o) {
  memset(o, 0, sizeof *o);
  o->u = u;
  const bl_params_t *p = &b->p;
  if (u->n_list > 0 && (p->kind == BL_MARKOV || p->kind == BL_BLEND)) o->ch = &b->chain[u->list[0].cat];
  if (p->kind == BL_RECENCY || p->kind == BL_BLEND) {
    double w = 1, s = 0;
    for (uint32_t r = 0; r < u->n_list; r++, w *= p->beta) s += w;
    o->rec_norm = s;
  }
  if (p->kind == BL_DECAY) {
    double s = 0;
    for (uint32_t r = 0; r < u->n_list; r++) s += ucat_decayed(b, u, &u->list[r]);
    o->dec_norm = s;
  }
  double T = o->ch ? o->ch->total : 0;
  o->mk_den = T + p->alpha;
  switch (p->kind) {
  case BL_POP:
    o->k_pop = 1;
    break;
  case BL_MARKOV:
    o->k_pop = o->mk_den > 0 ? p->alpha / o->mk_den : 1;
    break;
  case BL_BLEND:
    o->k_pop = p->w_markov * (o->mk_den > 0 ? p->alpha / o->mk_den : 1);
    break;
  default:
    o->k_pop = 0;
    break;
  }
  if (u->n_list == 0 && p->kind != BL_POP && p->kind != BL_MARKOV) o->k_pop = 1;
}

/* e(c) for a dense category at user-list rank r (UINT32_MAX = not in list)
 * with successor count t (0 if none). */
static double own_e(const bl_t *b, const own_t *o, uint32_t r, uint32_t t) {
  const bl_params_t *p = &b->p;
  const buser_t *u = o->u;
  double rec = 0, mk = 0;
  switch (p->kind) {
  case BL_REPEAT:
    return r == 0 ? 1.0 : 0.0;
  case BL_RECENCY:
    return r != UINT32_MAX && o->rec_norm > 0 ? pow(p->beta, r) / o->rec_norm : 0.0;
  case BL_FREQ:
    return r != UINT32_MAX && u->n_events ? (double)u->list[r].count / u->n_events : 0.0;
  case BL_DECAY:
    return r != UINT32_MAX && o->dec_norm > 0 ? ucat_decayed(b, u, &u->list[r]) / o->dec_norm : 0.0;
  case BL_POP:
    return 0.0;
  case BL_MARKOV:
    return o->mk_den > 0 ? t / o->mk_den : 0.0;
  case BL_BLEND:
    rec = r != UINT32_MAX && o->rec_norm > 0 ? pow(p->beta, r) / o->rec_norm : 0.0;
    mk = o->mk_den > 0 ? t / o->mk_den : 0.0;
    return (1.0 - p->w_markov) * rec + p->w_markov * mk;
  default:
    return 0.0;
  }
}

static uint32_t list_rank(const buser_t *u, uint32_t c) {
  for (uint32_t r = 0; r < u->n_list; r++)
    if (u->list[r].cat == c) return r;
  return UINT32_MAX;
}

static uint32_t succ_count(const chain_t *ch, uint32_t c) {
  if (!ch) return 0;
  for (uint32_t j = 0; j < ch->n; j++)
    if (ch->s[j].next == c) return ch->s[j].count;
  return 0;
}

/* Mixture probability of a dense category (UINT32_MAX = never seen). */
static double mix_p(const bl_t *b, const own_t *o, uint32_t c, double lambda) {
  double e = 0;
  if (c != UINT32_MAX) e = own_e(b, o, list_rank(o->u, c), succ_count(o->ch, c));
  return (1.0 - lambda) * (e + o->k_pop * pop_p(b, c)) + lambda * pop_p(b, c);
}

static int cand_push(bl_t *b, uint32_t c, size_t *n) {
  if (b->mark[c] == b->stamp) return 0;
  if (*n == b->cap_cand) {
    size_t cap = b->cap_cand ? b->cap_cand * 2 : 256;
    if (grow((void **)&b->cand, sizeof *b->cand, cap) ||
        grow((void **)&b->cand_e, sizeof *b->cand_e, cap))
      return IX_ENOMEM;
    b->cap_cand = cap;
  }
  b->mark[c] = b->stamp;
  b->cand[(*n)++] = c;
  return 0;
}

size_t bl_predict(bl_t *b, uint32_t user, size_t k, uint64_t *cat, float *p,
                  const uint64_t *target, bl_score_t *score) {
  if (user >= b->n_users) return 0;
  const buser_t *u = &b->users[user];
  own_t o;
  own_prepare(b, u, &o);
  size_t n = 0;
  if (++b->stamp == 0) { /* wrapped: clear marks */
    for (size_t c = 0; c < b->n_cats; c++) b->mark[c] = 0;
    b->stamp = 1;
  }
  const bl_params_t *bp = &b->p;
  int uses_list = bp->kind != BL_POP && bp->kind != BL_MARKOV;
  if (uses_list) {
    uint32_t lim = bp->kind == BL_REPEAT ? (u->n_list ? 1u : 0u) : u->n_list;
    for (uint32_t r = 0; r < lim; r++)
      if (cand_push(b, u->list[r].cat, &n) < 0) return 0;
  }
  if (o.ch)
    for (uint32_t j = 0; j < o.ch->n; j++)
      if (cand_push(b, o.ch->s[j].next, &n) < 0) return 0;
  /* the most popular categories not yet candidates */
  size_t added = 0;
  for (size_t i = 0; i < b->n_cats && added < k; i++) {
    uint32_t c = b->order[i];
    if (b->mark[c] == b->stamp) continue;
    if (cand_push(b, c, &n) < 0) return 0;
    added++;
  }
  /* score with the ranking mixture, keep the top k by insertion */
  size_t m = 0;
  double lr = bp->lambda_rank;
  for (size_t i = 0; i < n; i++) {
    uint32_t c = b->cand[i];
    float s = (float)mix_p(b, &o, c, lr);
    uint64_t id = b->cat_id[c];
    if (m == k && !(s > p[m - 1] || (s == p[m - 1] && id < cat[m - 1]))) continue;
    size_t j = m < k ? m++ : k - 1;
    while (j > 0 && (s > p[j - 1] || (s == p[j - 1] && id < cat[j - 1]))) {
      p[j] = p[j - 1];
      cat[j] = cat[j - 1];
      j--;
    }
    p[j] = (float)s;
    cat[j] = id;
  }
  if (target && score) {
    double lp = bp->lambda_prob;
    score->p_target = (float)mix_p(b, &o, cat_find(b, *target), lp);
    float pn[ARCH_P], pl[ARCH_P];
    double sum = 0;
    for (unsigned j = 0; j < u->prof.n_profile; j++) {
      pn[j] = (float)mix_p(b, &o, cat_find(b, u->prof.profile[j].cat), lp);
      sum += pn[j];
    }
    profile_plong(&u->prof, pl);
    double sh = 1.0 - sum;
    score->shift = (float)(sh < 0 ? 0 : sh > 1 ? 1 : sh);
    score->fluct = u->prof.n_profile ? profile_js(u->prof.n_profile, pn, pl) : 0.0f;
  }
  return m;
}

int bl_run(const bl_params_t *p, const eval_data_t *data, eval_row_t *row) {
  bl_t *b = NULL;
  eval_acc_t *acc = eval_acc_new();
  if (!acc) return IX_ENOMEM;
  int rc = bl_new(p, data->n_users, data->win.half_life_s, &b);
  if (rc < 0) goto out;
  uint64_t top[EVAL_TOPK];
  float tp[EVAL_TOPK];
  for (size_t i = 0; i < data->n_fed; i++) {
    const event_t *ev = &data->ev[i];
    if (data->target[i]) {
      bl_score_t sc;
      size_t m = bl_predict(b, data->user[i], EVAL_TOPK, top, tp, &ev->category_id, &sc);
      unsigned rank = 0;
      for (size_t j = 0; j < m; j++)
        if (top[j] == ev->category_id) {
          rank = (unsigned)j + 1;
          break;
        }
      if ((rc = eval_acc_add(acc, rank, sc.p_target, sc.shift, sc.fluct, data->outside[i],
                             data->hist[i])) < 0)
        goto out;
    }
    if ((rc = bl_observe(b, data->user[i], ev)) < 0) goto out;
  }
  memset(row, 0, sizeof *row);
  snprintf(row->name, sizeof row->name, "%s", bl_name(p->kind));
  bl_params_describe(p, row->params, sizeof row->params);
  eval_acc_summary(acc, row);
  rc = 0;
out:
  bl_destroy(b);
  eval_acc_destroy(acc);
  return rc;
}

/* ------------------------------------------------------------------ tuning */

static const float g_lambda_prob[] = {0.001f, 0.003f, 0.01f, 0.02f, 0.05f,
                                      0.1f,   0.2f,   0.3f,  0.5f};

int bl_tune(bl_kind_t kind, const eval_data_t *dev, bl_params_t *best, eval_row_t *dev_row) {
  static const float betas[] = {0.2f, 0.35f, 0.5f, 0.65f, 0.8f, 0.9f};
  static const float lranks[] = {0.01f, 0.1f};
  static const float gammas[] = {0.5f, 0.7f, 0.85f, 0.95f, 1.0f};
  static const float hls[] = {0.0f, 600.0f, 3600.0f, 21600.0f, 86400.0f};
  static const float alphas[] = {0.1f, 0.5f, 1.0f, 2.0f, 5.0f, 20.0f};
  static const float b_betas[] = {0.35f, 0.5f, 0.65f, 0.8f};
  static const float b_wm[] = {0.1f, 0.2f, 0.35f, 0.5f, 0.7f};
  static const float b_alphas[] = {1.0f, 5.0f};
#define N(a) (sizeof(a) / sizeof((a)[0]))
  bl_params_t grid[256];
  size_t ng = 0;
  bl_params_t p;
  bl_params_default(kind, &p);
  switch (kind) {
  case BL_RECENCY:
    for (size_t i = 0; i < N(betas); i++)
      for (size_t j = 0; j < N(lranks); j++) {
        p.beta = betas[i];
        p.lambda_rank = lranks[j];
        grid[ng++] = p;
      }
    break;
  case BL_FREQ:
    for (size_t j = 0; j < N(lranks); j++) {
      p.lambda_rank = lranks[j];
      grid[ng++] = p;
    }
    break;
  case BL_DECAY:
    for (size_t i = 0; i < N(gammas); i++)
      for (size_t j = 0; j < N(hls); j++) {
        p.gamma = gammas[i];
        p.half_life_s = hls[j];
        grid[ng++] = p;
      }
    break;
  case BL_MARKOV:
    for (size_t i = 0; i < N(alphas); i++)
      for (size_t j = 0; j < N(lranks); j++) {
        p.alpha = alphas[i];
        p.lambda_rank = lranks[j];
        grid[ng++] = p;
      }
    break;
  case BL_BLEND:
    for (size_t i = 0; i < N(b_betas); i++)
      for (size_t j = 0; j < N(b_wm); j++)
        for (size_t a = 0; a < N(b_alphas); a++) {
          p.beta = b_betas[i];
          p.w_markov = b_wm[j];
          p.alpha = b_alphas[a];
          grid[ng++] = p;
        }
    break;
  default:
    grid[ng++] = p;
    break;
  }
  eval_row_t row, best_row;
  int rc;
  size_t bi = 0;
  for (size_t g = 0; g < ng; g++) {
    if ((rc = bl_run(&grid[g], dev, &row)) < 0) return rc;
    if (g == 0 || row.mrr10 > best_row.mrr10) {
      best_row = row;
      bi = g;
    }
  }
  *best = grid[bi];
  if (kind != BL_POP) { /* lambda_prob only changes p, shift and fluctuation */
    double best_nll = INFINITY;
    float best_l = best->lambda_prob;
    for (size_t l = 0; l < N(g_lambda_prob); l++) {
      p = *best;
      p.lambda_prob = g_lambda_prob[l];
      if ((rc = bl_run(&p, dev, &row)) < 0) return rc;
      if (row.nll < best_nll) {
        best_nll = row.nll;
        best_l = p.lambda_prob;
        best_row = row;
      }
    }
    best->lambda_prob = best_l;
  }
#undef N
  if (dev_row) *dev_row = best_row;
  return 0;
}
