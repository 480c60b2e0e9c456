//! The store: latest wins per (author, key), the digest set, tie losers,
//! and paged reads, over any [`Backend`].

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

use crate::backend::{Backend, ReadTxn, Table, WriteTxn};
use crate::digest::{Digest, KEY_HASH_LEN, KeyHash};
use crate::error::{Error, Invalid};
use crate::lmdb::LmdbBackend;
use crate::memory::MemoryBackend;
use crate::record::{Head, Kind, MAX_KEY_LEN, Record, RecordId, SIGNATURE_LEN, compute_id};
use ed25519_dalek::SigningKey;

use crate::config::Config;
use crate::verify::{Verified, verify_all};
use crate::{
    AUTHOR_LEN, MAX_PAGE_BYTES, MAX_PAGE_DIGESTS, MAX_PAGE_RECORDS, MAX_TXN_BYTES, MAX_TXN_RECORDS,
    MAX_VALUE_LEN,
};

/// The on-disk format this build reads and writes, kept in `meta` under
/// `format`.
pub const FORMAT_VERSION: u32 = 2;

/// `meta` key of the format version (u32 BE).
const META_FORMAT: &[u8] = b"format";

/// `meta` key of the next loser sequence number (u64 BE).
const META_LOSER_SEQ: &[u8] = b"loser_seq";

/// `meta` key prefix of an author's usage: `author/` ‖ author →
/// records (u64 BE) ‖ bytes (u64 BE), the bytes as stored in `records`
/// (row key and stored value).
const META_USAGE_PREFIX: &[u8] = b"author/";

/// `meta` key present once every author's usage is counted (a store
/// written before usage was kept is counted once, when opened).
const META_USAGE_COUNTED: &[u8] = b"usage_counted";

/// `meta` key of the number of tombstones stored (u64 BE).
const META_TOMBSTONES: &[u8] = b"tombstones";

/// `meta` key of the number of tombstones collected since the store was
/// made (u64 BE).
const META_COLLECTED_TOMBSTONES: &[u8] = b"collected_tombstones";

/// `meta` key of the number of expired values collected since the store
/// was made (u64 BE).
const META_COLLECTED_EXPIRED: &[u8] = b"collected_expired";

/// Bytes of a stored value before the record's value: version, kind,
/// expiry, signature.
const STORED_HEADER: usize = 8 + 1 + 8 + SIGNATURE_LEN;

/// Bytes of an `expiry` key before author ‖ key: the expiry.
const EXPIRY_KEY_HEADER: usize = 8;

/// Bytes of a digest entry before author ‖ key: version, content hash.
const DIGEST_ENTRY_HEADER: usize = 8 + 16;

/// What became of one record given to [`Store::put_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; nothing was stored under its (author, key) before.
    Inserted {
        /// The digest added to the set.
        digest: Digest,
    },
    /// Stored in place of an older version, or of an equal version with a
    /// larger id (which is then remembered as a loser).
    Replaced {
        /// The digest removed from the set.
        old: Digest,
        /// The digest added to the set.
        new: Digest,
    },
    /// Not stored: the stored version is higher. Its signature was not
    /// checked.
    Stale,
    /// Not stored: the same record is stored.
    Duplicate,
    /// Not stored: the stored record has the same version and a smaller id.
    /// The record is remembered as a loser.
    LostTie,
    /// Refused.
    Invalid(Invalid),
}

impl Outcome {
    /// The digest this outcome added to the set.
    pub fn added(&self) -> Option<Digest> {
        match self {
            Outcome::Inserted { digest } => Some(*digest),
            Outcome::Replaced { new, .. } => Some(*new),
            _ => None,
        }
    }

    /// The digest this outcome removed from the set.
    pub fn removed(&self) -> Option<Digest> {
        match self {
            Outcome::Replaced { old, .. } => Some(*old),
            _ => None,
        }
    }

    /// Whether the record is now stored.
    pub fn is_stored(&self) -> bool {
        matches!(self, Outcome::Inserted { .. } | Outcome::Replaced { .. })
    }
}

/// What [`Store::check`] found of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Verified and worth writing: it would be stored (`wins`), or
    /// remembered as the loser of a tie.
    New {
        /// The record, with the proof of its check.
        record: Verified,
        /// Whether it would be stored rather than lose a tie.
        wins: bool,
    },
    /// Not worth writing, so not verified: what the store holds of it
    /// ([`Presence::Stored`]: this very record; [`Presence::Superseded`]: a
    /// higher version; [`Presence::Loser`]: a remembered tie loser).
    Known(Presence),
    /// Refused.
    Invalid(Invalid),
}

/// What the store knows of a digest, for deciding whether to fetch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The record is stored.
    Stored,
    /// A higher version is stored under the same (author, key).
    Superseded,
    /// The record lost, or would lose, a tie against the stored one.
    Loser,
    /// Worth fetching: nothing at this version or higher is stored, or the
    /// record would win a tie.
    Missing,
}

/// A position in the records, after which a page resumes: author ‖ key of
/// the last record returned.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// The cursor just after `author ‖ key`.
    pub fn after(author: &[u8; AUTHOR_LEN], key: &[u8]) -> Cursor {
        Cursor(row_key(author, key))
    }

    /// The position's bytes: author ‖ key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A cursor from bytes made by [`Cursor::as_bytes`]; any bytes are a
    /// position.
    pub fn from_bytes(bytes: Vec<u8>) -> Cursor {
        Cursor(bytes)
    }
}

/// One page of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The records, ordered by author, then key.
    pub records: Vec<Record>,
    /// Where the next page starts; `None` when nothing follows.
    pub next: Option<Cursor>,
}

/// One page of digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPage {
    /// The digests, in byte order.
    pub digests: Vec<Digest>,
    /// The digest to resume after; `None` when nothing follows.
    pub next: Option<Digest>,
}

/// Counts from [`Store::check_integrity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Integrity {
    /// Records (and digests) stored.
    pub records: u64,
    /// Losers remembered.
    pub losers: u64,
}

/// What the local author writes with [`Store::put_own`]: a value or a
/// tombstone under a key, its expiry, and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The key.
    pub key: Vec<u8>,
    /// A value or a tombstone.
    pub kind: Kind,
    /// The value; empty for a tombstone.
    pub value: Vec<u8>,
    /// When every node drops it, in Unix seconds; 0 for never. A tombstone
    /// must expire.
    pub expires: u64,
    /// The version, or `None` for one more than the stored one.
    pub version: Option<u64>,
}

