//! The one place where untrusted bytes are read: every check the format and
//! the [`Limits`] demand happens here, shared by the serde deserializer and
//! the [`Value`](crate::Value) decoder.

use std::collections::HashSet;

use crate::{Error, HEADER, Key, Limits, Result, tag, varint};

/// Sections with more keys than this switch duplicate detection from a
/// linear scan to a hash set once their keys arrive out of order.
const LINEAR_KEY_SCAN: usize = 16;

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

/// A cursor over one body, with the running counts the limits apply to.
pub(crate) struct Reader<'de> {
    input: &'de [u8],
    pos: usize,
    limits: Limits,
    objects: usize,
    fields: usize,
    strings: usize,
    depth: usize,
    /// Names of the entries of every section being read, innermost last.
    keys: Vec<&'de [u8]>,
}

/// What a reader remembers about one section while its entries are read.
pub(crate) struct SectionState<'de> {
    remaining: usize,
    /// Where this section's names start in [`Reader::keys`].
    base: usize,
    /// Whether every name so far was greater than the one before.
    sorted: bool,
    /// All names so far, once a large section arrived out of order.
    seen: Option<HashSet<&'de [u8]>>,
}

impl SectionState<'_> {
    /// Entries not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }

    /// Whether the names so far arrived in strictly increasing order.
    pub(crate) fn sorted(&self) -> bool {
        self.sorted
    }
}

impl<'de> Reader<'de> {
    pub(crate) fn new(input: &'de [u8], limits: Limits) -> Self {
        Reader {
            input,
            pos: 0,
            limits,
            objects: 0,
            fields: 0,
            strings: 0,
            depth: 0,
            keys: Vec::new(),
        }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        let Some(bytes) = self.input.get(self.pos..self.pos.saturating_add(n)) else {
            return Err(Error::UnexpectedEof {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        };
        self.pos += n;
        Ok(bytes)
    }

    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.fixed::<1>()?[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let (value, len) = varint::read(self.input, self.pos)?;
        self.pos += len;
        Ok(value)
    }

    /// Checks the 9-byte header.
    pub(crate) fn header(&mut self) -> Result<()> {
        match self.input.get(..HEADER.len()) {
            Some(h) if h == HEADER => {
                self.pos = HEADER.len();
                Ok(())
            }
            _ => Err(Error::BadHeader),
        }
    }

    pub(crate) fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Error::InvalidBool(other)),
        }
    }

    /// A string value: counted against `max_strings`, borrowed from the input.
    pub(crate) fn string(&mut self) -> Result<&'de [u8]> {
        self.strings += 1;
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
    pub(crate) fn type_byte(&mut self) -> Result<u8> {
        let ty = self.u8()?;
        match ty & !tag::ARRAY_FLAG {
            tag::I64..=tag::ARRAY => Ok(ty),
            _ => Err(Error::UnknownType(ty)),
        }
    }

    /// The element count of an array of `elem`, checked against what the rest
    /// of the input could hold.
    pub(crate) fn array_len(&mut self, elem: u8) -> Result<usize> {
        let count = self.varint()?;
        if count > 0 && elem == tag::ARRAY {
            return Err(Error::NestedArray);
        }
        let remaining = self.remaining();
        match usize::try_from(count) {
            Ok(n) if n <= remaining / min_size(elem) => Ok(n),
            _ => Err(Error::ArrayTooLong { count, remaining }),
        }
    }

    /// Counts a nested object and one more level of nesting.
    pub(crate) fn enter_object(&mut self) -> Result<()> {
        self.objects += 1;
        if self.objects > self.limits.max_objects {
            return Err(Error::TooManyObjects(self.limits.max_objects));
        }
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(Error::TooDeep(self.limits.max_depth));
        }
        Ok(())
    }

    pub(crate) fn leave_object(&mut self) {
        self.depth -= 1;
    }

    /// Reads a section's entry count; its entries follow through
    /// [`next_entry`](Self::next_entry).
    pub(crate) fn section(&mut self) -> Result<SectionState<'de>> {
        let count = self.varint()?;
        let remaining = self.remaining();
        let count = match usize::try_from(count) {
            Ok(n) if n <= remaining / MIN_ENTRY_SIZE => n,
            _ => return Err(Error::SectionTooLong { count, remaining }),
        };
        self.fields += count;
        if self.fields > self.limits.max_fields {
            return Err(Error::TooManyFields(self.limits.max_fields));
        }
        Ok(SectionState {
            remaining: count,
            base: self.keys.len(),
            sorted: true,
            seen: None,
        })
    }

    /// The next entry's name and type byte, or `None` at the section's end.
    pub(crate) fn next_entry(
        &mut self,
        state: &mut SectionState<'de>,
    ) -> Result<Option<(&'de [u8], u8)>> {
        if state.remaining == 0 {
            self.keys.truncate(state.base);
            return Ok(None);
        }
        state.remaining -= 1;
        let len = usize::from(self.u8()?);
        if len == 0 {
            return Err(Error::EmptyName);
        }
        let name = self.take(len)?;
        self.check_unique(state, name)?;
        let mut ty = self.type_byte()?;
        if ty == tag::ARRAY {
            // A bare array type is followed by the array's own type byte.
            ty = self.type_byte()?;
            if ty & tag::ARRAY_FLAG == 0 {
                return Err(Error::UnknownType(ty));
            }
        }
        Ok(Some((name, ty)))
    }

    /// Rejects a name seen before in the same section. Names monerod writes
    /// arrive sorted, which a single comparison confirms.
    fn check_unique(&mut self, state: &mut SectionState<'de>, name: &'de [u8]) -> Result<()> {
        let earlier = &self.keys[state.base..];
        if state.sorted && earlier.last().is_none_or(|last| *last < name) {
            self.keys.push(name);
            return Ok(());
        }
        state.sorted = false;
        let duplicate = match &mut state.seen {
            Some(seen) => !seen.insert(name),
            None if earlier.len() < LINEAR_KEY_SCAN => earlier.contains(&name),
            None => {
                let mut seen: HashSet<&[u8]> = earlier.iter().copied().collect();
                let duplicate = !seen.insert(name);
                state.seen = Some(seen);
                duplicate
            }
        };
        if duplicate {
            return Err(Error::DuplicateKey(Key(name.to_vec())));
        }
        self.keys.push(name);
        Ok(())
    }

    /// Reads past one value of type `ty`, checking it as thoroughly as if it
    /// were decoded.
    pub(crate) fn skip(&mut self, ty: u8) -> Result<()> {
        if ty & tag::ARRAY_FLAG != 0 {
            let elem = ty & !tag::ARRAY_FLAG;
            for _ in 0..self.array_len(elem)? {
                self.skip(elem)?;
            }
            return Ok(());
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
            // Only empty arrays of arrays exist, and they have no elements.
            tag::ARRAY => Err(Error::NestedArray),
            scalar => self.take(min_size(scalar)).map(drop),
        }
    }

    /// Reads past the entries of a section whose count is next.
    pub(crate) fn skip_section(&mut self) -> Result<()> {
        let mut state = self.section()?;
        self.skip_entries(&mut state)
    }

    /// Reads past the entries of `state` that are left.
    pub(crate) fn skip_entries(&mut self, state: &mut SectionState<'de>) -> Result<()> {
        while let Some((_, ty)) = self.next_entry(state)? {
            self.skip(ty)?;
        }
        Ok(())
    }
}
