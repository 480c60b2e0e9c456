//! The node's messages: Monero's p2p admin commands with monerod's field
//! names and types, and strata's gossip commands. Bodies are portable-storage
//! sections; fields left out when they hold their default, as monerod does.
//! Every message derives serde's traits and portable-storage's `Encode` and
//! `Decode`, which [`encode`] and [`decode`] use: the same bytes, read and
//! written field by field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strata_portable_storage::{Decode, Encode, blob};

/// Command numbers the node speaks. Monero's p2p commands are 1001–1007 and
/// its cryptonote commands 2001–2010; strata's own commands start at 3001.
pub mod command {
    pub use strata_levin::command::{HANDSHAKE, PING, REQUEST_SUPPORT_FLAGS, TIMED_SYNC};

    /// Gossip: a whole message (pushed, or sent on request). Notification.
    pub const GOSSIP_MESSAGE: u32 = 3001;
    /// Gossip: short ids of messages the sender has. Notification.
    pub const GOSSIP_ANNOUNCE: u32 = 3002;
    /// Gossip: short ids the sender wants. Notification.
    pub const GOSSIP_REQUEST: u32 = 3003;
    /// Gossip: whole message ids (32 bytes each) the sender wants, for
    /// messages that depend on them. Notification.
    pub const GOSSIP_FETCH: u32 = 3004;
    /// First command number of the range the node hands to the layer above
    /// (the sync layer) untouched, after the handshake.
    pub const UPPER_FIRST: u32 = 3100;
    /// Last command number of that range.
    pub const UPPER_LAST: u32 = 3999;
}

/// Most entries of a received peer list; more is a protocol violation.
pub const MAX_PEER_LIST: usize = 250;
/// Most short ids in one announcement or request.
pub const MAX_IDS_PER_MESSAGE: usize = 1000;
/// Length of a short id.
pub const SHORT_ID_LEN: usize = 8;
/// Length of a whole message id on the wire.
pub const MESSAGE_ID_LEN: usize = 32;
/// Most messages one gossip message may depend on.
pub const MAX_DEPS: usize = 64;

/// What a network is known by in handshakes: 16 bytes.
pub type NetworkId = [u8; 16];

/// `basic_node_data`: who a node is.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct NodeData {
    /// The port the node listens on (0: none).
    pub my_port: u32,
    /// The network the node is on.
    pub network_id: NetworkId,
    /// A random id, new every start.
    pub peer_id: u64,
    /// monerod: RPC pricing; carried, unused.
    #[serde(default)]
    pub rpc_credits_per_hash: Option<u32>,
    /// monerod: RPC port; carried, unused.
    #[serde(default)]
    pub rpc_port: Option<u16>,
    /// Feature bits (monerod: 1 = fluffy blocks).
    #[serde(default)]
    pub support_flags: Option<u32>,
    /// strata: the node's Ed25519 public key. monerod ignores it.
    #[serde(default)]
    pub strata_key: Option<[u8; 32]>,
}

/// Monero's `CORE_SYNC_DATA`, the `payload_data` of monerod's handshakes
/// and timed syncs: one implementation of the payload the layer above
/// supplies.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct CoreSyncData {
    /// Cumulative difficulty, low 64 bits.
    pub cumulative_difficulty: u64,
    /// Cumulative difficulty, high 64 bits (optional when read).
    #[serde(default)]
    pub cumulative_difficulty_top64: u64,
    /// Chain height.
    pub current_height: u64,
    /// Pruning seed (0: not pruned).
    #[serde(default)]
    pub pruning_seed: Option<u32>,
    /// Id of the top block.
    pub top_id: [u8; 32],
    /// Version of the top block.
    #[serde(default)]
    pub top_version: u8,
}

/// What the layer above puts in `payload_data`: a type that derives serde's
/// traits and portable-storage's `Encode` and `Decode`.
pub trait Payload:
    Serialize
    + DeserializeOwned
    + Encode
    + for<'de> Decode<'de>
    + Clone
    + std::fmt::Debug
    + Send
    + 'static
{
}
impl<T> Payload for T where
    T: Serialize
        + DeserializeOwned
        + Encode
        + for<'de> Decode<'de>
        + Clone
        + std::fmt::Debug
        + Send
        + 'static
{
}

/// The address inside a peer entry: `m_ip` for IPv4, `addr` for IPv6.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Addr {
    /// IPv6 address bytes.
    #[serde(default)]
    pub addr: Option<[u8; 16]>,
    /// IPv4 address: its network-order bytes read as a little-endian u32.
    #[serde(default)]
    pub m_ip: Option<u32>,
    /// Port.
    #[serde(default)]
    pub m_port: Option<u16>,
}

/// A network address with its type (1 IPv4, 2 IPv6, 3 I2P, 4 Tor).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct NetAddress {
    /// The address.
    pub addr: Addr,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: u8,
}

impl NetAddress {
    /// The IPv4 or IPv6 socket address; `None` for other kinds.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let port = self.addr.m_port?;
        match self.kind {
            1 => {
                let ip = Ipv4Addr::from(self.addr.m_ip?.to_le_bytes());
                Some(SocketAddr::new(IpAddr::V4(ip), port))
            }
            2 => Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(self.addr.addr?)),
                port,
            )),
            _ => None,
        }
    }
}

impl From<SocketAddr> for NetAddress {
    fn from(addr: SocketAddr) -> NetAddress {
        match addr.ip() {
            IpAddr::V4(v4) => NetAddress {
                addr: Addr {
                    addr: None,
                    m_ip: Some(u32::from_le_bytes(v4.octets())),
                    m_port: Some(addr.port()),
                },
                kind: 1,
            },
            IpAddr::V6(v6) => NetAddress {
                addr: Addr {
                    addr: Some(v6.octets()),
                    m_ip: None,
                    m_port: Some(addr.port()),
                },
                kind: 2,
            },
        }
    }
}

