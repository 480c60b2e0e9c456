//! The sync state machine: push, reconciliation, catch-up and receipts over
//! a [`Store`], with no I/O.
//!
//! `handle_*` methods take what happened, with the time; [`Sync::put`] and
//! [`Sync::publish`] take the local user's records; [`Sync::poll_output`]
//! yields what to do next (drain it after every call) and
//! [`Sync::poll_timeout`] says when to call [`Sync::handle_timeout`].

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blake2::Digest as _;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use strata_node::rng::Rng;
use strata_node::{Class, MessageId, PeerId};
use strata_store::{
    DIGEST_LEN, Digest, Error as StoreError, Invalid, KEY_HASH_LEN, MAX_PAGE_DIGESTS, Outcome,
    Presence, Record, Store,
};

use crate::catchup::{Catchup, KeyHashBytes, span_end, span_of};
use crate::receipt::{DeliveryStatus, NodeKey, Receipts, verify_receipt};
use crate::riblt::{DecodeError, Decoder, KEY_LEN, Key, Sketch};
use crate::wire::{
    MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_DONE_DIGESTS, MAX_GET_DIGESTS, MAX_SYMBOLS_PER_MESSAGE,
    Message, SymbolStatus, command, gossip_payload,
};

/// Coded symbols in the sketch each node keeps up to date: enough for
/// about 24,000 differences (1.35 symbols each). Larger differences go to
/// catch-up.
pub const SKETCH_LEN: usize = 1 << 15;
/// Length of an epoch, in seconds: the sketch key changes every epoch.
pub const EPOCH_SECS: u64 = 86_400;
/// Fewest symbols asked for first.
pub const MIN_FIRST_SYMBOLS: usize = 64;
/// Reconciliations served at once; more are answered busy.
pub const MAX_SERVING: usize = 4;
/// How long a served reconciliation is kept without news.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Digests waiting to be fetched from one peer, at most.
pub const MAX_FETCH_QUEUE: usize = 65_536;
/// GET_RECORDS in flight to one peer, at most.
pub const FETCH_INFLIGHT: usize = 2;
/// Record bytes in one RECORDS answer, at most.
pub const SERVE_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How often the payload is refreshed at most.
pub const PAYLOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Score of a record with an invalid signature or author.
pub const SCORE_INVALID_RECORD: u32 = 20;
/// Score of a body that does not decode.
pub const SCORE_UNDECODABLE: u32 = 5;
/// Score of a symbol stream that cannot be the symbols of any set.
pub const SCORE_BAD_SYMBOLS: u32 = 5;
/// Score of a batch over the limits asked for, out of order or out of its
/// range.
pub const SCORE_BAD_BATCH: u32 = 10;
/// Score of records nobody asked for.
pub const SCORE_UNSOLICITED: u32 = 2;
/// Score of a receipt with a bad signature.
pub const SCORE_BAD_RECEIPT: u32 = 10;

/// The sync layer's `payload_data`, sent in handshakes and timed syncs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Records stored.
    pub records: u64,
    /// The epoch of the sketch.
    pub epoch: u64,
    /// The checksum of the sketch's first symbol, which every record maps
    /// to: equal sets under one epoch have equal fingerprints.
    pub fingerprint: u64,
    /// The node's key, which signs its receipts.
    pub key: [u8; 32],
}

/// Settings of a [`Sync`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The node key: signs receipts.
    pub signing_key: SigningKey,
    /// Largest record value decoded off the wire; the store's limit.
    pub max_value_len: usize,
    /// Time between reconciliations with a random peer.
    pub reconcile_interval: Duration,
    /// How long a reconciliation we started may take.
    pub recon_timeout: Duration,
    /// A peer with this many more records than we have starts a catch-up.
    pub catchup_gap: u64,
    /// Records asked for per catch-up batch.
    pub batch_records: usize,
    /// Record bytes asked for per catch-up batch.
    pub batch_bytes: usize,
    /// How long a batch may take before it is asked of another peer.
    pub batch_timeout: Duration,
    /// Catch-up batches in flight, at most (with `batch_bytes`, the cap on
    /// memory queued for catch-up).
    pub max_inflight: usize,
    /// Catch-up batches in flight to one peer, at most.
    pub per_peer_inflight: usize,
    /// How long a peer that let a batch stall is passed over.
    pub slow_penalty: Duration,
    /// How often receipts are sent.
    pub receipt_interval: Duration,
}

impl Config {
    /// Defaults, with the node key.
    pub fn new(signing_key: SigningKey) -> Config {
        Config {
            signing_key,
            max_value_len: strata_store::DEFAULT_MAX_VALUE_LEN,
            reconcile_interval: Duration::from_secs(30),
            recon_timeout: Duration::from_secs(30),
            catchup_gap: (SKETCH_LEN / 2) as u64,
            batch_records: 2048,
            batch_bytes: 2 * 1024 * 1024,
            batch_timeout: Duration::from_secs(30),
            max_inflight: 8,
            per_peer_inflight: 2,
            slow_penalty: Duration::from_secs(120),
            receipt_interval: Duration::from_millis(200),
        }
    }
}

/// What the sync layer reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A catch-up began (or resumed).
    CatchupStarted,
    /// Every span of the catch-up is done.
    CatchupDone,
    /// A reconciliation we started decoded.
    Reconciled {
        /// With whom.
        peer: PeerId,
        /// Records we asked the peer for.
        fetched: usize,
        /// Digests we offered the peer.
        offered: usize,
        /// Coded symbols it took.
        symbols: usize,
    },
    /// A published message reached the share of confirmations wanted.
    Delivered(DeliveryStatus),
}

