/* Input formats: the [input] options and the JSON event decoder (jansson);
 * msgpack goes to stream/codec.c unchanged. */
#include "stream/input.h"

#include <inttypes.h>
#include <jansson.h>
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

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number with a fraction or exponent";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  default: return "null";
  }
}

/* The value at a path; NULL when a component is missing (a null value is
 * returned as such: a wrong type, as nil is in msgpack). A
 * component that is not an object on the way is IX_ETYPE. */
static int lookup(const json_t *root, const path_t *p, const char *label, json_t **out,
                  char *errstr, size_t errstr_size) {
  json_t *v = (json_t *)root;
  for (int k = 0; k < p->n; k++) {
    if (!json_is_object(v)) {
      size_t prefix = 0; /* the components before k, with their dots */
      for (int j = 0; j < k; j++) prefix += strlen(p->parts[j]) + (j ? 1 : 0);
      return ix_fail(IX_ETYPE, errstr, errstr_size, "field '%s' (%s): '%.*s' is %s %s, not an object",
                     p->path, label, (int)prefix, p->path,
                     json_is_integer(v) || json_is_array(v) ? "an" : "a", json_type_name(v));
    }
    v = json_object_get(v, p->parts[k]);
    if (!v) {
      *out = NULL;
      return 0;
    }
  }
  *out = v;
  return 0;
}

static int id_of_string(const char *s, size_t n, const char *path, const char *label,
                        uint64_t *out, char *errstr, size_t errstr_size) {
  if (n == 0)
    return ix_fail(IX_EMALFORMED, errstr, errstr_size, "field '%s' (%s) is an empty string", path,
                   label);
  if (n > CODEC_MAX_STRID)
    return ix_fail(IX_ETOOBIG, errstr, errstr_size,
                   "field '%s' (%s) is a %zu-byte string, more than the %d allowed", path, label, n,
                   CODEC_MAX_STRID);
  *out = codec_hash_id(s, n);
  return 0;
}

static int id_of(const json_t *v, const char *path, const char *label, uint64_t *out,
                 char *errstr, size_t errstr_size) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    if (x < 0)
      return ix_fail(IX_ERANGE, errstr, errstr_size, "field '%s' (%s) is negative: %" JSON_INTEGER_FORMAT,
                     path, label, x);
    *out = (uint64_t)x;
    return 0;
  }
  if (json_is_string(v))
    return id_of_string(json_string_value(v), json_string_length(v), path, label, out, errstr,
                        errstr_size);
  return ix_fail(IX_ETYPE, errstr, errstr_size,
                 "field '%s' (%s) has the wrong type: %s (want integer or string)", path, label,
                 json_type_name(v));
}

static int time_of(const input_t *in, const json_t *v, const char *path, int64_t *ms,
                   char *errstr, size_t errstr_size) {
  timefmt_t tf = in->opts.time_format;
  if (tf == TIMEFMT_ISO8601) {
    if (!json_is_string(v))
      return ix_fail(IX_ETYPE, errstr, errstr_size,
                     "field '%s' (event time) has the wrong type: %s (want an ISO-8601 string)",
                     path, json_type_name(v));
    char why[160];
    int rc = timefmt_parse(json_string_value(v), json_string_length(v), 0, 0, ms, why, sizeof why);
    if (rc) return ix_fail(rc, errstr, errstr_size, "field '%s' (event time): %s", path, why);
    return 0;
  }
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    if (x < 0)
      return ix_fail(IX_ERANGE, errstr, errstr_size,
                     "field '%s' (event time) is negative: %" JSON_INTEGER_FORMAT, path, x);
    if (tf == TIMEFMT_S && x > INT64_MAX / 1000)
      return ix_fail(IX_ERANGE, errstr, errstr_size,
                     "field '%s' (event time) is too large for seconds since the epoch", path);
    *ms = tf == TIMEFMT_S ? (int64_t)x * 1000 : (int64_t)x;
    return 0;
  }
  if (tf == TIMEFMT_S && json_is_real(v)) {
    double s = json_real_value(v);
    if (!(s >= 0.0 && s < 9.2e15))
      return ix_fail(IX_ERANGE, errstr, errstr_size,
                     "field '%s' (event time) is out of range: %g s", path, s);
    *ms = (int64_t)floor(s * 1000.0 + 0.5);
    return 0;
  }
  return ix_fail(IX_ETYPE, errstr, errstr_size,
                 "field '%s' (event time) has the wrong type: %s (want integer %s since the epoch)",
                 path, json_type_name(v), tf == TIMEFMT_S ? "seconds" : "ms");
}

