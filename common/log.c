/* stderr logger: "2026-11-23T13:00:00.123Z info  [module] message". */
#include "common/log.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile log_level_t g_level = LOG_LVL_INFO;
static const char *const g_names[] = {"error", "warn", "info", "debug"};

void log_set_level(log_level_t level) { g_level = level; }
log_level_t log_get_level(void) { return g_level; }

int log_parse_level(const char *name, log_level_t *level) {
  for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
    if (strcmp(name, g_names[i]) == 0) {
      *level = (log_level_t)i;
      return 0;
    }
  }
  return IX_EINVAL;
}

void log_write(log_level_t level, const char *module, const char *fmt, ...) {
  if (level > g_level) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000L,
          g_names[level], module ? module : "-", msg);
}
