//! Who is calling the Invoke API: AWS Signature Version 4, checked as
//! Lambda checks it, against access keys the operator gives the pod.
//!
//! On AWS, calling Invoke takes an IAM permission, proven by a request
//! signed with the caller's secret key; a pod's admin port is reached by
//! any pod the NetworkPolicy admits, so it asks the same proof. boto3, the
//! AWS CLI and the SDKs sign every call once credentials are set, so they
//! work unchanged with `--endpoint-url` and one of the pod's keys.
//!
//! Checking a signature is making it again: the `aws-sigv4` crate (the
//! one the Rust SDK signs with) computes it over the request as received,
//! with the headers the caller says it signed, at the caller's
//! `X-Amz-Date`, with the key whose id the caller names, and the result is
//! compared with the caller's in constant time. Before the body is read,
//! the head alone must hold a well-formed `Authorization` naming a known
//! key, for this region and `lambda`, dated within the 5 minutes of clock
//! skew AWS allows; so an unsigned flood costs no body reads. The secrets
//! are never logged: [`Keys`]' `Debug` shows the key ids only.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use hyper::http::request::Parts;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The clock skew AWS allows between a signature's date and its own clock.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// The service name in a Lambda signature's scope.
const SERVICE: &str = "lambda";

/// The access keys a pod accepts, by id. `Debug` shows the ids only.
#[derive(Clone, Default)]
pub struct Keys(HashMap<String, String>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Keys {
    /// Keys from `text`: one `ACCESS_KEY_ID:SECRET_ACCESS_KEY` a line;
    /// blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let mut keys = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((id, secret)) = line.split_once(':') else {
                return Err(format!("line {}: not ACCESS_KEY_ID:SECRET_ACCESS_KEY", number + 1));
            };
            let (id, secret) = (id.trim(), secret.trim());
            let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
            if !valid(id) || !valid(secret) || id.contains('/') {
                return Err(format!("line {}: not ACCESS_KEY_ID:SECRET_ACCESS_KEY", number + 1));
            }
            keys.insert(id.to_owned(), secret.to_owned());
        }
        Ok(Keys(keys))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How the Invoke API checks its callers.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Every call must be signed with one of these keys, for this region.
    Keys { keys: Keys, region: String },
    /// Anyone who reaches the port may call (`--invoke-auth none`).
    Anyone,
}

/// Why a call is refused: each is one of AWS's own answers (see
/// [`crate::invoke_api::ApiError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header (and no signed query).
    Missing,
    /// An `Authorization` header AWS could not read.
    Incomplete(String),
    /// A key id the pod does not have (or the pod has no keys).
    UnknownKey,
    /// Signed for another region or service.
    WrongScope(String),
    /// Dated outside the clock skew AWS allows.
    Expired(String),
    /// The signature is not the one the key makes.
    Mismatch,
}

/// What the head of a signed call claims, to be proven with its body.
#[derive(Debug)]
pub struct Claim {
    secret: String,
    key_id: String,
    region: String,
    time: SystemTime,
    signed_headers: Vec<String>,
    signature: String,
}

impl Verifier {
    /// The first check, on the head alone: `Ok(None)` when anyone may
    /// call, `Ok(Some(claim))` when the head is a well-formed signature by
    /// a known key, dated within [`MAX_SKEW`] of `now`.
    pub fn check_head(&self, parts: &Parts, now: SystemTime) -> Result<Option<Claim>, AuthError> {
        let (keys, region) = match self {
            Verifier::Anyone => return Ok(None),
            Verifier::Keys { keys, region } => (keys, region),
        };
        let Some(header) = parts.headers.get(hyper::header::AUTHORIZATION) else {
            return Err(AuthError::Missing);
        };
        let header = header
            .to_str()
            .map_err(|_| AuthError::Incomplete("Authorization is not text".to_owned()))?;
        let parsed = Authorization::parse(header)?;
        let secret = keys.0.get(parsed.key_id).ok_or(AuthError::UnknownKey)?;
        if parsed.region != region || parsed.service != SERVICE {
            return Err(AuthError::WrongScope(format!(
                "Credential should be scoped to a valid region and service: {region}/{SERVICE}, \
                 not {}/{}",
                parsed.region, parsed.service
            )));
        }
        let stamp = parts
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AuthError::Incomplete("X-Amz-Date is missing".to_owned()))?;
        let time = parse_amz_date(stamp)
            .ok_or_else(|| AuthError::Incomplete(format!("X-Amz-Date {stamp:?} is not a date")))?;
        if !stamp.starts_with(parsed.date) {
            return Err(AuthError::Incomplete(format!(
                "the credential's date {} is not X-Amz-Date's {stamp}",
                parsed.date
            )));
        }
        // How far apart the two clocks are, either way.
        let skew = now.duration_since(time).unwrap_or_else(|ahead| ahead.duration());
        if skew > MAX_SKEW {
            let (earliest, latest) = (now - MAX_SKEW, now + MAX_SKEW);
            let message = if time < now {
                format!(
                    "Signature expired: {stamp} is now earlier than {} ({} - 5 min.)",
                    amz_date(earliest),
                    amz_date(now)
                )
            } else {
                format!(
                    "Signature not yet current: {stamp} is still later than {} ({} + 5 min.)",
                    amz_date(latest),
                    amz_date(now)
                )
            };
            return Err(AuthError::Expired(message));
        }
        let mut signed_headers: Vec<String> =
            parsed.signed_headers.split(';').map(str::to_owned).collect();
        signed_headers.retain(|h| !h.is_empty());
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(AuthError::Incomplete("SignedHeaders must include host".to_owned()));
        }
        Ok(Some(Claim {
            secret: secret.clone(),
            key_id: parsed.key_id.to_owned(),
            region: region.clone(),
            time,
            signed_headers,
            signature: parsed.signature.to_owned(),
        }))
    }
}

