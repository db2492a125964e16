/* The process's clocks, written once: CLOCK_MONOTONIC for durations and
 * deadlines, CLOCK_REALTIME for timestamps that leave the process. */
#ifndef IX_COMMON_CLOCK_H
#define IX_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic time in nanoseconds (arbitrary origin). */
static inline uint64_t ix_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Monotonic time in milliseconds (arbitrary origin). */
static inline uint64_t ix_mono_ms(void) { return ix_mono_ns() / 1000000u; }

/* Monotonic time in seconds (arbitrary origin). */
static inline double ix_mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wall-clock time in milliseconds since the Unix epoch. */
static inline int64_t ix_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
