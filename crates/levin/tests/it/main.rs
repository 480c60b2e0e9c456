//! Integration tests of the Levin framing.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    missing_docs,
    unreachable_pub
)]

mod codec;
mod examples;
mod fragments;
mod invoke;
mod monerod;

use std::path::PathBuf;

/// Every frame captured from monerod: (name, bytes).
pub fn frames() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/monerod");
    assert!(
        root.is_dir(),
        "monerod vectors not found at {}",
        root.display()
    );
    let mut out = Vec::new();
    for net in ["testnet", "regtest"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(net))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "hex"))
            .collect();
        paths.sort();
        for path in paths {
            let name = format!("{net}/{}", path.file_stem().unwrap().to_string_lossy());
            let hex = std::fs::read_to_string(&path).unwrap();
            out.push((name, hex::decode(hex.trim()).unwrap()));
        }
    }
    assert!(out.len() >= 20);
    out
}
