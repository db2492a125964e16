/* INI configuration through libinih: defaults, then the file, then the
 * command-line overrides, each key checked as it is set. */
#include "daemon/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "model/model.h"
#include "stream/consumer.h"
#include "stream/producer.h"

#ifndef INTERESTD_SYSCONFDIR
#define INTERESTD_SYSCONFDIR "/etc/interestd"
#endif
#ifndef INTERESTD_DATADIR
#define INTERESTD_DATADIR "/usr/share/interestd"
#endif

/* Where each key was last set, for messages from config_check(). */
typedef struct keyline {
  char *name; /* "section.key" */
  char *where; /* "file:line" or "--set" */
  struct keyline *next;
} keyline_t;

typedef struct {
  config_t cfg;       /* must stay first: config_t * is cast back */
  keyline_t *lines;
} config_priv_t;

typedef struct {
  config_priv_t *priv;
  const char *file;   /* for messages */
  int line;           /* set by the caller for overrides; 0 inside ini_parse */
  char err[512];      /* first error */
  int failed;
} parse_ctx_t;

static int set_str(char **dst, const char *v) {
  char *s = strdup(v);
  if (!s) return IX_ENOMEM;
  free(*dst);
  *dst = s;
  return 0;
}

static int append_prop(char ***list, const char *key, const char *value) {
  size_t n = 0;
  while (*list && (*list)[n]) n++;
  size_t klen = strlen(key);
  /* a later setting of the same key replaces the earlier one */
  for (size_t i = 0; i < n; i++) {
    if (strncmp((*list)[i], key, klen) == 0 && (*list)[i][klen] == '=') {
      char *kv = malloc(klen + strlen(value) + 2);
      if (!kv) return IX_ENOMEM;
      sprintf(kv, "%s=%s", key, value);
      free((*list)[i]);
      (*list)[i] = kv;
      return 0;
    }
  }
  char **l = realloc(*list, (n + 2) * sizeof *l);
  if (!l) return IX_ENOMEM;
  *list = l;
  l[n] = malloc(klen + strlen(value) + 2);
  if (!l[n]) return IX_ENOMEM;
  sprintf(l[n], "%s=%s", key, value);
  l[n + 1] = NULL;
  return 0;
}

static void free_props(char **l) {
  for (size_t i = 0; l && l[i]; i++) free(l[i]);
  free(l);
}

static int parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (!*v || *v == '-' || *v == '+') return IX_EINVAL;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end) return IX_EINVAL;
  if (x < lo || x > hi) return IX_ERANGE;
  *out = x;
  return 0;
}

const char *config_default_path(void) { return INTERESTD_SYSCONFDIR "/interestd.conf"; }

static int config_parse_policy(const char *s, emit_policy_t *policy) {
  if (strcmp(s, "every") == 0) *policy = EMIT_EVERY;
  else if (strcmp(s, "interval") == 0) *policy = EMIT_INTERVAL;
  else if (strcmp(s, "change") == 0) *policy = EMIT_CHANGE;
  else return IX_EINVAL;
  return 0;
}

const char *config_policy_name(emit_policy_t policy) {
  switch (policy) {
  case EMIT_INTERVAL: return "interval";
  case EMIT_CHANGE: return "change";
  default: return "every";
  }
}

#define FAIL(...)                                                                        \
  do {                                                                                   \
    snprintf(why, why_size, __VA_ARGS__);                                                \
    return IX_ECONFIG;                                                                   \
  } while (0)

#define U64(dst, lo, hi)                                                                 \
  do {                                                                                   \
    uint64_t x_;                                                                         \
    int rc_ = parse_u64(value, lo, hi, &x_);                                             \
    if (rc_ == IX_ERANGE) FAIL("%s.%s must be between %llu and %llu", section, name,     \
                               (unsigned long long)(lo), (unsigned long long)(hi));      \
    if (rc_) FAIL("%s.%s: '%s' is not a non-negative integer", section, name, value);    \
    dst = x_;                                                                            \
  } while (0)

