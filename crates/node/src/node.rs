//! The node state machine: connections, handshakes, timed syncs, peer
//! exchange, scoring, connectivity and gossip, with no I/O.
//!
//! `handle_*` methods take what happened (with the time); mutators take the
//! layer above's commands; [`Node::poll_output`] yields what to do next and
//! [`Node::poll_timeout`] when to call [`Node::handle_timeout`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_levin::{Header, InvokeTracker, Kind, return_code};

use crate::addrman::{AddrMan, RELAY_PENALTY};
use crate::config::Config;
use crate::gossip::{self, Action, Gossip, MessageId, Verdict};
use crate::netgroup::NetGroup;
use crate::rng::Rng;
use crate::wire::{
    self, Empty, GossipIds, GossipMessage, HandshakeRequest, HandshakeResponse,
    MAX_IDS_PER_MESSAGE, MAX_PEER_LIST, NodeData, PING_OK, Payload, PeerEntry, PingResponse,
    SupportFlagsResponse, TimedSyncRequest, TimedSyncResponse, command,
};

/// A connection, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// Why the node dials an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialKind {
    /// A full outbound connection.
    Outbound,
    /// An outbound connection in one of the low-latency slots.
    Fast,
    /// A peer saved at the last shutdown.
    Anchor,
    /// A peer named in the configuration, kept connected.
    Manual,
    /// A seed node: asked for addresses once, then dropped.
    Seed,
    /// A short test of an address: handshake, then close.
    Feeler,
}

/// Send priority, highest first (the socket layer's classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Handshakes, pings, timed syncs.
    Control,
    /// Gossip.
    Relay,
    /// Bulk transfer.
    Bulk,
}

/// A protocol violation and its score. A peer's address is banned when its
/// score passes [`Config::ban_threshold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A handshake on a connection that already had one, or an inbound
    /// handshake on a connection we opened.
    SecondHandshake,
    /// The peer is on another network.
    WrongNetwork,
    /// A peer list longer than [`MAX_PEER_LIST`].
    PeerListTooLong,
    /// A response that matches no request in flight.
    UnmatchedResponse,
    /// A request body that does not decode (answered with return code -1).
    UndecodableRequest,
    /// A handshake or response body that does not decode.
    Undecodable,
    /// A message that needs a completed handshake came before it.
    BeforeHandshake,
    /// The handshake's key is missing or differs from the TLS key.
    WrongKey,
    /// A gossip message the layer above rejected, or one over the size limit.
    InvalidGossip,
    /// The layer above reports a violation of its own protocol, with a score.
    Upper(u32),
}

impl Misbehaviour {
    /// Its score.
    pub fn score(self) -> u32 {
        match self {
            Misbehaviour::WrongNetwork | Misbehaviour::UndecodableRequest => 1,
            Misbehaviour::BeforeHandshake => 2,
            Misbehaviour::SecondHandshake
            | Misbehaviour::UnmatchedResponse
            | Misbehaviour::Undecodable
            | Misbehaviour::PeerListTooLong
            | Misbehaviour::WrongKey => 5,
            Misbehaviour::InvalidGossip => 10,
            Misbehaviour::Upper(score) => score,
        }
    }

    /// Whether the connection is closed for it.
    pub fn disconnects(self) -> bool {
        !matches!(
            self,
            Misbehaviour::UndecodableRequest | Misbehaviour::Upper(_)
        )
    }
}

/// The handshake state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the handshake (ours answered, or theirs to arrive).
    Handshaking,
    /// Handshake done.
    Ready,
}

/// What the node knows of a connected peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The connection.
    pub id: PeerId,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Who opened it.
    pub direction: Direction,
    /// Why we dialed it (outbound only).
    pub kind: Option<DialKind>,
    /// Handshake state.
    pub state: State,
    /// The key the peer authenticated with (TLS) or claimed (handshake).
    pub key: Option<[u8; 32]>,
    /// The peer's node data, once the handshake is done.
    pub node_data: Option<NodeData>,
    /// Smoothed round-trip time.
    pub rtt: Option<Duration>,
    /// When the connection came up.
    pub connected_at: Instant,
}

/// What the node reports to the layer above.
#[derive(Debug)]
pub enum Event<P> {
    /// A peer completed its handshake.
    PeerReady(PeerId),
    /// A ready peer's connection ended.
    PeerGone(PeerId),
    /// A peer's `payload_data` (handshake and every timed sync).
    Payload(PeerId, P),
    /// A message of the layer above's command range.
    Upper {
        /// From whom.
        peer: PeerId,
        /// Its command, in [`command::UPPER_FIRST`]..=[`command::UPPER_LAST`].
        command: u32,
        /// Its body.
        body: Bytes,
    },
}

/// What the node asks its driver to do.
#[derive(Debug)]
pub enum Output<P> {
    /// Send a frame on a connection.
    Send {
        /// The connection.
        peer: PeerId,
        /// Priority.
        class: Class,
        /// The 33-byte Levin header.
        head: Bytes,
        /// The body.
        body: Bytes,
    },
    /// The connection's handshake is done: lift its handshake limits.
    HandshakeDone(PeerId),
    /// Close a connection.
    Close(PeerId),
    /// Dial an address; report the outcome with `handle_connected` or
    /// `handle_dial_failed`.
    Dial {
        /// Where.
        addr: SocketAddr,
        /// Why.
        kind: DialKind,
    },
    /// Ban an address.
    Ban {
        /// The address.
        ip: IpAddr,
        /// For how long.
        duration: Duration,
    },
    /// Resolve a DNS seed; report with `handle_resolved`.
    Resolve(String),
    /// Save the address book (peers.dat), off the event loop.
    SaveAddressBook,
    /// For the layer above.
    Event(Event<P>),
}

/// Why `propagate` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropagateError {
    /// No peer has completed a handshake.
    #[error("no connected peers")]
    NoPeers,
    /// The message is over the gossip size limit.
    #[error("message of {size} bytes is over the limit of {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// The receive handler of gossip: called once per new message, it says
