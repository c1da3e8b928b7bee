//! Guest-side SDK for postern delivery plugins.
//!
//! A plugin is a WASI 0.2 component implementing the WIT world
//! `postern:plugin/deliverer` (`wit/plugin.wit` at the repository root). This
//! crate generates the bindings for that world once and adds a few helpers so
//! that a plugin is about fifty lines:
//!
//! ```ignore
//! use postern_plugin_sdk::{config, http, ConfigKey, DeliveryError, Guest, Message, PluginInfo, Receipt};
//!
//! struct MyPlugin;
//!
//! impl Guest for MyPlugin {
//!     fn describe() -> PluginInfo { /* name, version, config keys */ }
//!     fn validate_recipient(send_to: String) -> Result<(), String> { /* strict check */ }
//!     fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
//!         let url = config::required("url")?;
//!         let resp = http::post_json(&url, &serde_json::json!({ "text": message.text }), &[])?;
//!         resp.check()?;
//!         Ok(Receipt { provider_id: None })
//!     }
//! }
//!
//! postern_plugin_sdk::export!(MyPlugin);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the output
//! `.wasm` is already a component.
//!
//! Rules every helper here follows (and plugins should too): never put the
//! value of a config key (it may be a secret) or a request URL (it may carry a
//! token) into an error or a log line.

#![forbid(unsafe_op_in_unsafe_fn)]

/// The generated bindings (used by the `export!` macro; prefer the re-exports).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "postern:plugin/deliverer@0.1.0",
        pub_export_macro: true,
        default_bindings_module: "postern_plugin_sdk::bindings",
    });
}

pub use bindings::Guest;
/// `export!(MyPlugin);` registers `MyPlugin` (which implements [`Guest`]) as
/// the component's exports.
pub use bindings::export;
pub use bindings::postern::plugin::types::{
    ConfigKey, DeliveryError, Message, PluginInfo, Receipt,
};

/// Re-exported so plugins need no direct dependency to build JSON bodies.
#[cfg(feature = "http")]
pub use serde_json;

#[cfg(feature = "http")]
pub mod http;

/// Access to the channel's config and secrets (the `config` import).
pub mod config {
    use crate::DeliveryError;
    use crate::bindings::postern::plugin::config as host;

    /// The value of `key`, or `None` when the channel does not set it.
    /// An empty value counts as unset.
    pub fn get(key: &str) -> Option<String> {
        host::get(key).filter(|v| !v.is_empty())
    }

    /// The value of `key`, or `default` when unset.
    pub fn get_or(key: &str, default: &str) -> String {
        get(key).unwrap_or_else(|| default.to_string())
    }

    /// The value of `key`, or `DeliveryError::Misconfigured` naming the key
    /// (never the value) when it is missing.
    pub fn required(key: &str) -> Result<String, DeliveryError> {
        get(key).ok_or_else(|| DeliveryError::Misconfigured(format!("missing config key `{key}`")))
    }

    /// The `api_base` key (or `default` when unset and `default` is given),
    /// checked to be an `http://` or `https://` URL, without trailing `/`.
    pub fn api_base(default: Option<&str>) -> Result<String, DeliveryError> {
        let base = match (get("api_base"), default) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_string(),
            (None, None) => return required("api_base"),
        };
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .unwrap_or("");
        if rest.is_empty() || rest.starts_with('/') || base.contains(['?', '#', ' ']) {
            return Err(DeliveryError::Misconfigured(
                "config key `api_base` must be an http:// or https:// URL without query"
                    .to_string(),
            ));
        }
        Ok(base.trim_end_matches('/').to_string())
    }
}

/// Logging through the host (the `log` import). The host caps the volume per
/// delivery. Never log secrets or full URLs.
pub mod log {
    pub use crate::bindings::postern::plugin::log::Level;
    use crate::bindings::postern::plugin::log::log;

    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
    /// Log at an explicit level.
    pub fn at(level: Level, message: &str) {
        log(level, message);
    }

    /// `log::debug!("fmt", args..)` style macros.
    #[macro_export]
    macro_rules! debug {
        ($($arg:tt)*) => { $crate::log::debug(&::std::format!($($arg)*)) };
    }
    #[macro_export]
    macro_rules! info {
        ($($arg:tt)*) => { $crate::log::info(&::std::format!($($arg)*)) };
    }
    #[macro_export]
    macro_rules! warn {
        ($($arg:tt)*) => { $crate::log::warn(&::std::format!($($arg)*)) };
    }
    #[macro_export]
    macro_rules! error {
        ($($arg:tt)*) => { $crate::log::error(&::std::format!($($arg)*)) };
    }
}

