/* One error table for the whole project (libuv's UV_ERRNO_MAP pattern).
 * Functions that can fail return int: 0 on success, a negative IX_E* code
 * otherwise. ix_strerror()/ix_err_name() render any code; never NULL. */
#ifndef IX_COMMON_ERR_H
#define IX_COMMON_ERR_H

#include <stddef.h>

#define IX_ERRNO_MAP(XX)                                                     \
  XX(EINVAL,      "invalid argument")                                        \
  XX(ENOMEM,      "out of memory")                                           \
  XX(EIO,         "input/output error")                                      \
  XX(ENOENT,      "no such file or entry")                                   \
  XX(EEXIST,      "already exists")                                          \
  XX(ERANGE,      "value out of range")                                      \
  XX(EFULL,       "capacity exhausted")                                      \
  XX(ENOTMAP,     "message is not a msgpack map")                            \
  XX(ETRUNC,      "message or file is truncated")                            \
  XX(ETOOBIG,     "message or field is larger than allowed")                 \
  XX(EMISSING,    "required field is missing")                               \
  XX(ETYPE,       "field has the wrong type")                                \
  XX(EMALFORMED,  "malformed input")                                         \
  XX(EBADMAGIC,   "not a file of the expected kind (bad magic)")             \
  XX(EVERSION,    "unsupported format version")                              \
  XX(ECRC,        "checksum mismatch (corrupted data)")                      \
  XX(EMISMATCH,   "dimensions or parameters do not match")                   \
  XX(EEOF,        "end of file")                                             \
  XX(EKAFKA,      "Kafka client error")                                      \
  XX(ECONFIG,     "invalid configuration")                                   \
  XX(ESTATE,      "operation not valid in the current state")                \
  XX(ESYS,        "system call failed (see errno)")

typedef enum {
  IX_OK = 0,
#define XX(code, _) IX_##code,
  IX__FIRST = -1000,
  IX_ERRNO_MAP(XX)
#undef XX
  IX__LAST
} ix_err_t;

/* Human-readable sentence for an error code (static string). */
const char *ix_strerror(int err);
/* Symbolic name, e.g. "EMISSING" (static string). */
const char *ix_err_name(int err);

/* Formats a user-facing sentence into errstr (when not NULL) and returns
 * code, so a failure path reads: return ix_fail(IX_EIO, errstr, n, "...", ...). */
int ix_fail(int code, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
