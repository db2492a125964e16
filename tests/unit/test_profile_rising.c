/* profile_rising against a plain reference (every candidate checked against
 * every profile slot, then inserted): random profiles and candidate lists,
 * sorted as head_topk returns them and unsorted, with ties, zero and
 * negative differences, candidates inside and outside the profile. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/prediction.h"
#include "model/arch.h"
#include "model/profile.h"

static uint64_t rng = 777;
static float urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) / (double)(1ull << 24));
}

/* insert (cat, d) into the descending list of at most k when d > 0 and it
 * beats the last entry (strict: earlier entries win ties) */
static void put(size_t k, size_t *m, uint64_t *oc, float *od, uint64_t cat, float d) {
  if (!(d > 0.0f) || (*m == k && !(d > od[*m - 1]))) return;
  size_t at = *m < k ? *m : k - 1;
  while (at > 0 && od[at - 1] < d) {
    od[at] = od[at - 1];
    oc[at] = oc[at - 1];
    at--;
  }
  od[at] = d;
  oc[at] = cat;
  if (*m < k) (*m)++;
}

static size_t rising_ref(const arch_state_t *s, const float *plong, const float *pp, size_t nc,
                         const uint64_t *cc, const float *cp, size_t k, uint64_t *oc, float *od) {
  size_t m = 0;
  if (k == 0) return 0;
  for (size_t i = 0; i < nc; i++) {
    int in = 0;
    for (unsigned j = 0; j < s->n_profile; j++) in |= s->profile[j].cat == cc[i];
    if (!in) put(k, &m, oc, od, cc[i], cp[i]);
  }
  for (unsigned j = 0; j < s->n_profile; j++) put(k, &m, oc, od, s->profile[j].cat, pp[j] - plong[j]);
  return m;
}

static int cmp_desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x > y ? -1 : x < y;
}

/* Falling: the profile's categories with the largest p_long - p_next > 0,
 * descending, ties in slot order, at most k; nothing else. */
static void test_profile_falling_orders_profile_drops(void **st) {
  (void)st;
  arch_state_t s;
  memset(&s, 0, sizeof s);
  s.n_profile = 5;
  for (unsigned j = 0; j < 5; j++) s.profile[j].cat = 100 + j;
  const float plong[5] = {0.4f, 0.3f, 0.1f, 0.1f, 0.1f};
  const float pnext[5] = {0.1f, 0.5f, 0.0f, 0.0f, 0.1f}; /* drops .3, -.2, .1, .1, 0 */
  uint64_t cat[PRED_TOPK];
  float d[PRED_TOPK];
  size_t n = profile_falling(&s, plong, pnext, PRED_TOPK, cat, d);
  assert_int_equal(n, 3);
  assert_int_equal(cat[0], 100);
  assert_int_equal(cat[1], 102); /* tie with 103: slot order */
  assert_int_equal(cat[2], 103);
  assert_true(d[0] == 0.4f - 0.1f && d[1] == 0.1f && d[2] == 0.1f);
  n = profile_falling(&s, plong, pnext, 2, cat, d);
  assert_int_equal(n, 2);
  assert_int_equal(cat[1], 102);
  assert_int_equal(profile_falling(&s, plong, pnext, 0, cat, d), 0);
  s.n_profile = 0;
  assert_int_equal(profile_falling(&s, plong, pnext, PRED_TOPK, cat, d), 0);
}

static void test_profile_rising_equals_reference(void **st) {
  (void)st;
  arch_state_t s;
  for (int t = 0; t < 20000; t++) {
    memset(&s, 0, sizeof s);
    s.n_profile = (uint8_t)(t % (ARCH_P + 1));
    for (unsigned j = 0; j < s.n_profile; j++)
      s.profile[j] = (arch_slot_t){.cat = 10 + (uint64_t)(urand() * 40), .weight = urand(), .idx = 1};
    float plong[ARCH_P], pp[ARCH_P];
    profile_plong(&s, plong);
    for (unsigned j = 0; j < ARCH_P; j++) pp[j] = (t % 7 == 0) ? plong[j] : urand() * 0.2f;
    size_t nc = (size_t)(urand() * 27);
    uint64_t cc[26];
    float cp[26];
    for (size_t i = 0; i < nc; i++) {
      cc[i] = 10 + (uint64_t)(urand() * 60); /* some in the profile */
      cp[i] = (t % 3 == 0) ? (float)(int)(urand() * 4) / 16 : urand() * 0.3f; /* ties, zeros */
    }
    if (t % 2) qsort(cp, nc, sizeof *cp, cmp_desc); /* head_topk's order */
    size_t k = (size_t)(t % 12);
    uint64_t oc[12], rc[12];
    float od[12], rd[12];
    size_t n = profile_rising(&s, plong, pp, nc, cc, cp, k, oc, od);
    size_t nr = rising_ref(&s, plong, pp, nc, cc, cp, k, rc, rd);
    assert_int_equal(n, nr);
    for (size_t i = 0; i < n; i++) {
      assert_true(oc[i] == rc[i]);
      assert_memory_equal(&od[i], &rd[i], sizeof(float));
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_profile_rising_equals_reference),
      cmocka_unit_test(test_profile_falling_orders_profile_drops),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
