//! `trial`, `rho` and `is_prime` against plain, obviously correct references.
//!
//! The references below divide by every candidate in turn and take
//! nothing on trust, so they are slow: they only run where they are cheap
//! (numbers below about 2^47, so at most a few million divisions). Bigger
//! inputs are built from primes the reference has checked, so that the
//! expected answer is known by construction, or are proven prime by a Lucas
//! certificate whose every step this file checks itself.

use proptest::prelude::*;
use shared::factor::{TRIAL_MAX_N, is_prime, rho, trial};
use shared::hello::DEFAULT_RANGE;

// ---------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------

/// Largest prime factor by dividing out every `d >= 2` in turn.
///
/// Costs up to `sqrt(n)` divisions, so only for `n` below about 2^47.
fn reference_lpf(n: u64) -> u64 {
    assert!((2..1 << 47).contains(&n), "reference_lpf({n}) is too expensive");
    let mut n = n;
    let mut largest = 1;
    let mut d = 2;
    while d <= n / d {
        while n.is_multiple_of(d) {
            largest = d;
            n /= d;
        }
        d += 1;
    }
    // What is left is 1 or a prime above every `d` tried.
    largest.max(n)
}

/// Primality by trying every divisor up to `sqrt(n)`; only for `n` below
/// about 2^47.
fn reference_is_prime(n: u64) -> bool {
    assert!(n < 1 << 47, "reference_is_prime({n}) is too expensive");
    n >= 2 && (2..).take_while(|&d| d <= n / d).all(|d| !n.is_multiple_of(d))
}

/// The largest prime `<= n`, for `n >= 2`.
fn reference_prev_prime(n: u64) -> u64 {
    (2..=n).rev().find(|&m| reference_is_prime(m)).expect("2 is prime")
}

/// `a^e mod n` by square-and-multiply on `u128`: slow but plainly right.
fn pow_mod(a: u64, e: u64, n: u64) -> u64 {
    let n = u128::from(n);
    let (mut acc, mut base, mut e) = (1 % n, u128::from(a) % n, e);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * base % n;
        }
        base = base * base % n;
        e >>= 1;
    }
    acc as u64
}

/// Lucas' theorem: `n` is prime iff some `a` has multiplicative order exactly
/// `n - 1` modulo `n`, i.e. `a^(n-1) = 1` but `a^((n-1)/q) != 1` for every
/// prime `q | n - 1`.
///
/// `factors` is the factorization of `n - 1` as `(prime, exponent)`; it is
/// multiplied back out and each prime is checked by [`reference_is_prime`],
/// so a wrong table fails loudly instead of proving nothing.
fn lucas_certifies_prime(n: u64, factors: &[(u64, u32)]) -> bool {
    let product: u128 = factors.iter().map(|&(q, e)| u128::from(q).pow(e)).product();
    assert_eq!(product, u128::from(n - 1), "factorization of {n} - 1");
    for &(q, _) in factors {
        assert!(reference_is_prime(q), "{q} in the factorization of {n} - 1 is prime");
    }
    (2..1000).any(|a| {
        pow_mod(a, n - 1, n) == 1 && factors.iter().all(|&(q, _)| pow_mod(a, (n - 1) / q, n) != 1)
    })
}

/// Proves `n` composite: by Fermat's little theorem, `a^(n-1) != 1 (mod n)`
/// for some `a` is only possible for a composite.
fn has_fermat_witness(n: u64) -> bool {
    (2..100).any(|a| pow_mod(a, n - 1, n) != 1)
}

/// One Miller-Rabin round: does `n` look prime to base `a`?
///
/// Used to show that the pseudoprimes below really fool the weaker tests
/// they are famous for, so that the table is checked, not trusted.
fn is_strong_probable_prime(n: u64, a: u64) -> bool {
    let s = (n - 1).trailing_zeros();
    let mut x = pow_mod(a, (n - 1) >> s, n);
    if x == 1 || x == n - 1 {
        return true;
    }
    for _ in 1..s {
        x = pow_mod(x, 2, n);
        if x == n - 1 {
            return true;
        }
    }
    false
}

/// Multiplies out `factors`, checking that each is prime by the reference.
fn product_of_checked_primes(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |acc, &p| {
        assert!(reference_is_prime(p), "{p} is prime");
        acc.checked_mul(p).expect("the product fits in a u64")
    })
}

