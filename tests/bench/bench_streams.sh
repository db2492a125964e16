#!/usr/bin/env bash
# interestd against the Kafka Streams peer on one real Apache Kafka, in one run
# (docs/PERFORMANCE.md, "Against Kafka Streams"): starts a fresh broker (tests/kafka/kafka.sh),
# builds the peer (tests/bench/streams/build.sh), runs tests/bench/bench_streams.py, stops
# the broker. A few minutes.
#   tests/bench/bench_streams.sh [BUILD_DIR (build/release)] [N_EVENTS (100000)] [USERS (100000)]
#   BENCH_STREAMS_ONLY=memory: the memory and restore phase alone (both sides)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build/release}" && pwd)
N=${2:-100000}
USERS=${3:-100000}
[ -x "$BUILD/daemon/interestd" ] || { echo "bench_streams.sh: build first ($BUILD/daemon/interestd)" >&2; exit 1; }
WORK=$(mktemp -d)
KDIR=$WORK/kafka
trap '"$ROOT/tests/kafka/kafka.sh" stop "$KDIR" >/dev/null 2>&1 || true; [ -n "${BENCH_STREAMS_KEEP:-}" ] || rm -rf "$WORK"' EXIT
CP=$("$ROOT/tests/bench/streams/build.sh" "$BUILD/streams-peer")
echo "bench_streams: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$ROOT/tests/kafka/kafka.sh" start "$KDIR"
/usr/bin/python3 "$ROOT/tests/bench/bench_streams.py" "$(cat "$KDIR/bootstrap")" "$BUILD" "$ROOT" "$CP" "$WORK" "$N" "$USERS"
# the peer's work without Kafka: its model, msgpack decoding and encoding on the same events
"$BUILD/ctl/interestctl" import --format taobao --input "$ROOT/data/taobao_userbehavior_head100k/small_sample.csv.gz" \
  --output "$WORK/events.rec" --partitions 8 >/dev/null
java -cp "$CP" interestd.peer.Offline "$ROOT/model/weights/taobao-h64.ixm" "$WORK/events.rec" "$WORK/peer-offline.rec"
echo "bench_streams: done $(date -u '+%H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg); broker RSS $(( $(ps -o rss= -p "$(cat "$KDIR/pid")") / 1024 )) MiB"
