/* The error table's text half: names and messages from IX_ERRNO_MAP. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *ix_strerror(int err) {
  switch (err) {
  case IX_OK: return "success";
#define XX(code, msg) case IX_##code: return msg;
  IX_ERRNO_MAP(XX)
#undef XX
  default: return "unknown error";
  }
}

const char *ix_err_name(int err) {
  switch (err) {
  case IX_OK: return "OK";
#define XX(code, _) case IX_##code: return #code;
  IX_ERRNO_MAP(XX)
#undef XX
  default: return "EUNKNOWN";
  }
}

int ix_fail(int code, char *errstr, size_t errstr_size, const char *fmt, ...) {
  if (errstr && errstr_size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
  }
  return code;
}
