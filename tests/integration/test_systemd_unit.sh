#!/usr/bin/env bash
# The systemd units (interestd.service and the template interestd@.service,
# verified as instance interestd@test.service): `systemd-analyze verify`
# reports nothing on stderr (it exits 0 even on problems, so stderr is what
# counts), and `systemd-analyze security --offline=true` scores the exposure
# <= 2.0; the template differs from the main unit only in its per-instance
# lines.
#
# The unit runs /usr/bin/interestd, which exists only once the package is
# installed; so a copy of the unit is verified with ExecStart pointed at the
# built binary (everything else unchanged), and the man page it names is
# looked up in the source tree's docs/man via MANPATH.
set -euo pipefail
SRC=${IX_SOURCE_DIR:?set IX_SOURCE_DIR}
BIN=${IX_BINARY_DIR:?set IX_BINARY_DIR}
DAEMON=$BIN/daemon/interestd

fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not installed (package systemd)"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
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

check_unit() { # unit file, name to verify it under
  UNIT=$1 NAME=$2
  echo "== $NAME"
  [ -f "$UNIT" ] || fail "missing $UNIT"
  [ -x "$DAEMON" ] || fail "built daemon $DAEMON missing: build first"
  grep -q '^ExecStart=/usr/bin/interestd ' "$UNIT" || fail "ExecStart does not run /usr/bin/interestd"
  sed "s|^ExecStart=/usr/bin/interestd |ExecStart=$DAEMON |" "$UNIT" > "$TMP/$NAME"
  grep -q "^ExecStart=$DAEMON " "$TMP/$NAME" || fail "could not point ExecStart at $DAEMON"
  
  verify() { # unit file -> stderr text
    (cd "$TMP" && systemd-analyze verify "${MANOPT[@]}" "$1" 2>&1 >/dev/null) || true
  }
  
  # The check itself must catch a broken unit, or an empty stderr proves nothing.
  cp "$TMP/$NAME" "$TMP/broken-$NAME"
  sed -i 's/^\[Service\]$/[Service]\nNoSuchSetting=1\nExecStart=\/nonexistent\/interestd/' "$TMP/broken-$NAME"
  broken=$(verify "$TMP/broken-$NAME")
  echo "$broken" | grep -q "NoSuchSetting" || fail "verify did not report an unknown key: $broken"
  
  out=$(verify "$TMP/$NAME")
  if [ -n "$out" ]; then
    echo "$out" >&2
    fail "systemd-analyze verify printed warnings"
  fi
  echo "systemd-analyze verify: no warnings"
  
  # Security: the score is for the unit as shipped (a template as an instance).
  mkdir -p "$TMP/shipped"
  cp "$UNIT" "$TMP/shipped/$NAME"
  report=$(cd "$TMP" && systemd-analyze security --offline=true "$TMP/shipped/$NAME" 2>&1 || true)
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
}

check_unit "$SRC/systemd/interestd.service" interestd.service
check_unit "$SRC/systemd/interestd@.service" interestd@test.service

# The template is the main unit with per-instance config, state and tag only.
diff <(grep -v '^#' "$SRC/systemd/interestd.service") <(grep -v '^#' "$SRC/systemd/interestd@.service") \
  | grep '^>' > "$TMP/template.diff" || true
for want in 'Description=.*%i' 'ExecStart=/usr/bin/interestd -c /etc/interestd/%i.conf' \
            'StateDirectory=interestd/%i' 'WorkingDirectory=/var/lib/interestd/%i' \
            'SyslogIdentifier=interestd-%i'; do
  grep -q "^> $want" "$TMP/template.diff" || fail "template lacks $want"
done
[ "$(wc -l < "$TMP/template.diff")" -eq 5 ] || { cat "$TMP/template.diff" >&2; fail "template differs in more than its per-instance lines"; }
echo "template: differs from interestd.service only in Description, ExecStart, StateDirectory, WorkingDirectory, SyslogIdentifier"
echo "PASS"
