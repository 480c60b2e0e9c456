//! The node's settings and the network presets.

use std::net::SocketAddr;
use std::time::Duration;

use crate::gossip;
use crate::wire::NetworkId;

/// A network the node can join: its id and default port.
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
}

impl Network {
    /// strata's own network.
    pub const STRATA: Network = Network {
        name: "strata",
        // "strata-network-1" in ASCII.
        id: *b"strata-network-1",
        port: 7710,
        strata: true,
    };
    /// Monero's main network.
    pub const MONERO_MAINNET: Network = Network {
        name: "monero-mainnet",
        id: [
            0x12, 0x30, 0xf1, 0x71, 0x61, 0x04, 0x41, 0x61, 0x17, 0x31, 0x00, 0x82, 0x16, 0xa1,
            0xa1, 0x10,
        ],
        port: 18080,
        strata: false,
    };
    /// Monero's test network.
    pub const MONERO_TESTNET: Network = Network {
        name: "monero-testnet",
        id: [
            0x12, 0x30, 0xf1, 0x71, 0x61, 0x04, 0x41, 0x61, 0x17, 0x31, 0x00, 0x82, 0x16, 0xa1,
            0xa1, 0x11,
        ],
        port: 28080,
        strata: false,
    };
    /// Monero's staging network.
    pub const MONERO_STAGENET: Network = Network {
        name: "monero-stagenet",
        id: [
            0x12, 0x30, 0xf1, 0x71, 0x61, 0x04, 0x41, 0x61, 0x17, 0x31, 0x00, 0x82, 0x16, 0xa1,
            0xa1, 0x12,
        ],
        port: 38080,
        strata: false,
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
    /// Seed nodes: dialed once for addresses, then dropped.
    pub seeds: Vec<SocketAddr>,
    /// DNS seed names.
    pub dns_seeds: Vec<String>,
    /// How long after start DNS seeds are asked when the book is not empty.
    pub dns_delay: Duration,
    /// Addresses of last resort.
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

    /// Defaults for `network`.
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
            seeds: Vec::new(),
            dns_seeds: Vec::new(),
            dns_delay: Duration::from_secs(11),
            fixed_seeds: Vec::new(),
            fixed_seed_delay: Duration::from_secs(60),
            ban_threshold: 10,
            ban_duration: Duration::from_secs(24 * 3600),
            gossip: gossip::Config::default(),
            cryptonote: !network.strata,
        }
    }
}
