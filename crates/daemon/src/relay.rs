//! Records, messages and delivery receipts carried as gossip payloads.
//!
//! This is the daemon's whole replication path until the sync layer's
//! driver takes it over: a record written with `put` is stored locally and
//! published by gossip; a node that receives it checks the signature,
//! stores it and gossips a signed receipt, which the author collects.
//! Nothing here catches up a node that was away when a record was
//! published: that is set reconciliation's job.
//!
//! A gossip payload is one tag byte and a body:
//!
//! ```text
//! 0x01 record    the record's encoding (strata_store::Record::to_bytes)
//! 0x02 message   author (32) ‖ sent_at µs (u64 BE) ‖ signature (64) ‖ data
//! 0x03 receipt   record id (32) ‖ receiver (32) ‖ signature (64)
//! ```
//!
//! Message signatures cover `"strata-message-v1" ‖ author ‖ sent_at ‖ data`;
//! receipt signatures `"strata-receipt-v1" ‖ record id ‖ receiver`.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut as _, Bytes, BytesMut};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use strata_node::{MessageId, PeerId, Verdict};
use strata_store::Record;
use tokio::sync::mpsc;

/// Tag of a record.
pub const TAG_RECORD: u8 = 1;
/// Tag of a message.
pub const TAG_MESSAGE: u8 = 2;
/// Tag of a receipt.
pub const TAG_RECEIPT: u8 = 3;

const MESSAGE_DOMAIN: &[u8] = b"strata-message-v1";
const RECEIPT_DOMAIN: &[u8] = b"strata-receipt-v1";
const MESSAGE_HEADER: usize = 1 + 32 + 8 + 64;
const RECEIPT_LEN: usize = 1 + 32 + 32 + 64;

/// Items waiting for the daemon between the node task and the relay task.
pub const INCOMING_QUEUE: usize = 8192;

/// Records whose receipts the author keeps, at most; the oldest go first.
pub const MAX_TRACKED: usize = 10_000;
/// Receipts kept per record, at most.
pub const MAX_RECEIPTS: usize = 1024;

/// A signed gossip message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its author's key.
    pub author: [u8; 32],
    /// When the author sent it, in microseconds since the Unix epoch.
    pub sent_at_us: u64,
    /// The data.
    pub data: Bytes,
}

/// A node's signed statement that it stored a record.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    /// The record's id.
    pub record: [u8; 32],
    /// The node that stored it.
    pub receiver: [u8; 32],
}

/// A verified gossip payload.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A record whose signature verifies.
    Record(Record),
    /// A message whose signature verifies.
    Message(Message),
    /// A receipt whose signature verifies.
    Receipt(Receipt),
}

/// What arrived, from which neighbour, and when.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The neighbour that delivered it.
    pub peer: PeerId,
    /// The gossip message id.
    pub id: MessageId,
    /// When it arrived, µs since the Unix epoch.
    pub at_us: u64,
    /// The payload.
    pub item: Incoming,
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// The gossip payload of a record.
pub fn encode_record(record: &Record) -> Bytes {
    let mut out = Vec::with_capacity(1 + record.encoded_len());
    out.push(TAG_RECORD);
    record.encode_into(&mut out);
    Bytes::from(out)
}

fn message_signed_bytes(author: &[u8; 32], sent_at_us: u64, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(MESSAGE_DOMAIN.len() + 40 + data.len());
    m.extend_from_slice(MESSAGE_DOMAIN);
    m.extend_from_slice(author);
    m.extend_from_slice(&sent_at_us.to_be_bytes());
    m.extend_from_slice(data);
    m
}

/// The gossip payload of a message signed by `key`, sent now.
pub fn encode_message(key: &SigningKey, data: &[u8], sent_at_us: u64) -> Bytes {
    let author = key.verifying_key().to_bytes();
    let signature = key.sign(&message_signed_bytes(&author, sent_at_us, data));
    let mut out = BytesMut::with_capacity(MESSAGE_HEADER + data.len());
    out.put_u8(TAG_MESSAGE);
    out.put_slice(&author);
    out.put_u64(sent_at_us);
    out.put_slice(&signature.to_bytes());
    out.put_slice(data);
    out.freeze()
}

fn receipt_signed_bytes(record: &[u8; 32], receiver: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(RECEIPT_DOMAIN.len() + 64);
    m.extend_from_slice(RECEIPT_DOMAIN);
    m.extend_from_slice(record);
    m.extend_from_slice(receiver);
    m
}

/// The gossip payload of a receipt for `record`, signed by `key`.
pub fn encode_receipt(key: &SigningKey, record: &[u8; 32]) -> Bytes {
    let receiver = key.verifying_key().to_bytes();
    let signature = key.sign(&receipt_signed_bytes(record, &receiver));
    let mut out = BytesMut::with_capacity(RECEIPT_LEN);
    out.put_u8(TAG_RECEIPT);
    out.put_slice(record);
    out.put_slice(&receiver);
    out.put_slice(&signature.to_bytes());
    out.freeze()
}

fn verify(author: &[u8; 32], message: &[u8], signature: &[u8]) -> Result<(), &'static str> {
    let key = VerifyingKey::from_bytes(author).map_err(|_| "not a public key")?;
    let signature = Signature::from_slice(signature).map_err(|_| "not a signature")?;
    key.verify(message, &signature).map_err(|_| "bad signature")
}

fn array32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}

