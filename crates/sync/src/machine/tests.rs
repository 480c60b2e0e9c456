//! The state machine driven by hand: machines wired to each other in
//! memory, memory stores, time advanced to each wake-up; no sockets, no
//! real time.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::{BTreeSet, HashSet, VecDeque};

use strata_store::Config as StoreConfig;

use super::*;
use crate::wire::check_gossip;

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn record(author: u8, key: &str, version: u64, value: &[u8]) -> Record {
    Record::sign(&signer(author), key.as_bytes(), version, value).unwrap()
}

fn memory_store() -> Arc<Store> {
    Arc::new(Store::in_memory(StoreConfig::default()).unwrap())
}

fn config(i: usize) -> Config {
    let mut c = Config::new(signer(100 + i as u8));
    c.reconcile_interval = Duration::from_secs(5);
    c.catchup_gap = 100;
    c.batch_records = 5;
    c.batch_timeout = Duration::from_secs(10);
    c
}

/// Frames in flight: (from, to, command, body).
type Frame = (usize, usize, u32, Bytes);

struct Net {
    nodes: Vec<Sync>,
    now: Instant,
    links: BTreeSet<(usize, usize)>,
    queue: VecDeque<Frame>,
    seen: Vec<HashSet<MessageId>>,
    reports: Vec<(usize, usize, u32)>,
    events: Vec<(usize, Event)>,
    /// Frames from (node, command) that are lost.
    lose: Vec<(usize, u32)>,
    /// Saved progress per node.
    progress: Vec<Option<Vec<u8>>>,
    /// Frames still to deliver before `pump` stops delivering.
    budget: usize,
}

impl Net {
    fn new(n: usize, configure: impl Fn(usize, &mut Config)) -> Net {
        let now = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut c = config(i);
                configure(i, &mut c);
                Sync::new(c, memory_store(), None, now, 1_700_000_000, i as u64).unwrap()
            })
            .collect();
        Net {
            nodes,
            now,
            links: BTreeSet::new(),
            queue: VecDeque::new(),
            seen: vec![HashSet::new(); n],
            reports: Vec::new(),
            events: Vec::new(),
            lose: Vec::new(),
            progress: vec![None; n],
            budget: usize::MAX,
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    fn connect(&mut self, a: usize, b: usize) {
        self.links.insert((a.min(b), a.max(b)));
        let now = self.now;
        for (x, y) in [(a, b), (b, a)] {
            self.nodes[x].handle_peer_ready(now, PeerId(y as u64));
            let summary = self.nodes[y].summary();
            self.nodes[x].handle_payload(now, PeerId(y as u64), summary);
        }
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        self.links.remove(&(a.min(b), a.max(b)));
        let now = self.now;
        self.nodes[a].handle_peer_gone(now, PeerId(b as u64));
        self.nodes[b].handle_peer_gone(now, PeerId(a as u64));
        self.queue
            .retain(|(f, t, _, _)| !((*f == a && *t == b) || (*f == b && *t == a)));
    }

    fn neighbours(&self, i: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&j| j != i && self.connected(i, j))
            .collect()
    }

    /// Delivers gossip from `from` (who already has it) to its neighbours,
    /// and on, each node once.
    fn gossip(&mut self, from: usize, payload: Bytes) {
        let id = MessageId::of(&payload);
        self.seen[from].insert(id);
        let mut wave = vec![from];
        while let Some(sender) = wave.pop() {
            for j in self.neighbours(sender) {
                if !self.seen[j].insert(id) {
                    continue;
                }
                match check_gossip(&payload, strata_store::DEFAULT_MAX_VALUE_LEN) {
                    Ok(record) => {
                        let item = Gossiped {
                            peer: PeerId(sender as u64),
                            id,
                            record,
                        };
                        let now = self.now;
                        self.nodes[j].handle_gossip(now, vec![item]);
                        wave.push(j);
                    }
                    Err(_) => self.reports.push((j, sender, 10)),
                }
            }
        }
    }

    /// Carries out outputs and delivers frames until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(output) = self.nodes[i].poll_output() {
                    moved = true;
                    match output {
                        Output::Send {
                            peer,
                            command,
                            body,
                            ..
                        } => {
                            let to = peer.0 as usize;
                            if self.connected(i, to) && !self.lose.contains(&(i, command)) {
                                self.queue.push_back((i, to, command, body));
                            }
                        }
                        Output::Propagate(payload) => self.gossip(i, payload),
                        Output::Report { peer, score } => {
                            self.reports.push((i, peer.0 as usize, score));
                        }
                        Output::SetPayload(summary) => {
                            let now = self.now;
                            for j in self.neighbours(i) {
                                self.nodes[j].handle_payload(
                                    now,
                                    PeerId(i as u64),
                                    summary.clone(),
                                );
                            }
                        }
                        Output::SaveProgress(p) => self.progress[i] = p,
                        Output::Event(e) => self.events.push((i, e)),
                    }
                }
            }
            if self.budget == 0 {
                return;
            }
            if let Some((from, to, command, body)) = self.queue.pop_front() {
                self.budget = self.budget.saturating_sub(1);
                moved = true;
                let now = self.now;
                self.nodes[to].handle_message(now, PeerId(from as u64), command, &body);
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs until `done` holds, advancing time to each wake-up; panics
    /// after `limit` of simulated time.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) {
        let end = self.now + limit;
        loop {
            self.pump();
            if done(self) {
                return;
            }
            let next = self
                .nodes
                .iter()
                .filter_map(Sync::poll_timeout)
                .min()
                .unwrap_or(end);
            assert!(next < end, "not done after {limit:?} of simulated time");
            self.now = self.now.max(next);
            let now = self.now;
            for node in &mut self.nodes {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
        }
    }

    fn digests(&self, i: usize) -> Vec<Digest> {
        self.nodes[i]
            .store()
            .scan_digests(None, MAX_PAGE_DIGESTS)
            .unwrap()
            .digests
    }

    fn converged(&self, nodes: &[usize]) -> bool {
        let first = self.digests(nodes[0]);
        nodes[1..].iter().all(|&i| self.digests(i) == first)
    }

    fn put_direct(&mut self, i: usize, records: &[Record]) {
        // As if written before the machine started: through the machine,
        // without gossip.
        let now = self.now;
        for r in records {
            self.nodes[i].put(now, r.clone()).unwrap();
        }
        while self.nodes[i].poll_output().is_some() {}
        self.nodes[i].flush_payload(now + PAYLOAD_INTERVAL);
    }
}

