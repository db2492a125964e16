/* The model swap's warm-up (daemon/warmup.h): a worker thread that re-reads
 * a window of the owned input partitions and applies it to a new pipeline,
 * never past the serving position, and the hand-over at the switch. */
#include "daemon/warmup.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/reader.h"

#define POLL_MS 50 /* the worker's reader wait; also how often it sees a stop */
#define PEND_BATCHES 8 /* records kept beyond the serving position before a partition pauses */
#define WM_TRIES 5     /* low-watermark asks per partition start, 250 ms doubling apart */
#define WM_WAIT_MS 250

/* Partition starts whose low watermark stayed unknown (every process's
 * warm-ups; the metric mirrors it on the loop thread). */
static _Atomic uint64_t wm_unknown_total;

typedef struct {
  int32_t partition;
  int64_t ceiling; /* serving pipeline's next offset (loop); -1 = not known yet */
  int64_t start;   /* first offset read; -1 = not started */
  int64_t applied; /* next offset to apply (worker) */
  int dropped;     /* revoked: ignored, states dropped (worker drops them) */
  int states_dropped;
  /* worker only: records read at or beyond the ceiling, copied, in order;
   * the reader pauses the partition while too many wait (it resumes right
   * after the last record it handed out: nothing read twice or skipped) */
  rec_t *pend;
  size_t n_pend, cap_pend;
  int paused;
} wpart_t;

struct warmup {
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* applied moved, a ceiling moved, stop */
  int stop;
  int reassign; /* a partition's position became known: assign the reader again */
  warmup_state_t state;
  char error[256];

  wpart_t *parts;
  size_t n;
  uint64_t applied_total, skipped_total, window_total;
  long delay_us; /* test failpoint IX_TEST_WARMUP_BATCH_DELAY_US: sleep after each batch */

  /* worker's own */
  reader_t *reader;
  pipeline_t *pipe;
  model_t *model;
  input_t *input;
  uint32_t batch;
  uint64_t max_events;
  int64_t min_ts; /* events with ts below this are skipped (INT64_MIN = none) */
  int wm_down;    /* the last partition start's low watermark stayed unknown: ask once */
  rec_t *recs, *take;
  size_t cap_take;
  void **freeme; /* kept copies handed to the batch being applied */
  size_t n_freeme, cap_freeme;
};

static wpart_t *find(const warmup_t *w, int32_t p) {
  for (size_t i = 0; i < w->n; i++)
    if (w->parts[i].partition == p) return &w->parts[i];
  return NULL;
}

/* The CLOCK_REALTIME time ms milliseconds from now (pthread_cond_timedwait's
 * deadline). */
static struct timespec deadline_in(int ms) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

/* Worker: waits up to ms for a stop; returns whether one came. */
static int wait_stop(warmup_t *w, int ms) {
  struct timespec t = deadline_in(ms);
  pthread_mutex_lock(&w->mu);
  while (!w->stop && pthread_cond_timedwait(&w->cond, &w->mu, &t) != ETIMEDOUT) {
  }
  int stop = w->stop;
  pthread_mutex_unlock(&w->mu);
  return stop;
}

/* Worker: the first offset to warm partition p from, serving at ceiling:
 * max_events back, not below the low watermark. A watermark that cannot be
 * read (or a high one below the serving position) is asked again, WM_TRIES
 * times in all, on this thread (once only while the previous partition's
 * stayed unknown: a warm start gives up after 30 s without progress); then
 * the start is ceiling - max_events clamped at 0 (an offset below the log's
 * start reads from it: the reader's auto.offset.reset = earliest), logged
 * and counted. -1 = stopped. */
