//! Integration tests of the portable-storage codec.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    missing_docs,
    unreachable_pub
)]

mod derive;
mod examples;
mod hostile;
mod messages;
mod roundtrip;
mod vectors;
mod zero_copy;

use std::path::PathBuf;

/// `../shared/vectors/monerod` beside the repository.
pub fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/monerod");
    assert!(
        dir.is_dir(),
        "monerod vectors not found at {}: the repository expects shared/ beside it",
        dir.display()
    );
    dir
}

/// Every captured frame: (name, whole Levin frame).
pub fn frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for net in ["testnet", "regtest"] {
        let mut paths: Vec<_> = std::fs::read_dir(vectors_dir().join(net))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "hex"))
            .collect();
        paths.sort();
        for path in paths {
            let hex = std::fs::read_to_string(&path).unwrap();
            let name = format!("{net}/{}", path.file_stem().unwrap().to_string_lossy());
            out.push((name, hex::decode(hex.trim()).unwrap()));
        }
    }
    assert!(
        out.len() >= 20,
        "expected the captured frames, found {}",
        out.len()
    );
    out
}

/// The portable-storage body of a frame: what follows the 33-byte Levin header.
pub fn body(frame: &[u8]) -> &[u8] {
    &frame[33..]
}
