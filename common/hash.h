/* 64-bit mixers for hash tables and seeded choices. Pure functions whose
 * outputs feed deterministic results (user splits, training initialisation):
 * never change their constants. */
#ifndef IX_COMMON_HASH_H
#define IX_COMMON_HASH_H

#include <stdint.h>

/* MurmurHash3's 64-bit finaliser: a bijection with full avalanche. */
static inline uint64_t ix_fmix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

/* splitmix64 of x: the value the splitmix64 generator returns from state x
 * (it then advances its state by 0x9e3779b97f4a7c15). */
static inline uint64_t ix_splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

#endif
