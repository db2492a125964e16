/* One Kafka message as interestd handles it: consumed from a topic
 * (stream/consumer), read from or written to a record file (stream/recfile),
 * or handed to the processing core (core/pipeline, core/order). */
#ifndef IX_STREAM_REC_H
#define IX_STREAM_REC_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  int32_t partition;
  int64_t offset;
  int64_t ts_ms;
  const void *key;   /* borrowed; how long it stays valid is the producer's contract */
  size_t key_len;
  const void *value; /* borrowed, as key */
  size_t value_len;
} rec_t;

#endif
