//! Parses the request, calls `shared`, maps the outcome to a status.

use lambda_http::{Body, Request, Response};
use shared::ApiError;
use std::convert::Infallible;

/// This function's name in the route table.
const FUNCTION: &str = "hello";

/// The Lambda handler: every request gets a well-formed response.
pub async fn handle(request: Request) -> Result<Response<Body>, Infallible> {
    edge::answer(respond(&request))
}

fn respond(request: &Request) -> Result<Response<Body>, ApiError> {
    edge::resolve(FUNCTION, request)?;
    let body = request.body().as_ref();
    shared::validate::hello_body_size(body)?;
    let input = shared::validate::hello_request(body)?;
    // The factoring is CPU-bound and runs inline: a Lambda environment handles
    // one invocation at a time, so there is nothing else to keep responsive.
    let output = shared::hello::hello(&input, &mut rand::rng());
    Ok(edge::json(200, &output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge::testing::{EventBody, SOURCES, event, invoke};
    use proptest::prelude::*;
    use serde_json::json;

    async fn post(source: edge::testing::Source, body: &str) -> edge::testing::Reply {
        invoke(handle, event(source, "POST", "/api/v1/hello", EventBody::Text(body))).await
    }

    #[tokio::test]
    async fn answers_the_originals_request_from_every_source() {
        for source in SOURCES {
            let reply = post(source, "{}").await;
            assert_eq!(reply.status, 200, "{source:?}");
            assert_eq!(reply.header("content-type"), Some("application/json"), "{source:?}");
            let body = reply.json();
            assert_eq!(body["message1"], "Hello, world!");
            let n = body["n"].as_u64().expect("n");
            let p = body["largest_prime_factor"].as_u64().expect("p");
            assert!(shared::hello::DEFAULT_RANGE.contains(&n), "{source:?}: {n}");
            assert_eq!(n % p, 0, "{source:?}");
            assert!(body["elapsed_time"].is_f64(), "{source:?}");
            assert!(body["message2"].as_str().is_some_and(|m| m.starts_with(&format!(
                "The largest prime factor of {n} is {p}. Calculation took "
            ))));
        }
    }

    #[tokio::test]
    async fn factors_the_given_n_with_either_algorithm() {
        for source in SOURCES {
            for (body, n, p) in [
                (r#"{"n": 1462370954730}"#, 1_462_370_954_730u64, 398_311u64),
                (r#"{"n": 18446744073709551615, "algorithm": "rho"}"#, u64::MAX, 6_700_417),
                (
                    r#"{"n": 18446744073709551557, "algorithm": "rho"}"#,
                    18_446_744_073_709_551_557,
                    18_446_744_073_709_551_557,
                ),
            ] {
                let reply = post(source, body).await;
                assert_eq!(reply.status, 200, "{source:?} {body}");
                let body = reply.json();
                assert_eq!(
                    (body["n"].as_u64(), body["largest_prime_factor"].as_u64()),
                    (Some(n), Some(p))
                );
            }
        }
    }

    #[tokio::test]
    async fn a_base64_encoded_body_is_decoded() {
        for source in SOURCES {
            let reply = invoke(
                handle,
                event(source, "POST", "/api/v1/hello", EventBody::Binary(br#"{"n": 12}"#)),
            )
            .await;
            assert_eq!(reply.status, 200, "{source:?}");
            assert_eq!(reply.json()["largest_prime_factor"], 3, "{source:?}");
        }
    }

    #[tokio::test]
    async fn bad_bodies_get_fastapi_shaped_422s() {
        for source in SOURCES {
            for (body, loc, kind) in [
                ("not json", json!(["body", 1]), "json_invalid"),
                ("[1]", json!(["body"]), "model_attributes_type"),
                (r#"{"n": "abc"}"#, json!(["body", "n"]), "int_type"),
                (r#"{"n": 1}"#, json!(["body", "n"]), "greater_than_equal"),
                (r#"{"n": 1000000000000000001}"#, json!(["body", "n"]), "less_than_equal"),
                (r#"{"algorithm": "quantum"}"#, json!(["body", "algorithm"]), "enum"),
            ] {
                let reply = post(source, body).await;
                assert_eq!(reply.status, 422, "{source:?} {body}");
                assert_eq!(reply.header("content-type"), Some("application/json"));
                let detail = &reply.json()["detail"][0];
                assert_eq!(
                    (&detail["loc"], &detail["type"]),
                    (&loc, &json!(kind)),
                    "{source:?} {body}"
                );
                assert!(detail["msg"].as_str().is_some_and(|m| !m.is_empty()));
            }
            let reply =
                invoke(handle, event(source, "POST", "/api/v1/hello", EventBody::None)).await;
            assert_eq!(
                (reply.status, &reply.json()["detail"][0]["type"]),
                (422, &json!("missing"))
            );
        }
    }

    /// A body larger than the model could be is refused before it is
    /// parsed: a 413 naming the limit, in API Gateway's shape.
    #[tokio::test]
    async fn a_body_past_the_models_limit_is_a_413() {
        let limit = shared::validate::MAX_HELLO_BODY;
        let padded = |len: usize| format!("{{\"n\": 12{}}}", " ".repeat(len - 9));
        for source in SOURCES {
            let at_limit = padded(limit);
            assert_eq!(at_limit.len(), limit);
            assert_eq!(post(source, &at_limit).await.status, 200, "{source:?}");
            let reply = post(source, &padded(limit + 1)).await;
            assert_eq!(reply.status, 413, "{source:?}");
            assert_eq!(
                reply.json(),
                json!({"message": format!(
                    "the body is {} bytes; this endpoint takes at most {limit}", limit + 1)})
            );
        }
    }

    #[tokio::test]
    async fn wrong_method_and_unknown_path() {
        for source in SOURCES {
            let reply =
                invoke(handle, event(source, "GET", "/api/v1/hello", EventBody::None)).await;
            assert_eq!(reply.status, 405, "{source:?}");
            assert_eq!(reply.header("allow"), Some("POST"));
            assert_eq!(reply.json(), json!({"message": "Method Not Allowed"}));
            let reply =
                invoke(handle, event(source, "POST", "/api/v2/hello", EventBody::Text("{}"))).await;
            assert_eq!(reply.status, 404, "{source:?}");
            assert_eq!(reply.json(), json!({"message": "Not Found"}));
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(future)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the body, the answer is a 200 or a 422 with a JSON body
        /// that names the problem; never a panic or a 500.
        #[test]
        fn any_body_gets_a_well_formed_answer(body in prop_oneof![
            any::<Vec<u8>>(),
            "\\PC{0,40}".prop_map(String::into_bytes),
            (any::<i128>(), prop_oneof![Just("trial"), Just("rho"), Just("x")])
                .prop_map(|(n, a)| format!(r#"{{"n": {n}, "algorithm": "{a}"}}"#).into_bytes()),
            any::<f64>().prop_map(|f| format!(r#"{{"n": {f}}}"#).into_bytes()),
        ]) {
            let reply = block_on(invoke(handle, event(
                edge::testing::Source::HttpApi, "POST", "/api/v1/hello", EventBody::Binary(&body))));
            let json = reply.json();
            match reply.status {
                200 => prop_assert!(json["largest_prime_factor"].is_u64()),
                422 => prop_assert!(json["detail"][0]["msg"].as_str().is_some_and(|m| !m.is_empty())),
                other => prop_assert!(false, "status {other} for {:?}", String::from_utf8_lossy(&body)),
            }
        }
    }
}
