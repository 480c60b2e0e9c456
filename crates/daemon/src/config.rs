//! The daemon's configuration: a TOML file, then environment variables,
//! then flags, each overriding the one before; every field has a default.
//!
//! Every field can be set three ways: in the file (`[p2p] outbound = 4`),
//! by an environment variable named after its path (`STRATA_P2P_OUTBOUND=4`),
//! or by a flag (`--set p2p.outbound=4`, or a dedicated flag such as
//! `--network`). A value that does not parse or is out of range is an error
//! that names the field and where the value came from.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_node::Network;

/// The longest ban, in seconds (ten years).
pub const MAX_BAN_SECS: usize = 10 * 365 * 24 * 3600;

/// The slowest rate limit, in bytes per second (0 is no limit).
pub const MIN_RATE: u64 = 1024;

/// The longest time-to-live a record may be put with, and the longest
/// tombstone horizon, in seconds (10 years).
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// The shortest tombstone horizon, in seconds (a minute).
pub const MIN_TOMBSTONE_HORIZON_SECS: u64 = 60;
/// The fastest rate limit, in bytes per second: 1 TiB/s, beyond any link.
pub const MAX_RATE: u64 = 1 << 40;

/// Most entries of each seed list (`p2p.seeds`, `p2p.dns_seeds`,
/// `p2p.fixed_seeds`): each DNS seed is a look-up at start, each seed a dial.
pub const MAX_SEEDS: usize = 64;

/// The longest DNS name (RFC 1035: 253 characters in text form).
pub const MAX_HOST_NAME: usize = 253;

/// Prefix of the environment variables that set configuration fields.
pub const ENV_PREFIX: &str = "STRATA_";

/// The configuration file looked for in the data directory when none is
/// named.
pub const CONFIG_FILE: &str = "stratad.toml";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The network preset.
    pub network: NetworkName,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Peer-to-peer settings.
    pub p2p: P2p,
    /// Record store settings.
    pub store: StoreConfig,
    /// Replication settings.
    pub sync: SyncSection,
    /// TLS settings.
    pub tls: TlsSettings,
    /// Admin API settings.
    pub api: Api,
    /// Log settings.
    pub log: Log,
}

/// `[p2p]`: the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2p {
    /// Addresses to listen on; empty: the network's port on every IPv4
    /// interface. Port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// Peers to stay connected to (`ADDR`, or `KEY@ADDR` to pin the key
    /// the peer must prove).
    pub peers: Vec<PeerAddr>,
    /// When set, the only peers dialed.
    pub exclusive: Vec<PeerAddr>,
    /// Seed nodes, asked once for addresses.
    pub seeds: Vec<SocketAddr>,
    /// DNS seed names; unset: the network's (empty: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_seeds: Option<Vec<String>>,
    /// Addresses of last resort, dialed when the address book is still
    /// empty a minute after start; unset: the network's (empty: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_seeds: Option<Vec<SocketAddr>>,
    /// Full outbound connections to keep.
    pub outbound: usize,
    /// Most inbound connections.
    pub max_inbound: usize,
    /// Most connections with one IP address.
    pub max_per_ip: usize,
    /// Treat loopback and private addresses as routable.
    pub local_network: bool,
    /// TLS on accepted connections; unset: the network's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_inbound: Option<TlsPolicy>,
    /// TLS on dialed connections; unset: the network's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_outbound: Option<TlsPolicy>,
    /// Misbehaviour score that bans an address.
    pub ban_threshold: u32,
    /// How long a ban lasts, in seconds.
    pub ban_secs: u64,
    /// Seconds between timed syncs.
    pub timed_sync_secs: u64,
    /// Gossip messages up to this size are pushed, larger ones announced.
    pub push_threshold: usize,
    /// Largest gossip message, in bytes.
    pub max_message: usize,
    /// Upload of all connections together, in bytes per second; 0: no
    /// limit.
    pub upload_rate: u64,
    /// Download of all connections together, in bytes per second; 0: no
    /// limit.
    pub download_rate: u64,
    /// The local address connections are dialed from; unset: the system's
    /// choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_from: Option<IpAddr>,
}

/// `[tls]`: who may connect.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// When not empty, the only node keys that may connect or be dialed
    /// (a private network); every connection is then TLS.
    pub allowlist: Vec<KeyHex>,
}

/// A node key or a peer's address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not 64 hex digits.
    #[error("`{0}` is not a node key (64 hex digits)")]
    NotAKey(String),
    /// Not `IP:PORT` after an optional `KEY@`.
    #[error("`{0}` is not an address (IP:PORT, or KEY@IP:PORT)")]
    NotAnAddress(String),
}

/// A node key written as 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHex(pub [u8; 32]);

impl std::str::FromStr for KeyHex {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(KeyHex)
            .ok_or_else(|| ParseError::NotAKey(text.to_owned()))
    }
}

impl std::fmt::Display for KeyHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for KeyHex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyHex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A peer's address, with the node key it must prove when written
/// `KEY@ADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    /// The pinned key, if any.
    pub key: Option<KeyHex>,
    /// The address.
    pub addr: SocketAddr,
}

