/* interestctl broker: run librdkafka's mock cluster as a stand-alone local
 * broker (for tests with kcat and Python clients, and for trying things out).
 * Prints the bootstrap list on stdout, then serves until SIGINT/SIGTERM. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "stream/mockbroker.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl broker [--brokers N] [--topic NAME:PARTITIONS]...\n"
          "Starts an embedded Kafka-protocol broker (librdkafka's mock cluster) on loopback,\n"
          "creates the topics, prints the bootstrap address on stdout and serves until\n"
          "SIGINT or SIGTERM. Not a real Kafka: no transactions, no compaction, no Admin API,\n"
          "at most ~5 MiB kept per partition.\n");
}

int ctl_broker(int argc, char **argv) {
  int n_brokers = 1;
  const char *topics[64];
  size_t ntopics = 0;
  static const struct option longopts[] = {{"brokers", required_argument, 0, 'n'},
                                           {"topic", required_argument, 0, 't'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "n:t:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'n': n_brokers = atoi(optarg); break;
    case 't':
      if (ntopics == sizeof topics / sizeof topics[0]) return 2;
      topics[ntopics++] = optarg;
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (n_brokers < 1 || n_brokers > 16) {
    fprintf(stderr, "interestctl broker: --brokers takes 1..16\n");
    return 2;
  }
  /* Block the stop signals before librdkafka starts its threads, then wait. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  char errstr[512];
  mockbroker_t *mb = NULL;
  if (mockbroker_new(n_brokers, &mb, errstr, sizeof errstr)) {
    fprintf(stderr, "interestctl broker: %s\n", errstr);
    return 1;
  }
  for (size_t i = 0; i < ntopics; i++) {
    char name[256];
    const char *colon = strrchr(topics[i], ':');
    int parts = colon ? atoi(colon + 1) : 1;
    size_t len = colon ? (size_t)(colon - topics[i]) : strlen(topics[i]);
    if (len == 0 || len >= sizeof name || parts < 1) {
      fprintf(stderr, "interestctl broker: --topic takes NAME:PARTITIONS, not '%s'\n", topics[i]);
      mockbroker_destroy(mb);
      return 2;
    }
    memcpy(name, topics[i], len);
    name[len] = '\0';
    if (mockbroker_create_topic(mb, name, parts, errstr, sizeof errstr)) {
      fprintf(stderr, "interestctl broker: %s\n", errstr);
      mockbroker_destroy(mb);
      return 1;
    }
  }
  printf("%s\n", mockbroker_bootstraps(mb));
  fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  mockbroker_destroy(mb);
  return 0;
}
