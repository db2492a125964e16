/* common/log: repeated lines from one call site are written in full up to
 * the burst, then counted, and one summary line with the count and the last
 * suppressed text follows once the interval is over; other call sites and
 * debug lines are not limited; burst 0 turns the limit off. stderr is
 * captured in a temporary file. */
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

static FILE *capture_start(int *saved) {
  fflush(stderr);
  FILE *f = tmpfile();
  assert_non_null(f);
  *saved = dup(2);
  assert_true(dup2(fileno(f), 2) >= 0);
  return f;
}

/* Restores stderr; returns what was written (malloc'd). */
static char *capture_end(FILE *f, int saved) {
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  long n = ftell(f);
  char *s = calloc((size_t)n + 1, 1);
  rewind(f);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return s;
}

static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void bad_input(int offset) {
  LOG_WARN("daemon", "rejected message at offset %d", offset); /* one call site */
}

static void test_log_repeats_are_counted_and_summarised(void **state) {
  log_set_level(LOG_LVL_DEBUG);
  log_set_rate_limit(3, 300);
  int saved;
  FILE *f = capture_start(&saved);
  for (int i = 0; i < 100; i++) bad_input(i);
  LOG_WARN("daemon", "another site %d", 1);            /* not limited by the first */
  for (int i = 0; i < 10; i++) LOG_DEBUG("daemon", "debug %d", i); /* never limited */
  assert_int_equal(log_flush_suppressed(), 0);         /* interval not over yet */
  sleep_ms(350);
  assert_int_equal(log_flush_suppressed(), 97);
  bad_input(1000); /* a new interval: written in full again */
  char *out = capture_end(f, saved);
  assert_int_equal(count(out, "rejected message at offset"), 3 + 1 + 1); /* + the summary's last */
  assert_non_null(strstr(out, "rejected message at offset 0\n"));
  assert_non_null(strstr(out, "rejected message at offset 2\n"));
  assert_null(strstr(out, "rejected message at offset 3\n"));
  assert_non_null(strstr(out, "97 more lines like this"));
  assert_non_null(strstr(out, "the last: rejected message at offset 99\n"));
  assert_non_null(strstr(out, "rejected message at offset 1000\n"));
  assert_int_equal(count(out, "another site"), 1);
  assert_int_equal(count(out, "] debug "), 10);
  free(out);
}

static void test_log_summary_comes_with_the_next_line_of_the_site(void **state) {
  log_set_level(LOG_LVL_INFO);
  log_set_rate_limit(2, 200);
  int saved;
  FILE *f = capture_start(&saved);
  for (int i = 0; i < 5; i++) bad_input(i);
  sleep_ms(250);
  bad_input(5);
  char *out = capture_end(f, saved);
  assert_non_null(strstr(out, "3 more lines like this"));
  assert_non_null(strstr(out, "rejected message at offset 5\n"));
  free(out);
}

static void test_log_limit_off(void **state) {
  log_set_rate_limit(0, 0);
  int saved;
  FILE *f = capture_start(&saved);
  for (int i = 0; i < 50; i++) bad_input(i);
  char *out = capture_end(f, saved);
  assert_int_equal(count(out, "rejected message at offset"), 50);
  free(out);
  log_set_rate_limit(10, 10000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_repeats_are_counted_and_summarised),
      cmocka_unit_test(test_log_summary_comes_with_the_next_line_of_the_site),
      cmocka_unit_test(test_log_limit_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
