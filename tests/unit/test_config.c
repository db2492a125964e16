/* daemon/config: defaults, every section parsed, errors that name the file,
 * the line and the reason (unknown keys and sections, bad values, bad
 * librdkafka properties), --set overrides routed to the right section, the
 * forbidden offset-store property, and config_check on the model and the
 * checkpoint directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "daemon/config.h"
#include "model/arch.h"
#include "model/modelfile.h"

static char dir[] = "/tmp/test_config_XXXXXX";
static char model_path[256];

static const char *write_file(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static int setup(void **unused) {
  assert_non_null(mkdtemp(dir));
  /* a small valid model file for config_check */
  modelfile_t mf = {0};
  arch_dims_default(&mf.dims);
  mf.dims.V = 8;
  mf.dims.H = 8;
  mf.half_life_s = 3600.0f;
  arch_layout_t L;
  arch_layout(&mf.dims, &L);
  mf.params = calloc(L.total, sizeof(float));
  mf.vocab_ids = calloc(mf.dims.V, sizeof(uint64_t));
  for (uint32_t i = 1; i < mf.dims.V; i++) mf.vocab_ids[i] = 100 + i;
  snprintf(model_path, sizeof model_path, "%s/m.ixm", dir);
  char err[256];
  assert_int_equal(modelfile_write(model_path, &mf, err, sizeof err), 0);
  free(mf.params);
  free(mf.vocab_ids);
  return 0;
}

static int teardown(void **unused) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static void test_config_defaults_without_a_file(void **unused) {
  config_t *c;
  char err[512];
  assert_int_equal(config_load(NULL, NULL, 0, &c, err, sizeof err), 0);
  assert_string_equal(c->kafka.input_topic, "events");
  assert_string_equal(c->kafka.output_topic, "interests");
  assert_int_equal(c->emit.policy, EMIT_EVERY);
  assert_int_equal(c->batch.max_events, 256);
  assert_null(c->kafka.props);
  config_destroy(c);
}

