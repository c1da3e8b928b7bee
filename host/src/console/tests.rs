//! The templates render with the contexts the pages give them, escape
//! what they show, and the cross-site checks refuse other origins.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::json;

use super::session::same_origin;
use super::view::render;

fn frame() -> serde_json::Value {
    json!({ "page": "overview", "operator": true, "tenant": "acme", "tenants": ["acme", "default"],
            "tq": "?tenant=acme", "csrf": "tok" })
}

fn with(extra: serde_json::Value) -> serde_json::Value {
    let mut f = frame();
    f.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    f
}

#[test]
fn every_page_renders_and_escapes_what_it_shows() {
    let hostile = "<script>alert(1)</script>";
    let delivery = json!({ "id": "dlv_1", "channel": "sms", "to": "+49…12", "status": "failed",
        "attempts": [{ "at": "t", "outcome": "permanent", "detail": hostile, "durationMs": 3 }],
        "log": hostile, "createdAt": "t", "expiresAt": "t" });
    let chart = super::chart::stacked("sms".into(), &[[1, 1, 1, 1]], ("a".into(), "b".into()));
    let pages = [
        ("sign_in.html", json!({ "csrf": "x", "error": hostile })),
        ("error.html", json!({ "status": 403, "message": hostile })),
        (
            "overview.html",
            with(
                json!({ "window": "day", "windows": ["hour"], "series": super::chart::SERIES,
            "channels": [{ "name": "sms", "chart": chart, "delivered": 1, "retried": 1, "failed": 1, "expired": 1, "rate": "50.0" }],
            "total": { "delivered": 1, "retried": 1, "failed": 1, "expired": 1, "rate": "50.0" },
            "p50": 10, "p95": 20, "queue": { "depth": 2, "oldest_due": "t", "overdue_s": 5 },
            "health": [{ "name": "sms", "kind": "url", "status": "failing", "detail": hostile }] }),
            ),
        ),
        (
            "deliveries.html",
            with(
                json!({ "deliveries": [delivery], "shown": 100, "channels": ["sms"],
            "statuses": ["failed"], "f": { "status": "failed" } }),
            ),
        ),
        ("delivery.html", with(json!({ "d": delivery }))),
        (
            "channels.html",
            with(
                json!({ "channels": [{ "name": "sms", "kind": "url", "plugin": "tg",
            "health": { "status": "ok" }, "last_error": { "at": "t", "detail": hostile } }] }),
            ),
        ),
        (
            "plugins.html",
            with(
                json!({ "plugins": [{ "name": "tg", "sha256": "ab".repeat(32), "size": 1234,
            "uploaded": "t", "counts": { "delivered": 2, "permanent": 1 }, "attempts": 3, "reasons": [] }] }),
            ),
        ),
        (
            "plugin.html",
            with(
                json!({ "p": { "name": "tg", "sha256": "ab", "size": 1, "uploaded": "t",
            "counts": { "delivered": 2 }, "reasons": [{ "outcome": "permanent", "detail": hostile, "count": 1 }] } }),
            ),
        ),
        (
            "audit.html",
            with(json!({ "entries": [{ "at": "t", "actor": "a", "action": hostile }] })),
        ),
        (
            "tenants.html",
            with(json!({ "rows": [{ "name": "acme", "created": "t", "queued": 0 }] })),
        ),
    ];
    for (name, ctx) in pages {
        let html = render(name, ctx)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"))
            .0;
        assert!(!html.contains(hostile), "{name} shows markup unescaped");
        assert!(
            !html.contains("style=") && !html.contains("<script"),
            "{name} has inline style or script"
        );
    }
}

#[test]
fn posts_from_other_origins_are_refused() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    assert!(
        same_origin(&h).is_ok(),
        "no Origin: a same-origin navigation"
    );
    h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
    assert!(same_origin(&h).is_ok());
    h.insert("origin", HeaderValue::from_static("http://127.0.0.1:9999"));
    assert!(same_origin(&h).is_err(), "another port is another origin");
    h.insert("origin", HeaderValue::from_static("null"));
    assert!(same_origin(&h).is_err());
    h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
    h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
    assert!(same_origin(&h).is_err());
    h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
    assert!(
        same_origin(&h).is_err(),
        "another port of this host is same-site, not same-origin"
    );
    h.insert("origin", HeaderValue::from_static("null"));
    h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
    assert!(
        same_origin(&h).is_ok(),
        "the browser attests its own form post, whatever Origin says"
    );
}
