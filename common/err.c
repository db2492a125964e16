/* The error table's text half: names and messages from IX_ERRNO_MAP. */
#include "common/err.h"

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
