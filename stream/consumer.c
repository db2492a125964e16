/* librdkafka consumer-group member routed to a pipe for the loop. The main
 * queue is forwarded to the consumer queue (rd_kafka_poll_set_consumer), so
 * messages, rebalances and errors all arrive on one queue and one fd. */
#include "stream/consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "stream/kafka_internal.h"
#include "stream/kafkaconf.h"

#define CONSUMER_MAX_BATCH 65536
/* After an assignment, stored offsets are committed (asynchronously) at most
 * every FAST_COMMIT_GAP_MS for FAST_COMMIT_WINDOW_MS, besides the auto-commit
 * timer: when heartbeats keep failing (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID),
 * librdkafka drops the assignment as lost a heartbeat interval after each
 * join, before the auto-commit timer fires, and nothing done in between
 * would ever be committed. */
#define FAST_COMMIT_WINDOW_MS 2000
#define FAST_COMMIT_GAP_MS 100

struct consumer {
  rd_kafka_t *rk;
  rd_kafka_queue_t *rkqu;    /* the consumer queue (main queue forwarded to it) */
  rd_kafka_topic_t *rkt;     /* for watermarks and metadata */
  char *topic;
  int pipefd[2];             /* [0] watched by the caller, [1] written by librdkafka */
  rd_kafka_message_t **msgs; /* last batch, owned until consumer_release() */
  size_t n_msgs, cap_msgs;
  consumer_rebalance_fn on_rebalance;
  consumer_commit_fn on_commit;
  consumer_skip_fn on_skip;
  void *ctx;
  uint64_t fast_until_ms;    /* commit stored offsets promptly until then */
  uint64_t last_fast_ms;     /* the last of those commits */
  int64_t *expect;           /* by partition: next offset expected (EXP_*) */
  int32_t n_expect;
  int cooperative;
  int closed;
  int assigned_once;         /* an assignment was handled (see consumer_close) */
  int hooks_off;             /* rebalances handled without the caller's hook */
  int parked;                /* never rd_kafka_destroy()ed (see consumer_close) */
  struct consumer *next_parked;
};

/* Consumers whose handle cannot be destroyed (consumer_close): kept, still
 * reachable, until the process exits. */
static consumer_t *parked_list;

static void clear_fd(consumer_t *c) {
  char buf[256];
  while (read(c->pipefd[0], buf, sizeof buf) > 0) {}
}

/* expect[p]: the offset the next message of p should carry, or one of these */
#define EXP_NONE (-1)      /* not owned, or not known (nothing to compare with) */
#define EXP_COMMITTED (-2) /* assigned at the committed offset: asked on a reset */

static void expect_set(consumer_t *c, int32_t p, int64_t v) {
  if (p < 0) return;
  if (p >= c->n_expect) {
    if (v == EXP_NONE) return;
    int32_t n = c->n_expect ? c->n_expect : 16;
    while (n <= p) n *= 2;
    int64_t *e = realloc(c->expect, (size_t)n * sizeof *e);
    if (!e) return; /* detection off for this partition; consumption goes on */
    for (int32_t i = c->n_expect; i < n; i++) e[i] = EXP_NONE;
    c->expect = e;
    c->n_expect = n;
  }
  c->expect[p] = v;
}

/* A message of partition p at offset off: when it lies beyond the offset
 * expected and the broker's log now starts beyond that expected offset, the
 * events in between were deleted by retention before they were read
 * (librdkafka got OFFSET_OUT_OF_RANGE and reset to auto.offset.reset). A gap
 * below the log start (compaction, transaction markers) is not counted. */
