//! Rateless IBLT set reconciliation (Yang, Gilad, Alizadeh, "Practical
//! Rateless Set Reconciliation", SIGCOMM 2024).
//!
//! A set of fixed-size elements (`[u8; N]`; strata reconciles 40-byte record
//! digests) defines an endless sequence of [`CodedSymbol`]s. Each symbol holds
//! the XOR of the elements mapped to it, the XOR of their 64-bit checksums and
//! their signed count. Element `x` is mapped to symbol `i` with probability
//! `1 / (1 + i/2)`, always to symbol 0, and to about `2 ln(m/2)` of the first
//! `m` symbols.
//!
//! Symbols are linear: the symbols of set A minus those of set B (XOR the
//! sums and checksums, subtract the counts) are the symbols of the difference,
//! with A's elements counted +1 and B's −1; every shared element cancels. A
//! difference of `d` elements is recovered from about `1.35·d` symbols by
//! peeling: a symbol whose count is ±1 and whose checksum is the checksum of
//! its sum holds exactly one element, which is then removed from every other
//! symbol it maps to, and so on.
//!
//! # Protocol
//!
//! Peer A streams its symbols ([`Encoder`], or a [`Sketch`] prefix); peer B
//! feeds them to a [`Decoder`] that subtracts B's own symbols (from an
//! [`Encoder`] or a [`Sketch`] of B's set) and peels. When
//! [`Decoder::is_decoded`], B tells A to stop: [`Decoder::remote_only`] is
//! A \ B and [`Decoder::local_only`] is B \ A. No estimate of the difference
//! size is needed, and it takes about one round trip.
//!
//! A symbol stream from a hostile peer may never decode, so the caller caps
//! it: the decoder refuses symbols past [`MAX_SYMBOLS`] (or the cap set with
//! [`Decoder::with_max_symbols`]), and [`Decoder::symbols_received`] tells how
//! far it got. What a decoder reports is what the peer's symbols claim; the
//! records behind it are checked when they are fetched.
//!
//! # Sets, not multisets
//!
//! Adding an element twice XORs it out of the sums and checksums but leaves a
//! count of 2: the element is then neither in the set nor out of it, and a
//! reconciliation that involves it never completes (the count of symbol 0 is
//! off by two for good). Callers insert each element at most once, and remove
//! only what they inserted.
//!
//! # Hashing and keys
//!
//! One call of Blake2b (192-bit output) over the element, under a 32-byte
//! [`Key`], gives the element's 64-bit checksum and a 128-bit seed for its
//! index mapping. The key fills the salt and personalisation fields of
//! Blake2b's parameter block (Blake2's own mechanism for independent hash
//! functions), so hashing a 40-byte element costs one compression; Blake2b's
//! key block would cost a second. The key is not assumed secret: the peer
//! knows it. What it buys is that nobody can prepare elements against it
//! before it exists.
//!
//! - **Per-session key**: each reconciliation can use a fresh key (derived,
//!   for example, from both peers' nonces). Elements that a third party
//!   planted in both stores to collide under one key are ordinary elements
//!   under the next.
//! - **Epoch key**: a [`Sketch`] kept up to date under one key for a period
//!   serves every session of that period; a fresh key per epoch bounds how
//!   long crafted elements can hurt.
//!
//! Why 128 bits of seed: two different elements with the same index mapping
//! land in the same symbols everywhere, so when both are in the difference no
//! symbol ever holds one of them alone and decoding never completes. The
//! mapping is a function of the seed alone, so with a 64-bit seed such a pair
//! would cost about 2^32 hash calls (a birthday search) to anyone who knows
//! the key; with 128 bits it costs about 2^64. A pair that agrees only on the
//! first `m` symbols merely delays decoding past `m`, and is cheaper: the
//! indices an element hits among the first `m` symbols carry about 72 bits
//! for m = 1,000, 127 for 10,000 and 232 for [`MAX_SYMBOLS`], so under the
//! cap a pair that never separates still costs about 2^64. The key must
//! exist before the search can start, which is what a per-session key
//! denies. The 64-bit checksum makes a false "pure" symbol a 2^-64 event per
//! test.
//!
//! # Index mapping
//!
//! Index `k` should be hit with probability `p_k = 2/(k + 2)`, independently,
//! so from index `i` the next index is at least `i + g` with probability
//! `∏ (1 − p_k)` over the `g − 1` indices skipped, `(i + 1)(i + 2) /
//! ((i + g)(i + g + 1))`, about `((i + 1.5) / (i + g + 0.5))²`. Inverting the
//! latter, the seed starts a 128-bit linear congruential generator; each step
//! takes its top 53 bits as `u` in (0, 1] and jumps by
//! `floor((i + 1.5) · (u^(-1/2) − 1)) + 1`. The hits are then
//! independent with probability exactly `8(k + 1) / (2k + 3)²`
//! `= 2/(k + 2) · (1 − 1/(2k + 3)²)`: 4% under `p_1`, 0.3% under `p_8`. (The
//! exact inverse costs a square root and a division on the chain from one
//! index to the next, and measured no better.) Only exactly rounded IEEE
//! operations on values below 2^52 are used (`sqrt`, division, conversions
//! between integers and floats), so every platform computes the same indices;
//! an element never maps past index 2^52 − 1.
//!
//! # Wire format of a symbol
//!
//! `sum` (N bytes) ‖ `checksum` (8 bytes, little-endian) ‖ `count` (zigzag
//! LEB128, 1 to 10 bytes, minimal). Symbols from a set of `n` elements have
//! counts of about `2n/(i + 2)`; symbols of a difference have small counts.
//! [`CodedSymbol::decode`] rejects truncated input, counts over 64 bits and
//! non-minimal counts with a [`WireError`].

