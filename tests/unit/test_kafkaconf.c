/* stream/kafkaconf: librdkafka statistics reach the log as summary lines
 * (a producer against the in-process mock broker, stderr captured), and the
 * summary reads the fields it names from crafted documents, refusing
 * documents that are not JSON objects with one warning. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/kafkaconf.h"
#include "stream/mockbroker.h"
#include "stream/producer.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* stderr while fn(arg) runs */
static char *capture(void (*fn)(void *), void *arg) {
  fflush(stderr);
  FILE *cap = tmpfile();
  int saved = dup(2);
  dup2(fileno(cap), 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  long len = ftell(cap);
  char *text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
  rewind(cap);
  if (len > 0) assert_int_equal(fread(text, 1, (size_t)len, cap), (size_t)len);
  fclose(cap);
  return text;
}

/* Runs a producer with the given extra property for about 0.6 s against a
 * mock broker, sending a few messages. */
static void producer_run(void *prop) {
  char err[512];
  mockbroker_t *mb;
  assert_int_equal(mockbroker_new(1, &mb, err, sizeof err), 0);
  assert_int_equal(mockbroker_create_topic(mb, "t", 2, err, sizeof err), 0);
  const char *props[] = {prop, NULL};
  producer_opts_t po = {.brokers = mockbroker_bootstraps(mb), .props = props};
  producer_t *p;
  assert_int_equal(producer_new(&po, &p, err, sizeof err), 0);
  producer_topic_t *t = producer_topic(p, "t");
  assert_non_null(t);
  double end = now_s() + 0.6;
  for (int i = 0; now_s() < end; i++) {
    if (i < 50) assert_int_equal(producer_send(p, t, i % 2, "k", 1, "v", 1, 0, NULL, 0, 0), 0);
    producer_poll(p, 20);
  }
  assert_int_equal(producer_flush(p, 5000), 0);
  producer_destroy(p, 1000);
  mockbroker_destroy(mb);
}

/* what the logger wrote to stderr during producer_run(prop) (malloc'd) */
static char *run_producer(const char *prop) { return capture(producer_run, (void *)prop); }

static void test_kafkaconf_logs_statistics_summary_when_enabled(void **state) {
  (void)state;
  log_set_level(LOG_LVL_INFO);
  char *text = run_producer("statistics.interval.ms=100");
  /* client line, broker line with request counts and round-trip times, batch line */
  assert_non_null(strstr(text, "[kafka] stats rdkafka#producer"));
  const char *b = strstr(text, " broker 1: requests Produce ");
  assert_non_null(b);
  /* the mock acknowledged the 50 messages in at least one Produce request */
  const char *last = b, *q;
  while ((q = strstr(last + 1, " broker 1: requests Produce "))) last = q;
  assert_true(atoi(last + strlen(" broker 1: requests Produce ")) >= 1);
  assert_non_null(strstr(last, "rtt "));
  assert_null(strstr(last, "rtt -,")); /* the rtt window was found and parsed */
  assert_non_null(strstr(text, "messages per produce batch avg"));
  free(text);
}

static void test_kafkaconf_logs_no_statistics_by_default(void **state) {
  (void)state;
  log_set_level(LOG_LVL_INFO);
  char *text = run_producer("linger.ms=1");
  assert_null(strstr(text, "[kafka] stats"));
  free(text);
}

static int stats_rc;
static void log_doc(void *doc) {
  stats_rc = kafkaconf_stats_log("c1", doc, strlen(doc));
}

static void test_kafkaconf_stats_fields_and_bad_json(void **state) {
  (void)state;
  log_set_level(LOG_LVL_INFO);
  /* librdkafka's layout, cut down: a pseudo-broker (nodeid -1) is skipped, a
   * broker without "req" or "int_latency" prints -1 and "-", the producer's
   * first topic gives the batch line; keys in any order, nested "avg" keys
   * elsewhere do not confuse it */
  const char *doc =
      "{\"name\":\"c1\",\"type\":\"producer\",\"txmsgs\":50,\"rxmsgs\":7,\"msg_cnt\":3,"
      "\"brokers\":{\"GroupCoordinator\":{\"nodeid\":-1,\"req\":{\"Produce\":99}},"
      "\"b:9092/2\":{\"rtt\":{\"avg\":1500,\"p99\":4000},\"outbuf_latency\":{\"p99\":20,"
      "\"avg\":10},\"nodeid\":2,\"req\":{\"Fetch\":0,\"Produce\":12}},"
      "\"b:9093/3\":{\"nodeid\":3}},"
      "\"topics\":{\"t\":{\"batchcnt\":{\"avg\":4.5,\"p99\":9}}}}";
  char *text = capture(log_doc, (void *)doc);
  assert_int_equal(stats_rc, 0);
  assert_non_null(strstr(text, "stats c1: messages in queue 3, sent 50, received 7"));
  assert_non_null(strstr(text, "stats c1 broker 2: requests Produce 12 Fetch 0; ms avg/p99: "
                               "rtt 1.50/4.00, int_latency -, outbuf_latency 0.01/0.02"));
  assert_non_null(strstr(text, "stats c1 broker 3: requests Produce -1 Fetch -1; ms avg/p99: "
                               "rtt -, int_latency -, outbuf_latency -"));
  assert_null(strstr(text, "broker -1"));
  assert_non_null(strstr(text, "stats c1: messages per produce batch avg 4.5 p99 9"));
  free(text);
  /* a consumer has no batch line */
  text = capture(log_doc, (void *)"{\"type\":\"consumer\",\"topics\":{\"t\":{\"batchcnt\":"
                                    "{\"avg\":1,\"p99\":1}}}}");
  assert_int_equal(stats_rc, 0);
  assert_null(strstr(text, "messages per produce batch"));
  free(text);
  /* not JSON, or not an object: one warning, nothing else */
  const char *bad[] = {"{\"brokers\":{\"b\":{\"nodeid\":1,", "[1,2]", ""};
  for (size_t i = 0; i < 3; i++) {
    text = capture(log_doc, (void *)bad[i]);
    assert_int_equal(stats_rc, IX_EMALFORMED);
    assert_non_null(strstr(text, "stats c1: unreadable statistics JSON"));
    assert_null(strstr(text, "requests"));
    free(text);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kafkaconf_logs_statistics_summary_when_enabled),
      cmocka_unit_test(test_kafkaconf_logs_no_statistics_by_default),
      cmocka_unit_test(test_kafkaconf_stats_fields_and_bad_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
