/* The changelog topic in the daemon: per-partition changed users, the
 * two-phase checkpoint writer (user records after the predictions they
 * cover are acknowledged; the completion record after the user records are
 * acknowledged) and the restore on assignment. */
#include "daemon/clog.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "state/changelog.h"
#include "state/checkpoint.h"
#include "stream/changelog_topic.h"
#include "stream/producer.h"

/* IDLE -> ENCODING (the changed users taken at the start are encoded a
 * slice at a time: docs/STATE.md, "Incremental encoding") -> WAIT_ACKS
 * (encoded; user records sent once the predictions before next_offset and
 * before every encoded user's offset are acknowledged) -> USERS_SENT
 * (waiting for their reports) -> COMPLETE_SENT (the completion record, sent
 * after every user record was acknowledged) -> DONE (acknowledged: durable)
 * -> IDLE. A failed record drops the checkpoint back to IDLE; its users
 * stay changed (drop_checkpoint). */
typedef enum { IDLE = 0, ENCODING, WAIT_ACKS, USERS_SENT, COMPLETE_SENT, DONE } phase_t;

typedef struct {
  int owned;
  int waiting;                 /* owned, but its restore's read failed: not served */
  uint16_t gen;                /* ownership generation: stale reports are ignored */
  changelog_dirty_t *dirty;
  /* users evicted from the store, each with the input position at its
   * eviction (every event before it was consumed); a tombstone is written
   * for one once a completion record at or past that position is durable */
  changelog_dirty_t *evicted;
  int64_t pos;                 /* consumed up to here (events before it) */
  int64_t durable_at;          /* offset of the newest acknowledged completion, -1 none */
  int64_t tomb_upto;           /* the checkpoint being written has tombstones up to it */
  changelog_restore_t *skip;   /* events a restored user already holds */
  int64_t skip_until;
  /* the checkpoint being written */
  phase_t phase;
  int64_t next_offset;
  uint32_t fp;
  uint64_t seq;                /* completion records written */
  /* the epoch (docs/STATE.md, "Model swaps"): the changelog offset where the
   * states this writer's completions describe begin; epoch_new while the
   * first checkpoint of a new epoch (after a model switch, a cold start or
   * a local restore newer than the topic: every user written) has not
   * completed, its completion then names the offset of its first record */
  int64_t epoch;
  int epoch_new;
  int64_t first_at;            /* the checkpoint's first record's changelog offset (-1: none yet) */
  int64_t complete_at;         /* its completion record's changelog offset */
  int old_model;               /* the checkpoint being written is the previous model's
                                * (started before a switch): its end forgets nothing */
  int old_epoch_new;           /* ... and was its epoch's first (its completion names it) */
  int other_model;             /* the restore met another model's newest completion ... */
  int64_t other_next;          /* ... consistent with this input offset */
  uint8_t *buf;                /* records: 9-byte key, u32 value length, value */
  size_t len, cap, sent_at;    /* sent_at: bytes of buf already handed to the producer */
  size_t n_recs, acks_left;
  int failed;
  /* ENCODING: the users changed before next_offset still to encode (the
   * tracker as it was at the start; pt->dirty tracks the changes since),
   * from the store enc_st (borrowed); max_r: the largest offset encoded */
  changelog_dirty_t *enc;
  size_t enc_cur;
  store_t *enc_st;
  int64_t max_r;
} part_t;

struct clog {
  producer_t *prod;
  producer_topic_t *topic;
  char *brokers, *topic_name;
  char **props;               /* copies, NULL-terminated */
  int32_t n_parts;
  int64_t delete_retention_ms; /* the topic's, -1 unknown */
  int has_admin;               /* the cluster answered the Admin API at start */
  part_t *parts;
  changelog_reader_t *reader;  /* restores: one client for every partition, made on first use */
  changelog_reader_stats_t rstats; /* of the readers replaced (clog_read_stats) */
  metrics_changelog_t m;
  /* test-only failpoints (tests of a writer killed inside a checkpoint:
   * docs/STATE.md): IX_TEST_CLOG_KILL_AFTER=K raises SIGKILL right after
   * the K-th acknowledged changelog record; IX_TEST_CLOG_KILL_BEFORE_COMPLETE=N
   * instead of sending the N-th completion record; IX_TEST_CLOG_KILL_BEFORE_SWITCH_EPOCH=1
   * instead of sending the first completion of a new model's epoch after a switch */
  uint64_t kill_after, acked, kill_before_complete, completes;
  int kill_before_switch_epoch, switched;
  uint64_t slice_ns; /* encoding and sending per clog_pump call; 0: unbounded */
  int unbounded;     /* clog_checkpoint_now: no slices (it blocks anyway) */
  uint64_t pumps;    /* clog_pump calls: the partition served first turns round */
};

static void drop_checkpoint(clog_t *c, int32_t p, part_t *pt);
static void reader_drop(clog_t *c);
static int encode_one(part_t *pt, int32_t p, uint64_t user, int64_t off);


#define OPQ(p, gen, complete) \
  (((uint64_t)(gen) << 40) | ((uint64_t)(complete) << 39) | (uint64_t)(uint32_t)(p))

static void on_report(void *ctx, const producer_report_t *r) {
  clog_t *c = ctx;
  int32_t p = (int32_t)(uint32_t)(r->opaque & 0xffffffffu);
  uint16_t gen = (uint16_t)(r->opaque >> 40);
  int complete = (int)((r->opaque >> 39) & 1);
  if (p < 0 || p >= c->n_parts) return;
  part_t *pt = &c->parts[p];
  if (!pt->owned || pt->gen != gen || pt->phase == IDLE) return;
  if (!r->err) {
    metrics_counter_inc(c->m.records_written);
    if (complete) pt->complete_at = r->offset;
    else if (r->offset >= 0 && (pt->first_at < 0 || r->offset < pt->first_at))
      pt->first_at = r->offset;
  }
  if (!r->err && c->kill_after && ++c->acked == c->kill_after) {
    fprintf(stderr, "IX_TEST_CLOG_KILL_AFTER: SIGKILL after changelog record %" PRIu64
            " (a %s record of partition %d, checkpoint at offset %" PRId64 ")\n", c->acked,
            complete                                            ? "completion"
            : pt->phase == USERS_SENT && pt->acks_left == 1 ? "checkpoint's last user"
                                                            : "user",
            (int)p, pt->next_offset);
    fflush(stderr);
    raise(SIGKILL);
  }
  if (r->err) {
    metrics_counter_inc(c->m.produce_failures);
    if (!pt->failed)
      LOG_WARN("clog", "changelog %s [%d]: a record of the checkpoint at offset %" PRId64
               " was not delivered (%s); the next checkpoint writes its users again",
               c->topic_name, (int)p, pt->next_offset, r->errstr);
    pt->failed = 1;
  }
  if (complete) {
    if (pt->phase == COMPLETE_SENT) {
      if (pt->failed) drop_checkpoint(c, p, pt);
      else pt->phase = DONE;
    }
    return;
  }
  if (pt->acks_left) pt->acks_left--;
}

