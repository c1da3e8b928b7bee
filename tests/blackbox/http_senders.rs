//! Pushover, URL and privacyIDEA-style SMS gateways against real HTTP
//! receivers on loopback.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::http::{Receiver, Reply, reply};
use crate::support::server::Postern;
use crate::support::smtp::{SmtpOptions, SmtpServer};

const PUSHOVER_KEY: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

#[tokio::test(flavor = "multi_thread")]
async fn pushover_posts_the_documented_form_and_maps_status_codes() {
    let rx = Receiver::start(vec![reply(200, r#"{"status":1,"request":"req-42"}"#)]).await;
    let p = Postern::start(&format!(
        "[pushover]\napi_token = \"pushover-app-token-xyz\"\napi_url = \"{}\"\n[delivery]\nretry_base_ms = 5000\n",
        rx.url("/1/messages.json")
    ))
    .await;
    let (s, v) = p.test_send("pushover", PUSHOVER_KEY).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "delivered");
    assert_eq!(v["delivery"]["providerId"], "req-42");
    let req = &rx.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/1/messages.json");
    assert_eq!(
        req.header("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(req.form_get("token").unwrap(), "pushover-app-token-xyz");
    assert_eq!(req.form_get("user").unwrap(), PUSHOVER_KEY);
    assert_eq!(req.form_get("html").unwrap(), "1");
    assert!(req.form_get("title").is_some());
    let message = req.form_get("message").unwrap();
    assert!(
        regex::Regex::new(r"<b>\d{6}</b>")
            .unwrap()
            .is_match(&message),
        "{message}"
    );

    // An invalid user key is refused before anything is sent.
    let (s, v) = p.test_send("pushover", "not-a-key").await;
    assert_eq!(s, 400);
    assert_eq!(v["errorType"], "error-invalid-send-to");

    rx.set_script(vec![reply(
        400,
        r#"{"status":0,"errors":["user identifier is invalid"]}"#,
    )]);
    let (s, v) = p.test_send("pushover", PUSHOVER_KEY).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["delivery"]["attempts"][0]["outcome"], "permanent");
    assert!(
        v["delivery"]["attempts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("400")
    );

    rx.set_script(vec![reply(500, "oops")]);
    let (s, v) = p.test_send("pushover", PUSHOVER_KEY).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "queued");
    assert_eq!(v["delivery"]["attempts"][0]["outcome"], "transient");
    assert!(!p.logs().contains("pushover-app-token-xyz"));
    assert!(!v.to_string().contains("pushover-app-token-xyz"));
}

#[tokio::test(flavor = "multi_thread")]
async fn url_delivery_sends_rport_fields_and_a_verifiable_signature() {
    let rx = Receiver::start(vec![reply(204, "")]).await;
    let p = Postern::start(&format!(
        "[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"{}\"\ntwo_fa_send_to_type = \"email\"\ntwo_fa_url_signing_secret = \"url-signing-secret\"\n",
        rx.url("/hook")
    ))
    .await;
    let r = Postern::client()
        .post(p.url("/api/v1/channels/url/test"))
        .bearer_auth(crate::support::server::ADMIN)
        .header("user-agent", "curl/8.0")
        .json(&serde_json::json!({ "sendTo": "hank@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let req = &rx.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.form_get("email").unwrap(), "hank@example.com");
    assert!(
        regex::Regex::new(r"^\d{6}$")
            .unwrap()
            .is_match(&req.form_get("token").unwrap())
    );
    assert_eq!(req.form_get("ttl").unwrap(), "600");
    assert_eq!(req.form_get("user_agent").unwrap(), "curl/8.0");
    assert_eq!(req.form_get("remote_address").unwrap(), "127.0.0.1");
    assert_eq!(req.form_get("url").unwrap(), "https://2fa.example.com");

    // X-Postern-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>
    let sig = req.header("x-postern-signature").unwrap();
    let (t, v1) = sig.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - t.parse::<i64>().unwrap()).abs() < 60);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"url-signing-secret").unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&req.body);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);

    // The channel's email rule applies before anything is sent.
    let (s, v) = p.test_send("url", "not-an-email").await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-send-to"))
    );

    // Redirects are not followed: a permanent failure.
    rx.set_script(vec![Reply {
        status: 302,
        body: String::new(),
        delay: Duration::ZERO,
    }]);
    let (s, v) = p.test_send("url", "ivy@example.com").await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v["delivery"]["attempts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("redirect")
    );
    assert_eq!(rx.requests().len(), 2);
}

