/* Event and prediction messages: msgpack maps with short keys, strictly
 * decoded; their keys. The byte-level contract is docs/FORMATS.md. Decoding:
 * a bounded structural pre-scan (mp_scan), then events are read straight
 * from the bytes (mp_read, the daemon's per-message path) and predictions
 * (tools and tests) through msgpack-c's object tree; both classify types as
 * msgpack-c does. Encoding: events through msgpack-c's packer; predictions
 * (the daemon's per-message path) written by hand with msgpack-c's exact
 * bytes. */
#include "stream/codec.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define CODEC_MAX_DEPTH 16 /* deeper nesting (only possible in ignored values) is malformed */

/* ---------------------------------------------------------------- buffer */

void codec_buf_free(codec_buf_t *buf) {
  if (!buf) return;
  free(buf->data);
  buf->data = NULL;
  buf->len = buf->cap = 0;
}

static int buf_write(void *data, const char *src, size_t len) {
  codec_buf_t *buf = data;
  if (buf->len + len > buf->cap) {
    size_t cap = buf->cap ? buf->cap : 128;
    while (cap < buf->len + len) cap *= 2;
    char *p = realloc(buf->data, cap);
    if (!p) return -1;
    buf->data = p;
    buf->cap = cap;
  }
  memcpy(buf->data + buf->len, src, len);
  buf->len += len;
  return 0;
}

/* ---------------------------------------------------------------- ids */

uint64_t codec_hash_id(const char *s, size_t len) {
  /* Canonical decimal (no sign, no leading zero, fits 64 bits) -> its value. */
  if (len >= 1 && len <= 20 && (s[0] != '0' || len == 1)) {
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < len; i++) {
      unsigned d = (unsigned char)s[i] - '0';
      if (d > 9 || v > (UINT64_MAX - d) / 10) break;
      v = v * 10 + d;
    }
    if (i == len) return v;
  }
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ULL; /* FNV 64 prime */
  }
  return h;
}

int codec_string_id(const char *s, size_t len, const char *field, const char *label,
                    uint64_t *out, char *errstr, size_t errstr_size) {
  if (len == 0)
    return ix_fail(IX_EMALFORMED, errstr, errstr_size, "field '%s' (%s) is an empty string",
                   field, label);
  if (len > CODEC_MAX_STRID)
    return ix_fail(IX_ETOOBIG, errstr, errstr_size,
                   "field '%s' (%s) is a %zu-byte string, more than the %d allowed", field, label,
                   len, CODEC_MAX_STRID);
  *out = codec_hash_id(s, len);
  return 0;
}

const char *codec_action_name(action_t action) {
  switch (action) {
  case ACTION_VIEW: return "view";
  case ACTION_CART: return "cart";
  case ACTION_FAV: return "fav";
  case ACTION_BUY: return "buy";
  default: return "other";
  }
}

/* ---------------------------------------------------------------- errors */


static const char *mp_type_name(msgpack_object_type t) {
  switch (t) {
  case MSGPACK_OBJECT_NIL: return "nil";
  case MSGPACK_OBJECT_BOOLEAN: return "boolean";
  case MSGPACK_OBJECT_POSITIVE_INTEGER: return "integer";
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative integer";
  case MSGPACK_OBJECT_FLOAT32: return "float32";
  case MSGPACK_OBJECT_FLOAT64: return "float64";
  case MSGPACK_OBJECT_STR: return "string";
  case MSGPACK_OBJECT_ARRAY: return "array";
  case MSGPACK_OBJECT_MAP: return "map";
  case MSGPACK_OBJECT_BIN: return "binary";
  case MSGPACK_OBJECT_EXT: return "ext";
  default: return "unknown";
  }
}

