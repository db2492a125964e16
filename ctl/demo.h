/* interestd --demo: the whole product on one machine. Starts librdkafka's
 * mock cluster in-process, imports the bundled Taobao clickstream, streams it
 * into the input topic from a producer thread at a given rate, and runs the
 * real daemon (same loop and code path; only the bootstrap address differs)
 * while showing throughput, latency and a few users' interests each second. */
#ifndef IX_CTL_DEMO_H
#define IX_CTL_DEMO_H

#include <stddef.h>

#include "daemon/config.h"

#define DEMO_DEFAULT_RATE 10000.0

typedef struct {
  config_t *cfg;               /* taken over; kafka.brokers and topics are overridden */
  const char *config_path;     /* for SIGHUP reloads (may be NULL) */
  const char *const *overrides;
  size_t n_overrides;
  int model_given;             /* 0: look for the bundled model instead of cfg->model.path */
  const char *data;            /* Taobao UserBehavior CSV (plain or gzip); NULL = the bundled sample */
  double rate;                 /* events/s; 0 = as fast as possible */
  int loop;                    /* replay the data until Ctrl-C */
  int partitions;              /* input/output partitions (0 = 8) */
  unsigned long max_events;    /* stream only this many events per pass (0 = all) */
  int quiet;                   /* no per-second display (final summary only) */
  int json;                    /* events as Segment-style JSON, predictions as JSON */
} demo_opts_t;

/* Runs the demo; returns the process exit code. */
int demo_run(const demo_opts_t *opts);

#endif
