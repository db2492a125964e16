/* Per-user state store: (partition, user id) -> fixed-size blob.
 * Blobs and their metadata live in 2 MiB-aligned slabs (huge pages,
 * populated at once; held memory from the process's slab pool when the store
 * has one, state/slab_pool.h) that never move; an open-addressing index (linear probing, backward-shift
 * deletion) maps keys to slot numbers; each partition keeps its users on a
 * doubly linked list in touch order (most recent at the head), so eviction
 * compares the partitions' tails and TTL expiry only looks at tails. */
#include "state/store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "state/slab_pool.h"

#define SLAB_MIN_SLOTS 1024u
#define HUGE_PAGE SLAB_POOL_CHUNK
#define NIL UINT32_MAX
#define PART_FREE UINT32_MAX
#define BLOB_ALIGN 16u
#define TABLE_MIN 1024u
#define PUT_MAX_WALK 4096u
/* Grow the index above 3/4 load. */
#define TABLE_FITS(users, cap) ((uint64_t)(users) * 4u <= (uint64_t)(cap) * 3u)

/* Metadata of one slot; 40 bytes. When free, prev/next link the free list. */
typedef struct {
  uint64_t user_id;
  int64_t last_seen_ms;
  uint64_t seq;        /* store-wide touch counter: breaks last_seen ties */
  uint32_t prev, next; /* partition list (towards head / towards tail) */
  uint32_t part;       /* index into st->parts, PART_FREE when free */
  uint32_t snap;       /* capture id when created or captured (see store_capture_begin) */
} slot_t;
_Static_assert(sizeof(slot_t) == 40, "slot metadata size");

typedef struct {
  slot_t *slots;        /* sps entries, NULL when the slab is unmapped */
  unsigned char *blobs; /* sps * stride bytes, after the metadata */
  uint32_t live;
} slab_t;

typedef struct {
  int32_t id;
  uint32_t head, tail; /* most / least recently touched */
  uint32_t cap_idx;    /* index in the running capture's list, NIL when not in it */
  uint64_t users;
} part_t;

typedef struct {
  uint32_t slot1; /* slot number + 1; 0 = empty bucket */
  uint32_t tag;   /* high half of the key hash; its low bits give the home */
} bucket_t;

struct store {
  size_t blob_size, stride, slab_bytes, meta_bytes;
  uint32_t sps; /* slots per slab */
  int small_pages;
  slab_pool_t *pool; /* borrowed (opts.pool); NULL: slabs mapped and unmapped here */
  size_t mem_limit;
  int64_t ttl_ms;
  uint64_t capacity;

  slab_t *slabs;
  uint32_t nslabs, slabs_cap, slabs_mapped;
  uint32_t free_head;
  uint64_t free_count;

  bucket_t *table;
  uint64_t mask; /* table size - 1 */

  part_t *parts;
  uint32_t nparts, parts_cap, last_part;

  uint64_t users, seq;
  uint64_t evicted_lru, evicted_ttl;
  uint64_t map_ns, slabs_reused, slabs_fresh, slab_failures;
  uint32_t map_backoff; /* inserts left that evict instead of trying to map a slab */
  uint64_t pin_seq; /* st->seq at the last store_evict(): users touched after
                     * it may have blob pointers out, so store_get() does not
                     * evict them to make room */
  store_evict_fn evict_fn;
  void *evict_ctx;

  /* snapshot capture (application-level copy-on-write): a live slot of a
   * partition with cap_idx != NIL whose snap != cap_id has not been
   * delivered yet */
  int cap_on;
  uint32_t cap_id;
  store_capture_fn cap_fn;
  void *cap_ctx;
  uint64_t *cap_pending; /* per capture index: users not delivered yet */
  size_t cap_n;
  uint64_t cap_left;     /* sum of cap_pending */
  uint64_t cap_cursor, cap_end; /* scan position and end (slot numbers) */
  uint64_t cap_before;   /* delivered before a change, this capture */
};

static inline uint32_t key_tag(int32_t partition, uint64_t user_id) {
  uint64_t x = user_id ^ ((uint64_t)(uint32_t)partition * 0x9E3779B97F4A7C15ull);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return (uint32_t)(x >> 32);
}

