//! Kept-alive connections of one channel: HTTP/1.1 connections a plugin
//! opened, handed to the channel's next request to the same place.
//!
//! * One pool per channel sandbox ([`EgressPolicy`](super::EgressPolicy)):
//!   a tenant's channel never sees another channel's, let alone another
//!   tenant's, connections. Saving a channel (new `allowedHosts`, config or
//!   secrets) builds a new sandbox, so connections opened under the old
//!   allow-list are never reused; they close when their last request ends.
//! * Keyed by scheme, host and port (for https the host is the TLS server
//!   name the certificate was checked against) and by the address
//!   connected to: a connection is reused only if that address is among
//!   the ones this request's resolution vetted.
//! * Bounded: at most [`MAX_IDLE`] idle connections per key, each dropped
//!   after [`IDLE_TIMEOUT`] unused (a reaper runs while any is idle).
//! * A connection is reused only when hyper says it is ready (the previous
//!   response was read to the end and the peer did not close it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

/// Idle connections kept per (scheme, host, port).
pub(super) const MAX_IDLE: usize = 8;
/// An idle connection is closed after this long unused (below common
/// server keep-alive timeouts, so the peer rarely closes it first).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) type Sender = SendRequest<Full<Bytes>>;

#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) https: bool,
    pub(super) host: String,
    pub(super) port: u16,
}

struct Idle {
    sender: Sender,
    peer: SocketAddr,
    since: Instant,
}

#[derive(Default)]
struct Inner {
    idle: HashMap<Key, Vec<Idle>>,
    reaping: bool,
}

#[derive(Default)]
pub(crate) struct KeepAlive {
    inner: Arc<Mutex<Inner>>,
}

impl KeepAlive {
    fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
        inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready idle connection to `key` at one of `vetted`, if any.
    pub(super) fn take(&self, key: &Key, vetted: &[SocketAddr]) -> Option<(Sender, SocketAddr)> {
        let mut inner = Self::lock(&self.inner);
        let list = inner.idle.get_mut(key)?;
        list.retain(|i| !i.sender.is_closed() && i.since.elapsed() < IDLE_TIMEOUT);
        let at = list
            .iter()
            .rposition(|i| i.sender.is_ready() && vetted.contains(&i.peer))?;
        let i = list.swap_remove(at);
        Some((i.sender, i.peer))
    }

    /// Offers a connection back once its request has been sent; hyper
    /// holds further requests until the response body was read.
    pub(super) fn put(&self, key: Key, sender: Sender, peer: SocketAddr) {
        let mut inner = Self::lock(&self.inner);
        let list = inner.idle.entry(key).or_default();
        if list.len() >= MAX_IDLE {
            return;
        }
        list.push(Idle {
            sender,
            peer,
            since: Instant::now(),
        });
        if !inner.reaping {
            inner.reaping = true;
            tokio::spawn(reap(Arc::downgrade(&self.inner)));
        }
    }
}

/// Drops expired idle connections every few seconds while any is idle
/// and the pool exists.
async fn reap(inner: Weak<Mutex<Inner>>) {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT / 3).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut g = KeepAlive::lock(&inner);
        g.idle.retain(|_, list| {
            list.retain(|i| !i.sender.is_closed() && i.since.elapsed() < IDLE_TIMEOUT);
            !list.is_empty()
        });
        if g.idle.is_empty() {
            g.reaping = false;
            return;
        }
    }
}
