//! Logging and tracing setup: log lines on stderr, human-readable or one JSON object each,
//! filtered by `RUST_LOG` (default `info`, with the AMQP client's own logs off: the fleet logs
//! connection loss and recovery itself, once each). Stdout is reserved for results (a proof, a
//! batch), so nothing here writes to it.
//!
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//! spans also go to that OTLP collector over HTTP/protobuf (`otlp`); otherwise no span is exported
//! and no trace context is sent. The trace context of a job travels in W3C
//! `traceparent`/`tracestate` pairs ([`inject`] makes the [`TraceContext`] every task of the job
//! carries, and [`task_span`] takes it as the parent on the worker's side) so one job is one trace
//! across the leader and every worker.
//!
//! Every span is a `tracing` span, exported through the span layer and the OpenTelemetry SDK;
//! the one a worker opens per task ([`task_span`]) is the span its log lines are written in too.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines look: for people at a terminal, or one JSON object per line for log pipelines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The variables that turn span export on (the OpenTelemetry SDK's own names).
pub const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

#[derive(Debug, thiserror::Error)]
#[error("tracing export to {endpoint}: {reason}")]
pub struct TelemetryError {
    endpoint: String,
    reason: String,
}

/// Keeps span export running; dropping it sends the spans still buffered.
#[must_use = "dropping the guard stops span export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint is configured); the dispatch benchmark checks
    /// that its "on" side really exports.
    #[cfg(feature = "testing")]
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Sets up logging and, when an OTLP endpoint is configured, span export for the process named
/// `service` (the default `service.name`; `OTEL_SERVICE_NAME` overrides it). A second call in the
/// same process (tests that run several entry points) keeps the first setup.
pub fn init(format: LogFormat, service: &'static str) -> Result<Telemetry, TelemetryError> {
    let endpoint = ENDPOINT_VARS.iter().find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()));
    let provider = match endpoint {
        Some(endpoint) => Some(otlp_pipeline(service).map_err(|reason| TelemetryError { endpoint, reason })?),
        None => None,
    };
    let layer = provider.as_ref().map(|provider| span_layer(provider.tracer(service)));
    let _ = Registry::default().with(log_layer(format, std::io::stderr)).with(layer).try_init();
    Ok(Telemetry { provider })
}

/// The log layer: text or JSON lines to `writer`, filtered by `RUST_LOG`. JSON lines carry the
/// fields of the span they were logged in (`span`) at the top level next to the message.
pub fn log_layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_target(false);
    match format {
        LogFormat::Text => layer.with_ansi(std::io::stderr().is_terminal()).with_filter(filter).boxed(),
        LogFormat::Json => layer.json().with_current_span(true).with_span_list(false).with_filter(filter).boxed(),
    }
}

/// The span layer: zkfleet's spans at `info` and above go to `tracer`, whatever `RUST_LOG` says
/// about log lines. Spans only: log lines are not copied into spans as events (a span's outcome
/// is one of its fields), which keeps a span's cost to a few attributes.
pub fn span_layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // The hint tells tracing that nothing finer than `info` is wanted here, so `debug` and
    // `trace` callsites can be skipped early when the log filter does not want them either.
    let ours = filter_fn(|meta| {
        let krate = meta.target().split("::").next().unwrap_or_default();
        meta.is_span() && *meta.level() <= Level::INFO && ["common", "leader", "worker", "prover"].contains(&krate)
    })
    .with_max_level_hint(Level::INFO);
    // No source location, thread, busy/idle or target attributes: a span carries the fields it
    // was given. No context activation either: nothing here reads OpenTelemetry's current context
    // (trace context is taken from the span itself, `inject`), so entering a span need not
    // attach one.
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_target(false)
        .with_context_activation(false)
        .with_filter(ours)
}

