//! `monero-epee` 0.2.1: decoding only, through a cursor over borrowed bytes
//! with no typed decoding. Each message is walked by hand, every field
//! extracted into strata's plain message structs (their serde derives play
//! no part here); entries it does not know are skipped.
//!
//! Field names are monerod's wire names.
#![allow(missing_docs)]

use monero_epee::{Epee, EpeeEntry, EpeeError};

use crate::messages as m;

type Entry<'a, 'p> = EpeeEntry<'a, 'p, &'a [u8]>;

/// A string of exactly `N` bytes.
fn fixed<const N: usize>(e: Entry<'_, '_>) -> Result<[u8; N], EpeeError> {
    e.to_fixed_len_str(N)?
        .consume()
        .try_into()
        .map_err(|_| EpeeError::TypeError)
}

fn node_data(e: Entry<'_, '_>) -> Result<m::NodeData, EpeeError> {
    let mut o = m::NodeData::default();
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

fn payload_data(e: Entry<'_, '_>) -> Result<m::CoreSyncData, EpeeError> {
    let mut o = m::CoreSyncData::default();
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

fn addr(e: Entry<'_, '_>, o: &mut m::Addr) -> Result<(), EpeeError> {
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

fn adr(e: Entry<'_, '_>, o: &mut m::NetAddress) -> Result<(), EpeeError> {
    let mut fields = e.fields()?;
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"addr" => addr(v, &mut o.addr)?,
            b"type" => o.kind = v.to_u8()?,
            _ => {}
        }
    }
    Ok(())
}

fn peer(e: Entry<'_, '_>) -> Result<m::PeerEntry, EpeeError> {
    let mut o = m::PeerEntry::default();
    let mut fields = e.fields()?;
    while let Some(kv) = fields.next() {
        let (k, v) = kv?;
        match k.consume() {
            b"adr" => adr(v, &mut o.adr)?,
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
pub fn decode_handshake(body: &[u8]) -> Result<m::HandshakeResponse, EpeeError> {
    let mut epee = Epee::new(body)?;
    let mut fields = epee.entry()?.fields()?;
    let mut out = m::HandshakeResponse::default();
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
pub fn decode_blob(body: &[u8]) -> Result<m::BorrowedBlobMessage<'_>, EpeeError> {
    let mut epee = Epee::new(body)?;
    let mut fields = epee.entry()?.fields()?;
    let mut out = m::BorrowedBlobMessage::default();
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
