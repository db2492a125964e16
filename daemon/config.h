/* interestd's configuration: one INI file (libinih) plus command-line
 * overrides "section.key=value". Every key is checked when loaded (unknown
 * keys are errors); librdkafka properties are checked by librdkafka itself.
 * Errors name the file, the line and the reason. See docs/DAEMON.md. */
#ifndef IX_DAEMON_CONFIG_H
#define IX_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "common/partition.h"
#include "core/emit.h"
#include "stream/input.h"
#include "stream/output.h"

typedef enum {
  MODEL_RELOAD_REFUSE = 0, /* SIGHUP with an incompatible model: keep the old one */
  MODEL_RELOAD_RESET = 1,  /* SIGHUP with an incompatible model: swap, drop all states */
  MODEL_RELOAD_WARM = 2,   /* SIGHUP with an incompatible model: warm its states from a
                              window of the input topic in the background, then switch */
} model_reload_t;

typedef enum {
  REDIS_FORMAT_OUTPUT = 0,  /* the output topic's bytes ([output] format) */
  REDIS_FORMAT_MSGPACK = 1,
  REDIS_FORMAT_JSON = 2,
} redis_format_t;

typedef struct {
  char *path; /* the file loaded, or NULL for defaults only */
  struct {
    char *brokers, *group, *input_topic, *output_topic;
    char *dlq_topic;          /* NULL or "" = no dead-letter topic */
    ix_partitioner_t input_partitioner; /* input.partitioner: how the input's producer
                                           partitions by user key */
    char **props;             /* "key=value" for both clients, NULL-terminated */
    char **consumer_props;    /* [kafka.consumer] */
    char **producer_props;    /* [kafka.producer] */
    int exactly_once;         /* processing_guarantee: 0 at_least_once (default),
                                 1 exactly_once (daemon/txn.h) */
    char *instance_id;        /* exactly_once: this member's stable name; the producer's
                                 transactional.id is <group>-<instance_id> ("" = the
                                 consumer's group.instance.id) */
    uint32_t commit_interval_ms; /* exactly_once: a transaction commits this often */
  } kafka;
  struct {
    char *path;
    model_reload_t reload;
    uint64_t warm_window_s;   /* reload = warm: events older than this before the newest
                                 consumed one are not replayed (0 = no time bound) */
    uint64_t warm_max_events; /* reload = warm: offsets re-read per partition, at most */
    int warm_start; /* a partition assigned with another model's checkpoint: warm its states
                       from the input's window before serving it (daemon/warmstart.h):
                       -1 auto (on when reload = warm), 0 off, 1 on */
    char *shadow_path; /* a candidate scored on the same events with its own states,
                          nothing emitted (NULL or "" = none; read at start only) */
  } model;
  struct {
    uint64_t memory_limit_mb; /* 0 = unlimited */
    uint64_t pretouch_mb;     /* populate this much state memory in the background at
                                 start (state/slab_pool.h); 0 = off; <= memory_limit_mb */
    uint64_t idle_ttl_s;      /* 0 = never expire */
    char *checkpoint_dir;     /* NULL or "" = no checkpoints */
    uint32_t checkpoint_interval_s;
    char *changelog_topic;    /* "" = <group>-interestd-state when the mode uses it */
    char *changelog_mode;     /* "local" | "changelog" | "both"; "" = both with a
                               * changelog_topic set, else local */
    uint32_t standby_replicas; /* warm copies of other members' partitions (0 = none) */
  } state;
  struct {
    uint32_t max_events;      /* events per pipeline batch */
    uint32_t max_wait_us;     /* wait this long for a fuller batch; 0 = take what is ready */
    uint32_t max_inflight;    /* pause consuming beyond this many unacknowledged messages */
  } batch;
  emit_opts_t emit;
  input_opts_t input;         /* [input]: event format and JSON field mapping (stream/input.h) */
  output_opts_t output;       /* [output]: prediction format, categories per list */
  struct {
    log_level_t level;
  } log;
  struct {
    char *listen;             /* address; "" = metrics off */
    uint32_t port;
  } metrics;
  struct {
    uint32_t shutdown_timeout_s; /* bound on finishing in-flight work at SIGTERM */
    uint32_t health_stall_s;     /* /healthz 503 after this long without progress; 0 = off */
  } daemon;
  struct {                    /* [redis]: each user's latest prediction (sink/redis.h) */
    char *address;            /* "host:port"; "" = no Redis sink */
    uint32_t database;        /* SELECT; 0 = the default database */
    char *password;           /* AUTH; "" = none */
    char *key_prefix;         /* key = prefix + user id */
    int64_t ttl_s;            /* key expiry; -1 = state.idle_ttl_s, 0 = never */
    redis_format_t format;    /* value encoding */
    uint32_t max_backlog;     /* pause consuming beyond this many unwritten predictions */
  } redis;
} config_t;

/* Loads defaults, then path (NULL = none), then each "section.key=value"
 * override in order. Returns 0 or IX_ECONFIG / IX_ENOENT / IX_ENOMEM with
 * errstr naming the file and line (or the override) and the reason.
 * Free with config_destroy(). */
int config_load(const char *path, const char *const *overrides, size_t n_overrides,
                config_t **out, char *errstr, size_t errstr_size);
void config_destroy(config_t *cfg);

/* Full validation beyond syntax: required keys present, model file loads,
 * checkpoint directory usable. Returns 0 or IX_ECONFIG with errstr. */
int config_check(const config_t *cfg, char *errstr, size_t errstr_size);

/* The transactional.id of exactly_once ("" when none can be derived):
 * <group>-<instance_id>, else <group>-<group.instance.id> from the Kafka
 * properties. */
void config_transactional_id(const config_t *cfg, char *out, size_t out_size);

/* Writes the effective configuration as INI (secrets in kafka properties
 * whose name contains "password" or "secret" are masked). */
void config_print(const config_t *cfg, void *file /* FILE * */);

/* The command line's configuration options, shared by interestd, interestctl
 * demo and interestctl replay --offline: -c FILE and repeated --set S.K=V
 * (strings borrowed from argv). Zero-initialise. */
#define CONFIG_MAX_SETS 256
typedef struct {
  const char *path;
  const char *sets[CONFIG_MAX_SETS];
  size_t n_sets;
} config_args_t;
/* Takes option 'c' (path) or 's' (one more --set) with its argument. Returns
 * 0, or 2 (a usage error's exit code) after printing "PROG: too many --set
 * options" to stderr. */
int config_args_take(config_args_t *args, int opt, const char *arg, const char *prog);

/* The installed default config file (e.g. /etc/interestd/interestd.conf). */
const char *config_default_path(void);

const char *config_policy_name(emit_policy_t policy);

#endif