static inline slot_t *slot_at(const store_t *st, uint32_t i) {
  return &st->slabs[i / st->sps].slots[i % st->sps];
}
static inline unsigned char *blob_at(const store_t *st, uint32_t i) {
  return st->slabs[i / st->sps].blobs + (size_t)(i % st->sps) * st->stride;
}

static size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

static uint64_t table_size_for(uint64_t users) {
  uint64_t cap = TABLE_MIN;
  while (!TABLE_FITS(users, cap)) cap <<= 1;
  return cap;
}

/* The store itself and its partition table (64 partitions; it grows by 20
 * bytes per partition beyond). */
static uint64_t fixed_bytes(void) { return sizeof(store_t) + 64 * sizeof(part_t); }

/* The slab table for n slabs (it doubles from 64 entries). */
static uint64_t slab_table_bytes(uint64_t n) {
  uint64_t cap = 64;
  while (cap < n) cap *= 2;
  return cap * sizeof(slab_t);
}

/* Largest user count whose slots, index and tables fit in limit bytes.
 * Slots come in whole slabs of sps (slab_bytes each, with their metadata
 * and rounding), so the last slab counts in full (counting per user let the
 * store run up to one slab, ~0.8% of 256 MiB, over the limit). A limit
 * below one slab (tests, tiny stores) is counted per user: the slab is then
 * the granularity. */
static uint64_t capacity_for(size_t limit, size_t stride, uint64_t sps, size_t slab_bytes) {
  uint64_t per_user = stride + sizeof(slot_t);
  uint64_t fixed = fixed_bytes() + slab_table_bytes(1);
  if (limit <= fixed) return 0;
  uint64_t lo = 0, hi = (limit - fixed) / per_user;
  int whole_slabs = slab_bytes != SIZE_MAX && limit >= fixed + slab_bytes;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo + 1) / 2;
    uint64_t nslabs = (mid + sps - 1) / sps;
    uint64_t slots = whole_slabs ? nslabs * slab_bytes : mid * per_user;
    uint64_t cost = fixed_bytes() + slab_table_bytes(nslabs) + slots +
                    table_size_for(mid) * sizeof(bucket_t);
    if (cost <= limit) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* ---- free list (doubly linked through prev/next of free slots) ----------- */

static void free_push(store_t *st, uint32_t i) {
  slot_t *s = slot_at(st, i);
  s->part = PART_FREE;
  s->prev = NIL;
  s->next = st->free_head;
  if (st->free_head != NIL) slot_at(st, st->free_head)->prev = i;
  st->free_head = i;
  st->free_count++;
}

static void free_unlink(store_t *st, uint32_t i) {
  slot_t *s = slot_at(st, i);
  if (s->prev != NIL) slot_at(st, s->prev)->next = s->next;
  else st->free_head = s->next;
  if (s->next != NIL) slot_at(st, s->next)->prev = s->prev;
  st->free_count--;
}

