//! Network groups: the unit of diversity for outbound connections, address
//! buckets and inbound eviction.
//!
//! IPv4 addresses group by /16 and IPv6 by /32, as in Bitcoin Core. An
//! IPv4-mapped IPv6 address groups as its IPv4 address. Addresses that are
//! not publicly routable (loopback, private, link-local, unique-local) are
//! refused by the address book, unless the local-network setting is on; then
//! each such address is a group of its own, and so is each port of a peer's
//! address ([`Grouping::addr_group`]), so that a network of nodes on
//! 127.0.0.0/8, even all on 127.0.0.1, behaves like one spread over the
//! Internet.

use std::net::{IpAddr, SocketAddr};

/// A network group: a family tag and the address's group prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetGroup([u8; 17]);

impl NetGroup {
    /// The group's bytes, for hashing.
    pub fn as_bytes(&self) -> &[u8; 17] {
        &self.0
    }
}

/// How addresses are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grouping {
    /// Treat every loopback or private address as a routable group of its own.
    pub local_network: bool,
}

const TAG_V4: u8 = 4;
const TAG_V6: u8 = 6;
const TAG_LOCAL: u8 = 0xfe;

impl Grouping {
    /// The group of `ip`, or `None` when it is not routable under this
    /// setting.
    pub fn group(&self, ip: IpAddr) -> Option<NetGroup> {
        let ip = canonical(ip);
        let mut bytes = [0u8; 17];
        if !is_routable(ip) {
            if !self.local_network || ip.is_unspecified() || ip.is_multicast() {
                return None;
            }
            bytes[0] = TAG_LOCAL;
            match ip {
                IpAddr::V4(v4) => bytes[1..5].copy_from_slice(&v4.octets()),
                IpAddr::V6(v6) => bytes[1..17].copy_from_slice(&v6.octets()),
            }
            return Some(NetGroup(bytes));
        }
        match ip {
            IpAddr::V4(v4) => {
                bytes[0] = TAG_V4;
                bytes[1..3].copy_from_slice(&v4.octets()[..2]);
            }
            IpAddr::V6(v6) => {
                bytes[0] = TAG_V6;
                bytes[1..5].copy_from_slice(&v6.octets()[..4]);
            }
        }
        Some(NetGroup(bytes))
    }
}

impl Grouping {
    /// The group of a peer's address: [`group`](Self::group) of its IP, and
    /// under the local-network setting, its port too for a local address.
    pub fn addr_group(&self, addr: SocketAddr) -> Option<NetGroup> {
        let mut group = self.group(addr.ip())?;
        if group.0[0] == TAG_LOCAL {
            // The IPv4 bytes end at 5 and IPv6's at 17: the port goes where
            // IPv4 leaves room, and over the last two bytes for IPv6, which
            // keeps groups distinct per address for any realistic devnet.
            let port = addr.port().to_be_bytes();
            if addr.is_ipv4() || canonical(addr.ip()).is_ipv4() {
                group.0[5..7].copy_from_slice(&port);
            } else {
                group.0[15] ^= port[0];
                group.0[16] ^= port[1];
            }
        }
        Some(group)
    }
}

/// Prefix of the subnet misbehaviour adds up in, for IPv4.
pub const SUBNET_V4_PREFIX: u8 = 24;
/// Prefix of the subnet misbehaviour adds up in, for IPv6 (a site).
pub const SUBNET_V6_PREFIX: u8 = 48;
const SUBNET_V4_MASK: u32 = u32::MAX << (32 - SUBNET_V4_PREFIX as u32);
const SUBNET_V6_MASK: u128 = u128::MAX << (128 - SUBNET_V6_PREFIX as u32);

/// The subnet a routable address's misbehaviour also counts against: its
/// base address and prefix length (/24, or /48 for IPv6). `None` for an
/// address that is not routable: a local network's hosts are each their own.
pub fn subnet(ip: IpAddr) -> Option<(IpAddr, u8)> {
    let ip = canonical(ip);
    if !is_routable(ip) {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => (
            IpAddr::V4((u32::from(v4) & SUBNET_V4_MASK).into()),
            SUBNET_V4_PREFIX,
        ),
        IpAddr::V6(v6) => (
            IpAddr::V6((u128::from(v6) & SUBNET_V6_MASK).into()),
            SUBNET_V6_PREFIX,
        ),
    })
}

/// Whether `ip` is inside the subnet `base`/`prefix`.
pub fn in_subnet(ip: IpAddr, base: IpAddr, prefix: u8) -> bool {
    match (canonical(ip), base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let keep = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            u32::from(a) & keep == u32::from(b) & keep
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let keep = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            u128::from(a) & keep == u128::from(b) & keep
        }
        _ => false,
    }
}

/// `ip` with an IPv4-mapped IPv6 address turned into IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` can be reached across the Internet.
pub fn is_routable(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_groups_by_16_and_ipv6_by_32() {
        let g = Grouping::default();
        assert_eq!(g.group(ip("8.8.1.1")), g.group(ip("8.8.200.3")));
        assert_ne!(g.group(ip("8.8.1.1")), g.group(ip("8.9.1.1")));
        assert_eq!(g.group(ip("2a01:4f8::1")), g.group(ip("2a01:4f8:ffff::2")));
        assert_ne!(g.group(ip("2a01:4f8::1")), g.group(ip("2a01:4f9::1")));
        assert_eq!(g.group(ip("::ffff:8.8.1.1")), g.group(ip("8.8.7.7")));
    }

    #[test]
    fn local_addresses_need_the_local_network_setting() {
        let g = Grouping::default();
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "::1",
            "fd00::1",
            "0.0.0.0",
        ] {
            assert_eq!(g.group(ip(a)), None, "{a}");
        }
        let local = Grouping {
            local_network: true,
        };
        assert_ne!(local.group(ip("127.0.0.1")), local.group(ip("127.0.0.2")));
        assert_eq!(local.group(ip("127.0.0.1")), local.group(ip("127.0.0.1")));
        assert_eq!(local.group(ip("0.0.0.0")), None);
        assert_eq!(local.group(ip("8.8.1.1")), g.group(ip("8.8.2.2")));
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        assert_ne!(local.addr_group(a), local.addr_group(b));
        let public: SocketAddr = "8.8.1.1:7000".parse().unwrap();
        assert_eq!(local.addr_group(public), local.group(public.ip()));
    }
}
