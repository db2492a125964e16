/* Per-user state store: user id -> fixed-size opaque blob, organised by
 * input partition. Blobs live in contiguous slabs and never move, so a
 * pointer returned by store_get() stays valid until the next call to
 * store_evict(), store_expire(), store_drop_partition() or store_destroy()
 * (a later store_get() may evict a user to make room, but never one touched
 * since the last store_evict()).
 * A capture (store_capture_begin) hands a consistent image of some
 * partitions to a checkpoint writer while the store keeps changing.
 * Not thread-safe. */
#ifndef IX_STATE_STORE_H
#define IX_STATE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "state/slab_pool.h"

typedef struct store store_t;

typedef struct {
  size_t blob_size;        /* bytes per user (model_state_size) */
  size_t mem_limit_bytes;  /* 0 = unlimited; enforced by store_evict() */
  int64_t idle_ttl_ms;     /* 0 = never; enforced by store_expire() */
  int small_pages;         /* 1 = 4 KiB pages; 0 (default) = transparent huge
                            * pages: fewer TLB misses on random users, and
                            * faster restores (see docs/STATE.md) */
  slab_pool_t *pool;       /* borrowed, must outlive the store: slabs come from
                            * and go back to it (NULL: each slab mapped fresh
                            * and unmapped when emptied; not used with
                            * small_pages). The store stays single-threaded;
                            * several stores, on any threads, may share one */
} store_opts_t;

typedef struct {
  uint64_t users;          /* users held now */
  uint64_t bytes;          /* memory used by slabs and index */
  uint64_t evicted_lru;    /* dropped for the memory limit, total */
  uint64_t evicted_ttl;    /* dropped for idleness, total */
  uint64_t map_ns;         /* time spent mapping and populating slabs, total
                            * (fresh memory: docs/PERFORMANCE.md); taking a
                            * slab from the pool counts too (microseconds) */
  uint64_t slabs_reused;   /* slabs taken populated from the pool, total */
  uint64_t slabs_fresh;    /* slabs mapped and populated fresh, total */
  uint64_t slab_failures;  /* slabs that could not be had (out of memory), total:
                            * store_get() then evicts the least recently seen
                            * user to make room, or returns NULL */
} store_stats_t;

int store_new(const store_opts_t *opts, store_t **out);
void store_destroy(store_t *st);

/* Find (partition, user); when absent and create != 0, insert a zeroed blob
 * and set *created = 1 (caller then initialises it). Marks the user seen at
 * now_ms. Returns the blob, or NULL when absent (create == 0) or on ENOMEM.
 * An insert at capacity first evicts the least recently seen user (as
 * store_evict() would: counted in evicted_lru, the evict hook called) unless
 * that user was touched since the last store_evict(): its blob pointer may
 * be in use, so the insert goes over capacity and store_evict() trims.
 * When a new slab cannot be mapped (out of memory: slab_failures), the
 * least recently seen user not touched since the last store_evict() is
 * evicted the same way to make room (and so for the next slab's worth of
 * inserts that need a slab, without trying to map one); NULL when there is
 * none. */
void *store_get(store_t *st, int32_t partition, uint64_t user_id, int64_t now_ms,
                int create, int *created);

/* Find (partition, user) without marking it seen (a read for a lookup, not
 * an event). Returns the blob (borrowed; valid until the next store call
 * that may insert, evict or drop) or NULL when absent. */
const void *store_peek(store_t *st, int32_t partition, uint64_t user_id);
/* store_peek() that also gives the user's last-seen time (the changelog
 * writes it, so that a restored user is not idle from the epoch on; an
 * exactly_once undo copy puts it back with store_put()). */
const void *store_peek_seen(store_t *st, int32_t partition, uint64_t user_id,
                            int64_t *last_seen_ms);

/* Evict least-recently-seen users until within the memory limit; returns
 * how many were evicted. Exact least-recently-seen order (ties broken by
 * touch order) as long as now_ms never goes backwards between calls. */
size_t store_evict(store_t *st);
/* Drop users idle for longer than the TTL at now_ms; returns how many. */
size_t store_expire(store_t *st, int64_t now_ms);
/* Called with each user store_evict(), store_expire() or store_get() (making
 * room at capacity) drops, before it is dropped (the changelog writes a
 * tombstone for it). Do not call the store from fn, except store_peek()
 * and store_peek_seen() of the user being dropped (the changelog encodes a
 * user it has yet to write). fn NULL: none (the default). */
typedef void (*store_evict_fn)(void *ctx, int32_t partition, uint64_t user_id);
void store_set_evict_hook(store_t *st, store_evict_fn fn, void *ctx);
/* Drop one user (a changelog tombstone on restore); not an eviction (the
 * hook is not called). Returns 1 when it was held, else 0. */
int store_remove(store_t *st, int32_t partition, uint64_t user_id);
/* Drop every user of one partition (e.g. on revocation). Returns count. */
size_t store_drop_partition(store_t *st, int32_t partition);

