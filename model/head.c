/* The prediction head: gated mixture of a vocabulary softmax and a copy
 * distribution over the recent categories (formulas in head.h). */
#include "model/head.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#undef I
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HEAD_X86 1
#define T512H __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,popcnt")))
#endif

#include "model/kernels.h"

void head_vocab_logits(const arch_dims_t *d, const float *params, size_t n, const float *h,
                       size_t ldh, float *z, size_t ldz) {
  arch_layout_t L;
  arch_layout(d, &L);
  for (size_t b = 0; b < n; b++) memcpy(z + b * ldz, params + L.head_bv, d->V * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d->V, (int)d->H, 1.0f, h,
              (int)ldh, params + L.head_wv, (int)d->H, 1.0f, z, (int)ldz);
}

static float dotf(size_t n, const float *a, const float *b) {
  float s = 0.0f;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* log1pf(count) for small counts, from log1pf itself (same bits); the copy
 * logits need one per recent slot per prediction. */
#define LOG1P_TAB 256
static float log1p_tab[LOG1P_TAB];
static pthread_once_t log1p_once = PTHREAD_ONCE_INIT;
static void log1p_init(void) {
  for (unsigned i = 0; i < LOG1P_TAB; i++) log1p_tab[i] = log1pf((float)i);
}
static inline float log1p_count(uint32_t c) {
  return c < LOG1P_TAB ? log1p_tab[c] : log1pf((float)c);
}

#if HEAD_X86
/* glibc's expf (the FMA build, __expf_fma, of the algorithm from Arm's
 * optimized-routines: exp(x) = 2^(k/32) 2^(r/32) with a 32-entry table and a
 * cubic in double precision) for 16 floats at once, the same operations in
 * the same order, so the same bits. Lanes with |x| >= 88 (glibc's special
 * cases) are left to expf by the caller. Whether it matches the libm of this
 * process is checked once at first use (expf_x16_ok), else expf is used. */
static const uint64_t EXPF_TAB[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540};
#define EXPF_INVLN2N 0x40471547652b82feull /* 32 / ln 2 */
#define EXPF_SHIFT 0x4338000000000000ull   /* 0x1.8p52 */
#define EXPF_C0 0x3ebc6af84b912394ull
#define EXPF_C1 0x3f2ebfce50fac4f3ull
#define EXPF_C2 0x3f962e42ff0c52d6ull

T512H static inline __m512d expf_x8(__m512d xd) {
  const __m512d invln2n = _mm512_castsi512_pd(_mm512_set1_epi64((long long)EXPF_INVLN2N));
  const __m512d shift = _mm512_castsi512_pd(_mm512_set1_epi64((long long)EXPF_SHIFT));
  __m512d kd = _mm512_fmadd_pd(invln2n, xd, shift);
  __m512i ki = _mm512_castpd_si512(kd);
  kd = _mm512_sub_pd(kd, shift);
  __m512d r = _mm512_fmsub_pd(invln2n, xd, kd);
  const __m512i t0 = _mm512_loadu_si512((const void *)EXPF_TAB),
                t1 = _mm512_loadu_si512((const void *)(EXPF_TAB + 8)),
                t2 = _mm512_loadu_si512((const void *)(EXPF_TAB + 16)),
                t3 = _mm512_loadu_si512((const void *)(EXPF_TAB + 24));
  __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)),
                                      _mm512_permutex2var_epi64(t0, ki, t1),
                                      _mm512_permutex2var_epi64(t2, ki, t3));
  t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
  __m512d sc = _mm512_castsi512_pd(t);
  __m512d z = _mm512_fmadd_pd(r, _mm512_castsi512_pd(_mm512_set1_epi64((long long)EXPF_C0)),
                              _mm512_castsi512_pd(_mm512_set1_epi64((long long)EXPF_C1)));
  __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(r, _mm512_castsi512_pd(_mm512_set1_epi64((long long)EXPF_C2)),
                              _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(z, r2, y);
  return _mm512_mul_pd(y, sc);
}

/* y[k] = expf(x[k]) for k < n <= 16 (lanes at n and beyond: 0); returns 0,
 * or -1 when a lane needs glibc's special-case path (|x| >= 88 or not
 * finite), y then unspecified. */
