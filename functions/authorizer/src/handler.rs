//! One authorization: the event's `Authorization` header in, a simple
//! response (`isAuthorized`, and the key's id as context) out.

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_runtime::LambdaEvent;
use serde_json::{Map, Value};
use shared::auth::{ApiKeys, Decision};

/// The context key that carries the key's id to the function, in
/// `requestContext.authorizer.lambda`.
pub const KEY_ID: &str = "keyId";

/// Answers one authorization request. Never fails: a request it cannot
/// read is denied. The key is never logged; its id is.
pub async fn handle(
    keys: &ApiKeys,
    event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse<Map<String, Value>>, lambda_runtime::Error> {
    Ok(decide(keys, &event.payload))
}

fn decide(
    keys: &ApiKeys,
    request: &ApiGatewayV2CustomAuthorizerV2Request,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Map<String, Value>> {
    let authorization = request.headers.get("authorization").and_then(|v| v.to_str().ok());
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::<Map<String, Value>>::default();
    match keys.check(authorization) {
        Decision::Allow { key_id } => {
            tracing::info!(key_id, route = request.route_key, "allowed");
            response.is_authorized = true;
            response.context.insert(KEY_ID.to_owned(), Value::String(key_id));
        }
        Decision::Deny(why) => {
            tracing::info!(reason = ?why, route = request.route_key, "denied");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::auth::hash_line;

    const KEY: &str = "kf_test_key_0123456789";

    fn keys() -> ApiKeys {
        ApiKeys::parse(&hash_line("ci", KEY)).expect("keys")
    }

    /// A payload 2.0 authorizer event, as the HTTP API sends it.
    fn event(authorization: Option<&str>) -> ApiGatewayV2CustomAuthorizerV2Request {
        let mut headers = json!({"host": "api.example.com", "user-agent": "curl/8"});
        if let Some(value) = authorization {
            headers["authorization"] = json!(value);
        }
        serde_json::from_value(json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abc/$default/POST/api/v1/hello",
            "identitySource": authorization.map(|a| vec![a]),
            "routeKey": "ANY /api/v1/hello",
            "rawPath": "/api/v1/hello",
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc",
                "domainName": "api.example.com",
                "http": {"method": "POST", "path": "/api/v1/hello", "protocol": "HTTP/1.1",
                         "sourceIp": "192.0.2.1", "userAgent": "curl/8"},
                "requestId": "id",
                "routeKey": "ANY /api/v1/hello",
                "stage": "$default",
                "time": "30/Nov/2026:12:00:00 +0000",
                "timeEpoch": 1796040000000i64
            }
        }))
        .expect("an authorizer event")
    }

    fn answer(authorization: Option<&str>) -> Value {
        serde_json::to_value(decide(&keys(), &event(authorization))).expect("JSON")
    }

    /// The recorded event `cargo lambda invoke` is given in docs/deploy-lambda.md.
    #[test]
    fn the_recorded_event_is_read_and_denied() {
        let text = include_str!("../../../fixtures/authorizer/request.json");
        let request: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_str(text).expect("the recorded event");
        let answer = serde_json::to_value(decide(&keys(), &request)).expect("JSON");
        assert_eq!(answer, json!({"isAuthorized": false, "context": {}}));
    }

    #[test]
    fn a_good_key_is_authorized_with_its_id_as_context() {
        assert_eq!(
            answer(Some(&format!("Bearer {KEY}"))),
            json!({"isAuthorized": true, "context": {"keyId": "ci"}})
        );
    }

    #[test]
    fn a_wrong_missing_or_malformed_key_is_not() {
        let mut last = KEY.to_owned();
        last.pop();
        last.push('X');
        for header in [
            None,
            Some("Bearer wrong".to_owned()),
            Some(KEY.to_owned()),
            Some("Bearer".to_owned()),
            Some(format!("Bearer {last}")),
        ] {
            assert_eq!(
                answer(header.as_deref()),
                json!({"isAuthorized": false, "context": {}}),
                "{header:?}"
            );
        }
    }
}
