/* librdkafka's mock cluster behind a small handle. The cluster needs an
 * rd_kafka_t to own its threads: a producer handle created with
 * test.mock.num.brokers (which starts the cluster and points the handle at
 * it) serves as that owner and never produces. */
#include "stream/mockbroker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "stream/kafkaconf.h"

struct mockbroker {
  rd_kafka_t *rk;                  /* owner of the cluster */
  rd_kafka_mock_cluster_t *mcluster;
  char *bootstraps;
};

int mockbroker_new(int n_brokers, mockbroker_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  if (n_brokers < 1) {
    snprintf(errstr, errstr_size, "mock cluster needs at least one broker (got %d)", n_brokers);
    return IX_EINVAL;
  }
  mockbroker_t *mb = calloc(1, sizeof *mb);
  if (!mb) return IX_ENOMEM;
  char n[48];
  snprintf(n, sizeof n, "test.mock.num.brokers=%d", n_brokers);
  const char *props[] = {n, NULL};
  rd_kafka_conf_t *conf = kafkaconf_new(NULL, props, errstr, errstr_size);
  if (!conf) goto err;
  mb->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
  if (!mb->rk) {
    rd_kafka_conf_destroy(conf);
    goto err;
  }
  mb->mcluster = rd_kafka_handle_mock_cluster(mb->rk); /* owned by rk */
  if (!mb->mcluster) {
    snprintf(errstr, errstr_size, "could not start the mock Kafka cluster");
    goto err;
  }
  mb->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(mb->mcluster));
  if (!mb->bootstraps) goto err;
  *out = mb;
  return 0;
err:
  mockbroker_destroy(mb);
  return IX_EKAFKA;
}

void *mockbroker_cluster(mockbroker_t *mb) { return mb->mcluster; }

void mockbroker_destroy(mockbroker_t *mb) {
  if (!mb) return;
  if (mb->rk) rd_kafka_destroy(mb->rk); /* stops the cluster it owns */
  free(mb->bootstraps);
  free(mb);
}

const char *mockbroker_bootstraps(const mockbroker_t *mb) { return mb->bootstraps; }

int mockbroker_create_topic(mockbroker_t *mb, const char *topic, int partitions, char *errstr,
                            size_t errstr_size) {
  if (partitions < 1) {
    snprintf(errstr, errstr_size, "topic '%s' needs at least one partition", topic);
    return IX_EINVAL;
  }
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mb->mcluster, topic, partitions, 1);
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    snprintf(errstr, errstr_size, "topic '%s' already exists", topic);
    return IX_EEXIST;
  }
  if (err) {
    snprintf(errstr, errstr_size, "creating topic '%s': %s", topic, rd_kafka_err2str(err));
    return IX_EKAFKA;
  }
  return 0;
}
