/* A model swap without cold users (model.reload = warm), on the bundled
 * Taobao events and the mock broker (or a real cluster: daemon_harness.h).
 *
 *   swap     SIGHUP with a model of another fingerprint mid-stream: every
 *            event answered exactly once; each partition's predictions come
 *            from the old model up to one offset and from the new one after
 *            it; every new-model prediction equals an offline run of the new
 *            model over the warm-up window (the offsets the log names) and
 *            everything after it; the window is not empty (a cold swap fails
 *            here); the input paused <= 1 s (interestd_model_swap_pause_seconds);
 *            interestd_model_info names the new fingerprint.
 *   kill     kill -9 while the new model warms up, then a restart with the
 *            old model: it restores the old model's checkpoints, every event is
 *            answered and every prediction equals the old model's offline run.
 *   term     the same with SIGTERM (exit 0, the old model's checkpoints).
 *   warmset  a daemon started with the new model on a checkpoint directory
 *            written by `interestctl replay --offline --write-state`: it
 *            restores it, consumes only the events after it, and each of their
 *            predictions equals the new model served from the start.
 *   killnew  kill -9 while the new model warms up, then a restart with the
 *            NEW model (model.warm_start, auto = on with reload = warm): the
 *            old model's checkpoints are refused and every partition is
 *            warm-started from its window (warm_max_events offsets before the
 *            offset it is served from) under the new model, none cold; every
 *            event answered; every event from the serving offsets on answered
 *            by the new model's offline run over the window and what follows;
 *            interestd_state_restores_total{source="warm"} = 4.
 *   rolling  a rolling deploy of the new model over two processes (one
 *            restarted with it, then the other) while events flow: no
 *            partition cold, every prediction the old model's or the new
 *            model's over a logged window and later, the new model's after.
 *   clog     the swap with the states in a changelog topic only
 *            (state.changelog_mode = changelog, no local directory): every
 *            event answered once, old then new model per partition, every
 *            new prediction equal to the offline run over the window; once
 *            every partition's first checkpoint after the switch completed
 *            (a new epoch), kill -9; a restart with the new model restores
 *            every partition from the changelog (none cold) and every later
 *            prediction, re-processed ones included, equals that offline run.
 *   clogcrash the same swap, the process killing itself (a test failpoint)
 *            instead of sending the new model's first completion record: a
 *            restart with the old model restores every partition from the
 *            changelog (the new model's unfinished records ignored) and
 *            re-processes every event the new model answered, each equal
 *            to the old model's offline run; a restart with the new model
 *            then finds the old model's completions and warm-starts every
 *            partition from the input (model.warm_start) instead.
 *   clogstandby two members with standby_replicas = 1 swap models together;
 *            once every partition's new epoch completed, kill -9 one: the
 *            other takes its partitions over from its standby copies (followed
 *            again for the new model after its own switch), and every
 *            prediction after the switch equals the new model's offline run.
 *   clogreset model.reload = reset with a changelog topic: A, reset to B (users
 *            expire in B's epoch), kill -9, restart with B, reset back to A,
 *            kill -9, restart with A: each restart restores exactly the users
 *            with events since the last reset (no expired user, no record of
 *            before the reset) and every prediction since a reset equals that
 *            model run from the reset's offsets.
 *   localreset model.reload = reset with local checkpoints only: events on two
 *            of four partitions after the reset, kill -9 after a checkpoint
 *            (the committed offsets behind it), restart with the new model:
 *            every partition restores the new model's checkpoint (the two
 *            idle ones empty, at the reset's offset), phase A's events are
 *            not answered again, every later prediction equals the new model
 *            run from the reset's offsets.
 * `test_daemon_swap <scenario>` runs one. */

#include "daemon_harness.h"
#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h (the harness includes it) */

#define PARTS 4

/* The pipeline run offline with model_path over the messages of msgs[0..n)
 * whose offset is at least from[partition] (in order), predictions indexed
 * like msgs (ok[i] = 0 for the messages not run or not answered). */
static prediction_t *offline_from(const char *model_path, const h_msg_t *msgs, size_t n,
                                  const int64_t *from, int *ok) {
  model_t *m;
  char err[512];
  H_CHECK(model_load(model_path, &m, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {0};
  emit_opts_t eo = {.policy = EMIT_EVERY, .top_n_change = 3};
  pipeline_t *p;
  H_CHECK(pipeline_new(m, &so, &eo, &p) == 0, "pipeline");
  prediction_t *out = calloc(n, sizeof *out);
  rec_t *recs = calloc(n, sizeof *recs);
  size_t *idx = calloc(n, sizeof *idx);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    ok[i] = 0;
    if (msgs[i].offset < from[msgs[i].partition]) continue;
    idx[k] = i;
    recs[k++] = (rec_t){.partition = msgs[i].partition, .offset = msgs[i].offset,
                        .key = msgs[i].key, .key_len = msgs[i].key_len,
                        .value = msgs[i].value, .value_len = msgs[i].value_len};
  }
  for (size_t lo = 0; lo < k; lo += 256) {
    size_t b = k - lo < 256 ? k - lo : 256;
    pipeline_result_t res;
    H_CHECK(pipeline_process(p, recs + lo, b, 0, &res) == 0, "offline batch");
    for (size_t j = 0; j < res.n_preds; j++) {
      size_t i = idx[lo + res.pred_src[j]];
      out[i] = res.preds[j];
      ok[i] = 1;
    }
  }
  free(recs);
  free(idx);
  pipeline_destroy(p);
  model_destroy(m);
  return out;
}

/* Reads every prediction of the output topic (until expect are there or
 * timeout_s) into per-message lists: preds[i] holds up to 4 of message i's. */
typedef struct {
  prediction_t p[4];
  uint32_t n;
} got_t;

static got_t *collect(const char *brokers, const h_msg_t *msgs, size_t n, uint64_t expect,
                      double timeout_s, uint64_t *total) {
  h_index_t ix;
  h_index_build(&ix, msgs, n);
  got_t *g = NULL;
  double end = h_now() + timeout_s;
  for (;;) {
    const char *out = h_path("out.rec");
    h_collect(brokers, h_T("interests"), out, expect * 2, 3000);
    free(g);
    g = calloc(n, sizeof *g);
    rec_reader_t *r;
    char err[512];
    H_CHECK(recfile_reader_open(out, &r, err, sizeof err) == 0, "%s", err);
    rec_t x;
    *total = 0;
    size_t answered = 0;
    while (recfile_read(r, &x) == 0) {
      prediction_t p;
      H_CHECK(codec_decode_prediction(x.value, x.value_len, &p, err, sizeof err) == 0, "%s", err);
      long i = h_index_find(&ix, p.src_partition, p.src_offset);
      H_CHECK(i >= 0, "prediction for unknown input %d/%" PRId64, (int)p.src_partition,
              p.src_offset);
      if (g[i].n < 4) g[i].p[g[i].n] = p;
      if (g[i].n++ == 0) answered++;
      (*total)++;
    }
    recfile_reader_close(r);
    if (answered >= expect || h_now() > end) break;
  }
  h_index_free(&ix);
  return g;
}

/* Sanitizer reports in a daemon's log fail the test. */
static void check_log_clean(const char *log) {
  char *s = h_read_file(log);
  int bad = strstr(s, "AddressSanitizer") || strstr(s, "runtime error:") ||
            strstr(s, "LeakSanitizer");
  free(s);
  H_CHECK(!bad, "sanitizer report in %s", log);
}

static void write_conf(const char *conf, const char *brokers, const char *group,
                       const char *model, const char *ckpt, uint64_t max_events,
                       const char *more) {
  char extra[1024];
  snprintf(extra, sizeof extra,
           "[state]\ncheckpoint_dir = %s\ncheckpoint_interval_s = 1\n[daemon]\n"
           "shutdown_timeout_s = 10\n[model]\nreload = warm\nwarm_window_s = 0\n"
           "warm_max_events = %" PRIu64 "\n%s", ckpt, max_events, more);
  h_write_conf(conf, brokers, group, model, extra);
}

/* "partition P: warming from offset S (serving at L)" lines of log. */
static int warm_starts(const char *log, int64_t *start, int64_t *serving) {
  char *s = h_read_file(log);
  int found = 0;
  for (char *p = s; (p = strstr(p, "partition ")); p++) {
    int part;
    long long st, sv;
    if (sscanf(p, "partition %d: warming from offset %lld (serving at %lld)", &part, &st, &sv) ==
            3 && part >= 0 && part < PARTS) {
      start[part] = st;
      serving[part] = sv;
      found++;
    }
  }
  free(s);
  return found;
}

/* Checks the predictions g collected for the first n events of a warm swap:
 * each answered once, by the old model (ref_old) up to an offset per
 * partition and by the warmed new one (ref_new) after it, at least w / 2
 * events after the window's start; prints the tally under NAME. Returns the
 * number answered by the new model; first_new[p]: partition p's first offset
 * answered by it. */
static size_t check_old_then_new(const char *name, const got_t *g, const h_msg_t *msgs,
                                 size_t n, uint64_t total, const int *ok_old,
                                 const prediction_t *ref_old, const int *ok_new,
                                 const prediction_t *ref_new, const int64_t *start,
                                 const int64_t *serving, int64_t w, int64_t *first_new,
                                 const char *log) {
  size_t missing = 0, dups = 0, n_old = 0, n_new = 0, neither = 0;
  int64_t last_old[PARTS];
  for (int p = 0; p < PARTS; p++) first_new[p] = INT64_MAX, last_old[p] = -1;
  for (size_t i = 0; i < n; i++) {
    if (g[i].n == 0) {
      missing++;
      continue;
    }
    dups += g[i].n - 1;
    const prediction_t *pr = &g[i].p[0];
    int32_t p = msgs[i].partition;
    if (ok_new[i] && h_same_prediction(pr, &ref_new[i])) {
      n_new++;
      if (msgs[i].offset < first_new[p]) first_new[p] = msgs[i].offset;
    } else if (ok_old[i] && h_same_prediction(pr, &ref_old[i])) {
      n_old++;
      if (msgs[i].offset > last_old[p]) last_old[p] = msgs[i].offset;
    } else if (neither++ < 3) {
      fprintf(stderr, "prediction for %d/%" PRId64 " (user %" PRIu64 ") is neither the old "
              "model's nor the warmed new model's\n", (int)p, msgs[i].offset, pr->user_id);
    }
  }
  printf("%s: %" PRIu64 " predictions for %zu events: %zu missing, %zu duplicates, %zu from "
         "the old model, %zu from the warmed new one, %zu from neither\n", name, total, n,
         missing, dups, n_old, n_new, neither);
  for (int p = 0; p < PARTS; p++)
    printf("  partition %d: warmed from offset %" PRId64 " (serving at %" PRId64 " when the "
           "warm-up began), last old prediction at %" PRId64 ", first new at %" PRId64 "\n", p,
           start[p], serving[p], last_old[p], first_new[p]);
  H_CHECK(missing == 0, "%zu events unanswered (log %s)", missing, log);
  H_CHECK(dups == 0, "%zu duplicate predictions", dups);
  H_CHECK(neither == 0, "%zu predictions from neither model's reference (a cold or mixed "
          "swap?)", neither);
  for (int p = 0; p < PARTS; p++) {
    H_CHECK(first_new[p] != INT64_MAX, "partition %d: no prediction from the new model", p);
    H_CHECK(last_old[p] < first_new[p], "partition %d: old-model prediction at %" PRId64
            " after the first new one at %" PRId64, p, last_old[p], first_new[p]);
    H_CHECK(first_new[p] - start[p] >= w / 2, "partition %d: only %" PRId64 " events warmed "
            "before the switch", p, first_new[p] - start[p]);
  }
  return n_new;
}

static void scenario_swap(const char *brokers) {
  enum { N = 18000, N1 = 12000, N2 = 16000, W = 700 };
  const char *old_m = h_path("old.ixm"), *new_m = h_path("new.ixm");
  h_write_model(old_m, 5);
  h_write_model(new_m, 11);
  const char *conf = h_path("swap.conf");
  write_conf(conf, brokers, "swap", old_m, h_path("ckpt-swap"), W, "");
  h_msg_t *msgs = h_load_events(N, PARTS);
  const char *log = h_path("swap.log");
  pid_t d = h_spawn(conf, log);
  H_CHECK(h_wait_log(log, "assigned partitions", 30), "no assignment (log %s)", log);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));
  h_feed_t f = {.brokers = brokers, .topic = topic_events, .msgs = msgs,
                .lo = 0, .hi = N1, .rate = 4000.0};
  h_feed_start(&f);
  int mport = h_metrics_port(log);
  double until = h_now() + 60;
  for (;;) { /* mid-stream, with more than a window behind every partition */
    char *body = h_http_get(mport, "/metrics");
    double done = body ? h_metric_sum(body, "interestd_events_processed_total") : 0;
    free(body);
    if (done >= 5000) break;
    H_CHECK(h_now() < until, "%.0f events processed in 60 s (log %s)", done, log);
    h_sleep_ms(50);
  }
  write_conf(conf, brokers, "swap", new_m, h_path("ckpt-swap"), W, "");
  kill(d, SIGHUP);
  H_CHECK(h_wait_log(log, "warming up on", 10), "no warm-up started (log %s)", log);
  H_CHECK(h_wait_log(log, "model swapped", 120), "no switch (log %s)", log);
  h_feed_join(&f);
  h_produce(brokers, topic_events, msgs, N1, N2, 4000.0); /* after the switch for sure */

  int64_t start[PARTS], serving[PARTS];
  for (int p = 0; p < PARTS; p++) start[p] = serving[p] = -1;
  H_CHECK(warm_starts(log, start, serving) == PARTS, "not every partition warmed (log %s)", log);
  int *ok_old = calloc(N, sizeof *ok_old), *ok_new = calloc(N, sizeof *ok_new);
  int64_t zero[PARTS] = {0};
  prediction_t *ref_old = offline_from(old_m, msgs, N, zero, ok_old);
  prediction_t *ref_new = offline_from(new_m, msgs, N, start, ok_new);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N2, N2, 60, &total);

  int port = h_metrics_port(log);
  char *body = h_http_get(port, "/metrics");
  H_CHECK(body, "no /metrics");
  double pause = h_metric_sum(body, "interestd_model_swap_pause_seconds");
  double swaps = h_metric_sum(body, "interestd_model_swaps_total{result=\"warm\"}");
  model_t *nm;
  char err[512];
  H_CHECK(model_load(new_m, &nm, err, sizeof err) == 0, "%s", err);
  char fp[64];
  snprintf(fp, sizeof fp, "fingerprint=\"%08x\"", model_fingerprint(nm));
  model_destroy(nm);
  int fp_shown = strstr(body, fp) != NULL;
  char series[160];
  snprintf(series, sizeof series, "interestd_quality_targets_total{model=\"%.8s\","
           "predictor=\"lstm\"}", fp + strlen("fingerprint=\""));
  double live_targets = h_metric_sum(body, series);
  free(body);

  int64_t first_new[PARTS];
  size_t n_new = check_old_then_new("swap", g, msgs, N2, total, ok_old, ref_old, ok_new,
                                    ref_new, start, serving, W, first_new, log);
  printf("input paused %.3f s by the switch; swaps %.0f; model_info names the new "
         "fingerprint: %s\n", pause, swaps, fp_shown ? "yes" : "no");
  for (int p = 0; p < PARTS; p++) {
    int64_t want = serving[p] > W ? serving[p] - W : 0;
    H_CHECK(start[p] == want, "partition %d: warmed from %" PRId64 ", expected %" PRId64, p,
            start[p], want);
  }
  H_CHECK(swaps == 1, "interestd_model_swaps_total{result=\"warm\"} = %.0f", swaps);
  H_CHECK(pause > 0 && pause <= 1.0, "the switch paused the input %.3f s (bound 1 s)", pause);
  H_CHECK(fp_shown, "interestd_model_info does not name the new model's %s", fp);
  printf("the new model's live quality counts %.0f targets (%zu events served by it)\n",
         live_targets, n_new);
  H_CHECK(live_targets > 0 && live_targets <= (double)n_new, "%s = %.0f: the warm-up's "
          "replayed events are counted as live quality", series, live_targets);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log);
  char *s = h_read_file(log);
  H_CHECK(strstr(s, "input paused"), "no pause in the log");
  free(s);
  check_log_clean(log);
  /* the checkpoints after the switch are the new model's: a restart with it
   * restores them and goes on exactly */
  const char *log2 = h_path("swap2.log");
  d = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  h_produce(brokers, topic_events, msgs, N2, N, 0);
  free(g);
  g = collect(brokers, msgs, N, N, 60, &total);
  free(ref_new); /* again: the last events have their offsets now */
  ref_new = offline_from(new_m, msgs, N, start, ok_new);
  size_t later_missing = 0, later_differ = 0;
  for (size_t i = N2; i < N; i++) {
    if (!g[i].n) later_missing++;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++)
      later_differ += !ok_new[i] || !h_same_prediction(&g[i].p[k], &ref_new[i]);
  }
  s = h_read_file(log2);
  int restored = 0;
  for (char *q = s; (q = strstr(q, "users from checkpoint generation")); q++) restored++;
  int refused = strstr(s, "checkpoint not restored") != NULL;
  free(s);
  printf("swap: restarted with the new model: %d partitions restored, %s refused; the %d "
         "later events: %zu missing, %zu predictions differ from the new model's run\n",
         restored, refused ? "some" : "none", N - N2, later_missing, later_differ);
  H_CHECK(restored == PARTS && !refused, "the new model's checkpoints were not all restored "
          "(log %s)", log2);
  H_CHECK(later_missing == 0 && later_differ == 0, "after the restart: %zu missing, %zu differ",
          later_missing, later_differ);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log2);
  check_log_clean(log2);
  free(ok_old);
  free(ok_new);
  free(ref_old);
  free(ref_new);
  free(g);
  h_free_msgs(msgs, N);
  printf("swap: PASS\n");
}

