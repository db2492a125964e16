#!/bin/bash
# One training step's gradient (interestctl train --grad-dump) against
# torch.autograd on the same weights and inputs (tests/py/torch_grad.py):
# every parameter block within 1e-4 relative; the chunk must exercise a
# mid-chunk user reset, carried state, and all three NLL cases.
set -euo pipefail
: "${IX_SOURCE_DIR:?}" "${IX_BINARY_DIR:?}"
CTL=$IX_BINARY_DIR/ctl/interestctl
CSV=$IX_SOURCE_DIR/data/taobao_userbehavior_head100k/small_sample.csv.gz
[ -x "$CTL" ] || { echo "missing $CTL"; exit 1; }
[ -f "$CSV" ] || { echo "missing $CSV"; exit 1; }
/usr/bin/python3 -c 'import torch' || { echo "python3-torch is required (Debian python3-torch)"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$CTL" import --format taobao --input "$CSV" --output "$TMP/taobao.rec" >/dev/null
# the head with experts (the default) and the v1 gate (--no-experts); the
# chunks are ones that exercise every case for each
"$CTL" train --events "$TMP/taobao.rec" --drop-user 1004381 --tz +08:00 \
  --hidden 16 --vocab 60 --emb-cat 8 --emb-act 4 --batch 4 --bptt 6 \
  --grad-dump "$TMP/g" --grad-chunk 5
/usr/bin/python3 "$IX_SOURCE_DIR/tests/py/torch_grad.py" "$TMP/g"
# the same chunk with the 4 slots split across 3 workers (1, 1 and 2 slots,
# each its own gradient, summed in worker order)
"$CTL" train --events "$TMP/taobao.rec" --drop-user 1004381 --tz +08:00 \
  --hidden 16 --vocab 60 --emb-cat 8 --emb-act 4 --batch 4 --bptt 6 --threads 3 \
  --grad-dump "$TMP/g3" --grad-chunk 5
/usr/bin/python3 "$IX_SOURCE_DIR/tests/py/torch_grad.py" "$TMP/g3"
"$CTL" train --events "$TMP/taobao.rec" --drop-user 1004381 --tz +08:00 --no-experts \
  --hidden 16 --vocab 60 --emb-cat 8 --emb-act 4 --batch 4 --bptt 6 \
  --grad-dump "$TMP/g1" --grad-chunk 2
/usr/bin/python3 "$IX_SOURCE_DIR/tests/py/torch_grad.py" "$TMP/g1"
