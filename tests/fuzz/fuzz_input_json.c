/* libFuzzer target: the JSON event decoder (stream/input.c) with a shop
 * mapping (nested paths, ISO-8601 times, an action map, the user id from the
 * Kafka key) and with the default mapping (u c t i a, ms). Properties: never
 * crash; on error a negative code, a reason and *out all zero; a decoded
 * event re-encodes as msgpack to bytes that decode to the same event. The
 * first input byte picks the mapping and whether a key and timestamp come
 * with the message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream/codec.h"
#include "stream/input.h"

static input_t *g_in[3];

static input_t *make(const char *const *kv) {
  input_opts_t o;
  char why[256];
  if (input_opts_init(&o)) abort();
  for (size_t i = 0; kv[i]; i += 2)
    if (input_opts_set(&o, kv[i], kv[i + 1], why, sizeof why)) abort();
  input_t *in = NULL;
  if (input_new(&o, &in, why, sizeof why)) abort();
  input_opts_free(&o);
  return in;
}

static void init(void) {
  g_in[0] = make((const char *const[]){"format", "json", NULL});
  g_in[1] = make((const char *const[]){
      "format", "json", "user_field", "user.id", "category_field", "properties.category_id",
      "item_field", "properties.product_id", "action_field", "event", "time_field", "ts",
      "time_format", "iso8601", "action_map", "add_to_cart=cart,purchase=buy", NULL});
  g_in[2] = make((const char *const[]){"format", "json", "user_from_key", "true", "time_format",
                                       "kafka", "category_field", "a.b.c", NULL});
}

static int all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_in[0]) init();
  if (size < 1) return 0;
  const input_t *in = g_in[data[0] % 3];
  int with_key = (data[0] >> 2) & 1;
  rec_t r = {.partition = 0, .offset = 0, .ts_ms = (data[0] & 0x10) ? -1 : 1700000000000ll,
             .key = with_key ? "user-1" : NULL, .key_len = with_key ? 6 : 0,
             .value = data + 1, .value_len = size - 1};
  event_t ev, ev2;
  char err[256];
  memset(&ev, 0x5a, sizeof ev);
  int rc = input_decode(in, &r, &ev, err, sizeof err);
  if (rc) {
    if (rc >= 0 || !all_zero(&ev, sizeof ev) || !err[0]) abort();
    return 0;
  }
  codec_buf_t buf = {0};
  if (codec_encode_event(&ev, &buf) || codec_decode_event(buf.data, buf.len, &ev2, NULL, 0) ||
      memcmp(&ev, &ev2, sizeof ev) != 0)
    abort();
  codec_buf_free(&buf);
  return 0;
}
