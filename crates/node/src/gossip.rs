//! Gossip: every node delivers each message to its layer above once and
//! passes it on to its peers.
//!
//! - A message's id is the Blake2b-256 of its payload. A bounded seen-set
//!   with a time to live keeps duplicates from being delivered twice.
//! - Messages up to [`Config::push_threshold`] bytes are pushed whole.
//!   Larger ones are announced by short id (8 bytes, a Blake2b of the id
//!   keyed with a salt made from both peer ids, so each connection has its
//!   own short ids and nobody can make two messages collide everywhere) in
//!   batches; a peer that lacks one asks for it, and the announcer sends it.
//! - One request at a time per message: while requests are in flight, short
//!   ids announced by other peers wait up to [`Config::defer`] (a short id
//!   from one peer cannot be matched with another peer's, so waiting for the
//!   message in flight is how duplicates are avoided). A request unanswered
//!   by [`Config::request_timeout`] lets the waiting announcers be asked.
//! - A new message waits for the layer above's [`Verdict`] before it is
//!   passed on: the node reports it as an event, and the verdict comes back
//!   through [`Node::handle_verdict`](crate::Node::handle_verdict).
//!   Meanwhile it sits in a pending set bounded by [`Config::max_pending`]
//!   messages and [`Config::max_pending_bytes`] bytes, for at most
//!   [`Config::verdict_timeout`]; past those, the oldest are dropped and
//!   counted.
//! - A message is never sent back to the peer it came from, nor to a peer
//!   that announced it.
//! - A message may name messages it depends on (at most
//!   [`MAX_DEPS`]; they are covered by its id). It is
//!   delivered to the layer above only after all of them: until then it
//!   waits in a pool bounded by [`Config::max_waiting`] messages and
//!   [`Config::max_waiting_bytes`] bytes, for at most
//!   [`Config::dep_timeout`], the oldest dropped first, and the dependencies
//!   nobody sent are fetched by id from the peer that sent it. A peer asked
//!   for a dependency that does not send it within
//!   [`Config::request_timeout`] is scored. The layer above can also send a
//!   message it was given back to wait for ids of its own
//!   ([`Node::handle_wait`](crate::Node::handle_wait)), once.
//! - Every per-peer structure is bounded; what overflows is dropped and
//!   counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use blake2::digest::{FixedOutput, KeyInit, Update, consts::U8};
use blake2::{Blake2b, Digest, digest::consts::U32};
use bytes::Bytes;

use std::net::IpAddr;

use crate::peer::PeerId;
use crate::time::later;
use crate::wire::{MAX_DEPS, MAX_IDS_PER_MESSAGE, MESSAGE_ID_LEN, SHORT_ID_LEN};

/// A message id: the Blake2b-256 of the payload.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of `payload`.
    pub fn of(payload: &[u8]) -> MessageId {
        let digest = Blake2b::<U32>::digest(payload);
        let mut id = [0u8; 32];
        id.copy_from_slice(&digest);
        MessageId(id)
    }

    /// The id of a message that depends on `deps`: with none, the id of its
    /// payload; else the Blake2b-256 of a tag, the number of dependencies
    /// (u32 BE), their ids and the payload, so that no relay can add or
    /// strip a dependency.
    pub fn of_message(payload: &[u8], deps: &[MessageId]) -> MessageId {
        if deps.is_empty() {
            return MessageId::of(payload);
        }
        let mut h = Blake2b::<U32>::new();
        Digest::update(&mut h, b"strata-gossip-deps-v1");
        let count = u32::try_from(deps.len()).unwrap_or(u32::MAX);
        Digest::update(&mut h, count.to_be_bytes());
        for dep in deps {
            Digest::update(&mut h, dep.0);
        }
        Digest::update(&mut h, payload);
        MessageId(h.finalize().into())
    }

    /// Ids concatenated on the wire, or `None` when the bytes are not a
    /// whole number of ids or more than [`MAX_DEPS`].
    pub fn list_from(bytes: &[u8]) -> Option<Vec<MessageId>> {
        if !bytes.len().is_multiple_of(MESSAGE_ID_LEN) || bytes.len() / MESSAGE_ID_LEN > MAX_DEPS {
            return None;
        }
        Some(
            bytes
                .chunks_exact(MESSAGE_ID_LEN)
                .map(|c| {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(c);
                    MessageId(id)
                })
                .collect(),
        )
    }

    /// Ids concatenated, as the wire carries them.
    pub fn list_bytes(ids: &[MessageId]) -> Bytes {
        let mut out = Vec::with_capacity(ids.len().saturating_mul(MESSAGE_ID_LEN));
        for id in ids {
            out.extend_from_slice(&id.0);
        }
        Bytes::from(out)
    }
}

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Gossip settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Messages up to this size are pushed; larger ones are announced.
    /// `0` announces everything; `usize::MAX` pushes everything.
    pub push_threshold: usize,
    /// Least time between two batches of announcements to one peer: the
    /// first announcement after a quiet spell goes at once, the ones that
    /// follow it gather until this long after it.
    pub announce_delay: Duration,
    /// How long a request may go unanswered before another announcer is
    /// asked.
    pub request_timeout: Duration,
    /// How long a short id announced while requests are in flight waits for
    /// them before it is requested too.
    pub defer: Duration,
    /// How long a message id is remembered.
    pub seen_ttl: Duration,
    /// Most message ids remembered.
    pub max_seen: usize,
    /// Largest message accepted.
    pub max_message: usize,
    /// Bytes of announced messages kept to answer requests.
    pub cache_bytes: usize,
    /// How long a new message waits for the layer above's verdict before
    /// it is dropped.
    pub verdict_timeout: Duration,
    /// Most messages waiting for a verdict.
    pub max_pending: usize,
    /// Most payload bytes waiting for a verdict.
    pub max_pending_bytes: usize,
    /// How long a message waits for the messages it depends on before it
    /// is dropped.
    pub dep_timeout: Duration,
    /// Most messages waiting for the messages they depend on.
    pub max_waiting: usize,
    /// Most payload bytes of messages waiting for their dependencies.
    pub max_waiting_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            push_threshold: 1024,
            announce_delay: Duration::from_millis(5),
            request_timeout: Duration::from_secs(2),
            defer: Duration::from_millis(250),
            seen_ttl: Duration::from_secs(120),
            max_seen: 100_000,
            max_message: 1024 * 1024,
            cache_bytes: 64 * 1024 * 1024,
            verdict_timeout: Duration::from_secs(10),
            max_pending: 4096,
            max_pending_bytes: 16 * 1024 * 1024,
            dep_timeout: Duration::from_secs(10),
            max_waiting: 1024,
            max_waiting_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Most ids waiting to be announced to one peer.
