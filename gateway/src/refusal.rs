//! Every way the gateway answers a request itself, instead of the function
//! behind the route: one enum, and one mapping from it to a response.
//!
//! The statuses and bodies are API Gateway's HTTP API's where it has one
//! (its `{"message": ...}` body, its 404, 413, 429, 500 and 503), so that a
//! client sees the same answers from a pod as from AWS. Each step of the
//! request's pipeline ([`crate::proxy`], [`crate::intake`]) returns a
//! `Refusal`, and only [`Refusal::response`] turns it into HTTP: a test
//! enumerates [`Refusal::ALL`] against the table in `docs/api.md`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// A request the gateway answers itself. See [`Refusal::when`] for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    HeaderFieldsTooLarge,
    PayloadTooLarge,
    Throttled,
    Unauthorized,
    Forbidden,
    BodyTimeout,
    BadRequest,
    QueueFull,
    OverBudget,
    ShuttingDown,
    IntegrationTimeout,
    FunctionError,
    AuthorizerError,
    MalformedResponse,
    EnvironmentFailed,
    Internal,
}

impl Refusal {
    /// Every refusal, in the order of the documentation's table.
    pub const ALL: [Refusal; 17] = [
        Refusal::NotFound,
        Refusal::HeaderFieldsTooLarge,
        Refusal::PayloadTooLarge,
        Refusal::Throttled,
        Refusal::Unauthorized,
        Refusal::Forbidden,
        Refusal::BodyTimeout,
        Refusal::BadRequest,
        Refusal::QueueFull,
        Refusal::OverBudget,
        Refusal::ShuttingDown,
        Refusal::IntegrationTimeout,
        Refusal::FunctionError,
        Refusal::AuthorizerError,
        Refusal::MalformedResponse,
        Refusal::EnvironmentFailed,
        Refusal::Internal,
    ];

    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::HeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::QueueFull
            | Refusal::OverBudget
            | Refusal::ShuttingDown
            | Refusal::IntegrationTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::FunctionError | Refusal::AuthorizerError | Refusal::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Refusal::MalformedResponse | Refusal::EnvironmentFailed => StatusCode::BAD_GATEWAY,
        }
    }

    /// The body's `message`: the status's reason phrase, as API Gateway
    /// writes it.
    pub fn message(self) -> &'static str {
        match self.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
            status => status.canonical_reason().unwrap_or("Error"),
        }
    }

    /// Whether trying again soon may succeed: the gateway is full now, not
    /// the request wrong. The integration timeout has none: retrying will
    /// not make the function faster.
    pub fn retry_after(self) -> bool {
        matches!(self, Refusal::QueueFull | Refusal::OverBudget | Refusal::ShuttingDown)
    }

    /// When the gateway answers so, for the documentation's table.
    pub fn when(self) -> &'static str {
        match self {
            Refusal::NotFound => {
                "no route matches the method and path, or its function is not served in this pod \
                 (`--functions`)"
            }
            Refusal::HeaderFieldsTooLarge => {
                "the request line and header values add up to more than 10,240 bytes, the HTTP \
                 API's quota"
            }
            Refusal::PayloadTooLarge => {
                "the body is over 6 MB, Lambda's payload limit (said by `Content-Length` before \
                 it is read, or found while reading), or could never fit the memory budget"
            }
            Refusal::Throttled => "the route's token bucket is empty (only with `--throttle true`)",
            Refusal::Unauthorized => {
                "the route has an authorizer and the request no `Authorization` header (the \
                 authorizer is not called)"
            }
            Refusal::Forbidden => {
                "the authorizer denied the request (or denied it within `ReauthorizeEvery`)"
            }
            Refusal::BodyTimeout => "the body did not arrive within 10 s",
            Refusal::BadRequest => {
                "a header value is not UTF-8 text, which a Lambda event (JSON) cannot carry; or \
                 the body's framing broke, or the connection did, mid-body"
            }
            Refusal::QueueFull => {
                "every environment of the function is busy and its queue (`--queue`) is full"
            }
            Refusal::OverBudget => {
                "the bytes the request would hold do not fit the memory budget now"
            }
            Refusal::ShuttingDown => "the gateway is shutting down",
            Refusal::IntegrationTimeout => {
                "the route's integration timeout (`TimeoutInMillis`, at most 30 s) passed, waiting \
                 included, before the function answered; the invocation runs on to its end"
            }
            Refusal::FunctionError => {
                "the function failed: it reported an error, ran past its `Timeout` (its \
                 environment is replaced), crashed, exited, failed its init, or answered over 6 MB"
            }
            Refusal::AuthorizerError => {
                "the authorizer failed, timed out or gave an answer that is not one"
            }
            Refusal::MalformedResponse => {
                "the function's response is not a valid HTTP API response"
            }
            Refusal::EnvironmentFailed => "the execution environment died under the request",
            Refusal::Internal => {
                "a bug in the gateway (a panic, an event that would not serialize)"
            }
        }
    }

    /// The one response for this refusal.
    pub fn response(self) -> Response<Full<Bytes>> {
        let mut response = message(self.status(), self.message());
        if self.retry_after() {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }

    /// The refusals as a Markdown table, for `docs/api.md`.
    pub fn table() -> String {
        let mut table =
            String::from("| Status | Body | `Retry-After` | When |\n|---|---|---|---|\n");
        for refusal in Refusal::ALL {
            table.push_str(&format!(
                "| {} | `{{\"message\":\"{}\"}}` | {} | {} |\n",
                refusal.status().as_u16(),
                refusal.message(),
                if refusal.retry_after() { "`1`" } else { "no" },
                refusal.when()
            ));
        }
        table
    }
}

/// API Gateway's error body, `{"message": "Not Found"}`.
#[derive(Serialize)]
struct ErrorMessage<'a> {
    message: &'a str,
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    // Our bodies are plain structs of strings, which always serialize.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// API Gateway's `{"message": ...}` body.
pub fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    json(status, &ErrorMessage { message: text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn all_is_every_variant_once_in_order() {
        for (i, refusal) in Refusal::ALL.into_iter().enumerate() {
            assert_eq!(refusal as usize, i, "{refusal:?} is out of place in ALL");
        }
        assert_eq!(
            Refusal::ALL.len(),
            Refusal::Internal as usize + 1,
            "a variant is missing from ALL"
        );
    }

    #[tokio::test]
    async fn each_response_is_its_status_body_and_retry_after() {
        for refusal in Refusal::ALL {
            let response = refusal.response();
            assert_eq!(response.status(), refusal.status(), "{refusal:?}");
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            assert_eq!(
                response.headers().contains_key(RETRY_AFTER),
                refusal.retry_after(),
                "{refusal:?}"
            );
            let body = response.into_body().collect().await.expect("body").to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(body, serde_json::json!({"message": refusal.message()}), "{refusal:?}");
        }
        // API Gateway's own wording, where it differs from a reason phrase.
        assert_eq!(Refusal::PayloadTooLarge.message(), "Request Entity Too Large");
        assert_eq!(Refusal::Throttled.message(), "Too Many Requests");
        assert_eq!(Refusal::IntegrationTimeout.message(), "Service Unavailable");
        assert!(!Refusal::IntegrationTimeout.retry_after());
    }

    /// docs/api.md's table of the gateway's own answers is `table()`;
    /// `KF_BLESS=1 cargo test -p gateway --lib refusals` rewrites it.
    #[test]
    fn the_documented_refusals_are_the_gateways() {
        crate::testing::documented("docs/api.md", "refusals", &Refusal::table());
    }
}
