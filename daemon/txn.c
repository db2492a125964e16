/* Exactly-once output: the transaction cycle, the undo copies of the states
 * a transaction changed, and the replay without output after a restore from
 * a checkpoint older than the committed offsets (daemon/txn.h). */
#include "daemon/txn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "state/store.h"

/* A user's state as it was before the open transaction changed it. */
typedef struct {
  int32_t partition;
  int present;          /* 0: the user had no state (remove it on abort) */
  uint64_t user_id;
  int64_t last_seen_ms;
  size_t blob_at;       /* offset in blobs */
} undo_t;

typedef struct {
  int64_t first;          /* first offset consumed in the open transaction; -1 none */
  int64_t committed;      /* next offset committed by this process or read at assignment */
  int64_t replay_until;   /* events before it are replayed without output; -1 none */
  int64_t rewound_to;     /* after an abort: the next message must be this one; -1 none */
  uint64_t rewound_ms;    /* when the rewind was last asked */
} tpart_t;

struct txn {
  txn_opts_t o;
  pipeline_skip_fn inner_skip;
  pipeline_applied_fn inner_applied;
  void *inner_ctx;
  int open, failed, aborting;
  uint64_t begun_ms;
  char fail_why[256];
  tpart_t *parts;
  int32_t n_parts;
  /* undo copies: entries, their blobs, and an open-addressing index
   * (entry index + 1, 0 = empty) */
  undo_t *undo;
  size_t n_undo, cap_undo;
  unsigned char *blobs;
  size_t blobs_len, blobs_cap;
  uint32_t *index;
  size_t index_cap;       /* power of two */
  txn_stats_t st;
};

static tpart_t *part(txn_t *t, int32_t p) {
  if (p < 0) return NULL;
  if (p >= t->n_parts) {
    int32_t n = t->n_parts ? t->n_parts : 16;
    while (n <= p) n *= 2;
    tpart_t *np = realloc(t->parts, (size_t)n * sizeof *np);
    if (!np) return NULL;
    for (int32_t i = t->n_parts; i < n; i++)
      np[i] = (tpart_t){.first = -1, .committed = -1, .replay_until = -1, .rewound_to = -1};
    t->parts = np;
    t->n_parts = n;
  }
  return &t->parts[p];
}

int txn_new(const txn_opts_t *o, txn_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  txn_t *t = calloc(1, sizeof *t);
  if (!t) return IX_ENOMEM;
  t->o = *o;
  uint64_t t0 = ix_mono_ms();
  int rc;
  /* a retriable error (coordinator loading) is tried again within the bound */
  while ((rc = producer_txn_init(o->producer, o->timeout_ms, errstr, errstr_size)) == IX_EFULL &&
         ix_mono_ms() - t0 < (uint64_t)o->timeout_ms * 3)
    LOG_WARN("txn", "%s; trying again", errstr);
  if (rc) {
    free(t);
    return rc == IX_ENOMEM ? rc : IX_EKAFKA;
  }
  LOG_INFO("txn", "transactions initialised in %" PRIu64 " ms (commit every %u ms)",
           ix_mono_ms() - t0, o->commit_interval_ms);
  *out = t;
  return 0;
}

void txn_destroy(txn_t *t) {
  if (!t) return;
  free(t->parts);
  free(t->undo);
  free(t->blobs);
  free(t->index);
  free(t);
}

/* ---------------------------------------------------------------- undo copies */

static size_t hash_key(int32_t p, uint64_t user) {
  uint64_t h = user * 0x9E3779B97F4A7C15ull ^ ((uint64_t)(uint32_t)p * 0xC2B2AE3D27D4EB4Full);
  return (size_t)(h ^ (h >> 29));
}

static int index_grow(txn_t *t) {
  size_t cap = t->index_cap ? t->index_cap * 2 : 1024;
  uint32_t *ix = calloc(cap, sizeof *ix);
  if (!ix) return IX_ENOMEM;
  for (size_t i = 0; i < t->n_undo; i++) {
    size_t b = hash_key(t->undo[i].partition, t->undo[i].user_id) & (cap - 1);
    while (ix[b]) b = (b + 1) & (cap - 1);
    ix[b] = (uint32_t)(i + 1);
  }
  free(t->index);
  t->index = ix;
  t->index_cap = cap;
  return 0;
}

