/* The interestd process: one libuv loop that moves events from the input
 * topic through the pipeline to the output topic, with at-least-once
 * delivery (an input offset is stored for commit only once every message
 * derived from the events up to it is acknowledged), a dead-letter topic for
 * bad messages, backpressure by pausing partitions, SIGHUP reloads and a
 * bounded graceful shutdown. docs/DAEMON.md describes the behaviour.
 * All functions: loop thread only, unless noted. */
#ifndef IX_DAEMON_DAEMON_H
#define IX_DAEMON_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/prediction.h"
#include "common/reject.h"
#include "daemon/config.h"

typedef struct ixd daemon_t;

/* Called on the loop thread for each prediction handed to the producer
 * (before delivery); borrowed for the call. */
typedef void (*daemon_prediction_fn)(void *ctx, const prediction_t *pred);

typedef struct {
  config_t *cfg;                 /* taken over: freed by daemon_destroy() */
  const char *config_path;       /* re-read on SIGHUP; NULL = keep cfg */
  const char *const *overrides;  /* "--set" values re-applied on SIGHUP (copied) */
  size_t n_overrides;
  int handle_signals;            /* SIGTERM/SIGINT stop, SIGHUP reloads (see
                                  * daemon_hold_signals()) */
  int ready_fd;                  /* >= 0: write "ready\n" here once partitions are assigned */
  daemon_prediction_fn on_prediction; /* may be NULL */
  void (*on_stop)(void *ctx);    /* called once when the shutdown begins; may be NULL */
  void *ctx;
} daemon_opts_t;

/* Holds SIGTERM, SIGINT and SIGHUP until daemon_new() has installed the
 * loop's handlers: blocks them in the calling thread (and so in every thread
 * it starts afterwards: librdkafka's, the state pool's, libuv's) and catches
 * them, noting each, in the threads that ran before (a library's). Call it
 * first thing in main(): a signal that arrives while daemon_new() sets up
 * (Kafka clients created, input topic subscribed) then waits instead of
 * killing the process. With handle_signals, daemon_new() unblocks and
 * replays them once its handlers are installed, so each reaches its handler
 * on the loop's first turn (SIGTERM/SIGINT stop cleanly, SIGHUP reloads;
 * several of one kind count as one). Once the shutdown closes those handlers
 * the three are ignored until exit. Without this call daemon_new() installs
 * the handlers just the same. Returns 0 or IX_ESYS. */
int daemon_hold_signals(void);

#define DAEMON_LAT_BUCKETS 192

typedef struct {
  uint64_t consumed;        /* messages read off the input topic */
  uint64_t processed;       /* events applied to a state */
  uint64_t rejected;        /* messages that were not events */
  uint64_t rejected_by[IX_REJECT_REASONS]; /* by ix_reject_index(), labels ix_reject_label() */
  uint64_t suppressed;      /* processed, prediction held back by the emission policy */
  uint64_t produced;        /* predictions handed to the producer */
  uint64_t delivered;       /* predictions acknowledged */
  uint64_t failed;          /* delivery reports with an error (message re-sent) */
  uint64_t dlq_produced, dlq_delivered;
  uint64_t dlq_truncated;   /* dead-letter records re-sent without their value (too large, ...) */
  uint64_t dropped;         /* messages given up on after a permanent produce failure */
  uint64_t batches;
  uint64_t pauses;          /* times consumption was paused for backpressure */
  uint64_t users;           /* users in state now */
  uint64_t evicted_lru, evicted_ttl;
  uint64_t outstanding;     /* messages handed to the producer, not yet acknowledged */
  uint64_t backlog;         /* messages waiting to be (re-)sent */
  uint32_t partitions;      /* input partitions owned */
  uint64_t checkpoints, checkpoint_failures;
  /* event-to-prediction latency (read off the consumer queue -> delivery
   * report) and end-to-end latency (input message timestamp -> delivery
   * report, wall clock), in seconds: over the whole run and over the window
   * since the last daemon_get_stats(.., reset_window = 1) */
  double lat_p50, lat_p99, e2e_p50, e2e_p99;
  double win_lat_p50, win_lat_p99, win_e2e_p50, win_e2e_p99;
  uint64_t win_delivered;
  /* live quality since the model was loaded (core/pipeline.h): scored events
   * and MRR@10, Recall@5 of the served model [0], recency [1], decay [2] */
  uint64_t q_targets;
  double q_mrr10[3], q_rec5[3];
  int q_shadow; /* model.shadow_path in use: its MRR@10 and Recall@5 below */
  double q_shadow_mrr10, q_shadow_rec5;
} daemon_stats_t;

/* Creates the loop, the pipeline (loading cfg->model.path), the producer and
 * the consumer (subscribing), the metrics server and the signal handlers.
 * Returns 0 or a negative IX_E* with errstr filled. Free with daemon_destroy(). */
int daemon_new(const daemon_opts_t *opts, daemon_t **out, char *errstr, size_t errstr_size);
/* Frees everything; call after daemon_run() returned. Accepts NULL. */
void daemon_destroy(daemon_t *d);

/* The daemon's loop (borrowed), for adding timers (e.g. the demo's display). */
uv_loop_t *daemon_loop(daemon_t *d);

/* Runs the loop until a stop finished. Returns 0 after a clean shutdown,
 * or a negative IX_E* when processing failed. */
int daemon_run(daemon_t *d);

/* Begins the graceful shutdown: stop consuming, wait (bounded by
 * daemon.shutdown_timeout_s) for in-flight messages, commit, leave the
 * group, close. A second call cuts the wait short. */
void daemon_stop(daemon_t *d);

void daemon_get_stats(daemon_t *d, daemon_stats_t *stats, int reset_window);

#endif
