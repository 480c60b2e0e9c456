//! The state machine driven by hand: nodes wired to each other in memory,
//! time advanced to each wake-up, no sockets.
#![allow(clippy::cast_possible_truncation)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_levin::{HEADER_LEN, Header};

use super::*;
use crate::addrman::AddrMan;
use crate::config::{Config, Network};
use crate::netgroup::Grouping;
use crate::wire::CoreSyncData;

type Deliveries = Arc<Mutex<Vec<(usize, MessageId)>>>;

/// A network of nodes in memory. Frames are delivered in order, after the
/// sender's outputs are drained; dials to a listening address connect.
struct Net {
    nodes: Vec<Node<CoreSyncData>>,
    addrs: Vec<SocketAddr>,
    /// (node, conn) -> (node, conn) of the other end.
    links: HashMap<(usize, PeerId), (usize, PeerId)>,
    next_conn: u64,
    now: Instant,
    deliveries: Deliveries,
    events: Vec<(usize, String)>,
    bans: Vec<(usize, IpAddr)>,
    resolves: Vec<(usize, String, Instant)>,
    /// Frames to hold back instead of delivering: (from node, command).
    drop_from: Vec<(usize, u32)>,
    queue: VecDeque<(usize, PeerId, Header, Bytes)>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, u8::try_from(i + 1).unwrap()], 7710))
}

fn config(i: usize) -> Config {
    let mut config = Config::new(Network::STRATA);
    config.require_key = false;
    config.listen_port = 7710;
    config.outbound = 3;
    config.fast_slots = 1;
    let _ = i;
    config
}

