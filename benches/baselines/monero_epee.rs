//! `monero-epee` 0.2.1: decoding only, through a cursor over borrowed bytes
//! with no typed decoding. Each message is walked by hand, every field
//! extracted into a plain struct; entries it does not know are skipped.
//!
//! Field names are monerod's wire names.
#![allow(missing_docs)]

use bytes::Bytes;
use monero_epee::{Epee, EpeeEntry, EpeeError};

use crate::messages as m;

type Entry<'a, 'p> = EpeeEntry<'a, 'p, &'a [u8]>;

/// [`m::NodeData`].
#[derive(Debug, Default)]
pub struct NodeData {
    pub my_port: u32,
    pub network_id: [u8; 16],
    pub peer_id: u64,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
    pub support_flags: Option<u32>,
}

/// [`m::CoreSyncData`].
#[derive(Debug, Default)]
pub struct CoreSyncData {
    pub cumulative_difficulty: u64,
    pub cumulative_difficulty_top64: u64,
    pub current_height: u64,
    pub pruning_seed: Option<u32>,
    pub top_id: [u8; 32],
    pub top_version: u8,
}

/// [`m::PeerEntry`], its address flattened.
#[derive(Debug, Default)]
pub struct PeerEntry {
    pub kind: u8,
    pub addr: Option<[u8; 16]>,
    pub m_ip: Option<u32>,
    pub m_port: u16,
    pub id: u64,
    pub last_seen: Option<i64>,
    pub pruning_seed: Option<u32>,
    pub rpc_credits_per_hash: Option<u32>,
    pub rpc_port: Option<u16>,
}

/// [`m::HandshakeResponse`].
#[derive(Debug, Default)]
pub struct HandshakeResponse {
    pub local_peerlist_new: Vec<PeerEntry>,
    pub node_data: NodeData,
    pub payload_data: CoreSyncData,
}

/// [`m::BlobMessage`], the blob borrowed from the input.
#[derive(Debug, Default)]
pub struct BlobMessage<'a> {
    pub blob: &'a [u8],
    pub height: u64,
    pub top_id: [u8; 32],
}

/// A string of exactly `N` bytes.
fn fixed<const N: usize>(e: Entry<'_, '_>) -> Result<[u8; N], EpeeError> {
    e.to_fixed_len_str(N)?
        .consume()
        .try_into()
        .map_err(|_| EpeeError::TypeError)
}

fn node_data(e: Entry<'_, '_>) -> Result<NodeData, EpeeError> {
    let mut o = NodeData::default();
    let mut fields = e.fields()?;
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"my_port" => o.my_port = v.to_u32()?,
            b"network_id" => o.network_id = fixed(v)?,
            b"peer_id" => o.peer_id = v.to_u64()?,
            b"rpc_credits_per_hash" => o.rpc_credits_per_hash = Some(v.to_u32()?),
            b"rpc_port" => o.rpc_port = Some(v.to_u16()?),
            b"support_flags" => o.support_flags = Some(v.to_u32()?),
            _ => {} // dropping `v` skips the value
        }
    }
    Ok(o)
}

fn payload_data(e: Entry<'_, '_>) -> Result<CoreSyncData, EpeeError> {
    let mut o = CoreSyncData::default();
    let mut fields = e.fields()?;
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"cumulative_difficulty" => o.cumulative_difficulty = v.to_u64()?,
            b"cumulative_difficulty_top64" => o.cumulative_difficulty_top64 = v.to_u64()?,
            b"current_height" => o.current_height = v.to_u64()?,
            b"pruning_seed" => o.pruning_seed = Some(v.to_u32()?),
            b"top_id" => o.top_id = fixed(v)?,
            b"top_version" => o.top_version = v.to_u8()?,
            _ => {}
        }
    }
    Ok(o)
}

fn addr(e: Entry<'_, '_>, o: &mut PeerEntry) -> Result<(), EpeeError> {
    let mut fields = e.fields()?;
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"addr" => o.addr = Some(fixed(v)?),
            b"m_ip" => o.m_ip = Some(v.to_u32()?),
            b"m_port" => o.m_port = v.to_u16()?,
            _ => {}
        }
    }
    Ok(())
}

