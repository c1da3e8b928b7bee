//! Abuse controls against the real binary: consecutive failed checks that
//! a resend does not reset (NIST SP 800-63B-4) and lock the method, the
//! operator's unlock, the destination policy and the SMS-pumping guard.
//! Codes come from a real SMTP listener and a loopback HTTP receiver.

use std::time::Duration;

use serde_json::{Value, json};

use crate::realtime::{Ddp, assert_meteor_error, digest_login};
use crate::support::api::{req, tenant};
use crate::support::eventually;
use crate::support::pg::{self, TestDb};
use crate::support::server::{ADMIN, Postern};
use crate::support::sink::Sink;
use crate::support::smtp::{SmtpOptions, SmtpServer};

/// Limits that keep the per-minute and per-destination rate limits out of
/// the way, so only the failure count decides.
const OPEN_LIMITS: &str = "[limits]\nchecks_per_user_per_minute = 1000\nchecks_per_ip_per_minute = 1000\n\
                           logins_per_ip_per_minute = 1000\nsends_per_destination = 100\ncode_requests_per_minute = 100\n";

struct Env {
    p: Postern,
    smtp: SmtpServer,
}

/// `limits`: more `[limits]` lines.
async fn env(limits: &str) -> Env {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let p = Postern::start(&format!(
        "[smtp]\nserver = \"127.0.0.1:{}\"\nsender_email = \"2fa@example.com\"\nstarttls = \"off\"\n{OPEN_LIMITS}{limits}\n",
        smtp.port
    ))
    .await;
    Env { p, smtp }
}

const PASSWORD: &str = "pw-ivy-1";

impl Env {
    /// `ivy`, with email 2FA.
    async fn ivy(&self) {
        crate::support::api::email_2fa_user(&self.p, "ivy", PASSWORD).await;
    }

    async fn login(&self, code: Option<&str>) -> (u16, Value) {
        let mut body = json!({ "user": "ivy", "password": PASSWORD });
        if let Some(c) = code {
            body["code"] = json!(c);
        }
        let r = Postern::client()
            .post(self.p.url("/api/v1/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Asserts a login answered 401 with the 2FA error `kind`.
    async fn login_fails(&self, code: Option<&str>, kind: &str) -> Value {
        let (s, v) = self.login(code).await;
        assert_eq!((s, v["error"].as_str()), (401, Some(kind)), "{v}");
        v
    }

    async fn resend(&self) {
        let body = json!({ "emailOrUsername": "ivy" });
        let (s, v) = self.p.post("/api/v1/users.2fa.sendEmailCode", body).await;
        assert_eq!(s, 200, "{v}");
    }

    /// Waits for the `n`-th mail and returns its code.
    async fn code(&self, n: usize) -> String {
        eventually(Duration::from_secs(10), "a mail with a code", || async {
            self.smtp.mails().get(n - 1).map(|m| m.code(6))
        })
        .await
    }
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| char::from(b'0' + ((c as u8 - b'0' + 1) % 10)))
        .collect()
}

/// The value of the first sample of `name` whose labels include `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_limit_is_enforced_as_documented() {
    let p = Postern::start("").await;
    for bad in ["0", "1001", "2147483648"] {
        let (s, v) = p.get(&format!("/api/v1/audit?limit={bad}")).await;
        assert_eq!(
            (s, v["details"]["field"].as_str()),
            (400, Some("limit")),
            "{bad}: {v}"
        );
    }
    let (s, v) = p.get("/api/v1/audit?limit=1000").await;
    assert_eq!(s, 200, "{v}");
    let (_, doc) = p.get("/openapi.json").await;
    let params = &doc["paths"]["/api/v1/audit"]["get"]["parameters"];
    let limit = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(1000))
    );
}

