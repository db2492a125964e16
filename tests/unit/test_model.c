/* Serving engine (model.h): a user's state and prediction do not depend on
 * the wave it was stepped in (bit-identical), predictions are well formed,
 * unknown categories update the state, model_prob agrees with the ranking,
 * waves larger than the internal chunk work, the bf16 head (ARCH_F_HEAD_BF16)
 * is batch-invariant and within its rounding bound of the float32 head,
 * h and c are stored as bf16
 * (872-byte state at H = 64) and a checkpoint of the float32 layout is
 * refused on restore. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc.h"
#include "common/err.h"
#include "model/arch.h"
#include "model/kernels.h"
#include "model/model.h"
#include "state/checkpoint.h"
#include "state/store.h"

#define NU 1100 /* users: more than one internal chunk of 1024 */
#define NE 6    /* events per user */

static uint64_t rng(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

static model_t *random_model(uint32_t flags) {
  arch_dims_t d;
  arch_dims_default(&d);
  d.V = 300;
  d.flags = flags;
  arch_layout_t L;
  arch_layout(&d, &L);
  float *p = malloc(L.total * sizeof(float));
  uint64_t s = 11;
  for (size_t i = 0; i < L.total; i++) p[i] = ((float)(rng(&s) % 20001) - 10000.0f) / 20000.0f;
  uint64_t *ids = malloc(d.V * sizeof(uint64_t));
  ids[0] = 0;
  for (uint32_t j = 1; j < d.V; j++) ids[j] = 7000 + j;
  model_t *m;
  char err[256];
  assert_int_equal(model_from_params(&d, 3600.0f * 72, ids, p, NULL, &m, err, sizeof err), 0);
  free(p);
  free(ids);
  return m;
}

static event_t ev_of(uint64_t u, int e) {
  uint64_t s = u * 1000 + (uint64_t)e + 1;
  event_t ev = {.user_id = u, .item_id = rng(&s)};
  /* categories: mostly in vocabulary, some unknown (ids >= 90000) */
  uint64_t r = rng(&s) % 100;
  ev.category_id = r < 80 ? 7001 + (r * 7 + u) % 299 : 90000 + r;
  ev.ts_ms = 1511000000000ll + (int64_t)e * 45000 * (int64_t)(1 + u % 5);
  ev.action = (action_t)(rng(&s) % 6); /* includes an out-of-range action */
  return ev;
}

static void check_prediction(const prediction_t *p) {
  assert_true(p->n_next > 0 && p->n_next <= PRED_TOPK);
  double sum = 0;
  for (uint32_t i = 0; i < p->n_next; i++) {
    assert_true(p->next[i].category_id != 0);
    assert_true(p->next[i].p >= 0.0f && p->next[i].p <= 1.0f);
    if (i) assert_true(p->next[i - 1].p >= p->next[i].p);
    sum += p->next[i].p;
  }
  assert_true(sum <= 1.0 + 1e-5);
  assert_true(p->fluctuation >= 0.0f && p->fluctuation <= 1.0f);
  assert_true(p->shift_prob >= 0.0f && p->shift_prob <= 1.0f);
  assert_true(p->n_long > 0 && p->n_long <= PRED_TOPK);
  for (uint32_t i = 1; i < p->n_long; i++) assert_true(p->longterm[i - 1].p >= p->longterm[i].p);
  for (uint32_t i = 0; i < p->n_rising; i++) {
    assert_true(p->rising[i].p > 0.0f);
    if (i) assert_true(p->rising[i - 1].p >= p->rising[i].p);
  }
}

/* Wave composition A: all users together per event index. B: each user
 * alone. C: users in shuffled waves of varying size, events interleaved. */
static void run_model_invariance(uint32_t flags) {
  model_t *m = random_model(flags);
  size_t ss = model_state_size(m);
  unsigned char *A = malloc(NU * ss), *B = malloc(NU * ss), *C = malloc(NU * ss);
  prediction_t *pa = calloc(NU, sizeof(prediction_t)), pb, *pc = calloc(NU, sizeof(prediction_t));
  void **sp = malloc(NU * sizeof(void *));
  event_t *evs = malloc(NU * sizeof(event_t));
  for (size_t u = 0; u < NU; u++) {
    model_state_init(m, A + u * ss);
    model_state_init(m, B + u * ss);
    model_state_init(m, C + u * ss);
  }
  uint64_t s = 5;
  for (int e = 0; e < NE; e++) {
    for (size_t u = 0; u < NU; u++) sp[u] = A + u * ss, evs[u] = ev_of(u, e);
    assert_int_equal(model_step_batch(m, sp, evs, NU, pa), 0);
    for (size_t u = 0; u < NU; u++) {
      event_t ev = ev_of(u, e);
      void *one = B + u * ss;
      memset(&pb, 0, sizeof pb);
      assert_int_equal(model_step_batch(m, &one, &ev, 1, &pb), 0);
      assert_memory_equal(A + u * ss, B + u * ss, ss);
      assert_memory_equal(&pa[u], &pb, sizeof pb);
      check_prediction(&pb);
    }
    /* C: a random permutation split into waves of 1..97 */
    size_t perm[NU];
    for (size_t u = 0; u < NU; u++) perm[u] = u;
    for (size_t u = NU - 1; u > 0; u--) {
      size_t j = rng(&s) % (u + 1), t = perm[u];
      perm[u] = perm[j], perm[j] = t;
    }
    for (size_t i = 0; i < NU;) {
      size_t w = 1 + rng(&s) % 97;
      if (w > NU - i) w = NU - i;
      for (size_t k = 0; k < w; k++) sp[k] = C + perm[i + k] * ss, evs[k] = ev_of(perm[i + k], e);
      assert_int_equal(model_step_batch(m, sp, evs, w, pc), 0);
      for (size_t k = 0; k < w; k++) assert_memory_equal(&pc[k], &pa[perm[i + k]], sizeof pb);
      i += w;
    }
    assert_memory_equal(A, C, NU * ss);
  }
  free(A), free(B), free(C), free(pa), free(pc), free(sp), free(evs);
  model_destroy(m);
}

static void test_model_step_is_batch_invariant_bitwise(void **st) {
  (void)st;
  run_model_invariance(0);
}

static void test_model_step_with_shift_unit(void **st) {
  (void)st;
  run_model_invariance(ARCH_F_SHIFT_UNIT);
}

static void test_model_bf16_head_is_batch_invariant_bitwise(void **st) {
  (void)st;
  run_model_invariance(ARCH_F_HEAD_BF16);
  run_model_invariance(ARCH_F_HEAD_BF16 | ARCH_F_SHIFT_UNIT);
}

/* The bf16 head (ARCH_F_HEAD_BF16) against the float32 head on the same
 * parameters: the states are the same bits (the head does not touch them;
 * the fingerprint is the same), and every p(c) is within the bound that
 * rounding W_v to bf16 allows. Rounding moves logit j by at most
 * e_j = 2^-9 sum_k |W_v[j][k] h_k| (plus float32 sums, 1e-6 of that
 * magnitude), so log p_vocab moves by at most 2 max_j e_j, and the mixture
 * p = g p_vocab + (1-g) p_copy (g, p_copy unchanged) by no more in log. */
static void test_model_bf16_head_close_to_fp32_head(void **st) {
  (void)st;
  model_t *mf = random_model(0), *mb = random_model(ARCH_F_HEAD_BF16);
  assert_int_equal(model_fingerprint(mf), model_fingerprint(mb));
  assert_non_null(strstr(model_describe(mb), "head=bf16"));
  assert_null(strstr(model_describe(mf), "head=bf16"));
  const arch_dims_t *d = model_dims(mf);
  arch_layout_t L;
  arch_layout(d, &L);
  const float *wv = model_params(mf) + L.head_wv;
  const size_t ss = model_state_size(mf), nu = 40, H = d->H;
  unsigned char *A = malloc(nu * ss), *B = malloc(nu * ss);
  prediction_t pa, pb;
  double worst_ratio = 0; /* max over users of (max |log p_b/p_f|) / bound */
  size_t differ = 0, compared = 0;
  for (size_t u = 0; u < nu; u++) {
    model_state_init(mf, A + u * ss);
    model_state_init(mb, B + u * ss);
    for (int e = 0; e < NE; e++) {
      event_t ev = ev_of(u, e);
      void *a = A + u * ss, *b = B + u * ss;
      assert_int_equal(model_step_batch(mf, &a, &ev, 1, &pa), 0);
      assert_int_equal(model_step_batch(mb, &b, &ev, 1, &pb), 0);
      assert_memory_equal(a, b, ss);
      check_prediction(&pb);
    }
    float h[1024];
    arch_state_get_h(d, (const arch_state_t *)(A + u * ss), h);
    double emax = 0;
    for (size_t j = 0; j < d->V; j++) {
      double m = 0;
      for (size_t k = 0; k < H; k++) m += fabs((double)wv[j * H + k] * h[k]);
      emax = fmax(emax, m * (1.0 / 512 + 1e-6));
    }
    const double bound = 2 * emax + 1e-5;
    double worst = 0;
    for (uint32_t j = 0; j < d->V + 5; j++) {
      uint64_t cat = j < d->V ? 7000 + j : 90000 + j; /* the vocabulary, "other", unknowns */
      float p1 = model_prob(mf, A + u * ss, cat), p2 = model_prob(mb, B + u * ss, cat);
      assert_true(p1 > 0.0f && p2 > 0.0f);
      worst = fmax(worst, fabs(log((double)p2 / p1)));
      differ += p1 != p2;
      compared++;
    }
    assert_true(worst <= bound);
    worst_ratio = fmax(worst_ratio, worst / bound);
  }
  print_message("bf16 head vs fp32 head: max |log p ratio| at %.2f of the bound; %zu of %zu "
                "probabilities differ\n", worst_ratio, differ, compared);
  assert_true(differ > compared / 2); /* the bf16 path was taken */
  free(A), free(B);
  model_destroy(mf);
  model_destroy(mb);
  /* an unknown flag is refused */
  arch_dims_t bad;
  arch_dims_default(&bad);
  bad.flags = 0x8;
  char err[256];
  assert_int_not_equal(arch_dims_check(&bad, err, sizeof err), 0);
  bad.flags = ARCH_F_HEAD_BF16 | ARCH_F_SHIFT_UNIT;
  assert_int_equal(arch_dims_check(&bad, err, sizeof err), 0);
}

/* The whole serving step of a bf16-head model gives the same states and
 * predictions with vdpbf16ps (avx512) and with its emulation (avx512-emul),
 * when this CPU can run both. */
static void test_model_bf16_head_insn_equals_emulation(void **st) {
  (void)st;
  if (kern_select("avx512") < 0 || kern_select("avx512-emul") < 0) {
    /* only a CPU without the AVX-512 feature set may lack them (then
     * test_lstm compares the GEMM on the sets it has) */
    assert_false(kern_cpu_avx512());
    print_message("kernel sets avx512/avx512-emul: not on this CPU, not tested\n");
    skip();
  }
  model_t *m = random_model(ARCH_F_HEAD_BF16 | ARCH_F_SHIFT_UNIT);
  const size_t ss = model_state_size(m), nu = 200;
  unsigned char *S[2] = {malloc(nu * ss), malloc(nu * ss)};
  prediction_t *P[2] = {calloc(nu, sizeof(prediction_t)), calloc(nu, sizeof(prediction_t))};
  void **sp = malloc(nu * sizeof(void *));
  event_t *evs = malloc(nu * sizeof(event_t));
  int used_insn = 0;
  for (int v = 0; v < 2; v++) {
    assert_int_equal(kern_select(v ? "avx512-emul" : "avx512"), 0);
    used_insn |= kern_uses_bf16_insn();
    for (size_t u = 0; u < nu; u++) model_state_init(m, S[v] + u * ss);
    for (int e = 0; e < NE; e++) {
      for (size_t u = 0; u < nu; u++) sp[u] = S[v] + u * ss, evs[u] = ev_of(u, e);
      assert_int_equal(model_step_batch(m, sp, evs, nu, P[v]), 0);
    }
  }
  assert_memory_equal(S[0], S[1], nu * ss);
  assert_memory_equal(P[0], P[1], nu * sizeof(prediction_t));
  if (__builtin_cpu_supports("avx512bf16")) assert_true(used_insn);
  kern_select("avx512"); /* back to this CPU's default set */
  free(S[0]), free(S[1]), free(P[0]), free(P[1]), free(sp), free(evs);
  model_destroy(m);
}

static void test_model_unknown_category_updates_state(void **st) {
  (void)st;
  model_t *m = random_model(0);
  arch_state_t *s = calloc(1, model_state_size(m));
  model_state_init(m, s);
  event_t ev = {.user_id = 1, .category_id = 123456789, .ts_ms = 1000, .action = ACTION_VIEW};
  void *sp = s;
  prediction_t p;
  assert_int_equal(model_step_batch(m, &sp, &ev, 1, &p), 0);
  assert_int_equal(s->n_events, 1);
  assert_true(s->recent[0].cat == 123456789 && s->recent[0].idx == 0);
  assert_true(s->profile[0].cat == 123456789);
  float hsum = 0, h[64];
  arch_state_get_h(model_dims(m), s, h);
  for (int j = 0; j < 64; j++) hsum += fabsf(h[j]);
  assert_true(hsum > 0.0f);
  assert_int_equal(p.n_events, 1);
  assert_int_equal(p.n_long, 1);
  assert_true(p.longterm[0].category_id == 123456789 && fabsf(p.longterm[0].p - 1.0f) < 1e-6f);
  /* the unknown category is reachable through the copy path */
  int found = 0;
  for (uint32_t i = 0; i < p.n_next; i++) found |= p.next[i].category_id == 123456789;
  float pu = model_prob(m, s, 123456789);
  assert_true(pu > 0.0f);
  if (found) {
    for (uint32_t i = 0; i < p.n_next; i++)
      if (p.next[i].category_id == 123456789) assert_true(fabsf(p.next[i].p - pu) < 1e-6f);
  }
  /* model_prob agrees with the ranked probabilities of in-vocab categories */
  for (uint32_t i = 0; i < p.n_next; i++)
    assert_true(fabsf(model_prob(m, s, p.next[i].category_id) - p.next[i].p) < 1e-6f);
  /* shift = mass outside the one-category profile */
  assert_true(fabsf(p.shift_prob - (1.0f - pu)) < 1e-5f);
  /* a never-seen, unknown category gets the "other" mass, not zero */
  assert_true(model_prob(m, s, 987654321) > 0.0f);
  free(s);
  model_destroy(m);
}

/* The heuristics a state carries, ranked for the live quality metrics:
 * recency = recent-list order; decay = dec_w descending, ties in recency
 * order (experts models only); beyond k or absent = 0. */
static void test_model_heuristic_rank_orders_the_state(void **st) {
  (void)st;
  model_t *m = random_model(ARCH_F_EXPERTS), *m1 = random_model(0);
  arch_state_t *s = calloc(1, model_state_size(m));
  s->n_recent = 4;
  const uint64_t cats[4] = {50, 60, 70, 80};
  const float w[4] = {1.0f, 3.0f, 0.5f, 3.0f};
  for (unsigned k = 0; k < 4; k++) s->recent[k].cat = cats[k], s->dec_w[k] = w[k];
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_RECENCY, 50, 10), 1);
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_RECENCY, 80, 10), 4);
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_RECENCY, 80, 3), 0);
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_RECENCY, 99, 10), 0);
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_DECAY, 60, 10), 1); /* 3.0, earlier */
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_DECAY, 80, 10), 2); /* 3.0, later */
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_DECAY, 50, 10), 3);
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_DECAY, 70, 10), 4);
  assert_int_equal(model_heuristic_rank(m, s, MODEL_H_DECAY, 70, 3), 0);
  assert_int_equal(model_heuristic_rank(m1, s, MODEL_H_DECAY, 60, 10), 0); /* no experts */
  free(s);
  model_destroy(m);
  model_destroy(m1);
}

