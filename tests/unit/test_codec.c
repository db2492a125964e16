/* stream/codec: event and prediction messages. Messages under test are built
 * byte by byte here (not with msgpack-c), so the decoder is checked against
 * the wire format of docs/FORMATS.md rather than against its own encoder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h> /* only as the reference for the hand-written encoder and event reader */

#include "common/err.h"
#include "stream/codec.h"

/* ---------------------------------------------------------------- builder */

typedef struct {
  uint8_t b[8192];
  size_t n;
} mp_t;

static void mp_byte(mp_t *m, uint8_t v) { m->b[m->n++] = v; }
static void mp_be(mp_t *m, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) mp_byte(m, (uint8_t)(v >> (8 * i)));
}
static void mp_map(mp_t *m, unsigned n) {
  if (n < 16) mp_byte(m, (uint8_t)(0x80 | n));
  else { mp_byte(m, 0xde); mp_be(m, n, 2); }
}
static void mp_array(mp_t *m, unsigned n) {
  if (n < 16) mp_byte(m, (uint8_t)(0x90 | n));
  else { mp_byte(m, 0xdc); mp_be(m, n, 2); }
}
static void mp_strn(mp_t *m, const char *s, size_t n) {
  if (n < 32) mp_byte(m, (uint8_t)(0xa0 | n));
  else if (n < 256) { mp_byte(m, 0xd9); mp_be(m, n, 1); }
  else { mp_byte(m, 0xda); mp_be(m, n, 2); }
  memcpy(m->b + m->n, s, n);
  m->n += n;
}
static void mp_str(mp_t *m, const char *s) { mp_strn(m, s, strlen(s)); }
static void mp_uint(mp_t *m, uint64_t v) {
  if (v < 128) mp_byte(m, (uint8_t)v);
  else if (v <= 0xffffffffu) { mp_byte(m, 0xce); mp_be(m, v, 4); }
  else { mp_byte(m, 0xcf); mp_be(m, v, 8); }
}
static void mp_int64(mp_t *m, int64_t v) { mp_byte(m, 0xd3); mp_be(m, (uint64_t)v, 8); }
static void mp_f64(mp_t *m, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  mp_byte(m, 0xcb);
  mp_be(m, u, 8);
}

/* A complete valid event: u, i, c, a, t. */
static void mp_event(mp_t *m, uint64_t u, uint64_t i, uint64_t c, const char *a, int64_t t) {
  mp_map(m, 5);
  mp_str(m, "u"); mp_uint(m, u);
  mp_str(m, "i"); mp_uint(m, i);
  mp_str(m, "c"); mp_uint(m, c);
  mp_str(m, "a"); mp_str(m, a);
  mp_str(m, "t"); mp_uint(m, (uint64_t)t);
}

static int all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

/* Decodes expecting failure `code`, checks *out is zeroed and errstr mentions `needle`. */
static void expect_event_error(const void *buf, size_t len, int code, const char *needle) {
  event_t ev;
  memset(&ev, 0xAA, sizeof ev);
  char err[256] = "";
  int rc = codec_decode_event(buf, len, &ev, err, sizeof err);
  if (rc != code) fail_msg("want %s, got %s (%s)", ix_err_name(code), ix_err_name(rc), err);
  assert_true(all_zero(&ev, sizeof ev));
  if (needle && !strstr(err, needle)) fail_msg("errstr '%s' does not mention '%s'", err, needle);
}

static event_t decode_ok(const mp_t *m) {
  event_t ev;
  char err[256] = "";
  int rc = codec_decode_event(m->b, m->n, &ev, err, sizeof err);
  if (rc) fail_msg("decode failed: %s (%s)", ix_err_name(rc), err);
  return ev;
}

/* ---------------------------------------------------------------- events */

static void test_event_round_trip_every_field_and_id_kind(void **state) {
  const uint64_t ids[] = {0, 1, 127, 128, 255, 65535, 4294967295u, 4294967296u,
                          1234567890123456789ULL /* 19 digits */, UINT64_MAX};
  const int64_t times[] = {0, 1, 1511544070000, INT64_MAX};
  codec_buf_t buf = {0};
  int n = 0;
  for (size_t a = 0; a < ACTION__COUNT; a++)
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
      for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
        event_t in = {.user_id = ids[i],
                      .item_id = ids[(i + 3) % 10],
                      .category_id = ids[(i + 7) % 10],
                      .ts_ms = times[t],
                      .action = (action_t)a};
        assert_int_equal(codec_encode_event(&in, &buf), 0);
        event_t out;
        assert_int_equal(codec_decode_event(buf.data, buf.len, &out, NULL, 0), 0);
        assert_true(out.user_id == in.user_id && out.item_id == in.item_id &&
                    out.category_id == in.category_id && out.ts_ms == in.ts_ms &&
                    out.action == in.action);
        n++;
      }
  assert_int_equal(n, ACTION__COUNT * 10 * 4);
  codec_buf_free(&buf);
}

static void test_event_encoding_is_the_documented_bytes(void **state) {
  /* docs/FORMATS.md example; Python's msgpack.packb of the same dict gives these bytes. */
  static const char *hex =
      "85a17501a169ce00229c9ea163ce00267539a16100a174cf0000015fef0c1f70";
  event_t ev = {.user_id = 1, .item_id = 2268318, .category_id = 2520377,
                .ts_ms = 1511544070000, .action = ACTION_VIEW};
  codec_buf_t buf = {0};
  assert_int_equal(codec_encode_event(&ev, &buf), 0);
  char got[256] = "";
  for (size_t i = 0; i < buf.len; i++) snprintf(got + 2 * i, 3, "%02x", (uint8_t)buf.data[i]);
  assert_string_equal(got, hex);
  codec_buf_free(&buf);
}

