#!/usr/bin/env bash
# Regenerates the golden files of tests/integration/test_offline_golden.sh.
# Run it only after a DELIBERATE change of the processing (model file, model
# kernels, features/head, pipeline, emission policy, codec) and commit the
# new files with a message saying why the predictions changed.
#   usage: tests/golden/regenerate.sh [BUILD_DIR]     (default build/release)
# Needs a CPU with AVX-512 (F, DQ) and AVX2+FMA to write all three kernels'
# files; a kernel the CPU lacks is reported and its file left as it is.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build/release}
CTL=$BUILD/ctl/interestctl
G=$SRC/tests/golden
MODEL=$SRC/model/weights/taobao-h64.ixm
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

"$CTL" import --format taobao --input "$SRC/tests/data/taobao_head1000.csv" \
  --output "$G/taobao_head1000.rec" --partitions 8 >/dev/null
for k in scalar avx2 avx512; do
  if [ "$k" = avx512 ]; then env -u IX_KERNEL "$CTL" replay --offline --input "$G/taobao_head1000.rec" \
      --output "$T/p.rec" --model "$MODEL" 2> "$T/err"
  else IX_KERNEL=$k "$CTL" replay --offline --input "$G/taobao_head1000.rec" \
      --output "$T/p.rec" --model "$MODEL" 2> "$T/err"
  fi
  if ! grep -q "kernel=$k;" "$T/err"; then
    echo "regenerate: this CPU cannot run the $k kernel; taobao_head1000.$k.pred.rec.gz left as it is"
    continue
  fi
  gzip -9 -n -c "$T/p.rec" > "$G/taobao_head1000.$k.pred.rec.gz"
  echo "regenerate: $(grep -o '[0-9]* predictions' "$T/err") with the $k kernel -> taobao_head1000.$k.pred.rec.gz"
done
