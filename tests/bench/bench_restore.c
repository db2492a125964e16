/* Checkpoint write and restore speed: fills a store with N users of a
 * blob-sized state in one partition, writes its checkpoint synchronously,
 * restores it into a fresh store (the daemon's start-up path) and checks the
 * restored state equals the original. Then takes an incremental snapshot of
 * the same store after re-touching half of the users at random (so the
 * snapshot's copy order is not last-seen order), restores it and checks it.
 * Restores `reps` times with the file in the page cache (the first right
 * after the writes; later ones after re-reading the file and sleeping
 * `pause_s`, so the memory freed by the previous restore has gone back to
 * the hypervisor as it would have after a daemon restart), then once with
 * the file dropped from the page cache.
 * Usage: bench_restore [users=1000000] [blob_bytes=1032] [dir=$TMPDIR or /tmp]
 *                      [small_pages=0] [reps=1] [pause_s=0] */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "state/checkpoint.h"
#include "state/store.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill(unsigned char *b, size_t len, uint64_t u) {
  uint64_t x = u * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= len; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(b + i, &x, 8);
  }
}

/* Put the file into the page cache (read it), or drop it from the cache
 * (uncache: the restore then reads from the disk). */
static int cache_file(const char *dir, uint64_t gen, int uncache) {
  char path[600];
  snprintf(path, sizeof path, "%s/p0-%" PRIu64 ".ckpt", dir, gen);
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  static char buf[1 << 20];
  if (uncache) {
    (void)posix_fadvise(fileno(f), 0, 0, POSIX_FADV_DONTNEED);
  } else {
    while (fread(buf, 1, sizeof buf, f) == sizeof buf) {
    }
  }
  fclose(f);
  return 0;
}

typedef struct {
  store_t *other;
  size_t blob;
  uint64_t mismatches, visited;
} cmp_t;

