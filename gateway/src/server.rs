//! Accepting connections and shutting down gracefully.

use crate::proxy::{Gateway, REQUEST_ID, message};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// How long a client may take to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What a request whose handler panicked gets (the panic is a bug; the
/// connection and the process survive it).
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Full<Bytes>> {
    tracing::error!("request handler panicked");
    message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// Timings of a graceful shutdown.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// Serve on with `/readyz` failing this long before refusing connections.
    pub delay: Duration,
    /// Longest wait for in-flight requests once connections are refused.
    pub grace: Duration,
}

/// Serves `listener` until `shutdown` resolves, then drains: `/readyz`
/// fails, new connections are refused after `timing.delay`, in-flight
/// requests finish (for at most `timing.grace`), and the environments stop.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
    timing: Shutdown,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let drain_started = async {
        shutdown.await;
        gateway.begin_drain();
        tracing::info!(delay_ms = timing.delay.as_millis() as u64, "shutting down: readiness off");
        tokio::time::sleep(timing.delay).await;
    };
    tokio::pin!(drain_started);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                stream.set_nodelay(true).ok();
                let gateway = gateway.clone();
                let service = ServiceBuilder::new()
                    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                    .layer(CatchPanicLayer::custom(panic_response))
                    .service_fn(move |request: Request<Incoming>| {
                        let gateway = gateway.clone();
                        async move { Ok::<Response<Full<Bytes>>, Infallible>(gateway.handle(request, remote).await) }
                    });
                let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, %remote, "connection ended with an error");
                    }
                });
            }
            () = &mut drain_started => break,
        }
    }
    drop(listener);
    tracing::info!("refusing new connections; finishing in-flight requests");
    if tokio::time::timeout(timing.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_ms = timing.grace.as_millis() as u64,
            "grace period over with requests still running"
        );
    }
    for pool in gateway.pools() {
        pool.shutdown(Duration::from_secs(1)).await;
    }
    tracing::info!("stopped");
}
