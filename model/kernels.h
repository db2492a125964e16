/* Private compute kernels of model/: a batch-invariant small GEMM against
 * packed weights, and vectorised activations. Chosen once per process by CPU
 * (AVX-512F, AVX2+FMA, or portable C); IX_KERNEL=scalar|avx2|avx512 forces
 * one (tests compare them).
 *
 * Why not OpenBLAS sgemm here: its per-row results depend on the batch size
 * (small-matrix kernels, edge kernels; measured, see docs/PERFORMANCE.md), and
 * the daemon needs a user's state to come out bit-identical whatever wave it
 * was stepped in. kern_gemm computes every output element as the same chain
 * acc = C; acc = fma(w_k, a_k, acc) for k = 0..K-1, whatever n and whatever
 * row position, so it is batch-invariant by construction. */
#ifndef IX_MODEL_KERNELS_H
#define IX_MODEL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Weights W [N x K] (row-major, PyTorch's out x in) packed K-major in panels
 * of 64 output columns; N is padded to a multiple of 16 (Np). */
typedef struct {
  size_t K, N, Np;
  float *panels; /* Np * K floats, 64-byte aligned, owned */
} kern_w_t;

/* Pack W (row j = output j, ldw floats apart; column k of row j at W[j*ldw + k]).
 * Returns 0 or IX_ENOMEM. Free with kern_w_free (accepts a zeroed struct). */
int kern_w_pack(kern_w_t *w, size_t K, size_t N, const float *W, size_t ldw);
void kern_w_free(kern_w_t *w);

/* C[b][0..Np) += sum_k A[b][k] W[j][k], for b < n. A rows lda apart, C rows ldc
 * apart with ldc >= Np (columns N..Np receive garbage-free zeros-weights sums
 * and may be ignored). Batch-invariant (see above). */
void kern_gemm(const kern_w_t *w, size_t n, const float *A, size_t lda, float *C,
               size_t ldc);

/* Pack the LSTM weights W [4H x K] (gate rows i, f, g, o, ldw floats apart)
 * for kern_lstm_fused: panel hb holds the four gates of hidden units
 * 16hb..16hb+15. H must be a multiple of 16 (else IX_EINVAL); IX_ENOMEM. */
int kern_w_pack_gates(kern_w_t *w, size_t K, size_t H, const float *W, size_t ldw);

/* One LSTM step for n rows, GEMM and pointwise fused: pre = bias +
 * (add_a[b] + add_b[b]) + W [A_b] (add_b may be NULL: bias + add_a[b]; both
 * NULL: bias; rows of 4H floats, read in place, so the caller need not
 * gather them); then c[b] = f c[b] + i g, h[b] = o tanh(c[b])
 * on H floats each. A rows (lda apart) must not alias h or c. w from
 * kern_w_pack_gates. Returns 0, or IX_EINVAL when the kernel set has no fused
 * path (only avx512 has one): the caller then uses kern_gemm +
 * kern_lstm_pointwise, which give the same bits. */
int kern_lstm_fused(const kern_w_t *w, size_t H, size_t n, const float *A, size_t lda,
                    const float *bias, const float *const *add_a, const float *const *add_b,
                    float *const *h, float *const *c);

/* y = f(x) elementwise; y may equal x. */
void kern_exp(size_t n, const float *x, float *y);
void kern_sigmoid(size_t n, const float *x, float *y);
void kern_tanh(size_t n, const float *x, float *y);

/* LSTM pointwise for one row: pre[4H] (i, f, g, o), c_prev[H] -> c[H], h[H];
 * act[4H] gets the activated gates when not NULL. c may alias c_prev. */
void kern_lstm_pointwise(size_t H, const float *pre, const float *c_prev, float *c, float *h,
                         float *act);

/* In-place softmax of x[n]; returns nothing; deterministic for a given n. */
void kern_softmax(size_t n, float *x);

/* kern_softmax, then x[i] *= g: the same bits as the two steps, in fewer
 * passes. Returns x[0] as it was after the softmax, before the scaling. */
float kern_softmax_gate(size_t n, float *x, float g);

/* Indices i in [0, n) with x[i] >= thr, ascending, written to idx (room for
 * n + 16 entries: whole vectors are stored); returns how many. */
size_t kern_indices_ge(size_t n, const float *x, float thr, uint32_t *idx);

/* Switch the kernel set ("avx512", "avx2", "scalar") for tests and benches;
 * returns 0, or IX_EINVAL when this CPU cannot run it. Not thread-safe:
 * call before any model work. */
int kern_select(const char *name);

/* Name of the kernel set in use: "avx512", "avx2" or "scalar". */
const char *kern_name(void);

#endif
