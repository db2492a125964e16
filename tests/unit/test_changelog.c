/* state/changelog: the changelog records and the restore rule without Kafka.
 * Records round-trip and every corruption is refused with its error; a
 * simulated owner applies random events to states (a deterministic stand-in
 * for the model: a hash chain of the user's events), writes incremental
 * checkpoints (users changed since the last completed one, then the
 * completion record) and dies inside a checkpoint; restoring from the
 * changelog, seeking to the consistent offset and replaying with the skip
 * rule gives states bit-identical to applying every event once, both on the
 * full changelog and after a simulated compaction (newest record per key),
 * and the compacted case is checked to contain a user that "ignore what
 * follows the last completion" would get wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/err.h"
#include "common/hash.h"
#include "state/changelog.h"
#include "state/slab_pool.h"
#include "state/store.h"

#define BLOB 16
#define FP 0x0e5e2dfdu

static void test_changelog_records_round_trip(void **state) {
  (void)state;
  uint8_t key[CHANGELOG_KEY_BYTES], val[CHANGELOG_USER_FIXED + BLOB], blob[BLOB];
  for (int i = 0; i < BLOB; i++) blob[i] = (uint8_t)(i * 7 + 1);
  changelog_user_key(0x0102030405060708ULL, key);
  assert_int_equal(changelog_encode_user(3, FP, 0x0102030405060708ULL, 123456789012LL, 42, blob,
                                         BLOB, val, sizeof val - 1),
                   0);
  size_t n = changelog_encode_user(3, FP, 0x0102030405060708ULL, 123456789012LL, 42, blob, BLOB,
                                   val, sizeof val);
  assert_int_equal(n, CHANGELOG_USER_FIXED + BLOB);
  changelog_rec_t r;
  char err[200];
  assert_int_equal(changelog_decode(key, sizeof key, val, n, &r, err, sizeof err), 0);
  assert_int_equal(r.kind, CHANGELOG_USER);
  assert_int_equal(r.partition, 3);
  assert_int_equal(r.fingerprint, FP);
  assert_int_equal(r.user_id, 0x0102030405060708ULL);
  assert_int_equal(r.offset, 123456789012LL);
  assert_int_equal(r.last_seen_ms, 42);
  assert_int_equal(r.blob_size, BLOB);
  assert_memory_equal(r.blob, blob, BLOB);

  uint8_t ck[CHANGELOG_KEY_BYTES], cv[CHANGELOG_COMPLETE_BYTES];
  changelog_complete_key(3, ck);
  assert_int_equal(
      changelog_encode_complete(3, FP, 777, 9, 55, 1700000000000LL, 4242, cv, sizeof cv),
      CHANGELOG_COMPLETE_BYTES);
  assert_int_equal(changelog_decode(ck, sizeof ck, cv, sizeof cv, &r, err, sizeof err), 0);
  assert_int_equal(r.kind, CHANGELOG_COMPLETE);
  assert_int_equal(r.partition, 3);
  assert_int_equal(r.offset, 777);
  assert_int_equal(r.sequence, 9);
  assert_int_equal(r.users, 55);
  assert_int_equal(r.created_ms, 1700000000000LL);
  assert_int_equal(r.epoch_start, 4242);
  /* a version 1 completion (52 bytes, no epoch start) still reads: epoch 0 */
  uint8_t v1[CHANGELOG_COMPLETE_V1_BYTES];
  memcpy(v1, cv, 48);
  v1[4] = 0;
  v1[5] = 1;
  uint32_t crc = ix_crc32(0, v1, 48);
  for (int i = 0; i < 4; i++) v1[48 + i] = (uint8_t)(crc >> (24 - 8 * i));
  assert_int_equal(changelog_decode(ck, sizeof ck, v1, sizeof v1, &r, err, sizeof err), 0);
  assert_int_equal(r.offset, 777);
  assert_int_equal(r.epoch_start, 0);
  /* a version 1 completion of the new size, and an epoch start below -1, are refused */
  assert_int_not_equal(changelog_decode(ck, sizeof ck, cv, sizeof v1, &r, err, sizeof err), 0);
  assert_int_equal(changelog_encode_complete(3, FP, 777, 9, 55, 0, -2, cv, sizeof cv), 0);
}

