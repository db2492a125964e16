/* Shared helpers for the interestd integration tests: an in-process mock
 * cluster, a random model file, the bundled Taobao events, producing with
 * the offsets the broker assigned, spawning interestd processes (killed
 * with the test: PR_SET_PDEATHSIG and an atexit hook), collecting a topic
 * through the recorder, and the offline pipeline as the reference.
 * Header-only: each test is one executable. */
#ifndef IX_TESTS_DAEMON_HARNESS_H
#define IX_TESTS_DAEMON_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "core/pipeline.h"
#include "ctl/importer.h"
#include "model/arch.h"
#include "model/model.h"
#include "model/modelfile.h"
#include "stream/codec.h"
#include "stream/mockbroker.h"
#include "stream/producer.h"
#include "stream/recfile.h"
#include "stream/recorder.h"

#define H_UNUSED __attribute__((unused))
/* On failure: the message, then (at exit) the tail of every daemon log of the
 * test and the kept temporary folder (a CI run keeps only the output). */
static int h_failed;
#define H_CHECK(cond, ...)                                                                   \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
      fprintf(stderr, __VA_ARGS__);                                                          \
      fprintf(stderr, "\n");                                                                 \
      h_failed = 1;                                                                          \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

static char h_dir[256];
static pid_t h_children[16];
static int h_n_children;

static H_UNUSED double h_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static H_UNUSED void h_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static H_UNUSED void h_cleanup(void) {
  for (int i = 0; i < h_n_children; i++)
    if (h_children[i] > 0) {
      kill(h_children[i], SIGKILL);
      waitpid(h_children[i], NULL, 0);
    }
  if (h_failed && h_dir[0]) {
    char cmd[600];
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "for f in '%s'/*.log; do [ -f \"$f\" ] || continue; "
             "echo \"---- last 40 lines of $f\"; tail -n 40 \"$f\"; done >&2", h_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not show the logs in %s\n", h_dir);
    fprintf(stderr, "kept %s\n", h_dir);
    return;
  }
  if (h_dir[0] && !getenv("IX_KEEP_TMP")) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", h_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", h_dir);
  }
}

static H_UNUSED void h_init(const char *name) {
  snprintf(h_dir, sizeof h_dir, "/tmp/%s_XXXXXX", name);
  H_CHECK(mkdtemp(h_dir), "mkdtemp");
  atexit(h_cleanup);
  setvbuf(stdout, NULL, _IOLBF, 0);
  log_set_level(LOG_LVL_WARN);
}

static H_UNUSED const char *h_path(const char *name) {
  static char buf[64][512]; /* enough for a test's paths to stay valid */
  static int k;
  char *p = buf[k++ % 64];
  snprintf(p, 512, "%s/%s", h_dir, name);
  return p;
}

/* A test's random seed: the environment variable env when set, else one
 * from the time and the pid; printed with how to repeat what it chose. */
static H_UNUSED uint64_t h_seed(const char *env, const char *what) {
  const char *e = getenv(env);
  uint64_t seed = e ? strtoull(e, NULL, 10)
                    : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
  printf("seed %" PRIu64 " (%s=%" PRIu64 " repeats %s)\n", seed, env, seed, what);
  return seed;
}

