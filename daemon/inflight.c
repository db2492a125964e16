/* Per-partition in-flight rings and the commit-offset rule (inflight.h).
 * A partition's ring holds its consumed messages in offset order; each
 * entry counts the acknowledgements it still awaits. */
#include "daemon/inflight.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define GEN_BITS 14
#define GEN_MASK ((1u << GEN_BITS) - 1)

typedef struct {
  inflight_entry_t info;
  uint32_t pending; /* acknowledgements still awaited */
} entry_t;

typedef struct {
  inflight_part_t o;
  entry_t *ring;
  uint32_t cap, head;
  uint32_t head_seq; /* sequence number of ring[head] */
  int dirty;
} part_t;

struct inflight {
  int use_checkpoints;
  part_t *parts;
  int32_t n_parts;   /* allocated */
  int32_t n_used;    /* one past the highest assigned */
};

int inflight_new(int use_checkpoints, inflight_t **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return IX_ENOMEM;
  (*out)->use_checkpoints = use_checkpoints;
  return 0;
}

void inflight_destroy(inflight_t *t) {
  if (!t) return;
  for (int32_t i = 0; i < t->n_parts; i++) free(t->parts[i].ring);
  free(t->parts);
  free(t);
}

static void part_reset(part_t *pt) {
  free(pt->ring);
  pt->ring = NULL;
  pt->cap = pt->head = pt->head_seq = 0;
  pt->o.in_flight = 0;
  pt->o.consumed_next = pt->o.acked_next = pt->o.stored_next = pt->o.ckpt_next = -1;
  pt->dirty = 0;
}

static int parts_ensure(inflight_t *t, int32_t p) {
  if (p < 0 || p > INFLIGHT_MAX_PARTITION) return IX_ERANGE;
  if (p < t->n_parts) return 0;
  int32_t n = t->n_parts ? t->n_parts : 16;
  while (n <= p) n *= 2;
  part_t *a = realloc(t->parts, (size_t)n * sizeof *a);
  if (!a) return IX_ENOMEM;
  memset(a + t->n_parts, 0, (size_t)(n - t->n_parts) * sizeof *a);
  for (int32_t i = t->n_parts; i < n; i++) part_reset(&a[i]);
  t->parts = a;
  t->n_parts = n;
  return 0;
}

static part_t *part_get(const inflight_t *t, int32_t p) {
  if (p < 0 || p >= t->n_parts) return NULL;
  return &t->parts[p];
}

int inflight_assign(inflight_t *t, int32_t p, int64_t start_next) {
  int rc = parts_ensure(t, p);
  if (rc) return rc;
  part_t *pt = &t->parts[p];
  part_reset(pt);
  pt->o.owned = 1;
  pt->o.gen++;
  if (start_next >= 0)
    pt->o.ckpt_next = pt->o.consumed_next = pt->o.acked_next = pt->o.stored_next = start_next;
  if (p + 1 > t->n_used) t->n_used = p + 1;
  return 0;
}

void inflight_revoke(inflight_t *t, int32_t p) {
  part_t *pt = part_get(t, p);
  if (!pt || !pt->o.owned) return;
  pt->o.owned = 0;
  pt->o.gen++;
  part_reset(pt);
}

inflight_part_t inflight_part(const inflight_t *t, int32_t p) {
  const part_t *pt = part_get(t, p);
  if (pt) return pt->o;
  inflight_part_t none = {.consumed_next = -1, .acked_next = -1, .stored_next = -1,
                          .ckpt_next = -1};
  return none;
}

int32_t inflight_partitions(const inflight_t *t) { return t->n_used; }

/* token: bits 61..48 generation | 47..32 partition | 31..0 sequence */
static uint64_t make_token(uint16_t gen, int32_t p, uint32_t seq) {
  return ((uint64_t)(gen & GEN_MASK) << 48) | ((uint64_t)(uint16_t)p << 32) | seq;
}

