/* Checkpoint reader: validates and loads one file (ckpt_load_fd), and
 * restores a partition from the newest generation that loads, dropping what a
 * failed generation had inserted before trying the next older one. */
#include "state/checkpoint.h"

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
#include "common/err.h"
#include "common/log.h"
#include "state/ckpt_file.h"

#define MOD "ckpt"
#define DROP_BYTES (8u << 20) /* restore frees consumed page cache in these steps */
#define DROP_ALIGN (2u << 20) /* largest page cache folio */

/* ---- reader --------------------------------------------------------------- */

static int fail(char *errstr, size_t errstr_size, int rc, const char *name, const char *f, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char *errstr, size_t errstr_size, int rc, const char *name, const char *f, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, f);
  vsnprintf(msg, sizeof msg, f, ap);
  va_end(ap);
  ckf_fmt(errstr, errstr_size, "%s: %s", name, msg);
  return rc;
}

/* The header of the file at fd's position, checked (magic, version, size,
 * CRC, plausible sizes, flags, offset) and, for a regular file, its length
 * against the header's: what can be known without reading the body. *fi is
 * filled once the header's CRC holds (also when a later check fails). */
static int read_header(int fd, const char *name, ckpt_file_info_t *fi, uint32_t *hcrc_out,
                       off_t *pos_out, int *regular_out, char *errstr, size_t errstr_size) {
  unsigned char h[CKPT_HEADER_BYTES];
  ssize_t got = ckf_read_full(fd, h, sizeof h);
  if (got < 0) return fail(errstr, errstr_size, IX_ESYS, name, "read failed: %s", ckf_errdesc(errno));
  if (got < 8 || memcmp(h, CKF_MAGIC, 8) != 0) {
    if (got < 8 && memcmp(h, CKF_MAGIC, (size_t)got) == 0)
      return fail(errstr, errstr_size, IX_ETRUNC, name, "truncated: %zd bytes, header needs %u",
                  got, CKPT_HEADER_BYTES);
    return fail(errstr, errstr_size, IX_EBADMAGIC, name, "not a checkpoint file (bad magic)");
  }
  if (got < 16)
    return fail(errstr, errstr_size, IX_ETRUNC, name, "truncated: %zd bytes, header needs %u",
                got, CKPT_HEADER_BYTES);
  uint32_t version = ckf_get_u32(h + 8);
  if (version != CKPT_FORMAT_VERSION)
    return fail(errstr, errstr_size, IX_EVERSION, name,
                "format version %u, this build reads version %u", version, CKPT_FORMAT_VERSION);
  if (ckf_get_u32(h + 12) != CKPT_HEADER_BYTES)
    return fail(errstr, errstr_size, IX_EMALFORMED, name, "header size %u, expected %u",
                ckf_get_u32(h + 12), CKPT_HEADER_BYTES);
  if ((size_t)got < sizeof h)
    return fail(errstr, errstr_size, IX_ETRUNC, name, "truncated: %zd bytes, header needs %u",
                got, CKPT_HEADER_BYTES);
  uint32_t hcrc = ix_crc32(0, h, 76);
  if (hcrc != ckf_get_u32(h + 76))
    return fail(errstr, errstr_size, IX_ECRC, name, "header checksum mismatch (stored %08x, computed %08x)",
                ckf_get_u32(h + 76), hcrc);
  *hcrc_out = hcrc;

  *fi = (ckpt_file_info_t){
      .version = version,
      .partition = (int32_t)ckf_get_u32(h + 16),
      .fingerprint = ckf_get_u32(h + 20),
      .next_offset = (int64_t)ckf_get_u64(h + 24),
      .generation = ckf_get_u64(h + 32),
      .users = ckf_get_u64(h + 40),
      .created_ms = (int64_t)ckf_get_u64(h + 48),
      .blob_size = ckf_get_u32(h + 56),
      .block_records = ckf_get_u32(h + 60),
      .file_bytes = ckf_get_u64(h + 64),
  };
  if (fi->blob_size == 0 || fi->blob_size > CKF_MAX_BLOB_BYTES || fi->block_records == 0 ||
      (uint64_t)fi->block_records * ckf_record_size(fi->blob_size) > CKF_MAX_BLOCK_BYTES)
    return fail(errstr, errstr_size, IX_EMALFORMED, name,
                "implausible blob size %u or block size %u", fi->blob_size, fi->block_records);
  uint64_t rec = ckf_record_size(fi->blob_size);
  if (fi->users > (UINT64_MAX / 2) / rec ||
      fi->file_bytes != ckf_file_bytes_for(fi->users, fi->block_records, fi->blob_size))
    return fail(errstr, errstr_size, IX_EMALFORMED, name,
                "header says %llu users but %llu bytes", (unsigned long long)fi->users,
                (unsigned long long)fi->file_bytes);
  if (ckf_get_u32(h + 72) != 0)
    return fail(errstr, errstr_size, IX_EMALFORMED, name, "unknown flags %08x", ckf_get_u32(h + 72));
  if (fi->next_offset < 0)
    return fail(errstr, errstr_size, IX_EMALFORMED, name, "negative next offset %lld",
                (long long)fi->next_offset);

  /* A regular file's length is known up front: reject truncation before
   * touching the store. */
  struct stat sb;
  off_t pos = lseek(fd, 0, SEEK_CUR);
  *pos_out = pos;
  *regular_out = 0;
  if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && pos >= 0) {
    *regular_out = 1;
    uint64_t have = (uint64_t)sb.st_size - (uint64_t)pos + CKPT_HEADER_BYTES;
    if (have < fi->file_bytes)
      return fail(errstr, errstr_size, IX_ETRUNC, name, "truncated: %llu of %llu bytes",
                  (unsigned long long)have, (unsigned long long)fi->file_bytes);
    if (have > fi->file_bytes)
      return fail(errstr, errstr_size, IX_EMALFORMED, name,
                  "%llu bytes after the last block", (unsigned long long)(have - fi->file_bytes));
  }
  return 0;
}

