/* A warm start (model.warm_start): a partition assigned with a checkpoint
 * written by another model (a rolling deploy of a new model, or a restart
 * with the new model after a crash during a SIGHUP warm-up) gets its states
 * rebuilt under the running model from a window of the input topic before
 * it is served, instead of starting cold.
 *
 * It reuses the SIGHUP warm-up (daemon/warmup.h) with a fixed serving
 * position: the window is the same (at most max_events offsets before the
 * position, not below the low watermark, events older than window_ms
 * before the newest one below the position skipped), read by the same
 * group-less reader (stream/reader.h), applied to a pipeline of its own with
 * a copy of the running model; the states then move into the serving store.
 * Synchronous: the loop thread waits (the partitions are not served yet).
 * Loop thread only. */
#ifndef IX_DAEMON_WARMSTART_H
#define IX_DAEMON_WARMSTART_H

#include <stddef.h>
#include <stdint.h>

#include "core/pipeline.h"
#include "daemon/metrics.h"
#include "daemon/warmup.h"
#include "stream/input.h"

/* Warms the states of partitions[0..n) (pipe's store holds none of them)
 * under the model pipe runs, from the window before positions[i] (each the
 * offset the partition will be served from). opts as for warmup_start();
 * opts->ref_ts_ms is raised to the newest Kafka timestamp found just below
 * the positions when opts->window_ms > 0. next_count is the running model's
 * next-category count (the emission memory depends on it). progress(ctx) is
 * called about once a second while it waits (may be NULL). Gives up when
 * nothing is applied for stall_ms. Returns 0 with users[i] (the states now
 * in pipe's store), *applied (events applied) and *window (offsets read)
 * filled, or a negative IX_E*
 * with errstr filled and none of the partitions' states in pipe's store. */
int warmstart_run(const warmup_opts_t *opts, pipeline_t *pipe, const input_t *input,
                  uint32_t next_count, const int32_t *partitions, const int64_t *positions,
                  size_t n, int stall_ms, void (*progress)(void *ctx), void *ctx,
                  uint64_t *users, uint64_t *applied, uint64_t *window, char *errstr, size_t errstr_size);

/* Its metrics (borrowed from the registry), series of the families the
 * changelog's restores use (daemon/metrics.h):
 *   interestd_state_restores_total{source="warm"}        partitions warm-started
 *   interestd_state_restored_users_total{source="warm"}  users they got */
typedef struct {
  metrics_counter_t *restores, *users;
} warmstart_metrics_t;
int warmstart_metrics_register(metrics_t *reg, warmstart_metrics_t *wsm);

#endif
