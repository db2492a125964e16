/* Output formats: msgpack through stream/codec.c, JSON written here by hand
 * (only numbers and fixed names: nothing to escape, one bounded buffer;
 * printf's number formatting cost ~10 us per prediction). */
#include "stream/output.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

void output_opts_init(output_opts_t *o) {
  o->format = OUTPUT_MSGPACK;
  o->next_categories = PRED_TOPK;
}

int output_opts_set(output_opts_t *o, const char *key, const char *value, char *why,
                    size_t why_size) {
  if (strcmp(key, "format") == 0) {
    if (strcmp(value, "msgpack") == 0) o->format = OUTPUT_MSGPACK;
    else if (strcmp(value, "json") == 0) o->format = OUTPUT_JSON;
    else return ix_fail(IX_ECONFIG, why, why_size, "output.format must be msgpack or json, not '%s'", value);
    return 0;
  }
  if (strcmp(key, "next_categories") == 0) {
    char *end;
    unsigned long v = strtoul(value, &end, 10);
    if (!*value || *end || value[0] == '-' || v < 1 || v > PRED_MAX_NEXT)
      return ix_fail(IX_ECONFIG, why, why_size,
                     "output.next_categories must be between 1 and %d, not '%s'", PRED_MAX_NEXT, value);
    o->next_categories = (uint32_t)v;
    return 0;
  }
  return ix_fail(IX_ECONFIG, why, why_size, "unknown key '%s' in section [output]", key);
}

void output_opts_print(const output_opts_t *o, FILE *f) {
  fprintf(f, "format = %s\nnext_categories = %u\n", o->format == OUTPUT_JSON ? "json" : "msgpack",
          o->next_categories);
}

int output_encode(const output_opts_t *o, const prediction_t *pred, codec_buf_t *buf) {
  if (!o) return codec_encode_prediction(pred, buf);
  if (o->format == OUTPUT_JSON) return output_encode_json(pred, o->next_categories, buf);
  if (pred->n_next <= o->next_categories) return codec_encode_prediction(pred, buf);
  prediction_t cut = *pred;
  cut.n_next = o->next_categories;
  return codec_encode_prediction(&cut, buf);
}

int output_message(const output_opts_t *o, const prediction_t *pred, codec_buf_t *value,
                   char key[CODEC_KEY_MAX], size_t *key_len) {
  int rc = output_encode(o, pred, value);
  if (rc) return rc;
  *key_len = codec_user_key(pred->user_id, key);
  return 0;
}

/* 12 fixed parts (< 320 bytes) + 50 pairs (< 70 bytes each). */
#define JSON_MAX_BYTES 4096

/* 10^k for k in [-31, 54]: every exponent put_float() asks for. */
static const double g_pow10[] = {1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54};
static double pow10_of(int k) { return g_pow10[k + 31]; }

static char *put_u64(char *o, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *o++ = tmp[--n];
  return o;
}

static char *put_i64(char *o, int64_t v) {
  if (v < 0) {
    *o++ = '-';
    return put_u64(o, (uint64_t)0 - (uint64_t)v);
  }
  return put_u64(o, (uint64_t)v);
}

static char *put_lit(char *o, const char *s) {
  size_t n = strlen(s);
  memcpy(o, s, n);
  return o + n;
}

/* f with 9 significant digits (enough for any float32 to read back as the
 * same float; test_output checks millions), trailing zeros dropped, in
 * fixed notation for 1e-5 <= |f| < 1e9 and exponent notation otherwise.
 * Hand-written: "%.9g" cost about 0.3 us per number (30 per prediction).
 * The digits come from |f| * 10^(8-e) in double: a float32 has 24 bits, so
 * the product is within 1e-7 of the exact 9-digit value, and even a last
 * digit rounded the other way is closer than half a float32 step. */
