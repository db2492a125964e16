/* Long-term profile: decayed category counts in ARCH_P slots of the state,
 * p_long, the Jensen-Shannon divergence against p_next, rising categories. */
#include "model/profile.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PROFILE_X86 1
#endif

#include "model/kernels.h"

void profile_decay(arch_state_t *s, int64_t ts_ms, float half_life_s) {
  if (s->n_profile == 0 || ts_ms <= s->profile_ts_ms || !(half_life_s > 0.0f)) {
    if (ts_ms > s->profile_ts_ms || s->n_profile == 0) s->profile_ts_ms = ts_ms;
    return;
  }
  double dt_s = (double)(ts_ms - s->profile_ts_ms) / 1000.0;
  float f = (float)exp2(-dt_s / (double)half_life_s);
  for (unsigned j = 0; j < s->n_profile; j++) s->profile[j].weight *= f;
  s->profile_ts_ms = ts_ms;
}

void profile_add(arch_state_t *s, uint64_t cat, int32_t idx) {
  unsigned n = s->n_profile;
  for (unsigned j = 0; j < n; j++) {
    if (s->profile[j].cat == cat) {
      s->profile[j].weight += 1.0f;
      return;
    }
  }
  unsigned slot;
  if (n < ARCH_P) {
    slot = n;
    s->n_profile = (uint8_t)(n + 1);
  } else {
    slot = 0;
    for (unsigned j = 1; j < n; j++)
      if (s->profile[j].weight < s->profile[slot].weight) slot = j;
  }
  s->profile[slot].cat = cat;
  s->profile[slot].weight = 1.0f;
  s->profile[slot].idx = idx;
}

float profile_plong(const arch_state_t *s, float *p) {
  float sum = 0.0f;
  for (unsigned j = 0; j < s->n_profile; j++) sum += s->profile[j].weight;
  for (unsigned j = 0; j < s->n_profile; j++) p[j] = sum > 0.0f ? s->profile[j].weight / sum : 0.0f;
  return sum;
}

/* x log2(2x / (x + y)), 0 for x == 0 */
static double js_term(double x, double y) {
  return x > 0.0 ? x * log2(2.0 * x / (x + y)) : 0.0;
}

#if PROFILE_X86
/* glibc's log2 (the FMA build, __log2_fma, of the algorithm from Arm's
 * optimized-routines: a 64-entry table of 1/c and log2(c), a polynomial in
 * r = z/c - 1 with a hi/lo split, and a longer polynomial near 1) for 8
 * doubles at once, the same operations in the same order, so the same bits.
 * Checked against this process's log2 at first use (log2_x8_ok); lanes
 * outside glibc's fast paths (x <= 0, subnormal, inf, nan) are left to
 * log2. The constants are glibc's __log2_data. */
static const uint64_t LOG2_C[18] = { /* poly, poly1 */
    0x3ff7154765200000, 0x3de705fc2eefa200, 0xbfe71547652b8339, 0x3fdec709dc3a04be, 0xbfd7154764702ffb, 0x3fd2776c50034c48, 0xbfcec7b328ea92bc, 0x3fca6225e117f92e, 0xbfe71547652b82fe, 0x3fdec709dc3a03f7, 0xbfd71547652b7c3f, 0x3fd2776c50f05be4, 0xbfcec709dd768fe5, 0x3fca61761ec4e736, 0xbfc7153fbc64a79b, 0x3fc484d154f01b4a, 0xbfc289e4a72c383c, 0x3fc0b32f285aee66};
