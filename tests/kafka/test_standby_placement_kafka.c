/* Standby placement by the group's membership (docs/STATE.md, "Standby
 * replicas"), on a real broker only (the mock answers no DescribeGroups):
 * three changelog-only daemons in one group, six partitions,
 * state.standby_replicas = 1, while events stream:
 *   - every member reports the membership rule in force
 *     (interestd_standby_rule{rule="membership"} 1), and each partition is
 *     followed by exactly one member, never its owner (the per-partition
 *     interestd_standby_lag_records series of each member); the followed
 *     sets equal standby_place() over the group as the test describes it;
 *   - one owner is killed with SIGKILL; each of its partitions that Kafka
 *     hands to the member holding its standby copy is restored "from
 *     standby" (the daemon's log), the others from the changelog;
 *   - the two survivors place the standbys again (one non-owner each);
 *   - every input event is answered and every prediction equals the
 *     offline pipeline's (each event applied to its user's state once).
 * Registered as test_standby_placement_kafka (label kafka). */
#include "daemon/standby.h"
#include "../integration/daemon_harness.h"

#define N_EVENTS 12000
#define PARTS 6
#define RATE 1500.0
#define MEMBERS 3

static double metric(const char *page, const char *series) {
  char line[256];
  snprintf(line, sizeof line, "\n%s", series);
  const char *p = page ? strstr(page, line) : NULL;
  return p ? atof(p + strlen(line)) : -1;
}

/* The partitions a member follows: its interestd_standby_lag_records series. */
static uint64_t followed_mask(const char *page) {
  uint64_t m = 0;
  const char *key = "\ninterestd_standby_lag_records{partition=\"";
  for (const char *p = page; p && (p = strstr(p, key)); p += strlen(key)) {
    int v = atoi(p + strlen(key));
    if (v >= 0 && v < 64) m |= 1ull << v;
  }
  return m;
}

typedef struct {
  pid_t pid;
  const char *log;
  int port, alive;
  uint64_t own, follows;
  double rule_members;
} member_t;

static void read_members(member_t *m, int n) {
  for (int i = 0; i < n; i++) {
    if (!m[i].alive) continue;
    m[i].own = h_owned_from_log(m[i].log);
    char *page = h_http_get(m[i].port, "/metrics");
    m[i].follows = followed_mask(page);
    m[i].rule_members = metric(page, "interestd_standby_rule{rule=\"membership\"} ");
    free(page);
  }
}

/* Every partition owned by one live member and followed by exactly one
 * other; every live member under the membership rule. */
static int placed_once(const member_t *m, int n, char *why, size_t wn) {
  uint64_t all = 0;
  for (int i = 0; i < n; i++) {
    if (!m[i].alive) continue;
    if (m[i].rule_members != 1) {
      snprintf(why, wn, "member %d not under the membership rule", i);
      return 0;
    }
    if (all & m[i].own) {
      snprintf(why, wn, "partitions owned twice");
      return 0;
    }
    all |= m[i].own;
  }
  if (all != (1u << PARTS) - 1) {
    snprintf(why, wn, "owned %#llx, not every partition", (unsigned long long)all);
    return 0;
  }
  for (int p = 0; p < PARTS; p++) {
    int followers = 0;
    for (int i = 0; i < n; i++) {
      if (!m[i].alive || !(m[i].follows & (1ull << p))) continue;
      if (m[i].own & (1ull << p)) {
        snprintf(why, wn, "member %d follows its own partition %d", i, p);
        return 0;
      }
      followers++;
    }
    if (followers != 1) {
      snprintf(why, wn, "partition %d followed by %d members", p, followers);
      return 0;
    }
  }
  return 1;
}

static void print_members(const char *when, const member_t *m, int n) {
  for (int i = 0; i < n; i++)
    if (m[i].alive)
      printf("%s: member %d owns %#llx, follows %#llx (membership rule %.0f)\n", when, i,
             (unsigned long long)m[i].own, (unsigned long long)m[i].follows, m[i].rule_members);
}

/* The group as the test describes it, placed with standby_place(): each
 * live member's expected followed set (matched to the processes by their
 * owned partitions). 1 when described and every member matched. */