use std::fmt;
use std::ops::Sub;

use blake2::Blake2bVarCore;
use blake2::digest::core_api::{Buffer, UpdateCore, VariableOutputCore};

#[cfg(test)]
mod tests;

/// Default cap on the symbols a [`Decoder`] accepts in one session: 2^18
/// symbols, about 13 MB of 40-byte elements, enough for about 190,000
/// differences. Past a few hundred thousand differences streaming the records
/// themselves is cheaper than reconciling them.
pub const MAX_SYMBOLS: usize = 1 << 18;

/// Length of a [`Key`].
pub const KEY_LEN: usize = 32;

/// Longest zigzag LEB128 encoding of an `i64` count.
const MAX_COUNT_LEN: usize = 10;

/// Bytes of Blake2b output used: an 8-byte checksum and a 16-byte seed.
const HASH_LEN: usize = 24;

/// Multiplier of the 128-bit linear congruential generator of the mapping.
const LCG_MUL: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;
/// Increment of the same generator (odd, so the period is 2^128).
const LCG_INC: u128 = 0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f;
/// 2^-53: turns 53 random bits into a float in (0, 1].
const TWO_POW_MINUS_53: f64 = 1.0 / 9_007_199_254_740_992.0;
/// 2^52: below it, floats hold every integer and half-integer exactly.
const TWO_POW_52: f64 = 4_503_599_627_370_496.0;
/// The last index a mapping takes; past it (no prefix is that long) an
/// element maps to no more symbols.
const LAST_INDEX: u64 = (1 << 52) - 1;
/// The index of a mapping past [`LAST_INDEX`].
const NEVER: u64 = u64::MAX;

/// The key of the mapping and checksum hash. Both peers of a reconciliation
/// use the same key; see the [module docs](self) for per-session and epoch
/// keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; KEY_LEN]);

/// Blake2b-192 with the key in the salt and personalisation fields, ready to
/// hash elements.
#[derive(Clone)]
struct Hasher {
    core: Blake2bVarCore,
}

impl Hasher {
    fn new(key: &Key) -> Self {
        let (salt, persona) = key.0.split_at(KEY_LEN / 2);
        Hasher {
            core: Blake2bVarCore::new_with_params(salt, persona, 0, HASH_LEN),
        }
    }

    /// The element's checksum and mapping seed.
    #[inline]
    fn hash<const N: usize>(&self, element: &[u8; N]) -> (u64, u128) {
        let mut core = self.core.clone();
        let mut buffer = Buffer::<Blake2bVarCore>::default();
        buffer.digest_blocks(element, |blocks| core.update_blocks(blocks));
        let mut out = Default::default();
        core.finalize_variable_core(&mut buffer, &mut out);
        let mut checksum = [0u8; 8];
        let mut seed = [0u8; 16];
        checksum.copy_from_slice(&out[..8]);
        seed.copy_from_slice(&out[8..HASH_LEN]);
        (u64::from_le_bytes(checksum), u128::from_le_bytes(seed))
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

/// The increasing sequence of symbol indices one element is mapped to.
#[derive(Clone, Copy, Debug)]
struct Mapping {
    /// Generator state, low and high words (two words keep the alignment of
    /// an item at 8 bytes).
    state: [u64; 2],
    /// The current index: 0 at first, then each value [`Mapping::advance`]
    /// returned.
    index: u64,
}

impl Mapping {
    fn new(seed: u128) -> Self {
        Mapping {
            state: split(seed),
            index: 0,
        }
    }

    /// Moves to the next index and returns it: [`NEVER`] once past
    /// [`LAST_INDEX`].
    #[inline]
    #[expect(
        clippy::cast_possible_truncation,
        reason = "`x` is in [0, 2^52), where truncation is exact"
    )]
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "the shifted state is below 2^53, the index at most LAST_INDEX and the gap below \
                  2^52 + 1: every sum is below 2^54"
    )]
    fn advance(&mut self) -> u64 {
        let state = (u128::from(self.state[1]) << 64 | u128::from(self.state[0]))
            .wrapping_mul(LCG_MUL)
            .wrapping_add(LCG_INC);
        self.state = split(state);
        if self.index > LAST_INDEX {
            return NEVER;
        }
        // Exact: at most 2^53.
        let u = ((self.state[1] >> 11) + 1).cast_signed() as f64 * TWO_POW_MINUS_53;
        // Exact: the index is below 2^52.
        let x = (self.index.cast_signed() as f64 + 1.5) * (u.sqrt().recip() - 1.0);
        // `x` is not NaN: `u` is positive.
        if x >= TWO_POW_52 {
            self.index = NEVER;
            return NEVER;
        }
        // The gap is `floor(x) + 1`: `ceil(x)` but at integers, where it is
        // one more (so at least 1, even for u = 1), which the distribution
        // does not see. Truncation is the floor of a non-negative `x`.
        let next = self.index + (x as i64).cast_unsigned() + 1;
        self.index = if next <= LAST_INDEX { next } else { NEVER };
        self.index
    }
}

/// The low and high words of `value`.
#[expect(clippy::cast_possible_truncation, reason = "taking the low word")]
fn split(value: u128) -> [u64; 2] {
    [value as u64, (value >> 64) as u64]
}

/// One coded symbol: the XOR of the elements mapped to it, the XOR of their
/// checksums and how many there are (negative in a difference where the
/// subtracted side had more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodedSymbol<const N: usize> {
    /// XOR of the elements.
    pub sum: [u8; N],
    /// XOR of the elements' checksums.
    pub checksum: u64,
    /// Number of elements added minus number subtracted.
    pub count: i64,
}

impl<const N: usize> Default for CodedSymbol<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> CodedSymbol<N> {
    /// The symbol of no elements.
    pub const EMPTY: Self = CodedSymbol {
        sum: [0; N],
        checksum: 0,
        count: 0,
    };

