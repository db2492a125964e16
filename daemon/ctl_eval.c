/* interestctl eval (placeholder until implemented). */
#include <stdio.h>

#include "daemon/ctl.h"

int ctl_eval(int argc, char **argv) {
  fprintf(stderr, "interestctl eval: not implemented yet\n");
  return 2;
}
