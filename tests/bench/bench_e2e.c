/* End-to-end benchmark through the mock broker (docs/PERFORMANCE.md,
 * "Daemon end to end"). In one run:
 *   1. interestd at saturation: N Taobao events preloaded, events/s from the
 *      output messages' timestamps (first to last prediction);
 *   2. the ceiling: a plain librdkafka consume -> produce pass-through (no
 *      decoding, no model) on the same preloaded input, measured the same way;
 *   3. the Python peer (bench_e2e_peer.py: confluent-kafka + a PyTorch
 *      LSTMCell per event), measured the same way on its first N_PY outputs;
 *   4. interestd at half its saturation rate: p50/p99 latency from each input
 *      message's produce timestamp to its prediction's produce timestamp.
 * usage: bench_e2e [N_EVENTS (100000)] [N_PY (20000), 0 = skip] [LATENCY_RATE (half of
 *        the measured saturation)] */
#include <pthread.h>

#include "../integration/daemon_harness.h"

#define PARTS 8
#define OUT_PARTS 16

static double rate_from_output(const char *rec, uint64_t *n_out) {
  rec_reader_t *r;
  char err[512];
  H_CHECK(recfile_reader_open(rec, &r, err, sizeof err) == 0, "%s", err);
  rec_t x;
  int64_t lo = INT64_MAX, hi = 0;
  uint64_t n = 0;
  while (recfile_read(r, &x) == 0) {
    if (x.ts_ms < lo) lo = x.ts_ms;
    if (x.ts_ms > hi) hi = x.ts_ms;
    n++;
  }
  recfile_reader_close(r);
  *n_out = n;
  return hi > lo ? (double)(n - 1) * 1000.0 / (double)(hi - lo) : 0.0;
}

/* ---- pass-through: plain librdkafka, no model ------------------------- */

typedef struct {
  const char *brokers;
  uint64_t count;
} pt_t;

