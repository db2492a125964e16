/* The daemon's Kafka consumer: a consumer-group member (cooperative-sticky
 * by default) whose queue is routed to a file descriptor, so a libuv loop
 * can watch it with uv_poll and drain it on each wake-up. Offsets are stored
 * only by the caller (enable.auto.offset.store=false is forced): the caller
 * stores an offset once everything derived from the messages before it is
 * safe. Stored offsets are committed by librdkafka's auto-commit timer, by
 * consumer_commit(), and for 2 s after each assignment asynchronously after a
 * store (at most every 100 ms), so that an assignment lost sooner than the
 * auto-commit interval (repeated heartbeat errors) still commits its work.
 * All functions: loop thread only. */
#ifndef IX_STREAM_CONSUMER_H
#define IX_STREAM_CONSUMER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stream/rec.h" /* rec_t: partition, offset, timestamp, key, value */

typedef struct consumer consumer_t;

/* A partition of the subscribed topic and, on assignment, where to start. */
typedef struct {
  int32_t partition;
  int64_t offset; /* CONSUMER_OFFSET_COMMITTED, or an absolute offset >= 0 */
} consumer_part_t;

#define CONSUMER_OFFSET_COMMITTED (-1001) /* librdkafka's RD_KAFKA_OFFSET_INVALID */

typedef enum {
  CONSUMER_ASSIGN = 0, /* partitions added; the callee may set parts[i].offset */
  CONSUMER_REVOKE = 1, /* partitions leave; the callee finishes and commits first */
  CONSUMER_LOST = 2,   /* partitions were lost (session timeout): do not commit */
} consumer_event_t;

/* Called from within consumer_poll() or consumer_close(), on the loop
 * thread. parts is borrowed for the call. */
typedef void (*consumer_rebalance_fn)(void *ctx, consumer_event_t ev, consumer_part_t *parts,
                                      size_t n);

/* The result of one offset commit (auto-commit timer, consumer_commit(),
 * close): err 0 with parts[i].offset the offsets now committed, or IX_EKAFKA
 * with errstr (static) naming the reason. Called on the loop thread from
 * consumer_poll(), consumer_commit() or consumer_close(); parts borrowed. */
typedef void (*consumer_commit_fn)(void *ctx, int err, const char *errstr,
                                   const consumer_part_t *parts, size_t n);

/* Events the broker deleted (retention) before they were read: partition's
 * next message was expected at `expected`, the log now starts beyond it and
 * consumption resumed at `resumed`; `skipped` offsets were never seen. The
 * consumer has logged one error line. Called on the loop thread from
 * consumer_poll(). */
typedef void (*consumer_skip_fn)(void *ctx, int32_t partition, int64_t expected,
                                 int64_t resumed, int64_t skipped);

typedef struct {
  const char *brokers;      /* bootstrap list */
  const char *group;        /* group.id */
  const char *topic;        /* the subscribed topic */
  const char *const *props; /* librdkafka "key=value" overrides, NULL-terminated; may be NULL */
  consumer_rebalance_fn on_rebalance; /* may be NULL */
  consumer_commit_fn on_commit;       /* may be NULL */
  consumer_skip_fn on_skip;           /* may be NULL */
  void *ctx;
} consumer_opts_t;

/* Creates the consumer and subscribes. Defaults (before props):
 * partition.assignment.strategy=cooperative-sticky, auto.offset.reset=earliest,
 * enable.auto.commit=true, auto.commit.interval.ms=1000,
 * enable.partition.eof=false. Forced (after props): enable.auto.offset.store=false.
 * Returns 0 or a negative IX_E* with errstr filled. Free with consumer_destroy(). */
int consumer_new(const consumer_opts_t *opts, consumer_t **out, char *errstr,
                 size_t errstr_size);
/* Closes (if not yet closed, without waiting) and frees; accepts NULL. */
void consumer_destroy(consumer_t *c);

