/* interestctl split: deterministic train/dev/test splits of a record file of
 * events, by event time or by user (docs/FORMATS.md, "Splits"). */
#ifndef IX_CTL_SPLIT_H
#define IX_CTL_SPLIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SPLIT_BY_TIME = 0, SPLIT_BY_USER = 1 } split_by_t;
enum { SPLIT_TRAIN = 0, SPLIT_DEV = 1, SPLIT_TEST = 2, SPLIT__COUNT };

typedef struct {
  split_by_t by;
  const char *input;       /* record file of events */
  const char *out_prefix;  /* writes <prefix>.train.rec, .dev.rec, .test.rec */
  /* by time (event time "t" of each message): train < dev_start <= dev <
   * test_start <= test < test_end (test_end 0 = no end; later events dropped) */
  int64_t dev_start_ms, test_start_ms, test_end_ms;
  /* by user: bucket = splitmix64(user_id ^ seed) % 100; [0,test_pct) test,
   * [test_pct, test_pct+dev_pct) dev, the rest train */
  unsigned dev_pct, test_pct;
  uint64_t seed;
} split_opts_t;

typedef struct {
  uint64_t records[SPLIT__COUNT];
  uint64_t users[SPLIT__COUNT];
  uint64_t dropped;        /* at or after test_end */
  uint64_t total;
} split_stats_t;

/* Copies every record (partition, offset, timestamp, key, value unchanged)
 * into one of the three files. A record whose value is not a valid event, or
 * a damaged input, fails the split with the record's byte offset in errstr.
 * Returns 0 or a negative IX_E*. */
int split_run(const split_opts_t *opts, split_stats_t *stats, char *errstr, size_t errstr_size);

/* The split a user goes to under SPLIT_BY_USER (exposed for tests and eval). */
int split_user_bucket(uint64_t user_id, uint64_t seed, unsigned dev_pct, unsigned test_pct);

#endif
