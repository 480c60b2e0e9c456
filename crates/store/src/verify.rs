//! Signature checks in batches.
//!
//! Records are checked in groups of [`BATCH_LEN`] with
//! `ed25519_dalek::verify_batch`; when a group fails, each of its records is
//! checked alone (strict verification) to find the bad ones, so one bad
//! record costs its group a second pass and nothing more.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::Invalid;
use crate::record::Record;

/// Records per batch verification.
const BATCH_LEN: usize = 64;

/// Fewest records worth a batch verification; smaller groups are checked
/// one by one.
const MIN_BATCH: usize = 4;

/// Checks every record's signature; the result at `i` is for `records[i]`.
pub(crate) fn verify_all(records: &[&Record]) -> Vec<Result<(), Invalid>> {
    let mut results: Vec<Result<(), Invalid>> = Vec::with_capacity(records.len());
    // Keys first: a record whose author is no usable key fails on its own.
    let mut candidates: Vec<(usize, VerifyingKey)> = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        match record.verifying_key() {
            Ok(key) => {
                results.push(Ok(()));
                candidates.push((i, key));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    for group in candidates.chunks(BATCH_LEN) {
        if group.len() >= MIN_BATCH && batch_ok(records, group) {
            continue;
        }
        for &(i, _) in group {
            if let (Some(record), Some(slot)) = (records.get(i), results.get_mut(i)) {
                *slot = record.verify();
            }
        }
    }
    results
}

/// Whether the whole group verifies as one batch.
fn batch_ok(records: &[&Record], group: &[(usize, VerifyingKey)]) -> bool {
    let mut messages = Vec::with_capacity(group.len());
    let mut signatures = Vec::with_capacity(group.len());
    let mut keys = Vec::with_capacity(group.len());
    for &(i, key) in group {
        let Some(record) = records.get(i) else {
            return false;
        };
        messages.push(record.canonical_bytes());
        signatures.push(Signature::from_bytes(record.signature()));
        keys.push(key);
    }
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}
