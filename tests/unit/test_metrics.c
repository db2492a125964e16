/* Metrics registry: exact Prometheus text for a small registry, histogram
 * bucket math, registration rules, and interestd's own metric set. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "daemon/metrics.h"
#include "daemon/quality.h"
#include "daemon/warmup.h"

static void test_metrics_render_is_exact_prometheus_text(void **state) {
  metrics_t *reg;
  assert_int_equal(metrics_new(&reg), 0);
  metrics_counter_t *c, *r1, *r2;
  metrics_gauge_t *g;
  metrics_histogram_t *h;
  metrics_info_t *info;
  static const double bounds[] = {0.1, 1};
  assert_int_equal(metrics_counter_new(reg, &c, "ix_events_total", "Events seen.", NULL), 0);
  assert_int_equal(metrics_counter_new(reg, &r1, "ix_rejected_total", "Rejects\\by reason\nok.",
                                       "reason", "not_map", NULL), 0);
  assert_int_equal(metrics_counter_new(reg, &r2, "ix_rejected_total", "Rejects\\by reason\nok.",
                                       "reason", "too_big", NULL), 0);
  assert_int_equal(metrics_gauge_new(reg, &g, "ix_users", "Users.", NULL), 0);
  assert_int_equal(metrics_histogram_new(reg, &h, "ix_step_seconds", "Step time.", bounds, 2,
                                         "stage", "lstm", NULL), 0);
  assert_int_equal(metrics_info_new(reg, &info, "ix_model_info", "Model."), 0);
  assert_int_equal(metrics_info_set(info, "fingerprint", "00c0ffee", "description",
                                    "a \"b\" c\\d\ne", NULL), 0);

  metrics_counter_add(c, 2);
  metrics_counter_inc(c);
  metrics_counter_inc(r2);
  metrics_gauge_set(g, 10);
  metrics_gauge_add(g, -8.5);
  metrics_histogram_observe(h, 0.0625);
  metrics_histogram_observe(h, 0.5);
  metrics_histogram_observe(h, 0.5);
  metrics_histogram_observe(h, 2);

  metrics_buf_t buf = {0};
  assert_int_equal(metrics_render(reg, &buf), 0);
  const char *want =
      "# HELP ix_events_total Events seen.\n"
      "# TYPE ix_events_total counter\n"
      "ix_events_total 3\n"
      "# HELP ix_rejected_total Rejects\\\\by reason\\nok.\n"
      "# TYPE ix_rejected_total counter\n"
      "ix_rejected_total{reason=\"not_map\"} 0\n"
      "ix_rejected_total{reason=\"too_big\"} 1\n"
      "# HELP ix_users Users.\n"
      "# TYPE ix_users gauge\n"
      "ix_users 1.5\n"
      "# HELP ix_step_seconds Step time.\n"
      "# TYPE ix_step_seconds histogram\n"
      "ix_step_seconds_bucket{stage=\"lstm\",le=\"0.1\"} 1\n"
      "ix_step_seconds_bucket{stage=\"lstm\",le=\"1\"} 3\n"
      "ix_step_seconds_bucket{stage=\"lstm\",le=\"+Inf\"} 4\n"
      "ix_step_seconds_sum{stage=\"lstm\"} 3.0625\n"
      "ix_step_seconds_count{stage=\"lstm\"} 4\n"
      "# HELP ix_model_info Model.\n"
      "# TYPE ix_model_info gauge\n"
      "ix_model_info{fingerprint=\"00c0ffee\",description=\"a \\\"b\\\" c\\\\d\\ne\"} 1\n";
  assert_string_equal(buf.data, want);
  assert_int_equal(buf.len, strlen(want));

  /* rendering again reuses the buffer and gives the same text */
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_string_equal(buf.data, want);
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

