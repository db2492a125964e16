/* The serving face of the model: load a model file, size and initialise a
 * user's state blob, and step a wave of distinct users by one event each.
 * Not thread-safe: one model_t per thread (the daemon has one loop thread). */
#ifndef IX_MODEL_MODEL_H
#define IX_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/event.h"
#include "common/prediction.h"

typedef struct model model_t;

/* Load and validate a model file (magic, version, dimensions, checksum).
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

#endif
