/* The loop's stall tracker (daemon/loopstat.h) on a real libuv loop: a
 * callback that keeps the loop thread busy for a measured time is counted
 * as one turn at least that long, the loop's wait for a timer is not; the
 * metrics render it in seconds; the recent maximum forgets a turn after a
 * minute, the maximum since start does not. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "daemon/loopstat.h"
#include "daemon/metrics.h"

#define BUSY_NS 40000000ull  /* the busy callback: 40 ms */
#define WAIT_MS 400          /* the loop waits this long for it */

typedef struct {
  uint64_t busy_ns; /* measured around the busy loop */
} busy_t;

static void busy_cb(uv_timer_t *t) {
  busy_t *b = t->data;
  uint64_t t0 = ix_mono_ns();
  while (ix_mono_ns() - t0 < BUSY_NS) {
  }
  b->busy_ns = ix_mono_ns() - t0;
}

/* the value of an unlabelled sample `name` in the rendered text */
static double sample(const char *text, const char *name) {
  char want[128];
  snprintf(want, sizeof want, "\n%s ", name);
  const char *at = strstr(text, want);
  if (!at) fail_msg("no sample %s in\n%s", name, text);
  return strtod(at + strlen(want), NULL);
}

static void test_loopstat_counts_a_busy_callback_and_not_the_wait(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  metrics_t *reg;
  assert_int_equal(metrics_new(&reg), 0);
  loopstat_t *ls;
  assert_int_equal(loopstat_start(&loop, reg, &ls), 0);
  busy_t b = {0};
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &b;
  uv_timer_start(&t, busy_cb, WAIT_MS, 0);
  uv_run(&loop, UV_RUN_DEFAULT); /* the timer fires once; the tracker holds no loop */
  loopstat_stats_t s;
  loopstat_get(ls, ix_mono_ns(), &s);
  printf("busy callback %.3f ms after a %d ms wait: %llu turns, longest %.3f ms, recent %.3f ms\n",
         (double)b.busy_ns / 1e6, WAIT_MS, (unsigned long long)s.turns, (double)s.max_ns / 1e6,
         (double)s.recent_max_ns / 1e6);
  assert_true(b.busy_ns >= BUSY_NS);
  /* the prepare before the wait and the one after the callback bound its turn */
  assert_true(s.turns >= 1);
  if (s.max_ns < b.busy_ns)
    fail_msg("longest turn %llu ns, the callback alone ran %llu ns",
             (unsigned long long)s.max_ns, (unsigned long long)b.busy_ns);
  /* the wait for the timer is idle time, not a stall: counted, the turn
   * would be at least WAIT_MS longer (the margin: a loaded machine's
   * preemption between the callback and the prepare) */
  if (s.max_ns >= b.busy_ns + (uint64_t)(WAIT_MS - 150) * 1000000u)
    fail_msg("longest turn %.3f ms holds the %d ms wait", (double)s.max_ns / 1e6, WAIT_MS);
  assert_int_equal(s.recent_max_ns, s.max_ns);
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_render(reg, &buf), 0);
  double max_s = sample(buf.data, "interestd_loop_stall_max_seconds");
  double recent_s = sample(buf.data, "interestd_loop_stall_recent_max_seconds");
  double count = sample(buf.data, "interestd_loop_busy_seconds_count");
  double sum = sample(buf.data, "interestd_loop_busy_seconds_sum");
  assert_true(max_s * 1e9 >= (double)b.busy_ns * 0.999999);
  assert_true(recent_s == max_s);
  assert_true(count == (double)s.turns);
  assert_true(sum >= max_s);
  /* the turn lands in the bucket of 50 ms (the first bound >= 40 ms) or above */
  char le[96];
  snprintf(le, sizeof le, "\ninterestd_loop_busy_seconds_bucket{le=\"0.025\"} ");
  const char *at = strstr(buf.data, le);
  assert_non_null(at);
  assert_true(strtod(at + strlen(le), NULL) <= count - 1);
  metrics_buf_free(&buf);
  uv_close((uv_handle_t *)&t, NULL);
  loopstat_close(ls);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  metrics_destroy(reg);
}

static void test_loopstat_recent_maximum_forgets_after_a_minute(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  metrics_t *reg;
  assert_int_equal(metrics_new(&reg), 0);
  loopstat_t *ls;
  assert_int_equal(loopstat_start(&loop, reg, &ls), 0);
  const uint64_t s0 = 1000ull * 1000000000ull, ms = 1000000ull, sec = 1000000000ull;
  loopstat_stats_t s;
  loopstat_note(ls, 5 * ms, s0 + 1 * sec);
  loopstat_note(ls, 1 * ms, s0 + 30 * sec);
  loopstat_get(ls, s0 + 31 * sec, &s);
  assert_int_equal(s.max_ns, 5 * ms);
  assert_int_equal(s.recent_max_ns, 5 * ms);
  loopstat_get(ls, s0 + 65 * sec, &s); /* 64 s after the 5 ms turn, 35 s after the 1 ms one */
  assert_int_equal(s.recent_max_ns, 1 * ms);
  assert_int_equal(s.max_ns, 5 * ms);
  loopstat_get(ls, s0 + 95 * sec, &s);
  assert_int_equal(s.recent_max_ns, 0);
  /* the gauge moves with the turns: a turn 70 s on shows the window without the 5 ms one */
  loopstat_note(ls, 2 * ms, s0 + 70 * sec);
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_true(sample(buf.data, "interestd_loop_stall_recent_max_seconds") == 0.002);
  assert_true(sample(buf.data, "interestd_loop_stall_max_seconds") == 0.005);
  assert_true(sample(buf.data, "interestd_loop_busy_seconds_count") == 3);
  metrics_buf_free(&buf);
  assert_int_equal(s.turns, 2);
  loopstat_close(ls);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  metrics_destroy(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loopstat_counts_a_busy_callback_and_not_the_wait),
      cmocka_unit_test(test_loopstat_recent_maximum_forgets_after_a_minute),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
