/* The long fault suite (ctest label "slow"; not in ./dev test): the daemon
 * on a 3-broker mock cluster (librdkafka's, in this process), fed the bundled
 * Taobao events at a steady rate while a fault lasts, then after it.
 *
 * Every scenario asserts the same things (run_scenario):
 *   - every valid event of the input topic (read back after the run: the
 *     truth, whatever the test's producer did) has a prediction with its
 *     source partition/offset on the output topic, equal to the offline
 *     pipeline's where the states are exact;
 *   - duplicates (a second prediction for one source offset) are counted,
 *     printed and bounded: 5 s of input (the events after the newest
 *     checkpoint, every 2 s, re-read when a partition restarts from it), or
 *     the takeover's window for sigstop;
 *   - the daemon is up at the end (/healthz 200), exits 0 on SIGTERM, and
 *     the group's committed offsets reach every partition's end;
 *   - the scenario's own metric and log line (its check function);
 *   - recovery: from the fault's end until every event produced before it
 *     has its prediction (printed as "recovery").
 * Scenarios: broker_down, all_down, coordinator, sigstop, malformed,
 * ckpt_removed, ckpt_unwritable, ckpt_corrupt, sighup_model, sighup_config.
 * IX_FAULTS_EXTRA: more config lines for every member (e.g. librdkafka's
 * debug contexts, with [log] level = debug).
 * `test_daemon_faults_slow <scenario>` runs one; the results table in
 * docs/OPERATIONS.md comes from the lines starting with "RESULT". */
#include "daemon_harness.h"

#include <dirent.h>
#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h (the harness includes it) */
#include <pthread.h>

#define PARTS 6
#define N_BROKERS 3
#define MAX_MEMBERS 2

/* ------------------------------------------------------------ the producer */

typedef struct {
  const char *brokers;
  h_msg_t *msgs;
  size_t n;
  double rate;     /* messages/s */
  double *t_enq;   /* when each message was handed to the producer */
  double *t_ack;   /* when its delivery report came (it is in the topic) */
  size_t acked, failed;
  int done;
} feeder_t;

static void feeder_dr(void *ctx, const producer_report_t *r) {
  feeder_t *f = ctx;
  if (r->err) {
    f->failed++;
    return;
  }
  f->msgs[r->opaque].offset = r->offset;
  f->msgs[r->opaque].partition = r->partition;
  f->t_ack[r->opaque] = h_now();
  f->acked++;
}

/* Produces every message at f->rate, riding out broker outages (a long
 * message timeout); the input topic read back afterwards is the truth. */
