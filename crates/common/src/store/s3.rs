//! The S3 backend, on `aws-sdk-s3`: AWS S3 and S3-compatible services (GCS through its XML API,
//! MinIO).
//!
//! - Credentials come from the standard AWS chain: environment, profile, web identity (EKS, GKE
//!   workload identity federation), container and instance metadata.
//! - Checksums are sent and checked only where an operation requires them (`WhenRequired`): GCS and
//!   MinIO reject the headers the SDK adds by default. zkfleet checks content itself: every object
//!   carries its SHA-256 in the metadata key `zkfleet-sha256`, checked on every read.
//! - First writer wins: a write of an artifact that exists already writes nothing. The store looks
//!   first and then writes with `If-None-Match: *`, which S3, GCS and MinIO honour.
//! - Objects above [`S3Options::multipart_threshold`] go up in parts, several at a time.
//! - Throttling, 5xx answers, timeouts and broken connections are retried by the SDK with
//!   exponential backoff (5 attempts) before they surface as [`StoreError::Unavailable`].
//! - GCS has no multi-object delete, so prefixes are deleted object by object.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use super::{check_digest, digest, StoreArgs, StoreError};

/// Object metadata key holding the SHA-256 of the object's bytes.
const DIGEST_METADATA: &str = "zkfleet-sha256";
/// Parts uploaded or objects deleted at once.
const CONCURRENCY: usize = 8;
/// How long the check at start may take before the store counts as unreachable.
const CONNECT_BUDGET: Duration = Duration::from_secs(15);

/// Where an S3 store is and how to talk to it.
#[derive(Clone)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    /// PEM file of CA certificates trusted for an https endpoint, besides the system's roots.
    pub ca_file: Option<String>,
    /// Objects larger than this go up as a multipart upload.
    pub multipart_threshold: usize,
    /// Size of each part of a multipart upload (S3's minimum is 5 MiB).
    pub part_size: usize,
    /// Access key id and secret to use instead of the standard chain (for tools and tests that
    /// hold keys themselves; the binaries use the chain).
    pub static_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for S3Options {
    /// Everything but the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("ca_file", &self.ca_file)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("static_credentials", &self.static_credentials.as_ref().map(|(id, _)| (id, "***")))
            .finish()
    }
}

impl S3Options {
    /// Options for `bucket` and `prefix` with the defaults: AWS, its configured region, 32 MiB
    /// multipart threshold in 16 MiB parts.
    pub fn new(bucket: &str, prefix: &str) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
            endpoint: None,
            region: None,
            path_style: false,
            ca_file: None,
            multipart_threshold: 32 << 20,
            part_size: 16 << 20,
            static_credentials: None,
        }
    }

    /// `rest` is the URL after `s3://`:
    /// `bucket[/prefix][?endpoint=URL&region=R&path_style=BOOL&ca_file=PEM]`.
    /// A setting may come from the URL or from the flags (and their `ZKFLEET_S3_*` variables);
    /// given in both, the two must agree.
    pub(super) fn parse(url: &str, rest: &str, args: &StoreArgs) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::BadUrl { url: url.into(), reason };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name after s3://".into()));
        }
        if location.contains('#') {
            return Err(bad("a fragment is not supported".into()));
        }
        let mut options = Self::new(bucket, prefix);
        if !options.prefix.is_empty() && options.prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(bad("the prefix has an empty, . or .. segment".into()));
        }
        let (mut endpoint, mut region, mut path_style, mut ca_file) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "endpoint" => endpoint = Some(value.to_string()),
                "region" => region = Some(value.to_string()),
                "ca_file" => ca_file = Some(value.to_string()),
                "path_style" => {
                    path_style = Some(
                        value.parse::<bool>().map_err(|_| bad(format!("path_style={value} is not true or false")))?,
                    )
                }
                _ => {
                    return Err(bad(format!(
                        "unknown setting {name:?} (settings: endpoint, region, path_style, ca_file)"
                    )))
                }
            }
        }
        let merge = |from_url: Option<String>, flag: Option<String>, name: &str| match (from_url, flag) {
            (Some(a), Some(b)) if a != b => Err(bad(format!("{name}={a} in the URL conflicts with --s3-{name} {b}"))),
            (a, b) => Ok(a.or(b).filter(|v| !v.is_empty())),
        };
        options.endpoint = merge(endpoint, args.s3_endpoint.clone(), "endpoint")?;
        options.region = merge(region, args.s3_region.clone(), "region")?;
        options.ca_file = merge(ca_file, args.s3_ca_file.clone(), "ca-file")?;
        let path_style =
            merge(path_style.map(|b| b.to_string()), args.s3_path_style.map(|b| b.to_string()), "path-style")?;
        if let Some(e) = &options.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(bad(format!("the S3 endpoint {e} is not an http:// or https:// URL")));
            }
        }
        options.path_style = path_style.map_or(options.endpoint.is_some(), |v| v == "true");
        Ok(options)
    }
}

