//! A plugin author's loop, offline: `postern plugin test` runs describe,
//! validate-recipient and one deliver in the same sandbox as the server
//! and prints what happened ([`test_cmd`]); `postern plugin new` writes a
//! ready project from the templates ([`new_cmd`]).

mod new_cmd;
mod report;
mod test_cmd;

use std::path::PathBuf;

pub use new_cmd::{Lang, NewArgs, new_project};
pub use test_cmd::{TestArgs, run_test};

/// `k=v` of `--config` / `--secret`.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// Reads a file, naming it in the error.
pub(crate) fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
