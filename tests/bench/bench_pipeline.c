/* The daemon's per-event work without Kafka (docs/PERFORMANCE.md, "Daemon end
 * to end"): the 100k real Taobao events, partitioned like the producer does,
 * cut into batches the way the consumer delivers them (consecutive messages
 * of one partition), then pipeline_process() and the prediction encoding, as
 * process_batch() does. Prints µs per event for the pipeline (of which the
 * model step), the encoding, and the mean number of events per model call;
 * the pipeline also on this thread's CPU clock (time spent descheduled on a
 * busy machine not counted), and the best pass of each at the end.
 * With FORMAT "both" the passes alternate between the msgpack events with
 * msgpack predictions and the same events as shop-style JSON (nested fields,
 * ISO-8601 times, an action map: stream/input.h) with JSON predictions, and
 * the decoding alone is timed for both formats on the same events.
 * usage: bench_pipeline [BATCH (256)] [PASSES (3)] [FORMAT msgpack|json|both (msgpack)] */
#include "../integration/daemon_harness.h"
#include "stream/codec.h"
#include "stream/input.h"
#include "stream/output.h"

/* The shop mapping the JSON passes use (docs/OPERATIONS.md's Segment-style example). */
static input_t *shop_input(void) {
  static const char *const kv[] = {
      "format", "json", "user_field", "userId", "category_field", "properties.category_id",
      "item_field", "properties.product_id", "action_field", "event", "time_field", "timestamp",
      "time_format", "iso8601", "action_map",
      "Product Viewed=view, Product Added=cart, Product Favorited=fav, Order Completed=buy", NULL};
  input_opts_t o;
  char why[256];
  H_CHECK(input_opts_init(&o) == 0, "input_opts_init");
  for (size_t i = 0; kv[i]; i += 2) H_CHECK(input_opts_set(&o, kv[i], kv[i + 1], why, sizeof why) == 0, "%s", why);
  input_t *in = NULL;
  H_CHECK(input_new(&o, &in, why, sizeof why) == 0, "%s", why);
  input_opts_free(&o);
  return in;
}

