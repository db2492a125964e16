/* The Redis sink: each user's latest prediction as one Redis hash, written
 * pipelined on the daemon's libuv loop through hiredis's libuv adapter.
 *
 * Layout (docs/FORMATS.md, "Redis"): key <prefix><user>, a hash with
 *   v  the prediction, encoded as on the output topic (msgpack or JSON)
 *   p  the input partition of the event it answers
 *   o  that event's input offset
 * A feed reads it in one round trip: HGET <prefix><user> v.
 * Writes go through a Lua script (EVALSHA) that refuses a write whose offset
 * is older than the stored one of the same partition, so an older prediction
 * never overwrites a newer one, whatever the order writes arrive in
 * (resends after a reconnect, replays after a restart). The key expires ttl
 * after its last write.
 *
 * Every write is kept until Redis answers it, and resent after a reconnect;
 * the sink reconnects by itself with exponential backoff. The caller learns
 * of each finished write through on_ack and bounds the backlog by pausing
 * its input when rsink_backlog() reaches its limit. Loop thread only. */
#ifndef IX_SINK_REDIS_H
#define IX_SINK_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct rsink rsink_t;

typedef struct {
  const char *host;          /* IPv4/IPv6 address or name; borrowed during rsink_new */
  int port;
  int db;                    /* SELECT db when not 0 */
  const char *password;      /* AUTH password, or NULL */
  const char *prefix;        /* key prefix, e.g. "interestd:user:" */
  int64_t ttl_ms;            /* key expiry after its last write; 0 = none */
  uint32_t backoff_min_ms;   /* first reconnect delay (default 100) */
  uint32_t backoff_max_ms;   /* largest reconnect delay (default 5000) */
  uint32_t timeout_ms;       /* connect or oldest reply overdue: reconnect (default 5000) */
  uint32_t max_inflight;     /* writes sent and unanswered on the connection (default 4096) */
} rsink_conf_t;

/* One write finished: Redis stored it (stale=0) or kept a newer one
 * (stale=1). latency_ns is from the write's last send to its reply. */
typedef void (*rsink_ack_fn)(void *ctx, uint64_t opaque, int stale, uint64_t latency_ns);

typedef struct {
  int up;                    /* connected, authenticated, script loaded */
  uint64_t written;          /* writes Redis stored */
  uint64_t stale;            /* writes Redis refused as older than the stored value */
  uint64_t failed;           /* error replies and writes lost to a dropped connection (resent) */
  uint64_t reconnects;       /* connection attempts after the first */
  uint64_t backlog;          /* writes not yet answered (queued or in flight) */
  char last_error[128];      /* the last connection or reply error, "" if none yet */
} rsink_stats_t;

/* Creates the sink and starts connecting on loop. Returns 0, or IX_ECONFIG /
 * IX_ENOMEM with errstr filled. Free with rsink_destroy(). */
int rsink_new(uv_loop_t *loop, const rsink_conf_t *conf, rsink_ack_fn on_ack, void *ctx,
              rsink_t **out, char *errstr, size_t errstr_size);

/* Queues user's latest value (copied) answering input (partition, offset);
 * opaque comes back in on_ack. Returns 0 or IX_ENOMEM. Never refuses for a
 * full backlog: the caller bounds it (rsink_backlog). */
int rsink_write(rsink_t *s, const char *user, size_t user_len, const void *value,
                size_t value_len, int32_t partition, int64_t offset, uint64_t opaque);

/* Serves the connection for up to timeout_ms without the loop (for a
 * caller that must wait inside a loop callback, e.g. a rebalance): sends,
 * reads replies, calls on_ack. Reconnects do not happen here. */
void rsink_poll(rsink_t *s, int timeout_ms);

/* Writes queued or in flight (not yet answered). */
uint64_t rsink_backlog(const rsink_t *s);

/* 1 when connected and ready to write. */
int rsink_up(const rsink_t *s);

void rsink_get_stats(const rsink_t *s, rsink_stats_t *out);

/* Closes the connection and its handles (they finish on the loop's next
 * turns; run the loop until it is idle before freeing it). Unanswered writes
 * are dropped without on_ack. Accepts NULL. */
void rsink_destroy(rsink_t *s);

#endif
