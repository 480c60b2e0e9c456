//! End-to-end delivery receipts (`docs/rfc/e2e-reliability.md`).
//!
//! - A node that accepts a gossiped record remembers the peer it first got
//!   it from (its *parent* for that message) and, every receipt interval,
//!   sends each parent one signed receipt listing the ids it accepted from
//!   it.
//! - A node that receives a receipt checks its signature once and forwards
//!   it, unchanged, to the parent of every id it names; the publisher, which
//!   has no parent, records the signer as confirmed.
//! - The publisher keeps, per published message, the expected recipients
//!   (the node keys it knows at publish time), the confirmations, and the
//!   share wanted. Everything is bounded in count and in time.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac as _};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use strata_node::{MessageId, PeerId};
use strata_store::{Digest, Record};

use crate::budget::Budget;
use crate::wire::{
    Challenge, ID_LEN, MAX_IDS_PER_RECEIPT, MAX_RECEIPTS_PER_MESSAGE, NODE_KEY_LEN, NONCE_LEN,
    PROOF_LEN, Proof, Receipt,
};

/// A node key.
pub type NodeKey = [u8; NODE_KEY_LEN];

/// Most published messages tracked; the oldest are forgotten first.
pub const MAX_TRACKED: usize = 4096;
/// How long a published message is tracked.
pub const TRACK_TTL: Duration = Duration::from_secs(600);
/// Most messages whose parent is remembered.
pub const MAX_PARENTS: usize = 65_536;
/// How long a message's parent is remembered.
pub const PARENT_TTL: Duration = Duration::from_secs(300);
/// Most own confirmations waiting for the next flush, over all parents.
pub const MAX_PENDING_IDS: usize = 16_384;
/// Most receipts waiting to be forwarded, over all parents.
pub const MAX_FORWARD: usize = 4096;
/// Most node keys remembered as known.
pub const MAX_KNOWN_KEYS: usize = 4096;
/// Most receipt signatures remembered, to drop a receipt seen twice.
pub const MAX_SEEN_RECEIPTS: usize = 65_536;
/// Receipt signatures one peer may make us check per second (a second's
/// worth may be saved up); a node forwards at most [`MAX_FORWARD`] per flush.
pub const CHECKS_PER_SEC: usize = 4096;
/// Receipt signatures all peers together may make us check per second (a
/// second's worth may be saved up): many peers each within
/// [`CHECKS_PER_SEC`] cannot keep the sync task checking signatures.
pub const TOTAL_CHECKS_PER_SEC: usize = 2 * CHECKS_PER_SEC;
/// Bytes of receipts sent in one message, about (a receipt that does not
/// fit goes in the next).
pub const SEND_BYTES: usize = 1024 * 1024;
/// Challenges of others a node answers with a proof per second, in all (a
/// second's worth may be saved up); past it a challenge is neither
/// answered nor passed on. Spent only on records the node holds.
pub const CHALLENGES_PER_SEC: usize = 16;
/// Challenges of one challenger key a node looks up per second (a second's
/// worth may be saved up), so that one key cannot take what others need.
pub const CHALLENGES_PER_KEY_PER_SEC: usize = 4;
/// Challenges one peer may make us check the signature of per second (a
/// second's worth may be saved up): the bound on what a flood costs.
pub const CHALLENGES_PER_PEER_PER_SEC: usize = 16;
/// How old (or how far ahead) a challenge's time may be, in seconds; an
/// older one is dropped, so an old challenge cannot be replayed.
pub const CHALLENGE_TTL_SECS: u64 = 60;
/// Challenger keys whose budgets are remembered; past it one is forgotten.
pub const MAX_CHALLENGERS: usize = 1024;

