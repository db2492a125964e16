"""The model of model/arch.h as a torch.nn.Module.

Components, each its own module so a new head can replace one piece:
  IxModel.emb_cat, IxModel.emb_act   category and action embeddings (features)
  Cell                               the LSTM cell, PyTorch nn.LSTM layout (i, f, g, o)
  Head                               v1: gated mixture of a vocabulary softmax and a
                                     copy distribution over the recent list
  ExpertsHead                        ARCH_F_EXPERTS: learned mixture of the vocabulary,
                                     copy, recency and decayed-frequency experts
  UserState                          the per-user state bookkeeping of arch.h
                                     (recent list, profile, previous event)
Training computes in float32 like `interestctl train`; `serve_step` applies the
serving roundings of model/model.c (bf16 h and c, bf16 W_hh and time-feature
columns, bf16 time features, bf16 W_v when the file has ARCH_F_HEAD_BF16)."""
import math

import numpy as np
import torch
from torch import nn

from .ixm import (F_EXPERTS, F_HEAD_BF16, F_SHIFT_UNIT, K, N_ACTIONS, N_EXPERTS, N_TIME, P, Dims,
                  ModelFile, layout)


def bf16(a):
    """float32 -> bfloat16 -> float32, nearest even, subnormals to zero
    (kern_bf16_from_f32). Works on NumPy arrays and torch tensors."""
    if isinstance(a, torch.Tensor):
        return torch.from_numpy(bf16(a.detach().cpu().numpy())).to(a.device)
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7fff + ((u >> 16) & 1)) >> 16) << 16
    r = np.where((u & 0x7f800000) == 0, u & 0x80000000, r)
    return r.astype(np.uint32).view(np.float32).reshape(np.shape(a))


class UserState:
    """arch_state_t without h and c: what arch_features reads and
    arch_state_advance writes, with float32 arithmetic where arch.c has it.
    recent entries are [cat, count, idx, dec_w]; dec_w (float32) is the decay
    expert's weight, kept only when advance() is given the experts' constants."""
    __slots__ = ("n", "prev_cat", "prev_ts", "recent", "prof", "prof_ts")

    def __init__(self):
        self.n = 0
        self.prev_cat = 0
        self.prev_ts = 0
        self.recent = []  # [cat, count, idx], most recent first (at most K)
        self.prof = []    # [cat, weight (float32), idx] (at most P)
        self.prof_ts = 0

    def time_features(self, cat, ts):
        """arch_time_features: the N_TIME features of an event before it is applied."""
        f32 = np.float32
        t = np.zeros(N_TIME, dtype=np.float32)
        if self.n == 0:
            t[4] = 1
        else:
            gap = f32(max(ts - self.prev_ts, 0) / 1000.0)
            t[0] = f32(np.log1p(gap)) / f32(12)
            t[1] = gap < 60
            t[2] = gap < 3600
            t[3] = gap > 86400
            t[5] = cat == self.prev_cat
        t[6] = f32(np.log1p(f32(self.n))) / f32(8)
        return t

    def advance(self, cat, ts, idx, half_life_s, experts=None):
        """arch_state_advance (recent list, profile, prev_*, n); experts =
        (gamma, half_life_s) of the decay expert when the model has them."""
        f32 = np.float32
        if experts is not None and self.n > 0:
            gamma, hl = experts
            fac = gamma
            if hl > 0 and ts > self.prev_ts:
                fac *= 2.0 ** (-((ts - self.prev_ts) / 1000.0) / hl)
            for e in self.recent:
                e[3] = f32(float(e[3]) * fac)
        for r, e in enumerate(self.recent):
            if e[0] == cat:
                e[1] += 1
                e[3] = f32(e[3] + f32(1))
                self.recent.insert(0, self.recent.pop(r))
                break
        else:
            self.recent.insert(0, [cat, 1, idx, f32(1)])
            del self.recent[K:]
        if self.prof and ts > self.prof_ts:
            fac = f32(2.0 ** (-((ts - self.prof_ts) / 1000.0) / float(f32(half_life_s))))
            for e in self.prof:
                e[1] = f32(e[1] * fac)
        if ts > self.prof_ts or not self.prof:
            self.prof_ts = ts
        for e in self.prof:
            if e[0] == cat:
                e[1] = f32(e[1] + f32(1))
                break
        else:
            if len(self.prof) < P:
                self.prof.append([cat, f32(1), idx])
            else:
                j = min(range(P), key=lambda j: (self.prof[j][1], j))
                self.prof[j] = [cat, f32(1), idx]
        self.prev_cat, self.prev_ts = cat, ts
        self.n += 1