static void *feeder_main(void *arg) {
  feeder_t *f = arg;
  const char *props[] = {"message.timeout.ms=600000", "linger.ms=5", NULL};
  producer_opts_t po = {.brokers = f->brokers, .props = props, .on_delivery = feeder_dr,
                        .ctx = f};
  producer_t *p;
  char err[512];
  H_CHECK(producer_new(&po, &p, err, sizeof err) == 0, "%s", err);
  producer_topic_t *t = producer_topic(p, "events");
  double t0 = h_now();
  for (size_t i = 0; i < f->n;) {
    double due = t0 + (double)i / f->rate;
    while (h_now() < due) producer_poll(p, 1);
    f->t_enq[i] = h_now();
    int rc = producer_send(p, t, f->msgs[i].partition, f->msgs[i].key, f->msgs[i].key_len,
                           f->msgs[i].value, f->msgs[i].value_len, 0, NULL, 0, i);
    if (rc == IX_EFULL) {
      producer_poll(p, 10);
      continue;
    }
    H_CHECK(rc == 0, "produce failed");
    i++;
  }
  H_CHECK(producer_flush(p, 600000) == 0, "the test's producer did not flush in 600 s");
  producer_destroy(p, 1000);
  __atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* ------------------------------------------------- the output, as it arrives */

typedef struct {
  double t;          /* arrival (test clock) */
  prediction_t pred;
} seen_t;

typedef struct {
  const char *brokers;
  pthread_mutex_t mu;
  seen_t *seen;
  size_t n, cap;
  int stop;
} watcher_t;

static void *watcher_main(void *arg) {
  watcher_t *w = arg;
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  H_CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", w->brokers, err, sizeof err) == 0, "%s",
          err);
  rd_kafka_conf_set(conf, "group.id", "fault-watcher", err, sizeof err); /* never joins */
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  H_CHECK(rk, "%s", err);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
  for (int p = 0; p < PARTS; p++)
    rd_kafka_topic_partition_list_add(l, "interests", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  H_CHECK(rd_kafka_assign(rk, l) == 0, "assign");
  rd_kafka_topic_partition_list_destroy(l);
  while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (!m->err) {
      seen_t s = {.t = h_now()};
      H_CHECK(codec_decode_prediction(m->payload, m->len, &s.pred, err, sizeof err) == 0,
              "output message: %s", err);
      pthread_mutex_lock(&w->mu);
      if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 4096;
        w->seen = realloc(w->seen, w->cap * sizeof *w->seen);
      }
      w->seen[w->n++] = s;
      pthread_mutex_unlock(&w->mu);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return NULL;
}

/* ------------------------------------------------------------ a scenario */

typedef struct scenario scenario_t;
typedef struct {
  const scenario_t *sc;
  mockbroker_t *mb;
  rd_kafka_mock_cluster_t *mc;
  const char *brokers;
  const char *model;
  char conf[MAX_MEMBERS][512], log[MAX_MEMBERS][512], ckpt[MAX_MEMBERS][512];
  pid_t pid[MAX_MEMBERS];
  int port[MAX_MEMBERS];
  int members;
  double t_fault_start, t_fault_end; /* t_fault_end: set by the fault */
  size_t n_bad;                      /* malformed inputs produced */
} run_t;

struct scenario {
  const char *name;
  const char *what;    /* one line for the table */
  int members;
  double fault_s;      /* how long the fault lasts (the fault function sleeps it) */
  double dup_bound_s;  /* duplicates allowed: this many seconds of input */
  int exact_states;    /* predictions equal the offline pipeline's */
  double bad_ratio;    /* share of malformed inputs */
  const char *extra;   /* more config */
  void (*fault)(run_t *r);  /* starts at t_fault_start, sets t_fault_end */
  void (*check)(run_t *r);  /* the scenario's metric and log line */
};

static int count_lines(const char *log, const char *needle) {
  char *s = h_read_file(log);
  int n = 0;
  for (char *p = s; (p = strstr(p, needle)); p++) n++;
  free(s);
  return n;
}

/* Waits until needle is in the log; prints and fails otherwise. */
static void want_log(const char *log, const char *needle, double timeout_s) {
  int found = h_wait_log(log, needle, timeout_s);
  if (found) { /* the line itself, after its time stamp */
    char *s = h_read_file(log), *p = strstr(s, needle);
    while (p > s && p[-1] != '\n') p--;
    size_t len = strcspn(p, "\n");
    printf("  log %s: %.*s\n", strrchr(log, '/') + 1, (int)(len > 220 ? 220 : len),
           len > 25 ? p + 25 : p);
    free(s);
  }
  H_CHECK(found, "no line \"%s\" in %s", needle, log);
}

static void spawn_member(run_t *r, int m) {
  r->pid[m] = h_spawn(r->conf[m], r->log[m]);
  H_CHECK(h_wait_log(r->log[m], "metrics on http://127.0.0.1:", 60), "member %d: no metrics "
          "port (log %s)", m, r->log[m]);
  r->port[m] = h_metrics_port(r->log[m]);
}

static void stop_member(run_t *r, int m) {
  kill(r->pid[m], SIGTERM);
  int status = h_wait_exit(r->pid[m], 60.0);
  printf("  member %d exited with status %d\n", m, status);
  H_CHECK(status == 0, "member %d: exit status %d (log %s)", m, status, r->log[m]);
  r->pid[m] = 0;
}

/* The newest checkpoint generation of partition p in dir (files
 * "p<p>-<gen>.ckpt"); 0 when none. */
static uint64_t newest_generation(const char *dir, int p) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  uint64_t best = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    int pp;
    unsigned long long g;
    char tail[16];
    if (sscanf(e->d_name, "p%d-%llu.%15s", &pp, &g, tail) == 3 && pp == p &&
        !strcmp(tail, "ckpt") && g > best)
      best = g;
  }
  closedir(d);
  return best;
}

static int count_ckpt_files(const char *dir) {
  int n = 0;
  for (int p = 0; p < PARTS; p++) n += newest_generation(dir, p) > 0;
  return n;
}

/* Reads a record file of the input topic into messages. */
static h_msg_t *load_rec(const char *path, size_t *n_out) {
  rec_reader_t *rd;
  char err[512];
  H_CHECK(recfile_reader_open(path, &rd, err, sizeof err) == 0, "%s", err);
  size_t n = 0, cap = 1024;
  h_msg_t *m = calloc(cap, sizeof *m);
  rec_t x;
  while (recfile_read(rd, &x) == 0) {
    if (n == cap) m = realloc(m, (cap *= 2) * sizeof *m);
    m[n] = (h_msg_t){.partition = x.partition, .offset = x.offset, .key_len = x.key_len,
                     .value_len = x.value_len, .key = malloc(x.key_len + 1),
                     .value = malloc(x.value_len + 1)};
    memcpy(m[n].key, x.key, x.key_len);
    memcpy(m[n].value, x.value, x.value_len);
    n++;
  }
  recfile_reader_close(rd);
  *n_out = n;
  return m;
}

