//! A Lambda extension for the tests, written on `lambda_extension` (the
//! field's own crate), as a team would write a telemetry or secrets agent.
//!
//! It registers for `INVOKE` and `SHUTDOWN` and appends one JSON line per
//! thing it sees to the file `COUNTER_EXTENSION_OUT` names: what
//! registration answered, each `INVOKE` (its request id, deadline and ARN),
//! and `SHUTDOWN` (its reason, and how many INVOKEs came before it), after
//! which it exits. The tests read that file to compare the gateway's
//! Extensions API with the AWS RIE's: same answers, same events, same
//! order.
//!
//! `COUNTER_EXTENSION_DELAY_MS` makes it work that long after each INVOKE
//! before asking for the next event (post-invocation work, which holds the
//! environment: the invocation is not over until it asks).

use lambda_extension::{Error, Extension, LambdaEvent, NextEvent, service_fn};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn record(out: &Option<String>, line: serde_json::Value) -> std::io::Result<()> {
    if let Some(out) = out {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let out = std::env::var("COUNTER_EXTENSION_OUT").ok();
    let delay = std::env::var("COUNTER_EXTENSION_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let invokes = Arc::new(Mutex::new(0_u64));
    let registered = Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(service_fn({
            let out = out.clone();
            move |event: LambdaEvent| {
                let out = out.clone();
                let invokes = invokes.clone();
                async move {
                    match event.next {
                        NextEvent::Invoke(invoke) => {
                            *invokes.lock().unwrap() += 1;
                            record(
                                &out,
                                serde_json::json!({
                                    "event": "INVOKE",
                                    "request_id": invoke.request_id,
                                    "arn": invoke.invoked_function_arn,
                                    "deadline_in_future": u128::from(invoke.deadline_ms) > now_ms(),
                                }),
                            )?;
                            if let Some(delay) = delay {
                                tokio::time::sleep(delay).await;
                            }
                        }
                        NextEvent::Shutdown(shutdown) => {
                            record(
                                &out,
                                serde_json::json!({
                                    "event": "SHUTDOWN",
                                    "reason": shutdown.shutdown_reason,
                                    "invokes": *invokes.lock().unwrap(),
                                    "deadline_in_future": u128::from(shutdown.deadline_ms) > now_ms(),
                                }),
                            )?;
                            std::process::exit(0);
                        }
                    }
                    Ok::<(), Error>(())
                }
            }
        }))
        .register()
        .await?;
    record(
        &out,
        serde_json::json!({
            "event": "REGISTER",
            "function_name": registered.function_name,
            "function_version": registered.function_version,
            "handler": registered.handler,
            "account_id": registered.account_id,
        }),
    )?;
    registered.run().await
}
