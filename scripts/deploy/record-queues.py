#!/usr/bin/env python3
"""Record the depth of the fleet's task queues, once a second, from RabbitMQ's management API.

The CSV it writes (t_seconds, queue, ready, unacked) is what scripts/deploy/simulate.py replays
through KEDA's and the HPA's scaling rules. Run it beside a real `leader prove` against the
fleet's broker:

    record-queues.py --topology topology.json --out timeline.csv --idle-stop 420

or let it drive a synthetic job itself (`--drive`): it declares the task queues in a vhost of its
own, plays a leader that publishes a batch's task graph round by round, and two pools of
consumers that take the tasks with prefetch 1, hold each one unacked for the round's task
time, publish the tasks that depend on it and ack. The vhost is deleted at the end. Queue names
always come from the topology that `worker --print-topology` prints.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# Seconds a task of each round holds its consumer in --drive mode (times --time-scale): the
# figures of a 2-core machine at default parameters (README and DESIGN.md).
TASK_SECONDS = {"witness": 4.0, "basic": 6.0, "aggregate": 3.0, "final": 30.0, "compress": 30.0}


class Management:
    """The few calls of RabbitMQ's management HTTP API this script needs."""

    def __init__(self, url: str, user: str, password: str):
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=self.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def queues(self, vhost: str) -> list[dict]:
        path = f"/api/queues/{urllib.parse.quote(vhost, safe='')}?columns=name,messages_ready,messages_unacknowledged"
        result = self.call("GET", path)
        assert isinstance(result, list)
        return result


def record(api: Management, vhost: str, queues: list[str], out: str, stop: threading.Event,
           idle_stop: float, max_seconds: float) -> None:
    """Poll every second until `stop` is set and the queues have been empty for `idle_stop` s."""
    start = time.monotonic()
    idle_since: float | None = None
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_seconds", "queue", "ready", "unacked"])
        while True:
            now = time.monotonic() - start
            try:
                depth = {q["name"]: q for q in api.queues(vhost)}
            except (urllib.error.URLError, OSError) as error:
                print(f"record-queues: management API: {error}", file=sys.stderr)
                depth = {}
            busy = False
            for name in queues:
                q = depth.get(name, {})
                ready = int(q.get("messages_ready") or 0)
                unacked = int(q.get("messages_unacknowledged") or 0)
                busy = busy or ready > 0 or unacked > 0
                writer.writerow([f"{now:.1f}", name, ready, unacked])
            handle.flush()
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            if stop.is_set() and idle_since is not None and now - idle_since >= idle_stop:
                return
            if now >= max_seconds:
                print("record-queues: --max-seconds reached", file=sys.stderr)
                return
            time.sleep(max(0.0, 1.0 - (time.monotonic() - start - now)))