/* The messages to produce: N real events, with a share of malformed ones. */
static h_msg_t *make_input(size_t n, double bad_ratio, size_t *n_bad) {
  h_msg_t *m = h_load_events(n, PARTS);
  uint64_t s = 42;
  *n_bad = 0;
  for (size_t i = 0; i < n && bad_ratio > 0; i++) {
    if ((double)(h_rng(&s) % 10000) >= bad_ratio * 10000) continue;
    /* kinds of bad: truncated msgpack, random bytes, an empty value */
    switch (h_rng(&s) % 3) {
    case 0: m[i].value_len /= 2; break;
    case 1:
      for (size_t j = 0; j < m[i].value_len; j++) m[i].value[j] = (char)h_rng(&s);
      break;
    default: m[i].value_len = 0; break;
    }
    m[i].bad = 1;
    (*n_bad)++;
  }
  return m;
}

#define N_EVENTS 20000
#define PRE_S 8.0   /* input before the fault */
#define POST_S 10.0 /* input after it */

/* The test clock (h_now) of a wall-clock time in ms: the daemon stamps each
 * prediction with the wall-clock time it made it (emit time). */
static double wall_to_test(int64_t wall_ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double wall_now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  return (double)wall_ms / 1000.0 - (wall_now - h_now());
}

static void run_scenario(const scenario_t *sc) {
  printf("== %s: %s\n", sc->name, sc->what);
  double t_begin = h_now();
  run_t r = {.sc = sc, .members = sc->members};
  char err[512];
  H_CHECK(mockbroker_new(N_BROKERS, &r.mb, err, sizeof err) == 0, "%s", err);
  r.mc = mockbroker_cluster(r.mb);
  r.brokers = mockbroker_bootstraps(r.mb);
  H_CHECK(mockbroker_create_topic(r.mb, "events", PARTS, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(r.mb, "interests", PARTS, err, sizeof err) == 0, "%s", err);
  /* partition p led by broker p % 3 + 1, the group's coordinator on broker 1 */
  for (int p = 0; p < PARTS; p++) {
    rd_kafka_mock_partition_set_leader(r.mc, "events", p, p % N_BROKERS + 1);
    rd_kafka_mock_partition_set_leader(r.mc, "interests", p, p % N_BROKERS + 1);
  }
  rd_kafka_mock_coordinator_set(r.mc, "group", sc->name, 1);
  char model[512];
  snprintf(model, sizeof model, "%s", h_path("model.ixm"));
  r.model = model;
  h_write_model(model, 7);
  for (int m = 0; m < r.members; m++) {
    char name[128];
    snprintf(name, sizeof name, "%s-ckpt%d", sc->name, m);
    snprintf(r.ckpt[m], sizeof r.ckpt[m], "%s", h_path(name));
    snprintf(name, sizeof name, "%s-%d.conf", sc->name, m);
    snprintf(r.conf[m], sizeof r.conf[m], "%s", h_path(name));
    snprintf(name, sizeof name, "%s-%d.log", sc->name, m);
    snprintf(r.log[m], sizeof r.log[m], "%s", h_path(name));
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[state]\ncheckpoint_dir = %s\ncheckpoint_interval_s = 2\n"
             "[daemon]\nhealth_stall_s = 5\n%s\n%s",
             r.ckpt[m], sc->extra ? sc->extra : "",
             getenv("IX_FAULTS_EXTRA") ? getenv("IX_FAULTS_EXTRA") : "");
    h_write_conf(r.conf[m], r.brokers, sc->name, model, extra);
  }

  /* the output watcher first, then the members, then the input */
  watcher_t w = {.brokers = r.brokers};
  pthread_mutex_init(&w.mu, NULL);
  pthread_t wt;
  H_CHECK(pthread_create(&wt, NULL, watcher_main, &w) == 0, "watcher thread");
  for (int m = 0; m < r.members; m++) spawn_member(&r, m);
  for (int m = 0; m < r.members; m++)
    H_CHECK(h_wait_log(r.log[m], "assigned partitions [", 60), "member %d got no partitions "
            "(log %s)", m, r.log[m]);
  size_t n_in = N_EVENTS;
  h_msg_t *in = make_input(n_in, sc->bad_ratio, &r.n_bad);
  feeder_t f = {.brokers = r.brokers, .msgs = in, .n = n_in,
                .rate = (double)n_in / (PRE_S + sc->fault_s + POST_S),
                .t_enq = calloc(n_in, sizeof(double)), .t_ack = calloc(n_in, sizeof(double))};
  pthread_t ft;
  H_CHECK(pthread_create(&ft, NULL, feeder_main, &f) == 0, "feeder thread");
  h_sleep_ms((int)(PRE_S * 1000));
  r.t_fault_start = h_now();
  sc->fault(&r);
  H_CHECK(r.t_fault_end >= r.t_fault_start, "the fault did not end");
  printf("  fault from %.1f s to %.1f s (input at %.0f events/s)\n", r.t_fault_start - t_begin,
         r.t_fault_end - t_begin, f.rate);
  pthread_join(ft, NULL);
  printf("  input: %zu acknowledged, %zu failed, %zu malformed\n", f.acked, f.failed, r.n_bad);
  H_CHECK(f.failed == 0 && f.acked == n_in, "the test's producer lost messages");

  /* the truth: the input topic as it is */
  const char *in_rec = h_path("input.rec");
  recorder_opts_t ro = {.brokers = r.brokers, .topic = "events", .output = in_rec,
                        .from_offset = RECORDER_FROM_BEGINNING, .until_end = 1,
                        .timeout_ms = 60000};
  recorder_stats_t rs;
  H_CHECK(recorder_run(&ro, &rs, err, sizeof err) == 0, "reading the input back: %s", err);
  size_t n;
  h_msg_t *msgs = load_rec(in_rec, &n);
  int *ok = calloc(n, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, n, ok);
  size_t n_valid = 0;
  for (size_t i = 0; i < n; i++) n_valid += (size_t)ok[i];
  printf("  input topic: %zu messages, %zu valid\n", n, n_valid);
  H_CHECK(n >= n_in, "the input topic holds %zu of %zu messages", n, n_in);
  H_CHECK(n - n_valid == r.n_bad, "%zu rejected offline, %zu malformed produced", n - n_valid,
          r.n_bad);

  /* wait until every valid event is answered */
  h_index_t ix;
  h_index_build(&ix, msgs, n);
  uint32_t *counts = calloc(n, sizeof *counts);
  double *first = calloc(n, sizeof *first);
  size_t answered = 0, scanned = 0, dups = 0, mismatched = 0;
  double deadline = h_now() + 300;
  for (;;) {
    pthread_mutex_lock(&w.mu);
    size_t upto = w.n;
    pthread_mutex_unlock(&w.mu);
    for (; scanned < upto; scanned++) {
      pthread_mutex_lock(&w.mu); /* the array may move (realloc) */
      seen_t copy = w.seen[scanned];
      pthread_mutex_unlock(&w.mu);
      const seen_t *s = &copy;
      long i = h_index_find(&ix, s->pred.src_partition, s->pred.src_offset);
      H_CHECK(i >= 0, "prediction for unknown input %d/%" PRId64, (int)s->pred.src_partition,
              s->pred.src_offset);
      H_CHECK(ok[i], "prediction for a malformed input %d/%" PRId64,
              (int)s->pred.src_partition, s->pred.src_offset);
      if (sc->exact_states && !h_same_prediction(&s->pred, &ref[i])) mismatched++;
      if (counts[i]++) dups++;
      else {
        first[i] = wall_to_test(s->pred.emit_ts_ms);
        answered++;
      }
    }
    if (answered == n_valid) break;
    if (h_now() > deadline) {
      size_t shown = 0;
      for (size_t i = 0; i < n && shown < 10; i++)
        if (ok[i] && !counts[i]) {
          printf("  unanswered: %d/%" PRId64 "\n", (int)msgs[i].partition, msgs[i].offset);
          shown++;
        }
      H_CHECK(0, "%zu of %zu valid events answered 300 s after the input ended (logs %s)",
              answered, n_valid, r.log[0]);
    }
    h_sleep_ms(200);
  }
  /* recovery, three ways, from the fault's end, by the daemon's clock (the
   * predictions' emit times: the test's own output consumer reconnects on
   * its own schedule, once 20 s after the daemon did):
   * progress: on every partition, the first prediction made after it;
   * in topic: the last event produced before it is in the input topic (the
   *   test's producer rides out the fault too);
   * caught up: the last event produced before it is answered. */
  h_index_t fx; /* the feeder's messages by (partition, offset) */
  h_index_build(&fx, in, n_in);
  double caught = 0, in_topic = 0;
  for (size_t i = 0; i < n; i++) {
    if (!ok[i]) continue;
    long k = h_index_find(&fx, msgs[i].partition, msgs[i].offset);
    if (k < 0 || f.t_enq[k] >= r.t_fault_end) continue;
    if (first[i] - r.t_fault_end > caught) caught = first[i] - r.t_fault_end;
    if (f.t_ack[k] - r.t_fault_end > in_topic) in_topic = f.t_ack[k] - r.t_fault_end;
  }
  h_index_free(&fx);
  double progress = 0;
  pthread_mutex_lock(&w.mu);
  for (int p = 0; p < PARTS; p++) {
    double t = -1;
    for (size_t j = 0; j < w.n; j++) {
      double made = wall_to_test(w.seen[j].pred.emit_ts_ms);
      if (w.seen[j].pred.src_partition == p && made >= r.t_fault_end && (t < 0 || made < t))
        t = made;
    }
    if (t >= 0 && t - r.t_fault_end > progress) progress = t - r.t_fault_end;
  }
  pthread_mutex_unlock(&w.mu);
  double recovery = progress;
  double dup_bound = f.rate * sc->dup_bound_s;
  printf("  answered %zu of %zu valid events, %zu duplicates (bound %.0f), %zu differing from "
         "the offline pipeline%s\n", answered, n_valid, dups, dup_bound, mismatched,
         sc->exact_states ? "" : " (not compared: states start cold)");
  printf("  recovery after the fault's end: progress on every partition %.1f s, the input "
         "produced before it in the topic %.1f s, answered %.1f s\n", progress, in_topic, caught);
  H_CHECK(!sc->exact_states || mismatched == 0, "%zu predictions differ from the offline "
          "pipeline", mismatched);
  H_CHECK((double)dups <= dup_bound, "%zu duplicates, bound %.0f", dups, dup_bound);

  /* up, the scenario's own signs, a clean stop, everything committed */
  for (int m = 0; m < r.members; m++) {
    char *body = NULL;
    for (double end = h_now() + 30; h_now() < end; h_sleep_ms(200)) {
      free(body);
      body = h_http_get(r.port[m], "/healthz");
      if (body && strstr(body, " 200 ")) break;
    }
    const char *text = body && strstr(body, "\r\n\r\n") ? strstr(body, "\r\n\r\n") + 4 : body;
    printf("  member %d /healthz: %s%s", m, text ? text : "(no answer)",
           text && *text && text[strlen(text) - 1] == '\n' ? "" : "\n");
    H_CHECK(body && strstr(body, " 200 "), "member %d not healthy (log %s)", m, r.log[m]);
    free(body);
  }
  if (sc->check) sc->check(&r);
  /* one member at a time: a member that stops while the group rebalances
   * for another one's departure has its final commit refused
   * (REBALANCE_IN_PROGRESS; exit 1, its events re-read by the next owner) */
  for (int m = 0; m < r.members; m++) {
    int next = m + 1 < r.members ? count_lines(r.log[m + 1], "assigned partitions [") : 0;
    stop_member(&r, m);
    if (m + 1 == r.members) break;
    int took = 0;
    for (double end = h_now() + 60; !took && h_now() < end; h_sleep_ms(200))
      took = count_lines(r.log[m + 1], "assigned partitions [") > next;
    printf("  member %d %s the partitions of member %d\n", m + 1, took ? "took" : "DID NOT take",
           m);
    H_CHECK(took, "member %d was not assigned member %d's partitions (log %s)", m + 1, m,
            r.log[m + 1]);
    h_sleep_ms(3000); /* its commits after the assignment (2 s) */
  }
  int64_t end[PARTS] = {0};
  for (size_t i = 0; i < n; i++)
    if (msgs[i].offset + 1 > end[msgs[i].partition]) end[msgs[i].partition] = msgs[i].offset + 1;
  for (int p = 0; p < PARTS; p++) {
    int64_t c = h_committed(r.brokers, sc->name, "events", p);
    printf("  partition %d: committed %" PRId64 " of %" PRId64 "\n", p, c, end[p]);
    H_CHECK(c == end[p], "partition %d committed %" PRId64 ", want %" PRId64, p, c, end[p]);
  }
  printf("RESULT | `%s` | %s | yes | 0 of %zu | %zu | %.1f s (all answered %.1f s) |\n",
         sc->name, sc->what, n_valid, dups, recovery, caught);
  __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
  pthread_join(wt, NULL);
  free(w.seen);
  h_index_free(&ix);
  free(counts);
  free(first);
  free(ok);
  free(ref);
  free(f.t_enq);
  free(f.t_ack);
  h_free_msgs(msgs, n);
  h_free_msgs(in, n_in);
  mockbroker_destroy(r.mb);
  printf("== %s: passed in %.0f s\n", sc->name, h_now() - t_begin);
}

