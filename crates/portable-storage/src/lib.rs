//! Monero's epee "portable storage" binary format.
//!
//! A body is a 9-byte header followed by a root *section*: a varint count of
//! entries, each a name (1 to 255 bytes), a type byte and a value. Values are
//! fixed-width little-endian integers, `f64`, booleans, strings (raw bytes,
//! where Monero puts hashes and ids too), nested sections, and arrays of any
//! of these. `docs/portable-storage.md` describes the format byte by byte.
//!
//! Three ways in and out:
//! - serde: [`from_slice`], [`from_bytes`] and [`to_vec`] turn plain
//!   `#[derive(Serialize, Deserialize)]` structs into bodies and back;
//! - this crate's own traits: [`decode()`], [`decode_bytes`] and [`encode()`]
//!   turn `#[derive(Encode, Decode)]` structs into bodies and back, with the
//!   same bytes and results as serde's derives but faster (each field read
//!   and written directly, the output allocated once). The derives read the
//!   `#[serde(...)]` attributes, so a struct can derive both;
//! - a dynamic [`Value`] / [`Section`] tree for content whose shape is not
//!   known ahead of time, preserving every type byte.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use strata_portable_storage::{Decode, Encode, decode, encode, from_slice, to_vec};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
//! struct Peer {
//!     id: u64,
//!     last_seen: Option<i64>,
//!     #[serde(rename = "type")]
//!     kind: u8,
//! }
//!
//! let peer = Peer { id: 7, last_seen: None, kind: 1 };
//! let body = encode(&peer)?;
//! assert_eq!(body, to_vec(&peer)?);
//! assert_eq!(decode::<Peer>(&body)?, from_slice::<Peer>(&body)?);
//! # Ok::<(), strata_portable_storage::Error>(())
//! ```
//!
//! The derives refuse serde attributes they would not honour, rather than
//! write other bytes than serde's derive:
//!
//! ```compile_fail
//! #[derive(strata_portable_storage::Decode)]
//! struct Renamed {
//!     #[serde(alias = "b")]
//!     a: u8,
//! }
//! ```
//!
//! and names the wire cannot carry, or two fields of one name:
//!
//! ```compile_fail
//! #[derive(strata_portable_storage::Decode)]
//! struct Twice {
//!     a: u8,
//!     #[serde(rename = "a")]
//!     again: u8,
//! }
//! ```
//!
//! Invariants:
//! - Decoding never copies payload bytes into a new allocation: strings and
//!   blobs borrow from the input (`&'de [u8]`, `&'de str`), or become
//!   [`bytes::Bytes`] views of it when decoding from [`bytes::Bytes`].
//! - Every count read from the input is checked against the bytes that are
//!   left and against the [`Limits`] before anything is allocated; no input
//!   can make the decoder panic, recurse without bound or allocate more than
//!   a small multiple of the input's length.
//! - Encoding is byte-for-byte what monerod writes: section keys in sorted
//!   order, `None` fields and empty sequences left out, varints in their
//!   shortest width.
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

mod de;
pub mod decode;
pub mod encode;
mod error;
mod reader;
mod ser;
mod stash;
mod value;
mod varint;

pub mod blob;

pub use de::{from_bytes, from_bytes_with_limits, from_slice, from_slice_with_limits};
pub use decode::{
    Decode, Elements, Entries, ValueReader, decode, decode_bytes, decode_bytes_with_limits,
    decode_with_limits,
};
pub use encode::{Encode, encode, encode_into};
pub use error::{Error, Key, Result};
pub use ser::{to_vec, write_into};
pub use strata_portable_storage_derive::{Decode, Encode};
pub use value::{Array, Section, Value};

/// The 9 bytes every body starts with: signature A `0x01011101`, signature B
/// `0x01020101` (both little-endian) and format version 1.
pub const HEADER: [u8; 9] = [0x01, 0x11, 0x01, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01];

/// Largest value a varint can carry: 2^62 - 1.
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// Type bytes of the format. An array of type `T` is tagged `ARRAY_FLAG | T`.
pub mod tag {
    /// `i64`, 8 bytes.
    pub const I64: u8 = 1;
    /// `i32`, 4 bytes.
    pub const I32: u8 = 2;
    /// `i16`, 2 bytes.
    pub const I16: u8 = 3;
    /// `i8`, 1 byte.
    pub const I8: u8 = 4;
    /// `u64`, 8 bytes.
    pub const U64: u8 = 5;
    /// `u32`, 4 bytes.
    pub const U32: u8 = 6;
    /// `u16`, 2 bytes.
    pub const U16: u8 = 7;
    /// `u8`, 1 byte.
    pub const U8: u8 = 8;
    /// `f64`, 8 bytes.
    pub const F64: u8 = 9;
    /// String: varint length, then that many raw bytes.
    pub const STRING: u8 = 10;
    /// Boolean: one byte, 0 or 1.
    pub const BOOL: u8 = 11;
    /// A nested section.
    pub const OBJECT: u8 = 12;
    /// An array; only valid as the element type of an empty array.
    pub const ARRAY: u8 = 13;
    /// Set on the type byte of an array, whose low bits give the element type.
    pub const ARRAY_FLAG: u8 = 0x80;
}

/// Named defaults of [`Limits`]: the limits monerod applies to p2p bodies.
pub mod limits {
    /// Nested objects in one body, the root not counted.
    pub const MAX_OBJECTS: usize = 8192;
    /// Entries summed over every section of one body.
    pub const MAX_FIELDS: usize = 16384;
    /// String values in one body, array elements included.
    pub const MAX_STRINGS: usize = 16384;
    /// Objects nested below the root: this many levels are accepted, one more
    /// is rejected.
    pub const MAX_DEPTH: usize = 31;
}

/// Caps on what one body may contain, checked while decoding.
///
/// Every count is checked before the decoder allocates or recurses, so the
/// memory and stack a body can claim are bounded by these numbers and the
/// body's length. Decoding recurses once per nesting level: keep
/// `max_depth` in the tens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nested objects, the root not counted.
    pub max_objects: usize,
    /// Entries over all sections.
    pub max_fields: usize,
    /// String values, array elements included.
    pub max_strings: usize,
    /// Nesting levels of objects below the root.
    pub max_depth: usize,
}

impl Limits {
    /// monerod's limits for p2p bodies.
    pub const MONEROD: Limits = Limits {
        max_objects: limits::MAX_OBJECTS,
        max_fields: limits::MAX_FIELDS,
        max_strings: limits::MAX_STRINGS,
        max_depth: limits::MAX_DEPTH,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::MONEROD
    }
}