static int slab_map(store_t *st) {
  uint32_t k = 0;
  while (k < st->nslabs && st->slabs[k].slots) k++;
  if (k == st->nslabs) {
    if ((uint64_t)(st->nslabs + 1) * st->sps >= (uint64_t)NIL) return IX_EFULL;
    if (st->nslabs == st->slabs_cap) {
      uint32_t cap = st->slabs_cap ? st->slabs_cap * 2 : 64;
      slab_t *n = realloc(st->slabs, cap * sizeof *n);
      if (!n) return IX_ENOMEM;
      st->slabs = n;
      st->slabs_cap = cap;
    }
    st->slabs[st->nslabs++] = (slab_t){0};
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  /* 2 MiB-aligned and populated (state/slab_pool.h): held memory from the
   * pool when it has some, else fresh */
  void *raw;
  int reused;
  int rc = slab_pool_take(st->pool, st->slab_bytes, st->small_pages, &raw, &reused);
  if (rc) {
    st->slab_failures++;
    return rc;
  }
  unsigned char *mem = raw;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  st->map_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
  if (reused) st->slabs_reused++;
  else st->slabs_fresh++;
  slab_t *sb = &st->slabs[k];
  sb->slots = (slot_t *)(void *)mem;
  sb->blobs = mem + st->meta_bytes;
  sb->live = 0;
  st->slabs_mapped++;
  /* Push in reverse so allocation walks the slab upwards. */
  for (uint32_t j = st->sps; j-- > 0;) free_push(st, k * st->sps + j);
  return 0;
}

/* Unmap an empty slab, but keep one slab's worth of free slots elsewhere so
 * a workload hovering at a slab boundary does not map and unmap repeatedly. */
static void slab_maybe_unmap(store_t *st, uint32_t k) {
  slab_t *sb = &st->slabs[k];
  if (sb->live != 0 || st->free_count < 2u * (uint64_t)st->sps) return;
  for (uint32_t j = 0; j < st->sps; j++) free_unlink(st, k * st->sps + j);
  slab_pool_give(st->pool, sb->slots, st->slab_bytes);
  sb->slots = NULL;
  sb->blobs = NULL;
  st->slabs_mapped--;
}

static int slot_alloc(store_t *st, uint32_t *out) {
  if (st->free_head == NIL) {
    int rc = slab_map(st);
    if (rc) return rc;
  }
  uint32_t i = st->free_head;
  free_unlink(st, i);
  st->slabs[i / st->sps].live++;
  *out = i;
  return 0;
}

/* ---- index --------------------------------------------------------------- */

static int table_resize(store_t *st, uint64_t cap) {
  bucket_t *t = calloc(cap, sizeof *t);
  if (!t) return IX_ENOMEM;
  uint64_t mask = cap - 1;
  if (st->table) {
    for (uint64_t i = 0; i <= st->mask; i++) {
      bucket_t b = st->table[i];
      if (!b.slot1) continue;
      uint64_t p = b.tag & mask;
      while (t[p].slot1) p = (p + 1) & mask;
      t[p] = b;
    }
    free(st->table);
  }
  st->table = t;
  st->mask = mask;
  return 0;
}

static int table_reserve(store_t *st, uint64_t users) {
  if (st->table && TABLE_FITS(users, st->mask + 1)) return 0;
  return table_resize(st, table_size_for(users));
}

static void table_delete_at(store_t *st, uint64_t i) {
  uint64_t mask = st->mask, j = i;
  for (;;) {
    j = (j + 1) & mask;
    bucket_t b = st->table[j];
    if (!b.slot1) break;
    uint64_t home = b.tag & mask;
    /* b may stay when its home lies cyclically in (i, j]. */
    int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    st->table[i] = b;
    i = j;
  }
  st->table[i] = (bucket_t){0, 0};
}

/* Bucket holding (partition, user), or the empty bucket where it would go. */
static inline uint64_t table_find(const store_t *st, int32_t partition, uint64_t user_id,
                                  uint32_t tag, int *found) {
  uint64_t mask = st->mask, p = tag & mask;
  for (;;) {
    bucket_t b = st->table[p];
    if (!b.slot1) {
      *found = 0;
      return p;
    }
    if (b.tag == tag) {
      const slot_t *s = slot_at(st, b.slot1 - 1);
      if (s->user_id == user_id && st->parts[s->part].id == partition) {
        *found = 1;
        return p;
      }
    }
    p = (p + 1) & mask;
  }
}

/* ---- partitions and their lists ------------------------------------------ */

static int part_find(const store_t *st, int32_t partition, uint32_t *idx) {
  if (st->last_part < st->nparts && st->parts[st->last_part].id == partition) {
    *idx = st->last_part;
    return 1;
  }
  for (uint32_t k = 0; k < st->nparts; k++)
    if (st->parts[k].id == partition) {
      *idx = k;
      return 1;
    }
  return 0;
}

static int part_get_or_add(store_t *st, int32_t partition, uint32_t *idx) {
  if (part_find(st, partition, idx)) {
    st->last_part = *idx;
    return 0;
  }
  if (st->nparts == st->parts_cap) {
    uint32_t cap = st->parts_cap ? st->parts_cap * 2 : 64;
    part_t *n = realloc(st->parts, cap * sizeof *n);
    if (!n) return IX_ENOMEM;
    st->parts = n;
    st->parts_cap = cap;
  }
  st->parts[st->nparts] =
      (part_t){.id = partition, .head = NIL, .tail = NIL, .cap_idx = NIL, .users = 0};
  *idx = st->last_part = st->nparts++;
  return 0;
}

static inline void list_unlink(store_t *st, part_t *pt, slot_t *s) {
  if (s->prev != NIL) slot_at(st, s->prev)->next = s->next;
  else pt->head = s->next;
  if (s->next != NIL) slot_at(st, s->next)->prev = s->prev;
  else pt->tail = s->prev;
}

static inline void list_push_head(store_t *st, part_t *pt, uint32_t i, slot_t *s) {
  s->prev = NIL;
  s->next = pt->head;
  if (pt->head != NIL) slot_at(st, pt->head)->prev = i;
  else pt->tail = i;
  pt->head = i;
}

static inline void touch(store_t *st, uint32_t i, slot_t *s, int64_t now_ms) {
  s->last_seen_ms = now_ms;
  s->seq = ++st->seq;
  part_t *pt = &st->parts[s->part];
  if (pt->head != i) {
    list_unlink(st, pt, s);
    list_push_head(st, pt, i, s);
  }
}

/* Deliver slot i to the running capture as it is now. */
static void capture_slot(store_t *st, uint32_t i, slot_t *s) {
  uint32_t idx = st->parts[s->part].cap_idx;
  s->snap = st->cap_id;
  st->cap_pending[idx]--;
  st->cap_left--;
  st->cap_fn(st->cap_ctx, idx, s->user_id, s->last_seen_ms, blob_at(st, i));
}

static inline int capture_pending(const store_t *st, const slot_t *s) {
  return s->snap != st->cap_id && s->part != PART_FREE && st->parts[s->part].cap_idx != NIL;
}

/* The application-level copy-on-write: called before slot i is changed or
 * removed, so the capture gets its image from the capture's start. */
static inline void capture_before_change(store_t *st, uint32_t i, slot_t *s) {
  if (st->cap_on && capture_pending(st, s)) {
    st->cap_before++;
    capture_slot(st, i, s);
  }
}

/* Remove a live slot from the index, its partition and the live count. */
static void slot_remove(store_t *st, uint32_t i) {
  slot_t *s = slot_at(st, i);
  capture_before_change(st, i, s);
  part_t *pt = &st->parts[s->part];
  int found = 0;
  uint64_t b = table_find(st, pt->id, s->user_id, key_tag(pt->id, s->user_id), &found);
  if (found) table_delete_at(st, b);
  list_unlink(st, pt, s);
  pt->users--;
  st->users--;
  free_push(st, i);
  uint32_t k = i / st->sps;
  st->slabs[k].live--;
  slab_maybe_unmap(st, k);
}

/* ---- public -------------------------------------------------------------- */

int store_new(const store_opts_t *opts, store_t **out) {
  *out = NULL;
  if (!opts || opts->blob_size == 0 || opts->blob_size > (64u << 20) || opts->idle_ttl_ms < 0)
    return IX_EINVAL;
  store_t *st = calloc(1, sizeof *st);
  if (!st) return IX_ENOMEM;
  st->blob_size = opts->blob_size;
  st->stride = round_up(opts->blob_size, BLOB_ALIGN);
  st->small_pages = opts->small_pages;
  st->pool = opts->small_pages ? NULL : opts->pool; /* a pool's memory is huge pages */
  /* Whole huge pages holding at least SLAB_MIN_SLOTS slots. */
  size_t slot_bytes = sizeof(slot_t) + st->stride;
  st->slab_bytes = round_up((size_t)SLAB_MIN_SLOTS * slot_bytes + 64, HUGE_PAGE);
  uint64_t sps = st->slab_bytes / slot_bytes;
  while (round_up(sps * sizeof(slot_t), 64) + sps * st->stride > st->slab_bytes) sps--;
  st->sps = (uint32_t)sps;
  st->meta_bytes = round_up(sps * sizeof(slot_t), 64);
  st->mem_limit = opts->mem_limit_bytes;
  st->ttl_ms = opts->idle_ttl_ms;
  st->free_head = NIL;
  st->capacity = UINT64_MAX;
  uint64_t presize = 0;
  if (st->mem_limit) {
    st->capacity = capacity_for(st->mem_limit, st->stride, st->sps, st->slab_bytes);
    if (st->capacity == 0) /* just over one slab: the slab is the granularity */
      st->capacity = capacity_for(st->mem_limit, st->stride, st->sps, SIZE_MAX);
    if (st->capacity == 0) {
      free(st);
      return IX_EINVAL;
    }
    presize = st->capacity;
  }
  if (table_resize(st, table_size_for(presize)) != 0) {
    free(st);
    return IX_ENOMEM;
  }
  *out = st;
  return 0;
}

void store_destroy(store_t *st) {
  if (!st) return;
  for (uint32_t k = 0; k < st->nslabs; k++)
    if (st->slabs[k].slots) slab_pool_give(st->pool, st->slabs[k].slots, st->slab_bytes);
  free(st->slabs);
  free(st->table);
  free(st->parts);
  free(st->cap_pending);
  free(st);
}

static uint32_t lru_victim(const store_t *st);
static void evict_slot(store_t *st, uint32_t victim);

/* The least recently seen user makes room, unless it was touched since the
 * last store_evict() (its blob pointer may be in use). Returns 1 when one
 * was evicted (table buckets may have moved: find again), else 0. */
static int evict_lru_unpinned(store_t *st) {
  uint32_t v = lru_victim(st);
  if (v == NIL || slot_at(st, v)->seq > st->pin_seq) return 0;
  evict_slot(st, v);
  return 1;
}

/* Find or insert; *slot gets the slot number. Sets *created on insert. */
static int lookup(store_t *st, int32_t partition, uint64_t user_id, int create, uint32_t *slot,
                  int *created, int make_room) {
  uint32_t tag = key_tag(partition, user_id);
  int found;
  uint64_t b = table_find(st, partition, user_id, tag, &found);
  if (found) {
    *slot = st->table[b].slot1 - 1;
    *created = 0;
    /* the caller is about to change it (touch, blob write) */
    capture_before_change(st, *slot, slot_at(st, *slot));
    return 0;
  }
  if (!create) return IX_ENOENT;
  if (make_room && st->users >= st->capacity) {
    /* At capacity: the least recently seen user makes room now, so the
     * store never holds more than its capacity and never maps a slab (or
     * grows the index) beyond the limit. Not a user touched since the last
     * store_evict() (its blob pointer may be in use): then the insert goes
     * over and store_evict() trims. */
    if (evict_lru_unpinned(st)) b = table_find(st, partition, user_id, tag, &found);
  }
  if (!TABLE_FITS(st->users + 1, st->mask + 1)) {
    int rc = table_reserve(st, st->users + 1);
    if (rc) return rc;
    b = table_find(st, partition, user_id, tag, &found);
  }
  uint32_t pidx, i;
  int rc = part_get_or_add(st, partition, &pidx);
  if (rc) return rc;
  if (make_room && st->free_head == NIL && st->map_backoff) {
    /* a slab failed lately: evict (below) without asking for memory again */
    st->map_backoff--;
    if (evict_lru_unpinned(st)) b = table_find(st, partition, user_id, tag, &found);
  }
  rc = slot_alloc(st, &i);
  if (rc == IX_ENOMEM && make_room && st->free_head == NIL) {
    /* No memory for another slab (the host is short of what the limit
     * allows): the least recently seen user makes room, as at capacity
     * (counted in evicted_lru; slab_failures says why), so the store keeps
     * serving the users it can hold; the next slab's worth of such inserts
     * evict without trying (a failing populate can take the kernel's
     * reclaim time). */
    if (evict_lru_unpinned(st)) {
      b = table_find(st, partition, user_id, tag, &found);
      rc = slot_alloc(st, &i);
      st->map_backoff = st->sps;
    }
  }
  if (rc) return rc;
  slot_t *s = slot_at(st, i);
  s->user_id = user_id;
  s->part = pidx;
  s->snap = st->cap_id; /* created now: never part of a running capture */
  part_t *pt = &st->parts[pidx];
  list_push_head(st, pt, i, s);
  pt->users++;
  st->users++;
  st->table[b] = (bucket_t){i + 1, tag};
  *slot = i;
  *created = 1;
  return 0;
}

void *store_get(store_t *st, int32_t partition, uint64_t user_id, int64_t now_ms, int create,
                int *created) {
  int made = 0;
  uint32_t i;
  if (created) *created = 0;
  if (lookup(st, partition, user_id, create, &i, &made, 1) != 0) return NULL;
  unsigned char *blob = blob_at(st, i);
  if (made) {
    memset(blob, 0, st->blob_size);
    if (created) *created = 1;
  }
  touch(st, i, slot_at(st, i), now_ms);
  return blob;
}

const void *store_peek(store_t *st, int32_t partition, uint64_t user_id) {
  int found;
  uint64_t b = table_find(st, partition, user_id, key_tag(partition, user_id), &found);
  return found ? blob_at(st, st->table[b].slot1 - 1) : NULL;
}

const void *store_peek_seen(store_t *st, int32_t partition, uint64_t user_id,
                            int64_t *last_seen_ms) {
  int found;
  uint64_t b = table_find(st, partition, user_id, key_tag(partition, user_id), &found);
  if (!found) return NULL;
  *last_seen_ms = slot_at(st, st->table[b].slot1 - 1)->last_seen_ms;
  return blob_at(st, st->table[b].slot1 - 1);
}

static int put(store_t *st, int32_t partition, uint64_t user_id, int64_t last_seen_ms,
               const void *blob, int ordered) {
  int made;
  uint32_t i;
  int rc = lookup(st, partition, user_id, 1, &i, &made, 0);
  if (rc) return rc;
  memcpy(blob_at(st, i), blob, st->blob_size);
  slot_t *s = slot_at(st, i);
  touch(st, i, s, last_seen_ms);
  if (!ordered) return 0;
  /* Keep the list ordered by last seen: walk an older put back past newer
   * users (a restore inserts oldest first, so it never walks). The walk is
   * bounded; beyond it the order is approximate. */
  part_t *pt = &st->parts[s->part];
  uint32_t after = NIL; /* the node that will precede i (towards the head) */
  for (uint32_t j = s->next, steps = 0; j != NIL && steps < PUT_MAX_WALK; steps++) {
    const slot_t *o = slot_at(st, j);
    if (o->last_seen_ms <= last_seen_ms) break;
    after = j;
    j = o->next;
  }
  if (after != NIL) {
    list_unlink(st, pt, s);
    slot_t *a = slot_at(st, after);
    s->prev = after;
    s->next = a->next;
    if (a->next != NIL) slot_at(st, a->next)->prev = i;
    else pt->tail = i;
    a->next = i;
  }
  return 0;
}

int store_put(store_t *st, int32_t partition, uint64_t user_id, int64_t last_seen_ms,
              const void *blob) {
  return put(st, partition, user_id, last_seen_ms, blob, 1);
}

int store_load(store_t *st, int32_t partition, uint64_t user_id, int64_t last_seen_ms,
               const void *blob) {
  return put(st, partition, user_id, last_seen_ms, blob, 0);
}

typedef struct {
  int64_t seen;
  uint32_t rank; /* position from the tail: keeps the load order among ties */
  uint32_t slot;
} order_t;

static int cmp_order(const void *a, const void *b) {
  const order_t *x = a, *y = b;
  if (x->seen != y->seen) return x->seen < y->seen ? -1 : 1;
  return x->rank < y->rank ? -1 : x->rank > y->rank;
}

int store_order_partition(store_t *st, int32_t partition) {
  uint32_t k;
  if (!part_find(st, partition, &k)) return 0;
  part_t *pt = &st->parts[k];
  /* Already in order (a file written oldest first): nothing to do. */
  int sorted = 1;
  int64_t prev = INT64_MIN;
  for (uint32_t i = pt->tail; i != NIL; i = slot_at(st, i)->prev) {
    int64_t t = slot_at(st, i)->last_seen_ms;
    if (t < prev) {
      sorted = 0;
      break;
    }
    prev = t;
  }
  if (sorted) return 0;
  order_t *o = malloc((size_t)pt->users * sizeof *o);
  if (!o) return IX_ENOMEM;
  size_t n = 0;
  for (uint32_t i = pt->tail; i != NIL; i = slot_at(st, i)->prev, n++)
    o[n] = (order_t){slot_at(st, i)->last_seen_ms, (uint32_t)n, i};
  qsort(o, n, sizeof *o, cmp_order);
  /* Relink oldest first at the tail; touch sequence numbers follow the new
   * order, so eviction's tie-break agrees with it. */
  pt->head = pt->tail = NIL;
  for (size_t j = 0; j < n; j++) /* pushed at the head: the newest ends there */
    list_push_head(st, pt, o[j].slot, slot_at(st, o[j].slot));
  uint64_t base = st->seq;
  for (size_t j = 0; j < n; j++) slot_at(st, o[j].slot)->seq = base + 1 + j;
  st->seq = base + n;
  free(o);
  return 0;
}

/* The globally least recently seen user (the oldest of the partitions'
 * tails), NIL when empty. */
static uint32_t lru_victim(const store_t *st) {
  uint32_t victim = NIL;
  const slot_t *vs = NULL;
  for (uint32_t k = 0; k < st->nparts; k++) {
    uint32_t t = st->parts[k].tail;
    if (t == NIL) continue;
    const slot_t *s = slot_at(st, t);
    if (!vs || s->last_seen_ms < vs->last_seen_ms ||
        (s->last_seen_ms == vs->last_seen_ms && s->seq < vs->seq)) {
      victim = t;
      vs = s;
    }
  }
  return victim;
}

static void evict_slot(store_t *st, uint32_t victim) {
  const slot_t *vs = slot_at(st, victim);
  if (st->evict_fn) st->evict_fn(st->evict_ctx, st->parts[vs->part].id, vs->user_id);
  slot_remove(st, victim);
  st->evicted_lru++;
}

size_t store_evict(store_t *st) {
  size_t n = 0;
  while (st->users > st->capacity) {
    evict_slot(st, lru_victim(st));
    n++;
  }
  st->pin_seq = st->seq;
  return n;
}

size_t store_expire(store_t *st, int64_t now_ms) {
  if (st->ttl_ms <= 0) return 0;
  size_t n = 0;
  for (uint32_t k = 0; k < st->nparts; k++) {
    /* Lists are in touch order, so idle users gather at the tail. */
    uint32_t t;
    while ((t = st->parts[k].tail) != NIL && now_ms - slot_at(st, t)->last_seen_ms > st->ttl_ms) {
      if (st->evict_fn) st->evict_fn(st->evict_ctx, st->parts[k].id, slot_at(st, t)->user_id);
      slot_remove(st, t);
      n++;
    }
  }
  st->evicted_ttl += n;
  return n;
}

void store_set_evict_hook(store_t *st, store_evict_fn fn, void *ctx) {
  st->evict_fn = fn;
  st->evict_ctx = ctx;
}

int store_remove(store_t *st, int32_t partition, uint64_t user_id) {
  int found;
  uint64_t b = table_find(st, partition, user_id, key_tag(partition, user_id), &found);
  if (!found) return 0;
  slot_remove(st, st->table[b].slot1 - 1);
  return 1;
}

size_t store_drop_partition(store_t *st, int32_t partition) {
  uint32_t k;
  if (!part_find(st, partition, &k)) return 0;
  store_capture_cancel(st, partition); /* its users leave: no pre-images */
  size_t n = 0;
  uint32_t t;
  while ((t = st->parts[k].tail) != NIL) {
    slot_remove(st, t);
    n++;
  }
  return n;
}

int store_foreach(const store_t *st, int32_t partition, store_visit_fn fn, void *ctx) {
  uint32_t k;
  if (!part_find(st, partition, &k)) return 0;
  /* Oldest first, so a restore that re-inserts in this order keeps it. */
  for (uint32_t i = st->parts[k].tail; i != NIL;) {
    const slot_t *s = slot_at(st, i);
    uint32_t prev = s->prev;
    int rc = fn(ctx, s->user_id, s->last_seen_ms, blob_at(st, i));
    if (rc) return rc;
    i = prev;
  }
  return 0;
}

size_t store_blob_size(const store_t *st) { return st->blob_size; }

slab_pool_t *store_slab_pool(const store_t *st) { return st->pool; }

size_t store_partition_users(const store_t *st, int32_t partition) {
  uint32_t k;
  return part_find(st, partition, &k) ? (size_t)st->parts[k].users : 0;
}

size_t store_users(const store_t *st) { return (size_t)st->users; }

uint64_t store_capacity(const store_t *st) { return st->capacity; }

size_t store_slab_slots(const store_t *st) { return st->sps; }

int store_reserve(store_t *st, size_t n) {
  uint64_t want = st->users + n;
  if (want > st->capacity) want = st->capacity; /* the limit sized the index already */
  return table_reserve(st, want);
}

void store_get_stats(const store_t *st, store_stats_t *stats) {
  stats->users = st->users;
  stats->bytes = sizeof *st + (uint64_t)st->slabs_mapped * st->slab_bytes +
                 (st->mask + 1) * sizeof(bucket_t) + (uint64_t)st->parts_cap * sizeof(part_t) +
                 (uint64_t)st->slabs_cap * sizeof(slab_t);
  stats->evicted_lru = st->evicted_lru;
  stats->evicted_ttl = st->evicted_ttl;
  stats->map_ns = st->map_ns;
  stats->slabs_reused = st->slabs_reused;
  stats->slabs_fresh = st->slabs_fresh;
  stats->slab_failures = st->slab_failures;
}

/* ---- snapshot capture ---------------------------------------------------- */

static void capture_unlist_all(store_t *st) {
  for (uint32_t k = 0; k < st->nparts; k++) st->parts[k].cap_idx = NIL;
}

int store_capture_begin(store_t *st, const int32_t *partitions, size_t n, store_capture_fn fn,
                        void *ctx, uint64_t *users) {
  if (st->cap_on) return IX_ESTATE;
  if (!fn || (n && !partitions)) return IX_EINVAL;
  uint64_t *pending = calloc(n ? n : 1, sizeof *pending);
  if (!pending) return IX_ENOMEM;
  capture_unlist_all(st);
  uint64_t left = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t k;
    if (part_find(st, partitions[i], &k)) {
      if (st->parts[k].cap_idx != NIL) { /* listed twice */
        capture_unlist_all(st);
        free(pending);
        return IX_EINVAL;
      }
      st->parts[k].cap_idx = (uint32_t)i;
      pending[i] = st->parts[k].users;
    }
    if (users) users[i] = pending[i];
    left += pending[i];
  }
  /* Every live slot now has snap <= the old id, so != the new one: all of
   * them are pending; slots created from here on get the new id. */
  st->cap_id++;
  st->cap_on = 1;
  st->cap_fn = fn;
  st->cap_ctx = ctx;
  free(st->cap_pending);
  st->cap_pending = pending;
  st->cap_n = n;
  st->cap_left = left;
  st->cap_cursor = 0;
  st->cap_end = (uint64_t)st->nslabs * st->sps;
  st->cap_before = 0;
  return 0;
}

