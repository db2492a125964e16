/* stream/output: the JSON prediction read back with jansson (every field,
 * readable names, ids as exact decimal strings, floats that read back as the
 * same float32), the number of categories per list, msgpack unchanged. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/err.h"
#include "stream/output.h"
#include "under_valgrind.h"

static prediction_t sample(void) {
  prediction_t p;
  memset(&p, 0, sizeof p);
  p.user_id = 18446744073709551615ull;
  p.src_partition = 3;
  p.src_offset = 9007199254740993ll;
  p.event_ts_ms = 1511544070000ll;
  p.emit_ts_ms = 1511544070120ll;
  p.n_events = 42;
  p.fluctuation = 0.25f;
  p.shift_prob = 1.0f / 3.0f;
  p.n_next = PRED_TOPK;
  p.n_long = 2;
  p.n_rising = 1;
  for (int i = 0; i < PRED_TOPK; i++) p.next[i] = (pred_cat_t){959452u + (uint64_t)i, 0.5f / (float)(i + 1)};
  p.longterm[0] = (pred_cat_t){0, 0.75f};
  p.longterm[1] = (pred_cat_t){2053013555631882655ull, 1e-7f};
  p.rising[0] = (pred_cat_t){7, 0.0625f};
  p.n_falling = 2;
  p.falling[0] = (pred_cat_t){0, 0.5f};
  p.falling[1] = (pred_cat_t){2053013555631882655ull, 0.125f};
  return p;
}

static void check_cats(json_t *arr, const pred_cat_t *cats, uint32_t n, const char *vname) {
  assert_true(json_is_array(arr));
  assert_int_equal(json_array_size(arr), n);
  for (uint32_t i = 0; i < n; i++) {
    json_t *o = json_array_get(arr, i);
    assert_int_equal(json_object_size(o), 2);
    char want[24];
    snprintf(want, sizeof want, "%llu", (unsigned long long)cats[i].category_id);
    assert_string_equal(json_string_value(json_object_get(o, "category_id")), want);
    json_t *v = json_object_get(o, vname);
    assert_true(json_is_number(v));
    assert_true((float)json_number_value(v) == cats[i].p);
  }
}

static void test_json_prediction_carries_every_field(void **unused) {
  prediction_t p = sample();
  codec_buf_t buf = {0};
  assert_int_equal(output_encode_json(&p, PRED_TOPK, &buf), 0);
  json_error_t jerr;
  json_t *o = json_loadb(buf.data, buf.len, JSON_REJECT_DUPLICATES, &jerr);
  if (!o) fail_msg("%s: %.*s", jerr.text, (int)buf.len, buf.data);
  assert_int_equal(json_object_size(o), 12);
  assert_string_equal(json_string_value(json_object_get(o, "user_id")), "18446744073709551615");
  assert_int_equal(json_integer_value(json_object_get(o, "source_partition")), 3);
  assert_int_equal(json_integer_value(json_object_get(o, "source_offset")), 9007199254740993ll);
  assert_int_equal(json_integer_value(json_object_get(o, "event_time_ms")), 1511544070000ll);
  assert_int_equal(json_integer_value(json_object_get(o, "emit_time_ms")), 1511544070120ll);
  assert_int_equal(json_integer_value(json_object_get(o, "n_events")), 42);
  assert_true((float)json_number_value(json_object_get(o, "fluctuation")) == 0.25f);
  assert_true((float)json_number_value(json_object_get(o, "shift_probability")) == 1.0f / 3.0f);
  check_cats(json_object_get(o, "next"), p.next, p.n_next, "p");
  check_cats(json_object_get(o, "long_term"), p.longterm, p.n_long, "p");
  check_cats(json_object_get(o, "rising"), p.rising, p.n_rising, "delta");
  check_cats(json_object_get(o, "falling"), p.falling, p.n_falling, "delta");
  json_decref(o);
  /* three next categories; the other lists whole */
  output_opts_t oo = {.format = OUTPUT_JSON, .next_categories = 3};
  assert_int_equal(output_encode(&oo, &p, &buf), 0);
  o = json_loadb(buf.data, buf.len, 0, &jerr);
  assert_non_null(o);
  assert_int_equal(json_array_size(json_object_get(o, "next")), 3);
  assert_int_equal(json_array_size(json_object_get(o, "long_term")), 2);
  json_decref(o);
  /* twenty next categories (the most) */
  p.n_next = PRED_MAX_NEXT;
  for (int i = 0; i < PRED_MAX_NEXT; i++) p.next[i] = (pred_cat_t){100u + (uint64_t)i, 0.01f * (float)(20 - i)};
  oo.next_categories = PRED_MAX_NEXT;
  assert_int_equal(output_encode(&oo, &p, &buf), 0);
  o = json_loadb(buf.data, buf.len, 0, &jerr);
  assert_non_null(o);
  check_cats(json_object_get(o, "next"), p.next, PRED_MAX_NEXT, "p");
  json_decref(o);
  codec_buf_free(&buf);
}