/* kill -9 (sig SIGKILL) or SIGTERM while the new model warms up, then a
 * restart with the old model. */
/* small batches: the warm-up of the first N1 events takes a few seconds */
#define SLOW "[batch]\nmax_events = 8\n"
#define KILLNEW_W 3000 /* killnew: the restart's window, offsets per partition */
static void check_after_new_restart(const char *name, const char *brokers, const h_msg_t *msgs,
                                    size_t n, const char *old_m, const char *new_m,
                                    const char *log1, const char *log2, int64_t w);

static void scenario_interrupt(const char *brokers, int sig, int restart_new) {
  enum { N = 30000, N1 = 24000 }; /* the mock keeps at most 5 MiB per partition: the
                                     predictions of more would push the first ones out */
  const char *name = restart_new ? "killnew" : sig == SIGKILL ? "kill" : "term";
  char old_m[512], new_m[512], conf[512], log1[512], log2[512], ckpt[512], group[64];
  snprintf(old_m, sizeof old_m, "%s", h_path("old.ixm"));
  snprintf(new_m, sizeof new_m, "%s", h_path("new.ixm"));
  h_write_model(old_m, 5);
  h_write_model(new_m, 11);
  snprintf(conf, sizeof conf, "%s-%s.conf", h_path("int"), name);
  snprintf(log1, sizeof log1, "%s-%s-1.log", h_path("int"), name);
  snprintf(log2, sizeof log2, "%s-%s-2.log", h_path("int"), name);
  snprintf(ckpt, sizeof ckpt, "%s-%s", h_path("ckpt"), name);
  snprintf(group, sizeof group, "swap-%s", name);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));
  write_conf(conf, brokers, group, old_m, ckpt, 10000000, SLOW);
  h_msg_t *msgs = h_load_events(N, PARTS);
  /* a warm-up of at least ~6 s (3,000 batches of 8, 2 ms each) on any
   * machine, so the signal lands inside it */
  setenv("IX_TEST_WARMUP_BATCH_DELAY_US", "2000", 1);
  pid_t d = h_spawn(conf, log1);
  unsetenv("IX_TEST_WARMUP_BATCH_DELAY_US");
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_produce(brokers, topic_events, msgs, 0, N1, 0);
  int port = h_metrics_port(log1);
  double until = h_now() + 120;
  for (;;) { /* every event of the first part applied, then a checkpoint of the old model */
    char *body = h_http_get(port, "/metrics");
    double done = body ? h_metric_sum(body, "interestd_events_processed_total") : 0;
    free(body);
    if (done >= N1) break;
    H_CHECK(h_now() < until, "%.0f of %d events processed in 120 s (log %s)", done, N1, log1);
    h_sleep_ms(200);
  }
  h_sleep_ms(1500);
  h_feed_t f2 = {.brokers = brokers, .topic = topic_events, .msgs = msgs,
                .lo = N1, .hi = N, .rate = 2000.0};
  h_feed_start(&f2);
  write_conf(conf, brokers, group, new_m, ckpt, 10000000, SLOW);
  kill(d, SIGHUP);
  H_CHECK(h_wait_log(log1, "warming up on", 10), "no warm-up started (log %s)", log1);
  H_CHECK(h_wait_log(log1, "partition 3: warming from", 10), "no warm-up of partition 3");
  h_sleep_ms(50);
  char *s = h_read_file(log1);
  int switched = strstr(s, "model swapped") != NULL;
  free(s);
  H_CHECK(!switched, "the swap finished before the %s (log %s): the window was too short to "
          "interrupt", name, log1);
  double t0 = h_now();
  kill(d, sig);
  int st = h_wait_exit(d, 30);
  printf("%s: during the warm-up; exit %d after %.2f s\n", name, st, h_now() - t0);
  if (sig == SIGTERM) {
    H_CHECK(st == 0, "exit status %d after SIGTERM (log %s)", st, log1);
    H_CHECK(h_wait_log(log1, "model swap abandoned (stopping)", 1), "no abandon line (log %s)",
            log1);
  } else {
    H_CHECK(st == -2, "not killed by the signal: %d", st);
  }
  if (restart_new) {
    /* the old model's checkpoints, refused by the new model: warm-started */
    /* a time bound that keeps the whole window (Kafka timestamps are the
     * produce times here): the newest timestamp below the serving offsets is
     * read, nothing is skipped */
    write_conf(conf, brokers, group, new_m, ckpt, KILLNEW_W, "warm_window_s = 315360000\n");
    pid_t d2 = h_spawn(conf, log2);
    h_feed_join(&f2);
    check_after_new_restart(name, brokers, msgs, N, old_m, new_m, log1, log2, KILLNEW_W);
    int port2 = h_metrics_port(log2);
    char *body = h_http_get(port2, "/metrics");
    H_CHECK(body, "no /metrics (log %s)", log2);
    double warm = h_metric_sum(body, "interestd_state_restores_total{source=\"warm\"}");
    free(body);
    printf("%s: interestd_state_restores_total{source=\"warm\"} = %.0f\n", name, warm);
    H_CHECK(warm == PARTS, "%.0f partitions warm-started, expected %d", warm, PARTS);
    kill(d2, SIGTERM);
    H_CHECK(h_wait_exit(d2, 30) == 0, "second process exit (log %s)", log2);
    check_log_clean(log1);
    check_log_clean(log2);
    h_free_msgs(msgs, N);
    printf("%s: PASS\n", name);
    return;
  }
  /* the old model's checkpoints are the directory's consistent state */
  write_conf(conf, brokers, group, old_m, ckpt, 10000000, "");
  pid_t d2 = h_spawn(conf, log2);
  h_feed_join(&f2);
  int *ok = calloc(N, sizeof *ok);
  int64_t zero[PARTS] = {0};
  prediction_t *ref = offline_from(old_m, msgs, N, zero, ok);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N, N, 120, &total);
  size_t missing = 0, dups = 0, differ = 0;
  for (size_t i = 0; i < N; i++) {
    if (!g[i].n) missing++;
    dups += g[i].n ? g[i].n - 1 : 0;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++)
      if (!h_same_prediction(&g[i].p[k], &ref[i])) differ++;
  }
  printf("%s: after the restart with the old model: %" PRIu64 " predictions for %d events, %zu "
         "missing, %zu re-processed (duplicates), %zu differ from the old model's offline run\n",
         name, total, N, missing, dups, differ);
  H_CHECK(missing == 0, "%zu events unanswered (logs %s %s)", missing, log1, log2);
  H_CHECK(differ == 0, "%zu predictions differ from the old model's offline run", differ);
  H_CHECK(h_wait_log(log2, "restored", 1), "the restart restored no checkpoint (log %s)", log2);
  s = h_read_file(log2);
  H_CHECK(!strstr(s, "checkpoint not restored"), "a checkpoint was refused after the %s (log %s)",
          name, log2);
  free(s);
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 30) == 0, "second process exit (log %s)", log2);
  check_log_clean(log1);
  check_log_clean(log2);
  free(ok);
  free(ref);
  free(g);
  h_free_msgs(msgs, N);
  printf("%s: PASS\n", name);
}

