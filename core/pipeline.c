/* Decode, group into waves, step the model, apply the emission policy. */
#include "core/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/hash.h"
#include "stream/codec.h"

/* The emission policy's memory per user, stored after the model's state. */
typedef struct {
  int64_t last_emit_ts_ms; /* event time of the last emitted prediction */
  float last_fluct;
  uint32_t emitted;        /* 0 = nothing emitted yet for this user */
  uint32_t n_top;          /* how many of top[] EMIT_CHANGE compares */
  uint64_t top[PRED_TOPK]; /* next[] category ids of the last emitted prediction */
  uint32_t n_all;          /* how many of top[] are filled (live quality ranks) */
  int64_t last_offset1;    /* input offset + 1 of the user's last applied event; 0 = unknown
                            * (not the changelog's offset: state/changelog.h, changelog_dirty) */
  int64_t last_event_ts_ms;/* that event's time */
} emit_memo_t;
_Static_assert(sizeof(emit_memo_t) <= PIPELINE_TRAILER_SIZE, "trailer too small");

/* Per-batch slot of a (partition, user) pair, for wave assignment. */
typedef struct {
  uint64_t user;
  int32_t partition;
  uint32_t count; /* events of this user seen so far in the batch; 0 = empty slot */
} slot_t;

struct pipeline {
  pipeline_skip_fn skip;
  pipeline_applied_fn applied;
  void *hook_ctx;
  model_t *model;
  store_t *store;
  store_opts_t store_opts;
  emit_opts_t emit;
  size_t state_size;
  /* per-batch scratch, grown to the largest batch */
  size_t cap;
  event_t *events;        /* decoded, by input index */
  int *ok;                /* 1 = decoded */
  uint32_t *wave_of;      /* wave of input i */
  size_t *order;          /* input indices sorted by (wave, index) */
  size_t *wave_start;     /* n_waves + 1 */
  slot_t *slots;
  size_t n_slots;
  void **states;
  void **blob_of;         /* store blob of input i */
  uint32_t *slot_of;      /* slots[] index of input i's (partition, user) */
  const void **heads;     /* state each head row reads, by position in order[] */
  char *snap;             /* copies of states that a later wave changes */
  size_t snap_bytes;
  event_t *wave_events;
  prediction_t *wave_preds;
  prediction_t *preds;    /* output, compacted */
  size_t *pred_src;
  size_t *emitted;        /* 1 + position in wave_preds of input i's emitted prediction; 0 = none */
  pipeline_reject_t *rejects;
  const input_t *input;   /* borrowed; NULL = msgpack */
  uint8_t *hrank;         /* 2 per input: heuristic ranks before the event (0 = miss) */
  pipeline_quality_t quality[PIPELINE_Q_N];
};

const char *pipeline_quality_name(unsigned q) {
  static const char *const names[PIPELINE_Q_N] = {"lstm", "recency", "decay"};
  return q < PIPELINE_Q_N ? names[q] : "?";
}

const pipeline_quality_t *pipeline_quality(const pipeline_t *p, unsigned q) {
  return q < PIPELINE_Q_N ? &p->quality[q] : NULL;
}

void pipeline_quality_reset(pipeline_t *p) { memset(p->quality, 0, sizeof p->quality); }

static void quality_add(pipeline_quality_t *q, unsigned rank) {
  q->targets++;
  q->hit1 += rank == 1;
  q->hit5 += rank >= 1 && rank <= 5;
  q->hit10 += rank >= 1 && rank <= 10;
  if (rank >= 1 && rank <= 10) q->rr_sum += 1.0 / rank;
}

static size_t pipeline_blob_size(const model_t *m) {
  return model_state_size(m) + PIPELINE_TRAILER_SIZE;
}

