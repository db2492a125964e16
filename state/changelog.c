/* The changelog topic's record format and the restore rule (docs/STATE.md,
 * "Changelog topic"). Values are fixed big-endian layouts closed by a CRC-32
 * over every byte before it:
 *   user:     "IXCL" u16 version u16 kind=1 i32 partition u32 fingerprint
 *             i64 offset i64 last_seen_ms u64 user_id u32 blob_size blob u32 crc
 *   complete: "IXCL" u16 version u16 kind=2 i32 partition u32 fingerprint
 *             i64 offset u64 sequence u64 users i64 created_ms
 *             [version 2: i64 epoch_start] u32 crc */
#include "state/changelog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/err.h"
#include "common/hash.h"

static const uint8_t MAGIC[4] = {'I', 'X', 'C', 'L'};

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = (v << 8) | p[i];
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

void changelog_user_key(uint64_t user_id, uint8_t key[CHANGELOG_KEY_BYTES]) {
  key[0] = 'u';
  put64(key + 1, user_id);
}

void changelog_complete_key(int32_t partition, uint8_t key[CHANGELOG_KEY_BYTES]) {
  key[0] = 'c';
  put32(key + 1, (uint32_t)partition);
  put32(key + 5, 0);
}

static void put_head(uint8_t *buf, changelog_kind_t kind, int32_t partition,
                     uint32_t fingerprint, int64_t offset) {
  memcpy(buf, MAGIC, 4);
  put16(buf + 4, kind == CHANGELOG_COMPLETE ? CHANGELOG_COMPLETE_VERSION : CHANGELOG_VERSION);
  put16(buf + 6, (uint16_t)kind);
  put32(buf + 8, (uint32_t)partition);
  put32(buf + 12, fingerprint);
  put64(buf + 16, (uint64_t)offset);
}

size_t changelog_encode_user(int32_t partition, uint32_t fingerprint, uint64_t user_id,
                             int64_t offset, int64_t last_seen_ms, const void *blob,
                             uint32_t blob_size, uint8_t *buf, size_t cap) {
  size_t len = CHANGELOG_USER_FIXED + (size_t)blob_size;
  if (blob_size > CHANGELOG_MAX_BLOB || cap < len) return 0;
  put_head(buf, CHANGELOG_USER, partition, fingerprint, offset);
  put64(buf + 24, (uint64_t)last_seen_ms);
  put64(buf + 32, user_id);
  put32(buf + 40, blob_size);
  if (blob_size) memcpy(buf + 44, blob, blob_size);
  put32(buf + len - 4, ix_crc32(0, buf, len - 4));
  return len;
}

size_t changelog_encode_complete(int32_t partition, uint32_t fingerprint, int64_t offset,
                                 uint64_t sequence, uint64_t users, int64_t created_ms,
                                 int64_t epoch_start, uint8_t *buf, size_t cap) {
  if (cap < CHANGELOG_COMPLETE_BYTES || epoch_start < CHANGELOG_EPOCH_SELF) return 0;
  put_head(buf, CHANGELOG_COMPLETE, partition, fingerprint, offset);
  put64(buf + 24, sequence);
  put64(buf + 32, users);
  put64(buf + 40, (uint64_t)created_ms);
  put64(buf + 48, (uint64_t)epoch_start);
  put32(buf + 56, ix_crc32(0, buf, 56));
  return CHANGELOG_COMPLETE_BYTES;
}

