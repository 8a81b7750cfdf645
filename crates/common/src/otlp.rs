//! The span exporter: OTLP over HTTP with protobuf bodies, written straight from the SDK's span
//! records to the wire.
//!
//! It replaces opentelemetry-otlp's exporter, which builds the generated protobuf structs of every
//! batch first (a `String` per attribute key and value, a `Vec` per id) and then encodes them: on
//! the dispatch benchmark that cost 3.7 µs per span on the export thread, the largest single part
//! of what telemetry costs a no-op task; written directly, the export thread costs 1.8 µs per span,
//! half of it taking the span records in and dropping them ("one encoder" in
//! `git show a9e8093^:docs/benchmarks.md`).
//! The message layout is OTLP's `trace.proto`; a unit test decodes what this writes with the
//! OpenTelemetry project's own generated types, compares it with their conversion of the same
//! spans, and checks that the bytes are the same.
//!
//! Configuration is the SDK's environment variables, as the exporter it replaces read them:
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (with
//! `/v1/traces` appended); `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
//! (`key=value,…`, values percent-decoded); `OTEL_EXPORTER_OTLP_TIMEOUT` and
//! `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` (milliseconds, default 10 s). A protocol other than
//! `http/protobuf` or a compression other than `none` is refused at start rather than ignored.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::task_span::TaskRecord;

/// How long one export may take before it is given up (the SDK logs it and goes on), unless the
/// environment says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends span batches to one OTLP/HTTP endpoint.
pub struct OtlpExporter {
    agent: ureq::Agent,
    endpoint: String,
    headers: Vec<(String, String)>,
    /// The process's resource, encoded once.
    resource: EncodedResource,
}

impl std::fmt::Debug for OtlpExporter {
    /// The endpoint and the headers' names: header values carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self.headers.iter().map(|(name, _)| format!("{name}: ***")).collect();
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.endpoint)
            .field("headers", &headers)
            .finish_non_exhaustive()
    }
}

/// `ResourceSpans.resource` (field 1) and `.schema_url` (field 3), encoded.
#[derive(Debug, Default)]
struct EncodedResource {
    resource: Vec<u8>,
    schema_url: Vec<u8>,
}

impl OtlpExporter {
    /// The exporter the environment configures; the error names the variable that is wrong.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = match (var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(traces), _) => traces,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => "http://localhost:4318/v1/traces".to_string(),
        };
        check_endpoint(&endpoint)?;
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(protocol) = var(name).filter(|p| p != "http/protobuf") {
                return Err(format!("{name}={protocol}: only http/protobuf is supported"));
            }
        }
        for name in ["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"] {
            if let Some(compression) = var(name).filter(|c| c != "none") {
                return Err(format!("{name}={compression}: compression is not supported"));
            }
        }
        let mut headers = Vec::new();
        // The signal's own variable last, so its values win.
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            let Some(text) = var(name) else { continue };
            for (key, value) in parse_headers(&text).map_err(|e| format!("{name}: {e}"))? {
                headers.retain(|(k, _): &(String, String)| !k.eq_ignore_ascii_case(&key));
                headers.push((key, value));
            }
        }
        let mut timeout = DEFAULT_TIMEOUT;
        for name in ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"] {
            if let Some(ms) = var(name) {
                let ms: u64 = ms.trim().parse().map_err(|_| format!("{name}={ms}: not a number of milliseconds"))?;
                timeout = Duration::from_millis(ms);
                break;
            }
        }
        Ok(Self::new(endpoint, headers, timeout))
    }

    /// An exporter to `endpoint` (checked by the caller), sending `headers` with every request.
    pub(crate) fn new(endpoint: String, headers: Vec<(String, String)>, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build();
        Self { agent: ureq::Agent::new_with_config(config), endpoint, headers, resource: EncodedResource::default() }
    }
}

/// An endpoint ureq can post to: an absolute http or https URL.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = endpoint.parse().map_err(|e| format!("not a URL ({e})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err("not an http or https URL".to_string()),
    }
}

/// `key=value,key=value`, each value percent-decoded.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("`{}` is not key=value", pair.trim()))?;
            let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy().into_owned();
            Ok((key.trim().to_string(), value))
        })
        .collect()
}

impl OtlpExporter {
    /// Posts task spans ([`TaskRecord`]) as spans of the instrumentation scope `scope`.
    pub(crate) fn export_tasks(&self, scope: &str, records: &[TaskRecord]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        self.post(&encode_task_request(&self.resource, scope, records))
    }