/* After a restart with the new model on the old model's checkpoints (log2):
 * no partition cold, each warm-started from max(L - w, low watermark) where
 * L is the offset it is served from (the log's "warming from offset S
 * (serving at L)"); every event answered; every prediction of an event below
 * L the old model's (the first process's), every event from L on answered by
 * the new model's offline run over [S, ...), and every prediction of it
 * either that or the old model's (the first process answered it before it
 * died, uncommitted). */
static void check_after_new_restart(const char *name, const char *brokers, const h_msg_t *msgs,
                                    size_t n, const char *old_m, const char *new_m,
                                    const char *log1, const char *log2, int64_t w) {
  (void)log1;
  H_CHECK(h_wait_log(log2, "assigned partitions", 60), "no assignment (log %s)", log2);
  int *ok_old = calloc(n, sizeof *ok_old), *ok_new = calloc(n, sizeof *ok_new);
  int64_t zero[PARTS] = {0};
  prediction_t *ref_old = offline_from(old_m, msgs, n, zero, ok_old);
  uint64_t total;
  got_t *g = collect(brokers, msgs, n, n, 120, &total);
  int64_t start[PARTS], serving[PARTS];
  for (int p = 0; p < PARTS; p++) start[p] = serving[p] = -1;
  int warmed = warm_starts(log2, start, serving);
  char *s = h_read_file(log2);
  int from_warm = 0;
  for (char *q = s; (q = strstr(q, "states from warm start")); q++) from_warm++;
  int cold = strstr(s, "with empty states") != NULL || strstr(s, "start cold") != NULL;
  char *done = strstr(s, "warm start of 4 partitions done in ");
  double secs = done ? atof(done + strlen("warm start of 4 partitions done in ")) : -1;
  printf("%s: restarted with the new model: %d partitions warm-started in %.3f s, %s cold\n",
         name, from_warm, secs, cold ? "some" : "none");
  {
    unsigned long long rd = 0, ap = 0;
    if (done) sscanf(done, "warm start of 4 partitions done in %*f s: %llu offsets read, %llu "
                     "events applied", &rd, &ap);
    printf("%s: %llu offsets read, %llu events applied\n", name, rd, ap);
    H_CHECK(rd == 4 * (unsigned long long)w && ap == rd, "the warm start read %llu offsets and "
            "applied %llu events, expected %llu of each", rd, ap, 4 * (unsigned long long)w);
  }
  H_CHECK(!strstr(s, "the newest event time was read for"), "the window's reference time was "
          "not read for every partition (log %s)", log2);
  free(s);
  H_CHECK(warmed == PARTS && from_warm == PARTS && !cold, "not every partition warm-started "
          "(log %s)", log2);
  prediction_t *ref_new = offline_from(new_m, msgs, n, start, ok_new);
  size_t missing = 0, old_after = 0, new_after = 0, bad = 0, unwarmed = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t p = msgs[i].partition;
    if (!g[i].n) {
      missing++;
      continue;
    }
    int has_new = 0;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++) {
      const prediction_t *pr = &g[i].p[k];
      int is_old = ok_old[i] && h_same_prediction(pr, &ref_old[i]);
      int is_new = msgs[i].offset >= serving[p] && ok_new[i] && h_same_prediction(pr, &ref_new[i]);
      has_new |= is_new;
      if (!is_old && !is_new && bad++ < 3)
        fprintf(stderr, "%s: prediction for %d/%" PRId64 " is neither the old model's nor the "
                "new model's over [%" PRId64 ", ...)\n", name, (int)p, msgs[i].offset, start[p]);
      if (msgs[i].offset >= serving[p] && is_old) old_after++;
    }
    if (msgs[i].offset >= serving[p]) {
      new_after++;
      if (!has_new) unwarmed++;
    }
  }
  printf("%s: %" PRIu64 " predictions for %zu events: %zu missing, %zu from neither model's "
         "run, %zu events from the serving offsets on (%zu of them also answered by the old "
         "model before the kill), %zu of those without the warmed new model's prediction\n",
         name, total, n, missing, bad, new_after, old_after, unwarmed);
  for (int p = 0; p < PARTS; p++) {
    int64_t want = serving[p] > w ? serving[p] - w : 0;
    printf("  partition %d: warmed from %" PRId64 ", served from %" PRId64 "\n", p, start[p],
           serving[p]);
    H_CHECK(start[p] == want, "partition %d: warmed from %" PRId64 ", expected %" PRId64, p,
            start[p], want);
  }
  H_CHECK(missing == 0, "%zu events unanswered (log %s)", missing, log2);
  H_CHECK(bad == 0, "%zu predictions from neither model's offline run", bad);
  H_CHECK(new_after > 0 && unwarmed == 0, "%zu of %zu events from the serving offsets on not "
          "answered by the warmed new model", unwarmed, new_after);
  free(ok_old);
  free(ok_new);
  free(ref_old);
  free(ref_new);
  free(g);
}

/* Rebalances during a warm-up, on the mock (its round-trip time slows the
 * warm-up's reads down so that they last): a second process joins while the
 * first one's new model warms up, so the first gives up two partitions (dropped
 * from the warm-up); the second (old model) restores them from the first's
 * old-model revocation checkpoints; then the second leaves, so the first gets
 * them back during the warm-up and warms up again on all four. Checked: every
 * event answered; every prediction equals the old model's offline run or the
 * new model's over the last warm-up's window and later (never a mix); the new
 * model serves every partition at the end. */
static void scenario_rebalance(void) {
  enum { N = 30000, N1 = 20000 };
  mockbroker_t *mb = h_mockbroker(PARTS);
  rd_kafka_mock_cluster_t *mc = mockbroker_cluster(mb);
  const char *brokers = mockbroker_bootstraps(mb);
  char old_m[512], new_m[512], confa[512], confb[512], loga[512], logb[512], ckpt[512];
  snprintf(old_m, sizeof old_m, "%s", h_path("old.ixm"));
  snprintf(new_m, sizeof new_m, "%s", h_path("new.ixm"));
  h_write_model(old_m, 5);
  h_write_model(new_m, 11);
  snprintf(confa, sizeof confa, "%s", h_path("reb-a.conf"));
  snprintf(confb, sizeof confb, "%s", h_path("reb-b.conf"));
  snprintf(loga, sizeof loga, "%s", h_path("reb-a.log"));
  snprintf(logb, sizeof logb, "%s", h_path("reb-b.log"));
  snprintf(ckpt, sizeof ckpt, "%s", h_path("ckpt-reb"));
  write_conf(confa, brokers, "reb", old_m, ckpt, 10000000, "");
  write_conf(confb, brokers, "reb", old_m, ckpt, 10000000, "");
  h_msg_t *msgs = h_load_events(N, PARTS);
  pid_t a = h_spawn(confa, loga);
  H_CHECK(h_wait_log(loga, "assigned partitions", 30), "no assignment (log %s)", loga);
  /* paced: small producer batches, so the warm-up's reads take many fetches */
  h_produce(brokers, "events", msgs, 0, N1, 8000.0);
  int port = h_metrics_port(loga);
  double until = h_now() + 120;
  for (;;) {
    char *body = h_http_get(port, "/metrics");
    double done = body ? h_metric_sum(body, "interestd_events_processed_total") : 0;
    free(body);
    if (done >= N1) break;
    H_CHECK(h_now() < until, "%.0f of %d events processed in 120 s (log %s)", done, N1, loga);
    h_sleep_ms(200);
  }
  h_sleep_ms(1500); /* an old-model checkpoint */
  rd_kafka_mock_broker_set_rtt(mc, 1, 100);
  write_conf(confa, brokers, "reb", new_m, ckpt, 10000000, "");
  kill(a, SIGHUP);
  H_CHECK(h_wait_log(loga, "warming up on 4 partitions", 10), "no warm-up (log %s)", loga);
  pid_t b = h_spawn(confb, logb);
  H_CHECK(h_wait_log(loga, "revoked partitions", 90), "a gave nothing up (log %s)", loga);
  H_CHECK(h_wait_log(logb, "restored", 30), "b restored nothing (log %s)", logb);
  kill(b, SIGTERM);
  H_CHECK(h_wait_exit(b, 30) == 0, "b exit (log %s)", logb);
  H_CHECK(h_wait_log(loga, "warming again with the new set", 90), "no restart of the warm-up "
          "after the assignment (log %s)", loga);
  char *s = h_read_file(loga);
  int early = strstr(s, "model swapped") != NULL;
  free(s);
  H_CHECK(!early, "the switch came before the rebalances (log %s)", loga);
  rd_kafka_mock_broker_set_rtt(mc, 1, 0);
  H_CHECK(h_wait_log(loga, "model swapped", 120), "no switch (log %s)", loga);
  h_produce(brokers, "events", msgs, N1, N, 4000.0);
  int64_t start[PARTS], serving[PARTS];
  for (int p = 0; p < PARTS; p++) start[p] = serving[p] = -1;
  warm_starts(loga, start, serving); /* the last warm-up's window per partition */
  int *ok_old = calloc(N, sizeof *ok_old), *ok_new = calloc(N, sizeof *ok_new);
  int64_t zero[PARTS] = {0};
  prediction_t *ref_old = offline_from(old_m, msgs, N, zero, ok_old);
  prediction_t *ref_new = offline_from(new_m, msgs, N, start, ok_new);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N, N, 120, &total);
  size_t missing = 0, n_old = 0, n_new = 0, neither = 0, last_new = 0;
  for (size_t i = 0; i < N; i++) {
    if (!g[i].n) {
      missing++;
      continue;
    }
    for (uint32_t k = 0; k < g[i].n && k < 4; k++) {
      const prediction_t *pr = &g[i].p[k];
      int is_new = ok_new[i] && h_same_prediction(pr, &ref_new[i]);
      if (is_new) n_new++;
      else if (ok_old[i] && h_same_prediction(pr, &ref_old[i])) n_old++;
      else if (neither++ < 3)
        fprintf(stderr, "prediction for %d/%" PRId64 " is neither model's\n",
                (int)msgs[i].partition, msgs[i].offset);
      if (i >= N1 && is_new) last_new++;
    }
  }
  printf("rebalance: %" PRIu64 " predictions for %d events: %zu missing, %zu old model, %zu "
         "warmed new model (%zu of them for the %d events after the switch), %zu neither\n",
         total, N, missing, n_old, n_new, last_new, N - N1, neither);
  H_CHECK(missing == 0, "%zu unanswered", missing);
  H_CHECK(neither == 0, "%zu predictions from neither model (a partition's states mixed?)",
          neither);
  H_CHECK(last_new >= N - N1, "only %zu of the %d events after the switch answered by the "
          "warmed new model", last_new, N - N1);
  kill(a, SIGTERM);
  H_CHECK(h_wait_exit(a, 30) == 0, "a exit (log %s)", loga);
  check_log_clean(loga);
  check_log_clean(logb);
  free(ok_old);
  free(ok_new);
  free(ref_old);
  free(ref_new);
  free(g);
  h_free_msgs(msgs, N);
  mockbroker_destroy(mb);
  printf("rebalance: PASS\n");
}

