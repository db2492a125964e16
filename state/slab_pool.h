/* Populated memory for the state stores' slabs (state/store.h), shared by
 * every store of the process: memory a store gives back (an emptied slab
 * after a revocation or evictions, a scratch store's at its destroy) is kept
 * for the next slab any store needs, and a background thread can pre-touch
 * (map and populate) memory at start, as the JVM's -XX:+AlwaysPreTouch does,
 * so that a restore does not wait for the host to back fresh pages
 * (docs/PERFORMANCE.md, "Changelog topic"; docs/STATE.md, "Slab pool").
 * Memory comes in 2 MiB chunks, 2 MiB-aligned, on transparent huge pages; a
 * slab of k chunks is k held chunks moved next to each other (mremap).
 * Thread-safe: every function may be called from any thread at any time,
 * except slab_pool_destroy() (after every store using the pool is
 * destroyed, and only once). */
#ifndef IX_STATE_SLAB_POOL_H
#define IX_STATE_SLAB_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct slab_pool slab_pool_t;

#define SLAB_POOL_CHUNK ((size_t)2 << 20)

typedef struct {
  /* The bound: a slab given back is kept while the slabs handed out plus
   * the memory held stay within keep_bytes; beyond, it goes back to the
   * kernel. So the pool never raises the process's slab memory above
   * keep_bytes, nor above what the stores had in use at their peak.
   * 0: nothing is kept (every slab is unmapped, as without a pool). */
  uint64_t keep_bytes;
  /* Populate memory in a background thread from slab_pool_new() on, until
   * the slabs handed out plus the memory held reach pretouch_bytes (a store
   * taking slabs meanwhile counts towards it); then the thread ends.
   * 0: no thread. At most keep_bytes. */
  uint64_t pretouch_bytes;
} slab_pool_opts_t;

typedef struct {
  uint64_t held_bytes;       /* populated memory held for the next slab */
  uint64_t in_use_bytes;     /* handed out by slab_pool_take(), not given back */
  uint64_t reused_chunks;    /* chunks handed out from what was held, total */
  uint64_t fresh_chunks;     /* chunks mapped fresh for a take (too few held), total */
  uint64_t released_chunks;  /* given back to the kernel (over keep_bytes), total */
  uint64_t pretouched_bytes; /* populated by the pre-touch thread, total (a chunk
                              * over the bound once populated is released) */
  uint64_t pretouch_ns;      /* the pre-touch thread's wall time (so far, while it runs) */
  int pretouch_running;      /* 1 until the pre-touch thread has ended */
  int pretouch_failed;       /* 1 when it ended early: memory could not be mapped or
                              * populated (the stores then map fresh) */
  uint64_t failed_takes;     /* slab_pool_take() calls that returned IX_ENOMEM, total */
} slab_pool_stats_t;

/* A pool with opts; starts the pre-touch thread when opts->pretouch_bytes
 * > 0 (named "ix-pretouch", all signals blocked). Returns 0, IX_EINVAL
 * (pretouch_bytes above keep_bytes), IX_ENOMEM, or IX_ESYS (no thread).
 * Free with slab_pool_destroy(). */
int slab_pool_new(const slab_pool_opts_t *opts, slab_pool_t **out);
/* Stops the pre-touch thread (it ends after the chunk it populates) and
 * unmaps what is held. Every store given this pool must be destroyed
 * first. Accepts NULL. */
void slab_pool_destroy(slab_pool_t *pool);

/* Memory for one slab of len bytes (a multiple of SLAB_POOL_CHUNK),
 * 2 MiB-aligned, populated and writable: from what the pool holds when it
 * holds len bytes (*reused = 1; its bytes are what the last user left),
 * else mapped fresh and populated here (*reused = 0; zeroed). pool NULL:
 * always fresh, with 4 KiB pages when small_pages (a pool's memory is
 * huge pages: stores with small pages do not use one). When held chunks
 * cannot be moved into one slab (the kernel refused the mremap), the slab
 * is mapped fresh instead. Returns 0 or IX_ENOMEM (the kernel could not
 * map or populate fresh memory; counted in failed_takes). Give it back with slab_pool_give() on the same pool. */
int slab_pool_take(slab_pool_t *pool, size_t len, int small_pages, void **mem, int *reused);
/* Give back a slab from slab_pool_take(pool, len, ...): kept within the
 * bound, else unmapped. The caller must not touch mem afterwards. pool
 * NULL: unmapped. */
void slab_pool_give(slab_pool_t *pool, void *mem, size_t len);

/* Wait up to timeout_ms (-1: no bound) for the pre-touch thread to end.
 * Returns 1 when it has ended (or there is none), else 0. */
int slab_pool_wait_pretouch(slab_pool_t *pool, int64_t timeout_ms);
void slab_pool_get_stats(slab_pool_t *pool, slab_pool_stats_t *stats);

#endif
