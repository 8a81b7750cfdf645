//! The one span every worker opens per task ([`TaskSpan`]): the hot path of span export.
//!
//! A task span is not an OpenTelemetry SDK span while it is open. It is a plain record
//! ([`TaskRecord`]): ids, two timestamps, the task's ids as numbers and its job name shared with
//! the other tasks of the job. Nothing is allocated for it on the task's thread, and nothing of it
//! is freed on another thread but a reference count. Where it goes when it ends depends on the
//! span layer it was opened under:
//!
//! - with span export set up by `telemetry::init` (an OTLP endpoint), it is queued for a thread of
//!   its own ([`Batcher`]), which writes the queued records as OTLP protobuf straight from their
//!   fields and posts them, in batches, as the SDK's batch processor does with other spans;
//! - under a span layer made from a tracer alone (`telemetry::span_layer`, as tests make it), it is
//!   handed to that tracer as it ends, as an SDK span with the same parent, times and attributes,
//!   so that it reaches the tracer's processors like any other span.
//!
//! On the dispatch benchmark the SDK span cost a no-op task about 2,400 instructions on its thread
//! to start and end, 3,700 more on the export thread, and most of what telemetry's allocations
//! cost ("Task spans as records" in `git show a9e8093^:docs/benchmarks.md`).
//!
//! Sampling is the SDK's, as the environment configures it (`OTEL_TRACES_SAMPLER`; parent-based by
//! default, so tasks follow the decision their leader's `traceparent` carries), decided when the
//! span starts. The batch settings are the SDK's environment variables too:
//! `OTEL_BSP_SCHEDULE_DELAY` (ms, default 5,000), `OTEL_BSP_MAX_QUEUE_SIZE` (2,048) and
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512). A record that finds the queue full is dropped and
//! counted, and the count is logged with the next export.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SamplingDecision, SdkTracer, ShouldSample};

use crate::otlp::OtlpExporter;
use crate::Round;

/// A finished (or open) task span: what an OTLP span of it holds.
#[derive(Clone, Debug)]
pub(crate) struct TaskRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `SpanId::INVALID` for a task without a trace context (the root of a trace of its own).
    pub parent_span_id: SpanId,
    /// Whether the parent came from another process (always, when there is one: the leader's).
    pub parent_is_remote: bool,
    pub flags: TraceFlags,
    pub trace_state: TraceState,
    pub start: SystemTime,
    pub end: SystemTime,
    pub job: Arc<str>,
    pub batch: u64,
    pub round: Round,
    pub index: u32,
    pub tx_range: (u64, u64),
    /// Shown on aggregate tasks only, where it tells tasks apart.
    pub level: Option<u32>,
    /// Shown from a second attempt on.
    pub attempt: Option<u32>,
    pub outcome: Option<&'static str>,
}

impl TaskRecord {
    /// The attributes as the span carries them, in this order: `job`, `batch`, `round`, `index`,
    /// `tx_range`, then `level`, `attempt` and `outcome` where set.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new("job", self.job.to_string()),
            KeyValue::new("batch", self.batch as i64),
            KeyValue::new("round", self.round.as_str()),
            KeyValue::new("index", i64::from(self.index)),
            KeyValue::new("tx_range", format!("({}, {})", self.tx_range.0, self.tx_range.1)),
        ];
        attributes.extend(self.level.map(|l| KeyValue::new("level", i64::from(l))));
        attributes.extend(self.attempt.map(|a| KeyValue::new("attempt", i64::from(a))));
        attributes.extend(self.outcome.map(|o| KeyValue::new("outcome", o)));
        attributes
    }
}

/// Where a span layer sends the task spans opened under it.
pub(crate) enum Sink {
    /// Handed to this tracer as SDK spans, one by one as they end; its sampler decides.
    Tracer(SdkTracer),
    /// Queued for OTLP export; `sampler` decides at the start of each.
    Batched { sampler: Box<dyn ShouldSample>, batcher: Arc<Batcher> },
}