    /// Posts one encoded `ExportTraceServiceRequest`; an error names the endpoint and what it said.
    fn post(&self, body: &[u8]) -> Result<(), String> {
        let mut request = self.agent.post(&self.endpoint).content_type("application/x-protobuf");
        for (key, value) in &self.headers {
            request = request.header(key, value);
        }
        let mut response = request.send(body).map_err(|e| format!("{}: {e}", self.endpoint))?;
        if response.status().is_success() {
            return Ok(());
        }
        let text = response.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
        Err(format!("{}: {} {}", self.endpoint, response.status(), text.trim()))
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let body = encode_request(&self.resource, &batch);
        drop(batch);
        self.post(&body).map_err(OTelSdkError::InternalFailure)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = encode_resource(resource);
    }
}

// Protobuf wire format: what OTLP's messages need of it. Hand-written because prost's encoding
// helpers are hidden from its documented API (they are for generated code); these are the
// format's four wire types and nothing more.

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u32) {
    varint(buf, u64::from(field << 3 | wire));
}

fn uint(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, VARINT);
        varint(buf, value);
    }
}

fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(buf, field, FIXED32);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        key(buf, field, LEN);
        varint(buf, value.len() as u64);
        buf.extend_from_slice(value);
    }
}

/// A nested message, written in place: the body goes after a one-byte length, which is widened
/// when the body is 128 bytes or more (most spans, and every batch's outer messages).
fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    // The length needs more than the byte kept for it: it goes after the body and is rotated to
    // the front, with no buffer of its own (a span is usually this size).
    buf.remove(at);
    varint(buf, len as u64);
    let prefix = buf.len() - at - len;
    buf[at..].rotate_right(prefix);
}

// OTLP's messages (opentelemetry/proto/…/v1/*.proto), field numbers as there. Fields at their
// default value are left out, as protobuf encoders do; a message field that the generated types
// always set (a span's status) is always written.

/// `ExportTraceServiceRequest`: one `ResourceSpans` of this process, with one `ScopeSpans` per
/// instrumentation scope, in the order the scopes first appear. Fields are written in the order of
/// their numbers, as protobuf's own encoders write them.
fn encode_request(resource: &EncodedResource, spans: &[SpanData]) -> Vec<u8> {
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    for span in spans {
        if !scopes.contains(&&span.instrumentation_scope) {
            scopes.push(&span.instrumentation_scope);
        }
    }
    let mut buf = Vec::with_capacity(64 + resource.resource.len() + spans.len() * 256);
    message(&mut buf, 1, |buf| {
        buf.extend_from_slice(&resource.resource);
        for scope in scopes {
            message(buf, 2, |buf| scope_spans(buf, scope, spans.iter().filter(|s| s.instrumentation_scope == *scope)));
        }
        buf.extend_from_slice(&resource.schema_url);
    });
    buf
}

/// The same request as [`encode_request`] makes of the SDK spans a task span tracer would make of
/// `records` under the scope `scope` (a name alone), written from the records' fields: integers
/// are not made into values first, nor `tx_range` into a string, nor anything allocated.
fn encode_task_request(resource: &EncodedResource, scope: &str, records: &[TaskRecord]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + resource.resource.len() + records.len() * 256);
    message(&mut buf, 1, |buf| {
        buf.extend_from_slice(&resource.resource);
        message(buf, 2, |buf| {
            message(buf, 1, |buf| bytes(buf, 1, scope.as_bytes()));
            for record in records {
                message(buf, 2, |buf| encode_task(buf, record));
            }
        });
        buf.extend_from_slice(&resource.schema_url);
    });
    buf
}

/// A task span: what [`encode_span`] writes of the SDK span made from `record`.
fn encode_task(buf: &mut Vec<u8>, record: &TaskRecord) {
    bytes(buf, 1, &record.trace_id.to_bytes());
    bytes(buf, 2, &record.span_id.to_bytes());
    bytes(buf, 3, record.trace_state.header().as_bytes());
    if record.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(buf, 4, &record.parent_span_id.to_bytes());
    }
    bytes(buf, 5, b"task");
    uint(buf, 6, 1); // SPAN_KIND_INTERNAL
    fixed64(buf, 7, nanos(record.start));
    fixed64(buf, 8, nanos(record.end));
    string_attribute(buf, "job", &[&record.job]);
    int_attribute(buf, "batch", record.batch as i64);
    string_attribute(buf, "round", &[record.round.as_str()]);
    int_attribute(buf, "index", i64::from(record.index));
    let (mut start, mut end) = (itoa::Buffer::new(), itoa::Buffer::new());
    string_attribute(
        buf,
        "tx_range",
        &["(", start.format(record.tx_range.0), ", ", end.format(record.tx_range.1), ")"],
    );
    if let Some(level) = record.level {
        int_attribute(buf, "level", i64::from(level));
    }
    if let Some(attempt) = record.attempt {
        int_attribute(buf, "attempt", i64::from(attempt));
    }
    if let Some(outcome) = record.outcome {
        string_attribute(buf, "outcome", &[outcome]);
    }
    // An unset status: an empty message, as the generated types always write it.
    message(buf, 15, |_| {});
    fixed32(buf, 16, span_flags(record.flags.to_u8(), record.parent_is_remote));
}