/// What a publisher knows of a message's delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryStatus {
    /// The message.
    pub id: MessageId,
    /// Share of the expected recipients whose confirmation is wanted, in
    /// `0.0..=1.0`.
    pub want: f64,
    /// The nodes expected to receive it.
    pub expected: Vec<NodeKey>,
    /// Nodes that confirmed it, expected or not.
    pub confirmed: Vec<NodeKey>,
    /// Expected nodes that have not confirmed it.
    pub missing: Vec<NodeKey>,
    /// Whether the confirmed expected nodes reach the share wanted.
    pub satisfied: bool,
    /// The message id of the last challenge to the holders to prove they
    /// hold the record, if one was posed.
    pub challenge: Option<MessageId>,
    /// Nodes that proved, since the last challenge, that they hold the
    /// record's bytes.
    pub proved: Vec<NodeKey>,
}

struct Tracked {
    want: f64,
    expected: BTreeSet<NodeKey>,
    confirmed: BTreeSet<NodeKey>,
    at: Instant,
    /// The record's digest, for a challenge.
    digest: Option<Digest>,
    challenge: Option<Posed>,
}

/// A challenge we posed: the keyed hash state after the record's bytes,
/// which each proof's signer finishes.
struct Posed {
    id: MessageId,
    state: Blake2bMac<U32>,
    proved: BTreeSet<NodeKey>,
}

/// The keyed hash state of a proof of `record` under `nonce`, before the
/// signer's key.
pub(crate) fn proof_state(nonce: &[u8; NONCE_LEN], record: &Record) -> Blake2bMac<U32> {
    // The nonce is a whole Blake2b key (64 bytes).
    let mut state = <Blake2bMac<U32> as KeyInit>::new(nonce.into());
    state.update(&record.to_bytes());
    state
}

/// The proof of `signer` from a [`proof_state`].
pub(crate) fn finish_proof(mut state: Blake2bMac<U32>, signer: &NodeKey) -> [u8; PROOF_LEN] {
    state.update(signer);
    state.finalize().into_bytes().into()
}

impl Tracked {
    fn status(&self, id: MessageId) -> DeliveryStatus {
        let missing: Vec<NodeKey> = self.expected.difference(&self.confirmed).copied().collect();
        let reached = self.expected.len().saturating_sub(missing.len());
        let needed = share_of(self.want, self.expected.len());
        DeliveryStatus {
            id,
            want: self.want,
            expected: self.expected.iter().copied().collect(),
            confirmed: self.confirmed.iter().copied().collect(),
            missing,
            satisfied: reached >= needed,
            challenge: self.challenge.as_ref().map(|c| c.id),
            proved: self
                .challenge
                .iter()
                .flat_map(|c| c.proved.iter().copied())
                .collect(),
        }
    }
}

/// How many of `n` make the share `want` (rounded up).
fn share_of(want: f64, n: usize) -> usize {
    let want = if want.is_nan() {
        1.0
    } else {
        want.clamp(0.0, 1.0)
    };
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a share of a count that fits in f64"
    )]
    let needed = (want * n as f64).ceil() as usize;
    needed.min(n)
}

/// Spends one from `budget` at `rate`, if it has one.
fn take_one(budget: &mut Budget, rate: f64, now: Instant) -> bool {
    if budget.level(rate, now) < 1.0 {
        return false;
    }
    budget.spend(1, rate, now);
    true
}

/// Signature checks each peer may make us do ([`CHECKS_PER_SEC`]) and all
/// peers together ([`TOTAL_CHECKS_PER_SEC`]), a second's worth saved up.
#[derive(Default)]
struct Checks {
    per_peer: HashMap<PeerId, Budget>,
    total: Option<Budget>,
}

impl Checks {
    /// Spends one check of `from`'s budget and everyone's, if both have it.
    fn admit(&mut self, from: PeerId, now: Instant) -> bool {
        let (rate, total_rate) = (CHECKS_PER_SEC as f64, TOTAL_CHECKS_PER_SEC as f64);
        let own = self
            .per_peer
            .entry(from)
            .or_insert_with(|| Budget::full(rate, now));
        let total = self
            .total
            .get_or_insert_with(|| Budget::full(total_rate, now));
        if own.level(rate, now) < 1.0 || total.level(total_rate, now) < 1.0 {
            return false;
        }
        own.spend(1, rate, now);
        total.spend(1, total_rate, now);
        true
    }
}

