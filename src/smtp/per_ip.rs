//! Concurrent sessions per client address: one client cannot take every one
//! of `smtp.max_connections` slots (and with NOOPs keep them).
//!
//! IPv4 clients count per address. IPv6 clients count per /64, since one
//! host usually holds a whole /64 and could otherwise open each connection
//! from a new address. IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// Sessions open per client, shared by the accept loop and the sessions.
#[derive(Clone)]
pub struct PerIpLimit {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

/// One session's place in its client's count; freed when dropped.
pub struct PeerSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl PerIpLimit {
    pub fn new(max: usize) -> PerIpLimit {
        PerIpLimit {
            open: Arc::default(),
            max,
        }
    }

    /// A slot for a new session from `ip`, or None when that client already
    /// has `max` sessions open.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<PeerSlot> {
        let client = client_of(ip);
        let mut open = lock(&self.open);
        let n = open.entry(client).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            open: self.open.clone(),
            client,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(n) = open.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// The map stays consistent even if a holder panicked (it only holds counts).
fn lock(m: &Mutex<HashMap<IpAddr, usize>>) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_client_and_frees_on_drop() {
        let limit = PerIpLimit::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = limit.try_acquire(a).unwrap();
        let _s2 = limit.try_acquire(a).unwrap();
        assert!(limit.try_acquire(a).is_none());
        assert!(limit.try_acquire(b).is_some());
        // The same client written as IPv4-mapped IPv6.
        assert!(
            limit
                .try_acquire("::ffff:127.0.0.1".parse().unwrap())
                .is_none()
        );
        drop(s1);
        assert!(limit.try_acquire(a).is_some());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let limit = PerIpLimit::new(1);
        let _s = limit
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(
            limit
                .try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none()
        );
        assert!(
            limit
                .try_acquire("2001:db8:1:3::1".parse().unwrap())
                .is_some()
        );
    }
}
