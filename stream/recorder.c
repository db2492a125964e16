/* interestctl record: a group-less consumer that assigns every partition of
 * one topic and appends what it reads to a record file. */
#include "stream/recorder.h"
#include "stream/kafka_internal.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "stream/kafkaconf.h"
#include "stream/recfile.h"

/* Fills *nparts with the topic's partition count. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int32_t *nparts, char *errstr,
                            size_t errstr_size) {
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (err) {
    snprintf(errstr, errstr_size, "cannot read metadata of topic '%s': %s", topic,
             rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  int rc = 0;
  if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0) {
    snprintf(errstr, errstr_size, "topic '%s' is not available: %s", topic,
             md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no metadata");
    rc = IX_ENOENT;
  } else {
    *nparts = md->topics[0].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return rc;
}

int recorder_run(const recorder_opts_t *opts, recorder_stats_t *stats, char *errstr,
                 size_t errstr_size) {
  memset(stats, 0, sizeof *stats);
  rd_kafka_t *rk = NULL;
  rec_writer_t *w = NULL;
  rd_kafka_topic_partition_list_t *parts = NULL;
  int64_t *high = NULL;
  unsigned char *done = NULL;
  int rc = 0;

  rd_kafka_conf_t *conf = kafkaconf_new(opts->brokers, opts->props, errstr, errstr_size);
  if (!conf) return IX_ECONFIG;
  static const char *const fixed[][2] = {
      {"enable.auto.commit", "false"},  {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"}, {"fetch.wait.max.ms", "100"},
      {"group.id", "interestctl-record"},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, errstr_size) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return IX_ECONFIG;
    }
  }
  rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return IX_EKAFKA;
  }
  rd_kafka_poll_set_consumer(rk);

  int32_t nparts = 0;
  if ((rc = topic_partitions(rk, opts->topic, &nparts, errstr, errstr_size))) goto out;
  stats->partitions = nparts;
  high = calloc((size_t)nparts, sizeof *high);
  done = calloc((size_t)nparts, 1);
  parts = rd_kafka_topic_partition_list_new(nparts);
  if (!high || !done || !parts) {
    rc = IX_ENOMEM;
    goto out;
  }
  int32_t remaining = nparts;
  for (int32_t p = 0; p < nparts; p++) {
    int64_t start = opts->from_offset == RECORDER_FROM_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                    : opts->from_offset == RECORDER_FROM_END      ? RD_KAFKA_OFFSET_END
                                                                  : opts->from_offset;
    rd_kafka_topic_partition_list_add(parts, opts->topic, p)->offset = start;
    if (opts->until_end) {
      int64_t lo = 0, hi = 0;
      rd_kafka_resp_err_t err = kafka_watermarks(rk, opts->topic, p, 10000, &lo, &hi);
      if (err) {
        snprintf(errstr, errstr_size, "cannot read the end offset of %s [%d]: %s", opts->topic,
                 (int)p, rd_kafka_err2str(err));
        rc = IX_EKAFKA;
        goto out;
      }
      high[p] = hi;
      int64_t first = opts->from_offset >= 0 ? opts->from_offset : lo;
      if (opts->from_offset == RECORDER_FROM_END || first >= hi) {
        done[p] = 1;
        remaining--;
      }
    }
  }
  if ((rc = recfile_writer_open(opts->output, 0, &w, errstr, errstr_size))) goto out;
  if (opts->until_end && remaining == 0) goto out;
  rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, parts);
  if (aerr) {
    snprintf(errstr, errstr_size, "cannot assign partitions: %s", rd_kafka_err2str(aerr));
    rc = IX_EKAFKA;
    goto out;
  }

  int64_t last_activity = (int64_t)ix_mono_ms();
  for (;;) {
    if (opts->max_count && stats->records >= opts->max_count) break;
    if (opts->until_end && remaining == 0) break;
    if (opts->timeout_ms > 0 && (int64_t)ix_mono_ms() - last_activity > opts->timeout_ms) {
      if (opts->until_end) {
        snprintf(errstr, errstr_size, "no data for %d ms before reaching the end offsets",
                 opts->timeout_ms);
        rc = IX_EIO;
      }
      break;
    }
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 200);
    if (!msg) continue;
    last_activity = (int64_t)ix_mono_ms();
    int32_t p = msg->partition;
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (opts->until_end && p >= 0 && p < nparts && !done[p] && msg->offset >= high[p]) {
        done[p] = 1;
        remaining--;
      }
      rd_kafka_message_destroy(msg);
      continue;
    }
    if (msg->err) {
      snprintf(errstr, errstr_size, "consume error on %s [%d]: %s", opts->topic, (int)p,
               rd_kafka_message_errstr(msg));
      rd_kafka_message_destroy(msg);
      rc = IX_EKAFKA;
      goto out;
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(msg, &tstype);
    if (p >= 0 && p < nparts && opts->until_end && !done[p] && msg->offset + 1 >= high[p]) {
      done[p] = 1;
      remaining--;
    }
    if (opts->from_time_ms == 0 || ts >= opts->from_time_ms) {
      rec_t rec = {.partition = p, .offset = msg->offset, .ts_ms = ts,
                   .key = msg->key, .key_len = msg->key_len,
                   .value = msg->payload, .value_len = msg->len};
      if ((rc = recfile_write(w, &rec))) {
        snprintf(errstr, errstr_size, "cannot write to %s: %s", opts->output, ix_strerror(rc));
        rd_kafka_message_destroy(msg);
        goto out;
      }
      stats->records++;
      stats->bytes += msg->len + msg->key_len;
    }
    rd_kafka_message_destroy(msg);
  }

out:;
  int crc = recfile_writer_close(w);
  if (!rc && crc) {
    snprintf(errstr, errstr_size, "cannot close %s: %s", opts->output, ix_strerror(crc));
    rc = crc;
  }
  if (rk) {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
  if (parts) rd_kafka_topic_partition_list_destroy(parts);
  free(high);
  free(done);
  return rc;
}
