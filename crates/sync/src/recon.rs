//! Reconciliation: the one session this node started, the sessions it
//! serves, and which peer to reconcile with next.
//!
//! The initiator asks for the first symbols of the responder's sketch,
//! subtracts its own and decodes; it asks for more until the difference
//! decodes, then offers what it has that the responder lacks (RECON_DONE).
//! A responder serves a snapshot of its sketch taken when the session
//! began, so writes during the session do not garble the stream; the
//! snapshot is shared (copied only if the sketch changes while served).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_node::rng::Rng;
use strata_node::{Class, PeerId, later};
use strata_store::{DIGEST_LEN, Digest};

use crate::riblt::{CodedSymbol, DecodeError, Decoder, Sketch};
use crate::wire::{MAX_DONE_DIGESTS, MAX_SYMBOLS_PER_MESSAGE, Message, Outbox, SymbolStatus};

/// Fewest symbols asked for first.
pub const MIN_FIRST_SYMBOLS: usize = 64;
/// Reconciliations served at once; more are answered busy.
pub const MAX_SERVING: usize = 4;
/// How long a served reconciliation is kept without news.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(60);

struct Outgoing {
    peer: PeerId,
    session: u64,
    decoder: Decoder<DIGEST_LEN>,
    deadline: Instant,
}

struct Serving {
    session: u64,
    sketch: Arc<Sketch<DIGEST_LEN>>,
    sent: usize,
    deadline: Instant,
}

/// What a RECON_SYMBOLS message led to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Symbols {
    /// Not for our session, or more symbols were asked for.
    Continue,
    /// The difference decoded: RECON_DONE went out with what we offer.
    Decoded {
        peer: PeerId,
        /// What the peer has and we lack.
        remote_only: Vec<Digest>,
        offered: usize,
        symbols: usize,
    },
    /// The peer refused (busy, another epoch).
    Refused,
    /// The symbols are no set's: the sender misbehaves.
    Bad(PeerId),
    /// The difference is larger than the sketch can decode.
    TooLarge,
}

/// The reconciliation state of a node.
pub(crate) struct Recon {
    outgoing: Option<Outgoing>,
    serving: HashMap<PeerId, Serving>,
    queue: VecDeque<PeerId>,
    next: Instant,
}

impl Recon {
    pub(crate) fn new(now: Instant) -> Recon {
        Recon {
            outgoing: None,
            serving: HashMap::new(),
            queue: VecDeque::new(),
            next: now,
        }
    }

    /// The session we started, if one runs.
    #[cfg(test)]
    pub(crate) fn session(&self) -> Option<u64> {
        self.outgoing.as_ref().map(|o| o.session)
    }

    /// Whether a session we started runs.
    pub(crate) fn is_running(&self) -> bool {
        self.outgoing.is_some()
    }

    /// Whether a reconciliation is due.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Reconcile with `peer` (or anyone, for `None`) as soon as possible.
    pub(crate) fn soon(&mut self, peer: Option<PeerId>, now: Instant) {
        if let Some(peer) = peer
            && !self.queue.contains(&peer)
        {
            self.queue.push_back(peer);
        }
        self.next = self.next.min(now);
    }

    /// The next reconciliation after `interval`, jittered by ±25 %.
    pub(crate) fn reschedule(&mut self, interval: Duration, rng: &mut Rng, now: Instant) {
        let jitter = interval.mul_f64(0.5 * rng.unit());
        self.next = later(now, interval.mul_f64(0.75).saturating_add(jitter));
    }

    /// Whom to reconcile with: a queued peer that is still `eligible`, else
    /// a random one of `eligible`.
    pub(crate) fn pick(&mut self, eligible: &[PeerId], rng: &mut Rng) -> Option<PeerId> {
        while let Some(peer) = self.queue.pop_front() {
            if eligible.contains(&peer) {
                return Some(peer);
            }
        }
        if eligible.is_empty() {
            return None;
        }
        Some(eligible[rng.index(eligible.len())])
    }

    /// Starts a session with `peer`, asking first for about twice the
    /// difference in record counts.
    #[allow(clippy::too_many_arguments)] // each is a distinct input
    pub(crate) fn start(
        &mut self,
        peer: PeerId,
        sketch: &Sketch<DIGEST_LEN>,
        epoch: u64,
        gap: u64,
        timeout: Duration,
        rng: &mut Rng,
        now: Instant,
        out: &mut Outbox,
    ) {
        let gap = usize::try_from(gap).unwrap_or(usize::MAX);
        let first = gap
            .saturating_mul(2)
            .saturating_add(MIN_FIRST_SYMBOLS)
            .min(MAX_SYMBOLS_PER_MESSAGE);
        let session = rng.next_u64();
        self.outgoing = Some(Outgoing {
            peer,
            session,
            decoder: Decoder::with_sketch(sketch.clone()),
            deadline: later(now, timeout),
        });
        let message = Message::ReconRequest {
            session,
            epoch,
            first: u32::try_from(first).unwrap_or(u32::MAX),
        };
        out.push(peer, message, Class::Relay);
    }

