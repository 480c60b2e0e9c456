//! Which inbound peer to evict when the inbound slots are full, after
//! Bitcoin Core: a pure function of what is known of each candidate.
//!
//! Protected first, in this order: [`PROTECT_BY_GROUP`] peers by a keyed
//! hash of their network group (an attacker cannot choose which groups
//! win), [`PROTECT_BY_RTT`] by lowest round-trip time, [`PROTECT_BY_USEFUL`]
//! by most recent new gossip delivered, then half of the rest by longest
//! uptime. Of those left, the group with most connections loses its
//! youngest peer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::netgroup::NetGroup;
use crate::peer::PeerId;

/// Peers protected by the keyed hash of their group.
pub const PROTECT_BY_GROUP: usize = 4;
/// Peers protected by lowest round-trip time.
pub const PROTECT_BY_RTT: usize = 8;
/// Peers protected by most recent useful gossip.
pub const PROTECT_BY_USEFUL: usize = 4;

/// What eviction knows of an inbound, ready peer.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The connection.
    pub(crate) id: PeerId,
    /// Its network group.
    pub(crate) group: Option<NetGroup>,
    /// A hash of its group under the address book's secret key.
    pub(crate) keyed_group: u64,
    /// Smoothed round-trip time, if measured.
    pub(crate) rtt: Option<Duration>,
    /// When it last delivered a new gossip message.
    pub(crate) last_useful: Option<Instant>,
    /// When it connected.
    pub(crate) connected_at: Instant,
}

/// The peer to evict, or `None` when every candidate is protected.
pub(crate) fn victim(mut candidates: Vec<Candidate>) -> Option<PeerId> {
    // Each sort puts the protected class last, to be cut off.
    candidates.sort_by_key(|c| (c.keyed_group, c.id));
    protect(&mut candidates, PROTECT_BY_GROUP);
    candidates.sort_by_key(|c| (std::cmp::Reverse(c.rtt.unwrap_or(Duration::MAX)), c.id));
    protect(&mut candidates, PROTECT_BY_RTT);
    candidates.sort_by_key(|c| (c.last_useful, c.id));
    protect(&mut candidates, PROTECT_BY_USEFUL);
    candidates.sort_by_key(|c| (std::cmp::Reverse(c.connected_at), c.id));
    let half = candidates.len() / 2;
    protect(&mut candidates, half);
    let mut by_group: HashMap<Option<NetGroup>, Vec<Candidate>> = HashMap::new();
    for c in candidates {
        by_group.entry(c.group).or_default().push(c);
    }
    let (_, group) = by_group.into_iter().max_by_key(|(g, members)| {
        (
            members.len(),
            members.iter().map(|c| c.connected_at).max(),
            *g,
        )
    })?;
    group
        .into_iter()
        .max_by_key(|c| (c.connected_at, c.id))
        .map(|c| c.id)
}

/// Drops the last `n` candidates (the protected ones, as sorted).
fn protect<T>(candidates: &mut Vec<T>, n: usize) {
    let keep = candidates.len().saturating_sub(n);
    candidates.truncate(keep);
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    reason = "test arithmetic on small constants"
)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::netgroup::Grouping;

    /// 30 candidates: peer `i` in group `i % 3`, connected `i` seconds
    /// after the start; the older a peer, the better its keyed group and
    /// round-trip time, and the younger, the more recent its gossip.
    fn candidates(start: Instant) -> Vec<Candidate> {
        let grouping = Grouping::default();
        (0..30u64)
            .map(|i| Candidate {
                id: PeerId(i),
                group: grouping.group(IpAddr::V4(Ipv4Addr::new(
                    9,
                    u8::try_from(i % 3).unwrap(),
                    0,
                    1,
                ))),
                keyed_group: u64::MAX - i,
                rtt: Some(Duration::from_millis(1 + i)),
                last_useful: Some(start + Duration::from_secs(i)),
                connected_at: start + Duration::from_secs(i),
            })
            .collect()
    }

    #[test]
    fn the_youngest_of_the_largest_group_goes() {
        let start = Instant::now();
        let mut c = candidates(start);
        // Group 1 gets three more young members, slow and quiet.
        for (k, id) in (100..103u64).enumerate() {
            c.push(Candidate {
                id: PeerId(id),
                keyed_group: 0,
                rtt: Some(Duration::from_secs(1)),
                last_useful: None,
                connected_at: start + Duration::from_secs(1000 + k as u64),
                ..c[1].clone()
            });
        }
        assert_eq!(victim(c), Some(PeerId(102)));
    }

    #[test]
    fn each_protected_class_survives() {
        let start = Instant::now();
        let mut c = candidates(start);
        // The youngest peers would be the victims: give each of the young
        // ones a reason to be kept.
        let fastest = PeerId(29);
        c[29].rtt = Some(Duration::from_micros(10));
        let useful = PeerId(28);
        c[28].last_useful = Some(start + Duration::from_secs(5000));
        let keyed = PeerId(27);
        c[27].keyed_group = u64::MAX;
        let mut evicted = Vec::new();
        // Evict one at a time until everyone left is protected.
        while let Some(v) = victim(c.clone()) {
            evicted.push(v);
            c.retain(|x| x.id != v);
        }
        for protected in [fastest, useful, keyed] {
            assert!(!evicted.contains(&protected), "{protected:?} was evicted");
        }
        // Besides the classes, the longest connected half of the rest.
        assert!(!evicted.contains(&PeerId(0)));
        assert!(!c.is_empty());
    }

    #[test]
    fn nothing_to_evict_when_all_are_protected() {
        let start = Instant::now();
        let c: Vec<Candidate> = candidates(start)
            .into_iter()
            .take(PROTECT_BY_GROUP)
            .collect();
        assert_eq!(victim(c), None);
        assert_eq!(victim(Vec::new()), None);
    }
}
