/* The retry backlog: messages that could not be handed to the producer yet
 * (its queue was full, older messages wait before them) or whose delivery
 * failed transiently, kept in order with their own copies of key, value and
 * headers until they are sent again. First in, first out: the daemon sends
 * from the head only, so a partition's messages keep their order.
 *
 * Not thread-safe: the daemon's loop thread only. Needs no Kafka. */
#ifndef IX_DAEMON_BACKLOG_H
#define IX_DAEMON_BACKLOG_H

#include <stddef.h>
#include <stdint.h>

#include "stream/producer.h"

typedef struct backlog backlog_t;

/* One kept message. Borrowed from the backlog: valid until backlog_pop()
 * or backlog_destroy(). */
typedef struct {
  uint64_t opaque;        /* the caller's tag (the daemon: an in-flight token and flags) */
  int64_t not_before_ms;  /* not sent again before this CLOCK_MONOTONIC ms */
  uint32_t attempts;      /* failed attempts so far */
  const void *key, *value;
  size_t key_len, value_len;
  size_t n_headers;
  const producer_header_t *headers;
} backlog_msg_t;

/* Returns 0 or IX_ENOMEM. Free with backlog_destroy(). */
int backlog_new(backlog_t **out);
/* Frees every kept message and the backlog; accepts NULL. */
void backlog_destroy(backlog_t *bl);

/* Appends a copy of the message (key, value, and up to PRODUCER_MAX_HEADERS
 * headers; the caller keeps its buffers). attempts and not_before_ms as
 * given. Returns 0 or IX_ENOMEM (nothing appended). */
int backlog_push(backlog_t *bl, uint64_t opaque, const void *key, size_t key_len,
                 const void *value, size_t value_len, const producer_header_t *headers,
                 size_t n_headers, uint32_t attempts, int64_t not_before_ms);
/* The oldest message, or NULL when empty. */
const backlog_msg_t *backlog_head(const backlog_t *bl);
/* Removes and frees the oldest message (no-op when empty). */
void backlog_pop(backlog_t *bl);
/* The head failed once more: attempts + 1, not sent before not_before_ms.
 * Returns the new attempt count (0 when empty). */
uint32_t backlog_defer_head(backlog_t *bl, int64_t not_before_ms);
/* Messages kept. */
uint64_t backlog_len(const backlog_t *bl);

#endif
