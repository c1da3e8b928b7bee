//! Rocket.Chat wire fidelity (issue 16), against the real binary: what real
//! client libraries send and expect. `userId` wherever Rocket.Chat takes it,
//! `users.info` with one's own session, `emailOrUsername` in email
//! challenges (REST and DDP), `/login`'s bare `message`, and
//! `2fa:enable-email` with a session only.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::support::api::{req, tenant};
use crate::support::eventually;
use crate::support::server::Postern;
use crate::support::smtp::{SmtpOptions, SmtpServer};

const WAIT: Duration = Duration::from_secs(15);

async fn start() -> (Postern, SmtpServer) {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let p = Postern::start(&format!(
        "[smtp]\nserver = \"127.0.0.1:{}\"\nsender_email = \"2fa@example.com\"\nstarttls = \"off\"\n",
        smtp.port
    ))
    .await;
    (p, smtp)
}

/// Creates a user with a verified email; answers its `_id`.
async fn user(p: &Postern, prefix: &str, key: &str, name: &str) -> String {
    let body = json!({ "username": name, "email": format!("{name}@example.com"),
                       "emailVerified": true, "password": format!("pw-{name}") });
    let (s, v) = req(
        p,
        "POST",
        &format!("{prefix}/users.create"),
        key,
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["user"]["_id"].as_str().unwrap().to_string()
}

/// A request with arbitrary headers (a session, or none at all).
async fn call(
    p: &Postern,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = Postern::client().request(method.parse().unwrap(), p.url(path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn assert_invalid(s: u16, v: &Value, words: &[&str]) {
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["errorType"], "error-invalid-params", "{v}");
    let msg = v["error"].as_str().unwrap();
    for w in words {
        assert!(msg.contains(w), "`{w}` missing from {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn user_id_is_accepted_wherever_rocket_chat_takes_it() {
    let (p, _smtp) = start().await;
    let key = crate::support::server::ADMIN;
    let ann = user(&p, "/api/v1", key, "ann").await;
    let ben = user(&p, "/api/v1", key, "ben").await;

    let (s, v) = p.get(&format!("/api/v1/users.info?userId={ann}")).await;
    assert_eq!(
        (s, v["user"]["username"].as_str()),
        (200, Some("ann")),
        "{v}"
    );
    let (s, v) = p
        .get(&format!("/api/v1/users.info?userId={ann}&username=ann"))
        .await;
    assert_eq!(
        (s, v["user"]["_id"].as_str()),
        (200, Some(ann.as_str())),
        "{v}"
    );
    // Neither: a 400 naming both; both, disagreeing: 400; unknown id: 404.
    let (s, v) = p.get("/api/v1/users.info").await;
    assert_invalid(s, &v, &["userId", "username"]);
    let (s, v) = p
        .get(&format!("/api/v1/users.info?userId={ann}&username=ben"))
        .await;
    assert_invalid(s, &v, &["userId", "username", "different"]);
    let (s, v) = p.get("/api/v1/users.info?userId=usr_nobody").await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (404, Some("error-not-found")),
        "{v}"
    );

    // users.setTwoFactor by userId.
    let (s, v) = p
        .post(
            "/api/v1/users.setTwoFactor",
            json!({ "userId": ben, "method": "email" }),
        )
        .await;
    assert_eq!(
        (s, &v["user"]["twoFactor"]["enabled"]),
        (200, &json!(true)),
        "{v}"
    );
    let (s, v) = p
        .post("/api/v1/users.setTwoFactor", json!({ "method": "email" }))
        .await;
    assert_invalid(s, &v, &["userId", "username"]);
    let (s, v) = p
        .post(
            "/api/v1/users.setTwoFactor",
            json!({ "userId": ben, "username": "ann", "method": "none" }),
        )
        .await;
    assert_invalid(s, &v, &["different"]);

    // users.delete with `{userId}` only: what rocketchat-api's users_delete sends.
    for bad in [
        json!({}),
        json!({ "userId": ann, "username": "ben" }),
        json!({ "userId": 7 }),
    ] {
        let (s, v) = p.post("/api/v1/users.delete", bad.clone()).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (400, Some("error-invalid-params")),
            "{bad}: {v}"
        );
    }
    let (s, v) = p
        .post("/api/v1/users.delete", json!({ "userId": ann }))
        .await;
    assert_eq!((s, &v["success"]), (200, &json!(true)), "{v}");
    let (s, _) = p.get(&format!("/api/v1/users.info?userId={ann}")).await;
    assert_eq!(s, 404);
    let (s, _) = p.get("/api/v1/users.info?username=ben").await;
    assert_eq!(s, 200, "ben is still there");

    // The OpenAPI document names the new parameter.
    let (s, doc) = call(&p, "GET", "/openapi.json", &[], None).await;
    assert_eq!(s, 200);
    let params = &doc["paths"]["/api/v1/users.info"]["get"]["parameters"];
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"userId") && names.contains(&"username"),
        "{params}"
    );
    let text = doc.to_string();
    assert!(
        text.contains("UserRefBody"),
        "users.delete's body is documented"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn users_info_with_a_session_reads_ones_own_user_only() {
    let (p, _smtp) = start().await;
    let key = tenant(&p, "alpha").await;
    let base = "/t/alpha/api/v1";
    let ann = user(&p, base, &key, "ann").await;
    user(&p, base, &key, "ben").await;
    let login = json!({ "user": "ann", "password": "pw-ann" });
    let (s, v) = call(&p, "POST", &format!("{base}/login"), &[], Some(login)).await;
    assert_eq!(s, 200, "{v}");
    let token = v["data"]["authToken"].as_str().unwrap().to_string();
    let session = [
        ("X-User-Id", ann.as_str()),
        ("X-Auth-Token", token.as_str()),
    ];

    // One's own record, by username or userId: 200 (Rocket.Chat does).
    for q in ["username=ann".to_string(), format!("userId={ann}")] {
        let (s, v) = call(&p, "GET", &format!("{base}/users.info?{q}"), &session, None).await;
        assert_eq!(
            (s, v["user"]["_id"].as_str()),
            (200, Some(ann.as_str())),
            "{q}: {v}"
        );
    }
    // Someone else's (or no one's): 403 that does not claim "not logged in".
    for q in ["username=ben", "username=nobody", "userId=usr_nobody"] {
        let (s, v) = call(&p, "GET", &format!("{base}/users.info?{q}"), &session, None).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (403, Some("error-forbidden")),
            "{q}: {v}"
        );
        let msg = v["error"].as_str().unwrap();
        assert!(
            !msg.contains("logged in") && msg.contains("own user"),
            "{v}"
        );
    }
    // The tenant key reads anyone; no credentials, or a dead session: 401.
    let (s, v) = req(
        &p,
        "GET",
        &format!("{base}/users.info?username=ben"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        (s, v["user"]["username"].as_str()),
        (200, Some("ben")),
        "{v}"
    );
    let (s, v) = call(
        &p,
        "GET",
        &format!("{base}/users.info?username=ann"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (401, Some("error-unauthorized")),
        "{v}"
    );
    let stale = [("X-User-Id", ann.as_str()), ("X-Auth-Token", "not-a-token")];
    let (s, _) = call(
        &p,
        "GET",
        &format!("{base}/users.info?username=ann"),
        &stale,
        None,
    )
    .await;
    assert_eq!(s, 401);
}

/// Waits for the `n`-th mail and returns its code.
async fn code(smtp: &SmtpServer, n: usize) -> String {
    eventually(WAIT, "a mail with a code", || async {
        smtp.mails().get(n - 1).map(|m| m.code(6))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_email_challenges_name_the_user_and_login_sends_the_bare_reason() {
    let (p, smtp) = start().await;
    let key = crate::support::server::ADMIN;
    user(&p, "/api/v1", key, "alice").await;
    let (s, _) = p
        .post(
            "/api/v1/users.setTwoFactor",
            json!({ "username": "alice", "method": "email" }),
        )
        .await;
    assert_eq!(s, 200);
    let login = |code: Option<&str>| {
        let mut b = json!({ "user": "alice@example.com", "password": "pw-alice" });
        if let Some(c) = code {
            b["code"] = json!(c);
        }
        call(&p, "POST", "/api/v1/login", &[], Some(b))
    };

    // /login: `message` is the bare reason; the details name the user.
    let (s, v) = login(None).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(
        (v["error"].as_str(), v["message"].as_str()),
        (Some("totp-required"), Some("TOTP Required")),
        "{v}"
    );
    assert_eq!(v["details"]["emailOrUsername"], "alice", "{v}");
    code(&smtp, 1).await;
    // What @rocket.chat/api-client's resend does with it: a fresh code.
    let resend = json!({ "emailOrUsername": v["details"]["emailOrUsername"] });
    let (s, v) = call(
        &p,
        "POST",
        "/api/v1/users.2fa.sendEmailCode",
        &[],
        Some(resend),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let fresh = code(&smtp, 2).await;
    let (s, v) = login(Some("000000")).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (401, Some("TOTP Invalid")),
        "{v}"
    );
    assert_eq!(v["details"]["emailOrUsername"], "alice", "{v}");
    let (s, v) = call(
        &p,
        "POST",
        "/api/v1/login",
        &[],
        Some(json!({ "user": "alice", "password": "nope" })),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str(), v["error"].as_str()),
        (401, Some("Unauthorized"), Some("error-unauthorized")),
        "{v}"
    );

    // A protected call: the general shape keeps `[type]` in `error`, and
    // the details name the user too.
    let (s, v) = login(Some(&fresh)).await;
    assert_eq!(s, 200, "{v}");
    let (uid, tok) = (
        v["data"]["userId"].as_str().unwrap(),
        v["data"]["authToken"].as_str().unwrap(),
    );
    let auth = [("X-User-Id", uid), ("X-Auth-Token", tok)];
    let (s, v) = call(&p, "POST", "/api/v1/users.2fa.disableEmail", &auth, None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("TOTP Required [totp-required]")),
        "{v}"
    );
    assert_eq!(v["details"]["emailOrUsername"], "alice", "{v}");
}

/// A DDP call on an open connection; answers the `result` message.
async fn ddp_call<S>(ws: &mut S, id: &str, method: &str, params: Value) -> Value
where
    S: SinkExt<Message>
        + StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
    <S as futures::Sink<Message>>::Error: std::fmt::Debug,
{
    let m = json!({ "msg": "method", "id": id, "method": method, "params": params });
    ws.send(Message::text(m.to_string())).await.unwrap();
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        let Some(Ok(Message::Text(t))) = frame else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["msg"] == "result" && v["id"] == id {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ddp_enable_email_takes_a_session_only_and_challenges_name_the_user() {
    let (p, smtp) = start().await;
    user(&p, "/api/v1", crate::support::server::ADMIN, "bob").await;
    let url = p.url("/websocket").replacen("http://", "ws://", 1);
    let (mut ws, _) = connect_async(url.as_str()).await.unwrap();
    let hello = json!({ "msg": "connect", "version": "1", "support": ["1"] });
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let login = json!([{ "user": { "username": "bob" }, "password": "pw-bob" }]);
    let r = ddp_call(&mut ws, "1", "login", login.clone()).await;
    assert!(r.get("error").is_none(), "{r}");

    // No second factor asked: a session is enough (as in Rocket.Chat).
    let r = ddp_call(&mut ws, "2", "2fa:enable-email", json!([])).await;
    assert_eq!(r["result"], json!(true), "{r}");
    // Now email is the method: disabling it is challenged, naming the user.
    let r = ddp_call(&mut ws, "3", "2fa:disable-email", json!([])).await;
    assert_eq!(r["error"]["error"], "totp-required", "{r}");
    assert_eq!(r["error"]["details"]["emailOrUsername"], "bob", "{r}");
    assert_eq!(
        r["error"]["message"], "TOTP Required [totp-required]",
        "{r}"
    );
    code(&smtp, 1).await;
    // And so is a DDP login.
    let r = ddp_call(&mut ws, "4", "login", login).await;
    assert_eq!(r["error"]["details"]["emailOrUsername"], "bob", "{r}");
    assert_eq!(r["error"]["details"]["method"], "email", "{r}");
}
