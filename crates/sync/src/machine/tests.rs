//! The machine on the node's in-memory harness: nodes and their sync
//! layers wired in memory, memory stores, time advanced to each wake-up; no
//! sockets, no real time.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
#![allow(
    clippy::arithmetic_side_effects,
    reason = "test arithmetic on small constants"
)]

use std::net::SocketAddr;

use strata_levin::Header;
use strata_node::addrman::AddrMan;
use strata_node::netgroup::Grouping;
use strata_node::sim::Sim;
use strata_node::{Config as NodeConfig, Network, Node};
use strata_store::{Config as StoreConfig, Draft, Kind, Store};

use super::*;
use crate::riblt::Encoder;
use crate::sim::SyncUpper;
use crate::wire::{Proof, Receipt};
use ed25519_dalek::Signer as _;

type Net = Sim<Summary, SyncUpper>;

const UNIX: u64 = 1_700_000_000;

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn record(author: u8, key: &str, version: u64, value: &[u8]) -> Record {
    Record::sign(&signer(author), key.as_bytes(), version, value).unwrap()
}

fn records(author: u8, prefix: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|k| record(author, &format!("{prefix}{k}"), 1, &[author; 100]))
        .collect()
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, u8::try_from(i + 1).unwrap()], 7710))
}

fn sync_config(i: usize) -> Config {
    let mut c = Config::new(signer(100 + i as u8));
    c.reconcile_interval = Duration::from_secs(5);
    c.catchup_gap = 100;
    c.batch_records = 5;
    c.batch_timeout = Duration::from_secs(10);
    c
}

/// A node with its sync layer over `store`; the nodes dial nobody by
/// themselves (tests connect them), unless `outbound` is set.
fn host(
    i: usize,
    config: Config,
    store: Arc<Store>,
    progress: Option<&[u8]>,
    outbound: usize,
    now: Instant,
) -> (Node<Summary>, SyncUpper) {
    let key = config.signing_key.verifying_key().to_bytes();
    let syncer = Syncer::new(config, progress, UNIX, i as u64, now);
    let mut node_config = NodeConfig::new(Network::STRATA);
    node_config.node_key = Some(key);
    node_config.listen_port = 7710;
    node_config.outbound = outbound;
    node_config.fast_slots = 0;
    let book = AddrMan::new(
        [i as u8; 32],
        Grouping {
            local_network: true,
        },
    );
    let node = Node::new(
        node_config,
        syncer.summary(),
        book,
        Vec::new(),
        i64::try_from(UNIX).unwrap(),
        i as u64,
        now,
    );
    (node, SyncUpper::new(syncer, store))
}

fn memory_store(initial: &[Record]) -> Arc<Store> {
    let store = Store::in_memory(StoreConfig::default()).unwrap();
    if !initial.is_empty() {
        store.put_batch(initial).unwrap();
    }
    Arc::new(store)
}

/// Nodes whose stores start with `initial[i]`, configured by `configure`.
fn net(initial: Vec<Vec<Record>>, configure: impl Fn(usize, &mut Config)) -> Net {
    let now = Instant::now();
    let mut sim = Sim::new(now, 3);
    for (i, records) in initial.iter().enumerate() {
        let mut c = sync_config(i);
        configure(i, &mut c);
        let (node, upper) = host(i, c, memory_store(records), None, 0, now);
        sim.add(addr(i), node, upper);
    }
    sim.settle();
    sim
}

fn empty(n: usize) -> Vec<Vec<Record>> {
    vec![Vec::new(); n]
}

fn syncer(net: &Net, i: usize) -> &Syncer {
    &net.host(i).upper.syncer
}

fn store(net: &Net, i: usize) -> &Arc<Store> {
    &net.host(i).upper.store
}

fn digests(store: &Store) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.scan_digests(after.as_ref(), 1000).unwrap();
        out.extend(page.digests);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

fn converged(net: &Net, nodes: &[usize]) -> bool {
    let first = digests(store(net, nodes[0]));
    nodes.iter().all(|&i| digests(store(net, i)) == first)
}

/// The connection at node `i` to node `j`.
fn peer(net: &Net, i: usize, j: usize) -> PeerId {
    net.conn_of(i, j).unwrap()
}

fn events(net: &Net, i: usize) -> &[Event] {
    &net.host(i).upper.events
}

/// Runs until `done` or `limit`; fails if `done` never held.
fn run_until(net: &mut Net, limit: Duration, what: &str, done: impl Fn(&Net) -> bool) {
    assert!(
        net.run_while(limit, |n| done(n)),
        "{what} did not happen within {limit:?}"
    );
}

/// Puts a value at node `i` as its local user; returns the put's id.
fn put(net: &mut Net, i: usize, key: &str, value: &[u8]) -> PutId {
    let now = net.now();
    let host = net.host_mut(i);
    let id = host
        .upper
        .syncer
        .put(Draft::value(key.as_bytes(), value), now);
    host.upper.drain(&mut host.node, now);
    net.flush(i);
    id
}

fn put_result(net: &Net, i: usize, id: PutId) -> Option<&Put> {
    events(net, i).iter().find_map(|e| match e {
        Event::Put { put, result } if *put == id => result.as_ref().ok(),
        _ => None,
    })
}

/// Hands node `i` a frame of the sync range on its connection to `j`.
fn inject(net: &mut Net, i: usize, j: usize, message: &Message) {
    let conn = peer(net, i, j);
    let header = Header::notification(message.command(), 0);
    net.inject(i, conn, header, message.encode());
}

#[test]
fn a_put_record_reaches_every_node_by_gossip() {
    let mut net = net(empty(3), |_, _| {});
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    let id = put(&mut net, 0, "hello", b"world");
    net.run_for(Duration::from_secs(1));
    let first = put_result(&net, 0, id).expect("the put finished").clone();
    assert!(first.outcome.is_stored());
    assert_eq!(first.record.version(), 1);
    assert!(first.id.is_some());
    for i in 0..3 {
        let stored = store(&net, i).get(first.record.author(), b"hello").unwrap();
        assert_eq!(stored.as_ref(), Some(&first.record));
        assert_eq!(syncer(&net, i).stats().records, 1);
        assert_eq!(syncer(&net, i).stats().gossip_records, u64::from(i != 0));
    }
    let (a, c) = (syncer(&net, 0).summary(), syncer(&net, 2).summary());
    assert_eq!((a.records, a.fingerprint), (c.records, c.fingerprint));
    // A second put of the key takes the next version.
    let id = put(&mut net, 0, "hello", b"again");
    net.run_for(Duration::from_secs(1));
    let again = put_result(&net, 0, id).unwrap();
    assert_eq!(again.record.version(), 2);
    assert_eq!(
        store(&net, 2).get(first.record.author(), b"hello").unwrap(),
        Some(again.record.clone())
    );
}