/* ---------------------------------------------------------------- pre-scan */

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/* Walks one msgpack object at p[*pos..len). msgpack-c allocates a container's
 * element array before reading the elements, so a 5-byte message claiming 4
 * billion elements would make it allocate ~100 GB; this walk proves every
 * count and length fits in the bytes we actually have. Returns 0, IX_ETRUNC,
 * or IX_EMALFORMED (with *what set). */
static int mp_scan(const uint8_t *p, size_t len, size_t *pos, int depth, const char **what) {
  if (depth > CODEC_MAX_DEPTH) {
    *what = "nested deeper than 16 levels";
    return IX_EMALFORMED;
  }
  if (*pos >= len) return IX_ETRUNC;
  uint8_t b = p[(*pos)++];
  uint64_t n = 0;    /* payload bytes to skip */
  uint64_t items = 0; /* child objects to walk */
  int lenbytes = 0;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 0;
  if (b >= 0xa0 && b <= 0xbf) {
    n = b & 0x1f;
  } else if (b >= 0x90 && b <= 0x9f) {
    items = b & 0x0f;
  } else if (b >= 0x80 && b <= 0x8f) {
    items = 2u * (b & 0x0f);
  } else {
    switch (b) {
    case 0xc1: *what = "reserved byte 0xc1"; return IX_EMALFORMED;
    case 0xc4: case 0xd9: lenbytes = 1; break;   /* bin8, str8 */
    case 0xc5: case 0xda: lenbytes = 2; break;   /* bin16, str16 */
    case 0xc6: case 0xdb: lenbytes = 4; break;   /* bin32, str32 */
    case 0xc7: lenbytes = 1; n = 1; break;       /* ext8: len, type */
    case 0xc8: lenbytes = 2; n = 1; break;
    case 0xc9: lenbytes = 4; n = 1; break;
    case 0xca: n = 4; break;
    case 0xcb: n = 8; break;
    case 0xcc: case 0xd0: n = 1; break;
    case 0xcd: case 0xd1: n = 2; break;
    case 0xce: case 0xd2: n = 4; break;
    case 0xcf: case 0xd3: n = 8; break;
    case 0xd4: n = 2; break; /* fixext: type + data */
    case 0xd5: n = 3; break;
    case 0xd6: n = 5; break;
    case 0xd7: n = 9; break;
    case 0xd8: n = 17; break;
    case 0xdc: case 0xde: lenbytes = 2; break;
    case 0xdd: case 0xdf: lenbytes = 4; break;
    default: *what = "unknown type byte"; return IX_EMALFORMED;
    }
    if (lenbytes) {
      if (len - *pos < (size_t)lenbytes) return IX_ETRUNC;
      uint64_t count = be(p + *pos, lenbytes);
      *pos += (size_t)lenbytes;
      if (b == 0xdc || b == 0xdd) items = count;
      else if (b == 0xde || b == 0xdf) items = 2 * count;
      else n += count;
    }
  }
  if (items) {
    if (items > len - *pos) return IX_ETRUNC; /* each element takes at least one byte */
    for (uint64_t i = 0; i < items; i++) {
      int rc = mp_scan(p, len, pos, depth + 1, what);
      if (rc) return rc;
    }
    return 0;
  }
  if (n > len - *pos) return IX_ETRUNC;
  *pos += (size_t)n;
  return 0;
}

/* Common front half of both decoders: size, structure (mp_scan), a top-level
 * map and nothing after it. */
