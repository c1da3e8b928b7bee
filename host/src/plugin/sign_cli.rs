//! `postern plugin keygen | sign | verify`: offline, on files. The formats
//! are [`super::trust`]'s; this file reads and writes the files.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::trust::{self, PublicKey, SecretKey};

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

/// Writes a file that must not exist yet (mode 0600 when `secret`).
fn create_new(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(format!("{text}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `<out>.key` (secret, 0600) and `<out>.pub`; never overwrites.
/// Answers what to tell the user.
pub fn keygen(out: &Path) -> Result<String, String> {
    let key = SecretKey::generate();
    let (secret_path, public_path) = (with_ext(out, ".key"), with_ext(out, ".pub"));
    if public_path.exists() {
        return Err(format!("{} exists; not overwritten", public_path.display()));
    }
    create_new(&secret_path, &key.to_text(), true)?;
    let public = key.public();
    create_new(&public_path, &public.to_text(), false)?;
    Ok(format!(
        "secret key: {} (keep it off the server)\npublic key: {} = {}\nkey id: {}\n",
        secret_path.display(),
        public_path.display(),
        public.to_text(),
        public.key_id()
    ))
}

/// Signs `file` with the secret key file `key` into `out` (default
/// `FILE.sig`).
pub fn sign(file: &Path, key: &Path, out: Option<&Path>) -> Result<String, String> {
    let key = SecretKey::parse(&read_text(key)?).map_err(|m| format!("{}: {m}", key.display()))?;
    let signature = key.sign(&read(file)?);
    let out = out.map_or_else(|| with_ext(file, ".sig"), Path::to_path_buf);
    std::fs::write(&out, format!("{signature}\n"))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!(
        "signed by key {}: {}\n{signature}\n",
        key.public().key_id(),
        out.display()
    ))
}

/// A `--key` argument: a public key itself or a file holding one.
pub fn public_key_arg(arg: &str) -> Result<PublicKey, String> {
    PublicKey::parse(arg).or_else(|_| {
        let path = Path::new(arg);
        PublicKey::parse(&read_text(path)?).map_err(|m| format!("{arg}: {m}"))
    })
}

/// Checks `file` against its signature (`sig`, default `FILE.sig`) and the
/// trusted keys. `Err` says why it would be refused at upload.
pub fn verify(file: &Path, sig: Option<&Path>, trusted: &[PublicKey]) -> Result<String, String> {
    if trusted.is_empty() {
        return Err(
            "no trusted keys: give --key or set [plugins] trusted_keys in the config".into(),
        );
    }
    let sig_path = sig.map_or_else(|| with_ext(file, ".sig"), Path::to_path_buf);
    let text = read_text(&sig_path)?;
    let sha256 = Sha256::digest(read(file)?);
    match trust::check(&sha256, Some(&text), trusted, true) {
        Ok(Some(v)) => Ok(format!(
            "ok: sha256 {} signed by trusted key {}\n",
            hex::encode(sha256),
            v.key_id
        )),
        Ok(None) => Err("unsigned".into()),
        Err(e) => Err(format!("{}: {e}", e.reason())),
    }
}
