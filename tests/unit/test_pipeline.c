/* core/pipeline: one prediction per event in input order with provenance,
 * results independent of how the stream is cut into batches (waves keep each
 * user's order), rejections with reasons, per-partition states, the interval
 * and change emission policies against an every-event reference, model swaps
 * and the memory limit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/reject.h"
#include "core/pipeline.h"
#include "model/arch.h"
#include "model/model.h"
#include "stream/codec.h"

static uint64_t rng(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

static model_t *random_model(uint64_t seed) {
  arch_dims_t d;
  arch_dims_default(&d);
  d.V = 64;
  d.H = 16;
  arch_layout_t L;
  arch_layout(&d, &L);
  float *p = malloc(L.total * sizeof(float));
  uint64_t s = seed;
  for (size_t i = 0; i < L.total; i++) p[i] = ((float)(rng(&s) % 20001) - 10000.0f) / 20000.0f;
  uint64_t *ids = malloc(d.V * sizeof(uint64_t));
  ids[0] = 0;
  for (uint32_t j = 1; j < d.V; j++) ids[j] = 500 + j;
  model_t *m;
  char err[256];
  assert_int_equal(model_from_params(&d, 3600.0f * 72, ids, p, NULL, &m, err, sizeof err), 0);
  free(p);
  free(ids);
  return m;
}

/* A stream of encoded events: users 1..n_users, interleaved. */
typedef struct {
  rec_t *recs;
  codec_buf_t *bufs;
  event_t *events;
  size_t n;
} stream_t;

static void stream_make(stream_t *st, size_t n, uint64_t n_users, int32_t partitions) {
  st->n = n;
  st->recs = calloc(n, sizeof *st->recs);
  st->bufs = calloc(n, sizeof *st->bufs);
  st->events = calloc(n, sizeof *st->events);
  uint64_t s = 42;
  int64_t off[16] = {0};
  for (size_t i = 0; i < n; i++) {
    event_t *ev = &st->events[i];
    ev->user_id = 1 + rng(&s) % n_users;
    ev->item_id = rng(&s);
    ev->category_id = 500 + rng(&s) % 80; /* some beyond the vocabulary */
    ev->ts_ms = 1511000000000ll + (int64_t)i * 700;
    ev->action = (action_t)(rng(&s) % 4);
    assert_int_equal(codec_encode_event(ev, &st->bufs[i]), 0);
    int32_t p = (int32_t)(ev->user_id % (uint64_t)partitions);
    st->recs[i] = (rec_t){.partition = p, .offset = off[p]++, .ts_ms = ev->ts_ms,
                          .value = st->bufs[i].data, .value_len = st->bufs[i].len};
  }
}

static void stream_free(stream_t *st) {
  for (size_t i = 0; i < st->n; i++) codec_buf_free(&st->bufs[i]);
  free(st->bufs);
  free(st->recs);
  free(st->events);
}

static const emit_opts_t EVERY = {.policy = EMIT_EVERY, .top_n_change = 3};
static const store_opts_t STORE = {0};

/* Runs the stream through a fresh pipeline in batches of `batch`, copying
 * every prediction into out (one per event expected with EMIT_EVERY). */
static size_t run(model_t *m, const emit_opts_t *emit, const stream_t *st, size_t batch,
                  prediction_t *out, size_t *src_out) {
  pipeline_t *p;
  assert_int_equal(pipeline_new(m, &STORE, emit, &p), 0);
  size_t n_out = 0;
  for (size_t lo = 0; lo < st->n; lo += batch) {
    size_t k = st->n - lo < batch ? st->n - lo : batch;
    pipeline_result_t res;
    assert_int_equal(pipeline_process(p, st->recs + lo, k, 777, &res), 0);
    assert_int_equal(res.n_rejects, 0);
    assert_int_equal(res.n_processed, k);
    assert_int_equal(res.n_preds + res.n_suppressed, k);
    for (size_t i = 0; i < res.n_preds; i++) {
      if (i) assert_true(res.pred_src[i] > res.pred_src[i - 1]); /* input order */
      out[n_out] = res.preds[i];
      if (src_out) src_out[n_out] = lo + res.pred_src[i];
      n_out++;
    }
  }
  pipeline_destroy(p);
  return n_out;
}

