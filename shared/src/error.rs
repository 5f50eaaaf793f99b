//! The crate's one error type: everything a request can do wrong.
//!
//! It stays a Rust value here; the function binaries turn it into an HTTP
//! status and a JSON body at the edge, using [`ApiError::status`] and
//! [`ApiError::body`].

use crate::models::{ErrorMessage, HttpValidationError, ValidationError};
use serde::Serialize;

/// A request the API refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not what the endpoint accepts (422).
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<ValidationError>),
    /// No route has this path (404).
    #[error("no route for {path}")]
    NotFound {
        /// The path that was asked for.
        path: String,
    },
    /// The body is larger than the endpoint's model could ever be (413).
    #[error("the body is {size} bytes; this endpoint takes at most {limit}")]
    PayloadTooLarge {
        /// The body's size.
        size: usize,
        /// The most the endpoint reads.
        limit: usize,
    },
    /// The path exists but not with this method (405).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method that was used.
        method: String,
        /// The path that was asked for.
        path: String,
        /// The methods the path does serve, for the `Allow` header.
        allow: Vec<&'static str>,
    },
}

fn summary(errors: &[ValidationError]) -> String {
    errors.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>().join("; ")
}

/// The JSON body of an error response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ErrorBody {
    /// FastAPI's 422 shape.
    Validation(HttpValidationError),
    /// API Gateway's `{"message": ...}` shape.
    Message(ErrorMessage),
}

impl ApiError {
    /// The HTTP status code for this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation(_) => 422,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::PayloadTooLarge { .. } => 413,
        }
    }

    /// The JSON body for this error.
    pub fn body(&self) -> ErrorBody {
        match self {
            ApiError::Validation(detail) => {
                ErrorBody::Validation(HttpValidationError { detail: detail.clone() })
            }
            ApiError::NotFound { .. } => {
                ErrorBody::Message(ErrorMessage { message: "Not Found".to_owned() })
            }
            ApiError::MethodNotAllowed { .. } => {
                ErrorBody::Message(ErrorMessage { message: "Method Not Allowed".to_owned() })
            }
            ApiError::PayloadTooLarge { .. } => {
                ErrorBody::Message(ErrorMessage { message: self.to_string() })
            }
        }
    }

    /// The value of the `Allow` header, for a 405.
    pub fn allow(&self) -> Option<String> {
        match self {
            ApiError::MethodNotAllowed { allow, .. } => Some(allow.join(", ")),
            _ => None,
        }
    }
}