static int check_map(const void *buf, size_t len, const char *what_msg, char *errstr,
                     size_t errstr_size) {
  const uint8_t *p = buf;
  if (len == 0 || !buf)
    return ix_fail(IX_ETRUNC, errstr, errstr_size, "%s message is empty", what_msg);
  if (len > CODEC_MAX_MSG)
    return ix_fail(IX_ETOOBIG, errstr, errstr_size,
                   "%s message is %zu bytes, more than the %d allowed", what_msg, len,
                   CODEC_MAX_MSG);
  if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
    return ix_fail(IX_ENOTMAP, errstr, errstr_size,
                "%s message is not a msgpack map (first byte 0x%02x)", what_msg, p[0]);
  size_t pos = 0;
  const char *what = "malformed";
  int rc = mp_scan(p, len, &pos, 0, &what);
  if (rc == IX_ETRUNC)
    return ix_fail(rc, errstr, errstr_size, "%s message is truncated (%zu bytes)", what_msg, len);
  if (rc) return ix_fail(rc, errstr, errstr_size, "%s message is malformed: %s", what_msg, what);
  if (pos != len)
    return ix_fail(IX_EMALFORMED, errstr, errstr_size,
                   "%s message has %zu trailing bytes after the map (at byte %zu)", what_msg,
                   len - pos, pos);
  return 0;
}

/* check_map, then msgpack-c. On success *result holds the map (free with
 * msgpack_unpacked_destroy). */
static int decode_map(const void *buf, size_t len, msgpack_unpacked *result, const char *what_msg,
                      char *errstr, size_t errstr_size) {
  int rc = check_map(buf, len, what_msg, errstr, errstr_size);
  if (rc) return rc;
  size_t off = 0;
  msgpack_unpacked_init(result);
  msgpack_unpack_return ur = msgpack_unpack_next(result, buf, len, &off);
  if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
    msgpack_unpacked_destroy(result);
    return ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory decoding %s message", what_msg);
  }
  if (ur != MSGPACK_UNPACK_SUCCESS || off != len || result->data.type != MSGPACK_OBJECT_MAP) {
    msgpack_unpacked_destroy(result);
    return ix_fail(IX_EMALFORMED, errstr, errstr_size, "%s message is malformed (msgpack-c: %d)",
                what_msg, (int)ur);
  }
  return 0;
}

/* A value as the field rules see it: msgpack-c's classification of its type
 * (so both decoders name types alike), and the integer or string it holds. */
typedef struct {
  msgpack_object_type type;
  uint64_t u64;    /* POSITIVE_INTEGER */
  int64_t i64;     /* NEGATIVE_INTEGER */
  const char *str; /* STR: not terminated */
  uint32_t size;
} mp_val_t;

static mp_val_t val_of(const msgpack_object *o) {
  mp_val_t v = {.type = o->type};
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) v.u64 = o->via.u64;
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) v.i64 = o->via.i64;
  if (o->type == MSGPACK_OBJECT_STR) {
    v.str = o->via.str.ptr;
    v.size = o->via.str.size;
  }
  return v;
}

static mp_val_t int_val(int64_t d) {
  mp_val_t v = {.type = d < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER};
  if (d < 0) v.i64 = d;
  else v.u64 = (uint64_t)d;
  return v;
}

/* Reads the object at p[*pos], in bytes mp_scan accepted, as msgpack-c would
 * classify it (signed formats holding a value >= 0 are POSITIVE_INTEGER), and
 * moves *pos past it, containers included. The event decoder's reader: it
 * spares msgpack-c's object tree (a zone allocation per message). */
