//! Misbehaviour and its scores: what each violation costs, and the table
//! of scored addresses, bounded so that it keeps the worst offenders.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// A protocol violation and its score. A peer's address is banned when its
/// score passes [`Config::ban_threshold`](crate::Config::ban_threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A handshake on a connection that already had one, or an inbound
    /// handshake on a connection we opened.
    SecondHandshake,
    /// The peer is on another network.
    WrongNetwork,
    /// A peer list longer than [`MAX_PEER_LIST`](crate::wire::MAX_PEER_LIST).
    PeerListTooLong,
    /// A response that matches no request in flight.
    UnmatchedResponse,
    /// A request body that does not decode (answered with return code -1).
    UndecodableRequest,
    /// A handshake or response body that does not decode.
    Undecodable,
    /// A message that needs a completed handshake came before it.
    BeforeHandshake,
    /// The handshake's key is missing or differs from the TLS key.
    WrongKey,
    /// A gossip message the layer above rejected, or one over the size limit.
    InvalidGossip,
    /// The peer sent a gossip message that depends on one it did not send
    /// when asked. Scored without closing the connection: an honest peer
    /// may have let the dependency go from its cache.
    UnservedDependency,
    /// The peer introduced a key for an address whose node proved another.
    WrongIntroduction,
    /// The layer above reports a violation of its own protocol, with a score.
    Upper(u32),
}

impl Misbehaviour {
    /// Its score.
    pub fn score(self) -> u32 {
        match self {
            Misbehaviour::WrongNetwork | Misbehaviour::UndecodableRequest => 1,
            Misbehaviour::BeforeHandshake => 2,
            Misbehaviour::SecondHandshake
            | Misbehaviour::UnmatchedResponse
            | Misbehaviour::Undecodable
            | Misbehaviour::PeerListTooLong
            | Misbehaviour::WrongKey
            | Misbehaviour::WrongIntroduction => 5,
            Misbehaviour::UnservedDependency => 2,
            Misbehaviour::InvalidGossip => 10,
            Misbehaviour::Upper(score) => score,
        }
    }

    /// Whether the connection is closed for it.
    pub fn disconnects(self) -> bool {
        !matches!(
            self,
            Misbehaviour::UndecodableRequest
                | Misbehaviour::Upper(_)
                | Misbehaviour::UnservedDependency
                | Misbehaviour::WrongIntroduction
        )
    }
}

/// Most scored addresses remembered. When full, a newcomer takes the place
/// of the lowest score, so the worst offenders stay.
pub const MAX_SCORES: usize = 10_000;

/// Scores per address, bounded by [`MAX_SCORES`].
#[derive(Debug, Default)]
pub(crate) struct Scores {
    by_ip: HashMap<IpAddr, u32>,
    /// The same entries ordered by score, to find the least offender.
    order: BTreeSet<(u32, IpAddr)>,
}

impl Scores {
    /// The score of `ip`.
    pub(crate) fn get(&self, ip: IpAddr) -> u32 {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Adds `points` to `ip`'s score and returns the new score. A full
    /// table forgets a lowest score to make room, unless the newcomer's
    /// would be lower still; a newcomer as low as the lowest takes its
    /// place, so a repeat offender is never locked out of the table.
    pub(crate) fn add(&mut self, ip: IpAddr, points: u32) -> u32 {
        let old = self.by_ip.get(&ip).copied();
        let new = old.unwrap_or(0).saturating_add(points);
        match old {
            Some(old) => {
                self.order.remove(&(old, ip));
            }
            None if self.by_ip.len() >= MAX_SCORES => match self.order.first().copied() {
                Some((lowest, victim)) if lowest <= new => {
                    self.order.remove(&(lowest, victim));
                    self.by_ip.remove(&victim);
                }
                // Every remembered offender is worse: this one's score is
                // reported but not kept.
                _ => return new,
            },
            None => {}
        }
        self.by_ip.insert(ip, new);
        self.order.insert((new, ip));
        new
    }

    /// Forgets `ip` (once it is banned).
    pub(crate) fn remove(&mut self, ip: IpAddr) {
        if let Some(score) = self.by_ip.remove(&ip) {
            self.order.remove(&(score, ip));
        }
    }

    /// Addresses scored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn v6(i: u32) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            u16::try_from(i >> 16).unwrap(),
            u16::try_from(i & 0xffff).unwrap(),
        ))
    }

    #[test]
    fn a_full_table_keeps_the_worst_offenders() {
        let mut scores = Scores::default();
        let worst = v6(u32::MAX);
        assert_eq!(scores.add(worst, 9), 9);
        // Enough fresh addresses with a point each to fill the table many
        // times over, as an attacker with a /64 of its own could send.
        for i in 0..3 * u32::try_from(MAX_SCORES).unwrap() {
            scores.add(v6(i), 1);
            assert!(scores.len() <= MAX_SCORES);
        }
        assert_eq!(scores.get(worst), 9, "the worst offender was forgotten");
        assert_eq!(scores.add(worst, 2), 11);
        // A repeat offender adds up however full the table is.
        let bad = v6(u32::MAX - 1);
        for round in 1..=3 {
            assert_eq!(scores.add(bad, 5), 5 * round);
        }
        assert_eq!(scores.len(), MAX_SCORES);
        scores.remove(bad);
        assert_eq!(scores.get(bad), 0);
    }
}
