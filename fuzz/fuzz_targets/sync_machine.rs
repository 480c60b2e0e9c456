//! The sync machine under hostile peers: the input is a small program of
//! peers coming and going, their summaries, message bodies (raw, or built
//! from records the harness signs, including answers to what the machine
//! asked), gossip, local puts and inserts, verdicts and jumps in time, run
//! against one [`Syncer`] whose store ops run at once on a store in memory.
//! After every step, whatever the input:
//!
//! - nothing panics, and one step yields fewer than [`MAX_OUTPUTS`] outputs;
//! - every message the machine sends goes to a ready peer, decodes with the
//!   sync layer's own decoder under the same command, and fits the body cap
//!   the node's decoder applies to that command;
//! - what it propagates is a record with a valid signature, and stored;
//!   every gossiped record got its verdict once its check ran; a challenge
//!   it gossips is its own; a saved
//!   progress file reads back to the same bytes;
//! - its record count and the fingerprint it advertises are those of the
//!   store: a sketch built afresh from the store's digests agrees;
//! - after `handle_timeout(now)`, the next timeout is later than `now`.
//!
//! Program format: byte 0 picks settings, then each op is one byte
//! (`% OPS`) and its operands; missing bytes read as zeros, and the program
//! ends with its input.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_node::{MessageId, PeerId, Verdict};
use strata_store::{
    Config as StoreConfig, DIGEST_LEN, Digest, Draft, KEY_HASH_LEN, Kind, Record, Store,
};

/// The Unix time at the machine's start.
const UNIX: u64 = 1_700_000_000;

/// A kind and an expiry: mostly values that never expire; values and
/// tombstones that expire within a minute of the start, some already.
fn life(input: &mut Input<'_>) -> (Kind, u64) {
    let expires = UNIX - 2 + u64::from(input.u8() % 64);
    match input.u8() % 4 {
        0 => (Kind::Value, expires),
        1 => (Kind::Tombstone, expires),
        _ => (Kind::Value, 0),
    }
}
use strata_sync::ed25519_dalek::{Signer as _, SigningKey};
use strata_sync::riblt::Sketch;
use strata_sync::wire::{
    self, Challenge, Message, Proof, Receipt, SymbolStatus, body_caps, command, decode_gossip,
    gossip_payload,
};
use strata_sync::{Config, Done, EPOCH_SECS, Event, Op, Output, Summary, Syncer, epoch_key};

/// Most outputs one step may yield.
const MAX_OUTPUTS: usize = 10_000;
/// Largest record value, small so that records fit in fuzz inputs.
const MAX_VALUE_LEN: usize = 256;
/// Coded symbols in the sketch, small so that rebuilding it is cheap.
const SKETCH_LEN: usize = 64;
/// Most peers up at once.
const MAX_PEERS: usize = 6;
/// Most records, requests and ids the harness remembers.
const MAX_REMEMBERED: usize = 64;
/// The body cap of the node's decoder for commands without one of their
/// own.
const DEFAULT_CAP: u64 = 64 * 1024;

const PEER_READY: u8 = 0;
const PEER_GONE: u8 = 1;
const PAYLOAD: u8 = 2;
const RAW: u8 = 3;
const ANSWER: u8 = 4;
const BUILT: u8 = 5;
const GOSSIP: u8 = 6;
const PUT: u8 = 7;
const INSERT: u8 = 8;
const VERDICT: u8 = 9;
const WAIT: u8 = 10;
const TIMER: u8 = 11;
const RECONCILE: u8 = 12;
const CHALLENGE: u8 = 13;
const OPS: u8 = 14;

/// The fuzz input, read front to back; past its end every read is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
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
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = usize::from(self.u16()) % (max + 1);
        let (head, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        head.to_vec()
    }

    /// An index below `len`, or `None` when there is nothing to pick.
    fn pick(&mut self, len: usize) -> Option<usize> {
        let b = usize::from(self.u8());
        (len > 0).then(|| b % len)
    }
}

fn remember<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= MAX_REMEMBERED {
        list.remove(0);
    }
    list.push(item);
}

