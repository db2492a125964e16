/* A changelog checkpoint encoded in slices (daemon/clog.c; docs/STATE.md,
 * "Incremental encoding") while events keep changing the users it took, on
 * librdkafka's mock cluster, without a daemon: the test plays the pipeline
 * (clog_skip / clog_applied around each event) and the eviction hook.
 *
 * A user's state records the events applied to it (count, last offset, a
 * hash chain of the offsets), so a record carries its own truth. Checked:
 *  - no user record is on the topic while an encoded user's last event is
 *    not acknowledged (acked held at the checkpoint's offset);
 *  - each checkpoint writes every user it took exactly once (none lost,
 *    none twice), each record's offset is the last event in its state;
 *  - a user evicted before its turn is written with its state at eviction;
 *  - restoring from the changelog and replaying the input from the
 *    completion's offset (skipping what the restore says) gives every user
 *    the state the writer has. */
#include "daemon_harness.h"

#include "daemon/clog.h"
#include "daemon/metrics.h"
#include "state/changelog.h"
#include "stream/changelog_topic.h"

#define FP 0x7e57c10du
#define P 0          /* the partition under test (the topic has 2) */
#define USERS 20000  /* changed before the first checkpoint */
#define EVENTS0 40000

typedef struct {
  uint64_t user;
  uint64_t count;
  int64_t last;
  uint64_t chain;
} blob_t;

typedef struct {
  uint64_t user;
} tev_t;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static tev_t *events;
static size_t n_events, cap_events;
static uint8_t was_evicted[USERS * 2]; /* its state restarted cold after the eviction */
static int64_t acked_next; /* the test's "predictions acknowledged before here" */
static int64_t durable_next = -1;

static int64_t acked_cb(void *ctx, int32_t p) {
  (void)ctx;
  return p == P ? acked_next : -1;
}
static void durable_cb(void *ctx, int32_t p, int64_t next) {
  (void)ctx;
  if (p == P) durable_next = next;
}

/* the pipeline's part: event at offset `off` of user u into st through c's hooks */
static void apply(clog_t *c, store_t *st, uint64_t u, int64_t off) {
  if (clog_skip(c, P, u, off)) return;
  int created = 0;
  blob_t *b = store_get(st, P, u, off, 1, &created);
  H_CHECK(b, "store_get");
  if (created) memset(b, 0, sizeof *b), b->user = u;
  b->count++;
  b->last = off;
  b->chain = (b->chain ^ (uint64_t)off) * 0x100000001B3ull;
  clog_applied(c, P, u, off);
}

static int64_t feed(clog_t *c, store_t *st, uint64_t u) {
  if (n_events == cap_events) {
    cap_events = cap_events ? cap_events * 2 : 1 << 16;
    events = realloc(events, cap_events * sizeof *events);
    H_CHECK(events, "realloc");
  }
  events[n_events].user = u;
  apply(c, st, u, (int64_t)n_events);
  return (int64_t)n_events++;
}

/* the store's eviction, as store_evict does it: the hook, then the removal */
static void evict(clog_t *c, store_t *st, uint64_t u) {
  if (!store_peek(st, P, u)) return;
  was_evicted[u] = 1;
  clog_evicted(c, P, u);
  H_CHECK(store_remove(st, P, u) == 1, "store_remove");
}

/* ---- the records on the topic ---- */
typedef struct {
  int64_t off;       /* topic offset */
  int complete;
  int tombstone;
  changelog_rec_t rec;
  blob_t blob;
} trec_t;

static trec_t *recs;
static size_t n_recs, cap_recs;

static int collect(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl) {
  (void)ctx;
  if (n_recs == cap_recs) {
    cap_recs = cap_recs ? cap_recs * 2 : 4096;
    recs = realloc(recs, cap_recs * sizeof *recs);
    H_CHECK(recs, "realloc");
  }
  trec_t *r = &recs[n_recs++];
  memset(r, 0, sizeof *r);
  r->off = off;
  if (!v || !vl) {
    r->tombstone = 1;
    H_CHECK(kl == CHANGELOG_KEY_BYTES, "tombstone key");
    const uint8_t *kb = k;
    for (int i = 0; i < 8; i++) r->rec.user_id = r->rec.user_id << 8 | kb[1 + i];
    return 0;
  }
  char why[200];
  H_CHECK(changelog_decode(k, kl, v, vl, &r->rec, why, sizeof why) == 0, "record %" PRId64 ": %s",
          off, why);
  r->complete = r->rec.kind == CHANGELOG_COMPLETE;
  if (!r->complete) {
    H_CHECK(r->rec.blob_size == sizeof(blob_t), "blob size %u", r->rec.blob_size);
    memcpy(&r->blob, r->rec.blob, sizeof r->blob);
    r->rec.blob = NULL;
  }
  return 0;
}