int clog_new(const clog_opts_t *o, clog_t **out, char *errstr, size_t n) {
  clog_t *c = calloc(1, sizeof *c);
  if (!c) return IX_ENOMEM;
  int rc = 0;
  int32_t in_parts = 0;
  c->brokers = strdup(o->brokers);
  c->topic_name = strdup(o->topic);
  size_t np = 0;
  while (o->props && o->props[np]) np++;
  c->props = calloc(np + 1, sizeof *c->props);
  for (size_t i = 0; c->props && i < np; i++)
    if (!(c->props[i] = strdup(o->props[i]))) {
      rc = IX_ENOMEM;
      goto err;
    }
  if (!c->brokers || !c->topic_name || !c->props) {
    rc = IX_ENOMEM;
    goto err;
  }
  changelog_topic_status_t status;
  if ((rc = changelog_topic_ensure(o->brokers, o->props, o->topic, o->input_topic, 30000, &status,
                                   &in_parts, &c->delete_retention_ms, errstr, n)))
    goto err;
  if (status == CHANGELOG_TOPIC_CREATED)
    LOG_INFO("clog", "changelog topic %s created with %d partitions (those of %s), "
             "cleanup.policy=compact", o->topic, (int)in_parts, o->input_topic);
  else if (status == CHANGELOG_TOPIC_NO_ADMIN)
    LOG_WARN("clog", "changelog topic %s: the cluster does not support the Admin API "
             "(DescribeConfigs; librdkafka's mock cluster): its %d partitions are checked, its "
             "cleanup policy is not (it must be compact: docs/OPERATIONS.md)", o->topic,
             (int)in_parts);
  else
    LOG_INFO("clog", "changelog topic %s: %d partitions, cleanup policy with compaction: checked",
             o->topic, (int)in_parts);
  c->n_parts = in_parts;
  c->has_admin = status != CHANGELOG_TOPIC_NO_ADMIN;
  c->slice_ns = (uint64_t)o->slice_us * 1000u;
  const char *ka = getenv("IX_TEST_CLOG_KILL_AFTER");
  const char *kb = getenv("IX_TEST_CLOG_KILL_BEFORE_COMPLETE");
  if (ka && *ka) c->kill_after = strtoull(ka, NULL, 10);
  if (kb && *kb) c->kill_before_complete = strtoull(kb, NULL, 10);
  const char *ke = getenv("IX_TEST_CLOG_KILL_BEFORE_SWITCH_EPOCH");
  c->kill_before_switch_epoch = ke && *ke && strcmp(ke, "0") != 0;
  if (c->kill_before_switch_epoch)
    LOG_WARN("clog", "test failpoint: this process kills itself instead of sending the first "
             "completion record of a new model's epoch");
  if (c->kill_after || c->kill_before_complete)
    LOG_WARN("clog", "test failpoint: this process kills itself after %" PRIu64 " changelog "
             "records or before its completion record %" PRIu64 " (0: never)", c->kill_after,
             c->kill_before_complete);
  c->parts = calloc((size_t)in_parts, sizeof *c->parts);
  if (!c->parts) {
    rc = IX_ENOMEM;
    goto err;
  }
  producer_opts_t po = {.brokers = o->brokers, .props = o->props, .on_delivery = on_report,
                        .ctx = c};
  if ((rc = producer_new(&po, &c->prod, errstr, n))) goto err;
  if (!(c->topic = producer_topic(c->prod, o->topic))) {
    snprintf(errstr, n, "cannot open changelog topic '%s' for producing", o->topic);
    rc = IX_EKAFKA;
    goto err;
  }
  rc = metrics_changelog_register(o->metrics, &c->m);
  if (rc) {
    snprintf(errstr, n, "cannot register the changelog's metrics: %s", ix_strerror(rc));
    goto err;
  }
  *out = c;
  return 0;
err:
  clog_destroy(c, 0);
  return rc;
}

static void part_reset(part_t *pt) {
  changelog_dirty_destroy(pt->dirty);
  changelog_dirty_destroy(pt->evicted);
  changelog_restore_destroy(pt->skip);
  changelog_dirty_destroy(pt->enc);
  free(pt->buf);
  uint16_t gen = pt->gen;
  uint64_t seq = pt->seq;
  memset(pt, 0, sizeof *pt);
  pt->pos = pt->durable_at = pt->tomb_upto = -1;
  pt->first_at = pt->complete_at = -1;
  pt->epoch_new = 1; /* until a restore from the topic says which epoch goes on */
  pt->gen = gen;
  pt->seq = seq;
}

void clog_destroy(clog_t *c, int flush_ms) {
  if (!c) return;
  producer_destroy(c->prod, flush_ms);
  reader_drop(c);
  for (int32_t p = 0; p < c->n_parts; p++) part_reset(&c->parts[p]);
  free(c->parts);
  for (size_t i = 0; c->props && c->props[i]; i++) free(c->props[i]);
  free(c->props);
  free(c->brokers);
  free(c->topic_name);
  free(c);
}

int clog_skip(void *ctx, int32_t p, uint64_t user_id, int64_t offset) {
  clog_t *c = ctx;
  if (p < 0 || p >= c->n_parts) return 0;
  if (offset + 1 > c->parts[p].pos) c->parts[p].pos = offset + 1;
  if (!c->parts[p].skip) return 0;
  int skip = changelog_restore_skip(c->parts[p].skip, user_id, offset);
  if (skip) metrics_counter_inc(c->m.skipped);
  return skip;
}

void clog_applied(void *ctx, int32_t p, uint64_t user_id, int64_t offset) {
  clog_t *c = ctx;
  if (p < 0 || p >= c->n_parts) return;
  part_t *pt = &c->parts[p];
  if (offset + 1 > pt->pos) pt->pos = offset + 1;
  if (!pt->dirty) return;
  if (pt->skip && offset > pt->skip_until) {
    changelog_restore_destroy(pt->skip);
    pt->skip = NULL;
  }
  if (changelog_dirty_note(pt->dirty, user_id, offset))
    LOG_ERROR("clog", "partition %d: out of memory tracking changed users; the changelog "
              "misses user %" PRIu64 " until it changes again", (int)p, user_id);
}

void clog_evicted(void *ctx, int32_t p, uint64_t user_id) {
  clog_t *c = ctx;
  if (p < 0 || p >= c->n_parts) return;
  part_t *pt = &c->parts[p];
  int64_t off;
  if (pt->phase == ENCODING && changelog_dirty_take(pt->enc, user_id, &off)) {
    /* taken at the checkpoint's start and not encoded yet: encode it now,
     * while the store still holds it (docs/STATE.md, "Incremental encoding") */
    int rc = encode_one(pt, p, user_id, off);
    if (rc) {
      (void)changelog_dirty_note(pt->dirty, user_id, off);
      LOG_WARN("clog", "partition %d: changelog checkpoint at offset %" PRId64 " dropped: %s",
               (int)p, pt->next_offset, ix_strerror(rc));
      drop_checkpoint(c, p, pt);
    }
  }
  if (!pt->evicted) return;
  /* while restored users may still skip events, their eviction counts as
   * past the last of those (a restore from a completion before it must
   * skip them too) */
  int64_t at = pt->pos > 0 ? pt->pos : 0;
  if (pt->skip && pt->skip_until + 1 > at) at = pt->skip_until + 1;
  if (changelog_dirty_note(pt->evicted, user_id, at))
    LOG_ERROR("clog", "partition %d: out of memory noting evicted user %" PRIu64 "; the "
              "changelog keeps its last state (a restore brings it back)", (int)p, user_id);
}