static int expected_placement(const member_t *m, int n, uint64_t *want) {
  rd_kafka_t *rk = h_admin_client();
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  const char *group = h_T("sb");
  rd_kafka_DescribeConsumerGroups(rk, &group, 1, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
  int ok = 0;
  if (ev && !rd_kafka_event_error(ev)) {
    size_t ng;
    const rd_kafka_ConsumerGroupDescription_t **g = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev), &ng);
    size_t nm = ng == 1 ? rd_kafka_ConsumerGroupDescription_member_count(g[0]) : 0;
    groupdesc_member_t gm[8];
    int32_t parts[8][PARTS];
    for (size_t i = 0; i < nm && i < 8; i++) {
      const rd_kafka_MemberDescription_t *md = rd_kafka_ConsumerGroupDescription_member(g[0], i);
      const rd_kafka_topic_partition_list_t *tp =
          rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(md));
      const char *inst = rd_kafka_MemberDescription_group_instance_id(md);
      gm[i] = (groupdesc_member_t){.member_id = rd_kafka_MemberDescription_consumer_id(md),
                                   .instance_id = inst ? inst : "",
                                   .parts = parts[i]};
      for (int j = 0; tp && j < tp->cnt && gm[i].n_parts < PARTS; j++)
        parts[i][gm[i].n_parts++] = tp->elems[j].partition;
    }
    int matched = 0;
    for (size_t i = 0; i < nm && i < 8; i++) {
      uint64_t mask = 0;
      for (size_t j = 0; j < gm[i].n_parts; j++) mask |= 1ull << gm[i].parts[j];
      for (int k = 0; k < n; k++) {
        if (!m[k].alive || m[k].own != mask) continue;
        uint8_t w[PARTS];
        standby_place(gm, nm, i, PARTS, 1, w);
        want[k] = 0;
        for (int p = 0; p < PARTS; p++)
          if (w[p]) want[k] |= 1ull << p;
        matched++;
      }
    }
    int live = 0;
    for (int k = 0; k < n; k++) live += m[k].alive;
    ok = matched == live && (int)nm == live &&
         rd_kafka_ConsumerGroupDescription_state(g[0]) == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE;
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return ok;
}

/* Waits up to timeout_s for placed_once() and the followed sets equal to
 * expected_placement(); fails the test otherwise. */
static void await_placement(member_t *m, int n, const char *when, double timeout_s) {
  char why[160] = "";
  int ok = 0;
  uint64_t want[MEMBERS] = {0};
  double t0 = h_now();
  for (double end = t0 + timeout_s; !ok && h_now() < end;) {
    read_members(m, n);
    ok = placed_once(m, n, why, sizeof why);
    if (ok && !expected_placement(m, n, want)) {
      snprintf(why, sizeof why, "the group not described consistently yet");
      ok = 0;
    }
    for (int i = 0; ok && i < n; i++)
      if (m[i].alive && m[i].follows != want[i]) {
        snprintf(why, sizeof why, "member %d follows %#llx, standby_place says %#llx", i,
                 (unsigned long long)m[i].follows, (unsigned long long)want[i]);
        ok = 0;
      }
    if (!ok) h_sleep_ms(500);
  }
  print_members(when, m, n);
  H_CHECK(ok, "%s: standby placement not as the membership rule says: %s", when, why);
  printf("%s: each partition followed by exactly one non-owner, as standby_place() over the "
         "group's description says (%.1f s)\n", when, h_now() - t0);
}

/* 1 when log holds needle after its first `from` bytes. */
static int log_has_after(const char *log, size_t from, const char *needle) {
  char *s = h_read_file(log);
  int found = strlen(s) >= from && strstr(s + from, needle) != NULL;
  free(s);
  return found;
}

