#!/usr/bin/env python3
"""Offline checks of the deployment: images, chart, KEDA objects, Terraform, autoscaling replay.

Run through scripts/check-deploy, which sets up the virtualenv and passes the topology that the
built `worker --print-topology` prints. Every check prints one PASS or FAIL line; the exit code
is 1 when any failed. `--write-keda` regenerates keda/ from the chart first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "zkfleet"
KEDA_DIR = ROOT / "keda"
TERRAFORM = ROOT / "terraform"
# Replayed timelines: a driven job at default parameters (long backlog), and a real zkfleet job on
# two workers (`leader prove` beside record-queues.py; see docs/deploy.md).
TIMELINES = {
    "driven": ROOT / "scripts" / "deploy" / "queue-timeline.csv",
    "fleet": ROOT / "scripts" / "deploy" / "queue-timeline-fleet.csv",
}
EXPLAINED = ROOT / "scripts" / "deploy" / "checkov-explained.yaml"
RELEASE, NAMESPACE = "zkfleet", "zkfleet"
# Value sets the chart is rendered with; each file lists only what differs from the defaults.
VALUE_SETS = {"default": "default-values.yaml", "gpu": "gpu-values.yaml", "gpu-job": "gpu-job-values.yaml"}
# API groups whose objects kubernetes-validate knows; the rest are CRDs, checked structurally.
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
               "autoscaling/v2"}
KUBE_VERSION = "1.31"
KEDA_KINDS = {"ScaledObject", "ScaledJob", "TriggerAuthentication"}


class Report:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def result(self, name: str, problems: list[str], detail: str = "") -> None:
        if problems:
            self.failed.append(name)
            print(f"FAIL {name}")
            for problem in problems:
                print(f"     - {problem}")
        else:
            print(f"PASS {name}{': ' + detail if detail else ''}")
        sys.stdout.flush()


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


# -- images ---------------------------------------------------------------------------------
def check_images(report: Report) -> None:
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    problems = []
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / name).read_text()
        pinned = re.findall(r"^ARG RUST_VERSION=(\S+)$", text, re.M)
        if pinned != [channel]:
            problems.append(f"{name}: ARG RUST_VERSION={pinned} but rust-toolchain.toml pins {channel}")
        if not re.search(r"^USER (?!0\b|root\b)\S+", text, re.M):
            problems.append(f"{name}: the final stage has no non-root USER")
        if len(re.findall(r"^FROM ", text, re.M)) < 2:
            problems.append(f"{name}: not a multi-stage build")
        problems += [f"{name}: {p}" for p in cargo_build_problems(text)]
    report.result("images: multi-stage, non-root, toolchain pinned, features declared", problems, f"Rust {channel}")


def cargo_build_problems(dockerfile: str) -> list[str]:
    """Every package a `cargo build` in the Dockerfile names exists in the workspace, and every
    feature it asks for is declared by one of those packages (read from `cargo metadata`)."""
    meta = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    features = {pkg["name"]: set(pkg["features"]) for pkg in json.loads(meta.stdout)["packages"]}
    problems = []
    for command in re.findall(r"cargo build[^\n]*", dockerfile.replace("\\\n", " ")):
        packages = re.findall(r"(?:-p|--package)\s+(\S+)", command)
        wanted = [f for group in re.findall(r"--features\s+(\S+)", command) for f in group.split(",")]
        for package in packages:
            if package not in features:
                problems.append(f"cargo build names package {package}, which the workspace lacks")
        for feature in wanted:
            package, _, name = feature.rpartition("/")
            declared = features.get(package, set()) if package else set().union(*(features.get(p, set()) for p in packages))
            if name not in declared:
                problems.append(f"cargo build asks for feature {feature!r}, which no Cargo.toml of {packages} declares")
    return problems


# -- chart ----------------------------------------------------------------------------------
def render_all(out: Path, report: Report) -> dict[str, list[dict]]:
    import helm_python as helm

    rendered: dict[str, list[dict]] = {}
    lint_problems, render_problems = [], []
    for stale in out.glob("rendered-*.yaml"):
        stale.unlink()
    for name, file in VALUE_SETS.items():
        values = yaml.safe_load((CHART / "ci" / file).read_text()) or {}
        lint = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
        for message in lint.get("messages", []):
            if message["severity"] >= 2:
                lint_problems.append(f"{name}: {message['path']}: {message['error']}")
        lint_problems += [f"{name}: {e}" for e in lint.get("errors", [])]
        try:
            with helm.Chart.load(str(CHART)) as chart:
                manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as error:
            render_problems.append(f"{name}: {error}")
            continue
        text = "\n".join(f"---\n# Source: {path}\n{body}" for path, body in sorted(manifests.items())
                         if path.endswith(".yaml") and body.strip())
        (out / f"rendered-{name}.yaml").write_text(text)
        rendered[name] = docs_of(text)
    report.result("helm lint (strict)", lint_problems, ", ".join(VALUE_SETS))
    report.result("helm render", render_problems,
                  "; ".join(f"{n}: {len(d)} objects" for n, d in rendered.items()))
    return rendered


def check_kubernetes_schemas(rendered: dict[str, list[dict]], report: Report) -> None:
    import kubernetes_validate

    problems, count = [], 0
    for name, docs in rendered.items():
        for doc in docs:
            if doc.get("apiVersion") in CORE_GROUPS:
                count += 1
                try:
                    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
                except kubernetes_validate.ValidationError as error:
                    problems.append(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {error.message}")
    report.result(f"kubernetes-validate {KUBE_VERSION} (strict)", problems, f"{count} core objects")


def pool_pods(docs: list[dict]) -> dict[str, dict]:
    """Pod spec of each worker pool, from its Deployment or its ScaledJob."""
    pods = {}
    for doc in docs:
        pool = doc.get("metadata", {}).get("labels", {}).get("zkfleet.io/pool")
        if doc["kind"] == "Deployment" and pool:
            pods[pool] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "ScaledJob" and pool:
            pods[pool] = doc["spec"]["jobTargetRef"]["template"]["spec"]
    return pods


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def check_pods(rendered: dict[str, list[dict]], report: Report) -> None:
    problems = []
    for name, docs in rendered.items():
        for pool, pod in pool_pods(docs).items():
            where = f"{name}/{pool}"
            worker = pod["containers"][0]
            env = env_of(worker)
            grace = int(env.get("ZKFLEET_GRACE_PERIOD") or 25)
            if int(pod.get("terminationGracePeriodSeconds", 30)) <= grace:
                problems.append(f"{where}: terminationGracePeriodSeconds must exceed --grace-period {grace}")
            for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
                if worker.get(probe, {}).get("httpGet", {}).get("path") != path:
                    problems.append(f"{where}: {probe} is not GET {path}")
            if not worker.get("lifecycle", {}).get("preStop"):
                problems.append(f"{where}: no preStop hook")
            resources = worker.get("resources", {})
            if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
                problems.append(f"{where}: requests and a memory limit are required")
            if pool == "gpu":
                if str(resources.get("limits", {}).get("nvidia.com/gpu")) != "1":
                    problems.append(f"{where}: GPU pods must limit nvidia.com/gpu")
                if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
                    problems.append(f"{where}: GPU pods must tolerate the nvidia.com/gpu taint")
            if not pod.get("nodeSelector"):
                problems.append(f"{where}: no nodeSelector")
            if not pod.get("securityContext", {}).get("runAsNonRoot"):
                problems.append(f"{where}: pods must run as non-root")
        for doc in docs:
            if doc["kind"] == "RabbitmqCluster":
                config = doc["spec"]["rabbitmq"]["additionalConfig"]
                timeout = re.search(r"^\s*consumer_timeout\s*=\s*(\d+)", config, re.M)
                grace = max(int(env_of(p["containers"][0]).get("ZKFLEET_GRACE_PERIOD") or 25)
                            for p in pool_pods(docs).values())
                # The longest task (about 30 s, plus a first circuit build) fits in the grace
                # period; the consumer timeout must be far above both.
                if not timeout or int(timeout.group(1)) < 10 * grace * 1000:
                    problems.append(f"{name}: consumer_timeout must be set well above the longest task")
                plugins = set(doc["spec"]["rabbitmq"].get("additionalPlugins", []))
                if not {"rabbitmq_management", "rabbitmq_prometheus"} <= plugins:
                    problems.append(f"{name}: RabbitmqCluster lacks the management or Prometheus plugin")
    report.result("worker pods: probes, grace period, preStop, resources, GPU scheduling", problems)


# -- the fleet's shape: leader service, broker, scaling ownership, scraping, values schema ----
# A second namespace to render in: one that is neither the release's name nor the namespace of
# the other renders, so that a name resolved only in the release's namespace shows.
OTHER_NAMESPACE = "proving-east"


def rabbitmq_pod_labels(cluster: str) -> dict[str, str]:
    """Labels the RabbitMQ cluster operator puts on a RabbitmqCluster's pods and services."""
    return {"app.kubernetes.io/name": cluster, "app.kubernetes.io/component": "rabbitmq",
            "app.kubernetes.io/part-of": "rabbitmq"}


