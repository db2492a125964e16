/* The Redis sink (sink/redis.h): a ring of writes in input order, sent
 * pipelined on one hiredis async connection driven by the libuv loop, each
 * kept until Redis answers it; a dropped connection requeues what was in
 * flight and reconnects with backoff; a watchdog bounds connects and
 * replies. */
#include "sink/redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "sink/redis_uv.h"

/* KEYS[1] user key; ARGV: value, partition, offset, ttl ms. Refuses (0) a
 * write older than the stored one of the same partition; equal offsets
 * rewrite (a replayed event gives the same prediction). */
static const char WRITE_SCRIPT[] =
    "local cur = redis.call('HMGET', KEYS[1], 'p', 'o')\n"
    "if cur[1] == ARGV[2] and cur[2] and tonumber(cur[2]) > tonumber(ARGV[3]) then\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'v', ARGV[1], 'p', ARGV[2], 'o', ARGV[3])\n"
    "if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end\n"
    "return 1\n";

enum { W_QUEUED = 0, W_SENT, W_DONE };

typedef struct {
  uint64_t opaque;
  int64_t offset;
  int32_t partition;
  uint8_t state;
  uint64_t sent_ns;
  uint32_t key_len, value_len;
  char *buf; /* key then value */
} write_t;

typedef enum { C_DOWN = 0, C_CONNECTING, C_UP } conn_state_t;

struct rsink {
  uv_loop_t *loop;
  char *host, *password, *prefix;
  size_t prefix_len;
  int port, db;
  int64_t ttl_ms;
  uint32_t backoff_min, backoff_max, timeout_ms, max_inflight;
  rsink_ack_fn on_ack;
  void *ctx;

  redisAsyncContext *ac;
  conn_state_t state;
  int setup_failed; /* the current connection's AUTH/SELECT/SCRIPT LOAD was refused */
  char sha[41];
  uint32_t backoff;
  uint64_t attempt_ns;  /* when the current connect began */
  uint64_t progress_ns; /* last reply, or first send into an idle pipeline */
  uint32_t failures;    /* consecutive failed attempts */
  uint64_t attempts;

  write_t *ring;
  uint64_t cap, head, count; /* ring[(head + i) & (cap - 1)], i < count */
  uint64_t head_seq;         /* sequence number of ring[head] */
  uint64_t first_queued;     /* index (from head) of the first W_QUEUED write */
  uint32_t inflight;

  uv_timer_t reconnect_timer, watchdog;
  int closing, handles_open;
  rsink_stats_t st;
};

static write_t *at(rsink_t *s, uint64_t i) { return &s->ring[(s->head + i) & (s->cap - 1)]; }

static void set_error(rsink_t *s, const char *fmt, const char *detail) {
  snprintf(s->st.last_error, sizeof s->st.last_error, fmt, detail ? detail : "");
}

/* ---------------------------------------------------------------- sending */

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata);

static void flush(rsink_t *s) {
  if (s->state != C_UP || !s->ac) return;
  char part[16], off[24], ttl[24];
  snprintf(ttl, sizeof ttl, "%" PRId64, s->ttl_ms);
  uint64_t now = ix_mono_ns();
  while (s->first_queued < s->count && s->inflight < s->max_inflight) {
    uint64_t i = s->first_queued++;
    write_t *w = at(s, i);
    if (w->state != W_QUEUED) continue;
    snprintf(part, sizeof part, "%" PRId32, w->partition);
    snprintf(off, sizeof off, "%" PRId64, w->offset);
    const char *argv[8] = {"EVALSHA", s->sha, "1", w->buf, w->buf + w->key_len, part, off, ttl};
    size_t lens[8] = {7, 40, 1, w->key_len, w->value_len, strlen(part), strlen(off), strlen(ttl)};
    if (redisAsyncCommandArgv(s->ac, reply_cb, (void *)(uintptr_t)(s->head_seq + i), 8, argv,
                              lens) != REDIS_OK) {
      s->first_queued = i; /* disconnecting: sent again after the reconnect */
      return;
    }
    if (s->inflight++ == 0) s->progress_ns = now;
    w->state = W_SENT;
    w->sent_ns = now;
  }
}

