/* The loop: consumer fd -> pipeline -> producer; delivery-report fd ->
 * per-partition in-flight tracking -> offsets stored for commit. Timers for
 * checkpoints, idle expiry and status; signals for reload and shutdown.
 *
 * At-least-once (the rule itself is daemon/inflight.h; the retry backlog
 * daemon/backlog.h): every consumed message gets an in-flight entry in its
 * partition's ring, counting the messages produced for it (prediction, or
 * dead-letter copy). An entry completes when that count drops to zero; the
 * partition's stored offset advances over completed entries only, and (with
 * checkpoints) never past the newest durable checkpoint. A checkpoint is
 * taken at the applied offset without waiting for acknowledgements, and is
 * published (renamed into place) only once every message for the events
 * before its offset is acknowledged. */
#include "daemon/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/partition.h"
#include "core/order.h"
#include "core/pipeline.h"
#include "daemon/backlog.h"
#include "daemon/clog.h"
#include "daemon/standby.h"
#include "daemon/http.h"
#include "daemon/inflight.h"
#include "daemon/loopstat.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/quality.h"
#include "daemon/txn.h"
#include "daemon/warmup.h"
#include "daemon/warmstart.h"
#include "model/model.h"
#include "sink/redis.h"
#include "state/checkpoint.h"
#include "state/store.h"
#include "stream/codec.h"
#include "stream/output.h"
#include "stream/consumer.h"
#include "stream/producer.h"

#ifndef INTERESTD_VERSION
#define INTERESTD_VERSION "0"
#endif

#define DRAIN_ROUNDS 16           /* batches per wake-up before yielding to other handles */
#define WINDOW_BATCHES 4          /* batches taken off the queue at once and ordered oldest first */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define REVOKE_WAIT_MAX_MS 10000  /* bound on finishing a revoked partition's in-flight work */
#define CKPT_SLICE_US 200         /* a snapshot copies users for at most this long... */
#define CLOG_PUMP_MS 20            /* changelog writer: delivery reports and pending checkpoints */
#define CLOG_SLICE_US 500          /* ...encoding a checkpoint: at most this long per pump, */
#define CLOG_BUSY_MS 1             /* ...every this many ms while one is being encoded or handed over */
#define STANDBY_SLICE_US 2000      /* standby copies: apply records for at most this long per pump */
#define CKPT_SLICE_MS 1           /* ...every this many ms (other handles run in between) */
#define WARM_TICK_MS 20           /* model.reload = warm: ceilings, progress, switch check */
#define WARM_SWITCH_WAIT_MS 800   /* the longest a switch waits for the last gap (input paused) */
#define WARM_RETRY_MS 2000        /* serving time between two switch attempts */
#define WARM_START_STALL_MS 30000 /* model.warm_start: give up after this long without progress */

/* ---------------------------------------------------------------- latency */

/* Log-spaced histogram from 1 us: bucket b covers [2^(b/8), 2^((b+1)/8)) us. */
typedef struct {
  uint64_t n[DAEMON_LAT_BUCKETS];
  uint64_t count;
} lathist_t;

static int lat_bucket(double seconds) {
  double us = seconds * 1e6;
  int b = 0;
  if (us > 1.0) {
    int e;
    double m = frexp(us, &e); /* us = m * 2^e, m in [0.5, 1) */
    b = (e - 1) * 8 + (int)((m * 2.0 - 1.0) * 8.0);
    /* linear split of each octave is close enough to log for p50/p99 */
  }
  if (b < 0) b = 0;
  if (b >= DAEMON_LAT_BUCKETS) b = DAEMON_LAT_BUCKETS - 1;
  return b;
}

/* Counts one observation in bucket b (from lat_bucket) of h. */
static void lat_count(lathist_t *h, int b) {
  h->n[b]++;
  h->count++;
}

static double lat_quantile(const lathist_t *h, double q) {
  if (!h->count) return 0.0;
  uint64_t want = (uint64_t)(q * (double)h->count);
  if (want >= h->count) want = h->count - 1;
  uint64_t acc = 0;
  for (int b = 0; b < DAEMON_LAT_BUCKETS; b++) {
    acc += h->n[b];
    if (acc > want) {
      int e = b / 8 + 1;
      double m = (1.0 + ((b % 8) + 0.5) / 8.0) / 2.0;
      return ldexp(m, e) / 1e6; /* bucket middle */
    }
  }
  return 0.0;
}

/* ---------------------------------------------------------------- types */

/* A partition's lag gauge and where consumption starts when nothing was
 * consumed yet: the restored checkpoint or the committed offset read at
 * assignment; -1 = unknown (then the low watermark, auto.offset.reset =
 * earliest). hi: the high watermark asked at assignment (-1 = unknown),
 * used until the client learns a later one from a fetch, which a paused
 * partition does not make. */
typedef struct {
  metrics_gauge_t *gauge;
  int64_t start;
  int64_t hi;
  metrics_gauge_t *committed; /* interestd_committed_offset{partition} */
  int64_t committed_off;      /* last offset known committed; -1 = unknown */
  int local_behind;           /* mode both: restored from the topic, newer than the local
                               * checkpoint; the next local one is written even with no
                               * new event */
  int swapped;                /* the model changed while p waited for its states: SWAPPED_* */
} lagpart_t;

typedef enum { RUNNING = 0, STOPPING, CLOSING, CLOSED } phase_t;

struct ixd {
  uv_loop_t loop;
  config_t *cfg;
  char *config_path;
  char **overrides;
  size_t n_overrides;
  daemon_prediction_fn on_prediction;
  void (*on_stop)(void *ctx);
  void *ctx;
  int ready_fd;

  model_t *model;
  pipeline_t *pipe;
  consumer_t *consumer;
  producer_t *producer;
  producer_topic_t *out_topic, *dlq_topic;
  ckpt_t *ckpt;
  clog_t *clog;             /* the changelog topic (daemon/clog.h), NULL in local mode */
  int clog_fast;            /* the changelog timer runs every CLOG_BUSY_MS */
  uint64_t standby_pumped_ms;
  txn_t *txn;               /* exactly_once: the transaction cycle (daemon/txn.h); else NULL */
  uv_timer_t txn_timer;     /* commits an open transaction when no batch does */
  int ckpt_deferred;        /* exactly_once: a checkpoint waits for the next commit */
  standby_t *standby;       /* standby copies (daemon/standby.h), NULL without standby_replicas */
  slab_pool_t *slabs;       /* the stores' memory (state/slab_pool.h); outlives every store */
  int pretouch_logged;      /* the end of state.pretouch_mb's pre-touch was logged */
  uint64_t memory_failures_logged; /* the slab pool's failed_takes at the last log line */
  metrics_t *metrics;
  metrics_daemon_t md;
  loopstat_t *loopstat; /* the loop's turns timed (interestd_loop_*) */
  quality_metrics_t qm; /* live quality of the served model (daemon/quality.h) */
  /* model.shadow_path: a candidate scored on the same events with its own
   * states (not checkpointed), every prediction scored, nothing emitted */
  model_t *shadow_model;
  pipeline_t *shadow_pipe;
  quality_metrics_t qm_shadow;
  /* model.reload = warm: the new model warming in the background
   * (daemon/warmup.h); warm_path is its file, to start again after a rebalance */
  warmup_t *warm;
  char *warm_path;
  uv_timer_t warm_timer;
  warmup_metrics_t wm;
  warmstart_metrics_t wsm; /* model.warm_start (daemon/warmstart.h) */
  int64_t max_ts_ms; /* newest input timestamp consumed: the warm-up window's reference */
  uint64_t warm_counted; /* the running warm-up's applied events already in wm.applied */
  uint64_t warm_retry_ms; /* no switch attempt before this (after one that timed out) */
  http_server_t *http;
  notify_t *notify;
  /* the Redis sink ([redis]): a prediction's input entry waits for its
   * write as for its Kafka delivery (one more pending count) */
  rsink_t *redis;
  uv_timer_t redis_timer; /* settles entries the sink's acks completed */
  int redis_timer_armed;
  int redis_paused; /* the last pause was the sink's backlog: 1 Redis slow, 2 Redis down */
  /* GET /v1/users/<id> */
  int32_t input_parts;  /* input topic's partition count, read by the first GET after an
                           assignment; 0 = unknown */
  codec_buf_t http_enc;
  codec_buf_t redis_enc; /* the Redis value when redis.format differs from [output]'s */
  char http_text[256];
  metrics_redis_t rm;

  uv_poll_t consumer_poll, producer_poll, ckpt_poll;
  uv_timer_t kick_timer, batch_timer, retry_timer, ckpt_timer, expire_timer, status_timer,
      stop_timer, ckpt_slice_timer, clog_timer, restore_timer;
  uint64_t restore_backoff_ms; /* the next retry of a restore that could not read (0: none due) */
  uv_signal_t sig_term, sig_int, sig_hup;
  int handle_signals;
  int ckpt_poll_active;

  inflight_t *inflight;     /* the commit rule (daemon/inflight.h) */
  lagpart_t *lag;           /* by partition, while owned */
  int32_t n_lag;
  uint64_t progress_ns;     /* last consumption, assignment or "nothing to consume" (healthz) */
  uint64_t unowned_since_ns; /* owned dropped to 0 then (healthz) */
  uint64_t paused_since_ns;
  uint32_t owned;

  rec_t *win;        /* the window: up to WINDOW_BATCHES batches, oldest first */
  uint64_t *rec_tok; /* in-flight token of each message in the batch being processed */
  order_t *order;    /* the window's ordering scratch */
  size_t batch_cap;  /* batch size the buffers hold (win: WINDOW_BATCHES times it) */
  codec_buf_t enc;
  input_t *input;           /* [input] decoder, borrowed by the pipeline */

  /* clocks shared by the delivery reports of one non-blocking poll
   * (serve_reports): read at its first report, so one read per poll rather
   * than two per message; elsewhere (flush, blocking waits) each report
   * reads its own */
  int ack_cached;
  uint64_t ack_ns;
  int64_t ack_wall_ms;

  backlog_t *backlog;       /* messages waiting to be sent again (daemon/backlog.h) */
  uint64_t outstanding;
  int paused;
  int batch_waiting;

  phase_t phase;
  int ready_sent;
  int exit_code;
  int final_commit_failed; /* the commit while leaving the group at shutdown */
  uint64_t stop_deadline_ms;

  daemon_stats_t st;
  lathist_t lat, e2e, win_lat, win_e2e;
  uint64_t win_delivered_base;
  /* checkpoint in progress */
  int ck_active; /* a snapshot started and not finished (its handles run) */
  int32_t *ck_parts;
  uint16_t *ck_gens;
  size_t ck_n;
  /* the model changed since the last complete checkpoint: every owned
   * partition is checkpointed (its files carry the old fingerprint) */
  int ck_force, ck_forced_snapshot;
};

static void swap_abandon(daemon_t *d, const char *why);
static void swap_restart(daemon_t *d);
static char **kafka_props(const config_t *cfg, char **specific);

/* opaque of a produced message: its input's in-flight token (inflight.h,
 * bits 61..0) | bit 62 truncated dead-letter record | bit 63 dlq */
#define OPAQUE_DLQ (1ull << 63)
#define OPAQUE_TRUNCATED (1ull << 62)

/* ---------------------------------------------------------------- partitions */

static int store_offset_cb(void *ctx, int32_t partition, int64_t next) {
  daemon_t *d = ctx;
  if (d->txn) return 0; /* exactly_once: offsets go in the transaction (daemon/txn.h) */
  return consumer_store_offset(d->consumer, partition, next);
}

/* Pops completed entries of partition and stores its commit offset. */
static void part_advance(daemon_t *d, int32_t partition) {
  inflight_advance(d->inflight, partition, store_offset_cb, d);
}

static void advance_dirty(daemon_t *d) {
  inflight_advance_dirty(d->inflight, store_offset_cb, d);
}

static int owns(const daemon_t *d, int32_t partition) {
  return inflight_part(d->inflight, partition).owned;
}

/* ---------------------------------------------------------------- pause */

/* the owned partitions being served (not those waiting for their state) */
static void owned_list(daemon_t *d, int32_t *out, size_t *n) {
  *n = 0;
  for (int32_t i = 0; i < inflight_partitions(d->inflight); i++)
    if (owns(d, i) && !clog_waiting(d->clog, i)) out[(*n)++] = i;
}

/* Pauses or resumes every owned partition. When the list cannot be
 * allocated nothing changes (logged) and the next pressure check tries
 * again: the flag never claims a state the consumer is not in. */
static void set_paused(daemon_t *d, int paused) {
  if (d->paused == paused) return;
  int32_t *list = malloc(((size_t)inflight_partitions(d->inflight) + 1) * sizeof *list);
  if (!list) {
    LOG_ERROR("daemon", "out of memory %s partitions; trying again at the next delivery report",
              paused ? "pausing" : "resuming");
    return;
  }
  d->paused = paused;
  if (paused) d->paused_since_ns = ix_mono_ns();
  size_t n;
  owned_list(d, list, &n);
  if (paused) {
    d->st.pauses++;
    LOG_DEBUG("daemon", "backpressure: pausing %zu partitions (%" PRIu64 " outstanding, %" PRIu64
              " waiting)", n, d->outstanding, backlog_len(d->backlog));
    consumer_pause(d->consumer, list, n);
  } else {
    LOG_DEBUG("daemon", "backpressure over: resuming %zu partitions", n);
    consumer_resume(d->consumer, list, n);
  }
  free(list);
}

static void kick_cb(uv_timer_t *t);

static void check_pressure(daemon_t *d) {
  uint64_t limit = d->cfg->batch.max_inflight;
  uint64_t waiting = backlog_len(d->backlog);
  uint64_t rlimit = d->cfg->redis.max_backlog, rlen = rsink_backlog(d->redis);
  if (!d->paused && (waiting > 0 || d->outstanding >= limit || rlen >= rlimit)) {
    if (rlen >= rlimit) {
      /* an outage is worth a warning; a Redis slower than the input (e.g.
       * fsync on every write) pauses and resumes all along: debug */
      d->redis_paused = rsink_up(d->redis) ? 1 : 2;
      if (d->redis_paused == 2)
        LOG_WARN("daemon", "Redis is down and %" PRIu64 " predictions wait for it "
                 "(redis.max_backlog %" PRIu64 "): consumption paused until they are written",
                 rlen, rlimit);
      else
        LOG_DEBUG("daemon", "%" PRIu64 " predictions wait for Redis: pausing consumption",
                  rlen);
    }
    set_paused(d, 1);
  } else if (d->paused && waiting == 0 && d->outstanding < limit / 2 && rlen < rlimit / 2) {
    if (d->redis_paused == 2)
      LOG_INFO("daemon", "Redis caught up (%" PRIu64 " predictions waiting): resuming "
               "consumption", rlen);
    d->redis_paused = 0;
    set_paused(d, 0);
    uv_timer_start(&d->kick_timer, kick_cb, 0, 0);
  }
}

/* ---------------------------------------------------------------- producing */

static void retry_cb(uv_timer_t *t);

/* Whether a message that failed with fail is given up on (permanent_failure)
 * rather than sent again. Predictions whose topic is missing or not writable
 * are kept and retried: every prediction shares that fate, and once the
 * operator fixes the topic or its ACL nothing is lost (consumption pauses
 * meanwhile, visible in interestd_produce_failures_total). */
static int gives_up(uint64_t opaque, producer_fail_t fail) {
  if (fail == PRODUCER_FAIL_TRANSIENT) return 0;
  if (opaque & OPAQUE_DLQ) return 1;
  return fail != PRODUCER_FAIL_UNKNOWN_TOPIC && fail != PRODUCER_FAIL_NOT_AUTHORIZED;
}

static void fatal(daemon_t *d, int rc, const char *what);
static int permanent_failure(daemon_t *d, uint64_t opaque, const void *key, size_t key_len,
                             const void *value, size_t value_len, const producer_header_t *hdrs,
                             size_t n_hdrs, producer_fail_t fail, const char *why);

/* Sends what is due at the head of the backlog, in order. */
static void backlog_retry(daemon_t *d) {
  int64_t now = (int64_t)ix_mono_ms();
  const backlog_msg_t *b;
  while ((b = backlog_head(d->backlog))) {
    if (b->not_before_ms > now) {
      uv_timer_start(&d->retry_timer, retry_cb, (uint64_t)(b->not_before_ms - now), 0);
      break;
    }
    int rc = producer_send(d->producer, (b->opaque & OPAQUE_DLQ) ? d->dlq_topic : d->out_topic,
                           PRODUCER_PARTITION_ANY, b->key, b->key_len, b->value, b->value_len, 0,
                           b->headers, b->n_headers, b->opaque);
    if (rc == IX_EFULL) break; /* retried when delivery reports free room */
    producer_fail_t fail = PRODUCER_FAIL_TRANSIENT;
    const char *why = rc ? producer_refusal(&fail) : NULL;
    if (rc) metrics_counter_inc(d->md.produce_failures[fail]);
    if (rc && !gives_up(b->opaque, fail)) {
      /* the output topic refused: keep it at the head, try again later */
      if (backlog_defer_head(d->backlog, now + RETRY_MAX_MS) == 1)
        LOG_ERROR("daemon", "%s; retrying every %d ms", why, RETRY_MAX_MS);
      uv_timer_start(&d->retry_timer, retry_cb, RETRY_MAX_MS, 0);
      break;
    }
    if (rc == 0) {
      d->outstanding++;
    } else if (permanent_failure(d, b->opaque, b->key, b->key_len, b->value, b->value_len,
                                 b->headers, b->n_headers, fail, why)) {
      /* a permanent local refusal: never retried (it would block every
       * message behind it for good); b stays valid meanwhile (it is the
       * head, a truncated record goes behind it) */
      backlog_pop(d->backlog);
      fatal(d, IX_ENOMEM, "queueing a truncated dead-letter record");
      return;
    }
    backlog_pop(d->backlog);
  }
}

static void retry_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  backlog_retry(d);
  check_pressure(d);
}

