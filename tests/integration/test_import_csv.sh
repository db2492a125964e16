#!/usr/bin/env bash
# A shop export in the layout
#   event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
# made from 20,000 real Taobao rows (tests/py/to_shop_csv.py: values rewritten,
# nothing invented) imports with `interestctl import --format csv` to the same
# events as the Taobao import of the same rows, then trains and evaluates with
# the commands docs/FORMATS.md shows. Also: an import whose every row is
# malformed exits non-zero with the reasons counted; the summary prints times
# in --tz; eval names the empty window and its options, needs no dev window
# with --no-baselines, and reads a date without a zone as midnight in --tz.
set -euo pipefail
. "$IX_SOURCE_DIR/tests/integration/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }

data_head 20000 > "$T/taobao.csv"
$PY "$SRC/tests/py/to_shop_csv.py" "$T/taobao.csv" "$T/shop.csv"
head -n 2 "$T/shop.csv"
# the documented commands (docs/FORMATS.md, "Any CSV")
"$CTL" import --format csv --input "$T/shop.csv" --output "$T/shop.rec" --tz +08:00 > "$T/import.out"
"$CTL" train --events "$T/shop.rec" --out "$T/shop.ixm" --epochs 1 --hidden 16 --vocab 100 --tz +08:00 \
    > "$T/train.out" 2>&1 || { tail "$T/train.out"; fail "train"; }
"$CTL" eval --events "$T/shop.rec" --model "$T/shop.ixm" --tz +08:00 > "$T/eval.out" 2> "$T/eval.err" ||
  { cat "$T/eval.err"; fail "eval"; }
grep -q "^lstm " "$T/eval.out" && grep -q "^blend " "$T/eval.out" || fail "eval table: $(cat "$T/eval.out")"
grep -q "time span   2017-..-.. ..:.. +08:00 .. 2017-12-03 23:59 +08:00" "$T/import.out" ||
  fail "import summary not in --tz: $(grep span "$T/import.out")"
grep -q "UTC+8" "$T/import.out" && fail "import still prints a UTC+8 line"
# the same events as the Taobao import
"$CTL" import --format taobao --input "$T/taobao.csv" --output "$T/taobao.rec" > /dev/null
cmp -s <("$CTL" cat "$T/shop.rec") <("$CTL" cat "$T/taobao.rec") || fail "csv import != taobao import"
echo "shop-layout CSV: import == Taobao import ($(grep '^events' "$T/import.out")), trained and evaluated"
head -n 5 "$T/eval.out"

# every row malformed: non-zero, reasons counted, nothing written
sed 's/ UTC,/ PST,/' "$T/shop.csv" > "$T/bad.csv"
if "$CTL" import --format csv --input "$T/bad.csv" --output "$T/bad.rec" 2> "$T/bad.err"; then
  fail "an all-malformed import exited 0"
fi
grep -q "every one of the 20000 data lines is malformed" "$T/bad.err" || fail "$(tail -3 "$T/bad.err")"
grep -q "20000 lines: event_time '...': time has unexpected text after it" "$T/bad.err" || fail "reasons not counted: $(tail -3 "$T/bad.err")"
[ ! -e "$T/bad.rec" ] || fail "an all-malformed import wrote a file"
# more than a set share malformed
{ head -n 1001 "$T/shop.csv"; sed -n '1002,1300p' "$T/bad.csv"; } > "$T/some.csv"
"$CTL" import --format csv --input "$T/some.csv" --output "$T/some.rec" --max-malformed 0.5 > /dev/null 2>&1 ||
  fail "299 of 1299 malformed refused under --max-malformed 0.5"
if "$CTL" import --format csv --input "$T/some.csv" --output "$T/some2.rec" --max-malformed 0.1 2> "$T/some.err"; then
  fail "299 of 1299 malformed accepted under --max-malformed 0.1"
fi
grep -q "299 of 1299 data lines are malformed" "$T/some.err" || fail "$(tail -1 "$T/some.err")"
echo "malformed imports: all-bad and over-share exit 1 with reasons counted"

# eval on less than two local days: the dev window is named with its options
awk -F, '$5>=1512230400 && $5<1512316800 ' <(gzip -dc "$DATA") | sed -n 1,3000p > "$T/oneday.csv"
"$CTL" import --format taobao --input "$T/oneday.csv" --output "$T/oneday.rec" > /dev/null
if "$CTL" eval --events "$T/oneday.rec" --model "$MODEL" --tz +08:00 > /dev/null 2> "$T/one.err"; then
  fail "eval with an empty dev window exited 0"
fi
grep -q "the dev window \[2017-12-02 00:00 +08:00, 2017-12-03 00:00 +08:00) has no targets" "$T/one.err" ||
  fail "$(cat "$T/one.err")"
grep -q -- "--dev-start" "$T/one.err" && grep -q -- "--no-baselines" "$T/one.err" || fail "options not named"
"$CTL" eval --events "$T/oneday.rec" --model "$MODEL" --tz +08:00 --no-baselines > "$T/one.out" 2>/dev/null ||
  fail "eval --no-baselines needs a dev window"
grep -q "^lstm " "$T/one.out" || fail "no lstm row"
if "$CTL" eval --events "$T/oneday.rec" --model "$MODEL" --tz +08:00 --no-baselines \
    --test-start 2017-12-05 --test-end 2017-12-06 > /dev/null 2> "$T/one2.err"; then
  fail "an empty test window exited 0"
fi
grep -q "the test window \[2017-12-05 00:00 +08:00, 2017-12-06 00:00 +08:00) has no targets.*--test-start and --test-end" "$T/one2.err" ||
  fail "$(cat "$T/one2.err")"
# a date without a zone is midnight in --tz, wherever --tz comes
"$CTL" eval --events "$T/shop.rec" --model "$MODEL" --no-baselines --dev-start 2017-12-02 --tz +08:00 \
    > "$T/dates.out" 2>/dev/null || fail "eval --dev-start 2017-12-02 --tz +08:00"
grep -q "train < 2017-12-02 00:00 +08:00 <= dev" "$T/dates.out" || fail "--dev-start 2017-12-02 --tz +08:00 is not local midnight: $(grep train "$T/dates.out")"
echo "eval: empty windows named with their options; --no-baselines needs no dev window; dates are local midnight"
echo "1 passed, 0 failed"