def render_chart(values: dict, namespace: str = NAMESPACE) -> list[dict]:
    """The chart's manifests for values, as `helm install` would create them (the values are
    validated against values.schema.json first). Raises helm.HelmError."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values=values, name=RELEASE, namespace=namespace, is_install=True)
    return docs_of("\n".join(f"---\n{body}" for path, body in sorted(manifests.items())
                             if path.endswith(".yaml") and body.strip()))


def ci_values(name: str) -> dict:
    return yaml.safe_load((CHART / "ci" / VALUE_SETS[name]).read_text()) or {}


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects labels. An empty
    selector selects nothing here: the chart never means "every pod"."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) \
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def leader_deployments(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "Deployment"
            and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "leader"]


def check_broker_host(report: Report) -> None:
    """KEDA's operator runs in its own namespace and resolves a trigger's host from there: a bare
    service name finds no broker and no pool ever wakes. Rendered in a namespace of its own, every
    trigger must name the broker as <service>.<namespace>.svc (or a name the user qualified)."""
    from urllib.parse import urlsplit

    external = ci_values("gpu-job")  # an existing broker, broker.host rabbitmq.messaging
    cases = [
        ("chart's RabbitmqCluster", ci_values("default"), f"{RELEASE}-rabbitmq.{OTHER_NAMESPACE}.svc"),
        ("broker.host as a bare name", {**external, "broker": {**external["broker"], "host": "rabbitmq"}},
         f"rabbitmq.{OTHER_NAMESPACE}.svc"),
        ("broker.host as <service>.<namespace>", external, external["broker"]["host"]),
    ]
    problems, triggers = [], 0
    for what, values, want in cases:
        try:
            docs = render_chart(values, OTHER_NAMESPACE)
        except Exception as error:  # noqa: BLE001 - a failed render is the finding
            problems.append(f"{what}: render failed: {error}")
            continue
        for scaler in (d for d in docs if d["kind"] in ("ScaledObject", "ScaledJob")):
            for trigger in scaler["spec"]["triggers"]:
                triggers += 1
                host = urlsplit(trigger["metadata"].get("host", "")).hostname
                if host != want:
                    problems.append(f"{what}: {scaler['metadata']['name']} trigger host is {host!r}, want {want!r} "
                                    "(KEDA resolves it from its own namespace)")
        for pod in pool_pods(docs).values():
            uri = env_of(pod["containers"][0]).get("ZKFLEET_AMQP_URI", "")
            if uri.rpartition("@")[2].split(":")[0].split("/")[0] != want:
                problems.append(f"{what}: workers reach the broker at {uri!r}, not at {want!r} like KEDA")
    if not triggers:
        problems.append("no trigger rendered")
    report.result(f"KEDA trigger host is <service>.<namespace>.svc (rendered in namespace {OTHER_NAMESPACE})",
                  problems, f"{triggers} triggers in {len(cases)} renders")


def check_scaled_replicas(rendered: dict[str, list[dict]], report: Report) -> None:
    """A Deployment that KEDA scales must not state `replicas`: Helm applies it on every upgrade,
    which takes a busy pool to that count (zero) until the HPA restores it."""
    problems, checked = [], 0
    for name, docs in rendered.items():
        deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
        for scaler in (d for d in docs if d["kind"] == "ScaledObject"):
            target = deployments.get(scaler["spec"]["scaleTargetRef"]["name"])
            if target is None:
                continue  # reported by the KEDA check
            checked += 1
            if "replicas" in target["spec"]:
                problems.append(f"{name}: Deployment {target['metadata']['name']} sets replicas: "
                                f"{target['spec']['replicas']}, but {scaler['metadata']['name']} owns its count")
    if not checked:
        problems.append("no ScaledObject targets a rendered Deployment")
    report.result("KEDA-scaled worker Deployments leave replicas to KEDA", problems, f"{checked} Deployments")


def check_broker_replicas(rendered: dict[str, list[dict]], report: Report) -> None:
    """Quorum queues need a majority of broker nodes: one node has no redundancy, two lose the
    majority with either node. The chart's defaults must give three or more, an odd number."""
    problems = []
    clusters = [d for d in rendered.get("default", []) if d["kind"] == "RabbitmqCluster"]
    if len(clusters) != 1:
        problems.append(f"the chart's defaults render {len(clusters)} RabbitmqClusters, want 1")
    for cluster in clusters:
        replicas = cluster["spec"].get("replicas", 1)
        if replicas < 3 or replicas % 2 == 0:
            problems.append(f"RabbitmqCluster {cluster['metadata']['name']} has {replicas} replica(s) by default, "
                            "want an odd number of at least 3 (quorum queues)")
        anti = cluster["spec"].get("affinity", {}).get("podAntiAffinity", {})
        terms = [t.get("podAffinityTerm", t) for k in anti.values() for t in k]
        if not any(t.get("topologyKey") == "kubernetes.io/hostname"
                   and selects(t.get("labelSelector", {}), rabbitmq_pod_labels(cluster["metadata"]["name"]))
                   for t in terms):
            problems.append(f"RabbitmqCluster {cluster['metadata']['name']} does not spread its nodes over machines")
    report.result("RabbitMQ: three or more nodes by default, spread over machines", problems,
                  ", ".join(f"{c['metadata']['name']}: {c['spec'].get('replicas')}" for c in clusters))