impl Net {
    fn new(n: usize, configure: impl Fn(usize, &mut Config)) -> Net {
        let now = Instant::now();
        let deliveries: Deliveries = Arc::default();
        let nodes = (0..n)
            .map(|i| {
                let mut c = config(i);
                configure(i, &mut c);
                let book = AddrMan::new(
                    [i as u8; 32],
                    Grouping {
                        local_network: true,
                    },
                );
                let d = deliveries.clone();
                let handler: Handler = Box::new(move |_, id, _| {
                    d.lock().unwrap().push((i, *id));
                    Verdict::Propagate
                });
                Node::new(
                    c,
                    CoreSyncData::default(),
                    book,
                    Vec::new(),
                    now,
                    1_700_000_000,
                    i as u64,
                    handler,
                )
            })
            .collect();
        Net {
            nodes,
            addrs: (0..n).map(addr).collect(),
            links: HashMap::new(),
            next_conn: 1,
            now,
            deliveries,
            events: Vec::new(),
            bans: Vec::new(),
            resolves: Vec::new(),
            drop_from: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    fn connect(&mut self, from: usize, to: usize) -> (PeerId, PeerId) {
        let a = PeerId(self.next_conn);
        let b = PeerId(self.next_conn + 1);
        self.next_conn += 2;
        self.links.insert((from, a), (to, b));
        self.links.insert((to, b), (from, a));
        let now = self.now;
        self.nodes[to].handle_connected(b, self.addrs[from], Direction::Inbound, None, now);
        self.nodes[from].handle_connected(a, self.addrs[to], Direction::Outbound, None, now);
        (a, b)
    }

    /// Drains every output until the network is quiet.
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                while let Some(output) = self.nodes[i].poll_output() {
                    busy = true;
                    self.apply(i, output);
                }
            }
            if let Some((i, conn, header, body)) = self.queue.pop_front() {
                busy = true;
                let now = self.now;
                self.nodes[i].handle_message(conn, header, body, now);
            }
            if !busy {
                return;
            }
        }
        panic!("the network never settled");
    }

    fn apply(&mut self, i: usize, output: Output<CoreSyncData>) {
        let now = self.now;
        match output {
            Output::Send {
                peer, head, body, ..
            } => {
                let head: [u8; HEADER_LEN] = head.as_ref().try_into().unwrap();
                let header = Header::decode(&head).unwrap();
                assert_eq!(header.body_len, body.len() as u64);
                if self.drop_from.contains(&(i, header.command)) {
                    return;
                }
                if let Some(&(j, other)) = self.links.get(&(i, peer)) {
                    self.queue.push_back((j, other, header, body));
                }
            }
            Output::Close(peer) => {
                if let Some((j, other)) = self.links.remove(&(i, peer)) {
                    self.links.remove(&(j, other));
                    self.nodes[i].handle_closed(peer, now);
                    self.nodes[j].handle_closed(other, now);
                }
            }
            Output::Dial { addr, .. } => match self.addrs.iter().position(|a| *a == addr) {
                Some(j) if j != i => {
                    self.connect(i, j);
                }
                _ => self.nodes[i].handle_dial_failed(addr, now),
            },
            Output::Ban { ip, .. } => self.bans.push((i, ip)),
            Output::Event(event) => self.events.push((i, format!("{event:?}"))),
            Output::Resolve(name) => self.resolves.push((i, name, now)),
            Output::HandshakeDone(_) | Output::SaveAddressBook => {}
        }
    }

    /// Advances time to the earliest wake-up (at most `limit` ahead) and
    /// runs it.
    fn step(&mut self, limit: Duration) {
        let until = self.now + limit;
        let next = self
            .nodes
            .iter()
            .filter_map(|n| n.poll_timeout())
            .min()
            .unwrap_or(until)
            .min(until)
            .max(self.now);
        self.now = next;
        for i in 0..self.nodes.len() {
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= next) {
                self.nodes[i].handle_timeout(next);
            }
        }
        self.settle();
    }

    fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        let mut steps = 0;
        while self.now < end {
            self.step(end - self.now);
            steps += 1;
            if steps > 5_000 {
                let t: Vec<_> = self
                    .nodes
                    .iter()
                    .map(|n| {
                        n.poll_timeout()
                            .map(|t| t.saturating_duration_since(self.now))
                    })
                    .collect();
                panic!(
                    "stuck at {:?}: {t:?} {:?}",
                    end - self.now,
                    self.nodes[0].peers().collect::<Vec<_>>()
                );
            }
        }
    }

    fn ready(&self, i: usize) -> usize {
        self.nodes[i]
            .peers()
            .filter(|p| p.state == State::Ready)
            .count()
    }

    fn conn_of(&self, i: usize, remote: usize) -> Option<PeerId> {
        self.nodes[i]
            .peers()
            .find(|p| p.remote == self.addrs[remote])
            .map(|p| p.id)
    }

    fn inject(&mut self, i: usize, conn: PeerId, header: Header, body: Bytes) {
        let header = Header {
            body_len: body.len() as u64,
            ..header
        };
        let now = self.now;
        self.nodes[i].handle_message(conn, header, body, now);
        self.settle();
    }
}

#[test]
fn two_nodes_handshake_and_keep_timed_syncing() {
    let mut net = Net::new(2, |_, _| {});
    let (a, b) = net.connect(0, 1);
    net.settle();
    assert_eq!((net.ready(0), net.ready(1)), (1, 1));
    assert_eq!(
        net.nodes[0]
            .peer(a)
            .unwrap()
            .node_data
            .as_ref()
            .unwrap()
            .peer_id,
        net.nodes[1].peer_id()
    );
    assert!(net.nodes[0].peer(a).unwrap().rtt.is_some());
    // Several timed sync rounds: still connected, payloads seen each time.
    net.run_for(Duration::from_secs(200));
    assert!(net.nodes[0].peer(a).is_some() && net.nodes[1].peer(b).is_some());
    let payloads = net
        .events
        .iter()
        .filter(|(i, e)| *i == 1 && e.starts_with("Payload"))
        .count();
    assert!(payloads >= 3, "{payloads}");
}

