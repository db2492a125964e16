/* The consumer group's membership, asked of the group coordinator with the
 * Admin API's DescribeConsumerGroups on the consumer's own client (no
 * second client): every member's id and its assignment of the subscribed
 * topic. Asynchronous: groupdesc_request() sends, the result arrives on a
 * queue routed to a file descriptor (groupdesc_fd) that a libuv loop
 * watches, and groupdesc_take() reads it without blocking. Used by the
 * standby placement (docs/STATE.md, "Standby replicas"). Only for a cluster
 * that answers the Admin API: librdkafka 2.0.2 hangs its client's main
 * thread on a DescribeConsumerGroups the broker cannot take (the mock
 * cluster; fixed upstream in 2.10), so the caller never asks there and
 * keeps the fallback rule. This consumer's own member id is not
 * asked for: librdkafka 2.0's rd_kafka_memberid() waits for the group
 * thread, which does not answer while a JoinGroup is outstanding (seen:
 * the loop blocked for good during a join on the mock); the caller finds
 * itself by its assignment. All functions: loop thread only. */
#ifndef IX_STREAM_GROUPDESC_H
#define IX_STREAM_GROUPDESC_H

#include <stddef.h>
#include <stdint.h>

#include "stream/consumer.h"

typedef struct groupdesc groupdesc_t;

/* One member of the group as the coordinator describes it. Strings and
 * parts borrowed from the description. */
typedef struct {
  const char *member_id;   /* the coordinator's member id (unique in the group) */
  const char *instance_id; /* group.instance.id, "" when not set (dynamic membership) */
  const char *client_id;
  const int32_t *parts;    /* its partitions of the subscribed topic, ascending */
  size_t n_parts;
} groupdesc_member_t;

/* A finished description. */
typedef struct {
  int err;                 /* 0, or IX_EKAFKA: the group could not be described */
  const char *error;       /* with err: the reason, a sentence */
  int stable;              /* the group is Stable (no rebalance in progress) */
  const char *state;       /* the group state's name (Stable, PreparingRebalance, ...) */
  const groupdesc_member_t *members;
  size_t n_members;
  uint64_t took_ms;        /* from the request to the result */
} groupdesc_view_t;

/* A describer for group `group` on consumer c's client (borrowed: destroy
 * the describer before the consumer). Returns 0 or IX_ENOMEM / IX_ESYS with
 * errstr filled. Free with groupdesc_destroy(). */
int groupdesc_new(consumer_t *c, const char *group, groupdesc_t **out, char *errstr,
                  size_t errstr_size);
/* Accepts NULL. A request still in flight is abandoned (its result freed by
 * librdkafka with the queue). */
void groupdesc_destroy(groupdesc_t *g);

/* Readable when a result arrived; groupdesc_take() clears it. */
int groupdesc_fd(const groupdesc_t *g);

/* Sends one DescribeConsumerGroups request (the coordinator is looked up
 * first), answered within about timeout_ms. Returns 0, or IX_ESTATE when a
 * request is still in flight (at most one at a time). */
int groupdesc_request(groupdesc_t *g, int timeout_ms);
/* 1 while a request is in flight. */
int groupdesc_in_flight(const groupdesc_t *g);

/* Takes the finished description, if any, without blocking: 1 with *view
 * filled (borrowed; valid until the next groupdesc_take() or
 * groupdesc_destroy()), 0 when none is ready. Members are in the
 * coordinator's order. */
int groupdesc_take(groupdesc_t *g, groupdesc_view_t *view);

#endif
