//! Encoding without serde's serializer: [`Encode`], usually derived
//! (`#[derive(strata_portable_storage::Encode)]`), writes each value
//! directly, and a body's length is known before it is written, so the
//! output is allocated once.
//!
//! The bytes are those of the serde path ([`to_vec`](crate::to_vec)) for
//! the same value: names sorted, `None` and empty arrays left out, varints
//! in their shortest width.

use crate::value::Array;
use crate::{Error, HEADER, Result, Section, Value, tag, varint};

/// A type that can be written as one portable-storage value.
///
/// Implemented for the integers, `f32` (written as `f64`), `f64`, `bool`,
/// strings, byte arrays `[u8; N]` (strings), slices and `Vec<T>` (arrays),
/// `Option<T>`, `Box<T>`, references, [`Value`], [`Section`] and [`Array`];
/// derived for structs (objects). Blobs go through the [`blob`](crate::blob)
/// module: `#[serde(with = "blob")]`.
pub trait Encode {
    /// The type byte the value is written with: a [`tag`], with
    /// [`tag::ARRAY_FLAG`] for arrays.
    fn type_byte(&self) -> u8;

    /// Whether the entry holding the value is left out: `None`, an empty
    /// array.
    fn is_absent(&self) -> bool {
        false
    }

    /// The length of the encoding after the type byte. Exact for the types
    /// of this crate and derived structs; the output grows if it is short.
    fn encoded_len(&self) -> usize;

    /// Appends the encoding after the type byte to `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()>;
}

/// Encodes `value`, an object (a struct, a [`Section`] or a
/// [`Value::Object`]), into a body allocated once: the same bytes as
/// [`to_vec`](crate::to_vec).
pub fn encode<T: Encode + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(&mut out, value)?;
    Ok(out)
}

/// Appends the body of `value` to `out`, growing it once. On error `out` is
/// left as it was.
pub fn encode_into<T: Encode + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    if value.type_byte() != tag::OBJECT || value.is_absent() {
        return Err(Error::RootNotObject);
    }
    let start = out.len();
    // A hint: should it fail, the writes below grow the buffer.
    let _room = out.try_reserve_exact(HEADER.len().saturating_add(value.encoded_len()));
    out.extend_from_slice(&HEADER);
    if let Err(error) = value.encode(out) {
        out.truncate(start);
        return Err(error);
    }
    Ok(())
}

/// The length of the varint of a section's or array's count.
#[inline]
pub fn count_len(count: usize) -> usize {
    varint::width(count as u64)
}

/// Writes the varint of a section's or array's count.
#[inline]
pub fn write_count(out: &mut Vec<u8>, count: usize) -> Result<()> {
    varint::write(out, count as u64)
}

/// The length of a string value of `len` bytes.
#[inline]
fn string_len(len: usize) -> usize {
    count_len(len).saturating_add(len)
}

