/* A warm start (daemon/warmstart.h): the SIGHUP warm-up run to a fixed
 * serving position for partitions assigned with another model's
 * checkpoint, then its states moved into the serving store. */
#include "daemon/warmstart.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "model/model.h"
#include "state/store.h"
#include "stream/reader.h"

#define POLL_NS 20000000L /* the wait's look at the warm-up */
#define SETTLE_NS 500000000u /* counts unchanged this long with nothing behind: final */
#define TS_WAIT_MS 3000 /* the newest timestamp below the positions: at most this long */

/* The newest Kafka timestamp of the records just below positions[i] (0 when
 * none is found within TS_WAIT_MS: no time bound then, logged). */
static int64_t newest_ts(const warmup_opts_t *o, const int32_t *partitions,
                         const int64_t *positions, size_t n) {
  reader_t *r = NULL;
  char why[512];
  int32_t *ps = malloc((n + 1) * sizeof *ps);
  int64_t *offs = malloc((n + 1) * sizeof *offs);
  rec_t *recs = malloc(64 * sizeof *recs);
  int64_t newest = 0;
  size_t k = 0, found = 0;
  if (!ps || !offs || !recs) goto out;
  for (size_t i = 0; i < n; i++)
    if (positions[i] > 0) {
      ps[k] = partitions[i];
      offs[k++] = positions[i] - 1;
    }
  if (!k) goto out;
  if (reader_new(o->brokers, o->props, o->topic, &r, why, sizeof why)) {
    LOG_WARN("warmstart", "cannot read the newest event times (%s): no time bound on the "
             "window", why);
    goto out;
  }
  if (reader_assign(r, ps, offs, k)) goto out;
  uint64_t end = ix_mono_ns() + (uint64_t)TS_WAIT_MS * 1000000u;
  while (found < k && ix_mono_ns() < end) {
    ssize_t got = reader_poll(r, recs, 64, 100);
    if (got < 0) break;
    for (ssize_t j = 0; j < got; j++)
      for (size_t i = 0; i < k; i++)
        if (ps[i] == recs[j].partition && offs[i] >= 0 && recs[j].offset >= offs[i]) {
          if (recs[j].offset == offs[i] && recs[j].ts_ms > newest) newest = recs[j].ts_ms;
          offs[i] = -1; /* seen (a later offset: the one below was not there) */
          found++;
        }
    reader_release(r);
  }
  if (found < k)
    LOG_WARN("warmstart", "the newest event time was read for %zu of %zu partitions in %d ms",
             found, k, TS_WAIT_MS);
out:
  reader_destroy(r);
  free(ps);
  free(offs);
  free(recs);
  return newest;
}

typedef struct {
  store_t *to;
  int32_t partition;
} move_t;

static int move_one(void *ctx, uint64_t user_id, int64_t last_seen_ms, const void *blob) {
  move_t *mv = ctx;
  return store_load(mv->to, mv->partition, user_id, last_seen_ms, blob);
}

