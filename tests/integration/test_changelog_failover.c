/* State that follows its partition through the changelog topic (issue 14),
 * on the mock cluster. A daemon with changelog_mode = changelog (no local
 * checkpoint directory at all) is killed with SIGKILL mid-stream; a fresh
 * daemon (nothing on disk) restores every partition from the changelog:
 * every input event gets a prediction and every prediction equals the
 * offline pipeline's (each event applied to its user's state exactly once),
 * no partition starts cold (interestd_state_restores_total{source="cold"}
 * is 0, {source="changelog"} counts every partition). A changelog topic with
 * another partition count than the input is refused with a clear message.
 * Then the changelog is copied as a compacted log whose newest checkpoint
 * never completed (each partition's last completion record dropped, then
 * only the newest record per key kept, as compaction may leave it): a
 * daemon restoring from that copy re-reads from the older completion, skips
 * the events its users' newer records already hold (counted), and its
 * predictions still equal the offline pipeline's. */

#include "daemon_harness.h"
#include "state/changelog.h"
#include "stream/changelog_topic.h"

#ifndef N_EVENTS
#define N_EVENTS 20000
#endif
#define N_TAIL 3000 /* events produced after the third daemon's restore point */
#ifndef PARTS
#define PARTS 4
#endif
#define RATE 4000.0

/* the value of one metric series line "name{labels} value" */
static double metric(const char *page, const char *series) {
  char line[256];
  snprintf(line, sizeof line, "\n%s", series); /* a sample, not its # HELP line */
  const char *p = page ? strstr(page, line) : NULL;
  return p ? atof(p + strlen(line)) : -1;
}


typedef struct {
  int64_t off;
  size_t klen, vlen;
  char *key, *val;
} crec_t;

typedef struct {
  crec_t *r;
  size_t n, cap;
} clist_t;

static int keep_rec(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl) {
  clist_t *l = ctx;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 1024;
    l->r = realloc(l->r, l->cap * sizeof *l->r);
    H_CHECK(l->r, "oom");
  }
  crec_t *r = &l->r[l->n++];
  r->off = off;
  r->klen = kl;
  r->vlen = vl;
  r->key = malloc(kl ? kl : 1);
  r->val = malloc(vl ? vl : 1);
  memcpy(r->key, k, kl);
  memcpy(r->val, v, vl);
  return 0;
}

/* Copies topic `from` into `to` (same partitions): per partition, the last
 * completion record (key 'c') is dropped, then only the newest record per
 * key is kept, in log order. Returns the user records kept that follow the
 * last completion kept (the case that needs the per-user offset). */
static size_t copy_compacted_without_last_completion(const char *brokers, const char *from,
                                                     const char *to) {
  char err[512];
  producer_t *pr;
  producer_opts_t po = {.brokers = brokers};
  H_CHECK(producer_new(&po, &pr, err, sizeof err) == 0, "%s", err);
  producer_topic_t *t = producer_topic(pr, to);
  size_t after = 0;
  for (int32_t p = 0; p < PARTS; p++) {
    clist_t l = {0};
    uint64_t nrec, nbytes;
    H_CHECK(changelog_topic_read(brokers, NULL, from, p, 10000, keep_rec, &l, &nrec, &nbytes, err,
                                 sizeof err) == 0, "%s", err);
    size_t last_c = l.n;
    for (size_t i = 0; i < l.n; i++)
      if (l.r[i].key[0] == 'c') last_c = i;
    H_CHECK(last_c < l.n, "partition %d has no completion record", (int)p);
    l.r[last_c].klen = 0; /* dropped */
    size_t kept_c = l.n;
    for (size_t i = 0; i < l.n; i++) {
      if (!l.r[i].klen) continue;
      int newer = 0;
      for (size_t j = i + 1; j < l.n && !newer; j++)
        newer = l.r[j].klen == l.r[i].klen && memcmp(l.r[j].key, l.r[i].key, l.r[i].klen) == 0;
      if (newer) continue;
      if (l.r[i].key[0] == 'c') kept_c = i;
      else if (kept_c < l.n && i > kept_c) after++;
      H_CHECK(producer_send(pr, t, p, l.r[i].key, l.r[i].klen, l.r[i].val, l.r[i].vlen, 0, NULL,
                            0, 0) == 0, "produce");
    }
    for (size_t i = 0; i < l.n; i++) {
      free(l.r[i].key);
      free(l.r[i].val);
    }
    free(l.r);
  }
  H_CHECK(producer_flush(pr, 10000) == 0, "flush");
  producer_destroy(pr, 1000);
  return after;
}