/* The same event as a Segment-style JSON message (malloc'd). */
static char *shop_json(const rec_t *r, size_t *len) {
  event_t ev;
  char err[200];
  H_CHECK(codec_decode_event(r->value, r->value_len, &ev, err, sizeof err) == 0, "%s", err);
  static const char *const names[] = {"Product Viewed", "Product Added", "Product Favorited",
                                      "Order Completed", "Checkout Started"};
  time_t secs = (time_t)(ev.ts_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char *s = malloc(400);
  int n = snprintf(s, 400,
                   "{\"type\":\"track\",\"event\":\"%s\",\"userId\":\"%" PRIu64
                   "\",\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"properties\":"
                   "{\"product_id\":%" PRIu64 ",\"category_id\":%" PRIu64 ",\"currency\":\"USD\"}}",
                   names[ev.action], ev.user_id, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                   tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ev.ts_ms % 1000), ev.item_id,
                   ev.category_id);
  *len = (size_t)n;
  return s;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  size_t batch = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
  int passes = argc > 2 ? atoi(argv[2]) : 3;
  const char *format = argc > 3 ? argv[3] : "msgpack";
  int fmt_json = strcmp(format, "json") == 0, fmt_both = strcmp(format, "both") == 0;
  H_CHECK(fmt_json || fmt_both || strcmp(format, "msgpack") == 0, "FORMAT: msgpack, json or both");
  const size_t N = 100000, PARTS = 8;
  h_init("bench_pipeline");
  char err[512];
  const char *path = h_path("model.ixm");
  h_write_model_sized(path, 3, 0, 0); /* random weights, the served size, as bench_e2e */
  model_t *m;
  H_CHECK(model_load(path, &m, err, sizeof err) == 0, "%s", err);

  h_msg_t *msgs = h_load_events(N, (int)PARTS);
  /* consumer order: each partition's messages in offset order, batch by batch */
  rec_t *recs = calloc(N, sizeof *recs);
  size_t n = 0;
  int64_t offs[8] = {0};
  for (size_t p = 0; p < PARTS; p++)
    for (size_t i = 0; i < N; i++)
      if ((size_t)msgs[i].partition == p)
        recs[n++] = (rec_t){.partition = msgs[i].partition, .offset = offs[p]++,
                            .key = msgs[i].key, .key_len = msgs[i].key_len,
                            .value = msgs[i].value, .value_len = msgs[i].value_len};
  H_CHECK(n == N, "partitioning lost events");
  /* the same events as shop JSON */
  rec_t *jrecs = calloc(N, sizeof *jrecs);
  size_t jbytes = 0, mbytes = 0;
  for (size_t i = 0; i < N; i++) {
    jrecs[i] = recs[i];
    jrecs[i].value = shop_json(&recs[i], &jrecs[i].value_len);
    jbytes += jrecs[i].value_len;
    mbytes += recs[i].value_len;
  }
  input_t *shop = shop_input();
  output_opts_t out_json = {.format = OUTPUT_JSON, .next_categories = PRED_TOPK};
  output_opts_t out_mp = {.format = OUTPUT_MSGPACK, .next_categories = PRED_TOPK};
  if (fmt_both) {
    /* decoding alone, same events, alternating formats */
    double best[2] = {1e30, 1e30};
    for (int pass = 0; pass < 2 * passes; pass++) {
      int js = pass & 1;
      event_t ev, ev2;
      char why[200];
      double c0 = cpu_s();
      for (size_t i = 0; i < N; i++)
        H_CHECK(input_decode(js ? shop : NULL, js ? &jrecs[i] : &recs[i], &ev, why, sizeof why) == 0,
                "%s", why);
      double c = cpu_s() - c0;
      if (c < best[js]) best[js] = c;
      if (pass == 1) /* the JSON path yields the same events as msgpack */
        for (size_t i = 0; i < N; i++) {
          H_CHECK(input_decode(NULL, &recs[i], &ev, why, sizeof why) == 0, "%s", why);
          H_CHECK(input_decode(shop, &jrecs[i], &ev2, why, sizeof why) == 0, "%s", why);
          H_CHECK(memcmp(&ev, &ev2, sizeof ev) == 0, "event %zu differs between formats", i);
        }
    }
    printf("decode only (best of %d, CPU clock): msgpack %.3f us/event (%.0f B), JSON %.3f "
           "us/event (%.0f B)\n", passes, best[0] * 1e6 / N,
           (double)mbytes / N, best[1] * 1e6 / N, (double)jbytes / N);
  }
  printf("bench_pipeline: %zu events, batches of %zu from one partition, model V=%u H=%u\n", N,
         batch, model_dims(m)->V, model_dims(m)->H);
  double best_pipe = 1e30, best_cpu = 1e30, best_all[2] = {1e30, 1e30};
  for (int pass = 0; pass < (fmt_both ? 2 * passes : passes); pass++) {
    int js = fmt_json || (fmt_both && (pass & 1));
    const rec_t *in_recs = js ? jrecs : recs;
    pipeline_t *pl;
    store_opts_t so = {0};
    emit_opts_t eo = {.policy = EMIT_EVERY, .top_n_change = 3};
    H_CHECK(pipeline_new(m, &so, &eo, &pl) == 0, "pipeline_new");
    if (js) pipeline_set_input(pl, shop);
    codec_buf_t enc = {0};
    double t_pipe = 0, t_enc = 0, t_cpu = 0;
    uint64_t step_ns = 0, waves = 0, preds = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < N;) {
      size_t j = i;
      while (j < N && j - i < batch && recs[j].partition == recs[i].partition) j++;
      pipeline_result_t res;
      double c0 = cpu_s(), t0 = now_s();
      H_CHECK(pipeline_process(pl, in_recs + i, j - i, 1700000000000, &res) == 0, "process");
      double t1 = now_s();
      t_cpu += cpu_s() - c0;
      for (size_t k = 0; k < res.n_preds; k++) {
        H_CHECK(output_encode(js ? &out_json : &out_mp, &res.preds[k], &enc) == 0, "encode");
        bytes += enc.len;
      }
      t_enc += now_s() - t1;
      t_pipe += t1 - t0;
      step_ns += res.step_ns;
      waves += res.n_waves;
      preds += res.n_preds;
      i = j;
    }
    H_CHECK(preds == N, "%" PRIu64 " predictions", preds);
    printf("pass %d %-7s: pipeline %.2f us/event (model step %.2f; CPU clock %.2f), encode %.2f "
           "us/event (%.0f B), %.1f events per wave\n",
           pass, js ? "json" : "msgpack", t_pipe * 1e6 / N, (double)step_ns / 1e3 / N, t_cpu * 1e6 / N, t_enc * 1e6 / N,
           (double)bytes / N, (double)N / (double)waves);
    if (t_pipe < best_pipe) best_pipe = t_pipe;
    if (t_cpu < best_cpu) best_cpu = t_cpu;
    if (t_pipe + t_enc < best_all[js]) best_all[js] = t_pipe + t_enc;
    codec_buf_free(&enc);
    pipeline_destroy(pl);
  }
  printf("best pass: pipeline %.2f us/event wall, %.2f us/event CPU\n", best_pipe * 1e6 / N,
         best_cpu * 1e6 / N);
  if (fmt_both)
    printf("best pass, pipeline + encode: msgpack %.2f us/event, JSON %.2f us/event (JSON/msgpack %.2f)\n",
           best_all[0] * 1e6 / N, best_all[1] * 1e6 / N, best_all[1] / best_all[0]);
  input_destroy(shop);
  for (size_t i = 0; i < N; i++) free((void *)jrecs[i].value);
  free(jrecs);
  model_destroy(m);
  free(recs);
  h_free_msgs(msgs, N);
  return 0;
}
