/* Metrics registry and its Prometheus text rendering. Families keep their
 * series in a singly linked list in registration order; updates touch one
 * field of one series, rendering walks everything. */
#include "daemon/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/reject.h"

typedef enum { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM, MT_INFO } mtype_t;

typedef struct family family_t;

/* Common head of every series kind; the public types embed it first. */
typedef struct series {
  struct series *next;
  family_t *fam;
  char *labels;  /* escaped `a="b",c="d"`, "" when none; owned */
} series_t;

struct metrics_counter {
  series_t s;
  uint64_t value;
};
struct metrics_gauge {
  series_t s;
  double value;
};
struct metrics_histogram {
  series_t s;
  const double *bounds;  /* the family's */
  size_t nbounds;
  uint64_t count;
  double sum;
  uint64_t buckets[METRICS_MAX_BUCKETS + 1];  /* non-cumulative; [nbounds] is +Inf */
};
struct metrics_info {
  series_t s;
  int set;
};

struct family {
  family_t *next;
  char *name, *help;
  mtype_t type;
  size_t nlabels;
  char *label_names[METRICS_MAX_LABELS];
  double bounds[METRICS_MAX_BUCKETS];
  size_t nbounds;
  series_t *first, *last;
};

#define MAX_HOOKS 16

struct metrics {
  family_t *first, *last;
  struct {
    metrics_collect_fn fn;
    void *arg;
  } hooks[MAX_HOOKS];
  size_t nhooks;
};

/* ---- text buffer --------------------------------------------------------- */

void metrics_buf_free(metrics_buf_t *buf) {
  if (!buf) return;
  free(buf->data);
  buf->data = NULL;
  buf->len = buf->cap = 0;
}

static int buf_reserve(metrics_buf_t *buf, size_t more) {
  size_t need = buf->len + more + 1;
  if (need <= buf->cap) return 0;
  size_t cap = buf->cap ? buf->cap : 4096;
  while (cap < need) cap *= 2;
  char *p = realloc(buf->data, cap);
  if (!p) return IX_ENOMEM;
  buf->data = p;
  buf->cap = cap;
  return 0;
}

static int buf_append(metrics_buf_t *buf, const char *s, size_t n) {
  if (buf_reserve(buf, n)) return IX_ENOMEM;
  memcpy(buf->data + buf->len, s, n);
  buf->len += n;
  buf->data[buf->len] = '\0';
  return 0;
}

static int buf_puts(metrics_buf_t *buf, const char *s) { return buf_append(buf, s, strlen(s)); }