/* Every "partition P: warming from offset S (serving at L)" line of log,
 * appended to starts[P] / servings[P] (up to 16 each). */
static void warm_starts_all(const char *log, int64_t starts[PARTS][16], int64_t servs[PARTS][16],
                            int *n) {
  char *s = h_read_file(log);
  for (char *p = s; (p = strstr(p, "partition ")); p++) {
    int part;
    long long st, sv;
    if (sscanf(p, "partition %d: warming from offset %lld (serving at %lld)", &part, &st, &sv) ==
            3 && part >= 0 && part < PARTS && n[part] < 16) {
      starts[part][n[part]] = st;
      servs[part][n[part]++] = sv;
    }
  }
  free(s);
}

static double processed(const char *log) {
  char *body = h_http_get(h_metrics_port(log), "/metrics");
  double done = body ? h_metric_sum(body, "interestd_events_processed_total") : 0;
  free(body);
  return done;
}

/* A rolling deploy of a new model (model.warm_start): two processes run
 * the old model on one checkpoint directory; A is restarted with the new
 * model (it joins and gets two partitions whose checkpoints are the old
 * model's: warm-started), then B (its partitions go to new-model processes
 * with the old model's checkpoints: warm-started), while events flow.
 * Checked: no partition starts cold, each is warm-started at least once,
 * every window is warm_max_events offsets before its serving offset; every
 * event answered; every prediction equals the old model's offline run or the
 * new model's over one of its partition's logged windows and what follows
 * (never a mix); every event after the roll answered by the new model. */
static void scenario_rolling(const char *brokers) {
  enum { N = 30000, N1 = 10000, N2 = 20000, W = 2500 };
  char old_m[512], new_m[512], confa[512], confb[512], loga[512], logb[512], loga2[512],
      logb2[512], ckpt[512], topic_events[256];
  snprintf(old_m, sizeof old_m, "%s", h_path("old.ixm"));
  snprintf(new_m, sizeof new_m, "%s", h_path("new.ixm"));
  h_write_model(old_m, 5);
  h_write_model(new_m, 11);
  snprintf(confa, sizeof confa, "%s", h_path("roll-a.conf"));
  snprintf(confb, sizeof confb, "%s", h_path("roll-b.conf"));
  snprintf(loga, sizeof loga, "%s", h_path("roll-a.log"));
  snprintf(logb, sizeof logb, "%s", h_path("roll-b.log"));
  snprintf(loga2, sizeof loga2, "%s", h_path("roll-a2.log"));
  snprintf(logb2, sizeof logb2, "%s", h_path("roll-b2.log"));
  snprintf(ckpt, sizeof ckpt, "%s", h_path("ckpt-roll"));
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));
  write_conf(confa, brokers, "roll", old_m, ckpt, W, "");
  write_conf(confb, brokers, "roll", old_m, ckpt, W, "");
  h_msg_t *msgs = h_load_events(N, PARTS);
  pid_t a = h_spawn(confa, loga);
  H_CHECK(h_wait_log(loga, "assigned partitions", 30), "no assignment (log %s)", loga);
  pid_t b = h_spawn(confb, logb);
  H_CHECK(h_wait_log(logb, "assigned partitions", 60), "b: no assignment (log %s)", logb);
  h_produce(brokers, topic_events, msgs, 0, N1, 0);
  double until = h_now() + 120;
  for (;;) {
    double done = processed(loga) + processed(logb);
    if (done >= N1) break;
    H_CHECK(h_now() < until, "%.0f of %d events processed in 120 s", done, N1);
    h_sleep_ms(200);
  }
  h_sleep_ms(1500); /* old-model checkpoints */
  h_feed_t f = {.brokers = brokers, .topic = topic_events, .msgs = msgs, /* during the roll */
                .lo = N1, .hi = N2, .rate = 1000.0};
  h_feed_start(&f);
  /* A: the new model */
  kill(a, SIGTERM);
  H_CHECK(h_wait_exit(a, 30) == 0, "a exit (log %s)", loga);
  write_conf(confa, brokers, "roll", new_m, ckpt, W, "");
  pid_t a2 = h_spawn(confa, loga2);
  H_CHECK(h_wait_log(loga2, "states from warm start", 90), "a2 warm-started nothing (log %s)",
          loga2);
  /* B: the new model */
  kill(b, SIGTERM);
  H_CHECK(h_wait_exit(b, 30) == 0, "b exit (log %s)", logb);
  write_conf(confb, brokers, "roll", new_m, ckpt, W, "");
  pid_t b2 = h_spawn(confb, logb2);
  H_CHECK(h_wait_log(logb2, "assigned partitions [", 90), "b2: no assignment (log %s)", logb2);
  h_feed_join(&f);
  h_sleep_ms(500);
  h_produce(brokers, topic_events, msgs, N2, N, 0);

  int64_t starts[PARTS][16], servs[PARTS][16];
  int nw[PARTS] = {0};
  warm_starts_all(loga2, starts, servs, nw);
  warm_starts_all(logb2, starts, servs, nw);
  int *ok_old = calloc(N, sizeof *ok_old);
  int64_t zero[PARTS] = {0};
  prediction_t *ref_old = offline_from(old_m, msgs, N, zero, ok_old);
  prediction_t *ref_new[PARTS][16];
  int *ok_new[PARTS][16];
  for (int p = 0; p < PARTS; p++)
    for (int k = 0; k < nw[p]; k++) {
      int64_t from[PARTS];
      for (int q = 0; q < PARTS; q++) from[q] = q == p ? starts[p][k] : INT64_MAX;
      ok_new[p][k] = calloc(N, sizeof(int));
      ref_new[p][k] = offline_from(new_m, msgs, N, from, ok_new[p][k]);
    }
  uint64_t total;
  got_t *g = collect(brokers, msgs, N, N, 120, &total);
  size_t missing = 0, n_old = 0, n_new = 0, neither = 0, late_not_new = 0;
  for (size_t i = 0; i < N; i++) {
    int32_t p = msgs[i].partition;
    if (!g[i].n) {
      missing++;
      continue;
    }
    for (uint32_t j = 0; j < g[i].n && j < 4; j++) {
      const prediction_t *pr = &g[i].p[j];
      int is_new = 0;
      for (int k = 0; k < nw[p] && !is_new; k++)
        is_new = msgs[i].offset >= servs[p][k] && ok_new[p][k][i] &&
                 h_same_prediction(pr, &ref_new[p][k][i]);
      if (is_new) n_new++;
      else if (ok_old[i] && h_same_prediction(pr, &ref_old[i])) n_old++;
      else if (neither++ < 3)
        fprintf(stderr, "rolling: prediction for %d/%" PRId64 " is neither the old model's nor "
                "the new model's over one of the partition's windows\n", (int)p,
                msgs[i].offset);
      if (i >= N2 && !is_new) late_not_new++;
    }
  }
  char *sa = h_read_file(loga2), *sb = h_read_file(logb2);
  for (int w = 0; w < 2; w++) /* how long each warm start held its partitions back */
    for (char *q = w ? sb : sa; (q = strstr(q, "warm start of ")); q++) {
      int np;
      double secs;
      unsigned long long rd;
      if (sscanf(q, "warm start of %d partitions done in %lf s: %llu offsets read", &np, &secs,
                 &rd) == 3)
        printf("rolling: %s warm-started %d partitions in %.3f s (%llu offsets read)\n",
               w ? "b2" : "a2", np, secs, rd);
    }
  int cold = strstr(sa, "with empty states") || strstr(sb, "with empty states") ||
             strstr(sa, "start cold") || strstr(sb, "start cold");
  free(sa);
  free(sb);
  printf("rolling: %" PRIu64 " predictions for %d events: %zu missing, %zu old model, %zu new "
         "model over a logged window, %zu neither; %zu predictions of the %d events after the "
         "roll not the new model's; %s partition cold\n", total, N, missing, n_old, n_new,
         neither, late_not_new, N - N2, cold ? "some" : "no");
  for (int p = 0; p < PARTS; p++) {
    printf("  partition %d: %d warm starts:", p, nw[p]);
    for (int k = 0; k < nw[p]; k++)
      printf(" [%" PRId64 ", %" PRId64 ")", starts[p][k], servs[p][k]);
    printf("\n");
    H_CHECK(nw[p] >= 1, "partition %d never warm-started (logs %s %s)", p, loga2, logb2);
    for (int k = 0; k < nw[p]; k++) {
      int64_t want = servs[p][k] > W ? servs[p][k] - W : 0;
      H_CHECK(starts[p][k] == want, "partition %d: warmed from %" PRId64 ", expected %" PRId64,
              p, starts[p][k], want);
    }
  }
  H_CHECK(!cold, "a partition started cold (logs %s %s)", loga2, logb2);
  H_CHECK(missing == 0, "%zu events unanswered", missing);
  H_CHECK(neither == 0, "%zu predictions from neither model's run", neither);
  H_CHECK(late_not_new == 0, "%zu predictions after the roll not from the warmed new model",
          late_not_new);
  kill(a2, SIGTERM);
  kill(b2, SIGTERM);
  H_CHECK(h_wait_exit(a2, 30) == 0, "a2 exit (log %s)", loga2);
  H_CHECK(h_wait_exit(b2, 30) == 0, "b2 exit (log %s)", logb2);
  check_log_clean(loga);
  check_log_clean(logb);
  check_log_clean(loga2);
  check_log_clean(logb2);
  for (int p = 0; p < PARTS; p++)
    for (int k = 0; k < nw[p]; k++) {
      free(ok_new[p][k]);
      free(ref_new[p][k]);
    }
  free(ok_old);
  free(ref_old);
  free(g);
  h_free_msgs(msgs, N);
  printf("rolling: PASS\n");
}

static void scenario_warmset(const char *brokers) {
  enum { N = 12000, N1 = 8000 };
  const char *new_m = h_path("new.ixm");
  h_write_model(new_m, 11);
  h_msg_t *msgs = h_load_events(N, PARTS);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));
  h_produce(brokers, topic_events, msgs, 0, N1, 0);
  /* the recorded topic, as `interestctl record` would write it */
  const char *rec = h_path("warmset-topic.rec");
  rec_writer_t *w;
  char err[512];
  H_CHECK(recfile_writer_open(rec, RECFILE_CREATE, &w, err, sizeof err) == 0, "%s", err);
  for (size_t i = 0; i < N1; i++) {
    rec_t r = {.partition = msgs[i].partition, .offset = msgs[i].offset, .key = msgs[i].key,
               .key_len = msgs[i].key_len, .value = msgs[i].value,
               .value_len = msgs[i].value_len};
    H_CHECK(recfile_write(w, &r) == 0, "writing %s", rec);
  }
  H_CHECK(recfile_writer_close(w) == 0, "closing %s", rec);
  const char *dir = h_path("warmset");
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s/ctl/interestctl replay --offline --input %s --output %s "
           "--model %s --write-state %s --quiet 2> %s", getenv("IX_BINARY_DIR"), rec,
           h_path("warmset-preds.rec"), new_m, dir, h_path("warmset-replay.log"));
  H_CHECK(system(cmd) == 0, "%s", cmd);

  const char *conf = h_path("warmset.conf");
  char extra[1024];
  snprintf(extra, sizeof extra, "[state]\ncheckpoint_dir = %s\n", dir);
  h_write_conf(conf, brokers, "warmset", new_m, extra);
  const char *log = h_path("warmset.log");
  pid_t d = h_spawn(conf, log);
  H_CHECK(h_wait_log(log, "assigned partitions", 30), "no assignment (log %s)", log);
  h_produce(brokers, topic_events, msgs, N1, N, 0);
  int *ok = calloc(N, sizeof *ok);
  int64_t zero[PARTS] = {0};
  prediction_t *ref = offline_from(new_m, msgs, N, zero, ok);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N, N - N1, 60, &total);
  size_t before = 0, missing = 0, differ = 0;
  for (size_t i = 0; i < N; i++) {
    if (i < N1) {
      before += g[i].n;
      continue;
    }
    if (!g[i].n) missing++;
    else if (!h_same_prediction(&g[i].p[0], &ref[i])) differ++;
  }
  char *s = h_read_file(log);
  int restored = 0;
  for (char *p = s; (p = strstr(p, "users from checkpoint generation")); p++) restored++;
  free(s);
  printf("warmset: %d partitions restored from the offline warm set; %" PRIu64 " predictions: "
         "%zu for the %d recorded events, %zu of the %d later ones missing, %zu differ from the "
         "new model served from the start\n", restored, total, before, N1, missing, N - N1,
         differ);
  H_CHECK(restored == PARTS, "%d partitions restored (log %s)", restored, log);
  H_CHECK(before == 0, "%zu predictions for events before the warm set's offsets", before);
  H_CHECK(missing == 0 && differ == 0, "%zu missing, %zu differ", missing, differ);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit (log %s)", log);
  check_log_clean(log);
  free(ok);
  free(ref);
  free(g);
  h_free_msgs(msgs, N);
  printf("warmset: PASS\n");
}

