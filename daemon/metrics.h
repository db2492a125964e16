/* Metrics registry: counters, gauges and fixed-bucket histograms, rendered in
 * the Prometheus text exposition format (version 0.0.4) for GET /metrics.
 *
 * Threading: one thread (the libuv loop thread) registers, updates and
 * renders. Updates are plain stores and increments: no locks, no allocation,
 * no system calls. Registration and rendering allocate.
 *
 * Ownership: every series belongs to its registry; pointers returned by the
 * *_new() functions stay valid until metrics_gauge_delete() (gauges only) or
 * metrics_destroy().
 *
 * Naming (Prometheus conventions): prefix interestd_, counters end in _total,
 * units in the name (_seconds, _bytes), base units only. Labels form a small
 * fixed set per metric (reason="not_map", partition="3"); never user ids.
 *
 * ---------------------------------------------------------------------------
 * What interestd exports (docs/OPERATIONS.md has the same table).
 * metrics_daemon_register() below registers exactly these; use it rather than
 * spelling the names again.
 *
 *  name                                      type       labels                   meaning
 *  interestd_events_consumed_total           counter    -                        messages read from the input topic(s)
 *  interestd_events_processed_total          counter    -                        events applied to a user's state
 *  interestd_events_rejected_total           counter    reason                   messages not applied (see reasons below)
 *  interestd_predictions_produced_total      counter    -                        predictions handed to the producer
 *  interestd_predictions_delivered_total     counter    -                        predictions acknowledged by the broker
 *  interestd_predictions_failed_total        counter    -                        predictions whose delivery failed
 *  interestd_produce_failures_total          counter    reason                   failed produce attempts by class (producer.h's
 *                                                                                PRODUCER_FAIL_MAP; transient ones are re-sent)
 *  interestd_messages_dropped_total          counter    kind, reason             messages given up on after a permanent failure
 *                                                                                (kind="prediction"|"dead_letter")
 *  interestd_dead_letters_truncated_total    counter    -                        dead-letter records sent without the value
 *  interestd_consumer_paused                 gauge      -                        1 while consumption is paused (backpressure)
 *  interestd_retry_backlog_messages          gauge      -                        messages waiting in the retry backlog
 *  interestd_commit_failures_total           counter    -                        offset commits that failed
 *  interestd_checkpoints_refused_total       counter    -                        restored checkpoints ignored: offset beyond the
 *                                                                                partition's end (another cluster, recreated topic)
 *  interestd_checkpoints_skipped_total       counter    -                        checkpoint files skipped at restore as unusable
 *                                                                                (truncated, corrupt, unreadable); an older one is tried
 *  interestd_events_skipped_by_retention_total counter -                       input offsets deleted by the broker's retention
 *                                                                                before they were read (offset out of range)
 *  interestd_rebalances_total                counter    event                    assign | revoke | lost
 *  interestd_last_rebalance_info             gauge      event, partitions        always 1; the last rebalance
 *  interestd_committed_offset                gauge      partition                offset last committed, per owned partition
 *  interestd_batch_size_events               histogram  -                        events per processing batch
 *  interestd_step_duration_seconds           histogram  -                        model step time per batch (features+LSTM+head)
 *  interestd_event_to_prediction_seconds     histogram  -                        from the event being read off the consumer queue
 *                                                                                to its prediction's delivery report
 *  interestd_consumer_lag_messages           gauge      partition                high watermark - next offset to consume
 *  interestd_partitions_assigned             gauge      -                        input partitions owned by this process
 *  interestd_users_in_state                  gauge      -                        users held in the state store
 *  interestd_state_bytes                     gauge      -                        memory used by the state store
 *  interestd_state_pool_bytes                gauge      -                        populated memory the slab pool holds for
 *                                                                                the next slab (state/slab_pool.h)
 *  interestd_state_memory_chunks_total       counter    from="pool"|"fresh"      2 MiB chunks the stores' slabs took: held
 *                                                                                by the pool, or mapped fresh
 *  interestd_state_memory_failures_total     counter    -                        slabs the stores could not map or populate
 *                                                                                (out of memory): users evicted to make room
 *  interestd_evictions_total                 counter    cause="lru"|"ttl"        users dropped (memory limit | idle TTL)
 *  interestd_checkpoint_duration_seconds     histogram  -                        time to write one checkpoint
 *  interestd_checkpoint_failures_total       counter    -                        checkpoints that failed
 *  interestd_checkpoint_age_seconds          gauge      -                        seconds since the last successful checkpoint
 *                                                                                (since start when there was none)
 *  interestd_build_info                      gauge      version                  always 1
 *  interestd_model_info                      gauge      fingerprint, description always 1; labels change on SIGHUP reload
 *  interestd_quality_targets_total           counter    model, predictor         events scored against the previous prediction
 *  interestd_quality_hits_total              counter    model, predictor, k      ... whose category was in its top k (1, 5, 10)
 *  interestd_quality_reciprocal_rank_sum     gauge      model, predictor         sum of 1/rank over top-10 hits (MRR@10 numerator)
 *  interestd_model_swap_state gauge      -                        1 while a new model's states warm up (model.reload = warm)
 *  interestd_model_swap_warmup_window_messages gauge      -                        input offsets in the window the warm-up re-reads
 *  interestd_model_swap_warmup_behind_messages gauge      -                        offsets still to apply before the serving position
 *  interestd_model_swap_warmup_events_total counter    -                        events applied to a new model's states by warm-ups
 *  interestd_model_swap_warmup_watermark_unknown_total counter -                 warm-up partition starts whose low watermark stayed unknown (from max_events back, not below 0)
 *  interestd_model_swap_pause_seconds gauge      -                        input pause of the last switch to a warmed model
 *  interestd_model_swaps_total counter    result                   warm | abandoned
 *  (the model swap families above are registered by daemon/warmup.c)
 *  (the quality families are registered by daemon/quality.c, one series set per model
 *  fingerprint; predictor = lstm, recency, decay)
 *  interestd_redis_writes_total              counter    -                        predictions written to Redis
 *  interestd_redis_stale_writes_total        counter    -                        writes refused: Redis held a newer prediction
 *  interestd_redis_write_failures_total      counter    -                        error replies and writes lost with a connection
 *  interestd_redis_backlog                   gauge      -                        predictions waiting to be written to Redis
 *  interestd_redis_up                        gauge      -                        1 when the Redis sink is connected
 *  interestd_redis_write_seconds             histogram  -                        a write's send to Redis's reply
 *  (the Redis families are registered by metrics_redis_register() when [redis] is on)
 *  interestd_state_restores_total            counter    source=cold|local|changelog|local+changelog|standby|warm  partition assignments by where states came from
 *  interestd_state_restored_users_total      counter    source                   users restored, by source
 *  interestd_state_events_skipped_total      counter    -                        events already in a changelog-restored state
 *  interestd_changelog_read_bytes_total      counter    -                        changelog bytes read by restores
 *  interestd_changelog_restore_seconds       histogram  -                        time to restore one partition from the changelog
 *  interestd_changelog_records_written_total counter    -                        changelog records acknowledged
 *  interestd_changelog_produce_failures_total counter   -                        changelog records not delivered
 *  interestd_changelog_restore_failures_total counter   -                        restores whose changelog read failed (the partition waits, not cold)
 *  interestd_changelog_partitions_waiting    gauge      -                        owned partitions paused until their changelog can be read
 *  interestd_changelog_encode_seconds        histogram  mode=slices|at_once      loop-thread time of one changelog encoding call
 *  interestd_standby_lag_records             gauge      partition                changelog records a standby copy is behind the topic's end
 *  interestd_standby_users                   gauge      -                        users held in standby copies
 *  interestd_standby_bytes                   gauge      -                        memory of the standby copies
 *  interestd_standby_partitions              gauge      -                        partitions this member stands by for
 *  interestd_standby_rule                    gauge      rule=membership|assignment  1 for the placement rule in force, else 0
 *  interestd_standby_describes_total         counter    result=ok|failed         DescribeConsumerGroups answers for the standby placement
 *  (the state and changelog families are registered by metrics_changelog_register() when a changelog is on,
 *   their source="warm" series always by daemon/warmstart.c (model.warm_start);
 *   the standby gauges by daemon/standby.c when state.standby_replicas > 0)
 *  interestd_loop_busy_seconds               histogram  -                        time each turn of the event loop ran callbacks
 *  interestd_loop_stall_max_seconds          gauge      -                        longest turn since start
 *  interestd_loop_stall_recent_max_seconds   gauge      -                        longest turn ending in the last 60 s
 *  (the loop families are registered by metrics_loop_register(), always: daemon/loopstat.c)
 *
 * Reject reasons (label reason=): derived from the codec's error code by
 * common/reject.h's IX_REJECT_MAP (not_map, truncated, too_big,
 * missing_field, wrong_type, out_of_range, malformed; anything else other).
 * ---------------------------------------------------------------------------
 */
