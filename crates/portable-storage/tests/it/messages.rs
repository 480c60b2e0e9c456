//! monerod's p2p admin messages as plain derived structs, fields declared in
//! the sorted order monerod writes them. Each derives serde's traits and
//! strata's, so both paths can be held against each other.

use serde::{Deserialize, Serialize};
use strata_portable_storage::{Decode, Encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct NodeData {
    pub my_port: u32,
    pub network_id: [u8; 16],
    pub peer_id: u64,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
    pub support_flags: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct CoreSyncData {
    pub cumulative_difficulty: u64,
    pub cumulative_difficulty_top64: Option<u64>,
    pub current_height: u64,
    pub pruning_seed: Option<u32>,
    pub top_id: [u8; 32],
    pub top_version: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Addr {
    pub addr: Option<[u8; 16]>,
    pub m_ip: Option<u32>,
    pub m_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct NetAddress {
    pub addr: Addr,
    #[serde(rename = "type")]
    pub kind: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct PeerEntry {
    pub adr: NetAddress,
    pub id: u64,
    pub last_seen: Option<i64>,
    pub pruning_seed: Option<u32>,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct HandshakeRequest {
    pub node_data: NodeData,
    pub payload_data: CoreSyncData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct HandshakeResponse {
    #[serde(default)]
    pub local_peerlist_new: Vec<PeerEntry>,
    pub node_data: NodeData,
    pub payload_data: CoreSyncData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct TimedSyncRequest {
    pub payload_data: CoreSyncData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct TimedSyncResponse {
    #[serde(default)]
    pub local_peerlist_new: Vec<PeerEntry>,
    pub payload_data: CoreSyncData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct PingResponse {
    pub peer_id: u64,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct SupportFlagsResponse {
    pub support_flags: u32,
}
