/* Checkpoints: one file per input partition holding that partition's user
 * states and the input offset they are consistent with. Files are
 * "<dir>/p<partition>-<generation>.ckpt", written to a temporary name,
 * fsynced, renamed and the directory fsynced; the newest `keep` generations
 * per partition stay on disk. Layout and protocol: docs/STATE.md.
 *
 * Two ways to write: ckpt_snapshot_start() takes an incremental snapshot
 * (the caller's loop copies users in small slices, the store copies a user
 * first when it is about to change, a writer thread writes the files) and
 * publishes each file only when the caller says so (ckpt_snapshot_publish,
 * once the predictions for the events before its offset are acknowledged);
 * ckpt_write_partition() writes and publishes synchronously (revocation,
 * shutdown). Not thread-safe; call from the thread that owns the store. */
#ifndef IX_STATE_CHECKPOINT_H
#define IX_STATE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

#define CKPT_FORMAT_VERSION 1u
#define CKPT_HEADER_BYTES 80u

typedef struct ckpt ckpt_t;

typedef struct {
  const char *dir; /* checkpoint directory; created (with parents) if missing */
  unsigned keep;   /* generations kept per partition, >= 2 (0 = 2) */
} ckpt_opts_t;

/* State of one partition's file in a snapshot. */
typedef enum {
  CKPT_COPYING = 0, /* users still being copied or written */
  CKPT_WRITTEN,     /* temporary file complete and fsynced; not visible yet */
  CKPT_PUBLISHING,  /* rename + directory fsync requested */
  CKPT_DURABLE,     /* renamed and the directory fsynced: restorable */
  CKPT_FAILED,      /* err and reason say why; nothing visible */
  CKPT_DISCARDED,   /* dropped by ckpt_snapshot_discard/abort; nothing visible */
} ckpt_state_t;

/* Outcome for one partition of a write. err == 0 with state CKPT_DURABLE
 * (always the case for a successful synchronous write) means the file is
 * durable: every event before next_offset is in it. */
typedef struct {
  int32_t partition;
  int err;             /* 0 or a negative IX_E* */
  ckpt_state_t state;
  uint64_t generation; /* file generation written (or attempted) */
  int64_t next_offset; /* the offset passed in for this partition */
  uint64_t users;      /* records written */
  uint64_t bytes;      /* file size */
  char reason[320];    /* when err != 0: file name and what failed */
} ckpt_result_t;

typedef struct {
  uint64_t snapshots;        /* snapshots finished (every partition terminal) */
  uint64_t files_written;    /* durable files, snapshots and synchronous */
  uint64_t files_failed;     /* partitions whose write failed */
  uint64_t last_start_us;    /* duration of the last ckpt_snapshot_start() (a loop stall) */
  uint64_t max_start_us;
  uint64_t max_step_us;      /* longest ckpt_snapshot_step() call, all snapshots */
  uint64_t last_copy_ms;     /* start to the last user copied, last snapshot */
  uint64_t last_snapshot_ms; /* start to every file terminal, last snapshot */
  uint64_t last_bytes;       /* bytes of the last snapshot's durable files */
  uint64_t last_users;       /* users in the last snapshot */
  uint64_t last_before_change; /* of those, copied just before a change */
} ckpt_stats_t;

/* Open a checkpoint writer on opts->dir (creating it), and remove temporary
 * files left by writer processes that no longer exist. Fills errstr on
 * failure. Free with ckpt_destroy(). */
int ckpt_new(const ckpt_opts_t *opts, ckpt_t **out, char *errstr, size_t errstr_size);
/* Aborts a running snapshot (ckpt_snapshot_abort), stops the writer thread,
 * then frees. Accepts NULL. */
void ckpt_destroy(ckpt_t *ck);

/* Start an incremental snapshot of partitions[i] at next_offsets[i] (the
 * next input offset to consume: the store contains exactly the events
 * before it) with the model fingerprint. Call it between batches. It fixes
 * the partitions' user sets (store_capture_begin: O(partitions)) and returns;
 * the caller may mutate the store right away. Until the copy is complete the
 * store must not be destroyed (ckpt_snapshot_abort() first) and the caller
 * calls ckpt_snapshot_step() regularly. A writer thread (nice 10, lowest
 * best-effort I/O priority) writes one temporary file per partition and
 * fsyncs it; the file becomes visible only through ckpt_snapshot_publish().
 * Returns IX_ESTATE when a snapshot is already running (or the store has
 * another capture running), IX_ESYS/IX_ENOMEM otherwise (errstr filled). */
int ckpt_snapshot_start(ckpt_t *ck, store_t *st, const int32_t *partitions,
                        const int64_t *next_offsets, size_t n, uint32_t fingerprint,
                        char *errstr, size_t errstr_size);
/* Copy users into the writer's buffers for about budget_us microseconds
 * (stops early when the writer is behind: its queue is bounded). Returns 1
 * once every user has been copied (further calls do nothing), else 0. */
int ckpt_snapshot_step(ckpt_t *ck, uint64_t budget_us);
/* Read end of the writer's notification pipe (non-blocking, close-on-exec)
 * while a snapshot runs, else -1. Watch it for readability (uv_poll_start
 * with UV_READABLE) and call ckpt_snapshot_poll() on each wake-up. */
