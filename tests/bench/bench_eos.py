#!/usr/bin/python3
"""The cost of exactly-once output on a real Kafka, at_least_once against exactly_once in
one run (docs/PERFORMANCE.md, "Exactly-once output").

usage: [BENCH_EOS_ORDER=eos-first] [BENCH_EOS_ROUNDS=N] IX_KAFKA_DIR=DIR (a tests/kafka/kafka.sh broker) or IX_KAFKA_BOOTSTRAP=host:port \\
       bench_eos.py BUILD_DIR [N_EVENTS (50000)] [RATE (2000)] [SECONDS (10)]

For each mode, in turn, with its own topics and group:
  1. saturation: N_EVENTS Taobao events preloaded into an 8-partition topic; interestd
     starts and a read_committed reader reads the predictions; events/s from the output
     messages' produce timestamps, first to last (as bench_e2e);
  2. latency: a fresh daemon, 2000 events of warm-up not counted, then RATE events/s for
     SECONDS; for every prediction a read_committed reader receives, the time from the
     input event's produce to its arrival at the reader (what a downstream consumer sees:
     with exactly_once this includes waiting for the transaction's commit).
exactly_once runs with kafka.commit_interval_ms = 100 (the default)."""
import os, subprocess, sys, tempfile, threading, time, uuid
import msgpack
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, SRC + "/tests/py")
import ixrec

build = sys.argv[1]
n_events = int(sys.argv[2]) if len(sys.argv) > 2 else 50000
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 2000
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10
bs = os.environ.get("IX_KAFKA_BOOTSTRAP") or open(os.environ["IX_KAFKA_DIR"] + "/bootstrap").read().strip()
tmp = tempfile.mkdtemp()
rec = tmp + "/in.rec"
subprocess.run([build + "/ctl/interestctl", "import", "--format", "taobao", "--input",
                SRC + "/data/taobao_userbehavior_head100k/small_sample.csv.gz", "--output", rec,
                "--partitions", "8"], check=True, stdout=subprocess.DEVNULL)
records = list(ixrec.read_records(rec))
admin = AdminClient({"bootstrap.servers": bs})


def topics(sfx):
    fs = admin.create_topics([NewTopic("ev" + sfx, 8, 1, config={"retention.ms": "-1"}),
                              NewTopic("out" + sfx, 16, 1, config={"retention.ms": "-1"})])
    for f in fs.values():
        f.result(15)
    time.sleep(1)


def daemon(sfx, mode, log):
    conf = tmp + "/d" + sfx + ".conf"
    with open(conf, "w") as f:
        f.write(f"[kafka]\nbrokers = {bs}\ngroup = g{sfx}\ninput_topic = ev{sfx}\n"
                f"output_topic = out{sfx}\nprocessing_guarantee = {mode}\ninstance_id = bench\n"
                f"[kafka.consumer]\nsession.timeout.ms = 6000\n"
                f"[model]\npath = {SRC}/model/weights/taobao-h64.ixm\n[log]\nlevel = warn\n")
    return subprocess.Popen([build + "/daemon/interestd", "-c", conf], stderr=open(log, "w"))


def reader(sfx, on_msg, stop):
    c = Consumer({"bootstrap.servers": bs, "group.id": "r" + sfx, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    c.assign([TopicPartition("out" + sfx, p, OFFSET_BEGINNING) for p in range(16)])
    while not stop.is_set():
        for m in c.consume(1000, 0.1):
            if m.error() is None:
                on_msg(m)
    c.close()


def produce(sfx, recs, pace=None, sent=None):
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5 if pace else 20})
    t0 = time.monotonic()
    for i, (part, off, ts, key, value) in enumerate(recs):
        if pace:
            ahead = t0 + i / pace - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                if sent is not None:
                    def dr(err, m, t=time.time()):
                        if err is None:
                            sent[(m.partition(), m.offset())] = t
                    p.produce("ev" + sfx, value=value, key=key, partition=part, timestamp=ts, on_delivery=dr)
                else:
                    p.produce("ev" + sfx, value=value, key=key, partition=part, timestamp=ts)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    assert p.flush(60) == 0


