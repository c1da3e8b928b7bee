//! [`ChannelKind`]: the kinds a channel can be, by wire name, and the one
//! place that maps each onto its folder's [`KindAdapter`].

use std::fmt;

use super::spec::KindAdapter;
use super::{plugin, pushover, sms_http, sms_smpp, sms_smtp, smtp, url};

/// A channel's kind. The wire names (`PUT /channels` `kind`, the stored
/// row, `Sender::kind`) are those of [`ChannelKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Smtp,
    Pushover,
    Url,
    SmsHttp,
    SmsSmtp,
    SmsSmpp,
    Plugin,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 7] = [
        Self::Smtp,
        Self::Pushover,
        Self::Url,
        Self::SmsHttp,
        Self::SmsSmtp,
        Self::SmsSmpp,
        Self::Plugin,
    ];

    /// The kind's folder.
    pub fn adapter(self) -> &'static dyn KindAdapter {
        match self {
            Self::Smtp => &smtp::Kind,
            Self::Pushover => &pushover::Kind,
            Self::Url => &url::Kind,
            Self::SmsHttp => &sms_http::Kind,
            Self::SmsSmtp => &sms_smtp::Kind,
            Self::SmsSmpp => &sms_smpp::Kind,
            Self::Plugin => &plugin::Kind,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.adapter().name()
    }

    /// A wire name; the error lists the allowed ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("`{s}`: allowed kinds are {}", names.join(", "))
            })
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        let names: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "smtp", "pushover", "url", "sms-http", "sms-smtp", "sms-smpp", "plugin"
            ]
        );
        for k in ChannelKind::ALL {
            assert_eq!(ChannelKind::parse(k.as_str()), Ok(k));
        }
        assert_eq!(
            ChannelKind::parse("fax").unwrap_err(),
            "`fax`: allowed kinds are smtp, pushover, url, sms-http, sms-smtp, sms-smpp, plugin"
        );
    }
}