typedef struct {
  store_t *st;
  int32_t p;
  int64_t at;
  int err;
  changelog_dirty_t *dirty;
} mark_t;

static int mark_user(void *ctx, uint64_t user, int64_t last_seen, const void *blob) {
  (void)last_seen;
  (void)blob;
  mark_t *m = ctx;
  return m->err = changelog_dirty_note(m->dirty, user, m->at);
}

typedef struct {
  changelog_restore_t *rs;
  store_t *st; /* sized for the records to come, NULL: not */
  char *errstr;
  size_t n;
} read_t;

static int read_rec(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl);

/* before the first record: room for every user the read can bring, so the
 * store's index and the restore's map do not grow (rehash) on the way */
static void read_span(void *ctx, int64_t from, int64_t end) {
  read_t *r = ctx;
  size_t k = (size_t)(end - from);
  if (r->st) (void)store_reserve(r->st, k); /* best effort: inserts grow it otherwise */
  (void)changelog_restore_reserve(r->rs, k);
}

/* the kept reader goes (a failed one is replaced at the next read); its
 * figures stay in c->rstats */
static void reader_drop(clog_t *c) {
  if (!c->reader) return;
  changelog_reader_stats_t s;
  changelog_reader_get_stats(c->reader, &s);
  c->rstats.reads += s.reads;
  c->rstats.hinted += s.hinted;
  c->rstats.fetched_ahead += s.fetched_ahead;
  changelog_reader_destroy(c->reader);
  c->reader = NULL;
}

void clog_read_stats(const clog_t *c, changelog_reader_stats_t *out) {
  *out = c->rstats;
  if (!c->reader) return;
  changelog_reader_stats_t s;
  changelog_reader_get_stats(c->reader, &s);
  out->reads += s.reads;
  out->hinted += s.hinted;
  out->fetched_ahead += s.fetched_ahead;
}

/* Whether clog_assign with these local facts reads only the changelog's
 * tail after the local checkpoint (else the whole partition from its
 * start): a local checkpoint younger than half the topic's
 * delete.retention.ms (no tombstone written after its snapshot can have
 * been removed by compaction, or a user evicted since would come back).
 * *age_ms: the checkpoint's age, when there is one. */
static int tail_read(const clog_t *c, int64_t local_next, int64_t local_created_ms,
                     int64_t *age_ms) {
  *age_ms = -1;
  if (local_next < 0 || local_created_ms <= 0) return 0;
  int64_t keep = c->delete_retention_ms > 0 ? c->delete_retention_ms : 86400000;
  *age_ms = ix_wall_ms() - local_created_ms;
  return *age_ms < keep / 2;
}

void clog_prefetch_local(clog_t *c, const int32_t *partitions, size_t n, const char *ckpt_dir,
                         uint32_t fingerprint, size_t blob_size) {
  int32_t *ps = n ? malloc(n * sizeof *ps) : NULL;
  if (!ps) return;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    ckpt_restore_info_t info = {0};
    int64_t local_next = -1, created = -1, age;
    /* as the assignment will find it: ckpt_restore_partition's choice,
     * from the headers (an error or another model's file: no local states) */
    if (ckpt_dir && *ckpt_dir &&
        ckpt_peek_partition(ckpt_dir, partitions[i], fingerprint, blob_size, &info) == 0 &&
        info.generation > 0) {
      local_next = info.next_offset;
      created = info.created_ms;
    }
    if (!tail_read(c, local_next, created, &age)) ps[k++] = partitions[i];
  }
  clog_prefetch(c, ps, k);
  free(ps);
}

void clog_prefetch(clog_t *c, const int32_t *partitions, size_t n) {
  char why[300];
  if (!c->reader && (!n || changelog_reader_new(c->brokers, (const char *const *)c->props,
                                                c->topic_name, &c->reader, why, sizeof why))) {
    if (n) LOG_WARN("clog", "changelog %s: no reader to fetch ahead (%s)", c->topic_name, why);
    return;
  }
  changelog_reader_prefetch(c->reader, partitions, n, 10000);
}

/* partition p from `from` (-1: its start) through the kept reader; a
 * reader that failed is replaced at the next read */
static int clog_read(clog_t *c, int32_t p, int64_t from, read_t *rd, uint64_t *records,
                     uint64_t *bytes, char *errstr, size_t n) {
  *records = *bytes = 0;
  int rc = 0;
  if (!c->reader && (rc = changelog_reader_new(c->brokers, (const char *const *)c->props,
                                               c->topic_name, &c->reader, errstr, n)))
    return rc;
  rc = changelog_reader_read(c->reader, p, from, 30000, read_span, read_rec, rd, records, bytes,
                             errstr, n);
  if (rc == IX_EKAFKA) {
    reader_drop(c);
  }
  return rc;
}

static int read_rec(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl) {
  read_t *r = ctx;
  char why[300] = "";
  int rc = changelog_restore_add(r->rs, off, k, kl, v, vl, why, sizeof why);
  if (rc) snprintf(r->errstr, r->n, "changelog offset %" PRId64 ": %s", off, why);
  return rc;
}

static int copy_user(void *ctx, uint64_t user, int64_t last_seen, const void *blob) {
  mark_t *m = ctx;
  return m->err = store_put(m->st, m->p, user, last_seen, blob);
}

/* After a restore into `copy` (a store other than st) finished with *info:
 * when it found a completion newer than the local checkpoint (local_next),
 * p's states in st are replaced by the copy's and *source set to `restored`;
 * out of memory copying them, p starts cold (*source, *next_offset -1).
 * Returns 0 or the copy's error (errstr says why). */
static int adopt_restored(store_t *st, int32_t p, store_t *copy,
                          const changelog_restore_info_t *info, int64_t local_next,
                          clog_source_t restored, clog_source_t *source, int64_t *next_offset,
                          char *errstr, size_t n) {
  if (!info->complete || info->next_offset <= local_next) return 0;
  store_drop_partition(st, p);
  mark_t m = {.st = st, .p = p};
  store_foreach(copy, p, copy_user, &m);
  if (!m.err) {
    *source = restored;
    return 0;
  }
  store_drop_partition(st, p);
  *source = CLOG_FROM_COLD;
  *next_offset = -1;
  snprintf(errstr, n, "out of memory copying the restored states");
  return m.err;
}

/* Records produced after a local snapshot carry a timestamp from at most
 * this long before it (another host's clock may be behind). The tests set
 * IX_TEST_CLOG_CLOCK_MARGIN_MS to see the tail read on short runs. */
#define CLOG_CLOCK_MARGIN_MS 60000

static int64_t clock_margin_ms(void) {
  const char *e = getenv("IX_TEST_CLOG_CLOCK_MARGIN_MS");
  return e && *e ? strtoll(e, NULL, 10) : CLOG_CLOCK_MARGIN_MS;
}

/* interestd_changelog_partitions_waiting: the partitions whose restore read failed */
static void waiting_gauge(clog_t *c) {
  uint64_t n = 0;
  for (int32_t p = 0; p < c->n_parts; p++) n += c->parts[p].waiting != 0;
  metrics_gauge_set(c->m.waiting, (double)n);
}

