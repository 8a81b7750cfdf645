//! Span export as a worker sets it up (`telemetry::init`), configured by the standard variables
//! alone, against a collector stand-in on loopback. A test binary of its own: the variables are
//! the process's, set once before anything reads them.

use std::collections::BTreeMap;
use std::io::Read as _;

use common::telemetry::{self, LogFormat, TraceContext};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

/// A task of job `job` whose trace context names a leader's span, sampled or not (the flags of
/// its `traceparent`), or no context at all.
fn task(job: &str, index: u32, parent: Option<bool>) -> common::Task {
    let mut task = common::testing::empty_task(job, common::Round::Basic, index);
    if let Some(sampled) = parent {
        let flags = if sampled { "01" } else { "00" };
        let traceparent = format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}");
        task.trace = TraceContext::from_pairs(BTreeMap::from([("traceparent".to_string(), traceparent)]));
    }
    task
}

#[test]
fn the_standard_variables_configure_export_and_workers_follow_the_leaders_sampling() {
    let (addr, taken) = common::testing::otlp_collector();
    // Sampling as the docs advise for fleets of short tasks, with a ratio of zero: a task is
    // exported only when its leader sampled its job.
    for (name, value) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc".to_string()),
        ("OTEL_SERVICE_NAME", "zkfleet-worker-eu1".to_string()),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_string()),
        ("OTEL_TRACES_SAMPLER_ARG", "0".to_string()),
    ] {
        std::env::set_var(name, value);
    }
    let guard = telemetry::init(LogFormat::Json, "zkfleet-worker").expect("export is configured");
    for index in 0..4 {
        for (job, parent) in [("sampled", Some(true)), ("unsampled", Some(false)), ("no-context", None)] {
            let span = telemetry::task_span(&task(job, index, parent));
            span.record("outcome", "succeeded");
        }
    }
    // Dropping the guard sends what is buffered.
    drop(guard);

    let mut jobs = Vec::new();
    for (head, body) in taken.try_iter() {
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
        assert!(head.contains("authorization: bearer abc"), "the header, percent-decoded: {head}");
        assert!(head.contains("content-encoding: gzip"), "{head}");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).expect("a gzip body");
        let request = ExportTraceServiceRequest::decode(&plain[..]).expect("an OTLP request");
        for resource in &request.resource_spans {
            let attributes = &resource.resource.as_ref().expect("a resource").attributes;
            let service = attributes.iter().find(|kv| kv.key == "service.name").and_then(|kv| kv.value.clone());
            assert_eq!(service.and_then(|v| v.value), Some(Value::StringValue("zkfleet-worker-eu1".into())));
            for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                assert_eq!(span.name, "task");
                assert_eq!(hex::encode(&span.trace_id), "0af7651916cd43dd8448eb211c80319c", "in the leader's trace");
                assert_eq!(hex::encode(&span.parent_span_id), "b7ad6b7169203331", "a child of the leader's span");
                let job = span.attributes.iter().find(|kv| kv.key == "job").and_then(|kv| kv.value.clone());
                match job.and_then(|v| v.value) {
                    Some(Value::StringValue(job)) => jobs.push(job),
                    other => panic!("job attribute: {other:?}"),
                }
            }
        }
    }
    assert_eq!(jobs, vec!["sampled"; 4], "the sampled job's tasks, and only those");
}
