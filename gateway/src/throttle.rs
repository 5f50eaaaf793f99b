//! The HTTP API's route throttling: a token bucket per route, holding up to
//! `ThrottlingBurstLimit` requests and refilled at `ThrottlingRateLimit` a
//! second, as the template's `DefaultRouteSettings` set it
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html>).
//! A request that finds its route's bucket empty gets the HTTP API's 429
//! `{"message":"Too Many Requests"}` before anything else is done for it.
//!
//! On AWS the limits hold for the whole API; here each pod has its own
//! buckets, so `N` pods take up to `N` times the rate (docs/configuration.md says so).

use crate::template::Throttle;
use std::sync::Mutex;
use tokio::time::Instant;

/// One route's bucket.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    rate: f64,
    /// Tokens left, and when they were counted. A std mutex: held for a few
    /// arithmetic operations, never across an await.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(throttle: Throttle, now: Instant) -> TokenBucket {
        TokenBucket::with(f64::from(throttle.burst), throttle.rate, now)
    }

    /// A bucket of `burst` tokens, refilled at `rate` a second, full at
    /// `now`.
    pub fn with(burst: f64, rate: f64, now: Instant) -> TokenBucket {
        TokenBucket { burst, rate, state: Mutex::new((burst, now)) }
    }

    /// Takes one token at `now`, if there is one.
    pub fn try_take(&self, now: Instant) -> bool {
        self.try_take_n(1.0, now)
    }

    /// Takes `n` tokens at once if the bucket holds them at `now`.
    pub fn try_take_n(&self, n: f64, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, then) = *state;
        let refilled = now.saturating_duration_since(then).as_secs_f64() * self.rate;
        let tokens = (tokens + refilled).min(self.burst);
        if tokens >= n {
            *state = (tokens - n, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::new(Throttle { burst: 5, rate: 2.0 }, start);
        let taken = (0..8).filter(|_| bucket.try_take(start)).count();
        assert_eq!(taken, 5, "the burst, and no more at once");
        // Two a second: one after half a second, not before.
        assert!(!bucket.try_take(start + Duration::from_millis(499)));
        assert!(bucket.try_take(start + Duration::from_millis(500)));
        assert!(!bucket.try_take(start + Duration::from_millis(500)));
        // Idle for long: full again, never fuller than the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| bucket.try_take(later)).count(), 5);
    }

    #[test]
    fn a_zero_burst_refuses_everything() {
        let start = Instant::now();
        let bucket = TokenBucket::new(Throttle { burst: 0, rate: 100.0 }, start);
        assert!(!bucket.try_take(start + Duration::from_secs(10)));
    }
}
