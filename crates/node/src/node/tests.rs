#![allow(
    clippy::arithmetic_side_effects,
    reason = "test arithmetic on small constants"
)]

//! The state machine on the in-memory harness ([`crate::sim`]): nodes wired
//! to each other, time advanced to each wake-up, no sockets.
#![allow(clippy::cast_possible_truncation)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_levin::{HEADER_LEN, Header};

use super::*;
use crate::addrman::AddrMan;
use crate::config::{Config, Network};
use crate::netgroup::Grouping;
use crate::sim::{Recorder, Sim};
use crate::wire::CoreSyncData;

type Net = Sim<CoreSyncData, Recorder<CoreSyncData>>;

const UNIX: i64 = 1_700_000_000;
const LOCAL: Grouping = Grouping {
    local_network: true,
};

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, u8::try_from(i + 1).unwrap()], 7710))
}

fn config() -> Config {
    let mut config = Config::new(Network::STRATA);
    config.require_key = false;
    config.listen_port = 7710;
    config.outbound = 3;
    config.fast_slots = 1;
    config
}

fn node(i: usize, config: Config, grouping: Grouping, now: Instant) -> Node<CoreSyncData> {
    let book = AddrMan::new([i as u8; 32], grouping);
    Node::new(
        config,
        CoreSyncData::default(),
        book,
        Vec::new(),
        UNIX,
        i as u64,
        now,
    )
}

/// `n` nodes on 127.0.0.x, each configured by `configure`.
fn net(n: usize, configure: impl Fn(usize, &mut Config)) -> Net {
    net_at(n, configure, addr, LOCAL)
}

fn net_at(
    n: usize,
    configure: impl Fn(usize, &mut Config),
    at: impl Fn(usize) -> SocketAddr,
    grouping: Grouping,
) -> Net {
    let now = Instant::now();
    let mut sim = Sim::new(now, 7);
    for i in 0..n {
        let mut c = config();
        configure(i, &mut c);
        sim.add(at(i), node(i, c, grouping, now), Recorder::default());
    }
    sim
}

fn ready(net: &Net, i: usize) -> usize {
    net.host(i)
        .node
        .peers()
        .filter(|p| p.state == State::Ready)
        .count()
}

fn outbound(net: &Net, i: usize) -> Vec<&PeerInfo> {
    net.host(i)
        .node
        .peers()
        .filter(|p| p.direction == Direction::Outbound)
        .collect()
}

fn payloads(net: &Net, i: usize) -> usize {
    net.host(i)
        .upper
        .events
        .iter()
        .filter(|e| matches!(e, Event::Payload(..)))
        .count()
}

/// Every output of host `i`'s node since the last flush, taken.
fn take_outputs(net: &mut Net, i: usize) -> Vec<Output<CoreSyncData>> {
    std::iter::from_fn(|| net.host_mut(i).node.poll_output()).collect()
}

fn sent_header(output: &Output<CoreSyncData>) -> Option<(Header, usize)> {
    match output {
        Output::Send { head, body, .. } => {
            let head: [u8; HEADER_LEN] = head.as_ref().try_into().ok()?;
            Some((Header::decode(&head).ok()?, body.len()))
        }
        _ => None,
    }
}

#[test]
fn two_nodes_handshake_and_keep_timed_syncing() {
    let mut net = net(2, |_, _| {});
    let (a, b) = net.connect(0, 1);
    net.settle();
    assert_eq!((ready(&net, 0), ready(&net, 1)), (1, 1));
    let info = net.host(0).node.peer(a).unwrap();
    assert_eq!(
        info.node_data.as_ref().unwrap().peer_id,
        net.host(1).node.peer_id()
    );
    assert!(info.rtt.is_some());
    // Several timed sync rounds: still connected, payloads seen each time.
    net.run_for(Duration::from_secs(200));
    assert!(net.host(0).node.peer(a).is_some() && net.host(1).node.peer(b).is_some());
    assert!(payloads(&net, 1) >= 3, "{}", payloads(&net, 1));
    assert_eq!(net.stats().stuck_timers, 0);
}

#[test]
fn a_silent_peer_is_dropped_and_the_failure_recorded() {
    // Node 1 asks nothing itself within the test, so it is node 0 that
    // times out.
    let mut net = net(2, |i, c| {
        if i == 1 {
            c.timed_sync_interval = Duration::from_secs(3600);
        }
    });
    let (a, _) = net.connect(0, 1);
    net.settle();
    // Node 1 stops answering timed syncs.
    net.hold(1, command::TIMED_SYNC, true);
    // The request goes at most 1¼ of the interval after the handshake.
    net.run_for(Duration::from_secs(75 + 31));
    assert!(
        net.host(0).node.peer(a).is_none(),
        "closed after the request timeout"
    );
    // Not dialed again at once by node 0.
    assert!(outbound(&net, 0).is_empty());
    let entry = net
        .host(0)
        .node
        .address_book()
        .get(&addr(1))
        .cloned()
        .unwrap();
    assert_eq!(entry.attempts, 1);
}

#[test]
fn wrong_network_is_refused_and_scored() {
    let mut net = net(2, |i, c| {
        if i == 1 {
            c.network_id = Network::MONERO_TESTNET.id;
        }
    });
    net.connect(0, 1);
    net.settle();
    assert_eq!(ready(&net, 0) + ready(&net, 1), 0);
    assert_eq!(
        net.hosts()
            .iter()
            .map(|h| h.node.peers().count())
            .sum::<usize>(),
        0
    );
    // Node 1 refused node 0's handshake: one point, as the table says.
    assert_eq!(
        net.host(1).node.score(addr(0).ip()),
        Misbehaviour::WrongNetwork.score()
    );
    assert_eq!(Misbehaviour::WrongNetwork.score(), 1);
}

#[test]
fn a_second_handshake_disconnects_and_repeat_offenders_are_banned() {
    // No outbound slots: nobody dials anyone back on their own.
    let mut net = net(2, |_, c| c.outbound = 0);
    for round in 0..3 {
        let (_, b) = net.connect(0, 1);
        net.settle();
        assert_eq!(ready(&net, 1), 1);
        let body = wire::encode(&HandshakeRequest {
            node_data: net.host(0).node.node_data(),
            payload_data: CoreSyncData::default(),
        })
        .unwrap();
        net.inject(1, b, Header::request(command::HANDSHAKE, 0), body);
        assert_eq!(ready(&net, 1), 0, "round {round}");
    }
    // 5 + 5 + 5 > 10: banned on the third.
    let bans: Vec<IpAddr> = net.host(1).bans.iter().map(|(ip, _)| *ip).collect();
    assert_eq!(bans, vec![addr(0).ip()]);
    // A banned address cannot connect again.
    let now = net.now();
    net.host_mut(0)
        .node
        .add_addresses(&[addr(1)], addr(1).ip(), now);
    net.host_mut(0).node.config.outbound = 1;
    net.flush(0);
    net.run_for(Duration::from_secs(120));
    assert!(
        outbound(&net, 0).iter().all(|p| p.state != State::Ready),
        "the banned node got a connection through"
    );
}

