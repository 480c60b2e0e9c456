//! The sync state machine: push, reconciliation, catch-up and receipts,
//! with no I/O. The contract is written on [`Syncer`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blake2::Digest as _;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use strata_node::rng::Rng;
use strata_node::{Class, MessageId, PeerId, Verdict, later};
use strata_store::{
    Checked, Collected, DIGEST_LEN, Digest, Draft, Error as StoreError, Invalid, MAX_TXN_RECORDS,
    Outcome, Presence, Record, Verified,
};

use crate::catchup::{Batch, Catchup, KeyHashBytes, Limits};
use crate::fetch::Fetch;
use crate::ops::{Done, Op, OpId};
use crate::receipt::{
    CHALLENGE_TTL_SECS, DeliveryStatus, NodeKey, ProofRouted, Receipts, verify_challenge,
    verify_receipts,
};
use crate::recon::{Recon, Symbols};
use crate::riblt::{KEY_LEN, Key, Sketch};
use crate::score::Misbehaviour;
use crate::serve::{Request, Serve};
use crate::wire::{
    Challenge, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Message, NONCE_LEN, Outbox, SymbolStatus,
    command, decode_gossip, gossip_payload, is_challenge, is_record,
};

/// Coded symbols in the sketch each node keeps up to date, by default:
/// enough for about 24,000 differences (1.35 symbols each). Larger
/// differences go to catch-up.
pub const SKETCH_LEN: usize = 1 << 15;
/// Length of an epoch, in seconds: the sketch key changes every epoch.
pub const EPOCH_SECS: u64 = 86_400;
/// Record bytes in one RECORDS answer, at most.
pub const SERVE_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How often the payload is refreshed at most.
pub const PAYLOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Records in one check op, at most.
pub const MAX_CHECK_RECORDS: usize = 1024;
/// Timed-out requests remembered, to tell a late answer (ignored) from an
/// answer to nothing (misbehaviour).
pub const LATE_ANSWERS: usize = 1024;
/// Records in one write op, at most.
pub const MAX_WRITE_RECORDS: usize = 4096;
/// Bytes per second one peer may have served, by default.
pub const DEFAULT_SERVE_RATE: u64 = 32 * 1024 * 1024;
/// Bytes per second served over all peers, by default.
pub const DEFAULT_SERVE_TOTAL_RATE: u64 = 128 * 1024 * 1024;
/// The percent of serving and catching up kept while relay has work, by
/// default.
pub const DEFAULT_RELAY_BUSY_SHARE: u8 = 10;
/// Gossiped records waiting for their check, at most; more are dropped
/// and counted ([`Stats::gossip_overflow`]).
pub const MAX_GOSSIP_WAITING: usize = 4 * MAX_CHECK_RECORDS;
/// How long relay counts as having work after its last fresh record (one
/// gossiped to us that checked and wins, or put or inserted here).
pub const RELAY_LINGER: Duration = Duration::from_millis(250);
/// Most expired records one collect op removes; the next follows at once
/// while more are due.
pub const MAX_COLLECT_RECORDS: usize = MAX_TXN_RECORDS;
/// How long after a failed collect op the next one is tried.
const COLLECT_RETRY_SECS: u64 = 60;

/// The sync layer's `payload_data`, sent in handshakes and timed syncs.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strata_portable_storage::Encode,
    strata_portable_storage::Decode,
)]
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

/// Settings of a [`Syncer`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The node key: signs receipts and the local user's records.
    pub signing_key: SigningKey,
    /// Largest record value decoded off the wire; the store's limit.
    pub max_value_len: usize,
    /// Coded symbols in the sketch ([`SKETCH_LEN`] by default); every node
    /// of a network must use the same length.
    pub sketch_len: usize,
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
    /// Bytes per second one peer may have served (catch-up batches,
    /// fetched records, reconciliation symbols); a second's worth may be
    /// saved up.
    pub serve_rate: u64,
    /// Bytes per second served over all peers.
    pub serve_total_rate: u64,
    /// While relay has work (a fresh record within [`RELAY_LINGER`]), the
    /// share, in percent (1 to 100), of the serving budgets and reads in
    /// service, and of the catch-up batches in flight, that serving and
    /// catching up keep; the rest is left to relay. All of them while relay
    /// is idle.
    pub relay_busy_share: u8,
    /// Pass a gossiped record on once it decodes and its author key is a
    /// valid point ([`Verdict::Provisional`]), before its signature is
    /// checked; the check's verdict follows as the final one. Nothing
    /// unverified is stored either way.
    pub quick_verify: bool,
}

impl Config {
    /// Defaults, with the node key.
    pub fn new(signing_key: SigningKey) -> Config {
        Config {
            signing_key,
            max_value_len: strata_store::DEFAULT_MAX_VALUE_LEN,
            sketch_len: SKETCH_LEN,
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
            serve_rate: DEFAULT_SERVE_RATE,
            serve_total_rate: DEFAULT_SERVE_TOTAL_RATE,
            relay_busy_share: DEFAULT_RELAY_BUSY_SHARE,
            quick_verify: false,
        }
    }

    /// Every duration capped at [`strata_node::MAX_DURATION`]; the machine
    /// applies it to the configuration it is given.
    pub fn capped(mut self) -> Config {
        for d in [
            &mut self.reconcile_interval,
            &mut self.recon_timeout,
            &mut self.batch_timeout,
            &mut self.slow_penalty,
            &mut self.receipt_interval,
        ] {
            *d = (*d).min(strata_node::MAX_DURATION);
        }
        self.relay_busy_share = self.relay_busy_share.clamp(1, 100);
        self
    }

    /// How catch-up asks, with `share` percent of the batches in flight
    /// (at least one).
    fn limits(&self, share: u8) -> Limits {
        let scaled = |cap: usize| (cap.saturating_mul(usize::from(share)) / 100).max(1);
        Limits {
            batch_records: self.batch_records,
            batch_bytes: self.batch_bytes,
            batch_timeout: self.batch_timeout,
            max_inflight: scaled(self.max_inflight),
            per_peer_inflight: scaled(self.per_peer_inflight),
        }
    }
}

/// A put of the local user, numbered so its outcome can be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PutId(pub u64);

/// What became of a put of the local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The record signed.
    pub record: Record,
    /// The store's outcome.
    pub outcome: Outcome,
    /// The gossip message id, when the record was stored and published.
    pub id: Option<MessageId>,
}

/// What the sync layer reports.
#[derive(Debug)]
pub enum Event {
    /// A peer's connection became ready: the sync layer serves it and
    /// asks it from now on.
    PeerReady(PeerId),
    /// A ready peer's connection ended.
    PeerGone(PeerId),
    /// A catch-up began (or resumed).
    CatchupStarted,
    /// Every span of the catch-up is done.
    CatchupDone,
    /// The catch-up stopped unfinished: no peer is left to serve it (none
    /// connected, or every one failed it too often). It resumes when a peer
    /// with more records connects; its progress is kept.
    CatchupStopped {
        /// Spans not done.
        spans_left: usize,
    },
    /// A reconciliation we started decoded.
    Reconciled {
        /// With whom.
        peer: PeerId,
        /// Digests the peer has and we did not (fetched unless the store
        /// knows them by then).
        fetched: usize,
        /// Digests we offered the peer.
        offered: usize,
        /// Coded symbols it took.
        symbols: usize,
    },
    /// A message we published gained confirmations: where it stands now.
    Delivery(DeliveryStatus),
    /// A put finished.
    Put {
        /// Which.
        put: PutId,
        /// Its outcome, or why the store failed.
        result: Result<Put, StoreError>,
    },
    /// A gossip payload of the layer above (not a record). It waits in the
    /// node for [`Syncer::verdict`].
    Gossip {
        /// The neighbour that delivered it.
        peer: PeerId,
        /// Its id.
        id: MessageId,
        /// The payload.
        payload: Bytes,
    },
}

