//! The HTTP edge shared by the function binaries.
//!
//! A function's handler only parses input, calls `shared` and maps the
//! result to a status; this crate holds the few lines each would otherwise
//! repeat: finding the route a request asks for, writing JSON responses,
//! turning [`ApiError`] into its status and body, and starting the runtime.
//! [`testing`] feeds recorded events of every source through the real
//! `lambda_http` conversions.

pub mod testing;

use lambda_http::http::header::{ALLOW, CONTENT_TYPE};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use serde::Serialize;
use shared::ApiError;
use shared::routes::{self, Route};
use std::future::Future;

/// Content type of every JSON response.
pub const APPLICATION_JSON: &str = "application/json";

/// Runs `handler` as a Lambda function: sets up logging (JSON or text, as
/// the function's log format says), then serves invocations until the
/// runtime shuts the process down.
pub async fn run<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
{
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(handler)).await
}

/// The route of `function` that `request` asks for, or the 404/405 to send.
pub fn resolve(function: &str, request: &Request) -> Result<&'static Route, ApiError> {
    routes::resolve(function, request.method().as_str(), route_path(request))
}

/// The path the client asked for, as the route table spells it.
///
/// `lambda_http` keeps the raw path of the event. An HTTP API on a named
/// stage puts `/{stage}` in front of it (a REST API and the `$default` stage
/// do not), so that prefix is taken off.
pub fn route_path(request: &Request) -> &str {
    let path = request.raw_http_path();
    let path = if path.is_empty() { request.uri().path() } else { path };
    if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref()
        && let Some(stage) = context.stage.as_deref().filter(|s| *s != "$default")
        && let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(stage))
        && rest.starts_with('/')
    {
        return rest;
    }
    path
}

/// A JSON response with `status` and `value` as its body.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(body) => with_body(status, APPLICATION_JSON, Body::Text(body)),
        Err(e) => {
            // Our bodies are plain structs with string keys, which always
            // serialize; should one ever fail, say so instead of panicking.
            tracing::error!(error = %e, "response did not serialize");
            with_body(
                500,
                APPLICATION_JSON,
                Body::Text(r#"{"message":"Internal Server Error"}"#.into()),
            )
        }
    }
}

/// The response for a refused request: its status, JSON body, and for a 405
/// the `Allow` header.
pub fn error(err: &ApiError) -> Response<Body> {
    tracing::debug!(error = %err, status = err.status(), "request refused");
    let mut response = json(err.status(), &err.body());
    if let Some(allow) = err.allow().and_then(|a| HeaderValue::from_str(&a).ok()) {
        response.headers_mut().insert(ALLOW, allow);
    }
    response
}

/// A response with a status, a content type and a body.
pub fn with_body(status: u16, content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// The handler every function's `main` runs: the function's own `respond`,
/// with any refusal turned into its error response.
pub fn answer(
    result: Result<Response<Body>, ApiError>,
) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(result.unwrap_or_else(|err| error(&err)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{EventBody, SOURCES, Source, event};

    fn request(event: serde_json::Value) -> Request {
        lambda_http::request::from_str(&event.to_string()).expect("lambda_http accepts the event")
    }

    #[test]
    fn route_path_is_the_clients_path_from_every_source() {
        for source in SOURCES {
            let r = request(event(source, "GET", "/docs/index.css", EventBody::None));
            assert_eq!(route_path(&r), "/docs/index.css", "{source:?}");
        }
    }

    #[test]
    fn route_path_drops_a_named_http_api_stage() {
        let mut e = event(Source::HttpApi, "GET", "/prod/ping", EventBody::None);
        e["requestContext"]["stage"] = serde_json::json!("prod");
        assert_eq!(route_path(&request(e.clone())), "/ping");
        // A path that merely starts with the stage's letters keeps them.
        e["rawPath"] = serde_json::json!("/production/ping");
        assert_eq!(route_path(&request(e)), "/production/ping");
    }
}
