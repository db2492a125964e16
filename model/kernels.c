/* Compute kernels of model/ (see kernels.h): batch-invariant GEMM against
 * packed weights and vectorised exp/sigmoid/tanh, in AVX-512F, AVX2+FMA and
 * portable C, chosen once per process. */
#include "model/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define PANEL 64

/* ---- packing ------------------------------------------------------------ */

int kern_w_pack(kern_w_t *w, size_t K, size_t N, const float *W, size_t ldw) {
  memset(w, 0, sizeof(*w));
  size_t Np = (N + 15) / 16 * 16;
  size_t bytes = Np * K * sizeof(float);
  if (bytes == 0) bytes = 64;
  bytes = (bytes + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes);
  if (!p) return IX_ENOMEM;
  memset(p, 0, bytes);
  for (size_t p0 = 0; p0 < Np; p0 += PANEL) {
    size_t pw = Np - p0 < PANEL ? Np - p0 : PANEL;
    float *panel = p + p0 * K;
    for (size_t k = 0; k < K; k++)
      for (size_t j = 0; j < pw; j++)
        panel[k * pw + j] = (p0 + j < N) ? W[(p0 + j) * ldw + k] : 0.0f;
  }
  w->K = K;
  w->N = N;
  w->Np = Np;
  w->panels = p;
  return 0;
}

int kern_w_pack_gates(kern_w_t *w, size_t K, size_t H, const float *W, size_t ldw) {
  memset(w, 0, sizeof(*w));
  if (H == 0 || H % 16) return IX_EINVAL;
  float *perm = malloc(4 * H * K * sizeof(float));
  if (!perm) return IX_ENOMEM;
  /* row hb*64 + v*16 + l of the permuted matrix = gate v, hidden unit 16hb + l */
  for (size_t hb = 0; hb < H / 16; hb++)
    for (size_t v = 0; v < 4; v++)
      for (size_t l = 0; l < 16; l++)
        memcpy(perm + (hb * 64 + v * 16 + l) * K, W + (v * H + hb * 16 + l) * ldw,
               K * sizeof(float));
  int rc = kern_w_pack(w, K, 4 * H, perm, K);
  free(perm);
  return rc;
}

void kern_w_free(kern_w_t *w) {
  if (!w) return;
  free(w->panels);
  memset(w, 0, sizeof(*w));
}

/* row[k] and row[k + 1] (0 past K) as one bf16 pair, the low element first */
static inline uint32_t bf16_pair(const float *row, size_t k, size_t K) {
  uint32_t lo = kern_bf16_from_f32(row[k]);
  uint32_t hi = k + 1 < K ? kern_bf16_from_f32(row[k + 1]) : 0;
  return lo | hi << 16;
}

int kern_wb_pack_gates(kern_wb_t *w, size_t K, size_t H, const float *W, size_t ldw) {
  memset(w, 0, sizeof(*w));
  if (H == 0 || K == 0) return IX_EINVAL;
  const size_t Kp = (K + 1) / 2, Hp = (H + 15) / 16 * 16;
  size_t bytes = (Hp / 16) * Kp * 64 * sizeof(uint32_t);
  uint32_t *p = aligned_alloc(64, bytes);
  if (!p) return IX_ENOMEM;
  for (size_t hb = 0; hb < Hp / 16; hb++)
    for (size_t kp = 0; kp < Kp; kp++)
      for (size_t v = 0; v < 4; v++)
        for (size_t l = 0; l < 16; l++) {
          size_t u = hb * 16 + l;
          p[(hb * Kp + kp) * 64 + v * 16 + l] =
              u < H ? bf16_pair(W + (v * H + u) * ldw, 2 * kp, K) : 0;
        }
  w->K = K;
  w->Kp = Kp;
  w->H = H;
  w->Hp = Hp;
  w->panels = p;
  return 0;
}

void kern_wb_free(kern_wb_t *w) {
  if (!w) return;
  free(w->panels);
  memset(w, 0, sizeof(*w));
}

int kern_wbp_pack(kern_wbp_t *w, size_t K, size_t N, const float *W, size_t ldw) {
  memset(w, 0, sizeof(*w));
  if (N == 0 || K == 0) return IX_EINVAL;
  const size_t Kp = (K + 1) / 2, Np = (N + 15) / 16 * 16;
  uint32_t *p = aligned_alloc(64, (Np * Kp * sizeof(uint32_t) + 63) / 64 * 64);
  if (!p) return IX_ENOMEM;
  for (size_t p0 = 0; p0 < Np; p0 += PANEL) {
    const size_t pw = Np - p0 < PANEL ? Np - p0 : PANEL;
    for (size_t kp = 0; kp < Kp; kp++)
      for (size_t j = 0; j < pw; j++)
        p[p0 * Kp + kp * pw + j] = p0 + j < N ? bf16_pair(W + (p0 + j) * ldw, 2 * kp, K) : 0;
  }
  w->K = K;
  w->Kp = Kp;
  w->N = N;
  w->Np = Np;
  w->panels = p;
  return 0;
}

void kern_wbp_free(kern_wbp_t *w) {
  if (!w) return;
  free(w->panels);
  memset(w, 0, sizeof(*w));
}

static inline float bits_f32(uint32_t u) {
  union { uint32_t u; float f; } x = {u};
  return x.f;
}

/* ---- portable C ------------------------------------------------------------ */

static void gemm_scalar(const kern_w_t *w, size_t n, const float *A, size_t lda, float *C,
                        size_t ldc) {
  const size_t K = w->K;
  for (size_t p0 = 0; p0 < w->Np; p0 += PANEL) {
    size_t pw = w->Np - p0 < PANEL ? w->Np - p0 : PANEL;
    const float *panel = w->panels + p0 * K;
    for (size_t b = 0; b < n; b++) {
      float acc[PANEL];
      float *c = C + b * ldc + p0;
      const float *a = A + b * lda;
      memcpy(acc, c, pw * sizeof(float));
      for (size_t k = 0; k < K; k++) {
        const float *wk = panel + k * pw;
        float ak = a[k];
        for (size_t j = 0; j < pw; j++) acc[j] += wk[j] * ak;
      }
      memcpy(c, acc, pw * sizeof(float));
    }
  }
}

/* The pair order of vdpbf16ps: the high (odd) element first. Each product of
 * two bf16 values is exact in float32, so acc + w * a rounds once, as fma. */
