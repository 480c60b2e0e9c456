//! Decoding without serde's visitors: [`Decode`], usually derived
//! (`#[derive(strata_portable_storage::Decode)]`), reads each field straight
//! from the reader that the serde path uses too, where every check of the
//! format and the limits happens.
//!
//! Both paths read the input in the same order through the same checks, so
//! they agree on every input: the same values, and the same errors. Where
//! the wire holds another type than the field's, a [`Decode`] impl hands the
//! value to the type's serde impl over this crate's deserializer, so
//! conversions (a `u64` read into a `u8` field) and their errors are serde's.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer as _, Visitor};

use crate::de::{Deserializer, ValueDe};
use crate::reader::SectionState;
use crate::value::{read_entries, read_value};
use crate::{Error, Limits, Result, Section, Value, tag};

/// A type that can be read from one portable-storage value.
///
/// Implemented for the integers, `f32`, `f64`, `bool`, strings, byte arrays
/// `[u8; N]` (strings of `N` bytes), `Vec<T>` (arrays), `Option<T>` (entries
/// that may be left out), `Box<T>`, [`Bytes`], [`Value`] and [`Section`];
/// derived for structs. A struct reads an object's entries in
/// [`decode_section`](Decode::decode_section), which is also how a body's
/// root is read.
pub trait Decode<'de>: Sized {
    /// Reads a value whose type byte is [`ValueReader::type_byte`]. The
    /// reader must be consumed: read, [skipped](ValueReader::skip) or turned
    /// into an error with [`ValueReader::invalid`].
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self>;

    /// The value of a struct field whose entry is not in the section: an
    /// error naming the field, except for `Option` (`None`).
    fn missing(field: &'static str) -> Result<Self> {
        Err(missing_field(field))
    }

    /// Reads `Self` from the entries of a section: how structs, [`Section`]
    /// and [`Value`] are read, at the root of a body and nested. Other types
    /// cannot be a body's root.
    fn decode_section(entries: &mut Entries<'_, 'de>) -> Result<Self> {
        let _unread = entries;
        Err(Error::RootNotObject)
    }
}

/// serde's error for a missing field: "missing field `name`".
pub fn missing_field(field: &'static str) -> Error {
    <Error as de::Error>::missing_field(field)
}

/// serde's error for an array too short for a struct read positionally:
/// "invalid length 2, expected struct X with 3 elements".
pub fn invalid_length(len: usize, expecting: &'static str) -> Error {
    <Error as de::Error>::invalid_length(len, &expecting)
}

/// Decodes a body from a byte slice with monerod's [`Limits`]: the same as
/// [`from_slice`](crate::from_slice) for a type that derives both serde's
/// `Deserialize` and [`Decode`], faster.
pub fn decode<'de, T: Decode<'de>>(input: &'de [u8]) -> Result<T> {
    decode_with_limits(input, Limits::MONEROD)
}

/// [`decode`] with other limits.
pub fn decode_with_limits<'de, T: Decode<'de>>(input: &'de [u8], limits: Limits) -> Result<T> {
    root(Deserializer::new(input, None, limits)?)
}

/// Decodes a body held in [`Bytes`] with monerod's [`Limits`]: the same as
/// [`from_bytes`](crate::from_bytes), so blobs become views of `input`.
pub fn decode_bytes<'de, T: Decode<'de>>(input: &'de Bytes) -> Result<T> {
    decode_bytes_with_limits(input, Limits::MONEROD)
}

/// [`decode_bytes`] with other limits.
pub fn decode_bytes_with_limits<'de, T: Decode<'de>>(
    input: &'de Bytes,
    limits: Limits,
) -> Result<T> {
    root(Deserializer::new(input, Some(input), limits)?)
}

/// The root section, as the serde path reads it: no type byte, and not
/// counted as an object.
fn root<'de, T: Decode<'de>>(mut de: Deserializer<'de>) -> Result<T> {
    let state = de.reader.section()?;
    let mut entries = Entries { de: &mut de, state };
    let value = T::decode_section(&mut entries)?;
    entries.de.reader.skip_entries(&mut entries.state)?;
    Ok(value)
}

/// One value of a body being decoded, whose type byte is known: an entry's
/// value or an array element.
#[must_use = "a value must be read or skipped before the next"]
pub struct ValueReader<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    ty: u8,
}

impl<'a, 'de> ValueReader<'a, 'de> {
    /// The value's type byte: a [`tag`], with [`tag::ARRAY_FLAG`] for arrays.
    #[inline]
    pub fn type_byte(&self) -> u8 {
        self.ty
    }

    /// Whether the value is an object.
    #[inline]
    pub fn is_object(&self) -> bool {
        self.ty == tag::OBJECT
    }

    /// Whether the value is an array.
    #[inline]
    pub fn is_array(&self) -> bool {
        self.ty & tag::ARRAY_FLAG != 0
    }

