/* daemon/inflight: the commit-offset rule without Kafka. An offset o+1 is
 * stored only when every entry <= o has all its acknowledgements (from any
 * number of sources), never beyond the newest durable checkpoint when
 * checkpoints are on; acknowledgements from an earlier ownership are
 * ignored; rings grow past their first size; a random acknowledgement order
 * always stores the largest contiguous prefix, checked against a reference. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "daemon/inflight.h"

/* records what the tracker stores */
typedef struct {
  int calls;
  int32_t p;
  int64_t next;
  int refuse; /* store fails (e.g. the consumer refused): retried later */
} sink_t;

static int store(void *ctx, int32_t p, int64_t next) {
  sink_t *s = ctx;
  if (s->refuse) return -1;
  s->calls++;
  s->p = p;
  s->next = next;
  return 0;
}

static void test_inflight_stores_only_fully_acknowledged_prefix(void **state) {
  inflight_t *t;
  assert_int_equal(inflight_new(0, &t), 0);
  assert_int_equal(inflight_assign(t, 3, -1), 0);
  uint64_t tok[3];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(inflight_push(t, 3, 100 + i, 0, 0, &tok[i]), 0);
    assert_int_equal(inflight_expect(t, tok[i]), 0);
  }
  /* a second acknowledgement source (another sink) on the middle entry */
  assert_int_equal(inflight_expect(t, tok[1]), 0);
  sink_t s = {0};
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.calls, 0); /* nothing acknowledged */
  assert_non_null(inflight_ack(t, tok[2]));
  assert_non_null(inflight_ack(t, tok[1])); /* one of two sources */
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.calls, 0); /* entry 100 still awaited */
  const inflight_entry_t *e = inflight_ack(t, tok[0]);
  assert_non_null(e);
  assert_int_equal(e->offset, 100);
  assert_int_equal(e->partition, 3);
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.next, 101); /* 101 waits for its second source */
  assert_non_null(inflight_ack(t, tok[1]));
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.calls, 2);
  assert_int_equal(s.next, 103);
  inflight_part_t pt = inflight_part(t, 3);
  assert_int_equal(pt.in_flight, 0);
  assert_int_equal(pt.acked_next, 103);
  assert_int_equal(pt.stored_next, 103);
  assert_int_equal(pt.consumed_next, 103);
  /* acknowledging more than was expected is refused, not counted */
  assert_null(inflight_ack(t, tok[0]));
  inflight_destroy(t);
}

static void test_inflight_entry_without_messages_completes_at_once(void **state) {
  inflight_t *t;
  assert_int_equal(inflight_new(0, &t), 0);
  assert_int_equal(inflight_assign(t, 0, -1), 0);
  uint64_t tok;
  assert_int_equal(inflight_push(t, 0, 7, 0, 0, &tok), 0); /* e.g. a suppressed prediction */
  sink_t s = {0};
  inflight_advance(t, 0, store, &s);
  assert_int_equal(s.next, 8);
  inflight_destroy(t);
}

static void test_inflight_never_beyond_durable_checkpoint(void **state) {
  inflight_t *t;
  assert_int_equal(inflight_new(1, &t), 0);
  assert_int_equal(inflight_assign(t, 1, -1), 0);
  uint64_t tok;
  for (int64_t o = 0; o < 10; o++) assert_int_equal(inflight_push(t, 1, o, 0, 0, &tok), 0);
  sink_t s = {0};
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.calls, 0); /* all acknowledged, but no checkpoint yet */
  assert_int_equal(inflight_part(t, 1).acked_next, 10);
  inflight_set_checkpoint(t, 1, 4);
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.next, 4);
  inflight_set_checkpoint(t, 1, 3); /* older: ignored */
  assert_int_equal(inflight_part(t, 1).ckpt_next, 4);
  inflight_set_checkpoint(t, 1, 12); /* ahead of the acknowledgements: they bound it */
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.next, 10);
  inflight_destroy(t);

  /* a restored partition resumes at its checkpoint: stored and durable there */
  assert_int_equal(inflight_new(1, &t), 0);
  assert_int_equal(inflight_assign(t, 2, 50), 0);
  inflight_part_t pt = inflight_part(t, 2);
  assert_int_equal(pt.ckpt_next, 50);
  assert_int_equal(pt.stored_next, 50);
  assert_int_equal(inflight_push(t, 2, 50, 0, 0, &tok), 0);
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(inflight_part(t, 2).stored_next, 50); /* 51 is past the checkpoint */
  inflight_destroy(t);
}