static void gemm_bf16_scalar(const kern_wb_t *w, size_t n, const uint16_t *A, size_t lda,
                             float *C, size_t ldc) {
  const size_t Kp = w->Kp, H = w->H;
  for (size_t hb = 0; hb < w->Hp / 16; hb++) {
    const uint32_t *panel = w->panels + hb * Kp * 64;
    const size_t nu = H - hb * 16 < 16 ? H - hb * 16 : 16;
    for (size_t b = 0; b < n; b++) {
      float acc[64] = {0};
      float *c = C + b * ldc + hb * 16;
      for (size_t v = 0; v < 4; v++)
        for (size_t l = 0; l < nu; l++) acc[v * 16 + l] = c[v * H + l];
      const uint16_t *a = A + b * lda;
      for (size_t kp = 0; kp < Kp; kp++) {
        const float alo = kern_bf16_to_f32(a[2 * kp]), ahi = kern_bf16_to_f32(a[2 * kp + 1]);
        const uint32_t *wk = panel + kp * 64;
        for (size_t j = 0; j < 64; j++) {
          acc[j] += bits_f32(wk[j] & 0xffff0000u) * ahi;
          acc[j] += bits_f32(wk[j] << 16) * alo;
        }
      }
      for (size_t v = 0; v < 4; v++)
        for (size_t l = 0; l < nu; l++) c[v * H + l] = acc[v * 16 + l];
    }
  }
}

/* kern_gemm_bf16p in C: the pair order of vdpbf16ps, as gemm_bf16_scalar. */
static void gemm_bf16p_scalar(const kern_wbp_t *w, size_t n, const uint16_t *A, size_t lda,
                              float *C, size_t ldc) {
  const size_t Kp = w->Kp;
  for (size_t p0 = 0; p0 < w->Np; p0 += PANEL) {
    const size_t pw = w->Np - p0 < PANEL ? w->Np - p0 : PANEL;
    const uint32_t *panel = w->panels + p0 * Kp;
    for (size_t b = 0; b < n; b++) {
      float acc[PANEL];
      float *c = C + b * ldc + p0;
      const uint16_t *a = A + b * lda;
      memcpy(acc, c, pw * sizeof(float));
      for (size_t kp = 0; kp < Kp; kp++) {
        const float alo = kern_bf16_to_f32(a[2 * kp]), ahi = kern_bf16_to_f32(a[2 * kp + 1]);
        const uint32_t *wk = panel + kp * pw;
        for (size_t j = 0; j < pw; j++) {
          acc[j] += bits_f32(wk[j] & 0xffff0000u) * ahi;
          acc[j] += bits_f32(wk[j] << 16) * alo;
        }
      }
      memcpy(c, acc, pw * sizeof(float));
    }
  }
}

static void exp_scalar(size_t n, const float *x, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}
static void sigmoid_scalar(size_t n, const float *x, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}
static void tanh_scalar(size_t n, const float *x, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

/* Cephes-style constants shared by the vector paths. */
#define EXP_HI 88.0f
#define EXP_LO (-87.33654f)
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define EP0 1.9875691500E-4f
#define EP1 1.3981999507E-3f
#define EP2 8.3334519073E-3f
#define EP3 4.1665795894E-2f
#define EP4 1.6666665459E-1f
#define EP5 5.0000001201E-1f
#define TP0 (-5.70498872745E-3f)
#define TP1 2.06390887954E-2f
#define TP2 (-5.37397155531E-2f)
#define TP3 1.33314422036E-1f
#define TP4 (-3.33332819422E-1f)
#define TANH_SMALL 0.625f

/* ---- AVX-512F ---------------------------------------------------------------- */

#define T512 __attribute__((target("avx512f,avx512dq")))

T512 static inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
  __m512 nn = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(nn, _mm512_set1_ps(LN2_HI), x);
  r = _mm512_fnmadd_ps(nn, _mm512_set1_ps(LN2_LO), r);
  __m512 p = _mm512_set1_ps(EP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP5));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, nn);
}

T512 static inline __m512 sigmoid512(__m512 x) {
  __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

T512 static inline __m512 tanh512(__m512 x) {
  const __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
  __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(signbit, _mm512_castps_si512(x)));
  /* small |x|: odd polynomial */
  __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(TP0);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TP1));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TP2));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TP3));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TP4));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
  /* large |x|: 1 - 2 / (exp(2|x|) + 1), sign restored */
  __m512 e = exp512(_mm512_add_ps(a, a));
  __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                           _mm512_div_ps(_mm512_set1_ps(2.0f),
                                         _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
  __m512i sx = _mm512_and_si512(signbit, _mm512_castps_si512(x));
  __m512 large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sx));
  __mmask16 m = _mm512_cmp_ps_mask(a, _mm512_set1_ps(TANH_SMALL), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(m, large, small);
}

#define V512_MAP(NAME, FN, SCALAR)                                          \
  T512 static void NAME(size_t n, const float *x, float *y) {               \
    size_t i = 0;                                                           \
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, FN(_mm512_loadu_ps(x + i))); \
    if (i < n) {                                                            \
      __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);                      \
      _mm512_mask_storeu_ps(y + i, m, FN(_mm512_maskz_loadu_ps(m, x + i))); \
    }                                                                       \
  }
V512_MAP(exp_avx512, exp512, expf)
V512_MAP(sigmoid_avx512, sigmoid512, x)
V512_MAP(tanh_avx512, tanh512, tanhf)

