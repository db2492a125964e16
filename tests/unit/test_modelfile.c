/* Model file: bit-exact round trip (file and loaded model), and each kind of
 * damage rejected with its own code and message: truncated, flipped byte,
 * wrong magic, wrong version, dimension mismatch, trailing bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc.h"
#include "common/err.h"
#include "model/arch.h"
#include "model/model.h"
#include "model/modelfile.h"

static char path[256];

static void make_model(modelfile_t *mf, uint64_t seed) {
  memset(mf, 0, sizeof(*mf));
  mf->dims = (arch_dims_t){.V = 300, .H = 32, .EC = 16, .EA = 8, .I = arch_input_size(16, 8)};
  mf->half_life_s = 3600.0f * 24.0f;
  arch_layout_t L;
  arch_layout(&mf->dims, &L);
  mf->params = malloc(L.total * sizeof(float));
  mf->vocab_ids = malloc(mf->dims.V * sizeof(uint64_t));
  for (size_t i = 0; i < L.total; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    mf->params[i] = (float)((int64_t)(seed >> 32) - (1ll << 31)) / (float)(1ll << 33);
  }
  mf->vocab_ids[0] = 0;
  for (uint32_t j = 1; j < mf->dims.V; j++) mf->vocab_ids[j] = 5000000000ull + 13 * j;
  snprintf(mf->note, sizeof mf->note, "unit test model");
}

static unsigned char *slurp(const char *p, size_t *len) {
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*len);
  assert_int_equal(fread(b, 1, *len, f), *len);
  fclose(f);
  return b;
}

static void spit(const char *p, const unsigned char *b, size_t len) {
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, len, f), len);
  fclose(f);
}

static int setup(void **st) {
  (void)st;
  snprintf(path, sizeof path, "/tmp/ix_test_modelfile_%d.ixm", (int)getpid());
  return 0;
}
static int teardown(void **st) {
  (void)st;
  unlink(path);
  return 0;
}

static void test_modelfile_round_trip_is_bit_exact(void **st) {
  (void)st;
  modelfile_t mf, back;
  make_model(&mf, 1);
  char err[512];
  assert_int_equal(modelfile_write(path, &mf, err, sizeof err), 0);
  assert_int_equal(modelfile_read(path, &back, err, sizeof err), 0);
  arch_layout_t L;
  arch_layout(&mf.dims, &L);
  assert_memory_equal(&back.dims, &mf.dims, sizeof mf.dims);
  assert_true(back.half_life_s == mf.half_life_s);
  assert_memory_equal(back.params, mf.params, L.total * sizeof(float));
  assert_memory_equal(back.vocab_ids, mf.vocab_ids, mf.dims.V * sizeof(uint64_t));
  assert_string_equal(back.note, "unit test model");
  assert_int_equal(back.crc, mf.crc);
  /* the loaded model holds the same parameters and fingerprint as one built
   * from memory, and writing it again reproduces the file byte for byte */
  model_t *m1, *m2;
  assert_int_equal(model_load(path, &m1, err, sizeof err), 0);
  assert_int_equal(model_from_params(&mf.dims, mf.half_life_s, mf.vocab_ids, mf.params,
                                     "unit test model", &m2, err, sizeof err), 0);
  assert_memory_equal(model_params(m1), mf.params, L.total * sizeof(float));
  assert_int_equal(model_fingerprint(m1), model_fingerprint(m2));
  assert_int_equal(model_state_size(m1), 616 + 4 * 32); /* bf16 h, c (arch.h) */
  assert_true(strstr(model_describe(m1), "h=32") != NULL);
  size_t len1, len2;
  unsigned char *f1 = slurp(path, &len1);
  back.note[0] = 'u';
  assert_int_equal(modelfile_write(path, &back, err, sizeof err), 0);
  unsigned char *f2 = slurp(path, &len2);
  assert_int_equal(len1, len2);
  assert_memory_equal(f1, f2, len1);
  free(f1), free(f2);
  model_destroy(m1);
  model_destroy(m2);
  modelfile_free(&back);
  modelfile_free(&mf);
}

/* Write the good file, damage it with fn, expect code and message words. */
static void expect_rejected(void (*damage)(unsigned char *b, size_t *len), int code,
                            const char *words) {
  modelfile_t mf, back;
  make_model(&mf, 2);
  char err[512] = "";
  assert_int_equal(modelfile_write(path, &mf, err, sizeof err), 0);
  size_t len;
  unsigned char *b = slurp(path, &len);
  damage(b, &len);
  spit(path, b, len);
  free(b);
  int rc = modelfile_read(path, &back, err, sizeof err);
  print_message("%s: %s\n", ix_err_name(rc), err);
  assert_int_equal(rc, code);
  assert_non_null(strstr(err, words));
  assert_non_null(strstr(err, path)); /* names the file */
  assert_null(back.params);
  model_t *m = (model_t *)&mf; /* poison: must be set to NULL on failure */
  assert_int_equal(model_load(path, &m, err, sizeof err), code);
  assert_null(m);
  modelfile_free(&mf);
}

static void cut_header(unsigned char *b, size_t *len) { (void)b; *len = 30; }
static void cut_weights(unsigned char *b, size_t *len) { (void)b; *len -= 1000; }
static void cut_crc(unsigned char *b, size_t *len) { (void)b; *len -= 2; }
static void flip_weight(unsigned char *b, size_t *len) { b[*len - 500] ^= 0x10; }
static void flip_vocab(unsigned char *b, size_t *len) { (void)len; b[52 + 15 + 100] ^= 1; }
static void bad_magic(unsigned char *b, size_t *len) { (void)len; memcpy(b, "PK\3\4XXXX", 8); }
static void bad_version(unsigned char *b, size_t *len) { (void)len; b[8] = 3; }
static void bad_dims(unsigned char *b, size_t *len) { (void)len; b[16] = 64; } /* H 32 -> 64 */
static void bad_input(unsigned char *b, size_t *len) { (void)len; b[28] = 8; } /* I too small */