static H_UNUSED uint64_t h_rng(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* A random (untrained) model with the Taobao categories in its vocabulary
 * would need the data; random ids are enough: unknown categories go to the
 * "other" bucket and the copy head, and every code path runs. */
/* V, H: vocabulary and hidden sizes, 0 = the served default (V=1000, H=64). */
static H_UNUSED void h_write_model_sized(const char *path, uint64_t seed, uint32_t V, uint32_t H) {
  modelfile_t mf = {0};
  arch_dims_default(&mf.dims);
  if (V) mf.dims.V = V;
  if (H) mf.dims.H = H;
  mf.half_life_s = 72 * 3600.0f;
  arch_layout_t L;
  arch_layout(&mf.dims, &L);
  mf.params = malloc(L.total * sizeof(float));
  mf.vocab_ids = malloc(mf.dims.V * sizeof(uint64_t));
  uint64_t s = seed;
  for (size_t i = 0; i < L.total; i++)
    mf.params[i] = ((float)(h_rng(&s) % 20001) - 10000.0f) / 40000.0f;
  mf.vocab_ids[0] = 0;
  for (uint32_t i = 1; i < mf.dims.V; i++) mf.vocab_ids[i] = 1000 + i;
  char err[256];
  H_CHECK(modelfile_write(path, &mf, err, sizeof err) == 0, "%s", err);
  free(mf.params);
  free(mf.vocab_ids);
}

/* The broker under test: librdkafka's mock cluster in this process, or a real
 * cluster when IX_KAFKA_BOOTSTRAP=host:port or IX_KAFKA_DIR (the folder of
 * tests/kafka/kafka.sh start, which holds "bootstrap") is set. On a real
 * cluster each topic and group name gets a suffix unique to this run (h_T), so
 * that tests share one cluster, at once and again later, and the topics are
 * created through the Admin API, with time retention off (retention.ms=-1:
 * the events' 2017 timestamps are far past any retention). */
static mockbroker_t *h_mock;
static char h_real_bs[512];
static char h_suffix[48];

/* The real cluster's bootstrap list, or NULL when the tests run on the mock. */
static H_UNUSED const char *h_real_bootstrap(void) {
  if (h_real_bs[0]) return h_real_bs;
  const char *bs = getenv("IX_KAFKA_BOOTSTRAP");
  const char *dir = getenv("IX_KAFKA_DIR");
  if (bs && *bs) {
    snprintf(h_real_bs, sizeof h_real_bs, "%s", bs);
  } else if (dir && *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/bootstrap", dir);
    FILE *f = fopen(path, "r");
    H_CHECK(f, "IX_KAFKA_DIR=%s has no bootstrap file: is the broker running "
            "(tests/kafka/kafka.sh start)?", dir);
    H_CHECK(fgets(h_real_bs, sizeof h_real_bs, f), "empty %s", path);
    fclose(f);
    h_real_bs[strcspn(h_real_bs, "\r\n")] = '\0';
  } else {
    return NULL;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(h_suffix, sizeof h_suffix, "-%ld-%ld", (long)getpid(), (long)(ts.tv_nsec / 1000));
  return h_real_bs;
}

/* Drops the per-run suffix: for a program that has a real broker of its own
 * (bench_e2e on a fresh tests/kafka/kafka.sh broker) and names its topics as
 * on the mock. Call before anything else of the cluster's. */
static H_UNUSED void h_plain_names(void) {
  if (h_real_bootstrap()) h_suffix[0] = '\0';
}

/* The name of topic or group `name` in this run: itself on the mock, with the
 * run's suffix on a real cluster. Valid for the next 63 calls. */
static H_UNUSED const char *h_T(const char *name) {
  static char buf[64][160];
  static int k;
  if (!h_real_bootstrap()) return name;
  char *p = buf[k++ % 64];
  snprintf(p, 160, "%s%s", name, h_suffix);
  return p;
}

/* A client of the real cluster for the Admin API and metadata (a producer
 * handle; free with rd_kafka_destroy()). */
static H_UNUSED rd_kafka_t *h_admin_client(void) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  H_CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", h_real_bootstrap(), err, sizeof err) ==
              RD_KAFKA_CONF_OK, "%s", err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  H_CHECK(rk, "%s", err);
  return rk;
}

/* Creates topic h_T(name) with parts partitions (Admin API on a real cluster)
 * and waits until every partition has a leader. */
static H_UNUSED void h_create_topic(const char *name, int parts) {
  char err[512];
  if (!h_real_bootstrap()) {
    H_CHECK(h_mock, "h_create_topic before h_cluster");
    H_CHECK(mockbroker_create_topic(h_mock, name, parts, err, sizeof err) == 0, "%s", err);
    return;
  }
  const char *topic = h_T(name);
  rd_kafka_t *rk = h_admin_client();
  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, parts, 1, err, sizeof err);
  H_CHECK(nt, "%s", err);
  /* The bundled events are from 2017 and keep their timestamps: a broker's
   * time retention (7 days by default) would delete them within seconds. */
  H_CHECK(rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1") == 0, "retention.ms");
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  H_CHECK(ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT,
          "no CreateTopics result for %s", topic);
  H_CHECK(!rd_kafka_event_error(ev), "CreateTopics %s: %s", topic,
          rd_kafka_event_error_string(ev));
  size_t n;
  const rd_kafka_topic_result_t **res =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
  H_CHECK(n == 1 && !rd_kafka_topic_result_error(res[0]), "CreateTopics %s: %s", topic,
          n ? rd_kafka_topic_result_error_string(res[0]) : "no result");
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  /* the topic exists once the metadata shows every partition with a leader */
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  double end = h_now() + 30;
  for (int ready = 0; !ready;) {
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ready = md->topic_cnt == 1 && !md->topics[0].err &&
              md->topics[0].partition_cnt == parts;
      for (int i = 0; ready && i < md->topics[0].partition_cnt; i++)
        ready = md->topics[0].partitions[i].leader >= 0 && !md->topics[0].partitions[i].err;
      rd_kafka_metadata_destroy(md);
    }
    H_CHECK(ready || h_now() < end, "topic %s has no leaders after 30 s", topic);
    if (!ready) h_sleep_ms(100);
  }
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
}