#[test]
fn reconciliation_heals_disjoint_sets_and_ties() {
    let shared = records(3, "s", 50);
    let tie_a = record(4, "tie", 7, b"one");
    let tie_b = record(4, "tie", 7, b"two");
    let mut left = records(1, "a", 60);
    left.extend(shared.iter().cloned());
    left.push(record(3, "s1", 2, b"left"));
    left.push(tie_a.clone());
    let mut right = records(2, "b", 40);
    right.extend(shared.iter().cloned());
    right.push(record(3, "s2", 3, b"right"));
    right.push(tie_b.clone());
    let winner = if tie_a.id() < tie_b.id() {
        &tie_a
    } else {
        &tie_b
    };

    let mut net = net(vec![left, right], |_, _| {});
    net.connect(0, 1);
    run_until(&mut net, Duration::from_secs(60), "convergence", |n| {
        converged(n, &[0, 1])
    });
    for i in 0..2 {
        let store = store(&net, i);
        assert_eq!(
            store.get(tie_a.author(), b"tie").unwrap().as_ref(),
            Some(winner)
        );
        let s1 = store
            .get(&signer(3).verifying_key().to_bytes(), b"s1")
            .unwrap()
            .unwrap();
        assert_eq!(s1.version(), 2);
        assert_eq!(store.len().unwrap(), 60 + 40 + 50 + 1);
        assert_eq!(syncer(&net, i).stats().records, 151);
    }
    // The sketches agree again, so the fingerprints do.
    assert_eq!(
        syncer(&net, 0).summary().fingerprint,
        syncer(&net, 1).summary().fingerprint
    );
    for i in 0..2 {
        assert_eq!(syncer(&net, i).stats().reports, 0);
    }

    // The next reconciliation finds nothing: the tie is not exchanged again.
    let fetched =
        |net: &Net| -> u64 { (0..2).map(|i| syncer(net, i).stats().fetched_records).sum() };
    let recons =
        |net: &Net| syncer(net, 0).stats().reconciliations + syncer(net, 1).stats().reconciliations;
    let (before, done) = (fetched(&net), recons(&net));
    run_until(
        &mut net,
        Duration::from_secs(60),
        "two more reconciliations",
        |n| recons(n) > done + 1,
    );
    assert_eq!(fetched(&net), before);
    let last = (0..2)
        .flat_map(|i| events(&net, i).iter())
        .filter_map(|e| match e {
            Event::Reconciled {
                fetched, offered, ..
            } => Some((*fetched, *offered)),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(last, (0, 0));
}

#[test]
fn a_fresh_node_catches_up_from_several_peers() {
    let all = records(1, "r", 240);
    let mut net = net(vec![all.clone(), all.clone(), all, Vec::new()], |_, _| {});
    for i in 0..3 {
        net.connect(3, i);
    }
    net.settle();
    run_until(&mut net, Duration::from_secs(120), "the catch-up", |n| {
        !syncer(n, 3).is_catching_up() && converged(n, &[0, 3])
    });
    let stats = syncer(&net, 3).stats();
    assert_eq!(stats.records, 240);
    assert_eq!(stats.catchup_records, 240);
    assert!(stats.batches >= 64, "{stats:?}");
    assert!(
        events(&net, 3)
            .iter()
            .any(|e| matches!(e, Event::CatchupStarted))
    );
    assert!(
        events(&net, 3)
            .iter()
            .any(|e| matches!(e, Event::CatchupDone))
    );
    assert_eq!(net.host(3).upper.progress, None);
    // Every peer served some of it.
    for i in 0..3 {
        assert!(
            syncer(&net, i).stats().record_bytes_sent > 0,
            "peer {i} served nothing"
        );
    }
}

#[test]
fn a_stalled_batch_is_asked_of_another_peer() {
    let all = records(1, "r", 200);
    let mut net = net(vec![all.clone(), all, Vec::new()], |_, _| {});
    // Node 1 never answers range requests.
    net.hold(1, command::RANGE, true);
    net.connect(2, 0);
    net.connect(2, 1);
    run_until(&mut net, Duration::from_secs(300), "the catch-up", |n| {
        !syncer(n, 2).is_catching_up() && converged(n, &[0, 2])
    });
    let stats = syncer(&net, 2).stats();
    assert!(stats.stalls >= 1, "{stats:?}");
    assert_eq!(stats.records, 200);
}

#[test]
fn catch_up_resumes_from_saved_progress() {
    let all = records(1, "r", 200);
    let mut net = net(vec![all, Vec::new()], |_, _| {});
    net.connect(1, 0);
    // Let a few batches land, then crash node 1.
    run_until(&mut net, Duration::from_secs(60), "four batches", |n| {
        syncer(n, 1).stats().batches >= 4
    });
    let progress = net.host(1).upper.progress.clone().unwrap();
    let stored_before = syncer(&net, 1).stats().records;
    assert!(stored_before > 0 && stored_before < 200, "{stored_before}");
    let kept = store(&net, 1).clone();
    net.crash(1);
    net.settle();
    let now = net.now();
    let (node, upper) = host(1, sync_config(1), kept, Some(&progress), 0, now);
    net.restart(1, node, upper);
    net.settle();
    // Alone, it waits for a source, its progress kept.
    let waiting = syncer(&net, 1).stats();
    assert!(
        waiting.catchup_waiting && !waiting.catching_up,
        "{waiting:?}"
    );
    assert!(
        waiting.spans_left > 0 && waiting.spans_left < 64,
        "{waiting:?}"
    );
    net.connect(1, 0);
    run_until(&mut net, Duration::from_secs(120), "the catch-up", |n| {
        !syncer(n, 1).is_catching_up() && converged(n, &[0, 1])
    });
    // Only what was not stored before the crash came again.
    let again = syncer(&net, 1).stats().catchup_records;
    assert_eq!(
        again + stored_before,
        200,
        "fetched {again} after the restart"
    );
}

#[test]
fn receipts_reach_the_publisher_and_a_silent_node_is_missing() {
    let mut net = net(empty(4), |_, c| {
        c.receipt_interval = Duration::from_millis(100)
    });
    // A line 0 - 1 - 2, and 3 known to 0 but gone.
    net.connect(0, 1);
    net.connect(1, 2);
    net.connect(0, 3);
    net.settle();
    net.crash(3);
    net.settle();
    // A first message teaches 0 the key of 2 (from its receipt).
    publish(&mut net, 0, "warm", 1.0);
    run_until(&mut net, Duration::from_secs(10), "three known keys", |n| {
        syncer(n, 0).known_keys().len() == 3
    });
    let put = publish(&mut net, 0, "news", 0.6);
    net.settle();
    let id = put_result(&net, 0, put).unwrap().id.unwrap();
    run_until(
        &mut net,
        Duration::from_secs(10),
        "two confirmations",
        |n| syncer(n, 0).delivery_status(&id).unwrap().confirmed.len() == 2,
    );
    let status = syncer(&net, 0).delivery_status(&id).unwrap();
    let key = |i: usize| syncer(&net, i).summary().key;
    assert_eq!(key_set(&status.confirmed), key_set(&[key(1), key(2)]));
    assert_eq!(status.missing, vec![key(3)]);
    assert!(status.satisfied, "2 of 3 is over 0.6");
    // The publisher was told, confirmation by confirmation.
    let told: Vec<usize> = events(&net, 0)
        .iter()
        .filter_map(|e| match e {
            Event::Delivery(s) if s.id == id => Some(s.confirmed.len()),
            _ => None,
        })
        .collect();
    assert_eq!(told, vec![1, 2]);
    // Bandwidth: receipts of one message cost well under 1 KB per node.
    let bytes: u64 = (0..3)
        .map(|i| syncer(&net, i).stats().receipt_bytes_sent)
        .sum();
    assert!(
        bytes / 2 / 3 < 1024,
        "{bytes} receipt bytes for two messages"
    );
}

/// Publishes a record on node `i`, tracked with the share `want`.
fn publish(net: &mut Net, i: usize, key: &str, want: f64) -> PutId {
    let now = net.now();
    let host = net.host_mut(i);
    let id = host.upper.syncer.publish(
        Draft::value(key.as_bytes().to_vec(), b"x".to_vec()),
        want,
        None,
        now,
    );
    host.upper.drain(&mut host.node, now);
    net.flush(i);
    id
}

#[test]
fn a_challenge_is_proved_by_the_nodes_that_hold_the_record_and_by_no_other() {
    let mut net = net(empty(4), |_, c| {
        c.receipt_interval = Duration::from_millis(100);
        c.reconcile_interval = Duration::from_secs(600);
    });
    // A line 0 - 1 - 2 - 3; 3 never gets the record.
    net.connect(0, 1);
    net.connect(1, 2);
    net.connect(2, 3);
    net.settle();
    net.hold(2, strata_node::wire::command::GOSSIP_MESSAGE, true);
    let put = publish(&mut net, 0, "news", 1.0);
    net.settle();
    let id = put_result(&net, 0, put).unwrap().id.unwrap();
    run_until(&mut net, Duration::from_secs(10), "two receipts", |n| {
        syncer(n, 0).delivery_status(&id).unwrap().confirmed.len() == 2
    });
    net.hold(2, strata_node::wire::command::GOSSIP_MESSAGE, false);
    let now = net.now();
    let host = net.host_mut(0);
    assert!(host.upper.syncer.challenge(id, now));
    assert!(!host.upper.syncer.challenge(MessageId([9; 32]), now));
    host.upper.drain(&mut host.node, now);
    net.flush(0);
    run_until(&mut net, Duration::from_secs(10), "two proofs", |n| {
        syncer(n, 0).delivery_status(&id).unwrap().proved.len() == 2
    });
    net.run_for(Duration::from_secs(5));
    let key = |i: usize| syncer(&net, i).summary().key;
    let status = syncer(&net, 0).delivery_status(&id).unwrap();
    assert_eq!(key_set(&status.proved), key_set(&[key(1), key(2)]));
    // Node 3 had the challenge but not the record: no proof from it.
    assert!(store(&net, 3).is_empty().unwrap());
    assert_eq!(syncer(&net, 2).stats().proofs_sent, 1);
    assert_eq!(syncer(&net, 3).stats().proofs_sent, 0);
    assert!(
        syncer(&net, 3).stats().challenges_over_budget == 0
            && net.host(3).node.gossip_stats().delivered >= 1,
        "the challenge never reached node 3: the test proves nothing"
    );
    // A proof that is not the hash of the record's bytes under the nonce
    // (here: any other bytes, validly signed by another key) counts for
    // nothing.
    let liar = signer(77);
    let challenge = status.challenge.unwrap();
    let value = [7u8; 32];
    let signed = Proof::signed_bytes(&liar.verifying_key().to_bytes(), &challenge.0, &value);
    let forged = Proof {
        signer: liar.verifying_key().to_bytes(),
        challenge: challenge.0,
        proof: value,
        signature: liar.sign(&signed).to_bytes(),
    };
    inject(&mut net, 0, 1, &Message::Proof(forged.clone()));
    net.settle();
    let status = syncer(&net, 0).delivery_status(&id).unwrap();
    assert_eq!(status.proved.len(), 2);
    assert_eq!(syncer(&net, 0).stats().proofs_wrong, 1);
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        0,
        "a wrong proof is no forgery"
    );
    // One whose signature does not verify: no hop passes such a proof on,
    // so the peer it came from made it, and is scored.
    let mut forged = forged;
    forged.signature[0] ^= 1;
    inject(&mut net, 0, 1, &Message::Proof(forged));
    net.settle();
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        Misbehaviour::BadProof.score()
    );
    assert_eq!(
        syncer(&net, 0).delivery_status(&id).unwrap().proved.len(),
        2
    );
}

