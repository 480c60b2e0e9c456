//! serde serialization, writing monerod's exact bytes in one pass.
//!
//! Entries go straight into the output. A section compares each name with
//! the one before; if they all arrive in order (the common case, when fields
//! are declared sorted) nothing more is done. Otherwise, at its end, the
//! section finds its entries again in the output and moves them into order
//! with one copy of the section. A `None` writes nothing, not even its name;
//! an empty sequence is written, found to be empty, and cut off again.

use std::ops::Range;

use serde::ser::{self, Impossible, Serialize};

use crate::reader::{Walk, less};
use crate::{Error, HEADER, Key, Result, tag, varint};

/// Encodes `value`, which must serialize as a struct or map, into a body.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    write_into(&mut out, value)?;
    Ok(out)
}

/// Appends the body of `value` to `out`. On error `out` is left as it was.
pub fn write_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    let start = out.len();
    let mut state = State {
        out: std::mem::take(out),
        scratch: Vec::new(),
    };
    state.out.extend_from_slice(&HEADER);
    let result = value.serialize(Root(&mut state));
    *out = state.out;
    if let Err(e) = result {
        out.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// The output and room shared by all nested serializers.
struct State {
    out: Vec<u8>,
    /// Room to reorder a section's entries in.
    scratch: Vec<u8>,
}

/// The name of the entry starting at `start` (empty if there is none).
#[inline]
fn name_at(out: &[u8], start: usize) -> &[u8] {
    out.get(start..)
        .and_then(<[u8]>::split_first)
        .and_then(|(&len, rest)| rest.get(..usize::from(len)))
        .unwrap_or_default()
}

impl State {
    /// Writes a varint whose value is known only later, `width` bytes wide,
    /// returning where it lies.
    fn reserve_count(&mut self, width: usize) -> Range<usize> {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; 8][..width]);
        start..self.out.len()
    }

    /// Fills in a count reserved with [`reserve_count`](Self::reserve_count),
    /// moving what follows if the count needs another width.
    fn patch_count(&mut self, at: Range<usize>, count: usize) -> Result<()> {
        let (buf, len) = varint::encode(count as u64)?;
        if len == at.len() {
            self.out[at].copy_from_slice(&buf[..len]);
        } else {
            self.out.splice(at, buf[..len].iter().copied());
        }
        Ok(())
    }

    /// Writes a type byte, returning where it lies.
    #[inline]
    fn push_type(&mut self, ty: u8) -> usize {
        let at = self.out.len();
        self.out.push(ty);
        at
    }

    #[inline]
    fn write_name(&mut self, name: &[u8]) -> Result<()> {
        match u8::try_from(name.len()) {
            Ok(0) => Err(Error::EmptyName),
            Ok(len) => {
                self.out.push(len);
                self.out.extend_from_slice(name);
                Ok(())
            }
            Err(_) => Err(Error::NameTooLong(name.len())),
        }
    }

    fn write_string(&mut self, bytes: &[u8]) -> Result<()> {
        varint::write(&mut self.out, bytes.len() as u64)?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

/// The compound and wrapper methods of a serializer that accepts only one
/// scalar kind, each refusing with `$error`.
macro_rules! refuse_compound {
    ($ok:ty, $error:expr) => {
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<$ok> {
            Err($error)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<$ok> {
            Err($error)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok> {
            Err($error)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
            Err($error)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
            Err($error)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct> {
            Err($error)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant> {
            Err($error)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
            Err($error)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
            Err($error)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant> {
            Err($error)
        }
    };
}

/// The root of a body: a section without a type byte.
struct Root<'a>(&'a mut State);

macro_rules! refuse {
    ($error:expr; $($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok> {
            Err($error)
        })*
    };
}

impl<'a> ser::Serializer for Root<'a> {
    type Ok = bool;
    type Error = Error;
    type SerializeSeq = Impossible<bool, Error>;
    type SerializeTuple = Impossible<bool, Error>;
    type SerializeTupleStruct = Impossible<bool, Error>;
    type SerializeTupleVariant = Impossible<bool, Error>;
    type SerializeMap = SectionSer<'a>;
    type SerializeStruct = SectionSer<'a>;
    type SerializeStructVariant = Impossible<bool, Error>;

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<SectionSer<'a>> {
        Ok(SectionSer::begin(self.0, len))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<SectionSer<'a>> {
        Ok(SectionSer::begin(self.0, len.unwrap_or(0)))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool> {
        value.serialize(self)
    }

    refuse! { Error::RootNotObject;
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool> {
        Err(Error::RootNotObject)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool> {
        Err(Error::RootNotObject)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(Error::RootNotObject)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(Error::RootNotObject)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(Error::RootNotObject)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Error::RootNotObject)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Error::RootNotObject)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Where a value goes: an entry's value, behind its name and type byte; or
/// an array element, whose type is the array's (its type byte at `ty_pos`,
/// zero until the first element sets it).
#[derive(Clone, Copy)]
enum Place {
    /// A struct field, its name written only if the value is.
    Field(&'static str),
    /// A map entry whose key is already written.
    Entry,
    Element {
        ty_pos: usize,
    },
}

/// Serializes one value. `Ok(false)` means nothing was written: the value
/// was `None` or an empty sequence, and its entry is to be left out.
struct ValueSer<'a> {
    st: &'a mut State,
    place: Place,
}

impl<'a> ValueSer<'a> {
    /// Writes the type byte, or checks it against the array's, returning
    /// where the type byte lies.
    #[inline]
    fn tag(&mut self, ty: u8) -> Result<usize> {
        match self.place {
            Place::Field(name) => {
                self.st.write_name(name.as_bytes())?;
                Ok(self.st.push_type(ty))
            }
            Place::Entry => Ok(self.st.push_type(ty)),
            Place::Element { ty_pos } => {
                let array_ty = &mut self.st.out[ty_pos];
                if *array_ty == 0 {
                    *array_ty = tag::ARRAY_FLAG | ty;
                } else if *array_ty != tag::ARRAY_FLAG | ty {
                    return Err(Error::MixedArray);
                }
                Ok(ty_pos)
            }
        }
    }

    fn scalar(mut self, ty: u8, bytes: &[u8]) -> Result<bool> {
        self.tag(ty)?;
        self.st.out.extend_from_slice(bytes);
        Ok(true)
    }

    fn string(mut self, bytes: &[u8]) -> Result<bool> {
        self.tag(tag::STRING)?;
        self.st.write_string(bytes)?;
        Ok(true)
    }

    fn not_in_array(&self, what: &'static str) -> Result<()> {
        match self.place {
            Place::Field(_) | Place::Entry => Ok(()),
            Place::Element { .. } => Err(Error::Unsupported(what)),
        }
    }
}

impl<'a> ser::Serializer for ValueSer<'a> {
    type Ok = bool;
    type Error = Error;
    type SerializeSeq = SeqSer<'a>;
    type SerializeTuple = BytesSer<'a>;
    type SerializeTupleStruct = Impossible<bool, Error>;
    type SerializeTupleVariant = Impossible<bool, Error>;
    type SerializeMap = SectionSer<'a>;
    type SerializeStruct = SectionSer<'a>;
    type SerializeStructVariant = Impossible<bool, Error>;

    fn serialize_bool(self, v: bool) -> Result<bool> {
        self.scalar(tag::BOOL, &[u8::from(v)])
    }
    fn serialize_i8(self, v: i8) -> Result<bool> {
        self.scalar(tag::I8, &v.to_le_bytes())
    }
    fn serialize_i16(self, v: i16) -> Result<bool> {
        self.scalar(tag::I16, &v.to_le_bytes())
    }
    fn serialize_i32(self, v: i32) -> Result<bool> {
        self.scalar(tag::I32, &v.to_le_bytes())
    }
    fn serialize_i64(self, v: i64) -> Result<bool> {
        self.scalar(tag::I64, &v.to_le_bytes())
    }
    fn serialize_u8(self, v: u8) -> Result<bool> {
        self.scalar(tag::U8, &[v])
    }
    fn serialize_u16(self, v: u16) -> Result<bool> {
        self.scalar(tag::U16, &v.to_le_bytes())
    }
    fn serialize_u32(self, v: u32) -> Result<bool> {
        self.scalar(tag::U32, &v.to_le_bytes())
    }
    fn serialize_u64(self, v: u64) -> Result<bool> {
        self.scalar(tag::U64, &v.to_le_bytes())
    }
    /// The format has no `f32`; it is widened to `f64`, which loses nothing.
    fn serialize_f32(self, v: f32) -> Result<bool> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<bool> {
        self.scalar(tag::F64, &v.to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Result<bool> {
        self.string(v.encode_utf8(&mut [0; 4]).as_bytes())
    }
    fn serialize_str(self, v: &str) -> Result<bool> {
        self.string(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<bool> {
        self.string(v)
    }

    /// A `None` entry is left out, as monerod leaves out optional fields.
    fn serialize_none(self) -> Result<bool> {
        self.not_in_array("None inside an array")?;
        Ok(false)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool> {
        Err(Error::Unsupported("unit"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool> {
        Err(Error::Unsupported("a unit struct"))
    }
    /// Unit variants travel as their names.
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<bool> {
        self.string(variant.as_bytes())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool> {
        Err(Error::Unsupported("an enum variant with data"))
    }

    /// A sequence is an array; an empty one is left out, as monerod does.
    fn serialize_seq(mut self, len: Option<usize>) -> Result<SeqSer<'a>> {
        self.not_in_array("an array of arrays")?;
        let ty_pos = self.tag(0)?;
        let width = varint::width(len.unwrap_or(0) as u64);
        let count_at = self.st.reserve_count(width);
        Ok(SeqSer {
            st: self.st,
            ty_pos,
            count_at,
            count: 0,
        })
    }

    /// Tuples are fixed-size byte arrays such as `[u8; 32]`: a string.
    fn serialize_tuple(mut self, len: usize) -> Result<BytesSer<'a>> {
        self.tag(tag::STRING)?;
        varint::write(&mut self.st.out, len as u64)?;
        let next = self.st.out.len();
        let end = next
            .checked_add(len)
            .ok_or(Error::Unsupported("a tuple longer than memory"))?;
        self.st.out.resize(end, 0);
        Ok(BytesSer {
            out: &mut self.st.out[next..],
        })
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(Error::Unsupported("a tuple struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Error::Unsupported("an enum variant with data"))
    }
    fn serialize_map(mut self, len: Option<usize>) -> Result<SectionSer<'a>> {
        self.tag(tag::OBJECT)?;
        Ok(SectionSer::begin(self.st, len.unwrap_or(0)))
    }
    fn serialize_struct(mut self, _: &'static str, len: usize) -> Result<SectionSer<'a>> {
        self.tag(tag::OBJECT)?;
        Ok(SectionSer::begin(self.st, len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Error::Unsupported("an enum variant with data"))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The entries of one section.
struct SectionSer<'a> {
    st: &'a mut State,
    /// Where the count lies.
    count_at: Range<usize>,
    /// Where the first entry starts.
    body: usize,
    /// Entries written.
    count: usize,
    /// Where the entry written last starts.
    last: usize,
    /// Whether every name was greater than the one before.
    sorted: bool,
    /// Start of the entry whose key was written last (maps only).
    key_start: usize,
}

impl<'a> SectionSer<'a> {
    fn begin(st: &'a mut State, len: usize) -> Self {
        let width = varint::width(len as u64);
        let count_at = st.reserve_count(width);
        let body = st.out.len();
        SectionSer {
            st,
            count_at,
            body,
            count: 0,
            last: body,
            sorted: true,
            key_start: 0,
        }
    }

    /// Writes the value of the entry that starts at `start`, or removes the
    /// entry if the value turns out to be empty.
    #[inline]
    fn value<T: Serialize + ?Sized>(
        &mut self,
        start: usize,
        place: Place,
        value: &T,
    ) -> Result<()> {
        let written = value.serialize(ValueSer {
            st: &mut *self.st,
            place,
        })?;
        if !written {
            self.st.out.truncate(start);
            return Ok(());
        }
        if self.count > 0 && self.sorted {
            let out = &self.st.out;
            self.sorted = less(name_at(out, self.last), name_at(out, start));
        }
        self.last = start;
        // Each entry takes bytes of the output: the count cannot saturate.
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    /// Puts the entries in name order if they are not, rejects duplicates
    /// and writes the count.
    fn finish(mut self) -> Result<bool> {
        if !self.sorted {
            self.reorder()?;
        }
        self.st.patch_count(self.count_at, self.count)?;
        Ok(true)
    }

    #[cold]
    #[inline(never)]
    fn reorder(&mut self) -> Result<()> {
        let State { out, scratch } = &mut *self.st;
        // The entries, and their spans within them.
        let entries = out.get(self.body..).unwrap_or_default();
        let mut spans = Vec::with_capacity(self.count);
        let mut walk = Walk::new(entries, 0);
        for _ in 0..self.count {
            let start = walk.pos();
            walk.entry()?;
            spans.push(start..walk.pos());
        }
        spans.sort_unstable_by(|a, b| name_at(entries, a.start).cmp(name_at(entries, b.start)));
        if let Some(pair) = spans
            .windows(2)
            .find(|pair| name_at(entries, pair[0].start) == name_at(entries, pair[1].start))
        {
            return Err(Error::DuplicateKey(Key(
                name_at(entries, pair[0].start).to_vec()
            )));
        }
        scratch.clear();
        scratch.extend_from_slice(entries);
        out.truncate(self.body);
        for span in spans {
            out.extend_from_slice(scratch.get(span).unwrap_or_default());
        }
        Ok(())
    }
}

impl ser::SerializeStruct for SectionSer<'_> {
    type Ok = bool;
    type Error = Error;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        let start = self.st.out.len();
        self.value(start, Place::Field(key), value)
    }

    fn end(self) -> Result<bool> {
        self.finish()
    }
}

impl ser::SerializeMap for SectionSer<'_> {
    type Ok = bool;
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key_start = self.st.out.len();
        key.serialize(KeySer(&mut *self.st))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.value(self.key_start, Place::Entry, value)
    }

    fn end(self) -> Result<bool> {
        self.finish()
    }
}

/// The elements of an array.
struct SeqSer<'a> {
    st: &'a mut State,
    ty_pos: usize,
    /// Where the count lies.
    count_at: Range<usize>,
    count: usize,
}

impl ser::SerializeSeq for SeqSer<'_> {
    type Ok = bool;
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        // Each element takes bytes of the output: the count cannot saturate.
        self.count = self.count.saturating_add(1);
        value.serialize(ValueSer {
            st: &mut *self.st,
            place: Place::Element {
                ty_pos: self.ty_pos,
            },
        })?;
        Ok(())
    }

    fn end(self) -> Result<bool> {
        if self.count == 0 {
            return Ok(false);
        }
        self.st.patch_count(self.count_at, self.count)?;
        Ok(true)
    }
}

/// The bytes of a fixed-size byte array, written as a string into room
/// made for them.
struct BytesSer<'a> {
    /// The room not filled yet.
    out: &'a mut [u8],
}

impl ser::SerializeTuple for BytesSer<'_> {
    type Ok = bool;
    type Error = Error;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let byte = value.serialize(ByteSer)?;
        let (slot, rest) = std::mem::take(&mut self.out)
            .split_first_mut()
            .ok_or(Error::Unsupported("a tuple longer than announced"))?;
        *slot = byte;
        self.out = rest;
        Ok(())
    }

    fn end(self) -> Result<bool> {
        if self.out.is_empty() {
            Ok(true)
        } else {
            Err(Error::Unsupported("a tuple shorter than announced"))
        }
    }
}

/// Accepts exactly one `u8`: an element of a fixed-size byte array.
struct ByteSer;

impl ser::Serializer for ByteSer {
    type Ok = u8;
    type Error = Error;
    type SerializeSeq = Impossible<u8, Error>;
    type SerializeTuple = Impossible<u8, Error>;
    type SerializeTupleStruct = Impossible<u8, Error>;
    type SerializeTupleVariant = Impossible<u8, Error>;
    type SerializeMap = Impossible<u8, Error>;
    type SerializeStruct = Impossible<u8, Error>;
    type SerializeStructVariant = Impossible<u8, Error>;

    fn serialize_u8(self, v: u8) -> Result<u8> {
        Ok(v)
    }

    refuse! { Error::Unsupported("a tuple of anything but bytes");
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    refuse_compound!(u8, Error::Unsupported("a tuple of anything but bytes"));
}

/// Writes a map key as an entry name.
struct KeySer<'a>(&'a mut State);

impl ser::Serializer for KeySer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<()> {
        self.0.write_name(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.0.write_name(v)
    }

    refuse! { Error::KeyNotString;
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    refuse_compound!((), Error::KeyNotString);
}
