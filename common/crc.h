/* Checksums for every file format: CRC-32 (IEEE 802.3, the one zlib's
 * crc32() computes), from libdeflate, not hand-written: its carry-less
 * multiply (PCLMULQDQ) code runs 90-120 ns per 1,108-byte changelog record
 * on the build VM against zlib 1.2.13's 370-1,100 ns (docs/PERFORMANCE.md,
 * "Changelog topic"), the same values. */
#ifndef IX_COMMON_CRC_H
#define IX_COMMON_CRC_H
#include <libdeflate.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE 802.3, as zlib's crc32()) of len bytes, continuing from crc
 * (start with 0). */
static inline uint32_t ix_crc32(uint32_t crc, const void *buf, size_t len) {
  return (uint32_t)libdeflate_crc32(crc, buf, len);
}
#endif
