/* The changelog topic on Kafka: metadata, creation and the check of its
 * settings (Admin API), and a group-less read of one partition to its end
 * (restore). */
#include "stream/changelog_topic.h"
#include "stream/kafka_internal.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "stream/kafkaconf.h"

static rd_kafka_t *client(rd_kafka_type_t type, const char *brokers, const char *const *props,
                          char *errstr, size_t n) {
  rd_kafka_conf_t *conf = kafkaconf_new(brokers, props, errstr, n);
  if (!conf) return NULL;
  if (type == RD_KAFKA_CONSUMER) {
    static const char *const fixed[][2] = {{"enable.auto.commit", "false"},
                                           {"enable.auto.offset.store", "false"},
                                           {"enable.partition.eof", "true"},
                                           {"fetch.wait.max.ms", "1"},
                                           /* a restore reads whole partitions: fewer,
                                            * larger fetches (default 1 MiB) */
                                           {"max.partition.fetch.bytes", "16777216"},
                                           {"fetch.max.bytes", "67108864"},
                                           /* a partition's queue (changelog_reader_t):
                                            * no more fetched ahead (default 64 MiB) */
                                           {"queued.max.messages.kbytes", "16384"},
                                           {"group.id", "interestd-changelog-restore"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
      if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, n) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
      }
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, n);
  if (!rk) rd_kafka_conf_destroy(conf);
  return rk;
}

int changelog_topic_partitions(const char *brokers, const char *const *props, const char *topic,
                               int32_t *partitions, char *errstr, size_t n) {
  *partitions = 0;
  rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, brokers, props, errstr, n);
  if (!rk) return IX_EKAFKA;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
  int rc = 0;
  if (err) {
    snprintf(errstr, n, "cannot read the cluster's metadata: %s", rd_kafka_err2str(err));
    rc = IX_EKAFKA;
  } else {
    for (int i = 0; i < md->topic_cnt; i++)
      if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
        *partitions = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_destroy(rk);
  return rc;
}

/* ---- creation and the check of an existing topic (Admin API) ---- */

const char *const changelog_topic_create_configs[] = {
    "cleanup.policy=compact",
    /* the cleaner never touches the active segment: with Kafka's default of
     * 7 days a restore would read a week of superseded records */
    "segment.ms=3600000",
    /* the restore reads only the newest record per key: a superseded one
     * may go as soon as the cleaner runs... */
    "min.compaction.lag.ms=0",
    /* ...and goes within a day even while the dirty ratio stays under
     * min.cleanable.dirty.ratio */
    "max.compaction.lag.ms=86400000",
    NULL};

/* the partition count of `topic` in md (0: missing) */
static int32_t md_partitions(const struct rd_kafka_metadata *md, const char *topic) {
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
      return md->topics[i].partition_cnt;
  return 0;
}

/* waits for an admin result event of `type` on q */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                    int timeout_ms) {
  uint64_t end = ix_mono_ms() + (uint64_t)timeout_ms + 2000;
  while (ix_mono_ms() < end) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 200);
    if (!ev) continue;
    if (rd_kafka_event_type(ev) == type) return ev;
    rd_kafka_event_destroy(ev);
  }
  return NULL;
}

/* value of config `name` in a described resource, NULL when absent */
static const char *config_value(const rd_kafka_ConfigResource_t *res, const char *name) {
  size_t n = 0;
  const rd_kafka_ConfigEntry_t **ents = rd_kafka_ConfigResource_configs(res, &n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(rd_kafka_ConfigEntry_name(ents[i]), name) == 0)
      return rd_kafka_ConfigEntry_value(ents[i]);
  return NULL;
}

/* The topic's settings against the changelog's needs. Routed to broker_id
 * (a BROKER resource is described with it): librdkafka sends a topic-only
 * DescribeConfigs to the controller, and a cluster that names none (the
 * mock) lets it wait out the whole timeout, while a broker without the API
 * answers at once. *no_admin is set when the cluster does not support it. */
