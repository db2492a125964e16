/* End-to-end benchmark through the mock broker, or a real one (IX_KAFKA_DIR of
 * a fresh tests/kafka/kafka.sh broker, or IX_KAFKA_BOOTSTRAP; docs/PERFORMANCE.md,
 * "Daemon end to end", "On a real broker"). In one run:
 *   1. interestd at saturation: N Taobao events preloaded, events/s from the
 *      output messages' timestamps (first to last prediction);
 *   2. the ceiling: a plain librdkafka consume -> produce pass-through (no
 *      decoding, no model) on the same preloaded input, measured the same way;
 *   1b. JSON in, JSON out against msgpack, in this run: the first N_FMT (<= 30000;
 *      the mock keeps about 5 MiB per partition and a JSON prediction is about
 *      1.5 KB) events preloaded as msgpack and as Segment-style JSON into two
 *      more topics; interestd on each in turn (msgpack, then JSON with the
 *      [input] mapping of docs/OPERATIONS.md and [output] format = json):
 *      events/s and daemon CPU per event;
 *   3. the Python peers, measured the same way on their first N_PY outputs:
 *      bench_e2e_peer_batched.py (confluent-kafka consume(512), users in
 *      waves, one PyTorch LSTMCell call per wave, the head once per batch:
 *      the headline ratio) and bench_e2e_peer.py (one LSTMCell call per event);
 *   4. interestd at half its saturation rate: after a warm-up that is not
 *      counted (2000 events, all answered before timing starts), 3 s of
 *      events sent at a steady rate; p50/p99/p99.9/max latency from each
 *      input message's produce timestamp to its prediction's produce timestamp;
 *   5. the same paced feed through the plain pass-through: the floor that the mock
 *      broker, the feeder and librdkafka set at that rate on this machine.
 * usage: bench_e2e [N_EVENTS (100000)] [N_PY (20000), 0 = skip] [LATENCY_RATE (half of
 *        the measured saturation)] [latency-only (skip 1-3; needs LATENCY_RATE) |
 *        saturation-only (1 alone; LATENCY_RATE is ignored)]
 * BENCH_E2E_PT_BYTES: pad the pass-through's output messages to this many bytes;
 * BENCH_E2E_CONF: extra INI lines for both daemons (saturation, latency); BENCH_E2E_CHANGELOG: create
 * their changelog topics on the mock (tests/bench/bench_changelog_cost.sh); BENCH_E2E_FEEDER: one
 * librdkafka key=value for the latency feeders' producer, default linger.ms=5 (both for
 * experiments; see feeder_prop()). */
#include <pthread.h>
#include <sys/resource.h>

#include "../integration/daemon_harness.h"

#define PARTS 8
#define OUT_PARTS 16

/* Reads count messages of topic (all partitions, from the start) and returns
 * their rate from the produce timestamps, first to last; *n_out = messages
 * read (fewer on timeout). Counts and timestamps only: the throughput runs
 * share the two cores with this reader, so it does no more than that (the
 * record-file writer used before cost about 1 us per message, CRC included). */
/* fetch.wait.max.ms of the daemons, the pass-through and the floor:
 * BENCH_E2E_FETCH_WAIT, default 1 on the mock, 500 (librdkafka's) on a real broker. The mock holds every fetch for the full wait
 * when the consumer is caught up, even if data arrives meanwhile; a real broker
 * answers at once. 1 ms is the nearest the mock comes to that, for every
 * consumer in the run alike (docs/PERFORMANCE.md, "Daemon end to end"). */
static const char *fetch_wait(void) {
  const char *v = getenv("BENCH_E2E_FETCH_WAIT");
  return v && *v ? v : h_real_bootstrap() ? "500" : "1";
}

/* CPU seconds (user + system, all threads) that process pid has used so far,
 * from /proc/PID/stat; 0 if unreadable. */