static entry_t *find(const inflight_t *t, uint64_t token, part_t **ptp) {
  part_t *pt = part_get(t, (int32_t)((token >> 32) & 0xffff));
  if (!pt || !pt->o.owned || (pt->o.gen & GEN_MASK) != ((token >> 48) & GEN_MASK)) return NULL;
  uint32_t idx = (uint32_t)token - pt->head_seq;
  if (idx >= pt->o.in_flight) return NULL;
  if (ptp) *ptp = pt;
  return &pt->ring[(pt->head + idx) % pt->cap];
}

int inflight_push(inflight_t *t, int32_t p, int64_t offset, int64_t msg_ts_ms,
                  uint64_t read_ns, uint64_t *token) {
  part_t *pt = part_get(t, p);
  if (!pt || !pt->o.owned) return IX_ESTATE;
  if (pt->o.in_flight == pt->cap) {
    uint32_t cap = pt->cap ? pt->cap * 2 : 1024;
    entry_t *r = malloc((size_t)cap * sizeof *r);
    if (!r) return IX_ENOMEM;
    for (uint32_t i = 0; i < pt->o.in_flight; i++) r[i] = pt->ring[(pt->head + i) % pt->cap];
    free(pt->ring);
    pt->ring = r;
    pt->cap = cap;
    pt->head = 0;
  }
  uint32_t seq = pt->head_seq + pt->o.in_flight;
  entry_t *e = &pt->ring[(pt->head + pt->o.in_flight) % pt->cap];
  pt->o.in_flight++;
  e->info = (inflight_entry_t){.partition = p, .offset = offset, .msg_ts_ms = msg_ts_ms,
                               .read_ns = read_ns};
  e->pending = 0;
  pt->o.consumed_next = offset + 1;
  pt->dirty = 1;
  *token = make_token(pt->o.gen, p, seq);
  return 0;
}

int inflight_expect(inflight_t *t, uint64_t token) {
  entry_t *e = find(t, token, NULL);
  if (!e) return IX_ESTATE;
  e->pending++;
  return 0;
}

const inflight_entry_t *inflight_ack(inflight_t *t, uint64_t token) {
  part_t *pt;
  entry_t *e = find(t, token, &pt);
  if (!e || e->pending == 0) return NULL;
  if (--e->pending == 0) pt->dirty = 1;
  return &e->info;
}

const inflight_entry_t *inflight_peek(const inflight_t *t, uint64_t token) {
  entry_t *e = find(t, token, NULL);
  return e ? &e->info : NULL;
}

void inflight_set_checkpoint(inflight_t *t, int32_t p, int64_t next) {
  part_t *pt = part_get(t, p);
  if (!pt || next <= pt->o.ckpt_next) return;
  pt->o.ckpt_next = next;
  pt->dirty = 1;
}

static void advance(inflight_t *t, int32_t p, part_t *pt, inflight_store_fn store, void *ctx) {
  while (pt->o.in_flight && pt->ring[pt->head].pending == 0) {
    pt->o.acked_next = pt->ring[pt->head].info.offset + 1;
    pt->head = (pt->head + 1) % pt->cap;
    pt->head_seq++;
    pt->o.in_flight--;
  }
  pt->dirty = 0;
  int64_t next = pt->o.acked_next;
  if (t->use_checkpoints && next > pt->o.ckpt_next) next = pt->o.ckpt_next;
  if (next > pt->o.stored_next && pt->o.owned && store(ctx, p, next) == 0)
    pt->o.stored_next = next;
}

void inflight_advance(inflight_t *t, int32_t p, inflight_store_fn store, void *ctx) {
  part_t *pt = part_get(t, p);
  if (pt) advance(t, p, pt, store, ctx);
}

void inflight_advance_dirty(inflight_t *t, inflight_store_fn store, void *ctx) {
  for (int32_t i = 0; i < t->n_used; i++)
    if (t->parts[i].dirty) advance(t, i, &t->parts[i], store, ctx);
}
