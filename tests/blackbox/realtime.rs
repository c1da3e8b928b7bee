//! Realtime 2FA (Rocket.Chat DDP over WebSocket) against the real binary,
//! with a real WebSocket client and codes read from a real SMTP listener.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use crate::support::eventually;
use crate::support::server::Postern;
use crate::support::smtp::{SmtpOptions, SmtpServer};

const WAIT: Duration = Duration::from_secs(15);

struct Env {
    p: Postern,
    smtp: SmtpServer,
}

async fn env() -> Env {
    env_with("").await
}

/// `extra`: more config after the `[smtp]` section.
async fn env_with(extra: &str) -> Env {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let p = Postern::start(&format!(
        "[smtp]\nserver = \"127.0.0.1:{}\"\nsender_email = \"2fa@example.com\"\nstarttls = \"off\"\n{extra}",
        smtp.port
    ))
    .await;
    Env { p, smtp }
}

impl Env {
    async fn create_user(&self, username: &str, password: &str) {
        let (s, v) = self
            .p
            .post(
                "/api/v1/users.create",
                json!({ "username": username, "email": format!("{username}@example.com"),
                        "emailVerified": true, "password": password }),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    async fn enable_email_2fa(&self, username: &str) {
        crate::support::api::enable_email_2fa(&self.p, username).await;
    }

    /// The code in the `n`-th mail (1-based).
    async fn code(&self, n: usize) -> String {
        eventually(WAIT, "a mail with a code", || async {
            self.smtp.mails().get(n - 1).map(|m| m.code(6))
        })
        .await
    }

    async fn two_factor_enabled(&self, username: &str) -> bool {
        let (s, v) = self
            .p
            .get(&format!("/api/v1/users.info?username={username}"))
            .await;
        assert_eq!(s, 200, "{v}");
        v["user"]["twoFactor"]["enabled"].as_bool().unwrap()
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| char::from(b'0' + ((c as u8 - b'0' + 1) % 10)))
        .collect()
}

fn ws_url(p: &Postern, path: &str) -> String {
    format!("{}{path}", p.base.replacen("http://", "ws://", 1))
}

/// A DDP client, as a Rocket.Chat integrator would write one.
pub(crate) struct Ddp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Collection messages (`added`, `removed`) seen while calling, in order.
    docs: Vec<Value>,
    /// Server pings answered (as every DDP client does).
    pings: usize,
}

impl Ddp {
    pub(crate) async fn open(p: &Postern) -> Self {
        Self::open_at(p, "/websocket").await
    }

    async fn open_at(p: &Postern, path: &str) -> Self {
        // Small client buffers, so 1,000 connections stay cheap for the test too.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let (ws, _) = connect_async_with_config(ws_url(p, path), Some(config), true)
            .await
            .expect("websocket handshake");
        let mut c = Self {
            ws,
            next_id: 0,
            docs: Vec::new(),
            pings: 0,
        };
        c.send(json!({ "msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"] }))
            .await;
        let m = c.recv().await;
        assert_eq!(m["msg"], "connected", "{m}");
        assert!(m["session"].as_str().is_some_and(|s| !s.is_empty()));
        c
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(v.to_string()).await;
    }

    async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next frame, whatever it is.
    async fn frame(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a readable frame")
    }

    /// The next DDP message; a server ping is answered and skipped.
    async fn recv(&mut self) -> Value {
        loop {
            let m: Value = match self.frame().await {
                Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON"),
                other => panic!("expected a DDP message, got {other:?}"),
            };
            if m["msg"] != "ping" {
                return m;
            }
            self.pong(&m).await;
        }
    }

    async fn pong(&mut self, ping: &Value) {
        assert_eq!(
            ping,
            &json!({ "msg": "ping" }),
            "Meteor's server ping has no id"
        );
        self.pings += 1;
        self.send(json!({ "msg": "pong" })).await;
    }

