//! `web.trusted_proxies`: the reverse proxies whose `X-Forwarded-For` the
//! public listener believes. An entry is an address (`127.0.0.1`, `::1`)
//! or a network in CIDR form (`10.0.0.0/8`, `fd00::/8`). Parsed here, so
//! `postdesk check` refuses a bad entry with its key and the listener
//! matches peers against the very same networks.

use std::net::IpAddr;
use std::str::FromStr;

/// One trusted address or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    /// The network address, host bits cleared.
    net: IpAddr,
    /// Leading bits that must match: 32 or 128 for a single address.
    prefix: u8,
}

/// Why an entry is not an address or CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyNetError {
    #[error("{0:?} is not an IP address or CIDR network (e.g. 10.0.0.0/8)")]
    Syntax(String),
    #[error("{entry:?}: the prefix length must be at most {max}")]
    Prefix { entry: String, max: u8 },
}

impl ProxyNet {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 peer
    /// (`::ffff:10.1.2.3`, as a dual-stack listener reports it) is matched
    /// as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for ProxyNet {
    type Err = ProxyNetError;

    fn from_str(entry: &str) -> Result<ProxyNet, ProxyNetError> {
        let syntax = || ProxyNetError::Syntax(entry.to_string());
        let (addr, prefix) = match entry.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry.trim(), None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| syntax())?;
        let ip = ip.to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ProxyNetError::Prefix {
                    entry: entry.to_string(),
                    max,
                })?,
            Some(_) => return Err(syntax()),
        };
        let net = match ip {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask_u32(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask_u128(prefix)).into()),
        };
        Ok(ProxyNet { net, prefix })
    }
}

/// Every entry of `web.trusted_proxies`; Err names the first bad one.
pub fn parse_all(entries: &[String]) -> Result<Vec<ProxyNet>, ProxyNetError> {
    entries.iter().map(|e| e.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks_match_their_members_only() {
        let one: ProxyNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(one.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped peer");
        let ten: ProxyNet = "10.1.2.3/8".parse().unwrap();
        assert!(ten.contains(ip("10.255.0.1")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::1")));
        let v6: ProxyNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let all: ProxyNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!("::1/128".parse::<ProxyNet>().unwrap().contains(ip("::1")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "host",
            "1.2.3.4:80",
        ] {
            assert!(
                matches!(bad.parse::<ProxyNet>(), Err(ProxyNetError::Syntax(_))),
                "{bad:?}"
            );
        }
        for bad in ["10.0.0.0/33", "::/129", "1.2.3.4/300"] {
            assert!(
                matches!(bad.parse::<ProxyNet>(), Err(ProxyNetError::Prefix { .. })),
                "{bad:?}"
            );
        }
        let err = parse_all(&["127.0.0.1".into(), "nope".into()]).unwrap_err();
        assert_eq!(err, ProxyNetError::Syntax("nope".into()));
    }
}
