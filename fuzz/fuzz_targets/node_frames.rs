//! The node under a hostile driver: the input is a small program of
//! connections, frames, closes, dial and DNS outcomes, verdicts, mutator
//! calls and jumps in time, run against one [`Node`] on Monero's testnet or
//! mainnet (with monerod's `CORE_SYNC_DATA` payload) or on strata's network
//! (with the sync layer's `Summary`). After every step, whatever the input:
//!
//! - nothing panics, and one step yields fewer than [`MAX_OUTPUTS`] outputs;
//! - the node knows exactly the connections that are up (connected and not
//!   yet reported closed), and only those are named by its outputs; it asks
//!   to close a connection at most once;
//! - a peer is reported ready once, and gone once, only when it was ready;
//!   payloads and messages of the upper range come from ready peers only,
//!   upper commands in `UPPER_FIRST..=UPPER_LAST`;
//! - every frame it sends has a valid header whose length is the body's;
//! - a gossip event's id is its payload's hash, the `delivered` counter is
//!   the number of gossip events, and no gossip counter goes down;
//! - no address's score stays above the ban threshold;
//! - after `handle_timeout(now)`, the next timeout is later than `now`, so a
//!   driver never spins on its timer.
//!
//! Program format: byte 0 picks the network (`% 3`: Monero's testnet, its
//! mainnet, strata's network) and settings; then each op is one byte
//! (`% OPS`) and its operands. Missing bytes read as zeros, and the program
//! ends with its input. The ops that the seed programs of
//! `xtask/src/fuzz.rs` use, built from frames captured from monerod:
//!
//! - `CONNECT_INBOUND a b port:u16le key`: a connection from 127.a.b.1; an
//!   odd `key` byte is followed by the 32-byte TLS key.
//! - `CONNECT_OUTBOUND 0 a b port:u16le key`: the same, dialed by us.
//! - `RAW_FRAME k header body`: a whole Levin frame on connection `k`, its
//!   body as long as the 33-byte header says (or what is left).
//! - `WAIT unit n`: `n` times 1 ms, 1 s, 1 min or 1 h (`unit % 4`) later,
//!   the timer fires.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_levin::{Flags, HEADER_LEN, Header, PROTOCOL_VERSION};
use strata_node::addrman::AddrMan;
use strata_node::gossip::{self, MessageId, Stats, Verdict};
use strata_node::netgroup::Grouping;
use strata_node::wire::{
    self, Addr, CoreSyncData, GossipIds, GossipMessage, HandshakeRequest, HandshakeResponse,
    NetAddress, NodeData, Payload, PeerEntry, PingResponse, SupportFlagsResponse, TimedSyncRequest,
    TimedSyncResponse, command,
};
use strata_node::{
    Class, Config, Direction, Event, Misbehaviour, Network, Node, Output, PeerId, State,
};
use strata_sync::Summary;

/// Most outputs one step may yield.
const MAX_OUTPUTS: usize = 10_000;
/// Most connections the program keeps up at once.
const MAX_CONNECTIONS: usize = 48;
/// Most dials, names and gossip ids the harness remembers for later ops.
const MAX_REMEMBERED: usize = 64;

// Op numbers: `xtask/src/fuzz.rs` writes seed programs with them.
const CONNECT_INBOUND: u8 = 0;
const CONNECT_OUTBOUND: u8 = 1;
const FRAME: u8 = 2;
const WAIT: u8 = 3;
const TIMER: u8 = 4;
const CLOSED: u8 = 5;
const CLOSED_ALL: u8 = 6;
const VERDICT: u8 = 7;
const DIAL_FAILED: u8 = 8;
const RESOLVED: u8 = 9;
const PROPAGATE: u8 = 10;
const MUTATE: u8 = 11;
const RAW_FRAME: u8 = 12;
const OPS: u8 = 13;

/// Commands a frame op picks from (an index past the end reads one from
/// the input).
const COMMANDS: [u32; 26] = [
    1001, 1002, 1003, 1007, 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009, 2010, 3001, 3002,
    3003, 3100, 3101, 3102, 3103, 3104, 3105, 3106, 3107, 3108,
];
const RETURN_CODES: [i32; 6] = [0, 1, -1, -3, -6, -7];

