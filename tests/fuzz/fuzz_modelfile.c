/* libFuzzer target: the model file parser on arbitrary bytes. Each input is
 * parsed twice: as given (mostly stopped by the CRC) and with its trailing
 * CRC-32 recomputed, so the structural checks behind the CRC get fuzzed too.
 * Properties: never crash; failures are documented codes; a success has
 * consistent dimensions and finite weights. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/err.h"
#include "model/modelfile.h"

static void parse_one(const uint8_t *buf, size_t len) {
  modelfile_t mf;
  memset(&mf, 0, sizeof mf);
  char err[256];
  int rc = modelfile_parse(buf, len, &mf, err, sizeof err);
  if (rc == 0) {
    if (arch_dims_check(&mf.dims, err, sizeof err) != 0) abort();
    arch_layout_t lay;
    arch_layout(&mf.dims, &lay);
    for (size_t i = 0; i < lay.total; i++)
      if (!isfinite(mf.params[i])) abort();
    if (mf.vocab_ids[0] != 0) abort();
  } else if (rc != IX_EBADMAGIC && rc != IX_EVERSION && rc != IX_ETRUNC && rc != IX_ECRC &&
             rc != IX_EMISMATCH && rc != IX_ERANGE && rc != IX_EMALFORMED && rc != IX_EINVAL) {
    abort();
  } else if (err[0] == '\0') {
    abort(); /* every refusal says why */
  }
  modelfile_free(&mf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse_one(data, size);
  if (size >= 4 && size <= (1u << 20)) {
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    uint32_t crc = ix_crc32(0, copy, size - 4);
    memcpy(copy + size - 4, &crc, 4); /* little-endian host, as the format */
    parse_one(copy, size);
    free(copy);
  }
  return 0;
}
