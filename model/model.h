/* The serving face of the model: load a model file, size and initialise a
 * user's state blob, and step a wave of distinct users by one event each.
 * Not thread-safe: one model_t per thread (the daemon has one loop thread). */
#ifndef IX_MODEL_MODEL_H
#define IX_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/event.h"
#include "common/prediction.h"
#include "model/arch.h"

typedef struct model model_t;

/* Load and validate a model file (magic, version, dimensions, checksum).
 * Pins OpenBLAS to one thread: the serving path is single-threaded.
 * On failure returns a negative IX_E* and fills errstr with a sentence.
 * Free with model_destroy(). */
int model_load(const char *path, model_t **out, char *errstr, size_t errstr_size);
void model_destroy(model_t *m);

/* Bytes of one user's state blob (h, c, profile, recent categories, ...). */
size_t model_state_size(const model_t *m);
/* 32-bit fingerprint of the state layout and weights; a checkpoint made with
 * another fingerprint is not restored into this model. */
uint32_t model_fingerprint(const model_t *m);
/* Short human description, e.g. "lstm h=64 vocab=1000 crc=1a2b3c4d". */
const char *model_describe(const model_t *m);

/* Initialise a fresh user's state blob (state_size bytes, caller-owned). */
void model_state_init(const model_t *m, void *state);

/* Apply events[i] to states[i] for n users (all distinct) as one batched
 * step. When preds is not NULL, fill the interest fields of preds[i]
 * (n_events, fluctuation, shift_prob, next, longterm, rising); provenance
 * fields are left to the caller. Returns 0 or a negative IX_E*. */
int model_step_batch(model_t *m, void *const *states, const event_t *events,
                     size_t n, prediction_t *preds);

/* The interest fields of preds[i] from states[i] as they are (read only): what
 * model_step_batch() fills after its step. Lets a caller step several waves
 * without predictions, keep copies of the states, and run the head once over
 * the whole batch (bigger GEMMs). Same bytes as model_step_batch()'s
 * predictions: every kernel is batch-invariant. 0 or a negative IX_E*. */
int model_predict_batch(model_t *m, const void *const *states, size_t n, prediction_t *preds);

/* Build a model from in-memory parameters (e.g. freshly trained): dims,
 * half-life, vocab_ids[V] (ids[0] = 0) and the flat params of arch.h are
 * copied. note may be NULL. Errors as model_load. Free with model_destroy(). */
int model_from_params(const arch_dims_t *dims, float half_life_s, const uint64_t *vocab_ids,
                      const float *params, const char *note, model_t **out, char *errstr,
                      size_t errstr_size);

/* p_next(category_id) from a state (the prediction made after the state's
 * last event), by the NLL rule of arch.h: p(c) when c is in the vocabulary or
 * the state's recent list, else the "other" mass g p_vocab[0]. Recomputes the
 * head (one V x H gemv); uses the model's scratch, so not reentrant. */
float model_prob(model_t *m, const void *state, uint64_t category_id);

/* How many next categories a prediction carries: 1..PRED_MAX_NEXT (default
 * PRED_TOPK). They come from the same candidate list as before (the head's
 * top PRED_TOPK + ARCH_P), so rising and the first PRED_TOPK are unchanged.
 * Returns 0 or IX_EINVAL. */
int model_set_next_count(model_t *m, uint32_t n);

/* The heuristics a state carries, ranked on the fly (for live quality
 * metrics): MODEL_H_RECENCY ranks the recent list by recency (the recency
 * baseline's order), MODEL_H_DECAY by the decay expert's weights (models with
 * ARCH_F_EXPERTS; ties in recency order). Returns the 1-based rank of
 * category_id in that order as of the state's last event (what predicted the
 * next one), 0 when it is not among the first k or not in the list. */
typedef enum { MODEL_H_RECENCY = 0, MODEL_H_DECAY = 1 } model_heuristic_t;
unsigned model_heuristic_rank(const model_t *m, const void *state, model_heuristic_t h,
                              uint64_t category_id, unsigned k);

/* Override the profile half-life (seconds, > 0) stored in the model file. */
void model_set_half_life(model_t *m, float half_life_s);

/* Borrowed views, valid until model_destroy(). */
const arch_dims_t *model_dims(const model_t *m);
const float *model_params(const model_t *m);
const uint64_t *model_vocab_ids(const model_t *m);
float model_half_life(const model_t *m);
/* Vocabulary index of a raw category id (0 = "other"). */
int32_t model_vocab_index(const model_t *m, uint64_t category_id);

#endif
