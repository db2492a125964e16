/* systemd notifications: the test owns an AF_UNIX datagram socket, points
 * NOTIFY_SOCKET at it and reads back the exact datagrams, including the
 * WATCHDOG=1 pings from the uv timer and their absence while the loop is
 * stuck. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/notify.h"

typedef struct {
  int fd;
  char path[108];
} sock_t;

static void sock_open(sock_t *s) {
  s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(s->fd >= 0);
  snprintf(s->path, sizeof s->path, "/tmp/ix-test-notify-%d.sock", (int)getpid());
  unlink(s->path);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strcpy(a.sun_path, s->path);
  assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 2};
  setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setenv("NOTIFY_SOCKET", s->path, 1);
}

static void sock_close(sock_t *s) {
  close(s->fd);
  unlink(s->path);
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}

/* Next datagram (blocking up to 2 s, or not at all with dontwait); "" if none. */
static const char *next_msg(sock_t *s, int dontwait) {
  static char buf[1024];
  ssize_t n = recv(s->fd, buf, sizeof buf - 1, dontwait ? MSG_DONTWAIT : 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static uint64_t mono_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void test_notify_sends_exact_state_datagrams(void **state) {
  sock_t s;
  sock_open(&s);
  uv_loop_t loop;
  notify_t *n;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(notify_new(&loop, &n), 0);
  assert_int_equal(notify_enabled(n), 1);
  assert_int_equal(notify_watchdog_usec(n), 0);

  assert_int_equal(notify_extend_timeout(n, 30000000), 0);
  assert_string_equal(next_msg(&s, 0), "EXTEND_TIMEOUT_USEC=30000000");
  assert_int_equal(notify_ready(n), 0);
  assert_string_equal(next_msg(&s, 0), "READY=1");
  assert_int_equal(notify_status(n, "consumed %d, users %s\nsecond", 42, "7"), 0);
  assert_string_equal(next_msg(&s, 0), "STATUS=consumed 42, users 7 second");

  uint64_t before = mono_usec();
  assert_int_equal(notify_reloading(n), 0);
  uint64_t after = mono_usec();
  const char *m = next_msg(&s, 0);
  unsigned long long usec = 0;
  assert_int_equal(sscanf(m, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1);
  assert_true(usec >= before && usec <= after);
  assert_int_equal(notify_ready(n), 0);
  assert_string_equal(next_msg(&s, 0), "READY=1");
  assert_int_equal(notify_watchdog(n), 0);
  assert_string_equal(next_msg(&s, 0), "WATCHDOG=1");
  assert_int_equal(notify_stopping(n), 0);
  assert_string_equal(next_msg(&s, 0), "STOPPING=1");
  assert_string_equal(next_msg(&s, 1), ""); /* nothing else was sent */

  /* watchdog_start without WATCHDOG_USEC: no timer, no pings */
  assert_int_equal(notify_watchdog_start(n), 0);
  notify_close(n);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_string_equal(next_msg(&s, 1), "");
  sock_close(&s);
}

/* Driven by the pings themselves (not by wall-clock deadlines), so it holds
 * under valgrind and load: after 3 pings the loop blocks for 7 intervals
 * (no ping may arrive: only the loop sends them), then 2 more must come. */
typedef struct {
  notify_t *n;
  sock_t *s;
  uv_poll_t poll;
  uv_timer_t deadline;
  int pings_before_stuck, pings_while_stuck, pings_after;
  uint64_t first_after_us, last_after_us; /* receipt times of pings after the stall */
  int stuck_done, finished;
} wd_ctx_t;

static void wd_finish(wd_ctx_t *ctx) {
  if (ctx->finished) return;
  ctx->finished = 1;
  notify_close(ctx->n);
  uv_close((uv_handle_t *)&ctx->poll, NULL);
  uv_close((uv_handle_t *)&ctx->deadline, NULL);
}

static int drain_pings(wd_ctx_t *ctx) {
  int count = 0;
  for (;;) {
    const char *m = next_msg(ctx->s, 1);
    if (!*m) return count;
    assert_string_equal(m, "WATCHDOG=1");
    if (ctx->stuck_done) {
      ctx->last_after_us = mono_usec();
      if (!ctx->first_after_us) ctx->first_after_us = ctx->last_after_us;
    }
    count++;
  }
}

static void on_socket_readable(uv_poll_t *p, int status, int events) {
  wd_ctx_t *ctx = p->data;
  if (ctx->finished) return;
  int n = drain_pings(ctx);
  if (!ctx->stuck_done) {
    ctx->pings_before_stuck += n;
    if (ctx->pings_before_stuck < 3) return;
    usleep(150000); /* the loop is stuck for 7 ping intervals */
    ctx->pings_while_stuck = drain_pings(ctx);
    ctx->stuck_done = 1;
    return;
  }
  ctx->pings_after += n;
  if (ctx->pings_after >= 4) wd_finish(ctx);
}

static void on_deadline(uv_timer_t *t) { wd_finish(t->data); }

static void test_notify_watchdog_pings_from_the_loop_at_half_interval(void **state) {
  sock_t s;
  sock_open(&s);
  setenv("WATCHDOG_USEC", "40000", 1); /* 40 ms: ping every 20 ms */
  uv_loop_t loop;
  wd_ctx_t ctx = {.s = &s};
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(notify_new(&loop, &ctx.n), 0);
  assert_int_equal(notify_watchdog_usec(ctx.n), 40000);
  assert_int_equal(notify_watchdog_start(ctx.n), 0);
  assert_int_equal(uv_poll_init(&loop, &ctx.poll, s.fd), 0);
  assert_int_equal(uv_timer_init(&loop, &ctx.deadline), 0);
  ctx.poll.data = ctx.deadline.data = &ctx;
  assert_int_equal(uv_poll_start(&ctx.poll, UV_READABLE, on_socket_readable), 0);
  assert_int_equal(uv_timer_start(&ctx.deadline, on_deadline, 10000, 0), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_true(ctx.pings_before_stuck >= 3);
  /* a stuck loop does not ping */
  assert_int_equal(ctx.pings_while_stuck, 0);
  /* and pings resume once it runs again (within the 10 s deadline) */
  assert_true(ctx.pings_after >= 4);
  /* at WATCHDOG_USEC/2 = 20 ms, not faster: the mean interval over the pings
   * after the stall (receipt times jitter; the mean does not run early) */
  double mean_us = (double)(ctx.last_after_us - ctx.first_after_us) / (ctx.pings_after - 1);
  if (mean_us < 17000) fail_msg("watchdog pings every %.1f ms, want 20", mean_us / 1e3);
  sock_close(&s);
}

static void test_notify_watchdog_for_another_pid_is_ignored(void **state) {
  sock_t s;
  sock_open(&s);
  setenv("WATCHDOG_USEC", "40000", 1);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid() + 1);
  setenv("WATCHDOG_PID", pid, 1);
  uv_loop_t loop;
  notify_t *n;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(notify_new(&loop, &n), 0);
  assert_int_equal(notify_watchdog_usec(n), 0);
  notify_close(n);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  sock_close(&s);
}

static void test_notify_is_a_no_op_without_notify_socket(void **state) {
  unsetenv("NOTIFY_SOCKET");
  setenv("WATCHDOG_USEC", "40000", 1);
  uv_loop_t loop;
  notify_t *n;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(notify_new(&loop, &n), 0);
  assert_int_equal(notify_enabled(n), 0);
  assert_int_equal(notify_watchdog_usec(n), 0);
  assert_int_equal(notify_ready(n), 0);
  assert_int_equal(notify_status(n, "x"), 0);
  assert_int_equal(notify_reloading(n), 0);
  assert_int_equal(notify_stopping(n), 0);
  assert_int_equal(notify_extend_timeout(n, 1), 0);
  assert_int_equal(notify_watchdog_start(n), 0);
  notify_close(n);
  notify_close(NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  unsetenv("WATCHDOG_USEC");
}

static void test_notify_reports_a_missing_socket(void **state) {
  setenv("NOTIFY_SOCKET", "/tmp/ix-test-notify-no-such-socket", 1);
  uv_loop_t loop;
  notify_t *n;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(notify_new(&loop, &n), 0);
  assert_true(notify_ready(n) < 0);
  notify_close(n);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  unsetenv("NOTIFY_SOCKET");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_notify_sends_exact_state_datagrams),
      cmocka_unit_test(test_notify_watchdog_pings_from_the_loop_at_half_interval),
      cmocka_unit_test(test_notify_watchdog_for_another_pid_is_ignored),
      cmocka_unit_test(test_notify_is_a_no_op_without_notify_socket),
      cmocka_unit_test(test_notify_reports_a_missing_socket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