static void test_model_state_size_documented(void **st) {
  (void)st;
  model_t *m = random_model(0);
  assert_int_equal(model_state_size(m), 872); /* arch.h: 616 + 4 * H (bf16 h, c) at H = 64 */
  assert_int_equal(model_step_batch(m, NULL, NULL, 0, NULL), 0);
  model_destroy(m);
}

/* The blob holds exactly the bf16 rounding (nearest even) of h and c; the
 * rounding helper agrees with hand-made bit patterns. */
static void test_state_stores_h_c_as_bf16(void **st) {
  (void)st;
  assert_int_equal(kern_bf16_from_f32(1.0f), 0x3f80);
  assert_int_equal(kern_bf16_from_f32(-2.0f), 0xc000);
  assert_int_equal(kern_bf16_from_f32(1.00390625f), 0x3f80);  /* 1 + 2^-8: tie, to even */
  assert_int_equal(kern_bf16_from_f32(1.01171875f), 0x3f82);  /* 1 + 3*2^-8: tie, to even */
  assert_int_equal(kern_bf16_from_f32(nextafterf(1.00390625f, 2.0f)), 0x3f81); /* above the tie */
  assert_int_equal(kern_bf16_from_f32(1e-40f), 0x0000);       /* subnormal -> 0 */
  assert_int_equal(kern_bf16_from_f32(-1e-40f), 0x8000);
  assert_int_equal(kern_bf16_from_f32(3.4e38f), 0x7f80);      /* rounds up to inf */
  assert_true(kern_bf16_to_f32(kern_bf16_from_f32(NAN)) != kern_bf16_to_f32(kern_bf16_from_f32(NAN)));
  assert_true(kern_bf16_to_f32(0x3f81) == 1.0078125f);
  model_t *m = random_model(0);
  const arch_dims_t *d = model_dims(m);
  arch_state_t *s = calloc(1, model_state_size(m));
  model_state_init(m, s);
  void *sp = s;
  int nonzero = 0;
  for (int e = 0; e < 5; e++) {
    event_t ev = ev_of(3, e);
    assert_int_equal(model_step_batch(m, &sp, &ev, 1, NULL), 0);
  }
  const uint16_t *hc = arch_state_hc16(s);
  for (uint32_t j = 0; j < 2 * d->H; j++) {
    float v = kern_bf16_to_f32(hc[j]);
    assert_true(isfinite(v));
    nonzero += v != 0.0f;
  }
  assert_true(nonzero > (int)d->H);
  assert_true(arch_state_c16(s, d) == arch_state_h16(s) + d->H);
  free(s);
  model_destroy(m);
}

