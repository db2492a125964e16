"""Record files (docs/FORMATS.md, "Record file") and the event message, in
Python: read_records yields the records, load_events decodes the events into
NumPy arrays the way `interestctl train` does (stream/codec.c rules)."""
import struct
import zlib

import msgpack
import numpy as np

ACTIONS = {"view": 0, "pv": 0, "click": 0, "cart": 1, "fav": 2, "buy": 3}
ACTION_OTHER = 4
_FNV_OFFSET, _FNV_PRIME = 0xcbf29ce484222325, 0x100000001b3


def read_records(path):
    """Yields (partition, offset, ts_ms, key bytes, value bytes); raises
    ValueError naming the byte offset on a damaged file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"IXRECORD" or struct.unpack_from("<II", data, 8) != (1, 0):
        raise ValueError(f"{path}: not a record file (version 1)")
    pos = 16
    while pos < len(data):
        if pos + 32 > len(data):
            raise ValueError(f"{path}: truncated record head at byte {pos}")
        klen, vlen, part, off, ts, hcrc = struct.unpack_from("<IIiqqI", data, pos)
        if zlib.crc32(data[pos:pos + 28]) != hcrc:
            raise ValueError(f"{path}: bad record head at byte {pos}")
        end = pos + 32 + klen + vlen
        if end + 4 > len(data):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        (crc,) = struct.unpack_from("<I", data, end)
        if zlib.crc32(data[pos:end]) != crc:
            raise ValueError(f"{path}: bad record CRC at byte {pos}")
        yield part, off, ts, data[pos + 32:pos + 32 + klen], data[pos + 32 + klen:end]
        pos = end + 4


def write_records(path, records):
    """records: iterable of (partition, offset, ts_ms, key bytes, value bytes)."""
    with open(path, "wb") as f:
        f.write(b"IXRECORD" + struct.pack("<II", 1, 0))
        for part, off, ts, key, value in records:
            head = struct.pack("<IIiqq", len(key), len(value), part, off, ts)
            head += struct.pack("<I", zlib.crc32(head))
            body = head + key + value
            f.write(body + struct.pack("<I", zlib.crc32(body)))


def hash_id(v, field):
    """An id as codec_hash_id reads it (FORMATS.md, Ids)."""
    if isinstance(v, bool) or v is None:
        raise ValueError(f"field '{field}' has the wrong type")
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"field '{field}' is negative: {v}")
        return v
    if isinstance(v, bytes):
        v = v.decode("utf-8", "surrogateescape")
    if isinstance(v, str):
        raw = v.encode("utf-8", "surrogateescape")
        if not 1 <= len(raw) <= 256:
            raise ValueError(f"field '{field}' is an empty or too long string")
        if raw.isdigit() and (raw == b"0" or raw[:1] != b"0") and int(raw) < 1 << 64:
            return int(raw)
        h = _FNV_OFFSET
        for b in raw:
            h = ((h ^ b) * _FNV_PRIME) & 0xffffffffffffffff
        return h
    raise ValueError(f"field '{field}' has the wrong type")


def decode_event(value):
    """(user, item, category, action, ts_ms) of one event message."""
    m = msgpack.unpackb(value, raw=False, strict_map_key=False)
    if not isinstance(m, dict):
        raise ValueError("event message is not a msgpack map")
    for k in ("u", "c", "t"):
        if k not in m:
            raise ValueError(f"event message lacks field '{k}'")
    t = m["t"]
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise ValueError("field 't' is not a non-negative integer")
    a = m.get("a")
    if isinstance(a, str):
        act = ACTIONS.get(a, ACTION_OTHER)
    elif isinstance(a, int) and not isinstance(a, bool) and 0 <= a < ACTION_OTHER:
        act = a
    else:
        act = ACTION_OTHER
    item = hash_id(m["i"], "i") if "i" in m else 0
    return hash_id(m["u"], "u"), item, hash_id(m["c"], "c"), act, t


EVENT_DTYPE = np.dtype([("user", "<u8"), ("item", "<u8"), ("cat", "<u8"), ("action", "<i4"),
                        ("ts", "<i8")])


def load_events(path, drop_users=()):
    """Every event of a record file (file order) as a structured array of
    EVENT_DTYPE, users in drop_users left out (ctlev_load_input)."""
    drop = set(int(u) for u in drop_users)
    rows = []
    for _, _, _, _, value in read_records(path):
        ev = decode_event(value)
        if ev[0] not in drop:
            rows.append(ev)
    if not rows:
        raise ValueError(f"{path} holds no events")
    return np.array(rows, dtype=EVENT_DTYPE)


def windows(ts, tz_offset_s=0, dev_start_ms=0, test_start_ms=0):
    """ctlev_windows: (dev_start, test_start, test_end) in ms; default dev =
    the day before the last local day, test = the last local day."""
    day = 86400000
    off = tz_offset_s * 1000
    last_day = (int(ts.max()) + off) // day * day - off
    test = test_start_ms or last_day
    return (dev_start_ms or test - day), test, test + day


def parse_tz(s):
    if s in ("Z", "0"):
        return 0
    sign = -1 if s[0] == "-" else 1
    if s[0] not in "+-" or len(s) != 6 or s[3] != ":":
        raise ValueError(f"bad time zone offset '{s}' (want +HH:MM)")
    return sign * (int(s[1:3]) * 3600 + int(s[4:6]) * 60)
