//! The API's Lambda authorizer: `Authorization: Bearer <key>` checked
//! against the SHA-256 hashes in `KF_API_KEYS` (see `shared::auth`). API
//! Gateway's HTTP API calls it before the protected routes' function on AWS;
//! the pods' gateway calls the same binary the same way.

mod handler;

use shared::auth::{ApiKeys, KEYS_VARIABLE};

/// One invocation at a time is all a Lambda execution environment ever gets,
/// so a single-threaded runtime does the job without thread hand-offs.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Read once, at init: a list that cannot be read fails the init (Lambda
    // reports it), rather than every request.
    let keys = ApiKeys::parse(&std::env::var(KEYS_VARIABLE).unwrap_or_default())?;
    if keys.is_empty() {
        tracing::warn!("{KEYS_VARIABLE} holds no key: every request is denied");
    } else {
        tracing::info!(keys = keys.len(), "API keys loaded");
    }
    let keys = &keys;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| handler::handle(keys, event))).await
}