int ckpt_load_fd(int fd, const char *name, int32_t partition, uint32_t fingerprint,
                 store_t *st, ckpt_file_info_t *info, char *errstr, size_t errstr_size) {
  ckpt_file_info_t fi = {0};
  uint32_t hcrc = 0;
  off_t pos = 0;
  int regular = 0;
  int hrc = read_header(fd, name, &fi, &hcrc, &pos, &regular, errstr, errstr_size);
  if (info) *info = fi;
  if (hrc) return hrc;
  if (regular) posix_fadvise(fd, pos, 0, POSIX_FADV_SEQUENTIAL);
  uint64_t rec = ckf_record_size(fi.blob_size);
  ssize_t got;

  if (st) {
    if (fi.partition != partition)
      return fail(errstr, errstr_size, IX_EMALFORMED, name,
                  "holds partition %d, expected partition %d", (int)fi.partition, (int)partition);
    if (fi.fingerprint != fingerprint)
      return fail(errstr, errstr_size, IX_EMISMATCH, name,
                  "written by a model with fingerprint %08x, the loaded model has %08x; "
                  "refusing to restore (load the matching model or move the checkpoint away)",
                  fi.fingerprint, fingerprint);
    if (fi.blob_size != store_blob_size(st))
      return fail(errstr, errstr_size, IX_EMISMATCH, name,
                  "state blobs of %u bytes, the store holds %zu-byte blobs", fi.blob_size,
                  store_blob_size(st));
    if (store_reserve(st, fi.users) != 0)
      return fail(errstr, errstr_size, IX_ENOMEM, name, "out of memory for %llu users",
                  (unsigned long long)fi.users);
  }

  size_t block_bytes = (size_t)(fi.block_records < fi.users ? fi.block_records : fi.users) * rec;
  unsigned char *buf = malloc(block_bytes + 4);
  if (!buf) return fail(errstr, errstr_size, IX_ENOMEM, name, "out of memory");
  size_t before = st ? store_partition_users(st, partition) : 0;
  uint64_t done = 0, dropped = regular ? ((uint64_t)pos - CKPT_HEADER_BYTES) & ~(uint64_t)(DROP_ALIGN - 1) : 0;
  uint32_t k = 0;
  int rc = 0;
  while (done < fi.users) {
    uint64_t left = fi.users - done;
    size_t nrec = (size_t)(left < fi.block_records ? left : fi.block_records);
    size_t len = nrec * rec;
    got = ckf_read_full(fd, buf, len + 4);
    if (got < 0) {
      rc = fail(errstr, errstr_size, IX_ESYS, name, "read failed: %s", ckf_errdesc(errno));
      break;
    }
    if ((size_t)got < len + 4) {
      rc = fail(errstr, errstr_size, IX_ETRUNC, name, "truncated in block %u (records %llu..)", k,
                (unsigned long long)done);
      break;
    }
    unsigned char idx[4];
    ckf_put_u32(idx, k);
    uint32_t crc = ix_crc32(ix_crc32(hcrc, idx, 4), buf, len);
    if (crc != ckf_get_u32(buf + len)) {
      rc = fail(errstr, errstr_size, IX_ECRC, name,
                "checksum mismatch in block %u (records %llu..%llu, bytes %llu..%llu)", k,
                (unsigned long long)done, (unsigned long long)(done + nrec - 1),
                (unsigned long long)(CKPT_HEADER_BYTES + done * rec + (uint64_t)k * 4u),
                (unsigned long long)(CKPT_HEADER_BYTES + (done + nrec) * rec + (uint64_t)k * 4u + 3));
      break;
    }
    if (st) {
      for (size_t r = 0; r < nrec; r++) {
        const unsigned char *p = buf + r * rec;
        if (store_load(st, partition, ckf_get_u64(p), (int64_t)ckf_get_u64(p + 8), p + CKF_REC_HEAD) != 0) {
          rc = fail(errstr, errstr_size, IX_ENOMEM, name, "out of memory inserting users");
          break;
        }
      }
      if (rc) break;
    }
    done += nrec;
    k++;
    if (st && regular) {
      /* Hand the file's page cache back as soon as it is consumed: those
       * pages are the cheapest memory the next slabs can get (see
       * docs/STATE.md, "Restore"). */
      uint64_t at = (uint64_t)pos + done * rec + (uint64_t)k * 4u;
      if (at - dropped >= DROP_BYTES || done == fi.users) {
        /* The kernel drops only whole folios (up to 2 MiB) inside the
         * range: start each range at the folio boundary the last one
         * stopped short of. */
        posix_fadvise(fd, (off_t)dropped, (off_t)(at - dropped), POSIX_FADV_DONTNEED);
        dropped = at & ~(uint64_t)(DROP_ALIGN - 1);
      }
    }
  }
  if (rc == 0) {
    unsigned char extra;
    got = ckf_read_full(fd, &extra, 1);
    if (got != 0)
      rc = fail(errstr, errstr_size, IX_EMALFORMED, name, "bytes after the last block");
  }
  if (rc == 0 && st && store_partition_users(st, partition) - before != fi.users)
    rc = fail(errstr, errstr_size, IX_EMALFORMED, name, "duplicate user ids (%llu records, %zu users)",
              (unsigned long long)fi.users, store_partition_users(st, partition) - before);
  /* A snapshot file is in copy order, not last-seen order: the store's
   * recency lists are sorted once here (a no-op pass for files in order). */
  if (rc == 0 && st && store_order_partition(st, partition) != 0)
    rc = fail(errstr, errstr_size, IX_ENOMEM, name, "out of memory ordering users");
  free(buf);
  return rc;
}