def scrape_targets(docs: list[dict]) -> dict[str, tuple[dict[str, str], dict[str, int], str]]:
    """What must be scraped: target -> (its pods' labels, their named container ports, the path)."""
    targets = {}
    for leader in leader_deployments(docs):
        pod = leader["spec"]["template"]
        targets["leader"] = (pod["metadata"]["labels"], container_ports(pod["spec"]), "/metrics")
    for doc in docs:
        pool = doc["metadata"].get("labels", {}).get("zkfleet.io/pool")
        if doc["kind"] == "Deployment" and pool:
            pod = doc["spec"]["template"]
        elif doc["kind"] == "ScaledJob" and pool:
            pod = doc["spec"]["jobTargetRef"]["template"]
        else:
            continue
        targets[f"{pool} workers"] = (pod["metadata"]["labels"], container_ports(pod["spec"]), "/metrics")
    for cluster in (d for d in docs if d["kind"] == "RabbitmqCluster"):
        # The operator names port 15692 `prometheus`; the dashboard's queue panels read the
        # per-queue metrics.
        targets["RabbitMQ"] = (rabbitmq_pod_labels(cluster["metadata"]["name"]), {"prometheus": 15692},
                               "/metrics/per-object")
    return targets


def container_ports(pod_spec: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in pod_spec.get("containers", []) for p in c.get("ports", [])
            if "name" in p}


