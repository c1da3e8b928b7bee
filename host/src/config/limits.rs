//! `[limits]`: code shape, attempts, rate limits, tenant quotas, sessions.

use serde::Deserialize;

use super::check::{ConfigError, check_range};

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    pub code_length: u32,
    pub max_check_attempts: u32,
    pub sends_per_destination: u32,
    pub tenant_deliveries_per_minute: u32,
    pub tenant_max_plugins: u32,
    pub tenant_max_concurrent_deliveries: u32,
    /// Code checks per user per minute (postern addition).
    pub checks_per_user_per_minute: u32,
    /// Code checks per client IP per minute (postern addition).
    pub checks_per_ip_per_minute: u32,
    /// Logins per client IP per minute (postern addition).
    pub logins_per_ip_per_minute: u32,
    /// Unauthenticated code requests (`sendEmailCode`) per client IP and per
    /// identifier per minute (postern addition).
    pub code_requests_per_minute: u32,
    /// Lifetime of a login session in hours (postern addition).
    pub session_hours: u32,
    /// Consecutive failed checks of one user's method (or one Verify
    /// destination), across codes, before it locks (NIST SP 800-63B-4: at most 100).
    pub max_consecutive_failures: u32,
    /// A lock ends by itself after this many minutes, doubling with each
    /// lock since the last success; absent: only `users.2fa.unlock` ends it.
    pub lockout_minutes: Option<u32>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            code_length: 6,
            max_check_attempts: 5,
            sends_per_destination: 5,
            tenant_deliveries_per_minute: 600,
            tenant_max_plugins: 20,
            tenant_max_concurrent_deliveries: 32,
            checks_per_user_per_minute: 10,
            checks_per_ip_per_minute: 60,
            logins_per_ip_per_minute: 30,
            code_requests_per_minute: 5,
            session_hours: 24 * 30,
            max_consecutive_failures: 20,
            lockout_minutes: None,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ranges: [(&str, u32, std::ops::RangeInclusive<u64>); 12] = [
            ("limits.code_length", self.code_length, 6..=10),
            (
                "limits.max_check_attempts",
                self.max_check_attempts,
                1..=100,
            ),
            (
                "limits.sends_per_destination",
                self.sends_per_destination,
                1..=10_000,
            ),
            (
                "limits.tenant_deliveries_per_minute",
                self.tenant_deliveries_per_minute,
                1..=1_000_000,
            ),
            (
                "limits.tenant_max_plugins",
                self.tenant_max_plugins,
                0..=10_000,
            ),
            (
                "limits.tenant_max_concurrent_deliveries",
                self.tenant_max_concurrent_deliveries,
                1..=10_000,
            ),
            (
                "limits.checks_per_user_per_minute",
                self.checks_per_user_per_minute,
                1..=1_000_000,
            ),
            (
                "limits.checks_per_ip_per_minute",
                self.checks_per_ip_per_minute,
                1..=1_000_000,
            ),
            (
                "limits.logins_per_ip_per_minute",
                self.logins_per_ip_per_minute,
                1..=1_000_000,
            ),
            (
                "limits.code_requests_per_minute",
                self.code_requests_per_minute,
                1..=1_000_000,
            ),
            ("limits.session_hours", self.session_hours, 1..=24 * 366),
            (
                "limits.max_consecutive_failures",
                self.max_consecutive_failures,
                1..=100,
            ),
        ];
        for (key, value, range) in ranges {
            check_range(key, value as u64, range)?;
        }
        if let Some(m) = self.lockout_minutes {
            check_range("limits.lockout_minutes", u64::from(m), 1..=7 * 24 * 60)?;
        }
        Ok(())
    }
}