impl Claim {
    /// The proof: the signature made again over the request as received,
    /// `body` included, and compared in constant time.
    pub fn check_body(self, parts: &Parts, body: &[u8]) -> Result<(), AuthError> {
        let mut headers = Vec::with_capacity(self.signed_headers.len());
        for name in &self.signed_headers {
            // Repeated headers are signed as one, comma-joined.
            let values: Vec<&str> = parts
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| v.to_str().map_err(|_| AuthError::Mismatch))
                .collect::<Result<_, _>>()?;
            if values.is_empty() {
                return Err(AuthError::Mismatch);
            }
            headers.push((name.as_str(), values.join(",")));
        }
        // The request target as received; the host is the signed `Host`.
        let uri = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let hash = hex(&Sha256::digest(body));
        let request = SignableRequest::new(
            parts.method.as_str(),
            uri,
            headers.iter().map(|(n, v)| (*n, v.as_str())),
            SignableBody::Precomputed(hash),
        )
        .map_err(|_| AuthError::Mismatch)?;
        let identity = Credentials::new(&self.key_id, &self.secret, None, None, "kf-api").into();
        let mut settings = SigningSettings::default();
        // What the caller signed is what counts: nothing left out.
        settings.excluded_headers = Some(Vec::new());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(self.time)
            .settings(settings)
            .build()
            .map_err(|_| AuthError::Mismatch)?
            .into();
        let expected = sign(request, &params).map_err(|_| AuthError::Mismatch)?.into_parts().1;
        if constant_time_eq(expected.as_bytes(), self.signature.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

/// The parts of `AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(header: &'a str) -> Result<Authorization<'a>, AuthError> {
        let incomplete = |what: &str| {
            AuthError::Incomplete(format!(
                "Authorization header requires '{what}' parameter. Authorization={header}"
            ))
        };
        let Some(rest) = header.strip_prefix("AWS4-HMAC-SHA256 ") else {
            return Err(AuthError::Incomplete(
                "Authorization header must use the AWS4-HMAC-SHA256 algorithm".to_owned(),
            ));
        };
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let (key, value) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
            match key {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed_headers = Some(value),
                "Signature" => signature = Some(value),
                _ => {}
            }
        }
        let credential = credential.ok_or_else(|| incomplete("Credential"))?;
        let signed_headers = signed_headers.ok_or_else(|| incomplete("SignedHeaders"))?;
        let signature = signature.ok_or_else(|| incomplete("Signature"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(AuthError::Incomplete(format!(
                "Credential should be ID/date/region/service/aws4_request, not {credential}"
            )));
        };
        Ok(Authorization { key_id, date, region, service, signed_headers, signature })
    }
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_amz_date(stamp: &str) -> Option<SystemTime> {
    let b = stamp.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> { stamp.get(range)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = crate::ids::days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// A time as `YYYYMMDDTHHMMSSZ`.
fn amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (y, mo, d) = crate::ids::civil_from_days(secs.div_euclid(86_400));
    let rest = secs.rem_euclid(86_400);
    format!("{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths
/// only: a signature compared byte by byte, stopping at the first
/// difference, would tell an attacker how much of a guess was right. Two
/// lines rather than a crate.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_never_shown() {
        let keys = Keys::parse(
            "# the pod's callers\nAKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n\n",
        )
        .expect("keys");
        assert_eq!(keys.len(), 1);
        let shown = format!("{keys:?}");
        assert_eq!(shown, r#"["AKIDEXAMPLE"]"#);
        assert!(Keys::parse("no-colon").is_err());
        assert!(Keys::parse("id:").is_err());
    }

    #[test]
    fn dates_both_ways() {
        let t = parse_amz_date("20150830T123600Z").expect("a date");
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(t.duration_since(UNIX_EPOCH).expect("after").as_secs(), 1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert!(parse_amz_date("20151330T123600Z").is_none());
        assert!(parse_amz_date("2015-08-30").is_none());
    }

    const KEY: &str = "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// The requests of `fixtures/sigv4/invoke.json`: signed by botocore and
    /// by the Rust SDK (`tools/sigv4_fixtures.py`), with their bodies and
    /// the time they were signed at.
    fn signed_requests() -> Vec<(Parts, Vec<u8>, SystemTime, String)> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sigv4/invoke.json");
        let cases: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture"))
                .expect("JSON");
        cases
            .as_array()
            .expect("a list")
            .iter()
            .map(|case| {
                let mut request = hyper::Request::builder()
                    .method(case["method"].as_str().expect("a method"))
                    .uri(case["path_and_query"].as_str().expect("a target"));
                let mut date = "";
                for pair in case["headers"].as_array().expect("headers") {
                    let (name, value) =
                        (pair[0].as_str().expect("a name"), pair[1].as_str().expect("a value"));
                    if name.eq_ignore_ascii_case("x-amz-date") {
                        date = value;
                    }
                    request = request.header(name, value);
                }
                let time = parse_amz_date(date).expect("a date");
                let (parts, ()) = request.body(()).expect("a request").into_parts();
                let body = case["body"].as_str().expect("a body").as_bytes().to_vec();
                (parts, body, time, case["client"].as_str().expect("a client").to_owned())
            })
            .collect()
    }

    fn verifier(keys: &str) -> Verifier {
        Verifier::Keys { keys: Keys::parse(keys).expect("keys"), region: "us-east-1".to_owned() }
    }

    /// What nobody here wrote signs; we check. Every request botocore and
    /// the Rust SDK signed passes, a minute after it was signed; changed in
    /// any way, it does not.
    #[test]
    fn the_sdks_signatures_are_recognised_and_nothing_else() {
        let cases = signed_requests();
        assert!(cases.len() >= 5);
        let pod = verifier(KEY);
        for (parts, body, signed_at, client) in &cases {
            let now = *signed_at + Duration::from_secs(60);
            let claim = pod.check_head(parts, now).unwrap_or_else(|e| panic!("{client}: {e:?}"));
            let claim = claim.expect("a claim");
            assert_eq!(claim.check_body(parts, body), Ok(()), "{client} {}", parts.uri);
            // Another body.
            let mut other = body.clone();
            other.extend_from_slice(b" ");
            let claim = pod.check_head(parts, now).expect("head").expect("a claim");
            assert_eq!(claim.check_body(parts, &other), Err(AuthError::Mismatch), "{client}");
            // Another path.
            let mut moved = parts.clone();
            moved.uri = "/2015-03-31/functions/other/invocations".parse().expect("a uri");
            let claim = pod.check_head(&moved, now).expect("head").expect("a claim");
            assert_eq!(claim.check_body(&moved, body), Err(AuthError::Mismatch), "{client}");
            // Another secret for the same key id.
            let wrong = verifier("AKIDEXAMPLE:not-the-secret");
            let claim = wrong.check_head(parts, now).expect("head").expect("a claim");
            assert_eq!(claim.check_body(parts, body), Err(AuthError::Mismatch), "{client}");
            // A key the pod does not have, a pod with none.
            assert_eq!(
                verifier("AKIDOTHER:x").check_head(parts, now).err(),
                Some(AuthError::UnknownKey)
            );
            assert_eq!(verifier("").check_head(parts, now).err(), Some(AuthError::UnknownKey));
            // Past the clock skew AWS allows, either way.
            for off in
                [*signed_at + Duration::from_secs(301), *signed_at - Duration::from_secs(301)]
            {
                assert!(
                    matches!(pod.check_head(parts, off), Err(AuthError::Expired(_))),
                    "{client}"
                );
            }
            // Another region.
            let eu = Verifier::Keys {
                keys: Keys::parse(KEY).expect("keys"),
                region: "eu-west-1".to_owned(),
            };
            assert!(matches!(eu.check_head(parts, now), Err(AuthError::WrongScope(_))));
            // Unsigned.
            let mut bare = parts.clone();
            bare.headers.remove(hyper::header::AUTHORIZATION);
            assert_eq!(pod.check_head(&bare, now).err(), Some(AuthError::Missing));
            // Anyone, when the pod says so.
            assert!(matches!(Verifier::Anyone.check_head(&bare, now), Ok(None)));
        }
    }

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
