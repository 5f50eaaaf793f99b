//! Taking a request in: its head's size, a place in the function's queue,
//! then its body, charged to the memory budget as it arrives, in that
//! order, so that a request that will be turned away is turned away before
//! its body is read or held. A refused request's body is drained first (see
//! [`refuse`]).

use crate::budget::{self, Account, Budget, ReadError};
use crate::connections::{ReadingBody, State};
use crate::metrics::Metrics;
use crate::pool::{Admission, InvokeError, Pool};
use crate::refusal::Refusal;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, EXPECT, HeaderValue};
use hyper::http::request::Parts;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Lambda's limit on a synchronous invocation's payload.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// The most a request line and its header values may add up to: API
/// Gateway's HTTP API quota ("Total combined size of request line and
/// header values: 10240 bytes",
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html>).
/// The pod follows it, rather than the 64 KiB its HTTP server would take, so
/// that a request the API refuses on AWS is refused here too.
pub const MAX_HEAD_VALUES_BYTES: usize = 10_240;
/// Most of a refused request's body read and thrown away before answering.
pub const DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// Longest a refused request's body is drained before answering.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);
/// How long a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The slowest a body may arrive, on average since its first read, once
/// [`BODY_GRACE`] has passed: 4 KiB/s (32 kbit/s), below any mobile link
/// still in service (EDGE carries over 100 kbit/s), and, like Apache's
/// `mod_reqtimeout` `MinRate`, an average rather than a gap between reads,
/// so that a client cannot hold a connection with a byte a second.
pub const MIN_BODY_RATE: usize = 4 * 1024;
/// How long a body may take before [`MIN_BODY_RATE`] applies: what a
/// client on any link needs for a small body, its first round trips and a
/// lost segment's retransmission included. So a body of up to 8 KiB (this
/// API's requests are well under one) may always take 2 s, and one that
/// sends nothing is given up at 2 s, not at [`BODY_TIMEOUT`].
pub const BODY_GRACE: Duration = Duration::from_secs(2);

/// A body that did not keep [`MIN_BODY_RATE`].
#[derive(Debug, thiserror::Error)]
#[error("the body arrived slower than {MIN_BODY_RATE} bytes a second")]
pub struct TooSlow;

/// A client's request body as the gateway reads it: while the gateway waits
/// for more of it, its connection may give way to a new one at the cap (as
/// one waiting for a head may, [`crate::connections`]), and it must keep
/// [`MIN_BODY_RATE`] after [`BODY_GRACE`], or it ends with [`TooSlow`]. The
/// clock starts at the first read, so time spent before (the authorizer) is
/// not counted. A body that is all there when read (most are) costs neither
/// a timer nor a change of the connection's state.
#[derive(Debug)]
pub struct ClientBody {
    inner: Incoming,
    connection: Option<Arc<State>>,
    /// Set from the first read until the body ends.
    reading: Option<ReadingBody>,
    pace: Option<Pace>,
}

#[derive(Debug)]
struct Pace {
    started: Instant,
    received: usize,
    /// When more must have arrived, once the gateway has had to wait.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Pace {
    fn next_deadline(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / MIN_BODY_RATE as f64);
        self.started + BODY_GRACE + earned
    }
}

impl ClientBody {
    /// `inner`, read from a connection whose place is `connection`.
    pub fn new(inner: Incoming, connection: Option<Arc<State>>) -> ClientBody {
        ClientBody { inner, connection, reading: None, pace: None }
    }
}