/* -------------------------------------------------------------- the faults */

static void sleep_s(double s) { h_sleep_ms((int)(s * 1000)); }

static void fault_broker_down(run_t *r) {
  rd_kafka_mock_broker_set_down(r->mc, 2);
  sleep_s(r->sc->fault_s);
  rd_kafka_mock_broker_set_up(r->mc, 2);
  r->t_fault_end = h_now();
}

static void fault_all_down(run_t *r) {
  for (int b = 1; b <= N_BROKERS; b++) rd_kafka_mock_broker_set_down(r->mc, b);
  /* while everything is away the daemon says so */
  char *body = NULL;
  for (double end = h_now() + r->sc->fault_s - 1; h_now() < end; h_sleep_ms(250)) {
    free(body);
    body = h_http_get(r->port[0], "/healthz");
    if (body && strstr(body, " 503 ")) break;
  }
  printf("  during the outage /healthz: %s",
         body && strstr(body, "\r\n\r\n") ? strstr(body, "\r\n\r\n") + 4 : "(none)\n");
  H_CHECK(body && strstr(body, " 503 "), "/healthz was not 503 while every broker was down");
  free(body);
  sleep_s(r->t_fault_start + r->sc->fault_s - h_now());
  for (int b = 1; b <= N_BROKERS; b++) rd_kafka_mock_broker_set_up(r->mc, b);
  r->t_fault_end = h_now();
}