#[test]
fn strict_states_before_the_handshake() {
    let mut net = net(2, |_, _| {});
    let b = PeerId(99);
    let now = net.now();
    net.host_mut(1)
        .node
        .handle_connected(b, addr(0), Direction::Inbound, None, now);
    // A ping is answered before the handshake, with our peer id.
    net.host_mut(1).node.handle_message(
        b,
        Header {
            body_len: 0,
            ..Header::request(command::PING, 0)
        },
        wire::encode(&Empty {}).unwrap(),
        now,
    );
    let outputs = take_outputs(&mut net, 1);
    let answer = outputs
        .iter()
        .find_map(|o| match o {
            Output::Send { head, body, .. } => {
                let head: [u8; HEADER_LEN] = head.as_ref().try_into().unwrap();
                Some((Header::decode(&head).unwrap(), body.clone()))
            }
            _ => None,
        })
        .expect("the ping was not answered");
    assert_eq!(answer.0.command, command::PING);
    assert_eq!(answer.0.kind(), Kind::Response);
    assert_eq!(answer.0.return_code, return_code::P2P_OK);
    let pong: PingResponse = wire::decode(&answer.1).unwrap();
    assert_eq!(pong.status, PING_OK);
    assert_eq!(pong.peer_id, net.host(1).node.peer_id());
    assert_eq!(net.host(1).node.peers().count(), 1);
    // A timed sync before the handshake closes the connection.
    let body = wire::encode(&TimedSyncRequest {
        payload_data: CoreSyncData::default(),
    })
    .unwrap();
    net.host_mut(1).node.handle_message(
        b,
        Header {
            body_len: body.len() as u64,
            ..Header::request(command::TIMED_SYNC, 0)
        },
        body,
        now,
    );
    let closed = take_outputs(&mut net, 1)
        .iter()
        .any(|o| matches!(o, Output::Close(p) if *p == b));
    assert!(closed);
    assert_eq!(
        net.host(1).node.score(addr(0).ip()),
        Misbehaviour::BeforeHandshake.score()
    );
}

#[test]
fn undecodable_timed_sync_gets_minus_one_and_the_connection_stays() {
    let mut net = net(2, |_, _| {});
    let (_, b) = net.connect(0, 1);
    net.settle();
    let now = net.now();
    let garbage = Bytes::from_static(b"\x01\x11\x01\x01\x01\x01\x02\x01\x01\xff");
    net.host_mut(1).node.handle_message(
        b,
        Header {
            body_len: garbage.len() as u64,
            ..Header::request(command::TIMED_SYNC, 0)
        },
        garbage,
        now,
    );
    let outputs = take_outputs(&mut net, 1);
    let response = outputs
        .iter()
        .find_map(sent_header)
        .map(|(h, len)| (h.return_code, len));
    assert_eq!(response, Some((return_code::CONNECTION, 0)));
    assert!(!outputs.iter().any(|o| matches!(o, Output::Close(_))));
    assert_eq!(net.host(1).node.score(addr(0).ip()), 1);
}

#[test]
fn unmatched_response_and_long_peer_lists_disconnect() {
    let mut net = net(2, |_, c| c.outbound = 0);
    let (a, _) = net.connect(0, 1);
    net.settle();
    let body = wire::encode(&TimedSyncResponse::<CoreSyncData> {
        local_peerlist_new: Vec::new(),
        payload_data: CoreSyncData::default(),
    })
    .unwrap();
    net.inject(0, a, Header::response(command::TIMED_SYNC, 1, 0), body);
    assert_eq!(ready(&net, 0), 0);
    assert_eq!(net.host(0).node.score(addr(1).ip()), 5);

    let (a, _) = net.connect(0, 1);
    net.settle();
    // Node 0 sends a timed sync; node 1's answer carries 251 peers.
    net.hold(1, command::TIMED_SYNC, true);
    net.run_for(Duration::from_secs(76));
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
    net.inject(0, a, Header::response(command::TIMED_SYNC, 1, 0), body);
    assert_eq!(ready(&net, 0), 0);
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        10,
        "5 + 5, not yet over the threshold"
    );
    assert!(net.host(0).bans.is_empty());
}

#[test]
fn a_peer_that_answers_timed_syncs_before_they_are_asked_is_caught_and_never_measures_nearer() {
    let mut net = net(2, |_, c| c.outbound = 0);
    net.set_latency(Box::new(|_, _, _| Duration::from_millis(40)));
    let (a, _) = net.connect(0, 1);
    net.run_for(Duration::from_secs(1));
    let honest = net.host(0).node.peers().next().and_then(|p| p.rtt).unwrap();
    assert_eq!(honest, Duration::from_millis(80));
    let rtt = |net: &Net| net.host(0).node.peers().next().and_then(|p| p.rtt);
    let interval = config().timed_sync_interval;
    let body = wire::encode(&TimedSyncResponse::<CoreSyncData> {
        local_peerlist_new: Vec::new(),
        payload_data: CoreSyncData::default(),
    })
    .unwrap();
    let header = Header {
        body_len: body.len() as u64,
        ..Header::response(command::TIMED_SYNC, 1, 0)
    };
    // Node 1 falls silent; the attacker answers for it: the first request
    // when it comes, each later one ahead, one interval after the last
    // request it answered, timed to arrive just as a fixed schedule would
    // send the next.
    take_outputs(&mut net, 0);
    let mut answered: Option<Instant> = None;
    let mut unanswered: Option<Instant> = None;
    let mut caught = false;
    let mut matched = 0;
    for _ in 0..1000 {
        let wake = net.host(0).node.poll_timeout().unwrap();
        let answer = match (answered, unanswered) {
            (Some(last), _) => Some(last + interval),
            (None, Some(first)) => Some(first + honest),
            (None, None) => None,
        };
        match answer {
            Some(at) if at < wake => {
                net.host_mut(0)
                    .node
                    .handle_message(a, header, body.clone(), at);
                let out = take_outputs(&mut net, 0);
                if out.iter().any(|o| matches!(o, Output::Close(p) if *p == a)) {
                    caught = true;
                    break;
                }
                matched += 1;
                answered = unanswered.take();
                assert!(answered.is_some(), "an answer to nothing was taken");
                assert!(rtt(&net).unwrap() >= honest, "it measured nearer");
            }
            _ => {
                net.host_mut(0).node.handle_timeout(wake);
                for o in take_outputs(&mut net, 0) {
                    if let Some((h, _)) = sent_header(&o)
                        && h.command == command::TIMED_SYNC
                        && h.expects_response
                    {
                        unanswered = Some(wake);
                    }
                    assert!(!matches!(o, Output::Close(_)), "closed for another cause");
                }
            }
        }
    }
    assert!(caught, "{matched} answers sent ahead were taken");
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        Misbehaviour::UnmatchedResponse.score()
    );
}

