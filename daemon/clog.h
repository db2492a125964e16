/* The daemon's side of the changelog topic (docs/STATE.md, "Changelog
 * topic"): tracks the users each owned partition changed since its last
 * completed changelog checkpoint (pipeline hook), writes a checkpoint's
 * records once the predictions before its offset are acknowledged and the
 * completion record once those are acknowledged, restores a partition from
 * the topic on assignment, and skips the events a restored user already
 * holds. Loop thread only. */
#ifndef IX_DAEMON_CLOG_H
#define IX_DAEMON_CLOG_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/metrics.h"
#include "state/changelog.h"
#include "state/store.h"
#include "stream/changelog_topic.h"

typedef struct clog clog_t;

typedef struct {
  const char *brokers;
  const char *const *props;  /* producer and reader properties; may be NULL */
  const char *topic;         /* the changelog topic */
  const char *input_topic;   /* must have the same partition count */
  metrics_t *metrics;        /* borrowed; the changelog's series are added to it */
  /* a checkpoint's users are encoded, and its records handed to the
   * producer, for at most this long per clog_pump call; 0: all at once in
   * clog_checkpoint (docs/STATE.md, "Incremental encoding") */
  uint32_t slice_us;
} clog_opts_t;

/* Makes sure topic can be the changelog (changelog_topic_ensure: created
 * through the Admin API when missing; refused with a sentence when its
 * partition count differs from input_topic's or its cleanup policy does not
 * compact), logs what it found, and creates the producer. Returns 0 or a negative
 * IX_E* with errstr filled. Free with clog_destroy(). */
int clog_new(const clog_opts_t *opts, clog_t **out, char *errstr, size_t errstr_size);
/* Waits up to flush_ms for records in flight, then frees. Accepts NULL. */
void clog_destroy(clog_t *c, int flush_ms);

/* pipeline hooks (core/pipeline.h, pipeline_set_hooks), ctx = the clog_t */
int clog_skip(void *ctx, int32_t partition, uint64_t user_id, int64_t offset);
void clog_applied(void *ctx, int32_t partition, uint64_t user_id, int64_t offset);
/* store hook (store_set_evict_hook), ctx = the clog_t: user_id was evicted;
 * a later checkpoint writes its tombstone (docs/STATE.md) */
void clog_evicted(void *ctx, int32_t partition, uint64_t user_id);

/* Where a partition's states came from. */
typedef enum {
  CLOG_FROM_COLD = 0,
  CLOG_FROM_LOCAL,
  CLOG_FROM_CHANGELOG,
  CLOG_FROM_LOCAL_TAIL, /* the local checkpoint and the changelog's records after it */
  CLOG_FROM_STANDBY     /* a standby copy plus the changelog's tail (daemon/standby.h) */
} clog_source_t;

/* 1 when source's states were read from the changelog topic (the input then
 * resumes at the restore's next offset), else 0. */
int clog_from_topic(clog_source_t source);

/* Partition p is assigned: read its changelog partition into a scratch
 * store. Without a local checkpoint (local_next -1), or with one older than
 * half the topic's delete.retention.ms (local_created_ms, Unix ms, when its
 * snapshot was taken), the whole partition is read, and when its newest
 * completion is newer than local_next st's users of p are replaced with it:
 * CLOG_FROM_CHANGELOG with *next_offset set (seek the input there). With a
 * younger local checkpoint only the records produced from a minute before
 * that snapshot on are read (the whole partition where the cluster does not
 * look offsets up by time: the mock), and when they hold a completion newer
 * than local_next they are laid over the local states
 * (changelog_restore_overlay): CLOG_FROM_LOCAL_TAIL with *next_offset set.
 * Otherwise st is kept (CLOG_FROM_LOCAL when local_next >= 0, else
 * CLOG_FROM_COLD) and every user of p in st is marked changed at
 * local_next - 1, so the next changelog checkpoint brings the topic up to
 * the local state. Logs and counts the source, time and bytes. A failure to
 * read (IX_EKAFKA: the broker away, a leader election, no progress within
 * the reader's timeout) or to hold the states read (IX_ENOMEM: the store's
 * slabs, the scratch store, the overlay or the copy) is returned with
 * errstr, counted (interestd_changelog_restore_failures_total), a partial
 * read into st is dropped (a failed read: st keeps what the local restore
 * put there; out of memory: p's states in st are dropped) and p waits
 * (clog_waiting(): not owned for checkpoints, counted in
 * interestd_changelog_partitions_waiting) until a later clog_assign reads
 * it or clog_revoke; the caller must not serve p meanwhile. A refused
 * record (other model, other partition) is returned with errstr; st is
 * then as the local restore left it. */