/* Applies one setting; returns 0 or IX_ECONFIG/IX_ENOMEM with why filled. */
static int apply(config_t *c, const char *section, const char *name, const char *value,
                 char *why, size_t why_size) {
  int both = 0;
  if (strcmp(section, "kafka") == 0) {
    if (strcmp(name, "brokers") == 0) return set_str(&c->kafka.brokers, value);
    if (strcmp(name, "group") == 0) return set_str(&c->kafka.group, value);
    if (strcmp(name, "input_topic") == 0) return set_str(&c->kafka.input_topic, value);
    if (strcmp(name, "output_topic") == 0) return set_str(&c->kafka.output_topic, value);
    if (strcmp(name, "dlq_topic") == 0) return set_str(&c->kafka.dlq_topic, value);
    if (strcmp(name, "processing_guarantee") == 0) {
      if (strcmp(value, "at_least_once") == 0) c->kafka.exactly_once = 0;
      else if (strcmp(value, "exactly_once") == 0) c->kafka.exactly_once = 1;
      else FAIL("kafka.processing_guarantee must be at_least_once or exactly_once, not '%s'",
                value);
      return 0;
    }
    if (strcmp(name, "instance_id") == 0) return set_str(&c->kafka.instance_id, value);
    if (strcmp(name, "commit_interval_ms") == 0) {
      U64(c->kafka.commit_interval_ms, 10, 600000);
      return 0;
    }
    both = 1; /* any other key: a librdkafka property for both clients */
  }
  if (both || strcmp(section, "kafka.properties") == 0) {
    if (consumer_check_property(name, value, why, why_size)) return IX_ECONFIG;
    if (strcmp(name, "bootstrap.servers") == 0 || strcmp(name, "group.id") == 0)
      FAIL("set %s through kafka.%s, not as a librdkafka property", name,
           name[0] == 'b' ? "brokers" : "group");
    if (strcmp(name, "transactional.id") == 0)
      FAIL("transactional.id cannot be set: kafka.processing_guarantee = exactly_once makes "
           "it from kafka.group and kafka.instance_id");
    return append_prop(&c->kafka.props, name, value);
  }
  if (strcmp(section, "kafka.consumer") == 0) {
    if (consumer_check_property(name, value, why, why_size)) return IX_ECONFIG;
    if (strcmp(name, "enable.auto.offset.store") == 0)
      FAIL("enable.auto.offset.store cannot be set: interestd stores offsets itself "
           "(at-least-once delivery depends on it)");
    return append_prop(&c->kafka.consumer_props, name, value);
  }
  if (strcmp(section, "kafka.producer") == 0) {
    if (producer_check_property(name, value, why, why_size)) return IX_ECONFIG;
    if (strcmp(name, "transactional.id") == 0)
      FAIL("transactional.id cannot be set: kafka.processing_guarantee = exactly_once makes "
           "it from kafka.group and kafka.instance_id");
    return append_prop(&c->kafka.producer_props, name, value);
  }
  if (strcmp(section, "model") == 0) {
    if (strcmp(name, "path") == 0) return set_str(&c->model.path, value);
    if (strcmp(name, "shadow_path") == 0) return set_str(&c->model.shadow_path, value);
    if (strcmp(name, "reload") == 0) {
      if (strcmp(value, "refuse") == 0) c->model.reload = MODEL_RELOAD_REFUSE;
      else if (strcmp(value, "reset") == 0) c->model.reload = MODEL_RELOAD_RESET;
      else if (strcmp(value, "warm") == 0) c->model.reload = MODEL_RELOAD_WARM;
      else FAIL("model.reload must be 'refuse', 'reset' or 'warm', not '%s'", value);
      return 0;
    }
    if (strcmp(name, "warm_window_s") == 0) {
      U64(c->model.warm_window_s, 0, 10ull * 365 * 86400);
      return 0;
    }
    if (strcmp(name, "warm_max_events") == 0) {
      U64(c->model.warm_max_events, 1, 1ull << 40);
      return 0;
    }
    if (strcmp(name, "warm_start") == 0) {
      if (strcmp(value, "auto") == 0) c->model.warm_start = -1;
      else if (strcmp(value, "on") == 0) c->model.warm_start = 1;
      else if (strcmp(value, "off") == 0) c->model.warm_start = 0;
      else FAIL("model.warm_start must be 'auto', 'on' or 'off', not '%s'", value);
      return 0;
    }
  } else if (strcmp(section, "state") == 0) {
    if (strcmp(name, "memory_limit_mb") == 0) {
      U64(c->state.memory_limit_mb, 0, 1u << 24);
      return 0;
    }
    if (strcmp(name, "pretouch_mb") == 0) {
      U64(c->state.pretouch_mb, 0, 1u << 24);
      return 0;
    }
    if (strcmp(name, "idle_ttl_s") == 0) {
      U64(c->state.idle_ttl_s, 0, 10ull * 365 * 86400);
      return 0;
    }
    if (strcmp(name, "checkpoint_dir") == 0) return set_str(&c->state.checkpoint_dir, value);
    if (strcmp(name, "changelog_topic") == 0) return set_str(&c->state.changelog_topic, value);
    if (strcmp(name, "changelog_mode") == 0) {
      if (strcmp(value, "local") && strcmp(value, "changelog") && strcmp(value, "both") &&
          *value)
        FAIL("state.changelog_mode must be 'local', 'changelog' or 'both', not '%s'", value);
      return set_str(&c->state.changelog_mode, value);
    }
    if (strcmp(name, "checkpoint_interval_s") == 0) {
      U64(c->state.checkpoint_interval_s, 1, 86400);
      return 0;
    }
    if (strcmp(name, "standby_replicas") == 0) {
      U64(c->state.standby_replicas, 0, 16);
      return 0;
    }
  } else if (strcmp(section, "batch") == 0) {
    if (strcmp(name, "max_events") == 0) {
      U64(c->batch.max_events, 1, 65536);
      return 0;
    }
    if (strcmp(name, "max_wait_us") == 0) {
      U64(c->batch.max_wait_us, 0, 1000000);
      return 0;
    }
    if (strcmp(name, "max_inflight") == 0) {
      U64(c->batch.max_inflight, 16, 10000000);
      return 0;
    }
  } else if (strcmp(section, "emit") == 0) {
    if (strcmp(name, "policy") == 0) {
      if (config_parse_policy(value, &c->emit.policy))
        FAIL("emit.policy must be every, interval or change, not '%s'", value);
      return 0;
    }
    if (strcmp(name, "interval_ms") == 0) {
      U64(c->emit.interval_ms, 1, 86400000);
      return 0;
    }
    if (strcmp(name, "top_n_change") == 0) {
      U64(c->emit.top_n_change, 1, 10);
      return 0;
    }
    if (strcmp(name, "fluctuation_threshold") == 0) {
      char *end;
      errno = 0;
      float f = strtof(value, &end);
      if (errno || *end || !*value || !(f >= 0.0f && f <= 1.0f))
        FAIL("emit.fluctuation_threshold must be a number in [0, 1], not '%s'", value);
      c->emit.fluctuation_threshold = f;
      return 0;
    }
  } else if (strcmp(section, "input") == 0) {
    if (strcmp(name, "partitioner") == 0) {
      if (ix_partitioner_parse(value, &c->kafka.input_partitioner))
        FAIL("input.partitioner must be consistent_random (librdkafka's default), "
             "consistent, murmur2_random or murmur2 (the Java client's default), not '%s'",
             value);
      return 0;
    }
    return input_opts_set(&c->input, name, value, why, why_size);
  } else if (strcmp(section, "output") == 0) {
    return output_opts_set(&c->output, name, value, why, why_size);
  } else if (strcmp(section, "log") == 0) {
    if (strcmp(name, "level") == 0) {
      if (log_parse_level(value, &c->log.level))
        FAIL("log.level must be error, warn, info or debug, not '%s'", value);
      return 0;
    }
  } else if (strcmp(section, "metrics") == 0) {
    if (strcmp(name, "listen") == 0) return set_str(&c->metrics.listen, value);
    if (strcmp(name, "port") == 0) {
      U64(c->metrics.port, 0, 65535);
      return 0;
    }
  } else if (strcmp(section, "daemon") == 0) {
    if (strcmp(name, "shutdown_timeout_s") == 0) {
      U64(c->daemon.shutdown_timeout_s, 1, 3600);
      return 0;
    }
    if (strcmp(name, "health_stall_s") == 0) {
      U64(c->daemon.health_stall_s, 0, 86400);
      return 0;
    }
  } else if (strcmp(section, "redis") == 0) {
    if (strcmp(name, "address") == 0) {
      const char *colon = strrchr(value, ':');
      if (*value && (!colon || colon == value || !colon[1] || strspn(colon + 1, "0123456789") !=
                                                                  strlen(colon + 1)))
        FAIL("redis.address must be host:port (or empty for no Redis sink), not '%s'", value);
      return set_str(&c->redis.address, value);
    }
    if (strcmp(name, "database") == 0) {
      U64(c->redis.database, 0, 1u << 20);
      return 0;
    }
    if (strcmp(name, "password") == 0) return set_str(&c->redis.password, value);
    if (strcmp(name, "key_prefix") == 0) return set_str(&c->redis.key_prefix, value);
    if (strcmp(name, "ttl_s") == 0) {
      if (strcmp(value, "state") == 0) c->redis.ttl_s = -1;
      else U64(c->redis.ttl_s, 0, 10ull * 365 * 86400);
      return 0;
    }
    if (strcmp(name, "format") == 0) {
      if (strcmp(value, "output") == 0) c->redis.format = REDIS_FORMAT_OUTPUT;
      else if (strcmp(value, "msgpack") == 0) c->redis.format = REDIS_FORMAT_MSGPACK;
      else if (strcmp(value, "json") == 0) c->redis.format = REDIS_FORMAT_JSON;
      else FAIL("redis.format must be output, msgpack or json, not '%s'", value);
      return 0;
    }
    if (strcmp(name, "max_backlog") == 0) {
      U64(c->redis.max_backlog, 1, 10000000);
      return 0;
    }
  } else if (!section[0]) {
    FAIL("'%s' is outside any [section] (a section line without its closing ']'?)", name);
  } else {
    FAIL("unknown section [%s]", section);
  }
  FAIL("unknown key '%s' in section [%s]", name, section);
}

