"""The paced feed of the kill tests (tests/integration/lib.sh ix_feed):
ixfeed.py RECFILE BOOTSTRAP RATE produces every record of RECFILE to the topic
"events" + $SFX, each to its recorded partition in file order (so the
topic's offsets are the file's), at RATE events/s."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ixrec  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

path, bs, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
topic = "events" + os.environ.get("SFX", "")
p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "enable.idempotence": True})
t0 = time.monotonic()
n = 0
for part, off, ts, key, value in ixrec.read_records(path):
    ahead = t0 + n / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
    while True:
        try:
            p.produce(topic, value=value, key=key, partition=part, timestamp=ts)
            break
        except BufferError:
            p.poll(0.01)
    n += 1
    if n % 200 == 0:
        p.poll(0)
assert p.flush(60) == 0, "undelivered events"
print(f"feed: {n} events in {time.monotonic() - t0:.1f} s")
