/* Restore from the changelog topic (docs/PERFORMANCE.md, "Changelog"): fills a
 * changelog topic of PARTS partitions with USERS user records (BLOB-byte
 * states, the served size by default) and one completion record per
 * partition, produced straight from here, then restores every partition the
 * way the daemon does on assignment (clog_assign: a group-less reader per
 * partition, decode, a scratch store, the copy into the serving store), one
 * after another, and checks every restored state equals the one written.
 * Prints users/s and MB/s (key + value bytes read) over the whole restore and
 * the slowest partition. The mock (default) keeps about 5 MiB per partition:
 * choose PARTS >= USERS * (BLOB + 57) / 4.5 MiB. With IX_KAFKA_DIR or
 * IX_KAFKA_BOOTSTRAP the topics are created on that broker instead.
 * BENCH_PRETOUCH=N adds N rounds of three restores of every partition into
 * a new store, after the first restore: on fresh memory, on a slab pool
 * pre-touched before it (the pre-touch timed apart), and again after
 * revoking every partition (the revoked slabs reused); pool_rounds() below.
 * Environment: BENCH_CLOG_NO_PREFETCH=1 (no hint), BENCH_CLOG_PROPS="k=v ..."
 * (the changelog clients' Kafka properties), BENCH_FILL_PROPS="k=v ..." (the
 * fill's producer properties), BENCH_FILL_CLOG=1 (the fill through the
 * daemon's changelog writer: fill_with_clog()), BENCH_READ_ROUNDS=N (the read
 * alone N times), BENCH_PERF_CTL / BENCH_PERF_CTL_READ=FIFO (perf record -D -1
 * --control fifo:FIFO records only the restore / the reads alone).
 * BENCH_PIN=1: pin_broker_apart().
 * usage: bench_changelog_restore [USERS (100000)] [PARTS (32)] [BLOB (1064)] */
#include "../integration/daemon_harness.h"

#include "daemon/clog.h"
#include "daemon/metrics.h"
#include "state/changelog.h"
#include "state/slab_pool.h"
#include "stream/changelog_topic.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FP 0x5eed5eedu

static void fill(uint8_t *b, size_t len, uint64_t u) {
  uint64_t x = u * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (uint8_t)x;
  }
}

static int count_rec(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl) {
  (void)ctx, (void)off, (void)k, (void)kl, (void)v, (void)vl;
  return 0;
}

/* The next thread of this process from d (opendir("/proc/self/task"), may
 * be NULL): its id into *tid and its name (comm, with its newline) into
 * name. Returns 0 when there is none left. */
static int next_thread(DIR *d, pid_t *tid, char *name, size_t size) {
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(name, (int)size, f)) name[0] = 0;
    fclose(f);
    *tid = (pid_t)strtol(e->d_name, NULL, 10);
    return 1;
  }
  return 0;
}

/* CPU seconds of this process's threads whose name starts with `prefix`
 * ("" for all): each thread's CPU-time clock (nanoseconds; the clock id of
 * thread TID is Linux's ((~TID) << 3) | 6, as glibc's pthread_getcpuclockid
 * makes it), the threads found in /proc/self/task/N/comm */
static double threads_cpu(const char *prefix) {
  double t = 0;
  DIR *d = opendir("/proc/self/task");
  pid_t id;
  char name[64];
  while (next_thread(d, &id, name, sizeof name)) {
    if (strncmp(name, prefix, strlen(prefix)) != 0) continue;
    unsigned tid = (unsigned)id;
    struct timespec ts;
    if (clock_gettime((clockid_t)((~tid) << 3) | 6, &ts) == 0)
      t += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  }
  if (d) closedir(d);
  return t;
}

/* BENCH_PIN=1: the broker off the daemon's core, as a remote broker is. The
 * mock's threads (rdk:mock*) go to the last CPU; this thread to CPU 0, so the
 * client's threads and the restore, all created after, run there. With a
 * real broker start it on another CPU (taskset -c 1 tests/kafka/kafka.sh ...).
 * Returns 0, or -1 when there are fewer than two CPUs or a call fails. */
static int pin_broker_apart(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 2) return -1;
  cpu_set_t one, last;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  CPU_ZERO(&last);
  CPU_SET((int)n - 1, &last);
  int rc = 0;
  DIR *d = opendir("/proc/self/task");
  pid_t tid;
  char name[64];
  while (next_thread(d, &tid, name, sizeof name)) {
    if (strncmp(name, "rdk:mock", 8) == 0 && sched_setaffinity(tid, sizeof last, &last) != 0)
      rc = -1;
  }
  if (d) closedir(d);
  if (sched_setaffinity(0, sizeof one, &one) != 0) rc = -1;
  return rc;
}

