/* Process-wide leveled logger to stderr. Thread-safe (one fprintf per line).
 * librdkafka's log callback is routed here by stream/.
 *
 * Repeated lines are rate-limited per call site (module and format string,
 * whatever the arguments): the first `burst` lines of a site in each
 * interval are written in full, the rest only counted, and one summary line
 * per site ("N more lines like: <format>") follows when the interval is over
 * (at the next log line, or log_flush_suppressed()). Debug lines are never
 * limited. Default: 10 lines per 10 s per site. */
#ifndef IX_COMMON_LOG_H
#define IX_COMMON_LOG_H

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level_t;

void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Parses "error|warn|info|debug"; returns 0 or IX_EINVAL. */
int log_parse_level(const char *name, log_level_t *level);
/* burst lines per interval_ms per call site; burst 0 turns the limit off. */
void log_set_rate_limit(unsigned burst, unsigned interval_ms);
/* Writes the summary lines of the sites whose interval is over; call it now
 * and then (the daemon's status timer) so a count is never held back long.
 * Returns the number of lines suppressed in them. */
unsigned long log_flush_suppressed(void);
void log_write(log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_ERROR(mod, ...) log_write(LOG_LVL_ERROR, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...)  log_write(LOG_LVL_WARN, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...)  log_write(LOG_LVL_INFO, mod, __VA_ARGS__)
#define LOG_DEBUG(mod, ...)                                                  \
  do { if (log_get_level() >= LOG_LVL_DEBUG) log_write(LOG_LVL_DEBUG, mod, __VA_ARGS__); } while (0)

#endif
