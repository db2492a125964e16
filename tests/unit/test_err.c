/* The error table: every code has a distinct name and a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/err.h"

static void test_err_every_code_has_distinct_name_and_text(void **unused) {
  for (int e = IX__FIRST + 1; e < IX__LAST; e++) {
    assert_string_not_equal(ix_err_name(e), "EUNKNOWN");
    assert_string_not_equal(ix_strerror(e), "unknown error");
    for (int o = e + 1; o < IX__LAST; o++) assert_string_not_equal(ix_err_name(e), ix_err_name(o));
  }
  assert_string_equal(ix_err_name(IX_EMISSING), "EMISSING");
  assert_string_equal(ix_err_name(12345), "EUNKNOWN");
  assert_true(IX_EINVAL < 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_err_every_code_has_distinct_name_and_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