static int remember(config_priv_t *priv, const char *section, const char *name,
                    const char *where) {
  size_t len = strlen(section) + strlen(name) + 2;
  char *full = malloc(len);
  if (!full) return IX_ENOMEM;
  snprintf(full, len, "%s.%s", section, name);
  for (keyline_t *k = priv->lines; k; k = k->next) {
    if (strcmp(k->name, full) == 0) {
      free(full);
      return set_str(&k->where, where);
    }
  }
  keyline_t *k = calloc(1, sizeof *k);
  if (!k || !(k->where = strdup(where))) {
    free(k);
    free(full);
    return IX_ENOMEM;
  }
  k->name = full;
  k->next = priv->lines;
  priv->lines = k;
  return 0;
}

static const char *where_set(const config_t *cfg, const char *key) {
  const config_priv_t *priv = (const config_priv_t *)cfg;
  for (keyline_t *k = priv->lines; k; k = k->next)
    if (strcmp(k->name, key) == 0) return k->where;
  return "default";
}

/* libinih's line reader, counting lines so the handler knows where it is
 * (Debian's libinih is built without INI_HANDLER_LINENO). */
typedef struct {
  FILE *f;
  parse_ctx_t *pc;
} line_reader_t;

static char *read_line(char *str, int num, void *stream) {
  line_reader_t *lr = stream;
  char *s = fgets(str, num, lr->f);
  if (s) lr->pc->line++;
  return s;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value) {
  parse_ctx_t *pc = user;
  int lineno = pc->line;
  if (pc->failed) return 1; /* report the first error only */
  char why[400];
  if (!name) return 1; /* section start (INI_CALL_HANDLER_ON_NEW_SECTION) */
  int rc = apply(&pc->priv->cfg, section, name, value, why, sizeof why);
  if (rc == 0) {
    char where[300];
    snprintf(where, sizeof where, "%s:%d", pc->file, lineno);
    rc = remember(pc->priv, section, name, where);
  }
  if (rc == 0) return 1;
  if (rc == IX_ENOMEM) snprintf(why, sizeof why, "out of memory");
  snprintf(pc->err, sizeof pc->err, "%s", why);
  pc->failed = 1;
  return 0;
}

