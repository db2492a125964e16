#!/usr/bin/python3
"""Reference forward pass of model/arch.h in PyTorch (python/interestd_torch),
for tests/integration/test_torch_forward.c.

  torch_forward.py OUTDIR SEED gen|check [v1|experts|file] [MODEL.ixm]

v1 (the default) and experts: random weights with the shift unit and the
float32 head, the v1 head (vocabulary/copy gate) or the head with experts
(ARCH_F_EXPERTS, model file version 2: p_next = sum_e pi_e p_e with pi =
softmax(W_m h + b_m) over vocabulary, copy, recency beta^rank and the decayed
frequency of the recent slots, arch.h "Experts"). file: the model is MODEL.ixm (e.g. one trained by
`interestctl train` or by `python3 -m interestd_torch.train`) and is copied
to OUTDIR/model.ixm through load_ixm/save_ixm (so the copy must be served
exactly like the original). Both modes write into OUTDIR (the same bytes for
the same SEED and model):
  model.ixm     the model, written by interestd_torch.save_ixm
  events.bin    the event sequence: per event <QQQqii (user, item, category,
                ts_ms, action, pad)
  raw.bin       per event: x[I] (the input built here), then h[H] c[H] of
                torch.nn.LSTM's own float32 trajectory (no rounding): the
                reference of the generic cell
  dims.txt      "V H EC EA I K n_events flags"
"check" also reads cstates.bin, the C serving path's state per event (float32
values of its bf16 h, c): h[H] c[H] before the event, h[H] c[H] after it, and
writes expected.bin, per event (float32 unless noted):
                h[H] c[H]: torch.nn.LSTM's step from the C state before the
                event (teacher forcing; not rounded: the C test checks that
                the stored bf16 values are its rounding), with the serving
                cell's rounding (IxModel.serving_weights: W_hh and the
                time-feature columns of W_ih rounded to bf16, the time
                features of x rounded to bf16; embeddings, biases float32),
                q[V] (p_next per vocabulary index; q[0] = the "other" mass),
                oov_cat[K] (u64) oov_p[K], fluctuation, shift_prob,
                p_target (NLL rule for the user's next category; -1 if none),
                all from the package's Head on the C state's h after the event
                (W_v rounded to bf16 when the file has ARCH_F_HEAD_BF16),
                h_wrong[H] (the step with the weights read with gates
                (i, g, f, o): a negative control the C forward must NOT match)
and checks that the package's own serving cell (Cell.step) gives torch.nn.LSTM's
step within 1e-6.
"""
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from interestd_torch import Dims, IxModel, ModelFile, UserState, layout, load_ixm, save_ixm  # noqa: E402
from interestd_torch.ixm import F_EXPERTS, F_SHIFT_UNIT, K, N_TIME, input_size  # noqa: E402
from interestd_torch.model import Head, recent_tensors  # noqa: E402

torch.set_num_threads(1)
OUT = sys.argv[1]
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 1
MODE = sys.argv[3] if len(sys.argv) > 3 else "gen"
VARIANT = sys.argv[4] if len(sys.argv) > 4 else "v1"
MODEL = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
assert MODE in ("gen", "check"), MODE
assert VARIANT in ("v1", "experts", "file") and (VARIANT == "file") == (MODEL is not None), VARIANT
rng = np.random.default_rng(SEED)

if MODEL is None:
    V, H, EC, EA = 120, 64, 32, 8
    d = Dims(V, H, EC, EA, input_size(EC, EA), F_SHIFT_UNIT | (F_EXPERTS if VARIANT == "experts" else 0))
    lay, n = layout(d)
    params = (rng.standard_normal(n) * 0.25).astype(np.float32)
    mf = ModelFile(d, float(np.float32(3600.0 * 6)),
                   np.array([0] + [1000 + 3 * j for j in range(1, V)], dtype=np.uint64), params,
                   b"torch_forward.py reference model")
    blk = mf.blocks()
    blk["emb_cat"][:] *= 3.0
    blk["copy_bp"][:] = np.linspace(1.0, -1.0, K, dtype=np.float32)
    blk["copy_wf"][:] = 0.7
    if VARIANT == "experts":
        blk["x_beta"][:] = 0.6
        blk["x_gamma"][:] = 0.8
        blk["x_hl"][:] = 7200.0
else:
    mf = load_ixm(MODEL)
