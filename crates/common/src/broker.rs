//! The RabbitMQ connection every fleet process holds: connects with automatic recovery (the
//! connection, its channels, consumers, QoS and confirm mode come back after a broker restart),
//! publishes persistent messages and waits for the broker's confirm, and keeps secrets out of
//! logs.
//!
//! TLS: an `amqps://` URI is verified against the system's root certificates, plus the PEM file
//! its `cacertfile` query parameter names (RabbitMQ's own URI parameter), e.g.
//! `amqps://user:password@broker:5671/%2f?cacertfile=/etc/zkfleet/ca.pem`.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::telemetry::{TraceContext, TRACE_HEADERS};

/// How long a first connection may take before the broker counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot connect to the broker at {uri}: {reason}")]
    Connect { uri: String, reason: String },
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker refused message {0} (negative confirm)")]
    Nacked(String),
}

/// The URI with its password replaced, for logs and messages.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_string() };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => uri.to_string(),
    }
}

/// An AMQP URI as the command lines take it: it may hold a password, so its `Debug` and `Display`
/// show it [`redact`]ed; the URI itself is the `str` it dereferences to.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUri(String);

impl SecretUri {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::str::FromStr for SecretUri {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl std::ops::Deref for SecretUri {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
}

impl std::fmt::Display for SecretUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// Connects to the broker. A first, plain connection tells a bad URI, refused credentials or an
/// unreachable host apart within [`CONNECT_TIMEOUT`]; the connection kept afterwards recovers by
/// itself from a broker restart.
pub async fn connect(uri: &str, name: &str) -> Result<Connection, BrokerError> {
    let probe = connect_with(uri, ConnectionProperties::default()).await?;
    let _ = probe.close(200, "probe done".into()).await;

    let properties =
        ConnectionProperties::default().with_connection_name(name.into()).enable_auto_recover().configure_backoff(
            |b| b.with_min_delay(Duration::from_millis(200)).with_max_delay(Duration::from_secs(5)).with_max_times(120),
        );
    connect_with(uri, properties).await
}

/// Connects to the broker without automatic recovery: when this connection is lost it stays
/// lost, and its owner opens a new one. For consumers whose owner must know exactly which
/// consumers the broker holds: a recovering connection registers its consumers again on its
/// own, concurrently with the owner's own cancels and consumes.
pub async fn connect_once(uri: &str, name: &str) -> Result<Connection, BrokerError> {
    connect_with(uri, ConnectionProperties::default().with_connection_name(name.into())).await
}

/// One connection attempt, bounded by [`CONNECT_TIMEOUT`].
async fn connect_with(uri: &str, properties: ConnectionProperties) -> Result<Connection, BrokerError> {
    let fail = |reason: String| BrokerError::Connect { uri: redact(uri), reason };
    let (plain, tls) = tls_config(uri).map_err(fail)?;
    let builder = lapin::DefaultConnectionBuilder::new()
        .map_err(|e| fail(e.to_string()))?
        .with_uri_str(plain)
        .with_properties(properties)
        .with_tls_config(tls);
    tokio::time::timeout(CONNECT_TIMEOUT, builder.connect())
        .await
        .map_err(|_| fail(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))
}

/// Splits RabbitMQ's `cacertfile` query parameter off a URI and reads the CA certificates it
/// names: the URI lapin is given, and the TLS trust to connect with.
fn tls_config(uri: &str) -> Result<(String, OwnedTLSConfig), String> {
    let Some((base, query)) = uri.split_once('?') else { return Ok((uri.to_string(), OwnedTLSConfig::default())) };
    let (mut kept, mut ca_file) = (Vec::new(), None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("cacertfile", value)) => {
                ca_file = Some(percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
            }
            _ => kept.push(pair),
        }
    }
    let Some(ca_file) = ca_file else { return Ok((uri.to_string(), OwnedTLSConfig::default())) };
    if !uri.starts_with("amqps://") {
        return Err(format!("cacertfile={ca_file} is for amqps:// URIs; this one is not TLS"));
    }
    let pem = read_ca_file(&ca_file).map_err(|e| format!("cacertfile {e}"))?;
    let plain = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((plain, OwnedTLSConfig { identity: None, cert_chain: Some(pem) }))
}

/// Reads a PEM file of CA certificates to trust, as the broker's `cacertfile` and the S3 store's
/// `ca_file` name one; the error names the file and starts with it.
pub(crate) fn read_ca_file(path: &str) -> Result<String, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{path} cannot be read: {e}"))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(pem)
}

/// A channel in confirm mode: every publish waits for the broker to take the message.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn new(connection: &Connection) -> Result<Self, BrokerError> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes a persistent message and waits for its confirm, riding out a connection
    /// recovery (the message is sent again on the recovered channel).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let properties = properties.with_delivery_mode(PERSISTENT);
        loop {
            let attempt = async {
                self.channel
                    .basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions::default(),
                        payload,
                        properties.clone(),
                    )
                    .await?
                    .await
            };
            match attempt.await {
                Ok(confirm) if confirm.is_nack() => {
                    let id = properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default();
                    return Err(BrokerError::Nacked(id));
                }
                Ok(_) => return Ok(()),
                Err(e) => self.channel.wait_for_recovery(e).await?,
            }
        }
    }
}

