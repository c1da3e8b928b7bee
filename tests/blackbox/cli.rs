//! The command line: config check, embedded defaults, send-test, tenants.

use crate::support::server::{Postern, run_cli};
use crate::support::smtp::{SmtpOptions, SmtpServer};

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn config_check_accepts_the_example_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo_root().join("examples/postern.toml");
    let (code, out, err) = run_cli(
        dir.path(),
        &["config", "check", "-c", example.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[api]\ntwo_fa_token_ttl_seconds = 5\n").unwrap();
    let (code, _, err) = run_cli(
        dir.path(),
        &["config", "check", "-c", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("api.two_fa_token_ttl_seconds") && err.contains("60..=3600"),
        "{err}"
    );

    std::fs::write(&bad, "[smtp\nserver = ").unwrap();
    let (code, _, err) = run_cli(
        dir.path(),
        &["config", "check", "-c", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml"), "{err}");

    std::fs::write(&bad, "[smtp]\nserver = \"mail:25\"\nsender_email = \"a@b.co\"\nauth_password = \"pw-in-config-1\"\nstarttls = \"maybe\"\n").unwrap();
    let (code, _, err) = run_cli(
        dir.path(),
        &["config", "check", "-c", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("starttls"), "{err}");
    assert!(
        !err.contains("pw-in-config-1"),
        "a secret in an error: {err}"
    );

    // The environment overrides the file and is validated too.
    let (code, _, err) = run_cli(
        dir.path(),
        &["config", "check", "-c", example.to_str().unwrap()],
        &[("POSTERN_LIMITS__CODE_LENGTH", "12")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("limits.code_length") && err.contains("6..=10"),
        "{err}"
    );

    let (code, _, err) = run_cli(
        dir.path(),
        &["config", "check", "-c", "/nonexistent.toml"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.toml"), "{err}");

    // Plugin files are loaded (in memory) by the check too.
    std::fs::write(
        &bad,
        "[[channel]]\nname = \"tg\"\nplugin = \"missing.wasm\"\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(
        dir.path(),
        &["config", "check", "-c", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("channel[0].plugin") && err.contains("missing.wasm"),
        "{err}"
    );

    // An invalid config stops `serve` with the same message.
    std::fs::write(&bad, "[limits]\nmax_check_attempts = 0\n").unwrap();
    let (code, _, err) = run_cli(dir.path(), &["serve", "-c", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("limits.max_check_attempts"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_default_prints_the_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = std::process::Command::new(crate::support::server::bin())
            .arg("serve")
            .current_dir(dir.path())
            .env("POSTERN_SERVER__LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..2 {
            let mut l = String::new();
            std::io::BufRead::read_line(&mut out, &mut l).unwrap();
            lines.push(l);
        }
        let _ = child.kill();
        let _ = child.wait();
        lines
    };
    let first = start();
    assert!(
        first[0].starts_with("postern listening on http://127.0.0.1:"),
        "{first:?}"
    );
    let token = first[1].trim().rsplit(' ').next().unwrap().to_string();
    assert!(
        first[1].contains("shown once") && token.starts_with("pat_"),
        "{first:?}"
    );
    assert!(
        dir.path().join("data/postern.db").exists(),
        "SQLite under ./data"
    );
    assert!(dir.path().join("data/secret.key").exists());
    let second = start();
    assert!(!second[1].contains(&token), "the token was printed twice");

    // The printed token works as the admin token.
    let mut child = std::process::Command::new(crate::support::server::bin())
        .arg("serve")
        .current_dir(dir.path())
        .env("POSTERN_SERVER__LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut l = String::new();
    std::io::BufRead::read_line(&mut out, &mut l).unwrap();
    let base = l
        .trim()
        .strip_prefix("postern listening on ")
        .unwrap()
        .to_string();
    let r = Postern::client()
        .get(format!("{base}/api/v1/deliveries"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn send_test_delivers_through_a_configured_channel() {
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("postern.toml");
    std::fs::write(
        &cfg,
        format!("[smtp]\nserver = \"127.0.0.1:{}\"\nsender_email = \"2fa@example.com\"\nstarttls = \"off\"\n", smtp.port),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_cli(
            &d,
            &["send-test", "--channel", "email", "--to", "jo@example.com"],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("attempt 1:") && out.contains("delivered"),
        "{out}"
    );
    assert_eq!(smtp.mails()[0].to, vec!["jo@example.com".to_string()]);

    let (code, out, err) = run_cli(
        dir.path(),
        &["send-test", "--channel", "nope", "--to", "x@example.com"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no channel named `nope`"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_created_offline_get_their_own_api_key() {
    let p = Postern::start("").await;
    let env = p.cli_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, out, err) = run_cli(p.dir.path(), &["tenant", "create", "acme"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let acme_key = out
        .lines()
        .find_map(|l| l.rsplit(' ').next().filter(|k| k.starts_with("ptk_")))
        .unwrap()
        .to_string();
    let (_, out, _) = run_cli(p.dir.path(), &["tenant", "create", "globex"], &env);
    let globex_key = out
        .lines()
        .find_map(|l| l.rsplit(' ').next().filter(|k| k.starts_with("ptk_")))
        .unwrap()
        .to_string();
    let (code, _, err) = run_cli(p.dir.path(), &["tenant", "create", "acme"], &env);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"));
    let (code, _, err) = run_cli(p.dir.path(), &["tenant", "create", "../evil"], &env);
    assert_ne!(code, 0);
    assert!(err.contains("not a valid tenant name"), "{err}");
    let (_, out, _) = run_cli(p.dir.path(), &["tenant", "list"], &env);
    let names: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(names, ["acme", "default", "globex"]);

    let get = |path: String, key: String| async move {
        Postern::client()
            .get(path)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        get(p.url("/t/acme/api/v1/deliveries"), acme_key.clone()).await,
        200
    );
    assert_eq!(
        get(p.url("/t/acme/api/v1/deliveries"), globex_key.clone()).await,
        403
    );
    assert_eq!(
        get(p.url("/api/v1/deliveries"), acme_key.clone()).await,
        403
    );
    assert_eq!(
        get(p.url("/t/acme/api/v1/deliveries"), "ptk_forged".into()).await,
        401
    );
    assert!(!p.logs().contains(&acme_key));
}
