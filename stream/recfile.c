/* Record files: a 16-byte header, then self-checking records (docs/FORMATS.md).
 * Writer and reader do their own buffering over plain file descriptors so the
 * reader can hand out records in place (zero copy) and report exact offsets. */
#include "stream/recfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc.h"
#include "common/err.h"

static const uint8_t g_magic[8] = {'I', 'X', 'R', 'E', 'C', 'O', 'R', 'D'};

#define WBUF_SIZE (64u * 1024u)
#define RBUF_SIZE (64u * 1024u)

/* ---------------------------------------------------------------- helpers */

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return IX_EIO;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void make_header(uint8_t h[RECFILE_HEADER_SIZE]) {
  memcpy(h, g_magic, 8);
  put32(h + 8, RECFILE_VERSION);
  put32(h + 12, 0); /* flags, reserved */
}

/* ---------------------------------------------------------------- reader */

struct rec_reader {
  int fd;
  uint8_t *buf;     /* buffered file bytes [pos, end) */
  size_t cap, pos, end;
  uint64_t buf_file_off; /* file offset of buf[0] */
  uint64_t next_off;     /* file offset of the next record */
  uint64_t err_off;
  uint64_t last_off;     /* file offset of the record last returned */
  int err;               /* sticky: once damaged, stays damaged */
  int eof;               /* read() returned 0 */
};

/* Ensures at least `need` buffered bytes from pos; returns how many are
 * available (less than need only at end of file), or -1 on I/O error. */
static ssize_t rd_fill(rec_reader_t *r, size_t need) {
  if (r->end - r->pos >= need) return (ssize_t)(r->end - r->pos);
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->end - r->pos);
    r->buf_file_off += r->pos;
    r->end -= r->pos;
    r->pos = 0;
  }
  if (need > r->cap) {
    size_t cap = r->cap;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(r->buf, cap);
    if (!p) return -1;
    r->buf = p;
    r->cap = cap;
  }
  while (r->end < need && !r->eof) {
    ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) r->eof = 1;
    r->end += (size_t)n;
  }
  return (ssize_t)(r->end - r->pos);
}

static int reader_from_fd(int fd, const char *path, rec_reader_t **out, char *errstr,
                          size_t errstr_size) {
  rec_reader_t *r = calloc(1, sizeof *r);
  if (!r || !(r->buf = malloc(RBUF_SIZE))) {
    free(r);
    close(fd);
    return ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory opening %s", path);
  }
  r->fd = fd;
  r->cap = RBUF_SIZE;
  ssize_t n = rd_fill(r, RECFILE_HEADER_SIZE);
  int rc = 0;
  if (n < 0) {
    rc = ix_fail(IX_EIO, errstr, errstr_size, "%s: read error: %s", path, strerror(errno));
  } else if ((size_t)n < RECFILE_HEADER_SIZE) {
    rc = ix_fail(IX_ETRUNC, errstr, errstr_size,
              "%s: file is %zd bytes, shorter than the %d-byte record file header", path, n,
              RECFILE_HEADER_SIZE);
  } else if (memcmp(r->buf, g_magic, 8) != 0) {
    rc = ix_fail(IX_EBADMAGIC, errstr, errstr_size, "%s: not a record file (bad magic)", path);
  } else if (get32(r->buf + 8) != RECFILE_VERSION) {
    rc = ix_fail(IX_EVERSION, errstr, errstr_size, "%s: record file version %u, this build reads %d",
              path, get32(r->buf + 8), RECFILE_VERSION);
  } else if (get32(r->buf + 12) != 0) {
    rc = ix_fail(IX_EVERSION, errstr, errstr_size, "%s: unknown record file flags 0x%x", path,
              get32(r->buf + 12));
  }
  if (rc) {
    recfile_reader_close(r);
    return rc;
  }
  r->pos = RECFILE_HEADER_SIZE;
  r->next_off = RECFILE_HEADER_SIZE;
  *out = r;
  return 0;
}

int recfile_reader_open(const char *path, rec_reader_t **out, char *errstr, size_t errstr_size) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ix_fail(errno == ENOENT ? IX_ENOENT : IX_ESYS, errstr, errstr_size, "cannot open %s: %s",
                path, strerror(errno));
  return reader_from_fd(fd, path, out, errstr, errstr_size);
}

