/* Oldest-first order for a window of consumed messages.
 *
 * The consumer queue hands over messages partition by partition, in the
 * order fetch responses arrived, so an old event of one partition can wait
 * behind a whole batch of younger events of another. order_oldest_first()
 * reorders a window so the oldest events are processed (and their
 * predictions stamped) first, the way Kafka Streams picks the partition
 * whose head record has the smallest timestamp.
 *
 * Contract: the result is a permutation of the input in which every
 * partition's messages keep their relative (offset) order, so every user's
 * events are still applied in order and predictions are unchanged. A
 * message's sort key is the largest timestamp seen so far in its partition
 * within the window (a timestamp that goes backwards does not jump ahead of
 * its partition); ties keep input order. Cost: O(n log r) for r runs of
 * non-decreasing keys, O(n) when the window is already in order. */
#ifndef IX_CORE_ORDER_H
#define IX_CORE_ORDER_H

#include <stddef.h>

#include "stream/rec.h"

typedef struct order order_t;

/* Scratch space for windows of up to max messages; NULL without memory. */
order_t *order_new(size_t max);
void order_free(order_t *o);

/* Reorders recs[0..n) in place; a window larger than the max given to
 * order_new() is left as it is. Returns 1 if anything moved. */
int order_oldest_first(order_t *o, rec_t *recs, size_t n);

#endif
