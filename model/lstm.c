/* The LSTM cell, forward only, PyTorch nn.LSTM layout (gates i, f, g, o).
 * A batch's gate pre-activations are one GEMM over the rows [x_b, h_b]
 * against [W_ih | W_hh] (concatenated and packed at construction), starting
 * from b_ih + b_hh; then the pointwise part per row. A bf16 cell
 * (lstm_new_bf16) holds the same weights rounded to bf16 and steps users
 * whose h, c are stored as bf16 (the serving cell, model/arch.h). */
#include "model/lstm.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "model/kernels.h"

struct lstm {
  size_t I, H, G, max_batch;
  kern_w_t w;   /* [W_ih | W_hh], 4H x (I + H), packed */
  kern_w_t wg;  /* the same packed by hidden block for kern_lstm_fused (H % 16 == 0) */
  float *bias;  /* b_ih + b_hh, 4H */
  float *xh;    /* scratch: max_batch rows of I + H */
  float *pre;   /* scratch: max_batch rows of w.Np (bf16 cell: of 4H) */
  /* bf16 cell only */
  kern_wb_t wb;  /* [W_ih | W_hh] rounded to bf16, packed in pairs */
  uint16_t *ab;  /* scratch: max_batch rows of 2 wb.Kp bf16 values [x, h, 0 pad] */
};