def check_scraping(rendered: dict[str, list[dict]], report: Report) -> None:
    """GKE's managed Prometheus reads PodMonitorings and nothing else: with it on, the leader,
    every worker pool and RabbitMQ must each be selected by one, on a port their pods name."""
    problems, sets = [], []
    for name, docs in rendered.items():
        monitors = [d for d in docs if d["kind"] == "PodMonitoring"]
        if not monitors:
            continue
        sets.append(name)
        for target, (labels, ports, path) in scrape_targets(docs).items():
            scraped = [m["metadata"]["name"] for m in monitors if selects(m["spec"].get("selector", {}), labels)
                       and any(e.get("port") in ports and e.get("path", "/metrics") == path
                               for e in m["spec"].get("endpoints", []))]
            if len(scraped) != 1:
                problems.append(f"{name}: {target} is scraped by PodMonitorings {scraped}, want exactly one "
                                f"on a port its pods name ({sorted(ports)}) with path {path}")
    if not sets:
        problems.append("no value set renders a PodMonitoring (metrics.gkePodMonitoring.enabled)")
    report.result("Managed Prometheus: PodMonitorings cover the leader, every worker pool and RabbitMQ", problems,
                  f"sets {', '.join(sets)}")


def check_leader(rendered: dict[str, list[dict]], report: Report) -> None:
    """The leader is `leader serve` in one Deployment that never runs twice (Recreate), behind a
    Service on its named port, with a token, probes and the workers' hardening. No batch Job
    remains: a Job per batch made Helm delete the last one and re-run old batches."""
    problems = []
    for name, docs in rendered.items():
        for job in (d for d in docs if d["kind"] == "Job"):
            problems.append(f"{name}: the chart renders Job {job['metadata']['name']}; batches go to the leader's API")
        leaders = leader_deployments(docs)
        if len(leaders) != 1:
            problems.append(f"{name}: {len(leaders)} leader Deployments, want 1")
            continue
        existing = ci_values(name).get("leader", {}).get("apiToken", {}).get("existingSecret")
        problems += [f"{name}: {p}" for p in leader_pod_problems(leaders[0], docs, existing)]
        problems += [f"{name}: {p}" for p in leader_exposure_problems(leaders[0], docs)]
    report.result("leader: `leader serve` Deployment (1 replica, Recreate), Service, token, probes; no batch Job",
                  problems)


def leader_pod_problems(leader: dict, docs: list[dict], existing_secret: str | None) -> list[str]:
    problems = []
    spec, pod = leader["spec"], leader["spec"]["template"]["spec"]
    if spec.get("replicas") != 1:
        problems.append(f"leader replicas is {spec.get('replicas')!r}, want 1")
    if spec.get("strategy", {}).get("type") != "Recreate":
        problems.append(f"leader strategy is {spec.get('strategy')}, want Recreate (one leader at a time)")
    container = pod["containers"][0]
    argv = container.get("command", []) + container.get("args", [])
    env = env_of(container)
    if argv[:2] != ["leader", "serve"]:
        problems.append(f"leader runs {argv}, want leader serve")
    listen = env.get("ZKFLEET_LISTEN") or next((b for a, b in zip(argv, argv[1:]) if a == "--listen"), "")
    ports = container_ports(pod)
    if "http" not in ports or listen != f"0.0.0.0:{ports['http']}":
        problems.append(f"leader listens on {listen!r} but names port http {ports.get('http')}")
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("http", ports.get("http")):
            problems.append(f"leader {probe} is not GET {path} on port http")
    resources = container.get("resources", {})
    if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
        problems.append("leader needs requests and a memory limit")
    if not pod.get("securityContext", {}).get("runAsNonRoot") \
            or not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
        problems.append("leader must run as non-root on a read-only root filesystem")
    # The token: a file from a Secret volume, or an environment variable from a Secret. Without
    # one, `leader serve` refuses to listen on anything but loopback.
    secret = None
    if env.get("ZKFLEET_API_TOKEN_FILE"):
        mounts = {m["name"]: m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])}
        secret = next((v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v
                       and env["ZKFLEET_API_TOKEN_FILE"].startswith(mounts.get(v["name"], "\0"))), None)
    else:
        token_env = next((e for e in container.get("env", []) if e["name"] == "ZKFLEET_API_TOKEN"), {})
        secret = token_env.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
    rendered_secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    if secret is None:
        problems.append("leader gets no API token from a Secret")
    elif secret not in rendered_secrets and secret != existing_secret:
        problems.append(f"leader's token Secret {secret} is neither rendered nor leader.apiToken.existingSecret")
    return problems


def leader_exposure_problems(leader: dict, docs: list[dict]) -> list[str]:
    """One Service reaches the leader's http port, an Ingress routes to that Service, and no
    NetworkPolicy shuts the port."""
    problems = []
    labels = leader["spec"]["template"]["metadata"]["labels"]
    http = ("http", container_ports(leader["spec"]["template"]["spec"]).get("http"))
    services = [s for s in docs if s["kind"] == "Service"
                and selects({"matchLabels": s["spec"].get("selector", {})}, labels)]
    if len(services) != 1:
        problems.append(f"{len(services)} Services select the leader, want 1")
    for service in services:
        if not any(p.get("name") == "http" and p.get("targetPort") in http for p in service["spec"]["ports"]):
            problems.append(f"Service {service['metadata']['name']} has no port http to the leader's port")
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                port = backend["port"].get("name", backend["port"].get("number"))
                if backend["name"] not in {s["metadata"]["name"] for s in services} or port not in http:
                    problems.append(f"Ingress {ingress['metadata']['name']} routes to {backend}, "
                                    "not the leader's port http")
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        if selects(policy["spec"]["podSelector"], labels) and "Ingress" in policy["spec"].get("policyTypes", []):
            allowed = {p.get("port") for rule in policy["spec"].get("ingress", []) for p in rule.get("ports", [])}
            if not allowed & set(http):
                problems.append(f"NetworkPolicy {policy['metadata']['name']} shuts the leader's port http")
    return problems


