//! A [`Syncer`] as the layer above a node on the node's in-memory harness
//! ([`strata_node::sim`]), with its store ops run at once on its own store
//! (or, for checks, after a simulated verification cost): the network of
//! the machine tests and of the simulator.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use strata_node::sim::Upper;
use strata_node::{Event as NodeEvent, MessageId, Node, Verdict};
use strata_store::Store;

use crate::machine::{Event, Output, Summary, Syncer};
use crate::ops::{Done, Op, OpId};

/// A sync machine, its store, and what it reported.
pub struct SyncUpper {
    /// The machine.
    pub syncer: Syncer,
    /// Its store (in memory, or any backend).
    pub store: Arc<Store>,
    signing: SigningKey,
    /// The verdict given to gossip payloads that are not records.
    pub verdict: Verdict,
    /// Every event of the machine, in order (but [`Event::Gossip`]).
    pub events: Vec<Event>,
    /// Gossip payloads that are not records, as they arrived.
    pub messages: Vec<(MessageId, Bytes)>,
    /// The last catch-up progress saved.
    pub progress: Option<Vec<u8>>,
    /// Simulated time one record's check takes (its signature check);
    /// zero: checks finish at once. Checks run one after another.
    pub check_cost: Duration,
    /// Checks under way: when each finishes, and its result.
    checking: VecDeque<(Instant, OpId, Done)>,
}

impl SyncUpper {
    /// `syncer` over `store`, its records signed with the machine's key.
    pub fn new(syncer: Syncer, store: Arc<Store>) -> SyncUpper {
        let signing = syncer.config().signing_key.clone();
        SyncUpper {
            syncer,
            store,
            signing,
            verdict: Verdict::Propagate,
            events: Vec::new(),
            messages: Vec::new(),
            progress: None,
            check_cost: Duration::ZERO,
            checking: VecDeque::new(),
        }
    }

    /// Hands the machine the checks finished by `now`.
    fn finish_checks(&mut self, now: Instant) {
        while self.checking.front().is_some_and(|(at, _, _)| *at <= now) {
            if let Some((_, id, done)) = self.checking.pop_front() {
                self.syncer.handle_store(id, done, now);
            }
        }
    }

    /// Carries out what the machine asks, until it asks nothing more.
    pub fn drain(&mut self, node: &mut Node<Summary>, now: Instant) {
        while let Some(output) = self.syncer.poll_output() {
            match output {
                Output::Send {
                    peer,
                    command,
                    body,
                    class,
                } => {
                    node.send_upper(peer, command, body, class);
                }
                Output::Propagate(payload) => {
                    // Without peers the record waits for reconciliation.
                    let _ = node.propagate(payload, now);
                }
                Output::Verdict(id, verdict) => node.handle_verdict(id, verdict, now),
                Output::Report { peer, what } => {
                    node.report(peer, strata_node::Misbehaviour::Upper(what.score()));
                }
                Output::SetPayload(summary) => node.set_payload(summary),
                Output::SaveProgress(progress) => self.progress = progress,
                Output::Store(id, op) => {
                    let records = match &op {
                        Op::Check(records) if !self.check_cost.is_zero() => records.len(),
                        _ => 0,
                    };
                    let done = op.run(&self.store, &self.signing);
                    if records == 0 {
                        self.syncer.handle_store(id, done, now);
                    } else {
                        // After the checks before it, for its records' cost.
                        let start = self
                            .checking
                            .back()
                            .map_or(now, |(at, _, _)| (*at).max(now));
                        let cost = self
                            .check_cost
                            .saturating_mul(u32::try_from(records).unwrap_or(u32::MAX));
                        let at = start.checked_add(cost).unwrap_or(start);
                        self.checking.push_back((at, id, done));
                    }
                }
                Output::Event(Event::Gossip { id, payload, .. }) => {
                    self.messages.push((id, payload));
                    self.syncer.verdict(id, self.verdict, now);
                }
                Output::Event(event) => self.events.push(event),
            }
        }
    }
}

impl Upper<Summary> for SyncUpper {
    fn start(&mut self, node: &mut Node<Summary>, now: Instant) {
        self.drain(node, now);
    }

    fn handle_event(&mut self, event: NodeEvent<Summary>, node: &mut Node<Summary>, now: Instant) {
        match event {
            NodeEvent::PeerReady(peer, key) => self.syncer.handle_peer_ready(peer, key, now),
            NodeEvent::PeerGone(peer) => self.syncer.handle_peer_gone(peer, now),
            NodeEvent::Payload(peer, summary) => self.syncer.handle_payload(peer, summary, now),
            NodeEvent::Gossip { peer, id, payload } => {
                self.syncer.handle_gossip(peer, id, payload, now);
            }
            NodeEvent::Upper {
                peer,
                command,
                body,
            } => self.syncer.handle_message(peer, command, &body, now),
        }
        self.drain(node, now);
    }

    fn handle_timeout(&mut self, node: &mut Node<Summary>, now: Instant) {
        self.finish_checks(now);
        if self.syncer.poll_timeout().is_some_and(|at| at <= now) {
            self.syncer.handle_timeout(now);
        }
        self.drain(node, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let check = self.checking.front().map(|(at, _, _)| *at);
        [self.syncer.poll_timeout(), check]
            .into_iter()
            .flatten()
            .min()
    }
}
