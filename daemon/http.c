/* Operations HTTP server: /metrics and /healthz on the loop thread.
 * Life of a connection: READ (buffer until the end of the request head) ->
 * WRITE (one response, Connection: close) -> DRAIN (half-close our side,
 * discard what the client still sends so closing does not reset the
 * connection under the unread response) -> CLOSE (tcp + timer close
 * callbacks; the second frees it). */
#include "daemon/http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_MAX_REQUEST 8192
#define DEFAULT_MAX_CONNECTIONS 64
#define DEFAULT_IDLE_MS 5000
#define DRAIN_MS 1000

typedef enum { CONN_READ, CONN_WRITE, CONN_DRAIN, CONN_CLOSE } conn_state_t;

typedef struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wr;
  uv_shutdown_t sh;
  struct http_server *srv;
  struct conn *prev, *next;
  conn_state_t state;
  int open_handles;  /* freed when the last close callback runs */
  char *req;         /* max_request_bytes + 1 */
  size_t len;
  char *resp;        /* owned until the write callback */
  char discard[512];
} conn_t;

struct http_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  metrics_t *reg;
  http_health_fn health;
  void *health_arg;
  http_user_fn user;
  void *user_arg;
  size_t max_request;
  unsigned max_connections, idle_ms;
  int port;
  conn_t *conns;
  unsigned nconns;
  unsigned long requests;
  bool closing, listener_closed;
  metrics_buf_t body;  /* reused render buffer */
  void (*on_closed)(void *arg);
  void *on_closed_arg;
};

static void server_maybe_free(struct http_server *srv) {
  if (!srv->closing || !srv->listener_closed || srv->conns) return;
  void (*cb)(void *) = srv->on_closed;
  void *arg = srv->on_closed_arg;
  metrics_buf_free(&srv->body);
  free(srv);
  if (cb) cb(arg);
}

/* ---- connection teardown ------------------------------------------------- */

static void conn_on_handle_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->open_handles > 0) return;
  struct http_server *srv = c->srv;
  if (c->prev) c->prev->next = c->next;
  else srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->nconns--;
  free(c->req);
  free(c->resp);
  free(c);
  server_maybe_free(srv);
}

/* Close callback of a connection that never got linked in (its timer
 * failed to init). */
static void conn_free_tcp_only(uv_handle_t *h) {
  conn_t *c = h->data;
  free(c->req);
  free(c);
}

static void conn_close(conn_t *c) {
  if (c->state == CONN_CLOSE) return;
  c->state = CONN_CLOSE;
  uv_close((uv_handle_t *)&c->tcp, conn_on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, conn_on_handle_closed);
}

static void conn_on_timeout(uv_timer_t *t) { conn_close(t->data); }

/* ---- responses ----------------------------------------------------------- */

static void conn_on_shutdown(uv_shutdown_t *req, int status) {
  conn_t *c = req->data;
  if (c->state == CONN_CLOSE) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  c->state = CONN_DRAIN;
  uv_timer_start(&c->timer, conn_on_timeout, DRAIN_MS, 0);
}

static void conn_on_written(uv_write_t *req, int status) {
  conn_t *c = req->data;
  free(c->resp);
  c->resp = NULL;
  if (c->state == CONN_CLOSE) return;
  if (status < 0 || uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, conn_on_shutdown) < 0)
    conn_close(c);
}

static const char *status_text(int code) {
  switch (code) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Error";
  }
}

/* Queue one response and stop reading requests. */
static void conn_respond(conn_t *c, int code, const char *ctype, const char *body,
                         size_t body_len, bool head_only, const char *extra_header) {
  char head[256];
  int hn = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                    "Connection: close\r\n\r\n",
                    code, status_text(code), ctype, body_len,
                    extra_header ? extra_header : "");
  size_t send_body = head_only ? 0 : body_len;
  c->srv->requests++;
  c->state = CONN_WRITE;
  uv_timer_stop(&c->timer);
  c->resp = malloc((size_t)hn + send_body);
  if (!c->resp) {
    conn_close(c);
    return;
  }
  memcpy(c->resp, head, (size_t)hn);
  if (send_body) memcpy(c->resp + hn, body, send_body);
  uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hn + send_body));
  c->wr.data = c;
  c->sh.data = c;
  if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, conn_on_written) < 0) {
    free(c->resp);
    c->resp = NULL;
    conn_close(c);
  }
}

static void conn_respond_text(conn_t *c, int code, const char *text, bool head_only,
                              const char *extra_header) {
  conn_respond(c, code, "text/plain; charset=utf-8", text, strlen(text), head_only,
               extra_header);
}

/* ---- request parsing ----------------------------------------------------- */