class SyntheticJob:
    """A leader's view of one batch: which tasks to publish once a task completes.

    Shape of a real job at default parameters: one witness task, one basic task per chunk of
    transactions, aggregation levels of arity 2 up to a single proof, then final and compress.
    """

    def __init__(self, basic_tasks: int, levels: int):
        self.lock = threading.Lock()
        self.width = [basic_tasks]
        for _ in range(levels):
            self.width.append(max(1, (self.width[-1] + 1) // 2))
        self.done: dict[tuple[str, int], set[int]] = {}
        self.finished = threading.Event()

    def first(self) -> list[dict]:
        return [{"round": "witness", "level": 0, "index": 0}]

    def complete(self, task: dict) -> list[dict]:
        """Record a finished task and return the tasks whose inputs now all exist."""
        kind, level, index = task["round"], task["level"], task["index"]
        with self.lock:
            if kind == "witness":
                return [{"round": "basic", "level": 0, "index": i} for i in range(self.width[0])]
            if kind == "final":
                return [{"round": "compress", "level": 0, "index": 0}]
            if kind == "compress":
                self.finished.set()
                return []
            done = self.done.setdefault((kind, level), set())
            done.add(index)
            if level + 1 >= len(self.width):
                return [{"round": "final", "level": 0, "index": 0}]
            parent = index // 2
            children = {2 * parent, 2 * parent + 1} & set(range(self.width[level]))
            if children <= done:
                return [{"round": "aggregate", "level": level + 1, "index": parent}]
            return []


def drive(args: argparse.Namespace, topology: dict, stop: threading.Event) -> None:
    import pika  # only --drive needs an AMQP client

    params = pika.URLParameters(args.amqp_uri)
    params.heartbeat = 0  # consumers sleep inside callbacks to stand for proving
    queues = topology["task_queues"]
    exchange = topology["task_exchange"]
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.exchange_declare(topology["dead_letter_exchange"], "fanout", durable=True)
        channel.queue_declare(topology["dead_letter_queue"], durable=True)
        channel.queue_bind(topology["dead_letter_queue"], topology["dead_letter_exchange"])
        channel.exchange_declare(exchange, "direct", durable=True)
        for round_name, queue in queues.items():
            channel.queue_declare(queue, durable=True, arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": topology["delivery_limit"],
                "x-dead-letter-exchange": topology["dead_letter_exchange"],
            })
            channel.queue_bind(queue, exchange, routing_key=round_name)

    job = SyntheticJob(args.basic_tasks, args.levels)
    pools = {"gpu": ["basic"], "cpu": [r for r in queues if r != "basic"]}

    def consumer(rounds: list[str]) -> None:
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=1)

            def on_task(ch, method, _properties, body):
                task = json.loads(body)
                time.sleep(TASK_SECONDS[task["round"]] * args.time_scale)
                for follow in job.complete(task):
                    ch.basic_publish(exchange, follow["round"], json.dumps(follow).encode(),
                                     pika.BasicProperties(delivery_mode=2))
                ch.basic_ack(method.delivery_tag)

            for round_name in rounds:
                channel.basic_consume(queues[round_name], on_task)
            while not job.finished.is_set():
                connection.process_data_events(time_limit=0.5)

    threads = [threading.Thread(target=consumer, args=(rounds,), daemon=True)
               for name, rounds in pools.items() for _ in range(args.consumers)]
    time.sleep(args.lead_in)
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for task in job.first():
            channel.basic_publish(exchange, task["round"], json.dumps(task).encode(),
                                  pika.BasicProperties(delivery_mode=2))
    time.sleep(args.backlog_seconds)  # let the backlog build before anyone consumes
    for thread in threads:
        thread.start()
    job.finished.wait()
    for thread in threads:
        thread.join(timeout=10)
    stop.set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", required=True, help="output of worker --print-topology")
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--management-url", default="http://127.0.0.1:15672")
    parser.add_argument("--user", default="guest")
    parser.add_argument("--password", default="guest")
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--idle-stop", type=float, default=420.0,
                        help="stop once every queue has been empty this long (default 420 s, past KEDA's cooldown)")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--drive", action="store_true", help="publish and consume a synthetic job (own vhost)")
    parser.add_argument("--amqp-uri", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--basic-tasks", type=int, default=64, help="--drive: basic tasks (chunks) of the batch")
    parser.add_argument("--levels", type=int, default=6, help="--drive: aggregation levels")
    parser.add_argument("--consumers", type=int, default=4, help="--drive: consumers per pool")
    parser.add_argument("--time-scale", type=float, default=1.0, help="--drive: factor on every task time")
    parser.add_argument("--lead-in", type=float, default=20.0, help="--drive: idle seconds before the job")
    parser.add_argument("--backlog-seconds", type=float, default=15.0,
                        help="--drive: seconds between publishing and the consumers' start")
    args = parser.parse_args()

    with open(args.topology) as handle:
        topology = json.load(handle)
    queues = list(topology["task_queues"].values())
    api = Management(args.management_url, args.user, args.password)
    stop = threading.Event()

    if not args.drive:
        stop.set()  # stop on idleness alone
        record(api, args.vhost, queues, args.out, stop, args.idle_stop, args.max_seconds)
        return 0

    vhost = f"zkfleet-record-{int(time.time())}"
    quoted = urllib.parse.quote(vhost, safe="")
    api.call("PUT", f"/api/vhosts/{quoted}", {})
    api.call("PUT", f"/api/permissions/{quoted}/{urllib.parse.quote(args.user)}",
             {"configure": ".*", "write": ".*", "read": ".*"})
    args.amqp_uri = args.amqp_uri.rstrip("/") + "/" + quoted
    try:
        driver = threading.Thread(target=drive, args=(args, topology, stop), daemon=True)
        driver.start()
        record(api, vhost, queues, args.out, stop, args.idle_stop, args.max_seconds)
        driver.join(timeout=5)
    finally:
        api.call("DELETE", f"/api/vhosts/{quoted}")  # removes its queues and exchanges too
    return 0


if __name__ == "__main__":
    sys.exit(main())
