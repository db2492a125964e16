/* The loop stall of a changelog checkpoint, as the daemon's metrics show it
 * (daemon/loopstat.h, interestd_changelog_encode_seconds in daemon/clog.c),
 * on librdkafka's mock cluster without a daemon: a libuv loop with the
 * stall tracker, the changelog writer on it, USERS changed users of 1064
 * bytes (the served state size).
 *  1. encoded at once (slice_us 0: every user in one call, as at
 *     revocation): one timer callback calls clog_checkpoint and measures
 *     it; the loop's longest turn must be at least that long, and the
 *     at_once histogram must hold exactly that call (its sum within it);
 *  2. in slices (the daemon's 0.5 ms), pumped by a 1 ms timer as the daemon
 *     does: many slices counted, none at once; the longest slice and turn
 *     are printed beside the at-once figure;
 *  3. at revocation (clog_checkpoint_now with the sliced writer): encoded
 *     at once, counted as such, and the loop's longest turn holds it. */
#include "daemon_harness.h"

#include <math.h>
#include <uv.h>

#include "common/clock.h"
#include "daemon/clog.h"
#include "daemon/loopstat.h"
#include "daemon/metrics.h"

#define FP 0x5a11ed00u
#define P 0
#define USERS 60000
#define BLOB 1064

typedef struct {
  clog_t *c;
  store_t *st;
  loopstat_t *ls;
  int64_t at;          /* the checkpoint's offset (every event before it applied) */
  uint64_t call_ns;    /* the measured clog_checkpoint / clog_checkpoint_now call */
  int rc;
  size_t pumps;
  int durable;
  uv_timer_t start, pump;
} run_t;

static int64_t acked_cb(void *ctx, int32_t p) {
  run_t *r = ctx;
  return p == P ? r->at : -1;
}
static void durable_cb(void *ctx, int32_t p, int64_t next) {
  run_t *r = ctx;
  if (p == P && next >= r->at) r->durable = 1;
}

/* every user changed once more, at offsets from r->at on; r->at moves past them */
static void change_all(run_t *r) {
  for (uint64_t u = 0; u < USERS; u++, r->at++) {
    int created = 0;
    uint8_t *b = store_get(r->st, P, u, r->at, 1, &created);
    H_CHECK(b, "store_get");
    memset(b, (int)(u + (uint64_t)r->at) & 0xff, BLOB);
    clog_applied(r->c, P, u, r->at);
  }
}

static void pump_cb(uv_timer_t *t) {
  run_t *r = t->data;
  clog_pump(r->c, r->st, FP, acked_cb, durable_cb, r);
  r->pumps++;
}

static void start_cb(uv_timer_t *t) {
  run_t *r = t->data;
  uint64_t t0 = ix_mono_ns();
  r->rc = clog_checkpoint(r->c, P, r->st, FP, r->at);
  r->call_ns = ix_mono_ns() - t0;
}

static void revoke_cb(uv_timer_t *t) {
  run_t *r = t->data;
  uint64_t t0 = ix_mono_ns();
  r->rc = clog_checkpoint_now(r->c, P, r->st, FP, r->at, acked_cb, durable_cb, r,
                              ix_mono_ms() + 60000);
  r->call_ns = ix_mono_ns() - t0;
}

/* the sample `series` (name with its labels) in the rendered text */
static double sample(const char *text, const char *series) {
  char want[320];
  snprintf(want, sizeof want, "\n%s ", series);
  const char *at = strstr(text, want);
  H_CHECK(at, "no sample %s", series);
  return strtod(at + strlen(want), NULL);
}

/* the smallest bucket bound of h (name, label pair) holding all its observations */
static double upper_bound(const char *text, const char *name, const char *label) {
  static const char *const bounds[] = {"5e-05", "0.0001", "0.00025", "0.0005", "0.001",
                                       "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                                       "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"};
  char s[256];
  snprintf(s, sizeof s, "%s_count{%s}", name, label);
  double count = sample(text, s);
  for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
    snprintf(s, sizeof s, "%s_bucket{%s,le=\"%s\"}", name, label, bounds[i]);
    if (sample(text, s) >= count) return i + 1 < sizeof bounds / sizeof bounds[0] ? atof(bounds[i]) : 1e9;
  }
  return 1e9;
}

/* One phase on a fresh loop, writer and registry: USERS changed, then
 * `how` (0 at once, 1 slices, 2 revocation with the sliced writer). */