T512H static int expf_x16(unsigned n, const float *x, float *y) {
  __mmask16 live = (__mmask16)((1u << n) - 1u);
  __m512 v = _mm512_maskz_loadu_ps(live, x);
  /* glibc: (bits >> 20) & 0x7ff >= top12(88.0f) */
  __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(v), 20), _mm512_set1_epi32(0x7ff));
  if (_mm512_mask_cmpge_epu32_mask(live, top, _mm512_set1_epi32(0x42b))) return -1;
  __m256 lo = _mm512_cvtpd_ps(expf_x8(_mm512_cvtps_pd(_mm512_castps512_ps256(v))));
  __m256 hi = _mm512_cvtpd_ps(expf_x8(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1))));
  __m512 e = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  _mm512_storeu_ps(y, _mm512_maskz_mov_ps(live, e));
  return 0;
}

/* y[k] /= s for k < 16 (exact IEEE division, as the scalar loop) */
T512H static void div_x16(float *y, float s) {
  _mm512_storeu_ps(y, _mm512_div_ps(_mm512_loadu_ps(y), _mm512_set1_ps(s)));
}

/* expf_x16 against this process's expf on inputs of every magnitude the copy
 * logits reach: a different libm (or a non-FMA build of it) is caught here and
 * the scalar loop is used instead. */
static int expf_x16_ok;
static pthread_once_t expf_x16_once = PTHREAD_ONCE_INIT;
static void expf_x16_probe(void) {
  if (!kern_cpu_avx512()) return;
  uint32_t u = 0x9e3779b9u;
  for (int t = 0; t < 4096; t++) {
    float x[16], y[16];
    for (int l = 0; l < 16; l++) {
      u = u * 1664525u + 1013904223u;
      x[l] = -87.0f * (float)(u >> 8) / 16777216.0f; /* [-87, 0] */
      if (t & 1) x[l] *= 1.0f / 64.0f;             /* and near 0 */
    }
    if (expf_x16(16, x, y) != 0) return;
    for (int l = 0; l < 16; l++)
      if (memcmp(&y[l], &(float){expf(x[l])}, sizeof(float)) != 0) return;
  }
  expf_x16_ok = 1;
}

static int head_fast_expf_active(void) {
  pthread_once(&expf_x16_once, expf_x16_probe);
  return expf_x16_ok && kern_avx512();
}
#endif

/* The copy softmax over the n filled slots (s_copy given). */
static void copy_softmax(unsigned n, head_out_t *out) {
  float mx = -INFINITY;
  for (unsigned k = 0; k < n; k++)
    if (out->s_copy[k] > mx) mx = out->s_copy[k];
#if HEAD_X86
  if (head_fast_expf_active()) {
    /* the same expf, the same sequential sum, the same divisions, in
     * vectors where the order does not matter */
    float x[ARCH_K];
    for (unsigned k = 0; k < n; k++) x[k] = out->s_copy[k] - mx;
    if (expf_x16(n, x, out->p_copy) == 0) {
      float sum = 0.0f;
      for (unsigned k = 0; k < n; k++) sum += out->p_copy[k];
      div_x16(out->p_copy, sum); /* lanes >= n: 0 / sum = 0 */
      return;
    }
  }
#endif
  float sum = 0.0f;
  for (unsigned k = 0; k < n; k++) sum += (out->p_copy[k] = expf(out->s_copy[k] - mx));
  for (unsigned k = 0; k < n; k++) out->p_copy[k] /= sum;
}

/* Gate or expert weights and the copy distribution (everything but the
 * vocabulary softmax); m_slot = what the recent slots get. */
