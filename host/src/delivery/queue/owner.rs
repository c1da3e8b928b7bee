//! Who holds a lease: `{host}/{role}/{run}`. The host part is the data
//! dir's [`HostId`], so a server restarted on the same data dir recognises
//! the leases of its previous runs (no other process can be working on
//! them) and takes them back at once; one-off CLI commands lease under
//! their own role, so a server starting never takes over their work.

use crate::host_id::HostId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `postern serve`: the workers of a long-running server.
    Server,
    /// A one-off command (`send-test`).
    Cli,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Server => "serve",
            Role::Cli => "cli",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LeaseOwner {
    id: String,
    host: HostId,
    role: Role,
}

impl LeaseOwner {
    /// A new run of `role` on `host`.
    pub fn new(host: &HostId, role: Role) -> Self {
        let run = uuid::Uuid::new_v4().simple();
        Self {
            id: format!("{host}/{}/{run}", role.as_str()),
            host: host.clone(),
            role,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// A `LIKE` pattern for the leases of earlier server runs on this host
    /// (this run's own included: callers exclude it by id). Only a server
    /// takes leases back.
    pub fn earlier_runs(&self) -> Option<String> {
        (self.role == Role::Server).then(|| format!("{}/serve/%", self.host))
    }
}