class Cell(nn.Module):
    """The LSTM cell: gates = W_ih x + b_ih + W_hh h + b_hh, order (i, f, g, o)."""

    def __init__(self, I, H):
        super().__init__()
        self.I, self.H = I, H
        self.w_ih = nn.Parameter(torch.zeros(4 * H, I))
        self.w_hh = nn.Parameter(torch.zeros(4 * H, H))
        self.b_ih = nn.Parameter(torch.zeros(4 * H))
        self.b_hh = nn.Parameter(torch.zeros(4 * H))

    def input_proj(self, x):
        """W_ih x + b_ih + b_hh for many rows at once (the part without h)."""
        return torch.nn.functional.linear(x, self.w_ih, self.b_ih + self.b_hh)

    def step(self, xproj, h, c, w_hh=None):
        gates = xproj + torch.nn.functional.linear(h, self.w_hh if w_hh is None else w_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class Head(nn.Module):
    """p(c) = g * softmax(W_v h + b_v)[idx(c)] [idx(c) != 0]
            + (1 - g) * sum_k softmax(s)_k [recent_k = c],
       s_k = P[k].h + b_p[k] + w_f log1p(cnt_k),  g = sigmoid(w_g.h + b_g);
    optional shift unit (ARCH_F_SHIFT_UNIT). The "other" mass g * p_vocab[0]
    is the probability of a target neither in the vocabulary nor recent."""

    def __init__(self, V, H, shift_unit=False):
        super().__init__()
        self.wv = nn.Parameter(torch.zeros(V, H))
        self.bv = nn.Parameter(torch.zeros(V))
        self.copy_wp = nn.Parameter(torch.zeros(K, H))
        self.copy_bp = nn.Parameter(torch.zeros(K))
        self.copy_wf = nn.Parameter(torch.zeros(1))
        self.gate_wg = nn.Parameter(torch.zeros(H))
        self.gate_bg = nn.Parameter(torch.zeros(1))
        self.shift_unit = shift_unit
        if shift_unit:
            self.shift_w = nn.Parameter(torch.zeros(H))
            self.shift_wd = nn.Parameter(torch.zeros(1))
            self.shift_b = nn.Parameter(torch.zeros(1))

    def vocab_copy(self, h, rec_logcnt, rec_mask, wv=None):
        """p_vocab [R, V] and p_copy [R, K] (0 on empty slots)."""
        z = torch.nn.functional.linear(h, self.wv if wv is None else wv, self.bv)
        pv = torch.softmax(z, dim=-1)
        s = torch.nn.functional.linear(h, self.copy_wp, self.copy_bp) + self.copy_wf * rec_logcnt
        s = s.masked_fill(~rec_mask, float("-inf"))
        pc = torch.softmax(s, dim=-1)
        return pv, torch.where(rec_mask, pc, torch.zeros_like(pc))

    def parts(self, h, rec_logcnt, rec_mask, wv=None, rec_dec=None):
        """Per row: p_vocab [R, V], the vocabulary's weight g [R] and the mass
        of each recent slot [R, K] (0 on empty slots): p(c) = g p_vocab[idx(c)]
        [idx(c) != 0] + the mass of c's slot."""
        pv, pc = self.vocab_copy(h, rec_logcnt, rec_mask, wv)
        g = torch.sigmoid(h @ self.gate_wg + self.gate_bg)
        return pv, g, (1 - g).unsqueeze(1) * pc

    @staticmethod
    def target_prob(pv, g, ms, tgt_idx, tgt_k):
        """The NLL rule's probability of the target: tgt_idx its vocab index,
        tgt_k its position in the recent list (-1 when not there)."""
        in_rec = tgt_k >= 0
        pv_t = pv.gather(1, tgt_idx.unsqueeze(1)).squeeze(1)
        vocab = torch.where((tgt_idx > 0) | ~in_rec, g * pv_t, torch.zeros_like(g))
        ms_t = ms.gather(1, tgt_k.clamp(min=0).unsqueeze(1)).squeeze(1)
        return vocab + torch.where(in_rec, ms_t, torch.zeros_like(g))

    @staticmethod
    def next_dist(pv, g, ms, rec_idx):
        """q [R, V]: p_next per vocabulary index (q[:, 0] = g * p_vocab[0]);
        oov [R, K]: the mass of recent categories outside the vocabulary."""
        q = g.unsqueeze(1) * pv
        cm = ms
        known = rec_idx > 0
        q = q.scatter_add(1, rec_idx, torch.where(known, cm, torch.zeros_like(cm)))
        q[:, 0] = g * pv[:, 0]
        return q, torch.where(known, torch.zeros_like(cm), cm)


class ExpertsHead(Head):
    """ARCH_F_EXPERTS: p_next(c) = sum_e pi_e p_e(c), pi = softmax(W_m h + b_m)
    over the vocabulary softmax, the copy softmax, recency (beta^rank over the
    filled slots) and the decayed frequency of the recent slots (dec_w).
    beta, gamma and the half-life are fixed constants stored with the model
    (buffers here: not trained)."""

    def __init__(self, V, H, shift_unit=False):
        super().__init__(V, H, shift_unit)
        del self.gate_wg, self.gate_bg
        self.mix_w = nn.Parameter(torch.zeros(N_EXPERTS, H))
        self.mix_b = nn.Parameter(torch.zeros(N_EXPERTS))
        self.register_buffer("x_beta", torch.zeros(1))
        self.register_buffer("x_gamma", torch.zeros(1))
        self.register_buffer("x_hl", torch.zeros(1))

    def decay_constants(self):
        """(gamma, half_life_s) for UserState.advance, as Python floats of the
        stored float32 values."""
        return float(self.x_gamma), float(self.x_hl)

    def parts(self, h, rec_logcnt, rec_mask, wv=None, rec_dec=None):
        pv, pc = self.vocab_copy(h, rec_logcnt, rec_mask, wv)
        pi = torch.softmax(torch.nn.functional.linear(h, self.mix_w, self.mix_b), dim=-1)
        # beta^k as model/head.c forms it: a float32 running product
        bk = np.ones(K, dtype=np.float32)
        for j in range(1, K):
            bk[j] = bk[j - 1] * np.float32(self.x_beta.item())
        bk = torch.from_numpy(bk).to(device=h.device, dtype=h.dtype)
        zero = torch.zeros_like(rec_logcnt)
        rw = torch.where(rec_mask, bk.expand_as(rec_logcnt), zero)
        prec = rw / rw.sum(-1, keepdim=True).clamp(min=1e-30)
        dw = torch.where(rec_mask, rec_dec.clamp(min=0), zero)
        sd = dw.sum(-1, keepdim=True)
        n = rec_mask.sum(-1, keepdim=True).clamp(min=1).to(h.dtype)
        pdec = torch.where(sd > 0, dw / sd.clamp(min=1e-30),
                           torch.where(rec_mask, 1.0 / n, zero))
        ms = pi[:, 1:2] * pc + pi[:, 2:3] * prec + pi[:, 3:4] * pdec
        return pv, pi[:, 0], ms


class IxModel(nn.Module):
    def __init__(self, dims=None, half_life_s=72.0 * 3600.0, vocab=None):
        super().__init__()
        d = dims or Dims()
        d.check()
        self.dims = d
        self.half_life_s = float(half_life_s)
        self.vocab = np.zeros(d.V, dtype=np.uint64) if vocab is None else np.asarray(vocab, np.uint64)
        self.emb_cat = nn.Parameter(torch.zeros(d.V, d.EC))
        self.emb_act = nn.Parameter(torch.zeros(N_ACTIONS, d.EA))
        self.cell = Cell(d.I, d.H)
        head = ExpertsHead if d.flags & F_EXPERTS else Head
        self.head = head(d.V, d.H, bool(d.flags & F_SHIFT_UNIT))
        self._index = None

    # ---- the flat parameter array of arch.h ----
    def _blocks(self):
        b = {"emb_cat": self.emb_cat, "emb_act": self.emb_act, "w_ih": self.cell.w_ih,
             "w_hh": self.cell.w_hh, "b_ih": self.cell.b_ih, "b_hh": self.cell.b_hh,
             "head_wv": self.head.wv, "head_bv": self.head.bv, "copy_wp": self.head.copy_wp,
             "copy_bp": self.head.copy_bp, "copy_wf": self.head.copy_wf}
        if isinstance(self.head, ExpertsHead):
            b.update(mix_w=self.head.mix_w, mix_b=self.head.mix_b, x_beta=self.head.x_beta,
                     x_gamma=self.head.x_gamma, x_hl=self.head.x_hl)
        else:
            b.update(gate_wg=self.head.gate_wg, gate_bg=self.head.gate_bg)
        if self.head.shift_unit:
            b.update(shift_w=self.head.shift_w, shift_wd=self.head.shift_wd, shift_b=self.head.shift_b)
        return b

    def flat_params(self):
        lay, total = layout(self.dims)
        out = np.zeros(total, dtype=np.float32)
        blocks = self._blocks()
        for name, (o, shape) in lay.items():
            out[o:o + int(np.prod(shape))] = blocks[name].detach().cpu().float().numpy().ravel()
        return out

    def load_flat(self, flat):
        lay, total = layout(self.dims)
        flat = np.asarray(flat, dtype=np.float32)
        assert flat.size == total, (flat.size, total)
        blocks = self._blocks()
        with torch.no_grad():
            for name, (o, shape) in lay.items():
                t = blocks[name]
                t.copy_(torch.from_numpy(flat[o:o + int(np.prod(shape))].reshape(shape)).to(t.device))

    @classmethod
    def from_file(cls, mf):
        m = cls(Dims(**vars(mf.dims)), mf.half_life_s, mf.vocab.copy())
        m.load_flat(mf.params)
        return m

    def to_file(self, note=b""):
        return ModelFile(Dims(**vars(self.dims)), self.half_life_s, self.vocab.copy(),
                         self.flat_params(), note)

    # ---- features ----
    def vocab_index(self, cat):
        if self._index is None:
            self._index = {int(c): j for j, c in enumerate(self.vocab) if j > 0}
        return self._index.get(int(cat), 0)

    def experts(self):
        """The decay expert's (gamma, half-life) for UserState.advance, or None."""
        return self.head.decay_constants() if isinstance(self.head, ExpertsHead) else None

    def inputs(self, cidx, aidx, tfeat, round_time=False):
        """x [..., I] from vocab indices, action indices and time features."""
        if round_time:
            tfeat = bf16(tfeat)
        pad = self.dims.I - self.dims.EC - self.dims.EA - N_TIME
        parts = [self.emb_cat[cidx], self.emb_act[aidx], tfeat]
        if pad:
            parts.append(tfeat.new_zeros(tfeat.shape[:-1] + (pad,)))
        return torch.cat(parts, dim=-1)

    # ---- serving (model/model.c), one event of one user ----
    @torch.no_grad()
    def serving_weights(self):
        """The cell's and head's weights as model_build rounds them."""
        d = self.dims
        ts = slice(d.EC + d.EA, d.EC + d.EA + N_TIME)
        w_ih = self.cell.w_ih.detach().clone()
        w_ih[:, ts] = bf16(w_ih[:, ts])
        wv = bf16(self.head.wv) if d.flags & F_HEAD_BF16 else self.head.wv.detach()
        return w_ih, bf16(self.cell.w_hh), wv

    @torch.no_grad()
    def serve_step(self, st, h, c, cat, action, ts, weights=None):
        """One event through the serving path: returns (h, c) stored as bf16
        and the head's (q [V], oov [K], g) from the stored h; st advances."""
        w_ih, w_hh, wv = weights or self.serving_weights()
        idx = self.vocab_index(cat)
        a = action if 0 <= action < N_ACTIONS else N_ACTIONS - 1
        tf = torch.from_numpy(st.time_features(cat, ts))
        x = self.inputs(torch.tensor(idx), torch.tensor(a), tf, round_time=True)
        xproj = torch.nn.functional.linear(x, w_ih, self.cell.b_ih + self.cell.b_hh)
        h, c = self.cell.step(xproj, h, c, w_hh)
        h, c = bf16(h), bf16(c)
        st.advance(cat, ts, idx, self.half_life_s, self.experts())
        rec_idx, rec_logcnt, rec_mask, rec_dec = recent_tensors(st.recent)
        pv, g, ms = self.head.parts(h.unsqueeze(0), rec_logcnt, rec_mask, wv, rec_dec)
        q, oov = Head.next_dist(pv, g, ms, rec_idx)
        return h, c, q[0], oov[0], g[0]


def recent_tensors(recent, dtype=torch.float32):
    """(idx, log1p(count), mask, dec_w), each [1, K], of a recent list."""
    idx = torch.zeros(1, K, dtype=torch.long)
    lc = torch.zeros(1, K, dtype=dtype)
    dec = torch.zeros(1, K, dtype=dtype)
    mask = torch.zeros(1, K, dtype=torch.bool)
    for k, (_, cnt, ix, dw) in enumerate(recent):
        idx[0, k], lc[0, k], mask[0, k], dec[0, k] = ix, math.log1p(cnt), True, float(dw)
    return idx, lc, mask, dec