static void test_pipeline_one_prediction_per_event_with_provenance(void **unused) {
  model_t *m = random_model(1);
  stream_t st;
  stream_make(&st, 500, 12, 4);
  prediction_t *out = calloc(st.n, sizeof *out);
  size_t *src = calloc(st.n, sizeof *src);
  assert_int_equal(run(m, &EVERY, &st, 128, out, src), st.n);
  uint32_t seen[13] = {0};
  for (size_t i = 0; i < st.n; i++) {
    assert_int_equal(src[i], i);
    assert_int_equal(out[i].user_id, st.events[i].user_id);
    assert_int_equal(out[i].src_partition, st.recs[i].partition);
    assert_int_equal(out[i].src_offset, st.recs[i].offset);
    assert_int_equal(out[i].event_ts_ms, st.events[i].ts_ms);
    assert_int_equal(out[i].emit_ts_ms, 777);
    /* each user's events were applied in order: n_events counts up by one */
    assert_int_equal(out[i].n_events, ++seen[st.events[i].user_id]);
    assert_true(out[i].n_next > 0);
  }
  free(out);
  free(src);
  stream_free(&st);
  model_destroy(m);
}

static int same_interest(const prediction_t *a, const prediction_t *b) {
  return a->n_events == b->n_events && a->fluctuation == b->fluctuation &&
         a->shift_prob == b->shift_prob && a->n_next == b->n_next &&
         memcmp(a->next, b->next, sizeof a->next) == 0 &&
         memcmp(a->longterm, b->longterm, sizeof a->longterm) == 0 &&
         memcmp(a->rising, b->rising, sizeof a->rising) == 0;
}

static void test_pipeline_results_do_not_depend_on_batching(void **unused) {
  model_t *m = random_model(2);
  stream_t st;
  stream_make(&st, 400, 5, 2); /* few users: many waves per batch */
  prediction_t *one = calloc(st.n, sizeof *one), *big = calloc(st.n, sizeof *big),
               *odd = calloc(st.n, sizeof *odd);
  assert_int_equal(run(m, &EVERY, &st, 1, one, NULL), st.n);
  assert_int_equal(run(m, &EVERY, &st, 400, big, NULL), st.n);
  assert_int_equal(run(m, &EVERY, &st, 37, odd, NULL), st.n);
  for (size_t i = 0; i < st.n; i++) {
    assert_true(same_interest(&one[i], &big[i]));
    assert_true(same_interest(&one[i], &odd[i]));
  }
  free(one);
  free(big);
  free(odd);
  stream_free(&st);
  model_destroy(m);
}

static void test_pipeline_rejects_bad_messages_with_reasons(void **unused) {
  model_t *m = random_model(3);
  pipeline_t *p;
  assert_int_equal(pipeline_new(m, &STORE, &EVERY, &p), 0);
  event_t ev = {.user_id = 9, .item_id = 1, .category_id = 501, .ts_ms = 1511000000000ll};
  codec_buf_t good = {0};
  assert_int_equal(codec_encode_event(&ev, &good), 0);
  static const unsigned char not_map[] = {0x93, 0x01, 0x02, 0x03}; /* array [1,2,3] */
  static const unsigned char trunc[] = {0x85, 0xa1};
  rec_t recs[4] = {
      {.partition = 0, .offset = 10, .value = good.data, .value_len = good.len},
      {.partition = 0, .offset = 11, .value = not_map, .value_len = sizeof not_map},
      {.partition = 0, .offset = 12, .value = trunc, .value_len = sizeof trunc},
      {.partition = 0, .offset = 13, .value = good.data, .value_len = good.len},
  };
  pipeline_result_t res;
  assert_int_equal(pipeline_process(p, recs, 4, 1, &res), 0);
  assert_int_equal(res.n_processed, 2);
  assert_int_equal(res.n_preds, 2);
  assert_int_equal(res.pred_src[0], 0);
  assert_int_equal(res.pred_src[1], 3);
  assert_int_equal(res.preds[1].n_events, 2);
  assert_int_equal(res.n_rejects, 2);
  assert_int_equal(res.rejects[0].src, 1);
  assert_string_equal(ix_reject_reason(res.rejects[0].err), "not_map");
  assert_int_equal(res.rejects[1].src, 2);
  assert_true(res.rejects[1].err < 0);
  assert_true(strlen(res.rejects[0].reason) > 0);
  codec_buf_free(&good);
  pipeline_destroy(p);
  model_destroy(m);
}