static int64_t pick_start(warmup_t *w, int32_t p, int64_t ceiling) {
  int64_t start = ceiling - (int64_t)w->max_events;
  int wait = WM_WAIT_MS, tries = w->wm_down ? 1 : WM_TRIES;
  for (int t = 1;; t++) {
    int64_t lo = -1, hi = -1;
    if (reader_watermarks(w->reader, p, 5000, &lo, &hi) == 0 && hi >= ceiling) {
      if (start < lo) start = lo;
      w->wm_down = 0;
      break;
    }
    if (lo >= 0)
      LOG_WARN("warmup", "partition %d: high watermark %" PRId64 " below the serving position "
               "%" PRId64 ": not used", (int)p, hi, ceiling);
    if (t == tries) {
      atomic_fetch_add(&wm_unknown_total, 1);
      w->wm_down = 1;
      LOG_WARN("warmup", "partition %d: low watermark unknown after %d tries: warming from "
               "%" PRId64 " (serving at %" PRId64 ", %" PRIu64 " events back, not below 0)",
               (int)p, tries, start < 0 ? 0 : start, ceiling, w->max_events);
      break;
    }
    if (wait_stop(w, wait)) return -1;
    wait *= 2;
  }
  if (start < 0) start = 0;
  if (start > ceiling) start = ceiling;
  return start;
}

/* Worker: (re)assigns the reader to every known, kept partition at its next
 * offset to apply; a partition whose position just became known starts
 * max_events back (not below its low watermark: pick_start). Called without
 * the lock. */
static int assign_reader(warmup_t *w) {
  int32_t *ps = malloc((w->n + 1) * sizeof *ps);
  int64_t *offs = malloc((w->n + 1) * sizeof *offs);
  if (!ps || !offs) {
    free(ps);
    free(offs);
    return IX_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < w->n; i++) {
    pthread_mutex_lock(&w->mu);
    wpart_t pt = w->parts[i];
    pthread_mutex_unlock(&w->mu);
    if (pt.dropped || pt.ceiling < 0) continue;
    if (pt.start < 0) {
      int64_t start = pick_start(w, pt.partition, pt.ceiling);
      if (start < 0) { /* stopped */
        free(ps);
        free(offs);
        return 0;
      }
      pthread_mutex_lock(&w->mu);
      w->parts[i].start = w->parts[i].applied = start;
      w->window_total += (uint64_t)(w->parts[i].ceiling - start);
      pthread_mutex_unlock(&w->mu);
      LOG_INFO("warmup", "partition %d: warming from offset %" PRId64 " (serving at %" PRId64
               ")", (int)pt.partition, start, pt.ceiling);
      pt.applied = start;
    }
    ps[k] = pt.partition;
    offs[k++] = pt.applied;
  }
  int rc = reader_assign(w->reader, ps, offs, k);
  free(ps);
  free(offs);
  return rc;
}

/* A kept record: a copy of r with its key and value in one allocation. */
static int pend_add(wpart_t *pt, const rec_t *r) {
  if (pt->n_pend == pt->cap_pend) {
    size_t cap = pt->cap_pend ? 2 * pt->cap_pend : 64;
    rec_t *p = realloc(pt->pend, cap * sizeof *p);
    if (!p) return IX_ENOMEM;
    pt->pend = p;
    pt->cap_pend = cap;
  }
  char *mem = malloc(r->key_len + r->value_len + 1);
  if (!mem) return IX_ENOMEM;
  if (r->key_len) memcpy(mem, r->key, r->key_len);
  if (r->value_len) memcpy(mem + r->key_len, r->value, r->value_len);
  rec_t c = *r;
  c.key = mem;
  c.value = mem + r->key_len;
  pt->pend[pt->n_pend++] = c;
  return 0;
}

/* Frees every kept record of pt (none is in a batch being applied). */
static void pend_clear(wpart_t *pt) {
  for (size_t i = 0; i < pt->n_pend; i++) free((void *)pt->pend[i].key);
  pt->n_pend = 0;
}

/* Appends r to the batch being built (its memory, when it is a kept copy,
 * is freed by take_free() after the batch). */
