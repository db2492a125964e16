#!/usr/bin/env bash
# Crash recovery (issue 5): the bundled clickstream (all 100,001 Taobao events)
# streams through an embedded broker at a paced rate while interestd is killed
# with SIGKILL at random points (seeded; IX_CRASH_SEED=N to repeat a run) and
# restarted with the same checkpoint directory and consumer group. Then:
#   1. the state of every user, as checkpointed at the final clean shutdown,
#      is bit-identical to offline replay of the same events, and each
#      partition's checkpoint offset is the end of its input
#      (`interestctl replay --offline --check-state`);
#   2. every input event has at least one prediction in the output topic, and
#      every prediction equals offline replay's for its source event (all
#      fields but the wall-clock emit time): re-processed events after a crash
#      were applied to the restored state, never twice;
#   3. the number of duplicated predictions is printed.
# Bounded to about 3 minutes: 10 kills, each restart waits ~11 s for the mock
# broker's group rebalance (session.timeout.ms=6000).
set -euo pipefail
. "$IX_SOURCE_DIR/tests/integration/lib.sh"
KILLS=${IX_CRASH_KILLS:-10}
RATE=${IX_CRASH_RATE:-800}
SEED=${IX_CRASH_SEED:-$(( $(date +%s) % 100000 ))}
echo "crash-recovery: seed $SEED (IX_CRASH_SEED=$SEED repeats the kill schedule), $KILLS kills, feed $RATE events/s"
RANDOM=$SEED
fail() { echo "FAIL: $*"; for f in "$T"/d.*.log; do [ -f "$f" ] && { echo "== $f"; grep -v '\[kafka\]' "$f" | tail -5; }; done; exit 1; }

"$CTL" import --format taobao --input "$DATA" --output "$T/in.rec" --partitions 8 >/dev/null
ix_broker events:8 interests:32

ix_conf "$T/interestd.conf" crash-recovery <<EOF
[state]
checkpoint_dir = $T/ckpt
checkpoint_interval_s = 1
[metrics]
listen = 127.0.0.1
port = 0
[log]
level = info
EOF

# The feed: each record to its recorded partition, in file order (so the
# topic's offsets are the file's), at RATE events/s.
ix_feed "$T/in.rec" "$RATE"
t_begin=$(now)

# Kill -9 at random points: mostly a random time after the partitions were
# assigned (0.3 .. 3.3 s of processing), one in five at a random time since
# the start (during model load, group join, checkpoint restore, or after).
run=0
for kill in $(seq "$KILLS"); do
  run=$((run + 1))
  "$D" -c "$T/interestd.conf" 2> "$T/d.$run.log" &
  DAEMON=$!
  if (( RANDOM % 5 == 0 )); then
    ms=$((RANDOM % 12000))
    phase="since start"
  else
    ix_wait_log "$T/d.$run.log" "assigned partitions" 20 || fail "run $run: no partition assignment within 20 s"
    ms=$((300 + RANDOM % 3000))
    phase="after assignment"
  fi
  delay=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
  ix_sleep_ms "$ms"
  kill -9 "$DAEMON"; wait "$DAEMON" 2>/dev/null || true
  DAEMON=
  restored=$(grep -c "restored .* users from checkpoint generation" "$T/d.$run.log" || true)
  ckpts=$(ls "$T/ckpt" 2>/dev/null | grep -c '\.ckpt$' || true)
  printf 'kill %2d at %6.1f s: %s s %s (partitions restored from checkpoints: %s, checkpoint files: %s)\n' \
    "$kill" "$(echo "$(now) - $t_begin" | bc)" "$delay" "$phase" "$restored" "$ckpts"
  # The group's committed offset never runs ahead of the newest checkpoint
  # (read while no daemon runs: the files and the offsets are at rest). One
  # exception is made by the test itself: after step 4 damages partition 0's
  # newest checkpoint, the daemon falls back to an older one and may publish
  # newer generations below the offset the group had committed for the
  # damaged one; that committed offset (kept in $T/committed.at_damage) is
  # allowed to stay until the daemon commits again.
  $PY - "$BS" "$T/ckpt" "$T/committed.at_damage" > "$T/check.out" <<'EOF' || { cat "$T/check.out"; fail "after kill $kill: a committed offset is ahead of the newest checkpoint"; }
import glob, os, re, struct, sys
from confluent_kafka import Consumer, TopicPartition
bs, ckdir, at_damage_path = sys.argv[1:]
at_damage = {}
if os.path.exists(at_damage_path):
    at_damage = {int(k): int(v) for k, v in (l.split() for l in open(at_damage_path))}
