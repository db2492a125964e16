/* What one stream/ client file needs of another's librdkafka handles (the
 * transactional producer sends the consumer's offsets with its group
 * metadata). Private to stream/: librdkafka types do not leave this room. */
#ifndef IX_STREAM_KAFKA_INTERNAL_H
#define IX_STREAM_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>

#include "stream/consumer.h"

/* The low (BEGINNING) and high (END) watermarks of topic [partition], asked
 * one after the other (rd_kafka_offsets_for_times), each answer checked: an
 * error, a negative offset (__NO_OFFSET) or low above high (__INCONSISTENT)
 * is returned and *lo, *hi are left alone. Not
 * rd_kafka_query_watermark_offsets(): librdkafka 2.0.2 sends both requests
 * at once and, when one is answered with an error, can return success with
 * low = high = the high watermark (its "empty partition" case: a start at
 * the low watermark then skips every event), and a broker socket with
 * Nagle's algorithm on (the mock) holds the second small answer ~40 ms. */
rd_kafka_resp_err_t kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition,
                                     int timeout_ms, int64_t *lo, int64_t *hi);

/* The consumer's client handle and subscribed topic (borrowed). */
rd_kafka_t *consumer_rk(consumer_t *c);
const char *consumer_topic_name(const consumer_t *c);

#endif
