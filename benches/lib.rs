//! Inputs and message definitions shared by the benchmarks.
//!
//! Every benchmark group compares one workload: the function `strata`
//! measures strata, every other function in the group measures a baseline in
//! the same run. [`messages`] holds strata's derived structs; [`baselines`]
//! holds each baseline's equivalent of them, with conversions to and from
//! strata's structs so the benchmarks can check that every crate decoded the
//! same fields before timing anything.

use std::path::PathBuf;

use bytes::Bytes;

pub mod messages;

/// Conversions between strata's [`messages`] and a baseline module's
/// structs of the same names and fields, expanded inside that module (which
/// imports [`messages`] as `m` and `bytes::Bytes`).
macro_rules! conversions {
    () => {
        impl From<&m::NodeData> for NodeData {
            fn from(v: &m::NodeData) -> Self {
                NodeData {
                    my_port: v.my_port,
                    network_id: v.network_id,
                    peer_id: v.peer_id,
                    rpc_credits_per_hash: v.rpc_credits_per_hash,
                    rpc_port: v.rpc_port,
                    support_flags: v.support_flags,
                }
            }
        }

        impl From<NodeData> for m::NodeData {
            fn from(v: NodeData) -> Self {
                m::NodeData {
                    my_port: v.my_port,
                    network_id: v.network_id,
                    peer_id: v.peer_id,
                    rpc_credits_per_hash: v.rpc_credits_per_hash,
                    rpc_port: v.rpc_port,
                    support_flags: v.support_flags,
                }
            }
        }

        impl From<&m::CoreSyncData> for CoreSyncData {
            fn from(v: &m::CoreSyncData) -> Self {
                CoreSyncData {
                    cumulative_difficulty: v.cumulative_difficulty,
                    cumulative_difficulty_top64: v.cumulative_difficulty_top64,
                    current_height: v.current_height,
                    pruning_seed: v.pruning_seed,
                    top_id: v.top_id,
                    top_version: v.top_version,
                }
            }
        }

        impl From<CoreSyncData> for m::CoreSyncData {
            fn from(v: CoreSyncData) -> Self {
                m::CoreSyncData {
                    cumulative_difficulty: v.cumulative_difficulty,
                    cumulative_difficulty_top64: v.cumulative_difficulty_top64,
                    current_height: v.current_height,
                    pruning_seed: v.pruning_seed,
                    top_id: v.top_id,
                    top_version: v.top_version,
                }
            }
        }

        impl From<&m::PeerEntry> for PeerEntry {
            fn from(v: &m::PeerEntry) -> Self {
                PeerEntry {
                    adr: NetAddress {
                        addr: Addr {
                            addr: v.adr.addr.addr,
                            m_ip: v.adr.addr.m_ip,
                            m_port: v.adr.addr.m_port,
                        },
                        kind: v.adr.kind,
                    },
                    id: v.id,
                    last_seen: v.last_seen,
                    pruning_seed: v.pruning_seed,
                    rpc_credits_per_hash: v.rpc_credits_per_hash,
                    rpc_port: v.rpc_port,
                }
            }
        }

        impl From<PeerEntry> for m::PeerEntry {
            fn from(v: PeerEntry) -> Self {
                m::PeerEntry {
                    adr: m::NetAddress {
                        addr: m::Addr {
                            addr: v.adr.addr.addr,
                            m_ip: v.adr.addr.m_ip,
                            m_port: v.adr.addr.m_port,
                        },
                        kind: v.adr.kind,
                    },
                    id: v.id,
                    last_seen: v.last_seen,
                    pruning_seed: v.pruning_seed,
                    rpc_credits_per_hash: v.rpc_credits_per_hash,
                    rpc_port: v.rpc_port,
                }
            }
        }

        impl From<&m::HandshakeResponse> for HandshakeResponse {
            fn from(v: &m::HandshakeResponse) -> Self {
                HandshakeResponse {
                    local_peerlist_new: v.local_peerlist_new.iter().map(PeerEntry::from).collect(),
                    node_data: (&v.node_data).into(),
                    payload_data: (&v.payload_data).into(),
                }
            }
        }

        impl From<HandshakeResponse> for m::HandshakeResponse {
            fn from(v: HandshakeResponse) -> Self {
                m::HandshakeResponse {
                    local_peerlist_new: v.local_peerlist_new.into_iter().map(Into::into).collect(),
                    node_data: v.node_data.into(),
                    payload_data: v.payload_data.into(),
                }
            }
        }

        impl From<&m::BlobMessage> for BlobMessage {
            fn from(v: &m::BlobMessage) -> Self {
                BlobMessage {
                    blob: v.blob.to_vec(),
                    height: v.height,
                    top_id: v.top_id,
                }
            }
        }

        impl From<BlobMessage> for m::BlobMessage {
            fn from(v: BlobMessage) -> Self {
                m::BlobMessage {
                    blob: Bytes::from(v.blob),
                    height: v.height,
                    top_id: v.top_id,
                }
            }
        }
    };
}

