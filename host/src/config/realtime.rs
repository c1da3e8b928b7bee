//! `[realtime]` (postern addition): the WebSocket (DDP) endpoint's limits.

use serde::Deserialize;

use super::check::{ConfigError, check_range, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RealtimeConfig {
    /// Open connections per host; more are answered 503.
    pub max_connections: u64,
    /// Open connections per client address (after `trusted_proxies`); more
    /// are answered 429.
    pub max_connections_per_ip: u64,
    /// Largest frame/message; a bigger one closes the connection with 1009.
    pub max_message_bytes: u64,
    /// A connection that sends nothing (not even a ping) for this long is closed.
    pub idle_timeout_seconds: u64,
    /// Meteor's server heartbeat (its `Server` defaults, 15 s / 15 s): a quiet
    /// connection is pinged after the interval (0: never) and closed if the
    /// ping is unanswered for the timeout.
    pub heartbeat_interval_seconds: f64,
    pub heartbeat_timeout_seconds: f64,
    /// Calls of one method per `method_window_seconds` (Rocket.Chat's DDP
    /// rate limiter default: 10 per 10 s); more are refused with `too-many-requests`.
    pub calls_per_method: u32,
    pub method_window_seconds: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 500,
            max_message_bytes: 64 * 1024,
            idle_timeout_seconds: 60,
            heartbeat_interval_seconds: 15.0,
            heartbeat_timeout_seconds: 15.0,
            calls_per_method: 10,
            method_window_seconds: 10,
        }
    }
}

impl RealtimeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "realtime.max_connections",
            self.max_connections,
            1..=1_000_000,
        )?;
        check_range(
            "realtime.max_connections_per_ip",
            self.max_connections_per_ip,
            1..=self.max_connections,
        )?;
        check_range(
            "realtime.max_message_bytes",
            self.max_message_bytes,
            1024..=16 << 20,
        )?;
        check_range(
            "realtime.idle_timeout_seconds",
            self.idle_timeout_seconds,
            5..=3600,
        )?;
        let hb = (
            self.heartbeat_interval_seconds,
            self.heartbeat_timeout_seconds,
        );
        check_seconds("realtime.heartbeat_interval_seconds", hb.0, true)?;
        check_seconds("realtime.heartbeat_timeout_seconds", hb.1, false)?;
        check_range(
            "realtime.calls_per_method",
            self.calls_per_method as u64,
            1..=10_000,
        )?;
        check_range(
            "realtime.method_window_seconds",
            self.method_window_seconds,
            1..=3600,
        )
    }
}

/// 1 to 3600 seconds, fractions allowed (and 0, "off", where `off_ok`).
fn check_seconds(key: &str, value: f64, off_ok: bool) -> Result<(), ConfigError> {
    if (off_ok && value == 0.0) || (1.0..=3600.0).contains(&value) {
        return Ok(());
    }
    let allowed = if off_ok { "0 or 1..=3600" } else { "1..=3600" };
    Err(invalid(
        key,
        format!("{value} is out of range; allowed {allowed}"),
    ))
}
