/* ctl/importer: the Kafka-compatible partitioner, CSV line parsing, the
 * import of slices of the real data sets (tests/data, see its README) and of
 * hand-made malformed files, gzip-compressed input, the whole bundled Taobao
 * and Tmall files (data/, gzip) against
 * their SOURCE.md counts, and the train/dev/test splits. Expected figures for
 * the slices were computed independently with Python from the CSV files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/err.h"
#include "ctl/importer.h"
#include "ctl/split.h"
#include "stream/codec.h"
#include "stream/recfile.h"

static char g_dir[256];

static int setup(void **state) {
  snprintf(g_dir, sizeof g_dir, "/tmp/ix_test_importer.XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd);
}

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static void src_path(char *out, size_t n, const char *rel) {
  const char *src = getenv("IX_SOURCE_DIR");
  if (!src) fail_msg("IX_SOURCE_DIR is not set (ctest sets it)");
  snprintf(out, n, "%s/%s", src, rel);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------- partitioner */

static void test_partitioner_is_kafkas_murmur2(void **state) {
  /* Kafka's UtilsTest.testMurmur2 vectors (Java int results). */
  static const struct {
    const char *key;
    int32_t h;
  } java[] = {{"21", -973932308},
              {"foobar", -790332482},
              {"a-little-bit-long-string", -985981536},
              {"a-little-bit-longer-string", -1486304829},
              {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
              {"abc", 479470107}};
  for (size_t i = 0; i < sizeof java / sizeof java[0]; i++)
    assert_int_equal((int32_t)importer_murmur2(java[i].key, strlen(java[i].key)), java[i].h);
  /* librdkafka's own partitioner ("murmur2", and "murmur2_random" for non-NULL keys) */
  const int32_t counts[] = {1, 2, 3, 8, 12, 100, 1000};
  uint64_t x = 88172645463325252ULL;
  char key[64];
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t len = (size_t)snprintf(key, sizeof key, "%llu", (unsigned long long)(x >> (i % 60)));
    if (i % 3 == 0) { /* arbitrary bytes of every tail length */
      len = (size_t)(x % 40) + 1;
      for (size_t j = 0; j < len; j++) key[j] = (char)(x >> (j % 56));
    }
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
      int32_t want = rd_kafka_msg_partitioner_murmur2(NULL, key, len, counts[c], NULL, NULL);
      int32_t want2 = rd_kafka_msg_partitioner_murmur2_random(NULL, key, len, counts[c], NULL, NULL);
      int32_t got = importer_partition(key, len, counts[c]);
      assert_int_equal(got, want);
      assert_int_equal(got, want2);
    }
  }
}

/* ---------------------------------------------------------------- line parsing */

static void expect_line(import_format_t fmt, const char *line, int want_rc, const char *needle,
                        event_t *ev) {
  char reason[128] = "";
  int rc = importer_parse_line(fmt, line, strlen(line), ev, reason, sizeof reason);
  if (rc != want_rc) fail_msg("'%s': want %d, got %d (%s)", line, want_rc, rc, reason);
  if (needle && !strstr(reason, needle)) fail_msg("'%s': reason '%s' lacks '%s'", line, reason, needle);
}

