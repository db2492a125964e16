/* librdkafka configuration helpers shared by the daemon and the tools. */
#include "stream/kafkaconf.h"

#include <stdio.h>
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

rd_kafka_conf_t *kafkaconf_new(const char *brokers, const char *const *props, char *errstr,
                               size_t errstr_size) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, kafkaconf_log_cb);
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