/// One entry of a peer list.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct PeerEntry {
    /// The peer's address.
    pub adr: NetAddress,
    /// Its peer id.
    pub id: u64,
    /// When it was last seen (Unix seconds); left out to anonymise.
    #[serde(default)]
    pub last_seen: Option<i64>,
    /// monerod: pruning seed.
    #[serde(default)]
    pub pruning_seed: Option<u32>,
    /// monerod: RPC pricing.
    #[serde(default)]
    pub rpc_credits_per_hash: Option<u32>,
    /// monerod: RPC port.
    #[serde(default)]
    pub rpc_port: Option<u16>,
    /// strata: the node key the address proved to the sender over TLS, so
    /// that a dial to it pins the key. Only on strata's networks; monerod
    /// ignores it.
    #[serde(default)]
    pub strata_key: Option<[u8; 32]>,
}

/// 1001 HANDSHAKE request.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
#[serde(bound = "P: Payload")]
pub struct HandshakeRequest<P> {
    /// Who the sender is.
    pub node_data: NodeData,
    /// The layer above's summary.
    pub payload_data: P,
}

/// 1001 HANDSHAKE response.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
#[serde(bound = "P: Payload")]
pub struct HandshakeResponse<P> {
    /// Peers the responder knows.
    #[serde(default)]
    pub local_peerlist_new: Vec<PeerEntry>,
    /// Who the responder is.
    pub node_data: NodeData,
    /// The layer above's summary.
    pub payload_data: P,
}

/// 1002 TIMED_SYNC request.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
#[serde(bound = "P: Payload")]
pub struct TimedSyncRequest<P> {
    /// The layer above's summary.
    pub payload_data: P,
}

/// 1002 TIMED_SYNC response.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
#[serde(bound = "P: Payload")]
pub struct TimedSyncResponse<P> {
    /// Peers not sent on this connection before.
    #[serde(default)]
    pub local_peerlist_new: Vec<PeerEntry>,
    /// The layer above's summary.
    pub payload_data: P,
}

/// An empty body: the PING and REQUEST_SUPPORT_FLAGS requests.
#[derive(Debug, Default, Clone, Serialize, Deserialize, Encode, Decode)]
pub struct Empty {}

/// 1003 PING response.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
pub struct PingResponse {
    /// The responder's peer id.
    pub peer_id: u64,
    /// "OK".
    pub status: String,
}

/// The status of a PING response from a healthy node.
pub const PING_OK: &str = "OK";

/// 1007 REQUEST_SUPPORT_FLAGS response.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
pub struct SupportFlagsResponse {
    /// Feature bits.
    pub support_flags: u32,
}

/// 3001 GOSSIP_MESSAGE: one gossip payload, and the ids of the messages it
/// depends on.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
pub struct GossipMessage {
    /// The message; without dependencies its id is its Blake2b-256.
    #[serde(with = "blob")]
    pub payload: Bytes,
    /// Concatenated ids (32 bytes each, at most [`MAX_DEPS`]) of the
    /// messages it depends on; absent when none.
    #[serde(default, with = "blob", skip_serializing_if = "Bytes::is_empty")]
    pub deps: Bytes,
}

/// 3002 GOSSIP_ANNOUNCE and 3003 GOSSIP_REQUEST: short ids, 8 bytes each.
#[derive(Debug, Clone, Serialize, Deserialize, Encode, Decode)]
pub struct GossipIds {
    /// Concatenated short ids.
    #[serde(with = "blob")]
    pub ids: Bytes,
}

/// Encodes a body, allocated once.
pub fn encode<T: Encode>(body: &T) -> Result<Bytes, strata_portable_storage::Error> {
    strata_portable_storage::encode(body).map(Bytes::from)
}

/// Decodes a body under monerod's limits; blobs are views of `body`.
pub fn decode<T: for<'de> Decode<'de>>(body: &Bytes) -> Result<T, strata_portable_storage::Error> {
    strata_portable_storage::decode_bytes(body)
}

/// Converts a peer list entry's `m_ip` for tests and tools.
pub fn ipv4_of(m_ip: u32) -> Ipv4Addr {
    Ipv4Addr::from(m_ip.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_use_monerods_byte_order() {
        let addr: SocketAddr = "192.0.2.1:18080".parse().unwrap();
        let net = NetAddress::from(addr);
        assert_eq!(net.addr.m_ip, Some(16_908_480));
        assert_eq!(net.socket_addr(), Some(addr));
        let v6: SocketAddr = "[2001:db8::1]:18080".parse().unwrap();
        assert_eq!(NetAddress::from(v6).socket_addr(), Some(v6));
        let tor = NetAddress {
            kind: 4,
            ..NetAddress::default()
        };
        assert_eq!(tor.socket_addr(), None);
    }

    #[test]
    fn node_data_round_trips_and_the_key_is_optional() {
        let data = NodeData {
            my_port: 1,
            network_id: [3; 16],
            peer_id: 9,
            strata_key: Some([5; 32]),
            ..NodeData::default()
        };
        let bytes = encode(&data).unwrap();
        assert_eq!(decode::<NodeData>(&bytes).unwrap(), data);
        let monero_shaped = NodeData {
            strata_key: None,
            ..data
        };
        let bytes = encode(&monero_shaped).unwrap();
        assert_eq!(decode::<NodeData>(&bytes).unwrap(), monero_shaped);
    }
}