static void phase(const char *brokers, int how, double *at_once_s) {
  char err[512];
  uv_loop_t loop;
  H_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
  metrics_t *m;
  H_CHECK(metrics_new(&m) == 0, "metrics");
  run_t r = {0};
  H_CHECK(loopstat_start(&loop, m, &r.ls) == 0, "loopstat_start");
  clog_opts_t co = {.brokers = brokers, .topic = "state", .input_topic = "input", .metrics = m,
                    .props = (const char *const[]){"linger.ms=5", NULL},
                    .slice_us = how == 0 ? 0 : 500};
  H_CHECK(clog_new(&co, &r.c, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {.blob_size = BLOB};
  H_CHECK(store_new(&so, &r.st) == 0, "store");
  clog_start_cold(r.c, P);
  change_all(&r);
  uv_timer_init(&loop, &r.start);
  uv_timer_init(&loop, &r.pump);
  r.start.data = r.pump.data = &r;
  uv_update_time(&loop); /* the timers count from now, not from uv_loop_init */
  uv_timer_start(&r.start, how == 2 ? revoke_cb : start_cb, 5, 0);
  uv_timer_start(&r.pump, pump_cb, 1, 1);
  double t0 = h_now();
  while (!r.durable) {
    uv_run(&loop, UV_RUN_ONCE);
    H_CHECK(h_now() - t0 < 120, "checkpoint not durable after 120 s (%zu pumps)", r.pumps);
  }
  H_CHECK(r.rc == 0, "checkpoint call: %s", ix_strerror(r.rc));
  /* the turn that ended with the last callback is counted at the next
   * prepare (the daemon's loop goes on; this one once more: the pump timer
   * keeps it alive) */
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_timer_stop(&r.pump);
  loopstat_stats_t s;
  loopstat_get(r.ls, ix_mono_ns(), &s);
  metrics_buf_t buf = {0};
  H_CHECK(metrics_render(m, &buf) == 0, "render");
  const char *name = "interestd_changelog_encode_seconds";
  double n_once = sample(buf.data, "interestd_changelog_encode_seconds_count{mode=\"at_once\"}");
  double sum_once = sample(buf.data, "interestd_changelog_encode_seconds_sum{mode=\"at_once\"}");
  double n_slices = sample(buf.data, "interestd_changelog_encode_seconds_count{mode=\"slices\"}");
  double loop_max = sample(buf.data, "interestd_loop_stall_max_seconds");
  double call_s = (double)r.call_ns / 1e9;
  static const char *const what[] = {"at once (slice_us 0)", "in slices of 0.5 ms",
                                     "at revocation (clog_checkpoint_now)"};
  printf("%d users %s: call %.1f ms; encode at_once %g calls, %.1f ms; slices %g (longest "
         "<= %g s); loop: %" PRIu64 " turns, longest %.1f ms (metric %.1f ms), %zu pumps\n",
         USERS, what[how], call_s * 1e3, n_once, sum_once * 1e3, n_slices,
         n_slices ? upper_bound(buf.data, name, "mode=\"slices\"") : 0.0, s.turns,
         (double)s.max_ns / 1e6, loop_max * 1e3, r.pumps);
  H_CHECK(fabs(loop_max * 1e9 - (double)s.max_ns) < 1e3, "the gauge says %.6f s, the tracker %"
          PRIu64 " ns", loop_max, s.max_ns);
  if (how == 0 || how == 2) {
    /* one call encoded every user; the turn that ran it is the loop's longest */
    H_CHECK(n_once == 1, "%g at-once encodings, expected 1", n_once);
    H_CHECK(sum_once <= call_s && sum_once > 0, "the at-once encoding took %.6f s inside a call "
            "of %.6f s", sum_once, call_s);
    H_CHECK(loop_max >= call_s, "the loop's longest turn %.6f s is shorter than the "
            "checkpoint call it ran, %.6f s", loop_max, call_s);
    if (how == 0) {
      H_CHECK(sum_once >= 0.5 * call_s, "the at-once encoding took %.6f s of a %.6f s "
              "clog_checkpoint", sum_once, call_s);
      H_CHECK(n_slices == 0, "%g slices with slice_us 0", n_slices);
      *at_once_s = sum_once;
    }
  } else {
    H_CHECK(n_once == 0, "%g at-once encodings in slices", n_once);
    H_CHECK(n_slices >= 10, "%g slices for %d users", n_slices, USERS);
  }
  metrics_buf_free(&buf);
  clog_destroy(r.c, 2000);
  store_destroy(r.st);
  uv_close((uv_handle_t *)&r.start, NULL);
  uv_close((uv_handle_t *)&r.pump, NULL);
  loopstat_close(r.ls);
  uv_run(&loop, UV_RUN_DEFAULT);
  H_CHECK(uv_loop_close(&loop) == 0, "handles left on the loop");
  metrics_destroy(m);
}

int main(void) {
  h_init("test_clog_stall");
  char err[512];
  mockbroker_t *mb;
  H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
  const char *brokers = mockbroker_bootstraps(mb);
  H_CHECK(mockbroker_create_topic(mb, "input", 2, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "state", 2, err, sizeof err) == 0, "%s", err);
  double at_once = 0;
  phase(brokers, 0, &at_once);
  phase(brokers, 1, &at_once);
  phase(brokers, 2, &at_once);
  mockbroker_destroy(mb);
  printf("test_clog_stall: ok\n");
  return h_failed;
}
