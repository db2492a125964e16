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
