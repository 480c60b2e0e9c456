//! Refused records on both backends: tampered bytes, batches with bad
//! records among good ones, values over the store's limit.

use strata_store::{Config, Invalid, Outcome, Record};

use crate::common::{Harness, Kind, flipped, record};

fn tampered_records_are_never_stored(kind: Kind) {
    let h = Harness::new(kind, Config::default());
    let store = h.store();
    let good = record(1, b"key", 1, b"value");
    let bad_value = flipped(&good, 64);
    let bad_signature = flipped(&good, 10);
    let newer = record(1, b"key", 2, b"newer");
    let bad_newer = flipped(&newer, 64);

    assert_eq!(
        store
            .put_batch(&[bad_value.clone(), bad_signature.clone()])
            .unwrap(),
        vec![
            Outcome::Invalid(Invalid::BadSignature),
            Outcome::Invalid(Invalid::BadSignature)
        ]
    );
    assert_eq!(store.get(good.author(), b"key").unwrap(), None);
    assert!(store.is_empty().unwrap());

    assert!(store.put(&good).unwrap().is_stored());
    // An equal version with a bad signature neither wins nor is remembered.
    assert_eq!(
        store.put(&bad_signature).unwrap(),
        Outcome::Invalid(Invalid::BadSignature)
    );
    assert_eq!(
        store.put(&bad_newer).unwrap(),
        Outcome::Invalid(Invalid::BadSignature)
    );
    assert_eq!(
        store.get(good.author(), b"key").unwrap(),
        Some(good.clone())
    );
    assert_eq!(store.loser_count().unwrap(), 0);
    assert!(!store.is_known(&bad_newer.digest()).unwrap());
    store.check_integrity(true).unwrap();
}

#[test]
fn tampered_records_are_never_stored_memory() {
    tampered_records_are_never_stored(Kind::Memory);
}

#[test]
fn tampered_records_are_never_stored_lmdb() {
    tampered_records_are_never_stored(Kind::Lmdb);
}

fn one_bad_record_in_a_big_batch(kind: Kind) {
    let h = Harness::new(kind, Config::default());
    let store = h.store();
    let mut batch: Vec<Record> = (0..70u32)
        .map(|i| record(2, format!("k{i:03}").as_bytes(), 1, &i.to_be_bytes()))
        .collect();
    batch[33] = flipped(&batch[33], 64);
    batch[69] = flipped(&batch[69], 0);
    let outcomes = store.put_batch(&batch).unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 33 || i == 69 {
            assert_eq!(*outcome, Outcome::Invalid(Invalid::BadSignature), "{i}");
        } else {
            assert_eq!(
                *outcome,
                Outcome::Inserted {
                    digest: batch[i].digest()
                },
                "{i}"
            );
        }
    }
    assert_eq!(store.len().unwrap(), 68);
    // Sent again, the good ones are duplicates, decided without a check.
    let again = store.put_batch(&batch).unwrap();
    assert_eq!(
        again.iter().filter(|o| **o == Outcome::Duplicate).count(),
        68
    );
    store.check_integrity(true).unwrap();
}

#[test]
fn one_bad_record_in_a_big_batch_memory() {
    one_bad_record_in_a_big_batch(Kind::Memory);
}

#[test]
fn one_bad_record_in_a_big_batch_lmdb() {
    one_bad_record_in_a_big_batch(Kind::Lmdb);
}

#[test]
fn value_over_the_store_limit_is_refused() {
    let config = Config {
        max_value_len: 8,
        ..Config::default()
    };
    let h = Harness::new(Kind::Lmdb, config);
    let r = record(1, b"k", 1, &[0; 9]);
    assert_eq!(
        h.store().put(&r).unwrap(),
        Outcome::Invalid(Invalid::ValueTooLong { len: 9, max: 8 })
    );
    assert!(
        h.store()
            .put(&record(1, b"k", 1, &[0; 8]))
            .unwrap()
            .is_stored()
    );
}

#[test]
fn the_same_record_twice_in_one_batch() {
    let h = Harness::new(Kind::Lmdb, Config::default());
    let r = record(1, b"k", 1, b"v");
    let older = record(1, b"k", 0, b"v");
    assert_eq!(
        h.store().put_batch(&[r.clone(), r.clone(), older]).unwrap(),
        vec![
            Outcome::Inserted { digest: r.digest() },
            Outcome::Duplicate,
            Outcome::Stale
        ]
    );
}
