/* Metrics for next-category prediction and the LSTM's evaluation run through
 * the serving path (model_step_batch + model_prob), so what is scored here is
 * exactly what the daemon serves. */
#include "model/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hash.h"
#include "model/profile.h"

/* ------------------------------------------------------------ accumulator */

struct eval_acc {
  uint64_t n, hit1, hit5, hit10, n_outside;
  double rr, nll;
  size_t cap;
  float *shift, *fluct;
  uint8_t *label;
  uint64_t b_n[EVAL_N_BUCKETS], b_hit5[EVAL_N_BUCKETS];
  double b_rr[EVAL_N_BUCKETS];
};

eval_acc_t *eval_acc_new(void) { return calloc(1, sizeof(eval_acc_t)); }

void eval_acc_destroy(eval_acc_t *acc) {
  if (!acc) return;
  free(acc->shift);
  free(acc->fluct);
  free(acc->label);
  free(acc);
}

static const uint32_t g_bucket_lo[EVAL_N_BUCKETS] = {1, 2, 5, 10, 20, 50, 100, 200};

unsigned eval_bucket(uint32_t hist) {
  unsigned b = 0;
  while (b + 1 < EVAL_N_BUCKETS && hist >= g_bucket_lo[b + 1]) b++;
  return b;
}

uint32_t eval_bucket_lo(unsigned bucket) {
  return bucket < EVAL_N_BUCKETS ? g_bucket_lo[bucket] : 0;
}

int eval_acc_add(eval_acc_t *acc, unsigned rank, double p, float shift, float fluct,
                 int outside, uint32_t hist) {
  if (acc->n == acc->cap) {
    size_t cap = acc->cap ? acc->cap * 2 : 1024;
    float *s = realloc(acc->shift, cap * sizeof *s);
    if (!s) return IX_ENOMEM;
    acc->shift = s;
    float *f = realloc(acc->fluct, cap * sizeof *f);
    if (!f) return IX_ENOMEM;
    acc->fluct = f;
    uint8_t *l = realloc(acc->label, cap);
    if (!l) return IX_ENOMEM;
    acc->label = l;
    acc->cap = cap;
  }
  acc->shift[acc->n] = shift;
  acc->fluct[acc->n] = fluct;
  acc->label[acc->n] = outside ? 1 : 0;
  acc->n++;
  acc->n_outside += outside ? 1 : 0;
  if (rank == 1) acc->hit1++;
  if (rank >= 1 && rank <= 5) acc->hit5++;
  if (rank >= 1 && rank <= EVAL_TOPK) {
    acc->hit10++;
    acc->rr += 1.0 / rank;
  }
  if (!(p >= EVAL_P_FLOOR)) p = EVAL_P_FLOOR; /* also catches NaN */
  if (p > 1.0) p = 1.0;
  acc->nll -= log(p);
  unsigned b = eval_bucket(hist);
  acc->b_n[b]++;
  if (rank >= 1 && rank <= 5) acc->b_hit5[b]++;
  if (rank >= 1 && rank <= EVAL_TOPK) acc->b_rr[b] += 1.0 / rank;
  return 0;
}

typedef struct {
  float s;
  uint8_t l;
} scored_t;

static int cmp_scored(const void *a, const void *b) {
  float x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
  return (x > y) - (x < y);
}

double eval_auc(size_t n, const float *score, const uint8_t *label) {
  scored_t *v = malloc((n ? n : 1) * sizeof *v);
  if (!v) return NAN;
  uint64_t npos = 0;
  for (size_t i = 0; i < n; i++) {
    float s = score[i];
    v[i].s = isnan(s) ? -INFINITY : s;
    v[i].l = label[i] ? 1 : 0;
    npos += v[i].l;
  }
  uint64_t nneg = n - npos;
  if (npos == 0 || nneg == 0) {
    free(v);
    return NAN;
  }
  qsort(v, n, sizeof *v, cmp_scored);
  /* Sum of the positives' (1-based, tie-averaged) ranks. */
  double rank_sum = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    uint64_t pos = 0;
    while (j < n && v[j].s == v[i].s) pos += v[j++].l;
    double avg = (double)(i + 1 + j) / 2.0; /* mean of ranks i+1 .. j */
    rank_sum += avg * (double)pos;
    i = j;
  }
  free(v);
  return (rank_sum - (double)npos * (double)(npos + 1) / 2.0) / ((double)npos * (double)nneg);
}

