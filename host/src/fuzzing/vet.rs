//! Plugin vetting of arbitrary bytes: the header check, the compiler, the
//! import/export vetting and `describe()` answer any bytes with a plugin or
//! a typed error that blames the bytes, never a panic or a host error.

use std::sync::{Arc, OnceLock};

use crate::config::PluginsConfig;
use crate::plugin::{PluginError, PluginRuntime, vet};

struct Rig {
    rt: tokio::runtime::Runtime,
    plugins: Arc<PluginRuntime>,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let plugins = rt
            .block_on(async { PluginRuntime::new(&PluginsConfig::default(), None) })
            .expect("plugin runtime");
        Rig { rt, plugins }
    })
}

/// The whole input is the uploaded file.
pub fn run(data: &[u8]) {
    let header = vet::check_header(data);
    let names = String::from_utf8_lossy(data);
    let _ = vet::is_granted_import(&names);
    let _ = vet::missing_exports(names.split(','));
    let r = rig();
    let loaded = r.rt.block_on(r.plugins.load(data.to_vec()));
    match loaded {
        Ok(p) => assert!(header.is_ok() && !p.info.name.trim().is_empty()),
        Err(e) => {
            if let Err(h) = &header {
                assert_eq!(&e, h, "the header check decides first");
            }
            assert!(
                e.is_invalid_plugin() && !matches!(e, PluginError::CompileTimeout(_)),
                "bytes answered with a host error: {e}"
            );
            let _ = (e.reason(), e.to_string());
        }
    }
}