static const uint64_t LOG2_T[128] = { /* invc, logc */
    0x3ff724286bb1acf8, 0xbfe1095feecdb000, 0x3ff6e1f766d2cca1, 0xbfe08494bd76d000,
    0x3ff6a13d0e30d48a, 0xbfe00143aee8f800, 0x3ff661ec32d06c85, 0xbfdefec5360b4000,
    0x3ff623fa951198f8, 0xbfddfdd91ab7e000, 0x3ff5e75ba4cf026c, 0xbfdcffae0cc79000,
    0x3ff5ac055a214fb8, 0xbfdc043811fda000, 0x3ff571ed0f166e1e, 0xbfdb0b67323ae000,
    0x3ff53909590bf835, 0xbfda152f5a2db000, 0x3ff5014fed61addd, 0xbfd9217f5af86000,
    0x3ff4cab88e487bd0, 0xbfd8304db0719000, 0x3ff49539b4334fee, 0xbfd74189f9a9e000,
    0x3ff460cbdfafd569, 0xbfd6552bb5199000, 0x3ff42d664ee4b953, 0xbfd56b23a29b1000,
    0x3ff3fb01111dd8a6, 0xbfd483650f5fa000, 0x3ff3c995b70c5836, 0xbfd39de937f6a000,
    0x3ff3991c4ab6fd4a, 0xbfd2baa1538d6000, 0x3ff3698e0ce099b5, 0xbfd1d98340ca4000,
    0x3ff33ae48213e7b2, 0xbfd0fa853a40e000, 0x3ff30d191985bdb1, 0xbfd01d9c32e73000,
    0x3ff2e025cab271d7, 0xbfce857da2fa6000, 0x3ff2b404cf13cd82, 0xbfccd3c8633d8000,
    0x3ff288b02c7ccb50, 0xbfcb26034c14a000, 0x3ff25e2263944de5, 0xbfc97c1c2f4fe000,
    0x3ff234563d8615b1, 0xbfc7d6023f800000, 0x3ff20b46e33eaf38, 0xbfc633a71a05e000,
    0x3ff1e2eefdcda3dd, 0xbfc494f5e9570000, 0x3ff1bb4a580b3930, 0xbfc2f9e424e0a000,
    0x3ff19453847f2200, 0xbfc162595afdc000, 0x3ff16e06c0d5d73c, 0xbfbf9c9a75bd8000,
    0x3ff1485f47b7e4c2, 0xbfbc7b575bf9c000, 0x3ff12358ad0085d1, 0xbfb960c60ff48000,
    0x3ff0fef00f532227, 0xbfb64ce247b60000, 0x3ff0db2077d03a8f, 0xbfb33f78b2014000,
    0x3ff0b7e6d65980d9, 0xbfb0387d1a42c000, 0x3ff0953efe7b408d, 0xbfaa6f9208b50000,
    0x3ff07325cac53b83, 0xbfa47a954f770000, 0x3ff05197e40d1b5c, 0xbf9d23a8c50c0000,
    0x3ff03091c1208ea2, 0xbf916a2629780000, 0x3ff0101025b37e21, 0xbf7720f8d8e80000,
    0x3fefc07ef9caa76b, 0x3f86fe53b1500000, 0x3fef4465d3f6f184, 0x3fa11ccce10f8000,
    0x3feecc079f84107f, 0x3fac4dfc8c8b8000, 0x3fee573a99975ae8, 0x3fb3aa321e574000,
    0x3fede5d6f0bd3de6, 0x3fb918a0d08b8000, 0x3fed77b681ff38b3, 0x3fbe72e9da044000,
    0x3fed0cb5724de943, 0x3fc1dcd2507f6000, 0x3feca4b2dc0e7563, 0x3fc476ab03dea000,
    0x3fec3f8ee8d6cb51, 0x3fc7074377e22000, 0x3febdd2b4f020c4c, 0x3fc98ede8ba94000,
    0x3feb7d6c006015ca, 0x3fcc0db86ad2e000, 0x3feb20366e2e338f, 0x3fce840aafcee000,
    0x3feac57026295039, 0x3fd0790ab4678000, 0x3fea6d01bc2731dd, 0x3fd1ac056801c000,
    0x3fea16d3bc3ff18b, 0x3fd2db11d4fee000, 0x3fe9c2d14967fead, 0x3fd406464ec58000,
    0x3fe970e4f47c9902, 0x3fd52dbe093af000, 0x3fe920fb3982bcf2, 0x3fd651902050d000,
    0x3fe8d30187f759f1, 0x3fd771d2cdeaf000, 0x3fe886e5ebb9f66d, 0x3fd88e9c857d9000,
    0x3fe83c97b658b994, 0x3fd9a80155e16000, 0x3fe7f405ffc61022, 0x3fdabe186ed3d000,
    0x3fe7ad22181415ca, 0x3fdbd0f2aea0e000, 0x3fe767dcf99eff8c, 0x3fdce0a43dbf4000,
};

#define T512P __attribute__((target("avx512f,avx512dq")))
#define LOG2_K(i) _mm512_castsi512_pd(_mm512_set1_epi64((long long)LOG2_C[i]))

/* log2 of the 8 lanes of x; returns 0, or -1 when a lane needs glibc's
 * special-case path (then y is unspecified) */