struct Harness {
    syncer: Syncer,
    store: Store,
    signing: SigningKey,
    /// Authors of the records the harness signs.
    authors: [SigningKey; 3],
    now: Instant,
    next_peer: u64,
    ready: Vec<PeerId>,
    ever: HashSet<PeerId>,
    /// Records the peers hold: signed by the harness, valid.
    world: Vec<Record>,
    /// What the machine sent, to answer.
    asked: Vec<(PeerId, Message)>,
    /// Symbols of the world's sketch sent per session we answer.
    served: Vec<(u64, usize)>,
    /// Gossiped records waiting for their verdict.
    checking: HashSet<MessageId>,
    /// Gossip payloads that are not records, given to the layer above.
    upper: Vec<MessageId>,
    /// Ids of the machine's published records, for receipts.
    published: Vec<MessageId>,
}

impl Harness {
    fn new(settings: u8, input: &mut Input<'_>) -> Harness {
        let signing = SigningKey::from_bytes(&[0x11; 32]);
        let mut config = Config::new(signing.clone());
        config.max_value_len = MAX_VALUE_LEN;
        config.sketch_len = SKETCH_LEN;
        config.catchup_gap = u64::from(settings & 7);
        config.batch_records = 1 + usize::from(settings >> 3 & 7);
        config.batch_bytes = 4096;
        config.max_inflight = 1 + usize::from(settings >> 6);
        let store = Store::in_memory(StoreConfig {
            max_value_len: MAX_VALUE_LEN,
            ..StoreConfig::default()
        })
        .expect("a store in memory");
        // A saved catch-up, built from the input, when the settings say so.
        let progress = (settings & 0x80 != 0).then(|| {
            let mut file = b"strata-catchup-1".to_vec();
            for _ in 0..strata_sync::catchup::SPANS {
                file.push(input.u8() % 3);
                file.extend_from_slice(&[0; KEY_HASH_LEN]);
            }
            file
        });
        let now = Instant::now();
        let syncer = Syncer::new(
            config,
            progress.as_deref(),
            UNIX,
            u64::from(settings),
            now,
        );
        let mut harness = Harness {
            syncer,
            store,
            signing,
            authors: [1, 2, 3].map(|b| SigningKey::from_bytes(&[b; 32])),
            now,
            next_peer: 1,
            ready: Vec::new(),
            ever: HashSet::new(),
            world: Vec::new(),
            asked: Vec::new(),
            served: Vec::new(),
            checking: HashSet::new(),
            upper: Vec::new(),
            published: Vec::new(),
        };
        harness.timeout();
        harness
    }

    /// A valid record of one of the harness's authors, in a small key space
    /// so that versions compete.
    fn sign(&mut self, input: &mut Input<'_>) -> Record {
        let author = &self.authors[usize::from(input.u8() % 3)];
        let key = [b'k', input.u8() % 8];
        let version = u64::from(input.u8() % 4);
        let (kind, expires) = life(input);
        let value = match kind {
            Kind::Value => input.bytes(MAX_VALUE_LEN),
            Kind::Tombstone => Vec::new(),
        };
        let record =
            Record::sign_as(author, kind, expires, &key, version, &value).expect("within the limits");
        remember(&mut self.world, record.clone());
        record
    }

    /// A record: one the peers hold, a new one, or a forged one.
    fn record(&mut self, input: &mut Input<'_>) -> Record {
        match input.u8() % 4 {
            0 if !self.world.is_empty() => {
                let i = usize::from(input.u8()) % self.world.len();
                self.world[i].clone()
            }
            1 => {
                let good = self.sign(input);
                let mut value = good.value().to_vec();
                value.push(input.u8());
                Record::from_parts(
                    *good.author(),
                    good.key().to_vec(),
                    good.version(),
                    value,
                    *good.signature(),
                )
                .unwrap_or(good)
            }
            _ => self.sign(input),
        }
    }

    fn records(&mut self, input: &mut Input<'_>) -> Vec<Record> {
        (0..input.u8() % 6).map(|_| self.record(input)).collect()
    }

