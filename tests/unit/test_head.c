/* Head: hand-computed mixture, probabilities sum to 1, the copy path serves
 * out-of-vocabulary categories, head_mix/topk agree with head_prob, the
 * "other" bucket is never ranked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/arch.h"
#include "model/head.h"
#include "model/kernels.h"

#include "kernel_sets.h"

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

typedef struct {
  arch_dims_t d;
  arch_layout_t L;
  float *params;
  uint64_t *ids;
  arch_state_t *s;
  float *h;
} fx_t;

static void fx_init(fx_t *f, uint32_t V, uint32_t H, uint64_t seed) {
  f->d = (arch_dims_t){.V = V, .H = H, .EC = 8, .EA = 4, .I = arch_input_size(8, 4)};
  arch_layout(&f->d, &f->L);
  f->params = malloc(f->L.total * sizeof(float));
  for (size_t i = 0; i < f->L.total; i++) f->params[i] = frand(&seed);
  f->ids = malloc(V * sizeof(uint64_t));
  f->ids[0] = 0;
  for (uint32_t j = 1; j < V; j++) f->ids[j] = 1000 + 7 * j;
  f->s = calloc(1, arch_state_size(&f->d));
  f->h = calloc(H, sizeof(float)); /* the head takes h as float32 apart from the state */
  for (uint32_t j = 0; j < H; j++) f->h[j] = frand(&seed);
}

static void fx_free(fx_t *f) {
  free(f->params);
  free(f->ids);
  free(f->s);
  free(f->h);
}

static void add_recent(arch_state_t *s, uint64_t cat, int32_t idx, uint32_t count) {
  s->recent[s->n_recent++] = (arch_recent_t){.cat = cat, .count = count, .idx = idx};
}

/* V = 3, H = 1, h = 1, W_v = (0, 1, 2), gate 0 -> g = 1/2,
 * recent = (A = vocab 2, count 1), (B out of vocab, count 3), w_f = 1:
 * s = (log 2, log 4), p_copy = (1/3, 2/3). */
static void test_head_mixture_by_hand(void **st) {
  (void)st;
  fx_t f;
  fx_init(&f, 3, 1, 1);
  memset(f.params, 0, f.L.total * sizeof(float));
  f.params[f.L.head_wv + 1] = 1.0f;
  f.params[f.L.head_wv + 2] = 2.0f;
  f.params[f.L.copy_wf] = 1.0f;
  f.h[0] = 1.0f;
  add_recent(f.s, f.ids[2], 2, 1);
  add_recent(f.s, 555, 0, 3);
  float pv[3];
  head_out_t ho;
  head_forward(&f.d, f.params, f.h, f.s, pv, &ho);
  double e = exp(1.0), e2 = exp(2.0), zs = 1 + e + e2;
  assert_true(fabs(ho.g - 0.5) < 1e-7);
  assert_true(fabs(ho.p_copy[0] - 1.0 / 3) < 1e-6);
  assert_true(fabs(ho.p_copy[1] - 2.0 / 3) < 1e-6);
  assert_true(fabs(head_prob(&ho, pv, f.s, f.ids[2], 2) - (0.5 * e2 / zs + 0.5 / 3)) < 1e-6);
  assert_true(fabs(head_prob(&ho, pv, f.s, f.ids[1], 1) - 0.5 * e / zs) < 1e-6);
  assert_true(fabs(head_prob(&ho, pv, f.s, 555, 0) - 0.5 * 2 / 3) < 1e-6);
  /* unseen, out of vocabulary: 0 by the formula, the "other" mass for NLL */
  assert_true(head_prob(&ho, pv, f.s, 777, 0) == 0.0f);
  assert_true(fabs(head_prob_target(&ho, pv, f.s, 777, 0) - 0.5 / zs) < 1e-6);
  fx_free(&f);
}

/* Every category's p(c) plus the "other" mass sums to 1; head_mix gives the
 * same numbers; top-k is the sorted prefix of all real categories. */