/* Per partition of changelog `topic`: the newest completion's offset M and
 * the largest user offset among the records after it (-1 when none). */
#define MAX_AHEAD 8192
static struct {
  int32_t p;
  uint64_t user;
  int64_t off;
} ahead_users[MAX_AHEAD];
static size_t n_ahead, ahead_from; /* entries of the partition being read: from ahead_from */

static int scan_rec(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl) {
  (void)off;
  int64_t *mr = ctx;
  changelog_rec_t rec;
  char err[300];
  if (!vl || changelog_decode(k, kl, v, vl, &rec, err, sizeof err)) return 0;
  if (rec.kind == CHANGELOG_COMPLETE) {
    mr[0] = rec.offset;
    mr[1] = -1;
    n_ahead = ahead_from; /* only the users after the newest completion */
  } else {
    if (rec.offset > mr[1]) mr[1] = rec.offset;
    H_CHECK(n_ahead < MAX_AHEAD, "too many users");
    ahead_users[n_ahead].p = rec.partition;
    ahead_users[n_ahead].user = rec.user_id;
    ahead_users[n_ahead++].off = rec.offset;
  }
  return 0;
}

/* 1 when msgs[i] is an event the restore skips: its user's record in the
 * copy is after the completion and at or past the event */
static int skipped_event(const h_msg_t *m) {
  uint64_t user = strtoull(m->key, NULL, 10);
  for (size_t j = 0; j < n_ahead; j++)
    if (ahead_users[j].p == m->partition && ahead_users[j].user == user)
      return m->offset <= ahead_users[j].off;
  return 0;
}

/* A daemon in mode both restored from a changelog whose users are ahead of
 * its completion (the compacted copy) consumes part of the events those
 * users skip, then stops (SIGTERM); a local checkpoint there would hold
 * states ahead of its offset, and the next daemon, on the same directory,
 * would restore it (the changelog's completion is no newer) and apply the
 * skipped events again. Input: a new topic with the same events at the same
 * offsets, fed in two parts. */
