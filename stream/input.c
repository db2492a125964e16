/* Input formats: the [input] options and the JSON event decoder (yajl);
 * msgpack goes to stream/codec.c unchanged. */
#include "stream/input.h"

#include <inttypes.h>
#include <yajl/yajl_parse.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "stream/codec.h"

#define MAX_DEPTH 16 /* components in one dotted path */

static const char *const g_field_keys[INPUT_F__COUNT] = {
    "user_field", "category_field", "time_field", "item_field", "action_field"};
static const char *const g_field_labels[INPUT_F__COUNT] = {
    "user id", "category id", "event time", "item id", "action"};
static const char *const g_field_defaults[INPUT_F__COUNT] = {"u", "c", "t", "i", "a"};

const char *input_field_key(input_field_t f) {
  return (unsigned)f < INPUT_F__COUNT ? g_field_keys[f] : "?";
}

int input_opts_init(input_opts_t *o) {
  memset(o, 0, sizeof *o);
  for (int f = 0; f < INPUT_F__COUNT; f++)
    if (!(o->field[f] = strdup(g_field_defaults[f]))) {
      input_opts_free(o);
      return IX_ENOMEM;
    }
  return 0;
}

static void clear_actions(input_opts_t *o) {
  for (size_t i = 0; i < o->n_actions; i++) free(o->actions[i].from);
  o->n_actions = 0;
}

void input_opts_free(input_opts_t *o) {
  if (!o) return;
  for (int f = 0; f < INPUT_F__COUNT; f++) free(o->field[f]);
  clear_actions(o);
  memset(o, 0, sizeof *o);
}

int input_opts_copy(input_opts_t *dst, const input_opts_t *src) {
  memset(dst, 0, sizeof *dst);
  dst->format = src->format;
  dst->time_format = src->time_format;
  dst->user_from_key = src->user_from_key;
  for (int f = 0; f < INPUT_F__COUNT; f++)
    if (!(dst->field[f] = strdup(src->field[f] ? src->field[f] : ""))) goto err;
  for (size_t i = 0; i < src->n_actions; i++) {
    if (!(dst->actions[i].from = strdup(src->actions[i].from))) goto err;
    dst->actions[i].to = src->actions[i].to;
    dst->n_actions = i + 1;
  }
  return 0;
err:
  input_opts_free(dst);
  return IX_ENOMEM;
}

static int action_code(const char *s, size_t len, action_t *out) {
  static const char *const names[] = {"view", "cart", "fav", "buy", "other"};
  for (int a = 0; a < ACTION__COUNT; a++)
    if (strlen(names[a]) == len && memcmp(s, names[a], len) == 0) {
      *out = (action_t)a;
      return 0;
    }
  return IX_EINVAL;
}

static int trimmed(const char **s, const char *end) {
  while (*s < end && (**s == ' ' || **s == '\t')) (*s)++;
  int n = (int)(end - *s);
  while (n > 0 && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t')) n--;
  return n;
}

/* "a=cart, b=buy" into o->actions (replacing them). */
static int set_action_map(input_opts_t *o, const char *value, char *why, size_t why_size) {
  clear_actions(o);
  const char *p = value;
  while (*p) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *name = p;
    int nl = eq ? trimmed(&name, eq) : 0;
    const char *to = eq ? eq + 1 : end;
    int tl = trimmed(&to, end);
    action_t a;
    if (!eq || nl == 0 || tl == 0) {
      const char *e = p;
      int el = trimmed(&e, end);
      if (el == 0 && !*end && o->n_actions) break; /* a trailing comma */
      clear_actions(o);
      return ix_fail(IX_ECONFIG, why, why_size,
                     "input.action_map: '%.*s' is not name=action (e.g. add_to_cart=cart)", el, e);
    }
    if (action_code(to, (size_t)tl, &a)) {
      clear_actions(o);
      return ix_fail(IX_ECONFIG, why, why_size,
                     "input.action_map: '%.*s' is not an action (view, cart, fav, buy or other)",
                     tl, to);
    }
    if (o->n_actions == INPUT_MAX_ACTIONS) {
      clear_actions(o);
      return ix_fail(IX_ECONFIG, why, why_size, "input.action_map: more than %d entries",
                     INPUT_MAX_ACTIONS);
    }
    for (size_t i = 0; i < o->n_actions; i++)
      if (strlen(o->actions[i].from) == (size_t)nl && memcmp(o->actions[i].from, name, (size_t)nl) == 0) {
        clear_actions(o);
        return ix_fail(IX_ECONFIG, why, why_size, "input.action_map: '%.*s' is mapped twice", nl,
                       name);
      }
    if (!(o->actions[o->n_actions].from = strndup(name, (size_t)nl))) return IX_ENOMEM;
    o->actions[o->n_actions++].to = a;
    p = *end ? end + 1 : end;
  }
  return 0;
}