int store_capture_step(store_t *st, size_t max_users) {
  if (!st->cap_on) return 1;
  size_t done = 0;
  uint64_t scanned = 0, max_scan = (uint64_t)max_users * 8 + 64;
  while (st->cap_left && done < max_users && scanned < max_scan && st->cap_cursor < st->cap_end) {
    uint32_t k = (uint32_t)(st->cap_cursor / st->sps);
    if (!st->slabs[k].slots) { /* unmapped: every user it had was delivered or dropped */
      st->cap_cursor = (uint64_t)(k + 1) * st->sps;
      continue;
    }
    uint32_t i = (uint32_t)st->cap_cursor++;
    scanned++;
    slot_t *s = slot_at(st, i);
    if (capture_pending(st, s)) {
      capture_slot(st, i, s);
      done++;
    }
  }
  /* Users of the capture live only in slabs that existed at its start, so
   * the scan ends with none left. */
  return st->cap_left == 0 || st->cap_cursor >= st->cap_end;
}

void store_capture_cancel(store_t *st, int32_t partition) {
  uint32_t k;
  if (!st->cap_on || !part_find(st, partition, &k) || st->parts[k].cap_idx == NIL) return;
  uint32_t idx = st->parts[k].cap_idx;
  st->cap_left -= st->cap_pending[idx];
  st->cap_pending[idx] = 0;
  st->parts[k].cap_idx = NIL;
}

void store_capture_end(store_t *st) {
  if (!st->cap_on) return;
  capture_unlist_all(st);
  st->cap_on = 0;
  st->cap_fn = NULL;
  st->cap_ctx = NULL;
  st->cap_left = 0;
}

int store_capture_active(const store_t *st) { return st->cap_on; }
uint64_t store_capture_left(const store_t *st) { return st->cap_on ? st->cap_left : 0; }
uint64_t store_capture_before_change(const store_t *st) { return st->cap_before; }
