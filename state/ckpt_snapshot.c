/* Checkpoint writers: the synchronous one (ckpt_write_partition) and the
 * incremental snapshot engine (copied by the caller's loop in slices with
 * application-level copy-on-write in the store, written by a writer thread
 * from a pool of chunks), with generation management (numbering, pruning,
 * publishing). The file format is ckpt_file.c's; reading is ckpt_restore.c's. */
#include "state/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/crc.h"
#include "common/err.h"
#include "common/log.h"
#include "state/ckpt_file.h"

#define MOD "ckpt"
#define CKF_MAX_PRUNE 16u

static uint64_t now_us(int clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- writer -------------------------------------------------------------- */

typedef struct {
  int32_t partition;
  int64_t next_offset;
  uint64_t generation;
  uint64_t prune[CKF_MAX_PRUNE];
  unsigned nprune;
} job_t;

typedef struct {
  int32_t partition;
  uint64_t last_gen;
} gen_entry_t;

enum { CMD_START, CMD_DATA, CMD_END, CMD_PUBLISH, CMD_DISCARD, CMD_QUIT };

/* A command for the writer thread; CMD_DATA carries nrec records. */
typedef struct cmd {
  struct cmd *next;
  int kind;
  uint32_t job;
  uint32_t nrec;
  size_t cap; /* data bytes */
  unsigned char data[];
} cmd_t;

/* Frees a chain of commands. */
static void free_cmds(cmd_t *c) {
  while (c) {
    cmd_t *next = c->next;
    free(c);
    c = next;
  }
}

/* Page cache recycling, for both writers: the generations a write will
 * prune are dropped from the page cache as fast as the new file fills it, so
 * the new file's folios reuse their memory instead of taking never-touched
 * memory. System calls only. */
typedef struct {
  unsigned next; /* next index into job->prune to open */
  int fd;        /* file being dropped, or -1 */
  uint64_t off, size;
} recycler_t;

/* Drops `bytes` more of job's to-be-pruned files' page cache. */
static void recycler_drop(recycler_t *r, const char *dir, const job_t *job, uint64_t bytes) {
  while (bytes) {
    if (r->fd < 0) {
      if (!job || r->next >= job->nprune) return;
      char old[PATH_MAX];
      ckf_file_path(old, sizeof old, dir, job->partition, job->prune[r->next++]);
      struct stat sb;
      r->fd = open(old, O_RDONLY | O_CLOEXEC);
      if (r->fd < 0) continue;
      if (fstat(r->fd, &sb) != 0 || sb.st_size <= 0) {
        close(r->fd);
        r->fd = -1;
        continue;
      }
      r->off = 0;
      r->size = (uint64_t)sb.st_size;
    }
    uint64_t n = r->size - r->off < bytes ? r->size - r->off : bytes;
    (void)posix_fadvise(r->fd, (off_t)r->off, (off_t)n, POSIX_FADV_DONTNEED);
    r->off += n;
    bytes -= n;
    if (r->off >= r->size) {
      close(r->fd);
      r->fd = -1;
    }
  }
}

static void recycler_close(recycler_t *r) {
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}

/* Both writers: write buf's whole WRITE_ALIGN units (everything when final)
 * to fd, dropping as much of job's pruned generations' page cache first, and
 * move the rest to the front. Returns the bytes written, or -1 with errno. */
static ssize_t stage_write(int fd, unsigned char *buf, size_t *fill, recycler_t *rc,
                           const char *dir, const job_t *job, int final);

/* One partition's file in an incremental snapshot. */
typedef struct {
  job_t job;
  uint64_t users; /* users at the start: the records the file must hold */
  unsigned char header[CKPT_HEADER_BYTES];
  uint32_t header_crc;
  char tmp[PATH_MAX], path[PATH_MAX];
  /* writer thread only */
  int fd;
  unsigned char *stage; /* large files: output staged into 2 MiB-aligned writes */
  size_t fill;          /* staged bytes; stage[0] is at a WRITE_ALIGN file offset */
  recycler_t rc;        /* page cache of the generations to prune */
  uint64_t written;
  uint32_t in_block, block_index, crc;
  int failed, err;
  char reason[320];
  /* caller's thread only */
  cmd_t *cur;    /* chunk being filled */
  cmd_t *ctl[3]; /* END, PUBLISH, DISCARD, preallocated; NULL once sent */
  int closed;    /* END or DISCARD sent: no more records */
  uint64_t lost; /* records not copied for want of memory */
} sjob_t;

struct ckpt {
  char *dir;
  unsigned keep;
  gen_entry_t *gens; /* newest generation this process assigned per partition */
  size_t ngens, gens_cap;
  unsigned char *buf; /* synchronous writer's staging buffer, sized for buf_blob */
  size_t buf_size, buf_blob;

  /* running or last snapshot */
  store_t *st; /* being captured; NULL once every user is copied */
  sjob_t *sjobs;
  ckpt_result_t *shared;  /* the writer's results, under mu */
  ckpt_result_t *results; /* the caller's copy */
  size_t n;
  int running, started;
  size_t blob_size, rec_size, chunk_cap;
  uint32_t block_records, chunk_recs;
  uint64_t t_start_us;

  /* writer thread */
  pthread_t thr;
  int thr_on, w_busy;
  pthread_mutex_t mu;
  pthread_cond_t cv, idle_cv;
  cmd_t *q_head, *q_tail;
  size_t q_bytes; /* CMD_DATA bytes queued */
  cmd_t *pool;    /* free chunks */
  size_t pool_n, pool_target;
  int nfd[2];     /* notification pipe: writer -> caller's loop */
  unsigned char *wbuf; /* writer's framing buffer */
  size_t wbuf_size;

  ckpt_stats_t stats;
};

/* The writer stages header, records and block CRCs in one buffer and writes
 * it out in whole WRITE_ALIGN units at WRITE_ALIGN-aligned file offsets:
 * the page cache then holds the file in 2 MiB folios, which a restore frees
 * as it reads them and the store's huge-page slabs reuse (docs/STATE.md). */
#define WRITE_ALIGN (2u << 20)

typedef struct {
  int fd;
  unsigned char *buf; /* staging: >= WRITE_ALIGN + header + block + 4 */
  size_t fill;        /* staged bytes; buf[0] is at a WRITE_ALIGN file offset */
  size_t block_start; /* offset in buf of the block being built */
  size_t rec_size, blob_size;
  uint32_t block_records, in_block, block_index;
  uint32_t header_crc;
  uint64_t users;
  int err;
  /* page cache recycling (recycler_t) of job's generations to prune */
  const char *dir;
  const job_t *job;
  recycler_t rc;
} wctx_t;


static ssize_t stage_write(int fd, unsigned char *buf, size_t *fill, recycler_t *rc,
                           const char *dir, const job_t *job, int final) {
  size_t out = final ? *fill : *fill / WRITE_ALIGN * WRITE_ALIGN;
  if (out == 0) return 0;
  recycler_drop(rc, dir, job, out);
  if (ckf_write_all(fd, buf, out) != 0) return -1;
  memmove(buf, buf + out, *fill - out);
  *fill -= out;
  return (ssize_t)out;
}

/* Write out the staged whole WRITE_ALIGN units (all when final). */
static int stage_flush(wctx_t *w, int final) {
  ssize_t out = stage_write(w->fd, w->buf, &w->fill, &w->rc, w->dir, w->job, final);
  if (out < 0) return -1;
  w->block_start -= (size_t)out;
  return 0;
}

static int flush_block(wctx_t *w) {
  if (w->in_block == 0) return 0;
  size_t len = (size_t)w->in_block * w->rec_size;
  unsigned char idx[4];
  ckf_put_u32(idx, w->block_index);
  uint32_t crc = ix_crc32(w->header_crc, idx, 4);
  crc = ix_crc32(crc, w->buf + w->block_start, len);
  ckf_put_u32(w->buf + w->block_start + len, crc);
  w->fill = w->block_start + len + 4;
  w->block_index++;
  w->in_block = 0;
  if (w->fill >= WRITE_ALIGN && stage_flush(w, 0) != 0) return -1;
  w->block_start = w->fill;
  return 0;
}

static int visit_write(void *ctx, uint64_t user_id, int64_t last_seen_ms, const void *blob) {
  wctx_t *w = ctx;
  unsigned char *r = w->buf + w->block_start + (size_t)w->in_block * w->rec_size;
  ckf_put_u64(r, user_id);
  ckf_put_u64(r + 8, (uint64_t)last_seen_ms);
  memcpy(r + CKF_REC_HEAD, blob, w->blob_size);
  w->users++;
  if (++w->in_block == w->block_records && flush_block(w) != 0) {
    w->err = errno;
    return 1;
  }
  return 0;
}

/* Both writers: rename tmp to path, fsync dir, then delete job's pruned
 * generations. Returns 0, or -1 with reason set: tmp is removed when the
 * rename failed; after a failed directory fsync the file is renamed but not
 * known durable. */
static int publish_file(const char *dir, const char *tmp, const char *path, const job_t *job,
                        char *reason, size_t reason_size) {
  if (rename(tmp, path) != 0) {
    ckf_fmt(reason, reason_size, "%s: rename failed: %s", tmp, ckf_errdesc(errno));
    (void)unlink(tmp);
    return -1;
  }
  if (ckf_fsync_dir(dir) != 0) {
    ckf_fmt(reason, reason_size, "%s: fsync directory of failed: %s", path, ckf_errdesc(errno));
    return -1;
  }
  for (unsigned k = 0; k < job->nprune; k++) {
    char old[PATH_MAX];
    ckf_file_path(old, sizeof old, dir, job->partition, job->prune[k]);
    (void)unlink(old);
  }
  return 0;
}

/* Write job's file from st using buf (stage_bytes_for() bytes). Fills res. Safe
 * in any thread: system calls and stack buffers only. */
static void write_one(const char *dir, const store_t *st, const job_t *job, uint32_t fingerprint,
                      unsigned char *buf, ckpt_result_t *res) {
  char tmp[PATH_MAX], path[PATH_MAX];
  memset(res, 0, sizeof *res);
  res->state = CKPT_FAILED; /* until it is durable */
  res->partition = job->partition;
  res->generation = job->generation;
  res->next_offset = job->next_offset;
  ckf_file_path(path, sizeof path, dir, job->partition, job->generation);
  ckf_tmp_path(tmp, sizeof tmp, dir, job->partition, job->generation);

  size_t blob_size = store_blob_size(st);
  uint64_t users = store_partition_users(st, job->partition);
  wctx_t w = {.buf = buf, .blob_size = blob_size, .rec_size = ckf_record_size(blob_size),
              .block_records = ckf_block_records_for(blob_size), .dir = dir, .job = job,
              .rc = {.fd = -1}};
  unsigned char h[CKPT_HEADER_BYTES];
  ckf_build_header(h, job->partition, fingerprint, job->next_offset, job->generation, users,
               (int64_t)(now_us(CLOCK_REALTIME) / 1000u), (uint32_t)blob_size, w.block_records);
  w.header_crc = ckf_get_u32(h + 76);
  memcpy(buf, h, sizeof h);
  w.fill = w.block_start = sizeof h;
  const char *step = "create";
  int e = 0;
  w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd < 0) goto fail_errno;
  step = "write";
  store_foreach(st, job->partition, visit_write, &w);
  if (w.err) {
    errno = w.err;
    goto fail_errno;
  }
  if (flush_block(&w) != 0 || stage_flush(&w, 1) != 0) goto fail_errno;
  recycler_close(&w.rc);
  if (w.users != users) {
    res->err = IX_ESTATE;
    ckf_fmt(res->reason, sizeof res->reason, "%s: store listed %llu users, expected %llu", tmp,
             (unsigned long long)w.users, (unsigned long long)users);
    goto fail;
  }
  step = "fsync";
  if (fsync(w.fd) != 0) goto fail_errno;
  step = "close";
  int fd = w.fd;
  w.fd = -1;
  if (close(fd) != 0) goto fail_errno;
  if (publish_file(dir, tmp, path, job, res->reason, sizeof res->reason) != 0) {
    res->err = IX_ESYS;
    return;
  }
  res->users = users;
  res->bytes = ckf_file_bytes_for(users, w.block_records, blob_size);
  res->state = CKPT_DURABLE;
  return;

fail_errno:
  e = errno;
  res->err = IX_ESYS;
  ckf_fmt(res->reason, sizeof res->reason, "%s: %s failed: %s", tmp, step, ckf_errdesc(e));
fail:
  recycler_close(&w.rc);
  if (w.fd >= 0) close(w.fd);
  (void)unlink(tmp);
}