/// A span attribute (`Span.attributes`, field 9) whose value is the string made of `parts`.
fn string_attribute(buf: &mut Vec<u8>, name: &str, parts: &[&str]) {
    message(buf, 9, |buf| {
        bytes(buf, 1, name.as_bytes());
        message(buf, 2, |buf| {
            key(buf, 1, LEN);
            varint(buf, parts.iter().map(|p| p.len()).sum::<usize>() as u64);
            parts.iter().for_each(|p| buf.extend_from_slice(p.as_bytes()));
        });
    });
}

/// A span attribute (`Span.attributes`, field 9) with an integer value.
fn int_attribute(buf: &mut Vec<u8>, name: &str, value: i64) {
    message(buf, 9, |buf| {
        bytes(buf, 1, name.as_bytes());
        message(buf, 2, |buf| {
            key(buf, 3, VARINT);
            varint(buf, value as u64);
        });
    });
}

fn encode_resource(resource: &Resource) -> EncodedResource {
    let mut encoded = EncodedResource::default();
    message(&mut encoded.resource, 1, |buf| {
        for (k, v) in resource.iter() {
            key_value(buf, 1, k.as_str(), v);
        }
    });
    bytes(&mut encoded.schema_url, 3, resource.schema_url().unwrap_or_default().as_bytes());
    encoded
}

fn scope_spans<'a>(buf: &mut Vec<u8>, scope: &InstrumentationScope, spans: impl Iterator<Item = &'a SpanData>) {
    message(buf, 1, |buf| {
        bytes(buf, 1, scope.name().as_bytes());
        bytes(buf, 2, scope.version().unwrap_or_default().as_bytes());
        attributes(buf, 3, scope.attributes());
    });
    for span in spans {
        message(buf, 2, |buf| encode_span(buf, span));
    }
    bytes(buf, 3, scope.schema_url().unwrap_or_default().as_bytes());
}

/// `Span.flags`: the W3C trace flags, and whether the parent is remote (with the bit that says
/// that this is known).
fn span_flags(trace_flags: u8, remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn encode_span(buf: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes(buf, 1, &context.trace_id().to_bytes());
    bytes(buf, 2, &context.span_id().to_bytes());
    bytes(buf, 3, context.trace_state().header().as_bytes());
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(buf, 4, &span.parent_span_id.to_bytes());
    }
    bytes(buf, 5, span.name.as_bytes());
    let kind = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    uint(buf, 6, kind);
    fixed64(buf, 7, nanos(span.start_time));
    fixed64(buf, 8, nanos(span.end_time));
    attributes(buf, 9, &span.attributes);
    uint(buf, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(buf, 11, |buf| {
            fixed64(buf, 1, nanos(event.timestamp));
            bytes(buf, 2, event.name.as_bytes());
            attributes(buf, 3, &event.attributes);
            uint(buf, 4, u64::from(event.dropped_attributes_count));
        });
    }
    uint(buf, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        message(buf, 13, |buf| {
            let context = &link.span_context;
            bytes(buf, 1, &context.trace_id().to_bytes());
            bytes(buf, 2, &context.span_id().to_bytes());
            bytes(buf, 3, context.trace_state().header().as_bytes());
            attributes(buf, 4, &link.attributes);
            uint(buf, 5, u64::from(link.dropped_attributes_count));
            fixed32(buf, 6, span_flags(context.trace_flags().to_u8(), context.is_remote()));
        });
    }
    uint(buf, 14, u64::from(span.links.dropped_count));
    message(buf, 15, |buf| {
        let code = match &span.status {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error { description } => {
                bytes(buf, 2, description.as_bytes());
                2
            }
        };
        uint(buf, 3, code);
    });
    fixed32(buf, 16, span_flags(context.trace_flags().to_u8(), span.parent_span_is_remote));
}