int pipeline_new(model_t *model, const store_opts_t *store_opts, const emit_opts_t *emit,
                 pipeline_t **out) {
  *out = NULL;
  pipeline_t *p = calloc(1, sizeof *p);
  if (!p) return IX_ENOMEM;
  p->model = model;
  p->state_size = model_state_size(model);
  p->store_opts = *store_opts;
  p->store_opts.blob_size = pipeline_blob_size(model);
  p->emit = *emit;
  int rc = store_new(&p->store_opts, &p->store);
  if (rc) {
    free(p);
    return rc;
  }
  *out = p;
  return 0;
}

static void free_scratch(pipeline_t *p) {
  free(p->events);
  free(p->ok);
  free(p->wave_of);
  free(p->order);
  free(p->wave_start);
  free(p->slots);
  free(p->states);
  free(p->blob_of);
  free(p->slot_of);
  free(p->heads);
  free(p->wave_events);
  free(p->wave_preds);
  free(p->preds);
  free(p->pred_src);
  free(p->emitted);
  free(p->rejects);
  free(p->hrank);
}

void pipeline_destroy(pipeline_t *p) {
  if (!p) return;
  store_destroy(p->store);
  free_scratch(p);
  free(p->snap);
  free(p);
}

static int grow(pipeline_t *p, size_t n) {
  if (n <= p->cap) return 0;
  size_t cap = p->cap ? p->cap : 64;
  while (cap < n) cap *= 2;
  size_t n_slots = 1;
  while (n_slots < 2 * cap) n_slots <<= 1;
  free_scratch(p);
  p->cap = 0;
  p->events = malloc(cap * sizeof *p->events);
  p->ok = malloc(cap * sizeof *p->ok);
  p->wave_of = malloc(cap * sizeof *p->wave_of);
  p->order = malloc(cap * sizeof *p->order);
  p->wave_start = malloc((cap + 2) * sizeof *p->wave_start);
  p->slots = malloc(n_slots * sizeof *p->slots);
  p->states = malloc(cap * sizeof *p->states);
  p->blob_of = malloc(cap * sizeof *p->blob_of);
  p->slot_of = malloc(cap * sizeof *p->slot_of);
  p->heads = malloc(cap * sizeof *p->heads);
  p->wave_events = malloc(cap * sizeof *p->wave_events);
  p->wave_preds = malloc(cap * sizeof *p->wave_preds);
  p->preds = malloc(cap * sizeof *p->preds);
  p->pred_src = malloc(cap * sizeof *p->pred_src);
  p->emitted = malloc(cap * sizeof *p->emitted);
  p->rejects = malloc(cap * sizeof *p->rejects);
  p->hrank = malloc(2 * cap);
  if (!p->hrank ||
      !p->events || !p->ok || !p->wave_of || !p->order || !p->wave_start || !p->slots ||
      !p->states || !p->blob_of || !p->slot_of || !p->heads || !p->wave_events || !p->wave_preds || !p->preds || !p->pred_src ||
      !p->emitted || !p->rejects) {
    free_scratch(p);
    p->events = NULL; /* free_scratch on destroy must not double free */
    p->ok = NULL;
    p->wave_of = NULL;
    p->order = NULL;
    p->wave_start = NULL;
    p->slots = NULL;
    p->states = NULL;
    p->blob_of = NULL;
    p->slot_of = NULL;
    p->heads = NULL;
    p->wave_events = NULL;
    p->wave_preds = NULL;
    p->preds = NULL;
    p->pred_src = NULL;
    p->emitted = NULL;
    p->rejects = NULL;
    p->hrank = NULL;
    return IX_ENOMEM;
  }
  p->n_slots = n_slots;
  p->cap = cap;
  return 0;
}

/* Occurrence number (0-based) of (partition, user) so far in this batch;
 * *slot: its slots[] index (the final count there is the user's total). */
