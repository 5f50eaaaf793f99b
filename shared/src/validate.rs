//! Turning a raw request body into a [`HelloRequest`], or into every reason
//! it is not one.
//!
//! Errors use FastAPI's (pydantic v2's) shape and type names, so clients of
//! the original service parse them unchanged. Parsing is by hand over
//! `serde_json`'s raw values rather than a derived `Deserialize`, because
//! serde stops at the first problem and cannot tell "not an integer" from
//! "an integer too large for 64 bits"; clients deserve both, precisely.

use crate::error::ApiError;
use crate::factor::TRIAL_MAX_N;
use crate::models::{Algorithm, HelloRequest, Input, LocItem, ValidationError};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;

/// The largest body `POST /api/v1/hello` reads. Its model is two short
/// fields (under 100 bytes as any client writes them); 64 KiB leaves room
/// for any formatting and for members it ignores, and refuses, before it
/// is parsed, what no client of the model sends. FastAPI itself sets no
/// limit (the original would parse any body its server accepted); the
/// answer is a 413 in API Gateway's `{"message"}` shape, naming the limit.
pub const MAX_HELLO_BODY: usize = 64 * 1024;

/// Refuses a body larger than [`MAX_HELLO_BODY`], before it is parsed.
pub fn hello_body_size(body: &[u8]) -> Result<(), ApiError> {
    match body.len() {
        size if size > MAX_HELLO_BODY => {
            Err(ApiError::PayloadTooLarge { size, limit: MAX_HELLO_BODY })
        }
        _ => Ok(()),
    }
}

/// The smallest `n` with a prime factor.
pub const MIN_N: u64 = 2;

/// Parses and validates the body of `POST /api/v1/hello`.
///
/// Accepts any JSON object; `n` and `algorithm` are optional, `null` counts
/// as absent, other fields are ignored. The content type is not checked:
/// `curl -d '{}'` sends a form content type and must work, as it did with
/// the original.
pub fn hello_request(body: &[u8]) -> Result<HelloRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Validation(vec![*error(
            &["body"],
            "missing",
            "Field required: send a JSON object, such as {}",
            None,
            None,
        )]));
    }
    let fields: Known = match serde_json::from_slice(body) {
        Ok(fields) => fields,
        Err(e) if e.is_data() => {
            // Valid JSON, but not an object.
            let input = std::str::from_utf8(body).ok().map(Input::raw);
            return Err(ApiError::Validation(vec![*error(
                &["body"],
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
                input,
                None,
            )]));
        }
        Err(e) => {
            return Err(ApiError::Validation(vec![ValidationError {
                loc: vec![
                    LocItem::Field("body".to_owned()),
                    LocItem::Index(byte_offset(body, e.line(), e.column())),
                ],
                msg: format!("JSON decode error: {e}"),
                kind: "json_invalid".to_owned(),
                input: None,
                ctx: Some(json!({ "error": e.to_string() })),
            }]));
        }
    };

    let mut errors = Vec::new();
    let n = match fields.n.as_deref().map(|raw| parse_n(raw.get())) {
        None => None,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            errors.push(*e);
            None
        }
    };
    let algorithm = match fields.algorithm.as_deref().map(|raw| parse_algorithm(raw.get())) {
        None => Some(Algorithm::default()),
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            errors.push(*e);
            None
        }
    };
    if let (Some(n), Some(Algorithm::Trial)) = (n, algorithm)
        && n > TRIAL_MAX_N
    {
        errors.push(*error(
            &["body", "n"],
            "less_than_equal",
            &format!(
                "Input should be less than or equal to {TRIAL_MAX_N} for algorithm \"trial\" \
                     (trial division would take over 0.1 s); use \"algorithm\": \"rho\" \
                     for any n up to 2^64 - 1"
            ),
            Some(Input::from(&json!(n))),
            Some(json!({ "le": TRIAL_MAX_N })),
        ));
    }
    match (errors.is_empty(), algorithm) {
        (true, Some(algorithm)) => Ok(HelloRequest { n, algorithm }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// The fields of the body's object that the endpoint knows, each as its raw
/// JSON; every other member is checked for syntax and skipped unstored, so a
/// body of a million unknown keys costs no more memory than one of none
/// (a map of every member cost about 20 bytes a byte of body). A key given
/// twice counts as its last, as a JSON object read into a map does.
#[derive(Default)]
struct Known {
    n: Option<Box<RawValue>>,
    algorithm: Option<Box<RawValue>>,
}

impl<'de> Deserialize<'de> for Known {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Known, D::Error> {
        deserializer.deserialize_map(KnownVisitor)
    }
}

struct KnownVisitor;

impl<'de> Visitor<'de> for KnownVisitor {
    type Value = Known;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Known, A::Error> {
        let mut known = Known::default();
        // Borrowed from the body unless the key has escapes.
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "n" => known.n = Some(map.next_value()?),
                "algorithm" => known.algorithm = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(known)
    }
}

/// `n`: a JSON integer in [2, 2^64 - 1]; `null` is absent. An integral float
/// such as `4.0` is accepted up to 2^53, where floats stop being exact, as
/// pydantic does in its default (lax) mode.
fn parse_n(raw: &str) -> Result<Option<u64>, Box<ValidationError>> {
    // The input is echoed exactly as sent, whatever it is.
    let input = Some(Input::raw(raw));
    let not_int = |kind: &str, msg: &str| error(&["body", "n"], kind, msg, input.clone(), None);
    let too_small = || {
        error(
            &["body", "n"],
            "greater_than_equal",
            "Input should be greater than or equal to 2",
            input.clone(),
            Some(json!({ "ge": MIN_N })),
        )
    };
    let too_large = || {
        error(
            &["body", "n"],
            "less_than_equal",
            "Input should be less than or equal to 18446744073709551615 (2^64 - 1)",
            input.clone(),
            Some(json!({ "le": u64::MAX })),
        )
    };
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(value) => value,
        // Valid JSON (it came out of a parsed object) that serde_json cannot
        // hold: a number beyond f64's range, such as 1e400. Present, so
        // validated, never dropped.
        Err(_) if raw.starts_with('-') => return Err(too_small()),
        Err(_) => return Err(too_large()),
    };
    if value.is_null() {
        return Ok(None);
    }
    if !matches!(value, Value::Number(_)) {
        return Err(not_int("int_type", "Input should be a valid integer"));
    }
    if raw.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        // An integer literal: decide by its digits, not by a lossy float.
        return match raw.parse::<u64>() {
            Ok(n) if n >= MIN_N => Ok(Some(n)),
            Ok(_) => Err(too_small()),
            Err(_) if raw.starts_with('-') => Err(too_small()),
            Err(_) => Err(too_large()),
        };
    }
    // A number with a fraction or an exponent.
    let f = value.as_f64().unwrap_or(f64::NAN);
    if f.fract() != 0.0 || f.is_nan() {
        Err(not_int(
            "int_from_float",
            "Input should be a valid integer, got a number with a fractional part",
        ))
    } else if f < MIN_N as f64 {
        Err(too_small())
    } else if f > 9_007_199_254_740_992.0 {
        Err(not_int(
            "int_from_float",
            "Input should be a valid integer: write numbers above 2^53 without a fraction or exponent",
        ))
    } else {
        // Exact: f is integral and at most 2^53.
        Ok(Some(f as u64))
    }
}

