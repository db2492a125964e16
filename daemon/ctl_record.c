/* interestctl record (placeholder until implemented). */
#include <stdio.h>

#include "daemon/ctl.h"

int ctl_record(int argc, char **argv) {
  fprintf(stderr, "interestctl record: not implemented yet\n");
  return 2;
}