impl std::str::FromStr for PeerAddr {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (key, addr) = match text.split_once('@') {
            Some((key, addr)) => (Some(key.parse::<KeyHex>()?), addr),
            None => (None, text),
        };
        let addr = addr
            .parse()
            .map_err(|_| ParseError::NotAnAddress(addr.to_owned()))?;
        Ok(PeerAddr { key, addr })
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key {
            Some(key) => write!(f, "{key}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl Serialize for PeerAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `[store]`: the record store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Largest record value, in bytes.
    pub max_value_len: usize,
    /// When writes reach the disk.
    pub durability: DurabilityName,
    /// Initial LMDB map size, in bytes.
    pub initial_map_size: usize,
    /// Records one author may have stored.
    pub max_records_per_author: u64,
    /// Bytes one author's records may take as stored.
    pub max_bytes_per_author: u64,
    /// How long this node's tombstones are kept before every node collects
    /// them, in seconds.
    pub tombstone_horizon_secs: u64,
}

/// `[sync]`: replication, and what serving peers may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSection {
    /// Bytes per second one peer may have served (catch-up, fetches,
    /// reconciliation).
    pub serve_rate: u64,
    /// Bytes per second served over all peers.
    pub serve_total_rate: u64,
    /// Percent of serving and of catching up kept while relay has work.
    pub relay_busy_share: u8,
    /// Pass gossiped records on before their signature check.
    pub quick_verify: bool,
}

/// `[api]`: the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Where the admin API listens.
    pub listen: SocketAddr,
    /// Allow a non-loopback listen address.
    pub allow_remote: bool,
    /// Whether `/metrics` needs the bearer token.
    pub metrics_auth: bool,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// Filter directives, as in `RUST_LOG` (which overrides it).
    pub filter: String,
    /// How log lines are written.
    pub format: LogFormat,
}

/// A network preset by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkName {
    /// strata's own network.
    #[default]
    Strata,
    /// Monero's main network.
    MoneroMainnet,
    /// Monero's test network.
    MoneroTestnet,
    /// Monero's staging network.
    MoneroStagenet,
}

impl NetworkName {
    /// The preset.
    pub fn preset(self) -> Network {
        match self {
            NetworkName::Strata => Network::STRATA,
            NetworkName::MoneroMainnet => Network::MONERO_MAINNET,
            NetworkName::MoneroTestnet => Network::MONERO_TESTNET,
            NetworkName::MoneroStagenet => Network::MONERO_STAGENET,
        }
    }
}

/// Whether connections use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Always TLS; a peer without it is refused.
    Required,
    /// TLS when the peer offers it (inbound) or its key is known (outbound).
    Optional,
    /// Never TLS.
    Disabled,
}

impl TlsPolicy {
    /// The connection manager's policy.
    pub fn policy(self) -> strata_tls::Policy {
        match self {
            TlsPolicy::Required => strata_tls::Policy::Required,
            TlsPolicy::Optional => strata_tls::Policy::Optional,
            TlsPolicy::Disabled => strata_tls::Policy::Disabled,
        }
    }
}

/// When writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityName {
    /// Every write is flushed before it is acknowledged.
    #[default]
    Sync,
    /// Writes are not flushed: faster; a machine crash may lose the last.
    Nosync,
}

