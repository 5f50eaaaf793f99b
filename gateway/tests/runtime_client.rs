//! The gateway's Runtime API driving the real `lambda_runtime` client, the
//! one every function of the project is built on: events and their context
//! reach the handler, and its answers, errors, panics and oversized
//! responses come back as Lambda reports them.
//!
//! `harness = false`: the client reads `AWS_LAMBDA_RUNTIME_API` and the
//! function's settings from the environment, which is set here before any
//! other thread exists.

use bytes::Bytes;
use gateway::runtime_api::{Invocation, MAX_PAYLOAD_BYTES, Phase, Reply, RuntimeApi};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::time::Duration;

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let context = event.context;
    match event.payload["do"].as_str() {
        Some("echo") => Ok(json!({
            "request_id": context.request_id,
            "deadline": context.deadline,
            "arn": context.invoked_function_arn,
            "trace": context.xray_trace_id,
            "client_custom": context.client_context.map(|c| c.custom),
            "identity_pool": context.identity.map(|i| i.identity_pool_id),
            "function": context.env_config.function_name,
            "memory": context.env_config.memory,
            "event": event.payload,
        })),
        Some("fail") => Err("deliberate failure".into()),
        Some("panic") => panic!("deliberate panic"),
        Some("big") => Ok(Value::String("a".repeat(MAX_PAYLOAD_BYTES))),
        _ => Ok(json!("unknown")),
    }
}

fn invocation(id: &str, event: Value) -> Invocation {
    Invocation {
        request_id: id.into(),
        deadline_ms: 1_796_006_599_123,
        function_arn: hyper::header::HeaderValue::from_static(
            "arn:aws:lambda:us-east-1:012345678912:function:client-test",
        ),
        trace_id: Some(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
        ),
        client_context: Some(
            r#"{"client":{"installationId":"i","appTitle":"t","appVersionName":"1","appVersionCode":"1","appPackageName":"p"},"custom":{"k":"v"},"env":{}}"#
                .into(),
        ),
        cognito_identity: Some(
            r#"{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}"#.into(),
        ),
        event: Bytes::from(event.to_string()),
        account: gateway::budget::Account::unlimited(),
    }
}

async fn reply(api: &RuntimeApi, id: &str, event: Value) -> Reply {
    let pending = api.submit(invocation(id, event));
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap_or_else(|_| panic!("{id}: no reply within 10 s"))
        .unwrap_or_else(|_| panic!("{id}: the invocation was dropped"))
}

fn main() {
    // The handler's deliberate panic is caught by lambda_runtime; say so in
    // one line instead of a backtrace that reads like a failure.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() == Some(&"deliberate panic") {
            eprintln!("(the handler's deliberate panic, which lambda_runtime catches)");
        } else {
            report(info);
        }
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime");
    runtime.block_on(async {
        let api = RuntimeApi::start().await.expect("start the Runtime API");
        // SAFETY: this process has one thread (a current-thread runtime, no
        // test harness), so nothing reads the environment concurrently.
        unsafe {
            std::env::set_var("AWS_LAMBDA_RUNTIME_API", api.address().to_string());
            std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "client-test");
            std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512");
            std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
        }
        assert_eq!(*api.phase().borrow(), Phase::Initializing);
        let client = lambda_runtime::run(service_fn(handler));
        let checks = async {
            let mut phase = api.phase();
            phase.wait_for(|p| *p == Phase::Ready).await.expect("the client polls");

            let Reply::Response(out) = reply(&api, "req-1", json!({"do": "echo", "n": 7})).await
            else {
                panic!("echo failed")
            };
            let out: Value = serde_json::from_slice(&out).expect("JSON");
            assert_eq!(out["request_id"], "req-1");
            assert_eq!(out["deadline"], 1_796_006_599_123u64);
            assert_eq!(out["arn"], "arn:aws:lambda:us-east-1:012345678912:function:client-test");
            assert_eq!(
                out["trace"],
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
            );
            assert_eq!(out["client_custom"], json!({"k": "v"}));
            assert_eq!(out["identity_pool"], "pool-1");
            assert_eq!((&out["function"], &out["memory"]), (&json!("client-test"), &json!(512)));
            assert_eq!(out["event"], json!({"do": "echo", "n": 7}));

            let Reply::Error { error_type, payload } =
                reply(&api, "req-2", json!({"do": "fail"})).await
            else {
                panic!("a failure is an error reply")
            };
            let payload: Value = serde_json::from_slice(&payload).expect("JSON");
            assert_eq!(payload["errorMessage"], "deliberate failure", "{error_type}");

            let Reply::Error { payload, .. } = reply(&api, "req-3", json!({"do": "panic"})).await
            else {
                panic!("a panic is an error reply")
            };
            assert!(String::from_utf8_lossy(&payload).contains("deliberate panic"));

            // The client keeps serving after an error and a panic.
            let again = reply(&api, "req-4", json!({"do": "nothing"})).await;
            assert_eq!(again, Reply::Response(Bytes::from_static(b"\"unknown\"")));

            // A response over the limit: the client is refused (413) and
            // the invocation fails as on Lambda.
            let Reply::Error { error_type, .. } = reply(&api, "req-5", json!({"do": "big"})).await
            else {
                panic!("an oversized response is an error reply")
            };
            assert_eq!(error_type, "Function.ResponseSizeTooLarge");
        };
        tokio::select! {
            ended = client => panic!("the runtime client stopped: {ended:?}"),
            () = checks => {}
        }
    });
    println!("runtime_client: 1 passed, 0 failed");
}
