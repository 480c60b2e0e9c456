//! A dynamic tree for content whose shape is not known ahead of time.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::reader::{Reader, SectionState};
use crate::stash::{self, VALUE_TOKEN};
use crate::{Error, Result, tag};

/// One value of any type of the format.
///
/// Decoding keeps every type byte: a `u16` stays a `u16` and re-encodes as
/// one. Strings are [`Bytes`]: views of the input when decoding from `Bytes`
/// with [`from_bytes`](crate::from_bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `i64`.
    I64(i64),
    /// `i32`.
    I32(i32),
    /// `i16`.
    I16(i16),
    /// `i8`.
    I8(i8),
    /// `u64`.
    U64(u64),
    /// `u32`.
    U32(u32),
    /// `u16`.
    U16(u16),
    /// `u8`.
    U8(u8),
    /// `f64`.
    F64(f64),
    /// A string: raw bytes, not necessarily UTF-8.
    String(Bytes),
    /// A boolean.
    Bool(bool),
    /// A nested section.
    Object(Section),
    /// An array.
    Array(Array),
}

/// An array: elements of one type, stored unboxed.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// `i64` elements.
    I64(Vec<i64>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `u16` elements.
    U16(Vec<u16>),
    /// `u8` elements.
    U8(Vec<u8>),
    /// `f64` elements.
    F64(Vec<f64>),
    /// String elements.
    String(Vec<Bytes>),
    /// Boolean elements.
    Bool(Vec<bool>),
    /// Section elements.
    Object(Vec<Section>),
    /// An array typed as holding arrays, which the format only allows empty.
    Arrays,
}

/// A section: named values with unique names, kept sorted by name (the order
/// monerod writes them in).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    entries: Vec<(Bytes, Value)>,
}

impl Section {
    /// An empty section.
    pub fn new() -> Self {
        Section::default()
    }

    /// The value named `name`.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&Value> {
        let name = name.as_ref();
        self.entries
            .binary_search_by(|(key, _)| key.as_ref().cmp(name))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// Sets `name` to `value`, returning the value it replaces.
    pub fn insert(&mut self, name: impl Into<Bytes>, value: Value) -> Option<Value> {
        let name = name.into();
        match self.entries.binary_search_by(|(key, _)| key.cmp(&name)) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (name, value));
                None
            }
        }
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Bytes, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer of
    /// any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::U32(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U8(v) => Some(v.into()),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I8(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::String(b) => Some(b),
            _ => None,
        }
    }

    /// The section of an object value.
    pub fn as_section(&self) -> Option<&Section> {
        match self {
            Value::Object(s) => Some(s),
            _ => None,
        }
    }

    /// The array of an array value.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl Array {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::I64(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::U8(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::Object(v) => v.len(),
            Array::Arrays => 0,
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `n` items with `item`, allocating once.
fn collect<T>(n: usize, mut item: impl FnMut() -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(item()?);
    }
    Ok(out)
}

/// A [`Bytes`] holding `slice`, which lies inside `source` when there is one.
fn view(source: Option<&Bytes>, slice: &[u8]) -> Bytes {
    match source {
        Some(source) => source.slice_ref(slice),
        None => Bytes::copy_from_slice(slice),
    }
}

/// Reads a section whose entry count is next.
pub(crate) fn read_section<'de>(r: &mut Reader<'de>, source: Option<&Bytes>) -> Result<Section> {
    let mut state = r.section()?;
    read_entries(r, &mut state, source)
}

/// Reads the entries of `state` that are left.
pub(crate) fn read_entries<'de>(
    r: &mut Reader<'de>,
    state: &mut SectionState<'de>,
    source: Option<&Bytes>,
) -> Result<Section> {
    let mut entries = Vec::with_capacity(state.remaining());
    while let Some((name, ty)) = r.next_entry(state)? {
        let value = read_value(r, ty, source)?;
        entries.push((view(source, name), value));
    }
    if !state.sorted() {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(Section { entries })
}

/// Reads one value of type `ty` (whose type byte is already read).
pub(crate) fn read_value<'de>(
    r: &mut Reader<'de>,
    ty: u8,
    source: Option<&Bytes>,
) -> Result<Value> {
    if ty & tag::ARRAY_FLAG != 0 {
        return read_array(r, ty & !tag::ARRAY_FLAG, source).map(Value::Array);
    }
    Ok(match ty {
        tag::I64 => Value::I64(i64::from_le_bytes(r.fixed()?)),
        tag::I32 => Value::I32(i32::from_le_bytes(r.fixed()?)),
        tag::I16 => Value::I16(i16::from_le_bytes(r.fixed()?)),
        tag::I8 => Value::I8(i8::from_le_bytes(r.fixed()?)),
        tag::U64 => Value::U64(u64::from_le_bytes(r.fixed()?)),
        tag::U32 => Value::U32(u32::from_le_bytes(r.fixed()?)),
        tag::U16 => Value::U16(u16::from_le_bytes(r.fixed()?)),
        tag::U8 => Value::U8(r.u8()?),
        tag::F64 => Value::F64(f64::from_le_bytes(r.fixed()?)),
        tag::STRING => Value::String(view(source, r.string()?)),
        tag::BOOL => Value::Bool(r.bool()?),
        tag::OBJECT => {
            r.enter_object()?;
            let section = read_section(r, source)?;
            r.leave_object();
            Value::Object(section)
        }
        other => return Err(Error::UnknownType(other)),
    })
}