static mp_val_t mp_read(const uint8_t *p, size_t len, size_t *pos) {
  size_t at = *pos;
  uint8_t b = p[at];
  mp_val_t v = {0};
  if (b <= 0x7f || b >= 0xe0) {
    *pos = at + 1;
    return b <= 0x7f ? int_val(b) : int_val((int8_t)b);
  }
  if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
    int n = b <= 0xbf ? 0 : 1 << (b - 0xd9);
    v.type = MSGPACK_OBJECT_STR;
    v.size = n ? (uint32_t)be(p + at + 1, n) : (uint32_t)(b & 0x1f);
    v.str = (const char *)p + at + 1 + n;
    *pos = at + 1 + (size_t)n + v.size;
    return v;
  }
  if (b >= 0xcc && b <= 0xd3) {
    int n = 1 << ((b - 0xcc) & 3);
    uint64_t u = be(p + at + 1, n);
    *pos = at + 1 + (size_t)n;
    if (b <= 0xcf) {
      v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
      v.u64 = u;
      return v;
    }
    return int_val(n == 1 ? (int8_t)u : n == 2 ? (int16_t)u : n == 4 ? (int32_t)u : (int64_t)u);
  }
  if (b == 0xc0) v.type = MSGPACK_OBJECT_NIL;
  else if (b == 0xc2 || b == 0xc3) v.type = MSGPACK_OBJECT_BOOLEAN;
  else if (b == 0xca) v.type = MSGPACK_OBJECT_FLOAT32;
  else if (b == 0xcb) v.type = MSGPACK_OBJECT_FLOAT64;
  else if (b >= 0xc4 && b <= 0xc6) v.type = MSGPACK_OBJECT_BIN;
  else if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) v.type = MSGPACK_OBJECT_EXT;
  else if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) v.type = MSGPACK_OBJECT_ARRAY;
  else v.type = MSGPACK_OBJECT_MAP;
  const char *what;
  mp_scan(p, len, pos, 0, &what); /* already proven well-formed: skips it */
  return v;
}

static int key_is(const mp_val_t *k, const char *name) {
  size_t n = strlen(name);
  return k->type == MSGPACK_OBJECT_STR && k->size == n && memcmp(k->str, name, n) == 0;
}

/* ---------------------------------------------------------------- event */

static const struct {
  const char *name;
  action_t action;
} g_action_names[] = {
    {"view", ACTION_VIEW}, {"pv", ACTION_VIEW}, {"click", ACTION_VIEW},
    {"cart", ACTION_CART}, {"fav", ACTION_FAV}, {"buy", ACTION_BUY},
};

action_t codec_action_from_name(const char *s, size_t len) {
  for (size_t i = 0; i < sizeof g_action_names / sizeof g_action_names[0]; i++)
    if (strlen(g_action_names[i].name) == len && memcmp(s, g_action_names[i].name, len) == 0)
      return g_action_names[i].action;
  return ACTION_OTHER;
}

static action_t action_from(const mp_val_t *o) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    return o->u64 <= ACTION_BUY ? (action_t)o->u64 : ACTION_OTHER;
  if (o->type == MSGPACK_OBJECT_STR) return codec_action_from_name(o->str, o->size);
  return ACTION_OTHER;
}

static int id_from(const mp_val_t *o, const char *key, const char *label, uint64_t *out,
                   char *errstr, size_t errstr_size) {
  switch (o->type) {
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    *out = o->u64;
    return 0;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    return ix_fail(IX_ERANGE, errstr, errstr_size, "field '%s' (%s) is negative: %" PRId64, key, label,
                o->i64);
  case MSGPACK_OBJECT_STR:
    return codec_string_id(o->str, o->size, key, label, out, errstr, errstr_size);
  default:
    return ix_fail(IX_ETYPE, errstr, errstr_size,
                "field '%s' (%s) has the wrong type: %s (want integer or string)", key, label,
                mp_type_name(o->type));
  }
}