/* Sends one message for the in-flight entry named by opaque, whose pending
 * count the caller has already incremented for it, with timestamp ts_ms
 * (0 = now). Queued, kept in the backlog (behind older ones, or the local
 * queue is full), or, on a permanent refusal, handed to permanent_failure().
 * Returns 0 or IX_ENOMEM. */
static int send_msg(daemon_t *d, uint64_t opaque, const void *key, size_t key_len,
                    const void *value, size_t value_len, const producer_header_t *hdrs,
                    size_t n_hdrs, int64_t ts_ms) {
  int dlq = (opaque & OPAQUE_DLQ) != 0;
  if (!backlog_len(d->backlog)) {
    int rc = producer_send(d->producer, dlq ? d->dlq_topic : d->out_topic,
                           PRODUCER_PARTITION_ANY, key, key_len, value, value_len, ts_ms, hdrs,
                           n_hdrs, opaque);
    if (rc == 0) {
      d->outstanding++;
      return 0;
    }
    if (rc != IX_EFULL) {
      producer_fail_t fail;
      const char *why = producer_refusal(&fail);
      metrics_counter_inc(d->md.produce_failures[fail]);
      if (gives_up(opaque, fail))
        return permanent_failure(d, opaque, key, key_len, value, value_len, hdrs, n_hdrs, fail,
                                 why);
      LOG_ERROR("daemon", "%s; retrying every %d ms", why, RETRY_MAX_MS);
    }
  }
  return backlog_push(d->backlog, opaque, key, key_len, value, value_len, hdrs, n_hdrs, 0, 0);
}

#define DLQ_KEEP_BYTES 1024 /* of the value and of the key, in a truncated dead-letter record */

/* A message failed permanently (fail, why): sending it again would fail the
 * same way, and keeping it would block every message behind it. A
 * dead-letter record is sent again truncated: the first DLQ_KEEP_BYTES of
 * key and value, the original reason and source headers, and an
 * interestd-truncated header with the original sizes and the failure. A
 * prediction, or a truncated record that fails too, is dropped: counted in
 * interestd_messages_dropped_total{kind,reason}, logged once with its input
 * partition and offset, and its input offset advances (the policy in
 * docs/DAEMON.md). Returns 0 or IX_ENOMEM. */
static int permanent_failure(daemon_t *d, uint64_t opaque, const void *key, size_t key_len,
                             const void *value, size_t value_len, const producer_header_t *hdrs,
                             size_t n_hdrs, producer_fail_t fail, const char *why) {
  int dlq = (opaque & OPAQUE_DLQ) != 0;
  int32_t partition = (int32_t)((opaque >> 32) & 0xffff);
  if (d->txn && fail != PRODUCER_FAIL_TOO_LARGE) {
    /* exactly_once: not dropped; the transaction aborts and the event is
     * read again (e.g. a producer whose transaction failed refuses every
     * message until the abort) */
    txn_delivery_failed(d->txn, why);
    inflight_ack(d->inflight, opaque & INFLIGHT_TOKEN_MASK);
    return 0;
  }
  const inflight_entry_t *e = inflight_peek(d->inflight, opaque & INFLIGHT_TOKEN_MASK);
  int64_t offset = e ? e->offset : -1;
  if (dlq && !(opaque & OPAQUE_TRUNCATED)) {
    producer_header_t h[PRODUCER_MAX_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < n_hdrs && n < PRODUCER_MAX_HEADERS - 1; i++)
      if (strcmp(hdrs[i].name, "interestd-truncated") != 0) h[n++] = hdrs[i];
    char note[400];
    snprintf(note, sizeof note, "key %zu bytes, value %zu bytes, first %d kept; %s", key_len,
             value_len, DLQ_KEEP_BYTES, why);
    h[n++] = (producer_header_t){"interestd-truncated", note};
    LOG_WARN("daemon", "dead-letter copy of input partition %d offset %" PRId64 " failed for good "
             "(%s): sending it truncated to %d bytes", (int)partition, offset, why,
             DLQ_KEEP_BYTES);
    metrics_counter_inc(d->md.dead_letters_truncated);
    d->st.dlq_truncated++;
    return send_msg(d, opaque | OPAQUE_TRUNCATED, key,
                    key_len < DLQ_KEEP_BYTES ? key_len : DLQ_KEEP_BYTES, value,
                    value_len < DLQ_KEEP_BYTES ? value_len : DLQ_KEEP_BYTES, h, n, 0);
  }
  inflight_ack(d->inflight, opaque & INFLIGHT_TOKEN_MASK); /* no longer awaited */
  metrics_counter_inc(d->md.messages_dropped[dlq][fail ? fail : PRODUCER_FAIL_OTHER]);
  d->st.dropped++;
  LOG_ERROR("daemon", "%s for input partition %d offset %" PRId64 " dropped after a permanent "
            "failure (%s: %s); the input offset advances past it",
            dlq ? "truncated dead-letter record" : "prediction", (int)partition, offset,
            producer_fail_label(fail), why);
  return 0;
}

/* ---------------------------------------------------------------- delivery */

static void on_delivery(void *ctx, const producer_report_t *r) {
  daemon_t *d = ctx;
  int dlq = (r->opaque & OPAQUE_DLQ) != 0;
  int32_t partition = (int32_t)((r->opaque >> 32) & 0xffff);
  if (d->outstanding) d->outstanding--;
  if (r->err) {
    d->st.failed++;
    if (!dlq) metrics_counter_inc(d->md.predictions_failed);
    metrics_counter_inc(d->md.produce_failures[r->fail]);
    if (d->txn) {
      /* not sent again: the transaction aborts and its events are re-read
       * (a stale token: a report of an aborted transaction's purge) */
      if (inflight_peek(d->inflight, r->opaque & INFLIGHT_TOKEN_MASK))
        txn_delivery_failed(d->txn, r->errstr);
      return;
    }
    if (gives_up(r->opaque, r->fail)) {
      if (permanent_failure(d, r->opaque, r->key, r->key_len, r->value, r->value_len, r->headers,
                            r->n_headers, r->fail, r->errstr))
        LOG_ERROR("daemon", "out of memory keeping a truncated dead-letter record; its input "
                            "offset stays uncommitted and will be re-processed after a restart");
      return;
    }
    LOG_WARN("daemon", "%s for input partition %d could not be delivered (%s); sending again",
             dlq ? "dead-letter copy" : "prediction", (int)partition, r->errstr);
    if (backlog_push(d->backlog, r->opaque, r->key, r->key_len, r->value, r->value_len,
                     r->headers, r->n_headers, 1, (int64_t)ix_mono_ms() + RETRY_MIN_MS))
      LOG_ERROR("daemon", "out of memory keeping an undelivered message; its input offset "
                          "stays uncommitted and will be re-processed after a restart");
    return;
  }
  if (dlq) d->st.dlq_delivered++;
  else {
    d->st.delivered++;
    metrics_counter_inc(d->md.predictions_delivered);
  }
  const inflight_entry_t *e = inflight_ack(d->inflight, r->opaque & INFLIGHT_TOKEN_MASK);
  if (!e) return; /* revoked meanwhile */
  if (!dlq) {
    if (!d->ack_cached || !d->ack_ns) {
      d->ack_ns = ix_mono_ns();
      d->ack_wall_ms = ix_wall_ms();
    }
    double lat = (double)(d->ack_ns - e->read_ns) / 1e9;
    double e2e = (double)(d->ack_wall_ms - e->msg_ts_ms) / 1e3;
    if (e2e < 0) e2e = 0;
    int b = lat_bucket(lat);
    lat_count(&d->lat, b);
    lat_count(&d->win_lat, b);
    b = lat_bucket(e2e);
    lat_count(&d->e2e, b);
    lat_count(&d->win_e2e, b);
    metrics_histogram_observe(d->md.event_to_prediction_seconds, lat);
  }
}

/* ---------------------------------------------------------------- redis */

static void redis_timer_cb(uv_timer_t *t);

/* A prediction's Redis write finished (loop thread, inside hiredis's read). */
static void on_redis_ack(void *ctx, uint64_t opaque, int stale, uint64_t latency_ns) {
  daemon_t *d = ctx;
  metrics_histogram_observe(d->rm.seconds, (double)latency_ns / 1e9);
  /* NULL: the partition was revoked meanwhile, its next owner redoes it */
  if (!inflight_ack(d->inflight, opaque & INFLIGHT_TOKEN_MASK)) return;
  if (!d->redis_timer_armed && d->phase <= STOPPING) {
    d->redis_timer_armed = 1;
    uv_timer_start(&d->redis_timer, redis_timer_cb, 0, 0);
  }
}

static void redis_collect(daemon_t *d) {
  if (!d->redis) return;
  rsink_stats_t rs;
  rsink_get_stats(d->redis, &rs);
  metrics_counter_set(d->rm.written, rs.written);
  metrics_counter_set(d->rm.stale, rs.stale);
  metrics_counter_set(d->rm.failed, rs.failed);
  metrics_gauge_set(d->rm.backlog, (double)rs.backlog);
  metrics_gauge_set(d->rm.up, rs.up);
}

/* "host:port" -> the sink; 0 or IX_ECONFIG / IX_ENOMEM with errstr. */
static int redis_start(daemon_t *d, char *errstr, size_t errstr_size) {
  const config_t *cfg = d->cfg;
  int rc = 0;
  metrics_t *m = d->metrics;
  if (!rc) rc = metrics_redis_register(m, &d->rm);
  if (rc) {
    snprintf(errstr, errstr_size, "cannot set up the Redis metrics: %s", ix_strerror(rc));
    return rc;
  }
  char host[256];
  const char *colon = strrchr(cfg->redis.address, ':');
  size_t hl = (size_t)(colon - cfg->redis.address);
  if (hl >= sizeof host) {
    snprintf(errstr, errstr_size, "redis.address: host name too long");
    return IX_ECONFIG;
  }
  memcpy(host, cfg->redis.address, hl);
  host[hl] = '\0';
  if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:6379 */
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  int64_t ttl_s = cfg->redis.ttl_s < 0 ? (int64_t)cfg->state.idle_ttl_s : cfg->redis.ttl_s;
  rsink_conf_t rc_ = {.host = host, .port = atoi(colon + 1), .db = (int)cfg->redis.database,
                      .password = cfg->redis.password, .prefix = cfg->redis.key_prefix,
                      .ttl_ms = ttl_s * 1000};
  rc = rsink_new(&d->loop, &rc_, on_redis_ack, d, &d->redis, errstr, errstr_size);
  if (rc) return rc;
  LOG_INFO("daemon", "Redis sink: %s db %u, keys %s<user>, ttl %" PRId64 " s", cfg->redis.address,
           cfg->redis.database, cfg->redis.key_prefix, ttl_s);
  return 0;
}

/* Serves the delivery reports that are ready, without blocking. The reports
 * of one call arrive back to back, so they share one reading of the clocks. */
static void serve_reports(daemon_t *d) {
  d->ack_cached = 1;
  d->ack_ns = 0;
  producer_poll(d->producer, 0);
  d->ack_cached = 0;
}

/* SIGTERM, SIGINT and SIGHUP from main()'s start until the loop's handlers
 * are installed (daemon_hold_signals()): blocked in main()'s thread (and so
 * in the threads it starts), and caught by held_cb in the threads that
 * already ran before main() (OpenBLAS starts its thread pool from a library
 * constructor, with nothing blocked). Each is then handled exactly once:
 * either pending in the loop's thread until daemon_new() unblocks it, or
 * noted in held[] and raised again there. */
static volatile sig_atomic_t held[3];
static const int held_sigs[3] = {SIGHUP, SIGINT, SIGTERM}; /* the kernel's order */

static void held_cb(int signum) {
  for (int i = 0; i < 3; i++)
    if (held_sigs[i] == signum) held[i] = 1;
}

static int mask_signals(int how) {
  sigset_t set;
  sigemptyset(&set);
  for (int i = 0; i < 3; i++) sigaddset(&set, held_sigs[i]);
  return pthread_sigmask(how, &set, NULL) ? IX_ESYS : 0;
}

static int set_disposition(void (*fn)(int)) {
  struct sigaction sa = {.sa_handler = fn, .sa_flags = SA_RESTART};
  sigfillset(&sa.sa_mask);
  for (int i = 0; i < 3; i++)
    if (sigaction(held_sigs[i], &sa, NULL)) return IX_ESYS;
  return 0;
}

int daemon_hold_signals(void) {
  int rc = mask_signals(SIG_BLOCK);
  return rc ? rc : set_disposition(held_cb);
}

/* the loop's handlers are installed: what came meanwhile reaches them now
 * (through libuv's pipe, handled on the loop's next turn) */
static int release_signals(void) {
  if (mask_signals(SIG_UNBLOCK)) return IX_ESYS;
  for (int i = 0; i < 3; i++)
    if (held[i]) {
      held[i] = 0;
      raise(held_sigs[i]);
    }
  return 0;
}

static void finish_stop(daemon_t *d);
static void ckpt_pump(daemon_t *d);
static void eos_commit(daemon_t *d);
static void eos_end(daemon_t *d, consumer_event_t ev);
static void txn_timer_cb(uv_timer_t *t);

static void serve_deliveries(daemon_t *d) {
  serve_reports(d);
  advance_dirty(d);
  backlog_retry(d);
  check_pressure(d);
  ckpt_pump(d);
  if (d->phase == STOPPING && d->outstanding == 0 && backlog_len(d->backlog) == 0 &&
      rsink_backlog(d->redis) == 0)
    finish_stop(d);
}

static void producer_poll_cb(uv_poll_t *h, int status, int events) {
  serve_deliveries(h->data);
}

static void redis_timer_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  d->redis_timer_armed = 0;
  serve_deliveries(d);
}

/* ---------------------------------------------------------------- processing */

static void fatal(daemon_t *d, int rc, const char *what) {
  LOG_ERROR("daemon", "%s: %s; stopping", what, ix_strerror(rc));
  d->exit_code = rc;
  daemon_stop(d);
}

/* user id as decimal text, the output key (snprintf was a visible cost per
 * prediction); returns the length, no terminator */
/* Processes recs[0..n) (a slice of the window, compacted in place). */
static void process_batch(daemon_t *d, rec_t *recs, size_t n) {
  int64_t now = ix_wall_ms();
  uint64_t now_ns = ix_mono_ns();
  /* in-flight entries first, in input order */
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    rec_t *r = &recs[i];
    uint64_t tok;
    if (d->txn && !txn_accept(d->txn, r->partition, r->offset)) continue; /* before a rewind */
    /* waiting for its state (its changelog could not be read): not
     * applied, not tracked, so no offset is stored for it; the restore
     * seeks the partition back to where its state resumes */
    if (d->clog && clog_waiting(d->clog, r->partition)) continue;
    int rc = inflight_push(d->inflight, r->partition, r->offset, r->ts_ms > 0 ? r->ts_ms : now,
                           now_ns, &tok);
    if (rc == IX_ESTATE) continue; /* revoked while queued: the next owner reads it */
    if (rc) {
      fatal(d, rc, "tracking in-flight messages");
      return;
    }
    if (r->ts_ms > d->max_ts_ms) d->max_ts_ms = r->ts_ms;
    recs[kept] = *r;
    d->rec_tok[kept++] = tok;
  }
  n = kept;
  if (d->txn && n) {
    char why[512];
    if (d->exit_code) return; /* stopping after a fatal error: nothing more is committed */
    if (txn_begin(d->txn, why, sizeof why)) {
      fatal(d, IX_EKAFKA, why);
      return;
    }
    for (size_t i = 0; i < n; i++) txn_consumed(d->txn, recs[i].partition, recs[i].offset);
  }
  if (n) d->progress_ns = now_ns;
  d->st.consumed += n;
  metrics_counter_add(d->md.events_consumed, n);
  if (!n) return;

  pipeline_result_t res;
  int rc = pipeline_process(d->pipe, recs, n, now, &res);
  if (rc) {
    fatal(d, rc, "processing a batch");
    return;
  }
  d->st.batches++;
  d->st.processed += res.n_processed;
  d->st.suppressed += res.n_suppressed;
  d->st.evicted_lru += res.n_evicted;
  metrics_counter_add(d->md.events_processed, res.n_processed);
  metrics_histogram_observe(d->md.batch_size, (double)n);
  metrics_histogram_observe(d->md.step_seconds, (double)res.step_ns / 1e9);
  quality_metrics_update(&d->qm, d->pipe);
  if (d->shadow_pipe) {
    pipeline_result_t sres;
    int src = pipeline_process(d->shadow_pipe, recs, n, now, &sres);
    if (src) {
      /* the shadow must never stop the served model: log and drop it */
      LOG_ERROR("daemon", "shadow model failed (%s); scoring it stops", ix_strerror(src));
      pipeline_destroy(d->shadow_pipe);
      d->shadow_pipe = NULL;
    } else {
      quality_metrics_update(&d->qm_shadow, d->shadow_pipe);
    }
  }

  for (size_t k = 0; k < res.n_rejects; k++) {
    const pipeline_reject_t *rj = &res.rejects[k];
    const rec_t *r = &recs[rj->src];
    if (d->txn && txn_replaying(d->txn, r->partition, r->offset)) continue; /* sent before */
    size_t ri = ix_reject_index(rj->err);
    const char *label = ix_reject_label(ri);
    d->st.rejected++;
    d->st.rejected_by[ri]++;
    metrics_counter_inc(d->md.events_rejected[ri]);
    LOG_WARN("daemon", "rejected message at partition %d offset %" PRId64 ": %s (%s)",
             (int)r->partition, r->offset, rj->reason, label);
    if (!d->dlq_topic) continue;
    char src[64];
    snprintf(src, sizeof src, "%s/%d/%" PRId64, d->cfg->kafka.input_topic, (int)r->partition,
             r->offset);
    producer_header_t hdrs[3] = {{"interestd-reason", label},
                                 {"interestd-error", rj->reason},
                                 {"interestd-source", src}};
    uint64_t op = OPAQUE_DLQ | d->rec_tok[rj->src];
    inflight_expect(d->inflight, d->rec_tok[rj->src]);
    d->st.dlq_produced++;
    if (send_msg(d, op, r->key, r->key_len, r->value, r->value_len, hdrs, 3, 0)) {
      fatal(d, IX_ENOMEM, "queueing a dead-letter message");
      return;
    }
  }
  /* one wall-clock reading for the batch's predictions, taken after the
   * model ran: librdkafka otherwise reads the clock for every message */
  int64_t send_ms = res.n_preds ? ix_wall_ms() : 0;
  for (size_t k = 0; k < res.n_preds; k++) {
    const prediction_t *pred = &res.preds[k];
    size_t i = res.pred_src[k];
    if (d->txn && txn_replaying(d->txn, recs[i].partition, recs[i].offset)) continue;
    char key[CODEC_KEY_MAX];
    size_t klen;
    rc = output_message(&d->cfg->output, pred, &d->enc, key, &klen);
    if (rc) {
      fatal(d, rc, "encoding a prediction");
      return;
    }
    uint64_t op = d->rec_tok[i];
    inflight_expect(d->inflight, d->rec_tok[i]);
    if (send_msg(d, op, key, klen, d->enc.data, d->enc.len, NULL, 0, send_ms)) {
      fatal(d, IX_ENOMEM, "queueing a prediction");
      return;
    }
    if (d->redis) {
      const codec_buf_t *v = &d->enc;
      if (d->cfg->redis.format != REDIS_FORMAT_OUTPUT) { /* another format than the topic's */
        output_opts_t ro = d->cfg->output;
        ro.format = d->cfg->redis.format == REDIS_FORMAT_JSON ? OUTPUT_JSON : OUTPUT_MSGPACK;
        if ((rc = output_encode(&ro, pred, &d->redis_enc))) {
          fatal(d, rc, "encoding a prediction for Redis");
          return;
        }
        v = &d->redis_enc;
      }
      inflight_expect(d->inflight, d->rec_tok[i]);
      if (rsink_write(d->redis, key, klen, v->data, v->len, recs[i].partition,
                      recs[i].offset, op)) {
        fatal(d, IX_ENOMEM, "queueing a Redis write");
        return;
      }
    }
    d->st.produced++;
    metrics_counter_inc(d->md.predictions_produced);
    if (d->on_prediction) d->on_prediction(d->ctx, pred);
  }
  advance_dirty(d);
}

