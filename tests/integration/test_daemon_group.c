/* Two interestd processes in one consumer group split the input partitions
 * (cooperative-sticky) and together produce exactly one prediction per
 * event, each equal to the offline pipeline's; each process contributes. */
#include "daemon_harness.h"

#define N_EVENTS 6000
#define PARTS 8

static uint64_t produced_from_log(const char *log) {
  char *s = h_read_file(log);
  char *p = strstr(s, "stopped: consumed");
  uint64_t produced = 0;
  if (p && (p = strstr(p, "produced "))) produced = strtoull(p + 9, NULL, 10);
  free(s);
  return produced;
}

static int popcount64(uint64_t x) { return __builtin_popcountll(x); }

int main(void) {
  h_init("test_daemon_group");
  const char *brokers = h_cluster(PARTS);
  const char *model = h_path("model.ixm");
  h_write_model(model, 11);
  const char *conf = h_path("interestd.conf");
  h_write_conf(conf, brokers, "pair", model, "");
  const char *log_a = h_path("a.log"), *log_b = h_path("b.log");
  pid_t a = h_spawn(conf, log_a);
  H_CHECK(h_wait_log(log_a, "assigned partitions", 20), "first process got no partitions");
  pid_t b = h_spawn(conf, log_b);

  /* wait until the group settled: disjoint halves covering every partition */
  double t0 = h_now();
  uint64_t ma = 0, mb_ = 0;
  for (;;) {
    ma = h_owned_from_log(log_a);
    mb_ = h_owned_from_log(log_b);
    if (ma && mb_ && !(ma & mb_) && popcount64(ma | mb_) == PARTS) break;
    H_CHECK(h_now() - t0 < 40, "group did not settle: a=%#llx b=%#llx", (unsigned long long)ma,
            (unsigned long long)mb_);
    h_sleep_ms(100);
  }
  printf("group settled after %.1f s: process A owns %#llx, B owns %#llx\n", h_now() - t0,
         (unsigned long long)ma, (unsigned long long)mb_);

  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);
  h_produce(brokers, h_T("events"), msgs, 0, N_EVENTS, 0);
  const char *out = h_path("out.rec");
  uint64_t got = h_collect(brokers, h_T("interests"), out, N_EVENTS, 30000);
  H_CHECK(got == N_EVENTS, "got %" PRIu64 " predictions", got);
  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  h_check_output(out, msgs, N_EVENTS, ref, ok, counts, 1);
  for (size_t i = 0; i < N_EVENTS; i++) H_CHECK(counts[i] == 1, "event %zu: %u", i, counts[i]);
  H_CHECK(h_collect(brokers, h_T("interests"), h_path("out2.rec"), N_EVENTS + 1, 2000) == N_EVENTS,
          "duplicates in the output topic");

  kill(a, SIGTERM);
  kill(b, SIGTERM);
  H_CHECK(h_wait_exit(a, 20) == 0, "process A exit");
  H_CHECK(h_wait_exit(b, 20) == 0, "process B exit");
  uint64_t pa = produced_from_log(log_a), pb = produced_from_log(log_b);
  printf("process A produced %" PRIu64 ", B produced %" PRIu64 ", together %" PRIu64
         " for %d events\n", pa, pb, pa + pb, N_EVENTS);
  H_CHECK(pa > 0 && pb > 0 && pa + pb == N_EVENTS, "split %" PRIu64 " + %" PRIu64, pa, pb);
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  h_cluster_destroy();
  printf("PASS\n");
  return 0;
}
