//! Random operation sequences against a `BTreeMap` model, on both backends.
//!
//! After every step the store and the model agree: outcomes, records, pages,
//! the digest set (read back and as rebuilt from the outcomes' added and
//! removed digests, the way the sync layer keeps its sketch, through
//! writes and collections), presence, the losers, tombstones and expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use strata_store::{
    Config, Cursor, Digest, Invalid, Kind as RecordKind, Outcome, Presence, Record, Store,
};

use crate::common::{Harness, Kind, flipped, signer};

const AUTHORS: u8 = 3;
const KEYS: [&[u8]; 6] = [b"", b"a", b"ab", b"abc", b"b", b"ba"];
const VALUES: [&[u8]; 4] = [b"", b"x", b"y", b"zzzz"];
const VERSIONS: u64 = 4;
/// The store's value limit in this test; `Tamper::TooLong` goes over it.
const MAX_VALUE: usize = 16;
/// Expiry times are 1 ..= this (Unix seconds); collections run at
/// 0 ..= this + 1.
const LAST_EXPIRY: u64 = 4;

#[derive(Debug, Clone, Copy)]
enum Tamper {
    None,
    Value,
    Signature,
    TooLong,
}

#[derive(Debug, Clone)]
struct Spec {
    author: u8,
    key: usize,
    version: u64,
    value: usize,
    /// 0: a value that never expires; 1: a value that expires; 2: a
    /// tombstone.
    life: u8,
    expires: u64,
    tamper: Tamper,
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<Spec>),
    Get {
        author: u8,
        key: usize,
    },
    List {
        author: u8,
        prefix: usize,
        page: usize,
    },
    Scan {
        page: usize,
    },
    ScanDigests {
        page: usize,
    },
    Presence(Spec),
    /// Collect what expired at this time, at most `max` per call.
    Collect {
        now: u64,
        max: usize,
    },
    Reopen,
}