void eval_acc_summary(const eval_acc_t *acc, eval_row_t *row) {
  double n = acc->n ? (double)acc->n : 1.0;
  row->n_targets = acc->n;
  row->n_outside = acc->n_outside;
  row->acc1 = (double)acc->hit1 / n;
  row->rec5 = (double)acc->hit5 / n;
  row->rec10 = (double)acc->hit10 / n;
  row->mrr10 = acc->rr / n;
  row->nll = acc->nll / n;
  row->auc_shift = eval_auc(acc->n, acc->shift, acc->label);
  row->auc_fluct = eval_auc(acc->n, acc->fluct, acc->label);
  for (unsigned b = 0; b < EVAL_N_BUCKETS; b++) {
    row->b_n[b] = acc->b_n[b];
    double d = acc->b_n[b] ? (double)acc->b_n[b] : 1.0;
    row->b_mrr10[b] = acc->b_rr[b] / d;
    row->b_rec5[b] = (double)acc->b_hit5[b] / d;
  }
}

/* ------------------------------------------------------------------- data */

typedef struct {
  event_t ev;
  size_t pos;
} ordered_t;

static int cmp_ordered(const void *a, const void *b) {
  const ordered_t *x = a, *y = b;
  if (x->ev.ts_ms != y->ev.ts_ms) return x->ev.ts_ms < y->ev.ts_ms ? -1 : 1;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

int eval_sort_events(event_t *events, size_t n) {
  if (n < 2) return 0;
  ordered_t *o = malloc(n * sizeof *o);
  if (!o) return IX_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    o[i].ev = events[i];
    o[i].pos = i;
  }
  qsort(o, n, sizeof *o, cmp_ordered);
  for (size_t i = 0; i < n; i++) events[i] = o[i].ev;
  free(o);
  return 0;
}

int eval_user_held_out(uint64_t user_id, uint32_t pct, uint64_t seed) {
  return ix_fmix64(user_id ^ ix_fmix64(seed + 1)) % 100u < pct;
}

/* Open-addressing map user id -> dense index. */
typedef struct {
  uint64_t *key;
  uint32_t *val;
  size_t mask;
} umap_t;

void eval_data_free(eval_data_t *data) {
  if (!data) return;
  free(data->ev);
  free(data->user);
  free(data->hist);
  free(data->target);
  free(data->outside);
  memset(data, 0, sizeof *data);
}

