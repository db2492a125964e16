/* The daemon's per-event work without Kafka (docs/PERFORMANCE.md, "Daemon end
 * to end"): the 100k real Taobao events, partitioned like the producer does,
 * cut into batches the way the consumer delivers them (consecutive messages
 * of one partition), then pipeline_process() and the prediction encoding, as
 * process_batch() does. Prints µs per event for the pipeline (of which the
 * model step), the encoding, and the mean number of events per model call;
 * the pipeline also on this thread's CPU clock (time spent descheduled on a
 * busy machine not counted), and the best pass of each at the end.
 * usage: bench_pipeline [BATCH (256)] [PASSES (3)] */
#include "../integration/daemon_harness.h"
#include "stream/codec.h"

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

  printf("bench_pipeline: %zu events, batches of %zu from one partition, model V=%u H=%u\n", N,
         batch, model_dims(m)->V, model_dims(m)->H);
  double best_pipe = 1e30, best_cpu = 1e30;
  for (int pass = 0; pass < passes; pass++) {
    pipeline_t *pl;
    store_opts_t so = {0};
    emit_opts_t eo = {.policy = EMIT_EVERY, .top_n_change = 3};
    H_CHECK(pipeline_new(m, &so, &eo, &pl) == 0, "pipeline_new");
    codec_buf_t enc = {0};
    double t_pipe = 0, t_enc = 0, t_cpu = 0;
    uint64_t step_ns = 0, waves = 0, preds = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < N;) {
      size_t j = i;
      while (j < N && j - i < batch && recs[j].partition == recs[i].partition) j++;
      pipeline_result_t res;
      double c0 = cpu_s(), t0 = now_s();
      H_CHECK(pipeline_process(pl, recs + i, j - i, 1700000000000, &res) == 0, "process");
      double t1 = now_s();
      t_cpu += cpu_s() - c0;
      for (size_t k = 0; k < res.n_preds; k++) {
        H_CHECK(codec_encode_prediction(&res.preds[k], &enc) == 0, "encode");
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
    printf("pass %d: pipeline %.2f us/event (model step %.2f; CPU clock %.2f), encode %.2f "
           "us/event (%.0f B), %.1f events per wave\n",
           pass, t_pipe * 1e6 / N, (double)step_ns / 1e3 / N, t_cpu * 1e6 / N, t_enc * 1e6 / N,
           (double)bytes / N, (double)N / (double)waves);
    if (t_pipe < best_pipe) best_pipe = t_pipe;
    if (t_cpu < best_cpu) best_cpu = t_cpu;
    codec_buf_free(&enc);
    pipeline_destroy(pl);
  }
  printf("best pass: pipeline %.2f us/event wall, %.2f us/event CPU\n", best_pipe * 1e6 / N,
         best_cpu * 1e6 / N);
  model_destroy(m);
  free(recs);
  h_free_msgs(msgs, N);
  return 0;
}