typedef int (*store_visit_fn)(void *ctx, uint64_t user_id, int64_t last_seen_ms,
                              const void *blob);
/* Visit a partition's users (order unspecified); stops early when fn returns
 * non-zero and returns that value. */
int store_foreach(const store_t *st, int32_t partition, store_visit_fn fn, void *ctx);
/* Insert or overwrite a user's blob verbatim (used by checkpoint restore),
 * with last_seen_ms as its last-seen time; it is ordered among the
 * partition's users by that time. Returns 0 or IX_ENOMEM. */
int store_put(store_t *st, int32_t partition, uint64_t user_id, int64_t last_seen_ms,
              const void *blob);

/* Like store_put() but without ordering: the user goes to the head of the
 * partition's list whatever its last-seen time (O(1); a restore inserts many
 * users in file order, which need not be last-seen order). Call
 * store_order_partition() after the last one. Returns 0 or IX_ENOMEM. */
int store_load(store_t *st, int32_t partition, uint64_t user_id, int64_t last_seen_ms,
               const void *blob);
/* Re-order a partition's list by last-seen time (ties keep their current
 * order) and renumber its touch order to match. O(users) when it is in
 * order already, else a sort. Returns 0 or IX_ENOMEM (order left as is). */
int store_order_partition(store_t *st, int32_t partition);

/* Snapshot capture: application-level copy-on-write for checkpoints written
 * while the store keeps changing.
 *
 * store_capture_begin() fixes the users of partitions[0..n) as they are at
 * that moment (users[i] receives partition i's count; may be NULL). Each of
 * them is then handed to fn exactly once, with its user id, last-seen time
 * and blob as they were at the begin call: either by store_capture_step(),
 * which scans slots in memory order, or just before the store would change
 * or remove the user (a store_get()/store_put()/store_load() hit,
 * store_evict(), store_expire()), whichever comes first. Users created after
 * the begin are not handed over. The blob pointer passed to fn is borrowed:
 * copy it before returning, and do not call the store from fn. Costs O(1) at
 * begin and one branch per store call while no capture runs.
 * One capture at a time (IX_ESTATE); IX_EINVAL when a partition is listed
 * twice; IX_ENOMEM. A caller that writes through a blob pointer must have
 * obtained it with store_get() after the begin call (true when captures
 * begin between batches). */
typedef void (*store_capture_fn)(void *ctx, size_t index, uint64_t user_id,
                                 int64_t last_seen_ms, const void *blob);
int store_capture_begin(store_t *st, const int32_t *partitions, size_t n, store_capture_fn fn,
                        void *ctx, uint64_t *users);
/* Hand over up to max_users more users. Returns 1 once every user of the
 * capture has been handed over (or the capture is not running), else 0. */
int store_capture_step(store_t *st, size_t max_users);
/* Stop capturing one partition: its remaining users are not handed over
 * (store_drop_partition() does this itself, so dropping a partition during a
 * capture costs no copies; the capture's part for it is then incomplete). */
void store_capture_cancel(store_t *st, int32_t partition);
/* End the capture (finished or not). */
void store_capture_end(store_t *st);
int store_capture_active(const store_t *st);
/* Users not handed over yet (0 when no capture runs). */
uint64_t store_capture_left(const store_t *st);
/* Users of the current or last capture handed over before a change. */
uint64_t store_capture_before_change(const store_t *st);

size_t store_blob_size(const store_t *st);
/* The pool given at store_new() (borrowed; NULL when none), for a scratch
 * store of the same process. */
slab_pool_t *store_slab_pool(const store_t *st);
size_t store_partition_users(const store_t *st, int32_t partition);
void store_get_stats(const store_t *st, store_stats_t *stats);

/* Users the memory limit allows (what store_get() and store_evict() keep
 * to), counting the slabs the users need (2 MiB or more each, of
 * store_slab_slots() users, the last one in full), the hash index sized for
 * them and the store's tables (64 partitions, 1024 slabs); UINT64_MAX when
 * unlimited. stats.bytes (and what the store has mapped and allocated) then
 * stays within the limit, through any churn of users, as long as:
 *  - no more than capacity distinct users are touched between two
 *    store_evict() calls (store_get() does not evict those; a restore's
 *    store_put()/store_load() never evict), and
 *  - the store sees at most 64 partitions (20 bytes more per partition over).
 * Not counted: the temporary arrays of store_order_partition() (16 bytes per
 * user of the partition, freed on return) and of a capture (8 bytes per
 * captured partition). A limit below one slab is counted per user: the slab
 * is then the granularity and the store can map one slab over the limit. */
uint64_t store_capacity(const store_t *st);
size_t store_slab_slots(const store_t *st);
/* Size the index for n more users now (e.g. before a restore), so inserts do
 * not rehash. Returns 0 or IX_ENOMEM. */
int store_reserve(store_t *st, size_t n);
/* Users held across all partitions (same as stats.users). */
size_t store_users(const store_t *st);

#endif
