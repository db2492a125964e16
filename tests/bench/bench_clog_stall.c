/* The loop-thread stall of a changelog checkpoint (docs/PERFORMANCE.md,
 * "Changelog topic"), before vs after in one invocation: USERS changed users
 * (BLOB-byte states, the served size by default) over PARTS partitions, one
 * checkpoint of every partition, driven as the daemon drives it:
 *  - at once (clog_opts_t.slice_us = 0, as exactly_once still runs it and as
 *    every checkpoint ran before): one call starts every partition's
 *    checkpoint and encodes all its users; a pump every 20 ms;
 *  - in slices (slice_us = 500, the daemon's): the same start, then a pump
 *    every 1 ms while clog_busy(), else every 20 ms.
 * Prints the longest single call (the loop cannot serve anything else
 * meanwhile), the time spent in calls, and the time until every partition's
 * completion record is acknowledged. Broker: librdkafka's mock (it keeps
 * about 5 MiB per partition and drops older records: the records are
 * produced and acknowledged, not kept).
 * usage: bench_clog_stall [USERS (100000)] [PARTS (8)] [BLOB (1064)] [ROUNDS (1)] */
#include "../integration/daemon_harness.h"

#include "daemon/clog.h"
#include "daemon/metrics.h"
#include "state/changelog.h"

#define FP 0x57a11u

static int64_t acked_all(void *ctx, int32_t p) {
  (void)ctx, (void)p;
  return INT64_MAX;
}
static int durable_n;
static void durable_cb(void *ctx, int32_t p, int64_t next) {
  (void)ctx, (void)p, (void)next;
  durable_n++;
}

typedef struct {
  double longest_ms, in_calls_ms, wall_s, p99_ms;
  double longest_cpu_ms; /* the calling thread's CPU time: what preemption on a loaded machine does not inflate */
  size_t calls;
  double *ms; /* every call's */
  size_t cap;
} result_t;

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static double cpu0;

static void note_call(result_t *r, double t0) {
  double cms = (cpu_now() - cpu0) * 1e3;
  if (cms > r->longest_cpu_ms) r->longest_cpu_ms = cms;
  double ms = (h_now() - t0) * 1e3;
  if (ms > r->longest_ms) r->longest_ms = ms;
  r->in_calls_ms += ms;
  if (r->calls == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 1024;
    r->ms = realloc(r->ms, r->cap * sizeof *r->ms);
    H_CHECK(r->ms, "realloc");
  }
  r->ms[r->calls++] = ms;
}

static int by_ms(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static result_t run(const char *brokers, const char *input, const char *topic, store_t *st,
                    uint64_t users, int parts, uint32_t slice_us) {
  char err[512];
  metrics_t *m;
  H_CHECK(metrics_new(&m) == 0, "metrics");
  clog_opts_t co = {.brokers = brokers, .topic = topic, .input_topic = input, .metrics = m,
                    .props = (const char *const[]){"linger.ms=5", "queue.buffering.max.kbytes=131072",
                                                   NULL},
                    .slice_us = slice_us};
  clog_t *c;
  H_CHECK(clog_new(&co, &c, err, sizeof err) == 0, "%s", err);
  for (int32_t p = 0; p < parts; p++) clog_start_cold(c, p);
  for (uint64_t u = 0; u < users; u++) clog_applied(c, (int32_t)(u % (uint64_t)parts), u, (int64_t)(u / (uint64_t)parts));
  result_t r = {0};
  durable_n = 0;
  double t0 = h_now();
  /* the daemon's ckpt timer: every partition in one callback */
  double tc = h_now();
  cpu0 = cpu_now();
  for (int32_t p = 0; p < parts; p++)
    H_CHECK(clog_checkpoint(c, p, st, FP, (int64_t)(users / (uint64_t)parts) + 1) == 0,
            "clog_checkpoint");
  note_call(&r, tc);
  while (durable_n < parts) {
    int busy = clog_busy(c);
    usleep(busy ? 1000 : 20000);
    tc = h_now();
    cpu0 = cpu_now();
    clog_pump(c, st, FP, acked_all, durable_cb, NULL);
    note_call(&r, tc);
    H_CHECK(h_now() - t0 < 600, "not durable after 600 s (%d of %d partitions)", durable_n, parts);
  }
  r.wall_s = h_now() - t0;
  qsort(r.ms, r.calls, sizeof *r.ms, by_ms);
  r.p99_ms = r.ms[(size_t)((double)(r.calls - 1) * 0.99)];
  free(r.ms);
  r.ms = NULL;
  clog_destroy(c, 1000);
  metrics_destroy(m);
  return r;
}

int main(int argc, char **argv) {
  uint64_t users = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
  int parts = argc > 2 ? atoi(argv[2]) : 8;
  size_t blob = argc > 3 ? strtoul(argv[3], NULL, 10) : 1064;
  int rounds = argc > 4 ? atoi(argv[4]) : 1;
  h_init("bench_clog_stall");
  char err[512];
  mockbroker_t *mb;
  H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
  const char *brokers = mockbroker_bootstraps(mb);
  H_CHECK(mockbroker_create_topic(mb, "input", parts, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "state", parts, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {.blob_size = blob};
  store_t *st;
  H_CHECK(store_new(&so, &st) == 0, "store");
  uint8_t *b = calloc(1, blob);
  for (uint64_t u = 0; u < users; u++) {
    memcpy(b, &u, sizeof u < blob ? sizeof u : blob);
    H_CHECK(store_put(st, (int32_t)(u % (uint64_t)parts), u, 1, b) == 0, "store_put");
  }
  free(b);
  printf("bench_clog_stall: %" PRIu64 " changed users, %d partitions, %zu-byte states, %d "
         "round(s), load %s", users, parts, blob, rounds, "");
  FILE *la = fopen("/proc/loadavg", "r");
  char lbuf[64] = "?";
  if (la && fgets(lbuf, sizeof lbuf, la)) printf("%s", lbuf);
  else printf("?\n");
  if (la) fclose(la);
  for (int round = 1; round <= rounds; round++) {
    /* alternate which goes first */
    result_t a, s;
    if (round % 2) {
      a = run(brokers, "input", "state", st, users, parts, 0);
      s = run(brokers, "input", "state", st, users, parts, 500);
    } else {
      s = run(brokers, "input", "state", st, users, parts, 500);
      a = run(brokers, "input", "state", st, users, parts, 0);
    }
    printf("round %d: at once: longest call %.1f ms (CPU %.1f ms), %.0f ms in %zu calls, durable "
           "after %.2f s\n", round, a.longest_ms, a.longest_cpu_ms, a.in_calls_ms, a.calls,
           a.wall_s);
    printf("round %d: in slices: longest call %.2f ms (CPU %.2f ms; p99 of calls %.2f ms), %.0f ms "
           "in %zu calls, durable after %.2f s\n", round, s.longest_ms, s.longest_cpu_ms,
           s.p99_ms, s.in_calls_ms, s.calls, s.wall_s);
    printf("round %d: longest stall at once / in slices: %.0fx wall, %.0fx CPU\n", round,
           a.longest_ms / s.longest_ms, a.longest_cpu_ms / s.longest_cpu_ms);
  }
  store_destroy(st);
  mockbroker_destroy(mb);
  return 0;
}
