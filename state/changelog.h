/* The changelog topic's records and the restore rule (docs/STATE.md,
 * "Changelog topic"), without Kafka: encoders for the two record kinds (a
 * user's state with the input offset of the last event applied to it, and a
 * partition's checkpoint-complete record with the offset it is consistent
 * with), their decoder, and the restore accumulator that turns a changelog
 * partition's records, read in order, into store states, the offset to seek
 * the input to, and the events to skip. Not thread-safe. */
#ifndef IX_STATE_CHANGELOG_H
#define IX_STATE_CHANGELOG_H

#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

#define CHANGELOG_VERSION 1u          /* user records */
#define CHANGELOG_COMPLETE_VERSION 2u /* completion records (version 1: no epoch start) */
#define CHANGELOG_KEY_BYTES 9u
/* value bytes of a user record without its blob, and of a completion record
 * (version 2; a version 1 completion has 52) */
#define CHANGELOG_USER_FIXED 48u
#define CHANGELOG_COMPLETE_BYTES 60u
#define CHANGELOG_COMPLETE_V1_BYTES 52u
/* a completion's epoch start meaning "this completion record's own offset"
 * (the first checkpoint of an epoch that wrote no user record) */
#define CHANGELOG_EPOCH_SELF (-1)
/* largest blob a record may carry (the decoder refuses more) */
#define CHANGELOG_MAX_BLOB (1u << 20)

typedef enum {
  CHANGELOG_USER = 1,     /* key 'u' + user id */
  CHANGELOG_COMPLETE = 2, /* key 'c' + partition */
} changelog_kind_t;

typedef struct {
  changelog_kind_t kind;
  int32_t partition;
  uint32_t fingerprint;
  int64_t offset;       /* USER: input offset of the user's last applied event;
                         * COMPLETE: every event before it is in the records so far */
  uint64_t user_id;     /* USER */
  int64_t last_seen_ms; /* USER */
  const void *blob;     /* USER: borrowed from the value passed to the decoder */
  uint32_t blob_size;   /* USER */
  uint64_t sequence;    /* COMPLETE: checkpoint number, increasing per partition */
  uint64_t users;       /* COMPLETE: user records the checkpoint wrote */
  int64_t created_ms;   /* COMPLETE: wall clock, Unix ms */
  int64_t epoch_start;  /* COMPLETE: changelog offset where the states this completion
                         * describes begin (records before it are superseded: docs/STATE.md,
                         * "Model swaps"); CHANGELOG_EPOCH_SELF, or 0 in version 1 */
} changelog_rec_t;

/* Keys: 9 bytes into key. */
void changelog_user_key(uint64_t user_id, uint8_t key[CHANGELOG_KEY_BYTES]);
void changelog_complete_key(int32_t partition, uint8_t key[CHANGELOG_KEY_BYTES]);

/* Encode a record's value into buf (cap bytes). Returns the bytes written,
 * or 0 when cap is too small (CHANGELOG_USER_FIXED + blob_size, or
 * CHANGELOG_COMPLETE_BYTES) or the blob is larger than CHANGELOG_MAX_BLOB. */
size_t changelog_encode_user(int32_t partition, uint32_t fingerprint, uint64_t user_id,
                             int64_t offset, int64_t last_seen_ms, const void *blob,
                             uint32_t blob_size, uint8_t *buf, size_t cap);
size_t changelog_encode_complete(int32_t partition, uint32_t fingerprint, int64_t offset,
                                 uint64_t sequence, uint64_t users, int64_t created_ms,
                                 int64_t epoch_start, uint8_t *buf, size_t cap);

/* Decode one record (outside bytes: any content is safe). The key must match
 * the value (kind, user id or partition). Returns 0 with rec filled (rec->blob
 * borrowed from val), or IX_ETRUNC, IX_EBADMAGIC, IX_EVERSION, IX_ECRC,
 * IX_EMALFORMED, IX_ETOOBIG with errstr saying what is wrong. */
int changelog_decode(const void *key, size_t key_len, const void *val, size_t val_len,
                     changelog_rec_t *rec, char *errstr, size_t errstr_size);

/* Restore of one partition: feed the changelog partition's records in topic
 * order with changelog_restore_add(), then changelog_restore_finish(). */
typedef struct changelog_restore changelog_restore_t;

typedef struct {
  int complete;         /* 1 when a completion record was read */
  int64_t next_offset;  /* seek the input here (the newest completion's offset), -1 if none */
  uint64_t sequence;    /* the newest completion's checkpoint number */
  uint64_t records;     /* records read */
  uint64_t bytes;       /* key + value bytes read */
  uint64_t users;       /* users loaded into the store */
  uint64_t skip_users;  /* users whose record is newer than next_offset */
  int64_t skip_until;   /* largest such user offset (-1: none); past it nothing is skipped */
  int64_t epoch_start;  /* the newest completion's epoch start (changelog offset, resolved) */
  uint64_t superseded;  /* users dropped because their newest record is before it */
  int other_model;      /* 1: the newest completion was written for another fingerprint
                         * (other_fingerprint); nothing is restored (complete == 0) */
  uint32_t other_fingerprint;
  int64_t other_next_offset; /* that completion's consistent offset */
  uint64_t foreign;     /* records of another fingerprint read (never loaded) */
  uint64_t foreign_after; /* of them, user records after the newest completion */
} changelog_restore_info_t;

/* st is borrowed; records for `partition` go into it with store_put() (the
 * caller drops the partition first). Free with changelog_restore_destroy(). */
int changelog_restore_new(store_t *st, int32_t partition, uint32_t fingerprint,
                          changelog_restore_t **out);
