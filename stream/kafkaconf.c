/* librdkafka configuration helpers shared by the daemon and the tools. */
#include "stream/kafkaconf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

static void kafkaconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
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

/* librdkafka statistics (statistics.interval.ms > 0) summarised into log
 * lines: the client's queue and totals, then per broker the request counts,
 * round-trip time and time in librdkafka's queues, and for a producer the
 * messages per batch. The JSON (librdkafka's STATISTICS.md) is parsed with
 * jansson; a field that is missing prints as -1, and a document that does
 * not parse is reported once per callback and otherwise ignored. */
static double stats_num(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  return json_is_number(v) ? json_number_value(v) : -1;
}

/* "avg/p99" in ms of a latency window ("rtt", "int_latency", ...) given in us */
static void stats_window(char *out, size_t size, const json_t *broker, const char *name) {
  const json_t *w = json_object_get(broker, name);
  if (!json_is_object(w)) {
    snprintf(out, size, "-");
    return;
  }
  snprintf(out, size, "%.2f/%.2f", stats_num(w, "avg") / 1e3, stats_num(w, "p99") / 1e3);
}

int kafkaconf_stats_log(const char *client, const char *json, size_t json_len) {
  json_error_t jerr;
  json_t *root = json_loadb(json, json_len, 0, &jerr);
  if (!json_is_object(root)) {
    log_write(LOG_LVL_WARN, "kafka", "stats %s: unreadable statistics JSON: %s (line %d)",
              client, root ? "not an object" : jerr.text, root ? 0 : jerr.line);
    json_decref(root);
    return IX_EMALFORMED;
  }
  log_write(LOG_LVL_INFO, "kafka", "stats %s: messages in queue %.0f, sent %.0f, received %.0f",
            client, stats_num(root, "msg_cnt"), stats_num(root, "txmsgs"),
            stats_num(root, "rxmsgs"));
  const char *key;
  json_t *b;
  json_object_foreach(json_object_get(root, "brokers"), key, b) {
    int nodeid = (int)stats_num(b, "nodeid");
    if (nodeid < 0) continue; /* librdkafka's internal and bootstrap pseudo-brokers */
    char rtt[48], intl[48], outl[48];
    stats_window(rtt, sizeof rtt, b, "rtt");
    stats_window(intl, sizeof intl, b, "int_latency");
    stats_window(outl, sizeof outl, b, "outbuf_latency");
    const json_t *req = json_object_get(b, "req");
    log_write(LOG_LVL_INFO, "kafka", "stats %s broker %d: requests Produce %.0f Fetch %.0f; "
              "ms avg/p99: rtt %s, int_latency %s, outbuf_latency %s", client,
              nodeid, stats_num(req, "Produce"), stats_num(req, "Fetch"), rtt, intl, outl);
  }
  /* producer: messages per batch, averaged over the window, of the first topic */
  const json_t *type = json_object_get(root, "type");
  if (json_is_string(type) && strcmp(json_string_value(type), "producer") == 0) {
    void *it = json_object_iter(json_object_get(root, "topics"));
    const json_t *bc = it ? json_object_get(json_object_iter_value(it), "batchcnt") : NULL;
    if (json_is_object(bc))
      log_write(LOG_LVL_INFO, "kafka", "stats %s: messages per produce batch avg %.1f p99 %.0f",
                client, stats_num(bc, "avg"), stats_num(bc, "p99"));
  }
  json_decref(root);
  return 0;
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque) {
  kafkaconf_stats_log(rd_kafka_name(rk), json, json_len);
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