static void test_changelog_decoder_refuses_each_corruption(void **state) {
  (void)state;
  uint8_t key[CHANGELOG_KEY_BYTES], val[CHANGELOG_USER_FIXED + BLOB], blob[BLOB] = {1, 2, 3};
  changelog_user_key(99, key);
  size_t n = changelog_encode_user(0, FP, 99, 5, 0, blob, BLOB, val, sizeof val);
  changelog_rec_t r;
  char err[200];
  uint8_t bad[sizeof val];
  /* every single flipped bit is refused (checksum or header check) */
  for (size_t i = 0; i < n * 8; i++) {
    memcpy(bad, val, n);
    bad[i / 8] ^= (uint8_t)(1u << (i % 8));
    err[0] = 0;
    assert_true(changelog_decode(key, sizeof key, bad, n, &r, err, sizeof err) < 0);
    assert_true(strlen(err) > 0);
  }
  /* every truncation */
  for (size_t len = 0; len < n; len++)
    assert_true(changelog_decode(key, sizeof key, val, len, &r, err, sizeof err) < 0);
  assert_int_equal(changelog_decode(key, sizeof key, NULL, 0, &r, err, sizeof err), IX_ETRUNC);
  memcpy(bad, val, n);
  bad[0] = 'X';
  assert_int_equal(changelog_decode(key, sizeof key, bad, n, &r, err, sizeof err), IX_EBADMAGIC);
  memcpy(bad, val, n);
  bad[5] = 2;
  assert_int_equal(changelog_decode(key, sizeof key, bad, n, &r, err, sizeof err), IX_EVERSION);
  memcpy(bad, val, n);
  bad[n - 1] ^= 1;
  assert_int_equal(changelog_decode(key, sizeof key, bad, n, &r, err, sizeof err), IX_ECRC);
  /* a key that is not the value's user */
  uint8_t other[CHANGELOG_KEY_BYTES];
  changelog_user_key(98, other);
  assert_int_equal(changelog_decode(other, sizeof other, val, n, &r, err, sizeof err),
                   IX_EMALFORMED);
  assert_non_null(strstr(err, "key does not match"));
  assert_int_equal(changelog_decode(key, 8, val, n, &r, err, sizeof err), IX_EMALFORMED);
}

/* A store of BLOB-byte states for the tests (the caller destroys it). */
static store_t *new_store(void) {
  store_t *st;
  store_opts_t o = {.blob_size = BLOB, .small_pages = 1};
  assert_int_equal(store_new(&o, &st), 0);
  return st;
}

static void test_changelog_restore_refuses_other_model_and_partition(void **state) {
  (void)state;
  store_t *st = new_store();
  changelog_restore_t *rs;
  assert_int_equal(changelog_restore_new(st, 2, FP, &rs), 0);
  uint8_t key[CHANGELOG_KEY_BYTES], val[CHANGELOG_USER_FIXED + BLOB], blob[BLOB] = {0};
  char err[300];
  changelog_user_key(1, key);
  /* another model's record is ignored (counted), never loaded */
  size_t n = changelog_encode_user(2, FP ^ 1, 1, 5, 0, blob, BLOB, val, sizeof val);
  assert_int_equal(changelog_restore_add(rs, -1, key, sizeof key, val, n, err, sizeof err), 0);
  assert_int_equal(store_partition_users(st, 2), 0);
  n = changelog_encode_user(3, FP, 1, 5, 0, blob, BLOB, val, sizeof val);
  assert_int_equal(changelog_restore_add(rs, -1, key, sizeof key, val, n, err, sizeof err),
                   IX_EMISMATCH);
  assert_non_null(strstr(err, "co-partitioned"));
  n = changelog_encode_user(2, FP, 1, 5, 0, blob, BLOB - 4, val, sizeof val);
  assert_int_equal(changelog_restore_add(rs, -1, key, sizeof key, val, n, err, sizeof err),
                   IX_EMISMATCH);
  assert_int_equal(store_partition_users(st, 2), 0);
  /* no completion record: the partition starts cold */
  n = changelog_encode_user(2, FP, 1, 5, 0, blob, BLOB, val, sizeof val);
  assert_int_equal(changelog_restore_add(rs, -1, key, sizeof key, val, n, err, sizeof err), 0);
  assert_int_equal(store_partition_users(st, 2), 1);
  changelog_restore_info_t info;
  changelog_restore_finish(rs, &info);
  assert_int_equal(info.complete, 0);
  assert_int_equal(info.users, 0);
  assert_int_equal(info.foreign, 1);
  assert_int_equal(info.other_model, 0);
  assert_int_equal(store_partition_users(st, 2), 0);
  changelog_restore_destroy(rs);
  store_destroy(st);
}

/* A store that cannot map a slab for a restored state (the slab pool's
 * test-only failpoint IX_TEST_SLAB_FAIL=fresh:0): the record is refused
 * with IX_ENOMEM and a reason in errstr (it was left unwritten: the daemon
 * logged "changelog offset N: " and stack bytes). */