/// What the driver must do.
#[derive(Debug)]
pub enum Output {
    /// Send a message of the sync layer's range.
    Send {
        /// To whom.
        peer: PeerId,
        /// Its command.
        command: u32,
        /// Its body.
        body: Bytes,
        /// Its priority.
        class: Class,
    },
    /// Publish a gossip payload (a record).
    Propagate(Bytes),
    /// Score a peer for misbehaviour.
    Report {
        /// Who.
        peer: PeerId,
        /// The score.
        score: u32,
    },
    /// Replace the node's payload.
    SetPayload(Summary),
    /// Write the catch-up progress (`None`: delete it). Only written after
    /// the records it covers are committed.
    SaveProgress(Option<Vec<u8>>),
    /// For the layer above.
    Event(Event),
}

/// What became of a record put by the local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The store's outcome.
    pub outcome: Outcome,
    /// The gossip message id, when the record was stored and published.
    pub id: Option<MessageId>,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records stored.
    pub records: u64,
    /// Whether a catch-up runs.
    pub catching_up: bool,
    /// Spans of the catch-up not done.
    pub spans_left: usize,
    /// Records stored from catch-up batches.
    pub catchup_records: u64,
    /// Records received in catch-up batches, stored or not.
    pub catchup_received: u64,
    /// Catch-up batches stored.
    pub batches: u64,
    /// Batches that timed out and were asked of another peer.
    pub stalls: u64,
    /// Records stored from fetches after reconciliations.
    pub fetched_records: u64,
    /// Records stored from gossip.
    pub gossip_records: u64,
    /// Reconciliations we started that decoded.
    pub reconciliations: u64,
    /// Reconciliations we started that failed or were refused.
    pub failed_reconciliations: u64,
    /// Bytes of reconciliation messages (3100–3103) sent.
    pub recon_bytes_sent: u64,
    /// Bytes of reconciliation messages received.
    pub recon_bytes_received: u64,
    /// Bytes of record messages (3104–3107) sent.
    pub record_bytes_sent: u64,
    /// Bytes of record messages received.
    pub record_bytes_received: u64,
    /// Bytes of receipts sent (own and forwarded).
    pub receipt_bytes_sent: u64,
    /// Receipts signed.
    pub receipts_signed: u64,
    /// Records refused as invalid.
    pub invalid_records: u64,
    /// Misbehaviour reports made.
    pub reports: u64,
}

/// A gossiped record the handler accepted.
#[derive(Debug, Clone)]
pub struct Gossiped {
    /// From whom.
    pub peer: PeerId,
    /// The gossip message id.
    pub id: MessageId,
    /// The record, its signature checked.
    pub record: Record,
}

#[derive(Debug, Default)]
struct Peer {
    ready: bool,
    summary: Option<Summary>,
    /// Catch-up batches in flight.
    inflight: usize,
    slow_until: Option<Instant>,
    fetch: VecDeque<Digest>,
    fetch_inflight: usize,
}

enum Kind {
    Span(usize),
    Digests(Vec<Digest>),
}

struct Pending {
    peer: PeerId,
    deadline: Instant,
    kind: Kind,
    after: Option<KeyHashBytes>,
    max_records: usize,
}

struct Outgoing {
    peer: PeerId,
    session: u64,
    decoder: Decoder<DIGEST_LEN>,
    deadline: Instant,
}

struct Serving {
    session: u64,
    sketch: Sketch<DIGEST_LEN>,
    sent: usize,
    deadline: Instant,
}

/// The sync state machine. See the [crate docs](crate) for its invariants.
pub struct Sync {
    config: Config,
    store: Arc<Store>,
    rng: Rng,
    start: Instant,
    unix_start: u64,
    epoch: u64,
    sketch: Sketch<DIGEST_LEN>,
    records: u64,
    peers: HashMap<PeerId, Peer>,
    requests: HashMap<u64, Pending>,
    next_request: u64,
    outgoing: Option<Outgoing>,
    serving: HashMap<PeerId, Serving>,
    recon_queue: VecDeque<PeerId>,
    next_reconcile: Instant,
    catchup: Option<Catchup>,
    receipts: Receipts,
    payload_dirty: bool,
    next_payload: Instant,
    out: VecDeque<Output>,
    stats: Stats,
}

/// The sketch key of an epoch.
pub fn epoch_key(epoch: u64) -> Key {
    let mut h = blake2::Blake2b::<blake2::digest::consts::U32>::new();
    h.update(b"strata-sync-sketch-v1");
    h.update(epoch.to_be_bytes());
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&h.finalize());
    Key(key)
}

impl Sync {
    /// A machine over `store`. `unix` is the wall-clock time at `now` in
    /// Unix seconds (it picks the sketch epoch), `seed` seeds every random
    /// choice, and `progress` is what the last [`Output::SaveProgress`]
    /// wrote, if anything: a catch-up it describes resumes.
    ///
    /// Builds the sketch from the store's digests: one pass over them.
    pub fn new(
        config: Config,
        store: Arc<Store>,
        progress: Option<&[u8]>,
        now: Instant,
        unix: u64,
        seed: u64,
    ) -> Result<Sync, StoreError> {
        let epoch = unix / EPOCH_SECS;
        let receipts = Receipts::new(config.signing_key.clone(), config.receipt_interval);
        let mut sync = Sync {
            config,
            store,
            rng: Rng::new(seed),
            start: now,
            unix_start: unix,
            epoch,
            sketch: Sketch::new(epoch_key(epoch), SKETCH_LEN),
            records: 0,
            peers: HashMap::new(),
            requests: HashMap::new(),
            next_request: 1,
            outgoing: None,
            serving: HashMap::new(),
            recon_queue: VecDeque::new(),
            next_reconcile: now,
            catchup: None,
            receipts,
            payload_dirty: true,
            next_payload: now,
            out: VecDeque::new(),
            stats: Stats::default(),
        };
        sync.rebuild_sketch()?;
        if let Some(catchup) = progress.and_then(Catchup::decode)
            && !catchup.is_done()
        {
            sync.catchup = Some(catchup);
            sync.out.push_back(Output::Event(Event::CatchupStarted));
        }
        sync.flush_payload(now);
        Ok(sync)
    }