pub const MAX_ANNOUNCE_QUEUE: usize = 10_000;
/// Most short ids remembered per peer: what we announced to it and what it
/// announced to us.
pub const MAX_SHORT_IDS_PER_PEER: usize = 20_000;
/// Most short ids waiting on requests in flight, over all peers.
pub const MAX_DEFERRED: usize = 50_000;
/// Most times one message is sent to a peer that asks for it: once, and
/// once more for a request that crossed the answer or timed out. Requests
/// past it (the same id asked for over and over, or many times in one
/// request) are ignored and counted ([`Stats::repeat_requests`]).
pub const MAX_ANSWERS_PER_ID: u8 = 2;
/// One peer may have at most this share (1 / `WAITING_SHARES`) of
/// [`Config::max_waiting`] waiting for dependencies.
pub const WAITING_SHARES: usize = 4;
/// Most dependencies asked for and not yet arrived, over all peers.
pub const MAX_DEPS_ASKED: usize = 65_536;
/// Most whole ids remembered per peer as fetched by it, to bound how often
/// one message is sent to it on request.
pub const MAX_FETCHED_PER_PEER: usize = 4096;

/// What the layer above says of a new message.
///
/// A message given [`Provisional`](Verdict::Provisional) passed a cheap
/// check and is passed on at once; the layer's final verdict follows by
/// the same call when its full check is done: `Propagate` confirms it,
/// `Drop` retracts it without blame and `Reject` retracts it and scores its
/// sender. A retracted message is no longer announced or served. While
/// `max_pending` messages wait for their final verdict, a new provisional
/// one is not passed on: it waits for its final verdict like any other. One
/// whose final verdict does not come within six verdict timeouts is
/// retracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: pass it on.
    Propagate,
    /// Keep it to ourselves, without blame.
    Drop,
    /// Invalid: drop it and score the sender.
    Reject,
    /// Passed a quick check: pass it on now; the final verdict follows.
    Provisional,
}

/// What gossip asks the node to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send a whole message, with the ids it depends on.
    Message(PeerId, Bytes, Vec<MessageId>),
    /// Ask for whole messages by id (dependencies).
    Fetch(PeerId, Bytes),
    /// Send an announcement batch of short ids.
    Announce(PeerId, Bytes),
    /// Send a request batch of short ids.
    Request(PeerId, Bytes),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// New messages delivered to the layer above.
    pub delivered: u64,
    /// Messages received that were already known.
    pub duplicates: u64,
    /// Payload bytes received, duplicates included.
    pub payload_bytes_in: u64,
    /// Payload bytes sent.
    pub payload_bytes_out: u64,
    /// Short ids announced.
    pub announced: u64,
    /// Short ids requested.
    pub requested: u64,
    /// Items dropped because a bounded queue was full.
    pub overflow: u64,
    /// Messages dropped while waiting for a verdict: too many or too large
    /// waiting, or no verdict in time.
    pub verdicts_missed: u64,
    /// Messages the layer above rejected.
    pub rejected: u64,
    /// Requested short ids not answered: already sent to that peer
    /// [`MAX_ANSWERS_PER_ID`] times.
    pub repeat_requests: u64,
    /// Messages passed on on a provisional verdict.
    pub provisional: u64,
    /// Provisional messages retracted by their final verdict.
    pub retracted: u64,
    /// Provisional verdicts not taken because `max_pending` messages
    /// waited for their final verdict: those messages waited for it.
    pub provisional_refused: u64,
    /// Provisional messages retracted because no final verdict came within
    /// six verdict timeouts.
    pub provisional_expired: u64,
    /// Messages that waited for messages they depend on.
    pub waited: u64,
    /// Messages delivered once what they depended on was.
    pub released: u64,
    /// Messages dropped while waiting for their dependencies: past
    /// `dep_timeout`, too many or too large waiting, or sent back to wait a
    /// second time.
    pub waits_dropped: u64,
    /// Dependencies fetched by id.
    pub deps_fetched: u64,
    /// Dependencies a peer was asked for and did not send in time.
    pub deps_unserved: u64,
    /// Messages sent to peers that fetched them.
    pub deps_served: u64,
    /// Messages not passed on, though the layer above said to, because a
    /// message they depend on could not be served from here.
    pub unservable: u64,
    /// Messages that would have waited for their dependencies, refused
    /// because their sender had its share of the pool waiting.
    pub waits_refused: u64,
}

struct Peer {
    key: [u8; 16],
    to_announce: Vec<MessageId>,
    flush_at: Option<Instant>,
    /// When the last batch of announcements went to it.
    flushed_at: Option<Instant>,
    /// Short ids we announced to it, to answer its requests, and how many
    /// times each was sent on request.
    announced: Fifo<u64, (MessageId, u8)>,
    /// Short ids it announced to us: it has those messages.
    heard: Fifo<u64, ()>,
    /// Our seen messages under its salt.
    index: HashMap<u64, MessageId>,
    /// Ids it may fetch (what messages we sent it depend on), and how many
    /// times each was sent on a fetch.
    fetched: Fifo<MessageId, u8>,
}

