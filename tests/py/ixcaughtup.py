"""Waits until the daemons behind the metrics URLs have caught up
(tests/integration/lib.sh ix_caught_up): ixcaughtup.py PARTS SECONDS
DELIVERED URL... exits 0 once, summed over the URLs, the consumer lag is 0
on PARTS partitions and (DELIVERED=1) every produced prediction was
delivered; 1 (printing the last lag seen) when SECONDS pass without
progress (events processed or predictions delivered growing, lag falling;
a loaded or sanitizer run catches up slowly but steadily), or 6 x SECONDS
in all."""
import sys
import time
import urllib.request

parts, seconds, delivered = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
urls = sys.argv[4:]
start = time.monotonic()
deadline = start + seconds
lag = []
progress = None
while time.monotonic() < min(deadline, start + 6 * seconds):
    time.sleep(0.5)
    texts = []
    try:
        for url in urls:
            texts.append(urllib.request.urlopen(url, timeout=2).read().decode())
    except OSError:
        continue
    lines = [l for t in texts for l in t.splitlines()]
    lag = [float(l.split()[-1]) for l in lines if l.startswith("interestd_consumer_lag_messages{")]

    def val(name):
        return sum(float(l.split()[-1]) for l in lines if l.startswith(name))

    now = (val("interestd_events_processed_total"), val("interestd_predictions_delivered_total"),
           -sum(lag))
    if progress is not None and any(a > b for a, b in zip(now, progress)):
        deadline = time.monotonic() + seconds
    progress = now if progress is None else tuple(max(a, b) for a, b in zip(now, progress))
    done = len(lag) == parts and sum(lag) == 0
    if done and delivered:
        done = val("interestd_predictions_produced_total") == val("interestd_predictions_delivered_total")
    if done:
        print(f"caught up: lag 0 on {parts} partitions across {len(urls)} member(s), "
              f"{val('interestd_events_processed_total'):.0f} events processed by them")
        sys.exit(0)
print(f"not caught up ({seconds:.0f} s without progress or {6 * seconds:.0f} s in all): lag {lag}")
sys.exit(1)
