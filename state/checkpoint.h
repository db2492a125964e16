/* Checkpoints: one file per input partition holding that partition's user
 * states and the input offset they are consistent with. Files are
 * "<dir>/p<partition>-<generation>.ckpt", written to a temporary name,
 * fsynced, renamed and the directory fsynced; the newest `keep` generations
 * per partition stay on disk. Layout and protocol: docs/STATE.md.
 *
 * Two ways to write: ckpt_snapshot_start() forks a child that writes from a
 * copy-on-write image of the store while the caller's loop keeps running
 * (completion arrives on a pipe fd, see ckpt_snapshot_fd()), and
 * ckpt_write_partition() writes synchronously (revocation, shutdown).
 * Not thread-safe; call from the thread that owns the store. */
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

/* Outcome for one partition of a write. err == 0 means the file is durable:
 * every event before next_offset is in it. */
typedef struct {
  int32_t partition;
  int err;             /* 0 or a negative IX_E* */
  uint64_t generation; /* file generation written (or attempted) */
  int64_t next_offset; /* the offset passed in for this partition */
  uint64_t users;      /* records written */
  uint64_t bytes;      /* file size */
  char reason[320];    /* when err != 0: file name and what failed */
} ckpt_result_t;

typedef struct {
  uint64_t snapshots;        /* forked snapshots finished */
  uint64_t files_written;    /* durable files, forked and synchronous */
  uint64_t files_failed;     /* partitions whose write failed */
  uint64_t last_fork_us;     /* duration of the last fork() call (the loop stall) */
  uint64_t max_fork_us;
  uint64_t last_snapshot_ms; /* fork to child exit, last snapshot */
  uint64_t last_bytes;       /* bytes written by the last snapshot */
} ckpt_stats_t;

/* Open a checkpoint writer on opts->dir (creating it), and remove temporary
 * files left by writer processes that no longer exist. Fills errstr on
 * failure. Free with ckpt_destroy(). */
int ckpt_new(const ckpt_opts_t *opts, ckpt_t **out, char *errstr, size_t errstr_size);
/* Waits for a running snapshot child, then frees. Accepts NULL. */
void ckpt_destroy(ckpt_t *ck);

/* Fork a child that writes one file for each partitions[i] with
 * next_offsets[i] (the next input offset to consume: the store's state
 * contains exactly the events before it) and model fingerprint; the child
 * sees the store as it is at the fork, so the caller may mutate the store as
 * soon as this returns. The fork itself is the only stall (measured in
 * ckpt_stats_t.last_fork_us). Returns IX_ESTATE when a snapshot is already
 * running, IX_ESYS when pipe/fork fails (errstr filled).
 * The child writes only; it never touches the caller's fds other than its
 * result pipe, resets SIGTERM/SIGINT/SIGHUP to default, and dies with the
 * parent (PR_SET_PDEATHSIG). */
int ckpt_snapshot_start(ckpt_t *ck, const store_t *st, const int32_t *partitions,
                        const int64_t *next_offsets, size_t n, uint32_t fingerprint,
                        char *errstr, size_t errstr_size);
/* Read end of the running snapshot's result pipe (non-blocking, close-on-exec),
 * or -1 when none runs. Watch it for readability (e.g. uv_poll_start with
 * UV_READABLE) and call ckpt_snapshot_poll() on each wake-up; it turns
 * readable on each finished partition and at the child's exit (EOF). No
 * SIGCHLD handler is needed: the child is reaped by ckpt_snapshot_poll(). The
 * fd is closed by ckpt_snapshot_poll() when it returns 1, so stop watching it
 * before (uv_poll_stop) or right after that call. */
int ckpt_snapshot_fd(const ckpt_t *ck);
int ckpt_snapshot_running(const ckpt_t *ck);
/* Non-blocking: collect what the child reported. Returns 0 while it runs;
 * 1 when it has finished and been reaped: *results (borrowed; valid until the
 * next ckpt_snapshot_start() or ckpt_destroy()) holds one entry per requested
 * partition, in request order; a partition the child did not report (it
 * crashed or was killed) has err IX_ESYS. Returns IX_ESTATE when no snapshot
 * was started. */
int ckpt_snapshot_poll(ckpt_t *ck, const ckpt_result_t **results, size_t *n);
/* Blocking version of ckpt_snapshot_poll(): returns 1 once finished. */
int ckpt_snapshot_wait(ckpt_t *ck, const ckpt_result_t **results, size_t *n);

/* Write one partition's checkpoint now, in this thread (blocks for the file
 * write and fsyncs). Safe while a snapshot child runs: generations never
 * collide. Returns res->err (0 = durable); res may be NULL. */
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
