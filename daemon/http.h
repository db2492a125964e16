/* A tiny HTTP/1.1 server on the libuv loop for operations endpoints:
 *   GET /metrics  200, Prometheus text (content-type text/plain; version=0.0.4)
 *   GET /healthz  200 "ok\n" when the health callback says healthy,
 *                 else 503 with the callback's reason
 *   GET /v1/users/<decimal id>  the user handler's answer (the daemon: the
 *                 user's current prediction, or 404 naming its partition);
 *                 404 without a handler, 400 for an id that is not a
 *                 decimal number below 2^64
 *   other paths   404;  methods other than GET (and HEAD)  405
 *   oversized or malformed requests  413 / 400, then the connection closes.
 * One request per connection (responses carry "Connection: close"); partial
 * reads are buffered up to a bounded size; idle connections time out.
 * Nothing blocks: rendering happens on the loop thread into a reused buffer.
 * Loop thread only. Handles are freed only in their close callbacks. */
#ifndef IX_DAEMON_HTTP_H
#define IX_DAEMON_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/metrics.h"

typedef struct http_server http_server_t;

/* Health probe: return 1 when healthy; otherwise return 0 and write a short
 * one-line reason into reason (reason_size bytes, NUL-terminated). Called on
 * the loop thread for each GET /healthz. */
typedef int (*http_health_fn)(void *arg, char *reason, size_t reason_size);

typedef struct {
  const char *host;          /* address to bind; NULL = "127.0.0.1" (IPv4 or IPv6 literal) */
  int port;                  /* 0 = ephemeral (read it with http_server_port()) */
  size_t max_request_bytes;  /* request head limit; 0 = 8192 */
  unsigned max_connections;  /* open connections; 0 = 64; beyond it new ones are closed at once */
  unsigned idle_timeout_ms;  /* close a connection that has not sent a full request; 0 = 5000 */
} http_options_t;

/* Bind and listen on loop. reg is borrowed (must outlive the server); health
 * may be NULL (always healthy). On failure returns IX_EINVAL (bad host/port),
 * IX_ESYS (bind/listen failed, e.g. port in use) or IX_ENOMEM, and fills
 * errstr with a sentence naming host:port. On success *out is owned by the
 * caller: stop it with http_server_close(). */
int http_server_start(uv_loop_t *loop, const http_options_t *opts, metrics_t *reg,
                      http_health_fn health, void *health_arg, http_server_t **out,
                      char *errstr, size_t errstr_size);

/* One request head, parsed (http_parse_request). */
typedef enum { HTTP_ROUTE_METRICS = 1, HTTP_ROUTE_HEALTH, HTTP_ROUTE_USER } http_route_t;
typedef struct {
  http_route_t route;
  int head_only;     /* HEAD: answer without the body */
  uint64_t user_id;  /* HTTP_ROUTE_USER */
} http_request_t;

/* Parses a complete request head req[0..len) (req[len] == '\0'; modified
 * in place). Returns 0 with *out filled, or the status to answer: 400
 * (malformed request line, bad user id), 404 (unknown path), 405 (a method
 * other than GET/HEAD; out->head_only is 0 then). Pure: no I/O, no state
 * (the fuzz target tests/fuzz/fuzz_http.c calls it). */
int http_parse_request(char *req, size_t len, http_request_t *out);

/* Answers GET /v1/users/<user_id>: returns the status (200, 404, 503...)
 * and points *ctype, *body and *body_len at the response (borrowed until the
 * next call). Loop thread. */
typedef int (*http_user_fn)(void *arg, uint64_t user_id, const char **ctype, const char **body,
                            size_t *body_len);
/* Installs the handler for /v1/users/<id> (NULL = 404). */
void http_server_set_user_handler(http_server_t *srv, http_user_fn fn, void *arg);

/* The bound TCP port (the real one when opts->port was 0). */
int http_server_port(const http_server_t *srv);

/* Stop listening and close every connection. The server is freed once all
 * its handles' close callbacks have run (the loop must keep running);
 * on_closed (may be NULL) is called then. srv is invalid after this call.
 * Accepts NULL. */
void http_server_close(http_server_t *srv, void (*on_closed)(void *arg), void *arg);

#endif
