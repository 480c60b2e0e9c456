//! The node state machine: connections, handshakes, timed syncs, peer
//! exchange, scoring and gossip, with no I/O. Connectivity (what to dial)
//! and eviction (whom to drop) are parts of their own. The contract is
//! written on [`Node`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_levin::{Header, InvokeTracker, Kind, return_code};
use strata_portable_storage::Encode;

use crate::addrman::{AddrMan, RELAY_PENALTY};
use crate::config::Config;
use crate::connectivity::{Connectivity, Link, MAX_ANCHORS, Want};
use crate::eviction::{self, Candidate};
use crate::gossip::{self, Action, Gossip, MessageId, Verdict};
use crate::keys::{Keys, Source};
use crate::peer::{Class, DialKind, Direction, PeerId};
use crate::rate::Bucket;
use crate::rng::Rng;
use crate::score::{Misbehaviour, Scores};
use crate::time::later;
use crate::wire::{
    self, Empty, GossipIds, GossipMessage, HandshakeRequest, HandshakeResponse,
    MAX_IDS_PER_MESSAGE, MAX_PEER_LIST, NodeData, PING_OK, Payload, PeerEntry, PingResponse,
    SupportFlagsResponse, TimedSyncRequest, TimedSyncResponse, command,
};

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
    /// Whether `key` was authenticated by TLS; a key claimed in a plaintext
    /// handshake proves nothing.
    pub authenticated: bool,
    /// Whether we dialed it with its key pinned (configured, proved before,
    /// or introduced by a peer), so TLS checked that key.
    pub pinned: bool,
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
    /// A peer completed its handshake, with its key when TLS authenticated
    /// it (a key claimed in a plaintext handshake is not given).
    PeerReady(PeerId, Option<[u8; 32]>),
    /// A ready peer's connection ended.
    PeerGone(PeerId),
    /// A peer's `payload_data` (handshake and every timed sync).
    Payload(PeerId, P),
    /// A new gossip message. It is passed on only once the layer above
    /// says so with [`Node::handle_verdict`]; without a verdict within
    /// [`gossip::Config::verdict_timeout`] it is dropped.
    Gossip {
        /// The neighbour that delivered it.
        peer: PeerId,
        /// Its id.
        id: MessageId,
        /// The payload.
        payload: Bytes,
    },
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
        /// The key the peer must prove, when it is pinned.
        key: Option<[u8; 32]>,
    },
    /// Ban an address.
    Ban {
        /// The address.
        ip: IpAddr,
        /// For how long.
        duration: Duration,
    },
    /// Ban every address of a subnet.
    BanSubnet {
        /// Its base address.
        base: IpAddr,
        /// Its prefix length.
        prefix: u8,
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
    /// The message depends on a message this node cannot serve (it never
    /// passed it on, or no longer holds it): its peers would ask for it in
    /// vain.
    #[error("message depends on {id}, which this node does not hold")]
    UnknownDependency {
        /// The dependency.
        id: MessageId,
    },
    /// The message depends on more messages than a message may name.
    #[error("message depends on {count} messages, more than the limit of {max}")]
    TooManyDependencies {
        /// How many it named.
        count: usize,
        /// The limit, [`MAX_DEPS`](crate::wire::MAX_DEPS).
        max: usize,
    },
}

/// Most addresses one peer's token bucket holds (Bitcoin Core's burst).
const ADDR_BURST: f64 = 1000.0;
/// Addresses per second a peer's bucket refills.
const ADDR_RATE: f64 = 0.1;
/// Most addresses remembered as sent on one connection.
const MAX_SENT_ADDRS: usize = 2_048;
/// Shortest time between two peer lists sent on one connection.
const PEER_LIST_INTERVAL: Duration = Duration::from_secs(30);
/// Requests one connection may have in flight.
const MAX_INVOKES: usize = 8;
/// Dependencies a peer did not send when asked, in one timer round, per
/// [`Misbehaviour::UnservedDependency`] it is scored.
const UNSERVED_PER_REPORT: u32 = 8;
/// How often the address book is saved.
const SAVE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// When the address book is first saved after start: soon, so a node
/// killed in its first minutes still finds the peers it learned.
const FIRST_SAVE: Duration = Duration::from_secs(60);
/// Most addresses taken from one DNS seed.
const MAX_DNS_ADDRS: usize = 32;
/// Addresses learned from inbound handshakes per second, over all peers.
const LEARNED_RATE: f64 = 0.1;
/// Most such addresses taken at once.
const LEARNED_BURST: f64 = 100.0;
/// Shortest time between two warnings of refused addresses.
const FLOOD_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Counters of what the node refused or dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Addresses from peers not taken for a rate limit (peer lists and
    /// handshakes).
    pub addresses_refused: u64,
    /// Addresses banned for misbehaviour.
    pub bans: u64,
    /// Subnets banned because their addresses together misbehaved past
    /// [`SUBNET_BAN_FACTOR`] times the ban threshold.
    pub subnet_bans: u64,
    /// Inbound peers evicted for a newcomer.
    pub evictions: u64,
    /// Dials whose peer proved another key than the one learnt for its
    /// address.
    pub wrong_keys: u64,
    /// Connections of the low-latency slots closed after their handshake
    /// for costing over the bar (`Connectivity::keep_fast`).
    pub fast_passed_over: u64,
}

