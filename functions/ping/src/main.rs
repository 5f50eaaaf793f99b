//! `GET /ping` as a Lambda function: `{"ping":"pong!"}`.

mod handler;

/// One invocation at a time is all a Lambda execution environment ever gets,
/// so a single-threaded runtime does the job without thread hand-offs.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    edge::run(handler::handle).await
}