int codec_decode_event(const void *buf, size_t len, event_t *out, char *errstr,
                       size_t errstr_size) {
  memset(out, 0, sizeof *out);
  if (errstr && errstr_size) errstr[0] = '\0';
  int rc = check_map(buf, len, "event", errstr, errstr_size);
  if (rc) return rc;
  const uint8_t *p = buf;
  size_t pos = 1;
  uint64_t count = p[0] & 0x0f;
  if (p[0] == 0xde || p[0] == 0xdf) {
    int n = p[0] == 0xde ? 2 : 4;
    count = be(p + 1, n);
    pos += (size_t)n;
  }

  event_t ev = {0};
  ev.action = ACTION_OTHER;
  enum { F_U = 1, F_I = 2, F_C = 4, F_A = 8, F_T = 16 };
  unsigned seen = 0;
  for (uint64_t i = 0; i < count && !rc; i++) {
    mp_val_t kv = mp_read(p, len, &pos), vv = mp_read(p, len, &pos);
    const mp_val_t *k = &kv, *v = &vv;
    unsigned bit = 0;
    if (key_is(k, "u")) bit = F_U;
    else if (key_is(k, "i")) bit = F_I;
    else if (key_is(k, "c")) bit = F_C;
    else if (key_is(k, "a")) bit = F_A;
    else if (key_is(k, "t")) bit = F_T;
    else continue; /* unknown keys are ignored */
    if (seen & bit) {
      rc = ix_fail(IX_EMALFORMED, errstr, errstr_size, "field '%.*s' appears twice", (int)k->size,
                   k->str);
      break;
    }
    seen |= bit;
    switch (bit) {
    case F_U: rc = id_from(v, "u", "user id", &ev.user_id, errstr, errstr_size); break;
    case F_I: rc = id_from(v, "i", "item id", &ev.item_id, errstr, errstr_size); break;
    case F_C: rc = id_from(v, "c", "category id", &ev.category_id, errstr, errstr_size); break;
    case F_A: ev.action = action_from(v); break;
    case F_T:
      if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->u64 > (uint64_t)INT64_MAX)
          rc = ix_fail(IX_ERANGE, errstr, errstr_size, "field 't' (event time) is too large: %" PRIu64,
                    v->u64);
        else
          ev.ts_ms = (int64_t)v->u64;
      } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        rc = ix_fail(IX_ERANGE, errstr, errstr_size, "field 't' (event time) is negative: %" PRId64,
                  v->i64);
      } else {
        rc = ix_fail(IX_ETYPE, errstr, errstr_size,
                  "field 't' (event time) has the wrong type: %s (want integer ms since the epoch)",
                  mp_type_name(v->type));
      }
      break;
    }
  }
  if (!rc) {
    if (!(seen & F_U)) rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field 'u' (user id) is missing");
    else if (!(seen & F_C))
      rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field 'c' (category id) is missing");
    else if (!(seen & F_T))
      rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field 't' (event time) is missing");
  }
  if (!rc) *out = ev;
  return rc;
}

/* msgpack-c's pack functions return nonzero when the write callback failed. */
#define PK(call)                                                                                   \
  do {                                                                                             \
    if ((call) != 0) goto nomem;                                                                   \
  } while (0)

static int pack_key(msgpack_packer *pk, const char *k) {
  size_t n = strlen(k);
  return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, k, n);
}

int codec_encode_event(const event_t *ev, codec_buf_t *buf) {
  if (!ev || !buf || ev->ts_ms < 0 || (unsigned)ev->action >= ACTION__COUNT) return IX_EINVAL;
  buf->len = 0;
  msgpack_packer pk;
  msgpack_packer_init(&pk, buf, buf_write);
  PK(msgpack_pack_map(&pk, 5));
  PK(pack_key(&pk, "u"));
  PK(msgpack_pack_uint64(&pk, ev->user_id));
  PK(pack_key(&pk, "i"));
  PK(msgpack_pack_uint64(&pk, ev->item_id));
  PK(pack_key(&pk, "c"));
  PK(msgpack_pack_uint64(&pk, ev->category_id));
  PK(pack_key(&pk, "a"));
  PK(msgpack_pack_uint32(&pk, (uint32_t)ev->action));
  PK(pack_key(&pk, "t"));
  PK(msgpack_pack_int64(&pk, ev->ts_ms));
  return 0;
nomem:
  buf->len = 0;
  return IX_ENOMEM;
}

/* ---------------------------------------------------------------- prediction */

/* The prediction is encoded by hand, straight into the buffer: msgpack-c's
 * packer calls its write callback once per element (about 100 per
 * prediction), which was a visible share of the loop's time. The bytes are
 * exactly msgpack-c's (smallest integer forms, float32, fixmap/fixstr/fixarray;
 * test_codec compares both on random and edge values). */