int changelog_decode(const void *key, size_t key_len, const void *val, size_t val_len,
                     changelog_rec_t *rec, char *errstr, size_t n) {
  const uint8_t *k = key, *v = val;
  memset(rec, 0, sizeof *rec);
  if (!k || key_len != CHANGELOG_KEY_BYTES)
    return ix_fail(IX_EMALFORMED, errstr, n, "changelog key is %zu bytes, expected %u", key_len,
                CHANGELOG_KEY_BYTES);
  if (!v || val_len < 24)
    return ix_fail(IX_ETRUNC, errstr, n, "changelog value is %zu bytes, shorter than its header",
                val_len);
  if (memcmp(v, MAGIC, 4) != 0)
    return ix_fail(IX_EBADMAGIC, errstr, n, "changelog value does not start with IXCL");
  uint16_t version = get16(v + 4), kind = get16(v + 6);
  if (version != CHANGELOG_VERSION &&
      !(kind == CHANGELOG_COMPLETE && version == CHANGELOG_COMPLETE_VERSION))
    return ix_fail(IX_EVERSION, errstr, n, "changelog record version %u of kind %u (this build "
                   "reads user records of version %u, completion records of %u and %u)",
                   version, kind, CHANGELOG_VERSION, CHANGELOG_VERSION,
                   CHANGELOG_COMPLETE_VERSION);
  size_t want;
  if (kind == CHANGELOG_USER) {
    if (val_len < CHANGELOG_USER_FIXED)
      return ix_fail(IX_ETRUNC, errstr, n, "changelog user record is %zu bytes, shorter than %u",
                  val_len, CHANGELOG_USER_FIXED);
    uint32_t bs = get32(v + 40);
    if (bs > CHANGELOG_MAX_BLOB)
      return ix_fail(IX_ETOOBIG, errstr, n, "changelog user record carries a %u-byte state (max %u)",
                  bs, CHANGELOG_MAX_BLOB);
    want = CHANGELOG_USER_FIXED + (size_t)bs;
  } else if (kind == CHANGELOG_COMPLETE) {
    want = version == CHANGELOG_VERSION ? CHANGELOG_COMPLETE_V1_BYTES : CHANGELOG_COMPLETE_BYTES;
  } else {
    return ix_fail(IX_EMALFORMED, errstr, n, "changelog record kind %u is unknown", kind);
  }
  if (val_len != want)
    return ix_fail(val_len < want ? IX_ETRUNC : IX_EMALFORMED, errstr, n,
                "changelog record is %zu bytes, its header says %zu", val_len, want);
  if (ix_crc32(0, v, want - 4) != get32(v + want - 4))
    return ix_fail(IX_ECRC, errstr, n, "changelog record checksum mismatch");
  rec->kind = (changelog_kind_t)kind;
  rec->partition = (int32_t)get32(v + 8);
  rec->fingerprint = get32(v + 12);
  rec->offset = (int64_t)get64(v + 16);
  if (rec->offset < 0)
    return ix_fail(IX_EMALFORMED, errstr, n, "changelog record has a negative offset %lld",
                (long long)rec->offset);
  if (kind == CHANGELOG_USER) {
    rec->last_seen_ms = (int64_t)get64(v + 24);
    rec->user_id = get64(v + 32);
    rec->blob_size = get32(v + 40);
    rec->blob = v + 44;
    if (k[0] != 'u' || get64(k + 1) != rec->user_id)
      return ix_fail(IX_EMALFORMED, errstr, n, "changelog key does not match user record %llu",
                  (unsigned long long)rec->user_id);
  } else {
    rec->sequence = get64(v + 24);
    rec->users = get64(v + 32);
    rec->created_ms = (int64_t)get64(v + 40);
    rec->epoch_start = version == CHANGELOG_VERSION ? 0 : (int64_t)get64(v + 48);
    if (rec->epoch_start < CHANGELOG_EPOCH_SELF)
      return ix_fail(IX_EMALFORMED, errstr, n, "changelog completion record has epoch start %lld",
                     (long long)rec->epoch_start);
    if (k[0] != 'c' || (int32_t)get32(k + 1) != rec->partition || get32(k + 5) != 0)
      return ix_fail(IX_EMALFORMED, errstr, n,
                  "changelog key does not match the completion record of partition %d",
                  (int)rec->partition);
  }
  return 0;
}

/* ---- restore ---- */

