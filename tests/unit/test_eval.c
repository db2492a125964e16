/* Evaluation metrics on hand-made inputs: AUC with ties, the ranking
 * metrics, NLL clamping, history buckets, and the data preparation
 * (ordering, targets, first events, the "outside the profile" label). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "model/eval.h"

static void test_eval_auc_separation_reversal_and_ties(void **unused) {
  float s1[] = {0.1f, 0.2f, 0.8f, 0.9f};
  uint8_t l1[] = {0, 0, 1, 1};
  assert_float_equal(eval_auc(4, s1, l1), 1.0, 1e-12);
  uint8_t l2[] = {1, 1, 0, 0};
  assert_float_equal(eval_auc(4, s1, l2), 0.0, 1e-12);
  float s3[] = {0.5f, 0.5f, 0.5f, 0.5f};
  assert_float_equal(eval_auc(4, s3, l1), 0.5, 1e-12);
  /* 0.1, 0.4 negative; 0.35, 0.8 positive: pairs won 3 of 4 */
  float s4[] = {0.1f, 0.4f, 0.35f, 0.8f};
  assert_float_equal(eval_auc(4, s4, l1), 0.75, 1e-12);
  /* ties count one half: positives {0.5, 0.9}, negatives {0.5, 0.2}: 3.5 / 4 */
  float s5[] = {0.5f, 0.5f, 0.2f, 0.9f};
  uint8_t l5[] = {1, 0, 0, 1};
  assert_float_equal(eval_auc(4, s5, l5), 0.875, 1e-12);
  /* one class empty: undefined */
  uint8_t l6[] = {1, 1, 1, 1};
  assert_true(isnan(eval_auc(4, s1, l6)));
}

static void test_eval_ranking_metrics_and_nll(void **unused) {
  eval_acc_t *acc = eval_acc_new();
  assert_non_null(acc);
  unsigned ranks[] = {1, 3, 0, 6, 10};
  double ps[] = {0.5, 0.25, 0.0, 0.1, 1.0};
  for (int i = 0; i < 5; i++)
    assert_int_equal(eval_acc_add(acc, ranks[i], ps[i], (float)i, 0.f, i % 2, (uint32_t)(i + 1)), 0);
  eval_row_t row;
  memset(&row, 0, sizeof row);
  eval_acc_summary(acc, &row);
  assert_int_equal(row.n_targets, 5);
  assert_int_equal(row.n_outside, 2);
  assert_float_equal(row.acc1, 0.2, 1e-12);
  assert_float_equal(row.rec5, 0.4, 1e-12);
  assert_float_equal(row.rec10, 0.8, 1e-12);
  assert_float_equal(row.mrr10, (1.0 + 1.0 / 3 + 1.0 / 6 + 1.0 / 10) / 5, 1e-12);
  double nll = (-log(0.5) - log(0.25) - log(EVAL_P_FLOOR) - log(0.1) - 0.0) / 5;
  assert_float_equal(row.nll, nll, 1e-9);
  /* shift = i, labels 0,1,0,1,0: positives at 1 and 3 vs negatives 0, 2, 4: 3 of 6 */
  assert_float_equal(row.auc_shift, 0.5, 1e-12);
  /* fluct all equal: 0.5 */
  assert_float_equal(row.auc_fluct, 0.5, 1e-12);
  /* buckets: hist 1 -> bucket 0; 2..4 -> bucket 1; 5 -> bucket 2 */
  assert_int_equal(row.b_n[0], 1);
  assert_int_equal(row.b_n[1], 3);
  assert_int_equal(row.b_n[2], 1);
  assert_float_equal(row.b_mrr10[0], 1.0, 1e-12);
  assert_float_equal(row.b_mrr10[1], (1.0 / 3 + 0 + 1.0 / 6) / 3, 1e-12);
  eval_acc_destroy(acc);
}

static void test_eval_buckets(void **unused) {
  assert_int_equal(eval_bucket(0), 0);
  assert_int_equal(eval_bucket(1), 0);
  assert_int_equal(eval_bucket(2), 1);
  assert_int_equal(eval_bucket(4), 1);
  assert_int_equal(eval_bucket(5), 2);
  assert_int_equal(eval_bucket(199), 6);
  assert_int_equal(eval_bucket(200), 7);
  assert_int_equal(eval_bucket(100000), 7);
  assert_int_equal(eval_bucket_lo(3), 10);
}

static event_t ev(uint64_t u, uint64_t c, int64_t t) {
  event_t e = {.user_id = u, .item_id = 1, .category_id = c, .ts_ms = t, .action = ACTION_VIEW};
  return e;
}

