#!/usr/bin/python3
"""interestd against the Kafka Streams peer (tests/bench/streams/) on one real broker, in one
run (tests/bench/bench_streams.sh starts the broker and builds both; docs/PERFORMANCE.md,
"Against Kafka Streams"). Both read the same msgpack events and write the same msgpack
predictions; both keep their state durable through a changelog topic made current every 5 s
(interestd: state.changelog_mode = changelog, checkpoint_interval_s = 5; Streams: its RocksDB
store's changelog, commit.interval.ms = 5000, at-least-once, one stream thread). Phases, each
side in turn:
  A. saturation: N real Taobao events preloaded into 8 partitions; events/s from the output
     messages' timestamps (first to last prediction) and the process's CPU time over the same
     window (/proc/PID/stat, all threads: CPU seconds per event, events/s per core);
  B. latency at half of the side's own saturation (and interestd also at the peer's rate):
     2,000 events of warm-up (answered before timing), then 3 s of events at a steady rate;
     latency = the prediction's produce timestamp minus its input's produce timestamp;
  C. memory per user and restore: the process answers 2,000 warm-up events (RSS baseline),
     then USERS new users of 2 events each, sent in chunks of 4,000 events, each chunk
     answered before the next is sent (so that no backlog sits in the clients' fetch
     buffers); RSS after half of them and after all are answered, each 6 s later (one
     changelog round): per user = the RSS slope between the two (also (RSS - baseline) /
     USERS, and the growth by mapping from /proc/PID/smaps); then kill -9, the local state deleted
     (Streams' state.dir; interestd keeps none: its states come from the changelog topic),
     a wait for the dead member's session to end (6 s on both), restart, and one new event for 8 of the new users (one per partition) sent at once:
     the restore time is from the restart to the last of the 8 predictions, and each of them
     must count 3 events (the state was restored).
BENCH_STREAMS_ONLY=memory runs phase C alone.
usage: bench_streams.py BOOTSTRAP BINARY_DIR SOURCE_DIR CLASSPATH WORKDIR [N (100000)] [USERS (100000)]"""
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import msgpack
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BS, BIN, SRC, CP, WORK = sys.argv[1:6]
N = int(sys.argv[6]) if len(sys.argv) > 6 else 100000
USERS = int(sys.argv[7]) if len(sys.argv) > 7 else 100000
MODEL = os.path.join(SRC, "model/weights/taobao-h64.ixm")
PARTS = 8
ACTIONS = {"pv": 0, "cart": 1, "fav": 2, "buy": 3}
DURABLE_S = 5
CHUNK = 4000  # events per chunk of the memory phase
SESSION_MS = 6000  # both sides: a killed member's partitions move after this
JAVA_HEAP = os.environ.get("BENCH_STREAMS_HEAP", "1g")


def log(*a):
    print(*a, flush=True)


# ---- events ---------------------------------------------------------------------------------
def load_events():
    """The bundled Taobao sample in event-time order: (user, item, cat, action, ts_ms)."""
    rows = []
    with gzip.open(os.path.join(SRC, "data/taobao_userbehavior_head100k/small_sample.csv.gz"), "rt") as f:
        for line in f:
            u, i, c, b, t = line.strip().split(",")
            rows.append((int(u), int(i), int(c), ACTIONS.get(b, 4), int(t) * 1000))
    rows.sort(key=lambda r: r[4])
    return rows


def msg(ev, user=None):
    u = ev[0] if user is None else user
    # the same bytes as interestd's codec_encode_event (keys u i c a t, smallest integers)
    return str(u).encode(), msgpack.packb({"u": u, "i": ev[1], "c": ev[2], "a": ev[3], "t": ev[4]}), u % PARTS


ADMIN = AdminClient({"bootstrap.servers": BS})


