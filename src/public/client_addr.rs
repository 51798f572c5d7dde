//! Who a request on the public listener comes from, for every per-client
//! limit there (the web form's hourly allowance, the chat's conversations
//! and streams): the TCP peer, unless that peer is one of
//! `web.trusted_proxies`; then the address `X-Forwarded-For` names.
//!
//! The header is read from the right: each proxy appends the address it
//! was reached from, so the rightmost entry that is not itself a trusted
//! proxy is the first hop nobody we trust vouches for — anything left of
//! it was written by the client and proves nothing. A header we cannot
//! read up to that entry (not an IP address, not text) counts as absent:
//! the limit then falls on the proxy's address, never on an address the
//! client picked. With no trusted proxies (the default), the header is
//! never read.

use crate::config::trusted_proxies::{self, ProxyNet};
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The trusted proxies, parsed once when the listener starts.
#[derive(Debug, Default, Clone)]
pub struct ClientAddr {
    trusted: Vec<ProxyNet>,
}

impl ClientAddr {
    /// From `web.trusted_proxies`. `postdesk check` (and so the daemon's
    /// start) refuses a bad entry; were one here anyway, none is trusted
    /// rather than a guess.
    pub fn new(entries: &[String]) -> ClientAddr {
        match trusted_proxies::parse_all(entries) {
            Ok(trusted) => ClientAddr { trusted },
            Err(e) => {
                tracing::error!(error = %e, "web.trusted_proxies unreadable: no proxy trusted");
                ClientAddr::default()
            }
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request from `peer` with `headers`: the
    /// one every per-client limit of the public listener counts by.
    pub fn of(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.ip().to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        match self.forwarded_client(headers) {
            Some(ip) => ip,
            None => peer,
        }
    }

    /// The rightmost `X-Forwarded-For` address that is not a trusted
    /// proxy (the leftmost when all are); None when the header is absent
    /// or unreadable before that entry. Several header lines are one list,
    /// in order (RFC 9110, 5.3).
    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut entries = Vec::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            entries.extend(value.to_str().ok()?.split(',').map(str::trim));
        }
        let mut last = None;
        for entry in entries.into_iter().rev() {
            let ip = entry.parse::<IpAddr>().ok()?.to_canonical();
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            last = Some(ip);
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(trusted: &[&str]) -> ClientAddr {
        let entries: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        ClientAddr::new(&entries)
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(X_FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 40000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = addr(&[]);
        let h = headers(&["203.0.113.7"]);
        assert_eq!(none.of(peer("127.0.0.1"), &h), ip("127.0.0.1"));
        let some = addr(&["10.0.0.0/8"]);
        assert_eq!(some.of(peer("192.0.2.1"), &h), ip("192.0.2.1"));
    }

    #[test]
    fn a_trusted_peer_forwards_the_rightmost_untrusted_address() {
        let a = addr(&["127.0.0.1", "10.0.0.0/8"]);
        let p = peer("127.0.0.1");
        assert_eq!(a.of(p, &headers(&["203.0.113.7"])), ip("203.0.113.7"));
        // The client wrote the left entry; our proxies the right ones.
        assert_eq!(
            a.of(p, &headers(&["198.51.100.1, 203.0.113.7, 10.1.1.1"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            a.of(p, &headers(&["198.51.100.1", "203.0.113.7, 10.1.1.1"])),
            ip("203.0.113.7"),
            "two header lines are one list"
        );
        // Garbage left of the client's entry is the client's own writing.
        assert_eq!(
            a.of(p, &headers(&["not-an-ip, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        assert_eq!(a.of(p, &headers(&["10.2.2.2, 10.1.1.1"])), ip("10.2.2.2"));
        assert_eq!(
            a.of(peer("::ffff:127.0.0.1"), &headers(&["2001:db8::5"])),
            ip("2001:db8::5")
        );
        assert_eq!(
            a.of(p, &headers(&["::ffff:203.0.113.7"])),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_missing_or_unreadable_header_leaves_the_peer() {
        let a = addr(&["127.0.0.1"]);
        let p = peer("127.0.0.1");
        assert_eq!(a.of(p, &HeaderMap::new()), ip("127.0.0.1"));
        for bad in [
            "",
            "garbage",
            "203.0.113.7, garbage",
            "203.0.113.7:443",
            "203.0.113.7,",
        ] {
            assert_eq!(a.of(p, &headers(&[bad])), ip("127.0.0.1"), "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"203.0.113.\xff").unwrap(),
        );
        assert_eq!(a.of(p, &h), ip("127.0.0.1"), "not text");
    }
}