    /// Longest wire encoding of a symbol.
    pub const MAX_ENCODED_LEN: usize = N + 8 + MAX_COUNT_LEN;
    /// The sum and the checksum, before the count.
    const FIXED_LEN: usize = N + 8;
    /// Shortest wire encoding of a symbol: a count of one byte.
    const MIN_ENCODED_LEN: usize = N + 9;

    /// Whether the symbol holds no elements.
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.checksum == 0 && self.sum == [0; N]
    }

    /// Adds (`delta` = 1) or removes (`delta` = −1) an element.
    #[inline(always)]
    fn apply(&mut self, element: &[u8; N], checksum: u64, delta: i64) {
        xor_into(&mut self.sum, element);
        self.checksum ^= checksum;
        self.count = self.count.wrapping_add(delta);
    }

    /// Length of the wire encoding.
    pub fn encoded_len(&self) -> usize {
        let bits = u64::BITS.saturating_sub(zigzag(self.count).leading_zeros());
        Self::FIXED_LEN.saturating_add(bits.div_ceil(7).max(1) as usize)
    }

    /// Appends the wire encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sum);
        out.extend_from_slice(&self.checksum.to_le_bytes());
        let mut rest = zigzag(self.count);
        while rest >= 0x80 {
            out.push(0x80 | rest.to_le_bytes()[0]);
            rest >>= 7;
        }
        out.push(rest.to_le_bytes()[0]);
    }

    /// Reads one symbol from the front of `input`, returning it and the bytes
    /// it used.
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "`i` is below MAX_COUNT_LEN (10): shifts stay below 64, the length used below \
                  N + 19"
    )]
    pub fn decode(input: &[u8]) -> Result<(Self, usize), WireError> {
        let Some((sum, rest)) = input.split_first_chunk::<N>() else {
            return Err(WireError::Truncated {
                needed: Self::MIN_ENCODED_LEN,
                available: input.len(),
            });
        };
        let Some((checksum, rest)) = rest.split_first_chunk::<8>() else {
            return Err(WireError::Truncated {
                needed: Self::MIN_ENCODED_LEN,
                available: input.len(),
            });
        };
        let mut value: u64 = 0;
        for (i, &byte) in rest.iter().take(MAX_COUNT_LEN).enumerate() {
            let bits = u64::from(byte & 0x7f);
            if i == MAX_COUNT_LEN - 1 && byte > 1 {
                return Err(WireError::CountOverflow);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(WireError::NonCanonicalCount);
                }
                let symbol = CodedSymbol {
                    sum: *sum,
                    checksum: u64::from_le_bytes(*checksum),
                    count: unzigzag(value),
                };
                return Ok((symbol, Self::FIXED_LEN + i + 1));
            }
        }
        // Fewer than MAX_COUNT_LEN bytes, all with the continuation bit.
        Err(WireError::Truncated {
            needed: input.len().saturating_add(1),
            available: input.len(),
        })
    }
}

impl<const N: usize> Sub for CodedSymbol<N> {
    type Output = CodedSymbol<N>;

    /// The symbol of `self`'s elements minus `rhs`'s.
    #[allow(clippy::suspicious_arithmetic_impl)] // sums and checksums subtract by XOR
    fn sub(mut self, rhs: Self) -> Self {
        xor_into(&mut self.sum, &rhs.sum);
        self.checksum ^= rhs.checksum;
        self.count = self.count.wrapping_sub(rhs.count);
        self
    }
}

/// `a ^= b`, eight bytes at a time (however it is inlined, the compiler
/// keeps to words instead of bytes).
#[inline(always)]
fn xor_into<const N: usize>(a: &mut [u8; N], b: &[u8; N]) {
    let mut a_words = a.chunks_exact_mut(8);
    let mut b_words = b.chunks_exact(8);
    for (x, y) in a_words.by_ref().zip(b_words.by_ref()) {
        let word = u64::from_ne_bytes(<[u8; 8]>::try_from(&*x).unwrap_or_default())
            ^ u64::from_ne_bytes(<[u8; 8]>::try_from(y).unwrap_or_default());
        x.copy_from_slice(&word.to_ne_bytes());
    }
    for (x, y) in a_words.into_remainder().iter_mut().zip(b_words.remainder()) {
        *x ^= y;
    }
}

fn zigzag(count: i64) -> u64 {
    ((count << 1) ^ (count >> 63)).cast_unsigned()
}

fn unzigzag(value: u64) -> i64 {
    // The low bit's negation, 0 or -1, is exact.
    (value >> 1).cast_signed() ^ (value & 1).cast_signed().wrapping_neg()
}

/// A symbol that cannot be read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ends inside the symbol.
    #[error("coded symbol truncated: at least {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes needed at least.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The count runs over 10 bytes or 64 bits.
    #[error("coded symbol count overflows 64 bits")]
    CountOverflow,
    /// The count is not in its shortest encoding.
    #[error("coded symbol count is not minimally encoded")]
    NonCanonicalCount,
}

/// Why a [`Decoder`] refused a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The cap on symbols is reached; the symbol was not taken. The decoder
    /// stays usable for reading what it has decoded.
    #[error("more than {0} coded symbols received")]
    TooManySymbols(usize),
    /// The local sketch is shorter than the remote stream; the symbol was not
    /// taken.
    #[error("the local sketch holds only {0} coded symbols")]
    SketchExhausted(usize),
    /// The symbols received are not the symbols of any pair of sets (a hostile
    /// or corrupt stream, or a 2^-64 checksum collision). Every later symbol
    /// is refused with the same error.
    #[error("the coded symbols received are inconsistent")]
    Inconsistent,
}

