//! Records: the canonical encoding, signing, ids, and the wire codec.
//!
//! The wire encoding of a record is its canonical encoding (the signed bytes)
//! followed by the 64-byte signature:
//!
//! ```text
//! tag "strata-record-v2" (16) | author (32) | kind u8 | expires u64 BE
//!   | key len u16 BE | key | version u64 BE | value len u32 BE | value
//!   | signature (64)
//! ```
//!
//! A record is a value ([`Kind::Value`]) or a tombstone ([`Kind::Tombstone`]:
//! no value, the author's deletion of the key). `expires` is a Unix time in
//! seconds after which every node drops the record (0: never); a tombstone
//! always expires.
//!
//! The record id is BLAKE2b-256 of the whole wire encoding, signature
//! included.

use std::fmt;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::digest::{Digest, KeyHash};
use crate::error::{DecodeError, Invalid, RecordError};
use crate::{AUTHOR_LEN, MAX_VALUE_LEN};

/// The domain-separation tag every canonical encoding starts with.
pub const DOMAIN_TAG: &[u8; 16] = b"strata-record-v2";

/// Length of a signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// The longest key a record may have, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Bytes of a wire encoding besides the key and the value: tag, author,
/// kind, expiry, key length, version, value length, signature.
pub const RECORD_OVERHEAD: usize = 16 + AUTHOR_LEN + 1 + 8 + 2 + 8 + 4 + SIGNATURE_LEN;

/// What a record says of its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The key holds the record's value.
    #[default]
    Value,
    /// The author deleted the key: the record has no value, wins over older
    /// versions like any record, and always expires.
    Tombstone,
}

impl Kind {
    /// The kind's byte in the encoding.
    pub fn as_byte(self) -> u8 {
        match self {
            Kind::Value => 0,
            Kind::Tombstone => 1,
        }
    }

    /// The kind with this byte, if any.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            0 => Some(Kind::Value),
            1 => Some(Kind::Tombstone),
            _ => None,
        }
    }
}

type Blake2b256 = Blake2b<U32>;

/// A record's id: BLAKE2b-256 of its wire encoding, signature included.
///
/// Ids order ties: of two records with the same author, key and version, the
/// one with the smaller id wins.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 32]);

impl RecordId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A signed, versioned value under an author's key.
///
/// A `Record` is well-formed (key and value within limits) but not
/// necessarily authentic: [`Record::verify`] checks the signature, and the
/// [`Store`](crate::Store) checks it before storing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Record {
    author: [u8; AUTHOR_LEN],
    kind: Kind,
    expires: u64,
    key: Vec<u8>,
    version: u64,
    value: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
    id: RecordId,
}

impl Record {
    /// Signs `value` under `key` and `version` with the author's key: a
    /// value that never expires.
    ///
    /// Fails when the key is longer than [`MAX_KEY_LEN`] or the value longer
    /// than [`MAX_VALUE_LEN`].
    pub fn sign(
        signing_key: &SigningKey,
        key: &[u8],
        version: u64,
        value: &[u8],
    ) -> Result<Record, RecordError> {
        Record::sign_as(signing_key, Kind::Value, 0, key, version, value)
    }

    /// Signs a record of any kind, expiring at `expires` (Unix seconds; 0:
    /// never).
    ///
    /// Fails when the key is longer than [`MAX_KEY_LEN`], the value longer
    /// than [`MAX_VALUE_LEN`], or a tombstone has a value or never expires.
    pub fn sign_as(
        signing_key: &SigningKey,
        kind: Kind,
        expires: u64,
        key: &[u8],
        version: u64,
        value: &[u8],
    ) -> Result<Record, RecordError> {
        check_shape(kind, expires, key.len(), value.len())?;
        let author = signing_key.verifying_key().to_bytes();
        let head = Head {
            author,
            kind,
            expires,
        };
        let message = canonical(&head, key, version, value);
        let signature = signing_key.sign(&message).to_bytes();
        Ok(Record::assemble(
            head,
            key.to_vec(),
            version,
            value.to_vec(),
            signature,
        ))
    }

    /// Builds a value that never expires from its fields, without checking
    /// the signature.
    ///
    /// Fails when the key is longer than [`MAX_KEY_LEN`] or the value longer
    /// than [`MAX_VALUE_LEN`].
    pub fn from_parts(
        author: [u8; AUTHOR_LEN],
        key: Vec<u8>,
        version: u64,
        value: Vec<u8>,
        signature: [u8; SIGNATURE_LEN],
    ) -> Result<Record, RecordError> {
        check_shape(Kind::Value, 0, key.len(), value.len())?;
        let head = Head {
            author,
            kind: Kind::Value,
            expires: 0,
        };
        Ok(Record::assemble(head, key, version, value, signature))
    }