static int check_configs(rd_kafka_t *rk, int32_t broker_id, const char *topic, int exists,
                         int timeout_ms, int *no_admin, int64_t *delete_retention_ms,
                         char *errstr, size_t n) {
  *no_admin = 0;
  char bid[16];
  snprintf(bid, sizeof bid, "%d", (int)broker_id);
  rd_kafka_ConfigResource_t *res[2] = {
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, bid),
      exists ? rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic) : NULL};
  rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  int rc = 0;
  char why[256];
  if (!res[0] || (exists && !res[1]) || !opt || !q ||
      rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, why, sizeof why)) {
    snprintf(errstr, n, "cannot ask for changelog topic '%s''s settings: out of memory", topic);
    rc = IX_EKAFKA;
    goto out;
  }
  rd_kafka_DescribeConfigs(rk, res, exists ? 2 : 1, opt, q);
  rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout_ms);
  if (!ev) {
    snprintf(errstr, n, "changelog topic '%s': no answer to DescribeConfigs in %d ms", topic,
             timeout_ms);
    rc = IX_EKAFKA;
    goto out;
  }
  rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
  if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
    *no_admin = 1;
  } else if (err) {
    snprintf(errstr, n, "changelog topic '%s': DescribeConfigs failed: %s", topic,
             rd_kafka_event_error_string(ev));
    rc = IX_EKAFKA;
  } else if (exists) {
    size_t cnt = 0;
    const rd_kafka_ConfigResource_t **out =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &cnt);
    const rd_kafka_ConfigResource_t *t = NULL;
    for (size_t i = 0; i < cnt; i++)
      if (rd_kafka_ConfigResource_type(out[i]) == RD_KAFKA_RESOURCE_TOPIC) t = out[i];
    if (!t || rd_kafka_ConfigResource_error(t)) {
      snprintf(errstr, n, "changelog topic '%s': DescribeConfigs failed: %s", topic,
               t ? rd_kafka_ConfigResource_error_string(t) : "no result for the topic");
      rc = IX_EKAFKA;
    } else {
      const char *policy = config_value(t, "cleanup.policy");
      const char *rms = config_value(t, "retention.ms"), *rby = config_value(t, "retention.bytes");
      const char *drm = config_value(t, "delete.retention.ms");
      if (drm) *delete_retention_ms = strtoll(drm, NULL, 10);
      if (!policy || !strstr(policy, "compact")) {
        snprintf(errstr, n,
                 "changelog topic '%s' has cleanup.policy=%s: a changelog needs compaction "
                 "(cleanup.policy=compact), or the broker deletes users' newest states and "
                 "restores lose them; refusing to start (alter the topic or delete it and let "
                 "interestd create it: docs/OPERATIONS.md)",
                 topic, policy ? policy : "(unknown)");
        rc = IX_ECONFIG;
      } else if (strstr(policy, "delete") &&
                 !(rms && strcmp(rms, "-1") == 0 && rby && strcmp(rby, "-1") == 0)) {
        snprintf(errstr, n,
                 "changelog topic '%s' has cleanup.policy=%s with retention.ms=%s and "
                 "retention.bytes=%s: time or size retention deletes users' newest states; "
                 "use cleanup.policy=compact (or both retention settings -1); refusing to "
                 "start (docs/OPERATIONS.md)",
                 topic, policy, rms ? rms : "?", rby ? rby : "?");
        rc = IX_ECONFIG;
      }
    }
  }
  rd_kafka_event_destroy(ev);
out:
  if (q) rd_kafka_queue_destroy(q);
  if (opt) rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_ConfigResource_destroy_array(res, res[1] ? 2 : 1);
  return rc;
}

