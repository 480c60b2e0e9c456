//! Networks of strata nodes on 127.0.0.1.

use std::collections::HashSet;

use bytes::Bytes;
use strata_io::Clock;
use strata_node::driver::{self, ANCHORS_FILE, CommandError, PEERS_FILE};
use strata_node::wire::CoreSyncData;
use strata_node::{DialKind, Event, MessageId, PropagateError};
use strata_tls::{NodeKey, Policy, Tls};

use crate::{TestNode, settings, start, until, within};

/// Starts `n` nodes; node 0 is the seed of the others.
async fn network(n: usize) -> Vec<TestNode> {
    let first = start(settings(Vec::new(), None)).await;
    let seed = first.addr;
    let mut nodes = vec![first];
    for _ in 1..n {
        let mut s = settings(Vec::new(), None);
        s.node.seeds = vec![seed];
        nodes.push(start(s).await);
    }
    nodes
}

async fn wait_connected(nodes: &[&TestNode], min: usize) {
    for (i, node) in nodes.iter().enumerate() {
        until(60, &format!("node {i} to have {min} peers"), || async {
            node.ready_peers().await >= min
        })
        .await;
    }
}

/// Publishes `payload` from node `from` and waits until every other node
/// has it. A node between connections (its seed and feeler connections
/// closed, its next dial not yet answered) has no peer to publish to: it
/// refuses with `NoPeers`, and the message is published once it has one.
async fn publish_and_check(nodes: &[&TestNode], from: usize, payload: Bytes) -> MessageId {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let id = loop {
        match nodes[from].handle.propagate(payload.clone()).await {
            Ok(id) => break id,
            Err(CommandError::Propagate(PropagateError::NoPeers)) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {from} never had a peer to publish to"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("node {from} refused to publish: {e}"),
        }
    };
    for (i, node) in nodes.iter().enumerate() {
        if i == from {
            continue;
        }
        until(60, &format!("node {i} to receive {id}"), || async {
            node.got(&id) > 0
        })
        .await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_deliver_each_message_once_and_survive_losing_30_percent() {
    within(240, async {
        let nodes = network(20).await;
        let all: Vec<&TestNode> = nodes.iter().collect();
        wait_connected(&all, 2).await;

        // Small messages are pushed, large ones announced and asked for.
        let mut ids = Vec::new();
        for k in 0..10u8 {
            let size = if k % 2 == 0 { 200 } else { 5000 };
            let from = usize::from(k) * 7 % 20;
            ids.push(publish_and_check(&all, from, Bytes::from(vec![k; size])).await);
        }

        // Kill a random 30 % of the nodes at once (the seed is printed to
        // replay a failure).
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        println!("nodes to kill chosen with seed {seed}");
        let mut rng = strata_node::rng::Rng::new(seed);
        let mut order: Vec<usize> = (0..20).collect();
        rng.shuffle(&mut order);
        let stopped: HashSet<usize> = order[..6].iter().copied().collect();
        let mut nodes = nodes;
        for i in &stopped {
            nodes[*i].kill();
        }
        let alive: Vec<&TestNode> = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !stopped.contains(i))
            .map(|(_, n)| n)
            .collect();
        wait_connected(&alive, 2).await;
        for k in 10..16u8 {
            let from = usize::from(k) % alive.len();
            ids.push(publish_and_check(&alive, from, Bytes::from(vec![k; 3000])).await);
        }

        // Exactly once everywhere (the publisher's handler sees none).
        for (i, node) in nodes.iter().enumerate() {
            let received = node.received.lock().unwrap().clone();
            let unique: HashSet<&MessageId> = received.iter().collect();
            assert_eq!(unique.len(), received.len(), "node {i} saw a message twice");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_reconnects_from_its_peers_dat_and_anchors() {
    within(120, async {
        let dir = tempfile::tempdir().unwrap();
        let nodes = network(5).await;
        let mut s = settings(Vec::new(), Some(dir.path().to_path_buf()));
        s.node.seeds = vec![nodes[0].addr];
        let node = start(s).await;
        // Two full outbound peers up (the seed connection does not count),
        // so two tried addresses and anchors to save.
        until(60, "two outbound peers", || async {
            let peers = node.handle.peers().await.unwrap();
            let full = peers
                .iter()
                .filter(|p| {
                    p.info.state == strata_node::State::Ready
                        && matches!(
                            p.info.kind,
                            Some(DialKind::Outbound | DialKind::Fast | DialKind::Anchor)
                        )
                })
                .count();
            full >= 2 && node.handle.address_book().await.unwrap().tried >= 2
        })
        .await;
        node.handle.shutdown().await.unwrap();
        assert!(dir.path().join(PEERS_FILE).exists());
        assert!(dir.path().join(ANCHORS_FILE).exists());

        // No seed, no configured peer: only the files lead back.
        let node = start(settings(Vec::new(), Some(dir.path().to_path_buf()))).await;
        assert!(
            !dir.path().join(ANCHORS_FILE).exists(),
            "anchors.dat is deleted when read"
        );
        let book = node.handle.address_book().await.unwrap();
        assert!(book.tried >= 2, "the book came back: {book:?}");
        until(30, "reconnection", || async {
            node.ready_peers().await >= 2
        })
        .await;
        node.handle.shutdown().await.unwrap();
        for n in &nodes {
            n.handle.shutdown().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_peers_dat_is_moved_aside() {
    within(30, async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PEERS_FILE), b"not an address book").unwrap();
        let node = start(settings(Vec::new(), Some(dir.path().to_path_buf()))).await;
        let book = node.handle.address_book().await.unwrap();
        assert_eq!((book.new, book.tried), (0, 0));
        assert!(dir.path().join(format!("{PEERS_FILE}.corrupt")).exists());
        node.handle.shutdown().await.unwrap();
        assert!(
            dir.path().join(PEERS_FILE).exists(),
            "a fresh book is saved"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_handshake_key_is_the_authenticated_key() {
    within(30, async {
        let keys = [NodeKey::generate().unwrap(), NodeKey::generate().unwrap()];
        let mut nodes = Vec::new();
        for key in &keys {
            let peers = nodes
                .first()
                .map(|n: &TestNode| vec![n.addr])
                .unwrap_or_default();
            let mut s = settings(peers, None);
            s.tls = Some(Tls::new(key, None).unwrap());
            s.conn.inbound_tls = Policy::Required;
            s.conn.outbound_tls = Policy::Required;
            s.node.require_key = true;
            s.node.node_key = Some(key.public().0);
            nodes.push(start(s).await);
        }
        until(20, "the TLS handshake", || async {
            nodes[1].ready_peers().await == 1
        })
        .await;
        let peers = nodes[1].handle.peers().await.unwrap();
        assert_eq!(peers[0].info.key, Some(keys[0].public().0));
        let peers = nodes[0].handle.peers().await.unwrap();
        assert_eq!(peers[0].info.key, Some(keys[1].public().0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_prove_its_pinned_key_is_not_connected() {
    within(60, async {
        let keys: Vec<NodeKey> = (0..3).map(|_| NodeKey::generate().unwrap()).collect();
        let tls = |s: &mut driver::Settings, key: &NodeKey| {
            s.tls = Some(Tls::new(key, None).unwrap());
            s.conn.inbound_tls = Policy::Optional;
            s.conn.outbound_tls = Policy::Optional;
            s.node.node_key = Some(key.public().0);
        };
        let mut s = settings(Vec::new(), None);
        tls(&mut s, &keys[0]);
        let target = start(s).await;
        // One dialer pins the target's real key, the other a key the target
        // does not hold.
        let mut dialers = Vec::new();
        for pin in [keys[0].public().0, keys[2].public().0] {
            let mut s = settings(Vec::new(), None);
            tls(&mut s, &keys[1]);
            s.node.exclusive = vec![target.addr];
            s.node.pinned.insert(target.addr, pin);
            dialers.push(start(s).await);
        }
        until(20, "the dial with the right key", || async {
            dialers[0].ready_peers().await == 1
        })
        .await;
        until(30, "two dials with the wrong key to fail", || async {
            dialers[1].handle.counters().await.unwrap().dials_failed >= 2
        })
        .await;
        assert_eq!(dialers[1].ready_peers().await, 0);
        let peers = dialers[0].handle.peers().await.unwrap();
        assert_eq!(peers[0].info.key, Some(keys[0].public().0));
        assert!(peers[0].info.authenticated);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_above_that_falls_behind_delays_events_but_loses_none() {
    within(60, async {
        // The node's events go nowhere until the test reads them: a queue
        // of two, unread while ten peers come and go.
        let mut s = settings(Vec::new(), None);
        s.event_queue = 2;
        let mut node = driver::start(s, CoreSyncData::default(), Clock::real())
            .await
            .unwrap();
        let addr = node.listening[0];
        let mut peers = Vec::new();
        for _ in 0..10 {
            let mut s = settings(Vec::new(), None);
            s.node.exclusive = vec![addr];
            peers.push(start(s).await);
        }
        for (i, peer) in peers.iter().enumerate() {
            until(20, &format!("peer {i} to connect"), || async {
                !peer.handle.peers().await.unwrap_or_default().is_empty()
            })
            .await;
        }
        for peer in &mut peers {
            peer.kill();
        }
        // Every peer that became ready is reported gone, after it.
        let mut ready = HashSet::new();
        let mut gone = 0;
        while gone < 10 {
            match node.events.recv().await.unwrap() {
                Event::PeerReady(p, _) => assert!(ready.insert(p)),
                Event::PeerGone(p) => {
                    assert!(ready.contains(&p), "gone before ready");
                    gone += 1;
                }
                _ => {}
            }
        }
        assert_eq!(ready.len(), 10);
        node.handle.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_counts_traffic_per_class_and_connections_and_disconnects_on_request() {
    within(60, async {
        let a = start(settings(Vec::new(), None)).await;
        let b = start(settings(vec![a.addr], None)).await;
        wait_connected(&[&a, &b], 1).await;
        publish_and_check(&[&a, &b], 0, Bytes::from_static(b"counted")).await;

        // Handshakes and pings went as control frames, the message as relay.
        let peers = a.handle.peers().await.unwrap();
        let peer = &peers[0];
        assert!(peer.classes[0].frames_out > 0 && peer.classes[0].bytes_out > 0);
        assert!(peer.classes[1].frames_out > 0, "{:?}", peer.classes);
        assert_eq!(
            peer.bytes_out,
            peer.classes.iter().map(|c| c.bytes_out).sum::<u64>()
        );
        assert!(peer.frames_in > 0 && peer.bytes_in > 0);
        assert_eq!(peer.score, 0);
        let before = a.handle.counters().await.unwrap();
        assert_eq!(before.opened.iter().sum::<u64>(), 1, "{before:?}");
        assert_eq!(before.closed, 0);
        assert!(before.traffic.bytes_out[1] >= peer.classes[1].bytes_out);

        // Disconnected on request; the traffic of the closed connection
        // still counts.
        assert!(a.handle.disconnect(peer.info.id).await.unwrap());
        until(20, "the connection to close", || async {
            a.handle.counters().await.unwrap().closed == 1
        })
        .await;
        let after = a.handle.counters().await.unwrap();
        assert!(after.traffic.bytes_in >= before.traffic.bytes_in);
        assert!(after.traffic.frames_out[1] >= before.traffic.frames_out[1]);
        assert!(
            !a.handle
                .disconnect(strata_node::PeerId(u64::MAX))
                .await
                .unwrap()
        );
        // b keeps a as a peer to stay connected to: it dials again.
        until(30, "b to reconnect", || async {
            a.handle
                .counters()
                .await
                .unwrap()
                .opened
                .iter()
                .sum::<u64>()
                == 2
        })
        .await;
    })
    .await;
}
