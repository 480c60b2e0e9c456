//! The one place where untrusted bytes are read: every check the format and
//! the [`Limits`] demand happens here, shared by the serde deserializer and
//! the [`Value`](crate::Value) decoder.

use std::collections::HashSet;

use crate::{Error, HEADER, Key, Limits, Result, tag, varint};

/// Smallest encoding of one section entry: name length, a one-byte name,
/// the type byte and a one-byte value.
const MIN_ENTRY_SIZE: usize = 4;

/// Smallest encoding of one array element of type `elem`.
pub(crate) fn min_size(elem: u8) -> usize {
    match elem {
        tag::I64 | tag::U64 | tag::F64 => 8,
        tag::I32 | tag::U32 => 4,
        tag::I16 | tag::U16 => 2,
        // One byte for i8, u8 and bool; a one-byte varint for strings
        // (length), objects (entry count) and arrays (element count).
        _ => 1,
    }
}

/// Whether `a` sorts strictly before `b`, byte-wise. Names are short, and
/// often share long prefixes (`cumulative_difficulty`,
/// `cumulative_difficulty_top64`): eight bytes at a time, compared as
/// big-endian words, beat both a byte loop and a call to `memcmp`.
#[inline]
pub(crate) fn less(a: &[u8], b: &[u8]) -> bool {
    let common = a.len().min(b.len());
    let (a_head, b_head) = (&a[..common], &b[..common]);
    let mut a_words = a_head.chunks_exact(8);
    let mut b_words = b_head.chunks_exact(8);
    for (x, y) in a_words.by_ref().zip(b_words.by_ref()) {
        let x = u64::from_be_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_be_bytes(y.try_into().unwrap_or_default());
        if x != y {
            return x < y;
        }
    }
    for (x, y) in a_words.remainder().iter().zip(b_words.remainder()) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// Offset of `rest` in `input`, of which it is a tail: the subtraction
/// cannot saturate.
#[inline]
fn offset(input: &[u8], rest: &[u8]) -> usize {
    input.len().saturating_sub(rest.len())
}

/// A cursor over one body, with the running counts the limits apply to.
///
/// The cursor is the tail of the input not read yet: every step splits
/// bytes off its front, so no offset is ever computed on the way, and none
/// can overflow. The running counts saturate: a count at `usize::MAX` is
/// past every limit but an unlimited one.
pub(crate) struct Reader<'de> {
    input: &'de [u8],
    /// The bytes not read yet, a tail of `input`.
    rest: &'de [u8],
    limits: Limits,
    objects: usize,
    fields: usize,
    strings: usize,
    depth: usize,
}

/// What a reader remembers about one section while its entries are read.
///
/// Duplicate names are found cheaply while names arrive sorted, as monerod
/// writes them: each must be greater than the last. At the first name out of
/// order, the section's earlier names are read again from the input (it was
/// checked already, so this is a plain walk) into a set, which every later
/// name is checked against. The walk visits each earlier entry once, and its
/// cost is bounded by the field, string and object limits, not by the body's
/// size: arrays of numbers are stepped over whole.
pub(crate) struct SectionState<'de> {
    /// Entries not read yet.
    remaining: usize,
    /// Entries read so far.
    read: usize,
    /// Offset of the first entry.
    start: usize,
    /// The name read last.
    last: &'de [u8],
    /// All names so far, once one arrived out of order. Boxed: the state
    /// lives on the stack once per nesting level, and is rarely needed.
    #[allow(clippy::box_collection)]
    seen: Option<Box<HashSet<&'de [u8]>>>,
}

impl SectionState<'_> {
    /// Entries not read yet.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }

    /// Whether the names so far arrived in strictly increasing order.
    #[inline]
    pub(crate) fn sorted(&self) -> bool {
        self.seen.is_none()
    }
}