/// whether to pass the message on.
pub type Handler = Box<dyn FnMut(PeerId, &MessageId, &Bytes) -> Verdict + Send>;

/// Most addresses one peer's token bucket holds (Bitcoin Core's burst).
const ADDR_BURST: f64 = 1000.0;
/// Addresses per second a peer's bucket refills.
const ADDR_RATE: f64 = 0.1;
/// Most addresses remembered as sent on one connection.
const MAX_SENT_ADDRS: usize = 10_000;
/// Shortest time between two peer lists sent on one connection.
const PEER_LIST_INTERVAL: Duration = Duration::from_secs(30);
/// Most scored addresses remembered.
const MAX_SCORES: usize = 10_000;
/// Requests one connection may have in flight.
const MAX_INVOKES: usize = 8;
/// How often the address book is saved.
const SAVE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How often connectivity is checked when short of outbound peers.
const CONNECT_INTERVAL: Duration = Duration::from_millis(500);
/// How long after a failure a manual peer is dialed again.
const MANUAL_RETRY: Duration = Duration::from_secs(5);
/// Most candidates drawn for one outbound slot.
const SELECT_TRIES: usize = 64;
/// Candidates compared for a low-latency slot.
const FAST_CANDIDATES: usize = 8;
/// DNS seeds are queried after this long when the address book is small,
/// at once when it is empty, and not at all when it holds this many.
const DNS_BOOK_THRESHOLD: usize = 1000;
/// Most addresses taken from one DNS seed.
const MAX_DNS_ADDRS: usize = 32;
/// How long after trying an address the outbound slots pass it over.
const REDIAL_AFTER: Duration = Duration::from_secs(60);
/// Most addresses remembered as tried recently.
const MAX_RECENT_TRIES: usize = 4096;
/// Most addresses remembered as our own.
const MAX_SELF_ADDRS: usize = 16;
/// Most anchors saved.
pub const MAX_ANCHORS: usize = 2;

struct Conn<P> {
    info: PeerInfo,
    invokes: InvokeTracker,
    deadline: Instant,
    last_recv: Instant,
    next_sync: Instant,
    addr_tokens: f64,
    addr_tokens_at: Instant,
    sent_addrs: HashSet<SocketAddr>,
    last_useful: Option<Instant>,
    last_peer_list: Option<Instant>,
    payload: Option<P>,
}

/// The node state machine.
pub struct Node<P: Payload> {
    config: Config,
    peer_id: u64,
    payload: P,
    book: AddrMan,
    rng: Rng,
    start: Instant,
    unix_start: i64,
    conns: HashMap<PeerId, Conn<P>>,
    pending: HashMap<SocketAddr, DialKind>,
    manual_retry: HashMap<SocketAddr, Instant>,
    anchors: Vec<SocketAddr>,
    seeds_left: Vec<SocketAddr>,
    scores: HashMap<IpAddr, u32>,
    /// Addresses this run tried in the last [`REDIAL_AFTER`].
    recent_tries: HashMap<SocketAddr, Instant>,
    /// Addresses that turned out to be our own.
    self_addrs: HashSet<SocketAddr>,
    gossip: Gossip,
    handler: Handler,
    out: VecDeque<Output<P>>,
    next_connect: Instant,
    next_feeler: Instant,
    next_save: Instant,
    dns_at: Option<Instant>,
    fixed_at: Option<Instant>,
    actions: Vec<Action>,
}

impl<P: Payload> Node<P> {
    /// A node with no connection. `book` is the address book read from
    /// peers.dat (or a new one), `anchors` the peers saved at the last
    /// shutdown, `unix` the wall-clock time at `now` in Unix seconds, and
    /// `seed` the seed of every random choice.
    #[allow(clippy::too_many_arguments)] // each is a distinct input of the start
    pub fn new(
        config: Config,
        payload: P,
        book: AddrMan,
        anchors: Vec<SocketAddr>,
        now: Instant,
        unix: i64,
        seed: u64,
        handler: Handler,
    ) -> Node<P> {
        let mut rng = Rng::new(seed);
        let peer_id = rng.next_u64();
        let dns_delay = if book.is_empty() {
            Duration::ZERO
        } else {
            config.dns_delay
        };
        let dns_at = (!config.dns_seeds.is_empty()
            && config.exclusive.is_empty()
            && book.len() < DNS_BOOK_THRESHOLD)
            .then(|| now + dns_delay);
        let fixed_at = (!config.fixed_seeds.is_empty() && config.exclusive.is_empty())
            .then(|| now + config.fixed_seed_delay);
        let next_feeler = now + rng.exponential(config.feeler_interval);
        let gossip = Gossip::new(config.gossip.clone());
        let seeds_left = config.seeds.clone();
        let mut anchors = anchors;
        anchors.truncate(MAX_ANCHORS);
        Node {
            peer_id,
            payload,
            book,
            rng,
            start: now,
            unix_start: unix,
            conns: HashMap::new(),
            pending: HashMap::new(),
            manual_retry: HashMap::new(),
            anchors,
            seeds_left,
            scores: HashMap::new(),
            self_addrs: HashSet::new(),
            recent_tries: HashMap::new(),
            gossip,
            handler,
            out: VecDeque::new(),
            next_connect: now,
            next_feeler,
            next_save: now + SAVE_INTERVAL,
            dns_at,
            fixed_at,
            actions: Vec::new(),
            config,
        }
    }

    // ----- accessors -----

    /// This node's random peer id.
    pub fn peer_id(&self) -> u64 {
        self.peer_id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The address book.
    pub fn address_book(&self) -> &AddrMan {
        &self.book
    }

    /// Every connection.
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.conns.values().map(|c| &c.info)
    }

