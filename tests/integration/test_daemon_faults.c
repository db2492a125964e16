/* Permanent produce failures against the mock cluster: none of them may stop
 * the daemon or cost a valid event its prediction.
 *
 * poison:      a ~1.1 MB input message with a dead-letter topic; its
 *              dead-letter copy is over the producer's message.max.bytes
 *              (refused locally): a truncated dead-letter record (first
 *              1024 bytes) goes out instead, every valid event after it is
 *              answered, offsets are committed past it.
 * poison_drop: the same with message.max.bytes so small that even the
 *              truncated record is refused: the record is dropped and
 *              counted, the offset still advances.
 * health:      every Produce request fails (retriable) until cleared:
 *              consumption pauses, /healthz says 503 with the reason after
 *              daemon.health_stall_s, the lag gauges add up to everything not
 *              consumed (partitions never consumed from included), and once
 *              the errors stop every event is answered and /healthz is 200.
 * commit:      interestd_committed_offset reaches every partition's end and
 *              interestd_rebalances_total counts the assignment; then every
 *              OffsetCommit fails (INVALID_COMMIT_OFFSET_SIZE): SIGTERM logs
 *              the failed final commit as an error and exits 1.
 * foreign:     a state directory checkpointed against one cluster, reused
 *              against a fresh cluster whose partitions end before the
 *              checkpoints' offsets: the checkpoints are refused (error line,
 *              interestd_checkpoints_refused_total), every event of the new
 *              cluster is answered.
 * pred_fail:   the first Produce requests of the daemon fail with
 *              INVALID_RECORD (non-retriable): those predictions are dropped
 *              and counted, no other event loses its prediction, offsets are
 *              committed.
 * retention:   the daemon answers 500 events of one partition and stops
 *              (offset 500 committed); then ~7 MB more is produced, and the
 *              mock drops the oldest data past ~5 MiB per partition, so the
 *              log starts beyond 500. Restarted, the daemon's fetch at the
 *              committed offset gets offset out of range and librdkafka resets
 *              to the log start: interestd_events_skipped_by_retention_total
 *              equals the log start minus 500, with one error line, and
 *              everything still in the log is consumed.
 * storm:       the first two heartbeats after a join fail with
 *              ILLEGAL_GENERATION (cooperative-sticky): librdkafka drops the
 *              assignment as lost 0.5 s after each join, before the 1 s
 *              auto-commit timer; the offsets processed in that window are
 *              committed anyway (commits after an assignment), and all of
 *              them once the errors stop.
 * restored_commit: every commit of a first run fails, its checkpoints reach
 *              the partitions' ends, SIGKILL; restarted with no new input, it
 *              resumes at the checkpoints and still commits their offsets (a
 *              start stored at the assignment: nothing arrives to store one). */
#include "daemon_harness.h"

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h (the harness includes it) */

#define N_EVENTS 2000
#define PARTS 4
#define BIG_LEN (1100 * 1000)
#define DLQ_KEEP 1024

/* N_EVENTS real events with one ~1.1 MB message (key "big", partition 0)
 * after the first half, produced in that order; returns msgs, *n, *big. */