static double loadavg1(void) {
  double l[1] = {-1};
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l[0]) != 1) l[0] = -1;
    fclose(f);
  }
  return l[0];
}

static double main_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* perf record --control: the FIFO named by env var `name` (perf record -D -1
 * --control fifo:FIFO) is told to enable recording; NULL when the variable
 * is not set. perf_ctl_close() disables it. */
static FILE *perf_ctl_enable(const char *name) {
  const char *path = getenv(name);
  FILE *f = path && *path ? fopen(path, "w") : NULL;
  if (f) {
    fputs("enable\n", f);
    fflush(f);
  }
  return f;
}

static void perf_ctl_close(FILE *f) {
  if (!f) return;
  fputs("disable\n", f);
  fclose(f);
}

static size_t failed;
static void dr(void *ctx, const producer_report_t *r) {
  (void)ctx;
  if (r->err) failed++;
}

/* BENCH_FILL_CLOG=1: the fill through the daemon's changelog writer
 * (daemon/clog.c) instead of a producer of its own: every user of partition p
 * applied at offset 10 into a store, one checkpoint per partition at offset
 * 100, pumped as the daemon's loop pumps it (slices of at most
 * FILL_SLICE_US, the daemon's CLOG_SLICE_US, about every millisecond), so
 * the topic holds the record batches the daemon writes. BENCH_CLOG_PROPS
 * apply (after the writer's own producer settings). */
