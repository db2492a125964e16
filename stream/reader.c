/* A group-less partition reader (stream/reader.h): librdkafka's consumer
 * with a manual assignment and batch reads from its queue. */
#include "stream/reader.h"
#include "stream/kafka_internal.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/kafkaconf.h"

struct reader {
  rd_kafka_t *rk;
  rd_kafka_queue_t *rkqu;
  char *topic;
  rd_kafka_message_t **msgs; /* the last poll's messages */
  size_t n_msgs, cap;
};

int reader_new(const char *brokers, const char *const *props, const char *topic,
               reader_t **out, char *errstr, size_t n) {
  *out = NULL;
  reader_t *r = calloc(1, sizeof *r);
  if (!r || !(r->topic = strdup(topic))) {
    free(r);
    snprintf(errstr, n, "out of memory");
    return IX_ENOMEM;
  }
  rd_kafka_conf_t *conf = kafkaconf_new(brokers, props, errstr, n);
  if (!conf) {
    reader_destroy(r);
    return IX_ECONFIG;
  }
  /* after the caller's properties: this reader never commits nor joins */
  static const char *const fixed[][2] = {{"enable.auto.commit", "false"},
                                         {"enable.auto.offset.store", "false"},
                                         {"enable.partition.eof", "false"},
                                         /* a start below the log's first offset (its
                                          * records deleted) reads from the first kept
                                          * one, never jumps to the end */
                                         {"auto.offset.reset", "earliest"},
                                         {"group.id", "interestd-warmup-reader"}};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, n) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      reader_destroy(r);
      return IX_ECONFIG;
    }
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, n);
  if (!r->rk) {
    rd_kafka_conf_destroy(conf);
    reader_destroy(r);
    return IX_EKAFKA;
  }
  rd_kafka_poll_set_consumer(r->rk);
  r->rkqu = rd_kafka_queue_get_consumer(r->rk);
  if (!r->rkqu) {
    snprintf(errstr, n, "no consumer queue");
    reader_destroy(r);
    return IX_EKAFKA;
  }
  *out = r;
  return 0;
}

void reader_destroy(reader_t *r) {
  if (!r) return;
  reader_release(r);
  if (r->rkqu) rd_kafka_queue_destroy(r->rkqu);
  if (r->rk) {
    rd_kafka_assign(r->rk, NULL);
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
  }
  free(r->msgs);
  free(r->topic);
  free(r);
}

int reader_assign(reader_t *r, const int32_t *partitions, const int64_t *offsets, size_t n) {
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new((int)n + 1);
  if (!tp) return IX_ENOMEM;
  for (size_t i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(tp, r->topic, partitions[i])->offset = offsets[i];
  rd_kafka_resp_err_t err = rd_kafka_assign(r->rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (err) {
    LOG_ERROR("reader", "%s: cannot assign %zu partitions: %s", r->topic, n,
              rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  return 0;
}

static int pause_one(reader_t *r, int32_t partition, int pause) {
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
  if (!tp) return IX_ENOMEM;
  rd_kafka_topic_partition_list_add(tp, r->topic, partition);
  rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(r->rk, tp)
                                  : rd_kafka_resume_partitions(r->rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (err) {
    LOG_WARN("reader", "%s [%d]: cannot %s: %s", r->topic, (int)partition,
             pause ? "pause" : "resume", rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  return 0;
}

int reader_pause(reader_t *r, int32_t partition) { return pause_one(r, partition, 1); }

int reader_resume(reader_t *r, int32_t partition) { return pause_one(r, partition, 0); }

void reader_release(reader_t *r) {
  for (size_t i = 0; i < r->n_msgs; i++) rd_kafka_message_destroy(r->msgs[i]);
  r->n_msgs = 0;
}

ssize_t reader_poll(reader_t *r, rec_t *out, size_t max, int timeout_ms) {
  reader_release(r);
  if (max > r->cap) {
    rd_kafka_message_t **m = realloc(r->msgs, max * sizeof *m);
    if (!m) return IX_ENOMEM;
    r->msgs = m;
    r->cap = max;
  }
  ssize_t got = rd_kafka_consume_batch_queue(r->rkqu, timeout_ms, r->msgs, max);
  if (got < 0) return 0;
  size_t n = 0;
  for (ssize_t i = 0; i < got; i++) {
    rd_kafka_message_t *m = r->msgs[i];
    if (m->err) {
      LOG_WARN("reader", "%s [%d]: %s", r->topic, (int)m->partition, rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    r->msgs[r->n_msgs++] = m;
    out[n++] = (rec_t){.partition = m->partition, .offset = m->offset,
                       .ts_ms = rd_kafka_message_timestamp(m, NULL), .key = m->key,
                       .key_len = m->key_len, .value = m->payload, .value_len = m->len};
  }
  return (ssize_t)n;
}

/* kafka_watermarks(), its failure logged. */
int reader_watermarks(reader_t *r, int32_t partition, int timeout_ms, int64_t *lo, int64_t *hi) {
  rd_kafka_resp_err_t err = kafka_watermarks(r->rk, r->topic, partition, timeout_ms, lo, hi);
  if (err) {
    LOG_WARN("reader", "%s [%d]: watermarks unknown: %s", r->topic, (int)partition,
             rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  return 0;
}
