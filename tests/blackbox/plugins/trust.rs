//! Plugin trust, end to end: keys and signatures made by the real CLI,
//! uploads to the real server refused unsigned, by an untrusted key, or
//! with a byte changed after signing; a tenant's own keys count for that
//! tenant only.

use std::path::Path;

use serde_json::{Value, json};

use super::support::wasm;
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::secrets::checked_json;
use crate::support::server::{Postern, run_cli};

/// `postern plugin ARGS…` in `dir`; (exit code, stdout + stderr).
fn cli(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["plugin"];
    all.extend_from_slice(args);
    let (code, out, err) = run_cli(dir, &all, &[]);
    (code, format!("{out}{err}"))
}

/// `postern plugin keygen --out NAME` in `dir`; answers the public key text.
fn keygen(dir: &Path, name: &str) -> String {
    let (code, out) = cli(dir, &["keygen", "--out", name]);
    assert_eq!(code, 0, "{out}");
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
    public.trim().to_string()
}

/// `postern plugin sign FILE --key NAME.key`; answers the signature text.
fn sign(dir: &Path, file: &str, key: &str) -> String {
    let (code, out) = cli(dir, &["sign", file, "--key", &format!("{key}.key")]);
    assert_eq!(code, 0, "{out}");
    std::fs::read_to_string(dir.join(format!("{file}.sig")))
        .unwrap()
        .trim()
        .to_string()
}

async fn signed_upload(
    p: &Postern,
    tenant: &str,
    key: &str,
    name: &str,
    bytes: Vec<u8>,
    signature: &str,
) -> (u16, Value) {
    let r = Postern::client()
        .put(p.url(&format!("/t/{tenant}/api/v1/plugins/{name}")))
        .bearer_auth(key)
        .header("content-type", WASM)
        .header("x-postern-plugin-signature", signature)
        .body(bytes)
        .send()
        .await
        .unwrap();
    checked_json(r).await
}

fn assert_refused(got: (u16, Value), reason: &str) {
    let (s, v) = got;
    assert_eq!(s, 400, "{reason}: {v}");
    assert_eq!(v["errorType"], "error-invalid-plugin", "{v}");
    assert_eq!(v["details"]["reason"], reason, "{v}");
}

