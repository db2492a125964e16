#!/usr/bin/env bash
# The systemd unit: `systemd-analyze verify` reports nothing on stderr (it
# exits 0 even on problems, so stderr is what counts), and
# `systemd-analyze security --offline=true` scores the exposure <= 2.0.
#
# The unit runs /usr/bin/interestd, which exists only once the package is
# installed; so a copy of the unit is verified with ExecStart pointed at the
# built binary (everything else unchanged), and the man page it names is
# looked up in the source tree's docs/man via MANPATH.
set -euo pipefail
SRC=${IX_SOURCE_DIR:?set IX_SOURCE_DIR}
BIN=${IX_BINARY_DIR:?set IX_BINARY_DIR}
UNIT=$SRC/systemd/interestd.service
DAEMON=$BIN/daemon/interestd

fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not installed (package systemd)"
[ -f "$UNIT" ] || fail "missing $UNIT"
[ -x "$DAEMON" ] || fail "built daemon $DAEMON missing: build first"
grep -q '^ExecStart=/usr/bin/interestd ' "$UNIT" || fail "ExecStart does not run /usr/bin/interestd"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
sed "s|^ExecStart=/usr/bin/interestd |ExecStart=$DAEMON |" "$UNIT" > "$TMP/interestd.service"
grep -q "^ExecStart=$DAEMON " "$TMP/interestd.service" || fail "could not point ExecStart at $DAEMON"

# Documentation=man:interestd(8): let `man` find the page from the tree.
MANOPT=()
if command -v man >/dev/null; then
  [ -f "$SRC/docs/man/interestd.8" ] || fail "missing docs/man/interestd.8 named by the unit"
  mkdir -p "$TMP/man/man8"
  cp "$SRC/docs/man/interestd.8" "$TMP/man/man8/"
  export MANPATH=$TMP/man
else
  echo "note: man(1) not installed, verifying without the man page check (--man=no)"
  MANOPT=(--man=no)
fi

verify() { # unit file -> stderr text
  (cd "$TMP" && systemd-analyze verify "${MANOPT[@]}" "$1" 2>&1 >/dev/null) || true
}

# The check itself must catch a broken unit, or an empty stderr proves nothing.
cp "$TMP/interestd.service" "$TMP/broken.service"
sed -i 's/^\[Service\]$/[Service]\nNoSuchSetting=1\nExecStart=\/nonexistent\/interestd/' "$TMP/broken.service"
broken=$(verify "$TMP/broken.service")
echo "$broken" | grep -q "NoSuchSetting" || fail "verify did not report an unknown key: $broken"

out=$(verify "$TMP/interestd.service")
if [ -n "$out" ]; then
  echo "$out" >&2
  fail "systemd-analyze verify printed warnings"
fi
echo "systemd-analyze verify: no warnings"

# Security: the score is for the unit as shipped.
report=$(cd "$TMP" && systemd-analyze security --offline=true "$UNIT" 2>&1 || true)
score=$(echo "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -1)
[ -n "$score" ] || { echo "$report" >&2; fail "no exposure score in the report"; }
echo "$report" | grep '✗' || true
echo "systemd-analyze security exposure: $score (must be <= 2.0)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0"

# What the daemon relies on is there.
for want in 'Type=notify' 'WatchdogSec=' 'ExecReload=/bin/kill -HUP $MAINPID' \
            'DynamicUser=yes' 'StateDirectory=interestd' 'ConfigurationDirectory=interestd' \
            'CapabilityBoundingSet=$' 'SystemCallFilter=@system-service' 'MemoryMax='; do
  grep -q "^$want" "$UNIT" || fail "unit lacks $want"
done
echo "PASS"