/* The read of p's changelog failed (IX_EKAFKA: the broker away, a leader
 * election, no progress), or its states could not be held (IX_ENOMEM: no
 * memory for the store's slabs): what the topic holds for p is unknown or
 * not in st. A partial
 * read into st (the direct restore, st not NULL) is dropped; p is not owned
 * for checkpoints; it waits for another clog_assign (docs/STATE.md, "A
 * restore that cannot read"). */
static void restore_failed(clog_t *c, part_t *pt, int32_t p, store_t *st) {
  if (st) store_drop_partition(st, p);
  part_reset(pt);
  pt->gen++;
  pt->waiting = 1;
  metrics_counter_inc(c->m.restore_failures);
  waiting_gauge(c);
}

void clog_wait(clog_t *c, int32_t p) {
  if (p >= 0 && p < c->n_parts) restore_failed(c, &c->parts[p], p, NULL);
}

int clog_waiting(const clog_t *c, int32_t p) {
  return c && p >= 0 && p < c->n_parts && c->parts[p].waiting;
}

/* The start of an assignment's restore: p owned again with fresh
 * trackers. IX_ERANGE (errstr says why) when p is beyond the topic. */
static int assign_begin(clog_t *c, int32_t p, part_t **out, char *errstr, size_t n) {
  if (p < 0 || p >= c->n_parts) {
    snprintf(errstr, n, "partition %d is beyond the changelog's %d partitions", (int)p,
             (int)c->n_parts);
    return IX_ERANGE;
  }
  part_t *pt = *out = &c->parts[p];
  int was_waiting = pt->waiting;
  part_reset(pt);
  pt->gen++;
  pt->owned = 1;
  if (was_waiting) waiting_gauge(c);
  if (changelog_dirty_new(&pt->dirty) || changelog_dirty_new(&pt->evicted)) return IX_ENOMEM;
  return 0;
}

int clog_from_topic(clog_source_t source) {
  return source == CLOG_FROM_CHANGELOG || source == CLOG_FROM_LOCAL_TAIL ||
         source == CLOG_FROM_STANDBY;
}

/* The end of an assignment's restore, whatever its source: the position and
 * skip rule from a restored completion (takes *rs when it holds users to
 * skip), every user marked when the local checkpoint is newer than the
 * topic, the metrics. Sets *rc to the marking's error if it was 0; returns
 * the restore's seconds since t0. */
static double assign_end(clog_t *c, part_t *pt, int32_t p, store_t *st, clog_source_t source,
                         const changelog_restore_info_t *info, changelog_restore_t **rs,
                         int64_t local_next, int64_t *next_offset, mark_t *m, uint64_t t0,
                         int *rc) {
  if (clog_from_topic(source)) {
    *next_offset = info->next_offset;
    pt->durable_at = info->next_offset;
    pt->seq = info->sequence;
    pt->epoch = info->epoch_start; /* the restored epoch goes on */
    pt->epoch_new = 0;
    if (info->skip_users) {
      pt->skip = *rs;
      pt->skip_until = info->skip_until;
      *rs = NULL;
    }
  }
  pt->other_model = info->other_model;
  pt->other_next = info->other_model ? info->other_next_offset : -1;
  if (source == CLOG_FROM_LOCAL) {
    /* the topic is behind the local checkpoint: write every user with the
     * offset the local state is consistent with (all events before it) */
    m->at = local_next - 1;
    m->err = 0;
    store_foreach(st, p, mark_user, m);
    if (m->err && !*rc) *rc = m->err;
  }
  pt->pos = *next_offset;
  double secs = (double)(ix_mono_ns() - t0) / 1e9;
  metrics_histogram_observe(c->m.restore_seconds, secs);
  metrics_counter_inc(c->m.from[source]);
  metrics_counter_add(c->m.users_from[source], store_partition_users(st, p));
  return secs;
}

/* What a restore met of other models (docs/STATE.md, "Model swaps"). */
static void log_models(int32_t p, const changelog_restore_info_t *info, uint32_t fingerprint,
                       clog_source_t source) {
  if (info->other_model)
    LOG_WARN("clog", "partition %d: the changelog's newest completed checkpoint was written by "
             "model fingerprint %08x, this model is %08x: no state of it is loaded; states "
             "from %s (docs/STATE.md, \"Model swaps\")", (int)p, info->other_fingerprint,
             fingerprint, source == CLOG_FROM_LOCAL ? "the local checkpoint" : "nowhere (cold)");
  if (info->foreign_after)
    LOG_WARN("clog", "partition %d: %" PRIu64 " records of another model follow the newest "
             "completed checkpoint (a checkpoint after a model switch that never completed): "
             "ignored; a user whose earlier record compaction removed in their favour starts "
             "cold", (int)p, info->foreign_after);
}