static void test_pipeline_keeps_one_state_per_partition_and_user(void **unused) {
  model_t *m = random_model(4);
  pipeline_t *p;
  assert_int_equal(pipeline_new(m, &STORE, &EVERY, &p), 0);
  event_t ev = {.user_id = 5, .item_id = 1, .category_id = 501, .ts_ms = 1511000000000ll};
  codec_buf_t b = {0};
  assert_int_equal(codec_encode_event(&ev, &b), 0);
  rec_t recs[3] = {{.partition = 0, .offset = 0, .value = b.data, .value_len = b.len},
                   {.partition = 1, .offset = 0, .value = b.data, .value_len = b.len},
                   {.partition = 0, .offset = 1, .value = b.data, .value_len = b.len}};
  pipeline_result_t res;
  assert_int_equal(pipeline_process(p, recs, 3, 1, &res), 0);
  assert_int_equal(res.n_preds, 3);
  assert_int_equal(res.preds[0].n_events, 1);
  assert_int_equal(res.preds[1].n_events, 1);
  assert_int_equal(res.preds[2].n_events, 2);
  assert_int_equal(res.n_new_users, 2);
  assert_int_equal(store_partition_users(pipeline_store(p), 0), 1);
  assert_int_equal(store_partition_users(pipeline_store(p), 1), 1);
  codec_buf_free(&b);
  pipeline_destroy(p);
  model_destroy(m);
}

static void test_pipeline_interval_policy_uses_event_time(void **unused) {
  model_t *m = random_model(5);
  emit_opts_t iv = {.policy = EMIT_INTERVAL, .interval_ms = 1000, .top_n_change = 3};
  pipeline_t *p;
  assert_int_equal(pipeline_new(m, &STORE, &iv, &p), 0);
  int64_t ts[] = {0, 500, 999, 1000, 1600, 2000, 2100};
  int expect[] = {1, 0, 0, 1, 0, 1, 0};
  codec_buf_t b[7] = {{0}};
  rec_t recs[7];
  for (int i = 0; i < 7; i++) {
    event_t ev = {.user_id = 3, .item_id = 1, .category_id = 502, .ts_ms = 1511000000000ll + ts[i]};
    assert_int_equal(codec_encode_event(&ev, &b[i]), 0);
    recs[i] = (rec_t){.partition = 0, .offset = i, .value = b[i].data, .value_len = b[i].len};
  }
  size_t k = 0;
  for (int i = 0; i < 7; i++) { /* one event per batch: memory carries across batches */
    pipeline_result_t res;
    assert_int_equal(pipeline_process(p, &recs[i], 1, 1, &res), 0);
    assert_int_equal(res.n_processed, 1);
    assert_int_equal(res.n_preds, (size_t)expect[i]);
    assert_int_equal(res.n_suppressed, (size_t)!expect[i]);
    if (res.n_preds) {
      assert_int_equal(res.preds[0].src_offset, i);
      k++;
    }
  }
  assert_int_equal(k, 3);
  for (int i = 0; i < 7; i++) codec_buf_free(&b[i]);
  pipeline_destroy(p);
  model_destroy(m);
}

