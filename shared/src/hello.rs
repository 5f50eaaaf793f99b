//! The work behind `POST /api/v1/hello`.

use crate::factor;
use crate::models::{Algorithm, HelloRequest, HelloResponse};
use rand::{Rng, RngExt};
use std::ops::Range;
use std::time::Instant;

/// Where `n` is drawn from when the request has none: the original's range.
pub const DEFAULT_RANGE: Range<u64> = 1_250_000_000_000..2_500_000_000_000;

/// Factors the request's `n` (or a random one) and builds the response.
///
/// `elapsed_time` covers the factoring alone, as in the original.
pub fn hello(request: &HelloRequest, rng: &mut impl Rng) -> HelloResponse {
    let n = request.n.unwrap_or_else(|| rng.random_range(DEFAULT_RANGE));
    let start = Instant::now();
    let p = largest_prime_factor(n, request.algorithm);
    let elapsed = start.elapsed().as_secs_f64();
    HelloResponse {
        message1: "Hello, world!".to_owned(),
        message2: format!(
            "The largest prime factor of {n} is {p}. Calculation took {elapsed:.3} seconds."
        ),
        n,
        largest_prime_factor: p,
        elapsed_time: elapsed,
        algorithm: request.algorithm,
    }
}

/// The largest prime factor of `n >= 2` by the given algorithm.
pub fn largest_prime_factor(n: u64, algorithm: Algorithm) -> u64 {
    match algorithm {
        Algorithm::Trial => factor::trial(n),
        Algorithm::Rho => factor::rho(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_carries_the_originals_fields() {
        let request = HelloRequest { n: Some(1_462_370_954_730), algorithm: Algorithm::Trial };
        let r = hello(&request, &mut rand::rng());
        assert_eq!(r.message1, "Hello, world!");
        assert_eq!(r.largest_prime_factor, 398_311);
        let prefix = "The largest prime factor of 1462370954730 is 398311. Calculation took ";
        let seconds = r.message2.strip_prefix(prefix).and_then(|s| s.strip_suffix(" seconds."));
        assert_eq!(seconds, Some(format!("{:.3}", r.elapsed_time).as_str()), "{}", r.message2);
    }

    #[test]
    fn random_n_is_in_the_default_range() {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let r = hello(&HelloRequest::default(), &mut rng);
            assert!(DEFAULT_RANGE.contains(&r.n), "{}", r.n);
            assert_eq!(r.n % r.largest_prime_factor, 0);
        }
    }
}