static void set_defaults(config_t *c) {
  c->kafka.brokers = strdup("localhost:9092");
  c->kafka.group = strdup("interestd");
  c->kafka.input_topic = strdup("events");
  c->kafka.output_topic = strdup("interests");
  c->kafka.dlq_topic = strdup("");
  c->kafka.instance_id = strdup("");
  c->kafka.commit_interval_ms = 100;
  c->model.path = strdup(INTERESTD_DATADIR "/model.ixm");
  c->model.reload = MODEL_RELOAD_REFUSE;
  c->model.warm_window_s = 3 * 86400;
  c->model.warm_max_events = 10000000;
  c->model.warm_start = -1;
  c->state.memory_limit_mb = 1024;
  c->state.idle_ttl_s = 7 * 86400;
  c->state.checkpoint_dir = strdup("");
  c->state.changelog_topic = strdup("");
  c->state.changelog_mode = strdup("");
  c->state.checkpoint_interval_s = 60;
  c->batch.max_events = 256;
  c->batch.max_wait_us = 0;
  c->batch.max_inflight = 100000;
  c->emit.policy = EMIT_EVERY;
  c->emit.interval_ms = 1000;
  c->emit.fluctuation_threshold = 0.1f;
  c->emit.top_n_change = 3;
  output_opts_init(&c->output);
  c->log.level = LOG_LVL_INFO;
  c->metrics.listen = strdup("127.0.0.1");
  c->metrics.port = 9464;
  c->daemon.shutdown_timeout_s = 10;
  c->daemon.health_stall_s = 60;
  c->redis.address = strdup("");
  c->redis.password = strdup("");
  c->redis.key_prefix = strdup("interestd:user:");
  c->redis.ttl_s = -1;
  c->redis.format = REDIS_FORMAT_OUTPUT;
  c->redis.max_backlog = 100000;
}

