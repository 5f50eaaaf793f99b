//! Accepting connections (at most so many at once, the slowest to send a
//! request giving way at the cap, backing off when accept fails), the admin
//! port, and shutting down gracefully.

use crate::connections::{Admitted, Connections, Place};
use crate::intake::ClientBody;
use crate::invoke_api::{self, InvokeApi};
use crate::metrics::Metrics;
use crate::proxy::{Client, Gateway};
use crate::refusal::Refusal;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) the HTTP server reads;
/// past it, hyper's own bare 431. The API's limit is smaller (10,240 bytes of
/// line and header values, see [`crate::intake::MAX_HEAD_VALUES_BYTES`]), and
/// this bound is per connection, so it is kept small: 1024 connections hold
/// at most 16 MiB of head buffers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The kernel's queue of connections not yet accepted on the public port,
/// as long as the system allows (`net.core.somaxconn`, 4,096 by default):
/// under a flood of connections the accept loop closes one for each it
/// takes in, and a queue that overflows meanwhile drops a fresh client's
/// connection, which then retries only a second later.
pub const BACKLOG: u32 = 4096;

/// The kernel's send buffer for each connection of the public port
/// (inherited from the listener; Linux doubles it for its bookkeeping).
/// Left to itself the kernel grows a connection's buffer up to 4 MiB
/// (`net.ipv4.tcp_wmem`), so a thousand clients that ask for large answers
/// and never read would park gigabytes in socket buffers, which cgroup v2
/// charges to the pod and nothing in the gateway can see or give back. Held
/// to this, the kernel keeps at most a fixed share per connection and an
/// answer waits in the gateway instead, charged to the memory budget
/// ([`crate::outbox`]). A client still reads 128 KiB a round trip, over a
/// megabyte a second at 100 ms: far more than this API's answers need.
pub const SEND_BUFFER: u32 = 64 * 1024;

/// A listener on `addr` with a queue of [`BACKLOG`] connections, whose
/// connections have send buffers of [`SEND_BUFFER`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_send_buffer_size(SEND_BUFFER)?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The accept loop both ports share: each connection accepted is given a
/// place among `connections` (at the cap, a connection waiting for a
/// request head gives way; see [`crate::connections`]) and handed to
/// `serve` with it, until `stop` resolves. A failing accept (out of file
/// descriptors, say) is waited out, longer each time in a row (from
/// [`ACCEPT_BACKOFF`], doubling, to [`MAX_ACCEPT_BACKOFF`]), and serving
/// goes on, as tokio's mini-redis does.
async fn accept_loop(
    listener: &TcpListener,
    connections: Arc<Connections>,
    metrics: &Metrics,
    stop: impl Future<Output = ()>,
    mut serve: impl FnMut(TcpStream, SocketAddr, Place),
) {
    tokio::pin!(stop);
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff = ACCEPT_BACKOFF;
                let (place, how) = tokio::select! {
                    admitted = connections.admit(remote.ip()) => admitted,
                    () = &mut stop => return,
                };
                if let Admitted::Evicted { ip, waited_ms } = how {
                    metrics.connection_evicted();
                    tracing::debug!(%ip, waited_ms, "closed a connection waiting for a head or a body, to make room");
                }
                serve(stream, remote, place);
            }
            Err(e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut stop => return,
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

/// `handler` as a hyper service that turns a panic into a 500: the panic
/// is a bug, and the connection and the process survive it (the release
/// profile unwinds, and a test keeps it so). The request id is the
/// pipeline's own business (`Gateway::handle`).
///
/// Written here rather than as tower-http's `CatchPanicLayer`, which boxes
/// every response body: on the path every request takes, that allocation
/// and the request-id layers' UUID (a `getrandom` system call a request)
/// were a measurable share of the gateway's CPU (docs/measurements.md).
pub fn layered<H, F>(
    handler: H,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    use futures_util::FutureExt as _;
    let service = move |request| {
        let handler = handler.clone();
        // The handler is called inside the future, so a panic in the call
        // itself is caught too.
        let answer = std::panic::AssertUnwindSafe(async move { handler(request).await });
        answer
            .catch_unwind()
            .map(|answer| Ok::<_, Infallible>(answer.unwrap_or_else(panic_response)))
    };
    hyper::service::service_fn(service)
}

/// Serves the admin port until `stop` resolves: `/metrics`, `/healthz` and
/// `/readyz`, for Prometheus and the kubelet, and Lambda's Invoke API
/// ([`invoke_api`]) for the cluster's services. The LoadBalancer's Service
/// does not expose it.
pub async fn run_admin(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    invoke: Arc<InvokeApi>,
    stop: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEAD_BYTES);
    let connections = Connections::new(ADMIN_CONNECTIONS);
    let metrics = gateway.metrics().clone();
    accept_loop(&listener, connections, &metrics, stop, |stream, _, place| {
        let (gateway, invoke) = (gateway.clone(), invoke.clone());
        let state = place.state.clone();
        let service = layered(move |request: Request<Incoming>| {
            let (gateway, invoke) = (gateway.clone(), invoke.clone());
            // An invocation may run for minutes: its connection is not
            // one to give way (but one that trickles its body is).
            let serving = state.serving_until_dropped();
            let request = request.map(|body| ClientBody::new(body, Some(state.clone())));
            async move {
                let response = if request.uri().path().starts_with(invoke_api::PREFIX) {
                    invoke.handle(request).await
                } else {
                    gateway.own_endpoint(request.uri().path())
                };
                drop(serving);
                response
            }
        });
        spawn_until_closed(http.serve_connection(TokioIo::new(stream), service), place);
    })
    .await;
}

