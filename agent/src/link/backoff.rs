//! Jittered exponential backoff for reconnecting. Pure: the caller supplies the randomness,
//! so the schedule is testable.

use std::time::Duration;

/// "Full jitter" backoff: the n-th delay is uniform in [base·2ⁿ/2, base·2ⁿ], capped at `max`.
/// Half the window is kept as a floor so a flapping controller is not hammered by agents
/// that all drew tiny delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt; `unit` is a random number in [0, 1).
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1).min(31);
        let unit = unit.clamp(0.0, 1.0);
        exp / 2 + exp.mul_f64(unit / 2.0)
    }

    /// Call after a connection worked: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The delay before reconnecting when the controller said when to come back
/// (`close_code::UNAVAILABLE`): uniform over the upper half of the hint (at least 1 s), so a
/// fleet returns soon after the database but not all at once. The backoff does not grow.
pub fn hinted_delay(retry_after_secs: u32, unit: f64) -> Duration {
    let hint = Duration::from_secs(u64::from(retry_after_secs.max(1)));
    let unit = unit.clamp(0.0, 1.0);
    hint / 2 + hint.mul_f64(unit / 2.0)
}

/// A uniform random number in [0, 1) from the OS.
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_bounds_and_caps() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(500));
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(2));
        assert_eq!(backoff.next_delay(0.0), Duration::from_secs(2));
        for _ in 0..40 {
            let d = backoff.next_delay(1.0);
            assert!(d <= Duration::from_secs(60), "{d:?}");
        }
        assert_eq!(backoff.next_delay(0.0), Duration::from_secs(30));
        backoff.reset();
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(1));
    }

    #[test]
    fn hints_are_honoured_with_jitter_and_a_floor() {
        assert_eq!(hinted_delay(5, 0.0), Duration::from_millis(2500));
        assert_eq!(hinted_delay(5, 1.0), Duration::from_secs(5));
        assert_eq!(hinted_delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(hinted_delay(0, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