static h_msg_t *produce_with_poison(const char *brokers, size_t *n_out, size_t *big_out) {
  h_msg_t *ev = h_load_events(N_EVENTS, PARTS);
  size_t n = N_EVENTS + 1, big = N_EVENTS / 2;
  h_msg_t *msgs = calloc(n, sizeof *msgs);
  for (size_t i = 0, e = 0; i < n; i++) {
    if (i == big) continue;
    msgs[i] = ev[e];
    ev[e].key = ev[e].value = NULL;
    e++;
  }
  h_free_msgs(ev, N_EVENTS);
  msgs[big].partition = 0;
  msgs[big].key = strdup("big");
  msgs[big].key_len = 3;
  msgs[big].value_len = BIG_LEN;
  msgs[big].value = malloc(BIG_LEN);
  for (size_t i = 0; i < BIG_LEN; i++) msgs[big].value[i] = (char)('a' + i % 26);
  msgs[big].bad = 1;

  h_produce(brokers, "events", msgs, 0, big, 0);
  /* the test's own producer may send it: the broker side has no limit */
  h_prod_ctx_t pc = {.msgs = msgs};
  const char *props[] = {"message.max.bytes=3000000", NULL};
  producer_opts_t po = {.brokers = brokers, .props = props, .on_delivery = h_dr, .ctx = &pc};
  producer_t *p;
  char err[512];
  H_CHECK(producer_new(&po, &p, err, sizeof err) == 0, "%s", err);
  H_CHECK(producer_send(p, producer_topic(p, "events"), 0, msgs[big].key, msgs[big].key_len,
                        msgs[big].value, msgs[big].value_len, 0, NULL, 0, big) == 0,
          "producing the big message");
  H_CHECK(producer_flush(p, 30000) == 0 && pc.acked == 1, "big message not acknowledged");
  producer_destroy(p, 1000);
  h_produce(brokers, "events", msgs, big + 1, n, 0);
  *n_out = n;
  *big_out = big;
  return msgs;
}

/* SIGTERM: exit 0 and every partition committed to its end. */
static void stop_and_check_commits(pid_t pid, const char *log, const char *brokers,
                                   const char *group, const h_msg_t *msgs, size_t n) {
  kill(pid, SIGTERM);
  int status = h_wait_exit(pid, 60.0);
  H_CHECK(status == 0, "exit status %d (log %s)", status, log);
  int64_t end[PARTS] = {0};
  for (size_t i = 0; i < n; i++)
    if (msgs[i].offset + 1 > end[msgs[i].partition]) end[msgs[i].partition] = msgs[i].offset + 1;
  for (int p = 0; p < PARTS; p++) {
    int64_t c = h_committed(brokers, group, "events", p);
    H_CHECK(c == end[p], "partition %d committed %" PRId64 ", want %" PRId64 " (log %s)", p, c,
            end[p], log);
  }
}

/* One metric sample with its labels, e.g. name{kind="prediction",reason="invalid"}. */
static double metric_series(int port, const char *series) {
  char *body = h_http_get(port, "/metrics");
  H_CHECK(body, "GET /metrics");
  char *p = strstr(body, series);
  double v = p ? strtod(p + strlen(series), NULL) : -1;
  free(body);
  return v;
}