static bool is_tchar(char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

#define USERS_PREFIX "/v1/users/"

int http_parse_request(char *req, size_t len, http_request_t *out) {
  memset(out, 0, sizeof *out);
  char *line = req;
  char *eol = strpbrk(line, "\r\n");
  if (!eol || (size_t)(eol - req) > len) return 400;
  *eol = '\0';
  char *sp1 = strchr(line, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || sp1 == line || strchr(sp2 + 1, ' ')) return 400;
  *sp1 = *sp2 = '\0';
  const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
  for (const char *p = method; *p; p++)
    if (!is_tchar(*p)) return 400;
  if (target[0] != '/' || (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0))
    return 400;
  size_t plen = strcspn(target, "?#");
  out->head_only = strcmp(method, "HEAD") == 0;
  size_t ul = sizeof USERS_PREFIX - 1;
  if (plen == 8 && memcmp(target, "/metrics", 8) == 0) {
    out->route = HTTP_ROUTE_METRICS;
  } else if (plen == 8 && memcmp(target, "/healthz", 8) == 0) {
    out->route = HTTP_ROUTE_HEALTH;
  } else if (plen > ul && memcmp(target, USERS_PREFIX, ul) == 0) {
    /* a decimal id below 2^64: digits only, no sign, no leading zeros */
    const char *d = target + ul;
    size_t dl = plen - ul;
    if (dl > 20 || (dl > 1 && d[0] == '0')) return 400;
    uint64_t v = 0;
    for (size_t i = 0; i < dl; i++) {
      if (d[i] < '0' || d[i] > '9') return 400;
      uint64_t digit = (uint64_t)(d[i] - '0');
      if (v > (UINT64_MAX - digit) / 10) return 400;
      v = v * 10 + digit;
    }
    out->route = HTTP_ROUTE_USER;
    out->user_id = v;
  } else {
    return 404;
  }
  if (!out->head_only && strcmp(method, "GET") != 0) return 405;
  return 0;
}

/* The request head is complete in c->req[0..len): parse it and answer.
 * Headers are not needed by any endpoint and are ignored. */
static void conn_handle(conn_t *c) {
  struct http_server *srv = c->srv;
  http_request_t rq;
  int st = http_parse_request(c->req, c->len, &rq);
  bool head_only = rq.head_only;
  if (st == 400) {
    conn_respond_text(c, 400, "bad request\n", false, NULL);
    return;
  }
  if (st == 404 || (rq.route == HTTP_ROUTE_USER && !srv->user)) {
    conn_respond_text(c, 404, "not found\n", head_only, NULL);
    return;
  }
  if (st == 405) {
    conn_respond_text(c, 405, "method not allowed\n", false, "Allow: GET, HEAD\r\n");
    return;
  }
  bool is_metrics = rq.route == HTTP_ROUTE_METRICS;
  if (rq.route == HTTP_ROUTE_USER) {
    const char *ctype = "text/plain; charset=utf-8", *body = "";
    size_t body_len = 0;
    int code = srv->user(srv->user_arg, rq.user_id, &ctype, &body, &body_len);
    conn_respond(c, code, ctype, body, body_len, head_only, NULL);
    return;
  }
  if (is_metrics) {
    if (metrics_render(srv->reg, &srv->body) < 0) {
      conn_respond_text(c, 500, "out of memory\n", head_only, NULL);
      return;
    }
    conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", srv->body.data,
                 srv->body.len, head_only, NULL);
    return;
  }
  char reason[256] = "";
  if (!srv->health || srv->health(srv->health_arg, reason, sizeof reason - 1)) {
    conn_respond_text(c, 200, "ok\n", head_only, NULL);
    return;
  }
  reason[sizeof reason - 2] = '\0';
  size_t rn = strcspn(reason, "\r\n");
  if (rn == 0) rn = (size_t)snprintf(reason, sizeof reason - 1, "unhealthy");
  reason[rn] = '\n';
  reason[rn + 1] = '\0';
  conn_respond_text(c, 503, reason, head_only, NULL);
}

/* ---- reading ------------------------------------------------------------- */

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  if (c->state == CONN_READ) {
    *buf = uv_buf_init(c->req + c->len, (unsigned)(c->srv->max_request - c->len));
  } else {
    *buf = uv_buf_init(c->discard, sizeof c->discard);
  }
}

/* End of the request head: "\r\n\r\n", or bare "\n\n" from lenient clients. */
static bool head_complete(const conn_t *c, size_t from) {
  size_t start = from > 3 ? from - 3 : 0;
  for (size_t i = start; i + 1 < c->len; i++) {
    if (c->req[i] != '\n') continue;
    if (c->req[i + 1] == '\n') return true;
    if (i + 2 < c->len && c->req[i + 1] == '\r' && c->req[i + 2] == '\n') return true;
  }
  return false;
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (c->state == CONN_CLOSE) return;
  if (nread < 0) {  /* EOF or error: nothing more to answer */
    conn_close(c);
    return;
  }
  if (nread == 0 || c->state != CONN_READ) return;  /* EAGAIN, or draining */
  size_t before = c->len;
  c->len += (size_t)nread;
  c->req[c->len] = '\0';
  if (memchr(c->req + before, '\0', (size_t)nread)) {
    conn_respond_text(c, 400, "bad request\n", false, NULL);
    return;
  }
  if (head_complete(c, before)) {
    conn_handle(c);
    return;
  }
  if (c->len >= c->srv->max_request)
    conn_respond_text(c, 431, "request too large\n", false, NULL);
}