    /// Reads an object's entries with `read`; entries it leaves are skipped.
    /// The object counts against the limits on objects and depth. A value
    /// that is not an object is refused as [`invalid`](Self::invalid) would.
    #[inline(always)]
    pub fn object<T>(self, read: impl FnOnce(&mut Entries<'_, 'de>) -> Result<T>) -> Result<T> {
        if !self.is_object() {
            return Err(self.invalid("an object"));
        }
        let reader = &mut self.de.reader;
        reader.enter_object()?;
        let state = reader.section()?;
        let mut entries = Entries { de: self.de, state };
        let value = read(&mut entries)?;
        let reader = &mut entries.de.reader;
        reader.skip_entries(&mut entries.state)?;
        reader.leave_object();
        Ok(value)
    }

    /// Reads an array's elements with `read`; elements it leaves are
    /// skipped. A value that is not an array is refused as
    /// [`invalid`](Self::invalid) would.
    #[inline(always)]
    pub fn elements<T>(self, read: impl FnOnce(&mut Elements<'_, 'de>) -> Result<T>) -> Result<T> {
        if !self.is_array() {
            return Err(self.invalid("an array"));
        }
        let elem = self.ty & !tag::ARRAY_FLAG;
        let remaining = self.de.reader.array_len(elem)?;
        let mut elements = Elements {
            de: self.de,
            elem,
            remaining,
        };
        let value = read(&mut elements)?;
        for _ in 0..elements.remaining {
            elements.de.reader.skip(elem)?;
        }
        Ok(value)
    }

    /// Reads past the value, checking it as thoroughly as if it were decoded.
    #[inline]
    pub fn skip(self) -> Result<()> {
        self.de.reader.skip(self.ty)
    }

    /// Reads a struct from an array, the fields in declaration order, as
    /// serde's derive does: [`elements`](Self::elements), out of line.
    #[cold]
    #[inline(never)]
    pub fn positional<T>(
        self,
        read: impl FnOnce(&mut Elements<'_, 'de>) -> Result<T>,
    ) -> Result<T> {
        self.elements(read)
    }

    /// The error serde's impls give when this value arrives where a type
    /// described by `expecting` (such as `"struct NodeData"`) is wanted:
    /// the value is read, then refused ("invalid type: integer `5`, expected
    /// struct NodeData"), unless reading it fails first.
    #[cold]
    #[inline(never)]
    pub fn invalid(self, expecting: &'static str) -> Error {
        match self.deserializer().deserialize_any(Expecting(expecting)) {
            Err(error) => error,
            Ok(never) => match never {},
        }
    }

    /// The value as a serde deserializer, for types read through their serde
    /// impls.
    #[inline]
    pub fn deserializer(self) -> impl de::Deserializer<'de, Error = Error> + use<'a, 'de> {
        ValueDe {
            de: self.de,
            ty: self.ty,
        }
    }

    #[inline]
    fn fixed<const N: usize>(self) -> Result<[u8; N]> {
        self.de.reader.fixed()
    }
}

/// A visitor that accepts nothing, so that serde describes what it found.
struct Expecting(&'static str);

/// What [`Expecting`] never produces.
enum Never {}

impl<'de> Visitor<'de> for Expecting {
    type Value = Never;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The entries of one section.
pub struct Entries<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    state: SectionState<'de>,
}

impl<'de> Entries<'_, 'de> {
    /// The next entry's name and value, or `None` at the section's end. The
    /// name is checked against the names before it (a repeat is an error).
    #[inline(always)]
    #[allow(clippy::should_implement_trait)] // each value borrows the entries
    pub fn next(&mut self) -> Result<Option<(&'de [u8], ValueReader<'_, 'de>)>> {
        Ok(self
            .de
            .reader
            .next_entry(&mut self.state)?
            .map(|(name, ty)| (name, ValueReader { de: self.de, ty })))
    }

    /// The number of entries not read yet.
    pub fn remaining(&self) -> usize {
        self.state.remaining()
    }
}

/// The elements of an array, all of one type.
pub struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    elem: u8,
    remaining: usize,
}

impl<'de> Elements<'_, 'de> {
    /// The next element, or `None` after the last.
    #[inline]
    #[allow(clippy::should_implement_trait)] // each element borrows the elements
    pub fn next(&mut self) -> Option<ValueReader<'_, 'de>> {
        self.remaining = self.remaining.checked_sub(1)?;
        Some(ValueReader {
            de: self.de,
            ty: self.elem,
        })
    }

    /// The number of elements not read yet.
    pub fn len(&self) -> usize {
        self.remaining
    }

    /// Whether every element was read.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