/* The broker for a daemon test with topics "events" and "interests" of parts
 * partitions each (the daemon tests' layout): a new mock cluster, or the real
 * cluster (see h_real_bootstrap). Returns the bootstrap list; exits the test
 * on failure. Release with h_cluster_destroy(). */
static H_UNUSED const char *h_cluster(int parts) {
  const char *bs = h_real_bootstrap();
  if (bs) {
    printf("broker: a real cluster at %s, topic suffix %s\n", bs, h_suffix);
  } else {
    char err[512];
    H_CHECK(mockbroker_new(1, &h_mock, err, sizeof err) == 0, "%s", err);
    bs = mockbroker_bootstraps(h_mock);
  }
  h_create_topic("events", parts);
  h_create_topic("interests", parts);
  return bs;
}

/* A one-broker mock cluster with topics "events" and "interests" of parts
 * partitions each, for the tests that inject faults (rd_kafka_mock_*): always
 * the mock, whatever the environment says. Exits the test on failure. */
static H_UNUSED mockbroker_t *h_mockbroker(int parts) {
  char err[512];
  mockbroker_t *mb;
  H_CHECK(!h_real_bootstrap(), "a fault-injection test runs on the mock only");
  H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "events", parts, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "interests", parts, err, sizeof err) == 0, "%s", err);
  return mb;
}

static H_UNUSED void h_cluster_destroy(void) {
  mockbroker_destroy(h_mock);
  h_mock = NULL;
}

/* A small random model (V=200, H=32): fast for tests. */
static H_UNUSED void h_write_model(const char *path, uint64_t seed) {
  h_write_model_sized(path, seed, 200, 32);
}

typedef struct {
  int32_t partition;
  int64_t offset; /* assigned by the broker */
  size_t key_len, value_len;
  char *key, *value;
  int bad;        /* not a valid event */
} h_msg_t;

/* m (its key and value replaced, the old ones freed) holds ev encoded, keyed
 * by its user id and partitioned as the importer does over `partitions`;
 * buf is scratch. */
static H_UNUSED void h_msg_set_event(h_msg_t *m, const event_t *ev, int partitions,
                                     codec_buf_t *buf) {
  H_CHECK(codec_encode_event(ev, buf) == 0, "encoding an event");
  char key[24];
  int kl = snprintf(key, sizeof key, "%" PRIu64, ev->user_id);
  free(m->key);
  free(m->value);
  m->partition = importer_partition(key, (size_t)kl, partitions);
  m->key_len = (size_t)kl;
  m->value_len = buf->len;
  m->key = malloc((size_t)kl + 1);
  m->value = malloc(buf->len + 1);
  memcpy(m->key, key, (size_t)kl + 1);
  memcpy(m->value, buf->data, buf->len);
}

/* The first n events of the bundled Taobao sample, in event-time order,
 * keyed and partitioned by user like the importer does. For n beyond the
 * sample, the sample is replayed again with every user under a new id (user
 * + k * H_REPLAY_ID_STEP in round k) and every time shifted by k * 10 days:
 * real histories, more users, no invented behaviour. */