static void test_poison(int drop_truncated) {
  char err[512];
  mockbroker_t *mb = h_mockbroker(PARTS);
  H_CHECK(mockbroker_create_topic(mb, "dead", 1, err, sizeof err) == 0, "%s", err);
  const char *brokers = mockbroker_bootstraps(mb);
  size_t n, big;
  h_msg_t *msgs = produce_with_poison(brokers, &n, &big);

  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path(drop_truncated ? "drop.conf" : "poison.conf");
  const char *group = drop_truncated ? "drop" : "poison";
  h_write_conf(conf, brokers, group, model,
               drop_truncated ? "[kafka]\ndlq_topic = dead\n"
                                "[kafka.producer]\nmessage.max.bytes = 1000\n"
                              : "[kafka]\ndlq_topic = dead\n");
  const char *log = h_path(drop_truncated ? "drop.log" : "poison.log");
  double t0 = h_now();
  pid_t pid = h_spawn(conf, log);

  const char *out = h_path(drop_truncated ? "drop_out.rec" : "poison_out.rec");
  uint64_t got = h_collect(brokers, "interests", out, N_EVENTS, 60000);
  printf("%s: %" PRIu64 " predictions in %.1f s\n", group, got, h_now() - t0);
  H_CHECK(got == N_EVENTS, "expected %d predictions, got %" PRIu64 " (log %s)", N_EVENTS, got,
          log);
  int *ok = calloc(n, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, n, ok);
  H_CHECK(!ok[big], "the big message was not rejected offline");
  uint32_t *counts = calloc(n, sizeof *counts);
  h_check_output(out, msgs, n, ref, ok, counts, 1);
  for (size_t i = 0; i < n; i++)
    H_CHECK(counts[i] == (i == big ? 0u : 1u), "input %zu got %u predictions", i, counts[i]);

  int port = h_metrics_port(log);
  H_CHECK(port > 0, "no metrics port in %s", log);
  /* the dead-letter side settles once its delivery report is in */
  double want_done = 1;
  double end = h_now() + 60;
  while (h_now() < end &&
         h_metric(port, "interestd_dead_letters_truncated_total") +
                 h_metric(port, "interestd_messages_dropped_total") <
             want_done + (drop_truncated ? 1 : 0))
    h_sleep_ms(100);
  double truncated = h_metric(port, "interestd_dead_letters_truncated_total");
  double dropped = metric_series(
      port, "interestd_messages_dropped_total{kind=\"dead_letter\",reason=\"too_large\"} ");
  double too_large = metric_series(port, "interestd_produce_failures_total{reason=\"too_large\"} ");
  printf("%s: truncated %.0f, dead letters dropped %.0f, too_large failures %.0f\n", group,
         truncated, dropped, too_large);
  H_CHECK(truncated == 1, "interestd_dead_letters_truncated_total = %g", truncated);
  H_CHECK(dropped == (drop_truncated ? 1 : 0), "dead-letter drops = %g", dropped);
  H_CHECK(too_large == (drop_truncated ? 2 : 1), "too_large failures = %g", too_large);
  H_CHECK(h_metric(port, "interestd_messages_dropped_total") == dropped, "other drops counted");

  char *text = h_read_file(log);
  H_CHECK(strstr(text, "refused locally"), "the log does not say the refusal was local");
  H_CHECK(!strstr(text, "Broker: Message size too large"), "the log blames the broker");
  if (drop_truncated) {
    char want[128];
    snprintf(want, sizeof want, "input partition 0 offset %" PRId64 " dropped", msgs[big].offset);
    H_CHECK(strstr(text, want), "no drop line naming partition 0 offset %" PRId64 " (log %s)",
            msgs[big].offset, log);
  }
  free(text);

  if (!drop_truncated) {
    /* the truncated record: the key and the value's first DLQ_KEEP bytes */
    const char *dlq = h_path("poison_dlq.rec");
    H_CHECK(h_collect(brokers, "dead", dlq, 1, 10000) == 1, "no dead-letter record");
    rec_reader_t *r;
    H_CHECK(recfile_reader_open(dlq, &r, err, sizeof err) == 0, "%s", err);
    rec_t x;
    H_CHECK(recfile_read(r, &x) == 0, "reading the dead-letter record");
    H_CHECK(x.key_len == 3 && memcmp(x.key, "big", 3) == 0, "dead-letter key");
    H_CHECK(x.value_len == DLQ_KEEP && memcmp(x.value, msgs[big].value, DLQ_KEEP) == 0,
            "dead-letter value of %zu bytes is not the first %d", x.value_len, DLQ_KEEP);
    recfile_reader_close(r);
  }
  char *body = h_http_get(port, "/healthz");
  H_CHECK(body && strstr(body, " 200 "), "healthz not 200");
  free(body);
  stop_and_check_commits(pid, log, brokers, group, msgs, n);
  printf("%s: every valid event answered once, offsets committed past the poison message\n",
         group);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, n);
  mockbroker_destroy(mb);
}