async fn audit_actions(p: &Postern, tenant: &str) -> Vec<String> {
    let (s, v) = p.get(&format!("/t/{tenant}/api/v1/audit?limit=1000")).await;
    assert_eq!(s, 200, "{v}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_one_wrong_codes_across_five_resends_lock_the_method_and_a_right_code_is_refused() {
    // The defaults: 5 attempts per code, 20 consecutive failures per method.
    let e = env("").await;
    e.ivy().await;
    e.login_fails(None, "totp-required").await;
    // Four wrong codes per code (the per-code limit is never reached) and a
    // resend after each: before this limit, guesses went on forever.
    let per_code = [4, 4, 4, 4, 3, 2];
    let mut failures = 0;
    let mut code = String::new();
    for (i, n) in per_code.iter().enumerate() {
        if i > 0 {
            e.resend().await;
        }
        code = e.code(i + 1).await;
        for _ in 0..*n {
            failures += 1;
            let want = if failures < 20 {
                "totp-invalid"
            } else {
                "totp-max-attempts"
            };
            e.login_fails(Some(&wrong(&code)), want).await;
        }
    }
    assert_eq!(failures, 21);
    // The live, right code is refused without being looked at, in the REST shape …
    let v = e.login_fails(Some(&code), "totp-max-attempts").await;
    assert_eq!(v["message"], "TOTP Maximum Failed Attempts Reached", "{v}");
    assert_eq!(v["details"]["method"], "email", "{v}");
    // … and the DDP one; asking without a code is refused too.
    let mut ddp = Ddp::open(&e.p).await;
    let login = digest_login("ivy", PASSWORD);
    let err = ddp
        .err(
            "login",
            json!([{ "totp": { "login": login, "code": code } }]),
        )
        .await;
    let d = assert_meteor_error(
        &err,
        "totp-max-attempts",
        "TOTP Maximum Failed Attempts Reached",
    );
    assert_eq!(d["method"], "email", "{d}");
    e.login_fails(None, "totp-max-attempts").await;
    assert_eq!(e.smtp.mails().len(), 6, "a locked method sends no code");

    // The lock is in the audit trail and /metrics, once.
    let actions = audit_actions(&e.p, "default").await;
    assert_eq!(
        actions.iter().filter(|a| *a == "check.locked").count(),
        1,
        "{actions:?}"
    );
    let m = e.p.metrics().await;
    let locked = ["tenant=\"default\""];
    assert_eq!(
        sample(&m, "postern_twofa_locked", &locked),
        Some(1.0),
        "{m}"
    );
    let kind = ["tenant=\"default\"", "kind=\"user\""];
    assert_eq!(
        sample(&m, "postern_twofa_locks_total", &kind),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_unlock_lets_the_right_code_through() {
    let e = env("max_consecutive_failures = 3\n").await;
    e.ivy().await;
    e.login_fails(None, "totp-required").await;
    let code = e.code(1).await;
    for want in ["totp-invalid", "totp-invalid", "totp-max-attempts"] {
        e.login_fails(Some(&wrong(&code)), want).await;
    }
    e.login_fails(Some(&code), "totp-max-attempts").await;

    // Bad unlocks: typed 4xx; another tenant's key cannot reach ivy.
    let unlock = |body: Value| e.p.post("/api/v1/users.2fa.unlock", body);
    let (s, v) = unlock(json!({})).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-params")),
        "{v}"
    );
    let (s, v) = unlock(json!({ "username": "ivy", "method": "no such method!" })).await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("method")),
        "{v}"
    );
    let (s, v) = unlock(json!({ "username": "nobody" })).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (404, Some("error-not-found")),
        "{v}"
    );
    let acme = tenant(&e.p, "acme").await;
    let body = json!({ "username": "ivy" });
    let (s, _) = req(
        &e.p,
        "POST",
        "/t/acme/api/v1/users.2fa.unlock",
        &acme,
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = req(&e.p, "POST", "/api/v1/users.2fa.unlock", &acme, Some(body)).await;
    assert!(s == 401 || s == 403, "{s}");
    let (s, v) = unlock(json!({ "username": "ivy", "method": "totp" })).await;
    assert_eq!((s, &v["unlocked"]), (200, &json!(0)), "{v}");
    e.login_fails(Some(&code), "totp-max-attempts").await;

    let (s, v) = unlock(json!({ "username": "ivy", "method": "email" })).await;
    assert_eq!((s, &v["unlocked"]), (200, &json!(1)), "{v}");
    // The code outlived the lock (3 of its 5 attempts used): it works now.
    let (s, v) = e.login(Some(&code)).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("success")), "{v}");
    assert!(
        audit_actions(&e.p, "default")
            .await
            .contains(&"check.unlocked".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_success_resets_the_count() {
    let e = env("max_consecutive_failures = 3\n").await;
    e.ivy().await;
    e.login_fails(None, "totp-required").await;
    let code = e.code(1).await;
    for _ in 0..2 {
        e.login_fails(Some(&wrong(&code)), "totp-invalid").await;
    }
    let (s, v) = e.login(Some(&code)).await;
    assert_eq!(s, 200, "{v}");
    // Two failures before the success no longer count: two more are not a lock.
    e.login_fails(None, "totp-required").await;
    let code = e.code(2).await;
    for want in ["totp-invalid", "totp-invalid", "totp-max-attempts"] {
        e.login_fails(Some(&wrong(&code)), want).await;
    }
}

/// URL delivery to a sink, a phone-like SMS gateway to the same sink
/// (`email` = the phone), open rate limits, then `extra`.
fn sink_config(sink: &Sink, extra: &str) -> String {
    format!(
        "[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"{url}\"\n\
         [[sms_gateway]]\nname = \"sms\"\nkind = \"http\"\nurl = \"{url}\"\nhttp_method = \"POST\"\n\
         send_to_type = \"none\"\noptions = {{ email = \"{{phone}}\", token = \"{{otp}}\" }}\n\
         {OPEN_LIMITS}{extra}\n",
        url = sink.url()
    )
}

async fn start_verification(p: &Postern, to: &str, channel: &str) -> (u16, Value) {
    p.post(
        "/api/v1/verifications",
        json!({ "to": to, "channel": channel }),
    )
    .await
}

async fn check(p: &Postern, id: &str, code: &str) -> String {
    let (s, v) = p
        .post(
            "/api/v1/verifications/check",
            json!({ "id": id, "code": code }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["verification"]["status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_destination_gets_no_new_code_until_its_lock_ends() {
    let sink = Sink::start(200).await;
    let cfg = sink_config(
        &sink,
        "max_consecutive_failures = 2\nmax_check_attempts = 10\nlockout_minutes = 15\n",
    );
    let p = Postern::start(&cfg).await;
    let to = "locked@example.com";
    let (s, v) = start_verification(&p, to, "url").await;
    assert_eq!(s, 201, "{v}");
    let id = v["verification"]["id"].as_str().unwrap().to_string();
    let code = sink.code_for(to).expect("code delivered");
    assert_eq!(check(&p, &id, &wrong(&code)).await, "pending");
    assert_eq!(check(&p, &id, &wrong(&code)).await, "max_attempts_reached");
    let sent = sink.hits().len();
    let r = Postern::client()
        .post(p.url("/api/v1/verifications"))
        .bearer_auth(ADMIN)
        .json(&json!({ "to": to, "channel": "url" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((899..=900).contains(&retry), "Retry-After {retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["details"]["locked"], json!(true), "{v}");
    assert_eq!(sink.hits().len(), sent, "a locked destination got a code");
    // Another destination on the same channel is not affected.
    let (s, v) = start_verification(&p, "other@example.com", "url").await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_share_the_failure_count() {
    if !pg::available("two_hosts_share_the_failure_count") {
        return;
    }
    let sink = Sink::start(200).await;
    let cfg = sink_config(
        &sink,
        "max_consecutive_failures = 4\nmax_check_attempts = 10\n",
    );
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(
        Postern::start_on(&cfg, db.clone(), &[]),
        Postern::start_on(&cfg, db.clone(), &[]),
    );
    let to = "brute@example.com";
    let (s, v) = start_verification(&a, to, "url").await;
    assert_eq!(s, 201, "{v}");
    let id = v["verification"]["id"].as_str().unwrap().to_string();
    let code = sink.code_for(to).expect("code delivered");
    // Wrong codes alternating between the hosts: the fourth locks the
    // destination, though the code had 10 attempts.
    for (n, host) in [&a, &b, &a, &b].into_iter().enumerate() {
        let want = if n < 3 {
            "pending"
        } else {
            "max_attempts_reached"
        };
        assert_eq!(
            check(host, &id, &wrong(&code)).await,
            want,
            "wrong code #{}",
            n + 1
        );
    }
    // A new verification to the same destination, started on B, is
    // refused: no code is made or sent while the lock holds. Without
    // lockout_minutes the lock has no end, so there is no Retry-After.
    let sent = sink.hits().len();
    let (s, v) = start_verification(&b, to, "url").await;
    assert_eq!(
        (s, &v["errorType"]),
        (429, &json!("error-too-many-requests")),
        "{v}"
    );
    assert_eq!(
        v["details"],
        json!({ "locked": true, "retryAfter": null }),
        "{v}"
    );
    assert_eq!(sink.hits().len(), sent, "a locked destination got a code");
    // Unlocked through B, the destination verifies again on A.
    let body = json!({ "to": to, "channel": "url" });
    let (s, v) = b.post("/api/v1/verifications/unlock", body).await;
    assert_eq!((s, &v["unlocked"]), (200, &json!(true)), "{v}");
    let (s, v) = start_verification(&a, to, "url").await;
    assert_eq!(s, 201, "{v}");
    let id = v["verification"]["id"].as_str().unwrap().to_string();
    let fresh = eventually(Duration::from_secs(10), "the third code", || async {
        sink.code_for(to).filter(|c| *c != code)
    })
    .await;
    assert_eq!(check(&b, &id, &fresh).await, "approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_country_is_refused_before_any_code_exists() {
    let sink = Sink::start(200).await;
    let p = Postern::start(&sink_config(
        &sink,
        "[fraud]\ncountries = { DE = \"deny\" }\n",
    ))
    .await;
    let (s, v) = start_verification(&p, "+49 151 12345678", "sms").await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (403, Some("error-destination-blocked")),
        "{v}"
    );
    assert_eq!(v["details"]["country"], "DE", "{v}");
    assert_eq!(v["details"]["prefix"], "+49151", "{v}");
    // Through a user's SMS method too.
    let body = json!({ "username": "kai", "password": PASSWORD });
    assert_eq!(p.post("/api/v1/users.create", body).await.0, 200);
    let body = json!({ "username": "kai", "method": "sms", "sendTo": "+4915112345678" });
    let (s, v) = p.post("/api/v1/users.setTwoFactor", body).await;
    assert_eq!(s, 200, "{v}");
    let body = json!({ "user": "kai", "password": PASSWORD });
    let (s, v) = p.post("/api/v1/login", body).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (403, Some("error-destination-blocked")),
        "{v}"
    );
    // No code was made: nothing was delivered or queued.
    let (_, d) = p.get("/api/v1/deliveries").await;
    assert_eq!(d["total"], 0, "{d}");
    assert!(sink.hits().is_empty());
    // Another country and email are not affected.
    let (s, v) = start_verification(&p, "+447400123456", "sms").await;
    assert_eq!(s, 201, "{v}");
    assert!(sink.code_for("+447400123456").is_some());
    let m = p.metrics().await;
    let refused = ["tenant=\"default\"", "reason=\"denied\""];
    assert_eq!(
        sample(&m, "postern_fraud_refused_total", &refused),
        Some(2.0),
        "{m}"
    );
}

/// Sends verifications to `+447400 1234nn` for each `n`; their statuses.
async fn pump(p: &Postern, ns: std::ops::Range<u32>) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for n in ns {
        out.push(start_verification(p, &format!("+4474001234{n:02}"), "sms").await);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pumped_prefix_is_blocked_and_a_delete_unblocks_it() {
    let sink = Sink::start(200).await;
    let p = Postern::start(&sink_config(&sink, "[fraud]\nmin_sends = 5\n")).await;
    // Five codes nobody checks, to one prefix; the sixth is refused.
    assert!(pump(&p, 0..5).await.iter().all(|(s, _)| *s == 201));
    let (s, v) = pump(&p, 5..6).await.remove(0);
    assert_eq!(
        (s, v["errorType"].as_str()),
        (403, Some("error-destination-blocked")),
        "{v}"
    );
    assert_eq!(
        v["details"],
        json!({ "country": "GB", "prefix": "+44740", "reason": "blocked" })
    );
    assert_eq!(sink.hits().len(), 5, "no code for the refused send");
    // Another prefix still works.
    let (s, v) = start_verification(&p, "+447700900123", "sms").await;
    assert_eq!(s, 201, "{v}");

    let (s, v) = p.get("/api/v1/fraud").await;
    assert_eq!(s, 200, "{v}");
    let listed = &v["prefixes"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(listed[0]["prefix"], "+44740");
    assert_eq!(listed[0]["mode"], "blocked");
    assert_eq!(
        (&listed[0]["sends"], &listed[0]["checks"]),
        (&json!(5), &json!(0))
    );
    let blocked = ["tenant=\"default\""];
    let m = p.metrics().await;
    assert_eq!(
        sample(&m, "postern_fraud_blocked_prefixes", &blocked),
        Some(1.0),
        "{m}"
    );
    assert!(
        audit_actions(&p, "default")
            .await
            .contains(&"fraud.blocked".to_string())
    );

    let (s, v) = req(&p, "DELETE", "/api/v1/fraud/%2B44740", ADMIN, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = req(&p, "DELETE", "/api/v1/fraud/+44740", ADMIN, None).await;
    assert_eq!(s, 404, "already unblocked");
    let (s, v) = req(&p, "DELETE", "/api/v1/fraud/44740", ADMIN, None).await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("prefix")),
        "{v}"
    );
    let (s, v) = pump(&p, 6..7).await.remove(0);
    assert_eq!(s, 201, "{v}");
    let (_, v) = p.get("/api/v1/fraud").await;
    assert_eq!(v["prefixes"], json!([]));
    let m = p.metrics().await;
    assert_eq!(
        sample(&m, "postern_fraud_blocked_prefixes", &blocked),
        None,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_mode_never_blocks() {
    let sink = Sink::start(200).await;
    let fraud = "[fraud]\ndefault = \"monitor\"\nmin_sends = 3\n";
    let p = Postern::start(&sink_config(&sink, fraud)).await;
    let answers = pump(&p, 0..12).await;
    assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
    assert_eq!(sink.hits().len(), 12);
    // Reported, not blocked.
    let (_, v) = p.get("/api/v1/fraud").await;
    assert_eq!(v["prefixes"][0]["mode"], "monitor", "{v}");
    assert_eq!(v["prefixes"][0]["sends"], 3, "{v}");
    let m = p.metrics().await;
    let flagged = ["tenant=\"default\"", "mode=\"monitor\""];
    assert_eq!(
        sample(&m, "postern_fraud_flagged_total", &flagged),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "postern_fraud_blocked_prefixes", &[]),
        None,
        "{m}"
    );
}
