#!/usr/bin/env bash
# Live quality equals offline evaluation: the processing core's per-event
# ranks (what interestd exports as interestd_quality_*) over a replay of the
# real bundled events (100k Taobao rows, every prediction emitted) give the
# same targets, Acc@1, Recall@5, Recall@10 and MRR@10 as `interestctl eval`
# of the same model over the same events with every non-first event a target.
set -euo pipefail
. "$IX_SOURCE_DIR/tests/integration/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }
gzip -dc "$DATA" > "$T/events.csv"
"$CTL" import --format taobao --input "$T/events.csv" --output "$T/events.rec" > /dev/null
"$CTL" replay --offline --input "$T/events.rec" --output "$T/pred.rec" --model "$MODEL" \
  2> "$T/replay.err" || fail "replay: $(tail -3 "$T/replay.err")"
"$CTL" eval --events "$T/events.rec" --model "$MODEL" --no-baselines \
  --dev-start 0 --test-start 1 --test-end 9999999999999 > "$T/eval.out" 2> "$T/eval.err" ||
  fail "eval: $(tail -3 "$T/eval.err")"
online=$(awk '/quality lstm/ {print $6, $8, $10, $12, $14}' "$T/replay.err")
offline=$(awk '$1 == "lstm" {print $2, $3, $4, $5, $6}' "$T/eval.out")
[ -n "$online" ] || fail "no live quality line from the replay: $(tail -3 "$T/replay.err")"
[ -n "$offline" ] || fail "no lstm row from eval: $(cat "$T/eval.out")"
echo "online  (targets Acc@1 Recall@5 Recall@10 MRR@10): $online"
echo "offline (targets Acc@1 Recall@5 Recall@10 MRR@10): $offline"
[ "$online" = "$offline" ] || fail "live quality differs from interestctl eval"
# the heuristics are scored on the same targets
n=$(echo "$online" | cut -d' ' -f1)
for h in recency decay; do
  t=$(awk -v h="$h" '$3 == "quality" && $4 == h {print $6}' "$T/replay.err")
  [ "$t" = "$n" ] || fail "$h scored on $t targets, not $n"
done
# a shadow model (model.shadow_path; here the previous model, without experts)
# is scored on the same events with its own states: its figures are eval's
# for it, and the served model's are unchanged
V1=$SRC/tests/data/taobao-h64-v1.ixm
"$CTL" replay --offline --input "$T/events.rec" --output "$T/pred2.rec" --model "$MODEL" \
  --set model.shadow_path="$V1" 2> "$T/replay2.err" || fail "replay with shadow: $(tail -3 "$T/replay2.err")"
"$CTL" eval --events "$T/events.rec" --model "$V1" --no-baselines \
  --dev-start 0 --test-start 1 --test-end 9999999999999 > "$T/eval_v1.out" 2>/dev/null || fail "eval v1"
shadow=$(awk '/quality shadow/ {print $6, $8, $10, $12, $14}' "$T/replay2.err")
off_v1=$(awk '$1 == "lstm" {print $2, $3, $4, $5, $6}' "$T/eval_v1.out")
served2=$(awk '/quality lstm/ {print $6, $8, $10, $12, $14}' "$T/replay2.err")
echo "shadow  (targets Acc@1 Recall@5 Recall@10 MRR@10): $shadow; eval of it: $off_v1"
grep "shadow .* s in its pipeline" "$T/replay2.err" || fail "no shadow cost line"
[ -n "$shadow" ] && [ "$shadow" = "$off_v1" ] || fail "shadow quality differs from interestctl eval"
[ "$served2" = "$online" ] || fail "the shadow changed the served model's figures"
cmp -s "$T/pred.rec" "$T/pred2.rec" || fail "the shadow changed the written predictions"
[ "$shadow" != "$online" ] || fail "shadow and served models score alike: the check is blind"
# a broken comparison would be seen: eval of a window without the first day
# scores fewer targets
other=$("$CTL" eval --events "$T/events.rec" --model "$MODEL" --no-baselines --tz +08:00 \
  --dev-start 2017-11-24 --test-start 2017-11-26 --test-end 2017-12-04 2>/dev/null |
  awk '$1 == "lstm" {print $2, $3, $4, $5, $6}')
[ "$other" != "$online" ] || fail "a different window gives the same figures: the check is blind"
echo "1 passed, 0 failed"