/* user id -> offset of the newest record read, and the changelog offset
 * that record was read at (open addressing) */
typedef struct {
  uint64_t *keys;
  int64_t *offs; /* -1: empty slot */
  int64_t *ats;  /* changelog offset of the record (-1 unknown) */
  size_t cap, n;
} offmap_t;

static void offmap_free(offmap_t *m) {
  free(m->keys);
  free(m->offs);
  free(m->ats);
}

/* Replaces m by a map of cap slots (a power of two, more than m holds)
 * with m's entries whose offset is at least min_off (>= 0). 0, or
 * IX_ENOMEM with m unchanged. */
static int offmap_rebuild(offmap_t *m, size_t cap, int64_t min_off) {
  offmap_t g = {calloc(cap, sizeof *g.keys), malloc(cap * sizeof *g.offs),
                malloc(cap * sizeof *g.ats), cap, 0};
  if (!g.keys || !g.offs || !g.ats) {
    offmap_free(&g);
    return IX_ENOMEM;
  }
  for (size_t i = 0; i < cap; i++) g.offs[i] = -1;
  for (size_t i = 0; i < m->cap; i++) {
    if (m->offs[i] < 0 || m->offs[i] < min_off) continue; /* empty, or dropped */
    size_t j = ix_fmix64(m->keys[i]) & (cap - 1);
    while (g.offs[j] >= 0) j = (j + 1) & (cap - 1);
    g.keys[j] = m->keys[i];
    g.offs[j] = m->offs[i];
    g.ats[j] = m->ats[i];
    g.n++;
  }
  offmap_free(m);
  *m = g;
  return 0;
}

static int offmap_grow(offmap_t *m) { return offmap_rebuild(m, m->cap ? m->cap * 2 : 1024, 0); }

/* *slot: the slot of user (occupied or the empty one to fill), after
 * growing m when it is half full; 0 or IX_ENOMEM. */
static int offmap_slot(offmap_t *m, uint64_t user, size_t *slot) {
  if (m->n * 2 >= m->cap && offmap_grow(m) != 0) return IX_ENOMEM;
  size_t j = ix_fmix64(user) & (m->cap - 1);
  while (m->offs[j] >= 0 && m->keys[j] != user) j = (j + 1) & (m->cap - 1);
  *slot = j;
  return 0;
}

struct changelog_restore {
  store_t *st;
  int32_t partition;
  uint32_t fingerprint;
  offmap_t users;
  changelog_restore_info_t info;
  /* the newest completion record read (any fingerprint) */
  int c_seen;
  uint32_t c_fp;
  int64_t c_off, c_epoch;
  uint64_t c_seq;
  int64_t first_at; /* changelog offset of the first record read (-1: none known) */
  int finished;
};

int changelog_restore_new(store_t *st, int32_t partition, uint32_t fingerprint,
                          changelog_restore_t **out) {
  changelog_restore_t *rs = calloc(1, sizeof *rs);
  if (!rs) return IX_ENOMEM;
  rs->st = st;
  rs->partition = partition;
  rs->fingerprint = fingerprint;
  rs->info.next_offset = -1;
  rs->info.skip_until = -1;
  rs->first_at = -1;
  if (offmap_grow(&rs->users) != 0) {
    free(rs);
    return IX_ENOMEM;
  }
  *out = rs;
  return 0;
}

int changelog_restore_reserve(changelog_restore_t *rs, size_t n) {
  if (rs->finished) return IX_ESTATE;
  size_t want = rs->users.n + n, cap = rs->users.cap;
  while (want * 2 >= cap) cap *= 2; /* offmap_slot grows at half full */
  return cap == rs->users.cap ? 0 : offmap_rebuild(&rs->users, cap, 0);
}

void changelog_restore_destroy(changelog_restore_t *rs) {
  if (!rs) return;
  offmap_free(&rs->users);
  free(rs);
}