def create(topics, compact=()):
    fs = ADMIN.create_topics([NewTopic(t, n, 1, config={"cleanup.policy": "compact"} if t in compact
                                       else {"retention.ms": "-1"}) for t, n in topics])
    for f in fs.values():
        f.result(30)
    end = time.time() + 30
    while time.time() < end:
        md = ADMIN.list_topics(timeout=10).topics
        if all(t in md and len(md[t].partitions) == n and all(p.leader >= 0 for p in md[t].partitions.values())
               for t, n in topics):
            return
        time.sleep(0.1)
    sys.exit("bench_streams: topics without leaders after 30 s")


def producer(linger="5"):
    return Producer({"bootstrap.servers": BS, "linger.ms": linger, "queue.buffering.max.messages": 1000000})


def preload(topic, msgs):
    p = producer()
    for k, v, part in msgs:
        while True:
            try:
                p.produce(topic, v, k, partition=part)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)


def consumer(topic, from_offsets=None):
    c = Consumer({"bootstrap.servers": BS, "group.id": "bench-streams-reader", "enable.auto.commit": False})
    parts = ADMIN.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, (from_offsets or {}).get(p, -2)) for p in parts])  # -2: beginning
    return c


def read(topic, count, timeout_s=60, pid=None, from_offsets=None, keep=False):
    """Reads count messages of topic; returns (n, first ts, last ts, cpu window of pid, messages).
    keep: also the decoded (ts, partition, offset, value) of each."""
    c = consumer(topic, from_offsets)
    n, lo, hi, cpu0, out = 0, None, None, None, []
    idle_until = time.time() + timeout_s
    while n < count and time.time() < idle_until:
        ms = c.consume(1000, 0.1)
        if ms and pid and cpu0 is None:
            cpu0 = cpu(pid)
        for m in ms:
            if m.error():
                continue
            ts = m.timestamp()[1]
            lo = ts if lo is None or ts < lo else lo
            hi = ts if hi is None or ts > hi else hi
            n += 1
            if keep:
                out.append((ts, m.partition(), m.offset(), m.value()))
        if ms:
            idle_until = time.time() + timeout_s
    win = cpu(pid) - cpu0 if pid and cpu0 is not None else 0.0
    c.close()
    return n, lo, hi, win, out


def end_offsets(topic):
    c = consumer(topic)
    parts = ADMIN.list_topics(topic, timeout=10).topics[topic].partitions
    hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.close()
    return hw


# ---- processes ------------------------------------------------------------------------------
def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def smaps(pid):
    """{(start, name): Rss KiB} of the process's mappings, for the growth breakdown."""
    out, key = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                name = parts[5] if len(parts) > 5 else "[anon]"
                if name == "[anon]" and lo % (64 << 20) == 0 and hi - lo < (64 << 20):
                    name = "[anon, 64 MiB-aligned: a malloc arena's heap]"
                key = (lo, hi - lo, name)
            elif line.startswith("Rss:") and key:
                out[key] = int(line.split()[1])
    return out


