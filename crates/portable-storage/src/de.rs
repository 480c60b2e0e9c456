//! serde deserialization, streaming over a [`Reader`] without building an
//! intermediate tree.

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::reader::{Reader, SectionState};
use crate::stash::{self, BYTES_TOKEN, VALUE_TOKEN};
use crate::value::{read_section, read_value};
use crate::{Error, Limits, Result, Value, tag};

/// Decodes a body from a byte slice with monerod's [`Limits`]. Strings and
/// blobs of `T` may borrow from `input`.
pub fn from_slice<'de, T: de::Deserialize<'de>>(input: &'de [u8]) -> Result<T> {
    from_slice_with_limits(input, Limits::MONEROD)
}

/// [`from_slice`] with other limits.
pub fn from_slice_with_limits<'de, T: de::Deserialize<'de>>(
    input: &'de [u8],
    limits: Limits,
) -> Result<T> {
    Deserializer::new(input, None, limits)?.finish()
}

/// Decodes a body held in [`Bytes`] with monerod's [`Limits`]. Besides
/// borrowing, `Bytes` fields (see [`blob`](crate::blob)) and the strings of a
/// [`Value`] become views of `input` instead of copies.
pub fn from_bytes<'de, T: de::Deserialize<'de>>(input: &'de Bytes) -> Result<T> {
    from_bytes_with_limits(input, Limits::MONEROD)
}

/// [`from_bytes`] with other limits.
pub fn from_bytes_with_limits<'de, T: de::Deserialize<'de>>(
    input: &'de Bytes,
    limits: Limits,
) -> Result<T> {
    Deserializer::new(input, Some(input), limits)?.finish()
}

/// The serde deserializer of a whole body. Trailing bytes after the root
/// section are ignored, as monerod ignores them (Levin pads some bodies).
pub(crate) struct Deserializer<'de> {
    pub(crate) reader: Reader<'de>,
    /// The `Bytes` the input is a slice of, when there is one.
    pub(crate) source: Option<&'de Bytes>,
}

impl<'de> Deserializer<'de> {
    pub(crate) fn new(
        input: &'de [u8],
        source: Option<&'de Bytes>,
        limits: Limits,
    ) -> Result<Self> {
        let mut reader = Reader::new(input, limits);
        reader.header()?;
        Ok(Deserializer { reader, source })
    }

    fn finish<T: de::Deserialize<'de>>(mut self) -> Result<T> {
        T::deserialize(&mut self)
    }
}

/// Feeds a section's entries to `visitor`, then reads past any the visitor
/// left unread so the cursor ends after the section.
fn visit_section<'de, V: Visitor<'de>>(de: &mut Deserializer<'de>, visitor: V) -> Result<V::Value> {
    let state = de.reader.section()?;
    let mut access = SectionAccess { de, state, ty: 0 };
    let value = visitor.visit_map(&mut access)?;
    access.de.reader.skip_entries(&mut access.state)?;
    Ok(value)
}

/// Hands a value decoded here to a `Deserialize` impl that asked for it by
/// one of the reserved names (see [`stash`]).
fn hand_over<'de, V: Visitor<'de>>(value: Value, visitor: V) -> Result<V::Value> {
    stash::put(value);
    visitor.visit_unit()
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visit_section(self, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == VALUE_TOKEN {
            let section = read_section(&mut self.reader, self.source)?;
            return hand_over(Value::Object(section), visitor);
        }
        visitor.visit_newtype_struct(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The entries of one section.
struct SectionAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    state: SectionState<'de>,
    /// Type byte of the entry whose name was returned last.
    ty: u8,
}

impl<'de> de::MapAccess<'de> for SectionAccess<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some((name, ty)) = self.de.reader.next_entry(&mut self.state)? else {
            return Ok(None);
        };
        self.ty = ty;
        seed.deserialize(KeyDe(name)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(ValueDe {
            de: &mut *self.de,
            ty: self.ty,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.state.remaining())
    }
}

/// An entry name, offered as a borrowed `str` when it is UTF-8.
struct KeyDe<'de>(&'de [u8]);

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match std::str::from_utf8(self.0) {
            Ok(name) => visitor.visit_borrowed_str(name),
            Err(_) => visitor.visit_borrowed_bytes(self.0),
        }
    }

    /// Field names of derived structs match on bytes: no UTF-8 check needed.
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum ignored_any
    }
}

/// `deserialize_*` methods for numbers: a direct read when the wire type is
/// the one asked for, otherwise whatever the wire holds (the visitor converts
/// integers that fit).
macro_rules! numbers {
    ($($method:ident $visit:ident $tag:ident $ty:ty;)*) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
                if self.ty == tag::$tag {
                    visitor.$visit(<$ty>::from_le_bytes(self.de.reader.fixed()?))
                } else {
                    self.deserialize_any(visitor)
                }
            }
        )*
    };
}

/// One value whose type byte is known: an entry's value, or an array
/// element (which carries no type byte of its own).
pub(crate) struct ValueDe<'a, 'de> {
    pub(crate) de: &'a mut Deserializer<'de>,
    pub(crate) ty: u8,
}

