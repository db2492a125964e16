#!/bin/bash
# An offline warm checkpoint set for a new model (blue/green roll-out):
# interestctl replay --offline --model NEW --write-state DIR over a recorded
# topic writes each partition's states at its end of input with NEW's
# fingerprint. Checks: a second replay with NEW finds every user's state in
# DIR bit-identical at the end offsets (--check-state); the same replay with
# another model is refused by the fingerprint (exit 1); --read-state: a
# replay of the later events on the states written for the earlier ones
# equals one replay over everything, and refuses another model's states; a
# damaged checkpoint file is refused.
set -euo pipefail
: "${IX_SOURCE_DIR:?}" "${IX_BINARY_DIR:?}"
CTL=$IX_BINARY_DIR/ctl/interestctl
CSV=$IX_SOURCE_DIR/data/taobao_userbehavior_head100k/small_sample.csv.gz
MODEL=$IX_SOURCE_DIR/model/weights/taobao-h64.ixm
[ -x "$CTL" ] || { echo "FAIL: missing $CTL"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(zcat "$CSV" || true) | head -20000 > "$TMP/head.csv"
"$CTL" import --format taobao --input "$TMP/head.csv" --output "$TMP/topic.rec" >/dev/null
# the "new" model: trained here for 1 epoch (its fingerprint differs from the shipped one's)
"$CTL" train --events "$TMP/topic.rec" --epochs 1 --batch 16 --out "$TMP/new.ixm" 2>/dev/null

"$CTL" replay --offline --input "$TMP/topic.rec" --output "$TMP/p1.rec" --model "$TMP/new.ixm" \
  --write-state "$TMP/warm" --quiet 2> "$TMP/w.log"
cat "$TMP/w.log"
grep -q "write-state: [0-9]* users" "$TMP/w.log" || { echo "FAIL: no write-state summary"; exit 1; }
ls "$TMP/warm"/p*-1.ckpt >/dev/null

"$CTL" replay --offline --input "$TMP/topic.rec" --output "$TMP/p2.rec" --model "$TMP/new.ixm" \
  --check-state "$TMP/warm" --quiet 2> "$TMP/c.log" || { cat "$TMP/c.log"; echo "FAIL: warm set differs"; exit 1; }
grep "bit-identical" "$TMP/c.log"
cmp "$TMP/p1.rec" "$TMP/p2.rec"

if "$CTL" replay --offline --input "$TMP/topic.rec" --output "$TMP/p3.rec" --model "$MODEL" \
     --check-state "$TMP/warm" --quiet 2> "$TMP/o.log"; then
  echo "FAIL: the warm set was accepted by another model"; exit 1
fi
grep -q "refusing to restore" "$TMP/o.log" || { cat "$TMP/o.log"; echo "FAIL: no fingerprint refusal"; exit 1; }
echo "another model: refused by the fingerprint"

# --read-state: a replay of the later events on the states written for the earlier
# ones gives each of them the prediction of one replay over everything
T=$(PYTHONPATH="$IX_SOURCE_DIR/python" /usr/bin/python3 -c "
from interestd_torch.records import load_events
ev = load_events('$TMP/topic.rec'); print(int(ev['ts'][len(ev) * 2 // 3]))")
"$CTL" split --input "$TMP/topic.rec" --out-prefix "$TMP/cut" --by time --dev-start "$T" \
  --test-start "$((T + 1000 * 86400000))" >/dev/null
"$CTL" replay --offline --input "$TMP/cut.train.rec" --output "$TMP/r1.rec" --model "$TMP/new.ixm" \
  --write-state "$TMP/part" --quiet 2>/dev/null
"$CTL" replay --offline --input "$TMP/cut.dev.rec" --output "$TMP/r2.rec" --model "$TMP/new.ixm" \
  --read-state "$TMP/part" 2> "$TMP/rs.log" || { cat "$TMP/rs.log"; echo "FAIL: --read-state"; exit 1; }
grep "read-state: partition 0" "$TMP/rs.log"
PYTHONPATH="$IX_SOURCE_DIR/python" /usr/bin/python3 - "$TMP/p1.rec" "$TMP/r2.rec" <<'PY'
import sys
from interestd_torch.records import read_records
full = {(p, o): v for p, o, _, _, v in read_records(sys.argv[1])}
part = [(p, o, v) for p, o, _, _, v in read_records(sys.argv[2])]
bad = sum(full.get((p, o)) != v for p, o, v in part)
print(f"--read-state: {len(part)} predictions of the later events, {bad} differ from one replay over everything")
sys.exit(1 if bad or not part else 0)
PY
if "$CTL" replay --offline --input "$TMP/cut.dev.rec" --output "$TMP/r3.rec" --model "$MODEL" \
     --read-state "$TMP/part" --quiet 2> "$TMP/rm.log"; then
  echo "FAIL: --read-state accepted another model's states"; exit 1
fi
grep -q "read-state: partition" "$TMP/rm.log" || { cat "$TMP/rm.log"; echo "FAIL: no refusal"; exit 1; }

f=$(ls "$TMP/warm"/p0-*.ckpt | head -1)
printf '\x55' | dd of="$f" bs=1 seek=200 conv=notrunc 2>/dev/null
if "$CTL" replay --offline --input "$TMP/topic.rec" --output "$TMP/p4.rec" --model "$TMP/new.ixm" \
     --check-state "$TMP/warm" --quiet 2> "$TMP/d.log"; then
  echo "FAIL: a damaged checkpoint was accepted"; exit 1
fi
grep "partition 0" "$TMP/d.log" | head -2
echo "test_warm_checkpoint: PASS"
