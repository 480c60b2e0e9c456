//! The node keys of addresses: proved by connections we dialed, or
//! introduced by peers (in their peer lists, or an inbound peer for the
//! address it says it listens at), so that a dial to the address pins the
//! key in TLS.
//!
//! Beside the address book, not in it: a book entry is 64 bytes on purpose,
//! and most addresses of a Monero network have no key. Bounded by
//! [`MAX_KEYS`]; the oldest introduction goes first.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Most addresses whose keys are kept.
pub const MAX_KEYS: usize = 65_536;

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A connection we dialed to the address proved it over TLS.
    Proved,
    /// A peer at this address put it in its peer list.
    Introduced(IpAddr),
}

/// Keys by address.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    by_addr: HashMap<SocketAddr, ([u8; 32], Source)>,
    /// Addresses, oldest first (with entries already removed).
    order: VecDeque<SocketAddr>,
}

impl Keys {
    /// The key to pin when dialing `addr`, and where it came from.
    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<([u8; 32], Source)> {
        self.by_addr.get(addr).copied()
    }

    /// The key of `addr`, if a connection proved it: the only keys passed
    /// on to others.
    pub(crate) fn proved(&self, addr: &SocketAddr) -> Option<[u8; 32]> {
        match self.by_addr.get(addr) {
            Some((key, Source::Proved)) => Some(*key),
            _ => None,
        }
    }

    /// A connection proved `key` for `addr`: it replaces whatever was
    /// introduced.
    pub(crate) fn prove(&mut self, addr: SocketAddr, key: [u8; 32]) {
        self.insert(addr, key, Source::Proved);
    }

    /// A peer at `reporter` says `addr` has `key`. Taken only for an address
    /// without a key: an introduction neither replaces a proved key nor
    /// another introduction.
    pub(crate) fn introduce(&mut self, addr: SocketAddr, key: [u8; 32], reporter: IpAddr) {
        if !self.by_addr.contains_key(&addr) {
            self.insert(addr, key, Source::Introduced(reporter));
        }
    }

    /// Forgets the key of `addr` (it did not match): the address is not
    /// tried under it again. Returns what was forgotten.
    pub(crate) fn forget(&mut self, addr: &SocketAddr) -> Option<([u8; 32], Source)> {
        let gone = self.by_addr.remove(addr);
        self.trim();
        gone
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_addr.len()
    }

    fn insert(&mut self, addr: SocketAddr, key: [u8; 32], source: Source) {
        if self.by_addr.insert(addr, (key, source)).is_none() {
            self.order.push_back(addr);
        }
        while self.by_addr.len() > MAX_KEYS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_addr.remove(&oldest);
        }
        self.trim();
    }

    /// Keeps `order` within twice the live entries.
    fn trim(&mut self) {
        while self
            .order
            .front()
            .is_some_and(|a| !self.by_addr.contains_key(a))
        {
            self.order.pop_front();
        }
        if self.order.len() > self.by_addr.len().max(16).saturating_mul(2) {
            let live = &self.by_addr;
            self.order.retain(|a| live.contains_key(a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], i))
    }

    #[test]
    fn an_introduction_never_replaces_a_key_and_a_proof_always_does() {
        let mut keys = Keys::default();
        let reporter = IpAddr::from([127, 0, 0, 9]);
        keys.introduce(addr(1), [1; 32], reporter);
        keys.introduce(addr(1), [2; 32], reporter);
        assert_eq!(
            keys.get(&addr(1)),
            Some(([1; 32], Source::Introduced(reporter)))
        );
        assert_eq!(keys.proved(&addr(1)), None);
        keys.prove(addr(1), [3; 32]);
        keys.introduce(addr(1), [4; 32], reporter);
        assert_eq!(keys.get(&addr(1)), Some(([3; 32], Source::Proved)));
        assert_eq!(keys.proved(&addr(1)), Some([3; 32]));
        assert_eq!(keys.forget(&addr(1)), Some(([3; 32], Source::Proved)));
        assert_eq!(keys.get(&addr(1)), None);
    }

    #[test]
    fn the_oldest_key_goes_past_the_bound() {
        let mut keys = Keys::default();
        for i in 0..=MAX_KEYS {
            let port = u16::try_from(i % 60_000).unwrap();
            let ip = IpAddr::from([10, 0, u8::try_from(i / 60_000).unwrap(), 1]);
            keys.prove(SocketAddr::new(ip, port), [0; 32]);
        }
        assert_eq!(keys.len(), MAX_KEYS);
        assert!(keys.order.len() <= 2 * MAX_KEYS);
        assert_eq!(
            keys.get(&SocketAddr::new(IpAddr::from([10, 0, 0, 1]), 0)),
            None
        );
    }
}