#ifndef IX_DAEMON_METRICS_H
#define IX_DAEMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/reject.h"
#include "stream/producer.h"

typedef struct metrics metrics_t;
typedef struct metrics_counter metrics_counter_t;
typedef struct metrics_gauge metrics_gauge_t;
typedef struct metrics_histogram metrics_histogram_t;
typedef struct metrics_info metrics_info_t;

#define METRICS_MAX_LABELS 4    /* label pairs per series */
#define METRICS_MAX_BUCKETS 32  /* finite bucket bounds per histogram (+Inf is implicit) */

/* Growable text buffer. Zero-initialise; free with metrics_buf_free(). */
typedef struct {
  char *data;  /* NUL-terminated when len > 0 */
  size_t len, cap;
} metrics_buf_t;
void metrics_buf_free(metrics_buf_t *buf);

/* Create an empty registry. Returns 0 or IX_ENOMEM. Free with metrics_destroy(). */
int metrics_new(metrics_t **out);
/* Frees the registry and every series in it. Accepts NULL. */
void metrics_destroy(metrics_t *reg);

/* Registration. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; help is one line.
 * The variadic tail is label (name, value) pairs terminated by NULL, e.g.
 *   metrics_counter_new(reg, &c, "interestd_events_rejected_total",
 *                       "Messages not applied, by reason.", "reason", "not_map", NULL);
 * Registering the same name again with different label values adds a series
 * to the same family (HELP/TYPE rendered once); the type, help and label
 * names must match. Registering an existing (name, labels) returns the
 * existing series. Label values are copied and escaped on output.
 * Returns 0, IX_EINVAL (bad name/label, type or label-name mismatch,
 * too many labels or buckets, unsorted buckets) or IX_ENOMEM. */