/// What a receipt's arrival asks of the caller.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    /// Published messages that gained confirmations, as they stand now.
    pub(crate) changed: Vec<DeliveryStatus>,
}

/// What a proof's arrival asks of the caller.
#[derive(Debug, PartialEq)]
pub(crate) enum ProofRouted {
    /// It proved a holder of a record we published: the status now.
    Proved(DeliveryStatus),
    /// To pass on toward the challenger.
    Forward(PeerId),
    /// Its signature does not verify: the sender is to be scored.
    Forged,
    /// Nothing: seen before, over budget, not ours and no way on, or
    /// wrong (counted).
    Nothing,
}

/// Receipts: the publisher's ledger and the relay toward parents.
pub(crate) struct Receipts {
    key: SigningKey,
    own: NodeKey,
    interval: Duration,
    next_flush: Option<Instant>,
    tracked: HashMap<MessageId, Tracked>,
    tracked_order: VecDeque<(MessageId, Instant)>,
    /// Our challenges' message ids, to the message each is about.
    posed: HashMap<MessageId, MessageId>,
    /// Challenges of others we may still answer (in all), look up (per
    /// challenger) and check (per peer).
    answers: Option<Budget>,
    answers_by: HashMap<NodeKey, Budget>,
    challenge_checks: HashMap<PeerId, Budget>,
    /// Challenges posed.
    pub(crate) challenges_posed: u64,
    /// Challenges answered with a proof.
    pub(crate) proofs_sent: u64,
    /// Challenges of others dropped over [`CHALLENGES_PER_SEC`].
    pub(crate) challenges_over_budget: u64,
    /// Proofs that did not match the record's bytes.
    pub(crate) proofs_wrong: u64,
    /// Proofs dropped unchecked: their sender was over its budget.
    pub(crate) proofs_over_budget: u64,
    parents: HashMap<MessageId, (PeerId, Instant)>,
    parents_order: VecDeque<(MessageId, Instant)>,
    pending: HashMap<PeerId, Vec<[u8; ID_LEN]>>,
    pending_len: usize,
    forward: HashMap<PeerId, Vec<Receipt>>,
    forward_len: usize,
    known: BTreeSet<NodeKey>,
    seen: HashSet<[u8; 16]>,
    seen_order: VecDeque<[u8; 16]>,
    /// Receipt signatures each peer, and all together, may make us check.
    checks: Checks,
    /// Proof signatures likewise, apart: proofs cannot starve receipts.
    proof_checks: Checks,
    pub(crate) bytes_sent: u64,
    pub(crate) receipts_signed: u64,
    /// Receipts seen before, dropped without a signature check.
    pub(crate) replays: u64,
    /// Receipts dropped unchecked: their sender was over its budget.
    pub(crate) over_budget: u64,
}

impl Receipts {
    pub(crate) fn new(key: SigningKey, interval: Duration) -> Receipts {
        let own = key.verifying_key().to_bytes();
        Receipts {
            key,
            own,
            interval,
            next_flush: None,
            tracked: HashMap::new(),
            tracked_order: VecDeque::new(),
            posed: HashMap::new(),
            answers: None,
            answers_by: HashMap::new(),
            challenge_checks: HashMap::new(),
            challenges_posed: 0,
            proofs_sent: 0,
            challenges_over_budget: 0,
            proofs_wrong: 0,
            proofs_over_budget: 0,
            parents: HashMap::new(),
            parents_order: VecDeque::new(),
            pending: HashMap::new(),
            pending_len: 0,
            forward: HashMap::new(),
            forward_len: 0,
            known: BTreeSet::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            checks: Checks::default(),
            proof_checks: Checks::default(),
            bytes_sent: 0,
            receipts_signed: 0,
            replays: 0,
            over_budget: 0,
        }
    }

