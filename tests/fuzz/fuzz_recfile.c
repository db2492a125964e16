/* libFuzzer target: the record file reader (and append-with-truncate) on
 * arbitrary file contents, held in a memfd. Properties: never crash; damage
 * is one of the documented codes at an offset inside the file; appending
 * after cutting the damaged tail yields a clean file with one more record. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "stream/recfile.h"

static int read_all(const char *path, size_t size, uint64_t *n) {
  rec_reader_t *r = NULL;
  char err[256];
  int rc = recfile_reader_open(path, &r, err, sizeof err);
  if (rc) {
    if (rc != IX_ETRUNC && rc != IX_EBADMAGIC && rc != IX_EVERSION) abort();
    return rc;
  }
  rec_t rec;
  *n = 0;
  uint64_t last_end = RECFILE_HEADER_SIZE;
  while ((rc = recfile_read(r, &rec)) == 0) {
    (*n)++;
    /* touch the borrowed bytes so ASan checks they are inside the buffer */
    volatile uint8_t sink = 0;
    if (rec.key_len) sink ^= ((const uint8_t *)rec.key)[rec.key_len - 1];
    if (rec.value_len) sink ^= ((const uint8_t *)rec.value)[rec.value_len - 1];
    (void)sink;
    last_end = recfile_reader_error_offset(r);
  }
  if (rc != IX_EEOF && rc != IX_ECRC && rc != IX_ETRUNC && rc != IX_EMALFORMED) abort();
  if (recfile_reader_error_offset(r) != last_end || last_end > size) abort();
  recfile_reader_close(r);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz_recfile", MFD_CLOEXEC);
  if (fd < 0) abort();
  if (size && write(fd, data, size) != (ssize_t)size) abort();
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

  uint64_t n = 0;
  int rc = read_all(path, size, &n);
  if (rc != IX_EBADMAGIC && rc != IX_EVERSION) {
    rec_writer_t *w = NULL;
    char err[256];
    if (recfile_writer_open(path, RECFILE_APPEND_TRUNCATE, &w, err, sizeof err)) abort();
    rec_t rec = {.partition = 1, .offset = 2, .ts_ms = 3, .key = "k", .key_len = 1,
                 .value = "v", .value_len = 1};
    if (recfile_write(w, &rec) || recfile_writer_close(w)) abort();
    uint64_t n2 = 0;
    if (read_all(path, (size_t)-1, &n2) != IX_EEOF) abort();
    if (n2 != n + 1) abort(); /* every intact record kept, the new one added */
  }
  close(fd);
  return 0;
}