/* Lines of log that contain both a and b. */
static int count_lines(const char *log, const char *a, const char *b) {
  char *s = h_read_file(log);
  int k = 0;
  for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
    k += strstr(line, a) && (!b || strstr(line, b));
  free(s);
  return k;
}

static void write_conf_clog(const char *conf, const char *brokers, const char *group,
                            const char *model, uint64_t max_events) {
  char extra[1024];
  snprintf(extra, sizeof extra,
           "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\nstandby_replicas = %d\n"
           "[daemon]\nshutdown_timeout_s = 10\n[model]\nreload = warm\nwarm_window_s = 0\n"
           "warm_max_events = %" PRIu64 "\n", strcmp(group, "swapclogsb") == 0, max_events);
  h_write_conf(conf, brokers, group, model, extra);
}

/* Waits (60 s at most) until the daemon logging to log is mid-stream: 5,000
 * events processed and changelog records of the old model written. */
static void wait_old_checkpoints(const char *log) {
  int mport = h_metrics_port(log);
  double until = h_now() + 60;
  for (;;) {
    char *body = h_http_get(mport, "/metrics");
    double done = body ? h_metric_sum(body, "interestd_events_processed_total") : 0;
    double written = body ? h_metric_sum(body, "interestd_changelog_records_written_total") : 0;
    free(body);
    if (done >= 5000 && written > 0) return;
    H_CHECK(h_now() < until, "%.0f events processed, %.0f changelog records in 60 s (log %s)",
            done, written, log);
    h_sleep_ms(50);
  }
}

static void scenario_clog(const char *brokers) {
  enum { N = 18000, N1 = 12000, N2 = 16000, W = 700 };
  const char *old_m = h_path("clog-old.ixm"), *new_m = h_path("clog-new.ixm");
  h_write_model(old_m, 5);
  h_write_model(new_m, 11);
  if (!h_real_bootstrap()) h_create_topic("swapclog-interestd-state", PARTS); /* no Admin API */
  const char *conf = h_path("swapclog.conf");
  write_conf_clog(conf, brokers, "swapclog", old_m, W);
  h_msg_t *msgs = h_load_events(N, PARTS);
  const char *log = h_path("swapclog.log");
  pid_t d = h_spawn(conf, log);
  H_CHECK(h_wait_log(log, "assigned partitions", 30), "no assignment (log %s)", log);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));
  h_feed_t f = {.brokers = brokers, .topic = topic_events, .msgs = msgs,
                .lo = 0, .hi = N1, .rate = 4000.0};
  h_feed_start(&f);
  wait_old_checkpoints(log);
  write_conf_clog(conf, brokers, "swapclog", new_m, W);
  kill(d, SIGHUP);
  H_CHECK(h_wait_log(log, "warming up on", 10), "no warm-up started (log %s)", log);
  H_CHECK(h_wait_log(log, "model swapped", 120), "no switch (log %s)", log);
  h_feed_join(&f);
  h_produce(brokers, topic_events, msgs, N1, N2, 4000.0);

  int64_t start[PARTS], serving[PARTS];
  for (int p = 0; p < PARTS; p++) start[p] = serving[p] = -1;
  H_CHECK(warm_starts(log, start, serving) == PARTS, "not every partition warmed (log %s)", log);
  int *ok_old = calloc(N, sizeof *ok_old), *ok_new = calloc(N, sizeof *ok_new);
  int64_t zero[PARTS] = {0};
  prediction_t *ref_old = offline_from(old_m, msgs, N, zero, ok_old);
  prediction_t *ref_new = offline_from(new_m, msgs, N, start, ok_new);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N2, N2, 60, &total);
  int64_t first_new[PARTS];
  check_old_then_new("clog", g, msgs, N2, total, ok_old, ref_old, ok_new, ref_new, start,
                     serving, W, first_new, log);
  /* the first changelog checkpoint after the switch: every partition's new
   * epoch complete (written with the new model's fingerprint) */
  model_t *nm;
  char err[512];
  H_CHECK(model_load(new_m, &nm, err, sizeof err) == 0, "%s", err);
  char fpm[64];
  snprintf(fpm, sizeof fpm, "(model %08x,", model_fingerprint(nm));
  model_destroy(nm);
  double until = h_now() + 30;
  while (count_lines(log, "changelog epoch from offset", fpm) < PARTS) {
    H_CHECK(h_now() < until, "the new model's epoch did not complete on every partition in 30 s "
            "(log %s)", log);
    h_sleep_ms(100);
  }
  /* the last events stream in; the kill lands among them (and the next
   * checkpoints): the restart re-processes what follows its completion */
  h_feed_t f3 = {.brokers = brokers, .topic = topic_events, .msgs = msgs,
                .lo = N2, .hi = N, .rate = 2000.0};
  h_feed_start(&f3);
  h_sleep_ms(500);
  kill(d, SIGKILL);
  H_CHECK(h_wait_exit(d, 10) == -2, "not killed by SIGKILL");
  printf("clog: kill -9 after the new model's first changelog checkpoint (%d partitions)\n",
         count_lines(log, "changelog epoch from offset", fpm));
  check_log_clean(log);

  /* a fresh process with the new model and no local directory */
  const char *log2 = h_path("swapclog2.log");
  d = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  h_feed_join(&f3);
  free(g);
  g = collect(brokers, msgs, N, N, 60, &total);
  free(ref_new); /* again: the last events have their offsets now */
  ref_new = offline_from(new_m, msgs, N, start, ok_new);
  size_t later_missing = 0, differ = 0, checked = 0, again = 0;
  for (size_t i = 0; i < N; i++) {
    again += g[i].n > 1;
    int32_t p = msgs[i].partition;
    if (i >= N2 && !g[i].n) later_missing++;
    if (msgs[i].offset < first_new[p]) continue; /* the old model's */
    for (uint32_t k = 0; k < g[i].n && k < 4; k++, checked++)
      if (!ok_new[i] || !h_same_prediction(&g[i].p[k], &ref_new[i])) {
        if (differ++ < 3)
          fprintf(stderr, "after the restart: prediction %u for %d/%" PRId64 " differs from the "
                  "new model's run\n", k, (int)p, msgs[i].offset);
      }
  }
  int from_clog = count_lines(log2, "states from changelog (", NULL);
  int cold = count_lines(log2, "states from cold", NULL);
  int other = count_lines(log2, "written by model fingerprint", NULL);
  printf("clog: restarted with the new model: %d partitions from the changelog, %d cold, %d of "
         "another model; %" PRIu64 " predictions; the %d later events: %zu missing; %zu new-model "
         "predictions checked (%zu events answered twice: re-processed after the restore), %zu "
         "differ\n", from_clog, cold, other, total, N - N2, later_missing, checked, again, differ);
  H_CHECK(from_clog == PARTS && cold == 0 && other == 0, "not every partition from the "
          "changelog (log %s)", log2);
  H_CHECK(later_missing == 0 && differ == 0, "after the restart: %zu missing, %zu differ (log %s)",
          later_missing, differ, log2);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log2);
  check_log_clean(log2);
  free(ok_old);
  free(ok_new);
  free(ref_old);
  free(ref_new);
  free(g);
  h_free_msgs(msgs, N);
  printf("clog: PASS\n");
}