fn records(author: u8, prefix: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|k| record(author, &format!("{prefix}{k}"), 1, &[author; 100]))
        .collect()
}

#[test]
fn a_put_record_reaches_every_node_by_gossip() {
    let mut net = Net::new(3, |_, _| {});
    net.connect(0, 1);
    net.connect(1, 2);
    net.pump();
    let r = record(1, "hello", 1, b"world");
    let now = net.now;
    let put = net.nodes[0].put(now, r.clone()).unwrap();
    assert!(put.outcome.is_stored());
    assert!(put.id.is_some());
    net.pump();
    for i in 0..3 {
        assert_eq!(
            net.nodes[i].store().get(r.author(), r.key()).unwrap(),
            Some(r.clone())
        );
        assert_eq!(net.nodes[i].stats().records, 1);
    }
    assert_eq!(
        net.nodes[0].summary(),
        net.nodes[2].summary().with_key(net.nodes[0].summary().key)
    );
}

impl Summary {
    fn with_key(mut self, key: [u8; 32]) -> Summary {
        self.key = key;
        self
    }
}

#[test]
fn reconciliation_heals_disjoint_sets_and_ties() {
    let mut net = Net::new(2, |_, _| {});
    net.put_direct(0, &records(1, "a", 60));
    net.put_direct(1, &records(2, "b", 40));
    // Shared records, and one key updated on both sides.
    let shared = records(3, "s", 50);
    net.put_direct(0, &shared);
    net.put_direct(1, &shared);
    net.put_direct(0, &[record(3, "s1", 2, b"left")]);
    net.put_direct(1, &[record(3, "s2", 3, b"right")]);
    // Same version, different content: a tie.
    let tie_a = record(4, "tie", 7, b"one");
    let tie_b = record(4, "tie", 7, b"two");
    net.put_direct(0, std::slice::from_ref(&tie_a));
    net.put_direct(1, std::slice::from_ref(&tie_b));
    let winner = if tie_a.id() < tie_b.id() {
        &tie_a
    } else {
        &tie_b
    };

    net.connect(0, 1);
    net.run_until(Duration::from_secs(60), |n| n.converged(&[0, 1]));
    for i in 0..2 {
        let store = net.nodes[i].store();
        assert_eq!(
            store.get(tie_a.author(), b"tie").unwrap().as_ref(),
            Some(winner)
        );
        assert_eq!(
            store
                .get(&signer(3).verifying_key().to_bytes(), b"s1")
                .unwrap()
                .unwrap()
                .version(),
            2
        );
        assert_eq!(store.len().unwrap(), 60 + 40 + 50 + 1);
        assert_eq!(net.nodes[i].stats().records, 151);
    }
    // The sketches agree again, so the fingerprints do.
    assert_eq!(
        net.nodes[0].summary().fingerprint,
        net.nodes[1].summary().fingerprint
    );
    assert!(net.reports.is_empty(), "{:?}", net.reports);

    // The next reconciliation finds nothing: the tie is not exchanged again.
    let fetched_before: u64 = (0..2).map(|i| net.nodes[i].stats().fetched_records).sum();
    let recons = net.nodes[0].stats().reconciliations + net.nodes[1].stats().reconciliations;
    net.run_until(Duration::from_secs(60), |n| {
        n.nodes[0].stats().reconciliations + n.nodes[1].stats().reconciliations > recons + 1
    });
    let fetched_after: u64 = (0..2).map(|i| net.nodes[i].stats().fetched_records).sum();
    assert_eq!(fetched_before, fetched_after);
    let last = net
        .events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            Event::Reconciled {
                fetched, offered, ..
            } => Some((*fetched, *offered)),
            _ => None,
        })
        .unwrap();
    assert_eq!(last, (0, 0));
}

