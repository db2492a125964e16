/* The model file: everything needed to run a model, checksummed.
 * Layout (little-endian):
 *   magic "IXMODEL1" (8 bytes) | version u32 (1 or 2, MODELFILE_VERSION below)
 *   V H EC EA I flags  (u32 each, arch_dims_t) | half_life_s f32
 *   n_params u64 (= arch_layout().total) | note_len u32 | note bytes
 *   vocab ids: V x u64 (ids[0] = 0, the "other" bucket)
 *   params: n_params x f32 (the flat array of arch.h)
 *   crc32 u32 (zlib CRC-32 of every byte before it)
 * flags: ARCH_F_* of arch.h (shift unit, bf16 head); unknown flags are
 * refused, so a file with ARCH_F_HEAD_BF16 does not load in a build older
 * than that flag (clear it to serve the same weights there).
 * A truncated, corrupted or mismatched file fails with a sentence saying so. */
#ifndef IX_MODEL_MODELFILE_H
#define IX_MODEL_MODELFILE_H

#include <stddef.h>
#include <stdint.h>

#include "model/arch.h"

#define MODELFILE_MAGIC "IXMODEL1"
/* Version 2: the head with experts (ARCH_F_EXPERTS) exists; files of such
 * models are written as version 2, others as version 1, so a build before
 * the experts refuses an experts model by its version ("model file version 2
 * is not supported") and still reads every other model. This build reads 1
 * and 2 and refuses any other version, and a version-1 file that claims
 * ARCH_F_EXPERTS. */
#define MODELFILE_VERSION 2u
#define MODELFILE_VERSION_MIN 1u
#define MODELFILE_NOTE_MAX 1024u

typedef struct {
  arch_dims_t dims;
  float half_life_s;
  uint64_t *vocab_ids; /* V ids, owned */
  float *params;       /* arch_layout(dims).total floats, owned */
  char note[MODELFILE_NOTE_MAX + 1]; /* free text, e.g. how it was trained */
  uint32_t crc;        /* the file's CRC-32 (filled by read and write) */
} modelfile_t;

/* Write atomically (temp file + rename). Returns 0 or IX_EIO/IX_EINVAL with
 * errstr filled. Sets mf->crc. */
int modelfile_write(const char *path, modelfile_t *mf, char *errstr, size_t errstr_size);

/* Read and validate; on success *mf owns vocab_ids and params (free with
 * modelfile_free). Errors: IX_ENOENT/IX_EIO (open/read), IX_EBADMAGIC,
 * IX_EVERSION, IX_ETRUNC, IX_ECRC, IX_EMISMATCH (dims/param count), with a
 * sentence naming the file. */
int modelfile_read(const char *path, modelfile_t *mf, char *errstr, size_t errstr_size);
/* The same over a memory buffer (what fuzzers call). */
int modelfile_parse(const void *buf, size_t len, modelfile_t *mf, char *errstr,
                    size_t errstr_size);

/* Free what read/parse allocated; accepts a zeroed or freed struct. */
void modelfile_free(modelfile_t *mf);

#endif