static void test_event_accepts_string_ids_decimal_and_hashed(void **state) {
  static const struct {
    const char *s;
    uint64_t want;
  } cases[] = {
      {"0", 0},
      {"42", 42},
      {"1234567890123456789", 1234567890123456789ULL},
      {"18446744073709551615", UINT64_MAX},
      /* not canonical decimal -> FNV-1a 64 (values from an independent Python FNV-1a) */
      {"18446744073709551616", 0xedf2aa6b38fc416dULL},
      {"007", 0x4e7eef181d60f22eULL},
      {"-1", 0x07d00b07b497d12bULL},
      {"abc", 0xe71fa2190541574bULL},
      {"user-42", 0x32c6d7a54d35dacbULL},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    assert_true(codec_hash_id(cases[k].s, strlen(cases[k].s)) == cases[k].want);
    mp_t m = {0};
    mp_map(&m, 3);
    mp_str(&m, "u"); mp_str(&m, cases[k].s);
    mp_str(&m, "c"); mp_str(&m, cases[k].s);
    mp_str(&m, "t"); mp_uint(&m, 5);
    event_t ev = decode_ok(&m);
    assert_true(ev.user_id == cases[k].want);
    assert_true(ev.category_id == cases[k].want);
    assert_true(ev.item_id == 0);           /* item is optional */
    assert_int_equal(ev.action, ACTION_OTHER); /* missing action = other */
  }
}

static void test_event_accepts_signed_non_negative_ints(void **state) {
  mp_t m = {0};
  mp_map(&m, 3);
  mp_str(&m, "u"); mp_int64(&m, 5);
  mp_str(&m, "c"); mp_byte(&m, 0xd0); mp_byte(&m, 7); /* int8 7 */
  mp_str(&m, "t"); mp_int64(&m, 1511544070000);
  event_t ev = decode_ok(&m);
  assert_true(ev.user_id == 5 && ev.category_id == 7 && ev.ts_ms == 1511544070000);
}

static void test_event_action_names_codes_and_other(void **state) {
  static const struct {
    const char *s;
    action_t want;
  } names[] = {{"view", ACTION_VIEW}, {"pv", ACTION_VIEW},  {"click", ACTION_VIEW},
               {"cart", ACTION_CART}, {"fav", ACTION_FAV},  {"buy", ACTION_BUY},
               {"VIEW", ACTION_OTHER}, {"", ACTION_OTHER}, {"refund", ACTION_OTHER}};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    mp_t m = {0};
    mp_event(&m, 1, 2, 3, names[k].s, 4);
    assert_int_equal(decode_ok(&m).action, names[k].want);
  }
  const uint64_t codes[] = {0, 1, 2, 3, 4, 99, UINT64_MAX};
  const action_t want[] = {ACTION_VIEW, ACTION_CART, ACTION_FAV, ACTION_BUY,
                           ACTION_OTHER, ACTION_OTHER, ACTION_OTHER};
  for (size_t k = 0; k < 7; k++) {
    mp_t m = {0};
    mp_map(&m, 4);
    mp_str(&m, "u"); mp_uint(&m, 1);
    mp_str(&m, "c"); mp_uint(&m, 1);
    mp_str(&m, "t"); mp_uint(&m, 1);
    mp_str(&m, "a"); mp_uint(&m, codes[k]);
    assert_int_equal(decode_ok(&m).action, want[k]);
  }
  /* other types: nil, negative int, float, array, map -> other, never an error */
  const uint8_t odd[][4] = {{1, 0xc0}, {1, 0xff}, {1, 0xc3}, {2, 0x91, 0x01}, {1, 0x80}};
  for (size_t k = 0; k < 5; k++) {
    mp_t m = {0};
    mp_map(&m, 4);
    mp_str(&m, "u"); mp_uint(&m, 1);
    mp_str(&m, "c"); mp_uint(&m, 1);
    mp_str(&m, "t"); mp_uint(&m, 1);
    mp_str(&m, "a");
    for (int j = 0; j < odd[k][0]; j++) mp_byte(&m, odd[k][1 + j]);
    assert_int_equal(decode_ok(&m).action, ACTION_OTHER);
  }
  assert_string_equal(codec_action_name(ACTION_VIEW), "view");
  assert_string_equal(codec_action_name(ACTION_BUY), "buy");
  assert_string_equal(codec_action_name(ACTION_OTHER), "other");
}

static void test_event_ignores_unknown_keys(void **state) {
  mp_t m = {0};
  mp_map(&m, 8);
  mp_str(&m, "x"); mp_map(&m, 1); mp_str(&m, "deep"); mp_array(&m, 2); mp_f64(&m, 1.5); mp_byte(&m, 0xc0);
  mp_str(&m, "u"); mp_uint(&m, 9);
  mp_uint(&m, 7); mp_str(&m, "int key");
  mp_str(&m, "c"); mp_uint(&m, 8);
  mp_str(&m, "user"); mp_str(&m, "not u");
  mp_str(&m, "t"); mp_uint(&m, 7);
  mp_str(&m, "bin"); mp_byte(&m, 0xc4); mp_byte(&m, 2); mp_byte(&m, 0); mp_byte(&m, 1);
  mp_str(&m, "ext"); mp_byte(&m, 0xd4); mp_byte(&m, 1); mp_byte(&m, 0);
  event_t ev = decode_ok(&m);
  assert_true(ev.user_id == 9 && ev.category_id == 8 && ev.ts_ms == 7);
}

static void test_event_rejects_empty_not_map_and_oversized(void **state) {
  expect_event_error("", 0, IX_ETRUNC, "empty");
  expect_event_error("\x91\x01", 2, IX_ENOTMAP, "not a msgpack map");
  expect_event_error("\x01", 1, IX_ENOTMAP, "not a msgpack map");
  expect_event_error("\xa1u", 2, IX_ENOTMAP, NULL);
  expect_event_error("\xc0", 1, IX_ENOTMAP, NULL);
  /* oversized: a valid event padded with an unknown long string */
  mp_t m = {0};
  mp_map(&m, 4);
  mp_str(&m, "u"); mp_uint(&m, 1);
  mp_str(&m, "c"); mp_uint(&m, 1);
  mp_str(&m, "t"); mp_uint(&m, 1);
  mp_str(&m, "pad");
  size_t pad = CODEC_MAX_MSG - m.n - 3; /* str16 header is 3 bytes: exactly CODEC_MAX_MSG */
  char *s = malloc(pad);
  memset(s, 'x', pad);
  mp_strn(&m, s, pad);
  assert_int_equal(m.n, CODEC_MAX_MSG);
  decode_ok(&m);
  m.b[m.n++] = 0; /* one byte more (also trailing garbage, but size is checked first) */
  expect_event_error(m.b, m.n, IX_ETOOBIG, "4096");
  free(s);
}

