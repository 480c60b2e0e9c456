//! The simulator's tests: determinism, gossip in both modes, every fault
//! and every attacker, on small networks of real nodes.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use strata_sim::{Error, LatencyModel, Network, Params};

fn params(nodes: usize, seed: u64) -> Params {
    let mut p = Params::new(nodes);
    p.seed = seed;
    p
}

fn net(nodes: usize, seed: u64) -> Network {
    Network::new(params(nodes, seed)).unwrap()
}

/// A run with every kind of event: publishers, a partition, churn, an
/// attacker.
fn busy_run(seed: u64) -> (u64, u64) {
    let mut n = net(30, seed);
    n.add_publisher(0.5, 200, false).unwrap();
    n.add_publisher(0.2, 64, true).unwrap();
    n.set_churn(2.0, 20.0, 0.5).unwrap();
    n.partition_at(20.0, 0.3).unwrap();
    n.heal_at(40.0).unwrap();
    n.add_eclipse(100, 2, &[0, 1], 1.0, 100).unwrap();
    n.run_until(60.0).unwrap();
    (n.trace_hash(), n.stats().events)
}

#[test]
fn the_same_scenario_and_seed_give_the_same_trace_and_another_seed_another() {
    let (a, events) = busy_run(7);
    assert!(events > 10_000, "only {events} events");
    assert_eq!(busy_run(7).0, a);
    assert_ne!(busy_run(8).0, a);
}

fn spread(push_threshold: usize) -> (usize, u64, u64) {
    let mut p = params(30, 2);
    p.push_threshold = push_threshold;
    let mut n = Network::new(p).unwrap();
    n.run_until(20.0).unwrap();
    for k in 0..5u8 {
        n.inject(usize::from(k), &[2, k, 9, 9, 9, 9, 9, 9]).unwrap();
    }
    n.run_until(30.0).unwrap();
    let rows = n.node_rows();
    let reached = n.metrics().deliveries.node.len();
    let dup: u64 = rows.iter().map(|r| r.duplicates).sum();
    let bytes: u64 = rows.iter().map(|r| r.payload_bytes_in).sum();
    (reached, dup, bytes)
}

#[test]
fn gossip_reaches_every_node_pushed_and_asked_for_and_asking_sends_fewer_payloads() {
    let (pushed, push_dups, push_bytes) = spread(usize::MAX);
    let (asked, _, ask_bytes) = spread(0);
    // Five messages, each to the 29 other nodes.
    assert_eq!(pushed, 5 * 29);
    assert_eq!(asked, 5 * 29);
    assert!(push_dups > 0);
    // Ask-then-send receives each payload at least once per node, and far
    // fewer times than push (with world latencies some requests outlast
    // the node's 250 ms deferral, and a second announcer is asked).
    assert!(ask_bytes >= 5 * 29 * 8);
    assert!(push_bytes > 2 * ask_bytes, "{push_bytes} vs {ask_bytes}");
}

#[test]
fn hops_count_from_the_origin() {
    let mut n = net(30, 4);
    n.run_until(20.0).unwrap();
    n.inject(3, &[2, 1, 2, 3]).unwrap();
    n.run_until(25.0).unwrap();
    let m = n.metrics();
    assert!(m.deliveries.hops.iter().all(|&h| (1..10).contains(&h)));
    assert!(m.deliveries.hops.contains(&1));
}

#[test]
fn stores_converge_after_a_partition_heals() {
    let mut n = net(30, 5);
    n.partition_at(20.0, 0.5).unwrap();
    n.add_publisher(0.5, 64, true).unwrap();
    n.heal_at(80.0).unwrap();
    n.run_until(80.0).unwrap();
    let split = n.metrics().convergence.distinct.last().copied().unwrap();
    assert!(
        split > 1,
        "a partition with records published on both sides splits the stores"
    );
    n.run_until(200.0).unwrap();
    // Publishing goes on; the stores agree between publications at most
    // one reconciliation apart.
    let c = &n.metrics().convergence;
    let after: Vec<f64> =
        c.at.iter()
            .zip(&c.agree)
            .filter(|(t, _)| **t > 150_000_000_000)
            .map(|(_, a)| *a)
            .collect();
    assert!(
        after.iter().any(|a| *a > 0.95),
        "never converged after the heal: {after:?}"
    );
}

