"""The driver of scripts/soak: submits the batches, waits for every job while sampling the memory
of the processes that run throughout, then verifies each proof and checks what the workers'
logs and the broker say. Arguments: the service URL, the work directory (batch-N.json, the
workers' JSON logs), the job count, the time limit in minutes, the pids of the service and of
the worker that is never killed, the RabbitMQ virtual host, the leader binary."""

import base64
import collections
import json
import subprocess
import sys
import time
import urllib.request

base, folder, jobs, minutes = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
serve_pid, survivor_pid, vhost, leader = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]


def call(method, path, body=None):
    request = urllib.request.Request(base + path, data=body, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


started = time.monotonic()
ids = []
for i in range(1, jobs + 1):
    with open(f"{folder}/batch-{i}.json", "rb") as f:
        status, reply = call("POST", "/v1/jobs", f.read())
    assert status == 202, (status, reply)
    ids.append(json.loads(reply)["id"])
print(f"== {jobs} jobs submitted in {time.monotonic() - started:.1f} s")

memory = {"service": [], "worker w1": []}
states = {}
deadline = started + minutes * 60
while time.monotonic() < deadline:
    states = {i: json.loads(call("GET", f"/v1/jobs/{i}")[1]) for i in ids}
    memory["service"].append(rss_mib(serve_pid))
    memory["worker w1"].append(rss_mib(survivor_pid))
    if all(s["state"] != "running" for s in states.values()):
        break
    time.sleep(5)
wall = time.monotonic() - started
by_state = collections.Counter(s["state"] for s in states.values())
print(f"== after {wall:.0f} s: {dict(by_state)}")
failures = [f"{i}: {s['error']}" for i, s in states.items() if s["state"] != "done"]
for f in failures:
    print("  not done:", f)

verified = 0
for i in ids:
    if states[i]["state"] != "done":
        continue
    _, proof = call("GET", f"/v1/jobs/{i}/proof")
    path = f"{folder}/{i}.proof.json"
    with open(path, "wb") as f:
        f.write(proof)
    check = subprocess.run([leader, "verify", "--proof", path], capture_output=True, text=True)
    if check.returncode == 0:
        verified += 1
    else:
        failures.append(f"{i}: verify failed: {check.stderr.strip()}")
print(f"== proofs verified: {verified} of {jobs}")

# Every task proved once: a "task done" that wrote its outputs (not reused) per planned task.
fleet_jobs = {j for s in states.values() for j in s["jobs"]}
planned = sum(r["planned"] for s in states.values() for r in s["rounds"].values())
proved = collections.Counter()
reused = 0
for w in ("w1", "w2", "w3"):
    with open(f"{folder}/worker-{w}.log") as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            fields = event.get("fields", {})
            if fields.get("message") != "task done" or fields.get("job") not in fleet_jobs:
                continue
            task = (fields["job"], fields["round"], fields.get("level", 0), fields["index"])
            if fields.get("reused"):
                reused += 1
            else:
                proved[task] += 1
twice = [t for t, n in proved.items() if n > 1]
print(f"== tasks: {planned} planned, {len(proved)} proved, {len(twice)} proved more than once, "
      f"{max(planned - len(proved), 0)} never; {reused} found their outputs already written")
for t in twice:
    failures.append(f"task {t} proved {proved[t]} times")
if len(proved) < planned:
    failures.append(f"{planned - len(proved)} tasks never proved")

with open(f"{folder}/kills.log") as f:
    kills = sum(1 for _ in f)
print(f"== workers killed with SIGKILL: {kills}")

auth = "Basic " + base64.b64encode(b"guest:guest").decode()
request = urllib.request.Request(f"http://127.0.0.1:15672/api/queues/{vhost}/zkfleet.dead",
                                 headers={"Authorization": auth})
with urllib.request.urlopen(request, timeout=30) as response:
    dead = json.loads(response.read()).get("messages", 0)
print(f"== dead-letter queue: {dead} messages")
if dead:
    failures.append(f"{dead} dead-lettered tasks")

for name, samples in memory.items():
    if samples:
        quarter = max(len(samples) // 4, 1)
        early, late = max(samples[:quarter]), max(samples[-quarter:])
        print(f"== RSS of {name}: first quarter max {early:.0f} MiB, last quarter max {late:.0f} MiB, "
              f"peak {max(samples):.0f} MiB ({len(samples)} samples)")

print("== soak:", "passed" if not failures else f"FAILED ({len(failures)} problems)")
sys.exit(1 if failures else 0)