static void no_local_checkpoint_ahead(const char *brokers, mockbroker_t *mb, const char *model,
                                      h_msg_t *msgs, size_t n) {
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "events-ahead", PARTS, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "interests-ahead", PARTS, err, sizeof err) == 0, "%s", err);
  /* a copy as the third daemon found it (that one has written to its own since) */
  H_CHECK(mockbroker_create_topic(mb, "clog-ahead", PARTS, err, sizeof err) == 0, "%s", err);
  copy_compacted_without_last_completion(brokers, "clog-interestd-state", "clog-ahead");
  int64_t cut[PARTS];
  int ahead = 0;
  for (int32_t p = 0; p < PARTS; p++) {
    int64_t mr[2] = {-1, -1};
    uint64_t r, b;
    ahead_from = n_ahead;
    H_CHECK(changelog_topic_read(brokers, NULL, "clog-ahead", p, 10000, scan_rec, mr, &r, &b,
                                 err, sizeof err) == 0, "%s", err);
    /* half way between the completion and the last skipped event */
    cut[p] = mr[1] > mr[0] ? (mr[0] + mr[1]) / 2 + 1 : mr[0];
    ahead += mr[1] > mr[0];
    printf("partition %d: completion at %" PRId64 ", users recorded up to %" PRId64 "; first "
           "part up to %" PRId64 "\n", (int)p, mr[0], mr[1], cut[p]);
  }
  H_CHECK(ahead > 0, "no partition has users ahead of its completion");
  producer_t *pr;
  producer_opts_t po = {.brokers = brokers};
  H_CHECK(producer_new(&po, &pr, err, sizeof err) == 0, "%s", err);
  producer_topic_t *t = producer_topic(pr, "events-ahead");
  for (int part = 0; part < 2; part++) {
    for (size_t i = 0; i < n; i++) {
      int first = msgs[i].offset < cut[msgs[i].partition];
      if (first != (part == 0)) continue;
      int rc;
      while ((rc = producer_send(pr, t, msgs[i].partition, msgs[i].key, msgs[i].key_len,
                                 msgs[i].value, msgs[i].value_len, 0, NULL, 0, 0)) == IX_EFULL)
        producer_poll(pr, 10);
      H_CHECK(rc == 0, "produce");
    }
    H_CHECK(producer_flush(pr, 30000) == 0, "flush");
    const char *conf = h_path("ahead.conf");
    char extra[1024];
    snprintf(extra, sizeof extra,
             "[kafka]\ninput_topic = events-ahead\noutput_topic = interests-ahead\n"
             "[state]\nchangelog_mode = both\nchangelog_topic = clog-ahead\n"
             "checkpoint_dir = %s\ncheckpoint_interval_s = 1\n[daemon]\nshutdown_timeout_s = 10\n",
             h_path("ahead-ckpt"));
    h_write_conf(conf, brokers, "ahead", model, extra);
    const char *log = h_path(part ? "ahead2.log" : "ahead1.log");
    pid_t d = h_spawn(conf, log);
    H_CHECK(h_wait_log(log, "assigned partitions", 30), "no assignment (log %s)", log);
    if (part == 0) {
      h_sleep_ms(4000); /* consumed, and periodic checkpoints due */
      kill(d, SIGTERM);
      H_CHECK(h_wait_exit(d, 30) == 0, "exit (log %s)", log);
      continue;
    }
    /* every event from the first part's restore point on: predicted once, exactly */
    int *ok = calloc(n, sizeof *ok);
    prediction_t *ref = h_offline(model, msgs, n, ok);
    uint32_t *counts = calloc(n, sizeof *counts);
    size_t missing = 1;
    double end = h_now() + 90;
    while (missing && h_now() < end) {
      const char *out = h_path("out-ahead.rec");
      h_collect(brokers, "interests-ahead", out, 3 * n, 3000);
      memset(counts, 0, n * sizeof *counts);
      h_check_output(out, msgs, n, ref, ok, counts, 1);
      missing = 0;
      for (size_t i = 0; i < n; i++)
        missing += counts[i] == 0 && msgs[i].offset >= cut[msgs[i].partition] &&
                   !skipped_event(&msgs[i]);
    }
    H_CHECK(missing == 0, "%zu events of the second part have no prediction (log %s)", missing,
            log);
    double local = h_metric_of(log, "interestd_state_restores_total{source=\"local\"} ");
    printf("mode both after a stop inside the skipped range: %.0f partitions from a local "
           "checkpoint; every prediction equal to the offline pipeline's\n", local);
    free(ok);
    free(ref);
    free(counts);
    kill(d, SIGTERM);
    H_CHECK(h_wait_exit(d, 30) == 0, "exit (log %s)", log);
  }
  producer_destroy(pr, 1000);
}

