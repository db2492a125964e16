/* stream/recfile: write, read, append, and damage (corrupted byte, truncated
 * tail, absurd lengths) reported with the exact byte offset. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/crc.h"
#include "common/err.h"
#include "stream/recfile.h"

static char g_dir[256];

static int setup(void **state) {
  snprintf(g_dir, sizeof g_dir, "/tmp/ix_test_recfile.XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd);
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

/* Record i of a deterministic sequence: varied key and value sizes. */
static void make_rec(uint64_t i, rec_t *rec, char *key, char *val) {
  size_t kl = (size_t)snprintf(key, 32, "user-%llu", (unsigned long long)(i * 7919));
  if (i % 5 == 0) kl = 0; /* empty keys happen (Kafka null key) */
  size_t vl = (i * 37) % 200;
  for (size_t j = 0; j < vl; j++) val[j] = (char)(i + j);
  rec->partition = (int32_t)(i % 8);
  rec->offset = (int64_t)(i / 8);
  rec->ts_ms = 1511544070000 + (int64_t)i * 1000;
  rec->key = key;
  rec->key_len = kl;
  rec->value = val;
  rec->value_len = vl;
}

static size_t rec_size(const rec_t *rec) { return RECFILE_REC_HEAD + rec->key_len + rec->value_len + 4; }

/* Writes n records starting at index from; returns bytes written. */
static uint64_t write_n(const char *path, int mode, uint64_t from, uint64_t n) {
  rec_writer_t *w = NULL;
  char err[256] = "";
  int rc = recfile_writer_open(path, mode, &w, err, sizeof err);
  if (rc) fail_msg("open: %s", err);
  uint64_t bytes = 0;
  char key[32], val[256];
  for (uint64_t i = from; i < from + n; i++) {
    rec_t rec;
    make_rec(i, &rec, key, val);
    assert_int_equal(recfile_write(w, &rec), 0);
    bytes += rec_size(&rec);
  }
  assert_int_equal(recfile_writer_close(w), 0);
  return bytes;
}

/* Reads records, checking each against make_rec(from + k); returns how many
 * were read and the terminating code in *end_rc. */
static uint64_t read_check(const char *path, uint64_t from, int *end_rc, uint64_t *err_off) {
  rec_reader_t *r = NULL;
  char err[256] = "";
  int rc = recfile_reader_open(path, &r, err, sizeof err);
  if (rc) fail_msg("open: %s", err);
  rec_t got;
  uint64_t k = 0, off = RECFILE_HEADER_SIZE;
  char key[32], val[256];
  while ((rc = recfile_read(r, &got)) == 0) {
    rec_t want;
    make_rec(from + k, &want, key, val);
    assert_int_equal(got.partition, want.partition);
    assert_true(got.offset == want.offset);
    assert_true(got.ts_ms == want.ts_ms);
    assert_int_equal(got.key_len, want.key_len);
    assert_int_equal(got.value_len, want.value_len);
    if (want.key_len) assert_memory_equal(got.key, want.key, want.key_len);
    if (want.value_len) assert_memory_equal(got.value, want.value, want.value_len);
    assert_true(recfile_reader_record_offset(r) == off);
    off += rec_size(&want);
    k++;
  }
  *end_rc = rc;
  *err_off = recfile_reader_error_offset(r);
  assert_int_equal(recfile_read(r, &got), rc); /* errors are sticky; EOF stays EOF */
  recfile_reader_close(r);
  return k;
}

static uint64_t file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (uint64_t)st.st_size;
}