T512P static int log2_x8(__m512d x, __m512d *y) {
  const __m512i ix = _mm512_castpd_si512(x);
  /* glibc: ix - 0x3fee1... < 0x210aa00000000 (as ix + 0xc0115b51... <= 0x210a9ffffffff) */
  __mmask8 near1 = _mm512_cmple_epu64_mask(
      _mm512_add_epi64(ix, _mm512_set1_epi64((long long)0xc0115b5100000000ull)),
      _mm512_set1_epi64(0x210a9ffffffffll));
  __mmask8 special = _mm512_cmpgt_epu64_mask(
      _mm512_sub_epi64(_mm512_srli_epi64(ix, 48), _mm512_set1_epi64(0x10)), _mm512_set1_epi64(0x7fdf));
  if (special & (__mmask8)~near1) return -1;
  /* main path */
  __m512i tmp = _mm512_add_epi64(ix, _mm512_set1_epi64((long long)0xc01a000000000000ull));
  __m512i i = _mm512_and_si512(_mm512_srli_epi64(tmp, 46), _mm512_set1_epi64(63));
  __m512d kd = _mm512_cvtepi64_pd(_mm512_srai_epi64(tmp, 52));
  __m512d z = _mm512_castsi512_pd(
      _mm512_sub_epi64(ix, _mm512_and_si512(tmp, _mm512_set1_epi64((long long)0xfff0000000000000ull))));
  __m512i i2 = _mm512_slli_epi64(i, 1);
  __m512d invc = _mm512_i64gather_pd(i2, (const void *)LOG2_T, 8);
  __m512d logc = _mm512_i64gather_pd(_mm512_add_epi64(i2, _mm512_set1_epi64(1)), (const void *)LOG2_T, 8);
  __m512d kdlogc = _mm512_add_pd(kd, logc);
  __m512d r = _mm512_fmadd_pd(z, invc, _mm512_set1_pd(-1.0));
  __m512d x6 = _mm512_fmadd_pd(r, LOG2_K(3), LOG2_K(2));
  __m512d hi = _mm512_mul_pd(LOG2_K(0), r);
  __m512d t = _mm512_fmsub_pd(LOG2_K(0), r, hi);
  __m512d hitot = _mm512_add_pd(hi, kdlogc);
  __m512d lo1 = _mm512_fmadd_pd(r, LOG2_K(1), t);
  __m512d r2 = _mm512_mul_pd(r, r);
  __m512d lo = _mm512_add_pd(_mm512_add_pd(_mm512_sub_pd(kdlogc, hitot), hi), lo1);
  __m512d x3 = _mm512_fmadd_pd(r, LOG2_K(5), LOG2_K(4));
  __m512d r4 = _mm512_mul_pd(r2, r2);
  __m512d x1 = _mm512_fmadd_pd(r, LOG2_K(7), LOG2_K(6));
  x3 = _mm512_fmadd_pd(x3, r2, x6);
  x1 = _mm512_fmadd_pd(x1, r4, x3);
  __m512d ymain = _mm512_add_pd(_mm512_fmadd_pd(r2, x1, lo), hitot);
  /* near 1 */
  __m512d rn = _mm512_sub_pd(x, _mm512_set1_pd(1.0));
  __m512d hn = _mm512_mul_pd(LOG2_K(0), rn);
  __m512d rn2 = _mm512_mul_pd(rn, rn);
  __m512d tn = _mm512_fmsub_pd(LOG2_K(0), rn, hn);
  __m512d rn4 = _mm512_mul_pd(rn2, rn2);
  __m512d a1 = _mm512_fmadd_pd(rn, LOG2_K(9), LOG2_K(8));
  __m512d lo3 = _mm512_fmadd_pd(rn, LOG2_K(1), tn);
  __m512d x5 = _mm512_fmadd_pd(a1, rn2, hn);
  __m512d b1 = _mm512_fmadd_pd(a1, rn2, _mm512_sub_pd(hn, x5));
  __m512d b4 = _mm512_fmadd_pd(rn, LOG2_K(11), LOG2_K(10));
  b1 = _mm512_add_pd(b1, lo3);
  __m512d b3 = _mm512_fmadd_pd(rn, LOG2_K(13), LOG2_K(12));
  b3 = _mm512_fmadd_pd(b3, rn2, b4);
  __m512d b5 = _mm512_fmadd_pd(rn, LOG2_K(15), LOG2_K(14));
  __m512d b0 = _mm512_fmadd_pd(rn, LOG2_K(17), LOG2_K(16));
  b0 = _mm512_fmadd_pd(b0, rn2, b5);
  b0 = _mm512_fmadd_pd(b0, rn4, b3);
  b0 = _mm512_fmadd_pd(b0, rn4, b1);
  __m512d ynear = _mm512_add_pd(x5, b0);
  __m512d res = _mm512_mask_blend_pd(near1, ymain, ynear);
  /* glibc returns +0 for exactly 1 */
  __mmask8 one = _mm512_cmpeq_epi64_mask(ix, _mm512_set1_epi64(0x3ff0000000000000ll));
  *y = _mm512_mask_blend_pd(one, res, _mm512_setzero_pd());
  return 0;
}

