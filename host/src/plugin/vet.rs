//! Is this a postern plugin? Every refusal is a typed error with a reason a
//! person can act on (`postern plugin check`, the upload API). Nothing here
//! runs guest code.

use thiserror::Error;

/// Why a plugin cannot be loaded or used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PluginError {
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error(
        "{size} bytes is over the plugin size limit of {limit} bytes (plugins.max_upload_bytes)"
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("not a valid component: {0}")]
    Invalid(String),
    #[error("wrong world: {0}")]
    WrongWorld(String),
    #[error(
        "imports `{0}`, which postern does not grant (allowed: postern:plugin, wasi:cli/io/clocks/random/filesystem@0.2, wasi:http/types+outgoing-handler@0.2)"
    )]
    UngrantedImport(String),
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("compiling took longer than {0} s")]
    CompileTimeout(u64),
    #[error("plugin runtime: {0}")]
    Runtime(String),
}

impl PluginError {
    /// A stable short id, e.g. for metrics or an API `details.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            PluginError::NotWasm => "not-wasm",
            PluginError::CoreModule => "core-module",
            PluginError::TooLarge { .. } => "too-large",
            PluginError::Invalid(_) => "invalid",
            PluginError::WrongWorld(_) => "wrong-world",
            PluginError::UngrantedImport(_) => "ungranted-import",
            PluginError::Describe(_) => "describe-failed",
            PluginError::CompileTimeout(_) => "compile-timeout",
            PluginError::Runtime(_) => "runtime",
        }
    }

    /// True when the bytes are at fault (400 for an upload), false when the
    /// host is (500-ish).
    pub fn is_invalid_plugin(&self) -> bool {
        !matches!(
            self,
            PluginError::Runtime(_) | PluginError::CompileTimeout(_)
        )
    }
}

/// The binary header: magic `\0asm`, then a version and a layer field.
pub fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm);
    }
    match &bytes[4..8] {
        // version 1, layer 0: a core module
        [1, 0, 0, 0] => Err(PluginError::CoreModule),
        // layer 1: a component (version 0x0d during the pre-1.0 period)
        [_, _, 1, 0] => Ok(()),
        other => Err(PluginError::Invalid(format!(
            "unknown WebAssembly version/layer {other:02x?}"
        ))),
    }
}

/// May a plugin import this instance? `imports ⊆ granted`, not equality:
/// toolchains drop unused imports. WASI must be 0.2.x (any patch: the linker
/// resolves 0.2.6 and 0.2.12 alike by semver).
pub fn is_granted_import(name: &str) -> bool {
    let Some((path, version)) = name.split_once('@') else {
        return false;
    };
    let Some((package, interface)) = path.split_once('/') else {
        return false;
    };
    let v = |prefix: &str| version.starts_with(prefix) && version.len() > prefix.len();
    match package {
        "postern:plugin" => v("0.1.") && matches!(interface, "types" | "config" | "log"),
        "wasi:cli" | "wasi:io" | "wasi:clocks" | "wasi:random" => v("0.2."),
        "wasi:filesystem" => v("0.2.") && matches!(interface, "types" | "preopens"),
        "wasi:http" => v("0.2.") && matches!(interface, "types" | "outgoing-handler"),
        // Linked but inert: the sandbox grants no TCP, UDP or name lookup
        // and its address check refuses every address. wasi-libc based
        // toolchains (componentize-py) import these whether used or not.
        "wasi:sockets" => v("0.2."),
        _ => false,
    }
}

/// The exports of world `deliverer`.
pub const REQUIRED_EXPORTS: [&str; 3] = ["describe", "validate-recipient", "deliver"];

/// A wrong-world reason naming what is missing, or `None` when every export
/// of `deliverer` is present (their types are checked by the linker next).
pub fn missing_exports<'a>(exports: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let exports: Vec<&str> = exports.into_iter().collect();
    let missing: Vec<&str> = REQUIRED_EXPORTS
        .iter()
        .copied()
        .filter(|e| !exports.contains(e))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let has = if exports.is_empty() {
        "nothing".to_string()
    } else {
        exports.join(", ")
    };
    Some(format!(
        "exports {has}; the postern:plugin/deliverer world needs {} (missing {})",
        REQUIRED_EXPORTS.join(", "),
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(check_header(b"hello world"), Err(PluginError::NotWasm));
        assert_eq!(check_header(b"\0asm"), Err(PluginError::NotWasm));
        assert_eq!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(PluginError::CoreModule)
        );
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(()));
    }

    #[test]
    fn granted_imports() {
        for ok in [
            "postern:plugin/config@0.1.0",
            "postern:plugin/types@0.1.0",
            "wasi:io/poll@0.2.6",
            "wasi:cli/environment@0.2.12",
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:filesystem/preopens@0.2.0",
            "wasi:sockets/tcp@0.2.9",
        ] {
            assert!(is_granted_import(ok), "{ok}");
        }
        for bad in [
            "evil:host/spy",
            "evil:host/spy@1.0.0",
            "wasi:sockets/tcp@0.3.0",
            "wasi:http/incoming-handler@0.2.6",
            "wasi:io/poll@0.3.0",
            "postern:plugin/admin@0.1.0",
            "wasi:io/poll",
            "wasi:io/poll@0.2.",
        ] {
            assert!(!is_granted_import(bad), "{bad}");
        }
    }

    #[test]
    fn exports() {
        assert_eq!(
            missing_exports(["describe", "validate-recipient", "deliver"]),
            None
        );
        let why = missing_exports(["greet"]).unwrap();
        assert!(why.contains("exports greet"), "{why}");
        assert!(
            why.contains("missing describe, validate-recipient, deliver"),
            "{why}"
        );
    }
}