static void fault_coordinator(run_t *r) {
  /* the coordinator moves 1 -> 2 -> 3 -> 1, fault_s / 3 apart */
  for (int k = 0; k < 3; k++) {
    rd_kafka_mock_coordinator_set(r->mc, "group", r->sc->name, (k + 1) % N_BROKERS + 1);
    sleep_s(r->sc->fault_s / 3);
  }
  r->t_fault_end = h_now();
}

static void fault_sigstop(run_t *r) {
  /* member 0 stops past the session timeout (6 s): member 1 takes its
   * partitions; then member 0 comes back and rejoins */
  kill(r->pid[0], SIGSTOP);
  sleep_s(r->sc->fault_s);
  kill(r->pid[0], SIGCONT);
  r->t_fault_end = h_now();
}

static void fault_none(run_t *r) {
  /* the malformed share is in the input all along */
  sleep_s(r->sc->fault_s);
  r->t_fault_end = h_now();
}

/* Waits for a new checkpoint file of every partition after the fault's end;
 * the time it took is the checkpoints' recovery. */
static void wait_checkpoints_back(run_t *r) {
  uint64_t before[PARTS];
  for (int p = 0; p < PARTS; p++) before[p] = newest_generation(r->ckpt[0], p);
  double t0 = h_now();
  int all = 0;
  while (!all && h_now() < t0 + 60) {
    all = 1;
    for (int p = 0; p < PARTS; p++) all &= newest_generation(r->ckpt[0], p) > before[p];
    if (!all) h_sleep_ms(100);
  }
  printf("  checkpoints of all %d partitions written again %.1f s after the fault's end\n",
         PARTS, h_now() - t0);
  H_CHECK(all, "no new checkpoint of every partition within 60 s (log %s)", r->log[0]);
}