static void test_prediction_failure(void) {
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  h_produce(brokers, "events", msgs, 0, N_EVENTS, 0);
  /* the next Produce requests (the daemon's first, nobody else produces
   * now) fail with a non-retriable error */
  rd_kafka_mock_push_request_errors(mockbroker_cluster(mb), 0 /* Produce */, 2,
                                    RD_KAFKA_RESP_ERR_INVALID_RECORD,
                                    RD_KAFKA_RESP_ERR_INVALID_RECORD);
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("pred.conf");
  h_write_conf(conf, brokers, "pred", model, "");
  const char *log = h_path("pred.log");
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_wait_log(log, "metrics on http://127.0.0.1:", 60), "no metrics port (log %s)", log);
  int port = h_metrics_port(log);
  /* wait until every event is accounted for: delivered or dropped */
  const char *series =
      "interestd_messages_dropped_total{kind=\"prediction\",reason=\"invalid\"} ";
  double end = h_now() + 240, delivered = 0, dropped = 0;
  while (h_now() < end) {
    delivered = h_metric(port, "interestd_predictions_delivered_total");
    dropped = metric_series(port, series);
    if (delivered + dropped >= N_EVENTS) break;
    h_sleep_ms(100);
  }
  printf("pred_fail: %.0f delivered, %.0f dropped (INVALID_RECORD)\n", delivered, dropped);
  H_CHECK(dropped > 0, "no prediction dropped (log %s)", log);
  H_CHECK(delivered + dropped == N_EVENTS, "delivered %g + dropped %g != %d (log %s)", delivered,
          dropped, N_EVENTS, log);
  const char *out = h_path("pred_out.rec");
  uint64_t got = h_collect(brokers, "interests", out, (uint64_t)delivered, 30000);
  H_CHECK(got == (uint64_t)delivered, "%" PRIu64 " predictions in the topic, %g delivered", got,
          delivered);
  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  h_check_output(out, msgs, N_EVENTS, ref, ok, counts, 1);
  for (size_t i = 0; i < N_EVENTS; i++) H_CHECK(counts[i] <= 1, "input %zu duplicated", i);
  char *text = h_read_file(log);
  H_CHECK(strstr(text, "dropped after a permanent failure (invalid"), "no drop line (log %s)", log);
  free(text);
  stop_and_check_commits(pid, log, brokers, "pred", msgs, N_EVENTS);
  printf("pred_fail: the rest delivered once each, offsets committed\n");
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
}

static void test_health_and_lag(void) {
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  h_produce(brokers, "events", msgs, 0, N_EVENTS, 0);
  rd_kafka_resp_err_t errs[3000];
  for (size_t i = 0; i < 3000; i++) errs[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
  rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 0 /* Produce */, 3000, errs);
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("health.conf");
  h_write_conf(conf, brokers, "health", model,
               "[batch]\nmax_events = 1\nmax_inflight = 16\n[daemon]\nhealth_stall_s = 2\n");
  const char *log = h_path("health.log");
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_wait_log(log, "metrics on http://127.0.0.1:", 60), "no metrics port (log %s)", log);
  int port = h_metrics_port(log);
  char *body = NULL;
  double end = h_now() + 60;
  while (h_now() < end) {
    free(body);
    body = h_http_get(port, "/healthz");
    if (body && strstr(body, " 503 ") && strstr(body, "consumption paused")) break;
    h_sleep_ms(200);
  }
  H_CHECK(body && strstr(body, "consumption paused"), "healthz: %s (log %s)", body ? body : "-",
          log);
  printf("health: %s", strstr(body, "\r\n\r\n") ? strstr(body, "\r\n\r\n") + 4 : body);
  free(body);
  H_CHECK(h_metric(port, "interestd_consumer_paused") == 1, "interestd_consumer_paused != 1");
  /* lag: everything not consumed, on every partition */
  /* the gauge follows each partition's high watermark as the client learns it
   * (a few seconds after assignment under load): wait for it to settle */
  double consumed = 0, lag = 0;
  for (double lag_end = h_now() + 60; h_now() < lag_end; h_sleep_ms(200)) {
    consumed = h_metric(port, "interestd_events_consumed_total");
    lag = h_metric(port, "interestd_consumer_lag_messages");
    if (lag == N_EVENTS - consumed) break;
  }
  printf("health: consumed %.0f, lag %.0f of %d\n", consumed, lag, N_EVENTS);
  H_CHECK(consumed < N_EVENTS / 2, "consumed %g while paused", consumed);
  H_CHECK(lag == N_EVENTS - consumed, "lag %g, want %g", lag, N_EVENTS - consumed);
  /* the errors stop: everything goes through and healthz recovers */
  rd_kafka_mock_clear_request_errors(mockbroker_cluster(mb), 0);
  /* with max_inflight 16 the daemon takes 16 events per fetch round trip:
   * about 130 events/s in a release build, down to ~20/s under ASan on a
   * loaded 2-core machine (2000 events in ~100 s) */
  double t_clear = h_now();
  end = t_clear + 240;
  double delivered = 0;
  while (h_now() < end && (delivered = h_metric(port, "interestd_predictions_delivered_total")) <
                              N_EVENTS)
    h_sleep_ms(200);
  H_CHECK(delivered >= N_EVENTS, "delivered %g of %d in %.0f s (log %s)", delivered, N_EVENTS,
          h_now() - t_clear, log);
  printf("health: all %d delivered %.1f s after the errors stopped\n", N_EVENTS, h_now() - t_clear);
  end = h_now() + 30;
  while (h_now() < end) {
    body = h_http_get(port, "/healthz");
    int ok = body && strstr(body, " 200 ");
    free(body);
    if (ok) break;
    h_sleep_ms(200);
  }
  body = h_http_get(port, "/healthz");
  H_CHECK(body && strstr(body, " 200 "), "healthz after recovery: %s", body ? body : "-");
  free(body);
  double lag_after = -1;
  for (end = h_now() + 30; h_now() < end; h_sleep_ms(200))
    if ((lag_after = h_metric(port, "interestd_consumer_lag_messages")) == 0) break;
  H_CHECK(lag_after == 0, "lag %g after recovery (log %s)", lag_after, log);
  stop_and_check_commits(pid, log, brokers, "health", msgs, N_EVENTS);
  printf("health: recovered, every event delivered, offsets committed\n");
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
}

