#!/usr/bin/env bash
# The Debian package: build it with cpack in a temporary build directory,
# check its Depends (from dpkg-shlibdeps) and contents, install it with
# dpkg -i, run the installed interestd, then remove and purge it so the
# machine is left as it was.
# Needs root (CI runs as root) and changes the system's package database:
# exclude it from parallel or sanitizer passes by name (test_deb_package).
set -euo pipefail
SRC=${IX_SOURCE_DIR:?set IX_SOURCE_DIR}
PKG=interestd

fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in cpack dpkg dpkg-deb dpkg-shlibdeps; do
  command -v $tool >/dev/null || fail "$tool not installed (dpkg-shlibdeps: package dpkg-dev)"
done
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  sudo -n true 2>/dev/null || fail "needs root (or password-less sudo) to dpkg -i"
  SUDO=(sudo -n)
fi
if dpkg-query -W -f='${Status}' $PKG 2>/dev/null | grep -q "installed"; then
  fail "$PKG is already installed on this machine; not touching it"
fi

TMP=$(mktemp -d)
installed=0
cleanup() {
  if [ $installed = 1 ]; then "${SUDO[@]}" dpkg -P $PKG >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A package build: Release, prefix /usr; build only what is installed.
cmake -S "$SRC" -B "$TMP/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >"$TMP/configure.log" 2>&1 \
  || { cat "$TMP/configure.log" >&2; fail "configure"; }
cmake --build "$TMP/build" -j2 --target interestd interestctl >"$TMP/build.log" 2>&1 \
  || { tail -30 "$TMP/build.log" >&2; fail "build"; }
(cd "$TMP/build" && cpack -G DEB >"$TMP/cpack.log" 2>&1) \
  || { cat "$TMP/cpack.log" >&2; fail "cpack -G DEB"; }
DEB=$(ls "$TMP"/build/${PKG}_*.deb)
echo "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

# Depends names the Debian runtime libraries the binaries link.
depends=$(dpkg-deb -f "$DEB" Depends)
echo "Depends: $depends"
for lib in libc6 librdkafka1 libuv1 libsystemd0 libinih1 libjansson4 libyajl2 libhiredis0.14 zlib1g 'libopenblas0|libopenblas0-pthread|libopenblas0-openmp|libopenblas0-serial'; do
  echo "$depends" | grep -Eq "(^|[ ,|])($lib)( |,|$)" || fail "Depends lacks $lib"
done

# Contents and conffiles.
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/interestd /usr/bin/interestctl /lib/systemd/system/interestd.service \
         /lib/systemd/system/interestd@.service \
         /etc/interestd/interestd.conf /usr/share/man/man8/interestd.8 \
         /usr/share/man/man1/interestctl.1 /usr/share/doc/interestd/OPERATIONS.md \
         /usr/share/doc/interestd/grafana-dashboard.json; do
  echo "$contents" | grep -qx "$f" || fail "package lacks $f"
done
shopt -s nullglob
models=("$SRC"/model/weights/*.ixm)
for m in "${models[@]}"; do
  echo "$contents" | grep -qx "/usr/share/interestd/$(basename "$m")" \
    || fail "package lacks the bundled model $(basename "$m")"
done
echo "bundled models: ${#models[@]}"
dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles | grep -qx /etc/interestd/interestd.conf \
  || fail "/etc/interestd/interestd.conf is not a conffile"

# Install and run what was installed.
"${SUDO[@]}" dpkg -i "$DEB" >"$TMP/dpkg.log" 2>&1 || { cat "$TMP/dpkg.log" >&2; fail "dpkg -i"; }
installed=1
version=$(/usr/bin/interestd --version)
echo "installed: $version"
want=$(sed -n 's/^project(interestd VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[ "$version" = "interestd $want" ] || fail "--version printed '$version', want 'interestd $want'"
/usr/bin/interestctl --version | grep -qx "interestctl $want" || fail "interestctl --version"

if out=$(/usr/bin/interestd --check-config -c /etc/interestd/interestd.conf 2>&1); then
  echo "check-config on the installed default config: ok"
else
  echo "$out" >&2
  fail "interestd --check-config -c /etc/interestd/interestd.conf failed"
fi
# and it really checks: a broken config is refused
printf '[nosuchsection]\nfoo = 1\n' > "$TMP/bad.conf"
if /usr/bin/interestd --check-config -c "$TMP/bad.conf" >/dev/null 2>&1; then
  fail "--check-config accepted a config with an unknown section"
fi

# dpkg -r keeps the conffile, purge removes it.
"${SUDO[@]}" dpkg -r $PKG >/dev/null
[ ! -e /usr/bin/interestd ] || fail "/usr/bin/interestd left after dpkg -r"
[ -e /etc/interestd/interestd.conf ] || fail "dpkg -r removed the conffile"
"${SUDO[@]}" dpkg -P $PKG >/dev/null
installed=0
[ ! -e /etc/interestd/interestd.conf ] || fail "conffile left after purge"
! dpkg-query -W $PKG >/dev/null 2>&1 || dpkg-query -W -f='${Status}\n' $PKG | grep -q "not-installed" \
  || fail "package still known to dpkg"
echo "PASS"
