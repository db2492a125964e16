/* The streaming baselines on tiny hand-made sequences with known answers:
 * rankings, the popularity-smoothed probabilities, the Markov chain learned
 * from other users, the shift/fluctuation scores, and a run + tuning pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "model/baselines.h"

static event_t ev(uint64_t c, int64_t t) {
  event_t e = {.user_id = 1, .item_id = 1, .category_id = c, .ts_ms = t, .action = ACTION_VIEW};
  return e;
}

static bl_t *make(bl_kind_t kind, float lr, float lp, uint32_t users) {
  bl_params_t p;
  bl_params_default(kind, &p);
  p.lambda_rank = lr;
  p.lambda_prob = lp;
  bl_t *b = NULL;
  assert_int_equal(bl_new(&p, users, 3600.0f, &b), 0);
  return b;
}

static bl_t *make_p(const bl_params_t *p, uint32_t users) {
  bl_t *b = NULL;
  assert_int_equal(bl_new(p, users, 3600.0f, &b), 0);
  return b;
}

static void feed(bl_t *b, uint32_t u, const uint64_t *cats, size_t n, int64_t t0) {
  for (size_t i = 0; i < n; i++) {
    event_t e = ev(cats[i], t0 + (int64_t)i * 1000);
    assert_int_equal(bl_observe(b, u, &e), 0);
  }
}

static void test_bl_repeat_ranks_last_and_smooths_with_popularity(void **unused) {
  bl_t *b = make(BL_REPEAT, 0.0f, 0.5f, 1);
  uint64_t seq[] = {10, 20};
  feed(b, 0, seq, 2, 0);
  uint64_t cat[3];
  float p[3];
  uint64_t target = 20;
  bl_score_t sc;
  size_t m = bl_predict(b, 0, 3, cat, p, &target, &sc);
  assert_int_equal(m, 2); /* the last category, then popularity fills in */
  assert_int_equal(cat[0], 20);
  /* pop(20) = (1 + 1) / (N=2 + C=2 + 1) = 0.4; p = 0.5 * 1 + 0.5 * 0.4 */
  assert_float_equal(sc.p_target, 0.7, 1e-6);
  /* a never-seen category gets the unseen share: 0.5 * 1/5 */
  target = 99;
  bl_predict(b, 0, 3, cat, p, &target, &sc);
  assert_float_equal(sc.p_target, 0.1, 1e-6);
  bl_destroy(b);
}

static void test_bl_recency_orders_distinct_categories_by_last_use(void **unused) {
  bl_params_t p;
  bl_params_default(BL_RECENCY, &p);
  p.beta = 0.5f;
  p.lambda_rank = 0.0f;
  p.lambda_prob = 0.0f;
  bl_t *b = make_p(&p, 1);
  uint64_t seq[] = {1, 2, 3, 2};
  feed(b, 0, seq, 4, 0);
  uint64_t cat[3], target = 2;
  float pr[3];
  bl_score_t sc;
  assert_int_equal(bl_predict(b, 0, 3, cat, pr, &target, &sc), 3);
  assert_int_equal(cat[0], 2);
  assert_int_equal(cat[1], 3);
  assert_int_equal(cat[2], 1);
  assert_float_equal(sc.p_target, 1.0 / 1.75, 1e-6);
  bl_destroy(b);
}