static void test_commit_failure(void) {
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N_EVENTS + 200, PARTS);
  h_produce(brokers, "events", msgs, 0, N_EVENTS, 0);
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("commit.conf");
  h_write_conf(conf, brokers, "commit", model, "");
  const char *log = h_path("commit.log");
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_collect(brokers, "interests", h_path("commit_out.rec"), N_EVENTS, 30000) == N_EVENTS,
          "predictions (log %s)", log);
  int port = h_metrics_port(log);
  int64_t end[PARTS] = {0};
  double want = 0;
  for (size_t i = 0; i < N_EVENTS; i++)
    if (msgs[i].offset + 1 > end[msgs[i].partition]) end[msgs[i].partition] = msgs[i].offset + 1;
  for (int p = 0; p < PARTS; p++) want += (double)end[p];
  double committed = 0, deadline = h_now() + 60;
  while (h_now() < deadline &&
         (committed = h_metric(port, "interestd_committed_offset")) < want)
    h_sleep_ms(200);
  printf("commit: committed offsets sum %.0f of %.0f\n", committed, want);
  H_CHECK(committed == want, "interestd_committed_offset sums to %g, want %g", committed, want);
  H_CHECK(metric_series(port, "interestd_rebalances_total{event=\"assign\"} ") >= 1,
          "no assignment counted");
  /* every commit from now on fails with an error that leaves the group as
   * it is (not ILLEGAL_GENERATION: an auto-commit failing with it before
   * the SIGTERM, as under load, drops the assignment as lost, and the
   * shutdown then has nothing of its own to commit; the storm scenario
   * covers that error) */
  rd_kafka_resp_err_t errs[200];
  for (size_t i = 0; i < 200; i++) errs[i] = RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE;
  rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 8 /* OffsetCommit */, 200,
                                          errs);
  /* 200 more events, answered but never committed */
  h_produce(brokers, "events", msgs, N_EVENTS, N_EVENTS + 200, 0);
  H_CHECK(h_collect(brokers, "interests", h_path("commit_out2.rec"), N_EVENTS + 200, 30000) ==
              N_EVENTS + 200,
          "predictions of the last 200 (log %s)", log);
  kill(pid, SIGTERM);
  int status = h_wait_exit(pid, 60.0);
  printf("commit: exit %d with every commit failing\n", status);
  H_CHECK(status == 1, "exit status %d, want 1 (log %s)", status, log);
  H_CHECK(h_wait_log(log, "the final offset commit failed", 1), "no error line (log %s)", log);
  rd_kafka_mock_clear_request_errors(mockbroker_cluster(mb), 8);
  h_free_msgs(msgs, N_EVENTS + 200);
  mockbroker_destroy(mb);
}

