/* Exactly-once output (kafka.processing_guarantee = exactly_once; docs/DAEMON.md,
 * "Exactly-once output"): the transaction cycle beside the loop.
 *
 * One Kafka transaction at a time, begun before the first batch after the
 * last commit. Everything a batch produces (predictions, dead-letter records)
 * goes to the transactional producer; txn_commit() adds the consumed input
 * offsets (with the consumer's group metadata) and commits, so the outputs of
 * an event and its input offset become visible together or not at all.
 *
 * The in-memory states follow the transactions: before an event changes a
 * user for the first time in a transaction, the user's blob (or its absence)
 * is saved (an undo copy, taken through the pipeline's skip hook). A commit
 * forgets the copies; an abort puts them back, rewinds each partition's
 * in-flight ring and consumer position to the first offset the transaction
 * consumed, so the states hold exactly the committed events again.
 *
 * A partition restored from a checkpoint older than the group's committed
 * offset C replays the events before C into its states without producing
 * anything (txn_replaying): their outputs were committed already.
 *
 * Loop thread only. */
#ifndef IX_DAEMON_TXN_H
#define IX_DAEMON_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "core/pipeline.h"
#include "daemon/inflight.h"
#include "stream/consumer.h"
#include "stream/producer.h"

typedef struct txn txn_t;

typedef struct {
  producer_t *producer; /* transactional (producer_opts_t.transactional_id), borrowed */
  consumer_t *consumer; /* borrowed */
  inflight_t *inflight; /* borrowed: consumed offsets, rewound on abort */
  pipeline_t *pipe;     /* borrowed: its store gets the undo copies back */
  uint32_t commit_interval_ms; /* txn_due() once a transaction is this old */
  int timeout_ms;       /* bound on each blocking transactional call */
  /* Puts every message the daemon holds back (its retry backlog) into the
   * producer before a commit; 0 when none is left, else the commit aborts. */
  int (*flush)(void *ctx, int timeout_ms);
  /* After an abort's rewind: the daemon drops what it keeps for the aborted
   * messages (its backlog). */
  void (*rolled_back)(void *ctx);
  void *ctx;
} txn_opts_t;

/* Registers the transactional id (aborting what an earlier incarnation left
 * open, fencing it). Returns 0 or a negative IX_E* with errstr. Free with
 * txn_destroy(). */
int txn_new(const txn_opts_t *o, txn_t **out, char *errstr, size_t errstr_size);
void txn_destroy(txn_t *t); /* accepts NULL */

/* The pipeline's hooks become the transaction's (undo copies), which call
 * skip and applied (may be NULL) with inner_ctx after their own work. */
void txn_set_hooks(txn_t *t, pipeline_skip_fn skip, pipeline_applied_fn applied,
                   void *inner_ctx);

/* Before a batch: begins a transaction when none is open. 0, or IX_EKAFKA
 * (fatal) with errstr. */
int txn_begin(txn_t *t, char *errstr, size_t errstr_size);
/* Whether partition p's message at offset may be processed: after an abort
 * rewound p to offset R, messages fetched before the rewind (offsets beyond
 * R) can still be queued; they are dropped until R arrives (and the rewind is
 * asked again when they keep coming). */
int txn_accept(txn_t *t, int32_t p, int64_t offset);
/* The batch consumed partition p's message at offset (in offset order). */
void txn_consumed(txn_t *t, int32_t p, int64_t offset);
/* Whether the event at (p, offset) is replayed into state only: its outputs
 * were committed before this process restored p from an older checkpoint. */
int txn_replaying(const txn_t *t, int32_t p, int64_t offset);
/* The next offset of partition p whose event outputs are committed: set by
 * each commit that consumed from p, or read from the group at assignment
 * (txn_assigned); -1 when none is known. Everything a changelog record
 * covers must be below it (docs/STATE.md, "Incremental encoding"). */
int64_t txn_committed(const txn_t *t, int32_t p);
/* A delivery of this transaction failed: the commit will abort. */
void txn_delivery_failed(txn_t *t, const char *why);

int txn_open(const txn_t *t);
/* Whether the open transaction is older than commit_interval_ms. */
int txn_due(const txn_t *t);

/* Commits the open transaction (none open: 0). Returns 0 (committed), IX_ESTATE
 * (it failed and was aborted and rolled back: states and positions are those
 * of the last commit) or IX_EKAFKA (fatal: fenced or broken; stop). why says
 * what happened. */
int txn_commit(txn_t *t, char *why, size_t why_size);
/* Aborts the open transaction and rolls back (partitions lost). Returns 0 or
 * IX_EKAFKA (fatal). */
int txn_abort(txn_t *t, char *why, size_t why_size);

/* Partition p was assigned and its states restored up to start_next (-1:
 * nothing restored). When the group's committed offset C is beyond
 * start_next, the events in [start_next, C) are replayed without output.
 * With nothing restored and rebuild set (checkpoints or a changelog are
 * configured), the states are rebuilt from the input itself: *seek_to gets
 * the partition's first offset and [first, C) is replayed without output
 * (the committed offset runs ahead of the first checkpoint, so starting at C
 * with empty states would lose the events before it). *seek_to = -1: start
 * where the assignment says. Returns 0 or IX_EKAFKA (the committed offset
 * could not be read: resuming would duplicate or skip outputs). */
int txn_assigned(txn_t *t, int32_t p, int64_t start_next, int rebuild, int64_t *seek_to,
                 char *why, size_t why_size);
/* Partition p left (after txn_commit or txn_abort). */
void txn_revoked(txn_t *t, int32_t p);

typedef struct {
  uint64_t commits, aborts, replayed; /* replayed: events applied without output */
  uint64_t undo_users;                /* undo copies taken, total */
  uint64_t stale;                     /* messages dropped after a rewind (fetched before it) */
} txn_stats_t;
void txn_get_stats(const txn_t *t, txn_stats_t *out);

#endif