static char *put_float(char *o, float f) {
  if (!isfinite(f)) {
    memcpy(o, "null", 4);
    return o + 4;
  }
  if (f == 0.0f) {
    *o++ = '0';
    return o;
  }
  double d = f;
  if (d < 0) {
    *o++ = '-';
    d = -d;
  }
  int e = (int)floor(log10(d));
  uint64_t m = (uint64_t)llround(d * pow10_of(8 - e));
  if (m >= 1000000000u) { /* log10 or the rounding carried into a 10th digit */
    e++;
    m = (uint64_t)llround(d * pow10_of(8 - e));
  } else if (m < 100000000u) {
    e--;
    m = (uint64_t)llround(d * pow10_of(8 - e));
  }
  char dig[9];
  for (int i = 8; i >= 0; i--) {
    dig[i] = (char)('0' + m % 10);
    m /= 10;
  }
  int nd = 9;
  while (nd > 1 && dig[nd - 1] == '0') nd--;
  if (e >= 0 && e < 9) { /* ddd.ddd */
    for (int i = 0; i <= e; i++) *o++ = i < nd ? dig[i] : '0';
    if (nd > e + 1) {
      *o++ = '.';
      for (int i = e + 1; i < nd; i++) *o++ = dig[i];
    }
  } else if (e < 0 && e >= -5) { /* 0.000ddd */
    *o++ = '0';
    *o++ = '.';
    for (int i = -1; i > e; i--) *o++ = '0';
    for (int i = 0; i < nd; i++) *o++ = dig[i];
  } else { /* d.ddde-XX */
    *o++ = dig[0];
    if (nd > 1) {
      *o++ = '.';
      for (int i = 1; i < nd; i++) *o++ = dig[i];
    }
    *o++ = 'e';
    o = put_i64(o, e);
  }
  return o;
}

static char *put_cats(char *o, const char *head, const char *value_name, const pred_cat_t *cats,
                      uint32_t n) {
  o = put_lit(o, head);
  for (uint32_t i = 0; i < n; i++) {
    o = put_lit(o, i ? ",{\"category_id\":\"" : "{\"category_id\":\"");
    o = put_u64(o, cats[i].category_id);
    o = put_lit(o, value_name);
    o = put_float(o, cats[i].p);
    *o++ = '}';
  }
  *o++ = ']';
  return o;
}

int output_encode_json(const prediction_t *pred, uint32_t k, codec_buf_t *buf) {
  if (!pred || !buf || pred->n_next > PRED_MAX_NEXT || pred->n_long > PRED_TOPK ||
      pred->n_rising > PRED_TOPK || pred->n_falling > PRED_TOPK)
    return IX_EINVAL;
  buf->len = 0;
  if (buf->cap < JSON_MAX_BYTES) {
    char *p = realloc(buf->data, JSON_MAX_BYTES);
    if (!p) return IX_ENOMEM;
    buf->data = p;
    buf->cap = JSON_MAX_BYTES;
  }
  char *o = buf->data;
  o = put_lit(o, "{\"user_id\":\"");
  o = put_u64(o, pred->user_id);
  o = put_lit(o, "\",\"source_partition\":");
  o = put_i64(o, pred->src_partition);
  o = put_lit(o, ",\"source_offset\":");
  o = put_i64(o, pred->src_offset);
  o = put_lit(o, ",\"event_time_ms\":");
  o = put_i64(o, pred->event_ts_ms);
  o = put_lit(o, ",\"emit_time_ms\":");
  o = put_i64(o, pred->emit_ts_ms);
  o = put_lit(o, ",\"n_events\":");
  o = put_u64(o, pred->n_events);
  o = put_lit(o, ",\"fluctuation\":");
  o = put_float(o, pred->fluctuation);
  o = put_lit(o, ",\"shift_probability\":");
  o = put_float(o, pred->shift_prob);
  o = put_cats(o, ",\"next\":[", "\",\"p\":", pred->next, pred->n_next < k ? pred->n_next : k);
  o = put_cats(o, ",\"long_term\":[", "\",\"p\":", pred->longterm, pred->n_long);
  o = put_cats(o, ",\"rising\":[", "\",\"delta\":", pred->rising, pred->n_rising);
  o = put_cats(o, ",\"falling\":[", "\",\"delta\":", pred->falling, pred->n_falling);
  *o++ = '}';
  buf->len = (size_t)(o - buf->data);
  return 0;
}
