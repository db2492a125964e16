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

float profile_js(size_t n, const float *pnext, const float *plong) {
  double inside = 0.0, js = 0.0;
  for (size_t j = 0; j < n; j++) {
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
static int in_ids_scalar(const uint64_t *pc, uint64_t c) {
  int in = 0;
  for (unsigned j = 0; j < ARCH_P; j++) in |= pc[j] == c;
  return in;
}
#if PROFILE_X86
_Static_assert(ARCH_P == 16, "in_ids_avx512 compares two vectors of 8 ids");
__attribute__((target("avx512f"))) static int in_ids_avx512(const uint64_t *pc, uint64_t c) {
  __m512i v = _mm512_set1_epi64((long long)c);
  return (_mm512_cmpeq_epi64_mask(_mm512_loadu_si512((const void *)pc), v) |
          _mm512_cmpeq_epi64_mask(_mm512_loadu_si512((const void *)(pc + 8)), v)) != 0;
}
static int (*in_ids)(const uint64_t *, uint64_t) = in_ids_scalar;
static pthread_once_t in_ids_once = PTHREAD_ONCE_INIT;
static void in_ids_choose(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) in_ids = in_ids_avx512;
}
#endif

size_t profile_rising(const arch_state_t *s, const float *plong, const float *pnext_prof,
                      size_t n_cand, const uint64_t *cand_cat, const float *cand_p,
                      size_t k, uint64_t *out_cat, float *out_diff) {
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
  int (*member)(const uint64_t *, uint64_t) = in_ids_scalar;
#if PROFILE_X86
  pthread_once(&in_ids_once, in_ids_choose);
  member = in_ids;
#endif
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