#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    options: Arc<S3Options>,
}

impl S3Store {
    /// Builds a client and checks that the bucket can be reached with the credentials at hand.
    pub async fn connect(options: S3Options) -> Result<Self, StoreError> {
        use aws_smithy_http_client::tls;
        let mut http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring));
        if let Some(path) = &options.ca_file {
            let bad = |message: String| StoreError::Rejected { what: "the S3 CA file".into(), message };
            let pem = crate::broker::read_ca_file(path).map_err(bad)?;
            let trust = tls::TrustStore::default().with_pem_certificate(pem);
            let context = tls::TlsContext::builder().with_trust_store(trust).build().map_err(|e| bad(e.to_string()))?;
            http = http.tls_context(context);
        }
        let http = http.build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(5).with_initial_backoff(Duration::from_millis(200)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            );
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((id, secret)) = &options.static_credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "zkfleet"));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(options.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let store = Self { client: Client::from_conf(config.build()), options: Arc::new(options) };
        store.check_bucket().await?;
        Ok(store)
    }

    async fn check_bucket(&self) -> Result<(), StoreError> {
        let what = format!("bucket {} at {}", self.options.bucket, self.endpoint());
        let probe = self
            .client
            .head_bucket()
            .bucket(&self.options.bucket)
            .customize()
            .config_override(
                aws_sdk_s3::config::Config::builder().retry_config(RetryConfig::standard().with_max_attempts(2)),
            )
            .send();
        match tokio::time::timeout(CONNECT_BUDGET, probe).await {
            Err(_) => Err(StoreError::Unavailable {
                what,
                message: format!("no answer within {} s", CONNECT_BUDGET.as_secs()),
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(match classify(e, &what) {
                StoreError::NotFound(_) => StoreError::Rejected { what, message: "the bucket does not exist".into() },
                other => other,
            }),
        }
    }

    fn endpoint(&self) -> &str {
        self.options.endpoint.as_deref().unwrap_or("AWS")
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        match self.options.prefix.as_str() {
            "" => format!("s3://{}", self.options.bucket),
            prefix => format!("s3://{}/{prefix}", self.options.bucket),
        }
    }

    fn object(&self, key: &str) -> String {
        match self.options.prefix.as_str() {
            "" => key.to_string(),
            prefix => format!("{prefix}/{key}"),
        }
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.options.bucket)
            .key(self.object(key))
            .send()
            .await
            .map_err(|e| classify(e, key))?;
        let recorded = out.metadata().and_then(|m| m.get(DIGEST_METADATA)).cloned();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable { what: key.into(), message: chain(&e) })?
            .into_bytes()
            .to_vec();
        if let Some(recorded) = recorded {
            check_digest(key, &bytes, &recorded)?;
        }
        Ok(bytes)
    }

    /// Writes `bytes`; with `exclusive`, only if `key` does not exist (returns whether it wrote).
    pub(super) async fn put(&self, key: &str, bytes: &[u8], exclusive: bool) -> Result<bool, StoreError> {
        if exclusive && self.exists(key).await? {
            return Ok(false);
        }
        let sent = if bytes.len() > self.options.multipart_threshold {
            self.put_multipart(key, bytes, exclusive).await
        } else {
            let mut put = self
                .client
                .put_object()
                .bucket(&self.options.bucket)
                .key(self.object(key))
                .metadata(DIGEST_METADATA, digest(bytes))
                .body(ByteStream::from(bytes.to_vec()));
            if exclusive {
                put = put.if_none_match("*");
            }
            put.send().await.map(drop).map_err(|e| classify(e, key))
        };
        match sent {
            Ok(()) => Ok(true),
            Err(StoreError::Exists(_)) if exclusive => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn put_multipart(&self, key: &str, bytes: &[u8], exclusive: bool) -> Result<(), StoreError> {
        let object = self.object(key);
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.options.bucket)
            .key(&object)
            .metadata(DIGEST_METADATA, digest(bytes))
            .send()
            .await
            .map_err(|e| classify(e, key))?;
        let id = upload
            .upload_id()
            .ok_or_else(|| StoreError::Rejected { what: key.into(), message: "no upload id in the answer".into() })?
            .to_string();
        let uploaded = async {
            // Plain loops over owned futures: the batches run CONCURRENCY parts at a time.
            let mut parts: Vec<CompletedPart> = Vec::new();
            let numbered: Vec<(i32, &[u8])> =
                bytes.chunks(self.options.part_size).enumerate().map(|(i, c)| (i as i32 + 1, c)).collect();
            for batch in numbered.chunks(CONCURRENCY) {
                let mut sends = Vec::with_capacity(batch.len());
                for &(number, chunk) in batch {
                    sends.push(self.upload_part(key, &object, &id, number, chunk));
                }
                parts.extend(futures_util::future::try_join_all(sends).await?);
            }
            let mut complete = self
                .client
                .complete_multipart_upload()
                .bucket(&self.options.bucket)
                .key(&object)
                .upload_id(&id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
            if exclusive {
                complete = complete.if_none_match("*");
            }
            complete.send().await.map(drop).map_err(|e| classify(e, key))
        }
        .await;
        if uploaded.is_err() {
            // Parts of an abandoned upload are billed until aborted; a lifecycle rule cleans up
            // what this misses (docs/deploy.md).
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.options.bucket)
                .key(&object)
                .upload_id(&id)
                .send()
                .await;
        }
        uploaded
    }

    async fn upload_part(
        &self,
        key: &str,
        object: &str,
        id: &str,
        number: i32,
        chunk: &[u8],
    ) -> Result<CompletedPart, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.options.bucket)
            .key(object)
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify(e, key))?;
        Ok(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(String::from)).build())
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.client.head_object().bucket(&self.options.bucket).key(self.object(key)).send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(e, key) {
                StoreError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.delete_object(key, self.object(key)).await
    }

    async fn delete_object(&self, key: &str, object: String) -> Result<(), StoreError> {
        match self.client.delete_object().bucket(&self.options.bucket).key(object).send().await {
            Ok(_) => Ok(()),
            Err(e) => match classify(e, key) {
                StoreError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    pub(super) async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let listed = format!("{}/", self.object(prefix));
        let mut pages =
            self.client.list_objects_v2().bucket(&self.options.bucket).prefix(&listed).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(e, prefix))?;
            let objects: Vec<String> = page.contents().iter().filter_map(|o| o.key().map(String::from)).collect();
            for batch in objects.chunks(CONCURRENCY) {
                let mut deletes = Vec::with_capacity(batch.len());
                for object in batch {
                    deletes.push(self.delete_object(prefix, object.clone()));
                }
                futures_util::future::try_join_all(deletes).await?;
            }
        }
        Ok(())
    }
}

