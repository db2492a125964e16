#!/usr/bin/python3
"""Quality right after a model swap: cold states against states warmed from a
window of the recorded topic, against a model that served from the start.

  PYTHONPATH=python /usr/bin/python3 tests/bench/swap_warmup.py EVENTS.rec MODEL.ixm \
      [--drop-user ID] [--tz +08:00] [--swap-at MS] [--windows-h 0,1,6,24,72,all]

The new model (MODEL.ixm) is swapped in at --swap-at (default: the start of the
test day, the last local day of the data). Scored: every event in [swap, swap +
1 day) whose user's previous event is also after the swap (its prediction is
made by the new model in every variant), MRR@10 and NLL by the rules of
interestctl eval. Variants: the new model fed only events from swap - W on
(W = 0: a cold swap; W = all: served from the start). Computed with the
package's float32 forward (python/interestd_torch), not the bf16 serving path
(dev MRR@10 of the two differ in the 4th digit)."""
import argparse
import sys

import numpy as np
import torch

from interestd_torch import IxModel, load_ixm
from interestd_torch.records import load_events, parse_tz, windows
from interestd_torch.train import Seqs, evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("events")
    ap.add_argument("model")
    ap.add_argument("--drop-user", type=int, action="append", default=[])
    ap.add_argument("--tz", default="+00:00")
    ap.add_argument("--swap-at", type=int, default=0)
    ap.add_argument("--windows-h", default="0,1,6,24,72,all")
    ap.add_argument("--last-n", default="8,16,32,64",
                    help="also: each user's last N events before the swap (a bounded per-user history)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ev = load_events(a.events, a.drop_user)
    _, test_start, test_end = windows(ev["ts"], parse_tz(a.tz))
    swap = a.swap_at or test_start
    end = swap + 86400000
    ev = ev[ev["ts"] < end]
    model = IxModel.from_file(load_ixm(a.model)).eval()
    dev = torch.device("cpu")
    # the targets: events after the swap whose user's previous event is after it too
    order = np.lexsort((np.arange(len(ev)), ev["ts"], ev["user"]))
    s = ev[order]
    same = np.r_[False, s["user"][1:] == s["user"][:-1]]
    prev_ts = np.r_[0, s["ts"][:-1]]
    tgt = same & (s["ts"] >= swap) & (prev_ts >= swap)
    n_tgt = int(tgt.sum())
    print(f"swap at {swap} ms; {n_tgt} targets in the day after it "
          f"(events after the swap whose user's previous event is after it too)")
    rows = []
    # rank of each event among its user's events before the swap, from the last
    before = s["ts"] < swap
    last = np.zeros(len(s), dtype=np.int64)
    cnt = {}
    for j in np.flatnonzero(before)[::-1]:
        u = int(s["user"][j])
        last[j] = cnt.get(u, 0)
        cnt[u] = last[j] + 1
    variants = [("window", w) for w in a.windows_h.split(",")]
    variants += [("last", n) for n in a.last_n.split(",") if n]
    for kind, w in variants:
        if kind == "window":
            lo = -1 if w == "all" else swap - int(float(w) * 3600000)
            sub = s[s["ts"] >= lo]
        else:
            sub = s[~before | (last < int(w))]
            w = f"last {w} events/user"
        q = Seqs(sub, model)
        # a target: the next event is a scored one (in time order per user)
        o = np.lexsort((np.arange(len(sub)), sub["ts"], sub["user"]))
        ss = sub[o]
        same = np.r_[False, ss["user"][1:] == ss["user"][:-1]]
        prev_ts = np.r_[0, ss["ts"][:-1]]
        t = same & (ss["ts"] >= swap) & (prev_ts >= swap)
        q.has_tgt = np.r_[t[1:], False] & np.r_[same[1:], False]
        q.n_targets = int(q.has_tgt.sum())
        q.to(dev)
        mrr, nll = evaluate(model, q, dev)
        fed = int((sub["ts"] < swap).sum())
        rows.append((w, fed, q.n_targets, mrr, nll))
    full = [r[3] for r in rows if r[0] == "all"]
    full = full[0] if full else None
    print("warm-up window | events replayed before the swap | targets | MRR@10 | NLL | MRR@10 vs served from the start")
    for w, fed, n, mrr, nll in rows:
        rel = f"{100 * (mrr / full - 1):+.2f}%" if full else ""
        name = "all (from the start)" if w == "all" else w if w.startswith("last") else w + " h"
        print(f"{name} | {fed} | {n} | {mrr:.4f} | {nll:.4f} | {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
