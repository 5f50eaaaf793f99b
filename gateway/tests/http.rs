//! The gateway's HTTP behaviour, with the real server started in this
//! process on 127.0.0.1:0 and each function a scripted fake
//! (`gateway::testing`): every status the gateway itself chooses and its
//! body, the limits, throttling, the authorizer and its cache, the queue
//! and deadlines, drain and shutdown, the admin port and request ids.
//!
//! What needs real processes (the function binaries, the Runtime API
//! against the AWS RIE, signals, PID 1, memory cgroups) is in `e2e`.

use bytes::Bytes;
use gateway::testing::{
    self, Answer, Fakes, Record, Reply, Running, authorizer, config, get, http, post, raw, route,
    template, throttle,
};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The project's three public routes, each its own fake function.
fn api() -> gateway::template::Template {
    template(vec![
        route("ANY", "/ping", "ping"),
        route("ANY", "/api/v1/hello", "hello"),
        route("GET", "/docs/{proxy+}", "docs"),
    ])
}

fn body_of(event: &Value) -> String {
    event["body"].as_str().unwrap_or_default().to_owned()
}

/// A fake that answers with the event's body (so a test sees what reached
/// the function).
fn echo(invocation: &gateway::environment::Invocation) -> Reply {
    let event: Value = serde_json::from_slice(&invocation.event).expect("JSON event");
    http(200, &body_of(&event))
}

fn message(answer: &Answer) -> (StatusCode, Value) {
    (answer.status, answer.json())
}

fn msg(status: u16, text: &str) -> (StatusCode, Value) {
    (StatusCode::from_u16(status).expect("a status"), json!({ "message": text }))
}

async fn metrics(gw: &Running) -> String {
    gw.admin_get("/metrics").await.text()
}

#[tokio::test]
async fn own_endpoints_and_metrics_only_on_the_admin_port() {
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    for port in [gw.addr, gw.admin] {
        let r = testing::send(port, get("/healthz")).await;
        assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ok"})));
        let r = testing::send(port, get("/readyz")).await;
        assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ready"})));
    }
    // The public port knows no /metrics: it is a route like any other.
    assert_eq!(message(&gw.get("/metrics").await), msg(404, "Not Found"));
    let r = gw.admin_get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header("content-type").is_some_and(|t| t.starts_with("application/openmetrics-text"))
    );
    assert!(r.text().contains("kf_gateway_memory_budget_bytes "), "{}", r.text());
    // And the admin port serves nothing else.
    assert_eq!(message(&gw.admin_get("/ping").await), msg(404, "Not Found"));
    gw.stop().await.expect("a clean stop");
}