int ckpt_peek_partition(const char *dir, int32_t partition, uint32_t fingerprint,
                        size_t blob_size, ckpt_restore_info_t *info) {
  memset(info, 0, sizeof *info);
  info->refused_next_offset = -1;
  ckf_gen_list_t gl = {.partition = partition};
  if (ckf_scan_dir(dir, ckf_collect_gens, &gl) != 0 || gl.oom) {
    int rc = errno == ENOENT && !gl.oom ? 0 : gl.oom ? IX_ENOMEM : IX_ESYS;
    free(gl.gens);
    return rc;
  }
  if (gl.n) qsort(gl.gens, gl.n, sizeof *gl.gens, ckf_cmp_desc);
  int rc = 0;
  for (size_t i = 0; i < gl.n; i++) {
    char path[PATH_MAX];
    ckf_file_path(path, sizeof path, dir, partition, gl.gens[i]);
    ckpt_file_info_t fi = {0};
    uint32_t hcrc;
    off_t pos;
    int regular;
    int frc = IX_ESYS;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      frc = read_header(fd, path, &fi, &hcrc, &pos, &regular, NULL, 0);
      close(fd);
    }
    /* as ckpt_load_fd and ckpt_restore_partition judge a file they load */
    if (!frc && (fi.partition != partition || fi.generation != gl.gens[i])) frc = IX_EMALFORMED;
    if (!frc && (fi.fingerprint != fingerprint || fi.blob_size != blob_size)) {
      info->refused_next_offset = fi.next_offset;
      rc = IX_EMISMATCH;
      break;
    }
    if (!frc) {
      info->generation = fi.generation;
      info->next_offset = fi.next_offset;
      info->users = fi.users;
      info->created_ms = fi.created_ms;
      break;
    }
    info->skipped++;
  }
  free(gl.gens);
  return rc;
}

