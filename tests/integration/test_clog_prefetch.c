/* The restore reader's hint decided from the local checkpoint the
 * assignment will restore (clog_prefetch_local, daemon/clog.h), on
 * librdkafka's mock cluster without a daemon. A changelog of 7 partitions,
 * each with a completed checkpoint of 200 users at offset 200, and a local
 * checkpoint directory holding, per partition:
 *   0 nothing;  1 a file with a broken header;  2 a truncated file;
 *   3 another model's file;  4 a valid file older than half the topic's
 *   delete.retention.ms (1 day when not known: 2 days old);
 *   5 a valid young file;  6 a valid young generation behind a newer one
 *   with a broken header.
 * The assignment runs as the daemon runs it (the hint, then per partition
 * ckpt_restore_partition and clog_assign). Partitions 0-4 restore from the
 * changelog's start: their reads must be hinted and fetched ahead; 5 and 6
 * read the tail after their local checkpoint: not hinted. A hint from "is
 * there a file" (what the daemon did before) leaves 1-4 unhinted. */
#include "daemon_harness.h"

#include <dirent.h>
#include <fcntl.h>

#include "common/clock.h"
#include "common/crc.h"
#include "daemon/clog.h"
#include "daemon/metrics.h"
#include "state/checkpoint.h"

#define FP 0x0fe7c4edu
#define FP_OTHER 0x0dd0dd00u
#define PARTS 7
#define USERS 200
#define BLOB 64
#define LOCAL_NEXT 100

static int durable_n;
static int64_t acked_cb(void *ctx, int32_t p) {
  (void)ctx, (void)p;
  return INT64_MAX;
}
static void durable_cb(void *ctx, int32_t p, int64_t next) {
  (void)ctx, (void)p, (void)next;
  durable_n++;
}

static void ckpt_path(char *buf, size_t n, const char *dir, int32_t p, uint64_t gen) {
  snprintf(buf, n, "%s/p%d-%llu.ckpt", dir, (int)p, (unsigned long long)gen);
}

/* writes p's local checkpoint at LOCAL_NEXT; returns its generation */
static uint64_t write_local(ckpt_t *ck, store_t *st, int32_t p, uint32_t fp) {
  char err[512];
  ckpt_result_t res;
  H_CHECK(ckpt_write_partition(ck, st, p, LOCAL_NEXT, fp, &res, err, sizeof err) == 0,
          "checkpoint of %d: %s", (int)p, err);
  return res.generation;
}

/* a header byte changed: the header's checksum no longer holds */
static void break_header(const char *path) {
  int fd = open(path, O_RDWR);
  H_CHECK(fd >= 0, "open %s", path);
  uint8_t b;
  H_CHECK(pread(fd, &b, 1, 20) == 1, "read");
  b ^= 0x40;
  H_CHECK(pwrite(fd, &b, 1, 20) == 1, "write");
  close(fd);
}

/* created_ms set back by age_ms, the header's checksum recomputed (a file
 * without users has no block whose checksum depends on it) */
static void age_file(const char *path, int64_t age_ms) {
  int fd = open(path, O_RDWR);
  H_CHECK(fd >= 0, "open %s", path);
  uint8_t h[80];
  H_CHECK(pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h, "read header");
  uint64_t users;
  memcpy(&users, h + 40, 8);
  H_CHECK(users == 0, "age_file wants a file without users");
  int64_t created;
  memcpy(&created, h + 48, 8);
  created -= age_ms;
  memcpy(h + 48, &created, 8);
  uint32_t crc = ix_crc32(0, h, 76);
  memcpy(h + 76, &crc, 4);
  H_CHECK(pwrite(fd, h, sizeof h, 0) == (ssize_t)sizeof h, "write header");
  close(fd);
}

