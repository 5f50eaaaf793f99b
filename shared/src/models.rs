//! The API's request and response bodies.
//!
//! Field names and message formats are those of the original FastAPI service,
//! so its clients keep working unchanged; additions are new optional fields.
//! Every type derives [`ToSchema`], so the OpenAPI document is generated from
//! exactly these definitions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which factoring algorithm to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Trial division: deliberately CPU-bound, like the original service, so
    /// autoscaling demos behave the same. Limited to `n <= 10^15`.
    #[default]
    Trial,
    /// Pollard-Brent rho with deterministic Miller-Rabin: any 64-bit `n` in
    /// microseconds.
    Rho,
}

impl Algorithm {
    /// The name clients send and receive.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Trial => "trial",
            Algorithm::Rho => "rho",
        }
    }
}

/// Body of `POST /api/v1/hello`. `{}` is valid; unknown fields are ignored.
///
/// The handler does not deserialize into this type directly: it goes through
/// [`crate::validate::hello_request`], which reports bad input the way FastAPI
/// does. This type documents the accepted shape and carries the result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HelloRequest {
    /// Number to factor. When absent (or null) a number is drawn uniformly
    /// from [1_250_000_000_000, 2_500_000_000_000), as in the original.
    #[schema(minimum = 2, maximum = 18446744073709551615_u64, example = 1462370954730_u64)]
    pub n: Option<u64>,
    /// Factoring algorithm; `trial` when absent (or null).
    #[serde(default)]
    pub algorithm: Algorithm,
}

/// Body of a successful `POST /api/v1/hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HelloResponse {
    /// Always `"Hello, world!"`.
    #[schema(example = "Hello, world!")]
    pub message1: String,
    /// `"The largest prime factor of {n} is {p}. Calculation took {t:.3} seconds."`
    #[schema(
        example = "The largest prime factor of 1462370954730 is 398311. Calculation took 0.000 seconds."
    )]
    pub message2: String,
    /// The number that was factored.
    #[schema(example = 1462370954730_u64)]
    pub n: u64,
    /// Its largest prime factor (`n` itself when `n` is prime).
    #[schema(example = 398311)]
    pub largest_prime_factor: u64,
    /// Compute time in seconds, without parsing or serialization.
    #[schema(example = 0.000_061)]
    pub elapsed_time: f64,
    /// The algorithm that ran.
    pub algorithm: Algorithm,
}

/// Body of `GET /ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PingResponse {
    /// Always `"pong!"`.
    #[schema(example = "pong!")]
    pub ping: String,
}

impl PingResponse {
    /// The only answer `/ping` gives.
    pub fn pong() -> Self {
        Self { ping: "pong!".to_owned() }
    }
}

/// One element of a validation error's location: a field name or an index
/// (FastAPI uses the byte offset of a JSON syntax error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    /// A field name, or `"body"` for the request body itself.
    Field(String),
    /// A position.
    Index(u64),
}

/// One problem with the request, in FastAPI's (pydantic's) shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidationError {
    /// Where the problem is, e.g. `["body", "n"]`.
    pub loc: Vec<LocItem>,
    /// What is wrong, for people.
    #[schema(example = "Input should be greater than or equal to 2")]
    pub msg: String,
    /// What is wrong, for programs (pydantic's error type names).
    #[serde(rename = "type")]
    #[schema(example = "greater_than_equal")]
    pub kind: String,
    /// The offending input, when there is one, exactly as it was sent: an
    /// integer too large for 64 bits stays that integer, not a float.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Input>,
    /// Parameters of the violated constraint, e.g. `{"ge": 2}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Value>,
}

/// A piece of a request's JSON, kept as the text that was sent: an integer
/// past 2^64 stays that integer (a `serde_json::Value` would make it a
/// float). A number beyond a double's range (`1e400`), which common JSON
/// parsers refuse, is echoed as a string of its text, so that every client
/// can still read the error.
#[derive(Debug, Clone)]
pub struct Input(Box<serde_json::value::RawValue>);

impl Input {
    /// The JSON text `raw`, as sent if common parsers read it, else as a
    /// JSON string of it.
    pub fn raw(raw: &str) -> Input {
        let text = raw.trim();
        if text.len() > Input::MAX_ECHO {
            return Input::abridged(text);
        }
        // A `Value`, not `IgnoredAny`: skipping a number does not check its range.
        if serde_json::from_str::<serde_json::Value>(text).is_ok()
            && let Ok(value) = serde_json::value::RawValue::from_string(text.to_owned())
        {
            return Input(value);
        }
        let quoted = serde_json::to_string(text).unwrap_or_else(|_| "null".to_owned());
        match serde_json::value::RawValue::from_string(quoted) {
            Ok(value) => Input(value),
            // A JSON string literal is always valid JSON.
            Err(_) => Input::from(&serde_json::Value::Null),
        }
    }

    /// The longest input echoed whole, in bytes. A Lambda function's
    /// response is at most 6 MB, so a 422 that echoed a 6 MB input whole
    /// would itself be refused, and the client would get a 500 for its bad
    /// input (found by the abuse test on a real node).
    pub const MAX_ECHO: usize = 1024;
    /// How much of a longer input is echoed.
    const ABRIDGED_PREFIX: usize = 64;

    /// A JSON string of the input's first bytes and its length, e.g.
    /// `"10000000…(6291447 bytes)"`.
    fn abridged(text: &str) -> Input {
        let mut end = Input::ABRIDGED_PREFIX.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let summary = format!("{}…({} bytes)", &text[..end], text.len());
        Input::from(&serde_json::Value::String(summary))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl From<&serde_json::Value> for Input {
    fn from(value: &serde_json::Value) -> Input {
        // A `Value` always serializes, to valid JSON.
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        match serde_json::value::RawValue::from_string(text) {
            Ok(raw) => Input(raw),
            Err(_) => Input::raw("null"),
        }
    }
}

impl PartialEq for Input {
    fn eq(&self, other: &Input) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for Input {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Input, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(deserializer).map(Input)
    }
}

/// Body of a 422 response: FastAPI's `HTTPValidationError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct HttpValidationError {
    /// Every problem found, not just the first.
    pub detail: Vec<ValidationError>,
}

/// Body of the 404 and 405 responses, in API Gateway's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorMessage {
    /// `"Not Found"` or `"Method Not Allowed"`.
    #[schema(example = "Not Found")]
    pub message: String,
}