#define PRED_MAX_BYTES 1024 /* > 1 + 12 keys (3) + 6 ints (9) + 2 floats (5) + 4 * 3 + 50 * 15 */

static uint8_t *put_be(uint8_t *o, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) o[bytes - 1 - i] = (uint8_t)(v >> (8 * i));
  return o + bytes;
}

/* msgpack-c's msgpack_pack_uint64 */
static uint8_t *put_uint(uint8_t *o, uint64_t d) {
  if (d < 128) {
    *o++ = (uint8_t)d;
  } else if (d < 256) {
    *o++ = 0xcc;
    *o++ = (uint8_t)d;
  } else if (d < 65536) {
    *o++ = 0xcd;
    o = put_be(o, d, 2);
  } else if (d < (1ull << 32)) {
    *o++ = 0xce;
    o = put_be(o, d, 4);
  } else {
    *o++ = 0xcf;
    o = put_be(o, d, 8);
  }
  return o;
}

/* msgpack-c's msgpack_pack_int64 (and _int32, which is the same for its range) */
static uint8_t *put_int(uint8_t *o, int64_t d) {
  if (d >= -32 && d < 0) {
    *o++ = (uint8_t)(int8_t)d; /* negative fixint */
  } else if (d >= 0) {
    o = put_uint(o, (uint64_t)d);
  } else if (d >= -128) {
    *o++ = 0xd0;
    *o++ = (uint8_t)(int8_t)d;
  } else if (d >= -32768) {
    *o++ = 0xd1;
    o = put_be(o, (uint64_t)(uint16_t)(int16_t)d, 2);
  } else if (d >= -2147483648ll) {
    *o++ = 0xd2;
    o = put_be(o, (uint64_t)(uint32_t)(int32_t)d, 4);
  } else {
    *o++ = 0xd3;
    o = put_be(o, (uint64_t)d, 8);
  }
  return o;
}

static uint8_t *put_float(uint8_t *o, float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  *o++ = 0xca;
  return put_be(o, bits, 4);
}

/* a fixstr key of one or two characters */
static uint8_t *put_key(uint8_t *o, const char *k) {
  size_t n = strlen(k);
  *o++ = (uint8_t)(0xa0 | n);
  memcpy(o, k, n);
  return o + n;
}

static uint8_t *put_cats(uint8_t *o, const char *key, const pred_cat_t *cats, uint32_t n) {
  o = put_key(o, key);
  if (n < 16) {
    *o++ = (uint8_t)(0x90 | n);
  } else { /* array16: next may hold up to PRED_MAX_NEXT pairs */
    *o++ = 0xdc;
    *o++ = (uint8_t)(n >> 8);
    *o++ = (uint8_t)n;
  }
  for (uint32_t i = 0; i < n; i++) {
    *o++ = 0x92;
    o = put_uint(o, cats[i].category_id);
    o = put_float(o, cats[i].p);
  }
  return o;
}

int codec_encode_prediction(const prediction_t *pred, codec_buf_t *buf) {
  if (!pred || !buf || pred->n_next > PRED_MAX_NEXT || pred->n_long > PRED_TOPK ||
      pred->n_rising > PRED_TOPK || pred->n_falling > PRED_TOPK)
    return IX_EINVAL;
  buf->len = 0;
  if (buf->cap < PRED_MAX_BYTES) {
    char *p = realloc(buf->data, PRED_MAX_BYTES);
    if (!p) return IX_ENOMEM;
    buf->data = p;
    buf->cap = PRED_MAX_BYTES;
  }
  uint8_t *o = (uint8_t *)buf->data;
  *o++ = 0x80 | 12;
  o = put_key(o, "u");
  o = put_uint(o, pred->user_id);
  o = put_key(o, "sp");
  o = put_int(o, pred->src_partition);
  o = put_key(o, "so");
  o = put_int(o, pred->src_offset);
  o = put_key(o, "t");
  o = put_int(o, pred->event_ts_ms);
  o = put_key(o, "et");
  o = put_int(o, pred->emit_ts_ms);
  o = put_key(o, "n");
  o = put_uint(o, pred->n_events);
  o = put_key(o, "fl");
  o = put_float(o, pred->fluctuation);
  o = put_key(o, "sh");
  o = put_float(o, pred->shift_prob);
  o = put_cats(o, "nx", pred->next, pred->n_next);
  o = put_cats(o, "lt", pred->longterm, pred->n_long);
  o = put_cats(o, "ri", pred->rising, pred->n_rising);
  o = put_cats(o, "fa", pred->falling, pred->n_falling);
  buf->len = (size_t)(o - (uint8_t *)buf->data);
  return 0;
}