def growth(m0, m1, top=6):
    """RSS growth between two smaps(), grouped by mapping name and size, largest first."""
    kinds = {}
    for k in set(m0) | set(m1):
        d = m1.get(k, 0) - m0.get(k, 0)
        if d:
            g = (k[2], k[1] if k[2].startswith("[anon") else 0)
            n, v = kinds.get(g, (0, 0))
            kinds[g] = (n + 1, v + d)
    rows = sorted(kinds.items(), key=lambda x: -abs(x[1][1]))[:top]
    return "; ".join(f"{name}{f' {size / 1048576:.2f} MiB' if size else ''} x{n}: {v / 1024:+.1f} MiB"
                     for (name, size), (n, v) in rows)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Side:
    def __init__(self, name):
        self.name = name

    def start(self, tag, inp, out, fresh_state=True):
        group = f"{self.name}-{tag}"
        logf = open(os.path.join(WORK, f"{group}.log"), "a")
        if self.name == "interestd":
            conf = os.path.join(WORK, f"{group}.conf")
            with open(conf, "w") as f:
                f.write(f"[kafka]\nbrokers = {BS}\ngroup = {group}\ninput_topic = {inp}\noutput_topic = {out}\n"
                        f"[kafka.consumer]\nfetch.wait.max.ms = 500\nsession.timeout.ms = {SESSION_MS}\n"
                        f"heartbeat.interval.ms = 500\n"
                        f"[model]\npath = {MODEL}\n"
                        f"[state]\nchangelog_mode = changelog\ncheckpoint_interval_s = {DURABLE_S}\n"
                        f"[metrics]\nport = 0\n[log]\nlevel = info\n")
            cmd = [os.path.join(BIN, "daemon/interestd"), "-c", conf]
        else:
            state = os.path.join(WORK, f"{group}.state")
            if fresh_state:
                shutil.rmtree(state, ignore_errors=True)
            cmd = ["java", f"-Xmx{JAVA_HEAP}", "-cp", CP, "interestd.peer.StreamsPeer", BS, inp, out, group, state,
                   MODEL, f"commit.interval.ms={DURABLE_S * 1000}", "producer.linger.ms=1",
                   f"consumer.session.timeout.ms={SESSION_MS}", "consumer.heartbeat.interval.ms=500"]
        self.log = logf.name
        self.t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf)
        return self.proc.pid

    def metric(self, name):
        """interestd's /metrics value of name (its port from the log), or None."""
        import re
        import urllib.request
        m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)", open(self.log).read())
        if not m:
            return None
        body = urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/metrics", timeout=5).read().decode()
        m = re.search(rf"^{name} (\S+)$", body, re.M)
        return float(m.group(1)) if m else None

    def changelog_topics(self, tag):
        # interestd's changelog must exist before it starts (docs/OPERATIONS.md); Streams
        # creates its own (<application id>-users-changelog)
        return [(f"interestd-{tag}-interestd-state", PARTS)] if self.name == "interestd" else []

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def paced(topic, evs, lo, n, rate):
    """Sends n events from evs[lo:] (cycling) at a steady rate; returns the wall clock (ms) of
    the first send and the furthest any send fell behind its schedule (s)."""
    p = producer()
    t0 = time.time()
    behind, i = 0.0, 0
    while i < n:
        now = time.time()
        due = min(n, int((now - t0) * rate) + 1)
        if i >= due:
            p.poll(0)
            time.sleep(0.0005)
            continue
        behind = max(behind, now - (t0 + i / rate))
        while i < due:
            k, v, part = msg(evs[(lo + i) % len(evs)])
            try:
                p.produce(topic, v, k, partition=part)
                i += 1
            except BufferError:
                p.poll(0.001)
    p.flush(60)
    return int(t0 * 1000), behind


def pct(xs, q):
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


# ---- the phases -----------------------------------------------------------------------------
def saturation(side, evs):
    tag = "sat"
    create([(f"sat-out-{side.name}", 16)] + side.changelog_topics(tag), compact={t for t, _ in side.changelog_topics(tag)})
    pid = side.start(tag, "sat-in", f"sat-out-{side.name}")
    n, lo, hi, win, _ = read(f"sat-out-{side.name}", N, 120, pid)
    side.stop()
    if n != N:
        sys.exit(f"bench_streams: {side.name} produced {n} of {N} predictions")
    rate = (n - 1) * 1000.0 / (hi - lo)
    log(f"A {side.name:9s} saturation: {rate:8.0f} events/s; CPU {win * 1e6 / n:6.1f} us/event over the same "
        f"window ({n / win if win else 0:8.0f} events per CPU-second)")
    return rate, win / n