struct Conn<P> {
    info: PeerInfo,
    invokes: InvokeTracker,
    deadline: Instant,
    last_recv: Instant,
    next_sync: Instant,
    addr_tokens: Bucket,
    /// Fingerprints ([`addr_mark`]) of the addresses sent to the peer or
    /// heard from it.
    sent_addrs: AddrMarks,
    last_useful: Option<Instant>,
    last_peer_list: Option<Instant>,
    payload: Option<P>,
    /// We asked the driver to close it: its timers and frames no longer
    /// count, while the close is carried out.
    closing: bool,
}

impl<P> Conn<P> {
    fn link(&self) -> Link {
        let listens = self
            .info
            .node_data
            .as_ref()
            .and_then(|d| u16::try_from(d.my_port).ok())
            .filter(|port| *port != 0)
            .map(|port| SocketAddr::new(self.info.remote.ip(), port));
        Link {
            remote: self.info.remote,
            listens,
            direction: self.info.direction,
            kind: self.info.kind,
        }
    }
}

/// A subnet (/24, or /48 for IPv6) is banned whole when the scores of
/// its addresses add up past this many times the ban threshold: so many
/// addresses of one network cannot each stay just under the threshold.
pub const SUBNET_BAN_FACTOR: u32 = 4;

/// The node state machine.
///
/// # The contract
///
/// [`Node`] is driven from outside, in the four families of methods that
/// quinn-proto uses:
///
/// - **Getters** (`peer_id`, `peers`, `address_book`, `score`, …) read the
///   state and change nothing.
/// - **`handle_*`** methods take what happened: a connection came up or
///   ended, a frame arrived, a dial failed, a name resolved, a verdict on a
///   gossip message, the timer fired. Each takes the current time last.
/// - **Mutators** take the layer above's commands: [`Node::propagate`],
///   [`Node::send_upper`], [`Node::set_payload`], [`Node::report`],
///   [`Node::add_addresses`].
/// - **`poll_*`**: [`Node::poll_output`] yields what to do next; drain it
///   until `None` after every `handle_*` or mutator call.
///   [`Node::poll_timeout`] says when [`Node::handle_timeout`] must next be
///   called; ask again after every call, since any call can move it.
///
/// Time is whatever the caller says it is: every `now` must be at least
/// the previous one. The node reads no clock, opens no socket, spawns
/// nothing and calls nothing of the layer above: new gossip comes out as
/// [`Event::Gossip`], and the layer above's [`Verdict`] goes back in
/// through [`Node::handle_verdict`].
pub struct Node<P: Payload> {
    config: Config,
    peer_id: u64,
    payload: P,
    book: AddrMan,
    rng: Rng,
    start: Instant,
    unix_start: i64,
    conns: HashMap<PeerId, Conn<P>>,
    connectivity: Connectivity,
    scores: Scores,
    /// Scores per subnet of routable addresses ([`crate::netgroup::subnet`]).
    subnet_scores: Scores,
    gossip: Gossip,
    out: VecDeque<Output<P>>,
    next_save: Instant,
    /// Addresses learned from inbound handshakes, rate-limited.
    learned: Bucket,
    stats: Stats,
    warned_at: Option<Instant>,
    /// Scratch: what gossip asks for, turned into frames.
    actions: Vec<Action>,
    /// Node keys of addresses, pinned when they are dialed.
    keys: Keys,
}

impl<P: Payload> Node<P> {
    /// A node with no connection. `book` is the address book read from
    /// peers.dat (or a new one), `anchors` the peers saved at the last
    /// shutdown, `unix` the wall-clock time at `now` in Unix seconds, and
    /// `seed` the seed of every random choice.
    pub fn new(
        config: Config,
        payload: P,
        book: AddrMan,
        anchors: Vec<SocketAddr>,
        unix: i64,
        seed: u64,
        now: Instant,
    ) -> Node<P> {
        let config = config.capped();
        let mut rng = Rng::new(seed);
        let peer_id = rng.next_u64();
        let connectivity = Connectivity::new(&config, &book, anchors, &mut rng, now);
        Node {
            peer_id,
            payload,
            book,
            rng,
            start: now,
            unix_start: unix,
            conns: HashMap::new(),
            connectivity,
            scores: Scores::default(),
            subnet_scores: Scores::default(),
            gossip: Gossip::new(config.gossip.clone()),
            keys: Keys::default(),
            out: VecDeque::new(),
            next_save: later(now, FIRST_SAVE),
            learned: Bucket::full(LEARNED_RATE, LEARNED_BURST, now),
            stats: Stats::default(),
            warned_at: None,
            actions: Vec::new(),
            config,
        }
    }