/// The span of one task, on whatever fleet runs it: `task`, with the task's ids as fields (`job`,
/// `batch`, `round`, `index`, `tx_range`, and `level` on aggregate tasks, `attempt` from a second
/// attempt on), and `outcome` to be recorded when it ends. Its parent is the job span the task's
/// trace context names, so one job is one trace; a task that carries none is a trace of its own.
/// Every log line written inside it carries its fields (JSON lines as `span`, text lines as a
/// `task{…}` prefix).
pub fn task_span(task: &crate::Task) -> tracing::Span {
    // Numbers as i64: the span layer keeps those as numbers (an unsigned one becomes text).
    let span = tracing::info_span!("task", job = %task.job, batch = task.batch as i64, round = %task.round,
        level = task.shown_level().map(i64::from), index = i64::from(task.index), tx_range = ?task.tx_range,
        attempt = task.shown_attempt().map(i64::from), outcome = tracing::field::Empty);
    if !task.trace.is_empty() {
        // Without a span layer there is no trace to join, and nothing to do.
        let _ = span.set_parent(task.trace.parent());
    }
    span
}

/// The provider that exports the process's spans over OTLP, in batches from a thread of its own
/// (`OTEL_BSP_*`), sampled as `OTEL_TRACES_SAMPLER` says; `service` is the default service name.
fn otlp_pipeline(service: &'static str) -> Result<SdkTracerProvider, String> {
    Ok(provider(crate::otlp::exporter(None)?, service))
}

fn provider(exporter: crate::otlp::Logged, service: &'static str) -> SdkTracerProvider {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build()
}

/// The trace context of `span` as W3C header pairs; empty when spans are not recorded. An empty
/// `tracestate` is left out (W3C allows it), so a task message carries one header, not two.
pub fn inject(span: &tracing::Span) -> TraceContext {
    struct Carrier<'a>(&'a mut BTreeMap<String, String>);
    impl Injector for Carrier<'_> {
        fn set(&mut self, key: &str, value: String) {
            if !value.is_empty() {
                self.0.insert(key.to_string(), value);
            }
        }
    }
    let mut carrier = BTreeMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut Carrier(&mut carrier));
    TraceContext::from_pairs(carrier)
}

/// A job's trace context as each of its tasks carries it: the W3C header pairs (`traceparent`,
/// and `tracestate` when it is not empty). On the wire it is the map of pairs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TraceContext(BTreeMap<String, String>);

