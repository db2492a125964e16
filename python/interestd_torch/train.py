"""Train the model of model/arch.h in PyTorch with the recipe of
`interestctl train` (model/train.c) and write a model file interestd serves.

  /usr/bin/python3 -m interestd_torch.train --events FILE.rec --out MODEL.ixm [options]

Same data windows (--tz, --dev-start, --test-start, --drop-user), vocabulary
(the V-1 most frequent training categories, ties by smaller id), initialisation
(the same seeded splitmix64 stream, forget-gate bias +1, vocabulary bias = log
unigram frequency), user shuffle, B slots that take the next user when theirs
ends, truncated BPTT in chunks of T steps, mean NLL of the chunk's targets,
global-norm clipping, Adam as model/train.c writes it, early stopping on dev
MRR@10 with patience and lr decay, the best epoch's weights written with
ARCH_F_HEAD_BF16. The dev score is computed here in float32 (the C trainer
scores through its bf16 serving path; the figures agree to about 1e-4)."""
import argparse
import math
import sys
import time

import numpy as np
import torch

from .ixm import F_EXPERTS, F_HEAD_BF16, K, Dims, input_size, save_ixm
from .model import Head, IxModel, UserState
from .records import load_events, parse_tz, windows

M64 = (1 << 64) - 1
GOLDEN = 0x9e3779b97f4a7c15


