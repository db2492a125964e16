/* interestctl import (placeholder until implemented). */
#include <stdio.h>

#include "daemon/ctl.h"

int ctl_import(int argc, char **argv) {
  fprintf(stderr, "interestctl import: not implemented yet\n");
  return 2;
}