int clog_assign(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint, int64_t local_next,
                int64_t local_created_ms, clog_source_t *source, int64_t *next_offset,
                char *errstr, size_t n) {
  *source = local_next >= 0 ? CLOG_FROM_LOCAL : CLOG_FROM_COLD;
  *next_offset = local_next;
  part_t *pt;
  int brc = assign_begin(c, p, &pt, errstr, n);
  if (brc) return brc;
  uint64_t t0 = ix_mono_ns();
  /* local checkpoint plus the tail: only while no tombstone written after
   * the snapshot can have been removed by compaction (delete.retention.ms
   * after it was cleaned), or a user evicted since would come back */
  int64_t from = -1, age;
  int tail = tail_read(c, local_next, local_created_ms, &age);
  if (age >= 0) {
    char why[300];
    if (tail && changelog_topic_offset_for_time(c->brokers, (const char *const *)c->props,
                                                c->topic_name, p,
                                                local_created_ms - clock_margin_ms(), 10000,
                                                &from, why, sizeof why)) {
      LOG_WARN("clog", "partition %d: %s; reading the whole changelog", (int)p, why);
      from = -1;
    }
    if (!tail)
      LOG_INFO("clog", "partition %d: the local checkpoint is %.1f h old (over half the "
               "changelog's delete.retention.ms): the whole changelog decides", (int)p,
               (double)age / 3.6e6);
  }
  /* without local states (p is empty in st) the records go straight into
   * st: no scratch store, no copy */
  int direct = local_next < 0;
  store_t *scratch = NULL;
  changelog_restore_t *rs = NULL;
  store_opts_t so = {.blob_size = store_blob_size(st), .pool = store_slab_pool(st)};
  int rc = direct ? 0 : store_new(&so, &scratch);
  if (!rc) rc = changelog_restore_new(direct ? st : scratch, p, fingerprint, &rs);
  uint64_t records = 0, bytes = 0;
  read_t rd = {rs, direct ? st : scratch, errstr, n};
  if (!rc) {
    rc = clog_read(c, p, from, &rd, &records, &bytes, errstr, n);
    if (rc == IX_ERANGE) { /* below the low watermark: nothing was read */
      from = -1;
      rc = clog_read(c, p, -1, &rd, &records, &bytes, errstr, n);
    }
  }
  metrics_counter_add(c->m.bytes_read, bytes);
  if (rc && direct) store_drop_partition(st, p); /* a partial read: start cold */
  changelog_restore_info_t info = {0};
  mark_t m = {.st = st, .p = p, .dirty = pt->dirty};
  uint64_t put = 0, dropped = 0;
  int whole = 0; /* the records read are a whole restore (scratch replaces st's users) */
  if (!rc && tail) {
    int laid = changelog_restore_overlay(rs, st, local_next, &put, &dropped);
    changelog_restore_finish(rs, &info);
    if (laid == 2) {
      whole = 1; /* the newest completion's epoch began inside the tail */
    } else if (laid == 1) {
      *source = CLOG_FROM_LOCAL_TAIL;
    } else if (laid < 0) {
      store_drop_partition(st, p);
      *source = CLOG_FROM_COLD;
      *next_offset = -1;
      snprintf(errstr, n, "out of memory laying the changelog over the local states");
      rc = laid;
    }
  } else if (!rc && direct) {
    changelog_restore_finish(rs, &info); /* without a completion it dropped p: cold */
    if (info.complete) *source = CLOG_FROM_CHANGELOG;
  } else if (!rc) {
    changelog_restore_finish(rs, &info);
    whole = 1;
  }
  if (!rc && whole) {
    rc = adopt_restored(st, p, scratch, &info, local_next, CLOG_FROM_CHANGELOG, source,
                        next_offset, errstr, n);
  }
  if (rc == IX_EKAFKA || rc == IX_ENOMEM) {
    /* p waits: a failed read keeps what the local restore put in st (a
     * direct read's partial states dropped); out of memory reading, laying
     * or copying leaves p's states in st partial */
    restore_failed(c, pt, p, direct || rc == IX_ENOMEM ? st : NULL);
    changelog_restore_destroy(rs);
    store_destroy(scratch);
    return rc;
  }
  log_models(p, &info, fingerprint, *source);
  double secs =
      assign_end(c, pt, p, st, *source, &info, &rs, local_next, next_offset, &m, t0, &rc);
  char over[128] = "";
  if (*source == CLOG_FROM_LOCAL_TAIL)
    snprintf(over, sizeof over, " (%" PRIu64 " from the changelog over the local checkpoint at "
             "%" PRId64 ", %" PRIu64 " dropped by tombstones)", put, local_next, dropped);
  char start[80] = "its start";
  if (from >= 0)
    snprintf(start, sizeof start, "the local checkpoint's time (offset %" PRId64 ")", from);
  LOG_INFO("clog", "partition %d: states from %s (%zu users%s, resume at %" PRId64 "); changelog "
           "read from %s: %" PRIu64 " records, %" PRIu64 " bytes in %.3f s, newest completion "
           "at %" PRId64 " (epoch from changelog offset %" PRId64 ", %" PRIu64 " users before "
           "it superseded), %" PRIu64 " users newer than it",
           (int)p, metrics_state_source_label[*source], store_partition_users(st, p), over,
           *next_offset, start, records, bytes,
           secs, info.complete ? info.next_offset : -1, info.complete ? info.epoch_start : -1,
           info.superseded, info.skip_users);
  changelog_restore_destroy(rs);
  store_destroy(scratch);
  return rc;
}

int clog_assign_copy(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                     int64_t local_next, store_t *copy, changelog_restore_t *rs, int64_t from,
                     clog_source_t *source, int64_t *next_offset, char *errstr, size_t n) {
  *source = local_next >= 0 ? CLOG_FROM_LOCAL : CLOG_FROM_COLD;
  *next_offset = local_next;
  part_t *pt;
  int brc = assign_begin(c, p, &pt, errstr, n);
  if (brc) {
    changelog_restore_destroy(rs);
    return brc;
  }
  uint64_t t0 = ix_mono_ns();
  uint64_t records = 0, bytes = 0;
  read_t rd = {rs, NULL, errstr, n};
  /* the copy holds everything before `from`: only the tail is read */
  int rc = clog_read(c, p, from, &rd, &records, &bytes, errstr, n);
  metrics_counter_add(c->m.bytes_read, bytes);
  if (rc == IX_ERANGE) { /* the caller reads the whole partition */
    changelog_restore_destroy(rs);
    return rc;
  }
  changelog_restore_info_t info = {0};
  mark_t m = {.st = st, .p = p, .dirty = pt->dirty};
  if (!rc) {
    changelog_restore_finish(rs, &info);
    rc = adopt_restored(st, p, copy, &info, local_next, CLOG_FROM_STANDBY, source, next_offset,
                        errstr, n);
  }
  if (rc == IX_EKAFKA || rc == IX_ENOMEM) {
    /* p waits: a failed read leaves st as the local restore did; out of
     * memory reading or copying leaves p's states in st partial */
    restore_failed(c, pt, p, rc == IX_ENOMEM ? st : NULL);
    changelog_restore_destroy(rs);
    return rc;
  }
  log_models(p, &info, fingerprint, *source); /* rs was made for fingerprint */
  double secs =
      assign_end(c, pt, p, st, *source, &info, &rs, local_next, next_offset, &m, t0, &rc);
  LOG_INFO("clog", "partition %d: states from %s (%zu users, resume at %" PRId64 "); changelog "
           "read %" PRIu64 " records (the tail from offset %" PRId64 "), %" PRIu64 " bytes in "
           "%.3f s, newest completion at %" PRId64 ", %" PRIu64 " users newer than it",
           (int)p, metrics_state_source_label[*source], store_partition_users(st, p),
           *next_offset, records, from, bytes, secs, info.complete ? info.next_offset : -1,
           info.skip_users);
  changelog_restore_destroy(rs);
  return rc;
}

void clog_start_cold(clog_t *c, int32_t p) {
  if (p < 0 || p >= c->n_parts) return;
  part_t *pt = &c->parts[p];
  part_reset(pt);
  pt->gen++;
  pt->owned = 1;
  /* it starts without states: counted as cold too (docs/OPERATIONS.md), the
   * restore it read was counted by its source already */
  metrics_counter_inc(c->m.from[CLOG_FROM_COLD]);
  if (changelog_dirty_new(&pt->dirty) || changelog_dirty_new(&pt->evicted))
    LOG_ERROR("clog", "partition %d: out of memory; no changelog checkpoints for it", (int)p);
}

void clog_revoke(clog_t *c, int32_t p) {
  if (p < 0 || p >= c->n_parts) return;
  int was_waiting = c->parts[p].waiting;
  part_reset(&c->parts[p]);
  c->parts[p].gen++;
  if (was_waiting) waiting_gauge(c);
}

typedef struct {
  part_t *pt;
  store_t *st;
  int32_t p;
  int err;
} enc_t;

/* An idle partition keeps its record buffer up to this size; a larger one
 * (a burst of changed users in one checkpoint round: 4 MiB per partition
 * after 3,000 new users each) is freed once its checkpoint ends, so a
 * burst's peak does not stay in the RSS (docs/PERFORMANCE.md). */
#define BUF_KEEP_BYTES (256u << 10)
/* In slices, a larger buffer shrinks by this much per clog_pump (returning
 * 8 MiB of touched pages to the kernel takes about a millisecond; a 1 GiB
 * buffer freed at once would stall the loop for a hundred) */
#define BUF_SHRINK_BYTES (8u << 20)

static void buf_trim(clog_t *c, part_t *pt) {
  if (pt->phase != IDLE || pt->cap <= BUF_KEEP_BYTES) return;
  pt->len = pt->sent_at = 0;
  if (c->slice_ns && !c->unbounded && pt->cap > BUF_SHRINK_BYTES + BUF_KEEP_BYTES) {
    uint8_t *b = realloc(pt->buf, pt->cap - BUF_SHRINK_BYTES); /* shrinks in place */
    if (b) {
      pt->buf = b;
      pt->cap -= BUF_SHRINK_BYTES;
      return;
    }
  }
  free(pt->buf);
  pt->buf = NULL;
  pt->cap = 0;
}

