//! Time per call of `trial` and `rho` on what the API sees and on their
//! worst cases.
//!
//! Run with `cargo bench -p shared --bench factor`. Inputs come from a
//! fixed-seed generator and are made outside the timed region, so runs are
//! comparable and only the factoring is measured.

use std::fmt;

use divan::{Bencher, black_box};
use shared::factor::{rho, trial};
use shared::hello::DEFAULT_RANGE;

fn main() {
    divan::main();
}

/// How many default-range inputs each benchmark times, one call per sample,
/// so that the mean is the average over exactly this batch.
const INPUTS: u32 = 4096;

/// SplitMix64 (Steele, Lea and Flood): a tiny, well-mixed generator, enough
/// to spread inputs over the range without a dependency.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The same [`INPUTS`] numbers from `DEFAULT_RANGE` on every run, like the
/// `n` the API draws when a request has none.
fn default_range_inputs() -> Vec<u64> {
    let mut state = 0x5eed;
    let width = DEFAULT_RANGE.end - DEFAULT_RANGE.start;
    // The modulo bias of a 2^41-wide range in 2^64 is below 2^-22.
    (0..INPUTS).map(|_| DEFAULT_RANGE.start + splitmix64(&mut state) % width).collect()
}

/// Times `f` once per call, each call on the next default-range input.
///
/// The cost of one call varies by orders of magnitude with the input, so
/// both the median and the mean matter.
fn bench_default_range(bencher: Bencher, f: fn(u64) -> u64) {
    let mut inputs = default_range_inputs().into_iter().cycle();
    bencher.with_inputs(|| inputs.next().unwrap()).bench_local_values(f);
}

/// `trial` on random `n` from `DEFAULT_RANGE` (about 2^41).
#[divan::bench(sample_count = INPUTS, sample_size = 1)]
fn trial_default_range(bencher: Bencher) {
    bench_default_range(bencher, trial);
}

/// `rho` on the same inputs as `trial_default_range`.
#[divan::bench(sample_count = INPUTS, sample_size = 1)]
fn rho_default_range(bencher: Bencher) {
    bench_default_range(bencher, rho);
}

/// `rho` on uniformly random 64-bit `n`: what a client sending its own
/// numbers sees on average (most have small factors and one large prime).
#[divan::bench(sample_count = INPUTS, sample_size = 1)]
fn rho_random_u64(bencher: Bencher) {
    let mut state = 0x64b1;
    let inputs: Vec<u64> = (0..INPUTS).map(|_| splitmix64(&mut state).max(2)).collect();
    let mut inputs = inputs.into_iter().cycle();
    bencher.with_inputs(|| inputs.next().unwrap_or(2)).bench_local_values(rho);
}

/// An input that is hard for `rho`, with its known largest prime factor.
#[derive(Clone, Copy)]
struct Hard {
    name: &'static str,
    n: u64,
    largest: u64,
}

impl fmt::Display for Hard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The two largest 32-bit primes, and the Mersenne prime 2^31 - 1.
const P32: u64 = 4_294_967_291;
const Q32: u64 = 4_294_967_279;
const M31: u64 = 2_147_483_647;

const HARD: &[Hard] = &[
    // Semiprimes of two ~32-bit primes: about 2^16 rho steps to a factor.
    Hard { name: "semiprime_p32_q32", n: P32 * Q32, largest: P32 },
    Hard { name: "semiprime_m31_p32", n: M31 * P32, largest: P32 },
    Hard { name: "semiprime_m31_q32", n: M31 * Q32, largest: Q32 },
    // 2^64 - 59: only Miller-Rabin runs, all seven bases to the end.
    Hard { name: "largest_u64_prime", n: u64::MAX - 58, largest: u64::MAX - 58 },
    // 2^64 - 1: seven prime factors, split recursively.
    Hard { name: "u64_max", n: u64::MAX, largest: 6_700_417 },
    // A square of a 32-bit prime: rho collides mod p and p^2 alike.
    Hard { name: "square_p32", n: P32 * P32, largest: P32 },
];

/// `rho` on inputs that make it work hardest.
#[divan::bench(args = HARD)]
fn rho_hard(bencher: Bencher, case: &Hard) {
    assert_eq!(rho(case.n), case.largest, "rho({})", case.n);
    bencher.bench_local(|| rho(black_box(case.n)));
}

/// The largest prime within `TRIAL_MAX_N`.
const TRIAL_WORST: u64 = 999_999_999_999_989;

/// `trial`'s worst case: a prime at its bound, so every candidate up to
/// `sqrt(n)` is tried. Tens of milliseconds a call, hence few samples.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn trial_prime_at_bound() -> u64 {
    trial(black_box(TRIAL_WORST))
}
