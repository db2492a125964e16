#!/usr/bin/env bash
# `interestd --demo --json` (the documented JSON-mode flag): the bundled events
# go in as Segment-style JSON through the [input] mapping and come out as JSON
# predictions; every event is answered once and none is rejected. A kcat
# consumer reads a JSON prediction off the demo's embedded broker while it runs.
set -euo pipefail
. "$IX_SOURCE_DIR/tests/integration/lib.sh"
fail() { echo "FAIL: $*"; [ -f "$T/demo.out" ] && tail -20 "$T/demo.out"; exit 1; }
timeout 120 "$D" --demo --json --events 5000 --rate 2500 --quiet > "$T/demo.out" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do grep -q "embedded Kafka broker at" "$T/demo.out" 2>/dev/null && break; sleep 0.1; done
B=$(grep -o 'embedded Kafka broker at [^ ]*' "$T/demo.out" | awk '{print $NF}' || true)
[ -n "$B" ] || fail "no broker address printed"
timeout 60 kcat -C -b "$B" -t interests -o beginning -c 1 -q -f '%s\n' > "$T/one.json" 2> "$T/kcat.err" ||
  fail "kcat: $(cat "$T/kcat.err")"
wait "$DAEMON" || fail "the demo exited with $?"
DAEMON=
grep -q "JSON mode: Segment-style JSON events in, JSON predictions out" "$T/demo.out" || fail "not in JSON mode"
grep -q "demo done: 5000 events fed, 5000 predictions delivered (one per event)" "$T/demo.out" ||
  fail "not every event answered once"
grep -q "rejected 0 " "$T/demo.out" || fail "events were rejected"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["user_id"] and len(d["next"]) > 0, d' "$T/one.json" ||
  fail "kcat did not read a JSON prediction: $(head -c 300 "$T/one.json")"
echo "demo --json: 5000 JSON events answered once each, none rejected; kcat read a JSON prediction"
echo "1 passed, 0 failed"
