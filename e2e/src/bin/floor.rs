//! The protocol's floor, for `make bench`: the least a pod can do to serve
//! the real function bootstraps over HTTP and still speak the Lambda Runtime
//! API to them, as nginx serving fixed bytes is the least an HTTP server can
//! do.
//!
//! One current-thread process: an HTTP/1.1 front that turns each request into
//! an API Gateway HTTP API (2.0) event (`aws_lambda_events`' types, the same
//! fields the gateway fills), one execution environment a function (the
//! bootstrap, polling this process's Runtime API on a loopback port of its
//! own), and the function's response turned back into HTTP. Nothing else:
//! no limits, timeouts, queue bounds, budget, throttle, authorizer, metrics,
//! request ids beyond a counter, or shutdown. It is a yardstick, never a
//! server to run: a request it cannot serve is answered 502 and forgotten.
//!
//! Routes are the template's own (`METHOD /path`, no path variables), so the
//! functions and their environment variables are the ones the gateway gives
//! them (`gateway::function_spec`): the floor and the gateway differ only in
//! what sits between the client and the bootstrap.
//!
//! Usage: `floor --listen ADDR --functions-dir DIR --template FILE
//! [--parameter-overrides ...]` (the gateway's own flags, read by its
//! `Config`); prints `ready` when every bootstrap has polled once.

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use bytes::Bytes;
use clap::Parser;
use gateway::config::Config;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Bytes>;

/// One function's single environment: what waits for it, what it runs.
struct Environment {
    /// Events not yet handed to the bootstrap, with where their answer goes.
    queued: VecDeque<(String, Bytes, Reply)>,
    /// The bootstrap's `/next`, while it waits for an event.
    polling: Option<oneshot::Sender<(String, Bytes)>>,
    /// The invocation handed out, by request id.
    running: HashMap<String, Reply>,
    /// Whether the bootstrap has polled at least once.
    started: bool,
    /// Told when a bootstrap polls for the first time.
    ready: Rc<tokio::sync::Notify>,
}

impl Environment {
    fn submit(&mut self, id: String, event: Bytes, reply: Reply) {
        match self.polling.take() {
            Some(next) => {
                self.running.insert(id.clone(), reply);
                // A bootstrap gone between its poll and now: the reply is
                // dropped with the entry below, and the client gets a 502.
                if next.send((id.clone(), event)).is_err() {
                    self.running.remove(&id);
                }
            }
            None => self.queued.push_back((id, event, reply)),
        }
    }
}

type Shared = Rc<RefCell<Environment>>;

fn main() {
    // The gateway's own flags and template: the same functions, the same
    // variables, the same routes.
    let config = Config::parse();
    let template =
        gateway::template::load(&config.template, &config.parameter_overrides, &config.region)
            .unwrap_or_else(|e| panic!("template: {e}"));
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let mut routes: HashMap<(String, String), (String, Shared)> = HashMap::new();
        let mut environments = Vec::new();
        let ready = Rc::new(tokio::sync::Notify::new());
        for function in &template.functions {
            let spec = gateway::function_spec(&config, function);
            let environment: Shared = Rc::new(RefCell::new(Environment {
                queued: VecDeque::new(),
                polling: None,
                running: HashMap::new(),
                started: false,
                ready: ready.clone(),
            }));
            let api = TcpListener::bind("127.0.0.1:0").await.expect("bind the runtime API");
            let address = api.local_addr().expect("address");
            tokio::task::spawn_local(serve_runtime_api(api, environment.clone()));
            let child = std::process::Command::new(&spec.bootstrap)
                .current_dir(spec.bootstrap.parent().expect("bootstrap dir"))
                .env_clear()
                .envs(spec.vars.iter().map(|(k, v)| (k, v)))
                .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "floor")
                .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", spec.bootstrap.display()));
            // Killed with the floor: the bench stops it with SIGTERM.
            std::mem::forget(child);
            for route in template.routes.iter().filter(|r| r.function == function.name) {
                let key = (route.method.clone(), route.path.clone());
                routes
                    .insert(key, (format!("{} {}", route.method, route.path), environment.clone()));
            }
            environments.push(environment);
        }
        // Every bootstrap has polled once: its init is done.
        loop {
            let polled = ready.notified();
            if environments.iter().all(|e: &Shared| e.borrow().started) {
                break;
            }
            polled.await;
        }
        let listener = TcpListener::bind(config.listen).await.expect("bind --listen");
        println!("ready");
        let routes = Rc::new(routes);
        let counter = Rc::new(Cell::new(0u64));
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let routes = routes.clone();
            let counter = counter.clone();
            let port = config.listen.port();
            tokio::task::spawn_local(async move {
                let service = service_fn(move |request| {
                    front(request, routes.clone(), counter.clone(), peer, port)
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}

/// A client's request: to an event, through the function's environment,
/// and back.
async fn front(
    request: Request<Incoming>,
    routes: Rc<HashMap<(String, String), (String, Shared)>>,
    counter: Rc<Cell<u64>>,
    peer: SocketAddr,
    port: u16,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let key = (request.method().as_str().to_owned(), request.uri().path().to_owned());
    let route = routes.get(&key).or_else(|| routes.get(&("ANY".to_owned(), key.1.clone())));
    let Some((route_key, environment)) = route else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    counter.set(counter.get() + 1);
    let id = format!("floor-{}", counter.get());
    let event = event(&parts, &body, route_key, &id, peer, port);
    let (reply, answer) = oneshot::channel();
    environment.borrow_mut().submit(id, Bytes::from(event), reply);
    let Ok(output) = answer.await else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    Ok(response(&output).unwrap_or_else(|| status(StatusCode::BAD_GATEWAY)))
}

fn event(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    route_key: &str,
    id: &str,
    peer: SocketAddr,
    port: u16,
) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key.to_owned());
    // The same fields, with the same values, as the gateway's events
    // (gateway::event), so that a function parses the same event behind
    // either.
    context.account_id = Some("anonymous".to_owned());
    context.stage = Some("$default".to_owned());
    context.request_id = Some(id.to_owned());
    context.apiid = Some("floor".to_owned());
    context.domain_name =
        parts.headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_owned);
    context.time_epoch = now.as_millis() as i64;
    context.time = Some(gateway::ids::clf_time(now.as_secs() as i64));
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(parts.uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".to_owned());
    http.source_ip = Some(peer.ip().to_string());
    http.user_agent =
        parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).map(str::to_owned);
    context.http = http;
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(route_key.to_owned());
    event.raw_path = Some(parts.uri.path().to_owned());
    event.raw_query_string = Some(parts.uri.query().unwrap_or_default().to_owned());
    event.headers = parts.headers.clone();
    if let Ok(ip) = HeaderValue::from_str(&peer.ip().to_string()) {
        event.headers.insert("x-forwarded-for", ip);
    }
    event.headers.insert("x-forwarded-port", HeaderValue::from(port));
    event.headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    event.request_context = context;
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event.body = Some(text.to_owned()),
            Err(_) => {
                use base64::Engine as _;
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
                event.is_base64_encoded = true;
            }
        }
    }
    serde_json::to_vec(&event).expect("an event serializes")
}