static uint32_t occurrence(pipeline_t *p, int32_t partition, uint64_t user, uint32_t *slot) {
  size_t mask = p->n_slots - 1;
  size_t i = (size_t)ix_fmix64(user ^ ((uint64_t)(uint32_t)partition << 40)) & mask;
  for (;;) {
    slot_t *s = &p->slots[i];
    *slot = (uint32_t)i;
    if (s->count == 0) {
      s->user = user;
      s->partition = partition;
      s->count = 1;
      return 0;
    }
    if (s->user == user && s->partition == partition) return s->count++;
    i = (i + 1) & mask;
  }
}

/* Decides whether the prediction for ev goes out, updating the memo. */
static int should_emit(const emit_opts_t *emit, emit_memo_t *memo, const event_t *ev,
                       const prediction_t *pred) {
  int first = memo->emitted == 0;
  int out = 1;
  switch (emit->policy) {
  case EMIT_EVERY: break;
  case EMIT_INTERVAL:
    out = first || ev->ts_ms - memo->last_emit_ts_ms >= (int64_t)emit->interval_ms;
    break;
  case EMIT_CHANGE: {
    uint32_t n = pred->n_next < emit->top_n_change ? pred->n_next : emit->top_n_change;
    out = first || n != memo->n_top ||
          fabsf(pred->fluctuation - memo->last_fluct) >= emit->fluctuation_threshold;
    for (uint32_t k = 0; !out && k < n; k++) out = pred->next[k].category_id != memo->top[k];
    break;
  }
  }
  if (!out) return 0;
  uint32_t n = pred->n_next < emit->top_n_change ? pred->n_next : emit->top_n_change;
  memo->emitted = 1;
  memo->last_emit_ts_ms = ev->ts_ms;
  memo->last_fluct = pred->fluctuation;
  memo->n_top = n;
  memset(memo->top, 0, sizeof memo->top);
  memo->n_all = pred->n_next < PRED_TOPK ? pred->n_next : PRED_TOPK;
  for (uint32_t k = 0; k < memo->n_all; k++) memo->top[k] = pred->next[k].category_id;
  return 1;
}

void pipeline_set_input(pipeline_t *p, const input_t *input) { p->input = input; }

void pipeline_set_hooks(pipeline_t *p, pipeline_skip_fn skip, pipeline_applied_fn applied,
                        void *ctx) {
  p->skip = skip;
  p->applied = applied;
  p->hook_ctx = ctx;
}

