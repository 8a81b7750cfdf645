//! One job is one trace: the leader's `job` span is the root, and every task of every round,
//! run by a worker on the other side of a real RabbitMQ, is a child of it. Spans are collected in
//! memory; the worker daemon runs in this process (with the no-op backend) so that one exporter
//! sees both sides, and the trace context still crosses the broker in the message headers.

mod support;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::{drive, noop_job, Vhost};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;

const TIMEOUT: Duration = Duration::from_secs(60);

fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

#[test]
fn one_job_is_one_trace_across_the_broker() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry().with(common::telemetry::span_layer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let vhost = Vhost::new();
    let dir = tempfile::tempdir().unwrap();
    let store = common::Store::open(dir.path().to_str().unwrap()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plan = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let config = worker::daemon::Config {
            concurrency: 2,
            grace: Duration::from_secs(5),
            ..worker::daemon::Config::new(
                vhost.uri(),
                store.clone(),
                "trace-worker",
                Arc::new(worker::cli::NoopBackend),
            )
        };
        let worker = tokio::spawn(worker::daemon::run(config, shutdown.clone()));
        let plan = noop_job(&store, "trace-1", 16).await;
        drive(&vhost.uri(), &store, &plan, TIMEOUT).await;
        shutdown.cancel();
        tokio::time::timeout(TIMEOUT, worker).await.unwrap().unwrap().unwrap();
        plan
    });
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let jobs: Vec<_> = spans.iter().filter(|s| s.name == "job").collect();
    assert_eq!(jobs.len(), 1, "one job span: {spans:#?}");
    let job = jobs[0];
    assert_eq!(job.parent_span_id, SpanId::INVALID, "the job span is a root");
    assert_eq!(attribute(job, "job").as_deref(), Some("trace-1"));
    let trace = job.span_context.trace_id();

    let tasks: Vec<_> = spans.iter().filter(|s| s.name == "task").collect();
    assert_eq!(tasks.len(), plan.tasks.len(), "one span per task");
    for task in &tasks {
        assert_eq!(task.span_context.trace_id(), trace, "every task is in the job's trace");
        assert_eq!(task.parent_span_id, job.span_context.span_id(), "every task is a child of the job span");
        assert_eq!(attribute(task, "job").as_deref(), Some("trace-1"));
    }
    let mut seen: Vec<(String, String, String)> = tasks
        .iter()
        .map(|t| {
            let round = attribute(t, "round").unwrap();
            // `level` is an attribute of aggregate tasks only (where it tells them apart).
            let level = attribute(t, "level");
            assert_eq!(level.is_some(), round == "aggregate", "level of a {round} task: {level:?}");
            (round, level.unwrap_or_else(|| "0".into()), attribute(t, "index").unwrap())
        })
        .collect();
    seen.sort();
    let mut planned: Vec<(String, String, String)> = plan
        .tasks
        .iter()
        .map(|t| (t.task.round.to_string(), t.task.level.to_string(), t.task.index.to_string()))
        .collect();
    planned.sort();
    assert_eq!(seen, planned, "every task of every round, once");
    // Nothing else of the job's trace is left outside it.
    assert!(spans.iter().filter(|s| s.span_context.trace_id() == trace).count() > plan.tasks.len());
}
