/* Small argument parsers shared by the interestctl subcommands. */
#ifndef IX_CTL_CTLUTIL_H
#define IX_CTL_CTLUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Whole unsigned decimal number; 0 or IX_EINVAL. */
int ctlutil_parse_u64(const char *s, uint64_t *out);
/* Non-negative decimal number (may have a fraction); 0 or IX_EINVAL. */
int ctlutil_parse_double(const char *s, double *out);
/* Epoch milliseconds, or ISO-8601 "YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM|-HH:MM]"
 * (no zone means UTC); 0 or IX_EINVAL. */
int ctlutil_parse_time_ms(const char *s, int64_t *out_ms);
/* The same, a time written without a zone (a date alone included) read at
 * default_offset_s east of UTC: "2017-12-02" with +08:00 is local midnight. */
int ctlutil_parse_time_ms_tz(const char *s, int64_t default_offset_s, int64_t *out_ms);

/* -X key=value librdkafka properties collected from the command line, as the
 * NULL-terminated list kafkaconf takes (v stays valid while argv does). */
#define CTLUTIL_MAX_PROPS 64
typedef struct {
  const char *v[CTLUTIL_MAX_PROPS + 1];
  size_t n;
} ctlutil_props_t;

/* Appends kv (NULL-terminates v); 0, or 2 (a usage error, reported on stderr
 * as "interestctl CMD: ...") when the list is full. */
int ctlutil_props_add(ctlutil_props_t *p, const char *cmd, const char *kv);

/* ctlutil_parse_u64() of an option's argument; 0, or 2 (a usage error,
 * reported on stderr as "interestctl CMD: --OPT takes a number, not 'ARG'"). */
int ctlutil_opt_u64(const char *cmd, const char *opt, const char *arg, uint64_t *out);

#endif