/* the newest completion is this model's */
static int own_complete(const changelog_restore_t *rs) {
  return rs->c_seen && rs->c_fp == rs->fingerprint;
}

int changelog_restore_add(changelog_restore_t *rs, int64_t at, const void *key, size_t key_len,
                          const void *val, size_t val_len, char *errstr, size_t n) {
  changelog_rec_t rec;
  if (rs->first_at < 0 && at >= 0) rs->first_at = at;
  if (val_len == 0 && key && key_len == CHANGELOG_KEY_BYTES && ((const uint8_t *)key)[0] == 'u') {
    /* a tombstone: the user was evicted, and a completion record at or past
     * the eviction was acknowledged before it was written (docs/STATE.md) */
    uint64_t user = get64((const uint8_t *)key + 1);
    rs->info.records++;
    rs->info.bytes += key_len;
    size_t j;
    if (offmap_slot(&rs->users, user, &j))
      return ix_fail(IX_ENOMEM, errstr, n, "out of memory for the restore's index of users");
    store_remove(rs->st, rs->partition, user);
    if (rs->users.offs[j] < 0) rs->users.n++;
    rs->users.keys[j] = user;
    rs->users.offs[j] = 0; /* any later record of the user is a new life: it is newer */
    rs->users.ats[j] = at;
    return 0;
  }
  int err = changelog_decode(key, key_len, val, val_len, &rec, errstr, n);
  if (err) return err;
  if (rec.partition != rs->partition)
    return ix_fail(IX_EMISMATCH, errstr, n,
                "changelog partition %d holds a record of partition %d (the topic is not "
                "co-partitioned with the input)",
                (int)rs->partition, (int)rec.partition);
  rs->info.records++;
  rs->info.bytes += key_len + val_len;
  if (rec.kind == CHANGELOG_COMPLETE) {
    /* the newest in topic order decides (after a model swap a restore from
     * an older completion would hold another model's states) */
    rs->c_seen = 1;
    rs->c_fp = rec.fingerprint;
    rs->c_off = rec.offset;
    rs->c_seq = rec.sequence;
    rs->c_epoch = rec.epoch_start == CHANGELOG_EPOCH_SELF ? (at >= 0 ? at : 0) : rec.epoch_start;
    rs->info.foreign_after = 0;
    return 0;
  }
  if (rec.fingerprint != rs->fingerprint) {
    /* another model's state: never loaded; it matters only through its
     * model's completions (docs/STATE.md, "Model swaps") */
    rs->info.foreign++;
    rs->info.foreign_after++;
    return 0;
  }
  if (rec.blob_size != store_blob_size(rs->st))
    return ix_fail(IX_EMISMATCH, errstr, n,
                "changelog user record of partition %d has a %u-byte state, the store's is %zu",
                (int)rec.partition, rec.blob_size, store_blob_size(rs->st));
  size_t j;
  if (offmap_slot(&rs->users, rec.user_id, &j))
    return ix_fail(IX_ENOMEM, errstr, n, "out of memory for the restore's index of users");
  /* the newest record in topic order: every record is a true fact ("the
   * state after the user's events up to its offset"), and the newest one
   * is the one the writer of the newest completion meant (docs/STATE.md) */
  err = store_put(rs->st, rs->partition, rec.user_id, rec.last_seen_ms, rec.blob);
  if (err)
    return ix_fail(err, errstr, n, "the state store cannot hold user %" PRIu64 " (%s)",
                   rec.user_id, ix_strerror(err));
  if (rs->users.offs[j] < 0) rs->users.n++;
  rs->users.keys[j] = rec.user_id;
  rs->users.offs[j] = rec.offset;
  rs->users.ats[j] = at;
  return 0;
}

/* a kept record read before the newest completion's epoch start: superseded */
static int before_epoch(const changelog_restore_t *rs, size_t i) {
  return own_complete(rs) && rs->users.ats[i] >= 0 && rs->users.ats[i] < rs->c_epoch;
}