static void test_modelfile_rejects_truncated(void **st) {
  (void)st;
  expect_rejected(cut_header, IX_ETRUNC, "truncated");
  expect_rejected(cut_weights, IX_ETRUNC, "truncated");
  expect_rejected(cut_crc, IX_ETRUNC, "truncated");
}
static void test_modelfile_rejects_flipped_byte(void **st) {
  (void)st;
  expect_rejected(flip_weight, IX_ECRC, "checksum mismatch");
  expect_rejected(flip_vocab, IX_ECRC, "corrupted");
}
static void test_modelfile_rejects_wrong_magic(void **st) {
  (void)st;
  expect_rejected(bad_magic, IX_EBADMAGIC, "not an interestd model file");
}
static void test_modelfile_rejects_wrong_version(void **st) {
  (void)st;
  expect_rejected(bad_version, IX_EVERSION, "version 3 is not supported");
}

/* A model with experts is written as version 2 and read back bit for bit; a
 * version-1 header claiming experts and out-of-range expert constants are
 * refused; a model without experts is still written as version 1. */
static void test_modelfile_experts_are_version_2(void **st) {
  (void)st;
  modelfile_t mf, back;
  make_model(&mf, 5);
  assert_int_equal(modelfile_write(path, &mf, (char[256]){0}, 256), 0);
  size_t len;
  unsigned char *b = slurp(path, &len);
  assert_int_equal(b[8], 1);
  free(b);
  modelfile_free(&mf);
  make_model(&mf, 5);
  mf.dims.flags = ARCH_F_EXPERTS;
  arch_layout_t L;
  arch_layout(&mf.dims, &L);
  free(mf.params);
  mf.params = calloc(L.total, sizeof(float));
  for (size_t i = 0; i < L.x_beta; i++) mf.params[i] = 0.01f * (float)(i % 13) - 0.06f;
  mf.params[L.x_beta] = 0.65f;
  mf.params[L.x_gamma] = 1.0f;
  mf.params[L.x_hl] = 21600.0f;
  char err[512];
  assert_int_equal(modelfile_write(path, &mf, err, sizeof err), 0);
  b = slurp(path, &len);
  assert_int_equal(b[8], 2);
  assert_int_equal(modelfile_read(path, &back, err, sizeof err), 0);
  assert_memory_equal(back.params, mf.params, L.total * sizeof(float));
  model_t *m;
  assert_int_equal(model_load(path, &m, err, sizeof err), 0);
  assert_int_equal(model_state_size(m), 616 + 4 * 32);
  model_destroy(m);
  modelfile_free(&back);
  b[8] = 1;
  spit(path, b, len);
  assert_int_equal(modelfile_read(path, &back, err, sizeof err), IX_EMISMATCH);
  assert_non_null(strstr(err, "cannot hold a head with experts"));
  free(b);
  mf.params[L.x_gamma] = 1.5f;
  assert_int_equal(modelfile_write(path, &mf, err, sizeof err), 0);
  assert_int_equal(modelfile_read(path, &back, err, sizeof err), IX_EMISMATCH);
  assert_non_null(strstr(err, "expert constants out of range"));
  assert_null(back.params);
  modelfile_free(&mf);
}
static void test_modelfile_rejects_dimension_mismatch(void **st) {
  (void)st;
  expect_rejected(bad_dims, IX_EMISMATCH, "parameters but dimensions");
  expect_rejected(bad_input, IX_EMISMATCH, "input size 8 does not fit");
}

static void test_modelfile_rejects_trailing_bytes_and_missing_file(void **st) {
  (void)st;
  modelfile_t mf, back;
  make_model(&mf, 3);
  char err[512];
  assert_int_equal(modelfile_write(path, &mf, err, sizeof err), 0);
  FILE *f = fopen(path, "ab");
  fputs("junk", f);
  fclose(f);
  assert_int_equal(modelfile_read(path, &back, err, sizeof err), IX_EMALFORMED);
  assert_non_null(strstr(err, "trailing"));
  assert_int_equal(modelfile_read("/nonexistent/x.ixm", &back, err, sizeof err), IX_ENOENT);
  assert_non_null(strstr(err, "cannot open"));
  modelfile_free(&mf);
}

/* Non-finite weights with a valid checksum are refused at model build. */
static void test_model_rejects_non_finite_weights(void **st) {
  (void)st;
  modelfile_t mf;
  make_model(&mf, 4);
  mf.params[17] = 1.0f / 0.0f;
  char err[512];
  assert_int_equal(modelfile_write(path, &mf, err, sizeof err), 0);
  model_t *m;
  assert_int_equal(model_load(path, &m, err, sizeof err), IX_EMALFORMED);
  assert_non_null(strstr(err, "not finite"));
  modelfile_free(&mf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_modelfile_round_trip_is_bit_exact),
      cmocka_unit_test(test_modelfile_rejects_truncated),
      cmocka_unit_test(test_modelfile_rejects_flipped_byte),
      cmocka_unit_test(test_modelfile_rejects_wrong_magic),
      cmocka_unit_test(test_modelfile_rejects_wrong_version),
      cmocka_unit_test(test_modelfile_experts_are_version_2),
      cmocka_unit_test(test_modelfile_rejects_dimension_mismatch),
      cmocka_unit_test(test_modelfile_rejects_trailing_bytes_and_missing_file),
      cmocka_unit_test(test_model_rejects_non_finite_weights),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