static void finish_gate_copy(const arch_layout_t *L, const float *params, const float *dots,
                             const arch_state_t *s, head_out_t *out) {
  pthread_once(&log1p_once, log1p_init);
  const int experts = L->mix_w < L->total;
  if (experts) {
    float lg[ARCH_N_EXPERTS], mx = -INFINITY, sum = 0.0f;
    for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) {
      lg[e] = dots[ARCH_K + e] + params[L->mix_b + e];
      if (lg[e] > mx) mx = lg[e];
    }
    for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) sum += (out->pi[e] = expf(lg[e] - mx));
    for (unsigned e = 0; e < ARCH_N_EXPERTS; e++) out->pi[e] /= sum;
    out->g = out->pi[ARCH_X_VOCAB];
    out->g_logit = 0.0f;
  } else {
    out->g_logit = dots[ARCH_K] + params[L->gate_bg];
    out->g = 1.0f / (1.0f + expf(-out->g_logit));
    out->pi[ARCH_X_VOCAB] = out->g;
    out->pi[ARCH_X_COPY] = 1.0f - out->g;
    out->pi[ARCH_X_RECENCY] = out->pi[ARCH_X_DECAY] = 0.0f;
  }
  unsigned n = s->n_recent <= ARCH_K ? s->n_recent : ARCH_K;
  out->n_recent = n;
  memset(out->s_copy, 0, sizeof(out->s_copy));
  memset(out->p_copy, 0, sizeof(out->p_copy));
  memset(out->p_rec, 0, sizeof(out->p_rec));
  memset(out->p_dec, 0, sizeof(out->p_dec));
  memset(out->m_slot, 0, sizeof(out->m_slot));
  if (n == 0) return;
  float wf = params[L->copy_wf];
  for (unsigned k = 0; k < n; k++)
    out->s_copy[k] = dots[k] + params[L->copy_bp + k] + wf * log1p_count(s->recent[k].count);
  copy_softmax(n, out);
  const float cg = 1.0f - out->g;
  if (!experts) {
    for (unsigned k = 0; k < n; k++) out->m_slot[k] = cg * out->p_copy[k];
    return;
  }
  float beta = params[L->x_beta], b = 1.0f, sr = 0.0f, sd = 0.0f;
  for (unsigned k = 0; k < n; k++) {
    sr += (out->p_rec[k] = b);
    b *= beta;
    sd += (out->p_dec[k] = s->dec_w[k] > 0.0f ? s->dec_w[k] : 0.0f);
  }
  for (unsigned k = 0; k < n; k++) {
    out->p_rec[k] /= sr;
    out->p_dec[k] = sd > 0.0f ? out->p_dec[k] / sd : 1.0f / (float)n;
    out->m_slot[k] = out->pi[ARCH_X_COPY] * out->p_copy[k] +
                     out->pi[ARCH_X_RECENCY] * out->p_rec[k] + out->pi[ARCH_X_DECAY] * out->p_dec[k];
  }
}

void head_finish_dots(const arch_dims_t *d, const float *params, const float *dots,
                      const arch_state_t *s, float *z, head_out_t *out) {
  arch_layout_t L;
  arch_layout(d, &L);
  kern_softmax(d->V, z);
  out->p_vocab_other = z[0];
  finish_gate_copy(&L, params, dots, s, out);
}

/* The copy mass into q (already g p_vocab) or oov_p. */
static void mix_copy(const head_out_t *out, const arch_state_t *s, float *q, float *oov_p,
                     size_t V) {
  memset(oov_p, 0, ARCH_K * sizeof(float));
  for (unsigned k = 0; k < out->n_recent; k++) {
    int32_t idx = s->recent[k].idx;
    if (idx > 0 && (size_t)idx < V) q[idx] += out->m_slot[k];
    else oov_p[k] = out->m_slot[k];
  }
}

void head_finish_mix(const arch_dims_t *d, const float *params, const float *dots,
                     const arch_state_t *s, float *z, head_out_t *out, float *oov_p) {
  arch_layout_t L;
  arch_layout(d, &L);
  finish_gate_copy(&L, params, dots, s, out);
  out->p_vocab_other = kern_softmax_gate(d->V, z, out->g);
  mix_copy(out, s, z, oov_p, d->V);
}

void head_finish(const arch_dims_t *d, const float *params, const float *h,
                 const arch_state_t *s, float *z, head_out_t *out) {
  arch_layout_t L;
  arch_layout(d, &L);
  const size_t H = d->H;
  float dots[ARCH_K + ARCH_N_EXPERTS];
  unsigned n = s->n_recent <= ARCH_K ? s->n_recent : ARCH_K;
  for (unsigned k = 0; k < ARCH_K; k++) dots[k] = k < n ? dotf(H, params + L.copy_wp + k * H, h) : 0.0f;
  if (d->flags & ARCH_F_EXPERTS)
    for (unsigned e = 0; e < ARCH_N_EXPERTS; e++)
      dots[ARCH_K + e] = dotf(H, params + L.mix_w + e * H, h);
  else
    dots[ARCH_K] = dotf(H, params + L.gate_wg, h);
  head_finish_dots(d, params, dots, s, z, out);
}

void head_forward(const arch_dims_t *d, const float *params, const float *h,
                  const arch_state_t *s, float *p_vocab, head_out_t *out) {
  arch_layout_t L;
  arch_layout(d, &L);
  const size_t H = d->H;
  for (size_t j = 0; j < d->V; j++)
    p_vocab[j] = dotf(H, params + L.head_wv + j * H, h) + params[L.head_bv + j];
  head_finish(d, params, h, s, p_vocab, out);
}

