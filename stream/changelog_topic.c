/* The changelog topic on Kafka: metadata and a group-less read of one
 * partition to its end (restore). */
#include "stream/changelog_topic.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "stream/kafkaconf.h"

static rd_kafka_t *client(rd_kafka_type_t type, const char *brokers, const char *const *props,
                          char *errstr, size_t n) {
  rd_kafka_conf_t *conf = kafkaconf_new(brokers, props, errstr, n);
  if (!conf) return NULL;
  if (type == RD_KAFKA_CONSUMER) {
    static const char *const fixed[][2] = {{"enable.auto.commit", "false"},
                                           {"enable.auto.offset.store", "false"},
                                           {"enable.partition.eof", "true"},
                                           {"fetch.wait.max.ms", "20"},
                                           {"group.id", "interestd-changelog-restore"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
      if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, n) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
      }
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, n);
  if (!rk) rd_kafka_conf_destroy(conf);
  return rk;
}

int changelog_topic_partitions(const char *brokers, const char *const *props, const char *topic,
                               int32_t *partitions, char *errstr, size_t n) {
  *partitions = 0;
  rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, brokers, props, errstr, n);
  if (!rk) return IX_EKAFKA;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
  int rc = 0;
  if (err) {
    snprintf(errstr, n, "cannot read the cluster's metadata: %s", rd_kafka_err2str(err));
    rc = IX_EKAFKA;
  } else {
    for (int i = 0; i < md->topic_cnt; i++)
      if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
        *partitions = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_destroy(rk);
  return rc;
}

int changelog_topic_read(const char *brokers, const char *const *props, const char *topic,
                         int32_t partition, int timeout_ms, changelog_topic_fn fn, void *ctx,
                         uint64_t *records, uint64_t *bytes, char *errstr, size_t n) {
  return changelog_topic_read_from(brokers, props, topic, partition, -1, timeout_ms, fn, ctx,
                                   records, bytes, errstr, n);
}

int changelog_topic_read_from(const char *brokers, const char *const *props, const char *topic,
                              int32_t partition, int64_t from, int timeout_ms,
                              changelog_topic_fn fn, void *ctx, uint64_t *records,
                              uint64_t *bytes, char *errstr, size_t n) {
  *records = *bytes = 0;
  rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, brokers, props, errstr, n);
  if (!rk) return IX_EKAFKA;
  rd_kafka_poll_set_consumer(rk);
  int rc = 0;
  int64_t lo = 0, hi = 0;
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, timeout_ms);
  if (err) {
    snprintf(errstr, n, "changelog %s [%d]: cannot read its watermarks: %s", topic,
             (int)partition, rd_kafka_err2str(err));
    rc = IX_EKAFKA;
    goto out;
  }
  if (from >= 0 && from < lo) {
    snprintf(errstr, n, "changelog %s [%d]: offset %lld is below the low watermark %lld (the "
             "records in between were deleted)", topic, (int)partition, (long long)from,
             (long long)lo);
    rc = IX_ERANGE;
    goto out;
  }
  if (from > lo) lo = from;
  if (hi <= lo) goto out;
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = lo;
  err = rd_kafka_assign(rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (err) {
    snprintf(errstr, n, "changelog %s [%d]: cannot assign: %s", topic, (int)partition,
             rd_kafka_err2str(err));
    rc = IX_EKAFKA;
    goto out;
  }
  uint64_t last_progress = ix_mono_ms();
  int64_t next = lo;
  while (next < hi) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) {
      if (ix_mono_ms() - last_progress > (uint64_t)timeout_ms) {
        snprintf(errstr, n, "changelog %s [%d]: no progress for %d ms at offset %lld of %lld",
                 topic, (int)partition, timeout_ms, (long long)next, (long long)hi);
        rc = IX_EKAFKA;
        break;
      }
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      /* end of the partition (a compacted log may end with no record at hi - 1) */
      rd_kafka_message_destroy(m);
      break;
    }
    if (m->err) {
      snprintf(errstr, n, "changelog %s [%d]: fetch failed at offset %lld: %s", topic,
               (int)partition, (long long)next, rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      rc = IX_EKAFKA;
      break;
    }
    last_progress = ix_mono_ms();
    next = m->offset + 1;
    (*records)++;
    *bytes += m->key_len + m->len;
    rc = fn(ctx, m->offset, m->key, m->key_len, m->payload, m->len);
    rd_kafka_message_destroy(m);
    if (rc) break;
  }
