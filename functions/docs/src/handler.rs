//! Serves the OpenAPI document and the Swagger UI bundled into the binary
//! (no CDN: the docs work offline and behind any firewall).

use lambda_http::http::HeaderValue;
use lambda_http::http::header::{CACHE_CONTROL, LOCATION};
use lambda_http::{Body, Request, Response};
use shared::ApiError;
use shared::routes::Endpoint;
use std::convert::Infallible;
use std::sync::Arc;
use utoipa_swagger_ui::Config;

/// This function's name in the route table.
const FUNCTION: &str = "docs";

/// Where Swagger UI fetches the document from, relative to its page under
/// `/docs/`, so that it also resolves behind a stage prefix (`/Prod/docs/`).
const SPEC_URL: &str = "../openapi.json";

/// What the function builds once per execution environment.
pub struct Docs {
    /// The OpenAPI document, serialized once.
    openapi: String,
    /// Swagger UI's settings, pointing it at [`SPEC_URL`].
    swagger: Arc<Config<'static>>,
}

impl Docs {
    /// Renders the document and the UI's settings.
    pub fn new() -> Self {
        Self { openapi: shared::openapi::openapi_json(), swagger: Arc::new(Config::from(SPEC_URL)) }
    }

    /// The Lambda handler: every request gets a well-formed response.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        edge::answer(self.respond(&request))
    }

    fn respond(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let route = edge::resolve(FUNCTION, request)?;
        let path = edge::route_path(request);
        match route.endpoint {
            Endpoint::OpenApi => {
                Ok(edge::with_body(200, edge::APPLICATION_JSON, Body::Text(self.openapi.clone())))
            }
            // The UI's files are linked relative to the page, so the page must
            // be under `/docs/`. `docs/index.html` relative to `/docs` is that
            // on any stage prefix, and matches the greedy `/docs/{proxy+}` route
            // (which `/docs/` alone, with an empty rest, would not).
            Endpoint::Docs if path == "/docs" => {
                let mut response = edge::with_body(308, "text/plain", Body::Empty);
                response
                    .headers_mut()
                    .insert(LOCATION, HeaderValue::from_static("docs/index.html"));
                Ok(response)
            }
            Endpoint::Docs => self.swagger_file(path.trim_start_matches("/docs/")),
            Endpoint::Hello | Endpoint::Ping => Err(ApiError::NotFound { path: path.to_owned() }),
        }
    }

    fn swagger_file(&self, file: &str) -> Result<Response<Body>, ApiError> {
        let not_found = || ApiError::NotFound { path: format!("/docs/{file}") };
        // `serve` fails only if the bundled initializer script is not UTF-8.
        let file_data = utoipa_swagger_ui::serve(file, self.swagger.clone())
            .ok()
            .flatten()
            .ok_or_else(not_found)?;
        let content_type = file_data.content_type;
        let bytes = file_data.bytes.into_owned();
        let body = if is_text(&content_type) {
            String::from_utf8(bytes)
                .map(Body::Text)
                .unwrap_or_else(|e| Body::Binary(e.into_bytes()))
        } else {
            Body::Binary(bytes)
        };
        let mut response = edge::with_body(200, &content_type, body);
        // The files are part of the binary: they change only with a deploy.
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        Ok(response)
    }
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.contains("javascript")
        || content_type.contains("json")
        || content_type.contains("svg")
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge::testing::{EventBody, Reply, SOURCES, Source, event, invoke};
    use serde_json::json;

    async fn get(source: Source, path: &str) -> Reply {
        let docs = Docs::new();
        invoke(|r| docs.handle(r), event(source, "GET", path, EventBody::None)).await
    }

    #[tokio::test]
    async fn serves_the_openapi_document() {
        for source in SOURCES {
            let reply = get(source, "/openapi.json").await;
            assert_eq!(reply.status, 200, "{source:?}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
            let doc = reply.json();
            assert!(doc["paths"]["/api/v1/hello"]["post"].is_object());
            assert!(doc["paths"]["/ping"]["get"].is_object());
        }
    }

    #[tokio::test]
    async fn serves_swagger_ui_offline() {
        for source in SOURCES {
            let reply = get(source, "/docs").await;
            assert_eq!(
                (reply.status, reply.header("location")),
                (308, Some("docs/index.html")),
                "{source:?}"
            );

            let reply = get(source, "/docs/").await;
            assert_eq!(reply.status, 200, "{source:?}");
            assert!(reply.header("content-type").is_some_and(|c| c.starts_with("text/html")));
            let page = String::from_utf8(reply.body).expect("html");
            assert!(page.contains("swagger-ui-bundle.js"), "{page}");
            assert!(!page.contains("https://"), "no CDN links: {page}");

            let reply = get(source, "/docs/swagger-initializer.js").await;
            let script = String::from_utf8(reply.body).expect("js");
            assert!(script.contains(SPEC_URL), "{script}");

            let reply = get(source, "/docs/swagger-ui-bundle.js").await;
            assert_eq!(reply.status, 200);
            assert!(reply.body.len() > 100_000, "the whole bundle: {} bytes", reply.body.len());

            let reply = get(source, "/docs/favicon-32x32.png").await;
            assert_eq!((reply.status, reply.base64), (200, true), "{source:?}");
            assert_eq!(&reply.body[1..4], b"PNG");
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        for source in SOURCES {
            for path in ["/", "/nope", "/docs/nope.js", "/api/v1/hello"] {
                let reply = get(source, path).await;
                assert_eq!(reply.status, 404, "{source:?} {path}");
                assert_eq!(reply.json(), json!({"message": "Not Found"}));
            }
            let docs = Docs::new();
            let reply = invoke(
                |r| docs.handle(r),
                event(source, "DELETE", "/openapi.json", EventBody::None),
            )
            .await;
            assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")), "{source:?}");
        }
    }
}