int metrics_counter_new(metrics_t *reg, metrics_counter_t **out, const char *name,
                        const char *help, ...) __attribute__((sentinel));
int metrics_gauge_new(metrics_t *reg, metrics_gauge_t **out, const char *name,
                      const char *help, ...) __attribute__((sentinel));
/* bounds: nbounds strictly increasing finite upper bounds (copied); the
 * +Inf bucket is added implicitly. All series of one family must have the
 * same bounds. */
int metrics_histogram_new(metrics_t *reg, metrics_histogram_t **out, const char *name,
                          const char *help, const double *bounds, size_t nbounds, ...)
    __attribute__((sentinel));
/* Info-style gauge: renders `name{labels} 1`; labels are set (and replaced,
 * e.g. after a model reload) with metrics_info_set(). Renders no sample until
 * the first set. One series per info family: a second metrics_info_new() of
 * the same name returns IX_EEXIST. */
int metrics_info_new(metrics_t *reg, metrics_info_t **out, const char *name,
                     const char *help);
/* Replace the info's labels: (name, value) pairs terminated by NULL.
 * Allocates; not for the hot path. Returns 0, IX_EINVAL or IX_ENOMEM (the
 * previous labels are kept on failure). */
int metrics_info_set(metrics_info_t *info, ...) __attribute__((sentinel));

/* Remove one gauge series (e.g. consumer lag of a revoked partition) and free
 * it; the pointer is invalid afterwards. The family stays (HELP/TYPE still
 * rendered). Accepts NULL. */
void metrics_gauge_delete(metrics_t *reg, metrics_gauge_t *g);

/* Hot path: loop thread only, no locks, no allocation. */
void metrics_counter_inc(metrics_counter_t *c);
void metrics_counter_add(metrics_counter_t *c, uint64_t n);
/* For mirroring a monotonic total kept elsewhere (e.g. store_stats_t's
 * evicted_lru); the value must never go down. */
void metrics_counter_set(metrics_counter_t *c, uint64_t v);
void metrics_gauge_set(metrics_gauge_t *g, double v);
void metrics_gauge_add(metrics_gauge_t *g, double delta);
double metrics_gauge_get(const metrics_gauge_t *g);
/* Counts v in the first bucket whose bound is >= v (Prometheus "le");
 * NaN is ignored (it would poison _sum). */
