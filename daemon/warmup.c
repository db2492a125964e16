/* The model swap's warm-up (daemon/warmup.h): a worker thread that re-reads
 * a window of the owned input partitions and applies it to a new pipeline,
 * never past the serving position, and the hand-over at the switch. */
#include "daemon/warmup.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/reader.h"

#define POLL_MS 50 /* the worker's reader wait; also how often it sees a stop */

typedef struct {
  int32_t partition;
  int64_t ceiling; /* serving pipeline's next offset (loop); -1 = not known yet */
  int64_t start;   /* first offset read; -1 = not started */
  int64_t applied; /* next offset to apply (worker) */
  int dropped;     /* revoked: ignored, states dropped (worker drops them) */
  int states_dropped;
  /* worker only: the reader holds the partition at offset `held` (paused,
   * position moved back) until the ceiling passes it; then, until the
   * record at `expect` comes again, records of it are stale and ignored */
  int64_t held, expect;
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

  /* worker's own */
  reader_t *reader;
  pipeline_t *pipe;
  model_t *model;
  input_t *input;
  uint32_t batch;
  uint64_t max_events;
  int64_t min_ts; /* events with ts below this are skipped (INT64_MIN = none) */
  rec_t *recs, *take;
};

static wpart_t *find(const warmup_t *w, int32_t p) {
  for (size_t i = 0; i < w->n; i++)
    if (w->parts[i].partition == p) return &w->parts[i];
  return NULL;
}

/* Worker: (re)assigns the reader to every known, kept partition at its next
 * offset to apply; a partition whose position just became known starts
 * max_events back (not below its low watermark). Called without the lock. */
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
      int64_t lo = 0, hi = 0, start = pt.ceiling - (int64_t)w->max_events;
      if (reader_watermarks(w->reader, pt.partition, 5000, &lo, &hi) == 0 && start < lo)
        start = lo;
      if (start < 0) start = 0;
      if (start > pt.ceiling) start = pt.ceiling;
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
      for (size_t j = 0; j < w->n; j++) w->parts[j].held = w->parts[j].expect = -1;
      if ((rc = assign_reader(w))) {
        fail(w, rc, "assigning the warm-up reader");
        return NULL;
      }
    }
    for (size_t j = 0; j < w->n; j++) {
      pthread_mutex_lock(&w->mu);
      int go = w->parts[j].held >= 0 && !w->parts[j].dropped &&
               w->parts[j].ceiling > w->parts[j].held;
      pthread_mutex_unlock(&w->mu);
      if (!go) continue;
      if ((rc = reader_resume(w->reader, w->parts[j].partition))) {
        fail(w, rc, "resuming a partition of the warm-up reader");
        return NULL;
      }
      w->parts[j].held = -1; /* expect stays: the held record comes first */
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
    /* take what lies below the ceilings, in order per partition. At a
     * record at or beyond its partition's ceiling the partition is held:
     * the reader pauses it and moves it back to that record, so the rest
     * of it is read again once the serving position has passed it, and the
     * other partitions go on (the switch waits for them) */
    size_t k = 0, skipped = 0;
    int held_any = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < have; i++) {
      const rec_t *r = &w->recs[i];
      wpart_t *pt = find(w, r->partition);
      if (!pt || pt->dropped || pt->start < 0 || pt->held >= 0 || r->offset < pt->applied)
        continue;
      if (pt->expect >= 0) {
        if (r->offset != pt->expect) continue; /* fetched before the hold */
        pt->expect = -1;
      }
      if (r->offset >= pt->ceiling) {
        pt->held = r->offset;
        held_any = 1;
        continue;
      }
      pt->applied = r->offset + 1; /* published below, once applied */
      if (r->ts_ms > 0 && r->ts_ms < w->min_ts) {
        skipped++;
        continue;
      }
      w->take[k++] = *r;
    }
    pthread_mutex_unlock(&w->mu);
    at = have; /* every record of this poll is applied, skipped, or will be read again */
    if (held_any)
      for (size_t j = 0; j < w->n; j++)
        if (w->parts[j].held >= 0 && w->parts[j].expect < 0 &&
            (rc = reader_hold(w->reader, w->parts[j].partition, w->parts[j].held))) {
          fail(w, rc, "holding a partition of the warm-up reader");
          return NULL;
        }
    for (size_t j = 0; j < w->n; j++)
      if (w->parts[j].held >= 0) w->parts[j].expect = w->parts[j].held; /* marks it paused */
    if (k) {
      pipeline_result_t res;
      int64_t clock = 0;
      for (size_t j = 0; j < k; j++)
        if (w->take[j].ts_ms > clock) clock = w->take[j].ts_ms;
      if ((rc = pipeline_process(w->pipe, w->take, k, clock, &res))) {
        fail(w, rc, "applying the window to the new model's states");
        return NULL;
      }
    }
    pthread_mutex_lock(&w->mu);
    w->applied_total += k;
    w->skipped_total += skipped;
    pthread_cond_broadcast(&w->cond);
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
  w->min_ts = o->window_ms > 0 && o->ref_ts_ms > 0 ? o->ref_ts_ms - o->window_ms : INT64_MIN;
  w->parts = calloc(n + 1, sizeof *w->parts);
  w->recs = malloc(w->batch * sizeof *w->recs);
  w->take = malloc(w->batch * sizeof *w->take);
  if (!w->parts || !w->recs || !w->take) goto err;
  for (size_t i = 0; i < n; i++)
    w->parts[i] = (wpart_t){.partition = partitions[i], .ceiling = positions[i], .start = -1,
                            .applied = -1, .held = -1, .expect = -1};
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
      b += 1; /* not started: never counts as caught up */
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
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
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
  free(w->parts);
  free(w->recs);
  free(w->take);
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->mu);
  free(w);
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
  if (!rc) rc = metrics_counter_new(m, &wm->swaps[0], "interestd_model_swaps_total",
                                    "Model swaps by outcome.", "result", "warm", NULL);
  if (!rc) rc = metrics_counter_new(m, &wm->swaps[1], "interestd_model_swaps_total",
                                    "Model swaps by outcome.", "result", "abandoned", NULL);
  return rc;
}
