#!/usr/bin/env python3
"""Replay a recorded queue-depth timeline through KEDA's and the HPA's scaling rules.

Input: the CSV of record-queues.py (t_seconds, queue, ready, unacked) and the chart's rendered
manifests. For every ScaledObject the replay runs, second by second:

- KEDA (operator): every pollingInterval it reads the trigger's metric: the sum, over the queues
  its regex selects, of ready + unacked messages (ready only with excludeUnacknowledged). The
  trigger is active when the metric is above activationValue. An active trigger takes the
  target from 0 to max(1, minReplicaCount); after cooldownPeriod seconds without activity KEDA
  takes it back to minReplicaCount (0).
- HPA (kube-controller-manager, every --hpa-sync seconds, only while replicas > 0): the metric
  is an AverageValue target, so desired = ceil(metric / value) unless metric / (value *
  replicas) is within the tolerance (0.1) of 1; the recommendation is stabilized (scale up to
  the lowest recommendation of the scale-up window, down to the highest of the scale-down
  window), then limited by the scaleUp/scaleDown policies over their periods and by
  [max(1, minReplicaCount), maxReplicaCount].

Pod start-up, node provisioning and the metric's own lag are not modelled: replicas here are
the counts the two controllers ask for. ScaledJobs are not replayed (each Job exits by itself).

With --check, the replay asserts what the deployment promises and exits 1 when it does not:
scale-up under backlog, no scale-down while any task of the pool is unacked, zero when idle.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass, field

import yaml

HPA_TOLERANCE = 0.1
# The HPA's behaviour when a ScaledObject gives none (Kubernetes defaults).
DEFAULT_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]},
}


class Timeline:
    """Queue depths over time; the value at t is the last sample at or before t."""

    def __init__(self, path: str):
        self.samples: dict[str, list[tuple[float, int, int]]] = {}
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                self.samples.setdefault(row["queue"], []).append(
                    (float(row["t_seconds"]), int(row["ready"]), int(row["unacked"])))
        for rows in self.samples.values():
            rows.sort()
        self.end = max(rows[-1][0] for rows in self.samples.values())

    def at(self, queue: str, t: float) -> tuple[int, int]:
        ready = unacked = 0
        for when, r, u in self.samples.get(queue, []):
            if when > t:
                break
            ready, unacked = r, u
        return ready, unacked


@dataclass
class Pool:
    """One ScaledObject with a single rabbitmq trigger, and the replay's state for it."""
    name: str
    regex: re.Pattern
    value: float
    activation: float
    exclude_unacked: bool
    polling: int
    cooldown: int
    min_replicas: int
    max_replicas: int
    behavior: dict
    queues: list[str] = field(default_factory=list)
    replicas: int = 0
    last_active: float = -math.inf
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def from_scaled_object(cls, doc: dict) -> "Pool":
        spec = doc["spec"]
        triggers = [t for t in spec["triggers"] if t["type"] == "rabbitmq"]
        if len(triggers) != 1:
            raise ValueError(f"{doc['metadata']['name']}: expected one rabbitmq trigger")
        meta = triggers[0]["metadata"]
        pattern = meta["queueName"] if meta.get("useRegex") == "true" else re.escape(meta["queueName"])
        behavior = {**DEFAULT_BEHAVIOR}
        configured = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        for direction in ("scaleUp", "scaleDown"):
            behavior[direction] = {**DEFAULT_BEHAVIOR[direction], **configured.get(direction, {})}
        return cls(
            name=doc["metadata"].get("labels", {}).get("zkfleet.io/pool", doc["metadata"]["name"]),
            regex=re.compile(pattern),
            value=float(meta["value"]),
            activation=float(meta.get("activationValue", 0)),
            exclude_unacked=meta.get("excludeUnacknowledged", "false") == "true",
            polling=int(spec.get("pollingInterval", 30)),
            cooldown=int(spec.get("cooldownPeriod", 300)),
            min_replicas=int(spec.get("minReplicaCount", 0)),
            max_replicas=int(spec.get("maxReplicaCount", 100)),
            behavior=behavior,
        )

    def depth(self, timeline: Timeline, t: float) -> tuple[int, int]:
        ready = unacked = 0
        for queue in self.queues:
            r, u = timeline.at(queue, t)
            ready, unacked = ready + r, unacked + u
        return ready, unacked

    def metric(self, timeline: Timeline, t: float) -> int:
        ready, unacked = self.depth(timeline, t)
        return ready if self.exclude_unacked else ready + unacked

    # -- KEDA -----------------------------------------------------------------------------
    def keda_poll(self, metric: float, t: float) -> None:
        if metric > self.activation:
            self.last_active = t
            if self.replicas == 0:
                self.replicas = max(1, self.min_replicas)
        elif self.replicas > self.min_replicas and t - self.last_active >= self.cooldown:
            self.replicas = self.min_replicas

    # -- HPA ------------------------------------------------------------------------------
    def hpa_sync(self, metric: float, t: float) -> None:
        if self.replicas == 0:
            return  # the HPA is idle at zero; KEDA owns 0 <-> 1
        current = self.replicas
        ratio = metric / (self.value * current)
        desired = current if abs(ratio - 1.0) <= HPA_TOLERANCE else math.ceil(metric / self.value)
        stabilized = self._stabilize(desired, t)
        new = self._limit_rate(stabilized, t)
        if new > current:
            self.up_events.append((t, new - current))
        elif new < current:
            self.down_events.append((t, current - new))
        self.replicas = new

    def _stabilize(self, desired: int, t: float) -> int:
        up_window = self.behavior["scaleUp"]["stabilizationWindowSeconds"]
        down_window = self.behavior["scaleDown"]["stabilizationWindowSeconds"]
        up, down = desired, desired
        for when, rec in self.recommendations:
            if when > t - up_window:
                up = min(up, rec)
            if when > t - down_window:
                down = max(down, rec)
        self.recommendations.append((t, desired))
        horizon = max(up_window, down_window)
        self.recommendations = [(w, r) for w, r in self.recommendations if w > t - horizon]
        return min(max(self.replicas, up), down)

    def _changed_within(self, events: list[tuple[float, int]], period: int, t: float) -> int:
        return sum(n for when, n in events if when > t - period)

    def _limit_rate(self, desired: int, t: float) -> int:
        current = self.replicas
        floor = max(1, self.min_replicas)
        if desired > current:
            rules = self.behavior["scaleUp"]
            if rules.get("selectPolicy") == "Disabled":
                return current
            pick = min if rules.get("selectPolicy") == "Min" else max
            limits = []
            for p in rules["policies"]:
                start = (current - self._changed_within(self.up_events, p["periodSeconds"], t)
                         + self._changed_within(self.down_events, p["periodSeconds"], t))
                limits.append(start + p["value"] if p["type"] == "Pods"
                              else math.ceil(start * (1 + p["value"] / 100)))
            return min(desired, max(pick(limits), current), self.max_replicas)
        if desired < current:
            rules = self.behavior["scaleDown"]
            if rules.get("selectPolicy") == "Disabled":
                return current
            pick = max if rules.get("selectPolicy") == "Min" else min
            limits = []
            for p in rules["policies"]:
                start = (current - self._changed_within(self.up_events, p["periodSeconds"], t)
                         + self._changed_within(self.down_events, p["periodSeconds"], t))
                limits.append(start - p["value"] if p["type"] == "Pods"
                              else int(start * (1 - p["value"] / 100)))
            return max(desired, min(pick(limits), current), floor)
        return min(max(current, floor), self.max_replicas)


