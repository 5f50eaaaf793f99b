//! The OpenAPI 3 document, generated from the Rust types by `utoipa`.
//!
//! The functions below exist only to carry `#[utoipa::path]` attributes:
//! each describes one route of [`crate::routes::ROUTES`] (a test checks that
//! the two agree), and the request, response and error bodies are the types
//! of [`crate::models`] themselves.

use crate::models::{
    Algorithm, ErrorMessage, HelloRequest, HelloResponse, HttpValidationError, LocItem,
    PingResponse, ValidationError,
};
use utoipa::OpenApi;

#[utoipa::path(
    post,
    path = "/api/v1/hello",
    tag = "hello",
    summary = "Largest prime factor of a number",
    description = "Factors `n` (or a random number from the original's range) and says how long it took.",
    request_body(content = HelloRequest, example = json!({})),
    responses(
        (status = 200, description = "The factorisation", body = HelloResponse),
        (status = 405, description = "Method other than POST", body = ErrorMessage),
        (status = 413, description = "Body over 64 KiB (65,536 bytes), larger than the model could be", body = ErrorMessage),
        (status = 422, description = "Invalid body; every problem is listed", body = HttpValidationError),
    )
)]
#[allow(dead_code)]
fn hello() {}

#[utoipa::path(
    get,
    path = "/ping",
    tag = "health",
    summary = "Is the API up?",
    responses(
        (status = 200, description = "Always pong", body = PingResponse),
        (status = 405, description = "Method other than GET", body = ErrorMessage),
    )
)]
#[allow(dead_code)]
fn ping() {}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    summary = "This OpenAPI document",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json"))
)]
#[allow(dead_code)]
fn openapi_document() {}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    summary = "Swagger UI",
    responses(
        (status = 308, description = "Redirect to `/docs/index.html`, where the UI's files resolve"),
    )
)]
#[allow(dead_code)]
fn docs() {}

#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    summary = "Swagger UI files",
    params(("file" = String, Path, description = "A Swagger UI file; empty for index.html")),
    responses(
        (status = 200, description = "The file", content_type = "text/html"),
        (status = 404, description = "No such file", body = ErrorMessage),
    )
)]
#[allow(dead_code)]
fn docs_file() {}

/// The API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kf-api",
        description = "Largest prime factor as a service: one Rust API on AWS Lambda and Kubernetes.",
        license(name = "MIT"),
    ),
    paths(hello, ping, openapi_document, docs, docs_file),
    components(schemas(
        Algorithm,
        HelloRequest,
        HelloResponse,
        PingResponse,
        ErrorMessage,
        HttpValidationError,
        ValidationError,
        LocItem
    )),
    tags(
        (name = "hello", description = "The CPU-bound work"),
        (name = "health", description = "Liveness"),
        (name = "docs", description = "This documentation"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON.
pub fn openapi_json() -> String {
    // Serializing a document of plain structs and string-keyed maps cannot
    // fail; an empty string would make the docs test fail loudly.
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{CATCH_ALL, ROUTES};
    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(&openapi_json()).expect("valid JSON")
    }

    #[test]
    fn documents_every_route_and_only_those() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented = Vec::new();
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        let mut expected: Vec<_> = ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.path.replace(CATCH_ALL, "/{file}")))
            .collect();
        documented.sort();
        expected.sort();
        assert_eq!(documented, expected);
    }

    #[test]
    fn schemas_have_the_originals_field_names() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let fields = |name: &str| -> Vec<String> {
            let mut f: Vec<String> =
                schemas[name]["properties"].as_object().expect(name).keys().cloned().collect();
            f.sort();
            f
        };
        assert_eq!(
            fields("HelloResponse"),
            ["algorithm", "elapsed_time", "largest_prime_factor", "message1", "message2", "n"]
        );
        assert_eq!(fields("HTTPValidationError"), ["detail"]);
        assert_eq!(fields("ValidationError"), ["ctx", "input", "loc", "msg", "type"]);
        let hello = &doc["paths"]["/api/v1/hello"]["post"];
        assert_eq!(
            hello["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/HTTPValidationError"
        );
    }
}