impl Draft {
    /// `value` under `key`, never expiring, at the next version.
    pub fn value(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Draft {
        Draft {
            key: key.into(),
            kind: Kind::Value,
            value: value.into(),
            expires: 0,
            version: None,
        }
    }

    /// The deletion of `key`, collected at `expires` (Unix seconds), at the
    /// version after the stored one.
    pub fn tombstone(key: impl Into<Vec<u8>>, expires: u64) -> Draft {
        Draft {
            key: key.into(),
            kind: Kind::Tombstone,
            value: Vec::new(),
            expires,
            version: None,
        }
    }

    /// The same, expiring at `expires` (0: never).
    pub fn expiring(self, expires: u64) -> Draft {
        Draft { expires, ..self }
    }

    /// The same, at `version` (`None`: the next one).
    pub fn at_version(self, version: Option<u64>) -> Draft {
        Draft { version, ..self }
    }
}

/// What one [`Store::collect`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// The digests removed from the set.
    pub removed: Vec<Digest>,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Expired values among them.
    pub expired: u64,
    /// The soonest expiry of what is left, if anything expires: a time not
    /// after the one collected at means more were due than one call removes.
    pub next: Option<u64>,
}

/// The store's tombstones and what it has collected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collection {
    /// Tombstones stored now.
    pub tombstones: u64,
    /// Tombstones collected since the store was made.
    pub collected_tombstones: u64,
    /// Expired values collected since the store was made.
    pub collected_expired: u64,
}

/// Signed records, latest version wins, over a [`Backend`].
///
/// Every method takes `&self`; a `Store` is shared between threads as is.
#[derive(Debug)]
pub struct Store {
    backend: Box<dyn Backend>,
    config: Config,
}

