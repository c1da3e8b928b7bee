//! The one source of "now" for the 2FA rules, the delivery queue (leases,
//! next attempts, expiry), rate windows and sessions. It is injected rather
//! than read inline so a test can move time forward instead of sleeping.
//! Durations that are only measured (an attempt's elapsed time) and tokio
//! timers stay on the monotonic clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall-clock time in Unix milliseconds, the unit every stored time uses.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// How the clock is passed around.
pub type SharedClock = Arc<dyn Clock>;

/// The real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct TestClock {
    ms: AtomicI64,
}

impl TestClock {
    /// Starts at the real time, so stored rows look ordinary.
    pub fn new() -> Arc<Self> {
        Self::at(SystemClock.now_ms())
    }

    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self {
            ms: AtomicI64::new(ms),
        })
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_only_when_told() {
        let c = TestClock::at(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now_ms(), 3_000);
        let shared: SharedClock = c.clone();
        assert_eq!(shared.now_ms(), 3_000);
    }

    #[test]
    fn the_system_clock_is_unix_milliseconds() {
        let now = SystemClock.now_ms();
        assert!(now > 1_600_000_000_000, "{now}");
    }
}