impl Sink {
    /// The record of a span for `task` starting now, unless the sampler drops it.
    fn start(&self, task: &crate::Task) -> Option<TaskRecord> {
        let parent_cx = task.trace.parent();
        let parent = parent_cx.span();
        let parent = parent.span_context();
        let ids = RandomIdGenerator::default();
        let trace_id = if parent.is_valid() { parent.trace_id() } else { ids.new_trace_id() };
        let trace_state = match self {
            // The tracer's own sampler decides when the span is handed over.
            Sink::Tracer(_) => parent.trace_state().clone(),
            Sink::Batched { sampler, .. } => {
                let result = sampler.should_sample(Some(parent_cx), trace_id, "task", &SpanKind::Internal, &[], &[]);
                // A span recorded but not sampled is not exported either (the SDK's processors
                // skip it), so it need not be recorded at all.
                if result.decision != SamplingDecision::RecordAndSample {
                    return None;
                }
                result.trace_state
            }
        };
        let valid_parent = parent.is_valid();
        Some(TaskRecord {
            trace_id,
            span_id: ids.new_span_id(),
            parent_span_id: if valid_parent { parent.span_id() } else { SpanId::INVALID },
            parent_is_remote: valid_parent && parent.is_remote(),
            flags: parent.trace_flags().with_sampled(true),
            trace_state,
            start: SystemTime::now(),
            end: SystemTime::UNIX_EPOCH,
            job: task.trace.job(&task.job),
            batch: task.batch,
            round: task.round,
            index: task.index,
            tx_range: task.tx_range,
            level: task.shown_level(),
            attempt: task.shown_attempt(),
            outcome: None,
        })
    }

    fn end(&self, record: TaskRecord) {
        match self {
            Sink::Tracer(tracer) => replay(tracer, record),
            Sink::Batched { batcher, .. } => batcher.push(record),
        }
    }
}

/// `record` as an SDK span of `tracer`: a child of the same parent (or a root), with the same
/// times and attributes. The SDK gives it a span id of its own (nothing refers to a task span's
/// id) and, for a root, a trace id of its own.
pub(crate) fn replay(tracer: &SdkTracer, record: TaskRecord) {
    let parent = if record.parent_span_id == SpanId::INVALID {
        opentelemetry::Context::new()
    } else {
        let context = SpanContext::new(
            record.trace_id,
            record.parent_span_id,
            record.flags,
            record.parent_is_remote,
            record.trace_state.clone(),
        );
        opentelemetry::Context::new().with_remote_span_context(context)
    };
    let mut span = tracer
        .span_builder("task")
        .with_start_time(record.start)
        .with_attributes(record.attributes())
        .start_with_context(tracer, &parent);
    span.end_with_timestamp(record.end);
}

/// One task's span, from taking the task to its result: a child of the trace context the task
/// carries (the leader's `job` span), with the task's ids as attributes (`job`, `batch`, `round`,
/// `index`, `tx_range`; `level` on aggregate tasks, `attempt` from a second attempt on) and, once
/// known, its `outcome`. It ends when dropped, so a task given up half way (its job cancelled)
/// still shows, without an outcome.
///
/// Without span export (no span layer in the current subscriber) it records nothing and costs a
/// lookup. Log lines about a task carry the same ids as fields of their own.
pub struct TaskSpan(Option<(TaskRecord, Arc<Sink>)>);

impl TaskSpan {
    pub fn start(task: &crate::Task) -> Self {
        Self(tracing::dispatcher::get_default(|dispatch| {
            let sink = &dispatch.downcast_ref::<crate::telemetry::TaskTracer>()?.0;
            Some((sink.start(task)?, sink.clone()))
        }))
    }

    /// Records how the task ended (`succeeded`, `retried`, `failed`).
    pub fn outcome(&mut self, outcome: &'static str) {
        if let Some((record, _)) = &mut self.0 {
            record.outcome = Some(outcome);
        }
    }

    /// Whether the span is recorded (span export is on and the sampler keeps it).
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for TaskSpan {
    fn drop(&mut self) {
        if let Some((mut record, sink)) = self.0.take() {
            record.end = SystemTime::now();
            sink.end(record);
        }
    }
}

/// How the batcher batches, from the SDK's environment variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchConfig {
    pub delay: Duration,
    pub max_queue: usize,
    pub max_batch: usize,
}

impl BatchConfig {
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings that variables looked up with `lookup` give; a value that is not a positive
    /// whole number is ignored, as the SDK ignores it.
    fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str, default: u64| -> u64 {
            lookup(name).and_then(|v| v.trim().parse().ok()).filter(|&n| n > 0).unwrap_or(default)
        };
        let max_queue = var("OTEL_BSP_MAX_QUEUE_SIZE", 2048) as usize;
        Self {
            delay: Duration::from_millis(var("OTEL_BSP_SCHEDULE_DELAY", 5000)),
            max_queue,
            // As the SDK has it: a batch is never larger than the queue.
            max_batch: (var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512) as usize).min(max_queue),
        }
    }
}

