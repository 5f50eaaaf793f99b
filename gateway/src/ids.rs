//! What the gateway makes up itself: random ids, and the dates written in
//! events and log stream names. One place, so that every id is made the
//! same way and every date from the same calendar code.
//!
//! Some ids are tokens: an extension's identifier is all an extension shows
//! to call the Extensions API as itself, and a request id names the
//! invocation that a Runtime API call answers. So every id is drawn from a
//! cryptographically secure stream: rand's `ThreadRng` (ChaCha12, seeded
//! from the OS and reseeded as it goes), from which no id tells the next.
//! It costs a few nanoseconds a draw, as the SplitMix64 counter it replaced
//! did; that one let anyone who saw one `apigw-requestid` predict the next
//! five exactly (issue 31). The dates are UTC, from the Unix epoch, with H.
//! Hinnant's civil-from-days algorithm, rather than a date crate for three
//! formats.

use rand::Rng as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// A random 64-bit number, unpredictable from any drawn before it.
pub fn random_u64() -> u64 {
    rand::rng().next_u64()
}

/// A fresh request id in the UUID (version 4) format API Gateway uses.
///
/// Written digit by digit rather than with `format!`: one is made for every
/// request, and the formatting machinery cost more than the rest of the id.
pub fn request_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    // 32 random hex digits, of which the version (4) and the variant
    // (8 to b) overwrite one each.
    let mut id = Vec::with_capacity(36);
    for (i, nibble) in (0..16)
        .rev()
        .map(|k| (a >> (4 * k)) & 0xf)
        .chain((0..16).rev().map(|k| (b >> (4 * k)) & 0xf))
        .enumerate()
    {
        if matches!(i, 8 | 12 | 16 | 20) {
            id.push(b'-');
        }
        let nibble = match i {
            12 => 4,
            16 => 8 | (nibble & 3),
            _ => nibble,
        };
        id.push(HEX[nibble as usize]);
    }
    // Hex digits and dashes only.
    String::from_utf8(id).unwrap_or_default()
}

const HEX: [u8; 16] = *b"0123456789abcdef";

/// `dd/Mon/yyyy:HH:MM:SS +0000`, the request time format of API Gateway.
///
/// Written digit by digit, as [`request_id`] is: it is in every event.
pub fn clf_time(epoch_secs: i64) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (days, secs) = (epoch_secs.div_euclid(86_400), epoch_secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(26);
    let two = |out: &mut String, n: i64| {
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    two(&mut out, day);
    out.push('/');
    out.push_str(MONTHS[(month - 1) as usize]);
    out.push('/');
    if (1000..10_000).contains(&year) {
        two(&mut out, year / 100);
        two(&mut out, year % 100);
    } else {
        out.push_str(&year.to_string());
    }
    out.push(':');
    two(&mut out, secs / 3600);
    out.push(':');
    two(&mut out, secs % 3600 / 60);
    out.push(':');
    two(&mut out, secs % 60);
    out.push_str(" +0000");
    out
}

/// `YYYY/MM/DD` in UTC, the date part of a Lambda log stream's name.
pub fn utc_date(time: SystemTime) -> String {
    let days = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0) as i64;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}/{month:02}/{day:02}")
}

/// The day counted from 1970-01-01 of a civil date (H. Hinnant's
/// days-from-civil, the inverse of [`civil_from_days`]).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day counted from 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf_time(1_796_006_599), "30/Nov/2026:02:43:19 +0000");
        assert_eq!(utc_date(UNIX_EPOCH + Duration::from_secs(1_796_006_599)), "2026/11/30");
    }

    #[test]
    fn days_and_dates_are_inverses() {
        for days in (-800_000_i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    /// The digit-by-digit writers against `format!`, over many values.
    #[test]
    fn hand_written_formats_match_format() {
        for secs in (-70_000_000_000_i64..300_000_000_000).step_by(99_999_989) {
            let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
            let (y, m, d) = civil_from_days(days);
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let expected = format!(
                "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
                months[(m - 1) as usize],
                rest / 3600,
                rest % 3600 / 60,
                rest % 60
            );
            assert_eq!(clf_time(secs), expected);
        }
        for _ in 0..1000 {
            let id = request_id();
            let hex: String = id.chars().filter(|c| *c != '-').collect();
            assert_eq!(hex.len(), 32);
            assert!(u128::from_str_radix(&hex, 16).is_ok(), "{id}");
            assert_eq!(id.to_lowercase(), id);
        }
    }

    /// Issue 31: the ids came from SplitMix64, whose output function is a
    /// bijection, so one draw gave the generator's state and every draw
    /// after it. Undone here as an attacker would; it must not predict.
    #[test]
    fn a_draw_does_not_tell_the_next() {
        const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        // The multiplicative inverse of an odd number modulo 2^64 (Newton).
        let inverse =
            |a: u64| (0..6).fold(a, |x, _| x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x))));
        let unshift = |z: u64, s: u32| (0..64 / s).fold(z, |x, _| z ^ (x >> s));
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let unmix = |z: u64| {
            let z = unshift(z, 31).wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
            let z = unshift(z, 27).wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
            unshift(z, 30)
        };
        let state = 0x1234_5678_9abc_def0_u64;
        assert_eq!(unmix(mix(state)), state, "the attack itself works");
        for _ in 0..100 {
            let (seen, next) = (random_u64(), random_u64());
            assert_ne!(mix(unmix(seen).wrapping_add(GAMMA)), next, "predicted from the one before");
        }
    }

    #[test]
    fn ids_differ_and_have_the_uuid_shape() {
        assert_ne!(random_u64(), random_u64());
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert_eq!(&a[14..15], "4", "version 4: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant: {a}");
    }
}
