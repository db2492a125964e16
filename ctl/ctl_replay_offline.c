/* interestctl replay --offline: the daemon's processing over a record file,
 * with no broker. The same pipeline (core/pipeline.c: codec, state store,
 * model, emission policy) the daemon runs, fed in batches of batch.max_events
 * records in file order, writing one output record per prediction.
 *
 * Deterministic: the bytes written depend only on the input, the model and
 * the configuration. Where the daemon reads the wall clock, offline replay
 * reads event time instead: a prediction's emit time ("et") is its source
 * event's time, and the store's clock (last-seen times, which order LRU
 * eviction under state.memory_limit_mb) is the largest record timestamp read
 * so far. Idle-TTL expiry is not applied (the daemon runs it on a wall-clock
 * timer; see docs/STATE.md "Offline replay"). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/reject.h"
#include "core/pipeline.h"
#include "ctl/ctl.h"
#include "daemon/config.h"
#include "model/model.h"
#include "state/checkpoint.h"
#include "state/store.h"
#include "stream/codec.h"
#include "stream/input.h"
#include "stream/output.h"
#include "stream/recfile.h"

#define REJECTS_SHOWN 10

int ctl_replay_offline(int argc, char **argv);

static void usage(FILE *out) {
  fprintf(out,
          "usage: interestctl replay --offline --input EVENTS.rec --output PRED.rec\n"
          "         [-c interestd.conf] [--set section.key=value]... [--model FILE]\n"
          "         [--check-state CHECKPOINT_DIR] [--write-state CHECKPOINT_DIR]\n"
          "         [--read-state CHECKPOINT_DIR] [--quiet]\n"
          "Runs interestd's processing (codec, state store, model, emission policy) over a\n"
          "record file with no broker, in batches of batch.max_events records in file order\n"
          "(each partition's offsets must increase, as a consumer would see them), and\n"
          "writes one record per prediction: key = user id, value = prediction message,\n"
          "partition/offset = the source event's, timestamp = event time. Output is\n"
          "deterministic: the emit time of each prediction is its event's time, not the\n"
          "wall clock. Rejected messages are counted and the first %d are shown.\n"
          "Only the files given are read (no implicit /etc config); --model overrides\n"
          "model.path.\n"
          "  --check-state DIR  afterwards, restore each input partition's newest valid\n"
          "                     checkpoint from DIR (written by interestd) and compare it\n"
          "                     with the replay's final states: its offset must be the\n"
          "                     partition's end and every user's state bit-identical\n"
          "                     (exit 1 otherwise)\n"
          "  --write-state DIR  afterwards, write each input partition's states as a\n"
          "                     checkpoint in DIR at the partition's end of input, with\n"
          "                     the replayed model's fingerprint: a warm checkpoint set\n"
          "                     for a daemon that starts with this model (blue/green)\n"
          "  --read-state DIR   first, restore each input partition's newest valid\n"
          "                     checkpoint from DIR (as interestd does at assignment) and\n"
          "                     skip the partition's records before its offset; a\n"
          "                     checkpoint of another model is refused (exit 1)\n",
          REJECTS_SHOWN);
}

/* Per input partition: last offset seen (offsets must increase). */
typedef struct {
  int64_t *last; /* -1 = not seen */
  int32_t n;
} parts_t;

static int parts_see(parts_t *ps, int32_t partition, int64_t offset) {
  if (partition < 0 || partition > 65535) return IX_ERANGE;
  if (partition >= ps->n) {
    int32_t n = ps->n ? ps->n : 16;
    while (n <= partition) n *= 2;
    int64_t *l = realloc(ps->last, (size_t)n * sizeof *l);
    if (!l) return IX_ENOMEM;
    for (int32_t i = ps->n; i < n; i++) l[i] = -1;
    ps->last = l;
    ps->n = n;
  }
  if (offset <= ps->last[partition]) return IX_EINVAL;
  ps->last[partition] = offset;
  return 0;
}

/* A batch of copied records (recfile_read's pointers live only until the next read). */
typedef struct {
  rec_t *recs;
  size_t *key_at, *value_at;
  size_t n, cap;
  char *mem;
  size_t used, mem_cap;
} batch_t;