    pub(crate) fn own_key(&self) -> NodeKey {
        self.own
    }

    /// Remembers a node key as a likely recipient of what we publish.
    pub(crate) fn learn(&mut self, key: NodeKey) {
        if key == self.own || self.known.contains(&key) {
            return;
        }
        if self.known.len() >= MAX_KNOWN_KEYS
            && let Some(first) = self.known.iter().next().copied()
        {
            self.known.remove(&first);
        }
        self.known.insert(key);
    }

    pub(crate) fn known(&self) -> impl Iterator<Item = &NodeKey> {
        self.known.iter()
    }

    /// Starts tracking a message we published.
    pub(crate) fn track(
        &mut self,
        id: MessageId,
        digest: Digest,
        want: f64,
        expected: Option<Vec<NodeKey>>,
        now: Instant,
    ) {
        let expected: BTreeSet<NodeKey> = match expected {
            Some(keys) => keys.into_iter().filter(|k| *k != self.own).collect(),
            None => self.known.clone(),
        };
        while self.tracked.len() >= MAX_TRACKED {
            let Some((old, _)) = self.tracked_order.pop_front() else {
                break;
            };
            self.forget(&old);
        }
        self.tracked.insert(
            id,
            Tracked {
                want,
                expected,
                confirmed: BTreeSet::new(),
                at: now,
                digest: Some(digest),
                challenge: None,
            },
        );
        self.tracked_order.push_back((id, now));
    }

    pub(crate) fn status(&self, id: &MessageId) -> Option<DeliveryStatus> {
        self.tracked.get(id).map(|t| t.status(*id))
    }

    fn forget(&mut self, id: &MessageId) {
        if let Some(c) = self.tracked.remove(id).and_then(|t| t.challenge) {
            self.posed.remove(&c.id);
        }
    }

    /// The digest of the record of a message we track, to challenge its
    /// holders.
    pub(crate) fn digest_of(&self, id: &MessageId) -> Option<Digest> {
        self.tracked.get(id).and_then(|t| t.digest)
    }

    /// Poses a challenge on the tracked message `id` about `record`: the
    /// gossip payload to publish. Proofs of an earlier challenge on it no
    /// longer count.
    pub(crate) fn pose(
        &mut self,
        id: MessageId,
        record: &Record,
        nonce: [u8; NONCE_LEN],
    ) -> Option<bytes::Bytes> {
        let digest = self.tracked.get(&id)?.digest?;
        let signature = self
            .key
            .sign(&Challenge::signed_bytes(&digest.0, &nonce))
            .to_bytes();
        let payload = Challenge {
            digest: digest.0,
            nonce,
            challenger: self.own,
            signature,
        }
        .payload();
        let posed = Posed {
            id: MessageId::of(&payload),
            state: proof_state(&nonce, record),
            proved: BTreeSet::new(),
        };
        self.posed.insert(posed.id, id);
        let tracked = self.tracked.get_mut(&id)?;
        if let Some(old) = tracked.challenge.replace(posed) {
            self.posed.remove(&old.id);
        }
        self.challenges_posed = self.challenges_posed.saturating_add(1);
        Some(payload)
    }

    /// Whether `peer` may make us check a challenge's signature now
    /// (within [`CHALLENGES_PER_PEER_PER_SEC`]); counts one it may not.
    pub(crate) fn may_check(&mut self, peer: PeerId, now: Instant) -> bool {
        let rate = CHALLENGES_PER_PEER_PER_SEC as f64;
        let budget = self
            .challenge_checks
            .entry(peer)
            .or_insert_with(|| Budget::full(rate, now));
        let ok = take_one(budget, rate, now);
        self.count_refusal(ok)
    }