/// The crates strata is measured against, one module each.
pub mod baselines {
    pub mod bin_serde;
    pub mod epee_encoding;
    pub mod monero_epee;
}

use messages::{
    Addr, BlobMessage, CoreSyncData, HandshakeResponse, NetAddress, NodeData, PeerEntry,
};

/// Length of a Levin header, which precedes every portable-storage body in a
/// captured frame.
pub const LEVIN_HEADER_LEN: usize = 33;

/// `shared/vectors/monerod`, beside the repository.
pub fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/monerod");
    assert!(
        dir.is_dir(),
        "monerod vectors not found at {}: the benchmarks expect shared/ beside the repository",
        dir.display()
    );
    dir
}

/// A whole captured frame (Levin header and body), e.g.
/// `testnet/handshake_response`.
pub fn monerod_frame(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read monerod vector {}: {e}", path.display()));
    hex::decode(text.trim())
        .unwrap_or_else(|e| panic!("monerod vector {} is not hex: {e}", path.display()))
}

/// Every frame captured from monerod, as (name, whole frame), in a fixed
/// order.
pub fn monerod_frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for net in ["testnet", "regtest"] {
        let dir = vectors_dir().join(net);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let mut names: Vec<String> = entries
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let stem = path.file_stem()?.to_str()?.to_owned();
                (path.extension()? == "hex").then_some(stem)
            })
            .collect();
        names.sort();
        for name in names {
            let name = format!("{net}/{name}");
            let frame = monerod_frame(&name);
            out.push((name, frame));
        }
    }
    assert!(
        !out.is_empty(),
        "no monerod frames found under {}",
        vectors_dir().display()
    );
    out
}

/// The portable-storage body of a captured frame: what follows the Levin
/// header.
pub fn monerod_body(name: &str) -> Vec<u8> {
    let frame = monerod_frame(name);
    assert!(
        frame.len() > LEVIN_HEADER_LEN,
        "monerod vector {name} is shorter than a Levin header"
    );
    frame[LEVIN_HEADER_LEN..].to_vec()
}

/// The body of monerod's handshake response captured on testnet.
pub fn monerod_handshake_response() -> Vec<u8> {
    monerod_body("testnet/handshake_response")
}

/// A deterministic stream of pseudo-random numbers (splitmix64).
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A handshake response carrying `peers` IPv4 peer-list entries, whose
/// optional fields are present in varying combinations.
pub fn synthetic_handshake(peers: u32) -> HandshakeResponse {
    let local_peerlist_new = (0..peers)
        .map(|i| {
            let r = mix(u64::from(i));
            let [a, b, c, d, port, ..] = r.to_le_bytes();
            PeerEntry {
                adr: NetAddress {
                    addr: Addr {
                        addr: None,
                        m_ip: Some(u32::from_le_bytes([a, b, c, d])),
                        m_port: 18080 + u16::from(port % 4),
                    },
                    kind: 1,
                },
                id: mix(r),
                last_seen: (i % 3 != 0).then(|| 1_700_000_000 + i64::from(i) * 37),
                pruning_seed: (i % 4 == 0).then_some(0x180 + i % 8),
                rpc_credits_per_hash: (i % 10 == 0).then_some(100 + i),
                rpc_port: (i % 5 == 0).then_some(18089),
            }
        })
        .collect();
    HandshakeResponse {
        local_peerlist_new,
        node_data: NodeData {
            my_port: 18080,
            network_id: *b"\x12\x30\xf1\x71\x61\x04\x41\x61\x17\x31\x00\x82\x16\xa1\xa1\x10",
            peer_id: mix(u64::from(peers) ^ 0xfeed),
            rpc_credits_per_hash: None,
            rpc_port: Some(18089),
            support_flags: Some(1),
        },
        payload_data: CoreSyncData {
            cumulative_difficulty: 0x0123_4567_89ab_cdef,
            cumulative_difficulty_top64: 0,
            current_height: 3_312_345,
            pruning_seed: Some(0x181),
            top_id: std::array::from_fn(|i| mix(i as u64).to_le_bytes()[0]),
            top_version: 16,
        },
    }
}

/// A message with one blob of `len` bytes and two small fields.
pub fn blob_message(len: usize) -> BlobMessage {
    BlobMessage {
        blob: Bytes::from(
            (0..len)
                .map(|i| mix(i as u64).to_le_bytes()[0])
                .collect::<Vec<u8>>(),
        ),
        height: 3_312_345,
        top_id: std::array::from_fn(|i| mix(!(i as u64)).to_le_bytes()[0]),
    }
}
