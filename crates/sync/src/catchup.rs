//! Catch-up: the key-hash space cut into spans, each streamed in order by
//! cursor from the peers that have the records, and the progress file that
//! lets a restarted node resume.
//!
//! Span `i` of [`SPANS`] holds the key hashes whose first byte is in
//! `4i..=4i+3`. Key hashes are uniform, so spans are about equal whoever
//! wrote the records. A span's cursor is the last key hash whose records are
//! stored; it only moves after the store has committed them.
//!
//! `Catchup` owns the spans, the span requests in flight and what it
//! knows of each source: a span is idle, asked of a peer, or busy (its
//! batch arrived and is being checked and written); a span asked of a peer
//! that does not answer in time is asked of another.
//!
//! Claims choose sources, deliveries keep them: a source is asked while its
//! claimed record count is near the best claim among the sources still
//! kept, and is dropped for the rest of the catch-up after
//! [`MAX_STRIKES`] failures: a batch that moves the cursor without records,
//! a span ended far short of what its claim implies, a stall, a bad batch.
//! So a peer that claims a huge count and serves nothing is asked a few
//! times, then never again, and the honest sources take over.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use strata_node::{Class, PeerId, later};
use strata_store::{KEY_HASH_LEN, Record};

use crate::score::Misbehaviour;
use crate::wire::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Message, Outbox};

/// Number of spans.
pub const SPANS: usize = 64;

/// First bytes per span.
const SPAN_WIDTH: usize = 256 / SPANS;
const SPANS_U64: u64 = SPANS as u64;

/// Failures after which a source is no longer asked during a catch-up.
pub const MAX_STRIKES: u32 = 3;

/// A span ended by a source is plausible if it held at least this share
/// of what the source's claim implies (records per span = claim / SPANS),
/// as a fraction `1 / SHORT_SPAN_DIVISOR`.
const SHORT_SPAN_DIVISOR: u64 = 4;

/// Below this many expected records per span, counts vary too much for the
/// short-span check to mean anything; it is skipped.
const SHORT_SPAN_MIN_EXPECTED: u64 = 64;

/// Magic of the progress encoding.
const PROGRESS_MAGIC: &[u8; 16] = b"strata-catchup-1";

/// A key hash.
pub type KeyHashBytes = [u8; KEY_HASH_LEN];

/// Reads a catch-up progress encoding (what `catchup.dat` holds) and writes
/// it again: `None` for bytes that are not one, and the same bytes for a
/// valid one. For tools and fuzzing.
pub fn reencode_progress(bytes: &[u8]) -> Option<Vec<u8>> {
    Catchup::decode(bytes).map(|c| c.encode())
}

/// The last key hash of span `i` (inclusive).
pub(crate) fn span_end(i: usize) -> KeyHashBytes {
    let mut end = [0xff; KEY_HASH_LEN];
    let last = i
        .saturating_add(1)
        .saturating_mul(SPAN_WIDTH)
        .saturating_sub(1);
    end[0] = u8::try_from(last).unwrap_or(0xff);
    end
}

/// Where span `i` starts: after the last key hash of span `i - 1`.
pub(crate) fn span_start(i: usize) -> Option<KeyHashBytes> {
    i.checked_sub(1).map(span_end)
}

/// Which span holds `key_hash`.
pub(crate) fn span_of(key_hash: &KeyHashBytes) -> usize {
    usize::from(key_hash[0]) / SPAN_WIDTH
}

/// One span's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Resume after this key hash (the span's start when nothing is stored
    /// yet).
    pub(crate) after: Option<KeyHashBytes>,
    /// Nothing is left.
    pub(crate) done: bool,
    /// The request in flight or being written, if any.
    pub(crate) request: Option<u64>,
    /// Records received for the span in this catch-up.
    delivered: u64,
    /// Whether the span was streamed from its start in this catch-up, so
    /// that `delivered` is all it holds.
    whole: bool,
}

impl Span {
    fn new(after: Option<KeyHashBytes>, done: bool, whole: bool) -> Span {
        Span {
            after,
            done,
            request: None,
            delivered: 0,
            whole,
        }
    }
}

/// A span request in flight.
#[derive(Debug, Clone)]
struct Asked {
    peer: PeerId,
    span: usize,
    after: Option<KeyHashBytes>,
    max_records: usize,
    max_bytes: usize,
    /// The records the peer claimed when asked.
    claim: u64,
    deadline: Instant,
}