int eval_data_build(const event_t *events, size_t n, const eval_window_t *win,
                    eval_data_t *data) {
  memset(data, 0, sizeof *data);
  if (!events || n == 0 || !win || !(win->half_life_s > 0)) return IX_EINVAL;
  if (win->users != EVAL_USERS_ALL && (win->holdout_pct == 0 || win->holdout_pct >= 100))
    return IX_EINVAL;
  int rc = IX_ENOMEM;
  umap_t map = {0};
  uint32_t *count = NULL;
  arch_state_t *prof = NULL;
  data->win = *win;
  data->n = n;
  data->ev = malloc(n * sizeof *data->ev);
  data->user = malloc(n * sizeof *data->user);
  data->hist = malloc(n * sizeof *data->hist);
  data->target = calloc(n, 1);
  data->outside = calloc(n, 1);
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  map.key = malloc(cap * sizeof *map.key);
  map.val = malloc(cap * sizeof *map.val);
  map.mask = cap - 1;
  if (!data->ev || !data->user || !data->hist || !data->target || !data->outside || !map.key ||
      !map.val)
    goto err;
  memset(map.val, 0xff, cap * sizeof *map.val);
  memcpy(data->ev, events, n * sizeof *events);
  if ((rc = eval_sort_events(data->ev, n)) < 0) goto err;
  uint32_t n_users = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t id = data->ev[i].user_id;
    size_t h = ix_fmix64(id) & map.mask;
    while (map.val[h] != UINT32_MAX && map.key[h] != id) h = (h + 1) & map.mask;
    if (map.val[h] == UINT32_MAX) {
      map.key[h] = id;
      map.val[h] = n_users++;
    }
    data->user[i] = map.val[h];
  }
  data->n_users = n_users;
  rc = IX_ENOMEM;
  count = calloc(n_users, sizeof *count);
  prof = calloc(n_users, sizeof *prof);
  if (!count || !prof) goto err;
  data->n_fed = n;
  for (size_t i = 0; i < n; i++) {
    const event_t *ev = &data->ev[i];
    if (ev->ts_ms >= win->end_ms) {
      data->n_fed = i;
      break;
    }
    uint32_t u = data->user[i];
    data->hist[i] = count[u];
    int eligible = win->users == EVAL_USERS_ALL ||
                   (win->users == EVAL_USERS_HELD_OUT) ==
                       !!eval_user_held_out(ev->user_id, win->holdout_pct, win->holdout_seed);
    if (count[u] > 0 && ev->ts_ms >= win->start_ms && eligible) {
      data->target[i] = 1;
      data->n_targets++;
      const arch_state_t *s = &prof[u];
      int in = 0;
      for (unsigned j = 0; j < s->n_profile; j++)
        if (s->profile[j].cat == ev->category_id) in = 1;
      data->outside[i] = (uint8_t)!in;
    }
    arch_state_advance(&prof[u], ev, 0, win->half_life_s);
    count[u]++;
  }
  for (size_t i = data->n_fed; i < n; i++) data->hist[i] = 0;
  rc = 0;
err:
  free(map.key);
  free(map.val);
  free(count);
  free(prof);
  if (rc < 0) eval_data_free(data);
  return rc;
}

/* ------------------------------------------------------------ LSTM run */

typedef struct {
  uint64_t next[EVAL_TOPK];
  uint32_t n_next, n_fall;
  float shift, fluct;
  uint64_t fall[PRED_TOPK];
  float fall_d[PRED_TOPK]; /* p_long - p_next */
} stored_pred_t;

static const double g_fall_hi[EVAL_FALL_BINS] = {0.02, 0.05, 0.1, 0.2, 1.0};
double eval_fall_bin_hi(unsigned b) { return b < EVAL_FALL_BINS ? g_fall_hi[b] : 1.0; }

/* The falling pairs of one target: p_long from the state the prediction was
 * made from (the same state: scored before this event's step). */
static void fall_add(eval_row_t *row, const stored_pred_t *p, const void *state, uint64_t cat) {
  const arch_state_t *s = state;
  float plong[ARCH_P];
  profile_plong(s, plong);
  unsigned np = s->n_profile <= ARCH_P ? s->n_profile : ARCH_P;
  for (uint32_t i = 0; i < p->n_fall; i++) {
    double pl = -1;
    for (unsigned j = 0; j < np; j++)
      if (s->profile[j].cat == p->fall[i]) pl = plong[j];
    if (pl < 0) continue; /* cannot happen: falling categories are profile categories */
    double pn = pl - p->fall_d[i];
    unsigned b = 0;
    while (b + 1 < EVAL_FALL_BINS && pn >= g_fall_hi[b]) b++;
    int hit = p->fall[i] == cat;
    for (unsigned t = 0; t < 2; t++) {
      unsigned k = t ? EVAL_FALL_BINS : b;
      row->fall_n[k]++;
      row->fall_plong[k] += pl;
      row->fall_pnext[k] += pn;
      row->fall_hit[k] += (uint64_t)hit;
    }
  }
}

