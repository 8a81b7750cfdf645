//! The span exporter: opentelemetry-otlp's OTLP/HTTP exporter (protobuf bodies, gzip, its retry
//! with backoff on 429, 502, 503, 504 and lost connections, `Retry-After` honoured), posting with
//! ureq, the HTTP client the tree already has. [`Ureq`] is the small adapter between the two; the
//! SDK's batch span processor exports from a thread of its own, so a blocking client is what it
//! wants, and no second HTTP stack (reqwest, hyper) comes into the binaries.
//!
//! Configuration is the exporter's own reading of the standard variables:
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (with
//! `/v1/traces` appended), `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`,
//! and `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`. What is ours: bodies are always gzip-compressed (a
//! compression variable may say `gzip`, nothing else), and a setting the exporter would quietly
//! ignore (another protocol, a header that is not `key=value`, an endpoint that is not an http or
//! https URL) stops the process at start with one line naming it.

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Compression, SpanExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SpanData;

/// How long one export request may take, unless the environment says otherwise (the SDK's
/// default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a collector's answer that is read: it is only ever a short status message.
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// The span exporter the environment configures, posting to `endpoint` when given (tests) and to
/// the endpoint the environment names otherwise; the error says which setting is wrong.
pub(crate) fn exporter(endpoint: Option<&str>) -> Result<Logged, String> {
    for name in ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] {
        if let Some(url) = var(name) {
            check_endpoint(&url).map_err(|e| format!("{name}={url}: {e}"))?;
        }
    }
    for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Some(protocol) = var(name).filter(|p| p != "http/protobuf") {
            return Err(format!("{name}={protocol}: only http/protobuf is supported"));
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
    for name in ["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"] {
        if let Some(compression) = var(name).filter(|c| c != "gzip") {
            return Err(format!("{name}={compression}: bodies are always gzip-compressed; only gzip is supported"));
        }
    }
    // The exporter skips a header it cannot parse; a typo in a credential should not pass unseen.
    for name in ["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"] {
        let Some(text) = var(name) else { continue };
        if let Some(pair) = text.split(',').map(str::trim).find(|p| !p.is_empty() && !p.contains('=')) {
            return Err(format!("{name}: `{pair}` is not key=value"));
        }
    }
    let mut builder = SpanExporter::builder()
        .with_http()
        .with_http_client(Ureq::new(timeout))
        .with_timeout(timeout)
        .with_compression(Compression::Gzip);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    builder.build().map(Logged).map_err(|e| e.to_string())
}

/// The exporter, with a warning for every batch it gives up on: the SDK drops such a batch and,
/// without its internal logs (not built in), says nothing.
pub(crate) struct Logged(SpanExporter);

impl std::fmt::Debug for Logged {
    /// Nothing of the exporter's own: its `Debug` shows the header values, which carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logged(OTLP/HTTP span exporter)")
    }
}

impl opentelemetry_sdk::trace::SpanExporter for Logged {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.0.export(batch).await;
        if let Err(e) = &result {
            tracing::warn!(spans, error = %e, "span export failed; these spans are dropped");
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
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

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// opentelemetry-otlp's HTTP client interface on a ureq agent. Blocking: the batch span processor
/// calls it on its own export thread, never on the async runtime.
#[derive(Debug)]
pub(crate) struct Ureq(ureq::Agent);

impl Ureq {
    /// A client whose requests give up after `timeout`; statuses are answers, not errors (the
    /// exporter decides what a 503 means).
    pub(crate) fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build();
        Self(ureq::Agent::new_with_config(config))
    }
}

#[async_trait::async_trait]
impl HttpClient for Ureq {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self.0.run(Request::from_parts(parts, &body[..]))?;
        let (parts, mut body) = response.into_parts();
        let body = body.with_config().limit(MAX_RESPONSE_BYTES).read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_goes_out_as_built_and_any_status_comes_back() {
        let (addr, requests) = crate::testing::otlp_collector_answering(vec![503]);
        let client = Ureq::new(DEFAULT_TIMEOUT);
        let request = || {
            Request::post(format!("http://{addr}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .header("authorization", "Bearer abc")
                .body(Bytes::from_static(b"\x0a\x00"))
                .unwrap()
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let first = runtime.block_on(client.send_bytes(request())).expect("a 503 is an answer");
        assert_eq!(first.status(), 503);
        let second = runtime.block_on(client.send_bytes(request())).unwrap();
        assert_eq!(second.status(), 200);
        let sent: Vec<_> = requests.try_iter().collect();
        assert_eq!(sent.len(), 1, "the collector took the second request");
        let (head, body) = &sent[0];
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
        assert!(head.contains("authorization: bearer abc"), "{head}");
        assert_eq!(body, b"\x0a\x00");
    }

    #[test]
    fn the_exporter_shows_no_header_value() {
        let headers = std::collections::HashMap::from([("authorization".to_string(), "Bearer s3cr3t".to_string())]);
        let inner = SpanExporter::builder()
            .with_http()
            .with_http_client(Ureq::new(DEFAULT_TIMEOUT))
            .with_endpoint("http://127.0.0.1:4318/v1/traces")
            .with_headers(headers)
            .build()
            .unwrap();
        assert!(format!("{inner:?}").contains("s3cr3t"), "the exporter's own Debug shows it");
        let shown = format!("{:?}", Logged(inner));
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(check_endpoint("http://collector:4318/v1/traces").is_ok());
        assert!(check_endpoint("https://collector/v1/traces").is_ok());
        for bad in ["not a url", "collector:4318", "ftp://collector/"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_collector_that_is_not_there_is_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Ureq::new(Duration::from_secs(2));
        let request = Request::post(format!("http://127.0.0.1:{port}/v1/traces")).body(Bytes::new()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(runtime.block_on(client.send_bytes(request)).is_err());
    }
}