#define H_REPLAY_ID_STEP 100000000ull
static H_UNUSED h_msg_t *h_load_events(size_t n, int partitions) {
  const char *src = getenv("IX_SOURCE_DIR");
  H_CHECK(src, "IX_SOURCE_DIR is not set");
  char csv[1024];
  snprintf(csv, sizeof csv, "%s/data/taobao_userbehavior_head100k/small_sample.csv.gz", src);
  H_CHECK(access(csv, R_OK) == 0, "the bundled data set is missing: %s", csv);
  const char *rec = h_path("events.rec");
  importer_opts_t io = {.format = IMPORT_TAOBAO, .input = csv, .output = rec,
                        .partitions = partitions};
  importer_stats_t is;
  char err[512];
  H_CHECK(importer_run(&io, &is, err, sizeof err) == 0, "%s", err);
  H_CHECK(is.events > 0, "no events in %s", csv);
  size_t base = n < is.events ? n : (size_t)is.events;
  rec_reader_t *r;
  H_CHECK(recfile_reader_open(rec, &r, err, sizeof err) == 0, "%s", err);
  h_msg_t *m = calloc(n, sizeof *m);
  rec_t x;
  for (size_t i = 0; i < base; i++) {
    H_CHECK(recfile_read(r, &x) == 0, "reading %s", rec);
    m[i].partition = x.partition;
    m[i].key_len = x.key_len;
    m[i].value_len = x.value_len;
    m[i].key = malloc(x.key_len + 1);
    m[i].value = malloc(x.value_len + 1);
    memcpy(m[i].key, x.key, x.key_len);
    memcpy(m[i].value, x.value, x.value_len);
  }
  recfile_reader_close(r);
  codec_buf_t buf = {0};
  for (size_t i = base; i < n; i++) {
    const h_msg_t *orig = &m[i % base];
    uint64_t k = i / base;
    event_t ev;
    H_CHECK(codec_decode_event(orig->value, orig->value_len, &ev, err, sizeof err) == 0, "%s", err);
    ev.user_id += k * H_REPLAY_ID_STEP;
    ev.ts_ms += (int64_t)k * 10 * 86400000;
    h_msg_set_event(&m[i], &ev, partitions, &buf);
  }
  codec_buf_free(&buf);
  return m;
}

static H_UNUSED void h_free_msgs(h_msg_t *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(m[i].key);
    free(m[i].value);
  }
  free(m);
}

typedef struct {
  h_msg_t *msgs;
  size_t acked, failed;
} h_prod_ctx_t;

static H_UNUSED void h_dr(void *ctx, const producer_report_t *r) {
  h_prod_ctx_t *pc = ctx;
  if (r->err) {
    pc->failed++;
    return;
  }
  pc->msgs[r->opaque].offset = r->offset;
  pc->acked++;
}

/* Produces msgs[lo..hi) to their partitions, optionally paced at rate
 * messages/s (0 = at once), and waits for every acknowledgement. */
static H_UNUSED void h_produce(const char *brokers, const char *topic, h_msg_t *msgs, size_t lo,
                      size_t hi, double rate) {
  h_prod_ctx_t pc = {.msgs = msgs};
  producer_opts_t po = {.brokers = brokers, .on_delivery = h_dr, .ctx = &pc};
  producer_t *p;
  char err[512];
  H_CHECK(producer_new(&po, &p, err, sizeof err) == 0, "%s", err);
  producer_topic_t *t = producer_topic(p, topic);
  double t0 = h_now();
  for (size_t i = lo; i < hi;) {
    if (rate > 0) {
      double due = t0 + (double)(i - lo) / rate;
      while (h_now() < due) producer_poll(p, 1);
    }
    int rc = producer_send(p, t, msgs[i].partition, msgs[i].key, msgs[i].key_len,
                           msgs[i].value, msgs[i].value_len, 0, NULL, 0, i);
    if (rc == IX_EFULL) {
      producer_poll(p, 10);
      continue;
    }
    H_CHECK(rc == 0, "produce failed");
    i++;
  }
  H_CHECK(producer_flush(p, 30000) == 0, "producer flush timed out");
  H_CHECK(pc.failed == 0 && pc.acked == hi - lo, "%zu acked, %zu failed", pc.acked, pc.failed);
  producer_destroy(p, 1000);
}

/* h_produce on a thread of its own, while the test drives daemons: fill in
 * the fields, h_feed_start, and h_feed_join before reading msgs' offsets. */
typedef struct {
  const char *brokers, *topic;
  h_msg_t *msgs;
  size_t lo, hi;
  double rate;
  pthread_t th;
} h_feed_t;

static H_UNUSED void *h_feed_main(void *arg) {
  h_feed_t *f = arg;
  h_produce(f->brokers, f->topic, f->msgs, f->lo, f->hi, f->rate);
  return NULL;
}

static H_UNUSED void h_feed_start(h_feed_t *f) {
  H_CHECK(pthread_create(&f->th, NULL, h_feed_main, f) == 0, "feeder thread");
}

static H_UNUSED void h_feed_join(h_feed_t *f) { pthread_join(f->th, NULL); }

/* interestd config for the broker at brokers: topics h_T("events") and
 * h_T("interests"), group h_T(group). extra: more INI lines (may be ""). */
static H_UNUSED void h_write_conf(const char *path, const char *brokers, const char *group,
                         const char *model, const char *extra) {
  FILE *f = fopen(path, "w");
  H_CHECK(f, "writing %s", path);
  fprintf(f,
          "[kafka]\nbrokers = %s\ngroup = %s\ninput_topic = %s\noutput_topic = %s\n"
          "[kafka.consumer]\nsession.timeout.ms = 6000\nheartbeat.interval.ms = 500\n"
          "fetch.wait.max.ms = 10\n"
          "[model]\npath = %s\n"
          "[metrics]\nlisten = 127.0.0.1\nport = 0\n"
          "[log]\nlevel = info\n%s\n",
          brokers, h_T(group), h_T("events"), h_T("interests"), model, extra);
  fclose(f);
}