def check_values_schema(report: Report) -> None:
    """values.schema.json refuses what would deploy something else than asked for: wrong types,
    unknown modes, and keys the chart does not read (a misspelling, a removed setting)."""
    import helm_python as helm

    base = ci_values("default")
    bad = {
        "rabbitmq.replicas as a string": {"rabbitmq": {"replicas": "3"}},
        "a pool's maxReplicas below 1": {"pools": {"cpu": {"autoscaling": {"maxReplicas": 0}}}},
        "pools.gpu.mode not deployment or job": {"pools": {"gpu": {"mode": "jobs"}}},
        "an unknown round": {"pools": {"cpu": {"rounds": ["witnes"]}}},
        "leader.port as a string": {"leader": {"port": "8080"}},
        "the removed per-batch Job (prove.*)": {"prove": {"enabled": True, "batch": "7"}},
        "a misspelt top-level key": {"rabbitMQ": {"replicas": 3}},
    }
    problems = []
    if not (CHART / "values.schema.json").exists():
        problems.append("charts/zkfleet/values.schema.json is missing")
    for what, override in bad.items():
        try:
            render_chart({**base, **override})
        except helm.HelmValuesError:
            continue
        except helm.HelmError as error:
            problems.append(f"{what}: refused by a template, not by the schema: {str(error).splitlines()[0]}")
            continue
        problems.append(f"{what}: rendered; the schema must refuse it")
    report.result("values.schema.json refuses bad values at install", problems,
                  f"{len(bad)} bad value sets refused, the ci/ value sets accepted (helm render)")


def check_terraform_gpu_pool(report: Report) -> None:
    """The GPU node pool exists only when asked for (a project without GPU quota cannot create
    it), and helm_values turns the chart's GPU workers on exactly when the pool exists. The
    output's values, with the toggle both ways, must pass the chart's schema and render."""
    import ast
    import hcl2

    def load(name: str) -> dict:
        with (TERRAFORM / name).open() as handle:
            return hcl2.load(handle)

    problems = []
    pools = {name: body for path in sorted(TERRAFORM.glob("*.tf")) for block in load(path.name).get("resource", [])
             for name, body in block.get("google_container_node_pool", {}).items()}
    variables = {name: body for block in load("variables.tf").get("variable", []) for name, body in block.items()}
    gpu = pools.get("gpu")
    toggle = None
    if gpu is None:
        problems.append("no google_container_node_pool.gpu in terraform/")
    else:
        count = re.fullmatch(r"\$\{var\.(\w+) \? 1 : 0\}", str((gpu.get("count") or [""])[0]))
        if not count:
            problems.append(f"google_container_node_pool.gpu has count {gpu.get('count')}, want var.<toggle> ? 1 : 0")
        else:
            toggle = count.group(1)
            variable = variables.get(toggle, {})
            if "bool" not in str(variable.get("type")) or variable.get("default") != [False]:
                problems.append(f"variable {toggle} must be a bool that defaults to false "
                                f"(type {variable.get('type')}, default {variable.get('default')})")
    helm_values = None
    for block in load("outputs.tf").get("output", []):
        if "helm_values" in block:
            text = block["helm_values"]["value"][0]
            if text.startswith("${yamlencode(") and text.endswith(")}"):
                helm_values = ast.literal_eval(text[len("${yamlencode("):-2])
    if helm_values is None:
        problems.append("output helm_values is not yamlencode({...})")
    elif toggle:
        stand_ins = {"${local.store_url}": "s3://bucket/zkfleet?endpoint=https://storage.googleapis.com&region=auto",
                     "${var.gpu_accelerator_type}": "nvidia-l4", "${var.gpu_max_nodes * var.gpu_count}": 4}
        if helm_values.get("pools", {}).get("gpu", {}).get("enabled") != f"${{var.{toggle}}}":
            problems.append(f"helm_values pools.gpu.enabled is not var.{toggle}")
        for enabled in (False, True):
            unknown: list[str] = []

            def fill(node, enabled=enabled, unknown=unknown):
                if isinstance(node, dict):
                    return {k: fill(v) for k, v in node.items()}
                if isinstance(node, str) and node.startswith("${"):
                    if node == f"${{var.{toggle}}}":
                        return enabled
                    if node not in stand_ins:
                        unknown.append(node)
                    return stand_ins.get(node, node)
                return node

            values = fill(helm_values)
            if unknown:
                problems.append(f"helm_values uses {unknown}; give the check a stand-in value")
                break
            try:
                docs = render_chart(values)
            except Exception as error:  # noqa: BLE001 - a failed render is the finding
                problems.append(f"helm_values with {toggle}={str(enabled).lower()} does not render: {error}")
                continue
            if ("gpu" in pool_pods(docs)) != enabled:
                problems.append(f"helm_values with {toggle}={str(enabled).lower()} renders GPU workers: {not enabled}")
            if not any(d["kind"] == "PodMonitoring" for d in docs):
                problems.append("helm_values does not turn on the PodMonitorings GKE's managed Prometheus reads")
    report.result("terraform: GPU node pool only when asked for; helm_values follows it and renders", problems,
                  f"toggle var.{toggle}" if toggle else "")


