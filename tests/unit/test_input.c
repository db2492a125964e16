/* stream/input: the JSON event decoder with a field mapping, against the
 * msgpack decoder (the same events as JSON and as msgpack decode to the same
 * event_t, or to the same error code), the mapping (nested paths, time
 * formats, the Kafka key and timestamp, the action map), reasons that name
 * the shop's field, and stream/timefmt. Messages are built with jansson and
 * msgpack-c, not with the decoders' own code. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "stream/codec.h"
#include "stream/input.h"
#include "stream/timefmt.h"

static input_t *make_input(const char *const *kv) {
  input_opts_t o;
  assert_int_equal(input_opts_init(&o), 0);
  char why[300];
  for (size_t i = 0; kv && kv[i]; i += 2)
    if (input_opts_set(&o, kv[i], kv[i + 1], why, sizeof why)) fail_msg("%s", why);
  input_t *in = NULL;
  assert_int_equal(input_new(&o, &in, why, sizeof why), 0);
  input_opts_free(&o);
  return in;
}

static int decode_text(const input_t *in, const char *json, const char *key, int64_t ts,
                       event_t *ev, char *why, size_t why_size) {
  rec_t r = {.partition = 0, .offset = 0, .ts_ms = ts, .key = key, .key_len = key ? strlen(key) : 0,
             .value = json, .value_len = strlen(json)};
  memset(ev, 0x5a, sizeof *ev);
  return input_decode(in, &r, ev, why, why_size);
}

/* ---------------------------------------------------------------- differential */

typedef struct { uint64_t s; } rng_t;
static uint64_t rnd(rng_t *r) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return r->s;
}

/* One field's value, written to both encoders. kind: 0 missing, 1 uint,
 * 2 canonical-decimal string, 3 other string, 4 negative, 5 float, 6 bool,
 * 7 empty string, 8 long string, 9 leading-zero string, 10 nil. */
typedef struct {
  int kind;
  uint64_t u;
  char str[300];
} val_t;

static void pack_val(msgpack_packer *pk, json_t *obj, const char *key, const val_t *v) {
  if (v->kind == 0) return;
  msgpack_pack_str(pk, strlen(key));
  msgpack_pack_str_body(pk, key, strlen(key));
  json_t *j = NULL;
  switch (v->kind) {
  case 1: msgpack_pack_uint64(pk, v->u); j = json_integer((json_int_t)v->u); break;
  case 4: msgpack_pack_int64(pk, -(int64_t)v->u - 1); j = json_integer(-(json_int_t)v->u - 1); break;
  case 5: msgpack_pack_double(pk, 1.5); j = json_real(1.5); break;
  case 6: msgpack_pack_true(pk); j = json_true(); break;
  case 10: msgpack_pack_nil(pk); j = json_null(); break;
  default:
    msgpack_pack_str(pk, strlen(v->str));
    msgpack_pack_str_body(pk, v->str, strlen(v->str));
    j = json_string(v->str);
  }
  assert_non_null(j);
  assert_int_equal(json_object_set_new(obj, key, j), 0);
}

static void rand_str(rng_t *r, char *s, size_t n) {
  static const char abc[] = "abcXYZ09_-\"\\/ \xc3\xa9";
  for (size_t i = 0; i < n; i++) s[i] = abc[rnd(r) % (sizeof abc - 1)];
  s[n] = '\0';
  /* keep it valid UTF-8: the two-byte letter only as a pair */
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) s[i] = 'e';
}

static void rand_id(rng_t *r, val_t *v, int defect) {
  memset(v, 0, sizeof *v);
  if (defect) {
    static const int bad[] = {0, 4, 5, 6, 7, 8, 10};
    v->kind = bad[rnd(r) % 7];
    v->u = rnd(r) % 1000;
    if (v->kind == 8) memset(v->str, 'x', 257);
    return;
  }
  int k = (int)(rnd(r) % 4);
  v->u = rnd(r) >> (1 + rnd(r) % 63); /* up to 2^63 - 1: JSON integers are signed 64-bit */
  if (k == 0 || k == 1) v->kind = 1;
  else if (k == 2) { v->kind = 2; snprintf(v->str, sizeof v->str, "%llu", (unsigned long long)v->u); }
  else if (rnd(r) % 2) { v->kind = 3; rand_str(r, v->str, 1 + rnd(r) % 20); }
  else { v->kind = 9; snprintf(v->str, sizeof v->str, "00%llu", (unsigned long long)v->u); }
}