    /// Builds a record whose shape is known to be valid.
    pub(crate) fn assemble(
        head: Head,
        key: Vec<u8>,
        version: u64,
        value: Vec<u8>,
        signature: [u8; SIGNATURE_LEN],
    ) -> Record {
        let id = compute_id(&head, &key, version, &value, &signature);
        Record {
            author: head.author,
            kind: head.kind,
            expires: head.expires,
            key,
            version,
            value,
            signature,
            id,
        }
    }

    /// The author: an Ed25519 public key.
    pub fn author(&self) -> &[u8; AUTHOR_LEN] {
        &self.author
    }

    /// A value or a tombstone.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether this is a tombstone: the author deleted the key.
    pub fn is_tombstone(&self) -> bool {
        self.kind == Kind::Tombstone
    }

    /// When every node drops it, in Unix seconds; 0 for never.
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// Whether it has expired at `unix` (seconds): it expires and its time
    /// is not after `unix`.
    pub fn is_expired(&self, unix: u64) -> bool {
        self.expires != 0 && self.expires <= unix
    }

    pub(crate) fn head(&self) -> Head {
        Head {
            author: self.author,
            kind: self.kind,
            expires: self.expires,
        }
    }

    /// The key, at most [`MAX_KEY_LEN`] bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The signature over [`Record::canonical_bytes`].
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The record id: BLAKE2b-256 of the wire encoding, signature included.
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The key hash of (author, key).
    pub fn key_hash(&self) -> KeyHash {
        KeyHash::of(&self.author, &self.key)
    }

    /// The digest: key hash, version, and the first 16 bytes of the id.
    pub fn digest(&self) -> Digest {
        let mut content = [0u8; 16];
        content.copy_from_slice(&self.id.0[..16]);
        Digest::new(self.key_hash(), self.version, content)
    }

    /// The canonical encoding: the bytes the signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical(&self.head(), &self.key, self.version, &self.value)
    }

    /// Checks the signature (strict Ed25519: small-order keys and
    /// non-canonical signatures are refused).
    pub fn verify(&self) -> Result<(), Invalid> {
        let key = self.verifying_key()?;
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.canonical_bytes(), &signature)
            .map_err(|_| Invalid::BadSignature)
    }

    /// The author as a verifying key, refusing points that are not on the
    /// curve and small-order (weak) keys.
    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, Invalid> {
        let key = VerifyingKey::from_bytes(&self.author).map_err(|_| Invalid::BadAuthor)?;
        if key.is_weak() {
            return Err(Invalid::BadAuthor);
        }
        Ok(key)
    }

    /// Length of the wire encoding, in bytes.
    pub fn encoded_len(&self) -> usize {
        // Both lengths are checked against their limits when a record is
        // made: the sum does not saturate.
        RECORD_OVERHEAD
            .saturating_add(self.key.len())
            .saturating_add(self.value.len())
    }

    /// The wire encoding: the canonical encoding followed by the signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the wire encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        write_canonical(out, &self.head(), &self.key, self.version, &self.value);
        out.extend_from_slice(&self.signature);
    }

    /// Decodes exactly one record that fills `bytes`, with values up to
    /// `max_value_len` bytes (never more than [`MAX_VALUE_LEN`]).
    ///
    /// The signature is not checked.
    pub fn from_bytes(bytes: &[u8], max_value_len: usize) -> Result<Record, DecodeError> {
        let (record, used) = Record::decode(bytes, max_value_len)?;
        if used != bytes.len() {
            return Err(DecodeError::TrailingBytes {
                extra: bytes.len().saturating_sub(used),
            });
        }
        Ok(record)
    }

    /// Decodes one record from the front of `bytes` and returns it with the
    /// number of bytes it took, so records can be read one after another.
    ///
    /// Every length is checked against its limit and against the bytes that
    /// remain before anything is allocated. The signature is not checked.
    pub fn decode(bytes: &[u8], max_value_len: usize) -> Result<(Record, usize), DecodeError> {
        let max_value_len = max_value_len.min(MAX_VALUE_LEN);
        let mut r = Reader { bytes, rest: bytes };
        let tag: [u8; 16] = r.array("tag")?;
        if &tag != DOMAIN_TAG {
            return Err(DecodeError::BadTag);
        }
        let author: [u8; AUTHOR_LEN] = r.array("author")?;
        let [kind] = r.array("kind")?;
        let kind = Kind::from_byte(kind).ok_or(DecodeError::BadKind { kind })?;
        let expires = u64::from_be_bytes(r.array("expiry")?);
        let key_len = usize::from(u16::from_be_bytes(r.array("key length")?));
        if key_len > MAX_KEY_LEN {
            return Err(DecodeError::KeyTooLong { len: key_len });
        }
        let key = r.take(key_len, "key")?;
        let version = u64::from_be_bytes(r.array("version")?);
        let value_len = u32::from_be_bytes(r.array("value length")?);
        let value_len = usize::try_from(value_len).unwrap_or(usize::MAX);
        if value_len > max_value_len {
            return Err(DecodeError::ValueTooLong {
                len: value_len,
                max: max_value_len,
            });
        }
        if kind == Kind::Tombstone && (value_len != 0 || expires == 0) {
            return Err(DecodeError::BadTombstone);
        }
        let value = r.take(value_len, "value")?;
        let signature: [u8; SIGNATURE_LEN] = r.array("signature")?;
        let head = Head {
            author,
            kind,
            expires,
        };
        let record = Record::assemble(head, key.to_vec(), version, value.to_vec(), signature);
        Ok((record, r.used()))
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("author", &Hex(&self.author[..8]))
            .field("kind", &self.kind)
            .field("expires", &self.expires)
            .field("key", &Hex(&self.key[..self.key.len().min(32)]))
            .field("version", &self.version)
            .field("value_len", &self.value.len())
            .field("id", &self.id)
            .finish()
    }
}

