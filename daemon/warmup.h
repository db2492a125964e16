/* A model swap without cold users (model.reload = warm): the new model's
 * states are built in the background while the old model keeps serving.
 *
 * A worker thread re-reads each owned input partition with its own
 * group-less reader (stream/reader.h), from a window before the serving
 * position (at most max_events back; events older than the newest consumed
 * event time minus window_ms are skipped) and applies the events to a new
 * pipeline (its own store) with the new model. It chases the serving
 * position: it never applies an event at or beyond the partition's
 * "ceiling", the next offset the serving pipeline will consume, which the
 * loop thread moves with warmup_advance(). To switch, the loop stops
 * processing (so the ceilings stay put) and calls warmup_finish(), which
 * waits (bounded) until the worker has applied exactly every event below
 * each ceiling, then stops the worker and hands over the new pipeline and
 * model: its states then equal what the serving pipeline would hold had it
 * run the new model over the window and everything since.
 *
 * Loop thread for every call; the worker only touches its own reader,
 * pipeline, model and decoder until warmup_finish() hands them over. */
#ifndef IX_DAEMON_WARMUP_H
#define IX_DAEMON_WARMUP_H

#include <stddef.h>
#include <stdint.h>

#include "core/emit.h"
#include "core/pipeline.h"
#include "daemon/metrics.h"
#include "model/model.h"
#include "state/store.h"
#include "stream/input.h"

typedef struct warmup warmup_t;

typedef struct {
  const char *brokers;      /* the input topic's cluster */
  const char *const *props; /* librdkafka "key=value" properties (borrowed for the call) */
  const char *topic;        /* the input topic */
  const input_opts_t *input;  /* [input] (copied: the worker has its own decoder) */
  const store_opts_t *store;  /* the new store's limits */
  const emit_opts_t *emit;    /* the emission policy (its per-user memory is warmed too) */
  uint32_t batch;             /* events per pipeline batch */
  uint64_t max_events;        /* per partition: start at most this many offsets back */
  int64_t window_ms;          /* skip events older than ref_ts_ms - window_ms (0 = none) */
  int64_t ref_ts_ms;          /* newest event timestamp consumed when the swap began */
} warmup_opts_t;

typedef enum {
  WARMUP_WARMING = 0, /* reading the window, chasing the serving position */
  WARMUP_FAILED,      /* the worker stopped on an error (warmup_error says which) */
} warmup_state_t;

typedef struct {
  warmup_state_t state;
  uint64_t applied;    /* events applied to the new states */
  uint64_t skipped;    /* events of the window older than window_ms */
  uint64_t behind;     /* offsets between what is applied and the ceilings */
  uint64_t window;     /* offsets in the window (from the starts to the first ceilings) */
  uint32_t partitions; /* partitions being warmed (position known) */
} warmup_stats_t;

/* Starts warming model (ownership taken on success) for partitions[0..n)
 * whose serving pipelines' next offsets are positions[i] (-1 = not known
 * yet: warmed from the first warmup_advance() that knows it). Returns 0 or a
 * negative IX_E* with errstr. Free with warmup_destroy() (abandon) or hand
 * over with warmup_finish(). */
int warmup_start(const warmup_opts_t *opts, model_t *model, const int32_t *partitions,
                 const int64_t *positions, size_t n, warmup_t **out, char *errstr,
                 size_t errstr_size);

/* The serving pipeline's next offset of partition p is now next. */
void warmup_advance(warmup_t *w, int32_t p, int64_t next);
/* Partition p left this process: its new states are dropped, it is no
 * longer waited for. */
void warmup_drop_partition(warmup_t *w, int32_t p);
/* Whether p is one of the warmed partitions. */
int warmup_has_partition(const warmup_t *w, int32_t p);

void warmup_get_stats(const warmup_t *w, warmup_stats_t *st);
/* The worker's error sentence (WARMUP_FAILED), "" otherwise. */
const char *warmup_error(const warmup_t *w);

/* The switch. The caller has set every ceiling (warmup_advance) and
 * processes nothing until this returns. Waits up to timeout_ms for the
 * worker to apply every event below the ceilings. Returns 0 with *pipe and
 * *model handed over (the caller frees them; w is freed: do not use it
 * again), 1 when the worker did not get there in time (it keeps warming;
 * call again later), or a negative IX_E* when it failed (w stays; destroy
 * it). The pipeline's decoder is the caller's input (pipeline_set_input). */
int warmup_finish(warmup_t *w, int timeout_ms, const input_t *input, pipeline_t **pipe,
                  model_t **model);

/* Stops the worker and frees everything, the new model too. Accepts NULL. */
void warmup_destroy(warmup_t *w);

/* The swap's metrics (borrowed from the registry):
 *   interestd_model_swap_state                   gauge    0 idle, 1 warming
 *   interestd_model_swap_warmup_window_messages  gauge    offsets in the window being re-read
 *   interestd_model_swap_warmup_behind_messages  gauge    offsets still to apply before a switch
 *   interestd_model_swap_warmup_events_total     counter  events applied to new models' states
 *   interestd_model_swap_warmup_watermark_unknown_total  counter  partition starts whose low
 *                                                 watermark stayed unknown (model.reload = warm
 *                                                 and model.warm_start alike)
 *   interestd_model_swap_pause_seconds           gauge    input paused by the last switch
 *   interestd_model_swaps_total{result}          counter  "warm" (switched) | "abandoned" */
typedef struct {
  metrics_gauge_t *state, *window, *behind, *pause;
  metrics_counter_t *applied, *wm_unknown;
  metrics_counter_t *swaps[2]; /* warm, abandoned */
} warmup_metrics_t;
int warmup_metrics_register(metrics_t *reg, warmup_metrics_t *wm);

#endif
