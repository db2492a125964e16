/* interestd --demo: mock cluster + feeder thread + the real daemon + a
 * once-a-second display. The feeder is the only thread of ours besides the
 * loop; it sleeps to pace the stream (the loop never does). */
#include "ctl/demo.h"

#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "ctl/importer.h"
#include "daemon/daemon.h"
#include "stream/codec.h"
#include "stream/input.h"
#include "stream/mockbroker.h"
#include "stream/producer.h"
#include "stream/recfile.h"

#ifndef INTERESTD_SOURCE_DIR
#define INTERESTD_SOURCE_DIR "."
#endif
#ifndef INTERESTD_DATADIR
#define INTERESTD_DATADIR "/usr/share/interestd"
#endif

#define DEMO_TRACKED 3
#define DEMO_INPUT "events"
#define DEMO_OUTPUT "interests"
#define DEMO_DLQ "interests-dlq"

typedef struct {
  int32_t partition;
  uint32_t key_len, value_len;
  char *key, *value;
} demo_rec_t;

typedef struct {
  uint64_t user;
  prediction_t last;
  int have;
  uint64_t top_changes;
  uint64_t last_top;
} tracked_t;

typedef struct {
  const demo_opts_t *opts;
  const char *bootstraps;
  demo_rec_t *recs;
  size_t n_recs;
  pthread_t thread;
  int thread_started;
  atomic_int stop;
  atomic_int done;           /* feeder finished (non-loop mode) */
  atomic_int consuming;      /* the daemon owns partitions: start feeding */
  atomic_ullong fed;         /* messages acknowledged by the broker */
  atomic_ullong fed_failed;
  daemon_t *d;
  uv_timer_t tick;
  int ticks;
  tracked_t tracked[DEMO_TRACKED];
  uint64_t last_processed;
  uint64_t max_users;
  struct timespec t0;
  int tty;
  int rc;
} demo_t;

static double since(const struct timespec *t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *first_glob(const char *pattern) {
  static char found[4096];
  glob_t g;
  if (glob(pattern, 0, NULL, &g) != 0) return NULL;
  snprintf(found, sizeof found, "%s", g.gl_pathv[0]);
  globfree(&g);
  return found;
}

static const char *demo_default_model(void) {
  const char *p = first_glob(INTERESTD_SOURCE_DIR "/model/weights/*.ixm");
  if (!p) p = first_glob(INTERESTD_DATADIR "/*.ixm");
  return p;
}

/* The sample the demo streams: a ../shared/data folder beside the source tree
 * overrides the one the repository carries (data/, gzip); an installed
 * package carries it in its data directory. */
static const char *demo_default_data(void) {
  static const char *const candidates[] = {
      INTERESTD_SOURCE_DIR "/../shared/data/taobao_userbehavior_head100k/small_sample.csv",
      INTERESTD_SOURCE_DIR "/data/taobao_userbehavior_head100k/small_sample.csv.gz",
      INTERESTD_DATADIR "/data/taobao_userbehavior_head100k/small_sample.csv.gz"};
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
    if (access(candidates[i], R_OK) == 0) return candidates[i];
  return NULL;
}

/* ---------------------------------------------------------------- data */

static void free_recs(demo_t *dm) {
  for (size_t i = 0; i < dm->n_recs; i++) {
    free(dm->recs[i].key);
    free(dm->recs[i].value);
  }
  free(dm->recs);
}

/* Imports the CSV (sorted by event time, keyed and partitioned by user) into
 * memory through a temporary record file. */
static int load_data(demo_t *dm, const char *csv, int partitions) {
  char tmpl[] = "/tmp/interestd-demo-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) {
    perror("interestd --demo: mkstemp");
    return IX_ESYS;
  }
  close(fd);
  char errstr[512];
  importer_opts_t io = {.format = IMPORT_TAOBAO, .input = csv, .output = tmpl,
                        .partitions = partitions};
  importer_stats_t is;
  int rc = importer_run(&io, &is, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestd --demo: importing %s: %s\n", csv, errstr);
    unlink(tmpl);
    return rc;
  }
  rec_reader_t *r = NULL;
  rc = recfile_reader_open(tmpl, &r, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestd --demo: %s\n", errstr);
    unlink(tmpl);
    return rc;
  }
  size_t cap = is.events ? is.events : 1;
  dm->recs = calloc(cap, sizeof *dm->recs);
  rec_t rec;
  while (dm->recs && dm->n_recs < cap && (rc = recfile_read(r, &rec)) == 0) {
    demo_rec_t *d = &dm->recs[dm->n_recs];
    d->partition = rec.partition;
    d->key_len = (uint32_t)rec.key_len;
    d->value_len = (uint32_t)rec.value_len;
    d->key = malloc(rec.key_len + 1);
    d->value = malloc(rec.value_len + 1);
    if (!d->key || !d->value) break;
    memcpy(d->key, rec.key, rec.key_len);
    memcpy(d->value, rec.value, rec.value_len);
    dm->n_recs++;
  }
  recfile_reader_close(r);
  unlink(tmpl);
  if (!dm->recs || dm->n_recs != is.events) {
    fprintf(stderr, "interestd --demo: could not load the imported events\n");
    return IX_ENOMEM;
  }
  fprintf(stderr, "interestd --demo: %s: %" PRIu64 " events, %" PRIu64 " users, %" PRIu64
                  " categories\n", csv, is.events, is.users, is.categories);
  return 0;
}