static void batch_timer_cb(uv_timer_t *t);

/* Drains the consumer queue in batches; yields after DRAIN_ROUNDS batches. */
static void drain(daemon_t *d, int timer_fired) {
  if (d->phase != RUNNING || d->paused) return;
  uint32_t max = d->cfg->batch.max_events;
  if (d->cfg->batch.max_wait_us && !timer_fired) {
    if (d->batch_waiting) return;
    if (consumer_queue_length(d->consumer) < max) {
      /* wait for a fuller batch (uv timers have millisecond resolution) */
      d->batch_waiting = 1;
      uv_timer_start(&d->batch_timer, batch_timer_cb, (d->cfg->batch.max_wait_us + 999) / 1000,
                     0);
      return;
    }
  }
  d->batch_waiting = 0;
  size_t wmax = (size_t)max * WINDOW_BATCHES;
  if (d->batch_cap < max) {
    uint64_t *s = realloc(d->rec_tok, max * sizeof *s);
    if (s) d->rec_tok = s;
    rec_t *w = realloc(d->win, wmax * sizeof *w);
    if (w) d->win = w;
    order_free(d->order);
    d->order = order_new(wmax);
    if (!s || !w || !d->order) {
      fatal(d, IX_ENOMEM, "growing the batch");
      return;
    }
    d->batch_cap = max;
  }
  for (int round = 0; round < DRAIN_ROUNDS / WINDOW_BATCHES; round++) {
    /* take a window and process it oldest first, in batches. The whole
     * window is processed even if pressure pauses the consumer meanwhile
     * (its messages are off the queue); only a stop cuts it short, which
     * loses nothing: offsets are stored only up to what was processed, and
     * each partition's messages stay in order, so the rest is read again */
    ssize_t got = consumer_poll(d->consumer, d->win, wmax);
    if (got < 0) {
      fatal(d, (int)got, "taking messages off the consumer queue");
      return;
    }
    size_t n = (size_t)got;
    if (n == 0) return;
    order_oldest_first(d->order, d->win, n);
    for (size_t off = 0; off < n && d->phase == RUNNING; off += max) {
      process_batch(d, d->win + off, n - off < max ? n - off : max);
      /* serve reports between batches so offsets advance under load */
      serve_reports(d);
      advance_dirty(d);
      backlog_retry(d);
      check_pressure(d);
    }
    consumer_release(d->consumer);
    if (d->txn && txn_due(d->txn)) eos_commit(d);
    if (d->phase != RUNNING || d->paused) return;
  }
  uv_timer_start(&d->kick_timer, kick_cb, 0, 0); /* more is waiting: continue next turn */
}

static void kick_cb(uv_timer_t *t) { drain(t->data, 0); }
static void batch_timer_cb(uv_timer_t *t) { drain(t->data, 1); }
static void consumer_poll_cb(uv_poll_t *h, int status, int events) { drain(h->data, 0); }

/* ---------------------------------------------------------------- checkpoints */

static void ckpt_poll_cb(uv_poll_t *h, int status, int events);
static void ckpt_slice_cb(uv_timer_t *t);

/* An incremental snapshot (state/checkpoint.h) of every owned partition at
 * its applied offset A, taken between batches without waiting for anything:
 * the loop copies users in slices of CKPT_SLICE_US every CKPT_SLICE_MS (the
 * store copies a user first when a batch is about to change it), and a
 * writer thread writes the files. A partition's file is published (renamed
 * into place) only once acked(p) >= A: a visible checkpoint never holds
 * state past a prediction that could still be lost, so a crash restores it
 * and re-reads every event whose prediction was not acknowledged. */
static void start_snapshot(daemon_t *d) {
  size_t n = 0;
  int32_t n_parts = inflight_partitions(d->inflight);
  int64_t *offs = malloc(((size_t)n_parts + 1) * sizeof *offs);
  int32_t *list = realloc(d->ck_parts, ((size_t)n_parts + 1) * sizeof *list);
  if (list) d->ck_parts = list;
  uint16_t *gens = realloc(d->ck_gens, ((size_t)n_parts + 1) * sizeof *gens);
  if (gens) d->ck_gens = gens;
  if (!offs || !list || !gens) {
    free(offs);
    LOG_WARN("daemon", "checkpoint not started: out of memory; trying again at the next interval");
    metrics_daemon_checkpoint_done(&d->md, 0.0, 0);
    d->st.checkpoint_failures++;
    return;
  }
  for (int32_t i = 0; i < n_parts; i++) {
    inflight_part_t pt = inflight_part(d->inflight, i);
    int behind = i < d->n_lag && d->lag[i].local_behind;
    if (!pt.owned || pt.consumed_next < 0 ||
        (pt.consumed_next <= pt.ckpt_next && !d->ck_force && !behind))
      continue;
    /* restored states ahead of the consumed offset: not yet (clog_ahead_of) */
    if (d->clog && clog_ahead_of(d->clog, i, pt.consumed_next)) continue;
    if (behind) d->lag[i].local_behind = 0;
    list[n] = i;
    gens[n] = pt.gen;
    offs[n++] = pt.consumed_next; /* applied: every consumed event is in the store */
  }
  if (n) {
    char why[256];
    int rc = ckpt_snapshot_start(d->ckpt, pipeline_store(d->pipe), list, offs, n,
                                 pipeline_fingerprint(d->pipe), why, sizeof why);
    if (rc) {
      LOG_WARN("daemon", "checkpoint not started: %s", why);
      metrics_daemon_checkpoint_done(&d->md, 0.0, 0);
      d->st.checkpoint_failures++;
    } else {
      d->ck_n = n;
      d->ck_active = 1;
      d->ck_forced_snapshot = d->ck_force;
      /* the writer's fd wakes the loop when a file is written; without it
       * the slice timer still pumps the snapshot, only later */
      int prc = uv_poll_init(&d->loop, &d->ckpt_poll, ckpt_snapshot_fd(d->ckpt));
      if (prc) {
        LOG_WARN("daemon", "checkpoint writer not watched (%s); polling it every %d ms",
                 uv_strerror(prc), CKPT_SLICE_MS);
      } else {
        d->ckpt_poll.data = d;
        uv_poll_start(&d->ckpt_poll, UV_READABLE, ckpt_poll_cb);
        d->ckpt_poll_active = 1;
      }
      uv_timer_start(&d->ckpt_slice_timer, ckpt_slice_cb, 0, CKPT_SLICE_MS);
    }
  }
  free(offs);
}

/* A changelog checkpoint of every owned partition at its applied offset:
 * the changed users are taken now, encoded in slices and written once the
 * predictions they cover are acknowledged (clog_pump). */
static void clog_checkpoint_all(daemon_t *d) {
  for (int32_t i = 0; i < inflight_partitions(d->inflight); i++) {
    inflight_part_t pt = inflight_part(d->inflight, i);
    if (!pt.owned || pt.consumed_next < 0) continue;
    int rc = clog_checkpoint(d->clog, i, pipeline_store(d->pipe), pipeline_fingerprint(d->pipe),
                             pt.consumed_next);
    if (rc) LOG_WARN("daemon", "changelog checkpoint of partition %d not started: %s", (int)i,
                     ix_strerror(rc));
  }
}

/* Below what offset a changelog record may cover events: their predictions
 * acknowledged; with exactly_once also committed (an acknowledged output of
 * the open transaction can still be aborted, and a restore skips every
 * event a record covers: docs/STATE.md, "Incremental encoding"). */
static int64_t clog_acked_cb(void *ctx, int32_t p) {
  daemon_t *d = ctx;
  inflight_part_t pt = inflight_part(d->inflight, p);
  if (!pt.owned) return -1;
  if (!d->txn) return pt.acked_next;
  int64_t committed = txn_committed(d->txn, p);
  return committed < pt.acked_next ? committed : pt.acked_next;
}

static void clog_durable_cb(void *ctx, int32_t p, int64_t next_offset) {
  daemon_t *d = ctx;
  inflight_set_checkpoint(d->inflight, p, next_offset);
  part_advance(d, p);
}

/* Revocation or shutdown: a changelog checkpoint of p at its consumed offset
 * (its predictions were waited for), so the next owner re-reads less. */
static void clog_partition_now(daemon_t *d, int32_t p) {
  inflight_part_t pt = inflight_part(d->inflight, p);
  if (pt.consumed_next < 0 || pt.in_flight) return;
  if (d->txn && txn_open(d->txn)) return; /* exactly_once: uncommitted states */
  uint64_t deadline = ix_mono_ms() + REVOKE_WAIT_MAX_MS;
  if (d->stop_deadline_ms && d->stop_deadline_ms < deadline) deadline = d->stop_deadline_ms;
  int rc = clog_checkpoint_now(d->clog, p, pipeline_store(d->pipe), pipeline_fingerprint(d->pipe),
                               pt.consumed_next, clog_acked_cb, clog_durable_cb, d, deadline);
  if (rc)
    LOG_WARN("daemon", "partition %d: no changelog checkpoint at revocation (%s); the next owner "
             "re-reads from the last completed one", (int)p, ix_strerror(rc));
  else
    LOG_INFO("daemon", "partition %d: changelog checkpoint at revocation, offset %" PRId64,
             (int)p, pt.consumed_next);
}

static void clog_timer_cb(uv_timer_t *t);

/* The changelog timer's cadence: a slice every CLOG_BUSY_MS while a
 * checkpoint is being encoded or handed over (clog_busy), else CLOG_PUMP_MS. */
static void clog_cadence(daemon_t *d) {
  int fast = clog_busy(d->clog);
  if (fast == d->clog_fast) return;
  d->clog_fast = fast;
  uint64_t ms = fast ? CLOG_BUSY_MS : CLOG_PUMP_MS;
  uv_timer_start(&d->clog_timer, clog_timer_cb, ms, ms);
}

static void clog_timer_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  clog_pump(d->clog, pipeline_store(d->pipe), pipeline_fingerprint(d->pipe), clog_acked_cb,
            clog_durable_cb, d);
  uint64_t now = ix_mono_ms();
  if (now - d->standby_pumped_ms >= CLOG_PUMP_MS) {
    standby_pump(d->standby, STANDBY_SLICE_US);
    d->standby_pumped_ms = now;
  }
  clog_cadence(d);
}

/* The standby copies follow what this member's assignment now asks for. */
static void standby_refresh(daemon_t *d) {
  if (!d->standby) return;
  int32_t n_parts = inflight_partitions(d->inflight);
  int32_t *owned = malloc((size_t)(n_parts > 0 ? n_parts : 1) * sizeof *owned);
  size_t n = 0;
  if (!owned) return;
  owned_list(d, owned, &n);
  standby_set_owned(d->standby, owned, n);
  free(owned);
}

static void ckpt_timer_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  if (d->txn && txn_open(d->txn)) {
    /* exactly_once: checkpoints hold committed states only; taken right
     * after the next commit, before any other event is applied */
    d->ckpt_deferred = 1;
    return;
  }
  d->ckpt_deferred = 0;
  if (d->clog && d->phase == RUNNING) {
    clog_checkpoint_all(d);
    clog_cadence(d);
  }
  if (!d->ckpt || d->ck_active || ckpt_snapshot_running(d->ckpt) || d->ckpt_poll_active ||
      d->phase != RUNNING)
    return;
  start_snapshot(d);
}

static void ckpt_poll_closed(uv_handle_t *h) { ((daemon_t *)h->data)->ckpt_poll_active = 0; }

/* Moves the running snapshot on: publishes each written file whose events
 * are all acknowledged, discards files of partitions no longer owned, takes
 * each durable offset, and closes the snapshot's handles when it is over. */
static void ckpt_pump(daemon_t *d) {
  if (!d->ck_active) return;
  const ckpt_result_t *res;
  size_t n;
  int rc = ckpt_snapshot_poll(d->ckpt, &res, &n);
  if (rc < 0) return;
  /* the first checkpoint after a model swap publishes its files together,
   * once every one is written and acknowledged, so the directory holds one
   * model's set except for the few renames in between */
  int all_ready = 1;
  for (size_t i = 0; i < n && d->ck_forced_snapshot; i++) {
    inflight_part_t pt = inflight_part(d->inflight, res[i].partition);
    int mine = pt.owned && i < d->ck_n && d->ck_gens[i] == pt.gen;
    if (mine && (res[i].state == CKPT_COPYING ||
                 (res[i].state == CKPT_WRITTEN && pt.acked_next < res[i].next_offset)))
      all_ready = 0;
  }
  for (size_t i = 0; i < n; i++) {
    inflight_part_t pt = inflight_part(d->inflight, res[i].partition);
    int mine = pt.owned && i < d->ck_n && d->ck_gens[i] == pt.gen;
    if (res[i].state == CKPT_WRITTEN || res[i].state == CKPT_COPYING) {
      if (!mine) ckpt_snapshot_discard(d->ckpt, i);
      else if (res[i].state == CKPT_WRITTEN && pt.acked_next >= res[i].next_offset && all_ready)
        ckpt_snapshot_publish(d->ckpt, i);
    } else if (res[i].state == CKPT_DURABLE && mine) {
      inflight_set_checkpoint(d->inflight, res[i].partition, res[i].next_offset);
    }
  }
  if (rc == 1) {
    d->ck_active = 0;
    uv_timer_stop(&d->ckpt_slice_timer);
    if (d->ckpt_poll_active) {
      uv_poll_stop(&d->ckpt_poll);
      if (!uv_is_closing((uv_handle_t *)&d->ckpt_poll))
        uv_close((uv_handle_t *)&d->ckpt_poll, ckpt_poll_closed);
    }
    ckpt_stats_t cs;
    ckpt_get_stats(d->ckpt, &cs);
    int all_ok = 1;
    for (size_t i = 0; i < n; i++)
      if (res[i].state == CKPT_FAILED) {
        all_ok = 0;
        LOG_WARN("daemon", "checkpoint of partition %d failed: %s", (int)res[i].partition,
                 res[i].reason);
      }
    if (all_ok) d->st.checkpoints++;
    else d->st.checkpoint_failures++;
    if (all_ok && d->ck_forced_snapshot) d->ck_force = 0;
    d->ck_forced_snapshot = 0;
    metrics_daemon_checkpoint_done(&d->md, (double)cs.last_snapshot_ms / 1e3, all_ok);
  }
  advance_dirty(d);
}

static void ckpt_slice_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  ckpt_snapshot_step(d->ckpt, CKPT_SLICE_US);
  ckpt_pump(d);
}

static void ckpt_poll_cb(uv_poll_t *h, int status, int events) { ckpt_pump(h->data); }

/* The running snapshot gives up its file for partition p (revoked, or about
 * to be replaced by a restore): nothing more is copied for it. */
static void ckpt_forget_partition(daemon_t *d, int32_t p) {
  if (!d->ckpt || !d->ck_active) return;
  for (size_t i = 0; i < d->ck_n; i++)
    if (d->ck_parts[i] == p) ckpt_snapshot_discard(d->ckpt, i);
}

/* Synchronous checkpoint of one partition (revocation, shutdown). */
static void ckpt_partition_now(daemon_t *d, int32_t partition) {
  inflight_part_t pt = inflight_part(d->inflight, partition);
  int behind = partition < d->n_lag && d->lag[partition].local_behind;
  if (!d->ckpt || pt.consumed_next < 0 ||
      (pt.consumed_next <= pt.ckpt_next && !d->ck_force && !behind))
    return;
  if (d->txn && txn_open(d->txn)) return; /* exactly_once: uncommitted states (a failed commit) */
  if (d->clog && clog_ahead_of(d->clog, partition, pt.consumed_next)) {
    LOG_WARN("daemon", "partition %d: not checkpointed locally (states restored from the "
             "changelog hold events past offset %" PRId64 ")", (int)partition, pt.consumed_next);
    return;
  }
  if (pt.in_flight) {
    /* predictions still unacknowledged: the previous checkpoint stays the
     * newest, and the next owner re-applies the events after it */
    LOG_WARN("daemon", "partition %d: not checkpointed (%u events unacknowledged)",
             (int)partition, pt.in_flight);
    return;
  }
  char why[256];
  ckpt_result_t res;
  uint64_t t0 = ix_mono_ns();
  int rc = ckpt_write_partition(d->ckpt, pipeline_store(d->pipe), partition, pt.consumed_next,
                                pipeline_fingerprint(d->pipe), &res, why, sizeof why);
  metrics_daemon_checkpoint_done(&d->md, (double)(ix_mono_ns() - t0) / 1e9, rc == 0);
  if (rc) {
    d->st.checkpoint_failures++;
    LOG_WARN("daemon", "checkpoint of partition %d failed: %s", (int)partition, why);
    return;
  }
  inflight_set_checkpoint(d->inflight, partition, pt.consumed_next);
  if (partition < d->n_lag) d->lag[partition].local_behind = 0;
}

