//! The records this node published, and the nodes that confirmed them.
//!
//! The sync layer tracks each published record's gossip message and the
//! signed receipts that come back for it (`strata_sync::DeliveryStatus`).
//! This ledger maps record ids to those messages and keeps, for each, the
//! confirming nodes in the order the daemon learnt of them, with the time
//! it did: when the daemon reads a record's delivery status (every second
//! for recent records, when the wanted share is reached, and on
//! `GET /v1/delivery/{id}`).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::{HashMap, VecDeque};

use strata_node::MessageId;

/// Records whose receipts are kept, at most; the oldest go first.
pub const MAX_TRACKED: usize = 10_000;
/// Confirmations kept per record, at most.
pub const MAX_RECEIPTS: usize = 1024;

/// One record this node wrote, and who confirmed storing it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The record's key.
    pub key: Vec<u8>,
    /// Its version.
    pub version: u64,
    /// When it was published, µs since the Unix epoch.
    pub published_at_us: u64,
    /// The gossip message that carried it.
    pub message: MessageId,
    /// Confirming nodes and when the daemon learnt of them (µs).
    pub receipts: Vec<([u8; 32], u64)>,
    /// The last challenge to its holders to prove they hold it, if any.
    pub challenge: Option<MessageId>,
    /// Nodes that proved holding it since the last challenge.
    pub proved: Vec<[u8; 32]>,
}

/// The records this node wrote, by record id, bounded.
#[derive(Debug, Default)]
pub struct Deliveries {
    by_id: HashMap<[u8; 32], Delivery>,
    by_message: HashMap<MessageId, [u8; 32]>,
    order: VecDeque<[u8; 32]>,
    /// Confirmations learnt of, in total.
    pub receipts_total: u64,
}

impl Deliveries {
    /// Starts tracking a record.
    pub fn track(&mut self, id: [u8; 32], delivery: Delivery) {
        let message = delivery.message;
        match self.by_id.insert(id, delivery) {
            Some(old) => {
                self.by_message.remove(&old.message);
            }
            None => self.order.push_back(id),
        }
        self.by_message.insert(message, id);
        while self.order.len() > MAX_TRACKED {
            if let Some(old) = self.order.pop_front()
                && let Some(d) = self.by_id.remove(&old)
            {
                self.by_message.remove(&d.message);
            }
        }
    }

    /// Notes the nodes that confirmed a message, learnt of at `at_us`;
    /// returns, for each one new, the time from publication (µs).
    pub fn confirmed(&mut self, message: &MessageId, nodes: &[[u8; 32]], at_us: u64) -> Vec<u64> {
        let Some(delivery) = self
            .by_message
            .get(message)
            .and_then(|id| self.by_id.get_mut(id))
        else {
            return Vec::new();
        };
        let mut delays = Vec::new();
        for node in nodes {
            if delivery.receipts.len() >= MAX_RECEIPTS {
                break;
            }
            if delivery.receipts.iter().any(|(k, _)| k == node) {
                continue;
            }
            delivery.receipts.push((*node, at_us));
            delays.push(at_us.saturating_sub(delivery.published_at_us));
        }
        self.receipts_total = self.receipts_total.saturating_add(delays.len() as u64);
        delays
    }

    /// Notes the nodes that proved holding a message's record since the
    /// last challenge (the whole list, which replaces the one before).
    pub fn proved(
        &mut self,
        message: &MessageId,
        challenge: Option<MessageId>,
        nodes: &[[u8; 32]],
    ) {
        let Some(delivery) = self
            .by_message
            .get(message)
            .and_then(|id| self.by_id.get_mut(id))
        else {
            return;
        };
        delivery.challenge = challenge;
        delivery.proved = nodes.iter().take(MAX_RECEIPTS).copied().collect();
    }

    /// The messages of the records published at or after `since_us`, newest
    /// first, at most `n`.
    pub fn recent(&self, since_us: u64, n: usize) -> Vec<MessageId> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.by_id.get(id))
            .take_while(|d| d.published_at_us >= since_us)
            .take(n)
            .map(|d| d.message)
            .collect()
    }

    /// A tracked record.
    pub fn get(&self, id: &[u8; 32]) -> Option<&Delivery> {
        self.by_id.get(id)
    }

    /// Records tracked.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no record is tracked.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_confirming_node_counts_once() {
        let mut d = Deliveries::default();
        let message = MessageId([5; 32]);
        d.track(
            [1; 32],
            Delivery {
                key: b"k".to_vec(),
                version: 1,
                published_at_us: 10,
                message,
                receipts: Vec::new(),
                challenge: None,
                proved: Vec::new(),
            },
        );
        assert_eq!(d.confirmed(&message, &[[2; 32]], 15), vec![5]);
        assert_eq!(d.confirmed(&message, &[[2; 32], [3; 32]], 20), vec![10]);
        assert!(d.confirmed(&MessageId([9; 32]), &[[2; 32]], 30).is_empty());
        assert_eq!(d.receipts_total, 2);
        assert_eq!(d.get(&[1; 32]).unwrap().receipts.len(), 2);
        assert_eq!(d.recent(0, 10), vec![message]);
        assert!(d.recent(11, 10).is_empty());
    }
}
