#!/usr/bin/python3
"""MRR@10 of next-category predictions written by `interestctl replay --offline`.

  PYTHONPATH=python /usr/bin/python3 tests/bench/score_next.py EVENTS.rec PREDS.rec [--drop-user ID]

Targets: every event of EVENTS.rec whose user's previous event is in
EVENTS.rec too; its rank is the position of its category in the `nx` list of
the prediction made for that previous event (1..10, 0 = not in the top 10),
as `interestctl eval` and the daemon's live quality rank it. Prints one line:
targets, Acc@1, Recall@5, MRR@10."""
import argparse
import sys

import msgpack

from interestd_torch.records import decode_event, read_records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("events")
    ap.add_argument("preds")
    ap.add_argument("--drop-user", type=int, action="append", default=[])
    a = ap.parse_args()
    nx = {}
    for part, off, _, _, value in read_records(a.preds):
        m = msgpack.unpackb(value, raw=False, strict_map_key=False)
        nx[(part, off)] = [int(c) for c, _ in m.get("nx", [])][:10]
    drop = set(a.drop_user)
    prev = {}
    n = hit1 = hit5 = 0
    rr = 0.0
    missing = 0
    for part, off, _, _, value in read_records(a.events):
        user, _, cat, _, _ = decode_event(value)
        if user in drop:
            continue
        p = prev.get(user)
        prev[user] = (part, off)
        if p is None:
            continue
        top = nx.get(p)
        if top is None:
            missing += 1
            continue
        n += 1
        if cat in top:
            r = top.index(cat) + 1
            rr += 1.0 / r
            hit1 += r == 1
            hit5 += r <= 5
    if missing:
        print(f"{missing} targets whose previous event has no prediction", file=sys.stderr)
    print(f"targets {n} Acc@1 {hit1 / max(n, 1):.4f} Recall@5 {hit5 / max(n, 1):.4f} "
          f"MRR@10 {rr / max(n, 1):.4f}")


if __name__ == "__main__":
    main()
