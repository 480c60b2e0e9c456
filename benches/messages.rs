//! strata's messages: plain derived structs, fields declared in the sorted
//! order monerod writes them. Field names are monerod's wire names. Each
//! derives serde's traits (for the serde path, `to_vec` and `from_slice`)
//! and strata's `Encode` and `Decode` (for `encode` and `decode`).
#![allow(missing_docs)]

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_portable_storage::{Decode, Encode, blob};

/// `basic_node_data` of a handshake.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct NodeData {
    pub my_port: u32,
    pub network_id: [u8; 16],
    pub peer_id: u64,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
    pub support_flags: Option<u32>,
}

/// `CORE_SYNC_DATA`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct CoreSyncData {
    pub cumulative_difficulty: u64,
    pub cumulative_difficulty_top64: u64,
    pub current_height: u64,
    pub pruning_seed: Option<u32>,
    pub top_id: [u8; 32],
    pub top_version: u8,
}

/// The address inside a peer's `adr`: `m_ip` for IPv4, `addr` for IPv6.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Addr {
    pub addr: Option<[u8; 16]>,
    pub m_ip: Option<u32>,
    pub m_port: u16,
}

/// A network address with its type (1 IPv4, 2 IPv6).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct NetAddress {
    pub addr: Addr,
    #[serde(rename = "type")]
    pub kind: u8,
}

/// One entry of a peer list.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct PeerEntry {
    pub adr: NetAddress,
    pub id: u64,
    pub last_seen: Option<i64>,
    pub pruning_seed: Option<u32>,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
}

/// The response to `COMMAND_HANDSHAKE` (1001).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct HandshakeResponse {
    #[serde(default)]
    pub local_peerlist_new: Vec<PeerEntry>,
    pub node_data: NodeData,
    pub payload_data: CoreSyncData,
}

/// One large blob and two small fields. Decoded from [`Bytes`], `blob` is a
/// view of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct BlobMessage {
    #[serde(with = "blob")]
    pub blob: Bytes,
    pub height: u64,
    pub top_id: [u8; 32],
}

/// [`BlobMessage`] with its blob borrowed: from the input when decoding (the
/// same output as monero-epee's cursor gives), from any buffer when encoding.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct BorrowedBlobMessage<'a> {
    #[serde(borrow, with = "blob")]
    pub blob: &'a [u8],
    pub height: u64,
    pub top_id: [u8; 32],
}
