//! The LMDB backend: the lock, map growth, reopening, durability, format
//! checks.

use std::ops::Bound;

use strata_store::{
    Backend, Config, Durability, Error, FORMAT_VERSION, Invalid, LmdbBackend, MIN_MAP_SIZE,
    Outcome, Record, Store, Table,
};

use crate::common::{lines_with, record, spawn_self};

const LOCK_CHILD: &str = "STRATA_STORE_LOCK_CHILD";

#[test]
fn a_second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), Config::default()).unwrap();
    match Store::open(dir.path(), Config::default()) {
        Err(e @ Error::Locked { .. }) => {
            assert!(e.to_string().contains("another process has the store"));
            let Error::Locked { path } = e else {
                unreachable!()
            };
            assert_eq!(path, dir.path().join("LOCK"));
        }
        other => panic!("second open: {other:?}"),
    }
    drop(first);
    Store::open(dir.path(), Config::default()).unwrap();
}

/// Run as a child by `another_process_is_refused`: tries to open the store
/// and says what happened.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(LOCK_CHILD) else {
        return;
    };
    match Store::open(&dir, Config::default()) {
        Ok(_) => println!("RESULT opened"),
        Err(Error::Locked { .. }) => println!("RESULT locked"),
        Err(e) => println!("RESULT error {e}"),
    }
}

#[test]
fn another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let store = Store::open(dir.path(), Config::default()).unwrap();
    let mut child = spawn_self("lmdb::lock_child", LOCK_CHILD, path, &[]);
    let result: Vec<String> = lines_with(&mut child, "RESULT ").collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(result, ["locked"]);

    drop(store);
    let mut child = spawn_self("lmdb::lock_child", LOCK_CHILD, path, &[]);
    let result: Vec<String> = lines_with(&mut child, "RESULT ").collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(result, ["opened"]);
}

fn big_records(seed: u8, n: usize, round: u64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let value = vec![u8::try_from(i % 251).unwrap(); 60 * 1024];
            record(seed, format!("big{i}").as_bytes(), round, &value)
        })
        .collect()
}

#[test]
fn a_full_map_grows() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        initial_map_size: MIN_MAP_SIZE,
        ..Config::default()
    };
    let store = Store::open(dir.path(), config.clone()).unwrap();
    // About 2.4 MiB into a 256 KiB map, then half of it replaced.
    for (round, n) in [(0, 40), (1, 20)] {
        for chunk in big_records(4, n, round).chunks(10) {
            let outcomes = store.put_batch(chunk).unwrap();
            assert!(outcomes.iter().all(|o| o.is_stored()), "{outcomes:?}");
        }
    }
    assert!(store.size_bytes().unwrap() > 40 * 60 * 1024);
    assert_eq!(store.len().unwrap(), 40);
    store.check_integrity(false).unwrap();
    drop(store);

    // Reopened with the small map: LMDB raises it to the file's size, and
    // writes grow it further.
    let store = Store::open(dir.path(), config).unwrap();
    assert_eq!(store.len().unwrap(), 40);
    for chunk in big_records(5, 20, 0).chunks(10) {
        assert!(
            store
                .put_batch(chunk)
                .unwrap()
                .iter()
                .all(|o| o.is_stored())
        );
    }
    assert_eq!(store.len().unwrap(), 60);
    store.check_integrity(false).unwrap();
}

#[test]
fn map_grows_from_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        initial_map_size: MIN_MAP_SIZE,
        ..Config::default()
    };
    let backend = LmdbBackend::open(dir.path(), &config).unwrap();
    let before = backend.map_size();
    let value = vec![1u8; 1000];
    backend
        .write(&mut |txn| {
            for i in 0u32..2000 {
                txn.put(Table::Meta, &i.to_be_bytes(), &value)?;
            }
            Ok(())
        })
        .unwrap();
    assert!(backend.map_size() > before);
    backend
        .read(&mut |txn| {
            assert_eq!(txn.count(Table::Meta)?, 2000);
            Ok(())
        })
        .unwrap();
}

#[test]
fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    for durability in [Durability::Sync, Durability::NoSync] {
        let config = Config {
            durability,
            ..Config::default()
        };
        let r = record(6, format!("{durability:?}").as_bytes(), 3, b"kept");
        {
            let store = Store::open(dir.path(), config.clone()).unwrap();
            assert!(store.put(&r).unwrap().is_stored());
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), config).unwrap();
        assert_eq!(store.get(r.author(), r.key()).unwrap(), Some(r));
        store.check_integrity(true).unwrap();
    }
}

#[test]
fn another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Config::default()).unwrap());
    {
        let backend = LmdbBackend::open(dir.path(), &Config::default()).unwrap();
        backend
            .write(&mut |txn| txn.put(Table::Meta, b"format", &(FORMAT_VERSION + 1).to_be_bytes()))
            .unwrap();
    }
    match Store::open(dir.path(), Config::default()) {
        Err(Error::Format { found, expected }) => {
            assert_eq!((found, expected), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_directory_holds_the_documented_files() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Config::default()).unwrap());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["LOCK", "data.mdb", "lock.mdb"]);
}

#[test]
fn a_store_written_before_quotas_is_counted_when_opened() {
    // Usage per author lives in `meta`; a store that has none (written
    // before usage was kept) is counted once when opened, so its authors'
    // quotas hold from the start.
    let dir = tempfile::tempdir().unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let config = Config {
        max_records_per_author: 5,
        ..Config::default()
    };
    {
        let store = Store::open(dir.path(), config.clone()).unwrap();
        for k in 0..5u8 {
            let r = Record::sign(&signing, &[k], 1, b"v").unwrap();
            assert!(store.put(&r).unwrap().is_stored());
        }
    }
    {
        // Forget every usage entry, as an older build would have none.
        let backend = LmdbBackend::open(dir.path(), &config).unwrap();
        backend
            .write(&mut |txn| {
                let mut keys = Vec::new();
                txn.range(Table::Meta, Bound::Unbounded, &mut |k, _| {
                    if k.starts_with(b"author/") || k == b"usage_counted" {
                        keys.push(k.to_vec());
                    }
                    true
                })?;
                assert_eq!(keys.len(), 2, "one author and the marker");
                for k in keys {
                    txn.delete(Table::Meta, &k)?;
                }
                Ok(())
            })
            .unwrap();
    }
    let store = Store::open(dir.path(), config).unwrap();
    store.check_integrity(false).unwrap();
    let sixth = Record::sign(&signing, b"six", 1, b"v").unwrap();
    assert_eq!(
        store.put(&sixth).unwrap(),
        Outcome::Invalid(Invalid::OverQuota {
            what: "records",
            max: 5
        })
    );
}