# -- KEDA against the topology --------------------------------------------------------------
def trigger_queue_names(meta: dict) -> list[str]:
    """Queue names a trigger spells out: a plain name, or ^<prefix>(a|b|...)$ with useRegex."""
    name = meta["queueName"]
    if meta.get("useRegex") != "true":
        return [name]
    match = re.fullmatch(r"\^(.*)\(([^()]*)\)\$", name)
    if not match:
        raise ValueError(f"queue regex {name!r} is not of the form ^<prefix>(<round>|...)$")
    prefix = re.sub(r"\\(.)", r"\1", match.group(1))
    return [prefix + alternative for alternative in match.group(2).split("|")]


def check_keda(rendered: dict[str, list[dict]], topology: dict, report: Report) -> None:
    problems = []
    task_queues: dict[str, str] = topology["task_queues"]
    all_queues = set(task_queues.values()) | {topology["dead_letter_queue"]}
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart_topology = chart_values["topology"]
    if chart_topology["pools"] != topology["pools"]:
        problems.append(f"values.yaml topology.pools {chart_topology['pools']} != binary's {topology['pools']}")
    for round_name, queue in task_queues.items():
        if queue != chart_topology["taskQueuePrefix"] + round_name:
            problems.append(f"queue {queue} is not topology.taskQueuePrefix + {round_name}")

    for name, docs in rendered.items():
        auths = {d["metadata"]["name"] for d in docs if d["kind"] == "TriggerAuthentication"}
        deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
        scalers = [d for d in docs if d["kind"] in ("ScaledObject", "ScaledJob")]
        pods = pool_pods(docs)
        covered: dict[str, list[str]] = {}
        for scaler in scalers:
            sname = scaler["metadata"]["name"]
            pool = scaler["metadata"]["labels"].get("zkfleet.io/pool")
            if scaler["kind"] == "ScaledObject" and scaler["spec"]["scaleTargetRef"]["name"] not in deployments:
                problems.append(f"{name}: {sname} scales a Deployment the chart does not render")
            for trigger in scaler["spec"]["triggers"]:
                meta = trigger["metadata"]
                wanted = {"protocol": "http", "mode": "QueueLength", "useRegex": "true",
                          "operation": "sum", "excludeUnacknowledged": "false"}
                for key, value in wanted.items():
                    if meta.get(key) != value:
                        problems.append(f"{name}: {sname}: {key} is {meta.get(key)!r}, want {value!r}")
                if trigger.get("authenticationRef", {}).get("name") not in auths:
                    problems.append(f"{name}: {sname}: authenticationRef names no TriggerAuthentication")
                if float(meta.get("value", 0)) < 1:
                    problems.append(f"{name}: {sname}: value must be at least 1 task per replica")
                try:
                    named = trigger_queue_names(meta)
                except ValueError as error:
                    problems.append(f"{name}: {sname}: {error}")
                    continue
                for queue in named:
                    if queue not in task_queues.values():
                        problems.append(f"{name}: {sname} names queue {queue}, absent from the topology")
                regex = re.compile(meta["queueName"] if meta.get("useRegex") == "true" else re.escape(meta["queueName"]))
                matched = sorted(q for q in all_queues if regex.fullmatch(q))
                if matched != sorted(q for q in named if q in all_queues):
                    problems.append(f"{name}: {sname}: regex matches {matched}, not just {named}")
                for queue in matched:
                    covered.setdefault(queue, []).append(f"{sname}({pool})")
        consumers: dict[str, list[str]] = {}
        for pool, pod in pods.items():
            env = env_of(pod["containers"][0])
            rounds = env["ZKFLEET_ROUNDS"].split(",") if env.get("ZKFLEET_ROUNDS") else topology["pools"][pool]
            for round_name in rounds:
                if round_name not in task_queues:
                    problems.append(f"{name}: pool {pool} consumes unknown round {round_name}")
                    continue
                queue = task_queues[round_name]
                consumers.setdefault(queue, []).append(pool)
                owners = covered.get(queue, [])
                if len(owners) != 1 or not owners[0].endswith(f"({pool})"):
                    problems.append(f"{name}: queue {queue} of pool {pool} is covered by {owners or 'no trigger'}, "
                                    "want exactly its own pool's scaler")
        for queue in task_queues.values():
            if len(consumers.get(queue, [])) != 1:
                problems.append(f"{name}: queue {queue} is consumed by pools {consumers.get(queue, [])}, want one")
    report.result("KEDA triggers cover each pool's queues exactly once (topology from worker --print-topology)",
                  problems, f"{len(topology['task_queues'])} task queues, sets {', '.join(rendered)}")


def keda_docs(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in KEDA_KINDS]


def keda_file(name: str) -> Path:
    return KEDA_DIR / ("zkfleet-keda.yaml" if name == "default" else f"zkfleet-keda-{name}.yaml")


class IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as the chart's templates and yamllint do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def write_keda(rendered: dict[str, list[dict]]) -> None:
    for name, docs in rendered.items():
        header = (f"# KEDA objects of the zkfleet chart for charts/zkfleet/ci/{VALUE_SETS[name]},\n"
                  f"# release {RELEASE!r} in namespace {NAMESPACE!r}. Generated by\n"
                  "# `scripts/check-deploy --write-keda`; edit the chart, not this file.\n")
        body = yaml.dump_all(keda_docs(docs), Dumper=IndentedDumper, sort_keys=False,
                             explicit_start=True, width=100)
        keda_file(name).write_text(header + body)