/* The users with the most events are the ones worth watching. */
static void pick_tracked(demo_t *dm, size_t n_events) {
  typedef struct {
    uint64_t user, count;
  } uc_t;
  size_t cap = 1;
  while (cap < 2 * n_events + 2) cap <<= 1;
  uc_t *tab = calloc(cap, sizeof *tab);
  if (!tab) return;
  for (size_t i = 0; i < n_events; i++) {
    char buf[32];
    size_t kl = dm->recs[i].key_len < sizeof buf - 1 ? dm->recs[i].key_len : sizeof buf - 1;
    memcpy(buf, dm->recs[i].key, kl);
    buf[kl] = '\0';
    uint64_t u = strtoull(buf, NULL, 10) + 1; /* +1: 0 marks an empty slot */
    size_t h = (size_t)(u * 0x9e3779b97f4a7c15ull) & (cap - 1);
    while (tab[h].user && tab[h].user != u) h = (h + 1) & (cap - 1);
    tab[h].user = u;
    tab[h].count++;
  }
  for (int k = 0; k < DEMO_TRACKED; k++) {
    size_t best = cap;
    for (size_t h = 0; h < cap; h++) {
      if (!tab[h].user) continue;
      if (best == cap || tab[h].count > tab[best].count) best = h;
    }
    if (best == cap) break;
    dm->tracked[k].user = tab[best].user - 1;
    tab[best].user = 0;
  }
  free(tab);
}

/* ---------------------------------------------------------------- feeder */

static void feeder_dr(void *ctx, const producer_report_t *r) {
  demo_t *dm = ctx;
  if (r->err) atomic_fetch_add(&dm->fed_failed, 1);
  else atomic_fetch_add(&dm->fed, 1);
}

static void sleep_until(const struct timespec *t) {
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) != 0) {}
}

static void *feeder_main(void *arg) {
  demo_t *dm = arg;
  char errstr[512];
  producer_t *p = NULL;
  static const char *const props[] = {"linger.ms=2", "queue.buffering.max.messages=200000",
                                      NULL};
  producer_opts_t po = {.brokers = dm->bootstraps, .props = props, .on_delivery = feeder_dr,
                        .ctx = dm};
  if (producer_new(&po, &p, errstr, sizeof errstr)) {
    fprintf(stderr, "interestd --demo: feeder: %s\n", errstr);
    atomic_store(&dm->done, 1);
    return NULL;
  }
  producer_topic_t *t = producer_topic(p, DEMO_INPUT);
  /* wait for the daemon's group join (about 3 s on the mock broker), so the
   * latency shown is the pipeline's and not the join's */
  while (!atomic_load(&dm->consuming) && !atomic_load(&dm->stop)) {
    struct timespec ms10 = {0, 10000000};
    nanosleep(&ms10, NULL);
  }
  double rate = dm->opts->rate;
  size_t n = dm->n_recs;
  if (dm->opts->max_events && dm->opts->max_events < n) n = dm->opts->max_events;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  double budget = 0.0;
  do {
    for (size_t i = 0; i < n && !atomic_load(&dm->stop);) {
      if (rate > 0) {
        /* 1 ms ticks: send what the rate allows, then sleep to the next tick */
        if (budget < 1.0) {
          next.tv_nsec += 1000000;
          if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
          }
          sleep_until(&next);
          budget += rate / 1000.0;
          if (budget > rate / 10.0 + 1.0) budget = rate / 10.0 + 1.0; /* no burst after a stall */
          producer_poll(p, 0);
          continue;
        }
        budget -= 1.0;
      }
      const demo_rec_t *r = &dm->recs[i];
      int rc = producer_send(p, t, r->partition, r->key, r->key_len, r->value, r->value_len, 0,
                             NULL, 0, 0);
      if (rc == IX_EFULL) {
        producer_poll(p, 10);
        continue;
      }
      if (rc) atomic_fetch_add(&dm->fed_failed, 1);
      i++;
      if ((i & 1023) == 0) producer_poll(p, 0);
    }
  } while (dm->opts->loop && !atomic_load(&dm->stop));
  while (producer_outstanding(p) && !atomic_load(&dm->stop)) producer_poll(p, 100);
  producer_destroy(p, 1000);
  atomic_store(&dm->done, 1);
  return NULL;
}

