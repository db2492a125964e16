/* librdkafka configuration helpers shared by the daemon and the tools. */
#include "stream/kafkaconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

void kafkaconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
  log_level_t lvl = level <= 3 ? LOG_LVL_ERROR : level == 4 ? LOG_LVL_WARN
                  : level <= 6 ? LOG_LVL_INFO : LOG_LVL_DEBUG;
  log_write(lvl, "kafka", "%s: %s", fac, buf);
}

int kafkaconf_set_kv(rd_kafka_conf_t *conf, const char *kv, char *errstr, size_t errstr_size) {
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv) {
    snprintf(errstr, errstr_size, "Kafka property '%s' is not of the form key=value", kv);
    return IX_ECONFIG;
  }
  char key[256];
  size_t klen = (size_t)(eq - kv);
  if (klen >= sizeof key) {
    snprintf(errstr, errstr_size, "Kafka property name too long in '%s'", kv);
    return IX_ECONFIG;
  }
  memcpy(key, kv, klen);
  key[klen] = '\0';
  char why[512];
  if (rd_kafka_conf_set(conf, key, eq + 1, why, sizeof why) != RD_KAFKA_CONF_OK) {
    snprintf(errstr, errstr_size, "Kafka property '%s': %s", key, why);
    return IX_ECONFIG;
  }
  return 0;
}

/* librdkafka statistics (statistics.interval.ms > 0) summarised into one log
 * line per broker: request counts, round-trip time, time in librdkafka's
 * queues. Reads only the fields it names, with strstr: the JSON layout is
 * librdkafka's (STATISTICS.md), and a field that is missing prints as -1. */
static double stats_num(const char *from, const char *end, const char *key) {
  const char *p = strstr(from, key);
  if (!p || (end && p >= end)) return -1;
  return strtod(p + strlen(key), NULL);
}

/* "avg/p99" in ms of a latency window ("rtt", "int_latency", ...) given in us */
static void stats_window(char *out, size_t size, const char *from, const char *end,
                         const char *name) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", name);
  const char *w = strstr(from, key);
  if (!w || (end && w >= end)) {
    snprintf(out, size, "-");
    return;
  }
  snprintf(out, size, "%.2f/%.2f", stats_num(w, end, "\"avg\":") / 1e3,
           stats_num(w, end, "\"p99\":") / 1e3);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque) {
  log_write(LOG_LVL_INFO, "kafka", "stats %s: messages in queue %.0f, sent %.0f, received %.0f",
            rd_kafka_name(rk), stats_num(json, NULL, "\"msg_cnt\":"),
            stats_num(json, NULL, "\"txmsgs\":"), stats_num(json, NULL, "\"rxmsgs\":"));
  const char *brokers = strstr(json, "\"brokers\":{");
  const char *topics = strstr(json, "\"topics\":{");
  for (const char *b = brokers; b && (b = strstr(b, "\"nodeid\":"));) {
    const char *next = strstr(b + 1, "\"nodeid\":");
    const char *end = next ? next : topics;
    int nodeid = (int)stats_num(b, end, "\"nodeid\":");
    char rtt[48], intl[48], outl[48];
    stats_window(rtt, sizeof rtt, b, end, "rtt");
    stats_window(intl, sizeof intl, b, end, "int_latency");
    stats_window(outl, sizeof outl, b, end, "outbuf_latency");
    double fetch = stats_num(b, end, "\"Fetch\":"), produce = stats_num(b, end, "\"Produce\":");
    if (nodeid >= 0)
      log_write(LOG_LVL_INFO, "kafka", "stats %s broker %d: requests Produce %.0f Fetch %.0f; "
                "ms avg/p99: rtt %s, int_latency %s, outbuf_latency %s", rd_kafka_name(rk),
                nodeid, produce, fetch, rtt, intl, outl);
    b = next;
  }
  /* producer: messages per batch, averaged over the window, of the first topic */
  const char *bc = topics && strstr(json, "\"type\": \"producer\"") ? strstr(topics, "\"batchcnt\":")
                                                                  : NULL;
  if (bc)
    log_write(LOG_LVL_INFO, "kafka", "stats %s: messages per produce batch avg %.1f p99 %.0f",
              rd_kafka_name(rk), stats_num(bc, NULL, "\"avg\":"), stats_num(bc, NULL, "\"p99\":"));
  return 0; /* librdkafka frees json */
}

rd_kafka_conf_t *kafkaconf_new(const char *brokers, const char *const *props, char *errstr,
                               size_t errstr_size) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, kafkaconf_log_cb);
  rd_kafka_conf_set_stats_cb(conf, stats_cb);
  if (brokers && rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) !=
                     RD_KAFKA_CONF_OK)
    goto err;
  for (size_t i = 0; props && props[i]; i++)
    if (kafkaconf_set_kv(conf, props[i], errstr, errstr_size)) goto err;
  return conf;
err:
  rd_kafka_conf_destroy(conf);
  return NULL;
}
