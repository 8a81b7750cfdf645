"""Summarises the --stats JSON of one `leader prove` run (used by scripts/bench-embedded)."""
import json
import statistics
import sys
from collections import defaultdict

stats = json.load(open(sys.argv[1]))
wall = stats["wall_ms"] / 1000
by_round = defaultdict(list)
for t in stats["tasks"]:
    name = t["round"] if t["round"] != "aggregate" else f"aggregate L{t['level']}"
    by_round[name].append(t["duration_ms"] / 1000)
busy = sum(sum(v) for v in by_round.values())
txs = stats["transactions"]
print(f"== {txs} transactions, {stats['workers']} workers, params {stats['params']}")
print(f"{'round':<14}{'tasks':>6}{'mean s':>9}{'max s':>9}{'sum s':>9}")
order = ["witness", "basic"] + sorted(k for k in by_round if k.startswith("aggregate")) + ["final", "compress"]
for name in order:
    v = by_round.get(name, [])
    if v:
        print(f"{name:<14}{len(v):>6}{statistics.mean(v):>9.2f}{max(v):>9.2f}{sum(v):>9.2f}")
print(f"wall time      {wall:.1f} s")
print(f"throughput     {txs / wall:.1f} tx/s")
rss = stats.get("peak_rss_kib")
print(f"peak RSS       {rss / 1024 / 1024:.2f} GiB" if rss else "peak RSS       n/a")
print(f"efficiency     {100 * busy / (stats['workers'] * wall):.1f} %")
# How busy the machine was, where efficiency says how busy the workers were: a task that runs
# alone still uses every core for its parallel parts (stats before this figure lack it).
if stats.get("cpu_ms") is not None:
    print(f"CPU use        {100 * stats['cpu_ms'] / 1000 / (stats['cores'] * wall):.1f} % of {stats['cores']} cores")
