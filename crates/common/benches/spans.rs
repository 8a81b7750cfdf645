//! What one task's span costs with span export on: a worker's span of a basic task, first
//! attempt, carrying a job's trace context, with the task's two log lines (filtered out, as at
//! `RUST_LOG=warn`). Setups, one after the other:
//!
//! - `off`: logs only (no OTLP endpoint): the span is not recorded;
//! - `layer`: the span layer made from a tracer alone, as tests set it up, with the SDK's batch
//!   processor and an exporter that drops every batch: each task span is handed to the SDK as an
//!   SDK span when it ends (what a worker paid for its task span before task spans were records);
//!   CPU of the thread that runs the tasks;
//! - `otlp`: the real setup (`telemetry::init` with `OTEL_EXPORTER_OTLP_ENDPOINT`) exporting over
//!   OTLP/HTTP to a collector stand-in on a thread of this process that answers 200: what the
//!   thread that runs the tasks pays (`otlp_thread_cpu_us`) and what the process pays in all,
//!   protobuf encoding and the HTTP posts included (`otlp_process_cpu_us`). The export queue is
//!   made large enough for every span (`OTEL_BSP_MAX_QUEUE_SIZE`), so that none is dropped and
//!   left uncounted; `otlp_exported` counts the spans the collector received.
//!
//!   cargo bench -p common --bench spans -- [--spans N]
//!
//! Prints one JSON line, microseconds per span.

use std::time::{Duration, Instant};

use common::telemetry::TraceContext;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::info;
use tracing_subscriber::layer::SubscriberExt;

/// Counts the spans it is given and drops them.
#[derive(Debug, Default)]
struct Discard(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// How many spans an OTLP export request holds.
fn spans_in(body: &[u8]) -> usize {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let request = <ExportTraceServiceRequest as prost::Message>::decode(body).expect("an OTLP request");
    request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

/// CPU time of the calling thread so far (Linux, clock ticks of 1/100 s).
fn thread_cpu() -> Duration {
    common::testing::proc_cpu("/proc/thread-self/stat".as_ref()).unwrap_or_default().1
}

/// CPU time of this process so far, every thread.
fn process_cpu() -> Duration {
    common::testing::proc_cpu("/proc/self/stat".as_ref()).unwrap_or_default().1
}

/// A basic task, first attempt, carrying its job span's trace context as tasks from a leader do:
/// one context that every task of the job shares, as a worker reads it from their headers.
fn task(index: u32, trace: &TraceContext) -> common::Task {
    let mut task = common::testing::empty_task("b7-3f2a91c0", common::Round::Basic, index);
    task.batch = 7;
    task.tx_range = (u64::from(index) * 40, u64::from(index) * 40 + 40);
    task.trace = trace.clone();
    task
}

fn task_spans(n: u64) -> (Duration, Duration) {
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let trace = TraceContext::from_pairs([("traceparent".to_string(), traceparent.to_string())].into());
    let tasks: Vec<common::Task> = (0..n).map(|i| task(i as u32, &trace)).collect();
    let (cpu, wall) = (thread_cpu(), Instant::now());
    for task in &tasks {
        // What `worker::execute_task` does around a proof.
        let mut span = common::telemetry::TaskSpan::start(task);
        info!(target: "worker", job = %task.job, batch = task.batch, round = %task.round, index = task.index,
            tx_range = ?task.tx_range, "task started");
        span.outcome("succeeded");
        drop(span);
        info!(target: "worker", job = %task.job, batch = task.batch, round = %task.round, index = task.index,
            tx_range = ?task.tx_range, duration_ms = 1u64, reused = false, "task done");
    }
    (thread_cpu() - cpu, wall.elapsed())
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let n: u64 =
        argv.iter().position(|a| a == "--spans").and_then(|i| argv.get(i + 1)?.parse().ok()).unwrap_or(200_000);
    let per = |d: Duration| (d.as_secs_f64() * 1e6 / n as f64 * 100.0).round() / 100.0;

    // Logs only, at warn (a worker without an OTLP endpoint, RUST_LOG=warn).
    std::env::set_var("RUST_LOG", "warn");
    let logs = tracing_subscriber::registry()
        .with(common::telemetry::log_layer(common::telemetry::LogFormat::Json, std::io::sink));
    let (off_cpu, off_wall) = tracing::subscriber::with_default(logs, || task_spans(n));

    let exported = Discard::default();
    let count = exported.0.clone();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exported).build();
    let traced = tracing_subscriber::registry()
        .with(common::telemetry::log_layer(common::telemetry::LogFormat::Json, std::io::sink))
        .with(common::telemetry::span_layer(provider.tracer("bench")));
    let (on_cpu, on_wall) = tracing::subscriber::with_default(traced, || task_spans(n));
    let _ = provider.shutdown();
    let exported = count.load(std::sync::atomic::Ordering::Relaxed);

    // The real setup, exporting over OTLP/HTTP; shutting it down sends what is buffered.
    let (collector, requests) = common::testing::otlp_collector();
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"));
    std::env::set_var("OTEL_BSP_MAX_QUEUE_SIZE", n.to_string());
    let telemetry = common::telemetry::init(common::telemetry::LogFormat::Json, "bench").unwrap();
    let before = process_cpu();
    let wall = Instant::now();
    let (otlp_thread_cpu, _) = task_spans(n);
    drop(telemetry);
    let (otlp_cpu, otlp_wall) = (process_cpu() - before, wall.elapsed());
    let bodies: Vec<Vec<u8>> = requests.try_iter().map(|(_, body)| body).collect();
    let otlp_exported: usize = bodies.iter().map(|body| spans_in(body)).sum();

    let line = serde_json::json!({
        "spans": n,
        // Spans the `layer` setup's exporter saw: fewer than `spans` when the SDK's queue (2,048
        // by default) was full and dropped them; its thread's CPU counts every span all the same.
        "layer_exported": exported,
        "off_thread_cpu_us": per(off_cpu),
        "layer_thread_cpu_us": per(on_cpu),
        "otlp_thread_cpu_us": per(otlp_thread_cpu),
        "otlp_process_cpu_us": per(otlp_cpu),
        "off_wall_us": per(off_wall),
        "layer_wall_us": per(on_wall),
        "otlp_wall_us": per(otlp_wall),
        // Export requests, of at most 512 spans each.
        "otlp_requests": bodies.len(),
        "otlp_exported": otlp_exported,
    });
    println!("{line}");
}