/* ---------------------------------------------------------------- exactly-once */

/* kafka.processing_guarantee = exactly_once: the transaction cycle is
 * daemon/txn.h; here is what the loop does with it. A failure that needs
 * the process to stop (a fenced producer) may come inside a rebalance
 * callback, so the stop is left to the next txn_timer run. */
static void eos_fail(daemon_t *d, const char *why) {
  LOG_ERROR("daemon", "exactly_once: %s; stopping", why);
  if (!d->exit_code) d->exit_code = IX_EKAFKA;
  if (d->phase == RUNNING) uv_timer_start(&d->txn_timer, txn_timer_cb, 0, 0);
}

static void eos_commit(daemon_t *d) {
  char why[512];
  int rc = txn_commit(d->txn, why, sizeof why);
  if (rc == IX_EKAFKA) {
    eos_fail(d, why);
  } else if (rc) {
    LOG_WARN("daemon", "transaction aborted (%s): the events since the last commit are read "
             "again", why);
    uv_timer_start(&d->kick_timer, kick_cb, 0, 0);
  } else if (d->ckpt_deferred && d->phase == RUNNING) {
    ckpt_timer_cb(&d->ckpt_timer); /* the states are the committed ones now */
  }
}

/* Partitions leave: a revocation commits what was done with them (or
 * aborts after a fatal error); a loss aborts (their offsets cannot be
 * committed any more). */
static void eos_end(daemon_t *d, consumer_event_t ev) {
  char why[512];
  if (ev == CONSUMER_REVOKE && !d->exit_code) {
    eos_commit(d);
    return;
  }
  if (txn_abort(d->txn, why, sizeof why)) eos_fail(d, why);
}

static void txn_timer_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  if (d->exit_code && d->phase == RUNNING) {
    daemon_stop(d);
    return;
  }
  if (d->phase == RUNNING && txn_due(d->txn)) eos_commit(d);
  if (!uv_timer_get_repeat(t) && d->phase == RUNNING)
    uv_timer_start(t, txn_timer_cb, d->cfg->kafka.commit_interval_ms,
                   d->cfg->kafka.commit_interval_ms);
}

/* Before a commit: the messages waiting in the retry backlog go to the
 * producer (they belong to the transaction). 0 once none waits. */
static int eos_flush(void *ctx, int timeout_ms) {
  daemon_t *d = ctx;
  uint64_t deadline = ix_mono_ms() + (uint64_t)timeout_ms;
  for (;;) {
    backlog_retry(d);
    if (!backlog_len(d->backlog)) return 0;
    if (ix_mono_ms() >= deadline) return IX_EFULL;
    producer_poll(d->producer, 10);
  }
}

/* After an abort: what waited to be sent belonged to it. */
static void eos_rolled_back(void *ctx) {
  daemon_t *d = ctx;
  while (backlog_head(d->backlog)) backlog_pop(d->backlog);
  uv_timer_stop(&d->retry_timer);
  check_pressure(d);
}

/* ---------------------------------------------------------------- rebalance */

static void send_ready(daemon_t *d) {
  if (d->ready_sent) return;
  d->ready_sent = 1;
  notify_ready(d->notify);
  notify_watchdog_start(d->notify);
  if (d->ready_fd >= 0) {
    ssize_t w = write(d->ready_fd, "ready\n", 6);
    (void)w;
  }
}

/* Waits (serving delivery reports) until the partitions' in-flight entries
 * are done or the time is up. Runs inside the rebalance callback, so it
 * blocks the loop: bounded by REVOKE_WAIT_MAX_MS or the shutdown deadline. */
static void wait_inflight(daemon_t *d, const consumer_part_t *parts, size_t n) {
  uint64_t deadline = ix_mono_ms() + REVOKE_WAIT_MAX_MS;
  if (d->phase != RUNNING && d->stop_deadline_ms && d->stop_deadline_ms < deadline)
    deadline = d->stop_deadline_ms;
  for (;;) {
    size_t busy = 0;
    for (size_t i = 0; i < n; i++) {
      if (owns(d, parts[i].partition)) {
        part_advance(d, parts[i].partition);
        busy += inflight_part(d->inflight, parts[i].partition).in_flight;
      }
    }
    if (!busy) return;
    if (ix_mono_ms() >= deadline) {
      LOG_WARN("daemon", "giving up partitions with %zu events not fully acknowledged; "
                         "they will be re-processed by the next owner", busy);
      return;
    }
    backlog_retry(d);
    if (rsink_backlog(d->redis)) {
      producer_poll(d->producer, 0);
      rsink_poll(d->redis, 50);
    } else {
      producer_poll(d->producer, 50);
    }
  }
}

/* Whether a restored checkpoint's offset lies beyond the end of partition p
 * on this cluster (logged as an error when it does). Unknown watermarks
 * (leader unreachable within 5 s) count as not beyond. */
static int beyond_end(daemon_t *d, int32_t p, int64_t next_offset) {
  int64_t lo, hi;
  if (consumer_query_watermarks(d->consumer, p, 5000, &lo, &hi)) {
    LOG_WARN("daemon", "partition %d: end offset unknown; trusting the checkpoint at %" PRId64,
             (int)p, next_offset);
    return 0;
  }
  if (next_offset <= hi) return 0;
  LOG_ERROR("daemon", "partition %d: the checkpoint resumes at offset %" PRId64 " but the "
            "partition ends at %" PRId64 " (a state directory from another cluster, or a "
            "recreated topic?): checkpoint ignored, starting cold from the committed offset "
            "with empty states", (int)p, next_offset, hi);
  return 1;
}

/* The result of an offset commit (on the loop thread, from consumer_poll). */
static void on_commit(void *ctx, int err, const char *errstr, const consumer_part_t *parts,
                      size_t n) {
  daemon_t *d = ctx;
  if (err) {
    metrics_counter_inc(d->md.commit_failures);
    LOG_WARN("daemon", "offset commit failed (%s); the stored offsets are committed at the next "
             "attempt", errstr);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    int32_t p = parts[i].partition;
    if (p < 0 || p >= d->n_lag || !owns(d, p)) continue;
    if (!d->lag[p].committed) d->lag[p].committed = metrics_daemon_committed(&d->md, p);
    if (d->lag[p].committed) metrics_gauge_set(d->lag[p].committed, (double)parts[i].offset);
    d->lag[p].committed_off = parts[i].offset;
  }
}

/* Events deleted by retention before they were read (the consumer logged it). */
static void on_skip(void *ctx, int32_t partition, int64_t expected, int64_t resumed,
                    int64_t skipped) {
  (void)partition, (void)expected, (void)resumed;
  metrics_counter_add(((daemon_t *)ctx)->md.skipped_by_retention, (uint64_t)skipped);
}

/* The assigned partitions whose changelog restore reads the topic from its
 * start, hinted to the reader so it asks their watermarks at once and
 * fetches the next ones while one is decoded: those without a standby copy
 * (it reads only the tail) whose local checkpoint, as the restore will find
 * it, is unusable, another model's or too old for the tail
 * (clog_prefetch_local). */
static void clog_prefetch_assigned(daemon_t *d, const consumer_part_t *parts, size_t n) {
  if (!d->clog || !n) return;
  int32_t *ps = malloc(n * sizeof *ps);
  if (!ps) return;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!standby_has_copy(d->standby, parts[i].partition)) ps[k++] = parts[i].partition;
  clog_prefetch_local(d->clog, ps, k, d->ckpt ? d->cfg->state.checkpoint_dir : NULL,
                      pipeline_fingerprint(d->pipe), store_blob_size(pipeline_store(d->pipe)));
  free(ps);
}

/* The state store's options from cfg's [state] section; slabs from the
 * process's pool. */
static store_opts_t store_opts_of(const config_t *cfg, slab_pool_t *pool) {
  return (store_opts_t){.mem_limit_bytes = (size_t)cfg->state.memory_limit_mb << 20,
                        .idle_ttl_ms = (int64_t)cfg->state.idle_ttl_s * 1000,
                        .pool = pool};
}

/* The process's slab pool (state/slab_pool.h): it keeps memory the stores
 * give back while all their slabs stay within state.memory_limit_mb (the
 * serving store may reach it anyway; with no limit, within
 * state.pretouch_mb), and pre-touches state.pretouch_mb in the background. */
static int new_slab_pool(const config_t *cfg, slab_pool_t **out) {
  uint64_t limit = cfg->state.memory_limit_mb, pre = cfg->state.pretouch_mb;
  slab_pool_opts_t po = {.keep_bytes = (limit ? limit : pre) << 20, .pretouch_bytes = pre << 20};
  int rc = slab_pool_new(&po, out);
  if (!rc && pre)
    LOG_INFO("daemon", "state.pretouch_mb: populating %llu MiB of state memory in the "
             "background (the slab pool keeps up to %llu MiB)", (unsigned long long)pre,
             (unsigned long long)(po.keep_bytes >> 20));
  return rc;
}

/* Logs when slabs could not be had since the last call (from the gauges'
 * timer): the store evicted users to make room (state/store.h). */
static void memory_failures_note(daemon_t *d, const slab_pool_stats_t *ps,
                                 const store_stats_t *ss) {
  if (ps->failed_takes <= d->memory_failures_logged) return;
  LOG_ERROR("daemon", "state memory: %" PRIu64 " slabs could not be mapped or populated (out of "
            "memory; %" PRIu64 " in all): a new user evicts the least recently seen one to make "
            "room, a restore that needs a slab fails (%" PRIu64 " LRU evictions in all, %" PRIu64
            " users held). The host has less memory than state.memory_limit_mb needs: lower it "
            "or give the host memory",
            ps->failed_takes - d->memory_failures_logged, ps->failed_takes, ss->evicted_lru,
            ss->users);
  d->memory_failures_logged = ps->failed_takes;
}

/* Logs once when the pre-touch has ended (from the gauges' timer). */
static void pretouch_note(daemon_t *d, const slab_pool_stats_t *ps) {
  if (d->pretouch_logged || !d->cfg->state.pretouch_mb || ps->pretouch_running) return;
  d->pretouch_logged = 1;
  if (ps->pretouch_failed)
    LOG_WARN("daemon", "state.pretouch_mb: the pre-touch ended early, memory could not be "
             "mapped or populated (the host has less than state.pretouch_mb free); slabs are "
             "mapped fresh when a store needs them (interestd_state_memory_chunks_total"
             "{from=\"fresh\"})");
  LOG_INFO("daemon", "state.pretouch_mb: %.0f MiB populated in %.2f s (%.0f MB/s); the pool "
           "holds %.0f MiB, the stores use %.0f MiB", (double)ps->pretouched_bytes / (1 << 20),
           (double)ps->pretouch_ns / 1e9,
           ps->pretouch_ns ? (double)ps->pretouched_bytes / ((double)ps->pretouch_ns / 1e9) / 1e6
                           : 0.0,
           (double)ps->held_bytes / (1 << 20), (double)ps->in_use_bytes / (1 << 20));
}

/* A warm-up's options (daemon/warmup.h): the input as the running process
 * reads it, the emit, batch and window settings of mc (the configuration of
 * the model being warmed), its states in a store of so's options. */
static warmup_opts_t warm_opts(const daemon_t *d, const config_t *mc, const char *const *props,
                               const store_opts_t *so) {
  return (warmup_opts_t){.brokers = d->cfg->kafka.brokers, .props = props,
                         .topic = d->cfg->kafka.input_topic, .input = &d->cfg->input,
                         .store = so, .emit = &mc->emit, .batch = mc->batch.max_events,
                         .max_events = mc->model.warm_max_events,
                         .window_ms = (int64_t)mc->model.warm_window_s * 1000,
                         .ref_ts_ms = d->max_ts_ms};
}

/* model.warm_start (daemon/warmstart.h): auto = on with model.reload = warm.
 * For a refused local checkpoint of another model, and for a changelog whose
 * newest completion is another model's (clog_other_model; docs/STATE.md,
 * "Model swaps"); not with exactly_once, which already rebuilds such a
 * partition from the input's first offset (daemon/txn.h). */
static int warm_start_on(const daemon_t *d) {
  int on = d->cfg->model.warm_start < 0 ? d->cfg->model.reload == MODEL_RELOAD_WARM
                                        : d->cfg->model.warm_start;
  return on && !d->txn;
}

static void warm_start_progress(void *ctx) {
  notify_extend_timeout(((daemon_t *)ctx)->notify, 10ull * 1000000u);
}

/* Where a partition whose states were another model's resumes: the later
 * of its committed offset and that model's consistent offset other_next (a
 * checkpoint is published only once every event before its offset is
 * answered, as a restore of it would resume there); -1 when neither is
 * known. */
static int64_t other_model_pos(daemon_t *d, int32_t p, int64_t other_next) {
  int64_t committed = -1;
  if (consumer_committed(d->consumer, p, 5000, &committed) || committed < 0) committed = -1;
  if (other_next >= 0 && beyond_end(d, p, other_next)) other_next = -1;
  return committed > other_next ? committed : other_next;
}

/* Warms partitions ps_in[0..k) (their checkpoints, whose offsets are
 * ckpt_next[0..k), were another model's) under the running model from the
 * input's window before their serving positions (other_model_pos), and
 * serves them from there: served[j] gets the offset partition ps_in[j]
 * resumes at, or -1 when it starts cold from the committed offset (neither
 * position known, or the whole set when the warm-up fails; logged). Used by
 * the assignment and by the retry of a partition that waited. */
static void warm_start(daemon_t *d, const int32_t *ps_in, const int64_t *ckpt_next, size_t k,
                       int64_t *served) {
  int32_t *ps = malloc(k * sizeof *ps);
  int64_t *pos = malloc(k * sizeof *pos);
  uint64_t *users = calloc(k, sizeof *users);
  size_t *at = malloc(k * sizeof *at);
  char **props = kafka_props(d->cfg, d->cfg->kafka.consumer_props);
  size_t m = 0;
  for (size_t j = 0; j < k; j++) served[j] = -1;
  if (!ps || !pos || !users || !at || !props) {
    LOG_ERROR("daemon", "out of memory: %zu partitions start cold", k);
    goto out;
  }
  for (size_t j = 0; j < k; j++) {
    int32_t p = ps_in[j];
    int64_t at_pos = other_model_pos(d, p, ckpt_next[j]);
    if (at_pos < 0) {
      LOG_WARN("daemon", "partition %d: neither a committed offset nor the checkpoint's offset "
               "known; starting cold (no window to warm from)", (int)p);
      continue;
    }
    ps[m] = p;
    pos[m] = at_pos;
    at[m++] = j;
  }
  if (!m) goto out;
  store_opts_t so = store_opts_of(d->cfg, d->slabs);
  warmup_opts_t wo = warm_opts(d, d->cfg, (const char *const *)props, &so);
  char why[512];
  uint64_t applied = 0, window = 0, t0 = ix_mono_ns();
  LOG_INFO("daemon", "warm start of %zu partitions under the running model %s (at most %" PRIu64
           " offsets and %" PRIu64 " s before each committed offset)", m,
           model_describe(d->model), d->cfg->model.warm_max_events, d->cfg->model.warm_window_s);
  int rc = warmstart_run(&wo, d->pipe, d->input, d->cfg->output.next_categories, ps, pos, m,
                         WARM_START_STALL_MS, warm_start_progress, d, users, &applied, &window,
                         why, sizeof why);
  double secs = (double)(ix_mono_ns() - t0) / 1e9;
  if (rc) {
    LOG_ERROR("daemon", "warm start failed after %.3f s (%s): %zu partitions start cold from "
              "their committed offsets", secs, why, m);
    goto out;
  }
  for (size_t j = 0; j < m; j++) {
    int32_t p = ps[j];
    served[at[j]] = pos[j]; /* served from where the window ends */
    inflight_assign(d->inflight, p, pos[j]); /* cannot fail: p is tracked */
    d->lag[p].start = d->lag[p].committed_off = pos[j];
    metrics_counter_inc(d->wsm.restores);
    metrics_counter_add(d->wsm.users, users[j]);
    LOG_INFO("daemon", "partition %d: states from warm start (%" PRIu64 " users, resume at %"
             PRId64 ")", (int)p, users[j], pos[j]);
    /* the changelog gets every warmed user and a new epoch (docs/STATE.md, "Model swaps") */
    if (d->clog && clog_switch_model(d->clog, p, pipeline_store(d->pipe), pos[j]))
      LOG_ERROR("daemon", "partition %d: out of memory marking the warmed users for the "
                "changelog; a restore of it misses them until they change", (int)p);
  }
  LOG_INFO("daemon", "warm start of %zu partitions done in %.3f s: %" PRIu64 " offsets read, %"
           PRIu64 " events applied", m, secs, window, applied);
out:
  free(ps);
  free(pos);
  free(users);
  free(at);
  free(props);
}

/* ---------------------------------------------------------------- restore retry */

/* A changelog read that fails (IX_EKAFKA: a leader election, a broker
 * restarting, no progress) is tried once in the assignment (the loop does
 * not sleep on it); the partition then waits, paused, and restore_timer_cb
 * starts it again after RESTORE_RETRY_MIN_MS, doubling up to
 * RESTORE_RETRY_MAX_MS, until the read succeeds or the partition is revoked
 * (docs/STATE.md, "A restore that cannot read"). */
#define RESTORE_RETRY_MIN_MS 250
#define RESTORE_RETRY_MAX_MS 30000

