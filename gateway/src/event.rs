//! Plain HTTP to API Gateway HTTP API events (payload format 2.0) and back,
//! as API Gateway does on AWS, so a function sees the same event here as
//! there and a client gets the same response.
//!
//! Both directions use `aws_lambda_events`' types; nothing is hand-built
//! JSON.

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, COOKIE, HOST, SET_COOKIE, USER_AGENT};
use hyper::header::{Entry, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The API id in request contexts and route ARNs.
pub const API_ID: &str = "kf-gateway";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Response headers a function may not set as is: they describe the
/// connection, not the response, and the gateway frames the response itself.
/// API Gateway renames them `x-amzn-Remapped-<name>`; so does the gateway.
const REMAPPED: [&str; 9] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What API Gateway knows about a request besides the request itself.
#[derive(Debug, Clone)]
pub struct RequestMeta<'a> {
    /// The gateway's request id, also the Lambda request id.
    pub request_id: &'a str,
    /// The client's address, as text (made once a connection).
    pub source_ip: &'a str,
    /// The port the client connected to.
    pub local_port: u16,
    /// The matched route, e.g. `ANY /api/v1/hello`.
    pub route_key: &'a str,
    /// The route's path variables and what they matched.
    pub path_parameters: &'a [(String, String)],
    /// What the route's authorizer said about the caller, for
    /// `requestContext.authorizer.lambda`.
    pub authorizer: Option<&'a HashMap<String, serde_json::Value>>,
    /// When the request arrived.
    pub time: SystemTime,
}

/// The HTTP API event for a request.
///
/// Header names are lower case (as `http` keeps them); a header sent more
/// than once is joined with commas, as are repeated query parameters;
/// `Cookie` headers become the `cookies` list; a body that is not text is
/// base64-encoded.
pub fn request_event(
    parts: &Parts,
    body: &Bytes,
    meta: &RequestMeta<'_>,
) -> ApiGatewayV2httpRequest {
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default();

    let mut headers = HeaderMap::with_capacity(parts.headers.keys_len() + 3);
    // A header's values come one after another; most headers have one,
    // which is shared, not copied.
    for (name, value) in &parts.headers {
        if name == COOKIE {
            continue;
        }
        match headers.entry(name) {
            Entry::Vacant(entry) => {
                entry.insert(value.clone());
            }
            Entry::Occupied(mut entry) => {
                if let Some(both) = joined(entry.get(), value) {
                    entry.insert(both);
                }
            }
        }
    }
    // As API Gateway does: the client's address appended to any proxies'
    // chain, and the scheme and port it connected with.
    let forwarded_for = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(chain) => HeaderValue::from_str(&format!("{chain}, {}", meta.source_ip)),
        None => HeaderValue::from_str(meta.source_ip),
    };
    if let Ok(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.insert(X_FORWARDED_PORT, HeaderValue::from(meta.local_port));
    let cookies: Vec<String> = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();

    let (text, is_base64_encoded) = body_text(&parts.headers, body);
    let header_str =
        |name: HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let time_epoch =
        meta.time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(path.clone());
    http.protocol = Some(protocol(parts.version).to_owned());
    http.source_ip = Some(meta.source_ip.to_owned());
    http.user_agent = header_str(USER_AGENT);

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(meta.route_key.to_owned());
    context.account_id = Some("anonymous".to_owned());
    context.apiid = Some(API_ID.to_owned());
    // The host without its port, as API Gateway's domainName.
    context.domain_name = header_str(HOST).map(|h| without_port(&h).to_owned());
    context.domain_prefix =
        context.domain_name.as_deref().map(|h| h.split('.').next().unwrap_or(h).to_owned());
    context.request_id = Some(meta.request_id.to_owned());
    context.stage = Some("$default".to_owned());
    context.time = Some(crate::ids::clf_time(time_epoch / 1000));
    context.time_epoch = time_epoch;
    context.http = http;
    if let Some(fields) = meta.authorizer {
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.fields = fields.clone();
        context.authorizer = Some(authorizer);
    }

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(meta.route_key.to_owned());
    event.raw_path = Some(path);
    event.raw_query_string = Some(raw_query.to_owned());
    event.path_parameters = meta.path_parameters.iter().cloned().collect();
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = query_map(raw_query);
    event.request_context = context;
    event.body = text;
    event.is_base64_encoded = is_base64_encoded;
    event
}

