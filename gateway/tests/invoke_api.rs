//! Lambda's Invoke API on the admin port, with the real server started in
//! this process on 127.0.0.1:0 and each function a scripted fake: the
//! names a function answers to, the invocation types, Lambda's errors, the
//! client context, and the queue and budget shared with the HTTP API.
//!
//! The same API with real clients (boto3, `cargo lambda invoke`) and real
//! functions, in both emulator modes, is in `e2e`.

use bytes::Bytes;
use gateway::testing::{self, Answer, Fakes, Record, Reply, Running, config, http, route};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// `ping` and `hello` on routes, and `worker`, which has no route: a
/// function only ever called by name.
fn functions() -> gateway::template::Template {
    let mut template =
        testing::template(vec![route("ANY", "/ping", "ping"), route("ANY", "/hello", "hello")]);
    template.functions.push(testing::function("worker"));
    template
}

/// A fake that answers with its event as it came (the Invoke API's payload
/// is the event, with no API Gateway wrapping).
fn echo(invocation: &gateway::environment::Invocation) -> Reply {
    Reply::Payload(invocation.event.clone())
}

/// `POST` of `payload` to `function`'s invocations (`name?query` puts the
/// query after the path).
fn invoke(function: &str, payload: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let (name, query) =
        function.split_once('?').map_or((function, String::new()), |(n, q)| (n, format!("?{q}")));
    let mut request = Request::post(format!("/2015-03-31/functions/{name}/invocations{query}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Full::new(Bytes::from(payload.to_owned()))).expect("a request")
}

/// Lambda's error: status, `X-Amzn-ErrorType`, body.
fn error(answer: &Answer) -> (StatusCode, String, Value) {
    (answer.status, answer.header("x-amzn-errortype").unwrap_or_default().to_owned(), answer.json())
}

#[tokio::test]
async fn a_function_is_invoked_by_any_of_its_names_and_its_output_is_the_body() {
    let fakes = Fakes::new().script("hello", echo).script("worker", echo);
    let gw = Running::start(config(&[]), functions(), fakes).await;
    let arn = "arn:aws:lambda:us-east-1:012345678912:function:hello";
    for name in [
        "hello",
        "helloFunction",
        "arn%3Aaws%3Alambda%3Aus-east-1%3A012345678912%3Afunction%3Ahello",
        arn,
        "012345678912:function:hello",
        "hello%3A%24LATEST",
        "worker",
    ] {
        let r = testing::send(gw.admin, invoke(name, r#"{"n": 42}"#, &[])).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
        assert_eq!(r.json(), json!({"n": 42}), "{name}");
        assert_eq!(r.header("x-amz-executed-version"), Some("$LATEST"));
        assert_eq!(r.header("x-amz-function-error"), None);
        assert!(r.header("x-amzn-requestid").is_some_and(|id| id.len() == 36));
    }
    // The payload reached the function as it was sent, not as an HTTP event.
    assert_eq!(gw.record("hello").events()[0], json!({"n": 42}));
    // `Qualifier`, as SDKs send it: only the version a pod runs.
    let r = testing::send(gw.admin, invoke("hello?Qualifier=%24LATEST", "{}", &[])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // An empty payload is one too (the AWS CLI sends it without --payload).
    let r = testing::send(gw.admin, invoke("worker", "", &[])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_function_error_is_a_200_marked_unhandled_with_the_errors_payload() {
    let fakes = Fakes::new().script("hello", |_| Reply::Error("Boom".into()));
    let gw = Running::start(config(&[]), functions(), fakes).await;
    let r = testing::send(gw.admin, invoke("hello", "{}", &[])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(r.json()["errorType"], "Boom");
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn an_unknown_function_or_version_is_lambdas_404() {
    let gw = Running::start(config(&[]), functions(), Fakes::new()).await;
    let r = testing::send(gw.admin, invoke("nope", "{}", &[])).await;
    assert_eq!(
        error(&r),
        (
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException".into(),
            json!({
                "Type": "User",
                "message": "Function not found: arn:aws:lambda:us-east-1:012345678912:function:nope"
            })
        )
    );
    for name in
        ["hello?Qualifier=3", "hello%3A3", "arn:aws:lambda:eu-west-1:012345678912:function:hello"]
    {
        let r = testing::send(gw.admin, invoke(name, "{}", &[])).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{name}");
        assert_eq!(r.header("x-amzn-errortype"), Some("ResourceNotFoundException"), "{name}");
    }
    // Not an operation at all.
    let r = testing::send(gw.admin, testing::get("/2015-03-31/functions/hello/invocations")).await;
    assert_eq!(r.header("x-amzn-errortype"), Some("UnknownOperationException"));
    gw.stop().await.expect("a clean stop");
}

/// A payload, its headers, and the status and error type they get.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);

#[tokio::test]
async fn bad_input_gets_lambdas_400s_and_413_and_the_function_never_runs() {
    let gw = Running::start(config(&[]), functions(), Fakes::new()).await;
    let cases: [Case; 6] = [
        ("not json", &[("x-amz-invocation-type", "Event")], 400, "InvalidRequestContentException"),
        ("not json", &[], 400, "InvalidRequestContentException"),
        ("{}", &[("x-amz-invocation-type", "Sometimes")], 400, "ValidationException"),
        ("{}", &[("x-amz-log-type", "Everything")], 400, "ValidationException"),
        ("{}", &[("x-amz-client-context", "bm90IGpzb24=")], 400, "InvalidParameterValueException"),
        // Lambda tails only what it answers.
        (
            "{}",
            &[("x-amz-log-type", "Tail"), ("x-amz-invocation-type", "Event")],
            400,
            "InvalidParameterValueException",
        ),
    ];
    for (payload, headers, status, kind) in cases {
        let r = testing::send(gw.admin, invoke("hello", payload, headers)).await;
        assert_eq!(r.status.as_u16(), status, "{headers:?}: {}", r.text());
        assert_eq!(r.header("x-amzn-errortype"), Some(kind), "{headers:?}");
        assert!(!r.json()["message"].as_str().unwrap_or_default().is_empty(), "{headers:?}");
    }
    let big = "x".repeat(6 * 1024 * 1024 + 1);
    let r = testing::send(gw.admin, invoke("hello", &big, &[])).await;
    assert_eq!(
        (r.status, r.header("x-amzn-errortype")),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestTooLargeException"))
    );
    // An event's limit is 1 MB.
    let big = format!("\"{}\"", "x".repeat(1024 * 1024));
    let r =
        testing::send(gw.admin, invoke("hello", &big, &[("x-amz-invocation-type", "Event")])).await;
    assert_eq!(
        (r.status, r.header("x-amzn-errortype")),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestTooLargeException"))
    );
    assert_eq!(
        r.json()["message"],
        "Request must be smaller than 1048576 bytes for the InvokeFunction operation"
    );
    assert_eq!(Record::count(&gw.record("hello").invoked), 0);
    gw.stop().await.expect("a clean stop");
}

/// Waits (in real time, at most 10 s) until `record` has seen `n`
/// invocations.
async fn invoked(record: &Record, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Record::count(&record.invoked) < n {
        assert!(std::time::Instant::now() < deadline, "{n} invocations within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_event_is_a_202_at_once_and_runs_after() {
    let fakes = Fakes::new()
        .script("hello", |_| Reply::After(Duration::from_millis(300), Box::new(http(200, "{}"))));
    let gw = Running::start(config(&[]), functions(), fakes).await;
    let started = std::time::Instant::now();
    let event = ("x-amz-invocation-type", "Event");
    let r = testing::send(gw.admin, invoke("hello", r#"{"n": 7}"#, &[event])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.body.is_empty());
    assert!(started.elapsed() < Duration::from_millis(300), "answered before the function ran");
    let record = gw.record("hello");
    invoked(&record, 1).await;
    assert_eq!(record.events()[0], json!({"n": 7}));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = gw.admin_get("/metrics").await.text();
        if metrics.contains(r#"kf_gateway_events_total{function="hello",outcome="succeeded"} 1"#) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn on_shutdown_queued_events_run_before_the_exit() {
    // One environment, 200 ms an invocation: three events take 600 ms,
    // well within the grace period.
    let fakes = Fakes::new()
        .script("hello", |_| Reply::After(Duration::from_millis(200), Box::new(http(200, "{}"))));
    let flags = ["--envs", "1", "--shutdown-delay", "0s", "--grace", "5s"];
    let gw = Running::start(config(&flags), functions(), fakes).await;
    for _ in 0..3 {
        let r =
            testing::send(gw.admin, invoke("hello", "{}", &[("x-amz-invocation-type", "Event")]))
                .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    let record = gw.record("hello");
    gw.stop().await.expect("a clean stop");
    assert_eq!(Record::count(&record.invoked), 3, "every queued event ran");
}

#[tokio::test]
async fn a_tail_is_the_invocations_last_4_kb_of_output_in_base64() {
    use base64::Engine as _;
    let fakes = Fakes::new().script("hello", |i| {
        let event: Value = serde_json::from_slice(&i.event).expect("JSON");
        let lines = event["lines"].as_u64().unwrap_or(1);
        let mut reply = http(200, "{}");
        for n in (0..lines).rev() {
            reply = Reply::Log(
                format!("{} line {n:04} {}", i.request_id, "x".repeat(80)),
                Box::new(reply),
            );
        }
        reply
    });
    let gw = Running::start(config(&[]), functions(), fakes).await;
    let decode = |r: &Answer| {
        let header = r.header("x-amz-log-result").expect("X-Amz-Log-Result");
        let bytes = base64::engine::general_purpose::STANDARD.decode(header).expect("base64");
        String::from_utf8(bytes).expect("text")
    };
    let tail = ("x-amz-log-type", "Tail");
    let r = testing::send(gw.admin, invoke("hello", r#"{"lines": 1}"#, &[tail])).await;
    let id = r.header("x-amzn-requestid").expect("an id").to_owned();
    assert_eq!(decode(&r), format!("{id} line 0000 {}\n", "x".repeat(80)));
    // Only this invocation's lines, and only the last 4 KB of them.
    let r = testing::send(gw.admin, invoke("hello", r#"{"lines": 100}"#, &[tail])).await;
    let id = r.header("x-amzn-requestid").expect("an id").to_owned();
    let log = decode(&r);
    assert_eq!(log.len(), 4096);
    assert!(log.ends_with(&format!("{id} line 0099 {}\n", "x".repeat(80))), "{log}");
    assert!(log.lines().skip(1).all(|l| l.starts_with(&id)), "{log}");
    // Without Tail, no log.
    let r = testing::send(gw.admin, invoke("hello", r#"{"lines": 1}"#, &[])).await;
    assert_eq!(r.header("x-amz-log-result"), None);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_dry_run_is_a_204_and_runs_nothing() {
    let gw = Running::start(config(&[]), functions(), Fakes::new()).await;
    let r = testing::send(gw.admin, invoke("hello", "{}", &[("x-amz-invocation-type", "DryRun")]))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    assert_eq!(Record::count(&gw.record("hello").started), 0);
    let r =
        testing::send(gw.admin, invoke("nope", "{}", &[("x-amz-invocation-type", "DryRun")])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_client_context_reaches_the_runtime_decoded() {
    let fakes = Fakes::new().script("hello", |i| {
        Reply::Payload(Bytes::from(i.client_context.clone().unwrap_or_else(|| "null".into())))
    });
    let gw = Running::start(config(&[]), functions(), fakes).await;
    // base64 of {"custom":{"k":"v"}}
    let context = ("x-amz-client-context", "eyJjdXN0b20iOnsiayI6InYifX0=");
    let r = testing::send(gw.admin, invoke("hello", "{}", &[context])).await;
    assert_eq!(r.json(), json!({"custom": {"k": "v"}}));
    let r = testing::send(gw.admin, invoke("hello", "{}", &[])).await;
    assert_eq!(r.json(), Value::Null);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn both_doors_share_one_queue() {
    // One environment, no queue: whoever holds it, the other door is full.
    let fakes = Fakes::new()
        .script("hello", |_| Reply::After(Duration::from_millis(400), Box::new(http(200, "{}"))));
    let gw = Running::start(config(&["--envs", "1", "--queue", "0"]), functions(), fakes).await;
    let addr = gw.addr;
    let held =
        tokio::spawn(async move { testing::send(addr, testing::post("/hello", "{}")).await });
    // The HTTP request has its place once the fake has been invoked.
    let record = gw.record("hello");
    while Record::count(&record.invoked) == 0 {
        tokio::task::yield_now().await;
    }
    let r = testing::send(gw.admin, invoke("hello", "{}", &[])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.header("x-amzn-errortype"), Some("TooManyRequestsException"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["Reason"], "ConcurrentInvocationLimitExceeded");
    assert_eq!(held.await.expect("the held request").status, StatusCode::OK);
    // And the other way round.
    let admin = gw.admin;
    let held = tokio::spawn(async move { testing::send(admin, invoke("hello", "{}", &[])).await });
    while Record::count(&record.invoked) < 2 {
        tokio::task::yield_now().await;
    }
    let r = gw.post("/hello", "{}").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(held.await.expect("the held invocation").status, StatusCode::OK);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn long_calls_cannot_take_the_admin_port_from_the_probes() {
    // One environment that never answers (within the function's 3 s
    // Timeout), and room for every call in the pool's queue: only the cap
    // on calls in progress stops them.
    let fakes = Fakes::new().script("hello", |_| Reply::Hang);
    let gw = Running::start(config(&["--envs", "1", "--queue", "500"]), functions(), fakes).await;
    let cap = gateway::invoke_api::MAX_CONCURRENT_CALLS;
    let admin = gw.admin;
    let calls: Vec<_> = (0..cap)
        .map(|_| {
            tokio::spawn(async move { testing::send(admin, invoke("hello", "{}", &[])).await })
        })
        .collect();
    // Every call in progress: the queue depth counts all but the running one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let waiting = format!(r#"kf_gateway_queue_depth{{function="hello"}} {}"#, cap - 1);
    while !gw.admin_get("/metrics").await.text().contains(&waiting) {
        assert!(std::time::Instant::now() < deadline, "{cap} calls in progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = testing::send(gw.admin, invoke("hello", "{}", &[])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap_or_default().contains("in progress"));
    // The probe still gets in, at once.
    let probe = tokio::time::timeout(Duration::from_secs(1), gw.admin_get("/healthz")).await;
    assert_eq!(probe.expect("the probe answered within 1 s").status, StatusCode::OK);
    for call in calls {
        call.abort();
    }
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn an_answer_the_budget_cannot_hold_is_a_429() {
    // 3 MiB of budget; the function answers 2 MiB, which with its parsing
    // costs more than is left.
    let fakes =
        Fakes::new().script("hello", |_| Reply::Payload(Bytes::from(vec![b' '; 2 * 1024 * 1024])));
    let gw = Running::start(config(&["--memory-budget", "3Mi"]), functions(), fakes).await;
    let r = testing::send(gw.admin, invoke("hello", "{}", &[])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.header("x-amzn-errortype"), Some("TooManyRequestsException"));
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_invoke_api_is_not_on_the_public_port() {
    let gw = Running::start(config(&[]), functions(), Fakes::new()).await;
    let r = gw.send(invoke("hello", "{}", &[])).await;
    assert_eq!((r.status, r.json()), (StatusCode::NOT_FOUND, json!({"message": "Not Found"})));
    assert_eq!(Record::count(&gw.record("hello").invoked), 0);
    gw.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn invocations_are_counted_in_the_metrics() {
    let gw = Running::start(config(&[]), functions(), Fakes::new()).await;
    testing::send(gw.admin, invoke("hello", "{}", &[])).await;
    testing::send(gw.admin, invoke("nope", "{}", &[])).await;
    let metrics = gw.admin_get("/metrics").await.text();
    for line in [
        r#"kf_gateway_requests_total{route="Invoke API",status="200"} 1"#,
        r#"kf_gateway_requests_total{route="Invoke API",status="404"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    gw.stop().await.expect("a clean stop");
}
