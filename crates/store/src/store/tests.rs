//! Unit tests of the store's rules on the in-memory backend: ties and the
//! losers ring, presence, transaction chunks, and rollback.

use ed25519_dalek::SigningKey;

use super::*;
use crate::MIN_MAP_SIZE;

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn store(max_losers: usize) -> Store {
    Store::in_memory(Config {
        max_losers,
        ..Config::default()
    })
    .unwrap()
}

/// Records with the same author, key and version, sorted by id.
fn tied(n: u8) -> Vec<Record> {
    let mut records: Vec<Record> = (0..n)
        .map(|i| Record::sign(&signer(1), b"k", 5, &[i]).unwrap())
        .collect();
    records.sort_by_key(Record::id);
    records
}

#[test]
fn config_bounds() {
    Config::default().validate().unwrap();
    let too_big = Config {
        max_value_len: MAX_VALUE_LEN + 1,
        ..Config::default()
    };
    assert!(matches!(too_big.validate(), Err(Error::Config(_))));
    let too_small = Config {
        initial_map_size: MIN_MAP_SIZE - 1,
        ..Config::default()
    };
    assert!(matches!(Store::in_memory(too_small), Err(Error::Config(_))));
}

#[test]
fn outcome_digests() {
    let a = Record::sign(&signer(1), b"k", 1, b"a").unwrap().digest();
    let b = Record::sign(&signer(1), b"k", 2, b"b").unwrap().digest();
    let inserted = Outcome::Inserted { digest: a };
    assert_eq!((inserted.added(), inserted.removed()), (Some(a), None));
    let replaced = Outcome::Replaced { old: a, new: b };
    assert_eq!((replaced.added(), replaced.removed()), (Some(b), Some(a)));
    assert!(replaced.is_stored());
    for o in [Outcome::Stale, Outcome::Duplicate, Outcome::LostTie] {
        assert_eq!((o.added(), o.removed(), o.is_stored()), (None, None, false));
    }
}

#[test]
fn smaller_id_wins_a_tie_whatever_the_order() {
    let [small, large] = <[Record; 2]>::try_from(tied(2)).unwrap();

    let s = store(16);
    assert_eq!(
        s.put(&large).unwrap(),
        Outcome::Inserted {
            digest: large.digest()
        }
    );
    assert_eq!(
        s.put(&small).unwrap(),
        Outcome::Replaced {
            old: large.digest(),
            new: small.digest()
        }
    );
    assert_eq!(s.put(&large).unwrap(), Outcome::LostTie);
    assert_eq!(s.loser_count().unwrap(), 1);

    let s = store(16);
    s.put(&small).unwrap();
    assert_eq!(s.put(&large).unwrap(), Outcome::LostTie);
    assert_eq!(s.put(&large).unwrap(), Outcome::LostTie);
    assert_eq!(s.put(&small).unwrap(), Outcome::Duplicate);
    assert_eq!(s.loser_count().unwrap(), 1);
    assert_eq!(s.presence(&large.digest()).unwrap(), Presence::Loser);
    assert_eq!(s.presence(&small.digest()).unwrap(), Presence::Stored);
    s.check_integrity(true).unwrap();
}

#[test]
fn losers_ring_forgets_the_oldest() {
    let records = tied(5);
    let s = store(2);
    // Store the winner first: every other record loses, in this order.
    for r in &records {
        s.put(r).unwrap();
    }
    assert_eq!(s.loser_count().unwrap(), 2);
    let mut remembered = 0;
    for r in &records[1..] {
        let mut known = false;
        s.backend
            .read(&mut |txn| {
                known = txn.get(Table::Losers, &r.digest().0)?.is_some();
                Ok(())
            })
            .unwrap();
        remembered += usize::from(known);
    }
    assert_eq!(remembered, 2);
    // The last two losers are the ones kept.
    for r in &records[3..] {
        s.backend
            .read(&mut |txn| {
                assert!(txn.get(Table::Losers, &r.digest().0)?.is_some());
                Ok(())
            })
            .unwrap();
    }
    s.check_integrity(false).unwrap();

    let none = store(0);
    for r in records.iter().rev() {
        none.put(r).unwrap();
    }
    assert_eq!(none.loser_count().unwrap(), 0);
}

