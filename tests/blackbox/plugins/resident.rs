//! Compiled plugins are loaded on first use and the least recently used
//! dropped past `plugins.resident_plugins`; a dropped one is mapped back
//! from the compile cache only after its tag verifies.

use std::sync::Arc;

use postern::config::PluginsConfig;
use postern::delivery::{OutcomeClass, Sender};
use postern::plugin::{ChannelSandbox, LoadedPlugin, PluginRuntime};

use super::support::*;

/// `base` with a custom section holding `i`: a distinct component (its own
/// sha256 and cache files) that behaves the same.
pub fn variant(base: &[u8], i: usize) -> Vec<u8> {
    let name = b"variant";
    let payload = format!("{i:06}");
    let len = 1 + name.len() + payload.len();
    let mut out = base.to_vec();
    out.extend_from_slice(&[0, len as u8, name.len() as u8]);
    out.extend_from_slice(name);
    out.extend_from_slice(payload.as_bytes());
    out
}

fn artifact(dir: &std::path::Path, p: &LoadedPlugin) -> std::path::PathBuf {
    let cache = dir.join("plugin-cache");
    std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| {
            let n = f.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&p.sha256) && n.ends_with(".cwasm")
        })
        .expect("the artifact file")
}

async fn deliver(rt: &Arc<PluginRuntime>, p: &Arc<LoadedPlugin>) -> postern::delivery::SendOutcome {
    let s: Arc<dyn Sender> = rt.sender(p.clone(), ChannelSandbox::default());
    s.send(&message("x")).await
}

#[tokio::test]
async fn plugins_load_on_first_use_and_the_least_recently_used_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PluginsConfig {
        resident_plugins: 1,
        ..test_limits()
    };
    let rt = PluginRuntime::new(&cfg, Some(dir.path())).unwrap();
    let a = rt.load(variant(&wasm("noop"), 1)).await.unwrap();
    let b = rt.load(variant(&wasm("noop"), 2)).await.unwrap();
    assert_ne!(a.sha256, b.sha256);
    assert_eq!(rt.resident_count(), 0, "vetting leaves nothing resident");

    for p in [&a, &b, &a, &b] {
        assert_class(&deliver(&rt, p).await, OutcomeClass::Delivered);
        assert_eq!(rt.resident_count(), 1, "bounded by resident_plugins");
    }

    // `a` was dropped; its artifact is overwritten meanwhile. The tag does
    // not verify, so it is never mapped: recompiled from the cache's copy
    // of the component, replaced, and the delivery still goes out.
    let file = artifact(dir.path(), &a);
    let mut forged = std::fs::read(&file).unwrap();
    let n = forged.len();
    forged[n / 2] ^= 0xff;
    std::fs::write(&file, &forged).unwrap();
    assert_class(&deliver(&rt, &a).await, OutcomeClass::Delivered);
    assert_ne!(std::fs::read(&file).unwrap(), forged, "replaced");

    // Another plugin's (valid, host-written) artifact renamed over `b`'s is
    // refused too: the tag covers the file name.
    let b_file = artifact(dir.path(), &b);
    std::fs::copy(&file, &b_file).unwrap();
    std::fs::copy(
        file.with_extension("cwasm.tag"),
        b_file.with_extension("cwasm.tag"),
    )
    .unwrap();
    let o = deliver(&rt, &b).await;
    assert_class(&o, OutcomeClass::Delivered);
    let tag = |f: &std::path::Path| std::fs::read(f.with_extension("cwasm.tag")).unwrap();
    assert_ne!(tag(&b_file), tag(&file), "b's own tag again");

    // With the cache emptied under a dropped plugin, its delivery is a
    // transient failure that says why (retried), not a panic.
    for e in std::fs::read_dir(dir.path().join("plugin-cache")).unwrap() {
        let path = e.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&a.sha256)
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let o = deliver(&rt, &a).await;
    assert_class(&o, OutcomeClass::Transient);
    assert!(o.detail.contains("could not start"), "{}", o.detail);
}

#[tokio::test]
async fn without_a_cache_a_loaded_plugin_stays_usable() {
    let cfg = PluginsConfig {
        resident_plugins: 1,
        ..test_limits()
    };
    let rt = PluginRuntime::new(&cfg, None).unwrap();
    let a = rt.load(variant(&wasm("noop"), 1)).await.unwrap();
    let b = rt.load(variant(&wasm("noop"), 2)).await.unwrap();
    for p in [&a, &b, &a] {
        assert_class(&deliver(&rt, p).await, OutcomeClass::Delivered);
    }
}
