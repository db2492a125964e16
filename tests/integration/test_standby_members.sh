#!/usr/bin/env bash
# State that follows its partitions across members (issue 14), on the mock
# broker: three daemons, each with its own checkpoint directory (as on three
# hosts), in one group with a changelog topic (mode both) and
# state.standby_replicas = 2, while the bundled Taobao events stream
# (IX_SB_EVENTS, default all 100,001; IX_SB_RATE events/s, default 2000):
#   kill -9 one member at about 30% of the stream; start a fourth member with
#   an empty directory at about 60%; after the stream, stop the fourth and
#   the third (SIGTERM): one member is left and owns every partition; stop it.
# Then:
#   1. its checkpoint directory holds every partition at the end of input,
#      with each user's state bit-identical to offline replay of all events
#      (`interestctl replay --offline --check-state`);
#   2. every input event has a prediction and every prediction equals offline
#      replay's (each event applied to state exactly once);
#   3. no partition started cold while the changelog held a completed
#      checkpoint for it (the logs' "states from cold ... newest completion
#      at -1" is the only cold allowed: nothing written yet), no restore
#      failed, and the kill's partitions were taken over from standby copies
#      (counted from the logs: "states from standby").
# IX_SB_KEEP=DIR copies the members' logs there.
set -euo pipefail
. "$IX_SOURCE_DIR/tests/integration/lib.sh"
RATE=${IX_SB_RATE:-2000}
EVENTS=${IX_SB_EVENTS:-}
PARTS=16
fail() {
  echo "FAIL: $*"
  if [ -n "${IX_SB_KEEP:-}" ]; then cp "$T"/m*.log "$IX_SB_KEEP"/; fi
  for f in "$T"/m*.log; do [ -f "$f" ] && { echo "== $f"; grep -v '\[kafka\]' "$f" | tail -8; }; done
  exit 1
}
since() { echo "$(now) - $t_begin" | bc | cut -d. -f1; }

if [ -n "$EVENTS" ]; then
  data_head "$EVENTS" > "$T/in.csv"
  "$CTL" import --format taobao --input "$T/in.csv" --output "$T/in.rec" --partitions $PARTS >/dev/null
else
  "$CTL" import --format taobao --input "$DATA" --output "$T/in.rec" --partitions $PARTS >/dev/null
fi
ix_broker events:$PARTS interests:32 "standby-members-interestd-state:$PARTS"
[ -n "$SFX" ] && fail "this test needs the mock broker (it names the changelog topic itself)"

# one config per member: its own checkpoint directory and log
for m in 1 2 3 4; do
  ix_conf "$T/m$m.conf" standby-members <<EOF
[state]
checkpoint_dir = $T/dir$m
checkpoint_interval_s = 2
changelog_mode = both
standby_replicas = 2
[metrics]
listen = 127.0.0.1
port = 0
[log]
level = info
EOF
done
declare -A PID
start() { "$D" -c "$T/m$1.conf" 2> "$T/m$1.log" & PID[$1]=$!; DAEMON="${PID[*]}"; }
# SIGTERM: exit 0, or 1 when only the final offset commit failed (a rebalance
# that the mock started meanwhile: the daemon says so and exits 1 by design;
# the next owner re-reads from the committed offset, which the checks below
# cover)
stop() {
  local rc=0
  kill -TERM "${PID[$1]}"; wait "${PID[$1]}" || rc=$?
  unset "PID[$1]"; DAEMON="${PID[*]:-}"
  if [ "$rc" -eq 1 ] && grep -q "the final offset commit failed" "$T/m$1.log"; then
    echo "member $1: its final offset commit failed (a rebalance meanwhile); exit 1 as designed"
  elif [ "$rc" -ne 0 ]; then
    fail "member $1 exited with $rc after SIGTERM"
  fi
}
owned() { grep -o 'now [0-9]* owned' "$T/m$1.log" | tail -1 | grep -o '[0-9]*' || echo 0; }

t_begin=$(now)
start 1; start 2; start 3
for _ in $(seq 600); do
  [ "$(owned 1)" -gt 0 ] && [ "$(owned 2)" -gt 0 ] && [ "$(owned 3)" -gt 0 ] && break; sleep 0.1
