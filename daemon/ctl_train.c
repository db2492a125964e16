/* interestctl train (placeholder until implemented). */
#include <stdio.h>

#include "daemon/ctl.h"

int ctl_train(int argc, char **argv) {
  fprintf(stderr, "interestctl train: not implemented yet\n");
  return 2;
}