/* Splits "section.key=value": the section is the longest known one that
 * prefixes the name (so kafka.consumer.fetch.wait.max.ms goes to
 * [kafka.consumer], kafka.security.protocol to [kafka]). */
static int split_override(const char *ov, char *section, size_t ssz, char *key, size_t ksz,
                          const char **value) {
  static const char *const sections[] = {"kafka.properties", "kafka.consumer", "kafka.producer",
                                         "kafka", "model", "state", "batch", "emit", "input",
                                         "output", "log",
                                         "metrics", "daemon", "redis"};
  const char *eq = strchr(ov, '=');
  if (!eq) return IX_EINVAL;
  for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
    size_t sl = strlen(sections[i]);
    if (strncmp(ov, sections[i], sl) == 0 && ov[sl] == '.' && ov + sl + 1 < eq) {
      if (sl >= ssz || (size_t)(eq - ov - (long)sl - 1) >= ksz) return IX_EINVAL;
      memcpy(section, ov, sl);
      section[sl] = '\0';
      size_t kl = (size_t)(eq - (ov + sl + 1));
      memcpy(key, ov + sl + 1, kl);
      key[kl] = '\0';
      *value = eq + 1;
      return 0;
    }
  }
  /* unknown section: still split at the first dot for the message */
  const char *dot = strchr(ov, '.');
  if (!dot || dot > eq || (size_t)(dot - ov) >= ssz || (size_t)(eq - dot - 1) >= ksz)
    return IX_EINVAL;
  memcpy(section, ov, (size_t)(dot - ov));
  section[dot - ov] = '\0';
  memcpy(key, dot + 1, (size_t)(eq - dot - 1));
  key[eq - dot - 1] = '\0';
  *value = eq + 1;
  return 0;
}

