//! What an operator sees of a job on the broker fleet: the worker's `/metrics` scrape, the
//! leader's, the worker's JSON log lines, its spans at an OTLP endpoint, and `leader status`. A real RabbitMQ (a virtual host
//! of the test's own) and a real worker process with the no-op backend; the leader side runs in
//! this process, as `leader prove` runs it once a job is staged.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{drive, http_get, noop_job, Fleet};

const TIMEOUT: Duration = Duration::from_secs(60);

/// One sample of a Prometheus text page: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text format strictly enough to catch a malformed page: every sample line
/// is `name{label="value",...} number`, and every sample's family has a `# TYPE` line first.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut typed: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            typed.push(parts.next().unwrap().to_string());
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram", "summary"].contains(&kind), "{line}");
            continue;
        }
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP "), "unknown comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label: {line}"));
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or_else(|| panic!("unquoted: {line}"));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad name: {line}");
        let family = ["_bucket", "_sum", "_count"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(typed.iter().any(|t| t == &name || t == family), "sample before its # TYPE: {line}");
        samples.push((name, labels, value));
    }
    samples
}

/// The value of the one sample named `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, labels, _)| n == name && want.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.2)
        .collect();
    assert_eq!(found.len(), 1, "one {name} with {want:?}; samples: {samples:?}");
    found[0]
}