#[test]
fn peer_exchange_spreads_addresses_without_resending() {
    let mut net = net(3, |_, _| {});
    // 0 knows 2 (its address book); 1 connects to 0 and learns of 2.
    let now = net.now();
    let far = SocketAddr::from(([8, 8, 8, 8], 7710));
    net.host_mut(0)
        .node
        .add_addresses(&[addr(2), far], addr(2).ip(), now);
    net.connect(1, 0);
    net.settle();
    let learned = net.host(1).node.address_book().get(&addr(2)).cloned();
    let learned = learned.expect("node 1 learned of node 2").last_seen();
    assert!(learned <= UNIX - crate::addrman::RELAY_PENALTY);
    // Node 0 sends no address twice on a connection, however often asked.
    let b = net.conn_of(0, 1).unwrap();
    let node = &net.host(0).node;
    let sent = &node.conns[&b].sent_addrs;
    let mark = |a: &SocketAddr| super::addr_mark(&node.book, a);
    assert!(sent.contains(mark(&addr(2))) && sent.contains(mark(&far)));
    assert!(
        net.host_mut(0)
            .node
            .peer_list(b, now + PEER_LIST_INTERVAL)
            .is_empty()
    );
}

/// Routable addresses: `i % groups` picks the /16.
fn spread(i: usize, groups: usize) -> SocketAddr {
    let g = u8::try_from(i % groups).unwrap();
    let h = u8::try_from(i / groups + 1).unwrap();
    SocketAddr::from(([9, g, 0, h], 7710))
}

/// Host 0 learns the addresses of hosts `1..n`, spread over `groups` /16s.
fn learn_spread(net: &mut Net, n: usize, groups: usize) {
    let now = net.now();
    let all: Vec<SocketAddr> = (1..n).map(|i| spread(i, groups)).collect();
    net.host_mut(0)
        .node
        .add_addresses(&all, IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)), now);
    net.flush(0);
}