static void test_event_rejects_every_truncation(void **state) {
  mp_t m = {0};
  mp_event(&m, UINT64_MAX, 2268318, 1234567890123456789ULL, "cart", 1511544070000);
  for (size_t k = 1; k < m.n; k++) expect_event_error(m.b, k, IX_ETRUNC, "truncated");
  /* a container claiming 4 billion elements in 5 bytes: truncated, no huge allocation */
  expect_event_error("\xdf\xff\xff\xff\xff", 5, IX_ETRUNC, NULL);
  const uint8_t arr[] = {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
  expect_event_error(arr, sizeof arr, IX_ETRUNC, NULL);
  const uint8_t str[] = {0x81, 0xa1, 'x', 0xdb, 0xff, 0xff, 0xff, 0xff, 0x01};
  expect_event_error(str, sizeof str, IX_ETRUNC, NULL);
}

static void test_event_rejects_trailing_garbage_and_bad_bytes(void **state) {
  mp_t m = {0};
  mp_event(&m, 1, 2, 3, "buy", 4);
  size_t n = m.n;
  m.b[m.n++] = 0x00;
  expect_event_error(m.b, m.n, IX_EMALFORMED, "trailing");
  mp_event(&m, 1, 2, 3, "buy", 4); /* two messages back to back */
  expect_event_error(m.b, m.n, IX_EMALFORMED, "trailing");
  /* reserved byte 0xc1 as an unknown key's value */
  mp_t r = {0};
  mp_map(&r, 4);
  mp_str(&r, "u"); mp_uint(&r, 1);
  mp_str(&r, "c"); mp_uint(&r, 1);
  mp_str(&r, "t"); mp_uint(&r, 1);
  mp_str(&r, "z"); mp_byte(&r, 0xc1);
  expect_event_error(r.b, r.n, IX_EMALFORMED, "0xc1");
  /* nesting deeper than the limit in an ignored value */
  mp_t d = {0};
  mp_map(&d, 4);
  mp_str(&d, "u"); mp_uint(&d, 1);
  mp_str(&d, "c"); mp_uint(&d, 1);
  mp_str(&d, "t"); mp_uint(&d, 1);
  mp_str(&d, "z");
  for (int i = 0; i < 40; i++) mp_array(&d, 1);
  mp_uint(&d, 0);
  expect_event_error(d.b, d.n, IX_EMALFORMED, "nested");
  (void)n;
}

static void test_event_rejects_missing_required_fields(void **state) {
  const char *req[] = {"u", "c", "t"};
  for (int skip = 0; skip < 3; skip++) {
    mp_t m = {0};
    mp_map(&m, 4);
    mp_str(&m, "i"); mp_uint(&m, 1);
    for (int k = 0; k < 3; k++) {
      if (k == skip) {
        mp_str(&m, "a"); mp_str(&m, "view");
      } else {
        mp_str(&m, req[k]); mp_uint(&m, 1);
      }
    }
    char needle[8];
    snprintf(needle, sizeof needle, "'%s'", req[skip]);
    expect_event_error(m.b, m.n, IX_EMISSING, needle);
  }
  expect_event_error("\x80", 1, IX_EMISSING, "'u'");
}

/* Builds {u,c,t} with field `which` replaced by the raw bytes v. */
static void mp_with(mp_t *m, const char *which, const uint8_t *v, size_t vn) {
  const char *keys[] = {"u", "c", "t", "i"};
  mp_map(m, 4);
  for (int k = 0; k < 4; k++) {
    mp_str(m, keys[k]);
    if (strcmp(keys[k], which) == 0) {
      memcpy(m->b + m->n, v, vn);
      m->n += vn;
    } else {
      mp_uint(m, 1);
    }
  }
}

static void expect_with(const char *key, const uint8_t *v, size_t vn, int code) {
  mp_t m = {0};
  mp_with(&m, key, v, vn);
  char needle[8];
  snprintf(needle, sizeof needle, "'%s'", key);
  expect_event_error(m.b, m.n, code, needle);
}
#define EXPECT_WITH(key, bytes, code) expect_with(key, bytes, sizeof bytes, code)

static void test_event_rejects_wrong_types_and_ranges(void **state) {
  const uint8_t f64[] = {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
  const uint8_t nil[] = {0xc0}, tru[] = {0xc3}, arr[] = {0x90}, map[] = {0x80};
  const uint8_t bin[] = {0xc4, 0x01, 0x31};
  const uint8_t neg[] = {0xff}; /* -1 */
  const uint8_t neg64[] = {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0};
  const uint8_t big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}; /* 2^63 */
  const uint8_t tstr[] = {0xa3, '1', '2', '3'};
  const uint8_t empty[] = {0xa0};
  const char *ids[] = {"u", "c", "i"};
  for (int k = 0; k < 3; k++) {
    EXPECT_WITH(ids[k], f64, IX_ETYPE);
    EXPECT_WITH(ids[k], nil, IX_ETYPE);
    EXPECT_WITH(ids[k], tru, IX_ETYPE);
    EXPECT_WITH(ids[k], arr, IX_ETYPE);
    EXPECT_WITH(ids[k], map, IX_ETYPE);
    EXPECT_WITH(ids[k], bin, IX_ETYPE);
    EXPECT_WITH(ids[k], neg, IX_ERANGE);
    EXPECT_WITH(ids[k], neg64, IX_ERANGE);
    EXPECT_WITH(ids[k], empty, IX_EMALFORMED);
    /* string ids up to CODEC_MAX_STRID bytes */
    char s[CODEC_MAX_STRID + 1];
    memset(s, 'a', sizeof s);
    mp_t ok = {0}, sv = {0};
    mp_strn(&sv, s, CODEC_MAX_STRID);
    mp_with(&ok, ids[k], sv.b, sv.n);
    decode_ok(&ok);
    memset(&sv, 0, sizeof sv);
    mp_strn(&sv, s, CODEC_MAX_STRID + 1);
    expect_with(ids[k], sv.b, sv.n, IX_ETOOBIG);
  }
  EXPECT_WITH("t", f64, IX_ETYPE);
  EXPECT_WITH("t", tstr, IX_ETYPE);
  EXPECT_WITH("t", nil, IX_ETYPE);
  EXPECT_WITH("t", neg, IX_ERANGE);
  EXPECT_WITH("t", neg64, IX_ERANGE);
  EXPECT_WITH("t", big, IX_ERANGE);
  /* duplicate key */
  mp_t d = {0};
  mp_map(&d, 4);
  mp_str(&d, "u"); mp_uint(&d, 1);
  mp_str(&d, "c"); mp_uint(&d, 1);
  mp_str(&d, "t"); mp_uint(&d, 1);
  mp_str(&d, "u"); mp_uint(&d, 2);
  expect_event_error(d.b, d.n, IX_EMALFORMED, "'u' appears twice");
}

static void test_event_encode_rejects_invalid(void **state) {
  codec_buf_t buf = {0};
  event_t ev = {.user_id = 1, .ts_ms = -1};
  assert_int_equal(codec_encode_event(&ev, &buf), IX_EINVAL);
  ev.ts_ms = 0;
  ev.action = ACTION__COUNT;
  assert_int_equal(codec_encode_event(&ev, &buf), IX_EINVAL);
  codec_buf_free(&buf);
  codec_buf_free(NULL);
}

/* ---------------------------------------------------------------- predictions */

static prediction_t sample_prediction(void) {
  prediction_t p = {0};
  p.user_id = UINT64_MAX;
  p.src_partition = 7;
  p.src_offset = 123456789012LL;
  p.event_ts_ms = 1511544070000;
  p.emit_ts_ms = 1700000000123;
  p.n_events = 4294967295u;
  p.fluctuation = 0.3125f;
  p.shift_prob = 0.01f;
  p.n_next = PRED_TOPK;
  p.n_long = 3;
  p.n_rising = 0;
  p.n_falling = 2;
  p.falling[0] = (pred_cat_t){77, 0.25f};
  p.falling[1] = (pred_cat_t){78, 0.125f};
  for (int i = 0; i < PRED_TOPK; i++) {
    p.next[i].category_id = i == 0 ? 1234567890123456789ULL : (uint64_t)(1000 + i);
    p.next[i].p = 0.5f / (float)(i + 1);
  }
  p.longterm[0] = (pred_cat_t){0, 0.25f}; /* "other" bucket */
  p.longterm[1] = (pred_cat_t){UINT64_MAX, 0.125f};
  p.longterm[2] = (pred_cat_t){3, 1e-7f};
  return p;
}

static void assert_pred_equal(const prediction_t *a, const prediction_t *b) {
  assert_true(a->user_id == b->user_id);
  assert_int_equal(a->src_partition, b->src_partition);
  assert_true(a->src_offset == b->src_offset);
  assert_true(a->event_ts_ms == b->event_ts_ms);
  assert_true(a->emit_ts_ms == b->emit_ts_ms);
  assert_int_equal(a->n_events, b->n_events);
  assert_memory_equal(&a->fluctuation, &b->fluctuation, sizeof(float));
  assert_memory_equal(&a->shift_prob, &b->shift_prob, sizeof(float));
  assert_int_equal(a->n_next, b->n_next);
  assert_int_equal(a->n_long, b->n_long);
  assert_int_equal(a->n_rising, b->n_rising);
  assert_int_equal(a->n_falling, b->n_falling);
  for (uint32_t i = 0; i < a->n_falling; i++) {
    assert_true(a->falling[i].category_id == b->falling[i].category_id);
    assert_memory_equal(&a->falling[i].p, &b->falling[i].p, sizeof(float));
  }
  for (uint32_t i = 0; i < a->n_next; i++) {
    assert_true(a->next[i].category_id == b->next[i].category_id);
    assert_memory_equal(&a->next[i].p, &b->next[i].p, sizeof(float));
  }
  for (uint32_t i = 0; i < a->n_long; i++) {
    assert_true(a->longterm[i].category_id == b->longterm[i].category_id);
    assert_memory_equal(&a->longterm[i].p, &b->longterm[i].p, sizeof(float));
  }
  for (uint32_t i = 0; i < a->n_rising; i++) {
    assert_true(a->rising[i].category_id == b->rising[i].category_id);
    assert_memory_equal(&a->rising[i].p, &b->rising[i].p, sizeof(float));
  }
}

/* The prediction encoder writes bytes by hand; they must be exactly what
 * msgpack-c's packer made before (smallest integer forms, float32), on
 * random values and on every integer-width boundary. */
static void ref_cats(msgpack_packer *pk, const char *k, const pred_cat_t *c, uint32_t n) {
  msgpack_pack_str(pk, strlen(k));
  msgpack_pack_str_body(pk, k, strlen(k));
  msgpack_pack_array(pk, n);
  for (uint32_t i = 0; i < n; i++) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, c[i].category_id);
    msgpack_pack_float(pk, c[i].p);
  }
}

