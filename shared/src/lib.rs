//! Everything the API does, with no Lambda in sight.
//!
//! The function binaries under `functions/` parse an HTTP request, call into
//! this crate and map the result to a status; this crate never sees a
//! `lambda_http` type, so all of it is tested without AWS.
//!
//! * [`factor`]: the compute, largest prime factor by trial division or
//!   Pollard-Brent rho.
//! * [`hello`]: the work behind `POST /api/v1/hello`, timing included.
//! * [`models`]: request and response bodies, in the original's field names.
//! * [`validate`]: raw body to request, or FastAPI-shaped errors.
//! * [`routes`]: the METHOD + path table every router agrees with.
//! * [`error`]: the one error type, with its status and JSON body.
//! * [`auth`]: API keys as SHA-256 hashes, and the authorizer's decision.
//! * [`openapi`]: the OpenAPI document generated from [`models`].

pub mod auth;
pub mod error;
pub mod factor;
pub mod hello;
pub mod models;
pub mod openapi;
pub mod routes;
pub mod validate;

pub use error::ApiError;