static void test_recfile_layout_is_the_documented_bytes(void **state) {
  char path[300];
  path_of(path, sizeof path, "layout.rec");
  rec_writer_t *w = NULL;
  assert_int_equal(recfile_writer_open(path, RECFILE_CREATE, &w, NULL, 0), 0);
  rec_t rec = {.partition = 3, .offset = 1, .ts_ms = 1511544070000, .key = "42", .key_len = 2,
               .value = "\x80", .value_len = 1};
  assert_int_equal(recfile_write(w, &rec), 0);
  assert_int_equal(recfile_writer_close(w), 0);
  uint8_t b[64];
  FILE *f = fopen(path, "rb");
  size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  assert_int_equal(n, 16 + 32 + 2 + 1 + 4);
  static const uint8_t head[16] = {'I', 'X', 'R', 'E', 'C', 'O', 'R', 'D', 1, 0, 0, 0, 0, 0, 0, 0};
  assert_memory_equal(b, head, 16);
  static const uint8_t fixed[28] = {2, 0, 0, 0,  1, 0, 0, 0,  3, 0, 0, 0,
                                    1, 0, 0, 0, 0, 0, 0, 0,
                                    0x70, 0x1f, 0x0c, 0xef, 0x5f, 0x01, 0, 0};
  assert_memory_equal(b + 16, fixed, 28);
  uint32_t hcrc = ix_crc32(0, b + 16, 28);
  assert_int_equal(b[44] | b[45] << 8 | b[46] << 16 | (uint32_t)b[47] << 24, hcrc);
  assert_memory_equal(b + 48, "42\x80", 3);
  uint32_t crc = ix_crc32(0, b + 16, 32 + 3);
  assert_int_equal(b[51] | b[52] << 8 | b[53] << 16 | (uint32_t)b[54] << 24, crc);
}

static void test_recfile_write_read_append_reopen(void **state) {
  char path[300];
  path_of(path, sizeof path, "a.rec");
  uint64_t bytes = write_n(path, RECFILE_CREATE, 0, 1000);
  assert_true(file_size(path) == RECFILE_HEADER_SIZE + bytes);
  int rc;
  uint64_t off;
  assert_int_equal(read_check(path, 0, &rc, &off), 1000);
  assert_int_equal(rc, IX_EEOF);
  assert_true(off == file_size(path));
  /* append twice, reading everything back each time */
  bytes += write_n(path, RECFILE_APPEND, 1000, 500);
  bytes += write_n(path, RECFILE_APPEND, 1500, 1);
  assert_int_equal(read_check(path, 0, &rc, &off), 1501);
  assert_int_equal(rc, IX_EEOF);
  assert_true(file_size(path) == RECFILE_HEADER_SIZE + bytes);
  /* create truncates */
  write_n(path, RECFILE_CREATE, 0, 3);
  assert_int_equal(read_check(path, 0, &rc, &off), 3);
  /* append to a file that does not exist yet, or is empty, creates it */
  path_of(path, sizeof path, "new.rec");
  write_n(path, RECFILE_APPEND, 0, 2);
  assert_int_equal(read_check(path, 0, &rc, &off), 2);
  path_of(path, sizeof path, "empty.rec");
  close(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  write_n(path, RECFILE_APPEND, 0, 2);
  assert_int_equal(read_check(path, 0, &rc, &off), 2);
  /* a file with only a header has no records */
  path_of(path, sizeof path, "hdr.rec");
  write_n(path, RECFILE_CREATE, 0, 0);
  assert_true(file_size(path) == RECFILE_HEADER_SIZE);
  assert_int_equal(read_check(path, 0, &rc, &off), 0);
  assert_int_equal(rc, IX_EEOF);
}

static void test_recfile_large_values_round_trip(void **state) {
  char path[300];
  path_of(path, sizeof path, "big.rec");
  rec_writer_t *w = NULL;
  assert_int_equal(recfile_writer_open(path, RECFILE_CREATE, &w, NULL, 0), 0);
  size_t big = 3u * 1024 * 1024; /* larger than the I/O buffers */
  char *v = malloc(big);
  for (size_t i = 0; i < big; i++) v[i] = (char)(i * 31);
  rec_t rec = {.partition = 1, .offset = 2, .ts_ms = 3, .key = "k", .key_len = 1, .value = v,
               .value_len = big};
  assert_int_equal(recfile_write(w, &rec), 0);
  rec.value_len = 10;
  assert_int_equal(recfile_write(w, &rec), 0);
  rec.value_len = RECFILE_MAX_VALUE + 1;
  assert_int_equal(recfile_write(w, &rec), IX_ETOOBIG);
  rec.value_len = 10;
  rec.key_len = RECFILE_MAX_KEY + 1;
  assert_int_equal(recfile_write(w, &rec), IX_ETOOBIG);
  assert_int_equal(recfile_writer_close(w), 0);
  rec_reader_t *r = NULL;
  assert_int_equal(recfile_reader_open(path, &r, NULL, 0), 0);
  rec_t got;
  assert_int_equal(recfile_read(r, &got), 0);
  assert_int_equal(got.value_len, big);
  assert_memory_equal(got.value, v, big);
  assert_int_equal(recfile_read(r, &got), 0);
  assert_int_equal(got.value_len, 10);
  assert_memory_equal(got.value, v, 10);
  assert_int_equal(recfile_read(r, &got), IX_EEOF);
  recfile_reader_close(r);
  free(v);
}

static void flip_byte(const char *path, uint64_t at) {
  int fd = open(path, O_RDWR);
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, (off_t)at), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, (off_t)at), 1);
  close(fd);
}

