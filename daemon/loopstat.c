/* The loop's turns, timed: a prepare handle runs right before each wait for
 * I/O; the time since the previous one, less the time the loop waited in
 * between (uv_metrics_idle_time), is how long that turn ran callbacks. Two
 * clock reads and a histogram bucket per turn. */
#include "daemon/loopstat.h"

#include <stdlib.h>

#include "common/err.h"

/* the recent maximum: the longest turn of each 10 s step, over 6 steps */
#define STEP_NS 10000000000ull
#define STEPS 6

struct loopstat {
  uv_prepare_t prep;
  metrics_loop_t m;
  uint64_t last_ns, last_idle; /* at the previous prepare; last_ns 0: none yet */
  uint64_t turns, max_ns, last_busy_ns;
  uint64_t step_id[STEPS], step_max[STEPS];
  uint64_t cur_id, recent_ns; /* the step of the last turn; the recent maximum as of it */
};

/* the longest turn of the steps in the window ending with step id */
static uint64_t recent_of(const loopstat_t *ls, uint64_t id) {
  uint64_t recent = 0;
  for (unsigned i = 0; i < STEPS; i++)
    if (ls->step_id[i] + STEPS > id && ls->step_id[i] <= id && ls->step_max[i] > recent)
      recent = ls->step_max[i];
  return recent;
}

void loopstat_note(loopstat_t *ls, uint64_t busy_ns, uint64_t now_ns) {
  ls->turns++;
  ls->last_busy_ns = busy_ns;
  if (busy_ns > ls->max_ns) {
    ls->max_ns = busy_ns;
    metrics_gauge_set(ls->m.stall_max, (double)busy_ns / 1e9);
  }
  uint64_t id = now_ns / STEP_NS;
  unsigned i = (unsigned)(id % STEPS);
  if (ls->step_id[i] != id) {
    ls->step_id[i] = id;
    ls->step_max[i] = 0;
  }
  if (busy_ns > ls->step_max[i]) ls->step_max[i] = busy_ns;
  /* the window moves once per step; within one it only grows */
  uint64_t recent = id != ls->cur_id ? recent_of(ls, id) : ls->recent_ns;
  if (busy_ns > recent) recent = busy_ns;
  if (id != ls->cur_id || recent != ls->recent_ns)
    metrics_gauge_set(ls->m.stall_recent, (double)recent / 1e9);
  ls->cur_id = id;
  ls->recent_ns = recent;
  metrics_histogram_observe(ls->m.busy_seconds, (double)busy_ns / 1e9);
}

void loopstat_get(const loopstat_t *ls, uint64_t now_ns, loopstat_stats_t *out) {
  *out = (loopstat_stats_t){.turns = ls->turns, .max_ns = ls->max_ns,
                            .recent_max_ns = recent_of(ls, now_ns / STEP_NS),
                            .last_ns = ls->last_busy_ns};
}

static void on_prepare(uv_prepare_t *h) {
  loopstat_t *ls = h->data;
  uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(h->loop);
  if (ls->last_ns) {
    uint64_t span = now - ls->last_ns, waited = idle - ls->last_idle;
    loopstat_note(ls, span > waited ? span - waited : 0, now);
  }
  ls->last_ns = now;
  ls->last_idle = idle;
}

int loopstat_start(uv_loop_t *loop, metrics_t *reg, loopstat_t **out) {
  *out = NULL;
  loopstat_t *ls = calloc(1, sizeof *ls);
  if (!ls) return IX_ENOMEM;
  int rc = metrics_loop_register(reg, &ls->m);
  if (rc) {
    free(ls);
    return rc;
  }
  if (uv_loop_configure(loop, UV_METRICS_IDLE_TIME) || uv_prepare_init(loop, &ls->prep)) {
    free(ls);
    return IX_ESYS;
  }
  ls->prep.data = ls;
  uv_prepare_start(&ls->prep, on_prepare);
  uv_unref((uv_handle_t *)&ls->prep);
  *out = ls;
  return 0;
}

static void on_closed(uv_handle_t *h) { free(h->data); }

void loopstat_close(loopstat_t *ls) {
  if (!ls || uv_is_closing((uv_handle_t *)&ls->prep)) return;
  uv_close((uv_handle_t *)&ls->prep, on_closed);
}