/// What catch-up knows of a source.
#[derive(Debug, Clone, Copy, Default)]
struct Source {
    inflight: usize,
    slow_until: Option<Instant>,
    /// Failures so far; at [`MAX_STRIKES`] the source is no longer asked.
    strikes: u32,
    /// Records it delivered in accepted batches.
    delivered: u64,
}

impl Source {
    fn dropped(&self) -> bool {
        self.strikes >= MAX_STRIKES
    }
}

/// A batch that arrived and keeps to its request: to check and write, then
/// [`Catchup::commit`].
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) span: usize,
    pub(crate) request: u64,
    pub(crate) next: Option<KeyHashBytes>,
    pub(crate) records: Vec<Record>,
}

/// How catch-up asks: the sizes and timing of batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) batch_records: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) batch_timeout: Duration,
    pub(crate) max_inflight: usize,
    pub(crate) per_peer_inflight: usize,
}

/// The spans of a catch-up, and its requests.
#[derive(Debug, Clone)]
pub(crate) struct Catchup {
    pub(crate) spans: Vec<Span>,
    asked: HashMap<u64, Asked>,
    sources: HashMap<PeerId, Source>,
}

impl Catchup {
    /// Every span from its start.
    pub(crate) fn fresh() -> Catchup {
        Catchup::with_spans(
            (0..SPANS)
                .map(|i| Span::new(span_start(i), false, true))
                .collect(),
        )
    }

