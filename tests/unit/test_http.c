/* HTTP server: real sockets against a server on port 0 on a uv loop. A client
 * thread makes blocking requests while the test thread runs the loop; the
 * client records responses, the test thread asserts on them after the loop
 * has closed everything (uv_loop_close() == 0). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "daemon/http.h"
#include "daemon/metrics.h"

#define MAX_RESULTS 128

typedef struct fixture fixture_t;
typedef void (*client_fn)(fixture_t *fx);

struct fixture {
  uv_loop_t loop;
  uv_async_t done;
  metrics_t *reg;
  http_server_t *srv;
  int port;
  atomic_int healthy;
  int closed;
  client_fn client;
  char *resp[MAX_RESULTS];
  double elapsed_ms[MAX_RESULTS];
  int nresp;
};

static int health_cb(void *arg, char *reason, size_t size) {
  fixture_t *fx = arg;
  if (atomic_load(&fx->healthy)) return 1;
  snprintf(reason, size, "kafka: no partitions assigned\nsecond line is dropped");
  return 0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Read until EOF (or error/timeout); malloc'd, NUL-terminated. */
static char *read_all(int fd) {
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (len == cap) buf = realloc(buf, (cap *= 2) + 1);
    ssize_t n = recv(fd, buf + len, cap - len, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  return buf;
}

static void send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

/* One request written in parts (with a pause between parts); records the response. */
static void exchange(fixture_t *fx, const char *const *parts, int nparts) {
  double t0 = now_ms();
  int fd = connect_to(fx->port);
  char *r = NULL;
  if (fd >= 0) {
    for (int i = 0; i < nparts; i++) {
      send_all(fd, parts[i], strlen(parts[i]));
      if (i + 1 < nparts) usleep(20000);
    }
    r = read_all(fd);
    close(fd);
  }
  fx->elapsed_ms[fx->nresp] = now_ms() - t0;
  fx->resp[fx->nresp++] = r ? r : strdup("<connect failed>");
}

static void request(fixture_t *fx, const char *req) { exchange(fx, &req, 1); }

static void *client_main(void *arg) {
  fixture_t *fx = arg;
  fx->client(fx);
  uv_async_send(&fx->done);
  return NULL;
}

static void on_server_closed(void *arg) { *(int *)arg = 1; }
static void on_done_counting(uv_async_t *a) {
  fixture_t *fx = a->data;
  http_server_close(fx->srv, on_server_closed, &fx->closed);
  uv_close((uv_handle_t *)&fx->done, NULL);
}

/* Start a server with opts, run client on a thread, run the loop until the
 * server is closed, and check nothing is left open. */
static void run(fixture_t *fx, const http_options_t *opts, client_fn client) {
  memset(fx, 0, sizeof *fx);
  atomic_store(&fx->healthy, 1);
  fx->client = client;
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  assert_int_equal(metrics_new(&fx->reg), 0);
  metrics_counter_t *c;
  assert_int_equal(metrics_counter_new(fx->reg, &c, "t_total", "T.", NULL), 0);
  metrics_counter_add(c, 7);
  char err[256] = "";
  assert_int_equal(http_server_start(&fx->loop, opts, fx->reg, health_cb, fx, &fx->srv, err,
                                     sizeof err), 0);
  fx->port = http_server_port(fx->srv);
  assert_true(fx->port > 0);
  assert_int_equal(uv_async_init(&fx->loop, &fx->done, on_done_counting), 0);
  fx->done.data = fx;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, client_main, fx), 0);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  pthread_join(th, NULL);
  assert_int_equal(fx->closed, 1);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  metrics_destroy(fx->reg);
}

static void free_results(fixture_t *fx) {
  for (int i = 0; i < fx->nresp; i++) free(fx->resp[i]);
}

static const char *body_of(const char *resp) {
  const char *b = strstr(resp, "\r\n\r\n");
  return b ? b + 4 : "";
}

static void assert_status(const char *resp, int code) {
  char want[32];
  snprintf(want, sizeof want, "HTTP/1.1 %d ", code);
  if (strncmp(resp, want, strlen(want)) != 0) fail_msg("want %d, got: %.200s", code, resp);
}

