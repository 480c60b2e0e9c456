//! What the machine asks of the store, and how a driver carries it out.
//!
//! The [`Syncer`](crate::Syncer) never touches a [`Store`]: it emits
//! [`Output::Store`](crate::Output::Store) with an [`Op`], and the driver
//! runs it with [`Op::run`] (the simulator, at once) or [`Op::run_caught`]
//! (the tokio driver, on a blocking pool or its task) and hands the [`Done`] back through
//! [`Syncer::handle_store`](crate::Syncer::handle_store).
//!
//! Ops of the [`Lane::Write`] lane change the store or read all of it:
//! they must run one at a time, in the order emitted, and their results
//! must come back in that order, because the machine keeps its sketch equal
//! to the store's digests by applying each result as it comes. Ops of the
//! [`Lane::Read`] lane may run at once and finish in any order.

use ed25519_dalek::SigningKey;
use strata_store::{
    Checked, Collected, DIGEST_LEN, Digest, Draft, Error as StoreError, KEY_HASH_LEN,
    MAX_PAGE_DIGESTS, Outcome, Presence, Record, Store, Verified,
};

use crate::catchup::KeyHashBytes;
use crate::riblt::Sketch;

/// An op's number, unique for a machine's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Where an op runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// One at a time, in order, results in order.
    Write,
    /// Any number at once, results in any order.
    Read,
}

/// A store operation.
#[derive(Debug)]
pub enum Op {
    /// Triage records and check the signatures of those worth writing
    /// ([`Store::check`]).
    Check(Vec<Record>),
    /// Write verified records ([`Store::write`]).
    Write(Vec<Verified>),
    /// Sign the local author's draft and write it ([`Store::put_own`]).
    PutOwn(Draft),
    /// Remove what expired at `now` (Unix seconds), at most `max` records
    /// ([`Store::collect`]).
    Collect {
        /// The time.
        now: u64,
        /// Most records removed.
        max: usize,
    },
    /// What the store knows of digests.
    Presence(Vec<Digest>),
    /// The stored records with these digests, at most `max_records` and
    /// `max_bytes` of them (at least one record).
    Records {
        /// The digests.
        digests: Vec<Digest>,
        /// Most records.
        max_records: usize,
        /// Most encoded bytes.
        max_bytes: usize,
    },
    /// Records by key hash after `after` up to `end`, within the limits.
    Range {
        /// Resume after this key hash (`None`: from the very start).
        after: Option<KeyHashBytes>,
        /// The last key hash included.
        end: KeyHashBytes,
        /// Most records.
        max_records: usize,
        /// Most encoded bytes (at least one record).
        max_bytes: usize,
    },
    /// The sketch of every stored digest under `key`, `len` symbols long,
    /// and how many digests there are.
    Sketch {
        /// The sketch's key.
        key: crate::riblt::Key,
        /// Its length.
        len: usize,
    },
}

/// What an op gave.
#[derive(Debug)]
pub enum Done {
    /// For [`Op::Check`]: one entry per record.
    Checked(Result<Vec<Checked>, StoreError>),
    /// For [`Op::Write`]: one outcome per record.
    Written(Result<Vec<Outcome>, StoreError>),
    /// For [`Op::PutOwn`]: the record signed and its outcome.
    PutOwn(Result<(Record, Outcome), StoreError>),
    /// For [`Op::Collect`]: what was removed.
    Collected(Result<Collected, StoreError>),
    /// For [`Op::Presence`]: one entry per digest.
    Presence(Result<Vec<Presence>, StoreError>),
    /// For [`Op::Records`]: the records found, and whether some were left
    /// out for the limits.
    Records(Result<(Vec<Record>, bool), StoreError>),
    /// For [`Op::Range`]: the records, and where the next page resumes
    /// (`None`: the range is done).
    Range(Result<(Vec<Record>, Option<KeyHashBytes>), StoreError>),
    /// For [`Op::Sketch`]: the sketch and the number of digests.
    Sketch(Result<(Sketch<DIGEST_LEN>, u64), StoreError>),
}

