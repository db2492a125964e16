#!/usr/bin/python3
"""Reference forward pass of model/arch.h in PyTorch, for
tests/integration/test_torch_forward.c.

  torch_forward.py OUTDIR SEED gen|check [v1|experts]

v1 (the default): the vocabulary/copy gate; experts: the head with experts
(ARCH_F_EXPERTS, model file version 2: p_next = sum_e pi_e p_e with
pi = softmax(W_m h + b_m) over vocabulary, copy, recency beta^rank and the
decayed frequency of the recent slots, arch.h "Experts").

Both modes write into OUTDIR (the same bytes for the same SEED):
  model.ixm     random weights in the model file format of model/modelfile.h
                (written here independently, so the format is checked too)
  events.bin    the event sequence: per event <QQQqii (user, item, category,
                ts_ms, action, pad)
  raw.bin       per event: x[I] (the input built here), then h[H] c[H] of
                torch.nn.LSTM's own float32 trajectory (no rounding): the
                reference of the generic cell
  dims.txt      "V H EC EA I K n_events"
"check" also reads cstates.bin, the C serving path's state per event (float32
values of its bf16 h, c): h[H] c[H] before the event, h[H] c[H] after it, and
writes expected.bin, per event (float32 unless noted):
                h[H] c[H]: torch.nn.LSTM's step from the C state before the
                event (teacher forcing; not rounded: the C test checks that
                the stored bf16 values are its rounding), with the serving
                cell's rounding (model/model.c): W_hh and the time-feature
                columns of W_ih rounded to bf16, the time features of x
                rounded to bf16 (embeddings, biases float32),
                q[V] (p_next per vocabulary index; q[0] = the "other" mass),
                oov_cat[K] (u64) oov_p[K], fluctuation, shift_prob,
                p_target (NLL rule for the user's next category; -1 if none),
                all from the C state's h after the event,
                h_wrong[H] (the step with the weights read with gates
                (i, g, f, o): a negative control the C forward must NOT match)
"""
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch

torch.set_num_threads(1)
OUT = sys.argv[1]
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 1
MODE = sys.argv[3] if len(sys.argv) > 3 else "gen"
assert MODE in ("gen", "check"), MODE
VARIANT = sys.argv[4] if len(sys.argv) > 4 else "v1"
assert VARIANT in ("v1", "experts"), VARIANT
EXPERTS = VARIANT == "experts"
rng = np.random.default_rng(SEED)

V, H, EC, EA, NT, K, P = 120, 64, 32, 8, 7, 16, 16
I = (EC + EA + NT + 7) // 8 * 8
FLAGS = 1 | (4 if EXPERTS else 0)  # ARCH_F_SHIFT_UNIT, ARCH_F_EXPERTS
HALF_LIFE = np.float32(3600.0 * 6)
G = 4 * H

# ---- flat layout (model/arch.h) ----
NX = 4  # experts: vocabulary, copy, recency, decay
sizes = [("emb_cat", V * EC), ("emb_act", 5 * EA), ("w_ih", G * I), ("w_hh", G * H),
         ("b_ih", G), ("b_hh", G), ("head_wv", V * H), ("head_bv", V), ("copy_wp", K * H),
         ("copy_bp", K), ("copy_wf", 1)]
if EXPERTS:
    sizes += [("mix_w", NX * H), ("mix_b", NX), ("x_beta", 1), ("x_gamma", 1), ("x_hl", 1)]
else:
    sizes += [("gate_wg", H), ("gate_bg", 1)]
sizes += [("shift_w", H), ("shift_wd", 1), ("shift_b", 1)]
off, n = {}, 0
for name, sz in sizes:
    off[name] = (n, sz)
    n += sz
params = (rng.standard_normal(n) * 0.25).astype(np.float32)
def par(name, shape=None):
    o, sz = off[name]
    a = params[o:o + sz]
    return a.reshape(shape) if shape else a