#[test]
fn crashed_and_departed_nodes_come_back_and_new_nodes_join() {
    let mut n = net(20, 6);
    n.run_until(20.0).unwrap();
    n.crash_at(25.0, 1).unwrap();
    n.leave_at(25.0, 2).unwrap();
    n.restart_at(40.0, 1).unwrap();
    n.restart_at(40.0, 2).unwrap();
    n.join_at(30.0, 5).unwrap();
    n.run_until(30.0).unwrap();
    let rows = n.node_rows();
    assert!(!rows[1].up && !rows[2].up);
    n.run_until(80.0).unwrap();
    let rows = n.node_rows();
    assert_eq!(rows.len(), 25);
    assert!(rows.iter().all(|r| r.up));
    assert!(rows.iter().all(|r| r.outbound > 0), "every node has peers");
    let c = n.counters();
    assert_eq!((c.crashes, c.leaves, c.restarts, c.joins), (1, 1, 2, 5));
}

#[test]
fn an_eclipse_attacker_holds_at_most_one_outbound_slot_per_subnet_of_a_restarted_victim() {
    let mut n = net(40, 7);
    n.run_until(30.0).unwrap();
    let a = n.add_eclipse(2000, 2, &[0, 1], 0.2, 500).unwrap();
    n.run_until(300.0).unwrap();
    n.leave_at(300.0, 0).unwrap();
    n.restart_at(310.0, 0).unwrap();
    n.run_until(400.0).unwrap();
    let m = n.metrics();
    let s = &m.shares;
    assert!(!s.at.is_empty());
    assert!(s.attacker.iter().all(|&k| k <= 2), "{:?}", s.attacker);
    // It does take inbound slots.
    assert!(s.attacker_inbound.iter().any(|&k| k > 10));
    drop(m);
    // The victim still takes messages from honest peers.
    n.inject(5, &[2, 5, 5]).unwrap();
    n.run_until(410.0).unwrap();
    let m = n.metrics();
    let got: Vec<u32> = m.deliveries.node.clone();
    assert!(got.contains(&0) && got.contains(&1));
    assert_eq!(n.attackers()[a].addresses, 2000);
}

#[test]
fn a_sybil_swarm_fills_inbound_slots_and_the_victim_still_gets_every_message() {
    let mut p = params(30, 8);
    p.max_inbound = 16;
    let mut n = Network::new(p).unwrap();
    n.run_until(20.0).unwrap();
    n.add_sybils(40, 2, &[4]).unwrap();
    n.run_until(80.0).unwrap();
    let m = n.metrics();
    let inbound_taken = m.shares.attacker_inbound.iter().copied().max().unwrap();
    assert!(
        inbound_taken >= 4,
        "sybils took {inbound_taken} inbound slots"
    );
    drop(m);
    let rows = n.node_rows();
    assert!(rows[4].inbound <= 16 + 1);
    n.inject(9, &[2, 7, 7]).unwrap();
    n.run_until(90.0).unwrap();
    assert!(n.metrics().deliveries.node.contains(&4));
}

#[test]
fn a_catch_up_liar_serving_junk_is_banned_and_its_victims_still_get_records() {
    let mut n = net(20, 9);
    n.run_until(20.0).unwrap();
    let liar = n.add_liar(&[0, 1], 1_000_000_000, true).unwrap();
    n.run_until(200.0).unwrap();
    for v in [0, 1] {
        let (_, banned) = n.attacker_standing(v, liar).unwrap();
        assert!(banned, "victim {v} did not ban the liar");
        assert!(!n.connected_to_attacker(v, liar).unwrap());
    }
    n.put_record(5, b"k", b"v", None).unwrap();
    n.run_until(220.0).unwrap();
    let rows = n.node_rows();
    assert_eq!(rows[0].records, 1);
    assert_eq!(rows[1].records, 1);
}