impl Op {
    /// Its lane.
    pub fn lane(&self) -> Lane {
        match self {
            Op::Write(_) | Op::PutOwn(_) | Op::Collect { .. } | Op::Sketch { .. } => Lane::Write,
            Op::Check(_) | Op::Presence(_) | Op::Records { .. } | Op::Range { .. } => Lane::Read,
        }
    }

    /// Carries it out on `store`; `signing` signs [`Op::PutOwn`].
    pub fn run(self, store: &Store, signing: &SigningKey) -> Done {
        match self {
            Op::Check(records) => Done::Checked(store.check(records)),
            Op::Write(records) => Done::Written(store.write(&records)),
            Op::PutOwn(draft) => Done::PutOwn(store.put_own(signing, &draft)),
            Op::Collect { now, max } => Done::Collected(store.collect(now, max)),
            Op::Presence(digests) => Done::Presence(
                digests
                    .iter()
                    .map(|d| store.presence(d))
                    .collect::<Result<Vec<_>, _>>(),
            ),
            Op::Records {
                digests,
                max_records,
                max_bytes,
            } => Done::Records(read_records(store, &digests, max_records, max_bytes)),
            Op::Range {
                after,
                end,
                max_records,
                max_bytes,
            } => Done::Range(read_range(store, after, end, max_records, max_bytes)),
            Op::Sketch { key, len } => Done::Sketch(build_sketch(store, key, len)),
        }
    }

    /// [`run`](Self::run), with a panic inside the store turned into the
    /// op's [`StoreError::Backend`] failure: the machine waits for every
    /// op it emitted to come back, so an op that never does would stop its
    /// pipeline (gossip checks, writes, serving) for good.
    pub fn run_caught(self, store: &Store, signing: &SigningKey) -> Done {
        let failed = self.failure();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(store, signing))) {
            Ok(done) => done,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                tracing::error!("a store operation panicked: {message}");
                failed(StoreError::Backend {
                    op: "carry out a store operation",
                    message: format!("it panicked: {message}"),
                })
            }
        }
    }

    /// How this op reports a failure.
    fn failure(&self) -> fn(StoreError) -> Done {
        match self {
            Op::Check(_) => |e| Done::Checked(Err(e)),
            Op::Write(_) => |e| Done::Written(Err(e)),
            Op::PutOwn(_) => |e| Done::PutOwn(Err(e)),
            Op::Collect { .. } => |e| Done::Collected(Err(e)),
            Op::Presence(_) => |e| Done::Presence(Err(e)),
            Op::Records { .. } => |e| Done::Records(Err(e)),
            Op::Range { .. } => |e| Done::Range(Err(e)),
            Op::Sketch { .. } => |e| Done::Sketch(Err(e)),
        }
    }
}

fn read_records(
    store: &Store,
    digests: &[Digest],
    max_records: usize,
    max_bytes: usize,
) -> Result<(Vec<Record>, bool), StoreError> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    for record in store.get_by_digests(digests)?.into_iter().flatten() {
        let len = record.encoded_len();
        if !records.is_empty()
            && (bytes.saturating_add(len) > max_bytes || records.len() >= max_records)
        {
            return Ok((records, true));
        }
        bytes = bytes.saturating_add(len);
        records.push(record);
    }
    Ok((records, false))
}

/// Reads of a page whose digests all vanished before their records were
/// read (replaced by newer versions meanwhile), before giving up.
const RANGE_READ_TRIES: usize = 4;