static void check_gap(consumer_t *c, int32_t p, int64_t off) {
  if (p < 0 || p >= c->n_expect) return;
  int64_t exp = c->expect[p];
  c->expect[p] = off + 1;
  if (exp == EXP_NONE || off <= exp) return;
  int64_t lo = consumer_low_watermark(c, p);
  if (exp == EXP_COMMITTED) {
    /* the first message after an assignment at the committed offset: only a
     * start at the log's beginning can be a reset; ask what was committed */
    if (off == 0 || lo < off) return;
    if (consumer_committed(c, p, 5000, &exp) || exp < 0 || exp >= off) return;
  }
  if (lo <= exp) return;
  int64_t skipped = (lo < off ? lo : off) - exp;
  LOG_ERROR("consumer",
            "partition %d: %lld events deleted by the broker's retention before they were "
            "read: expected offset %lld, the log now starts at %lld, consuming from %lld",
            (int)p, (long long)skipped, (long long)exp, (long long)lo, (long long)off);
  if (c->on_skip) c->on_skip(c->ctx, p, exp, off, skipped);
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  consumer_t *c = opaque;
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !c->on_commit) return; /* nothing to commit */
  size_t n = 0;
  consumer_part_t cp[64];
  for (int i = 0; offsets && i < offsets->cnt && n < 64; i++) {
    if (offsets->elems[i].err && !err) err = offsets->elems[i].err;
    if (offsets->elems[i].offset < 0) continue;
    cp[n].partition = offsets->elems[i].partition;
    cp[n++].offset = offsets->elems[i].offset;
  }
  c->on_commit(c->ctx, err ? IX_EKAFKA : 0, err ? rd_kafka_err2str(err) : NULL, cp, n);
}

/* Partitions assigned at an explicit offset (a restored checkpoint ahead of
 * the group's committed offset) have nothing stored for commit until a
 * message after it is processed: with no new input the committed offset
 * would stay behind the checkpoint for good, and a member without the
 * checkpoint would re-read that span. Stores each such start where it is
 * ahead of the committed offset (asked with a 1 s bound; on failure nothing
 * is stored and the next processed message stores as usual). Call after the
 * assignment (librdkafka stores offsets of assigned partitions only). */
static void store_start_offsets(consumer_t *c, const rd_kafka_topic_partition_list_t *parts) {
  rd_kafka_topic_partition_list_t *ask = rd_kafka_topic_partition_list_new(parts->cnt);
  rd_kafka_topic_partition_list_t *store = rd_kafka_topic_partition_list_new(parts->cnt);
  for (int i = 0; i < parts->cnt; i++)
    if (parts->elems[i].offset >= 0)
      rd_kafka_topic_partition_list_add(ask, parts->elems[i].topic, parts->elems[i].partition);
  if (ask->cnt && !rd_kafka_committed(c->rk, ask, 1000)) {
    for (int i = 0; i < parts->cnt; i++) {
      const rd_kafka_topic_partition_t *want = &parts->elems[i];
      if (want->offset < 0) continue;
      rd_kafka_topic_partition_t *got =
          rd_kafka_topic_partition_list_find(ask, want->topic, want->partition);
      if (got && !got->err && got->offset >= want->offset) continue; /* committed already */
      rd_kafka_topic_partition_list_add(store, want->topic, want->partition)->offset =
          want->offset;
    }
  }
  if (store->cnt) {
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, store);
    for (int i = 0; !err && i < store->cnt; i++) err = store->elems[i].err;
    if (err) LOG_WARN("consumer", "storing the restored start offsets: %s", rd_kafka_err2str(err));
  }
  rd_kafka_topic_partition_list_destroy(ask);
  rd_kafka_topic_partition_list_destroy(store);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  consumer_t *c = opaque;
  int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  consumer_part_t *cp = calloc((size_t)parts->cnt + 1, sizeof *cp);
  if (!cp) {
    LOG_ERROR("consumer", "out of memory in rebalance; aborting");
    abort();
  }
  for (int i = 0; i < parts->cnt; i++) {
    cp[i].partition = parts->elems[i].partition;
    cp[i].offset = CONSUMER_OFFSET_COMMITTED;
  }
  rd_kafka_error_t *error = NULL;
  rd_kafka_resp_err_t aerr = 0;
  consumer_rebalance_fn hook = c->hooks_off ? NULL : c->on_rebalance;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    c->assigned_once = 1;
    c->fast_until_ms = ix_mono_ms() + FAST_COMMIT_WINDOW_MS;
    if (hook) hook(c->ctx, CONSUMER_ASSIGN, cp, (size_t)parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
      parts->elems[i].offset =
          cp[i].offset == CONSUMER_OFFSET_COMMITTED ? RD_KAFKA_OFFSET_INVALID : cp[i].offset;
      expect_set(c, cp[i].partition, cp[i].offset >= 0 ? cp[i].offset : EXP_COMMITTED);
    }
    if (cooperative) error = rd_kafka_incremental_assign(rk, parts);
    else aerr = rd_kafka_assign(rk, parts);
    if (!error && !aerr) store_start_offsets(c, parts);
  } else {
    consumer_event_t ev = rd_kafka_assignment_lost(rk) ? CONSUMER_LOST : CONSUMER_REVOKE;
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
      LOG_WARN("consumer", "rebalance error: %s", rd_kafka_err2str(err));
    if (hook) hook(c->ctx, ev, cp, (size_t)parts->cnt);
    for (int i = 0; i < parts->cnt; i++) expect_set(c, cp[i].partition, EXP_NONE);
    if (cooperative) error = rd_kafka_incremental_unassign(rk, parts);
    else aerr = rd_kafka_assign(rk, NULL);
  }
  if (error) {
    LOG_ERROR("consumer", "rebalance: %s", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  } else if (aerr) {
    LOG_ERROR("consumer", "rebalance: %s", rd_kafka_err2str(aerr));
  }
  free(cp);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof why);
    LOG_ERROR("consumer", "fatal: %s", why);
  } else {
    LOG_WARN("consumer", "%s: %s", rd_kafka_err2name(err), reason);
  }
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr,
               size_t errstr_size) {
  char why[512];
  if (rd_kafka_conf_set(conf, k, v, why, sizeof why) != RD_KAFKA_CONF_OK) {
    snprintf(errstr, errstr_size, "Kafka property '%s': %s", k, why);
    return IX_ECONFIG;
  }
  return 0;
}

