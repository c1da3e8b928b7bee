//! The limits of one realtime connection and the per-connection rate
//! limiter. Time is passed in, so the rules are tested without sleeping.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RealtimeConfig;

/// Per-connection limits (the connection caps are in `admission.rs`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame and message; bigger closes with 1009.
    pub max_message_bytes: usize,
    /// The socket's read buffer; small, so idle connections stay cheap.
    pub read_buffer_bytes: usize,
    /// Methods queued or running on one connection; more are refused.
    pub max_in_flight: usize,
    /// Calls of one method per `window` (Rocket.Chat's DDP
    /// `Connection_By_Method` default: 10 per 10 s); more are refused.
    pub calls_per_method: u32,
    pub window: Duration,
    /// Refused calls per `window` before the connection is closed (1008).
    pub max_refused: u32,
    /// Frames of any kind per `window` before the connection is closed (1008).
    pub max_frames: u32,
    /// No frame at all for this long closes the connection.
    pub idle_timeout: Duration,
    /// Quiet this long, a connected client gets `{"msg":"ping"}` (`ZERO`: never).
    pub heartbeat_interval: Duration,
    /// An unanswered server ping closes the connection after this long.
    pub heartbeat_timeout: Duration,
    /// A client that does not read its answers for this long is dropped.
    pub send_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            read_buffer_bytes: 4 * 1024,
            max_in_flight: 4,
            calls_per_method: 10,
            window: Duration::from_secs(10),
            max_refused: 10,
            max_frames: 200,
            idle_timeout: Duration::from_secs(60),
            // Meteor's server `heartbeatInterval` / `heartbeatTimeout`
            // (17.5 s / 15 s are its client's).
            heartbeat_interval: Duration::from_secs(15),
            heartbeat_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The configurable part from `[realtime]`; the rest keeps its default.
    pub fn from_config(c: &RealtimeConfig) -> Self {
        Self {
            max_message_bytes: usize::try_from(c.max_message_bytes).unwrap_or(usize::MAX),
            calls_per_method: c.calls_per_method,
            window: Duration::from_secs(c.method_window_seconds),
            idle_timeout: Duration::from_secs(c.idle_timeout_seconds),
            heartbeat_interval: Duration::from_secs_f64(c.heartbeat_interval_seconds),
            heartbeat_timeout: Duration::from_secs_f64(c.heartbeat_timeout_seconds),
            ..Self::default()
        }
    }
}

/// Distinct method names tracked one by one; further names share a bucket,
/// so a client cannot grow the map by inventing names.
const TRACKED_METHODS: usize = 32;
const OTHER_METHODS: &str = "\0other";

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
        }
    }

    /// Counts a hit; returns the count in the current window.
    fn hit(&mut self, now: Instant, len: Duration) -> u32 {
        if now >= self.start + len {
            *self = Self::new(now);
        }
        self.count = self.count.saturating_add(1);
        self.count
    }

    fn resets_in(&self, now: Instant, len: Duration) -> Duration {
        (self.start + len).saturating_duration_since(now)
    }
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    Allow,
    /// Answer `too-many-requests`; the window resets in this long.
    Refuse {
        time_to_reset: Duration,
    },
    /// The client keeps going: close the connection (1008).
    Close,
}

pub struct RateLimiter {
    limits: Limits,
    methods: HashMap<String, Window>,
    frames: Window,
    refused: Window,
}

impl RateLimiter {
    pub fn new(limits: &Limits, now: Instant) -> Self {
        Self {
            limits: limits.clone(),
            methods: HashMap::new(),
            frames: Window::new(now),
            refused: Window::new(now),
        }
    }

    /// Any frame; `false` means the connection floods and must close.
    pub fn frame(&mut self, now: Instant) -> bool {
        self.frames.hit(now, self.limits.window) <= self.limits.max_frames
    }

    /// A method call.
    pub fn method(&mut self, name: &str, now: Instant) -> Verdict {
        let len = self.limits.window;
        let key = if self.methods.contains_key(name) || self.methods.len() < TRACKED_METHODS {
            name
        } else {
            OTHER_METHODS
        };
        let w = self
            .methods
            .entry(key.to_string())
            .or_insert_with(|| Window::new(now));
        if w.hit(now, len) <= self.limits.calls_per_method {
            return Verdict::Allow;
        }
        let time_to_reset = w.resets_in(now, len);
        self.refuse(now, time_to_reset)
    }

    /// A call refused for another reason (too many in flight).
    pub fn refuse(&mut self, now: Instant, time_to_reset: Duration) -> Verdict {
        if self.refused.hit(now, self.limits.window) > self.limits.max_refused {
            Verdict::Close
        } else {
            Verdict::Refuse { time_to_reset }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> (RateLimiter, Instant) {
        let now = Instant::now();
        (RateLimiter::new(&Limits::default(), now), now)
    }

    #[test]
    fn ten_calls_per_method_per_ten_seconds_then_refused_then_closed() {
        let (mut l, t0) = limiter();
        for _ in 0..10 {
            assert_eq!(l.method("login", t0), Verdict::Allow);
        }
        // Another method has its own budget.
        assert_eq!(l.method("sendEmailCode", t0), Verdict::Allow);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(
            l.method("login", t1),
            Verdict::Refuse {
                time_to_reset: Duration::from_secs(7)
            }
        );
        for _ in 0..9 {
            assert!(matches!(l.method("login", t1), Verdict::Refuse { .. }));
        }
        assert_eq!(l.method("login", t1), Verdict::Close);
    }

    #[test]
    fn the_window_resets() {
        let (mut l, t0) = limiter();
        for _ in 0..15 {
            l.method("login", t0);
        }
        assert_eq!(
            l.method("login", t0 + Duration::from_secs(10)),
            Verdict::Allow
        );
    }

    #[test]
    fn invented_method_names_share_one_bucket() {
        let (mut l, t0) = limiter();
        for i in 0..TRACKED_METHODS {
            assert_eq!(l.method(&format!("m{i}"), t0), Verdict::Allow);
        }
        for i in 0..10 {
            assert_eq!(l.method(&format!("new{i}"), t0), Verdict::Allow);
        }
        assert!(matches!(l.method("new-again", t0), Verdict::Refuse { .. }));
        assert_eq!(l.methods.len(), TRACKED_METHODS + 1);
    }

    #[test]
    fn frame_flood_is_detected() {
        let (mut l, t0) = limiter();
        for _ in 0..200 {
            assert!(l.frame(t0));
        }
        assert!(!l.frame(t0));
        assert!(l.frame(t0 + Duration::from_secs(10)));
    }
}
