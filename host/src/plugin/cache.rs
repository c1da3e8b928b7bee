//! Compiled plugins on disk, in `<data_dir>/plugin-cache/`:
//!
//! * `<sha256>-<engine>.v2.cwasm`: the artifact wasmtime maps (not copies)
//!   into memory when a plugin is used, and `….cwasm.tag`:
//!   `HMAC-SHA256(key, file name ‖ artifact)`, with a random key kept in the
//!   same directory (mode 0600). An artifact whose tag does not verify — one
//!   the host did not write, truncated, tampered with, or another plugin's
//!   renamed — is never handed to wasmtime's (unsafe) deserializer; it is
//!   recompiled and replaced.
//! * `<sha256>.wasm`: the component itself (its name is its digest, checked
//!   on every read), from which a missing or damaged artifact is recompiled.
//! * File names are made of hex digests only, opened through a cap-std
//!   `Dir`: no tenant-provided name ever reaches a path.
//! * `<engine>` is a digest of wasmtime's precompile compatibility hash, so a
//!   different wasmtime version or engine config misses the cache.
//!
//! The tag is checked through an open descriptor, and wasmtime maps that
//! same file (`/proc/self/fd/N`), so a file renamed over the artifact after
//! the check is not the one mapped. The host only ever replaces files by
//! rename; what it mapped stays as verified unless someone with write
//! access to the data dir edits the file in place (who could also read the
//! key).

use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Read};
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

pub(crate) struct CompileCache {
    dir: Dir,
    key: [u8; 32],
    engine_tag: String,
}

impl CompileCache {
    pub(crate) fn open(data_dir: &Path, engine: &wasmtime::Engine) -> Result<Self, String> {
        let path = data_dir.join("plugin-cache");
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let dir = Dir::open_ambient_dir(&path, ambient_authority())
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let key = load_or_create_key(&dir).map_err(|e| format!("{}/key: {e}", path.display()))?;
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_tag = hex::encode(&h.0.finalize()[..8]);
        Ok(Self {
            dir,
            key,
            engine_tag,
        })
    }

    fn name(&self, sha256: &str) -> String {
        debug_assert!(sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        format!("{sha256}-{}.v2.cwasm", self.engine_tag)
    }

    fn mac(&self, name: &str) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(name.as_bytes());
        mac.update(&[0]);
        Some(mac)
    }

    /// The compiled component, mapped from its verified artifact, or `None`
    /// (missing, foreign or damaged: the caller recompiles).
    pub(crate) fn component(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<Component> {
        let name = self.name(sha256);
        let tag = self.dir.read(format!("{name}.tag")).ok()?;
        let mut file = self.dir.open(&name).ok()?.into_std();
        let mut mac = self.mac(&name)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => mac.update(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        mac.verify_slice(&tag).ok()?;
        // SAFETY: the HMAC (keyed by a secret only this host holds) over
        // this very file verified just now: the host wrote it, with
        // `precompile_component` of an engine of the same compatibility
        // hash. The path names the descriptor verified, not the directory
        // entry (see the module doc).
        let loaded = unsafe { map(engine, &file) };
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot map a cached plugin; recompiling");
                None
            }
        }
    }

    /// Stores an artifact and then its tag, each atomically (a temporary
    /// file, then rename). A crash between the two leaves an artifact whose
    /// tag does not verify: recompiled on next use.
    pub(crate) fn put(&self, sha256: &str, artifact: &[u8]) -> Result<(), String> {
        let name = self.name(sha256);
        let mut mac = self.mac(&name).ok_or("hmac key")?;
        mac.update(artifact);
        let tag = mac.finalize().into_bytes();
        self.write(&name, artifact)?;
        self.write(&format!("{name}.tag"), &tag)
    }

    /// The component whose digest is `sha256`, if kept and intact.
    pub(crate) fn source(&self, sha256: &str) -> Option<Vec<u8>> {
        let bytes = self.dir.read(format!("{sha256}.wasm")).ok()?;
        (hex::encode(Sha256::digest(&bytes)) == sha256).then_some(bytes)
    }

    /// Keeps the component (named by its digest) for recompiling.
    pub(crate) fn put_source(&self, sha256: &str, wasm: &[u8]) -> Result<(), String> {
        let name = format!("{sha256}.wasm");
        if self
            .dir
            .metadata(&name)
            .is_ok_and(|m| m.len() == wasm.len() as u64)
        {
            return Ok(());
        }
        self.write(&name, wasm)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let tmp = format!("{name}.{:016x}.tmp", rand::random::<u64>());
        self.dir
            .write(&tmp, bytes)
            .map_err(|e| format!("write: {e}"))?;
        self.dir
            .rename(&tmp, &self.dir, name)
            .map_err(|e| format!("rename: {e}"))
    }
}

/// Maps `file` (Linux: through `/proc/self/fd`, the inode verified) or,
/// elsewhere, reads it again and copies it into code memory.
///
/// # Safety
/// As [`Component::deserialize_file`]: `file` holds an artifact this host's
/// engine wrote.
unsafe fn map(engine: &wasmtime::Engine, file: &std::fs::File) -> wasmtime::Result<Component> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        // SAFETY: forwarded from the caller.
        unsafe { Component::deserialize_file(engine, path) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        let mut bytes = Vec::new();
        f.seek(SeekFrom::Start(0))?;
        f.read_to_end(&mut bytes)?;
        // SAFETY: forwarded from the caller.
        unsafe { Component::deserialize(engine, &bytes) }
    }
}

fn load_or_create_key(dir: &Dir) -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    match dir.read("key") {
        Ok(k) if k.len() == 32 => {
            key.copy_from_slice(&k);
            return Ok(key);
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    rand::rng().fill_bytes(&mut key);
    let tmp = format!("key.{:016x}.tmp", rand::random::<u64>());
    {
        use std::io::Write;
        let mut opts = cap_std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = dir.open_with(&tmp, &opts)?;
        f.write_all(&key)?;
        f.sync_all()?;
    }
    dir.rename(&tmp, dir, "key")?;
    Ok(key)
}

/// Feeds `Hash` into SHA-256, for a digest that is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