/* The fingerprint the float32-state layout (ARCH_STATE_FORMAT 1, 1064-byte
 * blob at H = 64) gave the same model: the formula of that build (whose
 * model file had no ARCH_F_HEAD_BF16 flag). */
static uint32_t fingerprint_fp32_layout(const model_t *m) {
  const arch_dims_t *d = model_dims(m);
  uint32_t layout[10] = {ARCH_VERSION, 552u /* that build's header */, ARCH_K, ARCH_P,
                         d->V, d->H, d->EC, d->EA, d->I, d->flags & ~(uint32_t)ARCH_F_HEAD_BF16};
  arch_layout_t L;
  arch_layout(d, &L);
  uint32_t crc = ix_crc32(0, layout, sizeof layout);
  crc = ix_crc32(crc, model_vocab_ids(m), (size_t)d->V * sizeof(uint64_t));
  return ix_crc32(crc, model_params(m), L.total * sizeof(float));
}

/* A checkpoint written by the float32-state build for the shipped model is
 * refused with a message naming both fingerprints, not misread as bf16. */
static void test_checkpoint_of_fp32_state_layout_is_refused(void **st) {
  (void)st;
  const char *src = getenv("IX_SOURCE_DIR");
  assert_non_null(src);
  char path[1024], err[512];
  /* the v1 shipped model (model file version 1, no experts), still loadable */
  snprintf(path, sizeof path, "%s/tests/data/taobao-h64-v1.ixm", src);
  model_t *m;
  int rc = model_load(path, &m, err, sizeof err);
  if (rc) fail_msg("model_load: %s", err);
  uint32_t old_fp = fingerprint_fp32_layout(m);
  /* docs/img/results_taobao.md records fp=f647da93 for the shipped model
   * under the float32 layout: the formula above is that build's */
  assert_int_equal(old_fp, 0xf647da93u);
  assert_int_not_equal(model_fingerprint(m), old_fp);
  char dir[] = "/tmp/ix_model_ckpt_XXXXXX";
  assert_non_null(mkdtemp(dir));
  /* the old daemon's store: 1064-byte model state (+ the pipeline's trailer,
   * whatever its size: the fingerprint check comes first) */
  store_opts_t so = {.blob_size = 1064 + 32, .small_pages = 1};
  store_t *old = NULL, *cur = NULL;
  assert_int_equal(store_new(&so, &old), 0);
  for (uint64_t u = 1; u <= 10; u++) assert_non_null(store_get(old, 0, u, 1000, 1, NULL));
  ckpt_opts_t co = {.dir = dir};
  ckpt_t *ck = NULL;
  assert_int_equal(ckpt_new(&co, &ck, err, sizeof err), 0);
  assert_int_equal(ckpt_write_partition(ck, old, 0, 42, old_fp, NULL, err, sizeof err), 0);
  so.blob_size = model_state_size(m) + 32;
  assert_int_equal(store_new(&so, &cur), 0);
  ckpt_restore_info_t info;
  err[0] = 0;
  rc = ckpt_restore_partition(dir, 0, model_fingerprint(m), cur, &info, err, sizeof err);
  print_message("restore of a float32-layout checkpoint: %s\n", err);
  assert_int_equal(rc, IX_EMISMATCH);
  assert_int_equal(store_partition_users(cur, 0), 0);
  assert_non_null(strstr(err, "fingerprint f647da93"));
  ckpt_destroy(ck);
  store_destroy(old);
  store_destroy(cur);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  model_destroy(m);
}