class Rng:
    """model/train.c's stream: x = splitmix64(s); s += golden."""

    def __init__(self, seed):
        self.s = seed & M64

    def next_block(self, n):
        k = np.arange(1, n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            x = np.uint64(self.s) + k * np.uint64(GOLDEN)  # splitmix64 adds golden first
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
            x = x ^ (x >> np.uint64(31))
        self.s = (self.s + n * GOLDEN) & M64
        return x

    def next(self):
        return int(self.next_block(1)[0])

    def uniform(self, n, a):
        x = self.next_block(n)
        u = (x >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
        return np.float32(a) * (np.float32(2.0) * u - np.float32(1.0))


def build_vocab(cats, V):
    """train_build_vocab: [0] + the V-1 most frequent ids (ties: smaller id),
    the tail filled with ids that never occur (UINT64_MAX downwards)."""
    ids, counts = np.unique(cats[cats != 0], return_counts=True)
    order = np.lexsort((ids, -counts))
    top = ids[order][:V - 1]
    vocab = np.zeros(V, dtype=np.uint64)
    vocab[1:1 + len(top)] = top
    fake = M64
    for j in range(1 + len(top), V):
        vocab[j] = fake
        fake -= 1
    return vocab


class Seqs:
    """Events grouped by user in (time, input order), with what the chunks
    need per event: vocab index, action, time features, and for events that
    have a next event the recent list after the event and the target."""

    def __init__(self, ev, model, target_lo=None, target_hi=None):
        order = np.lexsort((np.arange(len(ev)), ev["ts"], ev["user"]))
        ev = ev[order]
        n = len(ev)
        self.n = n
        starts = np.flatnonzero(np.r_[True, ev["user"][1:] != ev["user"][:-1]])
        self.u_start = starts
        self.u_len = np.diff(np.r_[starts, n])
        self.n_users = len(starts)
        self.cidx = np.zeros(n, dtype=np.int64)
        self.aidx = np.where((ev["action"] >= 0) & (ev["action"] < 5), ev["action"], 4).astype(np.int64)
        self.tf = np.zeros((n, 7), dtype=np.float32)
        self.rec_idx = np.zeros((n, K), dtype=np.int64)
        self.rec_lc = np.zeros((n, K), dtype=np.float32)
        self.rec_mask = np.zeros((n, K), dtype=bool)
        self.rec_dec = np.zeros((n, K), dtype=np.float32)
        self.tgt_idx = np.zeros(n, dtype=np.int64)
        self.tgt_k = np.full(n, -1, dtype=np.int64)
        self.has_tgt = np.zeros(n, dtype=bool)
        cats, tss = ev["cat"], ev["ts"]
        index = {int(c): j for j, c in enumerate(model.vocab) if j > 0}
        for j in range(n):
            self.cidx[j] = index.get(int(cats[j]), 0)
        hl = model.half_life_s
        experts = model.experts()
        for u in range(self.n_users):
            st = UserState()
            a, b = starts[u], starts[u] + self.u_len[u]
            for j in range(a, b):
                cat, ts = int(cats[j]), int(tss[j])
                self.tf[j] = st.time_features(cat, ts)
                st.advance(cat, ts, int(self.cidx[j]), hl, experts)
                if j + 1 < b:
                    for k, (rc, cnt, ix, dw) in enumerate(st.recent):
                        self.rec_idx[j, k], self.rec_lc[j, k] = ix, math.log1p(cnt)
                        self.rec_dec[j, k] = dw
                        self.rec_mask[j, k] = True
                        if rc == int(cats[j + 1]):
                            self.tgt_k[j] = k
                    self.tgt_idx[j] = self.cidx[j + 1]
                    nts = int(tss[j + 1])
                    self.has_tgt[j] = target_lo is None or target_lo <= nts < target_hi
        self.n_targets = int(self.has_tgt.sum())

    def to(self, device):
        self.t = {k: torch.from_numpy(getattr(self, k)).to(device) for k in
                  ("cidx", "aidx", "tf", "rec_idx", "rec_lc", "rec_mask", "rec_dec", "tgt_idx", "tgt_k")}
        return self


def chunks(seqs, order, B, T):
    """The slot schedule of model/train.c: yields (ev [T', B] event index or
    -1, reset [T', B]) per chunk, slots taking users in `order`."""
    s_user = np.full(B, -1, dtype=np.int64)
    s_pos = np.zeros(B, dtype=np.int64)
    nxt = 0
    n_users = len(order)
    while True:
        evs = np.full((T, B), -1, dtype=np.int64)
        reset = np.zeros((T, B), dtype=bool)
        steps = 0
        for s in range(T):
            active = False
            for b in range(B):
                if s_user[b] < 0 and nxt < n_users:
                    s_user[b] = order[nxt]
                    nxt += 1
                    s_pos[b] = 0
                    reset[s, b] = True
                u = s_user[b]
                if u < 0:
                    continue
                active = True
                evs[s, b] = seqs.u_start[u] + s_pos[b]
                s_pos[b] += 1
                if s_pos[b] == seqs.u_len[u]:
                    s_user[b] = -1
            if not active:
                break
            steps = s + 1
        if steps == 0:
            return
        yield evs[:steps], reset[:steps]


def chunk_forward(model, seqs, evs, reset, h, c, device):
    """LSTM over the chunk from (h, c) (reset rows start at zero), then the
    head at the rows with targets. Returns (p_target [R], head parts, target
    event indices, h, c)."""
    t = seqs.t
    ev = torch.from_numpy(evs).to(device)
    evc = ev.clamp(min=0)
    x = model.inputs(t["cidx"][evc], t["aidx"][evc], t["tf"][evc])
    xproj = model.cell.input_proj(x)
    rs = torch.from_numpy(reset).to(device).unsqueeze(-1)
    hs = []
    for s in range(evs.shape[0]):
        h = torch.where(rs[s], torch.zeros_like(h), h)
        c = torch.where(rs[s], torch.zeros_like(c), c)
        h, c = model.cell.step(xproj[s], h, c)
        hs.append(h)
    Hs = torch.stack(hs)
    sel = (ev >= 0) & torch.from_numpy(seqs.has_tgt).to(device)[evc]
    te = evc[sel]
    HT = Hs[sel]
    pv, g, ms = model.head.parts(HT, t["rec_lc"][te], t["rec_mask"][te], None, t["rec_dec"][te])
    p = Head.target_prob(pv, g, ms, t["tgt_idx"][te], t["tgt_k"][te])
    return p, (pv, g, ms), te, h, c


class CAdam:
    """Adam exactly as model/train.c writes it (b 0.9/0.999, eps 1e-8 added
    to sqrt(v), bias correction folded into the step size), after global-norm
    clipping."""

    def __init__(self, params):
        self.params = list(params)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, lr, clip):
        nrm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in self.params))
        sc = clip / nrm if clip > 0 and nrm > clip else 1.0
        self.t += 1
        c1, c2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
        step = lr * math.sqrt(c2) / c1
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad * sc
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            p.addcdiv_(m, v.sqrt().add_(1e-8), value=-step)