impl TraceContext {
    /// The context these header pairs name; none when there are none.
    pub fn from_pairs(pairs: BTreeMap<String, String>) -> Self {
        Self(pairs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of header `name`, if carried.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The header pairs, in name order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The remote span these pairs name, as the parent of a task span; an empty context (a new
    /// trace) when they name none.
    pub fn parent(&self) -> opentelemetry::Context {
        extract(&self.0)
    }
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The remote span context that `carrier` names; an empty context when it names none.
fn extract(carrier: &BTreeMap<String, String>) -> opentelemetry::Context {
    struct Carrier<'a>(&'a BTreeMap<String, String>);
    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(String::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }
    TraceContextPropagator::new().extract(&Carrier(carrier))
}

/// The header names a trace context travels under, in AMQP message headers as in HTTP.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    fn span_ids(span: &tracing::Span) -> (String, String) {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    }

    #[test]
    fn spans_are_recorded_when_log_lines_are_quieter() {
        // As with RUST_LOG=warn: log lines at warn, spans at info all the same.
        let provider = SdkTracerProvider::builder().build();
        let quiet = tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_filter(EnvFilter::new("warn"));
        let subscriber = Registry::default().with(quiet).with(span_layer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("task");
            assert!(inject(&span).get("traceparent").is_some(), "the info span is recorded");
        });
    }

    #[test]
    fn a_context_survives_inject_and_a_task_span_is_its_child() {
        use opentelemetry_sdk::trace::InMemorySpanExporter;
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        // The span layer under a log layer, as `init` stacks them: task spans find its tracer.
        let subscriber = Registry::default()
            .with(log_layer(LogFormat::Json, std::io::sink))
            .with(span_layer(provider.tracer("test")));
        let (job, carrier) = tracing::subscriber::with_default(subscriber, || {
            let job = tracing::info_span!("job");
            let carrier = inject(&job);
            let (trace, span) = span_ids(&job);
            assert_eq!(
                carrier.get("traceparent"),
                Some(&*format!("00-{trace}-{span}-01")),
                "W3C traceparent of the job span"
            );
            assert_eq!(carrier.get("tracestate"), None, "an empty tracestate is not sent: {carrier:?}");

            // The other side of the broker: task spans whose parent is the remote job span.
            let mut task = crate::testing::empty_task("j-1", crate::Round::Aggregate, 3);
            task.attempt = 2;
            task.trace = carrier.clone();
            let span = task_span(&task);
            span.record("outcome", "succeeded");
            drop(span);
            // A first attempt of a basic task: no level, no attempt.
            let mut basic = crate::testing::empty_task("j-1", crate::Round::Basic, 4);
            basic.trace = carrier.clone();
            drop(task_span(&basic));
            // No carrier: a root of its own trace.
            drop(task_span(&crate::testing::empty_task("j-2", crate::Round::Basic, 0)));
            (span_ids(&job), carrier)
        });
        let spans = exporter.get_finished_spans().unwrap();
        let attrs = |s: &opentelemetry_sdk::trace::SpanData| -> BTreeMap<String, String> {
            s.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect()
        };
        let mut tasks: Vec<_> = spans.iter().filter(|s| s.name == "task").collect();
        assert_eq!(tasks.len(), 3, "{spans:#?}");
        let lone = tasks.pop().unwrap();
        assert_ne!(lone.span_context.trace_id().to_string(), job.0, "without a carrier, a trace of its own");
        assert_eq!(lone.parent_span_id, opentelemetry::trace::SpanId::INVALID, "without a carrier, a root");
        for task in &tasks {
            assert_eq!(task.span_context.trace_id().to_string(), job.0, "in the job's trace ({carrier:?})");
            assert_eq!(task.parent_span_id.to_string(), job.1, "a child of the job span");
            assert_ne!(task.span_context.span_id().to_string(), job.1, "a span of its own");
        }
        let aggregate = attrs(tasks[0]);
        let expected = [
            ("job", "j-1"),
            ("batch", "0"),
            ("round", "aggregate"),
            ("index", "3"),
            ("tx_range", "(0, 0)"),
            ("level", "1"),
            ("attempt", "2"),
            ("outcome", "succeeded"),
        ];
        assert_eq!(aggregate, expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let basic = attrs(tasks[1]);
        assert_eq!(basic["round"], "basic");
        for absent in ["level", "attempt", "outcome"] {
            assert!(!basic.contains_key(absent), "{absent} on a first-attempt basic task: {basic:?}");
        }
    }

    #[test]
    fn a_trace_context_travels_as_the_map_of_its_pairs() {
        use crate::protocol::{decode, encode};
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let pairs = BTreeMap::from([("traceparent".to_string(), traceparent.to_string())]);
        let trace = TraceContext::from_pairs(pairs.clone());
        assert_eq!(encode(&trace), encode(&pairs), "the same bytes as the map it replaced");
        assert_eq!(decode::<TraceContext>(&encode(&pairs)).unwrap(), trace);
        let none = BTreeMap::<String, String>::new();
        assert_eq!(encode(&TraceContext::default()), encode(&none));
        assert!(decode::<TraceContext>(&encode(&none)).unwrap().is_empty());
        assert_eq!(format!("{trace:?}"), format!("{pairs:?}"));
    }

    #[test]
    fn a_log_line_inside_a_task_span_carries_the_task_on_any_thread() {
        let lines = crate::testing::LogCapture::default();
        let subscriber = Registry::default().with(log_layer(LogFormat::Json, lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let task = crate::testing::empty_task("j-1", crate::Round::Final, 0);
            let span = task_span(&task);
            // As the worker runs the prover: on a thread of its own, in the task's span.
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || span.in_scope(|| tracing::info!("circuit built")))
            })
            .join()
            .unwrap();
        });
        let line: serde_json::Value = serde_json::from_str(&lines.text()).unwrap();
        assert_eq!(line["fields"]["message"], "circuit built");
        let span = &line["span"];
        let expected = serde_json::json!({"name": "task", "job": "j-1", "batch": 0, "round": "final", "index": 0,
            "tx_range": "(0, 0)"});
        assert_eq!(span, &expected, "{line}");
    }

    /// The standard exporter as `init` sets it up, against a collector stand-in that is overloaded
    /// for its first two requests: every span arrives, gzip-compressed, in OTLP protobuf.
    #[test]
    fn spans_reach_the_collector_gzipped_and_none_is_lost_to_a_503() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message as _;
        use std::io::Read as _;
        let (addr, taken) = crate::testing::otlp_collector_answering(vec![503, 503]);
        let exporter = crate::otlp::exporter(Some(&format!("http://{addr}/v1/traces"))).unwrap();
        let provider = provider(exporter, "zkfleet-test");
        let subscriber = Registry::default().with(span_layer(provider.tracer("zkfleet-test")));
        tracing::subscriber::with_default(subscriber, || {
            for index in 0..10 {
                let span = task_span(&crate::testing::empty_task("j-gz", crate::Round::Basic, index));
                span.record("outcome", "succeeded");
            }
        });
        provider.force_flush().expect("the batch is exported after the collector recovers");
        let mut names = Vec::new();
        for (head, body) in taken.try_iter() {
            assert!(head.to_ascii_lowercase().contains("content-encoding: gzip"), "{head}");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).expect("a gzip body");
            let request = ExportTraceServiceRequest::decode(&plain[..]).expect("an OTLP request");
            for resource in &request.resource_spans {
                let service = resource.resource.as_ref().unwrap().attributes.iter().find(|kv| kv.key == "service.name");
                assert_eq!(service.unwrap().value, Some(string_value("zkfleet-test")));
                for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                    let index = span.attributes.iter().find(|kv| kv.key == "index").expect("an index");
                    names.push((span.name.clone(), index.value.clone()));
                }
            }
        }
        let expected: Vec<_> = (0..10).map(|i| ("task".to_string(), Some(int_value(i)))).collect();
        names.sort_by_key(|(_, index)| format!("{index:?}"));
        assert_eq!(names, expected, "each task span once");
    }

    /// A collector that refuses a batch for good (400: not retried) costs those spans, and the
    /// process says so in its log. The warning comes from the export thread, which logs through
    /// the global subscriber: this is the one test of the crate that sets it.
    #[test]
    fn a_batch_the_collector_refuses_is_logged() {
        let lines = crate::testing::LogCapture::default();
        tracing::subscriber::set_global_default(Registry::default().with(log_layer(LogFormat::Json, lines.clone())))
            .expect("no other test sets the global subscriber");
        let (addr, taken) = crate::testing::otlp_collector_answering(vec![400]);
        let exporter = crate::otlp::exporter(Some(&format!("http://{addr}/v1/traces"))).unwrap();
        let provider = provider(exporter, "zkfleet-test");
        let subscriber = Registry::default().with(span_layer(provider.tracer("zkfleet-test")));
        tracing::subscriber::with_default(subscriber, || {
            for index in 0..3 {
                drop(task_span(&crate::testing::empty_task("j-400", crate::Round::Basic, index)));
            }
        });
        let _ = provider.force_flush();
        assert_eq!(taken.try_iter().count(), 0, "the collector took nothing");
        let text = lines.text();
        let warning = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == "span export failed; these spans are dropped")
            .unwrap_or_else(|| panic!("no warning in:\n{text}"));
        assert_eq!(warning["level"], "WARN");
        assert_eq!(warning["fields"]["spans"], 3, "{warning}");
        assert!(warning["fields"]["error"].as_str().unwrap().contains("400"), "{warning}");
    }

    fn string_value(s: &str) -> opentelemetry_proto::tonic::common::v1::AnyValue {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(Value::StringValue(s.to_string())) }
    }

    fn int_value(i: i64) -> opentelemetry_proto::tonic::common::v1::AnyValue {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(Value::IntValue(i)) }
    }

    #[test]
    fn nothing_is_injected_without_span_export() {
        let subscriber = Registry::default().with(log_layer(LogFormat::Json, std::io::sink));
        tracing::subscriber::with_default(subscriber, || {
            assert!(inject(&tracing::info_span!("job")).is_empty());
        });
    }
}