par("emb_cat")[:] *= 3.0
par("copy_bp")[:] = np.linspace(1.0, -1.0, K, dtype=np.float32)
par("copy_wf")[:] = 0.7
if EXPERTS:
    par("x_beta")[:] = 0.6
    par("x_gamma")[:] = 0.8
    par("x_hl")[:] = 7200.0
vocab = np.array([0] + [1000 + 3 * j for j in range(1, V)], dtype=np.uint64)
idx_of = {int(c): j for j, c in enumerate(vocab) if j > 0}

note = b"torch_forward.py reference model"
hdr = struct.pack("<8sI6IfQI", b"IXMODEL1", 2 if EXPERTS else 1, V, H, EC, EA, I, FLAGS, float(HALF_LIFE), n, len(note))
body = hdr + note + vocab.tobytes() + params.tobytes()
with open(os.path.join(OUT, "model.ixm"), "wb") as f:
    f.write(body + struct.pack("<I", zlib.crc32(body) & 0xffffffff))

# ---- events: 8 users interleaved, repeats, unknown categories, odd actions ----
users = [11, 22, 33, 44, 55, 66, 77, 88]
events = []
t0 = 1511700000000
for u in users:
    t = t0 + int(rng.integers(0, 100000))
    cat = int(vocab[rng.integers(1, V)])
    for e in range(int(rng.integers(20, 45))):
        r = rng.random()
        if e > 0 and r < 0.45:
            pass  # repeat
        elif r < 0.6:
            cat = 90000 + int(rng.integers(0, 30))  # out of vocabulary
        else:
            cat = int(vocab[rng.integers(1, 25)])
        t += int(rng.choice([3000, 45000, 700000, 9000000, 200000000]))
        act = int(rng.choice([0, 0, 0, 1, 2, 3, 4, 9]))
        events.append((u, int(rng.integers(1, 1 << 40)), cat, t, act))
events.sort(key=lambda ev: (ev[3], ev[0]))
with open(os.path.join(OUT, "events.bin"), "wb") as f:
    for u, item, cat, ts, act in events:
        f.write(struct.pack("<QQQqii", u, item, cat, ts, act, 0))

# ---- torch modules ----
def make_lstm(w_ih, w_hh, b_ih, b_hh):
    m = torch.nn.LSTM(I, H, batch_first=True)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.from_numpy(w_ih))
        m.weight_hh_l0.copy_(torch.from_numpy(w_hh))
        m.bias_ih_l0.copy_(torch.from_numpy(b_ih))
        m.bias_hh_l0.copy_(torch.from_numpy(b_hh))
    return m
W_ih, W_hh = par("w_ih", (G, I)), par("w_hh", (G, H))
b_ih, b_hh = par("b_ih"), par("b_hh")
lstm = make_lstm(W_ih, W_hh, b_ih, b_hh)
perm = np.concatenate([np.arange(0, H), np.arange(2 * H, 3 * H), np.arange(H, 2 * H), np.arange(3 * H, 4 * H)])
lstm_wrong = make_lstm(W_ih[perm], W_hh[perm], b_ih[perm], b_hh[perm])

def bf16(a):
    """float32 -> bfloat16 -> float32, nearest even, subnormals to zero (arch.h)"""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7fff + ((u >> 16) & 1)) >> 16) << 16
    r = np.where((u & 0x7f800000) == 0, u & 0x80000000, r)
    return r.astype(np.uint32).view(np.float32).reshape(np.shape(a))

TS = slice(EC + EA, EC + EA + NT)  # the time features of x and their W_ih columns
W_ih_s = W_ih.copy()
W_ih_s[:, TS] = bf16(W_ih[:, TS])
W_hh_s = bf16(W_hh)
lstm_s = make_lstm(W_ih_s, W_hh_s, b_ih, b_hh)
lstm_s_wrong = make_lstm(W_ih_s[perm], W_hh_s[perm], b_ih[perm], b_hh[perm])
Wv = torch.from_numpy(par("head_wv", (V, H)))
bv = torch.from_numpy(par("head_bv"))
Pk = torch.from_numpy(par("copy_wp", (K, H)))
bp = torch.from_numpy(par("copy_bp"))
wf = float(par("copy_wf")[0])
if EXPERTS:
    Wm, bm = torch.from_numpy(par("mix_w", (NX, H))), torch.from_numpy(par("mix_b"))
    x_beta, x_gamma, x_hl = (float(par(n)[0]) for n in ("x_beta", "x_gamma", "x_hl"))
