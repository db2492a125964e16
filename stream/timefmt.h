/* Event-time text: ISO-8601 / RFC 3339 date-times and the "2019-10-01
 * 00:00:00 UTC" form shop exports use, to ms since the Unix epoch.
 * Used by the JSON event decoder (stream/input.c) and the CSV importer. */
#ifndef IX_STREAM_TIMEFMT_H
#define IX_STREAM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* How a time field is written. */
typedef enum {
  TIMEFMT_MS = 0,    /* integer ms since the epoch */
  TIMEFMT_S = 1,     /* seconds since the epoch (integer or with a fraction) */
  TIMEFMT_ISO8601 = 2, /* text, see timefmt_parse() */
  TIMEFMT_KAFKA = 3, /* no time field: the Kafka message timestamp */
} timefmt_t;

/* "ms" | "s" | "iso8601" | "kafka" -> *out; 0 or IX_EINVAL. */
int timefmt_from_name(const char *name, timefmt_t *out);
const char *timefmt_name(timefmt_t t);

/* Parses s[0..len): YYYY-MM-DD, then 'T', 't' or one space, then
 * hh:mm[:ss[.fraction]], then a zone: 'Z', "+hh:mm", "+hhmm", "+hh" (or '-'),
 * or " UTC" / " GMT" (optionally after a space). Without a zone the time is
 * read at default_offset_min minutes east of UTC when have_default != 0, and
 * refused otherwise. Fractions beyond ms are truncated. Returns 0 with *ms
 * set, or IX_EMALFORMED / IX_ERANGE (before 1970) with errstr naming what is
 * wrong. */
int timefmt_parse(const char *s, size_t len, int have_default, int default_offset_min,
                  int64_t *ms, char *errstr, size_t errstr_size);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t timefmt_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
