/* The Kafka side of the changelog topic (docs/STATE.md, "Changelog topic"):
 * its partition count from the metadata, its creation and the check of its
 * settings through the Admin API, and reading one partition from its start
 * to its end for a restore. Producing goes through stream/producer.h.
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

/* Settings of a changelog topic that changelog_topic_ensure() creates,
 * "key=value" strings, NULL-terminated (docs/OPERATIONS.md explains each):
 * compaction, and segments short enough that the cleaner sees them. */
extern const char *const changelog_topic_create_configs[];

typedef enum {
  CHANGELOG_TOPIC_CHECKED = 0, /* it existed: partition count and cleanup policy checked */
  CHANGELOG_TOPIC_CREATED,     /* it was missing and was created through the Admin API */
  CHANGELOG_TOPIC_NO_ADMIN,    /* it existed and the cluster does not answer the Admin API
                                * (librdkafka's mock cluster): partition count checked only */
} changelog_topic_status_t;

/* Makes sure changelog topic `topic` can hold input_topic's states: when it
 * is missing, creates it through the Admin API with input_topic's partition
 * count, the broker's default replication factor and
 * changelog_topic_create_configs; when it exists, checks its partition
 * count and (DescribeConfigs) that its cleanup.policy includes compact and
 * that a policy that also deletes keeps records forever (retention.ms and
 * retention.bytes -1). *partitions is input_topic's partition count;
 * *delete_retention_ms the topic's delete.retention.ms (how long compaction
 * keeps a tombstone), -1 when not known (no Admin API, or just created with
 * the broker's default).
 * Returns 0 with *status set; IX_ECONFIG with errstr a sentence naming what
 * is wrong and what to do (input topic missing, wrong partition count,
 * cleanup policy, topic missing on a cluster without the Admin API, creation
 * refused); IX_EKAFKA when the cluster cannot be asked within timeout_ms. */
int changelog_topic_ensure(const char *brokers, const char *const *props, const char *topic,
                           const char *input_topic, int timeout_ms,
                           changelog_topic_status_t *status, int32_t *partitions,
                           int64_t *delete_retention_ms, char *errstr, size_t errstr_size);

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
/* The same from offset `from` (-1: the low watermark) to the high watermark:
 * the tail past a standby copy's position. Returns IX_ERANGE with errstr
 * when `from` is below the low watermark (records the reader never saw were
 * deleted: the caller reads the whole partition instead). */
int changelog_topic_read_from(const char *brokers, const char *const *props, const char *topic,
                              int32_t partition, int64_t from, int timeout_ms,
                              changelog_topic_fn fn, void *ctx, uint64_t *records,
                              uint64_t *bytes, char *errstr, size_t errstr_size);

/* A restore reader: one group-less consumer kept for the partitions of an
 * assignment, read one after another (one client, its connections and
 * metadata, instead of one per partition). One thread at a time. */
typedef struct changelog_reader changelog_reader_t;

/* Returns 0 or IX_EKAFKA / IX_ENOMEM with errstr. Free with
 * changelog_reader_destroy() (accepts NULL). */
int changelog_reader_new(const char *brokers, const char *const *props, const char *topic,
                         changelog_reader_t **out, char *errstr, size_t errstr_size);
void changelog_reader_destroy(changelog_reader_t *r);
/* Called once before the first record with the offsets the read spans,
 * [from, end): at most end - from records follow (a caller sizes its
 * store and index for them). */
typedef void (*changelog_span_fn)(void *ctx, int64_t from, int64_t end);
/* The partitions an assignment will read, in the order it will read them
 * (a hint, best effort): their watermarks are asked in one round, and from
 * the first record of one the next few (4) are fetched from their start,
 * each into its own queue in the client until its turn (the client stops
 * fetching a partition whose queue holds 16 MiB). A read of a hinted
 * partition from its start takes what was fetched; from another offset it
 * is fetched anew. Replaces the previous hints; n == 0 drops them and
 * everything fetched for them. */
void changelog_reader_prefetch(changelog_reader_t *r, const int32_t *partitions, size_t n,
                               int timeout_ms);
/* What r's reads found of the hints, since r was made. */
typedef struct {
  uint64_t reads;         /* changelog_reader_read() calls */
  uint64_t hinted;        /* ... of a partition among the hints (watermarks asked with them) */
  uint64_t fetched_ahead; /* ... whose fetch was under way before the read began */
} changelog_reader_stats_t;
void changelog_reader_get_stats(const changelog_reader_t *r, changelog_reader_stats_t *out);
/* changelog_topic_read_from() with r's client; span may be NULL. A hinted
 * partition's watermarks are those asked at the hint (a record written
 * since is not read, as one written after a read starts is not). */
int changelog_reader_read(changelog_reader_t *r, int32_t partition, int64_t from,
                          int timeout_ms, changelog_span_fn span, changelog_topic_fn fn,
                          void *ctx, uint64_t *records, uint64_t *bytes, char *errstr,
                          size_t errstr_size);

/* A follower: one group-less consumer assigned to any set of the topic's
 * partitions, each from a given offset, read in small batches without
 * blocking (standby replicas, daemon/standby.h). auto.offset.reset is
 * "error": a position deleted under the follower is reported, never
 * skipped. One thread at a time. */
typedef struct changelog_follower changelog_follower_t;

/* Called for each record (value NULL for a tombstone) or, with error set
 * (a sentence) and no record, for a partition whose position was lost
 * (deleted by retention) or could not be fetched. */
typedef void (*changelog_follow_fn)(void *ctx, int32_t partition, int64_t offset,
                                    const void *key, size_t key_len, const void *value,
                                    size_t value_len, const char *error);

/* Returns 0 or IX_EKAFKA with errstr. Free with changelog_follower_destroy(). */
int changelog_follower_new(const char *brokers, const char *const *props, const char *topic,
                           changelog_follower_t **out, char *errstr, size_t errstr_size);
void changelog_follower_destroy(changelog_follower_t *f); /* accepts NULL */
/* Start following partition from offset (-1: its start). Returns 0 or IX_EKAFKA. */
int changelog_follower_add(changelog_follower_t *f, int32_t partition, int64_t offset);
/* Stop following partition; records of it already fetched are dropped. */
int changelog_follower_remove(changelog_follower_t *f, int32_t partition);
/* Hands at most max records (and errors) to fn without waiting; returns how many. */
size_t changelog_follower_poll(changelog_follower_t *f, size_t max, changelog_follow_fn fn,
                               void *ctx);
/* The partition's high watermark as the client last learned it (-1: not yet). */
int64_t changelog_follower_end(changelog_follower_t *f, int32_t partition);

/* The offset of partition's first record with a timestamp at or after ts_ms
 * (Unix ms), into *offset; -1 when the cluster names none (no such record,
 * or a cluster that does not look up by time: librdkafka's mock answers -1
 * for every timestamp). Returns 0 or IX_EKAFKA with errstr. */
int changelog_topic_offset_for_time(const char *brokers, const char *const *props,
                                    const char *topic, int32_t partition, int64_t ts_ms,
                                    int timeout_ms, int64_t *offset, char *errstr,
                                    size_t errstr_size);

#endif
