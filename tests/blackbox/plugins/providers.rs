//! Each example plugin against a loopback fake of its provider's API: the
//! request must be exactly what the provider documents, and the answer maps
//! onto the right outcome.

use axum::response::IntoResponse;
use base64::Engine as _;
use postern::delivery::OutcomeClass;
use serde_json::json;

use super::support::*;

const BOT_TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_sends_bot_api_send_message() {
    let fake = Fake::start(|_| {
        json(
            200,
            json!({"ok": true, "result": {"message_id": 4711, "chat": {"id": 123456789}}}),
        )
    })
    .await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "telegram",
        &[("api_base", &fake.base())],
        &[("bot_token", BOT_TOKEN)],
        &[&fake.base()],
    )
    .await;

    let o = s.send(&message("123456789")).await;

    assert_class(&o, OutcomeClass::Delivered);
    assert_eq!(o.provider_id.as_deref(), Some("4711"));
    let r = fake.only_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, format!("/bot{BOT_TOKEN}/sendMessage"));
    assert!(
        r.header("content-type").starts_with("application/json"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("host"), fake.addr.to_string());
    assert_eq!(r.json(), json!({"chat_id": 123456789, "text": TEXT}));
    // The token travels in the path only: never in the record.
    assert!(!o.detail.contains(BOT_TOKEN));
    assert!(!o.log.unwrap_or_default().contains(BOT_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_channel_username_is_a_json_string_and_bad_chat_ids_are_refused() {
    let fake = Fake::start(|_| json(200, json!({"ok": true, "result": {"message_id": 1}}))).await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "telegram",
        &[("api_base", &fake.base())],
        &[("bot_token", BOT_TOKEN)],
        &[&fake.base()],
    )
    .await;

    assert_class(
        &s.send(&message("@postern_codes")).await,
        OutcomeClass::Delivered,
    );
    assert_eq!(
        fake.only_request().json()["chat_id"],
        json!("@postern_codes")
    );

    let refused = s.validate_recipient("not a chat").await.unwrap_err();
    assert!(refused.contains("chat id"), "{refused}");
    assert!(s.validate_recipient("-1001234567890").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_posts_text_to_the_incoming_webhook() {
    let fake = Fake::start(|_| text(200, "ok")).await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "slack",
        &[("api_base", &fake.base())],
        &[],
        &[&fake.base()],
    )
    .await;
    let hook = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";

    let o = s.send(&message(hook)).await;

    assert_class(&o, OutcomeClass::Delivered);
    let r = fake.only_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, format!("/services/{hook}"));
    assert!(r.header("content-type").starts_with("application/json"));
    assert_eq!(r.json(), json!({"text": TEXT}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_executes_the_webhook_and_waits_for_the_message_id() {
    let fake =
        Fake::start(|_| json(200, json!({"id": "1234567890123456789", "content": "x"}))).await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "discord",
        &[("api_base", &fake.base())],
        &[],
        &[&fake.base()],
    )
    .await;

    let o = s.send(&message("112233445566778899/abc-DEF_123")).await;

    assert_class(&o, OutcomeClass::Delivered);
    assert_eq!(o.provider_id.as_deref(), Some("1234567890123456789"));
    let r = fake.only_request();
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.uri,
        "/api/webhooks/112233445566778899/abc-DEF_123?wait=true"
    );
    assert!(r.header("content-type").starts_with("application/json"));
    assert_eq!(
        r.json(),
        json!({"content": TEXT, "allowed_mentions": {"parse": []}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_posts_the_message_form_with_basic_auth() {
    let fake = Fake::start(|_| {
        json(
            201,
            json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}),
        )
    })
    .await;
    let rt = runtime(&test_limits());
    let sid = "AC0123456789abcdef0123456789abcdef";
    let s = sender(
        &rt,
        "twilio_sms",
        &[
            ("api_base", &fake.base()),
            ("account_sid", sid),
            ("from", "+15005550006"),
        ],
        &[("auth_token", "twilio-secret-token")],
        &[&fake.base()],
    )
    .await;

    let o = s.send(&message("+4915123456789")).await;

    assert_class(&o, OutcomeClass::Delivered);
    assert_eq!(
        o.provider_id.as_deref(),
        Some("SM0123456789abcdef0123456789abcdef")
    );
    let r = fake.only_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, format!("/2010-04-01/Accounts/{sid}/Messages.json"));
    assert_eq!(r.header("authorization"), basic(sid, "twilio-secret-token"));
    assert!(
        r.header("content-type")
            .starts_with("application/x-www-form-urlencoded")
    );
    let form = r.form();
    assert_eq!(form.get("To").map(String::as_str), Some("+4915123456789"));
    assert_eq!(form.get("From").map(String::as_str), Some("+15005550006"));
    assert_eq!(form.get("Body").map(String::as_str), Some(TEXT));
    assert_eq!(form.len(), 3, "{form:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_invalid_number_is_a_permanent_invalid_recipient() {
    let fake = Fake::start(|_| {
        json(400, json!({"code": 21211, "message": "The 'To' number +4915123456789 is not a valid phone number.", "status": 400}))
    })
    .await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "twilio_sms",
        &[
            ("api_base", &fake.base()),
            ("account_sid", "AC0123456789abcdef0123456789abcdef"),
            ("from", "+15005550006"),
        ],
        &[("auth_token", "t")],
        &[&fake.base()],
    )
    .await;

    let o = s.send(&message("+4915123456789")).await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.contains("invalid recipient"), "{}", o.detail);
    assert!(
        !o.detail.contains("+4915123456789"),
        "number leaked: {}",
        o.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipgate_initiates_an_xml_rpc_text_session_with_escaped_content() {
    let fake = Fake::start(|_| {
        (
            axum::http::StatusCode::OK,
            [("content-type", "text/xml")],
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
             <member><name>SessionID</name><value><string>sess-42</string></value></member>\
             <member><name>StatusCode</name><value><i4>200</i4></value></member>\
             </struct></value></param></params></methodResponse>",
        )
            .into_response()
    })
    .await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "sipgate",
        &[
            ("api_base", &fake.base()),
            ("username", "alice@example.com"),
        ],
        &[("password", "sipgate-pw")],
        &[&fake.base()],
    )
    .await;
    let mut m = message("+4915123456789");
    m.text = "Code <493817> & \"more\"".into();

    let o = s.send(&m).await;

    assert_class(&o, OutcomeClass::Delivered);
    assert_eq!(o.provider_id.as_deref(), Some("sess-42"));
    let r = fake.only_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/RPC2");
    assert_eq!(
        r.header("authorization"),
        basic("alice@example.com", "sipgate-pw")
    );
    assert!(r.header("content-type").starts_with("text/xml"));
    let xml = r.text();
    assert!(
        xml.contains("<methodName>samurai.SessionInitiate</methodName>"),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<name>RemoteUri</name><value><string>sip:4915123456789@sipgate.net</string></value>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<name>TOS</name><value><string>text</string></value>"),
        "{xml}"
    );
    assert!(
        xml.contains("Code &lt;493817&gt; &amp; &quot;more&quot;"),
        "{xml}"
    );
    assert!(!xml.contains("<493817>"), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_publishes_the_text_with_title_priority_tags_and_token() {
    let fake = Fake::start(|_| {
        json(
            200,
            json!({"id": "hwQ2YpKdmg", "event": "message", "topic": "alice-codes"}),
        )
    })
    .await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "ntfy",
        &[("api_base", &fake.base())],
        &[("access_token", "tk_secret")],
        &[&fake.base()],
    )
    .await;

    let o = s.send(&message("alice-codes")).await;

    assert_class(&o, OutcomeClass::Delivered);
    assert_eq!(o.provider_id.as_deref(), Some("hwQ2YpKdmg"));
    let r = fake.only_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/alice-codes");
    assert_eq!(r.text(), TEXT);
    assert_eq!(r.header("title"), "Verification code");
    assert_eq!(r.header("priority"), "high");
    assert_eq!(r.header("tags"), "key");
    assert_eq!(r.header("authorization"), "Bearer tk_secret");
    assert!(r.header("content-type").starts_with("text/plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_posts_to_the_hook_with_the_configured_username() {
    let fake = Fake::start(|_| text(200, "ok")).await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "mattermost",
        &[("api_base", &fake.base()), ("username", "postern")],
        &[],
        &[&fake.base()],
    )
    .await;

    let o = s.send(&message("xq7bnd9c3fgh8jz1ka2mwe5rty")).await;

    assert_class(&o, OutcomeClass::Delivered);
    let r = fake.only_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/hooks/xq7bnd9c3fgh8jz1ka2mwe5rty");
    assert!(r.header("content-type").starts_with("application/json"));
    assert_eq!(r.json(), json!({"text": TEXT, "username": "postern"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_4xx_is_a_permanent_rejection() {
    let fake = Fake::start(|_| text(404, "no_service")).await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "slack",
        &[("api_base", &fake.base())],
        &[],
        &[&fake.base()],
    )
    .await;

    let o = s
        .send(&message("T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"))
        .await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.contains("rejected"), "{}", o.detail);
    assert!(o.detail.contains("404"), "{}", o.detail);
    assert!(o.log.unwrap_or_default().contains("HTTP 404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_429_and_5xx_are_transient() {
    for status in [429u16, 503] {
        let fake = Fake::start(move |_| {
            json(status, json!({"ok": false, "error_code": status, "description": "Too Many Requests: retry after 5"}))
        })
        .await;
        let rt = runtime(&test_limits());
        let s = sender(
            &rt,
            "telegram",
            &[("api_base", &fake.base())],
            &[("bot_token", BOT_TOKEN)],
            &[&fake.base()],
        )
        .await;

        let o = s.send(&message("123456789")).await;

        assert_class(&o, OutcomeClass::Transient);
        assert!(o.detail.contains("unavailable"), "{status}: {}", o.detail);
        assert!(!o.detail.contains(BOT_TOKEN));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_bad_token_is_misconfigured() {
    let fake = Fake::start(|_| {
        json(
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        )
    })
    .await;
    let rt = runtime(&test_limits());
    let s = sender(
        &rt,
        "telegram",
        &[("api_base", &fake.base())],
        &[("bot_token", BOT_TOKEN)],
        &[&fake.base()],
    )
    .await;

    let o = s.send(&message("123456789")).await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.contains("misconfigured"), "{}", o.detail);
}
