/* profile_js (vectorised logarithms on AVX-512) against the formula with
 * libm's log2, bit for bit: random profiles of 0..40 slots (more than one
 * block of 16), p_next and p_long equal, close, far apart, tiny, zero. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "model/profile.h"

static uint64_t rng = 99;
static float urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) / (double)(1ull << 24));
}

static double term(double x, double y) { return x > 0.0 ? x * log2(2.0 * x / (x + y)) : 0.0; }

static float js_ref(size_t n, const float *pn, const float *pl) {
  double inside = 0.0, js = 0.0;
  for (size_t j = 0; j < n; j++) {
    double p = pn[j] > 0.0f ? pn[j] : 0.0, q = pl[j] > 0.0f ? pl[j] : 0.0;
    inside += p;
    js += 0.5 * term(p, q) + 0.5 * term(q, p);
  }
  double outside = 1.0 - inside;
  if (outside > 0.0) js += 0.5 * outside;
  if (js < 0.0) js = 0.0;
  if (js > 1.0) js = 1.0;
  return (float)js;
}

static void test_profile_js_equals_libm_formula_bitwise(void **st) {
  (void)st;
  float pn[40], pl[40];
  for (int t = 0; t < 50000; t++) {
    size_t n = (size_t)(t % 41);
    float sn = 0, sl = 0;
    for (size_t j = 0; j < n; j++) {
      pl[j] = urand();
      int mode = (t + (int)j) % 6;
      pn[j] = mode == 0 ? urand() : mode == 1 ? pl[j] * (1.0f + (urand() - 0.5f) * 1e-3f)
            : mode == 2 ? urand() * 1e-30f : mode == 3 ? 0.0f : mode == 4 ? pl[j] : -urand();
      if (t % 7 == 0) pl[j] = 0.0f;
      sn += pn[j] > 0 ? pn[j] : 0, sl += pl[j];
    }
    for (size_t j = 0; j < n; j++) { /* normalise: distributions */
      if (sn > 1.0f) pn[j] /= sn;
      if (sl > 0.0f) pl[j] /= sl;
    }
    float got = profile_js(n, pn, pl), want = js_ref(n, pn, pl);
    if (memcmp(&got, &want, sizeof got) != 0)
      fail_msg("n=%zu: %.9g, want %.9g", n, (double)got, (double)want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_profile_js_equals_libm_formula_bitwise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
