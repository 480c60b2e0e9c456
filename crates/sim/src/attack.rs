//! Peers that behave differently. They use the same wire messages as
//! everyone; what they do differently is code here:
//!
//! - [`Speaker`]: a host that is not a node but speaks the p2p protocol's
//!   frames itself (handshake, timed sync, ping, support flags), from any of
//!   its addresses. The eclipse attacker, the catch-up liar and the peer
//!   that never reads are speakers.
//! - [`Freeloader`] and [`Spammer`]: real nodes with another layer above
//!   (one drops every message instead of passing it on; the other publishes
//!   records with bad signatures).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use strata_levin::Header;
use strata_levin::Kind;
use strata_node::rng::Rng;
use strata_node::sim::{Upper, WireIn, WireOut};
use strata_node::wire::{
    self, HandshakeRequest, HandshakeResponse, NetAddress, NetworkId, NodeData, PING_OK, PeerEntry,
    PingResponse, SupportFlagsResponse, TimedSyncResponse, command,
};
use strata_node::{Class, Direction, Event as NodeEvent, Node, PeerId, Verdict};
use strata_store::Record;
use strata_sync::Summary;
use strata_sync::wire::command as sync_command;

/// Return code of a successful p2p response (monerod's).
const P2P_OK: i32 = 1;

/// What a speaker does beyond the p2p protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Many addresses: dials its victims from them again and again and
    /// answers every peer-list request with its own addresses only; passes
    /// nothing on.
    Eclipse {
        /// Victims' addresses.
        victims: Vec<SocketAddr>,
        /// Time between dials.
        dial_interval: Duration,
        /// Most connections held at once; the oldest goes first.
        max_connections: usize,
    },
    /// Claims far more records than anyone, then serves none (`junk`
    /// false) or answers range requests with bytes that are no records.
    Liar {
        /// Victims' addresses, dialed and kept connected.
        victims: Vec<SocketAddr>,
        /// Answer with junk rather than stay silent.
        junk: bool,
    },
    /// Dials its victims and writes a handshake, but never reads (the
    /// world's links towards it carry nothing).
    Deaf {
        /// Victims' addresses.
        victims: Vec<SocketAddr>,
        /// Time between dials.
        dial_interval: Duration,
    },
}

struct Conn {
    local: SocketAddr,
    direction: Direction,
    ready: bool,
}

/// A host that speaks the p2p protocol's frames itself.
pub struct Speaker {
    behaviour: Behaviour,
    network_id: NetworkId,
    key: [u8; 32],
    payload: Summary,
    /// Its addresses.
    addrs: Vec<SocketAddr>,
    /// A peer id per address, as if each were a node.
    peer_ids: HashMap<SocketAddr, u64>,
    conns: HashMap<PeerId, Conn>,
    order: VecDeque<PeerId>,
    out: VecDeque<WireOut>,
    rng: Rng,
    next_dial: Option<Instant>,
    victim_turn: usize,
    /// Frames it answered with junk.
    pub junk_sent: u64,
    /// Requests of the sync layer it left unanswered.
    pub ignored: u64,
    /// Dials it made.
    pub dials: u64,
}

impl Speaker {
    /// A speaker at `addrs` (at least one) on network `network_id` with
    /// node key `key`, whose handshakes carry `payload`.
    pub fn new(
        behaviour: Behaviour,
        addrs: Vec<SocketAddr>,
        network_id: NetworkId,
        key: [u8; 32],
        payload: Summary,
        seed: u64,
    ) -> Speaker {
        let mut rng = Rng::new(seed);
        let peer_ids = addrs.iter().map(|a| (*a, rng.next_u64())).collect();
        Speaker {
            behaviour,
            network_id,
            key,
            payload,
            addrs,
            peer_ids,
            conns: HashMap::new(),
            order: VecDeque::new(),
            out: VecDeque::new(),
            rng,
            next_dial: None,
            victim_turn: 0,
            junk_sent: 0,
            ignored: 0,
            dials: 0,
        }
    }