static void ref_key(msgpack_packer *pk, const char *k) {
  msgpack_pack_str(pk, strlen(k));
  msgpack_pack_str_body(pk, k, strlen(k));
}

static void ref_encode(const prediction_t *p, msgpack_sbuffer *sb) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 12);
  ref_key(&pk, "u");
  msgpack_pack_uint64(&pk, p->user_id);
  ref_key(&pk, "sp");
  msgpack_pack_int32(&pk, p->src_partition);
  ref_key(&pk, "so");
  msgpack_pack_int64(&pk, p->src_offset);
  ref_key(&pk, "t");
  msgpack_pack_int64(&pk, p->event_ts_ms);
  ref_key(&pk, "et");
  msgpack_pack_int64(&pk, p->emit_ts_ms);
  ref_key(&pk, "n");
  msgpack_pack_uint32(&pk, p->n_events);
  ref_key(&pk, "fl");
  msgpack_pack_float(&pk, p->fluctuation);
  ref_key(&pk, "sh");
  msgpack_pack_float(&pk, p->shift_prob);
  ref_cats(&pk, "nx", p->next, p->n_next);
  ref_cats(&pk, "lt", p->longterm, p->n_long);
  ref_cats(&pk, "ri", p->rising, p->n_rising);
  ref_cats(&pk, "fa", p->falling, p->n_falling);
}

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* a value near an integer-width boundary, or anywhere */
static int64_t edge_int(uint64_t *s) {
  static const int64_t edges[] = {0,      1,      31,     32,          127,        128,
                                  255,    256,    65535,  65536,       4294967295LL,
                                  4294967296LL, INT64_MAX, -1, -31, -32, -33, -127, -128,
                                  -129,   -32767, -32768, -32769, INT32_MIN + 1LL, INT32_MIN,
                                  INT32_MIN - 1LL, INT64_MIN};
  uint64_t r = rng_next(s);
  if (r % 3) return edges[r % (sizeof edges / sizeof edges[0])];
  return (int64_t)(rng_next(s) >> (rng_next(s) % 64));
}

