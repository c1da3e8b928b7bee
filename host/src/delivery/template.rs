//! Helpers of the senders: privacyIDEA's `{otp}`/`{phone}` tags of the SMS
//! kinds, and the untrusted-field helpers (which live in `crate::messages`,
//! where the channel templates are rendered).

pub use crate::messages::{html_escape, plain_field};

/// "10 minutes", "90 seconds", "1 minute" (Pushover's rport wording).
pub fn human_ttl(seconds: u32) -> String {
    crate::messages::ttl::human("en", seconds)
}

/// Replaces `{name}` tags in one pass; unknown tags stay as they are, and a
/// value is never scanned for tags itself (a `{phone}` inside the text is
/// text — the `sms_tags` fuzz target found the old replace-per-tag loop
/// expanding it).
pub fn render(template: &str, tags: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tag = &rest[open + 1..];
        let hit = tags.iter().find(|(name, _)| {
            tag.strip_prefix(name)
                .is_some_and(|after| after.starts_with('}'))
        });
        match hit {
            Some((name, value)) => {
                out.push_str(value);
                rest = &tag[name.len() + 1..];
            }
            None => {
                out.push('{');
                rest = tag;
            }
        }
    }
    out.push_str(rest);
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
        assert_eq!(
            render("{text}|{phone}", &[("text", "{phone}"), ("phone", "+49")]),
            "{phone}|+49",
            "a value is not scanned for tags"
        );
        assert_eq!(render("{{otp}}{", &[("otp", "1")]), "{1}{");
        assert_eq!(render("{otp", &[("otp", "1")]), "{otp");
    }
}