int consumer_check_property(const char *key, const char *value, char *errstr,
                            size_t errstr_size) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  int rc = set(conf, key, value, errstr, errstr_size);
  rd_kafka_conf_destroy(conf);
  return rc;
}

int consumer_new(const consumer_opts_t *opts, consumer_t **out, char *errstr,
                 size_t errstr_size) {
  *out = NULL;
  consumer_t *c = calloc(1, sizeof *c);
  if (!c) return IX_ENOMEM;
  c->pipefd[0] = c->pipefd[1] = -1;
  c->on_rebalance = opts->on_rebalance;
  c->on_commit = opts->on_commit;
  c->on_skip = opts->on_skip;
  c->ctx = opts->ctx;
  c->closed = 1; /* nothing to close until subscribed */
  rd_kafka_conf_t *conf = NULL;
  int rc = IX_ECONFIG;
  if (!opts->brokers || !opts->group || !opts->topic) {
    snprintf(errstr, errstr_size, "consumer needs brokers, a group and a topic");
    goto err;
  }
  static const char *const defaults[][2] = {
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"auto.offset.reset", "earliest"},
      {"enable.auto.commit", "true"},
      {"auto.commit.interval.ms", "1000"},
      {"enable.partition.eof", "false"},
  };
  conf = kafkaconf_new(opts->brokers, NULL, errstr, errstr_size);
  if (!conf) goto err;
  for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
    if (set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size)) goto err;
  if (set(conf, "group.id", opts->group, errstr, errstr_size)) goto err;
  for (size_t i = 0; opts->props && opts->props[i]; i++)
    if (kafkaconf_set_kv(conf, opts->props[i], errstr, errstr_size)) goto err;
  /* At-least-once depends on this: only the caller stores offsets. */
  if (set(conf, "enable.auto.offset.store", "false", errstr, errstr_size)) goto err;
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
  rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  rd_kafka_conf_set_opaque(conf, c);

  rc = IX_ESYS;
  if (pipe2(c->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
    snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
    goto err;
  }
  rc = IX_EKAFKA;
  c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
  if (!c->rk) goto err;
  conf = NULL; /* owned by rk */
  rd_kafka_poll_set_consumer(c->rk);
  c->rkqu = rd_kafka_queue_get_consumer(c->rk);
  rd_kafka_queue_io_event_enable(c->rkqu, c->pipefd[1], "1", 1);
  c->topic = strdup(opts->topic);
  c->rkt = rd_kafka_topic_new(c->rk, opts->topic, NULL);
  if (!c->topic || !c->rkt) {
    snprintf(errstr, errstr_size, "out of memory");
    goto err;
  }
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, opts->topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (err) {
    snprintf(errstr, errstr_size, "subscribing to '%s': %s", opts->topic, rd_kafka_err2str(err));
    goto err;
  }
  c->closed = 0;
  *out = c;
  return 0;
err:
  if (conf) rd_kafka_conf_destroy(conf);
  consumer_destroy(c);
  return rc;
}