/// Decodes and verifies a gossip payload.
pub fn decode(payload: &Bytes, max_value_len: usize) -> Result<Incoming, &'static str> {
    let Some((&tag, body)) = payload.split_first() else {
        return Err("empty payload");
    };
    match tag {
        TAG_RECORD => {
            let record = Record::from_bytes(body, max_value_len).map_err(|_| "bad record")?;
            record.verify().map_err(|_| "bad record signature")?;
            Ok(Incoming::Record(record))
        }
        TAG_MESSAGE => {
            if payload.len() < MESSAGE_HEADER {
                return Err("short message");
            }
            let author = array32(&payload[1..33]);
            let mut at = [0u8; 8];
            at.copy_from_slice(&payload[33..41]);
            let sent_at_us = u64::from_be_bytes(at);
            let signature = &payload[41..105];
            let data = payload.slice(MESSAGE_HEADER..);
            verify(
                &author,
                &message_signed_bytes(&author, sent_at_us, &data),
                signature,
            )?;
            Ok(Incoming::Message(Message {
                author,
                sent_at_us,
                data,
            }))
        }
        TAG_RECEIPT => {
            if payload.len() != RECEIPT_LEN {
                return Err("bad receipt length");
            }
            let record = array32(&payload[1..33]);
            let receiver = array32(&payload[33..65]);
            verify(
                &receiver,
                &receipt_signed_bytes(&record, &receiver),
                &payload[65..129],
            )?;
            Ok(Incoming::Receipt(Receipt { record, receiver }))
        }
        _ => Err("unknown tag"),
    }
}

/// The gossip receive handler: verifies each new payload, passes it to the
/// relay task through a bounded queue, and tells gossip whether to pass it
/// on. A full queue drops the item (counted) but still forwards it.
pub fn handler(
    max_value_len: usize,
    tx: mpsc::Sender<Arrival>,
    on_drop: impl Fn() + Send + 'static,
) -> strata_node::Handler {
    Box::new(
        move |peer, id, payload| match decode(payload, max_value_len) {
            Ok(item) => {
                let arrival = Arrival {
                    peer,
                    id: *id,
                    at_us: now_us(),
                    item,
                };
                if tx.try_send(arrival).is_err() {
                    on_drop();
                }
                Verdict::Propagate
            }
            Err(why) => {
                tracing::debug!("gossip from peer {}: {why}", peer.0);
                Verdict::Reject
            }
        },
    )
}

/// One record this node wrote, and who confirmed storing it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The record's key.
    pub key: Vec<u8>,
    /// Its version.
    pub version: u64,
    /// When it was published, µs since the Unix epoch.
    pub published_at_us: u64,
    /// Receivers and when their receipts arrived (µs).
    pub receipts: Vec<([u8; 32], u64)>,
}

/// The records this node wrote, by record id, bounded.
#[derive(Debug, Default)]
pub struct Deliveries {
    by_id: HashMap<[u8; 32], Delivery>,
    order: VecDeque<[u8; 32]>,
    /// Receipts received for our records, in total.
    pub receipts_total: u64,
}

impl Deliveries {
    /// Starts tracking a record.
    pub fn track(&mut self, id: [u8; 32], delivery: Delivery) {
        if self.by_id.insert(id, delivery).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_TRACKED {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    /// Notes a receipt; returns whether it was new and for one of ours.
    pub fn receipt(&mut self, receipt: &Receipt, at_us: u64) -> bool {
        let Some(delivery) = self.by_id.get_mut(&receipt.record) else {
            return false;
        };
        if delivery.receipts.len() >= MAX_RECEIPTS
            || delivery
                .receipts
                .iter()
                .any(|(k, _)| *k == receipt.receiver)
        {
            return false;
        }
        delivery.receipts.push((receipt.receiver, at_us));
        self.receipts_total += 1;
        true
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

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn payloads_round_trip_and_tampering_is_refused() {
        let k = key(1);
        let record = Record::sign(&k, b"a", 1, b"v").unwrap();
        let encoded = encode_record(&record);
        assert!(matches!(decode(&encoded, 1024), Ok(Incoming::Record(r)) if r == record));

        let message = encode_message(&k, b"hello", 42);
        let Ok(Incoming::Message(m)) = decode(&message, 1024) else {
            panic!("message did not decode");
        };
        assert_eq!((m.sent_at_us, &m.data[..]), (42, &b"hello"[..]));
        let mut bad = message.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode(&Bytes::from(bad), 1024).is_err());

        let receipt = encode_receipt(&key(2), &[7; 32]);
        let Ok(Incoming::Receipt(r)) = decode(&receipt, 1024) else {
            panic!("receipt did not decode");
        };
        assert_eq!(r.receiver, key(2).verifying_key().to_bytes());
        assert!(decode(&Bytes::from_static(b""), 1024).is_err());
        assert!(decode(&Bytes::from_static(b"\x09x"), 1024).is_err());
        assert!(decode(&Bytes::from_static(b"\x02short"), 1024).is_err());
    }

    #[test]
    fn deliveries_count_each_receiver_once() {
        let mut d = Deliveries::default();
        d.track(
            [1; 32],
            Delivery {
                key: b"k".to_vec(),
                version: 1,
                published_at_us: 0,
                receipts: Vec::new(),
            },
        );
        let r = Receipt {
            record: [1; 32],
            receiver: [2; 32],
        };
        assert!(d.receipt(&r, 5));
        assert!(!d.receipt(&r, 6));
        assert!(!d.receipt(
            &Receipt {
                record: [9; 32],
                receiver: [2; 32]
            },
            7
        ));
        assert_eq!(d.receipts_total, 1);
    }
}
