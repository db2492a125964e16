/* librdkafka producer whose delivery reports are served on the caller's
 * thread (dr_msg_cb from rd_kafka_poll) and optionally signalled through a
 * pipe routed from the main queue. */
#include "stream/producer.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/consumer.h"
#include "stream/kafkaconf.h"
#include "stream/kafka_internal.h"

#define PRODUCER_MAX_TOPICS 8

struct producer_topic {
  char *name;
  rd_kafka_topic_t *rkt;
};

struct producer {
  rd_kafka_t *rk;
  rd_kafka_queue_t *mainq;
  int pipefd[2];
  producer_delivery_fn on_delivery;
  void *ctx;
  producer_topic_t topics[PRODUCER_MAX_TOPICS];
  size_t n_topics;
  char hdr_values[PRODUCER_MAX_HEADERS][512]; /* NUL-terminated header copies for reports */
};

static const char *const fail_labels[] = {
#define XX(name, label) label,
    PRODUCER_FAIL_MAP(XX)
#undef XX
};

const char *producer_fail_label(producer_fail_t f) {
  return (unsigned)f < PRODUCER_FAIL_N ? fail_labels[f] : "other";
}

/* The class of a delivery error or a local refusal (see PRODUCER_FAIL_MAP).
 * Anything librdkafka gives up on that is not named here is transient: it
 * timed out (__MSG_TIMED_OUT) or a broker was away, and may work later. */
static producer_fail_t classify(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
  case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    return PRODUCER_FAIL_TOO_LARGE;
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    return PRODUCER_FAIL_UNKNOWN_TOPIC;
  case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
  case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    return PRODUCER_FAIL_NOT_AUTHORIZED;
  case RD_KAFKA_RESP_ERR_INVALID_RECORD:
  case RD_KAFKA_RESP_ERR__INVALID_ARG:
  case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
  case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    return PRODUCER_FAIL_INVALID;
  case RD_KAFKA_RESP_ERR__FATAL:
    return PRODUCER_FAIL_OTHER;
  default:
    return PRODUCER_FAIL_TRANSIENT;
  }
}

static _Thread_local producer_fail_t refusal_fail;
static _Thread_local char refusal_text[256];

const char *producer_refusal(producer_fail_t *fail) {
  if (fail) *fail = refusal_fail;
  return refusal_text;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  producer_t *p = opaque;
  if (!p->on_delivery) return;
  producer_report_t r = {
      .opaque = (uint64_t)(uintptr_t)m->_private,
      .err = m->err ? IX_EKAFKA : 0,
      .errstr = m->err ? rd_kafka_err2str(m->err) : NULL,
      .fail = m->err ? classify(m->err) : PRODUCER_FAIL_TRANSIENT,
      .partition = m->partition,
      .offset = m->offset,
      .key = m->key,
      .key_len = m->key_len,
      .value = m->payload,
      .value_len = m->len,
  };
  rd_kafka_headers_t *hdrs = NULL;
  if (m->err && rd_kafka_message_headers(m, &hdrs) == 0) {
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; r.n_headers < PRODUCER_MAX_HEADERS &&
                       rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == 0;
         i++) {
      char *copy = p->hdr_values[r.n_headers];
      size_t len = val ? size : 0;
      if (len >= sizeof p->hdr_values[0]) len = sizeof p->hdr_values[0] - 1;
      if (len) memcpy(copy, val, len);
      copy[len] = '\0';
      r.headers[r.n_headers].name = name;
      r.headers[r.n_headers++].value = copy;
    }
  }
  p->on_delivery(p->ctx, &r);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof why);
    LOG_ERROR("producer", "fatal: %s", why);
  } else {
    LOG_WARN("producer", "%s: %s", rd_kafka_err2name(err), reason);
  }
}

int producer_check_property(const char *key, const char *value, char *errstr,
                            size_t errstr_size) {
  char why[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  int rc = 0;
  if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
    snprintf(errstr, errstr_size, "Kafka property '%s': %s", key, why);
    rc = IX_ECONFIG;
  }
  rd_kafka_conf_destroy(conf);
  return rc;
}