fn spec() -> impl Strategy<Value = Spec> {
    let tamper = prop_oneof![
        12 => Just(Tamper::None),
        1 => Just(Tamper::Value),
        1 => Just(Tamper::Signature),
        1 => Just(Tamper::TooLong),
    ];
    (
        1..=AUTHORS,
        0..KEYS.len(),
        0..VERSIONS,
        0..VALUES.len(),
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        1..=LAST_EXPIRY,
        tamper,
    )
        .prop_map(
            |(author, key, version, value, life, expires, tamper)| Spec {
                author,
                key,
                version,
                value,
                life,
                expires,
                tamper,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec(spec(), 1..6).prop_map(Op::Put),
        1 => (1..=AUTHORS, 0..KEYS.len()).prop_map(|(author, key)| Op::Get { author, key }),
        2 => (1..=AUTHORS, 0..KEYS.len(), 1..4usize)
            .prop_map(|(author, prefix, page)| Op::List { author, prefix, page }),
        1 => (1..5usize).prop_map(|page| Op::Scan { page }),
        1 => (1..5usize).prop_map(|page| Op::ScanDigests { page }),
        2 => spec().prop_map(Op::Presence),
        2 => (0..=LAST_EXPIRY + 1, 1..3usize).prop_map(|(now, max)| Op::Collect { now, max }),
        1 => Just(Op::Reopen),
    ]
}

/// Signing is slow in unoptimized builds: every record is signed once.
fn signed(author: u8, key: usize, version: u64, value: &[u8], life: (u8, u64)) -> Record {
    type Pool = Mutex<HashMap<(u8, usize, u64, Vec<u8>, (u8, u64)), Record>>;
    static POOL: OnceLock<Pool> = OnceLock::new();
    let pool = POOL.get_or_init(Default::default);
    let k = (author, key, version, value.to_vec(), life);
    if let Some(r) = pool.lock().unwrap().get(&k) {
        return r.clone();
    }
    let (kind, expires, value) = match life {
        (0, _) => (RecordKind::Value, 0, value),
        (1, at) => (RecordKind::Value, at, value),
        (_, at) => (RecordKind::Tombstone, at, &[][..]),
    };
    let r = Record::sign_as(&signer(author), kind, expires, KEYS[key], version, value).unwrap();
    pool.lock().unwrap().insert(k, r.clone());
    r
}

fn build(spec: &Spec) -> Record {
    match spec.tamper {
        Tamper::TooLong => signed(
            spec.author,
            spec.key,
            spec.version,
            &[7u8; MAX_VALUE + 1],
            (0, 0),
        ),
        tamper => {
            let r = signed(
                spec.author,
                spec.key,
                spec.version,
                VALUES[spec.value],
                (spec.life, spec.expires),
            );
            match tamper {
                // The last value byte, or the signature when there is none.
                Tamper::Value if !r.value().is_empty() => flipped(&r, 64),
                Tamper::Value | Tamper::Signature => flipped(&r, 0),
                _ => r,
            }
        }
    }
}

fn row(r: &Record) -> Vec<u8> {
    [&r.author()[..], r.key()].concat()
}

/// The store's rules, written out plainly.
#[derive(Default)]
struct Model {
    records: BTreeMap<Vec<u8>, Record>,
    losers: BTreeSet<Digest>,
}

impl Model {
    /// A batch: every record is first checked against the store as it was
    /// before the batch (records that would not be stored then are not
    /// verified), then the checked ones are applied in order.
    fn put_batch(&mut self, records: &[Record]) -> Vec<Outcome> {
        let before = self.records.clone();
        records
            .iter()
            .map(|r| match self.check(&before, r) {
                Some(outcome) => outcome,
                None => self.apply(r),
            })
            .collect()
    }

    /// The outcome of a record refused or not worth writing, as seen
    /// against `before`; `None` when it is verified and goes to the write.
    fn check(&self, before: &BTreeMap<Vec<u8>, Record>, r: &Record) -> Option<Outcome> {
        if r.value().len() > MAX_VALUE {
            return Some(Outcome::Invalid(Invalid::ValueTooLong {
                len: r.value().len(),
                max: MAX_VALUE,
            }));
        }
        if let Some(s) = before.get(&row(r)) {
            if r.version() < s.version() {
                return Some(Outcome::Stale);
            }
            if s == r {
                return Some(Outcome::Duplicate);
            }
            if r.version() == s.version() && self.losers.contains(&r.digest()) {
                return Some(Outcome::LostTie);
            }
        }
        r.verify().err().map(Outcome::Invalid)
    }

    /// Latest wins, then the smaller id, for a verified record.
    fn apply(&mut self, r: &Record) -> Outcome {
        let row = row(r);
        let stored = self.records.get(&row).cloned();
        if let Some(s) = &stored {
            if r.version() < s.version() {
                return Outcome::Stale;
            }
            if s == r {
                return Outcome::Duplicate;
            }
        }
        match stored {
            None => {
                self.records.insert(row, r.clone());
                Outcome::Inserted { digest: r.digest() }
            }
            Some(s) if r.version() > s.version() || r.id() < s.id() => {
                if r.version() == s.version() {
                    self.losers.insert(s.digest());
                }
                self.records.insert(row, r.clone());
                Outcome::Replaced {
                    old: s.digest(),
                    new: r.digest(),
                }
            }
            Some(_) => {
                self.losers.insert(r.digest());
                Outcome::LostTie
            }
        }
    }

    /// Removes what expired at `now`: the removed digests, and how many
    /// were tombstones.
    fn collect(&mut self, now: u64) -> (BTreeSet<Digest>, u64) {
        let due: Vec<Vec<u8>> = self
            .records
            .iter()
            .filter(|(_, r)| r.is_expired(now))
            .map(|(row, _)| row.clone())
            .collect();
        let mut removed = BTreeSet::new();
        let mut tombstones = 0;
        for row in due {
            let r = self.records.remove(&row).unwrap();
            tombstones += u64::from(r.is_tombstone());
            removed.insert(r.digest());
        }
        (removed, tombstones)
    }

    fn tombstones(&self) -> u64 {
        self.records.values().filter(|r| r.is_tombstone()).count() as u64
    }

    fn digests(&self) -> BTreeSet<Digest> {
        self.records.values().map(Record::digest).collect()
    }

    fn presence(&self, d: &Digest) -> Presence {
        if let Some(r) = self.records.values().find(|r| r.key_hash() == d.key_hash()) {
            let s = r.digest();
            if s == *d {
                return Presence::Stored;
            }
            if s.version() > d.version() {
                return Presence::Superseded;
            }
            if s.version() == d.version() && d.content_hash() > s.content_hash() {
                return Presence::Loser;
            }
        }
        if self.losers.contains(d) {
            return Presence::Loser;
        }
        Presence::Missing
    }
}

fn all_pages(
    mut page: impl FnMut(Option<&Cursor>) -> strata_store::Page,
    size: usize,
) -> Vec<Record> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p = page(cursor.as_ref());
        assert!(p.records.len() <= size);
        out.extend(p.records.iter().cloned());
        match p.next {
            Some(next) => {
                // Only the last page may be short.
                assert_eq!(p.records.len(), size);
                cursor = Some(next);
            }
            None => return out,
        }
    }
}

fn all_digests(store: &Store, size: usize) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let p = store.scan_digests(after.as_ref(), size).unwrap();
        assert!(p.digests.len() <= size);
        out.extend(&p.digests);
        match p.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