/* CreateTopics; *raced is set when another member created it meanwhile */
static int create_topic(rd_kafka_t *rk, const char *topic, int32_t parts, int timeout_ms,
                        int *raced, char *errstr, size_t n) {
  *raced = 0;
  char why[256];
  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, parts, -1, why, sizeof why);
  if (!nt) {
    snprintf(errstr, n, "cannot create changelog topic '%s': %s", topic, why);
    return IX_ECONFIG;
  }
  int rc = 0;
  for (size_t i = 0; changelog_topic_create_configs[i]; i++) {
    char kv[128];
    snprintf(kv, sizeof kv, "%s", changelog_topic_create_configs[i]);
    char *eq = strchr(kv, '=');
    *eq = '\0';
    if (rd_kafka_NewTopic_set_config(nt, kv, eq + 1)) rc = IX_ENOMEM;
  }
  rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  if (rc || !opt || !q ||
      rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, why, sizeof why) ||
      rd_kafka_AdminOptions_set_operation_timeout(opt, timeout_ms, why, sizeof why)) {
    snprintf(errstr, n, "cannot create changelog topic '%s': out of memory", topic);
    rc = IX_EKAFKA;
    goto out;
  }
  rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
  rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout_ms);
  if (!ev) {
    snprintf(errstr, n, "changelog topic '%s': no answer to CreateTopics in %d ms", topic,
             timeout_ms);
    rc = IX_EKAFKA;
    goto out;
  }
  size_t cnt = 0;
  const rd_kafka_topic_result_t **tr =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
  rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
  const char *msg = rd_kafka_event_error_string(ev);
  if (!err && cnt == 1) {
    err = rd_kafka_topic_result_error(tr[0]);
    msg = rd_kafka_topic_result_error_string(tr[0]);
  }
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    *raced = 1;
  } else if (err || cnt != 1) {
    snprintf(errstr, n,
             "cannot create changelog topic '%s' (%d partitions, cleanup.policy=compact): %s; "
             "create it yourself (docs/OPERATIONS.md)",
             topic, (int)parts, err ? (msg ? msg : rd_kafka_err2str(err)) : "no result");
    rc = err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                 err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION ||
                 err == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR ||
                 err == RD_KAFKA_RESP_ERR_INVALID_CONFIG
             ? IX_ECONFIG
             : IX_EKAFKA;
  }
  rd_kafka_event_destroy(ev);
out:
  if (q) rd_kafka_queue_destroy(q);
  if (opt) rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_NewTopic_destroy(nt);
  return rc;
}

int changelog_topic_ensure(const char *brokers, const char *const *props, const char *topic,
                           const char *input_topic, int timeout_ms,
                           changelog_topic_status_t *status, int32_t *partitions,
                           int64_t *delete_retention_ms, char *errstr, size_t n) {
  *status = CHANGELOG_TOPIC_CHECKED;
  *delete_retention_ms = -1;
  *partitions = 0;
  rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, brokers, props, errstr, n);
  if (!rk) return IX_EKAFKA;
  int rc = 0, created = 0, raced = 0;
  uint64_t end = ix_mono_ms() + (uint64_t)timeout_ms;
  for (;;) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (err) {
      snprintf(errstr, n, "cannot read the cluster's metadata: %s", rd_kafka_err2str(err));
      rc = IX_EKAFKA;
      break;
    }
    int32_t in_parts = md_partitions(md, input_topic), cl_parts = md_partitions(md, topic);
    int32_t broker_id = md->broker_cnt > 0 ? md->brokers[0].id : md->orig_broker_id;
    rd_kafka_metadata_destroy(md);
    *partitions = in_parts;
    if (in_parts <= 0) {
      snprintf(errstr, n, "input topic '%s' does not exist: the changelog cannot be checked",
               input_topic);
      rc = IX_ECONFIG;
      break;
    }
    if ((created || raced) && cl_parts == 0) {
      /* created (here or by another member): wait until the metadata shows it */
      if (ix_mono_ms() > end) {
        snprintf(errstr, n, "changelog topic '%s' was created but does not appear in the "
                 "metadata after %d ms", topic, timeout_ms);
        rc = IX_EKAFKA;
        break;
      }
      struct timespec ts = {0, 100 * 1000000L};
      nanosleep(&ts, NULL);
      continue;
    }
    if (cl_parts > 0 && cl_parts != in_parts) {
      snprintf(errstr, n,
               "changelog topic '%s' has %d partitions but input topic '%s' has %d: a "
               "changelog must be co-partitioned with its input (one partition per input "
               "partition); refusing to start",
               topic, (int)cl_parts, input_topic, (int)in_parts);
      rc = IX_ECONFIG;
      break;
    }
    if (created) break; /* the settings are the ones it was created with */
    int no_admin = 0;
    rc = check_configs(rk, broker_id, topic, cl_parts > 0, timeout_ms, &no_admin,
                       delete_retention_ms, errstr, n);
    if (rc) break;
    if (no_admin) {
      *status = CHANGELOG_TOPIC_NO_ADMIN;
      if (cl_parts == 0) {
        snprintf(errstr, n,
                 "changelog topic '%s' does not exist and the cluster does not answer the "
                 "Admin API (DescribeConfigs unsupported): create it with %d partitions (those "
                 "of input topic '%s') and cleanup.policy=compact (docs/OPERATIONS.md)",
                 topic, (int)in_parts, input_topic);
        rc = IX_ECONFIG;
      }
      break;
    }
    if (cl_parts > 0) break; /* checked */
    rc = create_topic(rk, topic, in_parts, timeout_ms, &raced, errstr, n);
    if (rc) break;
    created = !raced; /* raced: check what the other member created */
    if (created) *status = CHANGELOG_TOPIC_CREATED;
  }
  rd_kafka_destroy(rk);
  return rc;
}