#[test]
fn outbound_slots_fill_in_distinct_groups() {
    // Eleven candidates in three /16s, grouped as on the Internet: the
    // three slots go to three different groups, never two in one.
    let groups = 3;
    let mut net = net_at(12, |_, _| {}, |i| spread(i, groups), Grouping::default());
    learn_spread(&mut net, 12, groups);
    net.run_for(Duration::from_secs(5));
    let out = outbound(&net, 0);
    assert_eq!(out.len(), 3, "the configured target");
    let mut seen: Vec<[u8; 2]> = out
        .iter()
        .map(|p| match p.remote.ip() {
            IpAddr::V4(v4) => [v4.octets()[0], v4.octets()[1]],
            IpAddr::V6(_) => unreachable!(),
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "two outbound peers share a /16: {out:?}");
    assert_eq!(
        out.iter()
            .filter(|p| p.kind == Some(DialKind::Fast))
            .count(),
        1
    );
    // With only two groups on offer, the third slot stays empty.
    let mut net = net_at(8, |_, _| {}, |i| spread(i, 2), Grouping::default());
    learn_spread(&mut net, 8, 2);
    net.run_for(Duration::from_secs(5));
    assert_eq!(outbound(&net, 0).len(), 2);
}

#[test]
fn low_latency_slots_keep_peers_nearer_than_the_others_and_pass_over_far_ones() {
    // Twelve candidates in twelve /16s, four of them 5 ms away and eight
    // 50 ms. Node 0 has six slots, three of them for low latency.
    let near = |j: usize| (1..=4).contains(&j);
    let (mut fast_near, mut fast_all, mut random_near, mut random_all) = (0, 0, 0, 0);
    let mut passed_over = 0;
    for seed in 0..8u64 {
        let now = Instant::now();
        let mut net: Net = Sim::new(now, seed);
        for i in 0..13 {
            let mut c = config();
            c.outbound = if i == 0 { 6 } else { 0 };
            c.fast_slots = if i == 0 { 3 } else { 0 };
            let book = AddrMan::new([seed as u8; 32], Grouping::default());
            let node = Node::new(
                c,
                CoreSyncData::default(),
                book,
                Vec::new(),
                UNIX,
                seed * 16 + i as u64,
                now,
            );
            net.add(spread(i, 13), node, Recorder::default());
        }
        net.set_latency(Box::new(move |a, b, _| {
            let j = if a == 0 { b } else { a };
            Duration::from_millis(if near(j) { 5 } else { 50 })
        }));
        learn_spread(&mut net, 13, 13);
        net.run_for(Duration::from_secs(20));
        for p in outbound(&net, 0) {
            let j = (1..13).find(|&j| spread(j, 13) == p.remote).unwrap();
            match p.kind {
                Some(DialKind::Fast) => {
                    fast_all += 1;
                    fast_near += usize::from(near(j));
                }
                Some(DialKind::Outbound) => {
                    random_all += 1;
                    random_near += usize::from(near(j));
                }
                _ => {}
            }
        }
        passed_over += net.host(0).node.stats().fast_passed_over;
    }
    assert_eq!((fast_all, random_all), (24, 24), "every slot filled");
    // A random slot is near about a third of the time; a low-latency one,
    // which passes over up to two draws measured over the typical round
    // trip, about twice as often.
    assert!(passed_over > 0);
    assert!(
        fast_near >= 2 * random_near.max(1) - 1 && fast_near >= 12,
        "near: {fast_near} of the low-latency slots, {random_near} of the random ones"
    );
}

#[test]
fn feelers_test_new_addresses_once_the_slots_are_full() {
    let mut net = net(6, |i, c| {
        if i == 0 {
            c.outbound = 1;
            c.fast_slots = 0;
            c.feeler_interval = Duration::from_secs(10);
        }
    });
    let now = net.now();
    let all: Vec<SocketAddr> = (1..6).map(addr).collect();
    net.host_mut(0).node.add_addresses(&all, addr(0).ip(), now);
    net.flush(0);
    net.run_for(Duration::from_secs(120));
    let book = net.host(0).node.address_book();
    // One full outbound peer; feelers connected to others, handshook and
    // closed, which moved them to tried.
    assert_eq!(
        outbound(&net, 0)
            .iter()
            .filter(|p| p.kind == Some(DialKind::Outbound))
            .count(),
        1
    );
    assert!(
        outbound(&net, 0)
            .iter()
            .all(|p| p.kind != Some(DialKind::Feeler)),
        "a feeler stayed connected"
    );
    assert!(book.tried_len() >= 3, "tried {}", book.tried_len());
}

#[test]
fn gossip_reaches_everyone_once_with_push_and_with_announcements() {
    for threshold in [usize::MAX, 0] {
        let mut net = net(12, |_, c| c.gossip.push_threshold = threshold);
        let now = net.now();
        for i in 0..12 {
            let all: Vec<SocketAddr> = (0..12).filter(|j| *j != i).map(addr).collect();
            net.host_mut(i).node.add_addresses(&all, addr(i).ip(), now);
            net.flush(i);
        }
        net.run_for(Duration::from_secs(5));
        for k in 0..20u8 {
            let payload = Bytes::from(vec![k; 2000]);
            let now = net.now();
            let from = usize::from(k) % 12;
            let id = net.host_mut(from).node.propagate(payload, now).unwrap();
            net.flush(from);
            net.run_for(Duration::from_secs(3));
            let got: Vec<usize> = (0..12)
                .filter(|i| net.host(*i).upper.delivered.contains(&id))
                .collect();
            assert_eq!(got.len(), 11, "threshold {threshold}, message {k}: {got:?}");
            for i in 0..12 {
                let times = net
                    .host(i)
                    .upper
                    .delivered
                    .iter()
                    .filter(|m| **m == id)
                    .count();
                assert!(times <= 1, "delivered twice to {i}");
            }
        }
        let received: u64 = net
            .hosts()
            .iter()
            .map(|h| h.node.gossip_stats().payload_bytes_in)
            .sum();
        let factor = received as f64 / (20.0 * 2000.0 * 11.0);
        if threshold == 0 {
            assert!(factor < 1.2, "duplication factor {factor}");
        }
    }
}

#[test]
fn a_dropped_message_goes_no_further_and_a_rejected_one_scores_its_sender() {
    // A line: 0 - 1 - 2. Node 1 drops what it gets: node 2 never hears.
    let mut net = net(3, |_, c| c.outbound = 0);
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    net.host_mut(1).upper.verdict = Verdict::Drop;
    let now = net.now();
    let id = net
        .host_mut(0)
        .node
        .propagate(Bytes::from_static(b"kept to itself"), now)
        .unwrap();
    net.flush(0);
    net.run_for(Duration::from_secs(1));
    assert!(net.host(1).upper.delivered.contains(&id));
    assert!(!net.host(2).upper.delivered.contains(&id));
    assert_eq!(
        net.host(1).node.score(addr(0).ip()),
        0,
        "no blame for a drop"
    );
    // Reject: dropped too, and the sender is scored and cut off.
    net.host_mut(1).upper.verdict = Verdict::Reject;
    let now = net.now();
    let id = net
        .host_mut(0)
        .node
        .propagate(Bytes::from_static(b"invalid"), now)
        .unwrap();
    net.flush(0);
    net.run_for(Duration::from_secs(1));
    assert!(!net.host(2).upper.delivered.contains(&id));
    assert_eq!(
        net.host(1).node.score(addr(0).ip()),
        Misbehaviour::InvalidGossip.score()
    );
    assert_eq!(net.host(1).node.gossip_stats().rejected, 1);
    assert!(
        net.conn_of(1, 0).is_none(),
        "the sender was not disconnected"
    );
}

#[test]
fn a_message_without_a_verdict_is_dropped_at_its_deadline() {
    struct Silent;
    impl crate::sim::Upper<CoreSyncData> for Silent {
        fn handle_event(&mut self, _: Event<CoreSyncData>, _: &mut Node<CoreSyncData>, _: Instant) {
        }
    }
    let now = Instant::now();
    let mut sim: Sim<CoreSyncData, Silent> = Sim::new(now, 1);
    for i in 0..2 {
        let mut c = config();
        c.outbound = 0;
        sim.add(addr(i), node(i, c, LOCAL, now), Silent);
    }
    sim.connect(0, 1);
    sim.settle();
    let now = sim.now();
    sim.host_mut(0)
        .node
        .propagate(Bytes::from_static(b"unanswered"), now)
        .unwrap();
    sim.flush(0);
    sim.settle();
    let timeout = sim.host(1).node.config().gossip.verdict_timeout;
    sim.run_for(timeout - Duration::from_millis(1));
    assert_eq!(sim.host(1).node.gossip_stats().verdicts_missed, 0);
    sim.run_for(Duration::from_millis(2));
    assert_eq!(sim.host(1).node.gossip_stats().verdicts_missed, 1);
}

#[test]
fn propagate_fails_only_without_peers() {
    let mut net = net(2, |_, _| {});
    let now = net.now();
    assert_eq!(
        net.host_mut(0)
            .node
            .propagate(Bytes::from_static(b"x"), now),
        Err(PropagateError::NoPeers)
    );
    net.connect(0, 1);
    net.settle();
    assert!(
        net.host_mut(0)
            .node
            .propagate(Bytes::from_static(b"x"), now)
            .is_ok()
    );
}

#[test]
fn full_inbound_slots_evict_the_youngest_of_the_largest_group() {
    let max = crate::PROTECT_BY_GROUP + crate::PROTECT_BY_RTT + crate::PROTECT_BY_USEFUL + 6;
    let mut net = net(max + 2, |i, c| {
        c.outbound = 0;
        if i == 0 {
            c.max_inbound = max;
        }
    });
    for i in 1..=max {
        net.connect(i, 0);
        net.settle();
        net.run_for(Duration::from_millis(10));
    }
    let inbound = |net: &Net| {
        net.host(0)
            .node
            .peers()
            .filter(|p| p.direction == Direction::Inbound)
            .count()
    };
    assert_eq!(inbound(&net), max);
    // One more: someone goes, and it is not the newcomer nor a peer in a
    // protected class; the set of peers changes by exactly one.
    // Inbound connections come from ports of their own: peers by IP.
    let before: Vec<IpAddr> = net.host(0).node.peers().map(|p| p.remote.ip()).collect();
    net.connect(max + 1, 0);
    net.settle();
    assert_eq!(inbound(&net), max);
    let after: Vec<IpAddr> = net.host(0).node.peers().map(|p| p.remote.ip()).collect();
    assert!(
        after.contains(&addr(max + 1).ip()),
        "the newcomer was refused"
    );
    let gone: Vec<&IpAddr> = before.iter().filter(|a| !after.contains(a)).collect();
    assert_eq!(gone.len(), 1);
    // Every loopback address is its own group here, so the largest groups
    // tie and the youngest unprotected peer goes; the oldest never does.
    assert_ne!(*gone[0], addr(1).ip());
}

#[test]
fn a_key_that_differs_from_the_tls_key_is_refused() {
    let keyed = |i: usize, c: &mut Config| {
        c.require_key = true;
        c.node_key = Some([i as u8 + 1; 32]);
        c.outbound = 0;
    };
    let mut net = net(2, keyed);
    let (a, b) = (PeerId(51), PeerId(50));
    let now = net.now();
    // Node 1 learned key [9; 32] from TLS, but node 0 claims [1; 32]: node
    // 0's handshake request is handed to node 1 by hand.
    net.host_mut(1)
        .node
        .handle_connected(b, addr(0), Direction::Inbound, Some([9; 32]), now);
    net.host_mut(0)
        .node
        .handle_connected(a, addr(1), Direction::Outbound, Some([2; 32]), now);
    let (head, body) = take_outputs(&mut net, 0)
        .into_iter()
        .find_map(|o| match o {
            Output::Send { head, body, .. } => Some((head, body)),
            _ => None,
        })
        .unwrap();
    let head: [u8; HEADER_LEN] = head.as_ref().try_into().unwrap();
    net.inject(1, b, Header::decode(&head).unwrap(), body);
    assert_eq!(ready(&net, 1), 0);
    assert_eq!(
        net.host(1).node.score(addr(0).ip()),
        Misbehaviour::WrongKey.score()
    );

    // With matching keys the handshake completes and the key is recorded.
    let mut net = self::net(2, keyed);
    let (a, _) = net.connect(0, 1);
    net.settle();
    assert_eq!(net.host(0).node.peer(a).unwrap().key, Some([2; 32]));
}

#[test]
fn seed_nodes_are_asked_for_addresses_then_dropped() {
    let mut net = net(3, |i, c| {
        if i == 1 {
            c.seeds = vec![addr(0)];
            c.outbound = 0;
        }
    });
    let now = net.now();
    net.host_mut(0)
        .node
        .add_addresses(&[addr(2)], addr(2).ip(), now);
    net.flush(0);
    net.run_for(Duration::from_secs(2));
    assert!(
        net.host(1).node.address_book().get(&addr(2)).is_some(),
        "learned from the seed"
    );
    assert!(
        outbound(&net, 1).is_empty(),
        "the seed connection was closed"
    );
    // Used once: not dialed again.
    net.run_for(Duration::from_secs(10));
    assert!(outbound(&net, 1).is_empty());
}

#[test]
fn fixed_seeds_are_the_last_resort_after_their_delay() {
    let mut net = net(2, |i, c| {
        if i == 0 {
            c.fixed_seeds = vec![addr(1)];
        }
    });
    net.run_for(Duration::from_secs(59));
    assert_eq!(net.host(0).node.peers().count(), 0);
    net.run_for(Duration::from_secs(3));
    assert_eq!(ready(&net, 0), 1, "dialed from the fixed seeds after 60 s");
}

#[test]
fn exclusive_peers_are_the_only_ones_dialed_and_dns_is_not_asked() {
    let mut net = net(4, |i, c| {
        if i == 0 {
            c.exclusive = vec![addr(1)];
            c.dns_seeds = vec!["seed.example".into()];
        }
    });
    let now = net.now();
    net.host_mut(0)
        .node
        .add_addresses(&[addr(2), addr(3)], addr(2).ip(), now);
    net.flush(0);
    net.run_for(Duration::from_secs(30));
    let remotes: Vec<SocketAddr> = outbound(&net, 0).iter().map(|p| p.remote).collect();
    assert_eq!(remotes, vec![addr(1)]);
    assert!(net.host(0).resolves.is_empty());
}

#[test]
fn dns_seeds_are_asked_at_once_when_the_book_is_empty_else_after_the_delay() {
    let mut net = net(1, |_, c| c.dns_seeds = vec!["seed.example".into()]);
    let start = net.now();
    net.set_dns("seed.example", vec![addr(5).ip()]);
    net.run_for(Duration::from_millis(10));
    assert_eq!(
        net.host(0).resolves,
        vec![("seed.example".to_owned(), start)]
    );
    assert!(net.host(0).node.address_book().len() == 1);

    // A node whose book is not empty waits `dns_delay` (11 s).
    let now = Instant::now();
    let mut book = AddrMan::new([1; 32], LOCAL);
    let mut rng = Rng::new(1);
    book.add(&[(addr(5), UNIX)], addr(5).ip(), 0, UNIX, &mut rng);
    let mut c = config();
    c.dns_seeds = vec!["seed.example".into()];
    let mut node = Node::new(c, CoreSyncData::default(), book, Vec::new(), UNIX, 1, now);
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
    let mut book = AddrMan::new([1; 32], LOCAL);
    let mut rng = Rng::new(1);
    book.add(&[(addr(5), UNIX)], addr(5).ip(), 0, UNIX, &mut rng);
    book.attempt(addr(5), true, UNIX - 5);
    let mut node = Node::new(
        config(),
        CoreSyncData::default(),
        book,
        Vec::new(),
        UNIX,
        1,
        now,
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

#[test]
fn the_same_scenario_gives_the_same_trace() {
    let run = || {
        let mut net = net(8, |_, c| c.gossip.push_threshold = 0);
        let now = net.now();
        for i in 0..8 {
            let all: Vec<SocketAddr> = (0..8).filter(|j| *j != i).map(addr).collect();
            net.host_mut(i).node.add_addresses(&all, addr(i).ip(), now);
            net.flush(i);
        }
        net.set_latency(Box::new(|a, b, rng| {
            Duration::from_micros(500 + 100 * (a + b) as u64 + rng.below(300))
        }));
        net.run_for(Duration::from_secs(3));
        let now = net.now();
        net.host_mut(3)
            .node
            .propagate(Bytes::from(vec![1; 5000]), now)
            .unwrap();
        net.flush(3);
        net.run_for(Duration::from_secs(3));
        (net.trace_hash(), net.stats())
    };
    let (a, stats) = run();
    assert!(stats.events > 100);
    assert_eq!(run().0, a);
}

#[test]
fn a_connection_being_closed_does_not_keep_the_timer_due() {
    // A peer that never finishes its handshake is closed at the deadline;
    // until the driver reports the close, its deadline must not keep
    // asking for the timer (a busy loop in a real driver).
    let now = Instant::now();
    let mut c = config();
    c.outbound = 0;
    let mut n = node(0, c, LOCAL, now);
    n.handle_connected(PeerId(1), addr(1), Direction::Inbound, None, now);
    let deadline = n.poll_timeout().unwrap();
    assert!(deadline <= now + n.config().handshake_timeout);
    n.handle_timeout(deadline);
    let closes = std::iter::from_fn(|| n.poll_output())
        .filter(|o| matches!(o, Output::Close(PeerId(1))))
        .count();
    assert_eq!(closes, 1);
    assert!(n.poll_timeout().is_some_and(|t| t > deadline));
    // Asked again, it does not close twice, and frames are ignored.
    n.handle_timeout(deadline + Duration::from_secs(1));
    assert!(!std::iter::from_fn(|| n.poll_output()).any(|o| matches!(o, Output::Close(_))));
    n.handle_closed(PeerId(1), deadline + Duration::from_secs(1));
    assert_eq!(n.peers().count(), 0);
}

#[test]
fn durations_of_any_length_in_the_configuration_do_not_panic() {
    // A configuration read from outside may hold anything: the deadlines
    // computed from it must not overflow the clock.
    let now = Instant::now();
    let mut c = config();
    let forever = Duration::from_secs(u64::MAX);
    c.feeler_interval = forever;
    c.timed_sync_interval = forever;
    c.request_timeout = forever;
    c.handshake_timeout = forever;
    c.idle_timeout = forever;
    c.dns_delay = forever;
    c.fixed_seed_delay = forever;
    c.ban_duration = forever;
    c.gossip.announce_delay = forever;
    c.gossip.request_timeout = forever;
    c.gossip.defer = forever;
    c.gossip.seen_ttl = forever;
    c.gossip.verdict_timeout = forever;
    c.dns_seeds = vec!["seed.example".into()];
    c.fixed_seeds = vec![addr(3)];
    let mut n = node(0, c, LOCAL, now);
    n.add_addresses(&[addr(2)], addr(2).ip(), now);
    n.handle_connected(PeerId(1), addr(1), Direction::Inbound, None, now);
    n.handle_timeout(now);
    let later = n.poll_timeout().unwrap();
    assert!(later <= now + crate::MAX_DURATION * 8);
    n.handle_timeout(later);
    while n.poll_output().is_some() {}
}

#[test]
fn a_handshake_flood_cannot_fill_the_address_book() {
    // Hundreds of inbound handshakes from as many addresses, each naming
    // its own listening port: the book takes a bounded share, and the rest
    // is counted.
    let mut net = net(1, |_, c| {
        c.outbound = 0;
        c.max_inbound = 1000;
    });
    let now = net.now();
    let body = |i: u32| {
        wire::encode(&HandshakeRequest {
            node_data: NodeData {
                my_port: 20_000 + i,
                network_id: Network::STRATA.id,
                peer_id: u64::from(i) + 1000,
                ..NodeData::default()
            },
            payload_data: CoreSyncData::default(),
        })
        .unwrap()
    };
    let flood = 500u32;
    for i in 0..flood {
        let conn = PeerId(u64::from(i) + 10);
        let remote = SocketAddr::from(([127, 1, (i >> 8) as u8, i as u8], 40_000));
        net.host_mut(0)
            .node
            .handle_connected(conn, remote, Direction::Inbound, None, now);
        net.inject(0, conn, Header::request(command::HANDSHAKE, 0), body(i));
    }
    let book = net.host(0).node.address_book().len();
    assert!(book <= 101, "the flood put {book} addresses in the book");
    let refused = net.host(0).node.stats().addresses_refused;
    assert_eq!(refused as usize + book, flood as usize);
    // Later, the rate lets a few more in.
    net.run_for(Duration::from_secs(100));
    let i = flood;
    let conn = PeerId(u64::from(i) + 10);
    let remote = SocketAddr::from(([127, 2, 0, 1], 40_000));
    let now = net.now();
    net.host_mut(0)
        .node
        .handle_connected(conn, remote, Direction::Inbound, None, now);
    net.inject(0, conn, Header::request(command::HANDSHAKE, 0), body(i));
    assert_eq!(net.host(0).node.address_book().len(), book + 1);
}

#[test]
fn two_nodes_connected_both_ways_keep_one_connection() {
    let mut net = net(2, |_, c| c.outbound = 0);
    net.connect(0, 1);
    net.connect(1, 0);
    net.settle();
    for i in 0..2 {
        assert_eq!(ready(&net, i), 1, "node {i}");
    }
    // Both kept the same one: the one the lower peer id dialed.
    let lower = if net.host(0).node.peer_id() < net.host(1).node.peer_id() {
        0
    } else {
        1
    };
    let kept = net
        .host(lower)
        .node
        .peers()
        .find(|p| p.state == State::Ready)
        .unwrap()
        .direction;
    assert_eq!(kept, Direction::Outbound);
    // A message arrives once, not once per connection.
    let now = net.now();
    net.host_mut(0)
        .node
        .propagate(Bytes::from(vec![5; 100]), now)
        .unwrap();
    net.flush(0);
    net.settle();
    assert_eq!(net.host(1).node.gossip_stats().payload_bytes_in, 100);
    assert_eq!(net.host(1).node.score(addr(0).ip()), 0, "no blame");
}

#[test]
fn a_configured_peer_connected_the_other_way_is_not_dialed_again() {
    // Each node is configured to keep the other: one connection stays,
    // whichever way, and neither keeps dialing the other.
    let mut net = net(2, |i, c| {
        c.outbound = 0;
        c.peers = vec![addr(1 - i)];
    });
    net.run_for(Duration::from_secs(10));
    let opened = net.stats().connections;
    for i in 0..2 {
        assert_eq!(ready(&net, i), 1, "node {i}");
    }
    net.run_for(Duration::from_secs(300));
    assert_eq!(net.stats().connections, opened, "redialed a peer it has");
    for i in 0..2 {
        assert_eq!(ready(&net, i), 1, "node {i}");
    }
}

#[test]
fn a_malformed_ping_gets_minus_one_like_monerods() {
    let mut net = net(1, |_, c| c.outbound = 0);
    let now = net.now();
    let b = PeerId(7);
    net.host_mut(0)
        .node
        .handle_connected(b, addr(1), Direction::Inbound, None, now);
    let garbage = Bytes::from_static(b"\x01\x11\x01\x01\x01\x01\x02\x01\x01\xff");
    net.host_mut(0).node.handle_message(
        b,
        Header {
            body_len: garbage.len() as u64,
            ..Header::request(command::PING, 0)
        },
        garbage,
        now,
    );
    let outputs = take_outputs(&mut net, 0);
    let answer = outputs
        .iter()
        .find_map(sent_header)
        .map(|(h, len)| (h.return_code, len));
    assert_eq!(answer, Some((return_code::CONNECTION, 0)));
    assert!(!outputs.iter().any(|o| matches!(o, Output::Close(_))));
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        Misbehaviour::UndecodableRequest.score()
    );
}

#[test]
fn a_key_claimed_in_plaintext_is_marked_and_ours_is_refused() {
    let keyed = |i: usize, c: &mut Config| {
        c.require_key = true;
        c.node_key = Some([i as u8 + 1; 32]);
        c.outbound = 0;
    };
    let mut net = net(2, keyed);
    let now = net.now();
    // Plaintext: node 0 claims its key, which proves nothing.
    let (a, b) = (PeerId(61), PeerId(60));
    let handshake = |net: &mut Net, claimed: [u8; 32]| {
        let mut data = net.host(0).node.node_data();
        data.strata_key = Some(claimed);
        wire::encode(&HandshakeRequest {
            node_data: data,
            payload_data: CoreSyncData::default(),
        })
        .unwrap()
    };
    net.host_mut(1)
        .node
        .handle_connected(b, addr(0), Direction::Inbound, None, now);
    let body = handshake(&mut net, [1; 32]);
    net.inject(1, b, Header::request(command::HANDSHAKE, 0), body);
    let info = net.host(1).node.peer(b).unwrap().clone();
    assert_eq!(info.state, State::Ready);
    assert_eq!(info.key, Some([1; 32]));
    assert!(!info.authenticated);
    let told = net.host(1).upper.events.iter().find_map(|e| match e {
        Event::PeerReady(p, key) if *p == b => Some(*key),
        _ => None,
    });
    assert_eq!(told, Some(None), "a claimed key is not passed up");
    // Claiming to be the node itself is refused.
    net.host_mut(1)
        .node
        .handle_connected(a, addr(0), Direction::Inbound, None, now);
    let body = handshake(&mut net, [2; 32]);
    net.inject(1, a, Header::request(command::HANDSHAKE, 0), body);
    assert!(
        net.host(1)
            .node
            .peer(a)
            .is_none_or(|p| p.state != State::Ready)
    );
    // Over TLS (the harness authenticates keys as TLS would) it is.
    let mut net = self::net(2, keyed);
    let (x, _) = net.connect(0, 1);
    net.settle();
    let info = net.host(0).node.peer(x).unwrap();
    assert!(info.authenticated);
    assert_eq!(info.key, Some([2; 32]));
}

#[test]
fn a_swarm_of_addresses_in_one_subnet_is_banned_whole() {
    let public = |i: usize| SocketAddr::from(([9, 8, u8::try_from(i).unwrap(), 1], 7710));
    let mut net = net_at(1, |_, c| c.outbound = 0, public, Grouping::default());
    let threshold = net.host(0).node.config.ban_threshold;
    // Addresses of one /24, each misbehaving once, each under the ban
    // threshold on its own.
    let per_address = Misbehaviour::Undecodable.score();
    assert!(per_address <= threshold);
    let needed = (threshold * SUBNET_BAN_FACTOR) / per_address + 1;
    for i in 0..needed {
        let conn = PeerId(u64::from(i) + 100);
        let remote = SocketAddr::from(([8, 8, 8, u8::try_from(i + 1).unwrap()], 40_000));
        let now = net.now();
        net.host_mut(0)
            .node
            .handle_connected(conn, remote, Direction::Inbound, None, now);
        net.inject(
            0,
            conn,
            Header::request(command::HANDSHAKE, 0),
            Bytes::from_static(b"\x01\x11\x01\x01\x01\x01\x02\x01\x01\xff"),
        );
        assert!(net.host(0).bans.is_empty(), "address {i} banned alone");
    }
    let banned = &net.host(0).subnet_bans;
    assert_eq!(banned.len(), 1, "{banned:?}");
    assert_eq!(
        (banned[0].0, banned[0].1),
        (
            "8.8.8.0".parse().unwrap(),
            crate::netgroup::SUBNET_V4_PREFIX
        )
    );
    assert_eq!(net.host(0).node.stats().subnet_bans, 1);
    // Another network is not touched.
    let now = net.now();
    let other = SocketAddr::from(([9, 9, 9, 9], 40_000));
    net.host_mut(0)
        .node
        .handle_connected(PeerId(7), other, Direction::Inbound, None, now);
    assert_eq!(net.host(0).node.score(other.ip()), 0);
}

#[test]
fn the_address_book_is_saved_a_minute_after_start_then_every_quarter_hour() {
    let now = Instant::now();
    let mut n = node(1, config(), LOCAL, now);
    let saved_at = |n: &mut Node<CoreSyncData>, secs: u64| {
        n.handle_timeout(now + Duration::from_secs(secs));
        std::iter::from_fn(|| n.poll_output()).any(|o| matches!(o, Output::SaveAddressBook))
    };
    assert!(!saved_at(&mut n, 59));
    assert!(
        saved_at(&mut n, 60),
        "a node killed early keeps what it learned"
    );
    assert!(!saved_at(&mut n, 60 + 899));
    assert!(saved_at(&mut n, 60 + 900));
}

#[test]
fn inbound_peers_that_connect_and_hang_up_do_not_make_the_node_redraw_its_slots() {
    // A check of the outbound slots draws many candidates from the book.
    // Inbound connections that open and close as fast as they can must not
    // each ask for one; an outbound peer closing may, but no sooner than
    // the spacing after the last check.
    let now = Instant::now();
    let mut n = node(0, config(), Grouping::default(), now);
    let book: Vec<SocketAddr> = (0..60).map(|i| spread(i, 30)).collect();
    n.add_addresses(&book, IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)), now);
    n.handle_timeout(now);
    let dialed: Vec<SocketAddr> = std::iter::from_fn(|| n.poll_output())
        .filter_map(|o| match o {
            Output::Dial { addr, .. } => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(dialed.len(), 3, "the three slots dialed");
    let next = n.poll_timeout().unwrap();
    assert!(next > now, "nothing is due right after a check");

    let soon = now + Duration::from_millis(1);
    for i in 0..500u64 {
        let remote = SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 40_000));
        n.handle_connected(PeerId(100 + i), remote, Direction::Inbound, None, soon);
        n.handle_closed(PeerId(100 + i), soon);
    }
    assert_eq!(
        n.poll_timeout(),
        Some(next),
        "inbound peers hanging up pulled the next check in"
    );

    // An outbound peer closing does ask for a check, after the spacing.
    n.handle_connected(PeerId(1), dialed[0], Direction::Outbound, None, soon);
    n.handle_closed(PeerId(1), soon);
    let due = n.poll_timeout().unwrap();
    assert_eq!(due, now + crate::connectivity::CONNECT_SPACING);
}

