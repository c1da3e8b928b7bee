//! The `email` channel through lettre to a real SMTP server on loopback.

use std::time::Duration;

use crate::support::server::Postern;
use crate::support::smtp::{SmtpOptions, SmtpServer};
use crate::support::tls::test_ca;

fn smtp_config(port: u16, extra: &str) -> String {
    format!(
        "[smtp]\nserver = \"127.0.0.1:{port}\"\nsender_email = \"2fa@example.com\"\ntimeout_seconds = 5\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_smtp_with_auth_delivers_the_code_and_escapes_the_user_agent() {
    let smtp = SmtpServer::start(SmtpOptions {
        auth: Some(("john".into(), "s3cret-smtp-pass".into())),
        ..Default::default()
    })
    .await;
    let p = Postern::start(&smtp_config(
        smtp.port,
        "auth_username = \"john\"\nauth_password = \"s3cret-smtp-pass\"\nstarttls = \"off\"",
    ))
    .await;
    let hostile = "Mozilla <script>alert(1)</script> & \"friends\"";
    let r = Postern::client()
        .post(p.url("/api/v1/channels/email/test"))
        .bearer_auth(crate::support::server::ADMIN)
        .header("user-agent", hostile)
        .json(&serde_json::json!({ "sendTo": "alice@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let d = &body["delivery"];
    assert_eq!(d["status"], "delivered", "{body}");
    assert_eq!(d["channel"], "email");
    assert_eq!(d["to"], "al***@example.com");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(d["attempts"][0]["outcome"], "delivered");

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["alice@example.com".to_string()]);
    assert_eq!(mail.from, "2fa@example.com");
    assert_eq!(mail.auth_user.as_deref(), Some("john"));
    assert!(!mail.tls);
    let code = mail.code(6);
    assert_eq!(mail.parsed().subject(), Some("Your verification code"));
    // The code never shows in the API record.
    assert!(
        !body.to_string().contains(&code),
        "code leaked into the record: {body}"
    );
    // The user agent is one line of text in the plain part and escaped in HTML.
    let html = mail.html();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; &quot;friends&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(mail.text().contains(hostile));
    assert!(!p.logs().contains("s3cret-smtp-pass"));
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_required_and_implicit_tls_with_a_private_ca() {
    let ca = test_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();

    let starttls = SmtpServer::start(SmtpOptions {
        starttls: Some(ca.server_config.clone()),
        auth: Some(("u".into(), "tls-pass-123".into())),
        ..Default::default()
    })
    .await;
    let p = Postern::start(&smtp_config(
        starttls.port,
        &format!(
            "starttls = \"required\"\nca_file = \"{}\"\nauth_username = \"u\"\nauth_password = \"tls-pass-123\"",
            ca_file.display()
        ),
    ))
    .await;
    let (s, v) = p.test_send("email", "bob@example.com").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "delivered");
    let mails = starttls.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].tls, "mail was not sent over STARTTLS");
    assert_eq!(mails[0].auth_user.as_deref(), Some("u"));

    let implicit = SmtpServer::start(SmtpOptions {
        implicit_tls: Some(ca.server_config.clone()),
        ..Default::default()
    })
    .await;
    let p = Postern::start(&smtp_config(
        implicit.port,
        &format!("secure = true\nca_file = \"{}\"", ca_file.display()),
    ))
    .await;
    let (s, v) = p.test_send("email", "carol@example.com").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "delivered");
    assert!(implicit.mails()[0].tls);
}

#[tokio::test(flavor = "multi_thread")]
async fn opportunistic_starttls_upgrades_and_untrusted_certs_are_refused() {
    let ca = test_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let smtp = SmtpServer::start(SmtpOptions {
        starttls: Some(ca.server_config.clone()),
        ..Default::default()
    })
    .await;
    let p = Postern::start(&smtp_config(
        smtp.port,
        &format!("ca_file = \"{}\"", ca_file.display()),
    ))
    .await;
    let (s, _) = p.test_send("email", "dave@example.com").await;
    assert_eq!(s, 200);
    assert!(smtp.mails()[0].tls, "opportunistic STARTTLS was not used");

    // Without the CA the certificate is not trusted: a permanent failure.
    let p = Postern::start(&smtp_config(smtp.port, "starttls = \"required\"")).await;
    let (s, v) = p.test_send("email", "erin@example.com").await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["errorType"], "error-delivery-failed");
    assert_eq!(v["delivery"]["status"], "failed");
    assert_eq!(v["delivery"]["attempts"][0]["outcome"], "permanent");
    assert_eq!(smtp.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn required_starttls_without_server_support_fails_permanently() {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let p = Postern::start(&smtp_config(smtp.port, "starttls = \"required\"")).await;
    let (s, v) = p.test_send("email", "frank@example.com").await;
    assert_eq!(s, 502, "{v}");
    let d = &v["delivery"];
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert!(
        d["attempts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("STARTTLS"),
        "{d}"
    );
    assert!(smtp.mails().is_empty(), "mail went out in plain text");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4xx_smtp_reply_is_retried() {
    let smtp = SmtpServer::start(SmtpOptions {
        rcpt_reply: Some("451 4.3.0 mailbox busy, try later".into()),
        ..Default::default()
    })
    .await;
    let p = Postern::start(&format!(
        "{}\n[delivery]\nretry_base_ms = 50\nretry_max_ms = 100\n",
        smtp_config(smtp.port, "starttls = \"off\"")
    ))
    .await;
    let (s, v) = p.test_send("email", "gina@example.com").await;
    assert_eq!(s, 200, "{v}");
    let d = &v["delivery"];
    assert_eq!(d["status"], "queued", "{d}");
    assert_eq!(d["attempts"][0]["outcome"], "transient");
    let id = d["id"].as_str().unwrap();
    crate::support::eventually(Duration::from_secs(10), "a retry", || async {
        let d = p.delivery(id).await;
        (d["attempts"].as_array().unwrap().len() >= 2).then_some(())
    })
    .await;
}