def init_params(model, vocab_count, seed):
    """init_params of model/train.c, drawing the same seeded stream."""
    d = model.dims
    rng = Rng(seed)
    H, G = d.H, 4 * d.H
    k = np.float32(1.0 / math.sqrt(H))
    with torch.no_grad():
        model.emb_cat.copy_(torch.from_numpy(rng.uniform(d.V * d.EC, 0.1).reshape(d.V, d.EC)))
        model.emb_act.copy_(torch.from_numpy(rng.uniform(5 * d.EA, 0.1).reshape(5, d.EA)))
        model.cell.w_ih.copy_(torch.from_numpy(rng.uniform(G * d.I, k).reshape(G, d.I)))
        model.cell.w_hh.copy_(torch.from_numpy(rng.uniform(G * H, k).reshape(G, H)))
        b_ih = rng.uniform(G, k)
        model.cell.b_hh.copy_(torch.from_numpy(rng.uniform(G, k)))
        b_ih[H:2 * H] += np.float32(1.0)  # remember by default
        model.cell.b_ih.copy_(torch.from_numpy(b_ih))
        model.head.wv.copy_(torch.from_numpy(rng.uniform(d.V * H, k).reshape(d.V, H)))
        cnt = vocab_count.astype(np.float64) + 1.0
        model.head.bv.copy_(torch.from_numpy(np.log(cnt / cnt.sum()).astype(np.float32)))
        model.head.copy_wp.copy_(torch.from_numpy(rng.uniform(K * H, np.float32(0.1) * k).reshape(K, H)))
        model.head.copy_bp.copy_(torch.from_numpy(-0.5 * np.arange(K, dtype=np.float32)))
        model.head.copy_wf.fill_(0.3)
        if d.flags & F_EXPERTS:
            model.head.mix_w.copy_(torch.from_numpy(
                rng.uniform(4 * H, np.float32(0.1) * k).reshape(4, H)))
            model.head.mix_b.zero_()
            # x_beta, x_gamma, x_hl: set by the caller (fixed, not trained)
        else:
            model.head.gate_wg.copy_(torch.from_numpy(rng.uniform(H, np.float32(0.1) * k)))
            model.head.gate_bg.zero_()
    return rng


@torch.no_grad()
def evaluate(model, seqs, device, B=256, T=64):
    """MRR@10 and NLL (p clamped at 1e-9) over seqs' targets, float32."""
    rr, nll, n = 0.0, 0.0, 0
    H = model.dims.H
    h = torch.zeros(B, H, device=device)
    c = torch.zeros(B, H, device=device)
    for evs, reset in chunks(seqs, np.arange(seqs.n_users), B, T):
        p, (pv, g, ms), te, h, c = chunk_forward(model, seqs, evs, reset, h, c, device)
        if te.numel() == 0:
            continue
        q, oov = Head.next_dist(pv, g, ms, seqs.t["rec_idx"][te])
        tidx, tk = seqs.t["tgt_idx"][te], seqs.t["tgt_k"][te]
        listed = (tidx > 0) | (tk >= 0)
        pt = torch.where(tidx > 0, q.gather(1, tidx.unsqueeze(1)).squeeze(1),
                         oov.gather(1, tk.clamp(min=0).unsqueeze(1)).squeeze(1))
        above = (q[:, 1:] > pt.unsqueeze(1)).sum(1) + (oov > pt.unsqueeze(1)).sum(1)
        rank = above + 1
        hit = listed & (rank <= 10)
        rr += float(torch.where(hit, 1.0 / rank.double(), torch.zeros_like(rank, dtype=torch.float64)).sum())
        nll += float(-torch.log(p.double().clamp(min=1e-9)).sum())
        n += te.numel()
    return (rr / n, nll / n) if n else (float("nan"), float("nan"))