/* Room for need more bytes in pt->buf; 0 or IX_ENOMEM. */
static int reserve(part_t *pt, size_t need) {
  if (pt->len + need <= pt->cap) return 0;
  size_t cap = pt->cap ? pt->cap * 2 : 1 << 16;
  while (cap < pt->len + need) cap *= 2;
  uint8_t *b = realloc(pt->buf, cap);
  if (!b) return IX_ENOMEM;
  pt->buf = b;
  pt->cap = cap;
  return 0;
}

/* ENCODING: user's record from pt->enc_st, its state as it is now, with the
 * offset of the last event applied to it: off (taken with the changed users
 * at the start) or a later one noted since (docs/STATE.md, "Incremental
 * encoding"). 0, IX_ENOMEM or IX_ETOOBIG. */
static int encode_one(part_t *pt, int32_t p, uint64_t user, int64_t off) {
  int64_t later;
  if (changelog_dirty_get(pt->dirty, user, &later) && later > off) off = later;
  /* a read, not an event: store_get() would mark the user seen at time 0 and
   * move it to the head of its partition's LRU list */
  int64_t seen = 0;
  const void *blob = store_peek_seen(pt->enc_st, p, user, &seen);
  if (!blob) return 0; /* evicted before the start: its tombstone comes from pt->evicted */
  size_t bs = store_blob_size(pt->enc_st), need = CHANGELOG_KEY_BYTES + 4 + CHANGELOG_USER_FIXED + bs;
  if (reserve(pt, need)) return IX_ENOMEM;
  uint8_t *k = pt->buf + pt->len;
  changelog_user_key(user, k);
  uint8_t *v = k + CHANGELOG_KEY_BYTES + 4;
  /* with its last-seen time: a restore orders users by it, and the idle TTL
   * and the memory limit evict by it */
  size_t vl = changelog_encode_user(p, pt->fp, user, off, seen, blob, (uint32_t)bs, v,
                                    CHANGELOG_USER_FIXED + bs);
  if (!vl) return IX_ETOOBIG;
  memcpy(k + CHANGELOG_KEY_BYTES, &(uint32_t){(uint32_t)vl}, 4);
  pt->len += CHANGELOG_KEY_BYTES + 4 + vl;
  pt->n_recs++;
  if (off > pt->max_r) pt->max_r = off;
  /* as changelog_dirty_forget_before(next_offset) keeps it at completion: a
   * user with an event at or past the checkpoint's offset stays changed */
  if (off >= pt->next_offset && changelog_dirty_note(pt->dirty, user, off)) return IX_ENOMEM;
  return 0;
}

/* A tombstone (null value) for an evicted user not held again, once a
 * completion record at or past its eviction is durable (docs/STATE.md). */
static int encode_tomb(void *ctx, uint64_t user, int64_t evicted_at) {
  enc_t *e = ctx;
  part_t *pt = e->pt;
  if (evicted_at > pt->tomb_upto || store_peek(e->st, e->p, user)) return 0;
  size_t need = CHANGELOG_KEY_BYTES + 4;
  if (reserve(pt, need)) return e->err = IX_ENOMEM;
  changelog_user_key(user, pt->buf + pt->len);
  memset(pt->buf + pt->len + CHANGELOG_KEY_BYTES, 0, 4);
  pt->len += need;
  pt->n_recs++;
  return 0;
}

/* In slices, at most this many user records are handed to the producer and
 * not yet reported: the delivery reports that one clog_pump serves (each
 * frees its record's copy: about 1 us) stay within a few ms. */
#define IN_FLIGHT_MAX 2048u

/* The checkpoint being written is given up (a record failed or was refused,
 * out of memory, the model changed while encoding): every user it took
 * stays changed, as if it had not started (those encoded, from their
 * records, with the offsets they carry; those still to encode), and the
 * evicted users were never forgotten. Phase IDLE. Runs over all the
 * checkpoint's records at once: failures only. */
static void drop_checkpoint(clog_t *c, int32_t p, part_t *pt) {
  int err = 0;
  for (size_t at = 0; at < pt->len;) {
    const uint8_t *k = pt->buf + at;
    uint32_t vl;
    memcpy(&vl, k + CHANGELOG_KEY_BYTES, 4);
    at += CHANGELOG_KEY_BYTES + 4 + vl;
    if (!vl) continue; /* a tombstone: its user is still in pt->evicted */
    changelog_rec_t rec;
    char why[160];
    if (changelog_decode(k, CHANGELOG_KEY_BYTES, k + CHANGELOG_KEY_BYTES + 4, vl, &rec, why,
                         sizeof why) == 0 &&
        changelog_dirty_note(pt->dirty, rec.user_id, rec.offset))
      err = IX_ENOMEM;
  }
  if (pt->enc && changelog_dirty_merge(pt->dirty, pt->enc)) err = IX_ENOMEM;
  if (err)
    LOG_ERROR("clog", "partition %d: out of memory keeping the users of a dropped changelog "
              "checkpoint changed; some are missing from the changelog until they change again",
              (int)p);
  (void)c;
  changelog_dirty_destroy(pt->enc);
  pt->enc = NULL;
  pt->enc_st = NULL;
  pt->phase = IDLE;
}

/* interestd_changelog_encode_seconds: one encoding call on the loop thread
 * that began at t0, a slice or a whole checkpoint at once */
static void encode_observed(clog_t *c, int at_once, uint64_t t0) {
  metrics_histogram_observe(c->m.encode_seconds[at_once ? 1 : 0],
                            (double)(ix_mono_ns() - t0) / 1e9);
}

/* ENCODING: the next users of pt until ix_mono_ns() reaches deadline_ns
 * (0: all of them; at least one user when called before it), then
 * WAIT_ACKS. Returns 0, or the error that dropped the checkpoint. */
static int encode_step(clog_t *c, int32_t p, part_t *pt, uint64_t deadline_ns) {
  uint64_t user;
  int64_t off;
  unsigned k = 0;
  if (deadline_ns && ix_mono_ns() >= deadline_ns) return 0;
  while (changelog_dirty_take_next(pt->enc, &pt->enc_cur, &user, &off)) {
    int rc = encode_one(pt, p, user, off);
    if (rc) {
      (void)changelog_dirty_note(pt->dirty, user, off); /* taken: keep it changed */
      LOG_WARN("clog", "partition %d: changelog checkpoint at offset %" PRId64 " dropped: %s",
               (int)p, pt->next_offset, ix_strerror(rc));
      drop_checkpoint(c, p, pt);
      return rc;
    }
    /* the clock every 8 users: about 4-8 us of encoding at 600 bytes a state */
    if (deadline_ns && (++k & 7) == 0 && ix_mono_ns() >= deadline_ns) return 0;
  }
  changelog_dirty_destroy(pt->enc);
  pt->enc = NULL;
  pt->enc_st = NULL;
  pt->acks_left = 0; /* records handed to the producer and not reported yet */
  pt->phase = WAIT_ACKS;
  LOG_DEBUG("clog", "partition %d: changelog checkpoint at offset %" PRId64 " encoded, %zu "
            "records, users' offsets up to %" PRId64, (int)p, pt->next_offset, pt->n_recs,
            pt->max_r);
  return 0;
}

