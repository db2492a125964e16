/* The head's fast paths against plain references, bit for bit:
 * head_topk against a full sort, for every kernel set this CPU can run (the
 * avx512 set has its own top-k), over vocabulary sizes that hit every tail
 * and fallback path, k from 1 to past the two-pass limit, flat, peaked,
 * tied and zero-heavy distributions, unused vocabulary slots and
 * out-of-vocabulary recent slots; the copy distribution (vectorised expf on
 * AVX-512) against expf from libm. */
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

static uint64_t rng = 12345;
static float urand(void) { /* [0, 1) */
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) / (double)(1ull << 24));
}

typedef struct {
  float p;
  int cls;      /* 0 vocabulary, 1 out-of-vocabulary recent slot */
  uint32_t pos; /* vocab index or recency rank */
  uint64_t cat;
} item_t;

/* p descending; on ties vocabulary before recent slots, then smaller index
 * or rank (head.h: "ties by smaller vocab index then recency") */
static int item_cmp(const void *a, const void *b) {
  const item_t *x = a, *y = b;
  if (x->p != y->p) return x->p > y->p ? -1 : 1;
  if (x->cls != y->cls) return x->cls - y->cls;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Fill q[V] (q[0] is the never-ranked "other" bucket) by distribution mode. */
static void fill(float *q, uint32_t V, int mode) {
  for (uint32_t j = 0; j < V; j++) {
    float r = urand();
    switch (mode) {
    case 0: q[j] = r; break;                              /* flat */
    case 1: q[j] = r * r * r * r * r * r * r * r; break;  /* peaked */
    case 2: q[j] = (float)(int)(r * 6) / 6; break;        /* few distinct values: ties */
    case 3: q[j] = r < 0.97f ? 0.0f : r; break;           /* mostly zero */
    case 4: q[j] = expf(4.0f * (r - 1.0f)) / (float)V; break; /* softmax-like */
    case 5: q[j] = 0.25f; break;                          /* all equal */
    default: q[j] = r / (1.0f + (float)j); break;         /* decreasing with index */
    }
  }
}

static void check_one(uint32_t V, size_t k, int mode, int unused, int n_oov) {
  arch_dims_t d = {.V = V, .H = 4, .EC = 1, .EA = 1, .I = 16};
  float *q = malloc(V * sizeof(float));
  uint64_t *ids = malloc(V * sizeof(uint64_t));
  arch_state_t *s = calloc(1, sizeof(arch_state_t) + 64);
  item_t *ref = malloc((V + ARCH_K) * sizeof(item_t));
  fill(q, V, mode);
  ids[0] = 0;
  for (uint32_t j = 1; j < V; j++) ids[j] = (unused && urand() < 0.2f) ? 0 : 100000 + (uint64_t)j;
  float oov[ARCH_K] = {0};
  s->n_recent = ARCH_K;
  for (unsigned r = 0; r < ARCH_K; r++) {
    int is_oov = (int)r < n_oov;
    uint32_t j = 1 + (uint32_t)(urand() * (float)(V - 1));
    s->recent[r] = (arch_recent_t){.cat = is_oov ? 900000 + r : ids[j], .count = 1,
                                   .idx = is_oov ? 0 : (int32_t)j};
    /* some out-of-vocabulary masses tie with vocabulary values */
    if (is_oov) oov[r] = (r % 3 == 0) ? q[1 + r % (V - 1)] : urand() * q[1 + (r * 7) % (V - 1)] * 2;
  }
  size_t n = 0;
  for (uint32_t j = 1; j < V; j++)
    if (ids[j]) ref[n++] = (item_t){q[j], 0, j, ids[j]};
  for (unsigned r = 0; r < ARCH_K; r++)
    if (s->recent[r].idx <= 0 && oov[r] > 0.0f)
      ref[n++] = (item_t){oov[r], 1, r, s->recent[r].cat};
  qsort(ref, n, sizeof *ref, item_cmp);
  uint64_t cat[40];
  float p[40];
  size_t m = head_topk(&d, q, oov, s, ids, k, cat, p);
  size_t want = n < k ? n : k;
  if (m != want) fail_msg("V=%u k=%zu mode=%d: %zu results, want %zu", V, k, mode, m, want);
  for (size_t i = 0; i < m; i++)
    if (cat[i] != ref[i].cat || memcmp(&p[i], &ref[i].p, sizeof(float)) != 0)
      fail_msg("%s V=%u k=%zu mode=%d unused=%d oov=%d: rank %zu is %llu %.9g, want %llu %.9g",
               kern_name(), V, k, mode, unused, n_oov, i, (unsigned long long)cat[i],
               (double)p[i], (unsigned long long)ref[i].cat, (double)ref[i].p);
  free(q), free(ids), free(s), free(ref);
}

static void test_head_topk_equals_full_sort_on_every_kernel_set(void **st) {
  (void)st;
  static const uint32_t Vs[] = {100, 256, 300, 999, 1000, 1001, 1024, 1025, 1040, 2000, 4097, 5000};
  static const size_t ks[] = {1, 2, 10, 26, 32, 33};
  const char *sets[] = {"avx512", "avx2", "scalar"};
  int ran = 0;
  for (int ks_i = 0; ks_i < 3; ks_i++) {
    if (!kset_select(sets[ks_i])) continue;
    ran++;
    for (size_t vi = 0; vi < sizeof Vs / sizeof *Vs; vi++)
      for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
        for (int mode = 0; mode < 7; mode++)
          for (int rep = 0; rep < 3; rep++) check_one(Vs[vi], ks[ki], mode, rep == 1, rep * 3);
  }
  assert_true(ran >= 1);
  KSET_END();
}

/* The serving shape (V = 1000, k = 26 = PRED_TOPK + ARCH_P) on many random
 * q, as head_finish_mix leaves them: the path the daemon takes per event. */
static void test_head_topk_serving_shape_many_users(void **st) {
  (void)st;
  const char *sets[] = {"avx512", "scalar"};
  for (int ks_i = 0; ks_i < 2; ks_i++) {
    if (!kset_select(sets[ks_i])) continue;
    for (int t = 0; t < 3000; t++) check_one(1000, 26, t % 7, t % 5 == 0, t % 4);
  }
  KSET_END();
}

/* gate and copy distribution of head_finish_dots == the scalar formulas
 * with libm's expf, bitwise, for 0..ARCH_K filled slots, logits from tiny to
 * past 88 (where the vector expf hands over to libm) */
static void test_head_copy_distribution_equals_libm_bitwise(void **st) {
  (void)st;
  arch_dims_t d = {.V = 8, .H = 4, .EC = 1, .EA = 1, .I = 16};
  arch_layout_t L;
  arch_layout(&d, &L);
  float *params = calloc(L.total, sizeof(float));
  arch_state_t *s = calloc(1, arch_state_size(&d));
  float z[8], dots[ARCH_K + 1];
  for (int t = 0; t < 20000; t++) {
    float scale = (t % 4 == 0) ? 0.01f : (t % 4 == 1) ? 3.0f : (t % 4 == 2) ? 30.0f : 80.0f;
    for (unsigned k = 0; k <= ARCH_K; k++) dots[k] = (urand() * 2 - 1) * scale;
    for (unsigned k = 0; k < ARCH_K; k++) params[L.copy_bp + k] = urand() - 0.5f;
    params[L.copy_wf] = urand() * 2;
    params[L.gate_bg] = urand() - 0.5f;
    s->n_recent = (uint8_t)(t % (ARCH_K + 1));
    for (unsigned k = 0; k < s->n_recent; k++)
      s->recent[k] = (arch_recent_t){.cat = 50 + k, .count = 1 + (uint32_t)(urand() * (t % 2 ? 400 : 9)), .idx = 1};
    for (int j = 0; j < 8; j++) z[j] = urand();
    head_out_t o;
    head_finish_dots(&d, params, dots, s, z, &o);
    /* reference: the formulas of head.h with libm */
    unsigned n = s->n_recent;
    float sc[ARCH_K] = {0}, pc[ARCH_K] = {0}, mx = -INFINITY, sum = 0.0f;
    for (unsigned k = 0; k < n; k++) {
      sc[k] = dots[k] + params[L.copy_bp + k] + params[L.copy_wf] * log1pf((float)s->recent[k].count);
      if (sc[k] > mx) mx = sc[k];
    }
    for (unsigned k = 0; k < n; k++) sum += (pc[k] = expf(sc[k] - mx));
    for (unsigned k = 0; k < n; k++) pc[k] /= sum;
    float g = 1.0f / (1.0f + expf(-(dots[ARCH_K] + params[L.gate_bg])));
    assert_int_equal(o.n_recent, n);
    assert_memory_equal(&o.g, &g, sizeof g);
    assert_memory_equal(o.s_copy, sc, sizeof sc);
    assert_memory_equal(o.p_copy, pc, sizeof pc);
  }
  free(params), free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_head_topk_equals_full_sort_on_every_kernel_set),
      cmocka_unit_test(test_head_topk_serving_shape_many_users),
      cmocka_unit_test(test_head_copy_distribution_equals_libm_bitwise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