static int take_add(warmup_t *w, const rec_t *r, size_t *k) {
  if (*k == w->cap_take) {
    size_t cap = w->cap_take ? 2 * w->cap_take : 256;
    rec_t *t = realloc(w->take, cap * sizeof *t);
    if (!t) return IX_ENOMEM;
    w->take = t;
    w->cap_take = cap;
  }
  w->take[(*k)++] = *r;
  return 0;
}

/* Drops the first `used` kept records of pt; their copies are freed by
 * take_free() once the batch they may be in is applied. */
static void pend_consume(wpart_t *pt, size_t used, warmup_t *w) {
  for (size_t i = 0; i < used; i++) {
    if (w->n_freeme == w->cap_freeme) {
      size_t cap = w->cap_freeme ? 2 * w->cap_freeme : 256;
      void **f = realloc(w->freeme, cap * sizeof *f);
      if (!f) { /* freeing now could free a record in the batch: leak instead */
        continue;
      }
      w->freeme = f;
      w->cap_freeme = cap;
    }
    w->freeme[w->n_freeme++] = (void *)pt->pend[i].key;
  }
  if (!used) return;
  memmove(pt->pend, pt->pend + used, (pt->n_pend - used) * sizeof *pt->pend);
  pt->n_pend -= used;
}

static void take_free(warmup_t *w) {
  for (size_t i = 0; i < w->n_freeme; i++) free(w->freeme[i]);
  w->n_freeme = 0;
}

static void fail(warmup_t *w, int rc, const char *what) {
  pthread_mutex_lock(&w->mu);
  w->state = WARMUP_FAILED;
  snprintf(w->error, sizeof w->error, "%s: %s", what, ix_strerror(rc));
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
  LOG_ERROR("warmup", "%s: %s; the swap is abandoned, the running model keeps serving", what,
            ix_strerror(rc));
}

