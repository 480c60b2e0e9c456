//! `epee-encoding` 0.5.0: its own `EpeeObject` derive. Optional fields are
//! `None` when missing and left out when `None`; an empty `Vec` is left out
//! too. Blobs are `Vec<u8>`, copied out of the input.
//!
//! Field names are monerod's wire names.
#![allow(missing_docs)]

use bytes::Bytes;
use epee_encoding::EpeeObject;

use crate::messages as m;

/// [`m::NodeData`].
#[derive(Debug, EpeeObject)]
pub struct NodeData {
    pub my_port: u32,
    pub network_id: [u8; 16],
    pub peer_id: u64,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
    pub support_flags: Option<u32>,
}

/// [`m::CoreSyncData`].
#[derive(Debug, EpeeObject)]
pub struct CoreSyncData {
    pub cumulative_difficulty: u64,
    pub cumulative_difficulty_top64: u64,
    pub current_height: u64,
    pub pruning_seed: Option<u32>,
    pub top_id: [u8; 32],
    pub top_version: u8,
}

/// [`m::Addr`].
#[derive(Debug, EpeeObject)]
pub struct Addr {
    pub addr: Option<[u8; 16]>,
    pub m_ip: Option<u32>,
    pub m_port: u16,
}

/// [`m::NetAddress`].
#[derive(Debug, EpeeObject)]
pub struct NetAddress {
    pub addr: Addr,
    // A field named `r#type` would be written as "r#type".
    #[epee_alt_name("type")]
    pub kind: u8,
}

/// [`m::PeerEntry`].
#[derive(Debug, EpeeObject)]
pub struct PeerEntry {
    pub adr: NetAddress,
    pub id: u64,
    pub last_seen: Option<i64>,
    pub pruning_seed: Option<u32>,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
}

/// [`m::HandshakeResponse`].
#[derive(Debug, EpeeObject)]
pub struct HandshakeResponse {
    pub local_peerlist_new: Vec<PeerEntry>,
    pub node_data: NodeData,
    pub payload_data: CoreSyncData,
}

/// [`m::BlobMessage`], the blob copied into a `Vec`.
#[derive(Debug, EpeeObject)]
pub struct BlobMessage {
    pub blob: Vec<u8>,
    pub height: u64,
    pub top_id: [u8; 32],
}

conversions!();

/// Appends the body of `object` to `out` with epee-encoding's public pieces,
/// as its `to_bytes` writes it into a new `Vec`: the header, the field count
/// (a one-byte varint: the messages here have fewer than 64 fields) and the
/// fields.
pub fn write_body<T: EpeeObject>(object: &T, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\x01\x11\x01\x01\x01\x01\x02\x01\x01");
    let count = u8::try_from(object.number_of_fields())
        .ok()
        .filter(|count| *count < 64)
        .expect("fewer than 64 fields");
    out.push(count << 2);
    object
        .write_fields(out)
        .expect("epee-encoding writes the fields");
}
