/* Output formats: how a prediction_t becomes the bytes of a prediction
 * message. msgpack (stream/codec.h, the default) or JSON with readable names
 * (docs/FORMATS.md "JSON predictions", schema in docs/prediction.schema.json),
 * next cut to the configured number of categories. */
#ifndef IX_STREAM_OUTPUT_H
#define IX_STREAM_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/prediction.h"
#include "stream/codec.h"

typedef enum { OUTPUT_MSGPACK = 0, OUTPUT_JSON = 1 } output_format_t;

/* [output] settings. */
typedef struct {
  output_format_t format;
  uint32_t next_categories; /* next pairs per prediction, 1..PRED_MAX_NEXT; default PRED_TOPK.
                               The model makes them (model_set_next_count()); the
                               encoders cut n_next to this too */
} output_opts_t;

void output_opts_init(output_opts_t *o);
/* Sets one [output] key: format (msgpack | json), next_categories. Returns 0 or
 * IX_ECONFIG with why naming the key. */
int output_opts_set(output_opts_t *o, const char *key, const char *value, char *why,
                    size_t why_size);
void output_opts_print(const output_opts_t *o, FILE *f);

/* Encodes pred in o's format into buf (buf->len is reset). o == NULL means
 * msgpack with every pair. Returns 0, IX_EINVAL or IX_ENOMEM. */
int output_encode(const output_opts_t *o, const prediction_t *pred, codec_buf_t *buf);

/* The Kafka message of a prediction: value = output_encode() into value,
 * key = codec_user_key() of its user into key (*key_len set). Returns 0,
 * IX_EINVAL or IX_ENOMEM. */
int output_message(const output_opts_t *o, const prediction_t *pred, codec_buf_t *value,
                   char key[CODEC_KEY_MAX], size_t *key_len);

/* The JSON prediction: one object, ids as decimal strings (exact in every
 * language; 64-bit ids do not fit a JSON double), floats with 9 significant
 * digits (float32 round-trips), at most k next pairs. */
int output_encode_json(const prediction_t *pred, uint32_t k, codec_buf_t *buf);

#endif