else:
    wg, bg = torch.from_numpy(par("gate_wg")), float(par("gate_bg")[0])
ws, wd, bs = torch.from_numpy(par("shift_w")), float(par("shift_wd")[0]), float(par("shift_b")[0])

class U:
    def __init__(self):
        self.n = 0; self.prev_cat = 0; self.prev_ts = 0
        self.recent = []  # [cat, count, idx, dec_w (f32)], most recent first
        self.prof = []    # [cat, weight(f32), idx]
        self.prof_ts = 0
        self.h = torch.zeros(1, 1, H); self.c = torch.zeros(1, 1, H)

st = {u: U() for u in users}
f32 = np.float32

def features(s, ev):
    u, item, cat, ts, act = ev
    idx = idx_of.get(cat, 0)
    x = np.zeros(I, dtype=np.float32)
    x[:EC] = par("emb_cat", (V, EC))[idx]
    a = act if 0 <= act < 5 else 4
    x[EC:EC + EA] = par("emb_act", (5, EA))[a]
    t = np.zeros(NT, dtype=np.float32)
    if s.n == 0:
        t[4] = 1
    else:
        gap = max(ts - s.prev_ts, 0) / 1000.0
        gap = f32(gap)
        t[0] = f32(np.log1p(gap)) / f32(12)
        t[1] = gap < 60; t[2] = gap < 3600; t[3] = gap > 86400
        t[5] = cat == s.prev_cat
    t[6] = f32(np.log1p(f32(s.n))) / f32(8)
    x[EC + EA:EC + EA + NT] = t
    return x, idx

def advance(s, ev, idx):
    u, item, cat, ts, act = ev
    if EXPERTS and s.n > 0:
        # the decay expert's weights: * gamma 2^(-gap_s / half-life) in double, stored f32
        fac = x_gamma
        if x_hl > 0 and ts > s.prev_ts:
            fac *= 2.0 ** (-((ts - s.prev_ts) / 1000.0) / x_hl)
        for e in s.recent: e[3] = f32(float(e[3]) * fac)
    for r, e in enumerate(s.recent):
        if e[0] == cat:
            e[1] += 1; e[3] = f32(e[3] + f32(1)); s.recent.insert(0, s.recent.pop(r)); break
    else:
        s.recent.insert(0, [cat, 1, idx, f32(1)]); del s.recent[K:]
    if s.prof and ts > s.prof_ts:
        fac = f32(2.0 ** (-((ts - s.prof_ts) / 1000.0) / float(HALF_LIFE)))
        for e in s.prof: e[1] = f32(e[1] * fac)
    if ts > s.prof_ts or not s.prof: s.prof_ts = ts
    for e in s.prof:
        if e[0] == cat: e[1] = f32(e[1] + f32(1)); break
    else:
        if len(s.prof) < P: s.prof.append([cat, f32(1), idx])
        else:
            j = min(range(P), key=lambda j: (s.prof[j][1], j)); s.prof[j] = [cat, f32(1), idx]
    s.prev_cat, s.prev_ts = cat, ts
    s.n += 1

