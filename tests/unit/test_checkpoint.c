/* Checkpoints: bit-exact round trip, corruption and truncation fall back to
 * the previous generation, fingerprint refusal, generations kept, and the
 * incremental snapshot writing the store as of its start while it changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/err.h"
#include "common/log.h"
#include "state/checkpoint.h"
#include "state/store.h"

#define BLOB 100
#define FP 0xC0FFEE11u

typedef struct {
  char dir[256];
} fixture_t;

static int setup(void **state) {
  fixture_t *fx = calloc(1, sizeof *fx);
  snprintf(fx->dir, sizeof fx->dir, "/tmp/ix_test_ckpt_XXXXXX");
  if (!mkdtemp(fx->dir)) return -1;
  log_set_level(LOG_LVL_ERROR);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture_t *fx = *state;
  DIR *d = opendir(fx->dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)))
      if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", fx->dir, de->d_name);
        unlink(p);
      }
    closedir(d);
  }
  rmdir(fx->dir);
  free(fx);
  return 0;
}

static store_t *new_store(void) {
  store_opts_t o = {.blob_size = BLOB};
  store_t *st = NULL;
  assert_int_equal(store_new(&o, &st), 0);
  return st;
}

static ckpt_t *new_ckpt(const char *dir) {
  ckpt_opts_t o = {.dir = dir};
  ckpt_t *ck = NULL;
  char err[256];
  assert_int_equal(ckpt_new(&o, &ck, err, sizeof err), 0);
  return ck;
}

/* Deterministic content per (partition, user, version). */
static void fill(unsigned char *b, int32_t p, uint64_t u, unsigned version) {
  uint64_t x = u * 0x9E3779B97F4A7C15ull ^ ((uint64_t)p << 40) ^ version;
  for (int i = 0; i < BLOB; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (unsigned char)x;
  }
}

static void populate(store_t *st, int32_t p, uint64_t n, unsigned version, int64_t t0) {
  for (uint64_t u = 0; u < n; u++) {
    unsigned char *b = store_get(st, p, u * 7 + 1, t0 + (int64_t)u, 1, NULL);
    assert_non_null(b);
    fill(b, p, u * 7 + 1, version);
  }
}

/* A flat copy of one partition: the reference for comparisons. */
typedef struct {
  uint64_t *ids;
  int64_t *seen;
  unsigned char *blobs;
  size_t n, cap;
} snap_t;

static int snap_visit(void *ctx, uint64_t id, int64_t seen, const void *blob) {
  snap_t *s = ctx;
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1024;
    s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
    s->seen = realloc(s->seen, s->cap * sizeof *s->seen);
    s->blobs = realloc(s->blobs, s->cap * BLOB);
  }
  s->ids[s->n] = id;
  s->seen[s->n] = seen;
  memcpy(s->blobs + s->n * BLOB, blob, BLOB);
  s->n++;
  return 0;
}

static snap_t take(const store_t *st, int32_t p) {
  snap_t s = {0};
  store_foreach(st, p, snap_visit, &s);
  return s;
}

static void snap_free(snap_t *s) {
  free(s->ids);
  free(s->seen);
  free(s->blobs);
}

static void assert_same(const snap_t *a, const snap_t *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++) {
    assert_true(a->ids[i] == b->ids[i]);
    assert_true(a->seen[i] == b->seen[i]);
  }
  if (a->n) assert_memory_equal(a->blobs, b->blobs, a->n * BLOB);
}

static void path_of(char *buf, size_t size, const char *dir, int32_t p, uint64_t g) {
  snprintf(buf, size, "%s/p%d-%llu.ckpt", dir, (int)p, (unsigned long long)g);
}