size_t codec_user_key(uint64_t user_id, char key[CODEC_KEY_MAX]) {
  char tmp[CODEC_KEY_MAX];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + user_id % 10);
    user_id /= 10;
  } while (user_id);
  for (size_t i = 0; i < n; i++) key[i] = tmp[n - 1 - i];
  return n;
}

int codec_prediction_message(const prediction_t *pred, codec_buf_t *value,
                             char key[CODEC_KEY_MAX], size_t *key_len) {
  int rc = codec_encode_prediction(pred, value);
  if (rc) return rc;
  *key_len = codec_user_key(pred->user_id, key);
  return 0;
}

static int int_from(const msgpack_object *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                    char *errstr, size_t errstr_size) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (o->via.u64 > (uint64_t)hi)
      return ix_fail(IX_ERANGE, errstr, errstr_size, "field '%s' is out of range: %" PRIu64, key,
                  o->via.u64);
    *out = (int64_t)o->via.u64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    if (o->via.i64 < lo)
      return ix_fail(IX_ERANGE, errstr, errstr_size, "field '%s' is out of range: %" PRId64, key,
                  o->via.i64);
    *out = o->via.i64;
    return 0;
  }
  return ix_fail(IX_ETYPE, errstr, errstr_size, "field '%s' has the wrong type: %s (want integer)", key,
              mp_type_name(o->type));
}

static int float_from(const msgpack_object *o, const char *key, float *out, char *errstr,
                      size_t errstr_size) {
  switch (o->type) {
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: *out = (float)o->via.f64; return 0;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (float)o->via.u64; return 0;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (float)o->via.i64; return 0;
  default:
    return ix_fail(IX_ETYPE, errstr, errstr_size, "field '%s' has the wrong type: %s (want float)",
                key, mp_type_name(o->type));
  }
}

static int cats_from(const msgpack_object *o, const char *key, pred_cat_t *cats, uint32_t max,
                     uint32_t *n, char *errstr, size_t errstr_size) {
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return ix_fail(IX_ETYPE, errstr, errstr_size,
                "field '%s' has the wrong type: %s (want array of [category, p] pairs)", key,
                mp_type_name(o->type));
  if (o->via.array.size > max)
    return ix_fail(IX_ETOOBIG, errstr, errstr_size, "field '%s' has %u entries, more than %u", key,
                (unsigned)o->via.array.size, (unsigned)max);
  for (uint32_t i = 0; i < o->via.array.size; i++) {
    const msgpack_object *e = &o->via.array.ptr[i];
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
      return ix_fail(IX_ETYPE, errstr, errstr_size,
                  "field '%s' entry %u is not a [category, p] pair", key, (unsigned)i);
    char name[32];
    snprintf(name, sizeof name, "%s[%u][0]", key, (unsigned)i);
    mp_val_t c = val_of(&e->via.array.ptr[0]);
    int rc = id_from(&c, name, "category id", &cats[i].category_id, errstr, errstr_size);
    if (rc) return rc;
    snprintf(name, sizeof name, "%s[%u][1]", key, (unsigned)i);
    if ((rc = float_from(&e->via.array.ptr[1], name, &cats[i].p, errstr, errstr_size))) return rc;
  }
  *n = o->via.array.size;
  return 0;
}

