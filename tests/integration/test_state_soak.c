/* The memory soak (ctest label "slow"): 10M distinct users through the
 * pipeline and its store with state.memory_limit_mb set, as the daemon and
 * `interestctl replay --offline` run it, without Kafka.
 *
 * The users are the bundled Taobao sample's real users replayed under new
 * ids: round k gives every user id + k * 10^8 and shifts every time by k
 * times the sample's span, and replays each user's first EVENTS_PER_USER
 * events in the sample's time order (real histories, interleaved as they
 * were). Asserts:
 *   - RSS bounded: the process's peak RSS (VmHWM) minus its RSS before the
 *     first event stays within the limit plus SLACK_MB;
 *   - evictions exact: users - capacity, counted by the pipeline and by the
 *     store, and the store holds exactly capacity users;
 *   - the survivors are exactly the capacity most recently seen users (the
 *     store's order: batch after batch, within a batch by wave, i.e. each
 *     user's first event of the batch in input order, then the second ...),
 *     and each survivor's state is bit-identical to the state a store
 *     without a limit holds after the same user's events.
 * Environment: IX_SOAK_USERS (default 10000000), IX_SOAK_LIMIT_MB (256). */
#include "daemon_harness.h"

#define PARTS 8
#define BATCH 256
#define EVENTS_PER_USER 2
#define SLACK_MB 64
#define ID_STEP 100000000ull

typedef struct {
  event_t ev;
  uint32_t user_ix; /* index of the base user */
} base_ev_t;

typedef struct {
  base_ev_t *ev; /* each base user's first EVENTS_PER_USER events, in time order */
  size_t n;
  uint32_t n_users;
  uint64_t *user_ids; /* base user ids by index */
  int64_t span_ms;    /* a round's time shift */
} base_t;

static long vm_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  H_CHECK(f, "/proc/self/status");
  char line[256];
  long v = -1;
  size_t fl = strlen(field);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, fl)) v = atol(line + fl);
  fclose(f);
  return v;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static base_t load_base(void) {
  const char *src = getenv("IX_SOURCE_DIR");
  H_CHECK(src, "IX_SOURCE_DIR is not set");
  char csv[1024], err[512];
  snprintf(csv, sizeof csv, "%s/data/taobao_userbehavior_head100k/small_sample.csv.gz", src);
  const char *rec = h_path("base.rec");
  importer_opts_t io = {.format = IMPORT_TAOBAO, .input = csv, .output = rec, .partitions = 1};
  importer_stats_t is;
  H_CHECK(importer_run(&io, &is, err, sizeof err) == 0, "%s", err);
  rec_reader_t *r;
  H_CHECK(recfile_reader_open(rec, &r, err, sizeof err) == 0, "%s", err);
  base_t b = {0};
  event_t *all = malloc(is.events * sizeof *all);
  uint64_t *ids = malloc(is.events * sizeof *ids);
  rec_t x;
  size_t n = 0;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  while (recfile_read(r, &x) == 0) {
    H_CHECK(codec_decode_event(x.value, x.value_len, &all[n], err, sizeof err) == 0, "%s", err);
    ids[n] = all[n].user_id;
    if (all[n].ts_ms < lo) lo = all[n].ts_ms;
    if (all[n].ts_ms > hi) hi = all[n].ts_ms;
    n++;
  }
  recfile_reader_close(r);
  qsort(ids, n, sizeof *ids, cmp_u64);
  size_t u = 0;
  for (size_t i = 0; i < n; i++)
    if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
  uint32_t *seen = calloc(u, sizeof *seen);
  b.ev = malloc(n * sizeof *b.ev);
  for (size_t i = 0; i < n; i++) {
    uint64_t *p = bsearch(&all[i].user_id, ids, u, sizeof *ids, cmp_u64);
    uint32_t ix = (uint32_t)(p - ids);
    if (seen[ix]++ >= EVENTS_PER_USER) continue;
    b.ev[b.n++] = (base_ev_t){.ev = all[i], .user_ix = ix};
  }
  b.n_users = (uint32_t)u;
  b.user_ids = ids;
  b.span_ms = hi - lo + 86400000;
  free(seen);
  free(all);
  return b;
}

/* The stream: round k, base event j; users with k * n_users + ix >= users
 * are left out (the last round is partial). Calls fn per batch of BATCH
 * events (encoded records). only: when non-NULL, a user filter. */
typedef struct {
  const base_t *b;
  uint64_t users;
  uint64_t first_round;
  int (*only)(void *ctx, int32_t partition, uint64_t user);
  void *only_ctx;
  void (*batch)(void *ctx, const rec_t *recs, const event_t *evs, size_t n, int64_t now_ms);
  void *batch_ctx;
} stream_t;