    /// The behaviour.
    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    /// Connections open.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn node_data(&self, local: SocketAddr) -> NodeData {
        NodeData {
            my_port: u32::from(local.port()),
            network_id: self.network_id,
            peer_id: self.peer_ids.get(&local).copied().unwrap_or(1),
            rpc_credits_per_hash: None,
            rpc_port: None,
            support_flags: Some(0),
            strata_key: Some(self.key),
        }
    }

    /// A peer list of the speaker's own addresses (an eclipse attacker's)
    /// or none.
    fn peer_list(&mut self) -> Vec<PeerEntry> {
        if !matches!(self.behaviour, Behaviour::Eclipse { .. }) {
            return Vec::new();
        }
        let n = self.addrs.len().min(wire::MAX_PEER_LIST);
        (0..n)
            .map(|_| {
                let addr = self.addrs[self.rng.index(self.addrs.len())];
                PeerEntry {
                    adr: NetAddress::from(addr),
                    ..PeerEntry::default()
                }
            })
            .collect()
    }

    fn send(&mut self, conn: PeerId, header: Header, body: Option<Bytes>) {
        if let Some(body) = body {
            self.out.push_back(WireOut::Send {
                conn,
                class: Class::Control,
                header,
                body,
            });
        }
    }

    fn respond<T: strata_portable_storage::Encode>(
        &mut self,
        conn: PeerId,
        command: u32,
        body: &T,
    ) {
        let body = wire::encode(body).ok();
        self.send(conn, Header::response(command, P2P_OK, 0), body);
    }

    fn on_request(&mut self, conn: PeerId, header: &Header) {
        let Some(local) = self.conns.get(&conn).map(|c| c.local) else {
            return;
        };
        match header.command {
            command::HANDSHAKE => {
                let body = HandshakeResponse {
                    local_peerlist_new: self.peer_list(),
                    node_data: self.node_data(local),
                    payload_data: self.payload.clone(),
                };
                self.respond(conn, command::HANDSHAKE, &body);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.ready = true;
                }
            }
            command::TIMED_SYNC => {
                let body = TimedSyncResponse {
                    local_peerlist_new: self.peer_list(),
                    payload_data: self.payload.clone(),
                };
                self.respond(conn, command::TIMED_SYNC, &body);
            }
            command::PING => {
                let body = PingResponse {
                    peer_id: self.node_data(local).peer_id,
                    status: PING_OK.to_owned(),
                };
                self.respond(conn, command::PING, &body);
            }
            command::REQUEST_SUPPORT_FLAGS => {
                self.respond(
                    conn,
                    command::REQUEST_SUPPORT_FLAGS,
                    &SupportFlagsResponse { support_flags: 0 },
                );
            }
            _ => {}
        }
    }

    fn on_notification(&mut self, conn: PeerId, command: u32, body: &Bytes) {
        let Behaviour::Liar { junk, .. } = self.behaviour else {
            return;
        };
        if command != sync_command::GET_RANGE {
            if (sync_command::RECON_REQUEST..=sync_command::GET_RANGE).contains(&command) {
                self.ignored += 1;
            }
            return;
        }
        if !junk {
            self.ignored += 1;
            return;
        }
        // The request's id, then bytes that are no records.
        let mut reply = Vec::with_capacity(64);
        reply.extend_from_slice(body.get(..8).unwrap_or(&[0; 8]));
        reply.push(0);
        reply.extend_from_slice(&1u32.to_be_bytes());
        for _ in 0..48 {
            reply.push(u8::try_from(self.rng.below(256)).unwrap_or(0));
        }
        self.junk_sent += 1;
        self.out.push_back(WireOut::Send {
            conn,
            class: Class::Bulk,
            header: Header::notification(sync_command::RANGE, 0),
            body: Bytes::from(reply),
        });
    }

    fn victims(&self) -> &[SocketAddr] {
        match &self.behaviour {
            Behaviour::Eclipse { victims, .. }
            | Behaviour::Liar { victims, .. }
            | Behaviour::Deaf { victims, .. } => victims,
        }
    }

    fn dial_interval(&self) -> Duration {
        match &self.behaviour {
            Behaviour::Eclipse { dial_interval, .. } | Behaviour::Deaf { dial_interval, .. } => {
                *dial_interval
            }
            Behaviour::Liar { .. } => Duration::from_secs(5),
        }
    }

    fn dial_next(&mut self) {
        let victims = self.victims();
        if victims.is_empty() {
            return;
        }
        let to = victims[self.victim_turn % victims.len()];
        if let Behaviour::Liar { .. } = self.behaviour {
            // The liar keeps one connection to each victim.
            let connected = self.conns.len();
            if connected >= victims.len() {
                return;
            }
        }
        self.victim_turn += 1;
        let from = self.addrs[self.rng.index(self.addrs.len())];
        self.dials += 1;
        self.out.push_back(WireOut::Dial { from, to });
    }

    fn trim(&mut self) {
        let Behaviour::Eclipse {
            max_connections, ..
        } = self.behaviour
        else {
            return;
        };
        while self.conns.len() > max_connections {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.conns.remove(&oldest).is_some() {
                self.out.push_back(WireOut::Close(oldest));
            }
        }
    }
}

