/* The prediction head (arch.h): a gated mixture of a vocabulary softmax and a
 * copy (pointer) distribution over the user's ARCH_K most recent categories.
 *   z = W_v h + b_v;  p_vocab = softmax(z)
 *   s_k = P[k].h + b_p[k] + w_f log1p(cnt_k) over filled slots; p_copy = softmax(s)
 *   g = sigmoid(w_g.h + b_g)
 *   p(c) = g p_vocab[idx(c)] [idx(c) != 0] + (1 - g) sum_k p_copy[k] [recent_k == c]
 * Stateless functions over the flat parameter array. */
#ifndef IX_MODEL_HEAD_H
#define IX_MODEL_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "model/arch.h"

typedef struct {
  float g;                 /* weight of the vocabulary softmax (v1: the gate; experts: pi[VOCAB]) */
  float g_logit;           /* w_g.h + b_g (v1 only) */
  float pi[ARCH_N_EXPERTS];   /* expert weights (v1: {g, 1 - g, 0, 0}) */
  float p_rec[ARCH_K];        /* ARCH_X_RECENCY over the filled slots (experts only) */
  float p_dec[ARCH_K];        /* ARCH_X_DECAY over the filled slots (experts only) */
  float m_slot[ARCH_K];       /* p_next mass of recent slot k from every expert but
                                 the vocabulary: (1-g) p_copy[k] in v1 */
  uint32_t n_recent;       /* filled copy slots (= state n_recent) */
  float s_copy[ARCH_K];    /* copy logits of the filled slots (0 beyond n_recent) */
  float p_copy[ARCH_K];    /* copy softmax over filled slots (0 beyond n_recent) */
  float p_vocab_other;     /* p_vocab[0] (the "other" mass before the gate) */
} head_out_t;

/* Vocabulary logits for n users as one sgemm: z[b*ldz + j] = W_v[j].h_b + b_v[j],
 * h_b = h + b*ldh. */
void head_vocab_logits(const arch_dims_t *d, const float *params, size_t n, const float *h,
                       size_t ldh, float *z, size_t ldz);

/* Finish one user's head: z[V] holds the logits on entry and p_vocab on
 * return (softmax in place); out gets gate and copy distribution for the
 * recent list of s. */
void head_finish(const arch_dims_t *d, const float *params, const float *h,
                 const arch_state_t *s, float *z, head_out_t *out);

/* Rows of the head's small dot products: ARCH_K copy rows then the gate (1)
 * or the expert logits (ARCH_N_EXPERTS). */
static inline unsigned head_n_dots(const arch_dims_t *d) {
  return ARCH_K + ((d->flags & ARCH_F_EXPERTS) ? ARCH_N_EXPERTS : 1u);
}

/* As head_finish, with the H-dot products given: dots[k] = P[k].h for
 * k < ARCH_K and dots[ARCH_K] = w_g.h, or dots[ARCH_K + e] = W_m[e].h with
 * experts (the serving path computes them for a whole wave in one GEMM). */
void head_finish_dots(const arch_dims_t *d, const float *params, const float *dots,
                      const arch_state_t *s, float *z, head_out_t *out);

/* head_finish_dots followed by head_mix, in fewer passes over z (same bits):
 * z[V] holds the logits on entry and q (see head_mix) on return; oov_p gets
 * ARCH_K floats; out->p_vocab_other is p_vocab[0] before the gate. */
void head_finish_mix(const arch_dims_t *d, const float *params, const float *dots,
                     const arch_state_t *s, float *z, head_out_t *out, float *oov_p);

/* head_vocab_logits + head_finish for one user; p_vocab is V floats. */
void head_forward(const arch_dims_t *d, const float *params, const float *h,
                  const arch_state_t *s, float *p_vocab, head_out_t *out);

/* p(c) by the formula above (0 when c is neither in the vocabulary nor in the
 * recent list). p_vocab as returned by head_finish. */
float head_prob(const head_out_t *out, const float *p_vocab, const arch_state_t *s,
                uint64_t cat, int32_t cat_idx);

/* The probability evaluation scores (NLL): p(c) when c is in the vocabulary
 * or the recent list, otherwise the "other" mass g p_vocab[0]. */
float head_prob_target(const head_out_t *out, const float *p_vocab, const arch_state_t *s,
                       uint64_t cat, int32_t cat_idx);

/* Turn p_vocab (V floats, in place) into q = p_next per vocabulary index:
 * q[j] = g p_vocab[j] + (1-g) p_copy[k] for the recent slot k with idx j;
 * q[0] = g p_vocab[0] (the "other" bucket, never ranked). Out-of-vocabulary
 * recent categories get their copy mass in oov_p[k] (0 for in-vocab slots;
 * ARCH_K floats). Afterwards p_next(c) = idx(c) > 0 ? q[idx(c)] : oov_p[k]. */
void head_mix(const head_out_t *out, const arch_state_t *s, float *p_vocab, float *oov_p,
              size_t V);

/* Top k of p_next over real categories (q from head_mix, indices 1..V-1, and
 * the out-of-vocabulary recent slots), descending p, ties by smaller vocab
 * index then recency. vocab_ids maps index -> raw id; unused vocab slots
 * (id 0) are never ranked. Returns the count
 * written (<= k). */
size_t head_topk(const arch_dims_t *d, const float *q, const float *oov_p,
                 const arch_state_t *s, const uint64_t *vocab_ids, size_t k,
                 uint64_t *cat, float *p);

#endif