    /// Whether a checked challenge of `challenger` may be looked up now
    /// (within [`CHALLENGES_PER_KEY_PER_SEC`]); counts one that may not.
    pub(crate) fn may_read(&mut self, challenger: &NodeKey, now: Instant) -> bool {
        let rate = CHALLENGES_PER_KEY_PER_SEC as f64;
        if !self.answers_by.contains_key(challenger)
            && self.answers_by.len() >= MAX_CHALLENGERS
            && let Some(old) = self.answers_by.keys().next().copied()
        {
            self.answers_by.remove(&old);
        }
        let budget = self
            .answers_by
            .entry(*challenger)
            .or_insert_with(|| Budget::full(rate, now));
        let ok = take_one(budget, rate, now);
        self.count_refusal(ok)
    }

    /// Whether a challenge about a record we hold may be answered now
    /// (within [`CHALLENGES_PER_SEC`]); counts one that may not.
    pub(crate) fn may_prove(&mut self, now: Instant) -> bool {
        let rate = CHALLENGES_PER_SEC as f64;
        let budget = self.answers.get_or_insert_with(|| Budget::full(rate, now));
        let ok = take_one(budget, rate, now);
        self.count_refusal(ok)
    }

    /// Counts a challenge refused for want of budget; returns `ok`.
    fn count_refusal(&mut self, ok: bool) -> bool {
        if !ok {
            self.challenges_over_budget = self.challenges_over_budget.saturating_add(1);
        }
        ok
    }

    /// Whether a challenge (by its signature) is new to us; it is noted.
    pub(crate) fn first_time(&mut self, signature: &[u8; 64]) -> bool {
        let mark = signature_mark(signature);
        if self.seen.contains(&mark) {
            return false;
        }
        self.note_seen(mark);
        true
    }

    /// Our proof for the challenge `id` about `record`, signed.
    pub(crate) fn prove(&mut self, challenge: &Challenge, id: MessageId, record: &Record) -> Proof {
        let proof = finish_proof(proof_state(&challenge.nonce, record), &self.own);
        let signature = self
            .key
            .sign(&Proof::signed_bytes(&self.own, &id.0, &proof))
            .to_bytes();
        self.proofs_sent = self.proofs_sent.saturating_add(1);
        Proof {
            signer: self.own,
            challenge: id.0,
            proof,
            signature,
        }
    }

    /// A proof from `from`: checked if it answers our challenge, passed on
    /// toward the challenger otherwise. Its signature is checked within
    /// `from`'s budget of signature checks.
    pub(crate) fn on_proof(&mut self, from: PeerId, proof: &Proof, now: Instant) -> ProofRouted {
        let id = MessageId(proof.challenge);
        let ours = self.posed.get(&id).copied();
        let parent = self
            .parents
            .get(&id)
            .map(|(p, _)| *p)
            .filter(|p| *p != from);
        if ours.is_none() && parent.is_none() {
            return ProofRouted::Nothing;
        }
        // Each proof is checked and passed on once.
        let mark = signature_mark(&proof.signature);
        if self.seen.contains(&mark) {
            self.replays = self.replays.saturating_add(1);
            return ProofRouted::Nothing;
        }
        if !self.proof_checks.admit(from, now) {
            self.proofs_over_budget = self.proofs_over_budget.saturating_add(1);
            return ProofRouted::Nothing;
        }
        if !verify_proof(proof) {
            return ProofRouted::Forged;
        }
        self.note_seen(mark);
        let Some(message) = ours else {
            return parent.map_or(ProofRouted::Nothing, ProofRouted::Forward);
        };
        let Some(tracked) = self.tracked.get_mut(&message) else {
            return ProofRouted::Nothing;
        };
        let Some(posed) = tracked.challenge.as_mut() else {
            return ProofRouted::Nothing;
        };
        if finish_proof(posed.state.clone(), &proof.signer) != proof.proof {
            self.proofs_wrong = self.proofs_wrong.saturating_add(1);
            return ProofRouted::Nothing;
        }
        // Only the nodes expected or that confirmed it count: keys made up
        // by the thousand for a public record prove nothing of its holders.
        let counts =
            tracked.expected.contains(&proof.signer) || tracked.confirmed.contains(&proof.signer);
        if !counts || posed.proved.len() >= MAX_KNOWN_KEYS || !posed.proved.insert(proof.signer) {
            return ProofRouted::Nothing;
        }
        ProofRouted::Proved(tracked.status(message))
    }