int clog_assign(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint, int64_t local_next,
                int64_t local_created_ms, clog_source_t *source, int64_t *next_offset,
                char *errstr, size_t errstr_size);
/* Before an assignment's clog_assign calls: the partitions, in the order
 * they will be restored. Their watermarks are asked in one round and the
 * next few are fetched while one is decoded (changelog_reader_prefetch);
 * what a restore computes does not change. n == 0 after the last restore
 * drops what was fetched for partitions not restored. Best effort: the
 * restores read as without it where it fails. */
void clog_prefetch(clog_t *c, const int32_t *partitions, size_t n);
/* clog_prefetch for those of partitions whose clog_assign will read the
 * changelog from its start, decided as clog_assign decides it from the
 * local checkpoint that the assignment will restore: the one
 * ckpt_restore_partition picks in ckpt_dir (NULL or "": none), judged from
 * its headers (ckpt_peek_partition). Hinted: no usable file (none, every
 * one corrupt, truncated or of another partition), another model's
 * (fingerprint or blob size), or one older than half the topic's
 * delete.retention.ms. Not hinted: a younger one (its tail is read, found
 * by time). A file whose body turns out corrupt at the restore is read
 * unhinted (the same records). */
void clog_prefetch_local(clog_t *c, const int32_t *partitions, size_t n, const char *ckpt_dir,
                         uint32_t fingerprint, size_t blob_size);
/* The restore reads so far and what of them the hints served (every reader
 * this writer made). */
void clog_read_stats(const clog_t *c, changelog_reader_stats_t *out);
/* clog_assign from a standby copy: copy holds partition p's users as rs
 * read them from the changelog up to offset `from` (exclusive); only the
 * records from `from` to the end are read (the local checkpoint, if any,
 * counts only when it is at least as new). Source CLOG_FROM_STANDBY when the
 * copy wins. Takes ownership of rs; copy is borrowed (the caller drops p
 * from it afterwards). IX_ERANGE when `from` is below the topic's low
 * watermark (nothing restored: the caller falls back to clog_assign);
 * IX_EKAFKA and IX_ENOMEM: p waits, as clog_assign's. */
int clog_assign_copy(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                     int64_t local_next, store_t *copy, changelog_restore_t *rs, int64_t from,
                     clog_source_t *source, int64_t *next_offset, char *errstr,
                     size_t errstr_size);
/* 1 while p's last restore failed to read or hold the changelog's states
 * (clog_assign's IX_EKAFKA or IX_ENOMEM) and no later one succeeded nor was it revoked. c may be NULL. */
int clog_waiting(const clog_t *c, int32_t p);
/* p waits as after a failed read (counted as one): the caller restored it
 * but cannot serve it from there (its input position could not be set). */
void clog_wait(clog_t *c, int32_t p);
/* After clog_assign: forget what was restored for p (its states were
 * dropped: the caller starts it cold); changed users are tracked afresh.
 * Counted in interestd_state_restores_total{source="cold"} (the restore
 * read was counted under its own source). */
void clog_start_cold(clog_t *c, int32_t p);
/* Partition p leaves: its pending checkpoint, changed users and skip set are dropped. */
void clog_revoke(clog_t *c, int32_t p);