/// An element with its checksum and the state of its mapping, held by an
/// [`Encoder`] or peeled by a [`Decoder`].
#[derive(Clone, Debug)]
struct Item<const N: usize> {
    element: [u8; N],
    checksum: u64,
    /// Positioned at the next index the element still has to be applied to.
    mapping: Mapping,
}

/// Length of the first block a [`Window`] computes.
const FIRST_BLOCK: usize = 32;
/// Longest block a [`Window`] computes at once.
const MAX_BLOCK: usize = 1 << 16;

/// Items applied to a stream of symbols produced in order. Symbols are
/// computed a block ahead, item by item: one pass over the items (in
/// sequence in memory) fills a block of symbols, each item up to the block's
/// end. Blocks double in length from [`FIRST_BLOCK`] to [`MAX_BLOCK`], so the
/// first `m` symbols cost O(log m) passes plus about `2 ln(m/2)` steps per
/// item.
#[derive(Clone, Debug)]
struct Window<const N: usize> {
    /// Items added to the symbols.
    added: Vec<Item<N>>,
    /// Items removed from the symbols.
    removed: Vec<Item<N>>,
    /// Symbols `start..end`, computed ahead; empty if there were no items
    /// when the block began.
    block: Vec<CodedSymbol<N>>,
    /// Index of the first symbol of the block.
    start: u64,
    /// Index past the last symbol of the block.
    end: u64,
    /// Index of the next symbol.
    next: u64,
    /// No symbol from this index on is ever asked for.
    limit: u64,
    /// The length of the next block, if more than the doubling gives: the
    /// symbols asked for at once.
    wanted: u64,
}

impl<const N: usize> Window<N> {
    fn new(limit: u64) -> Self {
        Window {
            added: Vec::new(),
            removed: Vec::new(),
            block: Vec::new(),
            start: 0,
            end: 0,
            next: 0,
            limit,
            wanted: 0,
        }
    }

    /// Number of items.
    fn len(&self) -> usize {
        self.added.len().saturating_add(self.removed.len())
    }

    /// Adds an item (`delta` = 1) or an item to remove (`delta` = −1), whose
    /// mapping may still point below `next`.
    fn push(&mut self, mut item: Item<N>, delta: i64) {
        while item.mapping.index < self.next {
            item.mapping.advance();
        }
        if item.mapping.index >= self.limit {
            // No symbol it maps to is ever asked for: a decoder's window
            // past the last symbol it takes.
            return;
        }
        if item.mapping.index < self.end {
            if self.block.is_empty() {
                self.allocate();
            }
            apply_to_block(&mut self.block, self.start, &mut item, delta);
        }
        if delta > 0 {
            self.added.push(item);
        } else {
            self.removed.push(item);
        }
    }

    /// The next symbol of the items.
    fn next_symbol(&mut self) -> CodedSymbol<N> {
        if self.next == self.end {
            self.fill();
        }
        // `start` <= `next` <= `end`, and `next` < `end` after a fill.
        let offset = self.next.saturating_sub(self.start);
        self.next = self.next.saturating_add(1);
        usize::try_from(offset)
            .ok()
            .and_then(|offset| self.block.get(offset))
            .copied()
            .unwrap_or(CodedSymbol::EMPTY)
    }

    /// Computes the block that starts at `next`.
    fn fill(&mut self) {
        let len = self
            .next
            .clamp(FIRST_BLOCK as u64, MAX_BLOCK as u64)
            .max(self.wanted)
            .min(self.limit.saturating_sub(self.next))
            .max(1);
        self.wanted = 0;
        self.start = self.next;
        self.end = self.next.saturating_add(len);
        self.block.clear();
        if self.len() == 0 {
            return;
        }
        self.allocate();
        apply_side_by_side(&mut self.block, self.start, &mut self.added, 1);
        apply_side_by_side(&mut self.block, self.start, &mut self.removed, -1);
    }

    /// Gives the block its empty symbols.
    fn allocate(&mut self) {
        let len = usize::try_from(self.end.saturating_sub(self.start)).unwrap_or(MAX_BLOCK);
        self.block.resize(len, CodedSymbol::EMPTY);
    }
}

/// Applies `item` to the symbols of `block` (which starts at index `start`)
/// it maps to from its current index on, and leaves its mapping at the first
/// index past the block.
#[inline]
fn apply_to_block<const N: usize>(
    block: &mut [CodedSymbol<N>],
    start: u64,
    item: &mut Item<N>,
    delta: i64,
) {
    while let Some(symbol) = item
        .mapping
        .index
        .checked_sub(start)
        .and_then(|offset| usize::try_from(offset).ok())
        .and_then(|offset| block.get_mut(offset))
    {
        symbol.apply(&item.element, item.checksum, delta);
        item.mapping.advance();
    }
}

/// Items whose mappings are stepped side by side.
const LANES: usize = 8;

/// [`apply_to_block`] for each of `items`, [`LANES`] at a time, one step of
/// each in turn: the steps of one mapping form a chain of dependent square
/// roots and divisions, and independent chains overlap.
fn apply_side_by_side<const N: usize>(
    block: &mut [CodedSymbol<N>],
    start: u64,
    items: &mut [Item<N>],
    delta: i64,
) {
    for lanes in items.chunks_mut(LANES) {
        loop {
            let mut stepped = false;
            for item in lanes.iter_mut() {
                if let Some(symbol) = item
                    .mapping
                    .index
                    .checked_sub(start)
                    .and_then(|offset| usize::try_from(offset).ok())
                    .and_then(|offset| block.get_mut(offset))
                {
                    symbol.apply(&item.element, item.checksum, delta);
                    item.mapping.advance();
                    stepped = true;
                }
            }
            if !stepped {
                break;
            }
        }
    }
}

