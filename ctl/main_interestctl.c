/* interestctl: offline tools. Dispatches to one ctl_<name>() per subcommand. */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} g_cmds[] = {
    {"import", ctl_import, "convert a CSV data set to a record file of events"},
    {"split", ctl_split, "split a record file by time or by user"},
    {"train", ctl_train, "train an LSTM model file from a record file"},
    {"eval", ctl_eval, "evaluate a model and the baselines on a record file"},
    {"record", ctl_record, "consume a Kafka topic into a record file"},
    {"replay", ctl_replay, "produce a record file into a topic, or process it offline"},
    {"cat", ctl_cat, "print a record file's records"},
    {"broker", ctl_broker, "run an embedded mock Kafka broker for local tests"},
    {"demo", ctl_demo, "run the daemon on an embedded broker with the bundled clickstream"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: interestctl <command> [options]   (interestctl <command> --help)\n\n");
  for (size_t i = 0; i < sizeof g_cmds / sizeof g_cmds[0]; i++)
    fprintf(out, "  %-8s %s\n", g_cmds[i].name, g_cmds[i].help);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("interestctl %s\n", INTERESTD_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof g_cmds / sizeof g_cmds[0]; i++)
    if (strcmp(argv[1], g_cmds[i].name) == 0) return g_cmds[i].run(argc - 1, argv + 1);
  fprintf(stderr, "interestctl: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