static void test_prediction_encoding_is_msgpack_c_bytes(void **state) {
  (void)state;
  uint64_t s = 88172645463325252ULL;
  codec_buf_t buf = {0};
  for (int iter = 0; iter < 20000; iter++) {
    prediction_t p = iter == 0 ? sample_prediction() : (prediction_t){0};
    if (iter) {
      p.user_id = (uint64_t)edge_int(&s);
      int64_t sp = edge_int(&s);
      p.src_partition = sp > INT32_MAX || sp < INT32_MIN ? (int32_t)(sp % 1000) : (int32_t)sp;
      p.src_offset = edge_int(&s);
      p.event_ts_ms = edge_int(&s);
      p.emit_ts_ms = edge_int(&s);
      p.n_events = (uint32_t)edge_int(&s);
      uint32_t bits = (uint32_t)rng_next(&s);
      memcpy(&p.fluctuation, &bits, sizeof bits);
      p.shift_prob = (float)(rng_next(&s) % 1000) / 1000.0f;
      p.n_next = (uint32_t)(rng_next(&s) % (PRED_MAX_NEXT + 1)); /* 16..20: array16 */
      p.n_long = (uint32_t)(rng_next(&s) % (PRED_TOPK + 1));
      p.n_rising = (uint32_t)(rng_next(&s) % (PRED_TOPK + 1));
      p.n_falling = (uint32_t)(rng_next(&s) % (PRED_TOPK + 1));
      for (int i = PRED_TOPK; i < PRED_MAX_NEXT; i++)
        p.next[i] = (pred_cat_t){(uint64_t)edge_int(&s), (float)i / 9.0f};
      for (int i = 0; i < PRED_TOPK; i++) {
        p.falling[i] = (pred_cat_t){(uint64_t)edge_int(&s), 0.5f / (float)(i + 1)};
        p.next[i] = (pred_cat_t){(uint64_t)edge_int(&s), (float)i / 7.0f};
        p.longterm[i] = (pred_cat_t){(uint64_t)edge_int(&s), -(float)i};
        p.rising[i] = (pred_cat_t){(uint64_t)edge_int(&s), 1e-30f * (float)i};
      }
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    ref_encode(&p, &sb);
    assert_int_equal(codec_encode_prediction(&p, &buf), 0);
    assert_int_equal(buf.len, sb.size);
    assert_memory_equal(buf.data, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
  }
  codec_buf_free(&buf);
}

static void test_prediction_round_trip_every_field(void **state) {
  codec_buf_t buf = {0};
  prediction_t in = sample_prediction(), out;
  assert_int_equal(codec_encode_prediction(&in, &buf), 0);
  char err[256] = "";
  assert_int_equal(codec_decode_prediction(buf.data, buf.len, &out, err, sizeof err), 0);
  assert_pred_equal(&in, &out);
  assert_true(buf.len < 300); /* compact: 10+3 pairs, ~180 bytes */
  /* a prediction is not an event (it has u and t but no c) */
  event_t ev;
  assert_int_equal(codec_decode_event(buf.data, buf.len, &ev, err, sizeof err), IX_EMISSING);
  assert_non_null(strstr(err, "'c'"));
  /* negative provenance values and extremes */
  in.src_partition = INT32_MIN;
  in.src_offset = INT64_MIN;
  in.event_ts_ms = -5;
  in.emit_ts_ms = INT64_MAX;
  in.n_next = 0;
  in.n_rising = PRED_TOPK;
  for (int i = 0; i < PRED_TOPK; i++) in.rising[i] = (pred_cat_t){(uint64_t)i, -0.5f * (float)i};
  in.fluctuation = NAN;
  assert_int_equal(codec_encode_prediction(&in, &buf), 0);
  assert_int_equal(codec_decode_prediction(buf.data, buf.len, &out, err, sizeof err), 0);
  assert_pred_equal(&in, &out);
  codec_buf_free(&buf);
}

static void test_prediction_accepts_float64_and_int_probabilities(void **state) {
  /* what Python's msgpack produces: float64, keys in any order; no "fa" (falling),
   * as predictions from releases before it: optional */
  mp_t m = {0};
  mp_map(&m, 11);
  mp_str(&m, "ri"); mp_array(&m, 0);
  mp_str(&m, "lt"); mp_array(&m, 1); mp_array(&m, 2); mp_str(&m, "77"); mp_uint(&m, 1);
  mp_str(&m, "nx"); mp_array(&m, 1); mp_array(&m, 2); mp_uint(&m, 5); mp_f64(&m, 0.75);
  mp_str(&m, "sh"); mp_f64(&m, 0.5);
  mp_str(&m, "fl"); mp_uint(&m, 0);
  mp_str(&m, "n"); mp_uint(&m, 3);
  mp_str(&m, "et"); mp_uint(&m, 2);
  mp_str(&m, "t"); mp_uint(&m, 1);
  mp_str(&m, "so"); mp_uint(&m, 9);
  mp_str(&m, "sp"); mp_uint(&m, 2);
  mp_str(&m, "u"); mp_str(&m, "alice");
  prediction_t p;
  char err[256] = "";
  assert_int_equal(codec_decode_prediction(m.b, m.n, &p, err, sizeof err), 0);
  assert_true(p.user_id == codec_hash_id("alice", 5));
  assert_int_equal(p.n_next, 1);
  assert_true(p.next[0].category_id == 5 && p.next[0].p == 0.75f);
  assert_int_equal(p.n_long, 1);
  assert_true(p.longterm[0].category_id == 77 && p.longterm[0].p == 1.0f);
  assert_true(p.shift_prob == 0.5f && p.fluctuation == 0.0f && p.n_events == 3);
  assert_true(p.src_partition == 2 && p.src_offset == 9 && p.event_ts_ms == 1 && p.emit_ts_ms == 2);
}

static void expect_pred_error(const void *b, size_t n, int code, const char *needle) {
  prediction_t p;
  memset(&p, 0xAA, sizeof p);
  char err[256] = "";
  int rc = codec_decode_prediction(b, n, &p, err, sizeof err);
  if (rc != code) fail_msg("want %s, got %s (%s)", ix_err_name(code), ix_err_name(rc), err);
  assert_true(all_zero(&p, sizeof p));
  if (needle && !strstr(err, needle)) fail_msg("errstr '%s' does not mention '%s'", err, needle);
}

static void test_prediction_rejections(void **state) {
  static const char *keys[] = {"u", "sp", "so", "t", "et", "n", "fl", "sh", "nx", "lt", "ri"};
  /* each key missing in turn */
  for (int skip = 0; skip < 11; skip++) {
    mp_t m = {0};
    mp_map(&m, 10);
    for (int k = 0; k < 11; k++) {
      if (k == skip) continue;
      mp_str(&m, keys[k]);
      if (k >= 8) mp_array(&m, 0);
      else mp_uint(&m, 1);
    }
    char needle[8];
    snprintf(needle, sizeof needle, "'%s'", keys[skip]);
    expect_pred_error(m.b, m.n, IX_EMISSING, needle);
  }
  codec_buf_t buf = {0};
  prediction_t in = sample_prediction();
  assert_int_equal(codec_encode_prediction(&in, &buf), 0);
  for (size_t k = 1; k < buf.len; k++) expect_pred_error(buf.data, k, IX_ETRUNC, "truncated");
  expect_pred_error("\x90", 1, IX_ENOTMAP, NULL);
  /* too many entries, a bad pair, out of range ints, wrong types */
  struct {
    const char *key;
    int code;
  } bad[] = {{"nx", IX_ETOOBIG}, {"lt", IX_ETYPE}, {"ri", IX_ETYPE}, {"sp", IX_ERANGE},
             {"n", IX_ERANGE},   {"fl", IX_ETYPE}, {"u", IX_ERANGE}, {"so", IX_ETYPE}};
  for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
    mp_t m = {0};
    mp_map(&m, 11);
    for (int k = 0; k < 11; k++) {
      mp_str(&m, keys[k]);
      int is_bad = strcmp(keys[k], bad[b].key) == 0;
      if (!is_bad) {
        if (k >= 8) mp_array(&m, 0);
        else mp_uint(&m, 1);
      } else if (b == 0) {
        mp_array(&m, PRED_MAX_NEXT + 1);
        for (int i = 0; i <= PRED_MAX_NEXT; i++) { mp_array(&m, 2); mp_uint(&m, 1); mp_f64(&m, 0.1); }
      } else if (b == 1) {
        mp_array(&m, 1); mp_array(&m, 3); mp_uint(&m, 1); mp_f64(&m, 0.1); mp_uint(&m, 1);
      } else if (b == 2) {
        mp_map(&m, 0);
      } else if (b == 3) {
        mp_uint(&m, (uint64_t)INT32_MAX + 1);
      } else if (b == 4) {
        mp_uint(&m, (uint64_t)UINT32_MAX + 1);
      } else if (b == 5) {
        mp_str(&m, "0.5");
      } else if (b == 6) {
        mp_byte(&m, 0xff);
      } else {
        mp_f64(&m, 1.0);
      }
    }
    char needle[8];
    snprintf(needle, sizeof needle, "'%s", bad[b].key);
    expect_pred_error(m.b, m.n, bad[b].code, needle);
  }
  in.n_next = PRED_MAX_NEXT + 1;
  assert_int_equal(codec_encode_prediction(&in, &buf), IX_EINVAL);
  in.n_next = 0;
  in.n_long = PRED_TOPK + 1;
  assert_int_equal(codec_encode_prediction(&in, &buf), IX_EINVAL);
  codec_buf_free(&buf);
}

/* ---------------------------------------------------------------- robustness */

static uint64_t g_rng = 0x243f6a8885a308d3ULL;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

/* Decodes arbitrary bytes both ways: never crashes, zeroes *out on error,
 * and whatever decodes re-encodes to something that decodes equal. */
static int check_arbitrary(const uint8_t *b, size_t n, codec_buf_t *buf) {
  event_t ev;
  memset(&ev, 0x55, sizeof ev);
  char err[256];
  int ok = 0;
  int rc = codec_decode_event(b, n, &ev, err, sizeof err);
  if (rc) {
    assert_true(rc < 0);
    assert_true(all_zero(&ev, sizeof ev));
    assert_true(err[0] != '\0');
  } else {
    ok++;
    event_t ev2;
    assert_int_equal(codec_encode_event(&ev, buf), 0);
    assert_int_equal(codec_decode_event(buf->data, buf->len, &ev2, NULL, 0), 0);
    assert_memory_equal(&ev, &ev2, sizeof ev);
  }
  prediction_t p;
  memset(&p, 0x55, sizeof p);
  rc = codec_decode_prediction(b, n, &p, err, sizeof err);
  if (rc) {
    assert_true(rc < 0);
    assert_true(all_zero(&p, sizeof p));
  } else {
    ok++;
    prediction_t p2;
    assert_int_equal(codec_encode_prediction(&p, buf), 0);
    assert_int_equal(codec_decode_prediction(buf->data, buf->len, &p2, NULL, 0), 0);
    assert_pred_equal(&p, &p2);
  }
  return ok;
}

/* ------------------------------------------- event reader against msgpack-c */

/* The event rules of docs/FORMATS.md applied to msgpack-c's object tree: the
 * reference for the decoder's own byte reader (which replaced this tree on
 * the daemon's path). Returns the IX_ code and fills err like the decoder. */
static const char *ref_type(msgpack_object_type t) {
  static const char *names[] = {"nil", "boolean", "integer", "negative integer", "float64",
                                "string", "array", "map", "binary", "ext", "float32"};
  return (size_t)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static int ref_id(const msgpack_object *o, const char *key, const char *label, uint64_t *out,
                  char *err, size_t n) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    *out = o->via.u64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    snprintf(err, n, "field '%s' (%s) is negative: %lld", key, label, (long long)o->via.i64);
    return IX_ERANGE;
  }
  if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0) {
    snprintf(err, n, "field '%s' (%s) is an empty string", key, label);
    return IX_EMALFORMED;
  }
  if (o->type == MSGPACK_OBJECT_STR && o->via.str.size > CODEC_MAX_STRID) {
    snprintf(err, n, "field '%s' (%s) is a %u-byte string, more than the %d allowed", key, label,
             (unsigned)o->via.str.size, CODEC_MAX_STRID);
    return IX_ETOOBIG;
  }
  if (o->type == MSGPACK_OBJECT_STR) {
    *out = codec_hash_id(o->via.str.ptr, o->via.str.size);
    return 0;
  }
  snprintf(err, n, "field '%s' (%s) has the wrong type: %s (want integer or string)", key, label,
           ref_type(o->type));
  return IX_ETYPE;
}

