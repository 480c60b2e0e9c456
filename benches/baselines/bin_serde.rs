//! `monero-epee-bin-serde` 1.0.1: serde, with the workarounds it needs.
//!
//! - Its `deserialize_struct` does not consume the type byte of a nested
//!   object, so nested struct fields go through `section`.
//! - It refuses `Option` (`deserialize_option` and `serialize_some` fail), so
//!   optional fields go through `opt` and are skipped when `None`.
//! - An empty `Vec` would be written as a name with no type byte, so it is
//!   skipped.
//! - A plain `Vec<u8>` encodes but does not decode: blobs use `serde_bytes`.
//!
//! Field names are monerod's wire names.
#![allow(missing_docs)]

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::messages as m;

/// Reads a nested struct through `deserialize_any`, which does consume the
/// object's type byte.
fn section<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an epee section")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// `Option` fields: only present values are read, and `None` is skipped
/// before getting here.
mod opt {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }

    pub(super) fn serialize<S: Serializer, T: Serialize>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => v.serialize(s),
            None => s.serialize_none(),
        }
    }
}

/// [`m::NodeData`].
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeData {
    pub my_port: u32,
    pub network_id: [u8; 16],
    pub peer_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub rpc_credits_per_hash: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub rpc_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub support_flags: Option<u32>,
}

/// [`m::CoreSyncData`].
#[derive(Debug, Serialize, Deserialize)]
pub struct CoreSyncData {
    pub cumulative_difficulty: u64,
    pub cumulative_difficulty_top64: u64,
    pub current_height: u64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub pruning_seed: Option<u32>,
    pub top_id: [u8; 32],
    pub top_version: u8,
}

/// [`m::Addr`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Addr {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub addr: Option<[u8; 16]>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub m_ip: Option<u32>,
    pub m_port: u16,
}

/// [`m::NetAddress`].
#[derive(Debug, Serialize, Deserialize)]
pub struct NetAddress {
    #[serde(deserialize_with = "section")]
    pub addr: Addr,
    #[serde(rename = "type")]
    pub kind: u8,
}

/// [`m::PeerEntry`].
#[derive(Debug, Serialize, Deserialize)]
pub struct PeerEntry {
    #[serde(deserialize_with = "section")]
    pub adr: NetAddress,
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub last_seen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub pruning_seed: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub rpc_credits_per_hash: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt")]
    pub rpc_port: Option<u16>,
}

/// [`m::HandshakeResponse`].
#[derive(Debug, Serialize, Deserialize)]
pub struct HandshakeResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_peerlist_new: Vec<PeerEntry>,
    #[serde(deserialize_with = "section")]
    pub node_data: NodeData,
    #[serde(deserialize_with = "section")]
    pub payload_data: CoreSyncData,
}

/// [`m::BlobMessage`], the blob copied into a `Vec`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlobMessage {
    #[serde(with = "serde_bytes")]
    pub blob: Vec<u8>,
    pub height: u64,
    pub top_id: [u8; 32],
}

conversions!();