/* ---------------------------------------------------------------- display */

static void on_prediction(void *ctx, const prediction_t *pred) {
  demo_t *dm = ctx;
  for (int k = 0; k < DEMO_TRACKED; k++) {
    tracked_t *t = &dm->tracked[k];
    if (t->user != pred->user_id) continue;
    uint64_t top = pred->n_next ? pred->next[0].category_id : 0;
    if (t->have && top != t->last_top) t->top_changes++;
    t->last_top = top;
    t->last = *pred;
    t->have = 1;
  }
}

static void show(demo_t *dm, int final) {
  daemon_stats_t s;
  daemon_get_stats(dm->d, &s, 1);
  double el = since(&dm->t0);
  uint64_t fed = atomic_load(&dm->fed);
  double tput = (double)(s.processed - dm->last_processed) / (dm->ticks ? 1.0 : el);
  dm->last_processed = s.processed;
  if (dm->tty && !final) fputs("\033[H\033[J", stdout);
  printf("interestd demo  %5.1fs  broker %s  (kcat -b %s -t %s -C)\n", el, dm->bootstraps,
         dm->bootstraps, DEMO_OUTPUT);
  printf("  fed %" PRIu64 "  consumed %" PRIu64 "  processed %" PRIu64 "  rejected %" PRIu64
         "  produced %" PRIu64 "  delivered %" PRIu64 "  in flight %" PRIu64 "\n",
         fed, s.consumed, s.processed, s.rejected, s.produced, s.delivered,
         s.outstanding + s.backlog);
  if (final)
    printf("  throughput %.0f events/s overall   users seen %" PRIu64 "\n",
           el > 0 ? (double)s.processed / el : 0.0, dm->max_users);
  else
    printf("  throughput %.0f events/s   users in state %" PRIu64 "   partitions %u\n", tput,
           s.users, s.partitions);
  if (s.q_targets)
    printf("  quality, %" PRIu64 " events vs the previous prediction: MRR@10 lstm %.3f  recency "
           "%.3f  decay %.3f   Recall@5 lstm %.3f  recency %.3f  decay %.3f\n",
           s.q_targets, s.q_mrr10[0], s.q_mrr10[1], s.q_mrr10[2], s.q_rec5[0], s.q_rec5[1],
           s.q_rec5[2]);
  if (s.q_targets && s.q_shadow)
    printf("  shadow model (model.shadow_path, nothing emitted): MRR@10 %.3f  Recall@5 %.3f\n",
           s.q_shadow_mrr10, s.q_shadow_rec5);
  if (final)
    printf("  latency, produce -> prediction acked: p50 %.1f ms  p99 %.1f ms   (queue read -> "
           "acked: p50 %.1f ms  p99 %.1f ms)\n",
           s.e2e_p50 * 1e3, s.e2e_p99 * 1e3, s.lat_p50 * 1e3, s.lat_p99 * 1e3);
  else
    printf("  latency, produce -> prediction acked (last second): p50 %.1f ms  p99 %.1f ms\n",
           s.win_e2e_p50 * 1e3, s.win_e2e_p99 * 1e3);
  for (int k = 0; k < DEMO_TRACKED; k++) {
    tracked_t *t = &dm->tracked[k];
    if (!t->user) continue;
    printf("  user %-8" PRIu64, t->user);
    if (!t->have) {
      printf(" (no events yet)\n");
      continue;
    }
    const prediction_t *p = &t->last;
    printf(" events %-4u fluctuation %.3f shift %.2f top changed %" PRIu64 "x  next:", p->n_events,
           (double)p->fluctuation, (double)p->shift_prob, t->top_changes);
    for (uint32_t i = 0; i < p->n_next && i < 3; i++)
      printf(" %s%" PRIu64 " %.2f", p->next[i].category_id ? "cat " : "", p->next[i].category_id,
             (double)p->next[i].p);
    if (p->n_rising) printf("  rising: cat %" PRIu64, p->rising[0].category_id);
    if (p->n_falling) printf("  falling: cat %" PRIu64, p->falling[0].category_id);
    printf("\n");
  }
  fflush(stdout);
}

