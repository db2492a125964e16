"""The model file format (docs/FORMATS.md, model/modelfile.h) and the flat
parameter layout of model/arch.h, in NumPy."""
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"IXMODEL1"
VERSION = 2       # written for models with experts; others are written as version 1
VERSION_MIN = 1
NOTE_MAX = 1024
K = 16            # ARCH_K: recent distinct categories in the state (copy head)
P = 16            # ARCH_P: long-term profile slots
N_ACTIONS = 5     # view, cart, fav, buy, other
N_TIME = 7        # time/position features
F_SHIFT_UNIT = 0x1
F_HEAD_BF16 = 0x2
F_EXPERTS = 0x4   # the head mixes experts (arch.h "Experts"); model file version 2
F_ALL = F_SHIFT_UNIT | F_HEAD_BF16 | F_EXPERTS
N_EXPERTS = 4     # vocabulary, copy, recency, decay (ARCH_X_*)
DEFAULT_HALF_LIFE_S = 72.0 * 3600.0
_HDR = struct.Struct("<8sI6IfQI")


def input_size(EC, EA):
    """arch_input_size: EC + EA + N_TIME rounded up to 8."""
    return (EC + EA + N_TIME + 7) // 8 * 8


@dataclass
class Dims:
    V: int = 1000
    H: int = 64
    EC: int = 32
    EA: int = 8
    I: int = 48
    flags: int = F_HEAD_BF16 | F_EXPERTS

    def check(self):
        if not (2 <= self.V <= 1 << 22 and 1 <= self.H <= 1024 and 1 <= self.EC <= 1024
                and 1 <= self.EA <= 1024):
            raise ValueError(f"dimensions out of range: {self}")
        if self.I < self.EC + self.EA + N_TIME:
            raise ValueError(f"I={self.I} is smaller than EC+EA+{N_TIME}")
        if self.flags & ~F_ALL:
            raise ValueError(f"unknown architecture flags {self.flags & ~F_ALL:#x}")


def layout(d):
    """arch_layout: {block name: (offset, shape)} in file order, and the total."""
    G = 4 * d.H
    blocks = [("emb_cat", (d.V, d.EC)), ("emb_act", (N_ACTIONS, d.EA)), ("w_ih", (G, d.I)),
              ("w_hh", (G, d.H)), ("b_ih", (G,)), ("b_hh", (G,)), ("head_wv", (d.V, d.H)),
              ("head_bv", (d.V,)), ("copy_wp", (K, d.H)), ("copy_bp", (K,)), ("copy_wf", (1,))]
    if d.flags & F_EXPERTS:
        blocks += [("mix_w", (N_EXPERTS, d.H)), ("mix_b", (N_EXPERTS,)), ("x_beta", (1,)),
                   ("x_gamma", (1,)), ("x_hl", (1,))]
    else:
        blocks += [("gate_wg", (d.H,)), ("gate_bg", (1,))]
    if d.flags & F_SHIFT_UNIT:
        blocks += [("shift_w", (d.H,)), ("shift_wd", (1,)), ("shift_b", (1,))]
    out, n = {}, 0
    for name, shape in blocks:
        out[name] = (n, shape)
        n += int(np.prod(shape))
    return out, n


@dataclass
class ModelFile:
    dims: Dims
    half_life_s: float
    vocab: np.ndarray          # V uint64 category ids, vocab[0] = 0 ("other")
    params: np.ndarray         # flat float32, layout(dims)
    note: bytes = b""
    crc: int = field(default=0)

    def blocks(self):
        """Views of the flat array by block name (arch.h layout)."""
        lay, _ = layout(self.dims)
        return {k: self.params[o:o + int(np.prod(s))].reshape(s) for k, (o, s) in lay.items()}


def load_ixm(path):
    """Read and validate a model file; raises ValueError with a sentence."""
    with open(path, "rb") as f:
        buf = f.read()
    return parse_ixm(buf, path)


def parse_ixm(buf, name="<buffer>"):
    if len(buf) < _HDR.size + 4:
        raise ValueError(f"{name}: truncated model file ({len(buf)} bytes)")
    magic, ver, V, H, EC, EA, I, flags, hl, n_params, note_len = _HDR.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ValueError(f"{name}: not a model file (bad magic)")
    if not VERSION_MIN <= ver <= VERSION:
        raise ValueError(f"{name}: model file version {ver} is not supported "
                         f"(this reader knows {VERSION_MIN}..{VERSION})")
    if ver == 1 and flags & F_EXPERTS:
        raise ValueError(f"{name}: a version-1 file cannot have the experts flag")
    if note_len > NOTE_MAX:
        raise ValueError(f"{name}: note of {note_len} bytes, more than {NOTE_MAX}")
    d = Dims(V, H, EC, EA, I, flags)
    d.check()
    _, total = layout(d)
    if n_params != total:
        raise ValueError(f"{name}: {n_params} parameters, the dimensions need {total}")
    want = _HDR.size + note_len + 8 * V + 4 * n_params + 4
    if len(buf) != want:
        raise ValueError(f"{name}: {len(buf)} bytes, the header says {want}")
    (crc,) = struct.unpack_from("<I", buf, want - 4)
    if zlib.crc32(buf[:want - 4]) != crc:
        raise ValueError(f"{name}: CRC mismatch (the file is damaged)")
    o = _HDR.size
    note = buf[o:o + note_len]
    o += note_len
    vocab = np.frombuffer(buf, dtype="<u8", count=V, offset=o).astype(np.uint64)
    o += 8 * V
    params = np.frombuffer(buf, dtype="<f4", count=n_params, offset=o).astype(np.float32)
    if vocab[0] != 0:
        raise ValueError(f"{name}: vocab[0] must be 0 (the 'other' bucket)")
    return ModelFile(d, float(hl), vocab, params, bytes(note), crc)


def save_ixm(path, mf):
    """Write atomically (temp file + rename), as modelfile_write does."""
    import os
    d = mf.dims
    d.check()
    _, total = layout(d)
    params = np.ascontiguousarray(mf.params, dtype="<f4")
    vocab = np.ascontiguousarray(mf.vocab, dtype="<u8")
    if params.size != total or vocab.size != d.V:
        raise ValueError(f"params ({params.size}) or vocab ({vocab.size}) do not fit the dims")
    note = mf.note[:NOTE_MAX]
    ver = 2 if d.flags & F_EXPERTS else 1
    body = _HDR.pack(MAGIC, ver, d.V, d.H, d.EC, d.EA, d.I, d.flags, float(mf.half_life_s),
                     total, len(note)) + note + vocab.tobytes() + params.tobytes()
    crc = zlib.crc32(body) & 0xffffffff
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(body + struct.pack("<I", crc))
    os.replace(tmp, path)
    mf.crc = crc
    return crc