static void test_pipeline_change_policy_matches_reference(void **unused) {
  model_t *m = random_model(6);
  stream_t st;
  stream_make(&st, 600, 8, 3);
  prediction_t *all = calloc(st.n, sizeof *all), *chg = calloc(st.n, sizeof *chg);
  size_t *src = calloc(st.n, sizeof *src);
  assert_int_equal(run(m, &EVERY, &st, 64, all, NULL), st.n);
  emit_opts_t ch = {.policy = EMIT_CHANGE, .top_n_change = 2, .fluctuation_threshold = 0.05f};
  size_t n = run(m, &ch, &st, 64, chg, src);
  /* reference: replay the every-event predictions through the rule */
  typedef struct {
    int any;
    float fl;
    uint32_t n;
    uint64_t top[2];
  } memo_t;
  memo_t memo[9] = {{0}};
  size_t k = 0;
  for (size_t i = 0; i < st.n; i++) {
    memo_t *mm = &memo[all[i].user_id];
    uint32_t nt = all[i].n_next < 2 ? all[i].n_next : 2;
    int emit = !mm->any || nt != mm->n ||
               fabsf(all[i].fluctuation - mm->fl) >= 0.05f;
    for (uint32_t j = 0; !emit && j < nt; j++) emit = all[i].next[j].category_id != mm->top[j];
    if (!emit) continue;
    mm->any = 1;
    mm->fl = all[i].fluctuation;
    mm->n = nt;
    for (uint32_t j = 0; j < nt; j++) mm->top[j] = all[i].next[j].category_id;
    assert_true(k < n);
    assert_int_equal(src[k], i);
    assert_true(same_interest(&chg[k], &all[i]));
    k++;
  }
  assert_int_equal(k, n);
  assert_true(n < st.n && n > 8); /* the policy did hold some back */
  free(all);
  free(chg);
  free(src);
  stream_free(&st);
  model_destroy(m);
}

static void test_pipeline_refuses_model_with_other_fingerprint_unless_reset(void **unused) {
  model_t *m1 = random_model(7), *m1b = random_model(7), *m2 = random_model(8);
  assert_int_equal(model_fingerprint(m1), model_fingerprint(m1b));
  assert_int_not_equal(model_fingerprint(m1), model_fingerprint(m2));
  stream_t st;
  stream_make(&st, 50, 4, 1);
  pipeline_t *p;
  assert_int_equal(pipeline_new(m1, &STORE, &EVERY, &p), 0);
  pipeline_result_t res;
  assert_int_equal(pipeline_process(p, st.recs, st.n, 1, &res), 0);
  size_t users = store_partition_users(pipeline_store(p), 0);
  assert_true(users > 0);
  assert_int_equal(pipeline_set_model(p, m1b, 0), 0); /* same weights: states kept */
  assert_int_equal(store_partition_users(pipeline_store(p), 0), users);
  assert_int_equal(pipeline_set_model(p, m2, 0), IX_EMISMATCH);
  assert_ptr_equal(pipeline_model(p), m1b);
  assert_int_equal(pipeline_set_model(p, m2, 1), 0); /* reset: states dropped */
  assert_int_equal(store_partition_users(pipeline_store(p), 0), 0);
  assert_int_equal(pipeline_fingerprint(p), model_fingerprint(m2));
  assert_int_equal(pipeline_process(p, st.recs, 1, 1, &res), 0);
  assert_int_equal(res.preds[0].n_events, 1);
  pipeline_destroy(p);
  stream_free(&st);
  model_destroy(m1);
  model_destroy(m1b);
  model_destroy(m2);
}

static void test_pipeline_evicts_beyond_memory_limit(void **unused) {
  model_t *m = random_model(9);
  store_opts_t so = {.mem_limit_bytes = 64 * 1024};
  pipeline_t *p;
  assert_int_equal(pipeline_new(m, &so, &EVERY, &p), 0);
  stream_t st;
  stream_make(&st, 4000, 2000, 1);
  size_t evicted = 0;
  for (size_t lo = 0; lo < st.n; lo += 256) {
    pipeline_result_t res;
    size_t k = st.n - lo < 256 ? st.n - lo : 256;
    assert_int_equal(pipeline_process(p, st.recs + lo, k, (int64_t)lo, &res), 0);
    assert_int_equal(res.n_preds, k);
    evicted += res.n_evicted;
  }
  store_stats_t ss;
  store_get_stats(pipeline_store(p), &ss);
  assert_true(evicted > 0);
  assert_int_equal(ss.evicted_lru, evicted);
  assert_true(ss.users * store_blob_size(pipeline_store(p)) <= so.mem_limit_bytes);
  assert_true(ss.users > 0);
  stream_free(&st);
  pipeline_destroy(p);
  model_destroy(m);
}