/* y[i] = log2(x[i]) for i < 32 (x padded with 1.0); 0, or -1 as log2_x8 */
T512P static int log2_x32(const double *x, double *y) {
  for (int b = 0; b < 4; b++) {
    __m512d v;
    if (log2_x8(_mm512_loadu_pd(x + 8 * b), &v) != 0) return -1;
    _mm512_storeu_pd(y + 8 * b, v);
  }
  return 0;
}

static int log2_ok;
static pthread_once_t log2_once = PTHREAD_ONCE_INIT;
static void log2_probe(void) {
  if (!kern_cpu_avx512()) return;
  /* the JS arguments 2x/(x+y) lie in (0, 2]: uniform, near 1, near 0 */
  uint64_t u = 0x9e3779b97f4a7c15ull;
  for (int t = 0; t < 2048; t++) {
    double x[32], y[32];
    for (int l = 0; l < 32; l++) {
      u = u * 6364136223846793005ull + 1442695040888963407ull;
      double r = (double)(u >> 11) / 9007199254740992.0; /* [0, 1) */
      x[l] = t % 3 == 0 ? 2.0 * r + 1e-300 : t % 3 == 1 ? 1.0 + (r - 0.5) / 8.0 : r * 1e-6 + 1e-300;
    }
    if (t == 0) x[0] = 1.0, x[1] = 2.0;
    if (log2_x32(x, y) != 0) return;
    for (int l = 0; l < 32; l++) {
      double e = log2(x[l]);
      if (memcmp(&e, &y[l], sizeof e) != 0) return;
    }
  }
  log2_ok = 1;
}
#endif

float profile_js(size_t n, const float *pnext, const float *plong) {
  double inside = 0.0, js = 0.0;
  size_t j = 0;
#if PROFILE_X86
  pthread_once(&log2_once, log2_probe);
  int fast = log2_ok && kern_avx512();
  /* 16 slots at a time: the 32 logarithms in one vector pass, then the same
   * sums in the same order as the loop below */
  while (fast && j < n) {
    size_t m = n - j < 16 ? n - j : 16;
    double pv[16], qv[16], arg[32], lg[32];
    for (size_t l = 0; l < 16; l++) {
      double p = l < m && pnext[j + l] > 0.0f ? pnext[j + l] : 0.0;
      double q = l < m && plong[j + l] > 0.0f ? plong[j + l] : 0.0;
      pv[l] = p, qv[l] = q;
      arg[2 * l] = p > 0.0 ? 2.0 * p / (p + q) : 1.0;
      arg[2 * l + 1] = q > 0.0 ? 2.0 * q / (p + q) : 1.0;
    }
    if (log2_x32(arg, lg) != 0) break; /* the scalar loop takes this block */
    for (size_t l = 0; l < m; l++) {
      double p = pv[l], q = qv[l];
      inside += p;
      js += 0.5 * (p > 0.0 ? p * lg[2 * l] : 0.0) + 0.5 * (q > 0.0 ? q * lg[2 * l + 1] : 0.0);
    }
    j += m;
  }
#endif
  for (; j < n; j++) {
    double p = pnext[j] > 0.0f ? pnext[j] : 0.0, q = plong[j] > 0.0f ? plong[j] : 0.0;
    inside += p;
    js += 0.5 * js_term(p, q) + 0.5 * js_term(q, p);
  }
  double outside = 1.0 - inside;
  if (outside > 0.0) js += 0.5 * outside; /* p > 0 where q == 0: 0.5 p log2(2) */
  if (js < 0.0) js = 0.0;
  if (js > 1.0) js = 1.0;
  return (float)js;
}

float profile_shift_prob(size_t n, const float *pnext) {
  double in = 0.0;
  for (size_t j = 0; j < n; j++) in += pnext[j];
  double p = 1.0 - in;
  return (float)(p < 0.0 ? 0.0 : p > 1.0 ? 1.0 : p);
}

/* Is c one of the ARCH_P ids in pc? (unused slots repeat a used one) */
static inline int in_ids_scalar(const uint64_t *pc, uint64_t c) {
  int in = 0;
  for (unsigned j = 0; j < ARCH_P; j++) in |= pc[j] == c;
  return in;
}
#if PROFILE_X86
_Static_assert(ARCH_P == 16, "in_ids_avx512 compares two vectors of 8 ids");
__attribute__((target("avx512f"))) static inline int in_ids_avx512(const uint64_t *pc, uint64_t c) {
  __m512i v = _mm512_set1_epi64((long long)c);
  return (_mm512_cmpeq_epi64_mask(_mm512_loadu_si512((const void *)pc), v) |
          _mm512_cmpeq_epi64_mask(_mm512_loadu_si512((const void *)(pc + 8)), v)) != 0;
}
#endif