static void refuses_wrong_partition_count(mockbroker_t *mb, const char *brokers,
                                          const char *model) {
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "wrong-interestd-state", PARTS + 1, err, sizeof err) == 0,
          "%s", err);
  const char *conf = h_path("wrong.conf");
  h_write_conf(conf, brokers, "wrong", model, "[state]\nchangelog_mode = changelog\n");
  const char *log = h_path("wrong.log");
  pid_t d = h_spawn(conf, log);
  int st = h_wait_exit(d, 30);
  H_CHECK(st != 0 && st != -1, "a changelog with %d partitions for %d input partitions was "
          "not refused (exit %d, log %s)", PARTS + 1, PARTS, st, log);
  char want[128];
  snprintf(want, sizeof want, "has %d partitions but input topic 'events' has %d", PARTS + 1,
           PARTS);
  H_CHECK(h_wait_log(log, want, 1), "no clear message (log %s)", log);
  printf("a changelog topic with %d partitions for %d input partitions: refused (exit %d)\n",
         PARTS + 1, PARTS, st);

  /* a missing one: the mock has no Admin API to create it with */
  const char *conf2 = h_path("missing.conf");
  h_write_conf(conf2, brokers, "missing", model, "[state]\nchangelog_mode = changelog\n");
  const char *log2 = h_path("missing.log");
  double t0 = h_now();
  d = h_spawn(conf2, log2);
  st = h_wait_exit(d, 30);
  H_CHECK(st != 0 && st != -1, "a missing changelog topic on the mock was not refused (exit %d, "
          "log %s)", st, log2);
  H_CHECK(h_wait_log(log2, "changelog topic 'missing-interestd-state' does not exist and the "
                     "cluster does not answer the Admin API", 1), "no clear message (log %s)",
          log2);
  printf("a missing changelog topic on the mock (no Admin API): refused in %.1f s (exit %d)\n",
         h_now() - t0, st);
}