float head_prob(const head_out_t *out, const float *p_vocab, const arch_state_t *s,
                uint64_t cat, int32_t cat_idx) {
  float p = cat_idx > 0 ? out->g * p_vocab[cat_idx] : 0.0f;
  float pc = 0.0f;
  for (unsigned k = 0; k < out->n_recent; k++)
    if (s->recent[k].cat == cat) pc += out->m_slot[k];
  return p + pc;
}

float head_prob_target(const head_out_t *out, const float *p_vocab, const arch_state_t *s,
                       uint64_t cat, int32_t cat_idx) {
  if (cat_idx > 0) return head_prob(out, p_vocab, s, cat, cat_idx);
  for (unsigned k = 0; k < out->n_recent; k++)
    if (s->recent[k].cat == cat) return head_prob(out, p_vocab, s, cat, cat_idx);
  return out->g * out->p_vocab_other;
}

void head_mix(const head_out_t *out, const arch_state_t *s, float *p_vocab, float *oov_p,
              size_t V) {
  const float g = out->g;
  for (size_t j = 0; j < V; j++) p_vocab[j] *= g;
  mix_copy(out, s, p_vocab, oov_p, V);
}

/* Insert (c, v) into the descending list of at most k; strict > keeps the
 * earlier candidate first on ties. */
static inline void topk_put(size_t k, size_t *m, uint64_t *cat, float *p, uint64_t c, float v) {
  size_t at = *m < k ? *m : k - 1;
  while (at > 0 && p[at - 1] < v) {
    p[at] = p[at - 1];
    cat[at] = cat[at - 1];
    at--;
  }
  p[at] = v;
  cat[at] = c;
  if (*m < k) (*m)++;
}

/* Full scan with a running threshold (the reference; also the fallback). */
static size_t topk_scan(const arch_dims_t *d, const float *q, const uint64_t *vocab_ids, size_t k,
                        uint64_t *cat, float *p) {
  size_t m = 0;
  float thr = -1.0f; /* admit anything until full */
  for (size_t j = 1; j < d->V; j++) {
    if (q[j] > thr && vocab_ids[j] != 0) {
      topk_put(k, &m, cat, p, vocab_ids[j], q[j]);
      if (m == k) thr = p[k - 1];
    }
  }
  return m;
}

#define TOPK_COLS 64
#define TOPK_MAXCAND 512
#define TOPK_MAXV 4096 /* larger vocabularies use the full scan */

/* Two passes: the column maxima over 64 interleaved columns give a lower
 * bound for the k-th largest value (the k-th largest column maximum: k
 * columns hold an element at least that large); then only the elements at or
 * above it are ranked, in index order, so ties resolve as in the full scan.
 * Falls back to the full scan when the bound is unusable. The portable
 * version; topk_vocab_avx512 below computes the same result. */
__attribute__((target_clones("avx2", "default")))
static size_t topk_vocab_generic(const arch_dims_t *d, const float *q, const uint64_t *vocab_ids,
                                 size_t k, uint64_t *cat, float *p) {
  size_t V = d->V;
  if (k > TOPK_COLS / 2 || V < 4 * TOPK_COLS || V - 1 > TOPK_MAXV)
    return topk_scan(d, q, vocab_ids, k, cat, p);
  float cm[TOPK_COLS];
  const float *q1 = q + 1;
  size_t n = V - 1, full = n / TOPK_COLS * TOPK_COLS;
  memcpy(cm, q1, sizeof cm);
  for (size_t j = TOPK_COLS; j < full; j += TOPK_COLS)
    for (size_t l = 0; l < TOPK_COLS; l++) cm[l] = q1[j + l] > cm[l] ? q1[j + l] : cm[l];
  for (size_t j = full; j < n; j++)
    cm[j - full] = q1[j] > cm[j - full] ? q1[j] : cm[j - full];
  /* the k-th largest column maximum: the smallest value with fewer than k
   * values above it (counting is branch-free and vectorises) */
  int32_t above[TOPK_COLS] = {0};
  for (size_t t = 0; t < TOPK_COLS; t++)
    for (size_t l = 0; l < TOPK_COLS; l++) above[l] += cm[t] > cm[l];
  /* q >= 0, so the float order is the order of the bit patterns: an unsigned
   * min reduction, branch-free (a data-dependent branch here mispredicted
   * often enough to be a quarter of this function's time) */
  uint32_t cmb[TOPK_COLS], thr_bits = UINT32_MAX;
  memcpy(cmb, cm, sizeof cmb);
  for (size_t l = 0; l < TOPK_COLS; l++) {
    uint32_t t = (size_t)above[l] < k ? cmb[l] : UINT32_MAX;
    thr_bits = t < thr_bits ? t : thr_bits;
  }
  float thr;
  memcpy(&thr, &thr_bits, sizeof thr);
  uint32_t cand[TOPK_MAXV + 16];
  size_t nc = kern_indices_ge(n, q1, thr, cand);
  if (nc > TOPK_MAXCAND) return topk_scan(d, q, vocab_ids, k, cat, p);
  /* rank each candidate by counting: larger values first, ties by index */
  float cv[TOPK_MAXCAND];
  for (size_t i = 0; i < nc; i++) cv[i] = vocab_ids[cand[i] + 1] != 0 ? q1[cand[i]] : -1.0f;
  int32_t rank[TOPK_MAXCAND];
  memset(rank, 0, nc * sizeof(int32_t));
  for (size_t t = 0; t < nc; t++) {
    const float v = cv[t];
    for (size_t i = 0; i < nc; i++) rank[i] += (v > cv[i]) + ((v == cv[i]) & (i > t));
  }
  /* scatter the ranked ones, branch-free: the others go to slot k */
  uint64_t cat_l[TOPK_COLS / 2 + 1];
  float p_l[TOPK_COLS / 2 + 1];
  size_t m = 0;
  for (size_t i = 0; i < nc; i++) {
    size_t ok = (cv[i] >= 0.0f) & ((size_t)rank[i] < k);
    size_t at = ok ? (size_t)rank[i] : k;
    cat_l[at] = vocab_ids[cand[i] + 1];
    p_l[at] = cv[i];
    m += ok;
  }
  if (m < k) return topk_scan(d, q, vocab_ids, k, cat, p); /* unused slots took the bound */
  memcpy(cat, cat_l, k * sizeof *cat);
  memcpy(p, p_l, k * sizeof *p);
  return m;
}