static void test_changelog_restore_out_of_memory_says_why(void **state) {
  (void)state;
  assert_int_equal(setenv("IX_TEST_SLAB_FAIL", "fresh:0", 1), 0);
  slab_pool_opts_t po = {.keep_bytes = 64 << 20};
  slab_pool_t *pool;
  assert_int_equal(slab_pool_new(&po, &pool), 0);
  unsetenv("IX_TEST_SLAB_FAIL");
  store_t *st;
  store_opts_t o = {.blob_size = BLOB, .pool = pool};
  assert_int_equal(store_new(&o, &st), 0);
  changelog_restore_t *rs;
  assert_int_equal(changelog_restore_new(st, 2, FP, &rs), 0);
  uint8_t key[CHANGELOG_KEY_BYTES], val[CHANGELOG_USER_FIXED + BLOB], blob[BLOB] = {0};
  char err[300];
  memset(err, 'x', sizeof err);
  err[sizeof err - 1] = 0;
  changelog_user_key(77, key);
  size_t n = changelog_encode_user(2, FP, 77, 5, 0, blob, BLOB, val, sizeof val);
  assert_int_equal(changelog_restore_add(rs, 3, key, sizeof key, val, n, err, sizeof err),
                   IX_ENOMEM);
  assert_non_null(strstr(err, "the state store cannot hold user 77"));
  assert_int_equal(store_partition_users(st, 2), 0);
  changelog_restore_destroy(rs);
  store_destroy(st);
  slab_pool_destroy(pool);
}

/* A tombstone (null value) drops the user on restore: an evicted user does
 * not come back with its last state; a record after the tombstone (the user
 * came back) restores the new state; the store's eviction hook names every
 * user store_evict() and store_expire() drop. */
static void add_user(changelog_restore_t *rs, uint64_t user, int64_t off, uint8_t fill) {
  uint8_t key[CHANGELOG_KEY_BYTES], val[CHANGELOG_USER_FIXED + BLOB], blob[BLOB];
  char err[300];
  memset(blob, fill, sizeof blob);
  changelog_user_key(user, key);
  size_t n = changelog_encode_user(2, FP, user, off, 0, blob, BLOB, val, sizeof val);
  assert_int_equal(changelog_restore_add(rs, -1, key, sizeof key, val, n, err, sizeof err), 0);
}
static void add_tomb(changelog_restore_t *rs, uint64_t user) {
  uint8_t key[CHANGELOG_KEY_BYTES];
  char err[300];
  changelog_user_key(user, key);
  assert_int_equal(changelog_restore_add(rs, -1, key, sizeof key, NULL, 0, err, sizeof err), 0);
}
static void add_complete(changelog_restore_t *rs, int64_t next, uint64_t seq) {
  uint8_t key[CHANGELOG_KEY_BYTES], val[CHANGELOG_COMPLETE_BYTES];
  char err[300];
  changelog_complete_key(2, key);
  size_t n = changelog_encode_complete(2, FP, next, seq, 1, 0, 0, val, sizeof val);
  assert_int_equal(changelog_restore_add(rs, -1, key, sizeof key, val, n, err, sizeof err), 0);
}

static uint64_t evicted_ids[64];
static size_t n_evicted;
static void on_evict(void *ctx, int32_t p, uint64_t user) {
  (void)ctx;
  assert_int_equal(p, 2);
  if (n_evicted < 64) evicted_ids[n_evicted++] = user;
}

static void test_changelog_tombstone_drops_an_evicted_user(void **state) {
  (void)state;
  store_t *st = new_store();
  changelog_restore_t *rs;
  assert_int_equal(changelog_restore_new(st, 2, FP, &rs), 0);
  add_user(rs, 1, 5, 0x11);
  add_user(rs, 2, 7, 0x22);
  add_user(rs, 3, 8, 0x33);
  add_complete(rs, 10, 1);
  add_user(rs, 2, 12, 0x23);
  add_complete(rs, 20, 2);
  /* users 1 and 3 evicted at offsets <= 20: tombstones in the next checkpoint */
  add_tomb(rs, 1);
  add_tomb(rs, 3);
  add_complete(rs, 30, 3);
  /* user 3 comes back at offset 31, user 1 only in a checkpoint that never completed */
  add_user(rs, 3, 31, 0x34);
  changelog_restore_info_t info;
  changelog_restore_finish(rs, &info);
  assert_int_equal(info.complete, 1);
  assert_int_equal(info.next_offset, 30);
  assert_int_equal(info.users, 2);
  assert_null(store_peek(st, 2, 1)); /* evicted: not restored with its old state */
  const uint8_t *b = store_peek(st, 2, 2);
  assert_non_null(b);
  assert_int_equal(b[0], 0x23);
  b = store_peek(st, 2, 3);
  assert_non_null(b);
  assert_int_equal(b[0], 0x34);
  assert_int_equal(info.skip_users, 1); /* user 3's record is past 30 */
  assert_int_equal(changelog_restore_skip(rs, 3, 31), 1);
  assert_int_equal(changelog_restore_skip(rs, 1, 30), 0);
  changelog_restore_destroy(rs);
  store_destroy(st);

  /* the hook names the users evicted by the memory limit and by the TTL */
  store_opts_t lo = {.blob_size = BLOB, .small_pages = 1, .mem_limit_bytes = 8u << 20,
                     .idle_ttl_ms = 100};
  assert_int_equal(store_new(&lo, &st), 0);
  store_set_evict_hook(st, on_evict, NULL);
  uint64_t cap = store_capacity(st);
  int created;
  for (uint64_t u = 1; u <= cap + 3; u++) assert_non_null(store_get(st, 2, u, (int64_t)u, 1, &created));
  n_evicted = 0;
  assert_int_equal(store_evict(st), 3);
  assert_int_equal(n_evicted, 3);
  for (size_t i = 0; i < 3; i++) assert_int_equal(evicted_ids[i], i + 1); /* least recent first */
  n_evicted = 0;
  size_t left = store_users(st);
  assert_int_equal(store_expire(st, 1000000), left);
  assert_int_equal(n_evicted, left < 64 ? left : 64);
  assert_int_equal(store_remove(st, 2, 99), 0);
  store_destroy(st);
}