impl DurabilityName {
    /// The store's setting.
    pub fn durability(self) -> strata_store::Durability {
        match self {
            DurabilityName::Sync => strata_store::Durability::Sync,
            DurabilityName::Nosync => strata_store::Durability::NoSync,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Documentation of every field, in the order `stratad config` prints
/// them. `docs/operators.md` repeats it.
pub const FIELDS: &[(&str, &str)] = &[
    (
        "network",
        "Network preset: strata, monero-mainnet, monero-testnet or monero-stagenet.",
    ),
    (
        "data_dir",
        "Data directory: store, peers.dat, anchors.dat, node.key, admin.token.",
    ),
    (
        "p2p.listen",
        "P2P listen addresses; empty: 0.0.0.0 on the network's port. Port 0 picks a free port.",
    ),
    (
        "p2p.peers",
        "Peers to stay connected to (redialed when they drop): IP:PORT, or KEY@IP:PORT to require that node key (strata's network).",
    ),
    (
        "p2p.exclusive",
        "When not empty, the only peers dialed: no other outbound, no DNS.",
    ),
    (
        "p2p.seeds",
        "Seed nodes (at most 64): dialed once for addresses, then dropped.",
    ),
    (
        "p2p.dns_seeds",
        "DNS seed names (at most 64), asked for addresses when the address book is small; unset: the network's (monerod's on monero-mainnet, none elsewhere).",
    ),
    (
        "p2p.fixed_seeds",
        "Addresses of last resort (at most 64), dialed when the book is still empty a minute after start; unset: the network's (monerod's on Monero's networks, none on strata).",
    ),
    ("p2p.outbound", "Full outbound connections to keep (0-64)."),
    (
        "p2p.max_inbound",
        "Most inbound connections; one more evicts a peer (0-4096).",
    ),
    (
        "p2p.max_per_ip",
        "Most connections with one IP address, both directions (1-4096).",
    ),
    (
        "p2p.local_network",
        "Treat loopback and private addresses as routable (devnets, LANs).",
    ),
    (
        "p2p.tls_inbound",
        "TLS on accepted connections: required, optional or disabled; unset: optional on strata, disabled on Monero networks (which have no TLS).",
    ),
    (
        "p2p.tls_outbound",
        "TLS on dialed connections: required, optional or disabled; unset: required on strata, disabled on Monero networks (which have no TLS).",
    ),
    (
        "p2p.ban_threshold",
        "Misbehaviour score above which an address is banned (at least 1).",
    ),
    (
        "p2p.ban_secs",
        "How long a ban lasts, in seconds (1 s to 10 years).",
    ),
    (
        "p2p.timed_sync_secs",
        "Seconds between timed syncs with each peer (1-3600).",
    ),
    (
        "p2p.push_threshold",
        "Gossip messages up to this many bytes are pushed; larger ones are announced first.",
    ),
    (
        "p2p.max_message",
        "Largest gossip message, in bytes (1 KiB-16 MiB).",
    ),
    (
        "p2p.upload_rate",
        "Upload of all connections together, in bytes per second (1 KiB/s-1 TiB/s); 0: no limit. `stratad rate` changes it while the daemon runs.",
    ),
    (
        "p2p.download_rate",
        "Download of all connections together, in bytes per second (1 KiB/s-1 TiB/s); 0: no limit. `stratad rate` changes it while the daemon runs.",
    ),
    (
        "p2p.dial_from",
        "The local IP address connections are dialed from; unset: the system's choice. Nodes sharing a machine on addresses of their own (127.0.0.2, …) set it to their listen address.",
    ),
    (
        "tls.allowlist",
        "When not empty, the only node keys (64 hex digits each) that may connect or be dialed: a private network; every connection is then TLS (strata's network).",
    ),
    (
        "store.max_value_len",
        "Largest record value, in bytes (at most 16 MiB).",
    ),
    (
        "store.durability",
        "sync: every write is flushed to disk; nosync: faster, a machine crash may lose the last writes.",
    ),
    (
        "store.initial_map_size",
        "Initial LMDB map size, in bytes (256 KiB to 1 TiB); the map doubles when full.",
    ),
    (
        "store.max_records_per_author",
        "Records one author (signing key) may have in the store; more are refused and not passed on.",
    ),
    (
        "store.max_bytes_per_author",
        "Bytes one author's records may take in the store (keys, versions, signatures, values); more are refused and not passed on.",
    ),
    (
        "store.tombstone_horizon_secs",
        "Seconds a deletion by this node is kept before every node collects it (60 s to 10 years, default 7 days); a node away longer may bring the deleted record back.",
    ),
    (
        "sync.serve_rate",
        "Bytes per second one peer may have served: catch-up batches, fetched records, reconciliation symbols (1 KiB/s-1 TiB/s).",
    ),
    (
        "sync.serve_total_rate",
        "Bytes per second served to all peers together (1 KiB/s-1 TiB/s): the share of the upload given to serving.",
    ),
    (
        "sync.relay_busy_share",
        "While fresh records are being relayed, the percent (1-100) of the serving rates, of the reads in service and of this node's own catch-up batches in flight that serving and catching up keep; all of them once relay is idle.",
    ),
    (
        "sync.quick_verify",
        "Pass a gossiped record on as soon as it decodes, before its signature is checked; a forgery is retracted after its check. Only with tls.allowlist (a private network): elsewhere the peers a forgery reached would score this node for it. Records are stored only once checked either way.",
    ),
    (
        "api.listen",
        "Admin API address. Port 0 picks a free port; the bound address is written to stratad.json.",
    ),
    (
        "api.allow_remote",
        "Allow a non-loopback admin API address (the API is plain HTTP: put TLS in front).",
    ),
    (
        "api.metrics_auth",
        "Whether /metrics needs the bearer token.",
    ),
    (
        "log.filter",
        "Log filter directives (RUST_LOG syntax); RUST_LOG overrides it.",
    ),
    ("log.format", "Log format on stderr: text or json."),
];

/// A configuration that cannot be used: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration field `{field}`{source_note}: {reason}")]
pub struct ConfigError {
    /// The field's path, such as `p2p.outbound`.
    pub field: String,
    /// Where the value came from, as `" (from …)"`, or empty.
    pub source_note: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    fn new(field: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.to_owned(),
            source_note: String::new(),
            reason: reason.into(),
        }
    }
}

/// The default data directory: `$XDG_DATA_HOME/strata`, else
/// `~/.local/share/strata`, else `./strata` (`STRATA_DATA_DIR` sets it, as
/// it sets every field).
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("strata");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/strata");
    }
    PathBuf::from("strata")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network: NetworkName::Strata,
            data_dir: default_data_dir(),
            p2p: P2p::default(),
            tls: TlsSettings::default(),
            store: StoreConfig::default(),
            sync: SyncSection::default(),
            api: Api::default(),
            log: Log::default(),
        }
    }
}