/* cat[rank[i]] = the id of cand[i] (vocabulary index, or V + r for recent
 * slot r), p[rank[i]] = cv[i] for i < m (the ranks are a permutation of
 * 0..m-1). Plain scalar code on purpose: built for AVX-512 this loop becomes
 * gathers and scatters, which are slow on AMD. */
__attribute__((noinline)) static void topk_place(size_t m, const uint32_t *cand, const float *cv,
                                                 const int32_t *rank, const uint64_t *vocab_ids,
                                                 size_t V, const arch_state_t *s, uint64_t *cat,
                                                 float *p) {
  for (size_t i = 0; i < m; i++) {
    cat[rank[i]] = cand[i] < V ? vocab_ids[cand[i]] : s->recent[cand[i] - V].cat;
    p[rank[i]] = cv[i];
  }
}

#if HEAD_X86

/* rank[c] for the nc candidate values cv (padded with -2 to nv whole
 * vectors): larger values first, ties by index. The accumulators stay in
 * registers when nv is a constant (the usual nc is 30-50). First without the
 * tie rule (one compare per pair): the ranks of the R used slots (cv >= 0)
 * are then a permutation of 0..R-1 exactly when no two of them are equal
 * (their sum is R(R-1)/2); otherwise counted again with it. */
T512H static inline __attribute__((always_inline)) void rank_avx512(size_t nv, size_t nc,
                                                                   const float *cv,
                                                                   int32_t *rank) {
  __m512i r[(TOPK_MAXCAND + ARCH_K) / 16];
  const __m512i one = _mm512_set1_epi32(1);
  for (size_t w = 0; w < nv; w++) r[w] = _mm512_setzero_si512();
  for (size_t u = 0; u < nc; u++) {
    const __m512 v = _mm512_set1_ps(cv[u]);
    for (size_t w = 0; w < nv; w++)
      r[w] = _mm512_mask_add_epi32(r[w], _mm512_cmp_ps_mask(v, _mm512_loadu_ps(cv + 16 * w), _CMP_GT_OQ),
                                   r[w], one);
  }
  __m512i sum = _mm512_setzero_si512();
  size_t used = 0;
  for (size_t w = 0; w < nv; w++) {
    __mmask16 ok = _mm512_cmp_ps_mask(_mm512_loadu_ps(cv + 16 * w), _mm512_setzero_ps(), _CMP_GE_OQ);
    sum = _mm512_mask_add_epi32(sum, ok, sum, r[w]);
    used += (size_t)_mm_popcnt_u32(ok);
  }
  if ((size_t)_mm512_reduce_add_epi32(sum) != used * (used - (used > 0)) / 2) {
    for (size_t w = 0; w < nv; w++) r[w] = _mm512_setzero_si512();
    for (size_t u = 0; u < nc; u++) {
      const __m512 v = _mm512_set1_ps(cv[u]);
      for (size_t w = 0; w < nv; w++) {
        /* lanes c > u count cv[u] >= cv[c], lanes c < u count cv[u] > cv[c]
         * (lane c == u: > is false) */
        long sh = (long)u + 1 - 16 * (long)w;
        __mmask16 after = sh <= 0 ? (__mmask16)0xffff : sh >= 16 ? 0 : (__mmask16)(0xffffu << sh);
        __m512 x = _mm512_loadu_ps(cv + 16 * w);
        __mmask16 mk = _mm512_mask_cmp_ps_mask(after, v, x, _CMP_GE_OQ) |
                       _mm512_mask_cmp_ps_mask((__mmask16)~after, v, x, _CMP_GT_OQ);
        r[w] = _mm512_mask_add_epi32(r[w], mk, r[w], one);
      }
    }
  }
  for (size_t w = 0; w < nv; w++) _mm512_storeu_si512((void *)(rank + 16 * w), r[w]);
}