/* R rows x NV vectors of 16 columns, panel stride pw floats per k. */
T512 static inline __attribute__((always_inline)) void mk512(int R, int NV, size_t K,
                                                             const float *panel, size_t pw,
                                                             const float *A, size_t lda,
                                                             float *C, size_t ldc) {
  __m512 acc[6][4];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_loadu_ps(C + r * ldc + v * 16);
  for (size_t k = 0; k < K; k++) {
    __m512 wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) wv[v] = _mm512_load_ps(panel + k * pw + v * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      __m512 ab = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(wv[v], ab, acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * ldc + v * 16, acc[r][v]);
}

#define MK512_ROWS(NV)                                                                    \
  do {                                                                                    \
    size_t b = 0;                                                                         \
    for (; b + 6 <= n; b += 6) mk512(6, NV, K, panel, pw, A + b * lda, lda, C + b * ldc + p0, ldc); \
    switch (n - b) {                                                                      \
    case 5: mk512(5, NV, K, panel, pw, A + b * lda, lda, C + b * ldc + p0, ldc); break;   \
    case 4: mk512(4, NV, K, panel, pw, A + b * lda, lda, C + b * ldc + p0, ldc); break;   \
    case 3: mk512(3, NV, K, panel, pw, A + b * lda, lda, C + b * ldc + p0, ldc); break;   \
    case 2: mk512(2, NV, K, panel, pw, A + b * lda, lda, C + b * ldc + p0, ldc); break;   \
    case 1: mk512(1, NV, K, panel, pw, A + b * lda, lda, C + b * ldc + p0, ldc); break;   \
    default: break;                                                                       \
    }                                                                                     \
  } while (0)

T512 static void gemm_avx512(const kern_w_t *w, size_t n, const float *A, size_t lda, float *C,
                             size_t ldc) {
  const size_t K = w->K;
  for (size_t p0 = 0; p0 < w->Np; p0 += PANEL) {
    size_t pw = w->Np - p0 < PANEL ? w->Np - p0 : PANEL;
    const float *panel = w->panels + p0 * K;
    switch (pw / 16) {
    case 4: MK512_ROWS(4); break;
    case 3: MK512_ROWS(3); break;
    case 2: MK512_ROWS(2); break;
    default: MK512_ROWS(1); break;
    }
  }
}

T512 static void lstm_pw_avx512(size_t H, const float *pre, const float *c_prev, float *c,
                                float *h, float *act) {
  size_t j = 0;
  for (; j + 16 <= H; j += 16) {
    __m512 ig = sigmoid512(_mm512_loadu_ps(pre + j));
    __m512 fg = sigmoid512(_mm512_loadu_ps(pre + H + j));
    __m512 gg = tanh512(_mm512_loadu_ps(pre + 2 * H + j));
    __m512 og = sigmoid512(_mm512_loadu_ps(pre + 3 * H + j));
    __m512 cn = _mm512_fmadd_ps(fg, _mm512_loadu_ps(c_prev + j), _mm512_mul_ps(ig, gg));
    _mm512_storeu_ps(c + j, cn);
    _mm512_storeu_ps(h + j, _mm512_mul_ps(og, tanh512(cn)));
    if (act) {
      _mm512_storeu_ps(act + j, ig);
      _mm512_storeu_ps(act + H + j, fg);
      _mm512_storeu_ps(act + 2 * H + j, gg);
      _mm512_storeu_ps(act + 3 * H + j, og);
    }
  }
  if (j < H) {
    __mmask16 m = (__mmask16)((1u << (H - j)) - 1u);
    __m512 ig = sigmoid512(_mm512_maskz_loadu_ps(m, pre + j));
    __m512 fg = sigmoid512(_mm512_maskz_loadu_ps(m, pre + H + j));
    __m512 gg = tanh512(_mm512_maskz_loadu_ps(m, pre + 2 * H + j));
    __m512 og = sigmoid512(_mm512_maskz_loadu_ps(m, pre + 3 * H + j));
    __m512 cn = _mm512_fmadd_ps(fg, _mm512_maskz_loadu_ps(m, c_prev + j), _mm512_mul_ps(ig, gg));
    _mm512_mask_storeu_ps(c + j, m, cn);
    _mm512_mask_storeu_ps(h + j, m, _mm512_mul_ps(og, tanh512(cn)));
    if (act) {
      _mm512_mask_storeu_ps(act + j, m, ig);
      _mm512_mask_storeu_ps(act + H + j, m, fg);
      _mm512_mask_storeu_ps(act + 2 * H + j, m, gg);
      _mm512_mask_storeu_ps(act + 3 * H + j, m, og);
    }
  }
}

/* Fused LSTM step: the 64-column panel hb holds gates i, f, g, o of hidden
 * units 16hb..16hb+15 (kern_w_pack_gates), so a tile's four vectors per row
 * are one hidden block's four gates and the pointwise part runs on the
 * registers. Same fma chains and the same activation code as gemm_avx512 +
 * lstm_pw_avx512, so the bits are the same as the unfused path. */
T512 static inline __attribute__((always_inline)) void mk512_lstm(int R, size_t K, size_t H,
                                                                  const float *panel,
                                                                  const float *A, size_t lda,
                                                                  const float *bias,
                                                                  const float *const *add_a,
                                                                  const float *const *add_b,
                                                                  float *const *h,
                                                                  float *const *c, size_t off) {
  __m512 acc[6][4];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      __m512 b = _mm512_loadu_ps(bias + v * H + off), a;
      if (add_a) {
        a = _mm512_loadu_ps(add_a[r] + v * H + off);
        if (add_b) a = _mm512_add_ps(a, _mm512_loadu_ps(add_b[r] + v * H + off));
        b = _mm512_add_ps(b, a);
      }
      acc[r][v] = b;
    }
  for (size_t k = 0; k < K; k++) {
    __m512 wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) wv[v] = _mm512_load_ps(panel + k * PANEL + v * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      __m512 ab = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(wv[v], ab, acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    __m512 ig = sigmoid512(acc[r][0]);
    __m512 fg = sigmoid512(acc[r][1]);
    __m512 gg = tanh512(acc[r][2]);
    __m512 og = sigmoid512(acc[r][3]);
    float *cr = c[r] + off;
    __m512 cn = _mm512_fmadd_ps(fg, _mm512_loadu_ps(cr), _mm512_mul_ps(ig, gg));
    _mm512_storeu_ps(cr, cn);
    _mm512_storeu_ps(h[r] + off, _mm512_mul_ps(og, tanh512(cn)));
  }
}

#define MK512_LSTM(R_) \
  mk512_lstm(R_, K, H, panel, A + b * lda, lda, bias, add_a ? add_a + b : NULL, \
             add_b ? add_b + b : NULL, h + b, c + b, off)

T512 static void lstm_fused_avx512(const kern_w_t *w, size_t H, size_t n, const float *A,
                                   size_t lda, const float *bias, const float *const *add_a,
                                   const float *const *add_b, float *const *h,
                                   float *const *c) {
  const size_t K = w->K;
  for (size_t off = 0; off < H; off += 16) {
    const float *panel = w->panels + off * 4 * K;
    size_t b = 0;
    for (; b + 6 <= n; b += 6) MK512_LSTM(6);
    switch (n - b) {
    case 5: MK512_LSTM(5); break;
    case 4: MK512_LSTM(4); break;
    case 3: MK512_LSTM(3); break;
    case 2: MK512_LSTM(2); break;
    case 1: MK512_LSTM(1); break;
    default: break;
    }
  }
}

/* ---- AVX-512: the fused bf16 LSTM step ---- */

/* The bf16 cell's activations (its outputs are rounded to 8 bits anyway):
 * tanh as Eigen's rational minimax (odd degree 13 over even degree 6, input
 * clamped to +-7.9053), max abs error 2.7e-7 against tanh in double over
 * [-20, 20]; sigmoid(x) = tanh(x/2)/2 + 1/2, max abs error 1.7e-7. One
 * division each and no exp: about 14 operations instead of about 30 (tanh)
 * and 18 (sigmoid) of the exp-based pair above. */
#define TR_A1 4.89352455891786e-03f
#define TR_A3 6.37261928875436e-04f
#define TR_A5 1.48572235717979e-05f
#define TR_A7 5.12229709037114e-08f
#define TR_A9 (-8.60467152213735e-11f)
#define TR_A11 2.00018790482477e-13f
#define TR_A13 (-2.76076847742355e-16f)
#define TR_B0 4.89352518554385e-03f
#define TR_B2 2.26843463243900e-03f
#define TR_B4 1.18534705686654e-04f
#define TR_B6 1.19825839466702e-06f
#define TR_CLAMP 7.90531110763549805f

T512 static inline __m512 tanh512_rat(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-TR_CLAMP)), _mm512_set1_ps(TR_CLAMP));
  __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(TR_A13);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TR_A11));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TR_A9));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TR_A7));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TR_A5));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TR_A3));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TR_A1));
  __m512 q = _mm512_set1_ps(TR_B6);
  q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TR_B4));
  q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TR_B2));
  q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TR_B0));
  return _mm512_div_ps(_mm512_mul_ps(p, x), q);
}

