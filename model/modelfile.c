/* Model file read/write (format in modelfile.h). Little-endian hosts only
 * (checked at compile time); every length is validated before use. */
#include "model/modelfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc.h"
#include "common/err.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "modelfile.c assumes a little-endian host"
#endif

/* magic 8 | version 4 | V H EC EA I flags 24 | half_life 4 | n_params 8 | note_len 4 */
#define MF_FIXED 52u

typedef struct {
  unsigned char *p;
  size_t len, cap;
} mf_buf_t;

static int buf_put(mf_buf_t *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) return IX_ENOMEM;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
  return 0;
}

int modelfile_write(const char *path, modelfile_t *mf, char *errstr, size_t errstr_size) {
  int rc = arch_dims_check(&mf->dims, errstr, errstr_size);
  if (rc < 0) return rc;
  arch_layout_t L;
  arch_layout(&mf->dims, &L);
  uint32_t note_len = (uint32_t)strnlen(mf->note, MODELFILE_NOTE_MAX);
  uint64_t n_params = L.total;
  uint32_t version = (mf->dims.flags & ARCH_F_EXPERTS) ? MODELFILE_VERSION : MODELFILE_VERSION_MIN;
  mf_buf_t b = {0};
  rc = 0;
  rc |= buf_put(&b, MODELFILE_MAGIC, 8);
  rc |= buf_put(&b, &version, 4);
  rc |= buf_put(&b, &mf->dims.V, 4);
  rc |= buf_put(&b, &mf->dims.H, 4);
  rc |= buf_put(&b, &mf->dims.EC, 4);
  rc |= buf_put(&b, &mf->dims.EA, 4);
  rc |= buf_put(&b, &mf->dims.I, 4);
  rc |= buf_put(&b, &mf->dims.flags, 4);
  rc |= buf_put(&b, &mf->half_life_s, 4);
  rc |= buf_put(&b, &n_params, 8);
  rc |= buf_put(&b, &note_len, 4);
  rc |= buf_put(&b, mf->note, note_len);
  uint64_t zero = 0;
  rc |= buf_put(&b, &zero, 8); /* ids[0]: the "other" bucket */
  rc |= buf_put(&b, mf->vocab_ids + 1, ((size_t)mf->dims.V - 1) * 8);
  rc |= buf_put(&b, mf->params, L.total * sizeof(float));
  if (rc) {
    free(b.p);
    snprintf(errstr, errstr_size, "out of memory writing model file %s", path);
    return IX_ENOMEM;
  }
  uint32_t crc = ix_crc32(0, b.p, b.len);
  if (buf_put(&b, &crc, 4) < 0) {
    free(b.p);
    snprintf(errstr, errstr_size, "out of memory writing model file %s", path);
    return IX_ENOMEM;
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    snprintf(errstr, errstr_size, "cannot create %s: %s", tmp, strerror(errno));
    free(b.p);
    return IX_EIO;
  }
  int ok = fwrite(b.p, 1, b.len, f) == b.len;
  ok = (fflush(f) == 0) && ok;
  ok = (fsync(fileno(f)) == 0) && ok;
  ok = (fclose(f) == 0) && ok;
  free(b.p);
  if (!ok || rename(tmp, path) != 0) {
    snprintf(errstr, errstr_size, "cannot write model file %s: %s", path, strerror(errno));
    unlink(tmp);
    return IX_EIO;
  }
  mf->crc = crc;
  return 0;
}

static uint32_t rd32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

