/* The emission policy: when the processing core turns an applied event into a
 * prediction (docs/DAEMON.md, "Emission"). Set by the [emit] section of the
 * configuration; read by core/pipeline.c. */
#ifndef IX_CORE_EMIT_H
#define IX_CORE_EMIT_H

#include <stdint.h>

typedef enum {
  EMIT_EVERY = 0,    /* one prediction per event */
  EMIT_INTERVAL = 1, /* at most one prediction per user per interval_ms (event time) */
  EMIT_CHANGE = 2,   /* when the top-N next categories change or the fluctuation moves */
} emit_policy_t;

typedef struct {
  emit_policy_t policy;
  uint32_t interval_ms;        /* EMIT_INTERVAL */
  float fluctuation_threshold; /* EMIT_CHANGE: |fluct - last emitted fluct| >= this */
  uint32_t top_n_change;       /* EMIT_CHANGE: compare the top N next categories (1..10) */
} emit_opts_t;

#endif