static int ref_decode_event(const msgpack_object_map *map, event_t *ev, char *err, size_t n) {
  static const char *keys = "uicat";
  const char *labels[] = {"user id", "item id", "category id"};
  uint64_t *ids[] = {&ev->user_id, &ev->item_id, &ev->category_id};
  unsigned seen = 0;
  memset(ev, 0, sizeof *ev);
  ev->action = ACTION_OTHER;
  for (uint32_t i = 0; i < map->size; i++) {
    const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
    if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 1 || !strchr(keys, k->via.str.ptr[0]) ||
        !k->via.str.ptr[0])
      continue;
    int f = (int)(strchr(keys, k->via.str.ptr[0]) - keys);
    char key[2] = {keys[f], 0};
    if (seen & (1u << f)) {
      snprintf(err, n, "field '%s' appears twice", key);
      return IX_EMALFORMED;
    }
    seen |= 1u << f;
    int rc = 0;
    if (f < 3) rc = ref_id(v, key, labels[f], ids[f], err, n);
    if (f == 3) {
      ev->action = ACTION_OTHER;
      if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= ACTION_BUY)
        ev->action = (action_t)v->via.u64;
      const char *an[] = {"view", "pv", "click", "cart", "fav", "buy"};
      action_t aa[] = {ACTION_VIEW, ACTION_VIEW, ACTION_VIEW, ACTION_CART, ACTION_FAV, ACTION_BUY};
      for (int j = 0; j < 6 && v->type == MSGPACK_OBJECT_STR; j++)
        if (v->via.str.size == strlen(an[j]) && !memcmp(v->via.str.ptr, an[j], v->via.str.size))
          ev->action = aa[j];
    }
    if (f == 4) {
      if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX) {
        ev->ts_ms = (int64_t)v->via.u64;
      } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(err, n, "field 't' (event time) is too large: %llu",
                 (unsigned long long)v->via.u64);
        rc = IX_ERANGE;
      } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        snprintf(err, n, "field 't' (event time) is negative: %lld", (long long)v->via.i64);
        rc = IX_ERANGE;
      } else {
        snprintf(err, n, "field 't' (event time) has the wrong type: %s (want integer ms since "
                 "the epoch)", ref_type(v->type));
        rc = IX_ETYPE;
      }
    }
    if (rc) return rc;
  }
  const char *missing = !(seen & 1)    ? "field 'u' (user id) is missing"
                        : !(seen & 4)  ? "field 'c' (category id) is missing"
                        : !(seen & 16) ? "field 't' (event time) is missing"
                                       : NULL;
  if (missing) {
    snprintf(err, n, "%s", missing);
    return IX_EMISSING;
  }
  return 0;
}

