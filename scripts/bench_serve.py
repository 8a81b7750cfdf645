"""The HTTP side of scripts/bench-serve: times acceptance, and jobs proved with and without a
client polling their status. Arguments: the service URL, the directory holding batch-N.json
(chains 1 to 5), the transaction count, the service's pid (for its CPU time)."""

import json
import os
import statistics
import sys
import threading
import time
import urllib.request

base, folder, txs, service_pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
TICKS = os.sysconf("SC_CLK_TCK")


def service_cpu():
    """CPU seconds the service process has used (user and system)."""
    with open(f"/proc/{service_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def call(method, path, body=None):
    request = urllib.request.Request(base + path, data=body, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read()


def batch(chain):
    with open(f"{folder}/batch-{chain}.json", "rb") as f:
        return f.read()


def accept(chain):
    body = batch(chain)
    started = time.perf_counter()
    status, reply = call("POST", "/v1/jobs", body)
    took = time.perf_counter() - started
    assert status == 202, (status, reply)
    return json.loads(reply)["id"], took


# Acceptance: chain 5's batch is submitted and cancelled five times (a cancelled batch does not
# count as proved, so the chain accepts it again).
times = []
for _ in range(5):
    job, took = accept(5)
    times.append(took)
    call("DELETE", f"/v1/jobs/{job}")
    while json.loads(call("GET", f"/v1/jobs/{job}")[1])["state"] == "running":
        time.sleep(0.1)
print(f"== acceptance of a {txs}-transaction witness ({len(batch(5)) / 2**20:.1f} MiB), 5 runs")
print(f"POST to 202: median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")


def prove(chain, poll_rate):
    job, _ = accept(chain)
    started = time.perf_counter()
    cpu_before, client_before = service_cpu(), time.process_time()
    stop = threading.Event()
    polls = [0]

    def poll():
        interval = 1 / poll_rate
        next_at = time.perf_counter()
        while not stop.is_set():
            call("GET", f"/v1/jobs/{job}")
            polls[0] += 1
            next_at += interval
            stop.wait(max(0.0, next_at - time.perf_counter()))

    poller = threading.Thread(target=poll) if poll_rate else None
    if poller:
        poller.start()
    while True:
        state = json.loads(call("GET", f"/v1/jobs/{job}")[1])["state"]
        if state != "running":
            break
        time.sleep(0.25)
    wall = time.perf_counter() - started
    stop.set()
    if poller:
        poller.join()
    assert state == "done", state
    return wall, polls[0], service_cpu() - cpu_before, time.process_time() - client_before


print(f"== {txs} transactions proved end to end, alone and polled 50 times a second")
runs = {"alone": [], "polled": []}
cpu = {"alone": [], "polled": []}
for chain, mode in [(1, "alone"), (2, "polled"), (3, "polled"), (4, "alone")]:
    wall, polls, service, client = prove(chain, 50 if mode == "polled" else 0)
    runs[mode].append(wall)
    cpu[mode].append((service, wall, polls))
    extra = f", {polls} status requests ({polls / wall:.0f}/s), client CPU {client:.2f} s" if polls else ""
    print(f"chain {chain} {mode:6}: {wall:.1f} s, service CPU {service:.2f} s{extra}")
alone, polled = statistics.mean(runs["alone"]), statistics.mean(runs["polled"])
spread = max(runs["alone"] + runs["polled"]) - min(runs["alone"] + runs["polled"])
print(f"mean alone {alone:.1f} s, polled {polled:.1f} s: {100 * (polled / alone - 1):+.1f}% (spread of all runs {spread:.1f} s)")
# What the polling costs the service itself, as a share of the job's wall time on one core: the
# client runs on the same machine here and takes CPU of its own, which a remote client would not.
extra = statistics.mean(c[0] for c in cpu["polled"]) - statistics.mean(c[0] for c in cpu["alone"])
requests = statistics.mean(c[2] for c in cpu["polled"])
print(f"service CPU for polling: {extra:.2f} s per job, {1e6 * extra / requests:.0f} us per status request, {100 * extra / polled:.2f}% of the job's wall time on one core")