    fn peer(&mut self, input: &mut Input<'_>) -> Option<PeerId> {
        input.pick(self.ready.len()).map(|i| self.ready[i])
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let now = self.now;
        match input.u8() % OPS {
            PEER_READY => {
                if self.ready.len() < MAX_PEERS {
                    let peer = PeerId(self.next_peer);
                    self.next_peer += 1;
                    self.ready.push(peer);
                    self.ever.insert(peer);
                    // Half the peers come with a proven node key, as over TLS.
                    let key = (input.u8() & 1 == 1).then(|| [input.u8(); 32]);
                    self.syncer.handle_peer_ready(peer, key, now);
                }
            }
            PEER_GONE => {
                if let Some(i) = input.pick(self.ready.len()) {
                    let peer = self.ready.remove(i);
                    self.asked.retain(|(p, _)| *p != peer);
                    self.syncer.handle_peer_gone(peer, now);
                }
            }
            PAYLOAD => {
                let Some(peer) = self.peer(input) else {
                    return;
                };
                let ours = self.syncer.summary();
                let flags = input.u8();
                let summary = Summary {
                    records: match flags & 3 {
                        0 => ours.records,
                        1 => self.world.len() as u64,
                        2 => u64::from(input.u16()),
                        _ => input.u64(),
                    },
                    epoch: if flags & 4 == 0 {
                        ours.epoch
                    } else {
                        input.u64()
                    },
                    fingerprint: if flags & 8 == 0 {
                        ours.fingerprint
                    } else {
                        input.u64()
                    },
                    key: input.array(),
                };
                self.syncer.handle_payload(peer, summary, now);
            }
            RAW => {
                // Any peer number: the machine ignores peers it was not told of.
                let peer = self.peer(input).unwrap_or(PeerId(0));
                let command = command::RECON_REQUEST + u32::from(input.u8() % 10);
                let body = input.bytes(4096);
                self.syncer.handle_message(peer, command, &body, now);
            }
            ANSWER => {
                if let Some(i) = input.pick(self.asked.len()) {
                    let (peer, asked) = self.asked.remove(i);
                    if let Some(answer) = self.answer(&asked, input) {
                        self.send(peer, &answer);
                    }
                }
            }
            BUILT => {
                let Some(peer) = self.peer(input) else {
                    return;
                };
                let message = self.built(input);
                self.send(peer, &message);
            }
            GOSSIP => {
                // The node hands up gossip from ready peers only.
                let Some(peer) = self.peer(input) else {
                    return;
                };
                let payload = match input.u8() % 5 {
                    0 => Bytes::from(input.bytes(512)),
                    1 => self.challenge(input),
                    _ => {
                        let record = self.record(input);
                        gossip_payload(&record)
                    }
                };
                let id = MessageId::of(&payload);
                if wire::is_record(&payload) {
                    self.checking.insert(id);
                }
                self.syncer.handle_gossip(peer, id, payload, now);
            }
            PUT => {
                let key = input.bytes(8);
                let (kind, expires) = life(input);
                let value = input.bytes(MAX_VALUE_LEN + 8);
                let version = (input.u8() & 1 == 1).then(|| u64::from(input.u8()));
                // Tombstones with a value, or without an expiry, are asked
                // for too: the put must fail cleanly.
                let draft = Draft {
                    key,
                    kind,
                    value,
                    expires,
                    version,
                };
                if input.u8() & 1 == 0 {
                    self.syncer.put(draft, now);
                } else {
                    let want = f64::from(input.u8()) / 128.0;
                    let expected = (input.u8() & 1 == 1).then(|| {
                        self.authors
                            .iter()
                            .map(|a| a.verifying_key().to_bytes())
                            .collect()
                    });
                    self.syncer.publish(draft, want, expected, now);
                }
            }
            INSERT => {
                let record = self.record(input);
                let track = (input.u8() & 1 == 1).then(|| (1.0, None));
                self.syncer.insert(record, track, now);
            }
            VERDICT => {
                if let Some(i) = input.pick(self.upper.len()) {
                    let id = self.upper.remove(i);
                    let verdict = [Verdict::Propagate, Verdict::Drop, Verdict::Reject]
                        [usize::from(input.u8() % 3)];
                    self.syncer.verdict(id, verdict, now);
                }
            }
            WAIT => {
                let unit =
                    [1, 1_000, 60_000, 3_600_000, EPOCH_SECS * 1000][usize::from(input.u8() % 5)];
                self.now += Duration::from_millis(unit * u64::from(input.u8()));
                self.timeout();
            }
            TIMER => {
                if let Some(at) = self.syncer.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.timeout();
            }
            RECONCILE => {
                let peer = self.peer(input);
                self.syncer.reconcile_now(peer, now);
            }
            CHALLENGE => {
                let id = match input.pick(self.published.len()) {
                    Some(i) => self.published[i],
                    None => MessageId(input.array()),
                };
                self.syncer.challenge(id, now);
            }
            _ => unreachable!(),
        }
    }

