//! Messages people read: the four kinds of message ([`Kind`]), built-in in
//! the shipped languages ([`defaults`]), overridable per channel
//! ([`spec::TemplatesSpec`]: the file's `templates = …` and `[smtp]
//! subject/body`, a tenant channel's `templates`), each variant keyed by a
//! BCP 47 locale ([`locale`]). Rendering is MiniJinja ([`engine`]); the
//! `ttl` words are [`ttl`]'s, SMS lengths [`sms`]'s.
//!
//! A channel's [`Messages`] picks the locale when a code is queued
//! ([`Messages::choose`]) and renders when it is sent ([`Messages::text`],
//! [`Messages::email`]). Uses nothing above it: delivery and 2FA use it.

pub mod defaults;
pub mod engine;
pub mod locale;
pub mod set;
pub mod sms;
pub mod spec;
pub mod ttl;

use std::fmt;

pub use locale::{Locale, Preferences};
pub use set::Messages;
pub use spec::TemplatesSpec;

/// The kinds of message a channel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The text of every channel but email (SMS, chat, push).
    Text,
    /// An email's subject.
    Subject,
    /// An email's plain-text part.
    Body,
    /// An email's HTML part (sent as multipart/alternative with the plain part).
    Html,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Text, Kind::Subject, Kind::Body, Kind::Html];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Subject => "subject",
            Kind::Body => "body",
            Kind::Html => "html",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a message kind (text, subject, body, html)"))
    }

    /// The output bound of one render.
    pub fn max_bytes(self) -> usize {
        match self {
            Kind::Text => 2_048,
            Kind::Subject => 512,
            Kind::Body | Kind::Html => 65_536,
        }
    }
}

/// The variables a template may use. Channel secrets are never among them.
pub const VARIABLES: &[&str] = &[
    "code",
    "ttl_seconds",
    "ttl",
    "username",
    "app_name",
    "base_url",
    "domain",
    "user_agent",
    "remote_address",
    "locale",
];

/// A template that cannot be used: which one, why, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The key: `templates.text.de`, `smtp.body`, `channel[0].templates.html.fr`.
    pub field: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " (line {l}, column {c})"),
            (Some(l), None) => write!(f, " (line {l})"),
            _ => Ok(()),
        }
    }
}

/// What the server says about itself in messages: `[server] app_name` and
/// `base_url` (and its host, `domain`).
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub app_name: String,
    pub base_url: String,
    pub domain: String,
}

impl Site {
    pub fn new(app_name: &str, base_url: Option<&str>) -> Self {
        let base_url = base_url.unwrap_or_default().to_string();
        let domain = url::Url::parse(&base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        Self {
            app_name: app_name.to_string(),
            base_url,
            domain,
        }
    }
}

/// The per-message values of a render.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub code: &'a str,
    pub ttl_seconds: u32,
    pub username: &'a str,
    pub user_agent: Option<&'a str>,
    pub remote_address: Option<&'a str>,
}

/// A rendered email.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub plain: String,
    pub html: String,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The parts hold the code.
        f.write_str("Email { .. }")
    }
}

/// Untrusted request data (user agent, IP) as one line of plain text:
/// control characters become spaces and the length is capped, so it cannot
/// add mail headers or lines.
pub fn plain_field(value: Option<&str>) -> String {
    let v = value.unwrap_or("unknown");
    let cleaned: String = v
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(256)
        .collect();
    cleaned.trim().to_string()
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
