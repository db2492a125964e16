/* Record file -> event array for interestctl train/eval, and the split
 * windows of the evaluation protocol. */
#include "ctl/ctlevents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "ctl/ctlutil.h"
#include "daemon/config.h"
#include "stream/codec.h"
#include "stream/recfile.h"

int ctlev_input_file(input_opts_t *o, const char *cmd, const char *path) {
  config_t *cfg = NULL;
  char err[600];
  if (config_load(path, NULL, 0, &cfg, err, sizeof err)) {
    fprintf(stderr, "interestctl %s: %s\n", cmd, err);
    return 2;
  }
  input_opts_t copy;
  int rc = input_opts_copy(&copy, &cfg->input);
  config_destroy(cfg);
  if (rc) return 2;
  input_opts_free(o);
  *o = copy;
  return 0;
}

int ctlev_input_kv(input_opts_t *o, const char *cmd, const char *kv) {
  const char *eq = strchr(kv, '=');
  char key[64], why[300];
  if (!eq || (size_t)(eq - kv) >= sizeof key) {
    fprintf(stderr, "interestctl %s: --input takes KEY=VALUE (an [input] key), not '%s'\n", cmd, kv);
    return 2;
  }
  memcpy(key, kv, (size_t)(eq - kv));
  key[eq - kv] = '\0';
  if (input_opts_set(o, key, eq + 1, why, sizeof why)) {
    fprintf(stderr, "interestctl %s: --input %s: %s\n", cmd, kv, why);
    return 2;
  }
  return 0;
}

int ctlev_input_option(input_opts_t *o, int *have, int opt, const char *cmd, const char *arg) {
  if (!*have && input_opts_init(o)) return 1;
  *have = 1;
  if (opt == 'I' ? ctlev_input_kv(o, cmd, arg) : ctlev_input_file(o, cmd, arg)) {
    input_opts_free(o);
    *have = 0;
    return 2;
  }
  return 0;
}

/* A window time: checked now, read again in --tz by ctlev_args_finish(). */
static int time_option(const char *arg, const char **keep, int64_t *ms) {
  *keep = arg;
  return ctlutil_parse_time_ms(arg, ms) < 0 ? -1 : 0;
}

int ctlev_args_option(ctlev_args_t *a, int opt, const char *arg, const char *cmd,
                      void (*usage)(FILE *)) {
  switch (opt) {
  case 'e': a->events_path = arg; return 0;
  case 'd':
    if (a->n_drop == CTLEV_MAX_DROP || ctlutil_parse_u64(arg, &a->drop[a->n_drop]) < 0) return -1;
    a->n_drop++;
    return 0;
  case 'z': return ctlev_parse_offset(arg, &a->tz) < 0 ? -1 : 0;
  case 'F':
  case 'I': return ctlev_input_option(&a->input, &a->have_input, opt, cmd, arg);
  case 'D': return time_option(arg, &a->dev_arg, &a->win.dev_start_ms);
  case 'T': return time_option(arg, &a->test_arg, &a->win.test_start_ms);
  case 'E': return time_option(arg, &a->end_arg, &a->win.test_end_ms);
  default:
    ctlev_args_free(a);
    usage(stderr);
    return 2;
  }
}

void ctlev_args_finish(ctlev_args_t *a) {
  if (a->dev_arg) ctlutil_parse_time_ms_tz(a->dev_arg, a->tz, &a->win.dev_start_ms);
  if (a->test_arg) ctlutil_parse_time_ms_tz(a->test_arg, a->tz, &a->win.test_start_ms);
  if (a->end_arg) ctlutil_parse_time_ms_tz(a->end_arg, a->tz, &a->win.test_end_ms);
}

int ctlev_args_load(ctlev_args_t *a, event_t **out, size_t *n_out, char *errstr,
                    size_t errstr_size) {
  int rc = ctlev_load_input(a->events_path, a->have_input ? &a->input : NULL, a->drop,
                            a->n_drop, out, n_out, errstr, errstr_size);
  ctlev_args_free(a);
  return rc;
}