impl<'de> Reader<'de> {
    pub(crate) fn new(input: &'de [u8], limits: Limits) -> Self {
        Reader {
            input,
            rest: input,
            limits,
            objects: 0,
            fields: 0,
            strings: 0,
            depth: 0,
        }
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Offset of the next byte to read.
    #[inline]
    fn pos(&self) -> usize {
        offset(self.input, self.rest)
    }

    /// The input ends before the `wanted` bytes at the cursor.
    #[cold]
    #[inline(never)]
    fn eof(&self, wanted: usize) -> Error {
        Error::UnexpectedEof {
            offset: self.pos(),
            needed: wanted.saturating_sub(self.remaining()),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        let Some((bytes, rest)) = self.rest.split_at_checked(n) else {
            return Err(self.eof(n));
        };
        self.rest = rest;
        Ok(bytes)
    }

    #[inline]
    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        match self.rest.split_first_chunk::<N>() {
            Some((bytes, rest)) => {
                self.rest = rest;
                Ok(*bytes)
            }
            None => Err(self.eof(N)),
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.fixed::<1>()?[0])
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        match varint::read(self.rest) {
            Some((value, rest)) => {
                self.rest = rest;
                Ok(value)
            }
            None => Err(Error::UnexpectedEof {
                offset: self.pos(),
                needed: varint::missing(self.rest),
            }),
        }
    }

    /// Checks the 9-byte header.
    pub(crate) fn header(&mut self) -> Result<()> {
        match self.input.strip_prefix(&HEADER) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(Error::BadHeader),
        }
    }