T512 static inline __m512 sigmoid512_rat(__m512 x) {
  __m512 half = _mm512_set1_ps(0.5f);
  return _mm512_fmadd_ps(tanh512_rat(_mm512_mul_ps(x, half)), half, half);
}

#define T512BF __attribute__((target("avx512f,avx512dq,avx512bf16")))

/* bf16 -> float32 of 16 values */
T512 static inline __m512 bf16x16_load(const uint16_t *p) {
  __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

/* kern_bf16_from_f32 on 16 lanes without AVX512_BF16 (same bits as vcvtneps2bf16) */
T512 static inline __m256i bf16x16_round_emul(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i top = _mm512_srli_epi32(u, 16);
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                   _mm512_and_si512(top, _mm512_set1_epi32(1))));
  r = _mm512_srli_epi32(r, 16);
  __mmask16 sub = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, sub, _mm512_and_si512(top, _mm512_set1_epi32(0x8000)));
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                          _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(top, _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

T512BF static inline __m256i bf16x16_round_insn(__m512 x) {
  return (__m256i)_mm512_cvtneps_pbh(x);
}

/* acc[r][v] += pair p of row r times the panel words wv[v], high element first */
#define DOT_BF16_INSN(R_)                                                                  \
  do {                                                                                     \
    uint32_t ap_;                                                                          \
    memcpy(&ap_, A + (R_) * lda + 2 * kp, 4);                                              \
    __m512i ab_ = _mm512_set1_epi32((int)ap_);                                             \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[R_][v] =                       \
        _mm512_dpbf16_ps(acc[R_][v], (__m512bh)wv[v], (__m512bh)ab_);                      \
  } while (0)
#define DOT_BF16_EMUL(R_)                                                                  \
  do {                                                                                     \
    uint32_t ap_;                                                                          \
    memcpy(&ap_, A + (R_) * lda + 2 * kp, 4);                                              \
    __m512 hi_ = _mm512_set1_ps(bits_f32(ap_ & 0xffff0000u));                              \
    __m512 lo_ = _mm512_set1_ps(bits_f32(ap_ << 16));                                      \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                                  \
      __m512 whi_ = _mm512_castsi512_ps(_mm512_and_si512(wv[v], _mm512_set1_epi32((int)0xffff0000u))); \
      __m512 wlo_ = _mm512_castsi512_ps(_mm512_slli_epi32(wv[v], 16));                    \
      acc[R_][v] = _mm512_fmadd_ps(lo_, wlo_, _mm512_fmadd_ps(hi_, whi_, acc[R_][v]));    \
    }                                                                                      \
  } while (0)

#define DEF_LSTM_BF16_512(NAME, TGT, DOT, ROUND)                                              \
  TGT static inline __attribute__((always_inline)) void NAME##_tile(                          \
      int R, size_t Kp, size_t H, const uint32_t *panel, const uint16_t *A, size_t lda,       \
      const float *bias, const float *const *add_a, const float *const *add_b,                \
      uint16_t *const *h16, uint16_t *const *c16, size_t off) {                               \
    __m512 acc[6][4];                                                                         \
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)                                       \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                                     \
      __m512 b = _mm512_loadu_ps(bias + v * H + off), a;                                      \
      if (add_a) {                                                                            \
        a = _mm512_loadu_ps(add_a[r] + v * H + off);                                          \
        if (add_b) a = _mm512_add_ps(a, _mm512_loadu_ps(add_b[r] + v * H + off));             \
        b = _mm512_add_ps(b, a);                                                              \
      }                                                                                       \
      acc[r][v] = b;                                                                          \
    }                                                                                         \
    for (size_t kp = 0; kp < Kp; kp++) {                                                      \
      __m512i wv[4];                                                                          \
      _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) wv[v] =                             \
          _mm512_load_si512((const void *)(panel + kp * 64 + v * 16));                        \
      if (R > 0) DOT(0);                                                                      \
      if (R > 1) DOT(1);                                                                      \
      if (R > 2) DOT(2);                                                                      \
      if (R > 3) DOT(3);                                                                      \
      if (R > 4) DOT(4);                                                                      \
      if (R > 5) DOT(5);                                                                      \
    }                                                                                         \
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {                                     \
      __m512 ig = sigmoid512_rat(acc[r][0]);                                                  \
      __m512 fg = sigmoid512_rat(acc[r][1]);                                                  \
      __m512 gg = tanh512_rat(acc[r][2]);                                                     \
      __m512 og = sigmoid512_rat(acc[r][3]);                                                  \
      __m512 cn = _mm512_fmadd_ps(fg, bf16x16_load(c16[r] + off), _mm512_mul_ps(ig, gg));     \
      __m512 hn = _mm512_mul_ps(og, tanh512_rat(cn));                                         \
      _mm256_storeu_si256((__m256i *)(void *)(c16[r] + off), ROUND(cn));                      \
      _mm256_storeu_si256((__m256i *)(void *)(h16[r] + off), ROUND(hn));                      \
    }                                                                                         \
  }                                                                                           \
  TGT static void NAME(const kern_wb_t *w, size_t n, const uint16_t *A, size_t lda,           \
                       const float *bias, const float *const *add_a,                          \
                       const float *const *add_b, uint16_t *const *h16,                       \
                       uint16_t *const *c16) {                                                \
    const size_t Kp = w->Kp, H = w->H;                                                        \
    for (size_t off = 0; off < H; off += 16) {                                                \
      const uint32_t *panel = w->panels + (off / 16) * Kp * 64;                               \
      size_t b = 0;                                                                           \
      _Pragma("GCC unroll 1") for (; b + 6 <= n; b += 6)                                      \
        NAME##_tile(6, Kp, H, panel, A + b * lda, lda, bias, add_a ? add_a + b : NULL,        \
                    add_b ? add_b + b : NULL, h16 + b, c16 + b, off);                         \
      const float *const *aa = add_a ? add_a + b : NULL, *const *ab = add_b ? add_b + b : NULL; \
      switch (n - b) {                                                                        \
      case 5: NAME##_tile(5, Kp, H, panel, A + b * lda, lda, bias, aa, ab, h16 + b, c16 + b, off); break; \
      case 4: NAME##_tile(4, Kp, H, panel, A + b * lda, lda, bias, aa, ab, h16 + b, c16 + b, off); break; \
      case 3: NAME##_tile(3, Kp, H, panel, A + b * lda, lda, bias, aa, ab, h16 + b, c16 + b, off); break; \
      case 2: NAME##_tile(2, Kp, H, panel, A + b * lda, lda, bias, aa, ab, h16 + b, c16 + b, off); break; \
      case 1: NAME##_tile(1, Kp, H, panel, A + b * lda, lda, bias, aa, ab, h16 + b, c16 + b, off); break; \
      default: break;                                                                         \
      }                                                                                       \
    }                                                                                         \
  }