int modelfile_parse(const void *buf, size_t len, modelfile_t *mf, char *errstr,
                    size_t errstr_size) {
  const unsigned char *p = buf;
  memset(mf, 0, sizeof(*mf));
  if (len < 8 || memcmp(p, MODELFILE_MAGIC, 8) != 0) {
    if (len < 8 && memcmp(p, MODELFILE_MAGIC, len) == 0) {
      snprintf(errstr, errstr_size, "model file is truncated: %zu bytes, header needs %u", len,
               MF_FIXED);
      return IX_ETRUNC;
    }
    snprintf(errstr, errstr_size, "not an interestd model file (bad magic; expected \"%s\")",
             MODELFILE_MAGIC);
    return IX_EBADMAGIC;
  }
  if (len < 12) {
    snprintf(errstr, errstr_size, "model file is truncated: %zu bytes, header needs %u", len,
             MF_FIXED);
    return IX_ETRUNC;
  }
  uint32_t version = rd32(p + 8);
  if (version < MODELFILE_VERSION_MIN || version > MODELFILE_VERSION) {
    snprintf(errstr, errstr_size,
             "model file version %u is not supported (this build reads versions %u to %u)",
             version, MODELFILE_VERSION_MIN, MODELFILE_VERSION);
    return IX_EVERSION;
  }
  if (len < MF_FIXED) {
    snprintf(errstr, errstr_size, "model file is truncated: %zu bytes, header needs %u", len,
             MF_FIXED);
    return IX_ETRUNC;
  }
  arch_dims_t d;
  d.V = rd32(p + 12);
  d.H = rd32(p + 16);
  d.EC = rd32(p + 20);
  d.EA = rd32(p + 24);
  d.I = rd32(p + 28);
  d.flags = rd32(p + 32);
  float half_life;
  memcpy(&half_life, p + 36, 4);
  uint64_t n_params;
  memcpy(&n_params, p + 40, 8);
  uint32_t note_len = rd32(p + 48);
  char why[256];
  int rc = arch_dims_check(&d, why, sizeof why);
  if (rc < 0) {
    snprintf(errstr, errstr_size, "model file dimensions are invalid: %s", why);
    return IX_EMISMATCH;
  }
  if (version < 2 && (d.flags & ARCH_F_EXPERTS)) {
    snprintf(errstr, errstr_size,
             "model file version %u cannot hold a head with experts (flags 0x%x): corrupted "
             "header?", version, d.flags);
    return IX_EMISMATCH;
  }
  arch_layout_t L;
  arch_layout(&d, &L);
  if (n_params != L.total) {
    snprintf(errstr, errstr_size,
             "model file holds %llu parameters but dimensions V=%u H=%u EC=%u EA=%u I=%u "
             "flags=0x%x need %zu",
             (unsigned long long)n_params, d.V, d.H, d.EC, d.EA, d.I, d.flags, L.total);
    return IX_EMISMATCH;
  }
  if (!(half_life > 0.0f) || half_life > 1e9f) {
    snprintf(errstr, errstr_size, "model file half-life %g s is not a positive number",
             (double)half_life);
    return IX_EMISMATCH;
  }
  if (note_len > MODELFILE_NOTE_MAX) {
    snprintf(errstr, errstr_size, "model file note length %u exceeds %u (corrupted header?)",
             note_len, MODELFILE_NOTE_MAX);
    return IX_EMALFORMED;
  }
  size_t need = (size_t)MF_FIXED + note_len + (size_t)d.V * 8 + L.total * 4 + 4;
  if (len < need) {
    snprintf(errstr, errstr_size, "model file is truncated: %zu bytes, expected %zu", len, need);
    return IX_ETRUNC;
  }
  if (len > need) {
    snprintf(errstr, errstr_size, "model file has %zu trailing bytes after the checksum",
             len - need);
    return IX_EMALFORMED;
  }
  uint32_t crc_file = rd32(p + need - 4), crc = ix_crc32(0, p, need - 4);
  if (crc != crc_file) {
    snprintf(errstr, errstr_size,
             "model file checksum mismatch (stored %08x, computed %08x): the file is corrupted",
             crc_file, crc);
    return IX_ECRC;
  }
  const unsigned char *q = p + MF_FIXED;
  memcpy(mf->note, q, note_len);
  mf->note[note_len] = '\0';
  q += note_len;
  mf->vocab_ids = malloc((size_t)d.V * 8);
  mf->params = malloc(L.total * sizeof(float) + 1);
  if (!mf->vocab_ids || !mf->params) {
    modelfile_free(mf);
    snprintf(errstr, errstr_size, "out of memory loading model file");
    return IX_ENOMEM;
  }
  memcpy(mf->vocab_ids, q, (size_t)d.V * 8);
  q += (size_t)d.V * 8;
  memcpy(mf->params, q, L.total * sizeof(float));
  for (size_t i = 0; i < L.total; i++)
    if (!isfinite(mf->params[i])) {
      modelfile_free(mf);
      snprintf(errstr, errstr_size,
               "model file parameter %zu of %zu is not finite: the file is corrupted",
               i, L.total);
      return IX_EMALFORMED;
    }
  if (d.flags & ARCH_F_EXPERTS) {
    float beta = mf->params[L.x_beta], gamma = mf->params[L.x_gamma], hl = mf->params[L.x_hl];
    if (!(beta > 0.0f && beta <= 1.0f) || !(gamma > 0.0f && gamma <= 1.0f) ||
        !(hl >= 0.0f && hl <= 1e9f)) {
      modelfile_free(mf);
      snprintf(errstr, errstr_size,
               "model file expert constants out of range (beta %g, gamma %g in (0, 1]; "
               "half-life %g s in [0, 1e9])", (double)beta, (double)gamma, (double)hl);
      return IX_EMISMATCH;
    }
  }
  mf->vocab_ids[0] = 0;
  mf->dims = d;
  mf->half_life_s = half_life;
  mf->crc = crc;
  return 0;
}

int modelfile_read(const char *path, modelfile_t *mf, char *errstr, size_t errstr_size) {
  memset(mf, 0, sizeof(*mf));
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    snprintf(errstr, errstr_size, "cannot open model file %s: %s", path, strerror(e));
    return e == ENOENT ? IX_ENOENT : IX_EIO;
  }
  unsigned char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : (1u << 20);
      unsigned char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        snprintf(errstr, errstr_size, "out of memory reading model file %s", path);
        return IX_ENOMEM;
      }
      buf = nb;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  int rd_err = ferror(f);
  fclose(f);
  if (rd_err) {
    free(buf);
    snprintf(errstr, errstr_size, "cannot read model file %s", path);
    return IX_EIO;
  }
  char why[512];
  int rc = modelfile_parse(buf, len, mf, why, sizeof why);
  free(buf);
  if (rc < 0) snprintf(errstr, errstr_size, "%s: %s", path, why);
  return rc;
}

void modelfile_free(modelfile_t *mf) {
  if (!mf) return;
  free(mf->vocab_ids);
  free(mf->params);
  mf->vocab_ids = NULL;
  mf->params = NULL;
}
