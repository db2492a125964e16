/* The clickstream event: the one plain type every room speaks.
 * stream/codec encodes it, model/ learns from it, daemon/ routes it. */
#ifndef IX_COMMON_EVENT_H
#define IX_COMMON_EVENT_H

#include <stdint.h>

typedef enum {
  ACTION_VIEW = 0,
  ACTION_CART = 1,
  ACTION_FAV = 2,
  ACTION_BUY = 3,
  ACTION_OTHER = 4, /* any action we do not know; kept, never rejected */
  ACTION__COUNT
} action_t;

typedef struct {
  uint64_t user_id;     /* numeric id, or FNV-1a 64 of a string id (docs/FORMATS.md) */
  uint64_t item_id;
  uint64_t category_id;
  int64_t ts_ms;        /* event time, ms since the Unix epoch */
  action_t action;
} event_t;

#endif