static H_UNUSED int h_interestd_path(char *out, size_t size) {
  const char *bin = getenv("IX_BINARY_DIR");
  H_CHECK(bin, "IX_BINARY_DIR is not set");
  snprintf(out, size, "%s/daemon/interestd", bin);
  return access(out, X_OK);
}

/* Starts argv[0] with argv, stderr (and with_stdout: stdout too) to log,
 * the stop signals unblocked; killed with the test. */
static H_UNUSED pid_t h_spawn_argv(const char *const *argv, const char *log, int with_stdout) {
  /* a slot freed by h_wait_exit() is taken again */
  int slot = 0;
  while (slot < h_n_children && h_children[slot] > 0) slot++;
  H_CHECK(slot < (int)(sizeof h_children / sizeof h_children[0]),
          "more than %zu daemons running at once", sizeof h_children / sizeof h_children[0]);
  pid_t pid = fork();
  H_CHECK(pid >= 0, "fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log, "a", stderr);
    if (!f || (with_stdout && dup2(fileno(stderr), STDOUT_FILENO) < 0)) _exit(126);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  h_children[slot] = pid;
  if (slot == h_n_children) h_n_children++;
  return pid;
}

/* Starts interestd -c conf with stderr to log. */
static H_UNUSED pid_t h_spawn(const char *conf, const char *log) {
  char exe[1024];
  H_CHECK(h_interestd_path(exe, sizeof exe) == 0, "interestd not built at %s", exe);
  const char *argv[] = {exe, "-c", conf, NULL};
  return h_spawn_argv(argv, log, 0);
}

/* Waits for pid to exit within timeout_s; returns its exit status (0..255),
 * or -1 on timeout (the process is then killed), -2 when killed by a signal. */
static H_UNUSED int h_wait_exit(pid_t pid, double timeout_s) {
  double end = h_now() + timeout_s;
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (h_now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      status = -1;
      break;
    }
    h_sleep_ms(20);
  }
  for (int i = 0; i < h_n_children; i++)
    if (h_children[i] == pid) h_children[i] = 0;
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

static H_UNUSED char *h_read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return strdup("");
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = '\0';
  fclose(f);
  return s;
}

/* Partitions currently owned according to a daemon log ("assigned
 * partitions [..]" / "revoked partitions [..]" lines), as a bit mask. */
static H_UNUSED uint64_t h_owned_from_log(const char *log) {
  char *s = h_read_file(log);
  uint64_t mask = 0;
  for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
    int assign = strstr(line, "assigned partitions [") != NULL;
    int revoke = strstr(line, "revoked partitions [") || strstr(line, "lost partitions [");
    if (!assign && !revoke) continue;
    char *p = strstr(line, "partitions [") + strlen("partitions [");
    while (*p && *p != ']') {
      char *q = p;
      long v = strtol(p, &p, 10);
      if (p == q || v < 0 || v > 63) break;
      if (assign) mask |= 1ull << v;
      else mask &= ~(1ull << v);
      if (*p == ',') p++;
    }
  }
  free(s);
  return mask;
}

static H_UNUSED int h_wait_log(const char *log, const char *needle, double timeout_s) {
  double end = h_now() + timeout_s;
  while (h_now() < end) {
    char *s = h_read_file(log);
    int found = strstr(s, needle) != NULL;
    free(s);
    if (found) return 1;
    h_sleep_ms(50);
  }
  return 0;
}

/* The first line of log that contains needle, without its newline
 * (malloc'd), or NULL. */
static H_UNUSED char *h_log_line(const char *log, const char *needle) {
  char *text = h_read_file(log), *line = strstr(text, needle), *copy = NULL;
  if (line) {
    while (line > text && line[-1] != '\n') line--;
    size_t n = strcspn(line, "\n");
    copy = strndup(line, n);
  }
  free(text);
  return copy;
}

/* The metrics port from the daemon's log. */
static H_UNUSED int h_metrics_port(const char *log) {
  char *s = h_read_file(log);
  char *p = strstr(s, "metrics on http://127.0.0.1:");
  int port = p ? atoi(p + strlen("metrics on http://127.0.0.1:")) : 0;
  free(s);
  return port;
}