static void test_json_and_msgpack_decode_to_the_same_event(void **unused) {
  rng_t r = {0x9e3779b97f4a7c15ull};
  input_t *json = make_input((const char *const[]){"format", "json", NULL});
  int ok = 0, bad = 0;
  for (int n = 0; n < 20000; n++) {
    int defect = rnd(&r) % 3 == 0 ? (int)(rnd(&r) % 5) : -1; /* which field is bad, if any */
    val_t u, c, i, a, t;
    rand_id(&r, &u, defect == 0);
    rand_id(&r, &c, defect == 1);
    rand_id(&r, &i, defect == 2);
    if (defect == 2 && (i.kind == 0 || i.kind == 10)) i.kind = 5; /* a missing item is not a defect */
    memset(&a, 0, sizeof a);
    static const char *const actions[] = {"view", "pv", "click", "cart", "fav", "buy", "Buy", "purchase"};
    switch (rnd(&r) % 5) {
    case 0: a.kind = 0; break;
    case 1: a.kind = 1; a.u = rnd(&r) % 7; break;
    case 2: a.kind = 10; break;
    default: a.kind = 3; snprintf(a.str, sizeof a.str, "%s", actions[rnd(&r) % 8]);
    }
    memset(&t, 0, sizeof t);
    t.kind = 1;
    t.u = rnd(&r) % 4000000000000ull;
    if (defect == 3) {
      static const int tbad[] = {0, 3, 4, 5, 6};
      t.kind = tbad[rnd(&r) % 5];
      snprintf(t.str, sizeof t.str, "2017-11-25T00:00:00Z");
    }
    if (defect == 4) a.kind = 5; /* an odd action is kept as other, never a defect */

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    json_t *obj = json_object();
    int nkeys = (u.kind != 0) + (c.kind != 0) + (i.kind != 0) + (a.kind != 0) + (t.kind != 0);
    msgpack_pack_map(&pk, (size_t)nkeys);
    /* the same key order in both, shuffled per event */
    const char *keys[5] = {"u", "c", "i", "a", "t"};
    const val_t *vals[5] = {&u, &c, &i, &a, &t};
    for (int k = 4; k > 0; k--) {
      int j = (int)(rnd(&r) % (uint64_t)(k + 1));
      const char *tk = keys[k]; keys[k] = keys[j]; keys[j] = tk;
      const val_t *tv = vals[k]; vals[k] = vals[j]; vals[j] = tv;
    }
    for (int k = 0; k < 5; k++) pack_val(&pk, obj, keys[k], vals[k]);
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);

    event_t em, ej;
    char wm[256], wj[256];
    int rm = codec_decode_event(sb.data, sb.size, &em, wm, sizeof wm);
    int rj = decode_text(json, text, NULL, -1, &ej, wj, sizeof wj);
    if (rm != rj) fail_msg("event %d: msgpack %s (%s), JSON %s (%s) for %s", n, ix_err_name(rm), wm,
                           ix_err_name(rj), wj, text);
    if (memcmp(&em, &ej, sizeof em) != 0)
      fail_msg("event %d decodes differently: %s", n, text);
    if (rm == 0) ok++;
    else {
      bad++;
      if (!wj[0]) fail_msg("no reason for %s", text);
    }
    free(text);
    json_decref(obj);
    msgpack_sbuffer_destroy(&sb);
  }
  printf("differential: %d decoded, %d rejected with the same code\n", ok, bad);
  assert_true(ok > 10000 && bad > 3000);
  input_destroy(json);
}

/* ---------------------------------------------------------------- mapping */

static const char *const k_shop[] = {
    "format", "json", "user_field", "user.id", "category_field", "properties.category_id",
    "item_field", "properties.product_id", "action_field", "event_type", "time_field",
    "event_time", "time_format", "iso8601", "action_map",
    "add_to_cart=cart, purchase=buy, remove_from_cart=other, view=fav", NULL};