/* pipeline_set_hooks: a skipped event is neither applied nor predicted (the
 * rest equals a run without it), applied() sees every applied event, a
 * user's events in input order. */
typedef struct {
  int64_t skip_upto; /* user 3's events at or below this offset are skipped */
  size_t skip_calls, applied;
  int64_t last[2][8];
} hooks_t;

static int skip_hook(void *ctx, int32_t p, uint64_t user, int64_t off) {
  hooks_t *h = ctx;
  h->skip_calls++;
  return user == 3 && off <= h->skip_upto;
}

static void applied_hook(void *ctx, int32_t p, uint64_t user, int64_t off) {
  hooks_t *h = ctx;
  assert_true(p >= 0 && p < 2 && user < 8);
  assert_true(off > h->last[p][user]); /* in input order */
  assert_false(user == 3 && off <= h->skip_upto);
  h->last[p][user] = off;
  h->applied++;
}

static void test_pipeline_skip_hook_neither_applies_nor_predicts(void **unused) {
  model_t *m = random_model(9);
  stream_t st;
  stream_make(&st, 300, 5, 2);
  hooks_t h = {.skip_upto = 60};
  memset(h.last, 0xff, sizeof h.last); /* -1 */
  size_t n_skip = 0;
  for (size_t i = 0; i < st.n; i++) n_skip += st.events[i].user_id == 3 && st.recs[i].offset <= 60;
  assert_true(n_skip > 0);
  pipeline_t *p;
  assert_int_equal(pipeline_new(m, &STORE, &EVERY, &p), 0);
  pipeline_set_hooks(p, skip_hook, applied_hook, &h);
  pipeline_result_t res;
  assert_int_equal(pipeline_process(p, st.recs, st.n, 777, &res), 0);
  assert_int_equal(res.n_skipped, n_skip);
  assert_int_equal(res.n_processed, st.n - n_skip);
  assert_int_equal(h.applied, st.n - n_skip);
  assert_int_equal(h.skip_calls, st.n);
  assert_int_equal(res.n_preds, st.n - n_skip);
  /* the same stream without the skipped events, no hooks */
  stream_t kept = st;
  kept.recs = calloc(st.n, sizeof *kept.recs);
  size_t k = 0;
  for (size_t i = 0; i < st.n; i++)
    if (!(st.events[i].user_id == 3 && st.recs[i].offset <= 60)) kept.recs[k++] = st.recs[i];
  kept.n = k;
  prediction_t *ref = calloc(k, sizeof *ref);
  assert_int_equal(run(m, &EVERY, &kept, k, ref, NULL), k);
  for (size_t i = 0; i < res.n_preds; i++) {
    assert_false(st.events[res.pred_src[i]].user_id == 3 && st.recs[res.pred_src[i]].offset <= 60);
    assert_true(same_interest(&res.preds[i], &ref[i]));
  }
  free(ref);
  free(kept.recs);
  pipeline_destroy(p);
  stream_free(&st);
  model_destroy(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipeline_one_prediction_per_event_with_provenance),
      cmocka_unit_test(test_pipeline_results_do_not_depend_on_batching),
      cmocka_unit_test(test_pipeline_rejects_bad_messages_with_reasons),
      cmocka_unit_test(test_pipeline_keeps_one_state_per_partition_and_user),
      cmocka_unit_test(test_pipeline_interval_policy_uses_event_time),
      cmocka_unit_test(test_pipeline_change_policy_matches_reference),
      cmocka_unit_test(test_pipeline_refuses_model_with_other_fingerprint_unless_reset),
      cmocka_unit_test(test_pipeline_evicts_beyond_memory_limit),
      cmocka_unit_test(test_pipeline_skip_hook_neither_applies_nor_predicts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
