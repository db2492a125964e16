#!/usr/bin/python3
"""The peer a competent Python team would write: python3-confluent-kafka
consume(512), the batch's events grouped by user into waves (a user's k-th
event of the batch goes in wave k, so every wave holds distinct users and each
user's events are applied in order), one PyTorch LSTMCell call per wave over
all its users, the head (Linear + softmax + top-10) once per batch over every
event's hidden state. Same sizes, message formats and output as
bench_e2e_peer.py; one thread. Used by bench_e2e as the headline comparison.

usage: bench_e2e_peer_batched.py BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC COUNT GROUP
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
states = {}  # user -> (h, c), each a (H,) tensor
zero = torch.zeros(H)

consumer = Consumer({"bootstrap.servers": boot, "group.id": group,
                     "auto.offset.reset": "earliest",
                     "fetch.wait.max.ms": int(os.environ.get("BENCH_E2E_FETCH_WAIT") or 1),
                     "enable.auto.commit": True})
producer = Producer({"bootstrap.servers": boot, "linger.ms": 1})
consumer.subscribe([topic_in])
done = 0
with torch.no_grad():
    while done < count:
        msgs = [m for m in consumer.consume(min(512, count - done), 1.0) if not m.error()]
        if not msgs:
            continue
        evs = []
        for m in msgs:
            ev = msgpack.unpackb(m.value(), strict_map_key=False)
            a = ev.get("a", 4)
            a = ACTIONS.get(a, 4) if isinstance(a, str) else min(int(a), 4)
            evs.append((ev["u"], hash(ev["c"]) % V, a, ev["t"], m.partition(), m.offset()))
        # waves: the k-th event of a user in this batch goes in wave k
        seen, waves = {}, []
        for i, (u, *_rest) in enumerate(evs):
            k = seen.get(u, 0)
            seen[u] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(i)
        hidden = [None] * len(evs)
        for wave in waves:
            users = [evs[i][0] for i in wave]
            hc = [states.get(u, (zero, zero)) for u in users]
            h0 = torch.stack([x[0] for x in hc])
            c0 = torch.stack([x[1] for x in hc])
            x = torch.cat([emb_c(torch.tensor([evs[i][1] for i in wave])),
                           emb_a(torch.tensor([evs[i][2] for i in wave]))], dim=1)
            h1, c1 = cell(x, (h0, c0))
            for j, (i, u) in enumerate(zip(wave, users)):
                states[u] = (h1[j], c1[j])
                hidden[i] = h1[j]
        p = torch.softmax(head(torch.stack(hidden)), dim=1)
        top = torch.topk(p, 10, dim=1)
        vals, idx = top.values.tolist(), top.indices.tolist()
        for (u, _c, _a, t, part, off), vs, ix in zip(evs, vals, idx):
            out = {"u": u, "sp": part, "so": off, "t": t, "nx": [[i, v] for v, i in zip(vs, ix)]}
            producer.produce(topic_out, key=str(u), value=msgpack.packb(out))
        producer.poll(0)
        done += len(evs)
producer.flush(30)
consumer.close()
