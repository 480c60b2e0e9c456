//! Signed records in an LMDB store, with nothing but this crate.
//!
//! ```text
//! cargo run -p strata-store --example records
//! cargo run -p strata-store --example records -- DIR
//! ```
//!
//! Opens a store (in DIR, else in a temporary folder removed at the end),
//! puts records signed by two authors, shows what the latest-version rule
//! and the signature check make of a stale and a forged record, lists an
//! author's records, reopens the store and checks its integrity, every
//! signature included.

use std::path::Path;
use std::process::ExitCode;

use ed25519_dalek::SigningKey;
use strata_store::{Config, Draft, Outcome, Record, Store};

fn main() -> ExitCode {
    let dir = std::env::args().nth(1);
    let result = match &dir {
        Some(dir) => run(Path::new(dir)),
        None => tempfile::tempdir()
            .map_err(|e| e.to_string())
            .and_then(|tmp| run(tmp.path())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("records: {message}");
            ExitCode::FAILURE
        }
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Inserted { .. } => "inserted".into(),
        Outcome::Replaced { .. } => "replaced the older version".into(),
        Outcome::Stale => "stale: a higher version is stored".into(),
        Outcome::Duplicate => "duplicate: already stored".into(),
        Outcome::LostTie => "lost a tie against the stored record".into(),
        Outcome::Invalid(why) => format!("refused: {why}"),
    }
}

fn run(dir: &Path) -> Result<(), String> {
    let err = |e: strata_store::Error| e.to_string();
    // Fixed seeds, so that every run prints the same authors and ids. Real
    // keys come from a random source.
    let alice = SigningKey::from_bytes(&[1; 32]);
    let bob = SigningKey::from_bytes(&[2; 32]);
    let sign = |who: &SigningKey, key: &str, version: u64, value: &str| {
        Record::sign(who, key.as_bytes(), version, value.as_bytes()).map_err(|e| e.to_string())
    };

    let store = Store::open(dir, Config::default()).map_err(err)?;
    println!("store opened in {}", dir.display());

    let greeting_v1 = sign(&alice, "greeting", 1, "hello")?;
    let batch = vec![
        greeting_v1.clone(),
        sign(&alice, "motto", 1, "correct first")?,
        sign(&bob, "greeting", 1, "hi, I am bob")?,
    ];
    // One batch: signatures checked together, written in one transaction.
    for (record, outcome) in batch.iter().zip(store.put_batch(&batch).map_err(err)?) {
        println!("put {}: {}", name(record), describe(&outcome));
    }

    // A new version replaces the old one; the old one, offered again, is
    // stale and not even verified.
    let greeting_v2 = sign(&alice, "greeting", 2, "hello again")?;
    println!(
        "put {}: {}",
        name(&greeting_v2),
        describe(&store.put(&greeting_v2).map_err(err)?)
    );
    println!(
        "put {}: {}",
        name(&greeting_v1),
        describe(&store.put(&greeting_v1).map_err(err)?)
    );

    // A record whose value was changed after signing: refused.
    let forged = Record::from_parts(
        *greeting_v2.author(),
        greeting_v2.key().to_vec(),
        3,
        b"forged".to_vec(),
        *greeting_v2.signature(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "put {} (altered after signing): {}",
        name(&forged),
        describe(&store.put(&forged).map_err(err)?)
    );

    // The store signs for its own author, choosing the next version.
    let (own, outcome) = store
        .put_own(&bob, &Draft::value(*b"greeting", b"hi again".to_vec()))
        .map_err(err)?;
    println!("put_own {}: {}", name(&own), describe(&outcome));

    let page = store
        .list(alice.verifying_key().as_bytes(), b"", None, 100)
        .map_err(err)?;
    println!("alice's records:");
    for record in &page.records {
        println!(
            "  {} = {:?} (id {})",
            name(record),
            String::from_utf8_lossy(record.value()),
            hex::encode(&record.id().as_bytes()[..8])
        );
    }

    // Closing and reopening: everything is on disk.
    drop(store);
    let store = Store::open(dir, Config::default()).map_err(err)?;
    let integrity = store.check_integrity(true).map_err(err)?;
    println!(
        "reopened: {} records, integrity checked, every signature verified",
        integrity.records
    );
    // Latest version wins: one record per (author, key), alice's two and
    // bob's one.
    if integrity.records != 3 {
        return Err(format!("expected 3 records, found {}", integrity.records));
    }
    Ok(())
}

/// `author/key vN`, the author shortened.
fn name(record: &Record) -> String {
    format!(
        "{}/{} v{}",
        hex::encode(&record.author()[..4]),
        String::from_utf8_lossy(record.key()),
        record.version()
    )
}
