/* interestctl split: one record file of events into train/dev/test files,
 * by event time or by a seeded hash of the user id. Deterministic: the same
 * input and options always give byte-identical outputs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hash.h"
#include "ctl/split.h"
#include "stream/codec.h"
#include "stream/recfile.h"

static const char *const g_split_names[SPLIT__COUNT] = {"train", "dev", "test"};

int split_user_bucket(uint64_t user_id, uint64_t seed, unsigned dev_pct, unsigned test_pct) {
  unsigned b = (unsigned)(ix_splitmix64(user_id ^ seed) % 100);
  if (b < test_pct) return SPLIT_TEST;
  if (b < test_pct + dev_pct) return SPLIT_DEV;
  return SPLIT_TRAIN;
}


static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int split_run(const split_opts_t *opts, split_stats_t *stats, char *errstr, size_t errstr_size) {
  memset(stats, 0, sizeof *stats);
  if (opts->by == SPLIT_BY_TIME) {
    if (opts->dev_start_ms > opts->test_start_ms ||
        (opts->test_end_ms && opts->test_end_ms < opts->test_start_ms))
      return ix_fail(IX_EINVAL, errstr, errstr_size,
                  "time boundaries must satisfy dev-start <= test-start <= test-end");
  } else if (opts->by == SPLIT_BY_USER) {
    if (opts->dev_pct + opts->test_pct > 100 || opts->dev_pct > 100 || opts->test_pct > 100)
      return ix_fail(IX_EINVAL, errstr, errstr_size, "dev-pct + test-pct must be at most 100");
  } else {
    return ix_fail(IX_EINVAL, errstr, errstr_size, "unknown split kind %d", (int)opts->by);
  }

  rec_reader_t *r = NULL;
  rec_writer_t *w[SPLIT__COUNT] = {NULL, NULL, NULL};
  uint64_t *users[SPLIT__COUNT] = {NULL, NULL, NULL};
  size_t n_users[SPLIT__COUNT] = {0}, cap_users[SPLIT__COUNT] = {0};
  int rc = recfile_reader_open(opts->input, &r, errstr, errstr_size);
  if (rc) return rc;
  for (int s = 0; s < SPLIT__COUNT; s++) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s.%s.rec", opts->out_prefix, g_split_names[s]) >=
        (int)sizeof path) {
      rc = ix_fail(IX_EINVAL, errstr, errstr_size, "output prefix is too long");
      goto out;
    }
    if ((rc = recfile_writer_open(path, RECFILE_CREATE, &w[s], errstr, errstr_size))) goto out;
  }
  rec_t rec;
  int rrc;
  while ((rrc = recfile_read(r, &rec)) == 0) {
    event_t ev;
    char derr[160];
    if ((rc = codec_decode_event(rec.value, rec.value_len, &ev, derr, sizeof derr))) {
      ix_fail(rc, errstr, errstr_size, "%s: record at byte offset %llu is not an event: %s",
           opts->input, (unsigned long long)recfile_reader_record_offset(r), derr);
      goto out;
    }
    stats->total++;
    int s;
    if (opts->by == SPLIT_BY_USER) {
      s = split_user_bucket(ev.user_id, opts->seed, opts->dev_pct, opts->test_pct);
    } else if (ev.ts_ms < opts->dev_start_ms) {
      s = SPLIT_TRAIN;
    } else if (ev.ts_ms < opts->test_start_ms) {
      s = SPLIT_DEV;
    } else if (!opts->test_end_ms || ev.ts_ms < opts->test_end_ms) {
      s = SPLIT_TEST;
    } else {
      stats->dropped++;
      continue;
    }
    if ((rc = recfile_write(w[s], &rec))) {
      ix_fail(rc, errstr, errstr_size, "cannot write %s.%s.rec: %s", opts->out_prefix,
           g_split_names[s], ix_strerror(rc));
      goto out;
    }
    stats->records[s]++;
    if (n_users[s] == cap_users[s]) {
      size_t cap = cap_users[s] ? cap_users[s] * 2 : 1024;
      uint64_t *p = realloc(users[s], cap * sizeof *p);
      if (!p) {
        rc = ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory");
        goto out;
      }
      users[s] = p;
      cap_users[s] = cap;
    }
    users[s][n_users[s]++] = ev.user_id;
  }
  if (rrc != IX_EEOF) {
    rc = ix_fail(rrc, errstr, errstr_size, "%s: damaged record at byte offset %llu (%s)",
              opts->input, (unsigned long long)recfile_reader_error_offset(r), ix_strerror(rrc));
    goto out;
  }
  for (int s = 0; s < SPLIT__COUNT; s++) {
    if (n_users[s]) {
      qsort(users[s], n_users[s], sizeof *users[s], cmp_u64);
      stats->users[s] = 1;
      for (size_t i = 1; i < n_users[s]; i++) stats->users[s] += users[s][i] != users[s][i - 1];
    }
    int crc = recfile_writer_close(w[s]);
    w[s] = NULL;
    if (crc && !rc)
      rc = ix_fail(crc, errstr, errstr_size, "cannot finish %s.%s.rec: %s", opts->out_prefix,
                g_split_names[s], ix_strerror(crc));
  }
out:
  for (int s = 0; s < SPLIT__COUNT; s++) {
    recfile_writer_close(w[s]);
    free(users[s]);
  }
  recfile_reader_close(r);
  return rc;
}
