/* Standby replicas (docs/STATE.md, "Standby replicas"): warm copies of
 * partitions this member does not own, kept by following their changelog
 * partitions with a group-less consumer and applying the records, in small
 * time-bounded slices on the loop thread, to a store of their own. When one
 * of them is assigned, its copy becomes the restore: only the changelog's
 * tail past the copy's position is read (daemon/clog.h, clog_assign_copy).
 * Which partitions a member follows: on a cluster that describes the group
 * (DescribeConsumerGroups), the placement every member computes alike from
 * the group's membership (standby_place); else, derived from its own
 * assignment (standby_want). Kafka's assignor stays in charge. Loop thread
 * only. */
#ifndef IX_DAEMON_STANDBY_H
#define IX_DAEMON_STANDBY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/clog.h"
#include "daemon/metrics.h"
#include "state/store.h"
#include "stream/consumer.h"
#include "stream/groupdesc.h"

typedef struct standby standby_t;

typedef struct {
  const char *brokers;
  const char *const *props; /* consumer properties; may be NULL */
  const char *topic;        /* the changelog topic */
  int32_t partitions;       /* the topic's (and the input's) partition count */
  uint32_t replicas;        /* state.standby_replicas, >= 1 */
  uint32_t fingerprint;     /* the serving model's: records of another are ignored */
  size_t blob_size;         /* the serving store's state size */
  slab_pool_t *pool;        /* borrowed, must outlive the standby: the copies' memory (NULL: none) */
  metrics_t *metrics;       /* borrowed; the standby gauges are added to it */
} standby_opts_t;

/* Returns 0 or a negative IX_E* with errstr filled. Free with standby_destroy(). */
int standby_new(const standby_opts_t *opts, standby_t **out, char *errstr, size_t errstr_size);
void standby_destroy(standby_t *sb); /* accepts NULL */

/* The rule: a member owning the sorted partitions A stands by for the first
 * replicas * (|A| + 1) partitions it does not own met by walking forward
 * from all of A at once (a+1 for every a in A, then a+2, ...), or for every
 * partition it does not own when there are fewer; nothing when it owns
 * none. Fills want[0..partitions) with 0/1 and returns how many are 1.
 * Pure: exposed for tests. */
size_t standby_want(const int32_t *owned, size_t n_owned, int32_t partitions, uint32_t replicas,
                    uint8_t *want);

/* The membership rule (docs/STATE.md, "Standby replicas"): members sorted
 * by (group.instance.id, member id, then their partitions, so that any two
 * entries have one order); a partition owned by the member of rank r is
 * placed on the first `replicas` members after r in that ring that do not
 * claim it; a partition nobody claims on the first `replicas` members from
 * rank p mod |members|. Fills want[0..partitions) with 1 for the
 * partitions placed on members[self] and returns how many; never one that
 * members[self] claims. Partitions outside [0, partitions) are ignored.
 * Independent of the order of members[]. Pure: exposed for tests. */
size_t standby_place(const groupdesc_member_t *members, size_t n_members, size_t self,
                     int32_t partitions, uint32_t replicas, uint8_t *want);

/* Which rule is in force (the gauge interestd_standby_rule{rule}). */
typedef enum {
  STANDBY_RULE_ASSIGNMENT = 0, /* own assignment (standby_want): the fallback */
  STANDBY_RULE_MEMBERSHIP = 1, /* the group's membership (standby_place) */
} standby_rule_t;
standby_rule_t standby_rule(const standby_t *sb);

/* Describes the consumer group of c (group.id `group`) after every
 * assignment and revocation and every few seconds, asynchronously (the
 * result's file descriptor watched on loop), and switches to the
 * membership rule once a description is consistent with this member's
 * assignment; back to the own-assignment rule after repeated failures.
 * Without this call only the own-assignment rule is used. c is borrowed:
 * call standby_destroy() before destroying it. Returns 0 or a negative IX_E*
 * with errstr filled. */
int standby_watch_group(standby_t *sb, uv_loop_t *loop, consumer_t *c, const char *group,
                        char *errstr, size_t errstr_size);
/* What the group watch does with each finished description (v borrowed
 * for the call): counted in interestd_standby_describes_total{result}; a
 * consistent one puts the membership rule in force (standby_place); a
 * failed one counts towards the fallback to the own-assignment rule after
 * 3 in a row. Called by standby_watch_group()'s poll callback; exposed so
 * that tests feed descriptions a cluster cannot be made to answer (a failed
 * DescribeConsumerGroups: tests/unit/test_standby.c). Loop thread. */
void standby_described(standby_t *sb, const groupdesc_view_t *v);
/* Closes the loop handle of standby_watch_group() (shutdown; the memory is
 * freed by standby_destroy() after the loop ran). Accepts NULL. */
void standby_stop(standby_t *sb);

/* This member now owns owned[0..n). Under the own-assignment rule: follow
 * the partitions standby_want() picks (new ones from their start), drop the
 * copies of the others; with n == 0 (between a revocation and the next
 * assignment, or an assignment lost) nothing changes: the copies stay warm.
 * Under the membership rule the copies stay as they are until the group is
 * described again (asked now). */
void standby_set_owned(standby_t *sb, const int32_t *owned, size_t n);

/* Apply fetched changelog records for up to budget_us microseconds; update
 * the gauges; send a group description when one is due. Returns the records
 * applied. Call from a timer. */
size_t standby_pump(standby_t *sb, uint64_t budget_us);

/* Partition p is assigned to this member: restore it through c from its
 * standby copy when there is one (source CLOG_FROM_STANDBY: only the tail
 * is read), else with clog_assign (the whole changelog). Arguments and
 * results as clog_assign's. The copy is consumed: p is not followed any
 * more until standby_set_owned() says so. sb may be NULL. */
int standby_assign(standby_t *sb, clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                   int64_t local_next, int64_t local_created_ms, clog_source_t *source,
                   int64_t *next_offset, char *errstr, size_t errstr_size);

/* The serving model switched (docs/STATE.md, "Model swaps"): every copy is
 * dropped and its partition followed again from the changelog's start with
 * an accumulator for fingerprint (states of blob_size bytes); the old
 * model's records are then ignored and the new epoch's kept. 0 or IX_ENOMEM
 * (the copies then stay the old model's, and a hand-over from one restores
 * cold; logged by clog). */
int standby_switch_model(standby_t *sb, uint32_t fingerprint, size_t blob_size);
/* Partitions followed now, and the users held in their copies. */
/* 1 when standby_assign() would restore p from its copy (reading only the
 * changelog's tail), else 0 (also for sb NULL). */
int standby_has_copy(const standby_t *sb, int32_t p);
size_t standby_partitions(const standby_t *sb);
size_t standby_users(const standby_t *sb);

#endif