def train(ev, dev_start, test_start, dims, args, device, log=sys.stderr):
    """Returns (model of the best epoch, curve rows)."""
    t_start = time.time()
    tr = ev[ev["ts"] < dev_start]
    if len(tr) == 0:
        raise ValueError("no events before the end of the training window")
    model = IxModel(dims, args.half_life * 3600.0, None)
    model.vocab = build_vocab(tr["cat"], dims.V)
    model._index = None
    if dims.flags & F_EXPERTS:
        beta, gamma, hl = args.expert_constants
        with torch.no_grad():
            model.head.x_beta.fill_(beta)
            model.head.x_gamma.fill_(gamma)
            model.head.x_hl.fill_(hl)
    seqs = Seqs(tr, model)
    vocab_count = np.bincount(seqs.cidx, minlength=dims.V)
    rng = init_params(model, vocab_count, args.seed)
    model.to(device)
    seqs.to(device)
    dev = Seqs(ev[ev["ts"] < test_start], model, dev_start, test_start).to(device)
    print(f"train: {len(ev)} events; {seqs.n} training events of {seqs.n_users} users before "
          f"{dev_start}, early stopping on dev ({dev.n_targets} targets); device {device}, "
          f"{torch.get_num_threads()} threads; prep {time.time() - t_start:.1f}s", file=log)
    opt = CAdam(model.parameters())
    best, best_metric, best_epoch, bad, lr = None, -math.inf, 0, 0, args.lr
    curve = []
    H = dims.H
    for ep in range(1, args.epochs + 1):
        te0 = time.time()
        order = np.arange(seqs.n_users)
        for u in range(seqs.n_users, 1, -1):  # epoch_begin's Fisher-Yates
            j = rng.next() % u
            order[u - 1], order[j] = order[j], order[u - 1]
        h = torch.zeros(args.batch, H, device=device)
        c = torch.zeros(args.batch, H, device=device)
        loss_sum, targets = 0.0, 0
        for evs, reset in chunks(seqs, order, args.batch, args.bptt):
            h, c = h.detach(), c.detach()
            p, _, te, h, c = chunk_forward(model, seqs, evs, reset, h, c, device)
            R = te.numel()
            if R == 0:
                continue
            nl = -torch.log(p.clamp(min=1e-30))
            loss = nl.sum()
            loss_sum += float(loss)
            targets += R
            for q in model.parameters():
                q.grad = None
            (loss / R).backward()
            opt.step(lr, args.clip)
        if device.type == "cuda":
            torch.cuda.synchronize()
        ev_s = seqs.n / (time.time() - te0)
        metric, dnll = evaluate(model, dev, device)
        improved = metric > best_metric
        if improved:
            best_metric, best_epoch, bad = metric, ep, 0
            best = model.flat_params()
        else:
            bad += 1
            lr *= args.lr_decay
        el = time.time() - t_start
        curve.append((ep, loss_sum / max(targets, 1), metric, dnll, el, ev_s))
        print(f"epoch {ep:2d}/{args.epochs}  loss {loss_sum / max(targets, 1):.4f}  dev MRR@10 "
              f"{metric:.4f}  dev NLL {dnll:.4f}  best {best_metric:.4f}@{best_epoch}  {ev_s:.0f} ev/s"
              f"  elapsed {el:.0f}s{'' if improved else '  (lr decayed)'}", file=log, flush=True)
        if bad >= args.patience:
            break
    model.load_flat(best)
    return model, curve, best_epoch


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m interestd_torch.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--drop-user", type=int, action="append", default=[])
    ap.add_argument("--tz", default="+00:00")
    ap.add_argument("--dev-start", type=int, default=0, help="ms since the epoch")
    ap.add_argument("--test-start", type=int, default=0, help="ms since the epoch")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--emb-cat", type=int, default=32)
    ap.add_argument("--emb-act", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-decay", type=float, default=0.5)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--half-life", type=float, default=72.0, help="hours")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    ap.add_argument("--curve", help="the training curve as a TSV")
    ap.add_argument("--no-experts", action="store_true",
                    help="the v1 head (vocabulary/copy gate) instead of the mixture of experts")
    ap.add_argument("--expert-constants", default="0.65,0.7,21600", metavar="BETA,GAMMA,HL_S",
                    help="the experts' fixed constants: recency beta, decay gamma and half-life "
                         "in seconds (default: interestctl train's untuned defaults; interestctl "
                         "train tunes them on the dev day and prints them: pass those to match it)")
    args = ap.parse_args(argv)
    args.expert_constants = [float(x) for x in args.expert_constants.split(",")]
    if len(args.expert_constants) != 3:
        ap.error("--expert-constants wants BETA,GAMMA,HL_S")
    torch.set_num_threads(args.threads)
    dev_name = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    device = torch.device(dev_name)
    ev = load_events(args.events, args.drop_user)
    dev_start, test_start, _ = windows(ev["ts"], parse_tz(args.tz), args.dev_start, args.test_start)
    if not dev_start < test_start:
        print("train: the dev window is empty", file=sys.stderr)
        return 1
    dims = Dims(args.vocab, args.hidden, args.emb_cat, args.emb_act,
                input_size(args.emb_cat, args.emb_act),
                F_HEAD_BF16 | (0 if args.no_experts else F_EXPERTS))
    torch.manual_seed(args.seed)
    model, curve, best_epoch = train(ev, dev_start, test_start, dims, args, device)
    note = (f"interestd_torch.train --batch {args.batch} --bptt {args.bptt} --lr {args.lr} "
            f"--seed {args.seed}; best epoch {best_epoch} of {len(curve)}, dev MRR@10 "
            f"{curve[best_epoch - 1][2]:.4f}; torch {torch.__version__} on {device}").encode()
    save_ixm(args.out, model.cpu().to_file(note))
    if args.curve:
        with open(args.curve, "w") as f:
            f.write("# epoch\ttrain_nll\tdev_mrr10\tdev_nll\tseconds\tevents_per_s\n")
            for row in curve:
                f.write("%d\t%.6f\t%.6f\t%.6f\t%.3f\t%.0f\n" % row)
    print(f"wrote {args.out}: best epoch {best_epoch} of {len(curve)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
