/* interestd end to end against the mock cluster: real Taobao events plus bad
 * messages in; exactly one prediction per event out, each equal to the
 * offline pipeline's for the same event, keyed by user id; bad messages on
 * the dead-letter topic and in interestd_events_rejected_total; SIGTERM exits
 * 0 promptly with every input offset committed. */
#include "daemon_harness.h"

#define N_EVENTS 4000
#define N_BAD 12
#define PARTS 4

int main(void) {
  h_init("test_daemon_e2e");
  char err[512];
  const char *brokers = h_cluster(PARTS);
  h_create_topic("dead", 1);

  /* the events, with bad messages spliced in on every partition */
  h_msg_t *ev = h_load_events(N_EVENTS, PARTS);
  size_t n = N_EVENTS + N_BAD;
  h_msg_t *msgs = calloc(n, sizeof *msgs);
  static const char *const bad[] = {"not msgpack at all", "\x93\x01\x02\x03", "\x81\xa1u"};
  static const size_t bad_len[] = {18, 4, 3};
  for (size_t i = 0, e = 0, b = 0; i < n; i++) {
    if (b < N_BAD && i % (n / N_BAD) == n / N_BAD / 2) {
      msgs[i].partition = (int32_t)(b % PARTS);
      msgs[i].value_len = bad_len[b % 3];
      msgs[i].value = malloc(msgs[i].value_len);
      memcpy(msgs[i].value, bad[b % 3], msgs[i].value_len);
      msgs[i].key = strdup("bad");
      msgs[i].key_len = 3;
      msgs[i].bad = 1;
      b++;
    } else {
      msgs[i] = ev[e];
      ev[e].key = ev[e].value = NULL;
      e++;
    }
  }
  h_free_msgs(ev, N_EVENTS);
  h_produce(brokers, h_T("events"), msgs, 0, n, 0);

  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("interestd.conf");
  char extra[256];
  snprintf(extra, sizeof extra, "[kafka]\ndlq_topic = %s\n", h_T("dead"));
  h_write_conf(conf, brokers, "e2e", model, extra);
  const char *log = h_path("interestd.log");
  double t0 = h_now();
  pid_t pid = h_spawn(conf, log);

  const char *out = h_path("out.rec");
  uint64_t got = h_collect(brokers, h_T("interests"), out, N_EVENTS, 30000);
  printf("collected %" PRIu64 " predictions in %.1f s\n", got, h_now() - t0);
  H_CHECK(got == N_EVENTS, "expected %d predictions, got %" PRIu64 " (log %s)", N_EVENTS, got,
          log);

  int *ok = calloc(n, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, n, ok); /* before the model file is changed */
  uint32_t *counts = calloc(n, sizeof *counts);
  h_check_output(out, msgs, n, ref, ok, counts, 1);
  for (size_t i = 0; i < n; i++)
    H_CHECK(counts[i] == (msgs[i].bad ? 0u : 1u), "input %zu got %u predictions", i, counts[i]);
  /* nothing more arrives: the first N were not followed by duplicates */
  uint64_t again = h_collect(brokers, h_T("interests"), h_path("out2.rec"), N_EVENTS + 1, 2000);
  H_CHECK(again == N_EVENTS, "%" PRIu64 " predictions in the topic, want %d", again, N_EVENTS);
  printf("every event has exactly one prediction, equal to the offline pipeline's\n");

  /* dead letters: the bad payloads, all of them */
  const char *dlq = h_path("dlq.rec");
  H_CHECK(h_collect(brokers, h_T("dead"), dlq, N_BAD, 10000) == N_BAD, "dead-letter count");
  rec_reader_t *r;
  H_CHECK(recfile_reader_open(dlq, &r, err, sizeof err) == 0, "%s", err);
  rec_t x;
  size_t matched = 0;
  while (recfile_read(r, &x) == 0) {
    int found = 0;
    for (int k = 0; k < 3 && !found; k++)
      found = x.value_len == bad_len[k] && memcmp(x.value, bad[k], x.value_len) == 0;
    H_CHECK(found, "unexpected dead-letter payload");
    matched++;
  }
  recfile_reader_close(r);
  H_CHECK(matched == N_BAD, "dead letters %zu", matched);

  /* the rejected counter */
  int port = h_metrics_port(log);
  H_CHECK(port > 0, "no metrics port in %s", log);
  char *body = h_http_get(port, "/metrics");
  H_CHECK(body, "GET /metrics");
  double rejected = h_metric_sum(body, "interestd_events_rejected_total");
  double processed = h_metric_sum(body, "interestd_events_processed_total");
  printf("metrics: rejected %.0f, processed %.0f\n", rejected, processed);
  H_CHECK(rejected == N_BAD, "interestd_events_rejected_total = %g", rejected);
  H_CHECK(processed == N_EVENTS, "interestd_events_processed_total = %g", processed);
  H_CHECK(strstr(body, "reason=\"not_map\""), "no not_map reason label");
  /* live quality: every predictor scored on the same events (the non-first
   * events of each user), hits within the targets, labelled by model */
  double qt = h_metric_sum(body, "interestd_quality_targets_total");
  double qh = h_metric_sum(body, "interestd_quality_hits_total");
  double qr = h_metric_sum(body, "interestd_quality_reciprocal_rank_sum");
  printf("metrics: quality targets %.0f (3 predictors), hits %.0f, reciprocal ranks %.1f\n", qt, qh,
         qr);
  H_CHECK(qt > 0 && qt <= 3.0 * N_EVENTS && (long long)qt % 3 == 0, "quality targets %g", qt);
  H_CHECK(qh > 0 && qh <= 3.0 * qt && qr > 0 && qr <= qt, "quality hits %g, rr %g", qh, qr);
  H_CHECK(strstr(body, "interestd_quality_targets_total{model=\"") &&
              strstr(body, "predictor=\"lstm\"") && strstr(body, "predictor=\"recency\""),
          "quality series without model/predictor labels");
  /* the delivery reports time every prediction once (read -> acknowledged) */
  double lat_n = h_metric_sum(body, "interestd_event_to_prediction_seconds_count");
  double lat_sum = h_metric_sum(body, "interestd_event_to_prediction_seconds_sum");
  printf("metrics: event_to_prediction count %.0f, mean %.4f s\n", lat_n,
         lat_n > 0 ? lat_sum / lat_n : 0.0);
  H_CHECK(lat_n == N_EVENTS, "event_to_prediction_seconds_count = %g", lat_n);
  H_CHECK(lat_sum > 0 && lat_sum / lat_n < 30.0, "event_to_prediction_seconds_sum = %g", lat_sum);
  /* the loop's turns are timed (daemon/loopstat.h): the batches of 4000
   * events ran in some of them, the longest is among those counted */
  double turns = h_metric_sum(body, "interestd_loop_busy_seconds_count");
  double busy = h_metric_sum(body, "interestd_loop_busy_seconds_sum");
  double stall = h_metric_sum(body, "interestd_loop_stall_max_seconds");
  double recent = h_metric_sum(body, "interestd_loop_stall_recent_max_seconds");
  printf("metrics: loop %.0f turns, %.4f s busy, longest %.4f s (last minute %.4f s)\n", turns,
         busy, stall, recent);
  H_CHECK(turns >= 1 && stall > 0 && stall <= busy && recent > 0 && recent <= stall,
          "loop metrics: %g turns, %g s busy, longest %g s, recent %g s", turns, busy, stall,
          recent);
  free(body);
  body = h_http_get(port, "/healthz");
  H_CHECK(body && strstr(body, " 200 "), "healthz not 200");
  free(body);

  /* SIGHUP with a corrupt model, then with a model of other weights: both
   * refused, the running model stays in service */
  FILE *junk = fopen(model, "r+");
  H_CHECK(junk && fseek(junk, 100, SEEK_SET) == 0 && fputs("garbage", junk) >= 0, "corrupt");
  fclose(junk);
  kill(pid, SIGHUP);
  H_CHECK(h_wait_log(log, "reload refused, keeping the running model", 10),
          "corrupt model not refused (log %s)", log);
  h_write_model(model, 8); /* valid, other weights: another state fingerprint */
  kill(pid, SIGHUP);
  H_CHECK(h_wait_log(log, "has another state fingerprint", 10),
          "incompatible model not refused (log %s)", log);
  body = h_http_get(port, "/healthz");
  H_CHECK(body && strstr(body, " 200 "), "healthz after refused reloads");
  free(body);
  printf("SIGHUP: corrupt and incompatible models refused, daemon still healthy\n");

  /* SIGTERM: clean exit, everything committed */
  double ts = h_now();
  kill(pid, SIGTERM);
  int status = h_wait_exit(pid, 15.0);
  printf("SIGTERM: exit %d after %.2f s\n", status, h_now() - ts);
  H_CHECK(status == 0, "exit status %d (log %s)", status, log);
  int64_t per_part[PARTS] = {0};
  for (size_t i = 0; i < n; i++)
    if (msgs[i].offset + 1 > per_part[msgs[i].partition])
      per_part[msgs[i].partition] = msgs[i].offset + 1;
  for (int p = 0; p < PARTS; p++) {
    int64_t c = h_committed(brokers, h_T("e2e"), h_T("events"), p);
    H_CHECK(c == per_part[p], "partition %d committed %" PRId64 ", want %" PRId64, p, c,
            per_part[p]);
  }
  printf("committed offsets equal the end of every partition\n");
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, n);
  h_cluster_destroy();
  printf("PASS\n");
  return 0;
}
