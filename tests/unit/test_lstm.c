/* LSTM cell: gate order and values by hand, batch == looped single steps
 * (bit-identical, any batch composition), chunking, activation accuracy on
 * every kernel set this CPU can run. The bf16 cell (the serving cell): its
 * GEMM gives the same bits on every kernel set (vdpbf16ps and its
 * emulations; the head's kern_gemm_bf16p too), fused == GEMM + pointwise
 * bitwise, batch-invariant, and every
 * kernel's stored h, c are the bf16 rounding of a double-precision step
 * within 1e-5. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"
#include "model/lstm.h"

#include "kernel_sets.h"

static const char *KSETS[] = {"avx512", "avx2", "scalar"};
/* "avx512-emul": avx512 without the AVX512_BF16 instructions (same bits) */
static const char *KSETS_BF[] = {"avx512", "avx512-emul", "avx2", "scalar"};

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* Reference pre-activations of n rows: bias, plus add (with_add >= 1) and
 * add2 (with_add == 2) summed first, as the fused kernels add them. */
static void ref_pre(size_t n, size_t G, const float *bias, const float *add, const float *add2,
                    int with_add, float *pre) {
  for (size_t b = 0; b < n; b++)
    for (size_t j = 0; j < G; j++)
      pre[b * G + j] = with_add == 2 ? bias[j] + (add[b * G + j] + add2[b * G + j])
                       : with_add ? bias[j] + add[b * G + j] : bias[j];
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* I = 1, H = 1. Only the biases differ per gate, so a wrong gate order
 * (e.g. i, f, o, g) gives a different h and c. */
static void test_lstm_gate_order_by_hand(void **st) {
  (void)st;
  for (size_t ks = 0; ks < 3; ks++) {
    if (!kset_select(KSETS[ks])) continue;
    float w_ih[4] = {0.5f, -0.25f, 1.0f, 0.75f}; /* i f g o */
    float w_hh[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    float b_ih[4] = {0.3f, 1.5f, -0.2f, 0.1f};
    float b_hh[4] = {-0.1f, 0.5f, 0.4f, 0.2f};
    lstm_t *cell;
    assert_int_equal(lstm_new(1, 1, w_ih, w_hh, b_ih, b_hh, 4, &cell), 0);
    float x = 2.0f, h = 0.5f, c = -1.0f;
    lstm_step(cell, &x, &h, &c);
    /* by hand: pre = w_ih*x + b_ih + w_hh*h + b_hh */
    double pi = 0.5 * 2 + 0.3 + 0.1 * 0.5 - 0.1;   /* 1.25 */
    double pf = -0.25 * 2 + 1.5 + 0.2 * 0.5 + 0.5; /* 1.6 */
    double pg = 1.0 * 2 - 0.2 - 0.3 * 0.5 + 0.4;   /* 2.05 */
    double po = 0.75 * 2 + 0.1 + 0.4 * 0.5 + 0.2;  /* 2.0 */
    double c_ref = sigm(pf) * -1.0 + sigm(pi) * tanh(pg);
    double h_ref = sigm(po) * tanh(c_ref);
    /* the same numbers written out: sigm(1.6) = 0.832018, sigm(1.25) = 0.777300,
     * tanh(2.05) = 0.967395, sigm(2.0) = 0.880797 */
    assert_true(fabs(c_ref - (-0.832018 + 0.777300 * 0.967395)) < 2e-6);
    assert_true(fabs(c - c_ref) < 1e-6);
    assert_true(fabs(h - h_ref) < 1e-6);
    assert_true(fabs(h - 0.880797 * tanh(-0.080062)) < 2e-6);
    lstm_destroy(cell);
  }
  KSET_END();
}

/* Zero weights, biases saturate i, o and close f: c = tanh(b_g), h = tanh(c).
 * With any other gate order the result differs. */
static void test_lstm_gate_order_saturated(void **st) {
  (void)st;
  float w_ih[4 * 2 * 2] = {0}, w_hh[4 * 2 * 2] = {0}; /* [4H x I], [4H x H] */
  float b_ih[8] = {30, 30, -30, -30, 0.5f, -0.7f, 30, 30};
  float b_hh[8] = {0};
  lstm_t *cell;
  assert_int_equal(lstm_new(2, 2, w_ih, w_hh, b_ih, b_hh, 1, &cell), 0);
  float x[2] = {1, 1}, h[2] = {0.3f, 0.3f}, c[2] = {5, 5};
  lstm_step(cell, x, h, c);
  assert_true(fabsf(c[0] - 0.46211716f) < 1e-6f); /* i=1, f=0: c = tanh(0.5) */
  assert_true(fabsf(c[1] - -0.60436778f) < 1e-6f);
  assert_true(fabsf(h[0] - 0.43180818f) < 1e-6f);
  assert_true(fabsf(h[1] - -0.54015029f) < 1e-6f);
  lstm_destroy(cell);
}

static void random_cell(size_t I, size_t H, size_t max_batch, uint64_t seed, lstm_t **cell) {
  size_t G = 4 * H;
  float *w_ih = malloc(G * I * sizeof(float)), *w_hh = malloc(G * H * sizeof(float));
  float *b_ih = malloc(G * sizeof(float)), *b_hh = malloc(G * sizeof(float));
  for (size_t i = 0; i < G * I; i++) w_ih[i] = 0.3f * frand(&seed);
  for (size_t i = 0; i < G * H; i++) w_hh[i] = 0.3f * frand(&seed);
  for (size_t i = 0; i < G; i++) b_ih[i] = 0.2f * frand(&seed), b_hh[i] = 0.2f * frand(&seed);
  assert_int_equal(lstm_new(I, H, w_ih, w_hh, b_ih, b_hh, max_batch, cell), 0);
  free(w_ih), free(w_hh), free(b_ih), free(b_hh);
}

/* For each kernel set: n users stepped together (in chunks of max_batch 16)
 * give bit-identical h and c to each stepped alone, and to a permuted batch. */
static void test_lstm_batch_equals_single_steps_bitwise(void **st) {
  (void)st;
  const size_t I = 48, H = 64, N = 70;
  for (size_t ks = 0; ks < 3; ks++) {
    if (!kset_select(KSETS[ks])) continue;
    lstm_t *cell;
    random_cell(I, H, 16, 7, &cell);
    uint64_t seed = 99;
    float *x = malloc(N * I * sizeof(float)), *hb = malloc(N * H * 4), *cb = malloc(N * H * 4);
    float *hs = malloc(N * H * 4), *cs = malloc(N * H * 4), *hp = malloc(N * H * 4),
          *cpm = malloc(N * H * 4), *xp = malloc(N * I * 4);
    for (size_t i = 0; i < N * I; i++) x[i] = frand(&seed);
    for (size_t i = 0; i < N * H; i++) hb[i] = hs[i] = 0.5f * frand(&seed), cb[i] = cs[i] = frand(&seed);
    float *hptr[70], *cptr[70], *hpp[70], *cpp[70];
    for (size_t b = 0; b < N; b++) hptr[b] = hb + b * H, cptr[b] = cb + b * H;
    size_t perm[70];
    for (size_t b = 0; b < N; b++) perm[b] = (b * 37 + 11) % N;
    for (size_t b = 0; b < N; b++) {
      memcpy(xp + b * I, x + perm[b] * I, I * 4);
      memcpy(hp + b * H, hs + perm[b] * H, H * 4);
      memcpy(cpm + b * H, cs + perm[b] * H, H * 4);
      hpp[b] = hp + b * H, cpp[b] = cpm + b * H;
    }
    for (int step = 0; step < 3; step++) {
      lstm_step_batch(cell, N, x, hptr, cptr);
      lstm_step_batch(cell, N, xp, hpp, cpp);
      for (size_t b = 0; b < N; b++) lstm_step(cell, x + b * I, hs + b * H, cs + b * H);
    }
    assert_memory_equal(hb, hs, N * H * 4);
    assert_memory_equal(cb, cs, N * H * 4);
    for (size_t b = 0; b < N; b++) {
      assert_memory_equal(hp + b * H, hs + perm[b] * H, H * 4);
      assert_memory_equal(cpm + b * H, cs + perm[b] * H, H * 4);
    }
    /* and against a double-precision reference, loosely (sanity of the GEMM) */
    free(x), free(hb), free(cb), free(hs), free(cs), free(hp), free(cpm), free(xp);
    lstm_destroy(cell);
  }
  KSET_END();
}

/* The fused GEMM + pointwise step (avx512, H % 16 == 0) gives the same bits
 * as kern_gemm then kern_lstm_pointwise, with none, one or two added rows, for
 * every remainder of the 6-row tile; and the kernel sets without a fused path
 * say so. */
static void test_lstm_fused_equals_gemm_then_pointwise(void **st) {
  (void)st;
  const size_t Hs[] = {16, 64}, ns[] = {1, 5, 6, 13, 40};
  for (size_t ks = 0; ks < 3; ks++) {
    if (!kset_select(KSETS[ks])) continue;
    int fused_seen = 0;
    for (size_t hi = 0; hi < 2; hi++)
      for (size_t ni = 0; ni < 5; ni++)
        for (int with_add = 0; with_add < 3; with_add++) { /* none, a, a + b */
          const size_t H = Hs[hi], G = 4 * H, K = 7 + H, n = ns[ni];
          uint64_t seed = 11 + hi * 100 + ni * 10 + (uint64_t)with_add;
          float *W = malloc(G * K * 4), *bias = malloc(G * 4), *add = malloc(n * G * 4),
                *add2 = malloc(n * G * 4);
          float *A = malloc(n * K * 4), *h0 = malloc(n * H * 4), *c0 = malloc(n * H * 4);
          float *h1 = malloc(n * H * 4), *c1 = malloc(n * H * 4), *pre = malloc(n * G * 4);
          for (size_t i = 0; i < G * K; i++) W[i] = 0.3f * frand(&seed);
          for (size_t i = 0; i < G; i++) bias[i] = 0.2f * frand(&seed);
          for (size_t i = 0; i < n * G; i++) add[i] = frand(&seed), add2[i] = frand(&seed);
          for (size_t i = 0; i < n * K; i++) A[i] = frand(&seed);
          for (size_t i = 0; i < n * H; i++) c0[i] = c1[i] = 2.0f * frand(&seed);
          kern_w_t w, wg;
          assert_int_equal(kern_w_pack(&w, K, G, W, K), 0);
          assert_int_equal(kern_w_pack_gates(&wg, K, H, W, K), 0);
          assert_int_equal(w.Np, G);
          ref_pre(n, G, bias, add, add2, with_add, pre);
          kern_gemm(&w, n, A, K, pre, G);
          for (size_t b = 0; b < n; b++)
            kern_lstm_pointwise(H, pre + b * G, c0 + b * H, c0 + b * H, h0 + b * H, NULL);
          float *hp[40], *cp[40];
          for (size_t b = 0; b < n; b++) hp[b] = h1 + b * H, cp[b] = c1 + b * H;
          const float *ap[40], *bp[40];
          for (size_t b = 0; b < n; b++) ap[b] = add + b * G, bp[b] = add2 + b * G;
          int rc = kern_lstm_fused(&wg, H, n, A, K, bias, with_add ? ap : NULL,
                                   with_add == 2 ? bp : NULL, hp, cp);
          if (strcmp(KSETS[ks], "avx512") == 0) {
            assert_int_equal(rc, 0);
            fused_seen = 1;
            assert_memory_equal(h0, h1, n * H * 4);
            assert_memory_equal(c0, c1, n * H * 4);
          } else {
            assert_int_not_equal(rc, 0);
          }
          kern_w_free(&w), kern_w_free(&wg);
          free(W), free(bias), free(add), free(add2), free(A), free(h0), free(c0), free(h1), free(c1), free(pre);
        }
    if (strcmp(KSETS[ks], "avx512") == 0) assert_true(fused_seen);
  }
  kern_w_t bad;
  float w1[4 * 8 * 3] = {0};
  assert_int_not_equal(kern_w_pack_gates(&bad, 3, 8, w1, 3), 0); /* H % 16 != 0 */
  KSET_END();
}

/* GEMM vs double reference for odd shapes (remainder rows and panels). */
static void test_kern_gemm_matches_reference(void **st) {
  (void)st;
  const size_t shapes[][3] = {{1, 7, 16}, {5, 71, 256}, {13, 64, 1000}, {7, 3, 40}, {6, 112, 256}};
  for (size_t ks = 0; ks < 3; ks++) {
    if (!kset_select(KSETS[ks])) continue;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
      size_t n = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
      uint64_t seed = 5 + si;
      float *W = malloc(N * K * 4), *A = malloc(n * K * 4);
      for (size_t i = 0; i < N * K; i++) W[i] = frand(&seed);
      for (size_t i = 0; i < n * K; i++) A[i] = frand(&seed);
      kern_w_t w;
      assert_int_equal(kern_w_pack(&w, K, N, W, K), 0);
      float *C = malloc(n * w.Np * 4);
      for (size_t i = 0; i < n * w.Np; i++) C[i] = 0.25f;
      kern_gemm(&w, n, A, K, C, w.Np);
      for (size_t b = 0; b < n; b++)
        for (size_t j = 0; j < N; j++) {
          double s = 0.25;
          for (size_t k = 0; k < K; k++) s += (double)A[b * K + k] * W[j * K + k];
          assert_true(fabs(C[b * w.Np + j] - s) < 1e-5 * (1.0 + sqrt((double)K)));
        }
      kern_w_free(&w);
      free(W), free(A), free(C);
    }
  }
  KSET_END();
}

static void test_activations_accurate_on_every_kernel(void **st) {
  (void)st;
  enum { N = 20001 };
  float *x = malloc(N * 4), *y = malloc(N * 4);
  for (size_t ks = 0; ks < 3; ks++) {
    if (!kset_select(KSETS[ks])) continue;
    for (size_t i = 0; i < N; i++) x[i] = -20.0f + 40.0f * (float)i / (N - 1);
    x[N / 2] = 0.0f;
    x[17] = 1e-5f;
    x[18] = -3e-4f;
    double worst_s = 0, worst_t = 0, worst_e = 0;
    kern_sigmoid(N, x, y);
    for (size_t i = 0; i < N; i++) {
      double r = 1.0 / (1.0 + exp(-(double)x[i]));
      worst_s = fmax(worst_s, fabs(y[i] - r) / r);
    }
    kern_tanh(N, x, y);
    for (size_t i = 0; i < N; i++) {
      double r = tanh((double)x[i]);
      if (r != 0.0) worst_t = fmax(worst_t, fabs(y[i] - r) / fabs(r));
      else assert_true(y[i] == 0.0f);
    }
    kern_exp(N, x, y);
    for (size_t i = 0; i < N; i++) {
      double r = exp((double)x[i]);
      worst_e = fmax(worst_e, fabs(y[i] - r) / r);
    }
    print_message("kernel %s: max rel err sigmoid %.2e tanh %.2e exp %.2e\n", KSETS[ks], worst_s,
                  worst_t, worst_e);
    assert_true(worst_s < 1e-6);
    assert_true(worst_t < 1e-6);
    assert_true(worst_e < 1e-6);
  }
  free(x), free(y);
  KSET_END();
}

static void test_lstm_pointwise_reports_activated_gates(void **st) {
  (void)st;
  const size_t H = 20;
  float pre[80], c_prev[20], c[20], h[20], act[80];
  uint64_t seed = 3;
  for (size_t i = 0; i < 80; i++) pre[i] = 3.0f * frand(&seed);
  for (size_t i = 0; i < H; i++) c_prev[i] = frand(&seed);
  lstm_pointwise(H, pre, c_prev, c, h, act);
  for (size_t j = 0; j < H; j++) {
    assert_true(fabs(act[j] - sigm(pre[j])) < 1e-6);
    assert_true(fabs(act[H + j] - sigm(pre[H + j])) < 1e-6);
    assert_true(fabs(act[2 * H + j] - tanh(pre[2 * H + j])) < 1e-6);
    assert_true(fabs(act[3 * H + j] - sigm(pre[3 * H + j])) < 1e-6);
    double cr = sigm(pre[H + j]) * c_prev[j] + sigm(pre[j]) * tanh(pre[2 * H + j]);
    assert_true(fabs(c[j] - cr) < 2e-6);
    assert_true(fabs(h[j] - sigm(pre[3 * H + j]) * tanh(cr)) < 2e-6);
  }
}

/* bf16 inputs: random floats rounded to bf16 */
static void rand_bf16(uint64_t *seed, size_t n, float scale, uint16_t *out) {
  for (size_t i = 0; i < n; i++) out[i] = kern_bf16_from_f32(scale * frand(seed));
}

/* got[b][j] (row stride ldc, j < cols), computed from C[b][j] = 0.125 *
 * ((b * ldc + j) % 7) plus row j < N of W (N x K floats, rounded to bf16)
 * times row b of A (bf16, stride lda), is within float32 rounding of the
 * double sum of the exact products; columns j >= N hold the start value. */
static void assert_exact_products(const float *got, size_t ldc, size_t n, size_t cols, size_t N,
                                  size_t K, const float *W, const uint16_t *A, size_t lda) {
  for (size_t b = 0; b < n; b++)
    for (size_t j = 0; j < cols; j++) {
      double sum = 0.125 * (double)((b * ldc + j) % 7), mag = fabs(sum);
      for (size_t k = 0; j < N && k < K; k++) {
        double p = (double)kern_bf16_to_f32(kern_bf16_from_f32(W[j * K + k])) *
                   kern_bf16_to_f32(A[b * lda + k]);
        sum += p, mag += fabs(p);
      }
      assert_true(fabs(got[b * ldc + j] - sum) <= 1e-6 * mag);
    }
}

/* kern_gemm_bf16: the same bits on every kernel set, for odd K (padding) and
 * H not a multiple of 16; and within float32 rounding of a double sum of the
 * exact products (so it computes what it should). */
static void test_gemm_bf16_same_bits_on_every_kernel(void **st) {
  (void)st;
  const size_t shapes[][3] = {{1, 71, 64}, {13, 71, 64}, {7, 9, 24}, {6, 112, 16}, {3, 5, 8}};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const size_t n = shapes[si][0], K = shapes[si][1], H = shapes[si][2], G = 4 * H;
    uint64_t seed = 77 + si;
    float *W = malloc(G * K * 4), *ref = malloc(n * G * 4), *C = malloc(n * G * 4);
    for (size_t i = 0; i < G * K; i++) W[i] = 0.3f * frand(&seed);
    kern_wb_t w;
    assert_int_equal(kern_wb_pack_gates(&w, K, H, W, K), 0);
    const size_t lda = 2 * w.Kp;
    uint16_t *A = calloc(n * lda, 2);
    for (size_t b = 0; b < n; b++) rand_bf16(&seed, K, 1.0f, A + b * lda);
    int first = 1, sets = 0;
    for (size_t ks = 0; ks < 4; ks++) {
      if (!kset_select(KSETS_BF[ks])) continue;
      sets++;
      for (size_t i = 0; i < n * G; i++) C[i] = 0.125f * (float)(i % 7);
      kern_gemm_bf16(&w, n, A, lda, C, G);
      if (first) memcpy(ref, C, n * G * 4), first = 0;
      else assert_memory_equal(ref, C, n * G * 4);
    }
    assert_true(sets >= 2); /* at least scalar and one vector set */
    assert_exact_products(ref, G, n, G, G, K, W, A, lda);
    kern_wb_free(&w);
    free(W), free(ref), free(C), free(A);
  }
  kern_wb_t bad;
  float w1[4] = {0};
  assert_int_not_equal(kern_wb_pack_gates(&bad, 1, 0, w1, 1), 0);
  KSET_END();
}