    fn send(&mut self, peer: PeerId, message: &Message) {
        let body = message.encode();
        self.syncer
            .handle_message(peer, message.command(), &body, self.now);
    }

    fn timeout(&mut self) {
        self.syncer.handle_timeout(self.now);
        self.drain();
        if let Some(at) = self.syncer.poll_timeout() {
            assert!(
                at > self.now,
                "after handle_timeout(now), the next timeout is not later"
            );
        }
    }

    /// The world's sketch under `epoch`.
    fn world_sketch(&self, epoch: u64) -> Sketch<DIGEST_LEN> {
        let mut sketch = Sketch::new(epoch_key(epoch), SKETCH_LEN);
        let digests: HashSet<Digest> = self.world.iter().map(Record::digest).collect();
        for d in digests {
            sketch.insert(&d.0);
        }
        sketch
    }

    /// What a peer holding the world's records answers to `asked`.
    fn answer(&mut self, asked: &Message, input: &mut Input<'_>) -> Option<Message> {
        Some(match asked {
            Message::ReconRequest {
                session,
                epoch,
                first,
            } => {
                let first = usize::try_from(*first).unwrap_or(usize::MAX);
                self.symbols(*session, *epoch, 0, first, input)
            }
            Message::ReconMore { session, want } => {
                let (_, sent) = *self.served.iter().find(|(s, _)| s == session)?;
                let want = usize::try_from(*want).unwrap_or(usize::MAX);
                let epoch = self.syncer.summary().epoch;
                self.symbols(*session, epoch, sent, want, input)
            }
            Message::ReconSymbols { session, .. } => {
                // As the initiator: done, offering some of the world.
                let digests = self
                    .world
                    .iter()
                    .filter(|_| input.u8() & 1 == 1)
                    .map(Record::digest)
                    .collect();
                Message::ReconDone {
                    session: *session,
                    digests,
                }
            }
            Message::GetRecords { request, digests } => Message::Records {
                request: *request,
                truncated: input.u8() & 1 == 1,
                records: self
                    .world
                    .iter()
                    .filter(|r| digests.contains(&r.digest()))
                    .cloned()
                    .collect(),
            },
            Message::GetRange {
                request,
                after,
                end,
                max_records,
                ..
            } => {
                let mut records: Vec<Record> = self
                    .world
                    .iter()
                    .filter(|r| {
                        let kh = r.key_hash().0;
                        after.is_none_or(|a| kh > a) && kh <= *end
                    })
                    .cloned()
                    .collect();
                records.sort_by_key(|r| (r.key_hash().0, std::cmp::Reverse(r.version())));
                records.dedup_by_key(|r| r.key_hash().0);
                let max = usize::try_from(*max_records).unwrap_or(usize::MAX).max(1);
                let more = records.len() > max;
                records.truncate(max);
                let next = if more || input.u8() & 7 == 0 {
                    records.last().map(|r| r.key_hash().0)
                } else {
                    None
                };
                Message::Range {
                    request: *request,
                    next,
                    records,
                }
            }
            _ => return None,
        })
    }

    /// The world's symbols `from..from + want` for `session`.
    fn symbols(
        &mut self,
        session: u64,
        epoch: u64,
        from: usize,
        want: usize,
        input: &mut Input<'_>,
    ) -> Message {
        let sketch = self.world_sketch(epoch);
        let end = from.saturating_add(want).min(SKETCH_LEN);
        let symbols = sketch.symbols()[from.min(end)..end].to_vec();
        self.served.retain(|(s, _)| *s != session);
        remember(&mut self.served, (session, end));
        let status = match input.u8() % 8 {
            0 => SymbolStatus::WrongEpoch,
            1 => SymbolStatus::Busy,
            2 | 3 => SymbolStatus::More,
            _ if end < SKETCH_LEN => SymbolStatus::More,
            _ => SymbolStatus::End,
        };
        Message::ReconSymbols {
            session,
            status,
            symbols,
        }
    }