/// What the driver must do.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // drained after every call: the queue stays short
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
    /// The verdict on a gossip message the node holds.
    Verdict(MessageId, Verdict),
    /// Score a peer for misbehaviour.
    Report {
        /// Who.
        peer: PeerId,
        /// What it did.
        what: Misbehaviour,
    },
    /// Replace the node's payload.
    SetPayload(Summary),
    /// Write the catch-up progress (`None`: delete it). Only emitted after
    /// the records it covers are committed.
    SaveProgress(Option<Vec<u8>>),
    /// Run a store op and hand its result back with
    /// [`Syncer::handle_store`].
    Store(OpId, Op),
    /// For the layer above.
    Event(Event),
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records stored.
    pub records: u64,
    /// Whether the store's sketch is loaded (until then nothing is served).
    pub loaded: bool,
    /// Whether a catch-up runs.
    pub catching_up: bool,
    /// Whether an unfinished catch-up waits for a peer to serve it.
    pub catchup_waiting: bool,
    /// Catch-ups stopped for want of a source.
    pub catchup_stopped: u64,
    /// Spans of the catch-up (running or waiting) not done.
    pub spans_left: usize,
    /// Records stored from catch-up batches.
    pub catchup_records: u64,
    /// Records received in catch-up batches, stored or not.
    pub catchup_received: u64,
    /// Catch-up batches in flight now (asked for, or being checked and
    /// written).
    pub catchup_in_flight: usize,
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
    /// Records refused: invalid, or over their author's quota in this store.
    pub invalid_records: u64,
    /// Misbehaviour reports made.
    pub reports: u64,
    /// Receipts seen before, dropped without a signature check.
    pub receipts_replayed: u64,
    /// Receipts dropped unchecked: their sender was over its budget of
    /// signature checks.
    pub receipts_over_budget: u64,
    /// Requests to serve refused: the peer had too many waiting, or (for
    /// reconciliations) its budget or the total one was spent.
    pub serve_refused: u64,
    /// Requests waiting to be served.
    pub serve_waiting: usize,
    /// Whether relay has work now: serving and catch-up keep
    /// `relay_busy_share` of what they may take.
    pub relay_busy: bool,
    /// Digests to fetch that did not fit the queue.
    pub fetch_overflow: u64,
    /// Store ops that failed.
    pub store_errors: u64,
    /// Gossiped records passed on before their check (`quick_verify`).
    pub quick_verdicts: u64,
    /// Gossiped records dropped unchecked: [`MAX_GOSSIP_WAITING`] waited.
    pub gossip_overflow: u64,
    /// Challenges posed on records we published.
    pub challenges_posed: u64,
    /// Challenges of others answered with a proof.
    pub proofs_sent: u64,
    /// Challenges of others dropped, past `receipt::CHALLENGES_PER_SEC`.
    pub challenges_over_budget: u64,
    /// Proofs that did not match the record's bytes.
    pub proofs_wrong: u64,
    /// Proofs dropped unchecked: their sender was over its budget.
    pub proofs_over_budget: u64,
    /// Records refused because they had expired by our clock when they
    /// came (gossiped or fetched).
    pub expired_refused: u64,
    /// Records removed from the set by collection: expired values, and
    /// tombstones past their horizon.
    pub collected: u64,
}

#[derive(Debug, Default)]
struct PeerState {
    ready: bool,
    /// The key the connection authenticated, if it did.
    key: Option<NodeKey>,
    summary: Option<Summary>,
    /// Dropped as a catch-up source (it failed `MAX_STRIKES`
    /// times): for the rest of the connection it is asked for no catch-up,
    /// and its claim starts none.
    spent: bool,
}

/// The set of digests, as the machine knows it.
struct Set {
    sketch: Arc<Sketch<DIGEST_LEN>>,
    records: u64,
    epoch: u64,
    /// The first sketch came back from the store.
    loaded: bool,
    /// A sketch for this epoch is being built.
    building: Option<u64>,
}

/// Where a record to write came from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Gossip(PeerId, MessageId),
    Fetch,
    Catchup,
    /// Given by the local user ([`Syncer::insert`]).
    Local(PutId),
}

/// Delivery tracking asked for with a put: the share wanted and of whom.
type Track = Option<(f64, Option<Vec<NodeKey>>)>;

/// A catch-up span whose batch is committed once a write op is.
#[derive(Debug, Clone, Copy)]
struct SpanDone {
    span: usize,
    request: u64,
    next: Option<KeyHashBytes>,
}

/// What a store op in flight is for.
enum Pending {
    Sketch {
        epoch: u64,
    },
    GossipCheck(Vec<(PeerId, MessageId)>),
    FetchCheck {
        peer: PeerId,
    },
    SpanCheck {
        peer: PeerId,
        done: SpanDone,
    },
    Write {
        origins: Vec<Origin>,
        spans: Vec<SpanDone>,
    },
    PutOwn {
        put: PutId,
        track: Track,
    },
    Collect,
    InsertCheck {
        put: PutId,
    },
    Missing {
        peer: PeerId,
        digests: Vec<Digest>,
    },
    Serve {
        peer: PeerId,
        request: u64,
        range: bool,
    },
    /// The record of a message we published, to challenge its holders.
    Pose {
        id: MessageId,
    },
    /// The record a challenge of another node names, to answer it.
    Answer {
        peer: PeerId,
        id: MessageId,
        challenge: Challenge,
    },
}

/// The sync state machine.
///
/// # The contract
///
/// [`Syncer`] is driven like the node, in quinn-proto's four families:
///
/// - **Getters** (`summary`, `stats`, `delivery_status`, …) read the state.
/// - **`handle_*`** methods take what happened: a peer became ready or
///   left, its payload or a message of the sync range arrived, new gossip
///   came (for a verdict), a store op finished, the timer fired. Each takes
///   the current time last.
/// - **Mutators** take the local user's commands: [`Syncer::put`],
///   [`Syncer::publish`], [`Syncer::verdict`], [`Syncer::reconcile_now`].
/// - **`poll_*`**: drain [`Syncer::poll_output`] until `None` after every
///   call; [`Syncer::poll_timeout`] says when [`Syncer::handle_timeout`]
///   must next run, and any call can move it.
///
/// The machine owns no store. It asks for store work with
/// [`Output::Store`]; the driver carries the [`Op`] out ([`Op::run`]) and
/// hands the [`Done`] back with [`Syncer::handle_store`], keeping the order
/// of the write lane ([`crate::ops`]). It reads no clock, opens no socket,
/// starts no thread and calls nothing of the layer above. `now` must never
/// go backwards.
///
/// Parts, each owning its state: `Recon` (reconciliation sessions),
/// `Fetch` (digests to fetch and their requests), `Catchup` (spans and
/// span requests), `Receipts`. The machine owns what they share: the set
/// (sketch, count, epoch), the peers' summaries, the store ops in flight and
/// the batches waiting for them.
pub struct Syncer {
    config: Config,
    rng: Rng,
    start: Instant,
    unix_start: u64,
    set: Set,
    peers: HashMap<PeerId, PeerState>,
    recon: Recon,
    fetch: Fetch,
    catchup: Option<Catchup>,
    serving: Serve,
    /// Until when relay counts as having work, while it does.
    relay_until: Option<Instant>,
    /// The soonest expiry (Unix seconds) of a record that may be stored,
    /// as far as we know: the store's answer to the last collect, lowered
    /// by every write since. `Some(0)` at start, to ask the store.
    next_expiry: Option<u64>,
    collecting: bool,
    /// Requests that timed out, newest last (at most [`LATE_ANSWERS`]).
    late: VecDeque<(PeerId, u64)>,
    /// A catch-up that stopped unfinished for want of a source (or was read
    /// back from saved progress), resumed when a peer has more records.
    parked: Option<Catchup>,
    receipts: Receipts,
    ops: HashMap<OpId, Pending>,
    next_op: u64,
    next_request: u64,
    next_put: u64,
    /// Gossiped records waiting for a check op.
    gossip_waiting: Vec<(PeerId, MessageId, Record)>,
    gossip_checking: bool,
    /// Catch-up batches received and waiting for a check op: one is checked
    /// at a time (a check spreads over every core; several at once would
    /// crowd out the relay's small checks). Bounded by catch-up's requests
    /// in flight.
    spans_unchecked: VecDeque<(PeerId, SpanDone, Vec<Record>)>,
    span_checking: bool,
    /// Verified records waiting for a write op, and the spans committed
    /// with the write that holds their last record (by position).
    writes_waiting: Vec<(Verified, Origin)>,
    spans_waiting: Vec<(usize, SpanDone)>,
    writing: bool,
    /// Records of the local user being checked or written, with their
    /// tracking.
    inserts: HashMap<PutId, (Record, Track)>,
    payload_dirty: bool,
    next_payload: Instant,
    out: VecDeque<Output>,
    outbox: Outbox,
    stats: Stats,
}