static void scenario_clogcrash(const char *brokers) {
  enum { N = 16000, N1 = 12000, N3 = 15000, W = 700 };
  const char *old_m = h_path("clogx-old.ixm"), *new_m = h_path("clogx-new.ixm");
  h_write_model(old_m, 5);
  h_write_model(new_m, 11);
  if (!h_real_bootstrap()) h_create_topic("swapclogx-interestd-state", PARTS);
  const char *conf = h_path("swapclogx.conf");
  write_conf_clog(conf, brokers, "swapclogx", old_m, W);
  h_msg_t *msgs = h_load_events(N, PARTS);
  const char *log = h_path("swapclogx.log");
  setenv("IX_TEST_CLOG_KILL_BEFORE_SWITCH_EPOCH", "1", 1);
  pid_t d = h_spawn(conf, log);
  unsetenv("IX_TEST_CLOG_KILL_BEFORE_SWITCH_EPOCH");
  H_CHECK(h_wait_log(log, "assigned partitions", 30), "no assignment (log %s)", log);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));
  /* the last HELD events are fed only once the new model serves: under load
   * the whole feed could end before the swap, and the new model would have
   * nothing to answer before the kill */
  enum { HELD = 3000 };
  h_feed_t f = {.brokers = brokers, .topic = topic_events, .msgs = msgs,
                .lo = 0, .hi = N1 - HELD, .rate = 4000.0};
  h_feed_start(&f);
  wait_old_checkpoints(log);
  write_conf_clog(conf, brokers, "swapclogx", new_m, W);
  kill(d, SIGHUP);
  H_CHECK(h_wait_log(log, "model swapped", 120), "no switch (log %s)", log);
  h_feed_join(&f); /* in order: each user's events as the offline replay has them */
  h_feed_t f2 = {.brokers = brokers, .topic = topic_events, .msgs = msgs,
                 .lo = N1 - HELD, .hi = N1, .rate = 4000.0};
  h_feed_start(&f2);
  int st = h_wait_exit(d, 30);
  H_CHECK(st == -2 && h_wait_log(log, "IX_TEST_CLOG_KILL_BEFORE_SWITCH_EPOCH: SIGKILL", 1),
          "the process did not kill itself before the new model's first completion (status %d, "
          "log %s)", st, log);
  h_feed_join(&f2);
  int64_t start[PARTS], serving[PARTS];
  for (int p = 0; p < PARTS; p++) start[p] = serving[p] = -1;
  H_CHECK(warm_starts(log, start, serving) == PARTS, "not every partition warmed (log %s)", log);
  check_log_clean(log);

  /* restart with the old model: its changelog states, exactly */
  write_conf_clog(conf, brokers, "swapclogx", old_m, W);
  const char *log2 = h_path("swapclogx2.log");
  d = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  h_produce(brokers, topic_events, msgs, N1, N3, 0);
  int *ok_old = calloc(N, sizeof *ok_old), *ok_new = calloc(N, sizeof *ok_new);
  int64_t zero[PARTS] = {0};
  prediction_t *ref_old = offline_from(old_m, msgs, N, zero, ok_old);
  prediction_t *ref_new = offline_from(new_m, msgs, N, start, ok_new);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N3, N3, 90, &total);
  size_t missing = 0, neither = 0, by_new = 0, no_old = 0;
  for (size_t i = 0; i < N3; i++) {
    if (!g[i].n) {
      missing++;
      continue;
    }
    int old_seen = 0;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++) {
      if (ok_old[i] && h_same_prediction(&g[i].p[k], &ref_old[i])) old_seen = 1;
      else if (ok_new[i] && h_same_prediction(&g[i].p[k], &ref_new[i])) by_new++;
      else if (neither++ < 3)
        fprintf(stderr, "prediction for %d/%" PRId64 " is neither model's\n",
                (int)msgs[i].partition, msgs[i].offset);
    }
    no_old += !old_seen;
  }
  int from_clog = count_lines(log2, "states from changelog (", NULL);
  int cold = count_lines(log2, "states from cold", NULL);
  int ignored = count_lines(log2, "records of another model follow", NULL);
  printf("clogcrash: restarted with the old model: %d partitions from the changelog, %d cold, %d "
         "with the new model's unfinished records ignored; %" PRIu64 " predictions for %d events: "
         "%zu missing, %zu by the new model before the kill, %zu events without an old-model "
         "prediction, %zu from neither\n", from_clog, cold, ignored, total, N3, missing, by_new,
         no_old, neither);
  H_CHECK(from_clog == PARTS && cold == 0, "not every partition from the changelog (log %s)",
          log2);
  H_CHECK(ignored >= 1, "no partition met the new model's unfinished records (log %s)", log2);
  H_CHECK(missing == 0 && neither == 0 && no_old == 0, "%zu missing, %zu from neither, %zu "
          "without the old model's prediction (log %s)", missing, neither, no_old, log2);
  H_CHECK(by_new > 0, "the new model answered nothing before the kill");
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log2);
  check_log_clean(log2);

  /* restart with the new model: the newest completions are the old model's;
   * nothing of them is loaded, and model.warm_start (on with reload = warm)
   * warms every partition from the input window instead of starting it cold */
  write_conf_clog(conf, brokers, "swapclogx", new_m, W);
  const char *log3 = h_path("swapclogx3.log");
  d = h_spawn(conf, log3);
  H_CHECK(h_wait_log(log3, "assigned partitions", 30), "no assignment (log %s)", log3);
  H_CHECK(h_wait_log(log3, "warm start of", 30), "no warm start (log %s)", log3);
  h_sleep_ms(1000);
  int other = count_lines(log3, "written by model fingerprint", NULL);
  int warm = count_lines(log3, "states from warm start (", NULL);
  H_CHECK(other == PARTS && warm == PARTS, "expected %d warm starts over another model's "
          "changelog, got %d and %d (log %s)", PARTS, other, warm, log3);
  /* the last events: every prediction the new model's over the warm-start window */
  h_produce(brokers, topic_events, msgs, N3, N, 0);
  int64_t start3[PARTS], serving3[PARTS];
  for (int p = 0; p < PARTS; p++) start3[p] = serving3[p] = -1;
  H_CHECK(warm_starts(log3, start3, serving3) == PARTS, "no window logged (log %s)", log3);
  free(ref_new);
  ref_new = offline_from(new_m, msgs, N, start3, ok_new);
  free(g);
  g = collect(brokers, msgs, N, N, 90, &total);
  size_t late_missing = 0, late_differ = 0;
  for (size_t i = N3; i < N; i++) {
    if (!g[i].n) late_missing++;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++)
      late_differ += !ok_new[i] || !h_same_prediction(&g[i].p[k], &ref_new[i]);
  }
  printf("clogcrash: restarted with the new model: %d partitions of another model's changelog, "
         "%d warm-started from the input; the last %d events: %zu missing, %zu predictions "
         "differ from the new model's run over the window\n", other, warm, N - N3, late_missing,
         late_differ);
  H_CHECK(late_missing == 0 && late_differ == 0, "after the warm start: %zu missing, %zu differ "
          "(log %s)", late_missing, late_differ, log3);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log3);
  check_log_clean(log3);
  free(ok_old);
  free(ok_new);
  free(ref_old);
  free(ref_new);
  free(g);
  h_free_msgs(msgs, N);
  printf("clogcrash: PASS\n");
}

/* Lines of log after its first `from` bytes that contain needle. */
static int count_after(const char *log, size_t from, const char *needle) {
  char *s = h_read_file(log);
  int k = 0;
  if (strlen(s) > from)
    for (char *q = s + from; (q = strstr(q, needle)); q++) k++;
  free(s);
  return k;
}

static void scenario_clogstandby(const char *brokers) {
  enum { N = 16000, N1 = 10000, W = 700 };
  const char *old_m = h_path("clogsb-old.ixm"), *new_m = h_path("clogsb-new.ixm");
  h_write_model(old_m, 5);
  h_write_model(new_m, 11);
  if (!h_real_bootstrap()) h_create_topic("swapclogsb-interestd-state", PARTS);
  const char *conf = h_path("swapclogsb.conf");
  write_conf_clog(conf, brokers, "swapclogsb", old_m, W);
  h_msg_t *msgs = h_load_events(N, PARTS);
  const char *loga = h_path("swapclogsb-a.log"), *logb = h_path("swapclogsb-b.log");
  pid_t a = h_spawn(conf, loga);
  H_CHECK(h_wait_log(loga, "assigned partitions", 30), "no assignment (log %s)", loga);
  pid_t b = h_spawn(conf, logb);
  /* the group settles: two partitions each */
  H_CHECK(h_wait_log(logb, "(now 2 owned)", 60) && h_wait_log(loga, "(now 2 owned)", 30),
          "the group did not settle on two partitions each (logs %s %s)", loga, logb);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));
  h_feed_t f = {.brokers = brokers, .topic = topic_events, .msgs = msgs,
                .lo = 0, .hi = N1, .rate = 3000.0};
  h_feed_start(&f);
  int pa = h_metrics_port(loga), pb = h_metrics_port(logb);
  double until = h_now() + 60;
  for (;;) {
    char *ba = h_http_get(pa, "/metrics"), *bb = h_http_get(pb, "/metrics");
    double done = (ba ? h_metric_sum(ba, "interestd_events_processed_total") : 0) +
                  (bb ? h_metric_sum(bb, "interestd_events_processed_total") : 0);
    free(ba);
    free(bb);
    if (done >= 4000) break;
    H_CHECK(h_now() < until, "%.0f events processed in 60 s (logs %s %s)", done, loga, logb);
    h_sleep_ms(50);
  }
  write_conf_clog(conf, brokers, "swapclogsb", new_m, W);
  kill(a, SIGHUP);
  kill(b, SIGHUP);
  H_CHECK(h_wait_log(loga, "model swapped", 120) && h_wait_log(logb, "model swapped", 120),
          "no switch in both members (logs %s %s)", loga, logb);
  h_feed_join(&f);
  model_t *nm;
  char err[512];
  H_CHECK(model_load(new_m, &nm, err, sizeof err) == 0, "%s", err);
  char fpm[64];
  snprintf(fpm, sizeof fpm, "(model %08x,", model_fingerprint(nm));
  model_destroy(nm);
  until = h_now() + 30;
  while (count_lines(loga, "changelog epoch from offset", fpm) +
             count_lines(logb, "changelog epoch from offset", fpm) < PARTS) {
    H_CHECK(h_now() < until, "the new model's epochs did not complete in 30 s (logs %s %s)",
            loga, logb);
    h_sleep_ms(100);
  }
  H_CHECK(h_wait_log(logb, "standby copies follow their changelogs again", 1),
          "member b did not renew its standby copies (log %s)", logb);
  h_sleep_ms(3000); /* b's copies catch up with a's new epoch */
  char *sbody = h_read_file(logb);
  size_t cut = strlen(sbody);
  free(sbody);
  kill(a, SIGKILL);
  H_CHECK(h_wait_exit(a, 10) == -2, "member a not killed");
  check_log_clean(loga);
  h_produce(brokers, topic_events, msgs, N1, N, 1000.0);
  int64_t start[PARTS], serving[PARTS];
  for (int p = 0; p < PARTS; p++) start[p] = serving[p] = -1;
  int wa = warm_starts(loga, start, serving), wb = warm_starts(logb, start, serving);
  for (int p = 0; p < PARTS; p++)
    H_CHECK(start[p] >= 0, "partition %d not warmed (%d + %d lines)", p, wa, wb);
  int *ok_old = calloc(N, sizeof *ok_old), *ok_new = calloc(N, sizeof *ok_new);
  int64_t zero[PARTS] = {0};
  prediction_t *ref_old = offline_from(old_m, msgs, N, zero, ok_old);
  prediction_t *ref_new = offline_from(new_m, msgs, N, start, ok_new);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N, N, 90, &total);
  int64_t first_new[PARTS];
  for (int p = 0; p < PARTS; p++) first_new[p] = INT64_MAX;
  size_t missing = 0, neither = 0, differ = 0;
  for (size_t i = 0; i < N; i++) {
    int32_t p = msgs[i].partition;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++)
      if (ok_new[i] && h_same_prediction(&g[i].p[k], &ref_new[i]) &&
          msgs[i].offset < first_new[p])
        first_new[p] = msgs[i].offset;
  }
  for (size_t i = 0; i < N; i++) {
    int32_t p = msgs[i].partition;
    if (!g[i].n) missing++;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++) {
      int is_new = ok_new[i] && h_same_prediction(&g[i].p[k], &ref_new[i]);
      int is_old = ok_old[i] && h_same_prediction(&g[i].p[k], &ref_old[i]);
      if (!is_new && !is_old) neither++;
      else if (!is_new && msgs[i].offset > first_new[p]) differ++;
    }
  }
  int from_standby = count_after(logb, cut, "states from standby (");
  int cold = count_after(logb, cut, "states from cold");
  printf("clogstandby: after kill -9 of member a, member b restored %d partitions from standby "
         "copies, %d cold; %" PRIu64 " predictions for %d events: %zu missing, %zu from neither, "
         "%zu old-model predictions after a partition's first new one\n", from_standby, cold,
         total, N, missing, neither, differ);
  H_CHECK(from_standby >= 1 && cold == 0, "no hand-over from a standby copy, or a cold one "
          "(log %s)", logb);
  H_CHECK(missing == 0 && neither == 0 && differ == 0, "%zu missing, %zu neither, %zu old after "
          "new (log %s)", missing, neither, differ, logb);
  kill(b, SIGTERM);
  H_CHECK(h_wait_exit(b, 30) == 0, "exit after SIGTERM (log %s)", logb);
  check_log_clean(logb);
  free(ok_old);
  free(ok_new);
  free(ref_old);
  free(ref_new);
  free(g);
  h_free_msgs(msgs, N);
  printf("clogstandby: PASS\n");
}

/* clogreset: model.reload = reset with a changelog topic. */
static void write_conf_reset(const char *conf, const char *brokers, const char *group,
                             const char *model, int ttl_s) {
  char extra[1024];
  snprintf(extra, sizeof extra,
           "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\nidle_ttl_s = %d\n"
           "[daemon]\nshutdown_timeout_s = 10\n[model]\nreload = reset\n", ttl_s);
  h_write_conf(conf, brokers, group, model, extra);
}

/* Waits (120 s at most) until the daemon logging to log has processed
 * `total` events, then until its changelog is quiet (no record acknowledged
 * for 2 s: every checkpoint of those events complete). */
static void wait_processed_quiet(const char *log, double total) {
  double until = h_now() + 120, done = 0;
  while ((done = h_metric_of(log, "interestd_events_processed_total ")) < total) {
    H_CHECK(h_now() < until, "%.0f of %.0f events processed in 120 s (log %s)", done, total, log);
    h_sleep_ms(100);
  }
  double last = -1, since = h_now();
  until = h_now() + 60;
  for (;;) {
    double w = h_metric_of(log, "interestd_changelog_records_written_total ");
    if (w != last) last = w, since = h_now();
    if (h_now() - since >= 2.0 && w > 0) return;
    H_CHECK(h_now() < until, "the changelog of %s did not go quiet in 60 s", log);
    h_sleep_ms(100);
  }
}

/* from[p]: the offset of the first message of msgs[lo, hi) in partition p
 * (INT64_MAX: none). */
