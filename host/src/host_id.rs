//! This host's identity: a random id kept in `data_dir/host-id`, the same
//! across restarts. Leases carry it, so a restarted host takes back the
//! deliveries its previous run had leased at once instead of waiting for
//! the leases to run out, and the store's write probe keys its row by it.

use std::fmt;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostId(String);

const FILE: &str = "host-id";

impl HostId {
    /// Reads the id from `data_dir`, or creates it there on first start.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(text.trim()).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a host id (32 hex digits)", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Self::random();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                f.write_all(id.0.as_bytes())?;
                f.sync_all()?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    /// An id for a process without a data dir of its own (tests).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    fn parse(s: &str) -> Option<Self> {
        (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_survives_a_restart_and_a_bad_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = HostId::load_or_create(dir.path()).unwrap();
        let b = HostId::load_or_create(dir.path()).unwrap();
        assert_eq!(a, b);
        std::fs::write(dir.path().join(FILE), "not-an-id").unwrap();
        let e = HostId::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("host-id"), "{e}");
    }
}