#[test]
fn cli_keygen_sign_verify_and_a_tampered_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let public = keygen(d, "author");
    assert!(public.starts_with("ed25519:"), "{public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("author.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (code, out) = cli(d, &["keygen", "--out", "author"]);
    assert_ne!(code, 0, "keygen must not overwrite: {out}");

    std::fs::write(d.join("noop.wasm"), wasm("noop")).unwrap();
    sign(d, "noop.wasm", "author");
    let (code, out) = cli(d, &["verify", "noop.wasm", "--key", "author.pub"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signed by trusted key"), "{out}");

    let other = keygen(d, "stranger");
    let (code, out) = cli(d, &["verify", "noop.wasm", "--key", &other]);
    assert_eq!((code, out.contains("untrusted-key")), (1, true), "{out}");

    let mut bytes = wasm("noop");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(d.join("noop.wasm"), bytes).unwrap();
    let (code, out) = cli(d, &["verify", "noop.wasm", "--key", &public]);
    assert_eq!((code, out.contains("bad-signature")), (1, true), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn required_signatures_and_tenant_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let operator = keygen(d, "operator");
    let acme_pub = keygen(d, "acme");
    std::fs::write(d.join("noop.wasm"), wasm("noop")).unwrap();
    let by_operator = sign(d, "noop.wasm", "operator");
    let by_acme = sign(d, "noop.wasm", "acme");

    let p = Postern::start(&format!(
        "[plugins]\nrequire_signature = true\ntrusted_keys = [\"{operator}\"]\n"
    ))
    .await;
    let acme = tenant(&p, "acme").await;
    let beta = tenant(&p, "beta").await;

    assert_refused(
        upload(&p, "acme", &acme, "noop", WASM, wasm("noop")).await,
        "unsigned",
    );
    assert_refused(
        signed_upload(&p, "acme", &acme, "noop", wasm("noop"), &by_acme).await,
        "untrusted-key",
    );
    assert_refused(
        signed_upload(&p, "acme", &acme, "noop", wasm("noop"), "ed25519:nonsense").await,
        "malformed-signature",
    );

    // acme trusts its own key; beta does not.
    let path = "/t/acme/api/v1/plugin-keys/release";
    let (s, v) = req(
        &p,
        "PUT",
        path,
        &acme,
        Some(json!({ "publicKey": acme_pub })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let acme_id = v["key"]["keyId"].as_str().unwrap().to_string();
    assert!(by_acme.contains(&acme_id), "{by_acme} {acme_id}");
    let bad = json!({ "publicKey": "ed25519:AAAA" });
    let (s, v) = req(&p, "PUT", path, &acme, Some(bad)).await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("publicKey")),
        "{v}"
    );

    let mut tampered = wasm("noop");
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_refused(
        signed_upload(&p, "acme", &acme, "noop", tampered, &by_acme).await,
        "bad-signature",
    );
    let (s, v) = signed_upload(&p, "acme", &acme, "noop", wasm("noop"), &by_acme).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["plugin"]["signature"]["keyId"], acme_id.as_str(), "{v}");
    let (s, v) = req(&p, "GET", "/t/acme/api/v1/plugins/noop", &acme, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["plugin"]["signature"]["keyId"], acme_id.as_str(), "{v}");
    assert_eq!(
        v["plugin"]["signature"]["signature"],
        by_acme.as_str(),
        "{v}"
    );

    assert_refused(
        signed_upload(&p, "beta", &beta, "noop", wasm("noop"), &by_acme).await,
        "untrusted-key",
    );
    let (s, v) = signed_upload(&p, "beta", &beta, "noop", wasm("noop"), &by_operator).await;
    assert_eq!(s, 200, "the operator's key holds for every tenant: {v}");

    // Nothing refused was stored: beta's list holds only the operator-signed one.
    let (_, v) = req(&p, "GET", "/t/beta/api/v1/plugins", &beta, None).await;
    assert_eq!(v["plugins"].as_array().unwrap().len(), 1, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_can_require_signatures_for_itself() {
    let p = Postern::start("").await;
    let acme = tenant(&p, "acme").await;
    let beta = tenant(&p, "beta").await;
    let (s, v) = upload(&p, "acme", &acme, "noop", WASM, wasm("noop")).await;
    assert_eq!(s, 200, "unsigned is fine by default: {v}");
    assert!(v["plugin"]["signature"].is_null(), "{v}");

    let body = json!({ "requireSignature": true });
    let (s, v) = req(&p, "PUT", "/t/acme/api/v1/plugin-policy", &acme, Some(body)).await;
    assert_eq!(
        (s, v["policy"]["requireSignature"].as_bool()),
        (200, Some(true)),
        "{v}"
    );
    assert_refused(
        upload(&p, "acme", &acme, "noop", WASM, wasm("noop")).await,
        "unsigned",
    );
    let (s, v) = upload(&p, "beta", &beta, "noop", WASM, wasm("noop")).await;
    assert_eq!(s, 200, "another tenant is not bound: {v}");
    let (_, v) = req(&p, "GET", "/t/beta/api/v1/plugin-policy", &beta, None).await;
    assert_eq!(v["policy"]["requireSignature"], false, "{v}");
}

/// The names in `v[field]` (an array of strings).
fn names(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reupload_that_can_do_more_needs_accept_permissions() {
    let p = Postern::start("").await;
    let k = tenant(&p, "acme").await;
    let (s, v) = upload(&p, "acme", &k, "x", WASM, wasm("noop")).await;
    assert_eq!(s, 200, "{v}");
    let noop_sha = v["plugin"]["sha256"].clone();
    let perms = &v["plugin"]["permissions"];
    assert_eq!(perms["outboundHttp"], false, "{v}");
    assert!(
        names(perms, "imports").contains(&"wasi:cli/stdout".to_string()),
        "{v}"
    );

    // noop -> misbehave: now imports wasi:http (and clocks, config, log).
    let (s, v) = upload(&p, "acme", &k, "x", WASM, wasm("misbehave")).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (409, Some("error-conflict")),
        "{v}"
    );
    let added = names(&v["details"], "addedImports");
    assert!(
        added.contains(&"wasi:http/outgoing-handler".to_string()),
        "{v}"
    );
    assert_eq!(v["details"]["outboundHttp"], true, "{v}");
    assert!(names(&v["details"], "addedSecretKeys").is_empty(), "{v}");
    let (_, v) = req(&p, "GET", "/t/acme/api/v1/plugins/x", &k, None).await;
    assert_eq!(
        v["plugin"]["sha256"], noop_sha,
        "the live version stays: {v}"
    );

    let (s, v) = upload(
        &p,
        "acme",
        &k,
        "x?accept=everything",
        WASM,
        wasm("misbehave"),
    )
    .await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("accept")),
        "{v}"
    );
    let (s, v) = upload(
        &p,
        "acme",
        &k,
        "x?accept=permissions",
        WASM,
        wasm("misbehave"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["plugin"]["permissions"]["outboundHttp"], true, "{v}");
    // Narrower again needs no acceptance.
    let (s, v) = upload(&p, "acme", &k, "x", WASM, wasm("noop")).await;
    assert_eq!(s, 200, "{v}");

    // Each attempt records the version that ran it.
    let channel = json!({ "kind": "plugin", "plugin": "x" });
    let (s, v) = req(&p, "PUT", "/t/acme/api/v1/channels/c", &k, Some(channel)).await;
    assert_eq!(s, 200, "{v}");
    let to = json!({ "sendTo": "someone" });
    let (s, v) = req(&p, "POST", "/t/acme/api/v1/channels/c/test", &k, Some(to)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["delivery"]["attempts"][0]["pluginSha256"], noop_sha,
        "{v}"
    );

    // ntfy -> telegram: the same imports, a new secret key.
    let (s, v) = upload(&p, "acme", &k, "y", WASM, wasm("ntfy")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        names(&v["plugin"]["permissions"], "secretKeys"),
        ["access_token"]
    );
    let (s, v) = upload(&p, "acme", &k, "y", WASM, wasm("telegram")).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(
        names(&v["details"], "addedSecretKeys"),
        ["bot_token"],
        "{v}"
    );
    assert!(names(&v["details"], "addedImports").is_empty(), "{v}");
    let (s, v) = upload(
        &p,
        "acme",
        &k,
        "y?accept=permissions",
        WASM,
        wasm("telegram"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = req(&p, "GET", "/t/acme/api/v1/plugins", &k, None).await;
    let y = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "y")
        .unwrap();
    assert_eq!(names(&y["permissions"], "secretKeys"), ["bot_token"], "{v}");
    let (_, v) = req(&p, "GET", "/t/acme/api/v1/audit", &k, None).await;
    assert!(v.to_string().contains("accepted=permissions"), "{v}");
}
