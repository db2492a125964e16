"""What interestd and its tests need from the broker, through Debian's librdkafka (2.0.2 via
python3-confluent-kafka): Admin API create/describe, idempotent produce, a consumer group with
commits, transactions (commit with offsets, abort) and read_committed. Usage: check_librdkafka.py
BOOTSTRAP (or IX_KAFKA_BOOTSTRAP / IX_KAFKA_DIR/bootstrap)."""
import os, sys, time, uuid
import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource
bs = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("IX_KAFKA_BOOTSTRAP") or \
    open(os.environ["IX_KAFKA_DIR"] + "/bootstrap").read().strip()
print("librdkafka", ck.libversion())
ok = lambda what: print("OK  ", what)
a = AdminClient({"bootstrap.servers": bs})
t = "chk-" + uuid.uuid4().hex[:6]
for f in a.create_topics([NewTopic(t, 3, 1, config={"cleanup.policy": "compact", "segment.ms": "1000"})]).values(): f.result(10)
ok("admin create_topics")
t0 = time.time()  # a new topic's metadata reaches every broker view shortly after the create returns
while True:
    md = a.list_topics(t, timeout=10)
    if t in md.topics and md.topics[t].error is None and len(md.topics[t].partitions) == 3: break
    assert time.time() - t0 < 15, "topic %s: no metadata with 3 partitions within 15 s" % t
    time.sleep(0.2)
ok("metadata 3 partitions (%.1f s after create)" % (time.time() - t0))
for f in a.describe_configs([ConfigResource("topic", t)]).values():
    c = f.result(10); assert c["cleanup.policy"].value == "compact"; ok("admin describe_configs")
p = ck.Producer({"bootstrap.servers": bs, "enable.idempotence": True})
for i in range(100): p.produce(t, key=str(i % 7), value=b"v%d" % i)
assert p.flush(10) == 0; ok("idempotent produce")
c = ck.Consumer({"bootstrap.servers": bs, "group.id": "g-" + t, "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([t]); n = 0; t0 = time.time()
while n < 100 and time.time() - t0 < 30:
    m = c.poll(1)
    if m and not m.error(): n += 1
assert n == 100, n; ok("group consume (first join+100 msgs %.1f s)" % (time.time()-t0))
c.commit(asynchronous=False); cm = c.committed([ck.TopicPartition(t, i) for i in range(3)], 10)
assert sum(max(x.offset,0) for x in cm) == 100, cm; ok("commit + committed")
c.close()
# transactions
tp = ck.Producer({"bootstrap.servers": bs, "transactional.id": "tx-" + t})
tp.init_transactions(10); tp.begin_transaction()
for i in range(10): tp.produce(t, key="k", value=b"committed%d" % i)
c2 = ck.Consumer({"bootstrap.servers": bs, "group.id": "g2-" + t, "auto.offset.reset": "earliest", "enable.auto.commit": False})
c2.subscribe([t]); 
t0 = time.time()
while not c2.assignment() and time.time() - t0 < 20: c2.poll(0.2)
tp.send_offsets_to_transaction([ck.TopicPartition(t, 1, 5)], c2.consumer_group_metadata(), 10)
tp.commit_transaction(10); ok("transaction commit with send_offsets")
tp.begin_transaction()
for i in range(10): tp.produce(t, key="k", value=b"aborted%d" % i)
tp.flush(10); tp.abort_transaction(10); ok("transaction abort")
rc = ck.Consumer({"bootstrap.servers": bs, "group.id": "rc-" + t, "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
rc.subscribe([t]); vals = []; t0 = time.time()
while time.time() - t0 < 8:
    m = rc.poll(0.5)
    if m and not m.error(): vals.append(m.value())
nc = sum(v.startswith(b"committed") for v in vals); na = sum(v.startswith(b"aborted") for v in vals)
print("read_committed saw", len(vals), "committed", nc, "aborted", na); assert nc == 10 and na == 0; ok("read_committed hides aborted")
rc.close(); c2.close()
cc = ck.Consumer({"bootstrap.servers": bs, "group.id": "g2-" + t})
off = cc.committed([ck.TopicPartition(t, 1)], 10)[0].offset; cc.close()
assert off == 5, off; ok("offsets sent in the transaction are the group's committed offsets")
print("1 passed, 0 failed")