static void test_json_mapping_reads_nested_shop_fields(void **unused) {
  input_t *in = make_input(k_shop);
  event_t ev;
  char why[256];
  assert_int_equal(
      decode_text(in,
                  "{\"event_type\":\"add_to_cart\",\"user\":{\"id\":\"512\",\"email\":\"x\"},"
                  "\"event_time\":\"2019-10-01T02:00:00.250+02:00\",\"properties\":"
                  "{\"category_id\":2053013555631882655,\"product_id\":\"abc\",\"price\":1.5}}",
                  NULL, -1, &ev, why, sizeof why),
      0);
  assert_int_equal(ev.user_id, 512);
  assert_int_equal(ev.category_id, 2053013555631882655ull);
  assert_int_equal(ev.item_id, codec_hash_id("abc", 3));
  assert_int_equal(ev.action, ACTION_CART);
  assert_int_equal(ev.ts_ms, 1569888000250ll); /* 2019-10-01T00:00:00.250Z */
  /* unknown keys, duplicated or not, nested or in arrays, are ignored (as in msgpack); ids
   * take the whole uint64 range */
  assert_int_equal(
      decode_text(in,
                  "{\"x\":1,\"x\":[{\"user\":{\"id\":9}}],\"user\":{\"id\":18446744073709551615,"
                  "\"n\":{\"id\":[[[]]]}},\"event_time\":\"2019-10-01T00:00:00Z\",\"properties\":"
                  "{\"category_id\":7,\"more\":{\"category_id\":8}},\"event_type\":\"view\"}",
                  NULL, -1, &ev, why, sizeof why),
      0);
  assert_int_equal(ev.user_id, UINT64_MAX);
  assert_int_equal(ev.category_id, 7);
  /* the map overrides the built-in names; unmapped unknown names are other */
  const char *acts[][2] = {{"purchase", "3"}, {"view", "2"}, {"remove_from_cart", "4"},
                           {"cart", "1"}, {"checkout", "4"}, {"Purchase", "4"}};
  for (size_t k = 0; k < 6; k++) {
    char msg[300];
    snprintf(msg, sizeof msg,
             "{\"user\":{\"id\":1},\"properties\":{\"category_id\":2},\"event_time\":"
             "\"2019-10-01 00:00:00 UTC\",\"event_type\":\"%s\"}", acts[k][0]);
    assert_int_equal(decode_text(in, msg, NULL, -1, &ev, why, sizeof why), 0);
    assert_int_equal(ev.action, atoi(acts[k][1]));
    assert_int_equal(ev.item_id, 0);
  }
  input_destroy(in);
}

static void test_json_time_formats_key_and_timestamp(void **unused) {
  event_t ev;
  char why[256];
  input_t *s = make_input((const char *const[]){"format", "json", "time_format", "s", NULL});
  assert_int_equal(decode_text(s, "{\"u\":1,\"c\":2,\"t\":1511544070}", NULL, -1, &ev, why, sizeof why), 0);
  assert_int_equal(ev.ts_ms, 1511544070000ll);
  assert_int_equal(decode_text(s, "{\"u\":1,\"c\":2,\"t\":1511544070.1235}", NULL, -1, &ev, why, sizeof why), 0);
  assert_int_equal(ev.ts_ms, 1511544070124ll);
  assert_int_equal(decode_text(s, "{\"u\":1,\"c\":2,\"t\":\"1511544070\"}", NULL, -1, &ev, why, sizeof why), IX_ETYPE);
  assert_non_null(strstr(why, "field 't' (event time) has the wrong type: string"));
  input_destroy(s);

  input_t *k = make_input((const char *const[]){"format", "json", "time_format", "kafka",
                                                "user_from_key", "true", NULL});
  assert_int_equal(decode_text(k, "{\"c\":2}", "user-7", 1700000000123ll, &ev, why, sizeof why), 0);
  assert_int_equal(ev.user_id, codec_hash_id("user-7", 6));
  assert_int_equal(ev.ts_ms, 1700000000123ll);
  assert_int_equal(decode_text(k, "{\"c\":2}", "42", 5, &ev, why, sizeof why), 0);
  assert_int_equal(ev.user_id, 42); /* the canonical-decimal rule, as for a "42" field */
  assert_int_equal(decode_text(k, "{\"c\":2}", NULL, 5, &ev, why, sizeof why), IX_EMISSING);
  assert_non_null(strstr(why, "Kafka message key"));
  assert_int_equal(decode_text(k, "{\"c\":2}", "9", -1, &ev, why, sizeof why), IX_EMISSING);
  assert_non_null(strstr(why, "no timestamp"));
  input_destroy(k);
}