static int batch_add(batch_t *b, const rec_t *r) {
  if (b->n == b->cap) return IX_EFULL;
  size_t need = b->used + r->key_len + r->value_len;
  if (need > b->mem_cap) {
    size_t cap = b->mem_cap ? b->mem_cap : 65536;
    while (cap < need) cap *= 2;
    char *m = realloc(b->mem, cap);
    if (!m) return IX_ENOMEM;
    b->mem = m;
    b->mem_cap = cap;
  }
  b->recs[b->n] = *r;
  b->key_at[b->n] = b->used;
  if (r->key_len) memcpy(b->mem + b->used, r->key, r->key_len);
  b->used += r->key_len;
  b->value_at[b->n] = b->used;
  if (r->value_len) memcpy(b->mem + b->used, r->value, r->value_len);
  b->used += r->value_len;
  b->n++;
  return 0;
}

/* Points the records at the (final) copy buffer. */
static void batch_fix(batch_t *b) {
  for (size_t i = 0; i < b->n; i++) {
    b->recs[i].key = b->mem + b->key_at[i];
    b->recs[i].value = b->mem + b->value_at[i];
  }
}

typedef struct {
  uint64_t records, processed, suppressed, preds, rejected, batches, new_users, evicted;
  uint64_t rejected_by[IX_REJECT_REASONS];
  uint64_t main_ns, shadow_ns; /* time in pipeline_process: served model, shadow */
} totals_t;

/* model.shadow_path: scored on the same batches with its own states (every
 * prediction scored, none written), as the daemon does; NULL = none */
static pipeline_t *g_shadow;

/* Runs one batch through the pipeline and writes its predictions. */
static int run_batch(pipeline_t *pipe, batch_t *b, int64_t clock_ms, rec_writer_t *w,
                     const output_opts_t *oo, codec_buf_t *enc, totals_t *t, char *errstr, size_t errstr_size) {
  if (b->n == 0) return 0;
  batch_fix(b);
  pipeline_result_t res;
  uint64_t t0 = ix_mono_ns();
  int rc = pipeline_process(pipe, b->recs, b->n, clock_ms, &res);
  uint64_t t1 = ix_mono_ns();
  t->main_ns += t1 - t0;
  if (!rc && g_shadow) {
    pipeline_result_t sres;
    rc = pipeline_process(g_shadow, b->recs, b->n, clock_ms, &sres);
    t->shadow_ns += ix_mono_ns() - t1;
  }
  if (rc) {
    snprintf(errstr, errstr_size, "processing the batch of records %" PRIu64 "..%" PRIu64
             " failed: %s", t->records - b->n, t->records - 1, ix_strerror(rc));
    return rc;
  }
  t->batches++;
  t->processed += res.n_processed;
  t->suppressed += res.n_suppressed;
  t->new_users += res.n_new_users;
  t->evicted += res.n_evicted;
  for (size_t k = 0; k < res.n_rejects; k++) {
    const pipeline_reject_t *rj = &res.rejects[k];
    const rec_t *r = &b->recs[rj->src];
    size_t ri = ix_reject_index(rj->err);
    const char *label = ix_reject_label(ri);
    if (t->rejected < REJECTS_SHOWN)
      fprintf(stderr, "interestctl replay: rejected partition %d offset %" PRId64 ": %s (%s)\n",
              (int)r->partition, r->offset, rj->reason, label);
    t->rejected++;
    t->rejected_by[ri]++;
  }
  for (size_t k = 0; k < res.n_preds; k++) {
    prediction_t pred = res.preds[k];
    /* the daemon's wall clock, replaced by event time for reproducible bytes */
    pred.emit_ts_ms = pred.event_ts_ms;
    char key[CODEC_KEY_MAX];
    size_t klen;
    rc = output_message(oo, &pred, enc, key, &klen);
    if (rc) {
      snprintf(errstr, errstr_size, "encoding the prediction for partition %d offset %" PRId64
               ": %s", (int)pred.src_partition, pred.src_offset, ix_strerror(rc));
      return rc;
    }
    rec_t out = {.partition = pred.src_partition, .offset = pred.src_offset,
                 .ts_ms = pred.event_ts_ms, .key = key, .key_len = klen,
                 .value = enc->data, .value_len = enc->len};
    rc = recfile_write(w, &out);
    if (rc) {
      snprintf(errstr, errstr_size, "writing a prediction: %s", ix_strerror(rc));
      return rc;
    }
    t->preds++;
  }
  b->n = 0;
  b->used = 0;
  return 0;
}

