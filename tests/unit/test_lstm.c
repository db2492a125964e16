/* LSTM cell: gate order and values by hand, batch == looped single steps
 * (bit-identical, any batch composition), chunking, activation accuracy on
 * every kernel set this CPU can run. */
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

static const char *KSETS[] = {"avx512", "avx2", "scalar"};

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* I = 1, H = 1. Only the biases differ per gate, so a wrong gate order
 * (e.g. i, f, o, g) gives a different h and c. */
static void test_lstm_gate_order_by_hand(void **st) {
  (void)st;
  for (size_t ks = 0; ks < 3; ks++) {
    if (kern_select(KSETS[ks]) < 0) continue;
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
    if (kern_select(KSETS[ks]) < 0) continue;
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
}

/* The fused GEMM + pointwise step (avx512, H % 16 == 0) gives the same bits
 * as kern_gemm then kern_lstm_pointwise, with none, one or two added rows, for
 * every remainder of the 6-row tile; and the kernel sets without a fused path
 * say so. */
static void test_lstm_fused_equals_gemm_then_pointwise(void **st) {
  (void)st;
  const size_t Hs[] = {16, 64}, ns[] = {1, 5, 6, 13, 40};
  for (size_t ks = 0; ks < 3; ks++) {
    if (kern_select(KSETS[ks]) < 0) continue;
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
          for (size_t b = 0; b < n; b++)
            for (size_t j = 0; j < G; j++)
              pre[b * G + j] = with_add == 2 ? bias[j] + (add[b * G + j] + add2[b * G + j])
                               : with_add ? bias[j] + add[b * G + j] : bias[j];
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
}

/* GEMM vs double reference for odd shapes (remainder rows and panels). */
static void test_kern_gemm_matches_reference(void **st) {
  (void)st;
  const size_t shapes[][3] = {{1, 7, 16}, {5, 71, 256}, {13, 64, 1000}, {7, 3, 40}, {6, 112, 256}};
  for (size_t ks = 0; ks < 3; ks++) {
    if (kern_select(KSETS[ks]) < 0) continue;
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
}

static void test_activations_accurate_on_every_kernel(void **st) {
  (void)st;
  enum { N = 20001 };
  float *x = malloc(N * 4), *y = malloc(N * 4);
  for (size_t ks = 0; ks < 3; ks++) {
    if (kern_select(KSETS[ks]) < 0) continue;
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lstm_gate_order_by_hand),
      cmocka_unit_test(test_lstm_gate_order_saturated),
      cmocka_unit_test(test_lstm_batch_equals_single_steps_bitwise),
      cmocka_unit_test(test_lstm_fused_equals_gemm_then_pointwise),
      cmocka_unit_test(test_kern_gemm_matches_reference),
      cmocka_unit_test(test_activations_accurate_on_every_kernel),
      cmocka_unit_test(test_lstm_pointwise_reports_activated_gates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