static int buf_printf(metrics_buf_t *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int buf_printf(metrics_buf_t *buf, const char *fmt, ...) {
  char small[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return IX_EINVAL;
  if ((size_t)n < sizeof small) return buf_append(buf, small, (size_t)n);
  if (buf_reserve(buf, (size_t)n)) return IX_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  buf->len += (size_t)n;
  return 0;
}

/* Shortest of %.15g / %.17g that reads back exactly; Prometheus spellings
 * for the non-finite values. */
static void fmt_double(char *out, size_t size, double v) {
  if (isnan(v)) {
    snprintf(out, size, "NaN");
  } else if (isinf(v)) {
    snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
  } else {
    snprintf(out, size, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, size, "%.17g", v);
  }
}

/* Escape a label value (\\, \", \n) or HELP text (\\, \n) into buf. */
static int buf_escaped(metrics_buf_t *buf, const char *s, bool quote) {
  for (; *s; s++) {
    int rc;
    if (*s == '\\') rc = buf_append(buf, "\\\\", 2);
    else if (*s == '\n') rc = buf_append(buf, "\\n", 2);
    else if (quote && *s == '"') rc = buf_append(buf, "\\\"", 2);
    else rc = buf_append(buf, s, 1);
    if (rc) return rc;
  }
  return 0;
}

/* ---- names and labels ---------------------------------------------------- */

static bool valid_metric_name(const char *s) {
  if (!s || !*s) return false;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

static bool valid_label_name(const char *s) {
  if (!s || !*s || (s[0] == '_' && s[1] == '_')) return false;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

typedef struct {
  const char *names[METRICS_MAX_LABELS];
  const char *values[METRICS_MAX_LABELS];
  size_t n;
} labels_t;

/* Collect (name, value) pairs up to a NULL name. */
static int collect_labels(va_list ap, labels_t *l, mtype_t type) {
  l->n = 0;
  for (;;) {
    const char *name = va_arg(ap, const char *);
    if (!name) return 0;
    const char *value = va_arg(ap, const char *);
    if (!value || l->n == METRICS_MAX_LABELS || !valid_label_name(name)) return IX_EINVAL;
    if (type == MT_HISTOGRAM && strcmp(name, "le") == 0) return IX_EINVAL;
    for (size_t i = 0; i < l->n; i++)
      if (strcmp(l->names[i], name) == 0) return IX_EINVAL;
    l->names[l->n] = name;
    l->values[l->n] = value;
    l->n++;
  }
}

/* Escaped `a="b",c="d"` (malloc'd; "" when no labels), NULL on ENOMEM. */
static char *labels_text(const labels_t *l) {
  metrics_buf_t b = {0};
  if (buf_reserve(&b, 0)) return NULL;
  b.data[0] = '\0';
  for (size_t i = 0; i < l->n; i++) {
    if ((i && buf_puts(&b, ",")) || buf_puts(&b, l->names[i]) || buf_puts(&b, "=\"") ||
        buf_escaped(&b, l->values[i], true) || buf_puts(&b, "\"")) {
      metrics_buf_free(&b);
      return NULL;
    }
  }
  return b.data;
}

/* ---- registry ------------------------------------------------------------ */

int metrics_new(metrics_t **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : IX_ENOMEM;
}

static void family_free(family_t *fam) {
  series_t *s = fam->first;
  while (s) {
    series_t *next = s->next;
    free(s->labels);
    free(s);
    s = next;
  }
  for (size_t i = 0; i < fam->nlabels; i++) free(fam->label_names[i]);
  free(fam->name);
  free(fam->help);
  free(fam);
}

void metrics_destroy(metrics_t *reg) {
  if (!reg) return;
  family_t *fam = reg->first;
  while (fam) {
    family_t *next = fam->next;
    family_free(fam);
    fam = next;
  }
  free(reg);
}

static family_t *find_family(metrics_t *reg, const char *name) {
  for (family_t *f = reg->first; f; f = f->next)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

/* Find or create the family, checking it agrees with an earlier one. */
static int get_family(metrics_t *reg, const char *name, const char *help, mtype_t type,
                      const labels_t *l, const double *bounds, size_t nbounds,
                      family_t **out) {
  if (!reg || !valid_metric_name(name) || !help) return IX_EINVAL;
  if (type == MT_HISTOGRAM) {
    if (nbounds == 0 || nbounds > METRICS_MAX_BUCKETS || !bounds) return IX_EINVAL;
    for (size_t i = 0; i < nbounds; i++) {
      if (!isfinite(bounds[i])) return IX_EINVAL;
      if (i && !(bounds[i] > bounds[i - 1])) return IX_EINVAL;
    }
  }
  family_t *fam = find_family(reg, name);
  if (fam) {
    if (fam->type != type || strcmp(fam->help, help) != 0) return IX_EINVAL;
    if (type != MT_INFO) {
      if (fam->nlabels != l->n) return IX_EINVAL;
      for (size_t i = 0; i < l->n; i++)
        if (strcmp(fam->label_names[i], l->names[i]) != 0) return IX_EINVAL;
    }
    if (type == MT_HISTOGRAM &&
        (fam->nbounds != nbounds || memcmp(fam->bounds, bounds, nbounds * sizeof *bounds)))
      return IX_EINVAL;
    *out = fam;
    return 0;
  }
  fam = calloc(1, sizeof *fam);
  if (!fam) return IX_ENOMEM;
  fam->type = type;
  fam->name = strdup(name);
  fam->help = strdup(help);
  if (!fam->name || !fam->help) goto err;
  if (type != MT_INFO) {
    for (size_t i = 0; i < l->n; i++) {
      fam->label_names[i] = strdup(l->names[i]);
      fam->nlabels = i + 1;
      if (!fam->label_names[i]) goto err;
    }
  }
  if (type == MT_HISTOGRAM) {
    memcpy(fam->bounds, bounds, nbounds * sizeof *bounds);
    fam->nbounds = nbounds;
  }
  if (reg->last) reg->last->next = fam;
  else reg->first = fam;
  reg->last = fam;
  *out = fam;
  return 0;
err:
  family_free(fam);
  return IX_ENOMEM;
}

/* Find the (family, labels) series or append a new zeroed one of size bytes. */
static int get_series(family_t *fam, const labels_t *l, size_t size, series_t **out) {
  char *text = labels_text(l);
  if (!text) return IX_ENOMEM;
  for (series_t *s = fam->first; s; s = s->next) {
    if (strcmp(s->labels, text) == 0) {
      free(text);
      *out = s;
      return 0;
    }
  }
  series_t *s = calloc(1, size);
  if (!s) {
    free(text);
    return IX_ENOMEM;
  }
  s->fam = fam;
  s->labels = text;
  if (fam->last) fam->last->next = s;
  else fam->first = s;
  fam->last = s;
  *out = s;
  return 0;
}

static int register_series(metrics_t *reg, const char *name, const char *help, mtype_t type,
                           const double *bounds, size_t nbounds, size_t size, va_list ap,
                           series_t **out) {
  labels_t l;
  family_t *fam;
  int rc = collect_labels(ap, &l, type);
  if (rc == 0) rc = get_family(reg, name, help, type, &l, bounds, nbounds, &fam);
  if (rc == 0) rc = get_series(fam, &l, size, out);
  return rc;
}

int metrics_counter_new(metrics_t *reg, metrics_counter_t **out, const char *name,
                        const char *help, ...) {
  series_t *s = NULL;
  va_list ap;
  va_start(ap, help);
  int rc = register_series(reg, name, help, MT_COUNTER, NULL, 0, sizeof(metrics_counter_t), ap, &s);
  va_end(ap);
  *out = rc ? NULL : (metrics_counter_t *)s;
  return rc;
}

int metrics_gauge_new(metrics_t *reg, metrics_gauge_t **out, const char *name,
                      const char *help, ...) {
  series_t *s = NULL;
  va_list ap;
  va_start(ap, help);
  int rc = register_series(reg, name, help, MT_GAUGE, NULL, 0, sizeof(metrics_gauge_t), ap, &s);
  va_end(ap);
  *out = rc ? NULL : (metrics_gauge_t *)s;
  return rc;
}

int metrics_histogram_new(metrics_t *reg, metrics_histogram_t **out, const char *name,
                          const char *help, const double *bounds, size_t nbounds, ...) {
  series_t *s = NULL;
  va_list ap;
  va_start(ap, nbounds);
  int rc = register_series(reg, name, help, MT_HISTOGRAM, bounds, nbounds,
                           sizeof(metrics_histogram_t), ap, &s);
  va_end(ap);
  if (rc) {
    *out = NULL;
    return rc;
  }
  metrics_histogram_t *h = (metrics_histogram_t *)s;
  h->bounds = s->fam->bounds;
  h->nbounds = s->fam->nbounds;
  *out = h;
  return 0;
}

int metrics_info_new(metrics_t *reg, metrics_info_t **out, const char *name, const char *help) {
  labels_t none = {.n = 0};
  family_t *fam;
  series_t *s = NULL;
  *out = NULL;
  int rc = get_family(reg, name, help, MT_INFO, &none, NULL, 0, &fam);
  if (rc) return rc;
  if (fam->first) return IX_EEXIST;  /* one series per info family */
  rc = get_series(fam, &none, sizeof(metrics_info_t), &s);
  if (rc == 0) *out = (metrics_info_t *)s;
  return rc;
}

int metrics_info_set(metrics_info_t *info, ...) {
  if (!info) return IX_EINVAL;
  labels_t l;
  va_list ap;
  va_start(ap, info);
  int rc = collect_labels(ap, &l, MT_INFO);
  va_end(ap);
  if (rc) return rc;
  char *text = labels_text(&l);
  if (!text) return IX_ENOMEM;
  free(info->s.labels);
  info->s.labels = text;
  info->set = 1;
  return 0;
}

void metrics_gauge_delete(metrics_t *reg, metrics_gauge_t *g) {
  if (!reg || !g) return;
  family_t *fam = g->s.fam;
  series_t *prev = NULL;
  for (series_t *s = fam->first; s; prev = s, s = s->next) {
    if (s != &g->s) continue;
    if (prev) prev->next = s->next;
    else fam->first = s->next;
    if (fam->last == s) fam->last = prev;
    free(s->labels);
    free(s);
    return;
  }
}

int metrics_on_collect(metrics_t *reg, metrics_collect_fn fn, void *arg) {
  if (!reg || !fn) return IX_EINVAL;
  if (reg->nhooks == MAX_HOOKS) return IX_EFULL;
  reg->hooks[reg->nhooks].fn = fn;
  reg->hooks[reg->nhooks].arg = arg;
  reg->nhooks++;
  return 0;
}

/* ---- hot path ------------------------------------------------------------ */

void metrics_counter_inc(metrics_counter_t *c) { c->value++; }
void metrics_counter_add(metrics_counter_t *c, uint64_t n) { c->value += n; }
void metrics_counter_set(metrics_counter_t *c, uint64_t v) { c->value = v; }
void metrics_gauge_set(metrics_gauge_t *g, double v) { g->value = v; }
void metrics_gauge_add(metrics_gauge_t *g, double delta) { g->value += delta; }
double metrics_gauge_get(const metrics_gauge_t *g) { return g->value; }

void metrics_histogram_observe(metrics_histogram_t *h, double v) {
  if (isnan(v)) return;  /* a NaN would poison _sum forever */
  size_t i = 0;
  while (i < h->nbounds && v > h->bounds[i]) i++;  /* le: v <= bound */
  h->buckets[i]++;
  h->count++;
  h->sum += v;
}

uint64_t metrics_histogram_count(const metrics_histogram_t *h) { return h->count; }
double metrics_histogram_sum(const metrics_histogram_t *h) { return h->sum; }
uint64_t metrics_histogram_bucket(const metrics_histogram_t *h, size_t i) {
  return i <= h->nbounds ? h->buckets[i] : 0;
}

/* ---- rendering ----------------------------------------------------------- */

static const char *type_name(mtype_t t) {
  switch (t) {
  case MT_COUNTER: return "counter";
  case MT_HISTOGRAM: return "histogram";
  case MT_GAUGE:
  case MT_INFO: return "gauge";
  }
  return "untyped";
}

/* `name[suffix]{labels[,extra]} ` */
static int render_name(metrics_buf_t *buf, const char *name, const char *suffix,
                       const char *labels, const char *extra) {
  int rc = buf_puts(buf, name);
  if (!rc && suffix) rc = buf_puts(buf, suffix);
  bool has = labels && *labels, has_extra = extra && *extra;
  if (!rc && (has || has_extra)) {
    rc = buf_puts(buf, "{");
    if (!rc && has) rc = buf_puts(buf, labels);
    if (!rc && has && has_extra) rc = buf_puts(buf, ",");
    if (!rc && has_extra) rc = buf_puts(buf, extra);
    if (!rc) rc = buf_puts(buf, "}");
  }
  if (!rc) rc = buf_puts(buf, " ");
  return rc;
}

static int render_histogram(metrics_buf_t *buf, const family_t *fam,
                            const metrics_histogram_t *h) {
  char num[40], le[48];
  uint64_t cum = 0;
  int rc = 0;
  for (size_t i = 0; i <= h->nbounds && !rc; i++) {
    cum += h->buckets[i];
    if (i < h->nbounds) fmt_double(num, sizeof num, h->bounds[i]);
    else snprintf(num, sizeof num, "+Inf");
    snprintf(le, sizeof le, "le=\"%s\"", num);
    rc = render_name(buf, fam->name, "_bucket", h->s.labels, le);
    if (!rc) rc = buf_printf(buf, "%llu\n", (unsigned long long)cum);
  }
  fmt_double(num, sizeof num, h->sum);
  if (!rc) rc = render_name(buf, fam->name, "_sum", h->s.labels, NULL);
  if (!rc) rc = buf_printf(buf, "%s\n", num);
  if (!rc) rc = render_name(buf, fam->name, "_count", h->s.labels, NULL);
  if (!rc) rc = buf_printf(buf, "%llu\n", (unsigned long long)h->count);
  return rc;
}

int metrics_render(metrics_t *reg, metrics_buf_t *buf) {
  for (size_t i = 0; i < reg->nhooks; i++) reg->hooks[i].fn(reg->hooks[i].arg, reg);
  buf->len = 0;
  int rc = buf_reserve(buf, 0);
  if (rc) return rc;
  buf->data[0] = '\0';
  char num[40];
  for (family_t *fam = reg->first; fam && !rc; fam = fam->next) {
    rc = buf_printf(buf, "# HELP %s ", fam->name);
    if (!rc) rc = buf_escaped(buf, fam->help, false);
    if (!rc) rc = buf_printf(buf, "\n# TYPE %s %s\n", fam->name, type_name(fam->type));
    for (series_t *s = fam->first; s && !rc; s = s->next) {
      switch (fam->type) {
      case MT_COUNTER:
        rc = render_name(buf, fam->name, NULL, s->labels, NULL);
        if (!rc)
          rc = buf_printf(buf, "%llu\n",
                          (unsigned long long)((metrics_counter_t *)s)->value);
        break;
      case MT_GAUGE:
        fmt_double(num, sizeof num, ((metrics_gauge_t *)s)->value);
        rc = render_name(buf, fam->name, NULL, s->labels, NULL);
        if (!rc) rc = buf_printf(buf, "%s\n", num);
        break;
      case MT_INFO:
        if (!((metrics_info_t *)s)->set) break;
        rc = render_name(buf, fam->name, NULL, s->labels, NULL);
        if (!rc) rc = buf_puts(buf, "1\n");
        break;
      case MT_HISTOGRAM:
        rc = render_histogram(buf, fam, (metrics_histogram_t *)s);
        break;
      }
    }
  }
  return rc;
}

/* ---- standard buckets ---------------------------------------------------- */

/* finer around the 10 ms target, so p99 can be read off the buckets */
const double metrics_buckets_latency[] = {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01,
                                          0.015,  0.02,  0.025, 0.05,  0.1,   0.25,   0.5,
                                          1,      2.5,   5,     10};
const size_t metrics_buckets_latency_n =
    sizeof metrics_buckets_latency / sizeof metrics_buckets_latency[0];
const double metrics_buckets_step[] = {0.000005, 0.00001, 0.000025, 0.00005, 0.0001,
                                       0.00025,  0.0005,  0.001,    0.0025,  0.005,
                                       0.01,     0.025,   0.05,     0.1,     0.5};
const size_t metrics_buckets_step_n = sizeof metrics_buckets_step / sizeof metrics_buckets_step[0];
const double metrics_buckets_batch[] = {1,   2,   4,    8,    16,   32,  64,
                                        128, 256, 512, 1024, 2048, 4096};
const size_t metrics_buckets_batch_n =
    sizeof metrics_buckets_batch / sizeof metrics_buckets_batch[0];
const double metrics_buckets_checkpoint[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                             5,    10,   30,  60,   120, 300, 600};
const size_t metrics_buckets_checkpoint_n =
    sizeof metrics_buckets_checkpoint / sizeof metrics_buckets_checkpoint[0];
const double metrics_buckets_stall[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                        0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                        0.5,     1,      2.5,     5,      10};
const size_t metrics_buckets_stall_n = sizeof metrics_buckets_stall / sizeof metrics_buckets_stall[0];

/* ---- interestd's metric set ---------------------------------------------- */

static void collect_checkpoint_age(void *arg, metrics_t *reg) {
  metrics_daemon_t *md = arg;
  metrics_gauge_set(md->checkpoint_age_seconds,
                    (double)(ix_mono_ns() - md->checkpoint_last_ok_ns) / 1e9);
}

int metrics_daemon_register(metrics_t *reg, const char *version, metrics_daemon_t *md) {
  memset(md, 0, sizeof *md);
  md->reg = reg;
  int rc = 0;
#define C(field, name, help) \
  if (!rc) rc = metrics_counter_new(reg, &md->field, name, help, NULL)
#define G(field, name, help) \
  if (!rc) rc = metrics_gauge_new(reg, &md->field, name, help, NULL)
#define H(field, name, help, b) \
  if (!rc) rc = metrics_histogram_new(reg, &md->field, name, help, b, b##_n, NULL)
  C(events_consumed, "interestd_events_consumed_total", "Messages read from the input topics.");
  C(events_processed, "interestd_events_processed_total", "Events applied to a user's state.");
  for (size_t i = 0; i < IX_REJECT_REASONS && !rc; i++)
    rc = metrics_counter_new(reg, &md->events_rejected[i], "interestd_events_rejected_total",
                             "Input messages not applied, by reason.", "reason",
                             ix_reject_label(i), NULL);
  C(predictions_produced, "interestd_predictions_produced_total",
    "Predictions handed to the Kafka producer.");
  C(predictions_delivered, "interestd_predictions_delivered_total",
    "Predictions acknowledged by the broker.");
  C(predictions_failed, "interestd_predictions_failed_total",
    "Predictions whose delivery failed.");
  for (size_t i = 0; i < PRODUCER_FAIL_N && !rc; i++)
    rc = metrics_counter_new(reg, &md->produce_failures[i], "interestd_produce_failures_total",
                             "Produce attempts that failed (delivery report or local refusal), "
                             "by class; transient ones are sent again.",
                             "reason", producer_fail_label((producer_fail_t)i), NULL);
  for (int k = 0; k < 2 && !rc; k++)
    for (size_t i = 1; i < PRODUCER_FAIL_N && !rc; i++) /* transient failures are never dropped */
      rc = metrics_counter_new(reg, &md->messages_dropped[k][i], "interestd_messages_dropped_total",
                               "Messages given up on after a permanent produce failure (their "
                               "input offset still advances), by kind and reason.",
                               "kind", k ? "dead_letter" : "prediction", "reason",
                               producer_fail_label((producer_fail_t)i), NULL);
  C(dead_letters_truncated, "interestd_dead_letters_truncated_total",
    "Dead-letter records sent without the original value (it could not be produced whole).");
  G(consumer_paused, "interestd_consumer_paused",
    "1 while consumption is paused by backpressure (retry backlog or unacknowledged limit).");
  G(retry_backlog, "interestd_retry_backlog_messages", "Messages waiting in the retry backlog.");
  C(commit_failures, "interestd_commit_failures_total",
    "Offset commits that failed (auto-commit, revocation, shutdown).");
  C(checkpoints_refused, "interestd_checkpoints_refused_total",
    "Restored checkpoints ignored because their offset lies beyond the partition's end.");
  C(checkpoints_skipped, "interestd_checkpoints_skipped_total",
    "Checkpoint files skipped at restore as unusable (truncated, corrupt, unreadable).");
  C(skipped_by_retention, "interestd_events_skipped_by_retention_total",
    "Input offsets deleted by the broker's retention before they were read (offset out of "
    "range; consumption resumed at the log's start).");
  static const char *const rebalance_events[3] = {"assign", "revoke", "lost"};
  for (int i = 0; i < 3 && !rc; i++)
    rc = metrics_counter_new(reg, &md->rebalances[i], "interestd_rebalances_total",
                             "Consumer group rebalance events, by event.", "event",
                             rebalance_events[i], NULL);
  if (!rc)
    rc = metrics_info_new(reg, &md->last_rebalance, "interestd_last_rebalance_info",
                          "The last rebalance event and its partitions; always 1.");
  if (!rc) {
    labels_t l = {.names = {"partition"}, .values = {""}, .n = 1};
    family_t *fam;
    rc = get_family(reg, "interestd_committed_offset",
                    "Offset last committed for the group, per owned input partition.", MT_GAUGE,
                    &l, NULL, 0, &fam);
  }
  H(batch_size, "interestd_batch_size_events", "Events per processing batch.",
    metrics_buckets_batch);
  H(step_seconds, "interestd_step_duration_seconds",
    "Model step time per batch (features, LSTM, head).", metrics_buckets_step);
  H(event_to_prediction_seconds, "interestd_event_to_prediction_seconds",
    "From an event read off the consumer queue to its prediction's delivery report.",
    metrics_buckets_latency);
  if (!rc) {
    /* the family exists from the start, even before any partition is assigned */
    labels_t l = {.names = {"partition"}, .values = {""}, .n = 1};
    family_t *fam;
    rc = get_family(reg, "interestd_consumer_lag_messages",
                    "High watermark minus the next offset to consume, per input partition.",
                    MT_GAUGE, &l, NULL, 0, &fam);
  }
  G(partitions_assigned, "interestd_partitions_assigned",
    "Input partitions owned by this process.");
  G(users_in_state, "interestd_users_in_state", "Users held in the state store.");
  G(state_bytes, "interestd_state_bytes", "Memory used by the state store.");
  G(state_pool_bytes, "interestd_state_pool_bytes",
    "Populated memory the slab pool holds for the next slab of a state store.");
  if (!rc)
    rc = metrics_counter_new(reg, &md->state_chunks_pool, "interestd_state_memory_chunks_total",
                             "2 MiB chunks taken by the state stores' slabs, by where they came "
                             "from.", "from", "pool", NULL);
  if (!rc)
    rc = metrics_counter_new(reg, &md->state_chunks_fresh, "interestd_state_memory_chunks_total",
                             "2 MiB chunks taken by the state stores' slabs, by where they came "
                             "from.", "from", "fresh", NULL);
  if (!rc)
    rc = metrics_counter_new(reg, &md->state_memory_failures,
                             "interestd_state_memory_failures_total",
                             "Slabs the state stores could not map or populate (out of memory): "
                             "the least recently seen users were evicted to make room.", NULL);
  if (!rc)
    rc = metrics_counter_new(reg, &md->evictions_lru, "interestd_evictions_total",
                             "Users dropped from the state store, by cause.", "cause", "lru",
                             NULL);
  if (!rc)
    rc = metrics_counter_new(reg, &md->evictions_ttl, "interestd_evictions_total",
                             "Users dropped from the state store, by cause.", "cause", "ttl",
                             NULL);
  H(checkpoint_seconds, "interestd_checkpoint_duration_seconds",
    "Time to write one checkpoint.", metrics_buckets_checkpoint);
  C(checkpoint_failures, "interestd_checkpoint_failures_total", "Checkpoints that failed.");
  G(checkpoint_age_seconds, "interestd_checkpoint_age_seconds",
    "Seconds since the last successful checkpoint (since start when there was none).");
  if (!rc)
    rc = metrics_info_new(reg, &md->build_info, "interestd_build_info",
                          "Build information; always 1.");
  if (!rc) rc = metrics_info_set(md->build_info, "version", version ? version : "unknown", NULL);
  if (!rc)
    rc = metrics_info_new(reg, &md->model_info, "interestd_model_info",
                          "The loaded model; always 1.");
  if (!rc) {
    md->checkpoint_last_ok_ns = ix_mono_ns();
    rc = metrics_on_collect(reg, collect_checkpoint_age, md);
  }
#undef C
#undef G
#undef H
  return rc;
}

void metrics_daemon_checkpoint_done(metrics_daemon_t *md, double seconds, int ok) {
  metrics_histogram_observe(md->checkpoint_seconds, seconds);
  if (ok) md->checkpoint_last_ok_ns = ix_mono_ns();
  else metrics_counter_inc(md->checkpoint_failures);
}

int metrics_redis_register(metrics_t *m, metrics_redis_t *rm) {
  int rc = metrics_counter_new(m, &rm->written, "interestd_redis_writes_total",
                               "Predictions written to Redis.", NULL);
  if (!rc) rc = metrics_counter_new(m, &rm->stale, "interestd_redis_stale_writes_total",
                                    "Writes Redis refused because it held a newer prediction "
                                    "for the user.", NULL);
  if (!rc) rc = metrics_counter_new(m, &rm->failed, "interestd_redis_write_failures_total",
                                    "Writes refused by Redis or lost with a connection "
                                    "(each is written again).", NULL);
  if (!rc) rc = metrics_gauge_new(m, &rm->backlog, "interestd_redis_backlog",
                                  "Predictions waiting to be written to Redis.", NULL);
  if (!rc) rc = metrics_gauge_new(m, &rm->up, "interestd_redis_up",
                                  "1 when the Redis sink is connected.", NULL);
  if (!rc) rc = metrics_histogram_new(m, &rm->seconds, "interestd_redis_write_seconds",
                                      "Time from a write's send to Redis's reply.",
                                      metrics_buckets_latency, metrics_buckets_latency_n, NULL);
  return rc;
}

const char *const metrics_state_source_label[5] = {"cold", "local", "changelog",
                                                   "local+changelog", "standby"};

int metrics_changelog_register(metrics_t *m, metrics_changelog_t *cm) {
  static const double secs[] = {0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60};
  int rc = 0;
  for (int s = 0; s < 5 && !rc; s++) {
    rc = metrics_counter_new(m, &cm->from[s], "interestd_state_restores_total",
                             "Partition assignments by where their states came from.",
                             "source", metrics_state_source_label[s], NULL);
    if (!rc)
      rc = metrics_counter_new(m, &cm->users_from[s], "interestd_state_restored_users_total",
                               "Users whose state was restored, by source.", "source",
                               metrics_state_source_label[s], NULL);
  }
  if (!rc)
    rc = metrics_counter_new(m, &cm->bytes_read, "interestd_changelog_read_bytes_total",
                             "Changelog bytes (key + value) read by restores.", NULL);
  if (!rc)
    rc = metrics_counter_new(m, &cm->records_written, "interestd_changelog_records_written_total",
                             "Changelog records acknowledged (users and completions).", NULL);
  if (!rc)
    rc = metrics_counter_new(m, &cm->produce_failures,
                             "interestd_changelog_produce_failures_total",
                             "Changelog records whose delivery failed.", NULL);
  if (!rc)
    rc = metrics_counter_new(m, &cm->restore_failures,
                             "interestd_changelog_restore_failures_total",
                             "Restores of a partition whose changelog read failed (broker away, "
                             "leader election, timeout): the partition waits, paused, and the "
                             "restore is retried; it is not served cold.", NULL);
  if (!rc)
    rc = metrics_gauge_new(m, &cm->waiting, "interestd_changelog_partitions_waiting",
                           "Owned partitions paused until their changelog can be read.", NULL);
  if (!rc)
    rc = metrics_counter_new(m, &cm->skipped, "interestd_state_events_skipped_total",
                             "Events already in a state restored from the changelog (a record "
                             "newer than its completion): not applied again.", NULL);
  if (!rc)
    rc = metrics_histogram_new(m, &cm->restore_seconds, "interestd_changelog_restore_seconds",
                               "Time to restore one partition from the changelog.", secs,
                               sizeof secs / sizeof secs[0], NULL);
  static const char *const modes[2] = {"slices", "at_once"};
  for (int i = 0; i < 2 && !rc; i++)
    rc = metrics_histogram_new(m, &cm->encode_seconds[i], "interestd_changelog_encode_seconds",
                               "Loop-thread time of one changelog encoding call: a slice "
                               "(mode slices) or a whole checkpoint at once (revocation, "
                               "shutdown).", metrics_buckets_stall,
                               metrics_buckets_stall_n, "mode", modes[i], NULL);
  return rc;
}

int metrics_loop_register(metrics_t *m, metrics_loop_t *lm) {
  int rc = metrics_histogram_new(m, &lm->busy_seconds, "interestd_loop_busy_seconds",
                                 "Time each turn of the event loop spent running callbacks "
                                 "(events arriving meanwhile wait for the next turn).",
                                 metrics_buckets_stall, metrics_buckets_stall_n, NULL);
  if (!rc)
    rc = metrics_gauge_new(m, &lm->stall_max, "interestd_loop_stall_max_seconds",
                           "Longest turn of the event loop since the process started.", NULL);
  if (!rc)
    rc = metrics_gauge_new(m, &lm->stall_recent, "interestd_loop_stall_recent_max_seconds",
                           "Longest turn of the event loop that ended in the last 60 s "
                           "(50-60 s: 10 s steps).", NULL);
  return rc;
}

int metrics_standby_register(metrics_t *m, metrics_standby_t *sm) {
  int rc = metrics_gauge_new(m, &sm->partitions, "interestd_standby_partitions",
                             "Partitions this member keeps a standby copy of.", NULL);
  if (!rc)
    rc = metrics_gauge_new(m, &sm->users, "interestd_standby_users",
                           "Users held in standby copies of partitions this member does not own.",
                           NULL);
  if (!rc)
    rc = metrics_gauge_new(m, &sm->bytes, "interestd_standby_bytes",
                           "Memory of the standby copies (slabs and index).", NULL);
  static const char *const rules[2] = {"assignment", "membership"};
  for (int i = 0; i < 2 && !rc; i++)
    rc = metrics_gauge_new(m, &sm->rule[i], "interestd_standby_rule",
                           "1 for the standby placement rule in force: membership (the group "
                           "described) or assignment (this member's own, the fallback).",
                           "rule", rules[i], NULL);
  if (!rc)
    rc = metrics_counter_new(m, &sm->describes_ok, "interestd_standby_describes_total",
                             "DescribeConsumerGroups answers for the standby placement.",
                             "result", "ok", NULL);
  if (!rc)
    rc = metrics_counter_new(m, &sm->describes_failed, "interestd_standby_describes_total",
                             "DescribeConsumerGroups answers for the standby placement.",
                             "result", "failed", NULL);
  return rc;
}

metrics_gauge_t *metrics_standby_lag(metrics_t *m, int32_t partition) {
  char p[16];
  metrics_gauge_t *g;
  snprintf(p, sizeof p, "%d", (int)partition);
  if (metrics_gauge_new(m, &g, "interestd_standby_lag_records",
                        "Changelog records a standby copy is behind the topic's end, per "
                        "partition this member stands by for.",
                        "partition", p, NULL))
    return NULL;
  return g;
}

int metrics_daemon_set_model(metrics_daemon_t *md, uint32_t fingerprint,
                             const char *description) {
  char fp[16];
  snprintf(fp, sizeof fp, "%08x", (unsigned)fingerprint);
  return metrics_info_set(md->model_info, "fingerprint", fp, "description",
                          description ? description : "", NULL);
}

/* A gauge labelled with one input partition; NULL on failure. */
static metrics_gauge_t *partition_gauge(metrics_daemon_t *md, const char *name, const char *help,
                                        int32_t partition) {
  char p[16];
  metrics_gauge_t *g;
  snprintf(p, sizeof p, "%d", (int)partition);
  return metrics_gauge_new(md->reg, &g, name, help, "partition", p, NULL) ? NULL : g;
}

metrics_gauge_t *metrics_daemon_committed(metrics_daemon_t *md, int32_t partition) {
  return partition_gauge(md, "interestd_committed_offset",
                         "Offset last committed for the group, per owned input partition.",
                         partition);
}

metrics_gauge_t *metrics_daemon_lag(metrics_daemon_t *md, int32_t partition) {
  return partition_gauge(md, "interestd_consumer_lag_messages",
                         "High watermark minus the next offset to consume, per input partition.",
                         partition);
}
