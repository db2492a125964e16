#!/usr/bin/env bash
# JSON in, JSON out, through the daemon on the embedded (mock) broker:
# 3,000 real Taobao events rewritten as shop-style JSON (non-default names,
# nested paths, ISO-8601 times with +08:00, the shop's action names) plus 3 bad
# messages. interestd with [input] format = json and a mapping, [output]
# format = json and next_categories = 20 answers; the test checks
#   - one JSON prediction per valid event, equal to `interestctl replay
#     --offline` of the same JSON record file (every field but emit_time_ms);
#   - the same content as the msgpack path: offline replay of the msgpack
#     import of the same rows gives the same predictions (floats as float32);
#   - the 3 bad messages are in the dead-letter topic with reasons naming the
#     shop's fields, and counted in interestd_events_rejected_total;
#   - kcat and a Python consumer using only the json module (confluent-kafka
#     for the transport) read the JSON predictions; every one is valid
#     against docs/prediction.schema.json (a small checker of the keywords the
#     schema uses: no jsonschema package here);
#   - interestctl record keeps the JSON topic; train and eval read it with
#     --input-config / --input.
set -euo pipefail
. "$IX_SOURCE_DIR/tests/integration/lib.sh"
N=3000
fail() { echo "FAIL: $*"; [ -f "$T/d.log" ] && tail -20 "$T/d.log"; exit 1; }
command -v kcat >/dev/null || fail "kcat is not installed"

data_head $N > "$T/slice.csv"
"$CTL" import --format taobao --input "$T/slice.csv" --output "$T/mp.rec" --partitions 4 >/dev/null
# the same records as shop JSON, same partitions, offsets, timestamps and keys
$PY - "$T/mp.rec" "$T/json.rec" <<'EOF'
import datetime, json, sys
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import msgpack, ixrec
names = {0: "Product Viewed", 1: "Product Added", 2: "Product Favorited", 3: "Order Completed"}
tz = datetime.timezone(datetime.timedelta(hours=8))
out, last = [], {}
for p, o, ts, key, value in ixrec.read_records(sys.argv[1]):
    e = msgpack.unpackb(value)
    t = datetime.datetime.fromtimestamp(e["t"] / 1000, tz)
    doc = {"event_type": names.get(e["a"], "Checkout Started"),
           "context": {"user": {"id": str(e["u"])}},
           "event_time": t.isoformat(timespec="milliseconds"),
           "properties": {"product": {"id": e["i"]}, "category_id": str(e["c"]), "price": 9.5}}
    out.append((p, o, ts, key, json.dumps(doc).encode()))
    last[p] = max(last.get(p, -1), o)
bad = [(0, b'{"event_type":"Product Viewed","context":{"user":{"id":"1"}},"event_time":"2017-11-25T00:00:00+08:00","properties":{}}'),
       (1, b'{"event_type": "Product Viewed", "context": '),
       (2, b'{"event_type":"x","context":{"user":{"id":-4}},"event_time":"2017-11-25T00:00:00+08:00","properties":{"category_id":"5"}}')]
ixrec.write_records(sys.argv[2].replace(".rec", "_good.rec"), out)
for p, v in bad:
    last[p] += 1
    out.append((p, last[p], out[-1][2], b"7", v))
ixrec.write_records(sys.argv[2], out)
EOF

ix_broker events:4 interests:4 dlq:1
"$CTL" replay --brokers "$BS" --topic events --input "$T/json.rec" --fast 2>/dev/null
cat > "$T/json.sections" <<EOF
[kafka]
dlq_topic = dlq
[state]
checkpoint_dir =
[metrics]
listen = 127.0.0.1
port = 0
[input]
format = json
user_field = context.user.id
category_field = properties.category_id
item_field = properties.product.id
action_field = event_type
time_field = event_time
time_format = iso8601
action_map = Product Viewed=view, Product Added=cart, Product Favorited=fav, Order Completed=buy
[output]
format = json
next_categories = 20
EOF
ix_conf "$T/json.conf" json-formats < "$T/json.sections"
"$D" -c "$T/json.conf" --check-config >/dev/null 2>&1 || fail "--check-config refused the JSON config"
"$D" -c "$T/json.conf" 2> "$T/d.log" &
DAEMON=$!
n_valid=$(( $("$CTL" cat "$T/mp.rec" | wc -l) ))
"$CTL" record --brokers "$BS" --topic interests --output "$T/online.rec" --count "$n_valid" --timeout-ms 60000 2>/dev/null ||
  fail "recording the output topic failed"
"$CTL" record --brokers "$BS" --topic dlq --output "$T/dlq.rec" --count 3 --timeout-ms 30000 2>/dev/null ||
  fail "recording the dead-letter topic failed"
port=$(grep -o 'serving /metrics and /healthz on [^ ]*' "$T/d.log" | grep -o '[0-9]*$' | head -1 || true)
if [ -n "$port" ]; then
  curl -s "http://127.0.0.1:$port/metrics" > "$T/metrics" || true
