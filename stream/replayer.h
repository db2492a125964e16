/* interestctl replay: produce a record file into a topic at the original
 * pacing (scaled), or as fast as possible, keeping each record's partition,
 * key, value and timestamp, so per-partition order is preserved. */
#ifndef IX_STREAM_REPLAYER_H
#define IX_STREAM_REPLAYER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *brokers;
  const char *topic;
  const char *input;        /* record file */
  double speed;             /* 1.0 = original pacing, 10 = ten times faster; 0 = as fast as possible */
  uint64_t max_count;       /* 0 = all */
  int repartition;          /* topic has other partition count: re-key with murmur2 instead of failing */
  const char *const *props; /* extra librdkafka properties "key=value", NULL-terminated; may be NULL */
} replayer_opts_t;

typedef struct {
  uint64_t records;
  uint64_t delivered;
  uint64_t failed;
  double seconds;
} replayer_stats_t;

/* Produces every record and waits for all delivery reports. Returns 0 when
 * every record was delivered, else a negative IX_E* with errstr filled. A
 * damaged record file tail is reported (with its offset) after the records
 * before it were produced. */
int replayer_run(const replayer_opts_t *opts, replayer_stats_t *stats, char *errstr,
                 size_t errstr_size);

#endif