/* kern_gemm_bf16p (the head's logits): the same bits on every kernel set,
 * vdpbf16ps included where the CPU has it, for every panel width (N % 64 of
 * 0, 16, 32, 48 and N not a multiple of 16), odd K (padding), every
 * remainder of the 6-row tile; a row's result does not depend on the batch
 * it is in; and within float32 rounding of a double sum of the exact
 * products. */
static void test_gemm_bf16p_same_bits_on_every_kernel(void **st) {
  (void)st;
  const size_t shapes[][3] = {{13, 64, 1000}, {1, 64, 1000}, {6, 64, 1024}, {11, 9, 40},
                              {5, 71, 97},    {17, 2, 16},   {3, 1, 130}};
  int saw_insn = 0;
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const size_t n = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
    uint64_t seed = 91 + si;
    float *W = malloc(N * K * 4);
    for (size_t i = 0; i < N * K; i++) W[i] = 0.3f * frand(&seed);
    kern_wbp_t w;
    assert_int_equal(kern_wbp_pack(&w, K, N, W, K), 0);
    assert_int_equal(w.Np, (N + 15) / 16 * 16);
    const size_t lda = 2 * w.Kp, ldc = w.Np + 3;
    uint16_t *A = calloc(n * lda, 2);
    float *ref = malloc(n * ldc * 4), *C = malloc(n * ldc * 4);
    for (size_t b = 0; b < n; b++) rand_bf16(&seed, K, 1.0f, A + b * lda);
    int first = 1, sets = 0;
    for (size_t ks = 0; ks < 4; ks++) {
      if (!kset_select(KSETS_BF[ks])) continue;
      sets++;
      saw_insn |= kern_uses_bf16_insn();
      for (size_t i = 0; i < n * ldc; i++) C[i] = 0.125f * (float)(i % 7);
      kern_gemm_bf16p(&w, n, A, lda, C, ldc);
      if (first) memcpy(ref, C, n * ldc * 4), first = 0;
      else assert_memory_equal(ref, C, n * ldc * 4);
      /* each row alone, from the same start: the same bits */
      for (size_t b = 0; b < n; b++) {
        float row[1100];
        for (size_t j = 0; j < w.Np; j++) row[j] = 0.125f * (float)((b * ldc + j) % 7);
        kern_gemm_bf16p(&w, 1, A + b * lda, lda, row, w.Np);
        assert_memory_equal(row, ref + b * ldc, w.Np * 4);
      }
    }
    assert_true(sets >= 2); /* at least scalar and one vector set */
    assert_exact_products(ref, ldc, n, w.Np, N, K, W, A, lda);
    kern_wbp_free(&w);
    free(W), free(ref), free(C), free(A);
  }
  /* vdpbf16ps itself was compared where this CPU has it */
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) assert_true(saw_insn);
  kern_wbp_t bad;
  float w1[4] = {0};
  assert_int_not_equal(kern_wbp_pack(&bad, 1, 0, w1, 1), 0);
  assert_int_not_equal(kern_wbp_pack(&bad, 0, 4, w1, 1), 0);
  kern_wbp_free(&bad);
  KSET_END();
}