static void test_metrics_histogram_buckets_are_le_upper_bounds(void **state) {
  metrics_t *reg;
  metrics_histogram_t *h;
  static const double bounds[] = {1, 2, 4};
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_histogram_new(reg, &h, "b", "b", bounds, 3, NULL), 0);
  const double obs[] = {-5, 0, 1, 1.0000001, 2, 3.9, 4, 4.0001, 1e300, INFINITY};
  for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) metrics_histogram_observe(h, obs[i]);
  metrics_histogram_observe(h, NAN); /* ignored */
  assert_int_equal(metrics_histogram_bucket(h, 0), 3); /* -5, 0, 1 */
  assert_int_equal(metrics_histogram_bucket(h, 1), 2); /* 1.0000001, 2 */
  assert_int_equal(metrics_histogram_bucket(h, 2), 2); /* 3.9, 4 */
  assert_int_equal(metrics_histogram_bucket(h, 3), 3); /* +Inf bucket */
  assert_int_equal(metrics_histogram_bucket(h, 4), 0); /* out of range */
  assert_int_equal(metrics_histogram_count(h), 10);
  assert_true(isinf(metrics_histogram_sum(h)));

  metrics_buf_t buf = {0};
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_non_null(strstr(buf.data, "b_bucket{le=\"1\"} 3\nb_bucket{le=\"2\"} 5\n"
                                   "b_bucket{le=\"4\"} 7\nb_bucket{le=\"+Inf\"} 10\n"
                                   "b_sum +Inf\nb_count 10\n"));
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

static void test_metrics_number_formatting_round_trips(void **state) {
  metrics_t *reg;
  metrics_gauge_t *a, *b, *c, *d;
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_gauge_new(reg, &a, "g", "g", "k", "a", NULL), 0);
  assert_int_equal(metrics_gauge_new(reg, &b, "g", "g", "k", "b", NULL), 0);
  assert_int_equal(metrics_gauge_new(reg, &c, "g", "g", "k", "c", NULL), 0);
  assert_int_equal(metrics_gauge_new(reg, &d, "g", "g", "k", "d", NULL), 0);
  metrics_gauge_set(a, 0.1);
  metrics_gauge_set(b, 0.1 + 0.2); /* needs 17 digits to read back */
  metrics_gauge_set(c, 123456789012.0);
  metrics_gauge_set(d, -INFINITY);
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_non_null(strstr(buf.data, "g{k=\"a\"} 0.1\n"));
  assert_non_null(strstr(buf.data, "g{k=\"b\"} 0.30000000000000004\n"));
  assert_non_null(strstr(buf.data, "g{k=\"c\"} 123456789012\n"));
  assert_non_null(strstr(buf.data, "g{k=\"d\"} -Inf\n"));
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

static void test_metrics_registration_rules(void **state) {
  metrics_t *reg;
  metrics_counter_t *c, *c2;
  metrics_gauge_t *g;
  metrics_histogram_t *h;
  metrics_info_t *info;
  static const double ok[] = {1, 2}, unsorted[] = {2, 1}, dup[] = {1, 1}, other[] = {1, 3};
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_counter_new(reg, &c, "9bad", "h", NULL), IX_EINVAL);
  assert_null(c);
  assert_int_equal(metrics_counter_new(reg, &c, "bad-name", "h", NULL), IX_EINVAL);
  assert_int_equal(metrics_counter_new(reg, &c, "x_total", "h", "bad-label", "v", NULL),
                   IX_EINVAL);
  assert_int_equal(metrics_counter_new(reg, &c, "x_total", "h", "__reserved", "v", NULL),
                   IX_EINVAL);
  assert_int_equal(metrics_counter_new(reg, &c, "x_total", "h", "a", "1", "a", "2", NULL),
                   IX_EINVAL);
  assert_int_equal(metrics_counter_new(reg, &c, "x_total", "h", "a", "1", "b", "2", "c", "3",
                                       "d", "4", "e", "5", NULL),
                   IX_EINVAL);
  /* same (name, labels) returns the same series */
  assert_int_equal(metrics_counter_new(reg, &c, "x_total", "h", "a", "1", NULL), 0);
  assert_int_equal(metrics_counter_new(reg, &c2, "x_total", "h", "a", "1", NULL), 0);
  assert_ptr_equal(c, c2);
  /* a family keeps its type, help and label names */
  assert_int_equal(metrics_gauge_new(reg, &g, "x_total", "h", "a", "2", NULL), IX_EINVAL);
  assert_int_equal(metrics_counter_new(reg, &c2, "x_total", "other help", "a", "2", NULL),
                   IX_EINVAL);
  assert_int_equal(metrics_counter_new(reg, &c2, "x_total", "h", "b", "2", NULL), IX_EINVAL);
  assert_int_equal(metrics_counter_new(reg, &c2, "x_total", "h", NULL), IX_EINVAL);
  /* histogram bounds */
  assert_int_equal(metrics_histogram_new(reg, &h, "h1", "h", unsorted, 2, NULL), IX_EINVAL);
  assert_int_equal(metrics_histogram_new(reg, &h, "h1", "h", dup, 2, NULL), IX_EINVAL);
  assert_int_equal(metrics_histogram_new(reg, &h, "h1", "h", ok, 0, NULL), IX_EINVAL);
  assert_int_equal(metrics_histogram_new(reg, &h, "h1", "h", ok, 2, "le", "x", NULL), IX_EINVAL);
  assert_int_equal(metrics_histogram_new(reg, &h, "h1", "h", ok, 2, "s", "x", NULL), 0);
  assert_int_equal(metrics_histogram_new(reg, &h, "h1", "h", other, 2, "s", "y", NULL),
                   IX_EINVAL);
  /* info: one series per family */
  assert_int_equal(metrics_info_new(reg, &info, "i_info", "h"), 0);
  assert_int_equal(metrics_info_new(reg, &info, "i_info", "h"), IX_EEXIST);
  assert_int_equal(metrics_on_collect(reg, NULL, NULL), IX_EINVAL);
  metrics_destroy(reg);
}

