/* Private compute kernels of model/: a batch-invariant small GEMM against
 * packed weights, and vectorised activations. Chosen once per process by CPU
 * (the AVX-512 feature set of kern_cpu_avx512(), AVX2+FMA, or portable C);
 * this is model/'s only CPU dispatch (head.c and profile.c ask kern_avx512()).
 * IX_KERNEL=scalar|avx2|avx512 forces
 * one (tests compare them); IX_KERNEL=avx512-emul is avx512 without the
 * AVX512_BF16 instructions (same bits; what a CPU without them runs).
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

/* ---- bf16 LSTM step (the serving cell: model/arch.h stores h, c as bf16) ----
 * Weights W [4H x K] (gate rows i, f, g, o) rounded to bfloat16 (nearest even,
 * kern_bf16_from_f32), K padded to an even 2Kp, packed in pairs (column k
 * even in the low 16 bits of a 32-bit word, k + 1 in the high 16 bits) and,
 * as kern_w_pack_gates, one 64-word panel row per 16 hidden units (gates i,
 * f, g, o of units 16hb..16hb+15; units >= H are zero). A rows are 2Kp bf16
 * values. Every output is the chain acc = C; for each pair p: acc =
 * fma(w[2p+1], a[2p+1], acc); acc = fma(w[2p], a[2p], acc): the order of
 * AVX512_BF16's vdpbf16ps (measured bit-exact on this CPU), whose products of
 * two bf16 values are exact in float32, so the scalar, AVX2 and AVX-512F
 * fallbacks give the same bits as vdpbf16ps (except for products or sums
 * below 2^-126, which vdpbf16ps flushes to zero; h, x and weights are never
 * that small here). Batch-invariant like kern_gemm. */
typedef struct {
  size_t K, Kp, H, Hp; /* Kp pairs; Hp = H rounded up to 16 */
  uint32_t *panels;    /* (Hp / 16) panels of Kp x 64 words, 64-byte aligned, owned */
} kern_wb_t;

/* float32 -> bf16, round to nearest even, subnormals to signed zero, NaN
 * quiet (as vcvtneps2bf16); bf16 -> float32 is exact. */
static inline uint16_t kern_bf16_from_f32(float v) {
  union { float f; uint32_t u; } x = {v};
  if ((x.u & 0x7f800000u) == 0) return (uint16_t)((x.u >> 16) & 0x8000u);
  if ((x.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x.u >> 16) | 0x0040u);
  return (uint16_t)((x.u + 0x7fffu + ((x.u >> 16) & 1u)) >> 16);
}
static inline float kern_bf16_to_f32(uint16_t b) {
  union { uint32_t u; float f; } x = {(uint32_t)b << 16};
  return x.f;
}

/* Pack W (row j at W[j*ldw], K columns) as above. 0, IX_EINVAL (H or K 0)
 * or IX_ENOMEM. Free with kern_wb_free (accepts a zeroed struct). */
int kern_wb_pack_gates(kern_wb_t *w, size_t K, size_t H, const float *W, size_t ldw);
void kern_wb_free(kern_wb_t *w);

/* C[b][v*H + u] += (W_bf16 A_b) for gate v, unit u < H, b < n (C rows ldc
 * apart, natural gate order; units >= H are not written). A rows lda
 * uint16 apart (lda >= 2Kp). Same bits on every kernel set. */
void kern_gemm_bf16(const kern_wb_t *w, size_t n, const uint16_t *A, size_t lda, float *C,
                    size_t ldc);

/* The fused bf16 step for n rows: pre = bias + (add_a[b] + add_b[b]) + W A_b
 * (add rows as kern_lstm_fused; bias may not be NULL), c = f c + i g, h = o
 * tanh(c) in float32 from c widened from c16[b], and h16[b], c16[b] (H
 * values each) get the bf16 roundings. A must not alias h16/c16. Returns 0,
 * or IX_EINVAL when the kernel set has no fused path (avx512 has one when
 * H % 16 == 0): the caller then uses kern_gemm_bf16 +
 * kern_lstm_pointwise_bf16, which give the same bits. */
int kern_lstm_bf16_fused(const kern_wb_t *w, size_t n, const uint16_t *A, size_t lda,
                         const float *bias, const float *const *add_a,
                         const float *const *add_b, uint16_t *const *h16,
                         uint16_t *const *c16);

/* The bf16 cell's pointwise part for one row: pre[4H] (i, f, g, o, H apart),
 * c16[H] (c_prev, overwritten with c) and h16[H] (written), as bf16. avx512:
 * the fused path's activations (a rational tanh, sigmoid from it; same bits
 * as kern_lstm_bf16_fused); other sets: kern_lstm_pointwise, then rounding. */
void kern_lstm_pointwise_bf16(size_t H, const float *pre, uint16_t *c16, uint16_t *h16);

/* ---- bf16 GEMM, plain layout (the head's vocabulary logits) ----
 * Weights W [N x K] rounded to bf16 (kern_bf16_from_f32), K padded to an even
 * 2Kp, N to Np (a multiple of 16), packed in panels of 64 output columns as
 * kern_w_pack (the last panel may be narrower), each word a pair (column k
 * even low, k + 1 high; padding 0). Every output is the chain of
 * kern_gemm_bf16 (acc = C; per pair, high element first, each product exact
 * in float32), so vdpbf16ps and the emulations (IX_KERNEL=avx512-emul, avx2,
 * scalar) give the same bits, with the same denormal caveat as above.
 * Batch-invariant like kern_gemm. */
typedef struct {
  size_t K, Kp, N, Np;
  uint32_t *panels; /* Np x Kp words, 64-byte aligned, owned */
} kern_wbp_t;

/* Pack W (row j at W[j*ldw], K columns). 0, IX_EINVAL (N or K 0) or
 * IX_ENOMEM. Free with kern_wbp_free (accepts a zeroed struct). */
int kern_wbp_pack(kern_wbp_t *w, size_t K, size_t N, const float *W, size_t ldw);
void kern_wbp_free(kern_wbp_t *w);

/* C[b][0..Np) += W_bf16 A_b for b < n: A rows (bf16, lda uint16 apart, lda
 * >= 2Kp; a pad element beyond K must be 0), C rows ldc >= Np floats apart
 * (columns N..Np get the zero weights' sums). */
void kern_gemm_bf16p(const kern_wbp_t *w, size_t n, const uint16_t *A, size_t lda, float *C,
                     size_t ldc);

/* 1 when this CPU has the feature set every AVX-512 path of model/ needs
 * (AVX-512 F/DQ/BW/VL, AVX2, FMA, POPCNT), whatever IX_KERNEL says. For
 * probes that check a vector routine's bits once. */
int kern_cpu_avx512(void);

/* 1 when the chosen kernel set (CPU, IX_KERNEL, kern_select) is avx512 or
 * avx512-emul: the head's and the profile's AVX-512 paths run only then, so
 * IX_KERNEL governs all of model/ (they give the same bits either way). */
int kern_avx512(void);

/* 1 when the avx512 set uses the vdpbf16ps/vcvtneps2bf16 instructions
 * (AVX512_BF16), 0 when it emulates them (same bits). */
int kern_uses_bf16_insn(void);

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

/* Switch the kernel set ("avx512", "avx2", "scalar"; "avx512-emul" is avx512
 * without the AVX512_BF16 instructions, for tests) for tests and benches;
 * returns 0, or IX_EINVAL when this CPU cannot run it. Not thread-safe:
 * call before any model work. */
int kern_select(const char *name);

/* Name of the kernel set in use: "avx512", "avx2" or "scalar". */
const char *kern_name(void);

#endif
