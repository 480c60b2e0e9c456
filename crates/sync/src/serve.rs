//! Serving peers: the reads each peer may have waiting and in service,
//! and the bytes each may make us send per second, so that no peer, and
//! not all of them together, can make the node read and send without
//! bound.
//!
//! Every request that reads the store (GET_RANGE, GET_RECORDS) waits in its
//! peer's queue, at most [`SERVE_QUEUE_PER_PEER`] of them; one more is
//! refused and scored. A waiting request starts when its peer has fewer
//! than [`MAX_SERVE_PER_PEER`] in service, fewer than [`MAX_SERVE`] are in
//! service in all, and both its peer's byte budget and the total budget are
//! not in debt. Every bulk frame sent to a peer (batches, records, coded
//! symbols) is charged to both budgets, which refill at their rates; among
//! the peers that may start, the one with the most budget left goes first,
//! and of those alike the one that started longest ago, so peers that ask
//! alike are served alike.
//!
//! While relay has work the machine sets a share below 100 %: both budgets
//! refill at that share of their rates (and save up that share of a
//! second), and the reads in service, in all and per peer, are that share
//! of their caps (at least one), so serving leaves the rest of the node's
//! upload and of its cores to relay.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use strata_node::PeerId;

use crate::budget::Budget;
use crate::ops::Op;
use crate::score::Misbehaviour;

/// Reads served to one peer at once, at most.
pub const MAX_SERVE_PER_PEER: usize = 2;
/// Reads served at once over all peers, at most.
pub const MAX_SERVE: usize = 8;
/// Requests of one peer waiting to be served, at most; honest peers keep
/// fewer in flight (catch-up and fetching together ask at most four).
pub const SERVE_QUEUE_PER_PEER: usize = 8;

/// A read to serve.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) request: u64,
    pub(crate) op: Op,
    pub(crate) range: bool,
}

#[derive(Debug)]
struct PeerServe {
    queue: VecDeque<Request>,
    in_service: usize,
    budget: Budget,
    /// When it last had a read started, by the count of starts.
    started: u64,
}

/// The serving side of every peer.
#[derive(Debug)]
pub(crate) struct Serve {
    peers: HashMap<PeerId, PeerServe>,
    in_service: usize,
    total: Budget,
    rate: f64,
    total_rate: f64,
    /// The share of the rates and caps in force, in percent: 100 while
    /// relay is idle.
    share: u8,
    /// Reads started so far.
    starts: u64,
}

/// `cap` scaled by `share` percent, at least one.
fn scaled(cap: usize, share: u8) -> usize {
    (cap.saturating_mul(usize::from(share)) / 100).max(1)
}

impl Serve {
    /// `rate` bytes per second per peer, `total_rate` over all peers.
    pub(crate) fn new(rate: u64, total_rate: u64, now: Instant) -> Serve {
        let (rate, total_rate) = (rate.max(1) as f64, total_rate.max(1) as f64);
        Serve {
            peers: HashMap::new(),
            in_service: 0,
            total: Budget::full(total_rate, now),
            rate,
            total_rate,
            share: 100,
            starts: 0,
        }
    }

    /// The per-peer rate in force.
    fn rate(&self) -> f64 {
        self.rate * f64::from(self.share) / 100.0
    }

    /// The total rate in force.
    fn total_rate(&self) -> f64 {
        self.total_rate * f64::from(self.share) / 100.0
    }

    /// Sets the share of the rates and caps in force, in percent (clamped
    /// to 1..=100); what the budgets saved up to now counts at the old
    /// rates.
    pub(crate) fn set_share(&mut self, share: u8, now: Instant) {
        let (rate, total_rate) = (self.rate(), self.total_rate());
        for p in self.peers.values_mut() {
            p.budget.refill(rate, now);
        }
        self.total.refill(total_rate, now);
        self.share = share.clamp(1, 100);
    }

    fn peer(&mut self, peer: PeerId, now: Instant) -> &mut PeerServe {
        let rate = self.rate();
        self.peers.entry(peer).or_insert_with(|| PeerServe {
            queue: VecDeque::new(),
            in_service: 0,
            budget: Budget::full(rate, now),
            started: 0,
        })
    }

    /// Queues a request of `peer`; a full queue refuses it.
    pub(crate) fn push(
        &mut self,
        peer: PeerId,
        request: Request,
        now: Instant,
    ) -> Result<(), Misbehaviour> {
        let p = self.peer(peer, now);
        if p.queue.len() >= SERVE_QUEUE_PER_PEER {
            return Err(Misbehaviour::TooManyRequests);
        }
        p.queue.push_back(request);
        Ok(())
    }