static int cell_new(size_t I, size_t H, const float *w_ih, const float *w_hh,
                    const float *b_ih, const float *b_hh, size_t max_batch, int bf16,
                    lstm_t **out) {
  *out = NULL;
  if (H == 0 || max_batch == 0) return IX_EINVAL;
  int rc = IX_ENOMEM;
  float *cat = NULL;
  lstm_t *cell = calloc(1, sizeof(*cell));
  if (!cell) goto err;
  cell->I = I;
  cell->H = H;
  cell->G = 4 * H;
  cell->max_batch = max_batch;
  size_t K = I + H;
  cat = malloc(cell->G * K * sizeof(float));
  cell->bias = malloc(cell->G * sizeof(float));
  if (!cat || !cell->bias) goto err;
  for (size_t j = 0; j < cell->G; j++) {
    if (I) memcpy(cat + j * K, w_ih + j * I, I * sizeof(float));
    memcpy(cat + j * K + I, w_hh + j * H, H * sizeof(float));
    cell->bias[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
  }
  if (bf16) {
    if ((rc = kern_wb_pack_gates(&cell->wb, K, H, cat, K)) < 0) goto err;
    rc = IX_ENOMEM;
    cell->ab = aligned_alloc(64, (max_batch * 2 * cell->wb.Kp * sizeof(uint16_t) + 63) / 64 * 64);
    cell->pre = malloc(max_batch * cell->G * sizeof(float));
    if (!cell->ab || !cell->pre) goto err;
    free(cat);
    *out = cell;
    return 0;
  }
  if ((rc = kern_w_pack(&cell->w, K, cell->G, cat, K)) < 0) goto err;
  if (H % 16 == 0 && (rc = kern_w_pack_gates(&cell->wg, K, H, cat, K)) < 0) goto err;
  rc = IX_ENOMEM;
  cell->xh = malloc(max_batch * K * sizeof(float));
  cell->pre = malloc(max_batch * cell->w.Np * sizeof(float));
  if (!cell->xh || !cell->pre) goto err;
  free(cat);
  *out = cell;
  return 0;
err:
  free(cat);
  lstm_destroy(cell);
  return rc;
}

int lstm_new(size_t I, size_t H, const float *w_ih, const float *w_hh, const float *b_ih,
             const float *b_hh, size_t max_batch, lstm_t **out) {
  return cell_new(I, H, w_ih, w_hh, b_ih, b_hh, max_batch, 0, out);
}

int lstm_new_bf16(size_t I, size_t H, const float *w_ih, const float *w_hh, const float *b_ih,
                  const float *b_hh, size_t max_batch, lstm_t **out) {
  return cell_new(I, H, w_ih, w_hh, b_ih, b_hh, max_batch, 1, out);
}

void lstm_destroy(lstm_t *cell) {
  if (!cell) return;
  kern_w_free(&cell->w);
  kern_w_free(&cell->wg);
  kern_wb_free(&cell->wb);
  free(cell->ab);
  free(cell->bias);
  free(cell->xh);
  free(cell->pre);
  free(cell);
}

/* One chunk of at most max_batch rows. */
/* pre[0..G) = bias + (a + a2), bias + a, or bias, as the fused kernels add
 * them (a2 only with a). */
static void init_pre(const lstm_t *cell, float *pre, const float *a, const float *a2) {
  if (a && a2) {
    for (size_t j = 0; j < cell->G; j++) pre[j] = cell->bias[j] + (a[j] + a2[j]);
  } else if (a) {
    for (size_t j = 0; j < cell->G; j++) pre[j] = cell->bias[j] + a[j];
  } else {
    memcpy(pre, cell->bias, cell->G * sizeof(float));
  }
}

static void step_chunk(lstm_t *cell, size_t n, const float *x, float *const *h,
                       float *const *c, const float *const *add_a,
                       const float *const *add_b) {
  const size_t I = cell->I, H = cell->H, K = I + H, Np = cell->w.Np;
  if (cell->wg.panels) {
    for (size_t b = 0; b < n; b++) {
      float *row = cell->xh + b * K;
      if (I) memcpy(row, x + b * I, I * sizeof(float));
      memcpy(row + I, h[b], H * sizeof(float));
    }
    if (kern_lstm_fused(&cell->wg, H, n, cell->xh, K, cell->bias, add_a, add_b, h, c) == 0)
      return;
  }
  for (size_t b = 0; b < n; b++) {
    float *row = cell->xh + b * K;
    if (I) memcpy(row, x + b * I, I * sizeof(float));
    memcpy(row + I, h[b], H * sizeof(float));
    float *pre = cell->pre + b * Np;
    init_pre(cell, pre, add_a ? add_a[b] : NULL, add_b ? add_b[b] : NULL);
    memset(pre + cell->G, 0, (Np - cell->G) * sizeof(float));
  }
  kern_gemm(&cell->w, n, cell->xh, K, cell->pre, Np);
  for (size_t b = 0; b < n; b++)
    kern_lstm_pointwise(H, cell->pre + b * Np, c[b], c[b], h[b], NULL);
}

static void lstm_step_batch_add(lstm_t *cell, size_t n, const float *x, float *const *h,
                         float *const *c, const float *const *add_a,
                         const float *const *add_b) {
  for (size_t b0 = 0; b0 < n; b0 += cell->max_batch) {
    size_t m = n - b0 < cell->max_batch ? n - b0 : cell->max_batch;
    step_chunk(cell, m, x + b0 * cell->I, h + b0, c + b0, add_a ? add_a + b0 : NULL,
               add_b ? add_b + b0 : NULL);
  }
}

/* One chunk of at most max_batch rows of the bf16 cell. */
static void step_chunk_bf16(lstm_t *cell, size_t n, const float *x, uint16_t *const *h16,
                            uint16_t *const *c16, const float *const *add_a,
                            const float *const *add_b) {
  const size_t I = cell->I, H = cell->H, G = cell->G, lda = 2 * cell->wb.Kp;
  for (size_t b = 0; b < n; b++) {
    uint16_t *row = cell->ab + b * lda;
    for (size_t i = 0; i < I; i++) row[i] = kern_bf16_from_f32(x[b * I + i]);
    memcpy(row + I, h16[b], H * sizeof(uint16_t));
    for (size_t k = I + H; k < lda; k++) row[k] = 0;
  }
  if (kern_lstm_bf16_fused(&cell->wb, n, cell->ab, lda, cell->bias, add_a, add_b, h16, c16) == 0)
    return;
  for (size_t b = 0; b < n; b++)
    init_pre(cell, cell->pre + b * G, add_a ? add_a[b] : NULL, add_b ? add_b[b] : NULL);
  kern_gemm_bf16(&cell->wb, n, cell->ab, lda, cell->pre, G);
  for (size_t b = 0; b < n; b++) kern_lstm_pointwise_bf16(H, cell->pre + b * G, c16[b], h16[b]);
}

void lstm_step_batch_bf16(lstm_t *cell, size_t n, const float *x, uint16_t *const *h16,
                          uint16_t *const *c16, const float *const *add_a,
                          const float *const *add_b) {
  for (size_t b0 = 0; b0 < n; b0 += cell->max_batch) {
    size_t m = n - b0 < cell->max_batch ? n - b0 : cell->max_batch;
    step_chunk_bf16(cell, m, x + b0 * cell->I, h16 + b0, c16 + b0, add_a ? add_a + b0 : NULL,
                    add_b ? add_b + b0 : NULL);
  }
}

void lstm_step_batch(lstm_t *cell, size_t n, const float *x, float *const *h,
                     float *const *c) {
  lstm_step_batch_add(cell, n, x, h, c, NULL, NULL);
}

void lstm_step(lstm_t *cell, const float *x, float *h, float *c) {
  step_chunk(cell, 1, x, &h, &c, NULL, NULL);
}

void lstm_pointwise(size_t H, const float *pre, const float *c_prev, float *c, float *h,
                    float *act) {
  kern_lstm_pointwise(H, pre, c_prev, c, h, act);
}