    #[inline]
    pub(crate) fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Error::InvalidBool(other)),
        }
    }

    /// A string value: counted against `max_strings`, borrowed from the input.
    #[inline]
    pub(crate) fn string(&mut self) -> Result<&'de [u8]> {
        self.strings = self.strings.saturating_add(1);
        if self.strings > self.limits.max_strings {
            return Err(Error::TooManyStrings(self.limits.max_strings));
        }
        let len = self.varint()?;
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => self.take(n),
            _ => Err(Error::StringTooLong {
                len,
                remaining: self.remaining(),
            }),
        }
    }

    /// A type byte: a base type 1..=13, with or without the array flag.
    #[inline]
    fn type_byte(&mut self) -> Result<u8> {
        let ty = self.u8()?;
        match ty & !tag::ARRAY_FLAG {
            tag::I64..=tag::ARRAY => Ok(ty),
            _ => Err(Error::UnknownType(ty)),
        }
    }

    /// The element count of an array of `elem`, checked against what the rest
    /// of the input could hold.
    #[inline]
    pub(crate) fn array_len(&mut self, elem: u8) -> Result<usize> {
        let count = self.varint()?;
        if count > 0 && elem == tag::ARRAY {
            return Err(Error::NestedArray);
        }
        let remaining = self.remaining();
        // `n * size <= remaining` is `n <= remaining / size`, without a
        // division.
        let fits = |n: usize| {
            n.checked_mul(min_size(elem))
                .is_some_and(|bytes| bytes <= remaining)
        };
        match usize::try_from(count) {
            Ok(n) if fits(n) => Ok(n),
            _ => Err(Error::ArrayTooLong { count, remaining }),
        }
    }

    /// Counts a nested object and one more level of nesting.
    #[inline]
    pub(crate) fn enter_object(&mut self) -> Result<()> {
        self.objects = self.objects.saturating_add(1);
        if self.objects > self.limits.max_objects {
            return Err(Error::TooManyObjects(self.limits.max_objects));
        }
        self.depth = self.depth.saturating_add(1);
        if self.depth > self.limits.max_depth {
            return Err(Error::TooDeep(self.limits.max_depth));
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn leave_object(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Reads a section's entry count; its entries follow through
    /// [`next_entry`](Self::next_entry).
    #[inline]
    pub(crate) fn section(&mut self) -> Result<SectionState<'de>> {
        let count = self.varint()?;
        let remaining = self.remaining();
        let count = match usize::try_from(count) {
            Ok(n) if n <= remaining / MIN_ENTRY_SIZE => n,
            _ => return Err(Error::SectionTooLong { count, remaining }),
        };
        self.fields = self.fields.saturating_add(count);
        if self.fields > self.limits.max_fields {
            return Err(Error::TooManyFields(self.limits.max_fields));
        }
        Ok(SectionState {
            remaining: count,
            read: 0,
            start: self.pos(),
            last: &[],
            seen: None,
        })
    }

    /// The next entry's name and type byte, or `None` at the section's end.
    #[inline(always)]
    pub(crate) fn next_entry(
        &mut self,
        state: &mut SectionState<'de>,
    ) -> Result<Option<(&'de [u8], u8)>> {
        let Some(remaining) = state.remaining.checked_sub(1) else {
            return Ok(None);
        };
        // The common case in a few predictable checks: length byte, name,
        // type byte.
        let entry = self.rest.split_first().and_then(|(&len, rest)| {
            let (name, rest) = rest.split_at_checked(usize::from(len))?;
            let (&ty, rest) = rest.split_first()?;
            Some((name, ty, rest))
        });
        let (name, ty) = match entry {
            Some((name, ty, rest)) if !name.is_empty() => {
                self.rest = rest;
                (name, ty)
            }
            _ => return Err(self.entry_error()),
        };
        let ty = match ty & !tag::ARRAY_FLAG {
            tag::I64..=tag::OBJECT => ty,
            _ => self.odd_type(ty)?,
        };
        if state.seen.is_none() && (state.read == 0 || less(state.last, name)) {
            state.last = name;
        } else {
            self.check_unique(state, name)?;
        }
        state.remaining = remaining;
        // Below the section's count, which is a `usize`.
        state.read = state.read.saturating_add(1);
        Ok(Some((name, ty)))
    }

    /// Why an entry's name or type byte could not be read.
    #[cold]
    #[inline(never)]
    fn entry_error(&self) -> Error {
        match self.rest.first() {
            Some(0) => Error::EmptyName,
            len => Error::UnexpectedEof {
                offset: self.pos(),
                needed: (usize::from(len.copied().unwrap_or(0)) + 2)
                    .saturating_sub(self.remaining())
                    .max(1),
            },
        }
    }

    /// A type byte outside the scalar and object types: an array of arrays,
    /// a bare array tag (followed by the array's own type byte), or garbage.
    #[cold]
    #[inline(never)]
    fn odd_type(&mut self, ty: u8) -> Result<u8> {
        match ty {
            tag::ARRAY => {
                let inner = self.type_byte()?;
                if inner & tag::ARRAY_FLAG == 0 {
                    return Err(Error::UnknownType(inner));
                }
                Ok(inner)
            }
            ty if ty == tag::ARRAY_FLAG | tag::ARRAY => Ok(ty),
            _ => Err(Error::UnknownType(ty)),
        }
    }

    /// Rejects a name seen before in the same section, once its names
    /// stopped arriving in order.
    #[cold]
    #[inline(never)]
    fn check_unique(&mut self, state: &mut SectionState<'de>, name: &'de [u8]) -> Result<()> {
        if state.seen.is_none() {
            let mut walk = Walk::new(self.input, state.start);
            let mut seen = HashSet::with_capacity(state.read.saturating_add(1));
            for _ in 0..state.read {
                seen.insert(walk.entry()?);
            }
            state.seen = Some(Box::new(seen));
        }
        if let Some(seen) = &mut state.seen
            && !seen.insert(name)
        {
            return Err(Error::DuplicateKey(Key(name.to_vec())));
        }
        Ok(())
    }

    /// Reads past one value of type `ty`, checking it as thoroughly as if it
    /// were decoded.
    pub(crate) fn skip(&mut self, ty: u8) -> Result<()> {
        if ty & tag::ARRAY_FLAG != 0 {
            let elem = ty & !tag::ARRAY_FLAG;
            let count = self.array_len(elem)?;
            return match elem {
                tag::STRING | tag::BOOL | tag::OBJECT => {
                    for _ in 0..count {
                        self.skip(elem)?;
                    }
                    Ok(())
                }
                // Numbers need no check: step over the whole array (whose
                // size `array_len` checked, so the product does not saturate).
                _ => self.take(count.saturating_mul(min_size(elem))).map(drop),
            };
        }
        match ty {
            tag::STRING => self.string().map(drop),
            tag::BOOL => self.bool().map(drop),
            tag::OBJECT => {
                self.enter_object()?;
                self.skip_section()?;
                self.leave_object();
                Ok(())
            }
            scalar => self.take(min_size(scalar)).map(drop),
        }
    }

    /// Reads past the entries of a section whose count is next.
    pub(crate) fn skip_section(&mut self) -> Result<()> {
        let mut state = self.section()?;
        self.skip_entries(&mut state)
    }

    /// Reads past the entries of `state` that are left.
    #[inline]
    pub(crate) fn skip_entries(&mut self, state: &mut SectionState<'de>) -> Result<()> {
        if state.remaining == 0 {
            return Ok(());
        }
        self.skip_rest(state)
    }

    #[inline(never)]
    fn skip_rest(&mut self, state: &mut SectionState<'de>) -> Result<()> {
        while let Some((_, ty)) = self.next_entry(state)? {
            self.skip(ty)?;
        }
        Ok(())
    }
}

/// A second pass over entries already checked (by a [`Reader`], or written
/// by the encoder), to find their names and extents. It counts nothing and
/// checks only what it must to stay in bounds.
pub(crate) struct Walk<'de> {
    input: &'de [u8],
    /// The bytes not walked yet, a tail of `input`.
    rest: &'de [u8],
}

