//! The two rules of a staged rollout, free of I/O: which version a
//! delivery runs on, and when a canary has done badly enough to go.

use sha2::{Digest, Sha256};

use crate::config::plugins::PluginsConfig;
use crate::store::RolloutWindow;

/// The share of a plugin's deliveries a canary takes: 1..=100 percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryPercent(u8);

impl CanaryPercent {
    /// `?canary=N`: a whole number from 1 to 100.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.parse::<u8>() {
            Ok(n) if (1..=100).contains(&n) => Ok(Self(n)),
            _ => Err(format!(
                "canary must be a whole percentage from 1 to 100, not `{text}`"
            )),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// `[plugins] rollout_window` and `rollout_margin_percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub window: u32,
    pub margin_percent: u32,
}

impl Settings {
    pub fn from_config(c: &PluginsConfig) -> Self {
        Self {
            window: c.rollout_window,
            margin_percent: c.rollout_margin_percent,
        }
    }
}

/// Whether delivery `delivery_id` runs on the canary. A hash of the id, so
/// every attempt of one delivery, on any host, runs on the same version.
pub fn takes_canary(delivery_id: &str, percent: u8) -> bool {
    let digest = Sha256::digest(delivery_id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head) % 100 < u64::from(percent)
}

/// Percent of a window's deliveries that failed (0 for an empty window).
fn rate(w: RolloutWindow) -> f64 {
    if w.deliveries == 0 {
        0.0
    } else {
        100.0 * f64::from(w.failed) / f64::from(w.deliveries)
    }
}

/// Why the canary must be rolled back, or `None` while it may stay: once
/// it has a full window, its failure rate (permanent failures and traps)
/// over the window may exceed the stable version's by at most the margin.
pub fn judge(canary: RolloutWindow, stable: RolloutWindow, s: Settings) -> Option<String> {
    if canary.deliveries < s.window {
        return None;
    }
    let (c, st) = (rate(canary), rate(stable));
    if c <= st + f64::from(s.margin_percent) {
        return None;
    }
    Some(format!(
        "the canary failed {} of its last {} deliveries ({c:.0} %), the stable version {} of {} \
         ({st:.0} %): more than plugins.rollout_margin_percent = {} points worse",
        canary.failed, canary.deliveries, stable.failed, stable.deliveries, s.margin_percent
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        window: 10,
        margin_percent: 10,
    };

    fn w(deliveries: u32, failed: u32) -> RolloutWindow {
        RolloutWindow { deliveries, failed }
    }

    #[test]
    fn no_verdict_before_a_full_window() {
        assert_eq!(judge(w(9, 9), w(100, 0), S), None);
        assert!(judge(w(10, 10), w(100, 0), S).is_some());
    }

    #[test]
    fn the_margin_is_percentage_points_over_the_stable_rate() {
        // 20 % against 10 %: exactly the margin, the canary stays.
        assert_eq!(judge(w(10, 2), w(50, 5), S), None);
        // 30 % against 10 %: over it.
        let why = judge(w(10, 3), w(50, 5), S).unwrap();
        assert!(
            why.contains("failed 3 of its last 10 deliveries (30 %)"),
            "{why}"
        );
        assert!(why.contains("5 of 50 (10 %)"), "{why}");
        // A stable version that fails as often protects a canary that does.
        assert_eq!(judge(w(10, 10), w(10, 10), S), None);
        // No stable deliveries yet counts as a 0 % rate.
        assert!(judge(w(10, 2), w(0, 0), S).is_some());
    }

    #[test]
    fn routing_is_stable_per_delivery_and_near_the_percent() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("dlv_{i:032x}")).collect();
        for id in &ids[..50] {
            assert_eq!(takes_canary(id, 30), takes_canary(id, 30));
            assert!(takes_canary(id, 100));
        }
        let share = ids.iter().filter(|id| takes_canary(id, 10)).count();
        assert!((800..=1200).contains(&share), "{share} of 10 000 at 10 %");
        // Raising the percent only adds deliveries to the canary.
        assert!(
            ids.iter()
                .all(|id| !takes_canary(id, 10) || takes_canary(id, 20))
        );
    }

    #[test]
    fn canary_percent_is_1_to_100() {
        assert_eq!(CanaryPercent::parse("10").map(CanaryPercent::get), Ok(10));
        assert_eq!(CanaryPercent::parse("100").map(CanaryPercent::get), Ok(100));
        for bad in ["0", "101", "abc", "", "-5", "10.5", "256"] {
            assert!(CanaryPercent::parse(bad).is_err(), "{bad}");
        }
    }
}