/// Records after `after` up to `end`, within the limits, and where the
/// next page resumes: the last record's key hash, so that the asker can
/// check the cursor against the records (`None`: the span is done).
fn read_range(
    store: &Store,
    after: Option<KeyHashBytes>,
    end: KeyHashBytes,
    max_records: usize,
    max_bytes: usize,
) -> Result<(Vec<Record>, Option<KeyHashBytes>), StoreError> {
    if after.is_some_and(|a| a >= end) {
        return Ok((Vec::new(), None));
    }
    let start = after.map(|kh| {
        let mut d = [0u8; DIGEST_LEN];
        d[..KEY_HASH_LEN].copy_from_slice(&kh);
        Digest(d)
    });
    let mut last_vanished = None;
    for _ in 0..RANGE_READ_TRIES {
        let page = store.scan_digests(start.as_ref(), max_records.max(1))?;
        let in_range: Vec<Digest> = page
            .digests
            .iter()
            .take_while(|d| d.key_hash().0 <= end)
            .copied()
            .collect();
        let reached_end = in_range.len() < page.digests.len() || page.next.is_none();
        let found = store.get_by_digests(&in_range)?;
        let mut records: Vec<Record> = Vec::new();
        let mut bytes = 0usize;
        let mut cut = false;
        // A digest whose record is gone was replaced since it was read: the
        // newer version is read on the next page, so the page ends before it.
        let mut vanished = false;
        for (digest, record) in in_range.iter().zip(found) {
            let Some(record) = record else {
                vanished = true;
                last_vanished = Some(digest.key_hash().0);
                break;
            };
            let len = record.encoded_len();
            if !records.is_empty() && bytes.saturating_add(len) > max_bytes {
                cut = true;
                break;
            }
            bytes = bytes.saturating_add(len);
            records.push(record);
        }
        if records.is_empty() && vanished {
            // Every digest of the page vanished: read it again.
            continue;
        }
        let next = if cut || vanished || !reached_end {
            records.last().map(|r| r.key_hash().0)
        } else {
            None
        };
        return Ok((records, next));
    }
    // Still replaced on every read: move past them, without records.
    Ok((Vec::new(), last_vanished.or(after)))
}

fn build_sketch(
    store: &Store,
    key: crate::riblt::Key,
    len: usize,
) -> Result<(Sketch<DIGEST_LEN>, u64), StoreError> {
    let mut sketch = Sketch::new(key, len);
    let mut after: Option<Digest> = None;
    let mut count = 0u64;
    loop {
        let page = store.scan_digests(after.as_ref(), MAX_PAGE_DIGESTS)?;
        for d in &page.digests {
            sketch.insert(&d.0);
        }
        count = count.saturating_add(page.digests.len() as u64);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok((sketch, count)),
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_store::Config as StoreConfig;

    use super::*;
    use crate::catchup::range_ok;
    use crate::catchup::{SPANS, span_end, span_start};

    fn records(n: usize) -> Vec<Record> {
        let key = SigningKey::from_bytes(&[1; 32]);
        (0..n)
            .map(|k| Record::sign(&key, format!("r{k}").as_bytes(), 1, &[1; 100]).unwrap())
            .collect()
    }

    #[test]
    fn range_reads_walk_a_span_in_order() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        store.put_batch(&records(300)).unwrap();
        let mut seen = 0;
        for i in 0..SPANS {
            let mut after = span_start(i);
            loop {
                let (records, next) = read_range(&store, after, span_end(i), 7, 1 << 20).unwrap();
                assert!(range_ok(after, span_end(i), 7, 1 << 20, next, &records));
                seen += records.len();
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        assert_eq!(seen, 300);
        // The byte cap cuts a batch, keeping at least one record.
        let (records, next) = read_range(&store, None, span_end(63), 100, 10).unwrap();
        assert_eq!(records.len(), 1);
        assert!(next.is_some());
    }

    #[test]
    fn record_reads_keep_to_their_caps() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        let all = records(10);
        store.put_batch(&all).unwrap();
        let digests: Vec<Digest> = all.iter().map(Record::digest).collect();
        let (got, truncated) = read_records(&store, &digests, 4, 1 << 20).unwrap();
        assert_eq!((got.len(), truncated), (4, true));
        let (got, truncated) = read_records(&store, &digests, 100, 1).unwrap();
        assert_eq!((got.len(), truncated), (1, true));
        let (got, truncated) = read_records(&store, &digests, 100, 1 << 20).unwrap();
        assert_eq!((got.len(), truncated), (10, false));
    }
}