static size_t stage_bytes_for(size_t blob_size) {
  return WRITE_ALIGN + CKPT_HEADER_BYTES + (size_t)ckf_block_records_for(blob_size) * ckf_record_size(blob_size) + 4;
}

static int ensure_buf(ckpt_t *ck, size_t blob_size) {
  size_t need = stage_bytes_for(blob_size);
  if (ck->buf && ck->buf_blob == blob_size) return 0;
  unsigned char *b = malloc(need);
  if (!b) return IX_ENOMEM;
  free(ck->buf);
  ck->buf = b;
  ck->buf_size = need;
  ck->buf_blob = blob_size;
  return 0;
}

static gen_entry_t *gen_entry(ckpt_t *ck, int32_t partition) {
  for (size_t k = 0; k < ck->ngens; k++)
    if (ck->gens[k].partition == partition) return &ck->gens[k];
  if (ck->ngens == ck->gens_cap) {
    size_t cap = ck->gens_cap ? ck->gens_cap * 2 : 16;
    gen_entry_t *n = realloc(ck->gens, cap * sizeof *n);
    if (!n) return NULL;
    ck->gens = n;
    ck->gens_cap = cap;
  }
  ck->gens[ck->ngens] = (gen_entry_t){partition, 0};
  return &ck->gens[ck->ngens++];
}