/* ---- restore reader: one client for every partition of an assignment ---- */

/* Partitions fetched ahead of the one being read: their records arrive while
 * it is decoded. Each assigned partition's records stay in its own queue in
 * the client (not forwarded to the consumer queue): a read takes its
 * partition's records and nothing else, and the client stops fetching a
 * partition whose queue holds queued.max.messages.kbytes (16 MiB, client())
 * until it is read. */
#define READER_AHEAD 4

typedef struct {
  int32_t p;
  int wm;             /* lo and hi known (asked at changelog_reader_prefetch()) */
  int64_t lo, hi;
  int assigned;       /* fetching from `start` into pq */
  int64_t start;
  rd_kafka_queue_t *pq; /* the partition's own queue while assigned */
} ahead_t;

struct changelog_reader {
  rd_kafka_t *rk;
  rd_kafka_queue_t *q; /* the consumer queue: errors of no partition, and what a
                        * partition's queue held when it stopped */
  char *topic;
  ahead_t *ahead; /* hinted partitions not read yet, in the order given */
  size_t n_ahead;
  changelog_reader_stats_t stats;
};

/* Fetches a->p from offset into its own queue a->pq. */
static rd_kafka_resp_err_t part_assign(changelog_reader_t *r, ahead_t *a, int64_t offset) {
  if (!(a->pq = rd_kafka_queue_get_partition(r->rk, r->topic, a->p)))
    return RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
  /* forwarding the application set (here: none) is kept when the fetch
   * starts: the records stay on the partition's queue */
  rd_kafka_queue_forward(a->pq, NULL);
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, r->topic, a->p)->offset = offset;
  rd_kafka_error_t *e = rd_kafka_incremental_assign(r->rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (!e) {
    a->assigned = 1;
    a->start = offset;
    return RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  rd_kafka_resp_err_t err = rd_kafka_error_code(e);
  rd_kafka_error_destroy(e);
  rd_kafka_queue_forward(a->pq, r->q);
  rd_kafka_queue_destroy(a->pq);
  a->pq = NULL;
  return err ? err : RD_KAFKA_RESP_ERR__FAIL;
}

/* a->p no longer fetched: unassigned, and its queue forwarded to the
 * consumer queue, with what it holds and what a fetch in flight still
 * brings (dropped at the next read) */
static void ahead_stop(changelog_reader_t *r, ahead_t *a) {
  if (a->assigned) {
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, r->topic, a->p);
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(r->rk, tp);
    if (e) rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(tp);
  }
  if (a->pq) {
    rd_kafka_queue_forward(a->pq, r->q);
    rd_kafka_queue_destroy(a->pq);
    a->pq = NULL;
  }
  a->assigned = 0;
}