/* Start a changelog checkpoint of p at next_offset (every consumed event
 * before it is in st): the users changed since the last completed one are
 * taken now and encoded from st by the following clog_pump calls, each
 * user's state as it is then, with its latest offset (all at once here when
 * opts.slice_us is 0); the evicted users' tombstones are decided and encoded
 * now. st must stay the store that clog_pump is given until then. No-op
 * while p's previous checkpoint is still being written or nothing changed.
 * Returns 0 or IX_ENOMEM (IX_ETOOBIG: a state too large for a record). */
int clog_checkpoint(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                    int64_t next_offset);

/* acked_next(ctx, p): the offset below which every prediction of p is
 * acknowledged (with exactly_once: and committed), the bound of what a
 * record may cover; durable(ctx, p, next_offset): a completion record of p is
 * acknowledged (the commit may go up to next_offset). */
typedef int64_t (*clog_acked_fn)(void *ctx, int32_t p);
typedef void (*clog_durable_fn)(void *ctx, int32_t p, int64_t next_offset);
/* Serve delivery reports and move every pending checkpoint on: encode and
 * hand over records for at most opts.slice_us in all. st and fingerprint:
 * the serving store and model (another than a checkpoint started with drops
 * that checkpoint: a reload replaced them). Call often (a timer: every
 * millisecond or so while clog_busy()) and before shutdown. */
void clog_pump(clog_t *c, store_t *st, uint32_t fingerprint, clog_acked_fn acked,
               clog_durable_fn durable, void *ctx);
/* 1 while a checkpoint has users left to encode or records left to hand to
 * the producer (pump soon), else 0. */
int clog_busy(const clog_t *c);
/* Partition p is being revoked (or the daemon stops): finish its pending
 * checkpoint, then write one at next_offset (every prediction before it must
 * be acknowledged) and wait until its completion record is acknowledged
 * (durable() called), pumping until ix_mono_ms() reaches deadline_ms. Returns
 * 0 when the changelog is complete at next_offset, IX_EKAFKA (not
 * acknowledged by the deadline, or a record failed: the next owner re-reads
 * from the last completed one) or IX_ENOMEM. Blocks the loop thread. */
int clog_checkpoint_now(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                        int64_t next_offset, clog_acked_fn acked, clog_durable_fn durable,
                        void *ctx, uint64_t deadline_ms);
/* A model switch (model.reload = warm, docs/STATE.md "Model swaps"): st is
 * the new model's store, whose users of p hold every event before pos. The
 * next checkpoint of p writes every one of them (at pos - 1) with the new
 * fingerprint and starts a new epoch: its completion names the changelog
 * offset of its first record, and a restore ignores every record before it.
 * A checkpoint of the old model being written finishes first. The skip set
 * of a restore is dropped (the new states are exact at pos). Call for every
 * owned partition, after the pipeline hooks point at the new store.
 * Returns 0 or IX_ENOMEM (nothing changed). */
int clog_switch_model(clog_t *c, int32_t p, store_t *st, int64_t pos);
/* After clog_assign: 1 when p's newest completed checkpoint was another
 * model's (nothing restored from it), with *next_offset its consistent
 * offset (for model.warm_start); else 0. */
int clog_other_model(const clog_t *c, int32_t p, int64_t *next_offset);
/* The changelog topic's partition count (the input's). */
int32_t clog_partitions(const clog_t *c);
/* 1 when the cluster answered the Admin API at start (DescribeConfigs), 0
 * when it does not support it (librdkafka's mock cluster). */
int clog_cluster_has_admin(const clog_t *c);
/* 1 while a state restored into p may hold events at or after next_offset
 * (a user whose changelog record is newer than the completion restored
 * from: its events up to that record are skipped, not applied, when they
 * come); a local checkpoint at next_offset would then claim those events
 * are still to come, and a restore from it would apply them twice. */
int clog_ahead_of(const clog_t *c, int32_t p, int64_t next_offset);
/* Checkpoints still being written. */
size_t clog_pending(const clog_t *c);

#endif
