/* Private to state/: the checkpoint file format and the file system helpers
 * shared by the writers (ckpt_snapshot.c) and the reader (ckpt_restore.c).
 * The format itself is documented in docs/FORMATS.md ("Checkpoint files");
 * the public interface is state/checkpoint.h. */
#ifndef IX_STATE_CKPT_FILE_H
#define IX_STATE_CKPT_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "state/checkpoint.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "checkpoint files are little-endian; add byte swapping for this target");

extern const unsigned char CKF_MAGIC[8];
#define CKF_REC_HEAD 16u                  /* user id + last seen */
#define CKF_BLOCK_TARGET_BYTES (1u << 20) /* records per block aim at ~1 MiB */
#define CKF_MAX_BLOB_BYTES (64u << 20)
#define CKF_MAX_BLOCK_BYTES (64ull << 20)

static inline void ckf_put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void ckf_put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t ckf_get_u32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline uint64_t ckf_get_u64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* ---- sizes and the header ---- */
static inline size_t ckf_record_size(size_t blob_size) { return CKF_REC_HEAD + blob_size; }
/* Records per block for blobs of blob_size bytes (1..65536, ~1 MiB blocks). */
uint32_t ckf_block_records_for(size_t blob_size);
/* The whole file's bytes: header, records, one CRC per block. */
uint64_t ckf_file_bytes_for(uint64_t users, uint32_t block_records, size_t blob_size);
/* Fills the CKPT_HEADER_BYTES header h, its CRC included. */
void ckf_build_header(unsigned char *h, int32_t partition, uint32_t fingerprint,
                      int64_t next_offset, uint64_t gen, uint64_t users, int64_t created_ms,
                      uint32_t blob_size, uint32_t block_records);

/* ---- file names and directories ---- */
void ckf_file_path(char *buf, size_t size, const char *dir, int32_t partition, uint64_t gen);
/* This process's temporary name for that file. */
void ckf_tmp_path(char *buf, size_t size, const char *dir, int32_t partition, uint64_t gen);
typedef void (*ckf_scan_fn)(void *ctx, int32_t partition, uint64_t gen);
/* Calls fn for every checkpoint file name in dir. Returns 0, or -1 with errno. */
int ckf_scan_dir(const char *dir, ckf_scan_fn fn, void *ctx);
/* A partition's generations, for ckf_scan_dir(dir, ckf_collect_gens, &list);
 * oom is set when the list could not grow. Free gens. */
typedef struct {
  int32_t partition;
  uint64_t *gens;
  size_t n, cap;
  int oom;
} ckf_gen_list_t;
void ckf_collect_gens(void *ctx, int32_t partition, uint64_t gen);
/* qsort comparator: uint64_t generations, newest first. */
int ckf_cmp_desc(const void *a, const void *b);

/* ---- reads, writes, messages ---- */
/* Writes all of buf (retrying on EINTR). 0, or -1 with errno. */
int ckf_write_all(int fd, const void *buf, size_t len);
/* Reads up to len bytes; returns bytes read (< len only at EOF) or -1. */
ssize_t ckf_read_full(int fd, void *buf, size_t len);
int ckf_fsync_dir(const char *dir);
/* mkdir -p; 0, or -1 with errno (ENOTDIR when dir is not a directory). */
int ckf_mkdir_p(const char *dir);
/* snprintf into buf when buf is not NULL. */
void ckf_fmt(char *buf, size_t size, const char *f, ...) __attribute__((format(printf, 3, 4)));
/* Appends "; msg" (or msg when buf is empty) to buf. */
void ckf_append(char *buf, size_t size, const char *msg);
/* strerror without the locale: a static string. */
const char *ckf_errdesc(int e);

#endif