/// The fuzz input, read front to back; past its end every read is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Up to `max` bytes, their count read first.
    fn bytes(&mut self, max: usize) -> Bytes {
        let len = usize::from(self.u16()) % (max + 1);
        self.take(len)
    }

    fn take(&mut self, len: usize) -> Bytes {
        let (head, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        Bytes::copy_from_slice(head)
    }

    /// An index below `len`, or `None` when there is nothing to pick.
    fn pick(&mut self, len: usize) -> Option<usize> {
        let b = usize::from(self.u8());
        (len > 0).then(|| b % len)
    }

    /// A loopback address; the harness's connections come from these.
    fn loopback(&mut self) -> SocketAddr {
        let [a, b] = self.array();
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, a, b, 1)), self.u16())
    }

    /// Any address, as a hostile peer may list.
    fn any_addr(&mut self) -> SocketAddr {
        let ip = if self.u8() & 1 == 0 {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>()))
        };
        SocketAddr::new(ip, self.u16())
    }
}

/// A payload the program can build.
trait FuzzPayload: Payload + Default {
    fn read(input: &mut Input<'_>) -> Self;
}

impl FuzzPayload for CoreSyncData {
    fn read(input: &mut Input<'_>) -> Self {
        CoreSyncData {
            cumulative_difficulty: input.u64(),
            cumulative_difficulty_top64: input.u64(),
            current_height: input.u64(),
            pruning_seed: Some(input.u32()).filter(|s| *s != 0),
            top_id: input.array(),
            top_version: input.u8(),
        }
    }
}

impl FuzzPayload for Summary {
    fn read(input: &mut Input<'_>) -> Self {
        Summary {
            records: input.u64(),
            epoch: input.u64(),
            fingerprint: input.u64(),
            key: input.array(),
        }
    }
}

/// A connection the harness holds up.
struct Conn {
    id: PeerId,
    remote: SocketAddr,
    /// The TLS key the harness says it authenticated.
    key: Option<[u8; 32]>,
    /// The peer id claimed in the last handshake body built for it.
    claimed: u64,
    ready: bool,
    closing: bool,
}

struct Harness<P: FuzzPayload> {
    node: Node<P>,
    config: Config,
    now: Instant,
    next_id: u64,
    conns: Vec<Conn>,
    /// Ready peers reported closed, awaiting their `PeerGone`.
    gone: HashSet<PeerId>,
    dials: Vec<SocketAddr>,
    names: Vec<String>,
    verdicts: Vec<MessageId>,
    /// Gossip payloads seen, for announcements and requests.
    known: Vec<MessageId>,
    /// Ids of the messages with dependencies sent to the node (an id
    /// covers the dependencies, which the event does not carry).
    with_deps: HashSet<MessageId>,
    delivered: u64,
    stats: Stats,
}

fn remember<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= MAX_REMEMBERED {
        list.remove(0);
    }
    list.push(item);
}

impl<P: FuzzPayload> Harness<P> {
    fn new(network: Network, settings: u8) -> Self {
        let mut config = Config::new(network);
        config.max_inbound = 1 + usize::from(settings >> 2 & 7);
        config.outbound = 1 + usize::from(settings >> 5 & 3);
        config.fast_slots = config.outbound / 2;
        if network.strata {
            config.node_key = Some([0x5a; 32]);
        }
        if settings & 0x80 != 0 {
            config.gossip.push_threshold = 0;
        }
        config.peers = vec![SocketAddr::from(([127, 0, 0, 7], network.port))];
        config.seeds = vec![SocketAddr::from(([127, 0, 0, 8], network.port))];
        config.fixed_seeds = vec![SocketAddr::from(([127, 0, 0, 9], network.port))];
        config.dns_seeds = vec!["seeds.strata.test".to_owned()];
        let grouping = Grouping {
            local_network: true,
        };
        let book = AddrMan::new([settings; 32], grouping);
        let anchors = vec![SocketAddr::from(([127, 0, 0, 10], network.port))];
        let now = Instant::now();
        let node = Node::new(
            config.clone(),
            P::default(),
            book,
            anchors,
            1_700_000_000,
            u64::from(settings),
            now,
        );
        let mut harness = Harness {
            node,
            config,
            now,
            next_id: 1,
            conns: Vec::new(),
            gone: HashSet::new(),
            dials: Vec::new(),
            names: Vec::new(),
            verdicts: Vec::new(),
            known: Vec::new(),
            with_deps: HashSet::new(),
            delivered: 0,
            stats: Stats::default(),
        };
        harness.timeout();
        harness
    }