void metrics_histogram_observe(metrics_histogram_t *h, double v);
/* Observation count and sum so far. */
uint64_t metrics_histogram_count(const metrics_histogram_t *h);
double metrics_histogram_sum(const metrics_histogram_t *h);
/* Non-cumulative count of bucket i (0..nbounds; nbounds is the +Inf bucket). */
uint64_t metrics_histogram_bucket(const metrics_histogram_t *h, size_t i);

/* Collect hooks run at the start of every metrics_render(), in registration
 * order, on the rendering (loop) thread: the place to refresh gauges that are
 * cheaper to read on demand (users in state, lag, checkpoint age).
 * At most 16 hooks. Returns 0, IX_EFULL or IX_EINVAL. */
typedef void (*metrics_collect_fn)(void *arg, metrics_t *reg);
int metrics_on_collect(metrics_t *reg, metrics_collect_fn fn, void *arg);

/* Render every family (registration order; series in registration order)
 * in Prometheus text format 0.0.4, replacing buf's contents. Runs the
 * collect hooks first. Returns 0 or IX_ENOMEM. */
int metrics_render(metrics_t *reg, metrics_buf_t *buf);

/* Standard bucket bounds (seconds or events). */
extern const double metrics_buckets_latency[];   /* 0.5 ms .. 10 s */
extern const size_t metrics_buckets_latency_n;
extern const double metrics_buckets_step[];      /* 5 us .. 0.5 s */
extern const size_t metrics_buckets_step_n;
extern const double metrics_buckets_batch[];     /* 1 .. 4096 events, powers of 2 */
extern const size_t metrics_buckets_batch_n;
extern const double metrics_buckets_checkpoint[];/* 10 ms .. 10 min */
extern const size_t metrics_buckets_checkpoint_n;
extern const double metrics_buckets_stall[];     /* 50 us .. 10 s */
extern const size_t metrics_buckets_stall_n;

/* ---- interestd's own metric set (the table above) ---------------------- */

/* Borrowed pointers into the registry; valid until metrics_destroy(). */
typedef struct {
  metrics_t *reg;
  metrics_counter_t *events_consumed;
  metrics_counter_t *events_processed;
  metrics_counter_t *events_rejected[IX_REJECT_REASONS]; /* by ix_reject_index() */
  metrics_counter_t *predictions_produced;
  metrics_counter_t *predictions_delivered;
  metrics_counter_t *predictions_failed;
  /* produce failures (delivery reports and local refusals) by class, and
   * messages given up on (permanent failure) by kind and class; kind 0 =
   * prediction, 1 = dead-letter record */
  metrics_counter_t *produce_failures[PRODUCER_FAIL_N];
  metrics_counter_t *messages_dropped[2][PRODUCER_FAIL_N];
  metrics_counter_t *dead_letters_truncated;
  metrics_gauge_t *consumer_paused;
  metrics_gauge_t *retry_backlog;
  metrics_counter_t *commit_failures;
  metrics_counter_t *checkpoints_refused;
  metrics_counter_t *checkpoints_skipped;
  metrics_counter_t *skipped_by_retention;
  metrics_counter_t *rebalances[3]; /* by consumer_event_t: assign, revoke, lost */
  metrics_info_t *last_rebalance;
  metrics_histogram_t *batch_size;
  metrics_histogram_t *step_seconds;
  metrics_histogram_t *event_to_prediction_seconds;
  metrics_gauge_t *partitions_assigned;
  metrics_gauge_t *users_in_state;
  metrics_gauge_t *state_bytes;
  metrics_gauge_t *state_pool_bytes;
  metrics_counter_t *state_chunks_pool;
  metrics_counter_t *state_chunks_fresh;
  metrics_counter_t *state_memory_failures;
  metrics_counter_t *evictions_lru;
  metrics_counter_t *evictions_ttl;
  metrics_histogram_t *checkpoint_seconds;
  metrics_counter_t *checkpoint_failures;
  metrics_gauge_t *checkpoint_age_seconds;
  metrics_info_t *build_info;
  metrics_info_t *model_info;
  /* private: CLOCK_MONOTONIC ns of the last successful checkpoint (or of
   * registration), read by the collect hook that sets checkpoint_age_seconds */
  uint64_t checkpoint_last_ok_ns;
} metrics_daemon_t;

