//! Exponential backoff with jitter, from a seeded generator.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014): ten lines, a full 2^64
//! period, good enough to spread retries, and fully determined by the seed
//! so a test or a fuzz input replays exactly. It is not for secrets. (A
//! crate would add a dependency the core's rules do not allow for this.)

use std::time::{Duration, Instant};

/// SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift (Lemire); the bias for
    /// the small `n` used here is below 2^-50.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// `initial * 2^attempt`, at most `max` (Java's `ExponentialBackoff` with base 2).
pub(crate) fn exponential(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u128.checked_shl(attempt.min(127)).unwrap_or(u128::MAX);
    let nanos = initial.as_nanos().saturating_mul(factor);
    if nanos >= max.as_nanos() {
        max
    } else {
        from_nanos(nanos)
    }
}

/// `d` scaled by a uniform factor in `[1 - j, 1 + j]`, `j = permille / 1000`
/// (Java applies the jitter after the cap, so a capped value spreads too).
pub(crate) fn jittered(d: Duration, permille: u16, rng: &mut Rng) -> Duration {
    if permille == 0 || d.is_zero() {
        return d;
    }
    // Work in millionths so that sub-permille spread is kept.
    let j = u64::from(permille) * 1000;
    let factor = 1_000_000 - j + rng.below(2 * j + 1);
    from_nanos(d.as_nanos().saturating_mul(u128::from(factor)) / 1_000_000)
}

fn from_nanos(nanos: u128) -> Duration {
    let secs = nanos / 1_000_000_000;
    match u64::try_from(secs) {
        Ok(s) => Duration::new(s, (nanos % 1_000_000_000) as u32),
        Err(_) => Duration::MAX,
    }
}

/// `now + d`, or `None` when that is past what an `Instant` can hold (a
/// deadline that never comes, e.g. for `Duration::MAX`).
pub(crate) fn later(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_and_caps() {
        let ms = Duration::from_millis;
        let got: Vec<Duration> = (0..8).map(|a| exponential(ms(50), ms(1000), a)).collect();
        assert_eq!(
            got,
            [
                ms(50),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(exponential(ms(50), ms(1000), u32::MAX), ms(1000));
        assert_eq!(exponential(Duration::MAX, Duration::MAX, 3), Duration::MAX);
    }

    #[test]
    fn jitter_saturates_instead_of_overflowing() {
        let mut rng = Rng::new(7);
        for _ in 0..100 {
            let d = jittered(Duration::MAX, 1000, &mut rng);
            assert!(d <= Duration::MAX);
        }
        assert_eq!(
            jittered(Duration::from_secs(1), 0, &mut rng),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn below_stays_below() {
        let mut rng = Rng::new(1);
        for n in [1, 2, 3, 401, 400_001] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
            }
        }
    }
}
