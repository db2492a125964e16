#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_lstm.c: LSTMCell(I -> H), no_grad,
one thread. Prints one line per batch: "torch_lstmcell batch=B us_per_step=T".
  torch_lstmcell.py [I] [H] [B1,B2,...] [wall|cpu]
"cpu" times with this thread's CPU clock (time.thread_time; with one torch
thread the work runs on the calling thread), as bench_lstm --cputime does."""
import sys
import time

import torch

torch.set_num_threads(1)
I = int(sys.argv[1]) if len(sys.argv) > 1 else 48
H = int(sys.argv[2]) if len(sys.argv) > 2 else 64
batches = [int(b) for b in sys.argv[3].split(",")] if len(sys.argv) > 3 else [1, 256]
clock = time.thread_time if len(sys.argv) > 4 and sys.argv[4] == "cpu" else time.perf_counter
cell = torch.nn.LSTMCell(I, H)
with torch.no_grad():
    for B in batches:
        x = torch.randn(B, I)
        h = torch.zeros(B, H)
        c = torch.zeros(B, H)
        for _ in range(200):
            h, c = cell(x, (h, c))
        best = float("inf")
        for _ in range(5):
            n = max(200, 20000 // B)
            t = clock()
            for _ in range(n):
                h, c = cell(x, (h, c))
            best = min(best, (clock() - t) / n)
        print(f"torch_lstmcell batch={B} us_per_step={best * 1e6:.3f}", flush=True)