    /// Calls a method; returns the `result` message (after its `updated`).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send(json!({ "msg": "method", "method": method, "params": params, "id": id }))
            .await;
        let mut result = None;
        loop {
            let m = self.recv().await;
            match m["msg"].as_str() {
                Some("result") if m["id"] == id.as_str() => result = Some(m),
                // As Meteor: a method's collection changes precede its result.
                Some("added" | "removed") if result.is_none() => self.docs.push(m),
                Some("updated") if m["methods"] == json!([id]) => {
                    return result.expect("result before updated");
                }
                _ => panic!("unexpected message while waiting for {id}: {m}"),
            }
        }
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.call(method, params).await;
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    pub(crate) async fn err(&mut self, method: &str, params: Value) -> Value {
        let r = self.call(method, params).await;
        r.get("error")
            .cloned()
            .unwrap_or_else(|| panic!("{method} should fail: {r}"))
    }

    /// Reads until the server closes; returns the close code.
    async fn close_code(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(f))))) => return u16::from(f.code),
                Ok(Some(Ok(Message::Close(None)))) => panic!("close frame without a code"),
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

pub(crate) fn digest_login(user: &str, password: &str) -> Value {
    json!({ "user": { "username": user },
            "password": { "digest": sha256_hex(password), "algorithm": "sha-256" } })
}

