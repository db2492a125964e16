/* interestctl cat (placeholder until implemented). */
#include <stdio.h>

#include "daemon/ctl.h"

int ctl_cat(int argc, char **argv) {
  fprintf(stderr, "interestctl cat: not implemented yet\n");
  return 2;
}