static void test_msgpack_output_is_the_codec_cut_to_the_categories(void **unused) {
  prediction_t p = sample(), back;
  codec_buf_t a = {0}, b = {0};
  char why[200];
  output_opts_t all = {.format = OUTPUT_MSGPACK, .next_categories = PRED_TOPK};
  assert_int_equal(output_encode(&all, &p, &a), 0);
  assert_int_equal(codec_encode_prediction(&p, &b), 0);
  assert_int_equal(a.len, b.len);
  assert_memory_equal(a.data, b.data, a.len);
  output_opts_t four = {.format = OUTPUT_MSGPACK, .next_categories = 4};
  assert_int_equal(output_encode(&four, &p, &a), 0);
  assert_int_equal(codec_decode_prediction(a.data, a.len, &back, why, sizeof why), 0);
  assert_int_equal(back.n_next, 4);
  assert_int_equal(back.n_long, 2);
  assert_int_equal(back.next[3].category_id, p.next[3].category_id);
  /* 16..20 next pairs: a msgpack array16, read back whole */
  p.n_next = PRED_MAX_NEXT;
  for (int i = 0; i < PRED_MAX_NEXT; i++) p.next[i] = (pred_cat_t){7000u + (uint64_t)i, 0.5f / (float)(i + 1)};
  output_opts_t twenty = {.format = OUTPUT_MSGPACK, .next_categories = PRED_MAX_NEXT};
  assert_int_equal(output_encode(&twenty, &p, &a), 0);
  assert_int_equal(codec_decode_prediction(a.data, a.len, &back, why, sizeof why), 0);
  assert_int_equal(back.n_next, PRED_MAX_NEXT);
  assert_memory_equal(back.next, p.next, PRED_MAX_NEXT * sizeof p.next[0]);
  msgpack_unpacked mu;
  msgpack_unpacked_init(&mu);
  assert_int_equal(msgpack_unpack_next(&mu, a.data, a.len, NULL), MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(mu.data.via.map.ptr[8].val.via.array.size, PRED_MAX_NEXT); /* msgpack-c reads it */
  msgpack_unpacked_destroy(&mu);
  codec_buf_free(&a);
  codec_buf_free(&b);
}

static void test_json_floats_read_back_as_the_same_float(void **unused) {
  /* random bit patterns over every exponent, plus probabilities in [0, 1] */
  uint64_t s = 0x2545f4914f6cdd1dull;
  prediction_t p;
  memset(&p, 0, sizeof p);
  codec_buf_t buf = {0};
  long checked = 0;
  int rounds = 2000000;
  if (under_valgrind()) {
    rounds = 100000; /* about 7 s under valgrind instead of 140 s */
    printf("under valgrind: %d random floats instead of 2,000,000\n", rounds);
  }
  for (int n = 0; n < rounds; n++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    uint32_t bits = (uint32_t)s;
    float f;
    if (n & 1) f = (float)((s >> 11) * 0x1.0p-53);
    else memcpy(&f, &bits, 4);
    if (!isfinite(f)) continue;
    p.fluctuation = f;
    assert_int_equal(output_encode_json(&p, 0, &buf), 0);
    char *at = strstr(buf.data, "\"fluctuation\":") + 14;
    char *end;
    float back = strtof(at, &end);
    if (back != f || *end != ',')
      fail_msg("%.9g (0x%08x) wrote %.*s", (double)f, bits, (int)(strchr(at, ',') - at), at);
    checked++;
  }
  printf("%ld floats read back exactly\n", checked);
  codec_buf_free(&buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_prediction_carries_every_field),
      cmocka_unit_test(test_msgpack_output_is_the_codec_cut_to_the_categories),
      cmocka_unit_test(test_json_floats_read_back_as_the_same_float),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