static void read_topic(const char *brokers, const char *topic) {
  free(recs);
  recs = NULL;
  n_recs = cap_recs = 0;
  char err[512];
  uint64_t nr, nb;
  H_CHECK(changelog_topic_read(brokers, NULL, topic, P, 30000, collect, NULL, &nr, &nb, err,
                               sizeof err) == 0, "%s", err);
}

/* events of user u at offsets <= upto, for many (u, upto) at once: one
 * sweep of the input with the queries sorted by offset */
typedef struct {
  uint64_t user;
  int64_t upto;
  uint64_t count;
  size_t rec;
} query_t;

static int by_upto(const void *a, const void *b) {
  const query_t *x = a, *y = b;
  return (x->upto > y->upto) - (x->upto < y->upto);
}

static void count_events(query_t *q, size_t n, uint64_t n_users) {
  qsort(q, n, sizeof *q, by_upto);
  uint64_t *cnt = calloc(n_users, sizeof *cnt);
  H_CHECK(cnt, "calloc");
  int64_t o = 0;
  for (size_t i = 0; i < n; i++) {
    for (; o <= q[i].upto && o < (int64_t)n_events; o++)
      if (events[o].user < n_users) cnt[events[o].user]++;
    q[i].count = q[i].user < n_users ? cnt[q[i].user] : 0;
  }
  free(cnt);
}

/* The records between the completion records number k-1 and k (k from 1)
 * are checkpoint k's: every user in want[] (1 = must be written) exactly
 * once, each record's offset the last event in its state, and that state
 * the one the events up to it give (count of the user's events). */
static size_t check_checkpoint(int k, const uint8_t *want, uint64_t n_want, int64_t at,
                               int64_t *max_r) {
  size_t from = 0, to = 0;
  int seen_c = 0;
  for (size_t i = 0; i < n_recs; i++)
    if (recs[i].complete) {
      if (++seen_c == k - 1) from = i + 1;
      if (seen_c == k) {
        to = i;
        break;
      }
    }
  H_CHECK(seen_c == k, "%d completion records on the topic, checkpoint %d expected", seen_c, k);
  H_CHECK(recs[to].rec.offset == at, "completion %d at %" PRId64 ", expected %" PRId64, k,
          recs[to].rec.offset, at);
  uint8_t *got = calloc(n_want ? n_want : 1, 1);
  H_CHECK(got, "calloc");
  size_t users = 0;
  *max_r = -1;
  query_t *q = calloc(to - from + 1, sizeof *q);
  size_t nq = 0;
  H_CHECK(q, "calloc");
  for (size_t i = from; i < to; i++) {
    const trec_t *r = &recs[i];
    if (r->tombstone) continue;
    uint64_t u = r->rec.user_id;
    H_CHECK(u < n_want, "user %" PRIu64 " written, never changed", u);
    H_CHECK(!got[u], "checkpoint %d wrote user %" PRIu64 " twice", k, u);
    got[u] = 1;
    users++;
    H_CHECK(r->blob.user == u, "user %" PRIu64 "'s record holds user %" PRIu64, u, r->blob.user);
    H_CHECK(r->rec.offset == r->blob.last,
            "checkpoint %d: user %" PRIu64 "'s record carries offset %" PRId64 " but its state's "
            "last event is at %" PRId64, k, u, r->rec.offset, r->blob.last);
    /* an evicted user may come back while the checkpoint encodes: its turn
     * then writes its state since the comeback (the owner's), though it was
     * not held when the test listed what the checkpoint must write */
    H_CHECK(want[u] || was_evicted[u], "checkpoint %d wrote user %" PRIu64 ", which it did not "
            "take", k, u);
    q[nq++] = (query_t){u, r->rec.offset, 0, i};
    if (r->rec.offset > *max_r) *max_r = r->rec.offset;
  }
  count_events(q, nq, n_want);
  for (size_t i = 0; i < nq; i++)
    H_CHECK(was_evicted[q[i].user] || q[i].count == recs[q[i].rec].blob.count,
            "checkpoint %d: user %" PRIu64 " at offset %" PRId64 ": %" PRIu64 " events in its "
            "state, %" PRIu64 " in the input up to there", k, q[i].user, q[i].upto,
            recs[q[i].rec].blob.count, q[i].count);
  free(q);
  uint64_t lost = 0, first_lost = 0;
  for (uint64_t u = 0; u < n_want; u++)
    if (want[u] && !got[u] && !lost++) first_lost = u;
  H_CHECK(lost == 0, "checkpoint %d lost %" PRIu64 " users (user %" PRIu64 " first)", k, lost,
          first_lost);
  free(got);
  return users;
}