static void test_config_redis_section(void **unused) {
  config_t *c;
  char err[512];
  assert_int_equal(config_load(NULL, NULL, 0, &c, err, sizeof err), 0);
  assert_string_equal(c->redis.address, ""); /* off by default */
  assert_string_equal(c->redis.key_prefix, "interestd:user:");
  assert_int_equal(c->redis.ttl_s, -1);      /* the state's idle TTL */
  assert_int_equal(c->redis.format, REDIS_FORMAT_OUTPUT);
  config_destroy(c);
  const char *ok[] = {"redis.address=127.0.0.1:6380", "redis.database=2", "redis.password=pw",
                      "redis.key_prefix=f:", "redis.ttl_s=60", "redis.max_backlog=500",
                      "redis.format=json", "input.partitioner=murmur2"};
  assert_int_equal(config_load(NULL, ok, 8, &c, err, sizeof err), 0);
  assert_int_equal(c->redis.format, REDIS_FORMAT_JSON);
  assert_int_equal(c->kafka.input_partitioner, IX_PARTITIONER_MURMUR2);
  assert_string_equal(c->redis.address, "127.0.0.1:6380");
  assert_int_equal(c->redis.database, 2);
  assert_string_equal(c->redis.password, "pw");
  assert_string_equal(c->redis.key_prefix, "f:");
  assert_int_equal(c->redis.ttl_s, 60);
  assert_int_equal(c->redis.max_backlog, 500);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  config_print(c, f);
  fclose(f);
  assert_non_null(strstr(buf, "[redis]\naddress = 127.0.0.1:6380"));
  assert_null(strstr(buf, "= pw")); /* the password is masked */
  free(buf);
  config_destroy(c);
  const char *st[] = {"state.changelog_mode=changelog", "state.changelog_topic=g-state",
                      "state.standby_replicas=2"};
  assert_int_equal(config_load(NULL, st, 3, &c, err, sizeof err), 0);
  f = open_memstream(&buf, &len);
  config_print(c, f);
  fclose(f);
  assert_non_null(
      strstr(buf, "changelog_topic = g-state\nchangelog_mode = changelog\nstandby_replicas = 2\n"));
  free(buf);
  config_destroy(c);
  const char *bad[][2] = {{"redis.address=localhost", "host:port"},
                          {"redis.address=h:p1", "host:port"},
                          {"redis.format=xml", "output, msgpack or json"},
                          {"input.partitioner=random", "input.partitioner must be"},
                          {"redis.ttl_s=-5", "redis.ttl_s"},
                          {"redis.max_backlog=0", "between"},
                          {"redis.tls=yes", "unknown key"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(config_load(NULL, bad[i], 1, &c, err, sizeof err), IX_ECONFIG);
    if (!strstr(err, bad[i][1])) fail_msg("%s: '%s' lacks '%s'", bad[i][0], err, bad[i][1]);
  }
}

static void test_config_parses_every_section(void **unused) {
  const char *path = write_file("full.conf",
                                "; comment\n"
                                "[kafka]\n"
                                "brokers = k1:9092,k2:9092\n"
                                "group = g1\n"
                                "input_topic = in\n"
                                "output_topic = out\n"
                                "dlq_topic = dead\n"
                                "security.protocol = SASL_SSL\n"
                                "[kafka.consumer]\n"
                                "fetch.wait.max.ms = 10\n"
                                "[kafka.producer]\n"
                                "linger.ms = 3\n"
                                "[model]\n"
                                "path = /x/m.ixm\n"
                                "reload = reset\n"
                                "[state]\n"
                                "memory_limit_mb = 64\n"
                                "idle_ttl_s = 3600\n"
                                "checkpoint_dir = /var/lib/x\n"
                                "checkpoint_interval_s = 30\n"
                                "[batch]\n"
                                "max_events = 512\n"
                                "max_wait_us = 2000\n"
                                "[emit]\n"
                                "policy = change\n"
                                "interval_ms = 250\n"
                                "fluctuation_threshold = 0.25\n"
                                "top_n_change = 2\n"
                                "[log]\n"
                                "level = debug\n"
                                "[metrics]\n"
                                "listen = 0.0.0.0\n"
                                "port = 9999\n"
                                "[daemon]\n"
                                "shutdown_timeout_s = 5\n"
                                "health_stall_s = 7\n");
  config_t *c;
  char err[512];
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_string_equal(c->kafka.brokers, "k1:9092,k2:9092");
  assert_string_equal(c->kafka.group, "g1");
  assert_string_equal(c->kafka.dlq_topic, "dead");
  assert_string_equal(c->kafka.props[0], "security.protocol=SASL_SSL");
  assert_null(c->kafka.props[1]);
  assert_string_equal(c->kafka.consumer_props[0], "fetch.wait.max.ms=10");
  assert_string_equal(c->kafka.producer_props[0], "linger.ms=3");
  assert_string_equal(c->model.path, "/x/m.ixm");
  assert_int_equal(c->model.reload, MODEL_RELOAD_RESET);
  assert_int_equal(c->state.memory_limit_mb, 64);
  assert_int_equal(c->state.idle_ttl_s, 3600);
  assert_string_equal(c->state.checkpoint_dir, "/var/lib/x");
  assert_int_equal(c->state.checkpoint_interval_s, 30);
  assert_int_equal(c->batch.max_events, 512);
  assert_int_equal(c->batch.max_wait_us, 2000);
  assert_int_equal(c->emit.policy, EMIT_CHANGE);
  assert_int_equal(c->emit.interval_ms, 250);
  assert_true(c->emit.fluctuation_threshold == 0.25f);
  assert_int_equal(c->emit.top_n_change, 2);
  assert_int_equal(c->log.level, LOG_LVL_DEBUG);
  assert_string_equal(c->metrics.listen, "0.0.0.0");
  assert_int_equal(c->metrics.port, 9999);
  assert_int_equal(c->daemon.shutdown_timeout_s, 5);
  assert_int_equal(c->daemon.health_stall_s, 7);
  config_destroy(c);
}

/* Loads text and expects failure whose message contains each needle. */
static void expect_error(const char *text, const char *n1, const char *n2) {
  const char *path = write_file("bad.conf", text);
  config_t *c = NULL;
  char err[512] = "";
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), IX_ECONFIG);
  assert_null(c);
  if (!strstr(err, n1) || (n2 && !strstr(err, n2))) fail_msg("unexpected message: %s", err);
}

