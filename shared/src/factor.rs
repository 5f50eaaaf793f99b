//! Largest prime factor of a 64-bit integer, two ways.
//!
//! * [`trial`] is trial division, deliberately CPU-bound like the original
//!   Python service so that an autoscaler has real work to react to. Its cost
//!   grows with the square root of the second-largest prime factor, so it is
//!   only accepted up to [`TRIAL_MAX_N`].
//! * [`rho`] is Pollard's rho with Brent's cycle finding and batched gcds,
//!   on Montgomery arithmetic, with a deterministic Miller-Rabin primality
//!   test: it handles every `u64`.
//!
//! Both take `n >= 2`; callers validate input first (see [`crate::validate`]).

/// The largest `n` that `trial` accepts.
///
/// Trial division's worst case is a prime (or a product of two primes close
/// to `sqrt(n)`): it then tries every candidate up to `sqrt(n)`. At this bound
/// that is about 8.9 million candidates of the 6k±1 wheel, which `make bench`
/// measures at under 0.1 s on one core of the reference machine (see
/// docs/measurements.md). Larger inputs are refused with a message that points to `rho`.
pub const TRIAL_MAX_N: u64 = 1_000_000_000_000_000;

/// Largest prime factor of `n` by trial division over 2, 3 and the 6k±1
/// wheel.
///
/// Returns `n` itself when `n` is prime. `n` must be at least 2.
pub fn trial(n: u64) -> u64 {
    debug_assert!(n >= 2, "callers validate n >= 2");
    let mut n = n;
    let mut largest = 1;
    for p in [2, 3] {
        while n.is_multiple_of(p) {
            largest = p;
            n /= p;
        }
    }
    // Below 2^32 the remaining work runs on 32-bit division, which is
    // several times cheaper than 64-bit division on common x86 cores.
    let mut p: u64 = 5;
    let mut limit = n.isqrt();
    while p <= limit && n > u64::from(u32::MAX) {
        for d in [p, p + 2] {
            if n.is_multiple_of(d) {
                largest = d;
                while n.is_multiple_of(d) {
                    n /= d;
                }
                limit = n.isqrt();
            }
        }
        p += 6;
    }
    if n <= u64::from(u32::MAX) && p <= limit {
        // `n` fits in 32 bits, so `limit < 2^16` and every divisor fits too.
        let (mut m, mut q) = (n as u32, p as u32);
        let mut limit32 = m.isqrt();
        while q <= limit32 {
            for d in [q, q + 2] {
                if m % d == 0 {
                    largest = u64::from(d);
                    while m % d == 0 {
                        m /= d;
                    }
                    limit32 = m.isqrt();
                }
            }
            q += 6;
        }
        n = u64::from(m);
    }
    if n > 1 { n } else { largest }
}

/// Largest prime factor of any `n >= 2`, by Pollard-Brent rho.
///
/// Small prime factors are stripped by trial division first (cheaper than a
/// rho step for them); what remains is split by rho until every part passes
/// [`is_prime`].
pub fn rho(n: u64) -> u64 {
    debug_assert!(n >= 2, "callers validate n >= 2");
    let mut n = n;
    let mut largest = 1;
    let twos = n.trailing_zeros();
    if twos > 0 {
        largest = 2;
        n >>= twos;
    }
    for &p in SMALL_ODD_PRIMES {
        if p * p > n {
            break;
        }
        if n.is_multiple_of(p) {
            largest = p;
            while n.is_multiple_of(p) {
                n /= p;
            }
        }
    }
    // Every factor below the last small prime is gone, so if the rest is below
    // that prime squared it is 1 or a prime.
    let mut pending = Vec::new();
    if n > 1 {
        pending.push(n);
    }
    while let Some(m) = pending.pop() {
        if m <= largest {
            // Its prime factors cannot beat the best one found so far.
            continue;
        }
        if is_prime(m) {
            largest = m;
            continue;
        }
        let d = find_factor(m);
        pending.push(d);
        pending.push(m / d);
    }
    largest
}

/// Odd primes below 128, tried before rho starts.
const SMALL_ODD_PRIMES: &[u64] = &[
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127,
];