fn gateway(rx: &Receiver, body: &str) -> String {
    format!(
        "[[sms_gateway]]\nname = \"sms\"\nkind = \"http\"\nurl = \"{}\"\n{body}\n",
        rx.url("/send")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_http_get_puts_parameters_and_tagged_options_in_the_query() {
    let rx = Receiver::start(vec![reply(200, "ID: abc123")]).await;
    let p = Postern::start(&gateway(
        &rx,
        r#"http_method = "GET"
return_success = "ID"
regexp = "/^\\+//"
parameters = { api_id = "3357", user = "{otp}" }
options = { text = "Your code is {otp}", to = "{phone}" }
"#,
    ))
    .await;
    let (s, v) = p.test_send("sms", "+4917012345").await;
    assert_eq!(s, 200, "{v}");
    let req = &rx.requests()[0];
    assert_eq!(req.method, "GET");
    assert!(req.body.is_empty());
    let q: std::collections::HashMap<_, _> = req.query_pairs().into_iter().collect();
    assert_eq!(q["api_id"], "3357");
    assert_eq!(q["user"], "{otp}", "parameters are fixed, not tagged");
    assert_eq!(q["to"], "4917012345", "regexp strips the +");
    assert!(
        regex::Regex::new(r"^Your code is \d{6}$")
            .unwrap()
            .is_match(&q["text"]),
        "{}",
        q["text"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_http_post_form_with_basic_auth_and_post_json_with_headers() {
    let rx = Receiver::start(vec![reply(201, "queued")]).await;
    let p = Postern::start(&gateway(
        &rx,
        r#"http_method = "POST"
username = "gw-user"
password = "gw-password-77"
options = { Body = "{otp}", To = "{phone}", From = "postern" }
"#,
    ))
    .await;
    let (s, v) = p.test_send("sms", "4917012345").await;
    assert_eq!(s, 200, "{v}");
    let req = &rx.requests()[0];
    assert_eq!(
        req.header("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let expected = base64::engine::general_purpose::STANDARD.encode("gw-user:gw-password-77");
    assert_eq!(
        req.header("authorization").unwrap(),
        format!("Basic {expected}")
    );
    assert_eq!(req.form_get("To").unwrap(), "4917012345");
    assert_eq!(req.form_get("From").unwrap(), "postern");
    assert_eq!(req.form_get("Body").unwrap().len(), 6);
    assert!(!p.logs().contains("gw-password-77"));

    let rx = Receiver::start(vec![reply(200, r#"{"result":"ok"}"#)]).await;
    let p = Postern::start(&gateway(
        &rx,
        r#"http_method = "POST"
send_data_as_json = true
headers = { access-token = "eagle-token-1" }
parameters = { priority = 1 }
options = { to = '["{phone}"]', message = "Code: {otp}" }
"#,
    ))
    .await;
    let (s, v) = p.test_send("sms", "4917012345").await;
    assert_eq!(s, 200, "{v}");
    let req = &rx.requests()[0];
    assert_eq!(req.header("content-type").unwrap(), "application/json");
    assert_eq!(req.header("access-token").unwrap(), "eagle-token-1");
    let j = req.json();
    assert_eq!(
        j["to"],
        serde_json::json!(["4917012345"]),
        "privacyIDEA turns JSON-looking options into JSON"
    );
    assert_eq!(j["priority"], 1);
    assert!(j["message"].as_str().unwrap().starts_with("Code: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_http_return_success_and_return_fail_decide_the_outcome() {
    let rx = Receiver::start(vec![reply(200, "ERR: no credit")]).await;
    let p = Postern::start(&gateway(
        &rx,
        "return_success = \"ID:\"\nreturn_fail = \"ERR\"",
    ))
    .await;
    let (s, v) = p.test_send("sms", "4917012345").await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v["delivery"]["attempts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("return_success")
    );

    // return_success wins over return_fail.
    rx.set_script(vec![reply(200, "ID: 1 ERR: none")]);
    let (s, _) = p.test_send("sms", "4917012345").await;
    assert_eq!(s, 200);

    let rx = Receiver::start(vec![reply(200, "ERR: no credit")]).await;
    let p = Postern::start(&gateway(&rx, "return_fail = \"ERR\"")).await;
    let (s, v) = p.test_send("sms", "4917012345").await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v["delivery"]["attempts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("return_fail")
    );
    rx.set_script(vec![reply(200, "OK")]);
    let (s, _) = p.test_send("sms", "4917012345").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_http_timeout_cuts_a_hanging_gateway() {
    let rx = Receiver::start(vec![Reply {
        status: 200,
        body: "late".into(),
        delay: Duration::from_secs(20),
    }])
    .await;
    let p = Postern::start(&gateway(
        &rx,
        "timeout_seconds = 1\n[delivery]\nretry_base_ms = 60000",
    ))
    .await;
    let started = std::time::Instant::now();
    let (s, v) = p.test_send("sms", "4917012345").await;
    let took = started.elapsed();
    assert_eq!(s, 200, "{v}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let a = &v["delivery"]["attempts"][0];
    assert_eq!(a["outcome"], "transient");
    assert!(a["detail"].as_str().unwrap().contains("timed out"), "{a}");
    assert_eq!(v["delivery"]["status"], "queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_via_smtp_gateway_mails_the_tagged_address() {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let p = Postern::start(&format!(
        r#"[smtp]
server = "127.0.0.1:{}"
sender_email = "2fa@example.com"
starttls = "off"
[[sms_gateway]]
name = "mail2sms"
kind = "smtp"
mailto = "{{phone}}@sms.example.com"
subject = "to {{phone}}"
body = "code {{otp}}"
regexp = "/^00/+/"
"#,
        smtp.port
    ))
    .await;
    let (s, v) = p.test_send("mail2sms", "004917012345").await;
    assert_eq!(s, 200, "{v}");
    let mail = &smtp.mails()[0];
    assert_eq!(mail.to, vec!["+4917012345@sms.example.com".to_string()]);
    assert_eq!(mail.parsed().subject(), Some("to +4917012345"));
    assert!(
        regex::Regex::new(r"^code \d{6}")
            .unwrap()
            .is_match(mail.text().trim()),
        "{}",
        mail.text()
    );
}