static void test_metrics_info_renders_after_set_and_replaces_labels(void **state) {
  metrics_t *reg;
  metrics_info_t *info;
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_info_new(reg, &info, "m_info", "M."), 0);
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_string_equal(buf.data, "# HELP m_info M.\n# TYPE m_info gauge\n");
  assert_int_equal(metrics_info_set(info, "v", "1", NULL), 0);
  assert_int_equal(metrics_info_set(info, "v", "2", NULL), 0);
  assert_int_equal(metrics_info_set(info, "bad-name", "3", NULL), IX_EINVAL); /* keeps v=2 */
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_string_equal(buf.data, "# HELP m_info M.\n# TYPE m_info gauge\nm_info{v=\"2\"} 1\n");
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

static void test_metrics_gauge_delete_removes_only_that_series(void **state) {
  metrics_t *reg;
  metrics_gauge_t *g0, *g1, *g2;
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_gauge_new(reg, &g0, "lag", "L.", "partition", "0", NULL), 0);
  assert_int_equal(metrics_gauge_new(reg, &g1, "lag", "L.", "partition", "1", NULL), 0);
  assert_int_equal(metrics_gauge_new(reg, &g2, "lag", "L.", "partition", "2", NULL), 0);
  metrics_gauge_set(g0, 5);
  metrics_gauge_set(g2, 7);
  metrics_gauge_delete(reg, g2); /* the last one: the tail must move back */
  metrics_gauge_delete(reg, g0); /* the first one */
  metrics_gauge_delete(reg, NULL);
  assert_int_equal(metrics_gauge_new(reg, &g2, "lag", "L.", "partition", "2", NULL), 0);
  assert_true(metrics_gauge_get(g2) == 0);
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_string_equal(buf.data, "# HELP lag L.\n# TYPE lag gauge\nlag{partition=\"1\"} 0\n"
                                "lag{partition=\"2\"} 0\n");
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

static void bump(void *arg, metrics_t *reg) {
  metrics_gauge_t *g = arg;
  metrics_gauge_add(g, 1);
}

static void test_metrics_collect_hooks_run_before_render(void **state) {
  metrics_t *reg;
  metrics_gauge_t *g;
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_gauge_new(reg, &g, "renders", "R.", NULL), 0);
  assert_int_equal(metrics_on_collect(reg, bump, g), 0);
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_non_null(strstr(buf.data, "\nrenders 1\n"));
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_non_null(strstr(buf.data, "\nrenders 2\n"));
  for (int i = 1; i < 16; i++) assert_int_equal(metrics_on_collect(reg, bump, g), 0);
  assert_int_equal(metrics_on_collect(reg, bump, g), IX_EFULL);
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