impl<'de> Walk<'de> {
    /// A walk of `input` from offset `pos` (past its end: a walk of nothing).
    pub(crate) fn new(input: &'de [u8], pos: usize) -> Self {
        Walk {
            input,
            rest: input.get(pos..).unwrap_or_default(),
        }
    }

    /// Offset of the next entry.
    pub(crate) fn pos(&self) -> usize {
        offset(self.input, self.rest)
    }

    fn bytes(&mut self, n: usize) -> Result<&'de [u8]> {
        let (bytes, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| Error::UnexpectedEof {
                offset: self.pos(),
                needed: n,
            })?;
        self.rest = rest;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn count(&mut self) -> Result<usize> {
        let (value, rest) = varint::read(self.rest).ok_or_else(|| Error::UnexpectedEof {
            offset: self.pos(),
            needed: varint::missing(self.rest),
        })?;
        self.rest = rest;
        // Checked against the input's length when first read.
        usize::try_from(value).map_err(|_| Error::ArrayTooLong {
            count: value,
            remaining: 0,
        })
    }

    /// Steps over one entry, returning its name.
    pub(crate) fn entry(&mut self) -> Result<&'de [u8]> {
        let len = usize::from(self.byte()?);
        let name = self.bytes(len)?;
        let mut ty = self.byte()?;
        if ty == tag::ARRAY {
            ty = self.byte()?;
        }
        self.value(ty)?;
        Ok(name)
    }

    fn value(&mut self, ty: u8) -> Result<()> {
        if ty & tag::ARRAY_FLAG != 0 {
            let elem = ty & !tag::ARRAY_FLAG;
            let count = self.count()?;
            match elem {
                tag::STRING | tag::OBJECT => {
                    for _ in 0..count {
                        self.value(elem)?;
                    }
                }
                _ => drop(self.bytes(count.saturating_mul(min_size(elem)))?),
            }
            return Ok(());
        }
        match ty {
            tag::STRING => {
                let len = self.count()?;
                self.bytes(len).map(drop)
            }
            tag::OBJECT => {
                for _ in 0..self.count()? {
                    self.entry()?;
                }
                Ok(())
            }
            scalar => self.bytes(min_size(scalar)).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::less;

    #[test]
    fn less_is_the_byte_order() {
        let names: Vec<Vec<u8>> = [
            &b""[..],
            b"a",
            b"ab",
            b"b",
            b"cumulative_difficulty",
            b"cumulative_difficulty_top64",
            b"cumulative_difficultz",
            b"current_height",
            b"\xff\x00",
            b"\xff",
            b"0123456789abcdef",
            b"0123456789abcdeg",
            b"0123456789abcdef0",
        ]
        .iter()
        .map(|name| name.to_vec())
        .collect();
        for a in &names {
            for b in &names {
                assert_eq!(less(a, b), a < b, "{a:?} {b:?}");
            }
        }
    }
}