#[test]
fn a_message_that_comes_before_what_it_depends_on_is_delivered_after_it_everywhere() {
    // A line: 0 - 1 - 2.
    let mut net = net(3, |_, c| c.outbound = 0);
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    // The first is large, so announced and fetched; the second, small,
    // pushed at once: it arrives first.
    let first = Bytes::from(vec![7u8; 4000]);
    let now = net.now();
    let first_id = net.host_mut(0).node.propagate(first, now).unwrap();
    let second = net
        .host_mut(0)
        .node
        .propagate_after(Bytes::from_static(b"its confirmation"), vec![first_id], now)
        .unwrap();
    assert_eq!(
        second,
        MessageId::of_message(b"its confirmation", &[first_id])
    );
    net.flush(0);
    net.run_for(Duration::from_secs(1));
    for i in [1, 2] {
        let delivered = &net.host(i).upper.delivered;
        assert_eq!(delivered.as_slice(), [first_id, second], "node {i}");
        assert!(net.host(i).node.gossip_stats().waited >= 1, "node {i}");
    }
    // What was asked for came: nobody is blamed.
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.host(1).node.score(addr(0).ip()), 0);
    assert_eq!(net.host(2).node.score(addr(1).ip()), 0);

    // A node does not publish what depends on a message it cannot serve.
    let never = MessageId::of(b"never");
    assert_eq!(
        net.host_mut(0)
            .node
            .propagate_after(Bytes::from_static(b"orphan"), vec![never], now),
        Err(PropagateError::UnknownDependency { id: never })
    );
    assert_eq!(
        net.host_mut(0).node.propagate_after(
            Bytes::from_static(b"x"),
            vec![first_id; crate::wire::MAX_DEPS + 1],
            now
        ),
        Err(PropagateError::TooManyDependencies {
            count: crate::wire::MAX_DEPS + 1,
            max: crate::wire::MAX_DEPS
        })
    );
}

