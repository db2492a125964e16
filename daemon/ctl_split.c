/* interestctl split (placeholder until implemented). */
#include <stdio.h>

#include "daemon/ctl.h"

int ctl_split(int argc, char **argv) {
  fprintf(stderr, "interestctl split: not implemented yet\n");
  return 2;
}