#[test]
fn a_fresh_node_catches_up_from_several_peers() {
    let mut net = Net::new(4, |_, _| {});
    let all = records(1, "r", 240);
    for i in 0..3 {
        net.put_direct(i, &all);
    }
    net.connect(3, 0);
    net.connect(3, 1);
    net.connect(3, 2);
    assert!(net.nodes[3].is_catching_up());
    net.run_until(Duration::from_secs(120), |n| {
        !n.nodes[3].is_catching_up() && n.converged(&[0, 3])
    });
    let stats = net.nodes[3].stats();
    assert_eq!(stats.records, 240);
    assert_eq!(stats.catchup_records, 240);
    assert!(stats.batches >= 64, "{stats:?}");
    assert!(
        net.events
            .iter()
            .any(|(i, e)| *i == 3 && *e == Event::CatchupDone)
    );
    assert_eq!(net.progress[3], None);
    // Every peer served some of it.
    for i in 0..3 {
        assert!(
            net.nodes[i].stats().record_bytes_sent > 0,
            "peer {i} served nothing"
        );
    }
}

#[test]
fn a_stalled_batch_is_asked_of_another_peer() {
    let mut net = Net::new(3, |_, _| {});
    let all = records(1, "r", 200);
    net.put_direct(0, &all);
    net.put_direct(1, &all);
    // Node 1 never answers range requests.
    net.lose.push((1, command::RANGE));
    net.connect(2, 0);
    net.connect(2, 1);
    net.run_until(Duration::from_secs(300), |n| {
        !n.nodes[2].is_catching_up() && n.converged(&[0, 2])
    });
    let stats = net.nodes[2].stats();
    assert!(stats.stalls >= 1, "{stats:?}");
    assert_eq!(stats.records, 200);
}

