#!/bin/bash
# No file in the tree keeps a merge's conflict markers (a whole line of seven
# '<', '=' or '>' characters, the first two kinds followed by nothing or a
# space): exits non-zero naming each such line. Run by ctest
# (test_check_merge_markers). Files under build/ and .git are not looked at.
set -euo pipefail
SRC=${IX_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$SRC"
found=$(grep -rnIE --exclude-dir=.git --exclude-dir=build --exclude-dir=target \
  '^(<{7}( .*)?|={7}|>{7}( .*)?)$' . || true)
if [ -n "$found" ]; then
  echo "merge conflict markers left in the tree:"
  echo "$found"
  exit 1
fi
echo "no merge conflict markers in $(git ls-files 2>/dev/null | wc -l) tracked files"
