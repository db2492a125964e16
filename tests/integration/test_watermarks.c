/* kafka_watermarks() (stream/kafka_internal.h), the one way the daemon's
 * consumer, the warm-up's reader, the changelog reader and the recorder ask
 * a partition's watermarks, on the mock cluster while its ListOffsets
 * requests are answered with NOT_LEADER_FOR_PARTITION (as during a leader
 * election). For k = 1..6 errors pushed before a call, the call must either
 * fail or return the true watermarks (0 and the number of events
 * produced): never low = high = the end, which librdkafka 2.0.2's
 * rd_kafka_query_watermark_offsets() can return as a success when one of
 * its two requests fails (a partition then started at its "low" watermark
 * skips every event). librdkafka's call is asked the same way for the
 * record (printed, not asserted: it is the library's behaviour). */
#include "daemon_harness.h"

#include <librdkafka/rdkafka_mock.h>

#include "stream/kafka_internal.h"

#define N 100

static void push_errors(mockbroker_t *mb, size_t k) {
  rd_kafka_resp_err_t errs[8];
  for (size_t i = 0; i < k; i++) errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
  rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 2 /* ListOffsets */, k, errs);
}

int main(void) {
  h_init("test_watermarks");
  mockbroker_t *mb = h_mockbroker(1);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N, 1);
  h_produce(brokers, "events", msgs, 0, N, 0);
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  H_CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ==
          RD_KAFKA_CONF_OK, "%s", err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  H_CHECK(rk, "%s", err);
  int64_t lo = -1, hi = -1;
  H_CHECK(kafka_watermarks(rk, "events", 0, 10000, &lo, &hi) == 0 && lo == 0 && hi == N,
          "without errors: low %lld, high %lld (want 0, %d)", (long long)lo, (long long)hi, N);
  int failed = 0, right = 0, lib_wrong = 0;
  for (size_t k = 1; k <= 6; k++) {
    push_errors(mb, k);
    lo = hi = -7;
    rd_kafka_resp_err_t e = kafka_watermarks(rk, "events", 0, 10000, &lo, &hi);
    printf("%zu errors pushed: kafka_watermarks %s, low %lld, high %lld\n", k,
           e ? rd_kafka_err2str(e) : "ok", (long long)lo, (long long)hi);
    if (e) {
      failed++;
      H_CHECK(lo == -7 && hi == -7, "a failed call wrote its outputs");
    } else {
      H_CHECK(lo == 0 && hi == N, "a successful call after %zu errors returned low %lld, high "
              "%lld (want 0, %d)", k, (long long)lo, (long long)hi, N);
      right++;
    }
    /* drain what is left of the pushed errors before librdkafka's call */
    for (int i = 0; i < 8 && kafka_watermarks(rk, "events", 0, 10000, &lo, &hi); i++) {
    }
    push_errors(mb, k);
    int64_t llo = -1, lhi = -1;
    e = rd_kafka_query_watermark_offsets(rk, "events", 0, &llo, &lhi, 10000);
    int wrong = !e && !(llo == 0 && lhi == N);
    lib_wrong += wrong;
    printf("%zu errors pushed: rd_kafka_query_watermark_offsets %s, low %lld, high %lld%s\n", k,
           e ? rd_kafka_err2str(e) : "ok", (long long)llo, (long long)lhi,
           wrong ? " (wrong, reported as success)" : "");
    for (int i = 0; i < 8 && kafka_watermarks(rk, "events", 0, 10000, &lo, &hi); i++) {
    }
  }
  printf("kafka_watermarks: %d failed, %d right, 0 wrong; librdkafka's call wrong %d of 6\n",
         failed, right, lib_wrong);
  H_CHECK(failed > 0, "no call failed: the errors were not exercised");
  rd_kafka_destroy(rk);
  h_free_msgs(msgs, N);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