#[test]
fn a_burst_of_messages_whose_dependencies_never_come_bans_its_sender_however_the_timers_fall() {
    let mut net = net(2, |_, c| c.outbound = 0);
    let (_, b) = net.connect(0, 1);
    net.settle();
    assert_eq!(ready(&net, 1), 1);
    // Node 0 sends 48 messages, each depending on one it does not have.
    // Their fetches time out in one timer round: one report per eight
    // unserved dependencies, six of 2 points, passes the threshold of 10.
    for i in 0..48u32 {
        let ghost = MessageId::of(format!("ghost {i}").as_bytes());
        let body = wire::encode(&wire::GossipMessage {
            payload: Bytes::from(format!("orphan {i}")),
            deps: MessageId::list_bytes(&[ghost]),
        })
        .unwrap();
        net.inject(1, b, Header::notification(command::GOSSIP_MESSAGE, 0), body);
    }
    assert!(net.host(1).bans.is_empty());
    assert_eq!(net.host(1).node.score(addr(0).ip()), 0);
    net.run_for(Duration::from_secs(40));
    let bans: Vec<IpAddr> = net.host(1).bans.iter().map(|(ip, _)| *ip).collect();
    assert_eq!(bans, vec![addr(0).ip()]);
    assert_eq!(net.host(1).node.gossip_stats().deps_unserved, 48);
}

