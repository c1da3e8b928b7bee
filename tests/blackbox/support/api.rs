//! Calling postern's JSON API as a tenant or the operator.

use serde_json::{Value, json};

use super::server::{ADMIN, Postern};

pub const WASM: &str = "application/wasm";

/// One JSON request with a bearer key; answers the status and the JSON body
/// (`null` when there is none).
pub async fn req(
    p: &Postern,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = Postern::client()
        .request(method.parse().unwrap(), p.url(path))
        .bearer_auth(key);
    if let Some(b) = body {
        super::secrets::remember_in_json(&b);
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    super::secrets::checked_json(r).await
}

/// Creates a tenant through the operator API; answers its API key.
pub async fn tenant(p: &Postern, name: &str) -> String {
    let (s, v) = req(
        p,
        "POST",
        "/admin/v1/tenants",
        ADMIN,
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tenant"]["name"], name);
    let key = v["apiKey"].as_str().unwrap().to_string();
    super::secrets::remember(&key);
    key
}

/// `PUT /t/{tenant}/api/v1/plugins/{name}` with a raw body.
pub async fn upload(
    p: &Postern,
    tenant: &str,
    key: &str,
    name: &str,
    ctype: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let r = Postern::client()
        .put(p.url(&format!("/t/{tenant}/api/v1/plugins/{name}")))
        .bearer_auth(key)
        .header("content-type", ctype)
        .body(bytes)
        .send()
        .await
        .unwrap();
    super::secrets::checked_json(r).await
}

/// A user of the `default` tenant with a verified `<username>@example.com`,
/// a password, and email 2FA (through the admin token).
pub async fn email_2fa_user(p: &Postern, username: &str, password: &str) {
    let body = json!({ "username": username, "email": format!("{username}@example.com"),
                       "emailVerified": true, "password": password });
    let (s, v) = p.post("/api/v1/users.create", body).await;
    assert_eq!(s, 200, "{v}");
    enable_email_2fa(p, username).await;
}

/// Turns email 2FA on for a `default`-tenant user.
pub async fn enable_email_2fa(p: &Postern, username: &str) {
    let body = json!({ "username": username, "method": "email" });
    let (s, v) = p.post("/api/v1/users.setTwoFactor", body).await;
    assert_eq!(s, 200, "{v}");
}