void eval_print_falling(FILE *out, const eval_row_t *row, int markdown) {
  if (row->fall_n[EVAL_FALL_BINS] == 0) return;
  fprintf(out,
          "%sfalling side (%s): pairs (target, category of the previous prediction's falling "
          "list) by predicted p_next\n%s",
          markdown ? "\n" : "", row->name,
          markdown ? "\n| p_next bin | pairs | mean p_long | mean p_next | observed next |\n"
                     "|---|---:|---:|---:|---:|\n"
                   : "");
  for (unsigned b = 0; b <= EVAL_FALL_BINS; b++) {
    if (!row->fall_n[b]) continue;
    char bin[32];
    if (b == EVAL_FALL_BINS) snprintf(bin, sizeof bin, "all");
    else snprintf(bin, sizeof bin, "[%.2f, %.2f)", b ? g_fall_hi[b - 1] : 0.0, g_fall_hi[b]);
    double n = (double)row->fall_n[b];
    fprintf(out,
            markdown ? "| %s | %llu | %.4f | %.4f | %.4f |\n"
                     : "  %-13s pairs %7llu  p_long %.4f  p_next %.4f  observed %.4f\n",
            bin, (unsigned long long)row->fall_n[b], row->fall_plong[b] / n, row->fall_pnext[b] / n,
            (double)row->fall_hit[b] / n);
  }
}

int eval_run_model(model_t *m, const eval_data_t *data, size_t wave, eval_row_t *row) {
  if (!m || !data || !row || wave == 0) return IX_EINVAL;
  memset(row, 0, sizeof *row);
  int rc = IX_ENOMEM;
  size_t ssz = model_state_size(m);
  uint32_t nu = data->n_users;
  unsigned char *states = malloc((size_t)nu * ssz);
  stored_pred_t *sp = calloc(nu, sizeof *sp);
  uint32_t *stamp = calloc(nu, sizeof *stamp);
  void **wstates = malloc(wave * sizeof *wstates);
  event_t *wev = malloc(wave * sizeof *wev);
  size_t *widx = malloc(wave * sizeof *widx);
  prediction_t *preds = malloc(wave * sizeof *preds);
  eval_acc_t *acc = eval_acc_new();
  if (!states || !sp || !stamp || !wstates || !wev || !widx || !preds || !acc) goto out;
  for (uint32_t u = 0; u < nu; u++) model_state_init(m, states + (size_t)u * ssz);
  uint32_t wave_id = 1;
  size_t nw = 0;
  for (size_t i = 0; i <= data->n_fed; i++) {
    int flush = (i == data->n_fed) || nw == wave || stamp[data->user[i]] == wave_id;
    if (flush && nw > 0) {
      /* Score the targets with the predictions made after each user's
       * previous event (the states still hold the state before this wave). */
      for (size_t w = 0; w < nw; w++) {
        size_t e = widx[w];
        if (!data->target[e]) continue;
        const stored_pred_t *p = &sp[data->user[e]];
        uint64_t cat = data->ev[e].category_id;
        unsigned rank = 0;
        for (uint32_t k = 0; k < p->n_next; k++)
          if (p->next[k] == cat) {
            rank = k + 1;
            break;
          }
        float prob = model_prob(m, wstates[w], cat);
        fall_add(row, p, wstates[w], cat);
        if ((rc = eval_acc_add(acc, rank, prob, p->shift, p->fluct, data->outside[e],
                               data->hist[e])) < 0)
          goto out;
      }
      if ((rc = model_step_batch(m, wstates, wev, nw, preds)) < 0) goto out;
      for (size_t w = 0; w < nw; w++) {
        stored_pred_t *p = &sp[data->user[widx[w]]];
        p->n_next = 0;
        for (uint32_t k = 0; k < preds[w].n_next && p->n_next < EVAL_TOPK; k++)
          if (preds[w].next[k].category_id != 0) p->next[p->n_next++] = preds[w].next[k].category_id;
        p->shift = preds[w].shift_prob;
        p->fluct = preds[w].fluctuation;
        p->n_fall = preds[w].n_falling;
        for (uint32_t k = 0; k < p->n_fall; k++) {
          p->fall[k] = preds[w].falling[k].category_id;
          p->fall_d[k] = preds[w].falling[k].p;
        }
      }
      nw = 0;
      wave_id++;
    }
    if (i == data->n_fed) break;
    uint32_t u = data->user[i];
    stamp[u] = wave_id;
    wstates[nw] = states + (size_t)u * ssz;
    wev[nw] = data->ev[i];
    widx[nw] = i;
    nw++;
  }
  snprintf(row->name, sizeof row->name, "lstm");
  snprintf(row->params, sizeof row->params, "%s", model_describe(m));
  eval_acc_summary(acc, row);
  rc = 0;
out:
  free(states);
  free(sp);
  free(stamp);
  free(wstates);
  free(wev);
  free(widx);
  free(preds);
  eval_acc_destroy(acc);
  return rc;
}

