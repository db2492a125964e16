/* sink/redis against a real redis-server (Debian's) started here on a free
 * loopback port: writes land as documented, stale writes are refused, a
 * killed and restarted server loses nothing, a server that never comes
 * leaves every write waiting and says why, AUTH and SELECT work. Without
 * redis-server on PATH every case is skipped with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/clock.h"
#include "common/err.h"
#include "sink/redis.h"
#include "../integration/redis_harness.h"

static int have_redis(void) { return r_have_redis(); }
static int free_port(void) { return r_free_port(); }
static pid_t redis_start(int port, const char *password) {
  pid_t pid = r_start(port, NULL, password);
  if (pid < 0) fail_msg("redis-server did not start on port %d", port);
  return pid;
}
static void redis_kill(pid_t pid) { r_kill(pid); }

static redisContext *client(int port, const char *password, int db) {
  redisContext *c = redisConnect("127.0.0.1", port);
  assert_non_null(c);
  assert_int_equal(c->err, 0);
  if (password) freeReplyObject(redisCommand(c, "AUTH %s", password));
  if (db) freeReplyObject(redisCommand(c, "SELECT %d", db));
  return c;
}

/* ---------------------------------------------------------------- harness */

#define MAX_ACKS 200000
typedef struct {
  uint64_t acks, stale;
  uint8_t seen[MAX_ACKS];
  int dup;
} acks_t;

static void on_ack(void *ctx, uint64_t opaque, int stale, uint64_t lat) {
  acks_t *a = ctx;
  if (opaque < MAX_ACKS) {
    if (a->seen[opaque]) a->dup++;
    a->seen[opaque] = 1;
  }
  a->acks++;
  a->stale += stale;
}

static void stop_cb(uv_timer_t *t) { uv_stop(t->loop); }