/// A liar that claims a huge record count and then serves nothing is not
/// scored (a timeout is not misbehaviour), but its stalls are strikes: its
/// victims stop asking it, their catch-up stops for want of a source, and
/// they reconcile again, so records reach them by every path.
#[test]
fn a_silent_catch_up_liar_is_dropped_as_a_source_and_its_victims_reconcile_again() {
    let mut n = net(20, 10);
    n.run_until(20.0).unwrap();
    let liar = n.add_liar(&[0, 1], 1_000_000_000, false).unwrap();
    n.run_until(200.0).unwrap();
    let rows = n.node_rows();
    assert!(!rows[0].catching_up && !rows[1].catching_up);
    assert!(n.connected_to_attacker(0, liar).unwrap());
    assert_eq!(n.attacker_standing(0, liar).unwrap(), (0, false));
    n.put_record(5, b"k", b"v", None).unwrap();
    n.run_until(210.0).unwrap();
    let rows = n.node_rows();
    assert_eq!(rows[0].records, rows[5].records);
}

#[test]
fn a_spammer_of_invalid_records_is_banned_by_its_peers() {
    let mut n = net(20, 11);
    let spam = n.add_spammer(1.0, 32).unwrap();
    n.run_until(120.0).unwrap();
    let banned = (0..20)
        .filter(|&i| n.attacker_standing(i, spam).unwrap().1)
        .count();
    assert!(banned >= 4, "only {banned} nodes banned the spammer");
    // Nothing it sent was stored anywhere.
    assert!(n.node_rows().iter().all(|r| r.records == 0));
}

#[test]
fn a_peer_that_never_reads_is_closed_by_write_stalls_and_timeouts() {
    let mut n = net(20, 12);
    n.run_until(20.0).unwrap();
    let deaf = n.add_deaf(&[0], 300.0).unwrap();
    n.run_until(30.0).unwrap();
    assert!(n.connected_to_attacker(0, deaf).unwrap());
    // What the victim sends it waits unread; the write stalls and the
    // victim's side closes the connection after the socket layer's
    // timeout.
    n.run_until(200.0).unwrap();
    assert!(n.stats().stalled > 0);
    assert!(!n.connected_to_attacker(0, deaf).unwrap());
    n.inject(3, &[2, 3, 3]).unwrap();
    n.run_until(210.0).unwrap();
    assert!(n.metrics().deliveries.node.contains(&0));
}

#[test]
fn bandwidth_loss_and_latency_models_shape_delivery() {
    let mut p = params(20, 13);
    p.latency = LatencyModel::Uniform {
        min_ms: 100.0,
        max_ms: 100.0,
    };
    p.jitter = 0.0;
    p.bandwidth = 100_000;
    p.loss = 0.01;
    let mut n = Network::new(p).unwrap();
    n.run_until(30.0).unwrap();
    n.inject(0, &[2; 50_000]).unwrap();
    n.run_until(60.0).unwrap();
    let m = n.metrics();
    let first = m.deliveries.at.iter().min().copied().unwrap();
    let sent = m.messages[0].at;
    // At least one link's latency plus 50 KB at 100 KB/s.
    assert!(first - sent >= 600_000_000, "{}", first - sent);
    assert!(n.stats().lost > 0);
}