static void test_parse_taobao_lines(void **state) {
  event_t ev;
  expect_line(IMPORT_TAOBAO, "1,2268318,2520377,pv,1511544070", 0, NULL, &ev);
  assert_true(ev.user_id == 1 && ev.item_id == 2268318 && ev.category_id == 2520377 &&
              ev.action == ACTION_VIEW && ev.ts_ms == 1511544070000);
  const char *acts[] = {"cart", "fav", "buy", "refund", "PV"};
  const action_t want[] = {ACTION_CART, ACTION_FAV, ACTION_BUY, ACTION_OTHER, ACTION_OTHER};
  for (int i = 0; i < 5; i++) {
    char line[64];
    snprintf(line, sizeof line, "1,2,3,%s,4", acts[i]);
    expect_line(IMPORT_TAOBAO, line, 0, NULL, &ev);
    assert_int_equal(ev.action, want[i]);
  }
  expect_line(IMPORT_TAOBAO, "18446744073709551615,1234567890123456789,0,pv,0", 0, NULL, &ev);
  assert_true(ev.user_id == UINT64_MAX && ev.item_id == 1234567890123456789ULL && ev.ts_ms == 0);
  expect_line(IMPORT_TAOBAO, "", IX_EMALFORMED, "empty line", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,3,pv", IX_EMALFORMED, "4 fields", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,3,pv,4,5", IX_EMALFORMED, "more than 5", &ev);
  expect_line(IMPORT_TAOBAO, "1", IX_EMALFORMED, "1 fields", &ev);
  expect_line(IMPORT_TAOBAO, "x1,2,3,pv,4", IX_EMALFORMED, "user_id 'x1'", &ev);
  expect_line(IMPORT_TAOBAO, "1,-2,3,pv,4", IX_EMALFORMED, "item_id '-2'", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,,pv,4", IX_EMALFORMED, "category_id ''", &ev);
  expect_line(IMPORT_TAOBAO, "18446744073709551616,2,3,pv,4", IX_EMALFORMED, "user_id", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,3,,4", IX_EMALFORMED, "behavior is empty", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,3,pv,-4", IX_EMALFORMED, "timestamp", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,3,pv,4.5", IX_EMALFORMED, "timestamp", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,3,pv,9223372036854776", IX_EMALFORMED, "timestamp", &ev);
  expect_line(IMPORT_TAOBAO, "1,2,3,pv, 4", IX_EMALFORMED, "timestamp", &ev);
  assert_true(ev.user_id == 0 && ev.ts_ms == 0); /* zeroed on failure */
}

static void test_parse_tmall_lines(void **state) {
  event_t ev;
  /* 0829 of 2015 at 00:00 UTC+8 = 2015-08-28 16:00 UTC */
  expect_line(IMPORT_TMALL, "328862,323294,833,2882,2661,0829,0", 0, NULL, &ev);
  assert_true(ev.user_id == 328862 && ev.item_id == 323294 && ev.category_id == 833 &&
              ev.action == ACTION_VIEW && ev.ts_ms == 1440777600000LL);
  const char *codes[] = {"1", "2", "3", "4", "x"};
  const action_t want[] = {ACTION_CART, ACTION_BUY, ACTION_FAV, ACTION_OTHER, ACTION_OTHER};
  for (int i = 0; i < 5; i++) {
    char line[64];
    snprintf(line, sizeof line, "1,2,3,4,,1111,%s", codes[i]); /* brand may be empty */
    expect_line(IMPORT_TMALL, line, 0, NULL, &ev);
    assert_int_equal(ev.action, want[i]);
    assert_true(ev.ts_ms == 1447171200000LL); /* 2015-11-11 00:00 UTC+8 */
  }
  expect_line(IMPORT_TMALL, "1,2,3,4,5,511,0", 0, NULL, &ev); /* leading zero dropped */
  assert_true(ev.ts_ms == 1431273600000LL);                  /* 2015-05-11 00:00 UTC+8 */
  expect_line(IMPORT_TMALL, "1,2,3,4,5,0829", IX_EMALFORMED, "6 fields", &ev);
  expect_line(IMPORT_TMALL, "1,2,3,4,5,1301,0", IX_EMALFORMED, "time_stamp '1301'", &ev);
  expect_line(IMPORT_TMALL, "1,2,3,4,5,0229,0", IX_EMALFORMED, "time_stamp '0229'", &ev);
  expect_line(IMPORT_TMALL, "1,2,3,4,5,0431,0", IX_EMALFORMED, "time_stamp", &ev);
  expect_line(IMPORT_TMALL, "1,2,3,4,5,0000,0", IX_EMALFORMED, "time_stamp", &ev);
  expect_line(IMPORT_TMALL, "1,2,3,4,5,11,0", IX_EMALFORMED, "time_stamp", &ev);
  expect_line(IMPORT_TMALL, "1,2,3,4,5,20151111,0", IX_EMALFORMED, "time_stamp", &ev);
  expect_line(IMPORT_TMALL, "1,2,3,4,5,1111,", IX_EMALFORMED, "action_type is empty", &ev);
  expect_line(IMPORT_TMALL, "1,2,c,4,5,1111,0", IX_EMALFORMED, "cat_id 'c'", &ev);
}

/* ---------------------------------------------------------------- import */

typedef struct {
  uint64_t n;
  uint64_t per_part_next[64];
  event_t first, last;
} readback_t;

/* Reads an imported file and checks every record's invariants: key is the
 * decimal user id, value decodes to an event whose time is the record
 * timestamp, partition is the murmur2 partition of the key, offsets count
 * 0,1,2.. per partition, and times never go backwards. */
static readback_t check_imported(const char *path, int32_t partitions) {
  readback_t rb;
  memset(&rb, 0, sizeof rb);
  rec_reader_t *r = NULL;
  char err[256] = "";
  if (recfile_reader_open(path, &r, err, sizeof err)) fail_msg("%s", err);
  rec_t rec;
  int rc;
  int64_t prev_ts = INT64_MIN;
  while ((rc = recfile_read(r, &rec)) == 0) {
    event_t ev;
    if (codec_decode_event(rec.value, rec.value_len, &ev, err, sizeof err)) fail_msg("%s", err);
    char key[32];
    int kl = snprintf(key, sizeof key, "%llu", (unsigned long long)ev.user_id);
    assert_int_equal(rec.key_len, kl);
    assert_memory_equal(rec.key, key, (size_t)kl);
    assert_true(rec.ts_ms == ev.ts_ms);
    assert_true(ev.ts_ms >= prev_ts);
    prev_ts = ev.ts_ms;
    assert_int_equal(rec.partition, rd_kafka_msg_partitioner_murmur2(NULL, key, (size_t)kl,
                                                                     partitions, NULL, NULL));
    assert_true(rec.offset == (int64_t)rb.per_part_next[rec.partition]++);
    if (rb.n == 0) rb.first = ev;
    rb.last = ev;
    rb.n++;
  }
  assert_int_equal(rc, IX_EEOF);
  recfile_reader_close(r);
  return rb;
}

static void test_import_taobao_slice(void **state) {
  char in[512], out[300];
  src_path(in, sizeof in, "tests/data/taobao_head1000.csv");
  tmp_path(out, sizeof out, "taobao1000.rec");
  importer_opts_t o = {.format = IMPORT_TAOBAO, .input = in, .output = out, .partitions = 8};
  importer_stats_t s;
  char err[512] = "";
  int rc = importer_run(&o, &s, err, sizeof err);
  if (rc) fail_msg("%s", err);
  /* Python: 1000 events, 11 users, 743 items, 219 categories, pv 906 cart 28 fav 43 buy 23 */
  assert_int_equal(s.lines, 1000);
  assert_int_equal(s.events, 1000);
  assert_int_equal(s.malformed, 0);
  assert_int_equal(s.users, 11);
  assert_int_equal(s.items, 743);
  assert_int_equal(s.categories, 219);
  assert_int_equal(s.actions[ACTION_VIEW], 906);
  assert_int_equal(s.actions[ACTION_CART], 28);
  assert_int_equal(s.actions[ACTION_FAV], 43);
  assert_int_equal(s.actions[ACTION_BUY], 23);
  assert_int_equal(s.actions[ACTION_OTHER], 0);
  assert_true(s.min_ts_ms == 1511539241000LL && s.max_ts_ms == 1512316753000LL);
  readback_t rb = check_imported(out, 8);
  assert_int_equal(rb.n, 1000);
  /* earliest is line 270, latest line 758 */
  assert_true(rb.first.user_id == 1000004 && rb.first.item_id == 2156592 &&
              rb.first.category_id == 3607361 && rb.first.ts_ms == 1511539241000LL);
  assert_true(rb.last.user_id == 1000028 && rb.last.item_id == 4406528 &&
              rb.last.category_id == 246844 && rb.last.ts_ms == 1512316753000LL);
  /* deterministic: a second import is byte-identical */
  char out2[300];
  tmp_path(out2, sizeof out2, "taobao1000b.rec");
  o.output = out2;
  assert_int_equal(importer_run(&o, &s, err, sizeof err), 0);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", out, out2);
  assert_int_equal(system(cmd), 0);
}

/* A gzip-compressed CSV imports to the same bytes as the plain one; a
 * truncated gzip stream fails the import instead of passing as a short file. */
static void test_import_gzip_input_reads_like_plain(void **state) {
  char in[512], gz[300], out[300], out_gz[300];
  src_path(in, sizeof in, "tests/data/taobao_head1000.csv");
  tmp_path(gz, sizeof gz, "head1000.csv.gz");
  tmp_path(out, sizeof out, "plain.rec");
  tmp_path(out_gz, sizeof out_gz, "gz.rec");
  FILE *f = fopen(in, "rb");
  assert_non_null(f);
  gzFile z = gzopen(gz, "wb9");
  assert_non_null(z);
  char buf[4096];
  size_t n, total = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    assert_int_equal(gzwrite(z, buf, (unsigned)n), (int)n);
    total += n;
  }
  fclose(f);
  assert_int_equal(gzclose(z), Z_OK);
  importer_opts_t o = {.format = IMPORT_TAOBAO, .input = in, .output = out, .partitions = 8};
  importer_stats_t s, s_gz;
  char err[512] = "";
  if (importer_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  o.input = gz;
  o.output = out_gz;
  if (importer_run(&o, &s_gz, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(s_gz.events, 1000);
  assert_int_equal(s_gz.lines, s.lines);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", out, out_gz);
  assert_int_equal(system(cmd), 0);
  /* cut the compressed file in half */
  struct stat st;
  assert_int_equal(stat(gz, &st), 0);
  assert_true(st.st_size > 100 && (size_t)st.st_size < total);
  assert_int_equal(truncate(gz, st.st_size / 2), 0);
  err[0] = 0;
  assert_int_equal(importer_run(&o, &s_gz, err, sizeof err), IX_EIO);
  assert_non_null(strstr(err, "read error"));
}

static void test_import_tmall_slice(void **state) {
  char in[512], out[300];
  src_path(in, sizeof in, "tests/data/tmall_head500.csv");
  tmp_path(out, sizeof out, "tmall500.rec");
  importer_opts_t o = {.format = IMPORT_TMALL, .input = in, .output = out, .partitions = 3};
  importer_stats_t s;
  char err[512] = "";
  if (importer_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  /* Python: header + 500 events, 3 users, 344 items, 60 categories, 0:454 2:41 3:5, 0520..1111 */
  assert_int_equal(s.lines, 501);
  assert_int_equal(s.events, 500);
  assert_int_equal(s.malformed, 0);
  assert_int_equal(s.users, 3);
  assert_int_equal(s.items, 344);
  assert_int_equal(s.categories, 60);
  assert_int_equal(s.actions[ACTION_VIEW], 454);
  assert_int_equal(s.actions[ACTION_BUY], 41);
  assert_int_equal(s.actions[ACTION_FAV], 5);
  assert_int_equal(s.actions[ACTION_CART], 0);
  assert_true(s.min_ts_ms == 1432051200000LL && s.max_ts_ms == 1447171200000LL);
  assert_int_equal(check_imported(out, 3).n, 500);
}

static void test_import_reports_malformed_lines_with_numbers(void **state) {
  char in[300], out[300];
  tmp_path(in, sizeof in, "bad.csv");
  tmp_path(out, sizeof out, "bad.rec");
  write_file(in,
             "5,100,1,pv,1000\r\n"          /* 1 ok */
             "5,2,3,pv\r\n"                 /* 2 wrong field count */
             "5,101,1,cart,1000\r\n"        /* 3 ok, same time as line 1 */
             "x,2,3,pv,100\r\n"             /* 4 bad number */
             "\r\n"                         /* 5 empty line */
             "6,102,2,buy,999\r\n"          /* 6 ok, earliest */
             "5,103,1,refund,1000\r\n"      /* 7 unknown behaviour: kept as other */
             "1,2,3,pv,100,9\r\n"           /* 8 extra field */
             "1,2,3,,100\r\n"               /* 9 empty behaviour */
             "18446744073709551616,2,3,pv,1\r\n" /* 10 id overflow */
             "6,104,2,fav,1000");           /* 11 ok, no final newline */
  importer_opts_t o = {.format = IMPORT_TAOBAO, .input = in, .output = out, .partitions = 4};
  importer_stats_t s;
  char err[512] = "";
  if (importer_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(s.lines, 11);
  assert_int_equal(s.events, 5);
  assert_int_equal(s.malformed, 6);
  assert_int_equal(s.n_bad_kept, 6);
  const uint64_t bad_lines[] = {2, 4, 5, 8, 9, 10};
  for (int i = 0; i < 6; i++) assert_int_equal(s.bad[i].line, bad_lines[i]);
  assert_non_null(strstr(s.bad[0].reason, "4 fields"));
  assert_non_null(strstr(s.bad[1].reason, "user_id 'x'"));
  assert_non_null(strstr(s.bad[2].reason, "empty line"));
  assert_int_equal(s.actions[ACTION_OTHER], 1);
  assert_int_equal(s.users, 2);
  /* time order, ties in file order: line 6 (t=999), then lines 1, 3, 7, 11 (t=1000) */
  rec_reader_t *r = NULL;
  assert_int_equal(recfile_reader_open(out, &r, NULL, 0), 0);
  const uint64_t items[] = {102, 100, 101, 103, 104};
  rec_t rec;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(recfile_read(r, &rec), 0);
    event_t ev;
    assert_int_equal(codec_decode_event(rec.value, rec.value_len, &ev, NULL, 0), 0);
    assert_true(ev.item_id == items[i]);
  }
  assert_int_equal(recfile_read(r, &rec), IX_EEOF);
  recfile_reader_close(r);
  /* the summary names the malformed count */
  char *text = NULL;
  size_t text_len = 0;
  FILE *mem = open_memstream(&text, &text_len);
  importer_print_summary(&s, mem);
  fclose(mem);
  assert_non_null(strstr(text, "malformed   6\n"));
  assert_non_null(strstr(text, "other 1\n"));
  free(text);

  /* --strict: the same file fails, naming the first bad line, and writes nothing */
  char out2[300];
  tmp_path(out2, sizeof out2, "strict.rec");
  o.output = out2;
  o.strict = 1;
  assert_int_equal(importer_run(&o, &s, err, sizeof err), IX_EMALFORMED);
  assert_non_null(strstr(err, "line 2"));
  assert_non_null(strstr(err, "6 malformed"));
  assert_false(exists(out2));
}

static void test_import_counts_all_but_keeps_first_malformed(void **state) {
  char in[300];
  tmp_path(in, sizeof in, "many_bad.csv");
  FILE *f = fopen(in, "wb");
  for (int i = 1; i <= 100; i++) fprintf(f, i % 4 == 0 ? "%d,1,1,pv,1\n" : "%d,oops\n", i);
  fclose(f);
  importer_opts_t o = {.format = IMPORT_TAOBAO, .input = in, .output = NULL, .partitions = 8};
  importer_stats_t s;
  char err[256];
  assert_int_equal(importer_run(&o, &s, err, sizeof err), 0);
  assert_int_equal(s.malformed, 75);
  assert_int_equal(s.events, 25);
  assert_int_equal(s.n_bad_kept, IMPORT_MAX_REPORTED);
  assert_int_equal(s.bad[0].line, 1);
  assert_int_equal(s.bad[3].line, 5);
  /* missing input and bad options */
  o.input = "/nonexistent/x.csv";
  assert_int_equal(importer_run(&o, &s, err, sizeof err), IX_ENOENT);
  o.partitions = 0;
  assert_int_equal(importer_run(&o, &s, err, sizeof err), IX_EINVAL);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The acceptance check: the whole bundled Taobao file, against SOURCE.md. */
static void test_import_whole_taobao_file_matches_source_md(void **state) {
  char in[512], out[300];
  src_path(in, sizeof in, "data/taobao_userbehavior_head100k/small_sample.csv.gz");
  if (!exists(in)) fail_msg("bundled data missing: %s", in);
  tmp_path(out, sizeof out, "taobao_all.rec");
  importer_opts_t o = {.format = IMPORT_TAOBAO, .input = in, .output = out, .partitions = 8};
  importer_stats_t s;
  char err[512] = "";
  double t0 = now_s();
  if (importer_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  print_message("whole Taobao file imported in %.0f ms\n", (now_s() - t0) * 1e3);
  assert_int_equal(s.events, 100001);
  assert_int_equal(s.malformed, 0);
  assert_int_equal(s.users, 983);
  assert_int_equal(s.items, 64467);
  assert_int_equal(s.categories, 3128);
  assert_int_equal(s.actions[ACTION_VIEW], 89710);
  assert_int_equal(s.actions[ACTION_CART], 5446);
  assert_int_equal(s.actions[ACTION_FAV], 2744);
  assert_int_equal(s.actions[ACTION_BUY], 2101);
  assert_int_equal(s.actions[ACTION_OTHER], 0);
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  importer_print_summary(&s, mem);
  fclose(mem);
  print_message("%s", text);
  assert_non_null(strstr(text, "events      100,001\n"));
  assert_non_null(strstr(text, "users       983\n"));
  assert_non_null(strstr(text, "items       64,467\n"));
  assert_non_null(strstr(text, "categories  3,128\n"));
  assert_non_null(strstr(text, "view 89,710  cart 5,446  fav 2,744  buy 2,101"));
  assert_non_null(strstr(text, "2017-09-11 08:16 UTC .. 2017-12-03 15:59 UTC"));
  free(text);
  readback_t rb = check_imported(out, 8);
  assert_int_equal(rb.n, 100001);
  /* every partition got users (983 users over 8 partitions) */
  for (int p = 0; p < 8; p++) assert_true(rb.per_part_next[p] > 0);
}

static void test_import_whole_tmall_file_matches_source_md(void **state) {
  char in[512];
  src_path(in, sizeof in, "data/tmall_userlog_head100k/user_log_format1_little.csv.gz");
  if (!exists(in)) fail_msg("bundled data missing: %s", in);
  importer_opts_t o = {.format = IMPORT_TMALL, .input = in, .output = NULL, .partitions = 8};
  importer_stats_t s;
  char err[512] = "";
  if (importer_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(s.events, 100000);
  assert_int_equal(s.malformed, 0);
  assert_int_equal(s.users, 710);
  assert_int_equal(s.items, 45444);
  assert_int_equal(s.categories, 885);
  assert_int_equal(s.actions[ACTION_VIEW], 88033); /* click */
  assert_int_equal(s.actions[ACTION_BUY], 6928);   /* purchase */
  assert_int_equal(s.actions[ACTION_FAV], 4969);
  assert_int_equal(s.actions[ACTION_CART], 70);
  /* 05-11 .. 11-11 of 2015, midnight UTC+8 */
  assert_true(s.min_ts_ms == 1431273600000LL && s.max_ts_ms == 1447171200000LL);
}

/* ---------------------------------------------------------------- splits */

static void import_slice(char *out, size_t n) {
  char in[512];
  src_path(in, sizeof in, "tests/data/taobao_head1000.csv");
  tmp_path(out, n, "split_in.rec");
  importer_opts_t o = {.format = IMPORT_TAOBAO, .input = in, .output = out, .partitions = 8};
  importer_stats_t s;
  char err[512] = "";
  if (importer_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
}

/* Reads a split output; returns record count, checks each against pred. */
static uint64_t read_split(const char *prefix, const char *name, int64_t lo, int64_t hi,
                           uint64_t *users, size_t *n_users) {
  char path[400];
  snprintf(path, sizeof path, "%s.%s.rec", prefix, name);
  rec_reader_t *r = NULL;
  char err[256];
  if (recfile_reader_open(path, &r, err, sizeof err)) fail_msg("%s", err);
  rec_t rec;
  uint64_t n = 0;
  while (recfile_read(r, &rec) == 0) {
    event_t ev;
    assert_int_equal(codec_decode_event(rec.value, rec.value_len, &ev, NULL, 0), 0);
    assert_true(ev.ts_ms >= lo && ev.ts_ms < hi);
    if (users) users[(*n_users)++] = ev.user_id;
    n++;
  }
  recfile_reader_close(r);
  return n;
}

static void test_split_by_time(void **state) {
  char in[300], prefix[300];
  import_slice(in, sizeof in);
  tmp_path(prefix, sizeof prefix, "bytime");
  /* Python on the slice: 2017-12-02T00:00+08:00 = 1512144000000 */
  split_opts_t o = {.by = SPLIT_BY_TIME, .input = in, .out_prefix = prefix,
                    .dev_start_ms = 1512057600000LL,  /* 12-01 00:00 +08 */
                    .test_start_ms = 1512144000000LL, /* 12-02 00:00 +08 */
                    .test_end_ms = 1512230400000LL};  /* 12-03 00:00 +08 */
  split_stats_t s;
  char err[512] = "";
  if (split_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(s.total, 1000);
  assert_int_equal(s.records[0] + s.records[1] + s.records[2] + s.dropped, 1000);
  assert_true(s.records[0] > 0 && s.records[1] > 0 && s.records[2] > 0 && s.dropped > 0);
  assert_int_equal(read_split(prefix, "train", INT64_MIN, o.dev_start_ms, NULL, NULL), s.records[0]);
  assert_int_equal(read_split(prefix, "dev", o.dev_start_ms, o.test_start_ms, NULL, NULL), s.records[1]);
  assert_int_equal(read_split(prefix, "test", o.test_start_ms, o.test_end_ms, NULL, NULL), s.records[2]);
  /* bad boundaries */
  o.test_start_ms = o.dev_start_ms - 1;
  assert_int_equal(split_run(&o, &s, err, sizeof err), IX_EINVAL);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_split_by_user_is_disjoint_and_deterministic(void **state) {
  char in[300], prefix[300], prefix2[300];
  import_slice(in, sizeof in);
  tmp_path(prefix, sizeof prefix, "byuser");
  split_opts_t o = {.by = SPLIT_BY_USER, .input = in, .out_prefix = prefix, .dev_pct = 30,
                    .test_pct = 30, .seed = 7};
  split_stats_t s;
  char err[512] = "";
  if (split_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(s.records[0] + s.records[1] + s.records[2], 1000);
  assert_int_equal(s.users[0] + s.users[1] + s.users[2], 11); /* each user in exactly one */
  static uint64_t u[3][1000];
  size_t nu[3] = {0, 0, 0};
  const char *names[3] = {"train", "dev", "test"};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(read_split(prefix, names[k], INT64_MIN, INT64_MAX, u[k], &nu[k]), s.records[k]);
    for (size_t i = 0; i < nu[k]; i++)
      assert_int_equal(split_user_bucket(u[k][i], 7, 30, 30), k);
    qsort(u[k], nu[k], sizeof u[k][0], cmp_u64);
  }
  for (size_t i = 0; i < nu[0]; i++) {
    assert_null(bsearch(&u[0][i], u[1], nu[1], sizeof u[1][0], cmp_u64));
    assert_null(bsearch(&u[0][i], u[2], nu[2], sizeof u[2][0], cmp_u64));
  }
  /* bucket proportions over many ids are near the percentages */
  int hist[3] = {0, 0, 0};
  for (uint64_t id = 0; id < 100000; id++) hist[split_user_bucket(id, 7, 30, 30)]++;
  assert_true(hist[1] > 29000 && hist[1] < 31000 && hist[2] > 29000 && hist[2] < 31000);
  /* same options, same bytes */
  tmp_path(prefix2, sizeof prefix2, "byuser2");
  o.out_prefix = prefix2;
  assert_int_equal(split_run(&o, &s, err, sizeof err), 0);
  for (int k = 0; k < 3; k++) {
    char cmd[900];
    snprintf(cmd, sizeof cmd, "cmp -s '%s.%s.rec' '%s.%s.rec'", prefix, names[k], prefix2, names[k]);
    assert_int_equal(system(cmd), 0);
  }
  o.dev_pct = 60;
  o.test_pct = 50;
  assert_int_equal(split_run(&o, &s, err, sizeof err), IX_EINVAL);
}

static void test_split_refuses_non_event_records(void **state) {
  char in[300], prefix[300];
  tmp_path(in, sizeof in, "notevents.rec");
  tmp_path(prefix, sizeof prefix, "notevents");
  rec_writer_t *w = NULL;
  assert_int_equal(recfile_writer_open(in, RECFILE_CREATE, &w, NULL, 0), 0);
  codec_buf_t buf = {0};
  event_t ev = {.user_id = 1, .category_id = 2, .ts_ms = 3};
  assert_int_equal(codec_encode_event(&ev, &buf), 0);
  rec_t rec = {.key = "1", .key_len = 1, .value = buf.data, .value_len = buf.len};
  assert_int_equal(recfile_write(w, &rec), 0);
  rec.value = "\x91\x01";
  rec.value_len = 2;
  assert_int_equal(recfile_write(w, &rec), 0);
  assert_int_equal(recfile_writer_close(w), 0);
  size_t first_len = buf.len;
  codec_buf_free(&buf);
  split_opts_t o = {.by = SPLIT_BY_USER, .input = in, .out_prefix = prefix, .dev_pct = 10,
                    .test_pct = 10};
  split_stats_t s;
  char err[512] = "";
  assert_int_equal(split_run(&o, &s, err, sizeof err), IX_ENOTMAP);
  /* the second record starts after the 16-byte header and the first record */
  char want[64];
  snprintf(want, sizeof want, "record at byte offset %zu is not an event",
           (size_t)RECFILE_HEADER_SIZE + RECFILE_REC_HEAD + 1 + first_len + 4);
  if (!strstr(err, want)) fail_msg("'%s' lacks '%s'", err, want);
}

/* --format csv: the shop layout made from the Taobao slice (tests/data/README.md)
 * imports to exactly the events of the Taobao import of the same rows; quoted
 * fields, a mapping with other columns and epoch seconds, malformed lines
 * counted by reason, the all-malformed and share failures. */
static void read_events(const char *path, event_t *ev, size_t max, size_t *n) {
  rec_reader_t *r = NULL;
  assert_int_equal(recfile_reader_open(path, &r, NULL, 0), 0);
  rec_t rec;
  *n = 0;
  while (recfile_read(r, &rec) == 0) {
    assert_true(*n < max);
    assert_int_equal(codec_decode_event(rec.value, rec.value_len, &ev[(*n)++], NULL, 0), 0);
  }
  recfile_reader_close(r);
}

static void test_import_csv_shop_layout_equals_taobao(void **state) {
  char in_tb[512], in_csv[512], out_tb[300], out_csv[300], err[512] = "";
  src_path(in_tb, sizeof in_tb, "tests/data/taobao_head1000.csv");
  src_path(in_csv, sizeof in_csv, "tests/data/shop_layout_head1000.csv");
  tmp_path(out_tb, sizeof out_tb, "tb.rec");
  tmp_path(out_csv, sizeof out_csv, "csv.rec");
  importer_stats_t s1, s2;
  importer_opts_t o = {.format = IMPORT_TAOBAO, .input = in_tb, .output = out_tb, .partitions = 8};
  assert_int_equal(importer_run(&o, &s1, err, sizeof err), 0);
  o = (importer_opts_t){.format = IMPORT_CSV, .input = in_csv, .output = out_csv, .partitions = 8};
  if (importer_run(&o, &s2, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(s2.events, 1000);
  assert_int_equal(s2.malformed, 0);
  static event_t a[1000], b[1000];
  size_t na, nb;
  read_events(out_tb, a, 1000, &na);
  read_events(out_csv, b, 1000, &nb);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, na * sizeof *a);
}

static void test_import_csv_mapping_quotes_and_failures(void **state) {
  char in[300], out[300], err[512] = "";
  tmp_path(in, sizeof in, "shop.csv");
  tmp_path(out, sizeof out, "shop.rec");
  write_file(in, "ts,who,\"cat, id\",what,sku\n"
                 "1569888000.5,u-1,\"12\",add_to_cart,\"a \"\"quoted\"\", sku\"\n"
                 "1569888001,42,13,purchase,\n"
                 "1569888002,42,,view,x\n"
                 "1569888003,42,\"14,view,x\n"
                 "1569888004,42,14\n"
                 "later,42,14,view,x\n");
  input_opts_t m;
  assert_int_equal(input_opts_init(&m), 0);
  char why[200];
  const char *kv[] = {"user_field", "who", "category_field", "cat, id", "item_field", "sku",
                      "action_field", "what", "time_field", "ts", "time_format", "s",
                      "action_map", "add_to_cart=cart,purchase=buy", NULL};
  for (size_t i = 0; kv[i]; i += 2) assert_int_equal(input_opts_set(&m, kv[i], kv[i + 1], why, sizeof why), 0);
  importer_opts_t o = {.format = IMPORT_CSV, .input = in, .output = out, .partitions = 2, .csv = &m};
  importer_stats_t s;
  if (importer_run(&o, &s, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(s.events, 2);
  assert_int_equal(s.malformed, 4);
  assert_int_equal(s.n_reasons, 4);
  assert_string_equal(s.by_reason[0].reason, "cat, id is empty");
  assert_string_equal(s.by_reason[1].reason, "a quoted field is not closed");
  assert_string_equal(s.by_reason[2].reason, "3 fields, the header has 5");
  assert_string_equal(s.by_reason[3].reason, "ts '...' is not seconds since the epoch");
  event_t ev[4];
  size_t n;
  read_events(out, ev, 4, &n);
  assert_int_equal(n, 2);
  assert_int_equal(ev[0].user_id, codec_hash_id("u-1", 3));
  assert_int_equal(ev[0].category_id, 12);
  assert_int_equal(ev[0].item_id, codec_hash_id("a \"quoted\", sku", 15));
  assert_int_equal(ev[0].action, ACTION_CART);
  assert_int_equal(ev[0].ts_ms, 1569888000500ll);
  assert_int_equal(ev[1].item_id, 0); /* empty item: unknown */
  assert_int_equal(ev[1].action, ACTION_BUY);
  /* more than a set share malformed: fails, nothing written */
  o.max_malformed_share = 0.5;
  char out2[300];
  tmp_path(out2, sizeof out2, "share.rec");
  o.output = out2;
  assert_int_equal(importer_run(&o, &s, err, sizeof err), IX_EMALFORMED);
  assert_non_null(strstr(err, "4 of 6 data lines are malformed"));
  assert_false(exists(out2));
  /* every line malformed (the default mapping does not fit this header... */
  o.csv = NULL;
  o.max_malformed_share = 0;
  assert_int_equal(importer_run(&o, &s, err, sizeof err), IX_EINVAL);
  assert_non_null(strstr(err, "no user column 'user_id'"));
  /* ... and a header that fits with rows that do not */
  write_file(in, "user_id,category_id,event_time\n1,2,yesterday\n3,4,2019-13-01 00:00:00 UTC\n");
  assert_int_equal(importer_run(&o, &s, err, sizeof err), IX_EMALFORMED);
  assert_non_null(strstr(err, "every one of the 2 data lines is malformed"));
  assert_int_equal(s.n_reasons, 2);
  assert_false(exists(out2));
  /* a time without a zone is read in the given one */
  write_file(in, "user_id,category_id,event_time\n1,2,2017-12-02 00:00:00\n");
  o.utc_offset_s = 8 * 3600;
  assert_int_equal(importer_run(&o, &s, err, sizeof err), 0);
  assert_int_equal(s.min_ts_ms, 1512144000000ll); /* 2017-12-01T16:00:00Z */
  input_opts_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partitioner_is_kafkas_murmur2),
      cmocka_unit_test(test_parse_taobao_lines),
      cmocka_unit_test(test_parse_tmall_lines),
      cmocka_unit_test(test_import_taobao_slice),
      cmocka_unit_test(test_import_gzip_input_reads_like_plain),
      cmocka_unit_test(test_import_tmall_slice),
      cmocka_unit_test(test_import_reports_malformed_lines_with_numbers),
      cmocka_unit_test(test_import_counts_all_but_keeps_first_malformed),
      cmocka_unit_test(test_import_csv_shop_layout_equals_taobao),
      cmocka_unit_test(test_import_csv_mapping_quotes_and_failures),
      cmocka_unit_test(test_import_whole_taobao_file_matches_source_md),
      cmocka_unit_test(test_import_whole_tmall_file_matches_source_md),
      cmocka_unit_test(test_split_by_time),
      cmocka_unit_test(test_split_by_user_is_disjoint_and_deterministic),
      cmocka_unit_test(test_split_refuses_non_event_records),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