    /// A message built from the input, with valid records and receipts.
    fn built(&mut self, input: &mut Input<'_>) -> Message {
        let request = match input.pick(self.asked.len()) {
            Some(i) => match &self.asked[i].1 {
                Message::GetRecords { request, .. } | Message::GetRange { request, .. } => *request,
                _ => input.u64(),
            },
            None => input.u64(),
        };
        let digest = |h: &Self, input: &mut Input<'_>| match input.pick(h.world.len()) {
            Some(i) if input.u8() & 1 == 0 => h.world[i].digest(),
            _ => Digest(input.array()),
        };
        match input.u8() % 10 {
            0 => Message::ReconRequest {
                session: input.u64(),
                epoch: if input.u8() & 1 == 0 {
                    self.syncer.summary().epoch
                } else {
                    input.u64()
                },
                first: u32::from(input.u16()),
            },
            1 => {
                let session = input.u64();
                let epoch = self.syncer.summary().epoch;
                let from = usize::from(input.u8());
                let want = usize::from(input.u8());
                self.symbols(session, epoch, from, want, input)
            }
            2 => Message::ReconMore {
                session: input.u64(),
                want: input.u32(),
            },
            3 => Message::ReconDone {
                session: input.u64(),
                digests: (0..input.u8() % 8).map(|_| digest(self, input)).collect(),
            },
            4 => Message::GetRecords {
                request,
                digests: (0..input.u8() % 8).map(|_| digest(self, input)).collect(),
            },
            5 => Message::Records {
                request,
                truncated: input.u8() & 1 == 1,
                records: self.records(input),
            },
            6 => Message::GetRange {
                request,
                after: (input.u8() & 1 == 1).then(|| input.array()),
                end: input.array(),
                max_records: input.u32(),
                max_bytes: input.u32(),
            },
            7 => {
                let mut records = self.records(input);
                records.sort_by_key(|r| r.key_hash().0);
                Message::Range {
                    request,
                    next: (input.u8() & 1 == 1).then(|| input.array()),
                    records,
                }
            }
            8 => Message::Proof(self.proof(input)),
            _ => Message::Receipts((0..input.u8() % 3).map(|_| self.receipt(input)).collect()),
        }
    }

    /// A challenge's gossip payload about a record of the world, signed
    /// by an author (its own or another, or badly).
    fn challenge(&mut self, input: &mut Input<'_>) -> Bytes {
        let digest = match input.pick(self.world.len()) {
            Some(i) => self.world[i].digest().0,
            None => input.array(),
        };
        let nonce: [u8; wire::NONCE_LEN] = input.array();
        let author = &self.authors[usize::from(input.u8() % 3)];
        let mut signature = author
            .sign(&Challenge::signed_bytes(&digest, &nonce))
            .to_bytes();
        if input.u8() & 7 == 0 {
            signature[0] ^= 1;
        }
        Challenge {
            digest,
            nonce,
            challenger: author.verifying_key().to_bytes(),
            signature,
        }
        .payload()
    }

    /// A proof for an id of ours or another, signed by an author (or
    /// badly), of any value.
    fn proof(&mut self, input: &mut Input<'_>) -> Proof {
        let author = &self.authors[usize::from(input.u8() % 3)];
        let signer = author.verifying_key().to_bytes();
        let challenge = match input.pick(self.published.len()) {
            Some(i) => self.published[i].0,
            None => input.array(),
        };
        let proof = input.array();
        let mut signature = author
            .sign(&Proof::signed_bytes(&signer, &challenge, &proof))
            .to_bytes();
        if input.u8() & 7 == 0 {
            signature[0] ^= 1;
        }
        Proof {
            signer,
            challenge,
            proof,
            signature,
        }
    }

    /// A receipt for some of the machine's published records, signed by an
    /// author (or badly).
    fn receipt(&mut self, input: &mut Input<'_>) -> Receipt {
        let author = &self.authors[usize::from(input.u8() % 3)];
        let signer = author.verifying_key().to_bytes();
        let mut ids: Vec<[u8; 32]> = self
            .published
            .iter()
            .filter(|_| input.u8() & 1 == 1)
            .map(|id| id.0)
            .collect();
        if input.u8() & 3 == 0 {
            ids.push(input.array());
        }
        let mut signature = author
            .sign(&Receipt::signed_bytes(&signer, &ids))
            .to_bytes();
        if input.u8() & 7 == 0 {
            signature[0] ^= 1;
        }
        Receipt {
            signer,
            ids,
            signature,
        }
    }

    /// Carries out the machine's outputs, running store ops at once, and
    /// checks each.
    fn drain(&mut self) {
        let caps = body_caps(MAX_VALUE_LEN);
        let mut count = 0;
        while let Some(output) = self.syncer.poll_output() {
            count += 1;
            assert!(count < MAX_OUTPUTS, "one step yielded {count} outputs");
            match output {
                Output::Send {
                    peer,
                    command,
                    body,
                    ..
                } => {
                    assert!(
                        self.ready.contains(&peer),
                        "a message to {peer:?}, which is not ready"
                    );
                    let message = Message::decode(command, &body, MAX_VALUE_LEN)
                        .unwrap_or_else(|e| panic!("command {command} the machine sent: {e}"));
                    let cap = caps
                        .iter()
                        .find(|(c, _)| *c == command)
                        .map_or(DEFAULT_CAP, |(_, cap)| *cap);
                    assert!(
                        body.len() as u64 <= cap,
                        "command {command}: {} bytes",
                        body.len()
                    );
                    remember(&mut self.asked, (peer, message));
                }
                Output::Propagate(payload) if wire::is_challenge(&payload) => {
                    let challenge = Challenge::decode(&payload).expect("a challenge");
                    assert_eq!(
                        challenge.challenger,
                        self.signing.verifying_key().to_bytes(),
                        "a challenge of another key"
                    );
                }
                Output::Propagate(payload) => {
                    let record = decode_gossip(&payload, MAX_VALUE_LEN).expect("a record");
                    record.verify().expect("a propagated record is signed");
                    let stored = self.store.get_by_digest(&record.digest()).expect("store");
                    assert!(stored.is_some(), "a propagated record is not stored");
                }
                Output::Verdict(id, _) => {
                    self.checking.remove(&id);
                }
                Output::Report { peer, .. } => {
                    assert!(
                        self.ever.contains(&peer),
                        "a report of {peer:?}, never a peer"
                    );
                }
                Output::SetPayload(summary) => {
                    assert_eq!(summary.key, self.signing.verifying_key().to_bytes());
                }
                Output::SaveProgress(progress) => {
                    if let Some(file) = progress {
                        let again = strata_sync::catchup::reencode_progress(&file);
                        assert_eq!(again.as_deref(), Some(&file[..]), "a saved progress file");
                    }
                }
                Output::Store(id, op) => {
                    let done = op.run(&self.store, &self.signing);
                    self.syncer.handle_store(id, done, self.now);
                }
                Output::Event(Event::Gossip { id, .. }) => remember(&mut self.upper, id),
                Output::Event(Event::Put { result, .. }) => {
                    if let Ok(put) = result {
                        if put.outcome.is_stored() {
                            put.record.verify().expect("a stored record is signed");
                        }
                        if let Some(id) = put.id {
                            remember(&mut self.published, id);
                        }
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    /// The invariants that hold between steps.
    fn check(&self) {
        assert!(self.checking.is_empty(), "a gossiped record has no verdict");
        let summary = self.syncer.summary();
        let Done::Sketch(Ok((sketch, records))) = (Op::Sketch {
            key: epoch_key(summary.epoch),
            len: SKETCH_LEN,
        })
        .run(&self.store, &self.signing) else {
            panic!("the store's sketch");
        };
        let stats = self.syncer.stats();
        assert!(stats.loaded);
        assert_eq!(
            stats.records, records,
            "the record count is not the store's"
        );
        assert_eq!(summary.records, records);
        let fingerprint = sketch.symbols().first().map_or(0, |s| s.checksum);
        assert_eq!(
            summary.fingerprint, fingerprint,
            "the fingerprint is not the store's"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let settings = input.u8();
    let mut harness = Harness::new(settings, &mut input);
    harness.check();
    while !input.0.is_empty() {
        harness.step(&mut input);
        harness.drain();
        harness.check();
    }
});