impl Default for P2p {
    fn default() -> Self {
        let node = strata_node::Config::new(Network::STRATA);
        P2p {
            listen: Vec::new(),
            peers: Vec::new(),
            exclusive: Vec::new(),
            seeds: Vec::new(),
            dns_seeds: None,
            fixed_seeds: None,
            outbound: node.outbound,
            max_inbound: node.max_inbound,
            max_per_ip: 1,
            local_network: false,
            tls_inbound: None,
            tls_outbound: None,
            ban_threshold: node.ban_threshold,
            ban_secs: node.ban_duration.as_secs(),
            timed_sync_secs: node.timed_sync_interval.as_secs(),
            push_threshold: node.gossip.push_threshold,
            max_message: node.gossip.max_message,
            upload_rate: 0,
            download_rate: 0,
            dial_from: None,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_value_len: strata_store::DEFAULT_MAX_VALUE_LEN,
            durability: DurabilityName::Sync,
            initial_map_size: strata_store::DEFAULT_MAP_SIZE,
            max_records_per_author: strata_store::DEFAULT_MAX_RECORDS_PER_AUTHOR,
            max_bytes_per_author: strata_store::DEFAULT_MAX_BYTES_PER_AUTHOR,
            tombstone_horizon_secs: strata_store::DEFAULT_TOMBSTONE_HORIZON_SECS,
        }
    }
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            serve_rate: strata_sync::DEFAULT_SERVE_RATE,
            serve_total_rate: strata_sync::DEFAULT_SERVE_TOTAL_RATE,
            relay_busy_share: strata_sync::DEFAULT_RELAY_BUSY_SHARE,
            quick_verify: false,
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Api {
            listen: SocketAddr::from(([127, 0, 0, 1], 7711)),
            allow_remote: false,
            metrics_auth: true,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            filter: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// The network preset.
    pub fn network(&self) -> Network {
        self.network.preset()
    }

    /// Fills the fields whose default depends on the network.
    pub fn resolve(&mut self) {
        let network = self.network();
        if self.p2p.listen.is_empty() {
            self.p2p.listen = vec![SocketAddr::from(([0, 0, 0, 0], network.port))];
        }
        if self.p2p.dns_seeds.is_none() {
            self.p2p.dns_seeds = Some(network.dns_seeds.iter().map(|s| (*s).to_owned()).collect());
        }
        if self.p2p.fixed_seeds.is_none() {
            self.p2p.fixed_seeds = Some(network.fixed_seeds.to_vec());
        }
        if self.p2p.tls_inbound.is_none() {
            self.p2p.tls_inbound = Some(if network.strata {
                TlsPolicy::Optional
            } else {
                TlsPolicy::Disabled
            });
        }
        if self.p2p.tls_outbound.is_none() {
            self.p2p.tls_outbound = Some(if network.strata {
                TlsPolicy::Required
            } else {
                TlsPolicy::Disabled
            });
        }
    }

    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir", "must not be empty"));
        }
        let p = &self.p2p;
        range("p2p.outbound", p.outbound, 0, 64)?;
        range("p2p.max_inbound", p.max_inbound, 0, 4096)?;
        range("p2p.max_per_ip", p.max_per_ip, 1, 4096)?;
        if !self.network().strata {
            // Monero's networks have no node keys, so no TLS to speak.
            for (field, value) in [
                ("p2p.tls_inbound", p.tls_inbound),
                ("p2p.tls_outbound", p.tls_outbound),
            ] {
                if matches!(value, Some(TlsPolicy::Required | TlsPolicy::Optional)) {
                    return Err(ConfigError::new(
                        field,
                        format!("{} has no TLS: only `disabled` works", self.network().name),
                    ));
                }
            }
        }
        if !self.network().strata {
            for (field, list) in [("p2p.peers", &p.peers), ("p2p.exclusive", &p.exclusive)] {
                if list.iter().any(|peer| peer.key.is_some()) {
                    return Err(ConfigError::new(
                        field,
                        format!(
                            "{} has no node keys: give peers as IP:PORT",
                            self.network().name
                        ),
                    ));
                }
            }
            if !self.tls.allowlist.is_empty() {
                return Err(ConfigError::new(
                    "tls.allowlist",
                    format!("{} has no node keys", self.network().name),
                ));
            }
        }
        range("p2p.ban_threshold", p.ban_threshold as usize, 1, usize::MAX)?;
        range(
            "p2p.ban_secs",
            usize::try_from(p.ban_secs).unwrap_or(usize::MAX),
            1,
            MAX_BAN_SECS,
        )?;
        range(
            "p2p.timed_sync_secs",
            usize::try_from(p.timed_sync_secs).unwrap_or(usize::MAX),
            1,
            3600,
        )?;
        range("p2p.max_message", p.max_message, 1024, 16 * 1024 * 1024)?;
        check_rate("p2p.upload_rate", p.upload_rate)?;
        check_rate("p2p.download_rate", p.download_rate)?;
        for (field, len) in [
            ("p2p.seeds", p.seeds.len()),
            ("p2p.dns_seeds", p.dns_seeds.as_ref().map_or(0, Vec::len)),
            (
                "p2p.fixed_seeds",
                p.fixed_seeds.as_ref().map_or(0, Vec::len),
            ),
        ] {
            if len > MAX_SEEDS {
                return Err(ConfigError::new(
                    field,
                    format!("{len} entries: at most {MAX_SEEDS}"),
                ));
            }
        }
        for name in p.dns_seeds.iter().flatten() {
            if !is_host_name(name) {
                return Err(ConfigError::new(
                    "p2p.dns_seeds",
                    format!("`{name}` is not a host name"),
                ));
            }
        }
        let s = &self.store;
        range(
            "store.max_value_len",
            s.max_value_len,
            0,
            strata_store::MAX_VALUE_LEN,
        )?;
        range(
            "store.initial_map_size",
            s.initial_map_size,
            strata_store::MIN_MAP_SIZE,
            usize::try_from(strata_store::MAX_MAP_SIZE).unwrap_or(usize::MAX),
        )?;
        if !(MIN_TOMBSTONE_HORIZON_SECS..=MAX_TTL_SECS).contains(&s.tombstone_horizon_secs) {
            return Err(ConfigError::new(
                "store.tombstone_horizon_secs",
                format!(
                    "{} is out of range: {MIN_TOMBSTONE_HORIZON_SECS} to {MAX_TTL_SECS}",
                    s.tombstone_horizon_secs
                ),
            ));
        }
        for (field, quota) in [
            ("store.max_records_per_author", s.max_records_per_author),
            ("store.max_bytes_per_author", s.max_bytes_per_author),
        ] {
            if quota == 0 {
                return Err(ConfigError::new(
                    field,
                    "0 would refuse every record: at least 1".to_owned(),
                ));
            }
        }
        let sync = &self.sync;
        for (field, rate) in [
            ("sync.serve_rate", sync.serve_rate),
            ("sync.serve_total_rate", sync.serve_total_rate),
        ] {
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "{rate} is out of range: between {MIN_RATE} and {MAX_RATE} bytes per second"
                    ),
                ));
            }
        }
        range(
            "sync.relay_busy_share",
            usize::from(sync.relay_busy_share),
            1,
            100,
        )?;
        if sync.quick_verify && self.tls.allowlist.is_empty() {
            return Err(ConfigError::new(
                "sync.quick_verify",
                "needs tls.allowlist: on an open network a forged record passed on before its \
                 check gets this node disconnected and banned by the peers it reached"
                    .to_owned(),
            ));
        }
        if !self.api.listen.ip().is_loopback() && !self.api.allow_remote {
            return Err(ConfigError::new(
                "api.listen",
                format!(
                    "{} is not a loopback address; set api.allow_remote = true to expose the \
                     admin API beyond this machine",
                    self.api.listen
                ),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            return Err(ConfigError::new("log.filter", e.to_string()));
        }
        Ok(())
    }

    /// The effective configuration as a commented TOML document.
    pub fn to_commented_toml(&self) -> String {
        let Ok(toml::Value::Table(table)) = toml::Value::try_from(self) else {
            return String::new();
        };
        let mut out = String::new();
        let mut section = "";
        for (path, doc) in FIELDS {
            let (sec, key) = path.split_once('.').unwrap_or(("", path));
            if sec != section {
                let _ = write!(out, "\n[{sec}]\n");
                section = sec;
            }
            let value = if sec.is_empty() {
                table.get(key)
            } else {
                table
                    .get(sec)
                    .and_then(toml::Value::as_table)
                    .and_then(|t| t.get(key))
            };
            match value {
                Some(value) => {
                    let _ = write!(out, "# {doc}\n{key} = {}\n", toml_inline(value));
                }
                // An unset field: shown, commented out.
                None => {
                    let _ = write!(out, "# {doc}\n# {key} = (unset)\n");
                }
            }
        }
        out
    }
}

