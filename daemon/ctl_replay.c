/* interestctl replay (placeholder until implemented). */
#include <stdio.h>

#include "daemon/ctl.h"

int ctl_replay(int argc, char **argv) {
  fprintf(stderr, "interestctl replay: not implemented yet\n");
  return 2;
}