typedef struct {
  store_t *other;
  int32_t partition;
  size_t blob_size;
  uint64_t same, differ, missing;
  uint64_t first_user;
  size_t first_byte;
} cmp_t;

static int cmp_visit(void *ctx, uint64_t user_id, int64_t last_seen_ms, const void *blob) {
  cmp_t *c = ctx;
  (void)last_seen_ms; /* a wall-clock time in the daemon's store: not state */
  const unsigned char *theirs = store_get(c->other, c->partition, user_id, 0, 0, NULL);
  if (!theirs) {
    if (c->missing++ == 0 && c->differ == 0) c->first_user = user_id;
    return 0;
  }
  if (memcmp(theirs, blob, c->blob_size) == 0) {
    c->same++;
    return 0;
  }
  if (c->differ++ == 0 && c->missing == 0) {
    c->first_user = user_id;
    const unsigned char *ours = blob;
    size_t i = 0;
    while (i < c->blob_size && ours[i] == theirs[i]) i++;
    c->first_byte = i;
  }
  return 0;
}

/* Compares each input partition's newest valid checkpoint in dir with the
 * replay's states. Returns the number of partitions that differ (printed). */
static int check_state(const char *dir, pipeline_t *pipe, const parts_t *ps, int quiet) {
  store_t *mine = pipeline_store(pipe);
  int bad = 0;
  uint64_t users_total = 0;
  for (int32_t p = 0; p < ps->n; p++) {
    if (ps->last[p] < 0) continue;
    store_opts_t so = {.blob_size = store_blob_size(mine)};
    store_t *theirs = NULL;
    if (store_new(&so, &theirs)) {
      fprintf(stderr, "interestctl replay: out of memory checking state\n");
      return bad + 1;
    }
    char why[1024] = "";
    ckpt_restore_info_t info;
    int rc = ckpt_restore_partition(dir, p, pipeline_fingerprint(pipe), theirs, &info, why,
                                    sizeof why);
    if (rc || info.generation == 0) {
      fprintf(stderr, "interestctl replay: check-state: partition %d: no usable checkpoint "
              "in %s%s%s\n", (int)p, dir, *why ? ": " : "", why);
      store_destroy(theirs);
      bad++;
      continue;
    }
    cmp_t c = {.other = theirs, .partition = p, .blob_size = store_blob_size(mine)};
    store_foreach(mine, p, cmp_visit, &c);
    size_t n_mine = store_partition_users(mine, p), n_theirs = store_partition_users(theirs, p);
    int ok = info.next_offset == ps->last[p] + 1 && c.differ == 0 && c.missing == 0 &&
             n_mine == n_theirs;
    users_total += n_mine;
    if (!ok || !quiet)
      fprintf(stderr, "interestctl replay: check-state: partition %d: checkpoint generation %"
              PRIu64 " at offset %" PRId64 " (input ends at %" PRId64 "), users %zu vs %zu "
              "replayed: %" PRIu64 " identical, %" PRIu64 " differ, %" PRIu64 " missing%s\n",
              (int)p, info.generation, info.next_offset, ps->last[p] + 1, n_theirs, n_mine,
              c.same, c.differ, c.missing, ok ? "" : "  <-- MISMATCH");
    if (c.differ && !c.missing)
      fprintf(stderr, "interestctl replay: check-state: partition %d: user %" PRIu64
              " is the first that differs, at byte %zu of %zu\n", (int)p, c.first_user,
              c.first_byte, c.blob_size);
    else if (c.missing)
      fprintf(stderr, "interestctl replay: check-state: partition %d: user %" PRIu64
              " is not in the checkpoint\n", (int)p, c.first_user);
    bad += !ok;
    store_destroy(theirs);
  }
  fprintf(stderr, "interestctl replay: check-state: %s (%" PRIu64 " users in %s)\n",
          bad ? "checkpoints DIFFER from the replay" : "every user's state is bit-identical",
          users_total, dir);
  return bad;
}

/* --read-state: restores partition p from dir into the pipeline's store
 * (first time p is seen); *resume = the checkpoint's offset (0 = none).
 * Returns 0, or 1 after printing why. */