static int check_path(const char *key, const char *value, char *why, size_t why_size) {
  size_t n = strlen(value), parts = 1;
  if (n == 0) return ix_fail(IX_ECONFIG, why, why_size, "input.%s must not be empty", key);
  if (value[0] == '.' || value[n - 1] == '.' || strstr(value, ".."))
    return ix_fail(IX_ECONFIG, why, why_size,
                   "input.%s: '%s' has an empty component (want dotted names like properties.category_id)",
                   key, value);
  for (size_t i = 0; i < n; i++) parts += value[i] == '.';
  if (parts > MAX_DEPTH)
    return ix_fail(IX_ECONFIG, why, why_size, "input.%s: '%s' is deeper than %d levels", key,
                   value, MAX_DEPTH);
  return 0;
}

int input_opts_set(input_opts_t *o, const char *key, const char *value, char *why,
                   size_t why_size) {
  if (strcmp(key, "format") == 0) {
    if (strcmp(value, "msgpack") == 0) o->format = INPUT_MSGPACK;
    else if (strcmp(value, "json") == 0) o->format = INPUT_JSON;
    else return ix_fail(IX_ECONFIG, why, why_size, "input.format must be msgpack or json, not '%s'", value);
    return 0;
  }
  for (int f = 0; f < INPUT_F__COUNT; f++) {
    if (strcmp(key, g_field_keys[f]) != 0) continue;
    if (check_path(key, value, why, why_size)) return IX_ECONFIG;
    char *s = strdup(value);
    if (!s) return IX_ENOMEM;
    free(o->field[f]);
    o->field[f] = s;
    return 0;
  }
  if (strcmp(key, "time_format") == 0) {
    if (timefmt_from_name(value, &o->time_format))
      return ix_fail(IX_ECONFIG, why, why_size,
                     "input.time_format must be ms, s, iso8601 or kafka, not '%s'", value);
    return 0;
  }
  if (strcmp(key, "user_from_key") == 0) {
    if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
      o->user_from_key = 1;
    else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "0") == 0)
      o->user_from_key = 0;
    else return ix_fail(IX_ECONFIG, why, why_size, "input.user_from_key must be true or false, not '%s'", value);
    return 0;
  }
  if (strcmp(key, "action_map") == 0) return set_action_map(o, value, why, why_size);
  return ix_fail(IX_ECONFIG, why, why_size, "unknown key '%s' in section [input]", key);
}

void input_opts_print(const input_opts_t *o, FILE *f) {
  static const char *const an[] = {"view", "cart", "fav", "buy", "other"};
  fprintf(f, "format = %s\n", o->format == INPUT_JSON ? "json" : "msgpack");
  for (int i = 0; i < INPUT_F__COUNT; i++) fprintf(f, "%s = %s\n", g_field_keys[i], o->field[i]);
  fprintf(f, "time_format = %s\nuser_from_key = %s\naction_map = ", timefmt_name(o->time_format),
          o->user_from_key ? "true" : "false");
  for (size_t i = 0; i < o->n_actions; i++)
    fprintf(f, "%s%s=%s", i ? ", " : "", o->actions[i].from, an[o->actions[i].to]);
  fputc('\n', f);
}

