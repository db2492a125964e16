#!/usr/bin/env bash
# Interop with a real Kafka client: kcat produces msgpack events (and one bad
# message) into the embedded broker; interestd (a separate process) answers;
# kcat consumes the predictions and the dead letter. Python's msgpack decodes
# what kcat received and checks one prediction per event, keyed by user id,
# with the source partition/offset kcat saw, and per-user n_events counting up.
set -euo pipefail
: "${IX_SOURCE_DIR:?}" "${IX_BINARY_DIR:?}"
BIN=$IX_BINARY_DIR/daemon
PY=/usr/bin/python3
command -v kcat >/dev/null || { echo "FAIL: kcat is not installed"; exit 1; }
$PY -c 'import msgpack' || { echo "FAIL: python3-msgpack is not installed"; exit 1; }
WORK=$(mktemp -d /tmp/test_daemon_kcat.XXXXXX)
BROKER_PID= DAEMON_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null || true
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${IX_KEEP_TMP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# a small model trained on the bundled data (a few seconds)
CSV=$IX_SOURCE_DIR/data/taobao_userbehavior_head100k/small_sample.csv.gz
gzip -dc "$CSV" | sed -n '1,20000p' > "$WORK/head.csv"
"$IX_BINARY_DIR/ctl/interestctl" import --format taobao --input "$WORK/head.csv" --output "$WORK/train.rec" >/dev/null
"$IX_BINARY_DIR/ctl/interestctl" train --events "$WORK/train.rec" --out "$WORK/model.ixm" --epochs 1 \
    --hidden 16 --vocab 100 >/dev/null 2>&1

"$IX_BINARY_DIR/ctl/interestctl" broker --topic events:2 --topic interests:2 --topic dead:1 > "$WORK/broker.out" &
BROKER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/broker.out" ] && break; sleep 0.1; done
B=$(head -n1 "$WORK/broker.out")
[ -n "$B" ] || { echo "FAIL: no bootstrap address from interestctl broker"; exit 1; }
echo "broker at $B"

# 40 events of 4 users as msgpack files, produced by kcat one file per message
$PY - "$WORK" <<'PYEOF'
import msgpack, sys, os
work = sys.argv[1]
for u in range(4):
    d = os.path.join(work, "user%d" % u); os.makedirs(d)
    for k in range(10):
        ev = {"u": 5000 + u, "i": 100 + k, "c": 7 + (k * (u + 1)) % 5,
              "a": ["view", "cart", "fav", "buy"][k % 4], "t": 1511700000000 + k * 60000}
        with open(os.path.join(d, "%02d.msg" % k), "wb") as f:
            f.write(msgpack.packb(ev))
PYEOF
for u in 0 1 2 3; do
  kcat -P -b "$B" -t events -k $((5000 + u)) "$WORK"/user$u/*.msg
done
printf 'this is not msgpack' | kcat -P -b "$B" -t events -k bad
echo "kcat produced 40 events and 1 bad message"

cat > "$WORK/interestd.conf" <<CONF
[kafka]
brokers = $B
group = kcat-test
dlq_topic = dead
[kafka.consumer]
session.timeout.ms = 6000
fetch.wait.max.ms = 10
[model]
path = $WORK/model.ixm
[metrics]
listen =
CONF
"$BIN/interestd" --check-config -c "$WORK/interestd.conf"
"$BIN/interestd" -c "$WORK/interestd.conf" 2> "$WORK/interestd.log" &
DAEMON_PID=$!

timeout 40 kcat -C -b "$B" -t interests -o beginning -c 40 -f '%K|%k%R%s' > "$WORK/out.bin" \
  || { echo "FAIL: kcat did not receive 40 predictions"; tail -20 "$WORK/interestd.log"; exit 1; }
timeout 20 kcat -C -b "$B" -t dead -o beginning -c 1 -f '%k|%h|%s\n' > "$WORK/dead.txt" \
  || { echo "FAIL: no dead letter"; exit 1; }
# what kcat saw of the input: (partition, offset) per key
timeout 20 kcat -C -b "$B" -t events -o beginning -c 41 -f '%k %p %o\n' > "$WORK/in.txt"

$PY - "$WORK" <<'PYEOF'
import msgpack, struct, sys, collections
work = sys.argv[1]
data = open(work + "/out.bin", "rb").read()
inputs = {}
for line in open(work + "/in.txt"):
    k, p, o = line.split()
    inputs[(int(p), int(o))] = k
preds, pos = [], 0
while pos < len(data):
    # kcat writes %K as decimal text, then our '|', then the key
    bar = data.index(b"|", pos)
    klen = int(data[pos:bar]); pos = bar + 1
    key = data[pos:pos + klen].decode(); pos += klen
    (vlen,) = struct.unpack(">i", data[pos:pos + 4]); pos += 4
    preds.append((key, msgpack.unpackb(data[pos:pos + vlen], strict_map_key=False))); pos += vlen
assert len(preds) == 40, len(preds)
seen = set()
counts = collections.defaultdict(list)
for key, p in preds:
    assert key == str(p["u"]), (key, p["u"])
    src = (p["sp"], p["so"])
    assert src in inputs and inputs[src] == key, src
    assert src not in seen, "duplicate prediction for %r" % (src,)
    seen.add(src)
    counts[p["u"]].append((p["so"], p["n"]))
    assert 0.0 <= p["fl"] <= 1.0 and 0.0 <= p["sh"] <= 1.0 and len(p["nx"]) > 0
for u, lst in counts.items():
    lst.sort()
    assert [n for _, n in lst] == list(range(1, 11)), (u, lst)
print("python: 40 predictions, one per event, keys = user ids, n_events 1..10 per user")
PYEOF
grep -q '^bad|.*interestd-reason=not_map.*|this is not msgpack$' "$WORK/dead.txt" \
  || { echo "FAIL: dead letter: $(cat "$WORK/dead.txt")"; exit 1; }
echo "dead letter: $(cut -c1-120 "$WORK/dead.txt")"
kill -TERM "$DAEMON_PID"
if ! wait "$DAEMON_PID"; then echo "FAIL: interestd did not exit 0"; exit 1; fi
DAEMON_PID=
grep -q "rejected 1," "$WORK/interestd.log" || { echo "FAIL: rejected count"; exit 1; }
echo PASS