/// Sorts an SDK error into the store's kinds by what the service answered, never by its text.
fn classify<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>, what: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let what = what.to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("");
            let detail = service.err().message().map(|m| format!(": {m}")).unwrap_or_default();
            let message =
                if code.is_empty() { format!("http status {status}{detail}") } else { format!("{code}{detail}") };
            match status {
                404 => StoreError::NotFound(what),
                401 | 403 => StoreError::Denied { what, message },
                // Only conditional writes (`If-None-Match: *`) send a precondition.
                412 => StoreError::Exists(what),
                408 | 409 | 429 | 500..=599 => StoreError::Unavailable { what, message },
                _ => StoreError::Rejected { what, message },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable { what, message: chain(&err) }
        }
        _ => StoreError::Rejected { what, message: chain(&err) },
    }
}

/// An error and its sources on one line, each cause once.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_secret_key() {
        let mut options = S3Options::new("bucket", "prefix");
        options.static_credentials = Some(("AKIDEXAMPLE".into(), "s3cr3t-s3-key".into()));
        let shown = format!("{options:?}");
        assert!(shown.contains("AKIDEXAMPLE") && shown.contains("bucket"), "{shown}");
        assert!(!shown.contains("s3cr3t-s3-key"), "{shown}");
    }

    fn args(endpoint: Option<&str>) -> StoreArgs {
        StoreArgs { s3_endpoint: endpoint.map(String::from), ..Default::default() }
    }

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let o = S3Options::parse("s3://b/some/prefix/", "b/some/prefix/", &args(None)).unwrap();
        assert_eq!((o.bucket.as_str(), o.prefix.as_str(), o.path_style), ("b", "some/prefix", false));
        let o = S3Options::parse("s3://b", "b", &args(Some("http://127.0.0.1:9000"))).unwrap();
        assert_eq!((o.prefix.as_str(), o.path_style), ("", true), "an endpoint means path style");
        let rest = "b/p?endpoint=https://storage.googleapis.com&region=auto";
        let o = S3Options::parse("s3://…", rest, &args(None)).unwrap();
        assert_eq!(o.endpoint.as_deref(), Some("https://storage.googleapis.com"));
        assert_eq!((o.region.as_deref(), o.prefix.as_str(), o.path_style), (Some("auto"), "p", true));
        let same = S3Options::parse("s3://…", rest, &args(Some("https://storage.googleapis.com"))).unwrap();
        assert_eq!(same.endpoint, o.endpoint, "the same setting twice is fine");
        let o = S3Options::parse("s3://…", "b?endpoint=http://m:9000&path_style=false", &args(None)).unwrap();
        assert!(!o.path_style);
        let o = S3Options::parse("s3://…", "b?endpoint=https://m&ca_file=/etc/ca.pem", &args(None)).unwrap();
        assert_eq!(o.ca_file.as_deref(), Some("/etc/ca.pem"));
        let flag = StoreArgs { s3_ca_file: Some("/etc/ca.pem".into()), ..args(None) };
        assert_eq!(S3Options::parse("s3://…", "b", &flag).unwrap().ca_file, o.ca_file, "or from the flag");
    }

    #[test]
    fn bad_urls_name_the_problem() {
        for (rest, needle) in [
            ("", "no bucket"),
            ("b/x?colour=blue", "unknown setting"),
            ("b/a//c", "segment"),
            ("b?path_style=maybe", "true or false"),
            ("b?endpoint=http://a:1", "conflicts"),
        ] {
            let err = S3Options::parse("s3://…", rest, &args(Some("http://b:2"))).unwrap_err().to_string();
            assert!(err.contains(needle), "{rest}: {err}");
        }
        // Found by the store URL fuzz target: a setting's value is quoted in the error.
        let err = S3Options::parse("s3://…", "b?path_style=tru\n", &args(None)).unwrap_err().to_string();
        assert!(err.contains(r"path_style=tru\n is not true or false") && !err.contains('\n'), "{err}");
        let err = S3Options::parse("s3://b", "b", &args(Some("minio:9000"))).unwrap_err().to_string();
        assert!(err.contains("not an http:// or https:// URL"), "{err}");
    }
}