int warmstart_run(const warmup_opts_t *opts, pipeline_t *pipe, const input_t *input,
                  uint32_t next_count, const int32_t *partitions, const int64_t *positions,
                  size_t n, int stall_ms, void (*progress)(void *ctx), void *ctx,
                  uint64_t *users, uint64_t *applied, uint64_t *window, char *errstr, size_t errstr_size) {
  const model_t *running = pipeline_model(pipe);
  model_t *m = NULL, *got_model = NULL;
  pipeline_t *wpipe = NULL;
  warmup_t *w = NULL;
  char why[512];
  *applied = *window = 0;
  int rc = model_from_params(model_dims(running), model_half_life(running),
                             model_vocab_ids(running), model_params(running), NULL, &m, why,
                             sizeof why);
  if (rc) {
    snprintf(errstr, errstr_size, "cannot copy the running model: %s", why);
    return rc;
  }
  model_set_next_count(m, next_count);
  if (model_fingerprint(m) != pipeline_fingerprint(pipe)) {
    snprintf(errstr, errstr_size, "the running model's copy has fingerprint %08x, not %08x",
             model_fingerprint(m), pipeline_fingerprint(pipe));
    model_destroy(m);
    return IX_ESTATE;
  }
  warmup_opts_t o = *opts;
  if (o.window_ms > 0) {
    int64_t ts = newest_ts(opts, partitions, positions, n);
    if (ts > o.ref_ts_ms) o.ref_ts_ms = ts;
  }
  if ((rc = warmup_start(&o, m, partitions, positions, n, &w, why, sizeof why))) {
    snprintf(errstr, errstr_size, "cannot start the warm-up: %s", why);
    model_destroy(m);
    return rc;
  }
  m = NULL; /* the warm-up's */
  /* wait until every event below the positions is applied (the positions
   * stay put: the figures are then final), then hand over */
  uint64_t last_applied = 0, last_move = ix_mono_ns(), last_progress = last_move;
  warmup_stats_t st;
  for (;;) {
    warmup_get_stats(w, &st);
    if (st.state == WARMUP_FAILED) {
      snprintf(errstr, errstr_size, "the warm-up failed: %s", warmup_error(w));
      rc = IX_ESTATE;
      break;
    }
    uint64_t now = ix_mono_ns();
    /* every offset below the positions is taken before its batch is applied
     * and counted: done once the counts cover the window (or, with offsets
     * missing from it, a compacted or transactional topic, stay put) */
    if (st.behind == 0 && (st.applied + st.skipped >= st.window ||
                           (st.applied + st.skipped == last_applied &&
                            now - last_move > SETTLE_NS)))
      break;
    if (st.applied + st.skipped != last_applied) {
      last_applied = st.applied + st.skipped;
      last_move = now;
    } else if (now - last_move > (uint64_t)stall_ms * 1000000u) {
      snprintf(errstr, errstr_size, "nothing applied for %d s (%" PRIu64 " offsets still to "
               "read)", stall_ms / 1000, st.behind);
      rc = IX_EKAFKA;
      break;
    }
    if (progress && now - last_progress > 1000000000u) {
      progress(ctx);
      last_progress = now;
    }
    struct timespec ts = {0, POLL_NS};
    nanosleep(&ts, NULL);
  }
  if (!rc) {
    rc = warmup_finish(w, 5000, input, &wpipe, &got_model);
    if (rc == 1) {
      snprintf(errstr, errstr_size, "the warm-up did not hand over");
      rc = IX_EKAFKA;
    } else if (rc) {
      snprintf(errstr, errstr_size, "the warm-up failed: %s", warmup_error(w));
    }
  }
  if (rc) {
    warmup_destroy(w);
    return rc;
  }
  /* w is freed; the states move into the serving store */
  store_t *from = pipeline_store(wpipe), *to = pipeline_store(pipe);
  for (size_t i = 0; i < n && !rc; i++) {
    move_t mv = {to, partitions[i]};
    rc = store_foreach(from, partitions[i], move_one, &mv);
    if (!rc) rc = store_order_partition(to, partitions[i]);
    users[i] = store_partition_users(to, partitions[i]);
  }
  if (rc) {
    snprintf(errstr, errstr_size, "cannot move the warmed states into the serving store: %s",
             ix_strerror(rc));
    for (size_t i = 0; i < n; i++) store_drop_partition(to, partitions[i]);
  }
  pipeline_destroy(wpipe);
  model_destroy(got_model);
  *applied = st.applied;
  *window = st.window;
  return rc;
}

int warmstart_metrics_register(metrics_t *reg, warmstart_metrics_t *wsm) {
  int rc = metrics_counter_new(reg, &wsm->restores, "interestd_state_restores_total",
                               "Partition assignments by where their states came from.",
                               "source", "warm", NULL);
  if (!rc)
    rc = metrics_counter_new(reg, &wsm->users, "interestd_state_restored_users_total",
                             "Users whose state was restored, by source.", "source", "warm",
                             NULL);
  return rc;
}
