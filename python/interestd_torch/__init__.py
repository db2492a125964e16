"""interestd's model (model/arch.h) in PyTorch: train where you like, serve in
interestd. See docs/MODEL.md, "Training in PyTorch"."""
from .ixm import Dims, ModelFile, layout, load_ixm, parse_ixm, save_ixm  # noqa: F401
from .model import Cell, Head, IxModel, UserState, bf16  # noqa: F401
from .records import load_events, read_records, windows, write_records  # noqa: F401