/// Bytes shown as hex in debug output.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The fields a record signs before its key: who signed it, what it is,
/// and when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) author: [u8; AUTHOR_LEN],
    pub(crate) kind: Kind,
    pub(crate) expires: u64,
}

fn check_shape(
    kind: Kind,
    expires: u64,
    key_len: usize,
    value_len: usize,
) -> Result<(), RecordError> {
    if kind == Kind::Tombstone && value_len != 0 {
        return Err(RecordError::TombstoneWithValue);
    }
    if kind == Kind::Tombstone && expires == 0 {
        return Err(RecordError::TombstoneNeverExpires);
    }
    if key_len > MAX_KEY_LEN {
        return Err(RecordError::KeyTooLong { len: key_len });
    }
    if value_len > MAX_VALUE_LEN {
        return Err(RecordError::ValueTooLong {
            len: value_len,
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// The canonical encoding of the signed fields.
fn canonical(head: &Head, key: &[u8], version: u64, value: &[u8]) -> Vec<u8> {
    let room = (RECORD_OVERHEAD - SIGNATURE_LEN)
        .saturating_add(key.len())
        .saturating_add(value.len());
    let mut out = Vec::with_capacity(room);
    write_canonical(&mut out, head, key, version, value);
    out
}

/// Lengths fit their fields: callers have checked them against
/// [`MAX_KEY_LEN`] and [`MAX_VALUE_LEN`].
fn write_canonical(out: &mut Vec<u8>, head: &Head, key: &[u8], version: u64, value: &[u8]) {
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(&head.author);
    out.push(head.kind.as_byte());
    out.extend_from_slice(&head.expires.to_be_bytes());
    out.extend_from_slice(&len_u16(key.len()).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&len_u32(value.len()).to_be_bytes());
    out.extend_from_slice(value);
}

/// The id, hashed from the fields without building the encoding.
pub(crate) fn compute_id(
    head: &Head,
    key: &[u8],
    version: u64,
    value: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> RecordId {
    let mut h = Blake2b256::new();
    h.update(DOMAIN_TAG);
    h.update(head.author);
    h.update([head.kind.as_byte()]);
    h.update(head.expires.to_be_bytes());
    h.update(len_u16(key.len()).to_be_bytes());
    h.update(key);
    h.update(version.to_be_bytes());
    h.update(len_u32(value.len()).to_be_bytes());
    h.update(value);
    h.update(signature);
    RecordId(h.finalize().into())
}

fn len_u16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A bounds-checked reader over untrusted bytes: it splits fields off the
/// front of what is left, so no offset is computed on the way.
struct Reader<'a> {
    bytes: &'a [u8],
    /// What is not read yet, a tail of `bytes`.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let Some((out, rest)) = self.rest.split_at_checked(len) else {
            return Err(DecodeError::Truncated {
                field,
                needed: len,
                remaining: self.rest.len(),
            });
        };
        self.rest = rest;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// Bytes read so far (`rest` is a tail of `bytes`: this cannot
    /// saturate).
    fn used(&self) -> usize {
        self.bytes.len().saturating_sub(self.rest.len())
    }
}

#[cfg(test)]
mod tests;