static void *worker(void *arg) {
  warmup_t *w = arg;
  size_t have = 0, at = 0; /* the current poll: recs[at..have) not yet applied */
  int rc = assign_reader(w);
  if (rc) {
    fail(w, rc, "assigning the warm-up reader");
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock(&w->mu);
    int stop = w->stop, reassign = w->reassign;
    w->reassign = 0;
    pthread_mutex_unlock(&w->mu);
    if (stop) break;
    /* drop the states of revoked partitions (the store is the worker's) */
    for (size_t i = 0; i < w->n; i++) {
      pthread_mutex_lock(&w->mu);
      int drop = w->parts[i].dropped && !w->parts[i].states_dropped;
      w->parts[i].states_dropped |= drop;
      pthread_mutex_unlock(&w->mu);
      if (drop) store_drop_partition(pipeline_store(w->pipe), w->parts[i].partition);
    }
    if (reassign) {
      /* positions restart from what is applied: the current poll goes */
      reader_release(w->reader);
      have = at = 0;
      for (size_t j = 0; j < w->n; j++) {
        pend_clear(&w->parts[j]);
        w->parts[j].paused = 0;
      }
      if ((rc = assign_reader(w))) {
        fail(w, rc, "assigning the warm-up reader");
        return NULL;
      }
    }
    if (at >= have) {
      ssize_t got = reader_poll(w->reader, w->recs, w->batch, POLL_MS);
      if (got < 0) {
        fail(w, (int)got, "reading the input topic");
        return NULL;
      }
      have = (size_t)got;
      at = 0;
      if (!have) continue;
    }
    /* take what lies below the ceilings, in order per partition: first the
     * records kept from earlier polls, then this poll's. A record at or
     * beyond its partition's ceiling is copied and kept (the other
     * partitions go on: the switch waits for them), and past PEND_BATCHES
     * batches of kept records the reader pauses the partition */
    size_t k = 0, skipped = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t j = 0; j < w->n; j++) {
      wpart_t *pt = &w->parts[j];
      size_t used = 0;
      while (used < pt->n_pend && pt->pend[used].offset < pt->ceiling && !pt->dropped) {
        const rec_t *r = &pt->pend[used++];
        if (r->offset < pt->applied) continue;
        pt->applied = r->offset + 1;
        if (r->ts_ms > 0 && r->ts_ms < w->min_ts) skipped++;
        else if ((rc = take_add(w, r, &k))) break;
      }
      pend_consume(pt, used, w);
    }
    for (size_t i = at; i < have && !rc; i++) {
      const rec_t *r = &w->recs[i];
      wpart_t *pt = find(w, r->partition);
      if (!pt || pt->dropped || pt->start < 0 || r->offset < pt->applied) continue;
      if (pt->n_pend || r->offset >= pt->ceiling) {
        if ((rc = pend_add(pt, r))) break;
        continue;
      }
      pt->applied = r->offset + 1; /* published below, once applied */
      if (r->ts_ms > 0 && r->ts_ms < w->min_ts) {
        skipped++;
        continue;
      }
      rc = take_add(w, r, &k);
    }
    pthread_mutex_unlock(&w->mu);
    if (rc) {
      fail(w, rc, "keeping records for the warm-up");
      return NULL;
    }
    at = have; /* every record of this poll is applied, skipped or kept */
    for (size_t j = 0; j < w->n; j++) {
      wpart_t *pt = &w->parts[j];
      /* the serving consumer reads the same records at about the same
       * pace, so a few batches kept ahead are soon applied: pausing only
       * then spares the fetch round trip a resume costs (a switch waits
       * for it) */
      size_t limit = (size_t)w->batch * PEND_BATCHES;
      int want = pt->dropped ? 0 : pt->paused ? pt->n_pend > limit / 2 : pt->n_pend >= limit;
      if (want == pt->paused) continue;
      rc = want ? reader_pause(w->reader, pt->partition) : reader_resume(w->reader, pt->partition);
      if (rc) {
        fail(w, rc, "pausing or resuming a partition of the warm-up reader");
        return NULL;
      }
      pt->paused = want;
    }
    if (k) {
      pipeline_result_t res;
      int64_t clock = 0;
      for (size_t j = 0; j < k; j++)
        if (w->take[j].ts_ms > clock) clock = w->take[j].ts_ms;
      rc = pipeline_process(w->pipe, w->take, k, clock, &res);
      take_free(w);
      if (w->delay_us > 0) {
        struct timespec ts = {w->delay_us / 1000000, (w->delay_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
      }
      if (rc) {
        fail(w, rc, "applying the window to the new model's states");
        return NULL;
      }
    }
    pthread_mutex_lock(&w->mu);
    w->applied_total += k;
    w->skipped_total += skipped;
    pthread_cond_broadcast(&w->cond);
    if (!k) {
      /* only kept records (or nothing) and every paused: wait for the
       * serving position to move, briefly (the poll below waits too) */
      int kept = 0;
      for (size_t j = 0; j < w->n; j++) kept |= w->parts[j].n_pend > 0;
      if (kept && !w->stop && !w->reassign) {
        struct timespec ts = deadline_in(10);
        pthread_cond_timedwait(&w->cond, &w->mu, &ts);
      }
    }
    pthread_mutex_unlock(&w->mu);
  }
  reader_release(w->reader);
  return NULL;
}

int warmup_start(const warmup_opts_t *o, model_t *model, const int32_t *partitions,
                 const int64_t *positions, size_t n, warmup_t **out, char *errstr,
                 size_t errstr_size) {
  *out = NULL;
  warmup_t *w = calloc(1, sizeof *w);
  if (!w) return IX_ENOMEM;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cond, NULL);
  int rc = IX_ENOMEM;
  w->batch = o->batch ? o->batch : 256;
  w->max_events = o->max_events;
  const char *delay = getenv("IX_TEST_WARMUP_BATCH_DELAY_US");
  if (delay && *delay) {
    w->delay_us = strtol(delay, NULL, 10);
    LOG_WARN("warmup", "test failpoint: the warm-up sleeps %ld us after each batch", w->delay_us);
  }
  w->min_ts = o->window_ms > 0 && o->ref_ts_ms > 0 ? o->ref_ts_ms - o->window_ms : INT64_MIN;
  w->parts = calloc(n + 1, sizeof *w->parts);
  w->recs = malloc(w->batch * sizeof *w->recs);
  w->take = malloc(w->batch * sizeof *w->take);
  w->cap_take = w->batch;
  if (!w->parts || !w->recs || !w->take) goto err;
  for (size_t i = 0; i < n; i++)
    w->parts[i] = (wpart_t){.partition = partitions[i], .ceiling = positions[i], .start = -1,
                            .applied = -1};
  w->n = n;
  if ((rc = input_new(o->input, &w->input, errstr, errstr_size))) goto err;
  if ((rc = pipeline_new(model, o->store, o->emit, &w->pipe))) {
    snprintf(errstr, errstr_size, "cannot create the new model's pipeline: %s", ix_strerror(rc));
    goto err;
  }
  pipeline_set_input(w->pipe, w->input);
  if ((rc = reader_new(o->brokers, o->props, o->topic, &w->reader, errstr, errstr_size)))
    goto err;
  w->model = model;
  if (pthread_create(&w->thread, NULL, worker, w)) {
    snprintf(errstr, errstr_size, "cannot start the warm-up thread: %s", strerror(errno));
    w->model = NULL;
    rc = IX_ESYS;
    goto err;
  }
  w->thread_started = 1;
  *out = w;
  return 0;
err:
  w->model = NULL; /* not taken on failure */
  warmup_destroy(w);
  return rc;
}

