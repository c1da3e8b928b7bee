//! `postern plugin check FILE.wasm` and `[[channel]]` plugins at start-up.

use std::process::Command;

use postern::config::Config;
use postern::delivery::OutcomeClass;
use serde_json::json;

use super::support::*;

fn postern() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_postern"));
    // No ./postern.toml from the working directory.
    c.current_dir(env!("CARGO_TARGET_TMPDIR"));
    c
}

#[test]
fn plugin_check_prints_describe_and_imports() {
    let path = wasm_dir().join("telegram.wasm");
    let out = postern()
        .args(["plugin", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("plugin:      telegram 0.1.0"), "{stdout}");
    assert!(stdout.contains("Bot API sendMessage"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("bot_token") && l.contains("required, secret")),
        "{stdout}"
    );
    assert!(
        stdout.contains("  wasi:http/outgoing-handler@0.2.12"),
        "{stdout}"
    );
    assert!(stdout.contains("  postern:plugin/config@0.1.0"), "{stdout}");
    assert!(stdout.contains("is a valid postern plugin"), "{stdout}");
}

#[test]
fn plugin_check_refuses_invalid_components_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("script.wasm");
    std::fs::write(&garbage, "#!/bin/sh\n").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    for (file, reason) in [
        (garbage, "not a WebAssembly file".to_string()),
        (
            core,
            "a core WebAssembly module, not a component".to_string(),
        ),
        (
            wasm_dir().join("bad_import.wasm"),
            "imports `evil:host/spy".to_string(),
        ),
        (
            wasm_dir().join("wrong_world.wasm"),
            "wrong world: exports greet".to_string(),
        ),
        (dir.path().join("missing.wasm"), "cannot read".to_string()),
    ] {
        let out = postern()
            .args(["plugin", "check"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", file.display());
        assert!(stderr.contains(&reason), "{}: {stderr}", file.display());
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

fn config_with_channel(
    data_dir: &std::path::Path,
    plugin: &std::path::Path,
    base: &str,
    extra: &str,
) -> Config {
    let toml = format!(
        r#"
[server]
data_dir = "{data}"

[[channel]]
name = "telegram"
plugin = "{plugin}"
allowed_hosts = ["{base}"]
config = {{ api_base = "{base}" }}
{extra}
send_to_type = "regex"
send_to_regex = '-?\d+'

[plugins]
allow_private_networks = true
"#,
        data = data_dir.display(),
        plugin = plugin.display(),
    );
    let file = data_dir.join("postern.toml");
    std::fs::write(&file, toml).unwrap();
    Config::load(Some(&file), std::iter::empty())
        .expect("config")
        .config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_channels_load_at_start_up_and_deliver() {
    let fake = Fake::start(|_| json(200, json!({"ok": true, "result": {"message_id": 7}}))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_channel(
        dir.path(),
        &wasm_dir().join("telegram.wasm"),
        &fake.base(),
        r#"secrets = { bot_token = "42:file-secret" }"#,
    );

    let app = postern::app::App::build(cfg).await.expect("start-up");
    let channel = app
        .registry
        .get(&postern::domain::TenantName::default_tenant(), "telegram")
        .expect("channel registered");
    assert!(channel.validate_recipient("abc").await.is_err());
    let o = channel.sender.send(&message("987654321")).await;

    assert_class(&o, OutcomeClass::Delivered);
    assert_eq!(fake.only_request().uri, "/bot42:file-secret/sendMessage");
}

#[tokio::test]
async fn a_missing_or_invalid_plugin_file_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = r#"secrets = { bot_token = "x" }"#;

    let missing = config_with_channel(
        dir.path(),
        &dir.path().join("nope.wasm"),
        "http://127.0.0.1:9",
        secrets,
    );
    let e = postern::app::App::build(missing)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("channel[0].plugin: cannot read"), "{e}");

    let invalid = config_with_channel(
        dir.path(),
        &wasm_dir().join("bad_import.wasm"),
        "http://127.0.0.1:9",
        secrets,
    );
    let e = postern::app::App::build(invalid)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("channel[0].plugin:") && e.contains("evil:host/spy"),
        "{e}"
    );

    let no_token = config_with_channel(
        dir.path(),
        &wasm_dir().join("telegram.wasm"),
        "http://127.0.0.1:9",
        "",
    );
    let e = postern::app::App::build(no_token)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("channel[0]: secrets.bot_token: is required by plugin telegram"),
        "{e}"
    );
}
