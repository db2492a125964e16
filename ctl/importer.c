/* interestctl import: the real data sets (Taobao UserBehavior, Tmall
 * user_log_format1) into record files of event messages keyed by user id,
 * in event-time order, partitioned exactly as a Kafka producer would. */
#include "ctl/importer.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "common/err.h"
#include "common/partition.h"
#include "stream/codec.h"
#include "stream/recfile.h"
#include "stream/timefmt.h"

/* ---------------------------------------------------------------- partitioner */

uint32_t importer_murmur2(const void *key, size_t key_len) { return ix_murmur2(key, key_len); }

int32_t importer_partition(const void *key, size_t key_len, int32_t partitions) {
  return ix_partition(IX_PARTITIONER_MURMUR2, key, key_len, partitions);
}

/* ---------------------------------------------------------------- CSV lines */


typedef struct {
  const char *p;
  size_t len;
} field_t;

/* Splits on ',' into at most max fields; returns the number of fields found
 * (max + 1 means "more than max"). */
static int split_fields(const char *line, size_t len, field_t *f, int max) {
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || line[i] == ',') {
      if (n == max) return max + 1;
      f[n].p = line + start;
      f[n].len = i - start;
      n++;
      start = i + 1;
    }
  }
  return n;
}

static int parse_u64(const field_t *f, uint64_t *out) {
  if (f->len == 0 || f->len > 20) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < f->len; i++) {
    unsigned d = (unsigned char)f->p[i] - '0';
    if (d > 9 || v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int field_is(const field_t *f, const char *s) {
  size_t n = strlen(s);
  return f->len == n && memcmp(f->p, s, n) == 0;
}

static int parse_ids(const field_t *f, const char *const names[3], event_t *ev, char *reason,
                     size_t reason_size) {
  uint64_t *dst[3] = {&ev->user_id, &ev->item_id, &ev->category_id};
  for (int i = 0; i < 3; i++)
    if (parse_u64(&f[i], dst[i]))
      return ix_fail(IX_EMALFORMED, reason, reason_size, "%s '%.*s' is not an unsigned 64-bit number", names[i],
                 (int)(f[i].len > 24 ? 24 : f[i].len), f[i].p);
  return 0;
}

static const int g_days_in_month[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

static int parse_line(import_format_t format, const char *line, size_t len, event_t *ev,
                      char *reason, size_t reason_size) {
  field_t f[8];
  if (len == 0) return ix_fail(IX_EMALFORMED, reason, reason_size, "empty line");
  if (format == IMPORT_TAOBAO) {
    static const char *const names[3] = {"user_id", "item_id", "category_id"};
    int n = split_fields(line, len, f, 5);
    if (n != 5)
      return ix_fail(IX_EMALFORMED, reason, reason_size, "%s fields, want 5 (user,item,category,behavior,timestamp)",
                 n > 5 ? "more than 5" : n == 4 ? "4" : n == 3 ? "3" : n == 2 ? "2" : "1");
    int rc = parse_ids(f, names, ev, reason, reason_size);
    if (rc) return rc;
    if (f[3].len == 0) return ix_fail(IX_EMALFORMED, reason, reason_size, "behavior is empty");
    if (field_is(&f[3], "pv")) ev->action = ACTION_VIEW;
    else if (field_is(&f[3], "cart")) ev->action = ACTION_CART;
    else if (field_is(&f[3], "fav")) ev->action = ACTION_FAV;
    else if (field_is(&f[3], "buy")) ev->action = ACTION_BUY;
    else ev->action = ACTION_OTHER; /* kept and counted, never rejected */
    uint64_t s;
    if (parse_u64(&f[4], &s) || s > (uint64_t)INT64_MAX / 1000)
      return ix_fail(IX_EMALFORMED, reason, reason_size, "timestamp '%.*s' is not Unix seconds",
                 (int)(f[4].len > 24 ? 24 : f[4].len), f[4].p);
    ev->ts_ms = (int64_t)s * 1000;
  } else if (format == IMPORT_TMALL) {
    static const char *const names[3] = {"user_id", "item_id", "cat_id"};
    int n = split_fields(line, len, f, 7);
    if (n != 7)
      return ix_fail(IX_EMALFORMED, reason, reason_size,
                 "%d fields, want 7 (user_id,item_id,cat_id,seller_id,brand_id,time_stamp,"
                 "action_type)",
                 n);
    int rc = parse_ids(f, names, ev, reason, reason_size);
    if (rc) return rc;
    uint64_t mmdd;
    if ((f[5].len != 3 && f[5].len != 4) || parse_u64(&f[5], &mmdd))
      return ix_fail(IX_EMALFORMED, reason, reason_size, "time_stamp '%.*s' is not mmdd",
                 (int)(f[5].len > 24 ? 24 : f[5].len), f[5].p);
    int mm = (int)(mmdd / 100), dd = (int)(mmdd % 100);
    if (mm < 1 || mm > 12 || dd < 1 || dd > g_days_in_month[mm - 1])
      return ix_fail(IX_EMALFORMED, reason, reason_size, "time_stamp '%.*s' is not a day of %d", (int)f[5].len,
                 f[5].p, IMPORT_TMALL_YEAR);
    struct tm tm = {.tm_year = IMPORT_TMALL_YEAR - 1900, .tm_mon = mm - 1, .tm_mday = dd};
    ev->ts_ms = ((int64_t)timegm(&tm) - IMPORT_TMALL_UTC_OFFSET_S) * 1000;
    if (f[6].len == 0) return ix_fail(IX_EMALFORMED, reason, reason_size, "action_type is empty");
    if (field_is(&f[6], "0")) ev->action = ACTION_VIEW;      /* click */
    else if (field_is(&f[6], "1")) ev->action = ACTION_CART; /* add-to-cart */
    else if (field_is(&f[6], "2")) ev->action = ACTION_BUY;  /* purchase */
    else if (field_is(&f[6], "3")) ev->action = ACTION_FAV;  /* add-to-favourite */
    else ev->action = ACTION_OTHER;
  } else {
    return ix_fail(IX_EMALFORMED, reason, reason_size, "unknown input format %d", (int)format);
  }
  return 0;
}

int importer_parse_line(import_format_t format, const char *line, size_t len, event_t *ev,
                        char *reason, size_t reason_size) {
  memset(ev, 0, sizeof *ev);
  int rc = parse_line(format, line, len, ev, reason, reason_size);
  if (rc) memset(ev, 0, sizeof *ev); /* never a half-filled event */
  return rc;
}

/* ---------------------------------------------------------------- any CSV */

#define CSV_MAX_COLUMNS 256

int importer_csv_defaults(input_opts_t *o) {
  static const char *const kv[] = {"user_field", "user_id", "category_field", "category_id",
                                   "item_field", "product_id", "action_field", "event_type",
                                   "time_field", "event_time", "time_format", "iso8601",
                                   "action_map", "purchase=buy, remove_from_cart=other", NULL};
  int rc = input_opts_init(o);
  if (rc) return rc;
  char why[200];
  for (size_t i = 0; kv[i]; i += 2)
    if ((rc = input_opts_set(o, kv[i], kv[i + 1], why, sizeof why))) {
      input_opts_free(o);
      return rc;
    }
  return 0;
}

typedef struct {
  const input_opts_t *map;
  int col[INPUT_F__COUNT]; /* column index of each field; -1 = not in the header */
  int n_cols;
  int64_t utc_offset_s;
} csv_map_t;

/* Splits a CSV line (RFC 4180 quoting: "a,b" and "" inside quotes; no line
 * breaks inside a field) into at most max fields, unquoting in place into
 * buf (len bytes). Returns the number of fields, max + 1 for more, or -1 for
 * a broken quote. */
static int split_csv(const char *line, size_t len, char *buf, field_t *f, int max) {
  int n = 0;
  size_t i = 0, o = 0;
  while (1) {
    if (n == max) return max + 1;
    size_t start = o;
    if (i < len && line[i] == '"') {
      i++;
      while (1) {
        if (i >= len) return -1;
        if (line[i] == '"') {
          if (i + 1 < len && line[i + 1] == '"') {
            buf[o++] = '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        buf[o++] = line[i++];
      }
      if (i < len && line[i] != ',') return -1;
    } else {
      while (i < len && line[i] != ',') {
        if (line[i] == '"') return -1;
        buf[o++] = line[i++];
      }
    }
    f[n].p = buf + start;
    f[n].len = o - start;
    n++;
    if (i >= len) return n;
    i++; /* the comma */
  }
}

static int csv_map_header(csv_map_t *m, const char *line, size_t len, char *errstr,
                          size_t errstr_size) {
  static const char *const what[INPUT_F__COUNT] = {"user", "category", "time", "item", "action"};
  char *buf = malloc(len + 1);
  field_t *f = malloc(CSV_MAX_COLUMNS * sizeof *f);
  int rc = 0;
  if (!buf || !f) {
    rc = IX_ENOMEM;
    goto out;
  }
  int n = split_csv(line, len, buf, f, CSV_MAX_COLUMNS);
  if (n < 0 || n > CSV_MAX_COLUMNS) {
    rc = ix_fail(IX_EMALFORMED, errstr, errstr_size,
                 "the header line is not CSV with at most %d columns", CSV_MAX_COLUMNS);
    goto out;
  }
  m->n_cols = n;
  for (int k = 0; k < INPUT_F__COUNT; k++) {
    m->col[k] = -1;
    const char *name = m->map->field[k];
    if (k == INPUT_F_TIME && m->map->time_format == TIMEFMT_KAFKA) {
      rc = ix_fail(IX_EINVAL, errstr, errstr_size, "a CSV file has no Kafka timestamps: "
                   "use --time-format ms, s or iso8601");
      goto out;
    }
    for (int c = 0; c < n; c++)
      if (f[c].len == strlen(name) && memcmp(f[c].p, name, f[c].len) == 0) m->col[k] = c;
    if (m->col[k] < 0 && k <= INPUT_F_TIME) {
      rc = ix_fail(IX_EINVAL, errstr, errstr_size,
                   "the header has no %s column '%s' (header: %.*s; set it with --%s-column)",
                   what[k], name, (int)(len > 200 ? 200 : len), line, what[k]);
      goto out;
    }
  }
out:
  free(buf);
  free(f);
  return rc;
}

static int csv_id(const field_t *f, const char *col, int required, uint64_t *out, char *reason,
                  size_t reason_size) {
  if (f->len == 0) {
    if (!required) return 0;
    return ix_fail(IX_EMALFORMED, reason, reason_size, "%s is empty", col);
  }
  if (f->len > CODEC_MAX_STRID)
    return ix_fail(IX_EMALFORMED, reason, reason_size, "%s is longer than %d bytes", col,
                   CODEC_MAX_STRID);
  *out = codec_hash_id(f->p, f->len);
  return 0;
}

static int csv_time(const csv_map_t *m, const field_t *f, const char *col, int64_t *ms,
                    char *reason, size_t reason_size) {
  int v = (int)(f->len > 30 ? 30 : f->len);
  if (f->len == 0) return ix_fail(IX_EMALFORMED, reason, reason_size, "%s is empty", col);
  if (m->map->time_format == TIMEFMT_ISO8601) {
    char why[120];
    if (timefmt_parse(f->p, f->len, 1, (int)(m->utc_offset_s / 60), ms, why, sizeof why))
      return ix_fail(IX_EMALFORMED, reason, reason_size, "%s '%.*s': %s", col, v, f->p, why);
    return 0;
  }
  char tmp[40];
  if (f->len >= sizeof tmp) return ix_fail(IX_EMALFORMED, reason, reason_size, "%s is too long", col);
  memcpy(tmp, f->p, f->len);
  tmp[f->len] = '\0';
  char *end;
  errno = 0;
  if (m->map->time_format == TIMEFMT_S) {
    double secs = strtod(tmp, &end);
    if (errno || *end || !(secs >= 0 && secs < 9.2e15))
      return ix_fail(IX_EMALFORMED, reason, reason_size, "%s '%.*s' is not seconds since the epoch",
                     col, v, f->p);
    *ms = (int64_t)(secs * 1000.0 + 0.5);
    return 0;
  }
  long long x = strtoll(tmp, &end, 10);
  if (errno || *end || x < 0 || tmp[0] == '+' || tmp[0] == '-')
    return ix_fail(IX_EMALFORMED, reason, reason_size, "%s '%.*s' is not ms since the epoch", col,
                   v, f->p);
  *ms = x;
  return 0;
}

static int parse_csv_line(const csv_map_t *m, const char *line, size_t len, char *buf,
                          field_t *f, event_t *ev, char *reason, size_t reason_size) {
  if (len == 0) return ix_fail(IX_EMALFORMED, reason, reason_size, "empty line");
  int n = split_csv(line, len, buf, f, CSV_MAX_COLUMNS);
  if (n < 0) return ix_fail(IX_EMALFORMED, reason, reason_size, "a quoted field is not closed");
  if (n != m->n_cols)
    return ix_fail(IX_EMALFORMED, reason, reason_size, "%d fields, the header has %d", n > CSV_MAX_COLUMNS ? CSV_MAX_COLUMNS + 1 : n,
                   m->n_cols);
  const char *const *col = (const char *const *)m->map->field;
  int rc;
  if ((rc = csv_id(&f[m->col[INPUT_F_USER]], col[INPUT_F_USER], 1, &ev->user_id, reason, reason_size)) ||
      (rc = csv_id(&f[m->col[INPUT_F_CATEGORY]], col[INPUT_F_CATEGORY], 1, &ev->category_id, reason,
                   reason_size)) ||
      (rc = csv_time(m, &f[m->col[INPUT_F_TIME]], col[INPUT_F_TIME], &ev->ts_ms, reason, reason_size)))
    return rc;
  if (m->col[INPUT_F_ITEM] >= 0 &&
      (rc = csv_id(&f[m->col[INPUT_F_ITEM]], col[INPUT_F_ITEM], 0, &ev->item_id, reason, reason_size)))
    return rc;
  ev->action = ACTION_OTHER;
  if (m->col[INPUT_F_ACTION] >= 0) {
    const field_t *a = &f[m->col[INPUT_F_ACTION]];
    ev->action = codec_action_from_name(a->p, a->len);
    for (size_t i = 0; i < m->map->n_actions; i++)
      if (strlen(m->map->actions[i].from) == a->len &&
          memcmp(m->map->actions[i].from, a->p, a->len) == 0)
        ev->action = m->map->actions[i].to;
  }
  return 0;
}

/* Counts a malformed line under its reason with the quoted values left out. */
static void count_reason(importer_stats_t *stats, const char *reason) {
  char cls[sizeof stats->by_reason[0].reason];
  size_t o = 0;
  int quoted = 0;
  for (const char *p = reason; *p && o + 6 < sizeof cls; p++) { /* room for '...' and the NUL */
    if (*p == '\'') {
      if (!quoted) {
        memcpy(cls + o, "'...'", 5);
        o += 5;
      }
      quoted = !quoted;
      continue;
    }
    if (!quoted) cls[o++] = *p;
  }
  cls[o] = '\0';
  for (size_t i = 0; i < stats->n_reasons; i++)
    if (strcmp(stats->by_reason[i].reason, cls) == 0) {
      stats->by_reason[i].n++;
      return;
    }
  if (stats->n_reasons == IMPORT_MAX_REASONS) {
    snprintf(stats->by_reason[IMPORT_MAX_REASONS - 1].reason, sizeof cls, "other reasons");
    stats->by_reason[IMPORT_MAX_REASONS - 1].n++;
    return;
  }
  snprintf(stats->by_reason[stats->n_reasons].reason, sizeof cls, "%s", cls);
  stats->by_reason[stats->n_reasons++].n = 1;
}

/* ---------------------------------------------------------------- import */

typedef struct {
  event_t ev;
  uint64_t line;
} line_event_t;

static int cmp_line_event(const void *a, const void *b) {
  const line_event_t *x = a, *y = b;
  if (x->ev.ts_ms != y->ev.ts_ms) return x->ev.ts_ms < y->ev.ts_ms ? -1 : 1;
  return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t count_distinct(uint64_t *v, size_t n) {
  if (!n) return 0;
  qsort(v, n, sizeof *v, cmp_u64);
  uint64_t d = 1;
  for (size_t i = 1; i < n; i++) d += v[i] != v[i - 1];
  return d;
}


/* The input as a stdio stream read through zlib, so a gzip-compressed CSV
 * (the repository's bundled samples) and a plain one read the same way;
 * zlib passes bytes that are not gzip through unchanged. A damaged or
 * truncated gzip stream is a read error (ferror), never a short input. */
static ssize_t gz_read(void *cookie, char *buf, size_t size) {
  gzFile gz = cookie;
  int n = gzread(gz, buf, size > INT_MAX ? INT_MAX : (unsigned)size);
  if (n == 0) {
    /* at the end zlib reports a stream cut short as Z_BUF_ERROR, not -1 */
    int zerr = Z_OK;
    gzerror(gz, &zerr);
    if (zerr != Z_OK) n = -1;
  }
  return n < 0 ? -1 : n;
}

static int gz_close(void *cookie) { return gzclose_r((gzFile)cookie) == Z_OK ? 0 : EOF; }

static FILE *open_input(const char *path) {
  gzFile gz = gzopen(path, "rb");
  if (!gz) return NULL;
  gzbuffer(gz, 1u << 20);
  FILE *in = fopencookie(gz, "rb", (cookie_io_functions_t){.read = gz_read, .close = gz_close});
  if (!in) {
    int e = errno;
    gzclose_r(gz);
    errno = e;
    return NULL;
  }
  setvbuf(in, NULL, _IOFBF, 1 << 20);
  return in;
}

static int is_header(const char *line, size_t len) {
  return len >= 8 && memcmp(line, "user_id,", 8) == 0;
}

int importer_run(const importer_opts_t *opts, importer_stats_t *stats, char *errstr,
                 size_t errstr_size) {
  memset(stats, 0, sizeof *stats);
  if (opts->partitions <= 0)
    return ix_fail(IX_EINVAL, errstr, errstr_size, "partitions must be positive, not %d",
                (int)opts->partitions);
  if (opts->format != IMPORT_TAOBAO && opts->format != IMPORT_TMALL && opts->format != IMPORT_CSV)
    return ix_fail(IX_EINVAL, errstr, errstr_size, "unknown input format %d", (int)opts->format);
  stats->partitions = opts->partitions;
  input_opts_t csv_defaults;
  int have_defaults = 0;
  csv_map_t cm = {.map = opts->csv, .utc_offset_s = opts->utc_offset_s};
  char *csv_buf = NULL;
  field_t *csv_fields = NULL;
  if (opts->format == IMPORT_CSV && !cm.map) {
    if (importer_csv_defaults(&csv_defaults)) return IX_ENOMEM;
    have_defaults = 1;
    cm.map = &csv_defaults;
  }

  FILE *in = NULL;
  line_event_t *evs = NULL;
  uint64_t *ids = NULL;
  int64_t *next_off = NULL;
  char *line = NULL;
  rec_writer_t *w = NULL;
  codec_buf_t val = {0};
  size_t n_evs = 0, cap_evs = 0, line_cap = 0;
  int rc = 0;

  errno = 0;
  in = open_input(opts->input);
  if (!in) {
    rc = ix_fail(errno == ENOENT ? IX_ENOENT : IX_ESYS, errstr, errstr_size, "cannot open %s: %s",
              opts->input, strerror(errno));
    goto out;
  }
  ssize_t got;
  while ((got = getline(&line, &line_cap, in)) >= 0) {
    size_t len = (size_t)got;
    stats->lines++;
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--;
    if (opts->format == IMPORT_CSV && stats->lines == 1) {
      if ((rc = csv_map_header(&cm, line, len, errstr, errstr_size))) goto out;
      csv_fields = malloc(CSV_MAX_COLUMNS * sizeof *csv_fields);
      if (!csv_fields) {
        rc = IX_ENOMEM;
        goto out;
      }
      continue;
    }
    if (stats->lines == 1 && is_header(line, len)) continue;
    char reason[sizeof stats->bad[0].reason];
    event_t ev;
    int bad;
    if (opts->format == IMPORT_CSV) {
      char *b = realloc(csv_buf, len + 1);
      if (!b) {
        rc = ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory");
        goto out;
      }
      csv_buf = b;
      memset(&ev, 0, sizeof ev);
      bad = parse_csv_line(&cm, line, len, csv_buf, csv_fields, &ev, reason, sizeof reason);
      if (bad) memset(&ev, 0, sizeof ev);
    } else {
      bad = importer_parse_line(opts->format, line, len, &ev, reason, sizeof reason);
    }
    if (bad) {
      count_reason(stats, reason);
      if (stats->n_bad_kept < IMPORT_MAX_REPORTED) {
        stats->bad[stats->n_bad_kept].line = stats->lines;
        memcpy(stats->bad[stats->n_bad_kept].reason, reason, sizeof reason);
        stats->n_bad_kept++;
      }
      stats->malformed++;
      continue;
    }
    if (n_evs == cap_evs) {
      size_t cap = cap_evs ? cap_evs * 2 : 4096;
      line_event_t *p = realloc(evs, cap * sizeof *p);
      if (!p) {
        rc = ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory after %zu events", n_evs);
        goto out;
      }
      evs = p;
      cap_evs = cap;
    }
    evs[n_evs].ev = ev;
    evs[n_evs].line = stats->lines;
    n_evs++;
  }
  if (ferror(in)) {
    rc = ix_fail(IX_EIO, errstr, errstr_size, "read error on %s after line %llu", opts->input,
              (unsigned long long)stats->lines);
    goto out;
  }
  if (opts->format == IMPORT_CSV && stats->lines == 0) {
    rc = ix_fail(IX_EMALFORMED, errstr, errstr_size, "%s is empty (a CSV import needs a header line)",
                 opts->input);
    goto out;
  }
  uint64_t data_lines = stats->malformed + n_evs;
  if (!opts->strict && stats->malformed &&
      (n_evs == 0 || (opts->max_malformed_share > 0 &&
                      (double)stats->malformed > opts->max_malformed_share * (double)data_lines))) {
    const char *hint = opts->format == IMPORT_CSV ? "; check the column mapping and --time-format" : "";
    if (n_evs == 0)
      rc = ix_fail(IX_EMALFORMED, errstr, errstr_size,
                   "%s: every one of the %llu data lines is malformed (nothing written)%s",
                   opts->input, (unsigned long long)stats->malformed, hint);
    else
      rc = ix_fail(IX_EMALFORMED, errstr, errstr_size,
                   "%s: %llu of %llu data lines are malformed, more than --max-malformed %g allows "
                   "(nothing written)%s",
                   opts->input, (unsigned long long)stats->malformed, (unsigned long long)data_lines,
                   opts->max_malformed_share, hint);
    goto out;
  }
  if (opts->strict && stats->malformed) {
    rc = ix_fail(IX_EMALFORMED, errstr, errstr_size,
              "%s: %llu malformed line(s), the first at line %llu: %s (--strict: nothing written)",
              opts->input, (unsigned long long)stats->malformed,
              (unsigned long long)stats->bad[0].line, stats->bad[0].reason);
    goto out;
  }

  /* Event-time order; ties keep input order (line numbers are unique). */
  if (n_evs) qsort(evs, n_evs, sizeof *evs, cmp_line_event);

  ids = malloc((n_evs ? n_evs : 1) * sizeof *ids);
  if (!ids) {
    rc = ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory");
    goto out;
  }
  for (int which = 0; which < 3; which++) {
    for (size_t i = 0; i < n_evs; i++)
      ids[i] = which == 0 ? evs[i].ev.user_id : which == 1 ? evs[i].ev.item_id
                                                           : evs[i].ev.category_id;
    uint64_t d = count_distinct(ids, n_evs);
    if (which == 0) stats->users = d;
    else if (which == 1) stats->items = d;
    else stats->categories = d;
  }
  for (size_t i = 0; i < n_evs; i++) stats->actions[evs[i].ev.action]++;
  if (n_evs) {
    stats->min_ts_ms = evs[0].ev.ts_ms;
    stats->max_ts_ms = evs[n_evs - 1].ev.ts_ms;
  }
  if (!opts->output) {
    stats->events = n_evs;
    goto out;
  }

  next_off = calloc((size_t)opts->partitions, sizeof *next_off);
  if (!next_off) {
    rc = ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory");
    goto out;
  }
  if ((rc = recfile_writer_open(opts->output, RECFILE_CREATE, &w, errstr, errstr_size))) goto out;
  for (size_t i = 0; i < n_evs; i++) {
    char key[CODEC_KEY_MAX];
    size_t key_len = codec_user_key(evs[i].ev.user_id, key);
    if ((rc = codec_encode_event(&evs[i].ev, &val))) {
      ix_fail(rc, errstr, errstr_size, "cannot encode the event of line %llu: %s",
           (unsigned long long)evs[i].line, ix_strerror(rc));
      goto out;
    }
    rec_t rec = {0};
    rec.partition = importer_partition(key, key_len, opts->partitions);
    rec.offset = next_off[rec.partition]++;
    rec.ts_ms = evs[i].ev.ts_ms;
    rec.key = key;
    rec.key_len = key_len;
    rec.value = val.data;
    rec.value_len = val.len;
    if ((rc = recfile_write(w, &rec))) {
      ix_fail(rc, errstr, errstr_size, "cannot write %s: %s", opts->output, ix_strerror(rc));
      goto out;
    }
    stats->events++;
  }
  rc = recfile_writer_close(w);
  w = NULL;
  if (rc) ix_fail(rc, errstr, errstr_size, "cannot finish %s: %s", opts->output, ix_strerror(rc));

out:
  if (w) recfile_writer_close(w);
  if (in) fclose(in);
  if (have_defaults) input_opts_free(&csv_defaults);
  free(csv_buf);
  free(csv_fields);
  free(line);
  free(evs);
  free(ids);
  free(next_off);
  codec_buf_free(&val);
  return rc;
}

/* ---------------------------------------------------------------- summary */

static const char *fmt_count(uint64_t v, char buf[32]) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
  int o = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = tmp[i];
  }
  buf[o] = '\0';
  return buf;
}

static void fmt_time(int64_t ms, long offset_s, char buf[32]) {
  time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0)) + offset_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, 32, "%Y-%m-%d %H:%M", &tm);
}

void importer_print_summary(const importer_stats_t *s, FILE *out) {
  importer_print_summary_tz(s, 0, out);
}

void importer_print_summary_tz(const importer_stats_t *s, int64_t utc_offset_s, FILE *out) {
  char a[32], b[32], c[32], d[32], e[32];
  fprintf(out, "events      %s\n", fmt_count(s->events, a));
  fprintf(out, "users       %s\n", fmt_count(s->users, a));
  fprintf(out, "items       %s\n", fmt_count(s->items, a));
  fprintf(out, "categories  %s\n", fmt_count(s->categories, a));
  fprintf(out, "actions     view %s  cart %s  fav %s  buy %s  other %s\n",
          fmt_count(s->actions[ACTION_VIEW], a), fmt_count(s->actions[ACTION_CART], b),
          fmt_count(s->actions[ACTION_FAV], c), fmt_count(s->actions[ACTION_BUY], d),
          fmt_count(s->actions[ACTION_OTHER], e));
  if (s->events || s->min_ts_ms || s->max_ts_ms) {
    char zone[16] = "UTC";
    int64_t z = utc_offset_s < 0 ? -utc_offset_s : utc_offset_s;
    if (utc_offset_s)
      snprintf(zone, sizeof zone, "%c%02d:%02d", utc_offset_s < 0 ? '-' : '+', (int)(z / 3600),
               (int)(z % 3600 / 60));
    fmt_time(s->min_ts_ms, (long)utc_offset_s, a);
    fmt_time(s->max_ts_ms, (long)utc_offset_s, b);
    fprintf(out, "time span   %s %s .. %s %s\n", a, zone, b, zone);
  } else {
    fprintf(out, "time span   (no events)\n");
  }
  fprintf(out, "lines       %s\n", fmt_count(s->lines, a));
  fprintf(out, "malformed   %s\n", fmt_count(s->malformed, a));
  for (size_t i = 0; i < s->n_reasons; i++)
    fprintf(out, "            %s  %s\n", fmt_count(s->by_reason[i].n, a), s->by_reason[i].reason);
  fprintf(out, "partitions  %d\n", (int)s->partitions);
}
