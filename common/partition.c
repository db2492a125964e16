/* Kafka partitioners (common/partition.h). */
#include "common/partition.h"

#include <string.h>

#include "common/crc.h"

uint32_t ix_murmur2(const void *key, size_t key_len) {
  /* Kafka's org.apache.kafka.common.utils.Utils.murmur2, in unsigned arithmetic
   * (Java's int wraps the same way; >>> is an unsigned shift). */
  const uint8_t *data = key;
  const uint32_t m = 0x5bd1e995u;
  const int r = 24;
  uint32_t h = 0x9747b28cu ^ (uint32_t)key_len;
  size_t n4 = key_len / 4;
  for (size_t i = 0; i < n4; i++) {
    const uint8_t *p = data + 4 * i;
    uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const uint8_t *tail = data + (key_len & ~(size_t)3);
  switch (key_len & 3) {
  case 3: h ^= (uint32_t)tail[2] << 16; /* fall through */
  case 2: h ^= (uint32_t)tail[1] << 8;  /* fall through */
  case 1:
    h ^= tail[0];
    h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

int32_t ix_partition(ix_partitioner_t kind, const void *key, size_t key_len, int32_t partitions) {
  if (partitions <= 0) return -1;
  uint32_t h = kind == IX_PARTITIONER_MURMUR2 ? ix_murmur2(key, key_len) & 0x7fffffffu
                                               : ix_crc32(0, key, key_len);
  return (int32_t)(h % (uint32_t)partitions);
}

int ix_partitioner_parse(const char *name, ix_partitioner_t *out) {
  if (strcmp(name, "consistent_random") == 0 || strcmp(name, "consistent") == 0)
    *out = IX_PARTITIONER_CRC32;
  else if (strcmp(name, "murmur2_random") == 0 || strcmp(name, "murmur2") == 0)
    *out = IX_PARTITIONER_MURMUR2;
  else return -1;
  return 0;
}