/// Runs `connection` until it ends or its `place` is chosen to give way.
fn spawn_until_closed(connection: impl Future + Send + 'static, mut place: Place) {
    tokio::spawn(async move {
        tokio::select! {
            _ = connection => {}
            _ = &mut place.closed => {}
        }
    });
}

/// Serves the probes' port until `stop` resolves: `/healthz` and `/readyz`
/// and nothing else (404), for the kubelet. A port of its own, so that no
/// caller of the other ports can starve the probes: not the internet's
/// slow clients at the public port's cap, and not the cluster's callers of
/// the Invoke API, whose invocations may rightly hold every admin
/// connection for minutes (a liveness probe that cannot connect restarts
/// the container, and every invocation in it with it). Its few connections
/// give way at the cap as the others do: the address holding the most.
pub async fn run_probes(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    stop: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(PROBE_HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let connections = Connections::new(PROBE_CONNECTIONS);
    let metrics = gateway.metrics().clone();
    accept_loop(&listener, connections, &metrics, stop, |stream, _, place| {
        let gateway = gateway.clone();
        let service = layered(move |request: Request<Incoming>| {
            let gateway = gateway.clone();
            async move {
                match request.uri().path() {
                    path @ ("/healthz" | "/readyz") => gateway.own_endpoint(path),
                    _ => Refusal::NotFound.response(),
                }
            }
        });
        spawn_until_closed(http.serve_connection(TokioIo::new(stream), service), place);
    })
    .await;
}

/// Connections the probes' port serves at once: the kubelet's probes, a
/// few at a time.
pub const PROBE_CONNECTIONS: usize = 16;
/// How long a probe may take to send its head: the kubelet's own timeout
/// is a second or two.
pub const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections the admin port serves at once: a scraper, probes, and the
/// cluster's callers of the Invoke API (what their requests hold is bounded
/// by the memory budget; a connection's own buffers, ~10 KiB, by this).
pub const ADMIN_CONNECTIONS: usize = 128;

/// What a request whose handler panicked gets (the panic is a bug; the
/// connection and the process survive it).
fn panic_response(_: Box<dyn std::any::Any + Send>) -> Response<Full<Bytes>> {
    tracing::error!("request handler panicked");
    Refusal::Internal.response()
}

/// How long accept waits after its first failure (out of file descriptors,
/// say); each failure in a row doubles it, up to [`MAX_ACCEPT_BACKOFF`].
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// The longest wait between accepts that fail.
pub const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

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
/// requests finish (for at most `timing.grace`). The caller stops the
/// environments after it.
/// At most `max_connections` are open at once: past that, a new one takes
/// the place of the connection that has waited longest for a request head
/// ([`crate::connections`]), or waits in the kernel's backlog while every
/// connection is serving a request.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
    timing: Shutdown,
    max_connections: usize,
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
    let connections = Connections::new(max_connections);
    // A read the memory budget cannot hold closes the slowest readers'
    // connections first (see `connections`).
    gateway.budget().set_relief(connections.clone());
    let metrics = gateway.metrics().clone();
    connections.count_in(metrics.clone());
    accept_loop(&listener, connections, &metrics, drain_started, |stream, remote, mut place| {
        stream.set_nodelay(true).ok();
        let gateway = gateway.clone();
        let state = place.state.clone();
        let client = Arc::new(Client::new(remote, Some(state.clone())));
        let service = layered(move |request: Request<Incoming>| {
            let (gateway, client) = (gateway.clone(), client.clone());
            // Busy from the head's arrival until the answer (or a panic):
            // a connection in a request gives way only while it is reading
            // the request's body (`ClientBody`).
            let serving = state.serving_until_dropped();
            let request = request.map(|body| ClientBody::new(body, Some(state.clone())));
            async move {
                let response = gateway.handle(request, &client).await;
                drop(serving);
                response
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                },
                // Chosen to make room: it was waiting for a head or a body.
                _ = &mut place.closed => {}
            }
        });
    })
    .await;
    drop(listener);
    tracing::info!("refusing new connections; finishing in-flight requests");
    if tokio::time::timeout(timing.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_ms = timing.grace.as_millis() as u64,
            "grace period over with requests still running"
        );
    }
    tracing::info!("in-flight requests done");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::message;
    use http_body_util::BodyExt;
    use hyper::StatusCode;
    use hyper::client::conn::http1::handshake;

    /// A handler that panics on `/panic` and takes a while on `/slow`,
    /// served through the same layers as the gateway's requests.
    async fn serve(listener: TcpListener, slow_started: Arc<tokio::sync::Notify>) {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let started = slow_started.clone();
            let service = layered(move |request: Request<Incoming>| {
                let started = started.clone();
                async move {
                    match request.uri().path() {
                        "/panic" => panic!("a bug on a request path"),
                        "/slow" => {
                            started.notify_one();
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            message(StatusCode::OK, "done")
                        }
                        _ => message(StatusCode::OK, "done"),
                    }
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", "test")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("a response");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_request_is_a_500_and_the_others_complete() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let slow_started = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(serve(listener, slow_started.clone()));
        let slow = tokio::spawn(get(addr, "/slow"));
        slow_started.notified().await;
        let (status, body) = get(addr, "/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, r#"{"message":"Internal Server Error"}"#);
        let (status, body) = slow.await.expect("the slow request");
        assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"message":"done"}"#));
        // And the server serves on.
        assert_eq!(get(addr, "/after").await.0, StatusCode::OK);
    }
}