static action_t action_of(const input_t *in, const json_t *v) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    return x >= 0 && x <= ACTION_BUY ? (action_t)x : ACTION_OTHER;
  }
  if (!json_is_string(v)) return ACTION_OTHER;
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  for (size_t i = 0; i < in->opts.n_actions; i++)
    if (strlen(in->opts.actions[i].from) == n && memcmp(in->opts.actions[i].from, s, n) == 0)
      return in->opts.actions[i].to;
  return codec_action_from_name(s, n);
}

static int decode_json(const input_t *in, const rec_t *msg, event_t *ev, char *errstr,
                       size_t errstr_size) {
  if (msg->value_len == 0) return ix_fail(IX_ETRUNC, errstr, errstr_size, "event message is empty");
  if (msg->value_len > INPUT_MAX_JSON)
    return ix_fail(IX_ETOOBIG, errstr, errstr_size,
                   "event message is %zu bytes, more than the %u allowed", msg->value_len,
                   INPUT_MAX_JSON);
  json_error_t jerr;
  json_t *root = json_loadb(msg->value, msg->value_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                            &jerr);
  if (!root) {
    enum json_error_code code = json_error_code(&jerr);
    int rc = code == json_error_premature_end_of_input ? IX_ETRUNC
             : code == json_error_numeric_overflow    ? IX_ERANGE
                                                      : IX_EMALFORMED;
    return ix_fail(rc, errstr, errstr_size, "event message is not valid JSON: %s (at byte %d)%s",
                   jerr.text, jerr.position,
                   rc == IX_ERANGE ? "; send ids above 9223372036854775807 as strings" : "");
  }
  int rc = 0;
  if (!json_is_object(root)) {
    rc = ix_fail(IX_ENOTMAP, errstr, errstr_size, "event message is a JSON %s, not an object",
                 json_type_name(root));
    goto out;
  }
  json_t *v[INPUT_F__COUNT];
  for (int f = 0; f < INPUT_F__COUNT; f++) {
    v[f] = NULL;
    if ((f == INPUT_F_USER && in->opts.user_from_key) ||
        (f == INPUT_F_TIME && in->opts.time_format == TIMEFMT_KAFKA))
      continue;
    if ((rc = lookup(root, &in->path[f], g_field_labels[f], &v[f], errstr, errstr_size))) goto out;
  }
  /* required fields, in the order msgpack reports them: user, category, time */
  if (in->opts.user_from_key) {
    if (!msg->key || msg->key_len == 0) {
      rc = ix_fail(IX_EMISSING, errstr, errstr_size,
                   "the Kafka message key (user id, input.user_from_key) is missing or empty");
      goto out;
    }
    if ((rc = id_of_string(msg->key, msg->key_len, "(message key)", "user id", &ev->user_id, errstr,
                           errstr_size)))
      goto out;
  } else if (!v[INPUT_F_USER]) {
    rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field '%s' (user id) is missing",
                 in->path[INPUT_F_USER].path);
    goto out;
  } else if ((rc = id_of(v[INPUT_F_USER], in->path[INPUT_F_USER].path, "user id", &ev->user_id,
                         errstr, errstr_size))) {
    goto out;
  }
  if (!v[INPUT_F_CATEGORY]) {
    rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field '%s' (category id) is missing",
                 in->path[INPUT_F_CATEGORY].path);
    goto out;
  }
  if ((rc = id_of(v[INPUT_F_CATEGORY], in->path[INPUT_F_CATEGORY].path, "category id",
                  &ev->category_id, errstr, errstr_size)))
    goto out;
  if (in->opts.time_format == TIMEFMT_KAFKA) {
    if (msg->ts_ms < 0) {
      rc = ix_fail(IX_EMISSING, errstr, errstr_size,
                   "the Kafka message has no timestamp (input.time_format = kafka)");
      goto out;
    }
    ev->ts_ms = msg->ts_ms;
  } else if (!v[INPUT_F_TIME]) {
    rc = ix_fail(IX_EMISSING, errstr, errstr_size, "field '%s' (event time) is missing",
                 in->path[INPUT_F_TIME].path);
    goto out;
  } else if ((rc = time_of(in, v[INPUT_F_TIME], in->path[INPUT_F_TIME].path, &ev->ts_ms, errstr,
                           errstr_size))) {
    goto out;
  }
  if (v[INPUT_F_ITEM] && (rc = id_of(v[INPUT_F_ITEM], in->path[INPUT_F_ITEM].path, "item id",
                                     &ev->item_id, errstr, errstr_size)))
    goto out;
  ev->action = v[INPUT_F_ACTION] ? action_of(in, v[INPUT_F_ACTION]) : ACTION_OTHER;
out:
  json_decref(root);
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