static void test_head_probabilities_sum_to_one_and_topk_is_sorted(void **st) {
  (void)st;
  fx_t f;
  fx_init(&f, 200, 16, 42);
  for (int k = 0; k < 10; k++) add_recent(f.s, k % 3 ? f.ids[5 + 11 * k] : (uint64_t)(90000 + k), k % 3 ? 5 + 11 * k : 0, (uint32_t)(1 + k));
  float *pv = malloc(200 * sizeof(float)), *q = malloc(200 * sizeof(float));
  head_out_t ho;
  head_forward(&f.d, f.params, f.h, f.s, pv, &ho);
  double sum = ho.g * ho.p_vocab_other;
  for (uint32_t j = 1; j < 200; j++) sum += head_prob(&ho, pv, f.s, f.ids[j], (int32_t)j);
  for (int k = 0; k < 10; k++)
    if (f.s->recent[k].idx == 0) sum += head_prob(&ho, pv, f.s, f.s->recent[k].cat, 0);
  assert_true(fabs(sum - 1.0) < 1e-5);
  memcpy(q, pv, 200 * sizeof(float));
  float oov[ARCH_K];
  head_mix(&ho, f.s, q, oov, 200);
  for (uint32_t j = 1; j < 200; j++)
    assert_true(fabsf(q[j] - head_prob(&ho, pv, f.s, f.ids[j], (int32_t)j)) < 1e-7f);
  for (int k = 0; k < 10; k++)
    if (f.s->recent[k].idx == 0)
      assert_true(fabsf(oov[k] - head_prob(&ho, pv, f.s, f.s->recent[k].cat, 0)) < 1e-7f);
  uint64_t cat[26];
  float p[26];
  size_t n = head_topk(&f.d, q, oov, f.s, f.ids, 26, cat, p);
  assert_int_equal(n, 26);
  for (size_t i = 0; i < n; i++) {
    assert_true(cat[i] != 0);
    if (i) assert_true(p[i - 1] >= p[i]);
  }
  /* brute force: nothing outside the list beats its last entry */
  for (uint32_t j = 1; j < 200; j++) {
    int listed = 0;
    for (size_t i = 0; i < n; i++) listed |= cat[i] == f.ids[j];
    if (!listed) assert_true(q[j] <= p[n - 1]);
  }
  free(pv), free(q);
  fx_free(&f);
}

/* The serving path's head_finish_mix gives the same bits as head_finish_dots
 * then head_mix, on every kernel set (V not a multiple of 16: the tail; a
 * count past the log1p table), and the same "other" mass. */
static void test_head_finish_mix_equals_finish_then_mix_bitwise(void **st) {
  (void)st;
  static const char *KS[] = {"avx512", "avx2", "scalar"};
  for (size_t ks = 0; ks < 3; ks++) {
    if (!kset_select(KS[ks])) continue;
    fx_t f;
    fx_init(&f, 203, 16, 77 + ks);
    for (int k = 0; k < 12; k++)
      add_recent(f.s, k % 4 ? f.ids[3 + 13 * k] : (uint64_t)(70000 + k), k % 4 ? 3 + 13 * k : 0,
                 k == 5 ? 100000u : (uint32_t)(1 + 3 * k));
    float dots[ARCH_K + 1];
    for (int k = 0; k <= ARCH_K; k++) dots[k] = frand(&(uint64_t){(uint64_t)k + 5});
    float *z1 = malloc(203 * sizeof(float)), *z2 = malloc(203 * sizeof(float));
    for (int j = 0; j < 203; j++) z1[j] = z2[j] = 4.0f * frand(&(uint64_t){(uint64_t)j * 3 + 1});
    head_out_t a, b;
    float oov1[ARCH_K], oov2[ARCH_K];
    head_finish_dots(&f.d, f.params, dots, f.s, z1, &a);
    head_mix(&a, f.s, z1, oov1, 203);
    head_finish_mix(&f.d, f.params, dots, f.s, z2, &b, oov2);
    assert_memory_equal(z1, z2, 203 * sizeof(float));
    assert_memory_equal(oov1, oov2, sizeof oov1);
    assert_memory_equal(&a, &b, sizeof a);
    free(z1), free(z2);
    fx_free(&f);
  }
  KSET_END();
}

/* An out-of-vocabulary category in the recent list, with the gate closed
 * and the copy logit of its rank high, gets nearly all the mass and ranks
 * first; the "other" bucket never does, even with a huge logit. */
static void test_head_copy_serves_out_of_vocabulary_category(void **st) {
  (void)st;
  fx_t f;
  fx_init(&f, 50, 8, 3);
  f.params[f.L.head_bv + 0] = 50.0f; /* "other" dominates the vocabulary softmax */
  f.params[f.L.gate_bg] = -12.0f;    /* gate closed: copy path */
  for (uint32_t j = 0; j < 8; j++) f.params[f.L.gate_wg + j] = 0.0f;
  f.params[f.L.copy_bp + 1] = 20.0f;  /* rank 1 */
  add_recent(f.s, f.ids[3], 3, 2);
  add_recent(f.s, 424242, 0, 1);       /* out of vocabulary */
  float pv[50], oov[ARCH_K];
  head_out_t ho;
  head_forward(&f.d, f.params, f.h, f.s, pv, &ho);
  assert_true(head_prob(&ho, pv, f.s, 424242, 0) > 0.99f);
  head_mix(&ho, f.s, pv, oov, 50);
  uint64_t cat[10];
  float p[10];
  size_t n = head_topk(&f.d, pv, oov, f.s, f.ids, 10, cat, p);
  assert_true(n == 10);
  assert_true(cat[0] == 424242);
  for (size_t i = 0; i < n; i++) assert_true(cat[i] != 0);
  fx_free(&f);
}

