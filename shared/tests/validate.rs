//! Validation of `POST /api/v1/hello` bodies: a field that is present is
//! validated, never dropped, whatever number it holds, and the 422 echoes
//! the input as it was sent (as a string of its text when it is a number no
//! double holds, which common JSON parsers refuse).

use proptest::prelude::*;
use shared::ApiError;
use shared::factor::TRIAL_MAX_N;
use shared::models::{Algorithm, ValidationError};
use shared::validate::hello_request;

/// The problems with `body`, or its `n` and algorithm.
fn check(body: &str) -> Result<(Option<u64>, Algorithm), Vec<ValidationError>> {
    match hello_request(body.as_bytes()) {
        Ok(request) => Ok((request.n, request.algorithm)),
        Err(ApiError::Validation(errors)) => Err(errors),
        Err(other) => panic!("{body}: not a validation error: {other:?}"),
    }
}

fn only_error(body: &str) -> ValidationError {
    let errors = check(body).expect_err(body);
    assert_eq!(errors.len(), 1, "{body}: {errors:?}");
    errors.into_iter().next().expect("one error")
}

/// How a 422 echoes `literal`: as sent, or quoted when no double holds it.
fn echo(literal: &str) -> String {
    match literal.parse::<f64>() {
        Ok(f) if f.is_finite() => literal.to_owned(),
        _ => format!("\"{literal}\""),
    }
}

fn loc(error: &ValidationError) -> String {
    serde_json::to_string(&error.loc).expect("loc")
}

#[test]
fn numbers_beyond_a_float_are_refused_not_dropped() {
    for (body, field, kind) in [
        (r#"{"n": 1e400}"#, "n", "less_than_equal"),
        (r#"{"n": -1e400}"#, "n", "greater_than_equal"),
        (r#"{"n": 1E+400, "algorithm": "rho"}"#, "n", "less_than_equal"),
        (r#"{"algorithm": 1e400}"#, "algorithm", "enum"),
        (r#"{"algorithm": -1e400}"#, "algorithm", "enum"),
    ] {
        let error = only_error(body);
        assert_eq!(loc(&error), format!(r#"["body","{field}"]"#), "{body}");
        assert_eq!(error.kind, kind, "{body}");
        let sent = body.split(": ").nth(1).and_then(|v| v.split([',', '}']).next()).expect("value");
        assert_eq!(error.input.as_ref().map(|i| i.get()), Some(echo(sent).as_str()), "{body}");
        // Every client can read the error.
        let json = serde_json::to_string(&error).expect("serializes");
        serde_json::from_str::<serde_json::Value>(&json).expect("readable by serde_json");
    }
}

#[test]
fn inputs_are_echoed_as_sent() {
    let error = only_error(r#"{"n": 18446744073709551616}"#);
    assert_eq!(error.input.as_ref().map(|i| i.get()), Some("18446744073709551616"));
    let json = serde_json::to_string(&error).expect("serializes");
    assert!(json.contains(r#""input":18446744073709551616"#), "{json}");
    let error = only_error(r#"{"n": 1.5e0}"#);
    assert_eq!(error.input.as_ref().map(|i| i.get()), Some("1.5e0"));
    let error = only_error("[1, 2]");
    assert_eq!(error.input.as_ref().map(|i| i.get()), Some("[1, 2]"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A valid `n` comes back unchanged, written plainly.
    #[test]
    fn a_valid_n_comes_back_unchanged(n in 2u64..) {
        let algorithm = if n <= TRIAL_MAX_N { "trial" } else { "rho" };
        let body = format!(r#"{{"n": {n}, "algorithm": "{algorithm}"}}"#);
        prop_assert_eq!(check(&body).map(|(n, _)| n), Ok(Some(n)));
    }

    /// In exponent form, `n` is the integer it denotes when that is exact
    /// (at most 2^53), and otherwise a 422 on `n`: never absent.
    #[test]
    fn exponent_forms_are_an_integer_or_a_422(
        mantissa in 0u64..10_000_000,
        fraction in proptest::option::of(0u32..1000),
        exponent in -30i32..400,
        negative in any::<bool>(),
        upper in any::<bool>(),
    ) {
        let sign = if negative { "-" } else { "" };
        let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
        let e = if upper { "E" } else { "e" };
        let literal = format!("{sign}{mantissa}{fraction}{e}{exponent}");
        let body = format!(r#"{{"n": {literal}, "algorithm": "rho"}}"#);
        match check(&body) {
            Ok((n, _)) => {
                let n = n.expect("present, so never absent");
                let value: f64 = literal.parse().expect("a float");
                prop_assert_eq!(n as f64, value, "{}", literal);
                prop_assert!((2.0..=9_007_199_254_740_992.0).contains(&value), "{}", literal);
            }
            Err(errors) => {
                prop_assert_eq!(errors.len(), 1);
                prop_assert_eq!(loc(&errors[0]), r#"["body","n"]"#);
                prop_assert_eq!(errors[0].input.as_ref().map(|i| i.get().to_owned()), Some(echo(&literal)));
            }
        }
    }

    /// Integer literals of any length: too large is a 422 that echoes the
    /// digits, whatever their number.
    #[test]
    fn huge_literals_are_too_large(digits in "[1-9][0-9]{20,400}", negative in any::<bool>()) {
        let literal = if negative { format!("-{digits}") } else { digits };
        let error = only_error(&format!(r#"{{"n": {literal}}}"#));
        let kind = if negative { "greater_than_equal" } else { "less_than_equal" };
        prop_assert_eq!(error.kind.as_str(), kind);
        prop_assert_eq!(error.input.as_ref().map(|i| i.get().to_owned()), Some(echo(&literal)));
    }
}