static void tick_cb(uv_timer_t *h) {
  demo_t *dm = h->data;
  daemon_stats_t s;
  daemon_get_stats(dm->d, &s, 0);
  if (s.users > dm->max_users) dm->max_users = s.users;
  if (!atomic_load(&dm->consuming) && s.partitions > 0) {
    atomic_store(&dm->consuming, 1);
    clock_gettime(CLOCK_MONOTONIC, &dm->t0);
  }
  if (++dm->ticks % 10 == 0 && !dm->opts->quiet) show(dm, 0);
  if (!atomic_load(&dm->done) || dm->opts->loop) return;
  uint64_t fed = atomic_load(&dm->fed);
  /* finished: every fed event consumed, and every prediction delivered */
  if (s.consumed >= fed && s.processed + s.rejected >= s.consumed && s.outstanding == 0 &&
      s.backlog == 0 && s.delivered + s.dlq_delivered >= s.produced + s.dlq_produced) {
    if (atomic_load(&dm->fed_failed))
      fprintf(stderr, "interestd --demo: %llu events could not be fed\n",
              (unsigned long long)atomic_load(&dm->fed_failed));
    daemon_stop(dm->d);
  }
}

static void on_stop(void *ctx) {
  demo_t *dm = ctx;
  atomic_store(&dm->stop, 1);
  uv_timer_stop(&dm->tick);
  uv_close((uv_handle_t *)&dm->tick, NULL);
}

/* ---------------------------------------------------------------- JSON mode */

/* --json: the events as a Segment-style tracker writes them, read through
 * the [input] mapping docs/OPERATIONS.md shows for such a topic. */
static const char *const g_json_input[] = {
    "format", "json", "user_field", "userId", "category_field", "properties.category_id",
    "item_field", "properties.product_id", "action_field", "event", "time_field", "timestamp",
    "time_format", "iso8601", "action_map",
    "Product Viewed=view, Product Added=cart, Product Favorited=fav, Order Completed=buy", NULL};

static int set_json_mode(config_t *cfg, char *errstr, size_t errstr_size) {
  for (size_t i = 0; g_json_input[i]; i += 2)
    if (input_opts_set(&cfg->input, g_json_input[i], g_json_input[i + 1], errstr, errstr_size))
      return IX_ECONFIG;
  return output_opts_set(&cfg->output, "format", "json", errstr, errstr_size);
}

/* Rewrites every loaded msgpack event as Segment-style JSON. */
static int to_json(demo_t *dm) {
  static const char *const names[] = {"Product Viewed", "Product Added", "Product Favorited",
                                      "Order Completed", "Checkout Started"};
  for (size_t i = 0; i < dm->n_recs; i++) {
    demo_rec_t *d = &dm->recs[i];
    event_t ev;
    char why[200];
    if (codec_decode_event(d->value, d->value_len, &ev, why, sizeof why)) return IX_EMALFORMED;
    time_t secs = (time_t)(ev.ts_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char *v = malloc(400);
    if (!v) return IX_ENOMEM;
    int n = snprintf(v, 400,
                     "{\"type\":\"track\",\"event\":\"%s\",\"userId\":\"%" PRIu64
                     "\",\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"properties\":"
                     "{\"product_id\":\"%" PRIu64 "\",\"category_id\":\"%" PRIu64 "\"}}",
                     names[ev.action], ev.user_id, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ev.ts_ms % 1000), ev.item_id,
                     ev.category_id);
    free(d->value);
    d->value = v;
    d->value_len = (uint32_t)n;
  }
  return 0;
}

/* ---------------------------------------------------------------- main */

