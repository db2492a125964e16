/* The changelog topic on a real Apache Kafka (label kafka; tests/kafka/kafka.sh
 * broker through IX_KAFKA_DIR, or IX_KAFKA_BOOTSTRAP): what the mock cannot
 * show (docs/STATE.md, "Changelog topic").
 * 1. The Admin API: a missing changelog topic is created with the input's
 *    partition count and cleanup.policy=compact; one with another partition
 *    count, and one with cleanup.policy=delete, are refused with a sentence.
 * 2. Real compaction: a changelog-only daemon writes checkpoints every second
 *    into a topic with 100 ms segments and min.cleanable.dirty.ratio=0.01
 *    while events stream; the test waits until the log cleaner removed
 *    superseded records (a full read finds fewer records than the offsets
 *    span), kills the daemon (SIGKILL), and a fresh daemon with no state
 *    directory restores from the compacted changelog: every event of both
 *    streams answered, every prediction equal to the offline pipeline's over
 *    all events (so every restored state equals the offline replay's), every
 *    partition from the changelog, none cold. Both daemons run in mode both,
 *    each with a state directory of its own (the second's empty).
 * 3. The first daemon's directory again, after more events: its local
 *    checkpoint is older than the changelog, so the restore reads only the
 *    changelog's records from its snapshot's time on (offsets-for-times, which
 *    the mock lacks) and lays them over it (source local+changelog); every
 *    event answered and equal to the offline pipeline's. Read only the tail,
 *    per partition, against a full read of the changelog just before this
 *    daemon starts: the offset its read began at (from its log) has records
 *    below it that it did not read, and it read no more records than lie at
 *    or above it. (Counted in records of the quiet changelog, not against
 *    step 2's bytes: how much the second daemon's checkpoints add to the tail
 *    grows with the machine's load.) */
#include "../integration/daemon_harness.h"

#include <librdkafka/rdkafka.h>

#define PARTS 4
#define N1 12000 /* streamed to the first daemon */
#define N2 3000  /* after its kill, to the restored one */
#define N3 3000  /* then to a daemon on the first one's directory */
#define N (N1 + N2 + N3)
#define RATE 1000.0

/* creates topic (full name) with configs "k=v" (NULL-terminated) */
static void create(const char *topic, int parts, const char *const *configs) {
  char err[512];
  rd_kafka_t *rk = h_admin_client();
  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, parts, 1, err, sizeof err);
  H_CHECK(nt, "%s", err);
  for (size_t i = 0; configs && configs[i]; i++) {
    char kv[128];
    snprintf(kv, sizeof kv, "%s", configs[i]);
    char *eq = strchr(kv, '=');
    *eq = '\0';
    H_CHECK(rd_kafka_NewTopic_set_config(nt, kv, eq + 1) == 0, "%s", configs[i]);
  }
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  H_CHECK(ev && !rd_kafka_event_error(ev), "CreateTopics %s failed", topic);
  size_t n;
  const rd_kafka_topic_result_t **res =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
  H_CHECK(n == 1 && !rd_kafka_topic_result_error(res[0]), "CreateTopics %s: %s", topic,
          n ? rd_kafka_topic_result_error_string(res[0]) : "no result");
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_destroy(rk);
  h_sleep_ms(500); /* leaders */
}

/* the topic's partition count and the value of config `name` (into val) */
static int describe(const char *topic, const char *name, char *val, size_t val_size) {
  rd_kafka_t *rk = h_admin_client();
  const struct rd_kafka_metadata *md;
  int parts = 0;
  H_CHECK(rd_kafka_metadata(rk, 1, NULL, &md, 10000) == 0, "metadata");
  for (int i = 0; i < md->topic_cnt; i++)
    if (!strcmp(md->topics[i].topic, topic)) parts = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &cr, 1, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  H_CHECK(ev && !rd_kafka_event_error(ev), "DescribeConfigs %s failed", topic);
  size_t n, ne;
  const rd_kafka_ConfigResource_t **res =
      rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
  snprintf(val, val_size, "(none)");
  if (n == 1) {
    const rd_kafka_ConfigEntry_t **e = rd_kafka_ConfigResource_configs(res[0], &ne);
    for (size_t i = 0; i < ne; i++)
      if (!strcmp(rd_kafka_ConfigEntry_name(e[i]), name))
        snprintf(val, val_size, "%s", rd_kafka_ConfigEntry_value(e[i]));
  }
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_ConfigResource_destroy(cr);
  rd_kafka_destroy(rk);
  return parts;
}