/* Sizing the accumulator for a read (changelog_restore_reserve, as the
 * daemon's reader does from the offsets) in the middle of a partition
 * keeps what was read: the newest record of a user in topic order wins,
 * a tombstoned user stays dropped, the skip rule is unchanged; after
 * finish it is refused. */
static void test_changelog_reserve_keeps_the_restore_rule(void **state) {
  (void)state;
  store_t *st = new_store();
  changelog_restore_t *rs;
  assert_int_equal(changelog_restore_new(st, 2, FP, &rs), 0);
  for (uint64_t u = 1; u <= 600; u++) add_user(rs, u, 40 + (int64_t)u, (uint8_t)u);
  add_tomb(rs, 7);
  assert_int_equal(changelog_restore_reserve(rs, 100000), 0); /* a rebuild of the map */
  add_user(rs, 5, 10, 0xee); /* the newest record in topic order holds the state */
  add_complete(rs, 100, 1);
  add_user(rs, 600, 700, 0x99);
  changelog_restore_info_t info;
  changelog_restore_finish(rs, &info);
  assert_int_equal(info.complete, 1);
  assert_int_equal(info.next_offset, 100);
  assert_int_equal(info.users, 599);
  assert_null(store_peek(st, 2, 7));
  const uint8_t *b = store_peek(st, 2, 5);
  assert_non_null(b);
  assert_int_equal(b[0], 0xee);
  /* records at or past 100: users 60..599 (offsets 100..639) and 600 (700) */
  assert_int_equal(info.skip_users, 541);
  assert_int_equal(changelog_restore_skip(rs, 600, 700), 1);
  assert_int_equal(changelog_restore_skip(rs, 600, 701), 0);
  assert_int_equal(changelog_restore_skip(rs, 59, 99), 0);
  assert_int_equal(changelog_restore_skip(rs, 60, 100), 1);
  assert_int_equal(changelog_restore_reserve(rs, 10), IX_ESTATE);
  changelog_restore_destroy(rs);
  store_destroy(st);
}

/* The tail over a local checkpoint at 20: user 1 recorded at 15 keeps its
 * local state (the same fact), user 2 recorded at 25 takes the changelog's,
 * user 3's newest record is a tombstone (dropped), user 4 (no record read)
 * keeps its local state, user 5 is new; nothing is laid over without a
 * completion past 20, and not after finish. */
static void test_changelog_overlay_takes_only_users_recorded_after_local(void **state) {
  (void)state;
  store_t *local = new_store(), *scratch = new_store();
  uint8_t blob[BLOB];
  for (uint64_t u = 1; u <= 4; u++) {
    memset(blob, (int)(0xa0 + u), sizeof blob);
    assert_int_equal(store_put(local, 2, u, 0, blob), 0);
  }
  changelog_restore_t *rs;
  uint64_t put, dropped;
  assert_int_equal(changelog_restore_new(scratch, 2, FP, &rs), 0);
  add_user(rs, 1, 15, 0x11);
  add_complete(rs, 20, 4);
  assert_int_equal(changelog_restore_overlay(rs, local, 20, &put, &dropped), 0); /* not newer */
  add_user(rs, 2, 25, 0x22);
  add_user(rs, 3, 26, 0x33);
  add_tomb(rs, 3);
  add_user(rs, 5, 27, 0x55);
  add_complete(rs, 30, 5);
  add_user(rs, 2, 33, 0x23); /* a checkpoint that never completed: skipped up to 33 */
  assert_int_equal(changelog_restore_overlay(rs, local, 20, &put, &dropped), 1);
  assert_int_equal(put, 2);
  assert_int_equal(dropped, 1);
  const uint8_t *b = store_peek(local, 2, 1);
  assert_non_null(b);
  assert_int_equal(b[0], 0xa1);
  assert_int_equal(((const uint8_t *)store_peek(local, 2, 2))[0], 0x23);
  assert_null(store_peek(local, 2, 3));
  assert_int_equal(((const uint8_t *)store_peek(local, 2, 4))[0], 0xa4);
  assert_int_equal(((const uint8_t *)store_peek(local, 2, 5))[0], 0x55);
  changelog_restore_info_t info;
  changelog_restore_finish(rs, &info);
  assert_int_equal(info.next_offset, 30);
  assert_int_equal(info.skip_users, 1);
  assert_int_equal(changelog_restore_skip(rs, 2, 33), 1);
  assert_int_equal(changelog_restore_skip(rs, 5, 27), 0);
  assert_int_equal(changelog_restore_overlay(rs, local, 20, &put, &dropped), IX_ESTATE);
  changelog_restore_destroy(rs);
  store_destroy(scratch);
  store_destroy(local);
}