int ckpt_snapshot_fd(const ckpt_t *ck);
int ckpt_snapshot_running(const ckpt_t *ck);
/* Non-blocking: refresh the per-partition results (borrowed; valid until the
 * next ckpt_snapshot_start() or ckpt_destroy(); one per requested partition,
 * in request order). Returns 0 while some partition is not terminal
 * (CKPT_DURABLE, CKPT_FAILED, CKPT_DISCARDED), 1 once all are (the snapshot
 * is then finished and logged), IX_ESTATE when none was started. */
int ckpt_snapshot_poll(ckpt_t *ck, const ckpt_result_t **results, size_t *n);
/* Make results[i]'s file visible (rename, directory fsync, then delete the
 * older generations), in the writer thread; its state goes CKPT_PUBLISHING,
 * then CKPT_DURABLE or CKPT_FAILED. Only valid in state CKPT_WRITTEN
 * (IX_ESTATE otherwise). The caller publishes a checkpoint at offset A only
 * when everything derived from events before A is safe (acknowledged). */
int ckpt_snapshot_publish(ckpt_t *ck, size_t i);
/* Give up results[i] (e.g. its partition was revoked): stop copying it,
 * remove its temporary file; state CKPT_DISCARDED. No-op once it is
 * publishing or terminal. Returns 0, or IX_ESTATE when no snapshot runs. */
int ckpt_snapshot_discard(ckpt_t *ck, size_t i);
/* Discard every partition not published yet and wait (blocking, briefly)
 * until all are terminal. Call before destroying or replacing the store. */
void ckpt_snapshot_abort(ckpt_t *ck);
/* Blocking: copy everything, publish each file as soon as it is written,
 * and return 1 once all are terminal (for tools, benchmarks and tests). */
int ckpt_snapshot_wait(ckpt_t *ck, const ckpt_result_t **results, size_t *n);

/* Write one partition's checkpoint now, in this thread (blocks for the file
 * write and fsyncs), and publish it. Safe while a snapshot runs: generations
 * never collide. Returns res->err (0 = durable); res may be NULL. */
int ckpt_write_partition(ckpt_t *ck, const store_t *st, int32_t partition, int64_t next_offset,
                         uint32_t fingerprint, ckpt_result_t *res, char *errstr,
                         size_t errstr_size);

void ckpt_get_stats(const ckpt_t *ck, ckpt_stats_t *stats);

/* What a restore used. generation == 0: no valid checkpoint (the partition is
 * left empty; start from the group's committed offset). */
typedef struct {
  uint64_t generation;
  int64_t next_offset; /* seek the consumer here */
  uint64_t users;
  int64_t created_ms;  /* wall clock when written, Unix ms */
  unsigned skipped;    /* newer generations skipped as corrupt/unreadable */
  int64_t refused_next_offset; /* IX_EMISMATCH: the refused file's next offset (every event
                                  before it was answered); else -1 */
} ckpt_restore_info_t;

/* Replace the store's users of `partition` with the newest valid checkpoint
 * in dir. Every unusable newer file (truncated, checksum mismatch, bad
 * magic/version, unreadable) is logged at warn and described in errstr
 * ("<path>: <reason>"), and the previous generation is tried. Returns 0 with
 * info filled (info->generation == 0 when none is valid or dir does not
 * exist); IX_EMISMATCH when the newest valid file was written for another
 * model fingerprint or blob size (refused, errstr says which; the partition
 * is left empty); IX_ENOMEM/IX_ESYS on local failures. */
int ckpt_restore_partition(const char *dir, int32_t partition, uint32_t fingerprint,
                           store_t *st, ckpt_restore_info_t *info, char *errstr,
                           size_t errstr_size);

/* What ckpt_restore_partition(dir, partition, fingerprint, a store of
 * blob_size-byte blobs) would restore, judged without reading any file's
 * body: the newest generation whose header is valid (magic, version,
 * checksum, sizes), whose length is the header's and whose partition and
 * generation match its name. Returns 0 with info->generation (0: none
 * usable; info->skipped the unusable files before it), next_offset, users
 * and created_ms; IX_EMISMATCH when that file was written for another
 * fingerprint or blob size (info->refused_next_offset set; a restore
 * refuses it); IX_ESYS or IX_ENOMEM when dir cannot be listed. A file whose
 * body fails a block checksum passes here; the restore then skips it. No
 * logging. */
int ckpt_peek_partition(const char *dir, int32_t partition, uint32_t fingerprint,
                        size_t blob_size, ckpt_restore_info_t *info);


/* Header fields of a checkpoint file. */
typedef struct {
  uint32_t version;
  int32_t partition;
  uint32_t fingerprint;
  int64_t next_offset;
  uint64_t generation;
  uint64_t users;
  int64_t created_ms;
  uint32_t blob_size;
  uint32_t block_records;
  uint64_t file_bytes;
} ckpt_file_info_t;

/* Validate a whole checkpoint read from fd (from its current position to
 * EOF): header, every block checksum, exact length. When st is not NULL, the
 * records are also inserted with store_put() into partition `partition` (the
 * header's partition must equal it, fingerprint and blob size must match:
 * else IX_EMISMATCH); on any error the records inserted so far stay in the
 * store (the caller drops the partition). name is used in messages. info
 * may be NULL. Returns 0 or a negative IX_E* with errstr "<name>: <reason>". */
int ckpt_load_fd(int fd, const char *name, int32_t partition, uint32_t fingerprint,
                 store_t *st, ckpt_file_info_t *info, char *errstr, size_t errstr_size);

#endif