int main(void) {
  h_init("test_clog_prefetch");
  char err[512];
  mockbroker_t *mb;
  H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
  const char *brokers = mockbroker_bootstraps(mb);
  H_CHECK(mockbroker_create_topic(mb, "input", PARTS, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "state", PARTS, err, sizeof err) == 0, "%s", err);
  metrics_t *m;
  H_CHECK(metrics_new(&m) == 0, "metrics");
  clog_opts_t co = {.brokers = brokers, .topic = "state", .input_topic = "input", .metrics = m,
                    .props = (const char *const[]){"linger.ms=5", NULL}};

  /* the changelog: every partition's 200 users, completed at offset 200 */
  clog_t *w;
  H_CHECK(clog_new(&co, &w, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {.blob_size = BLOB};
  store_t *st;
  H_CHECK(store_new(&so, &st) == 0, "store");
  for (int32_t p = 0; p < PARTS; p++) {
    clog_start_cold(w, p);
    for (int64_t o = 0; o < USERS; o++) {
      uint64_t u = (uint64_t)p * 1000 + (uint64_t)o;
      int created = 0;
      uint8_t *b = store_get(st, p, u, o, 1, &created);
      H_CHECK(b, "store_get");
      memset(b, (int)(u & 0xff), BLOB);
      clog_applied(w, p, u, o);
    }
    H_CHECK(clog_checkpoint(w, p, st, FP, USERS) == 0, "clog_checkpoint %d", (int)p);
  }
  double t0 = h_now();
  while (durable_n < PARTS) {
    clog_pump(w, st, FP, acked_cb, durable_cb, NULL);
    h_sleep_ms(2);
    H_CHECK(h_now() - t0 < 60, "%d of %d changelog checkpoints durable after 60 s", durable_n,
            PARTS);
  }
  clog_destroy(w, 2000);

  /* the local checkpoints (st's users; partition 4's file without users) */
  const char *dir = h_path("ckpt");
  ckpt_opts_t ko = {.dir = dir, .keep = 3};
  ckpt_t *ck;
  H_CHECK(ckpt_new(&ko, &ck, err, sizeof err) == 0, "%s", err);
  char path[512];
  ckpt_path(path, sizeof path, dir, 1, write_local(ck, st, 1, FP));
  break_header(path);
  ckpt_path(path, sizeof path, dir, 2, write_local(ck, st, 2, FP));
  H_CHECK(truncate(path, 1000) == 0, "truncate");
  (void)write_local(ck, st, 3, FP_OTHER);
  store_drop_partition(st, 4);
  ckpt_path(path, sizeof path, dir, 4, write_local(ck, st, 4, FP));
  age_file(path, 2 * 86400000ll);
  (void)write_local(ck, st, 5, FP);
  (void)write_local(ck, st, 6, FP);
  ckpt_path(path, sizeof path, dir, 6, write_local(ck, st, 6, FP));
  break_header(path);
  ckpt_destroy(ck);

  /* the assignment, as daemon.c's on_rebalance runs it */
  clog_t *c;
  H_CHECK(clog_new(&co, &c, err, sizeof err) == 0, "%s", err);
  store_t *st2;
  H_CHECK(store_new(&so, &st2) == 0, "store");
  int32_t all[PARTS];
  for (int32_t p = 0; p < PARTS; p++) all[p] = p;
  clog_prefetch_local(c, all, PARTS, dir, FP, BLOB);
  static const int want_hinted[PARTS] = {1, 1, 1, 1, 1, 0, 0};
  static const char *const what[PARTS] = {
      "no file", "broken header", "truncated", "another model's", "2 days old", "young",
      "young behind a broken newer one"};
  int bad = 0;
  for (int32_t p = 0; p < PARTS; p++) {
    ckpt_restore_info_t info;
    int64_t local_next = -1, created = -1;
    int rc = ckpt_restore_partition(dir, p, FP, st2, &info, err, sizeof err);
    if (rc) store_drop_partition(st2, p);
    else if (info.generation > 0) local_next = info.next_offset, created = info.created_ms;
    changelog_reader_stats_t before, after;
    clog_read_stats(c, &before);
    clog_source_t src;
    int64_t next;
    H_CHECK(clog_assign(c, p, st2, FP, local_next, created, &src, &next, err, sizeof err) == 0,
            "clog_assign %d: %s", (int)p, err);
    clog_read_stats(c, &after);
    uint64_t hinted = after.hinted - before.hinted;
    uint64_t ahead = after.fetched_ahead - before.fetched_ahead;
    printf("partition %d (%s): local checkpoint at %" PRId64 ", states from %s at %" PRId64
           ", %" PRIu64 " read(s): hinted %" PRIu64 ", fetched ahead %" PRIu64 "\n", (int)p,
           what[p], local_next, metrics_state_source_label[src], next,
           after.reads - before.reads, hinted, ahead);
    H_CHECK(next == USERS, "partition %d resumes at %" PRId64, (int)p, next);
    H_CHECK(store_partition_users(st2, p) == USERS, "partition %d: %zu users", (int)p,
            store_partition_users(st2, p));
    if (hinted != (uint64_t)want_hinted[p] || ahead != (uint64_t)want_hinted[p]) {
      fprintf(stderr, "partition %d (%s): hinted %" PRIu64 ", fetched ahead %" PRIu64
              ", expected %d\n", (int)p, what[p], hinted, ahead, want_hinted[p]);
      bad++;
    }
  }
  H_CHECK(bad == 0, "%d partitions with the wrong hint", bad);
  clog_prefetch(c, NULL, 0);
  clog_destroy(c, 0);
  store_destroy(st);
  store_destroy(st2);
  metrics_destroy(m);
  mockbroker_destroy(mb);
  printf("test_clog_prefetch: ok\n");
  return 0;
}