#[test]
fn a_job_shows_in_metrics_logs_and_status() {
    let fleet = Fleet::new();
    let (otlp, requests) = common::testing::otlp_collector();
    let mut cmd = std::process::Command::new(support::worker_bin());
    cmd.args(["--name", "w1", "--backend", "noop", "--metrics-addr", "127.0.0.1:0", "--log-format", "json"])
        .env("ZKFLEET_STORE", fleet.store())
        .env("ZKFLEET_AMQP_URI", fleet.vhost.uri())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"));
    let worker = support::Proc::spawn(cmd);
    let serving = worker.wait_for(&["serving /livez"], TIMEOUT);
    let addr =
        serde_json::from_str::<serde_json::Value>(&serving).unwrap()["fields"]["addr"].as_str().unwrap().to_string();
    worker.wait_for(&["worker started"], TIMEOUT);

    let store = common::Store::open(fleet.store().to_str().unwrap()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plan = runtime.block_on(async {
        // The leader's own /metrics, as `leader prove --metrics-addr` serves it.
        let token = tokio_util::sync::CancellationToken::new();
        let leader_addr = worker::http::serve_metrics("127.0.0.1:0".parse().unwrap(), token).await.unwrap();
        leader::metrics::describe();
        let plan = noop_job(&store, "obs-1", 16).await;
        drive(&fleet.vhost.uri(), &store, &plan, TIMEOUT).await;

        let url = format!("http://{leader_addr}/metrics");
        let leader_page = tokio::task::spawn_blocking(move || http_get(&url)).await.unwrap();
        let leader = parse_prometheus(&leader_page);
        assert_eq!(value(&leader, "zkfleet_leader_transactions_proved_total", &[]), 16.0);
        assert_eq!(value(&leader, "zkfleet_leader_jobs_running", &[]), 0.0);
        assert_eq!(value(&leader, "zkfleet_leader_jobs_finished_total", &[("outcome", "succeeded")]), 1.0);
        assert_eq!(value(&leader, "zkfleet_leader_tasks_dispatched_total", &[("round", "basic")]), 4.0);
        plan
    });
    assert_eq!(plan.tasks.len(), 10);

    // The worker's scrape: the job's tasks by round, all succeeded, each timed and its queue
    // wait measured; the store's traffic.
    let page = http_get(&format!("http://{addr}/metrics"));
    let samples = parse_prometheus(&page);
    for (round, count) in [("witness", 1.0), ("basic", 4.0), ("aggregate", 3.0), ("final", 1.0), ("compress", 1.0)] {
        let labels = [("round", round), ("pool", "cpu")];
        assert_eq!(value(&samples, "zkfleet_worker_tasks_started_total", &labels), count, "{round}");
        let done = [("round", round), ("pool", "cpu"), ("outcome", "succeeded")];
        assert_eq!(value(&samples, "zkfleet_worker_tasks_finished_total", &done), count, "{round}");
        assert_eq!(value(&samples, "zkfleet_worker_task_duration_seconds_count", &labels), count, "{round}");
        let inf = [("round", round), ("pool", "cpu"), ("le", "+Inf")];
        assert_eq!(value(&samples, "zkfleet_worker_task_duration_seconds_bucket", &inf), count, "{round}");
        assert_eq!(value(&samples, "zkfleet_worker_queue_wait_seconds_count", &[("round", round)]), count, "{round}");
    }
    assert_eq!(value(&samples, "zkfleet_worker_proofs_in_flight", &[("pool", "cpu")]), 0.0);
    assert!(value(&samples, "zkfleet_store_operation_duration_seconds_count", &[("operation", "put")]) >= 10.0);
    assert!(page.contains("# HELP zkfleet_worker_tasks_finished_total"), "metrics are described");

    // `leader status` shows the job per round from the record its leader kept.
    let out = fleet.run_leader(&["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let head = table.lines().find(|l| l.starts_with("job obs-1")).unwrap_or_else(|| panic!("{table}"));
    assert!(head.contains("done, 10/10 tasks done") && head.contains("left 0s"), "{head}");
    let basic = table.lines().find(|l| l.trim_start().starts_with("basic ")).unwrap();
    assert_eq!(basic.split_whitespace().take(5).collect::<Vec<_>>(), ["basic", "4/4", "0", "0", "0"], "{table}");

    // JSON logs: every line parses, task lines carry the task's ids as fields, and the broker URI
    // is there without its password.
    let mut w = worker;
    w.terminate();
    let (code, _, lines) = w.finish(TIMEOUT);
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    let logs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let done: Vec<&serde_json::Value> = logs.iter().filter(|l| l["fields"]["message"] == "task done").collect();
    assert_eq!(done.len(), 10);
    for line in &done {
        let fields = &line["fields"];
        assert_eq!(fields["job"], "obs-1");
        assert_eq!(fields["batch"], 7);
        for field in ["round", "index", "tx_range", "duration_ms"] {
            assert!(!fields[field].is_null(), "{field} missing: {line}");
        }
        // `level` on aggregate tasks only, `attempt` from a second attempt on (none here).
        assert_eq!(fields["level"].is_null(), fields["round"] != "aggregate", "{line}");
        assert!(fields["attempt"].is_null(), "{line}");
    }
    let rounds: std::collections::BTreeSet<&str> =
        done.iter().map(|l| l["fields"]["round"].as_str().unwrap()).collect();
    assert_eq!(rounds.len(), 5, "{rounds:?}");
    // The worker exported its task spans to the OTLP endpoint over HTTP/protobuf, gzip-compressed
    // (the last ones when it stopped): the job id and the span name are in the bodies.
    let exported: Vec<(String, Vec<u8>)> = requests.try_iter().collect();
    assert!(!exported.is_empty(), "no OTLP export request");
    let mut bodies = Vec::new();
    for (head, body) in &exported {
        assert!(head.starts_with("POST /v1/traces HTTP/1.1"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/x-protobuf"), "{head}");
        assert!(head.contains("content-encoding: gzip"), "{head}");
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut bodies).expect("a gzip body");
    }
    let has = |needle: &[u8]| bodies.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"obs-1") && has(b"task") && has(b"zkfleet-worker"), "the spans of the job are in the export");
    let started = logs.iter().find(|l| l["fields"]["message"] == "worker started").unwrap();
    let shown = started["fields"]["broker"].as_str().unwrap();
    assert_eq!(shown, format!("amqp://guest:***@127.0.0.1:5672/{}", fleet.vhost.name));
    assert!(lines.iter().all(|l| !l.contains("guest:guest")), "a password in the logs");
}

/// A log line the prover writes on its proving thread inside a task (a worker without
/// `--preload` loads each circuit in the first task that needs it) carries the task's ids, in the
/// `task` span of a JSON line.
#[test]
fn a_prover_log_line_inside_a_task_carries_the_task() {
    let fleet = Fleet::new();
    let worker = fleet.worker("w1", &["--log-format", "json"]);
    let input = fleet.synth("a.json", 4, 21);
    let proof = fleet.path("a.proof");
    let (code, _, err) = fleet.prove(&input, &proof, &[]).finish_beside(Duration::from_secs(300), &[&worker]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    let job = support::job_ids(err.iter().find(|l| l.contains("jobs staged")).expect("the jobs staged line")).remove(0);
    let lines: Vec<serde_json::Value> = worker.stderr().iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let circuit = lines
        .iter()
        .find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("circuit ")))
        .unwrap_or_else(|| panic!("no circuit line:\n{}", worker.stderr().join("\n")));
    let span = &circuit["span"];
    assert_eq!(span["name"], "task", "{circuit}");
    assert_eq!(span["job"], job.as_str(), "{circuit}");
    assert!(["aggregate", "final", "compress"].contains(&span["round"].as_str().unwrap_or_default()), "{circuit}");
    for field in ["batch", "index", "tx_range"] {
        assert!(!span[field].is_null(), "{field} missing: {circuit}");
    }
}