typedef struct {
  job_t *jobs;
  size_t n;
  uint64_t *seen; /* per job: existing generations, flat CKF_MAX_PRUNE*2 each */
  unsigned *nseen;
} plan_t;

#define SEEN_CAP (CKF_MAX_PRUNE + 8u)

static void plan_visit(void *ctx, int32_t partition, uint64_t gen) {
  plan_t *pl = ctx;
  for (size_t i = 0; i < pl->n; i++) {
    if (pl->jobs[i].partition != partition) continue;
    uint64_t *s = pl->seen + i * SEEN_CAP;
    unsigned *ns = &pl->nseen[i];
    if (*ns < SEEN_CAP) {
      s[(*ns)++] = gen;
    } else { /* keep the newest SEEN_CAP: replace the smallest */
      unsigned m = 0;
      for (unsigned k = 1; k < SEEN_CAP; k++)
        if (s[k] < s[m]) m = k;
      if (gen > s[m]) s[m] = gen;
    }
  }
}

/* Assign each job a generation above any on disk or assigned by this
 * process, and the older generations to delete once it is durable. */
static int plan_jobs(ckpt_t *ck, job_t *jobs, size_t n, char *errstr, size_t errstr_size) {
  int rc = IX_ENOMEM;
  plan_t pl = {.jobs = jobs, .n = n};
  pl.seen = calloc(n ? n * SEEN_CAP : 1, sizeof *pl.seen);
  pl.nseen = calloc(n ? n : 1, sizeof *pl.nseen);
  if (!pl.seen || !pl.nseen) goto out;
  int scan = ckf_scan_dir(ck->dir, plan_visit, &pl);
  if (scan != 0 && errno == ENOENT && ckf_mkdir_p(ck->dir) == 0) {
    /* removed while running (as at start, it is created): checkpoints go on */
    LOG_WARN(MOD, "checkpoint directory %s was missing: created it again", ck->dir);
    scan = ckf_scan_dir(ck->dir, plan_visit, &pl);
  }
  if (scan != 0) {
    rc = IX_ESYS;
    ckf_fmt(errstr, errstr_size, "cannot list checkpoint directory %s: %s", ck->dir, ckf_errdesc(errno));
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t *s = pl.seen + i * SEEN_CAP;
    unsigned ns = pl.nseen[i];
    qsort(s, ns, sizeof *s, ckf_cmp_desc);
    gen_entry_t *ge = gen_entry(ck, jobs[i].partition);
    if (!ge) goto out;
    uint64_t g = ge->last_gen;
    if (ns && s[0] > g) g = s[0];
    jobs[i].generation = ge->last_gen = g + 1;
    /* Newest first: the new file plus keep-1 older ones stay. */
    jobs[i].nprune = 0;
    for (unsigned k = ck->keep - 1; k < ns && jobs[i].nprune < CKF_MAX_PRUNE; k++)
      jobs[i].prune[jobs[i].nprune++] = s[k];
  }
  rc = 0;
out:
  if (rc == IX_ENOMEM) ckf_fmt(errstr, errstr_size, "out of memory planning a checkpoint");
  free(pl.seen);
  free(pl.nseen);
  return rc;
}

static void clean_stale_tmp(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *t = strstr(de->d_name, ".ckpt.tmp.");
    if (de->d_name[0] != '.' || !t) continue;
    char *end;
    long pid = strtol(t + 10, &end, 10);
    if (*end || pid <= 0) continue;
    if (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (unlink(path) == 0) LOG_INFO(MOD, "removed stale temporary checkpoint %s", path);
  }
  closedir(d);
}

int ckpt_new(const ckpt_opts_t *opts, ckpt_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  if (!opts || !opts->dir || !*opts->dir || (opts->keep != 0 && opts->keep < 2)) {
    ckf_fmt(errstr, errstr_size, "checkpoint options: need a directory and keep >= 2");
    return IX_EINVAL;
  }
  if (strlen(opts->dir) > PATH_MAX - 64) {
    ckf_fmt(errstr, errstr_size, "checkpoint directory path is too long");
    return IX_EINVAL;
  }
  if (ckf_mkdir_p(opts->dir) != 0) {
    ckf_fmt(errstr, errstr_size, "cannot create checkpoint directory %s: %s", opts->dir,
        ckf_errdesc(errno));
    return IX_ESYS;
  }
  ckpt_t *ck = calloc(1, sizeof *ck);
  if (!ck || !(ck->dir = strdup(opts->dir))) {
    free(ck);
    ckf_fmt(errstr, errstr_size, "out of memory");
    return IX_ENOMEM;
  }
  ck->keep = opts->keep ? opts->keep : 2;
  if (pipe2(ck->nfd, O_CLOEXEC | O_NONBLOCK) != 0) {
    ckf_fmt(errstr, errstr_size, "checkpoint writer: pipe failed: %s", ckf_errdesc(errno));
    free(ck->dir);
    free(ck);
    return IX_ESYS;
  }
  pthread_mutex_init(&ck->mu, NULL);
  pthread_cond_init(&ck->cv, NULL);
  pthread_cond_init(&ck->idle_cv, NULL);
  clean_stale_tmp(ck->dir);
  *out = ck;
  return 0;
}