/* ---- endpoints ----------------------------------------------------------- */

static void client_endpoints(fixture_t *fx) {
  request(fx, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");          /* 0 */
  request(fx, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");          /* 1 */
  atomic_store(&fx->healthy, 0);
  request(fx, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");          /* 2 */
  atomic_store(&fx->healthy, 1);
  request(fx, "GET /nope HTTP/1.1\r\n\r\n");                        /* 3 */
  request(fx, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"); /* 4 */
  request(fx, "HEAD /metrics HTTP/1.0\r\n\r\n");                    /* 5 */
  request(fx, "GET /metrics?x=1 HTTP/1.0\n\n");                     /* 6: bare LFs, query */
  request(fx, "GET /metricsX HTTP/1.1\r\n\r\n");                    /* 7 */
}

static void test_http_serves_metrics_healthz_404_405(void **state) {
  fixture_t fx;
  run(&fx, NULL, client_endpoints);
  const char *metrics_body = "# HELP t_total T.\n# TYPE t_total counter\nt_total 7\n";
  char clen[64];
  snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", strlen(metrics_body));

  assert_status(fx.resp[0], 200);
  assert_non_null(strstr(fx.resp[0], "Content-Type: text/plain; version=0.0.4"));
  assert_non_null(strstr(fx.resp[0], clen));
  assert_non_null(strstr(fx.resp[0], "Connection: close\r\n"));
  assert_string_equal(body_of(fx.resp[0]), metrics_body);

  assert_status(fx.resp[1], 200);
  assert_string_equal(body_of(fx.resp[1]), "ok\n");
  assert_status(fx.resp[2], 503);
  assert_string_equal(body_of(fx.resp[2]), "kafka: no partitions assigned\n");
  assert_status(fx.resp[3], 404);
  assert_status(fx.resp[4], 405);
  assert_non_null(strstr(fx.resp[4], "Allow: GET, HEAD\r\n"));
  assert_status(fx.resp[5], 200);
  assert_non_null(strstr(fx.resp[5], clen)); /* HEAD: the GET's length, no body */
  assert_string_equal(body_of(fx.resp[5]), "");
  assert_status(fx.resp[6], 200);
  assert_string_equal(body_of(fx.resp[6]), metrics_body);
  assert_status(fx.resp[7], 404);
  free_results(&fx);
}

/* ---- partial and bad requests ------------------------------------------- */

static void client_partial_and_bad(fixture_t *fx) {
  static const char *const split[] = {"GE", "T /metr", "ics HTTP/1.1\r\nHo", "st: x\r", "\n\r\n"};
  exchange(fx, split, 5);                                     /* 0 */
  request(fx, "GARBAGE\r\n\r\n");                             /* 1 */
  request(fx, "GET /metrics HTTP/9.9\r\n\r\n");               /* 2 */
  request(fx, "GET metrics HTTP/1.1\r\n\r\n");                /* 3 */
  request(fx, "G(T /metrics HTTP/1.1\r\n\r\n");               /* 4 */
  static const char nul[] = "GET /metrics\0 HTTP/1.1\r\n\r\n";
  int fd = connect_to(fx->port);                              /* 5: a NUL byte */
  send_all(fd, nul, sizeof nul - 1);
  fx->resp[fx->nresp++] = read_all(fd);
  close(fd);
  /* 6: a head larger than the limit (1024 here) */
  char big[4096];
  memset(big, 'a', sizeof big);
  memcpy(big, "GET /metrics HTTP/1.1\r\nX-Pad: ", 30);
  big[sizeof big - 1] = '\0';
  request(fx, big);
  /* 7: a client that gives up half-way; the server must just clean up */
  fd = connect_to(fx->port);
  send_all(fd, "GET /met", 8);
  close(fd);
  request(fx, "GET /healthz HTTP/1.1\r\n\r\n");               /* 7: still serving */
}

static void test_http_handles_split_malformed_and_oversized_requests(void **state) {
  fixture_t fx;
  http_options_t opts = {.max_request_bytes = 1024};
  run(&fx, &opts, client_partial_and_bad);
  assert_status(fx.resp[0], 200);
  assert_non_null(strstr(fx.resp[0], "\r\n\r\n# HELP t_total T.\n"));
  assert_true(fx.elapsed_ms[0] >= 80); /* it really arrived in pieces */
  assert_status(fx.resp[1], 400);
  assert_status(fx.resp[2], 400);
  assert_status(fx.resp[3], 400);
  assert_status(fx.resp[4], 400);
  assert_status(fx.resp[5], 400);
  assert_status(fx.resp[6], 431);
  assert_status(fx.resp[7], 200);
  free_results(&fx);
}

/* ---- concurrency, limits, timeouts -------------------------------------- */

#define NCONC 40

static void client_concurrent(fixture_t *fx) {
  int fds[NCONC];
  for (int i = 0; i < NCONC; i++) fds[i] = connect_to(fx->port);
  /* every connection is open before any request is complete: half send
   * their first bytes now, then all finish */
  for (int i = 0; i < NCONC; i += 2) send_all(fds[i], "GET /metr", 9);
  for (int i = 0; i < NCONC; i++) {
    const char *rest = (i % 2 == 0) ? "ics HTTP/1.1\r\n\r\n" : "GET /healthz HTTP/1.1\r\n\r\n";
    send_all(fds[i], rest, strlen(rest));
  }
  for (int i = 0; i < NCONC; i++) {
    fx->resp[fx->nresp++] = read_all(fds[i]);
    close(fds[i]);
  }
}

static void test_http_serves_many_concurrent_connections(void **state) {
  fixture_t fx;
  run(&fx, NULL, client_concurrent);
  assert_int_equal(fx.nresp, NCONC);
  for (int i = 0; i < NCONC; i++) {
    assert_status(fx.resp[i], 200);
    assert_string_equal(body_of(fx.resp[i]),
                        i % 2 == 0 ? "# HELP t_total T.\n# TYPE t_total counter\nt_total 7\n"
                                   : "ok\n");
  }
  free_results(&fx);
}

static void client_limits(fixture_t *fx) {
  int a = connect_to(fx->port), b = connect_to(fx->port);
  usleep(50000);                     /* both accepted */
  int c = connect_to(fx->port);      /* the third is over the limit of 2 */
  fx->resp[fx->nresp++] = read_all(c); /* 0: closed without a response */
  close(c);
  send_all(a, "GET /healthz HTTP/1.1\r\n\r\n", 25);
  fx->resp[fx->nresp++] = read_all(a); /* 1: served */
  close(a);
  double t0 = now_ms();
  fx->resp[fx->nresp++] = read_all(b); /* 2: idle, closed by the timeout */
  fx->elapsed_ms[2] = now_ms() - t0;
  close(b);
}

static void test_http_limits_connections_and_times_out_idle_ones(void **state) {
  fixture_t fx;
  http_options_t opts = {.max_connections = 2, .idle_timeout_ms = 300};
  run(&fx, &opts, client_limits);
  assert_string_equal(fx.resp[0], "");
  assert_status(fx.resp[1], 200);
  assert_string_equal(fx.resp[2], "");
  assert_true(fx.elapsed_ms[2] < 2000); /* well before the client's 5 s timeout */
  free_results(&fx);
}

/* ---- start-up errors ---------------------------------------------------- */

static void test_http_reports_bad_host_and_busy_port(void **state) {
  uv_loop_t loop;
  metrics_t *reg;
  http_server_t *srv = NULL, *srv2 = NULL;
  char err[256] = "";
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(metrics_new(&reg), 0);
  http_options_t bad = {.host = "localhost.invalid"};
  assert_int_equal(http_server_start(&loop, &bad, reg, NULL, NULL, &srv, err, sizeof err),
                   IX_EINVAL);
  assert_null(srv);
  assert_non_null(strstr(err, "localhost.invalid"));
  http_options_t range = {.port = 70000};
  assert_int_equal(http_server_start(&loop, &range, reg, NULL, NULL, &srv, err, sizeof err),
                   IX_EINVAL);

  assert_int_equal(http_server_start(&loop, NULL, reg, NULL, NULL, &srv, err, sizeof err), 0);
  http_options_t same = {.port = http_server_port(srv)};
  assert_int_equal(http_server_start(&loop, &same, reg, NULL, NULL, &srv2, err, sizeof err),
                   IX_ESYS);
  assert_null(srv2);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", same.port);
  assert_non_null(strstr(err, want));

  /* IPv6 loopback with an ephemeral port */
  http_options_t v6 = {.host = "::1"};
  int rc = http_server_start(&loop, &v6, reg, NULL, NULL, &srv2, err, sizeof err);
  if (rc == 0) {
    assert_true(http_server_port(srv2) > 0);
    http_server_close(srv2, NULL, NULL);
  } else {
    print_message("note: no IPv6 loopback here (%s)\n", err);
  }
  int closed = 0;
  http_server_close(srv, on_server_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
  metrics_destroy(reg);
}

static int parse(const char *text, http_request_t *rq) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", text);
  return http_parse_request(buf, strlen(buf), rq);
}

static void test_http_parse_routes_and_user_ids(void **unused) {
  http_request_t rq;
  assert_int_equal(parse("GET /metrics HTTP/1.1\r\n\r\n", &rq), 0);
  assert_int_equal(rq.route, HTTP_ROUTE_METRICS);
  assert_int_equal(parse("HEAD /healthz?x=1 HTTP/1.0\r\n\r\n", &rq), 0);
  assert_int_equal(rq.route, HTTP_ROUTE_HEALTH);
  assert_int_equal(rq.head_only, 1);
  assert_int_equal(parse("GET /v1/users/0 HTTP/1.1\r\n\r\n", &rq), 0);
  assert_int_equal(rq.route, HTTP_ROUTE_USER);
  assert_int_equal(rq.user_id, 0);
  assert_int_equal(parse("GET /v1/users/18446744073709551615?f=1 HTTP/1.1\r\n\r\n", &rq), 0);
  assert_true(rq.user_id == UINT64_MAX);
  assert_int_equal(parse("GET /v1/users/1017 HTTP/1.1\r\nHost: x\r\n\r\n", &rq), 0);
  assert_int_equal(rq.user_id, 1017);
  /* ids that are not a decimal number below 2^64 */
  const char *bad[] = {"/v1/users/18446744073709551616", "/v1/users/99999999999999999999",
                       "/v1/users/123456789012345678901", "/v1/users/-1", "/v1/users/+1",
                       "/v1/users/01", "/v1/users/1a", "/v1/users/1/", "/v1/users/%31"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char req[128];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", bad[i]);
    if (parse(req, &rq) != 400) fail_msg("%s not refused", bad[i]);
  }
  assert_int_equal(parse("GET /v1/users/ HTTP/1.1\r\n\r\n", &rq), 404);
  assert_int_equal(parse("GET /v1/users HTTP/1.1\r\n\r\n", &rq), 404);
  assert_int_equal(parse("GET /v2/users/1 HTTP/1.1\r\n\r\n", &rq), 404);
  assert_int_equal(parse("POST /v1/users/1 HTTP/1.1\r\n\r\n", &rq), 405);
  assert_int_equal(parse("GET /v1/users/1 HTTP/2\r\n\r\n", &rq), 400);
  assert_int_equal(parse("GET  /v1/users/1 HTTP/1.1\r\n\r\n", &rq), 400);
  assert_int_equal(parse("no line end", &rq), 400);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_http_parse_routes_and_user_ids),
      cmocka_unit_test(test_http_serves_metrics_healthz_404_405),
      cmocka_unit_test(test_http_handles_split_malformed_and_oversized_requests),
      cmocka_unit_test(test_http_serves_many_concurrent_connections),
      cmocka_unit_test(test_http_limits_connections_and_times_out_idle_ones),
      cmocka_unit_test(test_http_reports_bad_host_and_busy_port),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