/* ---------------------------------------------------------------- decoder */

typedef struct {
  const char *path;             /* the whole dotted path, for messages */
  char *parts[MAX_DEPTH];       /* its components (NUL-terminated copies) */
  int n;
} path_t;

struct input {
  input_opts_t opts;
  path_t path[INPUT_F__COUNT];
};

input_format_t input_format(const input_t *in) { return in ? in->opts.format : INPUT_MSGPACK; }

void input_destroy(input_t *in) {
  if (!in) return;
  for (int f = 0; f < INPUT_F__COUNT; f++)
    for (int k = 0; k < in->path[f].n; k++) free(in->path[f].parts[k]);
  input_opts_free(&in->opts);
  free(in);
}

int input_new(const input_opts_t *o, input_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  input_t *in = calloc(1, sizeof *in);
  if (!in || input_opts_copy(&in->opts, o)) {
    free(in);
    return IX_ENOMEM;
  }
  for (int f = 0; f < INPUT_F__COUNT; f++) {
    int rc = check_path(g_field_keys[f], in->opts.field[f], errstr, errstr_size);
    if (rc) {
      input_destroy(in);
      return rc;
    }
    path_t *p = &in->path[f];
    p->path = in->opts.field[f];
    const char *s = p->path;
    while (1) {
      const char *dot = strchr(s, '.');
      size_t n = dot ? (size_t)(dot - s) : strlen(s);
      if (!(p->parts[p->n++] = strndup(s, n))) {
        input_destroy(in);
        return IX_ENOMEM;
      }
      if (!dot) break;
      s = dot + 1;
    }
  }
  *out = in;
  return 0;
}

/* The decoder is a yajl SAX parse (no tree): each mapped path is matched
 * against the keys on the way down, and only the values at mapped paths are
 * kept. jansson built a tree per message and cost about 6x more (docs/
 * PERFORMANCE.md, "JSON formats"). Semantics as msgpack's: unknown keys
 * (duplicated or not) are ignored, a mapped field twice is refused. */

typedef enum { JV_NONE = 0, JV_NULL, JV_BOOL, JV_INT, JV_REAL, JV_STRING, JV_OBJECT, JV_ARRAY } jv_kind_t;

static const char *jv_name(jv_kind_t k) {
  switch (k) {
  case JV_NULL: return "null";
  case JV_BOOL: return "boolean";
  case JV_INT: return "integer";
  case JV_REAL: return "number with a fraction or exponent";
  case JV_STRING: return "string";
  case JV_OBJECT: return "object";
  case JV_ARRAY: return "array";
  default: return "nothing";
  }
}

typedef struct {
  jv_kind_t kind;
  int neg;              /* JV_INT: a minus sign */
  int overflow;         /* JV_INT: more than 64 bits */
  uint64_t u;           /* JV_INT magnitude */
  double d;             /* JV_REAL */
  size_t len;           /* JV_STRING */
  char str[CODEC_MAX_STRID + 1]; /* the first CODEC_MAX_STRID + 1 bytes */
} jv_t;

#define SAX_MAX_DEPTH 64 /* levels tracked for matching; deeper levels match nothing */

typedef struct {
  const input_t *in;
  int depth;                       /* containers open */
  uint32_t active[SAX_MAX_DEPTH + 1]; /* fields whose path matches down to this level */
  int is_object[SAX_MAX_DEPTH + 1];
  uint32_t pending;                /* fields the next value belongs to (after a key) */
  int pending_level;               /* the key's level */
  jv_t val[INPUT_F__COUNT];
  int rc;                          /* set by a callback that cancels the parse */
  char *errstr;
  size_t errstr_size;
} sax_t;