void warmup_advance(warmup_t *w, int32_t p, int64_t next) {
  pthread_mutex_lock(&w->mu);
  wpart_t *pt = find(w, p);
  if (pt && !pt->dropped && next > pt->ceiling) {
    if (pt->ceiling < 0) w->reassign = 1; /* its position is known now */
    pt->ceiling = next;
    pthread_cond_broadcast(&w->cond);
  }
  pthread_mutex_unlock(&w->mu);
}

void warmup_drop_partition(warmup_t *w, int32_t p) {
  pthread_mutex_lock(&w->mu);
  wpart_t *pt = find(w, p);
  if (pt) pt->dropped = 1;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

int warmup_has_partition(const warmup_t *w, int32_t p) {
  warmup_t *mw = (warmup_t *)w;
  pthread_mutex_lock(&mw->mu);
  const wpart_t *pt = find(w, p);
  int has = pt && !pt->dropped;
  pthread_mutex_unlock(&mw->mu);
  return has;
}

/* Offsets still to apply below the ceilings (lock held). */
static uint64_t behind_locked(const warmup_t *w, uint32_t *started) {
  uint64_t b = 0;
  uint32_t s = 0;
  for (size_t i = 0; i < w->n; i++) {
    const wpart_t *pt = &w->parts[i];
    if (pt->dropped || pt->ceiling < 0) continue;
    if (pt->start < 0) {
      b += (uint64_t)pt->ceiling + 1; /* not started: its whole past, at most */
      continue;
    }
    s++;
    if (pt->ceiling > pt->applied) b += (uint64_t)(pt->ceiling - pt->applied);
  }
  if (started) *started = s;
  return b;
}

void warmup_get_stats(const warmup_t *w, warmup_stats_t *st) {
  warmup_t *mw = (warmup_t *)w;
  pthread_mutex_lock(&mw->mu);
  st->state = w->state;
  st->applied = w->applied_total;
  st->skipped = w->skipped_total;
  st->window = w->window_total;
  st->behind = behind_locked(w, &st->partitions);
  pthread_mutex_unlock(&mw->mu);
}

const char *warmup_error(const warmup_t *w) { return w->error; }

static void stop_worker(warmup_t *w) {
  if (!w->thread_started) return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  w->thread_started = 0;
}

int warmup_finish(warmup_t *w, int timeout_ms, const input_t *input, pipeline_t **pipe,
                  model_t **model) {
  struct timespec deadline = deadline_in(timeout_ms);
  pthread_mutex_lock(&w->mu);
  int rc = 1;
  for (;;) {
    if (w->state == WARMUP_FAILED) {
      rc = IX_ESTATE;
      break;
    }
    if (behind_locked(w, NULL) == 0) {
      rc = 0;
      break;
    }
    if (pthread_cond_timedwait(&w->cond, &w->mu, &deadline) == ETIMEDOUT) {
      rc = behind_locked(w, NULL) == 0 ? 0 : 1;
      break;
    }
  }
  pthread_mutex_unlock(&w->mu);
  if (rc) return rc;
  stop_worker(w);
  if (w->state == WARMUP_FAILED) return IX_ESTATE; /* its last batch failed */
  /* partitions whose position was never known hold no states in the
   * serving pipeline either; revoked ones were dropped by the worker, or
   * are dropped here if it stopped first */
  for (size_t i = 0; i < w->n; i++)
    if (w->parts[i].dropped || w->parts[i].ceiling < 0)
      store_drop_partition(pipeline_store(w->pipe), w->parts[i].partition);
  pipeline_set_input(w->pipe, input);
  *pipe = w->pipe;
  *model = w->model;
  w->pipe = NULL;
  w->model = NULL;
  warmup_destroy(w);
  return 0;
}

void warmup_destroy(warmup_t *w) {
  if (!w) return;
  stop_worker(w);
  reader_destroy(w->reader);
  pipeline_destroy(w->pipe);
  model_destroy(w->model);
  input_destroy(w->input);
  take_free(w);
  free(w->freeme);
  for (size_t i = 0; w->parts && i < w->n; i++) {
    pend_clear(&w->parts[i]);
    free(w->parts[i].pend);
  }
  free(w->parts);
  free(w->recs);
  free(w->take);
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

static void collect(void *arg, metrics_t *reg) {
  (void)reg;
  warmup_metrics_t *wm = arg;
  metrics_counter_set(wm->wm_unknown, atomic_load(&wm_unknown_total));
}

int warmup_metrics_register(metrics_t *m, warmup_metrics_t *wm) {
  int rc = metrics_gauge_new(m, &wm->state, "interestd_model_swap_state",
                             "1 while a new model's states warm up (model.reload = warm).", NULL);
  if (!rc) rc = metrics_gauge_new(m, &wm->window, "interestd_model_swap_warmup_window_messages",
                                  "Input offsets in the window the warm-up re-reads.", NULL);
  if (!rc) rc = metrics_gauge_new(m, &wm->behind, "interestd_model_swap_warmup_behind_messages",
                                  "Input offsets the warm-up still has to apply before the "
                                  "serving position.", NULL);
  if (!rc) rc = metrics_counter_new(m, &wm->applied, "interestd_model_swap_warmup_events_total",
                                    "Events applied to a new model's states by warm-ups.", NULL);
  if (!rc) rc = metrics_gauge_new(m, &wm->pause, "interestd_model_swap_pause_seconds",
                                  "How long the last switch to a warmed model paused the input.",
                                  NULL);
  if (!rc) rc = metrics_counter_new(m, &wm->wm_unknown,
                                    "interestd_model_swap_warmup_watermark_unknown_total",
                                    "Warm-up partition starts whose low watermark could not be "
                                    "read (warmed from max_events back, not below 0).", NULL);
  if (!rc) rc = metrics_on_collect(m, collect, wm);
  if (!rc) rc = metrics_counter_new(m, &wm->swaps[0], "interestd_model_swaps_total",
                                    "Model swaps by outcome.", "result", "warm", NULL);
  if (!rc) rc = metrics_counter_new(m, &wm->swaps[1], "interestd_model_swaps_total",
                                    "Model swaps by outcome.", "result", "abandoned", NULL);
  return rc;
}