static void test_config_errors_name_file_line_and_reason(void **unused) {
  expect_error("[batch]\nmax_events = 10\nmax_evnts = 3\n", "bad.conf:3:", "unknown key 'max_evnts'");
  expect_error("\n[nosuch]\nx = 1\n", "bad.conf:3:", "unknown section [nosuch]");
  expect_error("[kafka\nbrokers = x\n", "bad.conf:", "outside any [section]");
  expect_error("[batch]\nmax_events = 0\n", "bad.conf:2:", "between 1 and 65536");
  expect_error("[batch]\nmax_events = 12x\n", "bad.conf:2:", "not a non-negative integer");
  expect_error("[emit]\n\n\npolicy = sometimes\n", "bad.conf:4:", "every, interval or change");
  expect_error("[emit]\nfluctuation_threshold = 1.5\n", "bad.conf:2:", "[0, 1]");
  expect_error("[log]\nlevel = loud\n", "bad.conf:2:", "log.level");
  expect_error("[kafka]\nbrokers = a\nno.such.property = 1\n", "bad.conf:3:", "no.such.property");
  expect_error("[kafka.consumer]\nenable.auto.offset.store = true\n", "bad.conf:2:",
               "enable.auto.offset.store cannot be set");
  expect_error("[kafka]\nthis line has no equals sign\n", "bad.conf:2:", "syntax");
  /* [input] and [output] (stream/input.h, stream/output.h) */
  expect_error("[input]\nformat = avro\n", "bad.conf:2:", "input.format must be msgpack or json");
  expect_error("[input]\nformat = json\nuser_field =\n", "bad.conf:3:", "input.user_field must not be empty");
  expect_error("[input]\ncategory_field = properties..category\n", "bad.conf:2:", "empty component");
  expect_error("[input]\ntime_field = .t\n", "bad.conf:2:", "empty component");
  expect_error("[input]\n\ntime_format = fortnights\n", "bad.conf:3:", "ms, s, iso8601 or kafka");
  expect_error("[input]\naction_map = add_to_cart=basket\n", "bad.conf:2:",
               "'basket' is not an action");
  expect_error("[input]\naction_map = add_to_cart\n", "bad.conf:2:", "is not name=action");
  expect_error("[input]\naction_map = a=cart, a=buy\n", "bad.conf:2:", "mapped twice");
  expect_error("[input]\nuser_from_key = maybe\n", "bad.conf:2:", "true or false");
  expect_error("[input]\nuser_path = x\n", "bad.conf:2:", "unknown key 'user_path' in section [input]");
  expect_error("[output]\nformat = avro\n", "bad.conf:2:", "output.format must be msgpack or json");
  expect_error("[output]\nnext_categories = 0\n", "bad.conf:2:", "between 1 and 20");
  expect_error("[output]\nnext_categories = 21\n", "bad.conf:2:", "between 1 and 20");
}

static void test_config_model_reload_warm_and_its_window(void **unused) {
  config_t *c;
  char err[512];
  assert_int_equal(config_load(NULL, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->model.reload, MODEL_RELOAD_REFUSE);
  assert_int_equal(c->model.warm_window_s, 259200);
  assert_int_equal(c->model.warm_max_events, 10000000);
  assert_int_equal(c->model.warm_start, -1); /* auto: on with reload = warm */
  config_destroy(c);
  const char *path = write_file("warm.conf", "[model]\nreload = warm\nwarm_window_s = 0\n"
                                             "warm_max_events = 500\nwarm_start = off\n");
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->model.reload, MODEL_RELOAD_WARM);
  assert_int_equal(c->model.warm_window_s, 0);
  assert_int_equal(c->model.warm_max_events, 500);
  assert_int_equal(c->model.warm_start, 0);
  config_destroy(c);
  path = write_file("warm-on.conf", "[model]\nwarm_start = on\n");
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->model.warm_start, 1);
  config_destroy(c);
  expect_error("[model]\nreload = hot\n", "bad.conf:2:", "'refuse', 'reset' or 'warm'");
  expect_error("[model]\nwarm_start = yes\n", "bad.conf:2:", "'auto', 'on' or 'off'");
  expect_error("[model]\nwarm_max_events = 0\n", "bad.conf:2:", "between 1 and");
}

