/* Event-time text to ms since the epoch (see timefmt.h). */
#include "stream/timefmt.h"

#include <string.h>

#include "common/err.h"

int timefmt_from_name(const char *name, timefmt_t *out) {
  static const char *const names[] = {"ms", "s", "iso8601", "kafka"};
  for (int i = 0; i < 4; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (timefmt_t)i;
      return 0;
    }
  return IX_EINVAL;
}

const char *timefmt_name(timefmt_t t) {
  switch (t) {
  case TIMEFMT_S: return "s";
  case TIMEFMT_ISO8601: return "iso8601";
  case TIMEFMT_KAFKA: return "kafka";
  default: return "ms";
  }
}

/* Howard Hinnant's days_from_civil. */
int64_t timefmt_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* Reads exactly n digits at s[*i]; -1 when they are not there. */
static int digits(const char *s, size_t len, size_t *i, int n) {
  int v = 0;
  for (int k = 0; k < n; k++) {
    if (*i >= len || s[*i] < '0' || s[*i] > '9') return -1;
    v = v * 10 + (s[(*i)++] - '0');
  }
  return v;
}

#define BAD(...) return ix_fail(IX_EMALFORMED, errstr, errstr_size, __VA_ARGS__)

int timefmt_parse(const char *s, size_t len, int have_default, int default_offset_min,
                  int64_t *ms, char *errstr, size_t errstr_size) {
  size_t i = 0;
  int y = digits(s, len, &i, 4);
  if (y < 0 || i >= len || s[i++] != '-') BAD("time does not start with YYYY-MM-DD");
  int mo = digits(s, len, &i, 2);
  if (mo < 1 || mo > 12 || i >= len || s[i++] != '-') BAD("time has no valid month (YYYY-MM-DD)");
  int d = digits(s, len, &i, 2);
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) BAD("time has no valid day");
  if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
    BAD("time has no 'T' or space between the date and hh:mm");
  i++;
  int hh = digits(s, len, &i, 2);
  if (hh < 0 || hh > 23 || i >= len || s[i++] != ':') BAD("time has no valid hh:mm");
  int mm = digits(s, len, &i, 2);
  if (mm < 0 || mm > 59) BAD("time has no valid minute");
  int ss = 0, frac_ms = 0;
  if (i < len && s[i] == ':') {
    i++;
    ss = digits(s, len, &i, 2);
    if (ss < 0 || ss > 60) BAD("time has no valid second"); /* 60: a leap second, read as :59 + 1 s */
    if (i < len && (s[i] == '.' || s[i] == ',')) {
      i++;
      int nd = 0;
      while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (nd < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
        nd++;
        i++;
      }
      if (nd == 0) BAD("time has a decimal point without digits");
      for (; nd < 3; nd++) frac_ms *= 10;
    }
  }
  int offset_min = 0, have_zone = 0;
  if (i < len && s[i] == ' ') i++; /* "2019-10-01 00:00:00 UTC", "... +0200" */
  if (i < len) {
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
      have_zone = 1;
      i++;
    } else if (len - i == 3 && (memcmp(s + i, "UTC", 3) == 0 || memcmp(s + i, "GMT", 3) == 0)) {
      have_zone = 1;
      i += 3;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i++] == '-' ? -1 : 1;
      int oh = digits(s, len, &i, 2), om = 0;
      if (oh < 0 || oh > 23) BAD("time has a malformed UTC offset (want +hh:mm)");
      if (i < len && s[i] == ':') i++;
      if (i < len) {
        om = digits(s, len, &i, 2);
        if (om < 0 || om > 59) BAD("time has a malformed UTC offset (want +hh:mm)");
      }
      offset_min = sign * (oh * 60 + om);
      have_zone = 1;
    }
    if (i != len) BAD("time has unexpected text after it ('%.*s')", (int)(len - i > 20 ? 20 : len - i), s + i);
  }
  if (!have_zone) {
    if (!have_default) BAD("time has no UTC offset (want Z, +hh:mm or UTC)");
    offset_min = default_offset_min;
  }
  int64_t days = timefmt_days_from_civil(y, (unsigned)mo, (unsigned)d);
  int64_t secs = days * 86400 + hh * 3600 + mm * 60 + ss - (int64_t)offset_min * 60;
  if (secs < 0) return ix_fail(IX_ERANGE, errstr, errstr_size, "time is before 1970-01-01T00:00:00Z");
  *ms = secs * 1000 + frac_ms;
  return 0;
}
