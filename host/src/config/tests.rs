//! The config file's loading and key-naming messages.

use super::*;

fn load(text: &str) -> Result<Loaded, ConfigError> {
    Config::from_toml(text, Source::Embedded, Vec::new())
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    Config::from_toml(
        text,
        Source::Embedded,
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn empty_config_is_the_embedded_default() {
    let l = load("").unwrap();
    assert_eq!(l.config.server.listen, "127.0.0.1:8080");
    assert_eq!(l.config.database_url(), "sqlite://./data/postern.db");
    assert_eq!(l.config.api.two_fa_token_ttl_seconds, 600);
    assert!(l.config.smtp.is_none());
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../../examples/postern.toml");
    let l = load(text).unwrap();
    assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
    assert!(l.config.smtp.is_some());
}

#[test]
fn out_of_range_names_key_and_range() {
    let e = load("[api]\ntwo_fa_token_ttl_seconds = 5\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.two_fa_token_ttl_seconds"), "{e}");
    assert!(e.contains("60..=3600"), "{e}");
    let e = load("[limits]\ncode_length = 4\n").unwrap_err().to_string();
    assert!(
        e.contains("limits.code_length") && e.contains("6..=10"),
        "{e}"
    );
}

#[test]
fn rport_keys_are_accepted_and_unknown_keys_reported() {
    let text = r#"
[api]
address = "0.0.0.0:3000"
two_fa_token_delivery = "smtp"
two_fa_token_ttl_seconds = 600
two_fa_send_to_type = "email"
[smtp]
server = "smtp.example.com:2525"
sender_email = "rport@example.com"
auth_username = "john"
auth_password = "secret"
secure = false
"#;
    let l = load(text).unwrap();
    assert_eq!(l.unknown_keys, vec!["api.address".to_string()]);
    let smtp = l.config.smtp.unwrap();
    assert_eq!(smtp.host_port().unwrap(), ("smtp.example.com".into(), 2525));
    assert_eq!(format!("{:?}", smtp.auth_password), "Some(\"***\")");
}

#[test]
fn smtp_without_port_is_refused() {
    let e = load("[smtp]\nserver = \"smtp.example.com\"\nsender_email = \"a@b.c\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("smtp.server"), "{e}");
}

#[test]
fn env_overrides_win_and_numbers_can_be_secrets() {
    let l = load_env(
        "[smtp]\nserver = \"mail:25\"\nsender_email = \"a@b.c\"\n",
        &[
            ("POSTERN_SMTP__AUTH_PASSWORD", "123456"),
            ("POSTERN_API__TWO_FA_TOKEN_TTL_SECONDS", "120"),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(
        l.config.smtp.unwrap().auth_password.unwrap().expose(),
        "123456"
    );
    assert_eq!(l.config.api.two_fa_token_ttl_seconds, 120);
    let e = load_env("", &[("POSTERN_NOPE__X", "1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("POSTERN_NOPE__X"), "{e}");
}

#[test]
fn env_secrets_that_look_like_numbers_keep_their_text() {
    for password in ["0123", "1.50", "007.5", "12.5"] {
        let l = load_env(
            "[smtp]\nserver = \"mail:25\"\nsender_email = \"a@b.c\"\n",
            &[("POSTERN_SMTP__AUTH_PASSWORD", password)],
        )
        .unwrap();
        assert_eq!(
            l.config.smtp.unwrap().auth_password.unwrap().expose(),
            password
        );
    }
}

#[test]
fn sms_gateway_checks_name_the_key() {
    let e = load("[[sms_gateway]]\nname = \"g\"\nkind = \"http\"\nurl = \"ftp://x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sms_gateway[0].url"), "{e}");
    let e = load(
        "[[sms_gateway]]\nname = \"g\"\nkind = \"http\"\nurl = \"http://x\"\nregexp = \"nope\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sms_gateway[0].regexp"), "{e}");
    let e = load("[[sms_gateway]]\nname = \"g\"\nkind = \"fax\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sms_gateway[0].kind") && e.contains("http, smtp"),
        "{e}"
    );
}

#[test]
fn duplicate_channel_names_and_bad_fallbacks_are_refused() {
    let g = "[[sms_gateway]]\nname = \"g\"\nkind = \"http\"\nurl = \"http://x\"\n";
    let e = load(&format!("{g}{g}")).unwrap_err().to_string();
    assert!(e.contains("already used"), "{e}");
    let e = load(&format!("{g}fallback = \"nowhere\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sms_gateway[0].fallback"), "{e}");
    let gw = |name: &str, fallback: &str| {
        format!(
            "[[sms_gateway]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://x\"\nfallback = \"{fallback}\"\n"
        )
    };
    let e = load(&format!("{}{}", gw("a", "b"), gw("b", "a")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cycle: a → b → a"), "{e}");
}

#[test]
fn url_delivery_needs_base_url_and_https() {
    let e = load("[api]\ntwo_fa_token_delivery = \"https://hook.example.com/x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.base_url"), "{e}");
    let e = load(
        "[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"http://hook.example.com/x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("url_allow_http"), "{e}");
    load("[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"http://127.0.0.1:9/x\"\n").unwrap();
}

#[test]
fn postgres_needs_a_shared_secret_key_and_other_schemes_are_refused() {
    let pg = "[server]\ndatabase_url = \"postgres://postern@db.internal/postern\"\n";
    let e = load(pg).unwrap_err().to_string();
    assert!(
        e.contains("server.secret_key") && e.contains("every host"),
        "{e}"
    );
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    load_env(pg, &[("POSTERN_SERVER__SECRET_KEY", key)]).unwrap();
    for host in [
        include_str!("../../../examples/two-hosts/host-a.toml"),
        include_str!("../../../examples/two-hosts/host-b.toml"),
    ] {
        assert!(
            load(host).is_err(),
            "the example needs the key from the environment"
        );
        let l = load_env(host, &[("POSTERN_SERVER__SECRET_KEY", key)]).unwrap();
        assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
    }
    load(&format!(
        "[server]\ndatabase_url = \"postgresql://db/postern\"\nsecret_key = \"{key}\"\n"
    ))
    .unwrap();
    let e = load_env(
        "[server]\ndatabase_url = \"postgres://u:hunter2@db/p?max_connections=x\"\n",
        &[("POSTERN_SERVER__SECRET_KEY", key)],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("server.database_url")
            && e.contains("max_connections")
            && !e.contains("hunter2"),
        "{e}"
    );
    let e = load("[server]\ndatabase_url = \"mysql://db/postern\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("server.database_url") && e.contains("postgres://"),
        "{e}"
    );
}

#[test]
fn heartbeat_seconds_take_fractions_zero_and_env_overrides() {
    let r = load("[realtime]\nheartbeat_interval_seconds = 0\nheartbeat_timeout_seconds = 7")
        .unwrap()
        .config
        .realtime;
    assert_eq!(
        (r.heartbeat_interval_seconds, r.heartbeat_timeout_seconds),
        (0.0, 7.0)
    );
    let env = [("POSTERN_REALTIME__HEARTBEAT_INTERVAL_SECONDS", "2.5")];
    let r = load_env("", &env).unwrap().config.realtime;
    assert_eq!(r.heartbeat_interval_seconds, 2.5);
    let e = load("[realtime]\nheartbeat_timeout_seconds = 0.5").unwrap_err();
    let e = e.to_string();
    assert!(e.contains("realtime.heartbeat_timeout_seconds"), "{e}");
    assert!(e.contains("0.5 is out of range; allowed 1..=3600"), "{e}");
}
