/* The Kafka side of the changelog topic (docs/STATE.md, "Changelog topic"):
 * its partition count from the metadata, and reading one partition from its
 * start to its end for a restore. Producing goes through stream/producer.h.
 * Blocking calls; any thread. */
#ifndef IX_STREAM_CHANGELOG_TOPIC_H
#define IX_STREAM_CHANGELOG_TOPIC_H

#include <stddef.h>
#include <stdint.h>

/* Partition count of topic (0 when it does not exist), without creating it
 * (the whole cluster's metadata is asked for). Returns 0 or IX_EKAFKA with
 * errstr filled. */
int changelog_topic_partitions(const char *brokers, const char *const *props, const char *topic,
                               int32_t *partitions, char *errstr, size_t errstr_size);

/* Called for each record, in offset order; key/value borrowed for the call
 * (value NULL for a tombstone). A non-zero return stops the read and is
 * returned by changelog_topic_read(). */
typedef int (*changelog_topic_fn)(void *ctx, int64_t offset, const void *key, size_t key_len,
                                  const void *value, size_t value_len);

/* Reads partition `partition` of topic from its low to its high watermark
 * (as they are when the call starts) without joining a group. *records and
 * *bytes (key + value) count what was read. Returns 0, fn's non-zero return,
 * or IX_EKAFKA with errstr (watermarks, fetch errors, or no progress for
 * timeout_ms). */
int changelog_topic_read(const char *brokers, const char *const *props, const char *topic,
                         int32_t partition, int timeout_ms, changelog_topic_fn fn, void *ctx,
                         uint64_t *records, uint64_t *bytes, char *errstr, size_t errstr_size);

#endif