impl Peer {
    fn short(&self, id: &MessageId) -> u64 {
        short_id(&self.key, id)
    }
}

/// A map that forgets its oldest entries past a size.
struct Fifo<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Copy, V> Fifo<K, V> {
    fn new(max: usize) -> Self {
        Fifo {
            map: HashMap::new(),
            order: VecDeque::new(),
            max,
        }
    }

    fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.max {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }
}

/// The short id of `id` under a connection's salt.
pub fn short_id(key: &[u8; 16], id: &MessageId) -> u64 {
    let mut mac = <blake2::Blake2bMac<U8> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <blake2::Blake2bMac<U8> as KeyInit>::new(&Default::default()));
    mac.update(&id.0);
    let out = mac.finalize_fixed();
    let mut b = [0u8; 8];
    b.copy_from_slice(&out);
    u64::from_le_bytes(b)
}

/// The salt of a connection between peer ids `a` and `b`, the same on both
/// sides.
pub fn salt(a: u64, b: u64) -> [u8; 16] {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&lo.to_le_bytes());
    key[8..].copy_from_slice(&hi.to_le_bytes());
    key
}

/// A new message waiting for its verdict.
struct Pending {
    from: PeerId,
    ip: IpAddr,
    payload: Bytes,
    deps: Vec<MessageId>,
    /// It waited once already (for dependencies the layer above named).
    waited: bool,
    deadline: Instant,
}

/// A message waiting for messages it depends on.
struct Waiting {
    from: PeerId,
    ip: IpAddr,
    payload: Bytes,
    deps: Vec<MessageId>,
    /// What it waits for: its dependencies, or the ids the layer above
    /// named, that were not delivered when it began to wait.
    awaiting: Vec<MessageId>,
    /// How many of those are yet to be delivered.
    missing: usize,
    waited: bool,
    deadline: Instant,
}

/// A message passed on before its full check, until its final verdict.
struct Provisional {
    from: PeerId,
    ip: IpAddr,
    /// Past it, with no final verdict, the message is retracted.
    deadline: Instant,
}

/// How long a provisional message waits for its final verdict, at most:
/// six verdict timeouts. A layer that lost track of it (a check that never
/// came back) gets it retracted rather than standing unchecked.
fn provisional_limit(verdict_timeout: Duration) -> Duration {
    verdict_timeout.saturating_mul(6)
}

/// A message sent to a peer depends on `deps`: the peer may fetch them.
fn offer(state: &mut Peer, deps: &[MessageId]) {
    for dep in deps {
        if !state.fetched.contains(dep) {
            state.fetched.insert(*dep, 0);
        }
    }
}

/// What a cached message counts against `cache_bytes`: its payload, its
/// dependency ids, and the entry's own keeping.
fn cache_cost(payload: &Bytes, deps: &[MessageId]) -> usize {
    const ENTRY: usize = 96;
    payload
        .len()
        .saturating_add(deps.len().saturating_mul(MESSAGE_ID_LEN))
        .saturating_add(ENTRY)
}

/// Keeps the front of `order` an id still in `live`, and `order` no longer
/// than twice `live` (ids settled out of turn stay behind until then).
fn trim_order<V>(order: &mut VecDeque<MessageId>, live: &HashMap<MessageId, V>) {
    while order.front().is_some_and(|id| !live.contains_key(id)) {
        order.pop_front();
    }
    if order.len() > live.len().max(16).saturating_mul(2) {
        order.retain(|id| live.contains_key(id));
    }
}

/// The gossip state of one node.
pub(crate) struct Gossip {
    config: Config,
    peers: HashMap<PeerId, Peer>,
    seen: HashMap<MessageId, Instant>,
    seen_order: VecDeque<(Instant, MessageId)>,
    /// Messages passed on, to answer requests and fetches, with their
    /// dependencies.
    cache: HashMap<MessageId, (Bytes, Vec<MessageId>)>,
    cache_order: VecDeque<MessageId>,
    cache_size: usize,
    in_flight: HashMap<(PeerId, u64), Instant>,
    deferred: VecDeque<(PeerId, u64, Instant)>,
    pending: HashMap<MessageId, Pending>,
    /// Pending ids, oldest first (with entries already settled).
    pending_order: VecDeque<MessageId>,
    pending_bytes: usize,
    /// Messages passed on provisionally, at most `max_pending`.
    provisional: HashMap<MessageId, Provisional>,
    /// Their ids, oldest first (with entries already settled).
    provisional_order: VecDeque<MessageId>,
    /// Messages waiting for messages they depend on.
    waiting: HashMap<MessageId, Waiting>,
    /// Their ids, oldest first (with entries already settled).
    waiting_order: VecDeque<MessageId>,
    waiting_bytes: usize,
    /// Messages waiting, per sender: each has at most a share of the pool.
    waiting_per_peer: HashMap<PeerId, usize>,
    /// A dependency not yet delivered → the waiting messages that need it
    /// (once per time they name it).
    wanted: HashMap<MessageId, Vec<MessageId>>,
    /// Dependencies asked for: of whom, until when.
    asked: HashMap<MessageId, (PeerId, Instant)>,
    /// Their deadlines, soonest first (with entries already settled).
    asked_order: VecDeque<(Instant, MessageId)>,
    /// Messages that stopped waiting and are to be delivered, in order:
    /// who sent each, its id and payload. The node takes them.
    pub(crate) released: Vec<(PeerId, MessageId, Bytes)>,
    /// Peers asked for dependencies that they did not send, with how many
    /// in this timer round. The node scores them.
    pub(crate) unserved: Vec<(PeerId, u32)>,
    pub(crate) stats: Stats,
}