fn attributes<'a>(buf: &mut Vec<u8>, field: u32, attributes: impl IntoIterator<Item = &'a KeyValue>) {
    for kv in attributes {
        key_value(buf, field, kv.key.as_str(), &kv.value);
    }
}

/// `KeyValue { key, value: AnyValue }`.
fn key_value(buf: &mut Vec<u8>, field: u32, name: &str, value: &Value) {
    message(buf, field, |buf| {
        bytes(buf, 1, name.as_bytes());
        message(buf, 2, |buf| any_value(buf, value));
    });
}

/// The body of an `AnyValue`: one field of its `oneof`, written even at its default value (a
/// oneof field that is set is always on the wire).
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    let string = |buf: &mut Vec<u8>, s: &str| {
        key(buf, 1, LEN);
        varint(buf, s.len() as u64);
        buf.extend_from_slice(s.as_bytes());
    };
    let boolean = |buf: &mut Vec<u8>, b: bool| {
        key(buf, 2, VARINT);
        buf.push(u8::from(b));
    };
    let int = |buf: &mut Vec<u8>, i: i64| {
        key(buf, 3, VARINT);
        varint(buf, i as u64);
    };
    let double = |buf: &mut Vec<u8>, f: f64| {
        key(buf, 4, FIXED64);
        buf.extend_from_slice(&f.to_le_bytes());
    };
    match value {
        Value::Bool(b) => boolean(buf, *b),
        Value::I64(i) => int(buf, *i),
        Value::F64(f) => double(buf, *f),
        Value::String(s) => string(buf, s.as_str()),
        // `ArrayValue { values: repeated AnyValue }`.
        Value::Array(array) => message(buf, 5, |buf| match array {
            Array::Bool(values) => values.iter().for_each(|v| message(buf, 1, |buf| boolean(buf, *v))),
            Array::I64(values) => values.iter().for_each(|v| message(buf, 1, |buf| int(buf, *v))),
            Array::F64(values) => values.iter().for_each(|v| message(buf, 1, |buf| double(buf, *v))),
            Array::String(values) => values.iter().for_each(|v| message(buf, 1, |buf| string(buf, v.as_str()))),
            // A kind of array newer than this encoder: its text, as the value's display shows it.
            other => message(buf, 1, |buf| string(buf, &other.to_string())),
        }),
        // A kind of value newer than this encoder: its text.
        other => string(buf, other.as_str().as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use prost::Message;

    #[test]
    fn debug_output_holds_no_header_value() {
        let exporter = OtlpExporter::new(
            "http://collector:4318/v1/traces".into(),
            vec![("authorization".into(), "Bearer s3cr3t-otlp".into())],
            DEFAULT_TIMEOUT,
        );
        let shown = format!("{exporter:?}");
        assert!(shown.contains("authorization") && shown.contains("collector:4318"), "{shown}");
        assert!(!shown.contains("s3cr3t-otlp"), "{shown}");
    }

    fn context(trace: u128, span: u64, remote: bool, state: &str) -> SpanContext {
        let state: TraceState = state.parse().unwrap();
        SpanContext::new(TraceId::from(trace), SpanId::from(span), TraceFlags::SAMPLED, remote, state)
    }

    /// Spans with every field the encoder writes: attributes of each kind (with zero and
    /// negative values, and a long one), events, links, each status, two scopes, no parent.
    fn spans() -> Vec<SpanData> {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(1_764_000_000_000_000_000 + s);
        let task = InstrumentationScope::builder("zkfleet-worker").build();
        let other = InstrumentationScope::builder("other")
            .with_version("1.2")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("scope.kind", "test")])
            .build();
        let base = SpanData {
            span_context: context(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, false, ""),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_span_is_remote: true,
            span_kind: SpanKind::Internal,
            name: "task".into(),
            start_time: at(0),
            end_time: at(1_500_000),
            attributes: vec![
                KeyValue::new("job", "j-1"),
                KeyValue::new("batch", 7i64),
                KeyValue::new("round", "aggregate"),
                KeyValue::new("index", 0i64),
                KeyValue::new("tx_range", "(0, 1024)"),
                KeyValue::new("level", -1i64),
                KeyValue::new("outcome", "succeeded"),
            ],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: task.clone(),
        };
        let mut root = base.clone();
        root.parent_span_id = SpanId::INVALID;
        root.parent_span_is_remote = false;
        root.name = "job".into();
        root.span_kind = SpanKind::Server;
        root.status = Status::Ok;
        root.attributes = vec![
            KeyValue::new("ratio", 0.25),
            KeyValue::new("zero", 0.0),
            KeyValue::new("yes", true),
            KeyValue::new("no", false),
            KeyValue::new("empty", ""),
            KeyValue::new("long", "x".repeat(300)),
        ];
        let mut rich = base.clone();
        rich.instrumentation_scope = other;
        rich.span_context = context(0x1, 0x2, false, "vendor=abc,other=1");
        rich.span_kind = SpanKind::Consumer;
        rich.status = Status::error("the store said no");
        rich.dropped_attributes_count = 3;
        rich.attributes = vec![
            KeyValue::new("bools", Value::Array(vec![true, false].into())),
            KeyValue::new("ints", Value::Array(vec![0i64, -5, i64::MAX].into())),
            KeyValue::new("floats", Value::Array(vec![1.5, -0.0].into())),
            KeyValue::new("strings", Value::Array(vec![opentelemetry::StringValue::from("a"), "".into()].into())),
        ];
        rich.events.events = vec![
            opentelemetry::trace::Event::new("retry", at(10), vec![KeyValue::new("attempt", 2i64)], 1),
            opentelemetry::trace::Event::new("", at(0), vec![], 0),
        ];
        rich.events.dropped_count = 4;
        rich.links.links = vec![opentelemetry::trace::Link::new(
            context(0x3, 0x4, true, "k=v"),
            vec![KeyValue::new("why", "follows")],
            2,
        )];
        rich.links.dropped_count = 5;
        let mut third = base.clone();
        third.span_context = context(0x5, 0x6, true, "");
        third.parent_span_is_remote = false;
        third.span_kind = SpanKind::Producer;
        let mut fourth = base.clone();
        fourth.span_kind = SpanKind::Client;
        vec![base, root, rich, third, fourth]
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_service_name("zkfleet-worker")
            .with_attributes([KeyValue::new("host.name", "w-1"), KeyValue::new("pid", 42i64)])
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build()
    }

    #[test]
    fn a_batch_decodes_to_what_the_opentelemetry_types_make_of_it() {
        let (batch, resource) = (spans(), resource());
        let ours = ExportTraceServiceRequest::decode(&encode_request(&encode_resource(&resource), &batch)[..])
            .expect("a valid ExportTraceServiceRequest");
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &ResourceAttributesWithSchema::from(&resource)),
        };
        // Field by field first, for a readable failure; then the whole.
        let (a, b) = (&ours.resource_spans[0], &theirs.resource_spans[0]);
        assert_eq!(a.resource, b.resource);
        assert_eq!(a.schema_url, b.schema_url);
        assert_eq!(a.scope_spans.len(), 2);
        for (x, y) in a.scope_spans.iter().zip(&b.scope_spans) {
            assert_eq!(x.scope, y.scope);
            assert_eq!(x.schema_url, y.schema_url);
            for (s, t) in x.spans.iter().zip(&y.spans) {
                assert_eq!(s, t, "span {}", t.name);
            }
        }
        assert_eq!(ours, theirs);
        // And byte for byte: the same fields, in the same order, with the same encodings. (The
        // order of a resource's attributes is the SDK's, the same for both.)
        assert_eq!(encode_request(&encode_resource(&resource), &spans()), theirs.encode_to_vec());
    }

    #[test]
    fn a_batch_is_posted_with_the_configured_headers() {
        let (addr, requests) = crate::testing::otlp_collector();
        let headers = parse_headers("authorization=Bearer%20abc").unwrap();
        let mut exporter = OtlpExporter::new(format!("http://{addr}/v1/traces"), headers, DEFAULT_TIMEOUT);
        exporter.set_resource(&resource());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(exporter.export(spans())).expect("the collector takes the batch");
        runtime.block_on(exporter.export(Vec::new())).expect("an empty batch is no request");
        let sent: Vec<_> = requests.try_iter().collect();
        assert_eq!(sent.len(), 1, "one request for the batch, none for the empty one");
        let (head, body) = &sent[0];
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
        assert!(head.contains("content-type: application/x-protobuf"), "{head}");
        assert!(head.contains("authorization: bearer abc"), "{head}");
        let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        let spans: Vec<_> = request.resource_spans[0].scope_spans.iter().flat_map(|s| &s.spans).collect();
        assert_eq!(spans.len(), 5);
        assert_eq!(spans[0].name, "task");
    }

    /// Task records of each shape: a retried aggregate task that succeeded, a basic task given up
    /// half way (no outcome), a root (no trace context) with large numbers, a parent with a
    /// tracestate.
    pub(crate) fn task_records() -> Vec<TaskRecord> {
        use opentelemetry::trace::{TraceFlags, TraceId};
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(1_764_000_000_000_000_000 + s);
        let aggregate = TaskRecord {
            trace_id: TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
            span_id: SpanId::from(0xb7ad6b7169203331),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_is_remote: true,
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::default(),
            start: at(0),
            end: at(1_500_000),
            job: "b7-3f2a91c0".into(),
            batch: 7,
            round: crate::Round::Aggregate,
            index: 3,
            tx_range: (0, 1024),
            level: Some(2),
            attempt: Some(2),
            outcome: Some("succeeded"),
        };
        let basic = TaskRecord {
            span_id: SpanId::from(0x1),
            round: crate::Round::Basic,
            index: 0,
            level: None,
            attempt: None,
            outcome: None,
            ..aggregate.clone()
        };
        let root = TaskRecord {
            trace_id: TraceId::from(0x2),
            span_id: SpanId::from(0x3),
            parent_span_id: SpanId::INVALID,
            parent_is_remote: false,
            batch: u64::MAX >> 1,
            index: u32::MAX,
            tx_range: (u64::MAX - 1, u64::MAX),
            round: crate::Round::Final,
            job: "x".repeat(200).into(),
            level: None,
            attempt: None,
            outcome: Some("failed"),
            ..aggregate.clone()
        };
        let stated =
            TaskRecord { span_id: SpanId::from(0x4), trace_state: "vendor=abc".parse().unwrap(), ..basic.clone() };
        vec![aggregate, basic, root, stated]
    }

    #[test]
    fn task_records_are_written_as_the_sdk_spans_made_of_them() {
        use opentelemetry::trace::TracerProvider as _;
        use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
        let records = task_records();
        // The SDK spans a tracer makes of them, as a span layer without OTLP export hands them on.
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let tracer = provider.tracer("zkfleet-worker");
        for record in &records {
            crate::task_span::replay(&tracer, record.clone());
        }
        let mut made = exporter.get_finished_spans().unwrap();
        assert_eq!(made.len(), records.len());
        for (span, record) in made.iter_mut().zip(&records) {
            // The SDK picks a task span's own id, and a root's trace id: take the record's.
            let c = &span.span_context;
            span.span_context = SpanContext::new(
                record.trace_id,
                record.span_id,
                c.trace_flags(),
                c.is_remote(),
                c.trace_state().clone(),
            );
        }
        let resource = encode_resource(&resource());
        let ours = encode_task_request(&resource, "zkfleet-worker", &records);
        let theirs = encode_request(&resource, &made);
        if ours != theirs {
            // Span by span, for a readable failure.
            let ours = ExportTraceServiceRequest::decode(&ours[..]).expect("a valid ExportTraceServiceRequest");
            let theirs = ExportTraceServiceRequest::decode(&theirs[..]).unwrap();
            let spans = |r: &ExportTraceServiceRequest| r.resource_spans[0].scope_spans[0].spans.clone();
            for (a, b) in spans(&ours).iter().zip(&spans(&theirs)) {
                assert_eq!(a, b);
            }
            assert_eq!(ours, theirs);
            panic!("the same request in other bytes");
        }
    }

    #[test]
    fn lengths_of_every_size_are_written_in_place() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut buf = vec![0xAA];
            message(&mut buf, 3, |buf| buf.extend(std::iter::repeat_n(7u8, len)));
            let mut expected = vec![0xAA, 3 << 3 | 2];
            varint(&mut expected, len as u64);
            expected.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(buf, expected, "length {len}");
        }
    }

    #[test]
    fn headers_and_endpoints_are_checked() {
        assert_eq!(
            parse_headers("api-key=abc%3D%3D, x-tenant = fleet ,").unwrap(),
            [("api-key".to_string(), "abc==".to_string()), ("x-tenant".to_string(), "fleet".to_string())]
        );
        assert_eq!(parse_headers("no-equals").unwrap_err(), "`no-equals` is not key=value");
        assert!(check_endpoint("http://collector:4318/v1/traces").is_ok());
        assert!(check_endpoint("https://collector/v1/traces").is_ok());
        for bad in ["not a url", "collector:4318", "ftp://collector/"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
