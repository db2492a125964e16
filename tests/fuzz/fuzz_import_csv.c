/* libFuzzer target: interestctl import's CSV readers (stream/importer.c) on
 * arbitrary bytes: --format csv with the default mapping and with one that
 * reads epoch seconds, and the Taobao/Tmall line parsers. Properties: never
 * crash; every data line is an event or counted as malformed; a failed
 * line leaves the event all zero. The first byte picks the reader. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctl/importer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] % 4;
  data++;
  size--;
  char reason[96];
  if (mode >= 2) { /* one line through the fixed-layout parsers */
    event_t ev;
    memset(&ev, 0x5a, sizeof ev);
    if (importer_parse_line(mode == 2 ? IMPORT_TAOBAO : IMPORT_TMALL, (const char *)data, size, &ev,
                            reason, sizeof reason)) {
      const uint8_t *b = (const uint8_t *)&ev;
      for (size_t i = 0; i < sizeof ev; i++)
        if (b[i]) abort();
      if (!reason[0]) abort();
    }
    return 0;
  }
  int fd = memfd_create("fuzz_import_csv", 0);
  if (fd < 0) abort();
  if (size && write(fd, data, size) != (ssize_t)size) abort();
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  input_opts_t map;
  if (importer_csv_defaults(&map)) abort();
  char why[200];
  if (mode == 1 && (input_opts_set(&map, "time_format", "s", why, sizeof why) ||
                    input_opts_set(&map, "user_field", "u", why, sizeof why) ||
                    input_opts_set(&map, "category_field", "c", why, sizeof why) ||
                    input_opts_set(&map, "time_field", "t", why, sizeof why)))
    abort();
  importer_opts_t o = {.format = IMPORT_CSV, .input = path, .output = NULL, .partitions = 4,
                       .csv = &map, .utc_offset_s = 3600};
  importer_stats_t s;
  char err[512];
  int rc = importer_run(&o, &s, err, sizeof err);
  if (rc == 0 && s.lines > 0) {
    /* every line after the header: an event, or malformed (empty lines included) */
    if (s.events + s.malformed != s.lines - 1) abort();
    uint64_t by = 0;
    for (size_t i = 0; i < s.n_reasons; i++) by += s.by_reason[i].n;
    if (by != s.malformed) abort();
  }
  input_opts_free(&map);
  close(fd);
  return 0;
}
