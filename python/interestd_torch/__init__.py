"""interestd's model (model/arch.h) in PyTorch: train where you like, serve in
interestd. See docs/MODEL.md, "Training in PyTorch".

ixm (model files) and records (record files, events) need only NumPy and
msgpack; the torch parts (IxModel, Cell, Head, UserState, bf16) are imported on
first use, so tools that only read files do not load torch."""
from .ixm import Dims, ModelFile, layout, load_ixm, parse_ixm, save_ixm  # noqa: F401
from .records import load_events, read_records, windows, write_records  # noqa: F401

_LAZY = ("Cell", "ExpertsHead", "Head", "IxModel", "UserState", "bf16")


def __getattr__(name):
    if name in _LAZY:
        from . import model
        return getattr(model, name)
    raise AttributeError(name)
