/* The LSTM cell in PyTorch nn.LSTM layout (gate rows i, f, g, o; weight_ih
 * [4H x I], weight_hh [4H x H], bias_ih, bias_hh), forward only. A batch's
 * gate pre-activations are ONE sgemm over the rows [x_b, h_b] against the
 * internally concatenated [W_ih | W_hh]. Not thread-safe per lstm_t. */
#ifndef IX_MODEL_LSTM_H
#define IX_MODEL_LSTM_H

#include <stddef.h>
#include <stdint.h>

typedef struct lstm lstm_t;

/* Copy the PyTorch-layout weights into a new cell with scratch for up to
 * max_batch rows per sgemm (larger batches are processed in chunks). The
 * weights are copied; the caller keeps ownership of its arrays.
 * Free with lstm_destroy(). Returns 0, IX_EINVAL or IX_ENOMEM. */
int lstm_new(size_t I, size_t H, const float *w_ih, const float *w_hh, const float *b_ih,
             const float *b_hh, size_t max_batch, lstm_t **out);
void lstm_destroy(lstm_t *cell);

/* One step for one user: x[I]; h[H], c[H] are read and overwritten. */
void lstm_step(lstm_t *cell, const float *x, float *h, float *c);

/* One step for n users: x is n rows of I floats (row stride I); h[b], c[b]
 * point at user b's H floats, read and overwritten. Allocation-free. */
void lstm_step_batch(lstm_t *cell, size_t n, const float *x, float *const *h,
                     float *const *c);

/* ---- bf16 cell (the serving cell; model/arch.h stores h and c as bf16) ----
 * As lstm_new, but the weights [W_ih | W_hh] are rounded to bfloat16 and the
 * cell steps with lstm_step_batch_bf16 only (not lstm_step/lstm_step_batch).
 * The biases stay float32. Free with lstm_destroy(). 0, IX_EINVAL, IX_ENOMEM. */
int lstm_new_bf16(size_t I, size_t H, const float *w_ih, const float *w_hh, const float *b_ih,
                  const float *b_hh, size_t max_batch, lstm_t **out);

/* One step for n users with bf16 state: x rows (I floats, row stride I) are
 * rounded to bf16; h16[b], c16[b] point at user b's H bf16 values, read and
 * overwritten with the roundings of the float32 results. Gate
 * pre-activations: b_ih + b_hh + (add_a[b] + add_b[b]) (add_* as in
 * lstm_step_batch_add) + W_bf16 [x_bf16, h] with products exact and summed in
 * float32 (kernels.h, kern_gemm_bf16); the pointwise part in float32 as in
 * lstm_step. Batch-invariant; allocation-free. */
void lstm_step_batch_bf16(lstm_t *cell, size_t n, const float *x, uint16_t *const *h16,
                          uint16_t *const *c16, const float *const *add_a,
                          const float *const *add_b);

/* The pointwise part of the cell, exported for training: given the gate
 * pre-activations pre[4H] (W_ih x + b_ih + W_hh h + b_hh, order i, f, g, o)
 * and c_prev[H], write c[H], h[H] and, when act != NULL, the activated gates
 * act[4H] = (sigmoid i, sigmoid f, tanh g, sigmoid o). c may alias c_prev. */
void lstm_pointwise(size_t H, const float *pre, const float *c_prev, float *c, float *h,
                    float *act);

#endif