#[test]
fn a_silent_peer_is_dropped_and_the_failure_recorded() {
    let mut net = Net::new(2, |_, _| {});
    let (a, _) = net.connect(0, 1);
    net.settle();
    // Node 1 stops answering timed syncs.
    net.drop_from.push((1, command::TIMED_SYNC));
    net.run_for(Duration::from_secs(60 + 31));
    assert!(
        net.nodes[0].peer(a).is_none(),
        "closed after the request timeout"
    );
    // Not dialed again at once by node 0.
    let outbound = net.nodes[0]
        .peers()
        .filter(|p| p.direction == Direction::Outbound)
        .count();
    assert_eq!(outbound, 0);
    let entry = net.nodes[0].address_book().get(&addr(1)).cloned().unwrap();
    assert_eq!(entry.attempts, 1);
}

#[test]
fn wrong_network_is_refused_and_scored() {
    let mut net = Net::new(2, |i, c| {
        if i == 1 {
            c.network_id = Network::MONERO_TESTNET.id;
        }
    });
    net.connect(0, 1);
    net.settle();
    assert_eq!(net.ready(0) + net.ready(1), 0);
    assert_eq!(
        net.nodes.iter().map(|n| n.peers().count()).sum::<usize>(),
        0
    );
}

#[test]
fn a_second_handshake_disconnects_and_repeat_offenders_are_banned() {
    let mut net = Net::new(2, |_, _| {});
    for round in 0..3 {
        let (_, b) = net.connect(0, 1);
        net.settle();
        assert_eq!(net.ready(1), 1);
        let body = wire::encode(&HandshakeRequest {
            node_data: net.nodes[0].node_data(),
            payload_data: CoreSyncData::default(),
        })
        .unwrap();
        net.inject(1, b, Header::request(command::HANDSHAKE, 0), body);
        assert_eq!(net.ready(1), 0, "round {round}");
    }
    // 5 + 5 + 5 > 10: banned on the third.
    assert_eq!(net.bans, vec![(1, addr(0).ip())]);
}

#[test]
fn strict_states_before_the_handshake() {
    let mut net = Net::new(2, |_, _| {});
    let b = PeerId(99);
    let now = net.now;
    net.nodes[1].handle_connected(b, addr(0), Direction::Inbound, None, now);
    // A ping is answered before the handshake.
    net.inject(
        1,
        b,
        Header::request(command::PING, 0),
        wire::encode(&Empty {}).unwrap(),
    );
    let answered = std::iter::from_fn(|| net.nodes[1].poll_output()).count();
    assert_eq!(net.nodes[1].peers().count(), 1);
    let _ = answered;
    // A timed sync before the handshake closes the connection.
    let body = wire::encode(&TimedSyncRequest {
        payload_data: CoreSyncData::default(),
    })
    .unwrap();
    net.nodes[1].handle_message(
        b,
        Header {
            body_len: body.len() as u64,
            ..Header::request(command::TIMED_SYNC, 0)
        },
        body,
        now,
    );
    let closed = std::iter::from_fn(|| net.nodes[1].poll_output())
        .any(|o| matches!(o, Output::Close(p) if p == b));
    assert!(closed);
    assert_eq!(net.nodes[1].score(addr(0).ip()), 2);
}

#[test]
fn undecodable_timed_sync_gets_minus_one_and_the_connection_stays() {
    let mut net = Net::new(2, |_, _| {});
    let (_, b) = net.connect(0, 1);
    net.settle();
    let now = net.now;
    let garbage = Bytes::from_static(b"\x01\x11\x01\x01\x01\x01\x02\x01\x01\xff");
    net.nodes[1].handle_message(
        b,
        Header {
            body_len: garbage.len() as u64,
            ..Header::request(command::TIMED_SYNC, 0)
        },
        garbage,
        now,
    );
    let outputs: Vec<_> = std::iter::from_fn(|| net.nodes[1].poll_output()).collect();
    let response = outputs.iter().find_map(|o| match o {
        Output::Send { head, body, .. } => {
            let h = Header::decode(head.as_ref().try_into().unwrap()).unwrap();
            Some((h.return_code, body.len()))
        }
        _ => None,
    });
    assert_eq!(response, Some((return_code::CONNECTION, 0)));
    assert!(!outputs.iter().any(|o| matches!(o, Output::Close(_))));
    assert_eq!(net.nodes[1].score(addr(0).ip()), 1);
}

