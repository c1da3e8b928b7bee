//! Helpers of the senders: privacyIDEA's `{otp}`/`{phone}` tags of the SMS
//! kinds, and the untrusted-field helpers (which live in `crate::messages`,
//! where the channel templates are rendered).

pub use crate::messages::{html_escape, plain_field};

/// "10 minutes", "90 seconds", "1 minute" (Pushover's rport wording).
pub fn human_ttl(seconds: u32) -> String {
    crate::messages::ttl::human("en", seconds)
}

/// Replaces `{name}` tags; unknown tags stay as they are.
pub fn render(template: &str, tags: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in tags {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_fields_become_one_line() {
        let v = plain_field(Some("curl\r\nBcc: evil@example.com"));
        assert!(!v.contains('\n') && !v.contains('\r'));
        assert_eq!(plain_field(None), "unknown");
        assert_eq!(html_escape("<b>&'\""), "&lt;b&gt;&amp;&#39;&quot;");
        assert_eq!(human_ttl(600), "10 minutes");
    }

    #[test]
    fn render_tags() {
        assert_eq!(
            render(
                "{code} in {ttl} {x}",
                &[("code", "123"), ("ttl", "1 minute")]
            ),
            "123 in 1 minute {x}"
        );
    }
}