/* ---- a simulated owner ---- */

#define USERS 300
#define EVENTS 20000
#define P 0

typedef struct {
  uint64_t user;
} ev_t;

/* the stand-in model: the state is a hash chain of the user's events */
static void apply(uint8_t *blob, uint64_t user, int64_t off) {
  uint64_t h, c;
  memcpy(&h, blob, 8);
  memcpy(&c, blob + 8, 8);
  h = ix_fmix64(h ^ ix_splitmix64(user * 1000003u + (uint64_t)off));
  c++;
  memcpy(blob, &h, 8);
  memcpy(blob + 8, &c, 8);
}

typedef struct {
  uint8_t key[CHANGELOG_KEY_BYTES];
  uint8_t val[CHANGELOG_USER_FIXED + BLOB];
  size_t len;
} rec_t;

typedef struct {
  rec_t *recs;
  size_t n, cap;
} log_t;

static rec_t *log_push(log_t *lg) {
  if (lg->n == lg->cap) {
    lg->cap = lg->cap ? lg->cap * 2 : 1024;
    lg->recs = realloc(lg->recs, lg->cap * sizeof *lg->recs);
    assert_non_null(lg->recs);
  }
  return &lg->recs[lg->n++];
}

typedef struct {
  log_t *lg;
  store_t *st;
} ckctx_t;

/* a checkpoint writes every user the dirty tracker holds, with its offset */
static int write_user(void *ctx, uint64_t user, int64_t off) {
  ckctx_t *c = ctx;
  int created;
  const void *blob = store_get(c->st, P, user, 0, 0, &created);
  assert_non_null(blob);
  rec_t *r = log_push(c->lg);
  changelog_user_key(user, r->key);
  r->len = changelog_encode_user(P, FP, user, off, 0, blob, BLOB, r->val, sizeof r->val);
  assert_int_not_equal(r->len, 0);
  return 0;
}

/* Runs the owner over events [0, crash_at), checkpointing every `every`
 * events (the users changed since the last completed checkpoint, from
 * changelog_dirty); the checkpoint at crash_at writes its user records but
 * dies before the completion record (when partial, only half of them). */
static void run_owner(const ev_t *evs, int64_t crash_at, int64_t every, int partial, log_t *lg) {
  store_t *st = new_store();
  changelog_dirty_t *dy;
  assert_int_equal(changelog_dirty_new(&dy), 0);
  uint64_t seq = 0;
  for (int64_t off = 0; off <= crash_at; off++) {
    if (off > 0 && (off % every == 0 || off == crash_at)) {
      size_t before = lg->n;
      ckctx_t c = {lg, st};
      changelog_dirty_foreach(dy, write_user, &c);
      assert_int_equal(lg->n - before, changelog_dirty_count(dy));
      if (off == crash_at) {
        if (partial) lg->n = before + (lg->n - before) / 2;
        break;
      }
      rec_t *r = log_push(lg);
      changelog_complete_key(P, r->key);
      r->len = changelog_encode_complete(P, FP, off, ++seq, lg->n - 1 - before, 0, 0, r->val,
                                         sizeof r->val);
      assert_int_equal(changelog_dirty_forget_before(dy, off), 0);
      assert_int_equal(changelog_dirty_count(dy), 0);
    }
    int created;
    uint8_t *b = store_get(st, P, evs[off].user, off, 1, &created);
    assert_non_null(b);
    apply(b, evs[off].user, off);
    assert_int_equal(changelog_dirty_note(dy, evs[off].user, off), 0);
  }
  changelog_dirty_destroy(dy);
  store_destroy(st);
}

