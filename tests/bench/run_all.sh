#!/usr/bin/env bash
# Runs every benchmark with the arguments its figures in docs/PERFORMANCE.md and
# docs/STATE.md were taken with (`./dev bench` builds build/release, then execs
# this). Each bench is printed under a header with its command and the load
# average before it starts; the exit status is 1 if any bench failed.
#   usage: tests/bench/run_all.sh [--quick] [--build DIR] [NAME...]
#   --quick     small sizes (a few minutes in all): checks that every bench
#               runs, not figures to record
#   --build DIR build directory holding the benches (default build/release)
#   NAME        run only these (bench_lstm bench_pipeline bench_e2e bench_store
#               bench_restore bench_metrics bench_checkpoint_latency bench_streams
#               bench_changelog_restore bench_changelog_cost)
# Timed runs: the machine is shared; note the load average next to any figure.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$SRC/build/release
QUICK=0
ONLY=()
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --build) BUILD=$(cd "$2" && pwd) || exit 2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "run_all.sh: unknown option $1" >&2; exit 2 ;;
    *) ONLY+=("$1") ;;
  esac
  shift
done
B=$BUILD/tests
TMP=${TMPDIR:-/tmp}
export IX_SOURCE_DIR=$SRC IX_BINARY_DIR=$BUILD

# name | full-size arguments | --quick arguments
# (1064 bytes: the served model's state blob, model state + emission memo)
BENCHES=(
  "bench_lstm||--quick"
  "bench_pipeline|256 3|256 1"
  "bench_e2e|100000 20000|20000 2000"
  "bench_store|1000000 1064|100000 1064"
  "bench_restore|1000000 1064 $TMP 0 3|100000 1064 $TMP"
  "bench_metrics|50000000|2000000"
  "bench_checkpoint_latency|$BUILD 1000000 1000 60 20|$BUILD 64000 1000 10 3"
  "bench_streams|$BUILD 50000 50000|$BUILD 20000 10000"
  "bench_changelog_restore|1000000 256|20000 8"
  "bench_changelog_cost|$BUILD 100000 3|$BUILD 20000 1"
)

selected() {
  ((${#ONLY[@]} == 0)) && return 0
  local n
  for n in "${ONLY[@]}"; do [ "$n" = "$1" ] || [ "$n" = "$1.sh" ] && return 0; done
  return 1
}

limit=3600
((QUICK)) && limit=600
failed=()
ran=0
t_all=$SECONDS
for entry in "${BENCHES[@]}"; do
  IFS='|' read -r name full quick <<<"$entry"
  selected "$name" || continue
  args=$full
  ((QUICK)) && args=$quick
  if [ -x "$B/$name" ]; then
    cmd=("$B/$name")
  elif [ -f "$SRC/tests/bench/$name.sh" ]; then
    cmd=(bash "$SRC/tests/bench/$name.sh")
  else
    echo "run_all.sh: $name: not built in $B" >&2
    failed+=("$name (missing)")
    continue
  fi
  # shellcheck disable=SC2206 # arguments are plain words
  cmd+=($args)
  echo
  echo "======== $name  ($(uptime | sed 's/.*load average/load average/'))"
  echo "\$ ${cmd[*]}"
  t0=$SECONDS
  timeout --kill-after=10 "$limit" "${cmd[@]}"
  rc=$?
  ran=$((ran + 1))
  if ((rc != 0)); then
    ((rc == 124)) && echo "run_all.sh: $name timed out after $limit s" >&2
    failed+=("$name (exit $rc)")
  fi
  echo "-------- $name: exit $rc, $((SECONDS - t0)) s"
done

echo
if ((ran == 0 && ${#failed[@]} == 0)); then
  echo "run_all.sh: no bench matched: ${ONLY[*]}" >&2
  exit 2
fi
if ((${#failed[@]})); then
  echo "run_all.sh: FAILED: ${failed[*]} ($((SECONDS - t_all)) s)"
  exit 1
fi
echo "run_all.sh: $ran benches passed ($((SECONDS - t_all)) s)"
