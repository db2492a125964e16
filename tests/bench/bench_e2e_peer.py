#!/usr/bin/python3
"""The peer a shop would write from the articles: a python3-confluent-kafka
consumer that runs a PyTorch LSTMCell per event (one user's state at a time)
and produces the user's top next categories. Used by bench_e2e as the
comparison point; same input topic, same message formats, one thread.

usage: bench_e2e_peer.py BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC COUNT GROUP
"""
import os
import sys
import msgpack
import torch
from confluent_kafka import Consumer, Producer

boot, topic_in, topic_out, count, group = sys.argv[1:6]
count = int(count)
torch.set_num_threads(1)
torch.manual_seed(1)
V, EC, EA, H = 1000, 32, 8, 64
emb_c = torch.nn.Embedding(V, EC)
emb_a = torch.nn.Embedding(5, EA)
cell = torch.nn.LSTMCell(EC + EA, H)
head = torch.nn.Linear(H, V)
ACTIONS = {"view": 0, "cart": 1, "fav": 2, "buy": 3}
states = {}

consumer = Consumer({"bootstrap.servers": boot, "group.id": group,
                     "auto.offset.reset": "earliest", "fetch.wait.max.ms": int(os.environ.get("BENCH_E2E_FETCH_WAIT") or 1),
                     "enable.auto.commit": True})
producer = Producer({"bootstrap.servers": boot, "linger.ms": 1})
consumer.subscribe([topic_in])
done = 0
with torch.no_grad():
    while done < count:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        ev = msgpack.unpackb(msg.value(), strict_map_key=False)
        u, c = ev["u"], ev["c"]
        a = ev.get("a", 4)
        a = ACTIONS.get(a, 4) if isinstance(a, str) else min(int(a), 4)
        h, cs = states.get(u, (torch.zeros(1, H), torch.zeros(1, H)))
        x = torch.cat([emb_c(torch.tensor([hash(c) % V])), emb_a(torch.tensor([a]))], dim=1)
        h, cs = cell(x, (h, cs))
        states[u] = (h, cs)
        p = torch.softmax(head(h), dim=1)[0]
        top = torch.topk(p, 10)
        out = {"u": u, "sp": msg.partition(), "so": msg.offset(), "t": ev["t"],
               "nx": [[int(i), float(v)] for v, i in zip(top.values, top.indices)]}
        producer.produce(topic_out, key=str(u), value=msgpack.packb(out))
        producer.poll(0)
        done += 1
producer.flush(30)
consumer.close()