/* one msgpack value of a random kind and encoding width (ints in signed and
 * unsigned formats, decimal and other strings, floats, containers, ...) */
static void rnd_value(mp_t *m, int depth) {
  switch (rnd() % (depth > 2 ? 12 : 14)) {
  case 0: mp_byte(m, (uint8_t)(rnd() % 128)); break;                    /* positive fixint */
  case 1: mp_byte(m, (uint8_t)(0xe0 | (rnd() % 32))); break;            /* negative fixint */
  case 2: { int w = (int)(rnd() % 4); mp_byte(m, (uint8_t)(0xcc + w)); mp_be(m, rnd() * rnd(), 1 << w); break; }
  case 3: { int w = (int)(rnd() % 4); mp_byte(m, (uint8_t)(0xd0 + w)); mp_be(m, rnd() * rnd(), 1 << w); break; }
  case 4: { char d[24]; int k = snprintf(d, sizeof d, "%llu", (unsigned long long)(rnd() * rnd())); mp_strn(m, d, (size_t)k); break; }
  case 5: { static const char *w[] = {"pv", "buy", "cart", "fav", "view", "click", "", "x", "0", "007"};
            mp_str(m, w[rnd() % 10]); break; }
  case 6: { char big[300]; size_t k = rnd() % sizeof big; memset(big, 'a' + (int)(rnd() % 26), k); mp_strn(m, big, k); break; }
  case 7: mp_byte(m, (uint8_t[]){0xc0, 0xc2, 0xc3}[rnd() % 3]); break; /* nil, false, true */
  case 8: mp_f64(m, (double)rnd()); break;
  case 9: mp_byte(m, 0xca); mp_be(m, rnd(), 4); break;                  /* float32 */
  case 10: { size_t k = rnd() % 5; mp_byte(m, 0xc4); mp_byte(m, (uint8_t)k); for (size_t i = 0; i < k; i++) mp_byte(m, 7); break; }
  case 11: mp_byte(m, 0xd4); mp_byte(m, 1); mp_byte(m, 2); break;        /* fixext1 */
  case 12: { unsigned k = (unsigned)(rnd() % 3); mp_array(m, k); for (unsigned i = 0; i < k; i++) rnd_value(m, depth + 1); break; }
  default: { unsigned k = (unsigned)(rnd() % 3); mp_map(m, k); for (unsigned i = 0; i < 2 * k; i++) rnd_value(m, depth + 1); break; }
  }
}