static void queue_push(ckpt_t *ck, cmd_t *c);
static void free_snapshot(ckpt_t *ck);
static void chunk_give(ckpt_t *ck, cmd_t *c);

/* Empties the writer's notification pipe (non-blocking). */
static void drain_notify(ckpt_t *ck) {
  char buf[64];
  while (read(ck->nfd[0], buf, sizeof buf) > 0) {
  }
}

void ckpt_destroy(ckpt_t *ck) {
  if (!ck) return;
  ckpt_snapshot_abort(ck);
  if (ck->thr_on) {
    cmd_t *q = calloc(1, sizeof *q);
    if (q) {
      q->kind = CMD_QUIT;
      queue_push(ck, q);
      pthread_join(ck->thr, NULL);
    } else {
      pthread_detach(ck->thr); /* cannot tell it to stop: leave it, and its memory */
      return;
    }
  }
  free_snapshot(ck);
  free_cmds(ck->pool);
  free_cmds(ck->q_head); /* only QUIT-less leftovers after a failed start */
  close(ck->nfd[0]);
  close(ck->nfd[1]);
  pthread_mutex_destroy(&ck->mu);
  pthread_cond_destroy(&ck->cv);
  pthread_cond_destroy(&ck->idle_cv);
  free(ck->wbuf);
  free(ck->gens);
  free(ck->buf);
  free(ck->dir);
  free(ck);
}

static void count_result(ckpt_t *ck, const ckpt_result_t *r) {
  if (r->err == 0) {
    ck->stats.files_written++;
    LOG_DEBUG(MOD, "partition %d: checkpoint generation %llu durable (%llu users, next offset %lld)",
              (int)r->partition, (unsigned long long)r->generation,
              (unsigned long long)r->users, (long long)r->next_offset);
  } else {
    ck->stats.files_failed++;
    LOG_WARN(MOD, "partition %d: checkpoint failed: %s", (int)r->partition, r->reason);
  }
}

int ckpt_write_partition(ckpt_t *ck, const store_t *st, int32_t partition, int64_t next_offset,
                         uint32_t fingerprint, ckpt_result_t *res, char *errstr,
                         size_t errstr_size) {
  ckpt_result_t local;
  if (!res) res = &local;
  memset(res, 0, sizeof *res);
  res->partition = partition;
  res->next_offset = next_offset;
  job_t job = {.partition = partition, .next_offset = next_offset};
  int rc = ensure_buf(ck, store_blob_size(st));
  if (rc == 0) rc = plan_jobs(ck, &job, 1, errstr, errstr_size);
  else ckf_fmt(errstr, errstr_size, "out of memory for the checkpoint buffer");
  if (rc) {
    res->err = rc;
    res->state = CKPT_FAILED;
    ckf_fmt(res->reason, sizeof res->reason, "%s", errstr ? errstr : ix_strerror(rc));
    ck->stats.files_failed++;
    return rc;
  }
  write_one(ck->dir, st, &job, fingerprint, ck->buf, res);
  count_result(ck, res);
  if (res->err) ckf_fmt(errstr, errstr_size, "%s", res->reason);
  return res->err;
}

/* ---- incremental snapshot ------------------------------------------------ */

/* The loop copies users (store_capture_*) into chunks; a writer thread
 * frames them into blocks, writes and fsyncs the temporary files, and later
 * renames them when the caller publishes. Commands go to the writer through
 * one FIFO queue, so a job's END (or DISCARD) is the last command that
 * touches it; results come back in `shared` under the mutex, with a byte on
 * the notification pipe for the caller's event loop. */

#define CHUNK_BYTES (128u << 10)    /* records handed to the writer at once */
#define QUEUE_MAX_BYTES (16u << 20) /* the loop stops copying beyond this backlog */
#define STEP_USERS 32u              /* users copied between clock reads */

static void writer_post(ckpt_t *ck, size_t i, ckpt_state_t state, int err, const char *reason,
                        uint64_t users, uint64_t bytes) {
  pthread_mutex_lock(&ck->mu);
  ckpt_result_t *r = &ck->shared[i];
  r->state = state;
  r->err = err;
  r->users = users;
  r->bytes = bytes;
  if (reason) ckf_fmt(r->reason, sizeof r->reason, "%s", reason);
  pthread_mutex_unlock(&ck->mu);
  char b = 1;
  ssize_t w = write(ck->nfd[1], &b, 1); /* a full pipe is awake already */
  (void)w;
}

/* Releases the writer's per-file resources (not the temporary file). */
static void sjob_close(sjob_t *sj) {
  if (sj->fd >= 0) close(sj->fd);
  sj->fd = -1;
  recycler_close(&sj->rc);
  free(sj->stage);
  sj->stage = NULL;
  sj->fill = 0;
}

static void sjob_fail(sjob_t *sj, int err, const char *step, int e) {
  if (sj->failed) return;
  sj->failed = 1;
  sj->err = err;
  if (step) ckf_fmt(sj->reason, sizeof sj->reason, "%s: %s failed: %s", sj->tmp, step, ckf_errdesc(e));
  sjob_close(sj);
  (void)unlink(sj->tmp);
}

/* Writes the staged whole WRITE_ALIGN units (everything when final), as the
 * synchronous writer does (see WRITE_ALIGN and recycler_t). */
static int sjob_flush(ckpt_t *ck, sjob_t *sj, int final) {
  return stage_write(sj->fd, sj->stage, &sj->fill, &sj->rc, ck->dir, &sj->job, final) < 0 ? -1
                                                                                          : 0;
}