static int read_state(const char *dir, pipeline_t *pipe, int32_t p, int64_t *resume, int quiet) {
  char why[1024] = "";
  ckpt_restore_info_t info;
  int rc = ckpt_restore_partition(dir, p, pipeline_fingerprint(pipe), pipeline_store(pipe), &info,
                                  why, sizeof why);
  if (rc) {
    fprintf(stderr, "interestctl replay: read-state: partition %d: %s\n", (int)p,
            *why ? why : ix_strerror(rc));
    return 1;
  }
  *resume = info.generation ? info.next_offset : 0;
  if (!quiet)
    fprintf(stderr, "interestctl replay: read-state: partition %d: %" PRIu64 " users from %s, "
            "records before offset %" PRId64 " skipped\n", (int)p, info.users, dir, *resume);
  return 0;
}

/* Writes each input partition's states as a checkpoint in dir at its end of
 * input (ckpt_write_partition: fsynced and published). Returns the number of
 * partitions that failed (printed). */
static int write_state(const char *dir, pipeline_t *pipe, const parts_t *ps, int quiet) {
  ckpt_opts_t co = {.dir = dir, .keep = 2};
  ckpt_t *ck = NULL;
  char why[1024] = "";
  if (ckpt_new(&co, &ck, why, sizeof why)) {
    fprintf(stderr, "interestctl replay: write-state: %s\n", why);
    return 1;
  }
  int bad = 0;
  uint64_t users = 0, bytes = 0;
  for (int32_t p = 0; p < ps->n; p++) {
    if (ps->last[p] < 0) continue;
    ckpt_result_t res;
    if (ckpt_write_partition(ck, pipeline_store(pipe), p, ps->last[p] + 1,
                             pipeline_fingerprint(pipe), &res, why, sizeof why)) {
      fprintf(stderr, "interestctl replay: write-state: partition %d: %s\n", (int)p, why);
      bad++;
      continue;
    }
    users += res.users;
    bytes += res.bytes;
    if (!quiet)
      fprintf(stderr, "interestctl replay: write-state: partition %d: generation %" PRIu64
              " at offset %" PRId64 ", %" PRIu64 " users\n", (int)p, res.generation,
              res.next_offset, res.users);
  }
  ckpt_destroy(ck);
  fprintf(stderr, "interestctl replay: write-state: %s%" PRIu64 " users, %" PRIu64
          " bytes in %s (fingerprint %08x)\n", bad ? "FAILED for some partitions; " : "", users,
          bytes, dir, (unsigned)pipeline_fingerprint(pipe));
  return bad;
}