impl Store {
    /// Opens the LMDB store in `dir`, creating it if needed.
    ///
    /// Fails with [`Error::Locked`] when the directory is open elsewhere,
    /// and with [`Error::Format`] when it holds another format.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Store, Error> {
        let backend = LmdbBackend::open(dir.as_ref(), &config)?;
        Store::with_backend(Box::new(backend), config)
    }

    /// A new, empty store in memory.
    pub fn in_memory(config: Config) -> Result<Store, Error> {
        Store::with_backend(Box::new(MemoryBackend::new()), config)
    }

    /// A store over any backend; writes the format version into a new one
    /// and checks it in an existing one.
    pub fn with_backend(backend: Box<dyn Backend>, config: Config) -> Result<Store, Error> {
        config.validate()?;
        let mut found = None;
        backend.read(&mut |txn| {
            found = read_format(txn)?;
            Ok(())
        })?;
        match found {
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(Error::Format {
                    found: other,
                    expected: FORMAT_VERSION,
                });
            }
            None => backend.write(&mut |txn| {
                if read_format(txn)?.is_some() {
                    return Ok(());
                }
                if txn.count(Table::Records)? != 0 {
                    return Err(Error::Corrupt("records but no format version".into()));
                }
                txn.put(Table::Meta, META_FORMAT, &FORMAT_VERSION.to_be_bytes())
            })?,
        }
        let mut counted = false;
        backend.read(&mut |txn| {
            counted = txn.get(Table::Meta, META_USAGE_COUNTED)?.is_some();
            Ok(())
        })?;
        if !counted {
            backend.write(&mut count_usage)?;
        }
        Ok(Store { backend, config })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks and stores one record; see [`Store::put_batch`].
    pub fn put(&self, record: &Record) -> Result<Outcome, Error> {
        let mut outcomes = self.put_batch(std::slice::from_ref(record))?;
        outcomes
            .pop()
            .ok_or_else(|| Error::Corrupt("a batch of one gave no outcome".into()))
    }

    /// Checks records ([`Store::check`]) and writes those worth writing
    /// ([`Store::write`]); the outcome at `i` is for `records[i]`. Records
    /// found not worth writing come back as what writing them would give:
    /// [`Outcome::Duplicate`], [`Outcome::Stale`] or [`Outcome::LostTie`].
    pub fn put_batch(&self, records: &[Record]) -> Result<Vec<Outcome>, Error> {
        let checked = self.check(records.to_vec())?;
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(checked.len());
        let mut to_write = Vec::new();
        for c in checked {
            match c {
                Checked::New { record, .. } => {
                    to_write.push(record);
                    outcomes.push(None);
                }
                Checked::Known(presence) => outcomes.push(Some(match presence {
                    Presence::Stored => Outcome::Duplicate,
                    Presence::Superseded => Outcome::Stale,
                    Presence::Loser | Presence::Missing => Outcome::LostTie,
                })),
                Checked::Invalid(why) => outcomes.push(Some(Outcome::Invalid(why))),
            }
        }
        let mut written = self.write(&to_write)?.into_iter();
        outcomes
            .into_iter()
            .map(|o| {
                o.or_else(|| written.next())
                    .ok_or_else(|| Error::Corrupt("a write gave too few outcomes".into()))
            })
            .collect()
    }

    /// Triages records against what is stored and checks the signatures of
    /// those worth writing, in batches spread over the machine's cores; the
    /// entry at `i` is for `records[i]`.
    ///
    /// A record that would not be stored or remembered (older than the
    /// stored version, byte-identical to it, or a remembered tie loser) is
    /// not verified at all. What was seen here may change before the write;
    /// [`Store::write`] decides again.
    pub fn check(&self, records: Vec<Record>) -> Result<Vec<Checked>, Error> {
        let mut triage: Vec<Triage> = Vec::with_capacity(records.len());
        for chunk in records.chunks(MAX_PAGE_RECORDS) {
            let mut found = Vec::with_capacity(chunk.len());
            self.backend.read(&mut |txn| {
                found.clear();
                for record in chunk {
                    found.push(triage_one(txn, record, &self.config)?);
                }
                Ok(())
            })?;
            triage.extend(found);
        }
        let to_verify: Vec<&Record> = records
            .iter()
            .zip(&triage)
            .filter(|(_, t)| matches!(t, Triage::Verify { .. }))
            .map(|(r, _)| r)
            .collect();
        let mut verified = verify_all(&to_verify).into_iter();
        let mut out = Vec::with_capacity(records.len());
        for (record, t) in records.into_iter().zip(triage) {
            out.push(match t {
                Triage::Refused(why) => Checked::Invalid(why),
                Triage::Known(presence) => Checked::Known(presence),
                Triage::Verify { wins } => match verified.next() {
                    Some(Ok(())) => Checked::New {
                        record: Verified::signed(record),
                        wins,
                    },
                    Some(Err(why)) => {
                        tracing::debug!(id = %record.id(), %why, "record refused");
                        Checked::Invalid(why)
                    }
                    None => return Err(Error::Corrupt("a check gave too few results".into())),
                },
            });
        }
        Ok(out)
    }

    /// Writes verified records; the outcome at `i` is for `records[i]`.
    ///
    /// Records are applied in order, so a later record of the batch sees
    /// the earlier ones. Each write transaction takes at most
    /// [`MAX_TXN_RECORDS`] records and [`MAX_TXN_BYTES`] bytes; when this
    /// returns, every transaction is committed and (with
    /// [`Durability::Sync`](crate::Durability::Sync)) on disk.
    ///
    /// On error, the transactions before the failing one stay committed;
    /// writing the same records again is safe (they come back
    /// [`Outcome::Duplicate`]).
    pub fn write(&self, records: &[Verified]) -> Result<Vec<Outcome>, Error> {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut rest = records;
        while !rest.is_empty() {
            let end = chunk_len(rest.iter().map(|r| r.record().encoded_len()));
            let (chunk, tail) = rest.split_at(end);
            outcomes.extend(self.write_chunk(chunk)?);
            rest = tail;
        }
        Ok(outcomes)
    }

    /// One write transaction's worth of records.
    fn write_chunk(&self, records: &[Verified]) -> Result<Vec<Outcome>, Error> {
        let prepared: Vec<Prepared<'_>> = records
            .iter()
            .map(|r| Prepared::new(r.record(), self.config.max_value_len))
            .collect();
        let config = &self.config;
        let mut outcomes = Vec::with_capacity(prepared.len());
        self.backend.write(&mut |txn| {
            outcomes.clear();
            for p in &prepared {
                outcomes.push(apply(txn, p, config)?);
            }
            Ok(())
        })?;
        Ok(outcomes)
    }

    /// Signs the draft with `signing` and writes it, in one write
    /// transaction: with the draft's version when given, else one more than
    /// the stored version (1 when nothing is stored), read in that same
    /// transaction, so two writers never pick the same version. Returns the
    /// record signed and its outcome.
    ///
    /// A tombstone at the next version needs a stored record to delete
    /// ([`Error::NothingToDelete`]).
    pub fn put_own(&self, signing: &SigningKey, draft: &Draft) -> Result<(Record, Outcome), Error> {
        let author = signing.verifying_key().to_bytes();
        let row = row_key(&author, &draft.key);
        let config = &self.config;
        let mut result = None;
        self.backend.write(&mut |txn| {
            let version = match draft.version {
                Some(v) => v,
                None => match txn.get(Table::Records, &row)? {
                    None if draft.kind == Kind::Tombstone => return Err(Error::NothingToDelete),
                    None => 1,
                    Some(stored) => parse_stored(stored)?
                        .version
                        .checked_add(1)
                        .ok_or(Error::VersionExhausted)?,
                },
            };
            let record = Record::sign_as(
                signing,
                draft.kind,
                draft.expires,
                &draft.key,
                version,
                &draft.value,
            )?;
            let p = Prepared::new(&record, self.config.max_value_len);
            let outcome = apply(txn, &p, config)?;
            result = Some((record, outcome));
            Ok(())
        })?;
        result.ok_or_else(|| Error::Corrupt("a write transaction did not run".into()))
    }

    /// The record stored under (author, key).
    pub fn get(&self, author: &[u8; AUTHOR_LEN], key: &[u8]) -> Result<Option<Record>, Error> {
        let row = row_key(author, key);
        let mut out = None;
        self.backend.read(&mut |txn| {
            out = match txn.get(Table::Records, &row)? {
                Some(stored) => Some(record_from_row(&row, stored)?),
                None => None,
            };
            Ok(())
        })?;
        Ok(out)
    }

    /// The stored record with this digest.
    pub fn get_by_digest(&self, digest: &Digest) -> Result<Option<Record>, Error> {
        let mut out = self.get_by_digests(std::slice::from_ref(digest))?;
        Ok(out.pop().flatten())
    }

    /// The stored records with these digests; the entry at `i` is for
    /// `digests[i]`. Reads [`MAX_PAGE_RECORDS`] digests per transaction.
    pub fn get_by_digests(&self, digests: &[Digest]) -> Result<Vec<Option<Record>>, Error> {
        let mut out = Vec::with_capacity(digests.len());
        for chunk in digests.chunks(MAX_PAGE_RECORDS) {
            let mut found = Vec::with_capacity(chunk.len());
            self.backend.read(&mut |txn| {
                found.clear();
                for digest in chunk {
                    found.push(record_by_digest(txn, digest)?);
                }
                Ok(())
            })?;
            out.extend(found);
        }
        Ok(out)
    }

    /// What the store knows of `digest`.
    pub fn presence(&self, digest: &Digest) -> Result<Presence, Error> {
        let mut out = Presence::Missing;
        self.backend.read(&mut |txn| {
            out = presence(txn, digest)?;
            Ok(())
        })?;
        Ok(out)
    }

    /// Whether fetching the record with this digest is pointless: it is
    /// stored, superseded, or a tie loser.
    pub fn is_known(&self, digest: &Digest) -> Result<bool, Error> {
        Ok(self.presence(digest)? != Presence::Missing)
    }

    /// The author's records whose key starts with `prefix`, in key order,
    /// at most `max` (clamped to 1..=[`MAX_PAGE_RECORDS`]), resuming after
    /// `after`.
    pub fn list(
        &self,
        author: &[u8; AUTHOR_LEN],
        prefix: &[u8],
        after: Option<&Cursor>,
        max: usize,
    ) -> Result<Page, Error> {
        let start_key = row_key(author, prefix);
        let start = match after {
            Some(c) if c.0 >= start_key => Bound::Excluded(c.0.as_slice()),
            _ => Bound::Included(start_key.as_slice()),
        };
        self.page(start, &|row| row.starts_with(&start_key), max)
    }

    /// All records, ordered by author then key, at most `max` (clamped to
    /// 1..=[`MAX_PAGE_RECORDS`]) and about [`MAX_PAGE_BYTES`] of values per
    /// page, resuming after `after`. Each page is read in its own short
    /// transaction, so a scan sees writes made between its pages.
    pub fn scan(&self, after: Option<&Cursor>, max: usize) -> Result<Page, Error> {
        let start = match after {
            Some(c) => Bound::Excluded(c.0.as_slice()),
            None => Bound::Unbounded,
        };
        self.page(start, &|_| true, max)
    }

    fn page(
        &self,
        start: Bound<&[u8]>,
        within: &dyn Fn(&[u8]) -> bool,
        max: usize,
    ) -> Result<Page, Error> {
        let max = max.clamp(1, MAX_PAGE_RECORDS);
        let mut records: Vec<Record> = Vec::new();
        let mut more = false;
        self.backend.read(&mut |txn| {
            records.clear();
            more = false;
            let mut bytes = 0usize;
            let mut failed = None;
            txn.range(Table::Records, start, &mut |row, stored| {
                if !within(row) {
                    return false;
                }
                let len = stored.len().saturating_sub(STORED_HEADER);
                if records.len() >= max
                    || (!records.is_empty() && bytes.saturating_add(len) > MAX_PAGE_BYTES)
                {
                    more = true;
                    return false;
                }
                match record_from_row(row, stored) {
                    Ok(record) => {
                        bytes = bytes.saturating_add(len);
                        records.push(record);
                        true
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
            failed.map_or(Ok(()), Err)
        })?;
        let next = if more {
            records.last().map(|r| Cursor::after(r.author(), r.key()))
        } else {
            None
        };
        Ok(Page { records, next })
    }

    /// The digest set in byte order, at most `max` (clamped to
    /// 1..=[`MAX_PAGE_DIGESTS`]) per page, resuming after `after`; each page
    /// in its own transaction.
    pub fn scan_digests(&self, after: Option<&Digest>, max: usize) -> Result<DigestPage, Error> {
        let max = max.clamp(1, MAX_PAGE_DIGESTS);
        let after = after.map(Digest::key_hash);
        let start = match &after {
            Some(kh) => Bound::Excluded(kh.0.as_slice()),
            None => Bound::Unbounded,
        };
        let mut digests = Vec::new();
        let mut more = false;
        self.backend.read(&mut |txn| {
            digests.clear();
            more = false;
            let mut failed = None;
            txn.range(Table::Digests, start, &mut |kh, entry| {
                if digests.len() >= max {
                    more = true;
                    return false;
                }
                match digest_from_entry(kh, entry) {
                    Ok(d) => {
                        digests.push(d);
                        true
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
            failed.map_or(Ok(()), Err)
        })?;
        let next = if more { digests.last().copied() } else { None };
        Ok(DigestPage { digests, next })
    }

    /// How many records are stored (one per (author, key)).
    pub fn len(&self) -> Result<u64, Error> {
        self.count(Table::Records)
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// How many tie losers are remembered.
    pub fn loser_count(&self) -> Result<u64, Error> {
        self.count(Table::Losers)
    }

    /// The tombstones stored and what was collected so far.
    pub fn collection(&self) -> Result<Collection, Error> {
        let mut out = Collection::default();
        self.backend.read(&mut |txn| {
            out = Collection {
                tombstones: read_u64(txn, Table::Meta, META_TOMBSTONES)?.unwrap_or(0),
                collected_tombstones: read_u64(txn, Table::Meta, META_COLLECTED_TOMBSTONES)?
                    .unwrap_or(0),
                collected_expired: read_u64(txn, Table::Meta, META_COLLECTED_EXPIRED)?.unwrap_or(0),
            };
            Ok(())
        })?;
        Ok(out)
    }

    /// Removes up to `max` (clamped to 1..=[`MAX_TXN_RECORDS`]) records
    /// that have expired at `now` (Unix seconds), soonest first, with
    /// their digests, in one write transaction. Tombstones go this way too
    /// once their horizon has passed. Opens no write transaction when
    /// nothing is due.
    pub fn collect(&self, now: u64, max: usize) -> Result<Collected, Error> {
        let max = max.clamp(1, MAX_TXN_RECORDS);
        let mut out = Collected::default();
        self.backend.read(&mut |txn| {
            out.next = first_expiry(txn)?;
            Ok(())
        })?;
        if out.next.is_none_or(|t| t > now) {
            return Ok(out);
        }
        self.backend.write(&mut |txn| {
            out = collect(txn, now, max)?;
            Ok(())
        })?;
        Ok(out)
    }

    fn count(&self, table: Table) -> Result<u64, Error> {
        let mut n = 0;
        self.backend.read(&mut |txn| {
            n = txn.count(table)?;
            Ok(())
        })?;
        Ok(n)
    }

    /// Bytes the store takes in its backend (for LMDB: the pages in use).
    pub fn size_bytes(&self) -> Result<u64, Error> {
        self.backend.size_bytes()
    }

    /// Flushes committed writes to disk; only needed with
    /// [`Durability::NoSync`](crate::Durability::NoSync).
    pub fn flush(&self) -> Result<(), Error> {
        self.backend.flush()
    }

    /// Walks the whole store in one read transaction and checks it: every
    /// record decodes and its digest is in the digest set, the digest set
    /// has nothing else, the losers tables mirror each other, and, when
    /// `signatures` is set, every signature verifies. Any failure is
    /// [`Error::Corrupt`].
    ///
    /// Holds one read transaction for the whole walk: for checks and tests,
    /// not for a busy store.
    pub fn check_integrity(&self, signatures: bool) -> Result<Integrity, Error> {
        let mut out = Integrity {
            records: 0,
            losers: 0,
        };
        self.backend.read(&mut |txn| {
            out = check_integrity(txn, signatures)?;
            Ok(())
        })?;
        Ok(out)
    }
}

/// How many records, of these encoded lengths, go in the next write
/// transaction: at most [`MAX_TXN_RECORDS`] and [`MAX_TXN_BYTES`], and at
/// least one.
fn chunk_len(lens: impl Iterator<Item = usize>) -> usize {
    let mut end = 0usize;
    let mut bytes = 0usize;
    for len in lens.take(MAX_TXN_RECORDS) {
        if end > 0 && bytes.saturating_add(len) > MAX_TXN_BYTES {
            break;
        }
        bytes = bytes.saturating_add(len);
        // At most `MAX_TXN_RECORDS`.
        end = end.saturating_add(1);
    }
    end
}

/// What [`Store::check`] makes of a record before any signature check.
enum Triage {
    /// Refused whatever its signature.
    Refused(Invalid),
    /// Not worth writing.
    Known(Presence),
    /// Worth a signature check: it would be stored, or (`wins` false)
    /// remembered as a tie loser.
    Verify { wins: bool },
}

fn triage_one(txn: &dyn ReadTxn, record: &Record, config: &Config) -> Result<Triage, Error> {
    let p = Prepared::new(record, config.max_value_len);
    if let Some(why) = p.refused {
        return Ok(Triage::Refused(why));
    }
    let against = against(txn, &p)?;
    let replaced = match &against {
        Against::Empty => Some(None),
        Against::Older(_) => Some(Some(stored_len(txn, &p.row)?)),
        // Only a winner replaces the stored record; a loser takes no room.
        Against::Tie(stored_id, _) if record.id() < *stored_id => {
            Some(Some(stored_len(txn, &p.row)?))
        }
        Against::Tie(..) | Against::Stale | Against::Duplicate => None,
    };
    if let Some(replaced) = replaced
        && let Some(why) = over_quota(txn, &p, replaced, config)?
    {
        return Ok(Triage::Refused(why));
    }
    Ok(match against {
        Against::Empty | Against::Older(_) => Triage::Verify { wins: true },
        Against::Stale => Triage::Known(Presence::Superseded),
        Against::Duplicate => Triage::Known(Presence::Stored),
        // A remembered loser was checked when it lost.
        Against::Tie(..) if txn.get(Table::Losers, &p.digest.0)?.is_some() => {
            Triage::Known(Presence::Loser)
        }
        Against::Tie(stored_id, _) => Triage::Verify {
            wins: record.id() < stored_id,
        },
    })
}

/// An author's usage: records and bytes as stored.
fn read_usage(txn: &dyn ReadTxn, author: &[u8]) -> Result<(u64, u64), Error> {
    match txn.get(Table::Meta, &usage_key(author))? {
        None => Ok((0, 0)),
        Some(bytes) => {
            let bytes: [u8; 16] = bytes
                .try_into()
                .map_err(|_| Error::Corrupt("an author's usage is not 16 bytes".into()))?;
            let (records, stored) = bytes.split_at(8);
            let u64_of = |b: &[u8]| {
                b.try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corrupt("an author's usage is not 16 bytes".into()))
            };
            Ok((u64_of(records)?, u64_of(stored)?))
        }
    }
}

fn write_usage(txn: &mut dyn WriteTxn, author: &[u8], usage: (u64, u64)) -> Result<(), Error> {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&usage.0.to_be_bytes());
    value[8..].copy_from_slice(&usage.1.to_be_bytes());
    txn.put(Table::Meta, &usage_key(author), &value)
}

fn usage_key(author: &[u8]) -> Vec<u8> {
    [META_USAGE_PREFIX, author].concat()
}

/// Bytes a record takes as stored: its row key and stored value.
fn stored_len(txn: &dyn ReadTxn, row: &[u8]) -> Result<u64, Error> {
    let value = txn.get(Table::Records, row)?.map_or(0, <[u8]>::len);
    Ok(u64::try_from(row.len().saturating_add(value)).unwrap_or(u64::MAX))
}

/// Why writing `p` (replacing a stored record of `replaced` bytes, if
/// any) would take its author over a quota, if it would.
fn over_quota(
    txn: &dyn ReadTxn,
    p: &Prepared<'_>,
    replaced: Option<u64>,
    config: &Config,
) -> Result<Option<Invalid>, Error> {
    // A replacement that takes no more room is always let in, so an author
    // over a quota lowered since can still delete or shrink its records.
    if replaced.is_some_and(|r| p.stored_len() <= r) {
        return Ok(None);
    }
    let (records, bytes) = usage_after(txn, p, replaced)?;
    Ok(if records > config.max_records_per_author {
        Some(Invalid::OverQuota {
            what: "records",
            max: config.max_records_per_author,
        })
    } else if bytes > config.max_bytes_per_author {
        Some(Invalid::OverQuota {
            what: "bytes",
            max: config.max_bytes_per_author,
        })
    } else {
        None
    })
}

/// Counts every author's usage from the records, once: for a store
/// written before usage was kept.
fn count_usage(txn: &mut dyn WriteTxn) -> Result<(), Error> {
    if txn.get(Table::Meta, META_USAGE_COUNTED)?.is_some() {
        return Ok(());
    }
    let usage = tally_usage(&*txn)?;
    for (author, counts) in usage {
        write_usage(txn, &author, counts)?;
    }
    txn.put(Table::Meta, META_USAGE_COUNTED, &[])
}

/// Every author's records and bytes, counted from the records table.
fn tally_usage(txn: &dyn ReadTxn) -> Result<HashMap<[u8; AUTHOR_LEN], (u64, u64)>, Error> {
    let mut usage: HashMap<[u8; AUTHOR_LEN], (u64, u64)> = HashMap::new();
    let mut failed = None;
    txn.range(Table::Records, Bound::Unbounded, &mut |row, stored| {
        let Some(author) = row
            .get(..AUTHOR_LEN)
            .and_then(|a| <[u8; AUTHOR_LEN]>::try_from(a).ok())
        else {
            failed = Some(Error::Corrupt(format!("record key of {} bytes", row.len())));
            return false;
        };
        let len = u64::try_from(row.len().saturating_add(stored.len())).unwrap_or(u64::MAX);
        let entry = usage.entry(author).or_default();
        entry.0 = entry.0.saturating_add(1);
        entry.1 = entry.1.saturating_add(len);
        true
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(usage),
    }
}

/// A record with what the store derives from it.
struct Prepared<'a> {
    record: &'a Record,
    row: Vec<u8>,
    key_hash: KeyHash,
    digest: Digest,
    /// Refused whatever is stored (too long for this store).
    refused: Option<Invalid>,
}

impl<'a> Prepared<'a> {
    /// Bytes it takes as stored: row key, version, signature, value.
    fn stored_len(&self) -> u64 {
        let len = self
            .row
            .len()
            .saturating_add(STORED_HEADER)
            .saturating_add(self.record.value().len());
        u64::try_from(len).unwrap_or(u64::MAX)
    }

    fn new(record: &'a Record, max_value_len: usize) -> Prepared<'a> {
        let len = record.value().len();
        let refused = (len > max_value_len).then_some(Invalid::ValueTooLong {
            len,
            max: max_value_len,
        });
        Prepared {
            record,
            row: row_key(record.author(), record.key()),
            key_hash: record.key_hash(),
            digest: record.digest(),
            refused,
        }
    }

    fn same_as(&self, stored: &Stored<'_>) -> bool {
        stored.version == self.record.version()
            && stored.kind == self.record.kind()
            && stored.expires == self.record.expires()
            && stored.signature == self.record.signature()
            && stored.value == self.record.value()
    }
}

/// A record as the `records` table holds it.
struct Stored<'a> {
    version: u64,
    kind: Kind,
    expires: u64,
    signature: &'a [u8; SIGNATURE_LEN],
    value: &'a [u8],
}

fn parse_stored(bytes: &[u8]) -> Result<Stored<'_>, Error> {
    let corrupt = || Error::Corrupt(format!("stored record of {} bytes", bytes.len()));
    let (version, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (kind, rest) = rest.split_first().ok_or_else(corrupt)?;
    let kind = Kind::from_byte(*kind).ok_or_else(corrupt)?;
    let (expires, rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (signature, value) = rest
        .split_first_chunk::<SIGNATURE_LEN>()
        .ok_or_else(corrupt)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(corrupt());
    }
    Ok(Stored {
        version: u64::from_be_bytes(*version),
        kind,
        expires: u64::from_be_bytes(*expires),
        signature,
        value,
    })
}

/// The `expiry` key of a record under `row` expiring at `expires`.
fn expiry_key(expires: u64, row: &[u8]) -> Vec<u8> {
    [&expires.to_be_bytes()[..], row].concat()
}

/// The soonest expiry of a stored record, if any expires.
fn first_expiry(txn: &dyn ReadTxn) -> Result<Option<u64>, Error> {
    let mut first = None;
    txn.range(Table::Expiry, Bound::Unbounded, &mut |key, _| {
        first = key.first_chunk::<8>().map(|t| u64::from_be_bytes(*t));
        false
    })?;
    Ok(first)
}

/// Removes the records due at `now`, at most `max`.
fn collect(txn: &mut dyn WriteTxn, now: u64, max: usize) -> Result<Collected, Error> {
    let mut due: Vec<Vec<u8>> = Vec::new();
    txn.range(Table::Expiry, Bound::Unbounded, &mut |key, _| {
        let at = key.first_chunk::<8>().map_or(0, |t| u64::from_be_bytes(*t));
        if at > now || due.len() >= max {
            return false;
        }
        due.push(key.to_vec());
        true
    })?;
    let mut out = Collected::default();
    for key in due {
        txn.delete(Table::Expiry, &key)?;
        let row = key.get(EXPIRY_KEY_HEADER..).unwrap_or_default();
        let Some(stored) = txn.get(Table::Records, row)? else {
            return Err(Error::Corrupt("an expiry without its record".into()));
        };
        let stored_bytes = stored.to_vec();
        let s = parse_stored(&stored_bytes)?;
        let (author, key) = split_row(row)?;
        let key_hash = KeyHash::of(author, key);
        let digest = digest_of(key_hash, s.version, &stored_id(row, &s)?);
        txn.delete(Table::Records, row)?;
        txn.delete(Table::Digests, &key_hash.0)?;
        let (records, bytes) = read_usage(&*txn, author)?;
        let len = u64::try_from(row.len().saturating_add(stored_bytes.len())).unwrap_or(u64::MAX);
        write_usage(
            txn,
            author,
            (records.saturating_sub(1), bytes.saturating_sub(len)),
        )?;
        if s.kind == Kind::Tombstone {
            add_to(txn, META_TOMBSTONES, -1)?;
            out.tombstones = out.tombstones.saturating_add(1);
        } else {
            out.expired = out.expired.saturating_add(1);
        }
        out.removed.push(digest);
    }
    add_to(
        txn,
        META_COLLECTED_TOMBSTONES,
        i64::try_from(out.tombstones).unwrap_or(i64::MAX),
    )?;
    add_to(
        txn,
        META_COLLECTED_EXPIRED,
        i64::try_from(out.expired).unwrap_or(i64::MAX),
    )?;
    out.next = first_expiry(&*txn)?;
    Ok(out)
}

/// Adds `delta` to a `meta` counter (saturating at 0 and `u64::MAX`).
fn add_to(txn: &mut dyn WriteTxn, name: &[u8], delta: i64) -> Result<(), Error> {
    if delta == 0 {
        return Ok(());
    }
    let n = read_u64(&*txn, Table::Meta, name)?.unwrap_or(0);
    let n = n.saturating_add_signed(delta);
    txn.put(Table::Meta, name, &n.to_be_bytes())
}

impl Stored<'_> {
    fn head(&self, author: &[u8; AUTHOR_LEN]) -> Head {
        Head {
            author: *author,
            kind: self.kind,
            expires: self.expires,
        }
    }
}

/// The `records` key of (author, key).
fn row_key(author: &[u8; AUTHOR_LEN], key: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(AUTHOR_LEN.saturating_add(key.len()));
    row.extend_from_slice(author);
    row.extend_from_slice(key);
    row
}

fn split_row(row: &[u8]) -> Result<(&[u8; AUTHOR_LEN], &[u8]), Error> {
    match row.split_first_chunk::<AUTHOR_LEN>() {
        Some((author, key)) if key.len() <= MAX_KEY_LEN => Ok((author, key)),
        _ => Err(Error::Corrupt(format!("record key of {} bytes", row.len()))),
    }
}

fn record_from_row(row: &[u8], stored: &[u8]) -> Result<Record, Error> {
    let (author, key) = split_row(row)?;
    let s = parse_stored(stored)?;
    Ok(Record::assemble(
        s.head(author),
        key.to_vec(),
        s.version,
        s.value.to_vec(),
        *s.signature,
    ))
}

/// The id of a stored record, without building it.
fn stored_id(row: &[u8], stored: &Stored<'_>) -> Result<RecordId, Error> {
    let (author, key) = split_row(row)?;
    Ok(compute_id(
        &stored.head(author),
        key,
        stored.version,
        stored.value,
        stored.signature,
    ))
}

fn digest_of(key_hash: KeyHash, version: u64, id: &RecordId) -> Digest {
    let mut content = [0u8; 16];
    content.copy_from_slice(&id.0[..16]);
    Digest::new(key_hash, version, content)
}

/// The `digests` value: version ‖ content hash ‖ author ‖ key.
fn digest_entry(digest: &Digest, row: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(DIGEST_ENTRY_HEADER.saturating_add(row.len()));
    entry.extend_from_slice(&digest.0[KEY_HASH_LEN..]);
    entry.extend_from_slice(row);
    entry
}

fn digest_from_entry(key_hash: &[u8], entry: &[u8]) -> Result<Digest, Error> {
    if key_hash.len() != KEY_HASH_LEN || entry.len() < DIGEST_ENTRY_HEADER + AUTHOR_LEN {
        return Err(Error::Corrupt(format!(
            "digest entry of {} + {} bytes",
            key_hash.len(),
            entry.len()
        )));
    }
    let mut bytes = [0u8; crate::DIGEST_LEN];
    bytes[..KEY_HASH_LEN].copy_from_slice(key_hash);
    bytes[KEY_HASH_LEN..].copy_from_slice(&entry[..DIGEST_ENTRY_HEADER]);
    Ok(Digest(bytes))
}

fn read_format(txn: &dyn ReadTxn) -> Result<Option<u32>, Error> {
    match txn.get(Table::Meta, META_FORMAT)? {
        None => Ok(None),
        Some(bytes) => {
            let bytes: [u8; 4] = bytes
                .try_into()
                .map_err(|_| Error::Corrupt("format version is not 4 bytes".into()))?;
            Ok(Some(u32::from_be_bytes(bytes)))
        }
    }
}

fn read_u64(txn: &dyn ReadTxn, table: Table, key: &[u8]) -> Result<Option<u64>, Error> {
    match txn.get(table, key)? {
        None => Ok(None),
        Some(bytes) => {
            let bytes: [u8; 8] = bytes
                .try_into()
                .map_err(|_| Error::Corrupt(format!("{} entry is not 8 bytes", table.name())))?;
            Ok(Some(u64::from_be_bytes(bytes)))
        }
    }
}

/// What the stored record under a row tells about a newcomer.
enum Against {
    Empty,
    Stale,
    Duplicate,
    /// Same version, different record: the stored id and digest.
    Tie(RecordId, Digest),
    /// Lower version stored: its digest.
    Older(Digest),
}

fn against(txn: &dyn ReadTxn, p: &Prepared<'_>) -> Result<Against, Error> {
    let Some(bytes) = txn.get(Table::Records, &p.row)? else {
        return Ok(Against::Empty);
    };
    let stored = parse_stored(bytes)?;
    let version = p.record.version();
    if version < stored.version {
        return Ok(Against::Stale);
    }
    if p.same_as(&stored) {
        return Ok(Against::Duplicate);
    }
    let id = stored_id(&p.row, &stored)?;
    let digest = digest_of(p.key_hash, stored.version, &id);
    Ok(if version == stored.version {
        Against::Tie(id, digest)
    } else {
        Against::Older(digest)
    })
}

/// Applies one verified record inside the write transaction.
///
/// The order of the decisions is the contract: too long for this store,
/// then stale, then duplicate, then latest wins and ties.
fn apply(txn: &mut dyn WriteTxn, p: &Prepared<'_>, config: &Config) -> Result<Outcome, Error> {
    if let Some(e) = &p.refused {
        return Ok(Outcome::Invalid(e.clone()));
    }
    let max_losers = config.max_losers;
    match against(txn, p)? {
        Against::Stale => Ok(Outcome::Stale),
        Against::Duplicate => Ok(Outcome::Duplicate),
        Against::Empty => {
            if let Some(entry) = txn.get(Table::Digests, &p.key_hash.0)? {
                let row = entry.get(DIGEST_ENTRY_HEADER..).unwrap_or_default();
                if row == p.row.as_slice() {
                    return Err(Error::Corrupt("a digest without its record".into()));
                }
                return Ok(Outcome::Invalid(Invalid::KeyHashCollision));
            }
            if let Some(why) = over_quota(&*txn, p, None, config)? {
                return Ok(Outcome::Invalid(why));
            }
            write_counted(txn, p, None)?;
            Ok(Outcome::Inserted { digest: p.digest })
        }
        Against::Older(old) => {
            let replaced = stored_len(&*txn, &p.row)?;
            if let Some(why) = over_quota(&*txn, p, Some(replaced), config)? {
                return Ok(Outcome::Invalid(why));
            }
            write_counted(txn, p, Some(replaced))?;
            Ok(Outcome::Replaced { old, new: p.digest })
        }
        Against::Tie(stored_id, old) => {
            if p.record.id() < stored_id {
                let replaced = stored_len(&*txn, &p.row)?;
                if let Some(why) = over_quota(&*txn, p, Some(replaced), config)? {
                    return Ok(Outcome::Invalid(why));
                }
                write_counted(txn, p, Some(replaced))?;
                remember_loser(txn, &old, max_losers)?;
                Ok(Outcome::Replaced { old, new: p.digest })
            } else {
                if txn.get(Table::Losers, &p.digest.0)?.is_none() {
                    remember_loser(txn, &p.digest, max_losers)?;
                }
                Ok(Outcome::LostTie)
            }
        }
    }
}

/// [`write_record`], and the author's usage with it: one more record, or
/// the bytes of the one `replaced`.
fn write_counted(
    txn: &mut dyn WriteTxn,
    p: &Prepared<'_>,
    replaced: Option<u64>,
) -> Result<(), Error> {
    let usage = usage_after(&*txn, p, replaced)?;
    write_record(txn, p)?;
    write_usage(txn, p.record.author(), usage)
}

/// The author's usage (records, bytes) once `p` is stored, replacing a
/// record of `replaced` bytes if any.
fn usage_after(
    txn: &dyn ReadTxn,
    p: &Prepared<'_>,
    replaced: Option<u64>,
) -> Result<(u64, u64), Error> {
    let (records, bytes) = read_usage(txn, p.record.author())?;
    let records = if replaced.is_some() {
        records
    } else {
        records.saturating_add(1)
    };
    let bytes = bytes
        .saturating_sub(replaced.unwrap_or(0))
        .saturating_add(p.stored_len());
    Ok((records, bytes))
}

/// Stores the record and its digest, replacing both of any older version,
/// and keeps the expiry index and the tombstone count with them.
fn write_record(txn: &mut dyn WriteTxn, p: &Prepared<'_>) -> Result<(), Error> {
    let record = p.record;
    let mut tombstones = 0i64;
    if let Some(old) = txn.get(Table::Records, &p.row)? {
        let old = parse_stored(old)?;
        let (kind, expires) = (old.kind, old.expires);
        if expires != 0 {
            txn.delete(Table::Expiry, &expiry_key(expires, &p.row))?;
        }
        if kind == Kind::Tombstone {
            tombstones = -1;
        }
    }
    if record.expires() != 0 {
        txn.put(Table::Expiry, &expiry_key(record.expires(), &p.row), &[])?;
    }
    if record.is_tombstone() {
        tombstones = tombstones.saturating_add(1);
    }
    add_to(txn, META_TOMBSTONES, tombstones)?;
    let mut stored = Vec::with_capacity(STORED_HEADER.saturating_add(record.value().len()));
    stored.extend_from_slice(&record.version().to_be_bytes());
    stored.push(record.kind().as_byte());
    stored.extend_from_slice(&record.expires().to_be_bytes());
    stored.extend_from_slice(record.signature());
    stored.extend_from_slice(record.value());
    txn.put(Table::Records, &p.row, &stored)?;
    txn.put(
        Table::Digests,
        &p.key_hash.0,
        &digest_entry(&p.digest, &p.row),
    )
}

/// Remembers a tie loser, forgetting the oldest beyond `max`.
fn remember_loser(txn: &mut dyn WriteTxn, digest: &Digest, max: usize) -> Result<(), Error> {
    if max == 0 || txn.get(Table::Losers, &digest.0)?.is_some() {
        return Ok(());
    }
    let seq = read_u64(txn, Table::Meta, META_LOSER_SEQ)?.unwrap_or(0);
    let next = seq
        .checked_add(1)
        .ok_or_else(|| Error::Corrupt("loser sequence exhausted".into()))?;
    txn.put(Table::Losers, &digest.0, &seq.to_be_bytes())?;
    txn.put(Table::LoserOrder, &seq.to_be_bytes(), &digest.0)?;
    txn.put(Table::Meta, META_LOSER_SEQ, &next.to_be_bytes())?;
    let max = u64::try_from(max).unwrap_or(u64::MAX);
    while txn.count(Table::Losers)? > max {
        let mut oldest = None;
        txn.range(Table::LoserOrder, Bound::Unbounded, &mut |k, v| {
            oldest = Some((k.to_vec(), v.to_vec()));
            false
        })?;
        let Some((seq, digest)) = oldest else {
            return Err(Error::Corrupt("losers without an order".into()));
        };
        txn.delete(Table::LoserOrder, &seq)?;
        txn.delete(Table::Losers, &digest)?;
    }
    Ok(())
}

fn record_by_digest(txn: &dyn ReadTxn, digest: &Digest) -> Result<Option<Record>, Error> {
    let Some(entry) = txn.get(Table::Digests, &digest.0[..KEY_HASH_LEN])? else {
        return Ok(None);
    };
    if digest_from_entry(&digest.0[..KEY_HASH_LEN], entry)? != *digest {
        return Ok(None);
    }
    let row = &entry[DIGEST_ENTRY_HEADER..];
    let Some(stored) = txn.get(Table::Records, row)? else {
        return Err(Error::Corrupt("a digest without its record".into()));
    };
    let record = record_from_row(row, stored)?;
    if record.digest() != *digest {
        return Err(Error::Corrupt(
            "a digest that does not match its record".into(),
        ));
    }
    Ok(Some(record))
}

fn presence(txn: &dyn ReadTxn, digest: &Digest) -> Result<Presence, Error> {
    if let Some(entry) = txn.get(Table::Digests, &digest.0[..KEY_HASH_LEN])? {
        let stored = digest_from_entry(&digest.0[..KEY_HASH_LEN], entry)?;
        if stored == *digest {
            return Ok(Presence::Stored);
        }
        if stored.version() > digest.version() {
            return Ok(Presence::Superseded);
        }
        // Equal versions: ids order ties, and the content hash is the id's
        // first 16 bytes, so a larger content hash loses.
        if stored.version() == digest.version() && digest.content_hash() > stored.content_hash() {
            return Ok(Presence::Loser);
        }
    }
    if txn.get(Table::Losers, &digest.0)?.is_some() {
        return Ok(Presence::Loser);
    }
    Ok(Presence::Missing)
}

fn check_integrity(txn: &dyn ReadTxn, signatures: bool) -> Result<Integrity, Error> {
    match read_format(txn)? {
        Some(FORMAT_VERSION) => {}
        Some(found) => {
            return Err(Error::Format {
                found,
                expected: FORMAT_VERSION,
            });
        }
        None => return Err(Error::Corrupt("no format version".into())),
    }

    let mut records = 0u64;
    let mut expiring = 0u64;
    let mut tombstones = 0u64;
    let mut failed: Option<Error> = None;
    let mut unverified: Vec<Record> = Vec::new();
    let verify = |batch: &mut Vec<Record>| -> Result<(), Error> {
        let refs: Vec<&Record> = batch.iter().collect();
        for (record, result) in batch.iter().zip(verify_all(&refs)) {
            if let Err(e) = result {
                return Err(Error::Corrupt(format!(
                    "record {} is invalid: {e}",
                    record.id()
                )));
            }
        }
        batch.clear();
        Ok(())
    };
    txn.range(Table::Records, Bound::Unbounded, &mut |row, stored| {
        let result = (|| {
            let record = record_from_row(row, stored)?;
            let digest = record.digest();
            let entry = txn
                .get(Table::Digests, &digest.0[..KEY_HASH_LEN])?
                .ok_or_else(|| Error::Corrupt(format!("record {} has no digest", record.id())))?;
            if entry != digest_entry(&digest, row).as_slice() {
                return Err(Error::Corrupt(format!(
                    "record {} has a wrong digest entry",
                    record.id()
                )));
            }
            if record.expires() != 0 {
                let key = expiry_key(record.expires(), row);
                if txn.get(Table::Expiry, &key)?.is_none() {
                    return Err(Error::Corrupt(format!(
                        "record {} expires but is not in the expiry index",
                        record.id()
                    )));
                }
                expiring = expiring.saturating_add(1);
            }
            if record.is_tombstone() {
                tombstones = tombstones.saturating_add(1);
            }
            if signatures {
                unverified.push(record);
                if unverified.len() >= 64 {
                    verify(&mut unverified)?;
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                records = records.saturating_add(1);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    verify(&mut unverified)?;
    if txn.get(Table::Meta, META_USAGE_COUNTED)?.is_none() {
        return Err(Error::Corrupt("authors' usage was never counted".into()));
    }
    let tally = tally_usage(txn)?;
    for (author, counted) in &tally {
        let kept = read_usage(txn, author)?;
        if kept != *counted {
            return Err(Error::Corrupt(format!(
                "an author's usage is kept as {kept:?} (records, bytes) but is {counted:?}"
            )));
        }
    }
    // Authors with nothing stored are kept at zero, if at all.
    let mut kept_authors = Vec::new();
    txn.range(
        Table::Meta,
        Bound::Included(META_USAGE_PREFIX),
        &mut |key, _| match key.strip_prefix(META_USAGE_PREFIX) {
            Some(author) => {
                kept_authors.push(author.to_vec());
                true
            }
            None => false,
        },
    )?;
    for author in kept_authors {
        let counted = <[u8; AUTHOR_LEN]>::try_from(author.as_slice())
            .ok()
            .and_then(|a| tally.get(&a).copied())
            .unwrap_or((0, 0));
        if read_usage(txn, &author)? != counted {
            return Err(Error::Corrupt(
                "an author's usage is kept but nothing of it is stored".into(),
            ));
        }
    }
    if expiring != txn.count(Table::Expiry)? {
        return Err(Error::Corrupt(format!(
            "{expiring} records expire but the expiry index has {}",
            txn.count(Table::Expiry)?
        )));
    }
    let kept = read_u64(txn, Table::Meta, META_TOMBSTONES)?.unwrap_or(0);
    if kept != tombstones {
        return Err(Error::Corrupt(format!(
            "{tombstones} tombstones stored but {kept} counted"
        )));
    }
    let digests = txn.count(Table::Digests)?;
    if digests != records {
        return Err(Error::Corrupt(format!(
            "{records} records but {digests} digests"
        )));
    }

    let mut losers = 0u64;
    txn.range(Table::Losers, Bound::Unbounded, &mut |digest, seq| {
        let ok = digest.len() == crate::DIGEST_LEN
            && seq.len() == 8
            && txn.get(Table::LoserOrder, seq).ok().flatten() == Some(digest);
        if ok {
            losers = losers.saturating_add(1);
        } else {
            failed = Some(Error::Corrupt("losers and their order disagree".into()));
        }
        ok
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if txn.count(Table::LoserOrder)? != losers {
        return Err(Error::Corrupt("losers and their order disagree".into()));
    }
    Ok(Integrity { records, losers })
}

#[cfg(test)]
mod tests;