fn toml_inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A rate limit: 0 (none), or between [`MIN_RATE`] and [`MAX_RATE`].
pub fn check_rate(field: &str, rate: u64) -> Result<(), ConfigError> {
    if rate != 0 && !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(ConfigError::new(
            field,
            format!(
                "{rate} is out of range: 0 (no limit), or between {MIN_RATE} and {MAX_RATE} \
                 bytes per second"
            ),
        ));
    }
    Ok(())
}

/// Whether `name` is a DNS host name: dot-separated labels of 1 to 63
/// letters, digits, hyphens and underscores, not starting or ending with a
/// hyphen, [`MAX_HOST_NAME`] characters at most (a final dot allowed).
fn is_host_name(name: &str) -> bool {
    let bare = name.strip_suffix('.').unwrap_or(name);
    !bare.is_empty()
        && name.len() <= MAX_HOST_NAME
        && bare.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn range(field: &str, value: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if value < min || value > max {
        let bound = if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("between {min} and {max}")
        };
        return Err(ConfigError::new(
            field,
            format!("{value} is out of range: must be {bound}"),
        ));
    }
    Ok(())
}

/// Where the configuration's pieces come from.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The file, when one is named (it must exist) or found in the data
    /// directory.
    pub file: Option<PathBuf>,
    /// Whether `file` was named explicitly (then it must exist).
    pub file_required: bool,
    /// Environment variables, as (name, value).
    pub env: Vec<(String, String)>,
    /// `--set path=value` and dedicated flags, in order, as (path, value,
    /// the flag's name).
    pub flags: Vec<(String, toml::Value, String)>,
}

