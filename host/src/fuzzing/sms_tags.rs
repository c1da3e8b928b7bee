//! privacyIDEA's `regexp` phone rewrite and the `{otp}`/`{phone}`/`{text}`
//! option tags of the SMS kinds. Parsing any spec never panics, a rewrite
//! applies to any number, a replacement without `\` backreferences is
//! taken literally (`$` is not regex syntax in privacyIDEA), and a template
//! without tags renders as itself.

use regex::NoExpand;

use crate::delivery::sms_gateway::PhoneRewrite;
use crate::delivery::template::render;

/// Lines: the `regexp` spec, a phone number, an option template, a code.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let spec = lines.next().unwrap_or_default();
    let phone = lines.next().unwrap_or_default();
    let template = lines.next().unwrap_or_default();
    let code = lines.next().unwrap_or_default();

    let rewritten = match PhoneRewrite::parse_optional(spec) {
        Ok(Some(r)) => check_rewrite(spec, &r, phone),
        Ok(None) => {
            assert!(spec.is_empty());
            phone.to_string()
        }
        Err(e) => {
            assert!(!e.is_empty());
            phone.to_string()
        }
    };
    let tags = [("otp", code), ("phone", rewritten.as_str()), ("text", "t")];
    let out = render(template, &tags);
    if !template.contains('{') {
        assert_eq!(out, template);
    }
    if template == "{otp}" {
        assert_eq!(out, code);
    }
}

fn check_rewrite(spec: &str, r: &PhoneRewrite, phone: &str) -> String {
    let out = r.apply(phone);
    let replacement = spec[1..spec.len() - 1]
        .rsplit_once('/')
        .map(|(_, rep)| rep)
        .unwrap_or_default();
    if !replacement.contains('\\') {
        let literal = r.pattern.replace_all(phone, NoExpand(replacement));
        assert_eq!(out, literal, "{spec:?} on {phone:?}");
    }
    out
}
