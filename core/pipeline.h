/* The Kafka-free processing core shared by the daemon and offline replay:
 * a batch of input messages in, predictions (and rejections) out.
 *
 *   decode each message (stream/input: msgpack or JSON) -> reject bad ones with a reason
 *   group the good events by (partition, user) into waves: a user's k-th
 *     event in the batch goes in wave k, so each wave has distinct users and
 *     every user's events are applied in input order
 *   per wave: get/create the users' state blobs in the store, one
 *     model_step_batch() call, then the emission policy per event
 *
 * Deterministic: the output depends only on the messages, the states and the
 * now_ms the caller passes (emit_ts_ms, and the store's last-seen time for
 * LRU eviction and idle TTL); emission decisions use event time. Not thread-safe (one loop thread). */
#ifndef IX_CORE_PIPELINE_H
#define IX_CORE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/prediction.h"
#include "core/emit.h"
#include "model/model.h"
#include "state/store.h"
#include "stream/input.h"
#include "stream/rec.h"

typedef struct pipeline pipeline_t;

/* A message that was not applied. */
typedef struct {
  size_t src;          /* index into the input batch */
  int err;             /* negative IX_E* from the codec; its label: ix_reject_reason() */
  char reason[200];    /* the codec's sentence naming the field */
} pipeline_reject_t;

/* What one pipeline_process() call produced. Arrays are borrowed; valid
 * until the next pipeline_process() or pipeline_destroy(). */
typedef struct {
  const prediction_t *preds; /* emitted predictions, in input order */
  const size_t *pred_src;    /* pred_src[i]: index of preds[i]'s input message */
  size_t n_preds;
  const pipeline_reject_t *rejects; /* in input order */
  size_t n_rejects;
  size_t n_processed;  /* events applied to a state */
  size_t n_suppressed; /* applied, but the emission policy held the prediction back */
  size_t n_new_users;  /* states created by this batch */
  size_t n_skipped;    /* already in the state (pipeline_set_hooks' skip) */
  size_t n_waves;
  size_t n_evicted;    /* users dropped for the memory limit in the batch */
  uint64_t step_ns;    /* time in the model: model_step_batch() + model_predict_batch() */
} pipeline_result_t;

/* Bytes of a state blob in the store: the model's state followed by the
 * emission policy's per-user memory (PIPELINE_TRAILER_SIZE). */
#define PIPELINE_TRAILER_SIZE 128

/* Live quality: for each applied event of a user with an earlier emitted
 * prediction, the rank (1..10, 0 = not in the top 10) of the event's category
 * in that prediction's next list (PIPELINE_Q_MODEL; with EMIT_EVERY the
 * prediction made after the user's previous event, as `interestctl eval`
 * scores it), and in the orders of the heuristics the user's state carries
 * just before the event (recency, decayed frequency: model_heuristic_rank).
 * Cumulative since pipeline_new() or the last model change. */
enum { PIPELINE_Q_MODEL = 0, PIPELINE_Q_RECENCY, PIPELINE_Q_DECAY, PIPELINE_Q_N };
typedef struct {
  uint64_t targets, hit1, hit5, hit10;
  double rr_sum; /* sum of 1/rank over hits in the top 10: MRR@10 = rr_sum / targets */
} pipeline_quality_t;
/* Predictor name of index q: "lstm", "recency", "decay". */
const char *pipeline_quality_name(unsigned q);
/* The totals of predictor q (borrowed; valid until pipeline_destroy()). */
const pipeline_quality_t *pipeline_quality(const pipeline_t *p, unsigned q);
/* Zeroes the totals (a warmed-up model starts serving: its warm-up's replayed
 * events are not live traffic). */
void pipeline_quality_reset(pipeline_t *p);

/* model is borrowed (must outlive the pipeline or be replaced with
 * pipeline_set_model()). The store is created here with store_opts
 * (blob_size is filled in). Returns 0 or a negative IX_E*. Free with
 * pipeline_destroy(). */
int pipeline_new(model_t *model, const store_opts_t *store_opts, const emit_opts_t *emit,
                 pipeline_t **out);
void pipeline_destroy(pipeline_t *p);

/* Processes msgs[0..n) (borrowed for the call) as one batch. Returns 0 (bad
 * messages are rejections, not errors) or a negative IX_E* when the batch
 * could not be processed (IX_ENOMEM: no room for new states, or the model's
 * own error); states may then be partly updated, so callers stop. */
int pipeline_process(pipeline_t *p, const rec_t *msgs, size_t n, int64_t now_ms,
                     pipeline_result_t *res);

/* The user's current prediction from its state as it is (read only: the
 * user is not marked seen): the interest fields equal those of the
 * prediction made after its last applied event (the kernels are
 * batch-invariant), provenance names that event (src_offset -1 when the
 * state predates this field, e.g. restored from an older checkpoint),
 * emit_ts_ms = now_ms. 0, IX_ENOENT (no state for the user here) or the
 * model's error. */
int pipeline_user_prediction(pipeline_t *p, int32_t partition, uint64_t user_id, int64_t now_ms,
                             prediction_t *out);

/* The state store (borrowed): checkpoints, revocation, eviction, stats. */
store_t *pipeline_store(pipeline_t *p);
/* Fingerprint of the blob layout for checkpoints (the model's). */
uint32_t pipeline_fingerprint(const pipeline_t *p);
const model_t *pipeline_model(const pipeline_t *p);

/* Swap the model (borrowed; the caller frees the old one after this returns).
 * With a model whose fingerprint and state size equal the current one's,
 * states are kept. Otherwise the states were made for other weights: with
 * reset != 0 every state is dropped (a new empty store) and the model is
 * swapped; with reset == 0 the swap is refused with IX_EMISMATCH. */
int pipeline_set_model(pipeline_t *p, model_t *model, int reset);
/* New emission options apply from the next batch; per-user memory is kept. */
void pipeline_set_emit(pipeline_t *p, const emit_opts_t *emit);

/* Per-event hooks for a changelog (docs/STATE.md, "Changelog topic"), both
 * optional (NULL), ctx borrowed: skip(ctx, partition, user, offset) != 0
 * means the event is already in the user's state (restored from a record
 * newer than the restore offset): it is neither applied nor predicted
 * (counted in n_skipped); applied() is called for every applied event, a
 * user's events in input order. */
typedef int (*pipeline_skip_fn)(void *ctx, int32_t partition, uint64_t user_id, int64_t offset);
typedef void (*pipeline_applied_fn)(void *ctx, int32_t partition, uint64_t user_id,
                                    int64_t offset);
void pipeline_set_hooks(pipeline_t *p, pipeline_skip_fn skip, pipeline_applied_fn applied,
                        void *ctx);

/* Decode messages with input (borrowed; NULL = msgpack, the default) from
 * the next batch on. */
void pipeline_set_input(pipeline_t *p, const input_t *input);

#endif
