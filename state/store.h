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
 * how many were evicted. */
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
/* Insert or overwrite a user's blob verbatim (used by checkpoint restore). */
int store_put(store_t *st, int32_t partition, uint64_t user_id, int64_t last_seen_ms,
              const void *blob);

size_t store_blob_size(const store_t *st);
size_t store_partition_users(const store_t *st, int32_t partition);
void store_get_stats(const store_t *st, store_stats_t *stats);

#endif