/* The same algorithm as topk_vocab_generic, written for AVX-512 (its compiled
 * form spent most of its time in a serial min reduction, a memory-operand
 * compress and candidate gathers): the column maxima in four registers, the
 * k-th largest of them by counting in registers, the candidates' indices and
 * values compressed together in one pass, their ranks counted 16 at a time.
 * Any bound with at least k elements at or above it gives the same top k, so
 * the result equals the full scan's (test_head_topk checks it). */
T512H static size_t topk_avx512(const arch_dims_t *d, const float *q, const float *oov_p,
                                const arch_state_t *s, const uint64_t *vocab_ids, size_t k,
                                uint64_t *cat, float *p) {
  size_t V = d->V;
  if (k > TOPK_COLS / 2 || V < 4 * TOPK_COLS || V - 1 > TOPK_MAXV) return SIZE_MAX;
  const float *q1 = q + 1;
  const size_t n = V - 1, full = n / TOPK_COLS * TOPK_COLS;
  __m512 c0 = _mm512_loadu_ps(q1), c1 = _mm512_loadu_ps(q1 + 16),
         c2 = _mm512_loadu_ps(q1 + 32), c3 = _mm512_loadu_ps(q1 + 48);
  for (size_t j = TOPK_COLS; j < full; j += TOPK_COLS) {
    c0 = _mm512_max_ps(c0, _mm512_loadu_ps(q1 + j));
    c1 = _mm512_max_ps(c1, _mm512_loadu_ps(q1 + j + 16));
    c2 = _mm512_max_ps(c2, _mm512_loadu_ps(q1 + j + 32));
    c3 = _mm512_max_ps(c3, _mm512_loadu_ps(q1 + j + 48));
  }
  {
    /* the last partial row, up to 63 elements, into the first columns */
    size_t r = n - full;
    __m512 *cs[4] = {&c0, &c1, &c2, &c3};
    for (size_t l = 0; l < 4 && r > 16 * l; l++) {
      size_t rl = r - 16 * l;
      __mmask16 mk = rl >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rl) - 1u);
      *cs[l] = _mm512_mask_max_ps(*cs[l], mk, *cs[l], _mm512_maskz_loadu_ps(mk, q1 + full + 16 * l));
    }
  }
  /* above[l] = how many column maxima exceed column l's; the bound is the
   * smallest maximum with fewer than k above it (q >= 0: the unsigned order
   * of the bit patterns is the float order) */
  float cm[TOPK_COLS];
  _mm512_storeu_ps(cm, c0);
  _mm512_storeu_ps(cm + 16, c1);
  _mm512_storeu_ps(cm + 32, c2);
  _mm512_storeu_ps(cm + 48, c3);
  const __m512i one = _mm512_set1_epi32(1);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t t = 0; t < TOPK_COLS; t++) {
    __m512 v = _mm512_set1_ps(cm[t]);
    a0 = _mm512_mask_add_epi32(a0, _mm512_cmp_ps_mask(v, c0, _CMP_GT_OQ), a0, one);
    a1 = _mm512_mask_add_epi32(a1, _mm512_cmp_ps_mask(v, c1, _CMP_GT_OQ), a1, one);
    a2 = _mm512_mask_add_epi32(a2, _mm512_cmp_ps_mask(v, c2, _CMP_GT_OQ), a2, one);
    a3 = _mm512_mask_add_epi32(a3, _mm512_cmp_ps_mask(v, c3, _CMP_GT_OQ), a3, one);
  }
  const __m512i kk = _mm512_set1_epi32((int)k);
  __m512i big = _mm512_set1_epi32(-1);
  __m512i b = _mm512_mask_min_epu32(big, _mm512_cmplt_epi32_mask(a0, kk), big, _mm512_castps_si512(c0));
  b = _mm512_mask_min_epu32(b, _mm512_cmplt_epi32_mask(a1, kk), b, _mm512_castps_si512(c1));
  b = _mm512_mask_min_epu32(b, _mm512_cmplt_epi32_mask(a2, kk), b, _mm512_castps_si512(c2));
  b = _mm512_mask_min_epu32(b, _mm512_cmplt_epi32_mask(a3, kk), b, _mm512_castps_si512(c3));
  uint32_t thr_bits = _mm512_reduce_min_epu32(b);
  float thr;
  memcpy(&thr, &thr_bits, sizeof thr);
  /* candidates: index and value of every element >= thr, in index order,
   * compressed in registers (the memory form of vpcompressd is microcoded
   * and slow on AMD Zen 4/5); whole vectors are stored, so the buffers have
   * 16 spare slots */
  uint32_t cand[TOPK_MAXV + 16 + ARCH_K];
  float cv[TOPK_MAXV + 32 + ARCH_K];
  const __m512 t = _mm512_set1_ps(thr);
  __m512i iv = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
  const __m512i step = _mm512_set1_epi32(16);
  size_t nc = 0, i = 0;
  /* 64 at a time: the four stores of a group need only the group's start,
   * so the serial chain (mask -> popcount -> offset) is once per 64 */
  for (; i + 64 <= n; i += 64) {
    __m512 x0 = _mm512_loadu_ps(q1 + i), x1 = _mm512_loadu_ps(q1 + i + 16),
           x2 = _mm512_loadu_ps(q1 + i + 32), x3 = _mm512_loadu_ps(q1 + i + 48);
    __mmask16 m0 = _mm512_cmp_ps_mask(x0, t, _CMP_GE_OQ), m1 = _mm512_cmp_ps_mask(x1, t, _CMP_GE_OQ),
              m2 = _mm512_cmp_ps_mask(x2, t, _CMP_GE_OQ), m3 = _mm512_cmp_ps_mask(x3, t, _CMP_GE_OQ);
    size_t o1 = (size_t)_mm_popcnt_u32(m0), o2 = o1 + (size_t)_mm_popcnt_u32(m1),
           o3 = o2 + (size_t)_mm_popcnt_u32(m2), o4 = o3 + (size_t)_mm_popcnt_u32(m3);
    _mm512_storeu_si512((void *)(cand + nc), _mm512_maskz_compress_epi32(m0, iv));
    _mm512_storeu_ps(cv + nc, _mm512_maskz_compress_ps(m0, x0));
    _mm512_storeu_si512((void *)(cand + nc + o1), _mm512_maskz_compress_epi32(m1, _mm512_add_epi32(iv, step)));
    _mm512_storeu_ps(cv + nc + o1, _mm512_maskz_compress_ps(m1, x1));
    _mm512_storeu_si512((void *)(cand + nc + o2),
                        _mm512_maskz_compress_epi32(m2, _mm512_add_epi32(iv, _mm512_add_epi32(step, step))));
    _mm512_storeu_ps(cv + nc + o2, _mm512_maskz_compress_ps(m2, x2));
    _mm512_storeu_si512((void *)(cand + nc + o3),
                        _mm512_maskz_compress_epi32(m3, _mm512_add_epi32(iv, _mm512_set1_epi32(48))));
    _mm512_storeu_ps(cv + nc + o3, _mm512_maskz_compress_ps(m3, x3));
    nc += o4;
    iv = _mm512_add_epi32(iv, _mm512_set1_epi32(64));
  }
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(q1 + i);
    __mmask16 mk = _mm512_cmp_ps_mask(x, t, _CMP_GE_OQ);
    _mm512_storeu_si512((void *)(cand + nc), _mm512_maskz_compress_epi32(mk, iv));
    _mm512_storeu_ps(cv + nc, _mm512_maskz_compress_ps(mk, x));
    nc += (size_t)_mm_popcnt_u32(mk);
    iv = _mm512_add_epi32(iv, step);
  }
  if (i < n) {
    __mmask16 tail = (__mmask16)((1u << (n - i)) - 1u);
    __m512 x = _mm512_maskz_loadu_ps(tail, q1 + i);
    __mmask16 mk = _mm512_mask_cmp_ps_mask(tail, x, t, _CMP_GE_OQ);
    _mm512_storeu_si512((void *)(cand + nc), _mm512_maskz_compress_epi32(mk, iv));
    _mm512_storeu_ps(cv + nc, _mm512_maskz_compress_ps(mk, x));
    nc += (size_t)_mm_popcnt_u32(mk);
  }
  if (nc > TOPK_MAXCAND) return SIZE_MAX;
  /* unused vocabulary slots rank below everything (-1) */
  for (size_t c = 0; c < nc; c++) cv[c] = vocab_ids[cand[c]] != 0 ? cv[c] : -1.0f;
  /* the out-of-vocabulary recent categories with copy mass join as V + r:
   * after every vocabulary candidate and in recency order, so the tie rule
   * (earlier first) ranks them as head_topk's merge does */
  const unsigned nr = s->n_recent <= ARCH_K ? s->n_recent : ARCH_K;
  for (unsigned r = 0; r < nr; r++) {
    cand[nc] = (uint32_t)(V + r);
    cv[nc] = oov_p[r];
    nc += s->recent[r].idx <= 0 && oov_p[r] > 0.0f;
  }
  /* padding to whole vectors with -2 (never above a real candidate, and its
   * ranks are unused) */
  const size_t nv = (nc + 15) / 16;
  for (size_t c = nc; c < nv * 16; c++) cv[c] = -2.0f;
  /* rank[c] = #{u < c: cv[u] >= cv[c]} + #{u > c: cv[u] > cv[c]}: larger
   * values first, ties by index, as the full scan orders them */
  int32_t rank[TOPK_MAXCAND + ARCH_K];
  switch (nv) {
  case 1: rank_avx512(1, nc, cv, rank); break;
  case 2: rank_avx512(2, nc, cv, rank); break;
  case 3: rank_avx512(3, nc, cv, rank); break;
  case 4: rank_avx512(4, nc, cv, rank); break;
  default: rank_avx512(nv, nc, cv, rank); break;
  }
  /* keep rank < k of the used slots (cv >= 0; the padding is -2), compressed
   * in order; ranks are distinct, so m <= k */
  size_t m = 0;
  for (size_t w = 0; w < nv; w++) {
    __m512i rw = _mm512_loadu_si512((const void *)(rank + 16 * w));
    __m512 xw = _mm512_loadu_ps(cv + 16 * w);
    __mmask16 ok = _mm512_cmp_ps_mask(xw, _mm512_setzero_ps(), _CMP_GE_OQ) &
                   _mm512_cmplt_epi32_mask(rw, _mm512_set1_epi32((int)k));
    _mm512_storeu_si512((void *)(rank + m), _mm512_maskz_compress_epi32(ok, rw));
    _mm512_storeu_ps(cv + m, _mm512_maskz_compress_ps(ok, xw));
    _mm512_storeu_si512((void *)(cand + m),
                        _mm512_maskz_compress_epi32(ok, _mm512_loadu_si512((const void *)(cand + 16 * w))));
    m += (size_t)_mm_popcnt_u32(ok);
  }
  if (m < k) return SIZE_MAX; /* unused slots took the bound */
  topk_place(m, cand, cv, rank, vocab_ids, V, s, cat, p);
  /* every vocabulary element left out is < thr: the k-th must be >= thr
   * (it may not be when unused slots were among the >= thr and recent slots
   * below thr filled the list) */
  return p[k - 1] >= thr ? m : SIZE_MAX;
}

#endif

size_t head_topk(const arch_dims_t *d, const float *q, const float *oov_p,
                 const arch_state_t *s, const uint64_t *vocab_ids, size_t k,
                 uint64_t *cat, float *p) {
  if (k == 0) return 0;
#if HEAD_X86
  /* the AVX-512 top-k (vocabulary and out-of-vocabulary slots in one
   * ranking) runs with the avx512 kernel set; IX_KERNEL=scalar|avx2 selects
   * the portable one; both give the full scan's result */
  if (kern_avx512()) {
    size_t m = topk_avx512(d, q, oov_p, s, vocab_ids, k, cat, p);
    if (m != SIZE_MAX) return m;
  }
#endif
  size_t m = topk_vocab_generic(d, q, vocab_ids, k, cat, p);
  unsigned n = s->n_recent <= ARCH_K ? s->n_recent : ARCH_K;
  for (unsigned r = 0; r < n; r++) {
    if (s->recent[r].idx > 0 || !(oov_p[r] > 0.0f)) continue;
    if (m < k || oov_p[r] > p[m - 1]) topk_put(k, &m, cat, p, s->recent[r].cat, oov_p[r]);
  }
  return m;
}
