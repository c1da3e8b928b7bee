//! The compiled plugins kept in memory: at most `plugins.resident_plugins`
//! of them, least recently used dropped first. A dropped one costs only its
//! description ([`LoadedPlugin`](super::LoadedPlugin)); its next call maps
//! it back from the compile cache. Deliveries running on a dropped one keep
//! it (an `Arc` inside wasmtime) until they finish.

use std::sync::Mutex;

use hashlink::LruCache;

use super::bindings::DelivererPre;
use super::host_api::State;

pub(crate) struct Resident {
    lru: Mutex<LruCache<String, DelivererPre<State>>>,
}

impl Resident {
    pub(crate) fn new(bound: u32) -> Self {
        Self {
            lru: Mutex::new(LruCache::new(bound.max(1) as usize)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, DelivererPre<State>>> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The component, if resident; marks it most recently used.
    pub(crate) fn get(&self, sha256: &str) -> Option<DelivererPre<State>> {
        self.lock().get(sha256).cloned()
    }

    /// Keeps `pre`, dropping the least recently used past the bound.
    pub(crate) fn insert(&self, sha256: &str, pre: DelivererPre<State>) {
        self.lock().insert(sha256.to_string(), pre);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