/* The fused bf16 step (avx512, H % 16 == 0, with and without the BF16
 * instructions) gives the same bits as kern_gemm_bf16 then
 * kern_lstm_pointwise_bf16, with none, one or two added rows, for every
 * remainder of the 6-row tile; vdpbf16ps and its emulation agree bitwise. */
static void test_lstm_bf16_fused_equals_gemm_then_pointwise(void **st) {
  (void)st;
  const size_t Hs[] = {16, 64}, ns[] = {1, 5, 6, 13, 40};
  for (size_t hi = 0; hi < 2; hi++)
    for (size_t ni = 0; ni < 5; ni++)
      for (int with_add = 0; with_add < 3; with_add++) {
        const size_t H = Hs[hi], G = 4 * H, K = 7 + H, n = ns[ni];
        uint64_t seed = 31 + hi * 100 + ni * 10 + (uint64_t)with_add;
        float *W = malloc(G * K * 4), *bias = malloc(G * 4), *add = malloc(n * G * 4),
              *add2 = malloc(n * G * 4), *pre = malloc(n * G * 4);
        for (size_t i = 0; i < G * K; i++) W[i] = 0.3f * frand(&seed);
        for (size_t i = 0; i < G; i++) bias[i] = 0.2f * frand(&seed);
        for (size_t i = 0; i < n * G; i++) add[i] = frand(&seed), add2[i] = frand(&seed);
        kern_wb_t w;
        assert_int_equal(kern_wb_pack_gates(&w, K, H, W, K), 0);
        const size_t lda = 2 * w.Kp;
        uint16_t *A = calloc(n * lda, 2), *hc0 = malloc(n * 2 * H * 2), *hc[2];
        for (size_t b = 0; b < n; b++) rand_bf16(&seed, K, 1.0f, A + b * lda);
        rand_bf16(&seed, n * 2 * H, 2.0f, hc0);
        const float *ap[40], *bp[40];
        for (size_t b = 0; b < n; b++) ap[b] = add + b * G, bp[b] = add2 + b * G;
        int fused = 0;
        for (int v = 0; v < 2; v++) {
          if (!kset_select(v ? "avx512-emul" : "avx512")) continue;
          /* reference: GEMM then pointwise */
          uint16_t *r = malloc(n * 2 * H * 2);
          memcpy(r, hc0, n * 2 * H * 2);
          ref_pre(n, G, bias, add, add2, with_add, pre);
          kern_gemm_bf16(&w, n, A, lda, pre, G);
          for (size_t b = 0; b < n; b++)
            kern_lstm_pointwise_bf16(H, pre + b * G, r + b * 2 * H + H, r + b * 2 * H);
          hc[v] = malloc(n * 2 * H * 2);
          memcpy(hc[v], hc0, n * 2 * H * 2);
          uint16_t *hp[40], *cp[40];
          for (size_t b = 0; b < n; b++) hp[b] = hc[v] + b * 2 * H, cp[b] = hp[b] + H;
          assert_int_equal(kern_lstm_bf16_fused(&w, n, A, lda, bias, with_add ? ap : NULL,
                                                with_add == 2 ? bp : NULL, hp, cp), 0);
          assert_memory_equal(r, hc[v], n * 2 * H * 2);
          free(r);
          fused++;
        }
        if (fused == 2) assert_memory_equal(hc[0], hc[1], n * 2 * H * 2);
        for (int v = 0; v < fused; v++) free(hc[v]);
        if (kern_select("avx2") == 0)
          assert_int_not_equal(kern_lstm_bf16_fused(&w, n, A, lda, bias, NULL, NULL, NULL, NULL), 0);
        kern_wb_free(&w);
        free(W), free(bias), free(add), free(add2), free(pre), free(A), free(hc0);
      }
  KSET_END();
}