/* runs the loop for ms milliseconds */
static void run_for(uv_loop_t *loop, uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, stop_cb, ms, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* runs the loop until acks reach n or timeout_ms passes */
static void run_until(uv_loop_t *loop, acks_t *a, uint64_t n, uint64_t timeout_ms) {
  uint64_t end = ix_mono_ms() + timeout_ms;
  while (a->acks < n && ix_mono_ms() < end) run_for(loop, 20);
}

static void close_loop(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static rsink_conf_t conf_for(int port) {
  return (rsink_conf_t){.host = "127.0.0.1", .port = port, .prefix = "ix:u:", .ttl_ms = 600000,
                        .backoff_min_ms = 20, .backoff_max_ms = 200, .timeout_ms = 2000};
}

static void value_of(char *out, size_t n, int user, int64_t offset) {
  snprintf(out, n, "pred-of-%d-at-%lld", user, (long long)offset);
}

/* Writes user u's prediction for the event at offset (value_of) and notes
 * it as the user's last write. */
static void write_pred(rsink_t *s, int u, int32_t partition, int64_t offset, int64_t *last) {
  char user[16], v[64];
  snprintf(user, sizeof user, "%d", u);
  value_of(v, sizeof v, u, offset);
  assert_int_equal(rsink_write(s, user, strlen(user), v, strlen(v), partition, offset,
                               (uint64_t)offset), 0);
  last[u] = offset;
}

/* Every user with a last write (last[u] >= 0) holds exactly that value in
 * redis; a user redis does not hold fails unless allow_missing (a server
 * restarted empty). Returns how many users were checked. */
static int check_latest(redisContext *c, int users, const int64_t *last, int allow_missing) {
  int checked = 0;
  for (int u = 0; u < users; u++) {
    if (last[u] < 0) continue;
    redisReply *r = redisCommand(c, "HGET ix:u:%d v", u);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STRING) {
      if (!allow_missing) fail_msg("user %d: redis holds no value, last written %lld", u,
                                   (long long)last[u]);
      freeReplyObject(r);
      continue;
    }
    char want[64];
    value_of(want, sizeof want, u, last[u]);
    if (strcmp(r->str, want) != 0) fail_msg("user %d: redis has %s, last written %s", u, r->str, want);
    freeReplyObject(r);
    checked++;
  }
  return checked;
}

/* One case's world: a redis-server on a free port (or none yet), a loop, the
 * acknowledgements, and the sink under test with conf_for(port). */
typedef struct {
  int port;
  pid_t pid; /* 0: no server */
  uv_loop_t loop;
  acks_t *a;
  rsink_conf_t conf;
  rsink_t *s;
} fx_t;

/* Starts the server (unless !server; password may be NULL) and the loop. */
static void fx_begin(fx_t *f, int server, const char *password) {
  memset(f, 0, sizeof *f);
  f->port = free_port();
  if (server) f->pid = redis_start(f->port, password);
  uv_loop_init(&f->loop);
  f->a = calloc(1, sizeof *f->a);
  assert_non_null(f->a);
  f->conf = conf_for(f->port);
}

/* A sink with f->conf (the previous one, if any, destroyed first). */
static void fx_sink(fx_t *f) {
  char err[256];
  rsink_destroy(f->s);
  f->s = NULL;
  if (rsink_new(&f->loop, &f->conf, on_ack, f->a, &f->s, err, sizeof err) != 0)
    fail_msg("rsink_new: %s", err);
}

/* Destroys the sink, closes the loop (nothing left open), stops the server. */
static void fx_end(fx_t *f) {
  rsink_destroy(f->s);
  close_loop(&f->loop);
  redis_kill(f->pid);
  free(f->a);
}

/* ---------------------------------------------------------------- cases */

static void test_writes_layout_ttl(void **st) {
  if (!have_redis()) skip();
  fx_t f;
  fx_begin(&f, 1, NULL);
  fx_sink(&f);
  int64_t last[100];
  for (int u = 0; u < 100; u++) last[u] = -1;
  for (int i = 0; i < 5000; i++) write_pred(f.s, (i * 7) % 100, 3, i, last);
  run_until(&f.loop, f.a, 5000, 10000);
  assert_int_equal(f.a->acks, 5000);
  assert_int_equal(f.a->stale, 0);
  assert_int_equal(f.a->dup, 0);
  rsink_stats_t stats;
  rsink_get_stats(f.s, &stats);
  assert_int_equal(stats.up, 1);
  assert_int_equal(stats.written, 5000);
  assert_int_equal(stats.backlog, 0);
  redisContext *c = client(f.port, NULL, 0);
  assert_int_equal(check_latest(c, 100, last, 0), 100);
  redisReply *r = redisCommand(c, "HMGET ix:u:42 p o");
  assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
  assert_string_equal(r->element[0]->str, "3");
  char off[24];
  snprintf(off, sizeof off, "%lld", (long long)last[42]);
  assert_string_equal(r->element[1]->str, off);
  freeReplyObject(r);
  r = redisCommand(c, "PTTL ix:u:42");
  assert_true(r->integer > 590000 && r->integer <= 600000);
  freeReplyObject(r);
  redisFree(c);
  fx_end(&f);
}

static void test_stale_refused(void **st) {
  if (!have_redis()) skip();
  fx_t f;
  fx_begin(&f, 1, NULL);
  fx_sink(&f);
  assert_int_equal(rsink_write(f.s, "7", 1, "new", 3, 1, 100, 0), 0);
  assert_int_equal(rsink_write(f.s, "7", 1, "old", 3, 1, 99, 1), 0);     /* stale: refused */
  assert_int_equal(rsink_write(f.s, "7", 1, "same", 4, 1, 100, 2), 0);   /* same event: rewritten */
  run_until(&f.loop, f.a, 3, 5000);
  assert_int_equal(f.a->acks, 3);
  assert_int_equal(f.a->stale, 1);
  redisContext *c = client(f.port, NULL, 0);
  redisReply *r = redisCommand(c, "HGET ix:u:7 v");
  assert_string_equal(r->str, "same");
  freeReplyObject(r);
  /* the user moved to another partition (repartitioned topic): accepted */
  assert_int_equal(rsink_write(f.s, "7", 1, "moved", 5, 2, 5, 3), 0);
  run_until(&f.loop, f.a, 4, 5000);
  assert_int_equal(f.a->stale, 1);
  r = redisCommand(c, "HGET ix:u:7 v");
  assert_string_equal(r->str, "moved");
  freeReplyObject(r);
  redisFree(c);
  fx_end(&f);
}

/* A stream of writes paced by a timer; the server is killed part-way and
 * restarted 300 ms later on the same port (empty: --save ''). Every write
 * is answered exactly once and every user's value is its last write. */
typedef struct {
  fx_t *f;
  int next, total, users;
  int64_t *last;
  uint64_t killed_at, restart_at;
  uint64_t backlog_while_down;
  int client_kill; /* drop the sink's connection (CLIENT KILL) instead of the server */
} stream_t;

static void stream_cb(uv_timer_t *t) {
  stream_t *x = t->data;
  fx_t *f = x->f;
  for (int k = 0; k < 200 && x->next < x->total; k++, x->next++)
    write_pred(f->s, (int)(((uint64_t)x->next * 2654435761u) % (uint64_t)x->users), 0, x->next,
               x->last);
  if (x->client_kill) {
    if (!x->killed_at && x->next >= x->total / 3) {
      redisContext *c = client(f->port, NULL, 0);
      freeReplyObject(redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes"));
      redisFree(c);
      x->killed_at = x->restart_at = ix_mono_ms();
    }
    if (x->next >= x->total) uv_timer_stop(t);
    return;
  }
  if (!x->killed_at && x->next >= x->total / 3) {
    redis_kill(f->pid);
    x->killed_at = ix_mono_ms();
  }
  if (x->killed_at && !x->restart_at && ix_mono_ms() - x->killed_at >= 300) {
    x->backlog_while_down = rsink_backlog(f->s);
    assert_false(rsink_up(f->s));
    f->pid = redis_start(f->port, NULL);
    x->restart_at = ix_mono_ms();
  }
  if (x->next >= x->total && x->restart_at) uv_timer_stop(t);
}

static void run_stream(int client_kill) {
  if (!have_redis()) skip();
  fx_t f;
  fx_begin(&f, 1, NULL);
  fx_sink(&f);
  stream_t x = {.f = &f, .total = 30000, .users = 2000, .client_kill = client_kill};
  x.last = malloc(sizeof(int64_t) * (size_t)x.users);
  for (int u = 0; u < x.users; u++) x.last[u] = -1;
  uv_timer_t t;
  uv_timer_init(&f.loop, &t);
  t.data = &x;
  uv_timer_start(&t, stream_cb, 1, 2);
  run_until(&f.loop, f.a, (uint64_t)x.total, 30000);
  uv_close((uv_handle_t *)&t, NULL);
  assert_int_not_equal(x.killed_at, 0);
  assert_int_not_equal(x.restart_at, 0);
  if (!client_kill) assert_true(x.backlog_while_down > 0);
  assert_int_equal(f.a->acks, (uint64_t)x.total);
  assert_int_equal(f.a->dup, 0);
  for (int i = 0; i < x.total; i++) assert_int_equal(f.a->seen[i], 1);
  rsink_stats_t stats;
  rsink_get_stats(f.s, &stats);
  assert_true(stats.reconnects >= 1);
  assert_int_equal(stats.backlog, 0);
  assert_int_equal(stats.written + stats.stale, (uint64_t)x.total);
  printf("%s: %llu written, %llu stale refusals, %llu resent after a drop, backlog "
         "while down %llu, %llu reconnects\n", client_kill ? "client kill" : "kill/restart", (unsigned long long)stats.written,
         (unsigned long long)stats.stale, (unsigned long long)stats.failed,
         (unsigned long long)x.backlog_while_down, (unsigned long long)stats.reconnects);
  /* the restarted server is empty: the writes before the kill are gone with
   * it; every user written after the restart holds exactly its last value */
  redisContext *c = client(f.port, NULL, 0);
  redisReply *r = redisCommand(c, "DBSIZE");
  assert_true(r->integer > 0);
  freeReplyObject(r);
  assert_true(check_latest(c, x.users, x.last, 1) > x.users / 2);
  redisFree(c);
  fx_end(&f);
  free(x.last);
}

static void test_kill_restart(void **st) { run_stream(0); }

/* the connection drops with writes in flight while the server keeps its
 * data: the resent older writes meet newer values and are refused */
static void test_client_kill(void **st) { run_stream(1); }

static void test_down_for_good(void **st) {
  if (!have_redis()) skip();
  fx_t f;
  fx_begin(&f, 0, NULL); /* nothing listens */
  fx_sink(&f);
  for (int i = 0; i < 1000; i++) assert_int_equal(rsink_write(f.s, "1", 1, "v", 1, 0, i, i), 0);
  run_for(&f.loop, 600);
  assert_int_equal(f.a->acks, 0);
  rsink_stats_t stats;
  rsink_get_stats(f.s, &stats);
  assert_int_equal(stats.up, 0);
  assert_int_equal(stats.backlog, 1000);
  assert_true(stats.reconnects >= 2);
  assert_non_null(strstr(stats.last_error, "connect"));
  /* it comes up later: everything goes through */
  f.pid = redis_start(f.port, NULL);
  run_until(&f.loop, f.a, 1000, 5000);
  assert_int_equal(f.a->acks, 1000);
  fx_end(&f);
}

static void test_auth_select(void **st) {
  if (!have_redis()) skip();
  fx_t f;
  fx_begin(&f, 1, "s3cret");
  /* wrong password: never up, says AUTH */
  f.conf.password = "wrong";
  fx_sink(&f);
  assert_int_equal(rsink_write(f.s, "5", 1, "x", 1, 0, 1, 0), 0);
  run_for(&f.loop, 300);
  rsink_stats_t stats;
  rsink_get_stats(f.s, &stats);
  assert_int_equal(stats.up, 0);
  assert_int_equal(f.a->acks, 0);
  assert_non_null(strstr(stats.last_error, "AUTH"));
  /* right password, database 3 */
  f.conf.password = "s3cret";
  f.conf.db = 3;
  fx_sink(&f);
  assert_int_equal(rsink_write(f.s, "5", 1, "x", 1, 0, 1, 0), 0);
  run_until(&f.loop, f.a, 1, 5000);
  assert_int_equal(f.a->acks, 1);
  redisContext *c = client(f.port, "s3cret", 3);
  redisReply *r = redisCommand(c, "HGET ix:u:5 v");
  assert_string_equal(r->str, "x");
  freeReplyObject(r);
  redisFree(c);
  c = client(f.port, "s3cret", 0);
  r = redisCommand(c, "EXISTS ix:u:5");
  assert_int_equal(r->integer, 0);
  freeReplyObject(r);
  redisFree(c);
  fx_end(&f);
}

static void test_bad_config(void **st) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rsink_conf_t conf = conf_for(0);
  rsink_t *s = (rsink_t *)1;
  char err[256];
  assert_int_equal(rsink_new(&loop, &conf, on_ack, NULL, &s, err, sizeof err), IX_ECONFIG);
  assert_null(s);
  assert_non_null(strstr(err, "port"));
  close_loop(&loop);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (!have_redis()) printf("redis-server is not on PATH: the Redis cases are skipped\n");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_config),      cmocka_unit_test(test_writes_layout_ttl),
      cmocka_unit_test(test_stale_refused),   cmocka_unit_test(test_kill_restart),
      cmocka_unit_test(test_client_kill),     cmocka_unit_test(test_down_for_good),   cmocka_unit_test(test_auth_select),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
