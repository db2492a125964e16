#!/usr/bin/env bash
# Builds the Kafka Streams peer: resolves pom.xml's pinned Maven Central artifacts into the
# local Maven repository (offline first, so a warm cache costs no network), compiles src/
# with javac (Java 17) into OUTDIR, and prints the classpath to run it with:
#   java -cp "$(tests/bench/streams/build.sh OUTDIR)" interestd.peer.StreamsPeer ...
# Needs mvn and a JDK (Debian: maven, openjdk-17-jdk-headless; ./dev setup installs them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build.sh OUTDIR}
die() { echo "streams/build.sh: $*" >&2; exit 1; }
command -v mvn >/dev/null || die "mvn not found (Debian package maven)"
command -v javac >/dev/null || die "javac not found (Debian package openjdk-17-jdk-headless)"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cp=$OUT/classpath
if [ ! -s "$cp" ] || [ "$HERE/pom.xml" -nt "$cp" ] || ! tr ':' '\n' < "$cp" | while read -r j; do [ -f "$j" ] || exit 1; done; then
  args=(-q -B -f "$HERE/pom.xml" dependency:build-classpath -Dmdep.includeScope=runtime "-Dmdep.outputFile=$cp.tmp")
  mvn -o "${args[@]}" >/dev/null 2>&1 || mvn "${args[@]}" >&2 || die "mvn could not fetch the peer's dependencies"
  mv "$cp.tmp" "$cp"
fi
stamp=$( (cat "$cp"; find "$HERE/src" -name '*.java' | sort | xargs cat) | sha1sum | cut -c1-16)
if [ "$(cat "$OUT/stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$OUT/classes"
  mkdir -p "$OUT/classes"
  find "$HERE/src" -name '*.java' > "$OUT/sources"
  javac --release 17 -Xlint:all -Werror -d "$OUT/classes" -cp "$(cat "$cp")" @"$OUT/sources" >&2 ||
    die "javac failed"
  echo "$stamp" > "$OUT/stamp"
fi
echo "$OUT/classes:$(cat "$cp")"