static void test_config_standby_replicas(void **unused) {
  config_t *c;
  char err[512];
  assert_int_equal(config_load(NULL, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->state.standby_replicas, 0);
  config_destroy(c);
  const char *path = write_file("standby.conf", "[state]\nstandby_replicas = 2\n");
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->state.standby_replicas, 2);
  config_destroy(c);
  expect_error("[state]\nstandby_replicas = 17\n", "bad.conf:2:", "between 0 and 16");
}

/* state.pretouch_mb: 0 (off) by default, read and printed, at most
 * state.memory_limit_mb (config_check names the key), any size with no limit */
static void test_config_pretouch_mb(void **unused) {
  config_t *c;
  char err[512], text[512];
  assert_int_equal(config_load(NULL, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->state.pretouch_mb, 0);
  config_destroy(c);
  snprintf(text, sizeof text, "[model]\npath = %s\n[state]\nmemory_limit_mb = 256\n"
           "pretouch_mb = 200\n", model_path);
  const char *path = write_file("pretouch.conf", text);
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->state.pretouch_mb, 200);
  assert_int_equal(config_check(c, err, sizeof err), 0);
  char buf[4096] = "";
  FILE *f = fmemopen(buf, sizeof buf - 1, "w");
  assert_non_null(f);
  config_print(c, f);
  fclose(f);
  assert_non_null(strstr(buf, "memory_limit_mb = 256\npretouch_mb = 200\n"));
  config_destroy(c);
  const char *over[] = {"state.pretouch_mb=300"};
  assert_int_equal(config_load(path, over, 1, &c, err, sizeof err), 0);
  assert_int_equal(config_check(c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "state.pretouch_mb (300) must not exceed state.memory_limit_mb "
                              "(256)"));
  assert_non_null(strstr(err, "--set"));
  config_destroy(c);
  const char *unlimited[] = {"state.memory_limit_mb=0", "state.pretouch_mb=300"};
  assert_int_equal(config_load(path, unlimited, 2, &c, err, sizeof err), 0);
  assert_int_equal(config_check(c, err, sizeof err), 0);
  config_destroy(c);
  expect_error("[state]\npretouch_mb = -1\n", "bad.conf:2:", "pretouch_mb");
}

static void test_config_reads_input_mapping_and_output(void **unused) {
  const char *path = write_file("io.conf",
                                "[input]\nformat = json\nuser_field = user.id\n"
                                "category_field = properties.category_id\nitem_field = properties.product_id\n"
                                "action_field = event\ntime_field = timestamp\ntime_format = iso8601\n"
                                "action_map = Product Viewed=view, Product Added = cart,Order Completed=buy\n"
                                "[output]\nformat = json\nnext_categories = 20\n");
  config_t *c = NULL;
  char err[512];
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->input.format, INPUT_JSON);
  assert_string_equal(c->input.field[INPUT_F_USER], "user.id");
  assert_string_equal(c->input.field[INPUT_F_CATEGORY], "properties.category_id");
  assert_string_equal(c->input.field[INPUT_F_ITEM], "properties.product_id");
  assert_string_equal(c->input.field[INPUT_F_ACTION], "event");
  assert_string_equal(c->input.field[INPUT_F_TIME], "timestamp");
  assert_int_equal(c->input.time_format, TIMEFMT_ISO8601);
  assert_int_equal(c->input.n_actions, 3);
  assert_string_equal(c->input.actions[1].from, "Product Added");
  assert_int_equal(c->input.actions[1].to, ACTION_CART);
  assert_int_equal(c->input.actions[2].to, ACTION_BUY);
  assert_int_equal(c->output.format, OUTPUT_JSON);
  assert_int_equal(c->output.next_categories, 20);
  config_destroy(c);
  /* defaults: msgpack both ways, every pair; overrides reach [input] */
  const char *ov[] = {"input.format=json", "input.user_from_key=true", "input.time_format=kafka"};
  assert_int_equal(config_load(NULL, ov, 3, &c, err, sizeof err), 0);
  assert_int_equal(c->input.format, INPUT_JSON);
  assert_int_equal(c->input.user_from_key, 1);
  assert_int_equal(c->input.time_format, TIMEFMT_KAFKA);
  assert_string_equal(c->input.field[INPUT_F_USER], "u");
  assert_int_equal(c->output.format, OUTPUT_MSGPACK);
  assert_int_equal(c->output.next_categories, 10);
  config_destroy(c);
}