#[test]
fn a_key_proved_to_a_peer_is_introduced_to_others_and_pinned_when_they_dial() {
    let keyed = |i: usize, c: &mut Config| {
        c.node_key = Some([i as u8 + 1; 32]);
        c.outbound = if i == 2 { 2 } else { 0 };
        c.fast_slots = 0;
    };
    let mut net = net(3, keyed);
    // Node 0 dials 1 and so proves 1's key; node 2 then dials 0, and 0's
    // peer list names 1 with that key.
    net.connect(0, 1);
    net.settle();
    assert_eq!(net.host(0).node.keys.proved(&addr(1)), Some([2; 32]));
    let now = net.now();
    net.host_mut(2)
        .node
        .add_addresses(&[addr(0)], addr(0).ip(), now);
    net.flush(2);
    assert!(
        net.run_while(Duration::from_secs(120), |n| outbound(n, 2)
            .iter()
            .any(|p| p.remote == addr(1))),
        "node 2 to reach node 1"
    );
    let to_one = outbound(&net, 2)
        .into_iter()
        .find(|p| p.remote == addr(1))
        .unwrap()
        .clone();
    assert!(
        to_one.pinned,
        "the dial to node 1 pinned the key node 0 introduced"
    );
    assert_eq!(to_one.key, Some([2; 32]));
    let to_zero = outbound(&net, 2)
        .into_iter()
        .find(|p| p.remote == addr(0))
        .unwrap()
        .clone();
    assert!(!to_zero.pinned, "nobody introduced node 0's key");
    assert_eq!(net.host(2).node.stats().wrong_keys, 0);
}

