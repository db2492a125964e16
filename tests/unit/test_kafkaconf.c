/* stream/kafkaconf: librdkafka statistics reach the log as summary lines
 * (a producer against the in-process mock broker, stderr captured). */
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

#include "common/log.h"
#include "stream/mockbroker.h"
#include "stream/producer.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs a producer with the given extra property for about 0.6 s, sending a
 * few messages, and returns what the logger wrote to stderr (malloc'd). */
static char *run_producer(const char *prop) {
  char err[512];
  mockbroker_t *mb;
  assert_int_equal(mockbroker_new(1, &mb, err, sizeof err), 0);
  assert_int_equal(mockbroker_create_topic(mb, "t", 2, err, sizeof err), 0);
  fflush(stderr);
  int saved = dup(2);
  FILE *cap = tmpfile();
  assert_non_null(cap);
  dup2(fileno(cap), 2);
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
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  long len = ftell(cap);
  char *text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
  rewind(cap);
  if (len > 0) assert_int_equal(fread(text, 1, (size_t)len, cap), (size_t)len);
  fclose(cap);
  mockbroker_destroy(mb);
  return text;
}

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kafkaconf_logs_statistics_summary_when_enabled),
      cmocka_unit_test(test_kafkaconf_logs_no_statistics_by_default),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
