//! Dispatch benchmark: what the broker fleet costs around a proof. No-op tasks go through the
//! real path (leader publish with confirm → quorum queue → worker → result publish with confirm →
//! leader) on the local RabbitMQ, in a virtual host of their own.
//!
//!   cargo bench -p leader --bench dispatch -- [--tasks N] [--workers W] [--concurrency C] [--telemetry]
//!       [--trace-headers] [--task-cpu-us N]
//!
//! Prints one JSON line per phase: `throughput` (all tasks at once) and `latency` (one task at a
//! time: the per-task overhead).
//!
//! `--telemetry` measures the fleet with its observability on, as a worker with `--metrics-addr`
//! and an OTLP endpoint runs: the Prometheus recorder installed (`--metrics` alone), every span
//! exported over OTLP/HTTP to a collector stand-in in this process that reads and drops each
//! request (`--tracing` alone), every task carrying a job span's trace context in its message
//! headers as the leader's tasks do. Without it the process logs as a worker without an OTLP
//! endpoint does. Log lines are at `warn` either way (no line per task) unless `RUST_LOG` says
//! otherwise.
//!
//! `--trace-headers` gives every task a fixed W3C trace context in its message headers and turns
//! on nothing else (no recorder, no span export): what the header alone costs the broker and the
//! AMQP code at both ends, apart from what the spans and metrics cost.
//!
//! `--task-cpu-us N` gives every task about N µs of CPU work in the backend, so that a run shows
//! what a known cost per task does to throughput (telemetry's cost reads against that scale).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Round, Store};
use leader::fleet::{FleetEvent, FleetHandle};
use tokio_util::sync::CancellationToken;

const MANAGEMENT: &str = "http://127.0.0.1:15672";

struct Args {
    tasks: usize,
    latency_tasks: usize,
    workers: usize,
    concurrency: usize,
    metrics: bool,
    tracing: bool,
    trace_headers: bool,
    task_cpu_us: u64,
}

