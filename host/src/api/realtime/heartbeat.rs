//! When a quiet connection is pinged and when it is closed: Meteor's DDP
//! heartbeat (ddp-common `Heartbeat`) under postern's idle limit. Time is
//! passed in, so the rules are tested without sleeping.
//!
//! A connection quiet for `interval` gets `{"msg":"ping"}`; any frame (the
//! `pong` included) counts as an answer. An unanswered ping closes the
//! connection after `timeout`; `idle` caps the silence in every case (before
//! `connect`, with the heartbeat off, or when it is the shorter limit).

use std::time::Duration;

use tokio::time::Instant;

/// What is due next, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send `{"msg":"ping"}`.
    Ping,
    /// Close: a ping went unanswered for the heartbeat timeout.
    Unanswered,
    /// Close: nothing arrived for the idle timeout.
    Idle,
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// `None`: the server never pings (heartbeat off, or not yet connected).
    interval: Option<Duration>,
    timeout: Duration,
    idle: Duration,
    last_seen: Instant,
    ping_sent: Option<Instant>,
}

impl Heartbeat {
    /// Starts silent: the server pings only once the client has connected.
    pub fn new(idle: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            interval: None,
            timeout,
            idle,
            last_seen: now,
            ping_sent: None,
        }
    }

    /// After `connected`: ping every `interval` of quiet (`ZERO`: never, as
    /// Meteor's `heartbeatInterval: 0`).
    pub fn start(&mut self, interval: Duration) {
        self.interval = (!interval.is_zero()).then_some(interval);
    }

    /// A frame arrived: the client is there.
    pub fn seen(&mut self, now: Instant) {
        self.last_seen = now;
        self.ping_sent = None;
    }

    pub fn pinged(&mut self, now: Instant) {
        self.ping_sent = Some(now);
    }

    /// The next thing due and its time.
    pub fn next(&self) -> (Instant, Due) {
        let idle_at = self.last_seen + self.idle;
        let due = match (self.interval, self.ping_sent) {
            (Some(_), Some(sent)) => (sent + self.timeout, Due::Unanswered),
            (Some(interval), None) => (self.last_seen + interval, Due::Ping),
            (None, _) => (idle_at, Due::Idle),
        };
        if due.0 < idle_at {
            due
        } else {
            (idle_at, Due::Idle)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn meteor_defaults_ping_after_the_interval_and_close_after_the_timeout() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(secs(60.0), secs(15.0), t0);
        assert_eq!(h.next(), (t0 + secs(60.0), Due::Idle));
        h.start(secs(15.0));
        assert_eq!(h.next(), (t0 + secs(15.0), Due::Ping));
        h.pinged(t0 + secs(15.0));
        assert_eq!(h.next(), (t0 + secs(30.0), Due::Unanswered));
        // The pong (or any frame) answers; the next ping is an interval later.
        h.seen(t0 + secs(17.5));
        assert_eq!(h.next(), (t0 + secs(32.5), Due::Ping));
    }

    #[test]
    fn the_idle_limit_caps_the_silence() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(secs(5.0), secs(15.0), t0);
        h.start(secs(17.5));
        assert_eq!(h.next(), (t0 + secs(5.0), Due::Idle));
        let mut h = Heartbeat::new(secs(20.0), secs(15.0), t0);
        h.start(secs(10.0));
        h.pinged(t0 + secs(10.0));
        assert_eq!(h.next(), (t0 + secs(20.0), Due::Idle));
    }

    #[test]
    fn a_zero_interval_turns_the_heartbeat_off() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(secs(60.0), secs(15.0), t0);
        h.start(Duration::ZERO);
        assert_eq!(h.next(), (t0 + secs(60.0), Due::Idle));
    }
}
