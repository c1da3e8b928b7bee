//! Builds the JavaScript and Python plugins from source, once per test
//! process, and only when a source is newer than the last build (each
//! component takes 15–60 s): `componentize-js` from
//! `plugins/js-webhook/node_modules` (`npm ci`, pinned by its
//! package-lock.json) and `componentize-py` (pinned in
//! `plugins/python-ntfy/requirements.txt`; `.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use std::sync::Arc;

use super::support::plugins_dir;
use crate::support::server::Postern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Js,
    Python,
}

/// A plugin written in another language: where its source is.
#[derive(Debug, Clone, Copy)]
pub struct LangPlugin {
    /// Output file name (without `.wasm`).
    pub name: &'static str,
    pub lang: Lang,
    /// Folder under `plugins/`.
    pub dir: &'static str,
    /// Entry file (JS) or module (Python) in that folder.
    pub entry: &'static str,
}

pub const WEBHOOK_JS: LangPlugin = LangPlugin {
    name: "webhook_js",
    lang: Lang::Js,
    dir: "js-webhook",
    entry: "src/plugin.js",
};
pub const NTFY_PYTHON: LangPlugin = LangPlugin {
    name: "ntfy_python",
    lang: Lang::Python,
    dir: "python-ntfy",
    entry: "app",
};
pub const MISBEHAVE_JS: LangPlugin = LangPlugin {
    name: "misbehave_js",
    lang: Lang::Js,
    dir: "testing/js-misbehave",
    entry: "plugin.js",
};
pub const MISBEHAVE_PYTHON: LangPlugin = LangPlugin {
    name: "misbehave_python",
    lang: Lang::Python,
    dir: "testing/python-misbehave",
    entry: "app",
};

const ALL: [LangPlugin; 4] = [WEBHOOK_JS, NTFY_PYTHON, MISBEHAVE_JS, MISBEHAVE_PYTHON];

/// The component's bytes, built if needed.
pub fn lang_wasm(p: LangPlugin) -> Vec<u8> {
    let path = lang_wasm_path(p);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The component's path, built if needed.
pub fn lang_wasm_path(p: LangPlugin) -> PathBuf {
    static BUILT: [OnceLock<Result<PathBuf, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let i = ALL
        .iter()
        .position(|q| q.name == p.name)
        .expect("known plugin");
    match BUILT[i].get_or_init(|| build(p)) {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// A data dir whose `plugin-cache/` holds all four components compiled
/// (once per machine: it lives in the target dir and is keyed by sha256 and
/// engine). Compiling a 13–18 MB guest costs ~20 s of CPU; servers and
/// `plugin test` started on a copy of it load in milliseconds.
pub fn warm_cache() -> &'static Path {
    static WARM: OnceLock<PathBuf> = OnceLock::new();
    WARM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lang-plugin-cache");
        let wasm: Vec<Vec<u8>> = ALL.iter().map(|p| lang_wasm(*p)).collect();
        let d = dir.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("tokio");
            let cfg = postern::config::PluginsConfig::default();
            let plugins = postern::plugin::PluginRuntime::new(&cfg, Some(&d)).expect("runtime");
            for bytes in wasm {
                rt.block_on(plugins.load(bytes))
                    .expect("a language plugin loads");
            }
        })
        .join()
        .expect("warming the compile cache");
        dir
    })
}

/// Copies the warm compile cache into `data` (a data dir).
pub fn seed_cache(data: &Path) {
    let from = warm_cache().join("plugin-cache");
    let to = data.join("plugin-cache");
    std::fs::create_dir_all(&to).expect("plugin-cache dir");
    for e in std::fs::read_dir(&from).expect("warm cache").flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy cache file");
    }
}

/// A server (SQLite, or PostgreSQL in that pass) whose data dir starts
/// with the warm compile cache.
pub async fn start_lang(config: &str) -> Postern {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    seed_cache(&dir.path().join("data"));
    Postern::start_prepared(dir, config).await
}

fn build(p: LangPlugin) -> Result<PathBuf, String> {
    let root = plugins_dir();
    let out_dir = root.join("target/lang");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{}.wasm", p.name));
    let src = root.join(p.dir);
    let inputs = [src.clone(), root.join("wit-http"), root.join("../wit")];
    if newer_than_all(&out, &inputs) {
        return Ok(out);
    }
    let tmp = out.with_extension("wasm.part");
    let mut cmd = match p.lang {
        Lang::Js => js_command(&root, &src.join(p.entry), &tmp)?,
        Lang::Python => python_command(&root, &src, p.entry, &tmp),
    };
    let done = cmd
        .output()
        .map_err(|e| format!("cannot run the {:?} toolchain for {}: {e}", p.lang, p.name))?;
    if !done.status.success() {
        return Err(format!(
            "building {} failed:\n{}\n{}",
            p.name,
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

fn js_command(root: &Path, entry: &Path, out: &Path) -> Result<Command, String> {
    let pkg = root.join("js-webhook");
    let bin = pkg.join("node_modules/.bin/componentize-js");
    if !bin.exists() {
        let ci = Command::new("npm")
            .current_dir(&pkg)
            .args(["ci", "--no-audit", "--no-fund"])
            .output()
            .map_err(|e| format!("npm is needed to build the JavaScript plugins: {e}"))?;
        if !ci.status.success() {
            return Err(format!(
                "npm ci in plugins/js-webhook failed:\n{}",
                String::from_utf8_lossy(&ci.stderr)
            ));
        }
    }
    let mut cmd = Command::new(bin);
    cmd.current_dir(&pkg)
        .arg(entry)
        .args(["--wit", "../wit-http", "--world-name", "http-deliverer"])
        .args(["--disable", "fetch-event", "-o"])
        .arg(out);
    Ok(cmd)
}

fn python_command(root: &Path, src: &Path, module: &str, out: &Path) -> Command {
    let mut cmd = Command::new("componentize-py");
    cmd.current_dir(src)
        .arg("-d")
        .arg(root.join("wit-http"))
        .args(["-w", "http-deliverer", "componentize", module])
        .arg("-p")
        .arg(src)
        .arg("-o")
        .arg(out);
    cmd
}

/// Is `out` newer than every file under `inputs` (node_modules aside)?
fn newer_than_all(out: &Path, inputs: &[PathBuf]) -> bool {
    let Ok(built) = std::fs::metadata(out).and_then(|m| m.modified()) else {
        return false;
    };
    inputs
        .iter()
        .all(|dir| newest(dir).is_none_or(|t| t < built))
}

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter(|e| e.file_name() != "node_modules" && e.file_name() != "__pycache__")
        .filter_map(|e| newest(&e.path()))
        .max()
}