int main(void) {
  h_init("test_changelog_failover");
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  char err[512];
  H_CHECK(mockbroker_create_topic(mb, "clog-interestd-state", PARTS, err, sizeof err) == 0, "%s",
          err);
  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  refuses_wrong_partition_count(mb, brokers, model);

  const char *conf = h_path("interestd.conf");
  h_write_conf(conf, brokers, "clog", model,
               "[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = 1\n[log]\nlevel = debug\n");
  h_msg_t *msgs = h_load_events(N_EVENTS + N_TAIL, PARTS);

  const char *log1 = h_path("first.log");
  pid_t d1 = h_spawn(conf, log1);
  H_CHECK(h_wait_log(log1, "assigned partitions", 30), "no assignment (log %s)", log1);
  /* the mock answers no DescribeConfigs: one line says the policy is unchecked */
  H_CHECK(h_wait_log(log1, "does not support the Admin API", 1), "no line about the mock's "
          "missing Admin API (log %s)", log1);
  h_feed_t f = {.brokers = brokers, .topic = "events", .msgs = msgs,
                .lo = 0, .hi = N_EVENTS, .rate = RATE};
  h_feed_start(&f);
  h_sleep_ms((int)(N_EVENTS / RATE * 1000 / 2)); /* mid-stream */
  int port1 = h_metrics_port(log1);
  char *page1 = port1 ? h_http_get(port1, "/metrics") : NULL;
  double written = metric(page1, "interestd_changelog_records_written_total ");
  free(page1);
  kill(d1, SIGKILL);
  H_CHECK(h_wait_exit(d1, 10) == -2, "first process did not die of SIGKILL");
  printf("first process: SIGKILL mid-stream after %.0f changelog records acknowledged\n",
         written);
  H_CHECK(written > 0, "no changelog record was written before the kill (log %s)", log1);

  const char *log2 = h_path("second.log");
  pid_t d2 = h_spawn(conf, log2);
  h_feed_join(&f);

  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, "interests", h_path("out.rec"), msgs, N_EVENTS, ref,
                                  ok, 3 * N_EVENTS, 90, counts, &total);
  size_t dups = h_duplicates(counts, N_EVENTS);
  printf("after the failover: %" PRIu64 " predictions for %d events, %zu missing, %zu "
         "duplicates\n", total, N_EVENTS, missing, dups);
  H_CHECK(missing == 0, "%zu events have no prediction (logs %s %s)", missing, log1, log2);
  printf("every prediction equals the offline pipeline's: each event applied once to state\n");

  int port2 = h_metrics_port(log2);
  H_CHECK(port2 > 0, "no metrics port in %s", log2);
  char *page = h_http_get(port2, "/metrics");
  double cold = metric(page, "interestd_state_restores_total{source=\"cold\"} ");
  double from_cl = metric(page, "interestd_state_restores_total{source=\"changelog\"} ");
  double users = metric(page, "interestd_state_restored_users_total{source=\"changelog\"} ");
  double bytes = metric(page, "interestd_changelog_read_bytes_total ");
  printf("second process: partitions from the changelog %.0f, cold %.0f; %.0f users, %.0f bytes "
         "read\n", from_cl, cold, users, bytes);
  H_CHECK(cold == 0, "a partition started cold (log %s)", log2);
  H_CHECK(from_cl == PARTS, "%.0f of %d partitions came from the changelog (log %s)", from_cl,
          PARTS, log2);
  H_CHECK(users > 0 && bytes > 0, "nothing was restored (log %s)", log2);
  free(page);
  h_sleep_ms(2500); /* a changelog checkpoint after the last event */
  kill(d2, SIGTERM);
  H_CHECK(h_wait_exit(d2, 20) == 0, "second process exit (log %s)", log2);

  /* the newest checkpoint never completed, and compaction ran */
  H_CHECK(mockbroker_create_topic(mb, "clog-compacted", PARTS, err, sizeof err) == 0, "%s", err);
  size_t after = copy_compacted_without_last_completion(brokers, "clog-interestd-state",
                                                        "clog-compacted");
  printf("compacted copy without the last completion: %zu user records follow the last "
         "completion kept\n", after);
  H_CHECK(after > 0, "the copy does not exercise the incomplete checkpoint");
  const char *conf3 = h_path("compacted.conf");
  h_write_conf(conf3, brokers, "clog", model,
               "[state]\nchangelog_mode = changelog\nchangelog_topic = clog-compacted\n"
               "checkpoint_interval_s = 1\n[log]\nlevel = debug\n");
  /* more events for the same users: their predictions show whether the
   * restored states are exact */
  h_produce(brokers, "events", msgs, N_EVENTS, N_EVENTS + N_TAIL, 0);
  int *ok_all = calloc(N_EVENTS + N_TAIL, sizeof *ok_all);
  prediction_t *ref_all = h_offline(model, msgs, N_EVENTS + N_TAIL, ok_all);
  uint32_t *counts_all = calloc(N_EVENTS + N_TAIL, sizeof *counts_all);
  const char *log3 = h_path("third.log");
  pid_t d3 = h_spawn(conf3, log3);
  H_CHECK(h_wait_log(log3, "assigned partitions", 30), "no assignment (log %s)", log3);
  uint64_t total3;
  size_t missing3 = h_await_output(brokers, "interests", h_path("out3.rec"), msgs,
                                   N_EVENTS + N_TAIL, ref_all, ok_all, 3 * (N_EVENTS + N_TAIL),
                                   90, counts_all, &total3);
  int port3 = h_metrics_port(log3);
  char *pg = port3 ? h_http_get(port3, "/metrics") : NULL;
  double skipped = metric(pg, "interestd_state_events_skipped_total ");
  double cold3 = metric(pg, "interestd_state_restores_total{source=\"cold\"} ");
  free(pg);
  printf("restore from the compacted copy: %.0f events skipped as already applied, cold %.0f; "
         "%zu of %d events missing a prediction; every prediction (%" PRIu64 ", the %d new "
         "events' included) equals the offline pipeline's\n", skipped, cold3, missing3,
         N_EVENTS + N_TAIL, total3, N_TAIL);
  H_CHECK(missing3 == 0, "%zu events have no prediction (log %s)", missing3, log3);
  H_CHECK(cold3 == 0, "a partition started cold (log %s)", log3);
  H_CHECK(skipped > 0, "no event was skipped: the incomplete checkpoint's users were not met "
          "(log %s)", log3);
  free(ok_all);
  free(ref_all);
  free(counts_all);
  kill(d3, SIGTERM);
  H_CHECK(h_wait_exit(d3, 20) == 0, "third process exit (log %s)", log3);
  no_local_checkpoint_ahead(brokers, mb, model, msgs, N_EVENTS + N_TAIL);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS + N_TAIL);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