/* ---- accepting ----------------------------------------------------------- */

static void srv_on_refused_closed(uv_handle_t *h) { free(h); }

static void srv_on_connection(uv_stream_t *listener, int status) {
  struct http_server *srv = listener->data;
  if (status < 0 || srv->closing) return;
  if (srv->nconns >= srv->max_connections) {
    /* accept and close at once, so the backlog does not fill up */
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t) return;
    if (uv_tcp_init(srv->loop, t) < 0) { /* the connection stays in the backlog */
      free(t);
      return;
    }
    uv_accept(listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, srv_on_refused_closed);
    return;
  }
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->req = malloc(srv->max_request + 1);
  if (!c->req) {
    free(c);
    return;
  }
  c->srv = srv;
  /* both only fill their structs on Linux; checked all the same, before the
   * connection is linked in (a handle that failed to init is never closed) */
  if (uv_tcp_init(srv->loop, &c->tcp) < 0) {
    free(c->req);
    free(c);
    return;
  }
  if (uv_timer_init(srv->loop, &c->timer) < 0) {
    c->tcp.data = c;
    uv_close((uv_handle_t *)&c->tcp, conn_free_tcp_only);
    return;
  }
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->next = srv->conns;
  if (srv->conns) srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read) < 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, conn_on_timeout, srv->idle_ms, 0);
}

/* ---- server -------------------------------------------------------------- */

static void srv_on_listener_closed(uv_handle_t *h) {
  struct http_server *srv = h->data;
  srv->listener_closed = true;
  server_maybe_free(srv);
}

int http_server_start(uv_loop_t *loop, const http_options_t *opts, metrics_t *reg,
                      http_health_fn health, void *health_arg, http_server_t **out,
                      char *errstr, size_t errstr_size) {
  *out = NULL;
  const char *host = opts && opts->host ? opts->host : DEFAULT_HOST;
  int port = opts ? opts->port : 0;
  struct sockaddr_storage addr;
  if (port < 0 || port > 65535) {
    snprintf(errstr, errstr_size, "metrics port %d is out of range 0..65535", port);
    return IX_EINVAL;
  }
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
    snprintf(errstr, errstr_size,
             "metrics host \"%s\" is not an IPv4 or IPv6 address (e.g. 127.0.0.1 or ::1)", host);
    return IX_EINVAL;
  }
  bool v6 = strchr(host, ':') != NULL;
  struct http_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    snprintf(errstr, errstr_size, "out of memory starting the metrics server");
    return IX_ENOMEM;
  }
  srv->loop = loop;
  srv->reg = reg;
  srv->health = health;
  srv->health_arg = health_arg;
  srv->max_request = opts && opts->max_request_bytes ? opts->max_request_bytes : DEFAULT_MAX_REQUEST;
  srv->max_connections =
      opts && opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
  srv->idle_ms = opts && opts->idle_timeout_ms ? opts->idle_timeout_ms : DEFAULT_IDLE_MS;
  int uvrc = uv_tcp_init(loop, &srv->listener);
  if (uvrc < 0) {
    free(srv);
    snprintf(errstr, errstr_size, "cannot create the metrics socket: %s", uv_strerror(uvrc));
    return IX_ESYS;
  }
  srv->listener.data = srv;
  uvrc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
  if (uvrc == 0) uvrc = uv_listen((uv_stream_t *)&srv->listener, 128, srv_on_connection);
  if (uvrc == 0) {
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uvrc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
    if (uvrc == 0)
      srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
  }
  if (uvrc < 0) {
    snprintf(errstr, errstr_size, "cannot listen on %s%s%s:%d for metrics: %s", v6 ? "[" : "",
             host, v6 ? "]" : "", port, uv_strerror(uvrc));
    /* freed by the close callback once the loop runs */
    srv->closing = true;
    uv_close((uv_handle_t *)&srv->listener, srv_on_listener_closed);
    return IX_ESYS;
  }
  LOG_INFO("http", "serving /metrics and /healthz on %s%s%s:%d", v6 ? "[" : "", host,
           v6 ? "]" : "", srv->port);
  *out = srv;
  return 0;
}

void http_server_set_user_handler(http_server_t *srv, http_user_fn fn, void *arg) {
  srv->user = fn;
  srv->user_arg = arg;
}

int http_server_port(const http_server_t *srv) { return srv->port; }

void http_server_close(http_server_t *srv, void (*on_closed)(void *arg), void *arg) {
  if (!srv || srv->closing) return;
  srv->closing = true;
  srv->on_closed = on_closed;
  srv->on_closed_arg = arg;
  for (conn_t *c = srv->conns; c; c = c->next) conn_close(c);
  uv_close((uv_handle_t *)&srv->listener, srv_on_listener_closed);
}