static void test_metrics_daemon_set_has_every_documented_metric(void **state) {
  metrics_t *reg;
  metrics_daemon_t md;
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_daemon_register(reg, "9.8.7", &md), 0);
  metrics_counter_inc(md.events_rejected[ix_reject_index(IX_ETOOBIG)]);
  metrics_counter_inc(md.events_rejected[ix_reject_index(IX_EIO)]);
  metrics_gauge_t *lag3 = metrics_daemon_lag(&md, 3);
  assert_non_null(lag3);
  assert_ptr_equal(metrics_daemon_lag(&md, 3), lag3);
  metrics_gauge_set(lag3, 42);
  assert_int_equal(metrics_daemon_set_model(&md, 0xc0ffee, "lstm h=64"), 0);
  metrics_daemon_checkpoint_done(&md, 0.3, 1);
  metrics_daemon_checkpoint_done(&md, 0.2, 0);
  assert_int_equal(metrics_render(reg, &buf), 0);

  static const char *const want[] = {
      "# TYPE interestd_events_consumed_total counter\ninterestd_events_consumed_total 0\n",
      "# TYPE interestd_events_processed_total counter\n",
      "interestd_events_rejected_total{reason=\"too_big\"} 1\n",
      "interestd_events_rejected_total{reason=\"other\"} 1\n",
      "interestd_events_rejected_total{reason=\"not_map\"} 0\n",
      "interestd_events_rejected_total{reason=\"malformed\"} 0\n",
      "# TYPE interestd_predictions_produced_total counter\n",
      "# TYPE interestd_predictions_delivered_total counter\n",
      "# TYPE interestd_predictions_failed_total counter\n",
      "# TYPE interestd_batch_size_events histogram\n",
      "interestd_batch_size_events_bucket{le=\"4096\"} 0\n",
      "# TYPE interestd_step_duration_seconds histogram\n",
      "interestd_step_duration_seconds_bucket{le=\"5e-06\"} 0\n",
      "# TYPE interestd_event_to_prediction_seconds histogram\n",
      ("# TYPE interestd_consumer_lag_messages gauge\n"
       "interestd_consumer_lag_messages{partition=\"3\"} 42\n"),
      "# TYPE interestd_partitions_assigned gauge\n",
      "# TYPE interestd_users_in_state gauge\n",
      "# TYPE interestd_state_bytes gauge\n",
      "interestd_evictions_total{cause=\"lru\"} 0\ninterestd_evictions_total{cause=\"ttl\"} 0\n",
      "interestd_checkpoint_duration_seconds_count 2\n",
      "interestd_checkpoint_duration_seconds_sum 0.5\n",
      "interestd_checkpoint_failures_total 1\n",
      "# TYPE interestd_checkpoint_age_seconds gauge\n",
      "interestd_build_info{version=\"9.8.7\"} 1\n",
      "interestd_model_info{fingerprint=\"00c0ffee\",description=\"lstm h=64\"} 1\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    if (!strstr(buf.data, want[i])) fail_msg("missing %s in\n%s", want[i], buf.data);
  }
  /* age was reset by the successful checkpoint just now */
  assert_true(metrics_gauge_get(md.checkpoint_age_seconds) >= 0);
  assert_true(metrics_gauge_get(md.checkpoint_age_seconds) < 5);
  assert_string_equal(ix_reject_reason(IX_ENOTMAP), "not_map");
  assert_string_equal(ix_reject_reason(IX_EMISSING), "missing_field");
  assert_string_equal(ix_reject_reason(IX_ETYPE), "wrong_type");
  assert_string_equal(ix_reject_reason(IX_ERANGE), "out_of_range");
  assert_string_equal(ix_reject_reason(IX_ETRUNC), "truncated");
  assert_string_equal(ix_reject_reason(0), "other");
  assert_string_equal(ix_reject_label(99), "other");
  /* the label values in the order dashboards and earlier scrapes saw them */
  static const char *const order[] = {"other", "not_map", "truncated", "too_big",
                                      "missing_field", "wrong_type", "out_of_range",
                                      "malformed"};
  assert_int_equal(IX_REJECT_REASONS, sizeof order / sizeof order[0]);
  const char *at = buf.data;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    char line[96];
    snprintf(line, sizeof line, "interestd_events_rejected_total{reason=\"%s\"}", order[i]);
    const char *next = strstr(at, line);
    if (!next) fail_msg("%s missing or out of order in\n%s", line, buf.data);
    at = next;
  }
  /* no label value looks like a user id: every label is one of a fixed set */
  assert_null(strstr(buf.data, "user=\""));
  assert_null(strstr(buf.data, "user_id"));
  metrics_gauge_delete(reg, lag3);
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

