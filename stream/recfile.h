/* Record files: recorded topics on disk (docs/FORMATS.md). Header with magic
 * and version, then length-prefixed records each with its own CRC-32.
 * Appendable; a corrupted or truncated tail is reported with its byte offset
 * and every record before it stays readable. */
#ifndef IX_STREAM_RECFILE_H
#define IX_STREAM_RECFILE_H

#include <stddef.h>
#include <stdint.h>

#include "stream/rec.h"

#define RECFILE_VERSION 1
#define RECFILE_HEADER_SIZE 16          /* "IXRECORD", u32 version, u32 flags (0) */
#define RECFILE_REC_HEAD 32             /* fixed part of a record, incl. its header CRC */
#define RECFILE_MAX_KEY (64u * 1024u)   /* larger keys are refused (IX_ETOOBIG / IX_EMALFORMED) */
#define RECFILE_MAX_VALUE (16u * 1024u * 1024u)

/* recfile_writer_open() modes ("append" argument). */
#define RECFILE_CREATE 0          /* create or truncate */
#define RECFILE_APPEND 1          /* append; refuse a file with a damaged tail */
#define RECFILE_APPEND_TRUNCATE 2 /* append; cut a damaged tail off first */

typedef struct rec_writer rec_writer_t;
typedef struct rec_reader rec_reader_t;

/* Create (truncate) or, with append=1, open for append (validating the
 * existing file's header; a damaged tail is refused, naming its offset).
 * Free with recfile_writer_close(). */
int recfile_writer_open(const char *path, int append, rec_writer_t **out,
                        char *errstr, size_t errstr_size);
/* Buffers one record (IX_ETOOBIG beyond RECFILE_MAX_KEY/VALUE; a write
 * error is sticky). */
int recfile_write(rec_writer_t *w, const rec_t *rec);
/* Flushes, fsyncs and closes; accepts NULL. Returns 0 or an error. */
int recfile_writer_close(rec_writer_t *w);

int recfile_reader_open(const char *path, rec_reader_t **out, char *errstr,
                        size_t errstr_size);
/* 0 and *rec filled (key and value valid until the next recfile_read());
 * IX_EEOF at a clean end; IX_ECRC / IX_ETRUNC /
 * IX_EMALFORMED for a damaged record (see recfile_reader_error_offset). */
int recfile_read(rec_reader_t *r, rec_t *rec);
/* Byte offset of the record that failed (or of the next record). */
uint64_t recfile_reader_error_offset(const rec_reader_t *r);
/* Byte offset of the record the last successful recfile_read() returned. */
uint64_t recfile_reader_record_offset(const rec_reader_t *r);
/* Accepts NULL. */
void recfile_reader_close(rec_reader_t *r);

#endif