/* Saves (p, user)'s state unless saved already in this transaction. */
static int undo_save(txn_t *t, int32_t p, uint64_t user) {
  if ((t->n_undo + 1) * 2 > t->index_cap && index_grow(t)) return IX_ENOMEM;
  size_t b = hash_key(p, user) & (t->index_cap - 1);
  for (; t->index[b]; b = (b + 1) & (t->index_cap - 1)) {
    const undo_t *u = &t->undo[t->index[b] - 1];
    if (u->user_id == user && u->partition == p) return 0;
  }
  if (t->n_undo == t->cap_undo) {
    size_t cap = t->cap_undo ? t->cap_undo * 2 : 1024;
    undo_t *nu = realloc(t->undo, cap * sizeof *nu);
    if (!nu) return IX_ENOMEM;
    t->undo = nu;
    t->cap_undo = cap;
  }
  store_t *st = pipeline_store(t->o.pipe);
  size_t bs = store_blob_size(st);
  int64_t seen = 0;
  const void *blob = store_peek_seen(st, p, user, &seen);
  undo_t *u = &t->undo[t->n_undo];
  *u = (undo_t){.partition = p, .user_id = user, .present = blob != NULL, .last_seen_ms = seen};
  if (blob) {
    if (t->blobs_len + bs > t->blobs_cap) {
      size_t cap = t->blobs_cap ? t->blobs_cap * 2 : 64 * bs;
      while (cap < t->blobs_len + bs) cap *= 2;
      unsigned char *nb = realloc(t->blobs, cap);
      if (!nb) return IX_ENOMEM;
      t->blobs = nb;
      t->blobs_cap = cap;
    }
    u->blob_at = t->blobs_len;
    memcpy(t->blobs + t->blobs_len, blob, bs);
    t->blobs_len += bs;
  }
  t->index[b] = (uint32_t)(++t->n_undo);
  t->st.undo_users++;
  return 0;
}

static void undo_forget(txn_t *t) {
  if (t->n_undo && t->index) memset(t->index, 0, t->index_cap * sizeof *t->index);
  t->n_undo = 0;
  t->blobs_len = 0;
}

/* Puts every saved state back (newest first does not matter: one copy per
 * user, the one from before its first change). */
static void undo_apply(txn_t *t) {
  store_t *st = pipeline_store(t->o.pipe);
  size_t restored = 0, removed = 0;
  for (size_t i = 0; i < t->n_undo; i++) {
    const undo_t *u = &t->undo[i];
    if (u->present) {
      if (store_put(st, u->partition, u->user_id, u->last_seen_ms, t->blobs + u->blob_at))
        LOG_ERROR("txn", "out of memory putting back user %" PRIu64 " of partition %d",
                  u->user_id, (int)u->partition);
      else restored++;
    } else {
      removed += (size_t)store_remove(st, u->partition, u->user_id);
    }
  }
  LOG_INFO("txn", "rolled back the states: %zu users put back, %zu new users removed", restored,
           removed);
  undo_forget(t);
}

static int hook_skip(void *ctx, int32_t p, uint64_t user, int64_t offset) {
  txn_t *t = ctx;
  if (t->inner_skip && t->inner_skip(t->inner_ctx, p, user, offset)) return 1;
  if (undo_save(t, p, user)) {
    /* without the copy an abort could not restore this user: make this
     * transaction fail rather than keep an aborted event in a state */
    txn_delivery_failed(t, "out of memory for an undo copy of a state");
  }
  return 0;
}

static void hook_applied(void *ctx, int32_t p, uint64_t user, int64_t offset) {
  txn_t *t = ctx;
  if (t->inner_applied) t->inner_applied(t->inner_ctx, p, user, offset);
}

void txn_set_hooks(txn_t *t, pipeline_skip_fn skip, pipeline_applied_fn applied,
                   void *inner_ctx) {
  t->inner_skip = skip;
  t->inner_applied = applied;
  t->inner_ctx = inner_ctx;
  pipeline_set_hooks(t->o.pipe, hook_skip, hook_applied, t);
}

/* ---------------------------------------------------------------- the cycle */

int txn_begin(txn_t *t, char *errstr, size_t errstr_size) {
  if (t->open) return 0;
  int rc = producer_txn_begin(t->o.producer, errstr, errstr_size);
  if (rc) return IX_EKAFKA; /* only a broken producer refuses to begin */
  t->open = 1;
  t->failed = 0;
  t->begun_ms = ix_mono_ms();
  return 0;
}

int txn_accept(txn_t *t, int32_t p, int64_t offset) {
  if (p < 0 || p >= t->n_parts) return 1;
  tpart_t *tp = &t->parts[p];
  if (tp->rewound_to < 0) return 1;
  if (offset == tp->rewound_to) {
    tp->rewound_to = -1;
    return 1;
  }
  t->st.stale++;
  if (offset > tp->rewound_to && ix_mono_ms() - tp->rewound_ms > 500) {
    /* still the old position (a pause and resume fetches from the last
     * position handed out): ask again */
    tp->rewound_ms = ix_mono_ms();
    LOG_INFO("txn", "partition %d: offset %" PRId64 " arrived, %" PRId64 " expected: rewinding "
             "again", (int)p, offset, tp->rewound_to);
    consumer_seek(t->o.consumer, p, tp->rewound_to, t->o.timeout_ms);
  }
  return 0;
}