static void test_bl_freq_and_decay(void **unused) {
  uint64_t seq[] = {1, 1, 2};
  uint64_t cat[2], target = 1;
  float pr[2];
  bl_score_t sc;
  bl_t *b = make(BL_FREQ, 0.0f, 0.0f, 1);
  feed(b, 0, seq, 3, 0);
  bl_predict(b, 0, 2, cat, pr, &target, &sc);
  assert_int_equal(cat[0], 1);
  assert_int_equal(cat[1], 2);
  assert_float_equal(sc.p_target, 2.0 / 3.0, 1e-6);
  bl_destroy(b);
  /* decay 0.5 per event, no time decay: w1 = (0.5 + 1) * 0.5 = 0.75, w2 = 1 */
  bl_params_t p;
  bl_params_default(BL_DECAY, &p);
  p.gamma = 0.5f;
  p.half_life_s = 0;
  p.lambda_rank = p.lambda_prob = 0.0f;
  b = make_p(&p, 1);
  feed(b, 0, seq, 3, 0);
  bl_predict(b, 0, 2, cat, pr, &target, &sc);
  assert_int_equal(cat[0], 2);
  assert_int_equal(cat[1], 1);
  assert_float_equal(sc.p_target, 0.75 / 1.75, 1e-6);
  bl_destroy(b);
  /* time decay alone: half-life 1 s, events 1 s apart -> the same numbers */
  p.gamma = 1.0f;
  p.half_life_s = 1.0f;
  b = make_p(&p, 1);
  feed(b, 0, seq, 3, 0);
  bl_predict(b, 0, 2, cat, pr, &target, &sc);
  assert_float_equal(sc.p_target, 0.75 / 1.75, 1e-5);
  bl_destroy(b);
}

static void test_bl_popularity_is_global_and_causal(void **unused) {
  bl_t *b = make(BL_POP, 0.0f, 0.0f, 2);
  uint64_t a[] = {5, 5}, c[] = {7};
  feed(b, 0, a, 2, 0);
  feed(b, 1, c, 1, 5000);
  uint64_t cat[2], target = 5;
  float pr[2];
  bl_score_t sc;
  bl_predict(b, 1, 2, cat, pr, &target, &sc);
  assert_int_equal(cat[0], 5);
  assert_int_equal(cat[1], 7);
  /* (2 + 1) / (3 + 2 + 1) */
  assert_float_equal(sc.p_target, 0.5, 1e-6);
  bl_destroy(b);
}

static void test_bl_markov_learns_transitions_from_all_users(void **unused) {
  bl_params_t p;
  bl_params_default(BL_MARKOV, &p);
  p.alpha = 1.0f;
  p.lambda_rank = p.lambda_prob = 0.0f;
  bl_t *b = make_p(&p, 3);
  uint64_t u0[] = {1, 2, 1, 2}, u1[] = {1, 3}, u2[] = {1};
  feed(b, 0, u0, 4, 0);
  feed(b, 1, u1, 2, 10000);
  feed(b, 2, u2, 1, 20000);
  uint64_t cat[3], target = 2;
  float pr[3];
  bl_score_t sc;
  /* successors of 1: {2: 2, 3: 1}, T = 3; N = 7 events, C = 3 categories */
  bl_predict(b, 2, 3, cat, pr, &target, &sc);
  assert_int_equal(cat[0], 2);
  assert_int_equal(cat[1], 3);
  assert_int_equal(cat[2], 1);
  double pop2 = 3.0 / 11.0;
  assert_float_equal(sc.p_target, 2.0 / 4.0 + 0.25 * pop2, 1e-6);
  bl_destroy(b);
}

static void test_bl_blend_mixes_recency_and_markov(void **unused) {
  bl_params_t p;
  bl_params_default(BL_BLEND, &p);
  p.alpha = 1.0f;
  p.beta = 0.5f;
  p.w_markov = 0.4f;
  p.lambda_rank = p.lambda_prob = 0.0f;
  bl_t *b = make_p(&p, 2);
  uint64_t u0[] = {1, 2}, u1[] = {3, 1};
  feed(b, 0, u0, 2, 0);
  feed(b, 1, u1, 2, 10000);
  /* user 1: recency {1: 1/1.5, 3: 0.5/1.5}; successors of 1: {2: 1}, T=1 */
  uint64_t cat[3], target = 2;
  float pr[3];
  bl_score_t sc;
  bl_predict(b, 1, 3, cat, pr, &target, &sc);
  double pop2 = 2.0 / (4 + 3 + 1);
  double p2 = 0.4 * (1.0 / 2.0) + 0.4 * (1.0 / 2.0) * pop2;
  assert_float_equal(sc.p_target, p2, 1e-6);
  assert_int_equal(cat[0], 1); /* 0.6 * 2/3 + ... beats 0.2 + ... */
  bl_destroy(b);
}