fi

# kcat reads the JSON predictions as text
kcat -C -b "$BS" -t interests -o beginning -c 20 -e -q -f '%s\n' > "$T/kcat.out" 2> "$T/kcat.err" ||
  fail "kcat: $(cat "$T/kcat.err")"
# a Python consumer that decodes with the json module only
$PY - "$BS" > "$T/py.out" <<'EOF'
import json, sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "py-json", "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000})
c.subscribe(["interests"])
n, users = 0, set()
while n < 50:
    m = c.poll(10.0)
    if m is None: break
    if m.error(): continue
    d = json.loads(m.value())
    assert isinstance(d["next"], list) and 0 <= d["fluctuation"] <= 1, d
    assert m.key().decode() == d["user_id"], (m.key(), d["user_id"])
    users.add(d["user_id"]); n += 1
c.close()
print(n, len(users))
EOF
kill -TERM "$DAEMON"
wait "$DAEMON" || fail "interestd exited with $? after SIGTERM"
DAEMON=
# interestctl record keeps the JSON topic byte for byte (what a shop records to train on)
"$CTL" record --brokers "$BS" --topic events --output "$T/recorded.rec" --until-end --timeout-ms 20000 2>/dev/null
cmp -s <("$CTL" cat --json "$T/json.rec" | sort) <("$CTL" cat --json "$T/recorded.rec" | sort) ||
  fail "the recorded JSON topic differs from what was replayed into it"

# offline replay: the JSON file with the JSON config, the msgpack file with the defaults
"$CTL" replay --offline --input "$T/json.rec" --output "$T/off_json.rec" -c "$T/json.conf" 2> "$T/off.err" ||
  { cat "$T/off.err"; fail "offline replay (JSON)"; }
grep -q "3 rejected" "$T/off.err" || fail "offline replay: $(cat "$T/off.err")"
ix_conf "$T/mp.conf" json-formats-mp <<EOF
[state]
checkpoint_dir =
[output]
next_categories = 20
EOF
"$CTL" replay --offline --input "$T/mp.rec" --output "$T/off_mp.rec" -c "$T/mp.conf" 2> "$T/offmp.err" ||
  { cat "$T/offmp.err"; fail "offline replay (msgpack)"; }

$PY - "$T" "$n_valid" <<'EOF'
import json, struct, sys
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import msgpack, ixrec
T, n_valid = sys.argv[1], int(sys.argv[2])
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]

def by_source(path, decode):
    out = {}
    for _, _, _, key, value in ixrec.read_records(path):
        d = decode(value)
        src = (d["source_partition"], d["source_offset"])
        assert src not in out, f"{path}: two predictions for {src}"
        assert key.decode() == d["user_id"], (key, d["user_id"])
        out[src] = d
    return out

def from_msgpack(value):
    d = msgpack.unpackb(value, raw=False)
    cats = lambda l, name: [{"category_id": str(c), name: f32(p)} for c, p in l]
    return {"user_id": str(d["u"]), "source_partition": d["sp"], "source_offset": d["so"],
            "event_time_ms": d["t"], "emit_time_ms": d["et"], "n_events": d["n"],
            "fluctuation": f32(d["fl"]), "shift_probability": f32(d["sh"]),
            "next": cats(d["nx"], "p"), "long_term": cats(d["lt"], "p"), "rising": cats(d["ri"], "delta"),
            "falling": cats(d.get("fa", []), "delta")}

def from_json(value):
    d = json.loads(value)
    for k in ("fluctuation", "shift_probability"): d[k] = f32(d[k])
    for k in ("next", "long_term", "rising", "falling"):
        for c in d[k]:
            for v in ("p", "delta"):
                if v in c: c[v] = f32(c[v])
    return d

online = by_source(f"{T}/online.rec", from_json)
off_json = by_source(f"{T}/off_json.rec", from_json)
off_mp = by_source(f"{T}/off_mp.rec", from_msgpack)
assert len(online) == n_valid, (len(online), n_valid)
assert set(online) == set(off_json) == set(off_mp), "answered sources differ"
strip = lambda d: {k: v for k, v in d.items() if k != "emit_time_ms"}
diff = [s for s in off_json if strip(online[s]) != strip(off_json[s])]
assert not diff, ("online JSON != offline JSON", len(diff), online[min(diff)], off_json[min(diff)])
diff = [s for s in off_json if off_json[s] != off_mp[s]]
assert not diff, ("JSON path != msgpack path", len(diff), off_json[min(diff)], off_mp[min(diff)])
print(f"{n_valid} JSON predictions: online == offline JSON == offline msgpack (all 11 fields, floats as float32)")

