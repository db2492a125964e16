/* Training on a small real slice (the first users of the Taobao sample):
 * the loss goes down, two runs with one seed are bit-identical (also with
 * 2, 3 and 16 threads, each count against itself; against one thread the
 * loss agrees to 5 digits), another seed differs, and the trained forward
 * equals the serving path's NLL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ctl/importer.h"
#include "model/eval.h"
#include "model/model.h"
#include "model/modelfile.h"
#include "model/train.h"
#include "under_valgrind.h"

#define SLICE_LINES 4000

static event_t *g_ev;
static size_t g_n;

static int load_slice(void **state) {
  const char *src = getenv("IX_SOURCE_DIR");
  if (!src) fail_msg("IX_SOURCE_DIR is not set (ctest sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/data/taobao_userbehavior_head100k/small_sample.csv.gz", src);
  gzFile f = gzopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  g_ev = calloc(SLICE_LINES, sizeof *g_ev);
  char line[512], why[128];
  while (g_n < SLICE_LINES && gzgets(f, line, sizeof line)) {
    size_t len = strcspn(line, "\r\n");
    if (importer_parse_line(IMPORT_TAOBAO, line, len, &g_ev[g_n], why, sizeof why) == 0) g_n++;
  }
  gzclose(f);
  if (g_n < SLICE_LINES) fail_msg("only %zu events read from %s", g_n, path);
  return 0;
}

static int free_slice(void **state) {
  free(g_ev);
  return 0;
}

static void small_opts(train_opts_t *o, uint64_t seed) {
  train_opts_default(o);
  o->dims.V = 120;
  o->dims.H = 24;
  o->dims.EC = 8;
  o->dims.EA = 4;
  o->dims.I = arch_input_size(8, 4);
  o->batch = 8;
  o->bptt = 16;
  o->max_epochs = 4;
  o->lr = 5e-3f;
  o->seed = seed;
}

static void test_train_vocab_most_frequent_first_ties_by_id(void **unused) {
  event_t ev[7];
  uint64_t cats[] = {5, 7, 7, 5, 9, 3, 3};
  int64_t ts[] = {1, 2, 3, 4, 5, 6, 100};
  for (int i = 0; i < 7; i++) {
    memset(&ev[i], 0, sizeof ev[i]);
    ev[i].category_id = cats[i];
    ev[i].ts_ms = ts[i];
  }
  uint64_t ids[4];
  /* before t=100: 5 x2, 7 x2, 9 x1, 3 x1 */
  assert_int_equal(train_build_vocab(ev, 7, 100, 4, ids), 4);
  assert_int_equal(ids[0], 0);
  assert_int_equal(ids[1], 5);
  assert_int_equal(ids[2], 7);
  assert_int_equal(ids[3], 3);
}

static void test_train_reduces_loss_and_is_deterministic(void **unused) {
  train_opts_t o;
  small_opts(&o, 7);
  char err[256];
  train_result_t a, b, c;
  assert_int_equal(train_run(&o, g_ev, g_n, &a, err, sizeof err), 0);
  assert_int_equal(a.n_epochs, 4);
  /* no dev: the last epoch's parameters are kept */
  assert_int_equal(a.best_epoch, 4);
  assert_true(a.curve[3].train_loss < a.curve[0].train_loss - 0.1);
  /* the trained model beats its own initialisation on the same data */
  train_opts_t o0 = o;
  o0.max_epochs = 0;
  train_result_t z;
  assert_int_equal(train_run(&o0, g_ev, g_n, &z, err, sizeof err), 0);
  double l0, l1;
  uint64_t n0, n1;
  assert_int_equal(train_loss(&o, g_ev, g_n, z.params, &l0, &n0, err, sizeof err), 0);
  assert_int_equal(train_loss(&o, g_ev, g_n, a.params, &l1, &n1, err, sizeof err), 0);
  assert_int_equal(n0, n1);
  assert_int_equal(n0, a.train_targets);
  /* the experts start from the heuristics (initial loss 2.46 here, where the
   * v1 head started higher), so the margin is 0.2 nats (measured 0.30) */
  assert_true(l1 < l0 - 0.2);
  train_result_free(&z);
  /* same seed: bit-identical */
  assert_int_equal(train_run(&o, g_ev, g_n, &b, err, sizeof err), 0);
  arch_layout_t L;
  arch_layout(&a.dims, &L);
  assert_memory_equal(a.params, b.params, L.total * sizeof(float));
  assert_memory_equal(a.vocab_ids, b.vocab_ids, a.dims.V * sizeof(uint64_t));
  for (uint32_t e = 0; e < a.n_epochs; e++)
    assert_true(a.curve[e].train_loss == b.curve[e].train_loss);
  /* another seed: different weights */
  small_opts(&o, 8);
  assert_int_equal(train_run(&o, g_ev, g_n, &c, err, sizeof err), 0);
  assert_true(memcmp(a.params, c.params, L.total * sizeof(float)) != 0);
  train_result_free(&a);
  train_result_free(&b);
  train_result_free(&c);
}

/* The model file train_run's result makes (the note fixed), read back. */
static unsigned char *model_bytes(const train_result_t *r, const char *path, size_t *len) {
  modelfile_t mf = {0};
  mf.dims = r->dims;
  mf.half_life_s = r->half_life_s;
  mf.vocab_ids = r->vocab_ids;
  mf.params = r->params;
  snprintf(mf.note, sizeof mf.note, "test_train");
  char err[256];
  if (modelfile_write(path, &mf, err, sizeof err) != 0) fail_msg("modelfile_write: %s", err);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot read back %s", path);
  unsigned char *buf = malloc(1 << 20);
  *len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  if (*len == 0 || *len == (1 << 20)) fail_msg("unexpected model file size %zu", *len);
  return buf;
}