/// Produces the endless sequence of coded symbols of a set, one at a time.
///
/// Symbols are computed a block ahead (32 at first, then doubling up to
/// 65,536) in one sequential pass over the elements per block, so the first
/// `m` symbols of `n` elements cost about `n · 2 ln(m/2)` mapping steps plus
/// `log2(m/16)` passes: O(log m) per element. (A min-heap of next indices,
/// one pop and push per step, is O(log n) per step and chases the elements
/// through memory: an order of magnitude slower for a million elements.)
/// [`Encoder::produce`] computes the symbols it is asked for in one pass.
/// Within a pass, the mappings of eight elements are stepped side by side:
/// each step is a chain of a square root and a division, and independent
/// chains overlap.
///
/// Adding an element after symbols were produced is allowed: the symbols
/// produced from then on are those of the new set.
#[derive(Clone, Debug)]
pub struct Encoder<const N: usize> {
    key: Key,
    hasher: Hasher,
    window: Window<N>,
}

impl<const N: usize> Encoder<N> {
    /// An encoder of the empty set.
    pub fn new(key: Key) -> Self {
        Encoder {
            key,
            hasher: Hasher::new(&key),
            window: Window::new(u64::MAX),
        }
    }

    /// The key of the encoder.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Adds an element to the set. Adding an element that is already in the
    /// set breaks the set (see the [module docs](self)).
    pub fn insert(&mut self, element: &[u8; N]) {
        let (checksum, seed) = self.hasher.hash(element);
        self.window.push(
            Item {
                element: *element,
                checksum,
                mapping: Mapping::new(seed),
            },
            1,
        );
    }

    /// Number of elements in the set.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.window.len() == 0
    }

    /// Number of symbols produced so far: the index of the next one.
    pub fn symbols_produced(&self) -> u64 {
        self.window.next
    }

    /// The next coded symbol.
    pub fn next_symbol(&mut self) -> CodedSymbol<N> {
        self.window.next_symbol()
    }

    /// The next `count` coded symbols. Those past the current block are
    /// computed in one pass over the elements.
    pub fn produce(&mut self, count: usize) -> Vec<CodedSymbol<N>> {
        let ahead = self.window.end.saturating_sub(self.window.next);
        self.window.wanted = (count as u64).saturating_sub(ahead);
        let symbols = (0..count).map(|_| self.next_symbol()).collect();
        self.window.wanted = 0;
        symbols
    }
}

impl<'a, const N: usize> Extend<&'a [u8; N]> for Encoder<N> {
    fn extend<I: IntoIterator<Item = &'a [u8; N]>>(&mut self, elements: I) {
        let elements = elements.into_iter();
        self.window.added.reserve(elements.size_hint().0);
        for element in elements {
            self.insert(element);
        }
    }
}

/// The first `len` coded symbols of a set, kept up to date as elements come
/// and go: adding or removing one costs a hash and about `2 ln(len/2)` symbol
/// updates, whatever the size of the set.
///
/// Sketches of the same key subtract (`a - b`) into the sketch of the
/// difference, which [`Sketch::decode`] recovers when it is long enough.
#[derive(Clone)]
pub struct Sketch<const N: usize> {
    key: Key,
    hasher: Hasher,
    symbols: Vec<CodedSymbol<N>>,
}

impl<const N: usize> Sketch<N> {
    /// The sketch of `len` symbols of the empty set.
    pub fn new(key: Key, len: usize) -> Self {
        Sketch {
            key,
            hasher: Hasher::new(&key),
            symbols: vec![CodedSymbol::EMPTY; len],
        }
    }

    /// The key of the sketch.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether the sketch has no symbols.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The symbols, in order.
    pub fn symbols(&self) -> &[CodedSymbol<N>] {
        &self.symbols
    }

    /// Adds an element to the set. Adding an element that is already in the
    /// set breaks the set (see the [module docs](self)).
    pub fn insert(&mut self, element: &[u8; N]) {
        self.apply(element, 1);
    }

    /// Removes an element from the set. Removing an element that is not in
    /// the set breaks the set.
    pub fn remove(&mut self, element: &[u8; N]) {
        self.apply(element, -1);
    }

    fn apply(&mut self, element: &[u8; N], delta: i64) {
        let (checksum, seed) = self.hasher.hash(element);
        let mut mapping = Mapping::new(seed);
        let mut index = 0;
        while let Some(symbol) = usize::try_from(index)
            .ok()
            .and_then(|index| self.symbols.get_mut(index))
        {
            symbol.apply(element, checksum, delta);
            index = mapping.advance();
        }
    }

    /// Adds many elements: the same as [`Sketch::insert`] on each, faster
    /// (their mappings are stepped side by side).
    pub fn insert_all<'a>(&mut self, elements: impl IntoIterator<Item = &'a [u8; N]>) {
        let mut lanes = Vec::with_capacity(LANES);
        for element in elements {
            let (checksum, seed) = self.hasher.hash(element);
            lanes.push(Item {
                element: *element,
                checksum,
                mapping: Mapping::new(seed),
            });
            if lanes.len() == LANES {
                apply_side_by_side(&mut self.symbols, 0, &mut lanes, 1);
                lanes.clear();
            }
        }
        apply_side_by_side(&mut self.symbols, 0, &mut lanes, 1);
    }

    /// Keeps the first `len` symbols: the sketch of the same set, shorter.
    pub fn truncate(&mut self, len: usize) {
        self.symbols.truncate(len);
    }

    /// Decodes the sketch as a difference: elements counted +1 come out as
    /// [`Decoder::remote_only`], those counted −1 as [`Decoder::local_only`]
    /// (for `a - b`: a \ b and b \ a). The result says
    /// [`Decoder::is_decoded`] when the sketch was long enough. Every symbol
    /// is decoded, even past [`MAX_SYMBOLS`]: check the length of a sketch
    /// made from a peer's symbols first.
    pub fn decode(&self) -> Result<Decoder<N>, DecodeError> {
        let mut decoder = Decoder::new(self.key).with_max_symbols(self.symbols.len());
        decoder.receive_batch(&self.symbols)?;
        Ok(decoder)
    }
}

