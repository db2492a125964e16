#!/usr/bin/env bash
# Offline replay of a real Taobao slice equals the golden prediction files
# byte for byte (tests/golden/README.md). This fails whenever the processing
# changes: codec, pipeline, state layout, emission policy, model file or model
# kernels. After a DELIBERATE change (e.g. a new shipped model), regenerate the
# golden files with tests/golden/regenerate.sh and commit them saying why.
set -euo pipefail
CTL=$IX_BINARY_DIR/ctl/interestctl
SRC=$IX_SOURCE_DIR
G=$SRC/tests/golden
MODEL=$SRC/model/weights/taobao-h64.ixm
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; echo "(a deliberate change of model or processing? run tests/golden/regenerate.sh, see tests/golden/README.md)"; exit 1; }

# 1. The input is what the importer makes of the repository's Taobao slice.
"$CTL" import --format taobao --input "$SRC/tests/data/taobao_head1000.csv" --output "$T/in.rec" \
  --partitions 8 >/dev/null
cmp -s "$T/in.rec" "$G/taobao_head1000.rec" || fail "importing tests/data/taobao_head1000.csv no longer gives tests/golden/taobao_head1000.rec"

replay() { # replay KERNEL OUT [args...]: KERNEL "" = the default choice
  local k=$1 out=$2; shift 2
  if [ -z "$k" ]; then env -u IX_KERNEL "$CTL" replay --offline --input "$G/taobao_head1000.rec" --output "$out" --model "$MODEL" "$@"
  else IX_KERNEL=$k "$CTL" replay --offline --input "$G/taobao_head1000.rec" --output "$out" --model "$MODEL" "$@"; fi
}

# 2. Each kernel this CPU can run gives its golden file, byte for byte.
replay "" "$T/default.rec" 2> "$T/default.err" || { cat "$T/default.err"; fail "offline replay failed"; }
default_k=$(grep -o 'kernel=[a-z0-9]*' "$T/default.err" | cut -d= -f2)
checked=() missing=()
for k in scalar avx2 avx512; do
  if [ "$k" = avx512 ]; then
    [ "$default_k" = avx512 ] || { missing+=("$k"); continue; }
    cp "$T/default.rec" "$T/$k.rec"; cp "$T/default.err" "$T/$k.err"
  else
    replay "$k" "$T/$k.rec" 2> "$T/$k.err" || { cat "$T/$k.err"; fail "offline replay ($k) failed"; }
    grep -q "kernel=$k;" "$T/$k.err" || { missing+=("$k"); continue; }
  fi
  zcat "$G/taobao_head1000.$k.pred.rec.gz" > "$T/golden.$k.rec"
  if ! cmp "$T/$k.rec" "$T/golden.$k.rec"; then
    "$CTL" cat "$T/golden.$k.rec" > "$T/g.txt"; "$CTL" cat "$T/$k.rec" > "$T/o.txt"
    diff "$T/g.txt" "$T/o.txt" | head -6
    fail "offline replay with the $k kernel differs from tests/golden/taobao_head1000.$k.pred.rec.gz"
  fi
  checked+=("$k")
done
echo "golden: identical for kernels: ${checked[*]}; not runnable on this CPU: ${missing[*]:-none}"
[[ " ${checked[*]} " == *" scalar "* && " ${checked[*]} " == *" $default_k "* ]] ||
  fail "the scalar kernel and the default kernel ($default_k) must both be checked"
grep -q "1000 records in .* 1000 events processed, 1000 predictions written" "$T/default.err" ||
  fail "summary: $(cat "$T/default.err")"

# 3. Batching does not change a byte: one event per batch, and 7.
for n in 1 7; do
  replay "" "$T/b$n.rec" --set batch.max_events=$n 2>/dev/null
  cmp -s "$T/b$n.rec" "$T/default.rec" || fail "batch.max_events=$n changes the output"
done