def latency(side, evs, rate, tag):
    inp, out = f"lat-in-{side.name}-{tag}", f"lat-out-{side.name}-{tag}"
    create([(inp, PARTS), (out, 16)] + side.changelog_topics(tag), compact={t for t, _ in side.changelog_topics(tag)})
    side.start(tag, inp, out)
    warm = 2000
    paced(inp, evs, 0, warm, 2000)
    n, *_ = read(out, warm, 60)
    if n != warm:
        sys.exit(f"bench_streams: {side.name} answered {n} of {warm} warm-up events")
    n_lat = int(rate * 3)
    start_ms, behind = paced(inp, evs, warm, n_lat, rate)
    n, _, _, _, outs = read(out, warm + n_lat, 60, keep=True)
    side.stop()
    if n != warm + n_lat:
        sys.exit(f"bench_streams: {side.name} answered {n} of {warm + n_lat} events")
    _, _, _, _, ins = read(inp, warm + n_lat, 30, keep=True)
    its = {(p, o): ts for ts, p, o, _ in ins}
    lat = []
    for ts, _, _, v in outs:
        d = msgpack.unpackb(v, raw=False)
        t_in = its[(d["sp"], d["so"])]
        if t_in >= start_ms:
            lat.append(ts - t_in)
    lat.sort()
    log(f"B {side.name:9s} at {rate:7.0f} events/s ({tag}): {len(lat)} events after a {warm}-event warm-up: "
        f"p50 {pct(lat, 0.5):.0f} ms, p99 {pct(lat, 0.99):.0f} ms, max {lat[-1] if lat else 0:.0f} ms "
        f"(feeder at most {behind * 1e3:.1f} ms behind schedule)")
    return pct(lat, 0.99)


