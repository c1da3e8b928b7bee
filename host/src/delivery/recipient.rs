//! A channel's rule for send-to values (`none | email | regex`).

use regex::Regex;
use serde::Deserialize;

use crate::domain::EmailAddress;

/// rport's `two_fa_send_to_type` (and a channel's `send_to_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SendToType {
    #[default]
    None,
    Email,
    Regex,
}

impl SendToType {
    /// The wire name: `none`, `email` or `regex`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Email => "email",
            Self::Regex => "regex",
        }
    }
}

#[derive(Debug, Clone)]
pub enum RecipientRule {
    /// Anything non-empty without control characters.
    Any,
    Email,
    /// Anchored by postern even if the operator did not anchor it.
    Regex(Regex),
}

/// The most a configured pattern may compile to (the regex crate's default
/// is 10 MiB). Tenants set patterns over the API, and the compile runs
/// until the limit: `\d{6114}` (found by the `config` fuzz target) takes
/// 124 ms to be refused at 10 MiB, 30 ms at 4 MiB (test profile). A
/// Unicode `\w{1,64}` needs between 2 and 4 MiB, so the limit stays there.
const PATTERN_SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// A configured regular expression, compiled within [`PATTERN_SIZE_LIMIT`].
pub fn bounded_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

impl RecipientRule {
    pub fn regex(pattern: &str) -> Result<Self, String> {
        bounded_regex(&format!("^(?:{pattern})$"))
            .map(Self::Regex)
            .map_err(|e| format!("invalid regular expression: {e}"))
    }

    pub fn from_config(kind: SendToType, regex: Option<&str>) -> Result<Self, String> {
        match kind {
            SendToType::None => Ok(Self::Any),
            SendToType::Email => Ok(Self::Email),
            SendToType::Regex => Self::regex(regex.unwrap_or_default()),
        }
    }

    pub fn check(&self, send_to: &str) -> Result<(), String> {
        if send_to.is_empty() {
            return Err("sendTo is empty".into());
        }
        if send_to.len() > 512 || send_to.chars().any(char::is_control) {
            return Err("sendTo is too long or contains control characters".into());
        }
        match self {
            Self::Any => Ok(()),
            Self::Email => EmailAddress::parse(send_to).map(|_| ()),
            Self::Regex(r) => {
                if r.is_match(send_to) {
                    Ok(())
                } else {
                    Err(format!(
                        "`{}` does not match the channel's pattern",
                        send_to.escape_debug()
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_too_big_to_compile_is_refused() {
        let e = RecipientRule::regex(r"\d{6114}").unwrap_err();
        assert!(e.contains("size limit"), "{e}");
        assert!(RecipientRule::regex(r"\+?\d{6,15}").is_ok());
        assert!(
            RecipientRule::regex(
                r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,8}"
            )
            .is_ok()
        );
        assert!(RecipientRule::regex(r"[\w.+-]{1,64}@\w+(\.\w+)+").is_ok());
    }

    #[test]
    fn regex_is_anchored() {
        let r = RecipientRule::regex(r"\d{6,12}").unwrap();
        assert!(r.check("12345678").is_ok());
        assert!(r.check("x12345678").is_err());
        assert!(r.check("12345678x").is_err());
        // Alternation must not escape the anchors.
        let r = RecipientRule::regex("a|b").unwrap();
        assert!(r.check("a").is_ok());
        assert!(r.check("ab").is_err());
    }

    #[test]
    fn email_and_any() {
        assert!(RecipientRule::Email.check("a@b.co").is_ok());
        assert!(RecipientRule::Email.check("nope").is_err());
        assert!(RecipientRule::Any.check("anything").is_ok());
        assert!(RecipientRule::Any.check("").is_err());
        assert!(RecipientRule::Any.check("a\nb").is_err());
    }
}