int ctl_replay_offline(int argc, char **argv) {
  const char *input = NULL, *output = NULL, *model_path = NULL, *check_dir = NULL;
  const char *write_dir = NULL, *read_dir = NULL;
  int64_t *resume = NULL; /* --read-state: per partition, the restored offset */
  uint64_t n_resumed = 0; /* records skipped because they are in a restored state */
  config_args_t ca = {0};
  int quiet = 0;
  static const struct option longopts[] = {
      {"offline", no_argument, 0, 'O'},         {"input", required_argument, 0, 'i'},
      {"output", required_argument, 0, 'o'},    {"config", required_argument, 0, 'c'},
      {"set", required_argument, 0, 's'},       {"model", required_argument, 0, 'm'},
      {"check-state", required_argument, 0, 'C'}, {"quiet", no_argument, 0, 'q'},
      {"write-state", required_argument, 0, 'W'}, {"read-state", required_argument, 0, 'R'},
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "i:o:c:s:m:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 'O': break;
    case 'i': input = optarg; break;
    case 'o': output = optarg; break;
    case 'c':
    case 's':
      if (config_args_take(&ca, c, optarg, "interestctl replay")) return 2;
      break;
    case 'm': model_path = optarg; break;
    case 'C': check_dir = optarg; break;
    case 'W': write_dir = optarg; break;
    case 'R': read_dir = optarg; break;
    case 'q': quiet = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc || !input || !output) {
    usage(stderr);
    return 2;
  }

  int status = 1, rc;
  char errstr[1024] = "";
  config_t *cfg = NULL;
  model_t *model = NULL, *shadow_model = NULL;
  pipeline_t *pipe = NULL;
  input_t *in = NULL;
  rec_reader_t *rd = NULL;
  rec_writer_t *w = NULL;
  codec_buf_t enc = {0};
  batch_t b = {0};
  parts_t ps = {0};
  totals_t t = {0};

  rc = config_load(ca.path, ca.sets, ca.n_sets, &cfg, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestctl replay: %s\n", errstr);
    return 2;
  }
  log_set_level(cfg->log.level < LOG_LVL_WARN ? cfg->log.level : LOG_LVL_WARN);
  if (!model_path) model_path = cfg->model.path;
  rc = model_load(model_path, &model, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestctl replay: model %s: %s\n", model_path, errstr);
    goto out;
  }
  model_set_next_count(model, cfg->output.next_categories);
  store_opts_t so = {.mem_limit_bytes = (size_t)cfg->state.memory_limit_mb << 20,
                     .idle_ttl_ms = (int64_t)cfg->state.idle_ttl_s * 1000};
  rc = pipeline_new(model, &so, &cfg->emit, &pipe);
  if (rc) {
    fprintf(stderr, "interestctl replay: cannot create the pipeline: %s\n", ix_strerror(rc));
    goto out;
  }
  if ((rc = input_new(&cfg->input, &in, errstr, sizeof errstr))) {
    fprintf(stderr, "interestctl replay: %s\n", errstr);
    goto out;
  }
  pipeline_set_input(pipe, in);
  if (cfg->model.shadow_path && *cfg->model.shadow_path) {
    emit_opts_t every = {.policy = EMIT_EVERY, .top_n_change = PRED_TOPK};
    if ((rc = model_load(cfg->model.shadow_path, &shadow_model, errstr, sizeof errstr))) {
      fprintf(stderr, "interestctl replay: shadow model %s: %s\n", cfg->model.shadow_path, errstr);
      goto out;
    }
    if ((rc = pipeline_new(shadow_model, &so, &every, &g_shadow))) {
      fprintf(stderr, "interestctl replay: cannot create the shadow pipeline: %s\n", ix_strerror(rc));
      goto out;
    }
    pipeline_set_input(g_shadow, in);
  }
  b.cap = cfg->batch.max_events ? cfg->batch.max_events : 1;
  b.recs = malloc(b.cap * sizeof *b.recs);
  b.key_at = malloc(b.cap * sizeof *b.key_at);
  b.value_at = malloc(b.cap * sizeof *b.value_at);
  if (!b.recs || !b.key_at || !b.value_at) {
    fprintf(stderr, "interestctl replay: out of memory\n");
    goto out;
  }
  rc = recfile_reader_open(input, &rd, errstr, sizeof errstr);
  if (!rc) rc = recfile_writer_open(output, RECFILE_CREATE, &w, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestctl replay: %s\n", errstr);
    goto out;
  }

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int64_t clock_ms = INT64_MIN; /* event-time clock: largest timestamp read so far */
  rec_t r;
  for (;;) {
    rc = recfile_read(rd, &r);
    if (rc == IX_EEOF) break;
    if (rc) {
      fprintf(stderr, "interestctl replay: %s: damaged record at byte offset %" PRIu64
              " (%s); %" PRIu64 " records before it were processed\n", input,
              recfile_reader_error_offset(rd), ix_strerror(rc), t.records);
      goto flush;
    }
    int first = r.partition >= 0 && (r.partition >= ps.n || ps.last[r.partition] < 0);
    rc = parts_see(&ps, r.partition, r.offset);
    if (rc) {
      fprintf(stderr, "interestctl replay: %s: record at byte offset %" PRIu64 " (partition %d"
              " offset %" PRId64 ") %s\n", input, recfile_reader_record_offset(rd),
              (int)r.partition, r.offset,
              rc == IX_EINVAL ? "does not come after the partition's previous offset: a "
                                "consumer never sees that order"
                              : "has an unusable partition number");
      goto flush;
    }
    if (read_dir && first) {
      int64_t *nr = realloc(resume, (size_t)ps.n * sizeof *nr);
      if (!nr) {
        fprintf(stderr, "interestctl replay: out of memory\n");
        goto out;
      }
      resume = nr;
      /* the restore replaces the partition's states: run what is batched first */
      rc = run_batch(pipe, &b, clock_ms, w, &cfg->output, &enc, &t, errstr, sizeof errstr);
      if (rc) goto fail;
      if (read_state(read_dir, pipe, r.partition, &resume[r.partition], quiet)) goto out;
    }
    if (read_dir && r.offset < resume[r.partition]) {
      n_resumed++;
      continue;
    }
    if (r.ts_ms > clock_ms) clock_ms = r.ts_ms;
    if (b.n == b.cap) {
      rc = run_batch(pipe, &b, clock_ms, w, &cfg->output, &enc, &t, errstr, sizeof errstr);
      if (rc) goto fail;
    }
    rc = batch_add(&b, &r);
    if (rc) {
      fprintf(stderr, "interestctl replay: out of memory\n");
      goto out;
    }
    t.records++;
  }
  rc = run_batch(pipe, &b, clock_ms, w, &cfg->output, &enc, &t, errstr, sizeof errstr);
  if (rc) goto fail;
  status = 0;
flush:
  /* records before a damaged one are processed and written, and the exit
   * status still says the input was bad */
  if (status) {
    rc = run_batch(pipe, &b, clock_ms, w, &cfg->output, &enc, &t, errstr, sizeof errstr);
    if (rc) goto fail;
  }
  rc = recfile_writer_close(w);
  w = NULL;
  if (rc) {
    fprintf(stderr, "interestctl replay: writing %s: %s\n", output, ix_strerror(rc));
    status = 1;
    goto out;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  store_stats_t ss;
  store_get_stats(pipeline_store(pipe), &ss);
  fprintf(stderr, "interestctl replay: offline: %" PRIu64 " records in %" PRIu64 " batches "
          "(max %u), %" PRIu64 " events processed, %" PRIu64 " predictions written to %s, %"
          PRIu64 " suppressed by emit policy %s, %" PRIu64 " rejected, %" PRIu64 " users, %"
          PRIu64 " evicted; model %s; %.2f s\n",
          t.records, t.batches, (unsigned)b.cap, t.processed, t.preds, output, t.suppressed,
          config_policy_name(cfg->emit.policy), t.rejected, ss.users, t.evicted,
          model_describe(model), secs);
  /* live quality, as the daemon exports it (interestd_quality_*) */
  for (int sh = 0; sh < 1 + (g_shadow != NULL); sh++)
    for (unsigned q = 0; q < (sh ? 1u : (unsigned)PIPELINE_Q_N); q++) {
      const pipeline_quality_t *pq = pipeline_quality(sh ? g_shadow : pipe, q);
      double nt = pq->targets ? (double)pq->targets : 1.0;
      fprintf(stderr, "interestctl replay: quality %-8s targets %" PRIu64 " Acc@1 %.4f Recall@5 %.4f "
              "Recall@10 %.4f MRR@10 %.4f\n", sh ? "shadow" : pipeline_quality_name(q), pq->targets,
              (double)pq->hit1 / nt, (double)pq->hit5 / nt, (double)pq->hit10 / nt, pq->rr_sum / nt);
    }
  if (g_shadow)
    fprintf(stderr, "interestctl replay: shadow %s: %.3f s in its pipeline against %.3f s for the "
            "served model's (%.2fx; shadow/served)\n", model_describe(shadow_model),
            (double)t.shadow_ns / 1e9, (double)t.main_ns / 1e9,
            t.main_ns ? (double)t.shadow_ns / (double)t.main_ns : 0.0);
  if (t.rejected) {
    fprintf(stderr, "interestctl replay: rejected by reason:");
    for (size_t i = 0; i < IX_REJECT_REASONS; i++)
      if (t.rejected_by[i]) fprintf(stderr, " %s %" PRIu64, ix_reject_label(i), t.rejected_by[i]);
    fputc('\n', stderr);
  }
  if (read_dir)
    fprintf(stderr, "interestctl replay: read-state: %" PRIu64 " records skipped (in the states "
            "restored from %s)\n", n_resumed, read_dir);
  if (write_dir && status == 0 && write_state(write_dir, pipe, &ps, quiet)) status = 1;
  if (check_dir && status == 0 && check_state(check_dir, pipe, &ps, quiet)) status = 1;
  goto out;
fail:
  fprintf(stderr, "interestctl replay: %s\n", errstr);
  status = 1;
out:
  if (w) recfile_writer_close(w);
  recfile_reader_close(rd);
  pipeline_destroy(pipe);
  pipeline_destroy(g_shadow);
  g_shadow = NULL;
  model_destroy(shadow_model);
  input_destroy(in);
  model_destroy(model);
  config_destroy(cfg);
  codec_buf_free(&enc);
  free(b.recs);
  free(b.key_at);
  free(b.value_at);
  free(b.mem);
  free(ps.last);
  free(resume);
  return status;
}