static void stream_run(const stream_t *s) {
  const base_t *b = s->b;
  uint64_t rounds = (s->users + b->n_users - 1) / b->n_users;
  rec_t recs[BATCH];
  event_t evs[BATCH];
  char keys[BATCH][CODEC_KEY_MAX];
  codec_buf_t bufs[BATCH];
  memset(bufs, 0, sizeof bufs);
  int32_t *part = malloc(b->n_users * sizeof *part);
  size_t k = 0;
  int64_t now_ms = INT64_MIN, offset;
  for (uint64_t r = s->first_round; r < rounds; r++) {
    for (uint32_t u = 0; u < b->n_users; u++) {
      char key[CODEC_KEY_MAX];
      size_t kl = codec_user_key(b->user_ids[u] + r * ID_STEP, key);
      part[u] = importer_partition(key, kl, PARTS);
    }
    for (size_t j = 0; j < b->n; j++) {
      const base_ev_t *e = &b->ev[j];
      if (r * b->n_users + e->user_ix >= s->users) continue;
      event_t ev = e->ev;
      ev.user_id += r * ID_STEP;
      ev.ts_ms += (int64_t)r * b->span_ms;
      int32_t p = part[e->user_ix];
      offset = (int64_t)(r * b->n + j); /* the same in both runs (the trailer keeps it) */
      if (s->only && !s->only(s->only_ctx, p, ev.user_id)) continue;
      H_CHECK(codec_encode_event(&ev, &bufs[k]) == 0, "encoding");
      size_t kl = codec_user_key(ev.user_id, keys[k]);
      recs[k] = (rec_t){.partition = p, .offset = offset, .key = keys[k], .key_len = kl,
                        .value = bufs[k].data, .value_len = bufs[k].len, .ts_ms = ev.ts_ms};
      evs[k] = ev;
      if (ev.ts_ms > now_ms) now_ms = ev.ts_ms;
      if (++k == BATCH) {
        s->batch(s->batch_ctx, recs, evs, k, now_ms);
        k = 0;
      }
    }
  }
  if (k) s->batch(s->batch_ctx, recs, evs, k, now_ms);
  for (size_t i = 0; i < BATCH; i++) codec_buf_free(&bufs[i]);
  free(part);
}

/* The soak run: the pipeline under the limit, and the touch order's tail. */
typedef struct {
  pipeline_t *pipe;
  uint64_t evicted, batches, events;
  /* a ring of the last ring_n touches (user, partition), in the store's
   * touch order: the survivors are found in it afterwards */
  uint64_t *ring_user;
  int32_t *ring_part;
  size_t ring_n, ring_len;
  uint64_t touches;
} soak_t;

static void soak_batch(void *ctx, const rec_t *recs, const event_t *evs, size_t n,
                       int64_t now_ms) {
  soak_t *s = ctx;
  pipeline_result_t res;
  H_CHECK(pipeline_process(s->pipe, recs, n, now_ms, &res) == 0, "pipeline_process");
  H_CHECK(res.n_processed == n, "%zu of %zu processed", res.n_processed, n);
  s->evicted += res.n_evicted;
  s->batches++;
  s->events += n;
  /* the touch order of the batch: waves (a user's 1st event of the batch,
   * then its 2nd ...), input order within a wave */
  uint32_t wave[BATCH];
  uint32_t max_wave = 0;
  for (size_t i = 0; i < n; i++) {
    wave[i] = 0;
    for (size_t j = 0; j < i; j++) /* BATCH is small; users repeat little */
      if (evs[j].user_id == evs[i].user_id && recs[j].partition == recs[i].partition) wave[i]++;
    if (wave[i] > max_wave) max_wave = wave[i];
  }
  for (uint32_t w = 0; w <= max_wave; w++)
    for (size_t i = 0; i < n; i++) {
      if (wave[i] != w) continue;
      size_t at = s->touches++ % s->ring_n;
      s->ring_user[at] = evs[i].user_id;
      s->ring_part[at] = recs[i].partition;
      if (s->ring_len < s->ring_n) s->ring_len++;
    }
}

/* A small open-addressing set of (partition, user). */
typedef struct {
  uint64_t *user;
  int32_t *part;
  size_t cap, n;
} uset_t;