static double ckpt_recovery_s;

static void fault_ckpt_removed(run_t *r) {
  /* the directory removed: the next checkpoint creates it again */
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->ckpt[0]);
  H_CHECK(system(cmd) == 0, "%s", cmd);
  r->t_fault_end = h_now();
  double t0 = h_now();
  wait_checkpoints_back(r);
  ckpt_recovery_s = h_now() - t0;
  sleep_s(r->t_fault_start + r->sc->fault_s - h_now());
}

static void fault_ckpt_unwritable(run_t *r) {
  /* the directory replaced by a file (what a read-only mount does to a
   * root process, which chmod would not stop) */
  char away[600];
  snprintf(away, sizeof away, "%s.away", r->ckpt[0]);
  H_CHECK(rename(r->ckpt[0], away) == 0, "rename %s", r->ckpt[0]);
  FILE *f = fopen(r->ckpt[0], "w");
  H_CHECK(f, "creating %s", r->ckpt[0]);
  fclose(f);
  sleep_s(r->sc->fault_s);
  H_CHECK(unlink(r->ckpt[0]) == 0 && rename(away, r->ckpt[0]) == 0, "restoring %s", r->ckpt[0]);
  r->t_fault_end = h_now();
  double t0 = h_now();
  wait_checkpoints_back(r);
  ckpt_recovery_s = h_now() - t0;
}