    fn rebuild_sketch(&mut self) -> Result<(), StoreError> {
        let mut sketch = Sketch::new(epoch_key(self.epoch), SKETCH_LEN);
        let mut after: Option<Digest> = None;
        let mut count = 0u64;
        loop {
            let page = self.store.scan_digests(after.as_ref(), MAX_PAGE_DIGESTS)?;
            for d in &page.digests {
                sketch.insert(&d.0);
            }
            count += page.digests.len() as u64;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.sketch = sketch;
        self.records = count;
        self.payload_dirty = true;
        Ok(())
    }

    // ----- queries -----

    /// The payload describing our store.
    pub fn summary(&self) -> Summary {
        Summary {
            records: self.records,
            epoch: self.epoch,
            fingerprint: self.sketch.symbols().first().map_or(0, |s| s.checksum),
            key: self.receipts.own_key(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Whether a catch-up runs.
    pub fn is_catching_up(&self) -> bool {
        self.catchup.is_some()
    }

    /// The catch-up progress in its saved encoding, if one runs.
    pub fn progress(&self) -> Option<Vec<u8>> {
        self.catchup.as_ref().map(Catchup::encode)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            records: self.records,
            catching_up: self.catchup.is_some(),
            spans_left: self.catchup.as_ref().map_or(0, Catchup::remaining),
            receipt_bytes_sent: self.receipts.bytes_sent,
            receipts_signed: self.receipts.receipts_signed,
            ..self.stats.clone()
        }
    }

    /// What we know of a message we published.
    pub fn delivery_status(&self, id: &MessageId) -> Option<DeliveryStatus> {
        self.receipts.status(id)
    }

    /// Node keys we know: peers' and receipt signers'.
    pub fn known_keys(&self) -> Vec<NodeKey> {
        self.receipts.known().copied().collect()
    }

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        if self.peers.values().any(|p| p.ready) {
            take(Some(self.next_reconcile));
        }
        take(self.outgoing.as_ref().map(|o| o.deadline));
        take(self.serving.values().map(|s| s.deadline).min());
        take(self.requests.values().map(|p| p.deadline).min());
        take(self.receipts.poll_timeout());
        if self.payload_dirty {
            take(Some(self.next_payload));
        }
        take(Some(self.epoch_end()));
        at
    }

    fn unix(&self, now: Instant) -> u64 {
        self.unix_start + now.saturating_duration_since(self.start).as_secs()
    }

    fn epoch_end(&self) -> Instant {
        let end = (self.epoch + 1) * EPOCH_SECS;
        self.start + Duration::from_secs(end.saturating_sub(self.unix_start))
    }

    // ----- the local user -----

    /// Stores a record of the local user and, if stored, publishes it by
    /// gossip.
    pub fn put(&mut self, now: Instant, record: Record) -> Result<Put, StoreError> {
        let outcome = self.store_one(&record)?;
        let id = if outcome.is_stored() {
            let payload = gossip_payload(&record);
            let id = MessageId::of(&payload);
            self.out.push_back(Output::Propagate(payload));
            Some(id)
        } else {
            None
        };
        self.flush_payload(now);
        Ok(Put { outcome, id })
    }

    /// [`put`](Self::put), and tracks the delivery of the gossip message:
    /// `want` is the share of `expected` (by default every node key we
    /// know) whose receipts are wanted; [`Event::Delivered`] says when it
    /// is reached.
    pub fn publish(
        &mut self,
        now: Instant,
        record: Record,
        want: f64,
        expected: Option<Vec<NodeKey>>,
    ) -> Result<Put, StoreError> {
        let put = self.put(now, record)?;
        if let Some(id) = put.id {
            self.receipts.track(id, want, expected, now);
        }
        Ok(put)
    }

    /// Reconciles with `peer` (or a random ready peer) as soon as possible.
    pub fn reconcile_now(&mut self, now: Instant, peer: Option<PeerId>) {
        if let Some(peer) = peer
            && !self.recon_queue.contains(&peer)
        {
            self.recon_queue.push_back(peer);
        }
        self.next_reconcile = now;
    }

    // ----- the store -----

    fn store_one(&mut self, record: &Record) -> Result<Outcome, StoreError> {
        let mut outcomes = self.store_batch(std::slice::from_ref(record))?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a batch of one gave no outcome".into()))
    }

    /// Stores records and keeps the sketch and the count in step.
    fn store_batch(&mut self, records: &[Record]) -> Result<Vec<Outcome>, StoreError> {
        let outcomes = self.store.put_batch(records)?;
        for outcome in &outcomes {
            if let Some(old) = outcome.removed() {
                self.sketch.remove(&old.0);
            }
            if let Some(new) = outcome.added() {
                self.sketch.insert(&new.0);
            }
            match outcome {
                Outcome::Inserted { .. } => self.records += 1,
                Outcome::Invalid(_) => self.stats.invalid_records += 1,
                _ => {}
            }
            if outcome.is_stored() {
                self.payload_dirty = true;
            }
        }
        Ok(outcomes)
    }

    /// Stores records from `peer`; reports it if any has a bad signature
    /// or author. Returns how many were stored.
    fn store_from(&mut self, peer: PeerId, records: &[Record]) -> usize {
        match self.store_batch(records) {
            Ok(outcomes) => {
                let forged = outcomes.iter().any(|o| {
                    matches!(
                        o,
                        Outcome::Invalid(Invalid::BadSignature | Invalid::BadAuthor)
                    )
                });
                if forged {
                    self.report(peer, SCORE_INVALID_RECORD);
                }
                outcomes.iter().filter(|o| o.is_stored()).count()
            }
            Err(e) => {
                tracing::warn!("storing records: {e}");
                0
            }
        }
    }

    fn report(&mut self, peer: PeerId, score: u32) {
        self.stats.reports += 1;
        self.out.push_back(Output::Report { peer, score });
    }

    fn send(&mut self, peer: PeerId, message: &Message, class: Class) {
        let body = message.encode();
        let len = body.len() as u64;
        match message.command() {
            command::RECON_REQUEST..=command::RECON_DONE => self.stats.recon_bytes_sent += len,
            command::RECEIPTS => self.receipts.bytes_sent += len,
            _ => self.stats.record_bytes_sent += len,
        }
        self.out.push_back(Output::Send {
            peer,
            command: message.command(),
            body,
            class,
        });
    }

    fn flush_payload(&mut self, now: Instant) {
        if self.payload_dirty && now >= self.next_payload {
            self.payload_dirty = false;
            self.next_payload = now + PAYLOAD_INTERVAL;
            self.out.push_back(Output::SetPayload(self.summary()));
        }
    }

    // ----- peers -----

    /// A peer completed its handshake.
    pub fn handle_peer_ready(&mut self, now: Instant, peer: PeerId) {
        self.peers.entry(peer).or_default().ready = true;
        self.consider(now, peer);
        self.flush_payload(now);
    }

    /// A peer's connection ended.
    pub fn handle_peer_gone(&mut self, now: Instant, peer: PeerId) {
        self.peers.remove(&peer);
        self.serving.remove(&peer);
        self.recon_queue.retain(|p| *p != peer);
        self.receipts.peer_gone(peer);
        if self.outgoing.as_ref().is_some_and(|o| o.peer == peer) {
            self.outgoing = None;
            self.stats.failed_reconciliations += 1;
        }
        let gone: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, p)| p.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(pending) = self.requests.remove(&id) {
                self.release_span(&pending.kind, id);
            }
        }
        self.schedule_catchup(now);
        self.flush_payload(now);
    }