DEF_LSTM_BF16_512(lstm_bf16_avx512_emul, T512, DOT_BF16_EMUL, bf16x16_round_emul)
DEF_LSTM_BF16_512(lstm_bf16_avx512_insn, T512BF, DOT_BF16_INSN, bf16x16_round_insn)

/* kern_gemm_bf16p on AVX-512: R rows x NV vectors of 16 columns of one panel
 * (pw words per pair), the chain of DOT_BF16_* per element. */
#define DOTP_BF16_INSN(R_)                                                                 \
  do {                                                                                     \
    uint32_t ap_;                                                                          \
    memcpy(&ap_, A + (R_) * lda + 2 * kp, 4);                                              \
    __m512i ab_ = _mm512_set1_epi32((int)ap_);                                             \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[R_][v] =                      \
        _mm512_dpbf16_ps(acc[R_][v], (__m512bh)wv[v], (__m512bh)ab_);                      \
  } while (0)
#define DOTP_BF16_EMUL(R_)                                                                 \
  do {                                                                                     \
    uint32_t ap_;                                                                          \
    memcpy(&ap_, A + (R_) * lda + 2 * kp, 4);                                              \
    __m512 hi_ = _mm512_set1_ps(bits_f32(ap_ & 0xffff0000u));                              \
    __m512 lo_ = _mm512_set1_ps(bits_f32(ap_ << 16));                                      \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                 \
      __m512 whi_ = _mm512_castsi512_ps(_mm512_and_si512(wv[v], _mm512_set1_epi32((int)0xffff0000u))); \
      __m512 wlo_ = _mm512_castsi512_ps(_mm512_slli_epi32(wv[v], 16));                    \
      acc[R_][v] = _mm512_fmadd_ps(lo_, wlo_, _mm512_fmadd_ps(hi_, whi_, acc[R_][v]));    \
    }                                                                                      \
  } while (0)

#define DEF_GEMM_BF16P_512(NAME, TGT, DOT)                                                    \
  TGT static inline __attribute__((always_inline)) void NAME##_mk(                            \
      int R, int NV, size_t Kp, const uint32_t *panel, size_t pw, const uint16_t *A,          \
      size_t lda, float *C, size_t ldc) {                                                     \
    __m512 acc[6][4];                                                                         \
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)                                       \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] =                          \
        _mm512_loadu_ps(C + r * ldc + v * 16);                                                \
    for (size_t kp = 0; kp < Kp; kp++) {                                                      \
      __m512i wv[4];                                                                          \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) wv[v] =                            \
          _mm512_load_si512((const void *)(panel + kp * pw + v * 16));                        \
      if (R > 0) DOT(0);                                                                      \
      if (R > 1) DOT(1);                                                                      \
      if (R > 2) DOT(2);                                                                      \
      if (R > 3) DOT(3);                                                                      \
      if (R > 4) DOT(4);                                                                      \
      if (R > 5) DOT(5);                                                                      \
    }                                                                                         \
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)                                       \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                      \
        _mm512_storeu_ps(C + r * ldc + v * 16, acc[r][v]);                                    \
  }                                                                                           \
  TGT static inline __attribute__((always_inline)) void NAME##_rows(                          \
      int NV, size_t Kp, const uint32_t *panel, size_t pw, size_t n, const uint16_t *A,       \
      size_t lda, float *C, size_t ldc) {                                                     \
    size_t b = 0;                                                                             \
    _Pragma("GCC unroll 1") for (; b + 6 <= n; b += 6)                                        \
      NAME##_mk(6, NV, Kp, panel, pw, A + b * lda, lda, C + b * ldc, ldc);                    \
    switch (n - b) {                                                                          \
    case 5: NAME##_mk(5, NV, Kp, panel, pw, A + b * lda, lda, C + b * ldc, ldc); break;       \
    case 4: NAME##_mk(4, NV, Kp, panel, pw, A + b * lda, lda, C + b * ldc, ldc); break;       \
    case 3: NAME##_mk(3, NV, Kp, panel, pw, A + b * lda, lda, C + b * ldc, ldc); break;       \
    case 2: NAME##_mk(2, NV, Kp, panel, pw, A + b * lda, lda, C + b * ldc, ldc); break;       \
    case 1: NAME##_mk(1, NV, Kp, panel, pw, A + b * lda, lda, C + b * ldc, ldc); break;       \
    default: break;                                                                           \
    }                                                                                         \
  }                                                                                           \
  TGT static void NAME(const kern_wbp_t *w, size_t n, const uint16_t *A, size_t lda,          \
                       float *C, size_t ldc) {                                                \
    const size_t Kp = w->Kp;                                                                  \
    for (size_t p0 = 0; p0 < w->Np; p0 += PANEL) {                                            \
      const size_t pw = w->Np - p0 < PANEL ? w->Np - p0 : PANEL;                              \
      const uint32_t *panel = w->panels + p0 * Kp;                                            \
      switch (pw / 16) {                                                                      \
      case 4: NAME##_rows(4, Kp, panel, pw, n, A, lda, C + p0, ldc); break;                   \
      case 3: NAME##_rows(3, Kp, panel, pw, n, A, lda, C + p0, ldc); break;                   \
      case 2: NAME##_rows(2, Kp, panel, pw, n, A, lda, C + p0, ldc); break;                   \
      default: NAME##_rows(1, Kp, panel, pw, n, A, lda, C + p0, ldc); break;                  \
      }                                                                                       \
    }                                                                                         \
  }

DEF_GEMM_BF16P_512(gemm_bf16p_avx512_emul, T512, DOTP_BF16_EMUL)
DEF_GEMM_BF16P_512(gemm_bf16p_avx512_insn, T512BF, DOTP_BF16_INSN)

/* The fused epilogue on pre-activations from memory (the unfused avx512 path,
 * any H): same operations, so the same bits. */
