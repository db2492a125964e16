#!/usr/bin/python3
"""One training step's gradient of `interestctl train` against torch.autograd.

Reads PREFIX.json (dims, layout, the chunks' (step, slot, reset) rows and the
slots' users' events), PREFIX.params.f32 and PREFIX.grad.f32 as written by
`interestctl train --grad-dump PREFIX --grad-chunk N`. Re-implements the model
of model/arch.h independently in float64 torch (features from the raw events,
recent-list bookkeeping, LSTM cell, the head: gated vocab/copy (v1) or the
mixture of experts (ARCH_F_EXPERTS: vocab, copy, recency, decayed frequency
with learned weights softmax(W_m h + b_m)), the NLL rule),
replays chunks 0..N-1 without gradient (truncated BPTT carries h, c), takes
the mean NLL of chunk N and compares d loss / d params with the C gradient,
block by block: relative L2 error and max error relative to the block's
largest entry must both be <= 1e-4. Also checks that the comparison would
catch a gradient off by 0.1% in any block.
"""
import json
import math
import sys

import numpy as np
import torch

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
    G = 4 * H
    flat = torch.tensor(params_np.astype(np.float64), requires_grad=True)

    def blk(name, rows, cols=None):
        n = rows * (cols or 1)
        v = flat[L[name]:L[name] + n]
        return v.view(rows, cols) if cols else v

    emb_cat, emb_act = blk("emb_cat", V, EC), blk("emb_act", 5, EA)
    w_ih, w_hh = blk("w_ih", G, I), blk("w_hh", G, H)
    b_ih, b_hh = blk("b_ih", G), blk("b_hh", G)
    head_wv, head_bv = blk("head_wv", V, H), blk("head_bv", V)
    copy_wp, copy_bp, copy_wf = blk("copy_wp", K, H), blk("copy_bp", K), blk("copy_wf", 1)
    experts = meta.get("experts", 0) == 1
    if experts:
        mix_w, mix_b = blk("mix_w", 4, H), blk("mix_b", 4)
        x_beta = float(params_np[L["x_beta"]])
        x_gamma = float(params_np[L["x_gamma"]])
        x_hl = float(params_np[L["x_hl"]])
    else:
        gate_wg, gate_bg = blk("gate_wg", H), blk("gate_bg", 1)

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
                    slot[b] = dict(user=next_user, pos=0, recent=[], decw=[], n=0, prev_ts=0,
                                   prev_cat=0, h=torch.zeros(H, dtype=torch.float64),
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
                # input features (arch.h)
                tf = [0.0] * 7
                if st["n"] == 0:
                    tf[4] = 1.0
                else:
                    gap = max(ts - st["prev_ts"], 0) / 1000.0
                    tf[0] = math.log1p(gap) / 12.0
                    tf[1] = 1.0 if gap < 60 else 0.0
                    tf[2] = 1.0 if gap < 3600 else 0.0
                    tf[3] = 1.0 if gap > 86400 else 0.0
                    tf[5] = 1.0 if cat == st["prev_cat"] else 0.0
                tf[6] = math.log1p(st["n"]) / 8.0
                pad = I - EC - EA - 7
                x = torch.cat([emb_cat[idx], emb_act[act],
                               torch.tensor(tf + [0.0] * pad, dtype=torch.float64)])
                pre = w_ih @ x + b_ih + w_hh @ st["h"] + b_hh
                ig, fg = torch.sigmoid(pre[:H]), torch.sigmoid(pre[H:2 * H])
                gg, og = torch.tanh(pre[2 * H:3 * H]), torch.sigmoid(pre[3 * H:])
                st["c"] = fg * st["c"] + ig * gg
                st["h"] = og * torch.tanh(st["c"])
                # state advance: recent list (move to front, count+1; new: count 1);
                # the decay expert's weights: * gamma 2^(-gap/hl), then +1 (new: 1)
                rec, dw = st["recent"], st["decw"]
                if experts and st["n"] > 0:
                    f = x_gamma
                    if x_hl > 0 and ts > st["prev_ts"]:
                        f *= 2.0 ** (-(ts - st["prev_ts"]) / 1000.0 / x_hl)
                    dw[:] = [w * f for w in dw]
                hit = [k for k, r in enumerate(rec) if r[0] == cat]
                if hit:
                    e = rec.pop(hit[0])
                    e = (e[0], e[1] + 1, e[2])
                    w = dw.pop(hit[0]) + 1.0
                else:
                    e = (cat, 1, idx)
                    w = 1.0
                    if len(rec) == K:
                        rec.pop()
                        dw.pop()
                rec.insert(0, e)
                dw.insert(0, w)
                st["n"] += 1
                st["prev_ts"], st["prev_cat"] = ts, cat
                st["pos"] += 1
                if not last or st["pos"] >= len(evs):
                    continue
                # head and the NLL rule for the next event's category
                tcat, tidx = evs[st["pos"]][0], evs[st["pos"]][1]
                h = st["h"]
                pv = torch.softmax(head_wv @ h + head_bv, 0)
                cnt = torch.tensor([math.log1p(r[1]) for r in rec], dtype=torch.float64)
                sc = copy_wp[:len(rec)] @ h + copy_bp[:len(rec)] + copy_wf[0] * cnt
                pc = torch.softmax(sc, 0)
                if experts:
                    pi = torch.softmax(mix_w @ h + mix_b, 0)
                    g = pi[0]
                    rw = torch.tensor([x_beta ** k for k in range(len(rec))], dtype=torch.float64)
                    dwt = torch.tensor(dw, dtype=torch.float64)
                    slot_p = pi[1] * pc + pi[2] * rw / rw.sum() + pi[3] * dwt / dwt.sum()
                else:
                    g = torch.sigmoid(gate_wg @ h + gate_bg[0])
                    slot_p = (1 - g) * pc
                kk = [k for k, r in enumerate(rec) if r[0] == tcat]
                if tidx > 0:
                    p = g * pv[tidx]
                    if kk:
                        p = p + slot_p[kk[0]]
                        stats["copied"] += 1
                elif kk:
                    p = slot_p[kk[0]]
                    stats["oov_copied"] += 1
                else:
                    p = g * pv[0]
                    stats["oov_other"] += 1
                term = -torch.log(p)
                loss_sum = term if loss_sum is None else loss_sum + term
                stats["targets"] += 1
    assert stats["targets"] == meta["targets"], (stats, meta["targets"])
    loss = loss_sum / stats["targets"]
    loss.backward()
    grad_t = flat.grad.numpy()
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
             "copy_wp", "copy_bp", "copy_wf"]
    names += ["mix_w", "mix_b"] if experts else ["gate_wg", "gate_bg"]
    ends = [L[n] for n in names[1:]] + [L["x_beta"] if experts else L["total"]]
    if experts:
        # the fixed expert constants are not trained: their gradient is zero
        fixed = grad_c[L["x_beta"]:L["total"]]
        if np.any(fixed != 0):
            print("FAIL: gradient on the fixed expert constants: %s" % fixed)
            ok = False

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
