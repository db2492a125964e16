/* For unit tests that loop over model/'s kernel sets (include after
 * <cmocka.h>): a set this CPU lacks is named in the output and the test ends
 * as SKIPPED (cmocka's skip()) after the sets that exist have run, so the
 * report never shows a pass for a set that was not tested. */
#ifndef IX_TESTS_KERNEL_SETS_H
#define IX_TESTS_KERNEL_SETS_H

#include "model/kernels.h"

static int g_kset_missing;

/* Selects the kernel set; 0 (and noted) when this CPU does not run it. */
static inline int kset_select(const char *name) {
  if (kern_select(name) == 0) return 1;
  print_message("kernel set %s: not on this CPU, not tested\n", name);
  g_kset_missing++;
  return 0;
}

/* Last statement of such a test. */
#define KSET_END()                 \
  do {                             \
    int missing_ = g_kset_missing; \
    g_kset_missing = 0;            \
    if (missing_) skip();          \
  } while (0)

#endif
