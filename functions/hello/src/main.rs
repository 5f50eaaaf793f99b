//! `POST /api/v1/hello` as a Lambda function: factors `n` (or a random
//! number) and says how long it took.

mod handler;

/// One invocation at a time is all a Lambda execution environment ever gets,
/// so a single-threaded runtime does the job without thread hand-offs.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    edge::run(handler::handle).await
}
