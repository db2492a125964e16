/* msgpack codecs for events and predictions (docs/FORMATS.md).
 * Decoders validate strictly: on failure they return a negative IX_E* code,
 * fill errstr with a sentence naming the field, and leave *out zeroed. */
#ifndef IX_STREAM_CODEC_H
#define IX_STREAM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/event.h"
#include "common/prediction.h"

#define CODEC_MAX_MSG 4096     /* larger input messages are rejected (IX_ETOOBIG) */
#define CODEC_MAX_STRID 256    /* longest accepted string id, bytes */

/* Growable output buffer. Zero-initialise; free with codec_buf_free(). */
typedef struct {
  char *data;
  size_t len, cap;
} codec_buf_t;
void codec_buf_free(codec_buf_t *buf);

/* Deterministic 64-bit id for a string id: FNV-1a 64 of its bytes;
 * a decimal string of an unsigned 64-bit value maps to that value. */
uint64_t codec_hash_id(const char *s, size_t len);
/* The id of a string-valued id field (`field`, whose role is `label`):
 * 0 with *out = codec_hash_id(s, len); IX_EMALFORMED for an empty string,
 * IX_ETOOBIG for one longer than CODEC_MAX_STRID, errstr saying which. One
 * rule for msgpack and JSON events. */
int codec_string_id(const char *s, size_t len, const char *field, const char *label,
                    uint64_t *out, char *errstr, size_t errstr_size);

/* Decode one event message. Returns 0 or IX_ENOTMAP, IX_ETRUNC, IX_ETOOBIG,
 * IX_EMISSING, IX_ETYPE, IX_ERANGE, IX_EMALFORMED. */
int codec_decode_event(const void *buf, size_t len, event_t *out, char *errstr,
                       size_t errstr_size);
/* Append-free encode: buf->len is reset to the encoded size. */
int codec_encode_event(const event_t *ev, codec_buf_t *buf);

/* Append-free encode (buf->len is reset): msgpack-c's exact bytes, written
 * straight into buf. 0, IX_EINVAL or IX_ENOMEM. */
int codec_encode_prediction(const prediction_t *pred, codec_buf_t *buf);

/* A message key: the user id in decimal, no terminator (keys are partitioned
 * with Kafka's murmur2, so producers and the importer must agree on these
 * bytes). Returns the key's length (1..CODEC_KEY_MAX). */
#define CODEC_KEY_MAX 20
size_t codec_user_key(uint64_t user_id, char key[CODEC_KEY_MAX]);

/* The Kafka message of a prediction: value = codec_encode_prediction() into
 * value, key = codec_user_key() of its user into key (*key_len set). Returns
 * 0, IX_EINVAL or IX_ENOMEM. */
int codec_prediction_message(const prediction_t *pred, codec_buf_t *value,
                             char key[CODEC_KEY_MAX], size_t *key_len);

int codec_decode_prediction(const void *buf, size_t len, prediction_t *out,
                            char *errstr, size_t errstr_size);

/* The action a string names in events ("view", "pv", "click", "cart", "fav",
 * "buy"); ACTION_OTHER for any other string. */
action_t codec_action_from_name(const char *s, size_t len);
/* Name of an action ("view", "cart", "fav", "buy", "other"). */
const char *codec_action_name(action_t action);

#endif
