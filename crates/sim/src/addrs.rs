//! Addresses: honest nodes spread over many /16 subnets grouped into
//! autonomous systems, attackers packed into few, all publicly routable so
//! the address manager's groups work as on the Internet.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use strata_node::rng::Rng;

/// The port every simulated node listens on.
pub const PORT: u16 = 7710;

/// Hands out distinct public IPv4 addresses, by /16 subnet.
#[derive(Debug)]
pub struct Allocator {
    used: HashSet<u32>,
    subnets_used: HashSet<u16>,
    rng: Rng,
}

/// Whether the /16 `a.b` is publicly routable (not private, loopback,
/// link-local, shared, multicast, reserved or documentation space).
fn public(a: u8, b: u8) -> bool {
    !matches!(
        (a, b),
        (0 | 10 | 127, _)
            | (100, 64..=127)
            | (169, 254)
            | (172, 16..=31)
            | (192, 168)
            | (192, 0)
            | (198, 18..=19)
            | (198, 51)
            | (203, 0)
            | (224..=255, _)
    )
}

impl Allocator {
    /// An allocator drawing from `seed`.
    pub fn new(seed: u64) -> Allocator {
        Allocator {
            used: HashSet::new(),
            subnets_used: HashSet::new(),
            rng: Rng::new(seed),
        }
    }

    /// `n` distinct public /16 subnets no other call has given.
    pub fn subnets(&mut self, n: usize) -> Vec<u16> {
        let mut out = Vec::with_capacity(n);
        // There are about 57,000 public /16s; asking for more than remain
        // stops at what there is.
        let mut misses = 0;
        while out.len() < n && misses < 1_000_000 {
            let s = u16::try_from(self.rng.below(65_536)).unwrap_or(0);
            let [a, b] = s.to_be_bytes();
            if public(a, b) && self.subnets_used.insert(s) {
                out.push(s);
            } else {
                misses += 1;
            }
        }
        out
    }

    /// A new address in subnet `s`.
    pub fn address(&mut self, s: u16) -> SocketAddr {
        let [a, b] = s.to_be_bytes();
        loop {
            let c = u8::try_from(self.rng.below(256)).unwrap_or(0);
            let d = u8::try_from(1 + self.rng.below(254)).unwrap_or(1);
            let ip = u32::from_be_bytes([a, b, c, d]);
            if self.used.insert(ip) {
                return SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), PORT);
            }
            if self.used.len() >= 65_536 * self.subnets_used.len().max(1) {
                // Unreachable with the bounds the parameters keep (a /16
                // holds 65,024 addresses); give a repeat rather than spin.
                return SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), PORT);
            }
        }
    }

    /// The random generator, for choosing among subnets.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

/// The /16 subnet of an IPv4 address.
pub fn subnet_of(addr: &SocketAddr) -> u16 {
    match addr.ip() {
        IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            u16::from_be_bytes([a, b])
        }
        IpAddr::V6(_) => 0,
    }
}