static double proc_cpu(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return 0;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double rate_of_topic(const char *brokers, const char *topic, uint64_t count, int timeout_ms,
                            uint64_t *n_out, pid_t pid, double *cpu_window) {
  char err[512];
  rd_kafka_conf_t *cc = rd_kafka_conf_new();
  rd_kafka_conf_set(cc, "bootstrap.servers", brokers, err, sizeof err);
  rd_kafka_conf_set(cc, "group.id", "bench-rate", err, sizeof err);
  rd_kafka_conf_set(cc, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_conf_set(cc, "fetch.wait.max.ms", fetch_wait(), err, sizeof err);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
  H_CHECK(c, "%s", err);
  const rd_kafka_metadata_t *md;
  rd_kafka_topic_t *t = rd_kafka_topic_new(c, topic, NULL);
  H_CHECK(rd_kafka_metadata(c, 0, t, &md, 10000) == 0 && md->topic_cnt == 1, "metadata of %s",
          topic);
  int nparts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
  for (int p = 0; p < nparts; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  H_CHECK(rd_kafka_assign(c, l) == 0, "assign %s", topic);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
  rd_kafka_message_t *msgs[1024];
  int64_t lo = INT64_MAX, hi = 0;
  uint64_t n = 0;
  double cpu0 = 0;
  double idle_until = h_now() + timeout_ms / 1000.0;
  while (n < count && h_now() < idle_until) {
    ssize_t k = rd_kafka_consume_batch_queue(q, 100, msgs, 1024);
    if (pid && n == 0 && k > 0) cpu0 = proc_cpu(pid);
    for (ssize_t i = 0; i < k; i++) {
      if (!msgs[i]->err) {
        int64_t ts = rd_kafka_message_timestamp(msgs[i], NULL);
        if (ts < lo) lo = ts;
        if (ts > hi) hi = ts;
        n++;
      }
      rd_kafka_message_destroy(msgs[i]);
    }
    if (k > 0) idle_until = h_now() + timeout_ms / 1000.0;
  }
  if (pid && cpu_window) *cpu_window = proc_cpu(pid) - cpu0;
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  *n_out = n;
  return n > 1 && hi > lo ? (double)(n - 1) * 1000.0 / (double)(hi - lo) : 0.0;
}

/* Like h_wait_exit, and returns the process's CPU seconds (user + system,
 * all threads) from wait4(). */
static double wait_cpu(pid_t pid, double timeout_s) {
  double end = h_now() + timeout_s;
  struct rusage ru = {0};
  int status;
  for (;;) {
    pid_t r = wait4(pid, &status, WNOHANG, &ru);
    if (r == pid) break;
    if (h_now() > end) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &ru);
      break;
    }
    h_sleep_ms(20);
  }
  for (int i = 0; i < h_n_children; i++)
    if (h_children[i] == pid) h_children[i] = 0;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- pass-through: plain librdkafka, no model ------------------------- */

typedef struct {
  const char *brokers;
  const char *in, *out, *group; /* topics and consumer group */
  uint64_t count;               /* stop after this many messages */
  /* latency control (lat != NULL): for every message after the first n_skip,
   * wall-clock ms at produce minus the input's produce timestamp, the same
   * figure as interestd's; seen counts the messages forwarded so far */
  uint64_t n_skip;
  double *lat;
  uint64_t seen; /* __atomic: written by the pass-through thread */
} pt_t;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *passthrough(void *arg) {
  pt_t *pt = arg;
  char err[512];
  rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
  rd_kafka_conf_set(cc, "bootstrap.servers", pt->brokers, err, sizeof err);
  rd_kafka_conf_set(cc, "group.id", pt->group, err, sizeof err);
  rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", err, sizeof err);
  rd_kafka_conf_set(cc, "fetch.wait.max.ms", fetch_wait(), err, sizeof err);
  rd_kafka_conf_set(pc, "bootstrap.servers", pt->brokers, err, sizeof err);
  rd_kafka_conf_set(pc, "linger.ms", "1", err, sizeof err);
  rd_kafka_conf_set(pc, "partitioner", "murmur2_random", err, sizeof err);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  H_CHECK(c && p, "%s", err);
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, pt->in, RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(c, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
  rd_kafka_topic_t *out = rd_kafka_topic_new(p, pt->out, NULL);
  rd_kafka_message_t *msgs[1024];
  uint64_t done = 0;
  /* BENCH_E2E_PT_BYTES=N: forward each message padded with zeros to N bytes
   * (an experiment: a pass-through whose output is the size of a prediction) */
  static char pad[CODEC_MAX_MSG];
  size_t pad_to = getenv("BENCH_E2E_PT_BYTES") ? strtoul(getenv("BENCH_E2E_PT_BYTES"), NULL, 10) : 0;
  if (pad_to > sizeof pad) pad_to = sizeof pad;
  while (done < pt->count) {
    /* wait for one message, then take what else is ready: a batch call with a
     * timeout would wait for 1024 messages and add its own latency */
    ssize_t n = 0;
    rd_kafka_message_t *first = rd_kafka_consume_queue(q, 100);
    if (first) {
      msgs[0] = first;
      ssize_t more = rd_kafka_consume_batch_queue(q, 0, msgs + 1, 1023);
      n = 1 + (more > 0 ? more : 0);
    }
    for (ssize_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = msgs[i];
      if (!m->err) {
        void *val = m->payload;
        size_t len = m->len;
        if (pad_to > len) {
          memcpy(pad, m->payload, len);
          memset(pad + len, 0, pad_to - len);
          val = pad;
          len = pad_to;
        }
        while (rd_kafka_produce(out, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, val, len, m->key,
                                m->key_len, NULL) != 0)
          rd_kafka_poll(p, 10);
        if (pt->lat && done >= pt->n_skip)
          pt->lat[done - pt->n_skip] = (double)(wall_ms() - rd_kafka_message_timestamp(m, NULL));
        done++;
      }
      rd_kafka_message_destroy(m);
    }
    __atomic_store_n(&pt->seen, done, __ATOMIC_RELEASE);
    rd_kafka_poll(p, 0);
  }
  rd_kafka_flush(p, 30000);
  rd_kafka_topic_destroy(out);
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  rd_kafka_destroy(p);
  return NULL;
}

/* ---- latency ----------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  double p50, p99, p999, max;
  uint64_t n, warmup;
} lat_t;

/* Sorts lat[0..k) and fills the quantiles. */
static void lat_summary(double *lat, size_t k, lat_t *out) {
  qsort(lat, k, sizeof *lat, cmp_double);
  out->n = k;
  out->p50 = k ? lat[k / 2] : 0;
  out->p99 = k ? lat[(size_t)((double)k * 0.99)] : 0;
  out->p999 = k ? lat[(size_t)((double)k * 0.999)] : 0;
  out->max = k ? lat[k - 1] : 0;
}

/* Latency of every prediction whose input was produced at or after from_ms
 * (the warm-up before it is counted in warmup, not in the figures); the
 * pairs go to lat.tsv (input ts, prediction ts, partition) for a closer look. */
static void latency(const char *in_rec, const char *out_rec, int64_t from_ms, lat_t *out) {
  /* input produce timestamps by (partition, offset) */
  int64_t *ts[PARTS] = {0};
  int64_t cap[PARTS] = {0};
  rec_reader_t *r;
  char err[512];
  rec_t x;
  H_CHECK(recfile_reader_open(in_rec, &r, err, sizeof err) == 0, "%s", err);
  while (recfile_read(r, &x) == 0) {
    int p = x.partition;
    if (x.offset >= cap[p]) {
      int64_t nc = cap[p] ? cap[p] * 2 : 65536;
      while (nc <= x.offset) nc *= 2;
      ts[p] = realloc(ts[p], (size_t)nc * sizeof **ts);
      cap[p] = nc;
    }
    ts[p][x.offset] = x.ts_ms;
  }
  recfile_reader_close(r);
  H_CHECK(recfile_reader_open(out_rec, &r, err, sizeof err) == 0, "%s", err);
  FILE *dump = fopen(h_path("lat.tsv"), "w");
  size_t k = 0, c = 1024;
  double *lat = malloc(c * sizeof *lat);
  while (recfile_read(r, &x) == 0) {
    prediction_t pr;
    H_CHECK(codec_decode_prediction(x.value, x.value_len, &pr, err, sizeof err) == 0, "%s", err);
    if (pr.src_partition < 0 || pr.src_partition >= PARTS || pr.src_offset >= cap[pr.src_partition])
      continue;
    if (ts[pr.src_partition][pr.src_offset] < from_ms) {
      out->warmup++;
      continue;
    }
    if (k == c) lat = realloc(lat, (c *= 2) * sizeof *lat);
    lat[k++] = (double)(x.ts_ms - ts[pr.src_partition][pr.src_offset]);
    if (dump) fprintf(dump, "%" PRId64 "\t%" PRId64 "\t%d\n", ts[pr.src_partition][pr.src_offset],
                      x.ts_ms, (int)pr.src_partition);
  }
  recfile_reader_close(r);
  if (dump) fclose(dump);
  lat_summary(lat, k, out);
  free(lat);
  for (int p = 0; p < PARTS; p++) free(ts[p]);
}

typedef struct {
  const char *brokers;
  const char *topic;
  const h_msg_t *msgs;
  size_t n_msgs;     /* events to cycle through */
  size_t lo, n;      /* send n events starting at msgs[lo], wrapping around */
  double rate;       /* events/s */
  int64_t start_ms;  /* out: wall clock of the first send */
  double max_behind; /* out: the furthest a send fell behind its schedule, s */
} feed_t;

static void feed_dr(void *ctx, const producer_report_t *r) { ((size_t *)ctx)[r->err ? 1 : 0]++; }

/* The feeder's one librdkafka property: BENCH_E2E_FEEDER (experiments), by
 * default linger.ms=5, librdkafka's own default, i.e. what an upstream
 * librdkafka producer does unless told otherwise. Not 1 ms: the mock broker
 * answers a fetch with one message set per partition, so with the feeder
 * cutting a set every millisecond, any consumer whose fetch round trip is
 * over 1 ms falls behind for good (a real broker returns every set up to
 * max.partition.fetch.bytes). The linger stays inside the figure: latency is
 * measured from the input's produce timestamp. */
static const char *feeder_prop(void) {
  const char *fp = getenv("BENCH_E2E_FEEDER");
  return fp && *fp ? fp : "linger.ms=5";
}

/* Pacing quantum of the feeder, BENCH_E2E_PACE_US (default 500): when ahead
 * of schedule it sleeps at least this long, then sends every event that has
 * come due. Waking for each event (every 10 us at 100k/s) cost the feeder
 * 30-46% of a core in wake-ups on this 2-core VM, CPU the daemon under test
 * then lacked (perf sched, docs/PERFORMANCE.md). Each event is still stamped
 * when it is sent, and 0.5 ms is a tenth of the feeder's own 5 ms linger. */
static double pace_s(void) {
  const char *v = getenv("BENCH_E2E_PACE_US");
  return (v && *v ? strtod(v, NULL) : 500.0) / 1e6;
}

/* Sends at a steady rate: each event at t0 + i/rate, or up to pace_s()
 * later (sleeping in between), and waits for the acks. */
static void *feeder(void *arg) {
  feed_t *f = arg;
  size_t acks[2] = {0, 0};
  const char *props[] = {feeder_prop(), NULL};
  producer_opts_t po = {.brokers = f->brokers, .props = props, .on_delivery = feed_dr,
                        .ctx = acks};
  producer_t *p;
  char err[512];
  H_CHECK(producer_new(&po, &p, err, sizeof err) == 0, "%s", err);
  producer_topic_t *t = producer_topic(p, f->topic);
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  f->start_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
  f->max_behind = 0;
  double t0 = h_now(), pace = pace_s();
  for (size_t i = 0; i < f->n;) {
    double due = t0 + (double)i / f->rate, now = h_now();
    if (now < due) {
      producer_poll(p, 0);
      double wait = due - now > pace ? due - now : pace;
      struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
      nanosleep(&ts, NULL);
      continue;
    }
    if (now - due > f->max_behind) f->max_behind = now - due;
    const h_msg_t *m = &f->msgs[(f->lo + i) % f->n_msgs];
    int rc = producer_send(p, t, m->partition, m->key, m->key_len, m->value, m->value_len, 0,
                           NULL, 0, i);
    if (rc == IX_EFULL) {
      producer_poll(p, 1);
      continue;
    }
    H_CHECK(rc == 0, "produce failed");
    i++;
  }
  H_CHECK(producer_flush(p, 30000) == 0, "feeder flush timed out");
  H_CHECK(acks[0] == f->n && acks[1] == 0, "%zu acked, %zu failed", acks[0], acks[1]);
  producer_destroy(p, 1000);
  return NULL;
}

/* The same events as Segment-style JSON (malloc'd values; keys, partitions kept). */
static h_msg_t *json_msgs(const h_msg_t *msgs, size_t n) {
  static const char *const names[] = {"Product Viewed", "Product Added", "Product Favorited",
                                      "Order Completed", "Checkout Started"};
  h_msg_t *j = calloc(n, sizeof *j);
  H_CHECK(j, "out of memory");
  for (size_t i = 0; i < n; i++) {
    event_t ev;
    char err[200];
    H_CHECK(codec_decode_event(msgs[i].value, msgs[i].value_len, &ev, err, sizeof err) == 0, "%s", err);
    time_t secs = (time_t)(ev.ts_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    j[i] = msgs[i];
    j[i].key = malloc(msgs[i].key_len + 1);
    j[i].value = malloc(400);
    H_CHECK(j[i].key && j[i].value, "out of memory");
    memcpy(j[i].key, msgs[i].key, msgs[i].key_len);
    j[i].value_len = (size_t)snprintf(
        j[i].value, 400,
        "{\"type\":\"track\",\"event\":\"%s\",\"userId\":\"%" PRIu64 "\",\"timestamp\":"
        "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"properties\":{\"product_id\":\"%" PRIu64
        "\",\"category_id\":\"%" PRIu64 "\"}}",
        names[ev.action], ev.user_id, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
        tm.tm_min, tm.tm_sec, (int)(ev.ts_ms % 1000), ev.item_id, ev.category_id);
  }
  return j;
}

/* The Segment-style mapping (docs/OPERATIONS.md), as INI lines. */
#define JSON_INPUT_INI                                                                       \
  "[input]\nformat = json\nuser_field = userId\ncategory_field = properties.category_id\n"     \
  "item_field = properties.product_id\naction_field = event\ntime_field = timestamp\n"         \
  "time_format = iso8601\naction_map = Product Viewed=view, Product Added=cart, "              \
  "Product Favorited=fav, Order Completed=buy\n[output]\nformat = json\n"

/* Waits until the daemon has delivered at least n predictions (its metrics). */
static int wait_delivered(int port, double n, double timeout_s) {
  double end = h_now() + timeout_s;
  while (h_now() < end) {
    char *body = h_http_get(port, "/metrics");
    double got = body ? h_metric_sum(body, "interestd_predictions_delivered_total") : 0;
    free(body);
    if (got >= n) return 1;
    h_sleep_ms(20);
  }
  return 0;
}

int main(int argc, char **argv) {
  size_t n_events = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
  size_t n_py = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
  int lat_only = argc > 4 && strcmp(argv[4], "latency-only") == 0 && strtod(argv[3], NULL) > 0;
  int sat_only = argc > 4 && strcmp(argv[4], "saturation-only") == 0;
  h_init("bench_e2e");
  char err[512];
  mockbroker_t *mb = NULL;
  const char *brokers = h_real_bootstrap();
  if (brokers) {
    h_plain_names();
    printf("bench_e2e: a real broker at %s (it must be a fresh one: topic names are fixed)\n",
           brokers);
  } else {
    H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
  }
  const char *topics[][2] = {{"events", "8"},   {"interests", "16"}, {"passthrough-out", "16"},
                             {"python-out", "16"}, {"lat-in", "8"},   {"lat-out", "16"},
                             {"ctl-in", "8"},      {"ctl-out", "16"},
                             {"fmt-mp-in", "8"},   {"fmt-mp-out", "16"},
                             {"fmt-json-in", "8"}, {"fmt-json-out", "16"},
                             {"python-batched-out", "16"}};
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
    if (!mb) {
      h_create_topic(topics[i][0], atoi(topics[i][1]));
      continue;
    }
    H_CHECK(mockbroker_create_topic(mb, topics[i][0], atoi(topics[i][1]), err, sizeof err) == 0,
            "%s", err);
  }
  /* BENCH_E2E_CHANGELOG: the changelog topics of the saturation and latency
   * daemons' groups, on the mock, which has no Admin API (on a real broker the
   * daemon creates them); turn the changelog on with BENCH_E2E_CONF */
  for (size_t i = 0; mb && getenv("BENCH_E2E_CHANGELOG") && i < 2; i++)
    H_CHECK(mockbroker_create_topic(mb, i ? "bench-lat-interestd-state" : "bench-sat-interestd-state",
                                    PARTS, err, sizeof err) == 0, "%s", err);
  if (mb) brokers = mockbroker_bootstraps(mb);
  /* the shipped model (V=1000, H=64, bf16 head): real weights give real
   * output distributions, and its flags are what production serves */
  char model[1024];
  snprintf(model, sizeof model, "%s/model/weights/taobao-h64.ixm", getenv("IX_SOURCE_DIR"));
  h_msg_t *msgs = h_load_events(n_events, PARTS);
  h_produce(brokers, "events", msgs, 0, n_events, 0);
  printf("bench_e2e: %zu Taobao events preloaded into 8 partitions; model %s\n",
         n_events, model);

  /* 1. interestd at saturation */
  double sat = 0, ceil_rate = 0, py = 0, py_event = 0;
  uint64_t got;
  pthread_t th;
  if (lat_only) goto latency_run;
  const char *conf = h_path("sat.conf");
  char sextra[2048];
  snprintf(sextra, sizeof sextra, "[kafka.consumer]\nfetch.wait.max.ms = %s\n[log]\nlevel = warn\n%s",
           fetch_wait(), getenv("BENCH_E2E_CONF") ? getenv("BENCH_E2E_CONF") : "");
  h_write_conf(conf, brokers, "bench-sat", model, sextra);
  pid_t d = h_spawn(conf, h_path("sat.log"));
  double cpu_win = 0;
  sat = rate_of_topic(brokers, "interests", n_events, 60000, &got, d, &cpu_win);
  kill(d, SIGTERM);
  double cpu = wait_cpu(d, 20);
  H_CHECK(got == n_events, "interestd produced %" PRIu64, got);
  printf("interestd saturation:      %8.0f events/s (%" PRIu64 " predictions); daemon CPU "
         "%.2f us/event while processing, %.2f start to exit (user+sys, all threads)\n", sat, got,
         cpu_win * 1e6 / (double)n_events, cpu * 1e6 / (double)n_events);

  if (sat_only) {
    h_free_msgs(msgs, n_events);
    mockbroker_destroy(mb);
    return 0;
  }

  /* 1b. msgpack vs JSON in and out, the same events */
  if (!getenv("BENCH_E2E_NO_JSON")) {
    size_t n_fmt = n_events < 30000 ? n_events : 30000;
    h_msg_t *jm = json_msgs(msgs, n_fmt);
    h_produce(brokers, "fmt-mp-in", msgs, 0, n_fmt, 0);
    h_produce(brokers, "fmt-json-in", jm, 0, n_fmt, 0);
    double fr[2], fc[2];
    for (int js = 0; js < 2; js++) {
      char fconf_extra[4096], group[32];
      snprintf(fconf_extra, sizeof fconf_extra,
               "[kafka]\ninput_topic = fmt-%s-in\noutput_topic = fmt-%s-out\n"
               "[kafka.consumer]\nfetch.wait.max.ms = %s\n[log]\nlevel = warn\n%s%s",
               js ? "json" : "mp", js ? "json" : "mp", fetch_wait(), js ? JSON_INPUT_INI : "",
               getenv("BENCH_E2E_CONF") ? getenv("BENCH_E2E_CONF") : "");
      snprintf(group, sizeof group, "bench-fmt-%d", js);
      const char *fconf = h_path(js ? "fmt-json.conf" : "fmt-mp.conf");
      h_write_conf(fconf, brokers, group, model, fconf_extra);
      pid_t fd = h_spawn(fconf, h_path(js ? "fmt-json.log" : "fmt-mp.log"));
      double fwin = 0;
      fr[js] = rate_of_topic(brokers, js ? "fmt-json-out" : "fmt-mp-out", n_fmt, 60000, &got, fd,
                             &fwin);
      kill(fd, SIGTERM);
      wait_cpu(fd, 20);
      H_CHECK(got == n_fmt, "interestd (%s) produced %" PRIu64, js ? "JSON" : "msgpack", got);
      fc[js] = fwin * 1e6 / (double)n_fmt;
    }
    printf("formats, %zu events each:  msgpack in/out %8.0f events/s, daemon CPU %.2f us/event; "
           "JSON in/out %8.0f events/s, %.2f us/event (JSON/msgpack: rate %.2f, CPU %.2f)\n",
           n_fmt, fr[0], fc[0], fr[1], fc[1], fr[1] / fr[0], fc[1] / fc[0]);
    h_free_msgs(jm, n_fmt);
  }

  /* 2. pass-through ceiling */
  pt_t pt = {brokers, "events", "passthrough-out", "bench-passthrough", n_events, 0, NULL, 0};
  pthread_create(&th, NULL, passthrough, &pt);
  ceil_rate = rate_of_topic(brokers, "passthrough-out", n_events, 60000, &got, 0, NULL);
  pthread_join(th, NULL);
  printf("pass-through (no model):   %8.0f msgs/s   -> interestd at %.0f%% of it\n", ceil_rate,
         100.0 * sat / ceil_rate);

  /* 3. the Python peers: batched (the headline), then one event at a time */
  if (n_py) {
    const char *peers[2][2] = {{"bench_e2e_peer_batched.py", "python-batched-out"},
                               {"bench_e2e_peer.py", "python-out"}};
    for (int k = 0; k < 2; k++) {
      char script[1024], cmd[4096];
      snprintf(script, sizeof script, "%s/tests/bench/%s", getenv("IX_SOURCE_DIR"), peers[k][0]);
      snprintf(cmd, sizeof cmd, "timeout 600 /usr/bin/python3 %s %s events %s %zu bench-py-%d",
               script, brokers, peers[k][1], n_py, k);
      H_CHECK(system(cmd) == 0, "python peer failed: %s", cmd);
      double r = rate_of_topic(brokers, peers[k][1], n_py, 30000, &got, 0, NULL);
      if (k == 0) py = r;
      else py_event = r;
      printf("python peer, %-10s  %8.0f events/s (%" PRIu64 " events) -> interestd %.1fx\n",
             k == 0 ? "batched:" : "per event:", r, got, sat / r);
    }
  }

  /* 4. latency at half of saturation */
latency_run:;
  double rate = argc > 3 ? strtod(argv[3], NULL) : sat / 2;
  /* 3 s of events (cycling through the loaded ones), at most 150k: the mock
   * keeps about 5 MiB per partition, and the predictions must all still be
   * there when they are collected */
  size_t n_lat = (size_t)(rate * 3);
  if (n_lat > 150000) n_lat = 150000;
  size_t n_warm = 2000;
  const char *lconf = h_path("lat.conf");
  char lextra[2048];
  /* BENCH_E2E_CONF: more INI lines for the latency daemon (experiments) */
  snprintf(lextra, sizeof lextra,
           "[kafka]\ninput_topic = lat-in\noutput_topic = lat-out\n"
           "[kafka.consumer]\nfetch.wait.max.ms = %s\n[log]\nlevel = info\n%s", fetch_wait(),
           getenv("BENCH_E2E_CONF") ? getenv("BENCH_E2E_CONF") : "");
  h_write_conf(lconf, brokers, "bench-lat", model, lextra);
  /* h_write_conf wrote input/output topics first; the later keys win */
  d = h_spawn(lconf, h_path("lat.log"));
  H_CHECK(h_wait_log(h_path("lat.log"), "assigned partitions", 30), "latency daemon not ready");
  int port = h_metrics_port(h_path("lat.log"));
  H_CHECK(port, "no metrics port in the daemon's log");
  /* Warm-up, not measured: "assigned partitions" is logged before librdkafka
   * has fetched the committed offsets and started its fetchers, so events
   * sent right away wait for that (100-300 ms here). 2000 events at 5000/s,
   * then wait until all are answered. */
  feed_t f = {.brokers = brokers, .topic = "lat-in", .msgs = msgs, .n_msgs = n_events, .lo = 0,
              .n = n_warm, .rate = 5000};
  pthread_create(&th, NULL, feeder, &f);
  pthread_join(th, NULL);
  H_CHECK(wait_delivered(port, (double)n_warm, 30), "warm-up not answered");
  f = (feed_t){.brokers = brokers, .topic = "lat-in", .msgs = msgs, .n_msgs = n_events,
               .lo = n_warm, .n = n_lat, .rate = rate};
  pthread_create(&th, NULL, feeder, &f);
  pthread_join(th, NULL);
  H_CHECK(wait_delivered(port, (double)(n_warm + n_lat), 30), "not every event answered");
  char *body = h_http_get(port, "/metrics");
  kill(d, SIGTERM);
  h_wait_exit(d, 20);
  h_collect(brokers, "lat-out", h_path("lat-out.rec"), n_warm + n_lat, 30000);
  h_collect(brokers, "lat-in", h_path("lat-in.rec"), n_warm + n_lat, 30000);
  lat_t L = {0};
  latency(h_path("lat-in.rec"), h_path("lat-out.rec"), f.start_ms, &L);
  H_CHECK(L.n == n_lat, "%" PRIu64 " of %zu measured events answered", L.n, n_lat);
  printf("feeder: %s, paced in %.0f us steps; daemon fetch.wait.max.ms=%s; latency from the "
         "input's produce timestamp (feeder linger included)\n", feeder_prop(), pace_s() * 1e6,
         fetch_wait());
  printf("interestd at %.0f events/s (%s), %zu events after a %zu-event warm-up: produce -> "
         "prediction produced p50 %.0f ms, p99 %.0f ms, p99.9 %.0f ms, max %.0f ms (feeder at "
         "most %.1f ms behind schedule)\n",
         rate, argc > 3 ? "given" : "half", n_lat, n_warm, L.p50, L.p99, L.p999, L.max,
         f.max_behind * 1e3);
  double p99 = L.p99;

  if (body) {
    double cnt = h_metric_sum(body, "interestd_event_to_prediction_seconds_count");
    double sum = h_metric_sum(body, "interestd_event_to_prediction_seconds_sum");
    /* p50/p99 as the upper bounds of the histogram's buckets */
    double le50 = 0, le99 = 0;
    const char *bk = "interestd_event_to_prediction_seconds_bucket{le=\"";
    for (const char *q = body; (q = strstr(q, bk)); q++) {
      double le = strtod(q + strlen(bk), NULL);
      const char *v = strchr(q, '}');
      double c = v ? strtod(v + 1, NULL) : 0;
      if (!le50 && c >= 0.5 * cnt) le50 = le;
      if (!le99 && c >= 0.99 * cnt) le99 = le;
    }
    printf("  daemon histogram (queue read -> delivery report, warm-up included): mean %.2f ms "
           "over %.0f, p50 <= %g ms, p99 <= %g ms\n", cnt > 0 ? sum / cnt * 1e3 : 0.0, cnt,
           le50 * 1e3, le99 * 1e3);
    /* the loop's turns (daemon/loopstat.h; absent from builds before it) */
    double turns = h_metric_sum(body, "interestd_loop_busy_seconds_count");
    double le99t = 0;
    const char *tb = "interestd_loop_busy_seconds_bucket{le=\"";
    for (const char *q = body; turns > 0 && (q = strstr(q, tb)); q++) {
      const char *v = strchr(q, '}');
      if (!le99t && v && strtod(v + 1, NULL) >= 0.99 * turns) le99t = strtod(q + strlen(tb), NULL);
    }
    if (turns > 0)
      printf("  daemon loop: %.0f turns (%.2f per event), %.3f s busy, p99 turn <= %g ms, "
             "longest %.2f ms\n", turns, turns / (double)(n_warm + n_lat),
             h_metric_sum(body, "interestd_loop_busy_seconds_sum"), le99t * 1e3,
             h_metric_sum(body, "interestd_loop_stall_max_seconds") * 1e3);
    free(body);
  }
  /* 5. the same paced feed through the plain pass-through (no decoding, no
   * model, same client settings): the floor that the mock broker, the feeder
   * and librdkafka set at this rate on this machine */
  pt_t lp = {brokers, "ctl-in", "ctl-out", "bench-ctl", n_warm + n_lat, n_warm,
             calloc(n_lat, sizeof(double)), 0};
  pthread_t th_pt;
  pthread_create(&th_pt, NULL, passthrough, &lp);
  f = (feed_t){.brokers = brokers, .topic = "ctl-in", .msgs = msgs, .n_msgs = n_events, .lo = 0,
               .n = n_warm, .rate = 5000};
  pthread_create(&th, NULL, feeder, &f);
  pthread_join(th, NULL);
  double wend = h_now() + 30;
  while (__atomic_load_n(&lp.seen, __ATOMIC_ACQUIRE) < n_warm && h_now() < wend)
    h_sleep_ms(20);
  H_CHECK(lp.seen >= n_warm, "pass-through warm-up not answered");
  f = (feed_t){.brokers = brokers, .topic = "ctl-in", .msgs = msgs, .n_msgs = n_events,
               .lo = n_warm, .n = n_lat, .rate = rate};
  pthread_create(&th, NULL, feeder, &f);
  pthread_join(th, NULL);
  pthread_join(th_pt, NULL);
  lat_t C = {0};
  lat_summary(lp.lat, n_lat, &C);
  free(lp.lat);
  printf("pass-through at the same rate and feed (the floor): p50 %.0f ms, p99 %.0f ms, p99.9 "
         "%.0f ms, max %.0f ms (feeder at most %.1f ms behind schedule)\n",
         C.p50, C.p99, C.p999, C.max, f.max_behind * 1e3);
  printf("targets: >= 60%% of pass-through: %s; >= 20x the batched python peer: %s (%.1fx; "
         "per-event peer %.1fx); p99 < 10 ms: %s\n",
         lat_only ? "not run" : sat >= 0.6 * ceil_rate ? "met" : "NOT met",
         lat_only || !n_py ? "not run" : sat >= 20 * py ? "met" : "NOT met",
         py > 0 ? sat / py : 0.0, py_event > 0 ? sat / py_event : 0.0, p99 < 10 ? "met" : "NOT met");
  h_free_msgs(msgs, n_events);
  mockbroker_destroy(mb);
  return 0;
}
