/* Where a producer put a keyed message: the partitioners of librdkafka
 * (consistent_random, its default: CRC-32 of the key) and of the Java client
 * (murmur2, also librdkafka's murmur2_random), for non-empty keys. The two
 * differ, so the daemon is told which one the input's producer used
 * (kafka.input_partitioner). */
#ifndef IX_COMMON_PARTITION_H
#define IX_COMMON_PARTITION_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  IX_PARTITIONER_CRC32 = 0,   /* librdkafka consistent / consistent_random */
  IX_PARTITIONER_MURMUR2 = 1, /* Java client default; librdkafka murmur2 / murmur2_random */
} ix_partitioner_t;

/* Kafka's org.apache.kafka.common.utils.Utils.murmur2 (seed 0x9747b28c). */
uint32_t ix_murmur2(const void *key, size_t key_len);

/* The partition of key among partitions (> 0); -1 when partitions <= 0. */
int32_t ix_partition(ix_partitioner_t kind, const void *key, size_t key_len, int32_t partitions);

/* librdkafka's partitioner names (consistent_random, consistent,
 * murmur2_random, murmur2) -> kind; 0, or -1 for any other name. */
int ix_partitioner_parse(const char *name, ix_partitioner_t *out);

#endif
