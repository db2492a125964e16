#!/bin/bash
# The rooms' one-way dependencies (docs/ARCHITECTURE.md, "Rooms"), checked on
# the sources: a file in a room may include the project headers of the rooms
# listed for it below and no other, and only stream/ includes librdkafka's and
# msgpack-c's headers. Run by ctest (test_check_includes); exits non-zero
# naming each offending line. The build enforces the same project-header rule
# with per-room include roots (CMakeLists.txt, ix_room_includes).
set -euo pipefail
SRC=${IX_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$SRC"

declare -A ALLOWED=(
  [common]="common"
  [stream]="common stream"
  [model]="common model"
  [state]="common state"
  [sink]="common sink"
  [core]="common stream model state core"
  [daemon]="common stream model state core sink daemon"
  [ctl]="common stream model state core sink daemon ctl"
)
bad=0
for room in "${!ALLOWED[@]}"; do
  [ -d "$room" ] || { echo "check_includes: room $room/ is missing"; bad=1; continue; }
  while IFS= read -r hit; do
    file=${hit%%:*}; rest=${hit#*:}; line=${rest%%:*}
    inc=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*/\1/p' <<<"${rest#*:}")
    [ -n "$inc" ] || continue
    if ! grep -qw -- "$inc" <<<"${ALLOWED[$room]}"; then
      echo "$file:$line: $room/ must not include $inc/ (${rest#*:})"
      bad=1
    fi
  done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_]*/' "$room"/*.[ch] || true)
  if [ "$room" != stream ]; then
    while IFS= read -r hit; do
      echo "$hit: only stream/ includes librdkafka or msgpack-c headers"
      bad=1
    done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*<\(librdkafka/\|msgpack\)' "$room"/*.[ch] || true)
  fi
done
# every folder with C sources is a room the table above knows
for d in */; do
  d=${d%/}
  case $d in tests|build|docs|data|systemd) continue ;; esac
  if compgen -G "$d/*.[ch]" >/dev/null && [ -z "${ALLOWED[$d]+x}" ]; then
    echo "check_includes: $d/ holds C sources but is not a room in this script (and ARCHITECTURE.md)"
    bad=1
  fi
done
[ $bad -eq 0 ] && echo "check_includes: every room includes only what it may"
exit $bad
