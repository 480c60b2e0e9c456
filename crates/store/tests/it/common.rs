//! Helpers shared by the tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use ed25519_dalek::SigningKey;
use strata_store::{Config, Record, Store};
use tempfile::TempDir;

/// A deterministic author.
pub(crate) fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A signed record.
pub(crate) fn record(seed: u8, key: &[u8], version: u64, value: &[u8]) -> Record {
    Record::sign(&signer(seed), key, version, value).unwrap()
}

/// The record with one byte of its wire encoding flipped.
pub(crate) fn flipped(record: &Record, offset_from_end: usize) -> Record {
    let mut bytes = record.to_bytes();
    let i = bytes.len() - 1 - offset_from_end;
    bytes[i] ^= 0x01;
    Record::from_bytes(&bytes, strata_store::MAX_VALUE_LEN).unwrap()
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Memory,
    Lmdb,
}

/// A store and, for LMDB, the directory that holds it.
pub(crate) struct Harness {
    pub(crate) store: Option<Store>,
    pub(crate) dir: Option<TempDir>,
    pub(crate) config: Config,
}

impl Harness {
    pub(crate) fn new(kind: Kind, config: Config) -> Harness {
        match kind {
            Kind::Memory => Harness {
                store: Some(Store::in_memory(config.clone()).unwrap()),
                dir: None,
                config,
            },
            Kind::Lmdb => {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path(), config.clone()).unwrap();
                Harness {
                    store: Some(store),
                    dir: Some(dir),
                    config,
                }
            }
        }
    }

    pub(crate) fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    /// Closes and opens the store again (LMDB only; memory has nothing to
    /// reopen).
    pub(crate) fn reopen(&mut self) {
        if let Some(dir) = &self.dir {
            drop(self.store.take());
            self.store = Some(Store::open(dir.path(), self.config.clone()).unwrap());
        }
    }
}

/// Runs this test binary again as a child, with only the test `name` and
/// the environment variable `var` set to `value`; stdout is piped.
pub(crate) fn spawn_self(name: &str, var: &str, value: &str, extra: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// What follows `prefix` in the child's stdout lines that have it.
pub(crate) fn lines_with(
    child: &mut Child,
    prefix: &'static str,
) -> impl Iterator<Item = String> + use<> {
    let out = BufReader::new(child.stdout.take().unwrap());
    out.lines()
        .map_while(Result::ok)
        // The harness may have written "test name ... " before it.
        .filter_map(move |l| l.find(prefix).map(|i| l[i + prefix.len()..].to_owned()))
}

/// Hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of hex.
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
