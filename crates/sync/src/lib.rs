//! Keeping record stores in step between peers.
//!
//! The sync layer sits on the node's gossip and upper-layer messages and
//! asks a [`Store`](strata_store::Store) for its work:
//!
//! - **Push**: a record the local user puts is signed, stored and
//!   published by gossip ([`wire::gossip_payload`]); a gossiped record is
//!   checked by the store before its verdict lets the node pass it on.
//! - **Reconciliation** ([`riblt`]): every node keeps a sketch of the first
//!   [`Config::sketch_len`] coded symbols of its digest set, under a key
//!   that changes every epoch, up to date with each write. On connect and
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
//! [`Syncer`] is the sans-io state machine; it asks for store work as
//! [`Op`]s ([`ops`]), which a driver runs with [`Op::run`]. [`runtime`]
//! (feature `runtime`, on by default) runs it over `strata_node::driver`;
//! `sim` (feature `sim`) over the node's in-memory harness. Messages,
//! limits and the state machine are documented in `docs/sync.md`; receipts
//! in `docs/rfc/e2e-reliability.md`.
//!
//! Invariants:
//! - [`Syncer`] is sans-io: no store, socket, task, thread, file or clock
//!   read; time comes in as `Instant` arguments, randomness from a seed,
//!   store results as [`Done`] values. Built with `--no-default-features`,
//!   the crate has no tokio in its dependency tree.
//! - Nothing is stored whose signature has not been verified, and nothing
//!   is verified twice: the store's check makes `Verified` records, the
//!   only kind its write takes.
//! - The sketch equals the sketch of the store's digest set: every write is
//!   an op of the write lane, whose results come back in order and are
//!   applied as they come; a sketch built by the store already holds every
//!   write before it.
//! - A catch-up cursor is saved only after the store committed the records
//!   before it, so a crash loses at most the batches in flight.
//! - Everything a peer can make us hold is bounded by a named constant:
//!   symbols per message and per session, digests and records per batch,
//!   requests in flight, fetch queues, served sessions and reads, receipts
//!   queued and tracked.
//! - Hostile input is a typed error, reported to the node's scoring as a
//!   [`Misbehaviour`], never a panic or unbounded work; the hashes of
//!   [`riblt`] are stable across platforms and releases (they are a wire
//!   format).
//! - No arithmetic can overflow: the crate denies
//!   `clippy::arithmetic_side_effects`, so counts saturate, deadlines go
//!   through [`strata_node::later`] and the few exceptions state their bound.
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

mod budget;
pub mod catchup;
mod fetch;
mod machine;
pub mod ops;
pub mod receipt;
mod recon;
pub mod riblt;
mod score;
mod serve;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use fetch::{FETCH_INFLIGHT, MAX_FETCH_QUEUE};
pub use machine::{
    Config, DEFAULT_RELAY_BUSY_SHARE, DEFAULT_SERVE_RATE, DEFAULT_SERVE_TOTAL_RATE, EPOCH_SECS,
    Event, LATE_ANSWERS, MAX_CHECK_RECORDS, MAX_COLLECT_RECORDS, MAX_GOSSIP_WAITING,
    MAX_WRITE_RECORDS, Output, PAYLOAD_INTERVAL, Put, PutId, RELAY_LINGER, SERVE_BATCH_BYTES,
    SKETCH_LEN, Stats, Summary, Syncer, epoch_key, key_set,
};
pub use ops::{Done, Lane, Op, OpId};
pub use receipt::{DeliveryStatus, NodeKey};
pub use recon::{MAX_SERVING, MIN_FIRST_SYMBOLS, SERVE_TIMEOUT};
pub use score::Misbehaviour;
pub use serve::{MAX_SERVE, MAX_SERVE_PER_PEER, SERVE_QUEUE_PER_PEER};

/// The crates this one builds on, for callers that need their types.
pub use ed25519_dalek;
pub use strata_node;
pub use strata_store;