int clog_checkpoint(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                    int64_t next_offset) {
  if (p < 0 || p >= c->n_parts) return 0;
  part_t *pt = &c->parts[p];
  if (!pt->owned || !pt->dirty || pt->phase != IDLE) return 0;
  if (next_offset > pt->pos) pt->pos = next_offset;
  /* a new epoch's first checkpoint is written even without users: its
   * completion is what supersedes the records before it */
  if (!pt->epoch_new && !changelog_dirty_count(pt->dirty) &&
      !changelog_dirty_count(pt->evicted) && next_offset <= pt->next_offset)
    return 0;
  uint64_t t0 = ix_mono_ns();
  int at_once = !c->slice_ns || c->unbounded;
  pt->old_model = 0;
  pt->first_at = pt->complete_at = -1;
  pt->len = pt->sent_at = pt->n_recs = 0;
  pt->failed = 0;
  pt->tomb_upto = pt->durable_at;
  /* tombstones first, decided now (whether the user is held at the start:
   * one lookup each); a user record encoded later for the same user (it
   * came back meanwhile) then follows its tombstone and wins */
  enc_t e = {pt, st, p, 0};
  changelog_dirty_foreach(pt->evicted, encode_tomb, &e);
  changelog_dirty_t *fresh = NULL;
  if (!e.err) e.err = changelog_dirty_new(&fresh);
  if (e.err) {
    pt->len = pt->n_recs = 0;
    buf_trim(c, pt);
    encode_observed(c, at_once, t0);
    return e.err;
  }
  /* the changed users so far are this checkpoint's; pt->dirty tracks the
   * changes from here on */
  pt->enc = pt->dirty;
  pt->dirty = fresh;
  /* room for every taken user now: a buffer grown on the way would be
   * copied by realloc in one slice (milliseconds at tens of MB); the pages
   * are touched as the slices fill them. Best effort: it grows otherwise. */
  (void)reserve(pt, changelog_dirty_count(pt->enc) *
                        (CHANGELOG_KEY_BYTES + 4 + CHANGELOG_USER_FIXED + store_blob_size(st)));
  pt->enc_cur = 0;
  pt->enc_st = st;
  pt->max_r = -1;
  pt->next_offset = next_offset;
  pt->fp = fingerprint;
  pt->phase = ENCODING;
  LOG_DEBUG("clog", "partition %d: changelog checkpoint at offset %" PRId64 ", %zu users to "
            "encode", (int)p, next_offset, changelog_dirty_count(pt->enc));
  int rc = at_once ? encode_step(c, p, pt, 0) : 0;
  encode_observed(c, at_once, t0);
  return rc;
}

static void send_complete(clog_t *c, int32_t p, part_t *pt) {
  if (c->kill_before_complete && ++c->completes == c->kill_before_complete) {
    fprintf(stderr, "IX_TEST_CLOG_KILL_BEFORE_COMPLETE: SIGKILL before completion record %" PRIu64
            " (partition %d, checkpoint at offset %" PRId64 ", its %zu user records acknowledged)\n",
            c->completes, (int)p, pt->next_offset, pt->n_recs);
    fflush(stderr);
    raise(SIGKILL);
  }
  if (c->kill_before_switch_epoch && c->switched && pt->epoch_new && !pt->old_model) {
    fprintf(stderr, "IX_TEST_CLOG_KILL_BEFORE_SWITCH_EPOCH: SIGKILL before the new model's first "
            "completion record (partition %d, checkpoint at offset %" PRId64 ", its %zu user "
            "records acknowledged)\n", (int)p, pt->next_offset, pt->n_recs);
    fflush(stderr);
    raise(SIGKILL);
  }
  uint8_t key[CHANGELOG_KEY_BYTES], val[CHANGELOG_COMPLETE_BYTES];
  changelog_complete_key(p, key);
  /* a new epoch begins at its first checkpoint's first record (or at this
   * completion when it wrote none) */
  int64_t epoch = pt->epoch;
  if (pt->old_model ? pt->old_epoch_new : pt->epoch_new)
    epoch = pt->first_at >= 0 ? pt->first_at : CHANGELOG_EPOCH_SELF;
  changelog_encode_complete(p, pt->fp, pt->next_offset, pt->seq + 1, pt->n_recs, ix_wall_ms(),
                            epoch, val, sizeof val);
  int rc = producer_send(c->prod, c->topic, p, key, sizeof key, val, sizeof val, 0, NULL, 0,
                         OPQ(p, pt->gen, 1));
  if (rc == 0) pt->phase = COMPLETE_SENT;
  else if (rc != IX_EFULL) {
    metrics_counter_inc(c->m.produce_failures);
    drop_checkpoint(c, p, pt);
  }
}