/// Reads a value through its type's serde impl: what the fast paths below
/// leave to serde, kept out of line.
#[cold]
#[inline(never)]
fn through_serde<'de, T: Deserialize<'de>>(value: ValueReader<'_, 'de>) -> Result<T> {
    T::deserialize(value.deserializer())
}

/// Numbers: a direct read when the wire type is the field's, otherwise
/// serde's conversion (which takes any integer that fits).
macro_rules! numbers {
    ($($ty:ty => $tag:ident,)*) => {
        $(
            impl<'de> Decode<'de> for $ty {
                #[inline]
                fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
                    if value.ty == tag::$tag {
                        value.fixed().map(<$ty>::from_le_bytes)
                    } else {
                        through_serde(value)
                    }
                }
            }
        )*
    };
}

numbers! {
    i64 => I64,
    i32 => I32,
    i16 => I16,
    i8 => I8,
    u64 => U64,
    u32 => U32,
    u16 => U16,
    u8 => U8,
    f64 => F64,
}

/// Types read through their serde impls alone.
macro_rules! through_serde {
    ($($ty:ty,)*) => {
        $(
            impl<'de> Decode<'de> for $ty {
                #[inline]
                fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
                    through_serde(value)
                }
            }
        )*
    };
}

through_serde! {
    f32,
    String,
}

impl<'de> Decode<'de> for bool {
    #[inline]
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        if value.ty == tag::BOOL {
            value.de.reader.bool()
        } else {
            through_serde(value)
        }
    }
}

impl<'de: 'a, 'a> Decode<'de> for &'a str {
    #[inline]
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        <&'a str>::deserialize(value.deserializer())
    }
}

impl<'de: 'a, 'a> Decode<'de> for &'a [u8] {
    #[inline]
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        <&'a [u8]>::deserialize(value.deserializer())
    }
}

impl<'de, const N: usize> Decode<'de> for [u8; N] {
    /// A string of exactly `N` bytes; otherwise what serde's array impl does
    /// (an array of `N` numbers that fit in `u8` is read).
    #[inline]
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        if value.ty != tag::STRING {
            return byte_array(value);
        }
        let raw = value.de.reader.string()?;
        raw.try_into().map_err(|_| Error::WrongLength {
            expected: N,
            found: raw.len(),
        })
    }
}

#[cold]
#[inline(never)]
fn byte_array<const N: usize>(value: ValueReader<'_, '_>) -> Result<[u8; N]> {
    value.deserializer().deserialize_tuple(N, ByteArray::<N>)
}

/// serde's visitor of `[T; N]`, for `T = u8` and any `N`.
struct ByteArray<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for ByteArray<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if N == 0 {
            f.write_str("an empty array")
        } else {
            write!(f, "an array of length {N}")
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0; N];
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(index, &self))?;
        }
        Ok(out)
    }
}

impl<'de, T: Decode<'de>> Decode<'de> for Option<T> {
    #[inline]
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        T::decode(value).map(Some)
    }

    fn missing(_field: &'static str) -> Result<Self> {
        Ok(None)
    }
}

impl<'de, T: Decode<'de>> Decode<'de> for Box<T> {
    #[inline]
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        T::decode(value).map(Box::new)
    }

    fn decode_section(entries: &mut Entries<'_, 'de>) -> Result<Self> {
        T::decode_section(entries).map(Box::new)
    }
}

/// Bytes of elements allocated ahead of reading them, at most (serde's
/// bound): the rest grows as elements arrive.
const MAX_PREALLOCATION: usize = 1 << 20;

impl<'de, T: Decode<'de>> Decode<'de> for Vec<T> {
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        if !value.is_array() {
            return Err(value.invalid("a sequence"));
        }
        value.elements(|elements| {
            let room = MAX_PREALLOCATION
                .checked_div(std::mem::size_of::<T>())
                .unwrap_or(MAX_PREALLOCATION);
            let mut out = Vec::with_capacity(elements.len().min(room));
            while let Some(element) = elements.next() {
                out.push(T::decode(element)?);
            }
            Ok(out)
        })
    }
}

impl<'de> Decode<'de> for Value {
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        read_value(&mut value.de.reader, value.ty, value.de.source)
    }

    fn decode_section(entries: &mut Entries<'_, 'de>) -> Result<Self> {
        Section::decode_section(entries).map(Value::Object)
    }
}

impl<'de> Decode<'de> for Section {
    fn decode(value: ValueReader<'_, 'de>) -> Result<Self> {
        match Value::decode(value)? {
            Value::Object(section) => Ok(section),
            other => Err(<Error as de::Error>::custom(format_args!(
                "expected an object, found {other:?}"
            ))),
        }
    }

    fn decode_section(entries: &mut Entries<'_, 'de>) -> Result<Self> {
        read_entries(
            &mut entries.de.reader,
            &mut entries.state,
            entries.de.source,
        )
    }
}
