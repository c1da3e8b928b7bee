//! The config file with `POSTERN_*` overrides. Loading never panics, every
//! error prints, an override value keeps its text (`0123` stays a string),
//! and the file with the overrides written into it loads to the same
//! config as the file plus the overrides.

use crate::config::{Config, Source, env::apply_env_overrides};

/// The input is the TOML text; lines after a `#env` line are `VAR=value`
/// environment entries.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (toml_text, env) = split_env(&text);
    let loaded = Config::from_toml(toml_text, Source::Embedded, env.clone());
    if let Err(e) = &loaded {
        let _ = e.to_string();
    }
    let Ok(mut table) = toml::from_str::<toml::Table>(toml_text) else {
        return;
    };
    if apply_env_overrides(&mut table, env.clone()).is_err() {
        assert!(
            loaded.is_err(),
            "an override refused here was accepted by load"
        );
        return;
    }
    check_kept_text(&table, &env);
    let Ok(merged) = toml::to_string(&table) else {
        return;
    };
    let again = Config::from_toml(&merged, Source::Embedded, Vec::new());
    match (&loaded, &again) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{:?}", a.config), format!("{:?}", b.config)),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "file + env and the merged file disagree: {:?} vs {:?}\n{merged}",
            a.as_ref().err(),
            b.as_ref().err()
        ),
    }
}

fn split_env(text: &str) -> (&str, Vec<(String, String)>) {
    let Some((toml_text, env)) = text.split_once("\n#env\n") else {
        return (text, Vec::new());
    };
    let env = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (toml_text, env)
}

/// Each key's last override prints back as the text it was given.
fn check_kept_text(table: &toml::Table, env: &[(String, String)]) {
    let mut last = std::collections::BTreeMap::new();
    for (var, value) in env {
        if let Some((section, key)) = var
            .strip_prefix("POSTERN_")
            .and_then(|r| r.split_once("__"))
        {
            let at = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            last.insert(at, (var, value));
        }
    }
    for ((section, key), (var, value)) in last {
        let Some(v) = table.get(&section).and_then(|s| s.get(&key)) else {
            panic!("{var} was not applied");
        };
        let shown = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => panic!("{var} became {other:?}"),
        };
        assert_eq!(&shown, value, "{var} changed its text");
    }
}
