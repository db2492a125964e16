/* Small argument parsers shared by the interestctl subcommands. */
#ifndef IX_DAEMON_CTLUTIL_H
#define IX_DAEMON_CTLUTIL_H

#include <stdint.h>

/* Whole unsigned decimal number; 0 or IX_EINVAL. */
int ctlutil_parse_u64(const char *s, uint64_t *out);
/* Non-negative decimal number (may have a fraction); 0 or IX_EINVAL. */
int ctlutil_parse_double(const char *s, double *out);
/* Epoch milliseconds, or ISO-8601 "YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM|-HH:MM]"
 * (no zone means UTC); 0 or IX_EINVAL. */
int ctlutil_parse_time_ms(const char *s, int64_t *out_ms);

#endif
