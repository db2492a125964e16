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

# ix_broker TOPIC:PARTITIONS...: starts `interestctl broker` with these topics;
# sets BROKER (its pid) and BS (its bootstrap address). Log: $T/broker.log.
ix_broker() {
  local args=() t
  for t in "$@"; do args+=(--topic "$t"); done
  "$CTL" broker "${args[@]}" > "$T/bootstrap" 2> "$T/broker.log" &
  BROKER=$!
  for _ in $(seq 100); do [ -s "$T/bootstrap" ] && break; sleep 0.1; done
  BS=$(cat "$T/bootstrap")
  [ -n "$BS" ] || fail "broker printed no bootstrap address ($(cat "$T/broker.log"))"
}

# ix_conf FILE GROUP < more: writes a daemon config for the broker at BS
# (topics events -> interests, the shipped model, group timeouts short enough
# for the mock broker), followed by the caller's own sections from stdin.
ix_conf() {
  {
    printf '[kafka]\nbrokers = %s\ngroup = %s\ninput_topic = events\noutput_topic = interests\n' "$BS" "$2"
    printf '[kafka.consumer]\nsession.timeout.ms = 6000\nheartbeat.interval.ms = 500\nfetch.wait.max.ms = 10\n'
    printf '[model]\npath = %s\n' "$MODEL"
    cat
  } > "$1"
}