/// A read to serve with `share` percent of the records and bytes it asks
/// for (at least one record): while relay has work, answers come in
/// smaller pieces, which their receivers check in shorter turns.
fn shrink(op: Op, share: u8) -> Op {
    if share >= 100 {
        return op;
    }
    let scaled = |n: usize| (n.saturating_mul(usize::from(share)) / 100).max(1);
    match op {
        Op::Range {
            after,
            end,
            max_records,
            max_bytes,
        } => Op::Range {
            after,
            end,
            max_records: scaled(max_records),
            max_bytes: scaled(max_bytes),
        },
        other => other,
    }
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

impl Syncer {
    /// A machine whose store is yet to be read. `unix` is the wall-clock
    /// time at `now` in Unix seconds (it picks the sketch epoch), `seed`
    /// seeds every random choice, and `progress` is what the last
    /// [`Output::SaveProgress`] wrote, if anything: a catch-up it describes
    /// resumes.
    ///
    /// Its first output asks for the sketch of the store ([`Op::Sketch`]);
    /// until that is back, nothing is served and no catch-up starts.
    pub fn new(
        config: Config,
        progress: Option<&[u8]>,
        unix: u64,
        seed: u64,
        now: Instant,
    ) -> Syncer {
        let config = config.capped();
        let epoch = unix / EPOCH_SECS;
        let receipts = Receipts::new(config.signing_key.clone(), config.receipt_interval);
        let sketch = Arc::new(Sketch::new(epoch_key(epoch), config.sketch_len));
        let mut syncer = Syncer {
            rng: Rng::new(seed),
            start: now,
            unix_start: unix,
            set: Set {
                sketch,
                records: 0,
                epoch,
                loaded: false,
                building: None,
            },
            peers: HashMap::new(),
            recon: Recon::new(now),
            fetch: Fetch::default(),
            catchup: None,
            serving: Serve::new(config.serve_rate, config.serve_total_rate, now),
            relay_until: None,
            next_expiry: Some(0),
            collecting: false,
            parked: None,
            late: VecDeque::new(),
            receipts,
            ops: HashMap::new(),
            next_op: 1,
            next_request: 1,
            next_put: 1,
            gossip_waiting: Vec::new(),
            gossip_checking: false,
            spans_unchecked: VecDeque::new(),
            span_checking: false,
            writes_waiting: Vec::new(),
            spans_waiting: Vec::new(),
            writing: false,
            inserts: HashMap::new(),
            payload_dirty: true,
            next_payload: now,
            out: VecDeque::new(),
            outbox: Outbox::default(),
            stats: Stats::default(),
            config,
        };
        syncer.build_sketch(epoch);
        // The first periodic reconciliation comes an interval after start:
        // a peer that differs when it connects is reconciled with at once
        // by one end of the link (`consider`), not by both.
        syncer
            .recon
            .reschedule(syncer.config.reconcile_interval, &mut syncer.rng, now);
        match progress.map(Catchup::decode) {
            Some(Some(catchup)) if !catchup.is_done() => {
                // Resumed as soon as a peer has more records than we do.
                syncer.parked = Some(catchup);
            }
            Some(None) => tracing::warn!(
                "the saved catch-up progress is not readable; a catch-up, if one is needed, \
                 starts from the beginning"
            ),
            _ => {}
        }
        syncer
    }

    // ----- getters -----

    /// The payload describing our store.
    pub fn summary(&self) -> Summary {
        Summary {
            records: self.set.records,
            epoch: self.set.epoch,
            fingerprint: self.set.sketch.symbols().first().map_or(0, |s| s.checksum),
            key: self.receipts.own_key(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a catch-up runs.
    pub fn is_catching_up(&self) -> bool {
        self.catchup.is_some()
    }

    /// The catch-up progress in its saved encoding, if one runs or waits
    /// for a source.
    pub fn progress(&self) -> Option<Vec<u8>> {
        self.catchup
            .as_ref()
            .or(self.parked.as_ref())
            .map(Catchup::encode)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            records: self.set.records,
            loaded: self.set.loaded,
            catching_up: self.catchup.is_some(),
            catchup_waiting: self.catchup.is_none() && self.parked.is_some(),
            spans_left: self
                .catchup
                .as_ref()
                .or(self.parked.as_ref())
                .map_or(0, Catchup::remaining),
            receipt_bytes_sent: self.receipts.bytes_sent,
            receipts_signed: self.receipts.receipts_signed,
            receipts_replayed: self.receipts.replays,
            receipts_over_budget: self.receipts.over_budget,
            challenges_posed: self.receipts.challenges_posed,
            proofs_sent: self.receipts.proofs_sent,
            challenges_over_budget: self.receipts.challenges_over_budget,
            proofs_wrong: self.receipts.proofs_wrong,
            proofs_over_budget: self.receipts.proofs_over_budget,
            fetch_overflow: self.fetch.overflow,
            serve_waiting: self.serving.waiting(),
            relay_busy: self.relay_until.is_some(),
            catchup_in_flight: self.catchup.as_ref().map_or(0, Catchup::in_flight),
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

    // ----- poll -----

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let anyone = self.peers.values().any(|p| p.ready && p.summary.is_some());
        [
            self.recon.poll_timeout(anyone && self.set.loaded),
            self.fetch.poll_timeout(),
            self.catchup.as_ref().and_then(Catchup::poll_timeout),
            self.receipts.poll_timeout(),
            self.serving.poll_timeout(),
            self.relay_until,
            self.collect_at(),
            (self.set.loaded && self.payload_dirty).then_some(self.next_payload),
            Some(self.epoch_end()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the next collect op is due.
    fn collect_at(&self) -> Option<Instant> {
        if self.collecting {
            return None;
        }
        let at = self.next_expiry?;
        let after = Duration::from_secs(at.saturating_sub(self.unix_start));
        Some(
            self.start
                .checked_add(after)
                .unwrap_or_else(|| later(self.start, after)),
        )
    }

    /// Lowers the soonest expiry known by those of records being written.
    fn note_expiry(&mut self, expiries: impl Iterator<Item = u64>) {
        if let Some(soonest) = expiries.filter(|&t| t != 0).min() {
            self.next_expiry = Some(self.next_expiry.map_or(soonest, |t| t.min(soonest)));
        }
    }

    fn unix(&self, now: Instant) -> u64 {
        self.unix_start
            .saturating_add(now.saturating_duration_since(self.start).as_secs())
    }

    fn epoch_end(&self) -> Instant {
        let end = self.set.epoch.saturating_add(1).saturating_mul(EPOCH_SECS);
        let after = Duration::from_secs(end.saturating_sub(self.unix_start));
        self.start
            .checked_add(after)
            .unwrap_or_else(|| later(self.start, Duration::from_secs(EPOCH_SECS)))
    }

    // ----- mutators: the local user -----

    /// Signs the draft (a value or a tombstone) with the node key, with
    /// the next version (or the draft's), stores it and, if stored,
    /// publishes it by gossip. The outcome comes as [`Event::Put`] with the
    /// returned id.
    pub fn put(&mut self, draft: Draft, now: Instant) -> PutId {
        self.put_tracked(draft, None, now)
    }

    /// [`put`](Self::put), and tracks the delivery of the gossip message:
    /// `want` is the share of `expected` (by default every node key we
    /// know) whose receipts are wanted; [`Event::Delivery`] says how it
    /// stands as receipts arrive.
    pub fn publish(
        &mut self,
        draft: Draft,
        want: f64,
        expected: Option<Vec<NodeKey>>,
        now: Instant,
    ) -> PutId {
        self.put_tracked(draft, Some((want, expected)), now)
    }

    /// Stores a record signed elsewhere (by any author) once its signature
    /// checks and, if stored, publishes it by gossip, tracking its delivery
    /// as [`publish`](Self::publish) does when `track` is given. The outcome
    /// comes as [`Event::Put`].
    pub fn insert(&mut self, record: Record, track: Track, now: Instant) -> PutId {
        self.relay_work(now);
        let put = self.next_put();
        self.inserts.insert(put, (record.clone(), track));
        self.store_op(Op::Check(vec![record]), Pending::InsertCheck { put });
        self.finish(now);
        put
    }

    fn next_put(&mut self) -> PutId {
        let put = PutId(self.next_put);
        self.next_put = self.next_put.wrapping_add(1);
        put
    }

    fn put_tracked(&mut self, draft: Draft, track: Track, now: Instant) -> PutId {
        self.relay_work(now);
        let put = self.next_put();
        self.note_expiry(std::iter::once(draft.expires));
        self.store_op(Op::PutOwn(draft), Pending::PutOwn { put, track });
        self.finish(now);
        put
    }

    /// The layer above's verdict on a gossip message it was given as
    /// [`Event::Gossip`].
    pub fn verdict(&mut self, id: MessageId, verdict: Verdict, now: Instant) {
        self.out.push_back(Output::Verdict(id, verdict));
        self.finish(now);
    }

    /// Challenges the holders of the record of a message we published to
    /// prove they hold its bytes now: a fresh nonce goes out by gossip, and
    /// each holder answers with the keyed hash of the record's bytes and
    /// its key, which travels back as receipts do. [`Event::Delivery`]
    /// tells of each proof; [`DeliveryStatus::proved`] lists them. Returns
    /// whether the message is tracked.
    pub fn challenge(&mut self, id: MessageId, now: Instant) -> bool {
        let Some(digest) = self.receipts.digest_of(&id) else {
            return false;
        };
        self.store_op(
            Op::Records {
                digests: vec![digest],
                max_records: 1,
                max_bytes: usize::MAX,
            },
            Pending::Pose { id },
        );
        self.finish(now);
        true
    }

    /// Reconciles with `peer` (or a random ready peer) as soon as possible.
    pub fn reconcile_now(&mut self, peer: Option<PeerId>, now: Instant) {
        self.recon.soon(peer, now);
    }

    // ----- handle_*: what happened -----

    /// A peer completed its handshake; `key` is the key its connection
    /// authenticated (TLS), if any. Only an authenticated key is learnt as
    /// a node that receipts are expected from.
    pub fn handle_peer_ready(&mut self, peer: PeerId, key: Option<NodeKey>, now: Instant) {
        let p = self.peers.entry(peer).or_default();
        let newly = !p.ready;
        p.ready = true;
        p.key = key;
        if newly {
            self.out.push_back(Output::Event(Event::PeerReady(peer)));
        }
        self.consider(peer, now);
        self.finish(now);
    }

    /// A peer's connection ended.
    pub fn handle_peer_gone(&mut self, peer: PeerId, now: Instant) {
        if self.peers.remove(&peer).is_some_and(|p| p.ready) {
            self.out.push_back(Output::Event(Event::PeerGone(peer)));
        }
        if self.recon.peer_gone(peer) {
            self.stats.failed_reconciliations = self.stats.failed_reconciliations.saturating_add(1);
        }
        self.fetch.peer_gone(peer);
        self.receipts.peer_gone(peer);
        self.serving.peer_gone(peer);
        if let Some(catchup) = self.catchup.as_mut() {
            catchup.peer_gone(peer);
        }
        self.schedule_catchup(now);
        self.finish(now);
    }

    /// A peer's payload (handshake or timed sync). Its key is learnt only
    /// when the connection authenticated it; another key than that one is
    /// misbehaviour.
    pub fn handle_payload(&mut self, peer: PeerId, summary: Summary, now: Instant) {
        let authenticated = self.peers.get(&peer).and_then(|p| p.key);
        match authenticated {
            Some(key) if key == summary.key => self.receipts.learn(summary.key),
            Some(_) => self.report(peer, Misbehaviour::WrongKey),
            None => {}
        }
        self.peers.entry(peer).or_default().summary = Some(summary);
        self.consider(peer, now);
        self.finish(now);
    }

    /// New gossip the node holds for a verdict. A record is checked (its
    /// verdict follows the check); anything else goes up as
    /// [`Event::Gossip`].
    pub fn handle_gossip(&mut self, peer: PeerId, id: MessageId, payload: Bytes, now: Instant) {
        if is_challenge(&payload) {
            self.on_challenge(peer, id, &payload, now);
            self.finish(now);
            return;
        }
        if !is_record(&payload) {
            self.out
                .push_back(Output::Event(Event::Gossip { peer, id, payload }));
            return;
        }
        match decode_gossip(&payload, self.config.max_value_len) {
            Ok(record) if record.is_expired(self.unix(now)) => {
                // Our clock may run ahead of the sender's: not its fault.
                self.stats.expired_refused = self.stats.expired_refused.saturating_add(1);
                self.out.push_back(Output::Verdict(id, Verdict::Drop));
            }
            Ok(record)
                if self.config.quick_verify
                    && ed25519_dalek::VerifyingKey::from_bytes(record.author()).is_err() =>
            {
                self.stats.invalid_records = self.stats.invalid_records.saturating_add(1);
                self.out.push_back(Output::Verdict(id, Verdict::Reject));
            }
            Ok(_) if self.gossip_waiting.len() >= MAX_GOSSIP_WAITING => {
                // The checks fell this far behind: refused, counted.
                self.stats.gossip_overflow = self.stats.gossip_overflow.saturating_add(1);
                self.out.push_back(Output::Verdict(id, Verdict::Drop));
            }
            Ok(record) => {
                if self.config.quick_verify {
                    // Passed on now; the check's verdict is the final one.
                    self.stats.quick_verdicts = self.stats.quick_verdicts.saturating_add(1);
                    self.out
                        .push_back(Output::Verdict(id, Verdict::Provisional));
                }
                self.gossip_waiting.push((peer, id, record));
                self.check_gossip();
            }
            Err(e) => {
                tracing::debug!("gossip from peer {}: {e}", peer.0);
                self.out.push_back(Output::Verdict(id, Verdict::Reject));
            }
        }
        self.finish(now);
    }

    /// A message of the sync layer's range from a ready peer.
    pub fn handle_message(&mut self, peer: PeerId, command: u32, body: &[u8], now: Instant) {
        let len = body.len() as u64;
        match command {
            command::RECON_REQUEST..=command::RECON_DONE => {
                self.stats.recon_bytes_received =
                    self.stats.recon_bytes_received.saturating_add(len)
            }
            command::GET_RECORDS..=command::RANGE => {
                self.stats.record_bytes_received =
                    self.stats.record_bytes_received.saturating_add(len)
            }
            _ => {}
        }
        if !self.peers.get(&peer).is_some_and(|p| p.ready) {
            return;
        }
        let message = match Message::decode(command, body, self.config.max_value_len) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("peer {}: command {command}: {e}", peer.0);
                let what = match e {
                    crate::wire::WireError::TooMany { .. } => Misbehaviour::BadBatch,
                    _ => Misbehaviour::Undecodable,
                };
                self.report(peer, what);
                self.finish(now);
                return;
            }
        };
        match message {
            Message::ReconRequest {
                session,
                epoch,
                first,
            } => {
                let refuse = if epoch != self.set.epoch {
                    Some(SymbolStatus::WrongEpoch)
                } else if !self.set.loaded || self.catchup.is_some() {
                    // A node catching up takes its records in bounded
                    // batches, not in one reconciliation.
                    Some(SymbolStatus::Busy)
                } else if !self.serving.may_serve(peer, now) {
                    // The peer (or everyone) used up what it may be sent.
                    self.stats.serve_refused = self.stats.serve_refused.saturating_add(1);
                    Some(SymbolStatus::Busy)
                } else {
                    None
                };
                let sketch = self.set.sketch.clone();
                self.recon
                    .on_request(peer, session, first, &sketch, refuse, now, &mut self.outbox);
            }
            Message::ReconSymbols {
                session,
                status,
                symbols,
            } => {
                let result = self.recon.on_symbols(
                    peer,
                    session,
                    status,
                    &symbols,
                    self.config.recon_timeout,
                    now,
                    &mut self.outbox,
                );
                self.on_recon_result(result, now);
            }
            Message::ReconMore { session, want } => {
                self.recon
                    .on_more(peer, session, want, now, &mut self.outbox);
            }
            Message::ReconDone { session, digests } => {
                if self.recon.on_done(peer, session) && !digests.is_empty() {
                    self.look_up(peer, digests);
                }
            }
            Message::GetRecords { request, digests } => {
                let op = Op::Records {
                    digests,
                    max_records: MAX_BATCH_RECORDS,
                    max_bytes: SERVE_BATCH_BYTES,
                };
                self.serve(peer, request, op, false, now);
            }
            Message::Records { request, .. } | Message::Range { request, .. }
                if !self.fetch.knows(request)
                    && !self.catchup.as_ref().is_some_and(|c| c.knows(request)) =>
            {
                // Not ours in flight: a late answer, or one to nothing.
                if !self.late.contains(&(peer, request)) {
                    self.report(peer, Misbehaviour::Unsolicited);
                }
            }
            Message::Records {
                request,
                truncated,
                records,
            } => match self.fetch.on_records(peer, request, truncated, records) {
                Ok(Some(records)) if !records.is_empty() => {
                    let unix = self.unix(now);
                    let (expired, records): (Vec<Record>, Vec<Record>) =
                        records.into_iter().partition(|r| r.is_expired(unix));
                    self.stats.expired_refused = self
                        .stats
                        .expired_refused
                        .saturating_add(expired.len() as u64);
                    if records.is_empty() {
                        self.pump_fetch(peer, now);
                    } else {
                        self.store_op(Op::Check(records), Pending::FetchCheck { peer });
                    }
                }
                Ok(_) => self.pump_fetch(peer, now),
                Err(what) => self.report(peer, what),
            },
            Message::GetRange {
                request,
                after,
                end,
                max_records,
                max_bytes,
            } => {
                let op = Op::Range {
                    after,
                    end,
                    max_records: usize::try_from(max_records)
                        .unwrap_or(usize::MAX)
                        .clamp(1, MAX_BATCH_RECORDS),
                    max_bytes: usize::try_from(max_bytes)
                        .unwrap_or(usize::MAX)
                        .clamp(1, MAX_BATCH_BYTES),
                };
                self.serve(peer, request, op, true, now);
            }
            Message::Range {
                request,
                next,
                records,
            } => self.on_range(peer, request, next, records, now),
            Message::Proof(proof) => match self.receipts.on_proof(peer, &proof, now) {
                ProofRouted::Proved(status) => {
                    self.out.push_back(Output::Event(Event::Delivery(status)));
                }
                ProofRouted::Forward(parent) => {
                    self.outbox
                        .push(parent, Message::Proof(proof), Class::Relay);
                }
                ProofRouted::Forged => self.report(peer, Misbehaviour::BadProof),
                ProofRouted::Nothing => {}
            },
            Message::Receipts(receipts) => {
                let receipts = self.receipts.admit(peer, receipts, now);
                if !verify_receipts(&receipts) {
                    self.report(peer, Misbehaviour::BadReceipt);
                } else {
                    let routed = self.receipts.route(peer, receipts, now);
                    for status in routed.changed {
                        self.out.push_back(Output::Event(Event::Delivery(status)));
                    }
                }
            }
        }
        self.finish(now);
    }

    /// A store op finished.
    pub fn handle_store(&mut self, op: OpId, done: Done, now: Instant) {
        let Some(pending) = self.ops.remove(&op) else {
            return;
        };
        match (pending, done) {
            (Pending::Sketch { epoch }, Done::Sketch(result)) => self.on_sketch(epoch, result, now),
            (Pending::GossipCheck(items), Done::Checked(result)) => {
                self.gossip_checking = false;
                self.on_gossip_checked(items, result, now);
                self.check_gossip();
            }
            (Pending::FetchCheck { peer }, Done::Checked(result)) => {
                self.on_checked(peer, Origin::Fetch, result, None);
                self.pump_fetch(peer, now);
            }
            (Pending::SpanCheck { peer, done }, Done::Checked(result)) => {
                self.span_checking = false;
                self.check_spans();
                self.stats.catchup_received = self
                    .stats
                    .catchup_received
                    .saturating_add(result.as_ref().map_or(0, |c| c.len() as u64));
                self.on_checked(peer, Origin::Catchup, result, Some(done));
                self.after_commit(now);
            }
            (Pending::Write { origins, spans }, Done::Written(result)) => {
                self.writing = false;
                let written = self.on_written(&origins, result, now);
                if let Some(catchup) = self.catchup.as_mut() {
                    for s in spans {
                        if written {
                            catchup.commit(s.span, s.request, s.next);
                            self.stats.batches = self.stats.batches.saturating_add(1);
                        } else {
                            catchup.release(s.span, s.request);
                        }
                    }
                }
                self.after_commit(now);
            }
            (Pending::PutOwn { put, track }, Done::PutOwn(result)) => {
                let result = result.map(|(record, outcome)| {
                    self.apply(&outcome);
                    self.stored_locally(record, outcome, track, now)
                });
                self.out
                    .push_back(Output::Event(Event::Put { put, result }));
            }
            (Pending::Collect, Done::Collected(result)) => self.on_collected(result, now),
            (Pending::InsertCheck { put }, Done::Checked(result)) => {
                self.on_insert_checked(put, result, now);
            }
            (Pending::Missing { peer, digests }, Done::Presence(result)) => {
                self.on_missing(peer, digests, result, now);
            }
            (
                Pending::Serve {
                    peer,
                    request,
                    range,
                },
                done,
            ) => {
                self.on_served(peer, request, range, done);
                self.pump_serving(now);
            }
            (Pending::Pose { id }, Done::Records(Ok((records, _)))) => {
                if let Some(record) = records.first() {
                    let nonce = self.nonce(now);
                    if let Some(payload) = self.receipts.pose(id, record, nonce) {
                        self.out.push_back(Output::Propagate(payload));
                        if let Some(status) = self.receipts.status(&id) {
                            self.out.push_back(Output::Event(Event::Delivery(status)));
                        }
                    }
                }
            }
            (
                Pending::Answer {
                    peer,
                    id,
                    challenge,
                },
                Done::Records(Ok((records, _))),
            ) => self.on_answer(peer, id, &challenge, records.first(), now),
            (Pending::Pose { .. }, Done::Records(Err(e))) => {
                tracing::warn!("reading a record to challenge its holders failed: {e}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
            }
            (Pending::Answer { id, .. }, Done::Records(Err(e))) => {
                tracing::warn!("reading a challenged record failed: {e}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                self.out.push_back(Output::Verdict(id, Verdict::Drop));
            }
            (_, _) => {
                tracing::warn!("a store op came back with the result of another kind");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
            }
        }
        self.flush_writes();
        self.finish(now);
    }

    /// Timers: reconciliations, stalled batches, receipts, serving, the
    /// epoch.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.relay_until.is_some_and(|until| until <= now) {
            // Relay is idle: serving and catch-up take everything again.
            self.relay_until = None;
            self.serving.set_share(100, now);
            self.schedule_catchup(now);
        }
        self.pump_serving(now);
        let unix = self.unix(now);
        if !self.collecting && self.next_expiry.is_some_and(|t| t <= unix) {
            self.collecting = true;
            // Writes from here on lower it again; the store's answer covers
            // the rest.
            self.next_expiry = None;
            let op = Op::Collect {
                now: unix,
                max: MAX_COLLECT_RECORDS,
            };
            self.store_op(op, Pending::Collect);
        }
        let epoch = self.unix(now) / EPOCH_SECS;
        if epoch != self.set.epoch && self.set.building.is_none() {
            self.build_sketch(epoch);
        }
        if self.recon.handle_timeout(now) {
            self.stats.failed_reconciliations = self.stats.failed_reconciliations.saturating_add(1);
        }
        let expired = self.fetch.handle_timeout(now);
        let mut peers: Vec<PeerId> = expired.iter().map(|(peer, _)| *peer).collect();
        peers.dedup();
        self.note_late(&expired);
        for peer in peers {
            self.pump_fetch(peer, now);
        }
        if let Some(catchup) = self.catchup.as_mut() {
            let stalled = catchup.handle_timeout(now, self.config.slow_penalty);
            self.stats.stalls = self.stats.stalls.saturating_add(stalled.len() as u64);
            self.note_late(&stalled);
        }
        self.schedule_catchup(now);
        if self.recon.is_due(now) {
            self.recon
                .reschedule(self.config.reconcile_interval, &mut self.rng, now);
            if self.set.loaded && self.catchup.is_none() && !self.recon.is_running() {
                self.start_reconcile(now);
            }
        }
        for (peer, receipts) in self.receipts.flush(now) {
            if self.peers.get(&peer).is_some_and(|p| p.ready) {
                self.outbox
                    .push(peer, Message::Receipts(receipts), Class::Relay);
            }
        }
        self.finish(now);
    }

    // ----- the set -----

    fn build_sketch(&mut self, epoch: u64) {
        self.set.building = Some(epoch);
        let op = Op::Sketch {
            key: epoch_key(epoch),
            len: self.config.sketch_len,
        };
        self.store_op(op, Pending::Sketch { epoch });
    }

    fn on_sketch(
        &mut self,
        epoch: u64,
        result: Result<(Sketch<DIGEST_LEN>, u64), StoreError>,
        now: Instant,
    ) {
        self.set.building = None;
        let (sketch, records) = match result {
            Ok(built) => built,
            Err(e) => {
                tracing::warn!("building the sketch: {e}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                return;
            }
        };
        let first = !self.set.loaded;
        self.set.sketch = Arc::new(sketch);
        self.set.records = records;
        if self.set.epoch != epoch {
            self.set.epoch = epoch;
            if self.recon.reset() {
                self.stats.failed_reconciliations =
                    self.stats.failed_reconciliations.saturating_add(1);
            }
        }
        self.set.loaded = true;
        self.payload_dirty = true;
        if first {
            let mut peers: Vec<PeerId> = self.peers.keys().copied().collect();
            peers.sort();
            for peer in peers {
                self.consider(peer, now);
            }
        }
    }

    /// Takes what a collect op removed out of the sketch and the count.
    fn on_collected(&mut self, result: Result<Collected, StoreError>, now: Instant) {
        self.collecting = false;
        let next = match result {
            Ok(collected) => {
                let n = collected.removed.len() as u64;
                if n > 0 {
                    let sketch = Arc::make_mut(&mut self.set.sketch);
                    for digest in &collected.removed {
                        sketch.remove(&digest.0);
                    }
                    self.set.records = self.set.records.saturating_sub(n);
                    self.stats.collected = self.stats.collected.saturating_add(n);
                    self.payload_dirty = true;
                }
                collected.next
            }
            Err(e) => {
                tracing::warn!("collecting expired records: {e}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                Some(self.unix(now).saturating_add(COLLECT_RETRY_SECS))
            }
        };
        self.note_expiry(next.into_iter());
    }

    /// Applies a write's outcomes to the sketch and the count.
    fn apply(&mut self, outcome: &Outcome) {
        if outcome.removed().is_some() || outcome.added().is_some() {
            let sketch = Arc::make_mut(&mut self.set.sketch);
            if let Some(old) = outcome.removed() {
                sketch.remove(&old.0);
            }
            if let Some(new) = outcome.added() {
                sketch.insert(&new.0);
            }
        }
        match outcome {
            Outcome::Inserted { .. } => self.set.records = self.set.records.saturating_add(1),
            Outcome::Invalid(_) => {
                self.stats.invalid_records = self.stats.invalid_records.saturating_add(1)
            }
            _ => {}
        }
        if outcome.is_stored() {
            self.payload_dirty = true;
        }
    }

    // ----- store ops -----

    fn store_op(&mut self, op: Op, pending: Pending) {
        let id = OpId(self.next_op);
        self.next_op = self.next_op.wrapping_add(1);
        self.ops.insert(id, pending);
        self.out.push_back(Output::Store(id, op));
    }

    /// Sends the next catch-up batch waiting to a check, unless one runs.
    fn check_spans(&mut self) {
        if self.span_checking {
            return;
        }
        let Some((peer, done, records)) = self.spans_unchecked.pop_front() else {
            return;
        };
        self.span_checking = true;
        self.store_op(Op::Check(records), Pending::SpanCheck { peer, done });
    }

    /// Sends the gossiped records waiting to a check, unless one runs.
    fn check_gossip(&mut self) {
        if self.gossip_checking || self.gossip_waiting.is_empty() {
            return;
        }
        let n = self.gossip_waiting.len().min(MAX_CHECK_RECORDS);
        let mut meta = Vec::with_capacity(n);
        let mut records = Vec::with_capacity(n);
        for (peer, id, record) in self.gossip_waiting.drain(..n) {
            meta.push((peer, id));
            records.push(record);
        }
        self.gossip_checking = true;
        self.store_op(Op::Check(records), Pending::GossipCheck(meta));
    }

    fn on_gossip_checked(
        &mut self,
        items: Vec<(PeerId, MessageId)>,
        result: Result<Vec<Checked>, StoreError>,
        now: Instant,
    ) {
        let checked = match result {
            Ok(checked) if checked.len() == items.len() => checked,
            Ok(_) | Err(_) => {
                // Without a check nothing is passed on or stored; the
                // records come back by reconciliation.
                tracing::warn!("checking gossiped records failed");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                for (_, id) in items {
                    self.out.push_back(Output::Verdict(id, Verdict::Drop));
                }
                return;
            }
        };
        for ((peer, id), c) in items.into_iter().zip(checked) {
            let verdict = match c {
                Checked::New { record, wins } => {
                    self.writes_waiting.push((record, Origin::Gossip(peer, id)));
                    if wins {
                        // A fresh record to relay.
                        self.relay_work(now);
                        Verdict::Propagate
                    } else {
                        Verdict::Drop
                    }
                }
                Checked::Known(Presence::Stored) => {
                    self.receipts.accepted(id, peer, now);
                    Verdict::Propagate
                }
                Checked::Known(_) => {
                    // Old news is confirmed but not passed on.
                    self.receipts.accepted(id, peer, now);
                    Verdict::Drop
                }
                Checked::Invalid(Invalid::BadSignature | Invalid::BadAuthor) => {
                    self.stats.invalid_records = self.stats.invalid_records.saturating_add(1);
                    Verdict::Reject
                }
                Checked::Invalid(why) => {
                    tracing::debug!("gossip from peer {}: {why}", peer.0);
                    self.stats.invalid_records = self.stats.invalid_records.saturating_add(1);
                    Verdict::Drop
                }
            };
            self.out.push_back(Output::Verdict(id, verdict));
        }
    }

    /// Records from `peer` checked: forged ones are reported, new ones
    /// queued for writing, and a catch-up batch is committed with them (or
    /// at once when nothing is new; released when something was forged).
    fn on_checked(
        &mut self,
        peer: PeerId,
        origin: Origin,
        result: Result<Vec<Checked>, StoreError>,
        span: Option<SpanDone>,
    ) {
        let checked = match result {
            Ok(checked) => checked,
            Err(e) => {
                tracing::warn!("checking records: {e}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                if let (Some(s), Some(catchup)) = (span, self.catchup.as_mut()) {
                    catchup.release(s.span, s.request);
                }
                return;
            }
        };
        let mut forged = false;
        let mut new = 0usize;
        for c in checked {
            match c {
                Checked::New { record, .. } => {
                    self.writes_waiting.push((record, origin));
                    new = new.saturating_add(1);
                }
                Checked::Known(_) => {}
                Checked::Invalid(Invalid::BadSignature | Invalid::BadAuthor) => {
                    self.stats.invalid_records = self.stats.invalid_records.saturating_add(1);
                    forged = true;
                }
                Checked::Invalid(_) => {
                    self.stats.invalid_records = self.stats.invalid_records.saturating_add(1)
                }
            }
        }
        if forged {
            self.report(peer, Misbehaviour::InvalidRecord);
        }
        let Some(span) = span else {
            return;
        };
        if forged {
            // Asked again, of another peer; what was valid is kept.
            if let Some(catchup) = self.catchup.as_mut() {
                catchup.release(span.span, span.request);
            }
        } else if new == 0 {
            if let Some(catchup) = self.catchup.as_mut() {
                catchup.commit(span.span, span.request, span.next);
                self.stats.batches = self.stats.batches.saturating_add(1);
            }
        } else {
            self.spans_waiting.push((self.writes_waiting.len(), span));
        }
    }

    /// Sends the records waiting to a write, unless one runs.
    fn flush_writes(&mut self) {
        if self.writing || self.writes_waiting.is_empty() {
            return;
        }
        let n = self.writes_waiting.len().min(MAX_WRITE_RECORDS);
        let mut records = Vec::with_capacity(n);
        let mut origins = Vec::with_capacity(n);
        for (record, origin) in self.writes_waiting.drain(..n) {
            records.push(record);
            origins.push(origin);
        }
        self.note_expiry(records.iter().map(|r| r.record().expires()));
        let mut spans = Vec::new();
        self.spans_waiting.retain_mut(|(position, span)| {
            if *position <= n {
                spans.push(*span);
                false
            } else {
                *position = position.saturating_sub(n);
                true
            }
        });
        self.writing = true;
        self.store_op(Op::Write(records), Pending::Write { origins, spans });
    }

    /// Applies a write's outcomes; false when the write failed.
    fn on_written(
        &mut self,
        origins: &[Origin],
        result: Result<Vec<Outcome>, StoreError>,
        now: Instant,
    ) -> bool {
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!("writing records: {e}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                // What others sent comes back by reconciliation; the local
                // user is told.
                for origin in origins {
                    if let Origin::Local(put) = origin {
                        self.inserts.remove(put);
                        let result = Err(StoreError::Backend {
                            op: "write",
                            message: e.to_string(),
                        });
                        self.out
                            .push_back(Output::Event(Event::Put { put: *put, result }));
                    }
                }
                return false;
            }
        };
        for (outcome, origin) in outcomes.iter().zip(origins) {
            self.apply(outcome);
            if matches!(outcome, Outcome::Invalid(_)) && !matches!(origin, Origin::Local(_)) {
                continue;
            }
            match origin {
                Origin::Gossip(peer, id) => {
                    if outcome.is_stored() {
                        self.stats.gossip_records = self.stats.gossip_records.saturating_add(1);
                    }
                    self.receipts.accepted(*id, *peer, now);
                }
                Origin::Fetch if outcome.is_stored() => {
                    self.stats.fetched_records = self.stats.fetched_records.saturating_add(1)
                }
                Origin::Catchup if outcome.is_stored() => {
                    self.stats.catchup_records = self.stats.catchup_records.saturating_add(1)
                }
                Origin::Fetch | Origin::Catchup => {}
                Origin::Local(put) => self.local_done(*put, outcome.clone(), now),
            }
        }
        true
    }

    /// A record of the local user stored (or not): published, tracked,
    /// and told.
    fn stored_locally(
        &mut self,
        record: Record,
        outcome: Outcome,
        track: Track,
        now: Instant,
    ) -> Put {
        let id = outcome.is_stored().then(|| {
            let payload = gossip_payload(&record);
            let id = MessageId::of(&payload);
            self.out.push_back(Output::Propagate(payload));
            if let Some((want, expected)) = track {
                self.receipts
                    .track(id, record.digest(), want, expected, now);
            }
            id
        });
        Put {
            record,
            outcome,
            id,
        }
    }

    fn on_insert_checked(
        &mut self,
        put: PutId,
        result: Result<Vec<Checked>, StoreError>,
        now: Instant,
    ) {
        let checked = match result {
            Ok(mut checked) if checked.len() == 1 => checked.pop(),
            Ok(_) => None,
            Err(e) => {
                self.inserts.remove(&put);
                self.out.push_back(Output::Event(Event::Put {
                    put,
                    result: Err(e),
                }));
                return;
            }
        };
        // Nothing to write: what writing it would have given.
        let outcome = match checked {
            Some(Checked::New { record, .. }) => {
                self.writes_waiting.push((record, Origin::Local(put)));
                return;
            }
            Some(Checked::Known(Presence::Stored)) => Outcome::Duplicate,
            Some(Checked::Known(Presence::Superseded)) => Outcome::Stale,
            Some(Checked::Known(_)) => Outcome::LostTie,
            Some(Checked::Invalid(why)) => Outcome::Invalid(why),
            None => Outcome::Invalid(Invalid::BadSignature),
        };
        self.local_done(put, outcome, now);
    }

    /// A record of [`insert`](Self::insert) is written or refused.
    fn local_done(&mut self, put: PutId, outcome: Outcome, now: Instant) {
        let Some((record, track)) = self.inserts.remove(&put) else {
            return;
        };
        let put_result = self.stored_locally(record, outcome, track, now);
        self.out.push_back(Output::Event(Event::Put {
            put,
            result: Ok(put_result),
        }));
    }

    /// What the store lacks of the digests `peer` has: fetched from it.
    fn on_missing(
        &mut self,
        peer: PeerId,
        digests: Vec<Digest>,
        result: Result<Vec<Presence>, StoreError>,
        now: Instant,
    ) {
        let presence = match result {
            Ok(presence) => presence,
            Err(e) => {
                tracing::warn!("reading what the store has: {e}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                return;
            }
        };
        if !self.peers.get(&peer).is_some_and(|p| p.ready) {
            return;
        }
        let missing = digests
            .into_iter()
            .zip(presence)
            .filter(|(_, p)| *p == Presence::Missing)
            .map(|(d, _)| d);
        self.fetch.queue(peer, missing);
        self.pump_fetch(peer, now);
    }

    /// Remembers requests that timed out, so that their late answers are
    /// told from answers to nothing.
    fn note_late(&mut self, expired: &[(PeerId, u64)]) {
        for entry in expired {
            if self.late.len() >= LATE_ANSWERS {
                self.late.pop_front();
            }
            self.late.push_back(*entry);
        }
    }

    /// Asks what the store knows of digests `peer` has, to fetch what it
    /// lacks.
    fn look_up(&mut self, peer: PeerId, digests: Vec<Digest>) {
        self.store_op(
            Op::Presence(digests.clone()),
            Pending::Missing { peer, digests },
        );
    }

    // ----- challenges -----

    /// A fresh nonce: the time (Unix seconds, big-endian) in its first
    /// eight bytes, then bytes unpredictable without the node key and
    /// reproducible in a simulation from its seed.
    fn nonce(&mut self, now: Instant) -> [u8; NONCE_LEN] {
        let mut h = blake2::Blake2b512::new();
        h.update(b"strata-nonce-v1");
        h.update(self.config.signing_key.to_bytes());
        h.update(self.rng.next_u64().to_be_bytes());
        h.update(self.receipts.challenges_posed.to_be_bytes());
        let mut nonce: [u8; NONCE_LEN] = h.finalize().into();
        nonce[..8].copy_from_slice(&self.unix(now).to_be_bytes());
        nonce
    }

    /// A challenge of another node, gossiped to us: checked, then the
    /// record it names read to answer it. Over the budget of answers it is
    /// dropped; a forged one is rejected.
    fn on_challenge(&mut self, peer: PeerId, id: MessageId, payload: &[u8], now: Instant) {
        let challenge = match Challenge::decode(payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("challenge from peer {}: {e}", peer.0);
                self.out.push_back(Output::Verdict(id, Verdict::Reject));
                return;
            }
        };
        let unix = self.unix(now);
        let issued = u64::from_be_bytes(challenge.nonce[..8].try_into().unwrap_or([0; 8]));
        if unix.abs_diff(issued) > CHALLENGE_TTL_SECS {
            // Stale, or from a clock far off: not answered, no blame.
            self.out.push_back(Output::Verdict(id, Verdict::Drop));
            return;
        }
        if !self.receipts.may_check(peer, now) {
            self.out.push_back(Output::Verdict(id, Verdict::Drop));
            return;
        }
        if !verify_challenge(&challenge) {
            self.out.push_back(Output::Verdict(id, Verdict::Reject));
            return;
        }
        if !self.receipts.first_time(&challenge.signature)
            || !self.receipts.may_read(&challenge.challenger, now)
        {
            self.out.push_back(Output::Verdict(id, Verdict::Drop));
            return;
        }
        self.receipts.remember(id, peer, now);
        let digest = Digest(challenge.digest);
        self.store_op(
            Op::Records {
                digests: vec![digest],
                max_records: 1,
                max_bytes: usize::MAX,
            },
            Pending::Answer {
                peer,
                id,
                challenge,
            },
        );
    }

    /// The record a challenge names, if we hold it: a proof to the peer
    /// the challenge came from, and the challenge passed on. A challenge
    /// about a record we do not hold, or of another author than its
    /// challenger, goes no further.
    fn on_answer(
        &mut self,
        peer: PeerId,
        id: MessageId,
        challenge: &Challenge,
        record: Option<&Record>,
        now: Instant,
    ) {
        let verdict = match record {
            Some(r) if *r.author() != challenge.challenger => Verdict::Drop,
            Some(_) if !self.receipts.may_prove(now) => Verdict::Drop,
            Some(r) => {
                let proof = self.receipts.prove(challenge, id, r);
                if self.peers.contains_key(&peer) {
                    self.outbox.push(peer, Message::Proof(proof), Class::Relay);
                }
                Verdict::Propagate
            }
            // Made up, or one we lack: not ours to spread.
            None => Verdict::Drop,
        };
        self.out.push_back(Output::Verdict(id, verdict));
    }

    // ----- serving -----

    /// A fresh record came to relay: serving and catch-up keep their busy
    /// share until relay has been idle for [`RELAY_LINGER`].
    fn relay_work(&mut self, now: Instant) {
        if self.relay_until.is_none() {
            self.serving.set_share(self.config.relay_busy_share, now);
        }
        self.relay_until = Some(later(now, RELAY_LINGER));
    }

    /// The share in force, in percent, of what serving and catch-up may
    /// take (and of the records one read serves).
    fn share(&self) -> u8 {
        if self.relay_until.is_some() {
            self.config.relay_busy_share
        } else {
            100
        }
    }

    fn serve(&mut self, peer: PeerId, request: u64, op: Op, range: bool, now: Instant) {
        let queued = self.serving.push(peer, Request { request, op, range }, now);
        if let Err(what) = queued {
            self.stats.serve_refused = self.stats.serve_refused.saturating_add(1);
            self.report(peer, what);
            return;
        }
        self.pump_serving(now);
    }

    /// Starts the reads that may start.
    fn pump_serving(&mut self, now: Instant) {
        let share = self.share();
        while let Some((peer, r)) = self.serving.next(now) {
            self.store_op(
                shrink(r.op, share),
                Pending::Serve {
                    peer,
                    request: r.request,
                    range: r.range,
                },
            );
        }
    }

    fn on_served(&mut self, peer: PeerId, request: u64, range: bool, done: Done) {
        self.serving.done(peer);
        if !self.peers.contains_key(&peer) {
            return;
        }
        let message = match (range, done) {
            (false, Done::Records(Ok((records, truncated)))) => Message::Records {
                request,
                truncated,
                records,
            },
            (true, Done::Range(Ok((records, next)))) => Message::Range {
                request,
                next,
                records,
            },
            (_, done) => {
                tracing::warn!("reading records to serve failed: {done:?}");
                self.stats.store_errors = self.stats.store_errors.saturating_add(1);
                return;
            }
        };
        self.outbox.push(peer, message, Class::Bulk);
    }

    // ----- peers -----

    /// Decides what a ready peer with a known summary calls for: nothing,
    /// a reconciliation, or a catch-up.
    fn consider(&mut self, peer: PeerId, now: Instant) {
        if !self.set.loaded {
            return;
        }
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
        let gap = if self.parked.is_some() {
            // Unfinished: any peer with more records resumes it.
            0
        } else {
            self.config.catchup_gap
        };
        if summary.records > self.set.records.saturating_add(gap) {
            if !p.spent {
                self.start_catchup(now);
            }
            return;
        }
        let ours = self.summary();
        let same = summary.records == ours.records
            && summary.epoch == ours.epoch
            && summary.fingerprint == ours.fingerprint;
        // Both ends see the difference at once; only the one with the
        // lower key starts a reconciliation for it, or both would run one
        // and fetch the same records twice. (The other end still picks
        // this peer in its periodic reconciliations.)
        if !same && ours.key <= summary.key {
            self.recon.soon(Some(peer), now);
        }
    }

    fn report(&mut self, peer: PeerId, what: Misbehaviour) {
        self.stats.reports = self.stats.reports.saturating_add(1);
        self.out.push_back(Output::Report { peer, what });
    }

    // ----- reconciliation -----

    fn start_reconcile(&mut self, now: Instant) {
        let mut eligible: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.ready && p.summary.is_some())
            .map(|(id, _)| *id)
            .collect();
        eligible.sort();
        let Some(peer) = self.recon.pick(&eligible, &mut self.rng) else {
            return;
        };
        let Some(theirs) = self.peers.get(&peer).and_then(|p| p.summary.as_ref()) else {
            return;
        };
        if self.set.records > theirs.records.saturating_add(self.config.catchup_gap) {
            // Far behind: it catches up from us by itself.
            return;
        }
        let gap = theirs.records.abs_diff(self.set.records);
        self.recon.start(
            peer,
            &self.set.sketch,
            self.set.epoch,
            gap,
            self.config.recon_timeout,
            &mut self.rng,
            now,
            &mut self.outbox,
        );
    }

    fn on_recon_result(&mut self, result: Symbols, now: Instant) {
        match result {
            Symbols::Continue => {}
            Symbols::Decoded {
                peer,
                remote_only,
                offered,
                symbols,
            } => {
                self.stats.reconciliations = self.stats.reconciliations.saturating_add(1);
                let fetched = remote_only.len();
                if !remote_only.is_empty() {
                    self.look_up(peer, remote_only);
                }
                self.out.push_back(Output::Event(Event::Reconciled {
                    peer,
                    fetched,
                    offered,
                    symbols,
                }));
            }
            Symbols::Refused => {
                self.stats.failed_reconciliations =
                    self.stats.failed_reconciliations.saturating_add(1)
            }
            Symbols::Bad(peer) => {
                self.stats.failed_reconciliations =
                    self.stats.failed_reconciliations.saturating_add(1);
                self.report(peer, Misbehaviour::BadSymbols);
            }
            Symbols::TooLarge => {
                tracing::debug!("difference too large to reconcile; catching up");
                self.stats.failed_reconciliations =
                    self.stats.failed_reconciliations.saturating_add(1);
                self.start_catchup(now);
            }
        }
    }

    // ----- fetching -----

    fn pump_fetch(&mut self, peer: PeerId, now: Instant) {
        self.fetch.pump(
            peer,
            &mut self.next_request,
            self.config.batch_timeout,
            now,
            &mut self.outbox,
        );
    }

    // ----- catch-up -----

    fn start_catchup(&mut self, now: Instant) {
        if self.catchup.is_some() {
            return;
        }
        let catchup = match self.parked.take() {
            Some(parked) => {
                tracing::info!("resuming the catch-up: {} spans left", parked.remaining());
                parked
            }
            None => {
                tracing::info!("catching up");
                Catchup::fresh()
            }
        };
        self.catchup = Some(catchup);
        self.out.push_back(Output::Event(Event::CatchupStarted));
        self.schedule_catchup(now);
    }

    /// No source is left and nothing is in flight: the catch-up stops, its
    /// progress kept, until a peer with more records appears.
    fn stop_catchup(&mut self) {
        let Some(catchup) = self.catchup.take() else {
            return;
        };
        let spans_left = catchup.remaining();
        tracing::info!(
            "catch-up stopped: no peer left to serve it ({spans_left} spans left); it resumes \
             when a peer with more records connects"
        );
        self.stats.catchup_stopped = self.stats.catchup_stopped.saturating_add(1);
        self.parked = Some(catchup);
        self.out
            .push_back(Output::Event(Event::CatchupStopped { spans_left }));
    }

    fn schedule_catchup(&mut self, now: Instant) {
        let limits = self.config.limits(self.share());
        let Some(catchup) = self.catchup.as_mut() else {
            return;
        };
        for peer in catchup.dropped_sources() {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.spent = true;
            }
        }
        let mut sources: Vec<(PeerId, u64)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.ready && !p.spent)
            .filter_map(|(id, p)| p.summary.as_ref().map(|s| (*id, s.records)))
            .collect();
        sources.sort();
        let any = catchup.schedule(
            &sources,
            &limits,
            &mut self.next_request,
            now,
            &mut self.outbox,
        );
        if !any && catchup.in_flight() == 0 {
            self.stop_catchup();
        }
    }

    fn on_range(
        &mut self,
        peer: PeerId,
        request: u64,
        next: Option<KeyHashBytes>,
        records: Vec<Record>,
        now: Instant,
    ) {
        let Some(catchup) = self.catchup.as_mut() else {
            return;
        };
        match catchup.on_range(peer, request, next, records) {
            Ok(Some(Batch {
                span,
                request,
                next,
                records,
            })) => {
                let done = SpanDone {
                    span,
                    request,
                    next,
                };
                if records.is_empty() {
                    catchup.commit(span, request, next);
                    self.stats.batches = self.stats.batches.saturating_add(1);
                    self.after_commit(now);
                } else {
                    self.spans_unchecked.push_back((peer, done, records));
                    self.check_spans();
                }
            }
            Ok(None) => {}
            Err(what) => {
                self.report(peer, what);
                self.schedule_catchup(now);
            }
        }
    }

    /// After spans moved on: save the progress, or finish the catch-up.
    fn after_commit(&mut self, now: Instant) {
        let Some(catchup) = self.catchup.as_ref() else {
            return;
        };
        if catchup.is_done() {
            self.catchup = None;
            self.out.push_back(Output::SaveProgress(None));
            self.out.push_back(Output::Event(Event::CatchupDone));
            tracing::info!("caught up: {} records", self.set.records);
            // What the sources lacked, or what changed meanwhile.
            self.recon.soon(None, now);
        } else {
            self.out
                .push_back(Output::SaveProgress(Some(catchup.encode())));
            self.schedule_catchup(now);
        }
    }

    // ----- outputs -----

    /// Encodes what the parts queued, and refreshes the payload when due.
    fn finish(&mut self, now: Instant) {
        for (peer, message, class) in std::mem::take(&mut self.outbox.0) {
            let body = message.encode();
            let len = body.len() as u64;
            if class == Class::Bulk {
                // What we serve: batches, records, coded symbols.
                self.serving.charge(peer, body.len(), now);
            }
            match message.command() {
                command::RECON_REQUEST..=command::RECON_DONE => {
                    self.stats.recon_bytes_sent = self.stats.recon_bytes_sent.saturating_add(len)
                }
                command::RECEIPTS => {
                    self.receipts.bytes_sent = self.receipts.bytes_sent.saturating_add(len)
                }
                _ => {
                    self.stats.record_bytes_sent = self.stats.record_bytes_sent.saturating_add(len)
                }
            }
            self.out.push_back(Output::Send {
                peer,
                command: message.command(),
                body,
                class,
            });
        }
        // Nothing worth announcing before the store's sketch is in.
        if self.set.loaded && self.payload_dirty && now >= self.next_payload {
            self.payload_dirty = false;
            self.next_payload = later(now, PAYLOAD_INTERVAL);
            self.out.push_back(Output::SetPayload(self.summary()));
        }
    }
}

/// Node keys as a sorted set, for comparing statuses.
pub fn key_set(keys: &[NodeKey]) -> BTreeSet<NodeKey> {
    keys.iter().copied().collect()
}

#[cfg(test)]
mod tests;