void ctlev_args_free(ctlev_args_t *a) {
  if (a->have_input) input_opts_free(&a->input);
  a->have_input = 0;
}

int ctlev_load_input(const char *path, const input_opts_t *input, const uint64_t *drop,
                     size_t n_drop, event_t **out, size_t *n_out, char *errstr,
                     size_t errstr_size) {
  *out = NULL;
  *n_out = 0;
  rec_reader_t *r = NULL;
  input_t *in = NULL;
  int rc;
  if (input && (rc = input_new(input, &in, errstr, errstr_size))) return rc;
  rc = recfile_reader_open(path, &r, errstr, errstr_size);
  if (rc < 0) {
    input_destroy(in);
    return rc;
  }
  size_t n = 0, cap = 0;
  event_t *ev = NULL;
  rec_t rec;
  char why[256];
  while ((rc = recfile_read(r, &rec)) == 0) {
    event_t e;
    if ((rc = input_decode(in, &rec, &e, why, sizeof why)) < 0) {
      snprintf(errstr, errstr_size, "%s: record at byte %llu is not an event: %s", path,
               (unsigned long long)recfile_reader_error_offset(r), why);
      goto err;
    }
    int skip = 0;
    for (size_t i = 0; i < n_drop; i++) skip |= e.user_id == drop[i];
    if (skip) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 65536;
      event_t *q = realloc(ev, cap * sizeof *ev);
      if (!q) {
        rc = IX_ENOMEM;
        snprintf(errstr, errstr_size, "out of memory reading %s", path);
        goto err;
      }
      ev = q;
    }
    ev[n++] = e;
  }
  if (rc != IX_EEOF) {
    snprintf(errstr, errstr_size, "%s: damaged record at byte %llu: %s", path,
             (unsigned long long)recfile_reader_error_offset(r), ix_strerror(rc));
    goto err;
  }
  recfile_reader_close(r);
  input_destroy(in);
  if (n == 0) {
    free(ev);
    snprintf(errstr, errstr_size, "%s holds no events", path);
    return IX_EINVAL;
  }
  *out = ev;
  *n_out = n;
  return 0;
err:
  recfile_reader_close(r);
  input_destroy(in);
  free(ev);
  return rc;
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void ctlev_windows(const event_t *ev, size_t n, int64_t utc_offset_s, ctlev_windows_t *w) {
  const int64_t day = 86400000;
  int64_t mx = INT64_MIN;
  for (size_t i = 0; i < n; i++)
    if (ev[i].ts_ms > mx) mx = ev[i].ts_ms;
  int64_t off = utc_offset_s * 1000;
  int64_t last_day = floor_div(mx + off, day) * day - off;
  if (w->test_start_ms == 0) w->test_start_ms = last_day;
  if (w->test_end_ms == 0) w->test_end_ms = w->test_start_ms + day;
  if (w->dev_start_ms == 0) w->dev_start_ms = w->test_start_ms - day;
}

int ctlev_parse_offset(const char *s, int64_t *out_s) {
  if (!s || !*s) return IX_EINVAL;
  if (strcmp(s, "Z") == 0 || strcmp(s, "0") == 0) {
    *out_s = 0;
    return 0;
  }
  int hh, mm;
  char sign, tail;
  if (sscanf(s, "%c%2d:%2d%c", &sign, &hh, &mm, &tail) != 3 || (sign != '+' && sign != '-') ||
      hh > 14 || mm > 59 || hh < 0 || mm < 0)
    return IX_EINVAL;
  *out_s = (sign == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
  return 0;
}

void ctlev_fmt_time(int64_t ms, int64_t utc_offset_s, char *buf, size_t n) {
  time_t t = (time_t)floor_div(ms, 1000) + (time_t)utc_offset_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  char tz[16];
  int64_t a = utc_offset_s < 0 ? -utc_offset_s : utc_offset_s;
  snprintf(tz, sizeof tz, "%c%02d:%02d", utc_offset_s < 0 ? '-' : '+', (int)(a / 3600),
           (int)(a % 3600 / 60));
  snprintf(buf, n, "%04d-%02d-%02d %02d:%02d %s", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tz);
}