static void test_changelog_dirty_forgets_only_what_a_checkpoint_wrote(void **state) {
  (void)state;
  changelog_dirty_t *dy;
  assert_int_equal(changelog_dirty_new(&dy), 0);
  for (uint64_t u = 0; u < 5000; u++) assert_int_equal(changelog_dirty_note(dy, u, (int64_t)u), 0);
  assert_int_equal(changelog_dirty_note(dy, 7, 9000), 0); /* changed again after the snapshot */
  assert_int_equal(changelog_dirty_count(dy), 5000);
  assert_int_equal(changelog_dirty_forget_before(dy, 4000), 0);
  assert_int_equal(changelog_dirty_count(dy), 1001); /* 4000..4999 and user 7 */
  assert_int_equal(changelog_dirty_forget_before(dy, 9001), 0);
  assert_int_equal(changelog_dirty_count(dy), 0);
  changelog_dirty_destroy(dy);
}

/* restore from lg, replay every event from the consistent offset with the
 * skip rule, compare with applying every event once */
static void restore_and_check(const ev_t *evs, const log_t *lg, uint64_t *skipped_out) {
  store_t *st = new_store();
  changelog_restore_t *rs;
  assert_int_equal(changelog_restore_new(st, P, FP, &rs), 0);
  char err[300];
  for (size_t i = 0; i < lg->n; i++)
    assert_int_equal(changelog_restore_add(rs, -1, lg->recs[i].key, CHANGELOG_KEY_BYTES,
                                           lg->recs[i].val, lg->recs[i].len, err, sizeof err),
                     0);
  changelog_restore_info_t info;
  changelog_restore_finish(rs, &info);
  assert_true(info.complete);
  uint64_t skipped = 0;
  for (int64_t off = info.next_offset; off < EVENTS; off++) {
    if (changelog_restore_skip(rs, evs[off].user, off)) {
      skipped++;
      continue;
    }
    int created;
    uint8_t *b = store_get(st, P, evs[off].user, off, 1, &created);
    apply(b, evs[off].user, off);
  }
  static uint8_t ref[USERS][BLOB];
  memset(ref, 0, sizeof ref);
  for (int64_t off = 0; off < EVENTS; off++) apply(ref[evs[off].user], evs[off].user, off);
  for (uint64_t u = 0; u < USERS; u++) {
    int created;
    uint8_t *b = store_get(st, P, u, 0, 0, &created);
    assert_non_null(b);
    assert_memory_equal(b, ref[u], BLOB);
  }
  *skipped_out = skipped;
  changelog_restore_destroy(rs);
  store_destroy(st);
}

/* keep only the newest record per key, in the order of those records */
static void compact(const log_t *in, log_t *out) {
  for (size_t i = 0; i < in->n; i++) {
    int newer = 0;
    for (size_t j = i + 1; j < in->n && !newer; j++)
      newer = memcmp(in->recs[i].key, in->recs[j].key, CHANGELOG_KEY_BYTES) == 0;
    if (!newer) *log_push(out) = in->recs[i];
  }
}

static void test_changelog_restore_is_exact_after_crash_inside_checkpoint(void **state) {
  (void)state;
  static ev_t evs[EVENTS];
  uint64_t s = 12345;
  for (int i = 0; i < EVENTS; i++) evs[i].user = ix_splitmix64(s++) % USERS;
  for (int partial = 0; partial <= 1; partial++) {
    log_t lg = {0}, cp = {0};
    run_owner(evs, 13337, 1500, partial, &lg);
    uint64_t skipped = 0;
    restore_and_check(evs, &lg, &skipped);
    assert_true(skipped > 0); /* the incomplete checkpoint's users were met and skipped */
    compact(&lg, &cp);
    assert_true(cp.n < lg.n);
    /* the case that needs the per-user offset: a user whose only surviving
     * record follows the last completion record */
    size_t last_c = 0;
    for (size_t i = 0; i < cp.n; i++)
      if (cp.recs[i].key[0] == 'c') last_c = i;
    assert_true(last_c + 1 < cp.n);
    restore_and_check(evs, &cp, &skipped);
    assert_true(skipped > 0);
    free(lg.recs);
    free(cp.recs);
  }
}

/* ---- model swaps: records of two fingerprints in one partition ---- */

#define FPB (FP ^ 0x55u) /* the retrained model */
#define SW_MAX 32

typedef struct {
  uint8_t key[CHANGELOG_KEY_BYTES];
  uint8_t val[CHANGELOG_USER_FIXED + BLOB];
  size_t len; /* 0: a tombstone */
} swrec_t;

static void sw_user(swrec_t *r, uint32_t fp, uint64_t user, int64_t off, uint8_t fill) {
  uint8_t blob[BLOB];
  memset(blob, fill, sizeof blob);
  changelog_user_key(user, r->key);
  r->len = changelog_encode_user(2, fp, user, off, 0, blob, BLOB, r->val, sizeof r->val);
  assert_true(r->len > 0);
}
static void sw_complete(swrec_t *r, uint32_t fp, int64_t next, int64_t epoch) {
  changelog_complete_key(2, r->key);
  r->len = changelog_encode_complete(2, fp, next, 1, 0, 0, epoch, r->val, sizeof r->val);
  assert_true(r->len > 0);
}

