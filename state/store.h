/* Per-user state store: user id -> fixed-size opaque blob, organised by
 * input partition. Blobs live in contiguous slabs and never move, so a
 * pointer returned by store_get() stays valid until the next call to
 * store_evict(), store_expire(), store_drop_partition() or store_destroy().
 * Not thread-safe. */
#ifndef IX_STATE_STORE_H
#define IX_STATE_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

typedef struct {
  size_t blob_size;        /* bytes per user (model_state_size) */
  size_t mem_limit_bytes;  /* 0 = unlimited; enforced by store_evict() */
  int64_t idle_ttl_ms;     /* 0 = never; enforced by store_expire() */
  int small_pages;         /* 1 = 4 KiB pages; 0 (default) = transparent huge
                            * pages: a checkpoint fork copies 512x fewer page
                            * table entries (see docs/STATE.md) */
} store_opts_t;

typedef struct {
  uint64_t users;          /* users held now */
  uint64_t bytes;          /* memory used by slabs and index */
  uint64_t evicted_lru;    /* dropped for the memory limit, total */
  uint64_t evicted_ttl;    /* dropped for idleness, total */
} store_stats_t;

int store_new(const store_opts_t *opts, store_t **out);
void store_destroy(store_t *st);

/* Find (partition, user); when absent and create != 0, insert a zeroed blob
 * and set *created = 1 (caller then initialises it). Marks the user seen at
 * now_ms. Returns the blob, or NULL when absent (create == 0) or on ENOMEM. */
void *store_get(store_t *st, int32_t partition, uint64_t user_id, int64_t now_ms,
                int create, int *created);

/* Evict least-recently-seen users until within the memory limit; returns
 * how many were evicted. Exact least-recently-seen order (ties broken by
 * touch order) as long as now_ms never goes backwards between calls. */
size_t store_evict(store_t *st);
/* Drop users idle for longer than the TTL at now_ms; returns how many. */
size_t store_expire(store_t *st, int64_t now_ms);
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

size_t store_blob_size(const store_t *st);
size_t store_partition_users(const store_t *st, int32_t partition);
void store_get_stats(const store_t *st, store_stats_t *stats);

/* Users the memory limit allows (what store_evict() trims down to), counting
 * per user the slab slot (blob rounded up to 16 bytes + 40 bytes of metadata)
 * and the hash index; UINT64_MAX when unlimited. Memory is mapped in 2 MiB
 * slabs of store_slab_slots() users, so stats.bytes may exceed the limit by
 * less than one slab plus what was inserted since the last store_evict(). */
uint64_t store_capacity(const store_t *st);
size_t store_slab_slots(const store_t *st);
/* Size the index for n more users now (e.g. before a restore), so inserts do
 * not rehash. Returns 0 or IX_ENOMEM. */
int store_reserve(store_t *st, size_t n);
/* Users held across all partitions (same as stats.users). */
size_t store_users(const store_t *st);

#endif