/// Task spans waiting for export, and the thread that exports them.
pub(crate) struct Batcher {
    queue: Mutex<Queue>,
    wake: Condvar,
    config: BatchConfig,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Queue {
    records: Vec<TaskRecord>,
    /// Records that found the queue full since the last export.
    dropped: u64,
    shutdown: bool,
}

impl Batcher {
    /// Starts the export thread, which posts each batch with `exporter` under the instrumentation
    /// scope `scope` (the name of the tracer that other spans of the process go to).
    pub fn start(exporter: OtlpExporter, scope: &'static str, config: BatchConfig) -> Arc<Self> {
        let batcher = Arc::new(Batcher {
            queue: Mutex::new(Queue { records: Vec::with_capacity(config.max_batch), ..Default::default() }),
            wake: Condvar::new(),
            config,
            thread: Mutex::new(None),
        });
        let worker = batcher.clone();
        let thread = std::thread::Builder::new()
            .name("zkfleet-task-spans".into())
            .spawn(move || worker.run(&exporter, scope))
            .expect("a thread for task span export");
        *batcher.thread.lock().unwrap() = Some(thread);
        batcher
    }

    fn push(&self, record: TaskRecord) {
        let mut queue = self.queue.lock().unwrap();
        if queue.shutdown || queue.records.len() >= self.config.max_queue {
            queue.dropped += 1;
            return;
        }
        queue.records.push(record);
        if queue.records.len() == self.config.max_batch {
            self.wake.notify_one();
        }
    }

    /// The export thread: a batch when `max_batch` records are queued or `delay` has passed since
    /// the last, whichever comes first; at shutdown, what is left.
    fn run(&self, exporter: &OtlpExporter, scope: &str) {
        // Records are taken by swapping vectors, so that the queue's storage is reused.
        let mut taken: Vec<TaskRecord> = Vec::with_capacity(self.config.max_batch);
        let mut next = Instant::now() + self.config.delay;
        loop {
            let (dropped, last) = {
                let mut queue = self.queue.lock().unwrap();
                while !queue.shutdown && queue.records.len() < self.config.max_batch {
                    let now = Instant::now();
                    if now >= next {
                        break;
                    }
                    queue = self.wake.wait_timeout(queue, next - now).unwrap().0;
                }
                std::mem::swap(&mut queue.records, &mut taken);
                (std::mem::take(&mut queue.dropped), queue.shutdown)
            };
            next = Instant::now() + self.config.delay;
            if dropped > 0 {
                tracing::warn!(dropped, "task spans dropped: the export queue was full");
            }
            for batch in taken.chunks(self.config.max_batch) {
                if let Err(e) = exporter.export_tasks(scope, batch) {
                    tracing::warn!(spans = batch.len(), error = %e, "task spans not exported");
                }
            }
            taken.clear();
            if last {
                return;
            }
        }
    }

