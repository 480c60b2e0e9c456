//! Signed messages carried as gossip payloads (`publish` and `subscribe`).
//!
//! Records do not travel here: the sync layer (`strata_sync`) stores,
//! gossips, reconciles and confirms them, and hands every gossip payload
//! whose first byte is not its record tag up as an event, whose verdict
//! the daemon gives from [`decode`].
//!
//! A message is one tag byte and a body:
//!
//! ```text
//! 0x02 message   author (32) ‖ sent_at µs (u64 BE) ‖ signature (64) ‖ data
//! ```
//!
//! The signature covers `"strata-message-v1" ‖ author ‖ sent_at ‖ data`.
//! Tag 0x01 is the sync layer's record.
#![deny(clippy::arithmetic_side_effects)]

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut as _, Bytes, BytesMut};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Tag of a message.
pub const TAG_MESSAGE: u8 = 2;
// Messages and the sync layer's records share the gossip.
const _: () = assert!(
    TAG_MESSAGE != strata_sync::wire::GOSSIP_RECORD
        && TAG_MESSAGE != strata_sync::wire::GOSSIP_CHALLENGE
);

const MESSAGE_DOMAIN: &[u8] = b"strata-message-v1";
const MESSAGE_HEADER: usize = 1 + 32 + 8 + 64;
/// What the signature covers before the data: domain, author, send time.
const SIGNED_PREFIX: usize = MESSAGE_DOMAIN.len() + 32 + 8;

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

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

fn message_signed_bytes(author: &[u8; 32], sent_at_us: u64, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(data.len().saturating_add(SIGNED_PREFIX));
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
    let mut out = BytesMut::with_capacity(data.len().saturating_add(MESSAGE_HEADER));
    out.put_u8(TAG_MESSAGE);
    out.put_slice(&author);
    out.put_u64(sent_at_us);
    out.put_slice(&signature.to_bytes());
    out.put_slice(data);
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

/// Decodes and verifies a message's gossip payload.
pub fn decode(payload: &Bytes) -> Result<Message, &'static str> {
    match payload.first() {
        None => return Err("empty payload"),
        Some(&TAG_MESSAGE) => {}
        Some(_) => return Err("unknown tag"),
    }
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
    Ok(Message {
        author,
        sent_at_us,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn messages_round_trip_and_tampering_is_refused() {
        let k = key(1);
        let message = encode_message(&k, b"hello", 42);
        let m = decode(&message).expect("the message decodes");
        assert_eq!((m.sent_at_us, &m.data[..]), (42, &b"hello"[..]));
        let mut bad = message.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode(&Bytes::from(bad)).is_err());
        assert!(decode(&Bytes::from_static(b"")).is_err());
        assert!(decode(&Bytes::from_static(b"\x09x")).is_err());
        assert!(decode(&Bytes::from_static(b"\x02short")).is_err());
        let record = strata_store::Record::sign(&k, b"a", 1, b"v").unwrap();
        assert!(decode(&strata_sync::wire::gossip_payload(&record)).is_err());
    }
}