/* Model A writes checkpoints at 10 and 20 and part of one more (user 4 at
 * 22); the switch to model B at input offset 25 (B's warm store holds users
 * 1, 2 and 5) rewrites every user of B from changelog offset 7 and completes
 * at 25 with epoch 7; then an incomplete B checkpoint (user 2 at 30). */
static size_t sw_log(swrec_t *lg) {
  size_t n = 0;
  sw_user(&lg[n++], FP, 1, 5, 0x11);
  sw_user(&lg[n++], FP, 2, 7, 0x21);
  sw_user(&lg[n++], FP, 3, 8, 0x31);
  sw_complete(&lg[n++], FP, 10, 0);
  sw_user(&lg[n++], FP, 2, 12, 0x22);
  sw_complete(&lg[n++], FP, 20, 0);
  sw_user(&lg[n++], FP, 4, 22, 0x41);
  sw_user(&lg[n++], FPB, 1, 24, 0xb1); /* offset 7: the new epoch's first record */
  sw_user(&lg[n++], FPB, 2, 24, 0xb2);
  sw_user(&lg[n++], FPB, 5, 24, 0xb5);
  sw_complete(&lg[n++], FPB, 25, 7);
  sw_user(&lg[n++], FPB, 2, 30, 0xb3);
  return n;
}

/* Restores the records of lg whose keep[] is set (NULL: all), read at their
 * index as changelog offset, for fingerprint fp into a fresh store. */
static store_t *sw_restore(const swrec_t *lg, size_t n, const uint8_t *keep, uint32_t fp,
                           changelog_restore_info_t *info, changelog_restore_t **rs_out) {
  store_t *st = new_store();
  changelog_restore_t *rs;
  assert_int_equal(changelog_restore_new(st, 2, fp, &rs), 0);
  char err[300];
  for (size_t i = 0; i < n; i++) {
    if (keep && !keep[i]) continue;
    assert_int_equal(changelog_restore_add(rs, (int64_t)i, lg[i].key, CHANGELOG_KEY_BYTES,
                                           lg[i].len ? lg[i].val : NULL, lg[i].len, err,
                                           sizeof err),
                     0);
  }
  changelog_restore_finish(rs, info);
  *rs_out = rs;
  return st;
}

static void sw_expect(store_t *st, uint64_t user, int fill) {
  const uint8_t *b = store_peek(st, 2, user);
  if (fill < 0) {
    assert_null(b);
  } else {
    assert_non_null(b);
    assert_int_equal(b[0], fill);
  }
}