/// Issue 31: the kubelet's probes have a port of their own, which answers
/// `/healthz` and `/readyz` and nothing else, at once while 200 of the
/// cluster's callers trickle Invoke API bodies at the admin port (whose
/// probes, too, get a place: a trickling body gives way at the cap).
#[tokio::test]
async fn the_probes_port_answers_only_probes_and_at_once_under_an_admin_flood() {
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    let r = testing::send(gw.probes, get("/healthz")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ok"})));
    let r = testing::send(gw.probes, get("/readyz")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ready"})));
    for path in ["/metrics", "/ping", "/2015-03-31/functions/hello/invocations"] {
        assert_eq!(message(&testing::send(gw.probes, get(path)).await), msg(404, "Not Found"));
    }
    let mut flood = Vec::new();
    for _ in 0..200 {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(gw.admin).await.expect("connect");
        let head = "POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nhost: x\r\n\
                    content-length: 1000000\r\n\r\n{";
        stream.write_all(head.as_bytes()).await.expect("head");
        flood.push(stream);
    }
    for port in [gw.probes, gw.admin] {
        let started = Instant::now();
        let r = testing::send(port, get("/healthz")).await;
        assert_eq!(r.status, StatusCode::OK);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(500), "a probe waited {took:?} on {port}");
    }
    drop(flood);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_route_reaches_its_function_and_the_answer_comes_back() {
    let fakes = Fakes::new()
        .script("ping", |_| http(200, r#"{"ping":"pong!"}"#))
        .script("hello", echo)
        .script("docs", |i| {
            let event: Value = serde_json::from_slice(&i.event).expect("JSON");
            http(200, &event["pathParameters"]["proxy"].to_string())
        });
    let gw = Running::start(config(&[]), api(), fakes).await;
    let r = gw.get("/ping").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, r#"{"ping":"pong!"}"#));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = gw.post("/api/v1/hello", r#"{"n": 12}"#).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, r#"{"n": 12}"#));
    let r = gw.get("/docs/swagger-ui/index.css").await;
    assert_eq!(r.text(), r#""swagger-ui/index.css""#);
    // No route, or a method the route does not take: API Gateway's 404.
    assert_eq!(message(&gw.get("/nowhere").await), msg(404, "Not Found"));
    assert_eq!(message(&gw.post("/docs/x", "{}").await), msg(404, "Not Found"));
    // What the function saw: the route, the method, the body.
    let events = gw.record("hello").events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["routeKey"], "ANY /api/v1/hello");
    assert_eq!(events[0]["requestContext"]["http"]["method"], "POST");
    let m = metrics(&gw).await;
    for line in [
        r#"kf_gateway_requests_total{route="ANY /ping",status="200"} 1"#,
        r#"kf_gateway_requests_total{route="unmatched",status="404"} 2"#,
        r#"kf_gateway_cold_starts_total{function="hello"} 1"#,
        r#"kf_gateway_environments{function="hello"} 1"#,
        r#"kf_gateway_queue_depth{function="hello"} 0"#,
    ] {
        assert!(m.contains(line), "metrics lack {line}:\n{m}");
    }
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_request_id_is_the_gateways_and_the_clients_comes_back() {
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    for client_id in ["test-id-42", "a/b", "x?y"] {
        let request = Request::get("/ping")
            .header("host", "test")
            .header("x-request-id", client_id)
            .body(Full::<Bytes>::default())
            .expect("request");
        let r = gw.send(request).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-request-id"), Some(client_id));
        let ours = r.header("apigw-requestid").expect("apigw-requestid").to_owned();
        assert!(ours.len() == 36 && ours.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
        // The Lambda request id is the gateway's, never the client's: it
        // goes into the Runtime API's paths.
        let events = gw.record("ping").events();
        let event = events.last().expect("an event");
        assert_eq!(event["requestContext"]["requestId"], ours.as_str());
        assert_eq!(event["headers"]["x-request-id"], client_id);
    }
    // Without one, the gateway's own id stands in, and the function sees
    // no header the client did not send.
    let r = gw.get("/ping").await;
    assert!(r.header("x-request-id").is_some_and(|id| id.len() == 36));
    assert_eq!(r.header("x-request-id"), r.header("apigw-requestid"));
    let events = gw.record("ping").events();
    assert!(events.last().expect("an event")["headers"].get("x-request-id").is_none());
    let ids: std::collections::HashSet<String> = gw
        .record("ping")
        .events()
        .iter()
        .map(|e| e["requestContext"]["requestId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 4, "every request its own id");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn lambdas_payload_limit_is_a_413_before_the_body_is_read() {
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    // One byte past 6 MB declared, none sent: the answer comes at once.
    let head = b"POST /api/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-length: 6291457\r\n\r\n";
    let answer = raw(gw.addr, head, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.ends_with(r#"{"message":"Request Entity Too Large"}"#), "{answer}");
    // A body without a length that grows past it.
    let big = "x".repeat(6 * 1024 * 1024 + 1);
    let r = gw.post("/api/v1/hello", &big).await;
    assert_eq!(message(&r), msg(413, "Request Entity Too Large"));
    assert_eq!(Record::count(&gw.record("hello").invoked), 0);
    // Exactly 6 MB fits.
    let fits = "x".repeat(6 * 1024 * 1024);
    assert_eq!(gw.post("/api/v1/hello", &fits).await.status, StatusCode::OK);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_http_apis_head_limit_is_a_431() {
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    let with_header = |size: usize| {
        Request::get("/ping")
            .header("host", "test")
            .header("x-big", "a".repeat(size))
            .body(Full::<Bytes>::default())
            .expect("request")
    };
    // API Gateway's 10,240 bytes of request line and header values.
    let r = gw.send(with_header(10_300)).await;
    assert_eq!(message(&r), msg(431, "Request Header Fields Too Large"));
    assert_eq!(gw.send(with_header(9_000)).await.status, StatusCode::OK);
    // Past what the HTTP server reads at all: its own bare 431.
    let head = format!("GET /ping HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(70_000));
    let answer = raw(gw.addr, head.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(Record::count(&gw.record("ping").invoked), 1);
    gw.stop().await.expect("a clean stop");
}

/// A header value that is not UTF-8 cannot be carried by the JSON event:
/// a 400, the function never called, no ERROR logged (it was a 500 and an
/// ERROR line, issue 31); UTF-8 text beyond ASCII reaches the function.
#[tokio::test]
async fn a_header_that_is_not_text_is_a_400_and_utf8_text_reaches_the_function() {
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    let head = b"GET /ping HTTP/1.1\r\nhost: x\r\nx-a: \xff\xfe\r\nconnection: close\r\n\r\n";
    let answer = raw(gw.addr, head, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with(r#"{"message":"Bad Request"}"#), "{answer}");
    assert_eq!(Record::count(&gw.record("ping").invoked), 0);
    let head = "GET /ping HTTP/1.1\r\nhost: x\r\nx-a: caf\u{e9}\r\nconnection: close\r\n\r\n";
    let answer = raw(gw.addr, head.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(Record::count(&gw.record("ping").invoked), 1);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_malformed_body_is_a_400() {
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    let head =
        b"POST /api/v1/hello HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
    let answer = raw(gw.addr, head, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with(r#"{"message":"Bad Request"}"#), "{answer}");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn function_failures_are_the_http_apis_500_and_a_broken_environment_a_502() {
    let fakes = Fakes::new()
        .script("ping", |_| Reply::Error("Handled".into()))
        .script("hello", |_| Reply::Exit)
        .script("docs", |i| {
            if i.event.windows(6).any(|w| w == b"broken") {
                Reply::Break
            } else {
                Reply::Payload(Bytes::from_static(b"not json"))
            }
        });
    let gw = Running::start(config(&[]), api(), fakes).await;
    assert_eq!(message(&gw.get("/ping").await), msg(500, "Internal Server Error"));
    // A runtime that exits during its invocation: a 500, and the next
    // request gets a new environment.
    assert_eq!(message(&gw.post("/api/v1/hello", "{}").await), msg(500, "Internal Server Error"));
    assert_eq!(message(&gw.post("/api/v1/hello", "{}").await), msg(500, "Internal Server Error"));
    assert_eq!(Record::count(&gw.record("hello").started), 2);
    // An answer that is not a response, or an environment that breaks: 502.
    assert_eq!(message(&gw.get("/docs/x").await), msg(502, "Bad Gateway"));
    assert_eq!(message(&gw.get("/docs/broken").await), msg(502, "Bad Gateway"));
    let m = metrics(&gw).await;
    assert!(m.contains(r#"kf_gateway_environment_replacements_total{function="hello""#), "{m}");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_queue_requests_get_a_503_with_retry_after() {
    // One environment, one place in the queue; each request takes 500 ms.
    let fakes = Fakes::new()
        .script("hello", |_| Reply::After(Duration::from_millis(500), Box::new(http(200, "{}"))));
    let gw = Running::start(config(&["--envs", "1", "--queue", "1"]), api(), fakes).await;
    let gw = std::sync::Arc::new(gw);
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.post("/api/v1/hello", "{}").await })
        })
        .collect();
    let mut answers = Vec::new();
    for c in clients {
        answers.push(c.await.expect("client"));
    }
    let ok = answers.iter().filter(|a| a.status == StatusCode::OK).count();
    let refused: Vec<_> =
        answers.iter().filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE).collect();
    // One runs, one waits; the other four are turned away at once.
    assert_eq!((ok, refused.len()), (2, 4));
    for r in refused {
        assert_eq!(message(r), msg(503, "Service Unavailable"));
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let gw = std::sync::Arc::into_inner(gw).expect("the only owner");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_timeout_is_a_503_and_the_invocation_runs_on() {
    let mut t = api();
    t.routes[1].integration_timeout = Duration::from_millis(300);
    let fakes = Fakes::new()
        .script("hello", |_| Reply::After(Duration::from_millis(1500), Box::new(http(200, "{}"))));
    let gw = Running::start(config(&[]), t, fakes).await;
    let started = Instant::now();
    let r = gw.post("/api/v1/hello", "{}").await;
    let took = started.elapsed();
    assert_eq!(message(&r), msg(503, "Service Unavailable"));
    assert_eq!(r.header("retry-after"), None, "trying again will not make the function faster");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1200), "{took:?}");
    // As on Lambda, the invocation runs on to its end and keeps its
    // environment.
    let m = metrics(&gw).await;
    assert!(m.contains(r#"kf_gateway_environments_busy{function="hello"} 1"#), "{m}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !metrics(&gw).await.contains(r#"kf_gateway_environments_busy{function="hello"} 0"#) {
        assert!(Instant::now() < deadline, "the invocation never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(Record::count(&gw.record("hello").killed), 0);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_past_its_timeout_is_a_500_and_its_environment_killed() {
    let mut t = api();
    t.functions.iter_mut().find(|f| f.name == "hello").expect("hello").timeout =
        Duration::from_millis(300);
    let fakes = Fakes::new().script("hello", |_| Reply::Hang);
    let gw = Running::start(config(&[]), t, fakes).await;
    let started = Instant::now();
    let r = gw.post("/api/v1/hello", "{}").await;
    let took = started.elapsed();
    assert_eq!(message(&r), msg(500, "Internal Server Error"));
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
    assert_eq!(Record::count(&gw.record("hello").killed), 1);
    let m = metrics(&gw).await;
    assert!(
        m.contains(
            r#"kf_gateway_environment_replacements_total{function="hello",reason="timeout"} 1"#
        ),
        "{m}"
    );
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn with_the_opt_in_a_burst_over_the_routes_throttle_gets_429s() {
    let mut t = api();
    t.throttle = Some(throttle(5, 0.001));
    let gw = Running::start(config(&["--throttle", "true"]), t, Fakes::new()).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = gw.get("/ping").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(message(&r), msg(429, "Too Many Requests"));
        }
        statuses.push(r.status.as_u16());
    }
    // The burst, then nothing at a rate of one per 1,000 s.
    assert_eq!(statuses, [[200; 5].as_slice(), &[429; 15]].concat());
    // Each route has its own bucket; a refused request reaches no function.
    assert_eq!(gw.post("/api/v1/hello", "{}").await.status, StatusCode::OK);
    assert_eq!(Record::count(&gw.record("ping").invoked), 5);
    let m = metrics(&gw).await;
    assert!(m.contains(r#"kf_gateway_requests_total{route="ANY /ping",status="429"} 15"#), "{m}");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn without_the_opt_in_the_templates_throttle_refuses_nothing() {
    let mut t = api();
    t.throttle = Some(throttle(5, 0.001));
    let gw = Running::start(config(&[]), t, Fakes::new()).await;
    for _ in 0..20 {
        assert_eq!(gw.get("/ping").await.status, StatusCode::OK);
    }
    gw.stop().await.expect("a clean stop");
}

/// hello behind an authorizer function `auth` that allows the key `good`
/// (with a context) and denies any other, caching for `ttl`.
async fn guarded(ttl: Duration) -> Running {
    let mut t = api();
    t.routes[1].authorizer = Some("KeyAuthorizer".into());
    t.functions.push(testing::function("auth"));
    t.authorizers.push(authorizer("KeyAuthorizer", "auth", "authorization", ttl));
    let fakes = Fakes::new().script("hello", echo_context).script("auth", |i| {
        let event: Value = serde_json::from_slice(&i.event).expect("JSON");
        let allowed = event["identitySource"] == json!(["Bearer good"]);
        let decision = json!({"isAuthorized": allowed, "context": {"keyId": "alice"}});
        Reply::Payload(Bytes::from(decision.to_string()))
    });
    Running::start(config(&[]), t, fakes).await
}

/// Answers with what the authorizer told the function.
fn echo_context(i: &gateway::environment::Invocation) -> Reply {
    let event: Value = serde_json::from_slice(&i.event).expect("JSON");
    http(200, &event["requestContext"]["authorizer"]["lambda"].to_string())
}

fn with_key(key: &str) -> Request<Full<Bytes>> {
    Request::post("/api/v1/hello")
        .header("host", "test")
        .header("authorization", key)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request")
}

#[tokio::test]
async fn the_authorizer_decides_and_its_context_reaches_the_function() {
    let gw = guarded(Duration::from_secs(300)).await;
    // No identity: 401 without asking the authorizer.
    assert_eq!(message(&gw.post("/api/v1/hello", "{}").await), msg(401, "Unauthorized"));
    assert_eq!(Record::count(&gw.record("auth").invoked), 0);
    assert_eq!(message(&gw.send(with_key("Bearer bad")).await), msg(403, "Forbidden"));
    let r = gw.send(with_key("Bearer good")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"keyId": "alice"})));
    // Both decisions are cached: asked again, the authorizer is not.
    assert_eq!(gw.send(with_key("Bearer bad")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(gw.send(with_key("Bearer good")).await.status, StatusCode::OK);
    assert_eq!(Record::count(&gw.record("auth").invoked), 2);
    // Open routes stay open.
    assert_eq!(gw.get("/ping").await.status, StatusCode::OK);
    let m = metrics(&gw).await;
    for line in [
        r#"kf_gateway_authorizations_total{authorizer="KeyAuthorizer",result="unauthorized",source="none"} 1"#,
        r#"kf_gateway_authorizations_total{authorizer="KeyAuthorizer",result="allowed",source="cache"} 1"#,
        r#"kf_gateway_authorizations_total{authorizer="KeyAuthorizer",result="denied",source="function"} 1"#,
    ] {
        assert!(m.contains(line), "metrics lack {line}:\n{m}");
    }
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn without_a_cache_ttl_every_request_asks_the_authorizer() {
    let gw = guarded(Duration::ZERO).await;
    for _ in 0..3 {
        assert_eq!(gw.send(with_key("Bearer good")).await.status, StatusCode::OK);
    }
    assert_eq!(Record::count(&gw.record("auth").invoked), 3);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn an_authorizer_that_fails_is_a_500_and_the_function_never_runs() {
    let mut t = api();
    t.routes[1].authorizer = Some("KeyAuthorizer".into());
    t.functions.push(testing::function("auth"));
    t.authorizers.push(authorizer("KeyAuthorizer", "auth", "authorization", Duration::ZERO));
    let fakes = Fakes::new().script("auth", |i| {
        if i.event.windows(5).any(|w| w == b"crash") {
            Reply::Error("Unhandled".into())
        } else {
            Reply::Payload(Bytes::from_static(b"\"not a simple response\""))
        }
    });
    let gw = Running::start(config(&[]), t, fakes).await;
    assert_eq!(message(&gw.send(with_key("crash")).await), msg(500, "Internal Server Error"));
    assert_eq!(message(&gw.send(with_key("other")).await), msg(500, "Internal Server Error"));
    assert_eq!(Record::count(&gw.record("hello").invoked), 0);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_body_the_budget_can_never_hold_is_a_413_and_one_it_cannot_hold_now_a_503() {
    // 3 MiB: a 1 MiB body costs 4 MiB (see `budget::cost`), so it never
    // fits; a 600 KiB body fits alone but not beside another.
    let gw = Running::start(
        config(&["--memory-budget", "3Mi", "--envs", "2"]),
        api(),
        Fakes::new().script("hello", |_| {
            Reply::After(Duration::from_millis(300), Box::new(http(200, "{}")))
        }),
    )
    .await;
    let r = gw.post("/api/v1/hello", &"x".repeat(1 << 20)).await;
    assert_eq!(message(&r), msg(413, "Request Entity Too Large"));
    let body = "x".repeat(600 << 10);
    let gw = std::sync::Arc::new(gw);
    let first = tokio::spawn({
        let (gw, body) = (gw.clone(), body.clone());
        async move { gw.post("/api/v1/hello", &body).await }
    });
    // The first is held once it is in its environment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Record::count(&gw.record("hello").invoked) == 0 {
        assert!(Instant::now() < deadline, "the first request never ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = gw.post("/api/v1/hello", &body).await;
    assert_eq!(message(&second), msg(503, "Service Unavailable"));
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(first.await.expect("first").status, StatusCode::OK);
    // Given back: the same body fits again.
    assert_eq!(gw.post("/api/v1/hello", &body).await.status, StatusCode::OK);
    let m = metrics(&gw).await;
    assert!(m.contains("kf_gateway_memory_budget_refusals_total 1"), "{m}");
    let gw = std::sync::Arc::into_inner(gw).expect("the only owner");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_function_that_fails_to_start_is_started_again_only_after_a_back_off() {
    let fakes = Fakes::new().script("hello", |_| Reply::ExitAtStart);
    let gw = Running::start(config(&[]), api(), fakes).await;
    // A runtime that exits before its first invocation: a 500; the next
    // request at once gets the same 500 without a new environment, one
    // after the back-off a new environment.
    assert_eq!(message(&gw.post("/api/v1/hello", "{}").await), msg(500, "Internal Server Error"));
    assert_eq!(message(&gw.post("/api/v1/hello", "{}").await), msg(500, "Internal Server Error"));
    assert_eq!(Record::count(&gw.record("hello").started), 1);
    tokio::time::sleep(gateway::pool::START_BACKOFF).await;
    assert_eq!(message(&gw.post("/api/v1/hello", "{}").await), msg(500, "Internal Server Error"));
    assert_eq!(Record::count(&gw.record("hello").started), 2);
    let m = metrics(&gw).await;
    assert!(
        m.contains(r#"kf_gateway_environment_starts_suppressed_total{function="hello"} 1"#),
        "{m}"
    );
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_functions_answer_is_charged_to_the_budget_and_one_it_cannot_hold_is_a_503() {
    // 3 MiB: an answer of 1.2 MB costs 3.6 MB (as read, parsed, and as the
    // response's body), past the budget; one of 0.6 MB fits.
    let gw = Running::start(
        config(&["--memory-budget", "3Mi"]),
        api(),
        Fakes::new().script("hello", |i| {
            let size = if i.event.windows(5).any(|w| w == b"large") { 1_200_000 } else { 600_000 };
            http(200, &"a".repeat(size))
        }),
    )
    .await;
    let r = gw.post("/api/v1/hello", "{\"size\": \"large\"}").await;
    assert_eq!(message(&r), msg(503, "Service Unavailable"));
    let r = gw.post("/api/v1/hello", "{}").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 600_000);
    let m = metrics(&gw).await;
    assert!(m.contains("kf_gateway_memory_budget_refusals_total 1"), "{m}");
    assert!(m.contains("kf_gateway_memory_budget_held_bytes 0"), "all given back: {m}");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_declared_body_is_charged_as_it_arrives_not_as_declared() {
    // A body that declares 6 MB and sends 1 KB holds about what it sent,
    // not the 24 MB that 6 MB would cost, and a request beside it is served.
    let gw = Running::start(config(&["--memory-budget", "30Mi"]), api(), Fakes::new()).await;
    let addr = gw.addr;
    let trickler = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = "POST /api/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-length: 6000000\r\n\r\n";
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&[b' '; 1024]).await.expect("some body");
        // Holds the connection open, sending nothing more.
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        let m = metrics(&gw).await;
        let held = m
            .lines()
            .find_map(|l| l.strip_prefix("kf_gateway_memory_budget_held_bytes "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if held > 0 || Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(held > 0 && held <= 4 * 2048, "{held} bytes held for 1 KiB sent of 6 MB declared");
    assert_eq!(gw.get("/ping").await.status, StatusCode::OK);
    trickler.abort();
    gw.stop().await.expect("a clean stop");
}

/// What the memory budget holds now.
async fn held_bytes(gw: &Running) -> u64 {
    metrics(gw)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("kf_gateway_memory_budget_held_bytes "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// Opens a connection to `addr` that sends a head declaring a 1 MB body,
/// then `sent` bytes of it, and nothing more while held.
async fn trickling_body(addr: std::net::SocketAddr, sent: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = "POST /api/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&vec![b' '; sent]).await.expect("some body");
    stream
}

/// Issue 31: a body must keep 4 KiB/s after its first 2 s. One that sends
/// 1 KB and stops gets its 408 at the grace's end, not at the 10 s body
/// timeout, and its connection is closed.
#[tokio::test]
async fn a_body_below_the_minimum_rate_is_a_408_when_the_grace_ends() {
    use tokio::io::AsyncReadExt;
    let gw = Running::start(config(&[]), api(), Fakes::new()).await;
    let started = Instant::now();
    let mut stream = trickling_body(gw.addr, 1024).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut answer)).await;
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the connection is closed after the answer: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let grace = gateway::intake::BODY_GRACE;
    assert!(took >= grace && took < grace + Duration::from_secs(1), "answered after {took:?}");
    assert_eq!(Record::count(&gw.record("hello").invoked), 0);
    gw.stop().await.expect("a clean stop");
}

/// Issue 31: at the connection cap, a connection trickling a body gives way
/// to a fresh client as one trickling a head does (it used to count as
/// serving a request, so tricklers of bodies held every place until their
/// body timeout). The oldest of the biggest holder goes first.
#[tokio::test]
async fn at_the_cap_a_connection_trickling_its_body_gives_way_to_a_fresh_client() {
    let gw = Running::start(config(&["--max-connections", "4"]), api(), Fakes::new()).await;
    // Until the budget holds what four bodies of 100 bytes hold: all are
    // reading their bodies (a connection waiting for its head gives way
    // anyway).
    let mut tricklers = vec![trickling_body(gw.addr, 100).await];
    let deadline = Instant::now() + Duration::from_secs(2);
    let one = loop {
        match held_bytes(&gw).await {
            0 => assert!(Instant::now() < deadline, "the body is not being read"),
            held => break held,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for _ in 0..3 {
        tricklers.push(trickling_body(gw.addr, 100).await);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while held_bytes(&gw).await != 4 * one {
        assert!(Instant::now() < deadline, "the four bodies are not being read");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let r = gw.get("/ping").await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert!(took < Duration::from_millis(500), "a fresh client waited {took:?}");
    let m = metrics(&gw).await;
    assert!(m.contains("kf_gateway_connections_evicted_total 1"), "{m}");
    drop(tricklers);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_readiness_fails_first_and_in_flight_requests_finish() {
    let fakes = Fakes::new()
        .script("hello", |_| Reply::After(Duration::from_millis(400), Box::new(http(200, "{}"))));
    let mut gw =
        Running::start(config(&["--shutdown-delay", "300ms", "--grace", "5s"]), api(), fakes).await;
    assert_eq!(gw.get("/ping").await.status, StatusCode::OK);
    let addr = gw.addr;
    let in_flight =
        tokio::spawn(async move { testing::send(addr, post("/api/v1/hello", "{}")).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while Record::count(&gw.record("hello").invoked) == 0 {
        assert!(Instant::now() < deadline, "the request never ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.begin_stop();
    // During the delay: still serving, but not ready, so load balancers
    // move away.
    let r = gw.admin_get("/readyz").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "not ready"}))
    );
    assert_eq!(gw.get("/ping").await.status, StatusCode::OK);
    assert_eq!(in_flight.await.expect("in flight").status, StatusCode::OK);
    let (ping, hello) = (gw.record("ping"), gw.record("hello"));
    gw.finished().await.expect("a clean stop");
    // Every environment was stopped, and none was killed.
    assert_eq!(Record::count(&ping.stopped) + Record::count(&hello.stopped), 2);
    assert_eq!(Record::count(&hello.killed), 0);
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn prewarm_starts_every_function_before_the_first_request() {
    let gw = Running::start(config(&["--prewarm", "true"]), api(), Fakes::new()).await;
    // The start returns before the prewarm ends; the first request waits
    // for the accept loop, which begins after it.
    assert_eq!(gw.get("/ping").await.status, StatusCode::OK);
    for f in ["ping", "hello", "docs"] {
        assert_eq!(Record::count(&gw.record(f).started), 1, "{f}");
    }
    let m = metrics(&gw).await;
    // The request found its environment warm (the prewarm was the cold
    // start).
    let warm = r#"kf_gateway_invocation_duration_seconds_count{function="ping",start="warm"} 1"#;
    assert!(m.contains(warm), "{m}");
    assert!(!m.contains(r#"start="cold""#), "{m}");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_pod_serving_some_functions_answers_404_for_the_others() {
    let gw = Running::start(config(&["--functions", "ping"]), api(), Fakes::new()).await;
    assert_eq!(gw.get("/ping").await.status, StatusCode::OK);
    assert_eq!(message(&gw.post("/api/v1/hello", "{}").await), msg(404, "Not Found"));
    assert_eq!(Record::count(&gw.record("hello").started), 0);
    gw.stop().await.expect("a clean stop");
    // A function the template lacks stops the start, naming what it has.
    let gw = Running::start(config(&["--functions", "pong"]), api(), Fakes::new()).await;
    let e = gw.finished().await.expect_err("an unknown function");
    assert_eq!(
        e.to_string(),
        r#"--functions: the template has no function "pong" (it has ping, hello, docs)"#
    );
}
