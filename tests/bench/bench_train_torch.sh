#!/usr/bin/env bash
# Training speed, interestctl train against python/interestd_torch.train on the
# same data and architecture (Taobao head100k, H=64 V=1000, batch 16, bptt 32,
# the shipped model's recipe), on CPU, with 1 and 2 threads (--threads: slot
# workers for C, each running its share of the batch's 16 slots; PyTorch's
# torch.set_num_threads), the runs alternating C 1, PyTorch 1, C 2, PyTorch 2
# each round. Prints events/s per epoch (training only; the dev scoring after
# each epoch is not counted on either side) with the 1-minute load average at
# each run's start, the ratios of the medians (C / PyTorch per thread count,
# C 2 threads / C 1 thread), and C's CPU split per epoch: process CPU / wall,
# the workers' CPU (sum and slowest worker) and the serial wall part, so the
# scaling of the parallel part shows even when other jobs take the cores.
# --c-only: interestctl train alone, 1 and 2 threads alternated (no PyTorch).
#   usage: tests/bench/bench_train_torch.sh [--epochs N] [--rounds R] [--build DIR] [--c-only]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$SRC/build/release
EPOCHS=3
ROUNDS=2
C_ONLY=0
while (($#)); do
  case "$1" in
    --epochs) EPOCHS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --build) BUILD=$(cd "$2" && pwd); shift ;;
    --c-only) C_ONLY=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench_train_torch.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
CTL=$BUILD/ctl/interestctl
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$CTL" import --format taobao --input "$SRC/data/taobao_userbehavior_head100k/small_sample.csv.gz" \
  --output "$TMP/taobao.rec" >/dev/null
ARGS=(--events "$TMP/taobao.rec" --drop-user 1004381 --tz +08:00 --batch 16 --lr-decay 0.7
      --patience 100 --seed 1 --epochs "$EPOCHS")
echo "# $(date -u +%FT%TZ) $(git -C "$SRC" rev-parse --short HEAD) $(nproc) cores" \
     "($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, torch $($PY -c 'import torch; print(torch.__version__)')"
# the experts' constants interestctl train tunes on the dev day, given to PyTorch too
XC=$("$CTL" train "${ARGS[@]}" --epochs 1 --out "$TMP/c.ixm" 2>&1 |
  sed -n 's/^train: experts: recency beta=\([0-9.e+-]*\) .*decay gamma=\([0-9.e+-]*\) half-life=\([0-9.e+-]*\)s.*/\1,\2,\3/p')
echo "# expert constants: ${XC:?interestctl train did not print them}"
echo "# threads side round load1 | per epoch: events/s [C: train_s cpu_s work_sum_s work_max_s serial_s]"
for r in $(seq "$ROUNDS"); do
  for th in 1 2; do
    ld=$(cut -d' ' -f1 /proc/loadavg)
    "$CTL" train "${ARGS[@]}" --threads "$th" --out "$TMP/c.ixm" --curve "$TMP/c.tsv" 2>/dev/null
    echo "$th C $r $ld | $(awk '!/^#/ {printf "%s [%s %s %s %s %s] ", $6, $7, $8, $10, $12, $13}' "$TMP/c.tsv")"
    awk -v th="$th" -v r="$r" -v ld="$ld" '!/^#/ {print th, "C", r, ld, $2, $6, $7, $8, $10, $12, $13}' \
      "$TMP/c.tsv" >> "$TMP/all"
    ((C_ONLY)) && continue
    ld=$(cut -d' ' -f1 /proc/loadavg)
    PYTHONPATH=$SRC/python $PY -m interestd_torch.train "${ARGS[@]}" --threads "$th" --device cpu --expert-constants "$XC" \
      --out "$TMP/p.ixm" --curve "$TMP/p.tsv" 2>/dev/null
    echo "$th torch $r $ld | $(awk '!/^#/ {printf "%s ", $6}' "$TMP/p.tsv")"
    awk -v th="$th" -v r="$r" -v ld="$ld" '!/^#/ {print th, "torch", r, ld, $2, $6}' "$TMP/p.tsv" >> "$TMP/all"
  done
done
echo "# end $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
$PY - "$TMP/all" <<'PYEOF'
import statistics, sys
med = statistics.median
v = {}
for line in open(sys.argv[1]):
    f = line.split()
    v.setdefault((f[0], f[1]), []).append([float(x) for x in f[3:]])
def col(th, side, i):
    return [row[i] for row in v[(th, side)]]
for th in ("1", "2"):
    if (th, "torch") not in v:
        continue
    c, t = med(col(th, "C", 2)), med(col(th, "torch", 2))
    loads = col(th, "C", 0) + col(th, "torch", 0)
    print(f"{th} thread(s): interestctl train {c:,.0f} ev/s, PyTorch {t:,.0f} ev/s (medians of "
          f"{len(col(th, 'C', 2))} epochs each; load {min(loads):.1f}-{max(loads):.1f}): {c / t:.2f}x")
c1, c2 = med(col("1", "C", 2)), med(col("2", "C", 2))
print(f"interestctl train 2 threads / 1 thread: {c2 / c1:.2f}x ({c2:,.0f} / {c1:,.0f} ev/s, medians)")
for th in ("1", "2"):
    tr, cpu, ws, wm, se = (med(col(th, "C", i)) for i in (3, 4, 5, 6, 7))
    loss = sorted(set(col(th, "C", 1)))
    print(f"C {th} thread(s), medians per epoch: wall {tr:.3f} s, process CPU {cpu:.3f} s "
          f"(CPU/wall {cpu / tr:.2f}), workers' CPU sum {ws:.3f} s, slowest worker {wm:.3f} s, "
          f"serial wall {se:.4f} s; epoch losses {' '.join(f'{x:.5f}' for x in loss)}")
w1, wm2, ws2 = med(col("1", "C", 5)), med(col("2", "C", 6)), med(col("2", "C", 5))
print(f"parallel part: the slowest of 2 workers does {wm2 / w1:.2f} of the 1-thread work "
      f"(ideal 0.50; its CPU speedup {w1 / wm2:.2f}x); the 2 workers together {ws2 / w1:.2f} of it")
PYEOF
