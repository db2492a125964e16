/* Exactness against PyTorch: tests/py/torch_forward.py writes a model file
 * with random weights (in the documented format), an event sequence and
 * torch's forward (nn.LSTM + the head in torch ops + profile/JS/shift). The
 * C serving path (model_load + model_step_batch in waves of distinct users)
 * and the generic cell (lstm_step_batch on torch's x) must agree within 1e-5
 * relative; the same weights read with a wrong gate order must NOT agree.
 * Needs /usr/bin/python3 with python3-torch: fails (never skips) without. */
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

#include "model/arch.h"
#include "model/lstm.h"
#include "model/model.h"

typedef struct {
  uint64_t user, item, cat;
  int64_t ts;
  int32_t action, pad;
} rec_t;

static char dir[] = "/tmp/ix_torch_fwd_XXXXXX";

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

/* max |a - b| / max(max|b|, floor) over n values */
static double rel_err(size_t n, const float *a, const float *b, double floor) {
  double num = 0, den = floor;
  for (size_t i = 0; i < n; i++) {
    num = fmax(num, fabs((double)a[i] - b[i]));
    den = fmax(den, fabs((double)b[i]));
  }
  return num / den;
}

static void test_c_forward_matches_torch(void **st) {
  (void)st;
  const char *src = getenv("IX_SOURCE_DIR");
  assert_non_null(src);
  assert_non_null(mkdtemp(dir));
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/py/torch_forward.py %s 1", src, dir);
  int rc = system(cmd);
  if (rc != 0) fail_msg("reference script failed (is python3-torch installed?): %s", cmd);

  size_t len;
  char *dims = slurp("dims.txt", &len);
  dims[len] = 0;
  unsigned V, H, EC, EA, I, K, N;
  assert_int_equal(sscanf(dims, "%u %u %u %u %u %u %u", &V, &H, &EC, &EA, &I, &K, &N), 7);
  free(dims);
  assert_int_equal(K, ARCH_K);
  rec_t *recs = slurp("events.bin", &len);
  assert_int_equal(len, N * sizeof(rec_t));
  float *exp = slurp("expected.bin", &len);
  size_t per = (size_t)H * 2 + I + V + K * 3 + 3 + H; /* floats; oov_cat u64 = 2 floats */
  assert_int_equal(len, N * per * sizeof(float));

  char err[512], path[600];
  snprintf(path, sizeof path, "%s/model.ixm", dir);
  model_t *m;
  rc = model_load(path, &m, err, sizeof err);
  if (rc) fail_msg("model_load: %s", err);
  print_message("model: %s\n", model_describe(m));
  const arch_dims_t *d = model_dims(m);
  assert_true(d->V == V && d->H == H && d->I == I && (d->flags & ARCH_F_SHIFT_UNIT));

  /* generic cell on torch's x, from the model's PyTorch-layout weights */
  arch_layout_t L;
  arch_layout(d, &L);
  const float *pr = model_params(m);
  lstm_t *cell;
  assert_int_equal(lstm_new(I, H, pr + L.w_ih, pr + L.w_hh, pr + L.b_ih, pr + L.b_hh, 8, &cell), 0);

  size_t ss = model_state_size(m);
  unsigned char *states = calloc(16, ss);
  float *hc_raw = calloc(16, 2 * H * sizeof(float));
  uint64_t users[16];
  unsigned nu = 0;
  double e_h = 0, e_c = 0, e_raw = 0, e_q = 0, e_fl = 0, e_sh = 0, e_pt = 0, e_wrong = 1e9;
  unsigned checked = 0;
  prediction_t preds[16];
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
      memcpy(xw + w * I, exp + (size_t)i * per + 2 * H, I * sizeof(float));
      w++, i++;
    }
    assert_int_equal(model_step_batch(m, sp, ev, w, preds), 0);
    lstm_step_batch(cell, w, xw, hr, cr);
    for (unsigned k = 0; k < w; k++) {
      const float *e = exp + (size_t)(first + k) * per;
      const float *eh = e, *ec = e + H, *eq = e + 2 * H + I;
      uint64_t oc[ARCH_K]; /* u64 inside a float stream: may be misaligned */
      memcpy(oc, eq + V, sizeof oc);
      const float *op = eq + V + 2 * K, *tail = op + K, *ewrong = tail + 3;
      arch_state_t *s = sp[k];
      e_h = fmax(e_h, rel_err(H, arch_state_h(s), eh, 1e-3));
      e_c = fmax(e_c, rel_err(H, arch_state_c(s, d), ec, 1e-3));
      e_raw = fmax(e_raw, fmax(rel_err(H, hr[k], eh, 1e-3), rel_err(H, cr[k], ec, 1e-3)));
      e_wrong = fmin(e_wrong, rel_err(H, arch_state_h(s), ewrong, 1e-3));
      /* each ranked probability equals torch's p of that category */
      for (uint32_t t = 0; t < preds[k].n_next; t++) {
        uint64_t c = preds[k].next[t].category_id;
        float ref = -1;
        int32_t ix = model_vocab_index(m, c);
        if (ix > 0) ref = eq[ix];
        for (unsigned r = 0; r < K; r++)
          if (ix == 0 && oc[r] == c) ref = op[r];
        assert_true(ref >= 0);
        e_q = fmax(e_q, fabs(preds[k].next[t].p - ref) / fmax(ref, 1e-6));
      }
      /* and the ranking's top is torch's maximum */
      float best = 0;
      for (unsigned j = 1; j < V; j++) best = fmaxf(best, eq[j]);
      for (unsigned r = 0; r < K; r++) best = fmaxf(best, op[r]);
      e_q = fmax(e_q, fabs(preds[k].next[0].p - best) / best);
      e_fl = fmax(e_fl, fabs(preds[k].fluctuation - tail[0]) / fmax(tail[0], 1e-3));
      e_sh = fmax(e_sh, fabs(preds[k].shift_prob - tail[1]) / fmax(tail[1], 1e-3));
      if (tail[2] >= 0) {
        /* p of the user's actual next category, by the NLL rule */
        unsigned nx;
        for (nx = first + k + 1; nx < N && recs[nx].user != ev[k].user_id; nx++) {}
        assert_true(nx < N);
        float p = model_prob(m, s, recs[nx].cat);
        e_pt = fmax(e_pt, fabs(p - tail[2]) / fmax(tail[2], 1e-6));
      }
      checked++;
    }
  }
  print_message("%u events: max rel err h %.2e c %.2e raw-cell %.2e p_next %.2e "
                "fluct %.2e shift %.2e p_target %.2e; wrong gate order: %.2e\n",
                checked, e_h, e_c, e_raw, e_q, e_fl, e_sh, e_pt, e_wrong);
  assert_int_equal(checked, N);
  assert_true(e_h < 1e-5);
  assert_true(e_c < 1e-5);
  assert_true(e_raw < 1e-5);
  assert_true(e_q < 1e-5);
  assert_true(e_fl < 1e-5);
  assert_true(e_sh < 1e-5);
  assert_true(e_pt < 1e-5);
  assert_true(e_wrong > 1e-2); /* the comparison can tell a wrong gate order */
  lstm_destroy(cell);
  model_destroy(m);
  free(states), free(hc_raw), free(recs), free(exp);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_c_forward_matches_torch)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
