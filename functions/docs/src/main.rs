//! `GET /openapi.json` and the Swagger UI under `/docs`, as a Lambda
//! function. Under `cargo lambda watch` it also receives every unknown path,
//! and answers 404 for it.

mod handler;

/// One invocation at a time is all a Lambda execution environment ever gets,
/// so a single-threaded runtime does the job without thread hand-offs.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let docs = handler::Docs::new();
    edge::run(|request| docs.handle(request)).await
}