    /// Exports what is queued and stops the export thread; records that end later are dropped.
    pub fn shutdown(&self) {
        self.queue.lock().unwrap().shutdown = true;
        self.wake.notify_one();
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;
    use tracing_subscriber::layer::SubscriberExt;

    type Requests = std::sync::mpsc::Receiver<(String, Vec<u8>)>;

    /// A batcher posting to a collector stand-in on loopback, and what the collector receives.
    fn batcher(config: BatchConfig) -> (Arc<Batcher>, Requests) {
        let (addr, requests) = crate::testing::otlp_collector();
        let mut exporter =
            OtlpExporter::new(format!("http://{addr}/v1/traces"), Vec::new(), crate::otlp::DEFAULT_TIMEOUT);
        let resource = opentelemetry_sdk::Resource::builder_empty().with_service_name("zkfleet-worker").build();
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
        (Batcher::start(exporter, "zkfleet-worker", config), requests)
    }

    /// Runs `body` under a span layer whose task spans go to `batcher`, sampled as by default.
    fn with_batcher(batcher: &Arc<Batcher>, body: impl FnOnce()) {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let sink =
            Sink::Batched { sampler: opentelemetry_sdk::trace::Config::default().sampler, batcher: batcher.clone() };
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "zkfleet-worker");
        let layer = crate::telemetry::layer_with_sink(tracer, sink);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), body);
    }

    fn task(index: u32, traceparent: &str) -> crate::Task {
        let mut task = crate::testing::empty_task("j-1", Round::Basic, index);
        task.tx_range = (u64::from(index) * 10, u64::from(index) * 10 + 10);
        let pairs = [("traceparent".to_string(), traceparent.to_string())].into();
        task.trace = crate::telemetry::TraceContext::from_pairs(pairs);
        task
    }

    /// A span as the tests read it: name, parent span id in hex, attributes as text.
    type Exported = (String, String, Vec<(String, String)>);

    /// The spans of one export request.
    fn spans(body: &[u8]) -> Vec<Exported> {
        let request = ExportTraceServiceRequest::decode(body).expect("a valid export request");
        let scopes = &request.resource_spans[0].scope_spans;
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].scope.as_ref().unwrap().name, "zkfleet-worker");
        scopes[0]
            .spans
            .iter()
            .map(|s| {
                let attributes = s
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(Value::StringValue(s)) => s.clone(),
                            Some(Value::IntValue(i)) => i.to_string(),
                            other => panic!("unexpected value {other:?}"),
                        };
                        (kv.key.clone(), value)
                    })
                    .collect();
                (s.name.clone(), hex::encode(&s.parent_span_id), attributes)
            })
            .collect()
    }

    const SAMPLED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn task_spans_are_posted_in_batches_and_the_rest_at_shutdown() {
        let config = BatchConfig { delay: Duration::from_secs(600), max_queue: 64, max_batch: 4 };
        let (batcher, requests) = batcher(config);
        with_batcher(&batcher, || {
            for index in 0..10 {
                let mut span = TaskSpan::start(&task(index, SAMPLED));
                assert!(span.is_recording());
                span.outcome("succeeded");
            }
        });
        // Two full batches go out as they fill, long before the delay is up.
        let wait = Duration::from_secs(30);
        let first = spans(&requests.recv_timeout(wait).expect("a first batch").1);
        let second = spans(&requests.recv_timeout(wait).expect("a second batch").1);
        assert_eq!((first.len(), second.len()), (4, 4));
        batcher.shutdown();
        let rest = spans(&requests.recv_timeout(wait).expect("the rest at shutdown").1);
        assert_eq!(rest.len(), 2);
        assert!(requests.try_recv().is_err(), "nothing more");

        let all: Vec<_> = first.into_iter().chain(second).chain(rest).collect();
        for (i, (name, parent, attributes)) in all.iter().enumerate() {
            assert_eq!(name, "task");
            assert_eq!(parent, "b7ad6b7169203331", "a child of the job span the traceparent names");
            let expected: Vec<(String, String)> = [
                ("job", "j-1".to_string()),
                ("batch", "0".to_string()),
                ("round", "basic".to_string()),
                ("index", i.to_string()),
                ("tx_range", format!("({}, {})", i * 10, i * 10 + 10)),
                ("outcome", "succeeded".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            assert_eq!(attributes, &expected);
        }
    }

    #[test]
    fn a_full_queue_drops_task_spans_and_an_unsampled_parent_records_none() {
        // A batch larger than the queue: nothing goes out before shutdown.
        let config = BatchConfig { delay: Duration::from_secs(600), max_queue: 3, max_batch: 10 };
        let (batcher, requests) = batcher(config);
        with_batcher(&batcher, || {
            let unsampled = SAMPLED.replace("-01", "-00");
            assert!(!TaskSpan::start(&task(0, &unsampled)).is_recording(), "the leader did not sample the job");
            for index in 0..5 {
                drop(TaskSpan::start(&task(index, SAMPLED)));
            }
        });
        assert_eq!(batcher.queue.lock().unwrap().dropped, 2, "two found the queue full");
        batcher.shutdown();
        let sent = spans(&requests.recv_timeout(Duration::from_secs(30)).expect("the queued spans at shutdown").1);
        let indexes: Vec<&str> = sent.iter().map(|(_, _, a)| a[3].1.as_str()).collect();
        assert_eq!(indexes, ["0", "1", "2"], "the first three, with no outcome (given up half way)");
        assert!(sent.iter().all(|(_, _, a)| a.len() == 5));
        // After shutdown a span is dropped, not queued for a thread that is gone.
        with_batcher(&batcher, || drop(TaskSpan::start(&task(9, SAMPLED))));
        assert!(batcher.queue.lock().unwrap().records.is_empty());
    }

    #[test]
    fn batch_settings_come_from_the_sdk_variables() {
        let vars = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| set.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        const SET: [(&str, &str); 3] = [
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
        ];
        // A batch is never larger than the queue.
        let config = BatchConfig { delay: Duration::from_millis(250), max_queue: 100, max_batch: 100 };
        assert_eq!(BatchConfig::from_vars(vars(&SET)), config);
        let defaults = BatchConfig { delay: Duration::from_secs(5), max_queue: 2048, max_batch: 512 };
        assert_eq!(BatchConfig::from_vars(vars(&[])), defaults);
        assert_eq!(BatchConfig::from_vars(vars(&[("OTEL_BSP_SCHEDULE_DELAY", "soon")])), defaults, "not a number");
    }
}