static void test_foreign_checkpoint(void) {
  char conf_extra[1024];
  snprintf(conf_extra, sizeof conf_extra,
           "[state]\ncheckpoint_dir = %s\ncheckpoint_interval_s = 1\n", h_path("ckpt"));
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  /* cluster A: everything processed and checkpointed */
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  h_produce(brokers, "events", msgs, 0, N_EVENTS, 0);
  const char *conf = h_path("foreign_a.conf");
  h_write_conf(conf, brokers, "foreign", model, conf_extra);
  const char *log = h_path("foreign_a.log");
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_collect(brokers, "interests", h_path("fa.rec"), N_EVENTS, 30000) == N_EVENTS,
          "cluster A predictions (log %s)", log);
  h_sleep_ms(2500);
  kill(pid, SIGTERM);
  H_CHECK(h_wait_exit(pid, 60.0) == 0, "cluster A exit (log %s)", log);
  mockbroker_destroy(mb);
  /* cluster B: a quarter of the events, the same state directory */
  size_t n = N_EVENTS / 4;
  mb = h_mockbroker(PARTS);
  brokers = mockbroker_bootstraps(mb);
  h_produce(brokers, "events", msgs, 0, n, 0);
  conf = h_path("foreign_b.conf");
  h_write_conf(conf, brokers, "foreign", model, conf_extra);
  log = h_path("foreign_b.log");
  pid = h_spawn(conf, log);
  uint64_t got = h_collect(brokers, "interests", h_path("fb.rec"), n, 30000);
  printf("foreign: %" PRIu64 " of %zu events answered on the new cluster\n", got, n);
  H_CHECK(got == n, "%" PRIu64 " predictions, want %zu (log %s)", got, n, log);
  /* and from empty states: equal to the offline pipeline over the new events
   * alone (states restored from cluster A would make them differ) */
  int *ok = calloc(n, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, n, ok);
  uint32_t *counts = calloc(n, sizeof *counts);
  h_check_output(h_path("fb.rec"), msgs, n, ref, ok, counts, 1);
  for (size_t i = 0; i < n; i++) H_CHECK(counts[i] == 1, "event %zu: %u predictions", i, counts[i]);
  free(ok);
  free(ref);
  free(counts);
  H_CHECK(h_wait_log(log, "checkpoint ignored, starting cold", 30), "no error line (log %s)", log);
  int port = h_metrics_port(log);
  double refused = h_metric(port, "interestd_checkpoints_refused_total");
  printf("foreign: %.0f checkpoints refused\n", refused);
  H_CHECK(refused >= 1, "interestd_checkpoints_refused_total = %g", refused);
  kill(pid, SIGTERM);
  H_CHECK(h_wait_exit(pid, 60.0) == 0, "cluster B exit (log %s)", log);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
}

static void test_retention_skip(void) {
  enum { N_FIRST = 500, N_FILL = 7000, FILL_LEN = 1000 };
  mockbroker_t *mb = h_mockbroker(1);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N_FIRST, 1);
  h_produce(brokers, "events", msgs, 0, N_FIRST, 0);
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("retention.conf");
  h_write_conf(conf, brokers, "retention", model, "");
  const char *log = h_path("retention_a.log");
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_collect(brokers, "interests", h_path("ret_out.rec"), N_FIRST, 30000) == N_FIRST,
          "predictions (log %s)", log);
  kill(pid, SIGTERM);
  H_CHECK(h_wait_exit(pid, 60.0) == 0, "first run's exit (log %s)", log);
  int64_t committed = h_committed(brokers, "retention", "events", 0);
  H_CHECK(committed == N_FIRST, "committed %" PRId64 ", want %d", committed, N_FIRST);
  /* ~7 MB of filler (rejected by the daemon: not an event): the mock keeps
   * about 5 MiB per partition and drops the oldest batches */
  h_msg_t *fill = calloc(N_FILL, sizeof *fill);
  for (size_t i = 0; i < N_FILL; i++) {
    fill[i].partition = 0;
    fill[i].key = strdup("f");
    fill[i].key_len = 1;
    fill[i].value_len = FILL_LEN;
    fill[i].value = malloc(FILL_LEN);
    for (size_t j = 0; j < FILL_LEN; j++) fill[i].value[j] = (char)('a' + (i + j) % 26);
  }
  h_produce(brokers, "events", fill, 0, N_FILL, 0);
  int64_t lo, hi;
  h_watermarks(brokers, "events", 0, &lo, &hi);
  printf("retention: log now [%" PRId64 ", %" PRId64 "), committed %" PRId64 "\n", lo, hi,
         committed);
  H_CHECK(lo > committed && hi == N_FIRST + N_FILL, "the mock kept everything: [%" PRId64
          ", %" PRId64 ")", lo, hi);
  log = h_path("retention_b.log");
  pid = h_check_retention_skip(conf, log, committed, lo, hi, 120);
  kill(pid, SIGTERM);
  H_CHECK(h_wait_exit(pid, 60.0) == 0, "second run's exit (log %s)", log);
  h_free_msgs(fill, N_FILL);
  h_free_msgs(msgs, N_FIRST);
  mockbroker_destroy(mb);
}