#[test]
fn unmatched_response_and_long_peer_lists_disconnect() {
    let mut net = Net::new(2, |_, _| {});
    let (a, _) = net.connect(0, 1);
    net.settle();
    let body = wire::encode(&TimedSyncResponse::<CoreSyncData> {
        local_peerlist_new: Vec::new(),
        payload_data: CoreSyncData::default(),
    })
    .unwrap();
    net.inject(0, a, Header::response(command::TIMED_SYNC, 1, 0), body);
    assert_eq!(net.ready(0), 0);
    assert_eq!(net.nodes[0].score(addr(1).ip()), 5);

    let (a, b) = net.connect(0, 1);
    net.settle();
    // Node 0 sends a timed sync; node 1's answer carries 251 peers.
    net.drop_from.push((1, command::TIMED_SYNC));
    net.run_for(Duration::from_secs(61));
    let list: Vec<PeerEntry> = (0..251u32)
        .map(|i| PeerEntry {
            adr: SocketAddr::from(([8, 8, (i >> 8) as u8, i as u8], 1)).into(),
            ..PeerEntry::default()
        })
        .collect();
    let body = wire::encode(&TimedSyncResponse {
        local_peerlist_new: list,
        payload_data: CoreSyncData::default(),
    })
    .unwrap();
    let _ = b;
    net.inject(0, a, Header::response(command::TIMED_SYNC, 1, 0), body);
    assert_eq!(net.ready(0), 0);
    assert_eq!(
        net.nodes[0].score(addr(1).ip()),
        10,
        "5 + 5, not yet over the threshold"
    );
    assert!(net.bans.is_empty());
}

#[test]
fn peer_exchange_spreads_addresses_without_resending() {
    let mut net = Net::new(3, |_, _| {});
    // 0 knows 2 (its address book); 1 connects to 0 and learns of 2.
    let now = net.now;
    net.nodes[0].add_addresses(&[addr(2)], addr(2).ip(), now);
    net.nodes[0].add_addresses(&[SocketAddr::from(([8, 8, 8, 8], 7710))], addr(2).ip(), now);
    net.connect(1, 0);
    net.settle();
    assert!(net.nodes[1].address_book().get(&addr(2)).is_some());
    let learned = net.nodes[1].address_book().get(&addr(2)).unwrap().last_seen;
    assert!(learned <= 1_700_000_000 - crate::addrman::RELAY_PENALTY);
}

#[test]
fn outbound_slots_fill_from_the_address_book_in_distinct_groups() {
    let mut net = Net::new(6, |_, _| {});
    let now = net.now;
    let all: Vec<SocketAddr> = (1..6).map(addr).collect();
    net.nodes[0].add_addresses(&all, addr(0).ip(), now);
    net.run_for(Duration::from_secs(5));
    let outbound = net.nodes[0]
        .peers()
        .filter(|p| p.direction == Direction::Outbound && p.state == State::Ready)
        .count();
    assert_eq!(outbound, 3, "the configured target");
    let fast = net.nodes[0]
        .peers()
        .filter(|p| p.kind == Some(DialKind::Fast))
        .count();
    assert_eq!(fast, 1);
}

