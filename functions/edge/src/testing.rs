//! Recorded Lambda events of every HTTP source, fed through the real
//! `lambda_http` conversions, for the functions' tests.
//!
//! The fixtures under `fixtures/events/` were recorded from each source (and
//! trimmed of account data); [`event`] points one at a method, path and body.
//! [`invoke`] runs a handler the way `lambda_http::run` does, event JSON in
//! and response JSON out, and reads the response back per source.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt as _;
use lambda_http::{Adapter, Body, Context, LambdaEvent, Request, Response, service_fn};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;

/// Where an HTTP request reached the function from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// API Gateway HTTP API, payload format 2.0 (what `template.yaml` uses).
    HttpApi,
    /// API Gateway REST API, payload format 1.0, on a named stage.
    RestApi,
    /// Application Load Balancer target group.
    Alb,
    /// Lambda Function URL (a 2.0 payload with `$default` route).
    FunctionUrl,
}

/// Every source, for tests that loop over them.
pub const SOURCES: [Source; 4] =
    [Source::HttpApi, Source::RestApi, Source::Alb, Source::FunctionUrl];

impl Source {
    fn fixture(self) -> &'static str {
        match self {
            Source::HttpApi => include_str!("../../../fixtures/events/apigw-v2-http-api.json"),
            Source::RestApi => include_str!("../../../fixtures/events/apigw-v1-rest-api.json"),
            Source::Alb => include_str!("../../../fixtures/events/alb.json"),
            Source::FunctionUrl => include_str!("../../../fixtures/events/function-url.json"),
        }
    }
}

/// A request body for [`event`].
#[derive(Debug, Clone, Copy)]
pub enum EventBody<'a> {
    /// No body at all.
    None,
    /// A text body, sent as is.
    Text(&'a str),
    /// A binary body, which every source sends base64-encoded.
    Binary(&'a [u8]),
}

/// The recorded event of `source`, for `method` and `path` with `body`.
pub fn event(source: Source, method: &str, path: &str, body: EventBody<'_>) -> Value {
    let mut event: Value = serde_json::from_str(source.fixture()).expect("fixtures are valid JSON");
    let (body, base64) = match body {
        EventBody::None => (Value::Null, false),
        EventBody::Text(text) => (json!(text), false),
        EventBody::Binary(bytes) => (json!(BASE64.encode(bytes)), true),
    };
    event["body"] = body;
    event["isBase64Encoded"] = json!(base64);
    match source {
        Source::HttpApi | Source::FunctionUrl => {
            event["rawPath"] = json!(path);
            event["requestContext"]["http"]["method"] = json!(method);
            event["requestContext"]["http"]["path"] = json!(path);
            if source == Source::HttpApi {
                let route_key = format!("ANY {path}");
                event["routeKey"] = json!(route_key);
                event["requestContext"]["routeKey"] = json!(route_key);
            }
        }
        Source::RestApi => {
            event["resource"] = json!(path);
            event["path"] = json!(path);
            event["httpMethod"] = json!(method);
            event["requestContext"]["httpMethod"] = json!(method);
            event["requestContext"]["resourcePath"] = json!(path);
            event["requestContext"]["path"] = json!(format!("/Prod{path}"));
        }
        Source::Alb => {
            event["httpMethod"] = json!(method);
            event["path"] = json!(path);
        }
    }
    event
}

/// A function's response, read back from the source's response format.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Headers, names lower-cased, every value kept.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The body, base64-decoded when the response says it is encoded.
    pub body: Vec<u8>,
    /// Whether the response body was base64-encoded.
    pub base64: bool,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }
}

/// Runs `handler` on `event` exactly as `lambda_http::run` would: the event
/// JSON is deserialized into `lambda_http`'s request type, converted to an
/// `http::Request`, handled, and the response converted back into the
/// source's response format, serialized to JSON and read back.
pub async fn invoke<F, Fut>(handler: F, event: Value) -> Reply
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send,
{
    let payload: LambdaRequest =
        serde_json::from_value(event).expect("lambda_http accepts the event");
    let adapter = Adapter::from(service_fn(handler));
    let response = adapter
        .oneshot(LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap_or_else(|never| match never {});
    let response = serde_json::to_value(&response).expect("responses serialize");
    read_reply(&response)
}

fn read_reply(response: &Value) -> Reply {
    let status = response["statusCode"].as_u64().expect("statusCode") as u16;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // ALB answers with both maps, the same headers in each; prefer the
    // multi-value map where present, as the load balancer does.
    let multi = response["multiValueHeaders"].as_object().filter(|m| !m.is_empty());
    if let Some(multi) = multi {
        for (name, values) in multi {
            let values = values.as_array().expect("multi-value header").iter();
            headers
                .entry(name.to_lowercase())
                .or_default()
                .extend(values.map(|v| v.as_str().expect("header value").to_owned()));
        }
    } else if let Some(single) = response["headers"].as_object() {
        for (name, value) in single {
            headers
                .entry(name.to_lowercase())
                .or_default()
                .push(value.as_str().expect("header value").to_owned());
        }
    }
    if let Some(cookies) = response["cookies"].as_array() {
        for cookie in cookies {
            headers
                .entry("set-cookie".to_owned())
                .or_default()
                .push(cookie.as_str().expect("cookie").to_owned());
        }
    }
    let base64 = response["isBase64Encoded"].as_bool().unwrap_or(false);
    let text = response["body"].as_str().unwrap_or_default();
    let body =
        if base64 { BASE64.decode(text).expect("base64 body") } else { text.as_bytes().to_vec() };
    Reply { status, headers, body, base64 }
}