#[test]
fn catch_up_resumes_from_saved_progress() {
    let mut net = Net::new(2, |_, _| {});
    let all = records(1, "r", 200);
    net.put_direct(0, &all);
    net.connect(1, 0);
    // Let a few batches land, then "crash" node 1.
    net.budget = 12;
    net.pump();
    net.budget = usize::MAX;
    assert!(net.nodes[1].stats().batches >= 4);
    let progress = net.progress[1].clone().unwrap();
    let stored_before = net.nodes[1].stats().records;
    assert!(stored_before > 0 && stored_before < 200);
    let store = net.nodes[1].store().clone();
    let now = net.now;
    net.disconnect(1, 0);
    net.nodes[1] = Sync::new(config(1), store, Some(&progress), now, 1_700_000_000, 9).unwrap();
    assert!(net.nodes[1].is_catching_up());
    net.connect(1, 0);
    net.run_until(Duration::from_secs(120), |n| {
        !n.nodes[1].is_catching_up() && n.converged(&[0, 1])
    });
    // Only what was not stored before the crash came again.
    let again = net.nodes[1].stats().catchup_records;
    assert_eq!(
        again + stored_before,
        200,
        "fetched {again} after the restart"
    );
}

#[test]
fn receipts_reach_the_publisher_and_a_silent_node_is_missing() {
    let mut net = Net::new(4, |_, c| c.receipt_interval = Duration::from_millis(100));
    // A line 0 - 1 - 2, and 3 known to 0 but gone.
    net.connect(0, 1);
    net.connect(1, 2);
    net.connect(0, 3);
    net.pump();
    net.disconnect(0, 3);
    // A first message teaches 0 the key of 2 (from its receipt).
    let now = net.now;
    net.nodes[0]
        .publish(now, record(1, "warm", 1, b"up"), 1.0, None)
        .unwrap();
    net.run_until(Duration::from_secs(10), |n| {
        n.nodes[0].known_keys().len() == 3
    });

    let now = net.now;
    let put = net.nodes[0]
        .publish(now, record(1, "news", 1, b"x"), 0.6, None)
        .unwrap();
    let id = put.id.unwrap();
    net.run_until(Duration::from_secs(10), |n| {
        n.nodes[0].delivery_status(&id).unwrap().confirmed.len() == 2
    });
    let status = net.nodes[0].delivery_status(&id).unwrap();
    let key = |i: usize| net.nodes[i].summary().key;
    assert_eq!(key_set(&status.confirmed), key_set(&[key(1), key(2)]));
    assert_eq!(status.missing, vec![key(3)]);
    assert!(status.satisfied, "2 of 3 is over 0.6");
    assert!(
        net.events
            .iter()
            .any(|(i, e)| *i == 0 && matches!(e, Event::Delivered(s) if s.id == id))
    );
    // Bandwidth: receipts of one message cost well under 1 KB per node.
    let bytes: u64 = (0..4)
        .map(|i| net.nodes[i].stats().receipt_bytes_sent)
        .sum();
    assert!(
        bytes / 2 / 3 < 1024,
        "{bytes} receipt bytes for two messages"
    );
}

#[test]
fn a_forged_receipt_is_reported() {
    let mut net = Net::new(2, |_, _| {});
    net.connect(0, 1);
    let mut receipt = crate::wire::Receipt {
        signer: net.nodes[1].summary().key,
        ids: vec![[7; 32]],
        signature: [0; 64],
    };
    receipt.signature[0] = 1;
    let body = Message::Receipts(vec![receipt]).encode();
    let now = net.now;
    net.nodes[0].handle_message(now, PeerId(1), command::RECEIPTS, &body);
    net.pump();
    assert!(net.reports.contains(&(0, 1, SCORE_BAD_RECEIPT)));
}