def check_keda_dir(rendered: dict[str, list[dict]], report: Report) -> None:
    problems = []
    for name, docs in rendered.items():
        path = keda_file(name)
        if not path.exists():
            problems.append(f"{path.relative_to(ROOT)} is missing (scripts/check-deploy --write-keda)")
        elif docs_of(path.read_text()) != keda_docs(docs):
            problems.append(f"{path.relative_to(ROOT)} differs from the chart (scripts/check-deploy --write-keda)")
    report.result("keda/ matches the chart's KEDA objects", problems)


# -- YAML, checkov ---------------------------------------------------------------------------
def check_yamllint(report: Report) -> None:
    files = [CHART / "Chart.yaml", CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml")),
             *sorted(KEDA_DIR.glob("*.yaml")), EXPLAINED]
    config = "{extends: default, rules: {line-length: {max: 110}, document-start: disable, " \
             "comments: {min-spaces-from-content: 1}, braces: {max-spaces-inside: 1}, truthy: {check-keys: false}}}"
    run = subprocess.run([sys.executable, "-m", "yamllint", "-f", "parsable", "-d", config, *map(str, files)],
                         capture_output=True, text=True)
    problems = [line for line in run.stdout.splitlines() if line.strip()]
    report.result("yamllint", problems, f"{len(files)} files")


def check_checkov(out: Path, report: Report) -> None:
    explained: dict[str, str] = yaml.safe_load(EXPLAINED.read_text())["explained"]
    manifests = out / "checkov-manifests"
    shutil.rmtree(manifests, ignore_errors=True)
    manifests.mkdir()
    for path in out.glob("rendered-*.yaml"):
        shutil.copy(path, manifests / path.name)
    targets = [("kubernetes", ["-d", str(manifests)]),
               ("dockerfile", ["-f", str(ROOT / "Dockerfile"), "-f", str(ROOT / "Dockerfile.gpu")]),
               ("terraform", ["-d", str(TERRAFORM)])]
    problems, passed, skipped = [], 0, set()
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    for framework, target in targets:
        run = subprocess.run(
            [sys.executable, "-m", "checkov.main", "--framework", framework, *target, "--output", "json",
             "--quiet", "--compact", "--skip-download", "--download-external-modules", "false"],
            capture_output=True, text=True, env=env, cwd=out)
        try:
            results = json.loads(run.stdout or "[]")
        except json.JSONDecodeError:
            problems.append(f"{framework}: checkov did not produce JSON: {run.stderr.strip()[-300:]}")
            continue
        for result in results if isinstance(results, list) else [results]:
            summary = result.get("summary", {})
            passed += summary.get("passed", 0)
            for failed in result.get("results", {}).get("failed_checks", []):
                check_id = failed["check_id"]
                if check_id in explained:
                    skipped.add(check_id)
                    continue
                severity = failed.get("severity") or "unrated"
                problems.append(f"{framework}: {check_id} ({severity}) {failed['check_name']} "
                                f"in {failed.get('resource')} ({Path(failed.get('file_path', '')).name}); "
                                f"fix it or explain it in {EXPLAINED.relative_to(ROOT)}")
    for stale in sorted(set(explained) - skipped):
        problems.append(f"{stale} is explained in {EXPLAINED.relative_to(ROOT)} but no longer found: remove it")
    report.result("checkov (kubernetes, dockerfile, terraform): every finding fixed or explained", problems,
                  f"{passed} passed, {len(skipped)} explained in {EXPLAINED.relative_to(ROOT)}")


# -- Terraform ------------------------------------------------------------------------------
def check_terraform(report: Report) -> None:
    import hcl2

    files = sorted(TERRAFORM.glob("*.tf"))
    terraform = shutil.which("terraform")
    if terraform:
        run = subprocess.run([terraform, "fmt", "-check", "-diff", "-recursive", str(TERRAFORM)],
                             capture_output=True, text=True)
        problems = [line for line in run.stdout.splitlines()] if run.returncode else []
        how = "terraform fmt -check"
    else:
        sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
        sys.path.insert(0, str(Path(__file__).parent))
        from tffmt import format_problems
        problems = [p for f in files for p in format_problems(f)]
        how = "built-in layout check (no terraform binary on PATH)"
    report.result("terraform files formatted", problems, how)

    problems, variables, validated = [], 0, 0
    parsed = {}
    for path in files:
        try:
            with path.open() as handle:
                parsed[path.name] = hcl2.load(handle)
        except Exception as error:  # noqa: BLE001 - any parse error is the finding
            problems.append(f"{path.name}: does not parse: {error}")
    for name, tree in parsed.items():
        for block in tree.get("variable", []):
            for var, body in block.items():
                variables += 1
                for key in ("type", "description"):
                    if key not in body:
                        problems.append(f"{name}: variable {var} has no {key}")
                if "validation" in body:
                    validated += 1
                elif "bool" not in str(body.get("type")):
                    problems.append(f"{name}: variable {var} has no validation")
        for block in tree.get("output", []):
            for output, body in block.items():
                if "description" not in body:
                    problems.append(f"{name}: output {output} has no description")
    outputs = {o for tree in parsed.values() for block in tree.get("output", []) for o in block}
    for needed in ("store_url", "store_access_key_id", "store_secret_access_key", "helm_values", "get_credentials"):
        if needed not in outputs:
            problems.append(f"output {needed} (used by docs/deploy.md and the chart) is missing")
    report.result("terraform parses; variables typed, described, validated", problems,
                  f"{len(files)} files, {variables} variables ({validated} with validation)")