/* head_vocab_logits (one sgemm over a batch) matches the per-row dot products. */
static void test_head_batched_logits_match_single(void **st) {
  (void)st;
  fx_t f;
  fx_init(&f, 100, 16, 9);
  float hb[5 * 16], z[5 * 100], pv[100];
  uint64_t seed = 77;
  for (int i = 0; i < 5 * 16; i++) hb[i] = frand(&seed);
  head_vocab_logits(&f.d, f.params, 5, hb, 16, z, 100);
  for (int b = 0; b < 5; b++) {
    memcpy(f.h, hb + b * 16, 16 * sizeof(float));
    head_out_t ho1, ho2;
    head_forward(&f.d, f.params, f.h, f.s, pv, &ho1);
    head_finish(&f.d, f.params, f.h, f.s, z + b * 100, &ho2);
    for (int j = 0; j < 100; j++) assert_true(fabsf(pv[j] - z[b * 100 + j]) < 1e-6f);
    assert_true(ho1.g == ho2.g);
  }
  fx_free(&f);
}

/* Unused vocabulary slots (id 0) are never ranked. */
static void test_head_topk_skips_unused_vocab_slots(void **st) {
  (void)st;
  fx_t f;
  fx_init(&f, 20, 4, 5);
  for (uint32_t j = 10; j < 20; j++) f.ids[j] = 0;
  float q[20], oov[ARCH_K] = {0};
  for (int j = 0; j < 20; j++) q[j] = (float)j / 200.0f; /* unused slots highest */
  uint64_t cat[5];
  float p[5];
  size_t n = head_topk(&f.d, q, oov, f.s, f.ids, 5, cat, p);
  assert_int_equal(n, 5);
  assert_true(cat[0] == f.ids[9] && cat[4] == f.ids[5]);
  fx_free(&f);
}

/* The two-pass top-k equals a full sort (p descending, index ascending) on a
 * large vocabulary, with ties, unused slots and skewed distributions. */
static void test_head_topk_matches_full_sort(void **st) {
  (void)st;
  enum { V = 1000, KK = 26 };
  arch_dims_t d = {.V = V, .H = 4, .EC = 1, .EA = 1, .I = 16};
  float *q = malloc(V * sizeof(float)), oov[ARCH_K] = {0};
  uint64_t *ids = malloc(V * sizeof(uint64_t));
  arch_state_t *s = calloc(1, sizeof(arch_state_t) + 64);
  uint64_t seed = 1;
  for (int trial = 0; trial < 400; trial++) {
    for (int j = 0; j < V; j++) {
      float r = (frand(&seed) + 1.0f) / 2.0f;
      int mode = trial % 4;
      q[j] = mode == 0 ? r : mode == 1 ? r * r * r * r : mode == 2 ? (float)(int)(r * 8) / 8 : r / (1 + j);
      ids[j] = (trial % 3 == 0 && j % 7 == 3) ? 0 : 10 + (uint64_t)j;
    }
    ids[0] = 0;
    uint64_t cat[KK];
    float p[KK];
    size_t n = head_topk(&d, q, oov, s, ids, KK, cat, p);
    assert_int_equal(n, KK);
    /* reference: repeated selection of the best remaining (p desc, index asc) */
    char used[V] = {0};
    for (int r = 0; r < KK; r++) {
      int best = -1;
      for (int j = 1; j < V; j++)
        if (ids[j] && !used[j] && (best < 0 || q[j] > q[best])) best = j;
      used[best] = 1;
      assert_true(cat[r] == ids[best]);
      assert_true(p[r] == q[best]);
    }
  }
  free(q), free(ids), free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_head_mixture_by_hand),
      cmocka_unit_test(test_head_probabilities_sum_to_one_and_topk_is_sorted),
      cmocka_unit_test(test_head_copy_serves_out_of_vocabulary_category),
      cmocka_unit_test(test_head_batched_logits_match_single),
      cmocka_unit_test(test_head_topk_skips_unused_vocab_slots),
      cmocka_unit_test(test_head_topk_matches_full_sort),
      cmocka_unit_test(test_head_finish_mix_equals_finish_then_mix_bitwise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