/* The group's committed offsets, summed over the partitions (-1 each if none). */
static int64_t committed_sum(const char *brokers, const char *group) {
  int64_t sum = 0;
  for (int p = 0; p < PARTS; p++) sum += h_committed(brokers, h_T(group), h_T("events"), p);
  return sum;
}

static void test_heartbeat_storm(void) {
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  h_produce(brokers, "events", msgs, 0, N_EVENTS, 0);
  int64_t want = 0;
  int64_t end[PARTS] = {0};
  for (size_t i = 0; i < N_EVENTS; i++)
    if (msgs[i].offset + 1 > end[msgs[i].partition]) end[msgs[i].partition] = msgs[i].offset + 1;
  for (int p = 0; p < PARTS; p++) want += end[p];
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("storm.conf");
  /* the auto-commit timer (5 s here) cannot fire inside the short windows */
  h_write_conf(conf, brokers, "storm", model,
               "[kafka.consumer]\nauto.commit.interval.ms = 5000\n");
  /* the third heartbeat after each of two joins fails: each time the
   * assignment is lost about a second after it was made (heartbeats every
   * 500 ms), well before the 5 s auto-commit; the second heartbeat gave a
   * loaded machine too short a window to process anything */
  rd_kafka_resp_err_t errs[6] = {RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_NO_ERROR,
                                 RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
                                 RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_NO_ERROR,
                                 RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION};
  rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 12 /* Heartbeat */, 6, errs);
  const char *log = h_path("storm.log");
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_wait_log(log, "lost partitions", 60), "no lost assignment (log %s)", log);
  h_sleep_ms(1000);
  int64_t first = committed_sum(brokers, "storm");
  printf("storm: %" PRId64 " of %" PRId64 " offsets committed in the first short "
         "assignment\n", first + PARTS, want + PARTS);
  H_CHECK(first > 0, "nothing committed before the assignment was lost (sum %" PRId64
          ", log %s)", first, log);
  int64_t sum = first;
  double deadline = h_now() + 120;
  while (h_now() < deadline && (sum = committed_sum(brokers, "storm")) < want) h_sleep_ms(500);
  printf("storm: %" PRId64 " of %" PRId64 " offsets committed in the end\n", sum + PARTS,
         want + PARTS);
  H_CHECK(sum == want, "committed %" PRId64 " of %" PRId64 " (log %s)", sum, want, log);
  kill(pid, SIGTERM);
  H_CHECK(h_wait_exit(pid, 60.0) == 0, "exit (log %s)", log);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
}

/* The next offset in the newest checkpoint of partition p in dir (header
 * bytes 24..31, docs/STATE.md); -1 when there is none. */
static int64_t newest_ckpt_offset(const char *dir, int p) {
  int64_t best_gen = 0, next = -1;
  for (int64_t g = 1; g < 10000; g++) {
    char path[600];
    snprintf(path, sizeof path, "%s/p%d-%" PRId64 ".ckpt", dir, p, g);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    unsigned char h[32];
    if (fread(h, 1, sizeof h, f) == sizeof h && g > best_gen) {
      best_gen = g;
      next = 0;
      for (int i = 7; i >= 0; i--) next = (next << 8) | h[24 + i];
    }
    fclose(f);
  }
  return next;
}