    /// Remembers that `id` came from `parent`, to pass what answers it
    /// back that way.
    pub(crate) fn remember(&mut self, id: MessageId, parent: PeerId, now: Instant) -> bool {
        if self.tracked.contains_key(&id) || self.parents.contains_key(&id) {
            return false;
        }
        while self.parents.len() >= MAX_PARENTS {
            let Some((old, _)) = self.parents_order.pop_front() else {
                break;
            };
            self.parents.remove(&old);
        }
        self.parents.insert(id, (parent, now));
        self.parents_order.push_back((id, now));
        true
    }

    /// A message accepted from `parent`: confirm it at the next flush.
    pub(crate) fn accepted(&mut self, id: MessageId, parent: PeerId, now: Instant) {
        if !self.remember(id, parent, now) {
            return;
        }
        if self.pending_len < MAX_PENDING_IDS {
            self.pending.entry(parent).or_default().push(id.0);
            self.pending_len = self.pending_len.saturating_add(1);
        }
        self.arm(now);
    }

    fn arm(&mut self, now: Instant) {
        if self.next_flush.is_none() {
            self.next_flush = Some(strata_node::later(now, self.interval));
        }
    }

    /// A peer is gone: nothing more goes to it.
    pub(crate) fn peer_gone(&mut self, peer: PeerId) {
        if let Some(ids) = self.pending.remove(&peer) {
            self.pending_len = self.pending_len.saturating_sub(ids.len());
        }
        if let Some(receipts) = self.forward.remove(&peer) {
            self.forward_len = self.forward_len.saturating_sub(receipts.len());
        }
        self.checks.per_peer.remove(&peer);
        self.proof_checks.per_peer.remove(&peer);
        self.challenge_checks.remove(&peer);
    }

    /// The receipts of a frame from `from` worth a signature check: those
    /// not seen before (a replay is dropped unchecked), within `from`'s
    /// budget of [`CHECKS_PER_SEC`] checks and everyone's of
    /// [`TOTAL_CHECKS_PER_SEC`] (the rest are dropped, counted).
    pub(crate) fn admit(
        &mut self,
        from: PeerId,
        receipts: Vec<Receipt>,
        now: Instant,
    ) -> Vec<Receipt> {
        let mut out = Vec::new();
        for receipt in receipts {
            if self.seen.contains(&signature_mark(&receipt.signature)) {
                self.replays = self.replays.saturating_add(1);
            } else if self.checks.admit(from, now) {
                out.push(receipt);
            } else {
                self.over_budget = self.over_budget.saturating_add(1);
            }
        }
        out
    }

    /// Remembers a signature as seen, at most [`MAX_SEEN_RECEIPTS`].
    fn note_seen(&mut self, mark: [u8; 16]) {
        if !self.seen.insert(mark) {
            return;
        }
        self.seen_order.push_back(mark);
        if self.seen_order.len() > MAX_SEEN_RECEIPTS
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
    }