fn agree(store: &Store, model: &Model, sketch: &BTreeSet<Digest>) {
    let scanned = all_pages(|c| store.scan(c, 3).unwrap(), 3);
    let expected: Vec<Record> = model.records.values().cloned().collect();
    assert_eq!(scanned, expected);
    let digests = all_digests(store, 2);
    assert_eq!(
        digests.iter().copied().collect::<BTreeSet<_>>(),
        model.digests()
    );
    assert!(digests.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*sketch, model.digests());
    assert_eq!(store.len().unwrap(), model.records.len() as u64);
    assert_eq!(store.loser_count().unwrap(), model.losers.len() as u64);
    assert_eq!(store.collection().unwrap().tombstones, model.tombstones());
}

fn run(kind: Kind, ops: &[Op]) {
    let config = Config {
        max_value_len: MAX_VALUE,
        initial_map_size: strata_store::MIN_MAP_SIZE,
        max_losers: 1 << 20,
        ..Config::default()
    };
    let mut h = Harness::new(kind, config);
    let mut model = Model::default();
    let mut sketch = BTreeSet::new();
    for op in ops {
        match op {
            Op::Put(specs) => {
                let records: Vec<Record> = specs.iter().map(build).collect();
                let outcomes = h.store().put_batch(&records).unwrap();
                let expected = model.put_batch(&records);
                assert_eq!(outcomes, expected, "{specs:?}");
                for o in &outcomes {
                    if let Some(d) = o.removed() {
                        assert!(sketch.remove(&d));
                    }
                    if let Some(d) = o.added() {
                        assert!(sketch.insert(d));
                    }
                }
            }
            Op::Get { author, key } => {
                let a = crate::common::signer(*author).verifying_key().to_bytes();
                let got = h.store().get(&a, KEYS[*key]).unwrap();
                let row = [&a[..], KEYS[*key]].concat();
                assert_eq!(got.as_ref(), model.records.get(&row));
                if let Some(r) = got {
                    assert_eq!(h.store().get_by_digest(&r.digest()).unwrap(), Some(r));
                }
            }
            Op::List {
                author,
                prefix,
                page,
            } => {
                let a = crate::common::signer(*author).verifying_key().to_bytes();
                let listed = all_pages(
                    |c| h.store().list(&a, KEYS[*prefix], c, *page).unwrap(),
                    *page,
                );
                let start = [&a[..], KEYS[*prefix]].concat();
                let expected: Vec<Record> = model
                    .records
                    .iter()
                    .filter(|(row, _)| row.starts_with(&start))
                    .map(|(_, r)| r.clone())
                    .collect();
                assert_eq!(listed, expected);
            }
            Op::Scan { page } => {
                let scanned = all_pages(|c| h.store().scan(c, *page).unwrap(), *page);
                assert_eq!(scanned.len(), model.records.len());
            }
            Op::ScanDigests { page } => {
                let digests = all_digests(h.store(), *page);
                assert_eq!(digests.len(), model.records.len());
            }
            Op::Presence(spec) => {
                let d = build(spec).digest();
                assert_eq!(h.store().presence(&d).unwrap(), model.presence(&d));
                // Whatever the store says it has, it can hand out.
                let by_digest = h.store().get_by_digest(&d).unwrap();
                assert_eq!(by_digest.is_some(), model.presence(&d) == Presence::Stored);
            }
            Op::Collect { now, max } => {
                let before = h.store().collection().unwrap();
                let (expected, tombstones) = model.collect(*now);
                let mut removed = BTreeSet::new();
                loop {
                    let c = h.store().collect(*now, *max).unwrap();
                    assert!(c.removed.len() <= *max);
                    assert_eq!(c.tombstones + c.expired, c.removed.len() as u64);
                    for d in &c.removed {
                        assert!(sketch.remove(d));
                        assert!(removed.insert(*d));
                    }
                    if c.next.is_none_or(|t| t > *now) {
                        break;
                    }
                }
                assert_eq!(removed, expected);
                let after = h.store().collection().unwrap();
                assert_eq!(
                    after.collected_tombstones - before.collected_tombstones,
                    tombstones
                );
                assert_eq!(
                    after.collected_expired - before.collected_expired,
                    expected.len() as u64 - tombstones
                );
                h.store().check_integrity(false).unwrap();
            }
            Op::Reopen => h.reopen(),
        }
        agree(h.store(), &model, &sketch);
    }
    // Signatures were checked on the way in.
    h.store().check_integrity(false).unwrap();
}

fn check(kind: Kind, cases: u32) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..24), |ops| {
            run(kind, &ops);
            Ok(())
        })
        .unwrap();
}

#[test]
fn memory_backend_follows_the_model() {
    check(Kind::Memory, 24);
}

#[test]
fn lmdb_backend_follows_the_model() {
    check(Kind::Lmdb, 24);
}
