//! Who may open a realtime connection: a cap per host and one per client
//! address, so a single client cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus::IntGauge;

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `realtime.max_connections` open on this host.
    HostFull,
    /// `realtime.max_connections_per_ip` open from this address.
    AddressFull,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::HostFull => "host_limit",
            Refusal::AddressFull => "address_limit",
        }
    }
}

/// The open realtime connections of this host.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
    gauge: IntGauge,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

impl Connections {
    pub fn new(max: usize, max_per_ip: usize, gauge: IntGauge) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_ip,
            open: Mutex::new(Open::default()),
            gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one connection from `ip`, freed when the permit drops.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut open = self.lock();
        if open.total >= self.max {
            return Err(Refusal::HostFull);
        }
        let from_ip = open.by_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::AddressFull);
        }
        *from_ip += 1;
        open.total += 1;
        self.gauge.set(open.total as i64);
        Ok(Permit {
            connections: self.clone(),
            ip,
        })
    }

    pub fn open(&self) -> usize {
        self.lock().total
    }
}

pub struct Permit {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let c = &self.connections;
        let mut open = c.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // Addresses leave the map with their last connection.
                open.by_ip.remove(&self.ip);
            }
        }
        c.gauge.set(open.total as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_per_host_and_frees_on_drop() {
        let c = Connections::new(3, 2, IntGauge::new("g", "g").unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = c.admit(a).unwrap();
        let _a2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).err(), Some(Refusal::AddressFull));
        let _b1 = c.admit(b).unwrap();
        assert_eq!(c.admit(b).err(), Some(Refusal::HostFull));
        drop(a1);
        assert_eq!(c.open(), 2);
        assert_eq!(c.gauge.get(), 2);
        let _a3 = c.admit(a).unwrap();
        assert_eq!(c.open(), 3);
    }
}
