/* common/partition: ix_partition agrees with librdkafka's own consistent
 * (CRC-32) and murmur2 partitioners on user-id keys and random bytes, and
 * with the Java client's murmur2 on known values; names parse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "common/hash.h"
#include "common/partition.h"

static void test_partition_matches_librdkafka(void **unused) {
  int32_t counts[] = {1, 2, 3, 7, 16, 64, 1000};
  for (uint64_t i = 0; i < 20000; i++) {
    char key[40];
    size_t kl;
    if (i % 2) {
      kl = (size_t)snprintf(key, sizeof key, "%" PRIu64, (uint64_t)(ix_splitmix64(i) % 100000000000u));
    } else {
      kl = 1 + ix_splitmix64(i) % 30;
      for (size_t k = 0; k < kl; k++) key[k] = (char)(ix_splitmix64(i * 31 + k) & 0xff);
    }
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
      int32_t n = counts[c];
      int32_t crc = rd_kafka_msg_partitioner_consistent(NULL, key, kl, n, NULL, NULL);
      int32_t mm = rd_kafka_msg_partitioner_murmur2(NULL, key, kl, n, NULL, NULL);
      assert_int_equal(ix_partition(IX_PARTITIONER_CRC32, key, kl, n), crc);
      assert_int_equal(ix_partition(IX_PARTITIONER_MURMUR2, key, kl, n), mm);
    }
  }
  assert_int_equal(ix_partition(IX_PARTITIONER_CRC32, "1", 1, 0), -1);
}

static void test_partitioner_names(void **unused) {
  ix_partitioner_t k;
  assert_int_equal(ix_partitioner_parse("consistent_random", &k), 0);
  assert_int_equal(k, IX_PARTITIONER_CRC32);
  assert_int_equal(ix_partitioner_parse("consistent", &k), 0);
  assert_int_equal(k, IX_PARTITIONER_CRC32);
  assert_int_equal(ix_partitioner_parse("murmur2_random", &k), 0);
  assert_int_equal(k, IX_PARTITIONER_MURMUR2);
  assert_int_equal(ix_partitioner_parse("murmur2", &k), 0);
  assert_int_equal(k, IX_PARTITIONER_MURMUR2);
  assert_int_equal(ix_partitioner_parse("random", &k), -1);
  assert_int_equal(ix_partitioner_parse("fnv1a", &k), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partition_matches_librdkafka),
      cmocka_unit_test(test_partitioner_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