#[test]
fn gossip_reaches_everyone_once_with_push_and_with_announcements() {
    for threshold in [usize::MAX, 0] {
        let mut net = Net::new(12, |_, c| c.gossip.push_threshold = threshold);
        let now = net.now;
        for i in 0..12 {
            let all: Vec<SocketAddr> = (0..12).filter(|j| *j != i).map(addr).collect();
            net.nodes[i].add_addresses(&all, addr(i).ip(), now);
        }
        net.run_for(Duration::from_secs(5));
        for k in 0..20u8 {
            let payload = Bytes::from(vec![k; 2000]);
            let now = net.now;
            let id = net.nodes[usize::from(k) % 12]
                .propagate(payload, now)
                .unwrap();
            net.run_for(Duration::from_secs(3));
            let got: Vec<usize> = net
                .deliveries
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, m)| *m == id)
                .map(|(i, _)| *i)
                .collect();
            assert_eq!(got.len(), 11, "threshold {threshold}, message {k}: {got:?}");
            let mut unique = got.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), got.len(), "delivered twice");
        }
        let received: u64 = net
            .nodes
            .iter()
            .map(|n| n.gossip_stats().payload_bytes_in)
            .sum();
        let factor = received as f64 / (20.0 * 2000.0 * 11.0);
        if threshold == 0 {
            assert!(factor < 1.2, "duplication factor {factor}");
        }
    }
}

#[test]
fn propagate_fails_only_without_peers() {
    let mut net = Net::new(2, |_, _| {});
    let now = net.now;
    assert_eq!(
        net.nodes[0].propagate(Bytes::from_static(b"x"), now),
        Err(PropagateError::NoPeers)
    );
    net.connect(0, 1);
    net.settle();
    assert!(
        net.nodes[0]
            .propagate(Bytes::from_static(b"x"), now)
            .is_ok()
    );
}

#[test]
fn full_inbound_slots_evict_a_peer_of_the_largest_group() {
    let mut net = Net::new(8, |i, c| {
        if i == 0 {
            c.max_inbound = 6;
        }
    });
    for i in 1..8 {
        net.connect(i, 0);
        net.settle();
    }
    let inbound = net.nodes[0]
        .peers()
        .filter(|p| p.direction == Direction::Inbound)
        .count();
    assert_eq!(inbound, 6);
}

#[test]
fn a_key_that_differs_from_the_tls_key_is_refused() {
    let mut net = Net::new(2, |i, c| {
        c.require_key = true;
        c.node_key = Some([i as u8 + 1; 32]);
    });
    let b = PeerId(50);
    let a = PeerId(51);
    net.links.insert((0, a), (1, b));
    net.links.insert((1, b), (0, a));
    let now = net.now;
    // Node 1 learned key [9; 32] from TLS, but node 0 claims [1; 32].
    net.nodes[1].handle_connected(b, addr(0), Direction::Inbound, Some([9; 32]), now);
    net.nodes[0].handle_connected(a, addr(1), Direction::Outbound, Some([2; 32]), now);
    net.settle();
    assert_eq!(net.ready(1), 0);
    assert_eq!(net.nodes[1].score(addr(0).ip()), 5);

    // With matching keys the handshake completes and the key is recorded.
    let mut net = Net::new(2, |i, c| {
        c.require_key = true;
        c.node_key = Some([i as u8 + 1; 32]);
    });
    let (a, _) = net.connect(0, 1);
    net.settle();
    assert_eq!(net.nodes[0].peer(a).unwrap().key, Some([2; 32]));
    let _ = net.conn_of(0, 1);
}

#[test]
fn seed_nodes_are_asked_for_addresses_then_dropped() {
    let mut net = Net::new(3, |i, c| {
        if i == 1 {
            c.seeds = vec![addr(0)];
            c.outbound = 0;
        }
    });
    let now = net.now;
    net.nodes[0].add_addresses(&[addr(2)], addr(2).ip(), now);
    net.run_for(Duration::from_secs(2));
    assert!(
        net.nodes[1].address_book().get(&addr(2)).is_some(),
        "learned from the seed"
    );
    let outbound = |net: &Net| {
        net.nodes[1]
            .peers()
            .filter(|p| p.direction == Direction::Outbound)
            .count()
    };
    assert_eq!(outbound(&net), 0, "the seed connection was closed");
    // Used once: not dialed again.
    net.run_for(Duration::from_secs(10));
    assert_eq!(outbound(&net), 0);
}

