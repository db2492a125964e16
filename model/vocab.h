/* Category vocabulary: raw uint64 category id -> index in [0, V), by an
 * open-addressing hash. Index 0 is the "other" bucket: unknown ids map to it. */
#ifndef IX_MODEL_VOCAB_H
#define IX_MODEL_VOCAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct vocab vocab_t;

/* Build from ids[0..V): ids[0] is ignored (the "other" bucket; store 0 there),
 * ids[1..V) must be distinct, except 0, which marks an unused slot (no
 * category maps to it). The ids are copied. Returns 0, IX_EINVAL
 * (duplicate id, V == 0) or IX_ENOMEM. Free with vocab_destroy(). */
int vocab_new(const uint64_t *ids, size_t V, vocab_t **out);
void vocab_destroy(vocab_t *vb);

/* Index of a category id; 0 when unknown. */
int32_t vocab_index(const vocab_t *vb, uint64_t category_id);
/* The id array (V entries, [0] = 0); borrowed, valid until vocab_destroy(). */
const uint64_t *vocab_ids(const vocab_t *vb);

#endif
