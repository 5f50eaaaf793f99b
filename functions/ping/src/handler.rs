//! Answers `GET /ping`, and 404/405 for anything else.

use lambda_http::{Body, Request, Response};
use shared::ApiError;
use shared::models::PingResponse;
use std::convert::Infallible;

/// This function's name in the route table.
const FUNCTION: &str = "ping";

/// The Lambda handler: every request gets a well-formed response.
pub async fn handle(request: Request) -> Result<Response<Body>, Infallible> {
    edge::answer(respond(&request))
}

fn respond(request: &Request) -> Result<Response<Body>, ApiError> {
    edge::resolve(FUNCTION, request)?;
    Ok(edge::json(200, &PingResponse::pong()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge::testing::{EventBody, SOURCES, event, invoke};
    use serde_json::json;

    #[tokio::test]
    async fn pongs_from_every_source() {
        for source in SOURCES {
            let reply = invoke(handle, event(source, "GET", "/ping", EventBody::None)).await;
            assert_eq!(reply.status, 200, "{source:?}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert_eq!(reply.json(), json!({"ping": "pong!"}));
        }
    }

    #[tokio::test]
    async fn other_methods_and_paths_are_refused() {
        for source in SOURCES {
            let reply = invoke(handle, event(source, "POST", "/ping", EventBody::Text("{}"))).await;
            assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")), "{source:?}");
            let reply = invoke(handle, event(source, "GET", "/pong", EventBody::None)).await;
            assert_eq!(reply.status, 404, "{source:?}");
            assert_eq!(reply.json(), json!({"message": "Not Found"}));
        }
    }
}
