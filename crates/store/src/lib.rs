//! Signed, versioned key-value records, kept in LMDB.
//!
//! A [`Record`] is a value that an author (an Ed25519 key) signed under a key
//! and a version. The [`Store`] keeps, for every (author, key), only the
//! record with the highest version; equal versions with different content
//! are resolved by the smaller [`RecordId`]. Beside the records it keeps the
//! set of their [`Digest`]s, the elements the sync layer reconciles, and a
//! bounded table of records that lost a tie, so they are not fetched again.
//!
//! Records arrive in batches. [`Store::check`] triages them against what is
//! stored and checks the signatures of those worth writing, in batches
//! spread over the cores; each comes back [`Verified`], known, or invalid.
//! [`Store::write`] takes only [`Verified`] records and applies them in
//! write transactions, and each gets an [`Outcome`] that says which digest
//! it added to the set and which it removed. [`Store::put_batch`] is the two
//! in a row; [`Store::put_own`] signs the local author's value with its
//! version chosen inside the write transaction. The store sits on a [`Backend`]: LMDB on disk
//! ([`LmdbBackend`], the only code that touches LMDB) or ordered maps in
//! memory ([`MemoryBackend`]). The format is specified in `docs/store.md`.
//!
//! Invariants:
//! - Nothing is stored whose signature has not been verified: the write path
//!   takes [`Verified`] records only, which nothing outside this crate can
//!   make without a check. Records that would not be stored (older than the
//!   stored version, or byte-identical to it) are not verified at all, and
//!   no record is verified twice.
//! - Per (author, key) at most one record is stored; a superseded record is
//!   deleted in the same transaction that stores its successor.
//! - The digest set always equals the digests of the stored records: a
//!   record and its digest are written, replaced and removed in one write
//!   transaction.
//! - When `put_batch` returns, its writes are on disk (unless the store was
//!   opened with [`Durability::NoSync`]).
//! - Every length read from untrusted bytes is checked against a named limit
//!   and against the bytes that remain before anything is allocated; decoding
//!   never panics.
//! - Reads run in short read transactions, one per call or page; no read
//!   transaction outlives the call that opened it.
//! - One store directory is open in at most one [`Store`] at a time, across
//!   processes ([`Error::Locked`]).
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

mod backend;
mod config;
mod digest;
mod error;
mod lmdb;
mod memory;
mod record;
mod store;
mod verify;

pub use backend::{Backend, ReadFn, ReadTxn, Table, WriteFn, WriteTxn};
pub use config::{Config, Durability};
pub use digest::{DIGEST_LEN, Digest, KEY_HASH_LEN, KeyHash};
pub use error::{DecodeError, Error, Invalid, RecordError};
pub use lmdb::LmdbBackend;
pub use memory::MemoryBackend;
pub use record::{DOMAIN_TAG, Kind, MAX_KEY_LEN, RECORD_OVERHEAD, Record, RecordId, SIGNATURE_LEN};
pub use store::{
    Checked, Collected, Collection, Cursor, DigestPage, Draft, FORMAT_VERSION, Integrity, Outcome,
    Page, Presence, Store,
};

/// How long a tombstone is kept by default before every node collects it
/// (7 days): a node that was away longer may bring back what it deleted.
pub const DEFAULT_TOMBSTONE_HORIZON_SECS: u64 = 7 * 24 * 3600;
pub use verify::Verified;

/// Length of an author (an Ed25519 public key), in bytes.
pub const AUTHOR_LEN: usize = 32;

/// The default largest value a store accepts, in bytes (64 KiB).
pub const DEFAULT_MAX_VALUE_LEN: usize = 64 * 1024;

/// The largest value any record may carry, in bytes (16 MiB): the ceiling of
/// [`Config::max_value_len`] and of every decoder limit.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

/// Most records one page of [`Store::scan`] or [`Store::list`] returns.
pub const MAX_PAGE_RECORDS: usize = 4096;

/// Most value bytes one page of [`Store::scan`] or [`Store::list`] carries; a
/// page always holds at least one record.
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Most digests one page of [`Store::scan_digests`] returns.
pub const MAX_PAGE_DIGESTS: usize = 65_536;

/// Most records applied in one write transaction; [`Store::put_batch`] cuts
/// larger batches into transactions of at most this many.
pub const MAX_TXN_RECORDS: usize = 1024;

/// Most encoded bytes applied in one write transaction (32 MiB); a single
/// larger record still gets a transaction of its own.
pub const MAX_TXN_BYTES: usize = 32 * 1024 * 1024;

/// The default number of tie losers remembered ([`Config::max_losers`]).
pub const DEFAULT_MAX_LOSERS: usize = 65_536;
/// Records one author may have in a store by default: 2^20.
pub const DEFAULT_MAX_RECORDS_PER_AUTHOR: u64 = 1 << 20;
/// Bytes one author's records may take in a store by default (their keys,
/// versions, signatures and values as stored): 1 GiB.
pub const DEFAULT_MAX_BYTES_PER_AUTHOR: u64 = 1 << 30;

/// The default size of a new LMDB map, in bytes (64 MiB).
pub const DEFAULT_MAP_SIZE: usize = 64 * 1024 * 1024;

/// The smallest map size a store may be configured with (256 KiB).
pub const MIN_MAP_SIZE: usize = 256 * 1024;

/// The largest map size the store grows to (1 TiB; the address space's half
/// on 32-bit targets).
pub const MAX_MAP_SIZE: u64 = 1 << 40;