    // ----- getters -----

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

    /// The observed uptime of an address we dialed: connected time over
    /// known time (see [`crate::uptime`]), once known for
    /// [`uptime::MIN_KNOWN`](crate::uptime::MIN_KNOWN).
    pub fn uptime(&self, addr: &SocketAddr, now: Instant) -> Option<f64> {
        self.connectivity.uptime(addr, now)
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

    /// What the node refused or dropped.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The current misbehaviour score of an address.
    pub fn score(&self, ip: IpAddr) -> u32 {
        self.scores.get(ip)
    }

    /// The peers to save as anchors at shutdown: the longest-connected
    /// full outbound peers.
    pub fn anchors(&self) -> Vec<SocketAddr> {
        let mut outbound: Vec<&PeerInfo> = self
            .peers()
            .filter(|p| p.state == State::Ready && p.kind.is_some_and(DialKind::is_full_outbound))
            .collect();
        outbound.sort_by_key(|p| (p.connected_at, p.id));
        outbound
            .iter()
            .take(MAX_ANCHORS)
            .map(|p| p.remote)
            .collect()
    }

    fn unix(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.start).as_secs();
        self.unix_start
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
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

    fn links(&self) -> Vec<Link> {
        self.conns.values().map(Conn::link).collect()
    }

    // ----- poll -----

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<Output<P>> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links();
        let own = [
            Some(self.next_save),
            self.gossip.poll_timeout(),
            self.connectivity.poll_timeout(&self.config, &links),
        ];
        let conns = self
            .conns
            .values()
            .filter(|c| !c.closing)
            .filter_map(|conn| {
                let liveness = match conn.info.state {
                    State::Handshaking => conn.deadline,
                    State::Ready => later(conn.last_recv, self.config.idle_timeout),
                };
                [
                    Some(liveness),
                    conn.invokes.poll_timeout(),
                    (conn.info.state == State::Ready).then_some(conn.next_sync),
                ]
                .into_iter()
                .flatten()
                .min()
            });
        own.into_iter().flatten().chain(conns).min()
    }

    // ----- mutators: the layer above's commands -----

    /// Replaces the `payload_data` sent in handshakes and timed syncs.
    pub fn set_payload(&mut self, payload: P) {
        self.payload = payload;
    }

    /// Publishes a gossip message to every peer; returns its id.
    pub fn propagate(&mut self, payload: Bytes, now: Instant) -> Result<MessageId, PropagateError> {
        self.propagate_after(payload, Vec::new(), now)
    }

    /// [`propagate`](Self::propagate) a message that depends on `deps`:
    /// every node delivers it to its layer above only after them. Its id
    /// is [`MessageId::of_message`].
    pub fn propagate_after(
        &mut self,
        payload: Bytes,
        deps: Vec<MessageId>,
        now: Instant,
    ) -> Result<MessageId, PropagateError> {
        if deps.len() > wire::MAX_DEPS {
            return Err(PropagateError::TooManyDependencies {
                count: deps.len(),
                max: wire::MAX_DEPS,
            });
        }
        if let Some(id) = deps.iter().find(|d| !self.gossip.can_serve(&[**d])) {
            return Err(PropagateError::UnknownDependency { id: *id });
        }
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
        let id = self.gossip.publish(payload, deps, now, &mut self.actions);
        self.apply_gossip();
        self.deliver_released(now);
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
        self.connectivity.connect_soon(now);
    }

    /// Scores the peer behind `peer` for `what`, closing and banning as due.
    pub fn report(&mut self, peer: PeerId, what: Misbehaviour) {
        let Some(conn) = self.conns.get(&peer) else {
            return;
        };
        let ip = conn.info.remote.ip();
        tracing::debug!("peer {} misbehaved: {what:?}", conn.info.remote);
        if !self.score_ip(ip, what) && what.disconnects() {
            self.close(peer);
        }
    }

