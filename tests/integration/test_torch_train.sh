#!/bin/bash
# Train in PyTorch, serve in C, and the reverse (python/interestd_torch):
#  1. python3 -m interestd_torch.train and interestctl train, same recipe and
#     data (Taobao head100k, 2 epochs, the head with experts; the PyTorch side
#     is given the expert constants interestctl train tuned on the dev day):
#     each epoch's training loss and dev NLL agree to 2e-3 (same vocabulary,
#     seeded initialisation, shuffle, slots);
#  2. both files pass interestctl eval, whose dev MRR@10 / NLL (bf16 serving
#     path) agree with the PyTorch trainer's float32 dev figures to 2e-3;
#  3. the C serving path on each file (PyTorch-trained and C-trained) against
#     the package's forward (test_torch_forward with IX_TORCH_FWD_MODEL): h, c
#     the bf16 rounding of torch's step, predictions, fluctuation, shift and the
#     NLL-rule probability within 1e-5 relative;
#  4. load_ixm + save_ixm of the C-trained file gives the same bytes; a file
#     with one flipped byte is refused.
# Needs /usr/bin/python3 with python3-torch: fails (never skips) without.
set -euo pipefail
: "${IX_SOURCE_DIR:?}" "${IX_BINARY_DIR:?}"
CTL=$IX_BINARY_DIR/ctl/interestctl
FWD=$IX_BINARY_DIR/tests/test_torch_forward
CSV=$IX_SOURCE_DIR/data/taobao_userbehavior_head100k/small_sample.csv.gz
PY=/usr/bin/python3
for f in "$CTL" "$FWD"; do [ -x "$f" ] || { echo "FAIL: missing $f"; exit 1; }; done
[ -f "$CSV" ] || { echo "FAIL: missing $CSV"; exit 1; }
$PY -c 'import torch, numpy, msgpack' || { echo "FAIL: python3-torch, python3-numpy and python3-msgpack are required (Debian)"; exit 1; }
export PYTHONPATH=$IX_SOURCE_DIR/python
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$CTL" import --format taobao --input "$CSV" --output "$TMP/taobao.rec" >/dev/null
COMMON=(--events "$TMP/taobao.rec" --drop-user 1004381 --tz +08:00 --batch 16 --lr-decay 0.7
        --patience 4 --seed 1 --epochs 2)

echo "== 1. the same recipe on both sides"
"$CTL" train "${COMMON[@]}" --out "$TMP/c.ixm" --curve "$TMP/c.tsv" 2>&1 | tee "$TMP/c.log"
XC=$(sed -n 's/^train: experts: recency beta=\([0-9.e+-]*\) .*decay gamma=\([0-9.e+-]*\) half-life=\([0-9.e+-]*\)s.*/\1,\2,\3/p' "$TMP/c.log")
[ -n "$XC" ] || { echo "FAIL: interestctl train did not print the expert constants"; exit 1; }
echo "expert constants from interestctl train: $XC"
$PY -m interestd_torch.train "${COMMON[@]}" --expert-constants "$XC" --device cpu \
  --out "$TMP/py.ixm" --curve "$TMP/py.tsv" 2>&1 | tee "$TMP/py.log"
$PY - "$TMP/py.tsv" "$TMP/c.tsv" <<'PYEOF'
import sys
rows = [[l.split("\t") for l in open(p) if not l.startswith("#")] for p in sys.argv[1:]]
assert len(rows[0]) == len(rows[1]) == 2, rows
for a, b in zip(*rows):
    for col, name in ((1, "train loss"), (3, "dev NLL")):
        x, y = float(a[col]), float(b[col])
        print(f"epoch {a[0]} {name}: torch {x:.5f}  C {y:.5f}")
        assert abs(x - y) <= 2e-3, f"FAIL: {name} differs by {abs(x - y):.2e}"
PYEOF

echo "== 2. interestctl eval on both files"
for m in py c; do
  "$CTL" eval --events "$TMP/taobao.rec" --drop-user 1004381 --tz +08:00 --split dev \
    --no-baselines --model "$TMP/$m.ixm" > "$TMP/eval_$m.txt"
  cat "$TMP/eval_$m.txt"
done
$PY - "$TMP/py.tsv" "$TMP/eval_py.txt" <<'PYEOF'
import sys
last = [l.split("\t") for l in open(sys.argv[1]) if not l.startswith("#")][-1]
row = [l.split() for l in open(sys.argv[2]) if l.startswith("lstm ")][0]
mrr, nll = float(row[5]), float(row[6])
print(f"dev MRR@10: torch (float32) {float(last[2]):.4f}, interestctl eval {mrr:.4f}; "
      f"NLL {float(last[3]):.4f} vs {nll:.4f}")
assert abs(mrr - float(last[2])) <= 2e-3 and abs(nll - float(last[3])) <= 2e-3, "FAIL"
PYEOF

echo "== 3. the C serving path against PyTorch on each file"
for m in py c; do
  IX_TORCH_FWD_MODEL=$TMP/$m.ixm "$FWD"
done

echo "== 4. the file format both ways"
$PY - "$TMP/c.ixm" "$TMP/copy.ixm" <<'PYEOF'
import sys
from interestd_torch import load_ixm, parse_ixm, save_ixm
src, dst = sys.argv[1:]
save_ixm(dst, load_ixm(src))
a, b = open(src, "rb").read(), open(dst, "rb").read()
assert a == b, "FAIL: load_ixm + save_ixm changed the bytes"
bad = bytearray(a)
bad[len(a) // 2] ^= 0x10
try:
    parse_ixm(bytes(bad), "damaged")
    sys.exit("FAIL: a damaged file was accepted")
except ValueError as e:
    print(f"damaged file refused: {e}")
print(f"load_ixm + save_ixm: {len(a)} bytes, identical")
PYEOF
echo "test_torch_train: PASS"