int demo_run(const demo_opts_t *opts) {
  demo_t dm = {.opts = opts, .rc = 1};
  config_t *cfg = opts->cfg;
  mockbroker_t *mb = NULL;
  char errstr[512];
  int partitions = opts->partitions > 0 ? opts->partitions : IMPORT_DEFAULT_PARTITIONS;
  dm.tty = isatty(STDOUT_FILENO);

  const char *data = opts->data ? opts->data : demo_default_data();
  if (!data) {
    fprintf(stderr, "interestd --demo: no Taobao sample found (looked in " INTERESTD_SOURCE_DIR
                    "/data and " INTERESTD_DATADIR "/data); pass --data FILE "
                    "(UserBehavior.csv format, plain or gzip)\n");
    goto out;
  }
  if (!opts->model_given) {
    const char *m = demo_default_model();
    if (!m) {
      fprintf(stderr, "interestd --demo: no bundled model found (model/weights/*.ixm); pass "
                      "--set model.path=FILE\n");
      goto out;
    }
    free(cfg->model.path);
    cfg->model.path = strdup(m);
  }
  if (load_data(&dm, data, partitions)) goto out;
  if (opts->json) {
    if (set_json_mode(cfg, errstr, sizeof errstr) || to_json(&dm)) {
      fprintf(stderr, "interestd --demo --json: %s\n", errstr);
      goto out;
    }
    printf("interestd demo: JSON mode: Segment-style JSON events in, JSON predictions out\n");
  }
  pick_tracked(&dm, opts->max_events && opts->max_events < dm.n_recs ? opts->max_events
                                                                      : dm.n_recs);

  if (mockbroker_new(1, &mb, errstr, sizeof errstr) ||
      mockbroker_create_topic(mb, DEMO_INPUT, partitions, errstr, sizeof errstr) ||
      mockbroker_create_topic(mb, DEMO_OUTPUT, partitions, errstr, sizeof errstr) ||
      mockbroker_create_topic(mb, DEMO_DLQ, 1, errstr, sizeof errstr)) {
    fprintf(stderr, "interestd --demo: %s\n", errstr);
    goto out;
  }
  dm.bootstraps = mockbroker_bootstraps(mb);
  printf("interestd demo: embedded Kafka broker at %s\n"
         "  input topic '%s' (%d partitions), output '%s', dead letters '%s'\n"
         "  watch the predictions: kcat -b %s -t %s -C -o end -f '%%k %%p:%%o %%S bytes\\n'%s\n",
         dm.bootstraps, DEMO_INPUT, partitions, DEMO_OUTPUT, DEMO_DLQ, dm.bootstraps,
         DEMO_OUTPUT, opts->json ? "\n  (JSON mode: -f '%k %s\\n' prints each prediction)" : "");
  fflush(stdout);

  /* same daemon, demo broker */
  free(cfg->kafka.brokers);
  free(cfg->kafka.input_topic);
  free(cfg->kafka.output_topic);
  free(cfg->kafka.dlq_topic);
  cfg->kafka.brokers = strdup(dm.bootstraps);
  cfg->kafka.input_topic = strdup(DEMO_INPUT);
  cfg->kafka.output_topic = strdup(DEMO_OUTPUT);
  cfg->kafka.dlq_topic = strdup(DEMO_DLQ);
  if (!cfg->kafka.brokers || !cfg->kafka.input_topic || !cfg->kafka.output_topic ||
      !cfg->kafka.dlq_topic || !cfg->model.path) {
    fprintf(stderr, "interestd --demo: out of memory\n");
    goto out;
  }
  daemon_opts_t dopts = {.cfg = cfg, .config_path = opts->config_path,
                         .overrides = opts->overrides, .n_overrides = opts->n_overrides,
                         .handle_signals = 1, .ready_fd = -1, .on_prediction = on_prediction,
                         .on_stop = on_stop, .ctx = &dm};
  cfg = NULL; /* the daemon owns it now */
  if (daemon_new(&dopts, &dm.d, errstr, sizeof errstr)) {
    fprintf(stderr, "interestd --demo: %s\n", errstr);
    goto out;
  }
  clock_gettime(CLOCK_MONOTONIC, &dm.t0);
  if (uv_timer_init(daemon_loop(dm.d), &dm.tick) != 0) {
    fprintf(stderr, "interestd --demo: cannot create the display timer\n");
    goto out;
  }
  dm.tick.data = &dm;
  uv_timer_start(&dm.tick, tick_cb, 100, 100);
  if (pthread_create(&dm.thread, NULL, feeder_main, &dm) != 0) {
    fprintf(stderr, "interestd --demo: cannot start the feeder thread\n");
    daemon_stop(dm.d);
  } else {
    dm.thread_started = 1;
  }
  int rc = daemon_run(dm.d);
  atomic_store(&dm.stop, 1);
  if (dm.thread_started) pthread_join(dm.thread, NULL);
  show(&dm, 1);
  daemon_stats_t s;
  daemon_get_stats(dm.d, &s, 0);
  uint64_t fed = atomic_load(&dm.fed);
  int complete = s.consumed == fed && s.delivered == s.produced && s.produced == s.processed;
  printf("demo %s: %" PRIu64 " events fed, %" PRIu64 " predictions delivered%s\n",
         rc ? "failed" : "done", fed, s.delivered,
         opts->loop ? "" : complete ? " (one per event)" : " (incomplete: stopped early)");
  dm.rc = rc ? 1 : 0;
out:
  daemon_destroy(dm.d);
  config_destroy(cfg);
  mockbroker_destroy(mb);
  free_recs(&dm);
  return dm.rc;
}