#[test]
fn bad_parameters_are_errors_that_name_them() {
    let cases: Vec<(&str, Params)> = vec![
        ("nodes", params(0, 1)),
        (
            "jitter",
            Params {
                jitter: f64::NAN,
                ..params(5, 1)
            },
        ),
        (
            "loss",
            Params {
                loss: 2.0,
                ..params(5, 1)
            },
        ),
        (
            "fast_slots",
            Params {
                fast_slots: 9,
                ..params(5, 1)
            },
        ),
        (
            "sketch_len",
            Params {
                sketch_len: 1,
                ..params(5, 1)
            },
        ),
        (
            "timed_sync_interval",
            Params {
                timed_sync_interval: -1.0,
                ..params(5, 1)
            },
        ),
    ];
    for (name, p) in cases {
        match Network::new(p) {
            Err(Error::Param { name: got, .. }) => assert_eq!(got, name),
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name} was accepted"),
        }
    }
    let mut n = net(5, 1);
    assert!(matches!(
        n.run_until(f64::INFINITY),
        Err(Error::Param { name: "at", .. })
    ));
    n.run_until(5.0).unwrap();
    assert!(matches!(n.run_until(1.0), Err(Error::Past { .. })));
    assert!(matches!(
        n.inject(99, b"x"),
        Err(Error::NoNode { index: 99, .. })
    ));
    assert!(matches!(
        n.add_publisher(-1.0, 10, false),
        Err(Error::Param { name: "rate", .. })
    ));
    assert!(matches!(
        n.add_eclipse(100_000, 1, &[0], 1.0, 10),
        Err(Error::Param {
            name: "addresses",
            ..
        })
    ));
    assert!(matches!(
        n.add_eclipse(10, 1, &[7], 1.0, 10),
        Err(Error::NoNode { index: 7, .. })
    ));
}

#[test]
fn records_that_expire_and_deletions_are_collected_by_every_node_at_their_time() {
    let mut n = net(20, 13);
    n.run_until(20.0).unwrap();
    n.put_record(3, b"brief", b"v", Some(30.0)).unwrap();
    n.put_record(3, b"doomed", b"v", None).unwrap();
    n.run_until(30.0).unwrap();
    assert!(n.node_rows().iter().all(|r| r.records == 2));
    // The tombstone replaces the value: still two records everywhere.
    n.delete_record(3, b"doomed", 60.0).unwrap();
    n.run_until(45.0).unwrap();
    assert!(n.node_rows().iter().all(|r| r.records == 2));
    n.run_until(60.0).unwrap();
    let rows = n.node_rows();
    assert!(rows.iter().all(|r| r.records == 1 && r.collected == 1));
    n.run_until(100.0).unwrap();
    let rows = n.node_rows();
    assert!(rows.iter().all(|r| r.records == 0 && r.collected == 2));
    assert!(n.delete_record(3, b"doomed", 0.5).is_err());
    assert!(n.put_record(3, b"k", b"v", Some(f64::NAN)).is_err());
}

#[test]
fn a_small_message_published_right_after_a_large_one_it_depends_on_is_delivered_after_it() {
    let mut n = net(20, 14);
    n.run_until(20.0).unwrap();
    let mut pairs = Vec::new();
    for k in 0..10u8 {
        // The first is large, so announced and asked for; the second,
        // small, is pushed at once and travels ahead of it.
        let mut large = vec![2, k, 1];
        large.resize(3000, 0);
        let first = n.inject(usize::from(k), &large).unwrap();
        let second = n
            .inject_after(usize::from(k), &[2, k, 2], &[first])
            .unwrap();
        pairs.push((first, second));
    }
    n.run_until(40.0).unwrap();
    let m = n.metrics();
    let d = &m.deliveries;
    let when = |message: u32, node: u32| {
        (0..d.message.len())
            .find(|&i| d.message[i] == message && d.node[i] == node)
            .map(|i| d.at[i])
    };
    for (first, second) in pairs {
        for node in 0..20u32 {
            let (a, b) = (when(first, node), when(second, node));
            // Each reached every node but its own origin.
            if let (Some(a), Some(b)) = (a, b) {
                assert!(a <= b, "node {node}: {second} at {b} before {first} at {a}");
            }
        }
        let reached = (0..20u32).filter(|&v| when(second, v).is_some()).count();
        assert!(reached >= 19, "message {second} reached {reached} nodes");
    }
    drop(m);
    assert!(n.inject_after(0, &[2, 0], &[9_999]).is_err());
}