static void pop_done(rsink_t *s) {
  while (s->count && at(s, 0)->state == W_DONE) {
    free(at(s, 0)->buf);
    s->head = (s->head + 1) & (s->cap - 1);
    s->head_seq++;
    s->count--;
    if (s->first_queued) s->first_queued--;
  }
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata) {
  rsink_t *s = ac->data;
  redisReply *r = reply;
  if (!r || !s || ac != s->ac) return; /* connection going away: requeued in conn_lost */
  uint64_t i = (uint64_t)(uintptr_t)privdata - s->head_seq;
  if (i >= s->count) return;
  write_t *w = at(s, i);
  if (w->state != W_SENT) return;
  s->inflight--;
  uint64_t now = ix_mono_ns();
  s->progress_ns = now;
  if (r->type != REDIS_REPLY_INTEGER) {
    /* OOM, READONLY after a failover, LOADING, NOSCRIPT after SCRIPT FLUSH:
     * drop the connection and start over from the oldest unanswered write
     * (the script refuses whatever would now be stale) */
    s->st.failed++;
    w->state = W_QUEUED;
    if (i < s->first_queued) s->first_queued = i;
    set_error(s, "write refused: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    LOG_WARN("redis", "%s; reconnecting to write again", s->st.last_error);
    redisAsyncDisconnect(ac);
    return;
  }
  int stale = r->integer == 0;
  w->state = W_DONE;
  uint64_t opaque = w->opaque, lat = now - w->sent_ns;
  if (stale) s->st.stale++;
  else s->st.written++;
  pop_done(s);
  s->on_ack(s->ctx, opaque, stale, lat);
  if (s->inflight <= s->max_inflight / 2) flush(s);
}

/* ---------------------------------------------------------------- connection */

static void connect_now(rsink_t *s);

static void reconnect_cb(uv_timer_t *t) { connect_now(t->data); }

/* The connection is gone (s->ac already NULL): requeue what was in flight,
 * try again after the backoff. */
static void conn_lost(rsink_t *s) {
  int was_up = s->state == C_UP;
  s->state = C_DOWN;
  s->inflight = 0;
  uint64_t requeued = 0;
  for (uint64_t i = 0; i < s->count; i++) {
    write_t *w = at(s, i);
    if (w->state == W_SENT) {
      w->state = W_QUEUED;
      requeued++;
      if (i < s->first_queued) s->first_queued = i;
    }
  }
  s->st.failed += requeued;
  if (s->closing) return;
  s->failures++;
  uint32_t delay = s->backoff;
  s->backoff = s->backoff * 2 > s->backoff_max ? s->backoff_max : s->backoff * 2;
  if (was_up || s->failures <= 8 || s->failures % 20 == 0)
    LOG_WARN("redis", "%s %s:%d: %s; %" PRIu64 " writes waiting (%" PRIu64
             " to send again); retrying in %u ms",
             was_up ? "lost the connection to" : "cannot reach", s->host, s->port,
             s->st.last_error, s->count, requeued, delay);
  uv_timer_start(&s->reconnect_timer, reconnect_cb, delay, 0);
}

static void connect_cb(const redisAsyncContext *ac, int status) {
  rsink_t *s = ac->data;
  if (!s || ac != s->ac || status == REDIS_OK) return;
  set_error(s, "connect failed: %s", ac->errstr);
  s->ac = NULL; /* hiredis frees it after this callback */
  conn_lost(s);
}

static void disconnect_cb(const redisAsyncContext *ac, int status) {
  rsink_t *s = ac->data;
  if (!s || ac != s->ac) return;
  if (status != REDIS_OK) set_error(s, "%s", ac->errstr);
  else if (!s->st.last_error[0]) set_error(s, "%s", "connection closed");
  s->ac = NULL;
  conn_lost(s);
}

static void setup_cb(redisAsyncContext *ac, void *reply, void *privdata) {
  rsink_t *s = ac->data;
  redisReply *r = reply;
  if (!r || !s || ac != s->ac) return;
  const char *what = privdata;
  if (s->setup_failed) return;
  if (r->type == REDIS_REPLY_ERROR) {
    /* the first refusal says why (a wrong password makes the rest NOAUTH) */
    char msg[96];
    snprintf(msg, sizeof msg, "%s failed: %.80s", what, r->str);
    set_error(s, "%s", msg);
    s->setup_failed = 1;
    redisAsyncDisconnect(ac);
    return;
  }
  if (strcmp(what, "SCRIPT LOAD") != 0) return;
  if (r->type != REDIS_REPLY_STRING || r->len != 40) {
    set_error(s, "%s", "SCRIPT LOAD gave no SHA1");
    redisAsyncDisconnect(ac);
    return;
  }
  memcpy(s->sha, r->str, 40);
  s->sha[40] = '\0';
  s->state = C_UP;
  s->backoff = s->backoff_min;
  LOG_INFO("redis", "connected to %s:%d (db %d)%s; %" PRIu64 " writes waiting", s->host, s->port,
           s->db, s->failures ? " again" : "", s->count);
  s->failures = 0;
  s->st.last_error[0] = '\0';
  flush(s);
}

static void connect_now(rsink_t *s) {
  if (s->closing || s->ac) return;
  if (s->attempts++) s->st.reconnects++;
  s->attempt_ns = ix_mono_ns();
  redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
  if (!ac || ac->err) {
    set_error(s, "connect failed: %s", ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    conn_lost(s);
    return;
  }
  s->setup_failed = 0;
  if (rsink_uv_attach(ac, s->loop) != REDIS_OK) {
    set_error(s, "%s", "cannot attach to the loop");
    redisAsyncFree(ac);
    conn_lost(s);
    return;
  }
  ac->data = s;
  s->ac = ac;
  s->state = C_CONNECTING;
  redisAsyncSetConnectCallback(ac, connect_cb);
  redisAsyncSetDisconnectCallback(ac, disconnect_cb);
  /* pipelined behind the connect: AUTH, SELECT, SCRIPT LOAD; writes start
   * when SCRIPT LOAD answers */
  if (s->password) {
    const char *argv[2] = {"AUTH", s->password};
    size_t lens[2] = {4, strlen(s->password)};
    redisAsyncCommandArgv(ac, setup_cb, "AUTH", 2, argv, lens);
  }
  if (s->db) redisAsyncCommand(ac, setup_cb, "SELECT", "SELECT %d", s->db);
  const char *argv[3] = {"SCRIPT", "LOAD", WRITE_SCRIPT};
  size_t lens[3] = {6, 4, sizeof WRITE_SCRIPT - 1};
  redisAsyncCommandArgv(ac, setup_cb, "SCRIPT LOAD", 3, argv, lens);
}

/* Drops a connection that takes too long to come up or to answer. */
static void watchdog_cb(uv_timer_t *t) {
  rsink_t *s = t->data;
  if (!s->ac) return;
  uint64_t now = ix_mono_ns(), limit = (uint64_t)s->timeout_ms * 1000000u;
  const char *why = NULL;
  if (s->state == C_CONNECTING && now - s->attempt_ns > limit) why = "no answer while connecting";
  else if (s->state == C_UP && s->inflight && now - s->progress_ns > limit)
    why = "no reply within the timeout";
  if (!why) return;
  set_error(s, "%s", why);
  redisAsyncContext *ac = s->ac;
  s->ac = NULL;
  conn_lost(s);
  redisAsyncFree(ac); /* its callbacks see s->ac != ac and do nothing */
}

/* ---------------------------------------------------------------- public */

int rsink_write(rsink_t *s, const char *user, size_t user_len, const void *value,
                size_t value_len, int32_t partition, int64_t offset, uint64_t opaque) {
  if (s->count == s->cap) {
    uint64_t cap = s->cap ? s->cap * 2 : 1024;
    write_t *r = malloc(cap * sizeof *r);
    if (!r) return IX_ENOMEM;
    for (uint64_t i = 0; i < s->count; i++) r[i] = *at(s, i);
    free(s->ring);
    s->ring = r;
    s->cap = cap;
    s->head = 0;
  }
  char *buf = malloc(s->prefix_len + user_len + value_len + 1);
  if (!buf) return IX_ENOMEM;
  memcpy(buf, s->prefix, s->prefix_len);
  memcpy(buf + s->prefix_len, user, user_len);
  memcpy(buf + s->prefix_len + user_len, value, value_len);
  write_t *w = at(s, s->count++);
  *w = (write_t){.opaque = opaque, .offset = offset, .partition = partition, .state = W_QUEUED,
                 .key_len = (uint32_t)(s->prefix_len + user_len),
                 .value_len = (uint32_t)value_len, .buf = buf};
  flush(s);
  return 0;
}

void rsink_poll(rsink_t *s, int timeout_ms) {
  if (!s->ac) {
    if (timeout_ms > 0) poll(NULL, 0, timeout_ms);
    return;
  }
  int ev = rsink_uv_events(s->ac);
  struct pollfd pfd = {.fd = s->ac->c.fd,
                       .events = (short)(((ev & UV_READABLE) ? POLLIN : 0) |
                                         ((ev & UV_WRITABLE) ? POLLOUT : 0))};
  if (poll(&pfd, 1, timeout_ms) <= 0) return;
  /* an error or hang-up: let hiredis meet it on read or write */
  if (s->ac && (pfd.revents & (POLLIN | POLLERR | POLLHUP))) redisAsyncHandleRead(s->ac);
  if (s->ac && (pfd.revents & (POLLOUT | POLLERR))) redisAsyncHandleWrite(s->ac);
}

uint64_t rsink_backlog(const rsink_t *s) { return s ? s->count : 0; }
int rsink_up(const rsink_t *s) { return s && s->state == C_UP; }

void rsink_get_stats(const rsink_t *s, rsink_stats_t *out) {
  *out = s->st;
  out->up = s->state == C_UP;
  out->backlog = s->count;
}

int rsink_new(uv_loop_t *loop, const rsink_conf_t *conf, rsink_ack_fn on_ack, void *ctx,
              rsink_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  if (!conf->host || !*conf->host || conf->port <= 0 || conf->port > 65535 || conf->db < 0 ||
      conf->ttl_ms < 0 || !on_ack) {
    snprintf(errstr, errstr_size, "redis: needs an address host:port with a port in 1..65535, "
             "a database >= 0 and a TTL >= 0");
    return IX_ECONFIG;
  }
  rsink_t *s = calloc(1, sizeof *s);
  if (!s) goto nomem;
  s->loop = loop;
  s->host = strdup(conf->host);
  s->prefix = strdup(conf->prefix ? conf->prefix : "");
  s->password = conf->password && *conf->password ? strdup(conf->password) : NULL;
  if (!s->host || !s->prefix || (conf->password && *conf->password && !s->password)) goto nomem;
  s->prefix_len = strlen(s->prefix);
  s->port = conf->port;
  s->db = conf->db;
  s->ttl_ms = conf->ttl_ms;
  s->backoff_min = conf->backoff_min_ms ? conf->backoff_min_ms : 100;
  s->backoff_max = conf->backoff_max_ms ? conf->backoff_max_ms : 5000;
  if (s->backoff_max < s->backoff_min) s->backoff_max = s->backoff_min;
  s->backoff = s->backoff_min;
  s->timeout_ms = conf->timeout_ms ? conf->timeout_ms : 5000;
  s->max_inflight = conf->max_inflight ? conf->max_inflight : 4096;
  s->on_ack = on_ack;
  s->ctx = ctx;
  uv_timer_init(loop, &s->reconnect_timer);
  uv_timer_init(loop, &s->watchdog);
  s->reconnect_timer.data = s->watchdog.data = s;
  s->handles_open = 2;
  uint32_t tick = s->timeout_ms / 4 ? s->timeout_ms / 4 : 1;
  uv_timer_start(&s->watchdog, watchdog_cb, tick, tick);
  connect_now(s);
  *out = s;
  return 0;
nomem:
  if (s) {
    free(s->host);
    free(s->prefix);
    free(s->password);
    free(s);
  }
  snprintf(errstr, errstr_size, "redis: out of memory");
  return IX_ENOMEM;
}

static void handle_closed(uv_handle_t *h) {
  rsink_t *s = h->data;
  if (--s->handles_open) return;
  free(s->host);
  free(s->prefix);
  free(s->password);
  free(s);
}

void rsink_destroy(rsink_t *s) {
  if (!s) return;
  s->closing = 1;
  if (s->ac) {
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    redisAsyncFree(ac);
  }
  for (uint64_t i = 0; i < s->count; i++) free(at(s, i)->buf);
  free(s->ring);
  s->ring = NULL;
  s->count = 0;
  uv_close((uv_handle_t *)&s->reconnect_timer, handle_closed);
  uv_close((uv_handle_t *)&s->watchdog, handle_closed);
}
