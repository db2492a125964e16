/* Exactness against PyTorch: tests/py/torch_forward.py writes a model file
 * with random weights (in the documented format), an event sequence, and
 * torch's float32 LSTM trajectory on its own inputs (raw.bin). The generic
 * cell (lstm_step_batch, float32 state) must follow that trajectory within
 * 1e-5 relative. The C serving path (model_load + model_step_batch in waves
 * of distinct users) stores h and c as bf16 (model/arch.h); its states are
 * written to cstates.bin and the script recomputes each event's step in
 * torch from the C state before it (teacher forcing: the 8-bit rounding of
 * the two sides would otherwise part at the first rounding boundary and
 * never meet again), and torch's head from the C state after it. Checks:
 * each stored h, c is the bf16 rounding of a value within 1e-5 relative of
 * torch's float32 step; the predictions, fluctuation, shift and the NLL-rule
 * probability agree with torch within 1e-5 relative; the same weights read
 * with a wrong gate order must NOT agree.
 * IX_TORCH_FWD_MODEL=FILE.ixm runs the same checks on that model file (one
 * trained by interestctl train or by python/interestd_torch) instead of
 * random weights; its head decides the variant (tests/integration/
 * test_torch_train.sh).
 * Needs /usr/bin/python3 with python3-torch: fails (never skips) without. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/arch.h"
#include "model/kernels.h"
#include "model/lstm.h"
#include "model/model.h"

typedef struct {
  uint64_t user, item, cat;
  int64_t ts;
  int32_t action, pad;
} rec_t;

static char dir[64];
static const char *g_variant = "v1"; /* torch_forward.py's head: v1 or experts */

static void *slurp(const char *name, size_t *len) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  void *b = malloc(*len + 1);
  assert_int_equal(fread(b, 1, *len, f), *len);
  fclose(f);
  return b;
}

static void run_script(const char *mode) {
  const char *src = getenv("IX_SOURCE_DIR");
  assert_non_null(src);
  const char *model = getenv("IX_TORCH_FWD_MODEL");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/py/torch_forward.py %s 1 %s %s '%s'", src,
           dir, mode, g_variant, model ? model : "");
  if (system(cmd) != 0) fail_msg("reference script failed (is python3-torch installed?): %s", cmd);
}

/* max |a - b| / max(max|b|, floor) over n values */
static double rel_err(size_t n, const float *a, const float *b, double floor) {
  double num = 0, den = floor;
  for (size_t i = 0; i < n; i++) {
    num = fmax(num, fabs((double)a[i] - b[i]));
    den = fmax(den, fabs((double)b[i]));
  }
  return num / den;
}

/* Distance from t to the interval of reals that round (nearest even) to the
 * bf16 value b: 0 when b is t's rounding. */
static double bf16_gap(double t, uint16_t b) {
  double v = kern_bf16_to_f32(b), lo, hi;
  if ((b & 0x7fffu) == 0) {
    lo = -FLT_MIN, hi = FLT_MIN; /* subnormals flush to zero */
  } else {
    double a = kern_bf16_to_f32((uint16_t)(b + 1)), c = kern_bf16_to_f32((uint16_t)(b - 1));
    lo = (v + fmin(a, c)) / 2, hi = (v + fmax(a, c)) / 2;
  }
  return t < lo ? lo - t : t > hi ? t - hi : 0.0;
}

/* max over n of bf16_gap(t[i], b[i]) / max(max|t|, floor) */
static double rounding_err(size_t n, const uint16_t *b, const float *t, double floor) {
  double num = 0, den = floor;
  for (size_t i = 0; i < n; i++) {
    num = fmax(num, bf16_gap(t[i], b[i]));
    den = fmax(den, fabs((double)t[i]));
  }
  return num / den;
}

