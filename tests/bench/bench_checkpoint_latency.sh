#!/usr/bin/env bash
# Does a checkpoint of a large state slow the daemon down? (issue 5: "p99
# latency during a checkpoint stays within 2x of normal"; docs/PERFORMANCE.md
# "State", docs/STATE.md "Checkpoint latency in the daemon").
#
# Two runs of interestd on an embedded broker, identical but for
# state.checkpoint_dir:
#   warm-up: N_USERS events, each the first event of a new user (real Taobao
#     events under new user ids), so the store holds N_USERS states
#     (1M x 1192 B = 1.2 GB);
#   measurement: real Taobao events re-keyed to random users of that set, fed
#     at RATE events/s for SECONDS s, while (run B) a checkpoint of all
#     32 partitions is taken every INTERVAL s (an incremental snapshot since
#     2026-11-23 evening; a forked one before).
# Latency per event = the prediction's Kafka timestamp (set when interestd
# produced it) minus the input message's (set when the feed produced it):
# fetch wait, queueing, processing and produce, on one clock. Reported: p50,
# p99, p99.9 and max for run A (no checkpoints) and run B (all events, events
# in the daemon while a snapshot ran, the others), the daemon's minor faults
# and CPU inside and outside snapshots, and p99 ratios against run A and
# against run B between its snapshots.
#   usage: tests/bench/bench_checkpoint_latency.sh [BUILD_DIR] [N_USERS] [RATE] [SECONDS] [INTERVAL]
# Needs ~4 GB of memory and ~3 GB in $TMPDIR. Takes about 6 minutes at the
# defaults (about 50 s with 64000 1000 10 3). IX_KEEP=1 keeps the work directory.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build/release}
N_USERS=${2:-1000000}
RATE=${3:-1000}
SECONDS_=${4:-60}
INTERVAL=${5:-20}
CTL=$BUILD/ctl/interestctl
D=$BUILD/daemon/interestd
DATA=$SRC/data/taobao_userbehavior_head100k/small_sample.csv.gz
PY=/usr/bin/python3
PARTS=32
N_USERS=$((N_USERS / PARTS * PARTS)) # warm-up offsets are then N_USERS / PARTS in every partition
export IX_SOURCE_DIR=$SRC
T=$(mktemp -d)
BROKER= DAEMON=
cleanup() {
  [ -n "$DAEMON" ] && kill -9 "$DAEMON" 2>/dev/null
  [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null
  wait 2>/dev/null
  if [ -n "${IX_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

"$CTL" import --format taobao --input "$DATA" --output "$T/taobao.rec" --partitions 8 >/dev/null
# warm-up record file: event i of the data set as the first event of user i + 10^9
$PY - "$T/taobao.rec" "$T/warm.rec" "$N_USERS" "$PARTS" <<'EOF'
import sys
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import msgpack, ixrec
src = [msgpack.unpackb(v, raw=False) for *_, v in ixrec.read_records(sys.argv[1])]
n, parts = int(sys.argv[3]), int(sys.argv[4])
def gen():
    for i in range(n):
        e = dict(src[i % len(src)]); e["u"] = 10**9 + i
        yield (i % parts, i // parts, e["t"], str(e["u"]).encode(), msgpack.packb(e))
ixrec.write_records(sys.argv[2], gen())
EOF

run() { # run NAME CHECKPOINT_DIR
  local name=$1 ckdir=$2
  "$CTL" broker --topic events:$PARTS --topic interests:$PARTS > "$T/bootstrap" 2> "$T/broker.log" &
  BROKER=$!
  for _ in $(seq 100); do [ -s "$T/bootstrap" ] && break; sleep 0.1; done
  local bs; bs=$(cat "$T/bootstrap")
  cat > "$T/$name.conf" <<EOF
[kafka]
brokers = $bs
group = bench-$name
input_topic = events
output_topic = interests
[kafka.consumer]
session.timeout.ms = 6000
heartbeat.interval.ms = 500
fetch.wait.max.ms = 10
[model]
path = $SRC/model/weights/taobao-h64.ixm
[state]
memory_limit_mb = 0
idle_ttl_s = 0
checkpoint_dir = $ckdir
checkpoint_interval_s = $INTERVAL
[metrics]
listen =
[log]
level = debug
EOF
  # stderr through a pipe, as under systemd (journald): a write() to a file on
  # the checkpoint file system can wait for the journal commit of its fsync
  "$D" -c "$T/$name.conf" 2> >(cat > "$T/$name.log") &
  DAEMON=$!
  # the daemon's minor faults and CPU time every 0.25 s (copy-on-write faults
  # after a fork are minor faults of the parent)
  (while read -r -a f 2>/dev/null < "/proc/$DAEMON/stat"; do
     echo "$(date +%s%3N) ${f[9]} ${f[13]} ${f[14]}"; sleep 0.25
   done > "$T/$name.faults") &
  for _ in $(seq 300); do grep -q "assigned partitions" "$T/$name.log" && break; sleep 0.1; done
  local t0; t0=$(date +%s.%N)
  "$CTL" replay --brokers "$bs" --topic events --input "$T/warm.rec" --fast 2>/dev/null
  # wait until the warm-up is processed: the last warm-up event's prediction is out
  $PY - "$bs" "$N_USERS" <<'EOF'
import sys, time
from confluent_kafka import Consumer, TopicPartition
bs, n = sys.argv[1], int(sys.argv[2])
c = Consumer({"bootstrap.servers": bs, "group.id": "bench-watch", "enable.auto.commit": False})
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    total = sum(c.get_watermark_offsets(TopicPartition("interests", p), timeout=5)[1] for p in range(32))
    if total >= n:
        break
    time.sleep(1)
c.close()
EOF
  echo "$name: warm-up of $N_USERS users took $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
  sleep "$INTERVAL" # let run B's first full checkpoint of the warm state finish
  # measurement feed: real events re-keyed to random warm users, at RATE/s
  $PY - "$T/taobao.rec" "$bs" "$N_USERS" "$PARTS" "$RATE" "$SECONDS_" <<'EOF'
import sys, time, random
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import msgpack, ixrec
from confluent_kafka import Producer
src = [msgpack.unpackb(v, raw=False) for *_, v in ixrec.read_records(sys.argv[1])]
bs, n, parts, rate, secs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
rng = random.Random(7)
p = Producer({"bootstrap.servers": bs, "linger.ms": 0})
t0 = time.monotonic(); k = 0
while k < rate * secs:
    ahead = t0 + k / rate - time.monotonic()
    if ahead > 0: time.sleep(ahead)
    i = rng.randrange(n)
    e = dict(src[k % len(src)]); e["u"] = 10**9 + i
    p.produce("events", value=msgpack.packb(e), key=str(e["u"]).encode(), partition=i % parts)
    k += 1
    if k % 100 == 0: p.poll(0)
p.flush(30)
EOF
  sleep 3
  "$CTL" record --brokers "$bs" --topic events --from $((N_USERS / PARTS)) --until-end --timeout-ms 20000 --output "$T/$name.in.rec" 2>/dev/null
  "$CTL" record --brokers "$bs" --topic interests --until-end --timeout-ms 20000 --output "$T/$name.out.rec" 2>/dev/null
  kill -TERM "$DAEMON"; wait "$DAEMON" || true; DAEMON=
  kill "$BROKER"; wait "$BROKER" 2>/dev/null || true; BROKER=
}

run A ""
run B "$T/ckpt"
du -sh "$T/ckpt" | sed 's/^/checkpoint directory: /'

$PY - "$T" "$N_USERS" "$PARTS" <<'EOF'
import sys, re, datetime
sys.path.insert(0, __import__("os").environ["IX_SOURCE_DIR"] + "/tests/py")
import msgpack, ixrec
T, n, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
warm = n // parts

# The feed's first events wait for its producer's connections (their
# timestamps are taken at produce()): the first SKIP_MS of the feed are not
# measured, in either run.
SKIP_MS = 2000
def latencies(name):
    sent = {(p, o): ts for p, o, ts, _, _ in ixrec.read_records(f"{T}/{name}.in.rec") if o >= warm}
    t0 = min(sent.values())
    sent = {k: ts for k, ts in sent.items() if ts >= t0 + SKIP_MS}
    lat = []
    for _, _, ts, _, v in ixrec.read_records(f"{T}/{name}.out.rec"):
        d = msgpack.unpackb(v, raw=False)
        s = (d["sp"], d["so"])
        if s in sent:
            lat.append((sent[s], ts, (ts - sent[s]) / 1000.0))
    return lat, len(sent)

def q(xs, f):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(f * len(xs)))] * 1000 if xs else float("nan")

def line(label, xs):
    print(f"{label:44s} n={len(xs):6d}  p50 {q(xs,.5):6.1f} ms  p99 {q(xs,.99):6.1f} ms  "
          f"p99.9 {q(xs,.999):6.1f} ms  max {max(xs)*1000 if xs else float('nan'):6.1f} ms")

# snapshot windows of run B from its log: from the start (the line is logged
# right after the fork, or after the incremental snapshot's start) to the
# end (writer reaped, or every file published or failed).
ts_re = re.compile(r"^(\S+)Z debug \[ckpt\] snapshot of (\d+) partitions (started|finished)(?:: (?:fork|start) took (\d+) us)?(?:: (\d+) bytes in (\d+) ms)?")
def ms(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
windows, forks, start = [], [], None
for l in open(f"{T}/B.log"):
    m = ts_re.match(l)
    if not m:
        continue
    if m.group(3) == "started":
        start = ms(m.group(1)); forks.append(int(m.group(4)))
    elif start is not None:
        windows.append((start, ms(m.group(1)), int(m.group(5)))); start = None
a, na = latencies("A"); b, nb = latencies("B")
print(f"run A: {len(a)} of {na} measured events answered; run B: {len(b)} of {nb}")
print(f"run B: {len(windows)} snapshots: " + ", ".join(f"{b/2**20:.0f} MiB in {(e-s)/1000:.2f} s" for s, e, b in windows[:8]))
print(f"run B: start stalls (fork, or snapshot start) {', '.join(f'{f/1000:.1f}' for f in forks[:8])} ms")
# an event is 'during a checkpoint' when its time in the daemon (input
# timestamp to prediction timestamp) overlaps a snapshot window, so events
# held back by the checkpoint barrier before the fork count as well
during = lambda s0, s1: any(s0 <= e and s1 >= s for s, e, _ in windows)
inside = [l for s0, s1, l in b if during(s0, s1)]
outside = [l for s0, s1, l in b if not during(s0, s1)]
line("A: no checkpoints", [l for *_, l in a])
line("B: checkpoints, all events", [l for *_, l in b])
line("B: in the daemon while a snapshot ran", inside)
line("B: no snapshot running", outside)
base = q([l for *_, l in a], .99)
# the daemon's minor faults and CPU per second, inside and outside snapshots
hz = 100
def rates(name):
    rows = [tuple(map(int, l.split())) for l in open(f"{T}/{name}.faults") if len(l.split()) == 4]
    t_lo = min(s for s, _ in sent_times[name]) ; t_hi = max(s for s, _ in sent_times[name])
    acc = {True: [0, 0, 0], False: [0, 0, 0]}
    for (t0, f0, u0, s0), (t1, f1, u1, s1) in zip(rows, rows[1:]):
        if t0 < t_lo or t1 > t_hi: continue
        k = any(t0 <= e and t1 >= s for s, e, _ in windows)
        acc[k][0] += t1 - t0; acc[k][1] += f1 - f0; acc[k][2] += (u1 + s1 - u0 - s0) * 1000 // hz
    for k, (dt, f, cpu) in acc.items():
        if dt:
            print(f"{name}: {'snapshot running' if k else 'no snapshot'}: {dt/1000:6.1f} s, "
                  f"{f*1000/dt:8.0f} minor faults/s, daemon CPU {cpu/dt*100:5.1f}%")
sent_times = {"A": [(s0, s1) for s0, s1, _ in a], "B": [(s0, s1) for s0, s1, _ in b]}
rates("A"); rates("B")
print(f"p99 during a checkpoint / p99 without checkpoints (run A): {q(inside, .99) / base:.2f}x (target <= 2x)")
print(f"p99 of all events with checkpoints / without: {q([l for *_, l in b], .99) / base:.2f}x")
# the same daemon between its snapshots: a baseline interleaved with the
# snapshots, so less exposed to other load on a shared machine than run A
print(f"p99 during a checkpoint / p99 between checkpoints (run B): {q(inside, .99) / q(outside, .99):.2f}x")
EOF