void consumer_release(consumer_t *c) {
  for (size_t i = 0; i < c->n_msgs; i++) rd_kafka_message_destroy(c->msgs[i]);
  c->n_msgs = 0;
}

/* Closing before the first assignment. librdkafka 2.0.2 aborts in
 * rd_kafka_destroy (rdkafka_sticky_assignor.c:1896, librdkafka issue #4312,
 * fixed in 2.3.0) when the group has chosen its assignor (a JoinGroup was
 * answered) but no SyncGroup assignment was handled yet: the sticky
 * assignor's state is created only then, and destroy frees it unchecked.
 * Once a close has begun librdkafka drops SyncGroup answers, so the state can
 * only come before the close. Hence consumer_close(), for a consumer that
 * never had an assignment:
 *  1. when an assignor is chosen (rd_kafka_rebalance_protocol() is not
 *     "NONE"), serves the consumer until the first assignment arrives, at
 *     most wait_ms and at most session.timeout.ms (how long a coordinator
 *     waits for a SyncGroup before it restarts the round). That assignment is
 *     taken and handed back by the close without the caller's hook (the
 *     caller never owned a partition and must not start restoring one while
 *     it shuts down); messages fetched meanwhile are dropped unprocessed,
 *     with no offset stored;
 *  2. if there is still none, unsubscribes (librdkafka then discards any
 *     later JoinGroup or SyncGroup answer, so the assignor can no longer
 *     change) and asks again: a JoinGroup answer may have come between the
 *     first question and the unsubscribe;
 *  3. closes. When an assignor is chosen and still no assignment was handled
 *     (the bound passed: broker gone, a group that keeps rebalancing; or that
 *     late answer), the handle is never destroyed: consumer_destroy() keeps
 *     it, reachable, until the process exits, and an error line says so.
 *     Nothing was owned, so nothing is lost.
 * The cost: a stop during the join waits for the join to finish (the mock
 * broker's is a few seconds), bounded as above. */

static int assignor_chosen(consumer_t *c) {
  const char *proto = rd_kafka_rebalance_protocol(c->rk);
  return !proto || strcmp(proto, "NONE") != 0; /* unknown counts as chosen */
}

static int session_timeout_ms(consumer_t *c) {
  char buf[32];
  size_t size = sizeof buf;
  if (rd_kafka_conf_get(rd_kafka_conf(c->rk), "session.timeout.ms", buf, &size) !=
      RD_KAFKA_CONF_OK)
    return 45000; /* librdkafka's default */
  return atoi(buf);
}

static void await_first_assignment(consumer_t *c, int wait_ms) {
  int session_ms = session_timeout_ms(c);
  if (wait_ms > session_ms) wait_ms = session_ms;
  LOG_INFO("consumer", "closing while the group join is under way: waiting up to %d ms for "
           "the first assignment, which is handed back unprocessed (librdkafka 2.0.2 aborts "
           "when a consumer that joined but has no assignment yet is destroyed)", wait_ms);
  c->hooks_off = 1;
  uint64_t t0 = ix_mono_ms();
  while (!c->assigned_once && ix_mono_ms() - t0 < (uint64_t)(wait_ms > 0 ? wait_ms : 0)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
    if (m) rd_kafka_message_destroy(m); /* not processed: nothing is stored for commit */
  }
  if (c->assigned_once)
    LOG_INFO("consumer", "first assignment arrived %llu ms into the close; leaving the group",
             (unsigned long long)(ix_mono_ms() - t0));
}