/* Whether the innermost open container is an object (levels beyond the
 * tracked ones never match, so they count as arrays). */
static int in_object(const sax_t *x) {
  return x->depth <= SAX_MAX_DEPTH && x->is_object[x->depth];
}

static uint32_t used_fields(const input_t *in) {
  uint32_t m = 0;
  for (int f = 0; f < INPUT_F__COUNT; f++) {
    if ((f == INPUT_F_USER && in->opts.user_from_key) ||
        (f == INPUT_F_TIME && in->opts.time_format == TIMEFMT_KAFKA))
      continue;
    m |= 1u << f;
  }
  return m;
}

static int sax_fail(sax_t *x, int rc, const char *fmt, const char *path, const char *label,
                    const char *extra) {
  x->rc = ix_fail(rc, x->errstr, x->errstr_size, fmt, path, label, extra);
  return 0;
}

/* A scalar or container start arriving at the current position: stores it
 * for the fields it completes, refuses one on a path that goes deeper. */
static int sax_value(sax_t *x, const jv_t *v) {
  if (x->depth == 0 && v->kind != JV_OBJECT) {
    x->rc = ix_fail(IX_ENOTMAP, x->errstr, x->errstr_size, "event message is a JSON %s, not an object",
                    jv_name(v->kind));
    return 0;
  }
  uint32_t m = x->pending;
  x->pending = 0;
  if (x->depth > 0 && !in_object(x)) m = 0; /* array elements match nothing */
  for (int f = 0; m && f < INPUT_F__COUNT; f++) {
    if (!(m & (1u << f))) continue;
    const path_t *p = &x->in->path[f];
    if (p->n == x->pending_level) { /* the value of the field */
      if (x->val[f].kind != JV_NONE)
        return sax_fail(x, IX_EMALFORMED, "field '%s' (%s) appears twice%s", p->path,
                        g_field_labels[f], "");
      x->val[f] = *v;
    } else if (v->kind != JV_OBJECT) { /* the path goes on through a non-object */
      size_t prefix = 0;
      for (int j = 0; j < x->pending_level; j++) prefix += strlen(p->parts[j]) + (j ? 1 : 0);
      x->rc = ix_fail(IX_ETYPE, x->errstr, x->errstr_size,
                      "field '%s' (%s): '%.*s' is %s %s, not an object", p->path, g_field_labels[f],
                      (int)prefix, p->path, v->kind == JV_INT || v->kind == JV_ARRAY ? "an" : "a",
                      jv_name(v->kind));
      return 0;
    }
  }
  return 1;
}

static int sax_push(sax_t *x, int is_object, uint32_t match) {
  x->depth++;
  if (x->depth <= SAX_MAX_DEPTH) {
    x->is_object[x->depth] = is_object;
    x->active[x->depth] = match;
  }
  return 1;
}

static int cb_null(void *ctx) {
  jv_t v = {.kind = JV_NULL};
  return sax_value(ctx, &v);
}

static int cb_bool(void *ctx, int b) {
  (void)b;
  jv_t v = {.kind = JV_BOOL};
  return sax_value(ctx, &v);
}

static int cb_number(void *ctx, const char *s, size_t n) {
  jv_t v = {.kind = JV_INT};
  size_t i = 0;
  if (i < n && s[i] == '-') {
    v.neg = 1;
    i++;
  }
  for (; i < n; i++) {
    unsigned d = (unsigned char)s[i] - '0';
    if (d > 9) {
      v.kind = JV_REAL;
      break;
    }
    if (v.u > (UINT64_MAX - d) / 10) v.overflow = 1;
    else v.u = v.u * 10 + d;
  }
  if (v.kind == JV_REAL) {
    char tmp[64];
    size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
    memcpy(tmp, s, k);
    tmp[k] = '\0';
    v.d = strtod(tmp, NULL);
  }
  return sax_value(ctx, &v);
}