    fn conn(&mut self, peer: PeerId) -> &mut Conn {
        self.conns
            .iter_mut()
            .find(|c| c.id == peer)
            .unwrap_or_else(|| panic!("output names {peer:?}, which is not connected"))
    }

    fn step(&mut self, input: &mut Input<'_>) {
        match input.u8() % OPS {
            CONNECT_INBOUND => {
                let remote = input.loopback();
                self.connect(remote, Direction::Inbound, input);
            }
            CONNECT_OUTBOUND => {
                // An odd byte picks an address the node asked to dial.
                let b = usize::from(input.u8());
                let remote = if b & 1 == 1 && !self.dials.is_empty() {
                    self.dials.remove((b >> 1) % self.dials.len())
                } else {
                    input.loopback()
                };
                self.connect(remote, Direction::Outbound, input);
            }
            FRAME => {
                let Some(i) = input.pick(self.conns.len()) else {
                    return;
                };
                let header = frame_header(input);
                let body = self.body(i, input);
                let peer = self.conns[i].id;
                self.node.handle_message(peer, header, body, self.now);
            }
            WAIT => {
                let unit = [1, 1_000, 60_000, 3_600_000][usize::from(input.u8() % 4)];
                self.now += Duration::from_millis(unit * u64::from(input.u8()));
                self.timeout();
            }
            TIMER => {
                if let Some(at) = self.node.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.timeout();
            }
            CLOSED => {
                if let Some(i) = input.pick(self.conns.len()) {
                    self.closed(i);
                }
            }
            CLOSED_ALL => {
                while let Some(i) = self.conns.iter().position(|c| c.closing) {
                    self.closed(i);
                }
            }
            VERDICT => {
                if let Some(i) = input.pick(self.verdicts.len()) {
                    let id = self.verdicts.remove(i);
                    match input.u8() % 4 {
                        3 => {
                            let deps = self.deps(input);
                            self.node.handle_wait(id, &deps, self.now);
                        }
                        v => {
                            let verdict = [Verdict::Propagate, Verdict::Drop, Verdict::Reject]
                                [usize::from(v)];
                            self.node.handle_verdict(id, verdict, self.now);
                        }
                    }
                }
            }
            DIAL_FAILED => {
                let addr = match input.pick(self.dials.len()) {
                    Some(i) => self.dials.remove(i),
                    None => input.loopback(),
                };
                self.node.handle_dial_failed(addr, self.now);
            }
            RESOLVED => {
                let name = match input.pick(self.names.len()) {
                    Some(i) => self.names.remove(i),
                    None => "unasked.strata.test".to_owned(),
                };
                let ips: Vec<IpAddr> = (0..input.u8() % 48)
                    .map(|_| input.any_addr().ip())
                    .collect();
                self.node.handle_resolved(&name, &ips, self.now);
            }
            PROPAGATE => {
                let payload = input.bytes(2048);
                let deps = self.deps(input);
                if let Ok(id) = self
                    .node
                    .propagate_after(payload.clone(), deps.clone(), self.now)
                {
                    assert_eq!(id, MessageId::of_message(&payload, &deps));
                    remember(&mut self.known, id);
                }
            }
            MUTATE => self.mutate(input),
            RAW_FRAME => {
                let Some(i) = input.pick(self.conns.len()) else {
                    return;
                };
                let Ok(mut header) = Header::decode(&input.array::<HEADER_LEN>()) else {
                    return;
                };
                let body = input.take(usize::try_from(header.body_len).unwrap_or(usize::MAX));
                header.body_len = body.len() as u64;
                let peer = self.conns[i].id;
                self.node.handle_message(peer, header, body, self.now);
            }
            _ => unreachable!(),
        }
    }