static int sjob_open(ckpt_t *ck, sjob_t *sj) {
  sj->fd = open(sj->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (sj->fd < 0) {
    sjob_fail(sj, IX_ESYS, "create", errno);
    return -1;
  }
  /* Small files are written as they come (a stage per partition would cost
   * more memory than they hold). */
  if (ckf_file_bytes_for(sj->users, ck->block_records, ck->blob_size) >= 2ull * WRITE_ALIGN)
    sj->stage = malloc(WRITE_ALIGN + ck->wbuf_size);
  if (sj->stage) {
    memcpy(sj->stage, sj->header, CKPT_HEADER_BYTES);
    sj->fill = CKPT_HEADER_BYTES;
    return 0;
  }
  if (ckf_write_all(sj->fd, sj->header, CKPT_HEADER_BYTES) != 0) {
    sjob_fail(sj, IX_ESYS, "write", errno);
    return -1;
  }
  return 0;
}

static void run_data(ckpt_t *ck, sjob_t *sj, const cmd_t *c) {
  if (sj->failed || (sj->fd < 0 && sjob_open(ck, sj) != 0)) return;
  if (sj->written + c->nrec > sj->users) {
    sjob_fail(sj, IX_ESTATE, NULL, 0);
    ckf_fmt(sj->reason, sizeof sj->reason, "%s: more users copied than the %llu counted", sj->tmp,
        (unsigned long long)sj->users);
    return;
  }
  /* frame into the stage (room for a whole framed chunk is kept) or wbuf */
  unsigned char *out = sj->stage ? sj->stage + sj->fill : ck->wbuf;
  size_t o = 0;
  const unsigned char *p = c->data;
  uint32_t left = c->nrec;
  while (left) {
    if (sj->in_block == 0) {
      unsigned char idx[4];
      ckf_put_u32(idx, sj->block_index);
      sj->crc = ix_crc32(sj->header_crc, idx, 4);
    }
    uint32_t take = ck->block_records - sj->in_block;
    if (take > left) take = left;
    size_t len = (size_t)take * ck->rec_size;
    sj->crc = ix_crc32(sj->crc, p, len);
    memcpy(out + o, p, len);
    o += len;
    p += len;
    left -= take;
    sj->in_block += take;
    if (sj->in_block == ck->block_records) {
      ckf_put_u32(out + o, sj->crc);
      o += 4;
      sj->in_block = 0;
      sj->block_index++;
    }
  }
  int rc;
  if (sj->stage) {
    sj->fill += o;
    rc = sj->fill >= WRITE_ALIGN ? sjob_flush(ck, sj, 0) : 0;
  } else {
    rc = ckf_write_all(sj->fd, out, o);
  }
  if (rc != 0) {
    sjob_fail(sj, IX_ESYS, "write", errno);
    return;
  }
  sj->written += c->nrec;
}

static void run_end(ckpt_t *ck, size_t i) {
  sjob_t *sj = &ck->sjobs[i];
  if (!sj->failed && sj->fd < 0) sjob_open(ck, sj);
  if (!sj->failed && sj->in_block) {
    unsigned char crc[4];
    ckf_put_u32(crc, sj->crc);
    if (sj->stage) {
      memcpy(sj->stage + sj->fill, crc, 4); /* fill < WRITE_ALIGN: room is left */
      sj->fill += 4;
    } else if (ckf_write_all(sj->fd, crc, 4) != 0) {
      sjob_fail(sj, IX_ESYS, "write", errno);
    }
  }
  if (!sj->failed && sj->stage && sjob_flush(ck, sj, 1) != 0) sjob_fail(sj, IX_ESYS, "write", errno);
  if (!sj->failed && sj->written != sj->users) {
    sjob_fail(sj, IX_ESTATE, NULL, 0);
    ckf_fmt(sj->reason, sizeof sj->reason,
        "%s: %llu of %llu users copied (partition dropped during the snapshot, or out of "
        "memory)", sj->tmp, (unsigned long long)sj->written, (unsigned long long)sj->users);
  }
  if (!sj->failed && fsync(sj->fd) != 0) sjob_fail(sj, IX_ESYS, "fsync", errno);
  if (!sj->failed) {
    int fd = sj->fd;
    sj->fd = -1;
    sjob_close(sj);
    if (close(fd) != 0) sjob_fail(sj, IX_ESYS, "close", errno);
  }
  if (sj->failed) {
    writer_post(ck, i, CKPT_FAILED, sj->err, sj->reason, 0, 0);
    return;
  }
  writer_post(ck, i, CKPT_WRITTEN, 0, NULL, sj->users,
              ckf_file_bytes_for(sj->users, ck->block_records, ck->blob_size));
}

static void run_publish(ckpt_t *ck, size_t i) {
  sjob_t *sj = &ck->sjobs[i];
  char why[sizeof sj->reason];
  if (publish_file(ck->dir, sj->tmp, sj->path, &sj->job, why, sizeof why) != 0) {
    writer_post(ck, i, CKPT_FAILED, IX_ESYS, why, 0, 0);
    return;
  }
  writer_post(ck, i, CKPT_DURABLE, 0, NULL, sj->users,
              ckf_file_bytes_for(sj->users, ck->block_records, ck->blob_size));
}

static void run_discard(ckpt_t *ck, size_t i) {
  sjob_t *sj = &ck->sjobs[i];
  pthread_mutex_lock(&ck->mu);
  ckpt_state_t s = ck->shared[i].state;
  pthread_mutex_unlock(&ck->mu);
  if (s != CKPT_COPYING && s != CKPT_WRITTEN) return; /* publishing went first, or terminal */
  sjob_close(sj);
  (void)unlink(sj->tmp);
  writer_post(ck, i, CKPT_DISCARDED, 0, "discarded", 0, 0);
}

/* Fill the chunk pool from the writer (fresh memory costs page faults on
 * this VM: take them here, not in the loop). */
static void prefill_pool(ckpt_t *ck) {
  for (;;) {
    pthread_mutex_lock(&ck->mu);
    int need = ck->pool_n < ck->pool_target;
    size_t cap = ck->chunk_cap;
    pthread_mutex_unlock(&ck->mu);
    if (!need) return;
    cmd_t *c = malloc(sizeof *c + cap);
    if (!c) return;
    memset(c, 0, sizeof *c + cap);
    c->cap = cap;
    chunk_give(ck, c);
  }
}

/* Returns c to the pool if it fits and the pool wants it (NULL then), else
 * c for the caller to free. Call with mu held. */
static cmd_t *pool_put_locked(ckpt_t *ck, cmd_t *c) {
  if (c->cap != ck->chunk_cap || ck->pool_n >= ck->pool_target) return c;
  c->next = ck->pool;
  ck->pool = c;
  ck->pool_n++;
  return NULL;
}

static void *writer_main(void *arg) {
  ckpt_t *ck = arg;
  /* The loop comes first: this thread yields the CPU (nice 10) and takes the
   * lowest best-effort I/O priority. It only has to finish before the next
   * snapshot is due. */
  pid_t tid = (pid_t)syscall(SYS_gettid);
  (void)setpriority(PRIO_PROCESS, (id_t)tid, 10);
  (void)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, tid,
                (2 << 13) | 7 /* IOPRIO_CLASS_BE, level 7 */);
  pthread_mutex_lock(&ck->mu);
  for (;;) {
    while (!ck->q_head) {
      ck->w_busy = 0;
      pthread_cond_broadcast(&ck->idle_cv);
      pthread_cond_wait(&ck->cv, &ck->mu);
    }
    ck->w_busy = 1;
    cmd_t *c = ck->q_head;
    ck->q_head = c->next;
    if (!ck->q_head) ck->q_tail = NULL;
    pthread_mutex_unlock(&ck->mu);
    switch (c->kind) {
    case CMD_QUIT:
      free(c);
      pthread_mutex_lock(&ck->mu);
      ck->w_busy = 0;
      pthread_cond_broadcast(&ck->idle_cv);
      pthread_mutex_unlock(&ck->mu);
      return NULL;
    case CMD_START: prefill_pool(ck); break;
    case CMD_DATA: run_data(ck, &ck->sjobs[c->job], c); break;
    case CMD_END: run_end(ck, c->job); break;
    case CMD_PUBLISH: run_publish(ck, c->job); break;
    case CMD_DISCARD: run_discard(ck, c->job); break;
    }
    pthread_mutex_lock(&ck->mu);
    if (c->kind == CMD_DATA) {
      ck->q_bytes -= c->cap;
      c = pool_put_locked(ck, c);
    }
    pthread_mutex_unlock(&ck->mu);
    free(c);
    pthread_mutex_lock(&ck->mu);
  }
}