int config_load(const char *path, const char *const *overrides, size_t n_overrides,
                config_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  config_priv_t *priv = calloc(1, sizeof *priv);
  if (!priv) return IX_ENOMEM;
  config_t *c = &priv->cfg;
  set_defaults(c);
  if (input_opts_init(&c->input) || !c->kafka.brokers || !c->kafka.group || !c->kafka.input_topic || !c->kafka.output_topic ||
      !c->kafka.dlq_topic || !c->kafka.instance_id || !c->model.path || !c->state.checkpoint_dir || !c->metrics.listen ||
      !c->state.changelog_topic || !c->state.changelog_mode ||
      !c->redis.address || !c->redis.password || !c->redis.key_prefix) {
    config_destroy(c);
    return IX_ENOMEM;
  }
  int rc = 0;
  if (path) {
    if (set_str(&c->path, path)) {
      rc = IX_ENOMEM;
      goto err;
    }
    parse_ctx_t pc = {.priv = priv, .file = path};
    FILE *f = fopen(path, "r");
    if (!f) {
      snprintf(errstr, errstr_size, "%s: cannot open: %s", path, strerror(errno));
      rc = IX_ENOENT;
      goto err;
    }
    line_reader_t lr = {f, &pc};
    int line = ini_parse_stream(read_line, &lr, ini_cb, &pc);
    fclose(f);
    if (line != 0 || pc.failed) {
      if (pc.failed)
        snprintf(errstr, errstr_size, "%s:%d: %s", path, line, pc.err);
      else
        snprintf(errstr, errstr_size, "%s:%d: syntax error (expected [section] or key = value)",
                 path, line);
      rc = IX_ECONFIG;
      goto err;
    }
  }
  for (size_t i = 0; i < n_overrides; i++) {
    char section[64], key[256], why[400];
    const char *value;
    if (split_override(overrides[i], section, sizeof section, key, sizeof key, &value)) {
      snprintf(errstr, errstr_size, "--set %s: expected section.key=value", overrides[i]);
      rc = IX_ECONFIG;
      goto err;
    }
    rc = apply(c, section, key, value, why, sizeof why);
    if (!rc) rc = remember(priv, section, key, "--set");
    if (rc) {
      snprintf(errstr, errstr_size, "--set %s: %s", overrides[i],
               rc == IX_ENOMEM ? "out of memory" : why);
      goto err;
    }
  }
  *out = c;
  return 0;
err:
  config_destroy(c);
  return rc;
}

void config_destroy(config_t *c) {
  if (!c) return;
  config_priv_t *priv = (config_priv_t *)c;
  free(c->path);
  free(c->kafka.brokers);
  free(c->kafka.group);
  free(c->kafka.input_topic);
  free(c->kafka.output_topic);
  free(c->kafka.dlq_topic);
  free_props(c->kafka.props);
  free_props(c->kafka.consumer_props);
  free_props(c->kafka.producer_props);
  free(c->kafka.instance_id);
  free(c->model.path);
  free(c->model.shadow_path);
  free(c->state.checkpoint_dir);
  free(c->state.changelog_topic);
  free(c->state.changelog_mode);
  free(c->metrics.listen);
  free(c->redis.address);
  free(c->redis.password);
  free(c->redis.key_prefix);
  input_opts_free(&c->input);
  for (keyline_t *k = priv->lines, *next; k; k = next) {
    next = k->next;
    free(k->name);
    free(k->where);
    free(k);
  }
  free(priv);
}