    /// One connection.
    pub fn peer(&self, peer: PeerId) -> Option<&PeerInfo> {
        self.conns.get(&peer).map(|c| &c.info)
    }

    /// The last `payload_data` a peer sent.
    pub fn peer_payload(&self, peer: PeerId) -> Option<&P> {
        self.conns.get(&peer).and_then(|c| c.payload.as_ref())
    }

    /// Gossip counters.
    pub fn gossip_stats(&self) -> gossip::Stats {
        self.gossip.stats
    }

    /// The peers to save as anchors at shutdown: the longest-connected
    /// full outbound peers.
    pub fn anchors(&self) -> Vec<SocketAddr> {
        let mut outbound: Vec<&PeerInfo> = self
            .peers()
            .filter(|p| {
                p.state == State::Ready
                    && matches!(
                        p.kind,
                        Some(DialKind::Outbound | DialKind::Fast | DialKind::Anchor)
                    )
            })
            .collect();
        outbound.sort_by_key(|p| p.connected_at);
        outbound
            .iter()
            .take(MAX_ANCHORS)
            .map(|p| p.remote)
            .collect()
    }

    fn unix(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.start).as_secs();
        self.unix_start + i64::try_from(elapsed).unwrap_or(i64::MAX / 2)
    }

    fn node_data(&self) -> NodeData {
        NodeData {
            my_port: u32::from(self.config.listen_port),
            network_id: self.config.network_id,
            peer_id: self.peer_id,
            rpc_credits_per_hash: None,
            rpc_port: None,
            support_flags: Some(self.config.support_flags),
            strata_key: self.config.node_key,
        }
    }

    // ----- outputs -----

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<Output<P>> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at = [
            Some(self.next_feeler),
            Some(self.next_save),
            self.dns_at,
            self.fixed_at,
            self.gossip.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        if self.wants_connections() {
            at = at.min(Some(self.next_connect)).or(Some(self.next_connect));
        }
        for conn in self.conns.values() {
            let liveness = match conn.info.state {
                State::Handshaking => conn.deadline,
                State::Ready => conn.last_recv + self.config.idle_timeout,
            };
            let own = [
                Some(liveness),
                conn.invokes.poll_timeout(),
                (conn.info.state == State::Ready).then_some(conn.next_sync),
            ]
            .into_iter()
            .flatten()
            .min();
            at = match (at, own) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        at
    }

    fn send<T: serde::Serialize>(&mut self, peer: PeerId, class: Class, header: Header, body: &T) {
        match wire::encode(body) {
            Ok(body) => {
                let header = Header {
                    body_len: body.len() as u64,
                    ..header
                };
                self.out.push_back(Output::Send {
                    peer,
                    class,
                    head: Bytes::copy_from_slice(&header.encode()),
                    body,
                });
            }
            Err(e) => tracing::warn!("encoding a message failed: {e}"),
        }
    }

    fn send_raw(&mut self, peer: PeerId, class: Class, header: Header, body: Bytes) {
        let header = Header {
            body_len: body.len() as u64,
            ..header
        };
        self.out.push_back(Output::Send {
            peer,
            class,
            head: Bytes::copy_from_slice(&header.encode()),
            body,
        });
    }

    fn request<T: serde::Serialize>(&mut self, peer: PeerId, command: u32, body: &T, now: Instant) {
        let deadline = now + self.config.request_timeout;
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        if conn.invokes.request_sent(command, deadline).is_err() {
            // Too many requests unanswered: the peer is not keeping up.
            self.close(peer);
            return;
        }
        self.send(peer, Class::Control, Header::request(command, 0), body);
    }

    fn close(&mut self, peer: PeerId) {
        self.out.push_back(Output::Close(peer));
    }

    /// Scores the peer behind `peer` for `what`, closing and banning as due.
    pub fn report(&mut self, peer: PeerId, what: Misbehaviour) {
        let Some(conn) = self.conns.get(&peer) else {
            return;
        };
        let ip = conn.info.remote.ip();
        tracing::debug!("peer {} misbehaved: {what:?}", conn.info.remote);
        if self.scores.len() >= MAX_SCORES && !self.scores.contains_key(&ip) {
            self.scores.clear();
        }
        let score = self.scores.entry(ip).or_insert(0);
        *score += what.score();
        if *score > self.config.ban_threshold {
            self.scores.remove(&ip);
            self.out.push_back(Output::Ban {
                ip,
                duration: self.config.ban_duration,
            });
            let same_ip: Vec<PeerId> = self
                .conns
                .iter()
                .filter(|(_, c)| c.info.remote.ip() == ip)
                .map(|(id, _)| *id)
                .collect();
            for id in same_ip {
                self.close(id);
            }
        } else if what.disconnects() {
            self.close(peer);
        }
    }

    /// The current misbehaviour score of an address.
    pub fn score(&self, ip: IpAddr) -> u32 {
        self.scores.get(&ip).copied().unwrap_or(0)
    }

    // ----- commands from the layer above -----

    /// Replaces the `payload_data` sent in handshakes and timed syncs.
    pub fn set_payload(&mut self, payload: P) {
        self.payload = payload;
    }

    /// Publishes a gossip message to every peer; returns its id.
    pub fn propagate(&mut self, payload: Bytes, now: Instant) -> Result<MessageId, PropagateError> {
        let max = self.gossip.config().max_message;
        if payload.len() > max {
            return Err(PropagateError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        if !self.gossip.has_peers() {
            return Err(PropagateError::NoPeers);
        }
        let id = self.gossip.publish(payload, now, &mut self.actions);
        self.apply_gossip();
        Ok(id)
    }

    /// Sends a message of the layer above's command range to a ready peer.
    /// Returns false when the peer is not ready or the command is outside
    /// the range.
    pub fn send_upper(&mut self, peer: PeerId, command: u32, body: Bytes, class: Class) -> bool {
        let ready = self
            .conns
            .get(&peer)
            .is_some_and(|c| c.info.state == State::Ready);
        if !ready || !(command::UPPER_FIRST..=command::UPPER_LAST).contains(&command) {
            return false;
        }
        self.send_raw(peer, class, Header::notification(command, 0), body);
        true
    }

    /// Adds addresses to the address book, as if told by `source`.
    pub fn add_addresses(&mut self, addrs: &[SocketAddr], source: IpAddr, now: Instant) {
        let unix = self.unix(now);
        let stamped: Vec<(SocketAddr, i64)> = addrs.iter().map(|a| (*a, unix)).collect();
        self.book.add(&stamped, source, 0, unix, &mut self.rng);
    }

    // ----- events -----

    /// A connection is up. `key` is the peer's TLS-authenticated key.
    pub fn handle_connected(
        &mut self,
        peer: PeerId,
        remote: SocketAddr,
        direction: Direction,
        key: Option<[u8; 32]>,
        now: Instant,
    ) {
        let kind = match direction {
            Direction::Outbound => Some(self.pending.remove(&remote).unwrap_or(DialKind::Manual)),
            Direction::Inbound => None,
        };
        if direction == Direction::Outbound && self.book.get(&remote).is_none() {
            // An address we reached is a real one: it enters the book, so
            // its successes and failures are kept.
            let unix = self.unix(now);
            let _ = self
                .book
                .add_one(remote, unix, remote.ip(), 0, unix, &mut self.rng);
        }
        let conn = Conn {
            info: PeerInfo {
                id: peer,
                remote,
                direction,
                kind,
                state: State::Handshaking,
                key,
                node_data: None,
                rtt: None,
                connected_at: now,
            },
            invokes: InvokeTracker::new(MAX_INVOKES),
            deadline: now + self.config.handshake_timeout,
            last_recv: now,
            next_sync: now + self.config.timed_sync_interval,
            addr_tokens: ADDR_BURST,
            addr_tokens_at: now,
            sent_addrs: HashSet::new(),
            last_useful: None,
            last_peer_list: None,
            payload: None,
        };
        self.conns.insert(peer, conn);
        match direction {
            Direction::Outbound => {
                let body = HandshakeRequest {
                    node_data: self.node_data(),
                    payload_data: self.payload.clone(),
                };
                self.request(peer, command::HANDSHAKE, &body, now);
            }
            Direction::Inbound => {
                let inbound = self
                    .conns
                    .values()
                    .filter(|c| c.info.direction == Direction::Inbound)
                    .count();
                if inbound > self.config.max_inbound {
                    let victim = self.eviction_victim(now).unwrap_or(peer);
                    tracing::debug!("inbound slots full: closing {victim:?}");
                    self.close(victim);
                }
            }
        }
    }

    /// A dial did not connect.
    pub fn handle_dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        let kind = self.pending.remove(&addr);
        self.note_try(addr, now);
        let unix = self.unix(now);
        self.book.attempt(addr, true, unix);
        if kind == Some(DialKind::Manual) {
            self.manual_retry.insert(addr, now + MANUAL_RETRY);
        }
    }

    /// A connection ended.
    pub fn handle_closed(&mut self, peer: PeerId, now: Instant) {
        let Some(conn) = self.conns.remove(&peer) else {
            return;
        };
        if conn.info.direction == Direction::Outbound {
            self.note_try(conn.info.remote, now);
        }
        if conn.info.state == State::Ready {
            self.gossip.remove_peer(peer, now, &mut self.actions);
            self.apply_gossip();
            self.out.push_back(Output::Event(Event::PeerGone(peer)));
        } else if conn.info.direction == Direction::Outbound {
            let unix = self.unix(now);
            self.book.attempt(conn.info.remote, true, unix);
        }
        if conn.info.kind == Some(DialKind::Manual) {
            self.manual_retry
                .insert(conn.info.remote, now + MANUAL_RETRY);
        }
        self.next_connect = self.next_connect.min(now);
    }

    /// Addresses a DNS seed resolved to.
    pub fn handle_resolved(&mut self, name: &str, ips: &[IpAddr], now: Instant) {
        let unix = self.unix(now);
        let port = self.config.default_port;
        let mut added = 0;
        for ip in ips.iter().take(MAX_DNS_ADDRS) {
            // Stamped three to seven days old, as Bitcoin Core does.
            let age = 3 * 86_400 + i64::try_from(self.rng.below(4 * 86_400)).unwrap_or(0);
            let source = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            if self.book.add_one(
                SocketAddr::new(*ip, port),
                unix - age,
                source,
                0,
                unix,
                &mut self.rng,
            ) == Ok(true)
            {
                added += 1;
            }
        }
        tracing::info!("DNS seed {name}: {} addresses, {added} new", ips.len());
        self.next_connect = now;
    }

    /// A frame arrived on a connection.
    pub fn handle_message(&mut self, peer: PeerId, header: Header, body: Bytes, now: Instant) {
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        conn.last_recv = now;
        let ready = conn.info.state == State::Ready;
        match header.kind() {
            Kind::Response => self.on_response(peer, header, body, now),
            Kind::Request => self.on_request(peer, header, body, ready, now),
            Kind::Notification => self.on_notification(peer, header.command, body, ready, now),
            // The decoder below takes noise and fragments apart.
            _ => {}
        }
    }

    fn on_response(&mut self, peer: PeerId, header: Header, body: Bytes, now: Instant) {
        let timeout = self.config.request_timeout;
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        let Ok(deadline) = conn.invokes.response_received(header.command) else {
            self.report(peer, Misbehaviour::UnmatchedResponse);
            return;
        };
        let rtt = now.saturating_duration_since(deadline.checked_sub(timeout).unwrap_or(now));
        conn.info.rtt = Some(match conn.info.rtt {
            Some(old) => (old * 7 + rtt) / 8,
            None => rtt,
        });
        let remote = conn.info.remote;
        let rtt_us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
        if conn.info.direction == Direction::Outbound {
            self.book.set_rtt(remote, rtt_us);
        }
        if header.return_code < 0 {
            tracing::debug!(
                "{remote}: command {} failed with {}",
                header.command,
                header.return_code
            );
            if header.command == command::HANDSHAKE {
                self.close(peer);
            }
            return;
        }
        match header.command {
            command::HANDSHAKE => match wire::decode::<HandshakeResponse<P>>(&body) {
                Ok(response) => {
                    if self.accept_node_data(peer, &response.node_data, now) {
                        self.on_peer_list(peer, &response.local_peerlist_new, now);
                        self.on_payload(peer, response.payload_data);
                        self.after_outbound_handshake(peer, now);
                    }
                }
                Err(_) => self.report(peer, Misbehaviour::Undecodable),
            },
            command::TIMED_SYNC => match wire::decode::<TimedSyncResponse<P>>(&body) {
                Ok(response) => {
                    self.on_peer_list(peer, &response.local_peerlist_new, now);
                    self.on_payload(peer, response.payload_data);
                }
                Err(_) => self.report(peer, Misbehaviour::Undecodable),
            },
            _ => {}
        }
    }

    fn after_outbound_handshake(&mut self, peer: PeerId, now: Instant) {
        let Some(conn) = self.conns.get(&peer) else {
            return;
        };
        let remote = conn.info.remote;
        let kind = conn.info.kind;
        let unix = self.unix(now);
        self.book.good(remote, unix);
        if matches!(kind, Some(DialKind::Feeler | DialKind::Seed)) {
            self.close(peer);
        }
    }

    fn on_request(&mut self, peer: PeerId, header: Header, body: Bytes, ready: bool, now: Instant) {
        let command = header.command;
        match command {
            command::PING => {
                let body = PingResponse {
                    peer_id: self.peer_id,
                    status: PING_OK.to_owned(),
                };
                self.respond(peer, command, return_code::P2P_OK, &body);
            }
            command::REQUEST_SUPPORT_FLAGS => {
                let body = SupportFlagsResponse {
                    support_flags: self.config.support_flags,
                };
                self.respond(peer, command, return_code::P2P_OK, &body);
            }
            command::HANDSHAKE => {
                let outbound = self
                    .conns
                    .get(&peer)
                    .is_some_and(|c| c.info.direction == Direction::Outbound);
                if ready || outbound {
                    self.report(peer, Misbehaviour::SecondHandshake);
                    return;
                }
                let Ok(request) = wire::decode::<HandshakeRequest<P>>(&body) else {
                    self.respond(peer, command, return_code::CONNECTION, &Empty {});
                    self.report(peer, Misbehaviour::Undecodable);
                    return;
                };
                if !self.accept_node_data(peer, &request.node_data, now) {
                    return;
                }
                // The peer's own listening address enters the book.
                if let Some(conn) = self.conns.get(&peer)
                    && let Ok(port) = u16::try_from(request.node_data.my_port)
                    && port != 0
                {
                    let addr = SocketAddr::new(conn.info.remote.ip(), port);
                    let unix = self.unix(now);
                    let _ = self
                        .book
                        .add_one(addr, unix, addr.ip(), 0, unix, &mut self.rng);
                }
                let peers = self.peer_list(peer, now);
                let body = HandshakeResponse {
                    local_peerlist_new: peers,
                    node_data: self.node_data(),
                    payload_data: self.payload.clone(),
                };
                self.respond(peer, command, return_code::P2P_OK, &body);
                self.on_payload(peer, request.payload_data);
            }
            command::TIMED_SYNC => {
                if !ready {
                    self.report(peer, Misbehaviour::BeforeHandshake);
                    return;
                }
                let Ok(request) = wire::decode::<TimedSyncRequest<P>>(&body) else {
                    self.respond(peer, command, return_code::CONNECTION, &Empty {});
                    self.report(peer, Misbehaviour::UndecodableRequest);
                    return;
                };
                let peers = self.peer_list(peer, now);
                let body = TimedSyncResponse {
                    local_peerlist_new: peers,
                    payload_data: self.payload.clone(),
                };
                self.respond(peer, command, return_code::P2P_OK, &body);
                self.on_payload(peer, request.payload_data);
            }
            _ => {
                // monerod's answer to a command it has no handler for.
                self.respond(peer, command, return_code::HANDLER_NOT_DEFINED, &Empty {});
            }
        }
    }

    fn respond<T: serde::Serialize>(&mut self, peer: PeerId, command: u32, code: i32, body: &T) {
        if code < 0 {
            // Failures carry an empty body, as monerod's do.
            self.send_raw(
                peer,
                Class::Control,
                Header::response(command, code, 0),
                Bytes::new(),
            );
        } else {
            self.send(
                peer,
                Class::Control,
                Header::response(command, code, 0),
                body,
            );
        }
    }

    fn on_notification(
        &mut self,
        peer: PeerId,
        command: u32,
        body: Bytes,
        ready: bool,
        now: Instant,
    ) {
        let strata = (command::GOSSIP_MESSAGE..=command::UPPER_LAST).contains(&command);
        if !strata {
            // Cryptonote notifications (monerod sends some, even before
            // answering a handshake) and unknown ones: not ours, ignored.
            return;
        }
        if !ready {
            self.report(peer, Misbehaviour::BeforeHandshake);
            return;
        }
        match command {
            command::GOSSIP_MESSAGE => match wire::decode::<GossipMessage>(&body) {
                Ok(message) => self.on_gossip(peer, message.payload, now),
                Err(_) => self.report(peer, Misbehaviour::Undecodable),
            },
            command::GOSSIP_ANNOUNCE | command::GOSSIP_REQUEST => {
                let Ok(ids) = wire::decode::<GossipIds>(&body) else {
                    self.report(peer, Misbehaviour::Undecodable);
                    return;
                };
                if ids.ids.len() % wire::SHORT_ID_LEN != 0
                    || ids.ids.len() / wire::SHORT_ID_LEN > MAX_IDS_PER_MESSAGE
                {
                    self.report(peer, Misbehaviour::Undecodable);
                    return;
                }
                if command == command::GOSSIP_ANNOUNCE {
                    self.gossip
                        .on_announce(peer, &ids.ids, now, &mut self.actions);
                } else {
                    self.gossip.on_request(peer, &ids.ids, &mut self.actions);
                }
                self.apply_gossip();
            }
            command::UPPER_FIRST..=command::UPPER_LAST => {
                self.out.push_back(Output::Event(Event::Upper {
                    peer,
                    command,
                    body,
                }));
            }
            _ => {} // reserved for the gossip range's future commands
        }
    }

    fn on_gossip(&mut self, peer: PeerId, payload: Bytes, now: Instant) {
        if payload.len() > self.gossip.config().max_message {
            self.report(peer, Misbehaviour::InvalidGossip);
            return;
        }
        let Some(id) = self.gossip.on_message(&payload, now, &mut self.actions) else {
            self.apply_gossip();
            return;
        };
        if let Some(conn) = self.conns.get_mut(&peer) {
            conn.last_useful = Some(now);
        }
        match (self.handler)(peer, &id, &payload) {
            Verdict::Propagate => {
                self.gossip.relay(id, payload, peer, now, &mut self.actions);
            }
            Verdict::Drop => {}
            Verdict::Reject => self.report(peer, Misbehaviour::InvalidGossip),
        }
        self.apply_gossip();
    }

    fn apply_gossip(&mut self) {
        for action in std::mem::take(&mut self.actions) {
            let (peer, command, body) = match action {
                Action::Message(peer, payload) => (
                    peer,
                    command::GOSSIP_MESSAGE,
                    wire::encode(&GossipMessage { payload }),
                ),
                Action::Announce(peer, ids) => (
                    peer,
                    command::GOSSIP_ANNOUNCE,
                    wire::encode(&GossipIds { ids }),
                ),
                Action::Request(peer, ids) => (
                    peer,
                    command::GOSSIP_REQUEST,
                    wire::encode(&GossipIds { ids }),
                ),
            };
            match body {
                Ok(body) => {
                    self.send_raw(peer, Class::Relay, Header::notification(command, 0), body)
                }
                Err(e) => tracing::warn!("encoding a gossip message failed: {e}"),
            }
        }
    }

    fn on_payload(&mut self, peer: PeerId, payload: P) {
        if let Some(conn) = self.conns.get_mut(&peer) {
            conn.payload = Some(payload.clone());
        }
        self.out
            .push_back(Output::Event(Event::Payload(peer, payload)));
    }

    /// Checks a handshake's node data; on success the connection is ready.
    fn accept_node_data(&mut self, peer: PeerId, data: &NodeData, now: Instant) -> bool {
        if data.network_id != self.config.network_id {
            self.report(peer, Misbehaviour::WrongNetwork);
            return false;
        }
        if data.peer_id == self.peer_id {
            tracing::debug!("connected to ourselves; closing");
            if let Some(conn) = self.conns.get(&peer)
                && conn.info.direction == Direction::Outbound
                && self.self_addrs.len() < MAX_SELF_ADDRS
            {
                self.self_addrs.insert(conn.info.remote);
            }
            self.close(peer);
            return false;
        }
        let Some(conn) = self.conns.get_mut(&peer) else {
            return false;
        };
        if self.config.require_key {
            let ok = match (data.strata_key, conn.info.key) {
                (Some(claimed), Some(tls)) => claimed == tls,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !ok {
                self.report(peer, Misbehaviour::WrongKey);
                return false;
            }
        }
        if conn.info.key.is_none() {
            conn.info.key = data.strata_key;
        }
        conn.info.state = State::Ready;
        conn.info.node_data = Some(data.clone());
        conn.next_sync = now + self.config.timed_sync_interval;
        let remote = conn.info.remote;
        let unix = self.unix(now);
        self.book.connected(remote, unix);
        self.gossip
            .add_peer(peer, gossip::salt(self.peer_id, data.peer_id));
        self.out.push_back(Output::HandshakeDone(peer));
        self.out.push_back(Output::Event(Event::PeerReady(peer)));
        true
    }

    /// A peer list for `peer`: up to 250 addresses not sent on this
    /// connection before, times left out.
    fn peer_list(&mut self, peer: PeerId, now: Instant) -> Vec<PeerEntry> {
        let unix = self.unix(now);
        let Some(conn) = self.conns.get_mut(&peer) else {
            return Vec::new();
        };
        // Sampling walks the whole book: at most one list per interval on a
        // connection, however often the peer asks.
        if conn
            .last_peer_list
            .is_some_and(|at| now < at + PEER_LIST_INTERVAL)
        {
            return Vec::new();
        }
        conn.last_peer_list = Some(now);
        let remote = conn.info.remote;
        let sent = &conn.sent_addrs;
        let entries: Vec<SocketAddr> = self
            .book
            .sample(MAX_PEER_LIST, unix, &mut self.rng, |a| {
                sent.contains(a) || *a == remote
            })
            .into_iter()
            .map(|e| e.addr)
            .collect();
        let Some(conn) = self.conns.get_mut(&peer) else {
            return Vec::new();
        };
        if conn.sent_addrs.len() + entries.len() > MAX_SENT_ADDRS {
            conn.sent_addrs.clear();
        }
        entries
            .into_iter()
            .map(|addr| {
                conn.sent_addrs.insert(addr);
                PeerEntry {
                    adr: addr.into(),
                    id: 0,
                    ..PeerEntry::default()
                }
            })
            .collect()
    }

    fn on_peer_list(&mut self, peer: PeerId, list: &[PeerEntry], now: Instant) {
        if list.len() > MAX_PEER_LIST {
            self.report(peer, Misbehaviour::PeerListTooLong);
            return;
        }
        let unix = self.unix(now);
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        let elapsed = now
            .saturating_duration_since(conn.addr_tokens_at)
            .as_secs_f64();
        conn.addr_tokens = (conn.addr_tokens + elapsed * ADDR_RATE).min(ADDR_BURST);
        conn.addr_tokens_at = now;
        #[allow(clippy::cast_possible_truncation)] // bounded by ADDR_BURST
        let allowed = conn.addr_tokens.floor().max(0.0) as usize;
        let take = list.len().min(allowed);
        conn.addr_tokens -= take as f64;
        let source = conn.info.remote.ip();
        let addrs: Vec<(SocketAddr, i64)> = list
            .iter()
            .take(take)
            .filter_map(|e| Some((e.adr.socket_addr()?, e.last_seen.unwrap_or(0))))
            .collect();
        // Addresses a peer relays count as sent on that connection: never
        // sent back to it.
        for (addr, _) in &addrs {
            if conn.sent_addrs.len() < MAX_SENT_ADDRS {
                conn.sent_addrs.insert(*addr);
            }
        }
        self.book
            .add(&addrs, source, RELAY_PENALTY, unix, &mut self.rng);
    }

    /// Timers: handshake and liveness deadlines, timed syncs, gossip,
    /// connectivity, DNS and fixed seeds, saving the address book.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ids: Vec<PeerId> = self.conns.keys().copied().collect();
        ids.sort();
        for peer in ids {
            let Some(conn) = self.conns.get(&peer) else {
                continue;
            };
            if let Some(command) = conn.invokes.timed_out(now) {
                tracing::debug!("{}: no answer to command {command}", conn.info.remote);
                let remote = conn.info.remote;
                let unix = self.unix(now);
                self.book.attempt(remote, true, unix);
                self.close(peer);
                continue;
            }
            if conn.info.state == State::Handshaking && now >= conn.deadline {
                self.close(peer);
                continue;
            }
            if conn.info.state == State::Ready {
                if now >= conn.last_recv + self.config.idle_timeout {
                    tracing::debug!("{}: silent for too long", conn.info.remote);
                    self.close(peer);
                    continue;
                }
                if now >= conn.next_sync {
                    let interval = self.config.timed_sync_interval;
                    if let Some(conn) = self.conns.get_mut(&peer) {
                        conn.next_sync = now + interval;
                    }
                    let body = TimedSyncRequest {
                        payload_data: self.payload.clone(),
                    };
                    self.request(peer, command::TIMED_SYNC, &body, now);
                }
            }
        }
        self.gossip.on_timeout(now, &mut self.actions);
        self.apply_gossip();

        let unix = self.unix(now);
        if self.dns_at.is_some_and(|at| now >= at) {
            self.dns_at = None;
            if self.book.len() < DNS_BOOK_THRESHOLD {
                for name in self.config.dns_seeds.clone() {
                    self.out.push_back(Output::Resolve(name));
                }
            }
        }
        if self.fixed_at.is_some_and(|at| now >= at) {
            self.fixed_at = None;
            if self.book.is_empty() {
                tracing::info!("no addresses yet: adding the fixed seeds");
                let fixed = self.config.fixed_seeds.clone();
                self.add_addresses(&fixed, IpAddr::V4(Ipv4Addr::UNSPECIFIED), now);
            }
        }
        if now >= self.next_save {
            self.next_save = now + SAVE_INTERVAL;
            self.out.push_back(Output::SaveAddressBook);
        }
        if now >= self.next_connect {
            self.book.resolve_collisions(unix);
            self.connect(now);
            self.next_connect = now + CONNECT_INTERVAL;
        }
        if now >= self.next_feeler {
            self.next_feeler = now + self.rng.exponential(self.config.feeler_interval);
            self.feeler(now);
        }
    }

    fn outbound_kinds(&self) -> impl Iterator<Item = DialKind> + '_ {
        self.conns
            .values()
            .filter_map(|c| c.info.kind)
            .chain(self.pending.values().copied())
    }

    fn full_outbound(&self) -> usize {
        self.outbound_kinds()
            .filter(|k| matches!(k, DialKind::Outbound | DialKind::Fast | DialKind::Anchor))
            .count()
    }

    fn wants_connections(&self) -> bool {
        if !self.config.exclusive.is_empty() {
            return true;
        }
        !self.anchors.is_empty()
            || !self.seeds_left.is_empty()
            || !self.config.peers.is_empty()
            || self.full_outbound() < self.config.outbound
    }

    fn is_connected_or_pending(&self, addr: &SocketAddr) -> bool {
        self.pending.contains_key(addr) || self.conns.values().any(|c| c.info.remote == *addr)
    }

    /// Remembers that this run tried `addr` (dialed it, or saw it fail).
    fn note_try(&mut self, addr: SocketAddr, now: Instant) {
        self.recent_tries.retain(|_, at| now < *at + REDIAL_AFTER);
        if self.recent_tries.len() < MAX_RECENT_TRIES {
            self.recent_tries.insert(addr, now);
        }
    }

    fn dial(&mut self, addr: SocketAddr, kind: DialKind, now: Instant) {
        self.note_try(addr, now);
        let unix = self.unix(now);
        self.book.attempt(addr, false, unix);
        self.pending.insert(addr, kind);
        self.out.push_back(Output::Dial { addr, kind });
    }

    /// Dials what the connectivity rules want: exclusive or manual peers,
    /// anchors, seeds, then outbound slots in distinct groups.
    fn connect(&mut self, now: Instant) {
        let manual: Vec<SocketAddr> = if self.config.exclusive.is_empty() {
            self.config.peers.clone()
        } else {
            self.config.exclusive.clone()
        };
        for addr in manual {
            let waiting = self.manual_retry.get(&addr).is_some_and(|at| now < *at);
            if !waiting && !self.is_connected_or_pending(&addr) {
                self.manual_retry.remove(&addr);
                self.dial(addr, DialKind::Manual, now);
            }
        }
        if !self.config.exclusive.is_empty() {
            return;
        }
        for addr in std::mem::take(&mut self.anchors) {
            if !self.is_connected_or_pending(&addr) {
                self.dial(addr, DialKind::Anchor, now);
            }
        }
        if self.book.len() < DNS_BOOK_THRESHOLD {
            for addr in std::mem::take(&mut self.seeds_left) {
                if !self.is_connected_or_pending(&addr) {
                    self.dial(addr, DialKind::Seed, now);
                }
            }
        } else {
            self.seeds_left.clear();
        }
        let unix = self.unix(now);
        let mut groups: HashSet<NetGroup> = self
            .conns
            .values()
            .filter(|c| c.info.direction == Direction::Outbound)
            .map(|c| c.info.remote)
            .chain(self.pending.keys().copied())
            .filter_map(|a| self.book.addr_group(a))
            .collect();
        while self.full_outbound() < self.config.outbound {
            let fast_now = self
                .outbound_kinds()
                .filter(|k| *k == DialKind::Fast)
                .count();
            let fast = fast_now < self.config.fast_slots;
            let mut chosen = None;
            for _ in 0..SELECT_TRIES {
                let candidate = if fast {
                    self.fast_candidate(unix)
                } else {
                    self.book.select(false, unix, &mut self.rng).map(|e| e.addr)
                };
                let Some(addr) = candidate else {
                    break;
                };
                let Some(group) = self.book.addr_group(addr) else {
                    continue;
                };
                // Tried by this run within the minute: another address
                // first. (A try from before a restart, kept in the book, must
                // not hold a quick restart back.)
                let recently = self
                    .recent_tries
                    .get(&addr)
                    .is_some_and(|at| now < *at + REDIAL_AFTER);
                if groups.contains(&group)
                    || self.is_connected_or_pending(&addr)
                    || recently
                    || self.self_addrs.contains(&addr)
                {
                    continue;
                }
                chosen = Some((addr, group));
                break;
            }
            let Some((addr, group)) = chosen else {
                break;
            };
            groups.insert(group);
            let kind = if fast {
                DialKind::Fast
            } else {
                DialKind::Outbound
            };
            self.dial(addr, kind, now);
        }
    }

    /// The candidate with the lowest measured round-trip time among a few
    /// drawn from tried; random when none was measured.
    fn fast_candidate(&mut self, unix: i64) -> Option<SocketAddr> {
        let mut best: Option<(u32, SocketAddr)> = None;
        for _ in 0..FAST_CANDIDATES {
            let Some(entry) = self.book.select(false, unix, &mut self.rng) else {
                break;
            };
            let rtt = if entry.rtt_us == 0 {
                u32::MAX
            } else {
                entry.rtt_us
            };
            if best.is_none_or(|(b, _)| rtt < b) {
                best = Some((rtt, entry.addr));
            }
        }
        best.map(|(_, addr)| addr)
    }

    /// A feeler: test a contested tried slot's occupant, or a new address.
    fn feeler(&mut self, now: Instant) {
        if !self.config.exclusive.is_empty() || self.full_outbound() < self.config.outbound {
            return;
        }
        let unix = self.unix(now);
        let candidate = self
            .book
            .collision_to_test(&mut self.rng)
            .or_else(|| self.book.select(true, unix, &mut self.rng).map(|e| e.addr));
        if let Some(addr) = candidate
            && !self.is_connected_or_pending(&addr)
        {
            self.dial(addr, DialKind::Feeler, now);
        }
    }

    /// The inbound peer to evict when inbound slots are full, after
    /// Bitcoin Core: protect 4 by keyed group, 8 by lowest round-trip time,
    /// 4 by most recent gossip delivered, half the rest by uptime; then the
    /// youngest peer of the group with most connections.
    fn eviction_victim(&mut self, now: Instant) -> Option<PeerId> {
        let mut candidates: Vec<&Conn<P>> = self
            .conns
            .values()
            .filter(|c| c.info.direction == Direction::Inbound && c.info.state == State::Ready)
            .collect();
        let key = self.book.key();
        let keyed = |c: &&Conn<P>| {
            let group = self.book.group(c.info.remote.ip());
            let mut h = [0u8; 8];
            if let Some(g) = group {
                let id = MessageId::of(&[&key[..], &g.as_bytes()[..]].concat());
                h.copy_from_slice(&id.0[..8]);
            }
            u64::from_le_bytes(h)
        };
        candidates.sort_by_key(keyed);
        protect(&mut candidates, 4);
        candidates.sort_by_key(|c| std::cmp::Reverse(c.info.rtt.unwrap_or(Duration::MAX)));
        protect(&mut candidates, 8);
        candidates.sort_by_key(|c| c.last_useful);
        protect(&mut candidates, 4);
        candidates.sort_by_key(|c| std::cmp::Reverse(c.info.connected_at));
        let half = candidates.len() / 2;
        protect(&mut candidates, half);
        if candidates.is_empty() {
            return None;
        }
        let mut by_group: HashMap<Option<NetGroup>, Vec<&Conn<P>>> = HashMap::new();
        for c in candidates {
            by_group
                .entry(self.book.group(c.info.remote.ip()))
                .or_default()
                .push(c);
        }
        let _ = now;
        let (_, group) = by_group.into_iter().max_by_key(|(g, members)| {
            (
                members.len(),
                members.iter().map(|c| c.info.connected_at).max(),
                *g,
            )
        })?;
        group
            .into_iter()
            .max_by_key(|c| c.info.connected_at)
            .map(|c| c.info.id)
    }
}

#[cfg(test)]
mod tests;

/// Drops the last `n` candidates (the protected ones, as sorted).
fn protect<T>(candidates: &mut Vec<T>, n: usize) {
    let keep = candidates.len().saturating_sub(n);
    candidates.truncate(keep);
}
