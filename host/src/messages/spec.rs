//! Where a channel's own templates come from: `templates = { … }` on a file
//! channel (`[smtp]`, `[[sms_gateway]]`, `[[channel]]`, `[pushover]`) and
//! the `templates` field of a tenant channel (`PUT /channels/{name}`), one
//! shape for both. Each kind maps BCP 47 locales to a MiniJinja template:
//!
//! ```toml
//! templates.default_locale = "de"
//! templates.text = { de = "Ihr Code: {{ code }}", fr = "Votre code : {{ code }}" }
//! templates.webotp = true
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Kind;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesSpec {
    /// The locale when nothing about the reader matches (the tenant's
    /// default for this channel); `en` if unset.
    #[serde(
        default,
        rename = "defaultLocale",
        alias = "default_locale",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_locale: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub text: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subject: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub html: BTreeMap<String, String>,
    /// Append the origin-bound one-time-code line (`@domain #code`, WebOTP)
    /// as the last line of texts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webotp: bool,
}

impl TemplatesSpec {
    pub fn variants(&self, kind: Kind) -> &BTreeMap<String, String> {
        match kind {
            Kind::Text => &self.text,
            Kind::Subject => &self.subject,
            Kind::Body => &self.body,
            Kind::Html => &self.html,
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A template that applies to every locale the channel has no own variant
/// for: rport's `[smtp] subject` and `body` (`{code}`-style tags).
#[derive(Debug, Clone)]
pub struct CatchAll {
    pub kind: Kind,
    /// The key, for errors: `smtp.body`.
    pub field: String,
    pub source: String,
}