int main(void) {
  h_init("test_standby_placement_kafka");
  if (!h_real_bootstrap()) {
    fprintf(stderr, "test_standby_placement_kafka needs a real broker (IX_KAFKA_DIR or "
            "IX_KAFKA_BOOTSTRAP; `ctest -R test_standby_placement_kafka` starts one): the mock "
            "answers no DescribeGroups\n");
    return 1;
  }
  const char *brokers = h_cluster(PARTS);
  char extra[512];
  const char *model = h_path("model.ixm");
  h_write_model(model, 13);
  const char *conf = h_path("interestd.conf");
  /* the daemon creates the compacted changelog topic itself (Admin API) */
  snprintf(extra, sizeof extra,
           "[state]\nchangelog_mode = changelog\nchangelog_topic = %s\n"
           "checkpoint_interval_s = 1\nstandby_replicas = 1\n", h_T("sbstate"));
  h_write_conf(conf, brokers, "sb", model, extra);
  h_msg_t *msgs = h_load_events(N_EVENTS, PARTS);

  member_t m[MEMBERS];
  double t_start = h_now();
  for (int i = 0; i < MEMBERS; i++) {
    char name[32];
    snprintf(name, sizeof name, "member%d.log", i);
    m[i] = (member_t){.log = h_path(name), .alive = 1};
    m[i].pid = h_spawn(conf, m[i].log);
    H_CHECK(h_wait_log(m[i].log, "assigned partitions", 60), "member %d got nothing (log %s)",
            i, m[i].log);
    m[i].port = h_metrics_port(m[i].log);
    H_CHECK(m[i].port > 0, "no metrics port in %s", m[i].log);
  }
  h_feed_t feed = {.brokers = brokers, .topic = h_T("events"), .msgs = msgs, .hi = N_EVENTS,
                   .rate = RATE};
  h_feed_start(&feed);
  await_placement(m, MEMBERS, "three members", 60);

  /* the copies are warm: every member holds users of what it follows */
  double users[MEMBERS];
  for (double end = h_now() + 30; h_now() < end; h_sleep_ms(300)) {
    int warm = 1;
    for (int i = 0; i < MEMBERS; i++) {
      users[i] = h_metric(m[i].port, "interestd_standby_users");
      warm &= users[i] > 0;
    }
    if (warm) break;
  }
  printf("standby users: %.0f %.0f %.0f\n", users[0], users[1], users[2]);
  for (int i = 0; i < MEMBERS; i++)
    H_CHECK(users[i] > 0, "member %d holds no warm standby user (log %s)", i, m[i].log);

  /* kill one owner; remember who held the copy of each partition */
  const int victim = 0;
  uint64_t moved = m[victim].own;
  int holder[PARTS];
  for (int p = 0; p < PARTS; p++) {
    holder[p] = -1;
    for (int i = 0; i < MEMBERS; i++)
      if (m[i].follows & (1ull << p)) holder[p] = i;
  }
  size_t mark[MEMBERS];
  for (int i = 0; i < MEMBERS; i++) {
    char *s = h_read_file(m[i].log);
    mark[i] = strlen(s);
    free(s);
  }
  double sb_before = 0; /* hand-overs from copies in the rebalances at the start */
  for (int i = 0; i < MEMBERS; i++)
    if (i != victim)
      sb_before += h_metric_of(m[i].log, "interestd_state_restores_total{source=\"standby\"} ");
  kill(m[victim].pid, SIGKILL);
  H_CHECK(h_wait_exit(m[victim].pid, 10) == -2, "member %d did not die of SIGKILL", victim);
  m[victim].alive = 0;
  printf("member %d (owner of %#llx) killed with SIGKILL\n", victim, (unsigned long long)moved);

  /* where Kafka put each moved partition, and how it was restored */
  int landed = 0, elsewhere = 0;
  for (int p = 0; p < PARTS; p++) {
    if (!(moved & (1ull << p))) continue;
    int to = -1;
    for (double end = h_now() + 60; to < 0 && h_now() < end;) {
      for (int i = 0; i < MEMBERS; i++)
        if (m[i].alive && (h_owned_from_log(m[i].log) & (1ull << p))) to = i;
      if (to < 0) h_sleep_ms(200);
    }
    H_CHECK(to >= 0, "partition %d not reassigned after the kill", p);
    char want[96];
    if (to == holder[p]) {
      snprintf(want, sizeof want, "partition %d: states from standby", p);
      H_CHECK(h_wait_log(m[to].log, want, 30) && log_has_after(m[to].log, mark[to], want),
              "partition %d went to member %d, its standby holder, but was not restored from "
              "the standby copy (log %s)", p, to, m[to].log);
      printf("partition %d: to member %d, its standby holder: restored from standby\n", p, to);
      landed++;
    } else {
      snprintf(want, sizeof want, "partition %d: states from changelog", p);
      for (double end = h_now() + 30; !log_has_after(m[to].log, mark[to], want) &&
                                      h_now() < end;)
        h_sleep_ms(200);
      H_CHECK(log_has_after(m[to].log, mark[to], want), "partition %d: no changelog restore on "
              "member %d (log %s)", p, to, m[to].log);
      printf("partition %d: to member %d (its standby was on member %d): restored from the "
             "changelog\n", p, to, holder[p]);
      elsewhere++;
    }
  }
  /* cooperative-sticky spreads the dead member's partitions over both
   * survivors, and one member holds all of its copies: one lands on it */
  H_CHECK(landed >= 1, "none of the %d moved partitions went to its standby holder (%d "
          "elsewhere): nothing was handed over from a copy", landed + elsewhere, elsewhere);
  double from_sb = 0;
  for (int i = 0; i < MEMBERS; i++)
    if (m[i].alive)
      from_sb += h_metric_of(m[i].log, "interestd_state_restores_total{source=\"standby\"} ");
  printf("%d moved partitions restored from standby copies, %d from the changelog; "
         "restores_total{source=\"standby\"} over the survivors: %.0f after the kill, %.0f "
         "before\n", landed, elsewhere, from_sb, sb_before);
  H_CHECK(from_sb - sb_before >= landed, "restores from standby since the kill counted %.0f, "
          "the logs say %d", from_sb - sb_before, landed);

  await_placement(m, MEMBERS, "two survivors", 40);
  h_feed_join(&feed);

  int *ok = calloc(N_EVENTS, sizeof *ok);
  prediction_t *ref = h_offline(model, msgs, N_EVENTS, ok);
  uint32_t *counts = calloc(N_EVENTS, sizeof *counts);
  uint64_t total;
  size_t missing = h_await_output(brokers, h_T("interests"), h_path("out.rec"), msgs, N_EVENTS,
                                  ref, ok, 3 * N_EVENTS, 60, counts, &total);
  printf("%" PRIu64 " predictions for %d events, %zu missing\n", total, N_EVENTS, missing);
  H_CHECK(missing == 0, "%zu events have no prediction", missing);
  printf("every prediction equals the offline pipeline's: each event applied once to state\n");
  for (int i = 0; i < MEMBERS; i++) {
    if (!m[i].alive) continue;
    kill(m[i].pid, SIGTERM);
    H_CHECK(h_wait_exit(m[i].pid, 30) == 0, "member %d exit (log %s)", i, m[i].log);
  }
  free(ok);
  free(ref);
  free(counts);
  h_free_msgs(msgs, N_EVENTS);
  h_cluster_destroy();
  printf("PASS (%.0f s)\n", h_now() - t_start);
  return 0;
}
