//! The worker's HTTP endpoints for Kubernetes: `/livez` (the process answers) and `/readyz` (it
//! holds a broker connection and is consuming).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::daemon::WorkerError;

/// Binds `addr` now (so a taken port fails the start) and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    connection: Arc<Connection>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, WorkerError> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| WorkerError::Http { addr, source })?;
    let local = listener.local_addr().map_err(|source| WorkerError::Http { addr, source })?;
    let readyz = move || {
        let ok = ready.load(Ordering::Relaxed) && connection.status().connected();
        async move {
            if ok {
                (StatusCode::OK, "ready\n")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
    };
    let app = Router::new().route("/livez", get(|| async { "ok\n" })).route("/readyz", get(readyz));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    tracing::info!(addr = %local, "serving /livez and /readyz");
    Ok(local)
}