T512 static void lstm_pw_bf16_avx512(size_t H, const float *pre, uint16_t *c16, uint16_t *h16) {
  for (size_t j = 0; j < H; j += 16) {
    __mmask16 m = H - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (H - j)) - 1u);
    __m512 ig = sigmoid512_rat(_mm512_maskz_loadu_ps(m, pre + j));
    __m512 fg = sigmoid512_rat(_mm512_maskz_loadu_ps(m, pre + H + j));
    __m512 gg = tanh512_rat(_mm512_maskz_loadu_ps(m, pre + 2 * H + j));
    __m512 og = sigmoid512_rat(_mm512_maskz_loadu_ps(m, pre + 3 * H + j));
    const size_t nu = H - j >= 16 ? 16 : H - j;
    uint16_t cb[16] = {0}, hb[16];
    memcpy(cb, c16 + j, nu * sizeof(uint16_t));
    __m512 cn = _mm512_fmadd_ps(fg, bf16x16_load(cb), _mm512_mul_ps(ig, gg));
    __m512 hn = _mm512_mul_ps(og, tanh512_rat(cn));
    _mm256_storeu_si256((__m256i *)(void *)cb, bf16x16_round_emul(cn));
    _mm256_storeu_si256((__m256i *)(void *)hb, bf16x16_round_emul(hn));
    memcpy(c16 + j, cb, nu * sizeof(uint16_t));
    memcpy(h16 + j, hb, nu * sizeof(uint16_t));
  }
}

T512 static float softmax_avx512(size_t n, float *x, const float *gate) {
  if (n == 0) return 0.0f;
  __m512 mx = _mm512_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + i));
  __mmask16 tail = (__mmask16)((1u << (n - i)) - 1u);
  if (i < n) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, x + i));
  __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    _mm512_storeu_ps(x + i, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (i < n) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), m));
    e = _mm512_maskz_mov_ps(tail, e);
    _mm512_mask_storeu_ps(x + i, tail, e);
    sum = _mm512_add_ps(sum, e);
  }
  const float inv1 = 1.0f / _mm512_reduce_add_ps(sum);
  const float p0 = x[0] * inv1;
  __m512 inv = _mm512_set1_ps(inv1);
  if (gate) {
    /* (e inv) g, two roundings, as softmax then a separate pass times g */
    __m512 g = _mm512_set1_ps(*gate);
    for (i = 0; i + 16 <= n; i += 16)
      _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), inv), g));
    if (i < n)
      _mm512_mask_storeu_ps(x + i, tail,
                            _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + i), inv), g));
    return p0;
  }
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  if (i < n)
    _mm512_mask_storeu_ps(x + i, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + i), inv));
  return p0;
}

T512 static size_t indices_ge_avx512(size_t n, const float *x, float thr, uint32_t *idx) {
  size_t m = 0, i = 0;
  __m512 t = _mm512_set1_ps(thr);
  __m512i iv = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  for (; i + 16 <= n; i += 16) {
    __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), t, _CMP_GE_OQ);
    if (k) {
      /* compress in a register, then a plain store: the memory form of
       * vpcompressd is microcoded and slow on AMD Zen 4/5 */
      _mm512_storeu_si512((void *)(idx + m), _mm512_maskz_compress_epi32(k, iv));
      m += (size_t)__builtin_popcount(k);
    }
    iv = _mm512_add_epi32(iv, step);
  }
  for (; i < n; i++)
    if (x[i] >= thr) idx[m++] = (uint32_t)i;
  return m;
}

/* ---- AVX2 + FMA ---------------------------------------------------------------- */

#define T256 __attribute__((target("avx2,fma")))

T256 static inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
  __m256 nn = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(nn, _mm256_set1_ps(LN2_HI), x);
  r = _mm256_fnmadd_ps(nn, _mm256_set1_ps(LN2_LO), r);
  __m256 p = _mm256_set1_ps(EP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP5));
  __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nn), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

T256 static inline __m256 sigmoid256(__m256 x) {
  __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

T256 static inline __m256 tanh256(__m256 x) {
  const __m256 signbit = _mm256_set1_ps(-0.0f);
  __m256 a = _mm256_andnot_ps(signbit, x);
  __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(TP0);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TP1));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TP2));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TP3));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TP4));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  __m256 e = exp256(_mm256_add_ps(a, a));
  __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                           _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  __m256 large = _mm256_or_ps(t, _mm256_and_ps(signbit, x));
  __m256 m = _mm256_cmp_ps(a, _mm256_set1_ps(TANH_SMALL), _CMP_LT_OQ);
  return _mm256_blendv_ps(large, small, m);
}

#define V256_MAP(NAME, FN, SCALAR)                                         \
  T256 static void NAME(size_t n, const float *x, float *y) {              \
    size_t i = 0;                                                          \
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, FN(_mm256_loadu_ps(x + i))); \
    if (i < n) {                                                           \
      float buf[8] = {0};                                                  \
      memcpy(buf, x + i, (n - i) * sizeof(float));                         \
      _mm256_storeu_ps(buf, FN(_mm256_loadu_ps(buf)));                     \
      memcpy(y + i, buf, (n - i) * sizeof(float));                         \
    }                                                                      \
  }
V256_MAP(exp_avx2, exp256, expf)
V256_MAP(sigmoid_avx2, sigmoid256, x)
V256_MAP(tanh_avx2, tanh256, tanhf)

T256 static inline __attribute__((always_inline)) void mk256(int R, size_t K, const float *panel,
                                                             size_t pw, const float *A,
                                                             size_t lda, float *C, size_t ldc) {
  __m256 acc[4][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++) acc[r][v] = _mm256_loadu_ps(C + r * ldc + v * 8);
  for (size_t k = 0; k < K; k++) {
    __m256 w0 = _mm256_loadu_ps(panel + k * pw);
    __m256 w1 = _mm256_loadu_ps(panel + k * pw + 8);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      __m256 ab = _mm256_broadcast_ss(A + r * lda + k);
      acc[r][0] = _mm256_fmadd_ps(w0, ab, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(w1, ab, acc[r][1]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++) _mm256_storeu_ps(C + r * ldc + v * 8, acc[r][v]);
}

T256 static void gemm_avx2(const kern_w_t *w, size_t n, const float *A, size_t lda, float *C,
                           size_t ldc) {
  const size_t K = w->K;
  for (size_t p0 = 0; p0 < w->Np; p0 += PANEL) {
    size_t pw = w->Np - p0 < PANEL ? w->Np - p0 : PANEL;
    for (size_t c0 = 0; c0 < pw; c0 += 16) {
      const float *panel = w->panels + p0 * K + c0;
      float *cc = C + p0 + c0;
      size_t b = 0;
      for (; b + 4 <= n; b += 4) mk256(4, K, panel, pw, A + b * lda, lda, cc + b * ldc, ldc);
      switch (n - b) {
      case 3: mk256(3, K, panel, pw, A + b * lda, lda, cc + b * ldc, ldc); break;
      case 2: mk256(2, K, panel, pw, A + b * lda, lda, cc + b * ldc, ldc); break;
      case 1: mk256(1, K, panel, pw, A + b * lda, lda, cc + b * ldc, ldc); break;
      default: break;
      }
    }
  }
}

/* kern_gemm_bf16 on AVX2: one row, 64 columns (8 vectors) per panel. */
T256 static void gemm_bf16_avx2(const kern_wb_t *w, size_t n, const uint16_t *A, size_t lda,
                                float *C, size_t ldc) {
  const size_t Kp = w->Kp, H = w->H;
  const __m256i himask = _mm256_set1_epi32((int)0xffff0000u);
  for (size_t hb = 0; hb < w->Hp / 16; hb++) {
    const uint32_t *panel = w->panels + hb * Kp * 64;
    const size_t nu = H - hb * 16 < 16 ? H - hb * 16 : 16;
    for (size_t b = 0; b < n; b++) {
      float buf[64] = {0};
      float *c = C + b * ldc + hb * 16;
      for (size_t v = 0; v < 4; v++) memcpy(buf + v * 16, c + v * H, nu * sizeof(float));
      __m256 acc[8];
#pragma GCC unroll 8
      for (int q = 0; q < 8; q++) acc[q] = _mm256_loadu_ps(buf + q * 8);
      const uint16_t *a = A + b * lda;
      for (size_t kp = 0; kp < Kp; kp++) {
        uint32_t ap;
        memcpy(&ap, a + 2 * kp, 4);
        const __m256 hi = _mm256_set1_ps(bits_f32(ap & 0xffff0000u));
        const __m256 lo = _mm256_set1_ps(bits_f32(ap << 16));
        const uint32_t *wk = panel + kp * 64;
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
          __m256i wv = _mm256_load_si256((const __m256i *)(const void *)(wk + q * 8));
          __m256 whi = _mm256_castsi256_ps(_mm256_and_si256(wv, himask));
          __m256 wlo = _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16));
          acc[q] = _mm256_fmadd_ps(lo, wlo, _mm256_fmadd_ps(hi, whi, acc[q]));
        }
      }
#pragma GCC unroll 8
      for (int q = 0; q < 8; q++) _mm256_storeu_ps(buf + q * 8, acc[q]);
      for (size_t v = 0; v < 4; v++) memcpy(c + v * H, buf + v * 16, nu * sizeof(float));
    }
  }
}