    /// The next request that may start now, marked in service.
    pub(crate) fn next(&mut self, now: Instant) -> Option<(PeerId, Request)> {
        if self.in_service >= scaled(MAX_SERVE, self.share)
            || self.total.level(self.total_rate(), now) < 0.0
        {
            return None;
        }
        let (rate, per_peer) = (self.rate(), scaled(MAX_SERVE_PER_PEER, self.share));
        let (peer, ..) = self
            .peers
            .iter()
            .filter(|(_, p)| !p.queue.is_empty() && p.in_service < per_peer)
            .map(|(id, p)| (*id, p.budget.level(rate, now), p.started))
            .filter(|(_, level, _)| *level >= 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)).then(b.0.cmp(&a.0)))?;
        self.starts = self.starts.saturating_add(1);
        let started = self.starts;
        let p = self.peers.get_mut(&peer)?;
        let request = p.queue.pop_front()?;
        p.in_service = p.in_service.saturating_add(1);
        p.started = started;
        self.in_service = self.in_service.saturating_add(1);
        Some((peer, request))
    }

    /// A request of `peer` was served.
    pub(crate) fn done(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_service = p.in_service.saturating_sub(1);
        }
        self.in_service = self.in_service.saturating_sub(1);
    }

    /// `bytes` were sent to `peer` on its behalf.
    pub(crate) fn charge(&mut self, peer: PeerId, bytes: usize, now: Instant) {
        let (rate, total_rate) = (self.rate(), self.total_rate());
        self.peer(peer, now).budget.spend(bytes, rate, now);
        self.total.spend(bytes, total_rate, now);
    }

    /// Whether `peer` may be given work now (a reconciliation to serve).
    pub(crate) fn may_serve(&self, peer: PeerId, now: Instant) -> bool {
        let own = self
            .peers
            .get(&peer)
            .is_none_or(|p| p.budget.level(self.rate(), now) >= 0.0);
        own && self.total.level(self.total_rate(), now) >= 0.0
    }

    /// Forgets a peer that left; what it had in service still counts until
    /// it comes back.
    pub(crate) fn peer_gone(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.remove(&peer) {
            // Its reads in service finish without a peer to send to.
            self.in_service = self.in_service.saturating_sub(p.in_service);
        }
    }

    /// When a waiting request could start for want of budget, if any waits.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let per_peer = scaled(MAX_SERVE_PER_PEER, self.share);
        let waiting = self
            .peers
            .values()
            .filter(|p| !p.queue.is_empty() && p.in_service < per_peer)
            .map(|p| p.budget.clear_at(self.rate()))
            .min()?;
        Some(waiting.max(self.total.clear_at(self.total_rate())))
    }

    /// Requests waiting, over all peers.
    pub(crate) fn waiting(&self) -> usize {
        self.peers.values().map(|p| p.queue.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn read() -> Request {
        Request {
            request: 1,
            op: Op::Presence(Vec::new()),
            range: false,
        }
    }

    #[test]
    fn a_full_queue_refuses_and_a_peer_in_debt_waits() {
        let now = Instant::now();
        let mut s = Serve::new(1000, 1_000_000, now);
        let (a, b) = (PeerId(1), PeerId(2));
        for _ in 0..SERVE_QUEUE_PER_PEER {
            s.push(a, read(), now).unwrap();
        }
        assert_eq!(s.push(a, read(), now), Err(Misbehaviour::TooManyRequests));
        // Two in service at most per peer.
        assert!(s.next(now).is_some() && s.next(now).is_some());
        assert!(s.next(now).is_none());
        s.done(a);
        s.charge(a, 3000, now);
        // In debt: nothing starts until it is paid back, two seconds on.
        assert!(s.next(now).is_none());
        let at = s.poll_timeout().unwrap();
        assert!(at > now && at <= now + Duration::from_secs(2), "{at:?}");
        // Another peer with budget goes first meanwhile.
        s.push(b, read(), now).unwrap();
        assert_eq!(s.next(now).map(|(p, _)| p), Some(b));
        assert_eq!(s.next(at).map(|(p, _)| p), Some(a));
    }

    #[test]
    fn peers_that_ask_alike_are_served_alike_and_a_busy_share_caps_what_is_served() {
        let start = Instant::now();
        let mut s = Serve::new(1_000_000, 10_000, start);
        let peers = [PeerId(1), PeerId(2), PeerId(3)];
        let mut served = [0usize; 3];
        let mut now = start;
        // Three peers that always have a read waiting, each read 1,000
        // bytes, served over ten seconds at a total of 10,000 bytes/s.
        let fill = |s: &mut Serve, now| {
            for p in peers {
                while s.peers.get(&p).is_none_or(|q| q.queue.len() < 2) {
                    s.push(p, read(), now).unwrap();
                }
            }
        };
        for _ in 0..1000 {
            fill(&mut s, now);
            while let Some((p, _)) = s.next(now) {
                s.charge(p, 1000, now);
                s.done(p);
                served[usize::try_from(p.0).unwrap() - 1] += 1000;
            }
            now += Duration::from_millis(10);
        }
        let (least, most) = (served.iter().min().unwrap(), served.iter().max().unwrap());
        assert!(most - least <= 2000, "{served:?}");
        let total: usize = served.iter().sum();
        assert!((100_000..=112_000).contains(&total), "{total}");
        // At a tenth: one read in service at a time, a tenth of the rate.
        s.set_share(10, now);
        let before = total;
        let mut in_service = 0;
        let mut total = before;
        for _ in 0..1000 {
            fill(&mut s, now);
            while let Some((p, _)) = s.next(now) {
                in_service += 1;
                assert_eq!(in_service, 1);
                s.charge(p, 1000, now);
                total += 1000;
            }
            for p in peers {
                if s.peers[&p].in_service > 0 {
                    s.done(p);
                    in_service -= 1;
                }
            }
            now += Duration::from_millis(10);
        }
        assert!(
            (9_000..=12_000).contains(&(total - before)),
            "{}",
            total - before
        );
    }
}