/* model_set_next_count(): twenty next categories are the default ten
 * followed by the ranks 11..20 (descending), everything else unchanged. */
static void test_model_next_count_extends_next_only(void **st) {
  (void)st;
  model_t *m = random_model(0);
  size_t ss = model_state_size(m);
  enum { U = 40 };
  unsigned char *A = malloc(U * ss), *B = malloc(U * ss);
  prediction_t *pa = calloc(U, sizeof(prediction_t)), *pb = calloc(U, sizeof(prediction_t));
  void *sa[U], *sb[U];
  for (size_t u = 0; u < U; u++) {
    model_state_init(m, A + u * ss);
    model_state_init(m, B + u * ss);
    sa[u] = A + u * ss;
    sb[u] = B + u * ss;
  }
  assert_int_equal(model_set_next_count(m, 0), IX_EINVAL);
  assert_int_equal(model_set_next_count(m, PRED_MAX_NEXT + 1), IX_EINVAL);
  size_t long_next = 0;
  for (int e = 0; e < NE; e++) {
    event_t evs[U];
    for (size_t u = 0; u < U; u++) evs[u] = ev_of(u, e);
    assert_int_equal(model_set_next_count(m, PRED_TOPK), 0);
    assert_int_equal(model_step_batch(m, sa, evs, U, pa), 0);
    assert_int_equal(model_set_next_count(m, PRED_MAX_NEXT), 0);
    assert_int_equal(model_step_batch(m, sb, evs, U, pb), 0);
    for (size_t u = 0; u < U; u++) {
      const prediction_t *a = &pa[u], *b = &pb[u];
      assert_true(b->n_next >= a->n_next && b->n_next <= PRED_MAX_NEXT);
      long_next += b->n_next > PRED_TOPK;
      assert_memory_equal(a->next, b->next, a->n_next * sizeof a->next[0]);
      for (uint32_t i = 1; i < b->n_next; i++) assert_true(b->next[i - 1].p >= b->next[i].p);
      assert_int_equal(a->n_long, b->n_long);
      assert_int_equal(a->n_rising, b->n_rising);
      assert_memory_equal(a->longterm, b->longterm, sizeof a->longterm);
      assert_memory_equal(a->rising, b->rising, sizeof a->rising);
      assert_true(memcmp(&a->fluctuation, &b->fluctuation, sizeof(float)) == 0);
      assert_true(memcmp(&a->shift_prob, &b->shift_prob, sizeof(float)) == 0);
    }
    assert_memory_equal(A, B, U * ss); /* the states do not depend on it */
  }
  assert_true(long_next > 0);
  free(A);
  free(B);
  free(pa);
  free(pb);
  model_destroy(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model_step_is_batch_invariant_bitwise),
      cmocka_unit_test(test_model_step_with_shift_unit),
      cmocka_unit_test(test_model_bf16_head_is_batch_invariant_bitwise),
      cmocka_unit_test(test_model_bf16_head_close_to_fp32_head),
      cmocka_unit_test(test_model_bf16_head_insn_equals_emulation),
      cmocka_unit_test(test_model_unknown_category_updates_state),
      cmocka_unit_test(test_model_state_size_documented),
      cmocka_unit_test(test_model_heuristic_rank_orders_the_state),
      cmocka_unit_test(test_state_stores_h_c_as_bf16),
      cmocka_unit_test(test_checkpoint_of_fp32_state_layout_is_refused),
      cmocka_unit_test(test_model_next_count_extends_next_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
