/* sd_notify wrapper and the loop-driven watchdog ping. libsystemd does the
 * socket work (abstract and path sockets, credentials); this file decides
 * what to send and when. */
#include "daemon/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "common/err.h"
#include "common/log.h"

struct notify {
  uv_loop_t *loop;
  uv_timer_t timer;
  int enabled;
  uint64_t watchdog_usec;
};

int notify_new(uv_loop_t *loop, notify_t **out) {
  notify_t *n = calloc(1, sizeof *n);
  *out = NULL;
  if (!n) return IX_ENOMEM;
  n->loop = loop;
  const char *sock = getenv("NOTIFY_SOCKET");
  n->enabled = sock && *sock;
  uint64_t usec = 0;
  if (n->enabled && sd_watchdog_enabled(0, &usec) > 0) n->watchdog_usec = usec;
  if (uv_timer_init(loop, &n->timer) < 0) {
    free(n);
    return IX_ESYS;
  }
  uv_unref((uv_handle_t *)&n->timer);
  n->timer.data = n;
  *out = n;
  return 0;
}

int notify_enabled(const notify_t *n) { return n->enabled; }
uint64_t notify_watchdog_usec(const notify_t *n) { return n->watchdog_usec; }

static int send_state(notify_t *n, const char *state) {
  if (!n->enabled) return 0;
  int rc = sd_notify(0, state);
  if (rc < 0) {
    LOG_WARN("notify", "sd_notify(\"%.40s\") failed: %s", state, strerror(-rc));
    return IX_ESYS;
  }
  return 0;
}

int notify_ready(notify_t *n) { return send_state(n, "READY=1"); }
int notify_stopping(notify_t *n) { return send_state(n, "STOPPING=1"); }
int notify_watchdog(notify_t *n) { return send_state(n, "WATCHDOG=1"); }

int notify_reloading(notify_t *n) {
  /* MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload;
   * older systemd ignores it. */
  struct timespec ts;
  char msg[64];
  clock_gettime(CLOCK_MONOTONIC, &ts);
  snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
  return send_state(n, msg);
}

int notify_extend_timeout(notify_t *n, uint64_t usec) {
  char msg[48];
  snprintf(msg, sizeof msg, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
  return send_state(n, msg);
}

int notify_status(notify_t *n, const char *fmt, ...) {
  if (!n->enabled) return 0;
  char msg[512] = "STATUS=";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + 7, sizeof msg - 7, fmt, ap);
  va_end(ap);
  for (char *p = msg; *p; p++)  /* one line: a newline would start a new assignment */
    if (*p == '\n' || *p == '\r') *p = ' ';
  return send_state(n, msg);
}

static void on_watchdog_timer(uv_timer_t *t) { notify_watchdog(t->data); }

int notify_watchdog_start(notify_t *n) {
  if (!n->enabled || n->watchdog_usec == 0) return 0;
  uint64_t ms = n->watchdog_usec / 2000;
  if (ms == 0) ms = 1;
  int rc = uv_timer_start(&n->timer, on_watchdog_timer, ms, ms);
  if (rc < 0) {
    LOG_ERROR("notify", "cannot start the watchdog timer: %s", uv_strerror(rc));
    return IX_ESYS;
  }
  LOG_INFO("notify", "watchdog every %llu ms (WATCHDOG_USEC=%llu)", (unsigned long long)ms,
           (unsigned long long)n->watchdog_usec);
  return 0;
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

void notify_close(notify_t *n) {
  if (!n) return;
  uv_timer_stop(&n->timer);
  uv_close((uv_handle_t *)&n->timer, on_timer_closed);
}