/* Byte offset of record k in a file written by write_n(.., 0, ..). */
static uint64_t offset_of(uint64_t k) {
  uint64_t off = RECFILE_HEADER_SIZE;
  char key[32], val[256];
  for (uint64_t i = 0; i < k; i++) {
    rec_t rec;
    make_rec(i, &rec, key, val);
    off += rec_size(&rec);
  }
  return off;
}

static void test_recfile_corrupted_byte_reports_ecrc_at_its_record(void **state) {
  char path[300];
  path_of(path, sizeof path, "c.rec");
  /* every part of record 57: lengths, partition, offset, ts, header crc, key, value, crc */
  char key[32], val[256];
  rec_t r57;
  make_rec(57, &r57, key, val);
  size_t size57 = rec_size(&r57);
  write_n(path, RECFILE_CREATE, 0, 100);
  for (size_t at = 0; at < size57; at++) {
    flip_byte(path, offset_of(57) + at);
    int rc;
    uint64_t off;
    assert_int_equal(read_check(path, 0, &rc, &off), 57); /* everything before is readable */
    if (rc != IX_ECRC) fail_msg("byte %zu of the record: got %s", at, ix_err_name(rc));
    assert_true(off == offset_of(57));
    flip_byte(path, offset_of(57) + at); /* restore */
  }
  flip_byte(path, offset_of(57) + size57 - 5); /* last value byte */
  /* appending refuses the damaged file, naming the offset */
  rec_writer_t *w = NULL;
  char err[256] = "";
  assert_int_equal(recfile_writer_open(path, RECFILE_APPEND, &w, err, sizeof err), IX_ECRC);
  assert_null(w);
  char num[32];
  snprintf(num, sizeof num, "%llu", (unsigned long long)offset_of(57));
  if (!strstr(err, num)) fail_msg("errstr '%s' does not name offset %s", err, num);
  /* unless asked to cut the damaged tail off */
  write_n(path, RECFILE_APPEND_TRUNCATE, 57, 10);
  int rc;
  uint64_t off;
  assert_int_equal(read_check(path, 0, &rc, &off), 67);
  assert_int_equal(rc, IX_EEOF);
}

static void test_recfile_truncated_tail_reports_etrunc(void **state) {
  char path[300];
  path_of(path, sizeof path, "t.rec");
  uint64_t last = offset_of(99), end = offset_of(100);
  /* cut inside the fixed part and inside the key/value/crc of the last record */
  uint64_t cuts[] = {last + 1, last + 31, last + 32, last + 33, end - 4, end - 1};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    write_n(path, RECFILE_CREATE, 0, 100);
    assert_int_equal(truncate(path, (off_t)cuts[c]), 0);
    int rc;
    uint64_t off;
    assert_int_equal(read_check(path, 0, &rc, &off), 99);
    assert_int_equal(rc, IX_ETRUNC);
    assert_true(off == last);
    rec_writer_t *w = NULL;
    char err[256] = "";
    assert_int_equal(recfile_writer_open(path, RECFILE_APPEND, &w, err, sizeof err), IX_ETRUNC);
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)last);
    assert_non_null(strstr(err, num));
  }
  /* cutting exactly at a record boundary is a clean, shorter file */
  write_n(path, RECFILE_CREATE, 0, 100);
  assert_int_equal(truncate(path, (off_t)last), 0);
  int rc;
  uint64_t off;
  assert_int_equal(read_check(path, 0, &rc, &off), 99);
  assert_int_equal(rc, IX_EEOF);
}

