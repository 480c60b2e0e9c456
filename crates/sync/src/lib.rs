//! Keeping record stores in step between peers.
//!
//! The sync layer sits on the node's gossip and upper-layer messages and on
//! a [`Store`](strata_store::Store):
//!
//! - **Push**: a record the local user puts is stored and published by
//!   gossip ([`wire::gossip_payload`]); the gossip handler decodes what
//!   arrives with limits and checks the signature ([`wire::check_gossip`])
//!   before the record may propagate.
//! - **Reconciliation** ([`riblt`]): every node keeps a sketch of the first
//!   [`SKETCH_LEN`] coded symbols of its digest set, under a key that
//!   changes every epoch, up to date with each write. On connect and
//!   periodically with a random peer, one side streams its sketch and the
//!   other decodes the difference; each side fetches what it lacks and the
//!   store decides which version wins.
//! - **Catch-up** ([`catchup`]): a node far behind streams records by
//!   key-hash span from several peers in parallel, in bounded batches, with
//!   a cursor per span saved after every committed batch.
//! - **Receipts** ([`receipt`]): nodes confirm the gossip messages they
//!   accepted with signed receipts that travel back to the publisher, which
//!   learns who confirmed and who is missing.
//!
//! [`Sync`] is the sans-io state machine; [`runtime`] (feature `runtime`,
//! on by default) runs it over `strata_node::driver`. Messages, limits and
//! the state machine are documented in `docs/sync.md`; receipts in
//! `docs/rfc/e2e-reliability.md`.
//!
//! Invariants:
//! - [`Sync`] is sans-io: no socket, no task, no clock read; time comes in
//!   as `Instant` arguments and randomness from a seed. Built with
//!   `--no-default-features`, the crate has no tokio in its dependency
//!   tree.
//! - Nothing is stored whose signature has not been verified (the store
//!   checks), and a gossiped record propagates only after its signature was
//!   checked.
//! - The sketch equals the sketch of the store's digest set: every write
//!   goes through [`Sync`], and each outcome's removed and added digests
//!   are applied to it; it is rebuilt from the store at start and at each
//!   new epoch.
//! - A catch-up cursor is saved only after the store committed the records
//!   before it, so a crash loses at most the batches in flight.
//! - Everything a peer can make us hold is bounded by a named constant:
//!   symbols per message and per session, digests and records per batch,
//!   requests in flight, fetch queues, served sessions, receipts queued and
//!   tracked.
//! - Hostile input is a typed error, reported to the node's scoring, never
//!   a panic or unbounded work; the hashes of [`riblt`] are stable across
//!   platforms and releases (they are a wire format).
#![forbid(unsafe_code)]

pub mod catchup;
mod machine;
pub mod receipt;
pub mod riblt;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod runtime;

pub use machine::{
    Config, EPOCH_SECS, Event, FETCH_INFLIGHT, Gossiped, MAX_FETCH_QUEUE, MAX_SERVING,
    MIN_FIRST_SYMBOLS, Output, PAYLOAD_INTERVAL, Put, SCORE_BAD_BATCH, SCORE_BAD_RECEIPT,
    SCORE_BAD_SYMBOLS, SCORE_INVALID_RECORD, SCORE_UNDECODABLE, SCORE_UNSOLICITED,
    SERVE_BATCH_BYTES, SERVE_TIMEOUT, SKETCH_LEN, Stats, Summary, Sync, epoch_key, key_set,
};
pub use receipt::{DeliveryStatus, NodeKey};

/// The crates this one builds on, for callers that need their types.
pub use ed25519_dalek;
pub use strata_node;
pub use strata_store;
