#!/usr/bin/python3
"""Compares the Kafka Streams peer's predictions with interestd's (record files of prediction
messages, docs/FORMATS.md), matched by their source (partition, offset).
usage: compare.py REFERENCE.rec PEER.rec [TOLERANCE (1e-3)]
Passes (exit 0) when both answer the same sources once each and, for every prediction:
u, t and n are equal; the top next category is equal, or the reference's first two are
within TOLERANCE of each other (a near tie the other float order may break the other way);
every score (fl, sh, and p of each category both lists hold in nx, lt, ri, fa) is within
TOLERANCE; and the next/long-term lists hold the same categories apart from entries within
TOLERANCE of their list's last score. Prints the largest differences seen."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "py"))
import msgpack  # noqa: E402
import ixrec  # noqa: E402


def by_source(path):
    out = {}
    for _, _, _, key, value in ixrec.read_records(path):
        d = msgpack.unpackb(value, raw=False)
        src = (d["sp"], d["so"])
        if src in out:
            sys.exit(f"FAIL: {path}: two predictions for source {src}")
        if key != str(d["u"]).encode():
            sys.exit(f"FAIL: {path}: key {key!r} is not the user id {d['u']}")
        out[src] = d
    return out


def main():
    ref, peer = by_source(sys.argv[1]), by_source(sys.argv[2])
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-3
    if set(ref) != set(peer):
        sys.exit(f"FAIL: answered sources differ: {len(set(ref) - set(peer))} only in the reference, "
                 f"{len(set(peer) - set(ref))} only in the peer")
    worst = {k: (0.0, None) for k in ("fl", "sh", "nx", "lt", "ri", "fa")}
    bad, top_equal, near_ties, lists_equal = [], 0, 0, 0
    for s, a in ref.items():
        b = peer[s]
        for k in ("u", "t", "n"):
            if a[k] != b[k]:
                bad.append(f"{s}: {k} {a[k]} != {b[k]}")
        for k in ("fl", "sh"):
            d = abs(a[k] - b[k])
            if d > worst[k][0]:
                worst[k] = (d, s)
        for k in ("nx", "lt", "ri", "fa"):
            pa, pb = dict(map(tuple, a[k])), dict(map(tuple, b[k]))
            for c in pa.keys() & pb.keys():
                d = abs(pa[c] - pb[c])
                if d > worst[k][0]:
                    worst[k] = (d, s)
            if k in ("nx", "lt"):
                # a category in one list only must sit at the other's cut-off (a near tie)
                for c in pa.keys() ^ pb.keys():
                    lst = a[k] if c in pa else b[k]
                    if abs(dict(map(tuple, lst))[c] - lst[-1][1]) > tol:
                        bad.append(f"{s}: {k} category {c} in one list only, away from the cut-off")
                lists_equal += pa.keys() == pb.keys()
        if a["nx"] and b["nx"]:
            if a["nx"][0][0] == b["nx"][0][0]:
                top_equal += 1
            elif len(a["nx"]) > 1 and a["nx"][0][1] - a["nx"][1][1] <= tol:
                near_ties += 1
            else:
                bad.append(f"{s}: top next category {a['nx'][0]} != {b['nx'][0]}")
        elif a["nx"] != b["nx"]:
            bad.append(f"{s}: nx {a['nx']} != {b['nx']}")
    for k, (d, s) in worst.items():
        if d > tol:
            bad.append(f"{s}: {k} differs by {d:.3g} > {tol:g}")
    n = len(ref)
    print(f"compare: {n} predictions; top next category equal in {top_equal}, a near tie in {near_ties}; "
          f"nx and lt hold the same categories in {lists_equal} of {2 * n} lists; largest differences: "
          + ", ".join(f"{k} {d:.2g}" for k, (d, _) in worst.items()))
    if bad:
        for line in bad[:10]:
            print("  " + line)
        sys.exit(f"FAIL: {len(bad)} differences beyond the tolerance {tol:g}")
    print(f"compare: every prediction within {tol:g} of the reference")


main()