impl<const N: usize> fmt::Debug for Sketch<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sketch")
            .field("key", &self.key)
            .field("symbols", &self.symbols)
            .finish()
    }
}

impl<const N: usize> PartialEq for Sketch<N> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.symbols == other.symbols
    }
}

impl<const N: usize> Eq for Sketch<N> {}

impl<const N: usize> Sub<&Sketch<N>> for &Sketch<N> {
    type Output = Sketch<N>;

    /// The sketch of the difference, as long as the shorter of the two.
    ///
    /// # Panics
    ///
    /// If the keys differ: such sketches have nothing in common.
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "symbols subtract by XOR and a wrapping count"
    )]
    fn sub(self, rhs: &Sketch<N>) -> Sketch<N> {
        assert_eq!(self.key, rhs.key, "subtracting sketches of different keys");
        Sketch {
            key: self.key,
            hasher: self.hasher.clone(),
            symbols: self
                .symbols
                .iter()
                .zip(&rhs.symbols)
                .map(|(a, b)| *a - *b)
                .collect(),
        }
    }
}

impl<const N: usize> Sub for Sketch<N> {
    type Output = Sketch<N>;

    /// See `&Sketch - &Sketch`.
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "sketches subtract symbol by symbol, by XOR and a wrapping count"
    )]
    fn sub(self, rhs: Sketch<N>) -> Sketch<N> {
        &self - &rhs
    }
}

/// Where a decoder takes the local set's symbols from.
#[derive(Clone, Debug)]
enum Local<const N: usize> {
    /// The symbols received are differences already (or the local set is
    /// empty).
    None,
    Encoder(Box<Encoder<N>>),
    Sketch(Sketch<N>),
}

/// Symbols to check for purity, highest index first (in stacks by power of
/// two): the higher the index, the fewer elements a symbol holds, so the more
/// likely a count of ±1 means one element. Checking those first saves about
/// 40% of the hashing that last-in first-out order costs.
#[derive(Clone, Debug, Default)]
struct Candidates {
    /// Stack `k` holds indices `i` with `i + 1` of `k + 1` bits.
    stacks: Vec<Vec<usize>>,
    /// Bit `k` is set if stack `k` is not empty.
    filled: u64,
}

impl Candidates {
    fn push(&mut self, index: usize) {
        let stack = index.saturating_add(1).ilog2() as usize;
        if self.stacks.len() <= stack {
            self.stacks.resize_with(stack.saturating_add(1), Vec::new);
        }
        self.stacks[stack].push(index);
        self.filled |= 1 << stack;
    }

    fn pop(&mut self) -> Option<usize> {
        let stack = 63_u32.checked_sub(self.filled.leading_zeros())? as usize;
        let popped = self.stacks[stack].pop();
        if self.stacks[stack].is_empty() {
            self.filled &= !(1 << stack);
        }
        popped
    }

    fn clear(&mut self) {
        self.stacks.iter_mut().for_each(Vec::clear);
        self.filled = 0;
    }
}

/// Pure symbols peeled together (see [`Decoder::peel`]).
const PEEL_BATCH: usize = 8;

/// Symbols received from which a decoder peels in batches: 1 MiB of them,
/// more than a core's cache.
const BATCH_FROM: usize = 1 << 14;

/// In the decoder's scratch of indices: the lane's element maps to no more
/// symbols received.
const PAST: usize = usize::MAX;

/// A symbol found pure, with the mapping of its element.
#[derive(Clone, Copy, Debug)]
struct Pure<const N: usize> {
    index: usize,
    symbol: CodedSymbol<N>,
    /// At the element's first index until its indices are listed, then past
    /// the symbols received.
    mapping: Mapping,
}

/// A received symbol, as peeled so far, on a cache line of its own.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Slot<const N: usize> {
    /// Received symbol minus local symbol, minus every element peeled.
    symbol: CodedSymbol<N>,
    /// Whether the symbol is in the candidates.
    queued: bool,
}

/// Recovers the difference between a peer's set and the local set from the
/// peer's coded symbols, received in order.
///
/// Work is bounded whatever the symbols: each symbol received costs one
/// local symbol, and each element peeled costs one hash and one update per
/// symbol it maps to (about `2 ln(m/2)` for `m` symbols). An honest peeling
/// empties one symbol per element, so more elements than symbols means the
/// stream is [inconsistent](DecodeError::Inconsistent); in all, `m` symbols
/// cost O(m log m) updates and at most that many hashes.
#[derive(Clone, Debug)]
pub struct Decoder<const N: usize> {
    key: Key,
    hasher: Hasher,
    local: Local<N>,
    max_symbols: usize,
    slots: Vec<Slot<N>>,
    /// Symbols whose count became ±1 since they were last checked.
    candidates: Candidates,
    /// Elements peeled: remote ones are removed from the symbols still to
    /// come, local ones added back.
    peeled: Window<N>,
    remote_only: Vec<[u8; N]>,
    local_only: Vec<[u8; N]>,
    /// Symbols that are not empty.
    non_empty: usize,
    /// Scratch: the pure symbols of the batch being peeled.
    batch: Vec<Pure<N>>,
    /// Scratch: the indices of the elements of the batch, side by side.
    indices: Vec<usize>,
    /// Scratch: the indices of the element being peeled.
    lane: Vec<usize>,
    /// Scratch: candidates set aside while a batch was gathered.
    deferred: Vec<usize>,
    inconsistent: bool,
}