/// Asserts that `trial` and `rho` both give `expected` for `n`, and that
/// `is_prime(n)` tells whether `n` is that prime itself.
fn assert_lpf(n: u64, expected: u64) {
    assert!(n <= TRIAL_MAX_N, "use assert_rho for {n} > TRIAL_MAX_N");
    assert_eq!(trial(n), expected, "trial({n})");
    assert_rho(n, expected);
}

/// [`assert_lpf`] without `trial`, for `n` above its bound.
fn assert_rho(n: u64, expected: u64) {
    assert_eq!(rho(n), expected, "rho({n})");
    assert_eq!(is_prime(n), n == expected, "is_prime({n})");
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// A prime of at most `max_bits` bits (at most 34), spread evenly over the
/// bit lengths so that tiny, 16-bit and 32-bit primes all turn up. It
/// shrinks towards 2.
fn prime(max_bits: u32) -> impl Strategy<Value = u64> {
    assert!((2..=34).contains(&max_bits));
    (2..=max_bits, any::<u64>())
        .prop_map(|(bits, x)| reference_prev_prime((x >> (64 - bits)).max(2)))
}

/// A prime of exactly 32 bits: a factor rho needs about 2^16 steps to find.
fn prime_u32_top() -> impl Strategy<Value = u64> {
    ((1u64 << 31) + 1000..1 << 32).prop_map(reference_prev_prime)
}

/// Multiplies `primes` in order, skipping any that would push the product
/// above `max`; returns the product and the primes used.
fn product_up_to(primes: Vec<u64>, max: u64) -> (u64, Vec<u64>) {
    let mut n = 1u64;
    let mut used = Vec::new();
    for p in primes {
        if let Some(m) = n.checked_mul(p).filter(|&m| m <= max) {
            n = m;
            used.push(p);
        }
    }
    (n, used)
}

// ---------------------------------------------------------------------------
// Random inputs against the reference
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// What the API factors when the request has no `n`: about 2^41, so a
    /// typical input leaves a prime cofactor above 2^32 and keeps `trial` in
    /// its 64-bit loop for a while.
    #[test]
    fn default_range_matches_reference(n in DEFAULT_RANGE) {
        let expected = reference_lpf(n);
        prop_assert_eq!(trial(n), expected, "trial({})", n);
        prop_assert_eq!(rho(n), expected, "rho({})", n);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Small `n`: `trial` runs only its 32-bit loop, and `rho` mostly finishes
    /// in its small-prime sieve or with a single primality test.
    #[test]
    fn small_n_matches_reference(n in 2u64..1_000_000) {
        let expected = reference_lpf(n);
        prop_assert_eq!(trial(n), expected, "trial({})", n);
        prop_assert_eq!(rho(n), expected, "rho({})", n);
        prop_assert_eq!(is_prime(n), reference_is_prime(n), "is_prime({})", n);
    }

    /// Any `u32`: `is_prime` runs Miller-Rabin for most of them (every `n`
    /// without a prime factor up to 37), and must agree with trial division.
    #[test]
    fn random_u32_matches_reference(n in 2u64..=u64::from(u32::MAX)) {
        let expected = reference_lpf(n);
        prop_assert_eq!(is_prime(n), reference_is_prime(n), "is_prime({})", n);
        prop_assert_eq!(trial(n), expected, "trial({})", n);
        prop_assert_eq!(rho(n), expected, "rho({})", n);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random primes of up to 34 bits (just past `u32::MAX`) are their own
    /// largest factor; each is checked by the reference first.
    #[test]
    fn primes_are_their_own_largest_factor(p in prime(34)) {
        prop_assert!(reference_is_prime(p));
        prop_assert!(is_prime(p), "is_prime({})", p);
        prop_assert_eq!(trial(p), p, "trial({})", p);
        prop_assert_eq!(rho(p), p, "rho({})", p);
    }

    /// The product of two arbitrary `u32`s is an unstructured number up to
    /// 2^64 whose answer is still cheap to know: the larger of the two
    /// factors' largest prime factors.
    #[test]
    fn product_of_two_u32s_matches_reference(
        a in 2u64..=u64::from(u32::MAX),
        b in 2u64..=u64::from(u32::MAX),
    ) {
        let n = a * b;
        prop_assert_eq!(rho(n), reference_lpf(a).max(reference_lpf(b)), "rho({} * {})", a, b);
        prop_assert!(!is_prime(n), "is_prime({} * {})", a, b);
    }

    /// The same for `trial`, with `b` small enough to keep `a * b` within
    /// `TRIAL_MAX_N`: the second-largest prime factor is then below 2^18, so
    /// the search stays short whatever `a` is.
    #[test]
    fn trial_on_product_of_u32_and_small_matches_reference(
        a in 2u64..=u64::from(u32::MAX),
        b in 2u64..TRIAL_MAX_N >> 32,
    ) {
        let n = a * b;
        let expected = reference_lpf(a).max(reference_lpf(b));
        prop_assert_eq!(trial(n), expected, "trial({} * {})", a, b);
        prop_assert_eq!(rho(n), expected, "rho({} * {})", a, b);
    }
}

// ---------------------------------------------------------------------------
// Products of known primes
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Two primes of 32 bits: rho's worst case on `u64` (about 2^16 steps
    /// before the sequences mod `p` collide), and products up to 2^64, where
    /// Montgomery addition overflows a word.
    #[test]
    fn semiprime_of_32_bit_primes(p in prime_u32_top(), q in prime_u32_top()) {
        let n = p * q;
        prop_assert_eq!(rho(n), p.max(q), "rho({} * {})", p, q);
        prop_assert!(!is_prime(n), "is_prime({} * {})", p, q);
        prop_assert!(is_prime(p) && is_prime(q));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Up to eight primes of up to 34 bits, as many as fit in a `u64`
    /// (repeats included): rho has to split composites recursively and keep
    /// the largest prime part.
    #[test]
    fn product_of_primes_for_rho(primes in prop::collection::vec(prime(34), 1..=8)) {
        let (n, used) = product_up_to(primes, u64::MAX);
        let expected = *used.iter().max().unwrap();
        prop_assert_eq!(rho(n), expected, "rho({}) = rho(product of {:?})", n, used);
        prop_assert_eq!(is_prime(n), used.len() == 1, "is_prime(product of {:?})", used);
    }

    /// One prime of up to 34 bits times up to seven of up to 22 bits, kept
    /// within `TRIAL_MAX_N`. `trial` must switch from its 64-bit to its
    /// 32-bit loop mid-way and recompute its limit after every factor; the
    /// 22-bit cap on the other primes keeps its search under 1.4 million
    /// candidates.
    #[test]
    fn product_of_primes_for_trial(
        big in prime(34),
        small in prop::collection::vec(prime(22), 0..=7),
    ) {
        let (n, used) = product_up_to([vec![big], small].concat(), TRIAL_MAX_N);
        let expected = *used.iter().max().unwrap();
        prop_assert_eq!(trial(n), expected, "trial({}) = trial(product of {:?})", n, used);
        prop_assert_eq!(rho(n), expected, "rho({}) = rho(product of {:?})", n, used);
    }

    /// Products of primes between 131 (the first one rho does not strip by
    /// division) and 1024: rho only ever sees composites of small primes,
    /// whose sequences tend to collide mod every factor at once, so a batch
    /// overshoots (gcd = n) and rho must replay it or change polynomial.
    #[test]
    fn product_of_primes_just_above_rho_sieve(
        primes in prop::collection::vec((131u64..1024).prop_map(reference_prev_prime), 2..=6),
    ) {
        let (n, used) = product_up_to(primes, u64::MAX);
        let expected = *used.iter().max().unwrap();
        prop_assert_eq!(rho(n), expected, "rho(product of {:?})", used);
        prop_assert!(!is_prime(n), "is_prime(product of {:?})", used);
        if n <= TRIAL_MAX_N {
            prop_assert_eq!(trial(n), expected, "trial(product of {:?})", used);
        }
    }

    /// `p^k` for the largest `k` up to the drawn one that fits: rho on a
    /// prime power gets the same collision mod `p`, `p^2`, ... so its gcd
    /// is often `n` itself, and a power of a 32-bit prime is as slow to
    /// split as a semiprime.
    #[test]
    fn prime_powers(p in prime(32), k in 2u32..=63) {
        let k = (2..=k).rev().find(|&k| p.checked_pow(k).is_some()).unwrap();
        let n = p.pow(k);
        prop_assert_eq!(rho(n), p, "rho({}^{})", p, k);
        prop_assert!(!is_prime(n), "is_prime({}^{})", p, k);
        if n <= TRIAL_MAX_N && p < 1 << 22 {
            prop_assert_eq!(trial(n), p, "trial({}^{})", p, k);
        }
    }
}

// ---------------------------------------------------------------------------
// Exhaustive small range
// ---------------------------------------------------------------------------

/// Every `n < 2^20` against a sieve of the largest prime factor.
///
/// Catches what a few random draws might miss: e.g. 14089 = 73 * 193, the
/// only composite made of primes above 37 that divides a Miller-Rabin base
/// (28178), so that base is skipped for it.
#[test]
fn every_n_below_2_pow_20_matches_sieve() {
    const LIMIT: usize = 1 << 20;
    // `lpf[m]` ends as the largest prime dividing `m`: primes are visited in
    // increasing order and each overwrites its multiples.
    let mut lpf = vec![0u32; LIMIT];
    for p in 2..LIMIT {
        if lpf[p] == 0 {
            for m in (p..LIMIT).step_by(p) {
                lpf[m] = p as u32;
            }
        }
    }
    assert!(!is_prime(0) && !is_prime(1));
    for (n, &expected) in lpf.iter().enumerate().skip(2) {
        let (n, expected) = (n as u64, u64::from(expected));
        assert_eq!(is_prime(n), n == expected, "is_prime({n})");
        assert_eq!(trial(n), expected, "trial({n})");
        assert_eq!(rho(n), expected, "rho({n})");
    }
}

// ---------------------------------------------------------------------------
// Named hard cases
// ---------------------------------------------------------------------------

/// The smallest inputs: no loop of either algorithm runs.
#[test]
fn smallest_n() {
    assert_lpf(2, 2);
    assert_lpf(3, 3);
    assert_lpf(4, 2);
    assert!(!is_prime(0) && !is_prime(1));
}

/// `2^k` is all factor 2: `trial` divides it all out before its wheel, `rho`
/// strips it with a shift, and nothing may be left over to test.
#[test]
fn powers_of_two() {
    for k in 1..64 {
        let n = 1u64 << k;
        if n <= TRIAL_MAX_N {
            assert_lpf(n, 2);
        } else {
            assert_rho(n, 2);
        }
    }
}

/// Squares and higher powers of the largest primes that still fit, where
/// rho's sequences collide mod `p` and mod `p^k` alike.
#[test]
fn squares_and_cubes_of_primes() {
    for (p, k) in [
        // The largest 32-bit prime squared: the largest prime square in u64.
        (4_294_967_291, 2),
        (4_294_967_279, 2),
        // The largest prime cube below 2^63, and the largest in u64.
        (2_097_143, 3),
        (2_642_239, 3),
        // The largest 16-bit prime to the fourth.
        (65_521, 4),
        // The first prime rho does not strip by division, to a high power.
        (131, 2),
        (131, 3),
        (131, 9),
        (3, 40),
    ] {
        assert!(reference_is_prime(p), "{p} is prime");
        let n = u64::pow(p, k);
        if n <= TRIAL_MAX_N {
            assert_lpf(n, p);
        } else {
            assert_rho(n, p);
        }
    }
    // The largest prime cube within trial's bound, and the square of the
    // largest 20-bit prime: trial must divide a factor out repeatedly and
    // recompute its limit each time.
    assert_lpf(99_991u64.pow(3), 99_991);
    assert_lpf(1_048_573u64.pow(2), 1_048_573);
}

/// Carmichael numbers fool the Fermat test for every base coprime to them.
/// Each factorization is multiplied out and checked against Korselt's
/// criterion (square-free, and `p - 1 | n - 1` for every prime `p | n`).
#[test]
fn carmichael_numbers() {
    let table: &[(u64, &[u64])] = &[
        (561, &[3, 11, 17]),
        (1105, &[5, 13, 17]),
        (1729, &[7, 13, 19]),
        (2465, &[5, 17, 29]),
        (2821, &[7, 13, 31]),
        (6601, &[7, 23, 41]),
        (8911, &[7, 19, 67]),
        (41041, &[7, 11, 13, 41]),
        (825_265, &[5, 7, 17, 19, 73]),
        (321_197_185, &[5, 19, 23, 29, 37, 137]),
        (5_394_826_801, &[7, 13, 17, 23, 31, 67, 73]),
        (232_250_619_601, &[7, 11, 13, 17, 31, 37, 73, 163]),
        (9_746_347_772_161, &[7, 11, 13, 17, 19, 31, 37, 41, 641]),
    ];
    for &(n, factors) in table {
        assert_eq!(product_of_checked_primes(factors), n, "factorization of {n}");
        assert!(factors.is_sorted_by(|a, b| a < b), "{n} is square-free");
        for &p in factors {
            assert!((n - 1).is_multiple_of(p - 1), "Korselt: {p} - 1 divides {n} - 1");
        }
        assert_lpf(n, *factors.last().unwrap());
    }
}

/// Strong pseudoprimes: composites that pass Miller-Rabin for every base in
/// the listed set, so a primality test with fewer or weaker bases calls them
/// prime and `rho` would return them whole. The table says which bases each
/// fools, and the test checks that too.
#[test]
fn strong_pseudoprimes() {
    let table: &[(u64, &[u64], &[u64])] = &[
        (2047, &[23, 89], &[2]),
        (1_373_653, &[829, 1657], &[2, 3]),
        (25_326_001, &[2251, 11251], &[2, 3, 5]),
        (3_215_031_751, &[151, 751, 28351], &[2, 3, 5, 7]),
        (2_152_302_898_747, &[6763, 10627, 29947], &[2, 3, 5, 7, 11]),
        (3_474_749_660_383, &[1303, 16927, 157_543], &[2, 3, 5, 7, 11, 13]),
        (341_550_071_728_321, &[10_670_053, 32_010_157], &[2, 3, 5, 7, 11, 13, 17, 19]),
        // Fools the first eleven prime bases, 2 to 31.
        (
            3_825_123_056_546_413_051,
            &[149_491, 747_451, 34_233_211],
            &[2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31],
        ),
        // A base-2 strong pseudoprime just below 2^64.
        (18_446_744_066_047_760_377, &[1_920_767_767, 9_603_838_831], &[2]),
    ];
    for &(n, factors, bases) in table {
        assert_eq!(product_of_checked_primes(factors), n, "factorization of {n}");
        for &a in bases {
            assert!(is_strong_probable_prime(n, a), "{n} is a strong pseudoprime to base {a}");
        }
        let expected = *factors.iter().max().unwrap();
        if n <= TRIAL_MAX_N {
            assert_lpf(n, expected);
        } else {
            assert_rho(n, expected);
        }
    }
}

/// 2^64 - 1, the largest input: seven distinct primes, the largest only
/// 6700417, so `rho` must keep splitting and not mistake a big composite
/// cofactor for the answer.
#[test]
fn u64_max() {
    let factors = [3, 5, 17, 257, 641, 65_537, 6_700_417];
    assert_eq!(product_of_checked_primes(&factors), u64::MAX);
    assert_rho(u64::MAX, 6_700_417);
}

/// `TRIAL_MAX_N` is a limit on time, not on correctness: where the search is
/// short anyway, `trial` above it still runs its 64-bit loop with `n` close
/// to 2^64, and must neither overflow nor stop early.
#[test]
fn trial_beyond_its_bound_when_cheap() {
    assert_eq!(trial(u64::MAX), 6_700_417);
    assert_eq!(trial(3_825_123_056_546_413_051), 34_233_211);
    assert_eq!(trial(1 << 63), 2);
    // A prime just above 2^32 times small primes: trial stays in 64 bits.
    assert!(reference_is_prime(4_294_967_311));
    assert_eq!(trial(4_294_967_311 * 5), 4_294_967_311);
    assert_eq!(trial(4_294_967_311 * 65_521 * 7), 4_294_967_311);
}

/// `trial` across its switch from 64-bit to 32-bit division, with the
/// remaining cofactor just below or above `u32::MAX`.
#[test]
fn trial_64_to_32_bit_handover() {
    for (n, expected) in [
        (4_294_967_291 * 5, 4_294_967_291),
        (4_294_967_291 * 7 * 7, 4_294_967_291),
        (4_294_967_311, 4_294_967_311),
        (4_294_967_311 * 3, 4_294_967_311),
        (65_521 * 65_519 * 3, 65_521),
        (65_521 * 65_519 * 30_011, 65_521),
        (u64::from(u32::MAX) * 11, 65_537),
        ((u64::from(u32::MAX) + 1) * 3, 3),
    ] {
        assert_eq!(n, expected * (n / expected), "{expected} divides {n}");
        assert!(reference_is_prime(expected), "{expected} is prime");
        assert_eq!(reference_lpf(n), expected, "reference_lpf({n})");
        assert_lpf(n, expected);
    }
}

/// Primes just below 2^64, each proven by a Lucas certificate checked here
/// (not by `is_prime`). Miller-Rabin on them runs every base to the end,
/// with Montgomery arithmetic at its widest.
#[test]
fn primes_near_2_pow_64() {
    let table: &[(u64, &[(u64, u32)])] = &[
        // 2^64 - 59, the largest prime below 2^64.
        (u64::MAX - 58, &[(2, 2), (11, 1), (137, 1), (547, 1), (5_594_472_617_641, 1)]),
        (u64::MAX - 82, &[(2, 2), (43, 1), (67, 1), (193, 1), (809_383, 1), (10_247_197, 1)]),
        (u64::MAX - 94, &[(2, 5), (5, 1), (2663, 1), (43_294_085_790_719, 1)]),
        (u64::MAX - 178, &[(2, 2), (41, 1), (101, 1), (4051, 1), (6199, 1), (44_347_651, 1)]),
        (
            u64::MAX - 278,
            &[(2, 3), (3, 1), (11, 1), (53, 1), (211, 1), (863, 1), (7_240_135_181, 1)],
        ),
        (
            u64::MAX - 322,
            &[(2, 2), (7, 1), (11, 1), (17, 1), (4219, 1), (46_273, 1), (18_046_081, 1)],
        ),
    ];
    for &(p, factors) in table {
        assert!(lucas_certifies_prime(p, factors), "{p} is prime");
        assert_rho(p, p);
    }
    // And 2^64 - 59 is the largest: everything above it is composite.
    let largest = table[0].0;
    assert_eq!(largest, 18_446_744_073_709_551_557);
    for n in largest + 1..=u64::MAX {
        assert!(n.is_multiple_of(2) || has_fermat_witness(n), "{n} is composite");
        assert!(!is_prime(n), "is_prime({n})");
        let p = rho(n);
        assert!(p < n && n.is_multiple_of(p) && is_prime(p), "rho({n}) = {p}");
    }
}

/// 999999999999989, the largest prime within `TRIAL_MAX_N`: `trial`'s worst
/// case, trying all ~10.5 million wheel candidates up to its square root.
/// Proven prime by a Lucas certificate, and the largest by Fermat witnesses.
#[test]
fn largest_prime_within_trial_bound() {
    let p = 999_999_999_999_989;
    let factors = [(2, 2), (13, 1), (17, 1), (1_131_221_719_457, 1)];
    assert!(lucas_certifies_prime(p, &factors), "{p} is prime");
    for n in p + 1..=TRIAL_MAX_N {
        assert!(n.is_multiple_of(2) || has_fermat_witness(n), "{n} is composite");
    }
    assert_lpf(p, p);
    // The bound itself, 2^15 * 5^15.
    assert_lpf(TRIAL_MAX_N, 5);
}

/// The other worst case for `trial`: two primes either side of
/// `sqrt(TRIAL_MAX_N)`, so the search runs to the smaller one.
#[test]
fn balanced_semiprime_at_trial_bound() {
    let (p, q) = (31_622_743, 31_622_777);
    assert!(reference_is_prime(p) && reference_is_prime(q));
    assert!(p * q <= TRIAL_MAX_N);
    assert_lpf(p * q, q);
}

/// Primes that divide one of `is_prime`'s Miller-Rabin bases, so that base
/// is 0 mod `n` and skipped: the remaining bases must still accept them.
#[test]
fn primes_dividing_a_miller_rabin_base() {
    for p in [73, 193, 407_521, 299_210_837] {
        assert!(reference_is_prime(p), "{p} is prime");
        assert_lpf(p, p);
    }
}