static void ahead_clear(changelog_reader_t *r) {
  for (size_t i = 0; i < r->n_ahead; i++) ahead_stop(r, &r->ahead[i]);
  free(r->ahead);
  r->ahead = NULL;
  r->n_ahead = 0;
}

/* the first READER_AHEAD hinted partitions with records are fetched */
static void ahead_top_up(changelog_reader_t *r) {
  for (size_t i = 0, k = 0; i < r->n_ahead && k < READER_AHEAD; i++) {
    ahead_t *a = &r->ahead[i];
    if (!a->wm || a->hi <= a->lo) continue;
    k++;
    if (!a->assigned) (void)part_assign(r, a, a->lo); /* best effort: read anew at its turn */
  }
}

/* Drops what the consumer queue holds: records of stopped partitions. An
 * error of no partition (the client's, e.g. all brokers down) is returned,
 * with errstr filled. */
static int drain_consumer_queue(changelog_reader_t *r, int32_t partition, char *errstr,
                                size_t n) {
  rd_kafka_message_t *batch[256];
  ssize_t got;
  int rc = 0;
  while ((got = rd_kafka_consume_batch_queue(r->q, 0, batch, 256)) > 0)
    for (ssize_t i = 0; i < got; i++) {
      rd_kafka_message_t *m = batch[i];
      if (!m->rkt && m->err && !rc) {
        snprintf(errstr, n, "changelog %s [%d]: %s", r->topic, (int)partition,
                 rd_kafka_message_errstr(m));
        rc = IX_EKAFKA;
      }
      rd_kafka_message_destroy(m);
    }
  return rc;
}

/* One read's state for read_cb. */
typedef struct {
  rd_kafka_t *rk;
  int64_t next, hi; /* the offset the next record must have at least; the end */
  changelog_topic_fn fn;
  void *ctx;
  uint64_t *records, *bytes;
  char *errstr;
  size_t n;
  const char *topic;
  int32_t partition;
  int done, rc;
} read_cb_t;

/* A record (or event) of the partition being read, from its queue; the
 * client frees it on return. Past the end, an error or fn's non-zero return
 * the rest of the batch goes back to the queue (rd_kafka_yield). */
static void read_cb(rd_kafka_message_t *m, void *opaque) {
  read_cb_t *c = opaque;
  if (c->done) return;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    /* end of the partition (a compacted log may end with no record at hi - 1) */
    c->done = 1;
  } else if (m->err) {
    snprintf(c->errstr, c->n, "changelog %s [%d]: fetch failed at offset %lld: %s", c->topic,
             (int)c->partition, (long long)c->next, rd_kafka_message_errstr(m));
    c->rc = IX_EKAFKA;
    c->done = 1;
  } else if (m->offset >= c->next) {
    c->next = m->offset + 1;
    (*c->records)++;
    *c->bytes += m->key_len + m->len;
    c->rc = c->fn(c->ctx, m->offset, m->key, m->key_len, m->payload, m->len);
    if (c->rc || c->next >= c->hi) c->done = 1;
  }
  if (c->done) rd_kafka_yield(c->rk);
}

int changelog_reader_new(const char *brokers, const char *const *props, const char *topic,
                         changelog_reader_t **out, char *errstr, size_t n) {
  changelog_reader_t *r = calloc(1, sizeof *r);
  if (!r || !(r->topic = strdup(topic))) {
    free(r);
    snprintf(errstr, n, "out of memory");
    return IX_ENOMEM;
  }
  if (!(r->rk = client(RD_KAFKA_CONSUMER, brokers, props, errstr, n))) {
    changelog_reader_destroy(r);
    return IX_EKAFKA;
  }
  rd_kafka_poll_set_consumer(r->rk);
  if (!(r->q = rd_kafka_queue_get_consumer(r->rk))) {
    snprintf(errstr, n, "changelog %s: no consumer queue", topic);
    changelog_reader_destroy(r);
    return IX_EKAFKA;
  }
  *out = r;
  return 0;
}

