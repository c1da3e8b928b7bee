//! The Rocket.Chat 2FA protocol, TOTP and the Verify API against the real
//! binary, with codes read from a real SMTP listener.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::eventually;
use crate::support::http::{Receiver, reply};
use crate::support::server::{ADMIN, Postern};
use crate::support::smtp::{SmtpOptions, SmtpServer};

struct Env {
    p: Postern,
    smtp: SmtpServer,
}

async fn env(extra: &str) -> Env {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let p = Postern::start(&format!(
        "[smtp]\nserver = \"127.0.0.1:{}\"\nsender_email = \"2fa@example.com\"\nstarttls = \"off\"\n{extra}\n",
        smtp.port
    ))
    .await;
    Env { p, smtp }
}

async fn call(
    p: &Postern,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = Postern::client().request(method.parse().unwrap(), p.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), h)
}

impl Env {
    async fn create_user(&self, username: &str, email: &str, password: &str) {
        let (s, v) = self
            .p
            .post(
                "/api/v1/users.create",
                json!({ "username": username, "email": email, "emailVerified": true, "password": password, "name": username }),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    async fn set_2fa(&self, username: &str, method: &str, send_to: Option<&str>) -> Value {
        let mut body = json!({ "username": username, "method": method });
        if let Some(t) = send_to {
            body["sendTo"] = json!(t);
        }
        let (s, v) = self.p.post("/api/v1/users.setTwoFactor", body).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn login(&self, user: &str, password: &str, code: Option<&str>) -> (u16, Value) {
        let mut body = json!({ "user": user, "password": password });
        if let Some(c) = code {
            body["code"] = json!(c);
        }
        let (s, v, _) = call(&self.p, "POST", "/api/v1/login", &[], Some(body)).await;
        (s, v)
    }

    /// Waits for the `n`-th mail and returns its code.
    async fn code(&self, n: usize) -> String {
        eventually(Duration::from_secs(10), "a mail with a code", || async {
            self.smtp.mails().get(n - 1).map(|m| m.code(6))
        })
        .await
    }

    async fn session(&self, user: &str, password: &str) -> (String, String) {
        let (s, v) = self.login(user, password, None).await;
        assert_eq!(s, 200, "{v}");
        (
            v["data"]["userId"].as_str().unwrap().into(),
            v["data"]["authToken"].as_str().unwrap().into(),
        )
    }
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| char::from(b'0' + ((c as u8 - b'0' + 1) % 10)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn email_login_flow_single_use_and_code_generated_flags() {
    let e = env("").await;
    e.create_user("alice", "alice@example.com", "pw-alice-1")
        .await;
    // Without 2FA: a session straight away.
    let (s, v) = e.login("alice", "pw-alice-1", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert!(v["data"]["authToken"].as_str().unwrap().len() > 20);

    let u = e.set_2fa("alice", "email", None).await;
    assert_eq!(
        u["user"]["twoFactor"]["methods"],
        json!([{ "method": "email" }])
    );

    // No code: 401 totp-required in both shapes, and a code is mailed.
    let (s, v) = e.login("alice", "pw-alice-1", None).await;
    assert_eq!(s, 401);
    assert_eq!(v["success"], false);
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"], "totp-required");
    assert_eq!(v["errorType"], "totp-required");
    assert_eq!(v["message"], "TOTP Required");
    let d = &v["details"];
    assert_eq!(d["method"], "email");
    assert_eq!(d["codeGenerated"], true);
    assert_eq!(d["codeCount"], 1);
    assert_eq!(d["codeExpires"].as_array().unwrap().len(), 1);
    assert_eq!(d["availableMethods"], json!(["email"]));
    let code = e.code(1).await;
    assert_eq!(e.smtp.mails()[0].to, vec!["alice@example.com".to_string()]);

    // Asking again while the code is live: not re-sent.
    let (s, v) = e.login("alice", "pw-alice-1", None).await;
    assert_eq!(s, 401);
    assert_eq!(v["details"]["codeGenerated"], false);
    assert_eq!(v["details"]["codeExpires"], d["codeExpires"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(e.smtp.mails().len(), 1);

    // Wrong password never reaches 2FA.
    let (s, v) = e.login("alice", "nope", Some(&code)).await;
    assert_eq!(s, 401);
    assert_eq!(v["errorType"], "error-unauthorized");

    // The code (typed with a dash, as mailed by Rocket.Chat) logs in once.
    let dashed = format!("{}-{}", &code[..3], &code[3..]);
    let (s, v) = e.login("alice", "pw-alice-1", Some(&dashed)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["me"]["username"], "alice");
    let (s, v) = e.login("alice", "pw-alice-1", Some(&code)).await;
    assert_eq!(s, 401);
    assert_eq!(v["errorType"], "totp-invalid");
    assert_eq!(
        v["details"]["codeGenerated"], true,
        "a dead code is replaced by a fresh one"
    );

    // x-2fa headers work as well as the body.
    let code2 = e.code(2).await;
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/login",
        &[("x-2fa-code", &code2), ("x-2fa-method", "email")],
        Some(json!({ "username": "alice", "password": "pw-alice-1" })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let uid = v["data"]["userId"].as_str().unwrap().to_string();
    let tok = v["data"]["authToken"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        &e.p,
        "GET",
        "/api/v1/me",
        &[("x-user-id", &uid), ("x-auth-token", &tok)],
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["_id"], uid);
    let (s, _, _) = call(
        &e.p,
        "POST",
        "/api/v1/logout",
        &[("x-user-id", &uid), ("x-auth-token", &tok)],
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &e.p,
        "GET",
        "/api/v1/me",
        &[("x-user-id", &uid), ("x-auth-token", &tok)],
        None,
    )
    .await;
    assert_eq!(s, 401, "the session ended at logout");

    // The audit trail has sends and checks, never the code.
    let (_, a) = e.p.get("/api/v1/audit").await;
    let actions: Vec<&str> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    for want in [
        "code.sent",
        "check.approved",
        "check.failed",
        "enrol.set",
        "login",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert!(!a.to_string().contains(&code));
}

#[tokio::test(flavor = "multi_thread")]
async fn max_attempts_kills_the_code_and_resend_replaces_it() {
    let e = env("").await;
    e.create_user("bob", "bob@example.com", "pw-bob").await;
    e.set_2fa("bob", "email", None).await;
    let (_, s) = e.session_less_login("bob").await;
    assert_eq!(s, 401);
    let code = e.code(1).await;
    let bad = wrong(&code);
    for i in 1..=4 {
        let (s, v) = e.login("bob", "pw-bob", Some(&bad)).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (401, Some("totp-invalid")),
            "attempt {i}: {v}"
        );
    }
    let (s, v) = e.login("bob", "pw-bob", Some(&bad)).await;
    assert_eq!(s, 401);
    assert_eq!(v["errorType"], "totp-max-attempts", "{v}");
    assert_eq!(v["message"], "TOTP Maximum Failed Attempts Reached");
    // The right code is dead now.
    let (s, v) = e.login("bob", "pw-bob", Some(&code)).await;
    assert_eq!((s, v["errorType"].as_str()), (401, Some("totp-invalid")));

    // sendEmailCode replaces the live code.
    let before = e.smtp.mails().len();
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.sendEmailCode",
        &[],
        Some(json!({ "emailOrUsername": "bob" })),
    )
    .await;
    assert_eq!((s, v.clone()), (200, json!({ "success": true })));
    let fresh = e.code(before + 1).await;
    let older = e.smtp.mails()[before - 1].code(6);
    if older != fresh {
        let (s, _) = e.login("bob", "pw-bob", Some(&older)).await;
        assert_eq!(s, 401, "a replaced code must not work");
    }
    let (s, v) = e.login("bob", "pw-bob", Some(&fresh)).await;
    assert_eq!(s, 200, "{v}");
}

impl Env {
    async fn session_less_login(&self, user: &str) -> (Value, u16) {
        let (s, v) = self.login(user, &format!("pw-{user}"), None).await;
        (v, s)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn send_email_code_does_not_reveal_users_and_is_rate_limited() {
    let e = env("[limits]\ncode_requests_per_minute = 3\n").await;
    e.create_user("carol", "carol@example.com", "pw").await;
    e.set_2fa("carol", "email", None).await;
    for who in ["carol", "nobody", "carol@example.com", "ghost@example.com"] {
        let (s, v, _) = call(
            &e.p,
            "POST",
            "/api/v1/users.2fa.sendEmailCode",
            &[],
            Some(json!({ "emailOrUsername": who })),
        )
        .await;
        if s == 429 {
            break;
        }
        assert_eq!((s, v), (200, json!({ "success": true })), "{who}");
    }
    let (s, v, h) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.sendEmailCode",
        &[],
        Some(json!({ "emailOrUsername": "nobody" })),
    )
    .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["errorType"], "error-too-many-requests");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    eventually(Duration::from_secs(10), "carol's mails", || async {
        (e.smtp.mails().len() >= 2).then_some(())
    })
    .await;
    assert!(
        e.smtp
            .mails()
            .iter()
            .all(|m| m.to == vec!["carol@example.com".to_string()])
    );
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.sendEmailCode",
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-parameter-required"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_calls_use_the_password_method_without_2fa() {
    let e = env("").await;
    e.create_user("dave", "dave@example.com", "pw-dave").await;
    let (uid, tok) = e.session("dave", "pw-dave").await;
    let auth = [("x-user-id", uid.as_str()), ("x-auth-token", tok.as_str())];
    let body = json!({ "data": { "name": "Dave D." } });
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.updateOwnBasicInfo",
        &auth,
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["errorType"], "totp-required");
    assert_eq!(v["error"], "TOTP Required [totp-required]");
    assert_eq!(
        v["details"],
        json!({ "method": "password", "codeGenerated": false, "codeCount": 0, "codeExpires": [], "availableMethods": [] })
    );
    let bad = postern::twofa::password::digest("not-it");
    let mut h = auth.to_vec();
    h.extend([("x-2fa-code", bad.as_str()), ("x-2fa-method", "password")]);
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.updateOwnBasicInfo",
        &h,
        Some(body.clone()),
    )
    .await;
    assert_eq!((s, v["errorType"].as_str()), (400, Some("totp-invalid")));
    let good = postern::twofa::password::digest("pw-dave");
    let mut h = auth.to_vec();
    h.extend([("x-2fa-code", good.as_str()), ("x-2fa-method", "password")]);
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.updateOwnBasicInfo",
        &h,
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["name"], "Dave D.");

    // enableEmail, then disableEmail needs a code every time.
    let (s, v, _) = call(&e.p, "POST", "/api/v1/users.2fa.enableEmail", &auth, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = call(&e.p, "POST", "/api/v1/users.2fa.disableEmail", &auth, None).await;
    assert_eq!(s, 400);
    assert_eq!(v["details"]["method"], "email");
    assert_eq!(v["details"]["codeGenerated"], true);
    let code = e.code(1).await;
    let mut h = auth.to_vec();
    h.extend([("x-2fa-code", code.as_str()), ("x-2fa-method", "email")]);
    let (s, v, _) = call(&e.p, "POST", "/api/v1/users.2fa.disableEmail", &h, None).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = e.p.get("/api/v1/users.info?username=dave").await;
    assert_eq!(v["user"]["twoFactor"]["enabled"], false);
}

fn totp_now(secret_b32: &str, offset: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .unwrap();
    let now = chrono::Utc::now().timestamp() + offset;
    postern::twofa::totp::code_at(&secret, now as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_enrolment_replay_guard_and_backup_codes() {
    let e = env("").await;
    e.create_user("erin", "erin@example.com", "pw-erin").await;
    let (uid, tok) = e.session("erin", "pw-erin").await;
    let auth = [("x-user-id", uid.as_str()), ("x-auth-token", tok.as_str())];
    let (s, v, _) = call(&e.p, "POST", "/api/v1/users.2fa.enableTOTP", &auth, None).await;
    assert_eq!(s, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert_eq!(
        totp_rs::Secret::Encoded(secret.clone())
            .to_bytes()
            .unwrap()
            .len(),
        20,
        "160-bit secret"
    );
    assert!(v["url"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(
        v["qr"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );

    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.validateTempToken",
        &auth,
        Some(json!({ "code": "000000" })),
    )
    .await;
    assert_eq!((s, v["errorType"].as_str()), (400, Some("totp-invalid")));
    let code = totp_now(&secret, 0);
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.validateTempToken",
        &auth,
        Some(json!({ "code": code })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let backups: Vec<String> = v["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(backups.len(), 12);

    // The enrolment code spent its step: replaying it is refused.
    let (s, v) = e.login("erin", "pw-erin", Some(&code)).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (401, Some("totp-invalid")),
        "{v}"
    );
    let (s, v) = e.login("erin", "pw-erin", None).await;
    assert_eq!(s, 401);
    assert_eq!(v["details"]["method"], "totp");
    assert_eq!(v["details"]["codeGenerated"], false);
    assert!(e.smtp.mails().is_empty(), "TOTP sends nothing");
    // The next step (within the ±1 window) works once.
    let next = totp_now(&secret, 30);
    let (s, v) = e.login("erin", "pw-erin", Some(&next)).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = e.login("erin", "pw-erin", Some(&next)).await;
    assert_eq!(s, 401, "a step is accepted once");

    // A backup code works exactly once.
    let (s, v) = e.login("erin", "pw-erin", Some(&backups[0])).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = e.login("erin", "pw-erin", Some(&backups[0])).await;
    assert_eq!(s, 401);
    let (s, v, _) = call(
        &e.p,
        "GET",
        "/api/v1/users.2fa.checkCodesRemaining",
        &auth,
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!({ "success": true, "remaining": 11 })));

    // regenerateCodes is protected; a backup code unlocks it.
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.regenerateCodes",
        &auth,
        None,
    )
    .await;
    assert_eq!((s, v["errorType"].as_str()), (400, Some("totp-required")));
    let mut h = auth.to_vec();
    h.extend([
        ("x-2fa-code", backups[1].as_str()),
        ("x-2fa-method", "totp"),
    ]);
    let (s, v, _) = call(&e.p, "POST", "/api/v1/users.2fa.regenerateCodes", &h, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["codes"].as_array().unwrap().len(), 12);
    let (_, v, _) = call(
        &e.p,
        "GET",
        "/api/v1/users.2fa.checkCodesRemaining",
        &auth,
        None,
    )
    .await;
    assert_eq!(v["remaining"], 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn channel_enrolment_proves_the_send_to() {
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let e = env(&format!(
        "[[sms_gateway]]\nname = \"sms\"\nkind = \"http\"\nurl = \"{}\"\noptions = {{ to = \"{{phone}}\", text = \"{{text}}\" }}\nsend_to_type = \"regex\"\nsend_to_regex = '\\+\\d{{8,15}}'\n",
        rx.url("/sms")
    ))
    .await;
    e.create_user("fay", "fay@example.com", "pw-fay").await;
    let (uid, tok) = e.session("fay", "pw-fay").await;
    let auth = [("x-user-id", uid.as_str()), ("x-auth-token", tok.as_str())];
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.enableChannel",
        &auth,
        Some(json!({ "channel": "sms", "sendTo": "0170-bad" })),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-send-to")),
        "{v}"
    );
    assert!(rx.requests().is_empty());
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.enableChannel",
        &auth,
        Some(json!({ "channel": "sms", "sendTo": "+4917012345" })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["codeGenerated"], true);
    let text = rx.requests()[0]
        .query_pairs()
        .into_iter()
        .find(|(k, _)| k == "text")
        .unwrap()
        .1;
    let code = regex::Regex::new(r"\d{6}")
        .unwrap()
        .find(&text)
        .unwrap()
        .as_str()
        .to_string();
    let (s, _, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.confirmChannel",
        &auth,
        Some(json!({ "channel": "sms", "code": wrong(&code) })),
    )
    .await;
    assert_eq!(s, 400);
    let (s, v, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.2fa.confirmChannel",
        &auth,
        Some(json!({ "channel": "sms", "code": code })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["twoFactor"]["methods"][0]["method"], "sms");
    assert_eq!(v["user"]["twoFactor"]["default"], "sms");
    // Login now goes through the gateway.
    let (s, v) = e.login("fay", "pw-fay", None).await;
    assert_eq!(s, 401);
    assert_eq!(v["details"]["method"], "sms");
    assert_eq!(rx.requests().len(), 2);
    let q = rx.requests()[1].query_pairs();
    assert_eq!(q.iter().find(|(k, _)| k == "to").unwrap().1, "+4917012345");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_api_statuses() {
    let e = env("").await;
    let start = |body: Value| {
        let p = &e.p;
        async move {
            call(
                p,
                "POST",
                "/api/v1/verifications",
                &[("authorization", &format!("Bearer {ADMIN}"))],
                Some(body),
            )
            .await
        }
    };
    let (s, v, _) = start(json!({ "to": "gus@example.com", "channel": "email" })).await;
    assert_eq!(s, 201, "{v}");
    let ver = &v["verification"];
    assert_eq!(ver["status"], "pending");
    assert_eq!(ver["channel"], "email");
    assert_eq!(ver["to"], "gu***@example.com");
    let id = ver["id"].as_str().unwrap().to_string();
    let code = e.code(1).await;
    let check = |id: String, code: String| {
        let p = &e.p;
        async move {
            p.post(
                "/api/v1/verifications/check",
                json!({ "id": id, "code": code }),
            )
            .await
        }
    };
    let (s, v) = check(id.clone(), wrong(&code)).await;
    assert_eq!(
        (s, v["verification"]["status"].as_str()),
        (200, Some("pending"))
    );
    let (s, v) = check(id.clone(), code.clone()).await;
    assert_eq!(
        (s, v["verification"]["status"].as_str()),
        (200, Some("approved")),
        "{v}"
    );
    let (s, v) = check(id.clone(), code.clone()).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (404, Some("error-not-found")),
        "no longer pending"
    );
    let (s, v) = e.p.get(&format!("/api/v1/verifications/{id}")).await;
    assert_eq!(
        (s, v["verification"]["status"].as_str()),
        (200, Some("approved"))
    );

    // Five wrong codes: max_attempts_reached.
    let (_, v, _) = start(json!({ "to": "hal@example.com", "channel": "email" })).await;
    let id2 = v["verification"]["id"].as_str().unwrap().to_string();
    let code2 = e.code(2).await;
    let mut last = Value::Null;
    for _ in 0..5 {
        last = check(id2.clone(), wrong(&code2)).await.1;
    }
    assert_eq!(
        last["verification"]["status"], "max_attempts_reached",
        "{last}"
    );

    // Canceled, and by username through the user's method.
    let (_, v, _) = start(json!({ "to": "ida@example.com", "channel": "email" })).await;
    let id3 = v["verification"]["id"].as_str().unwrap().to_string();
    let (s, v) =
        e.p.post(&format!("/api/v1/verifications/{id3}/cancel"), json!({}))
            .await;
    assert_eq!(
        (s, v["verification"]["status"].as_str()),
        (200, Some("canceled")),
        "{v}"
    );
    e.create_user("ida", "ida@example.com", "pw").await;
    let (s, v, _) = start(json!({ "username": "ida" })).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-params")),
        "no method yet: {v}"
    );
    e.set_2fa("ida", "email", None).await;
    let (s, v, _) = start(json!({ "username": "ida" })).await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = start(json!({ "to": "not-an-email", "channel": "email" })).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-send-to"))
    );
    let (s, _, _) = call(
        &e.p,
        "POST",
        "/api/v1/verifications",
        &[],
        Some(json!({ "to": "x@example.com", "channel": "email" })),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_with_retry_after() {
    let e = env("[limits]\nsends_per_destination = 2\nchecks_per_user_per_minute = 3\nlogins_per_ip_per_minute = 12\n").await;
    e.create_user("ivan", "ivan@example.com", "pw-ivan").await;
    e.set_2fa("ivan", "email", None).await;
    // Sends per destination: two codes, then 429.
    for _ in 0..2 {
        let (s, v, _) = call(
            &e.p,
            "POST",
            "/api/v1/verifications",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            Some(json!({ "to": "ivan@example.com", "channel": "email" })),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v, h) = call(
        &e.p,
        "POST",
        "/api/v1/verifications",
        &[("authorization", &format!("Bearer {ADMIN}"))],
        Some(json!({ "to": "ivan@example.com", "channel": "email" })),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (429, Some("error-too-many-requests")),
        "{v}"
    );
    assert!(h.contains_key("retry-after"));

    // Checks per user: the 4th check within a minute is refused.
    e.create_user("jane", "jane@example.com", "pw-jane").await;
    e.set_2fa("jane", "email", None).await;
    let (s, v) = e.login("jane", "pw-jane", None).await;
    assert_eq!(s, 401, "{v}");
    let code = e.code(3).await;
    for _ in 0..3 {
        let (s, v) = e.login("jane", "pw-jane", Some(&wrong(&code))).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (401, Some("totp-invalid")),
            "{v}"
        );
    }
    let (s, v, h) = call(
        &e.p,
        "POST",
        "/api/v1/login",
        &[],
        Some(json!({ "user": "jane", "password": "pw-jane", "code": code })),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (429, Some("error-too-many-requests")),
        "{v}"
    );
    assert!(h.contains_key("retry-after"));

    // Logins per IP.
    let mut status = 0;
    for _ in 0..12 {
        status = e.login("nobody", "x", None).await.0;
        if status == 429 {
            break;
        }
    }
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_submitted_twice_at_once_is_accepted_once() {
    let e = env("[limits]\nchecks_per_user_per_minute = 100\n").await;
    e.create_user("judy", "judy@example.com", "pw-judy").await;
    e.set_2fa("judy", "email", None).await;
    let (s, _) = e.login("judy", "pw-judy", None).await;
    assert_eq!(s, 401);
    let code = e.code(1).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = e.p.url("/api/v1/login");
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            Postern::client()
                .post(url)
                .json(&json!({ "user": "judy", "password": "pw-judy", "code": code }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one concurrent submit may win");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_api_validates_and_scopes() {
    let e = env("").await;
    e.create_user("kim", "kim@example.com", "pw").await;
    let (s, v) =
        e.p.post("/api/v1/users.create", json!({ "username": "kim" }))
            .await;
    assert_eq!((s, v["errorType"].as_str()), (409, Some("error-conflict")));
    let (s, v) =
        e.p.post(
            "/api/v1/users.create",
            json!({ "username": "x", "email": "bad" }),
        )
        .await;
    assert_eq!((s, v["details"]["field"].as_str()), (400, Some("email")));
    let (s, v) =
        e.p.post("/api/v1/users.create", json!({ "username": "a b" }))
            .await;
    assert_eq!((s, v["details"]["field"].as_str()), (400, Some("username")));
    let (s, v) =
        e.p.post(
            "/api/v1/users.setTwoFactor",
            json!({ "username": "kim", "method": "telepathy" }),
        )
        .await;
    assert_eq!((s, v["details"]["field"].as_str()), (400, Some("method")));
    let (s, v) =
        e.p.post(
            "/api/v1/users.setTwoFactor",
            json!({ "username": "kim", "method": "email", "sendTo": "nope" }),
        )
        .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-send-to"))
    );
    let (s, v) = e.p.get("/api/v1/users.info?username=kim").await;
    assert_eq!(s, 200);
    let u = &v["user"];
    assert_eq!(u["username"], "kim");
    assert_eq!(
        u["emails"],
        json!([{ "address": "kim@example.com", "verified": true }])
    );
    assert!(u.get("password").is_none() && !v.to_string().contains("argon2"));
    let (s, _) = e.p.get("/api/v1/users.info?username=nobody").await;
    assert_eq!(s, 404);
    let (s, _) =
        e.p.post("/api/v1/users.delete", json!({ "username": "kim" }))
            .await;
    assert_eq!(s, 200);
    let (s, _) = e.p.get("/api/v1/users.info?username=kim").await;
    assert_eq!(s, 404);
    let (s, _, _) = call(
        &e.p,
        "POST",
        "/api/v1/users.create",
        &[],
        Some(json!({ "username": "z" })),
    )
    .await;
    assert_eq!(s, 401, "users.create needs the tenant key");
}