int codec_decode_prediction(const void *buf, size_t len, prediction_t *out, char *errstr,
                            size_t errstr_size) {
  memset(out, 0, sizeof *out);
  if (errstr && errstr_size) errstr[0] = '\0';
  msgpack_unpacked result;
  int rc = decode_map(buf, len, &result, "prediction", errstr, errstr_size);
  if (rc) return rc;

  /* "fa" (falling) is optional: predictions of releases before it lack it */
  static const char *const keys[] = {"u", "sp", "so", "t", "et", "n",  "fl",
                                     "sh", "nx", "lt", "ri", "fa"};
  enum { OPTIONAL_KEYS = 1u << 11 };
  enum { NKEYS = sizeof keys / sizeof keys[0] };
  prediction_t *pred = calloc(1, sizeof *pred); /* kept off the stack: ~300 bytes, fuzzed */
  if (!pred) {
    msgpack_unpacked_destroy(&result);
    return ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory decoding prediction");
  }
  unsigned seen = 0;
  const msgpack_object_map *map = &result.data.via.map;
  for (uint32_t i = 0; i < map->size && !rc; i++) {
    const msgpack_object *v = &map->ptr[i].val;
    mp_val_t k = val_of(&map->ptr[i].key);
    int which = -1;
    for (int j = 0; j < NKEYS; j++)
      if (key_is(&k, keys[j])) which = j;
    if (which < 0) continue;
    if (seen & (1u << which)) {
      rc = ix_fail(IX_EMALFORMED, errstr, errstr_size, "field '%s' appears twice", keys[which]);
      break;
    }
    seen |= 1u << which;
    int64_t x = 0;
    switch (which) {
    case 0: {
      mp_val_t u = val_of(v);
      rc = id_from(&u, "u", "user id", &pred->user_id, errstr, errstr_size);
      break;
    }
    case 1:
      if (!(rc = int_from(v, "sp", INT32_MIN, INT32_MAX, &x, errstr, errstr_size)))
        pred->src_partition = (int32_t)x;
      break;
    case 2: rc = int_from(v, "so", INT64_MIN, INT64_MAX, &pred->src_offset, errstr, errstr_size); break;
    case 3: rc = int_from(v, "t", INT64_MIN, INT64_MAX, &pred->event_ts_ms, errstr, errstr_size); break;
    case 4: rc = int_from(v, "et", INT64_MIN, INT64_MAX, &pred->emit_ts_ms, errstr, errstr_size); break;
    case 5:
      if (!(rc = int_from(v, "n", 0, UINT32_MAX, &x, errstr, errstr_size)))
        pred->n_events = (uint32_t)x;
      break;
    case 6: rc = float_from(v, "fl", &pred->fluctuation, errstr, errstr_size); break;
    case 7: rc = float_from(v, "sh", &pred->shift_prob, errstr, errstr_size); break;
    case 8: rc = cats_from(v, "nx", pred->next, PRED_MAX_NEXT, &pred->n_next, errstr, errstr_size); break;
    case 9: rc = cats_from(v, "lt", pred->longterm, PRED_TOPK, &pred->n_long, errstr, errstr_size); break;
    case 10: rc = cats_from(v, "ri", pred->rising, PRED_TOPK, &pred->n_rising, errstr, errstr_size); break;
    case 11: rc = cats_from(v, "fa", pred->falling, PRED_TOPK, &pred->n_falling, errstr, errstr_size); break;
    }
  }
  for (int j = 0; j < NKEYS && !rc; j++)
    if (!(seen & (1u << j)) && !(OPTIONAL_KEYS & (1u << j)))
      rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field '%s' is missing from the prediction",
                keys[j]);
  msgpack_unpacked_destroy(&result);
  if (!rc) *out = *pred;
  free(pred);
  return rc;
}
