//! Errors: of the store, of building a record, of decoding one, and the
//! reasons a record is refused.

use std::io;
use std::path::PathBuf;

/// Why an operation on the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's directory is locked by another open store.
    #[error("another process has the store at {} open (its LOCK file is held)", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The store was written in another format.
    #[error("the store has format version {found}; this build reads version {expected}")]
    Format {
        /// The format version found in the store.
        found: u32,
        /// The format version this build reads and writes.
        expected: u32,
    },
    /// The stored data does not follow the format.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    /// The map reached [`MAX_MAP_SIZE`](crate::MAX_MAP_SIZE) and cannot grow.
    #[error("the store is full: its map cannot grow past {max} bytes")]
    Full {
        /// The largest map size.
        max: u64,
    },
    /// The backend failed.
    #[error("the storage backend failed to {op}: {message}")]
    Backend {
        /// What was being done.
        op: &'static str,
        /// The backend's description of the failure.
        message: String,
    },
    /// The configuration is out of range.
    #[error("invalid store configuration: {0}")]
    Config(&'static str),
    /// A record to sign could not be built.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The stored version is the highest there is: no later version can be
    /// signed.
    #[error("the stored version is the highest possible; no later version can be written")]
    VersionExhausted,
    /// A tombstone at the next version was asked for a key with nothing
    /// stored under it.
    #[error("nothing is stored under this key to delete")]
    NothingToDelete,
}

/// Why a record could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The key is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    #[error("key is {len} bytes, more than {} allowed", crate::MAX_KEY_LEN)]
    KeyTooLong {
        /// The key's length.
        len: usize,
    },
    /// The value is longer than the limit.
    #[error("value is {len} bytes, more than {max} allowed")]
    ValueTooLong {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A tombstone carries no value.
    #[error("a tombstone has no value")]
    TombstoneWithValue,
    /// A tombstone must expire, or it would never be collected.
    #[error("a tombstone must expire")]
    TombstoneNeverExpires,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end inside a field.
    #[error("record truncated in its {field}: {needed} bytes needed, {remaining} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// The bytes do not start with the domain tag.
    #[error("not a record: the domain tag is not \"strata-record-v2\"")]
    BadTag,
    /// The kind byte is neither a value (0) nor a tombstone (1).
    #[error("record kind {kind} is unknown")]
    BadKind {
        /// The byte read.
        kind: u8,
    },
    /// A tombstone with a value, or one that never expires.
    #[error("a tombstone with a value or without an expiry")]
    BadTombstone,
    /// The key length is over [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    #[error("key length {len} is over the limit of {}", crate::MAX_KEY_LEN)]
    KeyTooLong {
        /// The key length read.
        len: usize,
    },
    /// The value length is over the decoder's limit.
    #[error("value length {len} is over the limit of {max}")]
    ValueTooLong {
        /// The value length read.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes follow the record.
    #[error("{extra} bytes follow the record")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// Why a record was refused by the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// The value is longer than the store's
    /// [`max_value_len`](crate::Config::max_value_len).
    #[error("value is {len} bytes, more than the store's limit of {max}")]
    ValueTooLong {
        /// The value's length.
        len: usize,
        /// The store's limit.
        max: usize,
    },
    /// The author is not a usable Ed25519 public key (not a curve point, or
    /// of small order).
    #[error("author is not a valid Ed25519 public key")]
    BadAuthor,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Another stored (author, key) has the same key hash.
    #[error("key hash collides with another stored key")]
    KeyHashCollision,
    /// Storing it would take its author over a quota of the store
    /// ([`max_records_per_author`](crate::Config::max_records_per_author)
    /// or [`max_bytes_per_author`](crate::Config::max_bytes_per_author)).
    #[error("the author's {what} would go over this store's quota of {max}")]
    OverQuota {
        /// `"records"` or `"bytes"`.
        what: &'static str,
        /// The quota.
        max: u64,
    },
}
