/* What metrics cost the loop: hot-path updates (ns per call), rendering the
 * full interestd registry, and a whole GET /metrics served by the loop
 * (round trip over loopback, and the loop's own busy time per scrape).
 *   bench_metrics [iterations=50000000]
 * Figures go to docs/PERFORMANCE.md ("Metrics"). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/http.h"
#include "daemon/metrics.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define SCRAPES 2000

typedef struct {
  int port;
  uv_async_t done;
  http_server_t *srv;
  double rtt_total, rtt_max;
  size_t bytes;
} scrape_t;

static void *scraper(void *arg) {
  scrape_t *sc = arg;
  char *buf = malloc(1 << 20);
  for (int i = 0; i < SCRAPES; i++) {
    double t0 = now_s();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sc->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      perror("connect");
      exit(1);
    }
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n";
    if (send(fd, req, sizeof req - 1, 0) != (ssize_t)(sizeof req - 1)) exit(1);
    size_t len = 0;
    ssize_t n;
    while ((n = recv(fd, buf + len, (1 << 20) - len, 0)) > 0) len += (size_t)n;
    close(fd);
    double dt = now_s() - t0;
    sc->rtt_total += dt;
    if (dt > sc->rtt_max) sc->rtt_max = dt;
    sc->bytes = len;
  }
  free(buf);
  uv_async_send(&sc->done);
  return NULL;
}

static void on_done(uv_async_t *a) {
  scrape_t *sc = a->data;
  http_server_close(sc->srv, NULL, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 50000000;
  metrics_t *reg;
  metrics_daemon_t md;
  if (metrics_new(&reg) || metrics_daemon_register(reg, "bench", &md)) return 1;
  for (int p = 0; p < 16; p++) metrics_gauge_set(metrics_daemon_lag(&md, p), p * 100);
  metrics_daemon_set_model(&md, 0x1a2b3c4d, "lstm h=64 vocab=1000");

  /* hot path */
  double t0 = now_s();
  for (long i = 0; i < iters; i++) metrics_counter_inc(md.events_consumed);
  double t_inc = (now_s() - t0) / (double)iters * 1e9;

  t0 = now_s();
  for (long i = 0; i < iters; i++) metrics_counter_add(md.events_rejected[i & 7], 1);
  double t_add = (now_s() - t0) / (double)iters * 1e9;

  t0 = now_s();
  for (long i = 0; i < iters; i++) metrics_gauge_set(md.users_in_state, (double)i);
  double t_gauge = (now_s() - t0) / (double)iters * 1e9;

  /* latencies spread over the whole bucket range (0.1 ms .. 20 s, log-uniform) */
  enum { NV = 4096 };
  static double vals[NV];
  srand(1);
  for (int i = 0; i < NV; i++) vals[i] = 1e-4 * __builtin_pow(2e5, rand() / (double)RAND_MAX);
  t0 = now_s();
  for (long i = 0; i < iters; i++)
    metrics_histogram_observe(md.event_to_prediction_seconds, vals[i & (NV - 1)]);
  double t_obs = (now_s() - t0) / (double)iters * 1e9;

  /* small values land in the first buckets: the best case of the linear scan */
  t0 = now_s();
  for (long i = 0; i < iters; i++) metrics_histogram_observe(md.batch_size, 1);
  double t_obs_first = (now_s() - t0) / (double)iters * 1e9;

  /* rendering the full registry */
  metrics_buf_t buf = {0};
  int renders = 20000;
  metrics_render(reg, &buf); /* warm: the buffer has grown */
  t0 = now_s();
  for (int i = 0; i < renders; i++) metrics_render(reg, &buf);
  double t_render = (now_s() - t0) / renders * 1e6;
  size_t lines = 0, series = 0;
  for (size_t i = 0; i < buf.len; i++) {
    if (buf.data[i] != '\n') continue;
    lines++;
    if (i + 1 < buf.len && buf.data[i + 1] != '#') series++;
  }

  /* scrapes served by the loop */
  uv_loop_t loop;
  uv_loop_init(&loop);
  scrape_t sc = {0};
  char err[256];
  if (http_server_start(&loop, NULL, reg, NULL, NULL, &sc.srv, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  sc.port = http_server_port(sc.srv);
  uv_async_init(&loop, &sc.done, on_done);
  sc.done.data = &sc;
  pthread_t th;
  pthread_create(&th, NULL, scraper, &sc);
  struct timespec cpu0, cpu1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
  double wall0 = now_s();
  uv_run(&loop, UV_RUN_DEFAULT);
  double wall = now_s() - wall0;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
  pthread_join(th, NULL);
  double loop_cpu = (double)(cpu1.tv_sec - cpu0.tv_sec) + (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;
  int closed = uv_loop_close(&loop);

  printf("metrics hot path (%ld iterations, one thread):\n", iters);
  printf("  counter_inc                 %6.2f ns\n", t_inc);
  printf("  counter_add (8 series)      %6.2f ns\n", t_add);
  printf("  gauge_set                   %6.2f ns\n", t_gauge);
  printf("  histogram_observe (14 b.)   %6.2f ns  (log-uniform 0.1 ms..20 s)\n", t_obs);
  printf("  histogram_observe (1st b.)  %6.2f ns\n", t_obs_first);
  printf("render full registry: %.1f us, %zu bytes, %zu lines, %zu samples\n", t_render,
         buf.len, lines, series);
  printf("GET /metrics x %d over loopback: mean round trip %.1f us, max %.1f us, %zu bytes\n",
         SCRAPES, sc.rtt_total / SCRAPES * 1e6, sc.rtt_max * 1e6, sc.bytes);
  printf("  loop thread CPU per scrape: %.1f us (%.1f%% of %.2f s wall)\n",
         loop_cpu / SCRAPES * 1e6, loop_cpu / wall * 100, wall);
  printf("  at one scrape per 15 s the loop spends %.4f%% of its time on metrics\n",
         loop_cpu / SCRAPES / 15 * 100);
  metrics_buf_free(&buf);
  metrics_destroy(reg);
  return closed == 0 ? 0 : 1;
}