static size_t uset_slot(const uset_t *u, int32_t p, uint64_t user) {
  uint64_t h = (user * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uint32_t)p;
  size_t i = (size_t)(h >> 17) & (u->cap - 1);
  while (u->user[i] != UINT64_MAX && (u->user[i] != user || u->part[i] != p))
    i = (i + 1) & (u->cap - 1);
  return i;
}

static int uset_add(uset_t *u, int32_t p, uint64_t user) {
  size_t i = uset_slot(u, p, user);
  if (u->user[i] != UINT64_MAX) return 0;
  u->user[i] = user;
  u->part[i] = p;
  u->n++;
  return 1;
}

static int uset_has(void *ctx, int32_t p, uint64_t user) {
  uset_t *u = ctx;
  return u->user[uset_slot(u, p, user)] != UINT64_MAX;
}

static void ref_batch(void *ctx, const rec_t *recs, const event_t *evs, size_t n,
                      int64_t now_ms) {
  (void)evs;
  pipeline_result_t res;
  H_CHECK(pipeline_process(ctx, recs, n, now_ms, &res) == 0, "reference pipeline_process");
}

int main(void) {
  h_init("test_state_soak");
  uint64_t users = getenv("IX_SOAK_USERS") ? strtoull(getenv("IX_SOAK_USERS"), NULL, 10)
                                           : 10000000ull;
  size_t limit_mb = getenv("IX_SOAK_LIMIT_MB") ? strtoull(getenv("IX_SOAK_LIMIT_MB"), NULL, 10)
                                               : 256;
  const char *src = getenv("IX_SOURCE_DIR");
  char model_path[1024], err[512];
  (void)src;
  /* the served dimensions (V = 1000, H = 64: a 1000-byte state with the
   * trailer, as the shipped model's) with random weights: the shipped model's
   * head with experts would triple the run time and the store sees the same */
  snprintf(model_path, sizeof model_path, "%s", h_path("model.ixm"));
  h_write_model_sized(model_path, 7, 0, 0);
  base_t b = load_base();
  printf("base: %u real users, %zu events (each user's first %d), span %.1f days\n", b.n_users,
         b.n, EVENTS_PER_USER, (double)b.span_ms / 86400000.0);

  model_t *m;
  H_CHECK(model_load(model_path, &m, err, sizeof err) == 0, "%s", err);
  /* state.memory_limit_mb as the daemon and replay --offline turn it into the store's limit */
  store_opts_t so = {.mem_limit_bytes = limit_mb << 20};
  emit_opts_t eo = {.policy = EMIT_EVERY, .top_n_change = 3};
  soak_t s = {0};
  H_CHECK(pipeline_new(m, &so, &eo, &s.pipe) == 0, "pipeline");
  store_t *st = pipeline_store(s.pipe);
  uint64_t cap = store_capacity(st);
  H_CHECK(cap < users, "capacity %" PRIu64 " holds every user", cap);
  s.ring_n = (size_t)cap * EVENTS_PER_USER + 2 * BATCH;
  s.ring_user = malloc(s.ring_n * sizeof *s.ring_user);
  s.ring_part = malloc(s.ring_n * sizeof *s.ring_part);
  memset(s.ring_user, 0, s.ring_n * sizeof *s.ring_user); /* touched now: in the baseline */
  memset(s.ring_part, 0, s.ring_n * sizeof *s.ring_part);
  uset_t surv = {.cap = 1};
  while (surv.cap < 2 * cap) surv.cap *= 2;
  surv.user = malloc(surv.cap * sizeof *surv.user);
  surv.part = malloc(surv.cap * sizeof *surv.part);
  memset(surv.user, 0xff, surv.cap * sizeof *surv.user);
  memset(surv.part, 0, surv.cap * sizeof *surv.part);
  long rss0 = vm_kb("VmRSS:");
  printf("limit %zu MiB: capacity %" PRIu64 " users of %zu bytes; RSS before the first event "
         "%ld MiB\n", limit_mb, cap, store_blob_size(st), rss0 / 1024);

  double t0 = h_now();
  stream_t str = {.b = &b, .users = users, .batch = soak_batch, .batch_ctx = &s};
  stream_run(&str);
  double secs = h_now() - t0;
  long hwm = vm_kb("VmHWM:");
  store_stats_t ss;
  store_get_stats(st, &ss);
  printf("%" PRIu64 " users, %" PRIu64 " events in %" PRIu64 " batches, %.1f s (%.0f events/s)\n",
         users, s.events, s.batches, secs, (double)s.events / secs);
  printf("store: %" PRIu64 " users, %.1f MiB, evicted %" PRIu64 " (pipeline %" PRIu64 "), "
         "want %" PRIu64 "\n", ss.users, (double)ss.bytes / 1048576.0, ss.evicted_lru, s.evicted,
         users - cap);
  printf("peak RSS %ld MiB = %ld MiB before the first event + %ld MiB (limit %zu MiB, "
         "bound limit + %d MiB)\n", hwm / 1024, rss0 / 1024, (hwm - rss0) / 1024, limit_mb,
         SLACK_MB);
  H_CHECK(ss.users == cap, "the store holds %" PRIu64 " users, capacity %" PRIu64, ss.users, cap);
  H_CHECK(s.evicted == users - cap && ss.evicted_lru == users - cap,
          "evicted %" PRIu64 " / %" PRIu64 ", want %" PRIu64, s.evicted, ss.evicted_lru,
          users - cap);
  /* the store's contract (state/store.h): within the limit, churn or not */
  printf("store bytes %" PRIu64 " = the limit %+.2f %%\n", ss.bytes,
         100.0 * ((double)ss.bytes / (double)(limit_mb << 20) - 1));
  H_CHECK(ss.bytes <= ((uint64_t)limit_mb << 20), "store bytes %" PRIu64 " over the limit",
          ss.bytes);
  H_CHECK(hwm - rss0 <= (long)(limit_mb + SLACK_MB) * 1024, "peak RSS grew by %ld MiB",
          (hwm - rss0) / 1024);

  /* the survivors: the last cap distinct users of the touch order */
  H_CHECK(s.touches >= s.ring_n, "the ring never wrapped");
  for (size_t k = 0; k < s.ring_len && surv.n < cap; k++) {
    size_t at = (size_t)((s.touches - 1 - k) % s.ring_n);
    uset_add(&surv, s.ring_part[at], s.ring_user[at]);
  }
  H_CHECK(surv.n == cap, "%zu distinct users in the ring's %zu touches", surv.n, s.ring_len);
  uint64_t oldest_round = UINT64_MAX;
  for (size_t i = 0; i < surv.cap; i++) {
    if (surv.user[i] == UINT64_MAX) continue;
    H_CHECK(store_peek(st, surv.part[i], surv.user[i]), "survivor %" PRIu64 " (partition %d) "
            "was evicted", surv.user[i], (int)surv.part[i]);
    uint64_t round = surv.user[i] / ID_STEP;
    if (round < oldest_round) oldest_round = round;
  }
  printf("the %" PRIu64 " held users are the %" PRIu64 " most recently seen (rounds %" PRIu64
         " on)\n", cap, cap, oldest_round);

  /* the reference: the survivors' events alone, through a store without a limit */
  store_opts_t so_ref = {0};
  pipeline_t *ref;
  H_CHECK(pipeline_new(m, &so_ref, &eo, &ref) == 0, "reference pipeline");
  stream_t rs = {.b = &b, .users = users, .first_round = oldest_round, .only = uset_has,
                 .only_ctx = &surv, .batch = ref_batch, .batch_ctx = ref};
  stream_run(&rs);
  store_t *st_ref = pipeline_store(ref);
  H_CHECK(store_users(st_ref) == cap, "reference holds %zu users", store_users(st_ref));
  size_t bs = store_blob_size(st), same = 0;
  for (size_t i = 0; i < surv.cap; i++) {
    if (surv.user[i] == UINT64_MAX) continue;
    const void *a = store_peek(st, surv.part[i], surv.user[i]);
    const void *r = store_peek(st_ref, surv.part[i], surv.user[i]);
    H_CHECK(a && r, "user %" PRIu64 " missing", surv.user[i]);
    if (memcmp(a, r, bs)) {
      size_t at = 0, last = 0, nd = 0;
      for (size_t k = bs; k-- > 0;)
        if (((const unsigned char *)a)[k] != ((const unsigned char *)r)[k]) {
          at = k;
          if (!nd++) last = k;
        }
      H_CHECK(0, "user %" PRIu64 " (partition %d): state differs from the reference in %zu of "
              "%zu bytes, offsets %zu..%zu (the model's state is the first %zu)", surv.user[i],
              (int)surv.part[i], nd, bs, at, last, model_state_size(m));
    }
    same++;
  }
  printf("%zu survivors' states bit-identical to the reference (%zu bytes each)\n", same, bs);
  pipeline_destroy(ref);
  pipeline_destroy(s.pipe);
  model_destroy(m);
  free(s.ring_user);
  free(s.ring_part);
  free(surv.user);
  free(surv.part);
  free(b.ev);
  free(b.user_ids);
  printf("PASS\n");
  return 0;
}
