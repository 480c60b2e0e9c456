//! The node's settings and the network presets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::gossip;
use crate::wire::NetworkId;

/// A network the node can join: its id, default port and seeds.
///
/// The Monero presets carry monerod's own seeds (`src/p2p/net_node.inl`
/// and `net_node.h` in monerod 0.18): its hard-coded seed nodes as
/// [`fixed_seeds`](Network::fixed_seeds) and, on the main network, its DNS
/// seed names. strata's own network has none: its nodes are given peers
/// and seeds in their configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The preset's name.
    pub name: &'static str,
    /// The 16-byte network id sent in handshakes.
    pub id: NetworkId,
    /// The default p2p port.
    pub port: u16,
    /// Whether handshakes carry and check strata's node keys.
    pub strata: bool,
    /// Addresses of last resort, added to an address book that is still
    /// empty (see [`Config::fixed_seeds`]).
    pub fixed_seeds: &'static [SocketAddr],
    /// DNS seed names; their addresses use [`port`](Network::port).
    pub dns_seeds: &'static [&'static str],
}

/// An IPv4 seed address, built at compile time: nothing is parsed at run
/// time, so nothing can fail.
const fn seed(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
        port,
    ))
}

const MONERO_MAINNET_PORT: u16 = 18080;
const MONERO_TESTNET_PORT: u16 = 28080;
const MONERO_STAGENET_PORT: u16 = 38080;

/// monerod's seed nodes on the main network (`get_ip_seed_nodes`); it
/// falls back to them when its DNS seeds give fewer than 12 addresses.
const MONERO_MAINNET_SEEDS: &[SocketAddr] = &[
    seed([176, 9, 0, 187], MONERO_MAINNET_PORT),
    seed([88, 198, 163, 90], MONERO_MAINNET_PORT),
    seed([192, 99, 8, 110], MONERO_MAINNET_PORT),
    seed([37, 187, 74, 171], MONERO_MAINNET_PORT),
    seed([88, 99, 195, 15], MONERO_MAINNET_PORT),
    seed([5, 104, 84, 64], MONERO_MAINNET_PORT),
];

/// monerod's DNS seeds on the main network (`m_seed_nodes_list`); it asks
/// them for IPv4 addresses only.
const MONERO_MAINNET_DNS_SEEDS: &[&str] = &[
    "seeds.moneroseeds.se",
    "seeds.moneroseeds.ae.org",
    "seeds.moneroseeds.ch",
    "seeds.moneroseeds.li",
];

/// monerod's seed nodes on the test network; it has no DNS seeds there.
const MONERO_TESTNET_SEEDS: &[SocketAddr] = &[
    seed([176, 9, 0, 187], MONERO_TESTNET_PORT),
    seed([192, 99, 8, 110], MONERO_TESTNET_PORT),
    seed([37, 187, 74, 171], MONERO_TESTNET_PORT),
    seed([88, 99, 195, 15], MONERO_TESTNET_PORT),
    seed([5, 104, 84, 64], MONERO_TESTNET_PORT),
];

/// monerod's seed nodes on the staging network; it has no DNS seeds there.
const MONERO_STAGENET_SEEDS: &[SocketAddr] = &[
    seed([176, 9, 0, 187], MONERO_STAGENET_PORT),
    seed([192, 99, 8, 110], MONERO_STAGENET_PORT),
    seed([37, 187, 74, 171], MONERO_STAGENET_PORT),
    seed([88, 99, 195, 15], MONERO_STAGENET_PORT),
    seed([5, 104, 84, 64], MONERO_STAGENET_PORT),
];

impl Network {
    /// strata's own network.
    pub const STRATA: Network = Network {
        name: "strata",
        // "strata-network-1" in ASCII.
        id: *b"strata-network-1",
        port: 7710,
        strata: true,
        fixed_seeds: &[],
        dns_seeds: &[],
    };
    /// Monero's main network.
    pub const MONERO_MAINNET: Network = Network {
        name: "monero-mainnet",
        id: [
            0x12, 0x30, 0xf1, 0x71, 0x61, 0x04, 0x41, 0x61, 0x17, 0x31, 0x00, 0x82, 0x16, 0xa1,
            0xa1, 0x10,
        ],
        port: MONERO_MAINNET_PORT,
        strata: false,
        fixed_seeds: MONERO_MAINNET_SEEDS,
        dns_seeds: MONERO_MAINNET_DNS_SEEDS,
    };
    /// Monero's test network.
    pub const MONERO_TESTNET: Network = Network {
        name: "monero-testnet",
        id: [
            0x12, 0x30, 0xf1, 0x71, 0x61, 0x04, 0x41, 0x61, 0x17, 0x31, 0x00, 0x82, 0x16, 0xa1,
            0xa1, 0x11,
        ],
        port: MONERO_TESTNET_PORT,
        strata: false,
        fixed_seeds: MONERO_TESTNET_SEEDS,
        dns_seeds: &[],
    };
    /// Monero's staging network.
    pub const MONERO_STAGENET: Network = Network {
        name: "monero-stagenet",
        id: [
            0x12, 0x30, 0xf1, 0x71, 0x61, 0x04, 0x41, 0x61, 0x17, 0x31, 0x00, 0x82, 0x16, 0xa1,
            0xa1, 0x12,
        ],
        port: MONERO_STAGENET_PORT,
        strata: false,
        fixed_seeds: MONERO_STAGENET_SEEDS,
        dns_seeds: &[],
    };

