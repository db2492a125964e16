/* interestctl replay --offline (placeholder until daemon/pipeline lands). */
#include <stdio.h>

int ctl_replay_offline(int argc, char **argv);

int ctl_replay_offline(int argc, char **argv) {
  fprintf(stderr, "interestctl replay --offline: not implemented yet\n");
  return 2;
}