int config_check(const config_t *c, char *errstr, size_t errstr_size) {
  static const struct {
    const char *key;
    size_t off;
  } required[] = {
      {"kafka.brokers", offsetof(config_t, kafka.brokers)},
      {"kafka.group", offsetof(config_t, kafka.group)},
      {"kafka.input_topic", offsetof(config_t, kafka.input_topic)},
      {"kafka.output_topic", offsetof(config_t, kafka.output_topic)},
      {"model.path", offsetof(config_t, model.path)},
  };
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
    const char *v = *(char *const *)((const char *)c + required[i].off);
    if (!v || !*v) {
      snprintf(errstr, errstr_size, "%s: %s must not be empty", where_set(c, required[i].key),
               required[i].key);
      return IX_ECONFIG;
    }
  }
  if (strcmp(c->kafka.input_topic, c->kafka.output_topic) == 0 ||
      (c->kafka.dlq_topic && (strcmp(c->kafka.dlq_topic, c->kafka.input_topic) == 0 ||
                              strcmp(c->kafka.dlq_topic, c->kafka.output_topic) == 0))) {
    snprintf(errstr, errstr_size, "%s: input, output and dead-letter topics must differ",
             where_set(c, "kafka.output_topic"));
    return IX_ECONFIG;
  }
  if (c->kafka.exactly_once) {
    char tid[512];
    config_transactional_id(c, tid, sizeof tid);
    if (!*tid) {
      snprintf(errstr, errstr_size,
               "%s: kafka.processing_guarantee = exactly_once needs kafka.instance_id (or a "
               "group.instance.id property): a name for this member, unique in the group and "
               "the same across its restarts (docs/DAEMON.md, \"Exactly-once output\")",
               where_set(c, "kafka.processing_guarantee"));
      return IX_ECONFIG;
    }
  }
  if (c->state.memory_limit_mb && c->state.pretouch_mb > c->state.memory_limit_mb) {
    snprintf(errstr, errstr_size, "%s: state.pretouch_mb (%llu) must not exceed "
             "state.memory_limit_mb (%llu): the pre-touched memory is for the states the limit "
             "allows", where_set(c, "state.pretouch_mb"),
             (unsigned long long)c->state.pretouch_mb,
             (unsigned long long)c->state.memory_limit_mb);
    return IX_ECONFIG;
  }
  char why[400];
  model_t *m = NULL;
  int rc = model_load(c->model.path, &m, why, sizeof why);
  model_destroy(m);
  if (rc) {
    snprintf(errstr, errstr_size, "%s: model.path %s: %s", where_set(c, "model.path"),
             c->model.path, why);
    return IX_ECONFIG;
  }
  if (c->model.shadow_path && *c->model.shadow_path) {
    rc = model_load(c->model.shadow_path, &m, why, sizeof why);
    model_destroy(m);
    m = NULL;
    if (rc) {
      snprintf(errstr, errstr_size, "%s: model.shadow_path %s: %s",
               where_set(c, "model.shadow_path"), c->model.shadow_path, why);
      return IX_ECONFIG;
    }
  }
  if (c->state.checkpoint_dir && *c->state.checkpoint_dir) {
    struct stat sb;
    const char *d = c->state.checkpoint_dir;
    if (stat(d, &sb) == 0) {
      if (!S_ISDIR(sb.st_mode) || access(d, W_OK | X_OK) != 0) {
        snprintf(errstr, errstr_size, "%s: state.checkpoint_dir %s is not a writable directory",
                 where_set(c, "state.checkpoint_dir"), d);
        return IX_ECONFIG;
      }
    } else {
      /* it will be created: its nearest existing parent must be writable */
      char parent[4096];
      snprintf(parent, sizeof parent, "%s", d);
      char *slash;
      int ok = 0;
      while ((slash = strrchr(parent, '/'))) {
        if (slash == parent) slash[1] = '\0';
        else *slash = '\0';
        if (stat(parent, &sb) == 0) {
          ok = S_ISDIR(sb.st_mode) && access(parent, W_OK | X_OK) == 0;
          break;
        }
        if (slash == parent) break;
      }
      if (!strchr(d, '/')) ok = access(".", W_OK | X_OK) == 0;
      if (!ok) {
        snprintf(errstr, errstr_size,
                 "%s: state.checkpoint_dir %s does not exist and cannot be created",
                 where_set(c, "state.checkpoint_dir"), d);
        return IX_ECONFIG;
      }
    }
  }
  /* metrics.port 0 is valid: a free port, chosen and logged at start */
  return 0;
}

static int secret(const char *kv) {
  return strstr(kv, "password") || strstr(kv, "secret") || strstr(kv, "sasl.oauthbearer.config");
}

static void print_props(FILE *f, const char *section, char **props) {
  if (!props || !props[0]) return;
  fprintf(f, "\n[%s]\n", section);
  for (size_t i = 0; props[i]; i++) {
    const char *eq = strchr(props[i], '=');
    if (secret(props[i]))
      fprintf(f, "%.*s = ********\n", (int)(eq - props[i]), props[i]);
    else
      fprintf(f, "%.*s = %s\n", (int)(eq - props[i]), props[i], eq + 1);
  }
}

static const char *prop_value(char **props, const char *key) {
  size_t kl = strlen(key);
  const char *v = NULL;
  for (size_t i = 0; props && props[i]; i++)
    if (strncmp(props[i], key, kl) == 0 && props[i][kl] == '=') v = props[i] + kl + 1;
  return v;
}

void config_transactional_id(const config_t *c, char *out, size_t out_size) {
  const char *inst = c->kafka.instance_id;
  if (!inst || !*inst) inst = prop_value(c->kafka.consumer_props, "group.instance.id");
  if (!inst || !*inst) inst = prop_value(c->kafka.props, "group.instance.id");
  if (!inst || !*inst) {
    snprintf(out, out_size, "%s", "");
    return;
  }
  snprintf(out, out_size, "%s-%s", c->kafka.group, inst);
}