/* a daemon that must refuse to start, with `want` in its log */
static void refused(const char *brokers, const char *model, const char *name, const char *topic,
                    const char *want) {
  char conf[512], log[600], extra[512];
  snprintf(conf, sizeof conf, "%s", h_path(name));
  snprintf(log, sizeof log, "%s.log", conf);
  snprintf(extra, sizeof extra, "[state]\nchangelog_mode = changelog\nchangelog_topic = %s\n",
           topic);
  h_write_conf(conf, brokers, name, model, extra);
  pid_t d = h_spawn(conf, log);
  int st = h_wait_exit(d, 60);
  H_CHECK(st != 0 && st != -1, "%s: not refused (exit %d, log %s)", topic, st, log);
  H_CHECK(h_wait_log(log, want, 1), "%s: no message with \"%s\" (log %s)", topic, want, log);
  printf("%s: refused (exit %d): \"...%s...\"\n", topic, st, want);
}

/* reads every partition of topic: records found and the offsets they span;
 * with offs, each partition's records' offsets (ascending) into offs[p]
 * (malloc'd) and their count into n_offs[p], its low watermark into lo[p] */
static void scan_offsets(const char *topic, uint64_t *records, uint64_t *span, int64_t **offs,
                         size_t *n_offs, int64_t *lows) {
  char err[512];
  *records = *span = 0;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", h_real_bootstrap(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "scan", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  H_CHECK(rk, "%s", err);
  rd_kafka_poll_set_consumer(rk);
  for (int p = 0; p < PARTS; p++) {
    int64_t lo, hi;
    H_CHECK(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) == 0, "watermarks");
    *span += (uint64_t)(hi - lo);
    if (offs) {
      offs[p] = malloc(((size_t)(hi > lo ? hi - lo : 0) + 1) * sizeof **offs);
      n_offs[p] = 0;
      lows[p] = lo;
    }
    if (hi <= lo) continue;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
    H_CHECK(rd_kafka_assign(rk, l) == 0, "assign");
    rd_kafka_topic_partition_list_destroy(l);
    double end = h_now() + 30;
    for (int eof = 0; !eof && h_now() < end;) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
      if (!m) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        eof = 1;
      } else if (!m->err) {
        (*records)++;
        if (offs && m->offset < hi) offs[p][n_offs[p]++] = m->offset;
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

static void scan(const char *topic, uint64_t *records, uint64_t *span) {
  scan_offsets(topic, records, span, NULL, NULL, NULL);
}

/* From log's "partition p: states from ..." line: the changelog offset the
 * restore's read began at (-1: its start) and the records it read. Fails the
 * test without such a line. */
static void restore_read(const char *log, int p, int64_t *from, uint64_t *records) {
  char want[64];
  snprintf(want, sizeof want, "partition %d: states from ", p);
  char *line = h_log_line(log, want);
  H_CHECK(line, "no \"%s\" line (log %s)", want, log);
  const char *at = strstr(line, "changelog read from ");
  H_CHECK(at, "partition %d: no \"changelog read from\" in \"%s\" (log %s)", p, line, log);
  at += strlen("changelog read from ");
  const char *timed = "the local checkpoint's time (offset ";
  *from = -1;
  if (!strncmp(at, timed, strlen(timed))) *from = strtoll(at + strlen(timed), NULL, 10);
  const char *colon = strstr(at, "): ");
  if (*from < 0) colon = strstr(at, ": ");
  H_CHECK(colon && sscanf(colon + (*from < 0 ? 2 : 3), "%" SCNu64 " records", records) == 1,
          "partition %d: no record count in \"%s\" (log %s)", p, line, log);
  free(line);
}

int main(void) {
  h_init("test_changelog_kafka");
  /* the tail's clock margin (60 s) would cover this whole short run */
  setenv("IX_TEST_CLOG_CLOCK_MARGIN_MS", "1000", 1);
  H_CHECK(h_real_bootstrap(), "this test needs a real broker: set IX_KAFKA_DIR (tests/kafka/"
          "kafka.sh start DIR) or IX_KAFKA_BOOTSTRAP; ctest -R test_changelog_kafka starts one");
  const char *brokers = h_cluster(PARTS);
  const char *model = h_path("model.ixm");
  h_write_model(model, 5);
  char val[256];

  /* 1. the Admin API */
  {
    const char *topic = h_T("created-state");
    char conf[512], log[512], extra[512];
    snprintf(conf, sizeof conf, "%s", h_path("created.conf"));
    snprintf(log, sizeof log, "%s", h_path("created.log"));
    snprintf(extra, sizeof extra, "[state]\nchangelog_mode = changelog\nchangelog_topic = %s\n",
             topic);
    h_write_conf(conf, brokers, "created", model, extra);
    pid_t d = h_spawn(conf, log);
    H_CHECK(h_wait_log(log, "assigned partitions", 60), "no assignment (log %s)", log);
    H_CHECK(h_wait_log(log, "created with 4 partitions", 1), "no creation line (log %s)", log);
    kill(d, SIGTERM);
    H_CHECK(h_wait_exit(d, 30) == 0, "exit (log %s)", log);
    int parts = describe(topic, "cleanup.policy", val, sizeof val);
    printf("%s: created by the daemon with %d partitions, cleanup.policy=%s\n", topic, parts, val);
    H_CHECK(parts == PARTS && !strcmp(val, "compact"), "created topic: %d partitions, "
            "cleanup.policy=%s", parts, val);
    describe(topic, "segment.ms", val, sizeof val);
    printf("%s: segment.ms=%s\n", topic, val);
    H_CHECK(!strcmp(val, "3600000"), "segment.ms=%s", val);
    /* a second start finds it and checks it */
    d = h_spawn(conf, h_path("created2.log"));
    H_CHECK(h_wait_log(h_path("created2.log"), "cleanup policy with compaction: checked", 60),
            "the existing topic was not checked (log %s)", h_path("created2.log"));
    H_CHECK(h_wait_log(h_path("created2.log"), "assigned partitions", 60), "no assignment (log "
            "%s)", h_path("created2.log"));
    kill(d, SIGTERM);
    int st = h_wait_exit(d, 60);
    H_CHECK(st == 0, "exit %d (log %s)", st, h_path("created2.log"));
  }
  {
    static const char *const compact[] = {"cleanup.policy=compact", NULL};
    static const char *const del[] = {"cleanup.policy=delete", NULL};
    const char *wrong = h_T("wrongparts-state"), *deleting = h_T("delete-state");
    create(wrong, PARTS + 1, compact);
    refused(brokers, model, "wrongparts", wrong, "has 5 partitions but input topic");
    create(deleting, PARTS, del);
    refused(brokers, model, "deleting", deleting, "has cleanup.policy=delete: a changelog needs "
            "compaction");
  }

  /* 2. real compaction, then a restore from the compacted changelog */
  const char *topic = h_T("compact-state");
  static const char *const fast[] = {"cleanup.policy=compact", "segment.ms=100",
                                     "min.cleanable.dirty.ratio=0.01", "min.compaction.lag.ms=0",
                                     NULL};
  create(topic, PARTS, fast);
  h_msg_t *msgs = h_load_events(N, PARTS);
  char extra[1024];
  snprintf(extra, sizeof extra, "[state]\nchangelog_mode = both\nchangelog_topic = %s\n"
           "checkpoint_interval_s = 1\ncheckpoint_dir = %s\n", topic, h_path("dir1"));
  const char *conf = h_path("compact.conf");
  h_write_conf(conf, brokers, "compact", model, extra);
  snprintf(extra, sizeof extra, "[state]\nchangelog_mode = both\nchangelog_topic = %s\n"
           "checkpoint_interval_s = 1\ncheckpoint_dir = %s\n", topic, h_path("dir2"));
  const char *conf2 = h_path("fresh.conf");
  h_write_conf(conf2, brokers, "compact", model, extra);
  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 60), "no assignment (log %s)", log1);
  h_produce(brokers, h_T("events"), msgs, 0, N1, RATE);
  h_expect_answered(brokers, model, msgs, N1, 3 * N, 120, log1);
  printf("all %d events answered, every prediction equal to the offline pipeline's\n", (int)(N1));
  h_sleep_ms(2500); /* a changelog checkpoint after the last event */
  double written = h_metric_of(log1, "interestd_changelog_records_written_total ");
  uint64_t recs = 0, span = 0;
  double t0 = h_now();
  for (;;) {
    scan(topic, &recs, &span);
    if (recs < span || h_now() - t0 > 180) break;
    h_sleep_ms(2000);
  }
  printf("changelog: %.0f records acknowledged; after %.0f s a full read finds %" PRIu64
         " records in %" PRIu64 " offsets\n", written, h_now() - t0, recs, span);
  H_CHECK(recs < span, "the log cleaner removed nothing in 180 s (%" PRIu64 " records, %" PRIu64
          " offsets)", recs, span);
  kill(d1, SIGKILL);
  H_CHECK(h_wait_exit(d1, 10) == -2, "first daemon did not die of SIGKILL");

  h_produce(brokers, h_T("events"), msgs, N1, N1 + N2, 0);
  const char *log2 = h_path("second.log");
  pid_t d2 = h_spawn(conf2, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 60), "no assignment (log %s)", log2);
  h_expect_answered(brokers, model, msgs, N1 + N2, 3 * N, 120, log2);
  printf("all %d events answered, every prediction equal to the offline pipeline's\n", (int)(N1 + N2));
  double from_cl = h_metric_of(log2, "interestd_state_restores_total{source=\"changelog\"} ");
  double cold = h_metric_of(log2, "interestd_state_restores_total{source=\"cold\"} ");
  double bytes = h_metric_of(log2, "interestd_changelog_read_bytes_total ");
  printf("fresh daemon: %.0f partitions from the compacted changelog (%.0f bytes read), %.0f "
         "cold\n", from_cl, bytes, cold);
  H_CHECK(from_cl == PARTS && cold == 0, "restores: changelog %.0f, cold %.0f (log %s)", from_cl,
          cold, log2);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 30) == 0, "exit (log %s)", log2);

  /* 3. the first directory again: local checkpoint plus the changelog's tail */
  int64_t *offs[PARTS], lows[PARTS];
  size_t n_offs[PARTS];
  uint64_t whole = 0;
  scan_offsets(topic, &whole, &span, offs, n_offs, lows); /* quiet: no daemon writes it */
  h_produce(brokers, h_T("events"), msgs, N1 + N2, N, 0);
  const char *log3 = h_path("third.log");
  pid_t d3 = h_spawn(conf, log3);
  H_CHECK(h_wait_log(log3, "assigned partitions", 60), "no assignment (log %s)", log3);
  h_expect_answered(brokers, model, msgs, N, 3 * N, 120, log3);
  printf("all %d events answered, every prediction equal to the offline pipeline's\n", (int)(N));
  double tail = h_metric_of(log3, "interestd_state_restores_total{source=\"local+changelog\"} ");
  double bytes3 = h_metric_of(log3, "interestd_changelog_read_bytes_total ");
  cold = h_metric_of(log3, "interestd_state_restores_total{source=\"cold\"} ");
  printf("first directory again: %.0f partitions from local+changelog, %.0f cold, %.0f changelog "
         "bytes read (the full restore read %.0f)\n", tail, cold, bytes3, bytes);
  H_CHECK(tail == PARTS && cold == 0, "restores: local+changelog %.0f, cold %.0f (log %s)", tail,
          cold, log3);
  H_CHECK(h_wait_log(log3, "changelog read from the local checkpoint's time", 1),
          "the tail was not looked up by time (log %s)", log3);
  /* compaction may remove records between the scan and the restore (fewer
   * read), never add any below the scan's end */
  uint64_t read = 0, skipped = 0;
  for (int p = 0; p < PARTS; p++) {
    int64_t from;
    uint64_t recs3, below = 0;
    restore_read(log3, p, &from, &recs3);
    while (below < n_offs[p] && offs[p][below] < from) below++;
    printf("partition %d: the tail read began at offset %" PRId64 " (low watermark %" PRId64
           "): %" PRIu64 " records read; the changelog held %zu records, %" PRIu64 " below that "
           "offset, %zu at or above it\n", p, from, lows[p], recs3, n_offs[p], below,
           n_offs[p] - (size_t)below);
    H_CHECK(from > lows[p] && below > 0, "partition %d: the restore read the whole changelog "
            "(from %" PRId64 ", low watermark %" PRId64 ", %" PRIu64 " records below; log %s)",
            p, from, lows[p], below, log3);
    H_CHECK(recs3 <= n_offs[p] - below, "partition %d: %" PRIu64 " records read, but only %zu "
            "lie at or above offset %" PRId64 " (log %s)", p, recs3, n_offs[p] - (size_t)below,
            from, log3);
    read += recs3;
    skipped += below;
    free(offs[p]);
  }
  printf("the tail read %" PRIu64 " of the changelog's %" PRIu64 " records (%" PRIu64 " before "
         "the local checkpoint's time not read)\n", read, whole, skipped);
  kill(d3, SIGTERM);
  H_CHECK(h_wait_exit(d3, 30) == 0, "exit (log %s)", log3);
  h_free_msgs(msgs, N);
  printf("PASS\n");
  return 0;
}