/// A header table from string pairs.
pub fn headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in pairs {
        table.insert(ShortString::from(k), AMQPValue::LongString(v.into()));
    }
    table
}

/// A string header of a message, if present.
pub fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    let bytes = match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => s.as_bytes(),
        AMQPValue::ShortString(s) => s.as_str().as_bytes(),
        _ => return None,
    };
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// An integer header of a message, if present and not negative.
pub fn int_header(properties: &BasicProperties, name: &str) -> Option<u64> {
    let value = properties.headers().as_ref()?.inner().get(name)?.clone();
    match value {
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongUInt(n) => Some(n as u64),
        AMQPValue::Timestamp(n) => Some(n),
        _ => None,
    }
}

/// The W3C trace context a message carries in its headers (empty when it carries none).
pub fn trace_context(properties: &BasicProperties) -> TraceContext {
    TraceContext::from_pairs(
        TRACE_HEADERS.iter().filter_map(|name| header(properties, name).map(|v| (name.to_string(), v))).collect(),
    )
}

/// How many times the broker has redelivered a message (quorum queues count returns).
pub fn delivery_count(properties: &BasicProperties) -> u64 {
    int_header(properties, "x-delivery-count").unwrap_or(0)
}

/// Milliseconds since the Unix epoch, for publish timestamps that another machine reads.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Why a dead-lettered message died and which queue it left, from its `x-death` header.
pub struct Death {
    /// `delivery_limit`, `rejected`, `expired` or `maxlen`.
    pub reason: String,
    pub queue: String,
}

pub fn death(properties: &BasicProperties) -> Option<Death> {
    let deaths = properties.headers().as_ref()?.inner().get("x-death")?.clone();
    let AMQPValue::FieldArray(deaths) = deaths else { return None };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()?.clone() else { return None };
    let text = |name: &str| match first.inner().get(name) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        _ => "unknown".into(),
    };
    Some(Death { reason: text("reason"), queue: text("queue") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("amqp://guest:s3cret@rabbit:5672/%2f"), "amqp://guest:***@rabbit:5672/%2f");
        assert_eq!(redact("amqps://u:p@ss@h/v"), "amqps://u:***@h/v");
        assert_eq!(redact("amqp://rabbit:5672"), "amqp://rabbit:5672");
        assert!(!redact("amqp://a:topsecret@h").contains("topsecret"));
    }

    #[test]
    fn cacertfile_is_split_off_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(&ca, pem).unwrap();
        let ca = ca.to_str().unwrap();

        let (plain, tls) = tls_config(&format!("amqps://u:p@h:5671/v?heartbeat=10&cacertfile={ca}")).unwrap();
        assert_eq!(plain, "amqps://u:p@h:5671/v?heartbeat=10");
        assert_eq!(tls.cert_chain.as_deref(), Some(pem));
        let (plain, tls) = tls_config(&format!("amqps://h/v?cacertfile={}", ca.replace('/', "%2F"))).unwrap();
        assert_eq!((plain.as_str(), tls.cert_chain.as_deref()), ("amqps://h/v", Some(pem)));
        let (plain, tls) = tls_config("amqp://h/v?heartbeat=10").unwrap();
        assert_eq!((plain.as_str(), tls.cert_chain), ("amqp://h/v?heartbeat=10", None));

        let err = tls_config(&format!("amqp://h/v?cacertfile={ca}")).unwrap_err();
        assert!(err.contains("is for amqps:// URIs"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = tls_config(&format!("amqps://h/v?cacertfile={}", missing.display())).unwrap_err();
        assert!(err.starts_with(&format!("cacertfile {} cannot be read", missing.display())), "{err}");
        std::fs::write(dir.path().join("key.pem"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
        let err = tls_config(&format!("amqps://h/v?cacertfile={}/key.pem", dir.path().display())).unwrap_err();
        assert!(err.ends_with("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn a_trace_context_is_what_the_headers_say() {
        let message = |pairs: &[(&str, &str)]| BasicProperties::default().with_headers(headers(pairs.iter().copied()));
        let a = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(trace_context(&message(&[("traceparent", a), ("job", "j-1")])).get("traceparent"), Some(a));
        let with_state = trace_context(&message(&[("traceparent", a), ("tracestate", "vendor=1")]));
        assert_eq!(with_state.get("tracestate"), Some("vendor=1"));
        assert!(trace_context(&message(&[("job", "j-1")])).is_empty(), "no trace headers, no context");
        assert!(trace_context(&BasicProperties::default()).is_empty(), "no headers at all");
    }
}
