/* Building librdkafka configurations the same way everywhere: bootstrap
 * list, pass-through "key=value" properties, and librdkafka's log routed
 * into common/log. */
#ifndef IX_STREAM_KAFKACONF_H
#define IX_STREAM_KAFKACONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* New configuration with bootstrap.servers = brokers (unless NULL) and each
 * "key=value" of the NULL-terminated props (may be NULL) applied in order.
 * Returns NULL with errstr naming the bad property. Free with
 * rd_kafka_conf_destroy(), or hand it to rd_kafka_new() which takes it. */
rd_kafka_conf_t *kafkaconf_new(const char *brokers, const char *const *props, char *errstr,
                               size_t errstr_size);

/* Applies one "key=value" string. Returns 0 or IX_ECONFIG with errstr. */
int kafkaconf_set_kv(rd_kafka_conf_t *conf, const char *kv, char *errstr, size_t errstr_size);

/* Logs the summary of one librdkafka statistics document (the statistics
 * callback that kafkaconf_new sets calls it): client totals, one line per
 * real broker (request counts; rtt, int_latency, outbuf_latency avg/p99 in
 * ms), and a producer's messages per batch. A missing field prints as -1.
 * Returns 0, or IX_EMALFORMED (and a warning) when json is not a JSON object. */
int kafkaconf_stats_log(const char *client, const char *json, size_t json_len);

#endif
