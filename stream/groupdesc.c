/* DescribeConsumerGroups on the consumer's client, its result queue routed
 * to a pipe for the loop (docs/STATE.md, "Standby replicas"). */
#include "stream/groupdesc.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "stream/kafka_internal.h"

struct groupdesc {
  rd_kafka_t *rk;           /* the consumer's (borrowed) */
  rd_kafka_queue_t *q;      /* results of our requests */
  char *group;
  const char *topic;        /* the consumer's subscribed topic (borrowed) */
  int pipefd[2];
  int in_flight;
  uint64_t sent_ms;
  /* the last result, kept until the next take: the view borrows from it */
  rd_kafka_event_t *ev;
  groupdesc_member_t *members;
  int32_t *parts;
  char error[512];
};

int groupdesc_new(consumer_t *c, const char *group, groupdesc_t **out, char *errstr,
                  size_t errstr_size) {
  groupdesc_t *g = calloc(1, sizeof *g);
  if (!g) {
    snprintf(errstr, errstr_size, "out of memory");
    return IX_ENOMEM;
  }
  g->pipefd[0] = g->pipefd[1] = -1;
  g->rk = consumer_rk(c);
  g->topic = consumer_topic_name(c);
  if (!(g->group = strdup(group)) || !(g->q = rd_kafka_queue_new(g->rk))) {
    snprintf(errstr, errstr_size, "out of memory");
    groupdesc_destroy(g);
    return IX_ENOMEM;
  }
  if (pipe2(g->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
    snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
    groupdesc_destroy(g);
    return IX_ESYS;
  }
  rd_kafka_queue_io_event_enable(g->q, g->pipefd[1], "1", 1);
  *out = g;
  return 0;
}

static void drop_last(groupdesc_t *g) {
  if (g->ev) rd_kafka_event_destroy(g->ev);
  g->ev = NULL;
  free(g->members);
  g->members = NULL;
  free(g->parts);
  g->parts = NULL;
}

void groupdesc_destroy(groupdesc_t *g) {
  if (!g) return;
  drop_last(g);
  if (g->q) {
    rd_kafka_queue_io_event_enable(g->q, -1, NULL, 0);
    rd_kafka_queue_destroy(g->q);
  }
  for (int i = 0; i < 2; i++)
    if (g->pipefd[i] >= 0) close(g->pipefd[i]);
  free(g->group);
  free(g);
}

int groupdesc_fd(const groupdesc_t *g) { return g->pipefd[0]; }

int groupdesc_in_flight(const groupdesc_t *g) { return g->in_flight; }

int groupdesc_request(groupdesc_t *g, int timeout_ms) {
  if (g->in_flight) return IX_ESTATE;
  rd_kafka_AdminOptions_t *opt =
      rd_kafka_AdminOptions_new(g->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
  if (!opt) return IX_ENOMEM;
  char why[256];
  /* the bound is for the whole operation: coordinator lookup and reply */
  rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, why, sizeof why);
  const char *groups[1] = {g->group};
  rd_kafka_DescribeConsumerGroups(g->rk, groups, 1, opt, g->q);
  rd_kafka_AdminOptions_destroy(opt);
  g->in_flight = 1;
  g->sent_ms = ix_mono_ms();
  return 0;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static int fail(groupdesc_view_t *v, groupdesc_t *g, const char *fmt, const char *what) {
  snprintf(g->error, sizeof g->error, fmt, what);
  v->err = IX_EKAFKA;
  v->error = g->error;
  return 1;
}

/* Fills v from g->ev (a DescribeConsumerGroups result). Returns 1. */
static int parse(groupdesc_t *g, groupdesc_view_t *v) {
  if (rd_kafka_event_error(g->ev))
    return fail(v, g, "DescribeConsumerGroups failed: %s", rd_kafka_event_error_string(g->ev));
  const rd_kafka_DescribeConsumerGroups_result_t *res =
      rd_kafka_event_DescribeConsumerGroups_result(g->ev);
  size_t n_groups = 0;
  const rd_kafka_ConsumerGroupDescription_t **grps =
      res ? rd_kafka_DescribeConsumerGroups_result_groups(res, &n_groups) : NULL;
  if (!grps || n_groups != 1) return fail(v, g, "%s", "DescribeConsumerGroups: no group in the result");
  const rd_kafka_ConsumerGroupDescription_t *grp = grps[0];
  const rd_kafka_error_t *gerr = rd_kafka_ConsumerGroupDescription_error(grp);
  if (gerr) return fail(v, g, "DescribeConsumerGroups: %s", rd_kafka_error_string(gerr));
  rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(grp);
  v->stable = st == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE;
  v->state = rd_kafka_consumer_group_state_name(st);
  size_t n = rd_kafka_ConsumerGroupDescription_member_count(grp), total = 0;
  for (size_t i = 0; i < n; i++) {
    const rd_kafka_MemberAssignment_t *a =
        rd_kafka_MemberDescription_assignment(rd_kafka_ConsumerGroupDescription_member(grp, i));
    const rd_kafka_topic_partition_list_t *tp = a ? rd_kafka_MemberAssignment_partitions(a) : NULL;
    total += tp ? (size_t)tp->cnt : 0;
  }
  g->members = calloc(n ? n : 1, sizeof *g->members);
  g->parts = calloc(total ? total : 1, sizeof *g->parts);
  if (!g->members || !g->parts) return fail(v, g, "%s", "DescribeConsumerGroups: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(grp, i);
    groupdesc_member_t *gm = &g->members[i];
    const char *id = rd_kafka_MemberDescription_consumer_id(m);
    const char *inst = rd_kafka_MemberDescription_group_instance_id(m);
    const char *client = rd_kafka_MemberDescription_client_id(m);
    gm->member_id = id ? id : "";
    gm->instance_id = inst ? inst : "";
    gm->client_id = client ? client : "";
    gm->parts = g->parts + k;
    const rd_kafka_MemberAssignment_t *a = rd_kafka_MemberDescription_assignment(m);
    const rd_kafka_topic_partition_list_t *tp = a ? rd_kafka_MemberAssignment_partitions(a) : NULL;
    for (int j = 0; tp && j < tp->cnt; j++)
      if (tp->elems[j].topic && !strcmp(tp->elems[j].topic, g->topic))
        g->parts[k + gm->n_parts++] = tp->elems[j].partition;
    qsort(g->parts + k, gm->n_parts, sizeof *g->parts, cmp_i32);
    k += gm->n_parts;
  }
  v->members = g->members;
  v->n_members = n;
  return 1;
}

int groupdesc_take(groupdesc_t *g, groupdesc_view_t *v) {
  char buf[64];
  while (read(g->pipefd[0], buf, sizeof buf) > 0) {}
  for (;;) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(g->q, 0);
    if (!ev) return 0;
    if (rd_kafka_event_type(ev) != RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT) {
      rd_kafka_event_destroy(ev); /* nothing else is sent to this queue */
      continue;
    }
    drop_last(g);
    g->ev = ev;
    g->in_flight = 0;
    memset(v, 0, sizeof *v);
    v->state = "";
    v->took_ms = ix_mono_ms() - g->sent_ms;
    return parse(g, v);
  }
}
