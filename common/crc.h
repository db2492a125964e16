/* Checksums for every file format: zlib's CRC-32 (IEEE), not hand-written. */
#ifndef IX_COMMON_CRC_H
#define IX_COMMON_CRC_H
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* CRC-32 (IEEE 802.3, zlib) of len bytes, continuing from crc (start with 0). */
static inline uint32_t ix_crc32(uint32_t crc, const void *buf, size_t len) {
  return (uint32_t)crc32(crc, (const Bytef *)buf, (uInt)len);
}
#endif
