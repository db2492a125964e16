#!/usr/bin/env bash
# Training speed, interestctl train against python/interestd_torch.train on the
# same data and architecture (Taobao head100k, H=64 V=1000, batch 16, bptt 32,
# the shipped model's recipe), on CPU, with 1 and 2 threads (--threads: head-row
# threads for C, torch.set_num_threads for PyTorch), runs alternating C / PyTorch.
# Prints events/s per epoch (training only; the dev scoring after each epoch
# is not counted on either side) and the ratio of the medians.
#   usage: tests/bench/bench_train_torch.sh [--epochs N] [--rounds R] [--build DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$SRC/build/release
EPOCHS=3
ROUNDS=2
while (($#)); do
  case "$1" in
    --epochs) EPOCHS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --build) BUILD=$(cd "$2" && pwd); shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
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
echo "# $(date -u +%FT%TZ) $(git -C "$SRC" rev-parse --short HEAD) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, torch $($PY -c 'import torch; print(torch.__version__)')"
echo "# threads side round events/s per epoch"
# the experts' constants interestctl train tunes on the dev day, given to PyTorch too
XC=$("$CTL" train "${ARGS[@]}" --epochs 1 --out "$TMP/c.ixm" 2>&1 |
  sed -n 's/^train: experts: recency beta=\([0-9.e+-]*\) .*decay gamma=\([0-9.e+-]*\) half-life=\([0-9.e+-]*\)s.*/\1,\2,\3/p')
echo "# expert constants: ${XC:?interestctl train did not print them}"
for th in 1 2; do
  for r in $(seq "$ROUNDS"); do
    "$CTL" train "${ARGS[@]}" --threads "$th" --out "$TMP/c.ixm" --curve "$TMP/c.tsv" 2>/dev/null
    echo "$th C $r $(awk '!/^#/ {printf "%s ", $6}' "$TMP/c.tsv")" | tee -a "$TMP/all"
    PYTHONPATH=$SRC/python $PY -m interestd_torch.train "${ARGS[@]}" --threads "$th" --device cpu --expert-constants "$XC" \
      --out "$TMP/p.ixm" --curve "$TMP/p.tsv" 2>/dev/null
    echo "$th torch $r $(awk '!/^#/ {printf "%s ", $6}' "$TMP/p.tsv")" | tee -a "$TMP/all"
  done
done
$PY - "$TMP/all" <<'PYEOF'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    th, side, _, *eps = line.split()
    v.setdefault((th, side), []).extend(float(x) for x in eps)
for th in ("1", "2"):
    c, t = statistics.median(v[(th, "C")]), statistics.median(v[(th, "torch")])
    print(f"{th} thread(s): interestctl train {c:,.0f} ev/s, PyTorch {t:,.0f} ev/s (medians of "
          f"{len(v[(th, 'C')])} epochs each): {c / t:.2f}x")
PYEOF