#[inline]
fn write_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    write_count(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

macro_rules! numbers {
    ($($ty:ty => $tag:ident,)*) => {
        $(
            impl Encode for $ty {
                #[inline]
                fn type_byte(&self) -> u8 {
                    tag::$tag
                }
                #[inline]
                fn encoded_len(&self) -> usize {
                    std::mem::size_of::<$ty>()
                }
                #[inline]
                fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                    out.extend_from_slice(&self.to_le_bytes());
                    Ok(())
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

impl Encode for f32 {
    #[inline]
    fn type_byte(&self) -> u8 {
        tag::F64
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        8
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        f64::from(*self).encode(out)
    }
}

impl Encode for bool {
    #[inline]
    fn type_byte(&self) -> u8 {
        tag::BOOL
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        1
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(u8::from(*self));
        Ok(())
    }
}

/// Types written as strings.
macro_rules! strings {
    ($($ty:ty,)*) => {
        $(
            impl Encode for $ty {
                #[inline]
                fn type_byte(&self) -> u8 {
                    tag::STRING
                }
                #[inline]
                fn encoded_len(&self) -> usize {
                    string_len(self.len())
                }
                #[inline]
                fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                    write_string(out, self.as_ref())
                }
            }
        )*
    };
}

strings! {
    str,
    String,
}

impl<const N: usize> Encode for [u8; N] {
    #[inline]
    fn type_byte(&self) -> u8 {
        tag::STRING
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        string_len(N)
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        write_string(out, self)
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    #[inline]
    fn type_byte(&self) -> u8 {
        (**self).type_byte()
    }
    #[inline]
    fn is_absent(&self) -> bool {
        (**self).is_absent()
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        (**self).encode(out)
    }
}

impl<T: Encode + ?Sized> Encode for Box<T> {
    #[inline]
    fn type_byte(&self) -> u8 {
        (**self).type_byte()
    }
    #[inline]
    fn is_absent(&self) -> bool {
        (**self).is_absent()
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        (**self).encode(out)
    }
}

impl<T: Encode> Encode for Option<T> {
    /// The type of the value; 0 for `None`, which is left out.
    #[inline]
    fn type_byte(&self) -> u8 {
        self.as_ref().map_or(0, Encode::type_byte)
    }
    #[inline]
    fn is_absent(&self) -> bool {
        self.as_ref().is_none_or(Encode::is_absent)
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        self.as_ref().map_or(0, Encode::encoded_len)
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Some(value) => value.encode(out),
            None => Ok(()),
        }
    }
}

impl<T: Encode> Encode for [T] {
    /// The array flag with the type of the first element.
    #[inline]
    fn type_byte(&self) -> u8 {
        tag::ARRAY_FLAG | self.first().map_or(0, Encode::type_byte)
    }
    /// Empty arrays are left out, as monerod leaves out empty containers.
    #[inline]
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
    fn encoded_len(&self) -> usize {
        self.iter().fold(count_len(self.len()), |len, element| {
            len.saturating_add(element.encoded_len())
        })
    }
    /// The count, then every element without its type byte. Elements must
    /// all have the first one's type and be neither arrays nor `None`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let ty = self.first().map_or(0, Encode::type_byte);
        write_count(out, self.len())?;
        for element in self {
            let element_ty = element.type_byte();
            if element_ty & tag::ARRAY_FLAG != 0 {
                return Err(Error::Unsupported("an array of arrays"));
            }
            if element.is_absent() {
                return Err(Error::Unsupported("None inside an array"));
            }
            if element_ty != ty {
                return Err(Error::MixedArray);
            }
            element.encode(out)?;
        }
        Ok(())
    }
}

impl<T: Encode> Encode for Vec<T> {
    #[inline]
    fn type_byte(&self) -> u8 {
        self.as_slice().type_byte()
    }
    #[inline]
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        self.as_slice().encoded_len()
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        self.as_slice().encode(out)
    }
}

impl Encode for Value {
    fn type_byte(&self) -> u8 {
        match self {
            Value::I64(_) => tag::I64,
            Value::I32(_) => tag::I32,
            Value::I16(_) => tag::I16,
            Value::I8(_) => tag::I8,
            Value::U64(_) => tag::U64,
            Value::U32(_) => tag::U32,
            Value::U16(_) => tag::U16,
            Value::U8(_) => tag::U8,
            Value::F64(_) => tag::F64,
            Value::String(_) => tag::STRING,
            Value::Bool(_) => tag::BOOL,
            Value::Object(_) => tag::OBJECT,
            Value::Array(array) => array.type_byte(),
        }
    }

    fn is_absent(&self) -> bool {
        matches!(self, Value::Array(array) if array.is_empty())
    }

    fn encoded_len(&self) -> usize {
        match self {
            Value::I64(_) | Value::U64(_) | Value::F64(_) => 8,
            Value::I32(_) | Value::U32(_) => 4,
            Value::I16(_) | Value::U16(_) => 2,
            Value::I8(_) | Value::U8(_) | Value::Bool(_) => 1,
            Value::String(bytes) => string_len(bytes.len()),
            Value::Object(section) => section.encoded_len(),
            Value::Array(array) => array.encoded_len(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Value::I64(v) => v.encode(out),
            Value::I32(v) => v.encode(out),
            Value::I16(v) => v.encode(out),
            Value::I8(v) => v.encode(out),
            Value::U64(v) => v.encode(out),
            Value::U32(v) => v.encode(out),
            Value::U16(v) => v.encode(out),
            Value::U8(v) => v.encode(out),
            Value::F64(v) => v.encode(out),
            Value::String(bytes) => write_string(out, bytes),
            Value::Bool(v) => v.encode(out),
            Value::Object(section) => section.encode(out),
            Value::Array(array) => array.encode(out),
        }
    }
}

/// The elements of a typed array, written as they are.
fn elements<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T) -> Result<()>,
) -> Result<()> {
    write_count(out, items.len())?;
    items.iter().try_for_each(|element| item(out, element))
}

impl Encode for Array {
    fn type_byte(&self) -> u8 {
        tag::ARRAY_FLAG
            | match self {
                Array::I64(_) => tag::I64,
                Array::I32(_) => tag::I32,
                Array::I16(_) => tag::I16,
                Array::I8(_) => tag::I8,
                Array::U64(_) => tag::U64,
                Array::U32(_) => tag::U32,
                Array::U16(_) => tag::U16,
                Array::U8(_) => tag::U8,
                Array::F64(_) => tag::F64,
                Array::String(_) => tag::STRING,
                Array::Bool(_) => tag::BOOL,
                Array::Object(_) => tag::OBJECT,
                Array::Arrays => tag::ARRAY,
            }
    }

    fn is_absent(&self) -> bool {
        self.is_empty()
    }

    fn encoded_len(&self) -> usize {
        let count = count_len(self.len());
        let items = match self {
            Array::I64(v) => v.len().saturating_mul(8),
            Array::U64(v) => v.len().saturating_mul(8),
            Array::F64(v) => v.len().saturating_mul(8),
            Array::I32(v) => v.len().saturating_mul(4),
            Array::U32(v) => v.len().saturating_mul(4),
            Array::I16(v) => v.len().saturating_mul(2),
            Array::U16(v) => v.len().saturating_mul(2),
            Array::I8(v) => v.len(),
            Array::U8(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v
                .iter()
                .fold(0, |len: usize, s| len.saturating_add(string_len(s.len()))),
            Array::Object(v) => v
                .iter()
                .fold(0, |len: usize, s| len.saturating_add(s.encoded_len())),
            Array::Arrays => 0,
        };
        count.saturating_add(items)
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Array::I64(v) => elements(out, v, |out, x| x.encode(out)),
            Array::I32(v) => elements(out, v, |out, x| x.encode(out)),
            Array::I16(v) => elements(out, v, |out, x| x.encode(out)),
            Array::I8(v) => elements(out, v, |out, x| x.encode(out)),
            Array::U64(v) => elements(out, v, |out, x| x.encode(out)),
            Array::U32(v) => elements(out, v, |out, x| x.encode(out)),
            Array::U16(v) => elements(out, v, |out, x| x.encode(out)),
            Array::U8(v) => elements(out, v, |out, x| x.encode(out)),
            Array::F64(v) => elements(out, v, |out, x| x.encode(out)),
            Array::String(v) => elements(out, v, |out, x| write_string(out, x)),
            Array::Bool(v) => elements(out, v, |out, x| x.encode(out)),
            Array::Object(v) => elements(out, v, |out, x| x.encode(out)),
            Array::Arrays => write_count(out, 0),
        }
    }
}

impl Encode for Section {
    fn type_byte(&self) -> u8 {
        tag::OBJECT
    }

    fn encoded_len(&self) -> usize {
        let mut count = 0usize;
        let len = self.iter().fold(0, |len: usize, (name, value)| {
            if value.is_absent() {
                return len;
            }
            count = count.saturating_add(1);
            // The name's length byte, the name and the type byte.
            len.saturating_add(name.len().saturating_add(2))
                .saturating_add(value.encoded_len())
        });
        len.saturating_add(count_len(count))
    }

    /// The entries in name order (a section keeps them sorted and unique);
    /// empty arrays are left out. Names must be 1 to 255 bytes, as the
    /// serde path checks them too, left out or not.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let count = self.iter().filter(|(_, value)| !value.is_absent()).count();
        write_count(out, count)?;
        for (name, value) in self.iter() {
            let len = match u8::try_from(name.len()) {
                Ok(0) => return Err(Error::EmptyName),
                Ok(len) => len,
                Err(_) => return Err(Error::NameTooLong(name.len())),
            };
            if value.is_absent() {
                continue;
            }
            out.push(len);
            out.extend_from_slice(name);
            out.push(value.type_byte());
            value.encode(out)?;
        }
        Ok(())
    }
}