/* profile_rising with the membership test given (a constant after inlining) */
static inline __attribute__((always_inline)) size_t
rising_impl(const arch_state_t *s, const float *plong, const float *pnext_prof, size_t n_cand,
            const uint64_t *cand_cat, const float *cand_p, size_t k, uint64_t *out_cat,
            float *out_diff, int (*member)(const uint64_t *, uint64_t)) {
  size_t m = 0;
  /* insert (cat, diff) keeping out sorted descending, at most k */
#define RISING_PUT(CAT, DIFF)                                                   \
  do {                                                                          \
    float d_ = (DIFF);                                                          \
    if (d_ > 0.0f && (m < k || d_ > out_diff[m - 1])) {                         \
      size_t at_ = m < k ? m : k - 1;                                           \
      while (at_ > 0 && out_diff[at_ - 1] < d_) {                               \
        out_diff[at_] = out_diff[at_ - 1];                                      \
        out_cat[at_] = out_cat[at_ - 1];                                        \
        at_--;                                                                  \
      }                                                                         \
      out_diff[at_] = d_;                                                       \
      out_cat[at_] = (CAT);                                                     \
      if (m < k) m++;                                                           \
    }                                                                           \
  } while (0)
  if (k == 0) return 0;
  /* the profile's ids, unused slots repeating the first (a repeat changes no
   * answer), for a branch-free membership test over all ARCH_P slots */
  const unsigned np = s->n_profile <= ARCH_P ? s->n_profile : ARCH_P;
  uint64_t pc[ARCH_P];
  for (unsigned j = 0; j < ARCH_P; j++) pc[j] = s->profile[j < np ? j : 0].cat;
  for (size_t i = 0; i < n_cand; i++) {
    const float d = cand_p[i];
    /* the membership test only for a candidate that would enter the list
     * (with candidates in descending order, as head_topk returns them, none
     * do once the list is full) */
    if (!(d > 0.0f && (m < k || d > out_diff[m - 1]))) continue;
    if (!np || !member(pc, cand_cat[i])) RISING_PUT(cand_cat[i], d);
  }
  for (unsigned j = 0; j < np; j++) RISING_PUT(s->profile[j].cat, pnext_prof[j] - plong[j]);
#undef RISING_PUT
  return m;
}

#if PROFILE_X86
__attribute__((target("avx512f"))) static size_t
rising_avx512(const arch_state_t *s, const float *plong, const float *pnext_prof, size_t n_cand,
              const uint64_t *cand_cat, const float *cand_p, size_t k, uint64_t *out_cat,
              float *out_diff) {
  return rising_impl(s, plong, pnext_prof, n_cand, cand_cat, cand_p, k, out_cat, out_diff,
                     in_ids_avx512);
}
#endif

size_t profile_rising(const arch_state_t *s, const float *plong, const float *pnext_prof,
                      size_t n_cand, const uint64_t *cand_cat, const float *cand_p,
                      size_t k, uint64_t *out_cat, float *out_diff) {
#if PROFILE_X86
  if (kern_avx512())
    return rising_avx512(s, plong, pnext_prof, n_cand, cand_cat, cand_p, k, out_cat, out_diff);
#endif
  return rising_impl(s, plong, pnext_prof, n_cand, cand_cat, cand_p, k, out_cat, out_diff,
                     in_ids_scalar);
}

size_t profile_falling(const arch_state_t *s, const float *plong, const float *pnext_prof,
                       size_t k, uint64_t *out_cat, float *out_diff) {
  const unsigned np = s->n_profile <= ARCH_P ? s->n_profile : ARCH_P;
  size_t m = 0;
  if (k == 0) return 0;
  for (unsigned j = 0; j < np; j++) {
    float d = plong[j] - pnext_prof[j];
    if (!(d > 0.0f) || (m == k && !(d > out_diff[m - 1]))) continue;
    size_t at = m < k ? m : k - 1; /* strict >: equal values keep slot order */
    while (at > 0 && out_diff[at - 1] < d) {
      out_diff[at] = out_diff[at - 1];
      out_cat[at] = out_cat[at - 1];
      at--;
    }
    out_diff[at] = d;
    out_cat[at] = s->profile[j].cat;
    if (m < k) m++;
  }
  return m;
}