static void test_eval_data_targets_order_and_labels(void **unused) {
  /* given out of time order; window [100, 200) */
  event_t in[] = {
      ev(7, 1, 150), /* user 7: 3rd event, in window, cat 1 in profile -> inside */
      ev(7, 1, 10),  /* user 7: 1st */
      ev(9, 5, 120), /* user 9: 1st event, in window: not a target */
      ev(7, 2, 20),  /* user 7: 2nd */
      ev(7, 3, 160), /* user 7: 4th, in window, cat 3 new -> outside */
      ev(9, 5, 250), /* after the window: not fed */
      ev(9, 5, 130), /* user 9: 2nd, in window, repeat -> inside */
  };
  eval_window_t w = {.start_ms = 100, .end_ms = 200, .half_life_s = 3600.0f};
  eval_data_t d;
  assert_int_equal(eval_data_build(in, 7, &w, &d), 0);
  assert_int_equal(d.n, 7);
  assert_int_equal(d.n_fed, 6);
  assert_int_equal(d.n_users, 2);
  assert_int_equal(d.n_targets, 3);
  int64_t ts[] = {10, 20, 120, 130, 150, 160, 250};
  for (int i = 0; i < 7; i++) assert_int_equal(d.ev[i].ts_ms, ts[i]);
  uint8_t tg[] = {0, 0, 0, 1, 1, 1};
  uint8_t out[] = {0, 0, 0, 0, 0, 1};
  uint32_t hist[] = {0, 1, 0, 1, 2, 3};
  for (int i = 0; i < 6; i++) {
    assert_int_equal(d.target[i], tg[i]);
    if (tg[i]) assert_int_equal(d.outside[i], out[i]);
    assert_int_equal(d.hist[i], hist[i]);
  }
  assert_int_equal(d.user[0], d.user[4]);
  assert_int_not_equal(d.user[0], d.user[2]);
  eval_data_free(&d);
  /* equal times keep the input order */
  event_t tie[] = {ev(1, 11, 5), ev(1, 12, 5), ev(1, 13, 5)};
  assert_int_equal(eval_sort_events(tie, 3), 0);
  assert_int_equal(tie[0].category_id, 11);
  assert_int_equal(tie[2].category_id, 13);
}

static void test_eval_user_split_partitions_targets_by_user(void **unused) {
  /* 200 users x 5 events; 30% held out with seed 7 */
  enum { NU = 200, PER = 5 };
  static event_t in[NU * PER];
  for (int u = 0; u < NU; u++)
    for (int k = 0; k < PER; k++) in[u * PER + k] = ev(1000 + (uint64_t)u, (uint64_t)k, 10 * k + u);
  eval_window_t all = {.start_ms = INT64_MIN, .end_ms = INT64_MAX, .half_life_s = 3600.0f,
                       .holdout_pct = 30, .holdout_seed = 7};
  eval_window_t held = all, rest = all;
  held.users = EVAL_USERS_HELD_OUT;
  rest.users = EVAL_USERS_TRAINING;
  eval_data_t da, dh, dr;
  assert_int_equal(eval_data_build(in, NU * PER, &all, &da), 0);
  assert_int_equal(eval_data_build(in, NU * PER, &held, &dh), 0);
  assert_int_equal(eval_data_build(in, NU * PER, &rest, &dr), 0);
  /* every user is fed in each; targets split exactly by the rule */
  assert_int_equal(dh.n_fed, NU * PER);
  assert_int_equal(da.n_targets, NU * (PER - 1));
  assert_int_equal(dh.n_targets + dr.n_targets, da.n_targets);
  size_t n_held = 0;
  for (int u = 0; u < NU; u++) n_held += (size_t)eval_user_held_out(1000 + (uint64_t)u, 30, 7);
  assert_int_equal(dh.n_targets, n_held * (PER - 1));
  assert_true(n_held > 40 && n_held < 80); /* about 30% of 200 */
  for (size_t i = 0; i < dh.n; i++) {
    int h = eval_user_held_out(dh.ev[i].user_id, 30, 7);
    if (dh.target[i]) assert_true(h);
    if (dr.target[i]) assert_false(h);
    assert_int_equal(dh.target[i] | dr.target[i], da.target[i]);
  }
  /* another seed selects other users; 0% is refused for a split */
  size_t differ = 0;
  for (int u = 0; u < NU; u++)
    differ += eval_user_held_out(1000 + (uint64_t)u, 30, 7) != eval_user_held_out(1000 + (uint64_t)u, 30, 8);
  assert_true(differ > 20);
  eval_data_t bad;
  held.holdout_pct = 0;
  assert_int_equal(eval_data_build(in, NU * PER, &held, &bad), IX_EINVAL);
  eval_data_free(&da);
  eval_data_free(&dh);
  eval_data_free(&dr);
}

static void test_eval_prints_markdown_table(void **unused) {
  eval_row_t row;
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "recency");
  row.n_targets = 10;
  row.mrr10 = 0.5;
  row.auc_shift = NAN;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  eval_print_table(f, &row, 1, 1);
  fclose(f);
  assert_non_null(strstr(buf, "| recency | 10 |"));
  assert_non_null(strstr(buf, "| 0.5000 |"));
  assert_non_null(strstr(buf, "n/a"));
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_eval_auc_separation_reversal_and_ties),
      cmocka_unit_test(test_eval_ranking_metrics_and_nll),
      cmocka_unit_test(test_eval_buckets),
      cmocka_unit_test(test_eval_data_targets_order_and_labels),
      cmocka_unit_test(test_eval_user_split_partitions_targets_by_user),
      cmocka_unit_test(test_eval_prints_markdown_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