done
echo "$(since) s: three members own $(owned 1)+$(owned 2)+$(owned 3) partitions"
[ $(( $(owned 1) + $(owned 2) + $(owned 3) )) -eq $PARTS ] || fail "the three members do not share the $PARTS partitions"

ix_feed "$T/in.rec" "$RATE"
n_in=$($PY -c "
import sys; sys.path.insert(0, '$SRC/tests/py'); import ixrec
print(sum(1 for _ in ixrec.read_records('$T/in.rec')))")
stream_s=$(echo "$n_in / $RATE" | bc -l)
sleep "$(echo "$stream_s * 0.3" | bc -l)"
victim_owned=$(owned 2)
kill -9 "${PID[2]}"; wait "${PID[2]}" 2>/dev/null || true; unset "PID[2]"; DAEMON="${PID[*]}"
echo "$(since) s: member 2 killed with SIGKILL ($victim_owned partitions)"
sleep "$(echo "$stream_s * 0.3" | bc -l)"
start 4
echo "$(since) s: member 4 started with an empty directory"
ix_feed_wait
for _ in $(seq 600); do [ "$(owned 4)" -gt 0 ] && break; sleep 0.1; done
[ "$(owned 4)" -gt 0 ] || fail "member 4 got no partition"
# the group settles (a cooperative rebalance has a second round) before a
# member is stopped: one stopped during a rebalance cannot commit its final
# offsets and exits with status 1, by design
for _ in $(seq 600); do [ $(( $(owned 1) + $(owned 3) + $(owned 4) )) -eq $PARTS ] && break; sleep 0.1; done
sleep 3
echo "$(since) s: member 4 owns $(owned 4) partitions (members 1, 3, 4: $(owned 1)+$(owned 3)+$(owned 4))"
stop 4
echo "$(since) s: member 4 stopped"
for _ in $(seq 600); do [ $(( $(owned 1) + $(owned 3) )) -eq $PARTS ] && break; sleep 0.1; done
[ $(( $(owned 1) + $(owned 3) )) -eq $PARTS ] || fail "members 1 and 3 own $(owned 1)+$(owned 3) of $PARTS partitions"
sleep 3
stop 3
echo "$(since) s: member 3 stopped"
for _ in $(seq 600); do [ "$(owned 1)" -eq $PARTS ] && break; sleep 0.1; done
[ "$(owned 1)" -eq $PARTS ] || fail "member 1 owns $(owned 1) of $PARTS partitions"
URL=$(grep -o 'http://[0-9.:]*/metrics' "$T/m1.log" | head -1)
ix_caught_up "$PARTS" 120 1 "$URL" || fail "member 1 did not catch up"
stop 1
echo "$(since) s: member 1 stopped; every member's run is over"

# 3. where each partition's states came from, per member
for m in 1 2 3 4; do
  printf 'member %d: restores' "$m"
  for s in standby changelog local cold; do
    printf ' %s %d' "$s" "$(grep -c "states from $s " "$T/m$m.log" || true)"
  done
  echo
done
bad_cold=$(grep -h "states from cold" "$T"/m*.log | grep -vc "newest completion at -1" || true)
[ "$bad_cold" -eq 0 ] || fail "$bad_cold partitions started cold although the changelog held a completed checkpoint: $(grep -h "states from cold" "$T"/m*.log | grep -v "newest completion at -1" | head -3)"
failed=$(cat "$T"/m*.log | grep -c "changelog not restored\|checkpoint not restored" || true)
[ "$failed" -eq 0 ] || fail "a restore failed: $(grep -h "not restored" "$T"/m*.log | head -3)"
from_standby=$(cat "$T"/m[134].log | grep -c "states from standby" || true)
[ "$from_standby" -gt 0 ] || fail "no partition was taken over from a standby copy"
echo "no partition started cold after the first checkpoint; $from_standby hand-overs from standby copies"

# 1. states: member 1's checkpoints at its clean stop vs offline replay
ix_check_states "$T/m1.conf" "$T/dir1"

# 2. predictions: every input event answered, each equal to offline replay's
ix_check_predictions
echo "total $(since) s"
if [ -n "${IX_SB_KEEP:-}" ]; then cp "$T"/m*.log "$IX_SB_KEEP"/; fi # the members' logs, kept on request
echo "1 passed, 0 failed"
