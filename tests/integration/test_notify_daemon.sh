#!/usr/bin/env bash
# The daemon speaks sd_notify as systemd expects: run the real interestd
# (config file, consumer group on an `interestctl broker` mock cluster) with
# NOTIFY_SOCKET pointing at a datagram socket this test owns and
# WATCHDOG_USEC=300000, and check the sequence
#   READY=1 -> WATCHDOG=1 every ~150 ms -> SIGHUP: RELOADING=1, READY=1
#   -> WATCHDOG=1 ... -> SIGTERM: STOPPING=1 -> exit 0
# plus /healthz 200 and /metrics while it runs.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
. "$IX_SOURCE_DIR/tests/integration/lib.sh"

ix_broker events:2 interests:2
ix_conf "$T/interestd.conf" notify-test <<EOF
[state]
checkpoint_dir = $T/ckpt
checkpoint_interval_s = 1
[metrics]
listen = 127.0.0.1
port = 0
EOF
"$D" --check-config -c "$T/interestd.conf" > /dev/null || fail "--check-config refused the test's config"

"$PY" - "$D" "$T" <<'PY'
import os, re, signal, socket, subprocess, sys, time, urllib.request

daemon, tmp = sys.argv[1], sys.argv[2]
path = os.path.join(tmp, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="300000")
env.pop("WATCHDOG_PID", None)
log = open(os.path.join(tmp, "daemon.log"), "w+")
proc = subprocess.Popen([daemon, "-c", os.path.join(tmp, "interestd.conf")], env=env,
                        stdout=log, stderr=log)
msgs = []  # (time, text)

def fail(why):
    log.flush(); log.seek(0)
    sys.stderr.write(log.read()[-4000:])
    sys.stderr.write("\ndatagrams: %r\n" % [m for _, m in msgs])
    if proc.poll() is None:
        proc.kill()
    sys.exit("FAIL: " + why)

def recv_until(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            m = sock.recv(4096).decode()
        except socket.timeout:
            break
        msgs.append((time.monotonic(), m))
        if pred(m):
            return m
    return None

def since(i, kind):
    return [t for t, m in msgs[i:] if m == kind]

# 1. READY=1 once the group assigned partitions (mock group join ~3 s)
if not recv_until(lambda m: m == "READY=1", 30):
    fail("no READY=1 within 30 s")
before_ready = [m for _, m in msgs[:-1]]
if "WATCHDOG=1" in before_ready:
    fail("WATCHDOG=1 before READY=1")
ready_at = len(msgs)

# /healthz and /metrics on the port the daemon logged
port = None
for _ in range(50):
    log.flush(); log.seek(0)
    mt = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", log.read())
    if mt:
        port = int(mt.group(1)); break
    time.sleep(0.1)
if not port:
    fail("daemon did not log its metrics port")
health = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5)
if health.status != 200 or health.read() != b"ok\n":
    fail("/healthz not 200 ok after READY")
metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
for name in ("interestd_build_info{version=", "interestd_model_info{fingerprint=",
             "# TYPE interestd_event_to_prediction_seconds histogram",
             "interestd_partitions_assigned 2"):
    if name not in metrics:
        fail("/metrics lacks %s" % name)

# 2. watchdog pings from the loop at WATCHDOG_USEC/2 = 150 ms
recv_until(lambda m: False, 1.0)
pings = since(ready_at, "WATCHDOG=1")
if len(pings) < 4:
    fail("only %d WATCHDOG=1 in ~1 s after READY (want ~6)" % len(pings))
gaps = [b - a for a, b in zip(pings, pings[1:])]
print("watchdog: %d pings, gaps %.0f..%.0f ms" % (len(pings), min(gaps) * 1e3, max(gaps) * 1e3))
if max(gaps) > 0.45:
    fail("watchdog gap %.0f ms > 450 ms" % (max(gaps) * 1e3))

# 3. SIGHUP: RELOADING=1 (with MONOTONIC_USEC) then READY=1
hup_at = len(msgs)
proc.send_signal(signal.SIGHUP)
if not recv_until(lambda m: m.startswith("RELOADING=1"), 10):
    fail("no RELOADING=1 after SIGHUP")
rel = msgs[-1][1]
if not re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", rel):
    fail("unexpected reload datagram %r" % rel)
if not recv_until(lambda m: m == "READY=1", 10):
    fail("no READY=1 after RELOADING=1")
after_reload = len(msgs)
recv_until(lambda m: False, 0.6)
if len(since(after_reload, "WATCHDOG=1")) < 2:
    fail("watchdog stopped after the reload")

# 4. SIGTERM: STOPPING=1, then a clean exit
proc.send_signal(signal.SIGTERM)
if not recv_until(lambda m: m == "STOPPING=1", 10):
    fail("no STOPPING=1 after SIGTERM")
try:
    rc = proc.wait(timeout=30)
except subprocess.TimeoutExpired:
    fail("daemon did not exit within 30 s of SIGTERM")
if rc != 0:
    fail("daemon exited %d" % rc)
recv_until(lambda m: False, 0.2)

seq = [m.split("\n")[0] for _, m in msgs if not m.startswith(("STATUS=", "EXTEND_TIMEOUT_USEC="))]
compact = []
for m in seq:
    if not compact or compact[-1] != m or m != "WATCHDOG=1":
        compact.append(m)
print("sequence: " + " -> ".join(compact))
want = ["READY=1", "WATCHDOG=1", "RELOADING=1", "READY=1", "WATCHDOG=1", "STOPPING=1"]
if compact[:len(want)] != want:
    fail("sequence %s, want it to start with %s" % (compact, want))
statuses = [m for _, m in msgs if m.startswith("STATUS=")]
print("status datagrams: %d%s" % (len(statuses), (", last: " + statuses[-1]) if statuses else ""))
print("PASS")
PY