static int cb_string(void *ctx, const unsigned char *s, size_t n) {
  sax_t *x = ctx;
  if (!x->pending || (x->depth > 0 && !in_object(x))) { /* no field wants it */
    if (x->depth == 0) {
      jv_t v = {.kind = JV_STRING};
      return sax_value(x, &v);
    }
    x->pending = 0;
    return 1;
  }
  jv_t v = {.kind = JV_STRING, .len = n};
  memcpy(v.str, s, n <= CODEC_MAX_STRID ? n : CODEC_MAX_STRID + 1);
  return sax_value(x, &v);
}

static int cb_start_map(void *ctx) {
  sax_t *x = ctx;
  jv_t v = {.kind = JV_OBJECT};
  uint32_t m = x->depth == 0 ? used_fields(x->in) : x->pending;
  if (x->depth > 0 && !in_object(x)) m = 0;
  if (!sax_value(x, &v)) return 0;
  /* keep only the fields whose path continues below this object */
  uint32_t keep = 0;
  for (int f = 0; f < INPUT_F__COUNT; f++)
    if ((m & (1u << f)) && x->in->path[f].n > (x->depth == 0 ? 0 : x->pending_level)) keep |= 1u << f;
  return sax_push(x, 1, keep);
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t n) {
  sax_t *x = ctx;
  x->pending = 0;
  if (x->depth > SAX_MAX_DEPTH) return 1;
  uint32_t m = x->active[x->depth];
  int level = x->depth; /* the key is component level-1 of a path */
  for (int f = 0; m && f < INPUT_F__COUNT; f++) {
    if (!(m & (1u << f))) continue;
    const path_t *p = &x->in->path[f];
    const char *part = p->parts[level - 1];
    if (strlen(part) == n && memcmp(part, k, n) == 0) x->pending |= 1u << f;
  }
  x->pending_level = level;
  return 1;
}

static int cb_end(void *ctx) {
  sax_t *x = ctx;
  x->depth--;
  x->pending = 0;
  return 1;
}

static int cb_start_array(void *ctx) {
  sax_t *x = ctx;
  jv_t v = {.kind = JV_ARRAY};
  if (!sax_value(x, &v)) return 0;
  return sax_push(x, 0, 0);
}

static const yajl_callbacks g_sax = {cb_null,   cb_bool,    NULL,   NULL,           cb_number,
                                     cb_string, cb_start_map, cb_map_key, cb_end, cb_start_array,
                                     cb_end};

static int id_of(const jv_t *v, const char *path, const char *label, uint64_t *out,
                 char *errstr, size_t errstr_size) {
  if (v->kind == JV_INT) {
    if (v->neg && v->u != 0)
      return ix_fail(IX_ERANGE, errstr, errstr_size, "field '%s' (%s) is negative: -%" PRIu64,
                     path, label, v->u);
    if (v->overflow)
      return ix_fail(IX_ERANGE, errstr, errstr_size,
                     "field '%s' (%s) is an integer above 18446744073709551615", path, label);
    *out = v->u;
    return 0;
  }
  /* v->str holds the first CODEC_MAX_STRID + 1 bytes, v->len the whole length */
  if (v->kind == JV_STRING)
    return codec_string_id(v->str, v->len, path, label, out, errstr, errstr_size);
  return ix_fail(IX_ETYPE, errstr, errstr_size,
                 "field '%s' (%s) has the wrong type: %s (want integer or string)", path, label,
                 jv_name(v->kind));
}

