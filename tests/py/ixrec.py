"""Record files (docs/FORMATS.md) and prediction messages for the integration
tests: an independent reader in Python, and comparisons between a daemon's
recorded output and offline replay."""
import struct
import zlib

import msgpack

# Prediction fields that come from the wall clock in the daemon: only the emit
# time. Offline replay sets it to the event time (docs/STATE.md).
WALL_CLOCK_FIELDS = ("et",)


def read_records(path):
    """Yields (partition, offset, ts_ms, key bytes, value bytes); raises on damage."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"IXRECORD" and struct.unpack_from("<II", data, 8) == (1, 0), path
    pos = 16
    while pos < len(data):
        klen, vlen, part, off, ts, hcrc = struct.unpack_from("<IIiqqI", data, pos)
        assert zlib.crc32(data[pos:pos + 28]) == hcrc, f"{path}: bad head at {pos}"
        end = pos + 32 + klen + vlen
        (crc,) = struct.unpack_from("<I", data, end)
        assert zlib.crc32(data[pos:end]) == crc, f"{path}: bad record at {pos}"
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


def predictions(path):
    """Decoded prediction maps of a record file, in file order. Floats are
    float32 on the wire; Python's float holds them exactly."""
    return [msgpack.unpackb(v, raw=False) for _, _, _, _, v in read_records(path)]


def without_wall_clock(pred):
    return {k: v for k, v in pred.items() if k not in WALL_CLOCK_FIELDS}
