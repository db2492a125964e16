#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker and controller in one JVM) for the tests and
# benchmarks, on free loopback ports, in a scratch folder of its own, so that several
# can run on one machine at once.
#   kafka.sh fetch                 fetch the pinned release (tests/kafka/pom.xml) into the
#                                  local Maven repository; print its classpath file
#   kafka.sh start DIR [KEY=VALUE...]
#                                  format a log dir under DIR, start the broker, wait until
#                                  it answers; DIR/bootstrap then holds host:port, DIR/pid
#                                  the JVM's pid, DIR/kafka.log its log. Extra KEY=VALUE
#                                  pairs are appended to the broker's server.properties.
#   kafka.sh bootstrap DIR         print DIR/bootstrap (fails when no broker runs there)
#   kafka.sh stop DIR              stop the broker (TERM, then KILL after 20 s), remove DIR
# Environment: KAFKA_HEAP (default 512m), KAFKA_START_TIMEOUT (seconds, default 90).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/interestd
HEAP=${KAFKA_HEAP:-512m}
die() { echo "kafka.sh: $*" >&2; exit 1; }

# fetch: resolves the pom's dependencies (offline first, so a warm cache costs no network)
# and writes the classpath to $CACHE/kafka-<pom hash>.classpath; prints that path.
fetch() {
  command -v mvn >/dev/null || die "mvn not found (Debian package maven; ./dev setup installs it)"
  command -v java >/dev/null || die "java not found (Debian package default-jre-headless)"
  mkdir -p "$CACHE"
  local cp
  cp=$CACHE/kafka-$(sha1sum "$HERE/pom.xml" | cut -c1-12).classpath
  if [ ! -s "$cp" ] || ! tr ':' '\n' < "$cp" | while read -r j; do [ -f "$j" ] || exit 1; done; then
    local args=(-q -B -f "$HERE/pom.xml" dependency:build-classpath -Dmdep.includeScope=runtime
                "-Dmdep.outputFile=$cp.tmp")
    mvn -o "${args[@]}" >/dev/null 2>&1 || mvn "${args[@]}" >&2 || die "mvn could not fetch Kafka"
    mv "$cp.tmp" "$cp"
  fi
  echo "$cp"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# answers HOST:PORT: true when the broker returns metadata
answers() {
  timeout 5 kcat -b "$1" -L -m 3 -q >/dev/null 2>&1
}

start() {
  local dir=$1; shift
  [ -n "$dir" ] || die "usage: kafka.sh start DIR [KEY=VALUE...]"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    # left by an interrupted run (the folder is this script's own): replace it
    echo "kafka.sh: stopping the broker left running in $dir" >&2
    stop "$dir"
    mkdir -p "$dir"
  fi
  local cpfile cp t0 try
  cpfile=$(fetch)
  cp=$(cat "$cpfile")
  t0=$(date +%s.%N)
  # A free port found here can be taken by another test before the JVM binds it: try again
  # with new ports when the broker dies at start.
  for try in 1 2 3; do
    local port cport id
    port=$(free_port); cport=$(free_port)
    [ "$port" != "$cport" ] || continue
    rm -rf "$dir/data"; mkdir -p "$dir/data"
    cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=5000
log.cleaner.backoff.ms=1000
EOF
    local kv
    for kv in "$@"; do echo "$kv" >> "$dir/server.properties"; done
    cat > "$dir/log4j2.properties" <<EOF
rootLogger.level=WARN
rootLogger.appenderRef.f.ref=F
appender.f.type=File
appender.f.name=F
appender.f.fileName=$dir/kafka.log
appender.f.layout.type=PatternLayout
appender.f.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.server.name=org.apache.kafka.server
logger.server.level=INFO
EOF
    id=$(/usr/bin/python3 -c 'import uuid,base64; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    # --cluster-id=ID, not -t ID: a base64 id that starts with '-' (1 in 64) was taken for an option
    java -cp "$cp" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
      kafka.tools.StorageTool format --cluster-id="$id" -c "$dir/server.properties" > "$dir/format.log" 2>&1 \
      || die "formatting the log dir failed: $(cat "$dir/format.log")"
    # setsid: the broker is not in the caller's process group, so a test runner's signal to
    # the group does not reach it; stop() ends it by pid.
    setsid java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties" \
      -cp "$cp" kafka.Kafka "$dir/server.properties" > "$dir/stdout.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid" > "$dir/pid"
    local limit=$(( $(date +%s) + ${KAFKA_START_TIMEOUT:-90} ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$limit" ]; do
      if answers "127.0.0.1:$port"; then
        echo "127.0.0.1:$port" > "$dir/bootstrap"
        echo "kafka.sh: broker $pid answers on 127.0.0.1:$port after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s" >&2
        return 0
      fi
      sleep 0.3
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      die "broker did not answer within ${KAFKA_START_TIMEOUT:-90} s; $dir/kafka.log: $(tail -20 "$dir/kafka.log")"
    fi
    echo "kafka.sh: broker exited at start (try $try): $(grep -m3 -E 'ERROR|Exception' "$dir/kafka.log" "$dir/stdout.log" || true)" >&2
  done
  die "broker did not start after 3 tries; see $dir/kafka.log"
}

stop() {
  local dir=${1:?usage: kafka.sh stop DIR} pid
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
  fi
  rm -rf "$dir"
}

cmd=${1:-}; shift || true
case "$cmd" in
  fetch) fetch ;;
  start) start "${1:-}" "${@:2}" ;;
  stop) stop "$@" ;;
  bootstrap) d=${1:?usage: kafka.sh bootstrap DIR}
             [ -s "$d/bootstrap" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null || die "no broker runs in $d"
             cat "$d/bootstrap" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