save_ixm(os.path.join(OUT, "model.ixm"), mf)
d = mf.dims
V, H, EC, EA, I = d.V, d.H, d.EC, d.EA, d.I
G = 4 * H
model = IxModel.from_file(mf)
vocab = mf.vocab

# ---- events: 8 users interleaved, repeats, unknown categories, odd actions ----
users = [11, 22, 33, 44, 55, 66, 77, 88]
known = [int(c) for c in vocab[1:min(V, 25)]]
OOV_BASE = (1 << 62) + 90000  # large ids: real data has 19-digit categories
while any(model.vocab_index(OOV_BASE + j) for j in range(30)):
    OOV_BASE += 1000003
events = []
t0 = 1511700000000
for u in users:
    t = t0 + int(rng.integers(0, 100000))
    cat = known[int(rng.integers(0, len(known)))]
    for e in range(int(rng.integers(20, 45))):
        r = rng.random()
        if e > 0 and r < 0.45:
            pass  # repeat
        elif r < 0.6:
            cat = OOV_BASE + int(rng.integers(0, 30))  # out of vocabulary
        else:
            cat = known[int(rng.integers(0, len(known)))]
        t += int(rng.choice([3000, 45000, 700000, 9000000, 200000000]))
        act = int(rng.choice([0, 0, 0, 1, 2, 3, 4, 9]))
        events.append((u, int(rng.integers(1, 1 << 40)), cat, t, act))
events.sort(key=lambda ev: (ev[3], ev[0]))
with open(os.path.join(OUT, "events.bin"), "wb") as f:
    for u, item, cat, ts, act in events:
        f.write(struct.pack("<QQQqii", u, item, cat, ts, act, 0))


# ---- torch.nn.LSTM references: the generic cell, the serving cell, a wrong gate order ----
def make_lstm(w_ih, w_hh, b_ih, b_hh):
    m = torch.nn.LSTM(I, H, batch_first=True)
    with torch.no_grad():
        for dst, src in ((m.weight_ih_l0, w_ih), (m.weight_hh_l0, w_hh), (m.bias_ih_l0, b_ih),
                         (m.bias_hh_l0, b_hh)):
            dst.copy_(src)
    return m


cell = model.cell
b_ih, b_hh = cell.b_ih.detach(), cell.b_hh.detach()
lstm = make_lstm(cell.w_ih.detach(), cell.w_hh.detach(), b_ih, b_hh)
perm = np.concatenate([np.arange(0, H), np.arange(2 * H, 3 * H), np.arange(H, 2 * H), np.arange(3 * H, 4 * H)])
W_ih_s, W_hh_s, Wv_s = model.serving_weights()
lstm_s = make_lstm(W_ih_s, W_hh_s, b_ih, b_hh)
lstm_s_wrong = make_lstm(W_ih_s[perm], W_hh_s[perm], b_ih[perm], b_hh[perm])
hd = model.head
TS = slice(EC + EA, EC + EA + N_TIME)


def js(pn, pl):
    tot, inside = 0.0, 0.0
    for p, q in zip(pn, pl):
        inside += p
        if p > 0: tot += 0.5 * p * math.log2(2 * p / (p + q))
        if q > 0: tot += 0.5 * q * math.log2(2 * q / (p + q))
    if 1 - inside > 0: tot += 0.5 * (1 - inside)
    return min(max(tot, 0.0), 1.0)


next_cat = {}
for i, ev in enumerate(events):
    for j in range(i + 1, len(events)):
        if events[j][0] == ev[0]: next_cat[i] = events[j][2]; break

st = {u: UserState() for u in users}
hc = {u: (torch.zeros(1, 1, H), torch.zeros(1, 1, H)) for u in users}
cst = None
if MODE == "check":
    cst = np.fromfile(os.path.join(OUT, "cstates.bin"), dtype=np.float32).reshape(len(events), 4 * H)
