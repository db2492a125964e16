#!/bin/bash
# The Redis sink's cost and a feed's read latency (docs/PERFORMANCE.md,
# "Redis sink"). In one invocation, against one redis-server started here on
# a free loopback port (no persistence):
#   1. bench_e2e saturation-only, sink off and on, alternating ROUNDS pairs:
#      events/s and daemon CPU per event;
#   2. bench_e2e latency-only at RATE events/s with the sink on while
#      redis-benchmark reads one user's value (HGET <prefix><user> v, one
#      connection, no pipelining: a feed's point lookup) for as long:
#      p50/p99 of the GET.
# usage: bench_redis_sink.sh [N_EVENTS (100000)] [ROUNDS (2)] [RATE (20000)]; GET_N lookups (400000)
# Needs the release build (build/release) and redis-server, redis-benchmark.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${IX_BINARY_DIR:-$ROOT/build/release}
N=${1:-100000}; ROUNDS=${2:-2}; RATE=${3:-20000}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
RPID=$!
trap 'kill $RPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export IX_SOURCE_DIR=$ROOT IX_BINARY_DIR=$B BENCH_E2E_NO_JSON=1
ON=$(printf '[redis]\naddress = 127.0.0.1:%s\nkey_prefix = b:\n' "$PORT")
echo "bench_redis_sink: $N events, $ROUNDS pairs, redis-server $(redis-server --version | awk '{print $3}') on :$PORT"
for r in $(seq "$ROUNDS"); do
  for mode in off on; do
    if [ $mode = on ]; then conf=$ON; else conf=""; fi
    line=$(BENCH_E2E_CONF="$conf" "$B/tests/bench_e2e" "$N" 0 0 saturation-only | grep 'interestd saturation')
    echo "round $r sink $mode: ${line#interestd saturation: }"
  done
done
echo "keys in Redis: $(redis-cli -p "$PORT" dbsize)"
BENCH_E2E_CONF="$ON" "$B/tests/bench_e2e" "$N" 0 "$RATE" latency-only > /tmp/bench_redis_lat.$$ &
BPID=$!
# read one user's value while the paced run writes: from its warm-up until it
# ends (GET_N lookups back to back, one connection: about 10 s on the 2 cores)
USER=""
for _ in $(seq 300); do USER=$(redis-cli -p "$PORT" randomkey); [ -n "$USER" ] && break; sleep 0.1; done
[ -n "$USER" ] || { echo "no key in Redis after 30 s"; exit 1; }
echo "feed: HGET $USER v, one connection, ${GET_N:=400000} lookups while the daemon writes at $RATE events/s"
redis-benchmark -p "$PORT" -c 1 -n "$GET_N" HGET "$USER" v | grep -A2 -E 'latency summary|throughput summary'
wait $BPID
grep -E '^interestd at' /tmp/bench_redis_lat.$$ || true
rm -f /tmp/bench_redis_lat.$$
