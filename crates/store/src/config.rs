//! The store's settings, and when writes are durable.

use crate::error::Error;
use crate::{
    DEFAULT_MAP_SIZE, DEFAULT_MAX_BYTES_PER_AUTHOR, DEFAULT_MAX_LOSERS,
    DEFAULT_MAX_RECORDS_PER_AUTHOR, DEFAULT_MAX_VALUE_LEN, MAX_VALUE_LEN, MIN_MAP_SIZE,
};

/// When a write is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is flushed to disk before the write returns.
    #[default]
    Sync,
    /// Commits are not flushed (LMDB's `MDB_NOSYNC`): a crash of the
    /// machine may lose the last writes, though a crash of the process does
    /// not; [`Store::flush`](crate::Store::flush) flushes, and closing the store does.
    NoSync,
}

/// Settings of a [`Store`](crate::Store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest value the store accepts, in bytes; at most
    /// [`MAX_VALUE_LEN`]. Larger records are [`Invalid::ValueTooLong`](crate::Invalid::ValueTooLong).
    pub max_value_len: usize,
    /// When writes reach the disk.
    pub durability: Durability,
    /// Size of a new LMDB map, in bytes, at least [`MIN_MAP_SIZE`]; the map
    /// doubles when full.
    pub initial_map_size: usize,
    /// Tie losers remembered; the oldest are forgotten first. Zero
    /// remembers none.
    pub max_losers: usize,
    /// Records one author may have stored; a record over it is
    /// [`Invalid::OverQuota`](crate::Invalid::OverQuota), neither stored
    /// nor passed on.
    pub max_records_per_author: u64,
    /// Bytes one author's records may take as stored (keys, versions,
    /// signatures, values); over it likewise.
    pub max_bytes_per_author: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            durability: Durability::Sync,
            initial_map_size: DEFAULT_MAP_SIZE,
            max_losers: DEFAULT_MAX_LOSERS,
            max_records_per_author: DEFAULT_MAX_RECORDS_PER_AUTHOR,
            max_bytes_per_author: DEFAULT_MAX_BYTES_PER_AUTHOR,
        }
    }
}

impl Config {
    /// Checks every setting against its bounds.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_value_len > MAX_VALUE_LEN {
            return Err(Error::Config("max_value_len is over MAX_VALUE_LEN"));
        }
        if self.initial_map_size < MIN_MAP_SIZE {
            return Err(Error::Config("initial_map_size is under MIN_MAP_SIZE"));
        }
        Ok(())
    }
}