int changelog_restore_overlay(changelog_restore_t *rs, store_t *dst, int64_t local_next,
                              uint64_t *put, uint64_t *dropped) {
  *put = *dropped = 0;
  if (rs->finished) return IX_ESTATE;
  if (!own_complete(rs) || rs->c_off <= local_next) return 0;
  /* the epoch began inside what was read: it alone is the whole restore */
  if (rs->c_epoch > 0 && rs->first_at >= 0 && rs->c_epoch >= rs->first_at) return 2;
  for (size_t i = 0; i < rs->users.cap; i++) {
    if (rs->users.offs[i] < 0) continue;
    uint64_t user = rs->users.keys[i];
    int64_t seen = 0;
    const void *blob = store_peek_seen(rs->st, rs->partition, user, &seen);
    if (!blob) {
      /* newest record a tombstone: evicted after the local checkpoint's
       * users were recorded (or evicted there too); its events before the
       * completion's offset are not replayed, so "no state" is exact */
      *dropped += (uint64_t)store_remove(dst, rs->partition, user);
    } else if (rs->users.offs[i] >= local_next) {
      int err = store_put(dst, rs->partition, user, seen, blob);
      if (err) return err;
      (*put)++;
    }
    /* else: no event of the user in (its offset, next_offset), so the local
     * state, which has every event of it before local_next, is the same fact */
  }
  return 1;
}

void changelog_restore_finish(changelog_restore_t *rs, changelog_restore_info_t *info) {
  if (!rs->finished) {
    int own = own_complete(rs);
    rs->info.complete = own;
    if (own) {
      rs->info.next_offset = rs->c_off;
      rs->info.sequence = rs->c_seq;
      rs->info.epoch_start = rs->c_epoch;
    } else {
      rs->info.next_offset = -1;
      rs->info.other_model = rs->c_seen;
      rs->info.other_fingerprint = rs->c_seen ? rs->c_fp : 0;
      rs->info.other_next_offset = rs->c_seen ? rs->c_off : -1;
      rs->info.foreign_after = 0;
    }
    /* keep only users whose record is at or past the consistent offset: the
     * only ones replay from next_offset can meet at or below their offset
     * (a user whose newest record is a tombstone is not held: nothing to skip);
     * a user whose newest record is before the epoch start was not in the
     * states the newest completion describes: dropped */
    for (size_t i = 0; i < rs->users.cap; i++) {
      if (rs->users.offs[i] < 0) continue;
      if (before_epoch(rs, i)) {
        rs->info.superseded += (uint64_t)store_remove(rs->st, rs->partition, rs->users.keys[i]);
        rs->users.offs[i] = -2;
        continue;
      }
      /* the offset first: most users' records are older than the completion,
       * and the store lookup is a cache miss each */
      if (own && rs->users.offs[i] >= rs->info.next_offset &&
          store_peek(rs->st, rs->partition, rs->users.keys[i])) {
        rs->info.skip_users++;
        if (rs->users.offs[i] > rs->info.skip_until) rs->info.skip_until = rs->users.offs[i];
      } else {
        rs->users.offs[i] = -2; /* tombstone: probing continues past it */
      }
    }
    rs->info.users = store_partition_users(rs->st, rs->partition);
    if (!own) {
      /* no checkpoint of this model ever completed: nothing here is known
       * to be consistent with an input offset; the partition starts cold */
      store_drop_partition(rs->st, rs->partition);
      rs->info.users = 0;
    }
    rs->finished = 1;
  }
  if (info) *info = rs->info;
}

int changelog_restore_skip(const changelog_restore_t *rs, uint64_t user_id, int64_t offset) {
  if (!rs->finished || offset > rs->info.skip_until) return 0;
  size_t j = ix_fmix64(user_id) & (rs->users.cap - 1);
  while (rs->users.offs[j] != -1) {
    if (rs->users.offs[j] >= 0 && rs->users.keys[j] == user_id) return offset <= rs->users.offs[j];
    j = (j + 1) & (rs->users.cap - 1);
  }
  return 0;
}