    /// A RECON_REQUEST. `refuse` says why we will not serve, if we will
    /// not (our sketch is under another epoch, or we are busy otherwise).
    #[allow(clippy::too_many_arguments)] // each is a distinct input
    pub(crate) fn on_request(
        &mut self,
        peer: PeerId,
        session: u64,
        first: u32,
        sketch: &Arc<Sketch<DIGEST_LEN>>,
        refuse: Option<SymbolStatus>,
        now: Instant,
        out: &mut Outbox,
    ) {
        let busy = self.serving.len() >= MAX_SERVING && !self.serving.contains_key(&peer);
        let refuse = refuse.or(busy.then_some(SymbolStatus::Busy));
        if let Some(status) = refuse {
            let message = Message::ReconSymbols {
                session,
                status,
                symbols: Vec::new(),
            };
            out.push(peer, message, Class::Relay);
            return;
        }
        self.serving.insert(
            peer,
            Serving {
                session,
                sketch: sketch.clone(),
                sent: 0,
                deadline: later(now, SERVE_TIMEOUT),
            },
        );
        self.send_symbols(peer, first, now, out);
    }

    fn send_symbols(&mut self, peer: PeerId, want: u32, now: Instant, out: &mut Outbox) {
        let Some(serving) = self.serving.get_mut(&peer) else {
            return;
        };
        let len = serving.sketch.len();
        let want = usize::try_from(want)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_SYMBOLS_PER_MESSAGE);
        let start = serving.sent.min(len);
        let end = start.saturating_add(want).min(len);
        let symbols = serving.sketch.symbols()[start..end].to_vec();
        serving.sent = end;
        serving.deadline = later(now, SERVE_TIMEOUT);
        let status = if end >= len {
            SymbolStatus::End
        } else {
            SymbolStatus::More
        };
        let message = Message::ReconSymbols {
            session: serving.session,
            status,
            symbols,
        };
        out.push(peer, message, Class::Bulk);
    }

    /// A RECON_MORE for a session we serve.
    pub(crate) fn on_more(
        &mut self,
        peer: PeerId,
        session: u64,
        want: u32,
        now: Instant,
        out: &mut Outbox,
    ) {
        if self
            .serving
            .get(&peer)
            .is_some_and(|s| s.session == session)
        {
            self.send_symbols(peer, want, now, out);
        }
    }

    /// A RECON_DONE: whether it ends a session we serve (and the digests
    /// it offers are worth looking at).
    pub(crate) fn on_done(&mut self, peer: PeerId, session: u64) -> bool {
        if self.serving.get(&peer).is_none_or(|s| s.session != session) {
            return false;
        }
        self.serving.remove(&peer);
        true
    }

    /// RECON_SYMBOLS for the session we started.
    #[allow(clippy::too_many_arguments)] // each is a distinct input
    pub(crate) fn on_symbols(
        &mut self,
        peer: PeerId,
        session: u64,
        status: SymbolStatus,
        symbols: &[CodedSymbol<DIGEST_LEN>],
        timeout: Duration,
        now: Instant,
        out: &mut Outbox,
    ) -> Symbols {
        let Some(outgoing) = self.outgoing.as_mut() else {
            return Symbols::Continue;
        };
        if outgoing.peer != peer || outgoing.session != session {
            return Symbols::Continue;
        }
        if matches!(status, SymbolStatus::WrongEpoch | SymbolStatus::Busy) {
            self.outgoing = None;
            return Symbols::Refused;
        }
        outgoing.deadline = later(now, timeout);
        match outgoing.decoder.receive_batch(symbols) {
            Ok(()) => {}
            Err(DecodeError::Inconsistent) => {
                self.outgoing = None;
                return Symbols::Bad(peer);
            }
            Err(_) => {
                // More symbols than the sketch holds: too large a
                // difference to reconcile.
                self.outgoing = None;
                return Symbols::TooLarge;
            }
        }
        if outgoing.decoder.is_decoded() {
            return self.finish(out);
        }
        if status == SymbolStatus::End || symbols.is_empty() {
            self.outgoing = None;
            return Symbols::TooLarge;
        }
        let received = outgoing.decoder.symbols_received();
        let want = received.clamp(MIN_FIRST_SYMBOLS, MAX_SYMBOLS_PER_MESSAGE);
        let message = Message::ReconMore {
            session,
            want: u32::try_from(want).unwrap_or(u32::MAX),
        };
        out.push(peer, message, Class::Relay);
        Symbols::Continue
    }

    fn finish(&mut self, out: &mut Outbox) -> Symbols {
        let Some(outgoing) = self.outgoing.take() else {
            return Symbols::Continue;
        };
        let peer = outgoing.peer;
        let symbols = outgoing.decoder.symbols_received();
        let (remote_only, local_only) = outgoing.decoder.into_difference();
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
        out.push(peer, message, Class::Relay);
        Symbols::Decoded {
            peer,
            remote_only: remote_only.into_iter().map(Digest).collect(),
            offered: count,
            symbols,
        }
    }

    /// A peer left; whether the session we started went with it.
    pub(crate) fn peer_gone(&mut self, peer: PeerId) -> bool {
        self.serving.remove(&peer);
        self.queue.retain(|p| *p != peer);
        if self.outgoing.as_ref().is_some_and(|o| o.peer == peer) {
            self.outgoing = None;
            return true;
        }
        false
    }

    /// Drops every session (the sketch changed its epoch).
    pub(crate) fn reset(&mut self) -> bool {
        self.serving.clear();
        self.outgoing.take().is_some()
    }

    /// Ends sessions past their deadline; whether ours was one.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        self.serving.retain(|_, s| now < s.deadline);
        if self.outgoing.as_ref().is_some_and(|o| now >= o.deadline) {
            self.outgoing = None;
            return true;
        }
        false
    }

    /// When a session times out next, and (when there is anyone to
    /// reconcile with) when the next reconciliation is due.
    pub(crate) fn poll_timeout(&self, anyone: bool) -> Option<Instant> {
        [
            anyone.then_some(self.next),
            self.outgoing.as_ref().map(|o| o.deadline),
            self.serving.values().map(|s| s.deadline).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
