/* What the loop stall tracker (daemon/loopstat.h) costs per turn of a
 * libuv loop, with and without it, alternating in one invocation:
 *  1. busy turns: an idle handle keeps the loop turning without waiting
 *     (ns per turn: the prepare callback's clock reads and histogram);
 *  2. turns that wait: a thread and the loop ping-pong one byte through two
 *     pipes, so every turn blocks in epoll_wait until the thread writes (with
 *     the tracker libuv polls once without waiting first, UV_METRICS_IDLE_TIME):
 *     ns per round trip.
 * usage: bench_loopstat [TURNS (2000000)] [ROUND_TRIPS (100000)] [ROUNDS (5)] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "common/clock.h"
#include "daemon/loopstat.h"
#include "daemon/metrics.h"

static uint64_t turns_left;

static void idle_cb(uv_idle_t *h) {
  if (--turns_left == 0) uv_idle_stop(h);
}

static double busy_turns(uint64_t n, int tracked) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  metrics_t *m;
  metrics_new(&m);
  loopstat_t *ls = NULL;
  if (tracked && loopstat_start(&loop, m, &ls)) abort();
  uv_idle_t idle;
  uv_idle_init(&loop, &idle);
  turns_left = n;
  uint64_t t0 = ix_mono_ns();
  uv_idle_start(&idle, idle_cb);
  uv_run(&loop, UV_RUN_DEFAULT);
  double ns = (double)(ix_mono_ns() - t0) / (double)n;
  uv_close((uv_handle_t *)&idle, NULL);
  loopstat_close(ls);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop)) abort();
  metrics_destroy(m);
  return ns;
}

typedef struct {
  int to_loop[2], to_thread[2];
  uint64_t n;
  uv_poll_t poll;
  uint64_t got;
} pingpong_t;

static void *thread_main(void *arg) {
  pingpong_t *pp = arg;
  char b = 1;
  for (uint64_t i = 0; i < pp->n; i++) {
    if (write(pp->to_loop[1], &b, 1) != 1 || read(pp->to_thread[0], &b, 1) != 1) abort();
  }
  return NULL;
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  (void)status, (void)events;
  pingpong_t *pp = h->data;
  char b;
  if (read(pp->to_loop[0], &b, 1) != 1) return;
  if (++pp->got == pp->n) uv_poll_stop(h);
  if (write(pp->to_thread[1], &b, 1) != 1) abort();
}

static double waiting_turns(uint64_t n, int tracked) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  metrics_t *m;
  metrics_new(&m);
  loopstat_t *ls = NULL;
  if (tracked && loopstat_start(&loop, m, &ls)) abort();
  pingpong_t pp = {.n = n};
  if (pipe(pp.to_loop) || pipe(pp.to_thread)) abort();
  uv_poll_init(&loop, &pp.poll, pp.to_loop[0]);
  pp.poll.data = &pp;
  uv_poll_start(&pp.poll, UV_READABLE, poll_cb);
  pthread_t th;
  uint64_t t0 = ix_mono_ns();
  pthread_create(&th, NULL, thread_main, &pp);
  uv_run(&loop, UV_RUN_DEFAULT);
  pthread_join(th, NULL);
  double ns = (double)(ix_mono_ns() - t0) / (double)n;
  uv_close((uv_handle_t *)&pp.poll, NULL);
  loopstat_close(ls);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop)) abort();
  for (int i = 0; i < 2; i++) close(pp.to_loop[i]), close(pp.to_thread[i]);
  metrics_destroy(m);
  return ns;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  uint64_t turns = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
  uint64_t trips = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
  int rounds = argc > 3 ? atoi(argv[3]) : 5;
  double b0[64], b1[64], w0[64], w1[64];
  if (rounds > 64) rounds = 64;
  for (int r = 0; r < rounds; r++) {
    int first = r & 1; /* which goes first this round */
    for (int k = 0; k < 2; k++) {
      int tracked = k ^ first;
      double b = busy_turns(turns, tracked), w = waiting_turns(trips, tracked);
      (tracked ? b1 : b0)[r] = b;
      (tracked ? w1 : w0)[r] = w;
    }
    printf("round %d: busy turn %.1f ns without, %.1f ns with the tracker; waiting round trip "
           "%.0f ns without, %.0f ns with\n", r + 1, b0[r], b1[r], w0[r], w1[r]);
  }
  qsort(b0, (size_t)rounds, sizeof *b0, cmp);
  qsort(b1, (size_t)rounds, sizeof *b1, cmp);
  qsort(w0, (size_t)rounds, sizeof *w0, cmp);
  qsort(w1, (size_t)rounds, sizeof *w1, cmp);
  int h = rounds / 2;
  printf("median of %d: busy turn %.1f -> %.1f ns (+%.1f ns); waiting round trip %.0f -> %.0f ns "
         "(+%.0f ns, %.3fx)\n", rounds, b0[h], b1[h], b1[h] - b0[h], w0[h], w1[h], w1[h] - w0[h],
         w1[h] / w0[h]);
  return 0;
}