void changelog_reader_destroy(changelog_reader_t *r) {
  if (!r) return;
  if (r->rk) ahead_clear(r);
  if (r->q) rd_kafka_queue_destroy(r->q);
  if (r->rk) rd_kafka_destroy(r->rk);
  free(r->topic);
  free(r);
}

/* The low (which = BEGINNING) or high (END) watermarks of l's partitions in
 * one ListOffsets round. The two are asked one after the other, never at
 * once: librdkafka's rd_kafka_query_watermark_offsets() sends both requests
 * together, and a broker socket with Nagle's algorithm on (librdkafka's mock
 * cluster) holds the second small answer until the first is acknowledged,
 * ~40 ms of delayed ACK per call, more than reading a 3 MiB partition. */
static rd_kafka_resp_err_t list_offsets(changelog_reader_t *r,
                                        rd_kafka_topic_partition_list_t *l, int64_t which,
                                        int timeout_ms) {
  for (int i = 0; i < l->cnt; i++) l->elems[i].offset = which;
  return rd_kafka_offsets_for_times(r->rk, l, timeout_ms);
}


void changelog_reader_prefetch(changelog_reader_t *r, const int32_t *partitions, size_t n,
                               int timeout_ms) {
  ahead_clear(r);
  if (!n || !(r->ahead = calloc(n, sizeof *r->ahead))) return;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++) {
    r->ahead[i].p = partitions[i];
    rd_kafka_topic_partition_list_add(l, r->topic, partitions[i]);
  }
  r->n_ahead = n;
  rd_kafka_topic_partition_list_t *h = rd_kafka_topic_partition_list_copy(l);
  /* best effort: a partition whose watermarks are not known here asks
   * for them when it is read, and is not fetched ahead */
  if (!list_offsets(r, l, RD_KAFKA_OFFSET_BEGINNING, timeout_ms) &&
      !list_offsets(r, h, RD_KAFKA_OFFSET_END, timeout_ms))
    for (size_t i = 0; i < n; i++) {
      rd_kafka_topic_partition_t *lo =
          rd_kafka_topic_partition_list_find(l, r->topic, partitions[i]);
      rd_kafka_topic_partition_t *hi =
          rd_kafka_topic_partition_list_find(h, r->topic, partitions[i]);
      if (lo && hi && !lo->err && !hi->err && lo->offset >= 0 && hi->offset >= 0) {
        r->ahead[i].wm = 1;
        r->ahead[i].lo = lo->offset;
        r->ahead[i].hi = hi->offset;
      }
    }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_topic_partition_list_destroy(h);
  ahead_top_up(r);
}