static int restore_clog(daemon_t *d, int32_t p, int64_t local_next, int64_t local_created_ms,
                        clog_source_t *src, int64_t *next, char *why, size_t n) {
  return standby_assign(d->standby, d->clog, p, pipeline_store(d->pipe),
                        pipeline_fingerprint(d->pipe), local_next, local_created_ms, src, next,
                        why, n);
}

static void restore_timer_cb(uv_timer_t *t);

/* States restored from the changelog that resume at offset next: when next
 * is beyond the input's end (a changelog of another cluster or topic
 * incarnation: resuming there would skip every event up to it), they are
 * dropped, p starts cold and 1 is returned; else 0. */
static int topic_beyond_end(daemon_t *d, int32_t p, int64_t next) {
  if (!beyond_end(d, p, next)) return 0;
  LOG_WARN("daemon", "partition %d: the changelog's offset %" PRId64 " is beyond the input's "
           "end; starting cold", (int)p, next);
  store_drop_partition(pipeline_store(d->pipe), p);
  clog_start_cold(d->clog, p);
  metrics_counter_inc(d->md.checkpoints_refused);
  return 1;
}

/* p's changelog could not be read: it is not served (no event applied, no
 * offset stored or committed, no checkpoint) until restore_timer_cb reads it. */
static void restore_wait(daemon_t *d, int32_t p, const char *why) {
  LOG_ERROR("daemon", "partition %d: changelog not restored (%s); the partition waits for its "
            "states (paused, nothing applied or committed) and the restore is retried; it is "
            "not served cold (docs/STATE.md, \"A restore that cannot read\")", (int)p, why);
  store_drop_partition(pipeline_store(d->pipe), p);
  inflight_assign(d->inflight, p, -1); /* cannot fail: p is tracked */
  d->lag[p].local_behind = 0;
  if (!d->restore_backoff_ms) {
    d->restore_backoff_ms = RESTORE_RETRY_MIN_MS;
    uv_timer_start(&d->restore_timer, restore_timer_cb, RESTORE_RETRY_MIN_MS, 0);
  }
}

/* What part_start decided for a partition. */
typedef struct {
  int64_t offset;     /* where its input resumes; -1: where the assignment says (committed) */
  int waiting;        /* its changelog could not be read: not served (restore_wait) */
  int other;          /* its states were another model's (other_next: their consistent
                       * offset): the caller warm-starts it (model.warm_start) */
  int64_t other_next;
  clog_source_t source; /* where the states came from (cold, local, the changelog...) */
} part_start_t;

/* What part_start does with states of another model (a local checkpoint
 * refused for its fingerprint, a changelog whose newest completion is
 * another model's): OTHER_COLD starts cold (logged as before), OTHER_WARM
 * and OTHER_RESET report it (part_start_t.other) for the caller to warm the
 * partition from the input or to reset it at their consistent offset. */
enum { OTHER_COLD = 0, OTHER_WARM, OTHER_RESET };

/* The model changed while a partition waited (lagpart_t.swapped): its
 * restore finds the old model's states and, whatever model.warm_start says,
 * warms them from the input (a warm swap: as the swap would have done had it
 * been served) or resets them at their consistent offset (model.reload =
 * reset: as the reset did to the served partitions). */
enum { SWAPPED_NO = 0, SWAPPED_WARM, SWAPPED_RESET };

/* The start of assigned partition p, decided and performed in one place for
 * the assignment and for the retry of a partition that waited: its states
 * from the local checkpoint (refused when beyond the input's end), then the
 * changelog (the whole topic, or its tail over the local checkpoint, or a
 * standby copy's tail; one read), refused when beyond the input's end; a
 * read that fails leaves p waiting (restore_wait; on a retry it keeps
 * waiting) and skips the rest; with exactly_once, the transactional
 * re-seek (txn_assigned: replay without output up to the committed offset,
 * or rebuild from the input's start). The in-flight ring starts where the
 * states resume. Returns 0, or IX_EKAFKA on a retry when the committed
 * offset cannot be read for exactly_once (p keeps waiting); at assignment
 * that failure stops the daemon (eos_fail). */
static int part_start(daemon_t *d, int32_t p, int retry, int other_mode, part_start_t *out) {
  store_t *st = pipeline_store(d->pipe);
  *out = (part_start_t){.offset = -1, .other_next = -1};
  int64_t local_next = -1, local_created_ms = -1;
  int rc;
  if (d->ckpt) {
    char why[512];
    ckpt_restore_info_t info;
    notify_extend_timeout(d->notify, 60ull * 1000000u);
    rc = ckpt_restore_partition(d->cfg->state.checkpoint_dir, p, pipeline_fingerprint(d->pipe),
                                st, &info, why, sizeof why);
    metrics_counter_add(d->md.checkpoints_skipped, info.skipped);
    if (rc == IX_EMISMATCH && other_mode) {
      if (other_mode == OTHER_WARM)
        LOG_WARN("daemon", "partition %d: checkpoint not restored (%s); its states are warmed "
                 "from the input under the running model before it is served (model.warm_start)",
                 (int)p, why);
      else
        LOG_WARN("daemon", "partition %d: checkpoint not restored (%s); the model was reset "
                 "while the partition waited: empty states from the checkpoint's offset on",
                 (int)p, why);
      store_drop_partition(st, p);
      out->other = 1;
      out->other_next = info.refused_next_offset;
    } else if (rc) {
      LOG_WARN("daemon", "partition %d: checkpoint not restored (%s); starting from the "
                         "committed offset with empty states", (int)p, why);
      store_drop_partition(st, p);
    } else if (info.generation > 0 && beyond_end(d, p, info.next_offset)) {
      /* from another cluster or an earlier incarnation of the topic:
       * resuming there would skip every event up to it */
      store_drop_partition(st, p);
      metrics_counter_inc(d->md.checkpoints_refused);
    } else if (info.generation > 0) {
      /* the checkpoint is the truth for state: resume right after it */
      out->offset = local_next = info.next_offset;
      local_created_ms = info.created_ms;
      out->source = CLOG_FROM_LOCAL;
      inflight_assign(d->inflight, p, info.next_offset); /* cannot fail: p is tracked */
      LOG_INFO("daemon", "partition %d: restored %" PRIu64 " users from checkpoint "
               "generation %" PRIu64 ", resuming at offset %" PRId64, (int)p, info.users,
               info.generation, info.next_offset);
    }
  }
  if (d->clog) {
    char why[512];
    clog_source_t src;
    int64_t next;
    notify_extend_timeout(d->notify, 60ull * 1000000u);
    rc = restore_clog(d, p, local_next, local_created_ms, &src, &next, why, sizeof why);
    if (rc == IX_EKAFKA || rc == IX_ENOMEM) {
      /* what the topic holds is unknown, or not held for want of memory:
       * not served cold, it waits */
      if (retry) {
        LOG_WARN("daemon", "partition %d: changelog still not readable (%s); it keeps waiting",
                 (int)p, why);
        store_drop_partition(st, p);
        inflight_assign(d->inflight, p, -1); /* cannot fail: p is tracked */
      } else {
        restore_wait(d, p, why);
      }
      *out = (part_start_t){.offset = -1, .waiting = 1, .other_next = -1};
      return 0;
    }
    if (rc)
      LOG_WARN("daemon", "partition %d: changelog not restored (%s); states from %s", (int)p, why,
               local_next >= 0 ? "the local checkpoint" : "nowhere (cold)");
    int from_topic = clog_from_topic(src);
    out->source = src;
    if (from_topic && topic_beyond_end(d, p, next)) {
      out->source = CLOG_FROM_COLD; /* started cold */
    } else if (from_topic) {
      out->offset = next;
      d->lag[p].local_behind = d->ckpt != NULL;
      inflight_assign(d->inflight, p, next); /* cannot fail: p is tracked */
      /* the changelog had this model's states: no warm start for the
       * refused local checkpoint of another model */
      out->other = 0;
      out->other_next = -1;
    } else if (src == CLOG_FROM_COLD && other_mode && !out->other) {
      int64_t other_next = -1;
      if (clog_other_model(d->clog, p, &other_next)) {
        if (other_mode == OTHER_WARM)
          LOG_WARN("daemon", "partition %d: the changelog holds another model's states; they are "
                   "warmed from the input under the running model before it is served "
                   "(model.warm_start)", (int)p);
        else
          LOG_WARN("daemon", "partition %d: the changelog holds another model's states; the "
                   "model was reset while the partition waited: empty states from their offset "
                   "on", (int)p);
        out->other = 1;
        out->other_next = other_next;
      }
    }
  }
  if (d->txn) {
    char why[512];
    int64_t seek = -1;
    if (txn_assigned(d->txn, p, inflight_part(d->inflight, p).consumed_next,
                     d->ckpt != NULL || d->clog != NULL, &seek, why, sizeof why)) {
      if (retry) return IX_EKAFKA;
      eos_fail(d, why);
    } else if (seek >= 0) {
      out->offset = seek; /* states rebuilt from the input (daemon/txn.h) */
      inflight_assign(d->inflight, p, seek);
    }
  }
  return 0;
}

/* Where p resumes when nothing restored says so: the group's committed
 * offset, else the low watermark (auto.offset.reset = earliest); -1 unknown.
 * *committed gets the committed offset (-1: none). */
static int64_t committed_start(daemon_t *d, int32_t p, int64_t *committed) {
  int64_t off = -1, lo = -1, hi = -1;
  *committed = -1;
  if (consumer_committed(d->consumer, p, 2000, &off)) return -1;
  if (off >= 0) return *committed = off;
  return consumer_query_watermarks(d->consumer, p, 2000, &lo, &hi) ? -1 : lo;
}

/* One more start of waiting partition p, from scratch, decided as the
 * assignment decides it (part_start); a warm start or a model reset as the
 * assignment or the swap would have done; serves p from where its states
 * resume, storing that offset for commit when it is ahead of the committed
 * one (as the assignment does: store_start_offsets). Returns 1 when p still
 * waits. */
static int restore_again(daemon_t *d, int32_t p) {
  consumer_pause(d->consumer, &p, 1);
  int64_t committed;
  int64_t fallback = committed_start(d, p, &committed);
  if (fallback < 0) return 1; /* the cluster is away: the next round */
  store_t *st = pipeline_store(d->pipe);
  store_drop_partition(st, p);
  inflight_assign(d->inflight, p, -1); /* cannot fail: p is tracked */
  d->lag[p].local_behind = 0;
  int swapped = d->lag[p].swapped;
  int other_mode = swapped == SWAPPED_RESET ? OTHER_RESET
                   : swapped == SWAPPED_WARM || warm_start_on(d) ? OTHER_WARM : OTHER_COLD;
  if (d->txn) other_mode = OTHER_COLD; /* exactly_once rebuilds from the input (txn_assigned) */
  part_start_t ps;
  if (part_start(d, p, 1, other_mode, &ps)) {
    LOG_WARN("daemon", "partition %d: restored, but the group's committed offset could not be "
             "read for exactly_once; it keeps waiting", (int)p);
    store_drop_partition(st, p);
    clog_wait(d->clog, p);
    return 1;
  }
  if (ps.waiting) return 1;
  const char *how = NULL;
  if (ps.other && other_mode == OTHER_WARM) {
    int64_t served;
    warm_start(d, &p, &ps.other_next, 1, &served);
    ps.offset = served;
    how = served >= 0 ? "warm start" : "cold (the warm start failed)";
  } else if (ps.other) {
    /* a reset while it waited: empty states from where its states were
     * consistent, in a new changelog epoch of the running model */
    ps.offset = other_model_pos(d, p, ps.other_next);
    if (ps.offset >= 0) {
      inflight_assign(d->inflight, p, ps.offset); /* cannot fail: p is tracked */
      if (clog_switch_model(d->clog, p, st, ps.offset))
        LOG_ERROR("daemon", "partition %d: out of memory starting the changelog's new epoch",
                  (int)p);
      how = "the model reset while it waited (empty states)";
    }
  }
  int64_t seek = ps.offset >= 0 ? ps.offset : fallback;
  if (consumer_seek(d->consumer, p, seek, 5000)) {
    LOG_WARN("daemon", "partition %d: restored, but its input cannot be moved to offset %" PRId64
             "; it keeps waiting", (int)p, seek);
    store_drop_partition(st, p);
    inflight_assign(d->inflight, p, -1); /* cannot fail: p is tracked */
    clog_wait(d->clog, p);
    return 1;
  }
  d->lag[p].swapped = SWAPPED_NO;
  d->lag[p].start = seek;
  if (committed >= 0) d->lag[p].committed_off = committed;
  /* as store_start_offsets at assignment: with no new input the committed
   * offset would otherwise stay behind the restored one for good */
  if (ps.offset >= 0 && ps.offset > committed && consumer_store_offset(d->consumer, p, seek))
    LOG_WARN("daemon", "partition %d: storing the restored offset %" PRId64 " for commit failed; "
             "the next processed message stores it", (int)p, seek);
  if (!d->paused) consumer_resume(d->consumer, &p, 1);
  LOG_INFO("daemon", "partition %d: restored after waiting (states from %s); served from input "
           "offset %" PRId64, (int)p, how ? how : metrics_state_source_label[ps.source], seek);
  /* a model warming up did not read p: it warms again with p in the set */
  if (d->warm) swap_restart(d);
  return 0;
}

static void restore_timer_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  int left = 0;
  for (int32_t p = 0; p < inflight_partitions(d->inflight); p++)
    if (owns(d, p) && clog_waiting(d->clog, p)) {
      notify_extend_timeout(d->notify, 60ull * 1000000u);
      left += restore_again(d, p);
    }
  if (!left || d->phase != RUNNING) {
    d->restore_backoff_ms = 0;
    return;
  }
  d->restore_backoff_ms *= 2;
  if (d->restore_backoff_ms > RESTORE_RETRY_MAX_MS) d->restore_backoff_ms = RESTORE_RETRY_MAX_MS;
  uv_timer_start(&d->restore_timer, restore_timer_cb, d->restore_backoff_ms, 0);
}

static void on_rebalance(void *ctx, consumer_event_t ev, consumer_part_t *parts, size_t n) {
  daemon_t *d = ctx;
  char list[512];
  size_t len = 0;
  list[0] = '\0';
  for (size_t i = 0; i < n && len < sizeof list - 16; i++)
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", i ? "," : "",
                            (int)parts[i].partition);
  if ((unsigned)ev < 3) metrics_counter_inc(d->md.rebalances[ev]);
  static const char *const events[3] = {"assign", "revoke", "lost"};
  metrics_info_set(d->md.last_rebalance, "event", (unsigned)ev < 3 ? events[ev] : "other",
                   "partitions", list, NULL);
  if (ev == CONSUMER_ASSIGN) {
    int wm_timeout = 0;
    size_t *ws_idx = calloc(n + 1, sizeof *ws_idx), n_ws = 0; /* to warm-start */
    int64_t *ws_ckpt = calloc(n + 1, sizeof *ws_ckpt); /* their refused checkpoints' offsets */
    if (!ws_ckpt) {
      free(ws_idx);
      ws_idx = NULL;
    }
    if (!ws_idx) LOG_ERROR("daemon", "out of memory: no warm start in this assignment");
    /* exactly_once: commit first; reading the new partitions' committed
     * offsets can wait for another member's open transaction (up to its
     * transaction.timeout.ms), and ours must not time out meanwhile */
    if (d->txn && txn_open(d->txn) && !d->exit_code) eos_commit(d);
    clog_prefetch_assigned(d, parts, n);
    for (size_t i = 0; i < n; i++) {
      int32_t p = parts[i].partition;
      int rc = inflight_assign(d->inflight, p, -1);
      if (rc == 0 && p >= d->n_lag) {
        int32_t n_lag = d->n_lag ? d->n_lag : 16;
        while (n_lag <= p) n_lag *= 2;
        lagpart_t *lag = realloc(d->lag, (size_t)n_lag * sizeof *lag);
        if (!lag) rc = IX_ENOMEM;
        else {
          memset(lag + d->n_lag, 0, (size_t)(n_lag - d->n_lag) * sizeof *lag);
          d->lag = lag;
          d->n_lag = n_lag;
        }
      }
      if (rc) {
        /* not tracked, so never processed (process_batch skips it) nor committed */
        LOG_ERROR("daemon", "partition %d cannot be tracked: %s", (int)p, ix_strerror(rc));
        inflight_revoke(d->inflight, p);
        continue;
      }
      d->owned++;
      d->lag[p].local_behind = 0;
      ckpt_forget_partition(d, p);
      store_drop_partition(pipeline_store(d->pipe), p);
      if (d->shadow_pipe) store_drop_partition(pipeline_store(d->shadow_pipe), p);
      d->lag[p].swapped = SWAPPED_NO;
      part_start_t ps;
      part_start(d, p, 0, ws_idx && warm_start_on(d) ? OTHER_WARM : OTHER_COLD, &ps);
      if (ps.waiting) {
        parts[i].offset = CONSUMER_OFFSET_COMMITTED; /* restore_timer_cb serves it */
      } else {
        if (ps.offset >= 0) parts[i].offset = ps.offset;
        if (ps.other) {
          ws_ckpt[n_ws] = ps.other_next;
          ws_idx[n_ws++] = i;
        }
      }
      d->lag[p].gauge = metrics_daemon_lag(&d->md, p);
      d->lag[p].start = inflight_part(d->inflight, p).consumed_next;
      d->lag[p].committed_off = -1;
      if (d->lag[p].start < 0) {
        /* the committed offset, once, so the lag of a partition that never
         * gets a message is still right; a short bound: the coordinator
         * just answered */
        int64_t committed;
        if (consumer_committed(d->consumer, p, 1000, &committed) == 0 && committed >= 0)
          d->lag[p].start = d->lag[p].committed_off = committed;
      }
      /* the watermarks, once: the client learns them only from a fetch,
       * which a partition paused from the start does not make; nothing
       * committed means consumption starts at the low one (earliest).
       * After one timeout the rest of this assignment is not asked. */
      int64_t lo = -1, hi = -1;
      d->lag[p].hi = -1;
      if (!wm_timeout && consumer_query_watermarks(d->consumer, p, 1000, &lo, &hi) == 0) {
        d->lag[p].hi = hi;
        if (d->lag[p].start < 0) d->lag[p].start = lo;
      } else {
        wm_timeout = 1;
      }
      d->progress_ns = ix_mono_ns();
    }
    if (d->clog) clog_prefetch(d->clog, NULL, 0);
    if (n_ws) {
      int32_t *ws_p = malloc(n_ws * sizeof *ws_p);
      int64_t *ws_at = malloc(n_ws * sizeof *ws_at);
      if (ws_p && ws_at) {
        for (size_t j = 0; j < n_ws; j++) ws_p[j] = parts[ws_idx[j]].partition;
        warm_start(d, ws_p, ws_ckpt, n_ws, ws_at);
        for (size_t j = 0; j < n_ws; j++)
          if (ws_at[j] >= 0) parts[ws_idx[j]].offset = ws_at[j];
      } else {
        LOG_ERROR("daemon", "out of memory: %zu partitions start cold", n_ws);
      }
      free(ws_p);
      free(ws_at);
    }
    free(ws_idx);
    free(ws_ckpt);
    d->input_parts = 0; /* read again by the next GET /v1/users (the topic may have grown) */
    if (d->warm && n) swap_restart(d);
    LOG_INFO("daemon", "assigned partitions [%s] of %s (now %u owned)", list,
             d->cfg->kafka.input_topic, d->owned);
    metrics_gauge_set(d->md.partitions_assigned, d->owned);
    standby_refresh(d);
    send_ready(d);
    return;
  }
  if (d->txn) eos_end(d, ev);
  if (ev == CONSUMER_REVOKE) wait_inflight(d, parts, n);
  int uncommitted = 0; /* stored offsets beyond what is known committed */
  for (size_t i = 0; i < n; i++) {
    int32_t p = parts[i].partition;
    if (!owns(d, p)) continue;
    if (ev == CONSUMER_REVOKE) {
      part_advance(d, p);
      ckpt_partition_now(d, p);
      if (d->clog) clog_partition_now(d, p);
      part_advance(d, p);
      if (inflight_part(d->inflight, p).stored_next > d->lag[p].committed_off) uncommitted = 1;
    }
    ckpt_forget_partition(d, p);
    if (d->warm) warmup_drop_partition(d->warm, p);
    if (d->clog) clog_revoke(d->clog, p);
    d->lag[p].swapped = SWAPPED_NO;
    store_drop_partition(pipeline_store(d->pipe), p);
    if (d->shadow_pipe) store_drop_partition(pipeline_store(d->shadow_pipe), p);
    inflight_revoke(d->inflight, p);
    if (d->txn) txn_revoked(d->txn, p);
    if (d->lag[p].gauge) metrics_gauge_delete(d->metrics, d->lag[p].gauge);
    d->lag[p].gauge = NULL;
    if (d->lag[p].committed) metrics_gauge_delete(d->metrics, d->lag[p].committed);
    d->lag[p].committed = NULL;
    d->owned--;
    if (!d->owned) d->unowned_since_ns = ix_mono_ns();
  }
  if (ev == CONSUMER_REVOKE && consumer_commit(d->consumer)) {
    metrics_counter_inc(d->md.commit_failures);
    if (d->phase != RUNNING && uncommitted) d->final_commit_failed = 1;
  }
  LOG_INFO("daemon", "%s partitions [%s] (now %u owned)",
           ev == CONSUMER_LOST ? "lost" : "revoked", list, d->owned);
  metrics_gauge_set(d->md.partitions_assigned, d->owned);
  if (d->phase == RUNNING) standby_refresh(d);
}