/* ------------------------------------------------------------------ output */

static void fmt_auc(char *buf, size_t n, double v) {
  if (isnan(v))
    snprintf(buf, n, "n/a");
  else
    snprintf(buf, n, "%.4f", v);
}

void eval_print_table(FILE *out, const eval_row_t *rows, size_t n, int markdown) {
  static const char *hdr[] = {"model", "targets", "Acc@1", "Recall@5", "Recall@10",
                              "MRR@10", "NLL", "AUC shift", "AUC fluct", "tuned on dev"};
  if (markdown) {
    fprintf(out, "|");
    for (size_t c = 0; c < sizeof hdr / sizeof hdr[0]; c++) fprintf(out, " %s |", hdr[c]);
    fprintf(out, "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  } else {
    fprintf(out, "%-14s %8s %7s %8s %9s %7s %7s %9s %9s  %s\n", hdr[0], hdr[1], hdr[2], hdr[3],
            hdr[4], hdr[5], hdr[6], hdr[7], hdr[8], hdr[9]);
  }
  for (size_t r = 0; r < n; r++) {
    const eval_row_t *w = &rows[r];
    char as[16], af[16];
    fmt_auc(as, sizeof as, w->auc_shift);
    fmt_auc(af, sizeof af, w->auc_fluct);
    if (markdown)
      fprintf(out, "| %s | %llu | %.4f | %.4f | %.4f | %.4f | %.4f | %s | %s | %s |\n", w->name,
              (unsigned long long)w->n_targets, w->acc1, w->rec5, w->rec10, w->mrr10, w->nll, as,
              af, w->params);
    else
      fprintf(out, "%-14s %8llu %7.4f %8.4f %9.4f %7.4f %7.4f %9s %9s  %s\n", w->name,
              (unsigned long long)w->n_targets, w->acc1, w->rec5, w->rec10, w->mrr10, w->nll, as,
              af, w->params);
  }
  if (n > 0) {
    const eval_row_t *w = &rows[0];
    fprintf(out, "%s%llu targets, %llu (%.1f%%) outside the long-term profile (the AUC label)\n",
            markdown ? "\n" : "", (unsigned long long)w->n_targets,
            (unsigned long long)w->n_outside,
            w->n_targets ? 100.0 * (double)w->n_outside / (double)w->n_targets : 0.0);
  }
}

void eval_print_buckets(FILE *out, const eval_row_t *rows, size_t n) {
  fprintf(out, "# hist_lo");
  for (size_t r = 0; r < n; r++) fprintf(out, "\tn_%s\tmrr10_%s\trec5_%s", rows[r].name, rows[r].name, rows[r].name);
  fprintf(out, "\n");
  for (unsigned b = 0; b < EVAL_N_BUCKETS; b++) {
    fprintf(out, "%u", eval_bucket_lo(b));
    for (size_t r = 0; r < n; r++)
      fprintf(out, "\t%llu\t%.5f\t%.5f", (unsigned long long)rows[r].b_n[b], rows[r].b_mrr10[b],
              rows[r].b_rec5[b]);
    fprintf(out, "\n");
  }
}
