/* Why an input message was not applied: the reject-reason table, one row per
 * reason (name, the codec error it stands for, the label in metrics, logs,
 * dead-letter headers and replay summaries). Written once here; the daemon,
 * the metrics, the processing core and offline replay derive from it. Row
 * order is the index order and the order of the metric's label values
 * ("other", index 0, takes every code not listed). */
#ifndef IX_COMMON_REJECT_H
#define IX_COMMON_REJECT_H

#include <stddef.h>

#include "common/err.h"

#define IX_REJECT_MAP(XX)                     \
  XX(OTHER,        0,             "other")         \
  XX(NOT_MAP,      IX_ENOTMAP,    "not_map")       \
  XX(TRUNCATED,    IX_ETRUNC,     "truncated")     \
  XX(TOO_BIG,      IX_ETOOBIG,    "too_big")       \
  XX(MISSING,      IX_EMISSING,   "missing_field") \
  XX(WRONG_TYPE,   IX_ETYPE,      "wrong_type")    \
  XX(OUT_OF_RANGE, IX_ERANGE,     "out_of_range")  \
  XX(MALFORMED,    IX_EMALFORMED, "malformed")

typedef enum {
#define XX(name, err, label) IX_REJECT_##name,
  IX_REJECT_MAP(XX)
#undef XX
  IX_REJECT_REASONS /* how many */
} ix_reject_t;

/* Index of the reason for a codec error code (IX_REJECT_OTHER for codes not
 * in the table). */
static inline ix_reject_t ix_reject_index(int err) {
#define XX(name, code, label) \
  if ((code) != 0 && err == (code)) return IX_REJECT_##name;
  IX_REJECT_MAP(XX)
#undef XX
  return IX_REJECT_OTHER;
}

/* Label of a reason index (static string; "other" when out of range). */
static inline const char *ix_reject_label(size_t idx) {
  static const char *const labels[IX_REJECT_REASONS] = {
#define XX(name, code, label) label,
      IX_REJECT_MAP(XX)
#undef XX
  };
  return idx < IX_REJECT_REASONS ? labels[idx] : labels[IX_REJECT_OTHER];
}

/* Label for a codec error code, e.g. IX_ENOTMAP -> "not_map". */
static inline const char *ix_reject_reason(int err) {
  return ix_reject_label(ix_reject_index(err));
}

#endif