static void queue_push(ckpt_t *ck, cmd_t *c) {
  c->next = NULL;
  pthread_mutex_lock(&ck->mu);
  if (ck->q_tail) ck->q_tail->next = c;
  else ck->q_head = c;
  ck->q_tail = c;
  if (c->kind == CMD_DATA) ck->q_bytes += c->cap;
  pthread_cond_signal(&ck->cv);
  pthread_mutex_unlock(&ck->mu);
}

/* Waits until the writer has run every queued command. */
static void writer_wait_idle(ckpt_t *ck) {
  if (!ck->thr_on) return;
  pthread_mutex_lock(&ck->mu);
  while (ck->q_head || ck->w_busy) pthread_cond_wait(&ck->idle_cv, &ck->mu);
  pthread_mutex_unlock(&ck->mu);
}

static cmd_t *chunk_take(ckpt_t *ck, int may_alloc) {
  pthread_mutex_lock(&ck->mu);
  cmd_t *c = ck->pool;
  if (c) {
    ck->pool = c->next;
    ck->pool_n--;
  }
  pthread_mutex_unlock(&ck->mu);
  if (!c && may_alloc) {
    c = malloc(sizeof *c + ck->chunk_cap);
    if (c) c->cap = ck->chunk_cap;
  }
  return c;
}

static void chunk_give(ckpt_t *ck, cmd_t *c) {
  pthread_mutex_lock(&ck->mu);
  c = pool_put_locked(ck, c);
  pthread_mutex_unlock(&ck->mu);
  free(c);
}

/* store_capture_fn: append one record to its partition's chunk. */
static void on_capture(void *ctx, size_t idx, uint64_t user_id, int64_t last_seen_ms,
                       const void *blob) {
  ckpt_t *ck = ctx;
  sjob_t *sj = &ck->sjobs[idx];
  if (!sj->cur) {
    sj->cur = chunk_take(ck, 1);
    if (!sj->cur) { /* the writer then finds the count short and fails the file */
      sj->lost++;
      return;
    }
    sj->cur->kind = CMD_DATA;
    sj->cur->job = (uint32_t)idx;
    sj->cur->nrec = 0;
  }
  cmd_t *c = sj->cur;
  unsigned char *r = c->data + (size_t)c->nrec * ck->rec_size;
  ckf_put_u64(r, user_id);
  ckf_put_u64(r + 8, (uint64_t)last_seen_ms);
  memcpy(r + CKF_REC_HEAD, blob, ck->blob_size);
  if (++c->nrec == ck->chunk_recs) {
    sj->cur = NULL;
    queue_push(ck, c);
  }
}

static void send_ctl(ckpt_t *ck, size_t i, int kind) {
  sjob_t *sj = &ck->sjobs[i];
  cmd_t *c = sj->ctl[kind - CMD_END];
  if (!c) return; /* sent already */
  sj->ctl[kind - CMD_END] = NULL;
  queue_push(ck, c);
}

/* Stop copying job i (its capture is over or cancelled) and tell the writer. */
static void close_job(ckpt_t *ck, size_t i, int kind) {
  sjob_t *sj = &ck->sjobs[i];
  if (sj->closed) return;
  sj->closed = 1;
  if (sj->cur) {
    if (sj->cur->nrec && kind == CMD_END) queue_push(ck, sj->cur);
    else chunk_give(ck, sj->cur);
    sj->cur = NULL;
  }
  send_ctl(ck, i, kind);
}

