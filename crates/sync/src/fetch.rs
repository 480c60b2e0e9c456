//! Fetching records by digest after a reconciliation: a queue of digests
//! per peer, and the GET_RECORDS requests in flight.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use strata_node::{Class, PeerId};
use strata_store::{Digest, Record};

use crate::score::Misbehaviour;
use crate::wire::{MAX_GET_DIGESTS, Message, Outbox};

/// Digests waiting to be fetched from one peer, at most.
pub const MAX_FETCH_QUEUE: usize = 65_536;
/// GET_RECORDS in flight to one peer, at most.
pub const FETCH_INFLIGHT: usize = 2;

#[derive(Default)]
struct Queue {
    digests: VecDeque<Digest>,
    inflight: usize,
}

struct Asked {
    peer: PeerId,
    digests: Vec<Digest>,
    deadline: Instant,
}

/// The fetch state of a node.
#[derive(Default)]
pub(crate) struct Fetch {
    peers: HashMap<PeerId, Queue>,
    asked: HashMap<u64, Asked>,
    /// Digests that did not fit a queue.
    pub(crate) overflow: u64,
}

impl Fetch {
    /// Queues digests to fetch from `peer`.
    pub(crate) fn queue(&mut self, peer: PeerId, digests: impl IntoIterator<Item = Digest>) {
        let queue = self.peers.entry(peer).or_default();
        for d in digests {
            if queue.digests.len() >= MAX_FETCH_QUEUE {
                self.overflow = self.overflow.saturating_add(1);
                continue;
            }
            queue.digests.push_back(d);
        }
    }

    /// Sends GET_RECORDS to `peer` while its queue and room allow.
    pub(crate) fn pump(
        &mut self,
        peer: PeerId,
        next_request: &mut u64,
        timeout: Duration,
        now: Instant,
        out: &mut Outbox,
    ) {
        let Some(queue) = self.peers.get_mut(&peer) else {
            return;
        };
        while queue.inflight < FETCH_INFLIGHT && !queue.digests.is_empty() {
            let n = queue.digests.len().min(MAX_GET_DIGESTS);
            let digests: Vec<Digest> = queue.digests.drain(..n).collect();
            queue.inflight = queue.inflight.saturating_add(1);
            let request = *next_request;
            *next_request = next_request.wrapping_add(1);
            out.push(
                peer,
                Message::GetRecords {
                    request,
                    digests: digests.clone(),
                },
                Class::Relay,
            );
            self.asked.insert(
                request,
                Asked {
                    peer,
                    digests,
                    deadline: strata_node::later(now, timeout),
                },
            );
        }
    }

    /// A RECORDS answer. Records that keep to the request come back to be
    /// checked and stored; what a truncated answer left out is queued again.
    /// An answer to a request that timed out is `Ok(None)`.
    pub(crate) fn on_records(
        &mut self,
        peer: PeerId,
        request: u64,
        truncated: bool,
        records: Vec<Record>,
    ) -> Result<Option<Vec<Record>>, Misbehaviour> {
        let Some(asked) = self.asked.get(&request) else {
            return Ok(None);
        };
        if asked.peer != peer {
            return Err(Misbehaviour::Unsolicited);
        }
        let Some(asked) = self.asked.remove(&request) else {
            return Ok(None);
        };
        if let Some(q) = self.peers.get_mut(&peer) {
            q.inflight = q.inflight.saturating_sub(1);
        }
        let wanted: HashSet<Digest> = asked.digests.iter().copied().collect();
        let received: HashSet<Digest> = records.iter().map(Record::digest).collect();
        if records.len() > asked.digests.len() || !received.is_subset(&wanted) {
            return Err(Misbehaviour::Unsolicited);
        }
        if truncated
            && !records.is_empty()
            && let Some(q) = self.peers.get_mut(&peer)
        {
            for d in asked.digests.into_iter().rev() {
                if !received.contains(&d) {
                    q.digests.push_front(d);
                }
            }
        }
        Ok(Some(records))
    }

    /// A peer left: its queue and requests go.
    pub(crate) fn peer_gone(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.asked.retain(|_, a| a.peer != peer);
    }

    /// Requests past their deadline are forgotten; returns them (peer and
    /// request id), their peers to pump again.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<(PeerId, u64)> {
        let mut expired = Vec::new();
        let peers_map = &mut self.peers;
        self.asked.retain(|id, a| {
            if now < a.deadline {
                return true;
            }
            if let Some(q) = peers_map.get_mut(&a.peer) {
                q.inflight = q.inflight.saturating_sub(1);
            }
            expired.push((a.peer, *id));
            false
        });
        expired.sort();
        expired
    }

    /// Whether `request` is one of ours in flight.
    pub(crate) fn knows(&self, request: u64) -> bool {
        self.asked.contains_key(&request)
    }

    /// When a request times out next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.asked.values().map(|a| a.deadline).min()
    }
}