    /// Receipts received from `from`, whose signatures the caller checked.
    /// Confirms what we published and queues the rest toward parents.
    pub(crate) fn route(&mut self, from: PeerId, receipts: Vec<Receipt>, now: Instant) -> Routed {
        let mut changed: Vec<MessageId> = Vec::new();
        for receipt in receipts {
            let mark = signature_mark(&receipt.signature);
            if self.seen.contains(&mark) {
                continue;
            }
            self.note_seen(mark);
            if receipt.signer == self.own {
                continue;
            }
            self.learn(receipt.signer);
            let mut targets: BTreeSet<PeerId> = BTreeSet::new();
            for id in &receipt.ids {
                let id = MessageId(*id);
                if let Some(t) = self.tracked.get_mut(&id) {
                    if t.confirmed.insert(receipt.signer) && !changed.contains(&id) {
                        changed.push(id);
                    }
                } else if let Some((parent, _)) = self.parents.get(&id)
                    && *parent != from
                {
                    targets.insert(*parent);
                }
            }
            for target in targets {
                if self.forward_len >= MAX_FORWARD {
                    break;
                }
                self.forward
                    .entry(target)
                    .or_default()
                    .push(receipt.clone());
                self.forward_len = self.forward_len.saturating_add(1);
                self.arm(now);
            }
        }
        Routed {
            changed: changed
                .into_iter()
                .filter_map(|id| self.status(&id))
                .collect(),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_flush
    }

    /// Signs our own confirmations and returns, per parent, the receipts
    /// to send (at most [`MAX_RECEIPTS_PER_MESSAGE`] per frame). Also
    /// forgets what is past its time.
    pub(crate) fn flush(&mut self, now: Instant) -> Vec<(PeerId, Vec<Receipt>)> {
        if self.next_flush.is_some_and(|at| now < at) {
            return Vec::new();
        }
        self.next_flush = None;
        self.expire(now);
        let mut per_peer: HashMap<PeerId, Vec<Receipt>> = std::mem::take(&mut self.forward);
        self.forward_len = 0;
        for (peer, ids) in std::mem::take(&mut self.pending) {
            for chunk in ids.chunks(MAX_IDS_PER_RECEIPT) {
                let signature = self
                    .key
                    .sign(&Receipt::signed_bytes(&self.own, chunk))
                    .to_bytes();
                self.receipts_signed = self.receipts_signed.saturating_add(1);
                per_peer.entry(peer).or_default().push(Receipt {
                    signer: self.own,
                    ids: chunk.to_vec(),
                    signature,
                });
            }
        }
        self.pending_len = 0;
        let mut out = Vec::new();
        let mut peers: Vec<_> = per_peer.into_iter().collect();
        peers.sort_by_key(|(p, _)| *p);
        for (peer, receipts) in peers {
            // At most MAX_RECEIPTS_PER_MESSAGE receipts and about
            // SEND_BYTES per message, so each fits the relay queue.
            let mut message = Vec::new();
            let mut bytes = 0usize;
            for receipt in receipts {
                let len = receipt.encoded_len();
                if !message.is_empty()
                    && (message.len() == MAX_RECEIPTS_PER_MESSAGE
                        || bytes.saturating_add(len) > SEND_BYTES)
                {
                    out.push((peer, std::mem::take(&mut message)));
                    bytes = 0;
                }
                bytes = bytes.saturating_add(len);
                message.push(receipt);
            }
            if !message.is_empty() {
                out.push((peer, message));
            }
        }
        out
    }

    fn expire(&mut self, now: Instant) {
        while let Some((id, at)) = self.tracked_order.front().copied() {
            if now.saturating_duration_since(at) < TRACK_TTL {
                break;
            }
            self.tracked_order.pop_front();
            if self.tracked.get(&id).is_some_and(|t| t.at == at) {
                self.forget(&id);
            }
        }
        while let Some((id, at)) = self.parents_order.front().copied() {
            if now.saturating_duration_since(at) < PARENT_TTL {
                break;
            }
            self.parents_order.pop_front();
            if self.parents.get(&id).is_some_and(|(_, t)| *t == at) {
                self.parents.remove(&id);
            }
        }
    }
}

/// Checks a receipt's signature (strict Ed25519, weak keys refused).
pub fn verify_receipt(receipt: &Receipt) -> bool {
    if receipt.ids.is_empty() {
        return false;
    }
    let Ok(key) = VerifyingKey::from_bytes(&receipt.signer) else {
        return false;
    };
    if key.is_weak() {
        return false;
    }
    let signature = Signature::from_bytes(&receipt.signature);
    key.verify_strict(
        &Receipt::signed_bytes(&receipt.signer, &receipt.ids),
        &signature,
    )
    .is_ok()
}

/// Fewest receipts worth a batch verification; fewer are checked one by
/// one.
const MIN_BATCH: usize = 4;

/// Whether every receipt's signature is good. Checked as one batch
/// (`ed25519_dalek::verify_batch`, about half the cost of checking each),
/// and one by one with [`verify_receipt`] only when the batch fails, so a
/// verdict never rests on the batch equation alone.
pub fn verify_receipts(receipts: &[Receipt]) -> bool {
    receipts.len() >= MIN_BATCH && batch_ok(receipts) || receipts.iter().all(verify_receipt)
}

/// Whether the receipts verify as one batch.
fn batch_ok(receipts: &[Receipt]) -> bool {
    let mut messages = Vec::with_capacity(receipts.len());
    let mut signatures = Vec::with_capacity(receipts.len());
    let mut keys = Vec::with_capacity(receipts.len());
    for receipt in receipts {
        let Ok(key) = VerifyingKey::from_bytes(&receipt.signer) else {
            return false;
        };
        if receipt.ids.is_empty() || key.is_weak() {
            return false;
        }
        messages.push(Receipt::signed_bytes(&receipt.signer, &receipt.ids));
        signatures.push(Signature::from_bytes(&receipt.signature));
        keys.push(key);
    }
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// Checks a proof's signature (strict Ed25519, weak keys refused).
fn verify_proof(proof: &Proof) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(&proof.signer) else {
        return false;
    };
    !key.is_weak()
        && key
            .verify_strict(
                &Proof::signed_bytes(&proof.signer, &proof.challenge, &proof.proof),
                &Signature::from_bytes(&proof.signature),
            )
            .is_ok()
}

/// Checks a challenge's signature by its challenger (strict Ed25519, weak
/// keys refused).
pub(crate) fn verify_challenge(challenge: &Challenge) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(&challenge.challenger) else {
        return false;
    };
    !key.is_weak()
        && key
            .verify_strict(
                &Challenge::signed_bytes(&challenge.digest, &challenge.nonce),
                &Signature::from_bytes(&challenge.signature),
            )
            .is_ok()
}