    fn with_spans(spans: Vec<Span>) -> Catchup {
        Catchup {
            spans,
            asked: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    /// Sends span requests to `sources` (peers and the records they claim)
    /// while spans, sources and room allow. `next_request` numbers them.
    /// Returns whether any source is left to ask.
    pub(crate) fn schedule(
        &mut self,
        sources: &[(PeerId, u64)],
        limits: &Limits,
        next_request: &mut u64,
        now: Instant,
        out: &mut Outbox,
    ) -> bool {
        // Sources still kept: a dropped one's claim counts for nothing.
        let kept: Vec<(PeerId, u64)> = sources
            .iter()
            .filter(|(peer, n)| *n > 0 && !self.sources.get(peer).is_some_and(Source::dropped))
            .copied()
            .collect();
        let best = kept.iter().map(|(_, n)| *n).max().unwrap_or(0);
        // Peers with about the most records: at least nine tenths of it.
        let mut eligible: Vec<(PeerId, bool, usize, u64)> = kept
            .iter()
            .filter(|(_, n)| n.saturating_mul(10) >= best.saturating_mul(9))
            .map(|(peer, claim)| {
                let s = self.sources.get(peer).copied().unwrap_or_default();
                (
                    *peer,
                    s.slow_until.is_some_and(|t| t > now),
                    s.inflight,
                    *claim,
                )
            })
            .collect();
        eligible.sort();
        let any = !eligible.is_empty();
        // Batches asked for and batches being checked and written: both
        // are memory held, so both count against the cap.
        let inflight = self.spans.iter().filter(|s| s.request.is_some()).count();
        let room = limits.max_inflight.saturating_sub(inflight);
        let todo: Vec<usize> = self
            .spans
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.done && s.request.is_none())
            .map(|(i, _)| i)
            .collect();
        for i in todo.into_iter().take(room) {
            // The least loaded peer, peers that stalled last.
            let Some(pick) = eligible
                .iter_mut()
                .filter(|(_, _, load, _)| *load < limits.per_peer_inflight)
                .min_by_key(|(_, slow, load, _)| (*slow, *load))
            else {
                break;
            };
            pick.2 = pick.2.saturating_add(1);
            let (peer, claim) = (pick.0, pick.3);
            let request = *next_request;
            *next_request = next_request.wrapping_add(1);
            self.ask(peer, i, request, claim, limits, now, out);
        }
        any
    }

    /// The peers no longer asked, after [`MAX_STRIKES`] failures.
    pub(crate) fn dropped_sources(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.sources
            .iter()
            .filter(|(_, s)| s.dropped())
            .map(|(peer, _)| *peer)
    }

    /// Batches asked for or being written.
    pub(crate) fn in_flight(&self) -> usize {
        self.spans.iter().filter(|s| s.request.is_some()).count()
    }

    /// Counts a failure of `peer`; the last one drops it as a source.
    fn strike(&mut self, peer: PeerId) {
        let source = self.sources.entry(peer).or_default();
        source.strikes = source.strikes.saturating_add(1);
        if source.strikes == MAX_STRIKES {
            tracing::info!(
                "peer {} is no longer asked for catch-up after {MAX_STRIKES} failures",
                peer.0
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ask(
        &mut self,
        peer: PeerId,
        i: usize,
        request: u64,
        claim: u64,
        limits: &Limits,
        now: Instant,
        out: &mut Outbox,
    ) {
        let Some(span) = self.spans.get_mut(i) else {
            return;
        };
        span.request = Some(request);
        let max_records = limits.batch_records.clamp(1, MAX_BATCH_RECORDS);
        let max_bytes = limits.batch_bytes.clamp(1, MAX_BATCH_BYTES);
        let source = self.sources.entry(peer).or_default();
        source.inflight = source.inflight.saturating_add(1);
        self.asked.insert(
            request,
            Asked {
                peer,
                span: i,
                after: span.after,
                max_records,
                max_bytes,
                claim,
                deadline: later(now, limits.batch_timeout),
            },
        );
        let message = Message::GetRange {
            request,
            after: span.after,
            end: span_end(i),
            max_records: u32::try_from(max_records).unwrap_or(u32::MAX),
            max_bytes: u32::try_from(max_bytes).unwrap_or(u32::MAX),
        };
        // The request is small; the answer comes back as bulk.
        out.push(peer, message, Class::Relay);
    }

    /// A RANGE answer from `peer`. A batch that keeps to its request comes
    /// back to be checked and written, its span busy meanwhile; an answer
    /// to no request of ours is `Ok(None)`.
    pub(crate) fn on_range(
        &mut self,
        peer: PeerId,
        request: u64,
        next: Option<KeyHashBytes>,
        records: Vec<Record>,
    ) -> Result<Option<Batch>, Misbehaviour> {
        let Some(asked) = self.asked.get(&request) else {
            // A late answer to a request that timed out.
            return Ok(None);
        };
        if asked.peer != peer {
            return Err(Misbehaviour::Unsolicited);
        }
        let Some(asked) = self.asked.remove(&request) else {
            return Ok(None);
        };
        if let Some(s) = self.sources.get_mut(&peer) {
            s.inflight = s.inflight.saturating_sub(1);
        }
        let still_ours = self
            .spans
            .get(asked.span)
            .is_some_and(|s| s.request == Some(request) && !s.done);
        if !still_ours {
            return Ok(None);
        }
        if !range_ok(
            asked.after,
            span_end(asked.span),
            asked.max_records,
            asked.max_bytes,
            next,
            &records,
        ) {
            self.release(asked.span, request);
            self.strike(peer);
            return Err(Misbehaviour::BadBatch);
        }
        if records.is_empty() && next.is_some() {
            // The cursor moves, nothing comes: no progress, and a cursor we
            // cannot check. The span is asked again from where it was.
            self.release(asked.span, request);
            self.strike(peer);
            return Err(Misbehaviour::NoProgress);
        }
        let count = records.len() as u64;
        let Some(span) = self.spans.get_mut(asked.span) else {
            return Ok(None);
        };
        let total = span.delivered.saturating_add(count);
        let expected = asked.claim / SPANS_U64;
        if next.is_none()
            && span.whole
            && expected >= SHORT_SPAN_MIN_EXPECTED
            && total.saturating_mul(SHORT_SPAN_DIVISOR) < expected
        {
            // The span ends far short of what the claim implies: the claim
            // or the ending is false. Asked again of others.
            self.release(asked.span, request);
            self.strike(peer);
            return Err(Misbehaviour::ShortSpan);
        }
        span.delivered = total;
        let source = self.sources.entry(peer).or_default();
        source.delivered = source.delivered.saturating_add(count);
        Ok(Some(Batch {
            span: asked.span,
            request,
            next,
            records,
        }))
    }

    /// A batch's records are stored: its span moves on to `next`, or is
    /// done.
    pub(crate) fn commit(&mut self, span: usize, request: u64, next: Option<KeyHashBytes>) {
        if let Some(s) = self.spans.get_mut(span)
            && s.request == Some(request)
        {
            s.request = None;
            match next {
                Some(cursor) => s.after = Some(cursor),
                None => s.done = true,
            }
        }
    }

    /// Frees a span whose request failed, to be asked again.
    pub(crate) fn release(&mut self, span: usize, request: u64) {
        if let Some(s) = self.spans.get_mut(span)
            && s.request == Some(request)
        {
            s.request = None;
        }
    }

    /// A peer left: its requests are asked of others.
    pub(crate) fn peer_gone(&mut self, peer: PeerId) {
        self.sources.remove(&peer);
        let gone: Vec<(u64, usize)> = self
            .asked
            .iter()
            .filter(|(_, a)| a.peer == peer)
            .map(|(id, a)| (*id, a.span))
            .collect();
        for (request, span) in gone {
            self.asked.remove(&request);
            self.release(span, request);
        }
    }

    /// Requests past their deadline: their spans are freed, their peers
    /// passed over for `slow_penalty`. Returns them (peer and request id).
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        slow_penalty: Duration,
    ) -> Vec<(PeerId, u64)> {
        let mut expired: Vec<u64> = self
            .asked
            .iter()
            .filter(|(_, a)| now >= a.deadline)
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        let mut stalled = Vec::new();
        for request in expired {
            let Some(asked) = self.asked.remove(&request) else {
                continue;
            };
            stalled.push((asked.peer, request));
            tracing::debug!(
                "span {} stalled at peer {}; asking another",
                asked.span,
                asked.peer.0
            );
            let source = self.sources.entry(asked.peer).or_default();
            source.inflight = source.inflight.saturating_sub(1);
            source.slow_until = Some(later(now, slow_penalty));
            self.strike(asked.peer);
            self.release(asked.span, request);
        }
        stalled
    }

    /// Whether `request` is one of ours in flight.
    pub(crate) fn knows(&self, request: u64) -> bool {
        self.asked.contains_key(&request)
    }

    /// A request in flight to `peer`, and its span.
    #[cfg(test)]
    pub(crate) fn asked_of(&self, peer: PeerId) -> Option<(u64, usize)> {
        let mut asked: Vec<(u64, usize)> = self
            .asked
            .iter()
            .filter(|(_, a)| a.peer == peer)
            .map(|(id, a)| (*id, a.span))
            .collect();
        asked.sort();
        asked.first().copied()
    }

    /// When a request times out next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.asked.values().map(|a| a.deadline).min()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.spans.iter().all(|s| s.done)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.spans.iter().filter(|s| !s.done).count()
    }

    /// The progress encoding: magic ‖ per span, a state byte (0: at its
    /// start, 1: a cursor follows, 2: done) and 16 bytes (zero unless a
    /// cursor).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            PROGRESS_MAGIC
                .len()
                .saturating_add(SPANS * (1 + KEY_HASH_LEN)),
        );
        out.extend_from_slice(PROGRESS_MAGIC);
        for (i, span) in self.spans.iter().enumerate() {
            let (state, bytes) = if span.done {
                (2, [0; KEY_HASH_LEN])
            } else if span.after == span_start(i) {
                (0, [0; KEY_HASH_LEN])
            } else {
                (1, span.after.unwrap_or([0; KEY_HASH_LEN]))
            };
            out.push(state);
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads a progress encoding; `None` if it is not one (a corrupt file
    /// restarts the catch-up, which costs time, not correctness).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Catchup> {
        let rest = bytes.strip_prefix(PROGRESS_MAGIC.as_slice())?;
        if rest.len() != SPANS * (1 + KEY_HASH_LEN) {
            return None;
        }
        let mut spans = Vec::with_capacity(SPANS);
        for (i, entry) in rest.chunks_exact(1 + KEY_HASH_LEN).enumerate() {
            let mut cursor = [0u8; KEY_HASH_LEN];
            cursor.copy_from_slice(&entry[1..]);
            let span = match entry[0] {
                0 => Span::new(span_start(i), false, true),
                1 => {
                    // A cursor outside its span is not ours.
                    if span_of(&cursor) != i {
                        return None;
                    }
                    Span::new(Some(cursor), false, false)
                }
                2 => Span::new(None, true, false),
                _ => return None,
            };
            spans.push(span);
        }
        Some(Catchup::with_spans(spans))
    }
}

/// Whether a RANGE answer keeps to its request: at most `max_records`
/// and `max_bytes` (a lone record may be larger), strictly increasing key
/// hashes after `after` and up to `end`, and a cursor that is the last
/// record's key hash (or, with no records, past `after`).
pub(crate) fn range_ok(
    after: Option<KeyHashBytes>,
    end: KeyHashBytes,
    max_records: usize,
    max_bytes: usize,
    next: Option<KeyHashBytes>,
    records: &[Record],
) -> bool {
    if records.len() > max_records {
        return false;
    }
    let bytes = records
        .iter()
        .fold(0usize, |sum, r| sum.saturating_add(r.encoded_len()));
    if records.len() > 1 && bytes > max_bytes {
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
                && last.is_none_or(|l| cursor == l)
                && span_of(&cursor) == span_of(&end)
        }
    }
}