    fn connect(&mut self, remote: SocketAddr, direction: Direction, input: &mut Input<'_>) {
        let key = (input.u8() & 1 == 1).then(|| input.array());
        if self.conns.len() >= MAX_CONNECTIONS {
            return;
        }
        let id = PeerId(self.next_id);
        self.next_id += 1;
        self.conns.push(Conn {
            id,
            remote,
            key,
            claimed: 0,
            ready: false,
            closing: false,
        });
        self.node
            .handle_connected(id, remote, direction, key, self.now);
    }

    fn closed(&mut self, i: usize) {
        let conn = self.conns.remove(i);
        if conn.ready {
            self.gone.insert(conn.id);
        }
        self.node.handle_closed(conn.id, self.now);
    }

    fn timeout(&mut self) {
        self.node.handle_timeout(self.now);
        self.drain();
        if let Some(at) = self.node.poll_timeout() {
            assert!(
                at > self.now,
                "after handle_timeout(now), the next timeout is not later"
            );
        }
    }

    fn mutate(&mut self, input: &mut Input<'_>) {
        match input.u8() % 4 {
            0 => {
                let Some(i) = input.pick(self.conns.len()) else {
                    return;
                };
                let command = if input.u8() & 1 == 0 {
                    command::UPPER_FIRST + u32::from(input.u16() % 900)
                } else {
                    input.u32()
                };
                let class =
                    [Class::Control, Class::Relay, Class::Bulk][usize::from(input.u8() % 3)];
                let peer = self.conns[i].id;
                let ready = self.conns[i].ready;
                let sent = self
                    .node
                    .send_upper(peer, command, input.bytes(4096), class);
                let in_range = (command::UPPER_FIRST..=command::UPPER_LAST).contains(&command);
                assert_eq!(sent, ready && in_range);
            }
            1 => self.node.set_payload(P::read(input)),
            2 => {
                let Some(i) = input.pick(self.conns.len()) else {
                    return;
                };
                let what = match input.u8() % 11 {
                    0 => Misbehaviour::SecondHandshake,
                    1 => Misbehaviour::WrongNetwork,
                    2 => Misbehaviour::PeerListTooLong,
                    3 => Misbehaviour::UnmatchedResponse,
                    4 => Misbehaviour::UndecodableRequest,
                    5 => Misbehaviour::Undecodable,
                    6 => Misbehaviour::BeforeHandshake,
                    7 => Misbehaviour::WrongKey,
                    8 => Misbehaviour::InvalidGossip,
                    9 if input.u8() & 1 == 0 => Misbehaviour::UnservedDependency,
                    9 => Misbehaviour::Upper(u32::from(input.u8())),
                    _ => Misbehaviour::Upper(input.u32()),
                };
                self.node.report(self.conns[i].id, what);
            }
            _ => {
                let addrs: Vec<SocketAddr> =
                    (0..input.u8() % 32).map(|_| input.any_addr()).collect();
                let source = input.any_addr().ip();
                self.node.add_addresses(&addrs, source, self.now);
            }
        }
    }

    /// Ids a message depends on: known ones and made-up ones.
    fn deps(&self, input: &mut Input<'_>) -> Vec<MessageId> {
        (0..input.u8() % 4)
            .map(|_| match input.pick(self.known.len()) {
                Some(k) if input.u8() & 1 == 0 => self.known[k],
                _ => MessageId(input.array::<32>()),
            })
            .collect()
    }