void txn_consumed(txn_t *t, int32_t p, int64_t offset) {
  tpart_t *tp = part(t, p);
  if (!tp) {
    txn_delivery_failed(t, "out of memory tracking a partition");
    return;
  }
  if (tp->first < 0) tp->first = offset;
  if (tp->replay_until >= 0 && offset < tp->replay_until) t->st.replayed++;
}

int txn_replaying(const txn_t *t, int32_t p, int64_t offset) {
  return p >= 0 && p < t->n_parts && offset < t->parts[p].replay_until;
}

void txn_delivery_failed(txn_t *t, const char *why) {
  if (t->aborting || !t->open) return; /* the purge of an abort reports its messages */
  if (!t->failed) snprintf(t->fail_why, sizeof t->fail_why, "%s", why);
  t->failed = 1;
}

int txn_open(const txn_t *t) { return t->open; }

int64_t txn_committed(const txn_t *t, int32_t p) {
  return p >= 0 && p < t->n_parts ? t->parts[p].committed : -1;
}

int txn_due(const txn_t *t) {
  return t->open && ix_mono_ms() - t->begun_ms >= t->o.commit_interval_ms;
}

/* Aborts at the broker, then rewinds states, rings and positions to the
 * start of the transaction. */
static int rollback(txn_t *t, char *why, size_t why_size) {
  char err[512];
  t->aborting = 1;
  int rc = producer_txn_abort(t->o.producer, t->o.timeout_ms, err, sizeof err);
  for (int tries = 0; rc == IX_EFULL && tries < 3; tries++)
    rc = producer_txn_abort(t->o.producer, t->o.timeout_ms, err, sizeof err);
  producer_poll(t->o.producer, 0); /* the purged messages' reports, ignored */
  if (rc) {
    t->aborting = 0;
    snprintf(why, why_size, "%s", err);
    return IX_EKAFKA;
  }
  t->st.aborts++;
  undo_apply(t);
  for (int32_t p = 0; p < t->n_parts; p++) {
    tpart_t *tp = &t->parts[p];
    if (tp->first < 0) continue;
    /* a new generation: reports of the aborted messages are ignored */
    inflight_assign(t->o.inflight, p, tp->first);
    if (consumer_seek(t->o.consumer, p, tp->first, t->o.timeout_ms))
      LOG_ERROR("txn", "partition %d: could not rewind to offset %" PRId64 " after the abort",
                (int)p, tp->first);
    else
      LOG_INFO("txn", "partition %d: rewound to offset %" PRId64, (int)p, tp->first);
    tp->rewound_to = tp->first;
    tp->rewound_ms = ix_mono_ms();
    tp->first = -1;
  }
  if (t->o.rolled_back) t->o.rolled_back(t->o.ctx);
  t->open = 0;
  t->failed = 0;
  t->aborting = 0;
  return 0;
}

int txn_abort(txn_t *t, char *why, size_t why_size) {
  if (!t->open) return 0;
  return rollback(t, why, why_size);
}

