/* A group-less reader of chosen partitions of one topic, from given offsets
 * on, in batches (the model swap's warm-up re-reads a window of the input
 * topic with it while the group consumer serves). Never commits, never joins
 * the group. All calls from one thread (any thread: the warm-up worker). */
#ifndef IX_STREAM_READER_H
#define IX_STREAM_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stream/rec.h"

typedef struct reader reader_t;

/* Creates a reader of topic with the "key=value" librdkafka properties
 * props (NULL-terminated, may be NULL; group settings in them are harmless:
 * nothing is committed). Returns 0 or IX_EKAFKA / IX_ECONFIG / IX_ENOMEM with
 * errstr filled. Free with reader_destroy(). */
int reader_new(const char *brokers, const char *const *props, const char *topic,
               reader_t **out, char *errstr, size_t errstr_size);
void reader_destroy(reader_t *r);

/* Reads partitions[i] from offsets[i] (absolute, >= 0) on; replaces any
 * earlier assignment. Returns 0 or IX_EKAFKA. */
int reader_assign(reader_t *r, const int32_t *partitions, const int64_t *offsets, size_t n);

/* Stops / restarts fetching partition. Messages of it already fetched but not
 * yet returned are dropped and read again after reader_resume(): reading
 * resumes right after the last message reader_poll() returned. Returns 0 or
 * IX_EKAFKA. */
int reader_pause(reader_t *r, int32_t partition);
int reader_resume(reader_t *r, int32_t partition);

/* Waits up to timeout_ms for messages and takes up to max of them. Fills
 * out[0..n) and returns n (0 = none in time), or IX_ENOMEM. Fetch errors are
 * logged and skipped. key/value borrowed until the next reader_poll() or
 * reader_release(). */
ssize_t reader_poll(reader_t *r, rec_t *out, size_t max, int timeout_ms);
void reader_release(reader_t *r);

/* The partition's low and high watermarks, asked of its leader one after the
 * other (each waits up to timeout_ms). Returns 0 with 0 <= *lo <= *hi, or
 * IX_EKAFKA (logged; *lo and *hi untouched) when either is not known. An
 * offset assigned below the low watermark reads from it (auto.offset.reset =
 * earliest, fixed for this reader). */
int reader_watermarks(reader_t *r, int32_t partition, int timeout_ms, int64_t *lo, int64_t *hi);

#endif