    /// A frame body: raw bytes, or one of the node's messages built from
    /// the input so that it decodes.
    fn body(&mut self, i: usize, input: &mut Input<'_>) -> Bytes {
        let encoded = match input.u8() % 9 {
            0 => return input.bytes(4096),
            1 => wire::encode(&HandshakeRequest {
                node_data: self.node_data(i, input),
                payload_data: P::read(input),
            }),
            2 => wire::encode(&HandshakeResponse {
                local_peerlist_new: peer_list(input),
                node_data: self.node_data(i, input),
                payload_data: P::read(input),
            }),
            3 => wire::encode(&TimedSyncRequest {
                payload_data: P::read(input),
            }),
            4 => wire::encode(&TimedSyncResponse {
                local_peerlist_new: peer_list(input),
                payload_data: P::read(input),
            }),
            5 => {
                let payload = input.bytes(4096);
                let deps = if input.u8() & 3 == 0 {
                    input.bytes(40)
                } else {
                    MessageId::list_bytes(&self.deps(input))
                };
                if let Some(list) = MessageId::list_from(&deps) {
                    // Not forgotten: one input sends few.
                    self.with_deps
                        .insert(MessageId::of_message(&payload, &list));
                }
                wire::encode(&GossipMessage { payload, deps })
            }
            6 => {
                // Short ids of messages seen, under this connection's salt,
                // and some from the input.
                let salt = gossip::salt(self.node.peer_id(), self.conns[i].claimed);
                let mut ids = Vec::new();
                for _ in 0..input.u8() % 16 {
                    let short = match input.pick(self.known.len()) {
                        Some(k) if input.u8() & 1 == 0 => gossip::short_id(&salt, &self.known[k]),
                        _ => input.u64(),
                    };
                    ids.extend_from_slice(&short.to_le_bytes());
                }
                ids.extend_from_slice(&input.bytes(16));
                wire::encode(&GossipIds {
                    ids: Bytes::from(ids),
                })
            }
            7 => wire::encode(&PingResponse {
                peer_id: input.u64(),
                status: if input.u8() & 1 == 0 {
                    wire::PING_OK.to_owned()
                } else {
                    "BUSY".to_owned()
                },
            }),
            _ => wire::encode(&SupportFlagsResponse {
                support_flags: input.u32(),
            }),
        };
        encoded.expect("a message the node defines encodes")
    }

    /// Node data for a handshake on connection `i`: this network's id
    /// unless the input says otherwise, and the connection's TLS key.
    fn node_data(&mut self, i: usize, input: &mut Input<'_>) -> NodeData {
        let flags = input.u8();
        let conn = &mut self.conns[i];
        conn.claimed = match flags & 3 {
            0 => self.node.peer_id(),
            _ => input.u64(),
        };
        NodeData {
            my_port: u32::from(input.u16()),
            network_id: if flags & 4 == 0 {
                self.config.network_id
            } else {
                input.array()
            },
            peer_id: conn.claimed,
            rpc_credits_per_hash: None,
            rpc_port: Some(input.u16()).filter(|p| *p != 0),
            support_flags: Some(input.u32()),
            strata_key: match flags >> 3 & 3 {
                0 => conn.key,
                1 => None,
                _ => Some(input.array()),
            },
        }
    }

    /// Carries out the node's outputs and checks each.
    fn drain(&mut self) {
        let mut count = 0;
        while let Some(output) = self.node.poll_output() {
            count += 1;
            assert!(count < MAX_OUTPUTS, "one step yielded {count} outputs");
            match output {
                Output::Send {
                    peer, head, body, ..
                } => {
                    self.conn(peer);
                    let head: [u8; HEADER_LEN] = head[..].try_into().expect("a 33-byte header");
                    let header = Header::decode(&head).expect("a valid header");
                    assert_eq!(header.body_len, body.len() as u64);
                    assert_eq!(header.protocol_version, PROTOCOL_VERSION);
                }
                Output::HandshakeDone(peer) => {
                    self.conn(peer);
                }
                Output::Close(peer) => {
                    let conn = self.conn(peer);
                    assert!(!conn.closing, "{peer:?} asked to close twice");
                    conn.closing = true;
                }
                Output::Dial { addr, .. } => remember(&mut self.dials, addr),
                Output::Resolve(name) => remember(&mut self.names, name),
                Output::Ban { .. } | Output::BanSubnet { .. } | Output::SaveAddressBook => {}
                Output::Event(Event::PeerReady(peer, _)) => {
                    let conn = self.conn(peer);
                    assert!(!conn.ready, "{peer:?} ready twice");
                    conn.ready = true;
                }
                Output::Event(Event::PeerGone(peer)) => {
                    assert!(
                        self.gone.remove(&peer),
                        "{peer:?} gone but not ready or not closed"
                    );
                }
                Output::Event(Event::Payload(peer, _)) => {
                    assert!(
                        self.conn(peer).ready,
                        "payload from {peer:?} before its handshake"
                    );
                }
                Output::Event(Event::Gossip { peer, id, payload }) => {
                    assert!(self.conn(peer).ready);
                    assert!(
                        id == MessageId::of(&payload) || self.with_deps.contains(&id),
                        "an id that is neither the payload's nor one of a message sent"
                    );
                    self.delivered += 1;
                    remember(&mut self.verdicts, id);
                    remember(&mut self.known, id);
                }
                Output::Event(Event::Upper { peer, command, .. }) => {
                    assert!(self.conn(peer).ready);
                    assert!((command::UPPER_FIRST..=command::UPPER_LAST).contains(&command));
                }
            }
        }
    }

