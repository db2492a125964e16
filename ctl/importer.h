/* interestctl import: real CSV data sets -> record files of events keyed by
 * user id (docs/FORMATS.md, "Importer"). */
#ifndef IX_CTL_IMPORTER_H
#define IX_CTL_IMPORTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/event.h"
#include "stream/input.h"

typedef enum {
  IMPORT_TAOBAO = 0, /* UserBehavior.csv: user,item,category,pv|cart|fav|buy,unix seconds */
  IMPORT_TMALL = 1,  /* user_log_format1.csv: header; user,item,cat,seller,brand,mmdd,0..3 */
  IMPORT_CSV = 2,    /* any CSV with a header, columns named by importer_opts_t.csv */
} import_format_t;

#define IMPORT_DEFAULT_PARTITIONS 8
#define IMPORT_TMALL_YEAR 2015       /* user_log_format1 has no year; IJCAI-15 is 2015 */
#define IMPORT_TMALL_UTC_OFFSET_S (8 * 3600) /* days start at midnight UTC+8 */
#define IMPORT_MAX_REPORTED 10       /* malformed lines kept with their reasons */
#define IMPORT_MAX_REASONS 16        /* distinct malformed-line reasons counted */

typedef struct {
  import_format_t format;
  const char *input;   /* CSV path; gzip-compressed or plain */
  const char *output;  /* record file path, created or truncated; NULL = parse and count only */
  int32_t partitions;  /* > 0 */
  int strict;          /* any malformed line fails the import (IX_EMALFORMED), nothing written */
  /* A file whose every data line is malformed always fails (IX_EMALFORMED,
   * nothing written); with max_malformed_share > 0, so does one where more
   * than this share (0..1) of the data lines is malformed. */
  double max_malformed_share;
  /* IMPORT_CSV: the mapping, as the daemon's [input] JSON mapping: field[]
   * are header column names, time_format ms|s|iso8601 (not kafka), the
   * action map. NULL = importer_csv_defaults(). Borrowed. */
  const input_opts_t *csv;
  int64_t utc_offset_s; /* IMPORT_CSV: zone of iso8601 times written without one */
} importer_opts_t;

typedef struct {
  uint64_t line;       /* 1-based line number in the input */
  char reason[96];
} import_bad_line_t;

typedef struct {
  uint64_t lines;          /* lines read, header included */
  uint64_t events;         /* records written */
  uint64_t malformed;      /* lines refused (all counted, first IMPORT_MAX_REPORTED kept) */
  uint64_t users, items, categories; /* distinct ids among the events */
  uint64_t actions[ACTION__COUNT];
  int64_t min_ts_ms, max_ts_ms;      /* 0 when there are no events */
  int32_t partitions;
  uint64_t n_bad_kept;
  import_bad_line_t bad[IMPORT_MAX_REPORTED];
  /* malformed lines counted by reason (the reason with its quoted values
   * left out); reasons beyond IMPORT_MAX_REASONS count in the last one */
  struct {
    char reason[96];
    uint64_t n;
  } by_reason[IMPORT_MAX_REASONS];
  size_t n_reasons;
} importer_stats_t;

/* The CSV mapping for the layout
 *   event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
 * (times like "2019-10-01 00:00:00 UTC"; event_type view, cart,
 * remove_from_cart, purchase): user_id, category_id, product_id, event_type,
 * event_time, iso8601, action_map "purchase=buy, remove_from_cart=other".
 * Free with input_opts_free(). Returns 0 or IX_ENOMEM. */
int importer_csv_defaults(input_opts_t *o);

/* Parses the whole input, sorts the events by (event time, input line) and
 * writes one record per event: key = decimal user id, value = the event
 * message (stream/codec), partition = importer_partition() of the key,
 * offsets 0,1,2.. per partition, timestamp = event time. Holds all events in
 * memory (48 bytes each). Returns 0 or a negative IX_E* with errstr filled;
 * *stats is filled in both cases. */
int importer_run(const importer_opts_t *opts, importer_stats_t *stats, char *errstr,
                 size_t errstr_size);

/* Kafka's default partitioner for a non-empty key, bit for bit: Java
 * Utils.toPositive(Utils.murmur2(key)) % partitions, which is librdkafka's
 * "murmur2" / "murmur2_random" partitioner. partitions > 0. */
int32_t importer_partition(const void *key, size_t key_len, int32_t partitions);
/* Kafka's murmur2 (seed 0x9747b28c) of the bytes. */
uint32_t importer_murmur2(const void *key, size_t key_len);

/* Parses one CSV line (without its line ending) of the given format into
 * *ev. Returns 0, or IX_EMALFORMED with reason filled. Exposed for tests. */
int importer_parse_line(import_format_t format, const char *line, size_t len, event_t *ev,
                        char *reason, size_t reason_size);

/* Prints the summary of an import (as docs/FORMATS.md shows) to out, times
 * in UTC. */
void importer_print_summary(const importer_stats_t *stats, FILE *out);
/* The same with times at utc_offset_s east of UTC. */
void importer_print_summary_tz(const importer_stats_t *stats, int64_t utc_offset_s, FILE *out);

#endif
