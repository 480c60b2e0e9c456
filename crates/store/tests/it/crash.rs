//! A writer killed with SIGKILL loses nothing it acknowledged.
//!
//! The test runs this binary again as a child that writes batches in a loop
//! and prints each batch's records once `put_batch` has returned. The parent
//! reads those lines, kills the child in the middle of its next batch,
//! reopens the store and checks that every acknowledged record (or a newer
//! version of it) is there, that the digest set matches the records, and
//! that every stored signature verifies. Several rounds reuse one directory.

use std::collections::BTreeMap;
use std::io::Write;

use strata_store::{Config, MIN_MAP_SIZE, Record, Store};

use crate::common::{hex, lines_with, record, signer, spawn_self, unhex};

const CHILD: &str = "STRATA_STORE_CRASH_CHILD";
const ROUND: &str = "STRATA_STORE_CRASH_ROUND";
const AUTHOR: u8 = 9;

fn config() -> Config {
    // A small map, so the child also crashes around map growth.
    Config {
        initial_map_size: MIN_MAP_SIZE,
        ..Config::default()
    }
}

/// The writer, run as a child by `killed_writer_loses_no_acknowledged_batch`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let round: u64 = std::env::var(ROUND).unwrap().parse().unwrap();
    let store = Store::open(&dir, config()).unwrap();
    let mut out = std::io::stdout().lock();
    for batch in 0u64.. {
        let mut records: Vec<Record> = (0..6)
            .map(|i| {
                let key = format!("r{round}-b{batch}-{i}");
                record(AUTHOR, key.as_bytes(), 1, &vec![b'v'; 2048])
            })
            .collect();
        // Keys written in every round, with ever higher versions.
        for hot in 0..2 {
            let key = format!("hot{}", (batch + hot) % 3);
            let version = round * 1_000_000 + batch;
            records.push(record(AUTHOR, key.as_bytes(), version, &[b'h'; 300]));
        }
        let outcomes = store.put_batch(&records).unwrap();
        assert!(outcomes.iter().all(|o| o.is_stored()), "{outcomes:?}");
        let line: Vec<String> = records
            .iter()
            .map(|r| format!("{}:{}:{}", hex(r.key()), r.version(), r.id()))
            .collect();
        writeln!(out, "ACK {}", line.join(" ")).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn killed_writer_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let author = signer(AUTHOR).verifying_key().to_bytes();
    // Per key: the highest acknowledged version and its record id.
    let mut acked: BTreeMap<Vec<u8>, (u64, String)> = BTreeMap::new();
    for round in 0..4u64 {
        let mut child = spawn_self(
            "crash::crash_child",
            CHILD,
            path,
            &[(ROUND, round.to_string())],
        );
        let wanted = 2 + 3 * round as usize;
        let mut seen = 0;
        let mut lines = lines_with(&mut child, "ACK ");
        for line in lines.by_ref() {
            for item in line.split(' ') {
                let mut parts = item.split(':');
                let key = unhex(parts.next().unwrap());
                let version: u64 = parts.next().unwrap().parse().unwrap();
                let id = parts.next().unwrap().to_owned();
                let entry = acked.entry(key).or_insert((version, id.clone()));
                if version >= entry.0 {
                    *entry = (version, id);
                }
            }
            seen += 1;
            if seen == wanted {
                break;
            }
        }
        assert_eq!(seen, wanted, "the writer stopped on its own");
        // The child is now writing its next batch.
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);

        let store = Store::open(dir.path(), config()).unwrap();
        let integrity = store.check_integrity(true).unwrap();
        assert!(integrity.records >= acked.len() as u64);
        for (key, (version, id)) in &acked {
            let stored = store
                .get(&author, key)
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged key {} lost", hex(key)));
            assert!(stored.version() >= *version);
            if stored.version() == *version {
                assert_eq!(stored.id().to_string(), *id);
            }
            assert_eq!(
                store.get_by_digest(&stored.digest()).unwrap().as_ref(),
                Some(&stored)
            );
        }
    }
}