fn args() -> Args {
    let mut a = Args {
        tasks: 5000,
        latency_tasks: 500,
        workers: 2,
        concurrency: 16,
        metrics: false,
        tracing: false,
        trace_headers: false,
        task_cpu_us: 0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value =
            || argv.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{} needs a number", argv[i]));
        match argv[i].as_str() {
            "--tasks" => a.tasks = value(),
            "--latency-tasks" => a.latency_tasks = value(),
            "--workers" => a.workers = value(),
            "--concurrency" => a.concurrency = value(),
            "--task-cpu-us" => a.task_cpu_us = value() as u64,
            flag @ ("--telemetry" | "--metrics" | "--tracing" | "--trace-headers") => {
                a.metrics |= matches!(flag, "--telemetry" | "--metrics");
                a.tracing |= matches!(flag, "--telemetry" | "--tracing");
                a.trace_headers |= flag == "--trace-headers";
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn management(method: &str, path: &str) {
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("guest:guest"));
    let url = format!("{MANAGEMENT}{path}");
    let result = match method {
        "PUT" => ureq::put(&url).header("Authorization", &auth).content_type("application/json").send(
            if path.starts_with("/api/permissions") { r#"{"configure":".*","write":".*","read":".*"}"# } else { "{}" },
        ),
        _ => ureq::delete(&url).header("Authorization", &auth).call(),
    };
    result.unwrap_or_else(|e| panic!("management api {path}: {e}"));
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU time this process has used so far (user and system, all threads), from /proc (Linux).
fn cpu_time() -> Duration {
    common::testing::proc_cpu("/proc/self/stat".as_ref()).unwrap_or_default().1
}

/// CPU time so far per thread name (threads of one name summed: tokio's workers, lapin's I/O
/// threads, the span export thread), from /proc (Linux). Threads that ended are not counted.
fn cpu_by_thread() -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        if let Some((name, cpu)) = common::testing::proc_cpu(&entry.path().join("stat")) {
            *by_name.entry(name).or_default() += cpu;
        }
    }
    by_name
}

/// Sends `count` tasks, at most `window` outstanding, and returns (wall, per-task latencies in ms).
async fn phase(
    fleet: &mut FleetHandle,
    job: &str,
    trace: &common::telemetry::TraceContext,
    first: u32,
    count: usize,
    window: usize,
) -> (Duration, Vec<f64>) {
    let mut sent: HashMap<u32, Instant> = HashMap::with_capacity(count);
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    let mut next = 0usize;
    while latencies.len() < count {
        while next < count && sent.len() < window {
            let index = first + next as u32;
            sent.insert(index, Instant::now());
            let mut task = common::testing::empty_task(job, Round::Basic, index);
            task.trace = trace.clone();
            fleet.tasks.send(task).await.expect("fleet takes tasks");
            next += 1;
        }
        match fleet.events.recv().await.expect("fleet reports") {
            FleetEvent::Result(r) => {
                if let Some(at) = sent.remove(&r.index) {
                    latencies.push(at.elapsed().as_secs_f64() * 1e3);
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    (started.elapsed(), latencies)
}

fn report(
    phase: &str,
    args: &Args,
    wall: Duration,
    cpu: Duration,
    threads: (BTreeMap<String, Duration>, BTreeMap<String, Duration>),
    mut latencies: Vec<f64>,
) {
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per_task = |d: Duration| (d.as_secs_f64() * 1e6 / latencies.len() as f64).round();
    let (before, after) = threads;
    let by_thread: serde_json::Map<String, serde_json::Value> = after
        .iter()
        .map(|(name, &t)| (name, per_task(t.saturating_sub(before.get(name).copied().unwrap_or_default()))))
        .filter(|&(_, us)| us > 0.0)
        .map(|(name, us)| (name.clone(), us.into()))
        .collect();
    let line = serde_json::json!({
        "system": format!("zkfleet {}", env!("CARGO_PKG_VERSION")),
        "phase": phase,
        "tasks": latencies.len(),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "metrics": args.metrics,
        "tracing": args.tracing,
        "trace_headers": args.trace_headers,
        "task_cpu_us": args.task_cpu_us,
        "tasks_per_s": (latencies.len() as f64 / wall.as_secs_f64() * 10.0).round() / 10.0,
        "p50_ms": (percentile(&latencies, 0.5) * 1000.0).round() / 1000.0,
        "p90_ms": (percentile(&latencies, 0.9) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&latencies, 0.99) * 1000.0).round() / 1000.0,
        // CPU time of this process (leader, workers, collector stand-in) per task: what the
        // fleet's own code costs, apart from the broker's.
        "cpu_us_per_task": per_task(cpu),
        // The same by thread name: where in the process that time went.
        "cpu_us_per_task_by_thread": by_thread,
    });
    println!("{line}");
}

fn main() {
    let args = args();
    let vhost = format!("zkfleet-bench-{:08x}", rand::random::<u32>());
    management("PUT", &format!("/api/vhosts/{vhost}"));
    let _cleanup = VhostGuard(vhost.clone());
    management("PUT", &format!("/api/permissions/{vhost}/guest"));
    let uri = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let exported = Arc::new(AtomicU64::new(0));
    if args.metrics {
        common::metrics::install();
        worker::metrics::describe();
        leader::metrics::describe();
    }
    // Logging is set up as every zkfleet process sets it up, span export only with `--tracing`:
    // without it this is a worker with no OTLP endpoint. Log lines at `warn` either way (no line
    // per task), unless RUST_LOG says otherwise.
    std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
    std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if args.tracing {
        let collector = runtime.block_on(collector(exported.clone()));
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"));
    }
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    let telemetry = common::telemetry::init(common::telemetry::LogFormat::Text, "zkfleet-bench").unwrap();
    assert_eq!(telemetry.exporting(), args.tracing);
    runtime.block_on(async {
        let store = Store::open("memory:").unwrap();
        let task_cpu = BurnBackend::for_micros(args.task_cpu_us);
        let shutdown = CancellationToken::new();
        let mut workers = Vec::new();
        for i in 0..args.workers {
            let config = worker::daemon::Config {
                rounds: vec![Round::Basic],
                concurrency: args.concurrency,
                grace: Duration::from_secs(5),
                ..worker::daemon::Config::new(
                    uri.clone(),
                    store.clone(),
                    format!("bench-{i}"),
                    Arc::new(task_cpu.clone()),
                )
            };
            workers.push(tokio::spawn(worker::daemon::run(config, shutdown.clone())));
        }
        let job = "bench".to_string();
        let connection = leader::broker_fleet::connect(&uri).await.map_err(|e| e.message().to_string()).unwrap();
        let mut fleet =
            leader::broker_fleet::start(connection, &uri, store, std::slice::from_ref(&job)).await.ok().unwrap();
        // Warm-up: connections, queues and caches settle.
        // With span export, one job span whose context every task carries, as the leader's
        // coordinator does: the context travels in each task's message headers and each
        // worker's task span takes it as its parent. Without it the context is empty.
        let job_span = tracing::info_span!(target: "leader", parent: None, "job", job = %job);
        let mut trace = common::telemetry::inject(&job_span);
        assert_eq!(trace.is_empty(), !args.tracing);
        if args.trace_headers && trace.is_empty() {
            let traceparent = "00-5a1c3e7d9b0f4a2e8c6d1b3f5e7a9c0d-3e5f7a9b1c2d4e6f-01".to_string();
            trace = common::telemetry::TraceContext::from_pairs([("traceparent".to_string(), traceparent)].into());
        }
        phase(&mut fleet, &job, &trace, 0, 200, 64).await;
        let (cpu, threads) = (cpu_time(), cpu_by_thread());
        let (wall, latencies) = phase(&mut fleet, &job, &trace, 1_000, args.tasks, args.tasks).await;
        report("throughput", &args, wall, cpu_time() - cpu, (threads, cpu_by_thread()), latencies);
        let (cpu, threads) = (cpu_time(), cpu_by_thread());
        let (wall, latencies) = phase(&mut fleet, &job, &trace, 1_000_000, args.latency_tasks, 1).await;
        report("latency", &args, wall, cpu_time() - cpu, (threads, cpu_by_thread()), latencies);
        fleet.stop().await;
        shutdown.cancel();
        for w in workers {
            let _ = w.await;
        }
    });
    drop(telemetry);
    if args.tracing {
        eprintln!("telemetry: {} span export requests received", exported.load(Ordering::Relaxed));
    }
}

/// Deletes the benchmark's virtual host when the run ends, also when it panics (a closed stdout
/// makes `println!` panic): a virtual host left behind keeps its quorum queues, which cost the
/// broker CPU in every later run.
struct VhostGuard(String);

impl Drop for VhostGuard {
    fn drop(&mut self) {
        management("DELETE", &format!("/api/vhosts/{}", self.0));
    }
}

/// A stand-in for an OTLP collector: takes every POST, counts it, drops the body.
async fn collector(requests: Arc<AtomicU64>) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let requests = requests.clone();
        async move {
            requests.fetch_add(1, Ordering::Relaxed);
            drop(body);
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The no-op backend, or with `--task-cpu-us N` one that burns about N µs of CPU per task (a
/// fixed count of xorshift steps, timed once at start): how throughput answers to CPU added per
/// task, the scale that telemetry's own cost per task reads against.
#[derive(Clone)]
struct BurnBackend(u64);

impl BurnBackend {
    fn for_micros(us: u64) -> Self {
        if us == 0 {
            return Self(0);
        }
        const STEPS: u64 = 50_000_000;
        let started = Instant::now();
        burn(STEPS);
        Self((STEPS as f64 * us as f64 / (started.elapsed().as_secs_f64() * 1e6)) as u64)
    }
}

fn burn(steps: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..steps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

impl common::ProvingBackend for BurnBackend {
    fn prove(&self, task: &common::Task, inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, common::TaskError> {
        burn(self.0);
        common::ProvingBackend::prove(&worker::cli::NoopBackend, task, inputs)
    }
}
