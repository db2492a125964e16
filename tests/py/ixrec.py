"""Record files (docs/FORMATS.md) and prediction messages for the integration
tests: the reader of python/interestd_torch (NumPy and msgpack only, no
torch), and comparisons between a daemon's recorded output and offline replay."""
import os
import sys

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from interestd_torch.records import read_records, write_records  # noqa: E402,F401

# Prediction fields that come from the wall clock in the daemon: only the emit
# time. Offline replay sets it to the event time (docs/STATE.md).
WALL_CLOCK_FIELDS = ("et",)


def predictions(path):
    """Decoded prediction maps of a record file, in file order. Floats are
    float32 on the wire; Python's float holds them exactly."""
    return [msgpack.unpackb(v, raw=False) for _, _, _, _, v in read_records(path)]


def without_wall_clock(pred):
    return {k: v for k, v in pred.items() if k not in WALL_CLOCK_FIELDS}