/// Shorthand for a [`ConfigKey`] in `describe()`.
pub fn config_key(name: &str, required: bool, secret: bool, description: &str) -> ConfigKey {
    ConfigKey {
        name: name.to_string(),
        required,
        secret,
        description: description.to_string(),
    }
}

/// Maps an HTTP status to a delivery outcome: 2xx is `Ok`; 408, 429 and 5xx
/// are `Unavailable` (transient); every other status is `Rejected`
/// (permanent). The message holds the status and a short, truncated snippet
/// of the response body, never the request URL.
pub fn classify_status(status: u16, body_snippet: &str) -> Result<(), DeliveryError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let snippet = snippet(body_snippet, 200);
    let msg = if snippet.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {snippet}")
    };
    if status == 408 || status == 429 || status >= 500 {
        Err(DeliveryError::Unavailable(msg))
    } else {
        Err(DeliveryError::Rejected(msg))
    }
}

/// At most `max` characters of `text` on one line (control characters
/// replaced by spaces, whitespace trimmed), with `…` when cut.
pub fn snippet(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = text.trim().chars();
    for c in chars.by_ref().take(max) {
        out.push(if c.is_control() { ' ' } else { c });
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// `text` with every occurrence of each non-empty needle replaced by `***`
/// (e.g. to keep a recipient or a token out of a provider's error message).
pub fn redact(text: &str, needles: &[&str]) -> String {
    let mut out = text.to_string();
    for n in needles.iter().filter(|n| !n.is_empty()) {
        out = out.replace(n, "***");
    }
    out
}

/// Joins a base URL and a path with exactly one `/` between them.
/// `url_join("https://x.org/", "/a/b")` is `"https://x.org/a/b"`.
pub fn url_join(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{path}")
    }
}

/// Percent-encodes `s` for a URL path segment or a form value (everything but
/// the RFC 3986 unreserved characters is escaped).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[(b >> 4) as usize]));
            out.push(char::from(HEX[(b & 15) as usize]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Standard base64 (with padding).
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escapes text for XML element content and attribute values
/// (`&`, `<`, `>`, `"`, `'`).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Checks for an E.164 phone number: `+` then 2 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

// Pure helpers only; run natively:
//   cargo test -p postern-plugin-sdk --target x86_64-unknown-linux-gnu
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert!(classify_status(200, "").is_ok());
        assert!(classify_status(204, "").is_ok());
        for s in [408, 429, 500, 503] {
            assert!(matches!(
                classify_status(s, "x"),
                Err(DeliveryError::Unavailable(_))
            ));
        }
        for s in [301, 400, 401, 403, 404, 410] {
            assert!(matches!(
                classify_status(s, "x"),
                Err(DeliveryError::Rejected(_))
            ));
        }
        let Err(DeliveryError::Rejected(m)) = classify_status(400, &"é".repeat(500)) else {
            panic!()
        };
        assert!(m.starts_with("HTTP 400: éé") && m.ends_with('…') && m.chars().count() < 220);
    }

    #[test]
    fn encodings() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pa ss"), "dXNlcjpwYSBzcw==");
        assert_eq!(percent_encode("a b+c/é~"), "a%20b%2Bc%2F%C3%A9~");
        assert_eq!(
            xml_escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        assert_eq!(redact("to +491 failed", &["+491", ""]), "to *** failed");
        assert_eq!(snippet(" a\nb ", 10), "a b");
    }

    #[test]
    fn urls_and_numbers() {
        assert_eq!(url_join("https://x.org/", "/a/b"), "https://x.org/a/b");
        assert_eq!(
            url_join("http://127.0.0.1:8080", "RPC2"),
            "http://127.0.0.1:8080/RPC2"
        );
        assert_eq!(url_join("https://x.org//", ""), "https://x.org");
        assert!(is_e164("+4915123456789"));
        assert!(is_e164("+12"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("4915123456789"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+49 151"));
    }

    #[cfg(feature = "http")]
    #[test]
    fn forms_and_auth() {
        assert_eq!(
            http::form_encode(&[("To", "+4915"), ("Body", "a b&c=d")]),
            "To=%2B4915&Body=a%20b%26c%3Dd"
        );
        assert_eq!(
            http::basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
