//! Values that are checked once at the edge and trusted afterwards.

use std::fmt;

use serde::Serialize;

mod two_factor;
pub use two_factor::{CodePurpose, Method, MethodSlot, VerificationStatus};

/// The name rule as the OpenAPI document states it (a test holds it to
/// `parse_name`).
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// Methods that are not channels, so no channel may take their name.
pub const RESERVED_CHANNEL_NAMES: [&str; 2] = ["totp", "password"];

/// A tenant or channel name: 1–64 of `[a-z0-9_-]`, starting with a letter or
/// digit. Safe in URLs, metrics labels and logs; never used as a path.
fn parse_name(kind: &str, s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a valid {kind} name: use 1-64 characters a-z, 0-9, '-' or '_', starting with a letter or digit",
            s.escape_debug()
        ))
    }
}

macro_rules! name_type {
    ($ty:ident, $kind:literal, reserved: $reserved:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            pub fn parse(s: &str) -> Result<Self, String> {
                let name = parse_name($kind, s)?;
                if $reserved.contains(&name.as_str()) {
                    return Err(format!(
                        "`{name}` is reserved: it names a built-in 2FA method"
                    ));
                }
                Ok(Self(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

// Channel names double as 2FA method names (`x-2fa-method`), so the
// methods that are not channels cannot be channel names.
name_type!(ChannelName, "channel", reserved: RESERVED_CHANNEL_NAMES);
name_type!(TenantName, "tenant", reserved: [] as [&str; 0]);

impl TenantName {
    pub fn default_tenant() -> Self {
        Self("default".into())
    }
}

/// An email address: one `@`, a non-empty local part, a dotted domain, no
/// whitespace or control characters (which would allow header injection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{}` is not an email address", s.escape_debug());
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.contains('@')
            || domain.is_empty()
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || s.contains(['<', '>', ',', ';', '"'])
        {
            return Err(bad());
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Masks a destination for records and API answers: enough to recognise it,
/// not enough to reuse it (`jo***@example.com`, `+49***89`).
pub fn mask_destination(to: &str) -> String {
    let chars: Vec<char> = to.chars().collect();
    if let Some(at) = to.rfind('@') {
        let local: Vec<char> = to[..at].chars().collect();
        let keep = local.len().min(2);
        let shown: String = local[..keep].iter().collect();
        return format!("{shown}***{}", &to[at..]);
    }
    if chars.len() <= 4 {
        return "***".into();
    }
    let head: String = chars[..3.min(chars.len() / 3)].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(ChannelName::parse("telegram").is_ok());
        assert!(ChannelName::parse("sms-1_x").is_ok());
        assert!(ChannelName::parse("totp").unwrap_err().contains("reserved"));
        assert!(ChannelName::parse("password").is_err());
        assert!(TenantName::parse("password").is_ok());
        for bad in ["", "../x", "A", "-x", "a b", &"x".repeat(65)] {
            assert!(ChannelName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(EmailAddress::parse("john.doe@example.com").is_ok());
        for bad in [
            "",
            "john",
            "@example.com",
            "john@",
            "john@localhost",
            "a@b.c\r\nBcc: x@y.z",
            "a b@c.d",
            "<a@b.c>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masking_hides_most_of_the_address() {
        assert_eq!(
            mask_destination("john.doe@example.com"),
            "jo***@example.com"
        );
        assert_eq!(mask_destination("+491701234589"), "+49***89");
        assert_eq!(mask_destination("1234"), "***");
        assert!(!mask_destination("123456789").contains("4567"));
    }
}