/* ---- users changed since the last completed checkpoint ---- */

struct changelog_dirty {
  offmap_t m;
};

int changelog_dirty_new(changelog_dirty_t **out) {
  changelog_dirty_t *dy = calloc(1, sizeof *dy);
  if (!dy || offmap_grow(&dy->m) != 0) {
    free(dy);
    return IX_ENOMEM;
  }
  *out = dy;
  return 0;
}

void changelog_dirty_destroy(changelog_dirty_t *dy) {
  if (!dy) return;
  offmap_free(&dy->m);
  free(dy);
}

int changelog_dirty_note(changelog_dirty_t *dy, uint64_t user_id, int64_t offset) {
  size_t j;
  if (offmap_slot(&dy->m, user_id, &j)) return IX_ENOMEM;
  if (dy->m.offs[j] < 0) dy->m.n++;
  dy->m.keys[j] = user_id;
  dy->m.ats[j] = -1;
  if (offset > dy->m.offs[j]) dy->m.offs[j] = offset;
  return 0;
}

size_t changelog_dirty_count(const changelog_dirty_t *dy) { return dy->m.n; }

int changelog_dirty_foreach(const changelog_dirty_t *dy,
                            int (*fn)(void *ctx, uint64_t user_id, int64_t offset), void *ctx) {
  for (size_t i = 0; i < dy->m.cap; i++) {
    if (dy->m.offs[i] < 0) continue;
    int r = fn(ctx, dy->m.keys[i], dy->m.offs[i]);
    if (r) return r;
  }
  return 0;
}

int changelog_dirty_forget_before(changelog_dirty_t *dy, int64_t next_offset) {
  /* the same size: the entries kept were placed in it before */
  return offmap_rebuild(&dy->m, dy->m.cap, next_offset > 0 ? next_offset : 0);
}

/* a taken slot holds -2: probing goes on past it, as past an occupied one */
static int dirty_find(const changelog_dirty_t *dy, uint64_t user_id, size_t *slot) {
  size_t j = ix_fmix64(user_id) & (dy->m.cap - 1);
  while (dy->m.offs[j] != -1) {
    if (dy->m.offs[j] >= 0 && dy->m.keys[j] == user_id) {
      *slot = j;
      return 1;
    }
    j = (j + 1) & (dy->m.cap - 1);
  }
  return 0;
}

int changelog_dirty_get(const changelog_dirty_t *dy, uint64_t user_id, int64_t *offset) {
  size_t j;
  if (!dirty_find(dy, user_id, &j)) return 0;
  if (offset) *offset = dy->m.offs[j];
  return 1;
}

int changelog_dirty_take(changelog_dirty_t *dy, uint64_t user_id, int64_t *offset) {
  size_t j;
  if (!dirty_find(dy, user_id, &j)) return 0;
  *offset = dy->m.offs[j];
  dy->m.offs[j] = -2;
  dy->m.n--;
  return 1;
}

int changelog_dirty_take_next(changelog_dirty_t *dy, size_t *cursor, uint64_t *user_id,
                              int64_t *offset) {
  for (size_t i = *cursor; i < dy->m.cap; i++) {
    if (dy->m.offs[i] < 0) continue;
    *user_id = dy->m.keys[i];
    *offset = dy->m.offs[i];
    dy->m.offs[i] = -2;
    dy->m.n--;
    *cursor = i + 1;
    return 1;
  }
  *cursor = dy->m.cap;
  return 0;
}

int changelog_dirty_merge(changelog_dirty_t *dst, const changelog_dirty_t *src) {
  for (size_t i = 0; i < src->m.cap; i++)
    if (src->m.offs[i] >= 0 && changelog_dirty_note(dst, src->m.keys[i], src->m.offs[i]))
      return IX_ENOMEM;
  return 0;
}
