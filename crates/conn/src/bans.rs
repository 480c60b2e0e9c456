//! Bans by address and by subnet, with expiry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A subnet: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    base: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// The subnet of `addr` with `prefix` leading bits (capped at the
    /// address's width).
    pub fn new(addr: IpAddr, prefix: u8) -> Subnet {
        let prefix = prefix.min(width(addr));
        Subnet {
            base: mask(addr, prefix),
            prefix,
        }
    }

    /// Whether `addr` is inside.
    pub fn contains(&self, addr: IpAddr) -> bool {
        width(addr) == width(self.base) && mask(addr, self.prefix) == self.base
    }
}

fn width(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// Most addresses, and most subnets, banned at once. Past this the ban
/// ending soonest is dropped to make room.
pub const MAX_BANS: usize = 65_536;

/// Banned addresses and subnets, each until an instant.
#[derive(Debug, Default)]
pub struct Bans {
    addrs: HashMap<IpAddr, Instant>,
    subnets: HashMap<Subnet, Instant>,
}

impl Bans {
    /// Bans `addr` until `until` (extending an earlier ban, never shortening it).
    pub fn ban(&mut self, addr: IpAddr, until: Instant) {
        insert_capped(&mut self.addrs, addr, until);
    }

    /// Bans every address in `subnet` until `until`.
    pub fn ban_subnet(&mut self, subnet: Subnet, until: Instant) {
        insert_capped(&mut self.subnets, subnet, until);
    }

    /// Lifts the ban on `addr`.
    pub fn unban(&mut self, addr: IpAddr) {
        self.addrs.remove(&addr);
    }

    /// Lifts the ban on `subnet`.
    pub fn unban_subnet(&mut self, subnet: Subnet) {
        self.subnets.remove(&subnet);
    }

    /// Whether `addr` is banned at `now`. An expired ban found on the way
    /// is forgotten.
    pub fn is_banned(&mut self, addr: IpAddr, now: Instant) -> bool {
        match self.addrs.get(&addr) {
            Some(until) if *until > now => return true,
            Some(_) => {
                self.addrs.remove(&addr);
            }
            None => {}
        }
        self.subnets.retain(|_, until| *until > now);
        self.subnets.keys().any(|subnet| subnet.contains(addr))
    }
}

/// Inserts or extends a ban, dropping the one ending soonest when full.
fn insert_capped<K: std::hash::Hash + Eq + Copy>(
    bans: &mut HashMap<K, Instant>,
    key: K,
    until: Instant,
) {
    if let Some(existing) = bans.get_mut(&key) {
        *existing = (*existing).max(until);
        return;
    }
    if bans.len() >= MAX_BANS
        && let Some(soonest) = bans
            .iter()
            .min_by_key(|(_, until)| **until)
            .map(|(key, _)| *key)
    {
        bans.remove(&soonest);
    }
    bans.insert(key, until);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn bans_expire_and_extend_but_never_shorten() {
        let t0 = Instant::now();
        let mut bans = Bans::default();
        bans.ban(ip("10.1.2.3"), t0 + Duration::from_secs(60));
        bans.ban(ip("10.1.2.3"), t0 + Duration::from_secs(10));
        assert!(bans.is_banned(ip("10.1.2.3"), t0 + Duration::from_secs(59)));
        assert!(!bans.is_banned(ip("10.1.2.3"), t0 + Duration::from_secs(60)));
        assert!(!bans.is_banned(ip("10.1.2.4"), t0));
    }

    #[test]
    fn subnets_cover_their_addresses_only() {
        let t0 = Instant::now();
        let mut bans = Bans::default();
        bans.ban_subnet(
            Subnet::new(ip("192.0.2.77"), 24),
            t0 + Duration::from_secs(60),
        );
        bans.ban_subnet(
            Subnet::new(ip("2001:db8::1"), 32),
            t0 + Duration::from_secs(60),
        );
        assert!(bans.is_banned(ip("192.0.2.1"), t0));
        assert!(!bans.is_banned(ip("192.0.3.1"), t0));
        assert!(bans.is_banned(ip("2001:db8:ffff::9"), t0));
        assert!(!bans.is_banned(ip("2001:db9::1"), t0));
        // Prefixes wider than the address are capped; /0 covers everything.
        assert!(Subnet::new(ip("192.0.2.1"), 99).contains(ip("192.0.2.1")));
        assert!(Subnet::new(ip("192.0.2.1"), 0).contains(ip("8.8.8.8")));
        assert!(!Subnet::new(ip("192.0.2.1"), 0).contains(ip("::1")));
        bans.unban_subnet(Subnet::new(ip("192.0.2.0"), 24));
        assert!(!bans.is_banned(ip("192.0.2.1"), t0));
    }

    #[test]
    fn the_ban_list_is_capped() {
        let t0 = Instant::now();
        let mut bans = Bans::default();
        let max = u32::try_from(MAX_BANS).unwrap();
        for i in 0..=max {
            bans.ban(
                IpAddr::from(i.to_be_bytes()),
                t0 + Duration::from_secs(u64::from(i) + 1),
            );
        }
        assert_eq!(bans.addrs.len(), MAX_BANS);
        // The ban ending soonest made room for the last one.
        assert!(!bans.is_banned(IpAddr::from(0u32.to_be_bytes()), t0));
        assert!(bans.is_banned(IpAddr::from(max.to_be_bytes()), t0));
    }
}
