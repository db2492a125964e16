/* daemon/backlog: first in, first out; every message is a private copy of
 * key, value and headers (the caller's buffers may change after the push);
 * deferring the head counts attempts; destroying a non-empty backlog frees
 * everything (the ASan build checks). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "daemon/backlog.h"

static void test_backlog_keeps_order_and_copies(void **state) {
  backlog_t *bl;
  assert_int_equal(backlog_new(&bl), 0);
  assert_null(backlog_head(bl));
  char key[8], value[16], hv[16];
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "k%d", i);
    snprintf(value, sizeof value, "value-%d", i);
    snprintf(hv, sizeof hv, "h%d", i);
    producer_header_t h[2] = {{"interestd-reason", hv}, {"interestd-source", "t/0/1"}};
    assert_int_equal(backlog_push(bl, 100 + (uint64_t)i, key, strlen(key), value, strlen(value),
                                  h, i % 3, 0, 0),
                     0);
  }
  memset(key, 'x', sizeof key); /* the caller's buffers change: the copies do not */
  memset(value, 'x', sizeof value);
  memset(hv, 'x', sizeof hv);
  assert_int_equal(backlog_len(bl), 5);
  for (int i = 0; i < 5; i++) {
    const backlog_msg_t *m = backlog_head(bl);
    assert_non_null(m);
    assert_int_equal(m->opaque, 100 + (uint64_t)i);
    char want[16];
    snprintf(want, sizeof want, "k%d", i);
    assert_int_equal(m->key_len, strlen(want));
    assert_memory_equal(m->key, want, m->key_len);
    snprintf(want, sizeof want, "value-%d", i);
    assert_int_equal(m->value_len, strlen(want));
    assert_memory_equal(m->value, want, m->value_len);
    assert_int_equal(m->n_headers, (size_t)(i % 3));
    if (m->n_headers) {
      snprintf(want, sizeof want, "h%d", i);
      assert_string_equal(m->headers[0].name, "interestd-reason");
      assert_string_equal(m->headers[0].value, want);
    }
    if (m->n_headers > 1) assert_string_equal(m->headers[1].value, "t/0/1");
    backlog_pop(bl);
    assert_int_equal(backlog_len(bl), 4 - i);
  }
  assert_null(backlog_head(bl));
  backlog_pop(bl); /* no-op when empty */
  assert_int_equal(backlog_len(bl), 0);
  backlog_destroy(bl);
}

static void test_backlog_defer_counts_attempts(void **state) {
  backlog_t *bl;
  assert_int_equal(backlog_new(&bl), 0);
  assert_int_equal(backlog_defer_head(bl, 5), 0); /* empty */
  assert_int_equal(backlog_push(bl, 1, "", 0, "", 0, NULL, 0, 1, 1000), 0);
  assert_int_equal(backlog_push(bl, 2, "k", 1, "v", 1, NULL, 0, 0, 0), 0);
  const backlog_msg_t *m = backlog_head(bl);
  assert_int_equal(m->attempts, 1);
  assert_int_equal(m->not_before_ms, 1000);
  assert_int_equal(m->key_len, 0);
  assert_int_equal(backlog_defer_head(bl, 6000), 2);
  assert_int_equal(backlog_head(bl)->not_before_ms, 6000);
  assert_int_equal(backlog_head(bl)->opaque, 1); /* the head stays the head */
  backlog_destroy(bl); /* with messages in it */
  backlog_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backlog_keeps_order_and_copies),
      cmocka_unit_test(test_backlog_defer_counts_attempts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