/* ---------------------------------------------------------------- shutdown */

static void close_handle(uv_handle_t *h) {
  if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

static void walk_close(uv_handle_t *h, void *arg) { close_handle(h); }

static void finish_stop(daemon_t *d) {
  if (d->phase >= CLOSING) return;
  d->phase = CLOSING;
  uv_timer_stop(&d->stop_timer);
  if (d->outstanding || backlog_len(d->backlog))
    LOG_WARN("daemon", "shutdown timeout: %" PRIu64 " messages unacknowledged; their input "
             "offsets stay uncommitted and will be re-processed", d->outstanding + backlog_len(d->backlog));
  if (rsink_backlog(d->redis))
    LOG_WARN("daemon", "shutdown timeout: %" PRIu64 " predictions not written to Redis; their "
             "input offsets stay uncommitted and will be re-processed", rsink_backlog(d->redis));
  advance_dirty(d);
  /* leave the group: revokes everything (checkpoint, commit) through on_rebalance;
   * during the group join it may wait for the first assignment (stream/consumer.h) */
  uint64_t close_left =
      d->stop_deadline_ms > ix_mono_ms() ? d->stop_deadline_ms - ix_mono_ms() : 0;
  consumer_close(d->consumer, (int)(close_left > 1000 ? close_left : 1000));
  if (d->final_commit_failed) {
    LOG_ERROR("daemon", "the final offset commit failed: the events after the group's last "
                        "committed offsets will be read and their predictions sent again by the "
                        "next owner; exiting with status 1");
    if (!d->exit_code) d->exit_code = IX_EKAFKA;
  }
  uint64_t left = d->stop_deadline_ms > ix_mono_ms() ? d->stop_deadline_ms - ix_mono_ms() : 0;
  if (producer_flush(d->producer, (int)(left > 1000 ? left : 1000)))
    LOG_WARN("daemon", "producer not fully flushed at shutdown");
  /* the revocations above wrote every partition synchronously */
  if (d->ckpt) ckpt_snapshot_abort(d->ckpt);
  d->ck_active = 0;
  rsink_destroy(d->redis);
  d->redis = NULL;
  standby_stop(d->standby);
  uv_poll_stop(&d->consumer_poll);
  uv_poll_stop(&d->producer_poll);
  close_handle((uv_handle_t *)&d->consumer_poll);
  close_handle((uv_handle_t *)&d->producer_poll);
  if (d->ckpt_poll_active) close_handle((uv_handle_t *)&d->ckpt_poll);
  uv_timer_t *timers[] = {&d->kick_timer,   &d->batch_timer,  &d->retry_timer,
                          &d->ckpt_timer,   &d->expire_timer, &d->status_timer,
                          &d->stop_timer,   &d->ckpt_slice_timer, &d->redis_timer,
                          &d->clog_timer,   &d->warm_timer, &d->txn_timer,
                          &d->restore_timer};
  for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
    close_handle((uv_handle_t *)timers[i]);
  if (d->handle_signals) {
    close_handle((uv_handle_t *)&d->sig_term);
    close_handle((uv_handle_t *)&d->sig_int);
    close_handle((uv_handle_t *)&d->sig_hup);
    /* closing restored the default action (termination): a signal during
     * the rest of the teardown is ignored instead, the stop is under way */
    set_disposition(SIG_IGN);
  }
  if (d->http) http_server_close(d->http, NULL, NULL);
  d->http = NULL;
  if (d->notify) notify_close(d->notify);
  d->notify = NULL;
  loopstat_close(d->loopstat);
  LOG_INFO("daemon", "stopped: consumed %" PRIu64 ", processed %" PRIu64 ", rejected %" PRIu64
           ", produced %" PRIu64 ", delivered %" PRIu64 ", dlq %" PRIu64 "/%" PRIu64
           ", failed deliveries %" PRIu64,
           d->st.consumed, d->st.processed, d->st.rejected, d->st.produced, d->st.delivered,
           d->st.dlq_produced, d->st.dlq_delivered, d->st.failed);
  d->phase = CLOSED;
}

static void stop_timer_cb(uv_timer_t *t) { finish_stop(t->data); }

void daemon_stop(daemon_t *d) {
  if (d->phase == STOPPING) {
    LOG_WARN("daemon", "second stop request: not waiting for in-flight messages");
    finish_stop(d);
    return;
  }
  if (d->phase != RUNNING) return;
  d->phase = STOPPING;
  notify_stopping(d->notify);
  if (d->on_stop) d->on_stop(d->ctx);
  LOG_INFO("daemon", "stopping: %" PRIu64 " messages in flight", d->outstanding + backlog_len(d->backlog));
  uv_poll_stop(&d->consumer_poll);
  uv_timer_stop(&d->kick_timer);
  uv_timer_stop(&d->batch_timer);
  uv_timer_stop(&d->ckpt_timer);
  swap_abandon(d, "stopping"); /* the old model's checkpoints stay the truth */
  uint64_t ms = (uint64_t)d->cfg->daemon.shutdown_timeout_s * 1000u;
  /* keep most of the budget for waiting, the rest for commit and flush */
  uint64_t wait = ms * 3 / 4;
  d->stop_deadline_ms = ix_mono_ms() + ms;
  uv_timer_start(&d->stop_timer, stop_timer_cb, wait, 0);
  serve_deliveries(d);
}


/* ---------------------------------------------------------------- warm swap */

/* model.reload = warm (daemon/warmup.h): the running model keeps serving
 * every event while a worker builds the new model's states from a window of
 * the input topic; when it is within a few batches of the serving position
 * the loop stops for the last gap (at most WARM_SWITCH_WAIT_MS) and swaps
 * the pipelines. Checkpoints stay the old model's until the switch; the
 * first checkpoint after it rewrites every owned partition. */

static void warm_timer_cb(uv_timer_t *t);

/* The serving pipeline's next offset of owned partition p (-1 = unknown). */
static int64_t serving_next(daemon_t *d, int32_t p) {
  int64_t next = inflight_part(d->inflight, p).consumed_next;
  if (next < 0 && p < d->n_lag) next = d->lag[p].start;
  return next;
}

static void swap_abandon(daemon_t *d, const char *why) {
  if (!d->warm) return;
  LOG_WARN("daemon", "model swap abandoned (%s); model %s keeps serving", why,
           model_describe(d->model));
  warmup_destroy(d->warm);
  d->warm = NULL;
  uv_timer_stop(&d->warm_timer);
  metrics_gauge_set(d->wm.state, 0);
  metrics_gauge_set(d->wm.behind, 0);
  metrics_counter_inc(d->wm.swaps[1]);
}

/* Starts warming m (taken on success) for every owned partition, with the
 * emission policy and batch size of ncfg. Returns 0 or a negative IX_E*
 * (logged; m stays the caller's). */
static int swap_begin(daemon_t *d, model_t *m, const config_t *ncfg) {
  char why[512];
  if (d->txn) {
    /* the transaction cycle keeps undo copies in the serving store and its
     * hooks on the serving pipeline, both replaced by a swap */
    LOG_ERROR("daemon", "reload refused: model.reload = warm does not support "
              "kafka.processing_guarantee = exactly_once yet; keeping model %s",
              model_describe(d->model));
    return IX_ECONFIG;
  }
  int32_t np = inflight_partitions(d->inflight);
  int32_t *parts = malloc(((size_t)np + 1) * sizeof *parts);
  int64_t *pos = malloc(((size_t)np + 1) * sizeof *pos);
  char **props = kafka_props(d->cfg, d->cfg->kafka.consumer_props);
  char *path = strdup(ncfg->model.path);
  int rc = IX_ENOMEM;
  if (!parts || !pos || !props || !path) goto out;
  size_t n = 0;
  /* a partition waiting for its states has none to warm nor a position to
   * warm up to: its restore warms it once it reads them (restore_again) */
  for (int32_t p = 0; p < np; p++)
    if (owns(d, p) && !clog_waiting(d->clog, p)) {
      parts[n] = p;
      pos[n++] = serving_next(d, p);
    }
  store_opts_t so = store_opts_of(d->cfg, d->slabs);
  warmup_opts_t wo = warm_opts(d, ncfg, (const char *const *)props, &so);
  rc = warmup_start(&wo, m, parts, pos, n, &d->warm, why, sizeof why);
  if (rc) {
    LOG_ERROR("daemon", "reload refused: cannot warm model %s up: %s", ncfg->model.path, why);
    goto out;
  }
  free(d->warm_path);
  d->warm_path = path;
  path = NULL;
  d->warm_counted = 0;
  metrics_gauge_set(d->wm.state, 1);
  metrics_gauge_set(d->wm.pause, 0);
  uv_timer_start(&d->warm_timer, warm_timer_cb, WARM_TICK_MS, WARM_TICK_MS);
  LOG_INFO("daemon", "model %s (%s, fingerprint %08x) warming up on %zu partitions from the "
           "input topic (at most %" PRIu64 " offsets and %" PRIu64 " s back); model %s keeps "
           "serving", ncfg->model.path, model_describe(m), model_fingerprint(m), n,
           ncfg->model.warm_max_events, ncfg->model.warm_window_s, model_describe(d->model));
out:
  free(parts);
  free(pos);
  free(props);
  free(path);
  return rc;
}

/* A rebalance assigned partitions during a warm-up: warm again from the new
 * set (a partition never mixes states of a warm-up that did not read it). */
static void swap_restart(daemon_t *d) {
  if (!d->warm || !d->warm_path) return;
  char *path = strdup(d->warm_path);
  swap_abandon(d, "partitions were assigned; warming again with the new set");
  char why[512];
  model_t *m = NULL;
  if (!path || model_load(path, &m, why, sizeof why)) {
    LOG_ERROR("daemon", "model swap not restarted: %s: %s", path ? path : "?",
              path ? why : "out of memory");
    free(path);
    return;
  }
  model_set_next_count(m, d->cfg->output.next_categories);
  if (swap_begin(d, m, d->cfg)) model_destroy(m);
  free(path);
}

/* After a switch with a changelog topic (docs/STATE.md, "Model swaps"), a
 * warm one or a reset (model.reload = reset: the new store is empty): the
 * hooks follow the new pipeline and store, each owned partition's next
 * changelog checkpoint writes every user with the new fingerprint and
 * starts a new epoch, and the standby copies follow again for the new model.
 * A partition waiting for its states (none in either store) is marked
 * (SWAPPED_WARM or SWAPPED_RESET): its restore finds the old model's states
 * and warms or resets them (restore_again). */
static void swap_changelog(daemon_t *d, int reset) {
  store_t *st = pipeline_store(d->pipe);
  pipeline_set_hooks(d->pipe, clog_skip, clog_applied, d->clog);
  store_set_evict_hook(st, clog_evicted, d->clog);
  for (int32_t p = 0; p < inflight_partitions(d->inflight); p++) {
    if (!owns(d, p)) continue;
    if (clog_waiting(d->clog, p)) {
      store_drop_partition(st, p);
      d->lag[p].swapped = reset ? SWAPPED_RESET : SWAPPED_WARM;
      LOG_INFO("daemon", "partition %d waits for its states through the model %s: its restore "
               "%s the old model's states", (int)p, reset ? "reset" : "swap",
               reset ? "resets, at their consistent offset," : "warms, from the input,");
      continue;
    }
    int rc = clog_switch_model(d->clog, p, st, serving_next(d, p));
    if (rc)
      LOG_ERROR("daemon", "partition %d: the changelog cannot be rewritten for the new model "
                "(%s): a restore of it starts cold until its users change", (int)p,
                ix_strerror(rc));
  }
  if (standby_switch_model(d->standby, pipeline_fingerprint(d->pipe), store_blob_size(st)))
    LOG_ERROR("daemon", "standby copies not renewed for the new model (out of memory): a "
              "hand-over from them starts cold");
}

/* Between batches: the warmed model replaces the serving one. The loop
 * processes nothing in here, so the ceilings hold still while the worker
 * applies the last gap. Returns 1 when switched. */
static int swap_switch(daemon_t *d) {
  uint64_t t0 = ix_mono_ns();
  pipeline_t *pipe = NULL;
  model_t *m = NULL;
  int rc = warmup_finish(d->warm, WARM_SWITCH_WAIT_MS, d->input, &pipe, &m);
  double paused = (double)(ix_mono_ns() - t0) / 1e9;
  metrics_gauge_set(d->wm.pause, paused);
  if (rc == 1) {
    LOG_INFO("daemon", "model swap: the warm-up did not catch up within %d ms; serving on and "
             "trying again in %d ms", WARM_SWITCH_WAIT_MS, WARM_RETRY_MS);
    d->warm_retry_ms = ix_mono_ms() + WARM_RETRY_MS;
    return 0;
  }
  if (rc) {
    swap_abandon(d, warmup_error(d->warm));
    return 0;
  }
  d->warm = NULL; /* freed by warmup_finish */
  uv_timer_stop(&d->warm_timer);
  if (d->ckpt) {
    /* the old store is about to go: no snapshot may copy from it */
    ckpt_snapshot_abort(d->ckpt);
    ckpt_pump(d);
  }
  uint32_t old_fp = pipeline_fingerprint(d->pipe);
  pipeline_destroy(d->pipe);
  model_destroy(d->model);
  d->pipe = pipe;
  d->model = m;
  pipeline_set_emit(d->pipe, &d->cfg->emit);
  pipeline_quality_reset(d->pipe); /* live quality counts live events only */
  metrics_daemon_set_model(&d->md, model_fingerprint(d->model), model_describe(d->model));
  if (quality_metrics_bind(&d->qm, d->md.reg, model_fingerprint(d->model)))
    LOG_WARN("daemon", "cannot register the quality metrics of the new model");
  metrics_gauge_set(d->wm.state, 0);
  metrics_gauge_set(d->wm.behind, 0);
  metrics_counter_inc(d->wm.swaps[0]);
  store_stats_t ss;
  store_get_stats(pipeline_store(d->pipe), &ss);
  LOG_INFO("daemon", "model swapped: %s (fingerprint %08x, was %08x) serves from now on with "
           "%" PRIu64 " warm users; input paused %.3f s", model_describe(d->model),
           model_fingerprint(d->model), old_fp, ss.users, paused);
  if (d->clog) swap_changelog(d, 0);
  if (d->ckpt || d->clog) {
    /* every partition's file and changelog records carry the old
     * fingerprint: rewrite them all */
    d->ck_force = d->ckpt != NULL;
    uint64_t ms = (uint64_t)d->cfg->state.checkpoint_interval_s * 1000u;
    uv_timer_start(&d->ckpt_timer, ckpt_timer_cb, 10, ms);
  }
  return 1;
}

static void warm_timer_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  if (!d->warm || d->phase != RUNNING) return;
  for (int32_t p = 0; p < inflight_partitions(d->inflight); p++)
    if (owns(d, p) && !clog_waiting(d->clog, p)) {
      int64_t next = serving_next(d, p);
      if (next >= 0) warmup_advance(d->warm, p, next);
    }
  warmup_stats_t st;
  warmup_get_stats(d->warm, &st);
  metrics_gauge_set(d->wm.window, (double)st.window);
  metrics_gauge_set(d->wm.behind, (double)st.behind);
  metrics_counter_add(d->wm.applied, st.applied - d->warm_counted);
  d->warm_counted = st.applied;
  if (st.state == WARMUP_FAILED) {
    swap_abandon(d, warmup_error(d->warm));
    return;
  }
  if (st.behind <= 4u * d->cfg->batch.max_events && ix_mono_ms() >= d->warm_retry_ms)
    swap_switch(d);
}