static void fault_ckpt_corrupt(run_t *r) {
  /* stop, corrupt the newest checkpoint of every partition, restart: the
   * previous generation is restored and more is re-read */
  kill(r->pid[0], SIGTERM);
  H_CHECK(h_wait_exit(r->pid[0], 60) == 0, "first run's exit (log %s)", r->log[0]);
  int corrupted = 0;
  for (int p = 0; p < PARTS; p++) {
    uint64_t g = newest_generation(r->ckpt[0], p);
    H_CHECK(g >= 2, "partition %d has %" PRIu64 " checkpoint generations", p, g);
    char path[700];
    snprintf(path, sizeof path, "%s/p%d-%" PRIu64 ".ckpt", r->ckpt[0], p, g);
    FILE *f = fopen(path, "r+b");
    H_CHECK(f, "opening %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    H_CHECK(size > 100, "%s is %ld bytes", path, size);
    fseek(f, 90, SEEK_SET); /* in the body: a block checksum mismatch */
    int c = fgetc(f);
    fseek(f, 90, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    corrupted++;
  }
  printf("  corrupted the newest checkpoint of %d partitions\n", corrupted);
  sleep_s(r->sc->fault_s);
  r->t_fault_end = h_now();
  /* a log of its own: the metrics port is read from it */
  snprintf(r->log[0], sizeof r->log[0], "%s", h_path("ckpt_corrupt-0-restarted.log"));
  spawn_member(r, 0);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  H_CHECK(f, "writing %s", path);
  fputs(text, f);
  fclose(f);
}

static void fault_sighup_model(run_t *r) {
  /* a truncated model file in place, SIGHUP, then the good one back */
  FILE *f = fopen(r->model, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  char *bytes = malloc((size_t)size);
  f = fopen(r->model, "rb");
  H_CHECK(fread(bytes, 1, (size_t)size, f) == (size_t)size, "reading the model");
  fclose(f);
  f = fopen(r->model, "wb");
  fwrite(bytes, 1, (size_t)size / 2, f);
  fclose(f);
  kill(r->pid[0], SIGHUP);
  H_CHECK(h_wait_log(r->log[0], "reload refused", 30), "no refusal (log %s)", r->log[0]);
  f = fopen(r->model, "wb");
  fwrite(bytes, 1, (size_t)size, f);
  fclose(f);
  free(bytes);
  sleep_s(r->t_fault_start + r->sc->fault_s - h_now());
  r->t_fault_end = h_now();
}

static void fault_sighup_config(run_t *r) {
  char *good = h_read_file(r->conf[0]);
  write_text(r->conf[0], "[kafka\nbrokers = \n[model]\npath = /nonexistent\n");
  kill(r->pid[0], SIGHUP);
  H_CHECK(h_wait_log(r->log[0], "reload refused", 30), "no refusal (log %s)", r->log[0]);
  write_text(r->conf[0], good);
  free(good);
  sleep_s(r->t_fault_start + r->sc->fault_s - h_now());
  r->t_fault_end = h_now();
}

/* --------------------------------------------------------------- the checks */

static void check_broker_down(run_t *r) {
  /* librdkafka keeps the predictions for the broker's partitions queued and
   * the input producers cannot write them either: no interestd counter moves */
  double fails = h_metric(r->port[0], "interestd_produce_failures_total");
  double lag = h_metric(r->port[0], "interestd_consumer_lag_messages");
  printf("  interestd_produce_failures_total %.0f, interestd_consumer_lag_messages %.0f\n", fails,
         lag);
  want_log(r->log[0], "Connection refused", 1);
}

static void check_all_down(run_t *r) { check_broker_down(r); }

static void check_coordinator(run_t *r) {
  double fails = h_metric(r->port[0], "interestd_commit_failures_total");
  double rebal = h_metric(r->port[0], "interestd_rebalances_total");
  printf("  interestd_commit_failures_total %.0f, interestd_rebalances_total %.0f\n", fails,
         rebal);
}

static void check_sigstop(run_t *r) {
  /* member 1 took the stopped member's partitions, member 0 lost them */
  want_log(r->log[0], "lost partitions [", 30);
  double rebal1 = h_metric(r->port[1], "interestd_rebalances_total");
  printf("  member 1: interestd_rebalances_total %.0f\n", rebal1);
  H_CHECK(rebal1 >= 2, "member 1 saw %g rebalances", rebal1);
  int a1 = count_lines(r->log[1], "assigned partitions [");
  printf("  member 1 assigned %d times\n", a1);
  H_CHECK(a1 >= 2, "member 1 never took partitions over (log %s)", r->log[1]);
}

static void check_malformed(run_t *r) {
  double rejected = h_metric(r->port[0], "interestd_events_rejected_total");
  int lines = count_lines(r->log[0], "rejected message at partition");
  printf("  interestd_events_rejected_total %.0f of %zu malformed; %d log lines about them\n",
         rejected, r->n_bad, lines);
  H_CHECK(rejected == (double)r->n_bad, "rejected %g, want %zu", rejected, r->n_bad);
  H_CHECK(lines >= 1 && lines < 100, "%d lines for %zu rejects (rate limit)", lines, r->n_bad);
}

static void check_ckpt_removed(run_t *r) {
  double fails = h_metric(r->port[0], "interestd_checkpoint_failures_total");
  printf("  interestd_checkpoint_failures_total %.0f; checkpoints back %.1f s after the "
         "removal\n", fails, ckpt_recovery_s);
  want_log(r->log[0], "was missing: created it again", 1);
}

static void check_ckpt_failed(run_t *r) {
  double fails = h_metric(r->port[0], "interestd_checkpoint_failures_total");
  printf("  interestd_checkpoint_failures_total %.0f; checkpoints back %.1f s after the fault\n",
         fails, ckpt_recovery_s);
  H_CHECK(fails >= 1, "no checkpoint failure counted (log %s)", r->log[0]);
  want_log(r->log[0], "checkpoint not started: cannot list checkpoint directory", 1);
}

static void check_ckpt_corrupt(run_t *r) {
  want_log(r->log[0], "checksum mismatch", 5);
  want_log(r->log[0], "from checkpoint generation", 5);
  /* one corrupted file per partition, skipped at the restart (again if a
   * partition is re-assigned before its next checkpoint) */
  double skipped = h_metric(r->port[0], "interestd_checkpoints_skipped_total");
  printf("  interestd_checkpoints_skipped_total %.0f\n", skipped);
  H_CHECK(skipped >= PARTS, "interestd_checkpoints_skipped_total = %g, want >= %d", skipped,
          PARTS);
}

static void check_sighup(run_t *r) {
  want_log(r->log[0], "reload refused", 1);
  char *body = h_http_get(r->port[0], "/metrics");
  H_CHECK(body && strstr(body, "interestd_model_info"), "no model info");
  free(body);
  H_CHECK(count_ckpt_files(r->ckpt[0]) == PARTS, "checkpoints");
}

/* ------------------------------------------------------------------- main */

static const scenario_t SCENARIOS[] = {
    {"broker_down", "broker 2 of 3 (leader of 2 of 6 partitions) down 30 s", 1, 30, 5, 1, 0,
     NULL, fault_broker_down, check_broker_down},
    {"all_down", "all 3 brokers down 30 s", 1, 30, 5, 1, 0, NULL, fault_all_down,
     check_all_down},
    {"coordinator", "the group coordinator moves 3 times, 10 s apart", 1, 30, 5, 1, 0, NULL,
     fault_coordinator, check_coordinator},
    {"sigstop", "one of 2 members SIGSTOPped 20 s (session timeout 6 s), then SIGCONT", 2, 20,
     30, 0, 0, NULL, fault_sigstop, check_sigstop},
    {"malformed", "10% malformed input (truncated, random bytes, empty)", 1, 20, 5, 1, 0.10,
     NULL, fault_none, check_malformed},
    {"ckpt_removed", "checkpoint directory removed (rm -rf)", 1, 10, 5, 1, 0, NULL,
     fault_ckpt_removed, check_ckpt_removed},
    {"ckpt_unwritable", "checkpoint directory unwritable (a file in its place) for 15 s", 1, 15,
     5, 1, 0, NULL, fault_ckpt_unwritable, check_ckpt_failed},
    {"ckpt_corrupt", "stopped, newest checkpoint of every partition corrupted, restarted after "
     "5 s", 1, 5, 10, 1, 0, NULL, fault_ckpt_corrupt, check_ckpt_corrupt},
    {"sighup_model", "SIGHUP with a truncated model file", 1, 10, 5, 1, 0, NULL,
     fault_sighup_model, check_sighup},
    {"sighup_config", "SIGHUP with a config that does not parse", 1, 10, 5, 1, 0, NULL,
     fault_sighup_config, check_sighup},
};

int main(int argc, char **argv) {
  h_init("test_daemon_faults_slow");
  int ran = 0;
  for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) {
    if (argc > 1 && strcmp(argv[1], SCENARIOS[i].name)) continue;
    run_scenario(&SCENARIOS[i]);
    ran++;
  }
  H_CHECK(ran > 0, "no scenario named %s", argc > 1 ? argv[1] : "?");
  printf("PASS (%d scenarios)\n", ran);
  return 0;
}