static void test_inflight_ignores_acks_of_an_earlier_ownership(void **state) {
  inflight_t *t;
  assert_int_equal(inflight_new(0, &t), 0);
  assert_int_equal(inflight_assign(t, 5, -1), 0);
  uint64_t old;
  assert_int_equal(inflight_push(t, 5, 0, 0, 0, &old), 0);
  assert_int_equal(inflight_expect(t, old), 0);
  inflight_revoke(t, 5);
  assert_false(inflight_part(t, 5).owned);
  assert_null(inflight_ack(t, old));
  uint64_t tok;
  assert_int_equal(inflight_push(t, 5, 0, 0, 0, &tok), IX_ESTATE); /* not owned */
  assert_int_equal(inflight_assign(t, 5, -1), 0);
  assert_int_equal(inflight_push(t, 5, 0, 0, 0, &tok), 0);
  assert_int_equal(inflight_expect(t, tok), 0);
  /* same partition and sequence, older generation: not this entry */
  assert_int_not_equal(tok, old);
  assert_null(inflight_ack(t, old));
  assert_int_equal(inflight_expect(t, old), IX_ESTATE);
  sink_t s = {0};
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.calls, 0);
  /* the caller's flag bits are ignored */
  assert_non_null(inflight_ack(t, tok | (1ull << 63) | (1ull << 62)));
  inflight_advance_dirty(t, store, &s);
  assert_int_equal(s.next, 1);
  assert_int_equal(inflight_assign(t, INFLIGHT_MAX_PARTITION + 1, -1), IX_ERANGE);
  inflight_destroy(t);
}

static void test_inflight_store_refusal_is_retried(void **state) {
  inflight_t *t;
  assert_int_equal(inflight_new(0, &t), 0);
  assert_int_equal(inflight_assign(t, 0, -1), 0);
  uint64_t tok;
  assert_int_equal(inflight_push(t, 0, 0, 0, 0, &tok), 0);
  sink_t s = {.refuse = 1};
  inflight_advance(t, 0, store, &s);
  assert_int_equal(inflight_part(t, 0).stored_next, -1);
  s.refuse = 0;
  inflight_advance(t, 0, store, &s);
  assert_int_equal(s.next, 1);
  assert_int_equal(inflight_part(t, 0).stored_next, 1);
  inflight_destroy(t);
}

static uint64_t rng(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* 5000 entries on 3 partitions (the ring grows past 1024), 1-3 messages
 * each, acknowledged in random order; after every acknowledgement the stored
 * offset is the reference's largest fully acknowledged prefix. */
static void test_inflight_random_order_matches_reference(void **state) {
  enum { N = 5000, P = 3 };
  inflight_t *t;
  assert_int_equal(inflight_new(0, &t), 0);
  for (int p = 0; p < P; p++) assert_int_equal(inflight_assign(t, p, -1), 0);
  uint64_t seed = 42;
  uint64_t *acks = malloc(N * 3 * sizeof *acks); /* one token per awaited message */
  int *left = calloc(N, sizeof *left);
  int32_t *part = malloc(N * sizeof *part);
  int64_t *off = malloc(N * sizeof *off);
  int64_t next_off[P] = {0};
  size_t n_acks = 0;
  for (int i = 0; i < N; i++) {
    part[i] = (int32_t)(rng(&seed) % P);
    off[i] = next_off[part[i]]++;
    uint64_t tok;
    assert_int_equal(inflight_push(t, part[i], off[i], 0, 0, &tok), 0);
    left[i] = 1 + (int)(rng(&seed) % 3);
    for (int k = 0; k < left[i]; k++) {
      assert_int_equal(inflight_expect(t, tok), 0);
      acks[n_acks++] = tok;
    }
  }
  /* remember which input each ack belongs to through a parallel array */
  size_t *owner = malloc(n_acks * sizeof *owner);
  for (size_t a = 0, i = 0; i < N; i++)
    for (int k = 0; k < left[i]; k++) owner[a++] = i;
  for (size_t a = n_acks - 1; a > 0; a--) { /* shuffle */
    size_t b = rng(&seed) % (a + 1);
    uint64_t x = acks[a];
    acks[a] = acks[b];
    acks[b] = x;
    size_t y = owner[a];
    owner[a] = owner[b];
    owner[b] = y;
  }
  sink_t s = {0};
  for (size_t a = 0; a < n_acks; a++) {
    const inflight_entry_t *e = inflight_ack(t, acks[a]);
    assert_non_null(e);
    assert_int_equal(e->offset, off[owner[a]]);
    assert_int_equal(e->partition, part[owner[a]]);
    left[owner[a]]--;
    if (a % 97 == 0 || a == n_acks - 1) {
      inflight_advance_dirty(t, store, &s);
      for (int p = 0; p < P; p++) {
        int64_t want = -1;
        for (int i = 0; i < N; i++) {
          if (part[i] != p) continue;
          if (left[i]) break;
          want = off[i] + 1;
        }
        assert_int_equal(inflight_part(t, p).stored_next, want);
      }
    }
  }
  for (int p = 0; p < P; p++) assert_int_equal(inflight_part(t, p).stored_next, next_off[p]);
  free(acks);
  free(left);
  free(part);
  free(off);
  free(owner);
  inflight_destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_inflight_stores_only_fully_acknowledged_prefix),
      cmocka_unit_test(test_inflight_entry_without_messages_completes_at_once),
      cmocka_unit_test(test_inflight_never_beyond_durable_checkpoint),
      cmocka_unit_test(test_inflight_ignores_acks_of_an_earlier_ownership),
      cmocka_unit_test(test_inflight_store_refusal_is_retried),
      cmocka_unit_test(test_inflight_random_order_matches_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
