"""Waits until the daemons behind the metrics URLs have caught up
(tests/integration/lib.sh ix_caught_up): ixcaughtup.py PARTS SECONDS
DELIVERED URL... exits 0 once, summed over the URLs, the consumer lag is 0
on PARTS partitions and (DELIVERED=1) every produced prediction was
delivered; 1 (printing the last lag seen) when SECONDS pass first."""
import sys
import time
import urllib.request

parts, seconds, delivered = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
urls = sys.argv[4:]
deadline = time.monotonic() + seconds
lag = []
while time.monotonic() < deadline:
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

    done = len(lag) == parts and sum(lag) == 0
    if done and delivered:
        done = val("interestd_predictions_produced_total") == val("interestd_predictions_delivered_total")
    if done:
        print(f"caught up: lag 0 on {parts} partitions across {len(urls)} member(s), "
              f"{val('interestd_events_processed_total'):.0f} events processed by them")
        sys.exit(0)
print(f"not caught up within {seconds:.0f} s: lag {lag}")
sys.exit(1)