int producer_new(const producer_opts_t *opts, producer_t **out, char *errstr,
                 size_t errstr_size) {
  *out = NULL;
  producer_t *p = calloc(1, sizeof *p);
  if (!p) return IX_ENOMEM;
  p->pipefd[0] = p->pipefd[1] = -1;
  p->on_delivery = opts->on_delivery;
  p->ctx = opts->ctx;
  int rc = IX_ECONFIG;
  static const char *const defaults[] = {"linger.ms=1", "partitioner=murmur2_random", NULL};
  rd_kafka_conf_t *conf = kafkaconf_new(opts->brokers, defaults, errstr, errstr_size);
  if (!conf) goto err;
  /* a transaction left open by a process that died (and is not restarted
   * with the same transactional.id) blocks read_committed readers of its
   * partitions until the coordinator aborts it: 10 s, as Kafka Streams */
  if (opts->transactional_id && *opts->transactional_id &&
      kafkaconf_set_kv(conf, "transaction.timeout.ms=10000", errstr, errstr_size))
    goto err;
  for (size_t i = 0; opts->props && opts->props[i]; i++)
    if (kafkaconf_set_kv(conf, opts->props[i], errstr, errstr_size)) goto err;
  if (opts->transactional_id && *opts->transactional_id &&
      (kafkaconf_set_kv(conf, "enable.idempotence=true", errstr, errstr_size) ||
       rd_kafka_conf_set(conf, "transactional.id", opts->transactional_id, errstr,
                         errstr_size) != RD_KAFKA_CONF_OK))
    goto err;
  rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  rd_kafka_conf_set_opaque(conf, p);
  rc = IX_EKAFKA;
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
  if (!p->rk) goto err;
  conf = NULL;
  if (opts->use_fd) {
    if (pipe2(p->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
      snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
      rc = IX_ESYS;
      goto err;
    }
    p->mainq = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(p->mainq, p->pipefd[1], "1", 1);
  }
  *out = p;
  return 0;
err:
  if (conf) rd_kafka_conf_destroy(conf);
  producer_destroy(p, 0);
  return rc;
}

void producer_destroy(producer_t *p, int flush_timeout_ms) {
  if (!p) return;
  if (p->rk) {
    if (flush_timeout_ms > 0) producer_flush(p, flush_timeout_ms);
    /* Report what could not be delivered, so no message vanishes silently. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
    for (size_t i = 0; i < p->n_topics; i++) rd_kafka_topic_destroy(p->topics[i].rkt);
    if (p->mainq) {
      rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
      rd_kafka_queue_destroy(p->mainq);
    }
    rd_kafka_destroy(p->rk);
  }
  for (size_t i = 0; i < p->n_topics; i++) free(p->topics[i].name);
  if (p->pipefd[0] >= 0) close(p->pipefd[0]);
  if (p->pipefd[1] >= 0) close(p->pipefd[1]);
  free(p);
}

int producer_fd(const producer_t *p) { return p->pipefd[0]; }

producer_topic_t *producer_topic(producer_t *p, const char *name) {
  for (size_t i = 0; i < p->n_topics; i++)
    if (strcmp(p->topics[i].name, name) == 0) return &p->topics[i];
  if (p->n_topics == PRODUCER_MAX_TOPICS) return NULL;
  producer_topic_t *t = &p->topics[p->n_topics];
  t->name = strdup(name);
  if (!t->name) return NULL;
  t->rkt = rd_kafka_topic_new(p->rk, name, NULL);
  if (!t->rkt) {
    free(t->name);
    return NULL;
  }
  p->n_topics++;
  return t;
}

int producer_send(producer_t *p, producer_topic_t *topic, int32_t partition, const void *key,
                  size_t key_len, const void *value, size_t value_len, int64_t ts_ms,
                  const producer_header_t *headers, size_t n_headers, uint64_t opaque) {
  rd_kafka_resp_err_t err;
  void *op = (void *)(uintptr_t)opaque;
  if (n_headers == 0) {
    err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(topic->rkt), RD_KAFKA_V_PARTITION(partition),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(key, key_len),
                            RD_KAFKA_V_VALUE((void *)value, value_len),
                            RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_OPAQUE(op), RD_KAFKA_V_END);
  } else {
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(n_headers);
    for (size_t i = 0; i < n_headers; i++)
      rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value, -1);
    err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(topic->rkt), RD_KAFKA_V_PARTITION(partition),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(key, key_len),
                            RD_KAFKA_V_VALUE((void *)value, value_len),
                            RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_HEADERS(hdrs),
                            RD_KAFKA_V_OPAQUE(op), RD_KAFKA_V_END);
    if (err) rd_kafka_headers_destroy(hdrs); /* ownership passes only on success */
  }
  if (!err) return 0;
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return IX_EFULL;
  refusal_fail = classify(err);
  if (refusal_fail == PRODUCER_FAIL_TRANSIENT) refusal_fail = PRODUCER_FAIL_OTHER;
  if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
    /* librdkafka reuses the broker's code ("Broker: Message size too
     * large") for its own check against message.max.bytes */
    char max[32];
    size_t max_len = sizeof max;
    if (rd_kafka_conf_get(rd_kafka_conf(p->rk), "message.max.bytes", max, &max_len) !=
        RD_KAFKA_CONF_OK)
      snprintf(max, sizeof max, "?");
    snprintf(refusal_text, sizeof refusal_text,
             "message of %zu bytes (key %zu, value %zu, plus headers) to '%s' is larger than the "
             "producer's message.max.bytes (%s): refused locally",
             key_len + value_len, key_len, value_len, topic->name, max);
    return IX_ETOOBIG;
  }
  snprintf(refusal_text, sizeof refusal_text, "produce to '%s' refused locally: %s",
           topic->name, rd_kafka_err2str(err));
  return IX_EKAFKA;
}