static void phase_from(const h_msg_t *msgs, size_t lo, size_t hi, int64_t *from) {
  for (int p = 0; p < PARTS; p++) from[p] = INT64_MAX;
  for (size_t i = lo; i < hi; i++)
    if (msgs[i].offset < from[msgs[i].partition]) from[msgs[i].partition] = msgs[i].offset;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Distinct users of partition p among msgs[lo, hi) with an offset below `below`. */
static size_t users_between(const h_msg_t *msgs, size_t lo, size_t hi, int32_t p, int64_t below) {
  uint64_t *u = calloc(hi - lo + 1, sizeof *u);
  size_t k = 0;
  char err[256];
  for (size_t i = lo; i < hi; i++) {
    if (msgs[i].partition != p || msgs[i].offset >= below) continue;
    event_t ev;
    H_CHECK(codec_decode_event(msgs[i].value, msgs[i].value_len, &ev, err, sizeof err) == 0,
            "%s", err);
    u[k++] = ev.user_id;
  }
  qsort(u, k, sizeof *u, cmp_u64);
  size_t n = 0;
  for (size_t i = 0; i < k; i++) n += i == 0 || u[i] != u[i - 1];
  free(u);
  return n;
}

/* The "partition P: states from changelog (U users, resume at M)" lines of
 * log: users[P], resume[P]; returns how many partitions were restored so. */
static int clog_restores(const char *log, size_t *users, int64_t *resume) {
  char *s = h_read_file(log);
  int n = 0;
  for (int p = 0; p < PARTS; p++) users[p] = 0, resume[p] = -1;
  for (char *q = s; (q = strstr(q, "partition ")); q++) {
    int part;
    size_t u;
    long long m;
    if (sscanf(q, "partition %d: states from changelog (%zu users, resume at %lld)", &part, &u,
               &m) == 3 && part >= 0 && part < PARTS) {
      n += resume[part] < 0;
      users[part] = u;
      resume[part] = m;
    }
  }
  free(s);
  return n;
}

/* After a restart with model: every partition restored from the changelog
 * (none cold), holding exactly the users of msgs[lo, hi) (the events since
 * the last reset) with an event below its resume offset. Returns the
 * number of partitions whose restored users differ (printed). */
static int check_reset_restore(const char *name, const char *log, const h_msg_t *msgs,
                               size_t lo, size_t hi) {
  size_t users[PARTS];
  int64_t resume[PARTS];
  int from_clog = clog_restores(log, users, resume);
  int cold = count_lines(log, "states from cold", NULL);
  int bad = 0;
  printf("%s: %d partitions from the changelog, %d cold\n", name, from_clog, cold);
  for (int p = 0; p < PARTS; p++) {
    size_t want = resume[p] >= 0 ? users_between(msgs, lo, hi, p, resume[p]) : 0;
    printf("  partition %d: %zu users restored, resume at %" PRId64 "; %zu users had events "
           "since the reset below it\n", p, users[p], resume[p], want);
    bad += users[p] != want;
  }
  bad += (from_clog != PARTS || cold != 0) * PARTS;
  return bad;
}

/* Counts the predictions of msgs[lo, hi) that differ from ref (ok: run). */
static size_t differ_in(const got_t *g, const h_msg_t *msgs, size_t lo, size_t hi,
                        const int *ok, const prediction_t *ref, size_t *missing,
                        const char *what) {
  size_t differ = 0;
  *missing = 0;
  for (size_t i = lo; i < hi; i++) {
    if (!g[i].n) (*missing)++;
    for (uint32_t k = 0; k < g[i].n && k < 4; k++)
      if (!ok[i] || !h_same_prediction(&g[i].p[k], &ref[i])) {
        if (differ++ < 3)
          fprintf(stderr, "prediction %u for %d/%" PRId64 " (user %" PRIu64 ") differs "
                  "from %s\n", k, (int)msgs[i].partition, msgs[i].offset, g[i].p[k].user_id,
                  what);
      }
  }
  return differ;
}

/* model.reload = reset with the states in a changelog topic only. Process
 * 1 (idle_ttl_s = TTL) serves model A, then SIGHUP resets to model B (at a
 * quiet point: the reset's offsets are the next phase's first); B serves
 * phase B1, whose users all expire (tombstones), then phase B2; kill -9 once
 * its changelog is quiet. Process 2 (model B, no TTL) must restore exactly
 * the users of B2 (A's records are another model's, B1's were evicted) and
 * answer phase C as B run from B2's offsets (B1's users start cold there);
 * then SIGHUP resets back to A, phase D, kill -9. Process 3 (model A) must
 * restore exactly D's users (A's records from before B are superseded by the
 * reset's epoch) and answer phase E as A run from D's offsets. */
static void scenario_clogreset(const char *brokers) {
  enum { NA = 3000, NB1 = 6000, NB2 = 9000, NC = 11000, ND = 14000, N = 16000, TTL = 12 };
  const char *a_m = h_path("clogr-a.ixm"), *b_m = h_path("clogr-b.ixm");
  h_write_model(a_m, 5);
  h_write_model(b_m, 11);
  if (!h_real_bootstrap()) h_create_topic("swapclogr-interestd-state", PARTS);
  const char *conf = h_path("swapclogr.conf");
  h_msg_t *msgs = h_load_events(N, PARTS);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));

  /* process 1: A, then reset to B */
  write_conf_reset(conf, brokers, "swapclogr", a_m, TTL);
  const char *log1 = h_path("swapclogr1.log");
  pid_t d = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_produce(brokers, topic_events, msgs, 0, NA, 0);
  wait_processed_quiet(log1, NA);
  write_conf_reset(conf, brokers, "swapclogr", b_m, TTL);
  kill(d, SIGHUP);
  H_CHECK(h_wait_log(log1, "model reloaded with a new fingerprint", 10), "no reset (log %s)",
          log1);
  double ttl0 = h_metric_of(log1, "interestd_evictions_total{cause=\"ttl\"} ");
  h_produce(brokers, topic_events, msgs, NA, NB1, 0);
  wait_processed_quiet(log1, NB1);
  double ttl1 = h_metric_of(log1, "interestd_evictions_total{cause=\"ttl\"} ");
  /* B1's users go idle and expire; then two checkpoint rounds write their
   * tombstones (docs/STATE.md: after a completion past the eviction) */
  double held = -1, until = h_now() + TTL + 30;
  while ((held = h_metric_of(log1, "interestd_users_in_state ")) != 0) {
    H_CHECK(h_now() < until, "%.0f users still held %d s after B1 (log %s)", held, TTL + 30,
            log1);
    h_sleep_ms(200);
  }
  double ttl2 = h_metric_of(log1, "interestd_evictions_total{cause=\"ttl\"} ");
  h_sleep_ms(4000);
  h_produce(brokers, topic_events, msgs, NB1, NB2, 0);
  wait_processed_quiet(log1, NB2);
  double ttl3 = h_metric_of(log1, "interestd_evictions_total{cause=\"ttl\"} ");
  double held3 = h_metric_of(log1, "interestd_users_in_state ");
  kill(d, SIGKILL);
  H_CHECK(h_wait_exit(d, 10) == -2, "not killed by SIGKILL");
  check_log_clean(log1);
  printf("clogreset: process 1: reset A -> B; B1's users expired (%.0f ttl evictions, %.0f "
         "during B1), %.0f users held after B2 (%.0f evictions during B2); kill -9\n",
         ttl2 - ttl1, ttl1 - ttl0, held3, ttl3 - ttl2);
  /* the scenario's premises: nothing expired within a phase */
  H_CHECK(ttl1 == ttl0 && ttl3 == ttl2 && ttl2 > ttl1, "users expired within a phase (the "
          "machine was slower than the %d s TTL; log %s)", TTL, log1);
  H_CHECK(held3 == (double)(users_between(msgs, NB1, NB2, 0, INT64_MAX) +
                            users_between(msgs, NB1, NB2, 1, INT64_MAX) +
                            users_between(msgs, NB1, NB2, 2, INT64_MAX) +
                            users_between(msgs, NB1, NB2, 3, INT64_MAX)),
          "%.0f users held after B2, not B2's", held3);

  /* process 2: B, no TTL; then reset back to A */
  write_conf_reset(conf, brokers, "swapclogr", b_m, 0);
  const char *log2 = h_path("swapclogr2.log");
  d = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  h_produce(brokers, topic_events, msgs, NB2, NC, 0);
  wait_processed_quiet(log2, NC - NB2);
  int bad2 = check_reset_restore("clogreset: process 2 (model B)", log2, msgs, NB1, NB2);
  write_conf_reset(conf, brokers, "swapclogr", a_m, 0);
  kill(d, SIGHUP);
  H_CHECK(h_wait_log(log2, "model reloaded with a new fingerprint", 10), "no reset (log %s)",
          log2);
  h_produce(brokers, topic_events, msgs, NC, ND, 0);
  wait_processed_quiet(log2, ND - NB2);
  kill(d, SIGKILL);
  H_CHECK(h_wait_exit(d, 10) == -2, "not killed by SIGKILL");
  check_log_clean(log2);

  /* process 3: A */
  const char *log3 = h_path("swapclogr3.log");
  d = h_spawn(conf, log3);
  H_CHECK(h_wait_log(log3, "assigned partitions", 30), "no assignment (log %s)", log3);
  h_produce(brokers, topic_events, msgs, ND, N, 0);
  wait_processed_quiet(log3, N - ND);
  int bad3 = check_reset_restore("clogreset: process 3 (model A after A -> B -> A)", log3, msgs,
                                 NC, ND);

  /* every prediction since each reset: the model run from that reset's
   * offsets (B1's users cold again from B2's, after their eviction) */
  int64_t b1[PARTS], b2[PARTS], dd[PARTS];
  phase_from(msgs, NA, NB1, b1);
  phase_from(msgs, NB1, NB2, b2);
  phase_from(msgs, NC, ND, dd);
  int *ok1 = calloc(N, sizeof *ok1), *ok2 = calloc(N, sizeof *ok2), *ok3 = calloc(N, sizeof *ok3);
  prediction_t *r1 = offline_from(b_m, msgs, N, b1, ok1);
  prediction_t *r2 = offline_from(b_m, msgs, N, b2, ok2);
  prediction_t *r3 = offline_from(a_m, msgs, N, dd, ok3);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N, N, 90, &total);
  size_t m0 = 0, m1, m2, m3;
  for (size_t i = 0; i < NA; i++) m0 += !g[i].n;
  size_t d1 = differ_in(g, msgs, NA, NB1, ok1, r1, &m1, "B run from the reset");
  size_t d2 = differ_in(g, msgs, NB1, NC, ok2, r2, &m2, "B run from B2's offsets");
  size_t d3 = differ_in(g, msgs, NC, N, ok3, r3, &m3, "A run from the second reset");
  printf("clogreset: %" PRIu64 " predictions for %d events: %zu missing; B1 %zu differ from B "
         "run from the reset; B2 and C %zu differ from B run from B2's offsets; D and E %zu "
         "differ from A run from the second reset; restored users wrong in %d + %d "
         "partitions\n", total, N, m0 + m1 + m2 + m3, d1, d2, d3, bad2, bad3);
  H_CHECK(m0 + m1 + m2 + m3 == 0, "%zu events unanswered (logs %s %s %s)", m0 + m1 + m2 + m3,
          log1, log2, log3);
  H_CHECK(bad2 == 0, "process 2 restored other users than B2's (log %s)", log2);
  H_CHECK(bad3 == 0, "process 3 restored other users than D's (log %s)", log3);
  H_CHECK(d1 == 0 && d2 == 0 && d3 == 0, "%zu, %zu, %zu predictions differ", d1, d2, d3);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log3);
  check_log_clean(log3);
  free(ok1);
  free(ok2);
  free(ok3);
  free(r1);
  free(r2);
  free(r3);
  free(g);
  h_free_msgs(msgs, N);
  printf("clogreset: PASS\n");
}