impl Upper<Summary> for Speaker {
    fn start(&mut self, _node: &mut Node<Summary>, now: Instant) {
        self.next_dial = Some(now);
    }

    fn handle_event(&mut self, _: NodeEvent<Summary>, _: &mut Node<Summary>, _: Instant) {}

    fn handle_timeout(&mut self, _node: &mut Node<Summary>, now: Instant) {
        if self.next_dial.is_some_and(|t| t <= now) {
            self.dial_next();
            self.next_dial = Some(now + self.dial_interval());
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_dial
    }

    fn speaks_wire(&self) -> bool {
        true
    }

    fn handle_wire(&mut self, input: WireIn, _now: Instant) {
        match input {
            WireIn::Connected {
                conn,
                local,
                direction,
                ..
            } => {
                self.conns.insert(
                    conn,
                    Conn {
                        local,
                        direction,
                        ready: false,
                    },
                );
                self.order.push_back(conn);
                if direction == Direction::Outbound {
                    let body = HandshakeRequest {
                        node_data: self.node_data(local),
                        payload_data: self.payload.clone(),
                    };
                    let body = wire::encode(&body).ok();
                    self.send(conn, Header::request(command::HANDSHAKE, 0), body);
                }
                self.trim();
            }
            WireIn::Frame { conn, header, body } => match header.kind() {
                Kind::Request => self.on_request(conn, &header),
                Kind::Response => {
                    if header.command == command::HANDSHAKE
                        && let Some(c) = self.conns.get_mut(&conn)
                        && c.direction == Direction::Outbound
                    {
                        c.ready = true;
                    }
                }
                Kind::Notification => self.on_notification(conn, header.command, &body),
                _ => {}
            },
            WireIn::Closed(conn) => {
                self.conns.remove(&conn);
                self.order.retain(|c| *c != conn);
            }
            WireIn::DialFailed { .. } => {}
        }
    }

    fn poll_wire(&mut self) -> Option<WireOut> {
        self.out.pop_front()
    }
}

/// A real node's layer that passes nothing on: every gossip message gets
/// [`Verdict::Drop`]. A sybil swarm is made of these.
#[derive(Debug, Default)]
pub struct Freeloader {
    /// Messages it kept to itself.
    pub dropped: u64,
}

impl Upper<Summary> for Freeloader {
    fn handle_event(&mut self, event: NodeEvent<Summary>, node: &mut Node<Summary>, now: Instant) {
        if let NodeEvent::Gossip { id, .. } = event {
            self.dropped += 1;
            node.handle_verdict(id, Verdict::Drop, now);
        }
    }
}

/// A real node's layer that publishes records with bad signatures at a
/// steady rate.
pub struct Spammer {
    key: SigningKey,
    interval: Duration,
    size: usize,
    next: Option<Instant>,
    /// Spam messages published.
    pub sent: u64,
}

impl Spammer {
    /// One record of `size` value bytes every `interval`.
    pub fn new(key: SigningKey, interval: Duration, size: usize) -> Spammer {
        Spammer {
            key,
            interval,
            size,
            next: None,
            sent: 0,
        }
    }

    /// A record whose signature does not verify, as a gossip payload.
    fn bad_record(&self) -> Option<Bytes> {
        let key = format!("spam-{}", self.sent);
        let value = vec![0x5a; self.size];
        let record = Record::sign(&self.key, key.as_bytes(), 1, &value).ok()?;
        let mut bytes = record.to_bytes();
        let last = bytes.last_mut()?;
        *last ^= 0x01;
        let mut payload = Vec::with_capacity(bytes.len() + 1);
        payload.push(0x01);
        payload.extend_from_slice(&bytes);
        Some(Bytes::from(payload))
    }
}

impl Upper<Summary> for Spammer {
    fn start(&mut self, _node: &mut Node<Summary>, now: Instant) {
        self.next = Some(now + self.interval);
    }

    fn handle_event(&mut self, event: NodeEvent<Summary>, node: &mut Node<Summary>, now: Instant) {
        if let NodeEvent::Gossip { id, .. } = event {
            node.handle_verdict(id, Verdict::Drop, now);
        }
    }

    fn handle_timeout(&mut self, node: &mut Node<Summary>, now: Instant) {
        if self.next.is_some_and(|t| t <= now) {
            if let Some(payload) = self.bad_record()
                && node.propagate(payload, now).is_ok()
            {
                self.sent += 1;
            }
            self.next = Some(now + self.interval);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
}