int ckpt_restore_partition(const char *dir, int32_t partition, uint32_t fingerprint,
                           store_t *st, ckpt_restore_info_t *info, char *errstr,
                           size_t errstr_size) {
  memset(info, 0, sizeof *info);
  info->refused_next_offset = -1;
  if (errstr && errstr_size) errstr[0] = '\0';
  store_drop_partition(st, partition);
  ckf_gen_list_t gl = {.partition = partition};
  if (ckf_scan_dir(dir, ckf_collect_gens, &gl) != 0) {
    if (errno == ENOENT) return 0;
    ckf_fmt(errstr, errstr_size, "cannot list checkpoint directory %s: %s", dir, ckf_errdesc(errno));
    return IX_ESYS;
  }
  if (gl.oom) {
    free(gl.gens);
    ckf_fmt(errstr, errstr_size, "out of memory listing %s", dir);
    return IX_ENOMEM;
  }
  if (gl.n) qsort(gl.gens, gl.n, sizeof *gl.gens, ckf_cmp_desc);
  int rc = 0;
  for (size_t i = 0; i < gl.n; i++) {
    char path[PATH_MAX], why[512];
    ckf_file_path(path, sizeof path, dir, partition, gl.gens[i]);
    why[0] = '\0';
    ckpt_file_info_t fi;
    int frc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      frc = fail(why, sizeof why, IX_ESYS, path, "open failed: %s", ckf_errdesc(errno));
    } else {
      frc = ckpt_load_fd(fd, path, partition, fingerprint, st, &fi, why, sizeof why);
      close(fd);
      if (frc == 0 && fi.generation != gl.gens[i])
        frc = fail(why, sizeof why, IX_EMALFORMED, path, "holds generation %llu, not %llu",
                   (unsigned long long)fi.generation, (unsigned long long)gl.gens[i]);
    }
    if (frc == 0) {
      info->generation = fi.generation;
      info->next_offset = fi.next_offset;
      info->users = fi.users;
      info->created_ms = fi.created_ms;
      LOG_INFO(MOD, "partition %d: restored %llu users from %s (next offset %lld)",
               (int)partition, (unsigned long long)fi.users, path, (long long)fi.next_offset);
      break;
    }
    store_drop_partition(st, partition);
    if (frc == IX_EMISMATCH || frc == IX_ENOMEM) {
      if (frc == IX_EMISMATCH) info->refused_next_offset = fi.next_offset; /* header read */
      LOG_ERROR(MOD, "partition %d: %s", (int)partition, why);
      ckf_append(errstr, errstr_size, why);
      rc = frc;
      break;
    }
    LOG_WARN(MOD, "partition %d: skipping unusable checkpoint %s", (int)partition, why);
    ckf_append(errstr, errstr_size, why);
    info->skipped++;
  }
  if (rc == 0 && info->generation == 0 && gl.n)
    LOG_WARN(MOD, "partition %d: no valid checkpoint in %s (%u skipped)", (int)partition, dir,
             info->skipped);
  free(gl.gens);
  return rc;
}