impl hyper::body::Body for ClientBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.inner.is_end_stream() {
            // Nothing (more) to wait for: most requests, no timer, no mark.
            this.reading = None;
            return Pin::new(&mut this.inner)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into)));
        }
        let pace = this.pace.get_or_insert_with(|| Pace {
            started: Instant::now(),
            received: 0,
            deadline: None,
        });
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    pace.received += data.len();
                    let next = pace.next_deadline();
                    if let Some(deadline) = pace.deadline.as_mut() {
                        deadline.as_mut().reset(next);
                    }
                }
                if this.inner.is_end_stream() {
                    this.reading = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.reading = None;
                Poll::Ready(other.map(|r| r.map_err(Into::into)))
            }
            // Waiting for the client: the connection may give way now, and
            // the body must keep its rate (a timer only for bodies that make
            // the gateway wait).
            Poll::Pending => {
                if this.reading.is_none() {
                    this.reading = this.connection.as_ref().map(State::reading_body);
                }
                let next = pace.next_deadline();
                let deadline =
                    pace.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.reading = None;
                        Poll::Ready(Some(Err(Box::new(TooSlow))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The size API Gateway counts against [`MAX_HEAD_VALUES_BYTES`]: the
/// request line (`METHOD target HTTP/1.1`) and every header value.
pub fn head_size<B>(request: &Request<B>) -> usize {
    let target = request.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = request.method().as_str().len() + 1 + target + " HTTP/1.1".len();
    line + request.headers().values().map(HeaderValue::len).sum::<usize>()
}

/// Whether every header value is UTF-8 text: a Lambda event is JSON, whose
/// strings cannot carry other bytes (`X-A: \xff` made the event fail to
/// serialize, a 500 and an ERROR line any client could cause). Refused as a
/// 400 before anything else is done; API Gateway's own treatment of such
/// bytes could not be observed here, and dropping or rewriting a header the
/// function may rely on (a signature, a token) would be worse than saying no.
pub fn head_is_text<B>(request: &Request<B>) -> bool {
    request.headers().values().all(|v| std::str::from_utf8(v.as_bytes()).is_ok())
}

/// The body's length as `Content-Length` declares it, if it does.
pub fn declared_length(parts: &Parts) -> Option<u64> {
    parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// A request taken in: its place in the pool, the bytes it holds, its body.
pub struct Admitted {
    pub admission: Admission,
    pub account: Account,
    pub body: Bytes,
}

/// Takes a place in `pool`, then the body, charged to a new account of
/// `budget` as it arrives. A body whose declared size the whole budget
/// could never hold is refused at once; the place and the bytes are given
/// back before a refused body is drained.
pub async fn admit(
    pool: &Pool,
    budget: &Budget,
    metrics: &Metrics,
    parts: &Parts,
    body: ClientBody,
    declared: Option<u64>,
) -> Result<Admitted, Refusal> {
    let admission = match pool.admit() {
        Ok(admission) => admission,
        Err(e) => return Err(refuse(invoke_refusal(&e), parts, body).await),
    };
    let (admission, account, body) =
        read_body(admission, budget, metrics, parts, body, declared, MAX_BODY_BYTES).await?;
    Ok(Admitted { admission, account, body })
}

/// Reads a body of at most `limit` bytes, charged to a new account of
/// `budget` as it arrives, while `held` (a place in a queue) is held; a
/// refused body is drained after `held` and the bytes are given back.
pub async fn read_body<T>(
    held: T,
    budget: &Budget,
    metrics: &Metrics,
    parts: &Parts,
    body: ClientBody,
    declared: Option<u64>,
    limit: usize,
) -> Result<(T, Account, Bytes), Refusal> {
    let expected = declared.map_or(0, |n| n as usize);
    if expected > limit || budget::cost(expected) > budget.total() {
        // It would never fit: waiting and retrying cannot help.
        drop(held);
        return Err(refuse(Refusal::PayloadTooLarge, parts, body).await);
    }
    let account = budget.account();
    let read = budget::read(body, limit, declared.map(|_| expected), &account, budget::cost);
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(Refusal::BodyTimeout),
        Ok(Err(ReadError::TooLarge(rest))) => {
            drop((account, held));
            Err(refuse(Refusal::PayloadTooLarge, parts, rest).await)
        }
        Ok(Err(ReadError::OverBudget(rest))) => {
            metrics.over_budget();
            drop((account, held));
            Err(refuse(Refusal::OverBudget, parts, rest).await)
        }
        Ok(Err(ReadError::Broken(e))) if e.is::<TooSlow>() => Err(Refusal::BodyTimeout),
        Ok(Err(ReadError::Broken(_))) => Err(Refusal::BadRequest),
        Ok(Ok(body)) => Ok((held, account, body)),
    }
}

/// What the pool's refusal to run a request is, for the client.
pub fn invoke_refusal(error: &InvokeError) -> Refusal {
    match error {
        InvokeError::Overloaded(_) => Refusal::QueueFull,
        InvokeError::ShuttingDown => Refusal::ShuttingDown,
        InvokeError::Timeout => Refusal::IntegrationTimeout,
        InvokeError::Environment(_) => Refusal::EnvironmentFailed,
    }
}

/// Refuses a request whose body is left unread, the way nginx does: the
/// rest of the body is read and thrown away first (at most
/// [`DRAIN_BYTES`], for at most [`DRAIN_TIME`]), so that a client that
/// sends its whole body before it reads (Python's `requests` and `urllib`
/// do) gets the answer instead of a reset. A client that asked to be told
/// first (`Expect: 100-continue`, as curl does for large bodies) has sent
/// nothing yet and gets the answer at once. A body slower than
/// [`MIN_BODY_RATE`] is not waited for: the answer goes at once, and the
/// connection closes with the body unread. Meanwhile the connection may
/// give way to a new one, as any connection reading a body may.
pub async fn refuse(refusal: Refusal, parts: &Parts, mut body: ClientBody) -> Refusal {
    let waits_for_continue = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits_for_continue && !body.is_end_stream() {
        let drained = tokio::time::timeout(DRAIN_TIME, async {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > DRAIN_BYTES {
                    break;
                }
            }
        });
        let _ = drained.await;
    }
    refusal
}

/// [`refuse`] for a request not yet taken apart.
pub async fn refuse_request(refusal: Refusal, request: Request<ClientBody>) -> Refusal {
    let (parts, body) = request.into_parts();
    refuse(refusal, &parts, body).await
}