newest = {}
for path in glob.glob(os.path.join(ckdir, "p*-*.ckpt")):
    part, gen = map(int, re.match(r"p(\d+)-(\d+)\.ckpt$", os.path.basename(path)).groups())
    with open(path, "rb") as f:
        head = f.read(80)
    if gen > newest.get(part, (0, 0))[0]:
        newest[part] = (gen, struct.unpack_from("<q", head, 24)[0])
c = Consumer({"bootstrap.servers": bs, "group.id": "crash-recovery" + os.environ["SFX"], "enable.auto.commit": False})
committed = {tp.partition: tp.offset for tp in
             c.committed([TopicPartition("events" + os.environ["SFX"], p) for p in range(8)], timeout=10)}
c.close()
bad = [p for p, o in committed.items() if o >= 0 and (p not in newest or o > newest[p][1])
       and o != at_damage.get(p)]
print("    committed <= newest checkpoint offset:", " ".join(
    f"p{p} {committed[p] if committed[p] >= 0 else '-'}<={newest[p][1] if p in newest else '-'}"
    + ("(damaged)" if committed[p] == at_damage.get(p) and committed[p] > newest.get(p, (0, -1))[1] else "")
    for p in range(8)))
with open(os.path.join(os.path.dirname(ckdir), "committed.last"), "w") as f:
    for p, o in committed.items():
        f.write(f"{p} {o}\n")
sys.exit(1 if bad else 0)
EOF
  cat "$T/check.out"
  if [ "$kill" -ge $((KILLS / 2)) ] && [ -z "${damaged:-}" ] && [ -z "${sabotaged:-}" ]; then
    # A damaged newest checkpoint (a torn disk write) must be detected and
    # skipped for the previous generation, still with exact state. Done at
    # the first kill from the middle on that finds a partition with two
    # generations on disk (the lowest such partition): a partition whose
    # only checkpoint is damaged has nothing exact to fall back to once the
    # group committed up to it.
    newest=
    for p in 0 1 2 3 4 5 6 7; do
      gens=$(ls "$T/ckpt" 2>/dev/null | grep "^p$p-.*\.ckpt\$" | sort -t- -k2 -n || true)
      if [ "$(printf '%s\n' "$gens" | grep -c .)" -ge 2 ]; then
        newest=$(printf '%s\n' "$gens" | tail -1)
        break
      fi
    done
    if [ -n "$newest" ]; then
      truncate -s -100 "$T/ckpt/$newest"
      damaged=$newest
      grep "^$p " "$T/committed.last" > "$T/committed.at_damage" || true
      echo "    truncated the newest checkpoint of partition $p: $newest"
    fi
  fi
  if [ "$kill" -eq $((KILLS / 2)) ] && [ "${IX_CRASH_SABOTAGE:-}" = wipe ]; then
    # IX_CRASH_SABOTAGE=wipe checks the test itself: losing every checkpoint
    # while the group has committed offsets loses state, which must FAIL.
    rm -f "$T"/ckpt/*.ckpt
    damaged=
    sabotaged=1
    echo "    SABOTAGE: removed every checkpoint"
  fi
done

# Final run: let it consume everything, then stop it cleanly (checkpoints on revoke).
ix_feed_wait
run=$((run + 1))
"$D" -c "$T/interestd.conf" 2> "$T/d.$run.log" &
DAEMON=$!
URL=$(ix_metrics_url "$T/d.$run.log")
[ -n "$URL" ] || fail "final run: no metrics address in the log"
ix_caught_up 8 90 1 "$URL" || fail "final run did not catch up"
kill -TERM "$DAEMON"
wait "$DAEMON" || fail "final run exited with $? after SIGTERM"
DAEMON=
# the truncated checkpoint was seen by a later run (the final one at the latest)
if [ -z "${damaged:-}" ] && [ -z "${sabotaged:-}" ]; then
  echo "NOTE: no partition had two checkpoint generations at a kill from the middle on: the torn-write step was not exercised in this run (seed $SEED)"
fi
if [ -n "${damaged:-}" ]; then
  grep -l "$damaged" "$T"/d.*.log >/dev/null || fail "the truncated checkpoint $damaged was never reported"
  echo "the truncated checkpoint was reported and skipped: $(grep -h "$damaged" "$T"/d.*.log | head -1 | cut -c1-200)"
fi
echo "total $(echo "$(now) - $t_begin" | bc | cut -d. -f1) s for $KILLS kills and the final run"

# 1. States: the checkpoints of the clean shutdown vs offline replay.
ix_check_states "$T/interestd.conf" "$T/ckpt"

# 2, 3. Predictions: every input event answered, each equal to offline replay's;
# the input topic holds the record file at its offsets.
ix_check_predictions "$T/topic.rec"
echo "1 passed, 0 failed"
