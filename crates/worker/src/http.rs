//! The HTTP endpoints for Kubernetes and Prometheus: `/livez` (the process answers), `/readyz`
//! (it holds a broker connection and is consuming; a GPU worker's also names its device) and `/metrics` (Prometheus text format). The
//! leader serves `/metrics` alone with [`serve_metrics`] while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use lapin::Connection;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// The endpoints' address could not be served (taken, or not this host's).
#[derive(Debug, thiserror::Error)]
#[error("cannot serve http on {addr}: {source}")]
pub struct HttpError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// How often histograms and idle series are tidied between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Binds `addr` now (so a taken port fails the start) and serves the worker's endpoints until
/// `shutdown`. Installs the metrics recorder: a worker without `--metrics-addr` records nothing.
pub async fn serve(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    connection: Arc<Connection>,
    device: Option<String>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, HttpError> {
    // A GPU worker names its device: `ready` then `device: NVIDIA H100 ... (device 0, sm_90, ...)`.
    let shown = device.map(|d| format!("device: {d}\n")).unwrap_or_default();
    let readyz = move || {
        let ok = ready.load(Ordering::Relaxed) && connection.status().connected();
        let shown = shown.clone();
        async move {
            if ok {
                (StatusCode::OK, format!("ready\n{shown}"))
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{shown}"))
            }
        }
    };
    let app = metrics_router(&shutdown).route("/livez", get(|| async { "ok\n" })).route("/readyz", get(readyz));
    let local = bind_and_serve(addr, app, shutdown).await.map_err(|source| HttpError { addr, source })?;
    tracing::info!(addr = %local, "serving /livez, /readyz and /metrics");
    Ok(local)
}

/// Binds `addr` and serves `/metrics` alone until `shutdown` (the leader, while it runs).
pub async fn serve_metrics(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let local = bind_and_serve(addr, metrics_router(&shutdown), shutdown).await?;
    tracing::info!(addr = %local, "serving /metrics");
    Ok(local)
}

/// A router with `/metrics`; installs the recorder and describes the store's and the worker's
/// metrics (the embedded fleet runs worker code in the leader).
pub fn metrics_router(shutdown: &CancellationToken) -> Router {
    let handle = common::metrics::install();
    crate::metrics::describe();
    let (upkeep, stop) = (handle.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Router::new().route("/metrics", get(move || render(handle.clone())))
}

async fn render(handle: PrometheusHandle) -> impl axum::response::IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
}

async fn bind_and_serve(addr: SocketAddr, app: Router, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    Ok(local)
}