/// `algorithm`: `"trial"` or `"rho"`; `null` is the default.
fn parse_algorithm(raw: &str) -> Result<Algorithm, Box<ValidationError>> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Null) => Ok(Algorithm::default()),
        Ok(Value::String(s)) if s == "trial" => Ok(Algorithm::Trial),
        Ok(Value::String(s)) if s == "rho" => Ok(Algorithm::Rho),
        // Anything else, including a number serde_json cannot hold (1e400).
        _ => Err(error(
            &["body", "algorithm"],
            "enum",
            "Input should be 'trial' or 'rho'",
            Some(Input::raw(raw)),
            Some(json!({ "expected": "'trial' or 'rho'" })),
        )),
    }
}

fn error(
    loc: &[&str],
    kind: &str,
    msg: &str,
    input: Option<Input>,
    ctx: Option<Value>,
) -> Box<ValidationError> {
    Box::new(ValidationError {
        loc: loc.iter().map(|s| LocItem::Field((*s).to_owned())).collect(),
        msg: msg.to_owned(),
        kind: kind.to_owned(),
        input,
        ctx,
    })
}

/// The byte offset of a 1-based line and column, as FastAPI reports the
/// position of a JSON syntax error.
fn byte_offset(body: &[u8], line: usize, column: usize) -> u64 {
    let line_start: usize =
        body.split(|&b| b == b'\n').take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
    (line_start + column.saturating_sub(1)).min(body.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: &str) -> Vec<ValidationError> {
        match hello_request(body.as_bytes()) {
            Err(ApiError::Validation(errors)) => errors,
            other => panic!("{body:?} should fail validation, got {other:?}"),
        }
    }

    fn kinds(body: &str) -> Vec<(String, String)> {
        errors(body)
            .into_iter()
            .map(|e| {
                let loc = serde_json::to_string(&e.loc).expect("loc serializes");
                (loc, e.kind)
            })
            .collect()
    }

    #[test]
    fn accepts_the_original_clients_body_and_extensions() {
        let ok = |body: &str| hello_request(body.as_bytes()).expect(body);
        assert_eq!(ok("{}"), HelloRequest::default());
        assert_eq!(ok(" {\"unknown\": [1, 2]} "), HelloRequest::default());
        assert_eq!(ok(r#"{"n": null, "algorithm": null}"#), HelloRequest::default());
        assert_eq!(ok(r#"{"n": 2}"#).n, Some(2));
        assert_eq!(ok(r#"{"n": 12.0}"#).n, Some(12));
        assert_eq!(ok(r#"{"n": 1e3}"#).n, Some(1000));
        let rho = ok(r#"{"n": 18446744073709551615, "algorithm": "rho"}"#);
        assert_eq!((rho.n, rho.algorithm), (Some(u64::MAX), Algorithm::Rho));
        assert_eq!(ok(&format!(r#"{{"n": {TRIAL_MAX_N}}}"#)).n, Some(TRIAL_MAX_N));
    }

    #[test]
    fn a_huge_input_is_echoed_abridged_so_the_422_fits_a_lambda_response() {
        let digits = "1".to_owned() + &"0".repeat(6 << 20);
        let body = format!(r#"{{"n": {digits}}}"#);
        let Err(ApiError::Validation(errors)) = hello_request(body.as_bytes()) else {
            panic!("a 6 MB n must be a 422")
        };
        assert_eq!(errors[0].kind, "less_than_equal");
        let echoed = errors[0].input.as_ref().map(Input::get).unwrap_or_default();
        assert_eq!(echoed, format!(r#""1{}…({} bytes)""#, "0".repeat(63), digits.len()));
        let whole = serde_json::to_string(&errors).expect("json");
        assert!(whole.len() < 2048, "{} bytes", whole.len());
        // Up to the bound the input is echoed exactly as sent.
        let n = format!(r#""{}""#, "a".repeat(Input::MAX_ECHO - 2));
        let Err(ApiError::Validation(errors)) =
            hello_request(format!(r#"{{"n": {n}}}"#).as_bytes())
        else {
            panic!("a 1 KiB string n must be a 422")
        };
        assert_eq!(errors[0].input.as_ref().map(Input::get), Some(n.as_str()));
    }

    #[test]
    fn each_kind_of_bad_input_is_named() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[(r#"["body"]"#, "missing")]),
            ("[]", &[(r#"["body"]"#, "model_attributes_type")]),
            ("42", &[(r#"["body"]"#, "model_attributes_type")]),
            (r#"{"n": "12"}"#, &[(r#"["body","n"]"#, "int_type")]),
            (r#"{"n": true}"#, &[(r#"["body","n"]"#, "int_type")]),
            (r#"{"n": [2]}"#, &[(r#"["body","n"]"#, "int_type")]),
            (r#"{"n": 2.5}"#, &[(r#"["body","n"]"#, "int_from_float")]),
            (r#"{"n": 1e300}"#, &[(r#"["body","n"]"#, "int_from_float")]),
            (r#"{"n": 1}"#, &[(r#"["body","n"]"#, "greater_than_equal")]),
            (r#"{"n": 0}"#, &[(r#"["body","n"]"#, "greater_than_equal")]),
            (r#"{"n": -5}"#, &[(r#"["body","n"]"#, "greater_than_equal")]),
            (r#"{"n": -1e9}"#, &[(r#"["body","n"]"#, "greater_than_equal")]),
            (
                r#"{"n": 18446744073709551616, "algorithm": "rho"}"#,
                &[(r#"["body","n"]"#, "less_than_equal")],
            ),
            (r#"{"n": 1000000000000000001}"#, &[(r#"["body","n"]"#, "less_than_equal")]),
            (r#"{"algorithm": "fast"}"#, &[(r#"["body","algorithm"]"#, "enum")]),
            (r#"{"algorithm": 1}"#, &[(r#"["body","algorithm"]"#, "enum")]),
            (
                r#"{"n": "x", "algorithm": "fast"}"#,
                &[(r#"["body","n"]"#, "int_type"), (r#"["body","algorithm"]"#, "enum")],
            ),
        ];
        for (body, expected) in cases {
            let expected: Vec<(String, String)> =
                expected.iter().map(|(l, k)| (l.to_string(), k.to_string())).collect();
            assert_eq!(kinds(body), expected, "body {body:?}");
        }
    }

    #[test]
    fn syntax_errors_give_their_position() {
        let e = &errors("{\"n\": 12,\n  oops}")[0];
        assert_eq!(e.kind, "json_invalid");
        assert_eq!(e.loc, vec![LocItem::Field("body".into()), LocItem::Index(12)]);
        assert!(e.msg.contains("line 2"), "{}", e.msg);
        let e = &errors("{\"n\": 12")[0];
        assert_eq!(e.kind, "json_invalid");
        assert_eq!(e.loc[1], LocItem::Index(7), "the last byte read");
    }

    #[test]
    fn trial_bound_error_points_to_rho() {
        let e = &errors(r#"{"n": 18446744073709551557}"#)[0];
        assert!(e.msg.contains("\"rho\""), "{}", e.msg);
        assert_eq!(e.ctx, Some(json!({ "le": TRIAL_MAX_N })));
        assert_eq!(e.input.as_ref().map(Input::get), Some("18446744073709551557"));
    }
}
