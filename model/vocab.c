/* Category vocabulary: uint64 id -> index by open addressing (linear probing,
 * power-of-two table at most half full). */
#include "model/vocab.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hash.h"

struct vocab {
  size_t V;
  uint64_t *ids;     /* V ids, [0] = 0 */
  size_t mask;       /* table size - 1 */
  uint64_t *keys;    /* table: raw ids */
  int32_t *vals;     /* table: index, 0 = empty slot */
};

int vocab_new(const uint64_t *ids, size_t V, vocab_t **out) {
  *out = NULL;
  if (V == 0 || V > INT32_MAX / 4) return IX_EINVAL;
  vocab_t *vb = calloc(1, sizeof(*vb));
  if (!vb) return IX_ENOMEM;
  size_t cap = 16;
  while (cap < 2 * V) cap <<= 1;
  vb->V = V;
  vb->mask = cap - 1;
  vb->ids = malloc(V * sizeof(uint64_t));
  vb->keys = calloc(cap, sizeof(uint64_t));
  vb->vals = calloc(cap, sizeof(int32_t));
  if (!vb->ids || !vb->keys || !vb->vals) {
    vocab_destroy(vb);
    return IX_ENOMEM;
  }
  vb->ids[0] = 0;
  for (size_t i = 1; i < V; i++) {
    vb->ids[i] = ids[i];
    if (ids[i] == 0) continue; /* unused slot (fewer categories than V - 1) */
    size_t h = (size_t)ix_fmix64(ids[i]) & vb->mask;
    while (vb->vals[h] != 0) {
      if (vb->keys[h] == ids[i]) {
        vocab_destroy(vb);
        return IX_EINVAL;
      }
      h = (h + 1) & vb->mask;
    }
    vb->keys[h] = ids[i];
    vb->vals[h] = (int32_t)i;
  }
  *out = vb;
  return 0;
}

void vocab_destroy(vocab_t *vb) {
  if (!vb) return;
  free(vb->ids);
  free(vb->keys);
  free(vb->vals);
  free(vb);
}

int32_t vocab_index(const vocab_t *vb, uint64_t category_id) {
  size_t h = (size_t)ix_fmix64(category_id) & vb->mask;
  for (;;) {
    int32_t v = vb->vals[h];
    if (v == 0) return 0;
    if (vb->keys[h] == category_id) return v;
    h = (h + 1) & vb->mask;
  }
}

const uint64_t *vocab_ids(const vocab_t *vb) { return vb->ids; }