static void expect_reject(const input_t *in, const char *json, int code, const char *text) {
  event_t ev;
  char why[256] = "";
  int rc = decode_text(in, json, NULL, -1, &ev, why, sizeof why);
  if (rc != code || !strstr(why, text))
    fail_msg("%s: got %s '%s', want %s '%s'", json, ix_err_name(rc), why, ix_err_name(code), text);
  event_t zero;
  memset(&zero, 0, sizeof zero);
  assert_memory_equal(&ev, &zero, sizeof ev);
}

static void test_json_rejects_name_the_shop_field(void **unused) {
  input_t *in = make_input(k_shop);
  const char *t = "\"event_time\":\"2019-10-01T00:00:00Z\"";
  char m[512];
  expect_reject(in, "", IX_ETRUNC, "event message is empty");
  expect_reject(in, "[1,2]", IX_ENOTMAP, "is a JSON array, not an object");
  expect_reject(in, "\"x\"", IX_ENOTMAP, "is a JSON string, not an object");
  expect_reject(in, "{\"user\":{\"id\":1}", IX_ETRUNC, "not valid JSON");
  expect_reject(in, "{\"user\":{\"id\":1}} x", IX_EMALFORMED, "not valid JSON");
  expect_reject(in, "{\"user\":{\"id\":1,\"id\":2}}", IX_EMALFORMED,
                "field 'user.id' (user id) appears twice");
  expect_reject(in, "{\"user\":{\"id\":18446744073709551616}}", IX_ERANGE,
                "field 'user.id' (user id) is an integer above 18446744073709551615");
  expect_reject(in, "{\"user\":{\"id\":\"\xff\"}}", IX_EMALFORMED, "not valid JSON");
  expect_reject(in, "7", IX_ENOTMAP, "is a JSON integer, not an object");
  snprintf(m, sizeof m, "{%s,\"properties\":{\"category_id\":1}}", t);
  expect_reject(in, m, IX_EMISSING, "field 'user.id' (user id) is missing");
  snprintf(m, sizeof m, "{%s,\"user\":{\"id\":null},\"properties\":{\"category_id\":1}}", t);
  expect_reject(in, m, IX_ETYPE, "field 'user.id' (user id) has the wrong type: null");
  snprintf(m, sizeof m, "{%s,\"user\":5,\"properties\":{\"category_id\":1}}", t);
  expect_reject(in, m, IX_ETYPE, "field 'user.id' (user id): 'user' is an integer, not an object");
  snprintf(m, sizeof m, "{%s,\"user\":{\"id\":-3},\"properties\":{\"category_id\":1}}", t);
  expect_reject(in, m, IX_ERANGE, "field 'user.id' (user id) is negative: -3");
  snprintf(m, sizeof m, "{%s,\"user\":{\"id\":\"\"},\"properties\":{\"category_id\":1}}", t);
  expect_reject(in, m, IX_EMALFORMED, "field 'user.id' (user id) is an empty string");
  snprintf(m, sizeof m, "{%s,\"user\":{\"id\":1},\"properties\":{}}", t);
  expect_reject(in, m, IX_EMISSING, "field 'properties.category_id' (category id) is missing");
  snprintf(m, sizeof m, "{%s,\"user\":{\"id\":1},\"properties\":{\"category_id\":[1]}}", t);
  expect_reject(in, m, IX_ETYPE, "field 'properties.category_id' (category id) has the wrong type: array");
  snprintf(m, sizeof m, "{%s,\"user\":{\"id\":1},\"properties\":{\"category_id\":1.0}}", t);
  expect_reject(in, m, IX_ETYPE, "number with a fraction or exponent");
  expect_reject(in, "{\"user\":{\"id\":1},\"properties\":{\"category_id\":1}}", IX_EMISSING,
                "field 'event_time' (event time) is missing");
  expect_reject(in, "{\"event_time\":1569888000000,\"user\":{\"id\":1},\"properties\":{\"category_id\":1}}",
                IX_ETYPE, "field 'event_time' (event time) has the wrong type: integer (want an ISO-8601 string)");
  expect_reject(in, "{\"event_time\":\"2019-10-01 00:00:00\",\"user\":{\"id\":1},\"properties\":{\"category_id\":1}}",
                IX_EMALFORMED, "field 'event_time' (event time): time has no UTC offset");
  expect_reject(in, "{\"event_time\":\"2019-02-29T00:00:00Z\",\"user\":{\"id\":1},\"properties\":{\"category_id\":1}}",
                IX_EMALFORMED, "no valid day");
  snprintf(m, sizeof m, "{%s,\"user\":{\"id\":1},\"properties\":{\"category_id\":1,\"product_id\":true}}", t);
  expect_reject(in, m, IX_ETYPE, "field 'properties.product_id' (item id) has the wrong type: boolean");
  char *big = malloc(INPUT_MAX_JSON + 10);
  memset(big, ' ', INPUT_MAX_JSON + 9);
  big[0] = '{';
  big[INPUT_MAX_JSON + 8] = '}';
  big[INPUT_MAX_JSON + 9] = '\0';
  expect_reject(in, big, IX_ETOOBIG, "more than the 65536 allowed");
  free(big);
  input_destroy(in);
}