int pipeline_process(pipeline_t *p, const rec_t *msgs, size_t n, int64_t now_ms,
                     pipeline_result_t *res) {
  memset(res, 0, sizeof *res);
  if (n == 0) return 0;
  int rc = grow(p, n);
  if (rc) return rc;
  memset(p->slots, 0, p->n_slots * sizeof *p->slots);
  store_stats_t ss0;
  store_get_stats(p->store, &ss0); /* evictions: store_get() makes room at capacity too */

  /* 1. decode and assign waves */
  size_t n_waves = 0, n_rejects = 0, n_skipped = 0;
  for (size_t i = 0; i < n; i++) {
    pipeline_reject_t *rj = &p->rejects[n_rejects];
    int err = input_decode(p->input, &msgs[i], &p->events[i], rj->reason, sizeof rj->reason);
    p->emitted[i] = 0;
    if (err) {
      p->ok[i] = 0;
      rj->src = i;
      rj->err = err;
      n_rejects++;
      continue;
    }
    if (p->skip &&
        p->skip(p->hook_ctx, msgs[i].partition, p->events[i].user_id, msgs[i].offset)) {
      p->ok[i] = 0;
      n_skipped++;
      continue;
    }
    p->ok[i] = 1;
    uint32_t w = occurrence(p, msgs[i].partition, p->events[i].user_id, &p->slot_of[i]);
    p->wave_of[i] = w;
    if (w + 1 > n_waves) n_waves = w + 1;
  }
  /* 2. counting sort of the good events by wave, stable in input order */
  memset(p->wave_start, 0, (n_waves + 1) * sizeof *p->wave_start);
  for (size_t i = 0; i < n; i++)
    if (p->ok[i]) p->wave_start[p->wave_of[i] + 1]++;
  for (size_t w = 0; w < n_waves; w++) p->wave_start[w + 1] += p->wave_start[w];
  for (size_t i = 0; i < n; i++)
    if (p->ok[i]) p->order[p->wave_start[p->wave_of[i]]++] = i;
  for (size_t w = n_waves; w > 0; w--) p->wave_start[w] = p->wave_start[w - 1];
  p->wave_start[0] = 0;

  /* 3. one batched LSTM step per wave (a user's events stay in order), then
   * the head once over the whole batch: waves are small (a user with many
   * events in the batch makes many waves), the head's GEMM wants many rows.
   * A state that a later wave changes is copied for its head row. */
  size_t n_good = p->wave_start[n_waves];
  if (p->snap_bytes < n_good * p->state_size) {
    size_t want = p->cap * p->state_size;
    char *snap = realloc(p->snap, want);
    if (!snap) return IX_ENOMEM;
    p->snap = snap;
    p->snap_bytes = want;
  }
  size_t n_processed = 0, n_new = 0, n_suppressed = 0;
  uint64_t step_ns = 0;
  for (size_t w = 0; w < n_waves; w++) {
    size_t lo = p->wave_start[w], hi = p->wave_start[w + 1], k = hi - lo;
    for (size_t j = 0; j < k; j++) {
      size_t i = p->order[lo + j];
      int created = 0;
      void *blob = store_get(p->store, msgs[i].partition, p->events[i].user_id, now_ms, 1,
                             &created);
      if (!blob) return IX_ENOMEM;
      if (created) {
        model_state_init(p->model, blob);
        memset((char *)blob + p->state_size, 0, PIPELINE_TRAILER_SIZE);
        n_new++;
      }
      p->states[j] = blob;
      p->blob_of[i] = blob;
      p->wave_events[j] = p->events[i];
      /* the heuristics' ranks from the state before the event */
      p->hrank[2 * i] = (uint8_t)model_heuristic_rank(p->model, blob, MODEL_H_RECENCY,
                                                      p->events[i].category_id, PRED_TOPK);
      p->hrank[2 * i + 1] = (uint8_t)model_heuristic_rank(p->model, blob, MODEL_H_DECAY,
                                                          p->events[i].category_id, PRED_TOPK);
    }
    uint64_t t0 = ix_mono_ns();
    rc = model_step_batch(p->model, p->states, p->wave_events, k, NULL);
    step_ns += ix_mono_ns() - t0;
    if (rc) return rc;
    for (size_t j = 0; j < k; j++) {
      size_t i = p->order[lo + j];
      if (p->wave_of[i] + 1 == p->slots[p->slot_of[i]].count) {
        p->heads[lo + j] = p->states[j]; /* the user's last event here: state final */
      } else {
        char *copy = p->snap + (lo + j) * p->state_size;
        memcpy(copy, p->states[j], p->state_size);
        p->heads[lo + j] = copy;
      }
    }
  }
  uint64_t t0 = ix_mono_ns();
  rc = model_predict_batch(p->model, p->heads, n_good, p->wave_preds);
  step_ns += ix_mono_ns() - t0;
  if (rc) return rc;
  /* emission, per user in event order (wave order) */
  for (size_t pos = 0; pos < n_good; pos++) {
    size_t i = p->order[pos];
    prediction_t *pred = &p->wave_preds[pos];
    emit_memo_t *memo = (emit_memo_t *)((char *)p->blob_of[i] + p->state_size);
    n_processed++;
    if (p->applied) p->applied(p->hook_ctx, msgs[i].partition, p->events[i].user_id, msgs[i].offset);
    memo->last_offset1 = msgs[i].offset + 1;
    memo->last_event_ts_ms = p->events[i].ts_ms;
    if (memo->emitted) {
      /* the event against the user's last emitted prediction and the heuristics */
      unsigned rank = 0;
      uint32_t na = memo->n_all <= PRED_TOPK ? memo->n_all : PRED_TOPK;
      for (uint32_t k = 0; k < na && !rank; k++)
        if (memo->top[k] == p->events[i].category_id) rank = k + 1;
      quality_add(&p->quality[PIPELINE_Q_MODEL], rank);
      quality_add(&p->quality[PIPELINE_Q_RECENCY], p->hrank[2 * i]);
      quality_add(&p->quality[PIPELINE_Q_DECAY], p->hrank[2 * i + 1]);
    }
    if (!should_emit(&p->emit, memo, &p->events[i], pred)) {
      n_suppressed++;
      continue;
    }
    pred->user_id = p->events[i].user_id;
    pred->src_partition = msgs[i].partition;
    pred->src_offset = msgs[i].offset;
    pred->event_ts_ms = p->events[i].ts_ms;
    pred->emit_ts_ms = now_ms;
    p->emitted[i] = pos + 1; /* copied once, in input order, below */
  }
  /* 4. predictions in input order */
  size_t n_preds = 0;
  for (size_t i = 0; i < n; i++) {
    if (!p->emitted[i]) continue;
    p->preds[n_preds] = p->wave_preds[p->emitted[i] - 1];
    p->pred_src[n_preds++] = i;
  }
  res->preds = p->preds;
  res->pred_src = p->pred_src;
  res->n_preds = n_preds;
  res->rejects = p->rejects;
  res->n_rejects = n_rejects;
  res->n_processed = n_processed;
  res->n_suppressed = n_suppressed;
  res->n_new_users = n_new;
  res->n_skipped = n_skipped;
  res->n_waves = n_waves;
  res->step_ns = step_ns;
  /* the memory limit: a new user at capacity replaces the least recently seen
   * one not touched in this batch (store_get); the rest is trimmed here, after
   * the batch, so the pointers above stay valid until now */
  store_evict(p->store);
  store_stats_t ss1;
  store_get_stats(p->store, &ss1);
  res->n_evicted = (size_t)(ss1.evicted_lru - ss0.evicted_lru);
  return 0;
}