static void capture_done(ckpt_t *ck) {
  for (size_t i = 0; i < ck->n; i++) close_job(ck, i, CMD_END);
  ck->stats.last_before_change = store_capture_before_change(ck->st);
  store_capture_end(ck->st);
  ck->st = NULL;
  ck->stats.last_copy_ms = (now_us(CLOCK_MONOTONIC) - ck->t_start_us) / 1000u;
  LOG_DEBUG(MOD, "snapshot of %zu partitions copied: %llu users in %llu ms, %llu of them "
            "before a change", ck->n, (unsigned long long)ck->stats.last_users,
            (unsigned long long)ck->stats.last_copy_ms,
            (unsigned long long)ck->stats.last_before_change);
}

static void free_snapshot(ckpt_t *ck) {
  if (ck->sjobs)
    for (size_t i = 0; i < ck->n; i++)
      for (int k = 0; k < 3; k++) free(ck->sjobs[i].ctl[k]);
  free(ck->sjobs);
  free(ck->shared);
  free(ck->results);
  ck->sjobs = NULL;
  ck->shared = ck->results = NULL;
  ck->n = 0;
}

static int start_writer(ckpt_t *ck) {
  if (ck->thr_on) return 0;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop's thread */
  int rc = pthread_create(&ck->thr, NULL, writer_main, ck);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) return rc;
  ck->thr_on = 1;
  return 0;
}

int ckpt_snapshot_start(ckpt_t *ck, store_t *st, const int32_t *partitions,
                        const int64_t *next_offsets, size_t n, uint32_t fingerprint,
                        char *errstr, size_t errstr_size) {
  if (ck->running) {
    ckf_fmt(errstr, errstr_size, "a checkpoint snapshot is already running");
    return IX_ESTATE;
  }
  if (store_capture_active(st)) {
    ckf_fmt(errstr, errstr_size, "the store is being captured by another snapshot");
    return IX_ESTATE;
  }
  uint64_t t0 = now_us(CLOCK_MONOTONIC);
  writer_wait_idle(ck); /* nothing of the last snapshot left in the writer */
  free_snapshot(ck);
  ck->started = 0;
  size_t blob_size = store_blob_size(st);
  ck->blob_size = blob_size;
  ck->rec_size = ckf_record_size(blob_size);
  ck->block_records = ckf_block_records_for(blob_size);
  size_t recs = CHUNK_BYTES / ck->rec_size;
  if (recs < 1) recs = 1;
  ck->chunk_recs = (uint32_t)recs;
  size_t cap = recs * ck->rec_size;
  size_t wneed = cap + 4u * (recs + 2);
  pthread_mutex_lock(&ck->mu);
  cmd_t *old = NULL;
  if (cap != ck->chunk_cap) { /* another blob size: the pooled chunks do not fit */
    old = ck->pool;
    ck->pool = NULL;
    ck->pool_n = 0;
    ck->chunk_cap = cap;
  }
  ck->pool_target = n + QUEUE_MAX_BYTES / cap + 2;
  pthread_mutex_unlock(&ck->mu);
  free_cmds(old);
  job_t *jobs = calloc(n ? n : 1, sizeof *jobs);
  ck->sjobs = calloc(n ? n : 1, sizeof *ck->sjobs);
  ck->shared = calloc(n ? n : 1, sizeof *ck->shared);
  ck->results = calloc(n ? n : 1, sizeof *ck->results);
  uint64_t *users = calloc(n ? n : 1, sizeof *users);
  cmd_t *start = calloc(1, sizeof *start);
  int rc = IX_ENOMEM;
  if (!jobs || !ck->sjobs || !ck->shared || !ck->results || !users || !start) goto oom;
  if (ck->wbuf_size < wneed) {
    unsigned char *b = realloc(ck->wbuf, wneed);
    if (!b) goto oom;
    ck->wbuf = b;
    ck->wbuf_size = wneed;
  }
  ck->n = n;
  for (size_t i = 0; i < n; i++) {
    for (int k = 0; k < 3; k++) {
      cmd_t *c = calloc(1, sizeof *c);
      if (!c) goto oom;
      c->kind = CMD_END + k;
      c->job = (uint32_t)i;
      ck->sjobs[i].ctl[k] = c;
    }
    jobs[i].partition = partitions[i];
    jobs[i].next_offset = next_offsets[i];
  }
  rc = plan_jobs(ck, jobs, n, errstr, errstr_size);
  if (rc) goto fail;
  rc = store_capture_begin(st, partitions, n, on_capture, ck, users);
  if (rc) {
    ckf_fmt(errstr, errstr_size, "checkpoint snapshot: cannot capture the store: %s",
        ix_strerror(rc));
    goto fail;
  }
  rc = start_writer(ck);
  if (rc) {
    store_capture_end(st);
    ckf_fmt(errstr, errstr_size, "checkpoint snapshot: cannot start the writer thread: %s",
        ckf_errdesc(rc));
    rc = IX_ESYS;
    goto fail;
  }
  int64_t created = (int64_t)(now_us(CLOCK_REALTIME) / 1000u);
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    sjob_t *sj = &ck->sjobs[i];
    sj->job = jobs[i];
    sj->users = users[i];
    sj->fd = sj->rc.fd = -1;
    total += users[i];
    ckf_build_header(sj->header, jobs[i].partition, fingerprint, jobs[i].next_offset,
                 jobs[i].generation, users[i], created, (uint32_t)blob_size, ck->block_records);
    sj->header_crc = ckf_get_u32(sj->header + 76);
    ckf_file_path(sj->path, sizeof sj->path, ck->dir, jobs[i].partition, jobs[i].generation);
    ckf_tmp_path(sj->tmp, sizeof sj->tmp, ck->dir, jobs[i].partition, jobs[i].generation);
    ckpt_result_t r = {.partition = jobs[i].partition, .state = CKPT_COPYING,
                       .generation = jobs[i].generation, .next_offset = jobs[i].next_offset};
    ck->shared[i] = ck->results[i] = r;
  }
  free(jobs);
  free(users);
  drain_notify(ck);
  ck->st = st;
  ck->running = ck->started = 1;
  ck->t_start_us = t0;
  start->kind = CMD_START;
  queue_push(ck, start);
  uint64_t t1 = now_us(CLOCK_MONOTONIC);
  ck->stats.last_start_us = t1 - t0;
  if (t1 - t0 > ck->stats.max_start_us) ck->stats.max_start_us = t1 - t0;
  ck->stats.last_users = total;
  LOG_DEBUG(MOD, "snapshot of %zu partitions started: start took %llu us (%llu users)", n,
            (unsigned long long)(t1 - t0), (unsigned long long)total);
  if (n == 0) capture_done(ck);
  return 0;
