#!/usr/bin/python3
"""One training step's gradient of `interestctl train` against torch.autograd.

Reads PREFIX.json (dims, layout, the chunks' (step, slot, reset) rows and the
slots' users' events), PREFIX.params.f32 and PREFIX.grad.f32 as written by
`interestctl train --grad-dump PREFIX --grad-chunk N`. Runs the model of
python/interestd_torch (IxModel: embeddings, Cell, Head and its NLL rule,
UserState's time features and recent list) in float64 on those weights,
replays chunks 0..N-1 without gradient (truncated BPTT carries h, c), takes
the mean NLL of chunk N and compares d loss / d params with the C gradient,
block by block: relative L2 error and max error relative to the block's
largest entry must both be <= 1e-4. Also checks that the comparison would
catch a gradient off by 0.1% in any block.
"""
import json
import math
import sys

import os

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from interestd_torch import Dims, IxModel, UserState, layout  # noqa: E402
from interestd_torch.model import Head  # noqa: E402

TOL = 1e-4
K = 16


def main(prefix):
    meta = json.load(open(prefix + ".json"))
    params_np = np.fromfile(prefix + ".params.f32", dtype=np.float32)
    grad_c = np.fromfile(prefix + ".grad.f32", dtype=np.float32).astype(np.float64)
    L = meta["layout"]
    V, H, EC, EA, I, B = (meta[k] for k in ("V", "H", "EC", "EA", "I", "B"))
    assert meta["K"] == K
    assert params_np.size == L["total"] == grad_c.size, "dump sizes disagree with the layout"
    dims = Dims(V, H, EC, EA, I, 0)
    lay, total = layout(dims)
    assert total == L["total"] and all(lay[k][0] == L[k] for k in lay), "layouts disagree"
    model = IxModel(dims)
    model.load_flat(params_np)
    model.double()

    users = meta["events"]  # in slot-assignment order: [cat, idx, action, ts_ms]
    next_user = 0
    slot = [None] * B  # dict(user, pos, recent, n, prev_ts, prev_cat, h, c)
    stats = dict(resets_mid=0, carried=0, targets=0, oov_other=0, oov_copied=0, copied=0)
    loss_sum = None
    n_chunks = len(meta["chunks"])
    for ci, rows in enumerate(meta["chunks"]):
        last = ci == n_chunks - 1
        # truncated BPTT: no gradient flows into a chunk from the previous one
        for s in slot:
            if s is not None:
                s["h"], s["c"] = s["h"].detach(), s["c"].detach()
        steps = {}
        for step, b, reset, cidx in rows:
            steps.setdefault(step, []).append((b, reset, cidx))
        for step in sorted(steps):
            for b, reset, cidx in steps[step]:
                if reset:
                    slot[b] = dict(user=next_user, pos=0, st=UserState(),
                                   h=torch.zeros(H, dtype=torch.float64),
                                   c=torch.zeros(H, dtype=torch.float64))
                    next_user += 1
                    if last and step > 0:
                        stats["resets_mid"] += 1
                elif last and step == 0:
                    stats["carried"] += 1
                st = slot[b]
                evs = users[st["user"]]
                cat, idx, act, ts = evs[st["pos"]]
                assert idx == cidx, "vocab index of the event disagrees"
                us = st["st"]
                tf = torch.from_numpy(us.time_features(cat, ts).astype(np.float64))
                x = model.inputs(torch.tensor(idx), torch.tensor(act), tf)
                st["h"], st["c"] = model.cell.step(model.cell.input_proj(x), st["h"], st["c"])
                us.advance(cat, ts, idx, 72.0 * 3600.0)  # the profile is not used here
                st["pos"] += 1
                if not last or st["pos"] >= len(evs):
                    continue
                # head and the NLL rule for the next event's category
                tcat, tidx = evs[st["pos"]][0], evs[st["pos"]][1]
                rec = us.recent
                lc = torch.zeros(1, K, dtype=torch.float64)
                mask = torch.zeros(1, K, dtype=torch.bool)
                for k, r in enumerate(rec):
                    lc[0, k], mask[0, k] = math.log1p(r[1]), True
                kk = [k for k, r in enumerate(rec) if r[0] == tcat]
                pv, g, pc = model.head.parts(st["h"].unsqueeze(0), lc, mask)
                p = Head.target_prob(pv, g, pc, torch.tensor([tidx]),
                                     torch.tensor([kk[0] if kk else -1]))[0]
                if tidx > 0:
                    stats["copied"] += bool(kk)
                elif kk:
                    stats["oov_copied"] += 1
                else:
                    stats["oov_other"] += 1
                term = -torch.log(p)
                loss_sum = term if loss_sum is None else loss_sum + term
                stats["targets"] += 1
    assert stats["targets"] == meta["targets"], (stats, meta["targets"])
    loss = loss_sum / stats["targets"]
    loss.backward()
    grads = {n: t.grad for n, t in model._blocks().items()}
    grad_t = np.zeros(total, dtype=np.float64)
    for n, (o, shape) in lay.items():
        grad_t[o:o + int(np.prod(shape))] = grads[n].numpy().ravel()
    print("loss torch %.9f  C %.9f  targets %d  coverage %s" %
          (loss.item(), meta["loss"], stats["targets"], stats))
    ok = abs(loss.item() - meta["loss"]) <= 1e-5 * abs(loss.item())
    if not ok:
        print("FAIL: loss differs")
    # every path of the backward must be exercised by this chunk
    for k in ("resets_mid", "carried", "oov_other", "oov_copied", "copied"):
        if stats[k] == 0:
            print("FAIL: the chunk does not exercise '%s'; pick another --grad-chunk" % k)
            ok = False

    names = ["emb_cat", "emb_act", "w_ih", "w_hh", "b_ih", "b_hh", "head_wv", "head_bv",
             "copy_wp", "copy_bp", "copy_wf", "gate_wg", "gate_bg"]
    ends = [L[n] for n in names[1:]] + [L["total"]]

    def compare(gc, verbose):
        good = True
        for n, lo, hi in zip(names, [L[n] for n in names], ends):
            a, t = gc[lo:hi], grad_t[lo:hi]
            nt = np.linalg.norm(t)
            rel = np.linalg.norm(a - t) / nt if nt > 0 else np.linalg.norm(a)
            mx = np.max(np.abs(a - t)) / np.max(np.abs(t)) if nt > 0 else np.max(np.abs(a))
            bad = not (rel <= TOL and mx <= TOL) or nt == 0
            good &= not bad
            if verbose:
                print("  %-8s n=%-6d |g|=%.3e  rel L2 %.2e  rel max %.2e %s" %
                      (n, hi - lo, nt, rel, mx, "FAIL" if bad else "ok"))
        return good

    ok &= compare(grad_c, True)
    # sensitivity: a gradient off by 0.1% in any single block must be caught
    for n, lo, hi in zip(names, [L[n] for n in names], ends):
        g2 = grad_c.copy()
        g2[lo:hi] *= 1.001
        if compare(g2, False):
            print("FAIL: a 0.1%% error in %s would go unnoticed" % n)
            ok = False
    print("torch_grad: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