void changelog_restore_destroy(changelog_restore_t *rs);
/* Room for n more users before they come (a read's record count), so the
 * accumulator's map does not grow on the way. 0, IX_ESTATE after finish,
 * or IX_ENOMEM (nothing changed: it grows as it goes). */
int changelog_restore_reserve(changelog_restore_t *rs, size_t n);
/* Apply one record, read at changelog offset `at` (-1: unknown; such a
 * record is never superseded by an epoch start). The newest record of a
 * user (in topic order) holds its state; the newest completion record
 * decides the offset to seek to, the model (its fingerprint) and the epoch
 * start (docs/STATE.md, "Model swaps"). A user record of another
 * fingerprint is counted and ignored (states for other weights are never
 * loaded; a completion of another fingerprint makes the partition start
 * cold at finish). Refuses (leaving the store as it is) a record that does
 * not decode (its error), one for another partition (IX_EMISMATCH), and a
 * user record of this fingerprint with another blob size (IX_EMISMATCH);
 * errstr says which. IX_ENOMEM (the index of users, or the store cannot
 * map a slab for the state), errstr says which. */
int changelog_restore_add(changelog_restore_t *rs, int64_t at, const void *key, size_t key_len,
                          const void *val, size_t val_len, char *errstr, size_t errstr_size);
/* Restore over a local checkpoint (docs/STATE.md, "Local checkpoint plus
 * the changelog's tail"): dst holds partition's users as a local checkpoint
 * consistent with local_next left them, and rs has read the changelog from
 * at least the first record produced after that checkpoint was taken to the
 * end. When a completion record newer than local_next was read, lays what
 * was read over dst: a user whose newest record is a tombstone is removed,
 * one whose newest record covers an event at or past local_next gets that
 * state (the users recorded later), every other user keeps its local state;
 * returns 1 with *put and *dropped counting them. Returns 2 (dst untouched)
 * when the newest completion's epoch starts within what was read: the
 * records read are then a whole restore by themselves (drop dst's users of
 * the partition and take rs's store). Returns 0 (dst untouched)
 * when no such completion was read, IX_ESTATE after
 * changelog_restore_finish(), IX_ENOMEM (dst then partly changed: drop the
 * partition). Call changelog_restore_finish() afterwards as usual. */
int changelog_restore_overlay(changelog_restore_t *rs, store_t *dst, int64_t local_next,
                              uint64_t *put, uint64_t *dropped);
/* End of the partition: drop the users whose newest record is before the
 * newest completion's epoch start, fill info and keep only the users whose
 * offset is at or past next_offset for changelog_restore_skip(). Without a
 * completion record of this fingerprint (none, or the newest is another
 * model's: info->other_model) the partition's users are dropped from the
 * store (info->users == 0: it starts cold from the group's committed offset). */
void changelog_restore_finish(changelog_restore_t *rs, changelog_restore_info_t *info);
/* After finish: 1 when the event of user_id at input offset `offset` is
 * already in the restored state (skip it: do not apply, do not predict), else 0. */
int changelog_restore_skip(const changelog_restore_t *rs, uint64_t user_id, int64_t offset);

/* The users of one partition changed since its last completed changelog
 * checkpoint, each with the input offset of its last applied event (what
 * the next checkpoint writes). */
/* Not derived from the pipeline memo's last_offset1: a local restore marks users at the partition's
 * position (clog_assign), and states from checkpoints older than that memo field hold 0 there. */
typedef struct changelog_dirty changelog_dirty_t;

int changelog_dirty_new(changelog_dirty_t **out); /* free with changelog_dirty_destroy() */
void changelog_dirty_destroy(changelog_dirty_t *dy);
/* user's event at offset was applied. Returns 0 or IX_ENOMEM. */
int changelog_dirty_note(changelog_dirty_t *dy, uint64_t user_id, int64_t offset);
size_t changelog_dirty_count(const changelog_dirty_t *dy);
/* Visit every user (order unspecified); stops when fn returns non-zero and
 * returns that value. Do not change dy from fn. */
int changelog_dirty_foreach(const changelog_dirty_t *dy,
                            int (*fn)(void *ctx, uint64_t user_id, int64_t offset), void *ctx);
/* A checkpoint at `next_offset` completed: forget the users whose last event
 * is before it (the ones changed since stay). Returns 0 or IX_ENOMEM (then
 * nothing is forgotten: the next checkpoint writes them again). */
int changelog_dirty_forget_before(changelog_dirty_t *dy, int64_t next_offset);
/* 1 with *offset (may be NULL) when user_id is tracked, else 0. */
int changelog_dirty_get(const changelog_dirty_t *dy, uint64_t user_id, int64_t *offset);
/* Taking: a set handed to a changelog checkpoint's encoder (daemon/clog.c)
 * only shrinks from then on; do not changelog_dirty_note() into it after a
 * take. changelog_dirty_take removes user_id (1 with *offset when it was
 * tracked, else 0). changelog_dirty_take_next removes the next user at or
 * after slot *cursor (start at 0): 1 with *user_id, *offset and *cursor
 * moved past it, 0 when none is left. */
int changelog_dirty_take(changelog_dirty_t *dy, uint64_t user_id, int64_t *offset);
int changelog_dirty_take_next(changelog_dirty_t *dy, size_t *cursor, uint64_t *user_id,
                              int64_t *offset);
/* Notes every user of src into dst (the larger offset wins). 0 or IX_ENOMEM. */
int changelog_dirty_merge(changelog_dirty_t *dst, const changelog_dirty_t *src);

#endif