oom:
  ckf_fmt(errstr, errstr_size, "out of memory starting a checkpoint snapshot");
  rc = IX_ENOMEM;
fail:
  free(jobs);
  free(users);
  free(start);
  free_snapshot(ck);
  return rc;
}

int ckpt_snapshot_step(ckpt_t *ck, uint64_t budget_us) {
  if (!ck->st) return 1;
  uint64_t t0 = now_us(CLOCK_MONOTONIC);
  int done = 0;
  for (;;) {
    pthread_mutex_lock(&ck->mu);
    /* a group of STEP_USERS may start that many chunks: take them from the
     * pool, never from fresh memory (page faults in the loop) */
    size_t need = ck->n < STEP_USERS ? ck->n : STEP_USERS;
    int room = ck->q_bytes < QUEUE_MAX_BYTES && ck->pool_n >= need;
    pthread_mutex_unlock(&ck->mu);
    if (!room) break; /* the writer is behind (or still filling the pool) */
    done = store_capture_step(ck->st, STEP_USERS);
    if (done || now_us(CLOCK_MONOTONIC) - t0 >= budget_us) break;
  }
  if (done) capture_done(ck);
  uint64_t dt = now_us(CLOCK_MONOTONIC) - t0;
  if (dt > ck->stats.max_step_us) ck->stats.max_step_us = dt;
  return done;
}

int ckpt_snapshot_fd(const ckpt_t *ck) { return ck->running ? ck->nfd[0] : -1; }
int ckpt_snapshot_running(const ckpt_t *ck) { return ck->running; }

static int terminal(ckpt_state_t s) {
  return s == CKPT_DURABLE || s == CKPT_FAILED || s == CKPT_DISCARDED;
}

int ckpt_snapshot_poll(ckpt_t *ck, const ckpt_result_t **results, size_t *n) {
  if (!ck->started) return IX_ESTATE;
  if (results) *results = ck->results;
  if (n) *n = ck->n;
  if (!ck->running) return 1;
  drain_notify(ck);
  int all = 1;
  pthread_mutex_lock(&ck->mu);
  for (size_t i = 0; i < ck->n; i++) {
    ckpt_result_t *r = &ck->results[i];
    if (r->state != ck->shared[i].state) {
      *r = ck->shared[i];
      if (r->state == CKPT_DURABLE || r->state == CKPT_FAILED) count_result(ck, r);
    }
    if (!terminal(r->state)) all = 0;
  }
  pthread_mutex_unlock(&ck->mu);
  if (!all || ck->st) return 0;
  ck->running = 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < ck->n; i++)
    if (ck->results[i].state == CKPT_DURABLE) bytes += ck->results[i].bytes;
  ck->stats.snapshots++;
  ck->stats.last_bytes = bytes;
  ck->stats.last_snapshot_ms = (now_us(CLOCK_MONOTONIC) - ck->t_start_us) / 1000u;
  LOG_DEBUG(MOD, "snapshot of %zu partitions finished: %llu bytes in %llu ms", ck->n,
            (unsigned long long)bytes, (unsigned long long)ck->stats.last_snapshot_ms);
  return 1;
}

int ckpt_snapshot_publish(ckpt_t *ck, size_t i) {
  if (!ck->running || i >= ck->n) return IX_ESTATE;
  pthread_mutex_lock(&ck->mu);
  int ok = ck->shared[i].state == CKPT_WRITTEN;
  if (ok) ck->shared[i].state = CKPT_PUBLISHING;
  pthread_mutex_unlock(&ck->mu);
  if (!ok) return IX_ESTATE;
  ck->results[i].state = CKPT_PUBLISHING;
  send_ctl(ck, i, CMD_PUBLISH);
  return 0;
}

int ckpt_snapshot_discard(ckpt_t *ck, size_t i) {
  if (!ck->running || i >= ck->n) return IX_ESTATE;
  sjob_t *sj = &ck->sjobs[i];
  if (!sj->closed) {
    if (ck->st) store_capture_cancel(ck->st, sj->job.partition);
    close_job(ck, i, CMD_DISCARD);
    return 0;
  }
  pthread_mutex_lock(&ck->mu);
  ckpt_state_t s = ck->shared[i].state;
  pthread_mutex_unlock(&ck->mu);
  if (s == CKPT_COPYING || s == CKPT_WRITTEN) send_ctl(ck, i, CMD_DISCARD);
  return 0;
}

void ckpt_snapshot_abort(ckpt_t *ck) {
  if (!ck->running) return;
  for (size_t i = 0; i < ck->n; i++) ckpt_snapshot_discard(ck, i);
  if (ck->st) {
    ck->stats.last_before_change = store_capture_before_change(ck->st);
    store_capture_end(ck->st);
    ck->st = NULL;
  }
  while (ckpt_snapshot_poll(ck, NULL, NULL) == 0) {
    struct pollfd p = {.fd = ck->nfd[0], .events = POLLIN};
    (void)poll(&p, 1, 100);
  }
}

int ckpt_snapshot_wait(ckpt_t *ck, const ckpt_result_t **results, size_t *n) {
  if (!ck->started) return IX_ESTATE;
  for (;;) {
    int copied = ckpt_snapshot_step(ck, 50000);
    int rc = ckpt_snapshot_poll(ck, results, n);
    if (rc != 0) return rc;
    for (size_t i = 0; i < ck->n; i++)
      if (ck->results[i].state == CKPT_WRITTEN) ckpt_snapshot_publish(ck, i);
    struct pollfd p = {.fd = ck->nfd[0], .events = POLLIN};
    if (poll(&p, 1, copied ? 1000 : 1) < 0 && errno != EINTR) return IX_ESYS;
  }
}

void ckpt_get_stats(const ckpt_t *ck, ckpt_stats_t *stats) { *stats = ck->stats; }