int txn_commit(txn_t *t, char *why, size_t why_size) {
  if (!t->open) return 0;
  char err[512];
  int rc = 0;
  if (t->failed) {
    snprintf(err, sizeof err, "%s", t->fail_why);
    rc = IX_ESTATE;
  } else if (t->o.flush && t->o.flush(t->o.ctx, t->o.timeout_ms)) {
    snprintf(err, sizeof err, "messages held back could not be queued within %d ms",
             t->o.timeout_ms);
    rc = IX_ESTATE;
  }
  producer_txn_offset_t *offs = NULL;
  size_t n = 0;
  if (!rc) {
    offs = malloc(((size_t)t->n_parts + 1) * sizeof *offs);
    if (!offs) {
      snprintf(err, sizeof err, "out of memory");
      rc = IX_ESTATE;
    }
  }
  for (int32_t p = 0; !rc && p < t->n_parts; p++) {
    if (t->parts[p].first < 0) continue;
    inflight_part_t pt = inflight_part(t->o.inflight, p);
    /* never below what is committed: a partition replaying up to its
     * committed offset keeps that offset until it passes it */
    if (!pt.owned || pt.consumed_next <= t->parts[p].committed) continue;
    offs[n++] = (producer_txn_offset_t){p, pt.consumed_next};
  }
  if (!rc) {
    uint64_t t0 = ix_mono_ms();
    do {
      rc = producer_txn_commit(t->o.producer, t->o.consumer, offs, n, t->o.timeout_ms, err,
                               sizeof err);
    } while (rc == IX_EFULL && ix_mono_ms() - t0 < (uint64_t)t->o.timeout_ms * 2);
    if (rc == IX_EFULL) rc = IX_ESTATE;
  }
  if (rc == IX_EKAFKA) {
    free(offs);
    snprintf(why, why_size, "%s", err);
    return IX_EKAFKA;
  }
  if (rc) {
    free(offs);
    LOG_WARN("txn", "transaction failed (%s): aborting it and rolling back", err);
    if (rollback(t, why, why_size)) return IX_EKAFKA;
    snprintf(why, why_size, "%s", err);
    return IX_ESTATE;
  }
  for (size_t i = 0; i < n; i++) t->parts[offs[i].partition].committed = offs[i].next_offset;
  for (int32_t p = 0; p < t->n_parts; p++) {
    tpart_t *tp = &t->parts[p];
    tp->first = -1;
    /* the replay is over once the events up to its end were consumed (and
     * are now committed with the states they made) */
    if (tp->replay_until >= 0 &&
        inflight_part(t->o.inflight, p).consumed_next >= tp->replay_until)
      tp->replay_until = -1;
  }
  free(offs);
  undo_forget(t);
  t->open = 0;
  t->st.commits++;
  return 0;
}

/* ---------------------------------------------------------------- partitions */

int txn_assigned(txn_t *t, int32_t p, int64_t start_next, int rebuild, int64_t *seek_to,
                 char *why, size_t why_size) {
  *seek_to = -1;
  tpart_t *tp = part(t, p);
  if (!tp) {
    snprintf(why, why_size, "out of memory");
    return IX_EKAFKA;
  }
  *tp = (tpart_t){.first = -1, .committed = -1, .replay_until = -1, .rewound_to = -1};
  if (start_next < 0 && !rebuild) return 0; /* starts at the committed offset, empty states */
  int64_t committed = -1;
  int rc = IX_EKAFKA;
  /* the coordinator answers once no transaction with offsets for p is
   * pending (read_committed asks for stable offsets) */
  for (int tries = 0; tries < 3 && rc; tries++)
    rc = consumer_committed(t->o.consumer, p, t->o.timeout_ms, &committed);
  if (rc) {
    snprintf(why, why_size, "partition %d: the group's committed offset could not be read, so "
             "the events before it cannot be told apart from new ones", (int)p);
    return IX_EKAFKA;
  }
  tp->committed = committed;
  if (start_next < 0) {
    if (committed <= 0) return 0; /* nothing committed: the input from its start, with output */
    int64_t lo = -1, hi = -1;
    if (consumer_query_watermarks(t->o.consumer, p, t->o.timeout_ms, &lo, &hi) || lo < 0) {
      snprintf(why, why_size, "partition %d: no checkpoint, and the start of the input could "
               "not be read to rebuild the states up to the committed offset %" PRId64, (int)p,
               committed);
      return IX_EKAFKA;
    }
    if (lo > 0)
      LOG_WARN("txn", "partition %d: the input starts at offset %" PRId64 " (retention): the "
               "states rebuilt from it lack the events before", (int)p, lo);
    if (lo >= committed) return 0;
    *seek_to = start_next = lo;
    LOG_INFO("txn", "partition %d: no checkpoint; rebuilding the states from the input: "
             "replaying offsets %" PRId64 "..%" PRId64 " without output", (int)p, lo,
             committed);
  }
  if (committed > start_next) {
    tp->replay_until = committed;
    LOG_INFO("txn", "partition %d: the checkpoint is at offset %" PRId64 ", the committed "
             "offset at %" PRId64 ": replaying %" PRId64 " events into the states without "
             "output", (int)p, start_next, committed, committed - start_next);
  } else if (committed >= 0 && committed < start_next) {
    /* written by an at-least-once run: its outputs up to the checkpoint
     * were delivered (at least once) */
    LOG_WARN("txn", "partition %d: the checkpoint (offset %" PRId64 ") is beyond the committed "
             "offset %" PRId64 " (written by an at_least_once run?): resuming at the checkpoint",
             (int)p, start_next, committed);
  }
  return 0;
}

void txn_revoked(txn_t *t, int32_t p) {
  if (p >= 0 && p < t->n_parts) t->parts[p] = (tpart_t){.first = -1, .committed = -1,
                                                         .replay_until = -1};
}

void txn_get_stats(const txn_t *t, txn_stats_t *out) { *out = t->st; }