/* GET path from 127.0.0.1:port; returns the malloc'd response or NULL. */
static H_UNUSED char *h_http_get(int port, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
    len += (size_t)r;
    if (len + 1 == cap) buf = realloc(buf, cap *= 2);
  }
  buf[len] = '\0';
  close(fd);
  return buf;
}

/* Sum of a metric's samples (all label sets) in a Prometheus text body. */
static H_UNUSED double h_metric_sum(const char *body, const char *name) {
  double sum = 0;
  size_t nl = strlen(name);
  for (const char *p = body; (p = strstr(p, name)); p += nl) {
    if (p != body && p[-1] != '\n') continue;
    const char *q = p + nl;
    if (*q == '{') q = strchr(q, '}') + 1;
    else if (*q != ' ') continue;
    sum += strtod(q, NULL);
  }
  return sum;
}

/* The sum of a metric's samples on the /metrics page at port (fails the test
 * when the page cannot be read). */
static H_UNUSED double h_metric(int port, const char *name) {
  char *body = h_http_get(port, "/metrics");
  H_CHECK(body, "no /metrics on port %d", port);
  double v = h_metric_sum(body, name);
  free(body);
  return v;
}

/* The partition's low and high watermarks, asked of the broker. */
static H_UNUSED void h_watermarks(const char *brokers, const char *topic, int32_t p, int64_t *lo,
                                  int64_t *hi) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  H_CHECK(rk, "%s", err);
  rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, lo, hi, 10000);
  H_CHECK(!e, "watermarks: %s", rd_kafka_err2str(e));
  rd_kafka_destroy(rk);
}

/* The retention check of test_daemon_faults (mock: its size cap drops the
 * oldest batches) and tests/kafka/test_faults_kafka.c (DeleteRecords): the
 * group committed `committed` on partition 0, whose log now spans [lo, hi)
 * with lo > committed. Starts the daemon with conf (log: log) and checks
 * that within timeout_s it consumes the hi - lo events left, counts exactly
 * lo - committed in interestd_events_skipped_by_retention_total, and logs
 * one error line naming both offsets. Returns the running daemon's pid. */
static H_UNUSED pid_t h_check_retention_skip(const char *conf, const char *log, int64_t committed,
                                             int64_t lo, int64_t hi, double timeout_s) {
  pid_t pid = h_spawn(conf, log);
  H_CHECK(h_wait_log(log, "metrics on http", 60), "no metrics line (log %s)", log);
  int port = h_metrics_port(log);
  double consumed = 0, deadline = h_now() + timeout_s;
  while (h_now() < deadline &&
         (consumed = h_metric(port, "interestd_events_consumed_total")) < (double)(hi - lo))
    h_sleep_ms(200);
  H_CHECK(consumed == (double)(hi - lo), "consumed %g, want %" PRId64 " (log %s)", consumed,
          hi - lo, log);
  double skipped = h_metric(port, "interestd_events_skipped_by_retention_total");
  printf("retention: %.0f offsets counted as skipped, %" PRId64 " deleted unread\n", skipped,
         lo - committed);
  H_CHECK(skipped == (double)(lo - committed), "interestd_events_skipped_by_retention_total = %g, "
          "want %" PRId64 " (log %s)", skipped, lo - committed, log);
  char line[256];
  snprintf(line, sizeof line, "deleted by the broker's retention before they were read: "
           "expected offset %" PRId64 ", the log now starts at %" PRId64, committed, lo);
  H_CHECK(h_wait_log(log, line, 1), "no error line '%s' (log %s)", line, log);
  char *text = h_read_file(log);
  int lines = 0;
  for (const char *s = text; (s = strstr(s, "deleted by the broker's retention")); s++) lines++;
  free(text);
  H_CHECK(lines == 1, "%d retention error lines, want 1 (log %s)", lines, log);
  return pid;
}

/* Reads a topic (all partitions, from the start) into a record file until
 * count messages or timeout; returns the number read. */
static H_UNUSED uint64_t h_collect(const char *brokers, const char *topic, const char *out,
                          uint64_t count, int timeout_ms) {
  recorder_opts_t ro = {.brokers = brokers, .topic = topic, .output = out,
                        .from_offset = RECORDER_FROM_BEGINNING, .max_count = count,
                        .timeout_ms = timeout_ms};
  recorder_stats_t rs;
  char err[512];
  int rc = recorder_run(&ro, &rs, err, sizeof err);
  if (rc) fprintf(stderr, "recorder: %s\n", err);
  return rs.records;
}