impl<const N: usize> Decoder<N> {
    /// A decoder whose local set is empty: give it a peer's symbols to learn
    /// the peer's whole set, or symbols from which the local ones were
    /// already subtracted (such as those of a subtracted [`Sketch`]) to learn
    /// the difference.
    pub fn new(key: Key) -> Self {
        Self::with_local(key, Local::None)
    }

    /// A decoder that subtracts the symbols of `local`, an encoder of the
    /// local set, from the symbols received.
    ///
    /// # Panics
    ///
    /// If `local` has produced symbols already: the two streams would not
    /// line up.
    pub fn with_encoder(local: Encoder<N>) -> Self {
        assert_eq!(
            local.symbols_produced(),
            0,
            "the local encoder has produced symbols already"
        );
        Self::with_local(local.key, Local::Encoder(Box::new(local)))
    }

    /// A decoder that subtracts the symbols of `local`, a sketch of the local
    /// set, from the symbols received; it takes as many symbols as the sketch
    /// holds.
    pub fn with_sketch(local: Sketch<N>) -> Self {
        Self::with_local(local.key, Local::Sketch(local))
    }

    fn with_local(key: Key, local: Local<N>) -> Self {
        Decoder {
            key,
            hasher: Hasher::new(&key),
            local,
            max_symbols: MAX_SYMBOLS,
            slots: Vec::new(),
            candidates: Candidates::default(),
            peeled: Window::new(MAX_SYMBOLS as u64),
            remote_only: Vec::new(),
            local_only: Vec::new(),
            non_empty: 0,
            batch: Vec::new(),
            indices: Vec::new(),
            lane: Vec::new(),
            deferred: Vec::new(),
            inconsistent: false,
        }
    }

    /// Sets the cap on symbols received (default [`MAX_SYMBOLS`]). Set it
    /// before the first symbol.
    pub fn with_max_symbols(mut self, max_symbols: usize) -> Self {
        self.max_symbols = max_symbols;
        self.peeled.limit = max_symbols as u64;
        self
    }

    /// The key of the decoder.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Takes the peer's next symbol and peels what it can.
    pub fn receive(&mut self, remote: &CodedSymbol<N>) -> Result<(), DecodeError> {
        self.take(remote)?;
        self.peel()
    }

    /// Takes the peer's next symbols and peels what it can: the same as
    /// [`Decoder::receive`] on each in turn, faster. On an error the symbols
    /// before the one refused are taken.
    pub fn receive_batch(&mut self, remote: &[CodedSymbol<N>]) -> Result<(), DecodeError> {
        let room = self.max_symbols.saturating_sub(self.slots.len());
        self.slots.reserve(remote.len().min(room));
        let taken = remote.iter().try_for_each(|symbol| self.take(symbol));
        let peeled = self.peel();
        taken.and(peeled)
    }