static int time_of(const input_t *in, const jv_t *v, const char *path, int64_t *ms,
                   char *errstr, size_t errstr_size) {
  timefmt_t tf = in->opts.time_format;
  if (tf == TIMEFMT_ISO8601) {
    if (v->kind != JV_STRING)
      return ix_fail(IX_ETYPE, errstr, errstr_size,
                     "field '%s' (event time) has the wrong type: %s (want an ISO-8601 string)",
                     path, jv_name(v->kind));
    char why[160];
    int rc = timefmt_parse(v->str, v->len > CODEC_MAX_STRID ? CODEC_MAX_STRID + 1 : v->len, 0, 0,
                           ms, why, sizeof why);
    if (rc) return ix_fail(rc, errstr, errstr_size, "field '%s' (event time): %s", path, why);
    return 0;
  }
  if (v->kind == JV_INT) {
    if (v->neg && v->u != 0)
      return ix_fail(IX_ERANGE, errstr, errstr_size, "field '%s' (event time) is negative: -%" PRIu64,
                     path, v->u);
    uint64_t lim = tf == TIMEFMT_S ? (uint64_t)INT64_MAX / 1000 : (uint64_t)INT64_MAX;
    if (v->overflow || v->u > lim)
      return ix_fail(IX_ERANGE, errstr, errstr_size,
                     "field '%s' (event time) is above 2^63-1 ms since the epoch", path);
    *ms = tf == TIMEFMT_S ? (int64_t)v->u * 1000 : (int64_t)v->u;
    return 0;
  }
  if (tf == TIMEFMT_S && v->kind == JV_REAL) {
    if (!(v->d >= 0.0 && v->d < 9.2e15))
      return ix_fail(IX_ERANGE, errstr, errstr_size,
                     "field '%s' (event time) is out of range: %g s", path, v->d);
    *ms = (int64_t)floor(v->d * 1000.0 + 0.5);
    return 0;
  }
  return ix_fail(IX_ETYPE, errstr, errstr_size,
                 "field '%s' (event time) has the wrong type: %s (want integer %s since the epoch)",
                 path, jv_name(v->kind), tf == TIMEFMT_S ? "seconds" : "ms");
}

static action_t action_of(const input_t *in, const jv_t *v) {
  if (v->kind == JV_INT)
    return !v->overflow && (!v->neg || v->u == 0) && v->u <= ACTION_BUY ? (action_t)v->u : ACTION_OTHER;
  if (v->kind != JV_STRING || v->len > CODEC_MAX_STRID) return ACTION_OTHER;
  for (size_t i = 0; i < in->opts.n_actions; i++)
    if (strlen(in->opts.actions[i].from) == v->len &&
        memcmp(in->opts.actions[i].from, v->str, v->len) == 0)
      return in->opts.actions[i].to;
  return codec_action_from_name(v->str, v->len);
}

/* yajl's error text without its trailing newline and the input excerpt. */
static void yajl_reason(yajl_handle h, const void *buf, size_t len, char *out, size_t n) {
  unsigned char *e = yajl_get_error(h, 0, buf, len);
  snprintf(out, n, "%s", e ? (const char *)e : "parse error");
  if (e) yajl_free_error(h, e);
  size_t k = strlen(out);
  while (k && (out[k - 1] == '\n' || out[k - 1] == ' ')) out[--k] = '\0';
}

