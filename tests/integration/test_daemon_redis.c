/* interestd with the Redis sink against the mock cluster and a real
 * redis-server (append-only, fsync before each reply, so a SIGKILL keeps
 * what it acknowledged): the 100k bundled Taobao events.
 *  1. two thirds in; Redis is SIGKILLed mid-stream (after a sixth's writes);
 *  2. consumption pauses after the bounded backlog (redis.max_backlog),
 *     /healthz says 503 "redis sink down", interestd_redis_up is 0, the
 *     daemon stays up, and every input below a committed offset has its
 *     user in Redis at that offset or later (read from a copy of Redis's
 *     append-only file by a second server);
 *  3. Redis restarted, last third produced: consumption resumes by itself,
 *     all predictions arrive, and every user's Redis value (HGET v) is
 *     byte for byte the user's last prediction on the topic (highest input
 *     offset), with o = that offset;
 *  4. GET /v1/users/<id> equals each user's last prediction on the topic;
 *     after a second process joins, users of its partitions get 404 naming
 *     the partition; SIGTERM then commits everything.
 * Without redis-server on PATH the test says so and exits 77 (skipped). */
#include "daemon_harness.h"
#include "redis_harness.h"

#define N_EVENTS 100000
#define PARTS 16
#define MAX_BACKLOG 2000

typedef struct {
  uint64_t user;
  int64_t offset;
  int32_t partition;
  size_t len;
  char *value;
} last_t;

static int cmp_user(const void *a, const void *b) {
  const last_t *x = a, *y = b;
  return x->user < y->user ? -1 : x->user > y->user;
}

/* GET path: the status, and the body (malloc'd, *len bytes; binary-safe). */
static int get_body(int port, const char *path, char **body, size_t *len) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  H_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to %d", port);
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  H_CHECK(write(fd, req, (size_t)n) == n, "write");
  size_t cap = 1 << 16, got = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while ((r = read(fd, buf + got, cap - got)) > 0) got += (size_t)r;
  close(fd);
  char *end = memmem(buf, got, "\r\n\r\n", 4);
  H_CHECK(end, "no response head");
  int status = atoi(buf + 9);
  *len = got - (size_t)(end + 4 - buf);
  *body = malloc(*len + 1);
  memcpy(*body, end + 4, *len);
  (*body)[*len] = '\0';
  free(buf);
  return status;
}