/* Register the whole table above into reg (build_info gets version=
 * `version`), fill *md and install a collect hook that refreshes
 * checkpoint_age_seconds; *md must therefore stay at the same address until
 * metrics_destroy(reg). Lag gauges are per partition: see
 * metrics_daemon_lag(). Returns 0, IX_EINVAL or IX_ENOMEM. */
int metrics_daemon_register(metrics_t *reg, const char *version, metrics_daemon_t *md);
/* A checkpoint finished: observes its duration and, when ok, restarts the
 * age clock; otherwise counts a failure. */
void metrics_daemon_checkpoint_done(metrics_daemon_t *md, double seconds, int ok);
/* The Redis sink's families (the table above); borrowed pointers into the
 * registry, valid until metrics_destroy(). */
typedef struct {
  metrics_counter_t *written, *stale, *failed;
  metrics_gauge_t *backlog, *up;
  metrics_histogram_t *seconds;
} metrics_redis_t;

/* Registers the Redis sink's families (the table above) into reg and fills *rm. Returns
 * 0, IX_EINVAL or IX_ENOMEM. */
int metrics_redis_register(metrics_t *reg, metrics_redis_t *rm);

/* The changelog's families (the table above; registered when a changelog is
 * on). from and users_from are indexed by source: 0 cold, 1 local, 2
 * changelog, 3 local+changelog (a local checkpoint and the changelog's tail), 4 standby
 * (a standby copy and the changelog's tail), named by metrics_state_source_label[]. Borrowed pointers into
 * the registry, valid until metrics_destroy(). */
typedef struct {
  metrics_counter_t *from[5], *users_from[5], *bytes_read, *records_written, *produce_failures,
      *skipped, *restore_failures;
  metrics_gauge_t *waiting; /* partitions owned whose restore read failed (not served) */
  metrics_histogram_t *restore_seconds;
  metrics_histogram_t *encode_seconds[2]; /* mode: 0 slices, 1 at_once */
} metrics_changelog_t;
extern const char *const metrics_state_source_label[5];

/* Registers the changelog's families into reg and fills *cm. Returns 0,
 * IX_EINVAL or IX_ENOMEM. */
int metrics_changelog_register(metrics_t *reg, metrics_changelog_t *cm);

/* The event loop's families (the table above; registered by daemon/loopstat.c,
 * which updates them). Borrowed pointers into the registry. */
typedef struct {
  metrics_histogram_t *busy_seconds;
  metrics_gauge_t *stall_max, *stall_recent;
} metrics_loop_t;
/* Returns 0, IX_EINVAL or IX_ENOMEM. */
int metrics_loop_register(metrics_t *reg, metrics_loop_t *lm);

/* The standby replicas' families (the table above; registered when
 * state.standby_replicas > 0). Borrowed pointers into the registry. */
typedef struct {
  metrics_gauge_t *partitions, *users, *bytes;
  metrics_gauge_t *rule[2];                 /* [0] assignment, [1] membership */
  metrics_counter_t *describes_ok, *describes_failed;
} metrics_standby_t;
/* Returns 0, IX_EINVAL or IX_ENOMEM. */
int metrics_standby_register(metrics_t *reg, metrics_standby_t *sm);
/* interestd_standby_lag_records{partition="p"}, registered on first use;
 * NULL on ENOMEM. Remove it with metrics_gauge_delete(reg, g). */
metrics_gauge_t *metrics_standby_lag(metrics_t *reg, int32_t partition);

/* Set model_info's labels: fingerprint as 8 lowercase hex digits. */
int metrics_daemon_set_model(metrics_daemon_t *md, uint32_t fingerprint,
                             const char *description);
/* The interestd_consumer_lag_messages{partition="p"} gauge, registered on
 * first use (allocates then; call on assignment, not per event). Returns NULL
 * on ENOMEM. Remove it on revocation with metrics_gauge_delete(md->reg, g). */
metrics_gauge_t *metrics_daemon_lag(metrics_daemon_t *md, int32_t partition);
/* The interestd_committed_offset{partition="p"} gauge, the same way. */
metrics_gauge_t *metrics_daemon_committed(metrics_daemon_t *md, int32_t partition);

#endif