    /// A peer's payload (handshake or timed sync).
    pub fn handle_payload(&mut self, now: Instant, peer: PeerId, summary: Summary) {
        self.receipts.learn(summary.key);
        self.peers.entry(peer).or_default().summary = Some(summary);
        self.consider(now, peer);
        self.flush_payload(now);
    }

    /// Decides what a ready peer with a known summary calls for: nothing,
    /// a reconciliation, or a catch-up.
    fn consider(&mut self, now: Instant, peer: PeerId) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let Some(summary) = p.summary.clone() else {
            return;
        };
        if !p.ready {
            return;
        }
        if self.catchup.is_some() {
            self.schedule_catchup(now);
            return;
        }
        if summary.records > self.records.saturating_add(self.config.catchup_gap) {
            self.start_catchup(now);
            return;
        }
        let ours = self.summary();
        let same = summary.records == ours.records
            && summary.epoch == ours.epoch
            && summary.fingerprint == ours.fingerprint;
        if !same && !self.recon_queue.contains(&peer) {
            self.recon_queue.push_back(peer);
            self.next_reconcile = self.next_reconcile.min(now);
        }
    }

    // ----- messages -----

    /// A message of the sync layer's range from a ready peer.
    pub fn handle_message(&mut self, now: Instant, peer: PeerId, command: u32, body: &[u8]) {
        let len = body.len() as u64;
        match command {
            command::RECON_REQUEST..=command::RECON_DONE => self.stats.recon_bytes_received += len,
            command::GET_RECORDS..=command::RANGE => self.stats.record_bytes_received += len,
            _ => {}
        }
        let message = match Message::decode(command, body, self.config.max_value_len) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("peer {}: command {command}: {e}", peer.0);
                let score = match e {
                    crate::wire::WireError::TooMany { .. } => SCORE_BAD_BATCH,
                    _ => SCORE_UNDECODABLE,
                };
                self.report(peer, score);
                return;
            }
        };
        match message {
            Message::ReconRequest {
                session,
                epoch,
                first,
            } => self.on_recon_request(now, peer, session, epoch, first),
            Message::ReconSymbols {
                session,
                status,
                symbols,
            } => self.on_symbols(now, peer, session, status, &symbols),
            Message::ReconMore { session, want } => self.on_more(now, peer, session, want),
            Message::ReconDone { session, digests } => self.on_done(now, peer, session, digests),
            Message::GetRecords { request, digests } => {
                self.on_get_records(peer, request, &digests)
            }
            Message::Records {
                request,
                truncated,
                records,
            } => self.on_records(now, peer, request, truncated, &records),
            Message::GetRange {
                request,
                after,
                end,
                max_records,
                max_bytes,
            } => self.on_get_range(peer, request, after, end, max_records, max_bytes),
            Message::Range {
                request,
                next,
                records,
            } => self.on_range(now, peer, request, next, &records),
            Message::Receipts(receipts) => {
                if !receipts.iter().all(verify_receipt) {
                    self.report(peer, SCORE_BAD_RECEIPT);
                    return;
                }
                let routed = self.receipts.route(peer, receipts, now);
                for status in routed.satisfied {
                    self.out.push_back(Output::Event(Event::Delivered(status)));
                }
            }
        }
        self.flush_payload(now);
    }

    /// Records gossip delivered, their signatures checked by the handler
    /// ([`check_gossip`](crate::wire::check_gossip)).
    pub fn handle_gossip(&mut self, now: Instant, items: Vec<Gossiped>) {
        if items.is_empty() {
            return;
        }
        let records: Vec<Record> = items.iter().map(|g| g.record.clone()).collect();
        match self.store_batch(&records) {
            Ok(outcomes) => {
                for (item, outcome) in items.iter().zip(&outcomes) {
                    match outcome {
                        Outcome::Invalid(Invalid::BadSignature | Invalid::BadAuthor) => {
                            self.report(item.peer, SCORE_INVALID_RECORD);
                        }
                        Outcome::Invalid(_) => {}
                        _ => {
                            if outcome.is_stored() {
                                self.stats.gossip_records += 1;
                            }
                            self.receipts.accepted(item.id, item.peer, now);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("storing gossiped records: {e}"),
        }
        self.flush_payload(now);
    }

    // ----- reconciliation -----

    fn start_reconcile(&mut self, now: Instant, peer: PeerId) {
        let Some(theirs) = self.peers.get(&peer).and_then(|p| p.summary.as_ref()) else {
            return;
        };
        if self.records > theirs.records.saturating_add(self.config.catchup_gap) {
            // Far behind: it catches up from us by itself.
            return;
        }
        let gap = usize::try_from(theirs.records.abs_diff(self.records)).unwrap_or(usize::MAX);
        let first = gap
            .saturating_mul(2)
            .saturating_add(MIN_FIRST_SYMBOLS)
            .min(MAX_SYMBOLS_PER_MESSAGE);
        let session = self.rng.next_u64();
        self.outgoing = Some(Outgoing {
            peer,
            session,
            decoder: Decoder::with_sketch(self.sketch.clone()),
            deadline: now + self.config.recon_timeout,
        });
        let message = Message::ReconRequest {
            session,
            epoch: self.epoch,
            first: u32::try_from(first).unwrap_or(u32::MAX),
        };
        self.send(peer, &message, Class::Relay);
    }

    fn on_recon_request(
        &mut self,
        now: Instant,
        peer: PeerId,
        session: u64,
        epoch: u64,
        first: u32,
    ) {
        let status = if epoch != self.epoch {
            Some(SymbolStatus::WrongEpoch)
        } else if self.catchup.is_some()
            || (self.serving.len() >= MAX_SERVING && !self.serving.contains_key(&peer))
        {
            // A node catching up takes its records in bounded batches, not
            // in one reconciliation.
            Some(SymbolStatus::Busy)
        } else {
            None
        };
        if let Some(status) = status {
            let message = Message::ReconSymbols {
                session,
                status,
                symbols: Vec::new(),
            };
            self.send(peer, &message, Class::Relay);
            return;
        }
        self.serving.insert(
            peer,
            Serving {
                session,
                sketch: self.sketch.clone(),
                sent: 0,
                deadline: now + SERVE_TIMEOUT,
            },
        );
        self.send_symbols(now, peer, first);
    }

    fn send_symbols(&mut self, now: Instant, peer: PeerId, want: u32) {
        let Some(serving) = self.serving.get_mut(&peer) else {
            return;
        };
        let want = usize::try_from(want)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_SYMBOLS_PER_MESSAGE);
        let start = serving.sent.min(SKETCH_LEN);
        let end = start.saturating_add(want).min(SKETCH_LEN);
        let symbols = serving.sketch.symbols()[start..end].to_vec();
        serving.sent = end;
        serving.deadline = now + SERVE_TIMEOUT;
        let status = if end >= SKETCH_LEN {
            SymbolStatus::End
        } else {
            SymbolStatus::More
        };
        let message = Message::ReconSymbols {
            session: serving.session,
            status,
            symbols,
        };
        self.send(peer, &message, Class::Bulk);
    }

    fn on_more(&mut self, now: Instant, peer: PeerId, session: u64, want: u32) {
        if self
            .serving
            .get(&peer)
            .is_some_and(|s| s.session == session)
        {
            self.send_symbols(now, peer, want);
        }
    }

    fn on_symbols(
        &mut self,
        now: Instant,
        peer: PeerId,
        session: u64,
        status: SymbolStatus,
        symbols: &[crate::riblt::CodedSymbol<DIGEST_LEN>],
    ) {
        let Some(outgoing) = self.outgoing.as_mut() else {
            return;
        };
        if outgoing.peer != peer || outgoing.session != session {
            return;
        }
        if matches!(status, SymbolStatus::WrongEpoch | SymbolStatus::Busy) {
            self.outgoing = None;
            self.stats.failed_reconciliations += 1;
            return;
        }
        outgoing.deadline = now + self.config.recon_timeout;
        match outgoing.decoder.receive_batch(symbols) {
            Ok(()) => {}
            Err(DecodeError::Inconsistent) => {
                self.outgoing = None;
                self.stats.failed_reconciliations += 1;
                self.report(peer, SCORE_BAD_SYMBOLS);
                return;
            }
            Err(_) => {
                // More symbols than the sketch holds: too large a
                // difference to reconcile.
                self.too_large(now, peer);
                return;
            }
        }
        if outgoing.decoder.is_decoded() {
            self.finish_reconcile(now);
        } else if status == SymbolStatus::End || symbols.is_empty() {
            self.too_large(now, peer);
        } else {
            let received = outgoing.decoder.symbols_received();
            let want = received.clamp(MIN_FIRST_SYMBOLS, MAX_SYMBOLS_PER_MESSAGE);
            let message = Message::ReconMore {
                session,
                want: u32::try_from(want).unwrap_or(u32::MAX),
            };
            self.send(peer, &message, Class::Relay);
        }
    }

    fn too_large(&mut self, now: Instant, peer: PeerId) {
        tracing::debug!(
            "peer {}: difference too large to reconcile; catching up",
            peer.0
        );
        self.outgoing = None;
        self.stats.failed_reconciliations += 1;
        self.start_catchup(now);
    }

    fn finish_reconcile(&mut self, now: Instant) {
        let Some(outgoing) = self.outgoing.take() else {
            return;
        };
        let peer = outgoing.peer;
        let symbols = outgoing.decoder.symbols_received();
        let (remote_only, local_only) = outgoing.decoder.into_difference();
        let wanted = self.missing(remote_only.into_iter().map(Digest));
        let fetched = wanted.len();
        self.queue_fetch(now, peer, wanted);
        let offered: Vec<Digest> = local_only
            .into_iter()
            .map(Digest)
            .take(MAX_DONE_DIGESTS)
            .collect();
        let count = offered.len();
        let message = Message::ReconDone {
            session: outgoing.session,
            digests: offered,
        };
        self.send(peer, &message, Class::Relay);
        self.stats.reconciliations += 1;
        self.out.push_back(Output::Event(Event::Reconciled {
            peer,
            fetched,
            offered: count,
            symbols,
        }));
    }

    fn on_done(&mut self, now: Instant, peer: PeerId, session: u64, digests: Vec<Digest>) {
        if self.serving.get(&peer).is_none_or(|s| s.session != session) {
            return;
        }
        self.serving.remove(&peer);
        let wanted = self.missing(digests.into_iter());
        self.queue_fetch(now, peer, wanted);
    }

    /// The digests worth fetching.
    fn missing(&self, digests: impl Iterator<Item = Digest>) -> Vec<Digest> {
        digests
            .filter(|d| matches!(self.store.presence(d), Ok(Presence::Missing)))
            .collect()
    }

    // ----- fetching by digest -----

    fn queue_fetch(&mut self, now: Instant, peer: PeerId, digests: Vec<Digest>) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        for d in digests {
            if p.fetch.len() >= MAX_FETCH_QUEUE {
                break;
            }
            p.fetch.push_back(d);
        }
        self.pump_fetch(now, peer);
    }

    fn pump_fetch(&mut self, now: Instant, peer: PeerId) {
        loop {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            if p.fetch_inflight >= FETCH_INFLIGHT || p.fetch.is_empty() {
                return;
            }
            let n = p.fetch.len().min(MAX_GET_DIGESTS);
            let digests: Vec<Digest> = p.fetch.drain(..n).collect();
            p.fetch_inflight += 1;
            let request = self.next_request;
            self.next_request += 1;
            let message = Message::GetRecords {
                request,
                digests: digests.clone(),
            };
            self.requests.insert(
                request,
                Pending {
                    peer,
                    deadline: now + self.config.batch_timeout,
                    kind: Kind::Digests(digests),
                    after: None,
                    max_records: MAX_GET_DIGESTS,
                },
            );
            self.send(peer, &message, Class::Relay);
        }
    }

    fn on_get_records(&mut self, peer: PeerId, request: u64, digests: &[Digest]) {
        let found = match self.store.get_by_digests(digests) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("reading records: {e}");
                return;
            }
        };
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        for record in found.into_iter().flatten() {
            let len = record.encoded_len();
            if !records.is_empty()
                && (bytes + len > SERVE_BATCH_BYTES || records.len() >= MAX_BATCH_RECORDS)
            {
                truncated = true;
                break;
            }
            bytes += len;
            records.push(record);
        }
        let message = Message::Records {
            request,
            truncated,
            records,
        };
        self.send(peer, &message, Class::Bulk);
    }

    fn on_records(
        &mut self,
        now: Instant,
        peer: PeerId,
        request: u64,
        truncated: bool,
        records: &[Record],
    ) {
        let Some(pending) = self.requests.get(&request) else {
            // A late answer to a request that timed out, or noise.
            return;
        };
        if pending.peer != peer {
            self.report(peer, SCORE_UNSOLICITED);
            return;
        }
        let Some(pending) = self.requests.remove(&request) else {
            return;
        };
        let Kind::Digests(asked) = pending.kind else {
            self.release_span(&pending.kind, request);
            self.report(peer, SCORE_UNSOLICITED);
            return;
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.fetch_inflight = p.fetch_inflight.saturating_sub(1);
        }
        let asked_set: HashSet<Digest> = asked.iter().copied().collect();
        let received: HashSet<Digest> = records.iter().map(Record::digest).collect();
        if records.len() > asked.len() || !received.is_subset(&asked_set) {
            self.report(peer, SCORE_UNSOLICITED);
            return;
        }
        let stored = self.store_from(peer, records);
        self.stats.fetched_records += stored as u64;
        if truncated && !records.is_empty() {
            let rest: Vec<Digest> = asked
                .into_iter()
                .filter(|d| !received.contains(d))
                .collect();
            if let Some(p) = self.peers.get_mut(&peer) {
                for d in rest.into_iter().rev() {
                    p.fetch.push_front(d);
                }
            }
        }
        self.pump_fetch(now, peer);
    }

    // ----- catch-up -----

    fn start_catchup(&mut self, now: Instant) {
        if self.catchup.is_some() {
            return;
        }
        tracing::info!("catching up");
        self.catchup = Some(Catchup::fresh());
        self.out.push_back(Output::Event(Event::CatchupStarted));
        self.schedule_catchup(now);
    }

    fn release_span(&mut self, kind: &Kind, request: u64) {
        if let Kind::Span(i) = kind
            && let Some(catchup) = self.catchup.as_mut()
            && let Some(span) = catchup.spans.get_mut(*i)
            && span.request == Some(request)
        {
            span.request = None;
        }
    }

    /// Sends catch-up batches while spans, peers and room allow.
    fn schedule_catchup(&mut self, now: Instant) {
        let Some(catchup) = self.catchup.as_ref() else {
            return;
        };
        let best = self
            .peers
            .values()
            .filter(|p| p.ready)
            .filter_map(|p| p.summary.as_ref().map(|s| s.records))
            .max()
            .unwrap_or(0);
        let mut sources: Vec<(PeerId, bool, usize)> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.ready
                    && p.summary
                        .as_ref()
                        .is_some_and(|s| s.records > 0 && s.records.saturating_mul(10) >= best * 9)
            })
            .map(|(id, p)| (*id, p.slow_until.is_some_and(|t| t > now), p.inflight))
            .collect();
        sources.sort();
        let inflight: usize = self.peers.values().map(|p| p.inflight).sum();
        let room = self.config.max_inflight.saturating_sub(inflight);
        let todo: Vec<usize> = catchup
            .spans
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.done && s.request.is_none())
            .map(|(i, _)| i)
            .collect();
        for i in todo.into_iter().take(room) {
            // The least loaded peer, peers that stalled last.
            let Some(pick) = sources
                .iter_mut()
                .filter(|(_, _, load)| *load < self.config.per_peer_inflight)
                .min_by_key(|(_, slow, load)| (*slow, *load))
            else {
                break;
            };
            pick.2 += 1;
            let peer = pick.0;
            self.request_span(now, peer, i);
        }
    }

    fn request_span(&mut self, now: Instant, peer: PeerId, i: usize) {
        let Some(span) = self.catchup.as_mut().and_then(|c| c.spans.get_mut(i)) else {
            return;
        };
        let request = self.next_request;
        self.next_request += 1;
        span.request = Some(request);
        let after = span.after;
        let max_records = self.config.batch_records.clamp(1, MAX_BATCH_RECORDS);
        let max_bytes = self.config.batch_bytes.clamp(1, MAX_BATCH_BYTES);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.inflight += 1;
        }
        self.requests.insert(
            request,
            Pending {
                peer,
                deadline: now + self.config.batch_timeout,
                kind: Kind::Span(i),
                after,
                max_records,
            },
        );
        let message = Message::GetRange {
            request,
            after,
            end: span_end(i),
            max_records: u32::try_from(max_records).unwrap_or(u32::MAX),
            max_bytes: u32::try_from(max_bytes).unwrap_or(u32::MAX),
        };
        // The request is small; the answer comes back as bulk.
        self.send(peer, &message, Class::Relay);
    }

    fn on_get_range(
        &mut self,
        peer: PeerId,
        request: u64,
        after: Option<KeyHashBytes>,
        end: KeyHashBytes,
        max_records: u32,
        max_bytes: u32,
    ) {
        let max_records = usize::try_from(max_records)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_BATCH_RECORDS);
        let max_bytes = usize::try_from(max_bytes)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_BATCH_BYTES);
        let (records, next) = match self.read_range(after, end, max_records, max_bytes) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("reading a range: {e}");
                return;
            }
        };
        let message = Message::Range {
            request,
            next,
            records,
        };
        self.send(peer, &message, Class::Bulk);
    }

    /// Records after `after` up to `end`, within the limits, and where the
    /// next page resumes.
    fn read_range(
        &self,
        after: Option<KeyHashBytes>,
        end: KeyHashBytes,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Record>, Option<KeyHashBytes>), StoreError> {
        if after.is_some_and(|a| a >= end) {
            return Ok((Vec::new(), None));
        }
        let start = after.map(|kh| {
            let mut d = [0u8; DIGEST_LEN];
            d[..KEY_HASH_LEN].copy_from_slice(&kh);
            Digest(d)
        });
        let page = self.store.scan_digests(start.as_ref(), max_records)?;
        let in_range: Vec<Digest> = page
            .digests
            .iter()
            .take_while(|d| d.key_hash().0 <= end)
            .copied()
            .collect();
        let reached_end = in_range.len() < page.digests.len() || page.next.is_none();
        let found = self.store.get_by_digests(&in_range)?;
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut cut: Option<usize> = None;
        for (i, record) in found.into_iter().enumerate() {
            let Some(record) = record else {
                continue;
            };
            let len = record.encoded_len();
            if !records.is_empty() && bytes + len > max_bytes {
                cut = Some(i);
                break;
            }
            bytes += len;
            records.push(record);
        }
        let next = match cut {
            Some(i) => Some(in_range[i - 1].key_hash().0),
            None if reached_end => None,
            None => in_range.last().map(|d| d.key_hash().0),
        };
        Ok((records, next))
    }

    fn on_range(
        &mut self,
        now: Instant,
        peer: PeerId,
        request: u64,
        next: Option<KeyHashBytes>,
        records: &[Record],
    ) {
        let Some(pending) = self.requests.get(&request) else {
            return;
        };
        if pending.peer != peer {
            self.report(peer, SCORE_UNSOLICITED);
            return;
        }
        let Some(pending) = self.requests.remove(&request) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.inflight = p.inflight.saturating_sub(1);
        }
        let Kind::Span(i) = pending.kind else {
            self.report(peer, SCORE_UNSOLICITED);
            return;
        };
        let still_ours = self
            .catchup
            .as_ref()
            .and_then(|c| c.spans.get(i))
            .is_some_and(|s| s.request == Some(request));
        if !still_ours {
            return;
        }
        if !range_ok(
            pending.after,
            span_end(i),
            pending.max_records,
            next,
            records,
        ) {
            self.release_span(&Kind::Span(i), request);
            self.report(peer, SCORE_BAD_BATCH);
            self.schedule_catchup(now);
            return;
        }
        let stored = self.store_from(peer, records);
        self.stats.catchup_records += stored as u64;
        self.stats.catchup_received += records.len() as u64;
        self.stats.batches += 1;
        let Some(catchup) = self.catchup.as_mut() else {
            return;
        };
        if let Some(span) = catchup.spans.get_mut(i) {
            span.request = None;
            match next {
                Some(cursor) => span.after = Some(cursor),
                None => span.done = true,
            }
        }
        if catchup.is_done() {
            self.catchup = None;
            self.out.push_back(Output::SaveProgress(None));
            self.out.push_back(Output::Event(Event::CatchupDone));
            tracing::info!("caught up: {} records", self.records);
            // What the sources lacked, or what changed meanwhile.
            self.reconcile_now(now, None);
        } else {
            let progress = catchup.encode();
            self.out.push_back(Output::SaveProgress(Some(progress)));
            self.schedule_catchup(now);
        }
    }

    // ----- timers -----

    /// Timers: reconciliations, stalled batches, receipts, the epoch.
    pub fn handle_timeout(&mut self, now: Instant) {
        let epoch = self.unix(now) / EPOCH_SECS;
        if epoch != self.epoch {
            self.epoch = epoch;
            if let Err(e) = self.rebuild_sketch() {
                tracing::warn!("rebuilding the sketch: {e}");
            }
            self.serving.clear();
            self.outgoing = None;
        }
        if self.outgoing.as_ref().is_some_and(|o| now >= o.deadline) {
            self.outgoing = None;
            self.stats.failed_reconciliations += 1;
        }
        self.serving.retain(|_, s| now < s.deadline);
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(pending) = self.requests.remove(&id) else {
                continue;
            };
            if let Some(p) = self.peers.get_mut(&pending.peer) {
                match pending.kind {
                    Kind::Span(_) => {
                        p.inflight = p.inflight.saturating_sub(1);
                        p.slow_until = Some(now + self.config.slow_penalty);
                    }
                    Kind::Digests(_) => p.fetch_inflight = p.fetch_inflight.saturating_sub(1),
                }
            }
            if let Kind::Span(i) = pending.kind {
                tracing::debug!(
                    "span {i} stalled at peer {}; asking another",
                    pending.peer.0
                );
                self.stats.stalls += 1;
            }
            self.release_span(&pending.kind, id);
            let peer = pending.peer;
            self.pump_fetch(now, peer);
        }
        self.schedule_catchup(now);
        if now >= self.next_reconcile {
            let interval = self.config.reconcile_interval;
            let jitter = interval.mul_f64(0.5 * self.rng.unit());
            self.next_reconcile = now + interval.mul_f64(0.75) + jitter;
            if self.catchup.is_none() && self.outgoing.is_none() {
                let peer = self.pick_reconcile_peer();
                if let Some(peer) = peer {
                    self.start_reconcile(now, peer);
                }
            }
        }
        for (peer, receipts) in self.receipts.flush(now) {
            if self.peers.get(&peer).is_some_and(|p| p.ready) {
                self.send(peer, &Message::Receipts(receipts), Class::Relay);
            }
        }
        self.flush_payload(now);
    }

    fn pick_reconcile_peer(&mut self) -> Option<PeerId> {
        while let Some(peer) = self.recon_queue.pop_front() {
            if self
                .peers
                .get(&peer)
                .is_some_and(|p| p.ready && p.summary.is_some())
            {
                return Some(peer);
            }
        }
        let mut ready: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.ready && p.summary.is_some())
            .map(|(id, _)| *id)
            .collect();
        ready.sort();
        if ready.is_empty() {
            return None;
        }
        Some(ready[self.rng.index(ready.len())])
    }
}

/// Whether a RANGE answer keeps to its request: at most `max_records`,
/// strictly increasing key hashes after `after` and up to `end`, and a
/// cursor that moves forward.
fn range_ok(
    after: Option<KeyHashBytes>,
    end: KeyHashBytes,
    max_records: usize,
    next: Option<KeyHashBytes>,
    records: &[Record],
) -> bool {
    if records.len() > max_records {
        return false;
    }
    let mut last = after;
    for record in records {
        let kh = record.key_hash().0;
        if last.is_some_and(|l| kh <= l) || kh > end {
            return false;
        }
        last = Some(kh);
    }
    match next {
        None => true,
        Some(cursor) => {
            cursor <= end
                && after.is_none_or(|a| cursor > a)
                && last.is_none_or(|l| cursor >= l)
                && span_of(&cursor) == span_of(&end)
        }
    }
}

/// Node keys as a sorted set, for comparing statuses.
pub fn key_set(keys: &[NodeKey]) -> BTreeSet<NodeKey> {
    keys.iter().copied().collect()
}

#[cfg(test)]
mod tests;