int producer_poll(producer_t *p, int timeout_ms) {
  if (p->pipefd[0] >= 0) {
    char buf[256];
    while (read(p->pipefd[0], buf, sizeof buf) > 0) {}
  }
  int total = 0, n;
  while ((n = rd_kafka_poll(p->rk, timeout_ms)) > 0) {
    total += n;
    timeout_ms = 0;
  }
  return total;
}

int producer_flush(producer_t *p, int timeout_ms) {
  rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
  producer_poll(p, 0);
  return err ? IX_ESTATE : 0;
}

size_t producer_outstanding(const producer_t *p) {
  return (size_t)rd_kafka_outq_len((rd_kafka_t *)p->rk);
}

/* ---------------------------------------------------------------- transactions */

/* 0, or the class of error (see producer.h) with errstr filled; frees error. */
static int txn_result(rd_kafka_error_t *error, const char *what, char *errstr,
                      size_t errstr_size) {
  if (!error) return 0;
  int rc = rd_kafka_error_is_fatal(error)               ? IX_EKAFKA
           : rd_kafka_error_txn_requires_abort(error)   ? IX_ESTATE
           : rd_kafka_error_is_retriable(error)         ? IX_EFULL
                                                        : IX_ESTATE;
  snprintf(errstr, errstr_size, "%s: %s (%s)", what, rd_kafka_error_string(error),
           rd_kafka_err2name(rd_kafka_error_code(error)));
  /* a fenced producer (another process with the same transactional.id, or
   * an epoch bumped by the coordinator) can do nothing more */
  if (rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__FENCED ||
      rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
      rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
    rc = IX_EKAFKA;
  rd_kafka_error_destroy(error);
  return rc;
}

int producer_txn_init(producer_t *p, int timeout_ms, char *errstr, size_t errstr_size) {
  return txn_result(rd_kafka_init_transactions(p->rk, timeout_ms), "initialising transactions",
                    errstr, errstr_size);
}

int producer_txn_begin(producer_t *p, char *errstr, size_t errstr_size) {
  return txn_result(rd_kafka_begin_transaction(p->rk), "beginning a transaction", errstr,
                    errstr_size);
}

int producer_txn_commit(producer_t *p, consumer_t *c, const producer_txn_offset_t *offs,
                        size_t n, int timeout_ms, char *errstr, size_t errstr_size) {
  int rc = 0;
  if (n) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
      rd_kafka_topic_partition_list_add(l, consumer_topic_name(c), offs[i].partition)->offset =
          offs[i].next_offset;
    rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(consumer_rk(c));
    rc = txn_result(rd_kafka_send_offsets_to_transaction(p->rk, l, gm, timeout_ms),
                    "adding the input offsets to the transaction", errstr, errstr_size);
    rd_kafka_consumer_group_metadata_destroy(gm);
    rd_kafka_topic_partition_list_destroy(l);
    if (rc) return rc;
  }
  return txn_result(rd_kafka_commit_transaction(p->rk, timeout_ms), "committing the transaction",
                    errstr, errstr_size);
}

int producer_txn_abort(producer_t *p, int timeout_ms, char *errstr, size_t errstr_size) {
  return txn_result(rd_kafka_abort_transaction(p->rk, timeout_ms), "aborting the transaction",
                    errstr, errstr_size);
}
