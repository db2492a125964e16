/* stderr logger: "2026-11-23T13:00:00.123Z info  [module] message". */
#include "common/log.h"
#include "common/err.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
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

/* ---- rate limit: a small open-addressed table of call sites ---- */
#define SITES 128
typedef struct {
  const char *fmt, *module; /* the key (string literals: compared by address) */
  log_level_t level;
  uint64_t start_ms;        /* this interval began */
  unsigned written;         /* lines written in this interval */
  unsigned long suppressed; /* lines counted, not written */
  char last[240];           /* the last one counted */
} site_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static site_t g_sites[SITES];
static unsigned g_burst = 10, g_interval_ms = 10000;

void log_set_rate_limit(unsigned burst, unsigned interval_ms) {
  pthread_mutex_lock(&g_mu);
  g_burst = burst;
  g_interval_ms = interval_ms;
  memset(g_sites, 0, sizeof g_sites);
  pthread_mutex_unlock(&g_mu);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void emit(log_level_t level, const char *module, const char *msg) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000L, g_names[level],
          module ? module : "-", msg);
}

/* Under g_mu: the summary of site s if it suppressed lines; resets it. */
static unsigned long summarize(site_t *s, uint64_t now) {
  unsigned long n = s->suppressed;
  if (n) {
    char msg[400];
    snprintf(msg, sizeof msg, "%lu more lines like this in the last %.0f s (suppressed), the "
             "last: %s", n, (double)(now - s->start_ms) / 1e3, s->last);
    emit(s->level, s->module, msg);
  }
  s->suppressed = 0;
  s->written = 0;
  s->start_ms = now;
  return n;
}

unsigned long log_flush_suppressed(void) {
  unsigned long total = 0;
  pthread_mutex_lock(&g_mu);
  uint64_t now = mono_ms();
  for (size_t i = 0; i < SITES; i++)
    if (g_sites[i].fmt && g_sites[i].suppressed && now - g_sites[i].start_ms >= g_interval_ms)
      total += summarize(&g_sites[i], now);
  pthread_mutex_unlock(&g_mu);
  return total;
}

/* Under g_mu: whether this line is written (else counted). */
static int admit(log_level_t level, const char *module, const char *fmt, const char *msg,
                 uint64_t now) {
  if (!g_burst || level == LOG_LVL_DEBUG) return 1;
  size_t h = (size_t)(((uintptr_t)fmt ^ ((uintptr_t)module << 7)) * 0x9E3779B97F4A7C15ull >> 57);
  for (size_t k = 0; k < 8; k++) {
    site_t *s = &g_sites[(h + k) % SITES];
    if (!s->fmt) {
      *s = (site_t){.fmt = fmt, .module = module, .level = level, .start_ms = now};
    } else if (s->fmt != fmt || s->module != module) {
      continue;
    }
    if (now - s->start_ms >= g_interval_ms) summarize(s, now);
    if (s->written < g_burst) {
      s->written++;
      return 1;
    }
    s->suppressed++;
    snprintf(s->last, sizeof s->last, "%.239s", msg);
    return 0;
  }
  return 1; /* table crowded here: not limited */
}

void log_write(log_level_t level, const char *module, const char *fmt, ...) {
  if (level > g_level) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&g_mu);
  if (admit(level, module, fmt, msg, mono_ms())) emit(level, module, msg);
  pthread_mutex_unlock(&g_mu);
}
