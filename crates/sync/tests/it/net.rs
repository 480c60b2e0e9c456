//! Nodes on loopback: convergence, a healed partition, tampered records,
//! delivery receipts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_io::Clock;
use strata_node::driver;
use strata_node::{Config as NodeConfig, Network};
use strata_store::{Draft, Durability, Record};
use strata_sync::Event;
use strata_sync::key_set;
use strata_sync::wire::gossip_payload;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_converge() {
    bounded(Duration::from_secs(60), async {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        // Records written before the nodes start, different on each.
        for (i, store) in stores.iter().enumerate() {
            store
                .put_batch(&records(u8::try_from(i).unwrap() + 1, "pre", 15))
                .unwrap();
        }
        let a = start(stores[0].clone(), sync_config(10), vec![]).await;
        let b = start(stores[1].clone(), sync_config(11), vec![a.listening[0]]).await;
        let c = start(stores[2].clone(), sync_config(12), vec![b.listening[0]]).await;
        let d = start(
            stores[3].clone(),
            sync_config(13),
            vec![a.listening[0], c.listening[0]],
        )
        .await;
        // And records put while they run, on every node.
        for (i, node) in [&a, &b, &c, &d].into_iter().enumerate() {
            for r in records(u8::try_from(i).unwrap() + 20, "live", 5) {
                node.handle.insert(r).await.unwrap();
            }
        }
        let all: Vec<&Arc<_>> = stores.iter().collect();
        eventually("convergence", Duration::from_secs(40), || async {
            same(&all) && stores[0].len().unwrap() == 4 * 20
        })
        .await;
        for store in &stores {
            store.check_integrity(true).unwrap();
        }
        for node in [a, b, c, d] {
            node.handle.shutdown().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_to_identical_stores() {
    bounded(Duration::from_secs(90), async {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        let a = start(stores[0].clone(), sync_config(10), vec![]).await;
        let b = start(stores[1].clone(), sync_config(11), vec![a.listening[0]]).await;
        let c = start(stores[2].clone(), sync_config(12), vec![a.listening[0]]).await;
        let d = start(stores[3].clone(), sync_config(13), vec![b.listening[0]]).await;
        for r in records(1, "before", 10) {
            a.handle.insert(r).await.unwrap();
        }
        let all: Vec<&Arc<_>> = stores.iter().collect();
        eventually("first convergence", Duration::from_secs(30), || async {
            same(&all) && stores[3].len().unwrap() == 10
        })
        .await;

        // Stop C and D; they come back as a pair, cut off from A and B.
        c.handle.shutdown().await.unwrap();
        d.handle.shutdown().await.unwrap();
        let c = start(stores[2].clone(), sync_config(12), vec![]).await;
        let d = start(stores[3].clone(), sync_config(13), vec![c.listening[0]]).await;

        // Both sides write: new keys, updates of the same key at different
        // versions, and a tie (same key and version, different values).
        for r in records(2, "ab-side", 12) {
            a.handle.insert(r).await.unwrap();
        }
        for r in records(3, "cd-side", 9) {
            d.handle.insert(r).await.unwrap();
        }
        a.handle
            .insert(record(1, "before3", 2, b"ab"))
            .await
            .unwrap();
        c.handle
            .insert(record(1, "before3", 5, b"cd"))
            .await
            .unwrap();
        let tie_ab = record(1, "before4", 9, b"ab");
        let tie_cd = record(1, "before4", 9, b"cd");
        b.handle.insert(tie_ab.clone()).await.unwrap();
        c.handle.insert(tie_cd.clone()).await.unwrap();
        let winner = if tie_ab.id() < tie_cd.id() {
            tie_ab
        } else {
            tie_cd
        };
        eventually("each side converges", Duration::from_secs(30), || async {
            same(&[&stores[0], &stores[1]]) && same(&[&stores[2], &stores[3]])
        })
        .await;
        assert!(!same(&all));

        // Heal: C and D restart knowing A and B.
        c.handle.shutdown().await.unwrap();
        d.handle.shutdown().await.unwrap();
        let c = start(stores[2].clone(), sync_config(12), vec![a.listening[0]]).await;
        let d = start(
            stores[3].clone(),
            sync_config(13),
            vec![b.listening[0], c.listening[0]],
        )
        .await;
        eventually("the partition heals", Duration::from_secs(40), || async {
            same(&all)
        })
        .await;
        let author = signer(1).verifying_key().to_bytes();
        for store in &stores {
            assert_eq!(store.len().unwrap(), 10 + 12 + 9);
            assert_eq!(
                store.get(&author, b"before3").unwrap().unwrap().version(),
                5
            );
            assert_eq!(store.get(&author, b"before4").unwrap().unwrap(), winner);
            store.check_integrity(true).unwrap();
        }
        // Only the side that starts a reconciliation counts it.
        let mut reconciliations = 0;
        for node in [&a, &b, &c, &d] {
            reconciliations += node.handle.stats().await.unwrap().reconciliations;
        }
        assert!(reconciliations > 0);
        for node in [a, b, c, d] {
            node.handle.shutdown().await.unwrap();
        }
    })
    .await;
}

/// A record with one byte of its value flipped: its signature no longer
/// verifies.
fn tampered(record: &Record) -> Record {
    let mut bytes = record.to_bytes();
    let i = bytes.len() - 64 - 1;
    bytes[i] ^= 1;
    Record::from_bytes(&bytes, 1 << 20).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_record_is_never_stored() {
    tampered_record_is_never_stored(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_record_passed_on_before_its_check_is_retracted_and_never_stored() {
    tampered_record_is_never_stored(true).await;
}

/// A forger sends A a tampered record; with `quick`, A passes it on
/// before its check and retracts it after.
async fn tampered_record_is_never_stored(quick: bool) {
    bounded(Duration::from_secs(60), async {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        let mut config_a = sync_config(10);
        config_a.quick_verify = quick;
        let a = start(stores[0].clone(), config_a, vec![]).await;
        let b = start(stores[1].clone(), sync_config(11), vec![a.listening[0]]).await;

        // A node that speaks the protocol but forges records, under its own
        // key: it is scored for the forgery alone (every node here shares
        // 127.0.0.1, so a ban would cut the others off too).
        let evil = rogue(&signer(99), a.listening[0]).await;
        let good = record(7, "k", 1, b"genuine");
        let forged = tampered(&good);
        // By gossip. (Records in an unsolicited RECORDS frame are refused
        // before they are checked, and scored too: the machine tests show
        // it; here a second score would ban 127.0.0.1, shared by all.)
        let _ = evil.handle.propagate(gossip_payload(&forged)).await;
        // A's gossip handler rejects it: the forger is scored and dropped.
        eventually("the forger is dropped", Duration::from_secs(20), || async {
            evil.handle.peers().await.unwrap().is_empty()
        })
        .await;
        // Honest traffic still flows.
        a.handle.insert(good.clone()).await.unwrap();
        eventually(
            "the genuine record arrives",
            Duration::from_secs(20),
            || async { stores[1].get(good.author(), good.key()).unwrap() == Some(good.clone()) },
        )
        .await;
        for store in &stores {
            assert!(!digests(store).contains(&forged.digest()));
            store.check_integrity(true).unwrap();
        }
        let gossip = a.handle.node().gossip_stats().await.unwrap();
        if quick {
            assert_eq!(a.handle.stats().await.unwrap().quick_verdicts, 1);
            assert_eq!((gossip.provisional, gossip.retracted), (1, 1), "{gossip:?}");
        } else {
            assert_eq!(gossip.provisional, 0);
        }
        evil.handle.shutdown().await.unwrap();
        a.handle.shutdown().await.unwrap();
        b.handle.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_status_names_who_confirmed_and_who_is_missing() {
    bounded(Duration::from_secs(60), async {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        // A line A - B - C, and D hanging off A.
        let a = start(stores[0].clone(), sync_config(10), vec![]).await;
        let b = start(stores[1].clone(), sync_config(11), vec![a.listening[0]]).await;
        let c = start(stores[2].clone(), sync_config(12), vec![b.listening[0]]).await;
        let d = start(stores[3].clone(), sync_config(13), vec![a.listening[0]]).await;
        let key = |seed: u8| signer(seed).verifying_key().to_bytes();
        eventually("A knows B and D", Duration::from_secs(20), || async {
            a.handle.known_keys().await.unwrap().len() >= 2
        })
        .await;
        // A first message teaches A the key of C, from its receipt.
        let warm = a
            .handle
            .publish(Draft::value(b"warm".to_vec(), b"up".to_vec()), 1.0, None)
            .await
            .unwrap();
        let status = a
            .handle
            .wait_delivered(warm.id.unwrap(), Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        assert!(status.satisfied, "{status:?}");
        eventually("A learns C's key", Duration::from_secs(20), || async {
            a.handle.known_keys().await.unwrap().contains(&key(12))
        })
        .await;

        // D goes away; A still expects it.
        d.handle.shutdown().await.unwrap();
        let put = a
            .handle
            .publish(Draft::value(b"news".to_vec(), b"x".to_vec()), 0.6, None)
            .await
            .unwrap();
        let id = put.id.unwrap();
        let status = a
            .handle
            .wait_delivered(id, Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        assert!(status.satisfied, "{status:?}");
        eventually("both confirmations", Duration::from_secs(20), || async {
            a.handle
                .delivery_status(id)
                .await
                .unwrap()
                .unwrap()
                .confirmed
                .len()
                == 2
        })
        .await;
        let status = a.handle.delivery_status(id).await.unwrap().unwrap();
        assert_eq!(key_set(&status.confirmed), key_set(&[key(11), key(12)]));
        assert_eq!(status.missing, vec![key(13)]);
        assert_eq!(
            key_set(&status.expected),
            key_set(&[key(11), key(12), key(13)])
        );

        // Asking for every confirmation is not satisfied while D is away.
        let put = a
            .handle
            .publish(Draft::value(b"more".to_vec(), b"y".to_vec()), 1.0, None)
            .await
            .unwrap();
        let status = a
            .handle
            .wait_delivered(put.id.unwrap(), Duration::from_millis(1500))
            .await
            .unwrap()
            .unwrap();
        assert!(!status.satisfied);
        assert_eq!(
            status.missing.len(),
            status.expected.len() - status.confirmed.len()
        );
        assert!(status.missing.contains(&key(13)));

        // Receipt bytes per message per node stay far under 1 KB.
        let mut bytes = 0;
        for node in [&a, &b, &c] {
            bytes += node.handle.stats().await.unwrap().receipt_bytes_sent;
        }
        assert!(bytes / 3 / 3 < 1024, "{bytes} bytes of receipts");
        for node in [a, b, c] {
            node.handle.shutdown().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_gossip_payloads_reach_the_layer_above_beside_records() {
    bounded(Duration::from_secs(60), async {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        let a = start(stores[0].clone(), sync_config(20), vec![]).await;
        let b = start(stores[1].clone(), sync_config(21), vec![a.listening[0]]).await;

        // A payload of another layer (first byte not the record tag) is
        // handed to the layer above, not scored.
        eventually("a connection", Duration::from_secs(20), || async {
            b.handle
                .node()
                .propagate(Bytes::from_static(b"\x02m0"))
                .await
                .is_ok()
        })
        .await;
        eventually("the payload at a", Duration::from_secs(20), || async {
            a.messages
                .lock()
                .unwrap()
                .iter()
                .any(|m| &m[..2] == b"\x02m")
        })
        .await;

        // Records still travel, and the sender was not scored.
        b.handle.insert(record(5, "k", 1, b"v")).await.unwrap();
        eventually("the record on a", Duration::from_secs(30), || async {
            stores[0].len().unwrap() == 1
        })
        .await;
        assert_eq!(a.handle.stats().await.unwrap().reports, 0);
        assert!(a.messages.lock().unwrap().iter().all(|m| m[0] != 1));
        for node in [a, b] {
            node.handle.shutdown().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_above_that_falls_behind_delays_deliveries_but_loses_none() {
    bounded(Duration::from_secs(60), async {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        // A publishes; its events go through a queue of one that the test
        // does not read until every put has returned.
        let mut node = NodeConfig::new(Network::STRATA);
        node.timed_sync_interval = Duration::from_millis(500);
        let config = sync_config(50);
        let mut settings = strata_sync::runtime::Settings::new(
            tls_loopback(node, &config.signing_key),
            config,
            stores[0].clone(),
            None,
        );
        settings.event_queue = 1;
        let a = strata_sync::runtime::start(settings, Clock::real())
            .await
            .unwrap();
        let b = start(stores[1].clone(), sync_config(51), vec![a.listening[0]]).await;
        eventually("a peer", Duration::from_secs(20), || async {
            !a.handle.known_keys().await.unwrap().is_empty()
        })
        .await;
        let mut ids = HashSet::new();
        for k in 0..30 {
            let put = a
                .handle
                .publish(
                    Draft::value(format!("k{k}").into_bytes(), b"v".to_vec()),
                    1.0,
                    None,
                )
                .await
                .unwrap();
            ids.insert(put.id.unwrap());
        }
        let mut events = a.events;
        let mut satisfied = HashSet::new();
        while satisfied.len() < ids.len() {
            if let Some(Event::Delivery(status)) = events.recv().await
                && status.satisfied
            {
                assert!(ids.contains(&status.id));
                satisfied.insert(status.id);
            }
        }
        assert_eq!(stores[1].len().unwrap(), 30);
        b.handle.shutdown().await.unwrap();
        a.handle.shutdown().await.unwrap();
    })
    .await;
}

/// A record at the value limit of the store (16 MiB) makes a frame larger
/// than the default bulk queue: the queue is sized for it, so catch-up
/// serves it instead of stalling on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_at_the_value_limit_is_served_by_catch_up() {
    bounded(Duration::from_secs(120), async {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let max = strata_store::MAX_VALUE_LEN;
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| {
                let config = strata_store::Config {
                    durability: Durability::NoSync,
                    max_value_len: max,
                    ..strata_store::Config::default()
                };
                Arc::new(strata_store::Store::open(d.path(), config).unwrap())
            })
            .collect();
        let big = record(1, "big", 1, &vec![7u8; max]);
        stores[0].put_batch(std::slice::from_ref(&big)).unwrap();
        stores[0].put_batch(&records(2, "small", 20)).unwrap();
        let config = |seed| {
            let mut c = sync_config(seed);
            c.max_value_len = max;
            c.catchup_gap = 0;
            c
        };
        let a = start(stores[0].clone(), config(10), vec![]).await;
        let b = start(stores[1].clone(), config(11), vec![a.listening[0]]).await;
        eventually("the catch-up", Duration::from_secs(90), || async {
            stores[1].len().unwrap() == 21
        })
        .await;
        assert_eq!(
            stores[1].get(big.author(), b"big").unwrap().as_ref(),
            Some(&big)
        );
        for node in [a, b] {
            node.handle.shutdown().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_node_tells_its_first_peers_its_true_record_count() {
    // The first handshakes carry the summary the node starts with: a node
    // that advertised an empty store until its sketch was read would keep
    // a peer that connected at once from catching up from it until the
    // next timed sync.
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), Durability::NoSync);
        store.put_batch(&records(1, "r", 5000)).unwrap();
        let node = start(store, sync_config(1), vec![]).await;
        let summary = node.handle.summary().await.unwrap();
        assert_eq!(summary.records, 5000, "{summary:?}");
        assert_ne!(summary.fingerprint, 0, "{summary:?}");
        node.handle.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_relays_serves_catch_up_only_its_busy_share() {
    // A serves 200,000 bytes a second in all, and keeps a tenth of that for
    // catch-up while it relays fresh records; a fresh node catching up
    // from A meanwhile gets about 20,000 bytes a second: some 300 records
    // in two seconds, not 2,600. Once relay is idle it gets everything.
    bounded(Duration::from_secs(120), async {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        stores[0].put_batch(&records(1, "old", 4000)).unwrap();
        let mut serving = sync_config(10);
        serving.serve_total_rate = 200_000;
        let a = start(stores[0].clone(), serving, vec![]).await;
        // Relay: a fresh record every 50 ms.
        let relay = {
            let handle = a.handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                for r in records(2, "fresh", 60) {
                    tick.tick().await;
                    handle.insert(r).await.unwrap();
                }
            })
        };
        let mut catching = sync_config(11);
        catching.catchup_gap = 100;
        catching.batch_records = 100;
        let t = std::time::Instant::now();
        let b = start(stores[1].clone(), catching, vec![a.listening[0]]).await;
        eventually("the catch-up to start", Duration::from_secs(30), || async {
            b.handle.stats().await.unwrap().catching_up
        })
        .await;
        assert!(a.handle.stats().await.unwrap().relay_busy);
        // Two seconds in, while relay still has work.
        tokio::time::sleep(Duration::from_secs(2).saturating_sub(t.elapsed())).await;
        let held = stores[1].len().unwrap();
        let relaying = !relay.is_finished();
        assert!(relaying, "relay ended first: the test proves nothing");
        assert!(held < 1000, "{held} records served in 2 s");
        relay.await.unwrap();
        eventually("the catch-up", Duration::from_secs(60), || async {
            stores[1].len().unwrap() >= 4060
        })
        .await;
        assert!(!a.handle.stats().await.unwrap().relay_busy);
        for node in [a, b] {
            node.handle.shutdown().await.unwrap();
        }
    })
    .await;
}

/// A node of its own key that speaks the protocol, dialing only `to`,
/// once its handshake is done.
async fn rogue(
    key: &strata_sync::ed25519_dalek::SigningKey,
    to: std::net::SocketAddr,
) -> driver::Running<strata_sync::Summary> {
    let mut config = NodeConfig::new(Network::STRATA);
    config.exclusive = vec![to];
    let mut node = driver::start(
        driver::Settings {
            listen: vec![],
            ..tls_loopback(config, key)
        },
        strata_sync::Summary {
            key: key.verifying_key().to_bytes(),
            ..strata_sync::Summary::default()
        },
        Clock::real(),
    )
    .await
    .unwrap();
    loop {
        if let strata_node::Event::PeerReady(..) = node.events.recv().await.unwrap() {
            return node;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_challenges_is_answered_within_its_budget_and_a_forged_one_scores_its_sender() {
    use strata_sync::ed25519_dalek::Signer as _;
    use strata_sync::wire::{Challenge, NONCE_LEN};
    bounded(Duration::from_secs(60), async {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| open_store(d.path(), Durability::NoSync))
            .collect();
        // A holds a record of the attacker's key, which may challenge it.
        let attacker = signer(98);
        let held = record(98, "mine", 1, b"held");
        stores[0].put_batch(std::slice::from_ref(&held)).unwrap();
        let a = start(stores[0].clone(), sync_config(10), vec![]).await;
        let b = start(stores[1].clone(), sync_config(11), vec![a.listening[0]]).await;
        let evil = rogue(&attacker, a.listening[0]).await;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let challenge = |key: &strata_sync::ed25519_dalek::SigningKey, n: u16, forge: bool| {
            let digest = held.digest().0;
            let mut nonce = [0u8; NONCE_LEN];
            nonce[..8].copy_from_slice(&unix.to_be_bytes());
            nonce[8..10].copy_from_slice(&n.to_be_bytes());
            let mut signature = key
                .sign(&Challenge::signed_bytes(&digest, &nonce))
                .to_bytes();
            signature[0] ^= u8::from(forge);
            Challenge {
                digest,
                nonce,
                challenger: key.verifying_key().to_bytes(),
                signature,
            }
            .payload()
        };
        // Two hundred well-signed challenges at once: A checks the peer's
        // budget of them, answers the key's budget, drops the rest, and
        // stays up.
        let started = std::time::Instant::now();
        for n in 0..200 {
            evil.handle
                .propagate(challenge(&attacker, n, false))
                .await
                .unwrap();
        }
        eventually(
            "the challenges handled",
            Duration::from_secs(20),
            || async {
                let s = a.handle.stats().await.unwrap();
                s.proofs_sent + s.challenges_over_budget >= 200
            },
        )
        .await;
        let s = a.handle.stats().await.unwrap();
        let secs = started.elapsed().as_secs() + 1;
        let budget = strata_sync::receipt::CHALLENGES_PER_KEY_PER_SEC as u64;
        assert!(s.proofs_sent <= budget * (secs + 1), "{s:?} in {secs} s");
        assert!(
            s.challenges_over_budget >= 200 - budget * (secs + 1),
            "{s:?}"
        );
        // A legitimate peer is still served.
        a.handle.insert(record(7, "k", 1, b"v")).await.unwrap();
        eventually("the record on b", Duration::from_secs(20), || async {
            stores[1]
                .get(record(7, "k", 1, b"v").author(), b"k")
                .unwrap()
                .is_some()
        })
        .await;
        // A forged challenge (from another peer) is rejected: its sender is
        // scored and dropped.
        let forger = signer(97);
        let forging = rogue(&forger, a.listening[0]).await;
        forging
            .handle
            .propagate(challenge(&forger, 1000, true))
            .await
            .unwrap();
        eventually("the forger is dropped", Duration::from_secs(20), || async {
            forging.handle.peers().await.unwrap().is_empty()
        })
        .await;
        for node in [a, b] {
            node.handle.shutdown().await.unwrap();
        }
        evil.handle.shutdown().await.unwrap();
        forging.handle.shutdown().await.unwrap();
    })
    .await;
}

/// A store backend that panics on its next `panics` writes, before
/// touching its tables.
#[derive(Debug)]
struct PanickingBackend {
    inner: strata_store::MemoryBackend,
    panics: Arc<std::sync::atomic::AtomicU32>,
}

impl strata_store::Backend for PanickingBackend {
    fn read(&self, f: &mut strata_store::ReadFn<'_>) -> Result<(), strata_store::Error> {
        self.inner.read(f)
    }

    fn write(&self, f: &mut strata_store::WriteFn<'_>) -> Result<(), strata_store::Error> {
        use std::sync::atomic::Ordering;
        let armed = self
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        assert!(!armed, "the backend failed in the middle of a write");
        self.inner.write(f)
    }

    fn size_bytes(&self) -> Result<u64, strata_store::Error> {
        self.inner.size_bytes()
    }

    fn flush(&self) -> Result<(), strata_store::Error> {
        self.inner.flush()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_op_that_panics_fails_alone_and_the_node_goes_on() {
    bounded(Duration::from_secs(30), async {
        let panics = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let backend = PanickingBackend {
            inner: strata_store::MemoryBackend::new(),
            panics: panics.clone(),
        };
        let store = Arc::new(
            strata_store::Store::with_backend(Box::new(backend), strata_store::Config::default())
                .unwrap(),
        );
        let a = start(store.clone(), sync_config(40), vec![]).await;
        a.handle.put(Draft::value("before", "1")).await.unwrap();
        // Two writes in a row fail inside the store: the local put's and
        // the next.
        panics.store(2, std::sync::atomic::Ordering::SeqCst);
        let failed = a.handle.put(Draft::value("during", "2")).await;
        let message = failed.expect_err("a put whose write panicked").to_string();
        assert!(message.contains("panicked"), "{message}");
        let relayed = record(41, "relayed", 1, b"x");
        a.handle
            .insert(relayed)
            .await
            .expect_err("an insert whose write panicked");
        // The node goes on: puts, inserts and its stats answer.
        a.handle.put(Draft::value("after", "3")).await.unwrap();
        for r in records(42, "later", 3) {
            a.handle.insert(r).await.unwrap();
        }
        let author = signer(40).verifying_key().to_bytes();
        for (key, stored) in [("before", true), ("during", false), ("after", true)] {
            assert_eq!(
                store.get(&author, key.as_bytes()).unwrap().is_some(),
                stored,
                "{key}"
            );
        }
        assert_eq!(
            store.len().unwrap(),
            2 + 3,
            "nothing of the failed writes stayed"
        );
        a.handle.stats().await.unwrap();
        a.handle.shutdown().await.unwrap();
    })
    .await;
}