def load_pools(manifest_paths: list[str], timeline: Timeline) -> list[Pool]:
    pools = []
    for path in manifest_paths:
        with open(path) as handle:
            for doc in yaml.safe_load_all(handle):
                if doc and doc.get("kind") == "ScaledObject":
                    pool = Pool.from_scaled_object(doc)
                    pool.queues = [q for q in timeline.samples if pool.regex.fullmatch(q)]
                    pools.append(pool)
    return pools


def replay(timeline: Timeline, pools: list[Pool], hpa_sync: int) -> list[dict]:
    """Run both controllers once a second; return one row per second."""
    rows = []
    for second in range(int(timeline.end) + 1):
        t = float(second)
        row = {"t": second}
        for pool in pools:
            metric = pool.metric(timeline, t)
            if second % pool.polling == 0:
                pool.keda_poll(metric, t)
            if second % hpa_sync == 0:
                pool.hpa_sync(metric, t)
            ready, unacked = pool.depth(timeline, t)
            row[pool.name] = {"replicas": pool.replicas, "ready": ready, "unacked": unacked}
        rows.append(row)
    return rows


def check(rows: list[dict], pools: list[Pool], hpa_sync: int) -> list[str]:
    """The three promises of the deployment; returns the broken ones."""
    failures = []
    for pool in pools:
        series = [r[pool.name] for r in rows]
        demand = [min(pool.max_replicas, math.ceil((s["ready"] + s["unacked"]) / pool.value)) for s in series]
        # Scale-up under backlog: demand above one replica for two HPA periods must raise the
        # pool above one replica, and activity must wake the pool within one polling interval.
        if sum(d > 1 for d in demand) >= 2 * hpa_sync:
            if max(s["replicas"] for s in series) < 2:
                failures.append(f"{pool.name}: backlog of {max(demand)} replicas' worth never scaled the pool up")
        active = [i for i, s in enumerate(series) if s["ready"] + s["unacked"] > pool.activation]
        if active:
            woke = next((i for i, s in enumerate(series) if s["replicas"] > 0), None)
            if woke is None or woke > active[0] + pool.polling:
                failures.append(f"{pool.name}: work at t={active[0]} s but no replica until t={woke}")
        # No scale-down while a task of the pool is unacked.
        for i in range(1, len(series)):
            if series[i]["replicas"] < series[i - 1]["replicas"] and series[i]["unacked"] > 0:
                failures.append(f"{pool.name}: scaled {series[i - 1]['replicas']} -> {series[i]['replicas']} "
                                f"at t={i} s with {series[i]['unacked']} unacked tasks")
                break
        # Zero when idle: back at zero within cooldown + polling of the last activity.
        last = active[-1] if active else -1
        if len(series) - 1 - last > pool.cooldown + pool.polling:
            deadline = last + pool.cooldown + pool.polling
            if series[deadline]["replicas"] != 0 or series[-1]["replicas"] != 0:
                failures.append(f"{pool.name}: still {series[deadline]['replicas']} replicas at t={deadline} s, "
                                f"idle since t={last + 1} s")
        elif pool.min_replicas == 0:
            failures.append(f"{pool.name}: the timeline ends before an idle cooldown ({pool.cooldown} s); "
                            "record a longer idle tail")
    return failures


