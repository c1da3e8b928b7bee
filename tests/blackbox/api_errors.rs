//! Bad input gets a typed 4xx in the one error shape; never a 500.

use serde_json::{Value, json};

use crate::support::server::{ADMIN, Postern};
use crate::support::smtp::{SmtpOptions, SmtpServer};

fn assert_shape(v: &Value, error_type: &str) {
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["errorType"], error_type, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .ends_with(&format!("[{error_type}]")),
        "{v}"
    );
    assert!(v["details"].is_object(), "{v}");
}

async fn raw(
    p: &Postern,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = Postern::client()
        .request(method.parse().unwrap(), p.url(path))
        .bearer_auth(ADMIN)
        .body(body);
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_typed_errors() {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let p = Postern::start(&format!(
        "[smtp]\nserver = \"127.0.0.1:{}\"\nsender_email = \"2fa@example.com\"\nstarttls = \"off\"\n",
        smtp.port
    ))
    .await;
    let path = "/api/v1/channels/email/test";

    let (s, v) = raw(
        &p,
        "POST",
        path,
        Some("application/json"),
        b"{\"sendTo\": ".to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert_shape(&v, "error-invalid-json");

    let (s, v) = raw(
        &p,
        "POST",
        path,
        Some("application/json"),
        b"{\"sendTo\": 5}".to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert_shape(&v, "error-invalid-params");
    assert_eq!(v["details"]["field"], "sendTo");

    let (s, v) = raw(&p, "POST", path, Some("application/json"), b"{}".to_vec()).await;
    assert_eq!(s, 400);
    assert_eq!(v["details"]["field"], "sendTo", "{v}");

    let (s, v) = raw(
        &p,
        "POST",
        path,
        Some("text/plain"),
        b"{\"sendTo\":\"a@b.co\"}".to_vec(),
    )
    .await;
    assert_eq!(s, 415);
    assert_shape(&v, "error-unsupported-media-type");

    let big = format!("{{\"sendTo\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let (s, v) = raw(&p, "POST", path, Some("application/json"), big.into_bytes()).await;
    assert_eq!(s, 413);
    assert_shape(&v, "error-too-large");

    let (s, v) = p.test_send("nope", "a@b.co").await;
    assert_eq!(s, 404);
    assert_shape(&v, "error-not-found");

    let (s, v) = p.test_send("email", "not an email").await;
    assert_eq!(s, 400);
    assert_shape(&v, "error-invalid-send-to");
    assert!(smtp.mails().is_empty());

    let (s, v) = p.get("/api/v1/deliveries?status=lost").await;
    assert_eq!(s, 400);
    assert_eq!(v["details"]["field"], "status");
    let (s, v) = p.get("/api/v1/deliveries?limit=0").await;
    assert_eq!(s, 400);
    assert_eq!(v["details"]["field"], "limit");

    let (s, v) = p.get("/no/such/path").await;
    assert_eq!(s, 404);
    assert_shape(&v, "error-not-found");
    let (s, v) = p.get("/t/ghost/api/v1/deliveries").await;
    assert_eq!(s, 404);
    assert_shape(&v, "error-not-found");
    let (s, v) = p.get("/t/..%2Fetc/api/v1/deliveries").await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = raw(&p, "DELETE", "/healthz", None, vec![]).await;
    assert_eq!(s, 405);
    assert_eq!(v["success"], false);

    // Query strings and path segments axum cannot parse: still the shape.
    for bad in [
        "/api/v1/audit?limit=abc",
        "/api/v1/audit?limit=-1",
        "/api/v1/users.info?username=a&username=b",
        "/api/v1/deliveries?limit=1&limit=2",
    ] {
        let (s, v) = p.get(bad).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_shape(&v, "error-invalid-params");
    }
    for method in ["GET", "DELETE"] {
        let (s, v) = raw(&p, method, "/admin/v1/tenants/%ff%fe", None, vec![]).await;
        assert_eq!(s, 404, "{method}: {v}");
        assert_shape(&v, "error-not-found");
    }
    assert!(!p.logs().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_endpoints_need_a_key() {
    let p = Postern::start("").await;
    for token in [None, Some("wrong-token")] {
        let mut req = Postern::client().get(p.url("/api/v1/deliveries"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_shape(&r.json().await.unwrap(), "error-unauthorized");
    }
    let (s, v) = p.get("/api/v1/deliveries").await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({ "success": true, "deliveries": [], "total": 0 }));
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_endpoints() {
    // Nothing listens on this port: the mail server is down at start-up.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Postern::start(&format!(
        "[smtp]\nserver = \"127.0.0.1:{dead}\"\nsender_email = \"2fa@example.com\"\ntimeout_seconds = 2\n"
    ))
    .await;
    let r = Postern::client()
        .get(p.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ready = crate::support::eventually(
        std::time::Duration::from_secs(10),
        "a health probe",
        || async {
            let r = Postern::client()
                .get(p.url("/readyz"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "a down mail server does not make postern unready"
            );
            let v: Value = r.json().await.unwrap();
            (v["channels"]["email"]["status"] == "failing").then_some(v)
        },
    )
    .await;
    assert_eq!(ready["store"]["status"], "ok");
    assert!(p.logs().contains("channel health check failed"));

    let doc: Value = Postern::client()
        .get(p.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{id}",
        "/api/v1/channels/{name}/test",
        "/t/{tenant}/api/v1/deliveries",
        "/t/{tenant}/api/v1/channels/{name}/test",
        "/api/v1/login",
        "/api/v1/users.create",
        "/api/v1/users.2fa.sendEmailCode",
        "/api/v1/users.2fa.enableTOTP",
        "/api/v1/users.2fa.confirmChannel",
        "/api/v1/verifications",
        "/api/v1/verifications/check",
        "/t/{tenant}/api/v1/verifications/{id}",
        "/api/v1/audit",
        "/api/v1/plugins/{name}",
        "/t/{tenant}/api/v1/channels/{name}",
        "/admin/v1/tenants",
        "/websocket",
        "/api/v1/templates/preview",
        "/t/{tenant}/api/v1/templates/preview",
    ] {
        assert!(paths.contains_key(path), "openapi lacks {path}");
    }
    // The "Messages and languages" section.
    let tags = doc["tags"].as_array().unwrap();
    assert!(
        tags.iter()
            .any(|t| t["name"] == "messages"
                && t["description"].as_str().unwrap().contains("BCP 47"))
    );
    let metrics = p.metrics().await;
    assert!(metrics.contains("postern_http_responses_total"));
}

/// Reads from `sock` until the server closes it; returns what it sent and
/// how long that took (`None`: still open after `limit`).
async fn until_closed(
    sock: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<(String, std::time::Duration)> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            sock.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    String::from_utf8_lossy(&got).into_owned(),
                    started.elapsed(),
                ));
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_requests_do_not_hold_a_connection() {
    use tokio::io::AsyncWriteExt;
    let p = Postern::start("").await;
    let addr = p.base.trim_start_matches("http://").to_string();
    let limit = std::time::Duration::from_secs(40);

    // Headers that never end (slowloris).
    let mut headers = tokio::net::TcpStream::connect(&addr).await.unwrap();
    headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ")
        .await
        .unwrap();
    // A body that stops half-way.
    let mut body = tokio::net::TcpStream::connect(&addr).await.unwrap();
    body.write_all(
        format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}",
            r#"{"user":"#
        )
        .as_bytes(),
    )
    .await
    .unwrap();

    let (sent, took) = until_closed(&mut headers, limit)
        .await
        .expect("a connection with unfinished headers is closed");
    println!("unfinished headers: closed after {took:?}, answer {sent:?}");
    let (sent, took) = until_closed(&mut body, limit)
        .await
        .expect("a connection with an unfinished body is closed");
    println!("unfinished body: closed after {took:?}");
    assert!(sent.starts_with("HTTP/1.1 400"), "{sent}");
    assert!(sent.contains("error-invalid-json"), "{sent}");

    // Meanwhile and afterwards the server serves everyone else.
    let (s, _) = p.get("/healthz").await;
    assert_eq!(s, 200);
}