static void test_restored_commit(void) {
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  h_produce(brokers, "events", msgs, 0, N_EVENTS, 0);
  int64_t end[PARTS] = {0};
  for (size_t i = 0; i < N_EVENTS; i++)
    if (msgs[i].offset + 1 > end[msgs[i].partition]) end[msgs[i].partition] = msgs[i].offset + 1;
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *dir = h_path("rc_ckpt");
  char extra[700];
  snprintf(extra, sizeof extra, "[state]\ncheckpoint_dir = %s\ncheckpoint_interval_s = 1\n",
           dir);
  const char *conf = h_path("rc.conf");
  h_write_conf(conf, brokers, "rc", model, extra);
  /* every commit of the first run fails; its checkpoints reach the ends */
  rd_kafka_resp_err_t errs[1000];
  for (size_t i = 0; i < 1000; i++) errs[i] = RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE;
  rd_kafka_mock_push_request_errors_array(mockbroker_cluster(mb), 8 /* OffsetCommit */, 1000,
                                          errs);
  const char *log = h_path("rc_a.log");
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_collect(brokers, "interests", h_path("rc_out.rec"), N_EVENTS, 60000) == N_EVENTS,
          "predictions (log %s)", log);
  int all = 0;
  for (double t_end = h_now() + 60; !all && h_now() < t_end; h_sleep_ms(200)) {
    all = 1;
    for (int p = 0; p < PARTS; p++) all &= newest_ckpt_offset(dir, p) == end[p];
  }
  for (int p = 0; p < PARTS; p++)
    printf("restored_commit: partition %d: checkpoint at %" PRId64 " of %" PRId64 "\n", p,
           newest_ckpt_offset(dir, p), end[p]);
  H_CHECK(all, "the checkpoints did not reach the partitions' ends (log %s)", log);
  kill(pid, SIGKILL); /* no commit at shutdown */
  H_CHECK(h_wait_exit(pid, 60.0) == -2, "killed");
  rd_kafka_mock_clear_request_errors(mockbroker_cluster(mb), 8);
  int64_t before = committed_sum(brokers, "rc");
  printf("restored_commit: committed sum %" PRId64 " after the first run (-%d = none)\n", before,
         PARTS);
  /* restarted: every partition resumes at its checkpoint, at the end, with
   * nothing new to read: the group's offsets must still reach the ends */
  log = h_path("rc_b.log");
  pid = h_spawn(conf, log);
  int64_t want = 0, sum = 0;
  for (int p = 0; p < PARTS; p++) want += end[p];
  for (double t_end = h_now() + 60; h_now() < t_end && sum != want; h_sleep_ms(250))
    sum = committed_sum(brokers, "rc");
  printf("restored_commit: committed sum %" PRId64 " of %" PRId64 " after the restart\n", sum,
         want);
  H_CHECK(sum == want, "committed %" PRId64 " of %" PRId64 " with every checkpoint at the end "
          "(log %s)", sum, want, log);
  kill(pid, SIGTERM);
  H_CHECK(h_wait_exit(pid, 60.0) == 0, "exit (log %s)", log);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
}

int main(int argc, char **argv) {
  h_init("test_daemon_faults");
  const char *only = argc > 1 ? argv[1] : NULL;
  if (!only || !strcmp(only, "poison")) test_poison(0);
  if (!only || !strcmp(only, "poison_drop")) test_poison(1);
  if (!only || !strcmp(only, "pred_fail")) test_prediction_failure();
  if (!only || !strcmp(only, "health")) test_health_and_lag();
  if (!only || !strcmp(only, "commit")) test_commit_failure();
  if (!only || !strcmp(only, "foreign")) test_foreign_checkpoint();
  if (!only || !strcmp(only, "retention")) test_retention_skip();
  if (!only || !strcmp(only, "storm")) test_heartbeat_storm();
  if (!only || !strcmp(only, "restored_commit")) test_restored_commit();
  printf("PASS\n");
  return 0;
}
