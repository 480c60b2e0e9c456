//! Key hashes and digests: the fixed-size names of records that the sync
//! layer reconciles.

use std::fmt;

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest as _};

use crate::AUTHOR_LEN;

/// Length of a key hash, in bytes.
pub const KEY_HASH_LEN: usize = 16;

/// Length of a digest, in bytes.
pub const DIGEST_LEN: usize = 40;

type Blake2b128 = Blake2b<U16>;

/// BLAKE2b with a 16-byte output (the digest-length parameter is 16; not a
/// truncated BLAKE2b-512) of author ‖ key. Names one (author, key) slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub [u8; KEY_HASH_LEN]);

impl KeyHash {
    /// The key hash of (author, key).
    pub fn of(author: &[u8; AUTHOR_LEN], key: &[u8]) -> KeyHash {
        let mut h = Blake2b128::new();
        h.update(author);
        h.update(key);
        KeyHash(h.finalize().into())
    }

    /// The key hash's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_HASH_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(")?;
        hex(f, &self.0)?;
        f.write_str(")")
    }
}

/// A record's 40-byte digest: key hash (16) ‖ version, big-endian (8) ‖
/// content hash, the first 16 bytes of the record id (16).
///
/// Digests order by key hash first, so a store holds at most one digest per
/// prefix of 16 bytes, and a set of digests sorted by bytes is sorted by key
/// hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// Puts a digest together from its parts.
    pub fn new(key_hash: KeyHash, version: u64, content_hash: [u8; 16]) -> Digest {
        let mut out = [0u8; DIGEST_LEN];
        out[..16].copy_from_slice(&key_hash.0);
        out[16..24].copy_from_slice(&version.to_be_bytes());
        out[24..].copy_from_slice(&content_hash);
        Digest(out)
    }

    /// Reads a digest from exactly [`DIGEST_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Digest> {
        let bytes: [u8; DIGEST_LEN] = bytes.try_into().ok()?;
        Some(Digest(bytes))
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// The key hash: which (author, key) the record is under.
    pub fn key_hash(&self) -> KeyHash {
        let mut out = [0u8; KEY_HASH_LEN];
        out.copy_from_slice(&self.0[..16]);
        KeyHash(out)
    }

    /// The record's version.
    pub fn version(&self) -> u64 {
        let mut out = [0u8; 8];
        out.copy_from_slice(&self.0[16..24]);
        u64::from_be_bytes(out)
    }

    /// The content hash: the first 16 bytes of the record id.
    pub fn content_hash(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.0[24..]);
        out
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(")?;
        hex(f, &self.0[..16])?;
        write!(f, " v{} ", self.version())?;
        hex(f, &self.0[24..])?;
        f.write_str(")")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(f, &self.0)
    }
}

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}
