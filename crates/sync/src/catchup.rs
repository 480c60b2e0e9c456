//! Catch-up: the key-hash space cut into spans, each streamed in order by
//! cursor, and the progress file that lets a restarted node resume.
//!
//! Span `i` of [`SPANS`] holds the key hashes whose first byte is in
//! `4i..=4i+3`. Key hashes are uniform, so spans are about equal whoever
//! wrote the records. A span's cursor is the last key hash whose records are
//! stored; it only moves after the store has committed them.

use strata_store::KEY_HASH_LEN;

/// Number of spans.
pub const SPANS: usize = 64;

/// First bytes per span.
const SPAN_WIDTH: usize = 256 / SPANS;

/// Magic of the progress encoding.
const PROGRESS_MAGIC: &[u8; 16] = b"strata-catchup-1";

/// A key hash.
pub type KeyHashBytes = [u8; KEY_HASH_LEN];

/// The last key hash of span `i` (inclusive).
pub(crate) fn span_end(i: usize) -> KeyHashBytes {
    let mut end = [0xff; KEY_HASH_LEN];
    end[0] = u8::try_from(i * SPAN_WIDTH + SPAN_WIDTH - 1).unwrap_or(0xff);
    end
}

/// Where span `i` starts: after the last key hash of span `i - 1`.
pub(crate) fn span_start(i: usize) -> Option<KeyHashBytes> {
    i.checked_sub(1).map(span_end)
}

/// Which span holds `key_hash`.
pub(crate) fn span_of(key_hash: &KeyHashBytes) -> usize {
    usize::from(key_hash[0]) / SPAN_WIDTH
}

/// One span's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Resume after this key hash (the span's start when nothing is stored
    /// yet).
    pub(crate) after: Option<KeyHashBytes>,
    /// Nothing is left.
    pub(crate) done: bool,
    /// The request in flight, if any.
    pub(crate) request: Option<u64>,
}

/// The spans of a catch-up.
#[derive(Debug, Clone)]
pub(crate) struct Catchup {
    pub(crate) spans: Vec<Span>,
}

impl Catchup {
    /// Every span from its start.
    pub(crate) fn fresh() -> Catchup {
        Catchup {
            spans: (0..SPANS)
                .map(|i| Span {
                    after: span_start(i),
                    done: false,
                    request: None,
                })
                .collect(),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.spans.iter().all(|s| s.done)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.spans.iter().filter(|s| !s.done).count()
    }

    /// The progress encoding: magic ‖ per span, a state byte (0: at its
    /// start, 1: a cursor follows, 2: done) and 16 bytes (zero unless a
    /// cursor).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROGRESS_MAGIC.len() + SPANS * (1 + KEY_HASH_LEN));
        out.extend_from_slice(PROGRESS_MAGIC);
        for (i, span) in self.spans.iter().enumerate() {
            let (state, bytes) = if span.done {
                (2, [0; KEY_HASH_LEN])
            } else if span.after == span_start(i) {
                (0, [0; KEY_HASH_LEN])
            } else {
                (1, span.after.unwrap_or([0; KEY_HASH_LEN]))
            };
            out.push(state);
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads a progress encoding; `None` if it is not one (a corrupt file
    /// restarts the catch-up, which costs time, not correctness).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Catchup> {
        let rest = bytes.strip_prefix(PROGRESS_MAGIC.as_slice())?;
        if rest.len() != SPANS * (1 + KEY_HASH_LEN) {
            return None;
        }
        let mut spans = Vec::with_capacity(SPANS);
        for (i, entry) in rest.chunks_exact(1 + KEY_HASH_LEN).enumerate() {
            let mut cursor = [0u8; KEY_HASH_LEN];
            cursor.copy_from_slice(&entry[1..]);
            let span = match entry[0] {
                0 => Span {
                    after: span_start(i),
                    done: false,
                    request: None,
                },
                1 => {
                    // A cursor outside its span is not ours.
                    if span_of(&cursor) != i {
                        return None;
                    }
                    Span {
                        after: Some(cursor),
                        done: false,
                        request: None,
                    }
                }
                2 => Span {
                    after: None,
                    done: true,
                    request: None,
                },
                _ => return None,
            };
            spans.push(span);
        }
        Some(Catchup { spans })
    }
}