/* kern_gemm_bf16p on AVX2: one row, one panel (up to 8 vectors) at a time. */
T256 static void gemm_bf16p_avx2(const kern_wbp_t *w, size_t n, const uint16_t *A, size_t lda,
                                 float *C, size_t ldc) {
  const size_t Kp = w->Kp;
  const __m256i himask = _mm256_set1_epi32((int)0xffff0000u);
  for (size_t p0 = 0; p0 < w->Np; p0 += PANEL) {
    const size_t pw = w->Np - p0 < PANEL ? w->Np - p0 : PANEL, nq = pw / 8;
    const uint32_t *panel = w->panels + p0 * Kp;
    for (size_t b = 0; b < n; b++) {
      float *c = C + b * ldc + p0;
      __m256 acc[8];
#pragma GCC unroll 8
      for (size_t q = 0; q < 8; q++) acc[q] = q < nq ? _mm256_loadu_ps(c + q * 8) : _mm256_setzero_ps();
      const uint16_t *a = A + b * lda;
      for (size_t kp = 0; kp < Kp; kp++) {
        uint32_t ap;
        memcpy(&ap, a + 2 * kp, 4);
        const __m256 hi = _mm256_set1_ps(bits_f32(ap & 0xffff0000u));
        const __m256 lo = _mm256_set1_ps(bits_f32(ap << 16));
        const uint32_t *wk = panel + kp * pw;
#pragma GCC unroll 8
        for (size_t q = 0; q < 8; q++) {
          if (q >= nq) break;
          __m256i wv = _mm256_load_si256((const __m256i *)(const void *)(wk + q * 8));
          __m256 whi = _mm256_castsi256_ps(_mm256_and_si256(wv, himask));
          __m256 wlo = _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16));
          acc[q] = _mm256_fmadd_ps(lo, wlo, _mm256_fmadd_ps(hi, whi, acc[q]));
        }
      }
#pragma GCC unroll 8
      for (size_t q = 0; q < 8; q++)
        if (q < nq) _mm256_storeu_ps(c + q * 8, acc[q]);
    }
  }
}

/* ---- dispatch ------------------------------------------------------------------ */

typedef struct {
  const char *name;
  void (*gemm)(const kern_w_t *, size_t, const float *, size_t, float *, size_t);
  void (*exp)(size_t, const float *, float *);
  void (*sigmoid)(size_t, const float *, float *);
  void (*tanh)(size_t, const float *, float *);
  void (*gemm_bf16)(const kern_wb_t *, size_t, const uint16_t *, size_t, float *, size_t);
  void (*gemm_bf16p)(const kern_wbp_t *, size_t, const uint16_t *, size_t, float *, size_t);
  int avx512;
  int bf16insn; /* avx512 only: vdpbf16ps/vcvtneps2bf16 (same bits as the emulation) */
} kern_set_t;

static const kern_set_t KERN_SCALAR = {"scalar", gemm_scalar, exp_scalar, sigmoid_scalar,
                                       tanh_scalar, gemm_bf16_scalar, gemm_bf16p_scalar, 0, 0};
static const kern_set_t KERN_AVX2 = {"avx2", gemm_avx2, exp_avx2, sigmoid_avx2, tanh_avx2,
                                     gemm_bf16_avx2, gemm_bf16p_avx2, 0, 0};
static const kern_set_t KERN_AVX512 = {"avx512", gemm_avx512, exp_avx512, sigmoid_avx512,
                                       tanh_avx512, gemm_bf16_avx2, gemm_bf16p_avx512_insn, 1, 1};
static const kern_set_t KERN_AVX512_EMUL = {"avx512", gemm_avx512, exp_avx512, sigmoid_avx512,
                                            tanh_avx512, gemm_bf16_avx2, gemm_bf16p_avx512_emul,
                                            1, 0};

static const kern_set_t *kern_set = &KERN_SCALAR;
static pthread_once_t kern_once = PTHREAD_ONCE_INIT;

/* The one feature set behind "avx512" for all of model/ (these kernels, the
 * head's top-k and expf, the profile's log2 and membership test): AVX-512
 * F/DQ/BW/VL with AVX2, FMA and POPCNT (every AVX-512 CPU since Skylake-SP
 * has them all). */
