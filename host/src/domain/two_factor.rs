//! The 2FA vocabulary as types: which method a user signs in with, what a
//! stored code is for, where a Verify-API verification stands. Each has the
//! exact string it has on the wire and in the store (`as_str`/`parse`, and
//! serde through them).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ChannelName;

/// A 2FA method: the authenticator app, the password (the fallback of a
/// user without 2FA), the user's email address, or a channel with the
/// user's send-to. `email` is also a channel name; it is always `Email`.
#[derive(Debug, Clone)]
pub enum Method {
    Totp,
    Password,
    Email,
    Channel(ChannelName),
}

impl Method {
    pub const TOTP: &'static str = "totp";
    pub const PASSWORD: &'static str = "password";
    pub const EMAIL: &'static str = "email";

    /// `totp`, `password`, `email`, or a valid channel name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            Self::TOTP => Self::Totp,
            Self::PASSWORD => Self::Password,
            Self::EMAIL => Self::Email,
            _ => Self::Channel(ChannelName::parse(s)?),
        })
    }

    /// The method a channel's codes stand for (`email` is `Email`).
    pub fn from_channel(name: ChannelName) -> Self {
        if name.as_str() == Self::EMAIL {
            Self::Email
        } else {
            Self::Channel(name)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Totp => Self::TOTP,
            Self::Password => Self::PASSWORD,
            Self::Email => Self::EMAIL,
            Self::Channel(c) => c.as_str(),
        }
    }

    /// The channel that carries this method's codes; none for TOTP and
    /// the password.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Self::Totp | Self::Password => None,
            Self::Email | Self::Channel(_) => Some(self.as_str()),
        }
    }

    /// The order methods are listed in: `totp`, `email`, then channels.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Totp => 0,
            Self::Email => 1,
            Self::Password | Self::Channel(_) => 2,
        }
    }
}

// By the wire string, so `Channel("email")` built by hand still equals `Email`.
impl PartialEq for Method {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Method {}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A user's method row: an enabled method, or a channel enrolment waiting
/// for its confirmation code (`pending:<channel>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSlot {
    Enabled(Method),
    Pending(ChannelName),
}

impl MethodSlot {
    const PENDING_PREFIX: &'static str = "pending:";

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix(Self::PENDING_PREFIX) {
            Some(channel) => Ok(Self::Pending(ChannelName::parse(channel)?)),
            None => Method::parse(s).map(Self::Enabled),
        }
    }

    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            Self::Enabled(m) => Cow::Borrowed(m.as_str()),
            Self::Pending(c) => Cow::Owned(format!("{}{c}", Self::PENDING_PREFIX)),
        }
    }
}

/// What a stored code is for. Sign-in and Verify codes are keyed by the
/// method that carries them (the subject tells a user from a verification);
/// a channel enrolment's code is `enrol:<channel>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodePurpose {
    Method(Method),
    Enrol(ChannelName),
}

impl CodePurpose {
    const ENROL_PREFIX: &'static str = "enrol:";

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix(Self::ENROL_PREFIX) {
            Some(channel) => Ok(Self::Enrol(ChannelName::parse(channel)?)),
            None => Method::parse(s).map(Self::Method),
        }
    }

    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            Self::Method(m) => Cow::Borrowed(m.as_str()),
            Self::Enrol(c) => Cow::Owned(format!("{}{c}", Self::ENROL_PREFIX)),
        }
    }
}

impl fmt::Display for CodePurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// Where a Verify-API verification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    Pending,
    Approved,
    Expired,
    MaxAttemptsReached,
    Canceled,
}

impl VerificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Expired => "expired",
            Self::MaxAttemptsReached => "max_attempts_reached",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "expired" => Self::Expired,
            "max_attempts_reached" => Self::MaxAttemptsReached,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }
}

impl fmt::Display for VerificationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_through_their_wire_strings() {
        for s in ["totp", "password", "email", "sms", "telegram-2"] {
            let m = Method::parse(s).unwrap();
            assert_eq!(m.as_str(), s);
            assert_eq!(serde_json::to_value(&m).unwrap(), s);
            let back: Method = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(back, m);
        }
        assert_eq!(Method::parse("email").unwrap(), Method::Email);
        assert_eq!(
            Method::from_channel(ChannelName::parse("email").unwrap()),
            Method::Email
        );
        assert!(Method::parse("Not A Name").is_err());
        assert_eq!(Method::Totp.channel(), None);
        assert_eq!(Method::Email.channel(), Some("email"));
    }

    #[test]
    fn slots_and_purposes_keep_their_prefixes() {
        let sms = ChannelName::parse("sms").unwrap();
        let slot = MethodSlot::parse("pending:sms").unwrap();
        assert_eq!(slot, MethodSlot::Pending(sms.clone()));
        assert_eq!(slot.as_str(), "pending:sms");
        assert_eq!(
            MethodSlot::parse("totp").unwrap(),
            MethodSlot::Enabled(Method::Totp)
        );
        let p = CodePurpose::parse("enrol:sms").unwrap();
        assert_eq!(p, CodePurpose::Enrol(sms));
        assert_eq!(p.to_string(), "enrol:sms");
        assert_eq!(CodePurpose::parse("email").unwrap().as_str(), "email");
        assert!(CodePurpose::parse("enrol:").is_err());
    }

    #[test]
    fn verification_statuses_match_the_wire() {
        use VerificationStatus::*;
        for s in [Pending, Approved, Expired, MaxAttemptsReached, Canceled] {
            assert_eq!(VerificationStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(MaxAttemptsReached.as_str(), "max_attempts_reached");
        assert_eq!(VerificationStatus::parse("done"), None);
    }
}