/* ---------------------------------------------------------------- reload */

/* SIGHUP: re-reads the config and the model; on any error keeps the old
 * ones (logged). Returns 0 when the new config is in service. A reset
 * (model.reload = reset, another fingerprint) drops every state and, as
 * a warm swap's switch does, starts the next checkpoint at once: it
 * rewrites every owned partition's local file (empty where no event came
 * since) and changelog epoch with the new fingerprint, so that a restart
 * with the new model resumes each partition at or after the reset. */
static int reload(daemon_t *d) {
  /* before the first READY=1 (a SIGHUP during start-up) systemd hears of
   * neither: READY=1 waits for the first assignment (send_ready()) */
  if (d->ready_sent) notify_reloading(d->notify);
  char why[512];
  config_t *cfg = NULL;
  model_t *m = NULL;
  int rc = config_load(d->config_path, (const char *const *)d->overrides, d->n_overrides, &cfg,
                       why, sizeof why);
  if (rc) {
    LOG_ERROR("daemon", "reload refused, keeping the running configuration: %s", why);
    goto out;
  }
  rc = model_load(cfg->model.path, &m, why, sizeof why);
  if (rc) {
    LOG_ERROR("daemon", "reload refused, keeping the running model: %s: %s", cfg->model.path,
              why);
    goto out;
  }
  model_set_next_count(m, d->cfg->output.next_categories); /* [output] keeps its running value */
  uint32_t old_fp = pipeline_fingerprint(d->pipe);
  if (d->warm) swap_abandon(d, "a new reload came");
  if (cfg->model.reload == MODEL_RELOAD_WARM && (model_fingerprint(m) != old_fp ||
                                                 model_state_size(m) != model_state_size(d->model))) {
    if ((rc = swap_begin(d, m, cfg))) goto out;
    m = NULL; /* the warm-up has it */
    goto live;
  }
  if (d->ckpt && (model_fingerprint(m) != old_fp ||
                  model_state_size(m) != model_state_size(d->model))) {
    /* the store may be replaced: a snapshot must not be copying from it */
    ckpt_snapshot_abort(d->ckpt);
    ckpt_pump(d);
  }
  /* exactly_once: a reset replaces the store the open transaction's undo
   * copies belong to; commit it first */
  if (d->txn && txn_open(d->txn)) eos_commit(d);
  int replaced = model_fingerprint(m) != old_fp ||
                 model_state_size(m) != model_state_size(d->model); /* with reset: a new store */
  rc = pipeline_set_model(d->pipe, m, cfg->model.reload == MODEL_RELOAD_RESET);
  if (rc) {
    LOG_ERROR("daemon", "reload refused: model %s (%s) has another state fingerprint "
              "(%08x, running %08x); its states would be meaningless to the old ones. Restart "
              "to change models, or set model.reload = reset to drop all states on reload",
              cfg->model.path, model_describe(m), model_fingerprint(m), old_fp);
    goto out;
  }
  if (model_fingerprint(m) != old_fp)
    LOG_WARN("daemon", "model reloaded with a new fingerprint: every user's state was reset");
  /* the reset's empty store: its evictions get tombstones, and a new epoch
   * supersedes the old model's records and the users dropped here (a
   * restore with the new model holds only the users changed since) */
  if (replaced && d->clog) swap_changelog(d, 1);
  if (replaced && (d->ckpt || d->clog)) {
    /* as after a warm swap: every owned partition's local file still holds
     * the old model's states, which a restart with the new model refuses
     * (cold from the committed offset, possibly before the reset); the next
     * checkpoint, brought forward, rewrites them all with the new model's
     * states (none where no event came since the reset) */
    d->ck_force = d->ckpt != NULL;
    uint64_t ms = (uint64_t)d->cfg->state.checkpoint_interval_s * 1000u;
    uv_timer_start(&d->ckpt_timer, ckpt_timer_cb, 10, ms);
  }
  model_destroy(d->model);
  d->model = m;
  m = NULL;
  metrics_daemon_set_model(&d->md, model_fingerprint(d->model), model_describe(d->model));
  if (quality_metrics_bind(&d->qm, d->md.reg, model_fingerprint(d->model)))
    LOG_WARN("daemon", "cannot register the quality metrics of the reloaded model");
live:;
  /* kafka, state and metrics settings need a restart */
  const config_t *o = d->cfg;
  if (strcmp(o->kafka.brokers, cfg->kafka.brokers) || strcmp(o->kafka.group, cfg->kafka.group) ||
      strcmp(o->kafka.input_topic, cfg->kafka.input_topic) ||
      strcmp(o->kafka.output_topic, cfg->kafka.output_topic) ||
      strcmp(o->kafka.dlq_topic, cfg->kafka.dlq_topic) ||
      strcmp(o->state.checkpoint_dir, cfg->state.checkpoint_dir) ||
      strcmp(o->state.changelog_mode, cfg->state.changelog_mode) ||
      strcmp(o->state.changelog_topic, cfg->state.changelog_topic) ||
      o->state.memory_limit_mb != cfg->state.memory_limit_mb ||
      o->state.pretouch_mb != cfg->state.pretouch_mb ||
      strcmp(o->metrics.listen, cfg->metrics.listen) || o->metrics.port != cfg->metrics.port ||
      memcmp(&o->output, &cfg->output, sizeof o->output) || o->input.format != cfg->input.format)
    LOG_WARN("daemon", "reload: changes to [kafka], [state], [metrics], [input] and [output] "
                       "take effect only after a restart");
  /* take the new values that apply live; keep the running ones for the rest */
  d->cfg->emit = cfg->emit;
  d->cfg->batch = cfg->batch;
  d->cfg->log = cfg->log;
  d->cfg->daemon = cfg->daemon;
  d->cfg->model.reload = cfg->model.reload;
  char *tmp = d->cfg->model.path;
  d->cfg->model.path = cfg->model.path;
  cfg->model.path = tmp;
  log_set_level(d->cfg->log.level);
  pipeline_set_emit(d->pipe, &d->cfg->emit);
  if (d->warm)
    LOG_INFO("daemon", "reloaded: model %s warming up, %s serving meanwhile; emit policy %s",
             d->cfg->model.path, model_describe(d->model),
             config_policy_name(d->cfg->emit.policy));
  else
    LOG_INFO("daemon", "reloaded: model %s (%s), emit policy %s", d->cfg->model.path,
             model_describe(d->model), config_policy_name(d->cfg->emit.policy));
  rc = 0;
out:
  model_destroy(m);
  config_destroy(cfg);
  if (d->ready_sent) notify_ready(d->notify);
  return rc;
}

static void signal_cb(uv_signal_t *s, int signum) {
  daemon_t *d = s->data;
  if (signum == SIGHUP) {
    LOG_INFO("daemon", "SIGHUP: reloading configuration and model");
    reload(d);
    return;
  }
  LOG_INFO("daemon", "%s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  daemon_stop(d);
}

/* ---------------------------------------------------------------- timers */

static void expire_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  size_t n = store_expire(pipeline_store(d->pipe), ix_wall_ms());
  d->st.evicted_ttl += n;
  if (n) LOG_DEBUG("daemon", "expired %zu idle users", n);
}

/* High watermark minus the next offset to consume: the one after the last
 * consumed message, else where consumption starts (restored checkpoint,
 * committed offset, else the low watermark). -1 when the watermarks are
 * not known yet. */
static int64_t part_lag(daemon_t *d, int32_t p) {
  int64_t hi = consumer_high_watermark(d->consumer, p);
  if (p < d->n_lag && d->lag[p].hi > hi) hi = d->lag[p].hi;
  if (hi < 0) return -1;
  int64_t pos = inflight_part(d->inflight, p).consumed_next;
  if (pos < 0 && p < d->n_lag) pos = d->lag[p].start;
  if (pos < 0) pos = consumer_low_watermark(d->consumer, p);
  if (pos < 0) return -1;
  return hi > pos ? hi - pos : 0;
}

static void update_gauges(daemon_t *d) {
  store_stats_t ss;
  store_get_stats(pipeline_store(d->pipe), &ss);
  metrics_gauge_set(d->md.users_in_state, (double)ss.users);
  metrics_gauge_set(d->md.state_bytes, (double)ss.bytes);
  slab_pool_stats_t ps;
  slab_pool_get_stats(d->slabs, &ps);
  metrics_gauge_set(d->md.state_pool_bytes, (double)ps.held_bytes);
  metrics_counter_set(d->md.state_chunks_pool, ps.reused_chunks);
  metrics_counter_set(d->md.state_chunks_fresh, ps.fresh_chunks);
  metrics_counter_set(d->md.state_memory_failures, ps.failed_takes);
  memory_failures_note(d, &ps, &ss);
  pretouch_note(d, &ps);
  metrics_counter_set(d->md.evictions_lru, ss.evicted_lru);
  metrics_counter_set(d->md.evictions_ttl, ss.evicted_ttl);
  for (int32_t i = 0; i < d->n_lag; i++) {
    if (!d->lag[i].gauge || !owns(d, i)) continue;
    int64_t lag = part_lag(d, i);
    if (lag >= 0) metrics_gauge_set(d->lag[i].gauge, (double)lag);
  }
  metrics_gauge_set(d->md.consumer_paused, d->paused);
  metrics_gauge_set(d->md.retry_backlog, (double)backlog_len(d->backlog));
}

static void collect_cb(void *arg, metrics_t *reg) {
  update_gauges(arg);
  redis_collect(arg);
}

static void status_cb(uv_timer_t *t) {
  daemon_t *d = t->data;
  update_gauges(d);
  log_flush_suppressed(); /* counts of rate-limited log lines (common/log.h) */
  notify_status(d->notify, "%u partitions, consumed %" PRIu64 ", produced %" PRIu64
                ", delivered %" PRIu64 ", rejected %" PRIu64 ", in flight %" PRIu64,
                d->owned, d->st.consumed, d->st.produced, d->st.delivered, d->st.rejected,
                d->outstanding + backlog_len(d->backlog));
}

static int health_cb(void *arg, char *reason, size_t reason_size) {
  daemon_t *d = arg;
  if (d->phase != RUNNING) {
    snprintf(reason, reason_size, "stopping");
    return 0;
  }
  if (!d->ready_sent) {
    snprintf(reason, reason_size, "waiting for a partition assignment");
    return 0;
  }
  if (d->redis && !rsink_up(d->redis)) {
    rsink_stats_t rs;
    rsink_get_stats(d->redis, &rs);
    snprintf(reason, reason_size, "redis sink down (%s): %" PRIu64 " predictions waiting%s",
             rs.last_error[0] ? rs.last_error : "connecting", rs.backlog,
             d->paused ? ", consumption paused" : "");
    return 0;
  }
  uint64_t stall_ns = (uint64_t)d->cfg->daemon.health_stall_s * 1000000000ull;
  if (!stall_ns) return 1;
  uint64_t now = ix_mono_ns();
  if (!d->owned && now - d->unowned_since_ns > stall_ns) {
    snprintf(reason, reason_size, "owns no input partition for %.0f s (more group members than "
             "partitions, or the group coordinator is unreachable)",
             (double)(now - d->unowned_since_ns) / 1e9);
    return 0;
  }
  if (d->paused && now - d->paused_since_ns > stall_ns) {
    snprintf(reason, reason_size, "consumption paused for %.0f s: %" PRIu64 " messages in the "
             "retry backlog, %" PRIu64 " unacknowledged (see interestd_produce_failures_total)",
             (double)(now - d->paused_since_ns) / 1e9, backlog_len(d->backlog), d->outstanding);
    return 0;
  }
  int64_t waiting = 0;
  for (int32_t i = 0; i < d->n_lag; i++) {
    if (!owns(d, i)) continue;
    int64_t lag = part_lag(d, i);
    if (lag > 0) waiting += lag;
  }
  if (!waiting) d->progress_ns = now; /* nothing to consume counts as keeping up */
  else if (now - d->progress_ns > stall_ns) {
    snprintf(reason, reason_size, "stalled: %" PRId64 " messages waiting on owned partitions, "
             "none consumed for %.0f s", waiting, (double)(now - d->progress_ns) / 1e9);
    return 0;
  }
  return 1;
}

/* GET /v1/users/<id>: the user's current prediction from the in-memory state
 * when this process owns the user's partition (in the output topic's
 * format); otherwise 404 naming the partition. */
static int user_cb(void *arg, uint64_t user, const char **ctype, const char **body,
                   size_t *len) {
  daemon_t *d = arg;
  char key[CODEC_KEY_MAX];
  size_t kl = codec_user_key(user, key);
  *ctype = "text/plain; charset=utf-8";
  *body = d->http_text;
  if (d->input_parts <= 0) {
    /* first lookup since an assignment: ask the broker (blocks the loop for
     * at most 1 s, once; the processing path never waits for it) */
    int np = consumer_partition_count(d->consumer, 1000);
    if (np > 0) d->input_parts = np;
  }
  if (d->input_parts <= 0) {
    *len = (size_t)snprintf(d->http_text, sizeof d->http_text,
                            "the partition count of %s is not known yet\n",
                            d->cfg->kafka.input_topic);
    return 503;
  }
  int32_t p = ix_partition(d->cfg->kafka.input_partitioner, key, kl, d->input_parts);
  if (!owns(d, p)) {
    *len = (size_t)snprintf(d->http_text, sizeof d->http_text,
                            "user %.*s is in partition %d of %s, which this process does not "
                            "own\n", (int)kl, key, (int)p, d->cfg->kafka.input_topic);
    return 404;
  }
  prediction_t pred;
  int rc = pipeline_user_prediction(d->pipe, p, user, ix_wall_ms(), &pred);
  if (rc == 0) rc = output_encode(&d->cfg->output, &pred, &d->http_enc);
  if (rc == IX_ENOENT) {
    *len = (size_t)snprintf(d->http_text, sizeof d->http_text,
                            "user %.*s (partition %d) has no state here: no events yet, or "
                            "expired\n", (int)kl, key, (int)p);
    return 404;
  }
  if (rc) {
    *len = (size_t)snprintf(d->http_text, sizeof d->http_text, "%s\n", ix_strerror(rc));
    return 500;
  }
  *ctype = d->cfg->output.format == OUTPUT_JSON ? "application/json" : "application/msgpack";
  *body = (const char *)d->http_enc.data;
  *len = d->http_enc.len;
  return 200;
}

/* ---------------------------------------------------------------- life cycle */

uv_loop_t *daemon_loop(daemon_t *d) { return &d->loop; }

void daemon_get_stats(daemon_t *d, daemon_stats_t *out, int reset_window) {
  store_stats_t ss;
  store_get_stats(pipeline_store(d->pipe), &ss);
  *out = d->st;
  out->users = ss.users;
  out->evicted_lru = ss.evicted_lru;
  out->evicted_ttl = ss.evicted_ttl;
  out->outstanding = d->outstanding;
  out->backlog = backlog_len(d->backlog);
  out->partitions = d->owned;
  out->lat_p50 = lat_quantile(&d->lat, 0.50);
  out->lat_p99 = lat_quantile(&d->lat, 0.99);
  out->e2e_p50 = lat_quantile(&d->e2e, 0.50);
  out->e2e_p99 = lat_quantile(&d->e2e, 0.99);
  out->win_lat_p50 = lat_quantile(&d->win_lat, 0.50);
  out->win_lat_p99 = lat_quantile(&d->win_lat, 0.99);
  out->win_e2e_p50 = lat_quantile(&d->win_e2e, 0.50);
  out->win_e2e_p99 = lat_quantile(&d->win_e2e, 0.99);
  out->win_delivered = d->st.delivered - d->win_delivered_base;
  for (unsigned q = 0; q < 3 && q < PIPELINE_Q_N; q++) {
    const pipeline_quality_t *pq = pipeline_quality(d->pipe, q);
    double nt = pq->targets ? (double)pq->targets : 1.0;
    if (q == 0) out->q_targets = pq->targets;
    out->q_mrr10[q] = pq->rr_sum / nt;
    out->q_rec5[q] = (double)pq->hit5 / nt;
  }
  out->q_shadow = d->shadow_pipe != NULL;
  if (d->shadow_pipe) {
    const pipeline_quality_t *pq = pipeline_quality(d->shadow_pipe, PIPELINE_Q_MODEL);
    double nt = pq->targets ? (double)pq->targets : 1.0;
    out->q_shadow_mrr10 = pq->rr_sum / nt;
    out->q_shadow_rec5 = (double)pq->hit5 / nt;
  }
  if (reset_window) {
    memset(&d->win_lat, 0, sizeof d->win_lat);
    memset(&d->win_e2e, 0, sizeof d->win_e2e);
    d->win_delivered_base = d->st.delivered;
  }
}

static char **kafka_props(const config_t *cfg, char **specific) {
  size_t n = 0, m = 0;
  while (cfg->kafka.props && cfg->kafka.props[n]) n++;
  while (specific && specific[m]) m++;
  char **all = calloc(n + m + 1, sizeof *all);
  if (!all) return NULL;
  for (size_t i = 0; i < n; i++) all[i] = cfg->kafka.props[i];
  for (size_t i = 0; i < m; i++) all[n + i] = specific[i];
  return all;
}