void clog_pump(clog_t *c, store_t *st, uint32_t fingerprint, clog_acked_fn acked,
               clog_durable_fn durable, void *ctx) {
  producer_poll(c->prod, 0);
  /* one budget for the whole call, whichever partitions use it; the first
   * partition visited turns round so that each gets its turn first */
  uint64_t deadline = c->slice_ns && !c->unbounded ? ix_mono_ns() + c->slice_ns : 0;
  int32_t first = c->n_parts ? (int32_t)(c->pumps++ % (uint64_t)c->n_parts) : 0;
  size_t in_flight = 0;
  for (int32_t p = 0; p < c->n_parts; p++) in_flight += c->parts[p].acks_left;
  for (int32_t i = 0; i < c->n_parts; i++) {
    int32_t p = (first + i) % c->n_parts;
    part_t *pt = &c->parts[p];
    if (!pt->owned) continue;
    if (pt->phase == ENCODING) {
      if (st != pt->enc_st || fingerprint != pt->fp) {
        /* a reload replaced the model (and the store): the users go to the next one */
        LOG_WARN("clog", "partition %d: the model changed during a changelog checkpoint; it "
                 "is dropped", (int)p);
        drop_checkpoint(c, p, pt);
      } else {
        uint64_t t0 = ix_mono_ns();
        if (!deadline || t0 < deadline) { /* else the budget is spent: the next pump */
          (void)encode_step(c, p, pt, deadline);
          encode_observed(c, deadline == 0, t0);
        }
      }
    }
    if (pt->phase == WAIT_ACKS) {
      /* predictions first: those before the checkpoint's offset, and those of
       * the events a user encoded after the start carries (its offset) */
      int64_t need = pt->max_r + 1 > pt->next_offset ? pt->max_r + 1 : pt->next_offset;
      if (acked(ctx, p) < need) continue;
      unsigned k = 0;
      while (!pt->failed && pt->sent_at < pt->len) {
        if (deadline && (((k++ & 31) == 0 && ix_mono_ns() >= deadline) ||
                         in_flight >= IN_FLIGHT_MAX))
          break; /* the next pump */
        const uint8_t *rk = pt->buf + pt->sent_at;
        uint32_t vl;
        memcpy(&vl, rk + CHANGELOG_KEY_BYTES, 4);
        const uint8_t *v = rk + CHANGELOG_KEY_BYTES + 4;
        int rc = producer_send(c->prod, c->topic, p, rk, CHANGELOG_KEY_BYTES, vl ? v : NULL, vl,
                               0, NULL, 0, OPQ(p, pt->gen, 0));
        if (rc == IX_EFULL) break; /* the rest at the next pump */
        if (rc) {
          metrics_counter_inc(c->m.produce_failures);
          LOG_WARN("clog", "changelog %s [%d]: a record was refused (%s); the checkpoint at "
                   "offset %" PRId64 " is dropped", c->topic_name, (int)p, ix_strerror(rc),
                   pt->next_offset);
          pt->failed = 1; /* nothing more is sent; wait for those in flight */
          break;
        }
        pt->acks_left++;
        in_flight++;
        pt->sent_at += CHANGELOG_KEY_BYTES + 4 + vl;
      }
      if (pt->sent_at == pt->len || pt->failed) pt->phase = USERS_SENT;
    }
    if (pt->phase == USERS_SENT) {
      /* every record handed over is reported: complete, or give up on a failure */
      if (pt->acks_left == 0) {
        if (pt->failed) drop_checkpoint(c, p, pt);
        else send_complete(c, p, pt);
      }
    }
    if (pt->phase == DONE && pt->old_model) {
      /* the previous model's last checkpoint: durable as such; the trackers
       * are the new model's (every user still to be written) */
      pt->durable_at = pt->next_offset;
      pt->seq++;
      pt->phase = IDLE;
      LOG_INFO("clog", "partition %d: the previous model's changelog checkpoint at offset %" PRId64
               " complete; the new model's first one follows", (int)p, pt->next_offset);
      durable(ctx, p, pt->next_offset);
    }
    if (pt->phase == DONE) {
      pt->durable_at = pt->next_offset;
      if (pt->epoch_new) {
        pt->epoch = pt->first_at >= 0 ? pt->first_at : pt->complete_at;
        pt->epoch_new = 0;
        if (pt->epoch < 0) {
          LOG_ERROR("clog", "partition %d: no changelog offset in the delivery reports of a new "
                    "epoch's checkpoint; records before it are not superseded", (int)p);
          pt->epoch = 0;
        }
        LOG_INFO("clog", "partition %d: changelog epoch from offset %" PRId64 " (model %08x, "
                 "%zu users, consistent at input offset %" PRId64 "): every record before it "
                 "is superseded", (int)p, pt->epoch, pt->fp, pt->n_recs, pt->next_offset);
      }
      /* evicted before the tombstones' bound: written, or held again (a user record) */
      if (changelog_dirty_forget_before(pt->evicted, pt->tomb_upto + 1) ||
          changelog_dirty_forget_before(pt->dirty, pt->next_offset))
        LOG_WARN("clog", "partition %d: out of memory; the next changelog checkpoint writes "
                 "its users again", (int)p);
      pt->seq++;
      pt->phase = IDLE;
      LOG_DEBUG("clog", "partition %d: changelog checkpoint %" PRIu64 " at offset %" PRId64
                " complete (%zu users)", (int)p, pt->seq, pt->next_offset, pt->n_recs);
      durable(ctx, p, pt->next_offset);
    }
    buf_trim(c, pt);
  }
}

int clog_busy(const clog_t *c) {
  for (int32_t p = 0; p < c->n_parts; p++) {
    const part_t *pt = &c->parts[p];
    if (pt->owned && (pt->phase == ENCODING ||
                      (pt->phase == WAIT_ACKS && pt->sent_at > 0 && pt->sent_at < pt->len)))
      return 1;
  }
  return 0;
}

int32_t clog_partitions(const clog_t *c) { return c->n_parts; }

int clog_other_model(const clog_t *c, int32_t p, int64_t *next_offset) {
  if (p < 0 || p >= c->n_parts || !c->parts[p].other_model) return 0;
  *next_offset = c->parts[p].other_next;
  return 1;
}

int clog_cluster_has_admin(const clog_t *c) { return c && c->has_admin; }

int clog_switch_model(clog_t *c, int32_t p, store_t *st, int64_t pos) {
  if (p < 0 || p >= c->n_parts || !c->parts[p].owned) return 0;
  part_t *pt = &c->parts[p];
  changelog_dirty_t *dirty = NULL, *evicted = NULL;
  if (changelog_dirty_new(&dirty) || changelog_dirty_new(&evicted)) {
    changelog_dirty_destroy(dirty);
    changelog_dirty_destroy(evicted);
    return IX_ENOMEM;
  }
  /* every user of the new store, with the offset its state is consistent
   * with (every event before pos) */
  mark_t m = {.st = st, .p = p, .at = pos > 0 ? pos - 1 : 0, .dirty = dirty};
  store_foreach(st, p, mark_user, &m);
  if (m.err) {
    changelog_dirty_destroy(dirty);
    changelog_dirty_destroy(evicted);
    return m.err;
  }
  /* an old model's checkpoint still being encoded reads the old store, which
   * is gone: dropped now (its users are superseded by the new epoch) */
  if (pt->phase == ENCODING) drop_checkpoint(c, p, pt);
  changelog_dirty_destroy(pt->dirty);
  changelog_dirty_destroy(pt->evicted); /* the old model's users: superseded by the epoch */
  pt->dirty = dirty;
  pt->evicted = evicted;
  /* the new states hold every event before pos, none after: nothing to skip */
  changelog_restore_destroy(pt->skip);
  pt->skip = NULL;
  pt->skip_until = -1;
  if (pos > pt->pos) pt->pos = pos;
  /* a checkpoint of the old model being written finishes as it is (its
   * records come before the new epoch's) */
  if (pt->phase != IDLE && !pt->old_model) {
    pt->old_model = 1;
    pt->old_epoch_new = pt->epoch_new;
  }
  pt->epoch_new = 1;
  c->switched = 1;
  return 0;
}

int clog_ahead_of(const clog_t *c, int32_t p, int64_t next_offset) {
  if (p < 0 || p >= c->n_parts) return 0;
  return c->parts[p].skip && next_offset <= c->parts[p].skip_until;
}

size_t clog_pending(const clog_t *c) {
  size_t k = 0;
  for (int32_t p = 0; p < c->n_parts; p++) k += c->parts[p].phase != IDLE;
  return k;
}

int clog_checkpoint_now(clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                        int64_t next_offset, clog_acked_fn acked, clog_durable_fn durable,
                        void *ctx, uint64_t deadline_ms) {
  if (p < 0 || p >= c->n_parts || !c->parts[p].owned) return 0;
  part_t *pt = &c->parts[p];
  int rc = 0;
  c->unbounded = 1; /* it blocks anyway: no slices */
  /* the one being written, then one at next_offset, then one more for the
   * tombstones that the second one's completion allows */
  for (int round = 0; round < 3 && !rc; round++) {
    if (round && pt->phase == IDLE &&
        clog_checkpoint(c, p, st, fingerprint, next_offset) != 0)
      break;
    if (pt->phase == IDLE) {
      if (round) break; /* nothing to write */
      continue;
    }
    while (pt->phase != IDLE && ix_mono_ms() < deadline_ms) {
      producer_poll(c->prod, 5);
      clog_pump(c, st, fingerprint, acked, durable, ctx);
    }
    if (pt->phase != IDLE) rc = IX_EKAFKA;
  }
  c->unbounded = 0;
  if (rc) return rc;
  return pt->durable_at >= next_offset ? 0 : IX_EKAFKA;
}
