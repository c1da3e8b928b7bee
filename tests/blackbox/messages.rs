//! Messages and languages: a tenant's own templates per locale, the locale
//! chain (stored language → Verify `locale` → `Accept-Language` → the
//! number's country → the channel's default), the WebOTP line, the SMS
//! length in the record, and refusals of bad templates (API and file).

use serde_json::{Value, json};

use crate::plugins::support::wasm;
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::http::{Receiver, reply};
use crate::support::server::{Postern, run_cli};
use crate::support::smtp::{SmtpOptions, SmtpServer};

const CONFIG: &str = "[server]\nbase_url = \"https://2fa.example.com\"\napp_name = \"Acme ID\"\n\
                      [plugins]\nallow_private_networks = true\n";

/// German and French for every kind; German is the channels' default.
fn templates(webotp: bool) -> Value {
    json!({
        "defaultLocale": "de",
        "text": {
            "de": "{{ app_name }}: Ihr Code lautet {{ code }}, gültig {{ ttl }}.",
            "fr": "{{ app_name }} : votre code est {{ code }}, valable {{ ttl }}.",
        },
        "subject": { "de": "Ihr Code für {{ app_name }}", "fr": "Votre code {{ app_name }}" },
        "body": {
            "de": "Hallo {{ username }},\nIhr Code lautet {{ code }}.\nGültig {{ ttl }}.",
            "fr": "Bonjour {{ username }},\nvotre code est {{ code }}.",
        },
        "html": {
            "de": "<p>Hallo {{ username }}, Ihr Code: <b>{{ code }}</b> ({{ user_agent }})</p>",
        },
        "webotp": webotp,
    })
}

struct World {
    p: Postern,
    key: String,
    smtp: SmtpServer,
    sms: Receiver,
    bot: Receiver,
}

