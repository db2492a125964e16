/* For unit tests whose long randomized loops check values, not memory: under
 * valgrind (the ./dev test memcheck stage) they run a shorter loop, said on
 * stdout; the plain and ASan+UBSan runs keep the full one. */
#ifndef IX_TESTS_UNDER_VALGRIND_H
#define IX_TESTS_UNDER_VALGRIND_H

#include <stdlib.h>
#include <string.h>

/* 1 when this process runs under valgrind: it preloads its vgpreload_*.so
 * into the client */
static inline int under_valgrind(void) {
  const char *pre = getenv("LD_PRELOAD");
  return pre && strstr(pre, "vgpreload") != NULL;
}

#endif