/// What marks a receipt or a proof as seen: the start of its signature.
fn signature_mark(signature: &[u8; 64]) -> [u8; 16] {
    let mut mark = [0u8; 16];
    mark.copy_from_slice(&signature[..16]);
    mark
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &SigningKey, id: u8) -> Receipt {
        let signer = key.verifying_key().to_bytes();
        let ids = vec![[id; ID_LEN]];
        let signature = key.sign(&Receipt::signed_bytes(&signer, &ids)).to_bytes();
        Receipt {
            signer,
            ids,
            signature,
        }
    }

    #[test]
    fn a_batch_of_receipts_verifies_only_when_every_one_does() {
        let keys: Vec<SigningKey> = (1..=8u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let good: Vec<Receipt> = keys.iter().zip(0u8..).map(|(k, i)| signed(k, i)).collect();
        assert!(verify_receipts(&good));
        assert!(
            verify_receipts(&good[..2]),
            "fewer than a batch, one by one"
        );
        for i in [0, 5, 7] {
            let mut forged = good.clone();
            forged[i].signature[40] ^= 1;
            assert!(!verify_receipts(&forged), "forged at {i}");
            let mut moved = good.clone();
            moved[i].ids[0][0] ^= 1;
            assert!(!verify_receipts(&moved), "ids changed at {i}");
            let mut empty = good.clone();
            empty[i].ids.clear();
            assert!(!verify_receipts(&empty), "no ids at {i}");
        }
    }
}