/* The two topic examples of docs/OPERATIONS.md, mapping and message as written there. */
static void test_json_documented_topic_examples(void **unused) {
  event_t ev;
  char why[256];
  input_t *seg = make_input((const char *const[]){
      "format", "json", "user_field", "userId", "category_field", "properties.category_id",
      "item_field", "properties.product_id", "action_field", "event", "time_field", "timestamp",
      "time_format", "iso8601", "action_map",
      "Product Viewed=view, Product Added=cart, Product Added to Wishlist=fav, Order Completed=buy",
      NULL});
  assert_int_equal(decode_text(seg,
                               "{\"type\":\"track\",\"event\":\"Product Added\",\"userId\":\"u-1029\","
                               "\"timestamp\":\"2019-10-01T08:00:00.123+02:00\",\n \"properties\":{\"product_id\":"
                               "\"507f1f77bcf86cd799439011\",\"category_id\":\"1487580005134238\",\"price\":9.5}}",
                               NULL, -1, &ev, why, sizeof why),
                   0);
  assert_int_equal(ev.user_id, codec_hash_id("u-1029", 6));
  assert_int_equal(ev.category_id, 1487580005134238ull);
  assert_int_equal(ev.item_id, codec_hash_id("507f1f77bcf86cd799439011", 24));
  assert_int_equal(ev.action, ACTION_CART);
  assert_int_equal(ev.ts_ms, 1569909600123ll); /* 2019-10-01T06:00:00.123Z */
  input_destroy(seg);
  input_t *sp = make_input((const char *const[]){
      "format", "json", "user_field", "domain_userid", "category_field", "se_category",
      "item_field", "se_label", "action_field", "se_action", "time_field", "derived_tstamp",
      "time_format", "iso8601", "action_map",
      "view-product=view, add-to-basket=cart, add-to-wishlist=fav, purchase=buy", NULL});
  assert_int_equal(
      decode_text(sp,
                  "{\"app_id\":\"shop\",\"event\":\"struct\",\"domain_userid\":"
                  "\"5f1c3e0a-8d7e-4b59-9d8e-3b2a1c0d9e8f\",\n \"derived_tstamp\":\"2019-10-01T06:00:00.000Z\","
                  "\"se_category\":\"2053013555631882655\",\n \"se_action\":\"add-to-basket\",\"se_label\":"
                  "\"SKU-1004856\"}",
                  NULL, -1, &ev, why, sizeof why),
      0);
  assert_int_equal(ev.user_id, codec_hash_id("5f1c3e0a-8d7e-4b59-9d8e-3b2a1c0d9e8f", 36));
  assert_int_equal(ev.category_id, 2053013555631882655ull);
  assert_int_equal(ev.action, ACTION_CART);
  assert_int_equal(ev.ts_ms, 1569909600000ll);
  input_destroy(sp);
}