int daemon_new(const daemon_opts_t *opts, daemon_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  daemon_t *d = calloc(1, sizeof *d);
  if (!d) {
    config_destroy(opts->cfg);
    return IX_ENOMEM;
  }
  d->cfg = opts->cfg;
  d->on_prediction = opts->on_prediction;
  d->on_stop = opts->on_stop;
  d->ctx = opts->ctx;
  d->ready_fd = opts->ready_fd;
  d->handle_signals = opts->handle_signals;
  config_t *cfg = d->cfg;
  int rc = IX_ENOMEM;
  char **cprops = NULL, **pprops = NULL;
  if (opts->config_path && !(d->config_path = strdup(opts->config_path))) goto err;
  if (opts->n_overrides) {
    d->overrides = calloc(opts->n_overrides, sizeof *d->overrides);
    if (!d->overrides) goto err;
    for (size_t i = 0; i < opts->n_overrides; i++)
      if (!(d->overrides[d->n_overrides++] = strdup(opts->overrides[i]))) goto err;
  }
  log_set_level(cfg->log.level);
  if (uv_loop_init(&d->loop)) {
    snprintf(errstr, errstr_size, "cannot create the event loop");
    rc = IX_ESYS;
    goto err;
  }
  d->loop.data = d;
  rc = metrics_new(&d->metrics);
  if (!rc) rc = metrics_daemon_register(d->metrics, INTERESTD_VERSION, &d->md);
  if (!rc) rc = metrics_on_collect(d->metrics, collect_cb, d);
  if (!rc) rc = warmup_metrics_register(d->metrics, &d->wm);
  if (!rc) rc = warmstart_metrics_register(d->metrics, &d->wsm);
  if (!rc) rc = loopstat_start(&d->loop, d->metrics, &d->loopstat);
  if (rc) {
    snprintf(errstr, errstr_size, "cannot set up metrics: %s", ix_strerror(rc));
    goto err;
  }
  rc = model_load(cfg->model.path, &d->model, errstr, errstr_size);
  if (rc) {
    char why[512];
    snprintf(why, sizeof why, "model %s: %s", cfg->model.path, errstr);
    snprintf(errstr, errstr_size, "%s", why);
    goto err;
  }
  model_set_next_count(d->model, cfg->output.next_categories);
  metrics_daemon_set_model(&d->md, model_fingerprint(d->model), model_describe(d->model));
  if ((rc = new_slab_pool(cfg, &d->slabs))) {
    snprintf(errstr, errstr_size, "cannot set up the state memory pool: %s", ix_strerror(rc));
    goto err;
  }
  store_opts_t so = store_opts_of(cfg, d->slabs);
  rc = pipeline_new(d->model, &so, &cfg->emit, &d->pipe);
  if (rc) {
    snprintf(errstr, errstr_size, "cannot create the pipeline: %s", ix_strerror(rc));
    goto err;
  }
  if ((rc = input_new(&cfg->input, &d->input, errstr, errstr_size))) goto err;
  pipeline_set_input(d->pipe, d->input);
  if ((rc = quality_metrics_bind(&d->qm, d->md.reg, model_fingerprint(d->model)))) {
    snprintf(errstr, errstr_size, "cannot register the quality metrics: %s", ix_strerror(rc));
    goto err;
  }
  if (cfg->model.shadow_path && *cfg->model.shadow_path) {
    errstr[0] = '\0';
    emit_opts_t every = {.policy = EMIT_EVERY, .top_n_change = PRED_TOPK};
    if ((rc = model_load(cfg->model.shadow_path, &d->shadow_model, errstr, errstr_size)) ||
        (rc = pipeline_new(d->shadow_model, &so, &every, &d->shadow_pipe)) ||
        (rc = quality_metrics_bind(&d->qm_shadow, d->md.reg, model_fingerprint(d->shadow_model)))) {
      char why[512];
      snprintf(why, sizeof why, "model.shadow_path %s: %s", cfg->model.shadow_path,
               errstr[0] ? errstr : ix_strerror(rc));
      snprintf(errstr, errstr_size, "%s", why);
      goto err;
    }
    pipeline_set_input(d->shadow_pipe, d->input);
    LOG_INFO("daemon", "shadow model %s (%s): scored on every event, nothing emitted",
             cfg->model.shadow_path, model_describe(d->shadow_model));
  }
  /* [state] changelog_mode: local (files only), changelog (topic only: no
   * local disk), both (default once a changelog topic is named) */
  const char *mode = cfg->state.changelog_mode;
  if (!*mode) mode = *cfg->state.changelog_topic ? "both" : "local";
  if (cfg->state.standby_replicas && !strcmp(mode, "local")) {
    snprintf(errstr, errstr_size, "state.standby_replicas = %u needs a changelog topic "
             "(state.changelog_mode = changelog or both): standby copies follow it",
             cfg->state.standby_replicas);
    rc = IX_ECONFIG;
    goto err;
  }
  if (cfg->state.checkpoint_dir && *cfg->state.checkpoint_dir && strcmp(mode, "changelog")) {
    ckpt_opts_t co = {.dir = cfg->state.checkpoint_dir, .keep = 2};
    rc = ckpt_new(&co, &d->ckpt, errstr, errstr_size);
    if (rc) goto err;
  }
  if (strcmp(mode, "local")) {
    char deftopic[512];
    snprintf(deftopic, sizeof deftopic, "%s-interestd-state", cfg->kafka.group);
    const char *topic = *cfg->state.changelog_topic ? cfg->state.changelog_topic : deftopic;
    char **clprops = kafka_props(cfg, cfg->kafka.producer_props);
    if (!clprops) {
      rc = IX_ENOMEM;
      goto err;
    }
    clog_opts_t clo = {.brokers = cfg->kafka.brokers,
                       .props = (const char *const *)clprops,
                       .topic = topic,
                       .input_topic = cfg->kafka.input_topic,
                       .metrics = d->metrics,
                       /* exactly_once too: records wait for the commit of what
                        * they cover (clog_acked_cb; docs/STATE.md) */
                       .slice_us = CLOG_SLICE_US};
    rc = clog_new(&clo, &d->clog, errstr, errstr_size);
    free(clprops); /* the strings stay with cfg; clog_new copied what it keeps */
    if (rc) goto err;
    pipeline_set_hooks(d->pipe, clog_skip, clog_applied, d->clog);
    store_set_evict_hook(pipeline_store(d->pipe), clog_evicted, d->clog);
    LOG_INFO("daemon", "state mode %s: changelog topic %s%s", mode, topic,
             d->ckpt ? ", local checkpoints too" : "");
    if (cfg->state.standby_replicas) {
      char **fprops = kafka_props(cfg, NULL);
      standby_opts_t sbo = {.brokers = cfg->kafka.brokers,
                            .props = (const char *const *)fprops,
                            .topic = topic,
                            .partitions = clog_partitions(d->clog),
                            .replicas = cfg->state.standby_replicas,
                            .fingerprint = pipeline_fingerprint(d->pipe),
                            .blob_size = store_blob_size(pipeline_store(d->pipe)),
                            .pool = d->slabs,
                            .metrics = d->metrics};
      rc = fprops ? standby_new(&sbo, &d->standby, errstr, errstr_size) : IX_ENOMEM;
      free(fprops);
      if (rc) goto err;
      if (clog_cluster_has_admin(d->clog))
        LOG_INFO("daemon", "standby replicas: %u, placed by the group's membership "
                 "(DescribeConsumerGroups); by this member's own assignment until the group is "
                 "first described, and when it cannot be", cfg->state.standby_replicas);
      else
        LOG_INFO("daemon", "standby replicas: %u, placed by this member's own assignment: the "
                 "cluster has no Admin API (librdkafka's mock), the group is not described",
                 cfg->state.standby_replicas);
    }
  }
  rc = inflight_new(d->ckpt != NULL || d->clog != NULL, &d->inflight);
  if (!rc) rc = backlog_new(&d->backlog);
  if (rc) {
    snprintf(errstr, errstr_size, "cannot set up in-flight tracking: %s", ix_strerror(rc));
    goto err;
  }
  rc = IX_ENOMEM;
  pprops = kafka_props(cfg, cfg->kafka.producer_props);
  cprops = kafka_props(cfg, cfg->kafka.consumer_props);
  if (!pprops || !cprops) goto err;
  char tid[512] = "";
  if (cfg->kafka.exactly_once) {
    config_transactional_id(cfg, tid, sizeof tid);
    if (!*tid) {
      snprintf(errstr, errstr_size, "kafka.processing_guarantee = exactly_once needs "
               "kafka.instance_id (or a group.instance.id property)");
      rc = IX_ECONFIG;
      goto err;
    }
    /* offsets are committed in the transactions only; the input is read
     * as committed (the default, made explicit) */
    size_t nc = 0;
    while (cprops[nc]) nc++;
    char **more = realloc(cprops, (nc + 3) * sizeof *more);
    if (!more) goto err;
    cprops = more;
    cprops[nc] = "enable.auto.commit=false";
    cprops[nc + 1] = "isolation.level=read_committed";
    cprops[nc + 2] = NULL;
  }
  producer_opts_t po = {.brokers = cfg->kafka.brokers, .props = (const char *const *)pprops,
                        .on_delivery = on_delivery, .ctx = d, .use_fd = 1,
                        .transactional_id = tid};
  rc = producer_new(&po, &d->producer, errstr, errstr_size);
  if (rc) goto err;
  d->out_topic = producer_topic(d->producer, cfg->kafka.output_topic);
  if (cfg->kafka.dlq_topic && *cfg->kafka.dlq_topic)
    d->dlq_topic = producer_topic(d->producer, cfg->kafka.dlq_topic);
  if (!d->out_topic || (*cfg->kafka.dlq_topic && !d->dlq_topic)) {
    snprintf(errstr, errstr_size, "cannot create producer topic handles");
    rc = IX_EKAFKA;
    goto err;
  }
  consumer_opts_t co = {.brokers = cfg->kafka.brokers, .group = cfg->kafka.group,
                        .topic = cfg->kafka.input_topic, .props = (const char *const *)cprops,
                        .on_rebalance = on_rebalance, .on_commit = on_commit,
                        .on_skip = on_skip, .ctx = d};
  rc = consumer_new(&co, &d->consumer, errstr, errstr_size);
  if (rc) goto err;
  /* not on a cluster without the Admin API (the mock): librdkafka 2.0.2
   * hangs its client on a DescribeConsumerGroups the broker cannot take */
  if (d->standby && clog_cluster_has_admin(d->clog) &&
      (rc = standby_watch_group(d->standby, &d->loop, d->consumer, cfg->kafka.group, errstr,
                                errstr_size)))
    goto err;
  if (cfg->kafka.exactly_once) {
    txn_opts_t to = {.producer = d->producer, .consumer = d->consumer, .inflight = d->inflight,
                     .pipe = d->pipe, .commit_interval_ms = cfg->kafka.commit_interval_ms,
                     .timeout_ms = 10000, .flush = eos_flush, .rolled_back = eos_rolled_back,
                     .ctx = d};
    rc = txn_new(&to, &d->txn, errstr, errstr_size);
    if (rc) goto err;
    if (d->clog) txn_set_hooks(d->txn, clog_skip, clog_applied, d->clog);
    else txn_set_hooks(d->txn, NULL, NULL, NULL);
    LOG_INFO("daemon", "processing guarantee exactly_once: transactional.id %s, a transaction "
             "every %u ms", tid, cfg->kafka.commit_interval_ms);
  }
  free(cprops);
  free(pprops);
  cprops = pprops = NULL;

  rc = notify_new(&d->loop, &d->notify);
  if (rc) {
    snprintf(errstr, errstr_size, "cannot set up systemd notification");
    goto err;
  }
  if (cfg->metrics.listen && *cfg->metrics.listen) {
    http_options_t ho = {.host = cfg->metrics.listen, .port = (int)cfg->metrics.port};
    rc = http_server_start(&d->loop, &ho, d->metrics, health_cb, d, &d->http, errstr,
                           errstr_size);
    if (rc) goto err;
    http_server_set_user_handler(d->http, user_cb, d);
  }
  if (*cfg->redis.address) {
    rc = redis_start(d, errstr, errstr_size);
    if (rc) goto err;
  }

  /* a handle that fails to initialise is not on the loop (nothing to
   * close); the daemon cannot run without any of them */
  int uvrc = uv_poll_init(&d->loop, &d->consumer_poll, consumer_fd(d->consumer));
  if (!uvrc) uvrc = uv_poll_init(&d->loop, &d->producer_poll, producer_fd(d->producer));
  d->consumer_poll.data = d->producer_poll.data = d;
  uv_timer_t *timers[] = {&d->kick_timer,   &d->batch_timer,  &d->retry_timer,
                          &d->ckpt_timer,   &d->expire_timer, &d->status_timer,
                          &d->stop_timer,   &d->ckpt_slice_timer, &d->redis_timer,
                          &d->clog_timer,   &d->warm_timer, &d->txn_timer,
                          &d->restore_timer};
  for (size_t i = 0; i < sizeof timers / sizeof timers[0] && !uvrc; i++) {
    uvrc = uv_timer_init(&d->loop, timers[i]);
    timers[i]->data = d;
  }
  if (d->handle_signals) {
    uv_signal_t *sigs[] = {&d->sig_term, &d->sig_int, &d->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3 && !uvrc; i++) {
      uvrc = uv_signal_init(&d->loop, sigs[i]);
      sigs[i]->data = d;
      if (!uvrc) uvrc = uv_signal_start(sigs[i], signal_cb, nums[i]);
    }
    /* a signal that came during start-up (daemon_hold_signals()) reaches
     * its handler now, on the loop's first turn */
    if (!uvrc && release_signals()) uvrc = UV_EINVAL;
  }
  if (uvrc) {
    snprintf(errstr, errstr_size, "cannot set up the event loop's handles: %s",
             uv_strerror(uvrc));
    rc = IX_ESYS;
    goto err;
  }
  uvrc = uv_poll_start(&d->consumer_poll, UV_READABLE, consumer_poll_cb);
  if (!uvrc) uvrc = uv_poll_start(&d->producer_poll, UV_READABLE, producer_poll_cb);
  if (uvrc) {
    snprintf(errstr, errstr_size, "cannot watch the Kafka queues: %s", uv_strerror(uvrc));
    rc = IX_ESYS;
    goto err;
  }
  if (d->ckpt || d->clog) {
    uint64_t ms = (uint64_t)cfg->state.checkpoint_interval_s * 1000u;
    uv_timer_start(&d->ckpt_timer, ckpt_timer_cb, ms, ms);
  }
  if (d->clog) uv_timer_start(&d->clog_timer, clog_timer_cb, CLOG_PUMP_MS, CLOG_PUMP_MS);
  if (d->txn)
    uv_timer_start(&d->txn_timer, txn_timer_cb, cfg->kafka.commit_interval_ms,
                   cfg->kafka.commit_interval_ms);
  if (cfg->state.idle_ttl_s) {
    uint64_t ms = cfg->state.idle_ttl_s * 1000u / 4;
    if (ms > 60000) ms = 60000;
    if (ms < 1000) ms = 1000;
    uv_timer_start(&d->expire_timer, expire_cb, ms, ms);
  }
  uv_timer_start(&d->status_timer, status_cb, 1000, 5000);
  /* the loop may have missed the queue's first edge while subscribing */
  uv_timer_start(&d->kick_timer, kick_cb, 0, 0);
  LOG_INFO("daemon", "interestd %s: %s -> %s (group %s, brokers %s), model %s (%s), emit %s",
           INTERESTD_VERSION, cfg->kafka.input_topic, cfg->kafka.output_topic, cfg->kafka.group,
           cfg->kafka.brokers, cfg->model.path, model_describe(d->model),
           config_policy_name(cfg->emit.policy));
  if (d->http) LOG_INFO("daemon", "metrics on http://%s:%d/metrics", cfg->metrics.listen,
                        http_server_port(d->http));
  *out = d;
  return 0;
err:
  free(cprops);
  free(pprops);
  daemon_destroy(d);
  return rc;
}

int daemon_run(daemon_t *d) {
  uv_run(&d->loop, UV_RUN_DEFAULT);
  return d->exit_code;
}

void daemon_destroy(daemon_t *d) {
  if (!d) return;
  if (d->loop.data == d) {
    if (d->phase != CLOSED) {
      /* never ran or failed in daemon_new: close what exists */
      d->phase = CLOSING;
      if (d->http) http_server_close(d->http, NULL, NULL);
      if (d->notify) notify_close(d->notify);
      rsink_destroy(d->redis); /* before the walk: it closes its own handles */
      d->redis = NULL;
      loopstat_close(d->loopstat); /* its close callback frees it */
      uv_walk(&d->loop, walk_close, NULL);
      if (d->handle_signals) set_disposition(SIG_IGN); /* as finish_stop() */
      d->phase = CLOSED;
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop)) LOG_WARN("daemon", "event loop closed with handles open");
  }
  standby_destroy(d->standby); /* before the consumer: it describes the group on its client */
  consumer_destroy(d->consumer);
  producer_destroy(d->producer, 0);
  backlog_destroy(d->backlog);
  ckpt_destroy(d->ckpt);
  clog_destroy(d->clog, 1000);
  txn_destroy(d->txn);
  warmup_destroy(d->warm);
  free(d->warm_path);
  pipeline_destroy(d->pipe);
  pipeline_destroy(d->shadow_pipe);
  model_destroy(d->shadow_model);
  model_destroy(d->model);
  slab_pool_destroy(d->slabs); /* after every store */
  metrics_destroy(d->metrics);
  inflight_destroy(d->inflight);
  free(d->lag);
  free(d->win);
  order_free(d->order);
  free(d->rec_tok);
  free(d->ck_parts);
  free(d->ck_gens);
  codec_buf_free(&d->enc);
  codec_buf_free(&d->http_enc);
  codec_buf_free(&d->redis_enc);
  input_destroy(d->input);
  config_destroy(d->cfg);
  free(d->config_path);
  for (size_t i = 0; i < d->n_overrides; i++) free(d->overrides[i]);
  free(d->overrides);
  free(d);
}
