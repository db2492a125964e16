/* The at-least-once rule, per input partition: which offset may be stored
 * for commit.
 *
 * Every consumed message gets an entry (inflight_push) in its partition's
 * ring, in offset order. Each message produced for it anywhere (a
 * prediction, a dead-letter record, a record to another sink, a changelog
 * write) is one awaited acknowledgement: inflight_expect() before it is
 * sent, inflight_ack() when it is acknowledged or given up on for good. An
 * entry is complete when nothing is awaited. The partition's commit offset
 * is o+1 only when every entry with offset <= o is complete, and, when
 * checkpoints are on, never beyond the newest durable checkpoint
 * (inflight_set_checkpoint). So any number of acknowledgement sources (N
 * sinks) share one rule: each adds its expectations to the same entries.
 *
 * A token names one entry (partition, the partition's generation, ring
 * sequence) in the low 62 bits; the caller may use bits 63 and 62 for its
 * own flags (they are ignored here). Assigning or revoking a partition bumps
 * its generation, so acknowledgements for an earlier ownership are ignored.
 *
 * Not thread-safe: the daemon's loop thread only. Needs no Kafka. */
#ifndef IX_DAEMON_INFLIGHT_H
#define IX_DAEMON_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

typedef struct inflight inflight_t;

#define INFLIGHT_TOKEN_BITS 62
#define INFLIGHT_TOKEN_MASK ((1ull << INFLIGHT_TOKEN_BITS) - 1)
#define INFLIGHT_MAX_PARTITION 65535

/* What the caller stored with an entry (borrowed; valid until the next call
 * that changes the tracker). */
typedef struct {
  int32_t partition;
  int64_t offset;
  int64_t msg_ts_ms; /* input message timestamp */
  uint64_t read_ns;  /* when it was read off the queue */
} inflight_entry_t;

/* Per-partition offsets, -1 where there is none yet. */
typedef struct {
  int owned;
  uint16_t gen;          /* bumped on each assignment and revocation */
  uint32_t in_flight;    /* entries not yet popped (complete or not) */
  int64_t consumed_next; /* offset after the last pushed entry */
  int64_t acked_next;    /* every entry before it is complete */
  int64_t stored_next;   /* last offset stored for commit */
  int64_t ckpt_next;     /* newest durable checkpoint's offset */
} inflight_part_t;

/* Stores offset next for commit of partition p; 0 on success (the tracker
 * then remembers it as stored), anything else to try again later. */
typedef int (*inflight_store_fn)(void *ctx, int32_t p, int64_t next);

/* use_checkpoints: clamp commit offsets to the newest durable checkpoint
 * (none yet = nothing is stored). Returns 0 or IX_ENOMEM. Free with
 * inflight_destroy(). */
int inflight_new(int use_checkpoints, inflight_t **out);
void inflight_destroy(inflight_t *t); /* accepts NULL */

/* Takes partition p (0..INFLIGHT_MAX_PARTITION): empty ring, generation
 * bumped, owned. start_next >= 0: the position it resumes at (a restored
 * checkpoint's offset), taken as consumed, acknowledged, stored and durable;
 * -1: nothing known yet. Returns 0, IX_ERANGE or IX_ENOMEM. */
int inflight_assign(inflight_t *t, int32_t p, int64_t start_next);
/* Gives p up: not owned, ring emptied, generation bumped (late
 * acknowledgements are ignored). No-op when not owned. */
void inflight_revoke(inflight_t *t, int32_t p);

/* A copy of p's offsets; all -1 and not owned when p was never assigned. */
inflight_part_t inflight_part(const inflight_t *t, int32_t p);
/* One past the highest partition ever assigned (for iterating). */
int32_t inflight_partitions(const inflight_t *t);

/* A consumed message of owned partition p at offset (increasing per
 * partition): a new entry awaiting nothing yet. *token names it.
 * Returns 0, IX_ESTATE (p not owned) or IX_ENOMEM. */
int inflight_push(inflight_t *t, int32_t p, int64_t offset, int64_t msg_ts_ms,
                  uint64_t read_ns, uint64_t *token);
/* One more acknowledgement awaited for the entry of token. Returns 0, or
 * IX_ESTATE when the token is stale (partition revoked since, or the entry
 * already complete and popped). */
int inflight_expect(inflight_t *t, uint64_t token);
/* One awaited acknowledgement arrived (or was given up on for good).
 * Returns the entry (borrowed, valid until the next call that changes the
 * tracker) or NULL when the token is stale or awaits nothing. */
const inflight_entry_t *inflight_ack(inflight_t *t, uint64_t token);
/* The entry of token without changing it; NULL when stale. */
const inflight_entry_t *inflight_peek(const inflight_t *t, uint64_t token);

/* p's newest durable checkpoint is at next (ignored when not newer). */
void inflight_set_checkpoint(inflight_t *t, int32_t p, int64_t next);

/* Pops p's complete entries from the head and, when the commit offset
 * moved beyond the stored one, calls store(ctx, p, next). */
void inflight_advance(inflight_t *t, int32_t p, inflight_store_fn store, void *ctx);
/* inflight_advance() for every partition changed since its last advance. */
void inflight_advance_dirty(inflight_t *t, inflight_store_fn store, void *ctx);

#endif
