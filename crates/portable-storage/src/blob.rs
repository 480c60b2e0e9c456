//! Byte blobs as strings, for `#[serde(with = "strata_portable_storage::blob")]`.
//!
//! serde writes `Vec<u8>` and `&[u8]` as sequences, which this format would
//! encode as arrays of `u8`; Monero puts blobs in strings. This module writes
//! them as strings and reads them back without copying where the type allows:
//!
//! | field type | decoded from a slice | decoded from `Bytes` |
//! |---|---|---|
//! | `&'de [u8]` | borrowed | borrowed |
//! | [`Bytes`] | copied | a view of the input |
//! | `Vec<u8>` | copied | copied |
//!
//! `Option` of each works too (pair it with `#[serde(default)]`). Fixed-size
//! arrays such as `[u8; 32]` need no attribute: they travel as strings of
//! their length.
//!
//! The same attribute serves the [`Encode`](crate::Encode) and
//! [`Decode`](crate::Decode) derives, through [`encode`], [`encoded_len`],
//! [`type_byte`], [`is_absent`] and [`decode`].

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

use crate::decode::ValueReader;
use crate::stash::{self, BYTES_TOKEN};
use crate::{Value, tag};

/// Writes a blob as a string.
pub fn serialize<T: AsBlob + ?Sized, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    value.serialize_blob(s)
}

/// Reads a blob from a string.
pub fn deserialize<'de, T: FromBlob<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    T::deserialize_blob(d)
}

/// Reads a blob from a string, for the [`Decode`](crate::Decode) derive: the
/// same as [`deserialize`], over this crate's deserializer.
pub fn decode<'de, T: FromBlob<'de>>(value: ValueReader<'_, 'de>) -> crate::Result<T> {
    T::deserialize_blob(value.deserializer())
}

/// The type byte of a blob, for the [`Encode`](crate::Encode) derive.
pub fn type_byte<T: AsBlob + ?Sized>(_value: &T) -> u8 {
    tag::STRING
}

/// Whether the blob is left out (`None`), for the [`Encode`](crate::Encode)
/// derive.
pub fn is_absent<T: AsBlob + ?Sized>(value: &T) -> bool {
    value.as_blob().is_none()
}

/// The length of the blob's string, for the [`Encode`](crate::Encode) derive.
pub fn encoded_len<T: AsBlob + ?Sized>(value: &T) -> usize {
    value.as_blob().map_or(0, |blob| {
        crate::encode::count_len(blob.len()).saturating_add(blob.len())
    })
}

/// Writes the blob's string, for the [`Encode`](crate::Encode) derive: the
/// same bytes as [`serialize`].
pub fn encode<T: AsBlob + ?Sized>(value: &T, out: &mut Vec<u8>) -> crate::Result<()> {
    if let Some(blob) = value.as_blob() {
        crate::encode::write_count(out, blob.len())?;
        out.extend_from_slice(blob);
    }
    Ok(())
}

/// A type [`serialize`] can write as a string.
pub trait AsBlob {
    /// Writes `self` as a string.
    fn serialize_blob<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;

    /// The bytes of the blob; `None` for a blob that is left out.
    fn as_blob(&self) -> Option<&[u8]>;
}

impl AsBlob for [u8] {
    fn serialize_blob<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
    fn as_blob(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl AsBlob for &[u8] {
    fn serialize_blob<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
    fn as_blob(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl AsBlob for Vec<u8> {
    fn serialize_blob<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
    fn as_blob(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl AsBlob for Bytes {
    fn serialize_blob<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
    fn as_blob(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl<T: AsBlob> AsBlob for Option<T> {
    fn serialize_blob<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Some(blob) => blob.serialize_blob(s),
            None => s.serialize_none(),
        }
    }
    fn as_blob(&self) -> Option<&[u8]> {
        self.as_ref().and_then(AsBlob::as_blob)
    }
}

/// A type [`deserialize`] can read from a string.
pub trait FromBlob<'de>: Sized {
    /// Reads `Self` from a string.
    fn deserialize_blob<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Accepts a string in whichever form the deserializer offers it.
struct BlobVisitor<T>(PhantomData<T>);

/// What a blob arrived as.
enum Blob<'de> {
    Borrowed(&'de [u8]),
    Owned(Vec<u8>),
    Shared(Bytes),
}

impl<'de> Visitor<'de> for BlobVisitor<Blob<'de>> {
    type Value = Blob<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Blob<'de>, E> {
        Ok(Blob::Borrowed(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Blob<'de>, E> {
        Ok(Blob::Borrowed(v.as_bytes()))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob<'de>, E> {
        Ok(Blob::Owned(v.to_vec()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob<'de>, E> {
        Ok(Blob::Owned(v.as_bytes().to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob<'de>, E> {
        Ok(Blob::Owned(v))
    }
    /// This crate's deserializer hands `Bytes` views over here.
    fn visit_unit<E: de::Error>(self) -> Result<Blob<'de>, E> {
        match stash::take() {
            Some(Value::String(bytes)) => Ok(Blob::Shared(bytes)),
            _ => Err(E::invalid_type(de::Unexpected::Unit, &self)),
        }
    }
}

impl<'de> FromBlob<'de> for &'de [u8] {
    fn deserialize_blob<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_bytes(BlobVisitor(PhantomData))? {
            Blob::Borrowed(v) => Ok(v),
            _ => Err(de::Error::custom("expected a blob borrowed from the input")),
        }
    }
}

impl<'de> FromBlob<'de> for Vec<u8> {
    fn deserialize_blob<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match d.deserialize_byte_buf(BlobVisitor(PhantomData))? {
            Blob::Borrowed(v) => v.to_vec(),
            Blob::Owned(v) => v,
            Blob::Shared(v) => v.to_vec(),
        })
    }
}

impl<'de> FromBlob<'de> for Bytes {
    fn deserialize_blob<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(
            match d.deserialize_newtype_struct(BYTES_TOKEN, BlobVisitor(PhantomData))? {
                Blob::Borrowed(v) => Bytes::copy_from_slice(v),
                Blob::Owned(v) => Bytes::from(v),
                Blob::Shared(v) => v,
            },
        )
    }
}

impl<'de, T: FromBlob<'de>> FromBlob<'de> for Option<T> {
    fn deserialize_blob<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize_blob(d).map(Some)
    }
}