/// Every field path, from [`FIELDS`].
fn field_paths() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|(path, _)| *path)
}

/// The environment variable of a field: `p2p.outbound` → `STRATA_P2P_OUTBOUND`.
pub fn env_name(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "_").to_uppercase())
}

/// Parses a value given on the command line or in the environment: TOML
/// syntax when it parses as such (`4`, `true`, `["a", "b"]`), else the
/// text as a string. A comma-separated list is accepted for list fields.
pub fn parse_value(path: &str, text: &str) -> toml::Value {
    let doc = format!("v = {text}");
    let parsed = toml::from_str::<toml::Table>(&doc)
        .ok()
        .and_then(|mut t| t.remove("v"));
    let list_field = matches!(
        path,
        "p2p.listen"
            | "p2p.peers"
            | "p2p.exclusive"
            | "p2p.seeds"
            | "p2p.dns_seeds"
            | "p2p.fixed_seeds"
            | "tls.allowlist"
    );
    match parsed {
        Some(toml::Value::Array(a)) => toml::Value::Array(a),
        Some(v) if !list_field => v,
        _ if list_field => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        _ => toml::Value::String(text.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    match path.split_once('.') {
        None => {
            table.insert(path.to_owned(), value);
        }
        Some((section, key)) => {
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                t.insert(key.to_owned(), value);
            } else {
                *entry = toml::Value::Table(toml::Table::from_iter([(key.to_owned(), value)]));
            }
        }
    }
}

fn get_path<'a>(table: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    match path.split_once('.') {
        None => table.get(path),
        Some((section, key)) => table.get(section)?.as_table()?.get(key),
    }
}

/// Loads the configuration from its sources. The result is resolved
/// ([`Config::resolve`]) and valid.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut table = toml::Table::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    if let Some(file) = &sources.file {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                // Parse the file on its own first: its errors carry lines.
                if let Err(e) = toml::from_str::<Config>(&text) {
                    return Err(file_error(file, &text, &e));
                }
                table = toml::from_str(&text).map_err(|e| file_error(file, &text, &e))?;
                for path in field_paths() {
                    if get_path(&table, path).is_some() {
                        origin.insert(path.to_owned(), format!("file {}", file.display()));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !sources.file_required => {}
            Err(e) => {
                return Err(ConfigError {
                    field: "config".into(),
                    source_note: String::new(),
                    reason: format!("cannot read {}: {e}", file.display()),
                });
            }
        }
    }
    for (name, text) in &sources.env {
        let Some(path) = field_paths().find(|p| env_name(p) == *name) else {
            continue;
        };
        set_path(&mut table, path, parse_value(path, text));
        origin.insert(path.to_owned(), format!("environment variable {name}"));
    }
    for (path, value, flag) in &sources.flags {
        if !field_paths().any(|p| p == path) {
            return Err(ConfigError {
                field: path.clone(),
                source_note: format!(" (from {flag})"),
                reason: "no such field; `stratad config` lists them".into(),
            });
        }
        set_path(&mut table, path, value.clone());
        origin.insert(path.clone(), flag.clone());
    }
    let mut config = match Config::deserialize(toml::Value::Table(table.clone())) {
        Ok(config) => config,
        Err(e) => {
            // Find the field at fault by trying each set field alone.
            for (path, from) in &origin {
                let Some(value) = get_path(&table, path) else {
                    continue;
                };
                let mut alone = toml::Table::new();
                set_path(&mut alone, path, value.clone());
                if let Err(single) = Config::deserialize(toml::Value::Table(alone)) {
                    return Err(ConfigError {
                        field: path.clone(),
                        source_note: format!(" (from {from})"),
                        reason: clean_serde_message(&single.to_string()),
                    });
                }
            }
            return Err(ConfigError::new(
                "config",
                clean_serde_message(&e.to_string()),
            ));
        }
    };
    config.resolve();
    config.validate().map_err(|mut e| {
        if let Some(from) = origin.get(&e.field) {
            e.source_note = format!(" (from {from})");
        }
        e
    })?;
    Ok(config)
}

fn clean_serde_message(message: &str) -> String {
    message.trim().replace('\n', " ")
}