/* Distance from t to the reals that round (nearest even) to bf16 b. */
static double bf16_gap(double t, uint16_t b) {
  double v = kern_bf16_to_f32(b);
  double a = kern_bf16_to_f32((uint16_t)(b + 1)), c = kern_bf16_to_f32((uint16_t)(b - 1));
  double lo = (v + fmin(a, c)) / 2, hi = (v + fmax(a, c)) / 2;
  if ((b & 0x7fffu) == 0) lo = -1e-38, hi = 1e-38;
  return t < lo ? lo - t : t > hi ? t - hi : 0.0;
}

/* lstm_step_batch_bf16 on every kernel set: a batch equals one-at-a-time
 * steps and a shuffled batch bitwise (batch invariance), over chunks; each
 * stored h, c is the bf16 rounding of a double-precision step on the same
 * bf16 inputs and weights within 1e-5 (the kernels' activations differ in
 * the last bits, so their roundings may differ by one step at a boundary). */
static void test_lstm_bf16_batch_invariant_and_accurate(void **st) {
  (void)st;
  const size_t Hs[] = {64, 24}, I = 7, N = 37;
  for (size_t hi = 0; hi < 2; hi++) {
    const size_t H = Hs[hi], G = 4 * H;
    uint64_t seed = 1234 + hi;
    float *w_ih = malloc(G * I * 4), *w_hh = malloc(G * H * 4), *b_ih = malloc(G * 4),
          *b_hh = malloc(G * 4), *x = malloc(N * I * 4);
    for (size_t i = 0; i < G * I; i++) w_ih[i] = 0.4f * frand(&seed);
    for (size_t i = 0; i < G * H; i++) w_hh[i] = 0.3f * frand(&seed);
    for (size_t i = 0; i < G; i++) b_ih[i] = 0.2f * frand(&seed), b_hh[i] = 0.2f * frand(&seed);
    for (size_t i = 0; i < N * I; i++) x[i] = frand(&seed);
    uint16_t *hc0 = malloc(N * 2 * H * 2);
    rand_bf16(&seed, N * 2 * H, 1.5f, hc0);
    for (size_t ks = 0; ks < 4; ks++) {
      if (!kset_select(KSETS_BF[ks])) continue;
      lstm_t *cell;
      assert_int_equal(lstm_new_bf16(I, H, w_ih, w_hh, b_ih, b_hh, 16, &cell), 0);
      uint16_t *A = malloc(N * 2 * H * 2), *B = malloc(N * 2 * H * 2), *C = malloc(N * 2 * H * 2);
      memcpy(A, hc0, N * 2 * H * 2), memcpy(B, hc0, N * 2 * H * 2), memcpy(C, hc0, N * 2 * H * 2);
      uint16_t *hp[N], *cp[N];
      for (size_t b = 0; b < N; b++) hp[b] = A + b * 2 * H, cp[b] = hp[b] + H;
      lstm_step_batch_bf16(cell, N, x, hp, cp, NULL, NULL); /* 3 chunks of <= 16 */
      for (size_t b = 0; b < N; b++) {
        uint16_t *h1 = B + b * 2 * H, *c1 = h1 + H;
        lstm_step_batch_bf16(cell, 1, x + b * I, &h1, &c1, NULL, NULL);
      }
      assert_memory_equal(A, B, N * 2 * H * 2);
      /* reversed order */
      float xr[N * 7];
      for (size_t b = 0; b < N; b++) {
        memcpy(xr + b * I, x + (N - 1 - b) * I, I * 4);
        hp[b] = C + (N - 1 - b) * 2 * H, cp[b] = hp[b] + H;
      }
      lstm_step_batch_bf16(cell, N, xr, hp, cp, NULL, NULL);
      assert_memory_equal(A, C, N * 2 * H * 2);
      /* accuracy against double on the same rounded inputs and weights */
      double worst = 0;
      for (size_t b = 0; b < N; b++) {
        const uint16_t *h0 = hc0 + b * 2 * H, *c0 = h0 + H;
        double hd[64], cd[64], scale = 1e-3;
        for (size_t u = 0; u < H; u++) {
          double g4[4];
          for (size_t v = 0; v < 4; v++) {
            size_t j = v * H + u;
            double s = (double)(b_ih[j] + b_hh[j]);
            for (size_t k = 0; k < I; k++)
              s += (double)kern_bf16_to_f32(kern_bf16_from_f32(w_ih[j * I + k])) *
                   kern_bf16_to_f32(kern_bf16_from_f32(x[b * I + k]));
            for (size_t k = 0; k < H; k++)
              s += (double)kern_bf16_to_f32(kern_bf16_from_f32(w_hh[j * H + k])) *
                   kern_bf16_to_f32(h0[k]);
            g4[v] = s;
          }
          cd[u] = sigm(g4[1]) * kern_bf16_to_f32(c0[u]) + sigm(g4[0]) * tanh(g4[2]);
          hd[u] = sigm(g4[3]) * tanh(cd[u]);
        }
        for (size_t u = 0; u < H; u++) scale = fmax(scale, fmax(fabs(hd[u]), fabs(cd[u])));
        for (size_t u = 0; u < H; u++) {
          worst = fmax(worst, bf16_gap(hd[u], A[b * 2 * H + u]) / scale);
          worst = fmax(worst, bf16_gap(cd[u], A[b * 2 * H + H + u]) / scale);
        }
      }
      print_message("bf16 cell H=%zu kernel %s: stored h, c off the rounding of the double "
                    "step by at most %.2e\n", H, KSETS_BF[ks], worst);
      assert_true(worst < 1e-5);
      free(A), free(B), free(C);
      lstm_destroy(cell);
    }
    free(w_ih), free(w_hh), free(b_ih), free(b_hh), free(x), free(hc0);
  }
  KSET_END();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lstm_gate_order_by_hand),
      cmocka_unit_test(test_lstm_gate_order_saturated),
      cmocka_unit_test(test_lstm_batch_equals_single_steps_bitwise),
      cmocka_unit_test(test_lstm_fused_equals_gemm_then_pointwise),
      cmocka_unit_test(test_kern_gemm_matches_reference),
      cmocka_unit_test(test_activations_accurate_on_every_kernel),
      cmocka_unit_test(test_lstm_pointwise_reports_activated_gates),
      cmocka_unit_test(test_gemm_bf16_same_bits_on_every_kernel),
      cmocka_unit_test(test_gemm_bf16p_same_bits_on_every_kernel),
      cmocka_unit_test(test_lstm_bf16_fused_equals_gemm_then_pointwise),
      cmocka_unit_test(test_lstm_bf16_batch_invariant_and_accurate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
