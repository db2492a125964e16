/* An in-process Kafka cluster for the demo and the tests: librdkafka's mock
 * cluster (rdkafka_mock.h) on loopback TCP with random ports. Other
 * processes (interestd, kcat, Python clients) reach it through
 * mockbroker_bootstraps(). Topics are created here: the mock has no Admin API. */
#ifndef IX_STREAM_MOCKBROKER_H
#define IX_STREAM_MOCKBROKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mockbroker mockbroker_t;

/* Starts a cluster of n_brokers (>= 1). Returns 0 or a negative IX_E* with
 * errstr filled. Free with mockbroker_destroy(). */
int mockbroker_new(int n_brokers, mockbroker_t **out, char *errstr, size_t errstr_size);
/* Stops the cluster (every client of it loses its connections); accepts NULL. */
void mockbroker_destroy(mockbroker_t *mb);

/* The librdkafka mock cluster (rd_kafka_mock_cluster_t *) for fault
 * injection with <librdkafka/rdkafka_mock.h>'s rd_kafka_mock_* functions
 * (tests only); borrowed, valid until mockbroker_destroy(). */
void *mockbroker_cluster(mockbroker_t *mb);

/* "127.0.0.1:port,..." — borrowed; valid until mockbroker_destroy(). */
const char *mockbroker_bootstraps(const mockbroker_t *mb);

/* Creates a topic with the given partition count (replication 1). Creating
 * an existing topic is an error (IX_EEXIST). */
int mockbroker_create_topic(mockbroker_t *mb, const char *topic, int partitions, char *errstr,
                            size_t errstr_size);

#endif
