//! The console over plain HTTP: cookie flags, the CSP, CSRF tokens, the
//! sign-in rate limit; and the monitoring examples: `promtool check rules`
//! on the alert rules, every metric the Grafana dashboard and the rules
//! query present in a running server's `/metrics`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use regex::Regex;
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::console::{CONFIG, acme};
use crate::support::api::req;
use crate::support::http::{Receiver, reply};
use crate::support::server::{ADMIN, Postern};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn hidden_csrf(html: &str) -> String {
    let re = Regex::new(r#"name="csrf" value="([0-9a-f]+)""#).unwrap();
    re.captures(html).expect("a CSRF field")[1].to_string()
}

/// The sign-in form, then the post: answers the response of the post.
async fn sign_in(p: &Postern, key: &str) -> reqwest::Response {
    let c = client();
    let form = c.get(p.url("/console/sign-in")).send().await.unwrap();
    let pre = cookies(form.headers())[0]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = hidden_csrf(&form.text().await.unwrap());
    c.post(p.url("/console/sign-in"))
        .header(COOKIE, pre)
        .form(&[("key", key), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
}

/// A signed-in session's cookie pair and its CSRF token.
async fn session(p: &Postern, key: &str) -> (String, String) {
    let r = sign_in(p, key).await;
    assert_eq!(r.status(), 303);
    let session = cookies(r.headers())
        .into_iter()
        .find(|c| c.starts_with("postern_console="))
        .unwrap();
    let pair = session.split(';').next().unwrap().to_string();
    let page = client()
        .get(p.url("/console/channels"))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    (pair, hidden_csrf(&page.text().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_strict_cookies_and_forms_need_their_token() {
    let p = Postern::start("[server]\nbase_url = \"https://2fa.example.com\"\n[limits]\nlogins_per_ip_per_minute = 3\n").await;
    let r = client().get(p.url("/console")).send().await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/console/sign-in")
    );
    let r = sign_in(&p, ADMIN).await;
    let set = cookies(r.headers()).join("\n");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        !set.contains(ADMIN),
        "the cookie is a session token, not the key"
    );
    let pair = set
        .lines()
        .find(|c| c.starts_with("postern_console="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    // A post without the form's token, or with a wrong one, changes nothing.
    for body in [vec![], vec![("csrf", "0000")]] {
        let r = client()
            .post(p.url("/console/sign-out"))
            .header(COOKIE, &pair)
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), if body.is_empty() { 400 } else { 403 });
    }
    let r = client()
        .get(p.url("/console/tenants"))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "still signed in");

    // Wrong keys are refused, then rate limited like logins.
    let statuses: Vec<u16> = futures_statuses(&p, 3).await;
    assert!(statuses.contains(&401), "{statuses:?}");
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
}

async fn futures_statuses(p: &Postern, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sign_in(p, "ptk_not-a-key").await.status().as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_session_cannot_reach_another_tenant() {
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start(CONFIG).await;
    let (key, delivered, _) = acme(&p, &rx).await;
    let other = crate::support::api::tenant(&p, "globex").await;
    let (pair, csrf) = session(&p, &other).await;
    let get = |path: String| {
        let pair = pair.clone();
        let url = p.url(&path);
        async move { client().get(url).header(COOKIE, pair).send().await.unwrap() }
    };
    assert_eq!(
        get(format!("/console/deliveries/{delivered}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        get("/console/deliveries?tenant=acme".into()).await.status(),
        403
    );
    assert_eq!(get("/console/plugins/misbehave".into()).await.status(), 404);
    let page = get("/console/deliveries".into())
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains(&delivered) && !page.contains("hook"));
    // Its own session's token does not send through acme's channel.
    let r = client()
        .post(p.url("/console/channels/hook/test?tenant=acme"))
        .header(COOKIE, &pair)
        .form(&[("csrf", csrf.as_str()), ("send_to", "x@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, v) = req(&p, "GET", "/t/acme/api/v1/deliveries", &key, None).await;
    assert_eq!(v["total"], 2);
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

#[test]
fn the_alert_rules_pass_promtool() {
    let file = repo("examples/prometheus/alerts.yml");
    let out = match std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            assert!(
                std::env::var("POSTERN_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "promtool missing in CI"
            );
            eprintln!("SKIPPED: promtool not installed (apt-get install -y prometheus)");
            return;
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Every `postern_…` name in the dashboard's queries and the alert rules.
fn queried_metrics() -> BTreeSet<String> {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("examples/grafana/postern.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    exprs.extend(
        dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["definition"].as_str().map(str::to_string)),
    );
    exprs.push(std::fs::read_to_string(repo("examples/prometheus/alerts.yml")).unwrap());
    let re = Regex::new(r"\bpostern_[a-z0-9_]+").unwrap();
    exprs
        .iter()
        .flat_map(|e| {
            re.find_iter(e)
                .map(|m| m.as_str().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_queries_is_served() {
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start(&format!("{CONFIG}[limits]\nlogins_per_ip_per_minute = 1\n")).await;
    acme(&p, &rx).await;
    // A 429: the second login from this address in the minute.
    for _ in 0..2 {
        p.post(
            "/api/v1/login",
            json!({ "user": "nobody", "password": "x" }),
        )
        .await;
    }
    let served = p.metrics().await;
    let names: BTreeSet<&str> = served
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let wanted = queried_metrics();
    assert!(wanted.len() >= 10, "{wanted:?}");
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|m| !names.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not served: {missing:?}\n{served}"
    );
    assert!(
        served.contains(
            "postern_plugin_failures_total{channel=\"flaky\",reason=\"trap\",tenant=\"acme\"} 1"
        ),
        "{served}"
    );
}
