/* interestctl replay: a producer that writes a record file back into a topic,
 * record by record, paced by the records' timestamps. */
#include "stream/replayer.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "stream/kafkaconf.h"
#include "stream/recfile.h"

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
  replayer_stats_t *stats = opaque;
  if (msg->err) {
    stats->failed++;
    LOG_ERROR("replay", "delivery failed for %s [%d]: %s", rd_kafka_topic_name(msg->rkt),
              (int)msg->partition, rd_kafka_err2str(msg->err));
  } else {
    stats->delivered++;
  }
}

static void sleep_until(double when) {
  double now = ix_mono_s();
  if (when <= now) return;
  double d = when - now;
  struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
  nanosleep(&ts, NULL);
}

int replayer_run(const replayer_opts_t *opts, replayer_stats_t *stats, char *errstr,
                 size_t errstr_size) {
  memset(stats, 0, sizeof *stats);
  rec_reader_t *r = NULL;
  rd_kafka_t *rk = NULL;
  rd_kafka_topic_t *rkt = NULL;
  int rc = recfile_reader_open(opts->input, &r, errstr, errstr_size);
  if (rc) return rc;

  rd_kafka_conf_t *conf = kafkaconf_new(opts->brokers, opts->props, errstr, errstr_size);
  if (!conf) {
    rc = IX_ECONFIG;
    goto out;
  }
  rd_kafka_conf_set_opaque(conf, stats);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  if (rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, errstr_size) ||
      rd_kafka_conf_set(conf, "linger.ms", "5", errstr, errstr_size)) {
    rd_kafka_conf_destroy(conf);
    rc = IX_ECONFIG;
    goto out;
  }
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    rc = IX_EKAFKA;
    goto out;
  }
  rkt = rd_kafka_topic_new(rk, opts->topic, NULL);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  if (merr || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0) {
    snprintf(errstr, errstr_size, "topic '%s' is not available: %s", opts->topic,
             rd_kafka_err2str(merr ? merr : md->topic_cnt == 1 ? md->topics[0].err
                                                                : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    if (md) rd_kafka_metadata_destroy(md);
    rc = IX_ENOENT;
    goto out;
  }
  int32_t nparts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);

  double start = ix_mono_s();
  int64_t first_ts = 0;
  int have_first = 0;
  rec_t rec;
  int rrc;
  while ((!opts->max_count || stats->records < opts->max_count) &&
         (rrc = recfile_read(r, &rec)) == 0) {
    int32_t partition = rec.partition;
    if (opts->repartition) {
      partition = RD_KAFKA_PARTITION_UA;
    } else if (partition < 0 || partition >= nparts) {
      snprintf(errstr, errstr_size,
               "record at offset %lld is for partition %d but topic '%s' has %d partitions "
               "(use --repartition to re-key)",
               (long long)rec.offset, (int)partition, opts->topic, (int)nparts);
      rc = IX_EMISMATCH;
      goto flush;
    }
    if (opts->speed > 0) {
      if (!have_first) {
        first_ts = rec.ts_ms;
        have_first = 1;
      }
      sleep_until(start + (double)(rec.ts_ms - first_ts) / 1000.0 / opts->speed);
    }
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY((void *)rec.key, rec.key_len),
          RD_KAFKA_V_VALUE((void *)rec.value, rec.value_len),
          RD_KAFKA_V_TIMESTAMP(rec.ts_ms), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 50); /* back-pressure: wait for deliveries */
        continue;
      }
      if (err) {
        snprintf(errstr, errstr_size, "produce failed: %s", rd_kafka_err2str(err));
        rc = IX_EKAFKA;
        goto flush;
      }
      break;
    }
    stats->records++;
    rd_kafka_poll(rk, 0);
  }
  if (!opts->max_count || stats->records < opts->max_count) {
    if (rrc != IX_EEOF) {
      snprintf(errstr, errstr_size, "%s: damaged record at byte offset %llu (%s); the %llu records before it were produced",
               opts->input, (unsigned long long)recfile_reader_error_offset(r), ix_strerror(rrc),
               (unsigned long long)stats->records);
      rc = rrc;
    }
  }

flush:
  for (int tries = 0; rd_kafka_outq_len(rk) > 0 && tries < 600; tries++) rd_kafka_flush(rk, 100);
  stats->seconds = ix_mono_s() - start;
  if (!rc && stats->delivered != stats->records) {
    snprintf(errstr, errstr_size, "%llu of %llu records were not delivered",
             (unsigned long long)(stats->records - stats->delivered),
             (unsigned long long)stats->records);
    rc = IX_EKAFKA;
  }
out:
  if (rkt) rd_kafka_topic_destroy(rkt);
  if (rk) rd_kafka_destroy(rk);
  recfile_reader_close(r);
  return rc;
}