fn adr(e: Entry<'_, '_>, o: &mut PeerEntry) -> Result<(), EpeeError> {
    let mut fields = e.fields()?;
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"addr" => addr(v, o)?,
            b"type" => o.kind = v.to_u8()?,
            _ => {}
        }
    }
    Ok(())
}

fn peer(e: Entry<'_, '_>) -> Result<PeerEntry, EpeeError> {
    let mut o = PeerEntry::default();
    let mut fields = e.fields()?;
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"adr" => adr(v, &mut o)?,
            b"id" => o.id = v.to_u64()?,
            b"last_seen" => o.last_seen = Some(v.to_i64()?),
            b"pruning_seed" => o.pruning_seed = Some(v.to_u32()?),
            b"rpc_credits_per_hash" => o.rpc_credits_per_hash = Some(v.to_u32()?),
            b"rpc_port" => o.rpc_port = Some(v.to_u16()?),
            _ => {}
        }
    }
    Ok(o)
}

/// Decodes a handshake response body.
pub fn decode_handshake(body: &[u8]) -> Result<HandshakeResponse, EpeeError> {
    let mut epee = Epee::new(body)?;
    let mut fields = epee.entry()?.fields()?;
    let mut out = HandshakeResponse::default();
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"local_peerlist_new" => {
                // Every element takes at least one byte.
                out.local_peerlist_new.reserve(v.len().min(body.len()));
                let mut items = v.iterate()?;
                while let Some(item) = items.next() {
                    out.local_peerlist_new.push(peer(item?)?);
                }
            }
            b"node_data" => out.node_data = node_data(v)?,
            b"payload_data" => out.payload_data = payload_data(v)?,
            _ => {}
        }
    }
    Ok(out)
}

/// Decodes a blob message body, borrowing the blob.
pub fn decode_blob(body: &[u8]) -> Result<BlobMessage<'_>, EpeeError> {
    let mut epee = Epee::new(body)?;
    let mut fields = epee.entry()?.fields()?;
    let mut out = BlobMessage::default();
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"blob" => out.blob = v.to_str()?.consume(),
            b"height" => out.height = v.to_u64()?,
            b"top_id" => out.top_id = fixed(v)?,
            _ => {}
        }
    }
    Ok(out)
}

impl From<PeerEntry> for m::PeerEntry {
    fn from(v: PeerEntry) -> Self {
        m::PeerEntry {
            adr: m::NetAddress {
                addr: m::Addr {
                    addr: v.addr,
                    m_ip: v.m_ip,
                    m_port: v.m_port,
                },
                kind: v.kind,
            },
            id: v.id,
            last_seen: v.last_seen,
            pruning_seed: v.pruning_seed,
            rpc_credits_per_hash: v.rpc_credits_per_hash,
            rpc_port: v.rpc_port,
        }
    }
}

impl From<HandshakeResponse> for m::HandshakeResponse {
    fn from(v: HandshakeResponse) -> Self {
        let n = v.node_data;
        let p = v.payload_data;
        m::HandshakeResponse {
            local_peerlist_new: v.local_peerlist_new.into_iter().map(Into::into).collect(),
            node_data: m::NodeData {
                my_port: n.my_port,
                network_id: n.network_id,
                peer_id: n.peer_id,
                rpc_credits_per_hash: n.rpc_credits_per_hash,
                rpc_port: n.rpc_port,
                support_flags: n.support_flags,
            },
            payload_data: m::CoreSyncData {
                cumulative_difficulty: p.cumulative_difficulty,
                cumulative_difficulty_top64: p.cumulative_difficulty_top64,
                current_height: p.current_height,
                pruning_seed: p.pruning_seed,
                top_id: p.top_id,
                top_version: p.top_version,
            },
        }
    }
}

impl From<BlobMessage<'_>> for m::BlobMessage {
    fn from(v: BlobMessage<'_>) -> Self {
        m::BlobMessage {
            blob: Bytes::copy_from_slice(v.blob),
            height: v.height,
            top_id: v.top_id,
        }
    }
}
