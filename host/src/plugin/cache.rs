//! Compiled plugins on disk: `<data_dir>/plugin-cache/<sha256>-<engine>.cwasm`.
//!
//! * File names are made of hex digests only, opened through a cap-std
//!   `Dir`: no tenant-provided name ever reaches a path.
//! * Each file is `HMAC-SHA256(key, artifact) ‖ artifact`, with a random key
//!   kept in the same directory (mode 0600). A file that does not verify — one
//!   the host did not write, truncated or tampered — is never handed to
//!   wasmtime's (unsafe) deserializer; it is recompiled and replaced.
//! * `<engine>` is a digest of wasmtime's precompile compatibility hash, so a
//!   different wasmtime version or engine config misses the cache.

use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 32;

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
        format!("{sha256}-{}.cwasm", self.engine_tag)
    }

    /// A verified artifact, or `None` (missing, foreign or damaged).
    pub(crate) fn get(&self, sha256: &str) -> Option<Vec<u8>> {
        let mut bytes = self.dir.read(self.name(sha256)).ok()?;
        if bytes.len() <= TAG_LEN {
            return None;
        }
        let artifact = bytes.split_off(TAG_LEN);
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(&artifact);
        mac.verify_slice(&bytes).ok()?;
        Some(artifact)
    }

    /// Stores an artifact atomically (write a temporary file, then rename).
    pub(crate) fn put(&self, sha256: &str, artifact: &[u8]) -> Result<(), String> {
        let mut mac = HmacSha256::new_from_slice(&self.key).map_err(|e| e.to_string())?;
        mac.update(artifact);
        let mut bytes = mac.finalize().into_bytes().to_vec();
        bytes.extend_from_slice(artifact);
        let name = self.name(sha256);
        let tmp = format!("{name}.{:016x}.tmp", rand::random::<u64>());
        self.dir
            .write(&tmp, &bytes)
            .map_err(|e| format!("write: {e}"))?;
        self.dir
            .rename(&tmp, &self.dir, &name)
            .map_err(|e| format!("rename: {e}"))
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