void config_print(const config_t *c, void *file) {
  FILE *f = file;
  static const char *const lvl[] = {"error", "warn", "info", "debug"};
  fprintf(f, "[kafka]\nbrokers = %s\ngroup = %s\ninput_topic = %s\noutput_topic = %s\n"
             "dlq_topic = %s\n",
          c->kafka.brokers, c->kafka.group, c->kafka.input_topic, c->kafka.output_topic,
          c->kafka.dlq_topic ? c->kafka.dlq_topic : "");
  fprintf(f, "processing_guarantee = %s\ninstance_id = %s\ncommit_interval_ms = %u\n",
          c->kafka.exactly_once ? "exactly_once" : "at_least_once", c->kafka.instance_id,
          c->kafka.commit_interval_ms);
  print_props(f, "kafka.properties", c->kafka.props);
  print_props(f, "kafka.consumer", c->kafka.consumer_props);
  print_props(f, "kafka.producer", c->kafka.producer_props);
  static const char *const reloads[] = {"refuse", "reset", "warm"};
  static const char *const warm_starts[] = {"auto", "off", "on"};
  fprintf(f, "\n[model]\npath = %s\nreload = %s\nwarm_window_s = %llu\nwarm_max_events = %llu\n"
             "warm_start = %s\nshadow_path = %s\n", c->model.path, reloads[c->model.reload],
          (unsigned long long)c->model.warm_window_s,
          (unsigned long long)c->model.warm_max_events, warm_starts[c->model.warm_start + 1],
          c->model.shadow_path ? c->model.shadow_path : "");
  fprintf(f, "\n[state]\nmemory_limit_mb = %llu\npretouch_mb = %llu\nidle_ttl_s = %llu\n"
             "checkpoint_dir = %s\ncheckpoint_interval_s = %u\n",
          (unsigned long long)c->state.memory_limit_mb, (unsigned long long)c->state.pretouch_mb,
          (unsigned long long)c->state.idle_ttl_s,
          c->state.checkpoint_dir ? c->state.checkpoint_dir : "", c->state.checkpoint_interval_s);
  fprintf(f, "changelog_topic = %s\nchangelog_mode = %s\nstandby_replicas = %u\n",
          c->state.changelog_topic, c->state.changelog_mode, c->state.standby_replicas);
  fprintf(f, "\n[batch]\nmax_events = %u\nmax_wait_us = %u\nmax_inflight = %u\n",
          c->batch.max_events, c->batch.max_wait_us, c->batch.max_inflight);
  fprintf(f, "\n[emit]\npolicy = %s\ninterval_ms = %u\nfluctuation_threshold = %g\n"
             "top_n_change = %u\n",
          config_policy_name(c->emit.policy), c->emit.interval_ms,
          (double)c->emit.fluctuation_threshold, c->emit.top_n_change);
  fprintf(f, "\n[input]\npartitioner = %s\n",
          c->kafka.input_partitioner == IX_PARTITIONER_MURMUR2 ? "murmur2" : "consistent_random");
  input_opts_print(&c->input, f);
  fprintf(f, "\n[output]\n");
  output_opts_print(&c->output, f);
  fprintf(f, "\n[log]\nlevel = %s\n", lvl[c->log.level]);
  fprintf(f, "\n[metrics]\nlisten = %s\nport = %u\n", c->metrics.listen, c->metrics.port);
  fprintf(f, "\n[daemon]\nshutdown_timeout_s = %u\n", c->daemon.shutdown_timeout_s);
  fprintf(f, "health_stall_s = %u\n", c->daemon.health_stall_s);
  fprintf(f, "\n[redis]\naddress = %s\ndatabase = %u\npassword = %s\nkey_prefix = %s\n",
          c->redis.address, c->redis.database, *c->redis.password ? "********" : "",
          c->redis.key_prefix);
  if (c->redis.ttl_s < 0) fprintf(f, "ttl_s = state\n");
  else fprintf(f, "ttl_s = %lld\n", (long long)c->redis.ttl_s);
  static const char *const rfmt[] = {"output", "msgpack", "json"};
  fprintf(f, "format = %s\nmax_backlog = %u\n", rfmt[c->redis.format], c->redis.max_backlog);
}

int config_args_take(config_args_t *args, int opt, const char *arg, const char *prog) {
  if (opt == 'c') {
    args->path = arg;
    return 0;
  }
  if (args->n_sets == CONFIG_MAX_SETS) {
    fprintf(stderr, "%s: too many --set options\n", prog);
    return 2;
  }
  args->sets[args->n_sets++] = arg;
  return 0;
}