/// A line 0 - 1 - 2 - 3 whose checks take 5 ms a record: the time from a
/// put on 0 until node 3 holds the record, with `quick` verification or
/// not.
fn line_with_costly_checks(quick: bool) -> (Duration, Net) {
    let mut net = net(empty(4), |_, c| {
        c.quick_verify = quick;
        c.reconcile_interval = Duration::from_secs(600);
    });
    for i in 0..4 {
        net.host_mut(i).upper.check_cost = Duration::from_millis(5);
    }
    for i in 0..3 {
        net.connect(i, i + 1);
    }
    net.settle();
    let start = net.now();
    put(&mut net, 0, "news", b"x");
    run_until(&mut net, Duration::from_secs(10), "the record on 3", |n| {
        store(n, 3).len().unwrap() == 1
    });
    (net.now().saturating_duration_since(start), net)
}

#[test]
fn quick_verification_passes_a_record_on_before_its_check_and_retracts_a_forgery() {
    let (slow, _) = line_with_costly_checks(false);
    let (fast, mut net) = line_with_costly_checks(true);
    // Each of nodes 1 and 2 no longer holds the record for its check before
    // passing it on: two checks fewer on the path.
    assert!(
        fast + Duration::from_millis(9) <= slow,
        "{fast:?} against {slow:?}"
    );
    assert!(syncer(&net, 1).stats().quick_verdicts >= 1);
    // A record with a valid author key and a forged signature goes on
    // provisionally, then its check retracts it and scores its sender: it
    // is stored nowhere.
    let good = records(1, "forged", 1).remove(0);
    let mut signature = *good.signature();
    signature[0] ^= 1;
    let forged = Record::from_parts(
        *good.author(),
        good.key().to_vec(),
        good.version(),
        good.value().to_vec(),
        signature,
    )
    .unwrap();
    let before = net.host(1).node.gossip_stats();
    let now = net.now();
    let host = net.host_mut(0);
    host.node
        .propagate(crate::wire::gossip_payload(&forged), now)
        .unwrap();
    net.flush(0);
    net.run_for(Duration::from_secs(1));
    let after = net.host(1).node.gossip_stats();
    assert_eq!(after.provisional, before.provisional + 1);
    assert_eq!(after.retracted, before.retracted + 1);
    assert_eq!(after.rejected, before.rejected + 1);
    for i in 0..4 {
        assert!(
            store(&net, i)
                .get(forged.author(), b"forged")
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn a_flood_of_challenges_is_answered_within_its_budget_and_the_rest_dropped() {
    // Node 0 holds a record of author 1; the author's key signs 100
    // challenges about it, sent at once by one peer. Node 0 checks that
    // peer's budget of them, answers that key's budget and drops the rest
    // unanswered.
    let held = records(1, "r", 1);
    let mut net = net(vec![held.clone(), Vec::new()], |_, _| {});
    net.connect(0, 1);
    net.settle();
    let from = peer(&net, 0, 1);
    let author = signer(1);
    let digest = held[0].digest();
    let now = net.now();
    let host = net.host_mut(0);
    for n in 0..100u8 {
        let mut nonce = [n; NONCE_LEN];
        nonce[..8].copy_from_slice(&UNIX.to_be_bytes());
        let payload = Challenge {
            digest: digest.0,
            nonce,
            challenger: author.verifying_key().to_bytes(),
            signature: author
                .sign(&Challenge::signed_bytes(&digest.0, &nonce))
                .to_bytes(),
        }
        .payload();
        let id = MessageId::of(&payload);
        host.upper.syncer.handle_gossip(from, id, payload, now);
    }
    host.upper.drain(&mut host.node, now);
    net.settle();
    let stats = syncer(&net, 0).stats();
    let budget = crate::receipt::CHALLENGES_PER_KEY_PER_SEC as u64;
    assert_eq!(stats.proofs_sent, budget);
    assert_eq!(stats.challenges_over_budget, 100 - budget);
    // Node 1 passes the proofs on to nobody (it posed none) and is fine.
    assert_eq!(syncer(&net, 1).stats().proofs_wrong, 0);

    // A challenge about a record nobody holds, from a key of its own, and
    // one with a forged signature: neither goes further, and the forged
    // one costs no key's budget.
    let verdict_of = |net: &mut Net, payload: Bytes| -> Verdict {
        let now = net.now();
        let id = MessageId::of(&payload);
        let host = net.host_mut(0);
        let syncer = &mut host.upper.syncer;
        syncer.handle_gossip(from, id, payload, now);
        let mut verdict = None;
        while let Some(output) = syncer.poll_output() {
            match output {
                Output::Store(op_id, op) => {
                    let done = op.run(&host.upper.store, &signer(0));
                    syncer.handle_store(op_id, done, now);
                }
                Output::Verdict(v_id, v) if v_id == id => verdict = Some(v),
                _ => {}
            }
        }
        verdict.unwrap()
    };
    // A second on: the budgets have refilled.
    net.run_for(Duration::from_secs(2));
    let stranger = signer(5);
    let challenge = |key: &SigningKey, digest: [u8; DIGEST_LEN], forge: bool| {
        let mut nonce = [1u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&UNIX.to_be_bytes());
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
    let over = syncer(&net, 0).stats().challenges_over_budget;
    assert_eq!(
        verdict_of(&mut net, challenge(&stranger, [7; DIGEST_LEN], false)),
        Verdict::Drop
    );
    assert_eq!(
        verdict_of(&mut net, challenge(&stranger, [8; DIGEST_LEN], true)),
        Verdict::Reject
    );
    // The stranger's second challenge still had budget: the forged one
    // spent none.
    assert_eq!(
        verdict_of(&mut net, challenge(&stranger, [9; DIGEST_LEN], false)),
        Verdict::Drop
    );
    assert_eq!(syncer(&net, 0).stats().challenges_over_budget, over);
    assert_eq!(syncer(&net, 0).stats().proofs_sent, budget);
}

#[test]
fn a_forged_receipt_is_reported() {
    let mut net = net(empty(2), |_, _| {});
    net.connect(0, 1);
    net.settle();
    let mut receipt = Receipt {
        signer: syncer(&net, 1).summary().key,
        ids: vec![[7; 32]],
        signature: [0; 64],
    };
    receipt.signature[0] = 1;
    inject(&mut net, 0, 1, &Message::Receipts(vec![receipt]));
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        Misbehaviour::BadReceipt.score()
    );
}

#[test]
fn an_undecodable_body_is_scored() {
    let mut net = net(empty(2), |_, _| {});
    net.connect(0, 1);
    net.settle();
    let conn = peer(&net, 0, 1);
    net.inject(
        0,
        conn,
        Header::notification(command::RECORDS, 0),
        Bytes::from_static(&[1, 2, 3]),
    );
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        Misbehaviour::Undecodable.score()
    );
}

/// Node 0 asks node 1 for `digest` by hand; node 1's own answers are held
/// back so the test answers instead. Returns the request.
fn ask_for(net: &mut Net, digest: Digest) -> u64 {
    net.hold(1, command::RECORDS, true);
    let now = net.now();
    let p = peer(net, 0, 1);
    let host = net.host_mut(0);
    host.upper.syncer.fetch.queue(p, [digest]);
    host.upper.syncer.pump_fetch(p, now);
    host.upper.syncer.finish(now);
    let request = host.upper.syncer.next_request - 1;
    host.upper.drain(&mut host.node, now);
    net.flush(0);
    net.settle();
    request
}

#[test]
fn a_forged_record_in_a_fetch_answer_is_scored_and_not_stored() {
    let mut net = net(empty(2), |_, _| {});
    net.connect(0, 1);
    net.settle();
    let good = record(5, "k", 1, b"v");
    let mut bytes = good.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = Record::from_bytes(&bytes, 1 << 20).unwrap();
    let request = ask_for(&mut net, forged.digest());
    inject(
        &mut net,
        0,
        1,
        &Message::Records {
            request,
            truncated: false,
            records: vec![forged.clone()],
        },
    );
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        0,
        "banned at once: over the threshold"
    );
    assert_eq!(net.host(0).bans.len(), 1);
    assert_eq!(store(&net, 0).get(forged.author(), b"k").unwrap(), None);
    assert_eq!(syncer(&net, 0).stats().invalid_records, 1);
}

#[test]
fn records_nobody_asked_for_are_not_stored() {
    let mut net = net(empty(2), |_, _| {});
    net.connect(0, 1);
    net.settle();
    let good = record(5, "k", 1, b"v");
    let unsolicited = Misbehaviour::Unsolicited.score();
    // No such request was ever made: not stored, and scored.
    inject(
        &mut net,
        0,
        1,
        &Message::Records {
            request: 9999,
            truncated: false,
            records: vec![good.clone()],
        },
    );
    assert_eq!(store(&net, 0).get(good.author(), b"k").unwrap(), None);
    assert_eq!(net.host(0).node.score(addr(1).ip()), unsolicited);
    // A late answer, to a request that timed out: ignored, not scored.
    let late = ask_for(&mut net, good.digest());
    net.run_for(Duration::from_secs(15));
    inject(
        &mut net,
        0,
        1,
        &Message::Records {
            request: late,
            truncated: false,
            records: vec![good.clone()],
        },
    );
    assert_eq!(store(&net, 0).get(good.author(), b"k").unwrap(), None);
    assert_eq!(net.host(0).node.score(addr(1).ip()), unsolicited);
    // A real request answered with a record that was not asked for.
    let other = record(5, "other", 1, b"w");
    let request = ask_for(&mut net, other.digest());
    inject(
        &mut net,
        0,
        1,
        &Message::Records {
            request,
            truncated: false,
            records: vec![good.clone()],
        },
    );
    assert_eq!(store(&net, 0).get(good.author(), b"k").unwrap(), None);
    assert_eq!(net.host(0).node.score(addr(1).ip()), 2 * unsolicited);
}

#[test]
fn a_symbol_stream_of_no_set_is_scored() {
    let mut net = net(empty(2), |_, _| {});
    net.connect(0, 1);
    net.settle();
    // Node 0 starts a reconciliation with node 1, whose answer is held.
    net.hold(1, command::RECON_SYMBOLS, true);
    let now = net.now();
    let p = peer(&net, 0, 1);
    {
        let host = net.host_mut(0);
        let syncer = &mut host.upper.syncer;
        let sketch = syncer.set.sketch.clone();
        let epoch = syncer.set.epoch;
        syncer.recon.start(
            p,
            &sketch,
            epoch,
            0,
            Duration::from_secs(30),
            &mut syncer.rng,
            now,
            &mut syncer.outbox,
        );
        syncer.finish(now);
        host.upper.drain(&mut host.node, now);
    }
    net.flush(0);
    net.settle();
    let session = match net.host(0).upper.syncer.recon.session() {
        Some(s) => s,
        None => panic!("no session"),
    };
    // The symbols of one element, plus a copy of it where it does not map:
    // whichever is peeled first, the copy cannot be explained.
    let mut encoder = Encoder::<DIGEST_LEN>::new(epoch_key(UNIX / EPOCH_SECS));
    let element = [42u8; DIGEST_LEN];
    encoder.insert(&element);
    let mut symbols = encoder.produce(64);
    let spare = symbols.iter().position(|s| s.count == 0).unwrap();
    symbols[spare] = symbols[0];
    inject(
        &mut net,
        0,
        1,
        &Message::ReconSymbols {
            session,
            status: SymbolStatus::More,
            symbols,
        },
    );
    assert_eq!(
        net.host(0).node.score(addr(1).ip()),
        Misbehaviour::BadSymbols.score()
    );
    assert!(!net.host(0).upper.syncer.recon.is_running());
}

#[test]
fn an_out_of_order_range_answer_is_scored_and_the_span_asked_again() {
    let all = records(1, "r", 200);
    let mut net = net(vec![all.clone(), all.clone(), Vec::new()], |_, _| {});
    // Node 0's range answers are held; the test answers one wrongly.
    net.hold(0, command::RANGE, true);
    net.connect(2, 0);
    net.settle();
    let (request, span) = net
        .host(2)
        .upper
        .syncer
        .catchup
        .as_ref()
        .unwrap()
        .asked_of(peer(&net, 2, 0))
        .unwrap();
    let mut in_span: Vec<Record> = all
        .iter()
        .filter(|r| crate::catchup::span_of(&r.key_hash().0) == span)
        .cloned()
        .collect();
    in_span.sort_by_key(Record::key_hash);
    in_span.reverse();
    inject(
        &mut net,
        2,
        0,
        &Message::Range {
            request,
            next: None,
            records: in_span,
        },
    );
    assert_eq!(
        net.host(2).node.score(addr(0).ip()),
        Misbehaviour::BadBatch.score()
    );
    net.hold(0, command::RANGE, false);
    net.connect(2, 1);
    run_until(&mut net, Duration::from_secs(120), "the catch-up", |n| {
        !syncer(n, 2).is_catching_up() && converged(n, &[1, 2])
    });
}

#[test]
fn fifty_nodes_converge_through_gossip_reconciliation_and_catch_up_with_latency_and_loss() {
    let now = Instant::now();
    let mut net: Net = Sim::new(now, 11);
    let n = 50;
    // Forty nodes share a history, each with some records of its own;
    // ten join empty, to catch up.
    let history = records(200, "h", 300);
    for i in 0..n {
        let mut initial = Vec::new();
        if i < 40 {
            initial.extend(history.iter().cloned());
            initial.extend(records(u8::try_from(i).unwrap(), "own", 3));
        }
        let mut c = sync_config(i);
        c.catchup_gap = 150;
        c.batch_records = 64;
        c.reconcile_interval = Duration::from_secs(10);
        let (node, upper) = host(i, c, memory_store(&initial), None, 4, now);
        net.add(addr(i), node, upper);
    }
    // Everyone knows a few others; the nodes dial on their own.
    for i in 0..n {
        let known: Vec<SocketAddr> = (1..=6).map(|k| addr((i + k * 7) % n)).collect();
        let now = net.now();
        net.host_mut(i)
            .node
            .add_addresses(&known, addr(i).ip(), now);
        net.flush(i);
    }
    net.set_latency(Box::new(|a, b, rng| {
        Duration::from_millis(5 + ((a * 7 + b * 3) % 40) as u64 + rng.below(5))
    }));
    net.set_loss(0.01);
    net.run_for(Duration::from_secs(20));
    // Fresh records from ten publishers while it all runs.
    for k in 0..10 {
        put(&mut net, k * 5, &format!("fresh{k}"), b"news");
        net.run_for(Duration::from_millis(300));
    }
    let everyone: Vec<usize> = (0..n).collect();
    run_until(
        &mut net,
        Duration::from_secs(600),
        "convergence of 50 nodes",
        |net| converged(net, &everyone),
    );
    let expected = 300 + 40 * 3 + 10;
    for i in 0..n {
        assert_eq!(store(&net, i).len().unwrap(), expected, "node {i}");
        assert!(!syncer(&net, i).is_catching_up());
    }
    let catchups: u64 = (40..n)
        .map(|i| syncer(&net, i).stats().catchup_records)
        .sum();
    let gossip: u64 = (0..n).map(|i| syncer(&net, i).stats().gossip_records).sum();
    let fetched: u64 = (0..n)
        .map(|i| syncer(&net, i).stats().fetched_records)
        .sum();
    assert!(catchups > 0, "nobody caught up");
    assert!(gossip > 0, "nothing came by gossip");
    assert!(fetched > 0, "reconciliation fetched nothing");
    assert!(net.stats().lost > 0, "the loss rate lost nothing");
    assert_eq!(net.stats().stuck_timers, 0);
}

#[test]
fn durations_of_any_length_in_the_configuration_do_not_panic() {
    let forever = Duration::from_secs(u64::MAX);
    let all = records(1, "r", 20);
    let mut net = net(vec![all, Vec::new()], |_, c| {
        c.reconcile_interval = forever;
        c.recon_timeout = forever;
        c.batch_timeout = forever;
        c.slow_penalty = forever;
        c.receipt_interval = forever;
        c.catchup_gap = 5;
    });
    net.connect(1, 0);
    run_until(&mut net, Duration::from_secs(60), "the catch-up", |n| {
        converged(n, &[0, 1])
    });
    put(&mut net, 0, "k", b"v");
    net.run_for(Duration::from_secs(10));
}

#[test]
fn only_authenticated_keys_are_learnt_and_a_summary_under_another_key_is_scored() {
    let now = Instant::now();
    let mut net: Net = Sim::new(now, 5);
    for i in 0..3 {
        let (mut node, upper) = host(i, sync_config(i), memory_store(&[]), None, 0, now);
        if i == 0 {
            // It takes peers without keys too.
            let mut c = node.config().clone();
            c.require_key = false;
            node = Node::new(
                c,
                upper.syncer.summary(),
                AddrMan::new(
                    [0; 32],
                    Grouping {
                        local_network: true,
                    },
                ),
                Vec::new(),
                i64::try_from(UNIX).unwrap(),
                0,
                now,
            );
        }
        if i == 1 {
            // Its connections authenticate no key: its summary's is a claim.
            let mut c = node.config().clone();
            c.node_key = None;
            c.require_key = false;
            node = Node::new(
                c,
                upper.syncer.summary(),
                AddrMan::new(
                    [1; 32],
                    Grouping {
                        local_network: true,
                    },
                ),
                Vec::new(),
                i64::try_from(UNIX).unwrap(),
                1,
                now,
            );
        }
        if i == 2 {
            // Its connections authenticate a key other than its summary's.
            let mut c = node.config().clone();
            c.node_key = Some([9; 32]);
            node = Node::new(
                c,
                upper.syncer.summary(),
                AddrMan::new(
                    [2; 32],
                    Grouping {
                        local_network: true,
                    },
                ),
                Vec::new(),
                i64::try_from(UNIX).unwrap(),
                2,
                now,
            );
        }
        net.add(addr(i), node, upper);
    }
    net.connect(0, 1);
    net.connect(0, 2);
    net.run_for(Duration::from_secs(2));
    let known = syncer(&net, 0).known_keys();
    assert!(
        !known.contains(&syncer(&net, 1).summary().key),
        "a claimed key was learnt"
    );
    assert!(!known.contains(&syncer(&net, 2).summary().key));
    assert_eq!(
        net.host(0).node.score(addr(2).ip()),
        Misbehaviour::WrongKey.score()
    );
    assert_eq!(net.host(0).node.score(addr(1).ip()), 0);
}

/// Makes node `i` claim `records` records in its summary, whatever its
/// store holds.
fn claim(net: &mut Net, i: usize, records: u64) {
    let now = net.now();
    let host = net.host_mut(i);
    let syncer = &mut host.upper.syncer;
    syncer.set.records = records;
    syncer.payload_dirty = true;
    syncer.next_payload = now;
    syncer.finish(now);
    host.upper.drain(&mut host.node, now);
    net.flush(i);
}

/// The range request node `victim` has in flight to node `source`: its id
/// and span.
fn asked(net: &Net, victim: usize, source: usize) -> Option<(u64, usize)> {
    net.host(victim)
        .upper
        .syncer
        .catchup
        .as_ref()?
        .asked_of(peer(net, victim, source))
}

/// A cursor inside `span`, past its start.
fn inside(span: usize) -> KeyHashBytes {
    let mut cursor = crate::catchup::span_end(span);
    cursor[strata_store::KEY_HASH_LEN - 1] = 0x10;
    cursor
}

/// A liar (node 1) claims a million records and answers every range
/// request with `answer`; an honest node (node 2) has the real records.
/// The victim (node 0) drops the liar after MAX_STRIKES answers, scores it
/// for each, and catches up from the honest node.
fn liar_is_dropped(answer: impl Fn(u64, usize) -> Message, scored_as: crate::score::Misbehaviour) {
    let all = records(1, "r", 300);
    let mut net = net(vec![Vec::new(), Vec::new(), all], |_, _| {});
    net.hold(1, command::RANGE, true);
    claim(&mut net, 1, 1_000_000);
    net.connect(0, 1);
    net.settle();
    assert!(syncer(&net, 0).is_catching_up());
    net.connect(0, 2);
    net.settle();
    let mut lies = 0;
    while let Some((request, span)) = asked(&net, 0, 1) {
        inject(&mut net, 0, 1, &answer(request, span));
        net.settle();
        lies += 1;
        assert!(
            lies <= crate::catchup::MAX_STRIKES,
            "the liar is still asked"
        );
        // Each lie is scored, until the score bans the liar.
        let liar = addr(1).ip();
        let banned = net.host(0).bans.iter().any(|(ip, _)| *ip == liar);
        assert!(
            banned || net.host(0).node.score(liar) == scored_as.score() * lies,
            "lie {lies} was not scored"
        );
    }
    // Dropped as a source, or banned, before the strikes ran out.
    let banned = net.host(0).bans.iter().any(|(ip, _)| *ip == addr(1).ip());
    assert!(banned || lies == crate::catchup::MAX_STRIKES, "{lies} lies");
    run_until(&mut net, Duration::from_secs(120), "the catch-up", |n| {
        !syncer(n, 0).is_catching_up() && converged(n, &[0, 2])
    });
    assert!(asked(&net, 0, 1).is_none());
}

#[test]
fn a_catchup_liar_that_moves_the_cursor_without_records_is_dropped() {
    liar_is_dropped(
        |request, span| Message::Range {
            request,
            next: Some(inside(span)),
            records: Vec::new(),
        },
        crate::score::Misbehaviour::NoProgress,
    );
}

#[test]
fn a_catchup_liar_that_ends_spans_empty_against_its_claim_is_dropped() {
    liar_is_dropped(
        |request, _| Message::Range {
            request,
            next: None,
            records: Vec::new(),
        },
        crate::score::Misbehaviour::ShortSpan,
    );
}

#[test]
fn a_catchup_source_that_never_answers_is_dropped_and_the_catchup_stops_without_one() {
    let mut net = net(empty(2), |_, _| {});
    net.hold(1, command::RANGE, true);
    claim(&mut net, 1, 1_000_000);
    net.connect(0, 1);
    net.settle();
    assert!(syncer(&net, 0).is_catching_up());
    // Stalls until the only source is dropped; then no source is left.
    run_until(
        &mut net,
        Duration::from_secs(600),
        "the catch-up to stop",
        |n| !syncer(n, 0).is_catching_up(),
    );
    let stats = syncer(&net, 0).stats();
    assert!(
        stats.catchup_waiting && stats.catchup_stopped == 1,
        "{stats:?}"
    );
    assert!(
        stats.stalls >= u64::from(crate::catchup::MAX_STRIKES),
        "{stats:?}"
    );
    assert!(
        events(&net, 0)
            .iter()
            .any(|e| matches!(e, Event::CatchupStopped { spans_left: 64 }))
    );
    // Its progress is kept for when a source appears.
    assert!(syncer(&net, 0).progress().is_some());
}

#[test]
fn a_range_answer_over_its_byte_limit_or_skipping_records_is_scored() {
    let all = records(1, "r", 2000);
    let mut net = net(vec![Vec::new(), all.clone()], |i, c| {
        if i == 0 {
            c.batch_bytes = 600;
        }
    });
    net.hold(1, command::RANGE, true);
    net.connect(0, 1);
    net.settle();
    let in_span = |span: usize| {
        let mut v: Vec<Record> = all
            .iter()
            .filter(|r| crate::catchup::span_of(&r.key_hash().0) == span)
            .cloned()
            .collect();
        v.sort_by_key(Record::key_hash);
        v
    };
    // Five records of about 250 bytes where 600 were asked for.
    let (request, span) = asked(&net, 0, 1).unwrap();
    let five: Vec<Record> = in_span(span).into_iter().take(5).collect();
    let next = Some(five[4].key_hash().0);
    inject(
        &mut net,
        0,
        1,
        &Message::Range {
            request,
            next,
            records: five,
        },
    );
    let bad = crate::score::Misbehaviour::BadBatch.score();
    assert_eq!(net.host(0).node.score(addr(1).ip()), bad);
    // One record, and a cursor past records it left out.
    net.settle();
    let (request, span) = asked(&net, 0, 1).unwrap();
    let records = in_span(span);
    inject(
        &mut net,
        0,
        1,
        &Message::Range {
            request,
            next: Some(records[3].key_hash().0),
            records: vec![records[0].clone()],
        },
    );
    // Scored again: past the ban threshold, which bans it.
    assert!(net.host(0).bans.iter().any(|(ip, _)| *ip == addr(1).ip()));
    assert_eq!(syncer(&net, 0).stats().records, 0);
}

#[test]
fn a_flood_of_range_requests_is_queued_within_bounds_refused_past_them_and_scored() {
    let all = records(1, "r", 300);
    let mut net = net(vec![all, Vec::new()], |_, _| {});
    net.connect(1, 0);
    net.settle();
    let flood = crate::serve::SERVE_QUEUE_PER_PEER + crate::serve::MAX_SERVE_PER_PEER + 4;
    let conn = peer(&net, 0, 1);
    for request in 0..flood as u64 {
        let message = Message::GetRange {
            request: 1_000 + request,
            after: None,
            end: crate::catchup::span_end(63),
            max_records: 4096,
            max_bytes: 8 << 20,
        };
        // All at once, before any read comes back.
        let header = Header::notification(message.command(), 0);
        let now = net.now();
        let host = net.host_mut(0);
        host.upper
            .syncer
            .handle_message(conn, header.command, &message.encode(), now);
        let _ = host.upper.syncer.poll_output();
    }
    let stats = syncer(&net, 0).stats();
    assert!(stats.serve_refused > 0, "{stats:?}");
    assert!(
        stats.serve_waiting <= crate::serve::SERVE_QUEUE_PER_PEER,
        "{stats:?}"
    );
    assert!(stats.reports > 0, "{stats:?}");
}

#[test]
fn a_replayed_receipt_is_dropped_before_its_signature_is_checked() {
    use ed25519_dalek::Signer as _;
    let mut net = net(empty(2), |_, _| {});
    net.connect(0, 1);
    net.settle();
    let signing = signer(101);
    let ids = vec![[7; 32]];
    let signature = signing
        .sign(&Receipt::signed_bytes(
            &signing.verifying_key().to_bytes(),
            &ids,
        ))
        .to_bytes();
    let receipt = Receipt {
        signer: signing.verifying_key().to_bytes(),
        ids,
        signature,
    };
    for _ in 0..3 {
        inject(&mut net, 0, 1, &Message::Receipts(vec![receipt.clone()]));
    }
    let stats = syncer(&net, 0).stats();
    assert_eq!(stats.receipts_replayed, 2, "{stats:?}");
    assert_eq!(net.host(0).node.score(addr(1).ip()), 0);
}

#[test]
fn two_nodes_that_differ_when_they_connect_reconcile_once_not_twice() {
    // Both ends see the difference in the handshake; if both started a
    // reconciliation each would fetch and offer the same records.
    let mut net = net(
        vec![records(1, "left", 40), records(2, "right", 40)],
        |_, c| c.reconcile_interval = Duration::from_secs(600),
    );
    net.connect(0, 1);
    run_until(&mut net, Duration::from_secs(60), "convergence", |n| {
        converged(n, &[0, 1])
    });
    let (a, b) = (syncer(&net, 0).stats(), syncer(&net, 1).stats());
    assert_eq!(a.reconciliations + b.reconciliations, 1, "{a:?}\n{b:?}");
    assert_eq!(a.failed_reconciliations + b.failed_reconciliations, 0);
    assert_eq!(store(&net, 0).len().unwrap(), 80);
}

#[test]
fn the_same_request_made_twice_is_served_twice() {
    // A retry or a second reader asks for what was just served: each
    // request carries its own id and gets its own answer, whatever the
    // content (nothing like gossip's duplicate suppression applies).
    let shared = records(1, "r", 3);
    let mut net = net(vec![shared.clone(), shared.clone()], |_, c| {
        c.reconcile_interval = Duration::from_secs(600);
    });
    net.connect(0, 1);
    net.settle();
    let before = syncer(&net, 0).stats();
    let digests = vec![shared[0].digest(), shared[1].digest()];
    for request in [900_001, 900_002] {
        inject(
            &mut net,
            0,
            1,
            &Message::GetRecords {
                request,
                digests: digests.clone(),
            },
        );
        net.settle();
    }
    let after = syncer(&net, 0).stats();
    let one = Message::Records {
        request: 900_001,
        truncated: false,
        records: shared[..2].to_vec(),
    }
    .encode()
    .len() as u64;
    assert_eq!(
        after.record_bytes_sent - before.record_bytes_sent,
        2 * one,
        "{after:?}"
    );
    assert_eq!(after.serve_refused, 0);
    assert_eq!(after.reports, before.reports);
}

#[test]
fn a_fresh_record_is_relayed_by_a_node_that_is_catching_up() {
    // Node 1 catches up from 0 and 2; a record put on 0 meanwhile goes on
    // through 1 to 2 at once: catching up does not turn fresh gossip away.
    let all = records(1, "r", 400);
    let mut net = net(vec![all.clone(), Vec::new(), all], |_, c| {
        c.reconcile_interval = Duration::from_secs(600);
    });
    net.connect(1, 0);
    net.connect(1, 2);
    run_until(
        &mut net,
        Duration::from_secs(30),
        "the catch-up to start",
        |n| syncer(n, 1).is_catching_up(),
    );
    let before = syncer(&net, 2).stats().gossip_records;
    let id = put(&mut net, 0, "fresh", b"news");
    run_until(
        &mut net,
        Duration::from_secs(30),
        "the fresh record on 2",
        |n| syncer(n, 2).stats().gossip_records > before,
    );
    assert!(
        syncer(&net, 1).is_catching_up(),
        "the catch-up ended before the record arrived: the test proves nothing"
    );
    let put = put_result(&net, 0, id).unwrap().clone();
    assert_eq!(
        store(&net, 2).get(put.record.author(), b"fresh").unwrap(),
        Some(put.record)
    );
}

/// Node 1 catches up 400 records from node 0, which serves 8,000 bytes a
/// second in all, while a record is put on node 0 every 100 ms for 4 s:
/// the records node 1 received by then, and the most catch-up batches it
/// had in flight meanwhile.
fn catch_up_beside_relay(share: u8) -> (u64, usize) {
    let all = records(1, "r", 400);
    let mut net = net(vec![all, Vec::new()], |i, c| {
        c.relay_busy_share = share;
        c.reconcile_interval = Duration::from_secs(600);
        if i == 0 {
            c.serve_total_rate = 8_000;
        }
    });
    net.connect(1, 0);
    run_until(
        &mut net,
        Duration::from_secs(30),
        "the catch-up to start",
        |n| syncer(n, 1).is_catching_up(),
    );
    let mut in_flight = 0;
    for k in 0..40 {
        put(&mut net, 0, &format!("fresh{k}"), b"news");
        for _ in 0..10 {
            let until = net.now() + Duration::from_millis(10);
            net.run_until(until);
            in_flight = in_flight.max(syncer(&net, 1).stats().catchup_in_flight);
        }
        assert!(syncer(&net, 0).stats().relay_busy || share == 100);
    }
    let received = syncer(&net, 1).stats().catchup_received;
    // Once relay is idle the catch-up finishes at the full rate.
    run_until(&mut net, Duration::from_secs(120), "the catch-up", |n| {
        !syncer(n, 1).is_catching_up() && converged(n, &[0, 1])
    });
    assert!(!syncer(&net, 0).stats().relay_busy);
    (received, in_flight)
}

#[test]
fn while_relay_has_work_catch_up_keeps_its_share_of_serving_and_of_batches_in_flight() {
    let (full, full_in_flight) = catch_up_beside_relay(100);
    let (share, share_in_flight) = catch_up_beside_relay(10);
    // At 8,000 bytes a second node 0 serves about 170 records in 4 s; a
    // tenth of that while relay has work.
    assert!(full >= 100, "{full}");
    assert!(share > 0 && share * 4 <= full, "{share} of {full}");
    // The catching-up node relays too: it keeps one batch in flight, not
    // its usual eight.
    assert!(full_in_flight > 1, "{full_in_flight}");
    assert_eq!(share_in_flight, 1);
}

#[test]
fn a_record_over_its_authors_quota_is_neither_stored_nor_passed_on() {
    // Node 1 lets an author have one record; node 0's second record stops
    // there: node 2, behind node 1 only, never hears of it.
    let now = Instant::now();
    let mut net = Sim::new(now, 3);
    for i in 0..3 {
        let config = StoreConfig {
            max_records_per_author: if i == 1 { 1 } else { 1 << 20 },
            ..StoreConfig::default()
        };
        let store = Arc::new(Store::in_memory(config).unwrap());
        let mut c = sync_config(i);
        c.reconcile_interval = Duration::from_secs(600);
        let (node, upper) = host(i, c, store, None, 0, now);
        net.add(addr(i), node, upper);
    }
    net.settle();
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    put(&mut net, 0, "first", b"v");
    net.run_for(Duration::from_secs(2));
    put(&mut net, 0, "second", b"v");
    net.run_for(Duration::from_secs(2));
    assert_eq!(store(&net, 0).len().unwrap(), 2);
    assert_eq!(store(&net, 1).len().unwrap(), 1);
    assert_eq!(
        store(&net, 2).len().unwrap(),
        1,
        "the record over quota was passed on"
    );
    assert!(syncer(&net, 1).stats().invalid_records >= 1);
    assert_eq!(
        syncer(&net, 1).stats().reports,
        0,
        "a quota is no misbehaviour"
    );
}

#[test]
fn a_silent_catchup_liar_once_dropped_never_pulls_the_node_back_into_catch_up() {
    // Node 1 claims a million records and serves none; node 2 is honest.
    // Once node 0 has dropped the liar it takes what node 2 has and is
    // done; the liar's claim, repeated at every timed sync, must not start
    // a fresh catch-up that asks it again (and keeps node 0 out of
    // reconciliation while it stalls).
    let mut net = net(vec![Vec::new(), Vec::new(), records(2, "h", 10)], |_, _| {});
    net.hold(1, command::RANGE, true);
    claim(&mut net, 1, 1_000_000);
    net.connect(0, 1);
    net.connect(0, 2);
    net.settle();
    run_until(
        &mut net,
        Duration::from_secs(600),
        "the honest records",
        |n| store(n, 0).len().unwrap() == 10 && !syncer(n, 0).is_catching_up(),
    );
    let started = |n: &Net| {
        events(n, 0)
            .iter()
            .filter(|e| matches!(e, Event::CatchupStarted))
            .count()
    };
    let before = started(&net);
    net.run_for(Duration::from_secs(900));
    assert!(!syncer(&net, 0).is_catching_up());
    assert_eq!(
        started(&net),
        before,
        "the dropped liar started another catch-up"
    );
}

/// Whether node `i`'s sketch and count are what a rebuild from its store
/// gives.
fn sketch_matches_store(net: &Net, i: usize) -> bool {
    let s = syncer(net, i);
    let op = Op::Sketch {
        key: epoch_key(s.set.epoch),
        len: s.config.sketch_len,
    };
    match op.run(store(net, i), &signer(0)) {
        Done::Sketch(Ok((sketch, n))) => {
            sketch.symbols() == s.set.sketch.symbols() && n == s.set.records
        }
        _ => false,
    }
}

#[test]
fn a_deletion_replaces_the_record_everywhere_and_tombstones_and_expired_records_are_collected() {
    // Node 0's own records, held by all three nodes at start.
    let author = signer(100);
    let own = |key: &str, expires: u64| {
        Record::sign_as(&author, Kind::Value, expires, key.as_bytes(), 1, b"v").unwrap()
    };
    let held = vec![own("doomed", 0), own("brief", UNIX + 30), own("kept", 0)];
    let mut net = net(vec![held.clone(), held.clone(), held], |_, _| {});
    net.connect(0, 1);
    net.settle();

    let now = net.now();
    let host = net.host_mut(0);
    let put = host
        .upper
        .syncer
        .put(Draft::tombstone(*b"doomed", UNIX + 60), now);
    host.upper.drain(&mut host.node, now);
    net.flush(0);
    net.run_for(Duration::from_secs(1));
    let tombstone = put_result(&net, 0, put).unwrap().record.clone();
    assert!(tombstone.is_tombstone());
    assert_eq!(tombstone.version(), 2);
    let key = author.verifying_key().to_bytes();
    assert_eq!(
        store(&net, 1).get(&key, b"doomed").unwrap(),
        Some(tombstone.clone())
    );

    // Node 2 was away: it learns of the deletion by reconciliation.
    net.connect(1, 2);
    run_until(
        &mut net,
        Duration::from_secs(20),
        "the deletion at node 2",
        |n| store(n, 2).get(&key, b"doomed").unwrap().as_ref() == Some(&tombstone),
    );
    for i in 0..3 {
        assert!(sketch_matches_store(&net, i), "node {i}");
    }

    // The expiring record goes at its time, everywhere.
    run_until(
        &mut net,
        Duration::from_secs(40),
        "the expired record collected",
        |n| (0..3).all(|i| store(n, i).get(&key, b"brief").unwrap().is_none()),
    );
    assert!(net.now() >= syncer(&net, 0).start + Duration::from_secs(30));
    // Then the tombstone, at its horizon.
    run_until(
        &mut net,
        Duration::from_secs(40),
        "the tombstone collected",
        |n| (0..3).all(|i| store(n, i).len().unwrap() == 1),
    );
    for i in 0..3 {
        let s = syncer(&net, i).stats();
        assert_eq!(s.collected, 2, "node {i}");
        assert_eq!(s.records, 1);
        assert!(sketch_matches_store(&net, i), "node {i}");
        let c = store(&net, i).collection().unwrap();
        assert_eq!(
            (c.tombstones, c.collected_tombstones, c.collected_expired),
            (0, 1, 1)
        );
    }
    let fingerprints: Vec<u64> = (0..3)
        .map(|i| syncer(&net, i).summary().fingerprint)
        .collect();
    assert!(fingerprints.iter().all(|f| *f == fingerprints[0]));
    // Nothing differs: reconciliations fetch nothing more.
    let fetched: Vec<u64> = (0..3)
        .map(|i| syncer(&net, i).stats().fetched_records)
        .collect();
    net.run_for(Duration::from_secs(20));
    for (i, before) in fetched.into_iter().enumerate() {
        assert_eq!(syncer(&net, i).stats().fetched_records, before);
        assert!(store(&net, i).get(&key, b"kept").unwrap().is_some());
    }
}

#[test]
fn an_expired_record_is_dropped_where_it_arrives_and_its_sender_is_not_scored() {
    let mut net = net(empty(2), |_, _| {});
    net.connect(0, 1);
    net.settle();
    // Node 0 publishes a record whose time has already come.
    let now = net.now();
    let host = net.host_mut(0);
    host.upper.syncer.put(
        Draft::value(*b"late", b"v".to_vec()).expiring(UNIX - 1),
        now,
    );
    host.upper.drain(&mut host.node, now);
    net.flush(0);
    net.run_for(Duration::from_secs(2));
    let s = syncer(&net, 1).stats();
    assert_eq!(s.expired_refused, 1);
    assert_eq!(s.reports, 0);
    assert!(store(&net, 1).is_empty().unwrap());
    // The sender collects it too.
    assert!(store(&net, 0).is_empty().unwrap());
    assert_eq!(syncer(&net, 0).stats().collected, 1);
    assert!(sketch_matches_store(&net, 0));
    assert_eq!(net.connections(), 1);
}
