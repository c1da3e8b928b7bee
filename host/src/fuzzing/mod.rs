//! Fuzz target bodies (issue 15 part 3). Each target is a plain function of
//! the input bytes that panics when a property breaks, so the same body runs
//! under libFuzzer (`fuzz/`, nightly, driven by `scripts/fuzz`) and under a
//! stable `cargo test`, which replays the committed corpus and every crash
//! regression file ([`replay`]).
//!
//! Targets: [`config`] (TOML + `POSTERN_*` overrides), [`ddp`] (realtime
//! frames), [`vet`] (plugin bytes), [`sms_tags`] (privacyIDEA `regexp` and
//! option tags), [`allowed_hosts`] (`allowedHosts` entries), [`api_json`]
//! (JSON request bodies against the real router).

pub mod allowed_hosts;
pub mod api_json;
pub mod config;
pub mod ddp;
pub mod sms_tags;
pub mod vet;

/// A target body: panics when its property breaks.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and the corpus
/// folders `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/` call them.
pub const TARGETS: [(&str, Target); 6] = [
    ("config", config::run),
    ("ddp", ddp::run),
    ("vet", vet::run),
    ("sms_tags", sms_tags::run),
    ("allowed_hosts", allowed_hosts::run),
    ("api_json", api_json::run),
];

/// Splits an input at its first newline: a head line and the rest.
pub(crate) fn head_and_rest(data: &[u8]) -> (String, &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => (String::from_utf8_lossy(data).into_owned(), &[]),
    }
}

/// Runs `target` on every file of the committed corpus and crash
/// regressions; returns how many inputs ran.
#[cfg(test)]
pub(crate) fn replay(target: &str) -> usize {
    let run = TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .expect("known target");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut count = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).expect("readable corpus file");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", p.display());
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::replay;

    #[test]
    fn corpus_config() {
        assert!(replay("config") > 0);
    }

    #[test]
    fn corpus_ddp() {
        assert!(replay("ddp") > 0);
    }

    #[test]
    fn corpus_vet() {
        assert!(replay("vet") > 0);
    }

    #[test]
    fn corpus_sms_tags() {
        assert!(replay("sms_tags") > 0);
    }

    #[test]
    fn corpus_allowed_hosts() {
        assert!(replay("allowed_hosts") > 0);
    }

    #[test]
    fn corpus_api_json() {
        assert!(replay("api_json") > 0);
    }
}
