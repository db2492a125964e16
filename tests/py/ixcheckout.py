"""The output check of the kill tests (tests/integration/lib.sh
ix_check_predictions): ixcheckout.py IN OUT OFFLINE [TOPIC], record files of
the input, the recorded output topic, offline replay's output and
(optionally) the recorded input topic. Passes when the topic holds the input
file at its offsets, every input event has a prediction, and every
prediction equals offline replay's for its source event (all fields but the
wall-clock emit time) with the user id as its key; prints the number of
duplicated predictions."""
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import msgpack  # noqa: E402
import ixrec  # noqa: E402

in_path, out_path, off_path = sys.argv[1:4]
inp = {(p, o): v for p, o, _, _, v in ixrec.read_records(in_path)}
if len(sys.argv) > 4:
    topic = {(p, o): v for p, o, _, _, v in ixrec.read_records(sys.argv[4])}
    assert topic == inp, "the input topic does not hold the record file at its offsets"
ref = {}
for _, _, _, _, v in ixrec.read_records(off_path):
    d = msgpack.unpackb(v, raw=False)
    ref[(d["sp"], d["so"])] = ixrec.without_wall_clock(d)
count = collections.Counter()
wrong = []
for _, _, _, key, v in ixrec.read_records(out_path):
    d = msgpack.unpackb(v, raw=False)
    src = (d["sp"], d["so"])
    count[src] += 1
    if ref.get(src) != ixrec.without_wall_clock(d) or key != str(d["u"]).encode():
        wrong.append(src)
missing = [s for s in inp if s not in count]
total = sum(count.values())
print(f"output: {total} predictions for {len(count)} of {len(inp)} input events; "
      f"{total - len(count)} duplicated predictions "
      f"({sum(1 for c in count.values() if c > 1)} events answered more than once)")
assert not missing, f"{len(missing)} input events have no prediction, e.g. {sorted(missing)[:5]}"
assert not wrong, f"{len(wrong)} predictions differ from offline replay, e.g. {sorted(wrong)[:5]}"
print("every prediction equals offline replay's for its source event (all fields but 'et')")