impl World {
    async fn start() -> Self {
        let smtp = SmtpServer::start(SmtpOptions::default()).await;
        let sms = Receiver::start(vec![reply(200, "ID: 1")]).await;
        let bot =
            Receiver::start(vec![reply(200, r#"{"ok":true,"result":{"message_id":1}}"#)]).await;
        let p = Postern::start(CONFIG).await;
        let key = tenant(&p, "acme").await;
        let (s, v) = upload(&p, "acme", &key, "telegram", WASM, wasm("telegram")).await;
        assert_eq!(s, 200, "{v}");
        let w = Self {
            p,
            key,
            smtp,
            sms,
            bot,
        };
        let channels = [
            (
                "mail",
                json!({
                    "kind": "smtp",
                    "config": { "server": format!("127.0.0.1:{}", w.smtp.port),
                                "sender_email": "2fa@acme.test", "starttls": "off" },
                    "templates": templates(false),
                }),
            ),
            (
                "sms",
                json!({
                    "kind": "sms-http",
                    "config": { "url": w.sms.url("/send"), "http_method": "POST",
                                "options": { "text": "{text}", "to": "{phone}" },
                                "return_success": "ID" },
                    "templates": templates(true),
                }),
            ),
            (
                "telegram",
                json!({
                    "kind": "plugin", "plugin": "telegram",
                    "allowedHosts": [format!("http://127.0.0.1:{}", w.bot.port)],
                    "config": { "api_base": w.bot.url("") }, "secrets": { "bot_token": "42:abc" },
                    "templates": templates(false),
                }),
            ),
        ];
        for (name, body) in channels {
            let (s, v) = w
                .call("PUT", &format!("/channels/{name}"), Some(body))
                .await;
            assert_eq!(s, 200, "{name}: {v}");
        }
        w
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        req(
            &self.p,
            method,
            &format!("/t/acme/api/v1{path}"),
            &self.key,
            body,
        )
        .await
    }

    /// A user with `language`, enrolled on `channel` with `send_to`.
    async fn user(&self, name: &str, language: Option<&str>, channel: &str, send_to: &str) {
        let mut body = json!({ "username": name, "email": format!("{name}@acme.test") });
        if let Some(l) = language {
            body["language"] = json!(l);
        }
        let (s, v) = self.call("POST", "/users.create", Some(body)).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["user"]["language"], json!(language));
        let body = json!({ "username": name, "method": channel, "sendTo": send_to });
        let (s, v) = self.call("POST", "/users.setTwoFactor", Some(body)).await;
        assert_eq!(s, 200, "{v}");
    }

    /// `POST /verifications` (with an optional `Accept-Language`); answers
    /// the delivery record of the code it sent.
    async fn verify(&self, body: Value, accept_language: Option<&str>) -> Value {
        let mut r = Postern::client()
            .post(self.p.url("/t/acme/api/v1/verifications"))
            .bearer_auth(&self.key)
            .json(&body);
        if let Some(a) = accept_language {
            r = r.header("accept-language", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 201, "{body}");
        let (_, v) = self.call("GET", "/deliveries?limit=1", None).await;
        v["deliveries"][0].clone()
    }

    fn last_sms(&self) -> String {
        self.sms
            .requests()
            .last()
            .unwrap()
            .form_get("text")
            .unwrap()
    }

    fn last_telegram(&self) -> String {
        let j = self.bot.requests().last().unwrap().json();
        j["text"].as_str().unwrap().to_string()
    }
}

fn code_in(text: &str) -> String {
    regex::Regex::new(r"\d{6}")
        .unwrap()
        .find(text)
        .unwrap()
        .as_str()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_with_language_de_reads_german_on_every_channel() {
    let w = World::start().await;
    w.user("hans", Some("de-AT"), "mail", "hans@acme.test")
        .await;
    w.user("heidi", Some("de"), "sms", "+4915112345678").await;
    w.user("horst", Some("de"), "telegram", "987654").await;

    // Email: both MIME parts German, the HTML part from the HTML template.
    let d = w.verify(json!({ "username": "hans" }), Some("fr")).await;
    assert_eq!(d["locale"], "de", "{d}");
    assert!(d.get("sms").is_none(), "no SMS length for email: {d}");
    let mails = w.smtp.mails();
    let mail = mails.last().unwrap();
    assert_eq!(mail.parsed().subject(), Some("Ihr Code für Acme ID"));
    let code = mail.code(6);
    assert_eq!(
        mail.text().replace("\r\n", "\n").trim_end(),
        format!("Hallo hans,\nIhr Code lautet {code}.\nGültig 10 Minuten.")
    );
    let html = mail.html();
    assert!(html.contains(&format!("Ihr Code: <b>{code}</b>")), "{html}");

    // SMS over HTTP: German, with the WebOTP line last.
    let d = w.verify(json!({ "username": "heidi" }), None).await;
    assert_eq!(d["locale"], "de", "{d}");
    assert_eq!(
        d["sms"],
        json!({ "encoding": "GSM-7", "segments": 1 }),
        "{d}"
    );
    let text = w.last_sms();
    let code = code_in(&text);
    assert_eq!(
        text,
        format!("Acme ID: Ihr Code lautet {code}, gültig 10 Minuten.\n\n@2fa.example.com #{code}")
    );

    // The telegram plugin gets the German text, and no WebOTP line.
    let d = w.verify(json!({ "username": "horst" }), None).await;
    assert_eq!(d["locale"], "de", "{d}");
    let text = w.last_telegram();
    assert!(text.starts_with("Acme ID: Ihr Code lautet"), "{text}");
    assert!(!text.contains('@'), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_locale_chain_picks_verify_locale_header_country_then_default() {
    let w = World::start().await;
    // A Verify `locale` wins.
    let d = w
        .verify(
            json!({ "to": "+4915112345670", "channel": "sms", "locale": "fr" }),
            Some("de"),
        )
        .await;
    assert_eq!(d["locale"], "fr", "{d}");
    assert!(
        w.last_sms().starts_with("Acme ID : votre code est"),
        "{}",
        w.last_sms()
    );

    // Accept-Language, when nothing is stored: built-in Portuguese.
    // It beats the number's country (+49).
    let d = w
        .verify(
            json!({ "to": "+4915112345671", "channel": "sms" }),
            Some("pt-BR,en;q=0.5"),
        )
        .await;
    assert_eq!(d["locale"], "pt", "{d}");
    assert!(
        w.last_sms().starts_with("O seu código de verificação é"),
        "{}",
        w.last_sms()
    );
    assert_eq!(d["sms"]["encoding"], "UCS-2", "{d}");

    // Nothing but a +81 number: Japanese.
    let d = w
        .verify(json!({ "to": "+81312345678", "channel": "sms" }), None)
        .await;
    assert_eq!(d["locale"], "ja", "{d}");
    assert_eq!(d["sms"]["encoding"], "UCS-2", "{d}");
    assert!(w.last_sms().starts_with("確認コードは"), "{}", w.last_sms());

    // A language nobody wrote: the channel's default (German).
    w.user("kim", Some("ko"), "telegram", "555111").await;
    let d = w.verify(json!({ "username": "kim" }), None).await;
    assert_eq!(d["locale"], "de", "{d}");
    assert!(
        w.last_telegram().starts_with("Acme ID: Ihr Code"),
        "{}",
        w.last_telegram()
    );

    // A user changes their own language (`updateOwnBasicInfo`; without 2FA
    // the second factor is the password's SHA-256), shown by users.info.
    let (s, v) = w
        .call(
            "POST",
            "/users.create",
            Some(json!({ "username": "lea", "password": "pw-lea-1" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = w
        .call(
            "POST",
            "/login",
            Some(json!({ "user": "lea", "password": "pw-lea-1" })),
        )
        .await;
    let (uid, tok) = (
        v["data"]["userId"].as_str().unwrap(),
        v["data"]["authToken"].as_str().unwrap(),
    );
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"pw-lea-1"));
    let r = Postern::client()
        .post(w.p.url("/t/acme/api/v1/users.updateOwnBasicInfo"))
        .header("x-user-id", uid)
        .header("x-auth-token", tok)
        .header("x-2fa-method", "password")
        .header("x-2fa-code", digest)
        .json(&json!({ "data": { "language": "fr-ch" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, v) = w.call("GET", "/users.info?username=lea", None).await;
    assert_eq!(v["user"]["language"], "fr-CH", "{v}");

    // Bad tags are refused naming the field.
    let (s, v) = w
        .call(
            "POST",
            "/users.create",
            Some(json!({ "username": "bad", "language": "not a tag" })),
        )
        .await;
    assert_eq!(
        (s, v["errorType"].as_str(), v["details"]["field"].as_str()),
        (400, Some("error-invalid-params"), Some("language"))
    );
    let (s, v) = w
        .call(
            "POST",
            "/verifications",
            Some(json!({ "to": "+4915112345672", "channel": "sms", "locale": "??" })),
        )
        .await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("locale")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_templates_are_refused_naming_the_field_and_position() {
    let w = World::start().await;
    let put = |templates: Value| {
        w.call(
            "PUT",
            "/channels/sms2",
            Some(json!({ "kind": "sms-http", "config": { "url": w.sms.url("/x") }, "templates": templates })),
        )
    };
    let (s, v) = put(json!({ "text": { "de": "Hallo\n{{ code }" } })).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["errorType"], "error-invalid-params");
    assert_eq!(v["details"]["field"], "templates.text.de");
    assert_eq!(v["details"]["line"], 2, "{v}");
    assert!(v["details"]["column"].as_u64().is_some(), "{v}");

    // A channel secret is no variable.
    let (s, v) = put(json!({ "text": { "en": "{{ code }} {{ bot_token }}" } })).await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("templates.text.en")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown variable `bot_token`"),
        "{v}"
    );

    // Over the size bound.
    let (s, v) =
        put(json!({ "text": { "en": "{% for i in range(500) %}{{ code }}{% endfor %}" } })).await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("templates.text.en")),
        "{v}"
    );

    // Not a locale.
    let (s, v) = put(json!({ "text": { "not a tag": "x" } })).await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("templates.text.not a tag")),
        "{v}"
    );
    let (s, _) = w.call("GET", "/channels/sms2", None).await;
    assert_eq!(s, 404, "nothing was saved");

    // In the file, start-up (and config check) stops naming the key.
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[[sms_gateway]]\nname = \"sms\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\n\
               templates.text = { de = \"{{ code \" }\n";
    std::fs::write(Postern::config_path(dir.path()), cfg).unwrap();
    let (rc, _, err) = run_cli(dir.path(), &["config", "check", "-c", "postern.toml"], &[]);
    assert_ne!(rc, 0);
    assert!(err.contains("sms_gateway[0].templates.text.de"), "{err}");
    assert!(err.contains("line 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn file_channels_take_templates_smtp_tags_keep_working_and_preview_renders() {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let sms = Receiver::start(vec![reply(200, "ID: 1")]).await;
    let cfg = r#"[server]
base_url = "https://2fa.example.com"
[smtp]
server = "127.0.0.1:SMTP_PORT"
sender_email = "2fa@example.com"
starttls = "off"
subject = "Code for {username}"
body = "Your code: {code} (valid {ttl}) <b>"
[[sms_gateway]]
name = "sms"
kind = "http"
url = "SMS_URL"
http_method = "POST"
options = { text = "{text}", to = "{phone}" }
templates.text = { fr = "Code : {{ code }}" }
templates.webotp = true
"#
    .replace("SMTP_PORT", &smtp.port.to_string())
    .replace("SMS_URL", &sms.url("/send"));
    let p = Postern::start(&cfg).await;

    // rport's `{code}` tags in [smtp] subject/body, both MIME parts.
    let (s, v) = p.test_send("email", "ann@example.com").await;
    assert_eq!(s, 200, "{v}");
    let mail = smtp.mails().pop().unwrap();
    assert_eq!(mail.parsed().subject(), Some("Code for postern-test"));
    let code = mail.code(6);
    assert_eq!(
        mail.text().trim_end(),
        format!("Your code: {code} (valid 10 minutes) <b>")
    );
    assert!(
        mail.html()
            .contains(&format!("Your code: {code} (valid 10 minutes) &lt;b&gt;")),
        "{}",
        mail.html()
    );

    // A French number through the file gateway: its own French template
    // and the WebOTP line.
    let (s, v) = p.test_send("sms", "+33612345678").await;
    assert_eq!(s, 200, "{v}");
    let text = sms.requests().last().unwrap().form_get("text").unwrap();
    let c = code_in(&text);
    assert_eq!(text, format!("Code : {c}\n\n@2fa.example.com #{c}"));

    // Preview: the chain's fallback (fr-CA → fr), a sample code, nothing sent.
    let sent = sms.requests().len();
    let (s, v) = p
        .post(
            "/api/v1/templates/preview",
            json!({ "channel": "sms", "locale": "fr-CA" }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["preview"]["locale"], "fr");
    assert_eq!(
        v["preview"]["text"],
        "Code : 123456\n\n@2fa.example.com #123456"
    );
    assert_eq!(
        v["preview"]["sms"],
        json!({ "encoding": "GSM-7", "segments": 1 })
    );
    assert_eq!(sms.requests().len(), sent, "a preview sends nothing");
    let (s, v) = p
        .post(
            "/api/v1/templates/preview",
            json!({ "channel": "email", "kind": "subject" }),
        )
        .await;
    assert_eq!(
        (s, v["preview"]["text"].as_str()),
        (200, Some("Code for jane.doe")),
        "{v}"
    );
    let (s, v) = p
        .post(
            "/api/v1/templates/preview",
            json!({ "channel": "email", "kind": "poem" }),
        )
        .await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("kind")),
        "{v}"
    );
    let (s, _) = p
        .post("/api/v1/templates/preview", json!({ "channel": "nope" }))
        .await;
    assert_eq!(s, 404);

    // `config check` warns about a text that needs two SMS.
    let dir = tempfile::tempdir().unwrap();
    let long = "[[sms_gateway]]\nname = \"sms\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\n\
                templates.text = { en = \"{% for i in range(30) %}{{ code }} {% endfor %}\" }\n";
    std::fs::write(Postern::config_path(dir.path()), long).unwrap();
    let (rc, out, err) = run_cli(dir.path(), &["config", "check", "-c", "postern.toml"], &[]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains(
            "warning: channel `sms`: the text needs more than one SMS (en: GSM-7, 2 segments)"
        ),
        "{out}"
    );
}