    /// Every preset.
    pub const ALL: [Network; 4] = [
        Network::STRATA,
        Network::MONERO_MAINNET,
        Network::MONERO_TESTNET,
        Network::MONERO_STAGENET,
    ];

    /// The preset called `name`.
    pub fn by_name(name: &str) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.name == name)
    }
}

/// Settings of a [`Node`](crate::Node).
#[derive(Debug, Clone)]
pub struct Config {
    /// The network id sent and required in handshakes.
    pub network_id: NetworkId,
    /// Port of addresses learned from DNS seeds.
    pub default_port: u16,
    /// The port we listen on, advertised in handshakes (0: none).
    pub listen_port: u16,
    /// Our Ed25519 public key, sent in handshakes.
    pub node_key: Option<[u8; 32]>,
    /// Require peers to send a key in their handshake, equal to the one
    /// TLS authenticated when there is TLS.
    pub require_key: bool,
    /// Feature bits we advertise.
    pub support_flags: u32,
    /// Full outbound connections to keep.
    pub outbound: usize,
    /// How many of them prefer the lowest round-trip time.
    pub fast_slots: usize,
    /// Most inbound connections; one more evicts a peer.
    pub max_inbound: usize,
    /// Mean time between feeler connections.
    pub feeler_interval: Duration,
    /// Time between timed syncs we send.
    pub timed_sync_interval: Duration,
    /// How long a request may go unanswered.
    pub request_timeout: Duration,
    /// How long a connection may take to complete its handshake.
    pub handshake_timeout: Duration,
    /// How long a ready peer may stay silent.
    pub idle_timeout: Duration,
    /// Peers to keep connected to.
    pub peers: Vec<SocketAddr>,
    /// When set, the only peers dialed (no other outbound, no DNS).
    pub exclusive: Vec<SocketAddr>,
    /// Keys the peers at these addresses must prove when dialed (TLS); a
    /// peer that proves another is not connected.
    pub pinned: HashMap<SocketAddr, [u8; 32]>,
    /// Seed nodes: dialed once for addresses, then dropped.
    pub seeds: Vec<SocketAddr>,
    /// DNS seed names (the network's by default).
    pub dns_seeds: Vec<String>,
    /// How long after start DNS seeds are asked when the book is not empty.
    pub dns_delay: Duration,
    /// Addresses of last resort (the network's by default).
    pub fixed_seeds: Vec<SocketAddr>,
    /// How long after start the fixed seeds are used when the book is
    /// still empty.
    pub fixed_seed_delay: Duration,
    /// Misbehaviour score above which an address is banned.
    pub ban_threshold: u32,
    /// How long a ban lasts.
    pub ban_duration: Duration,
    /// Gossip settings.
    pub gossip: gossip::Config,
    /// Whether peers speak cryptonote (Monero's networks): its commands,
    /// which the node passes over, may then carry bodies of monerod's
    /// sizes; elsewhere they get the decoder's small default cap.
    pub cryptonote: bool,
}

/// Longest any configured duration is taken to be (a year): every deadline
/// the node computes from one stays far from the clock's limits.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

impl Config {
    /// Every duration capped at [`MAX_DURATION`]; the node applies it to
    /// the configuration it is given.
    pub fn capped(mut self) -> Config {
        for d in [
            &mut self.feeler_interval,
            &mut self.timed_sync_interval,
            &mut self.request_timeout,
            &mut self.handshake_timeout,
            &mut self.idle_timeout,
            &mut self.dns_delay,
            &mut self.fixed_seed_delay,
            &mut self.ban_duration,
            &mut self.gossip.announce_delay,
            &mut self.gossip.request_timeout,
            &mut self.gossip.defer,
            &mut self.gossip.seen_ttl,
            &mut self.gossip.verdict_timeout,
        ] {
            *d = (*d).min(MAX_DURATION);
        }
        self
    }

    /// Defaults for `network`, its fixed and DNS seeds included.
    pub fn new(network: Network) -> Config {
        Config {
            network_id: network.id,
            default_port: network.port,
            listen_port: network.port,
            node_key: None,
            require_key: network.strata,
            support_flags: 0,
            outbound: 8,
            fast_slots: 4,
            max_inbound: 64,
            feeler_interval: Duration::from_secs(120),
            timed_sync_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(180),
            peers: Vec::new(),
            exclusive: Vec::new(),
            pinned: HashMap::new(),
            seeds: Vec::new(),
            dns_seeds: network.dns_seeds.iter().map(|&n| n.to_owned()).collect(),
            dns_delay: Duration::from_secs(11),
            fixed_seeds: network.fixed_seeds.to_vec(),
            fixed_seed_delay: Duration::from_secs(60),
            ban_threshold: 10,
            ban_duration: Duration::from_secs(24 * 3600),
            gossip: gossip::Config::default(),
            cryptonote: !network.strata,
        }
    }
}

#[cfg(test)]
mod tests;