/// About how many bytes `event`'s JSON takes, for its buffer: the request
/// context's fixed fields, the headers, path and query (some twice, as the
/// user agent and host are), and the body. Enough that the buffer seldom
/// grows; no more, so that a small request takes no large allocation.
pub fn estimated_json_len(event: &ApiGatewayV2httpRequest) -> usize {
    let headers: usize = event.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 6).sum();
    let path = event.raw_path.as_ref().map_or(0, String::len);
    let query = event.raw_query_string.as_ref().map_or(0, String::len);
    let body = event.body.as_ref().map_or(0, String::len);
    1024 + 2 * (headers + path + query) + body
}

/// The event a Lambda authorizer gets for a request (payload 2.0, `REQUEST`
/// type): the request's own event without its body, with the `identity`
/// values it is to judge and the route's ARN.
pub fn authorizer_event(
    parts: &Parts,
    meta: &RequestMeta<'_>,
    identity: Vec<String>,
    route_arn: String,
) -> ApiGatewayV2CustomAuthorizerV2Request {
    let request = request_event(parts, &Bytes::new(), meta);
    let mut event = ApiGatewayV2CustomAuthorizerV2Request::default();
    event.version = Some("2.0".to_owned());
    event.type_ = Some("REQUEST".to_owned());
    event.route_arn = Some(route_arn);
    event.identity_source = Some(identity);
    event.route_key = request.route_key;
    event.raw_path = request.raw_path;
    event.raw_query_string = request.raw_query_string;
    event.cookies = request.cookies.unwrap_or_default();
    event.headers = request.headers;
    for (name, value) in request.query_string_parameters.iter() {
        event.query_string_parameters.entry(name.to_owned()).or_insert_with(|| value.to_owned());
    }
    event.request_context = request.request_context;
    event.path_parameters = request.path_parameters;
    event
}

/// The protocol as API Gateway writes it, e.g. `HTTP/1.1`.
fn protocol(version: hyper::Version) -> &'static str {
    match version {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A `Host` header's name without its port: `api.example.com:8080` and
/// `[::1]:8080` lose `:8080`; a bare IPv6 literal keeps its colons.
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

/// Two values of one header joined by a comma, or `None` if the result is
/// not a valid header value (it always is, for values that were valid on
/// their own).
fn joined(first: &HeaderValue, second: &HeaderValue) -> Option<HeaderValue> {
    let mut out = Vec::with_capacity(first.len() + 1 + second.len());
    out.extend_from_slice(first.as_bytes());
    out.push(b',');
    out.extend_from_slice(second.as_bytes());
    HeaderValue::from_bytes(&out).ok()
}

/// Query parameters with repeated names joined by commas, as HTTP APIs send
/// them. Names and values are percent-decoded; `+` is a space.
fn query_map(raw: &str) -> QueryMap {
    let mut map: HashMap<String, String> = HashMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name), percent_decode(value));
        map.entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    QueryMap::from(map)
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body as the event carries it: text when it is text, else base64.
fn body_text(headers: &HeaderMap, body: &Bytes) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let textual =
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_none_or(is_text_content_type);
    match std::str::from_utf8(body) {
        Ok(text) if textual => (Some(text.to_owned()), false),
        _ => (Some(BASE64.encode(body)), true),
    }
}

fn is_text_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("/json")
        || essence.ends_with("+json")
        || essence.ends_with("/xml")
        || essence.ends_with("+xml")
        || essence == "application/javascript"
        || essence == "application/x-www-form-urlencoded"
}