int consumer_close(consumer_t *c, int wait_ms) {
  if (c->closed) return 0;
  c->closed = 1;
  consumer_release(c);
  int chosen = 0; /* an assignor without its state (see above) */
  if (!c->assigned_once) {
    if (assignor_chosen(c)) await_first_assignment(c, wait_ms);
    if (!c->assigned_once) {
      c->hooks_off = 1; /* a late assignment is not the caller's */
      rd_kafka_resp_err_t uerr = rd_kafka_unsubscribe(c->rk);
      if (uerr) LOG_WARN("consumer", "unsubscribe: %s", rd_kafka_err2str(uerr));
      chosen = assignor_chosen(c);
    }
  }
  rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
  if (chosen && !c->assigned_once) {
    c->parked = 1;
    LOG_ERROR("consumer", "closed during the group join before any assignment arrived (waited "
              "up to %d ms): the Kafka consumer handle is left undestroyed until the process "
              "exits, since librdkafka 2.0.2 would abort destroying it (librdkafka issue "
              "#4312, fixed in 2.3.0); no partition was owned, nothing is lost", wait_ms);
  }
  if (err) {
    LOG_ERROR("consumer", "close: %s", rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  return 0;
}

void consumer_destroy(consumer_t *c) {
  if (!c) return;
  if (c->rk) {
    consumer_close(c, 0);
    if (c->parked) {
      consumer_release(c);
      c->next_parked = parked_list; /* see consumer_close */
      parked_list = c;
      return;
    }
    if (c->rkt) rd_kafka_topic_destroy(c->rkt);
    if (c->rkqu) rd_kafka_queue_destroy(c->rkqu);
    rd_kafka_destroy(c->rk);
  }
  free(c->msgs);
  free(c->topic);
  free(c->expect);
  if (c->pipefd[0] >= 0) close(c->pipefd[0]);
  if (c->pipefd[1] >= 0) close(c->pipefd[1]);
  free(c);
}

int consumer_fd(const consumer_t *c) { return c->pipefd[0]; }

size_t consumer_queue_length(const consumer_t *c) { return rd_kafka_queue_length(c->rkqu); }

ssize_t consumer_poll(consumer_t *c, rec_t *out, size_t max) {
  consumer_release(c);
  if (max > CONSUMER_MAX_BATCH) max = CONSUMER_MAX_BATCH;
  if (c->cap_msgs < max) {
    rd_kafka_message_t **m = realloc(c->msgs, max * sizeof *m);
    if (!m) return IX_ENOMEM;
    c->msgs = m;
    c->cap_msgs = max;
  }
  clear_fd(c); /* before draining: a later enqueue re-arms it */
  for (;;) {
    ssize_t got = rd_kafka_consume_batch_queue(c->rkqu, 0, c->msgs, max);
    if (got <= 0) {
      /* A served callback (a rebalance) can end the call with messages still
       * queued behind it; they arrived while the queue was not empty, so
       * librdkafka wrote nothing to the fd for them. Wake the caller again
       * rather than wait for a write that will not come (seen on a real
       * broker: the fetch lands during the assignment's callback). */
      if (rd_kafka_queue_length(c->rkqu) > 0 && write(c->pipefd[1], "1", 1) < 0 &&
          errno != EAGAIN)
        LOG_WARN("consumer", "waking the loop: %s", strerror(errno));
      return 0;
    }
    size_t n = 0;
    for (ssize_t i = 0; i < got; i++) {
      rd_kafka_message_t *m = c->msgs[i];
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
          LOG_WARN("consumer", "partition %d: %s", (int)m->partition, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        continue;
      }
      check_gap(c, m->partition, m->offset);
      c->msgs[n] = m;
      rec_t *r = &out[n++];
      r->partition = m->partition;
      r->offset = m->offset;
      r->ts_ms = rd_kafka_message_timestamp(m, NULL);
      r->key = m->key;
      r->key_len = m->key_len;
      r->value = m->payload;
      r->value_len = m->len;
    }
    c->n_msgs = n;
    if (n) return (ssize_t)n;
  }
}

static rd_kafka_topic_partition_list_t *one_part(consumer_t *c, int32_t partition,
                                                 int64_t offset) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, c->topic, partition)->offset = offset;
  return l;
}