store_t *pipeline_store(pipeline_t *p) { return p->store; }
uint32_t pipeline_fingerprint(const pipeline_t *p) { return model_fingerprint(p->model); }
const model_t *pipeline_model(const pipeline_t *p) { return p->model; }
void pipeline_set_emit(pipeline_t *p, const emit_opts_t *emit) { p->emit = *emit; }

int pipeline_set_model(pipeline_t *p, model_t *model, int reset) {
  int same = model_fingerprint(model) == model_fingerprint(p->model) &&
             model_state_size(model) == model_state_size(p->model);
  if (same) {
    p->model = model;
    return 0;
  }
  if (!reset) return IX_EMISMATCH;
  store_opts_t so = p->store_opts;
  so.blob_size = pipeline_blob_size(model);
  store_t *st = NULL;
  int rc = store_new(&so, &st);
  if (rc) return rc;
  store_destroy(p->store);
  p->store = st;
  p->store_opts = so;
  p->model = model;
  p->state_size = model_state_size(model);
  memset(p->quality, 0, sizeof p->quality); /* the figures are per model */
  return 0;
}

int pipeline_user_prediction(pipeline_t *p, int32_t partition, uint64_t user_id, int64_t now_ms,
                             prediction_t *out) {
  const void *blob = store_peek(p->store, partition, user_id);
  if (!blob) return IX_ENOENT;
  const void *states[1] = {blob};
  memset(out, 0, sizeof *out);
  int rc = model_predict_batch(p->model, states, 1, out);
  if (rc) return rc;
  const emit_memo_t *memo = (const emit_memo_t *)((const char *)blob + p->state_size);
  out->user_id = user_id;
  out->src_partition = partition;
  out->src_offset = memo->last_offset1 - 1;
  out->event_ts_ms = memo->last_event_ts_ms;
  out->emit_ts_ms = now_ms;
  return 0;
}
