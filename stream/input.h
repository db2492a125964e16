/* Input formats: how an event message's bytes become an event_t.
 * msgpack (stream/codec.h, the default, its exact rules) or JSON with a
 * configurable field mapping (docs/FORMATS.md "JSON events"):
 *
 *   input_opts_t   the [input] settings, set key by key (config, CLI)
 *   input_t        the compiled decoder, shared read-only by one thread
 *   input_decode() one message (value, key, Kafka timestamp) -> event_t
 *
 * JSON is read with yajl's event (SAX) parser, no tree. Ids follow the msgpack rule (integers as is,
 * strings through codec_hash_id()), so one user gets one id in both formats. */
#ifndef IX_STREAM_INPUT_H
#define IX_STREAM_INPUT_H

#include <stddef.h>
#include <stdio.h>

#include "common/event.h"
#include "stream/recfile.h"
#include "stream/timefmt.h"

#define INPUT_MAX_JSON (64u * 1024u) /* larger JSON events are refused (IX_ETOOBIG) */
#define INPUT_MAX_ACTIONS 64         /* entries in action_map */

typedef enum { INPUT_MSGPACK = 0, INPUT_JSON = 1 } input_format_t;

/* The mapped fields, in the order missing ones are reported. */
typedef enum {
  INPUT_F_USER = 0,
  INPUT_F_CATEGORY,
  INPUT_F_TIME,
  INPUT_F_ITEM,
  INPUT_F_ACTION,
  INPUT_F__COUNT
} input_field_t;

typedef struct {
  char *from;   /* the shop's action name */
  action_t to;
} input_action_t;

/* [input] settings. Initialise with input_opts_init(); free with
 * input_opts_free(). The field paths apply to JSON only. */
typedef struct {
  input_format_t format;
  char *field[INPUT_F__COUNT]; /* dotted paths; defaults "u", "c", "t", "i", "a" */
  timefmt_t time_format;       /* default ms */
  int user_from_key;           /* user id = the Kafka message key */
  input_action_t actions[INPUT_MAX_ACTIONS];
  size_t n_actions;
} input_opts_t;

/* Returns 0 or IX_ENOMEM. */
int input_opts_init(input_opts_t *o);
void input_opts_free(input_opts_t *o);
/* Sets one [input] key: format, user_field, category_field, item_field,
 * action_field, time_field, time_format, user_from_key, action_map
 * ("add_to_cart=cart, purchase=buy"; replaces the map). Returns 0, or
 * IX_ECONFIG with why naming the key and what is wrong, or IX_ENOMEM. */
int input_opts_set(input_opts_t *o, const char *key, const char *value, char *why,
                   size_t why_size);
/* Copies src into dst (dst uninitialised). Returns 0 or IX_ENOMEM. */
int input_opts_copy(input_opts_t *dst, const input_opts_t *src);
/* Writes the settings as INI lines (without the section header). */
void input_opts_print(const input_opts_t *o, FILE *f);
const char *input_field_key(input_field_t f); /* "user_field", ... */

typedef struct input input_t;

/* Compiles the options (copied). Free with input_destroy(). Returns 0,
 * IX_ECONFIG with errstr, or IX_ENOMEM. */
int input_new(const input_opts_t *o, input_t **out, char *errstr, size_t errstr_size);
void input_destroy(input_t *in);
input_format_t input_format(const input_t *in);

/* Decodes one message. in == NULL means msgpack. Returns 0, or the codec's
 * negative IX_E* codes with errstr naming the field (the JSON path in the
 * shop's names); *out is then all zero. JSON: IX_ENOTMAP (not an object),
 * IX_ETRUNC (ends early), IX_ETOOBIG, IX_EMALFORMED (syntax, duplicate key,
 * empty id, time text), IX_EMISSING, IX_ETYPE, IX_ERANGE. */
int input_decode(const input_t *in, const rec_t *msg, event_t *out, char *errstr,
                 size_t errstr_size);

#endif