static void pump_until_done(clog_t *c, store_t *st, int64_t at, int extra_events,
                            uint64_t user_span, size_t *pumps) {
  double t0 = h_now();
  while (durable_next < at) {
    clog_pump(c, st, FP, acked_cb, durable_cb, NULL);
    (*pumps)++;
    for (int i = 0; i < extra_events; i++) feed(c, st, next_rand() % user_span);
    if (!clog_busy(c)) {
      acked_next = (int64_t)n_events; /* everything fed so far is acknowledged */
      usleep(1000);
    }
    H_CHECK(h_now() - t0 < 120, "checkpoint at %" PRId64 " not durable after 120 s", at);
  }
}

int main(void) {
  h_init("test_clog_incremental");
  char err[512];
  mockbroker_t *mb;
  H_CHECK(mockbroker_new(1, &mb, err, sizeof err) == 0, "%s", err);
  const char *brokers = mockbroker_bootstraps(mb);
  H_CHECK(mockbroker_create_topic(mb, "input", 2, err, sizeof err) == 0, "%s", err);
  H_CHECK(mockbroker_create_topic(mb, "state", 2, err, sizeof err) == 0, "%s", err);
  metrics_t *m;
  H_CHECK(metrics_new(&m) == 0, "metrics");
  /* 20 us slices: the checkpoint's 20000 users take a few hundred pumps */
  clog_opts_t co = {.brokers = brokers, .topic = "state", .input_topic = "input", .metrics = m,
                    .props = (const char *const[]){"linger.ms=5", NULL}, .slice_us = 20};
  clog_t *c;
  H_CHECK(clog_new(&co, &c, err, sizeof err) == 0, "%s", err);
  store_opts_t so = {.blob_size = sizeof(blob_t)};
  store_t *st;
  H_CHECK(store_new(&so, &st) == 0, "store");
  clog_start_cold(c, P);

  /* users 0..USERS-1 change; checkpoint 1 takes them at EVENTS0 */
  for (int i = 0; i < EVENTS0; i++) feed(c, st, (uint64_t)i % USERS);
  uint8_t *want1 = calloc(USERS * 2, 1);
  for (uint64_t u = 0; u < USERS; u++) want1[u] = 1;
  int64_t at1 = (int64_t)n_events;
  acked_next = at1;
  H_CHECK(clog_checkpoint(c, P, st, FP, at1) == 0, "clog_checkpoint");
  H_CHECK(clog_busy(c), "a checkpoint of %d users is not being encoded in slices", USERS);
  /* while it encodes: events to taken users and new ones (USERS..2*USERS-1),
   * and evictions of taken users not encoded yet (high ids: encoded last or
   * not; either way written with the state they had) */
  size_t pumps = 0, during = 0;
  uint64_t evicted = 0, evicted_users[64];
  int64_t evicted_last[64];
  while (clog_busy(c) && pumps < 100000) {
    clog_pump(c, st, FP, acked_cb, durable_cb, NULL);
    pumps++;
    for (int i = 0; i < 40; i++, during++) feed(c, st, next_rand() % (USERS * 2));
    if (pumps % 5 == 0 && evicted < 64) {
      uint64_t u = USERS - 1 - evicted * 7;
      const blob_t *b = store_peek(st, P, u);
      if (b) {
        evicted_users[evicted] = u;
        evicted_last[evicted++] = b->last;
        evict(c, st, u);
      }
    }
  }
  H_CHECK(!clog_busy(c), "still encoding after %zu pumps", pumps);
  printf("checkpoint 1: %d users taken at offset %" PRId64 ", encoded over %zu pumps while %zu "
         "events were applied, %" PRIu64 " taken users evicted meanwhile\n", USERS, at1, pumps,
         during, evicted);
  H_CHECK(pumps >= 10, "encoded in %zu pumps: not in slices", pumps);
  /* acked still at the checkpoint's offset: users encoded after the start
   * carry later events, whose predictions are not acknowledged */
  for (int i = 0; i < 50; i++) {
    clog_pump(c, st, FP, acked_cb, durable_cb, NULL);
    usleep(2000);
  }
  read_topic(brokers, "state");
  H_CHECK(n_recs == 0, "%zu records on the topic before the predictions they cover were "
          "acknowledged", n_recs);
  pump_until_done(c, st, at1, 0, USERS * 2, &pumps);
  read_topic(brokers, "state");
  int64_t max_r;
  size_t w1 = check_checkpoint(1, want1, USERS * 2, at1, &max_r);
  printf("checkpoint 1 durable: %zu user records, offsets up to %" PRId64 " (%s the checkpoint's "
         "%" PRId64 ")\n", w1, max_r, max_r >= at1 ? "past" : "before", at1);
  H_CHECK(max_r >= at1, "no user encoded with an event after the start: the test did not "
          "exercise users changed during the encoding");
  /* the evicted ones (taken, so written: check_checkpoint counts them):
   * with their state at eviction, or an earlier one when their turn came
   * before it, never one before the checkpoint's start */
  for (uint64_t i = 0; i < evicted; i++) {
    const trec_t *r = NULL;
    for (size_t j = 0; j < n_recs; j++)
      if (!recs[j].complete && !recs[j].tombstone && recs[j].rec.user_id == evicted_users[i])
        r = &recs[j];
    int64_t before = -1;
    for (int64_t o = 0; o < at1; o++)
      if (events[o].user == evicted_users[i]) before = o;
    H_CHECK(r && r->rec.offset <= evicted_last[i] && r->rec.offset >= before,
            "user %" PRIu64 ", evicted while the checkpoint encoded, written at %" PRId64
            ", its last event was %" PRId64 " (before the start: %" PRId64 ")", evicted_users[i],
            r ? r->rec.offset : -2, evicted_last[i], before);
  }

  /* checkpoint 2: the users changed since checkpoint 1 took its users are
   * due (those with an event at or after at1) */
  for (int i = 0; i < 5000; i++) feed(c, st, next_rand() % (USERS * 2));
  int64_t at2 = (int64_t)n_events;
  uint8_t *want2 = calloc(USERS * 2, 1);
  for (int64_t o = at1; o < at2; o++)
    if (store_peek(st, P, events[o].user)) want2[events[o].user] = 1;
  acked_next = at2;
  H_CHECK(clog_checkpoint(c, P, st, FP, at2) == 0, "clog_checkpoint 2");
  pump_until_done(c, st, at2, 20, USERS * 2, &pumps);
  read_topic(brokers, "state");
  size_t w2 = check_checkpoint(2, want2, USERS * 2, at2, &max_r);
  printf("checkpoint 2 at %" PRId64 ": %zu user records, offsets up to %" PRId64 "\n", at2, w2,
         max_r);
  /* more events after the last completion: the restore replays them */
  for (int i = 0; i < 3000; i++) feed(c, st, next_rand() % (USERS * 2));
  clog_destroy(c, 2000);

  /* a new owner: restore from the changelog, replay from the completion */
  clog_t *c2;
  H_CHECK(clog_new(&co, &c2, err, sizeof err) == 0, "%s", err);
  store_t *st2;
  H_CHECK(store_new(&so, &st2) == 0, "store");
  clog_source_t src;
  int64_t next;
  H_CHECK(clog_assign(c2, P, st2, FP, -1, -1, &src, &next, err, sizeof err) == 0, "%s", err);
  H_CHECK(src == CLOG_FROM_CHANGELOG && next == at2, "restored from source %d at %" PRId64
          ", expected the changelog at %" PRId64, (int)src, next, at2);
  for (int64_t o = next; o < (int64_t)n_events; o++) apply(c2, st2, events[o].user, o);
  uint64_t checked = 0, bad = 0, first_bad = 0;
  for (uint64_t u = 0; u < USERS * 2; u++) {
    if (was_evicted[u]) continue; /* no tombstone yet: the restore keeps its record */
    const blob_t *a = store_peek(st, P, u), *b = store_peek(st2, P, u);
    if (!a && !b) continue;
    checked++;
    if (!a || !b || memcmp(a, b, sizeof *a) != 0) {
      if (!bad++) first_bad = u;
    }
  }
  H_CHECK(bad == 0, "%" PRIu64 " of %" PRIu64 " users differ after the restore and replay (user %"
          PRIu64 " first)", bad, checked, first_bad);
  printf("restore from completion %" PRId64 " and replay of %zu events: %" PRIu64 " users equal "
         "to the writer's\n", next, n_events - (size_t)next, checked);
  clog_destroy(c2, 0);
  store_destroy(st);
  store_destroy(st2);
  metrics_destroy(m);
  mockbroker_destroy(mb);
  free(want1);
  free(want2);
  free(events);
  free(recs);
  printf("test_clog_incremental: ok\n");
  return 0;
}
