/* Long-term profile: decay by the half-life, replacement of the smallest
 * slot, p_long; Jensen-Shannon bounds, symmetry and value; shift probability;
 * rising categories; the recent list kept by arch_state_advance. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/arch.h"
#include "model/profile.h"

#define HOUR_MS (3600ll * 1000)

static arch_state_t *new_state(void) {
  arch_dims_t d;
  arch_dims_default(&d);
  arch_state_t *s = malloc(arch_state_size(&d));
  arch_state_init(&d, s);
  return s;
}

static float weight_of(const arch_state_t *s, uint64_t cat) {
  for (unsigned j = 0; j < s->n_profile; j++)
    if (s->profile[j].cat == cat) return s->profile[j].weight;
  return -1.0f;
}

static void test_profile_decays_by_half_life(void **st) {
  (void)st;
  arch_state_t *s = new_state();
  const float hl = 72.0f * 3600.0f;
  profile_decay(s, 0, hl);
  profile_add(s, 7, 1);
  profile_decay(s, 72 * HOUR_MS, hl);
  assert_true(fabsf(weight_of(s, 7) - 0.5f) < 1e-6f);
  profile_add(s, 7, 1);
  assert_true(fabsf(weight_of(s, 7) - 1.5f) < 1e-6f);
  profile_decay(s, 72 * HOUR_MS + 36 * HOUR_MS, hl);
  assert_true(fabsf(weight_of(s, 7) - 1.5f / sqrtf(2.0f)) < 1e-5f);
  /* an older timestamp decays nothing and does not move the clock back */
  profile_decay(s, 10 * HOUR_MS, hl);
  assert_true(fabsf(weight_of(s, 7) - 1.5f / sqrtf(2.0f)) < 1e-5f);
  assert_true(s->profile_ts_ms == 108 * HOUR_MS);
  free(s);
}

static void test_profile_replaces_smallest_slot_when_full(void **st) {
  (void)st;
  arch_state_t *s = new_state();
  for (int j = 0; j < ARCH_P; j++) {
    profile_add(s, (uint64_t)(100 + j), 0);
    for (int r = 0; r < j; r++) profile_add(s, (uint64_t)(100 + j), 0);
  }
  assert_int_equal(s->n_profile, ARCH_P);
  /* category 100 has weight 1, the smallest: a new category replaces it */
  profile_add(s, 999, 0);
  assert_int_equal(s->n_profile, ARCH_P);
  assert_true(weight_of(s, 100) < 0.0f);
  assert_true(weight_of(s, 999) == 1.0f);
  assert_true(weight_of(s, 101) == 2.0f);
  float p[ARCH_P];
  float sum = profile_plong(s, p);
  double tot = 0;
  for (int j = 0; j < ARCH_P; j++) tot += p[j];
  assert_true(fabs(tot - 1.0) < 1e-6);
  assert_true(fabsf(sum - (1.0f + 136.0f - 1.0f)) < 1e-4f); /* 1+..+16 - 1 + 1 */
  free(s);
}

/* Brute-force JS over an explicit support (last element = outside mass). */
static double js_ref(size_t n, const double *p, const double *q) {
  double js = 0;
  for (size_t i = 0; i < n; i++) {
    double m = 0.5 * (p[i] + q[i]);
    if (p[i] > 0) js += 0.5 * p[i] * log2(p[i] / m);
    if (q[i] > 0) js += 0.5 * q[i] * log2(q[i] / m);
  }
  return js;
}

static void test_profile_js_bounds_symmetry_and_value(void **st) {
  (void)st;
  float a[3] = {0.2f, 0.3f, 0.5f}, b[3] = {0.6f, 0.1f, 0.3f}, z[3] = {0, 0, 0};
  assert_true(profile_js(3, a, a) < 1e-6f);
  /* symmetric when both live on the profile support */
  assert_true(fabsf(profile_js(3, a, b) - profile_js(3, b, a)) < 1e-6f);
  double pa[3] = {0.2, 0.3, 0.5}, pb[3] = {0.6, 0.1, 0.3};
  assert_true(fabs(profile_js(3, a, b) - js_ref(3, pa, pb)) < 1e-6);
  /* p_next entirely outside the profile: disjoint -> 1 */
  assert_true(fabsf(profile_js(3, z, b) - 1.0f) < 1e-6f);
  /* partial outside mass: p_next = (0.1, 0.2, 0.1 | outside 0.6) */
  float c[3] = {0.1f, 0.2f, 0.1f};
  double pc[4] = {0.1, 0.2, 0.1, 0.6}, pq[4] = {0.6, 0.1, 0.3, 0.0};
  assert_true(fabs(profile_js(3, c, b) - js_ref(4, pc, pq)) < 1e-6);
  /* random: always in [0, 1] */
  uint64_t seed = 1;
  for (int t = 0; t < 1000; t++) {
    float p[16], q[16], sp = 0, sq = 0;
    for (int i = 0; i < 16; i++) {
      seed = seed * 6364136223846793005ull + 1;
      p[i] = (float)(seed >> 41) / (float)(1 << 23);
      q[i] = (float)((seed >> 17) & 0xffffff) / (float)(1 << 24);
      sp += p[i], sq += q[i];
    }
    float keep = (float)(t % 7) / 6.0f; /* share of p_next inside the profile */
    for (int i = 0; i < 16; i++) p[i] *= keep / sp, q[i] /= sq;
    float js = profile_js(16, p, q);
    assert_true(js >= 0.0f && js <= 1.0f);
  }
}

