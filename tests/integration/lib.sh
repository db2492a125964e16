# Shared set-up for the integration scripts, sourced after `set -euo pipefail`
# (the caller defines fail()): paths, a scratch directory T removed at exit,
# the embedded broker, a daemon config. At exit the processes whose pids are
# in DAEMON and FEED are killed (-9) and the broker is stopped.
CTL=$IX_BINARY_DIR/ctl/interestctl
D=$IX_BINARY_DIR/daemon/interestd
SRC=$IX_SOURCE_DIR
DATA=$SRC/data/taobao_userbehavior_head100k/small_sample.csv.gz # the bundled sample; the importer reads gzip
MODEL=$SRC/model/weights/taobao-h64.ixm
PY=/usr/bin/python3
T=$(mktemp -d)
BROKER= DAEMON= FEED= BS=
ix_cleanup() {
  local p
  for p in ${DAEMON:-} ${FEED:-}; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$T"
}
trap ix_cleanup EXIT
# data_head N: the first N lines of the bundled sample, as CSV text (reads the
# whole stream, so no SIGPIPE under pipefail)
data_head() { gzip -dc "$DATA" | sed -n "1,${1}p"; }

# The broker: `interestctl broker` (the mock) by default; a real cluster when
# IX_KAFKA_BOOTSTRAP=host:port or IX_KAFKA_DIR (tests/kafka/kafka.sh's folder)
# is set. On a real cluster every topic and group name gets the suffix SFX,
# unique to this run (scripts write "events$SFX"; SFX is exported for their
# Python parts), so that tests share one cluster, at once and again later.
SFX=
if [ -n "${IX_KAFKA_BOOTSTRAP:-}${IX_KAFKA_DIR:-}" ]; then SFX="-$$-$RANDOM"; fi
export SFX

# ix_broker TOPIC:PARTITIONS...: starts `interestctl broker` with these topics,
# or creates TOPIC$SFX on the real cluster (Admin API); sets BS (the bootstrap
# address) and BROKER (the mock's pid). Log: $T/broker.log.
ix_broker() {
  local args=() t
  if [ -n "$SFX" ]; then
    BS=${IX_KAFKA_BOOTSTRAP:-}
    [ -n "$BS" ] || BS=$(cat "$IX_KAFKA_DIR/bootstrap") || fail "no broker in $IX_KAFKA_DIR"
    echo "broker: a real cluster at $BS, topic suffix $SFX"
    $PY "$SRC/tests/kafka/create_topics.py" "$BS" "$SFX" "$@" || fail "creating the topics on $BS failed"
    return
  fi
  for t in "$@"; do args+=(--topic "$t"); done
  "$CTL" broker "${args[@]}" > "$T/bootstrap" 2> "$T/broker.log" &
  BROKER=$!
  for _ in $(seq 100); do [ -s "$T/bootstrap" ] && break; sleep 0.1; done
  BS=$(cat "$T/bootstrap")
  [ -n "$BS" ] || fail "broker printed no bootstrap address ($(cat "$T/broker.log"))"
}

# ix_conf FILE GROUP < more: writes a daemon config for the broker at BS
# (topics events$SFX -> interests$SFX, group GROUP$SFX, the shipped model, group timeouts short enough
# for the mock broker), followed by the caller's own sections from stdin.
ix_conf() {
  {
    printf '[kafka]\nbrokers = %s\ngroup = %s\ninput_topic = events%s\noutput_topic = interests%s\n' "$BS" "$2$SFX" "$SFX" "$SFX"
    printf '[kafka.consumer]\nsession.timeout.ms = 6000\nheartbeat.interval.ms = 500\nfetch.wait.max.ms = 10\n'
    printf '[model]\npath = %s\n' "$MODEL"
    cat
  } > "$1"
}

# --- the kill tests' pieces (test_crash_recovery, test_standby_members,
# tests/kafka/test_exactly_once): the caller defines fail() ---
now() { date +%s.%N; }
# ix_sleep_ms MS
ix_sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
# ix_wait_log FILE PATTERN SECONDS: 0 once FILE has a line matching PATTERN
# (checked every 50 ms), 1 when SECONDS pass first
ix_wait_log() {
  local i
  for i in $(seq $(($3 * 20))); do grep -qs "$2" "$1" && return 0; sleep 0.05; done
  grep -qs "$2" "$1"
}
# ix_metrics_url LOG: the daemon's metrics address from its log (waits up to 10 s)
ix_metrics_url() { ix_wait_log "$1" "metrics on http" 10 || true; grep -o 'http://[0-9.:]*/metrics' "$1" | head -1; }
# ix_feed RECFILE RATE: produces RECFILE's records to events$SFX at BS, each
# to its recorded partition in file order (the topic's offsets are the
# file's), at RATE events/s, in the background (tests/py/ixfeed.py); sets
# FEED; log $T/feed.log. ix_feed_wait: waits for it to end, fails when it
# failed, prints its summary.
ix_feed() {
  $PY "$SRC/tests/py/ixfeed.py" "$1" "$BS" "$2" > "$T/feed.log" 2>&1 &
  FEED=$!
}
ix_feed_wait() {
  wait "$FEED" || fail "the feed failed: $(cat "$T/feed.log")"
  FEED=
  cat "$T/feed.log"
}
# ix_caught_up PARTS SECONDS DELIVERED URL...: waits until the members at the
# metrics URLs, together, have lag 0 on PARTS partitions and (DELIVERED=1)
# every produced prediction delivered (tests/py/ixcaughtup.py); 1 after
# SECONDS without progress (or 6 x SECONDS in all)
ix_caught_up() { $PY "$SRC/tests/py/ixcaughtup.py" "$@"; }
# ix_check_states CONF DIR: the checkpoints in DIR bit-identical to offline
# replay of $T/in.rec (which writes its predictions to $T/offline.rec)
ix_check_states() {
  "$CTL" replay --offline --input "$T/in.rec" --output "$T/offline.rec" -c "$1" \
    --check-state "$2" 2> "$T/check.log" || { tail -20 "$T/check.log"; fail "states differ from offline replay"; }
  grep "check-state: every user" "$T/check.log"
}
# ix_check_predictions [TOPIC_REC]: records the output topic interests$SFX to
# $T/out.rec and checks every input event ($T/in.rec) answered, each
# prediction equal to offline replay's ($T/offline.rec); with TOPIC_REC, the
# input topic recorded there first and checked to hold $T/in.rec at its
# offsets (tests/py/ixcheckout.py)
ix_check_predictions() {
  "$CTL" record --brokers "$BS" --topic "interests$SFX" --output "$T/out.rec" --until-end --timeout-ms 30000 2>/dev/null
  if [ -n "${1:-}" ]; then
    "$CTL" record --brokers "$BS" --topic "events$SFX" --output "$1" --until-end --timeout-ms 30000 2>/dev/null
  fi
  $PY "$SRC/tests/py/ixcheckout.py" "$T/in.rec" "$T/out.rec" "$T/offline.rec" ${1:+"$1"} ||
    fail "the output check failed"
}