/// The function's API Gateway response as HTTP.
fn response(output: &[u8]) -> Option<Response<Full<Bytes>>> {
    let parsed: ApiGatewayV2httpResponse = serde_json::from_slice(output).ok()?;
    let body = match parsed.body {
        Some(LambdaBody::Text(text)) => Bytes::from(text),
        Some(LambdaBody::Binary(bytes)) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(parsed.status_code as u16).ok()?;
    *response.headers_mut() = parsed.headers;
    for (name, values) in parsed.multi_value_headers.iter().map(|(n, v)| (n.clone(), v.clone())) {
        response.headers_mut().append(name, values);
    }
    for cookie in parsed.cookies {
        response.headers_mut().append("set-cookie", HeaderValue::from_str(&cookie).ok()?);
    }
    Some(response)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// The Runtime API one bootstrap polls: `/next`, and `/{id}/response` or
/// `/{id}/error` (both end the invocation with the posted bytes; the
/// function's own error JSON becomes a 502 at the front).
async fn serve_runtime_api(listener: TcpListener, environment: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let environment = environment.clone();
        tokio::task::spawn_local(async move {
            let service = service_fn(move |request| runtime_api(request, environment.clone()));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");

async fn runtime_api(
    request: Request<Incoming>,
    environment: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    if rest == "next" {
        let next = {
            let mut env = environment.borrow_mut();
            if !env.started {
                env.started = true;
                env.ready.notify_one();
            }
            match env.queued.pop_front() {
                Some((id, event, reply)) => {
                    env.running.insert(id.clone(), reply);
                    Ok((id, event))
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    env.polling = Some(tx);
                    Err(rx)
                }
            }
        };
        let (id, event) = match next {
            Ok(ready) => ready,
            Err(wait) => match wait.await {
                Ok(ready) => ready,
                Err(_) => return Ok(status(StatusCode::GONE)),
            },
        };
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
            + Duration::from_secs(30);
        let mut response = Response::new(Full::new(event));
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, HeaderValue::from_str(&id).expect("ascii id"));
        headers.insert(DEADLINE_MS, HeaderValue::from(deadline.as_millis() as u64));
        headers.insert(
            FUNCTION_ARN,
            HeaderValue::from_static("arn:aws:lambda:us-east-1:012345678912:function:floor"),
        );
        return Ok(response);
    }
    let Some((id, _answer)) = rest.split_once('/') else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    let id = id.to_owned();
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    if let Some(reply) = environment.borrow_mut().running.remove(&id) {
        let _ = reply.send(body);
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")));
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}