static char *slurp(const char *rel) {
  const char *src = getenv("IX_SOURCE_DIR");
  if (!src) fail_msg("IX_SOURCE_DIR is not set (ctest sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", src, rel);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Every interestd_* name in text must be a registered family (histogram
 * series suffixes allowed); returns how many names were checked. */
static int check_names_registered(const char *text, const char *rendered, const char *what) {
  int checked = 0;
  for (const char *p = strstr(text, "interestd_"); p; p = strstr(p + 1, "interestd_")) {
    /* part of a longer name, or a path (python/interestd_torch) */
    if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '/')) continue;
    char name[128];
    size_t n = 0;
    while (n < sizeof name - 1 && (isalnum((unsigned char)p[n]) || p[n] == '_')) {
      name[n] = p[n];
      n++;
    }
    name[n] = '\0';
    /* a metric name goes on with a letter (not interestd_<version>_amd64.deb) */
    if (!islower((unsigned char)name[strlen("interestd_")])) continue;
    char want[160];
    snprintf(want, sizeof want, "# TYPE %s ", name);
    if (!strstr(rendered, want)) {
      static const char *const sfx[] = {"_bucket", "_sum", "_count"};
      int ok = 0;
      for (size_t i = 0; i < 3 && !ok; i++) {
        size_t sl = strlen(sfx[i]);
        if (n > sl && strcmp(name + n - sl, sfx[i]) == 0) {
          snprintf(want, sizeof want, "# TYPE %.*s histogram", (int)(n - sl), name);
          ok = strstr(rendered, want) != NULL;
        }
      }
      if (!ok) fail_msg("%s names %s, which interestd does not export", what, name);
    }
    checked++;
  }
  return checked;
}

static void test_metrics_docs_and_dashboard_match_the_registry(void **state) {
  metrics_t *reg;
  metrics_daemon_t md;
  metrics_buf_t buf = {0};
  assert_int_equal(metrics_new(&reg), 0);
  assert_int_equal(metrics_daemon_register(reg, "x", &md), 0);
  quality_metrics_t qm; /* the live quality families, as the daemon binds them */
  assert_int_equal(quality_metrics_bind(&qm, reg, 0x1234abcdu), 0);
  metrics_redis_t rm; /* the Redis sink's families, registered when [redis] is on */
  assert_int_equal(metrics_redis_register(reg, &rm), 0);
  metrics_changelog_t cm; /* the changelog's families, registered when one is on */
  assert_int_equal(metrics_changelog_register(reg, &cm), 0);
  warmup_metrics_t wm; /* the model swap's families (model.reload = warm) */
  assert_int_equal(warmup_metrics_register(reg, &wm), 0);
  metrics_standby_t sm; /* the standby replicas' families, registered with standby_replicas */
  assert_int_equal(metrics_standby_register(reg, &sm), 0);
  assert_non_null(metrics_standby_lag(reg, 0));
  metrics_loop_t lm; /* the event loop's families (daemon/loopstat.c) */
  assert_int_equal(metrics_loop_register(reg, &lm), 0);
  assert_int_equal(metrics_render(reg, &buf), 0);
  assert_non_null(strstr(buf.data, "interestd_quality_hits_total{model=\"1234abcd\",predictor=\"lstm\",k=\"5\"} 0"));
  char *ops = slurp("docs/OPERATIONS.md");
  char *dash = slurp("docs/grafana-dashboard.json");
  char *hdr = slurp("daemon/metrics.h");
  assert_true(check_names_registered(ops, buf.data, "docs/OPERATIONS.md") >= 19);
  assert_true(check_names_registered(dash, buf.data, "docs/grafana-dashboard.json") >= 19);
  assert_true(check_names_registered(hdr, buf.data, "daemon/metrics.h") >= 19);
  /* and every exported family is documented in the table and the header */
  for (const char *t = strstr(buf.data, "# TYPE "); t; t = strstr(t + 1, "# TYPE ")) {
    char row[160], name[128];
    sscanf(t + 7, "%127s", name);
    snprintf(row, sizeof row, "| `%s` |", name);
    if (!strstr(ops, row)) fail_msg("docs/OPERATIONS.md has no table row for %s", name);
    snprintf(row, sizeof row, " *  %s ", name);
    if (!strstr(hdr, row)) fail_msg("daemon/metrics.h's table lacks %s", name);
  }
  free(ops);
  free(dash);
  free(hdr);
  metrics_buf_free(&buf);
  metrics_destroy(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metrics_render_is_exact_prometheus_text),
      cmocka_unit_test(test_metrics_histogram_buckets_are_le_upper_bounds),
      cmocka_unit_test(test_metrics_number_formatting_round_trips),
      cmocka_unit_test(test_metrics_registration_rules),
      cmocka_unit_test(test_metrics_info_renders_after_set_and_replaces_labels),
      cmocka_unit_test(test_metrics_gauge_delete_removes_only_that_series),
      cmocka_unit_test(test_metrics_collect_hooks_run_before_render),
      cmocka_unit_test(test_metrics_daemon_set_has_every_documented_metric),
      cmocka_unit_test(test_metrics_docs_and_dashboard_match_the_registry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