/// Asserts the Rocket.Chat DDP error shape and returns `details`.
pub(crate) fn assert_meteor_error(e: &Value, id: &str, reason: &str) -> Value {
    assert_eq!(e["isClientSafe"], true, "{e}");
    assert_eq!(e["error"], id, "{e}");
    assert_eq!(e["reason"], reason, "{e}");
    assert_eq!(e["message"], format!("{reason} [{id}]"), "{e}");
    assert_eq!(e["errorType"], "Meteor.Error", "{e}");
    e["details"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_with_email_2fa_then_call_with_two_factor_required() {
    let e = env().await;
    e.create_user("alice", "pw-alice-1").await;
    e.enable_email_2fa("alice").await;
    let mut c = Ddp::open(&e.p).await;

    c.send(json!({ "msg": "ping", "id": "p1" })).await;
    assert_eq!(c.recv().await, json!({ "msg": "pong", "id": "p1" }));

    // Password right, no code: totp-required in Rocket.Chat's shape; a code is mailed.
    let login = digest_login("alice", "pw-alice-1");
    let err = c.err("login", json!([login])).await;
    let d = assert_meteor_error(&err, "totp-required", "TOTP Required");
    assert_eq!(d["method"], "email");
    assert_eq!(d["codeGenerated"], true);
    assert_eq!(d["codeCount"], 1);
    assert_eq!(d["codeExpires"].as_array().unwrap().len(), 1);
    assert_eq!(d["availableMethods"], json!(["email"]));
    let code = e.code(1).await;

    // A wrong code is refused; the right one logs in.
    let err = c
        .err(
            "login",
            json!([{ "totp": { "login": login, "code": wrong(&code) } }]),
        )
        .await;
    assert_meteor_error(&err, "totp-invalid", "TOTP Invalid");
    let me = c
        .ok(
            "login",
            json!([{ "totp": { "login": login, "code": code } }]),
        )
        .await;
    let user_id = me["id"].as_str().unwrap().to_string();
    let token = me["token"].as_str().unwrap().to_string();
    // As Meteor: the user's own document, and nothing secret in it.
    assert_eq!(
        c.docs,
        [
            json!({ "msg": "added", "collection": "users", "id": user_id,
                 "fields": { "username": "alice",
                             "emails": [{ "address": "alice@example.com", "verified": true }] } })
        ]
    );
    let expires = me["tokenExpires"]["$date"].as_i64().unwrap();
    assert!(expires > chrono::Utc::now().timestamp_millis(), "{me}");

    // The token is a real session: the REST API accepts it.
    let r = Postern::client()
        .get(e.p.url("/api/v1/me"))
        .header("X-User-Id", &user_id)
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "alice");

    // callWithTwoFactorRequired: no code → totp-required and a fresh code mailed.
    let wrapped = |code: Option<&str>| {
        let mut w = json!({ "ddpMethod": "2fa:disable-email", "method": "email", "params": [] });
        if let Some(c) = code {
            w["code"] = json!(c);
        }
        json!([w])
    };
    let err = c.err("callWithTwoFactorRequired", wrapped(None)).await;
    let d = assert_meteor_error(&err, "totp-required", "TOTP Required");
    assert_eq!(d["codeGenerated"], true);
    let code2 = e.code(2).await;
    assert_ne!(code, code2);
    // A wrong code: totp-invalid, and email 2FA is still on.
    let err = c
        .err("callWithTwoFactorRequired", wrapped(Some(&wrong(&code2))))
        .await;
    let d = assert_meteor_error(&err, "totp-invalid", "TOTP Invalid");
    assert_eq!(d["method"], "email");
    assert!(e.two_factor_enabled("alice").await);
    // The right code: the inner method's result, and 2FA is off.
    assert_eq!(
        c.ok("callWithTwoFactorRequired", wrapped(Some(&code2)))
            .await,
        json!(true)
    );
    assert!(!e.two_factor_enabled("alice").await);
    // The code was spent.
    let err = c
        .err("callWithTwoFactorRequired", wrapped(Some(&code2)))
        .await;
    assert_eq!(err["details"]["method"], "password", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn last_param_form_resume_and_logout() {
    let e = env().await;
    e.create_user("bob", "pw-bob-1").await;
    let mut c = Ddp::open(&e.p).await;

    // No 2FA yet: a plain password logs straight in.
    let me = c
        .ok(
            "login",
            json!([{ "user": { "email": "bob@example.com" }, "password": "pw-bob-1" }]),
        )
        .await;
    let token = me["token"].as_str().unwrap().to_string();
    let bob_doc = json!({ "msg": "added", "collection": "users", "id": me["id"],
        "fields": { "username": "bob",
                    "emails": [{ "address": "bob@example.com", "verified": true }] } });
    assert_eq!(c.docs, std::slice::from_ref(&bob_doc));
    assert_eq!(c.ok("2fa:enable-email", json!([])).await, json!(true));
    assert!(e.two_factor_enabled("bob").await);

    // The current Rocket.Chat form: the original method, with
    // {twoFactorCode, twoFactorMethod} as its last param.
    let err = c.err("2fa:disable-email", json!([])).await;
    let d = assert_meteor_error(&err, "totp-required", "TOTP Required");
    assert_eq!(d["method"], "email");
    let code = e.code(1).await;
    let with = |code: &str| json!([{ "twoFactorCode": code, "twoFactorMethod": "email" }]);
    let err = c.err("2fa:disable-email", with(&wrong(&code))).await;
    assert_meteor_error(&err, "totp-invalid", "TOTP Invalid");
    assert_eq!(c.ok("2fa:disable-email", with(&code)).await, json!(true));
    assert!(!e.two_factor_enabled("bob").await);

    // A second connection resumes the session with the token.
    let mut c2 = Ddp::open(&e.p).await;
    let resumed = c2.ok("login", json!([{ "resume": token }])).await;
    assert_eq!(resumed["id"], me["id"]);
    assert_eq!(resumed["token"], me["token"]);
    assert_eq!(c2.docs, [bob_doc]);
    // Without 2FA a protected call falls back to the password (Rocket.Chat):
    // twoFactorCode = hex SHA-256 of the password.
    let err = c2.err("2fa:disable-email", json!([])).await;
    assert_eq!(err["details"]["method"], "password", "{err}");
    let pw = json!([{ "twoFactorCode": sha256_hex("pw-bob-1"), "twoFactorMethod": "password" }]);
    assert_eq!(c2.ok("2fa:disable-email", pw).await, json!(true));

    // logout ends the session everywhere.
    let r = c2.call("logout", json!([])).await;
    assert!(r.get("error").is_none() && r.get("result").is_none(), "{r}");
    // As Meteor: the user's document is withdrawn.
    assert_eq!(
        c2.docs[1],
        json!({ "msg": "removed", "collection": "users", "id": me["id"] })
    );
    let err = c2.err("2fa:checkCodesRemaining", json!([])).await;
    assert_meteor_error(&err, "not-authorized", "Not authorized");
    let err = c.err("2fa:checkCodesRemaining", json!([])).await;
    assert_meteor_error(&err, "not-authorized", "Not authorized");
    let err = c.err("login", json!([{ "resume": token }])).await;
    assert_eq!(err["error"], 403, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn five_wrong_codes_kill_the_code_and_a_fresh_one_is_mailed() {
    let e = env().await;
    e.create_user("carol", "pw-carol-1").await;
    e.enable_email_2fa("carol").await;
    let mut c = Ddp::open(&e.p).await;
    let login = digest_login("carol", "pw-carol-1");
    let with = |code: &str| json!([{ "totp": { "login": login, "code": code } }]);

    c.err("login", json!([login])).await;
    let code = e.code(1).await;
    for _ in 0..4 {
        let err = c.err("login", with(&wrong(&code))).await;
        assert_meteor_error(&err, "totp-invalid", "TOTP Invalid");
    }
    let err = c.err("login", with(&wrong(&code))).await;
    let d = assert_meteor_error(
        &err,
        "totp-max-attempts",
        "TOTP Maximum Failed Attempts Reached",
    );
    assert_eq!(d["method"], "email");
    // The dead code no longer works; trying it mails a fresh one.
    let err = c.err("login", with(&code)).await;
    let d = assert_meteor_error(&err, "totp-invalid", "TOTP Invalid");
    assert_eq!(d["codeGenerated"], true, "{d}");
    let fresh = e.code(2).await;
    let me = c.ok("login", with(&fresh)).await;
    assert!(me["token"].as_str().is_some_and(|t| t.len() > 20));
}

fn totp_now(secret_b32: &str, offset: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .unwrap();
    let now = chrono::Utc::now().timestamp() + offset;
    postern::twofa::totp::code_at(&secret, now as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_enrolment_backup_codes_and_totp_login() {
    let e = env().await;
    e.create_user("erin", "pw-erin-1").await;
    let mut c = Ddp::open(&e.p).await;
    let login = digest_login("erin", "pw-erin-1");
    c.ok("login", json!([login])).await;

    let t = c.ok("2fa:enable", json!([])).await;
    let secret = t["secret"].as_str().unwrap().to_string();
    assert!(t["url"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(t["qr"].as_str().unwrap().starts_with("data:image/svg+xml"));
    // Rocket.Chat's enrolment methods answer invalid-totp for a wrong code.
    let err = c.err("2fa:validateTempToken", json!(["000000"])).await;
    assert_eq!(err["error"], "invalid-totp", "{err}");
    let err = c.err("2fa:checkCodesRemaining", json!([])).await;
    assert_eq!(err["error"], "invalid-totp", "TOTP is not on yet: {err}");
    let codes = c
        .ok("2fa:validateTempToken", json!([totp_now(&secret, 0)]))
        .await;
    let backups: Vec<String> = codes["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(backups.len(), 12);
    assert_eq!(
        c.ok("2fa:checkCodesRemaining", json!([])).await,
        json!({ "remaining": 12 })
    );

    // regenerateCodes is protected: TOTP sends nothing, so codeGenerated is false.
    let err = c.err("2fa:regenerateCodes", json!([])).await;
    let d = assert_meteor_error(&err, "totp-required", "TOTP Required");
    assert_eq!(d["method"], "totp");
    assert_eq!(d["codeGenerated"], false);
    // Rocket.Chat's positional userToken: a backup code unlocks it, once.
    let fresh = c
        .ok("2fa:regenerateCodes", json!([backups[0].clone()]))
        .await;
    assert_eq!(fresh["codes"].as_array().unwrap().len(), 12);
    assert_ne!(fresh["codes"][0], json!(backups[0]));
    assert!(e.smtp.mails().is_empty(), "TOTP sends nothing");

    // A new connection logs in with the authenticator's next code.
    let mut c2 = Ddp::open(&e.p).await;
    let err = c2.err("login", json!([login])).await;
    assert_eq!(err["details"]["method"], "totp");
    let totp = json!([{ "totp": { "login": login, "code": totp_now(&secret, 30) } }]);
    assert!(c2.ok("login", totp).await["token"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_mistakes_answer_errors_and_keep_the_connection() {
    let e = env().await;
    let mut c = Ddp::open(&e.p).await;

    c.send_raw("{\"msg\": \"method\", oops".into()).await;
    assert_eq!(
        c.recv().await,
        json!({ "msg": "error", "reason": "Parse error" })
    );
    c.send(json!({ "msg": "teleport", "to": "mars" })).await;
    let m = c.recv().await;
    assert_eq!(m["msg"], "error");
    assert_eq!(m["reason"], "Bad request");
    assert_eq!(m["offendingMessage"]["msg"], "teleport");
    c.send(json!({ "msg": "method", "id": 7, "method": "login" }))
        .await;
    assert_eq!(c.recv().await["reason"], "Malformed method invocation");

    let err = c.err("teleport", json!([])).await;
    assert_eq!(err["error"], 404);
    assert_eq!(err["message"], "Method 'teleport' not found [404]");
    let err = c
        .err(
            "callWithTwoFactorRequired",
            json!([{ "ddpMethod": "2fa:checkCodesRemaining", "code": "123456", "method": "email", "params": [] }]),
        )
        .await;
    assert_meteor_error(&err, "error-invalid-user", "Invalid user");
    let err = c.err("login", json!([digest_login("nobody", "x")])).await;
    assert_eq!(err["error"], 403);

    // Still open and answering.
    c.send(json!({ "msg": "ping" })).await;
    assert_eq!(c.recv().await, json!({ "msg": "pong" }));

    // Not a WebSocket request, or an unknown tenant: the HTTP error shape.
    let (s, v) = e.p.get("/websocket").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["errorType"], "error-invalid-params");
    let r = tokio_tungstenite::connect_async(ws_url(&e.p, "/t/nope/websocket")).await;
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 404)
        }
        other => panic!("expected 404, got {:?}", other.map(|(_, r)| r.status())),
    }
    // The tenant path serves DDP for an existing tenant.
    let mut t = Ddp::open_at(&e.p, "/t/default/websocket").await;
    assert_eq!(
        t.err("2fa:enable", json!([])).await["error"],
        "not-authorized"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_frame_closes_with_1009_and_the_server_stays_up() {
    let e = env().await;
    let mut c = Ddp::open(&e.p).await;
    let big = json!({ "msg": "method", "id": "1", "method": "login", "params": ["x".repeat(100 * 1024)] });
    c.send(big).await;
    assert_eq!(c.close_code().await, 1009);

    let (s, _) = e.p.get("/healthz").await;
    assert_eq!(s, 200);
    let mut c2 = Ddp::open(&e.p).await;
    c2.send(json!({ "msg": "ping", "id": "after" })).await;
    assert_eq!(c2.recv().await["id"], "after");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_then_flood_closed_with_1008() {
    let e = env().await;
    let mut c = Ddp::open(&e.p).await;
    // Rocket.Chat's per-connection default: 10 calls of a method per 10 s.
    for _ in 0..10 {
        let err = c.err("2fa:checkCodesRemaining", json!([])).await;
        assert_eq!(err["error"], "not-authorized");
    }
    let err = c.err("2fa:checkCodesRemaining", json!([])).await;
    let d = assert_meteor_error(
        &err,
        "too-many-requests",
        err["reason"].as_str().unwrap_or_default(),
    );
    assert!(
        err["reason"]
            .as_str()
            .unwrap()
            .starts_with("Error, too many requests. Please slow down.")
    );
    let wait = d["timeToReset"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 10_000, "{d}");

    // A client that keeps going is disconnected with 1008.
    for i in 0..30 {
        c.send(json!({ "msg": "method", "id": format!("f{i}"), "method": "2fa:checkCodesRemaining", "params": [] }))
            .await;
    }
    assert_eq!(c.close_code().await, 1008);

    let (s, _) = e.p.get("/healthz").await;
    assert_eq!(s, 200);
    let mut c2 = Ddp::open(&e.p).await;
    assert_eq!(
        c2.err("2fa:checkCodesRemaining", json!([])).await["error"],
        "not-authorized"
    );
}

/// Raises the soft open-files limit towards the hard one (the server,
/// started afterwards, inherits it); returns the soft limit in force.
fn raise_fd_limit(needed: u64) -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < needed {
            let mut raised = l;
            raised.rlim_cur = needed.min(l.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                l = raised;
            }
        }
    }
    l.rlim_cur
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_idle_connections_with_bounded_memory() {
    const N: usize = 1000;
    let fds = raise_fd_limit(2 * N as u64 + 200);
    assert!(
        fds >= N as u64 + 100,
        "the open-files limit ({fds}) is too low for {N} connections; raise `ulimit -n`"
    );
    // Every test connection comes from 127.0.0.1.
    let e = env_with("[realtime]\nmax_connections_per_ip = 2000\n").await;
    // Warm up: one connection and one method, so lazy start-up costs are paid.
    let mut warm = Ddp::open(&e.p).await;
    warm.err("2fa:checkCodesRemaining", json!([])).await;
    let before = rss_kib(e.p.pid());

    let conns: Vec<Ddp> = futures::stream::iter(0..N)
        .map(|_| Ddp::open(&e.p))
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(conns.len(), N);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kib(e.p.pid());
    let growth = during.saturating_sub(before);
    println!(
        "realtime RSS: {before} KiB before, {during} KiB with {N} idle connections, \
         growth {growth} KiB ({} KiB per connection)",
        growth / N as u64
    );
    assert!(growth < 200 * 1024, "RSS grew by {growth} KiB");

    // Every connection is alive and the server still serves everyone.
    let mut conns = conns;
    for (i, c) in conns.iter_mut().enumerate().step_by(97) {
        c.send(json!({ "msg": "ping", "id": i.to_string() })).await;
        assert_eq!(c.recv().await["id"], i.to_string());
    }
    let (s, _) = e.p.get("/healthz").await;
    assert_eq!(s, 200);
    assert_eq!(
        warm.err("teleport", json!([])).await["error"],
        404,
        "a method still runs"
    );
    // Open realtime connections do not hold up a graceful shutdown.
    let mut e = e;
    assert!(
        e.p.terminate(Duration::from_secs(10)),
        "SIGTERM with {N} open connections:\n{}",
        e.p.logs()
    );
    drop(conns);
}

/// Reads one sample of `/metrics`, e.g. `postern_realtime_connections`.
async fn metric(p: &Postern, sample: &str) -> f64 {
    let text = p.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_limits_cap_one_address_and_show_in_metrics() {
    let e = env_with(
        "[realtime]\nmax_connections_per_ip = 3\ncalls_per_method = 2\nmethod_window_seconds = 60\n",
    )
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Ddp::open(&e.p).await);
    }
    assert_eq!(metric(&e.p, "postern_realtime_connections").await, 3.0);

    // The fourth from the same address is turned away before the upgrade.
    let r = Postern::client()
        .get(e.p.url("/websocket"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorType"], "error-too-many-requests", "{v}");
    assert_eq!(
        metric(
            &e.p,
            "postern_realtime_refused_total{reason=\"address_limit\"}"
        )
        .await,
        1.0
    );

    // calls_per_method = 2: the third call in the window is refused.
    let c = &mut open[0];
    for _ in 0..2 {
        assert_eq!(
            c.err("2fa:checkCodesRemaining", json!([])).await["error"],
            "not-authorized"
        );
    }
    assert_eq!(
        c.err("2fa:checkCodesRemaining", json!([])).await["error"],
        "too-many-requests"
    );
    assert_eq!(
        metric(
            &e.p,
            "postern_realtime_calls_total{method=\"2fa:checkCodesRemaining\",outcome=\"not-authorized\"}"
        )
        .await,
        2.0
    );

    // A closed connection frees its slot.
    let mut gone = open.pop().unwrap();
    gone.ws.close(None).await.unwrap();
    drop(gone);
    eventually(WAIT, "the slot to be freed", || async {
        (metric(&e.p, "postern_realtime_connections").await == 2.0).then_some(())
    })
    .await;
    open.push(Ddp::open(&e.p).await);
    assert_eq!(
        metric(&e.p, "postern_realtime_closed_total{reason=\"gone\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_websocket_key_is_refused_before_the_upgrade() {
    let p = Postern::start("").await;
    for key in ["x", "dG9vIHNob3J0", ""] {
        let r = Postern::client()
            .get(p.url("/websocket"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "key {key:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errorType"], "error-invalid-params", "{v}");
    }
    // A well-formed key (the RFC's sample nonce) is upgraded.
    let mut c = Ddp::open(&p).await;
    c.send(json!({ "msg": "ping", "id": "ok" })).await;
    assert_eq!(c.recv().await["id"], "ok");
}

/// Meteor's server heartbeat with the defaults (ping after 15 s of quiet,
/// 15 s to answer): a client that only answers pings outlives the 60 s
/// idle timeout. Takes 70 s; runs alongside the other tests.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_only_answers_pings_stays_connected_for_70_seconds() {
    let e = env().await;
    let mut c = Ddp::open(&e.p).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(70);
    while let Ok(frame) = tokio::time::timeout_at(until, c.ws.next()).await {
        match frame {
            Some(Ok(Message::Text(t))) => {
                let ping: Value = serde_json::from_str(t.as_str()).unwrap();
                c.pong(&ping).await;
            }
            other => panic!("the connection should stay open, got {other:?}"),
        }
    }
    // Pings at 15, 30, 45 and 60 s.
    assert!(c.pings >= 4, "{} pings in 70 s", c.pings);
    c.send(json!({ "msg": "ping", "id": "still-there" })).await;
    assert_eq!(
        c.recv().await,
        json!({ "msg": "pong", "id": "still-there" })
    );
}

/// A client that answers nothing: pinged after 15 s of quiet, closed with
/// 1000 "heartbeat timeout" 15 s later (Meteor's server defaults).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_answers_nothing_is_closed_after_the_heartbeat_timeout() {
    let e = env().await;
    let mut c = Ddp::open(&e.p).await;
    let start = std::time::Instant::now();
    async fn next(c: &mut Ddp) -> Message {
        tokio::time::timeout(Duration::from_secs(40), c.ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a readable frame")
    }
    let ping = next(&mut c).await;
    assert_eq!(ping, Message::text(json!({ "msg": "ping" }).to_string()));
    let pinged = start.elapsed();
    assert!(
        pinged >= Duration::from_millis(14_500),
        "pinged after {pinged:?}"
    );
    match next(&mut c).await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 1000);
            assert_eq!(f.reason.as_str(), "heartbeat timeout");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    let closed = start.elapsed() - pinged;
    assert!(
        closed >= Duration::from_millis(14_500) && closed < Duration::from_secs(25),
        "closed {closed:?} after the ping"
    );
}
