/* The prediction: what interestd publishes per event (docs/FORMATS.md).
 * model/ fills the interest fields, daemon/ the provenance, stream/ encodes. */
#ifndef IX_COMMON_PREDICTION_H
#define IX_COMMON_PREDICTION_H

#include <stdint.h>

#define PRED_TOPK 10     /* pairs in long-term and rising; next's default */
#define PRED_MAX_NEXT 20 /* most next pairs ([output] next_categories, model_set_next_count()) */

typedef struct {
  uint64_t category_id; /* 0 with p>0 means the "other" bucket */
  float p;              /* probability (next, long), p_next - p_long (rising) or
                           p_long - p_next (falling) */
} pred_cat_t;

typedef struct {
  /* provenance (daemon/) */
  uint64_t user_id;
  int32_t src_partition;   /* input partition of the event this answers */
  int64_t src_offset;      /* input offset: downstream de-duplication key */
  int64_t event_ts_ms;     /* the source event's time */
  int64_t emit_ts_ms;      /* wall clock when the prediction was made */
  /* interest (model/) */
  uint32_t n_events;       /* events applied to this user's state so far */
  float fluctuation;       /* Jensen-Shannon divergence (base 2) p_next vs p_long, [0,1] */
  float shift_prob;        /* P(next event outside the long-term profile) */
  uint32_t n_next, n_long, n_rising, n_falling;
  pred_cat_t next[PRED_MAX_NEXT]; /* top of p_next, descending p (n_next, default <= PRED_TOPK) */
  pred_cat_t longterm[PRED_TOPK]; /* top of p_long, descending p */
  pred_cat_t rising[PRED_TOPK]; /* largest p_next - p_long > 0, descending */
  pred_cat_t falling[PRED_TOPK]; /* profile categories with the largest p_long - p_next > 0,
                                    descending: where the user is moving away from */
} prediction_t;

#endif