/* localreset: model.reload = reset with local checkpoints only. */
static void write_conf_localreset(const char *conf, const char *brokers, const char *model,
                                  const char *ckpt) {
  char extra[1024];
  /* commits wait for the fast-commit window after an assignment or a
   * revocation: a kill -9 leaves the group's committed offsets behind the
   * checkpoints (by at most auto.commit.interval.ms normally) */
  snprintf(extra, sizeof extra,
           "[kafka.consumer]\nauto.commit.interval.ms = 600000\n[state]\ncheckpoint_dir = %s\n"
           "checkpoint_interval_s = 1\n[daemon]\nshutdown_timeout_s = 10\n[model]\n"
           "reload = reset\n", ckpt);
  h_write_conf(conf, brokers, "swaplocr", model, extra);
}

/* Waits (120 s at most) until the daemon logging to log has processed
 * `total` events, then until its checkpoints are quiet (none completed for
 * 2.5 s, at checkpoint_interval_s = 1: every one of those events in a
 * published file). */
static void wait_processed_checkpointed(const char *log, double total) {
  double until = h_now() + 120, done = 0;
  while ((done = h_metric_of(log, "interestd_events_processed_total ")) < total) {
    H_CHECK(h_now() < until, "%.0f of %.0f events processed in 120 s (log %s)", done, total, log);
    h_sleep_ms(100);
  }
  double last = -1, since = h_now();
  until = h_now() + 60;
  for (;;) {
    double c = h_metric_of(log, "interestd_checkpoint_duration_seconds_count ");
    if (c != last) last = c, since = h_now();
    if (h_now() - since >= 2.5 && c > 0) return;
    H_CHECK(h_now() < until, "the checkpoints of %s did not go quiet in 60 s", log);
    h_sleep_ms(100);
  }
}

/* Produces the messages of msgs[lo, hi) whose partition is in [p_lo, p_hi),
 * in order; their offsets are set in msgs. Returns how many. */
static size_t produce_parts(const char *brokers, const char *topic, h_msg_t *msgs, size_t lo,
                            size_t hi, int p_lo, int p_hi) {
  h_msg_t *sel = calloc(hi - lo + 1, sizeof *sel);
  size_t *at = calloc(hi - lo + 1, sizeof *at), k = 0;
  for (size_t i = lo; i < hi; i++)
    if (msgs[i].partition >= p_lo && msgs[i].partition < p_hi) at[k] = i, sel[k++] = msgs[i];
  if (k) h_produce(brokers, topic, sel, 0, k, 0);
  for (size_t j = 0; j < k; j++) msgs[at[j]].offset = sel[j].offset;
  free(sel); /* shallow copies: msgs keeps the keys and values */
  free(at);
  return k;
}

/* model.reload = reset with local checkpoints only (no changelog topic).
 * Process 1 serves model A over phase A (every partition; its checkpoints
 * published), then SIGHUP resets to model B; phase B1 goes to partitions 0
 * and 1 only; once a checkpoint holds it, kill -9. The group's committed
 * offsets stay behind (auto.commit.interval.ms = 600000). Process 2 (model
 * B) must restore every partition from B's checkpoints: 0 and 1 with B1's
 * users at B1's end, 2 and 3 with no user at the reset's offset (the docs:
 * each user starts from B's zero state at the reset); then phase B1 of
 * partitions 2 and 3 and phase C: every event answered, phase A's only by A
 * and once, every later one as B run from the reset's offsets. */
static void scenario_localreset(const char *brokers) {
  enum { NA = 3000, NB = 6000, N = 8000 };
  const char *a_m = h_path("locr-a.ixm"), *b_m = h_path("locr-b.ixm");
  h_write_model(a_m, 5);
  h_write_model(b_m, 11);
  const char *conf = h_path("swaplocr.conf"), *ckpt = h_path("swaplocr-ckpt");
  h_msg_t *msgs = h_load_events(N, PARTS);
  char topic_events[256];
  snprintf(topic_events, sizeof topic_events, "%s", h_T("events"));

  /* process 1: A, then reset to B */
  write_conf_localreset(conf, brokers, a_m, ckpt);
  const char *log1 = h_path("swaplocr1.log");
  pid_t d = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  h_sleep_ms(2500); /* past the fast-commit window of the assignment */
  h_produce(brokers, topic_events, msgs, 0, NA, 0);
  wait_processed_checkpointed(log1, NA);
  write_conf_localreset(conf, brokers, b_m, ckpt);
  kill(d, SIGHUP);
  H_CHECK(h_wait_log(log1, "model reloaded with a new fingerprint", 10), "no reset (log %s)",
          log1);
  size_t n01 = produce_parts(brokers, topic_events, msgs, NA, NB, 0, 2);
  wait_processed_checkpointed(log1, NA + (double)n01);
  double committed[PARTS];
  for (int p = 0; p < PARTS; p++) {
    char series[128];
    snprintf(series, sizeof series, "interestd_committed_offset{partition=\"%d\"} ", p);
    committed[p] = h_metric_of(log1, series);
  }
  kill(d, SIGKILL);
  H_CHECK(h_wait_exit(d, 10) == -2, "not killed by SIGKILL");
  check_log_clean(log1);
  /* each partition's offset at the reset (phase A's end) and after B1 */
  int64_t reset_at[PARTS] = {0}, b1_end[PARTS];
  for (size_t i = 0; i < NA; i++)
    if (msgs[i].offset + 1 > reset_at[msgs[i].partition])
      reset_at[msgs[i].partition] = msgs[i].offset + 1;
  for (int p = 0; p < PARTS; p++) b1_end[p] = p < 2 ? reset_at[p] : -1;
  for (size_t i = NA; i < NB; i++)
    if (msgs[i].partition < 2 && msgs[i].offset + 1 > b1_end[msgs[i].partition])
      b1_end[msgs[i].partition] = msgs[i].offset + 1;
  printf("localreset: process 1: phase A (%d events), reset A -> B, phase B1 on partitions 0 "
         "and 1 (%zu events); kill -9 with committed offsets %.0f %.0f %.0f %.0f (-1: none)\n",
         NA, n01, committed[0], committed[1], committed[2], committed[3]);

  /* process 2: B */
  const char *log2 = h_path("swaplocr2.log");
  d = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log2, "assigned partitions", 30), "no assignment (log %s)", log2);
  int bad = 0;
  {
    char *s = h_read_file(log2);
    size_t users[PARTS];
    int64_t resume[PARTS];
    int refused[PARTS] = {0};
    for (int p = 0; p < PARTS; p++) users[p] = 0, resume[p] = -1;
    for (char *q = s; (q = strstr(q, "partition ")); q++) {
      int part;
      size_t u;
      long long gen, m;
      if (sscanf(q, "partition %d: restored %zu users from checkpoint generation %lld, resuming "
                 "at offset %lld", &part, &u, &gen, &m) == 4 && part >= 0 && part < PARTS)
        users[part] = u, resume[part] = m;
      else if (sscanf(q, "partition %d: checkpoint not restored", &part) == 1 && part >= 0 &&
               part < PARTS && strncmp(strchr(q, ':'), ": checkpoint not restored", 25) == 0)
        refused[part] = 1;
    }
    free(s);
    for (int p = 0; p < PARTS; p++) {
      int64_t want_at = p < 2 ? b1_end[p] : reset_at[p];
      size_t want = p < 2 ? users_between(msgs, NA, NB, p, INT64_MAX) : 0;
      printf("  partition %d: %s, %zu users, resume at %" PRId64 "; want %zu users at %" PRId64
             "\n", p, refused[p] ? "checkpoint REFUSED (another model's), cold from the "
             "committed offset" : resume[p] >= 0 ? "restored" : "nothing restored", users[p],
             resume[p], want, want_at);
      bad += refused[p] || resume[p] != want_at || users[p] != want;
    }
  }
  size_t n23 = produce_parts(brokers, topic_events, msgs, NA, NB, 2, 4);
  h_produce(brokers, topic_events, msgs, NB, N, 0);
  double want2 = (double)(n23 + (N - NB));
  wait_processed_checkpointed(log2, want2);
  double done2 = h_metric_of(log2, "interestd_events_processed_total ");

  /* phase A: A's predictions, once; everything after the reset: B run
   * from the reset's offsets */
  int64_t zero[PARTS] = {0};
  int *ok_a = calloc(N, sizeof *ok_a), *ok_b = calloc(N, sizeof *ok_b);
  prediction_t *ra = offline_from(a_m, msgs, N, zero, ok_a);
  prediction_t *rb = offline_from(b_m, msgs, N, reset_at, ok_b);
  uint64_t total;
  got_t *g = collect(brokers, msgs, N, N, 90, &total);
  size_t ma, mb, dups = 0;
  for (size_t i = 0; i < NA; i++) dups += g[i].n > 1 ? g[i].n - 1 : 0;
  size_t da = differ_in(g, msgs, 0, NA, ok_a, ra, &ma, "A's offline run (phase A)");
  size_t db = differ_in(g, msgs, NA, N, ok_b, rb, &mb, "B run from the reset's offsets");
  printf("localreset: process 2 processed %.0f events (%.0f new); %" PRIu64 " predictions for "
         "%d events: %zu missing; phase A: %zu differ from A (%zu re-answered); after the "
         "reset: %zu differ from B run from the reset; partitions restored wrong: %d\n", done2,
         want2, total, N, ma + mb, da, dups, db, bad);
  H_CHECK(ma + mb == 0, "%zu events unanswered (logs %s %s)", ma + mb, log1, log2);
  H_CHECK(bad == 0, "process 2 did not restore B's checkpoints at the reset (log %s)", log2);
  H_CHECK(da == 0 && db == 0, "%zu and %zu predictions differ (log %s)", da, db, log2);
  kill(d, SIGTERM);
  H_CHECK(h_wait_exit(d, 30) == 0, "exit after SIGTERM (log %s)", log2);
  check_log_clean(log2);
  free(ok_a);
  free(ok_b);
  free(ra);
  free(rb);
  free(g);
  h_free_msgs(msgs, N);
  printf("localreset: PASS\n");
}

int main(int argc, char **argv) {
  h_init("test_daemon_swap");
  const char *only = argc > 1 ? argv[1] : NULL;
  static const char *const names[] = {"swap",    "kill",      "term", "warmset",
                                      "killnew", "rolling",   "rebalance", "clog",
                                      "clogcrash", "clogstandby", "clogreset", "localreset"};
  enum { N_SCENARIOS = 12 };
  int known = !only;
  for (int k = 0; k < N_SCENARIOS; k++) known |= only && strcmp(only, names[k]) == 0;
  H_CHECK(known, "unknown scenario '%s'", only);
  for (int k = 0; k < N_SCENARIOS; k++) {
    if (only && strcmp(only, names[k])) continue;
    if (!only && k >= 7) continue; /* their own ctests: test_daemon_swap_changelog*, _local_reset */
    if (!only && h_real_bootstrap() && k < 6) {
      /* a real cluster keeps its topics: each scenario in its own process,
       * whose topic names get their own suffix */
      char cmd[1024];
      snprintf(cmd, sizeof cmd, "'%s' %s", argv[0], names[k]);
      int st = system(cmd);
      H_CHECK(st == 0, "scenario %s failed (status %d)", names[k], st);
      continue;
    }
    if (k == 6) {
      if (h_real_bootstrap()) printf("rebalance: skipped on a real cluster (it slows the mock "
                                     "broker down)\n");
      else scenario_rebalance();
      continue;
    }
    const char *brokers = h_cluster(PARTS);
    if (k == 0) scenario_swap(brokers);
    else if (k == 1) scenario_interrupt(brokers, SIGKILL, 0);
    else if (k == 2) scenario_interrupt(brokers, SIGTERM, 0);
    else if (k == 3) scenario_warmset(brokers);
    else if (k == 4) scenario_interrupt(brokers, SIGKILL, 1);
    else if (k == 5) scenario_rolling(brokers);
    else if (k == 7) scenario_clog(brokers);
    else if (k == 8) scenario_clogcrash(brokers);
    else if (k == 9) scenario_clogstandby(brokers);
    else if (k == 10) scenario_clogreset(brokers);
    else scenario_localreset(brokers);
    h_cluster_destroy();
  }
  printf("PASS\n");
  return 0;
}