static void test_event_reader_matches_msgpack_c(void **state) {
  (void)state;
  static const char *keys[] = {"u", "i", "c", "a", "t", "u", "t", "x", "uu", ""};
  int agreed_ok = 0, agreed_err = 0;
  for (int it = 0; it < 200000; it++) {
    mp_t m = {0};
    unsigned n = (unsigned)(rnd() % 8), base = it % 2 ? 3 : 0; /* odd: u, c, t first */
    mp_map(&m, base + n);
    for (unsigned f = 0; f < base; f++) {
      mp_str(&m, (const char *[]){"u", "c", "t"}[f]);
      mp_uint(&m, rnd() * rnd());
    }
    for (unsigned f = 0; f < n; f++) {
      if (rnd() % 8 == 0) rnd_value(&m, 1); /* a key that is not a string */
      else mp_str(&m, keys[rnd() % 10]);
      if (rnd() % 3 == 0) mp_uint(&m, rnd() * rnd()); /* mostly plausible values */
      else rnd_value(&m, 0);
    }
    event_t got, want;
    char gerr[256] = "", werr[256] = "";
    int grc = codec_decode_event(m.b, m.n, &got, gerr, sizeof gerr);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, (const char *)m.b, m.n, &off), MSGPACK_UNPACK_SUCCESS);
    int wrc = ref_decode_event(&u.data.via.map, &want, werr, sizeof werr);
    msgpack_unpacked_destroy(&u);
    if (grc != wrc || strcmp(gerr, werr) != 0)
      fail_msg("iteration %d: reader %s '%s', msgpack-c %s '%s'", it, ix_err_name(grc), gerr,
               ix_err_name(wrc), werr);
    if (!grc) {
      assert_memory_equal(&got, &want, sizeof got);
      agreed_ok++;
    } else {
      agreed_err++;
    }
  }
  /* both outcomes were exercised */
  assert_true(agreed_ok > 5000 && agreed_err > 5000);
  print_message("%d decoded, %d rejected alike\n", agreed_ok, agreed_err);
}

static void test_random_and_mutated_bytes_never_crash(void **state) {
  codec_buf_t buf = {0};
  uint8_t b[128];
  int iters = 100000, decoded = 0;
  for (int it = 0; it < iters; it++) { /* random bytes, often starting like a map */
    size_t n = rnd() % sizeof b;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
    if (n && (it & 1)) b[0] = (uint8_t)(0x80 | (rnd() % 6));
    decoded += check_arbitrary(b, n, &buf);
  }
  /* mutations of valid messages: flips, overwrites, inserts, deletes, cuts */
  mp_t seed_ev = {0};
  mp_event(&seed_ev, 1000169, 1328010, 1234567890123456789ULL, "pv", 1505117799000);
  codec_buf_t pbuf = {0};
  prediction_t sp = sample_prediction();
  assert_int_equal(codec_encode_prediction(&sp, &pbuf), 0);
  uint8_t m[512];
  for (int it = 0; it < iters; it++) {
    const uint8_t *src = (it & 1) ? (const uint8_t *)pbuf.data : seed_ev.b;
    size_t n = (it & 1) ? pbuf.len : seed_ev.n;
    memcpy(m, src, n);
    int muts = 1 + (int)(rnd() % 4);
    for (int k = 0; k < muts && n > 0; k++) {
      size_t at = rnd() % n;
      switch (rnd() % 5) {
      case 0: m[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
      case 1: m[at] = (uint8_t)rnd(); break;
      case 2:
        if (n < sizeof m) { memmove(m + at + 1, m + at, n - at); m[at] = (uint8_t)rnd(); n++; }
        break;
      case 3: memmove(m + at, m + at + 1, n - at - 1); n--; break;
      case 4: n = at; break;
      }
    }
    decoded += check_arbitrary(m, n, &buf);
  }
  /* some mutants must have decoded, or the loop tested only rejections */
  assert_true(decoded > 1000);
  print_message("%d of %d arbitrary inputs decoded\n", decoded, 4 * iters);
  codec_buf_free(&buf);
  codec_buf_free(&pbuf);
}

/* Keys are the decimal user id, as the importer partitions them; the
 * prediction message is that key with codec_encode_prediction()'s bytes. */
static void test_user_key_and_prediction_message(void **state) {
  char key[CODEC_KEY_MAX];
  size_t n = codec_user_key(0, key);
  assert_int_equal(n, 1);
  assert_memory_equal(key, "0", 1);
  n = codec_user_key(1000004, key);
  assert_int_equal(n, 7);
  assert_memory_equal(key, "1000004", 7);
  n = codec_user_key(UINT64_MAX, key);
  assert_int_equal(n, 20);
  assert_memory_equal(key, "18446744073709551615", 20);
  prediction_t in = sample_prediction();
  codec_buf_t a = {0}, b = {0};
  size_t klen = 0;
  assert_int_equal(codec_prediction_message(&in, &a, key, &klen), 0);
  assert_int_equal(codec_encode_prediction(&in, &b), 0);
  assert_int_equal(a.len, b.len);
  assert_memory_equal(a.data, b.data, a.len);
  char want[32];
  int wl = snprintf(want, sizeof want, "%llu", (unsigned long long)in.user_id);
  assert_int_equal(klen, (size_t)wl);
  assert_memory_equal(key, want, klen);
  codec_buf_free(&a);
  codec_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_key_and_prediction_message),
      cmocka_unit_test(test_event_round_trip_every_field_and_id_kind),
      cmocka_unit_test(test_event_encoding_is_the_documented_bytes),
      cmocka_unit_test(test_event_accepts_string_ids_decimal_and_hashed),
      cmocka_unit_test(test_event_accepts_signed_non_negative_ints),
      cmocka_unit_test(test_event_action_names_codes_and_other),
      cmocka_unit_test(test_event_ignores_unknown_keys),
      cmocka_unit_test(test_event_rejects_empty_not_map_and_oversized),
      cmocka_unit_test(test_event_rejects_every_truncation),
      cmocka_unit_test(test_event_rejects_trailing_garbage_and_bad_bytes),
      cmocka_unit_test(test_event_rejects_missing_required_fields),
      cmocka_unit_test(test_event_rejects_wrong_types_and_ranges),
      cmocka_unit_test(test_event_encode_rejects_invalid),
      cmocka_unit_test(test_prediction_round_trip_every_field),
      cmocka_unit_test(test_prediction_accepts_float64_and_int_probabilities),
      cmocka_unit_test(test_prediction_rejections),
      cmocka_unit_test(test_prediction_encoding_is_msgpack_c_bytes),
      cmocka_unit_test(test_event_reader_matches_msgpack_c),
      cmocka_unit_test(test_random_and_mutated_bytes_never_crash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