int changelog_reader_read(changelog_reader_t *r, int32_t partition, int64_t from,
                          int timeout_ms, changelog_span_fn span, changelog_topic_fn fn,
                          void *ctx, uint64_t *records, uint64_t *bytes, char *errstr, size_t n) {
  *records = *bytes = 0;
  const char *topic = r->topic;
  int rc = 0;
  r->stats.reads++;
  int64_t lo = 0, hi = 0;
  size_t ai = 0;
  while (ai < r->n_ahead && r->ahead[ai].p != partition) ai++;
  ahead_t cur = {0}; /* what was fetched ahead for this partition */
  if (ai < r->n_ahead && r->ahead[ai].wm) {
    lo = r->ahead[ai].lo;
    hi = r->ahead[ai].hi;
  } else {
    rd_kafka_resp_err_t err = kafka_watermarks(r->rk, r->topic, partition, timeout_ms, &lo, &hi);
    if (err) {
      snprintf(errstr, n, "changelog %s [%d]: cannot read its watermarks: %s", topic,
               (int)partition, rd_kafka_err2str(err));
      return IX_EKAFKA;
    }
  }
  if (from >= 0 && from < lo) {
    /* the hint stays: the caller reads the whole partition next */
    snprintf(errstr, n, "changelog %s [%d]: offset %lld is below the low watermark %lld (the "
             "records in between were deleted)", topic, (int)partition, (long long)from,
             (long long)lo);
    return IX_ERANGE;
  }
  if (from > lo) lo = from;
  cur.p = partition;
  if (ai < r->n_ahead) {
    /* read now: out of the hints, its fetch and stash kept when they start at lo */
    cur = r->ahead[ai];
    memmove(&r->ahead[ai], &r->ahead[ai + 1], (r->n_ahead - ai - 1) * sizeof *r->ahead);
    r->n_ahead--;
    if (cur.assigned && (cur.start != lo || hi <= lo)) ahead_stop(r, &cur);
    r->stats.hinted++;
    if (cur.assigned) r->stats.fetched_ahead++;
  }
  if (hi <= lo) {
    ahead_top_up(r);
    return 0;
  }
  if (span) span(ctx, lo, hi);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  /* the next partitions fetch while this one is decoded: from its first
   * records on (asked together with it, they would come in the same
   * response and delay its first record by theirs) */
  int topped = cur.assigned;
  if (!cur.assigned) err = part_assign(r, &cur, lo);
  if (topped) ahead_top_up(r);
  if (err) {
    snprintf(errstr, n, "changelog %s [%d]: cannot assign: %s", topic, (int)partition,
             rd_kafka_err2str(err));
    rc = IX_EKAFKA;
  }
  read_cb_t rcb = {.rk = r->rk, .next = lo, .hi = hi, .fn = fn, .ctx = ctx, .records = records,
                   .bytes = bytes, .errstr = errstr, .n = n, .topic = topic,
                   .partition = partition, .done = rc != 0};
  uint64_t last_progress = ix_mono_ms();
  while (!rcb.done && rcb.next < hi) {
    uint64_t before = *records;
    /* every record the queue holds, one callback each (one queue lock a
     * batch); when it holds none, wait for one */
    rd_kafka_consume_callback_queue(cur.pq, 100, read_cb, &rcb);
    if (!topped && *records != before) {
      ahead_top_up(r);
      topped = 1;
    }
    if (!rcb.done && (rcb.rc = drain_consumer_queue(r, partition, errstr, n))) rcb.done = 1;
    if (*records != before) {
      last_progress = ix_mono_ms(); /* once a batch, not a record */
    } else if (!rcb.done && ix_mono_ms() - last_progress > (uint64_t)timeout_ms) {
      snprintf(errstr, n, "changelog %s [%d]: no progress for %d ms at offset %lld of %lld", topic,
               (int)partition, timeout_ms, (long long)rcb.next, (long long)hi);
      rcb.rc = IX_EKAFKA;
      break;
    }
  }
  if (!rc) rc = rcb.rc;
  /* this partition is done with: unassigned, and whatever was fetched for it
   * dropped */
  ahead_stop(r, &cur);
  if (!topped) ahead_top_up(r);
  (void)drain_consumer_queue(r, partition, errstr, 0);
  return rc;
}

void changelog_reader_get_stats(const changelog_reader_t *r, changelog_reader_stats_t *out) {
  *out = r->stats;
}

int changelog_topic_read(const char *brokers, const char *const *props, const char *topic,
                         int32_t partition, int timeout_ms, changelog_topic_fn fn, void *ctx,
                         uint64_t *records, uint64_t *bytes, char *errstr, size_t n) {
  return changelog_topic_read_from(brokers, props, topic, partition, -1, timeout_ms, fn, ctx,
                                   records, bytes, errstr, n);
}

int changelog_topic_read_from(const char *brokers, const char *const *props, const char *topic,
                              int32_t partition, int64_t from, int timeout_ms,
                              changelog_topic_fn fn, void *ctx, uint64_t *records,
                              uint64_t *bytes, char *errstr, size_t n) {
  *records = *bytes = 0;
  changelog_reader_t *r;
  int rc = changelog_reader_new(brokers, props, topic, &r, errstr, n);
  if (rc) return rc;
  rc = changelog_reader_read(r, partition, from, timeout_ms, NULL, fn, ctx, records, bytes,
                             errstr, n);
  changelog_reader_destroy(r);
  return rc;
}

/* ---- follower ---- */

struct changelog_follower {
  rd_kafka_t *rk;
  char *topic;
};