/// Deterministic Miller-Rabin for every `u64`.
///
/// The seven bases are Jim Sinclair's set, proven to leave no strong
/// pseudoprime below 2^64.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    if n < 41 * 41 {
        return true;
    }
    let mont = Montgomery::new(n);
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    let one = mont.one();
    let minus_one = mont.to_mont(n - 1);
    'bases: for base in [2, 325, 9375, 28178, 450_775, 9_780_504, 1_795_265_022] {
        let a = base % n;
        if a == 0 {
            continue;
        }
        let mut x = mont.pow(mont.to_mont(a), d);
        if x == one || x == minus_one {
            continue;
        }
        for _ in 1..s {
            x = mont.mul(x, x);
            if x == minus_one {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// A non-trivial factor of an odd composite `n` that has no prime factor
/// below 128.
fn find_factor(n: u64) -> u64 {
    let mont = Montgomery::new(n);
    // How many steps share one gcd: a gcd costs about as much as 40 steps.
    const BATCH: u64 = 128;
    for c in 1..n {
        let c = mont.to_mont(c);
        let step = |y: u64| mont.add(mont.mul(y, y), c);
        let mut y = mont.one();
        let mut x;
        let mut saved = y;
        let mut product = mont.one();
        let mut g = 1;
        let mut r = 1;
        loop {
            x = y;
            for _ in 0..r {
                y = step(y);
            }
            let mut k = 0;
            while k < r && g == 1 {
                saved = y;
                for _ in 0..BATCH.min(r - k) {
                    y = step(y);
                    product = mont.mul(product, x.abs_diff(y));
                }
                // Montgomery form multiplies by 2^64, which shares no factor
                // with odd n, so the gcd is the same as in plain form.
                g = gcd(product, n);
                k += BATCH;
            }
            r *= 2;
            if g != 1 {
                break;
            }
        }
        if g == n {
            // The batch overshot (or the product hit 0 mod n): replay it one
            // step at a time from the last saved point.
            loop {
                saved = step(saved);
                g = gcd(x.abs_diff(saved), n);
                if g != 1 {
                    break;
                }
            }
        }
        if g != n {
            return g;
        }
        // This polynomial cycled without splitting n: try the next one.
    }
    unreachable!("find_factor is only called on odd composites, which some x^2 + c splits")
}

/// Binary gcd: no division, so much cheaper than Euclid's on 64-bit words.
fn gcd(a: u64, b: u64) -> u64 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    let mut a = a >> a.trailing_zeros();
    let mut b = b;
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// Arithmetic modulo an odd `n` in Montgomery form (R = 2^64), so that a
/// modular multiplication costs three word multiplications instead of a
/// 128-by-64-bit division.
struct Montgomery {
    /// The odd modulus.
    n: u64,
    /// `n^-1 mod 2^64`, for the reduction.
    n_inv: u64,
    /// `R^2 mod n`, to bring numbers into Montgomery form.
    r2: u64,
}

impl Montgomery {
    fn new(n: u64) -> Self {
        debug_assert!(n % 2 == 1);
        // Newton's iteration doubles the correct low bits each round:
        // n * n ≡ 1 (mod 8) for odd n gives 3 bits, five rounds give 96.
        let mut n_inv = n;
        for _ in 0..5 {
            n_inv = n_inv.wrapping_mul(2u64.wrapping_sub(n.wrapping_mul(n_inv)));
        }
        let r = (u128::from(u64::MAX) % u128::from(n) + 1) % u128::from(n);
        let r2 = (r * r % u128::from(n)) as u64;
        Self { n, n_inv, r2 }
    }

    /// `t * R^-1 mod n` for `t < n * 2^64`.
    #[inline]
    fn reduce(&self, t: u128) -> u64 {
        let m = (t as u64).wrapping_mul(self.n_inv);
        let mn = u128::from(m) * u128::from(self.n);
        // The low words of t and m*n are equal by construction, so the
        // difference of the high words is the exact quotient (mod n).
        let (hi, borrow) = ((t >> 64) as u64).overflowing_sub((mn >> 64) as u64);
        if borrow { hi.wrapping_add(self.n) } else { hi }
    }

    #[inline]
    fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce(u128::from(a) * u128::from(b))
    }

    #[inline]
    fn add(&self, a: u64, b: u64) -> u64 {
        let (s, overflow) = a.overflowing_add(b);
        if overflow || s >= self.n { s.wrapping_sub(self.n) } else { s }
    }

    fn to_mont(&self, a: u64) -> u64 {
        self.mul(a % self.n, self.r2)
    }

    fn one(&self) -> u64 {
        self.to_mont(1)
    }

    fn pow(&self, mut base: u64, mut exp: u64) -> u64 {
        let mut acc = self.one();
        while exp > 0 {
            if exp & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            exp >>= 1;
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn montgomery_round_trip_and_product() {
        for n in [3u64, 5, 1_000_003, (1 << 61) - 1, u64::MAX - 58, u64::MAX] {
            let m = Montgomery::new(n);
            assert_eq!(m.n.wrapping_mul(m.n_inv), 1, "inverse of {n}");
            for (a, b) in [(2u64, 3u64), (n - 1, n - 1), (n / 2, n / 3 + 1)] {
                let expected = (u128::from(a % n) * u128::from(b % n) % u128::from(n)) as u64;
                let product = m.reduce(u128::from(m.mul(m.to_mont(a), m.to_mont(b))));
                assert_eq!(product, expected, "{a} * {b} mod {n}");
            }
        }
    }

    #[test]
    fn gcd_matches_euclid() {
        fn euclid(a: u64, b: u64) -> u64 {
            if b == 0 { a } else { euclid(b, a % b) }
        }
        for (a, b) in [(0, 7), (7, 0), (12, 18), (1 << 40, 6), (u64::MAX, 3 * 5 * 17), (97, 89)] {
            assert_eq!(gcd(a, b), euclid(a, b), "gcd({a}, {b})");
        }
    }

    #[test]
    fn strong_pseudoprimes_are_composite() {
        // Strong pseudoprimes to many small bases; each would fool a weaker test.
        for n in [
            2047u64,
            1_373_653,
            25_326_001,
            3_215_031_751,
            2_152_302_898_747,
            3_474_749_660_383,
            341_550_071_728_321,
            3_825_123_056_546_413_051,
        ] {
            assert!(!is_prime(n), "{n} is composite");
        }
    }
}