static void test_changelog_restore_across_a_model_swap(void **state) {
  (void)state;
  swrec_t lg[SW_MAX];
  size_t n = sw_log(lg);
  changelog_restore_info_t info;
  changelog_restore_t *rs;

  /* the new model: the epoch's users only; A's records are never loaded,
   * users 3 and 4 (not in B's store at the switch) are not restored */
  store_t *st = sw_restore(lg, n, NULL, FPB, &info, &rs);
  assert_int_equal(info.complete, 1);
  assert_int_equal(info.next_offset, 25);
  assert_int_equal(info.epoch_start, 7);
  assert_int_equal(info.users, 3);
  assert_int_equal(info.foreign, 5); /* A's user records */
  sw_expect(st, 1, 0xb1);
  sw_expect(st, 2, 0xb3);
  sw_expect(st, 5, 0xb5);
  sw_expect(st, 3, -1);
  sw_expect(st, 4, -1);
  assert_int_equal(info.skip_users, 1); /* user 2's record at 30 >= 25 */
  assert_int_equal(changelog_restore_skip(rs, 2, 30), 1);
  assert_int_equal(changelog_restore_skip(rs, 1, 26), 0);
  changelog_restore_destroy(rs);
  store_destroy(st);

  /* the old model after the switch's completion: another model's partition,
   * nothing loaded (cold) */
  st = sw_restore(lg, n, NULL, FP, &info, &rs);
  assert_int_equal(info.complete, 0);
  assert_int_equal(info.other_model, 1);
  assert_int_equal(info.other_fingerprint, FPB);
  assert_int_equal(store_partition_users(st, 2), 0);
  changelog_restore_destroy(rs);
  store_destroy(st);

  /* a crash before B's first completion (records 0..9): the old model
   * restores its own states exactly (user 4 skips up to 22), B's records
   * after its completion are counted and ignored; the new model starts cold */
  st = sw_restore(lg, 10, NULL, FP, &info, &rs);
  assert_int_equal(info.complete, 1);
  assert_int_equal(info.next_offset, 20);
  assert_int_equal(info.epoch_start, 0);
  assert_int_equal(info.foreign_after, 3);
  assert_int_equal(info.users, 4);
  sw_expect(st, 1, 0x11);
  sw_expect(st, 2, 0x22);
  sw_expect(st, 3, 0x31);
  sw_expect(st, 4, 0x41);
  assert_int_equal(changelog_restore_skip(rs, 4, 22), 1);
  changelog_restore_destroy(rs);
  store_destroy(st);
  st = sw_restore(lg, 10, NULL, FPB, &info, &rs);
  assert_int_equal(info.complete, 0);
  assert_int_equal(info.other_model, 1);
  assert_int_equal(store_partition_users(st, 2), 0);
  changelog_restore_destroy(rs);
  store_destroy(st);

  /* compaction in any per-key combination: each key keeps its newest record
   * and any subset of its older ones; the new model's restore is the same */
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int round = 0; round < 500; round++) {
    uint8_t keep[SW_MAX];
    for (size_t i = 0; i < n; i++) {
      int newest = 1;
      for (size_t j = i + 1; j < n && newest; j++)
        newest = memcmp(lg[i].key, lg[j].key, CHANGELOG_KEY_BYTES) != 0;
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      keep[i] = newest || (x & 1);
    }
    st = sw_restore(lg, n, keep, FPB, &info, &rs);
    assert_int_equal(info.complete, 1);
    assert_int_equal(info.next_offset, 25);
    assert_int_equal(info.users, 3);
    sw_expect(st, 1, 0xb1);
    sw_expect(st, 2, 0xb3);
    sw_expect(st, 5, 0xb5);
    sw_expect(st, 3, -1);
    sw_expect(st, 4, -1);
    assert_int_equal(changelog_restore_skip(rs, 2, 28), 1);
    changelog_restore_destroy(rs);
    store_destroy(st);
  }

  /* back to model A (a rollback) at 40 with only user 2 in its store: the
   * epoch from offset 12 supersedes A's own older records of users 1, 3, 4 */
  size_t m = n;
  sw_user(&lg[m++], FP, 2, 39, 0x23);
  sw_complete(&lg[m++], FP, 40, 12);
  st = sw_restore(lg, m, NULL, FP, &info, &rs);
  assert_int_equal(info.complete, 1);
  assert_int_equal(info.next_offset, 40);
  assert_int_equal(info.users, 1);
  assert_int_equal(info.superseded, 3);
  sw_expect(st, 2, 0x23);
  sw_expect(st, 1, -1);
  sw_expect(st, 3, -1);
  sw_expect(st, 4, -1);
  changelog_restore_destroy(rs);
  store_destroy(st);

  /* an epoch whose first checkpoint wrote no user (an empty partition at
   * the switch): its completion names itself; everything before is superseded */
  m = 7;
  sw_complete(&lg[m++], FPB, 25, CHANGELOG_EPOCH_SELF);
  st = sw_restore(lg, m, NULL, FPB, &info, &rs);
  assert_int_equal(info.complete, 1);
  assert_int_equal(info.epoch_start, 7);
  assert_int_equal(info.users, 0);
  changelog_restore_destroy(rs);
  store_destroy(st);

  /* a tail read that holds the whole epoch (from changelog offset 5): the
   * overlay says so (2) instead of laying B's users over local states */
  n = sw_log(lg);
  store_t *scratch = new_store(), *local = new_store();
  assert_int_equal(changelog_restore_new(scratch, 2, FPB, &rs), 0);
  char err[300];
  for (size_t i = 5; i < n; i++)
    assert_int_equal(changelog_restore_add(rs, (int64_t)i, lg[i].key, CHANGELOG_KEY_BYTES,
                                           lg[i].val, lg[i].len, err, sizeof err),
                     0);
  uint64_t put, dropped;
  assert_int_equal(changelog_restore_overlay(rs, local, 15, &put, &dropped), 2);
  changelog_restore_finish(rs, &info);
  assert_int_equal(info.users, 3);
  changelog_restore_destroy(rs);
  store_destroy(scratch);
  store_destroy(local);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_changelog_records_round_trip),
      cmocka_unit_test(test_changelog_decoder_refuses_each_corruption),
      cmocka_unit_test(test_changelog_restore_refuses_other_model_and_partition),
      cmocka_unit_test(test_changelog_tombstone_drops_an_evicted_user),
      cmocka_unit_test(test_changelog_restore_across_a_model_swap),
      cmocka_unit_test(test_changelog_reserve_keeps_the_restore_rule),
      cmocka_unit_test(test_changelog_overlay_takes_only_users_recorded_after_local),
      cmocka_unit_test(test_changelog_dirty_forgets_only_what_a_checkpoint_wrote),
      cmocka_unit_test(test_changelog_restore_is_exact_after_crash_inside_checkpoint),
      cmocka_unit_test(test_changelog_restore_out_of_memory_says_why),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
