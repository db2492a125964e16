/* The daemon's Kafka producer. Delivery reports arrive on librdkafka's main
 * queue, which can be routed to a file descriptor for a libuv loop
 * (use_fd); producer_poll() serves them and calls on_delivery once per
 * message. Messages are copied on send. Loop thread only, except where noted. */
#ifndef IX_STREAM_PRODUCER_H
#define IX_STREAM_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

typedef struct producer producer_t;
typedef struct producer_topic producer_topic_t;

#define PRODUCER_PARTITION_ANY (-1) /* let the partitioner pick from the key */

typedef struct {
  const char *name;
  const char *value; /* NUL-terminated */
} producer_header_t;

#define PRODUCER_MAX_HEADERS 4

/* Why a message was not delivered, by what the sender can do about it: a
 * transient failure is worth sending again; the others are permanent (the
 * same message would fail the same way: librdkafka already retried what it
 * could). One table: the enum and the metric labels (producer_fail_label). */
#define PRODUCER_FAIL_MAP(XX)                                                  \
  XX(TRANSIENT, "transient")           /* timeouts, brokers away, leaders moving */ \
  XX(TOO_LARGE, "too_large")           /* over message.max.bytes, here or at the broker */ \
  XX(UNKNOWN_TOPIC, "unknown_topic")   /* topic or partition does not exist */ \
  XX(NOT_AUTHORIZED, "not_authorized") /* topic/cluster authorisation, authentication */ \
  XX(INVALID, "invalid")               /* record refused as invalid, bad argument */ \
  XX(OTHER, "other")                   /* any other non-retriable error */

typedef enum {
#define XX(name, _) PRODUCER_FAIL_##name,
  PRODUCER_FAIL_MAP(XX)
#undef XX
  PRODUCER_FAIL_N
} producer_fail_t;

/* Metric label of a failure class ("too_large", ...); never NULL. */
const char *producer_fail_label(producer_fail_t f);

/* One delivery report. err is 0 when the broker acknowledged the message,
 * else IX_EKAFKA with errstr (static) naming the reason and fail its class;
 * key/value are the
 * message's bytes, borrowed for the call (so a failed message can be sent
 * again); opaque is what producer_send() was given. */
typedef struct {
  uint64_t opaque;
  int err;
  const char *errstr;
  producer_fail_t fail; /* PRODUCER_FAIL_TRANSIENT when err == 0 */
  int32_t partition;
  int64_t offset;
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  /* only when err != 0: the message's headers (borrowed for the call) */
  size_t n_headers;
  producer_header_t headers[PRODUCER_MAX_HEADERS];
} producer_report_t;

typedef void (*producer_delivery_fn)(void *ctx, const producer_report_t *report);

typedef struct {
  const char *brokers;
  const char *const *props; /* librdkafka "key=value" overrides, NULL-terminated; may be NULL */
  producer_delivery_fn on_delivery; /* may be NULL */
  void *ctx;
  int use_fd;               /* route delivery reports to producer_fd() */
  const char *transactional_id; /* NULL or "": not transactional; else a transactional
                                   producer (producer_txn_*) with this transactional.id */
} producer_opts_t;

/* Defaults (before props): linger.ms=1, partitioner=murmur2_random (Kafka's
 * Java partitioner, so keys land where Java clients would put them).
 * Returns 0 or a negative IX_E* with errstr filled. Free with producer_destroy(). */
int producer_new(const producer_opts_t *opts, producer_t **out, char *errstr,
                 size_t errstr_size);
/* Waits up to flush_timeout_ms for outstanding messages, then frees;
 * accepts NULL. Undelivered messages are reported as failed first. */
void producer_destroy(producer_t *p, int flush_timeout_ms);

/* Readable when delivery reports are waiting (edge: the queue went from
 * empty to non-empty); -1 without use_fd. */
int producer_fd(const producer_t *p);

/* Handle of a topic, created on first use; borrowed, valid until
 * producer_destroy(). NULL on error. */
producer_topic_t *producer_topic(producer_t *p, const char *name);

/* Queues one message (copied). ts_ms 0 = now. Returns 0, IX_EFULL when the
 * local queue is full (try again after delivery reports were served), or a
 * permanent local refusal: IX_ETOOBIG (larger than the producer's
 * message.max.bytes), IX_EKAFKA (unknown partition, invalid argument, fatal
 * producer). A refusal is not logged here; producer_refusal() says why.
 * Any thread. */
int producer_send(producer_t *p, producer_topic_t *topic, int32_t partition, const void *key,
                  size_t key_len, const void *value, size_t value_len, int64_t ts_ms,
                  const producer_header_t *headers, size_t n_headers, uint64_t opaque);

/* The last refusal of producer_send() on this thread: its class and a
 * sentence naming the local cause (e.g. "message of 1048620 bytes is larger
 * than the producer's message.max.bytes (1000000), refused locally").
 * Borrowed; valid until the next producer_send() on this thread. */
const char *producer_refusal(producer_fail_t *fail);

/* Serves delivery reports for up to timeout_ms (0 = only what is ready).
 * Returns how many events were served. */
int producer_poll(producer_t *p, int timeout_ms);
/* Serves reports until nothing is outstanding or timeout_ms passed.
 * Returns 0, or IX_ESTATE when messages are still outstanding. */
int producer_flush(producer_t *p, int timeout_ms);
/* Messages queued or in flight (not yet reported). Any thread. */
size_t producer_outstanding(const producer_t *p);

/* Transactions (opts.transactional_id set; docs/DAEMON.md, "Exactly-once
 * output"). Each returns 0 or one of these, with errstr naming the cause:
 *   IX_ESTATE  abortable: the transaction failed; producer_txn_abort() it and
 *              roll back what it covered
 *   IX_EKAFKA  fatal: the producer is fenced (another process took the same
 *              transactional.id) or broken; the process must stop
 *   IX_EFULL   retriable: timed out; the same call may be made again
 * Loop thread only; each blocks up to timeout_ms. */
/* Registers the transactional.id with its coordinator, aborting the
 * transaction a previous incarnation left open and fencing it out. */
int producer_txn_init(producer_t *p, int timeout_ms, char *errstr, size_t errstr_size);
int producer_txn_begin(producer_t *p, char *errstr, size_t errstr_size);
struct consumer;
typedef struct {
  int32_t partition;
  int64_t next_offset; /* the offset of the next message to read */
} producer_txn_offset_t;
/* Adds offs[0..n) of the consumer's topic as the group's committed offsets
 * (with the consumer's group metadata, so a member that left the group is
 * fenced), then commits: flushes every message of the transaction first. */
int producer_txn_commit(producer_t *p, struct consumer *c, const producer_txn_offset_t *offs,
                        size_t n, int timeout_ms, char *errstr, size_t errstr_size);
/* Aborts the open transaction: queued messages are purged (reported failed). */
int producer_txn_abort(producer_t *p, int timeout_ms, char *errstr, size_t errstr_size);

/* Checks one librdkafka property: 0 or IX_ECONFIG with errstr filled. */
int producer_check_property(const char *key, const char *value, char *errstr,
                            size_t errstr_size);

#endif