    /// Takes one symbol without peeling.
    fn take(&mut self, remote: &CodedSymbol<N>) -> Result<(), DecodeError> {
        if self.inconsistent {
            return Err(DecodeError::Inconsistent);
        }
        let index = self.slots.len();
        if index >= self.max_symbols {
            return Err(DecodeError::TooManySymbols(self.max_symbols));
        }
        let local = match &mut self.local {
            Local::None => CodedSymbol::EMPTY,
            Local::Encoder(encoder) => encoder.next_symbol(),
            Local::Sketch(sketch) => *sketch
                .symbols
                .get(index)
                .ok_or(DecodeError::SketchExhausted(sketch.len()))?,
        };
        #[allow(
            clippy::arithmetic_side_effects,
            reason = "symbols subtract by XOR and a wrapping count"
        )]
        let symbol = *remote - local - self.peeled.next_symbol();
        self.slots.push(Slot {
            symbol,
            queued: false,
        });
        if !symbol.is_empty() {
            self.non_empty = self.non_empty.saturating_add(1);
        }
        self.enqueue(index);
        Ok(())
    }

    /// Whether the difference is fully known: at least one symbol was
    /// received and every symbol received is explained by the elements
    /// decoded. With no difference, this holds after the first symbol.
    pub fn is_decoded(&self) -> bool {
        !self.inconsistent && !self.slots.is_empty() && self.non_empty == 0
    }

    /// Number of symbols received. Callers bound it (see [`MAX_SYMBOLS`]).
    pub fn symbols_received(&self) -> usize {
        self.slots.len()
    }

    /// Elements decoded so far that the peer has and the local set lacks.
    pub fn remote_only(&self) -> &[[u8; N]] {
        &self.remote_only
    }

    /// Elements decoded so far that the local set has and the peer lacks.
    pub fn local_only(&self) -> &[[u8; N]] {
        &self.local_only
    }

    /// The elements decoded: ([`remote_only`](Self::remote_only),
    /// [`local_only`](Self::local_only)).
    pub fn into_difference(self) -> (Vec<[u8; N]>, Vec<[u8; N]>) {
        (self.remote_only, self.local_only)
    }

    #[inline]
    fn enqueue(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if matches!(slot.symbol.count, 1 | -1) && !slot.queued {
            slot.queued = true;
            self.candidates.push(index);
        }
    }

    /// Peels pure symbols until none is left, [`PEEL_BATCH`] at a time once
    /// there are [`BATCH_FROM`] symbols (one at a time before): the
    /// candidates' hashes first, then the index mappings of the pure ones side
    /// by side (each is a chain of dependent square roots and divisions, which
    /// overlap when they are independent), then the updates, whose loads of
    /// symbols far apart in memory overlap too.
    ///
    /// Two pure symbols of one batch may hold the same element (it maps to
    /// both). Peeling it from the first changes the second, which is then
    /// passed over: a symbol that changed since it was found pure is looked
    /// at again when it is a candidate again.
    fn peel(&mut self) -> Result<(), DecodeError> {
        if self.inconsistent {
            return Err(DecodeError::Inconsistent);
        }
        // Small sets of symbols stay in cache, where batches buy little and
        // cost hashes: a symbol hashed in a batch may have been emptied by an
        // element peeled before it, had they gone one at a time.
        let batch = if self.slots.len() >= BATCH_FROM {
            PEEL_BATCH
        } else {
            1
        };
        loop {
            self.batch.clear();
            while self.batch.len() < batch {
                let Some(index) = self.candidates.pop() else {
                    break;
                };
                let slot = &mut self.slots[index];
                slot.queued = false;
                let symbol = slot.symbol;
                if !matches!(symbol.count, 1 | -1) {
                    continue;
                }
                if self
                    .batch
                    .iter()
                    .any(|pure| pure.symbol.checksum == symbol.checksum)
                {
                    // Most likely the element of a symbol in the batch, pure
                    // here too: peeling it empties this one. Looked at again
                    // after the batch rather than hashed now.
                    self.deferred.push(index);
                    continue;
                }
                let (checksum, seed) = self.hasher.hash(&symbol.sum);
                if checksum == symbol.checksum {
                    self.batch.push(Pure {
                        index,
                        symbol,
                        mapping: Mapping::new(seed),
                    });
                }
            }
            if self.batch.is_empty() {
                debug_assert!(self.deferred.is_empty(), "deferred only behind a batch");
                return Ok(());
            }
            let len = self.slots.len();
            let lanes = self.batch.len();
            if lanes == 1 {
                let Pure {
                    index,
                    symbol,
                    mut mapping,
                } = self.batch[0];
                self.lane.clear();
                while let Some(at) = usize::try_from(mapping.index).ok().filter(|&at| at < len) {
                    self.lane.push(at);
                    mapping.advance();
                }
                self.peel_one(index, &symbol, mapping)?;
            } else {
                self.peel_side_by_side(len)?;
            }
            while let Some(index) = self.deferred.pop() {
                self.enqueue(index);
            }
        }
    }

    /// Peels the pure symbols of a batch of more than one: their mappings
    /// side by side, a touch of every symbol they update, then each in turn.
    fn peel_side_by_side(&mut self, len: usize) -> Result<(), DecodeError> {
        let lanes = self.batch.len();
        // Side by side: one step of each mapping in turn, a row of
        // `lanes` indices per step ([`PAST`] once a lane is done).
        self.indices.clear();
        loop {
            let mut stepped = false;
            for pure in &mut self.batch {
                match usize::try_from(pure.mapping.index)
                    .ok()
                    .filter(|&at| at < len)
                {
                    Some(at) => {
                        self.indices.push(at);
                        pure.mapping.advance();
                        stepped = true;
                    }
                    None => self.indices.push(PAST),
                }
            }
            if !stepped {
                break;
            }
        }
        // Touch every symbol the batch updates: the loads of all its
        // elements overlap instead of those of one element at a time.
        let mut touched = 0;
        for &at in &self.indices {
            if at != PAST {
                touched ^= self.slots[at].symbol.count;
            }
        }
        std::hint::black_box(touched);
        for lane in 0..lanes {
            let Pure {
                index,
                symbol,
                mapping,
            } = self.batch[lane];
            let now = &self.slots[index].symbol;
            if now.count != symbol.count || now.checksum != symbol.checksum || now.sum != symbol.sum
            {
                continue;
            }
            self.lane.clear();
            self.lane.extend(
                self.indices[lane..]
                    .iter()
                    .step_by(lanes)
                    .take_while(|&&at| at != PAST),
            );
            self.peel_one(index, &symbol, mapping)?;
        }
        Ok(())
    }

    /// Removes the element of the pure `symbol` (found at `index`) from every
    /// symbol it maps to, listed in `self.lane`.
    fn peel_one(
        &mut self,
        index: usize,
        symbol: &CodedSymbol<N>,
        mapping: Mapping,
    ) -> Result<(), DecodeError> {
        let element = symbol.sum;
        let checksum = symbol.checksum;
        // Remote elements are counted +1 in the symbols; peeling removes them.
        // A pure symbol's count is 1 or -1.
        let delta: i64 = if symbol.count < 0 { 1 } else { -1 };
        if self.remote_only.len().saturating_add(self.local_only.len()) >= self.slots.len() {
            return Err(self.fail());
        }
        if self.lane.binary_search(&index).is_err() {
            // The element does not map to the symbol that held it.
            return Err(self.fail());
        }
        for &at in &self.lane {
            self.slots[at].symbol.apply(&element, checksum, delta);
        }
        for position in 0..self.lane.len() {
            let at = self.lane[position];
            let symbol = &self.slots[at].symbol;
            let was_empty =
                symbol.count == delta && symbol.checksum == checksum && symbol.sum == element;
            match (was_empty, symbol.is_empty()) {
                (true, false) => self.non_empty = self.non_empty.saturating_add(1),
                (false, true) => self.non_empty = self.non_empty.saturating_sub(1),
                _ => {}
            }
            self.enqueue(at);
        }
        if delta < 0 {
            self.remote_only.push(element);
        } else {
            self.local_only.push(element);
        }
        // The window's symbols are subtracted: it adds remote elements.
        let item = Item {
            element,
            checksum,
            mapping,
        };
        self.peeled.push(item, symbol.count);
        Ok(())
    }

    fn fail(&mut self) -> DecodeError {
        self.inconsistent = true;
        self.candidates.clear();
        self.deferred.clear();
        DecodeError::Inconsistent
    }
}
