/* What one stream/ client file needs of another's librdkafka handles (the
 * transactional producer sends the consumer's offsets with its group
 * metadata). Private to stream/: librdkafka types do not leave this room. */
#ifndef IX_STREAM_KAFKA_INTERNAL_H
#define IX_STREAM_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>

#include "stream/consumer.h"

/* The consumer's client handle and subscribed topic (borrowed). */
rd_kafka_t *consumer_rk(consumer_t *c);
const char *consumer_topic_name(const consumer_t *c);

#endif