static void *passthrough(void *arg) {
  pt_t *pt = arg;
  char err[512];
  rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
  rd_kafka_conf_set(cc, "bootstrap.servers", pt->brokers, err, sizeof err);
  rd_kafka_conf_set(cc, "group.id", "bench-passthrough", err, sizeof err);
  rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", err, sizeof err);
  rd_kafka_conf_set(cc, "fetch.wait.max.ms", "5", err, sizeof err);
  rd_kafka_conf_set(pc, "bootstrap.servers", pt->brokers, err, sizeof err);
  rd_kafka_conf_set(pc, "linger.ms", "1", err, sizeof err);
  rd_kafka_conf_set(pc, "partitioner", "murmur2_random", err, sizeof err);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  H_CHECK(c && p, "%s", err);
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, "events", RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(c, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
  rd_kafka_topic_t *out = rd_kafka_topic_new(p, "passthrough-out", NULL);
  rd_kafka_message_t *msgs[1024];
  uint64_t done = 0;
  while (done < pt->count) {
    ssize_t n = rd_kafka_consume_batch_queue(q, 100, msgs, 1024);
    for (ssize_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = msgs[i];
      if (!m->err) {
        while (rd_kafka_produce(out, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m->payload,
                                m->len, m->key, m->key_len, NULL) != 0)
          rd_kafka_poll(p, 10);
        done++;
      }
      rd_kafka_message_destroy(m);
    }
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

static void latency(const char *in_rec, const char *out_rec, double *p50, double *p99,
                    uint64_t *n) {
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
  size_t k = 0, c = 1024;
  double *lat = malloc(c * sizeof *lat);
  while (recfile_read(r, &x) == 0) {
    prediction_t pr;
    H_CHECK(codec_decode_prediction(x.value, x.value_len, &pr, err, sizeof err) == 0, "%s", err);
    if (pr.src_partition < 0 || pr.src_partition >= PARTS || pr.src_offset >= cap[pr.src_partition])
      continue;
    if (k == c) lat = realloc(lat, (c *= 2) * sizeof *lat);
    lat[k++] = (double)(x.ts_ms - ts[pr.src_partition][pr.src_offset]);
  }
  recfile_reader_close(r);
  qsort(lat, k, sizeof *lat, cmp_double);
  *n = k;
  *p50 = k ? lat[k / 2] : 0;
  *p99 = k ? lat[(size_t)((double)k * 0.99)] : 0;
  free(lat);
  for (int p = 0; p < PARTS; p++) free(ts[p]);
}

typedef struct {
  const char *brokers;
  h_msg_t *msgs;
  size_t n;
  double rate;
} feed_t;

static void *feeder(void *arg) {
  feed_t *f = arg;
  h_produce(f->brokers, "lat-in", f->msgs, 0, f->n, f->rate);
  return NULL;
}

int main(int argc, char **argv) {
  size_t n_events = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
  size_t n_py = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
  h_init("bench_e2e");
  char err[512];
  mockbroker_t *mb;
  H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
  const char *topics[][2] = {{"events", "8"},   {"interests", "16"}, {"passthrough-out", "16"},
                             {"python-out", "16"}, {"lat-in", "8"},   {"lat-out", "16"}};
  for (size_t i = 0; i < 6; i++)
    H_CHECK(mockbroker_create_topic(mb, topics[i][0], atoi(topics[i][1]), err, sizeof err) == 0,
            "%s", err);
  const char *brokers = mockbroker_bootstraps(mb);
  char *model = strdup(h_path("model.ixm"));
  modelfile_t mf = {0}; /* default dims (V=1000, H=64): the served size */
  {
    arch_dims_default(&mf.dims);
    mf.half_life_s = 72 * 3600.0f;
    arch_layout_t L;
    arch_layout(&mf.dims, &L);
    mf.params = malloc(L.total * sizeof(float));
    mf.vocab_ids = malloc(mf.dims.V * sizeof(uint64_t));
    uint64_t s = 3;
    for (size_t i = 0; i < L.total; i++)
      mf.params[i] = ((float)(h_rng(&s) % 20001) - 10000.0f) / 40000.0f;
    mf.vocab_ids[0] = 0;
    for (uint32_t i = 1; i < mf.dims.V; i++) mf.vocab_ids[i] = 1000 + i;
    H_CHECK(modelfile_write(model, &mf, err, sizeof err) == 0, "%s", err);
    free(mf.params);
    free(mf.vocab_ids);
  }
  h_msg_t *msgs = h_load_events(n_events, PARTS);
  h_produce(brokers, "events", msgs, 0, n_events, 0);
  printf("bench_e2e: %zu Taobao events preloaded into 8 partitions; model V=1000 H=64\n",
         n_events);

  /* 1. interestd at saturation */
  const char *conf = h_path("sat.conf");
  h_write_conf(conf, brokers, "bench-sat", model,
               "[kafka.consumer]\nfetch.wait.max.ms = 5\n[log]\nlevel = warn\n");
  pid_t d = h_spawn(conf, h_path("sat.log"));
  uint64_t got;
  h_collect(brokers, "interests", h_path("sat.rec"), n_events, 60000);
  double sat = rate_from_output(h_path("sat.rec"), &got);
  kill(d, SIGTERM);
  h_wait_exit(d, 20);
  H_CHECK(got == n_events, "interestd produced %" PRIu64, got);
  printf("interestd saturation:      %8.0f events/s (%" PRIu64 " predictions)\n", sat, got);

  /* 2. pass-through ceiling */
  pt_t pt = {brokers, n_events};
  pthread_t th;
  pthread_create(&th, NULL, passthrough, &pt);
  h_collect(brokers, "passthrough-out", h_path("pt.rec"), n_events, 60000);
  pthread_join(th, NULL);
  double ceil_rate = rate_from_output(h_path("pt.rec"), &got);
  printf("pass-through (no model):   %8.0f msgs/s   -> interestd at %.0f%% of it\n", ceil_rate,
         100.0 * sat / ceil_rate);

  /* 3. the Python peer */
  double py = 0;
  if (n_py) {
    char script[1024], cmd[4096];
    snprintf(script, sizeof script, "%s/tests/bench/bench_e2e_peer.py", getenv("IX_SOURCE_DIR"));
    snprintf(cmd, sizeof cmd, "timeout 600 /usr/bin/python3 %s %s events python-out %zu bench-py",
             script, brokers, n_py);
    H_CHECK(system(cmd) == 0, "python peer failed: %s", cmd);
    h_collect(brokers, "python-out", h_path("py.rec"), n_py, 30000);
    py = rate_from_output(h_path("py.rec"), &got);
    printf("python peer (torch):       %8.0f events/s (%" PRIu64 " events) -> interestd %.0fx\n",
           py, got, sat / py);
  }

  /* 4. latency at half of saturation */
  double rate = argc > 3 ? strtod(argv[3], NULL) : sat / 2;
  size_t n_lat = (size_t)(rate * 8);
  if (n_lat > n_events) n_lat = n_events;
  const char *lconf = h_path("lat.conf");
  h_write_conf(lconf, brokers, "bench-lat", model,
               "[kafka]\ninput_topic = lat-in\noutput_topic = lat-out\n"
               "[kafka.consumer]\nfetch.wait.max.ms = 5\n[log]\nlevel = info\n");
  /* h_write_conf wrote input/output topics first; the later keys win */
  d = h_spawn(lconf, h_path("lat.log"));
  H_CHECK(h_wait_log(h_path("lat.log"), "assigned partitions", 30), "latency daemon not ready");
  feed_t f = {brokers, msgs, n_lat, rate};
  pthread_create(&th, NULL, feeder, &f);
  pthread_join(th, NULL);
  h_collect(brokers, "lat-out", h_path("lat-out.rec"), n_lat, 30000);
  h_collect(brokers, "lat-in", h_path("lat-in.rec"), n_lat, 30000);
  int port = h_metrics_port(h_path("lat.log"));
  char *body = port ? h_http_get(port, "/metrics") : NULL;
  kill(d, SIGTERM);
  h_wait_exit(d, 20);
  double p50, p99;
  latency(h_path("lat-in.rec"), h_path("lat-out.rec"), &p50, &p99, &got);
  printf("interestd at %.0f events/s (half): produce -> prediction produced p50 %.1f ms, p99 "
         "%.1f ms (%" PRIu64 " events)\n", rate, p50, p99, got);
  if (body) {
    double cnt = h_metric_sum(body, "interestd_event_to_prediction_seconds_count");
    double sum = h_metric_sum(body, "interestd_event_to_prediction_seconds_sum");
    printf("  daemon histogram (queue read -> delivery report): mean %.2f ms over %.0f\n",
           cnt > 0 ? sum / cnt * 1e3 : 0.0, cnt);
    free(body);
  }
  printf("targets: >= 60%% of pass-through: %s; >= 20x python: %s; p99 < 10 ms: %s\n",
         sat >= 0.6 * ceil_rate ? "met" : "NOT met",
         !n_py ? "not run" : sat >= 20 * py ? "met" : "NOT met", p99 < 10 ? "met" : "NOT met");
  h_free_msgs(msgs, n_events);
  free(model);
  mockbroker_destroy(mb);
  return 0;
}