# -- autoscaling replay ---------------------------------------------------------------------
def check_simulation(out: Path, rendered: dict[str, list[dict]], report: Report) -> None:
    problems, pictures = [], []
    for timeline_name, timeline in TIMELINES.items():
        for name in rendered:
            manifest = out / f"rendered-{name}.yaml"
            if not any(d["kind"] == "ScaledObject" for d in rendered[name]):
                continue
            png = out / f"autoscaling-{timeline_name}-{name}.png"
            run = subprocess.run([sys.executable, str(Path(__file__).parent / "simulate.py"), str(timeline),
                                  str(manifest), "--check", "--png", str(png),
                                  "--title", f"zkfleet autoscaling replay, {timeline_name} timeline ({VALUE_SETS[name]})"],
                                 capture_output=True, text=True)
            (out / f"autoscaling-{timeline_name}-{name}.txt").write_text(run.stdout)
            if run.returncode:
                problems += [f"{timeline_name}/{name}: {line}" for line in run.stderr.splitlines()]
            pictures.append(str(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png))
    report.result("autoscaling replay: scale-up under backlog, no scale-down while unacked, zero when idle",
                  problems, f"plots {', '.join(pictures)}")


# -- dashboards -----------------------------------------------------------------------------
# Metric families from outside zkfleet that the dashboard may query: RabbitMQ's Prometheus plugin
# and kube-state-metrics.
FOREIGN_METRIC_PREFIXES = ("rabbitmq_", "kube_", "keda_")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def declared_metrics() -> set[str]:
    """Metric names the code declares: the string constants of every crates/*/src/metrics.rs."""
    names: set[str] = set()
    for path in sorted((ROOT / "crates").glob("*/src/metrics.rs")):
        names |= set(re.findall(r'pub const \w+: &str = "(zkfleet_\w+)";', path.read_text()))
    return names


def check_dashboards(rendered: dict[str, list[dict]], report: Report) -> None:
    problems: list[str] = []
    declared = declared_metrics()
    if not declared:
        problems.append("no metric declared in crates/*/src/metrics.rs")
    files = sorted((CHART / "dashboards").glob("*.json"))
    if not files:
        problems.append("no dashboards/*.json in the chart")
    queried = 0
    for path in files:
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problems.append(f"{path.name}: not JSON: {error}")
            continue
        panels = list(dashboard.get("panels", []))
        panels += [inner for p in panels for inner in p.get("panels", [])]
        for panel in panels:
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                # Strip string literals (label values, regexes) before looking for names.
                for name in set(re.findall(r"\b[a-z_][a-z0-9_]*\b(?=\s*[{\[)])", re.sub(r'"[^"]*"', '""', expr))):
                    if not name.startswith(("zkfleet_",) + FOREIGN_METRIC_PREFIXES):
                        continue
                    queried += 1
                    family = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
                    if name.startswith("zkfleet_") and name not in declared and family not in declared:
                        problems.append(f"{path.name}: panel {panel.get('title')!r} queries {name}, "
                                        "which no crates/*/src/metrics.rs declares")
    maps = [d for docs in rendered.values() for d in docs
            if d.get("kind") == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")]
    if not maps:
        problems.append("no value set renders the dashboards ConfigMap (grafana.dashboards.enabled)")
    for cm in maps:
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
            problems.append(f"ConfigMap {cm['metadata']['name']} lacks the grafana_dashboard label")
        for key, body in cm.get("data", {}).items():
            if json.loads(body) != json.loads((CHART / "dashboards" / key).read_text()):
                problems.append(f"ConfigMap {cm['metadata']['name']}: {key} differs from the chart's file")
    report.result("dashboards: JSON parses, every zkfleet metric queried is declared in the code", problems,
                  f"{len(files)} dashboard(s), {queried} metric references, {len(declared)} declared metrics")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topology", required=True, help="JSON printed by worker --print-topology")
    parser.add_argument("--out", required=True, help="folder for rendered manifests, plots and tables")
    parser.add_argument("--write-keda", action="store_true", help="regenerate keda/ from the chart")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    topology = json.loads(Path(args.topology).read_text())

    report = Report()
    check_images(report)
    rendered = render_all(out, report)
    if args.write_keda and len(rendered) == len(VALUE_SETS):
        write_keda(rendered)
    check_kubernetes_schemas(rendered, report)
    check_pods(rendered, report)
    check_leader(rendered, report)
    check_values_schema(report)
    check_broker_host(report)
    check_scaled_replicas(rendered, report)
    check_broker_replicas(rendered, report)
    check_scraping(rendered, report)
    check_keda(rendered, topology, report)
    check_keda_dir(rendered, report)
    check_dashboards(rendered, report)
    check_yamllint(report)
    check_terraform(report)
    check_terraform_gpu_pool(report)
    check_checkov(out, report)
    check_simulation(out, rendered, report)
    if report.failed:
        print(f"check-deploy: {len(report.failed)} check(s) failed: {'; '.join(report.failed)}")
        return 1
    print("check-deploy: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