# every online prediction against docs/prediction.schema.json (the keywords it uses)
import os, re
schema = json.load(open(os.environ["IX_SOURCE_DIR"] + "/docs/prediction.schema.json"))
def check(v, sc, where):
    for sub in sc.get("allOf", []):
        check(v, sub, where)
    if "$ref" in sc:
        sc = schema["$defs"][sc["$ref"].split("/")[-1]]
    t = sc.get("type")
    ok = {"object": isinstance(v, dict), "array": isinstance(v, list), "string": isinstance(v, str),
          "integer": isinstance(v, int) and not isinstance(v, bool),
          "number": isinstance(v, (int, float)) and not isinstance(v, bool)}.get(t, True)
    assert ok, (where, "type", t, v)
    if "pattern" in sc: assert re.search(sc["pattern"], v), (where, v)
    if "minimum" in sc: assert v >= sc["minimum"], (where, v)
    if "maximum" in sc: assert v <= sc["maximum"], (where, v)
    if "exclusiveMinimum" in sc: assert v > sc["exclusiveMinimum"], (where, v)
    if "maxItems" in sc: assert len(v) <= sc["maxItems"], (where, len(v))
    if t == "object":
        for k in sc.get("required", []): assert k in v, (where, "missing", k)
        if sc.get("additionalProperties") is False:
            assert set(v) <= set(sc["properties"]), (where, set(v) - set(sc["properties"]))
        for k, sub in sc.get("properties", {}).items():
            if k in v: check(v[k], sub, f"{where}.{k}")
    if t == "array" and "items" in sc:
        for i, x in enumerate(v): check(x, sc["items"], f"{where}[{i}]")
for _, _, _, _, value in ixrec.read_records(f"{T}/online.rec"):
    check(json.loads(value), schema, "prediction")
n20 = sum(len(d["next"]) == 20 for d in online.values())
assert n20 > len(online) // 2, ("next_categories = 20 not honoured", n20)
print(f"{len(online)} JSON predictions valid against docs/prediction.schema.json ({n20} with 20 next categories)")

dlq = [(v, ) for _, _, _, _, v in ixrec.read_records(f"{T}/dlq.rec")]
assert len(dlq) == 3, len(dlq)
kc = [json.loads(l) for l in open(f"{T}/kcat.out") if l.strip()]
assert len(kc) == 20 and all("user_id" in d and "next" in d for d in kc), len(kc)
n, users = map(int, open(f"{T}/py.out").read().split())
assert n == 50 and users > 1, (n, users)
print("kcat read 20 JSON predictions; a json-module Python consumer read 50")
EOF
# cat, train and eval read the JSON events through the same [input] section
cmp -s <("$CTL" cat --input-config "$T/json.conf" "$T/json_good.rec") <("$CTL" cat "$T/mp.rec") ||
  fail "cat --input-config of the JSON events differs from cat of the msgpack events"
"$CTL" eval --events "$T/json_good.rec" --input-config "$T/json.conf" --model "$MODEL" --no-baselines \
    > "$T/eval_json.out" 2>/dev/null || fail "eval --input-config on the JSON events"
"$CTL" eval --events "$T/mp.rec" --model "$MODEL" --no-baselines > "$T/eval_mp.out" 2>/dev/null ||
  fail "eval on the msgpack events"
[ "$(grep '^lstm' "$T/eval_json.out")" = "$(grep '^lstm' "$T/eval_mp.out")" ] ||
  fail "eval differs: $(grep '^lstm' "$T/eval_json.out") vs $(grep '^lstm' "$T/eval_mp.out")"
"$CTL" train --events "$T/json_good.rec" --input format=json --input user_field=context.user.id \
    --input category_field=properties.category_id --input item_field=properties.product.id \
    --input action_field=event_type --input time_field=event_time --input time_format=iso8601 \
    --out "$T/json.ixm" --epochs 1 --hidden 16 --vocab 100 > "$T/train.out" 2>&1 ||
  { tail -3 "$T/train.out"; fail "train --input on the JSON events"; }
echo "record keeps the JSON topic; cat and eval --input-config == the msgpack events; train --input runs"
grep -q "field 'properties.category_id' (category id) is missing" "$T/d.log" || fail "no reason naming properties.category_id"
grep -q "field 'context.user.id' (user id) is negative" "$T/d.log" || fail "no reason naming context.user.id"
grep -q "not valid JSON" "$T/d.log" || fail "no reason for the broken JSON"
if [ -s "$T/metrics" ]; then
  grep -q 'interestd_events_rejected_total{reason="missing_field"} 1' "$T/metrics" || fail "missing_field not counted"
  grep -q 'interestd_events_rejected_total{reason="truncated"} 1' "$T/metrics" || fail "truncated not counted"
  grep -q 'interestd_events_rejected_total{reason="out_of_range"} 1' "$T/metrics" || fail "out_of_range not counted"
  echo "rejects counted per reason in /metrics"
else
  fail "could not read /metrics (port from the daemon log: '${port:-}')"
fi
echo "1 passed, 0 failed"