# 4. The output's framing: key = user id, partition/offset = the source event's,
#    timestamp = event time = emit time; one prediction per event, in input order
#    per partition. A different emission policy does change the bytes.
$PY - "$T/default.rec" "$G/taobao_head1000.rec" <<'EOF'
import sys
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import msgpack, ixrec
out = list(ixrec.read_records(sys.argv[1]))
inp = {(p, o): (ts, k) for p, o, ts, k, _ in ixrec.read_records(sys.argv[2])}
assert len(out) == len(inp) == 1000, (len(out), len(inp))
for p, o, ts, k, v in out:
    d = msgpack.unpackb(v, raw=False)
    assert (d["sp"], d["so"]) == (p, o) and (p, o) in inp, (p, o, d)
    assert ts == d["t"] == d["et"] == inp[(p, o)][0], (ts, d)
    assert k == str(d["u"]).encode() == inp[(p, o)][1], (k, d)
print("framing: 1000 predictions, key/partition/offset/timestamp as specified, et = t")
EOF
replay "" "$T/change.rec" --set emit.policy=change 2> "$T/change.err"
cmp -s "$T/change.rec" "$T/default.rec" && fail "emit.policy=change gave the same bytes as every"
grep -q "suppressed by emit policy change" "$T/change.err" || fail "change policy summary: $(cat "$T/change.err")"

# 5. Bad messages are rejected and counted, and change nothing else: three bad
#    records appended after each partition's last offset leave the golden
#    output as it is.
$PY - "$G/taobao_head1000.rec" "$T/bad.rec" <<'EOF'
import sys
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import msgpack, ixrec
recs = list(ixrec.read_records(sys.argv[1]))
last = {}
for p, o, *_ in recs: last[p] = max(last.get(p, -1), o)
bad = [msgpack.packb(42),                                  # not a map
       msgpack.packb({"u": 1, "i": 2, "c": 3, "a": "view"}),  # 't' missing
       msgpack.packb({"u": 1, "i": 2, "c": 3, "a": "view", "t": 1})[:-3]]  # truncated
for j, v in enumerate(bad):
    p = sorted(last)[j]
    last[p] += 1
    recs.append((p, last[p], recs[-1][2], b"1", v))
ixrec.write_records(sys.argv[2], recs)
EOF
IX_KERNEL= "$CTL" replay --offline --input "$T/bad.rec" --output "$T/bad.out.rec" --model "$MODEL" 2> "$T/bad.err" ||
  { cat "$T/bad.err"; fail "replay with bad messages exited non-zero"; }
cmp -s "$T/bad.out.rec" "$T/default.rec" || fail "bad messages changed the predictions"
grep -q "1003 records in .* 1000 predictions written .* 3 rejected" "$T/bad.err" || fail "reject count: $(cat "$T/bad.err")"
grep -q "rejected by reason: not_map 1 truncated 1 missing_field 1" "$T/bad.err" || fail "reject reasons: $(cat "$T/bad.err")"
[ "$(grep -c '^interestctl replay: rejected partition' "$T/bad.err")" -eq 3 ] || fail "each rejected message is named"

# 6. A damaged input: the records before the damage are processed and written,
#    the damage is reported with its byte offset, the exit status is 1.
cp "$G/taobao_head1000.rec" "$T/trunc.rec"
truncate -s $(( $(stat -c %s "$T/trunc.rec") - 5 )) "$T/trunc.rec"
if IX_KERNEL= "$CTL" replay --offline --input "$T/trunc.rec" --output "$T/trunc.out.rec" --model "$MODEL" 2> "$T/trunc.err"; then
  fail "a truncated input was accepted"
fi
grep -q "damaged record at byte offset .* 999 records before it were processed" "$T/trunc.err" || fail "truncation report: $(cat "$T/trunc.err")"
[ "$("$CTL" cat "$T/trunc.out.rec" | wc -l)" -eq 999 ] || fail "the 999 intact records' predictions were not written"

# 7. Offsets going backwards within a partition are refused (a consumer never sees that).
$PY - "$G/taobao_head1000.rec" "$T/order.rec" <<'EOF'
import sys
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import ixrec
recs = list(ixrec.read_records(sys.argv[1]))
ixrec.write_records(sys.argv[2], recs + [recs[0]])
EOF
if "$CTL" replay --offline --input "$T/order.rec" --output "$T/order.out.rec" --model "$MODEL" 2> "$T/order.err"; then
  fail "a record repeating an earlier offset was accepted"
fi
grep -q "does not come after the partition's previous offset" "$T/order.err" || fail "order report: $(cat "$T/order.err")"
echo "1 passed, 0 failed"