static void test_recfile_rejects_bad_headers_and_absurd_lengths(void **state) {
  char path[300];
  char err[256];
  rec_reader_t *r = NULL;
  path_of(path, sizeof path, "missing.rec");
  assert_int_equal(recfile_reader_open(path, &r, err, sizeof err), IX_ENOENT);
  assert_null(r);

  path_of(path, sizeof path, "h.rec");
  FILE *f = fopen(path, "wb");
  fwrite("IXRECO", 1, 6, f);
  fclose(f);
  assert_int_equal(recfile_reader_open(path, &r, err, sizeof err), IX_ETRUNC);
  f = fopen(path, "wb");
  fwrite("user_id,item_id,cat_id\n", 1, 23, f);
  fclose(f);
  assert_int_equal(recfile_reader_open(path, &r, err, sizeof err), IX_EBADMAGIC);
  /* appending never overwrites a file that is not a record file */
  rec_writer_t *w = NULL;
  assert_int_equal(recfile_writer_open(path, RECFILE_APPEND_TRUNCATE, &w, err, sizeof err),
                   IX_EBADMAGIC);
  assert_true(file_size(path) == 23);

  write_n(path, RECFILE_CREATE, 0, 1);
  flip_byte(path, 8); /* version 1 -> 0x41 */
  assert_int_equal(recfile_reader_open(path, &r, err, sizeof err), IX_EVERSION);

  /* a record head with a valid head CRC but a 4 GiB key: refused, not allocated */
  write_n(path, RECFILE_CREATE, 0, 2);
  uint8_t h[32] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  uint32_t crc = ix_crc32(0, h, 28);
  for (int i = 0; i < 4; i++) h[28 + i] = (uint8_t)(crc >> (8 * i));
  f = fopen(path, "ab");
  fwrite(h, 1, sizeof h, f);
  fclose(f);
  int rc;
  uint64_t off;
  assert_int_equal(read_check(path, 0, &rc, &off), 2);
  assert_int_equal(rc, IX_EMALFORMED);
  assert_true(off == offset_of(2));
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_recfile_reads_100k_records_fast(void **state) {
  char path[300];
  path_of(path, sizeof path, "speed.rec");
  rec_writer_t *w = NULL;
  assert_int_equal(recfile_writer_open(path, RECFILE_CREATE, &w, NULL, 0), 0);
  char val[40];
  memset(val, 'v', sizeof val);
  double t0 = now_s();
  for (int i = 0; i < 100000; i++) {
    rec_t rec = {.partition = i % 8, .offset = i, .ts_ms = i, .key = "1000169", .key_len = 7,
                 .value = val, .value_len = sizeof val};
    assert_int_equal(recfile_write(w, &rec), 0);
  }
  assert_int_equal(recfile_writer_close(w), 0);
  double t1 = now_s();
  rec_reader_t *r = NULL;
  assert_int_equal(recfile_reader_open(path, &r, NULL, 0), 0);
  rec_t rec;
  int n = 0;
  int64_t sum = 0;
  while (recfile_read(r, &rec) == 0) {
    n++;
    sum += rec.offset;
  }
  recfile_reader_close(r);
  double t2 = now_s();
  assert_int_equal(n, 100000);
  assert_true(sum == (int64_t)99999 * 100000 / 2);
  print_message("100k records: write %.1f ms (incl. fsync), read %.1f ms\n", (t1 - t0) * 1e3,
                (t2 - t1) * 1e3);
  assert_true(t2 - t1 < 1.0); /* milliseconds in Release; generous for sanitizers/valgrind */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_recfile_layout_is_the_documented_bytes),
      cmocka_unit_test(test_recfile_write_read_append_reopen),
      cmocka_unit_test(test_recfile_large_values_round_trip),
      cmocka_unit_test(test_recfile_corrupted_byte_reports_ecrc_at_its_record),
      cmocka_unit_test(test_recfile_truncated_tail_reports_etrunc),
      cmocka_unit_test(test_recfile_rejects_bad_headers_and_absurd_lengths),
      cmocka_unit_test(test_recfile_reads_100k_records_fast),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
