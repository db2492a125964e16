/* interestctl record: consume a topic (all partitions) into a record file,
 * keeping partition, offset, timestamp, key and value. No consumer group:
 * partitions are assigned directly, so recording never disturbs a group. */
#ifndef IX_STREAM_RECORDER_H
#define IX_STREAM_RECORDER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *brokers;      /* bootstrap list */
  const char *topic;
  const char *output;       /* record file path (created or truncated) */
  int64_t from_offset;      /* RECORDER_FROM_BEGINNING, RECORDER_FROM_END or >= 0 */
  int64_t from_time_ms;     /* skip messages with timestamp < this; 0 = off */
  uint64_t max_count;       /* stop after this many records; 0 = no limit */
  int until_end;            /* stop at the high watermarks seen at start */
  int timeout_ms;           /* give up when nothing arrives for this long; 0 = wait forever */
  const char *const *props; /* extra librdkafka "key=value" properties, NULL-terminated; may be NULL */
} recorder_opts_t;

#define RECORDER_FROM_BEGINNING (-2)
#define RECORDER_FROM_END (-1)

typedef struct {
  uint64_t records;
  uint64_t bytes;
  int32_t partitions;
} recorder_stats_t;

/* Runs until the stop condition; returns 0 or a negative IX_E* with errstr
 * filled. *stats is filled in both cases (what was written stays written). */
int recorder_run(const recorder_opts_t *opts, recorder_stats_t *stats, char *errstr,
                 size_t errstr_size);

#endif