int changelog_follower_new(const char *brokers, const char *const *props, const char *topic,
                           changelog_follower_t **out, char *errstr, size_t n) {
  changelog_follower_t *f = calloc(1, sizeof *f);
  if (!f || !(f->topic = strdup(topic))) {
    free(f);
    snprintf(errstr, n, "out of memory");
    return IX_ENOMEM;
  }
  rd_kafka_conf_t *conf = kafkaconf_new(brokers, props, errstr, n);
  static const char *const fixed[][2] = {{"enable.auto.commit", "false"},
                                         {"enable.auto.offset.store", "false"},
                                         {"auto.offset.reset", "error"},
                                         {"fetch.wait.max.ms", "100"},
                                         {"group.id", "interestd-changelog-standby"}};
  for (size_t i = 0; conf && i < sizeof fixed / sizeof fixed[0]; i++)
    if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, n) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      conf = NULL;
    }
  if (conf && !(f->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, n)))
    rd_kafka_conf_destroy(conf);
  if (!f->rk) {
    changelog_follower_destroy(f);
    return IX_EKAFKA;
  }
  rd_kafka_poll_set_consumer(f->rk);
  *out = f;
  return 0;
}

void changelog_follower_destroy(changelog_follower_t *f) {
  if (!f) return;
  if (f->rk) {
    rd_kafka_topic_partition_list_t *none = rd_kafka_topic_partition_list_new(0);
    rd_kafka_assign(f->rk, none);
    rd_kafka_topic_partition_list_destroy(none);
    rd_kafka_destroy(f->rk);
  }
  free(f->topic);
  free(f);
}

int changelog_follower_add(changelog_follower_t *f, int32_t partition, int64_t offset) {
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, f->topic, partition)->offset =
      offset >= 0 ? offset : RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_error_t *e = rd_kafka_incremental_assign(f->rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (!e) return 0;
  rd_kafka_error_destroy(e);
  return IX_EKAFKA;
}

int changelog_follower_remove(changelog_follower_t *f, int32_t partition) {
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, f->topic, partition);
  rd_kafka_error_t *e = rd_kafka_incremental_unassign(f->rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (!e) return 0;
  rd_kafka_error_destroy(e);
  return IX_EKAFKA;
}

size_t changelog_follower_poll(changelog_follower_t *f, size_t max, changelog_follow_fn fn,
                               void *ctx) {
  size_t k = 0;
  while (k < max) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(f->rk, 0);
    if (!m) break;
    k++;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->err) {
      char why[300];
      snprintf(why, sizeof why, "changelog %s [%d] at offset %lld: %s", f->topic,
               (int)m->partition, (long long)m->offset, rd_kafka_message_errstr(m));
      if (m->rkt) fn(ctx, m->partition, m->offset, NULL, 0, NULL, 0, why);
      rd_kafka_message_destroy(m);
      continue;
    }
    fn(ctx, m->partition, m->offset, m->key, m->key_len, m->payload, m->len, NULL);
    rd_kafka_message_destroy(m);
  }
  return k;
}

int64_t changelog_follower_end(changelog_follower_t *f, int32_t partition) {
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(f->rk, f->topic, partition, &lo, &hi) ||
      hi < 0)
    return -1;
  return hi;
}

int changelog_topic_offset_for_time(const char *brokers, const char *const *props,
                                    const char *topic, int32_t partition, int64_t ts_ms,
                                    int timeout_ms, int64_t *offset, char *errstr, size_t n) {
  *offset = -1;
  rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, brokers, props, errstr, n);
  if (!rk) return IX_EKAFKA;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = ts_ms;
  rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, timeout_ms);
  if (!err) err = l->elems[0].err;
  int rc = 0;
  if (err) {
    snprintf(errstr, n, "changelog %s [%d]: cannot look up the offset at time %lld: %s", topic,
             (int)partition, (long long)ts_ms, rd_kafka_err2str(err));
    rc = IX_EKAFKA;
  } else {
    *offset = l->elems[0].offset >= 0 ? l->elems[0].offset : -1;
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(rk);
  return rc;
}
