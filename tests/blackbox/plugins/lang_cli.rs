//! A plugin author's loop with the real binary: `postern plugin test` on
//! the JavaScript and Python plugins against a loopback fake and with
//! `--replay` (no network), and `postern plugin new` for each language.

use super::lang_build::{LangPlugin, NTFY_PYTHON, WEBHOOK_JS, lang_wasm_path, seed_cache};
use crate::support::http::{Receiver, reply};
use crate::support::server::run_cli;

const PRIVATE_OK: [(&str, &str); 2] = [
    ("POSTERN_PLUGINS__ALLOW_PRIVATE_NETWORKS", "true"),
    ("POSTERN_PLUGINS__CPU_BUDGET_MS", "2000"),
];

/// `(config, secret, send-to)` of each language's plugin for `base`.
fn args_for(p: LangPlugin, base: &str) -> (String, String, &'static str) {
    if p.name == WEBHOOK_JS.name {
        (
            format!("url={base}/bot123:tok/hook?x=1"),
            "token=s3cret-tok".into(),
            "alice",
        )
    } else {
        (
            format!("api_base={base}"),
            "access_token=s3cret-tok".into(),
            "alice-topic",
        )
    }
}

fn plugin_test(p: LangPlugin, base: &str, allow: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_cache(&data);
    let wasm = lang_wasm_path(p);
    let (config, secret, to) = args_for(p, base);
    let mut args = vec![
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--to",
        to,
        "--config",
        &config,
        "--secret",
        &secret,
        "--allow-host",
        allow,
    ];
    args.extend_from_slice(extra);
    let data = data.to_str().unwrap();
    let mut env = PRIVATE_OK.to_vec();
    env.push(("POSTERN_SERVER__DATA_DIR", data));
    run_cli(dir.path(), &args, &env)
}

fn assert_report(out: &str, replayed: bool) {
    let request = out
        .lines()
        .find(|l| l.starts_with("request 1: POST http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("a request line:\n{out}"));
    assert!(request.contains("-> HTTP 200 in "), "{request}");
    assert!(
        request.contains("body ") && request.contains(" bytes"),
        "{request}"
    );
    assert_eq!(request.contains("(replayed)"), replayed, "{request}");
    assert!(
        !out.contains("s3cret-tok"),
        "the secret never shows:\n{out}"
    );
    assert!(
        !out.contains("123:tok"),
        "a /bot… token never shows:\n{out}"
    );
    assert!(out.contains("log: [info] "), "{out}");
    assert!(out.contains("answered HTTP 200"), "{out}");
    assert!(out.contains("cpu time: "), "{out}");
    assert!(out.contains("peak linear memory: "), "{out}");
    assert!(out.contains("http requests: 1"), "{out}");
    assert!(out.contains("validate-recipient \"alice"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("outcome: delivered: delivered by plugin"),
        "{out}"
    );
}

fn against_a_fake(p: LangPlugin) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(Receiver::start(vec![reply(200, r#"{"id":"abc"}"#)]));
    let allow = format!("http://127.0.0.1:{}", fake.port);
    let (code, out, err) = plugin_test(p, &fake.url(""), &allow, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_report(&out, false);
    assert!(out.contains("(provider id abc)"), "{out}");
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        String::from_utf8_lossy(&seen[0].body).contains("123456"),
        "the test code went out"
    );

    // A refusal from the provider: exit 1, the class and reason printed.
    fake.set_script(vec![reply(403, r#"{"error":"forbidden"}"#)]);
    let (code, out, _) = plugin_test(p, &fake.url(""), &allow, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("-> HTTP 403"), "{out}");
    assert!(out.contains("outcome: permanent: plugin "), "{out}");
    assert!(out.contains("misconfigured"), "{out}");
}

fn replayed(p: LangPlugin) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("replay.json");
    let recorded = r#"{"responses":[{"status":200,"headers":{"content-type":"application/json"},"body":{"id":"rec-1"}}]}"#;
    std::fs::write(&file, recorded).unwrap();
    // Nothing listens on this port: only the replay can answer.
    let base = "http://127.0.0.1:9";
    let (code, out, err) = plugin_test(p, base, base, &["--replay", file.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_report(&out, true);
    assert!(out.contains("(provider id rec-1)"), "{out}");
}

#[test]
fn plugin_test_runs_the_js_plugin_against_a_fake_and_from_a_replay() {
    against_a_fake(WEBHOOK_JS);
    replayed(WEBHOOK_JS);
}

#[test]
fn plugin_test_runs_the_python_plugin_against_a_fake_and_from_a_replay() {
    against_a_fake(NTFY_PYTHON);
    replayed(NTFY_PYTHON);
}

#[test]
fn plugin_test_refuses_a_recipient_and_a_host_outside_the_allow_list() {
    let (code, out, _) = plugin_test(WEBHOOK_JS, "http://127.0.0.1:9", "example.com", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not in the channel's allowedHosts"), "{out}");
    assert!(
        out.contains("outcome: permanent: outbound request refused by the sandbox"),
        "{out}"
    );
}

#[test]
fn plugin_new_writes_a_project_for_each_language() {
    let dir = tempfile::tempdir().unwrap();
    for (lang, entry, marker) in [
        ("rust", "src/lib.rs", "name = \"otp-hook\""),
        ("js", "src/plugin.js", "name: 'otp-hook'"),
        ("python", "app.py", "name=\"otp-hook\""),
    ] {
        let out_dir = dir.path().join(lang);
        let args = [
            "plugin",
            "new",
            "otp-hook",
            "--lang",
            lang,
            "--dir",
            out_dir.to_str().unwrap(),
        ];
        let (code, out, err) = run_cli(dir.path(), &args, &[]);
        assert_eq!(code, 0, "{lang}: {out}{err}");
        let src = std::fs::read_to_string(out_dir.join(entry)).unwrap();
        let manifest = ["Cargo.toml", "package.json", "app.py"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(out_dir.join(f)).ok())
            .collect::<String>();
        assert!(
            src.contains(marker) || manifest.contains(marker),
            "{lang}: {marker}"
        );
        assert!(out_dir.join("README.md").exists(), "{lang}");
        if lang != "rust" {
            let wit = std::fs::read_to_string(out_dir.join("wit/deps/postern-plugin/plugin.wit"))
                .unwrap();
            assert!(wit.contains("world deliverer"), "{lang}");
        }
        let (code, _, err) = run_cli(dir.path(), &args, &[]);
        assert_eq!(code, 1, "{lang}: an existing folder is not overwritten");
        assert!(
            err.contains("exists") || out.contains("exists") || code == 1,
            "{err}"
        );
    }
}
