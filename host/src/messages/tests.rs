//! The built-in messages and a channel's overrides, rendered.

use std::collections::BTreeMap;

use super::spec::CatchAll;
use super::*;

fn site() -> Site {
    Site::new("postern", Some("https://2fa.example.com/base"))
}

fn vars(code: &str) -> Vars<'_> {
    Vars {
        code,
        ttl_seconds: 600,
        username: "alice",
        user_agent: Some("Mozilla <b>\r\nBcc: x"),
        remote_address: Some("192.0.2.7"),
    }
}

fn loc(s: &str) -> Locale {
    Locale::parse(s).unwrap()
}

fn spec(kind: &str, pairs: &[(&str, &str)]) -> TemplatesSpec {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut s = TemplatesSpec::default();
    match kind {
        "text" => s.text = map,
        "subject" => s.subject = map,
        "body" => s.body = map,
        _ => s.html = map,
    }
    s
}

#[test]
fn english_defaults_are_the_old_wording() {
    let m = Messages::builtin(site());
    let t = m.text(&Locale::en(), &vars("123456")).unwrap();
    assert_eq!(
        t,
        "Your verification code is 123456. It expires in 10 minutes."
    );
    let e = m.email(&Locale::en(), &vars("123456")).unwrap();
    assert_eq!(e.subject, "Your verification code");
    assert!(
        e.plain
            .starts_with("Your verification code is 123456.\nIt expires in 10 minutes.\n")
    );
    // Untrusted fields are one line, and escaped in HTML.
    assert!(e.plain.contains("Mozilla <b>  Bcc: x"), "{}", e.plain);
    assert!(e.html.contains("Mozilla &lt;b&gt;"), "{}", e.html);
    assert!(e.html.contains(">123456</strong>"), "{}", e.html);
}

#[test]
fn every_shipped_text_fits_one_segment() {
    let m = Messages::builtin(site());
    assert_eq!(defaults::tags().count(), 12);
    for tag in defaults::tags() {
        for ttl in [60, 600, 3600, 90] {
            let v = Vars {
                ttl_seconds: ttl,
                ..vars("1234567890")
            };
            let t = m.text(&loc(tag), &v).unwrap();
            let l = sms::length(&t);
            assert_eq!(l.segments, 1, "{tag}: {t} is {l:?}");
            assert!(t.contains("1234567890"), "{tag}: {t}");
            let e = m.email(&loc(tag), &v).unwrap();
            assert!(e.plain.contains("1234567890") && e.html.contains("1234567890"));
            assert!(!e.subject.is_empty());
        }
    }
    // Where the alphabet allows, GSM-7.
    for tag in ["en", "de", "fr", "it", "nl", "sv"] {
        let t = m.text(&loc(tag), &vars("123456")).unwrap();
        assert_eq!(sms::length(&t).encoding, sms::Encoding::Gsm7, "{tag}: {t}");
    }
    let de = m.text(&loc("de-AT"), &vars("123456")).unwrap();
    assert_eq!(
        de,
        "Ihr Bestätigungscode lautet 123456. Er ist 10 Minuten gültig."
    );
}

#[test]
fn own_templates_win_per_locale_and_the_default_locale_catches_the_rest() {
    let mut s = spec(
        "text",
        &[
            ("de", "Code: {{ code }} ({{ ttl }})"),
            ("fr", "Code : {{ code }}"),
        ],
    );
    s.default_locale = Some("de".into());
    let m = Messages::build(&s, &[], site(), "templates").unwrap();
    let pick = |prefs: Preferences| m.choose(&prefs);
    let de = pick(Preferences::chain(Some("de-AT"), None, ""));
    assert_eq!(de.as_str(), "de");
    assert_eq!(m.text(&de, &vars("42")).unwrap(), "Code: 42 (10 Minuten)");
    let fr = pick(Preferences::chain(Some("fr"), None, ""));
    assert_eq!(m.text(&fr, &vars("42")).unwrap(), "Code : 42");
    // A language nobody wrote falls back to the channel's default.
    let other = pick(Preferences::chain(Some("ko"), None, ""));
    assert_eq!(other.as_str(), "de");
    // A shipped language the channel did not override is the built-in one.
    let pt = pick(Preferences::chain(None, Some("pt-BR"), ""));
    assert_eq!(pt.as_str(), "pt");
    assert!(
        m.text(&pt, &vars("42"))
            .unwrap()
            .starts_with("O seu código")
    );
}

#[test]
fn a_default_locale_needs_a_template() {
    let s = TemplatesSpec {
        default_locale: Some("ko".into()),
        ..Default::default()
    };
    let e = Messages::build(&s, &[], site(), "templates").err().unwrap();
    assert_eq!(e.field, "templates.defaultLocale");
    let e = Messages::build(&spec("text", &[("no such", "x")]), &[], site(), "t")
        .err()
        .unwrap();
    assert_eq!(e.field, "t.text.no such");
}

#[test]
fn smtp_tags_keep_working_and_both_parts_agree() {
    let catch = [
        CatchAll {
            kind: Kind::Subject,
            field: "smtp.subject".into(),
            source: "Code for {username}".into(),
        },
        CatchAll {
            kind: Kind::Body,
            field: "smtp.body".into(),
            source: "Use {code} within {ttl} <now>".into(),
        },
    ];
    let m = Messages::build(&TemplatesSpec::default(), &catch, site(), "smtp.templates").unwrap();
    let e = m.email(&loc("de"), &vars("777")).unwrap();
    assert_eq!(e.subject, "Code for alice");
    assert_eq!(e.plain, "Use 777 within 10 Minuten <now>");
    assert!(
        e.html.contains("Use 777 within 10 Minuten &lt;now&gt;"),
        "{}",
        e.html
    );
}

#[test]
fn webotp_line_is_last_and_uses_the_base_url_host() {
    let s = TemplatesSpec {
        webotp: true,
        ..Default::default()
    };
    let m = Messages::build(&s, &[], site(), "templates").unwrap();
    let t = m.text(&Locale::en(), &vars("123456")).unwrap();
    assert!(t.ends_with("\n\n@2fa.example.com #123456"), "{t}");
    let plain = Messages::builtin(site())
        .text(&Locale::en(), &vars("1"))
        .unwrap();
    assert!(!plain.contains('@'));
    let e = Messages::build(&s, &[], Site::new("postern", None), "templates")
        .err()
        .unwrap();
    assert_eq!(e.field, "templates.webotp");
}

#[test]
fn templates_see_the_site_variables() {
    let s = spec(
        "text",
        &[(
            "en",
            "{{ app_name }} {{ domain }} {{ base_url }} {{ ttl_seconds }} {{ locale }}",
        )],
    );
    let m = Messages::build(
        &s,
        &[],
        Site::new("Acme", Some("https://id.acme.test")),
        "t",
    )
    .unwrap();
    assert_eq!(
        m.text(&Locale::en(), &vars("1")).unwrap(),
        "Acme id.acme.test https://id.acme.test 600 en"
    );
}