fn file_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    // Name the field: the key on the line the error points at.
    let field = e
        .span()
        .and_then(|span| {
            let line_start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i.saturating_add(1));
            let section = text[..line_start]
                .lines()
                .rev()
                .find_map(|l| {
                    let l = l.trim();
                    l.strip_prefix('[')
                        .and_then(|l| l.strip_suffix(']'))
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            let line = text[line_start..].lines().next()?;
            let key = line.split_once('=')?.0.trim().to_owned();
            Some(if section.is_empty() {
                key
            } else {
                format!("{section}.{key}")
            })
        })
        .unwrap_or_else(|| "config".to_owned());
    ConfigError {
        field,
        source_note: format!(" (from file {})", file.display()),
        reason: clean_serde_message(e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&str, &str)]) -> Sources {
        Sources {
            flags: pairs
                .iter()
                .map(|(p, v)| ((*p).to_owned(), parse_value(p, v), "--set".to_owned()))
                .collect(),
            ..Sources::default()
        }
    }

    #[test]
    fn every_field_is_documented_and_printed() {
        let mut config = Config::default();
        config.resolve();
        let text = config.to_commented_toml();
        let reparsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(reparsed, config);
        let toml::Value::Table(table) = toml::Value::try_from(&config).unwrap() else {
            panic!("not a table");
        };
        for (key, value) in &table {
            match value {
                toml::Value::Table(t) => {
                    for sub in t.keys() {
                        let path = format!("{key}.{sub}");
                        assert!(field_paths().any(|p| p == path), "{path} undocumented");
                    }
                }
                _ => assert!(field_paths().any(|p| p == key), "{key} undocumented"),
            }
        }
    }

    #[test]
    fn every_field_has_its_row_in_the_operators_guide() {
        let guide = include_str!("../../../docs/operators.md");
        for path in field_paths() {
            assert!(
                guide.contains(&format!("| `{path}` |")),
                "docs/operators.md has no row for `{path}`"
            );
        }
    }

    #[test]
    fn named_values_parse_and_others_name_their_field() {
        let config = load(&flags(&[
            ("network", "monero-testnet"),
            ("store.durability", "nosync"),
            ("log.format", "json"),
            ("p2p.tls_inbound", "disabled"),
        ]))
        .unwrap();
        assert_eq!(config.network, NetworkName::MoneroTestnet);
        assert_eq!(config.store.durability, DurabilityName::Nosync);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.p2p.tls_inbound, Some(TlsPolicy::Disabled));
        // Defaults follow the network.
        assert_eq!(config.p2p.tls_outbound, Some(TlsPolicy::Disabled));
        for (field, value) in [
            ("store.durability", "sometimes"),
            ("log.format", "xml"),
            ("p2p.tls_outbound", "maybe"),
        ] {
            let err = load(&flags(&[(field, value)])).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        // Monero's networks cannot speak TLS.
        let err = load(&flags(&[
            ("network", "monero-testnet"),
            ("p2p.tls_outbound", "required"),
        ]))
        .unwrap_err();
        assert_eq!(err.field, "p2p.tls_outbound");
    }

    #[test]
    fn rates_and_the_dial_address_parse_and_are_checked() {
        let config = load(&flags(&[
            ("p2p.upload_rate", "16384"),
            ("p2p.dial_from", "127.0.0.7"),
            ("sync.relay_busy_share", "25"),
        ]))
        .unwrap();
        assert_eq!(config.sync.relay_busy_share, 25);
        assert_eq!(config.sync.serve_rate, strata_sync::DEFAULT_SERVE_RATE);
        assert_eq!(config.p2p.upload_rate, 16384);
        assert_eq!(config.p2p.download_rate, 0);
        assert_eq!(config.p2p.dial_from, Some(IpAddr::from([127, 0, 0, 7])));
        let text = config.to_commented_toml();
        assert!(text.contains("dial_from = \"127.0.0.7\""), "{text}");
        for (field, value) in [
            ("p2p.upload_rate", "10"),
            ("p2p.download_rate", "18446744073709551615"),
            ("p2p.dial_from", "localhost"),
            ("sync.serve_rate", "0"),
            ("sync.serve_total_rate", "18446744073709551615"),
            ("sync.relay_busy_share", "0"),
            ("sync.relay_busy_share", "101"),
            ("sync.relay_busy_share", "256"),
            ("sync.quick_verify", "true"),
        ] {
            let err = load(&flags(&[(field, value)])).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn a_ban_of_any_length_is_refused_past_the_limit() {
        let err = load(&flags(&[("p2p.ban_secs", "9223372036854775807")])).unwrap_err();
        assert_eq!(err.field, "p2p.ban_secs", "{err}");
        load(&flags(&[("p2p.ban_secs", &MAX_BAN_SECS.to_string())])).unwrap();
    }

    #[test]
    fn peers_take_a_pinned_key_and_the_allowlist_keys() {
        let key = "11".repeat(32);
        let config = load(&flags(&[
            (
                "p2p.peers",
                &format!("[\"{key}@127.0.0.1:7710\", \"127.0.0.1:7711\"]"),
            ),
            ("tls.allowlist", &format!("[\"{key}\"]")),
        ]))
        .unwrap();
        assert_eq!(config.p2p.peers[0].key, Some(KeyHex([0x11; 32])));
        assert_eq!(config.p2p.peers[1].key, None);
        assert_eq!(config.tls.allowlist, vec![KeyHex([0x11; 32])]);
        assert!(
            config
                .to_commented_toml()
                .contains(&format!("{key}@127.0.0.1:7710"))
        );
        // A short key, or a key on a network without keys, names its field.
        let err = load(&flags(&[("p2p.peers", "[\"abcd@127.0.0.1:7710\"]")])).unwrap_err();
        assert_eq!(err.field, "p2p.peers", "{err}");
        let err = load(&flags(&[
            ("network", "monero-testnet"),
            ("p2p.peers", &format!("[\"{key}@127.0.0.1:7710\"]")),
        ]))
        .unwrap_err();
        assert_eq!(err.field, "p2p.peers", "{err}");
        let err = load(&flags(&[("tls.allowlist", "[\"xyz\"]")])).unwrap_err();
        assert_eq!(err.field, "tls.allowlist", "{err}");
    }

    #[test]
    fn a_map_size_past_the_store_limit_is_refused() {
        let err = load(&flags(&[(
            "store.initial_map_size",
            "18446744073709551615",
        )]))
        .unwrap_err();
        assert_eq!(err.field, "store.initial_map_size", "{err}");
        let max = strata_store::MAX_MAP_SIZE.to_string();
        load(&flags(&[("store.initial_map_size", &max)])).unwrap();
    }

    #[test]
    fn a_bad_value_names_its_field_and_source() {
        let err = load(&flags(&[("p2p.outbound", "65")])).unwrap_err();
        assert_eq!(err.field, "p2p.outbound");
        assert!(err.to_string().contains("--set"), "{err}");
        let err = load(&flags(&[("p2p.outbound", "\"many\"")])).unwrap_err();
        assert_eq!(err.field, "p2p.outbound");
        let err = load(&flags(&[("network", "moneroo")])).unwrap_err();
        assert_eq!(err.field, "network");
        let err = load(&flags(&[("api.listen", "0.0.0.0:1")])).unwrap_err();
        assert_eq!(err.field, "api.listen");
    }

    #[test]
    fn seeds_default_to_the_networks_and_can_be_replaced_or_emptied() {
        let mut config = load(&flags(&[("network", "monero-mainnet")])).unwrap();
        config.resolve();
        let monero = Network::MONERO_MAINNET;
        let names: Vec<&str> = config
            .p2p
            .dns_seeds
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        assert_eq!(names, monero.dns_seeds);
        assert_eq!(config.p2p.fixed_seeds.as_deref(), Some(monero.fixed_seeds));

        let mut config = load(&flags(&[
            ("p2p.dns_seeds", "seed.example.net, seed-2.example.org."),
            ("p2p.fixed_seeds", "203.0.113.10:7710,[2001:db8::10]:7710"),
        ]))
        .unwrap();
        config.resolve();
        assert_eq!(
            config.p2p.dns_seeds.as_deref(),
            Some(
                &[
                    "seed.example.net".to_owned(),
                    "seed-2.example.org.".to_owned()
                ][..]
            )
        );
        let fixed: Vec<String> = config
            .p2p
            .fixed_seeds
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        assert_eq!(fixed, ["203.0.113.10:7710", "[2001:db8::10]:7710"]);

        let mut config = load(&flags(&[
            ("network", "monero-mainnet"),
            ("p2p.dns_seeds", "[]"),
            ("p2p.fixed_seeds", "[]"),
        ]))
        .unwrap();
        config.resolve();
        assert_eq!(config.p2p.dns_seeds.as_deref(), Some(&[][..]));
        assert_eq!(config.p2p.fixed_seeds.as_deref(), Some(&[][..]));
    }

    #[test]
    fn seed_lists_are_bounded_and_dns_seeds_are_host_names() {
        for name in [
            "seed..example",
            "-seed.example",
            "seed-.example",
            "seed example",
            ".",
            "sëed.example",
        ] {
            let e = load(&flags(&[("p2p.dns_seeds", &format!("[{name:?}]"))])).unwrap_err();
            assert!(e.to_string().contains("p2p.dns_seeds"), "{name}: {e}");
            assert!(e.to_string().contains("not a host name"), "{name}: {e}");
        }
        let long = format!("{}.example", "a.".repeat(MAX_HOST_NAME / 2));
        assert!(load(&flags(&[("p2p.dns_seeds", &long)])).is_err());

        let names: Vec<String> = (0..=MAX_SEEDS).map(|i| format!("s{i}.example")).collect();
        let e = load(&flags(&[("p2p.dns_seeds", &names.join(","))])).unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
        let addrs: Vec<String> = (0..=MAX_SEEDS)
            .map(|i| format!("203.0.113.1:{}", i + 1))
            .collect();
        for field in ["p2p.fixed_seeds", "p2p.seeds"] {
            let e = load(&flags(&[(field, &addrs.join(","))])).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
        let fits = &addrs[..MAX_SEEDS];
        load(&flags(&[("p2p.fixed_seeds", &fits.join(","))])).unwrap();
    }

    #[test]
    fn environment_and_lists() {
        let sources = Sources {
            env: vec![
                ("STRATA_P2P_SEEDS".into(), "127.0.0.1:1, 127.0.0.1:2".into()),
                ("STRATA_P2P_OUTBOUND".into(), "3".into()),
            ],
            ..Sources::default()
        };
        let config = load(&sources).unwrap();
        assert_eq!(config.p2p.seeds.len(), 2);
        assert_eq!(config.p2p.outbound, 3);
    }

    #[test]
    fn file_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[p2p]\noutbound = \"x\"\n").unwrap();
        let sources = Sources {
            file: Some(file),
            file_required: true,
            ..Sources::default()
        };
        let err = load(&sources).unwrap_err();
        assert_eq!(err.field, "p2p.outbound", "{err}");
    }
}