int recfile_read(rec_reader_t *r, rec_t *rec) {
  if (r->err) return r->err;
  r->err_off = r->next_off;
  ssize_t n = rd_fill(r, RECFILE_REC_HEAD);
  if (n < 0) return r->err = IX_EIO;
  if (n == 0) return IX_EEOF; /* not sticky: a writer may append more */
  if ((size_t)n < RECFILE_REC_HEAD) return r->err = IX_ETRUNC;
  const uint8_t *h = r->buf + r->pos;
  uint32_t key_len = get32(h), value_len = get32(h + 4);
  size_t total = RECFILE_REC_HEAD + (size_t)key_len + value_len + 4;
  /* The record CRC covers the head too, so an intact record needs one CRC
   * call. The head CRC is checked first only where the lengths would make us
   * read or allocate (beyond what is buffered) or report anything but ECRC. */
  if (key_len > RECFILE_MAX_KEY || value_len > RECFILE_MAX_VALUE || total > (size_t)n) {
    if (ix_crc32(0, h, RECFILE_REC_HEAD - 4) != get32(h + RECFILE_REC_HEAD - 4))
      return r->err = IX_ECRC;
    if (key_len > RECFILE_MAX_KEY || value_len > RECFILE_MAX_VALUE) return r->err = IX_EMALFORMED;
    n = rd_fill(r, total);
    if (n < 0) return r->err = IX_EIO;
    if ((size_t)n < total) return r->err = IX_ETRUNC;
    h = r->buf + r->pos;
  }
  if (ix_crc32(0, h, total - 4) != get32(h + total - 4)) return r->err = IX_ECRC;
  rec->partition = (int32_t)get32(h + 8);
  rec->offset = (int64_t)get64(h + 12);
  rec->ts_ms = (int64_t)get64(h + 20);
  rec->key_len = key_len;
  rec->value_len = value_len;
  rec->key = h + RECFILE_REC_HEAD;
  rec->value = h + RECFILE_REC_HEAD + key_len;
  r->pos += total;
  r->last_off = r->next_off;
  r->next_off += total;
  r->err_off = r->next_off;
  return 0;
}

uint64_t recfile_reader_error_offset(const rec_reader_t *r) { return r->err_off; }

uint64_t recfile_reader_record_offset(const rec_reader_t *r) { return r->last_off; }

void recfile_reader_close(rec_reader_t *r) {
  if (!r) return;
  if (r->fd >= 0) close(r->fd);
  free(r->buf);
  free(r);
}

/* ---------------------------------------------------------------- writer */

struct rec_writer {
  int fd;
  uint8_t *buf;
  size_t len;
  int err; /* sticky write error */
};

static int wr_flush(rec_writer_t *w) {
  if (w->err) return w->err;
  if (w->len) {
    int rc = write_all(w->fd, w->buf, w->len);
    if (rc) return w->err = rc;
    w->len = 0;
  }
  return 0;
}