/* Committed offset of (group, topic, partition); -1 when none. */
static H_UNUSED int64_t h_committed(const char *brokers, const char *group, const char *topic,
                           int32_t partition) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  H_CHECK(rk, "%s", err);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition);
  rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
  int64_t off = e ? -2 : l->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(rk);
  return off < 0 ? -1 : off;
}

/* The reference: the pipeline run offline over msgs[0..n) in order (each
 * partition's messages in offset order), predictions indexed like msgs
 * (preds[i].n_next == 0 with ok[i] == 0 for a rejected message). */
static H_UNUSED prediction_t *h_offline(const char *model_path, const h_msg_t *msgs, size_t n,
                               int *ok) {
  model_t *m;
  char err[512];
  H_CHECK(model_load(model_path, &m, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {0};
  emit_opts_t eo = {.policy = EMIT_EVERY, .top_n_change = 3};
  pipeline_t *p;
  H_CHECK(pipeline_new(m, &so, &eo, &p) == 0, "pipeline");
  prediction_t *out = calloc(n, sizeof *out);
  rec_t *recs = calloc(n, sizeof *recs);
  for (size_t i = 0; i < n; i++)
    recs[i] = (rec_t){.partition = msgs[i].partition, .offset = msgs[i].offset,
                      .key = msgs[i].key, .key_len = msgs[i].key_len,
                      .value = msgs[i].value, .value_len = msgs[i].value_len};
  for (size_t lo = 0; lo < n; lo += 256) {
    size_t k = n - lo < 256 ? n - lo : 256;
    pipeline_result_t res;
    H_CHECK(pipeline_process(p, recs + lo, k, 0, &res) == 0, "offline batch");
    for (size_t i = 0; i < k; i++) ok[lo + i] = 0;
    for (size_t j = 0; j < res.n_preds; j++) {
      out[lo + res.pred_src[j]] = res.preds[j];
      ok[lo + res.pred_src[j]] = 1;
    }
  }
  free(recs);
  pipeline_destroy(p);
  model_destroy(m);
  return out;
}

/* Interest fields and provenance equal (emit time differs by design). */
static H_UNUSED int h_same_prediction(const prediction_t *a, const prediction_t *b) {
  return a->user_id == b->user_id && a->src_partition == b->src_partition &&
         a->src_offset == b->src_offset && a->event_ts_ms == b->event_ts_ms &&
         a->n_events == b->n_events && a->fluctuation == b->fluctuation &&
         a->shift_prob == b->shift_prob && a->n_next == b->n_next && a->n_long == b->n_long &&
         a->n_rising == b->n_rising &&
         memcmp(a->next, b->next, a->n_next * sizeof a->next[0]) == 0 &&
         memcmp(a->longterm, b->longterm, a->n_long * sizeof a->longterm[0]) == 0 &&
         memcmp(a->rising, b->rising, a->n_rising * sizeof a->rising[0]) == 0;
}

/* Finds msgs index of (partition, offset); -1 when absent. msgs are in
 * per-partition offset order, so a linear index per partition works. */
typedef struct {
  size_t *idx[64];
  int64_t n[64];
} h_index_t;

static H_UNUSED void h_index_build(h_index_t *ix, const h_msg_t *msgs, size_t n) {
  memset(ix, 0, sizeof *ix);
  for (size_t i = 0; i < n; i++) {
    int32_t p = msgs[i].partition;
    if (msgs[i].offset + 1 > ix->n[p]) ix->n[p] = msgs[i].offset + 1;
  }
  for (int p = 0; p < 64; p++) {
    if (!ix->n[p]) continue;
    ix->idx[p] = malloc((size_t)ix->n[p] * sizeof(size_t));
    for (int64_t o = 0; o < ix->n[p]; o++) ix->idx[p][o] = (size_t)-1;
  }
  for (size_t i = 0; i < n; i++) ix->idx[msgs[i].partition][msgs[i].offset] = i;
}

static H_UNUSED long h_index_find(const h_index_t *ix, int32_t p, int64_t o) {
  if (p < 0 || p >= 64 || o < 0 || o >= ix->n[p]) return -1;
  size_t i = ix->idx[p][o];
  return i == (size_t)-1 ? -1 : (long)i;
}

static H_UNUSED void h_index_free(h_index_t *ix) {
  for (int p = 0; p < 64; p++) free(ix->idx[p]);
}

/* Reads a record file of predictions; checks each against the reference and
 * counts how many each input message got into counts[] (indexed like msgs). */
static H_UNUSED uint64_t h_check_output(const char *rec, const h_msg_t *msgs, size_t n,
                               const prediction_t *ref, const int *ok, uint32_t *counts,
                               int compare_values) {
  h_index_t ix;
  h_index_build(&ix, msgs, n);
  rec_reader_t *r;
  char err[512];
  H_CHECK(recfile_reader_open(rec, &r, err, sizeof err) == 0, "%s", err);
  rec_t x;
  uint64_t total = 0;
  while (recfile_read(r, &x) == 0) {
    prediction_t p;
    H_CHECK(codec_decode_prediction(x.value, x.value_len, &p, err, sizeof err) == 0,
            "output message: %s", err);
    long i = h_index_find(&ix, p.src_partition, p.src_offset);
    H_CHECK(i >= 0, "prediction for unknown input %d/%" PRId64, (int)p.src_partition,
            p.src_offset);
    H_CHECK(ok[i], "prediction for a rejected message %d/%" PRId64, (int)p.src_partition,
            p.src_offset);
    char key[32];
    snprintf(key, sizeof key, "%" PRIu64, p.user_id);
    H_CHECK(x.key_len == strlen(key) && memcmp(x.key, key, x.key_len) == 0,
            "output key is not the user id");
    if (compare_values)
      H_CHECK(h_same_prediction(&p, &ref[i]),
              "prediction for %d/%" PRId64 " (user %" PRIu64 ", n_events %u vs %u) differs "
              "from the offline pipeline", (int)p.src_partition, p.src_offset, p.user_id,
              p.n_events, ref[i].n_events);
    counts[i]++;
    total++;
  }
  recfile_reader_close(r);
  h_index_free(&ix);
  return total;
}

/* Reads `topic` into the record file `out` (at most max_out predictions a
 * pass) until every event of msgs[0, n) has a prediction or timeout_s pass,
 * each prediction checked against ref (h_check_output with values).
 * counts (n entries, the caller's) ends with each event's number of
 * predictions, *total with the predictions read. Returns the number of events
 * without a prediction. */
static H_UNUSED size_t h_await_output(const char *brokers, const char *topic, const char *out,
                                      const h_msg_t *msgs, size_t n, const prediction_t *ref,
                                      const int *ok, uint64_t max_out, double timeout_s,
                                      uint32_t *counts, uint64_t *total) {
  size_t missing = n;
  *total = 0;
  for (double end = h_now() + timeout_s; missing && h_now() < end;) {
    h_collect(brokers, topic, out, max_out, 3000);
    memset(counts, 0, n * sizeof *counts);
    *total = h_check_output(out, msgs, n, ref, ok, counts, 1);
    missing = 0;
    for (size_t i = 0; i < n; i++) missing += counts[i] == 0;
  }
  return missing;
}

/* The number of predictions beyond the first per event. */
static H_UNUSED size_t h_duplicates(const uint32_t *counts, size_t n) {
  size_t dups = 0;
  for (size_t i = 0; i < n; i++) dups += counts[i] > 1 ? counts[i] - 1 : 0;
  return dups;
}

/* The value of one sample line "name{labels} value" (series: the text up to
 * the value, e.g. "interestd_state_restores_total{source=\"cold\"} ") on
 * the /metrics page of the daemon whose log is `log`; -1 when absent. */
static H_UNUSED double h_metric_of(const char *log, const char *series) {
  int port = h_metrics_port(log);
  H_CHECK(port > 0, "no metrics port in %s", log);
  char *pg = h_http_get(port, "/metrics");
  char line[256];
  snprintf(line, sizeof line, "\n%s", series); /* a sample, not its # HELP line */
  const char *p = pg ? strstr(pg, line) : NULL;
  double v = p ? atof(p + strlen(line)) : -1;
  free(pg);
  return v;
}

/* Waits up to timeout_s until every event of msgs[0, upto) has a prediction
 * in h_T("interests"), each equal to the offline pipeline's over
 * msgs[0, upto) with model (and none for another input); fails the test
 * naming log otherwise. Reads at most max_out predictions per pass. */
static H_UNUSED void h_expect_answered(const char *brokers, const char *model,
                                       const h_msg_t *msgs, size_t upto, uint64_t max_out,
                                       double timeout_s, const char *log) {
  int *ok = calloc(upto, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, upto, ok);
  uint32_t *counts = calloc(upto, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, h_T("interests"), h_path("out.rec"), msgs, upto, ref,
                                  ok, max_out, timeout_s, counts, &total);
  H_CHECK(missing == 0, "%zu of %zu events have no prediction (log %s)", missing, upto, log);
  free(ok);
  free(ref);
  free(counts);
}

#endif