static void test_msgpack_input_keeps_the_codec_rules(void **unused) {
  /* format = msgpack ignores the mapping: the bytes go to codec_decode_event */
  input_t *in = make_input((const char *const[]){"user_field", "user.id", NULL});
  static const uint8_t ev_bytes[] = {0x85, 0xa1, 0x75, 0x01, 0xa1, 0x69, 0xce, 0x00, 0x22, 0x9c, 0x9e,
                                     0xa1, 0x63, 0xce, 0x00, 0x26, 0x75, 0x39, 0xa1, 0x61, 0x00, 0xa1,
                                     0x74, 0xcf, 0x00, 0x00, 0x01, 0x5f, 0xef, 0x0c, 0x1f, 0x70};
  rec_t r = {.value = ev_bytes, .value_len = sizeof ev_bytes};
  event_t ev;
  char why[200];
  assert_int_equal(input_decode(in, &r, &ev, why, sizeof why), 0);
  assert_int_equal(ev.user_id, 1);
  assert_int_equal(ev.category_id, 2520377);
  assert_int_equal(input_decode(NULL, &r, &ev, why, sizeof why), 0);
  assert_int_equal(ev.ts_ms, 1511544070000ll);
  input_destroy(in);
}

static void test_timefmt_parses_the_documented_forms(void **unused) {
  static const struct {
    const char *s;
    long long ms;
  } good[] = {
      {"2019-10-01T00:00:00Z", 1569888000000ll},
      {"2019-10-01 00:00:00 UTC", 1569888000000ll},
      {"2019-10-01t00:00:00.5z", 1569888000500ll},
      {"2019-10-01T08:00:00+08:00", 1569888000000ll},
      {"2019-10-01T08:00:00+0800", 1569888000000ll},
      {"2019-09-30T19:00:00-05", 1569888000000ll},
      {"2019-10-01T00:00Z", 1569888000000ll},
      {"2019-10-01T00:00:00.123456789Z", 1569888000123ll},
      {"2000-02-29T00:00:00Z", 951782400000ll},
      {"1970-01-01T00:00:00Z", 0},
  };
  char why[160];
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int64_t ms = -1;
    if (timefmt_parse(good[i].s, strlen(good[i].s), 0, 0, &ms, why, sizeof why))
      fail_msg("%s: %s", good[i].s, why);
    if (ms != good[i].ms) fail_msg("%s: %lld, want %lld", good[i].s, (long long)ms, good[i].ms);
  }
  static const char *const bad[] = {"2019-13-01T00:00:00Z", "2019-10-01", "2019-10-01T24:00:00Z",
                                    "2019-10-01T00:00:00 PST", "2019-10-01T00:00:00+8", "1900-02-29T00:00:00Z",
                                    "2019-10-01T00:00:00.Z", "19-10-01T00:00:00Z", "2019-10-01T00:00:00Zx"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ms;
    if (timefmt_parse(bad[i], strlen(bad[i]), 0, 0, &ms, why, sizeof why) != IX_EMALFORMED)
      fail_msg("%s accepted", bad[i]);
  }
  int64_t ms;
  assert_int_equal(timefmt_parse("1969-12-31T23:59:59Z", 20, 0, 0, &ms, why, sizeof why), IX_ERANGE);
  /* without a zone: refused, or read at the caller's default offset */
  assert_int_equal(timefmt_parse("2017-12-02 00:00:00", 19, 0, 0, &ms, why, sizeof why), IX_EMALFORMED);
  assert_int_equal(timefmt_parse("2017-12-02 00:00:00", 19, 1, 480, &ms, why, sizeof why), 0);
  assert_int_equal(ms, 1512144000000ll); /* 2017-12-01T16:00:00Z */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_and_msgpack_decode_to_the_same_event),
      cmocka_unit_test(test_json_mapping_reads_nested_shop_fields),
      cmocka_unit_test(test_json_time_formats_key_and_timestamp),
      cmocka_unit_test(test_json_rejects_name_the_shop_field),
      cmocka_unit_test(test_json_documented_topic_examples),
      cmocka_unit_test(test_msgpack_input_keeps_the_codec_rules),
      cmocka_unit_test(test_timefmt_parses_the_documented_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