static void test_profile_shift_prob_is_mass_outside(void **st) {
  (void)st;
  float p[3] = {0.1f, 0.25f, 0.05f};
  assert_true(fabsf(profile_shift_prob(3, p) - 0.6f) < 1e-6f);
  float over[2] = {0.7f, 0.4f};
  assert_true(profile_shift_prob(2, over) == 0.0f);
  assert_true(profile_shift_prob(0, p) == 1.0f);
}

static void test_profile_rising_ranks_largest_increase(void **st) {
  (void)st;
  arch_state_t *s = new_state();
  profile_add(s, 1, 0);
  profile_add(s, 1, 0);
  profile_add(s, 1, 0);
  profile_add(s, 2, 0); /* p_long = (0.75, 0.25) */
  float plong[2];
  profile_plong(s, plong);
  float pnext_prof[2] = {0.30f, 0.40f}; /* 1 falls, 2 rises by 0.15 */
  uint64_t cand[3] = {2, 1, 3};
  float cp[3] = {0.40f, 0.30f, 0.20f}; /* 3 is new: rises by 0.20 */
  uint64_t oc[10];
  float od[10];
  size_t n = profile_rising(s, plong, pnext_prof, 3, cand, cp, 10, oc, od);
  assert_int_equal(n, 2);
  assert_true(oc[0] == 3 && fabsf(od[0] - 0.20f) < 1e-6f);
  assert_true(oc[1] == 2 && fabsf(od[1] - 0.15f) < 1e-6f);
  free(s);
}

static void test_state_advance_keeps_recency_ranked_distinct_list(void **st) {
  (void)st;
  arch_state_t *s = new_state();
  event_t ev = {.user_id = 1, .action = ACTION_VIEW};
  uint64_t seq[] = {5, 6, 5, 7, 7};
  for (size_t i = 0; i < 5; i++) {
    ev.category_id = seq[i];
    ev.ts_ms = (int64_t)i * 1000;
    arch_state_advance(s, &ev, 0, 3600.0f);
  }
  assert_int_equal(s->n_recent, 3);
  assert_true(s->recent[0].cat == 7 && s->recent[0].count == 2);
  assert_true(s->recent[1].cat == 5 && s->recent[1].count == 2);
  assert_true(s->recent[2].cat == 6 && s->recent[2].count == 1);
  assert_int_equal(s->n_events, 5);
  assert_true(s->prev_cat == 7 && s->prev_ts_ms == 4000);
  /* overflow: the least recent falls off */
  for (uint64_t c = 100; c < 100 + ARCH_K; c++) {
    ev.category_id = c;
    arch_state_advance(s, &ev, 0, 3600.0f);
  }
  assert_int_equal(s->n_recent, ARCH_K);
  assert_true(s->recent[0].cat == 100 + ARCH_K - 1);
  assert_true(s->recent[ARCH_K - 1].cat == 100);
  free(s);
}

static void test_time_features(void **st) {
  (void)st;
  arch_state_t *s = new_state();
  event_t ev = {.category_id = 9, .ts_ms = 1000000, .action = ACTION_CART};
  float t[ARCH_N_TIME];
  arch_time_features(s, &ev, t);
  assert_true(t[ARCH_T_FIRST] == 1.0f && t[ARCH_T_LOGGAP] == 0.0f && t[ARCH_T_LOGN] == 0.0f);
  arch_state_advance(s, &ev, 0, 3600.0f);
  ev.ts_ms += 30000; /* 30 s later, same category */
  arch_time_features(s, &ev, t);
  assert_true(t[ARCH_T_FIRST] == 0.0f && t[ARCH_T_REPEAT] == 1.0f);
  assert_true(t[ARCH_T_LT60S] == 1.0f && t[ARCH_T_LT1H] == 1.0f && t[ARCH_T_GT1D] == 0.0f);
  assert_true(fabsf(t[ARCH_T_LOGGAP] - log1pf(30.0f) / 12.0f) < 1e-7f);
  assert_true(fabsf(t[ARCH_T_LOGN] - log1pf(1.0f) / 8.0f) < 1e-7f);
  ev.ts_ms += 2 * 86400000ll;
  ev.category_id = 10;
  arch_time_features(s, &ev, t);
  assert_true(t[ARCH_T_REPEAT] == 0.0f && t[ARCH_T_GT1D] == 1.0f && t[ARCH_T_LT1H] == 0.0f);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_profile_decays_by_half_life),
      cmocka_unit_test(test_profile_replaces_smallest_slot_when_full),
      cmocka_unit_test(test_profile_js_bounds_symmetry_and_value),
      cmocka_unit_test(test_profile_shift_prob_is_mass_outside),
      cmocka_unit_test(test_profile_rising_ranks_largest_increase),
      cmocka_unit_test(test_state_advance_keeps_recency_ranked_distinct_list),
      cmocka_unit_test(test_time_features),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