#[test]
fn misbehaviour_is_reported_and_forged_records_are_not_stored() {
    let mut net = Net::new(2, |_, _| {});
    net.connect(0, 1);
    let now = net.now;

    // Undecodable body.
    net.nodes[0].handle_message(now, PeerId(1), command::RECORDS, &[1, 2, 3]);
    net.pump();
    assert!(net.reports.contains(&(0, 1, SCORE_UNDECODABLE)));

    // A forged record in answer to a fetch.
    let good = record(5, "k", 1, b"v");
    let mut bytes = good.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = Record::from_bytes(&bytes, 1 << 20).unwrap();
    net.nodes[0].queue_fetch(now, PeerId(1), vec![forged.digest()]);
    let request = net.nodes[0].next_request - 1;
    // Node 1 does not have it; answer by hand.
    while net.nodes[0].poll_output().is_some() {}
    let body = Message::Records {
        request,
        truncated: false,
        records: vec![forged.clone()],
    }
    .encode();
    net.nodes[0].handle_message(now, PeerId(1), command::RECORDS, &body);
    net.pump();
    assert!(net.reports.contains(&(0, 1, SCORE_INVALID_RECORD)));
    assert_eq!(
        net.nodes[0].store().get(forged.author(), b"k").unwrap(),
        None
    );

    // Records nobody asked for.
    let body = Message::Records {
        request: 9999,
        truncated: false,
        records: vec![good.clone()],
    }
    .encode();
    net.nodes[0].handle_message(now, PeerId(1), command::RECORDS, &body);
    net.pump();
    assert_eq!(net.nodes[0].store().get(good.author(), b"k").unwrap(), None);

    // A symbol stream that is no set's.
    net.nodes[1].put(now, record(6, "x", 1, b"y")).unwrap();
    while net.nodes[1].poll_output().is_some() {}
    net.nodes[0].start_reconcile(now, PeerId(1));
    let session = net.nodes[0].outgoing.as_ref().unwrap().session;
    while net.nodes[0].poll_output().is_some() {}
    let mut bad = crate::riblt::CodedSymbol::<DIGEST_LEN>::EMPTY;
    bad.count = 1;
    bad.sum = [9; DIGEST_LEN];
    let mut symbols = vec![bad; 3];
    symbols[1].count = -5;
    let body = Message::ReconSymbols {
        session,
        status: SymbolStatus::More,
        symbols,
    }
    .encode();
    net.nodes[0].handle_message(now, PeerId(1), command::RECON_SYMBOLS, &body);
    net.pump();
    let reported_symbols = net.reports.contains(&(0, 1, SCORE_BAD_SYMBOLS));
    // Junk that is not inconsistent yet does not decode either; it must not
    // leave the session stuck.
    assert!(reported_symbols || net.nodes[0].outgoing.is_some());
}

#[test]
fn an_oversized_range_answer_is_reported_and_the_span_asked_again() {
    let mut net = Net::new(3, |_, _| {});
    let all = records(1, "r", 200);
    net.put_direct(0, &all);
    net.put_direct(1, &all);
    net.connect(2, 0);
    // Node 2 asked node 0 for spans; answer one with too many records.
    let (request, i) = net.nodes[2]
        .requests
        .iter()
        .find_map(|(id, p)| match p.kind {
            Kind::Span(i) => Some((*id, i)),
            _ => None,
        })
        .unwrap();
    let in_span: Vec<Record> = {
        let mut v: Vec<Record> = all
            .iter()
            .filter(|r| span_of(&r.key_hash().0) == i)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.key_hash());
        v
    };
    // A batch out of order.
    let mut reversed = in_span.clone();
    reversed.reverse();
    let body = Message::Range {
        request,
        next: None,
        records: reversed,
    }
    .encode();
    let now = net.now;
    net.queue.clear();
    net.nodes[2].handle_message(now, PeerId(0), command::RANGE, &body);
    net.pump();
    assert!(net.reports.contains(&(2, 0, SCORE_BAD_BATCH)));
    net.connect(2, 1);
    net.run_until(Duration::from_secs(120), |n| {
        !n.nodes[2].is_catching_up() && n.converged(&[0, 2])
    });
}

#[test]
fn range_reads_walk_a_span_in_order() {
    let net = Net::new(1, |_, _| {});
    let store = net.nodes[0].store().clone();
    store.put_batch(&records(1, "r", 300)).unwrap();
    let mut machine = Sync::new(config(0), store, None, net.now, 1_700_000_000, 1).unwrap();
    let mut seen = 0;
    for i in 0..crate::catchup::SPANS {
        let mut after = crate::catchup::span_start(i);
        loop {
            let (records, next) = machine.read_range(after, span_end(i), 7, 1 << 20).unwrap();
            assert!(range_ok(after, span_end(i), 7, next, &records));
            seen += records.len();
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    assert_eq!(seen, 300);
    // The byte cap cuts a batch, keeping at least one record.
    let (records, next) = machine.read_range(None, span_end(63), 100, 10).unwrap();
    assert_eq!(records.len(), 1);
    assert!(next.is_some());
    let _ = &mut machine;
}
