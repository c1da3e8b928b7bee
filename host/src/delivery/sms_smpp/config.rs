//! The `sms-smpp` kind's keys: an `[[sms_gateway]]` with `kind = "smpp"`
//! (privacyIDEA's SMPP provider: `smsc_host`, `smsc_port`, `system_id`,
//! `password`, `system_type`, `s_addr`, `s_addr_ton`, `s_addr_npi`,
//! `d_addr_ton`, `d_addr_npi`; postern adds `tls`, `timeout_seconds`,
//! `window`, `enquire_link_seconds`, `regexp`), or the `config` of a
//! tenant's `sms-smpp` channel (same names, `password` in `secrets`).
//! [`SmppSettings::parse`] turns the table into typed settings.

use std::num::NonZeroUsize;
use std::time::Duration;

use rusmpp::types::COctetString;
use rusmpp::values::{Npi, Ton};

use crate::config::check::{ConfigError, check_range, invalid};
use crate::delivery::sms_gateway::{PhoneRewrite, SmsGatewayConfig};
use crate::secret::Secret;

/// The secrets a tenant's `sms-smpp` channel takes.
pub const SECRET_KEYS: &[&str] = &["password"];

/// The `config` keys a tenant's `sms-smpp` channel takes.
pub const CONFIG_KEYS: &[&str] = &[
    "smsc_host",
    "smsc_port",
    "system_id",
    "system_type",
    "s_addr",
    "s_addr_ton",
    "s_addr_npi",
    "d_addr_ton",
    "d_addr_npi",
    "tls",
    "timeout_seconds",
    "window",
    "enquire_link_seconds",
    "regexp",
];

/// One SMPP gateway, checked: what the session and the sender use.
#[derive(Debug, Clone)]
pub struct SmppSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub system_id: COctetString<1, 16>,
    pub password: Option<Secret>,
    pub system_type: COctetString<1, 13>,
    /// The sender address; empty lets the SMSC fill it in.
    pub source: COctetString<1, 21>,
    pub source_ton: Ton,
    pub source_npi: Npi,
    pub dest_ton: Ton,
    pub dest_npi: Npi,
    /// Bind, each submit and unbind wait this long for the answer.
    pub timeout: Duration,
    /// Submits outstanding at once on the session.
    pub window: NonZeroUsize,
    pub enquire_link: Duration,
    pub rewrite: Option<PhoneRewrite>,
}

fn c_octets<const N: usize>(key: &str, value: &str) -> Result<COctetString<1, N>, ConfigError> {
    if !value.is_ascii() {
        return Err(invalid(key, "must be ASCII"));
    }
    value
        .parse::<COctetString<1, N>>()
        .map_err(|_| invalid(key, format!("at most {} characters", N - 1)))
}

impl SmppSettings {
    /// The gateway's keys, typed; errors name the key (`prefix.smsc_host`).
    pub fn parse(g: &SmsGatewayConfig, prefix: &str) -> Result<Self, ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        for (k, v) in [("smsc_host", &g.smsc_host), ("system_id", &g.system_id)] {
            if v.trim().is_empty() {
                return Err(invalid(key(k), "is required for kind = \"smpp\""));
            }
        }
        if g.smsc_port == 0 {
            return Err(invalid(key("smsc_port"), "must be 1..=65535"));
        }
        check_range(&key("timeout_seconds"), g.timeout_seconds, 1..=120)?;
        check_range(&key("window"), u64::from(g.window), 1..=100)?;
        check_range(
            &key("enquire_link_seconds"),
            g.enquire_link_seconds,
            5..=3600,
        )?;
        if let Some(p) = &g.password {
            c_octets::<9>(&key("password"), p.expose())?;
        }
        let rewrite =
            PhoneRewrite::parse_optional(&g.regexp).map_err(|m| invalid(key("regexp"), m))?;
        Ok(Self {
            host: g.smsc_host.trim().to_string(),
            port: g.smsc_port,
            tls: g.tls,
            system_id: c_octets(&key("system_id"), &g.system_id)?,
            password: g.password.clone(),
            system_type: c_octets(&key("system_type"), &g.system_type)?,
            source: c_octets(&key("s_addr"), &g.s_addr)?,
            source_ton: Ton::from(g.s_addr_ton),
            source_npi: Npi::from(g.s_addr_npi),
            dest_ton: Ton::from(g.d_addr_ton),
            dest_npi: Npi::from(g.d_addr_npi),
            timeout: Duration::from_secs(g.timeout_seconds),
            window: NonZeroUsize::new(g.window as usize).unwrap_or(NonZeroUsize::MIN),
            enquire_link: Duration::from_secs(g.enquire_link_seconds),
            rewrite,
        })
    }

    /// The destination address for a send-to: `regexp` applied, and an
    /// international number's `+` dropped (`d_addr_ton = 1` carries it).
    pub fn destination(&self, send_to: &str) -> String {
        let phone = match &self.rewrite {
            Some(r) => r.apply(send_to),
            None => send_to.to_string(),
        };
        match self.dest_ton {
            Ton::International => phone.trim_start_matches('+').to_string(),
            _ => phone,
        }
    }
}

/// Checks the SMPP provider's keys; keys in errors start with `prefix`.
pub fn validate(g: &SmsGatewayConfig, prefix: &str) -> Result<(), ConfigError> {
    SmppSettings::parse(g, prefix).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> SmsGatewayConfig {
        SmsGatewayConfig {
            kind: "smpp".into(),
            smsc_host: "smsc.example".into(),
            system_id: "postern".into(),
            ..Default::default()
        }
    }

    #[test]
    fn required_keys_are_named() {
        let mut g = gateway();
        g.smsc_host.clear();
        let e = validate(&g, "sms_gateway[0]").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid `sms_gateway[0].smsc_host`: is required for kind = \"smpp\""
        );
        let mut g = gateway();
        g.system_id = " ".into();
        let e = validate(&g, "sms_gateway[0]").unwrap_err().to_string();
        assert!(e.contains("sms_gateway[0].system_id"), "{e}");
    }

    #[test]
    fn lengths_and_ranges_are_checked() {
        let mut g = gateway();
        g.system_id = "a-system-id-too-long".into();
        let e = validate(&g, "p").unwrap_err().to_string();
        assert_eq!(e, "invalid `p.system_id`: at most 15 characters");
        let mut g = gateway();
        g.password = Some(Secret::new("123456789"));
        let e = validate(&g, "p").unwrap_err().to_string();
        assert_eq!(e, "invalid `p.password`: at most 8 characters");
        assert!(!e.contains("123456789"));
        let mut g = gateway();
        g.window = 0;
        assert!(
            validate(&g, "p")
                .unwrap_err()
                .to_string()
                .contains("p.window")
        );
    }

    #[test]
    fn defaults_and_destination() {
        let s = SmppSettings::parse(&gateway(), "p").unwrap();
        assert_eq!((s.port, s.window.get()), (2775, 10));
        assert_eq!(s.enquire_link, Duration::from_secs(30));
        assert_eq!(s.destination("+491701234567"), "491701234567");
        let mut g = gateway();
        g.d_addr_ton = 0;
        g.regexp = "/^\\+49/0/".into();
        let s = SmppSettings::parse(&g, "p").unwrap();
        assert_eq!(s.destination("+491701234567"), "01701234567");
    }
}