def print_table(rows: list[dict], pools: list[Pool], out=sys.stdout) -> None:
    header = f"{'t(s)':>6}" + "".join(f" | {p.name + ' ready':>10} {'unacked':>7} {'replicas':>8}" for p in pools)
    print(header, file=out)
    print("-" * len(header), file=out)
    previous = None
    for row in rows:
        state = tuple(row[p.name]["replicas"] for p in pools)
        if state != previous or row["t"] % 60 == 0 or row is rows[-1]:
            cells = "".join(f" | {row[p.name]['ready']:>10} {row[p.name]['unacked']:>7} {row[p.name]['replicas']:>8}"
                            for p in pools)
            print(f"{row['t']:>6}{cells}", file=out)
        previous = state


def plot(rows: list[dict], pools: list[Pool], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t"] for r in rows]
    fig, axes = plt.subplots(len(pools), 1, figsize=(10, 3.2 * len(pools)), sharex=True, squeeze=False)
    for ax, pool in zip(axes[:, 0], pools):
        ready = [r[pool.name]["ready"] for r in rows]
        unacked = [r[pool.name]["unacked"] for r in rows]
        ax.stackplot(t, unacked, ready, labels=["unacked (in progress)", "ready (backlog)"],
                     colors=["#f4a259", "#8cb369"], alpha=0.6, step="post")
        ax.set_ylabel("tasks")
        twin = ax.twinx()
        twin.step(t, [r[pool.name]["replicas"] for r in rows], where="post", color="#33658a",
                  linewidth=2, label="replicas")
        twin.set_ylabel("replicas")
        twin.set_ylim(bottom=0, top=max(1, pool.max_replicas) + 1)
        ax.set_title(f"pool {pool.name}: queues {', '.join(q.rsplit('.', 1)[-1] for q in pool.queues)}")
        lines, labels = ax.get_legend_handles_labels()
        more, more_labels = twin.get_legend_handles_labels()
        ax.legend(lines + more, labels + more_labels, loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("timeline", help="CSV of record-queues.py")
    parser.add_argument("manifests", nargs="+", help="rendered chart (YAML) with the ScaledObjects")
    parser.add_argument("--hpa-sync", type=int, default=15, help="HPA sync period in seconds (default 15)")
    parser.add_argument("--png", help="write the replicas-over-time plot here")
    parser.add_argument("--title", default="zkfleet autoscaling replay")
    parser.add_argument("--check", action="store_true", help="assert the scaling promises; exit 1 if broken")
    args = parser.parse_args()

    timeline = Timeline(args.timeline)
    pools = load_pools(args.manifests, timeline)
    if not pools:
        print("simulate: no ScaledObject in the manifests", file=sys.stderr)
        return 1
    rows = replay(timeline, pools, args.hpa_sync)
    print_table(rows, pools)
    if args.png:
        plot(rows, pools, args.png, args.title)
    if args.check:
        failures = check(rows, pools, args.hpa_sync)
        for failure in failures:
            print(f"simulate: {failure}", file=sys.stderr)
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
