//! The storage interface under the store: named tables of ordered byte keys,
//! read and written in transactions.
//!
//! The store's logic (latest wins, ties, the digest set, the losers ring)
//! lives above this interface, so every backend behaves the same: a backend
//! only has to provide atomic write transactions and consistent reads.

use std::ops::Bound;

use crate::error::Error;

/// The tables of a store. Keys are ordered bytewise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// author ‖ key → version ‖ kind ‖ expiry ‖ signature ‖ value.
    Records,
    /// key hash → version ‖ content hash ‖ author ‖ key: the digest set.
    Digests,
    /// digest → sequence number: the remembered tie losers.
    Losers,
    /// sequence number → digest: the losers in the order they were added.
    LoserOrder,
    /// name → value: the format version and counters.
    Meta,
    /// expiry (u64 BE) ‖ author ‖ key → nothing: the records that expire,
    /// soonest first.
    Expiry,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 6] = [
        Table::Records,
        Table::Digests,
        Table::Losers,
        Table::LoserOrder,
        Table::Meta,
        Table::Expiry,
    ];

    /// The table's name, as LMDB's named database.
    pub fn name(self) -> &'static str {
        match self {
            Table::Records => "records",
            Table::Digests => "digests",
            Table::Losers => "losers",
            Table::LoserOrder => "loser_order",
            Table::Meta => "meta",
            Table::Expiry => "expiry",
        }
    }

    /// The table's position in [`Table::ALL`].
    pub fn index(self) -> usize {
        match self {
            Table::Records => 0,
            Table::Digests => 1,
            Table::Losers => 2,
            Table::LoserOrder => 3,
            Table::Meta => 4,
            Table::Expiry => 5,
        }
    }
}

/// Reads inside a transaction: every read sees the same state.
pub trait ReadTxn {
    /// The value under `key`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, Error>;

    /// Visits entries in key order from `start` on, until `visit` returns
    /// false or the table ends.
    fn range(
        &self,
        table: Table,
        start: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), Error>;

    /// How many entries the table holds.
    fn count(&self, table: Table) -> Result<u64, Error>;
}

/// Reads and writes inside a write transaction.
pub trait WriteTxn: ReadTxn {
    /// Sets the value under `key`.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Error>;

    /// Removes `key`; whether it was there.
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool, Error>;
}

/// A read closure: runs inside one read transaction.
pub type ReadFn<'a> = dyn FnMut(&dyn ReadTxn) -> Result<(), Error> + 'a;

/// A write closure: runs inside one write transaction, possibly more than
/// once.
pub type WriteFn<'a> = dyn FnMut(&mut dyn WriteTxn) -> Result<(), Error> + 'a;

/// Where a store keeps its tables.
///
/// Implementations: [`LmdbBackend`](crate::LmdbBackend) on disk and
/// [`MemoryBackend`](crate::MemoryBackend) in memory.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Runs `f` in a read transaction.
    fn read(&self, f: &mut ReadFn<'_>) -> Result<(), Error>;

    /// Runs `f` in a write transaction and commits it when `f` returns `Ok`;
    /// when `f` fails nothing it wrote stays. Write transactions do not
    /// overlap.
    ///
    /// `f` may run more than once (a backend may abort, make room and retry):
    /// only the last run is committed, so `f` must reset whatever it collects
    /// outside the transaction when it starts.
    fn write(&self, f: &mut WriteFn<'_>) -> Result<(), Error>;

    /// Bytes the backend uses for the tables.
    fn size_bytes(&self) -> Result<u64, Error>;

    /// Makes every committed write durable, for backends that defer it.
    fn flush(&self) -> Result<(), Error>;
}