int consumer_store_offset(consumer_t *c, int32_t partition, int64_t next_offset) {
  rd_kafka_topic_partition_list_t *l = one_part(c, partition, next_offset);
  rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
  if (!err) err = l->elems[0].err;
  rd_kafka_topic_partition_list_destroy(l);
  if (err) {
    LOG_DEBUG("consumer", "storing offset %lld of partition %d: %s", (long long)next_offset,
              (int)partition, rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  uint64_t now = ix_mono_ms();
  if (now < c->fast_until_ms && now - c->last_fast_ms >= FAST_COMMIT_GAP_MS) {
    c->last_fast_ms = now;
    err = rd_kafka_commit(c->rk, NULL, 1); /* the result comes to commit_cb */
    if (err) LOG_DEBUG("consumer", "commit after assignment: %s", rd_kafka_err2str(err));
  }
  return 0;
}

int consumer_commit(consumer_t *c) {
  rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    LOG_WARN("consumer", "commit: %s", rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  return 0;
}

int consumer_committed(consumer_t *c, int32_t partition, int timeout_ms, int64_t *offset) {
  rd_kafka_topic_partition_list_t *l = one_part(c, partition, RD_KAFKA_OFFSET_INVALID);
  rd_kafka_resp_err_t err = rd_kafka_committed(c->rk, l, timeout_ms);
  if (!err) err = l->elems[0].err;
  *offset = l->elems[0].offset < 0 ? CONSUMER_OFFSET_COMMITTED : l->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(l);
  return err ? IX_EKAFKA : 0;
}

static int pause_resume(consumer_t *c, const int32_t *partitions, size_t n, int pause) {
  if (!n) return 0;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++) rd_kafka_topic_partition_list_add(l, c->topic, partitions[i]);
  rd_kafka_resp_err_t err =
      pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err) {
    LOG_WARN("consumer", "%s: %s", pause ? "pause" : "resume", rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  return 0;
}

int consumer_pause(consumer_t *c, const int32_t *partitions, size_t n) {
  return pause_resume(c, partitions, n, 1);
}

int consumer_resume(consumer_t *c, const int32_t *partitions, size_t n) {
  return pause_resume(c, partitions, n, 0);
}

int consumer_partition_count(consumer_t *c, int timeout_ms) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(c->rk, 0, c->rkt, &md, timeout_ms);
  if (err) return IX_EKAFKA;
  int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : IX_ENOENT;
  rd_kafka_metadata_destroy(md);
  return n;
}

int64_t consumer_high_watermark(consumer_t *c, int32_t partition) {
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(c->rk, c->topic, partition, &lo, &hi)) return -1;
  return hi;
}

int consumer_query_watermarks(consumer_t *c, int32_t partition, int timeout_ms, int64_t *lo,
                              int64_t *hi) {
  return kafka_watermarks(c->rk, c->topic, partition, timeout_ms, lo, hi) ? IX_EKAFKA : 0;
}

int64_t consumer_low_watermark(consumer_t *c, int32_t partition) {
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(c->rk, c->topic, partition, &lo, &hi)) return -1;
  return lo;
}

rd_kafka_t *consumer_rk(consumer_t *c) { return c->rk; }
const char *consumer_topic_name(const consumer_t *c) { return c->topic; }

int consumer_seek(consumer_t *c, int32_t partition, int64_t next_offset, int timeout_ms) {
  rd_kafka_topic_partition_list_t *l = one_part(c, partition, next_offset);
  rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, l, timeout_ms);
  rd_kafka_resp_err_t err = error ? rd_kafka_error_code(error) : l->elems[0].err;
  if (error) {
    LOG_WARN("consumer", "partition %d: seek to %lld: %s", (int)partition,
             (long long)next_offset, rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  } else if (err) {
    LOG_WARN("consumer", "partition %d: seek to %lld: %s", (int)partition,
             (long long)next_offset, rd_kafka_err2str(err));
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (err) return IX_EKAFKA;
  expect_set(c, partition, next_offset);
  return 0;
}
