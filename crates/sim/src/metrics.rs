//! What a run measures, kept in columns so a caller can take each as an
//! array: every delivery of every tracked message to every node (time and
//! hops), reconciliations and catch-ups, samples of attackers' share of
//! outbound slots, and samples of store convergence.

use std::collections::HashMap;

use strata_node::MessageId;

/// A hop count not known (the message came from a host that was not
/// tracking it).
pub const NO_HOP: u16 = u16::MAX;

/// Messages older than this no longer keep a hop table: every delivery by
/// gossip comes well within the node's seen-set time to live.
const HOP_TABLE_SECS: u64 = 600;

/// What kind of payload a tracked message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A gossip payload of the layer above.
    Gossip = 0,
    /// A signed record of the sync layer.
    Record = 1,
}

/// A tracked message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// The node that published it.
    pub origin: u32,
    /// When, in nanoseconds of simulated time.
    pub at: u64,
    /// Its payload length.
    pub size: u32,
    /// What it carries.
    pub kind: Kind,
    /// Hops of its deliveries so far, by host (dropped once old).
    hops: Option<Vec<u16>>,
}

/// Deliveries, one row each.
#[derive(Debug, Default, Clone)]
pub struct Deliveries {
    /// The message (index into [`Metrics::messages`]).
    pub message: Vec<u32>,
    /// The node it reached.
    pub node: Vec<u32>,
    /// When, in nanoseconds of simulated time.
    pub at: Vec<u64>,
    /// Hops from the origin ([`NO_HOP`] when not known).
    pub hops: Vec<u16>,
}

/// A reconciliation a node started, when it decoded.
#[derive(Debug, Default, Clone)]
pub struct Reconciliations {
    /// The node.
    pub node: Vec<u32>,
    /// When, in nanoseconds.
    pub at: Vec<u64>,
    /// Digests fetched.
    pub fetched: Vec<u32>,
    /// Digests offered.
    pub offered: Vec<u32>,
    /// Coded symbols it took.
    pub symbols: Vec<u32>,
}

/// Catch-ups: one row per start or end.
#[derive(Debug, Default, Clone)]
pub struct Catchups {
    /// The node.
    pub node: Vec<u32>,
    /// When, in nanoseconds.
    pub at: Vec<u64>,
    /// Whether it ended (else it started).
    pub done: Vec<bool>,
}

/// Samples of an attacker's share of its victims' full outbound slots.
#[derive(Debug, Default, Clone)]
pub struct Shares {
    /// When, in nanoseconds.
    pub at: Vec<u64>,
    /// The victim (honest node index).
    pub victim: Vec<u32>,
    /// Full outbound peers that are the attacker's.
    pub attacker: Vec<u16>,
    /// Full outbound peers in all.
    pub outbound: Vec<u16>,
    /// Inbound peers that are the attacker's.
    pub attacker_inbound: Vec<u16>,
    /// Inbound peers in all.
    pub inbound: Vec<u16>,
}

/// Samples of store convergence among the honest nodes that run.
#[derive(Debug, Default, Clone)]
pub struct Convergence {
    /// When, in nanoseconds.
    pub at: Vec<u64>,
    /// The share of running honest nodes whose store equals the most
    /// common one (same record count and sketch fingerprint).
    pub agree: Vec<f64>,
    /// Distinct stores among them.
    pub distinct: Vec<u32>,
    /// The most records any of them holds.
    pub max_records: Vec<u64>,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Tracked messages, by index.
    pub messages: Vec<Message>,
    index: HashMap<MessageId, u32>,
    hosts: usize,
    /// Deliveries of tracked messages.
    pub deliveries: Deliveries,
    /// Gossip deliveries of messages nobody tracked (an attacker's).
    pub untracked: u64,
    /// Reconciliations.
    pub reconciliations: Reconciliations,
    /// Catch-ups.
    pub catchups: Catchups,
    /// Attackers' shares of outbound slots.
    pub shares: Shares,
    /// Store convergence.
    pub convergence: Convergence,
}

impl Metrics {
    /// Sizes hop tables for `hosts` hosts.
    pub fn set_hosts(&mut self, hosts: usize) {
        self.hosts = hosts;
    }

    /// Starts tracking a message published by honest node `origin` (at
    /// host `host`) at `at`.
    pub fn track(
        &mut self,
        id: MessageId,
        origin: u32,
        host: usize,
        at: u64,
        size: usize,
        kind: Kind,
    ) {
        if self.index.contains_key(&id) {
            return;
        }
        let n = u32::try_from(self.messages.len()).unwrap_or(u32::MAX);
        let mut hops = vec![NO_HOP; self.hosts];
        if let Some(h) = hops.get_mut(host) {
            *h = 0;
        }
        self.messages.push(Message {
            id,
            origin,
            at,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            kind,
            hops: Some(hops),
        });
        self.index.insert(id, n);
        self.drop_old_hop_tables(at);
    }

    fn drop_old_hop_tables(&mut self, now: u64) {
        let horizon = now.saturating_sub(HOP_TABLE_SECS * 1_000_000_000);
        for m in self.messages.iter_mut().rev().skip(1) {
            if m.at >= horizon {
                continue;
            }
            if m.hops.is_none() {
                break;
            }
            m.hops = None;
        }
    }

    /// Honest node `node` (at host `host`) got message `id` first from
    /// host `from`, at `at`.
    pub fn delivered(
        &mut self,
        id: &MessageId,
        node: u32,
        host: usize,
        from: Option<u32>,
        at: u64,
    ) {
        let Some(&m) = self.index.get(id) else {
            self.untracked += 1;
            return;
        };
        let Some(message) = self.messages.get_mut(m as usize) else {
            return;
        };
        let mut hop = NO_HOP;
        if let Some(hops) = message.hops.as_mut() {
            if let Some(prev) = from.and_then(|f| hops.get(f as usize)).copied()
                && prev != NO_HOP
            {
                hop = prev.saturating_add(1);
            }
            if let Some(h) = hops.get_mut(host) {
                *h = hop;
            }
        }
        let d = &mut self.deliveries;
        d.message.push(m);
        d.node.push(node);
        d.at.push(at);
        d.hops.push(hop);
    }

    /// The index of a tracked message.
    pub fn message_index(&self, id: &MessageId) -> Option<u32> {
        self.index.get(id).copied()
    }
}