static int wr_put(rec_writer_t *w, const void *p, size_t n) {
  if (n == 0) return 0;
  if (w->len + n > WBUF_SIZE) {
    int rc = wr_flush(w);
    if (rc) return rc;
    if (n > WBUF_SIZE) return write_all(w->fd, p, n) ? (w->err = IX_EIO) : 0;
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
  return 0;
}

int recfile_writer_open(const char *path, int append, rec_writer_t **out, char *errstr,
                        size_t errstr_size) {
  *out = NULL;
  if (append != RECFILE_CREATE && append != RECFILE_APPEND && append != RECFILE_APPEND_TRUNCATE)
    return ix_fail(IX_EINVAL, errstr, errstr_size, "invalid record file open mode %d", append);
  rec_writer_t *w = calloc(1, sizeof *w);
  if (!w || !(w->buf = malloc(WBUF_SIZE))) {
    free(w);
    return ix_fail(IX_ENOMEM, errstr, errstr_size, "out of memory opening %s", path);
  }
  w->fd = -1;
  int rc = 0;
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append == RECFILE_CREATE ? O_TRUNC : 0);
  w->fd = open(path, flags, 0644);
  if (w->fd < 0) {
    rc = ix_fail(IX_ESYS, errstr, errstr_size, "cannot open %s for writing: %s", path,
              strerror(errno));
    goto err;
  }
  struct stat st;
  if (fstat(w->fd, &st) != 0) {
    rc = ix_fail(IX_ESYS, errstr, errstr_size, "cannot stat %s: %s", path, strerror(errno));
    goto err;
  }
  uint64_t end = 0; /* where the next record goes; 0 = write a fresh header */
  if (append != RECFILE_CREATE && st.st_size > 0) {
    /* Validate the header and every record; stop at the clean end. */
    rec_reader_t *r = NULL;
    char rerr[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      rc = ix_fail(IX_ESYS, errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
      goto err;
    }
    rc = reader_from_fd(fd, path, &r, rerr, sizeof rerr);
    if (rc) {
      /* A too-short header of a file we could have written is a damaged tail;
       * anything else (wrong magic or version) is never overwritten. */
      if (rc == IX_ETRUNC && append == RECFILE_APPEND_TRUNCATE) {
        rc = 0;
      } else {
        ix_fail(rc, errstr, errstr_size, "cannot append: %s", rerr);
        goto err;
      }
    } else {
      rec_t rec;
      int rrc;
      while ((rrc = recfile_read(r, &rec)) == 0) {
      }
      end = recfile_reader_error_offset(r);
      recfile_reader_close(r);
      if (rrc != IX_EEOF) {
        if (append != RECFILE_APPEND_TRUNCATE) {
          rc = ix_fail(rrc, errstr, errstr_size,
                    "cannot append to %s: damaged record at byte offset %llu (%s); %llu bytes "
                    "follow it (truncate them explicitly to append)",
                    path, (unsigned long long)end, ix_strerror(rrc),
                    (unsigned long long)((uint64_t)st.st_size - end));
          goto err;
        }
      }
    }
    if (end && (uint64_t)st.st_size != end && ftruncate(w->fd, (off_t)end) != 0) {
      rc = ix_fail(IX_ESYS, errstr, errstr_size, "cannot truncate %s at %llu: %s", path,
                (unsigned long long)end, strerror(errno));
      goto err;
    }
  }
  if (end == 0) {
    if (ftruncate(w->fd, 0) != 0) {
      rc = ix_fail(IX_ESYS, errstr, errstr_size, "cannot truncate %s: %s", path, strerror(errno));
      goto err;
    }
    uint8_t h[RECFILE_HEADER_SIZE];
    make_header(h);
    memcpy(w->buf, h, sizeof h);
    w->len = sizeof h;
    end = 0;
  }
  if (lseek(w->fd, (off_t)end, SEEK_SET) < 0) {
    rc = ix_fail(IX_ESYS, errstr, errstr_size, "cannot seek in %s: %s", path, strerror(errno));
    goto err;
  }
  *out = w;
  return 0;
err:
  if (w->fd >= 0) close(w->fd);
  free(w->buf);
  free(w);
  return rc;
}

int recfile_write(rec_writer_t *w, const rec_t *rec) {
  if (w->err) return w->err;
  if (rec->key_len > RECFILE_MAX_KEY || rec->value_len > RECFILE_MAX_VALUE) return IX_ETOOBIG;
  if ((rec->key_len && !rec->key) || (rec->value_len && !rec->value)) return IX_EINVAL;
  uint8_t h[RECFILE_REC_HEAD];
  put32(h, (uint32_t)rec->key_len);
  put32(h + 4, (uint32_t)rec->value_len);
  put32(h + 8, (uint32_t)rec->partition);
  put64(h + 12, (uint64_t)rec->offset);
  put64(h + 20, (uint64_t)rec->ts_ms);
  put32(h + 28, ix_crc32(0, h, RECFILE_REC_HEAD - 4));
  uint32_t crc = ix_crc32(0, h, sizeof h);
  if (rec->key_len) crc = ix_crc32(crc, rec->key, rec->key_len);
  if (rec->value_len) crc = ix_crc32(crc, rec->value, rec->value_len);
  uint8_t t[4];
  put32(t, crc);
  int rc;
  if ((rc = wr_put(w, h, sizeof h)) || (rc = wr_put(w, rec->key, rec->key_len)) ||
      (rc = wr_put(w, rec->value, rec->value_len)) || (rc = wr_put(w, t, sizeof t)))
    return rc;
  return 0;
}

int recfile_writer_close(rec_writer_t *w) {
  if (!w) return 0;
  int rc = wr_flush(w);
  if (!rc && fsync(w->fd) != 0 && errno != EINVAL && errno != EROFS) rc = IX_EIO;
  if (close(w->fd) != 0 && !rc) rc = IX_EIO;
  free(w->buf);
  free(w);
  return rc;
}