#[test]
fn an_address_that_proves_another_key_than_introduced_is_not_tried_under_it_and_scores_the_introducer()
 {
    let keyed = |i: usize, c: &mut Config| {
        c.node_key = Some([i as u8 + 1; 32]);
        c.outbound = if i == 2 { 1 } else { 0 };
        c.fast_slots = 0;
    };
    let mut net = net(4, keyed);
    let now = net.now();
    // Node 0 (not connected to node 2) told node 2 a wrong key for node 3.
    let liar = addr(0).ip();
    net.host_mut(2).node.keys.introduce(addr(3), [99; 32], liar);
    net.host_mut(2)
        .node
        .add_addresses(&[addr(3)], addr(0).ip(), now);
    net.flush(2);
    assert!(
        net.run_while(Duration::from_secs(300), |n| outbound(n, 2)
            .iter()
            .any(|p| p.remote == addr(3))),
        "node 2 to reach node 3"
    );
    let node = &net.host(2).node;
    assert_eq!(node.stats().wrong_keys, 1);
    assert_eq!(node.score(liar), Misbehaviour::WrongIntroduction.score());
    // Reached without the wrong key; the key it proved is kept.
    assert_eq!(node.keys.proved(&addr(3)), Some([4; 32]));
    let to_three = outbound(&net, 2)
        .into_iter()
        .find(|p| p.remote == addr(3))
        .unwrap()
        .clone();
    assert!(!to_three.pinned);
}
