#!/bin/bash
# Quality right after a model swap, through the C serving path: the new
# model's MRR@10 over the day after the swap when its states were warmed from
# the last W hours of the topic (what model.reload = warm does), when it had
# served from the start, and after a cold swap (model.reload = reset).
#
#   tests/bench/swap_quality.sh [BUILD_DIR] [MODEL.ixm] [WINDOWS_H]
#
# Each variant: `interestctl split` cuts the recorded topic at swap - W, swap
# and swap + 1 day; `interestctl replay --offline --write-state` runs the new
# model over [swap - W, swap); `interestctl replay --offline --read-state`
# restores those states and runs the day after (cold: no states). Scored by
# tests/bench/score_next.py: events of the day after whose user's previous
# event is in that day too (the same targets in every variant).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build/release}
MODEL=${2:-$SRC/model/weights/taobao-h64.ixm}
WINDOWS=${3:-"0 1 6 24 72 all"}
CTL=$BUILD/ctl/interestctl
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CSV=$SRC/data/taobao_userbehavior_head100k/small_sample.csv.gz
"$CTL" import --format taobao --input "$CSV" --output "$TMP/topic.rec" --partitions 8 >/dev/null
# the swap: the start of the last local day (UTC+8), as `interestctl eval` picks its test day
SWAP=$(PYTHONPATH=$SRC/python $PY -c "
from interestd_torch.records import load_events, windows, parse_tz
ev = load_events('$TMP/topic.rec', [1004381]); print(windows(ev['ts'], parse_tz('+08:00'))[1])")
END=$((SWAP + 86400000))
echo "model $MODEL; swap at $SWAP ms ($(date -u -d @$((SWAP / 1000)) +%FT%TZ)); scored: the day after"
printf '| new model'"'"'s states at the swap | events replayed | MRR@10 | against served from the start |\n|---|---:|---:|---:|\n'
declare -A MRR EV
for w in $WINDOWS; do
  if [ "$w" = all ]; then from=1; else from=$((SWAP - w * 3600000)); fi
  [ "$w" = 0 ] && from=$SWAP
  "$CTL" split --input "$TMP/topic.rec" --out-prefix "$TMP/w$w" --by time --dev-start "$from" \
    --test-start "$SWAP" --test-end "$END" >/dev/null
  rm -rf "$TMP/state$w"
  args=()
  if [ "$w" != 0 ]; then
    "$CTL" replay --offline --input "$TMP/w$w.dev.rec" --output "$TMP/wp$w.rec" --model "$MODEL" \
      --write-state "$TMP/state$w" --quiet 2>"$TMP/w$w.log"
    args=(--read-state "$TMP/state$w")
  fi
  "$CTL" replay --offline --input "$TMP/w$w.test.rec" --output "$TMP/p$w.rec" --model "$MODEL" \
    "${args[@]}" --quiet 2>"$TMP/r$w.log"
  line=$(PYTHONPATH=$SRC/python $PY "$SRC/tests/bench/score_next.py" "$TMP/w$w.test.rec" \
    "$TMP/p$w.rec" --drop-user 1004381)
  MRR[$w]=$(echo "$line" | awk '{print $NF}')
  EV[$w]=$(PYTHONPATH=$SRC/python $PY -c "
from interestd_torch.records import read_records; print(sum(1 for _ in read_records('$TMP/w$w.dev.rec')))")
  [ "$w" = 0 ] && EV[$w]=0
  echo "  window $w h: ${EV[$w]} events replayed before the swap; $line" >&2
done
for w in $WINDOWS; do
  case $w in 0) name="cold (\`model.reload = reset\`)";; all) name="served from the start";;
    *) name="warmed from the last $w h (\`model.reload = warm\`, \`warm_window_s = $((w * 3600))\`)";; esac
  rel=$(awk -v a="${MRR[$w]}" -v b="${MRR[all]:-${MRR[$w]}}" 'BEGIN{printf "%+.2f %%", (a/b-1)*100}')
  printf '| %s | %s | %s | %s |\n' "$name" "${EV[$w]}" "${MRR[$w]}" "$rel"
done
