//! Bans by address and by subnet, with expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Instant;

/// A subnet: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// The family (IPv6 or not) and the prefix length.
    fn kind(&self) -> (bool, u8) {
        (self.base.is_ipv6(), self.prefix)
    }
}

fn width(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with all but its first `prefix` bits cleared; a prefix past the
/// address's width keeps every bit.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    let cleared = |width: u32| width.saturating_sub(u32::from(prefix));
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(cleared(32)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(cleared(128)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// Most addresses, and most subnets, banned at once. Past this the ban
/// ending soonest is dropped to make room.
pub const MAX_BANS: usize = 65_536;

/// Banned addresses and subnets, each until an instant.
///
/// Checking an address costs a lookup per subnet size in use, not a scan of
/// the subnet bans; making room in a full list costs a logarithm.
#[derive(Debug, Default)]
pub struct Bans {
    addrs: Expiring<IpAddr>,
    subnets: Expiring<Subnet>,
    /// How many subnet bans there are of each (family, prefix length).
    prefixes: BTreeMap<(bool, u8), usize>,
}

impl Bans {
    /// Bans `addr` until `until` (extending an earlier ban, never shortening it).
    pub fn ban(&mut self, addr: IpAddr, until: Instant) {
        self.addrs.insert(addr, until);
    }

    /// Bans every address in `subnet` until `until`.
    pub fn ban_subnet(&mut self, subnet: Subnet, until: Instant) {
        let (added, dropped) = self.subnets.insert(subnet, until);
        if let Some(dropped) = dropped {
            self.forget_prefix(dropped);
        }
        if added {
            // At most `MAX_BANS`.
            let count = self.prefixes.entry(subnet.kind()).or_default();
            *count = count.saturating_add(1);
        }
    }

    /// Lifts the ban on `addr`.
    pub fn unban(&mut self, addr: IpAddr) {
        self.addrs.remove(&addr);
    }

    /// Lifts the ban on `subnet`.
    pub fn unban_subnet(&mut self, subnet: Subnet) {
        if self.subnets.remove(&subnet) {
            self.forget_prefix(subnet);
        }
    }

    /// Whether `addr` is banned at `now`. An expired ban found on the way
    /// is forgotten.
    pub fn is_banned(&mut self, addr: IpAddr, now: Instant) -> bool {
        if self.addrs.active(&addr, now) == Some(true) {
            return true;
        }
        let v6 = addr.is_ipv6();
        let prefixes: Vec<u8> = self
            .prefixes
            .range((v6, 0)..=(v6, u8::MAX))
            .map(|(&(_, prefix), _)| prefix)
            .collect();
        for prefix in prefixes {
            let subnet = Subnet::new(addr, prefix);
            match self.subnets.active(&subnet, now) {
                Some(true) => return true,
                Some(false) => self.forget_prefix(subnet),
                None => {}
            }
        }
        false
    }

    fn forget_prefix(&mut self, subnet: Subnet) {
        if let Some(count) = self.prefixes.get_mut(&subnet.kind()) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.prefixes.remove(&subnet.kind());
            }
        }
    }
}

/// Keys with expiry instants, at most [`MAX_BANS`], indexed by expiry.
#[derive(Debug)]
struct Expiring<K> {
    until: HashMap<K, Instant>,
    order: BTreeSet<(Instant, K)>,
}

impl<K> Default for Expiring<K> {
    fn default() -> Self {
        Expiring {
            until: HashMap::new(),
            order: BTreeSet::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Ord + Copy> Expiring<K> {
    /// Inserts or extends `key`'s entry. Returns whether it is new, and the
    /// key dropped to make room, if one was.
    fn insert(&mut self, key: K, until: Instant) -> (bool, Option<K>) {
        if let Some(existing) = self.until.get_mut(&key) {
            if until > *existing {
                self.order.remove(&(*existing, key));
                self.order.insert((until, key));
                *existing = until;
            }
            return (false, None);
        }
        let mut dropped = None;
        if self.until.len() >= MAX_BANS
            && let Some((_, soonest)) = self.order.pop_first()
        {
            self.until.remove(&soonest);
            dropped = Some(soonest);
        }
        self.until.insert(key, until);
        self.order.insert((until, key));
        (true, dropped)
    }

    /// Removes `key`; whether it was there.
    fn remove(&mut self, key: &K) -> bool {
        match self.until.remove(key) {
            Some(until) => {
                self.order.remove(&(until, *key));
                true
            }
            None => false,
        }
    }

    /// `Some(true)` if `key` is there and not expired at `now`,
    /// `Some(false)` if it was there but expired (now removed), `None` if
    /// it was not there.
    fn active(&mut self, key: &K, now: Instant) -> Option<bool> {
        let until = *self.until.get(key)?;
        if until > now {
            return Some(true);
        }
        self.remove(key);
        Some(false)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.until.len()
    }
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

    #[test]
    fn subnet_bans_of_every_size_are_found_and_expire() {
        let t0 = Instant::now();
        let mut bans = Bans::default();
        for prefix in [8, 16, 24] {
            bans.ban_subnet(
                Subnet::new(ip(&format!("10.{prefix}.1.1")), prefix),
                t0 + Duration::from_secs(u64::from(prefix)),
            );
        }
        assert!(bans.is_banned(ip("10.200.200.200"), t0), "the /8");
        assert!(bans.is_banned(ip("10.16.99.1"), t0));
        assert!(bans.is_banned(ip("10.24.1.99"), t0));
        assert!(!bans.is_banned(ip("11.0.0.1"), t0));
        // The /8 ends first; the /24 is still in force.
        let later = t0 + Duration::from_secs(10);
        assert!(!bans.is_banned(ip("10.200.200.200"), later));
        assert!(bans.is_banned(ip("10.24.1.99"), later));
        assert_eq!(bans.prefixes.len(), 2, "the expired /8 is forgotten");
        bans.unban_subnet(Subnet::new(ip("10.24.1.0"), 24));
        bans.unban_subnet(Subnet::new(ip("10.16.0.0"), 16));
        assert!(bans.prefixes.is_empty());
        assert!(!bans.is_banned(ip("10.24.1.99"), t0));
    }

    #[test]
    fn a_full_subnet_list_makes_room_and_keeps_its_index() {
        let t0 = Instant::now();
        let mut bans = Bans::default();
        let max = u32::try_from(MAX_BANS).unwrap();
        for i in 0..=max {
            bans.ban_subnet(
                Subnet::new(IpAddr::from((i << 8).to_be_bytes()), 24),
                t0 + Duration::from_secs(u64::from(i) + 1),
            );
        }
        assert_eq!(bans.subnets.len(), MAX_BANS);
        assert_eq!(bans.prefixes.get(&(false, 24)), Some(&MAX_BANS));
        assert!(!bans.is_banned(IpAddr::from(0u32.to_be_bytes()), t0));
        assert!(bans.is_banned(IpAddr::from((max << 8 | 7).to_be_bytes()), t0));
    }
}