/// Why a function's output could not be turned into a response.
#[derive(Debug, thiserror::Error)]
#[error("malformed function response: {0}")]
pub struct MalformedResponse(pub String);

/// The HTTP response for a function's output, as an HTTP API builds it.
///
/// A payload 2.0 response (`statusCode`, `headers`, `cookies`, `body`,
/// `isBase64Encoded`) is used as is; any other JSON is a 200 with that JSON
/// as the body, as HTTP APIs infer.
pub fn response(output: &[u8]) -> Result<hyper::Response<Bytes>, MalformedResponse> {
    // The common case first, in one typed pass: a whole payload 2.0
    // response, as `lambda_http` writes it (`statusCode` and `cookies`
    // present, both required by the type).
    if let Ok(parsed) = serde_json::from_slice::<ApiGatewayV2httpResponse>(output) {
        return http_response(parsed);
    }
    // Anything else is told apart on the parsed value.
    let mut value: serde_json::Value =
        serde_json::from_slice(output).map_err(|e| MalformedResponse(format!("not JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Ok(inferred(output));
    };
    if object.contains_key("statusCode") {
        // Payload 2.0 lets a function leave `cookies` out.
        object.entry("cookies").or_insert_with(|| serde_json::Value::Array(Vec::new()));
        let parsed: ApiGatewayV2httpResponse =
            serde_json::from_value(value).map_err(|e| MalformedResponse(e.to_string()))?;
        return http_response(parsed);
    }
    Ok(inferred(output))
}

/// JSON without a status: HTTP APIs send it back as a 200 JSON body.
fn inferred(output: &[u8]) -> hyper::Response<Bytes> {
    let mut response = hyper::Response::new(Bytes::copy_from_slice(output));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn http_response(
    parsed: ApiGatewayV2httpResponse,
) -> Result<hyper::Response<Bytes>, MalformedResponse> {
    let status = u16::try_from(parsed.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| MalformedResponse(format!("status code {}", parsed.status_code)))?;
    let body = match parsed.body {
        None | Some(LambdaBody::Empty) => Bytes::new(),
        Some(LambdaBody::Text(text)) if parsed.is_base64_encoded => Bytes::from(
            BASE64.decode(text).map_err(|e| MalformedResponse(format!("base64 body: {e}")))?,
        ),
        Some(LambdaBody::Text(text)) => Bytes::from(text),
        Some(LambdaBody::Binary(bytes)) => Bytes::from(bytes),
        Some(_) => Bytes::new(),
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in parsed.multi_value_headers.iter().chain(parsed.headers.iter()) {
        if REMAPPED.contains(&name.as_str()) {
            let remapped = format!("x-amzn-remapped-{}", name.as_str());
            if let Ok(remapped) = HeaderName::from_bytes(remapped.as_bytes()) {
                headers.append(remapped, value.clone());
            }
        } else {
            headers.append(name.clone(), value.clone());
        }
    }
    for cookie in &parsed.cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn parts(request: Request<()>) -> Parts {
        request.into_parts().0
    }

    fn meta() -> RequestMeta<'static> {
        RequestMeta {
            request_id: "req-1",
            source_ip: "127.0.0.1",
            local_port: 8080,
            route_key: "ANY /api/v1/hello",
            path_parameters: &[],
            authorizer: None,
            time: UNIX_EPOCH + std::time::Duration::from_millis(1_796_006_599_123),
        }
    }

    #[test]
    fn request_becomes_an_http_api_event() {
        let request = Request::post("/api/v1/hello?tag=a&tag=b&q=x%20y+z")
            .header("Host", "api.example.com")
            .header("X-Multi", "1")
            .header("x-multi", "2")
            .header("cookie", "a=1; b=2")
            .header("cookie", "c=3")
            .header("content-type", "application/json")
            .body(())
            .expect("request");
        let event = request_event(&parts(request), &Bytes::from_static(b"{\"n\":12}"), &meta());
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["version"], "2.0");
        assert_eq!(json["rawPath"], "/api/v1/hello");
        assert_eq!(json["rawQueryString"], "tag=a&tag=b&q=x%20y+z");
        assert_eq!(json["queryStringParameters"]["tag"], "a,b");
        assert_eq!(json["queryStringParameters"]["q"], "x y z");
        assert_eq!(json["headers"]["x-multi"], "1,2");
        assert_eq!(json["headers"]["host"], "api.example.com");
        assert!(json["headers"].get("cookie").is_none());
        assert_eq!(json["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(json["headers"]["x-forwarded-proto"], "http");
        assert_eq!(json["headers"]["x-forwarded-port"], "8080");
        assert_eq!(json["cookies"], serde_json::json!(["a=1", "b=2", "c=3"]));
        assert_eq!(json["body"], "{\"n\":12}");
        assert_eq!(json["isBase64Encoded"], false);
        let context = &json["requestContext"];
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["path"], "/api/v1/hello");
        assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(context["requestId"], "req-1");
        assert_eq!(context["routeKey"], "ANY /api/v1/hello");
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["time"], "30/Nov/2026:02:43:19 +0000");
        assert_eq!(context["timeEpoch"], 1_796_006_599_123i64);
        assert_eq!(context["domainName"], "api.example.com");
    }

    #[test]
    fn binary_bodies_are_base64() {
        let request =
            Request::post("/x").header("content-type", "image/png").body(()).expect("request");
        let body = Bytes::from_static(&[0x89, b'P', b'N', b'G', 0, 1]);
        let event = request_event(&parts(request), &body, &meta());
        assert!(event.is_base64_encoded);
        assert_eq!(event.body.as_deref(), Some("iVBORwAB"));
        // Bytes that are not UTF-8 are base64 whatever the content type says.
        let request =
            Request::post("/x").header("content-type", "text/plain").body(()).expect("request");
        let event = request_event(&parts(request), &Bytes::from_static(&[0xff, 0xfe]), &meta());
        assert!(event.is_base64_encoded);
    }

    #[test]
    fn payload_2_responses_become_http_responses() {
        let output = br#"{"statusCode":201,"headers":{"content-type":"text/plain","x-a":"1"},
            "multiValueHeaders":{},"cookies":["s=1; Path=/","t=2"],"body":"aGk=","isBase64Encoded":true}"#;
        let r = response(output).expect("valid");
        assert_eq!(r.status(), 201);
        assert_eq!(r.body().as_ref(), b"hi");
        assert_eq!(r.headers()["x-a"], "1");
        let cookies: Vec<_> = r.headers().get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["s=1; Path=/", "t=2"]);
    }

    #[test]
    fn inferred_bodies_and_malformed_output() {
        let r = response(br#"{"hello":"world"}"#).expect("json");
        assert_eq!((r.status(), r.body().as_ref()), (StatusCode::OK, &br#"{"hello":"world"}"#[..]));
        assert!(response(b"Task timed out after 1.00 seconds").is_err());
        assert!(response(br#"{"statusCode":99}"#).is_err());
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(without_port("api.example.com:8080"), "api.example.com");
        assert_eq!(without_port("api.example.com"), "api.example.com");
        assert_eq!(without_port("[::1]:8080"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert_eq!(without_port("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn framing_headers_of_a_function_are_renamed() {
        let output = br#"{"statusCode":200,"headers":{"content-length":"999","connection":"close",
            "transfer-encoding":"chunked","x-ok":"1"},"cookies":[],"body":"hi"}"#;
        let r = response(output).expect("valid");
        assert!(r.headers().get("content-length").is_none());
        assert!(r.headers().get("connection").is_none());
        assert!(r.headers().get("transfer-encoding").is_none());
        assert_eq!(r.headers()["x-amzn-remapped-content-length"], "999");
        assert_eq!(r.headers()["x-amzn-remapped-connection"], "close");
        assert_eq!(r.headers()["x-ok"], "1");
    }
}