    /// The invariants that hold between steps.
    fn check(&mut self) {
        assert!(self.gone.is_empty(), "a ready peer closed without PeerGone");
        let mut up: Vec<PeerId> = self.conns.iter().map(|c| c.id).collect();
        let mut known: Vec<PeerId> = self.node.peers().map(|p| p.id).collect();
        up.sort();
        known.sort();
        assert_eq!(known, up, "the node's connections are not those up");
        for conn in &self.conns {
            let info = self.node.peer(conn.id).expect("known");
            assert_eq!(info.state == State::Ready, conn.ready);
            assert_eq!(info.remote, conn.remote);
            assert!(self.node.score(conn.remote.ip()) <= self.config.ban_threshold);
        }
        let stats = self.node.gossip_stats();
        assert_eq!(stats.delivered, self.delivered);
        let counters = |s: &Stats| {
            [
                s.delivered,
                s.duplicates,
                s.payload_bytes_in,
                s.payload_bytes_out,
                s.announced,
                s.requested,
                s.overflow,
                s.verdicts_missed,
                s.rejected,
            ]
        };
        let went_down = counters(&stats)
            .iter()
            .zip(counters(&self.stats))
            .any(|(new, old)| *new < old);
        assert!(
            !went_down,
            "a gossip counter went down: {:?} then {stats:?}",
            self.stats
        );
        self.stats = stats;
    }
}

/// A frame's header: a command from [`COMMANDS`] or the input, a kind, and
/// a return code.
fn frame_header(input: &mut Input<'_>) -> Header {
    let command = match COMMANDS.get(usize::from(input.u8()) % (COMMANDS.len() + 1)) {
        Some(c) => *c,
        None => input.u32(),
    };
    let code = match RETURN_CODES.get(usize::from(input.u8()) % (RETURN_CODES.len() + 1)) {
        Some(c) => *c,
        None => input.u32() as i32,
    };
    match input.u8() % 4 {
        0 => Header::request(command, 0),
        1 => Header::notification(command, 0),
        2 => Header::response(command, code, 0),
        _ => Header {
            body_len: 0,
            expects_response: input.u8() & 1 == 1,
            command,
            return_code: code,
            flags: Flags(input.u32()),
            protocol_version: input.u32(),
        },
    }
}

/// A peer list of up to 300 entries (more than a peer may send).
fn peer_list(input: &mut Input<'_>) -> Vec<PeerEntry> {
    let len = match input.u8() {
        255 => 251 + usize::from(input.u8() % 50),
        n => usize::from(n % 16),
    };
    (0..len)
        .map(|_| {
            let mut adr = NetAddress::from(input.any_addr());
            if input.u8() & 7 == 0 {
                adr = NetAddress {
                    addr: Addr {
                        addr: None,
                        m_ip: Some(input.u32()),
                        m_port: None,
                    },
                    kind: input.u8(),
                };
            }
            PeerEntry {
                adr,
                id: input.u64(),
                last_seen: Some(i64::from(input.u32())).filter(|t| *t != 0),
                ..PeerEntry::default()
            }
        })
        .collect()
}

fn run<P: FuzzPayload>(network: Network, settings: u8, mut input: Input<'_>) {
    let mut harness = Harness::<P>::new(network, settings);
    harness.check();
    while !input.is_empty() {
        harness.step(&mut input);
        harness.drain();
        harness.check();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let settings = input.u8();
    match settings % 3 {
        0 => run::<CoreSyncData>(Network::MONERO_TESTNET, settings, input),
        1 => run::<CoreSyncData>(Network::MONERO_MAINNET, settings, input),
        _ => run::<Summary>(Network::STRATA, settings, input),
    }
});
