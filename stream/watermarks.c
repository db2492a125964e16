/* kafka_watermarks(): a partition's low and high watermarks, each asked and
 * checked on its own (stream/kafka_internal.h). */
#include "stream/kafka_internal.h"

rd_kafka_resp_err_t kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition,
                                     int timeout_ms, int64_t *lo, int64_t *hi) {
  int64_t which[2] = {RD_KAFKA_OFFSET_BEGINNING, RD_KAFKA_OFFSET_END}, got[2] = {-1, -1};
  for (int i = 0; i < 2; i++) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (!l) return RD_KAFKA_RESP_ERR__NO_OFFSET;
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = which[i];
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, timeout_ms);
    if (!err) err = l->elems[0].err;
    got[i] = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) return err;
    if (got[i] < 0) return RD_KAFKA_RESP_ERR__NO_OFFSET;
  }
  if (got[0] > got[1]) return RD_KAFKA_RESP_ERR__INCONSISTENT;
  *lo = got[0];
  *hi = got[1];
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}
