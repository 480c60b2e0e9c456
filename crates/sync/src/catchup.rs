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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use strata_node::{Class, PeerId};
use strata_store::{KEY_HASH_LEN, Record};

use crate::score::Misbehaviour;
use crate::wire::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Message, Outbox};

/// Number of spans.
pub const SPANS: usize = 64;

/// First bytes per span.
const SPAN_WIDTH: usize = 256 / SPANS;

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
    end[0] = u8::try_from(i * SPAN_WIDTH + SPAN_WIDTH - 1).unwrap_or(0xff);
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
}

/// A span request in flight.
#[derive(Debug, Clone)]
struct Asked {
    peer: PeerId,
    span: usize,
    after: Option<KeyHashBytes>,
    max_records: usize,
    deadline: Instant,
}

/// What catch-up knows of a source.
#[derive(Debug, Clone, Copy, Default)]
struct Source {
    inflight: usize,
    slow_until: Option<Instant>,
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
                .map(|i| Span {
                    after: span_start(i),
                    done: false,
                    request: None,
                })
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
    pub(crate) fn schedule(
        &mut self,
        sources: &[(PeerId, u64)],
        limits: &Limits,
        next_request: &mut u64,
        now: Instant,
        out: &mut Outbox,
    ) {
        let best = sources.iter().map(|(_, n)| *n).max().unwrap_or(0);
        // Peers with about the most records: at least nine tenths of it.
        let mut eligible: Vec<(PeerId, bool, usize)> = sources
            .iter()
            .filter(|(_, n)| *n > 0 && n.saturating_mul(10) >= best.saturating_mul(9))
            .map(|(peer, _)| {
                let s = self.sources.get(peer).copied().unwrap_or_default();
                (*peer, s.slow_until.is_some_and(|t| t > now), s.inflight)
            })
            .collect();
        eligible.sort();
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
                .filter(|(_, _, load)| *load < limits.per_peer_inflight)
                .min_by_key(|(_, slow, load)| (*slow, *load))
            else {
                break;
            };
            pick.2 += 1;
            let peer = pick.0;
            let request = *next_request;
            *next_request += 1;
            self.ask(peer, i, request, limits, now, out);
        }
    }

    fn ask(
        &mut self,
        peer: PeerId,
        i: usize,
        request: u64,
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
        self.sources.entry(peer).or_default().inflight += 1;
        self.asked.insert(
            request,
            Asked {
                peer,
                span: i,
                after: span.after,
                max_records,
                deadline: now + limits.batch_timeout,
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
            next,
            &records,
        ) {
            self.release(asked.span, request);
            return Err(Misbehaviour::BadBatch);
        }
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
    /// passed over for `slow_penalty`. Returns how many stalled.
    pub(crate) fn handle_timeout(&mut self, now: Instant, slow_penalty: Duration) -> u64 {
        let expired: Vec<u64> = self
            .asked
            .iter()
            .filter(|(_, a)| now >= a.deadline)
            .map(|(id, _)| *id)
            .collect();
        let stalls = expired.len() as u64;
        for request in expired {
            let Some(asked) = self.asked.remove(&request) else {
                continue;
            };
            tracing::debug!(
                "span {} stalled at peer {}; asking another",
                asked.span,
                asked.peer.0
            );
            let source = self.sources.entry(asked.peer).or_default();
            source.inflight = source.inflight.saturating_sub(1);
            source.slow_until = Some(now + slow_penalty);
            self.release(asked.span, request);
        }
        stalls
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
        let mut out = Vec::with_capacity(PROGRESS_MAGIC.len() + SPANS * (1 + KEY_HASH_LEN));
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
                0 => Span {
                    after: span_start(i),
                    done: false,
                    request: None,
                },
                1 => {
                    // A cursor outside its span is not ours.
                    if span_of(&cursor) != i {
                        return None;
                    }
                    Span {
                        after: Some(cursor),
                        done: false,
                        request: None,
                    }
                }
                2 => Span {
                    after: None,
                    done: true,
                    request: None,
                },
                _ => return None,
            };
            spans.push(span);
        }
        Some(Catchup::with_spans(spans))
    }
}

/// Whether a RANGE answer keeps to its request: at most `max_records`,
/// strictly increasing key hashes after `after` and up to `end`, and a
/// cursor that moves forward.
pub(crate) fn range_ok(
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
