#!/usr/bin/env bash
# interestctl replay -> embedded broker -> interestctl record round trip, with
# kcat as an independent client: every record comes back with the same
# partition, offset, timestamp, key and value; --speed paces by timestamps.
set -euo pipefail
fail() { echo "FAIL: $*"; exit 1; }
. "$IX_SOURCE_DIR/tests/integration/lib.sh"

data_head 5000 > "$T/slice.csv"
"$CTL" import --format taobao --input "$T/slice.csv" --output "$T/in.rec" --partitions 4 >/dev/null

ix_broker clicks:4 small:2

"$CTL" replay --brokers "$BS" --topic clicks --input "$T/in.rec" --fast
"$CTL" record --brokers "$BS" --topic clicks --output "$T/out.rec" --until-end --timeout-ms 20000

# Same records, compared in (partition, offset) order.
"$CTL" cat --json "$T/in.rec"  | sort > "$T/in.txt"
"$CTL" cat --json "$T/out.rec" | sort > "$T/out.txt"
n_in=$(wc -l < "$T/in.txt"); n_out=$(wc -l < "$T/out.txt")
[ "$n_in" -eq 5000 ] || { echo "FAIL: imported $n_in records, expected 5000"; exit 1; }
diff -q "$T/in.txt" "$T/out.txt" >/dev/null || { echo "FAIL: recorded records differ from the replayed file"; diff "$T/in.txt" "$T/out.txt" | head; exit 1; }

# An independent client sees the same count, keys and timestamps.
kcat -b "$BS" -C -t clicks -o beginning -e -q -f '%p %o %k %T\n' | sort > "$T/kcat.txt"
[ "$(wc -l < "$T/kcat.txt")" -eq 5000 ] || { echo "FAIL: kcat read $(wc -l < "$T/kcat.txt") messages"; exit 1; }
"$CTL" cat --json "$T/in.rec" | /usr/bin/python3 -c '
import json,sys
for l in sys.stdin:
    r=json.loads(l); print(r["partition"], r["offset"], r["key"], r["ts"])' | sort > "$T/expect.txt"
diff -q "$T/expect.txt" "$T/kcat.txt" >/dev/null || { echo "FAIL: kcat view differs"; diff "$T/expect.txt" "$T/kcat.txt" | head; exit 1; }

# --count and --from: a partial recording.
"$CTL" record --brokers "$BS" --topic clicks --output "$T/part.rec" --count 100 --timeout-ms 20000
[ "$("$CTL" cat "$T/part.rec" | wc -l)" -eq 100 ] || { echo "FAIL: --count 100"; exit 1; }

# Pacing: 20 records spanning S seconds of event time replayed at --speed X
# take about S/X seconds of wall time.
head -n 20 "$T/slice.csv" > "$T/p.csv"
"$CTL" import --format taobao --input "$T/p.csv" --output "$T/p.rec" --partitions 2 >/dev/null
span_ms=$("$CTL" cat --json "$T/p.rec" | /usr/bin/python3 -c '
import json,sys
ts=[json.loads(l)["ts"] for l in sys.stdin]; print(max(ts)-min(ts))')
speed=$(/usr/bin/python3 -c "print(max($span_ms/1000/2.0, 1.0))")   # aim at ~2 s of wall time
start=$(date +%s.%N)
"$CTL" replay --brokers "$BS" --topic small --input "$T/p.rec" --speed "$speed"
took=$(/usr/bin/python3 -c "import time; print(time.time()-$start)")
/usr/bin/python3 -c "
want=$span_ms/1000/$speed; took=$took
print(f'pacing: span {$span_ms/1000:.0f} s at x{$speed:.1f}: wanted {want:.2f} s, took {took:.2f} s')
assert want*0.9 <= took <= want+3.0, 'replay pacing is off'"

# A damaged record file: the records before the damage are produced and the
# damage is reported with its byte offset (non-zero exit).
cp "$T/p.rec" "$T/bad.rec"
size=$(stat -c %s "$T/bad.rec"); truncate -s $((size - 7)) "$T/bad.rec"
if "$CTL" replay --brokers "$BS" --topic small --input "$T/bad.rec" --fast 2> "$T/bad.err"; then
  echo "FAIL: replay of a truncated file succeeded"; exit 1
fi
grep -q "byte offset" "$T/bad.err" || { echo "FAIL: no byte offset in: $(cat "$T/bad.err")"; exit 1; }
grep -q "19 records produced" "$T/bad.err" || { echo "FAIL: expected 19 records before the damage: $(cat "$T/bad.err")"; exit 1; }
echo "1 passed, 0 failed"
