use std::fmt;

/// Everything that can go wrong while decoding or encoding portable storage.
///
/// Decoding errors name what the input did wrong; none of them is reachable
/// as a panic. Encoding errors name what the value cannot express.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside a value.
    #[error("input ends early: {needed} more bytes needed at offset {offset}")]
    UnexpectedEof {
        /// Offset where the missing bytes start.
        offset: usize,
        /// How many bytes were missing at least.
        needed: usize,
    },
    /// The 9-byte header is not `01 11 01 01 01 01 02 01 01`.
    #[error("not portable storage: bad signature or version")]
    BadHeader,
    /// A type byte names no type of the format.
    #[error("unknown type byte {0:#04x}")]
    UnknownType(u8),
    /// An entry name of length zero.
    #[error("entry name is empty")]
    EmptyName,
    /// An entry name longer than 255 bytes (encoding only).
    #[error("entry name is {0} bytes, more than 255")]
    NameTooLong(usize),
    /// A section holds two entries with the same name.
    #[error("duplicate key {0:?}")]
    DuplicateKey(Key),
    /// A boolean byte other than 0 or 1.
    #[error("boolean byte {0:#04x} is neither 0 nor 1")]
    InvalidBool(u8),
    /// A non-empty array whose elements are arrays.
    #[error("non-empty array of arrays")]
    NestedArray,
    /// An array count larger than the remaining input could hold.
    #[error("array of {count} elements cannot fit in the {remaining} remaining bytes")]
    ArrayTooLong {
        /// The count the input declared.
        count: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A section entry count larger than the remaining input could hold.
    #[error("section of {count} entries cannot fit in the {remaining} remaining bytes")]
    SectionTooLong {
        /// The count the input declared.
        count: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A string length larger than the remaining input.
    #[error("string of {len} bytes exceeds the {remaining} remaining bytes")]
    StringTooLong {
        /// The length the input declared.
        len: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// More nested objects than [`Limits::max_objects`](crate::Limits::max_objects).
    #[error("more than {0} objects")]
    TooManyObjects(usize),
    /// More entries than [`Limits::max_fields`](crate::Limits::max_fields).
    #[error("more than {0} fields")]
    TooManyFields(usize),
    /// More strings than [`Limits::max_strings`](crate::Limits::max_strings).
    #[error("more than {0} strings")]
    TooManyStrings(usize),
    /// Objects nested deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("objects nested deeper than {0}")]
    TooDeep(usize),
    /// A varint value above 2^62 - 1 (encoding only).
    #[error("{0} does not fit in a varint")]
    VarintOverflow(u64),
    /// A fixed-size byte array arrived with another length.
    #[error("expected a string of {expected} bytes, found {found}")]
    WrongLength {
        /// The length the type needs.
        expected: usize,
        /// The length on the wire.
        found: usize,
    },
    /// The top-level value to encode is not a struct or map.
    #[error("the root must be a struct or a map")]
    RootNotObject,
    /// Array elements of different types (encoding only).
    #[error("array elements of different types")]
    MixedArray,
    /// A map key that is not a string (encoding only).
    #[error("map keys must be strings")]
    KeyNotString,
    /// A serde data-model feature the format has no encoding for.
    #[error("{0} cannot be expressed in portable storage")]
    Unsupported(&'static str),
    /// A message from a `Serialize` or `Deserialize` implementation.
    #[error("{0}")]
    Message(String),
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Message(msg.to_string())
    }
}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Message(msg.to_string())
    }
}

/// An entry name as it appeared on the wire, printed readably in errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
