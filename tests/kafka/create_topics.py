"""create_topics.py BOOTSTRAP SUFFIX NAME:PARTITIONS...: creates NAME+SUFFIX with PARTITIONS
partitions (replication 1) through the Admin API and waits until every partition has a leader.
Time retention is off (retention.ms=-1): the bundled events are from 2017 and keep their
timestamps, and a broker's time retention (7 days by default) would delete them within seconds."""
import sys, time
from confluent_kafka.admin import AdminClient, NewTopic
bs, sfx, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
a = AdminClient({"bootstrap.servers": bs})
want = {name + sfx: int(n) for name, n in (s.split(":") for s in specs)}
for f in a.create_topics([NewTopic(t, n, 1, config={"retention.ms": "-1"}) for t, n in want.items()]).values():
    f.result(30)
end = time.time() + 30
while True:
    md = a.list_topics(timeout=10).topics
    if all(t in md and len(md[t].partitions) == n and
           all(p.leader >= 0 for p in md[t].partitions.values()) for t, n in want.items()):
        break
    if time.time() > end:
        sys.exit("create_topics.py: topics have no leaders after 30 s")
    time.sleep(0.1)