#define FILL_SLICE_US 500
static int64_t fill_acked(void *ctx, int32_t p) {
  (void)ctx, (void)p;
  return INT64_MAX;
}
static int32_t fill_durable_n;
static void fill_durable(void *ctx, int32_t p, int64_t next) {
  (void)ctx, (void)p;
  if (next == 100) fill_durable_n++;
}
static void fill_with_clog(clog_opts_t co, uint64_t users, int32_t parts, size_t blob) {
  char err[512];
  co.slice_us = FILL_SLICE_US;
  clog_t *c;
  H_CHECK(clog_new(&co, &c, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {.blob_size = blob};
  store_t *st;
  H_CHECK(store_new(&so, &st) == 0, "store");
  for (int32_t p = 0; p < parts; p++) clog_start_cold(c, p);
  for (uint64_t u = 0; u < users; u++) {
    int32_t p = (int32_t)(u % (uint64_t)parts);
    int created = 0;
    uint8_t *b = store_get(st, p, u, 10, 1, &created);
    H_CHECK(b, "store_get");
    fill(b, blob, u);
    clog_applied(c, p, u, 10);
  }
  for (int32_t p = 0; p < parts; p++)
    H_CHECK(clog_checkpoint(c, p, st, FP, 100) == 0, "clog_checkpoint %d", (int)p);
  double t0 = h_now();
  while (fill_durable_n < parts) {
    clog_pump(c, st, FP, fill_acked, fill_durable, NULL);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    H_CHECK(h_now() - t0 < 300, "fill: %d of %d partitions durable after 300 s",
            (int)fill_durable_n, (int)parts);
  }
  clog_destroy(c, 10000);
  store_destroy(st);
}

/* Restores every partition into st as the daemon does on an assignment;
 * returns the seconds. */
static double restore_all(clog_t *c, store_t *st, int32_t parts, int prefetch) {
  char err[512];
  int32_t *all = malloc((size_t)parts * sizeof *all);
  for (int32_t p = 0; p < parts; p++) all[p] = p;
  double t0 = h_now();
  if (prefetch) clog_prefetch(c, all, (size_t)parts);
  for (int32_t p = 0; p < parts; p++) {
    clog_source_t src;
    int64_t next;
    H_CHECK(clog_assign(c, p, st, FP, -1, -1, &src, &next, err, sizeof err) == 0, "%s", err);
    H_CHECK(src == CLOG_FROM_CHANGELOG, "partition %d: source %d", (int)p, (int)src);
  }
  if (prefetch) clog_prefetch(c, NULL, 0);
  double secs = h_now() - t0;
  free(all);
  return secs;
}

/* users whose states differ between a and b (every user u in partition
 * u % parts) */
static uint64_t differ(const store_t *a, const store_t *b, uint64_t users, int32_t parts,
                       size_t blob) {
  uint64_t bad = 0;
  for (uint64_t u = 0; u < users; u++) {
    const void *x = store_peek((store_t *)a, (int32_t)(u % (uint64_t)parts), u);
    const void *y = store_peek((store_t *)b, (int32_t)(u % (uint64_t)parts), u);
    bad += !x || !y || memcmp(x, y, blob) != 0;
  }
  return bad;
}

/* MiB of this process's anonymous memory on transparent huge pages */
static double anon_huge_mib(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  char line[256];
  double kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "AnonHugePages: %lf kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb / 1024;
}

/* What pool_rounds() keeps to the end of main: nothing it maps is freed
 * before, so every fresh restore of a round gets memory that no part of
 * this process freed (as a new process's restore does not: freed memory is
 * populated much faster, docs/PERFORMANCE.md) */
static store_t **pr_stores;
static slab_pool_t **pr_pools;
static int pr_n;

/* BENCH_PRETOUCH=N: N rounds, each three restores of every partition into a
 * new store: (1) on fresh memory; (2) on a slab pool (state/slab_pool.h)
 * that pre-touched `bytes` before the restore began (its time printed
 * apart: a daemon does it in the background from its start); (3) into the
 * same store again after every partition was revoked (store_drop_partition:
 * its slabs go to the pool). Prints users/s, the store's map time and the
 * ratios per round. */
static void pool_rounds(clog_t *c, int32_t parts, size_t blob, uint64_t users, uint64_t bytes,
                        int prefetch, int rounds) {
  pr_stores = calloc((size_t)rounds * 2, sizeof *pr_stores);
  pr_pools = calloc((size_t)rounds, sizeof *pr_pools);
  pr_n = rounds;
  bytes = (bytes + SLAB_POOL_CHUNK - 1) / SLAB_POOL_CHUNK * SLAB_POOL_CHUNK;
  double sum1 = 0, sum2 = 0, sum3 = 0;
  for (int32_t p = 0; p < parts; p++) clog_revoke(c, p);
  for (int r = 0; r < rounds; r++) {
    store_opts_t so = {.blob_size = blob};
    store_stats_t s1, s2, s3;
    store_t *fresh, *st;
    double h0 = anon_huge_mib();
    H_CHECK(store_new(&so, &fresh) == 0, "store");
    pr_stores[2 * r] = fresh;
    double t1 = restore_all(c, fresh, parts, prefetch);
    store_get_stats(fresh, &s1);
    double h1 = anon_huge_mib();
    for (int32_t p = 0; p < parts; p++) clog_revoke(c, p);
    slab_pool_opts_t po = {.keep_bytes = bytes, .pretouch_bytes = bytes};
    double tp = h_now();
    H_CHECK(slab_pool_new(&po, &pr_pools[r]) == 0, "pool");
    H_CHECK(slab_pool_wait_pretouch(pr_pools[r], -1), "pre-touch");
    tp = h_now() - tp;
    double h2 = anon_huge_mib();
    so.pool = pr_pools[r];
    H_CHECK(store_new(&so, &st) == 0, "store");
    pr_stores[2 * r + 1] = st;
    double t2 = restore_all(c, st, parts, prefetch);
    store_get_stats(st, &s2);
    uint64_t bad = differ(st, fresh, users, parts, blob);
    for (int32_t p = 0; p < parts; p++) {
      clog_revoke(c, p);
      store_drop_partition(st, p);
    }
    double t3 = restore_all(c, st, parts, prefetch);
    store_get_stats(st, &s3);
    bad += differ(st, fresh, users, parts, blob);
    for (int32_t p = 0; p < parts; p++) clog_revoke(c, p);
    uint64_t n = store_users(st);
    H_CHECK(s1.users == users && s2.users == users && n == users && bad == 0,
            "users %" PRIu64 " %" PRIu64 " %zu, %" PRIu64 " states differ from the fresh "
            "restore's", s1.users, s2.users, (size_t)n, bad);
    printf("pool round %d: fresh memory %.0f users/s (%.2f s, of which mapping %.2f s, %" PRIu64
           " slabs fresh); pre-touched pool %.0f users/s (%.2f s, mapping %.3f s, %" PRIu64
           " slabs from the pool, %" PRIu64 " fresh), %.2fx; revoked and restored again %.0f "
           "users/s (%.2f s, %" PRIu64 " more slabs from the pool, %" PRIu64 " fresh), %.2fx; "
           "the pre-touch before it: %.0f MiB in %.2f s (%.0f MB/s); on huge pages: %.0f of the "
           "fresh restore's MiB, %.0f of the pre-touch's (load average %.1f)\n",
           r + 1, (double)users / t1, t1, (double)s1.map_ns / 1e9, s1.slabs_fresh,
           (double)users / t2, t2, (double)s2.map_ns / 1e9, s2.slabs_reused, s2.slabs_fresh,
           t1 / t2, (double)users / t3, t3, s3.slabs_reused - s2.slabs_reused,
           s3.slabs_fresh - s2.slabs_fresh, t1 / t3, (double)bytes / (1 << 20), tp,
           (double)bytes / tp / 1e6, h1 - h0, h2 - h1, loadavg1());
    sum1 += t1;
    sum2 += t2;
    sum3 += t3;
  }
  printf("pool rounds: fresh memory %.0f users/s, pre-touched pool %.0f users/s (%.2fx), "
         "revoked slabs reused %.0f users/s (%.2fx), over %d rounds\n",
         (double)users * rounds / sum1, (double)users * rounds / sum2, sum1 / sum2,
         (double)users * rounds / sum3, sum1 / sum3, rounds);
}

static void pool_rounds_free(void) {
  for (int i = 0; i < 2 * pr_n; i++) store_destroy(pr_stores[i]);
  for (int r = 0; r < pr_n; r++) slab_pool_destroy(pr_pools[r]);
  free(pr_stores);
  free(pr_pools);
}

int main(int argc, char **argv) {
  uint64_t users = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
  int parts = argc > 2 ? atoi(argv[2]) : 32;
  size_t blob = argc > 3 ? strtoul(argv[3], NULL, 10) : 1064;
  h_init("bench_changelog_restore");
  char err[512];
  mockbroker_t *mb = NULL;
  const char *brokers = h_real_bootstrap();
  const char *input = h_T("input"), *topic = h_T("bench-state");
  if (brokers) {
    h_create_topic("input", parts);
    /* as the daemon creates it (compact) */
    changelog_topic_status_t cs;
    int32_t np;
    int64_t drm;
    H_CHECK(changelog_topic_ensure(brokers, NULL, topic, input, 30000, &cs, &np, &drm, err,
                                   sizeof err) == 0 && cs == CHANGELOG_TOPIC_CREATED, "%s", err);
  } else {
    H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
    brokers = mockbroker_bootstraps(mb);
    H_CHECK(mockbroker_create_topic(mb, input, parts, err, sizeof err) == 0, "%s", err);
    H_CHECK(mockbroker_create_topic(mb, topic, parts, err, sizeof err) == 0, "%s", err);
  }
  const char *pin = getenv("BENCH_PIN");
  if (pin && *pin == '1') {
    H_CHECK(pin_broker_apart() == 0, "BENCH_PIN: cannot pin (needs two CPUs): %s",
            strerror(errno));
    printf("pinned: this process's client and restore on CPU 0, %s\n",
           mb ? "the mock broker's threads on the last CPU" : "the broker where it was started");
  }
  double rec_mib = (double)users * (double)(blob + CHANGELOG_USER_FIXED + CHANGELOG_KEY_BYTES) /
                   parts / (1 << 20);
  printf("bench_changelog_restore: %" PRIu64 " users, %d partitions (%.2f MiB each), %zu-byte "
         "states, broker %s\n", users, parts, rec_mib, blob, mb ? "librdkafka's mock" : brokers);
  if (mb && rec_mib > 4.5)
    printf("WARNING: over the mock's ~5 MiB per partition: older records will be dropped\n");

  /* fill: user u goes to partition u % parts */
  uint8_t *b = malloc(blob), *val = malloc(CHANGELOG_USER_FIXED + blob);
  const char *fcl = getenv("BENCH_FILL_CLOG");
  double t0 = h_now();
  if (fcl && *fcl && strcmp(fcl, "0") != 0) {
    const char *fcp[32] = {0};
    char *fce = getenv("BENCH_CLOG_PROPS") ? strdup(getenv("BENCH_CLOG_PROPS")) : NULL;
    for (int i = 0; fce && i < 31 && (fcp[i] = strtok(i ? NULL : fce, " ")); i++)
      ;
    clog_opts_t fco = {.brokers = brokers, .topic = topic, .input_topic = input,
                       .props = fce ? fcp : NULL};
    H_CHECK(metrics_new(&fco.metrics) == 0, "metrics");
    fill_with_clog(fco, users, parts, blob);
    metrics_destroy(fco.metrics);
    free(fce);
    printf("filled through the daemon's changelog writer in %.1f s\n", h_now() - t0);
  } else {
  /* a producer of its own, then BENCH_FILL_PROPS ("k=v k=v", overriding) */
  const char *fprops[48] = {"linger.ms=20", "batch.size=1000000", "compression.type=none"};
  int nf = 3;
  char *fe = getenv("BENCH_FILL_PROPS") ? strdup(getenv("BENCH_FILL_PROPS")) : NULL;
  for (int i = 0; fe && nf < 47 && (fprops[nf] = strtok(i ? NULL : fe, " ")); i++) nf++;
  producer_opts_t po = {.brokers = brokers, .on_delivery = dr, .props = fprops};
  producer_t *pr;
  H_CHECK(producer_new(&po, &pr, err, sizeof err) == 0, "%s", err);
  producer_topic_t *pt = producer_topic(pr, topic);
  uint8_t key[CHANGELOG_KEY_BYTES];
  for (uint64_t u = 0; u < users;) {
    int32_t p = (int32_t)(u % (uint64_t)parts);
    fill(b, blob, u);
    changelog_user_key(u, key);
    size_t vl = changelog_encode_user(p, FP, u, 10, 0, b, (uint32_t)blob, val,
                                      CHANGELOG_USER_FIXED + blob);
    int rc = producer_send(pr, pt, p, key, sizeof key, val, vl, 0, NULL, 0, 0);
    if (rc == IX_EFULL) {
      producer_poll(pr, 5);
      continue;
    }
    H_CHECK(rc == 0, "produce: %s", ix_strerror(rc));
    u++;
  }
  for (int32_t p = 0; p < parts; p++) {
    uint8_t cval[CHANGELOG_COMPLETE_BYTES];
    changelog_complete_key(p, key);
    changelog_encode_complete(p, FP, 100, 1, users / (uint64_t)parts, 0, 0, cval, sizeof cval);
    int rc;
    while ((rc = producer_send(pr, pt, p, key, sizeof key, cval, sizeof cval, 0, NULL, 0, 0)) ==
           IX_EFULL)
      producer_poll(pr, 5);
    H_CHECK(rc == 0, "produce completion: %s", ix_strerror(rc));
  }
  H_CHECK(producer_flush(pr, 120000) == 0 && failed == 0, "fill: %zu failed", failed);
  producer_destroy(pr, 1000);
  free(fe);
  printf("filled in %.1f s\n", h_now() - t0);
  }

  /* restore every partition, as on assignment */
  metrics_t *m;
  H_CHECK(metrics_new(&m) == 0, "metrics");
  clog_opts_t co = {.brokers = brokers, .topic = topic, .input_topic = input, .metrics = m};
  /* BENCH_CLOG_PROPS: the changelog clients' Kafka properties, "k=v k=v" */
  const char *cprops[32] = {0};
  char *pe = getenv("BENCH_CLOG_PROPS") ? strdup(getenv("BENCH_CLOG_PROPS")) : NULL;
  for (int i = 0; pe && i < 31 && (cprops[i] = strtok(i ? NULL : pe, " ")); i++)
    ;
  if (pe) co.props = cprops;
  clog_t *c;
  H_CHECK(clog_new(&co, &c, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {.blob_size = blob};
  store_t *st;
  H_CHECK(store_new(&so, &st) == 0, "store");
  double slowest = 0;
  int32_t slowest_p = -1;
  uint64_t restored = 0, mismatches = 0;
  /* as the daemon hints an assignment's partitions without local checkpoints
   * (BENCH_CLOG_NO_PREFETCH=1: without the hint, one partition at a time) */
  const char *np = getenv("BENCH_CLOG_NO_PREFETCH");
  int prefetch = !(np && *np && *np != '0');
  int32_t *all = malloc((size_t)parts * sizeof *all);
  for (int32_t p = 0; p < parts; p++) all[p] = p;
  double c_main = main_cpu(), c_mock = threads_cpu("rdk:mock"), c_all = threads_cpu("");
  FILE *pctl = perf_ctl_enable("BENCH_PERF_CTL");
  t0 = h_now();
  if (prefetch) clog_prefetch(c, all, (size_t)parts);
  for (int32_t p = 0; p < parts; p++) {
    double tp = h_now();
    clog_source_t src;
    int64_t next;
    H_CHECK(clog_assign(c, p, st, FP, -1, -1, &src, &next, err, sizeof err) == 0, "%s", err);
    H_CHECK(src == CLOG_FROM_CHANGELOG && next == 100, "partition %d: source %d, next %" PRId64,
            (int)p, (int)src, next);
    tp = h_now() - tp;
    if (tp > slowest) {
      slowest = tp;
      slowest_p = p;
    }
    restored += store_partition_users(st, p);
  }
  if (prefetch) clog_prefetch(c, NULL, 0);
  double secs = h_now() - t0;
  perf_ctl_close(pctl);
  c_main = main_cpu() - c_main;
  c_mock = threads_cpu("rdk:mock") - c_mock;
  c_all = threads_cpu("") - c_all;
  store_stats_t sst;
  store_get_stats(st, &sst);
  for (uint64_t u = 0; u < users; u++) {
    const uint8_t *got = store_peek(st, (int32_t)(u % (uint64_t)parts), u);
    fill(b, blob, u);
    mismatches += !got || memcmp(got, b, blob) != 0;
  }
  double bytes = (double)users * (double)(CHANGELOG_KEY_BYTES + CHANGELOG_USER_FIXED + blob) +
                 (double)parts * (CHANGELOG_KEY_BYTES + CHANGELOG_COMPLETE_BYTES);
  printf("restore%s: %" PRIu64 " users in %.2f s: %.0f users/s, %.1f MB/s (%.1f MB read); "
         "slowest partition %.3f s (%d); %" PRIu64 " mismatches\n",
         prefetch ? "" : " (no prefetch)", restored, secs, (double)restored / secs,
         bytes / secs / 1e6, bytes / 1e6, slowest, (int)slowest_p, mismatches);
  double map_s = (double)sst.map_ns / 1e9;
  printf("  of which the store's fresh memory (mapping and populating %.0f MiB of slabs): "
         "%.2f s (%.0f MB/s); the rest %.2f s: %.0f users/s\n",
         (double)sst.bytes / (1 << 20), map_s, (double)sst.bytes / map_s / 1e6, secs - map_s,
         (double)restored / (secs - map_s));
  double us = 1e6 / (double)restored;
  printf("  CPU: the restoring thread %.3f s (%.2f us per user; the fresh memory in it), the "
         "client's threads %.3f s (%.2f us), the mock broker's threads %.3f s (%.2f us) (load "
         "average %.1f)\n", c_main, c_main * us, c_all - c_main - c_mock,
         (c_all - c_main - c_mock) * us, c_mock, c_mock * us, loadavg1());
  const char *pt_env = getenv("BENCH_PRETOUCH"); /* before anything large is freed */
  if (pt_env && atoi(pt_env) > 0)
    pool_rounds(c, parts, blob, users, sst.bytes, prefetch, atoi(pt_env));
  /* the restore's read alone: a reader hinted with every partition as the
   * restore's, records only counted (no decoding, no store),
   * BENCH_READ_ROUNDS times (default 1) */
  {
    const char *rr = getenv("BENCH_READ_ROUNDS");
    int rounds = rr && *rr ? atoi(rr) : 1;
    FILE *rctl = perf_ctl_enable("BENCH_PERF_CTL_READ");
    for (int k = 0; k < rounds; k++) {
      changelog_reader_t *rd;
      H_CHECK(changelog_reader_new(brokers, co.props, topic, &rd, err, sizeof err) == 0, "%s",
              err);
      double r_main = main_cpu(), r_mock = threads_cpu("rdk:mock"), r_all = threads_cpu("");
      uint64_t recs = 0, rbytes = 0;
      t0 = h_now();
      changelog_reader_prefetch(rd, all, (size_t)parts, 10000);
      for (int32_t p = 0; p < parts; p++) {
        uint64_t r, by;
        H_CHECK(changelog_reader_read(rd, p, -1, 30000, NULL, count_rec, NULL, &r, &by, err,
                                      sizeof err) == 0, "%s", err);
        recs += r;
        rbytes += by;
      }
      double rsecs = h_now() - t0;
      r_main = main_cpu() - r_main;
      r_mock = threads_cpu("rdk:mock") - r_mock;
      r_all = threads_cpu("") - r_all;
      changelog_reader_destroy(rd);
      double rus = 1e6 / (double)recs;
      printf("read alone (the restore's reader and hint; no decoding, no store): %" PRIu64
             " records in %.3f s: %.0f records/s, %.1f MB/s; the restore took %.2fx as long; CPU "
             "us per record: reading thread %.2f, client %.2f, mock %.2f\n", recs, rsecs,
             (double)recs / rsecs, (double)rbytes / rsecs / 1e6, secs / rsecs, r_main * rus,
             (r_all - r_main - r_mock) * rus, r_mock * rus);
    }
    perf_ctl_close(rctl);
  }
  /* the decoder and the store alone, no Kafka: the same records (encoded
   * here, 1,000 at a time) through changelog_restore_add into a fresh
   * store, only the adds timed */
  {
    store_t *st3;
    H_CHECK(store_new(&so, &st3) == 0, "store");
    changelog_restore_t *rs3 = NULL;
    uint64_t per = (users + (uint64_t)parts - 1) / (uint64_t)parts;
    size_t rl = CHANGELOG_USER_FIXED + blob;
    uint8_t *recs3 = malloc(1000 * rl), *keys3 = malloc(1000 * CHANGELOG_KEY_BYTES);
    double add_s = 0, add_cpu = 0;
    char why[300];
    for (int32_t p = 0; p < parts; p++) {
      H_CHECK(changelog_restore_new(st3, p, FP, &rs3) == 0, "restore");
      double tr = h_now();
      H_CHECK(store_reserve(st3, per) == 0 && changelog_restore_reserve(rs3, per) == 0, "rsv");
      add_s += h_now() - tr;
      for (uint64_t u0 = (uint64_t)p; u0 < users;) {
        size_t k = 0;
        for (uint64_t u = u0; u < users && k < 1000; u += (uint64_t)parts, k++) {
          fill(b, blob, u);
          changelog_user_key(u, keys3 + k * CHANGELOG_KEY_BYTES);
          changelog_encode_user(p, FP, u, 10, 0, b, (uint32_t)blob, recs3 + k * rl, rl);
        }
        tr = h_now();
        double cr = main_cpu();
        for (size_t i = 0; i < k; i++)
          H_CHECK(changelog_restore_add(rs3, -1, keys3 + i * CHANGELOG_KEY_BYTES,
                                        CHANGELOG_KEY_BYTES, recs3 + i * rl, rl, why,
                                        sizeof why) == 0,
                  "%s", why);
        add_s += h_now() - tr;
        add_cpu += main_cpu() - cr;
        u0 += (uint64_t)k * (uint64_t)parts;
      }
      changelog_restore_finish(rs3, NULL);
      changelog_restore_destroy(rs3);
    }
    store_stats_t s3;
    store_get_stats(st3, &s3);
    double m3 = (double)s3.map_ns / 1e9;
    printf("decode and store alone (changelog_restore_add, no Kafka, fresh store): %.2f s, %.0f "
           "users/s; without the store's fresh memory (%.2f s) %.0f users/s; CPU %.2f s (%.2f "
           "us per user)\n", add_s, (double)users / add_s, m3, (double)users / (add_s - m3),
           add_cpu, add_cpu / (double)users * 1e6);
    free(recs3);
    free(keys3);
    store_destroy(st3);
  }
  /* the store alone: the same users put into a fresh store (the VM's cost of
   * fresh pages included, docs/STATE.md "Benchmarks") */
  store_t *st2;
  H_CHECK(store_new(&so, &st2) == 0, "store");
  t0 = h_now();
  for (uint64_t u = 0; u < users; u++)
    H_CHECK(store_put(st2, (int32_t)(u % (uint64_t)parts), u, 0, b) == 0, "store_put");
  double ssecs = h_now() - t0;
  store_destroy(st2);
  printf("store alone (store_put of every user into a fresh store): %.2f s, %.0f users/s\n",
         ssecs, (double)users / ssecs);
  H_CHECK(restored == users && mismatches == 0, "%" PRIu64 " of %" PRIu64 " users restored, %"
          PRIu64 " mismatches", restored, users, mismatches);
  free(all);
  clog_destroy(c, 0);
  free(pe);
  pool_rounds_free();
  store_destroy(st);
  metrics_destroy(m);
  free(b);
  free(val);
  mockbroker_destroy(mb);
  return 0;
}
