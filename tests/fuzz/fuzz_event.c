/* libFuzzer target: the event and prediction decoders on arbitrary bytes.
 * Properties: never crash; *out zeroed on error; a decoded message re-encodes
 * to bytes that decode to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream/codec.h"

static int all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

static int same_cats(const pred_cat_t *a, const pred_cat_t *b, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (a[i].category_id != b[i].category_id || memcmp(&a[i].p, &b[i].p, sizeof(float)) != 0)
      return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  codec_buf_t buf = {0};

  event_t ev, ev2;
  memset(&ev, 0x5a, sizeof ev);
  int rc = codec_decode_event(data, size, &ev, err, sizeof err);
  if (rc) {
    if (rc >= 0 || !all_zero(&ev, sizeof ev) || !err[0]) abort();
  } else {
    if (codec_encode_event(&ev, &buf) || codec_decode_event(buf.data, buf.len, &ev2, NULL, 0) ||
        ev.user_id != ev2.user_id || ev.item_id != ev2.item_id ||
        ev.category_id != ev2.category_id || ev.ts_ms != ev2.ts_ms || ev.action != ev2.action)
      abort();
  }

  prediction_t *p = malloc(sizeof *p), *p2 = malloc(sizeof *p2);
  if (!p || !p2) abort();
  memset(p, 0x5a, sizeof *p);
  rc = codec_decode_prediction(data, size, p, err, sizeof err);
  if (rc) {
    if (rc >= 0 || !all_zero(p, sizeof *p) || !err[0]) abort();
  } else {
    if (codec_encode_prediction(p, &buf) || codec_decode_prediction(buf.data, buf.len, p2, NULL, 0))
      abort();
    if (p->user_id != p2->user_id || p->src_partition != p2->src_partition ||
        p->src_offset != p2->src_offset || p->event_ts_ms != p2->event_ts_ms ||
        p->emit_ts_ms != p2->emit_ts_ms || p->n_events != p2->n_events ||
        memcmp(&p->fluctuation, &p2->fluctuation, sizeof(float)) != 0 ||
        memcmp(&p->shift_prob, &p2->shift_prob, sizeof(float)) != 0 ||
        p->n_next != p2->n_next || p->n_long != p2->n_long || p->n_rising != p2->n_rising ||
        p->n_falling != p2->n_falling || !same_cats(p->falling, p2->falling, p->n_falling) ||
        !same_cats(p->next, p2->next, p->n_next) || !same_cats(p->longterm, p2->longterm, p->n_long) ||
        !same_cats(p->rising, p2->rising, p->n_rising))
      abort();
  }
  free(p);
  free(p2);
  codec_buf_free(&buf);
  return 0;
}