#[test]
fn presence_from_digests_alone() {
    let s = store(16);
    let v2 = Record::sign(&signer(1), b"k", 2, b"two").unwrap();
    s.put(&v2).unwrap();
    let v1 = Record::sign(&signer(1), b"k", 1, b"one").unwrap();
    let v3 = Record::sign(&signer(1), b"k", 3, b"three").unwrap();
    let other = Record::sign(&signer(2), b"k", 1, b"x").unwrap();
    assert_eq!(s.presence(&v2.digest()).unwrap(), Presence::Stored);
    assert_eq!(s.presence(&v1.digest()).unwrap(), Presence::Superseded);
    assert_eq!(s.presence(&v3.digest()).unwrap(), Presence::Missing);
    assert_eq!(s.presence(&other.digest()).unwrap(), Presence::Missing);
    assert!(s.is_known(&v1.digest()).unwrap());
    assert!(!s.is_known(&v3.digest()).unwrap());

    // A tie is judged by the content hash, the id's first bytes.
    let mut tie = v2.digest().0;
    tie[24..].fill(0xff);
    assert_eq!(s.presence(&Digest(tie)).unwrap(), Presence::Loser);
    tie[24..].fill(0x00);
    assert_eq!(s.presence(&Digest(tie)).unwrap(), Presence::Missing);
}

#[test]
fn get_by_digest_only_answers_the_exact_digest() {
    let s = store(16);
    let r = Record::sign(&signer(1), b"k", 2, b"two").unwrap();
    s.put(&r).unwrap();
    assert_eq!(s.get_by_digest(&r.digest()).unwrap(), Some(r.clone()));
    let mut other = r.digest().0;
    other[39] ^= 1;
    assert_eq!(s.get_by_digest(&Digest(other)).unwrap(), None);
    let older = Record::sign(&signer(1), b"k", 1, b"one").unwrap();
    assert_eq!(
        s.get_by_digests(&[older.digest(), r.digest()]).unwrap(),
        vec![None, Some(r)]
    );
}

#[test]
fn chunks_respect_both_limits() {
    assert_eq!(chunk_len(std::iter::empty()), 0);
    assert_eq!(chunk_len(std::iter::repeat_n(200, 5000)), MAX_TXN_RECORDS);
    assert_eq!(chunk_len(std::iter::repeat_n(200, 7)), 7);
    let big = MAX_TXN_BYTES / 3 + 1;
    assert_eq!(chunk_len(std::iter::repeat_n(big, 5)), 2);
    // One record over the byte limit still goes, alone.
    assert_eq!(chunk_len([MAX_TXN_BYTES * 2, 10].into_iter()), 1);
}

#[test]
fn a_failed_write_leaves_nothing() {
    let backend = MemoryBackend::new();
    let err = backend
        .write(&mut |txn| {
            txn.put(Table::Meta, b"a", b"1")?;
            txn.put(Table::Records, b"b", b"2")?;
            txn.delete(Table::Meta, b"a")?;
            txn.put(Table::Meta, b"a", b"3")?;
            Err(Error::Corrupt("stop".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)));
    backend
        .write(&mut |txn| txn.put(Table::Meta, b"kept", b"1"))
        .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = backend.write(&mut |txn| {
            txn.put(Table::Meta, b"kept", b"2")?;
            txn.put(Table::Meta, b"c", b"2")?;
            panic!("in the middle of a write");
        });
    }));
    assert!(caught.is_err());
    backend
        .read(&mut |txn| {
            assert_eq!(txn.count(Table::Records)?, 0);
            assert_eq!(txn.count(Table::Meta)?, 1);
            assert_eq!(txn.get(Table::Meta, b"kept")?, Some(&b"1"[..]));
            Ok(())
        })
        .unwrap();
}

