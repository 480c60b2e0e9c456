//! Signature checks in batches, and [`Verified`]: the proof of a check,
//! carried from the check to the write.
//!
//! Records are checked in groups of [`BATCH_LEN`] with
//! `ed25519_dalek::verify_batch`; when a group fails, each of its records is
//! checked alone (strict verification) to find the bad ones, so one bad
//! record costs its group a second pass and nothing more. Groups are spread
//! over the machine's cores.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::Invalid;
use crate::record::Record;

/// Records per batch verification.
const BATCH_LEN: usize = 64;

/// Fewest records worth a batch verification; smaller groups are checked
/// one by one.
const MIN_BATCH: usize = 4;

/// A record whose author and signature were checked.
///
/// Only this crate makes one: by [`Verified::check`] or
/// [`Verified::check_all`], by [`Store::check`](crate::Store::check), or by
/// signing. [`Store::write`](crate::Store::write) takes nothing else, so
/// nothing unverified can be written, and nothing is verified twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified(Record);

impl Verified {
    /// Checks one record.
    pub fn check(record: Record) -> Result<Verified, Invalid> {
        record.verify()?;
        Ok(Verified(record))
    }

    /// Checks records in batches spread over the machine's cores; the
    /// result at `i` is for `records[i]`.
    pub fn check_all(records: Vec<Record>) -> Vec<Result<Verified, Invalid>> {
        let refs: Vec<&Record> = records.iter().collect();
        let results = verify_all(&refs);
        records
            .into_iter()
            .zip(results)
            .map(|(record, result)| result.map(|()| Verified(record)))
            .collect()
    }

    /// A record this crate just signed.
    pub(crate) fn signed(record: Record) -> Verified {
        Verified(record)
    }

    /// The record.
    pub fn record(&self) -> &Record {
        &self.0
    }

    /// The record, giving up the proof.
    pub fn into_record(self) -> Record {
        self.0
    }
}

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
    let groups: Vec<&[(usize, VerifyingKey)]> = candidates.chunks(BATCH_LEN).collect();
    for (i, outcome) in check_groups(records, &groups) {
        if let Some(slot) = results.get_mut(i) {
            *slot = outcome;
        }
    }
    results
}

/// The records of `group` that fail, with why; empty when the group
/// verifies as one batch.
fn check_group(
    records: &[&Record],
    group: &[(usize, VerifyingKey)],
) -> Vec<(usize, Result<(), Invalid>)> {
    if group.len() >= MIN_BATCH && batch_ok(records, group) {
        return Vec::new();
    }
    group
        .iter()
        .filter_map(|&(i, _)| records.get(i).map(|record| (i, record.verify())))
        .collect()
}

/// Checks the groups, spread over the machine's cores when there are
/// several groups: signature checks bound how fast records can be taken in.
fn check_groups(
    records: &[&Record],
    groups: &[&[(usize, VerifyingKey)]],
) -> Vec<(usize, Result<(), Invalid>)> {
    let sequential = || {
        groups
            .iter()
            .flat_map(|group| check_group(records, group))
            .collect()
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(groups.len());
    if workers <= 1 {
        return sequential();
    }
    let parallel: Option<Vec<_>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    groups
                        .iter()
                        .skip(worker)
                        .step_by(workers)
                        .flat_map(|group| check_group(records, group))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A worker that panicked checked nothing for sure: no result is
        // taken from this pass then.
        handles
            .into_iter()
            .map(|handle| handle.join().ok())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.into_iter().flatten().collect())
    });
    parallel.unwrap_or_else(sequential)
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