static void test_config_overrides_go_to_the_right_section(void **unused) {
  const char *sets[] = {"kafka.brokers=b:1", "kafka.security.protocol=SSL",
                        "kafka.consumer.fetch.wait.max.ms=7", "kafka.producer.linger.ms=0",
                        "emit.policy=interval", "batch.max_events=9"};
  config_t *c;
  char err[512];
  assert_int_equal(config_load(NULL, sets, 6, &c, err, sizeof err), 0);
  assert_string_equal(c->kafka.brokers, "b:1");
  assert_string_equal(c->kafka.props[0], "security.protocol=SSL");
  assert_string_equal(c->kafka.consumer_props[0], "fetch.wait.max.ms=7");
  assert_string_equal(c->kafka.producer_props[0], "linger.ms=0");
  assert_int_equal(c->emit.policy, EMIT_INTERVAL);
  assert_int_equal(c->batch.max_events, 9);
  config_destroy(c);
  /* an override wins over the file; a bad override is named */
  const char *path = write_file("o.conf", "[batch]\nmax_events = 100\n");
  const char *one[] = {"batch.max_events=5"};
  assert_int_equal(config_load(path, one, 1, &c, err, sizeof err), 0);
  assert_int_equal(c->batch.max_events, 5);
  config_destroy(c);
  const char *bad[] = {"batch.max_events=-1"};
  assert_int_equal(config_load(path, bad, 1, &c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "--set batch.max_events=-1"));
  const char *nodot[] = {"maxevents=3"};
  assert_int_equal(config_load(NULL, nodot, 1, &c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "section.key=value"));
}

