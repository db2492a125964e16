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
  if (opts->format != IMPORT_TAOBAO && opts->format != IMPORT_TMALL)
    return ix_fail(IX_EINVAL, errstr, errstr_size, "unknown input format %d", (int)opts->format);
  stats->partitions = opts->partitions;

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
    if (stats->lines == 1 && is_header(line, len)) continue;
    char reason[sizeof stats->bad[0].reason];
    event_t ev;
    if (importer_parse_line(opts->format, line, len, &ev, reason, sizeof reason)) {
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
    fmt_time(s->min_ts_ms, 0, a);
    fmt_time(s->max_ts_ms, 0, b);
    fprintf(out, "time span   %s UTC .. %s UTC\n", a, b);
    fmt_time(s->min_ts_ms, 8 * 3600, a);
    fmt_time(s->max_ts_ms, 8 * 3600, b);
    fprintf(out, "            %s UTC+8 .. %s UTC+8\n", a, b);
  } else {
    fprintf(out, "time span   (no events)\n");
  }
  fprintf(out, "lines       %s\n", fmt_count(s->lines, a));
  fprintf(out, "malformed   %s\n", fmt_count(s->malformed, a));
  fprintf(out, "partitions  %d\n", (int)s->partitions);
}