impl<'de> ValueDe<'_, 'de> {
    fn visit_array<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let elem = self.ty & !tag::ARRAY_FLAG;
        let remaining = self.de.reader.array_len(elem)?;
        let mut access = ArrayAccess {
            de: &mut *self.de,
            elem,
            remaining,
        };
        let value = visitor.visit_seq(&mut access)?;
        for _ in 0..access.remaining {
            self.de.reader.skip(elem)?;
        }
        Ok(value)
    }
}

impl<'de> de::Deserializer<'de> for ValueDe<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.ty & tag::ARRAY_FLAG != 0 {
            return self.visit_array(visitor);
        }
        let r = &mut self.de.reader;
        match self.ty {
            tag::I64 => visitor.visit_i64(i64::from_le_bytes(r.fixed()?)),
            tag::I32 => visitor.visit_i32(i32::from_le_bytes(r.fixed()?)),
            tag::I16 => visitor.visit_i16(i16::from_le_bytes(r.fixed()?)),
            tag::I8 => visitor.visit_i8(i8::from_le_bytes(r.fixed()?)),
            tag::U64 => visitor.visit_u64(u64::from_le_bytes(r.fixed()?)),
            tag::U32 => visitor.visit_u32(u32::from_le_bytes(r.fixed()?)),
            tag::U16 => visitor.visit_u16(u16::from_le_bytes(r.fixed()?)),
            tag::U8 => visitor.visit_u8(r.u8()?),
            tag::F64 => visitor.visit_f64(f64::from_le_bytes(r.fixed()?)),
            tag::STRING => visitor.visit_borrowed_bytes(r.string()?),
            tag::BOOL => visitor.visit_bool(r.bool()?),
            tag::OBJECT => {
                r.enter_object()?;
                let value = visit_section(self.de, visitor)?;
                self.de.reader.leave_object();
                Ok(value)
            }
            // A bare array type byte: arrays are always tagged with the flag.
            other => Err(Error::UnknownType(other)),
        }
    }

    numbers! {
        deserialize_i64 visit_i64 I64 i64;
        deserialize_i32 visit_i32 I32 i32;
        deserialize_i16 visit_i16 I16 i16;
        deserialize_i8 visit_i8 I8 i8;
        deserialize_u64 visit_u64 U64 u64;
        deserialize_u32 visit_u32 U32 u32;
        deserialize_u16 visit_u16 U16 u16;
        deserialize_u8 visit_u8 U8 u8;
        deserialize_f64 visit_f64 F64 f64;
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.ty != tag::STRING {
            return self.deserialize_any(visitor);
        }
        let raw = self.de.reader.string()?;
        match std::str::from_utf8(raw) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_borrowed_bytes(raw),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    /// Fixed-size byte arrays such as `[u8; 32]` travel as strings.
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        if self.ty != tag::STRING {
            return self.deserialize_any(visitor);
        }
        let raw = self.de.reader.string()?;
        if raw.len() != len {
            return Err(Error::WrongLength {
                expected: len,
                found: raw.len(),
            });
        }
        visitor.visit_seq(ByteSeq(raw.iter()))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        match name {
            VALUE_TOKEN => {
                let value = read_value(&mut self.de.reader, self.ty, self.de.source)?;
                hand_over(value, visitor)
            }
            BYTES_TOKEN if self.ty == tag::STRING => {
                let raw = self.de.reader.string()?;
                match self.de.source {
                    Some(source) => hand_over(Value::String(source.slice_ref(raw)), visitor),
                    None => visitor.visit_borrowed_bytes(raw),
                }
            }
            BYTES_TOKEN => self.deserialize_any(visitor),
            _ => visitor.visit_newtype_struct(self),
        }
    }

    /// Unit variants travel as their names.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if self.ty != tag::STRING {
            return Err(Error::Unsupported("an enum other than a string"));
        }
        let raw = self.de.reader.string()?;
        let name = std::str::from_utf8(raw)
            .map_err(|_| Error::Message("enum variant name is not UTF-8".into()))?;
        visitor.visit_enum(de::value::BorrowedStrDeserializer::new(name))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.de.reader.skip(self.ty)?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i128 u128 f32 char bytes byte_buf unit unit_struct seq tuple_struct map identifier
    }
}

/// The elements of an array, all of one type.
struct ArrayAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    elem: u8,
    remaining: usize,
}

impl<'de> de::SeqAccess<'de> for ArrayAccess<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(remaining) = self.remaining.checked_sub(1) else {
            return Ok(None);
        };
        self.remaining = remaining;
        seed.deserialize(ValueDe {
            de: &mut *self.de,
            ty: self.elem,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

/// The bytes of a string, as a sequence of `u8`.
struct ByteSeq<'de>(std::slice::Iter<'de, u8>);

impl<'de> de::SeqAccess<'de> for ByteSeq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.0.next() {
            Some(&byte) => seed.deserialize(byte.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}