static void test_config_exactly_once_needs_a_member_name(void **unused) {
  config_t *c;
  char err[512], tid[256];
  assert_int_equal(config_load(NULL, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(c->kafka.exactly_once, 0); /* at_least_once is the default */
  assert_int_equal(c->kafka.commit_interval_ms, 100);
  config_destroy(c);
  const char *bad[] = {"kafka.processing_guarantee=exactly-once"};
  assert_int_equal(config_load(NULL, bad, 1, &c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "at_least_once or exactly_once"));
  const char *manual[] = {"kafka.producer.transactional.id=x"};
  assert_int_equal(config_load(NULL, manual, 1, &c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "transactional.id cannot be set"));
  /* no name: refused by config_check, naming the key */
  char text[512];
  snprintf(text, sizeof text, "[kafka]\ngroup = g\nprocessing_guarantee = exactly_once\n"
           "[model]\npath = %s\n", model_path);
  const char *path = write_file("eos.conf", text);
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  config_transactional_id(c, tid, sizeof tid);
  assert_string_equal(tid, "");
  assert_int_equal(config_check(c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "kafka.instance_id"));
  config_destroy(c);
  /* instance_id, else the consumer's group.instance.id */
  const char *named[] = {"kafka.instance_id=a"};
  assert_int_equal(config_load(path, named, 1, &c, err, sizeof err), 0);
  config_transactional_id(c, tid, sizeof tid);
  assert_string_equal(tid, "g-a");
  assert_int_equal(config_check(c, err, sizeof err), 0);
  config_destroy(c);
  const char *gi[] = {"kafka.consumer.group.instance.id=m7"};
  assert_int_equal(config_load(path, gi, 1, &c, err, sizeof err), 0);
  config_transactional_id(c, tid, sizeof tid);
  assert_string_equal(tid, "g-m7");
  config_destroy(c);
}

static void test_config_missing_file_is_named(void **unused) {
  config_t *c;
  char err[512];
  assert_int_equal(config_load("/nonexistent/x.conf", NULL, 0, &c, err, sizeof err), IX_ENOENT);
  assert_non_null(strstr(err, "/nonexistent/x.conf"));
}

static void test_config_check_validates_model_and_directories(void **unused) {
  char text[1024];
  snprintf(text, sizeof text, "[model]\npath = %s\n[state]\ncheckpoint_dir = %s/ckpt\n",
           model_path, dir);
  const char *path = write_file("ok.conf", text);
  config_t *c;
  char err[512];
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(config_check(c, err, sizeof err), 0);
  config_destroy(c);

  snprintf(text, sizeof text, "[kafka]\ngroup = g\n[model]\npath = %s/missing.ixm\n", dir);
  path = write_file("nomodel.conf", text);
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(config_check(c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "nomodel.conf:4"));
  assert_non_null(strstr(err, "missing.ixm"));
  config_destroy(c);

  /* a corrupt model file is refused with the model's own reason */
  const char *junk = write_file("junk.ixm", "not a model");
  char jp[512];
  snprintf(jp, sizeof jp, "model.path=%s", junk);
  const char *sets[] = {jp};
  assert_int_equal(config_load(NULL, sets, 1, &c, err, sizeof err), 0);
  assert_int_equal(config_check(c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "--set"));
  config_destroy(c);

  snprintf(text, sizeof text, "[model]\npath = %s\n[state]\ncheckpoint_dir = %s\n", model_path,
           model_path);
  path = write_file("ckfile.conf", text);
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(config_check(c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "ckfile.conf:4"));
  config_destroy(c);

  snprintf(text, sizeof text, "[kafka]\ninput_topic = t\noutput_topic = t\n[model]\npath = %s\n",
           model_path);
  path = write_file("same.conf", text);
  assert_int_equal(config_load(path, NULL, 0, &c, err, sizeof err), 0);
  assert_int_equal(config_check(c, err, sizeof err), IX_ECONFIG);
  assert_non_null(strstr(err, "must differ"));
  config_destroy(c);
}

static void test_config_default_file_in_the_tree_is_valid_syntax(void **unused) {
  const char *src = getenv("IX_SOURCE_DIR");
  if (!src) src = ".";
  char path[1024];
  snprintf(path, sizeof path, "%s/daemon/interestd.conf", src);
  config_t *c;
  char err[512];
  int rc = config_load(path, NULL, 0, &c, err, sizeof err);
  if (rc) fail_msg("%s", err);
  assert_int_equal(c->emit.policy, EMIT_EVERY);
  config_destroy(c);
}

/* -c and --set as the three programs take them: the last -c wins, --set
 * values keep their order, one past CONFIG_MAX_SETS is a usage error (2). */
static void test_config_args_take_path_and_sets(void **state) {
  config_args_t ca = {0};
  assert_int_equal(config_args_take(&ca, 'c', "a.conf", "test"), 0);
  assert_int_equal(config_args_take(&ca, 'c', "b.conf", "test"), 0);
  assert_string_equal(ca.path, "b.conf");
  for (size_t i = 0; i < CONFIG_MAX_SETS; i++)
    assert_int_equal(config_args_take(&ca, 's', i % 2 ? "batch.max_events=64" : "log.level=warn", "test"), 0);
  assert_int_equal(ca.n_sets, CONFIG_MAX_SETS);
  assert_string_equal(ca.sets[0], "log.level=warn");
  assert_string_equal(ca.sets[1], "batch.max_events=64");
  assert_int_equal(config_args_take(&ca, 's', "x.y=z", "test"), 2);
  assert_int_equal(ca.n_sets, CONFIG_MAX_SETS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_args_take_path_and_sets),
      cmocka_unit_test(test_config_defaults_without_a_file),
      cmocka_unit_test(test_config_redis_section),
      cmocka_unit_test(test_config_parses_every_section),
      cmocka_unit_test(test_config_errors_name_file_line_and_reason),
      cmocka_unit_test(test_config_overrides_go_to_the_right_section),
      cmocka_unit_test(test_config_standby_replicas),
      cmocka_unit_test(test_config_pretouch_mb),
      cmocka_unit_test(test_config_model_reload_warm_and_its_window),
      cmocka_unit_test(test_config_reads_input_mapping_and_output),
      cmocka_unit_test(test_config_missing_file_is_named),
      cmocka_unit_test(test_config_exactly_once_needs_a_member_name),
      cmocka_unit_test(test_config_check_validates_model_and_directories),
      cmocka_unit_test(test_config_default_file_in_the_tree_is_valid_syntax),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