def memory_restore(side, evs):
    tag = "mem"
    inp, out = f"mem-in-{side.name}", f"mem-out-{side.name}"
    create([(inp, PARTS), (out, PARTS)] + side.changelog_topics(tag), compact={t for t, _ in side.changelog_topics(tag)})
    warm = 2000
    preload(inp, [msg(e) for e in evs[:warm]])
    pid = side.start(tag, inp, out)
    n, *_ = read(out, warm, 120)
    if n != warm:
        sys.exit(f"bench_streams: {side.name} answered {n} of {warm} warm-up events")
    time.sleep(2)
    rss0, map0 = rss_kib(pid), smaps(pid)
    rss_half = map_half = None
    base = 10 ** 9
    users = [msg(evs[(warm + j) % len(evs)], base + j // 2) for j in range(2 * USERS)]
    # in chunks, each answered before the next is sent: no backlog of fetched, unprocessed
    # events in either client's buffers when RSS is read
    c = consumer(out)
    n, p = 0, producer()
    for lo in range(0, len(users), CHUNK):
        for k, v, part in users[lo:lo + CHUNK]:
            p.produce(inp, v, k, partition=part)
        p.flush(60)
        want, idle_until = warm + min(lo + CHUNK, len(users)), time.time() + 120
        while n < want and time.time() < idle_until:
            ms = [m for m in c.consume(1000, 0.1) if not m.error()]
            n += len(ms)
            if ms:
                idle_until = time.time() + 120
        if n < want:
            sys.exit(f"bench_streams: {side.name} answered {n} of {want} events")
        if rss_half is None and lo + CHUNK >= len(users) // 2:
            half_users = (lo + CHUNK) // 2
            time.sleep(DURABLE_S + 1)
            rss_half, map_half = rss_kib(pid), smaps(pid)
    c.close()
    time.sleep(DURABLE_S + 1)
    rss1, map1 = rss_kib(pid), smaps(pid)
    # per user: the slope between the half-way point and the end, both read the same way (all
    # answered, one changelog round later), so that the one-time growth of the process's
    # first minutes (client buffers, malloc arenas, the JVM heap's first steps) is not
    # divided among the users
    per_user = (rss1 - rss_half) * 1024.0 / (USERS - half_users)
    per_user_all = (rss1 - rss0) * 1024.0 / USERS
    store = ""
    if side.name == "interestd":
        b, u = side.metric("interestd_state_bytes"), side.metric("interestd_users_in_state")
        if b and u:
            store = f" (its store's own count: {b / u:.0f} B per user, {u:.0f} users)"
    log(f"C {side.name:9s} memory: RSS {rss0 / 1024:.0f} MiB after the warm-up, {rss_half / 1024:.0f} MiB with "
        f"{half_users} users more, {rss1 / 1024:.0f} MiB with {USERS}: {per_user:.0f} B per user between the "
        f"two ({per_user_all:.0f} B per user from the warm-up){store}")
    log(f"C {side.name:9s} RSS growth warm-up -> {half_users} users: {growth(map0, map_half)}")
    log(f"C {side.name:9s} RSS growth {half_users} -> {USERS} users: {growth(map_half, map1)}")
    # kill -9, the local state gone, restart, one event for 8 users (one per partition)
    side.stop(signal.SIGKILL)
    hw = end_offsets(out)
    time.sleep(SESSION_MS / 1000 + 1)  # the dead member's session ends (the same for both)
    side.start(tag, inp, out, fresh_state=True)
    t_restart = side.t0
    probe_users = [base + j for j in range(PARTS)]
    preload(inp, [msg(evs[j], u) for j, u in enumerate(probe_users)])
    c = consumer(out, hw)
    got, last = {}, 0
    end = time.time() + 180
    while len(got) < len(probe_users) and time.time() < end:
        for m in c.consume(1000, 0.1):
            if m.error():
                continue
            d = msgpack.unpackb(m.value(), raw=False)
            # the probe is the user's third event (a replayed second event counts 2)
            if d["u"] in probe_users and d["n"] >= 3:
                got[d["u"]] = d["n"]
                last = max(last, m.timestamp()[1])
    c.close()
    side.stop()
    if len(got) != len(probe_users):
        sys.exit(f"bench_streams: {side.name} answered {len(got)} of {len(probe_users)} probes after the restart")
    if any(n != 3 for n in got.values()):
        sys.exit(f"bench_streams: {side.name}: a probe's prediction counts {got} events, not 3: state lost")
    restore = last / 1000.0 - t_restart
    log(f"C {side.name:9s} restore after kill -9 ({USERS + len({e[0] for e in evs[:warm]})} users, local state deleted): "
        f"{restore:.2f} s from the restart to the last of 8 probe predictions (each counts 3 events)")
    return per_user, restore


def main():
    evs = load_events()
    sides = [Side("interestd"), Side("streams")]
    if os.environ.get("BENCH_STREAMS_ONLY") == "memory":  # phase C alone (docs/PERFORMANCE.md)
        mem = {s.name: memory_restore(s, evs)[0] for s in sides}
        log(f"RATIOS interestd/Streams: memory per user {mem['interestd']:.0f} vs {mem['streams']:.0f} B "
            f"({mem['streams'] / mem['interestd'] if mem['interestd'] > 0 else float('nan'):.1f}x less)")
        return
    create([("sat-in", PARTS)])
    preload("sat-in", [msg(e) for e in evs[:N]] if N <= len(evs) else
            [msg(evs[j % len(evs)]) for j in range(N)])
    log(f"bench_streams: {N} events preloaded; model {MODEL}; {USERS} users for memory and restore")
    res = {}
    for s in sides:
        res[s.name] = {}
        res[s.name]["rate"], res[s.name]["cpu"] = saturation(s, evs)
    for s in sides:
        res[s.name]["p99"] = latency(s, evs, res[s.name]["rate"] / 2, "half")
    res["interestd"]["p99_at_peer"] = latency(sides[0], evs, res["streams"]["rate"] / 2, "peer-rate")
    for s in sides:
        res[s.name]["mem"], res[s.name]["restore"] = memory_restore(s, evs)
    i, j = res["interestd"], res["streams"]
    log(f"RATIOS interestd/Streams: events/s {i['rate'] / j['rate']:.1f}x; events per CPU-second "
        f"{j['cpu'] / i['cpu']:.1f}x; p99 at half load {i['p99']:.0f} vs {j['p99']:.0f} ms (interestd at the "
        f"peer's half rate: {i['p99_at_peer']:.0f} ms); memory per user {i['mem']:.0f} vs {j['mem']:.0f} B "
        f"({j['mem'] / i['mem'] if i['mem'] > 0 else float('nan'):.1f}x less); restore {i['restore']:.2f} vs "
        f"{j['restore']:.2f} s")


main()