out:
  rd_kafka_destroy(rk);
  return rc;
}

/* ---- follower ---- */

struct changelog_follower {
  rd_kafka_t *rk;
  char *topic;
};

int changelog_follower_new(const char *brokers, const char *const *props, const char *topic,
                           changelog_follower_t **out, char *errstr, size_t n) {
  changelog_follower_t *f = calloc(1, sizeof *f);
  if (!f || !(f->topic = strdup(topic))) {
    free(f);
    snprintf(errstr, n, "out of memory");
    return IX_ENOMEM;
  }
  rd_kafka_conf_t *conf = kafkaconf_new(brokers, props, errstr, n);
  static const char *const fixed[][2] = {{"enable.auto.commit", "false"},
                                         {"enable.auto.offset.store", "false"},
                                         {"auto.offset.reset", "error"},
                                         {"fetch.wait.max.ms", "100"},
                                         {"group.id", "interestd-changelog-standby"}};
  for (size_t i = 0; conf && i < sizeof fixed / sizeof fixed[0]; i++)
    if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, n) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      conf = NULL;
    }
  if (conf && !(f->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, n)))
    rd_kafka_conf_destroy(conf);
  if (!f->rk) {
    changelog_follower_destroy(f);
    return IX_EKAFKA;
  }
  rd_kafka_poll_set_consumer(f->rk);
  *out = f;
  return 0;
}

void changelog_follower_destroy(changelog_follower_t *f) {
  if (!f) return;
  if (f->rk) {
    rd_kafka_topic_partition_list_t *none = rd_kafka_topic_partition_list_new(0);
    rd_kafka_assign(f->rk, none);
    rd_kafka_topic_partition_list_destroy(none);
    rd_kafka_destroy(f->rk);
  }
  free(f->topic);
  free(f);
}

int changelog_follower_add(changelog_follower_t *f, int32_t partition, int64_t offset) {
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, f->topic, partition)->offset =
      offset >= 0 ? offset : RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_error_t *e = rd_kafka_incremental_assign(f->rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (!e) return 0;
  rd_kafka_error_destroy(e);
  return IX_EKAFKA;
}

int changelog_follower_remove(changelog_follower_t *f, int32_t partition) {
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, f->topic, partition);
  rd_kafka_error_t *e = rd_kafka_incremental_unassign(f->rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (!e) return 0;
  rd_kafka_error_destroy(e);
  return IX_EKAFKA;
}

size_t changelog_follower_poll(changelog_follower_t *f, size_t max, changelog_follow_fn fn,
                               void *ctx) {
  size_t k = 0;
  while (k < max) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(f->rk, 0);
    if (!m) break;
    k++;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->err) {
      char why[300];
      snprintf(why, sizeof why, "changelog %s [%d] at offset %lld: %s", f->topic,
               (int)m->partition, (long long)m->offset, rd_kafka_message_errstr(m));
      if (m->rkt) fn(ctx, m->partition, m->offset, NULL, 0, NULL, 0, why);
      rd_kafka_message_destroy(m);
      continue;
    }
    fn(ctx, m->partition, m->offset, m->key, m->key_len, m->payload, m->len, NULL);
    rd_kafka_message_destroy(m);
  }
  return k;
}

int64_t changelog_follower_end(changelog_follower_t *f, int32_t partition) {
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(f->rk, f->topic, partition, &lo, &hi) ||
      hi < 0)
    return -1;
  return hi;
}
