//! Retry decisions as pure functions: what happens after an attempt, and how
//! long to wait. The worker applies them; it knows nothing about protocols.

use std::time::Duration;

use rand::Rng;

use super::OutcomeClass;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// Full jitter: uniform in `[0, min(max, base * 2^(attempts-1))]`, so
    /// many failed deliveries do not retry in lockstep.
    pub fn delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let exp = attempts.saturating_sub(1).min(32);
        let ceiling = self
            .base_ms
            .saturating_mul(1u64 << exp)
            .min(self.max_ms)
            .max(1);
        Duration::from_millis(rng.random_range(0..=ceiling))
    }
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again at this time (unix ms).
    RetryAt(i64),
    /// Give up on this channel: `failed` (permanent) or `expired` (no retry
    /// fits before the code expires); hand over to the fallback if any.
    GiveUp {
        expired: bool,
    },
}

/// Inputs of the decision, all times in unix ms.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub now: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub has_fallback: bool,
}

impl Timing {
    /// Retries stop here. With a fallback the primary channel gets the first
    /// half of the code's lifetime, so the fallback still has time to deliver
    /// a usable code; without one, retries run until the code expires.
    pub fn retry_deadline(&self) -> i64 {
        if self.has_fallback {
            self.created_at + (self.expires_at - self.created_at) / 2
        } else {
            self.expires_at
        }
    }
}

pub fn after_attempt(class: OutcomeClass, t: Timing, delay: Duration) -> Next {
    match class {
        OutcomeClass::Delivered => Next::Delivered,
        OutcomeClass::Permanent => Next::GiveUp { expired: false },
        OutcomeClass::Transient => {
            let at = t.now + delay.as_millis() as i64;
            if at < t.retry_deadline() {
                Next::RetryAt(at)
            } else {
                // Without a fallback the code expires before any retry could
                // land; with one, this channel has simply failed.
                Next::GiveUp {
                    expired: !t.has_fallback,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delay_grows_and_is_capped() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1000,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempts in 1..40 {
            let ceiling = (100u64 << (attempts - 1).min(32)).min(1000);
            for _ in 0..50 {
                let d = b.delay(attempts, &mut rng).as_millis() as u64;
                assert!(d <= ceiling, "attempt {attempts}: {d} > {ceiling}");
            }
        }
    }

    #[test]
    fn decisions() {
        let t = Timing {
            now: 1000,
            created_at: 0,
            expires_at: 10_000,
            has_fallback: false,
        };
        let d = Duration::from_millis(500);
        assert_eq!(
            after_attempt(OutcomeClass::Delivered, t, d),
            Next::Delivered
        );
        assert_eq!(
            after_attempt(OutcomeClass::Permanent, t, d),
            Next::GiveUp { expired: false }
        );
        assert_eq!(
            after_attempt(OutcomeClass::Transient, t, d),
            Next::RetryAt(1500)
        );
        let late = Timing { now: 9800, ..t };
        assert_eq!(
            after_attempt(OutcomeClass::Transient, late, d),
            Next::GiveUp { expired: true }
        );
        // With a fallback, the primary gives up at half-life.
        let mid = Timing {
            now: 4800,
            has_fallback: true,
            ..t
        };
        assert_eq!(
            after_attempt(OutcomeClass::Transient, mid, d),
            Next::GiveUp { expired: false }
        );
    }
}