/* Readable when the queue went from empty to non-empty. consumer_poll()
 * clears it; the caller must then drain until consumer_poll() returns 0 (or
 * arrange to poll again later), since the fd fires only on that edge. */
int consumer_fd(const consumer_t *c);
/* Messages (and callbacks) waiting in the queue. */
size_t consumer_queue_length(const consumer_t *c);

/* Takes up to max ready messages without blocking, serving rebalance
 * callbacks on the way. Fills out[0..n) and returns n (0 = queue empty), or
 * IX_ENOMEM (nothing taken off the queue) when the message array cannot
 * grow. Error messages are logged and skipped. The rec_t key/value pointers
 * are borrowed; valid until the next consumer_poll() or consumer_release(). */
ssize_t consumer_poll(consumer_t *c, rec_t *out, size_t max);
/* Frees the messages of the last consumer_poll(). */
void consumer_release(consumer_t *c);

/* Stores next_offset (the offset of the next message to read) of a
 * partition for commit. Returns 0 or IX_EKAFKA (e.g. partition not owned). */
int consumer_store_offset(consumer_t *c, int32_t partition, int64_t next_offset);
/* Commits the stored offsets of every owned partition synchronously.
 * Returns 0 (also when there was nothing to commit) or IX_EKAFKA. */
int consumer_commit(consumer_t *c);
/* The group's committed offset of partition (a request to the coordinator,
 * waiting up to timeout_ms): 0 with *offset (CONSUMER_OFFSET_COMMITTED when
 * none is committed), or IX_EKAFKA. Loop thread. */
int consumer_committed(consumer_t *c, int32_t partition, int timeout_ms, int64_t *offset);

/* Moves the fetch position of owned partition p to next_offset (waits up to
 * timeout_ms): messages of p still queued are discarded, the next one read
 * is at next_offset. Returns 0 or IX_EKAFKA. Loop thread (exactly-once
 * rollback, daemon/txn.h). */
int consumer_seek(consumer_t *c, int32_t partition, int64_t next_offset, int timeout_ms);

/* Stops / restarts fetching a partition. Messages of a paused partition
 * still in the queue are discarded by librdkafka and fetched again from the
 * last consumed offset on resume. Returns 0 or IX_EKAFKA. */
int consumer_pause(consumer_t *c, const int32_t *partitions, size_t n);
int consumer_resume(consumer_t *c, const int32_t *partitions, size_t n);

/* High watermark of a partition from the last fetch (no request), or -1. */
/* Partitions of the input topic from the broker's metadata (blocks up to
 * timeout_ms); IX_EKAFKA or IX_ENOENT when unknown. */
int consumer_partition_count(consumer_t *c, int timeout_ms);

int64_t consumer_high_watermark(consumer_t *c, int32_t partition);
/* Asks the partition's leader for its watermarks (waits up to timeout_ms):
 * 0 with *lo and *hi, or IX_EKAFKA. Loop thread. */
int consumer_query_watermarks(consumer_t *c, int32_t partition, int timeout_ms, int64_t *lo,
                              int64_t *hi);
/* Low watermark (oldest offset kept) from the last fetch (no request), or -1. */
int64_t consumer_low_watermark(consumer_t *c, int32_t partition);

/* Leaves the group: revokes every partition through the rebalance callback
 * and commits. Idempotent. Returns 0 or IX_EKAFKA. Closing while the group
 * join is under way (no assignment yet) first waits for the first assignment,
 * at most wait_ms and session.timeout.ms, and hands it back without calling
 * the rebalance callback; if it does not come, the librdkafka handle is kept
 * undestroyed until exit (librdkafka 2.0.2 would abort; see consumer.c). */
int consumer_close(consumer_t *c, int wait_ms);

/* Checks one librdkafka property the way the consumer would apply it,
 * without creating a client: 0 or IX_ECONFIG with errstr filled. */
int consumer_check_property(const char *key, const char *value, char *errstr,
                            size_t errstr_size);

#endif
