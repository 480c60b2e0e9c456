//! A node killed with SIGKILL during catch-up resumes where it stopped.
//!
//! The test serves records from two in-process nodes and runs this binary
//! again as a child that catches up into an LMDB store, printing how many
//! records it has. The parent kills the child part-way, starts it again on
//! the same directory, and checks that the second run fetches only what the
//! first had not stored, and that the store ends equal to the servers'.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use strata_store::Durability;

use crate::common::*;

const CHILD: &str = "STRATA_SYNC_CRASH_DIR";
const PEERS: &str = "STRATA_SYNC_CRASH_PEERS";
const RECORDS: usize = 400;

fn child_config() -> strata_sync::Config {
    let mut c = sync_config(40);
    c.catchup_gap = 50;
    c.batch_records = 4;
    c.per_peer_inflight = 1;
    c
}

/// The catching-up node, run as a child by the test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let peers = std::env::var(PEERS)
        .unwrap()
        .split(',')
        .map(|a| a.parse().unwrap())
        .collect();
    let path = std::path::Path::new(&dir);
    let store = open_store(&path.join("store"), Durability::Sync);
    let node = start_with(
        store.clone(),
        child_config(),
        peers,
        Some(path.join("catchup.dat")),
    )
    .await;
    loop {
        let stats = node.handle.stats().await.unwrap();
        if !stats.loaded {
            // The count is the store's once its sketch is read.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        println!("STORED {} {}", stats.records, stats.catchup_records);
        if !stats.catching_up && stats.records == RECORDS as u64 {
            println!("DONE {}", stats.catchup_received);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.handle.shutdown().await.unwrap();
}

fn spawn_child(dir: &str, peers: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir)
        .env(PEERS, peers)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_catch_up_resumes() {
    bounded(Duration::from_secs(120), async {
        let server_dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let all = records(5, "bulk", RECORDS);
        let stores: Vec<_> = server_dirs
            .iter()
            .map(|d| {
                let s = open_store(d.path(), Durability::NoSync);
                s.put_batch(&all).unwrap();
                s
            })
            .collect();
        let a = start(stores[0].clone(), sync_config(30), vec![]).await;
        let b = start(stores[1].clone(), sync_config(31), vec![]).await;
        let peers = format!("{},{}", a.listening[0], b.listening[0]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        let dir_str = dir.path().to_str().unwrap().to_owned();

        // First run: kill it part-way.
        let (before, peers2, dir2) = (peers.clone(), peers.clone(), dir_str.clone());
        let killed_at = tokio::task::spawn_blocking(move || {
            let mut child = spawn_child(&dir_str, &before);
            let out = BufReader::new(child.stdout.take().unwrap());
            let mut at = 0;
            for line in out.lines().map_while(Result::ok) {
                let Some(i) = line.find("STORED ") else {
                    continue;
                };
                let stored: usize = line[i + 7..].split(' ').next().unwrap().parse().unwrap();
                if stored >= RECORDS / 5 {
                    child.kill().unwrap();
                    at = stored;
                    break;
                }
            }
            child.wait().unwrap();
            at
        })
        .await
        .unwrap();
        assert!(killed_at > 0, "the child stopped before it was killed");
        assert!(
            dir.path().join("catchup.dat").exists(),
            "no progress was saved"
        );

        // Second run: it resumes and finishes.
        let fetched_again = tokio::task::spawn_blocking(move || {
            let mut child = spawn_child(&dir2, &peers2);
            let out = BufReader::new(child.stdout.take().unwrap());
            let mut fetched = None;
            let mut first = None;
            for line in out.lines().map_while(Result::ok) {
                if let Some(i) = line.find("STORED ") {
                    first.get_or_insert_with(|| {
                        line[i + 7..]
                            .split(' ')
                            .next()
                            .unwrap()
                            .parse::<usize>()
                            .unwrap()
                    });
                }
                if let Some(i) = line.find("DONE ") {
                    fetched = Some(line[i + 5..].trim().parse::<usize>().unwrap());
                }
            }
            assert!(child.wait().unwrap().success());
            (
                first.unwrap(),
                fetched.expect("the second run did not finish"),
            )
        })
        .await
        .unwrap();
        let (stored_at_restart, fetched) = fetched_again;
        assert!(
            stored_at_restart >= killed_at,
            "{stored_at_restart} < {killed_at}"
        );
        assert!(stored_at_restart < RECORDS, "the first run had finished");
        eprintln!("killed at {killed_at}, restarted with {stored_at_restart}, fetched {fetched}");
        // Only what was missing came again (the batches in flight at the
        // kill, asked for or being stored, may come twice).
        let config = child_config();
        assert!(
            fetched + stored_at_restart <= RECORDS + config.max_inflight * config.batch_records,
            "fetched {fetched} after restarting with {stored_at_restart}"
        );
        assert!(!dir.path().join("catchup.dat").exists());
        let store = open_store(&dir.path().join("store"), Durability::Sync);
        assert!(same(&[&store, &stores[0]]));
        store.check_integrity(true).unwrap();
        a.handle.shutdown().await.unwrap();
        b.handle.shutdown().await.unwrap();
    })
    .await;
}