#[test]
fn format_mismatch_is_refused() {
    let backend = MemoryBackend::new();
    backend
        .write(&mut |txn| txn.put(Table::Meta, META_FORMAT, &99u32.to_be_bytes()))
        .unwrap();
    match Store::with_backend(Box::new(backend), Config::default()) {
        Err(Error::Format { found, expected }) => {
            assert_eq!((found, expected), (99, FORMAT_VERSION));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn integrity_check_finds_a_missing_digest() {
    let backend = MemoryBackend::new();
    let s = Store::with_backend(Box::new(backend), Config::default()).unwrap();
    let r = Record::sign(&signer(1), b"k", 2, b"two").unwrap();
    s.put(&r).unwrap();
    assert_eq!(s.check_integrity(true).unwrap().records, 1);
    s.backend
        .write(&mut |txn| txn.delete(Table::Digests, &r.key_hash().0).map(|_| ()))
        .unwrap();
    assert!(matches!(s.check_integrity(false), Err(Error::Corrupt(_))));
}

#[test]
fn check_verifies_only_what_is_worth_writing() {
    let s = store(16);
    let v2 = Record::sign(&signer(1), b"k", 2, b"two").unwrap();
    s.put(&v2).unwrap();
    // Older than what is stored, with a broken signature: not verified, so
    // known rather than invalid.
    let old = Record::sign(&signer(1), b"k", 1, b"one").unwrap();
    let old_forged =
        Record::from_parts(*old.author(), b"k".to_vec(), 1, b"one".to_vec(), [7; 64]).unwrap();
    let newer_forged =
        Record::from_parts(*old.author(), b"k".to_vec(), 3, b"three".to_vec(), [7; 64]).unwrap();
    let newer = Record::sign(&signer(1), b"k", 3, b"three").unwrap();
    let checked = s
        .check(vec![old_forged, v2.clone(), newer_forged, newer.clone()])
        .unwrap();
    assert_eq!(checked[0], Checked::Known(Presence::Superseded));
    assert_eq!(checked[1], Checked::Known(Presence::Stored));
    assert_eq!(checked[2], Checked::Invalid(Invalid::BadSignature));
    let Checked::New { record, wins } = &checked[3] else {
        panic!("a newer valid record is new: {:?}", checked[3]);
    };
    assert!(*wins);
    assert_eq!(record.record(), &newer);
    assert_eq!(
        s.write(std::slice::from_ref(record)).unwrap(),
        vec![Outcome::Replaced {
            old: v2.digest(),
            new: newer.digest()
        }]
    );
}

#[test]
fn a_tie_loser_is_checked_but_does_not_win() {
    let s = store(16);
    let [small, large] = <[Record; 2]>::try_from(tied(2)).unwrap();
    s.put(&small).unwrap();
    let checked = s.check(vec![large.clone()]).unwrap();
    assert!(matches!(&checked[0], Checked::New { wins: false, .. }));
    let Checked::New { record, .. } = checked.into_iter().next().unwrap() else {
        unreachable!()
    };
    assert_eq!(s.write(&[record]).unwrap(), vec![Outcome::LostTie]);
    // Remembered: known without a second check.
    assert_eq!(
        s.check(vec![large]).unwrap(),
        vec![Checked::Known(Presence::Loser)]
    );
}

#[test]
fn put_own_picks_the_next_version_inside_the_write() {
    let s = std::sync::Arc::new(store(16));
    let key = signer(9);
    let (first, outcome) = s
        .put_own(&key, &Draft::value(*b"k", b"a".to_vec()))
        .unwrap();
    assert_eq!(first.version(), 1);
    assert!(outcome.is_stored());
    first.verify().unwrap();
    // Writers at once never pick the same version: every write is stored.
    let threads: Vec<_> = (0..4u8)
        .map(|i| {
            let s = s.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                (0..10u8)
                    .map(|j| s.put_own(&key, &Draft::value(*b"k", vec![i, j])).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut versions: Vec<u64> = Vec::new();
    for t in threads {
        for (record, outcome) in t.join().unwrap() {
            assert!(outcome.is_stored(), "{outcome:?}");
            versions.push(record.version());
        }
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=41).collect::<Vec<u64>>());
    let stored = s
        .get(&key.verifying_key().to_bytes(), b"k")
        .unwrap()
        .unwrap();
    assert_eq!(stored.version(), 41);
    // An explicit older version is stale; the highest version cannot grow.
    let (_, stale) = s
        .put_own(
            &key,
            &Draft::value(*b"k", b"x".to_vec()).at_version(Some(3)),
        )
        .unwrap();
    assert_eq!(stale, Outcome::Stale);
    s.put_own(
        &key,
        &Draft::value(*b"k", b"max".to_vec()).at_version(Some(u64::MAX)),
    )
    .unwrap();
    assert!(matches!(
        s.put_own(&key, &Draft::value(*b"k", b"more".to_vec())),
        Err(Error::VersionExhausted)
    ));
}

fn quota_store(max_records: u64, max_bytes: u64) -> Store {
    Store::in_memory(Config {
        max_records_per_author: max_records,
        max_bytes_per_author: max_bytes,
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn an_author_over_its_record_quota_is_refused_and_others_are_not() {
    let s = quota_store(3, u64::MAX);
    let put = |author: u8, key: &str, version: u64| {
        let r = Record::sign(&signer(author), key.as_bytes(), version, b"v").unwrap();
        s.put(&r).unwrap()
    };
    for key in ["a", "b", "c"] {
        assert!(put(1, key, 1).is_stored());
    }
    let over = Outcome::Invalid(Invalid::OverQuota {
        what: "records",
        max: 3,
    });
    assert_eq!(put(1, "d", 1), over);
    // The check before a write says the same, so nothing over quota is
    // passed on either.
    let d = Record::sign(&signer(1), b"d", 1, b"v").unwrap();
    assert!(matches!(
        s.check(vec![d]).unwrap().as_slice(),
        [Checked::Invalid(Invalid::OverQuota {
            what: "records",
            ..
        })]
    ));
    // A newer version of a stored key adds no record.
    assert!(put(1, "a", 2).is_stored());
    // Another author has a quota of its own.
    assert!(put(2, "a", 1).is_stored());
    assert_eq!(s.len().unwrap(), 4);
    s.check_integrity(false).unwrap();
}

#[test]
fn an_author_over_its_byte_quota_is_refused_even_by_a_replacement() {
    let small = Record::sign(&signer(1), b"k", 1, &[0; 10]).unwrap();
    // Room for the small value and 100 bytes more, not for 1,000.
    let room = {
        let s = quota_store(u64::MAX, u64::MAX);
        s.put(&small).unwrap();
        let mut out = 0;
        s.backend
            .read(&mut |txn| {
                out = read_usage(txn, small.author())?.1;
                Ok(())
            })
            .unwrap();
        out
    };
    let s = quota_store(u64::MAX, room + 100);
    assert!(s.put(&small).unwrap().is_stored());
    let grown = Record::sign(&signer(1), b"k", 2, &[0; 1000]).unwrap();
    assert_eq!(
        s.put(&grown).unwrap(),
        Outcome::Invalid(Invalid::OverQuota {
            what: "bytes",
            max: room + 100
        })
    );
    let modest = Record::sign(&signer(1), b"k", 3, &[0; 100]).unwrap();
    assert!(s.put(&modest).unwrap().is_stored());
    assert_eq!(s.get(small.author(), b"k").unwrap(), Some(modest));
    s.check_integrity(false).unwrap();
}

#[test]
fn a_tie_loser_is_no_quota_matter() {
    // A record that loses its tie takes no room, so it is checked as the
    // loser it is, not refused for a quota a winner would break.
    let short = Record::sign(&signer(1), b"k", 5, &[1]).unwrap();
    let long = (0..=255u8)
        .map(|i| Record::sign(&signer(1), b"k", 5, &[i; 200]).unwrap())
        .find(|r| r.id() > short.id())
        .unwrap();
    let room = {
        let s = quota_store(u64::MAX, u64::MAX);
        s.put(&short).unwrap();
        let mut out = 0;
        s.backend
            .read(&mut |txn| {
                out = read_usage(txn, short.author())?.1;
                Ok(())
            })
            .unwrap();
        out
    };
    let s = quota_store(u64::MAX, room);
    assert!(s.put(&short).unwrap().is_stored());
    assert!(matches!(
        s.check(vec![long.clone()]).unwrap().as_slice(),
        [Checked::New { wins: false, .. }]
    ));
    assert_eq!(s.put(&long).unwrap(), Outcome::LostTie);
}

#[test]
fn a_tombstone_replaces_the_value_and_is_collected_at_its_horizon() {
    let s = store(16);
    let key = signer(1);
    let author = key.verifying_key().to_bytes();
    assert!(matches!(
        s.put_own(&key, &Draft::tombstone(*b"k", 100)),
        Err(Error::NothingToDelete)
    ));
    let (value, _) = s
        .put_own(&key, &Draft::value(*b"k", b"v".to_vec()))
        .unwrap();
    let (tombstone, outcome) = s.put_own(&key, &Draft::tombstone(*b"k", 100)).unwrap();
    assert!(tombstone.is_tombstone());
    assert_eq!(tombstone.version(), 2);
    assert_eq!(
        outcome,
        Outcome::Replaced {
            old: value.digest(),
            new: tombstone.digest()
        }
    );
    // The deleted value, sent again, is older than its tombstone.
    assert_eq!(s.put(&value).unwrap(), Outcome::Stale);
    assert_eq!(s.presence(&value.digest()).unwrap(), Presence::Superseded);
    assert_eq!(s.collection().unwrap().tombstones, 1);
    s.check_integrity(true).unwrap();

    // Not before its time.
    let early = s.collect(99, 10).unwrap();
    assert_eq!((early.removed.len(), early.next), (0, Some(100)));
    let c = s.collect(100, 10).unwrap();
    assert_eq!(c.removed, vec![tombstone.digest()]);
    assert_eq!((c.tombstones, c.expired, c.next), (1, 0, None));
    assert_eq!(s.get(&author, b"k").unwrap(), None);
    assert!(s.is_empty().unwrap());
    assert_eq!(
        s.collection().unwrap(),
        Collection {
            tombstones: 0,
            collected_tombstones: 1,
            collected_expired: 0
        }
    );
    // The author's usage went back to nothing.
    s.check_integrity(true).unwrap();
}

#[test]
fn an_expiring_value_is_collected_soonest_first_and_a_replacement_moves_its_expiry() {
    let s = store(16);
    let key = signer(1);
    for (k, at) in [(b"a", 30), (b"b", 10), (b"c", 20), (b"d", 0)] {
        s.put_own(&key, &Draft::value(*k, b"v".to_vec()).expiring(at))
            .unwrap();
    }
    // A later version of "a" never expires: its old expiry is gone.
    s.put_own(&key, &Draft::value(*b"a", b"w".to_vec()))
        .unwrap();
    s.check_integrity(false).unwrap();
    let first = s.collect(25, 1).unwrap();
    assert_eq!(
        (first.removed.len(), first.expired, first.next),
        (1, 1, Some(20))
    );
    let second = s.collect(25, 1).unwrap();
    assert_eq!((second.removed.len(), second.next), (1, None));
    assert_eq!(s.collect(1_000, 10).unwrap(), Collected::default());
    let author = key.verifying_key().to_bytes();
    let left: Vec<&[u8]> = [&b"a"[..], b"b", b"c", b"d"]
        .into_iter()
        .filter(|k| s.get(&author, k).unwrap().is_some())
        .collect();
    assert_eq!(left, [&b"a"[..], b"d"]);
    assert_eq!(s.collection().unwrap().collected_expired, 2);
    s.check_integrity(true).unwrap();
}
