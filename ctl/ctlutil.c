/* Argument parsers for interestctl: numbers and times, strictly. */
#include "ctl/ctlutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"

int ctlutil_parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+') return IX_EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return IX_EINVAL;
  *out = v;
  return 0;
}

int ctlutil_parse_double(const char *s, double *out) {
  if (!s || !*s) return IX_EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || v < 0) return IX_EINVAL;
  *out = v;
  return 0;
}

int ctlutil_parse_time_ms(const char *s, int64_t *out_ms) {
  return ctlutil_parse_time_ms_tz(s, 0, out_ms);
}

int ctlutil_parse_time_ms_tz(const char *s, int64_t default_offset_s, int64_t *out_ms) {
  uint64_t ms;
  if (ctlutil_parse_u64(s, &ms) == 0) {
    *out_ms = (int64_t)ms;
    return 0;
  }
  struct tm tm = {0};
  int n = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3) return IX_EINVAL;
  const char *p = s + n;
  if (*p == 'T' || *p == ' ') {
    int m = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &m) != 2) return IX_EINVAL;
    p += 1 + m;
    if (*p == ':') {
      if (sscanf(p + 1, "%2d%n", &tm.tm_sec, &m) != 1) return IX_EINVAL;
      p += 1 + m;
    }
  }
  long offset_s = (long)default_offset_s;
  if (*p == 'Z') {
    offset_s = 0;
    p++;
  } else if (*p == '+' || *p == '-') {
    int hh, mm, m = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &m) != 2) return IX_EINVAL;
    offset_s = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
    p += 1 + m;
  }
  if (*p) return IX_EINVAL;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return IX_EINVAL;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm(&tm);
  *out_ms = ((int64_t)t - offset_s) * 1000;
  return 0;
}

int ctlutil_props_add(ctlutil_props_t *p, const char *cmd, const char *kv) {
  if (p->n >= CTLUTIL_MAX_PROPS) {
    fprintf(stderr, "interestctl %s: more than %d -X properties\n", cmd, CTLUTIL_MAX_PROPS);
    return 2;
  }
  p->v[p->n++] = kv;
  p->v[p->n] = NULL;
  return 0;
}

int ctlutil_opt_u64(const char *cmd, const char *opt, const char *arg, uint64_t *out) {
  if (ctlutil_parse_u64(arg, out) == 0) return 0;
  fprintf(stderr, "interestctl %s: --%s takes a number, not '%s'\n", cmd, opt, arg);
  return 2;
}