out = open(os.path.join(OUT, "expected.bin"), "wb") if MODE == "check" else None
raw = open(os.path.join(OUT, "raw.bin"), "wb")
e_cell = 0.0
with torch.no_grad():
    for i, ev in enumerate(events):
        u, item, cat, ts, act = ev
        s = st[u]
        idx = model.vocab_index(cat)
        a = act if 0 <= act < 5 else 4
        tf = torch.from_numpy(s.time_features(cat, ts))
        x = model.inputs(torch.tensor(idx), torch.tensor(a), tf)
        _, hc[u] = lstm(x.view(1, 1, I), hc[u])  # torch's own float32 trajectory
        raw.write(x.numpy().astype(np.float32).tobytes())
        raw.write(hc[u][0].view(H).numpy().astype(np.float32).tobytes())
        raw.write(hc[u][1].view(H).numpy().astype(np.float32).tobytes())
        s.advance(cat, ts, idx, model.half_life_s, model.experts())
        if out is None:
            continue
        row = torch.from_numpy(cst[i].copy())
        hpre, cpre = row[:H], row[H:2 * H]
        xs = model.inputs(torch.tensor(idx), torch.tensor(a), tf, round_time=True)
        _, (h1, c1) = lstm_s(xs.view(1, 1, I), (hpre.view(1, 1, H), cpre.view(1, 1, H)))
        _, (hw, _) = lstm_s_wrong(xs.view(1, 1, I), (hpre.view(1, 1, H), cpre.view(1, 1, H)))
        xproj = torch.nn.functional.linear(xs, W_ih_s, b_ih + b_hh)
        hp, cp = cell.step(xproj, hpre, cpre, W_hh_s)  # the package's serving cell
        e_cell = max(e_cell, float((hp - h1.view(H)).abs().max()), float((cp - c1.view(H)).abs().max()))
        h = row[2 * H:3 * H]  # the C state's h after the event
        rec_idx, rec_lc, rec_mask, rec_dec = recent_tensors(s.recent)
        pv, g, ms = hd.parts(h.unsqueeze(0), rec_lc, rec_mask, Wv_s, rec_dec)
        q, oov = Head.next_dist(pv, g, ms, rec_idx)
        q, oov, g, pv = q[0], oov[0], float(g[0]), pv[0]
        oov_cat = np.zeros(K, dtype=np.uint64)
        oov_p = np.zeros(K, dtype=np.float32)
        for k, (rc, cnt, ix, _) in enumerate(s.recent):
            if ix == 0:
                oov_cat[k], oov_p[k] = rc, float(oov[k])
        pn = []
        for pcat, w, pidx in s.prof:
            if pidx > 0: pn.append(float(q[pidx]))
            else: pn.append(float(sum(oov_p[k] for k in range(K) if int(oov_cat[k]) == pcat and oov_p[k] > 0)))
        wsum = sum(float(e[1]) for e in s.prof)
        pl = [float(e[1]) / wsum for e in s.prof]
        fl = js(pn, pl)
        derived = min(max(1.0 - sum(pn), 0.0), 1.0)
        shift = derived
        if hd.shift_unit:
            dcl = min(max(derived, 1e-6), 1 - 1e-6)
            shift = float(torch.sigmoid(hd.shift_w @ h + hd.shift_wd * math.log(dcl / (1 - dcl)) + hd.shift_b))
        pt = -1.0
        if i in next_cat:
            c = next_cat[i]; ci = model.vocab_index(c)
            if ci > 0: pt = float(q[ci])
            elif any(r[0] == c for r in s.recent):
                pt = float(sum(oov_p[k] for k in range(K) if int(oov_cat[k]) == c))
            else: pt = g * float(pv[0])
        out.write(h1.view(H).numpy().astype(np.float32).tobytes())
        out.write(c1.view(H).numpy().astype(np.float32).tobytes())
        out.write(q.numpy().astype(np.float32).tobytes())
        out.write(oov_cat.tobytes()); out.write(oov_p.tobytes())
        out.write(struct.pack("<fff", fl, shift, pt))
        out.write(hw.view(H).numpy().astype(np.float32).tobytes())
raw.close()
if out is not None:
    out.close()
    if not e_cell < 1e-6:
        sys.exit(f"torch_forward.py: the package's Cell.step differs from torch.nn.LSTM by {e_cell:.2e}")
with open(os.path.join(OUT, "dims.txt"), "w") as f:
    f.write(f"{V} {H} {EC} {EA} {I} {K} {len(events)} {d.flags}\n")
print(f"torch_forward.py {MODE} {VARIANT}: {len(events)} events, {len(users)} users, V={V} H={H} I={I} "
      f"flags={d.flags:#x} ({MODEL or 'random weights'}), torch {torch.__version__}"
      + (f"; package cell vs nn.LSTM {e_cell:.1e}" if out is not None else ""))