static int cpu_has512(void) {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("fma");
}
static int cpu_has2(void) {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static const kern_set_t *avx512_set(void) {
  return __builtin_cpu_supports("avx512bf16") ? &KERN_AVX512 : &KERN_AVX512_EMUL;
}

/* The set called name when this CPU runs it, else NULL. */
static const kern_set_t *set_named(const char *name) {
  if (strcmp(name, "scalar") == 0) return &KERN_SCALAR;
  if (strcmp(name, "avx2") == 0) return cpu_has2() ? &KERN_AVX2 : NULL;
  if (strcmp(name, "avx512") == 0) return cpu_has512() ? avx512_set() : NULL;
  if (strcmp(name, "avx512-emul") == 0) return cpu_has512() ? &KERN_AVX512_EMUL : NULL;
  return NULL;
}

static void kern_choose(void) {
  __builtin_cpu_init();
  const char *force = getenv("IX_KERNEL");
  const kern_set_t *set = force ? set_named(force) : NULL;
  if (!set && force && strcmp(force, "avx2") == 0) set = &KERN_SCALAR; /* avx2 forced, absent */
  if (!set) set = cpu_has512() ? avx512_set() : cpu_has2() ? &KERN_AVX2 : &KERN_SCALAR;
  kern_set = set;
}

static inline const kern_set_t *K_(void) {
  pthread_once(&kern_once, kern_choose);
  return kern_set;
}

const char *kern_name(void) { return K_()->name; }

int kern_cpu_avx512(void) {
  K_();
  return cpu_has512();
}

int kern_avx512(void) { return K_()->avx512; }

int kern_select(const char *name) {
  K_();
  const kern_set_t *set = set_named(name);
  if (!set) return IX_EINVAL;
  kern_set = set;
  return 0;
}

void kern_gemm(const kern_w_t *w, size_t n, const float *A, size_t lda, float *C, size_t ldc) {
  if (n == 0) return;
  K_()->gemm(w, n, A, lda, C, ldc);
}

void kern_exp(size_t n, const float *x, float *y) { K_()->exp(n, x, y); }
void kern_sigmoid(size_t n, const float *x, float *y) { K_()->sigmoid(n, x, y); }
void kern_tanh(size_t n, const float *x, float *y) { K_()->tanh(n, x, y); }

void kern_lstm_pointwise(size_t H, const float *pre, const float *c_prev, float *c, float *h,
                         float *act) {
  const kern_set_t *ks = K_();
  if (ks->avx512) {
    lstm_pw_avx512(H, pre, c_prev, c, h, act);
    return;
  }
  /* generic: activate into a local buffer in chunks */
  float buf[4 * 64];
  for (size_t j0 = 0; j0 < H; j0 += 64) {
    size_t m = H - j0 < 64 ? H - j0 : 64;
    ks->sigmoid(m, pre + j0, buf);
    ks->sigmoid(m, pre + H + j0, buf + 64);
    ks->tanh(m, pre + 2 * H + j0, buf + 128);
    ks->sigmoid(m, pre + 3 * H + j0, buf + 192);
    float cn[64];
    for (size_t j = 0; j < m; j++) cn[j] = buf[64 + j] * c_prev[j0 + j] + buf[j] * buf[128 + j];
    float tc[64];
    ks->tanh(m, cn, tc);
    for (size_t j = 0; j < m; j++) {
      c[j0 + j] = cn[j];
      h[j0 + j] = buf[192 + j] * tc[j];
    }
    if (act) {
      memcpy(act + j0, buf, m * sizeof(float));
      memcpy(act + H + j0, buf + 64, m * sizeof(float));
      memcpy(act + 2 * H + j0, buf + 128, m * sizeof(float));
      memcpy(act + 3 * H + j0, buf + 192, m * sizeof(float));
    }
  }
}

size_t kern_indices_ge(size_t n, const float *x, float thr, uint32_t *idx) {
  if (K_()->avx512) return indices_ge_avx512(n, x, thr, idx);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    idx[m] = (uint32_t)i;
    m += x[i] >= thr; /* branch-free */
  }
  return m;
}

float kern_softmax_gate(size_t n, float *x, float g) {
  const kern_set_t *ks = K_();
  if (n == 0) return 0.0f;
  if (ks->avx512) return softmax_avx512(n, x, &g);
  kern_softmax(n, x);
  float p0 = x[0];
  for (size_t i = 0; i < n; i++) x[i] *= g;
  return p0;
}

void kern_softmax(size_t n, float *x) {
  const kern_set_t *ks = K_();
  if (n == 0) return;
  if (ks->avx512) {
    softmax_avx512(n, x, NULL);
    return;
  }
  float mx = x[0];
  for (size_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  for (size_t i = 0; i < n; i++) x[i] -= mx;
  ks->exp(n, x, x);
  float sum = 0.0f;
  for (size_t i = 0; i < n; i++) sum += x[i];
  float inv = 1.0f / sum;
  for (size_t i = 0; i < n; i++) x[i] *= inv;
}

int kern_lstm_fused(const kern_w_t *w, size_t H, size_t n, const float *A, size_t lda,
                    const float *bias, const float *const *add_a, const float *const *add_b,
                    float *const *h, float *const *c) {
  if (!K_()->avx512 || H % 16 || w->N != 4 * H) return IX_EINVAL;
  if (n) lstm_fused_avx512(w, H, n, A, lda, bias, add_a, add_b, h, c);
  return 0;
}

int kern_uses_bf16_insn(void) { return K_()->bf16insn; }

void kern_gemm_bf16(const kern_wb_t *w, size_t n, const uint16_t *A, size_t lda, float *C,
                    size_t ldc) {
  if (n == 0) return;
  K_()->gemm_bf16(w, n, A, lda, C, ldc);
}

void kern_gemm_bf16p(const kern_wbp_t *w, size_t n, const uint16_t *A, size_t lda, float *C,
                     size_t ldc) {
  if (n == 0) return;
  K_()->gemm_bf16p(w, n, A, lda, C, ldc);
}

int kern_lstm_bf16_fused(const kern_wb_t *w, size_t n, const uint16_t *A, size_t lda,
                         const float *bias, const float *const *add_a,
                         const float *const *add_b, uint16_t *const *h16,
                         uint16_t *const *c16) {
  const kern_set_t *ks = K_();
  if (!ks->avx512 || w->H % 16) return IX_EINVAL;
  if (n == 0) return 0;
  if (ks->bf16insn) lstm_bf16_avx512_insn(w, n, A, lda, bias, add_a, add_b, h16, c16);
  else lstm_bf16_avx512_emul(w, n, A, lda, bias, add_a, add_b, h16, c16);
  return 0;
}

void kern_lstm_pointwise_bf16(size_t H, const float *pre, uint16_t *c16, uint16_t *h16) {
  if (K_()->avx512) {
    lstm_pw_bf16_avx512(H, pre, c16, h16);
    return;
  }
  float cf[64], hf[64];
  for (size_t j0 = 0; j0 < H; j0 += 64) {
    size_t m = H - j0 < 64 ? H - j0 : 64;
    /* kern_lstm_pointwise on a 64-unit slice: gate rows H apart */
    float pre4[4 * 64];
    for (size_t v = 0; v < 4; v++) memcpy(pre4 + v * m, pre + v * H + j0, m * sizeof(float));
    for (size_t j = 0; j < m; j++) cf[j] = kern_bf16_to_f32(c16[j0 + j]);
    kern_lstm_pointwise(m, pre4, cf, cf, hf, NULL);
    for (size_t j = 0; j < m; j++) {
      c16[j0 + j] = kern_bf16_from_f32(cf[j]);
      h16[j0 + j] = kern_bf16_from_f32(hf[j]);
    }
  }
}