/* --threads splits the batch's slots across workers (batch 8: 2 threads
 * take 4 slots each, 3 take 2/3/3, 16 are capped at 8 with one slot each),
 * each with its own gradient, summed in worker order. For a thread count
 * the run is deterministic (the same model file bytes twice); against one
 * thread only the rounding of the sums differs: the per-epoch loss must
 * agree to 5 digits and the parameters closely. */
static void test_train_threads_deterministic_and_close(void **unused) {
  train_opts_t o;
  small_opts(&o, 7);
  o.max_epochs = 2;
  char err[256], dir[] = "/tmp/test_train_XXXXXX", pa[4200], pb[4200];
  assert_non_null(mkdtemp(dir));
  snprintf(pa, sizeof pa, "%s/a.ixm", dir);
  snprintf(pb, sizeof pb, "%s/b.ixm", dir);
  train_result_t a, b, c;
  assert_int_equal(train_run(&o, g_ev, g_n, &a, err, sizeof err), 0);
  arch_layout_t L;
  arch_layout(&a.dims, &L);
  const int counts[] = {2, 3, 16};
  /* under valgrind (serial threads, minutes per run) 2 threads only */
  size_t n_counts = sizeof counts / sizeof counts[0];
  if (under_valgrind()) {
    n_counts = 1;
    printf("# under valgrind: 2 threads only (3 and 16 run in the plain and ASan builds)\n");
  }
  for (size_t i = 0; i < n_counts; i++) {
    o.threads = counts[i];
    assert_int_equal(train_run(&o, g_ev, g_n, &b, err, sizeof err), 0);
    assert_int_equal(train_run(&o, g_ev, g_n, &c, err, sizeof err), 0);
    assert_int_equal(b.curve[0].workers, counts[i] < 8 ? counts[i] : 8);
    /* same thread count twice: the same model file, byte for byte */
    size_t nb, nc;
    unsigned char *fb = model_bytes(&b, pa, &nb), *fc = model_bytes(&c, pb, &nc);
    assert_int_equal(nb, nc);
    assert_memory_equal(fb, fc, nb);
    free(fb);
    free(fc);
    double maxd = 0;
    for (size_t j = 0; j < L.total; j++) {
      double dd = fabs((double)a.params[j] - b.params[j]);
      if (dd > maxd) maxd = dd;
    }
    for (uint32_t e = 0; e < a.n_epochs; e++) {
      assert_true(b.curve[e].train_loss == c.curve[e].train_loss);
      double rel = fabs(a.curve[e].train_loss - b.curve[e].train_loss) / a.curve[e].train_loss;
      printf("# %d threads, epoch %u: loss %.7f (1 thread %.7f, rel. diff %.1e); max |param diff| "
             "%.2e\n",
             counts[i], e + 1, b.curve[e].train_loss, a.curve[e].train_loss, rel, maxd);
      assert_true(rel < 1e-5);
    }
    /* measured up to 5.6e-7 after 2 epochs */
    assert_true(maxd < 1e-4);
    train_result_free(&b);
    train_result_free(&c);
  }
  unlink(pa);
  unlink(pb);
  rmdir(dir);
  train_result_free(&a);
}

static void test_train_forward_equals_serving_path(void **unused) {
  train_opts_t o;
  small_opts(&o, 3);
  o.max_epochs = 2;
  char err[256];
  train_result_t r;
  assert_int_equal(train_run(&o, g_ev, g_n, &r, err, sizeof err), 0);
  double l_train;
  uint64_t n_train;
  assert_int_equal(train_loss(&o, g_ev, g_n, r.params, &l_train, &n_train, err, sizeof err), 0);
  /* the serving path over the same events, every non-first event a target */
  model_t *m = NULL;
  assert_int_equal(model_from_params(&r.dims, r.half_life_s, r.vocab_ids, r.params, NULL, &m,
                                     err, sizeof err),
                   0);
  eval_window_t w = {.start_ms = INT64_MIN, .end_ms = INT64_MAX, .half_life_s = r.half_life_s};
  eval_data_t d;
  assert_int_equal(eval_data_build(g_ev, g_n, &w, &d), 0);
  eval_row_t row;
  assert_int_equal(eval_run_model(m, &d, 64, &row), 0);
  assert_int_equal(row.n_targets, n_train);
  assert_float_equal(row.nll, l_train, 1e-4 * l_train);
  assert_true(row.mrr10 > 0.2);
  /* the falling calibration: bins add up to "all"; each pair's p_next = p_long
   * - drop lies in [0, p_long); hits are targets */
  uint64_t nb = 0, hb = 0;
  for (unsigned b = 0; b < EVAL_FALL_BINS; b++) nb += row.fall_n[b], hb += row.fall_hit[b];
  assert_true(row.fall_n[EVAL_FALL_BINS] > 100);
  assert_int_equal(nb, row.fall_n[EVAL_FALL_BINS]);
  assert_int_equal(hb, row.fall_hit[EVAL_FALL_BINS]);
  assert_true(row.fall_hit[EVAL_FALL_BINS] <= row.n_targets);
  assert_true(row.fall_pnext[EVAL_FALL_BINS] >= 0);
  assert_true(row.fall_pnext[EVAL_FALL_BINS] < row.fall_plong[EVAL_FALL_BINS]);
  eval_data_free(&d);
  model_destroy(m);
  train_result_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_train_vocab_most_frequent_first_ties_by_id),
      cmocka_unit_test(test_train_reduces_loss_and_is_deterministic),
      cmocka_unit_test(test_train_threads_deterministic_and_close),
      cmocka_unit_test(test_train_forward_equals_serving_path),
  };
  return cmocka_run_group_tests(tests, load_slice, free_slice);
}
