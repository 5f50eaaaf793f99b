//! API keys: who may call the protected routes when authentication is on.
//!
//! The authorizer function (`functions/authorizer`) holds the keys only as
//! SHA-256 hashes, each with an id (`id:hash`, from a `NoEcho` parameter on
//! AWS or a Secret in a pod), so no plain key is ever in a file, a template
//! or an environment variable. A request's `Authorization: Bearer <key>` is
//! hashed and compared with every hash in constant time; the id of the key
//! that matched goes on to the function, the key itself nowhere (it is never
//! logged, and [`Decision`] does not hold it).

use sha2::{Digest, Sha256};

/// The environment variable holding the `id:hash` list.
pub const KEYS_VARIABLE: &str = "KF_API_KEYS";
/// Longest key accepted: far longer than any key `make keygen` makes, and
/// short enough that hashing a hostile header costs nothing.
pub const MAX_KEY_BYTES: usize = 256;

/// The configured keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    entries: Vec<(String, [u8; 32])>,
}

/// The hashes are not the keys, but they are not for logs either.
impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.entries.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("ApiKeys").field("ids", &ids).finish()
    }
}

/// Why the key list cannot be used. Entries are counted from 1; the
/// messages never repeat a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConfigError {
    #[error("{KEYS_VARIABLE} entry {0}: not `id:sha256-hex`")]
    NotAPair(usize),
    #[error("{KEYS_VARIABLE} entry {0}: the id must be 1 to 64 letters, digits, `-`, `_` or `.`")]
    BadId(usize),
    #[error("{KEYS_VARIABLE} entry {0}: the hash must be 64 hexadecimal digits (SHA-256)")]
    BadHash(usize),
    #[error("{KEYS_VARIABLE} entry {0}: the id {1:?} is used twice")]
    DuplicateId(usize, String),
}

/// What the authorizer answers for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A configured key: its id.
    Allow { key_id: String },
    /// No key, a malformed header, or a key that is not configured.
    Deny(Denial),
}

/// Why a request was denied, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <key>`, or a key too long or with unprintable bytes.
    Malformed,
    /// A well-formed key that matches no configured hash.
    Unknown,
}

impl ApiKeys {
    /// Reads `id:hash` entries separated by commas, spaces or new lines. An
    /// empty list is valid: every request is then denied.
    pub fn parse(list: &str) -> Result<ApiKeys, KeyConfigError> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        let items = list.split([',', ' ', '\n', '\r', '\t']).filter(|s| !s.is_empty());
        for (i, item) in items.enumerate() {
            let index = i + 1;
            let (id, hex) = item.split_once(':').ok_or(KeyConfigError::NotAPair(index))?;
            let valid_id = (1..=64).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_id {
                return Err(KeyConfigError::BadId(index));
            }
            let hash = parse_hash(hex).ok_or(KeyConfigError::BadHash(index))?;
            if entries.iter().any(|(known, _)| known == id) {
                return Err(KeyConfigError::DuplicateId(index, id.to_owned()));
            }
            entries.push((id.to_owned(), hash));
        }
        Ok(ApiKeys { entries })
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is configured (every request is denied).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The decision for an `Authorization` header's value, if there is one.
    pub fn check(&self, authorization: Option<&str>) -> Decision {
        let Some(value) = authorization else { return Decision::Deny(Denial::Missing) };
        let Some(key) = bearer(value) else { return Decision::Deny(Denial::Malformed) };
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Every hash is compared in full, whichever matches.
        let mut found = None;
        for (id, hash) in &self.entries {
            if constant_time_eq(&presented, hash) && found.is_none() {
                found = Some(id);
            }
        }
        match found {
            Some(id) => Decision::Allow { key_id: id.clone() },
            None => Decision::Deny(Denial::Unknown),
        }
    }
}

/// The `id:hash` line for `key`, as `make keygen` prints it.
pub fn hash_line(id: &str, key: &str) -> String {
    let hash = Sha256::digest(key.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{id}:{hex}")
}

/// The key of `Bearer <key>` (the scheme in any case), if well formed.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim_start();
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    (scheme.eq_ignore_ascii_case("bearer")
        && !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && printable)
        .then_some(key)
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "kf_3q2Zl9nY8cV1xW4bT7mR0pS6uA5eD";

    fn keys() -> ApiKeys {
        let list = format!("{},{}", hash_line("ci", KEY), hash_line("alice", "another-key"));
        ApiKeys::parse(&list).expect("valid")
    }

    #[test]
    fn a_configured_key_is_allowed_with_its_id() {
        let allow = |id: &str| Decision::Allow { key_id: id.to_owned() };
        assert_eq!(keys().check(Some(&format!("Bearer {KEY}"))), allow("ci"));
        assert_eq!(keys().check(Some(&format!("bearer  {KEY} "))), allow("ci"));
        assert_eq!(keys().check(Some("Bearer another-key")), allow("alice"));
    }

    #[test]
    fn anything_else_is_denied_and_says_why() {
        let keys = keys();
        let mut last_byte = KEY.to_owned();
        last_byte.pop();
        last_byte.push('E');
        for (header, why) in [
            (None, Denial::Missing),
            (Some(""), Denial::Malformed),
            (Some(KEY), Denial::Malformed),
            (Some("Basic dXNlcjpwYXNz"), Denial::Malformed),
            (Some("Bearer "), Denial::Malformed),
            (Some("Bearer a\u{7f}b"), Denial::Malformed),
            (Some(&format!("Bearer {}", "k".repeat(MAX_KEY_BYTES + 1)) as &str), Denial::Malformed),
            (Some("Bearer wrong"), Denial::Unknown),
            (Some(&format!("Bearer {last_byte}") as &str), Denial::Unknown),
            (Some(&format!("Bearer {}", hash_line("ci", KEY)) as &str), Denial::Unknown),
        ] {
            assert_eq!(keys.check(header), Decision::Deny(why), "{header:?}");
        }
        // No keys: nothing is allowed.
        let none = ApiKeys::parse("").expect("empty");
        assert!(none.is_empty());
        assert_eq!(none.check(Some(&format!("Bearer {KEY}"))), Decision::Deny(Denial::Unknown));
    }

    #[test]
    fn the_list_is_checked_entry_by_entry() {
        let good = hash_line("ci", KEY);
        let hash = good.split_once(':').expect("a pair").1.to_owned();
        assert_eq!(
            ApiKeys::parse(&format!(" {good}\n{}\n", hash_line("b", "x"))).map(|k| k.len()),
            Ok(2)
        );
        for (list, error) in [
            (format!("{good},nocolon"), KeyConfigError::NotAPair(2)),
            (format!(":{hash}"), KeyConfigError::BadId(1)),
            (format!("a b:{hash}"), KeyConfigError::NotAPair(1)),
            (format!("ci:{}", &hash[1..]), KeyConfigError::BadHash(1)),
            (format!("ci:{}g", &hash[1..]), KeyConfigError::BadHash(1)),
            (format!("{good},{good}"), KeyConfigError::DuplicateId(2, "ci".into())),
        ] {
            assert_eq!(ApiKeys::parse(&list), Err(error), "{list}");
        }
        // Nothing of a hash in messages or debug output.
        let shown = format!("{:?} {}", keys(), KeyConfigError::BadHash(1));
        assert!(!shown.contains(&hash[..16]), "{shown}");
    }

    #[test]
    fn hashes_are_sha256_in_lower_case_hex() {
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(
            hash_line("t", "abc"),
            "t:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