static int exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static void test_ckpt_round_trip_is_bit_exact(void **state) {
  fixture_t *fx = *state;
  store_t *st = new_store();
  populate(st, 0, 50, 1, 10);
  populate(st, 1, 20000, 1, 1000); /* several blocks */
  populate(st, 2, 30, 1, 10);
  store_get(st, 1, 8, 5000000, 0, NULL); /* reorder one user */
  ckpt_t *ck = new_ckpt(fx->dir);
  ckpt_result_t res;
  char err[512];
  assert_int_equal(ckpt_write_partition(ck, st, 1, 123456789, FP, &res, err, sizeof err), 0);
  assert_int_equal(res.err, 0);
  assert_int_equal(res.generation, 1);
  assert_int_equal(res.users, 20000);
  char path[512];
  path_of(path, sizeof path, fx->dir, 1, 1);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal((uint64_t)sb.st_size, res.bytes);

  store_t *st2 = new_store();
  populate(st2, 1, 5, 9, 1); /* stale users are replaced, not merged */
  populate(st2, 2, 5, 9, 1); /* other partitions untouched */
  ckpt_restore_info_t info;
  assert_int_equal(ckpt_restore_partition(fx->dir, 1, FP, st2, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 1);
  assert_true(info.next_offset == 123456789);
  assert_int_equal(info.users, 20000);
  assert_int_equal(info.skipped, 0);
  assert_string_equal(err, "");
  snap_t a = take(st, 1), b = take(st2, 1);
  assert_same(&a, &b);
  assert_int_equal(store_partition_users(st2, 2), 5);
  snap_free(&a);
  snap_free(&b);

  /* An empty partition round-trips too. */
  assert_int_equal(ckpt_write_partition(ck, st, 9, 0, FP, &res, err, sizeof err), 0);
  assert_int_equal(res.bytes, CKPT_HEADER_BYTES);
  assert_int_equal(ckpt_restore_partition(fx->dir, 9, FP, st2, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 1);
  assert_int_equal(info.users, 0);
  /* No checkpoint at all: generation 0. */
  assert_int_equal(ckpt_restore_partition(fx->dir, 5, FP, st2, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 0);
  assert_int_equal(ckpt_restore_partition("/nonexistent/ix", 5, FP, st2, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 0);
  ckpt_stats_t cs;
  ckpt_get_stats(ck, &cs);
  assert_int_equal(cs.files_written, 2);
  ckpt_destroy(ck);
  store_destroy(st);
  store_destroy(st2);
}

/* Writes gen 1 (3000 users, version 1, offset 100) and gen 2 (users2 users,
 * version 2, offset 200) of partition 3; returns the snapshot of gen 1's state. */
static snap_t two_generations_of(const char *dir, uint64_t users2) {
  store_t *st = new_store();
  ckpt_t *ck = new_ckpt(dir);
  char err[512];
  populate(st, 3, 3000, 1, 0);
  snap_t first = take(st, 3);
  assert_int_equal(ckpt_write_partition(ck, st, 3, 100, FP, NULL, err, sizeof err), 0);
  populate(st, 3, users2, 2, 10000);
  assert_int_equal(ckpt_write_partition(ck, st, 3, 200, FP, NULL, err, sizeof err), 0);
  ckpt_destroy(ck);
  store_destroy(st);
  return first;
}

static snap_t two_generations(const char *dir) { return two_generations_of(dir, 4000); }

static void expect_fallback(const char *dir, const snap_t *first, const char *bad_path,
                            const char *reason) {
  store_t *st = new_store();
  ckpt_restore_info_t info;
  char err[1024];
  assert_int_equal(ckpt_restore_partition(dir, 3, FP, st, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 1);
  assert_true(info.next_offset == 100);
  assert_true(info.refused_next_offset == -1);
  assert_int_equal(info.skipped, 1);
  assert_non_null(strstr(err, bad_path));
  assert_non_null(strstr(err, reason));
  snap_t got = take(st, 3);
  assert_same(first, &got);
  snap_free(&got);
  store_destroy(st);
}

static void test_ckpt_truncated_file_falls_back_to_previous_generation(void **state) {
  fixture_t *fx = *state;
  snap_t first = two_generations(fx->dir);
  char path[512];
  path_of(path, sizeof path, fx->dir, 3, 2);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(truncate(path, sb.st_size - 1000), 0);
  expect_fallback(fx->dir, &first, path, "truncated");
  /* Cut inside the header as well. */
  assert_int_equal(truncate(path, 40), 0);
  expect_fallback(fx->dir, &first, path, "truncated");
  snap_free(&first);
}

static void flip_byte(const char *path, off_t at) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  unsigned char c;
  assert_int_equal(pread(fd, &c, 1, at), 1);
  c ^= 0x20;
  assert_int_equal(pwrite(fd, &c, 1, at), 1);
  close(fd);
}

static void test_ckpt_flipped_byte_falls_back_to_previous_generation(void **state) {
  fixture_t *fx = *state;
  snap_t first = two_generations(fx->dir);
  char path[512];
  path_of(path, sizeof path, fx->dir, 3, 2);
  flip_byte(path, 200000); /* inside a record of the first block */
  expect_fallback(fx->dir, &first, path, "checksum mismatch in block 0");
  flip_byte(path, 200000);
  flip_byte(path, 26); /* the next offset in the header */
  expect_fallback(fx->dir, &first, path, "header checksum");
  flip_byte(path, 26);
  flip_byte(path, 0); /* magic */
  expect_fallback(fx->dir, &first, path, "bad magic");
  snap_free(&first);
}

/* A newer generation that fails part-way through loading (a checksum error
 * in its last block, after earlier blocks went into the store): restore drops
 * what that generation inserted and falls back to the older one, whose state
 * comes back alone and exact. */
static void test_ckpt_generation_failing_mid_load_leaves_nothing_behind(void **state) {
  fixture_t *fx = *state;
  /* gen 2: 25000 users (3 blocks of ~1 MiB), new ids too, other contents */
  snap_t first = two_generations_of(fx->dir, 25000);
  char err[1024];
  char path[512];
  path_of(path, sizeof path, fx->dir, 3, 2);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  flip_byte(path, sb.st_size - 100); /* a record of the last block */

  store_t *st = new_store();
  ckpt_restore_info_t info;
  assert_int_equal(ckpt_restore_partition(fx->dir, 3, FP, st, &info, err, sizeof err), 0);
  assert_non_null(strstr(err, "checksum mismatch in block 2"));
  assert_int_equal(info.generation, 1);
  assert_int_equal(info.skipped, 1);
  assert_true(info.next_offset == 100);
  /* none of gen 2's users from its first two blocks is left over */
  assert_int_equal(store_partition_users(st, 3), 3000);
  snap_t got = take(st, 3);
  assert_same(&first, &got);
  snap_free(&got);
  snap_free(&first);
  store_destroy(st);
}

static void test_ckpt_no_valid_generation_leaves_partition_empty(void **state) {
  fixture_t *fx = *state;
  snap_t first = two_generations(fx->dir);
  char p1[512], p2[512];
  path_of(p1, sizeof p1, fx->dir, 3, 1);
  path_of(p2, sizeof p2, fx->dir, 3, 2);
  flip_byte(p1, 5000);
  assert_int_equal(truncate(p2, 100), 0);
  store_t *st = new_store();
  populate(st, 3, 10, 1, 0);
  ckpt_restore_info_t info;
  char err[1024];
  assert_int_equal(ckpt_restore_partition(fx->dir, 3, FP, st, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 0);
  assert_int_equal(info.skipped, 2);
  assert_non_null(strstr(err, p1));
  assert_non_null(strstr(err, p2));
  assert_int_equal(store_partition_users(st, 3), 0);
  store_destroy(st);
  snap_free(&first);
}

static void test_ckpt_fingerprint_mismatch_is_refused(void **state) {
  fixture_t *fx = *state;
  snap_t first = two_generations(fx->dir);
  store_t *st = new_store();
  ckpt_restore_info_t info;
  char err[1024];
  assert_int_equal(ckpt_restore_partition(fx->dir, 3, FP + 1, st, &info, err, sizeof err),
                   IX_EMISMATCH);
  assert_non_null(strstr(err, "fingerprint"));
  assert_non_null(strstr(err, "p3-2.ckpt"));
  assert_int_equal(info.generation, 0);
  assert_true(info.refused_next_offset == 200); /* the refused file's offset (a warm start's) */
  assert_int_equal(store_partition_users(st, 3), 0);
  store_destroy(st);
  /* A store with another blob size is refused as well. */
  store_opts_t o = {.blob_size = BLOB + 8};
  assert_int_equal(store_new(&o, &st), 0);
  assert_int_equal(ckpt_restore_partition(fx->dir, 3, FP, st, &info, err, sizeof err),
                   IX_EMISMATCH);
  assert_non_null(strstr(err, "blob"));
  store_destroy(st);
  snap_free(&first);
}

static void test_ckpt_keeps_newest_two_generations(void **state) {
  fixture_t *fx = *state;
  store_t *st = new_store();
  populate(st, 0, 10, 1, 0);
  ckpt_t *ck = new_ckpt(fx->dir);
  char err[256], path[512];
  /* A stale temporary from a dead writer is cleaned by ckpt_new. */
  snprintf(path, sizeof path, "%s/.p0-9.ckpt.tmp.999999999", fx->dir);
  FILE *f = fopen(path, "w");
  fclose(f);
  ckpt_destroy(new_ckpt(fx->dir));
  assert_false(exists(path));
  for (int i = 0; i < 4; i++)
    assert_int_equal(ckpt_write_partition(ck, st, 0, 10 * i, FP, NULL, err, sizeof err), 0);
  for (uint64_t g = 1; g <= 4; g++) {
    path_of(path, sizeof path, fx->dir, 0, g);
    assert_int_equal(exists(path), g >= 3);
  }
  /* A fresh writer continues after the newest generation on disk. */
  ckpt_t *ck2 = new_ckpt(fx->dir);
  ckpt_result_t res;
  assert_int_equal(ckpt_write_partition(ck2, st, 0, 50, FP, &res, err, sizeof err), 0);
  assert_int_equal(res.generation, 5);
  ckpt_restore_info_t info;
  store_t *st2 = new_store();
  assert_int_equal(ckpt_restore_partition(fx->dir, 0, FP, st2, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 5);
  assert_true(info.next_offset == 50);
  ckpt_destroy(ck2);
  ckpt_destroy(ck);
  store_destroy(st);
  store_destroy(st2);
}

/* Waits (on the notification fd, as an event loop would) until partition
 * result i reaches `want` or a terminal state; returns its state. */
static ckpt_state_t wait_state(ckpt_t *ck, size_t i, ckpt_state_t want) {
  const ckpt_result_t *res = NULL;
  size_t n = 0;
  for (int k = 0; k < 20000; k++) {
    ckpt_snapshot_step(ck, 1000);
    int rc = ckpt_snapshot_poll(ck, &res, &n);
    assert_true(rc == 0 || rc == 1);
    assert_true(i < n);
    ckpt_state_t s = res[i].state;
    if (s == want || s == CKPT_DURABLE || s == CKPT_FAILED || s == CKPT_DISCARDED) return s;
    int fd = ckpt_snapshot_fd(ck);
    if (fd >= 0) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      (void)poll(&p, 1, 5);
    }
  }
  fail_msg("partition result %zu never reached state %d", i, (int)want);
  return CKPT_FAILED;
}

static int tmp_files(const char *dir) {
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (strstr(de->d_name, ".tmp.")) n++;
  if (d) closedir(d);
  return n;
}

/* The incremental snapshot's files equal the partitions exactly as they were
 * at ckpt_snapshot_start(), although the store changes between slices:
 * blobs rewritten and users re-touched (copied first), new users (not in
 * it), users evicted for the memory limit and expired for idleness (copied
 * before they go). A written file stays invisible until it is published. */
static void test_ckpt_snapshot_equals_state_at_start_while_store_changes(void **state) {
  fixture_t *fx = *state;
  /* a memory limit for ~45,600 users: 45,100 now, so the new users below
   * soon push the oldest out */
  store_opts_t o = {.blob_size = BLOB, .mem_limit_bytes = 4u << 20, .idle_ttl_ms = 1000000};
  store_t *st = NULL;
  for (;;) {
    assert_int_equal(store_new(&o, &st), 0);
    if (store_capacity(st) >= 45600) break;
    store_destroy(st);
    o.mem_limit_bytes += 16u << 10;
  }
  populate(st, 0, 5000, 1, 0);
  populate(st, 1, 40000, 1, 0);
  populate(st, 2, 100, 1, 0);
  snap_t s0 = take(st, 0), s1 = take(st, 1);
  ckpt_t *ck = new_ckpt(fx->dir);
  assert_int_equal(ckpt_snapshot_fd(ck), -1);
  assert_int_equal(ckpt_snapshot_poll(ck, NULL, NULL), IX_ESTATE);
  int32_t parts[2] = {0, 1};
  int64_t offs[2] = {500, 40000};
  char err[256];
  assert_int_equal(ckpt_snapshot_start(ck, st, parts, offs, 2, FP, err, sizeof err), 0);
  assert_true(ckpt_snapshot_running(ck));
  assert_true(ckpt_snapshot_fd(ck) >= 0);
  assert_int_equal(ckpt_snapshot_start(ck, st, parts, offs, 2, FP, err, sizeof err), IX_ESTATE);
  /* A synchronous write meanwhile takes a later generation. */
  ckpt_result_t sync;
  assert_int_equal(ckpt_write_partition(ck, st, 2, 7, FP, &sync, err, sizeof err), 0);
  assert_int_equal(sync.generation, 1);

  uint64_t x = 12345, now = 1000000;
  int rounds = 0, copied = 0;
  while (!copied) {
    copied = ckpt_snapshot_step(ck, 20);
    rounds++;
    for (int k = 0; k < 300; k++) { /* rewrite random users of both partitions */
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      int32_t p = (int32_t)((x >> 33) % 2);
      uint64_t u = (x >> 40) % (p ? 40000 : 5000);
      unsigned char *b = store_get(st, p, u * 7 + 1, (int64_t)++now, 0, NULL);
      if (b) fill(b, p, u * 7 + 1, 100 + (unsigned)rounds);
    }
    /* new users push the store over its limit: the oldest are evicted */
    for (int k = 0; k < 200; k++) {
      unsigned char *b = store_get(st, k % 2, 1000000 + (uint64_t)rounds * 1000 + (uint64_t)k,
                                   (int64_t)++now, 1, NULL);
      assert_non_null(b);
      fill(b, 0, (uint64_t)k, 9);
    }
    store_evict(st);
    if (rounds == 3) assert_true(store_expire(st, 1000000 + 400) > 0); /* idle before 400 */
  }
  ckpt_stats_t cs;
  ckpt_get_stats(ck, &cs);
  assert_true(rounds > 3);              /* it took several slices */
  assert_true(cs.last_before_change > 0); /* some users were copied before a change */
  store_stats_t ss;
  store_get_stats(st, &ss);
  assert_true(ss.evicted_lru > 0);
  assert_true(ss.evicted_ttl > 0);

  /* Written but not published: nothing visible under the final name. */
  char path0[512], path1[512];
  assert_int_equal(wait_state(ck, 0, CKPT_WRITTEN), CKPT_WRITTEN);
  assert_int_equal(wait_state(ck, 1, CKPT_WRITTEN), CKPT_WRITTEN);
  const ckpt_result_t *res = NULL;
  size_t n = 0;
  assert_int_equal(ckpt_snapshot_poll(ck, &res, &n), 0);
  assert_int_equal(n, 2);
  path_of(path0, sizeof path0, fx->dir, 0, res[0].generation);
  path_of(path1, sizeof path1, fx->dir, 1, res[1].generation);
  assert_false(exists(path0));
  assert_false(exists(path1));
  assert_int_equal(tmp_files(fx->dir), 2);
  store_t *r = new_store();
  ckpt_restore_info_t info;
  assert_int_equal(ckpt_restore_partition(fx->dir, 0, FP, r, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 0);

  assert_int_equal(ckpt_snapshot_publish(ck, 0), 0);
  assert_int_equal(ckpt_snapshot_publish(ck, 0), IX_ESTATE); /* once */
  assert_int_equal(ckpt_snapshot_publish(ck, 1), 0);
  assert_int_equal(wait_state(ck, 0, CKPT_DURABLE), CKPT_DURABLE);
  assert_int_equal(wait_state(ck, 1, CKPT_DURABLE), CKPT_DURABLE);
  assert_int_equal(ckpt_snapshot_poll(ck, &res, &n), 1);
  assert_false(ckpt_snapshot_running(ck));
  assert_int_equal(ckpt_snapshot_fd(ck), -1);
  assert_int_equal(res[0].err, 0);
  assert_int_equal(res[1].err, 0);
  assert_int_equal(res[0].partition, 0);
  assert_true(res[1].next_offset == 40000);
  assert_int_equal(res[0].users, 5000);
  assert_int_equal(res[1].users, 40000);
  assert_int_equal(res[0].generation, 1);
  assert_int_equal(tmp_files(fx->dir), 0);
  ckpt_get_stats(ck, &cs);
  assert_int_equal(cs.snapshots, 1);
  assert_int_equal(cs.files_written, 3);
  assert_true(cs.last_bytes > 45000u * BLOB);

  assert_int_equal(ckpt_restore_partition(fx->dir, 0, FP, r, &info, err, sizeof err), 0);
  assert_true(info.next_offset == 500);
  assert_int_equal(ckpt_restore_partition(fx->dir, 1, FP, r, &info, err, sizeof err), 0);
  assert_true(info.next_offset == 40000);
  /* the same users, last-seen times and blobs, in the same recency order */
  snap_t r0 = take(r, 0), r1 = take(r, 1);
  assert_same(&s0, &r0);
  assert_same(&s1, &r1);
  /* Polling again after completion returns the same results. */
  assert_int_equal(ckpt_snapshot_poll(ck, &res, &n), 1);
  assert_int_equal(n, 2);
  snap_free(&s0);
  snap_free(&s1);
  snap_free(&r0);
  snap_free(&r1);
  store_destroy(r);
  ckpt_destroy(ck);
  store_destroy(st);
}

/* A revoked partition's part is discarded (no file, no temporary file); a
 * partition dropped without that fails with a reason; abort leaves nothing;
 * a failed write is reported with the file and the step. */
static void test_ckpt_snapshot_discard_drop_abort_and_write_failure(void **state) {
  fixture_t *fx = *state;
  store_t *st = new_store();
  populate(st, 0, 3000, 1, 0);
  populate(st, 1, 3000, 1, 0);
  populate(st, 2, 3000, 1, 0);
  ckpt_t *ck = new_ckpt(fx->dir);
  int32_t parts[3] = {0, 1, 2};
  int64_t offs[3] = {1, 2, 3};
  char err[256], path[512];
  const ckpt_result_t *res;
  size_t n;
  assert_int_equal(ckpt_snapshot_start(ck, st, parts, offs, 3, FP, err, sizeof err), 0);
  ckpt_snapshot_step(ck, 10);
  assert_int_equal(ckpt_snapshot_discard(ck, 1), 0);
  store_drop_partition(st, 1);
  store_drop_partition(st, 2); /* without a discard */
  assert_int_equal(ckpt_snapshot_wait(ck, &res, &n), 1);
  assert_int_equal(n, 3);
  assert_int_equal(res[0].state, CKPT_DURABLE);
  assert_int_equal(res[1].state, CKPT_DISCARDED);
  assert_int_equal(res[2].state, CKPT_FAILED);
  assert_int_equal(res[2].err, IX_ESTATE);
  assert_non_null(strstr(res[2].reason, "of 3000 users copied"));
  path_of(path, sizeof path, fx->dir, 1, res[1].generation);
  assert_false(exists(path));
  path_of(path, sizeof path, fx->dir, 2, res[2].generation);
  assert_false(exists(path));
  assert_int_equal(tmp_files(fx->dir), 0);
  assert_false(store_capture_active(st));

  /* Abort half-way: nothing visible, nothing left behind, store released. */
  assert_int_equal(ckpt_snapshot_start(ck, st, parts, offs, 1, FP, err, sizeof err), 0);
  ckpt_snapshot_step(ck, 10);
  ckpt_snapshot_abort(ck);
  assert_false(ckpt_snapshot_running(ck));
  assert_false(store_capture_active(st));
  assert_int_equal(ckpt_snapshot_poll(ck, &res, &n), 1);
  assert_int_equal(res[0].state, CKPT_DISCARDED);
  path_of(path, sizeof path, fx->dir, 0, res[0].generation);
  assert_false(exists(path));
  assert_int_equal(tmp_files(fx->dir), 0);

  /* A file-size limit makes the writer's write fail (SIGXFSZ ignored). */
  struct rlimit old, small = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small.rlim_max = old.rlim_max;
  signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  int rc = ckpt_snapshot_start(ck, st, parts, offs, 1, FP, err, sizeof err);
  if (rc == 0) assert_int_equal(ckpt_snapshot_wait(ck, &res, &n), 1);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_DFL);
  assert_int_equal(rc, 0);
  assert_int_equal(res[0].state, CKPT_FAILED);
  assert_int_equal(res[0].err, IX_ESYS);
  assert_non_null(strstr(res[0].reason, "write failed"));
  assert_non_null(strstr(res[0].reason, fx->dir));
  path_of(path, sizeof path, fx->dir, 0, res[0].generation);
  assert_false(exists(path));
  assert_int_equal(tmp_files(fx->dir), 0);

  ckpt_stats_t cs;
  ckpt_get_stats(ck, &cs);
  assert_int_equal(cs.files_failed, 2);
  assert_int_equal(cs.files_written, 1);
  assert_int_equal(cs.snapshots, 3);
  /* The one durable file restores partition 0 as it was. */
  store_t *r = new_store();
  ckpt_restore_info_t info;
  assert_int_equal(ckpt_restore_partition(fx->dir, 0, FP, r, &info, err, sizeof err), 0);
  assert_int_equal(info.users, 3000);
  snap_t a = take(st, 0), b = take(r, 0);
  assert_same(&a, &b);
  snap_free(&a);
  snap_free(&b);
  store_destroy(r);
  ckpt_destroy(ck);
  store_destroy(st);
}

static void test_ckpt_load_fd_rejects_trailing_bytes_and_bad_version(void **state) {
  fixture_t *fx = *state;
  store_t *st = new_store();
  populate(st, 4, 10, 1, 0);
  ckpt_t *ck = new_ckpt(fx->dir);
  char err[512], path[512];
  assert_int_equal(ckpt_write_partition(ck, st, 4, 1, FP, NULL, err, sizeof err), 0);
  path_of(path, sizeof path, fx->dir, 4, 1);
  ckpt_file_info_t fi;
  int fd = open(path, O_RDONLY);
  assert_int_equal(ckpt_load_fd(fd, "x", 0, 0, NULL, &fi, err, sizeof err), 0);
  close(fd);
  assert_int_equal(fi.users, 10);
  assert_int_equal(fi.partition, 4);
  assert_int_equal(fi.fingerprint, FP);
  assert_int_equal(fi.blob_size, BLOB);
  /* Wrong partition asked for. */
  store_t *st2 = new_store();
  fd = open(path, O_RDONLY);
  assert_int_equal(ckpt_load_fd(fd, "x.ckpt", 5, FP, st2, NULL, err, sizeof err), IX_EMALFORMED);
  close(fd);
  assert_non_null(strstr(err, "x.ckpt: holds partition 4"));
  /* Trailing garbage. */
  fd = open(path, O_WRONLY | O_APPEND);
  assert_int_equal(write(fd, "zz", 2), 2);
  close(fd);
  fd = open(path, O_RDONLY);
  assert_int_equal(ckpt_load_fd(fd, "x", 0, 0, NULL, NULL, err, sizeof err), IX_EMALFORMED);
  close(fd);
  /* Version 2 is not read by this build. */
  fd = open(path, O_RDWR);
  uint32_t v = 2;
  assert_int_equal(pwrite(fd, &v, 4, 8), 4);
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  assert_int_equal(ckpt_load_fd(fd, "x", 0, 0, NULL, NULL, err, sizeof err), IX_EVERSION);
  close(fd);
  assert_non_null(strstr(err, "version 2"));
  ckpt_destroy(ck);
  store_destroy(st);
  store_destroy(st2);
}

/* The writer stages blocks and writes 2 MiB-aligned chunks; the file must
 * still be exactly the documented layout (docs/STATE.md), rebuilt here
 * independently from the store's contents with zlib's crc32. A restore,
 * which drops the file from the page cache as it reads, leaves the file
 * intact and restorable again; a write that prunes (and first uncaches)
 * the oldest generation still produces a valid file. */
static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*len ? *len : 1);
  assert_int_equal(fread(b, 1, *len, f), *len);
  fclose(f);
  return b;
}

static void le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void test_ckpt_file_bytes_match_documented_layout_across_write_chunks(void **state) {
  fixture_t *fx = *state;
  const uint64_t n = 50000; /* 5.8 MB: blocks straddle the 2 MiB write chunks */
  store_t *st = new_store();
  populate(st, 3, n, 4, 77);
  ckpt_t *ck = new_ckpt(fx->dir);
  ckpt_result_t res;
  char err[512];
  assert_int_equal(ckpt_write_partition(ck, st, 3, 4242, FP, &res, err, sizeof err), 0);
  char path[512];
  path_of(path, sizeof path, fx->dir, 3, 1);
  size_t len;
  unsigned char *got = read_file(path, &len);

  const uint32_t rec = 16 + BLOB, per_block = (1u << 20) / rec;
  const uint64_t blocks = (n + per_block - 1) / per_block;
  size_t want_len = 80 + n * rec + blocks * 4;
  assert_int_equal(len, want_len);
  assert_true(want_len > 2 * (2u << 20));
  unsigned char *want = calloc(1, want_len);
  memcpy(want, "IXCKPT\r\n", 8);
  le32(want + 8, CKPT_FORMAT_VERSION);
  le32(want + 12, 80);
  le32(want + 16, 3);
  le32(want + 20, FP);
  le64(want + 24, 4242);
  le64(want + 32, 1);
  le64(want + 40, n);
  memcpy(want + 48, got + 48, 8); /* creation time: not predictable */
  le32(want + 56, BLOB);
  le32(want + 60, per_block);
  le64(want + 64, want_len);
  le32(want + 76, (uint32_t)crc32(0, want, 76));
  snap_t a = take(st, 3); /* oldest first, as written */
  assert_int_equal(a.n, n);
  size_t at = 80;
  for (uint64_t b = 0; b < blocks; b++) {
    size_t start = at;
    for (uint64_t r = b * per_block; r < n && r < (b + 1) * per_block; r++) {
      le64(want + at, a.ids[r]);
      le64(want + at + 8, (uint64_t)a.seen[r]);
      memcpy(want + at + 16, a.blobs + r * BLOB, BLOB);
      at += rec;
    }
    unsigned char idx[4];
    le32(idx, (uint32_t)b);
    uLong c = crc32(crc32(crc32(0, want, 76), idx, 4), want + start, (uInt)(at - start));
    le32(want + at, (uint32_t)c);
    at += 4;
  }
  assert_int_equal(at, want_len);
  assert_memory_equal(got, want, want_len);

  for (int round = 0; round < 2; round++) {
    store_t *st2 = new_store();
    ckpt_restore_info_t info;
    assert_int_equal(ckpt_restore_partition(fx->dir, 3, FP, st2, &info, err, sizeof err), 0);
    assert_int_equal(info.generation, 1);
    snap_t b = take(st2, 3);
    assert_same(&a, &b);
    snap_free(&b);
    store_destroy(st2);
  }
  free(got);
  got = read_file(path, &len);
  assert_int_equal(len, want_len);
  assert_memory_equal(got, want, want_len);

  /* Generations 2 and 3; the third prunes (and first uncaches) generation 1. */
  assert_int_equal(ckpt_write_partition(ck, st, 3, 4243, FP, &res, err, sizeof err), 0);
  assert_int_equal(ckpt_write_partition(ck, st, 3, 4244, FP, &res, err, sizeof err), 0);
  assert_false(exists(path));
  store_t *st3 = new_store();
  ckpt_restore_info_t info;
  assert_int_equal(ckpt_restore_partition(fx->dir, 3, FP, st3, &info, err, sizeof err), 0);
  assert_int_equal(info.generation, 3);
  assert_true(info.next_offset == 4244);
  snap_t c = take(st3, 3);
  assert_same(&a, &c);
  snap_free(&c);
  snap_free(&a);
  store_destroy(st3);
  free(got);
  free(want);
  ckpt_destroy(ck);
  store_destroy(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ckpt_round_trip_is_bit_exact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_truncated_file_falls_back_to_previous_generation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_flipped_byte_falls_back_to_previous_generation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_generation_failing_mid_load_leaves_nothing_behind,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_no_valid_generation_leaves_partition_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_fingerprint_mismatch_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_keeps_newest_two_generations, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_snapshot_equals_state_at_start_while_store_changes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_snapshot_discard_drop_abort_and_write_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_load_fd_rejects_trailing_bytes_and_bad_version, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ckpt_file_bytes_match_documented_layout_across_write_chunks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