static int compare(void *ctx, uint64_t user_id, int64_t last_seen_ms, const void *blob) {
  cmp_t *c = ctx;
  c->visited++;
  const unsigned char *o = store_get(c->other, 0, user_id, last_seen_ms, 0, NULL);
  if (!o || memcmp(o, blob, c->blob) != 0) c->mismatches++;
  return 0;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  size_t blob = argc > 2 ? strtoull(argv[2], NULL, 10) : 1032;
  const char *base = argc > 3 ? argv[3] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  int reps = argc > 5 ? atoi(argv[5]) : 1;
  int pause_s = argc > 6 ? atoi(argv[6]) : 0;
  log_set_level(LOG_LVL_WARN);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/ix_bench_restore_XXXXXX", base);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  printf("bench_restore: users=%zu blob=%zu dir=%s pages=%s\n", n, blob, dir,
         argc > 4 && atoi(argv[4]) ? "4KiB" : "huge (THP)");

  store_opts_t so = {.blob_size = blob, .small_pages = argc > 4 ? atoi(argv[4]) : 0};
  store_t *st = NULL, *st2 = NULL;
  ckpt_t *ck = NULL;
  char err[1024];
  int rc = 1;
  if (store_new(&so, &st) != 0) goto out;
  double t0 = now_s();
  for (size_t u = 0; u < n; u++) {
    unsigned char *b = store_get(st, 0, u * 11400714819323198485ull, (int64_t)u, 1, NULL);
    if (!b) goto out;
    fill(b, blob, u);
  }
  double t1 = now_s();
  printf("fill store:       %.3f s\n", t1 - t0);

  ckpt_opts_t co = {.dir = dir};
  if (ckpt_new(&co, &ck, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    goto out;
  }
  /* Three generations: the third is what a running daemon writes (it
   * prunes the first, whose page cache it recycles). */
  ckpt_result_t res;
  for (int g = 1; g <= 3; g++) {
    t0 = now_s();
    if (ckpt_write_partition(ck, st, 0, 123, 0xABCD, &res, err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      goto out;
    }
    t1 = now_s();
    printf("write gen %d (sync): %.3f s  %.1f MiB  %.0f MiB/s (incl. fsync)%s\n", g, t1 - t0,
           (double)res.bytes / 1048576.0, (double)res.bytes / 1048576.0 / (t1 - t0),
           g == 3 ? ", prunes gen 1" : "");
  }

  ckpt_restore_info_t info = {0};
  for (int rep = 0; rep <= reps; rep++) {
    int cold = rep == reps; /* last: the file is not in the page cache */
    store_destroy(st2);
    st2 = NULL;
    /* A restore hands the file's page cache back as it goes; put the file
     * back in the cache as a fresh write would have left it. */
    if (rep > 0 && cache_file(dir, info.generation, cold) != 0) goto out;
    if (pause_s > 0) sleep((unsigned)pause_s);
    if (store_new(&so, &st2) != 0) goto out;
    t0 = now_s();
    if (ckpt_restore_partition(dir, 0, 0xABCD, st2, &info, err, sizeof err) != 0 ||
        info.generation == 0) {
      fprintf(stderr, "restore failed: %s\n", err);
      goto out;
    }
    t1 = now_s();
    printf("restore%s %.3f s  for %" PRIu64 " users (%.2f M users/s, %.0f MiB/s)\n",
           cold ? " (file not cached):" : " (file in page cache):", t1 - t0, info.users, (double)info.users / (t1 - t0) / 1e6,
           (double)res.bytes / 1048576.0 / (t1 - t0));
  }

  cmp_t c = {.other = st2, .blob = blob};
  store_foreach(st, 0, compare, &c);
  printf("verify:           %" PRIu64 " users compared, %" PRIu64 " mismatches\n", c.visited, c.mismatches);
  if (c.mismatches || c.visited != n || store_partition_users(st2, 0) != n) goto out;
  store_destroy(st2);
  st2 = NULL;

  int32_t part = 0;
  int64_t off = 456;
  for (size_t k = 0; k < n / 2; k++) {
    size_t u = (size_t)((k * 2654435761u) % n);
    store_get(st, 0, u * 11400714819323198485ull, (int64_t)(n + k), 0, NULL);
  }
  if (ckpt_snapshot_start(ck, st, &part, &off, 1, 0xABCD, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    goto out;
  }
  const ckpt_result_t *sr;
  size_t nr;
  ckpt_snapshot_wait(ck, &sr, &nr);
  ckpt_stats_t cs;
  ckpt_get_stats(ck, &cs);
  printf("snapshot (incremental): start %.2f ms, longest step %.2f ms, copied in %" PRIu64
         " ms, %.1f MiB durable after %" PRIu64 " ms (%s)\n",
         (double)cs.last_start_us / 1000.0, (double)cs.max_step_us / 1000.0, cs.last_copy_ms,
         (double)cs.last_bytes / 1048576.0, cs.last_snapshot_ms, sr[0].err ? sr[0].reason : "ok");
  rc = sr[0].err ? 1 : 0;
  if (rc == 0) {
    /* a snapshot file is in copy order, not last-seen order: the restore
     * sorts the recency list once */
    st2 = NULL;
    store_opts_t o2 = {.blob_size = blob};
    if (store_new(&o2, &st2) != 0) goto out;
    ckpt_restore_info_t info2;
    double r0 = now_s();
    if (ckpt_restore_partition(dir, 0, 0xABCD, st2, &info2, err, sizeof err) != 0 ||
        info2.next_offset != 456) {
      fprintf(stderr, "restore of the snapshot failed: %s\n", err);
      rc = 1;
      goto out;
    }
    double r1 = now_s();
    cmp_t c2 = {.other = st2, .blob = blob};
    store_foreach(st, 0, compare, &c2);
    printf("restore of the snapshot: %.3f s for %" PRIu64 " users, %" PRIu64 " mismatches\n",
           r1 - r0, info2.users, c2.mismatches);
    if (c2.mismatches || c2.visited != n) rc = 1;
  }
out:
  ckpt_destroy(ck);
  store_destroy(st);
  store_destroy(st2);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
  if (rc) fprintf(stderr, "bench_restore: FAILED\n");
  return rc;
}
