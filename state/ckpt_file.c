/* The checkpoint file format (docs/FORMATS.md, "Checkpoint files") and the
 * file system steps both writers and the reader share: header layout, record
 * and block sizes, generation file names, directory scans, whole reads and
 * writes. No threads, no state. */
#include "state/ckpt_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc.h"

const unsigned char CKF_MAGIC[8] = {'I', 'X', 'C', 'K', 'P', 'T', '\r', '\n'};

/* ---- reads, writes, directories ------------------------------------------ */

void ckf_fmt(char *buf, size_t size, const char *f, ...) {
  if (!buf || !size) return;
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, size, f, ap);
  va_end(ap);
}

/* Append "; msg" (or msg when empty) to buf. */
void ckf_append(char *buf, size_t size, const char *msg) {
  if (!buf || !size) return;
  size_t len = strnlen(buf, size);
  if (len + 1 >= size) return;
  snprintf(buf + len, size - len, "%s%s", len ? "; " : "", msg);
}

const char *ckf_errdesc(int e) {
  const char *d = strerrordesc_np(e);
  return d ? d : "unknown error";
}

int ckf_write_all(int fd, const void *buf, size_t len) {
  const unsigned char *p = buf;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Reads up to len bytes; returns bytes read (< len only at EOF) or -1. */
ssize_t ckf_read_full(int fd, void *buf, size_t len) {
  unsigned char *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, p + got, len - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

int ckf_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int ckf_mkdir_p(const char *dir) {
  char path[PATH_MAX];
  size_t len = strlen(dir);
  if (len == 0 || len >= sizeof path) return -1;
  memcpy(path, dir, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    char c = path[i];
    path[i] = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    path[i] = c;
  }
  struct stat sb;
  if (stat(dir, &sb) != 0) return -1;
  if (!S_ISDIR(sb.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* ---- sizes and the header ------------------------------------------------ */

uint32_t ckf_block_records_for(size_t blob_size) {
  size_t r = CKF_BLOCK_TARGET_BYTES / ckf_record_size(blob_size);
  if (r < 1) r = 1;
  if (r > 65536) r = 65536;
  return (uint32_t)r;
}

uint64_t ckf_file_bytes_for(uint64_t users, uint32_t block_records, size_t blob_size) {
  uint64_t blocks = (users + block_records - 1) / block_records;
  return CKPT_HEADER_BYTES + users * ckf_record_size(blob_size) + blocks * 4u;
}

void ckf_build_header(unsigned char *h, int32_t partition, uint32_t fingerprint,
                      int64_t next_offset, uint64_t gen, uint64_t users, int64_t created_ms,
                      uint32_t blob_size, uint32_t block_records) {
  memset(h, 0, CKPT_HEADER_BYTES);
  memcpy(h, CKF_MAGIC, 8);
  ckf_put_u32(h + 8, CKPT_FORMAT_VERSION);
  ckf_put_u32(h + 12, CKPT_HEADER_BYTES);
  ckf_put_u32(h + 16, (uint32_t)partition);
  ckf_put_u32(h + 20, fingerprint);
  ckf_put_u64(h + 24, (uint64_t)next_offset);
  ckf_put_u64(h + 32, gen);
  ckf_put_u64(h + 40, users);
  ckf_put_u64(h + 48, (uint64_t)created_ms);
  ckf_put_u32(h + 56, blob_size);
  ckf_put_u32(h + 60, block_records);
  ckf_put_u64(h + 64, ckf_file_bytes_for(users, block_records, blob_size));
  ckf_put_u32(h + 72, 0); /* flags, reserved */
  ckf_put_u32(h + 76, ix_crc32(0, h, 76));
}

/* ---- file names ---------------------------------------------------------- */

/* Parses "p<partition>-<generation>.ckpt" exactly. */
static int ckf_parse_name(const char *name, int32_t *partition, uint64_t *gen) {
  if (name[0] != 'p') return 0;
  const char *p = name + 1;
  if (*p == '-') p++;
  if (!(*p >= '0' && *p <= '9')) return 0;
  char *end;
  errno = 0;
  long part = strtol(name + 1, &end, 10);
  if (*end != '-' || errno || part < INT32_MIN || part > INT32_MAX) return 0;
  p = end + 1;
  if (!(*p >= '1' && *p <= '9')) return 0;
  errno = 0;
  unsigned long long g = strtoull(p, &end, 10);
  if (errno || strcmp(end, ".ckpt") != 0) return 0;
  *partition = (int32_t)part;
  *gen = g;
  return 1;
}

void ckf_file_path(char *buf, size_t size, const char *dir, int32_t partition, uint64_t gen) {
  snprintf(buf, size, "%s/p%d-%llu.ckpt", dir, (int)partition, (unsigned long long)gen);
}

/* This process's temporary name for that file (clean_stale_tmp's pattern). */
void ckf_tmp_path(char *buf, size_t size, const char *dir, int32_t partition, uint64_t gen) {
  snprintf(buf, size, "%s/.p%d-%llu.ckpt.tmp.%ld", dir, (int)partition,
           (unsigned long long)gen, (long)getpid());
}

/* Calls fn for every checkpoint file name in dir. Returns 0, or -1 with errno. */
int ckf_scan_dir(const char *dir, ckf_scan_fn fn, void *ctx) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    int32_t p;
    uint64_t g;
    if (ckf_parse_name(de->d_name, &p, &g)) fn(ctx, p, g);
  }
  closedir(d);
  return 0;
}

void ckf_collect_gens(void *ctx, int32_t partition, uint64_t gen) {
  ckf_gen_list_t *gl = ctx;
  if (partition != gl->partition) return;
  if (gl->n == gl->cap) {
    size_t cap = gl->cap ? gl->cap * 2 : 8;
    uint64_t *n = realloc(gl->gens, cap * sizeof *n);
    if (!n) {
      gl->oom = 1;
      return;
    }
    gl->gens = n;
    gl->cap = cap;
  }
  gl->gens[gl->n++] = gen;
}

int ckf_cmp_desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}