    /// Scores an address and its subnet; bans the address, or the whole
    /// subnet, and closes their connections when a score passes its
    /// threshold. Returns whether the address was banned.
    fn score_ip(&mut self, ip: IpAddr, what: Misbehaviour) -> bool {
        if let Some((base, prefix)) = crate::netgroup::subnet(ip) {
            let score = self.subnet_scores.add(base, what.score());
            let threshold = self.config.ban_threshold.saturating_mul(SUBNET_BAN_FACTOR);
            if score > threshold {
                self.subnet_scores.remove(base);
                self.stats.subnet_bans = self.stats.subnet_bans.saturating_add(1);
                tracing::info!("banning the subnet {base}/{prefix}: its addresses misbehaved");
                self.out.push_back(Output::BanSubnet {
                    base,
                    prefix,
                    duration: self.config.ban_duration,
                });
                let mut inside: Vec<PeerId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| crate::netgroup::in_subnet(c.info.remote.ip(), base, prefix))
                    .map(|(id, _)| *id)
                    .collect();
                inside.sort();
                for id in inside {
                    self.close(id);
                }
                self.scores.remove(ip);
                return true;
            }
        }
        let score = self.scores.add(ip, what.score());
        if score <= self.config.ban_threshold {
            return false;
        }
        self.scores.remove(ip);
        self.stats.bans = self.stats.bans.saturating_add(1);
        self.out.push_back(Output::Ban {
            ip,
            duration: self.config.ban_duration,
        });
        let mut same_ip: Vec<PeerId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.info.remote.ip() == ip)
            .map(|(id, _)| *id)
            .collect();
        same_ip.sort();
        for id in same_ip {
            self.close(id);
        }
        true
    }

    // ----- handle_*: what happened -----

    /// The layer above's verdict on a message it was given as
    /// [`Event::Gossip`]: pass it on, keep it, or reject it (its sender is
    /// scored). A verdict for a message no longer waiting (it timed out) is
    /// ignored.
    pub fn handle_verdict(&mut self, id: MessageId, verdict: Verdict, now: Instant) {
        if let Some((peer, ip)) = self.gossip.verdict(id, verdict, now, &mut self.actions) {
            if self.conns.contains_key(&peer) {
                self.report(peer, Misbehaviour::InvalidGossip);
            } else {
                self.score_ip(ip, Misbehaviour::InvalidGossip);
            }
        }
        self.apply_gossip();
    }

    /// Instead of a verdict, the layer above sends a message it was given
    /// back to wait for `deps` (at most [`MAX_DEPS`](wire::MAX_DEPS) are
    /// taken): it comes again as [`Event::Gossip`] once they were
    /// delivered, or is dropped at its deadline. Missing ones are asked of
    /// the peer that sent it. A message sent back twice is dropped.
    pub fn handle_wait(&mut self, id: MessageId, deps: &[MessageId], now: Instant) {
        self.gossip.wait(id, deps, now, &mut self.actions);
        self.apply_gossip();
        self.deliver_released(now);
    }

    /// Hands up the messages that stopped waiting for their dependencies,
    /// and scores the peers that did not send a dependency they were asked
    /// for.
    fn deliver_released(&mut self, now: Instant) {
        for (peer, id, payload) in std::mem::take(&mut self.gossip.released) {
            if let Some(conn) = self.conns.get_mut(&peer) {
                conn.last_useful = Some(now);
            }
            self.out
                .push_back(Output::Event(Event::Gossip { peer, id, payload }));
        }
        // Once per started UNSERVED_PER_REPORT dependencies: how many
        // went unserved, not how the timer rounds fell, decides a ban.
        for (peer, count) in std::mem::take(&mut self.gossip.unserved) {
            for _ in 0..count.div_ceil(UNSERVED_PER_REPORT) {
                if self.conns.get(&peer).is_none_or(|c| c.closing) {
                    break;
                }
                self.report(peer, Misbehaviour::UnservedDependency);
            }
        }
    }

    /// A connection is up. `key` is the peer's TLS-authenticated key.
    pub fn handle_connected(
        &mut self,
        peer: PeerId,
        remote: SocketAddr,
        direction: Direction,
        key: Option<[u8; 32]>,
        now: Instant,
    ) {
        let kind = self.connectivity.on_connected(remote, direction, now);
        if direction == Direction::Outbound && self.book.get(&remote).is_none() {
            // An address we reached is a real one: it enters the book, so
            // its successes and failures are kept.
            let unix = self.unix(now);
            let _ = self
                .book
                .add_one(remote, unix, remote.ip(), 0, unix, &mut self.rng);
        }
        let pinned = direction == Direction::Outbound
            && key.is_some()
            && self.pinned_key(&remote).is_some_and(|k| Some(k) == key);
        if let (Direction::Outbound, Some(key)) = (direction, key) {
            self.keys.prove(remote, key);
        }
        let conn = Conn {
            info: PeerInfo {
                id: peer,
                remote,
                direction,
                kind,
                state: State::Handshaking,
                key,
                authenticated: key.is_some(),
                pinned,
                node_data: None,
                rtt: None,
                connected_at: now,
            },
            invokes: InvokeTracker::new(MAX_INVOKES),
            deadline: later(now, self.config.handshake_timeout),
            last_recv: now,
            next_sync: later(now, self.config.timed_sync_interval),
            addr_tokens: Bucket::full(ADDR_RATE, ADDR_BURST, now),
            sent_addrs: AddrMarks::default(),
            last_useful: None,
            last_peer_list: None,
            payload: None,
            closing: false,
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
                    let victim = self.eviction_victim().unwrap_or(peer);
                    tracing::debug!("inbound slots full: closing {victim:?}");
                    self.stats.evictions = self
                        .stats
                        .evictions
                        .saturating_add(u64::from(victim != peer));
                    self.close(victim);
                }
            }
        }
    }

    /// A dial did not connect.
    pub fn handle_dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        self.connectivity.on_dial_failed(addr, now);
        let unix = self.unix(now);
        self.book.attempt(addr, true, unix);
    }

    /// A dial failed because the peer at `addr` proved another key than the
    /// one pinned. A key learnt for the address is forgotten, so it is not
    /// tried under that key again, and a peer that introduced it is scored.
    pub fn handle_wrong_key(&mut self, addr: SocketAddr, now: Instant) {
        self.handle_dial_failed(addr, now);
        if self.config.pinned.contains_key(&addr) {
            // The operator's pin stands.
            return;
        }
        self.stats.wrong_keys = self.stats.wrong_keys.saturating_add(1);
        if let Some((_, Source::Introduced(reporter))) = self.keys.forget(&addr) {
            let peer = self
                .conns
                .iter()
                .find(|(_, c)| c.info.remote.ip() == reporter)
                .map(|(id, _)| *id);
            match peer {
                Some(peer) => self.report(peer, Misbehaviour::WrongIntroduction),
                None => {
                    self.score_ip(reporter, Misbehaviour::WrongIntroduction);
                }
            }
        }
    }

    /// The key a dial to `addr` pins: the operator's, else one learnt.
    fn pinned_key(&self, addr: &SocketAddr) -> Option<[u8; 32]> {
        self.config
            .pinned
            .get(addr)
            .copied()
            .or_else(|| self.keys.get(addr).map(|(key, _)| key))
    }

    /// A connection ended.
    pub fn handle_closed(&mut self, peer: PeerId, now: Instant) {
        let Some(conn) = self.conns.remove(&peer) else {
            return;
        };
        self.connectivity.on_closed(conn.link(), now);
        if conn.info.state == State::Ready {
            self.gossip.remove_peer(peer, now, &mut self.actions);
            self.apply_gossip();
            self.out.push_back(Output::Event(Event::PeerGone(peer)));
        } else if conn.info.direction == Direction::Outbound {
            let unix = self.unix(now);
            self.book.attempt(conn.info.remote, true, unix);
        }
    }

    /// Addresses a DNS seed resolved to.
    pub fn handle_resolved(&mut self, name: &str, ips: &[IpAddr], now: Instant) {
        let unix = self.unix(now);
        let port = self.config.default_port;
        let mut added = 0usize;
        for ip in ips.iter().take(MAX_DNS_ADDRS) {
            // Stamped three to seven days old, as Bitcoin Core does.
            let age = i64::try_from(self.rng.below(4 * 86_400))
                .unwrap_or(0)
                .saturating_add(3 * 86_400);
            let source = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
            if self.book.add_one(
                SocketAddr::new(*ip, port),
                unix.saturating_sub(age),
                source,
                0,
                unix,
                &mut self.rng,
            ) == Ok(true)
            {
                added = added.saturating_add(1);
            }
        }
        tracing::info!("DNS seed {name}: {} addresses, {added} new", ips.len());
        self.connectivity.connect_soon(now);
    }

    /// A frame arrived on a connection.
    pub fn handle_message(&mut self, peer: PeerId, header: Header, body: Bytes, now: Instant) {
        let Some(conn) = self.conns.get_mut(&peer).filter(|c| !c.closing) else {
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

    /// Timers: handshake and liveness deadlines, timed syncs, gossip,
    /// connectivity, DNS and fixed seeds, saving the address book.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ids: Vec<PeerId> = self.conns.keys().copied().collect();
        ids.sort();
        for peer in ids {
            let Some(conn) = self.conns.get(&peer).filter(|c| !c.closing) else {
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
                if now >= later(conn.last_recv, self.config.idle_timeout) {
                    tracing::debug!("{}: silent for too long", conn.info.remote);
                    self.close(peer);
                    continue;
                }
                if now >= conn.next_sync {
                    let next_sync = self.next_sync_at(now);
                    if let Some(conn) = self.conns.get_mut(&peer) {
                        conn.next_sync = next_sync;
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
        self.deliver_released(now);

        if now >= self.next_save {
            self.next_save = later(now, SAVE_INTERVAL);
            self.out.push_back(Output::SaveAddressBook);
        }
        let unix = self.unix(now);
        let links = self.links();
        let mut wants = Vec::new();
        self.connectivity.handle_timeout(
            &self.config,
            &mut self.book,
            &links,
            &mut self.rng,
            unix,
            now,
            &mut wants,
        );
        for want in wants {
            self.out.push_back(match want {
                Want::Dial(addr, kind) => Output::Dial {
                    addr,
                    kind,
                    key: self.pinned_key(&addr),
                },
                Want::Resolve(name) => Output::Resolve(name),
            });
        }
    }

    /// When the next timed sync to a peer is due: `timed_sync_interval`
    /// spread evenly over ¾ to 1¼ of it. On a fixed schedule a peer could
    /// send its answer ahead, timed to arrive just after our request, and
    /// measure nearer than it is (the round trip is what the low-latency
    /// slots prefer); unable to foresee the request, an answer sent early
    /// arrives before it and is an unmatched response.
    fn next_sync_at(&mut self, now: Instant) -> Instant {
        let interval = self.config.timed_sync_interval;
        let spread = 0.75 + 0.5 * self.rng.unit();
        let due = Duration::try_from_secs_f64(interval.as_secs_f64() * spread).unwrap_or(interval);
        later(now, due)
    }

    // ----- messages -----

    fn send<T: Encode>(&mut self, peer: PeerId, class: Class, header: Header, body: &T) {
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

    fn request<T: Encode>(&mut self, peer: PeerId, command: u32, body: &T, now: Instant) {
        let deadline = later(now, self.config.request_timeout);
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
        if let Some(conn) = self.conns.get_mut(&peer) {
            if conn.closing {
                return;
            }
            conn.closing = true;
        }
        self.out.push_back(Output::Close(peer));
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
            // A moving average, 7/8 of the old and 1/8 of the new.
            Some(old) => old
                .saturating_mul(7)
                .saturating_add(rtt)
                .checked_div(8)
                .unwrap_or(rtt),
            None => rtt,
        });
        let remote = conn.info.remote;
        let smoothed = conn.info.rtt.unwrap_or(rtt);
        let rtt_us = u32::try_from(smoothed.as_micros()).unwrap_or(u32::MAX);
        // Only a full outbound connection measures an address. An inbound
        // peer could have the round trips of its connections counted for
        // every address it claims to listen at, and be preferred for them;
        // feelers go to the new table, which whoever floods us with
        // addresses fills, and would measure their addresses first.
        // A handshake's round trip is counted once the low-latency slots
        // have judged it against the others (`after_outbound_handshake`).
        if conn.info.kind.is_some_and(DialKind::is_full_outbound) {
            self.book.set_rtt(remote, rtt_us);
            if header.command != command::HANDSHAKE {
                self.connectivity.note_rtt(rtt_us);
            }
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
        let rtt_us = conn
            .info
            .rtt
            .map(|r| u32::try_from(r.as_micros()).unwrap_or(u32::MAX));
        let unix = self.unix(now);
        self.book.good(remote, unix);
        if matches!(kind, Some(DialKind::Feeler | DialKind::Seed)) {
            self.close(peer);
        }
        let Some(rtt_us) = rtt_us.filter(|_| kind.is_some_and(DialKind::is_full_outbound)) else {
            return;
        };
        let passed_over =
            kind == Some(DialKind::Fast) && !self.connectivity.keep_fast(rtt_us, &remote, now);
        self.connectivity.note_rtt(rtt_us);
        if passed_over {
            // Passed over: it served as a feeler, and its slot is drawn
            // again.
            self.stats.fast_passed_over = self.stats.fast_passed_over.saturating_add(1);
            if let Some(conn) = self.conns.get_mut(&peer) {
                conn.info.kind = Some(DialKind::Feeler);
            }
            self.close(peer);
            self.connectivity.connect_soon(now);
        }
    }

    fn on_request(&mut self, peer: PeerId, header: Header, body: Bytes, ready: bool, now: Instant) {
        let command = header.command;
        match command {
            command::PING | command::REQUEST_SUPPORT_FLAGS
                if wire::decode::<Empty>(&body).is_err() =>
            {
                // As monerod does: -1 with an empty body.
                self.respond(peer, command, return_code::CONNECTION, &Empty {});
                self.report(peer, Misbehaviour::UndecodableRequest);
            }
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
                // The peer's own listening address enters the new table, to
                // be tested by a feeler before it is trusted; at most
                // LEARNED_RATE a second over all peers, so a flood of
                // handshakes cannot fill the book.
                if let Some(conn) = self.conns.get(&peer)
                    && let Ok(port) = u16::try_from(request.node_data.my_port)
                    && port != 0
                {
                    let addr = SocketAddr::new(conn.info.remote.ip(), port);
                    if self.learned.take(1, now) == 1 {
                        let unix = self.unix(now);
                        let _ = self
                            .book
                            .add_one(addr, unix, addr.ip(), 0, unix, &mut self.rng);
                    } else {
                        self.refused_address(now);
                    }
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

    fn respond<T: Encode>(&mut self, peer: PeerId, command: u32, code: i32, body: &T) {
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
                Ok(message) => match MessageId::list_from(&message.deps) {
                    Some(deps) => self.on_gossip(peer, message.payload, deps, now),
                    None => self.report(peer, Misbehaviour::Undecodable),
                },
                Err(_) => self.report(peer, Misbehaviour::Undecodable),
            },
            command::GOSSIP_FETCH => {
                let Ok(ids) = wire::decode::<GossipIds>(&body) else {
                    self.report(peer, Misbehaviour::Undecodable);
                    return;
                };
                if ids.ids.len() % wire::MESSAGE_ID_LEN != 0
                    || ids.ids.len() / wire::MESSAGE_ID_LEN > MAX_IDS_PER_MESSAGE
                {
                    self.report(peer, Misbehaviour::Undecodable);
                    return;
                }
                self.gossip.on_fetch(peer, &ids.ids, &mut self.actions);
                self.apply_gossip();
            }
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

    fn apply_gossip(&mut self) {
        for action in std::mem::take(&mut self.actions) {
            let (peer, command, body) = match action {
                Action::Message(peer, payload, deps) => (
                    peer,
                    command::GOSSIP_MESSAGE,
                    wire::encode(&GossipMessage {
                        payload,
                        deps: MessageId::list_bytes(&deps),
                    }),
                ),
                Action::Fetch(peer, ids) => (
                    peer,
                    command::GOSSIP_FETCH,
                    wire::encode(&GossipIds { ids }),
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
            {
                let remote = conn.info.remote;
                self.connectivity.note_self(remote);
            }
            self.close(peer);
            return false;
        }
        if !self.keep_one_connection(peer, data.peer_id) {
            return false;
        }
        let next_sync = self.next_sync_at(now);
        let Some(conn) = self.conns.get_mut(&peer) else {
            return false;
        };
        // A key claimed in plaintext is only a claim, but never ours.
        let ours = data.strata_key.is_some() && data.strata_key == self.config.node_key;
        if self.config.require_key {
            let ok = match (data.strata_key, conn.info.key) {
                (Some(claimed), Some(tls)) => claimed == tls,
                (Some(_), None) => !ours,
                (None, _) => false,
            };
            if !ok {
                self.report(peer, Misbehaviour::WrongKey);
                return false;
            }
        }
        if conn.info.key.is_none() && !ours {
            conn.info.key = data.strata_key;
        }
        conn.info.state = State::Ready;
        conn.info.node_data = Some(data.clone());
        conn.next_sync = next_sync;
        let remote = conn.info.remote;
        let authenticated = conn.info.authenticated.then_some(conn.info.key).flatten();
        // An inbound peer proved its key, but not that it listens where it
        // says: its own word for that address, held against it if a dial
        // there finds another key.
        if let (Direction::Inbound, Some(key), Some(listens)) =
            (conn.info.direction, authenticated, conn.link().listens)
        {
            self.keys.introduce(listens, key, remote.ip());
        }
        let unix = self.unix(now);
        self.book.connected(remote, unix);
        self.gossip
            .add_peer(peer, gossip::salt(self.peer_id, data.peer_id));
        self.out.push_back(Output::HandshakeDone(peer));
        self.out
            .push_back(Output::Event(Event::PeerReady(peer, authenticated)));
        true
    }

    /// One connection per pair of nodes: when `peer` (of node `their_id`)
    /// would be a second ready connection with that node, the one dialed by
    /// the node with the lower peer id stays (both ends decide alike) and the
    /// other is closed, without blame. Returns whether `peer` stays.
    fn keep_one_connection(&mut self, peer: PeerId, their_id: u64) -> bool {
        let other = self
            .conns
            .iter()
            .find(|(id, c)| {
                **id != peer
                    && !c.closing
                    && c.info.state == State::Ready
                    && c.info.node_data.as_ref().map(|d| d.peer_id) == Some(their_id)
            })
            .map(|(id, c)| (*id, c.info.direction));
        let Some((other, other_direction)) = other else {
            return true;
        };
        // The connection to keep is the one the lower id dialed.
        let keep_outbound = self.peer_id < their_id;
        let keep_other = (other_direction == Direction::Outbound) == keep_outbound;
        tracing::debug!("a second connection with peer id {their_id}: keeping one");
        if keep_other {
            self.close(peer);
            false
        } else {
            self.close(other);
            true
        }
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
            .is_some_and(|at| now < later(at, PEER_LIST_INTERVAL))
        {
            return Vec::new();
        }
        conn.last_peer_list = Some(now);
        // Not the peer itself: where it connects from, nor where it listens.
        let remote = conn.info.remote;
        let listens = conn.link().listens;
        let sent = &conn.sent_addrs;
        let book = &self.book;
        let entries: Vec<SocketAddr> = book
            .sample(MAX_PEER_LIST, unix, &mut self.rng, |a| {
                sent.contains(addr_mark(book, a)) || *a == remote || Some(*a) == listens
            })
            .into_iter()
            .map(|e| e.addr())
            .collect();
        let Some(conn) = self.conns.get_mut(&peer) else {
            return Vec::new();
        };
        if conn.sent_addrs.len().saturating_add(entries.len()) > MAX_SENT_ADDRS {
            conn.sent_addrs.clear();
        }
        conn.sent_addrs
            .extend(entries.iter().map(|addr| addr_mark(&self.book, addr)));
        // On strata's networks an entry carries the key its address proved.
        let keyed = self.config.node_key.is_some();
        entries
            .into_iter()
            .map(|addr| PeerEntry {
                adr: addr.into(),
                id: 0,
                strata_key: keyed.then(|| self.keys.proved(&addr)).flatten(),
                ..PeerEntry::default()
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
        let take = conn.addr_tokens.take(list.len(), now);
        let refused = list.len().saturating_sub(take);
        let source = conn.info.remote.ip();
        let addrs: Vec<(SocketAddr, i64)> = list
            .iter()
            .take(take)
            .filter_map(|e| Some((e.adr.socket_addr()?, e.last_seen.unwrap_or(0))))
            .collect();
        // Keys introduced for addresses, from an authenticated peer only: a
        // plaintext peer's word could not be held against it.
        if conn.info.authenticated && self.config.node_key.is_some() {
            for (entry, (addr, _)) in list
                .iter()
                .take(take)
                .filter(|e| e.adr.socket_addr().is_some())
                .zip(&addrs)
            {
                if let Some(key) = entry.strata_key
                    && Some(key) != self.config.node_key
                {
                    self.keys.introduce(*addr, key, source);
                }
            }
        }
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        // Addresses a peer relays count as sent on that connection: never
        // sent back to it.
        let room = MAX_SENT_ADDRS.saturating_sub(conn.sent_addrs.len());
        let book = &self.book;
        conn.sent_addrs.extend(
            addrs
                .iter()
                .take(room)
                .map(|(addr, _)| addr_mark(book, addr)),
        );
        self.book
            .add(&addrs, source, RELAY_PENALTY, unix, &mut self.rng);
        for _ in 0..refused {
            self.refused_address(now);
        }
    }

    /// Counts an address not taken for a rate limit, and says so in the log
    /// at most every [`FLOOD_WARN_INTERVAL`].
    fn refused_address(&mut self, now: Instant) {
        self.stats.addresses_refused = self.stats.addresses_refused.saturating_add(1);
        if self
            .warned_at
            .is_none_or(|at| now >= later(at, FLOOD_WARN_INTERVAL))
        {
            tracing::warn!(
                "{} addresses from peers refused so far: more than the rate limits take",
                self.stats.addresses_refused
            );
            self.warned_at = Some(now);
        }
    }

    fn on_gossip(&mut self, peer: PeerId, payload: Bytes, deps: Vec<MessageId>, now: Instant) {
        if payload.len() > self.gossip.config().max_message {
            self.report(peer, Misbehaviour::InvalidGossip);
            return;
        }
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        let ip = conn.info.remote.ip();
        let new = self
            .gossip
            .on_message(peer, ip, &payload, deps, now, &mut self.actions);
        self.apply_gossip();
        if let Some(id) = new {
            if let Some(conn) = self.conns.get_mut(&peer) {
                conn.last_useful = Some(now);
            }
            self.out
                .push_back(Output::Event(Event::Gossip { peer, id, payload }));
        }
        // What it released comes after it.
        self.deliver_released(now);
    }

    /// The inbound peer to evict when inbound slots are full.
    fn eviction_victim(&self) -> Option<PeerId> {
        let key = self.book.key();
        let candidates = self
            .conns
            .values()
            .filter(|c| c.info.direction == Direction::Inbound && c.info.state == State::Ready)
            .map(|c| {
                let group = self.book.group(c.info.remote.ip());
                let keyed_group = group.map_or(0, |g| {
                    let id = MessageId::of(&[&key[..], &g.as_bytes()[..]].concat());
                    let mut h = [0u8; 8];
                    h.copy_from_slice(&id.0[..8]);
                    u64::from_le_bytes(h)
                });
                Candidate {
                    id: c.info.id,
                    group,
                    keyed_group,
                    rtt: c.info.rtt,
                    last_useful: c.last_useful,
                    connected_at: c.info.connected_at,
                }
            })
            .collect();
        eviction::victim(candidates)
    }
}

/// The addresses sent on a connection or heard from it, as fingerprints
/// ([`addr_mark`]) in a sorted list: 4 bytes each, at most
/// [`MAX_SENT_ADDRS`] of them (8 KiB), where a hash set of 64-bit
/// fingerprints took 36 KiB when full. A connection holds one and a node
/// hundreds of connections, so this is a large share of what a node costs
/// in a network of thousands.
#[derive(Debug, Default)]
struct AddrMarks(Vec<u32>);

impl AddrMarks {
    fn contains(&self, mark: u32) -> bool {
        self.0.binary_search(&mark).is_ok()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    /// Adds marks, a list at a time (one sort for all of them).
    fn extend(&mut self, marks: impl IntoIterator<Item = u32>) {
        self.0.extend(marks);
        self.0.sort_unstable();
        self.0.dedup();
    }
}

/// The 32-bit fingerprint of an address in a connection's [`AddrMarks`]:
/// the high half of the book's keyed one ([`AddrMan::mark`]). Two
/// addresses share one with odds of about 2⁻³² (then one is not sent on
/// that connection, or sent once more), and the key, the book's secret,
/// keeps anyone from planning such pairs.
fn addr_mark(book: &AddrMan, addr: &SocketAddr) -> u32 {
    (book.mark(addr) >> 32) as u32
}

#[cfg(test)]
mod tests;