def saturation(mode):
    sfx = "-sat-" + mode + "-" + uuid.uuid4().hex[:6]
    topics(sfx)
    produce(sfx, records[:n_events])
    ts, stop = [], threading.Event()
    th = threading.Thread(target=reader, args=(sfx, lambda m: ts.append(m.timestamp()[1]), stop))
    th.start()
    d = daemon(sfx, mode, tmp + "/sat-" + mode + ".log")
    deadline = time.monotonic() + 300
    while len(ts) < n_events and time.monotonic() < deadline and d.poll() is None:
        time.sleep(0.2)
    d.terminate(); d.wait()
    stop.set(); th.join()
    assert len(ts) >= n_events, f"{mode}: {len(ts)} of {n_events} predictions (see {tmp})"
    return n_events / ((max(ts) - min(ts)) / 1e3)


def latency(mode):
    sfx = "-lat-" + mode + "-" + uuid.uuid4().hex[:6]
    topics(sfx)
    sent, lat, stop = {}, [], threading.Event()
    warm = 2000
    n = min(len(records) - warm, int(rate * seconds))

    def got(m):
        d = msgpack.unpackb(m.value(), raw=False)
        t = sent.get((d["sp"], d["so"]))
        if t is not None:
            lat.append(time.time() - t)
    th = threading.Thread(target=reader, args=(sfx, got, stop))
    th.start()
    d = daemon(sfx, mode, tmp + "/lat-" + mode + ".log")
    produce(sfx, records[:warm])                    # warm-up: not timed
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60 and d.poll() is None:
        time.sleep(0.2)
        c = Consumer({"bootstrap.servers": bs, "group.id": "w" + sfx, "isolation.level": "read_committed"})
        lo_hi = [c.get_watermark_offsets(TopicPartition("out" + sfx, p), 5) for p in range(16)]
        c.close()
        if sum(h for _, h in lo_hi) >= warm:
            break
    produce(sfx, records[warm:warm + n], pace=rate, sent=sent)
    deadline = time.monotonic() + 30
    while len(lat) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    d.terminate(); d.wait()
    stop.set(); th.join()
    lat.sort()
    q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] * 1e3
    return len(lat), n, q(0.5), q(0.99), lat[-1] * 1e3


load = open("/proc/loadavg").read().split()[:3]
print(f"bench_eos: broker {bs}, {n_events} events for saturation, {rate:.0f} events/s x {seconds:.0f} s "
      f"for latency, load average {' '.join(load)}")
modes = ["at_least_once", "exactly_once"]
if os.environ.get("BENCH_EOS_ORDER") == "eos-first":  # to see whether the order matters
    modes.reverse()
# BENCH_EOS_ROUNDS=N: the pair N times, alternating; the ratio line is printed per round
# (the first phase of a run was seen slower, whichever mode it was: compare later rounds)
for rnd in range(int(os.environ.get("BENCH_EOS_ROUNDS", "1"))):
    res = {}
    for mode in modes:
        sat = saturation(mode)
        k, n, p50, p99, mx = latency(mode)
        res[mode] = (sat, p50, p99)
        print(f"round {rnd + 1} {mode:14s} saturation {sat:8.0f} events/s | latency at {rate:.0f}/s, "
              f"read_committed reader: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms, max {mx:6.1f} ms "
              f"({k} of {n} predictions timed)", flush=True)
    a, e = res["at_least_once"], res["exactly_once"]
    print(f"round {rnd + 1} exactly_once / at_least_once: throughput {e[0] / a[0]:.2f}x, "
          f"p50 {e[1] / a[1]:.1f}x, p99 {e[2] / a[2]:.1f}x", flush=True)
print("load average after:", " ".join(open("/proc/loadavg").read().split()[:3]))
