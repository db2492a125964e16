#!/usr/bin/env bash
# The Kafka Streams peer (tests/bench/streams/) on the real broker makes the same predictions
# as interestd: 5,000 real Taobao events are replayed into an input topic, the peer (a Kafka
# Streams 4.1.1 application with a RocksDB store and its changelog) answers each of them on
# its output topic, and tests/bench/streams/compare.py checks its predictions against
# `interestctl replay --offline` of the topic's records (the pipeline interestd runs, which
# test_online_offline checks bit for bit against the daemon): the same sources answered
# once each; u, t, n equal; the top next category equal; every score within 1e-3.
# Real broker only (Kafka Streams creates its changelog and needs the Admin API).
set -euo pipefail
. "$IX_SOURCE_DIR/tests/integration/lib.sh"
N=5000
PEER=
fail() { echo "FAIL: $*"; [ -f "$T/peer.log" ] && tail -20 "$T/peer.log"; exit 1; }
cleanup_peer() { [ -n "$PEER" ] && kill -9 "$PEER" 2>/dev/null; ix_cleanup; }
trap cleanup_peer EXIT
[ -n "$SFX" ] || fail "needs the real broker (IX_KAFKA_DIR or IX_KAFKA_BOOTSTRAP)"

CP=$("$SRC/tests/bench/streams/build.sh" "$IX_BINARY_DIR/streams-peer") || fail "building the peer"
data_head $N > "$T/slice.csv"
"$CTL" import --format taobao --input "$T/slice.csv" --output "$T/in.rec" --partitions 8 >/dev/null
ix_broker events:8 interests:8
"$CTL" replay --brokers "$BS" --topic "events$SFX" --input "$T/in.rec" --fast 2>/dev/null
# the reference reads the topic's own order (a real broker can hold a partition's first
# batch behind a later one: docs/KAFKA.md)
"$CTL" record --brokers "$BS" --topic "events$SFX" --output "$T/topic.rec" --until-end --timeout-ms 20000 2>/dev/null
[ "$("$CTL" cat "$T/topic.rec" | wc -l)" -eq $N ] || fail "the input topic does not hold $N records"

t0=$(date +%s.%N)
java -Xmx512m -cp "$CP" interestd.peer.StreamsPeer "$BS" "events$SFX" "interests$SFX" \
  "streams-peer$SFX" "$T/state" "$MODEL" commit.interval.ms=1000 2> "$T/peer.log" &
PEER=$!
"$CTL" record --brokers "$BS" --topic "interests$SFX" --output "$T/peer.rec" --count $N --timeout-ms 120000 2>/dev/null ||
  fail "the peer's output topic did not get $N predictions"
echo "the peer answered $N events in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s (JVM start and group join included)"
kill -TERM "$PEER"
wait "$PEER" || fail "the peer exited with $? after SIGTERM"
PEER=
grep -q "streams-peer: closed; $N events, 0 rejected" "$T/peer.log" || fail "the peer's closing line: $(tail -3 "$T/peer.log")"
# nothing beyond one prediction per event
"$CTL" record --brokers "$BS" --topic "interests$SFX" --output "$T/all.rec" --until-end --timeout-ms 20000 2>/dev/null
[ "$("$CTL" cat "$T/all.rec" | wc -l)" -eq $N ] || fail "the output topic holds $("$CTL" cat "$T/all.rec" | wc -l) predictions, expected $N"

printf '[model]\npath = %s\n' "$MODEL" > "$T/offline.conf"
"$CTL" replay --offline --input "$T/topic.rec" --output "$T/offline.rec" -c "$T/offline.conf" 2> "$T/off.err" ||
  { cat "$T/off.err"; fail "offline replay"; }
$PY "$SRC/tests/bench/streams/compare.py" "$T/offline.rec" "$T/peer.rec" 1e-3 || fail "the peer's predictions differ"
echo "1 passed, 0 failed"