#[test]
fn fixed_seeds_are_the_last_resort_after_their_delay() {
    let mut net = Net::new(2, |i, c| {
        if i == 0 {
            c.fixed_seeds = vec![addr(1)];
        }
    });
    net.run_for(Duration::from_secs(59));
    assert_eq!(net.nodes[0].peers().count(), 0);
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.ready(0), 1, "dialed from the fixed seeds after 60 s");
}

#[test]
fn exclusive_peers_are_the_only_ones_dialed_and_dns_is_not_asked() {
    let mut net = Net::new(4, |i, c| {
        if i == 0 {
            c.exclusive = vec![addr(1)];
            c.dns_seeds = vec!["seed.example".into()];
        }
    });
    let now = net.now;
    net.nodes[0].add_addresses(&[addr(2), addr(3)], addr(2).ip(), now);
    net.run_for(Duration::from_secs(30));
    let remotes: Vec<SocketAddr> = net.nodes[0]
        .peers()
        .filter(|p| p.direction == Direction::Outbound)
        .map(|p| p.remote)
        .collect();
    assert_eq!(remotes, vec![addr(1)]);
    assert!(net.resolves.is_empty());
}

#[test]
fn dns_seeds_are_asked_at_once_when_the_book_is_empty_else_after_the_delay() {
    let mut net = Net::new(1, |_, c| c.dns_seeds = vec!["seed.example".into()]);
    let start = net.now;
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.resolves.len(), 1);
    assert_eq!(net.resolves[0].2, start);

    // A node whose book is not empty waits `dns_delay` (11 s).
    let now = Instant::now();
    let mut book = AddrMan::new(
        [1; 32],
        Grouping {
            local_network: true,
        },
    );
    let mut rng = Rng::new(1);
    book.add(
        &[(addr(5), 1_700_000_000)],
        addr(5).ip(),
        0,
        1_700_000_000,
        &mut rng,
    );
    let mut c = config(0);
    c.dns_seeds = vec!["seed.example".into()];
    let handler: Handler = Box::new(|_, _, _| Verdict::Propagate);
    let mut node = Node::new(
        c,
        CoreSyncData::default(),
        book,
        Vec::new(),
        now,
        1_700_000_000,
        1,
        handler,
    );
    node.handle_timeout(now + Duration::from_secs(10));
    let early = std::iter::from_fn(|| node.poll_output()).any(|o| matches!(o, Output::Resolve(_)));
    assert!(!early);
    node.handle_timeout(now + Duration::from_secs(11));
    let asked = std::iter::from_fn(|| node.poll_output()).any(|o| matches!(o, Output::Resolve(_)));
    assert!(asked);
}

#[test]
fn a_restarted_node_redials_addresses_its_last_run_just_tried() {
    // The book comes from a run that tried the address seconds ago.
    let now = Instant::now();
    let unix = 1_700_000_000;
    let mut book = AddrMan::new(
        [1; 32],
        Grouping {
            local_network: true,
        },
    );
    let mut rng = Rng::new(1);
    book.add(&[(addr(5), unix)], addr(5).ip(), 0, unix, &mut rng);
    book.attempt(addr(5), true, unix - 5);
    let handler: Handler = Box::new(|_, _, _| Verdict::Propagate);
    let mut node = Node::new(
        config(0),
        CoreSyncData::default(),
        book,
        Vec::new(),
        now,
        unix,
        1,
        handler,
    );
    node.handle_timeout(now);
    let dialed: Vec<SocketAddr> = std::iter::from_fn(|| node.poll_output())
        .filter_map(|o| match o {
            Output::Dial { addr, .. } => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(dialed, vec![addr(5)]);
    // Within this run, a failed address waits before it is dialed again.
    node.handle_dial_failed(addr(5), now);
    node.handle_timeout(now + Duration::from_secs(1));
    assert!(!std::iter::from_fn(|| node.poll_output()).any(|o| matches!(o, Output::Dial { .. })));
}
