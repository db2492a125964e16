/* systemd service notifications (sd_notify) for Type=notify units.
 * Every call is a no-op returning 0 when NOTIFY_SOCKET is unset (not run by
 * systemd). The watchdog pings from a uv_timer on the daemon's loop at half
 * of WATCHDOG_USEC, so a stuck loop stops pinging and systemd restarts it.
 * Loop thread only.
 *
 * Where the daemon calls what:
 *   start-up, before a long restore       notify_extend_timeout(n, usec) (repeat while restoring)
 *   state restored and partitions owned   notify_ready(n); notify_watchdog_start(n)
 *   now and then                          notify_status(n, "consumed %llu, users %zu, lag %lld", ...)
 *   SIGHUP                                notify_reloading(n); ...reload...; notify_ready(n)
 *   SIGTERM / SIGINT                      notify_stopping(n); then notify_close(n) before uv_loop_close()
 */
#ifndef IX_DAEMON_NOTIFY_H
#define IX_DAEMON_NOTIFY_H

#include <stdint.h>
#include <uv.h>

typedef struct notify notify_t;

/* Create the notifier for loop. Reads NOTIFY_SOCKET (enabled or not) and
 * the watchdog interval (sd_watchdog_enabled: WATCHDOG_USEC, and
 * WATCHDOG_PID when set must be this process). Returns 0, IX_ENOMEM or
 * IX_ESYS (the timer could not be created).
 * Free with notify_close(). */
int notify_new(uv_loop_t *loop, notify_t **out);

/* 1 when NOTIFY_SOCKET is set. */
int notify_enabled(const notify_t *n);
/* Watchdog interval systemd expects (WATCHDOG_USEC), 0 when disabled. */
uint64_t notify_watchdog_usec(const notify_t *n);

/* Each sends one datagram; returns 0 (also when disabled) or IX_ESYS when
 * the socket send failed. */
int notify_ready(notify_t *n);                        /* "READY=1" */
int notify_status(notify_t *n, const char *fmt, ...)  /* "STATUS=<one line>" */
    __attribute__((format(printf, 2, 3)));
int notify_reloading(notify_t *n);                    /* "RELOADING=1\nMONOTONIC_USEC=<now>" */
int notify_stopping(notify_t *n);                     /* "STOPPING=1" */
int notify_extend_timeout(notify_t *n, uint64_t usec);/* "EXTEND_TIMEOUT_USEC=<usec>" */
int notify_watchdog(notify_t *n);                     /* "WATCHDOG=1" (the timer calls this) */

/* Start pinging WATCHDOG=1 every WATCHDOG_USEC/2 from a uv_timer on the loop
 * (the timer is unref'd: it does not keep the loop alive). No-op when the
 * watchdog or notifications are disabled. Returns 0 or IX_ESYS. */
int notify_watchdog_start(notify_t *n);

/* Stop the timer and free the notifier once the timer's close callback has
 * run (the loop must run once more). Accepts NULL. */
void notify_close(notify_t *n);

#endif