static void test_c_forward_matches_torch(void **st) {
  g_variant = *st ? (const char *)*st : "v1";
  snprintf(dir, sizeof dir, "/tmp/ix_torch_fwd_XXXXXX");
  assert_non_null(mkdtemp(dir));
  run_script("gen");

  size_t len;
  char *dims = slurp("dims.txt", &len);
  dims[len] = 0;
  unsigned V, H, EC, EA, I, K, N;
  assert_int_equal(sscanf(dims, "%u %u %u %u %u %u %u", &V, &H, &EC, &EA, &I, &K, &N), 7);
  free(dims);
  assert_int_equal(K, ARCH_K);
  rec_t *recs = slurp("events.bin", &len);
  assert_int_equal(len, N * sizeof(rec_t));
  float *raw = slurp("raw.bin", &len); /* per event: x[I], h[H], c[H] */
  const size_t rper = (size_t)I + 2 * H;
  assert_int_equal(len, N * rper * sizeof(float));

  char err[512], path[600];
  snprintf(path, sizeof path, "%s/model.ixm", dir);
  model_t *m;
  int rc = model_load(path, &m, err, sizeof err);
  if (rc) fail_msg("model_load: %s", err);
  print_message("model: %s\n", model_describe(m));
  const arch_dims_t *d = model_dims(m);
  assert_true(d->V == V && d->H == H && d->I == I);
  /* the random models have the shift unit; a trained one does not */
  assert_true(getenv("IX_TORCH_FWD_MODEL") || (d->flags & ARCH_F_SHIFT_UNIT));
  assert_true(I <= 64 && H <= 512);

  /* generic cell on torch's x, from the model's PyTorch-layout weights */
  arch_layout_t L;
  arch_layout(d, &L);
  const float *pr = model_params(m);
  lstm_t *cell;
  assert_int_equal(lstm_new(I, H, pr + L.w_ih, pr + L.w_hh, pr + L.b_ih, pr + L.b_hh, 8, &cell), 0);

  size_t ss = model_state_size(m);
  unsigned char *states = calloc(16, ss);
  float *hc_raw = calloc(16, 2 * H * sizeof(float));
  /* per event: C's h, c before (widened), h, c after (bf16 bits) */
  float *pre = calloc((size_t)N * 2 * H, sizeof(float));
  uint16_t *post = calloc((size_t)N * 2 * H, sizeof(uint16_t));
  prediction_t *preds = calloc(N, sizeof(prediction_t));
  float *ptarget = calloc(N, sizeof(float));
  uint64_t users[16];
  unsigned nu = 0;
  double e_raw = 0;
  for (unsigned i = 0; i < N;) {
    /* a wave: consecutive events of distinct users */
    void *sp[16];
    event_t ev[16];
    float *hr[16], *cr[16], xw[16 * 64];
    unsigned w = 0, first = i;
    while (i < N && w < 16) {
      int dup = 0;
      for (unsigned k = 0; k < w; k++) dup |= ev[k].user_id == recs[i].user;
      if (dup) break;
      unsigned u;
      for (u = 0; u < nu && users[u] != recs[i].user; u++) {}
      if (u == nu) {
        users[nu++] = recs[i].user;
        model_state_init(m, states + u * ss);
      }
      sp[w] = states + u * ss;
      hr[w] = hc_raw + u * 2 * H;
      cr[w] = hr[w] + H;
      ev[w] = (event_t){recs[i].user, recs[i].item, recs[i].cat, recs[i].ts,
                        (action_t)recs[i].action};
      memcpy(xw + w * I, raw + (size_t)i * rper, I * sizeof(float));
      const uint16_t *hc = arch_state_hc16(sp[w]);
      for (unsigned j = 0; j < 2 * H; j++) pre[(size_t)i * 2 * H + j] = kern_bf16_to_f32(hc[j]);
      w++, i++;
    }
    assert_int_equal(model_step_batch(m, sp, ev, w, preds + first), 0);
    lstm_step_batch(cell, w, xw, hr, cr);
    for (unsigned k = 0; k < w; k++) {
      const float *e = raw + (size_t)(first + k) * rper + I;
      e_raw = fmax(e_raw, fmax(rel_err(H, hr[k], e, 1e-3), rel_err(H, cr[k], e + H, 1e-3)));
      memcpy(post + (size_t)(first + k) * 2 * H, arch_state_hc16(sp[k]), 2 * H * sizeof(uint16_t));
      unsigned nx;
      for (nx = first + k + 1; nx < N && recs[nx].user != ev[k].user_id; nx++) {}
      ptarget[first + k] = nx < N ? model_prob(m, sp[k], recs[nx].cat) : -1.0f;
    }
  }

  /* torch from the C states */
  snprintf(path, sizeof path, "%s/cstates.bin", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (unsigned i = 0; i < N; i++) {
    float hpost[2 * 64 * 8];
    assert_true(2 * H <= sizeof hpost / sizeof hpost[0]);
    for (unsigned j = 0; j < 2 * H; j++) hpost[j] = kern_bf16_to_f32(post[(size_t)i * 2 * H + j]);
    assert_int_equal(fwrite(pre + (size_t)i * 2 * H, sizeof(float), 2 * H, f), 2 * H);
    assert_int_equal(fwrite(hpost, sizeof(float), 2 * H, f), 2 * H);
  }
  assert_int_equal(fclose(f), 0);
  run_script("check");
  float *exp = slurp("expected.bin", &len);
  size_t per = (size_t)H * 2 + V + K * 3 + 3 + H; /* floats; oov_cat u64 = 2 floats */
  assert_int_equal(len, N * per * sizeof(float));

  double e_h = 0, e_c = 0, e_q = 0, e_fl = 0, e_sh = 0, e_pt = 0, e_wrong = 1e9;
  unsigned checked = 0, pts = 0;
  for (unsigned i = 0; i < N; i++) {
    const float *e = exp + (size_t)i * per;
    const float *eh = e, *ec = e + H, *eq = e + 2 * H;
    uint64_t oc[ARCH_K]; /* u64 inside a float stream: may be misaligned */
    memcpy(oc, eq + V, sizeof oc);
    const float *op = eq + V + 2 * K, *tail = op + K, *ewrong = tail + 3;
    const uint16_t *h16 = post + (size_t)i * 2 * H;
    float hpost[64 * 8];
    for (unsigned j = 0; j < H; j++) hpost[j] = kern_bf16_to_f32(h16[j]);
    e_h = fmax(e_h, rounding_err(H, h16, eh, 1e-3));
    e_c = fmax(e_c, rounding_err(H, h16 + H, ec, 1e-3));
    e_wrong = fmin(e_wrong, rel_err(H, hpost, ewrong, 1e-3));
    /* each ranked probability equals torch's p of that category */
    const prediction_t *p = &preds[i];
    for (uint32_t t = 0; t < p->n_next; t++) {
      uint64_t c = p->next[t].category_id;
      float ref = -1;
      int32_t ix = model_vocab_index(m, c);
      if (ix > 0) ref = eq[ix];
      for (unsigned r = 0; r < K; r++)
        if (ix == 0 && oc[r] == c) ref = op[r];
      assert_true(ref >= 0);
      e_q = fmax(e_q, fabs(p->next[t].p - ref) / fmax(ref, 1e-6));
    }
    /* and the ranking's top is torch's maximum */
    float best = 0;
    for (unsigned j = 1; j < V; j++) best = fmaxf(best, eq[j]);
    for (unsigned r = 0; r < K; r++) best = fmaxf(best, op[r]);
    e_q = fmax(e_q, fabs(p->next[0].p - best) / best);
    e_fl = fmax(e_fl, fabs(p->fluctuation - tail[0]) / fmax(tail[0], 1e-3));
    e_sh = fmax(e_sh, fabs(p->shift_prob - tail[1]) / fmax(tail[1], 1e-3));
    assert_true((tail[2] >= 0) == (ptarget[i] >= 0));
    if (tail[2] >= 0) {
      /* p of the user's actual next category, by the NLL rule */
      e_pt = fmax(e_pt, fabs(ptarget[i] - tail[2]) / fmax(tail[2], 1e-6));
      pts++;
    }
    checked++;
  }
  print_message("%u events (%u targets): generic cell vs torch, max rel err %.2e; serving path: "
                "h, c off their bf16 rounding of torch's step by %.2e, %.2e; p_next %.2e "
                "fluct %.2e shift %.2e p_target %.2e; wrong gate order: %.2e\n",
                checked, pts, e_raw, e_h, e_c, e_q, e_fl, e_sh, e_pt, e_wrong);
  assert_int_equal(checked, N);
  assert_true(pts > N / 2);
  assert_true(e_raw < 1e-5);
  assert_true(e_h < 1e-5);
  assert_true(e_c < 1e-5);
  assert_true(e_q < 1e-5);
  assert_true(e_fl < 1e-5);
  assert_true(e_sh < 1e-5);
  assert_true(e_pt < 1e-5);
  assert_true(e_wrong > 1e-2); /* the comparison can tell a wrong gate order */
  lstm_destroy(cell);
  model_destroy(m);
  free(states), free(hc_raw), free(recs), free(exp), free(raw), free(pre), free(post),
      free(preds), free(ptarget);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  /* the v1 head and the head with experts (arch.h, ARCH_F_EXPERTS); with
   * IX_TORCH_FWD_MODEL, that file only */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_c_forward_matches_torch, (void *)"v1"),
      cmocka_unit_test_prestate(test_c_forward_matches_torch, (void *)"experts"),
  };
  const struct CMUnitTest file_test[] = {
      cmocka_unit_test_prestate(test_c_forward_matches_torch, (void *)"file"),
  };
  if (getenv("IX_TORCH_FWD_MODEL")) return cmocka_run_group_tests(file_test, NULL, NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
