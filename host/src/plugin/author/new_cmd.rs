//! `postern plugin new NAME --lang rust|js|python [--dir DIR]`: a ready
//! project from the templates (`examples/plugin-template{,-js,-python}/`),
//! embedded in the binary, with the plugin world's WIT for JS and Python.
//! The template's name (`my-plugin`, `webhook-js`, `ntfy-python`) becomes NAME.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and `-`.
    pub name: String,
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where to write the project (default: ./NAME); must not exist.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

type Files = &'static [(&'static str, &'static str)];

macro_rules! repo {
    ($p:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $p))
    };
}

const WIT: Files = &[
    ("wit/world.wit", repo!("plugins/wit-http/world.wit")),
    ("wit/deps/cli.wit", repo!("plugins/wit-http/deps/cli.wit")),
    (
        "wit/deps/clocks.wit",
        repo!("plugins/wit-http/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        repo!("plugins/wit-http/deps/filesystem.wit"),
    ),
    ("wit/deps/http.wit", repo!("plugins/wit-http/deps/http.wit")),
    ("wit/deps/io.wit", repo!("plugins/wit-http/deps/io.wit")),
    (
        "wit/deps/random.wit",
        repo!("plugins/wit-http/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        repo!("plugins/wit-http/deps/sockets.wit"),
    ),
    (
        "wit/deps/postern-plugin/plugin.wit",
        repo!("wit/plugin.wit"),
    ),
];

const JS: Files = &[
    (
        "package.json",
        repo!("examples/plugin-template-js/package.json"),
    ),
    (
        "package-lock.json",
        repo!("plugins/js-webhook/package-lock.json"),
    ),
    ("README.md", repo!("examples/plugin-template-js/README.md")),
    ("src/plugin.js", repo!("plugins/js-webhook/src/plugin.js")),
    ("src/http.js", repo!("plugins/js-webhook/src/http.js")),
];

const PYTHON: Files = &[
    ("app.py", repo!("plugins/python-ntfy/app.py")),
    ("wasi_http.py", repo!("plugins/python-ntfy/wasi_http.py")),
    (
        "requirements.txt",
        repo!("plugins/python-ntfy/requirements.txt"),
    ),
    (
        "README.md",
        repo!("examples/plugin-template-python/README.md"),
    ),
];

const RUST: Files = &[
    ("Cargo.toml", repo!("examples/plugin-template/Cargo.toml")),
    ("Cargo.lock", repo!("examples/plugin-template/Cargo.lock")),
    (
        ".cargo/config.toml",
        repo!("examples/plugin-template/.cargo/config.toml"),
    ),
    ("README.md", repo!("examples/plugin-template/README.md")),
    ("src/lib.rs", repo!("examples/plugin-template/src/lib.rs")),
];

fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "plugin name `{name}`: use 1 to 64 lowercase letters, digits and -, starting with a letter"
        ))
    }
}

/// The template's own names replaced by the project's.
fn rename(text: &str, name: &str) -> String {
    let snake = name.replace('-', "_");
    let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");
    text.replace("postern-plugin-webhook-js", name)
        .replace("webhook-js", name)
        .replace("ntfy-python", name)
        .replace("my-plugin", name)
        .replace("my_plugin", &snake)
        .replace("webhook_js", &snake)
        // The Rust SDK of the checkout this binary was built from.
        .replace("path = \"../../plugins/sdk\"", &format!("path = \"{sdk}\""))
}

fn write_all(dir: &Path, files: Files, name: &str) -> Result<(), String> {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let text = if rel.starts_with("wit/") {
            text.to_string()
        } else {
            rename(text, name)
        };
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Writes the project; answers what to tell the user.
pub fn new_project(a: &NewArgs) -> Result<String, String> {
    check_name(&a.name)?;
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists() {
        return Err(format!("{} exists; not overwritten", dir.display()));
    }
    let (files, build): (Files, &str) = match a.lang {
        Lang::Rust => (RUST, "cargo build --release"),
        Lang::Js => (JS, "npm ci && npm run build"),
        Lang::Python => (
            PYTHON,
            "pip install -r requirements.txt && componentize-py -d wit -w http-deliverer componentize app -o plugin.wasm",
        ),
    };
    write_all(&dir, files, &a.name)?;
    if a.lang != Lang::Rust {
        write_all(&dir, WIT, &a.name)?;
    }
    Ok(format!(
        "wrote {} ({:?} plugin `{}`); next: cd {} && {build}, then see README.md\n",
        dir.display(),
        a.lang,
        a.name,
        dir.display()
    ))
}
