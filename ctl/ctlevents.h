/* Loading a record file of events for the offline model commands
 * (interestctl train / eval), and the time windows of the evaluation
 * protocol (docs/MODEL.md). */
#ifndef IX_CTL_CTLEVENTS_H
#define IX_CTL_CTLEVENTS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/event.h"
#include "stream/input.h"

#define CTLEV_MAX_DROP 64

/* Read every record of a record file and decode its value as an event
 * (records in file order), as the daemon's [input] says (NULL = msgpack), so
 * a recorded JSON topic trains and evaluates as the daemon reads it. Users
 * in drop[0..n_drop) are left out. On success *out is malloc'd (free()). A
 * damaged record or an undecodable value fails with errstr naming the byte
 * offset. */
int ctlev_load_input(const char *path, const input_opts_t *input, const uint64_t *drop,
                     size_t n_drop, event_t **out, size_t *n_out, char *errstr,
                     size_t errstr_size);

/* --input-config FILE (the [input] section of an interestd.conf) and
 * --input KEY=VALUE (one [input] key, applied after the file) for the
 * offline commands. Returns 0, or 2 after printing "interestctl CMD: ..." to
 * stderr (a usage error). *o must be input_opts_init()ed. */
int ctlev_input_file(input_opts_t *o, const char *cmd, const char *path);
int ctlev_input_kv(input_opts_t *o, const char *cmd, const char *kv);
/* One --input-config (opt 'F') or --input (opt 'I') option: initialises *o
 * on first use (*have set), then applies arg. Returns 0; 1 when *o cannot be
 * initialised (out of memory); 2 after a usage error printed as above. On a
 * non-zero return *o is freed and *have cleared. */
int ctlev_input_option(input_opts_t *o, int *have, int opt, const char *cmd, const char *arg);

/* The protocol's windows: train < dev_start <= dev < test_start <= test <
 * test_end. Any value given as 0 is derived from the data: test = the last
 * calendar day (local time at utc_offset_s) holding events, dev = the day
 * before. */
typedef struct {
  int64_t dev_start_ms, test_start_ms, test_end_ms;
} ctlev_windows_t;
void ctlev_windows(const event_t *ev, size_t n, int64_t utc_offset_s, ctlev_windows_t *w);

/* The options the offline model commands (train, eval) share: where the
 * events come from, how they are read, and the time windows. A command puts
 * CTLEV_LONG_OPTIONS (and CTLEV_LONG_OPTION_TEST_END if it has a test end)
 * in its getopt_long table and hands every option that is not its own to
 * ctlev_args_option(). Zero-initialise; after parsing, ctlev_args_finish(),
 * then ctlev_args_load(). */
typedef struct {
  const char *events_path;        /* --events; borrowed from argv */
  uint64_t drop[CTLEV_MAX_DROP];  /* --drop-user (repeatable) */
  size_t n_drop;
  int64_t tz;                     /* --tz, seconds east of UTC */
  ctlev_windows_t win;            /* --dev-start --test-start --test-end; 0 = from the data */
  const char *dev_arg, *test_arg, *end_arg;
  input_opts_t input;             /* --input-config / --input: valid while have_input */
  int have_input;
} ctlev_args_t;

#define CTLEV_LONG_OPTIONS                                                                   \
  {"events", required_argument, 0, 'e'}, {"drop-user", required_argument, 0, 'd'},           \
      {"tz", required_argument, 0, 'z'}, {"dev-start", required_argument, 0, 'D'},          \
      {"test-start", required_argument, 0, 'T'}, {"input", required_argument, 0, 'I'},      \
      {"input-config", required_argument, 0, 'F'}
#define CTLEV_LONG_OPTION_TEST_END {"test-end", required_argument, 0, 'E'}

/* One getopt_long() result opt with its argument (optarg), for a command
 * whose own options are handled before: 0 when taken; -1 for an invalid
 * value (not reported: the command says so); otherwise an exit status with
 * its message on stderr: 2 and usage(stderr) for an option that is not one
 * of these (getopt's '?'), as ctlev_input_option() for --input(-config).
 * On an exit status a->input is freed. */
int ctlev_args_option(ctlev_args_t *a, int opt, const char *arg, const char *cmd,
                      void (*usage)(FILE *));
/* After the last option: reads the window times again in --tz (which may
 * come after them on the command line). */
void ctlev_args_finish(ctlev_args_t *a);
/* ctlev_load_input() of a->events_path as the options say; frees a->input. */
int ctlev_args_load(ctlev_args_t *a, event_t **out, size_t *n_out, char *errstr,
                    size_t errstr_size);
/* Frees a->input if held (ctlev_args_load() already did); idempotent. */
void ctlev_args_free(ctlev_args_t *a);

/* Parse "+08:00", "-05:30", "Z" or "0" into seconds east of UTC; 0 or IX_EINVAL. */
int ctlev_parse_offset(const char *s, int64_t *out_s);

/* "2017-12-02 00:00 +08:00" style rendering of an epoch-ms time at an offset. */
void ctlev_fmt_time(int64_t ms, int64_t utc_offset_s, char *buf, size_t n);

#endif