int main(void) {
  if (!r_have_redis()) {
    printf("SKIP: redis-server is not on PATH\n");
    return 77;
  }
  h_init("test_daemon_redis");
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  size_t third = N_EVENTS / 3;

  int rport = r_free_port();
  const char *rdir = h_path("redis");
  mkdir(rdir, 0700);
  pid_t rpid = r_start(rport, rdir, NULL);
  H_CHECK(rpid > 0, "redis-server did not start");

  const char *model = h_path("model.ixm");
  h_write_model(model, 7);
  const char *conf = h_path("interestd.conf");
  char extra[512];
  snprintf(extra, sizeof extra,
           "[input]\npartitioner = murmur2\n"
           "[redis]\naddress = 127.0.0.1:%d\nkey_prefix = t:\nmax_backlog = %d\n"
           "[kafka.consumer]\nauto.commit.interval.ms = 500\n", rport, MAX_BACKLOG);
  h_write_conf(conf, brokers, "redis", model, extra);
  const char *log = h_path("interestd.log");
  pid_t pid = h_spawn(conf, log);

  /* 1. two thirds in; Redis is killed mid-stream, with writes in flight */
  h_produce(brokers, "events", msgs, 0, 2 * third, 0);
  int port = 0;
  for (int i = 0; i < 600 && (port = h_metrics_port(log)) <= 0; i++) h_sleep_ms(100);
  H_CHECK(port > 0, "no metrics port in %s", log);
  double written = 0;
  for (int i = 0;
       i < 1200 && (written = h_metric(port, "interestd_redis_writes_total")) < third / 2; i++)
    h_sleep_ms(50);
  H_CHECK(written >= third / 2, "only %.0f Redis writes (log %s)", written, log);
  r_kill(rpid);
  printf("Redis killed after %.0f writes\n", written);

  /* 2. Redis away: consumption stops once the backlog reaches its bound (it
   * may already be paused at the kill: Redis fsyncing every write is slower
   * than the input, so the sink paused and resumed all along) */
  double consumed1 = 0, consumed2 = -1, backlog2 = 0;
  for (int i = 0; i < 20 && consumed1 != consumed2; i++) {
    consumed1 = h_metric(port, "interestd_events_consumed_total");
    h_sleep_ms(1500); /* auto-commit runs every 500 ms: time to (wrongly) commit */
    consumed2 = h_metric(port, "interestd_events_consumed_total");
  }
  backlog2 = h_metric(port, "interestd_redis_backlog");
  printf("Redis down: backlog %.0f, consumed %.0f then %.0f 1.5 s later (of %zu produced)\n",
         backlog2, consumed1, consumed2, 2 * third);
  H_CHECK(backlog2 > 0, "nothing waits for Redis");
  H_CHECK(consumed2 == consumed1, "consumption did not pause (%.0f -> %.0f)", consumed1,
          consumed2);
  H_CHECK(consumed2 < (double)(2 * third), "everything was consumed: no pause");
  H_CHECK(backlog2 < MAX_BACKLOG + 4 * 256 + 256, "backlog %.0f beyond its bound", backlog2);
  H_CHECK(h_metric(port, "interestd_redis_up") == 0, "interestd_redis_up not 0");
  char *hz = h_http_get(port, "/healthz");
  H_CHECK(hz && strstr(hz, " 503 ") && strstr(hz, "redis sink down"), "healthz: %s", hz);
  printf("healthz: %s", strstr(hz, "redis sink down"));
  free(hz);
  H_CHECK(waitpid(pid, NULL, WNOHANG) == 0, "interestd exited while Redis was down");
  /* nothing committed that Redis had not acknowledged: what it acknowledged
   * is its append-only file (fsync before each reply); a second server reads
   * a copy of it, and for every input below a partition's committed offset
   * the user's stored offset o must be at least that input's */
  int64_t committed[PARTS];
  for (int p = 0; p < PARTS; p++) committed[p] = h_committed(brokers, "redis", "events", p);
  char cmd[1024];
  const char *copy = h_path("redis-copy");
  snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", rdir, copy);
  H_CHECK(system(cmd) == 0, "%s", cmd);
  int cport = r_free_port();
  pid_t cpid = r_start(cport, copy, NULL);
  H_CHECK(cpid > 0, "the copy's redis-server did not start");
  redisContext *cc = redisConnect("127.0.0.1", cport);
  H_CHECK(cc && !cc->err, "connecting to the copy");
  size_t covered = 0;
  int64_t sum_committed = 0;
  for (int p = 0; p < PARTS; p++) sum_committed += committed[p] > 0 ? committed[p] : 0;
  for (size_t i = 0; i < 2 * third; i++) {
    if (msgs[i].offset >= committed[msgs[i].partition]) continue;
    redisReply *r = redisCommand(cc, "HGET t:%b o", msgs[i].key, msgs[i].key_len);
    H_CHECK(r && r->type == REDIS_REPLY_STRING, "input %d/%" PRId64 " is committed (%" PRId64
            ") but user %.*s is not in Redis", (int)msgs[i].partition, msgs[i].offset,
            committed[msgs[i].partition], (int)msgs[i].key_len, msgs[i].key);
    H_CHECK(strtoll(r->str, NULL, 10) >= msgs[i].offset, "input %d/%" PRId64 " is committed "
            "but Redis holds user %.*s at offset %s", (int)msgs[i].partition, msgs[i].offset,
            (int)msgs[i].key_len, msgs[i].key, r->str);
    freeReplyObject(r);
    covered++;
  }
  redisFree(cc);
  r_kill(cpid);
  printf("committed while Redis is down: %" PRId64 " inputs; each one's user is in Redis at that "
         "offset or later (%zu checked)\n", sum_committed, covered);
  H_CHECK(covered > 0, "nothing committed before the kill: the check checked nothing");

  /* 3. Redis back (same append-only file), the last third */
  rpid = r_start(rport, rdir, NULL);
  H_CHECK(rpid > 0, "redis-server did not restart");
  double resumed = consumed2;
  for (int i = 0; i < 600 && resumed == consumed2; i++) {
    h_sleep_ms(100);
    resumed = h_metric(port, "interestd_events_consumed_total");
  }
  H_CHECK(resumed > consumed2, "consumption did not resume (log %s)", log);
  h_produce(brokers, "events", msgs, 2 * third, N_EVENTS, 0);
  printf("Redis restarted: consumption resumed by itself\n");
  const char *out = h_path("out.rec");
  uint64_t got = h_collect(brokers, "interests", out, N_EVENTS, 180000);
  H_CHECK(got >= N_EVENTS, "%" PRIu64 " predictions of %d (log %s)", got, N_EVENTS, log);
  for (int i = 0; i < 300 && (h_metric(port, "interestd_redis_backlog") > 0 ||
                              h_metric(port, "interestd_redis_up") != 1); i++)
    h_sleep_ms(100);
  H_CHECK(h_metric(port, "interestd_redis_backlog") == 0, "Redis backlog not drained");
  hz = h_http_get(port, "/healthz");
  H_CHECK(hz && strstr(hz, " 200 "), "healthz after the restart: %s", hz);
  free(hz);

  /* every user's last prediction on the topic (highest input offset) */
  rec_reader_t *rr;
  char err[512];
  H_CHECK(recfile_reader_open(out, &rr, err, sizeof err) == 0, "%s", err);
  size_t cap = 1 << 17, n = 0;
  last_t *all = malloc(cap * sizeof *all);
  rec_t x;
  while (recfile_read(rr, &x) == 0) {
    prediction_t p;
    H_CHECK(codec_decode_prediction(x.value, x.value_len, &p, err, sizeof err) == 0, "%s", err);
    if (n == cap) all = realloc(all, (cap *= 2) * sizeof *all);
    all[n] = (last_t){.user = p.user_id, .offset = p.src_offset, .partition = p.src_partition,
                      .len = x.value_len, .value = malloc(x.value_len)};
    memcpy(all[n].value, x.value, x.value_len);
    n++;
  }
  recfile_reader_close(rr);
  qsort(all, n, sizeof *all, cmp_user); /* not stable: pick the highest offset below */
  redisContext *c = redisConnect("127.0.0.1", rport);
  H_CHECK(c && !c->err, "connecting to redis");
  size_t users = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i, best = i;
    for (; j < n && all[j].user == all[i].user; j++)
      if (all[j].offset > all[best].offset) best = j;
    redisReply *r = redisCommand(c, "HMGET t:%" PRIu64 " v o", all[i].user);
    H_CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "HMGET");
    H_CHECK(r->element[0]->type == REDIS_REPLY_STRING, "user %" PRIu64 " missing in Redis",
            all[i].user);
    H_CHECK((size_t)r->element[0]->len == all[best].len &&
                memcmp(r->element[0]->str, all[best].value, all[best].len) == 0,
            "user %" PRIu64 ": Redis value differs from the last prediction on the topic "
            "(offset %" PRId64 ", Redis has o=%s)", all[i].user, all[best].offset,
            r->element[1]->str);
    H_CHECK(strtoll(r->element[1]->str, NULL, 10) == all[best].offset, "o");
    freeReplyObject(r);
    users++;
    i = j;
  }
  redisReply *r = redisCommand(c, "DBSIZE");
  printf("Redis restarted: %zu users, each one's Redis value is its last prediction on the "
         "topic; DBSIZE %lld; stale refusals %.0f, writes resent %.0f\n", users,
         r->integer, h_metric(port, "interestd_redis_stale_writes_total"),
         h_metric(port, "interestd_redis_write_failures_total"));
  H_CHECK((size_t)r->integer == users, "DBSIZE %lld, users %zu", r->integer, users);
  freeReplyObject(r);
  redisFree(c);

  /* GET /v1/users/<id>: the last prediction on the topic, from the state */
  size_t same = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i, best = i;
    for (; j < n && all[j].user == all[i].user; j++)
      if (all[j].offset > all[best].offset) best = j;
    char path[64], *body;
    size_t blen;
    snprintf(path, sizeof path, "/v1/users/%" PRIu64, all[i].user);
    int st = get_body(port, path, &body, &blen);
    H_CHECK(st == 200, "GET %s: %d %s", path, st, body);
    prediction_t got_p, want_p;
    H_CHECK(codec_decode_prediction(body, blen, &got_p, err, sizeof err) == 0, "%s: %s", path,
            err);
    H_CHECK(codec_decode_prediction(all[best].value, all[best].len, &want_p, err,
                                    sizeof err) == 0, "%s", err);
    H_CHECK(h_same_prediction(&got_p, &want_p), "GET %s differs from the last prediction on "
            "the topic (offset %" PRId64 " vs %" PRId64 ")", path, got_p.src_offset,
            want_p.src_offset);
    free(body);
    same++;
    i = j;
  }
  printf("GET /v1/users/<id>: all %zu users equal their last prediction on the topic "
         "(interest fields and provenance; emit time is the request's)\n", same);

  /* a second process joins: users of the partitions it took get 404 naming them */
  const char *log2 = h_path("interestd2.log");
  pid_t pid2 = h_spawn(conf, log2);
  H_CHECK(h_wait_log(log, "revoked partitions [", 60), "no rebalance (log %s)", log);
  uint64_t mine = h_owned_from_log(log);
  H_CHECK(mine != 0 && mine != (1ull << PARTS) - 1, "owned mask %" PRIx64, mine);
  int checked404 = 0;
  for (size_t i = 0; i < N_EVENTS && checked404 < 20; i++) {
    int32_t part = msgs[i].partition;
    if (mine & (1ull << part)) continue;
    char path[64], *body, want[64];
    size_t blen;
    snprintf(path, sizeof path, "/v1/users/%.*s", (int)msgs[i].key_len, msgs[i].key);
    int st = get_body(port, path, &body, &blen);
    snprintf(want, sizeof want, "is in partition %d of events", (int)part);
    H_CHECK(st == 404 && strstr(body, want), "GET %s: %d %s (want 404 naming partition %d)",
            path, st, body, (int)part);
    if (checked404 == 0) printf("GET %s after the rebalance: 404 %s", path, body);
    free(body);
    checked404++;
  }
  H_CHECK(checked404 > 0, "no user of another process's partition");
  kill(pid2, SIGTERM);
  int status2 = h_wait_exit(pid2, 30.0);
  if (status2 != 0) {
    char *text = h_read_file(log2);
    size_t tl = text ? strlen(text) : 0;
    fprintf(stderr, "second daemon's log, last lines:\n%s\n", text ? text + (tl > 3000 ? tl - 3000 : 0) : "");
    free(text);
  }
  H_CHECK(status2 == 0, "second daemon exit status %d (log %s)", status2, log2);

  /* SIGTERM: everything committed */
  kill(pid, SIGTERM);
  int status = h_wait_exit(pid, 20.0);
  H_CHECK(status == 0, "exit status %d (log %s)", status, log);
  int64_t per_part[PARTS] = {0};
  for (size_t i = 0; i < N_EVENTS; i++)
    if (msgs[i].offset + 1 > per_part[msgs[i].partition])
      per_part[msgs[i].partition] = msgs[i].offset + 1;
  for (int p = 0; p < PARTS; p++) {
    int64_t cm = h_committed(brokers, "redis", "events", p);
    H_CHECK(cm == per_part[p], "partition %d committed %" PRId64 ", want %" PRId64, p, cm,
            per_part[p]);
  }
  printf("SIGTERM: every input offset committed\n");
  for (size_t i = 0; i < n; i++) free(all[i].value);
  free(all);
  r_kill(rpid);
  h_free_msgs(msgs, N_EVENTS);
  mockbroker_destroy(mb);
  printf("PASS\n");
  return 0;
}
