//! The time of the last storage fault, which the pool's hooks compare
//! connection ages with (see `health.rs`).

use std::sync::Mutex;
use std::time::Instant;

use sqlx::pool::PoolConnectionMetadata;

use super::{Result, StoreError};

/// When a statement last failed with a broken-class error.
#[derive(Debug, Default)]
pub struct FaultMark(Mutex<Option<Instant>>);

impl FaultMark {
    pub fn mark(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Marks the fault if `r` is an error `broken` classes as such
    /// (the backend's `is_broken`); passes `r` on.
    pub fn watch<T>(&self, r: Result<T>, broken: fn(&sqlx::Error) -> bool) -> Result<T> {
        if let Err(StoreError::Db(e)) = &r
            && broken(e)
        {
            self.mark();
        }
        r
    }

    /// Whether a connection of this age was opened before the last fault
    /// (and so may have seen it): such a connection is closed, not reused.
    pub fn predates_fault(&self, meta: &PoolConnectionMetadata) -> bool {
        let last = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (last, Instant::now().checked_sub(meta.age)) {
            (Some(fault), Some(opened)) => opened <= fault,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The classes of sqlx error every backend treats as "this connection may
/// be broken": the transport failed, or the driver lost its footing.
pub fn transport_broken(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}
