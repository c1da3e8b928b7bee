//! Message text: the one sentence every channel sends, and the `{tag}`
//! templates of the SMTP and SMS senders.

/// "10 minutes", "90 seconds", "1 minute".
pub fn human_ttl(seconds: u32) -> String {
    if seconds.is_multiple_of(60) && seconds >= 60 {
        let m = seconds / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{seconds} second{}", if seconds == 1 { "" } else { "s" })
    }
}

/// The text handed to every channel (and to plugins as `message.text`).
pub fn default_text(code: &str, ttl_seconds: u32) -> String {
    format!(
        "Your verification code is {code}. It expires in {}.",
        human_ttl(ttl_seconds)
    )
}

/// Untrusted request data (user agent, IP) as one line of plain text: control
/// characters become spaces and the length is capped, so it cannot add mail
/// headers or lines.
pub fn plain_field(value: Option<&str>) -> String {
    let v = value.unwrap_or("unknown");
    let cleaned: String = v
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(256)
        .collect();
    cleaned.trim().to_string()
}

/// Escapes text for an HTML body.
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
    fn ttl_wording() {
        assert_eq!(human_ttl(600), "10 minutes");
        assert_eq!(human_ttl(60), "1 minute");
        assert_eq!(human_ttl(90), "90 seconds");
    }

    #[test]
    fn hostile_fields_become_one_line() {
        let v = plain_field(Some("curl\r\nBcc: evil@example.com"));
        assert!(!v.contains('\n') && !v.contains('\r'));
        assert_eq!(plain_field(None), "unknown");
        assert_eq!(html_escape("<b>&'\""), "&lt;b&gt;&amp;&#39;&quot;");
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