def head(s, h):
    z = Wv @ h + bv
    pv = torch.softmax(z, 0)
    nrec = len(s.recent)
    sc = torch.stack([Pk[k] @ h + bp[k] + wf * math.log1p(s.recent[k][1]) for k in range(nrec)])
    pc = torch.softmax(sc, 0)
    if EXPERTS:
        pi = torch.softmax(Wm @ h + bm, 0)
        g = pi[0]
        prec = torch.tensor([x_beta ** k for k in range(nrec)], dtype=torch.float32)
        prec = prec / prec.sum()
        pdec = torch.tensor([float(e[3]) for e in s.recent], dtype=torch.float32)
        pdec = pdec / pdec.sum()
        mslot = pi[1] * pc + pi[2] * prec + pi[3] * pdec
    else:
        g = torch.sigmoid(wg @ h + bg)
        mslot = (1 - g) * pc
    q = g * pv
    oov_cat = np.zeros(K, dtype=np.uint64); oov_p = np.zeros(K, dtype=np.float32)
    for k in range(nrec):
        cat, cnt, idx = s.recent[k][:3]
        if idx > 0: q[idx] = q[idx] + mslot[k]
        else: oov_cat[k] = cat; oov_p[k] = float(mslot[k])
    return q, oov_cat, oov_p, g, pv

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

cst = None
if MODE == "check":
    cst = np.fromfile(os.path.join(OUT, "cstates.bin"), dtype=np.float32).reshape(len(events), 4 * H)
out = open(os.path.join(OUT, "expected.bin"), "wb") if MODE == "check" else None
raw = open(os.path.join(OUT, "raw.bin"), "wb")
with torch.no_grad():
    for i, ev in enumerate(events):
        s = st[ev[0]]
        x, idx = features(s, ev)
        xt = torch.from_numpy(x).view(1, 1, I)
        _, (s.h, s.c) = lstm(xt, (s.h, s.c))  # torch's own float32 trajectory
        raw.write(x.tobytes())
        raw.write(s.h.view(H).numpy().astype(np.float32).tobytes())
        raw.write(s.c.view(H).numpy().astype(np.float32).tobytes())
        advance(s, ev, idx)
        if out is None:
            continue
        row = torch.from_numpy(cst[i].copy())
        hc_pre = (row[:H].view(1, 1, H), row[H:2 * H].view(1, 1, H))
        xs = x.copy()
        xs[TS] = bf16(x[TS])
        xst = torch.from_numpy(xs).view(1, 1, I)
        _, (h1, c1) = lstm_s(xst, hc_pre)
        _, (hw, _) = lstm_s_wrong(xst, hc_pre)
        h = row[2 * H:3 * H]  # the C state's h after the event
        q, oov_cat, oov_p, g, pv = head(s, h)
        pn = []
        for cat, w, pidx in s.prof:
            if pidx > 0: pn.append(float(q[pidx]))
            else: pn.append(float(sum(oov_p[k] for k in range(K) if oov_cat[k] == cat and oov_p[k] > 0)))
        wsum = sum(float(e[1]) for e in s.prof)
        pl = [float(e[1]) / wsum for e in s.prof]
        fl = js(pn, pl)
        derived = min(max(1.0 - sum(pn), 0.0), 1.0)
        dcl = min(max(derived, 1e-6), 1 - 1e-6)
        shift = float(torch.sigmoid(ws @ h + wd * math.log(dcl / (1 - dcl)) + bs))
        pt = -1.0
        if i in next_cat:
            c = next_cat[i]; ci = idx_of.get(c, 0)
            if ci > 0: pt = float(q[ci])
            elif any(r[0] == c for r in s.recent):
                pt = float(sum(oov_p[k] for k in range(K) if oov_cat[k] == c))
            else: pt = float(g * pv[0])
        out.write(h1.view(H).numpy().astype(np.float32).tobytes())
        out.write(c1.view(H).numpy().astype(np.float32).tobytes())
        out.write(q.numpy().astype(np.float32).tobytes())
        out.write(oov_cat.tobytes()); out.write(oov_p.tobytes())
        out.write(struct.pack("<fff", fl, shift, pt))
        out.write(hw.view(H).numpy().astype(np.float32).tobytes())
raw.close()
if out is not None:
    out.close()
with open(os.path.join(OUT, "dims.txt"), "w") as f:
    f.write(f"{V} {H} {EC} {EA} {I} {K} {len(events)}\n")
print(f"torch_forward.py {MODE} {VARIANT}: {len(events)} events, {len(users)} users, V={V} H={H} I={I}, torch {torch.__version__}")