static void test_bl_shift_and_fluctuation_scores(void **unused) {
  bl_t *b = make(BL_REPEAT, 0.0f, 0.0f, 1);
  uint64_t seq[] = {4, 4};
  feed(b, 0, seq, 2, 0);
  uint64_t cat[1], target = 4;
  float pr[1];
  bl_score_t sc;
  bl_predict(b, 0, 1, cat, pr, &target, &sc);
  /* everything on the profile's only category: no shift, no divergence */
  assert_float_equal(sc.shift, 0.0, 1e-6);
  assert_float_equal(sc.fluct, 0.0, 1e-6);
  bl_destroy(b);
  /* pure popularity of a category outside the user's profile */
  b = make(BL_POP, 0.0f, 0.0f, 2);
  uint64_t a[] = {9, 9, 9, 9, 9, 9, 9, 9}, u[] = {4};
  feed(b, 0, a, 8, 0);
  feed(b, 1, u, 1, 100000);
  bl_predict(b, 1, 1, cat, pr, &target, &sc);
  /* p(4) = 2 / (9 + 2 + 1) */
  assert_float_equal(sc.shift, 1.0 - 2.0 / 12.0, 1e-6);
  assert_true(sc.fluct > 0.5f && sc.fluct <= 1.0f);
  bl_destroy(b);
}

static void test_bl_run_and_tune_on_tiny_data(void **unused) {
  /* two users who alternate between two categories; window = the second half */
  event_t in[40];
  for (int i = 0; i < 20; i++) {
    in[2 * i] = ev((uint64_t)(100 + i % 2), i * 1000);
    in[2 * i].user_id = 1;
    in[2 * i + 1] = ev((uint64_t)(200 + i % 2), i * 1000 + 1);
    in[2 * i + 1].user_id = 2;
  }
  eval_window_t w = {.start_ms = 10000, .end_ms = 20000, .half_life_s = 3600.0f};
  eval_data_t d;
  assert_int_equal(eval_data_build(in, 40, &w, &d), 0);
  assert_int_equal(d.n_targets, 20);
  eval_row_t row;
  bl_params_t p;
  bl_params_default(BL_REPEAT, &p);
  assert_int_equal(bl_run(&p, &d, &row), 0);
  assert_int_equal(row.n_targets, 20);
  assert_float_equal(row.acc1, 0.0, 1e-12); /* the target is never the last category */
  assert_float_equal(row.rec5, 1.0, 1e-12);  /* ... but popular enough for the top 5 */
  assert_true(row.mrr10 > 0.3 && row.mrr10 < 0.51);
  bl_params_t best;
  assert_int_equal(bl_tune(BL_MARKOV, &d, &best, &row), 0);
  assert_float_equal(row.acc1, 1.0, 1e-12); /* the chain learns the alternation */
  assert_true(best.lambda_prob > 0.0f && best.lambda_prob <= 0.5f);
  eval_data_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bl_repeat_ranks_last_and_smooths_with_popularity),
      cmocka_unit_test(test_bl_recency_orders_distinct_categories_by_last_use),
      cmocka_unit_test(test_bl_freq_and_decay),
      cmocka_unit_test(test_bl_popularity_is_global_and_causal),
      cmocka_unit_test(test_bl_markov_learns_transitions_from_all_users),
      cmocka_unit_test(test_bl_blend_mixes_recency_and_markov),
      cmocka_unit_test(test_bl_shift_and_fluctuation_scores),
      cmocka_unit_test(test_bl_run_and_tune_on_tiny_data),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