impl Gossip {
    pub(crate) fn new(config: Config) -> Gossip {
        Gossip {
            config,
            peers: HashMap::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            cache: HashMap::new(),
            cache_order: VecDeque::new(),
            cache_size: 0,
            in_flight: HashMap::new(),
            deferred: VecDeque::new(),
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            provisional: HashMap::new(),
            provisional_order: VecDeque::new(),
            waiting: HashMap::new(),
            waiting_order: VecDeque::new(),
            waiting_bytes: 0,
            waiting_per_peer: HashMap::new(),
            wanted: HashMap::new(),
            asked: HashMap::new(),
            asked_order: VecDeque::new(),
            released: Vec::new(),
            unserved: Vec::new(),
            pending_bytes: 0,
            stats: Stats::default(),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// A peer finished its handshake; `key` is the connection's salt.
    pub(crate) fn add_peer(&mut self, peer: PeerId, key: [u8; 16]) {
        let mut state = Peer {
            key,
            to_announce: Vec::new(),
            flush_at: None,
            flushed_at: None,
            announced: Fifo::new(MAX_SHORT_IDS_PER_PEER),
            heard: Fifo::new(MAX_SHORT_IDS_PER_PEER),
            index: HashMap::with_capacity(self.seen.len()),
            fetched: Fifo::new(MAX_FETCHED_PER_PEER),
        };
        for id in self.seen.keys() {
            state.index.insert(state.short(id), *id);
        }
        self.peers.insert(peer, state);
    }

    pub(crate) fn remove_peer(&mut self, peer: PeerId, now: Instant, out: &mut Vec<Action>) {
        self.peers.remove(&peer);
        // What it sent and still waits for its dependencies goes: it would
        // be handed up from a peer no longer there.
        let orphans: Vec<MessageId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.from == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in orphans {
            self.drop_waiting(&id);
        }
        let before = self.in_flight.len();
        self.in_flight.retain(|(p, _), _| *p != peer);
        self.deferred.retain(|(p, _, _)| *p != peer);
        if self.in_flight.len() < before {
            self.release_deferred(now, true, out);
        }
    }

    pub(crate) fn has_peers(&self) -> bool {
        !self.peers.is_empty()
    }

    pub(crate) fn is_seen(&self, id: &MessageId) -> bool {
        self.seen.contains_key(id)
    }

    /// Whether the message was delivered (or published here): seen, and
    /// not waiting for messages it depends on.
    fn is_delivered(&self, id: &MessageId) -> bool {
        self.seen.contains_key(id) && !self.waiting.contains_key(id)
    }

    fn remember(&mut self, id: MessageId, now: Instant) {
        let expiry = later(now, self.config.seen_ttl);
        self.seen.insert(id, expiry);
        self.seen_order.push_back((expiry, id));
        for peer in self.peers.values_mut() {
            let short = peer.short(&id);
            peer.index.insert(short, id);
        }
        while self.seen.len() > self.config.max_seen {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, id)) = self.seen_order.pop_front() {
            self.seen.remove(&id);
            self.uncache(&id);
            for peer in self.peers.values_mut() {
                let short = peer.short(&id);
                peer.index.remove(&short);
            }
        }
    }

    /// Forgets that `id` was seen (a message dropped before it was
    /// delivered): a later copy is taken, and what depends on it waits.
    fn unsee(&mut self, id: &MessageId) {
        if self.seen.remove(id).is_some() {
            for peer in self.peers.values_mut() {
                let short = peer.short(id);
                peer.index.remove(&short);
            }
        }
    }

    fn cache(&mut self, id: MessageId, payload: &Bytes, deps: &[MessageId]) {
        let cost = cache_cost(payload, deps);
        if cost > self.config.cache_bytes || self.cache.contains_key(&id) {
            return;
        }
        // A copy, so the cache never pins a whole read buffer.
        self.cache
            .insert(id, (Bytes::copy_from_slice(payload), deps.to_vec()));
        self.cache_order.push_back(id);
        self.cache_size = self.cache_size.saturating_add(cost);
        while self.cache_size > self.config.cache_bytes {
            let Some(old) = self.cache_order.pop_front() else {
                break;
            };
            self.uncache(&old);
        }
    }

    /// Removes a message from the cache, if there.
    fn uncache(&mut self, id: &MessageId) {
        if let Some((p, deps)) = self.cache.remove(id) {
            self.cache_size = self.cache_size.saturating_sub(cache_cost(&p, &deps));
        }
    }

    /// Whether every message in `deps` can be served from the cache: a
    /// message is passed on only then, so nobody asks us for a dependency
    /// we cannot send.
    pub(crate) fn can_serve(&self, deps: &[MessageId]) -> bool {
        deps.iter().all(|d| self.cache.contains_key(d))
    }

    /// Publishes a message from the layer above, depending on `deps` (at
    /// most [`MAX_DEPS`], which the node checks). Already known: nothing is
    /// sent again.
    pub(crate) fn publish(
        &mut self,
        payload: Bytes,
        deps: Vec<MessageId>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> MessageId {
        let id = MessageId::of_message(&payload, &deps);
        if self.is_seen(&id) {
            return id;
        }
        self.remember(id, now);
        self.fan_out(id, payload, deps, None, now, out);
        self.release_dependents(id, now);
        id
    }

    fn fan_out(
        &mut self,
        id: MessageId,
        payload: Bytes,
        deps: Vec<MessageId>,
        from: Option<PeerId>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let push = payload.len() <= self.config.push_threshold;
        // Every message passed on can be asked for: announced ones by short
        // id, any by whole id as a dependency.
        self.cache(id, &payload, &deps);
        let mut targets: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(p, state)| Some(**p) != from && !state.heard.contains(&state.short(&id)))
            .map(|(p, _)| *p)
            .collect();
        targets.sort();
        for peer in targets {
            if push {
                self.stats.payload_bytes_out = self
                    .stats
                    .payload_bytes_out
                    .saturating_add(payload.len() as u64);
                if let Some(state) = self.peers.get_mut(&peer) {
                    offer(state, &deps);
                }
                out.push(Action::Message(peer, payload.clone(), deps.clone()));
            } else if let Some(state) = self.peers.get_mut(&peer) {
                if state.to_announce.len() >= MAX_ANNOUNCE_QUEUE {
                    self.stats.overflow = self.stats.overflow.saturating_add(1);
                    continue;
                }
                state.to_announce.push(id);
                if state.to_announce.len() >= MAX_IDS_PER_MESSAGE {
                    Self::flush(state, peer, now, &mut self.stats, out);
                } else if state.flush_at.is_none() {
                    // The first id after a quiet spell goes at once; the
                    // ones that follow gather until a delay after it, so a
                    // peer gets at most one batch a delay and a lone
                    // message waits for none.
                    match state
                        .flushed_at
                        .map(|t| later(t, self.config.announce_delay))
                    {
                        Some(next) if next > now => state.flush_at = Some(next),
                        _ => Self::flush(state, peer, now, &mut self.stats, out),
                    }
                }
            }
        }
    }

    fn flush(
        state: &mut Peer,
        peer: PeerId,
        now: Instant,
        stats: &mut Stats,
        out: &mut Vec<Action>,
    ) {
        state.flush_at = None;
        if state.to_announce.is_empty() {
            return;
        }
        state.flushed_at = Some(now);
        let ids = std::mem::take(&mut state.to_announce);
        let mut body = Vec::with_capacity(ids.len().saturating_mul(SHORT_ID_LEN));
        for id in ids {
            let short = state.short(&id);
            state.announced.insert(short, (id, 0));
            body.extend_from_slice(&short.to_le_bytes());
            stats.announced = stats.announced.saturating_add(1);
        }
        out.push(Action::Announce(peer, Bytes::from(body)));
    }

    /// A whole message arrived from `from` (at `ip`), depending on `deps`.
    /// Returns the id when it is new and everything it depends on was
    /// delivered: it waits for a verdict, and the layer above is to be told
    /// (before the messages it released, which are in `released`). `None`
    /// for a duplicate, or for a message that waits for its dependencies.
    pub(crate) fn on_message(
        &mut self,
        from: PeerId,
        ip: IpAddr,
        payload: &Bytes,
        deps: Vec<MessageId>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Option<MessageId> {
        self.stats.payload_bytes_in = self
            .stats
            .payload_bytes_in
            .saturating_add(payload.len() as u64);
        let id = MessageId::of_message(payload, &deps);
        // Whatever was in flight or waiting for this message is settled.
        // Only the peers asked for something need its short id (a keyed
        // hash each): with nothing in flight, a duplicate costs none.
        let mut settled = false;
        if !self.in_flight.is_empty() {
            let mut asked: Vec<PeerId> = self.in_flight.keys().map(|(p, _)| *p).collect();
            asked.sort_unstable();
            asked.dedup();
            for peer in asked {
                if let Some(state) = self.peers.get(&peer) {
                    let short = state.short(&id);
                    settled |= self.in_flight.remove(&(peer, short)).is_some();
                }
            }
        }
        if self.is_seen(&id) {
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            if settled {
                self.release_deferred(now, false, out);
            }
            return None;
        }
        self.remember(id, now);
        if self.asked.remove(&id).is_some()
            && self.asked_order.len() > self.asked.len().max(16).saturating_mul(2)
        {
            let asked = &self.asked;
            self.asked_order.retain(|(_, d)| asked.contains_key(d));
        }
        if settled || !self.deferred.is_empty() {
            self.release_deferred(now, false, out);
        }
        // A copy, so a waiting message never pins a whole read buffer.
        let payload = Bytes::copy_from_slice(payload);
        let missing: Vec<MessageId> = deps
            .iter()
            .filter(|d| !self.is_delivered(d))
            .copied()
            .collect();
        if !missing.is_empty() {
            self.hold(id, from, ip, payload, deps, missing, false, now, out);
            return None;
        }
        self.stats.delivered = self.stats.delivered.saturating_add(1);
        self.wait_for_verdict(id, from, ip, payload, deps, false, now);
        self.release_dependents(id, now);
        Some(id)
    }

    /// Puts a message to wait for the messages it depends on that were not
    /// delivered (`missing`), and asks its sender for those not seen.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        id: MessageId,
        from: PeerId,
        ip: IpAddr,
        payload: Bytes,
        deps: Vec<MessageId>,
        missing: Vec<MessageId>,
        waited: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let share = self.config.max_waiting.div_ceil(WAITING_SHARES).max(1);
        if self.waiting_per_peer.get(&from).copied().unwrap_or(0) >= share {
            // Its sender has its share waiting: refused, and forgotten, so a
            // copy from another peer is taken.
            self.stats.waits_refused = self.stats.waits_refused.saturating_add(1);
            self.unsee(&id);
            return;
        }
        self.stats.waited = self.stats.waited.saturating_add(1);
        let count = self.waiting_per_peer.entry(from).or_default();
        *count = count.saturating_add(1);
        let mut ask = Vec::new();
        let until = later(now, self.config.request_timeout);
        for dep in &missing {
            self.wanted.entry(*dep).or_default().push(id);
            if self.seen.contains_key(dep) || self.asked.contains_key(dep) {
                continue;
            }
            if self.asked.len() >= MAX_DEPS_ASKED {
                self.stats.overflow = self.stats.overflow.saturating_add(1);
                continue;
            }
            self.asked.insert(*dep, (from, until));
            self.asked_order.push_back((until, *dep));
            ask.push(*dep);
        }
        self.waiting_bytes = self.waiting_bytes.saturating_add(payload.len());
        self.waiting.insert(
            id,
            Waiting {
                from,
                ip,
                payload,
                deps,
                missing: missing.len(),
                awaiting: missing,
                waited,
                deadline: later(now, self.config.dep_timeout),
            },
        );
        self.waiting_order.push_back(id);
        while self.waiting.len() > self.config.max_waiting
            || self.waiting_bytes > self.config.max_waiting_bytes
        {
            let Some(oldest) = self.waiting_order.front().copied() else {
                break;
            };
            self.drop_waiting(&oldest);
        }
        if !ask.is_empty() && self.waiting.contains_key(&id) {
            self.stats.deps_fetched = self.stats.deps_fetched.saturating_add(ask.len() as u64);
            out.push(Action::Fetch(from, MessageId::list_bytes(&ask)));
        }
    }

    fn uncount_waiting(&mut self, from: PeerId) {
        if let Some(n) = self.waiting_per_peer.get_mut(&from) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.waiting_per_peer.remove(&from);
            }
        }
    }

    /// Drops a waiting message, counted.
    fn drop_waiting(&mut self, id: &MessageId) {
        let Some(w) = self.waiting.remove(id) else {
            self.waiting_order.retain(|x| x != id);
            return;
        };
        self.waiting_bytes = self.waiting_bytes.saturating_sub(w.payload.len());
        self.stats.waits_dropped = self.stats.waits_dropped.saturating_add(1);
        self.uncount_waiting(w.from);
        // Never delivered: a later copy is taken, and what depends on it
        // keeps waiting rather than going ahead of it.
        self.unsee(id);
        for dep in &w.awaiting {
            if let Some(waiters) = self.wanted.get_mut(dep) {
                waiters.retain(|x| x != id);
                if waiters.is_empty() {
                    self.wanted.remove(dep);
                }
            }
        }
        trim_order(&mut self.waiting_order, &self.waiting);
    }

    /// `done` was delivered: the messages waiting only for it (and, in
    /// turn, for them) go on to their verdicts, in dependency order.
    fn release_dependents(&mut self, done: MessageId, now: Instant) {
        let mut work = vec![done];
        while let Some(done) = work.pop() {
            let Some(waiters) = self.wanted.remove(&done) else {
                continue;
            };
            for id in waiters {
                let ready = match self.waiting.get_mut(&id) {
                    Some(w) => {
                        w.missing = w.missing.saturating_sub(1);
                        w.missing == 0
                    }
                    None => false,
                };
                if !ready {
                    continue;
                }
                let Some(w) = self.waiting.remove(&id) else {
                    continue;
                };
                self.waiting_bytes = self.waiting_bytes.saturating_sub(w.payload.len());
                self.uncount_waiting(w.from);
                // Out of the order now: it may come back to wait (sent back
                // by the layer above) and must not take this place then.
                self.waiting_order.retain(|x| *x != id);
                self.stats.released = self.stats.released.saturating_add(1);
                self.stats.delivered = self.stats.delivered.saturating_add(1);
                self.released.push((w.from, id, w.payload.clone()));
                self.wait_for_verdict(id, w.from, w.ip, w.payload, w.deps, w.waited, now);
                work.push(id);
            }
        }
    }

    /// The layer above sends a message it was given back to wait for
    /// `deps` (at most [`MAX_DEPS`] are taken): it is delivered again once
    /// they are, at once if they are already. A message sent back a second
    /// time is dropped. False when the message was not waiting for a
    /// verdict.
    pub(crate) fn wait(
        &mut self,
        id: MessageId,
        deps: &[MessageId],
        now: Instant,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(p) = self.pending.remove(&id) else {
            return false;
        };
        self.pending_bytes = self.pending_bytes.saturating_sub(p.payload.len());
        self.trim_pending_order();
        if p.waited || !self.peers.contains_key(&p.from) {
            // Sent back a second time, or its sender left.
            self.stats.waits_dropped = self.stats.waits_dropped.saturating_add(1);
            return true;
        }
        let mut missing: Vec<MessageId> = deps
            .iter()
            .take(MAX_DEPS)
            .filter(|d| **d != id && !self.is_delivered(d))
            .copied()
            .collect();
        missing.dedup();
        if missing.is_empty() {
            self.released.push((p.from, id, p.payload.clone()));
            self.wait_for_verdict(id, p.from, p.ip, p.payload, p.deps, true, now);
            return true;
        }
        // Its dependents wait for it again.
        self.hold(id, p.from, p.ip, p.payload, p.deps, missing, true, now, out);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn wait_for_verdict(
        &mut self,
        id: MessageId,
        from: PeerId,
        ip: IpAddr,
        payload: Bytes,
        deps: Vec<MessageId>,
        waited: bool,
        now: Instant,
    ) {
        self.pending_bytes = self.pending_bytes.saturating_add(payload.len());
        self.pending.insert(
            id,
            Pending {
                from,
                ip,
                payload,
                deps,
                waited,
                deadline: later(now, self.config.verdict_timeout),
            },
        );
        self.pending_order.push_back(id);
        while self.pending.len() > self.config.max_pending
            || self.pending_bytes > self.config.max_pending_bytes
        {
            if !self.drop_oldest_pending() {
                break;
            }
        }
    }

    /// Drops the oldest message still waiting; false when none is.
    fn drop_oldest_pending(&mut self) -> bool {
        while let Some(id) = self.pending_order.pop_front() {
            if let Some(p) = self.pending.remove(&id) {
                self.pending_bytes = self.pending_bytes.saturating_sub(p.payload.len());
                self.stats.verdicts_missed = self.stats.verdicts_missed.saturating_add(1);
                self.trim_pending_order();
                return true;
            }
        }
        false
    }

    fn trim_pending_order(&mut self) {
        trim_order(&mut self.pending_order, &self.pending);
    }

    /// When the oldest message waiting for a verdict times out.
    fn next_verdict_deadline(&self) -> Option<Instant> {
        self.pending_order
            .front()
            .and_then(|id| self.pending.get(id))
            .map(|p| p.deadline)
    }

    /// The layer above's verdict on a message waiting for it. Returns who
    /// sent it (the connection and its address) for a rejection, which the
    /// node scores; `None` when the message was not waiting (it timed out,
    /// or was never reported) or the verdict needs nothing more.
    pub(crate) fn verdict(
        &mut self,
        id: MessageId,
        verdict: Verdict,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Option<(PeerId, IpAddr)> {
        if let Some(p) = self.provisional.remove(&id) {
            // The final verdict on a message passed on provisionally.
            self.trim_provisional_order();
            return match verdict {
                Verdict::Propagate | Verdict::Provisional => None,
                Verdict::Drop => {
                    self.retract(&id);
                    None
                }
                Verdict::Reject => {
                    self.retract(&id);
                    self.stats.rejected = self.stats.rejected.saturating_add(1);
                    Some((p.from, p.ip))
                }
            };
        }
        if verdict == Verdict::Provisional
            && self.pending.contains_key(&id)
            && self.provisional.len() >= self.config.max_pending
        {
            // Too many passed on unchecked: this one waits, in its place,
            // for its final verdict before it goes anywhere.
            self.stats.provisional_refused = self.stats.provisional_refused.saturating_add(1);
            return None;
        }
        let pending = self.pending.remove(&id)?;
        self.pending_bytes = self.pending_bytes.saturating_sub(pending.payload.len());
        self.trim_pending_order();
        let verdict = match verdict {
            Verdict::Propagate | Verdict::Provisional if !self.can_serve(&pending.deps) => {
                // What it depends on cannot be sent from here (dropped,
                // retracted, or gone from the cache): passed on, it would
                // have our peers ask us in vain.
                self.stats.unservable = self.stats.unservable.saturating_add(1);
                Verdict::Drop
            }
            v => v,
        };
        match verdict {
            Verdict::Propagate => {
                self.fan_out(
                    id,
                    pending.payload,
                    pending.deps,
                    Some(pending.from),
                    now,
                    out,
                );
                None
            }
            Verdict::Provisional => {
                self.stats.provisional = self.stats.provisional.saturating_add(1);
                self.provisional.insert(
                    id,
                    Provisional {
                        from: pending.from,
                        ip: pending.ip,
                        deadline: later(now, provisional_limit(self.config.verdict_timeout)),
                    },
                );
                self.provisional_order.push_back(id);
                self.fan_out(
                    id,
                    pending.payload,
                    pending.deps,
                    Some(pending.from),
                    now,
                    out,
                );
                None
            }
            Verdict::Drop => None,
            Verdict::Reject => {
                self.stats.rejected = self.stats.rejected.saturating_add(1);
                Some((pending.from, pending.ip))
            }
        }
    }

    /// Stops passing on a message: no longer announced, nor served from
    /// the cache. What was pushed already is gone.
    fn retract(&mut self, id: &MessageId) {
        self.stats.retracted = self.stats.retracted.saturating_add(1);
        self.uncache(id);
        for state in self.peers.values_mut() {
            state.to_announce.retain(|queued| queued != id);
        }
    }

    fn trim_provisional_order(&mut self) {
        trim_order(&mut self.provisional_order, &self.provisional);
    }

    /// An announcement of short ids arrived from `from`.
    pub(crate) fn on_announce(
        &mut self,
        from: PeerId,
        ids: &[u8],
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(state) = self.peers.get_mut(&from) else {
            return;
        };
        let mut request = Vec::new();
        for chunk in ids.chunks_exact(SHORT_ID_LEN) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let short = u64::from_le_bytes(b);
            state.heard.insert(short, ());
            if state.index.contains_key(&short) || self.in_flight.contains_key(&(from, short)) {
                continue;
            }
            if self.in_flight.is_empty() && request.len() < MAX_IDS_PER_MESSAGE {
                request.push(short);
            } else if self.deferred.len() < MAX_DEFERRED {
                self.deferred.push_back((from, short, now));
            } else {
                self.stats.overflow = self.stats.overflow.saturating_add(1);
            }
        }
        self.send_requests(from, &request, now, out);
    }

    fn send_requests(&mut self, to: PeerId, shorts: &[u64], now: Instant, out: &mut Vec<Action>) {
        if shorts.is_empty() {
            return;
        }
        let mut body = Vec::with_capacity(shorts.len().saturating_mul(SHORT_ID_LEN));
        for short in shorts {
            self.in_flight
                .insert((to, *short), later(now, self.config.request_timeout));
            body.extend_from_slice(&short.to_le_bytes());
            self.stats.requested = self.stats.requested.saturating_add(1);
        }
        out.push(Action::Request(to, Bytes::from(body)));
    }

    /// Requests deferred short ids that are still unknown: all of them when
    /// nothing is in flight any more (or `force`), else those that waited
    /// past [`Config::defer`].
    fn release_deferred(&mut self, now: Instant, force: bool, out: &mut Vec<Action>) {
        let all = force || self.in_flight.is_empty();
        let mut batches: HashMap<PeerId, Vec<u64>> = HashMap::new();
        let mut keep = VecDeque::new();
        let mut asked: HashSet<(PeerId, u64)> = HashSet::new();
        while let Some((peer, short, since)) = self.deferred.pop_front() {
            let Some(state) = self.peers.get(&peer) else {
                continue;
            };
            if state.index.contains_key(&short) || self.in_flight.contains_key(&(peer, short)) {
                continue;
            }
            if all || now >= later(since, self.config.defer) {
                if asked.insert((peer, short)) {
                    batches.entry(peer).or_default().push(short);
                }
            } else {
                keep.push_back((peer, short, since));
            }
        }
        self.deferred = keep;
        let mut peers: Vec<_> = batches.into_iter().collect();
        peers.sort_by_key(|(p, _)| *p);
        for (peer, shorts) in peers {
            for chunk in shorts.chunks(MAX_IDS_PER_MESSAGE) {
                self.send_requests(peer, chunk, now, out);
            }
        }
    }

    /// A request for short ids arrived from `from`: send what we have.
    pub(crate) fn on_request(&mut self, from: PeerId, ids: &[u8], out: &mut Vec<Action>) {
        let Some(state) = self.peers.get_mut(&from) else {
            return;
        };
        for chunk in ids.chunks_exact(SHORT_ID_LEN) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let short = u64::from_le_bytes(b);
            let Some((id, answers)) = state.announced.get_mut(&short) else {
                continue;
            };
            if *answers >= MAX_ANSWERS_PER_ID {
                self.stats.repeat_requests = self.stats.repeat_requests.saturating_add(1);
                continue;
            }
            *answers = answers.saturating_add(1);
            if let Some((payload, deps)) = self.cache.get(id) {
                self.stats.payload_bytes_out = self
                    .stats
                    .payload_bytes_out
                    .saturating_add(payload.len() as u64);
                offer(state, deps);
                out.push(Action::Message(from, payload.clone(), deps.clone()));
            }
        }
    }

    /// A fetch of whole ids (dependencies) arrived from `from`: send what
    /// we passed on and still hold, and that a message we sent that peer
    /// depends on, each at most [`MAX_ANSWERS_PER_ID`] times: 32 bytes
    /// cannot buy any message of the cache, nor one many times.
    pub(crate) fn on_fetch(&mut self, from: PeerId, ids: &[u8], out: &mut Vec<Action>) {
        let Some(state) = self.peers.get_mut(&from) else {
            return;
        };
        for chunk in ids.chunks_exact(MESSAGE_ID_LEN) {
            let mut id = [0u8; 32];
            id.copy_from_slice(chunk);
            let id = MessageId(id);
            let Some((payload, deps)) = self.cache.get(&id) else {
                continue;
            };
            match state.fetched.get_mut(&id) {
                Some(answers) if *answers >= MAX_ANSWERS_PER_ID => {
                    self.stats.repeat_requests = self.stats.repeat_requests.saturating_add(1);
                    continue;
                }
                Some(answers) => *answers = answers.saturating_add(1),
                None => {
                    // Nothing we sent it depends on this.
                    self.stats.repeat_requests = self.stats.repeat_requests.saturating_add(1);
                    continue;
                }
            }
            self.stats.deps_served = self.stats.deps_served.saturating_add(1);
            self.stats.payload_bytes_out = self
                .stats
                .payload_bytes_out
                .saturating_add(payload.len() as u64);
            offer(state, deps);
            out.push(Action::Message(from, payload.clone(), deps.clone()));
        }
    }

    /// Timers: announcement batches due, requests timed out, deferred ids
    /// due, verdicts that did not come in time, ids past their time to live.
    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| s.flush_at.is_some_and(|at| at <= now))
            .map(|(p, _)| *p)
            .collect();
        due.sort();
        for peer in due {
            if let Some(state) = self.peers.get_mut(&peer) {
                Self::flush(state, peer, now, &mut self.stats, out);
            }
        }
        let before = self.in_flight.len();
        self.in_flight.retain(|_, deadline| *deadline > now);
        let timed_out = self.in_flight.len() < before;
        if timed_out
            || self
                .deferred
                .front()
                .is_some_and(|(_, _, since)| now >= later(*since, self.config.defer))
        {
            self.release_deferred(now, timed_out, out);
        }
        while self.next_verdict_deadline().is_some_and(|d| d <= now) {
            self.drop_oldest_pending();
        }
        while let Some(id) = self
            .waiting_order
            .front()
            .copied()
            .filter(|id| self.waiting.get(id).is_some_and(|w| w.deadline <= now))
        {
            self.drop_waiting(&id);
        }
        while let Some(&(deadline, dep)) = self.asked_order.front() {
            if deadline > now {
                break;
            }
            self.asked_order.pop_front();
            let Some(&(peer, until)) = self.asked.get(&dep) else {
                continue;
            };
            if until > now {
                continue;
            }
            self.asked.remove(&dep);
            // Still wanted: the peer that sent what depends on it did not
            // send it.
            if self.wanted.contains_key(&dep) && !self.seen.contains_key(&dep) {
                self.stats.deps_unserved = self.stats.deps_unserved.saturating_add(1);
                match self.unserved.iter_mut().find(|(p, _)| *p == peer) {
                    Some((_, n)) => *n = n.saturating_add(1),
                    None => self.unserved.push((peer, 1)),
                }
            }
        }
        while let Some(id) = self
            .provisional_order
            .front()
            .copied()
            .filter(|id| self.provisional.get(id).is_some_and(|p| p.deadline <= now))
        {
            self.provisional.remove(&id);
            self.trim_provisional_order();
            self.retract(&id);
            self.stats.provisional_expired = self.stats.provisional_expired.saturating_add(1);
        }
        while self
            .seen_order
            .front()
            .is_some_and(|(expiry, _)| *expiry <= now)
        {
            let Some(&(_, id)) = self.seen_order.front() else {
                break;
            };
            if self.seen.get(&id).is_some_and(|e| *e <= now) {
                self.forget_oldest();
                self.uncache(&id);
            } else {
                self.seen_order.pop_front();
            }
        }
    }

    /// When [`on_timeout`](Self::on_timeout) must next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let flush = self.peers.values().filter_map(|s| s.flush_at).min();
        let flight = self.in_flight.values().min().copied();
        let defer = self
            .deferred
            .front()
            .map(|(_, _, since)| later(*since, self.config.defer));
        let expiry = self.seen_order.front().map(|(e, _)| *e);
        let verdict = self.next_verdict_deadline();
        let provisional = self
            .provisional_order
            .front()
            .and_then(|id| self.provisional.get(id))
            .map(|p| p.deadline);
        let waiting = self
            .waiting_order
            .front()
            .and_then(|id| self.waiting.get(id))
            .map(|w| w.deadline);
        let asked = self.asked_order.front().map(|(d, _)| *d);
        [
            flush,
            flight,
            defer,
            expiry,
            verdict,
            provisional,
            waiting,
            asked,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests;
