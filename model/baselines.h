/* Streaming, causal next-category baselines: what a shop does without a
 * model. Each one keeps per-user and global statistics updated event by
 * event in global time order, ranks categories for a user's next event, and
 * gives a probability for every category by mixing its own distribution with
 * causal global popularity (add-one smoothed; a never-seen category gets the
 * "unseen" share). Hyper-parameters are tuned on the dev window
 * (bl_tune). */
#ifndef IX_MODEL_BASELINES_H
#define IX_MODEL_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#include "common/event.h"
#include "model/eval.h"

typedef enum {
  BL_REPEAT = 0, /* the last category */
  BL_RECENCY,    /* distinct recent categories, weight beta^rank (rank 0 = most recent) */
  BL_FREQ,       /* the user's category counts so far */
  BL_DECAY,      /* counts decayed by gamma per event and by a time half-life */
  BL_POP,        /* global popularity so far (all users) */
  BL_MARKOV,     /* first-order chain P(c | last), all users' past transitions,
                    Dirichlet prior alpha toward popularity */
  BL_BLEND,      /* w_rec * recency(beta) + w_mk * markov(alpha) + rest popularity */
  BL__COUNT
} bl_kind_t;

typedef struct {
  bl_kind_t kind;
  float lambda_rank; /* popularity weight of the mixture used for ranking */
  float lambda_prob; /* popularity weight of the mixture used for p, shift, fluctuation */
  float beta;        /* RECENCY, BLEND */
  float gamma;       /* DECAY: per-event decay factor in (0, 1] */
  float half_life_s; /* DECAY: time half-life (seconds; 0 = no time decay) */
  float alpha;       /* MARKOV, BLEND: prior strength (pseudo-transitions) */
  float w_markov;    /* BLEND: weight of the Markov part among the non-popularity mass */
} bl_params_t;

typedef struct bl bl_t;

/* Name of a kind ("repeat", "recency", "freq", "decay", "pop", "markov", "blend"). */
const char *bl_name(bl_kind_t kind);
/* Default (untuned) parameters of a kind. */
void bl_params_default(bl_kind_t kind, bl_params_t *p);

/* A baseline for users 0 .. n_users-1 (dense indices). profile_half_life_s is
 * the long-term profile's half-life (for the shift and fluctuation scores).
 * Free with bl_destroy(). Returns 0, IX_EINVAL or IX_ENOMEM. */
int bl_new(const bl_params_t *p, uint32_t n_users, float profile_half_life_s, bl_t **out);
void bl_destroy(bl_t *b);

/* Apply one event of user u (events must come in global time order). */
int bl_observe(bl_t *b, uint32_t user, const event_t *ev);

/* The prediction for user u's next event from everything observed so far:
 * the top-k categories (ranking mixture; descending, ties by smaller
 * category id) into cat[]/p[] (returns the count), and, when target != NULL,
 * the probability of *target, the shift score (1 - p of the profile's
 * categories) and the fluctuation (Jensen-Shannon of p vs the profile). */
typedef struct {
  float p_target, shift, fluct;
} bl_score_t;
size_t bl_predict(bl_t *b, uint32_t user, size_t k, uint64_t *cat, float *p,
                  const uint64_t *target, bl_score_t *score);

/* Run one baseline over data (all events fed, targets scored); fills row
 * (name = bl_name, params = description). Returns 0 or IX_E*. */
int bl_run(const bl_params_t *p, const eval_data_t *data, eval_row_t *row);

/* Tune a kind's parameters on dev (grid search: ranking parameters by
 * MRR@10, then lambda_prob by NLL). Writes the best into *best and, when
 * dev_row is not NULL, its dev row. Returns 0 or IX_E*. */
int bl_tune(bl_kind_t kind, const eval_data_t *dev, bl_params_t *best, eval_row_t *dev_row);

#endif
