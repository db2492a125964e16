/* The event loop's stalls: how long each turn of the libuv loop ran
 * callbacks. While a turn runs, an event that arrives waits for the next
 * one, so the longest turn is the loop's longest stall (a changelog
 * checkpoint encoded at once, a restore on assignment, a revocation).
 * Exported as interestd_loop_busy_seconds (histogram),
 * interestd_loop_stall_max_seconds and interestd_loop_stall_recent_max_seconds
 * (docs/OPERATIONS.md, "Metrics"). Loop thread only. */
#ifndef IX_DAEMON_LOOPSTAT_H
#define IX_DAEMON_LOOPSTAT_H

#include <stdint.h>
#include <uv.h>

#include "daemon/metrics.h"

typedef struct loopstat loopstat_t;

/* Registers the loop's families into reg (metrics_loop_register) and starts
 * measuring loop's turns: a prepare handle, which runs right before the loop
 * waits for I/O, takes the time since the previous one minus the time the
 * loop waited (libuv's idle-time metric, switched on here with
 * UV_METRICS_IDLE_TIME). The handle is unreferenced (it keeps no loop
 * running). Returns 0, IX_EINVAL, IX_ENOMEM or IX_ESYS. Stop with
 * loopstat_close(); reg must outlive it. */
int loopstat_start(uv_loop_t *loop, metrics_t *reg, loopstat_t **out);
/* Stops measuring and closes the handle; the tracker is freed in its close
 * callback (the loop must run once more). Accepts NULL. */
void loopstat_close(loopstat_t *ls);

/* One turn that ran callbacks for busy_ns and ended at now_ns
 * (CLOCK_MONOTONIC): what each turn records; public for tests. */
void loopstat_note(loopstat_t *ls, uint64_t busy_ns, uint64_t now_ns);

typedef struct {
  uint64_t turns;         /* turns measured */
  uint64_t max_ns;        /* the longest, since the start */
  uint64_t recent_max_ns; /* the longest that ended in the last 60 s (50-60 s: 10 s steps) */
  uint64_t last_ns;       /* the last one */
} loopstat_stats_t;
/* The figures as of now_ns (CLOCK_MONOTONIC). */
void loopstat_get(const loopstat_t *ls, uint64_t now_ns, loopstat_stats_t *out);

#endif