fn read_array<'de>(r: &mut Reader<'de>, elem: u8, source: Option<&Bytes>) -> Result<Array> {
    let n = r.array_len(elem)?;
    Ok(match elem {
        tag::I64 => Array::I64(collect(n, || r.fixed().map(i64::from_le_bytes))?),
        tag::I32 => Array::I32(collect(n, || r.fixed().map(i32::from_le_bytes))?),
        tag::I16 => Array::I16(collect(n, || r.fixed().map(i16::from_le_bytes))?),
        tag::I8 => Array::I8(collect(n, || r.fixed().map(i8::from_le_bytes))?),
        tag::U64 => Array::U64(collect(n, || r.fixed().map(u64::from_le_bytes))?),
        tag::U32 => Array::U32(collect(n, || r.fixed().map(u32::from_le_bytes))?),
        tag::U16 => Array::U16(collect(n, || r.fixed().map(u16::from_le_bytes))?),
        tag::U8 => Array::U8(collect(n, || r.u8())?),
        tag::F64 => Array::F64(collect(n, || r.fixed().map(f64::from_le_bytes))?),
        tag::STRING => Array::String(collect(n, || r.string().map(|s| view(source, s)))?),
        tag::BOOL => Array::Bool(collect(n, || r.bool())?),
        tag::OBJECT => Array::Object(collect(n, || {
            r.enter_object()?;
            let section = read_section(r, source)?;
            r.leave_object();
            Ok(section)
        })?),
        // `array_len` refused any element, so the array is empty.
        _ => Array::Arrays,
    })
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::I64(v) => s.serialize_i64(*v),
            Value::I32(v) => s.serialize_i32(*v),
            Value::I16(v) => s.serialize_i16(*v),
            Value::I8(v) => s.serialize_i8(*v),
            Value::U64(v) => s.serialize_u64(*v),
            Value::U32(v) => s.serialize_u32(*v),
            Value::U16(v) => s.serialize_u16(*v),
            Value::U8(v) => s.serialize_u8(*v),
            Value::F64(v) => s.serialize_f64(*v),
            Value::String(v) => s.serialize_bytes(v),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::Object(v) => v.serialize(s),
            Value::Array(v) => v.serialize(s),
        }
    }
}

/// Serializes the elements of a slice as a sequence.
fn seq<S: Serializer, T>(s: S, items: &[T], item: impl Fn(&T) -> Value) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for element in items {
        seq.serialize_element(&item(element))?;
    }
    seq.end()
}

impl Serialize for Array {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Array::I64(v) => seq(s, v, |x| Value::I64(*x)),
            Array::I32(v) => seq(s, v, |x| Value::I32(*x)),
            Array::I16(v) => seq(s, v, |x| Value::I16(*x)),
            Array::I8(v) => seq(s, v, |x| Value::I8(*x)),
            Array::U64(v) => seq(s, v, |x| Value::U64(*x)),
            Array::U32(v) => seq(s, v, |x| Value::U32(*x)),
            Array::U16(v) => seq(s, v, |x| Value::U16(*x)),
            Array::U8(v) => seq(s, v, |x| Value::U8(*x)),
            Array::F64(v) => seq(s, v, |x| Value::F64(*x)),
            Array::String(v) => seq(s, v, |x| Value::String(x.clone())),
            Array::Bool(v) => seq(s, v, |x| Value::Bool(*x)),
            Array::Object(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for section in v {
                    seq.serialize_element(section)?;
                }
                seq.end()
            }
            Array::Arrays => s.serialize_seq(Some(0))?.end(),
        }
    }
}

/// A name serialized as bytes, so names need not be UTF-8.
struct Name<'a>(&'a [u8]);

impl Serialize for Name<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Section {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (name, value) in &self.entries {
            map.serialize_entry(&Name(name), value)?;
        }
        map.end()
    }
}

/// Takes back the value this crate's deserializer decoded for a reserved
/// name; no other deserializer can produce one.
struct StashVisitor;

impl Visitor<'_> for StashVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a portable-storage value, decoded by strata-portable-storage")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        stash::take().ok_or_else(|| E::custom("no portable-storage value was decoded"))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(VALUE_TOKEN, StashVisitor)
    }
}

impl<'de> Deserialize<'de> for Section {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(section) => Ok(section),
            other => Err(de::Error::custom(format_args!(
                "expected an object, found {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/portable-storage.md` promises that a decoded tree takes at most
    /// 32 bytes of memory per byte of the smallest encoding of what it holds.
    #[test]
    fn memory_per_wire_byte_is_bounded() {
        use std::mem::size_of;
        // Array elements: strings and objects take 1 wire byte at least.
        assert!(size_of::<Bytes>() <= 32);
        assert!(size_of::<Section>() <= 32);
        // A section entry takes 4 wire bytes at least.
        assert!(size_of::<(Bytes, Value)>() <= 4 * 32);
    }
}