static int decode_json(const input_t *in, const rec_t *msg, event_t *ev, char *errstr,
                       size_t errstr_size) {
  if (msg->value_len == 0) return ix_fail(IX_ETRUNC, errstr, errstr_size, "event message is empty");
  if (msg->value_len > INPUT_MAX_JSON)
    return ix_fail(IX_ETOOBIG, errstr, errstr_size,
                   "event message is %zu bytes, more than the %u allowed", msg->value_len,
                   INPUT_MAX_JSON);
  sax_t sx, *x = &sx;
  memset(x, 0, offsetof(sax_t, val));
  for (int f = 0; f < INPUT_F__COUNT; f++) x->val[f].kind = JV_NONE;
  x->in = in;
  x->errstr = errstr;
  x->errstr_size = errstr_size;
  int rc = 0;
  yajl_handle h = yajl_alloc(&g_sax, NULL, x);
  if (!h) return IX_ENOMEM;
  yajl_status st = yajl_parse(h, msg->value, msg->value_len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  if (st == yajl_status_client_canceled) {
    rc = x->rc;
    goto out;
  }
  if (st != yajl_status_ok) {
    char why[200];
    yajl_reason(h, msg->value, msg->value_len, why, sizeof why);
    size_t at = yajl_get_bytes_consumed(h);
    /* everything read and still inside a value: the text ends early */
    int trunc = strstr(why, "premature EOF") != NULL;
    if (trunc) at = msg->value_len;
    const char *text = strncmp(why, "parse error: ", 13) == 0 ? why + 13 : why;
    rc = ix_fail(trunc ? IX_ETRUNC : IX_EMALFORMED, errstr, errstr_size,
                 "event message is not valid JSON: %s (at byte %zu)", text, at);
    goto out;
  }
  const jv_t *v = x->val;
  const path_t *path = in->path;
  /* required fields, in the order msgpack reports them: user, category, time */
  if (in->opts.user_from_key) {
    if (!msg->key || msg->key_len == 0) {
      rc = ix_fail(IX_EMISSING, errstr, errstr_size,
                   "the Kafka message key (user id, input.user_from_key) is missing or empty");
      goto out;
    }
    if (msg->key_len > CODEC_MAX_STRID) {
      rc = ix_fail(IX_ETOOBIG, errstr, errstr_size,
                   "the Kafka message key (user id) is %zu bytes, more than the %d allowed",
                   msg->key_len, CODEC_MAX_STRID);
      goto out;
    }
    ev->user_id = codec_hash_id(msg->key, msg->key_len);
  } else if (v[INPUT_F_USER].kind == JV_NONE) {
    rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field '%s' (user id) is missing",
                 path[INPUT_F_USER].path);
    goto out;
  } else if ((rc = id_of(&v[INPUT_F_USER], path[INPUT_F_USER].path, "user id", &ev->user_id,
                         errstr, errstr_size))) {
    goto out;
  }
  if (v[INPUT_F_CATEGORY].kind == JV_NONE) {
    rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field '%s' (category id) is missing",
                 path[INPUT_F_CATEGORY].path);
    goto out;
  }
  if ((rc = id_of(&v[INPUT_F_CATEGORY], path[INPUT_F_CATEGORY].path, "category id",
                  &ev->category_id, errstr, errstr_size)))
    goto out;
  if (in->opts.time_format == TIMEFMT_KAFKA) {
    if (msg->ts_ms < 0) {
      rc = ix_fail(IX_EMISSING, errstr, errstr_size,
                   "the Kafka message has no timestamp (input.time_format = kafka)");
      goto out;
    }
    ev->ts_ms = msg->ts_ms;
  } else if (v[INPUT_F_TIME].kind == JV_NONE) {
    rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field '%s' (event time) is missing",
                 path[INPUT_F_TIME].path);
    goto out;
  } else if ((rc = time_of(in, &v[INPUT_F_TIME], path[INPUT_F_TIME].path, &ev->ts_ms, errstr,
                           errstr_size))) {
    goto out;
  }
  if (v[INPUT_F_ITEM].kind != JV_NONE &&
      (rc = id_of(&v[INPUT_F_ITEM], path[INPUT_F_ITEM].path, "item id", &ev->item_id, errstr,
                  errstr_size)))
    goto out;
  ev->action = v[INPUT_F_ACTION].kind != JV_NONE ? action_of(in, &v[INPUT_F_ACTION]) : ACTION_OTHER;
out:
  yajl_free(h);
  return rc;
}

int input_decode(const input_t *in, const rec_t *msg, event_t *out, char *errstr,
                 size_t errstr_size) {
  if (!in || in->opts.format == INPUT_MSGPACK)
    return codec_decode_event(msg->value, msg->value_len, out, errstr, errstr_size);
  memset(out, 0, sizeof *out);
  if (errstr && errstr_size) errstr[0] = '\0';
  int rc = decode_json(in, msg, out, errstr, errstr_size);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}
