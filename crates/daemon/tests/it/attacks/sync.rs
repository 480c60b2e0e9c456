//! The sync layer's work for others: catch-up sources that lie about what
//! they hold, floods of reads, reconciliations and receipts, answers to
//! requests never made.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use strata_levin::{Header, command};
use strata_node::wire::{self as p2p, PingResponse};
use strata_store::{DIGEST_LEN, Digest, KEY_HASH_LEN};
use strata_sync::wire::{Message, Receipt, SymbolStatus};
use tokio::task::JoinSet;

use super::wire::{self, Wire, lo, runtime, sync_frame};
use super::{Legit, assert_logged, assert_up, await_metric, metric, pid, random, victim};
use crate::common::{Daemon, bounded, poll, rss_kib};

/// Resident memory of a daemon serving the sync attacks: about 30 MiB at
/// rest in a debug build, a few MiB of reads and sessions in flight, with
/// every queue of the sync layer bounded.
const SYNC_RSS_KIB: u64 = 160 * 1024;

/// The value limit of the daemon's store (its default), for decoding.
const MAX_VALUE: usize = strata_store::DEFAULT_MAX_VALUE_LEN;

/// Decodes a frame of the sync layer.
fn decode(bucket: &strata_levin::Bucket) -> Option<Message> {
    Message::decode(bucket.header.command, &bucket.body, MAX_VALUE).ok()
}

/// The key hash after `after` (big-endian), or the first of the span that
/// ends at `end`.
fn step(after: Option<[u8; KEY_HASH_LEN]>, end: [u8; KEY_HASH_LEN]) -> [u8; KEY_HASH_LEN] {
    let mut next = after.unwrap_or_else(|| {
        let mut first = [0u8; KEY_HASH_LEN];
        first[0] = end[0] & !3;
        first
    });
    for byte in next.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    next.min(end)
}

/// Puts `n` records on `node` through the admin API.
fn put_records(node: &Daemon, n: usize) {
    for i in 0..n {
        let body = format!(
            "{{\"key\":\"record-{i}\",\"value\":\"{}\"}}",
            "v".repeat(200)
        );
        let (code, answer) = node.api("POST", "/v1/records", Some(&body));
        assert_eq!(code, 200, "{answer}");
    }
}

#[test]
fn a_peer_claiming_a_huge_store_is_dropped_as_a_catch_up_source() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // The liar claims a billion records, and answers every span it is
        // asked for with a cursor that moves and no records.
        let answered = rt.block_on(async {
            let mut liar = Wire::join(lo(0, 8, 1), to, |id| id.records = 1_000_000_000).await;
            let mut answered = 0;
            loop {
                let asked = liar
                    .until(wire::ANSWER_TIMEOUT, |b| match decode(b) {
                        Some(Message::GetRange {
                            request,
                            after,
                            end,
                            ..
                        }) => Some((request, after, end)),
                        _ => None,
                    })
                    .await;
                let Some((request, after, end)) = asked else {
                    return answered;
                };
                let range = Message::Range {
                    request,
                    next: Some(step(after, end)),
                    records: Vec::new(),
                };
                if liar.send_sync(&range).await.is_err() {
                    return answered;
                }
                answered += 1;
            }
        });
        assert!(answered >= 1, "the node never asked the liar for a span");
        // Scored for batches without progress, banned, and with no source
        // left the catch-up stops instead of waiting on the liar.
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.8.1 for");
        await_metric(&node, "strata_sync_catchup_stopped_total", 1);
        let state = poll(Duration::from_secs(20), "the catch-up to stop", || {
            let status = node.get_json("/v1/status");
            let state = status["sync"]["state"].as_str().unwrap_or("").to_owned();
            (state != "catching up").then_some(state)
        });
        assert_eq!(state, "behind: no peer to catch up from");
        // Meanwhile it serves reconciliations as usual.
        let status = rt.block_on(async {
            let ask = Message::ReconRequest {
                session: 7,
                epoch: wire::epoch(),
                first: 64,
            };
            legit.wire.send_sync(&ask).await.unwrap();
            legit
                .wire
                .until(wire::ANSWER_TIMEOUT, |b| match decode(b) {
                    Some(Message::ReconSymbols {
                        session: 7, status, ..
                    }) => Some(status),
                    _ => None,
                })
                .await
        });
        assert!(
            matches!(status, Some(SymbolStatus::More | SymbolStatus::End)),
            "a reconciliation was refused after the catch-up stopped: {status:?}"
        );
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < SYNC_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 9));
    });
}

/// Read requests the flood sends in one go: far more than the queue of one
/// peer (two in service and [`strata_sync::SERVE_QUEUE_PER_PEER`] waiting).
const READ_FLOOD: usize = 200;

#[test]
fn a_flood_of_read_requests_is_scored_and_banned() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        put_records(&node, 20);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // Every read at its largest: whole ranges, and 1024 digests.
        let mut flood = Vec::new();
        for i in 0..READ_FLOOD as u64 {
            let message = if i % 2 == 0 {
                Message::GetRange {
                    request: i,
                    after: None,
                    end: [0xff; KEY_HASH_LEN],
                    max_records: u32::MAX,
                    max_bytes: u32::MAX,
                }
            } else {
                let digests = (0..strata_sync::wire::MAX_GET_DIGESTS)
                    .map(|_| Digest(random::<DIGEST_LEN>()))
                    .collect();
                Message::GetRecords {
                    request: i,
                    digests,
                }
            };
            flood.extend_from_slice(&sync_frame(&message));
        }
        let closed = rt.block_on(async {
            let mut reader = Wire::join(lo(0, 8, 2), to, |_| {}).await;
            let _ = reader.write(&flood).await;
            reader.closed_within(Duration::from_secs(30)).await
        });
        assert!(closed, "a peer past its read queue was not closed");
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.8.2 for");

        // A peer asking as honest peers do is answered.
        let records = rt.block_on(async {
            let ask = Message::GetRange {
                request: 1,
                after: None,
                end: [0xff; KEY_HASH_LEN],
                max_records: 4096,
                max_bytes: 1 << 20,
            };
            legit.wire.send_sync(&ask).await.unwrap();
            legit
                .wire
                .until(wire::ANSWER_TIMEOUT, |b| match decode(b) {
                    Some(Message::Range {
                        request: 1,
                        records,
                        ..
                    }) => Some(records.len()),
                    _ => None,
                })
                .await
        });
        assert_eq!(records, Some(20), "the legitimate read");
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < SYNC_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 10));
    });
}

/// Peers that each start a reconciliation and keep it open.
const RECONCILERS: usize = strata_sync::MAX_SERVING + 4;

#[test]
fn reconciliations_past_the_serving_limit_are_refused_as_busy() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        put_records(&node, 5);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        let (statuses, _held) = rt.block_on(async {
            let mut statuses = Vec::new();
            let mut held = Vec::new();
            for i in 0..RECONCILERS {
                let mut wire = Wire::join(lo(0, 9, 1 + i as u8), to, |_| {}).await;
                let session = 100 + i as u64;
                let ask = Message::ReconRequest {
                    session,
                    epoch: wire::epoch(),
                    first: 64,
                };
                wire.send_sync(&ask).await.unwrap();
                let status = wire
                    .until(wire::ANSWER_TIMEOUT, |b| match decode(b) {
                        Some(Message::ReconSymbols {
                            session: s, status, ..
                        }) if s == session => Some(status),
                        _ => None,
                    })
                    .await
                    .expect("an answer to a reconciliation request");
                statuses.push(status);
                held.push(wire);
            }
            // Another epoch is refused as such.
            let mut stale = Wire::join(lo(0, 9, 100), to, |_| {}).await;
            let ask = Message::ReconRequest {
                session: 1,
                epoch: wire::epoch() - 3,
                first: 64,
            };
            stale.send_sync(&ask).await.unwrap();
            let refusal = stale
                .until(wire::ANSWER_TIMEOUT, |b| match decode(b) {
                    Some(Message::ReconSymbols {
                        session: 1, status, ..
                    }) => Some(status),
                    _ => None,
                })
                .await;
            assert_eq!(refusal, Some(SymbolStatus::WrongEpoch));
            (statuses, held)
        });
        let busy = statuses
            .iter()
            .filter(|s| **s == SymbolStatus::Busy)
            .count();
        assert!(
            busy >= RECONCILERS - strata_sync::MAX_SERVING,
            "{busy} of {RECONCILERS} refused as busy: {statuses:?}"
        );
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < SYNC_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 11));
    });
}

/// A receipt signed by `key` for `ids`.
fn receipt(key: &SigningKey, ids: Vec<[u8; 32]>) -> Receipt {
    let signer = key.verifying_key().to_bytes();
    let signature = key.sign(&Receipt::signed_bytes(&signer, &ids)).to_bytes();
    Receipt {
        signer,
        ids,
        signature,
    }
}

/// Frames of the same receipts the replay sends.
const REPLAYS: usize = 40;

#[test]
fn replayed_receipts_are_dropped_and_a_forger_is_banned() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // One peer replays frames full of the same valid receipts while
        // the legitimate peer pings.
        let key = SigningKey::from_bytes(&random());
        let receipts: Vec<Receipt> = (0..strata_sync::wire::MAX_RECEIPTS_PER_MESSAGE)
            .map(|i| receipt(&key, vec![random(), [i as u8; 32]]))
            .collect();
        let frame = sync_frame(&Message::Receipts(receipts));
        let replaying = rt.spawn(async move {
            let mut wire = Wire::join(lo(0, 10, 1), to, |_| {}).await;
            for _ in 0..REPLAYS {
                wire.write(&frame).await.unwrap();
            }
            wire.serve_for(Duration::from_secs(2)).await;
            wire
        });
        legit.assert_ping(&rt, "during a replay of receipts");
        let mut replayer = rt.block_on(replaying).unwrap();
        // The replayer did nothing wrong but waste its effort: it stays,
        // and its replays are counted.
        assert!(!rt.block_on(replayer.closed_within(Duration::from_millis(500))));
        await_metric(&node, "strata_receipts_dropped_total{reason=\"replay\"}", 1);

        // A forger: a receipt whose signature does not verify, twice.
        let closed = rt.block_on(async {
            let mut forger = Wire::join(lo(0, 10, 2), to, |_| {}).await;
            let mut forged = receipt(&key, vec![random()]);
            forged.signature[40] ^= 1;
            let frame = sync_frame(&Message::Receipts(vec![forged.clone()]));
            forger.write(&frame).await.unwrap();
            forged.ids = vec![random()];
            forger
                .write(&sync_frame(&Message::Receipts(vec![forged])))
                .await
                .unwrap();
            forger.closed_within(Duration::from_secs(15)).await
        });
        assert!(closed, "a forger of receipts was not closed");
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.10.2 for");
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < SYNC_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 12));
    });
}

#[test]
fn answers_to_requests_never_made_are_scored() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // Records and ranges nobody asked for: 2 each, six pass the
        // threshold.
        let closed = rt.block_on(async {
            let mut wire = Wire::join(lo(0, 11, 1), to, |_| {}).await;
            for i in 0..6u64 {
                let answer = if i % 2 == 0 {
                    Message::Records {
                        request: 1000 + i,
                        truncated: false,
                        records: Vec::new(),
                    }
                } else {
                    Message::Range {
                        request: 1000 + i,
                        next: None,
                        records: Vec::new(),
                    }
                };
                wire.send_sync(&answer).await.unwrap();
            }
            wire.closed_within(Duration::from_secs(15)).await
        });
        assert!(closed, "answers to nothing were not scored to a ban");
        assert_logged(&node, "banning 127.0.11.1 for");

        // A p2p response to no request: 5 and closed; three ban.
        rt.block_on(async {
            for _ in 0..3 {
                let mut wire = Wire::join(lo(0, 11, 2), to, |_| {}).await;
                let pong = p2p::encode(&PingResponse {
                    peer_id: 1,
                    status: p2p::PING_OK.to_owned(),
                })
                .unwrap();
                let header = Header::response(command::PING, strata_levin::return_code::P2P_OK, 0);
                wire.send(header, &pong).await.unwrap();
                assert!(wire.closed_within(Duration::from_secs(15)).await);
            }
        });
        await_metric(&node, "strata_bans_total", 2);
        assert_logged(&node, "banning 127.0.11.2 for");
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < SYNC_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 13));
    });
}

/// Peers of the receipt flood: each within its own budget of signature
/// checks ([`strata_sync::receipt::CHECKS_PER_SEC`] a second).
const RECEIPT_SYBILS: usize = 32;
/// Distinct receipts the flood cycles through, in the same order each
/// time: twice what the node remembers as seen, so that each comes back
/// forgotten and is checked again.
const RECEIPT_POOL: usize = 2 * strata_sync::receipt::MAX_SEEN_RECEIPTS;
/// How long the legitimate peer pings during the flood.
const RECEIPT_PING_WINDOW: Duration = Duration::from_secs(3);

/// `cargo xtask test` runs this one alone, after the rest: the flood keeps
/// the victim at about half a core, and beside other tests' daemons on two
/// cores the ping would measure the machine.
#[test]
fn a_receipt_flood_from_many_peers_does_not_stall_the_node() {
    bounded(Duration::from_secs(180), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        // The flood runs on a runtime of its own: what is measured is how
        // the node answers, not how soon this process reads the answer
        // beside 32 busy writers.
        let flood = runtime();
        // Receipts signed beforehand: the attack costs nothing while it
        // runs. Each peer cycles through its share at its budget's rate.
        let per_frame = strata_sync::wire::MAX_RECEIPTS_PER_MESSAGE;
        let key = SigningKey::from_bytes(&random());
        let pool: Vec<Receipt> = (0..RECEIPT_POOL)
            .map(|_| receipt(&key, vec![random()]))
            .collect();
        let frames: Vec<Arc<Vec<Vec<u8>>>> = pool
            .chunks(RECEIPT_POOL / RECEIPT_SYBILS)
            .take(RECEIPT_SYBILS)
            .map(|share| {
                Arc::new(
                    share
                        .chunks(per_frame)
                        .map(|chunk| sync_frame(&Message::Receipts(chunk.to_vec())))
                        .collect(),
                )
            })
            .collect();
        let interval =
            Duration::from_secs(1) * per_frame as u32 / strata_sync::receipt::CHECKS_PER_SEC as u32;
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for (i, frames) in frames.into_iter().enumerate() {
            let (written, stop) = (written.clone(), stop.clone());
            tasks.spawn_on(
                async move {
                    let from = lo(0, 30 + (i / 30) as u8, 1 + (i % 30) as u8);
                    let mut wire = Wire::join(from, to, |_| {}).await;
                    let mut ticks = tokio::time::interval(interval);
                    for frame in frames.iter().cycle() {
                        if stop.load(Ordering::Relaxed) || wire.write(frame).await.is_err() {
                            break;
                        }
                        written.fetch_add(1, Ordering::Relaxed);
                        ticks.tick().await;
                    }
                },
                flood.handle(),
            );
        }
        // Three seconds of it first: what the sync layer cannot check in
        // time piles up in front of it.
        let frames_per_sec = strata_sync::receipt::CHECKS_PER_SEC / per_frame;
        poll(Duration::from_secs(60), "the flood to get going", || {
            (written.load(Ordering::Relaxed) >= 3 * frames_per_sec * RECEIPT_SYBILS).then_some(())
        });
        let during = rt.block_on(legit.wire.ping_window(RECEIPT_PING_WINDOW));
        stop.store(true, Ordering::Relaxed);
        flood.block_on(async { while tasks.join_next().await.is_some() {} });
        let bound = super::ping_bound(legit.idle);
        assert!(
            during <= bound,
            "the legitimate peer's median ping went from {:?} to {during:?} (bound {bound:?}) \
             during a receipt flood from {RECEIPT_SYBILS} peers",
            legit.idle
        );
        // Receipts valid and within each peer's budget are no offence;
        // those past the total budget are dropped unchecked, and counted.
        assert_eq!(metric(&node, "strata_bans_total"), 0);
        assert!(
            metric(
                &node,
                "strata_receipts_dropped_total{reason=\"over_budget\"}"
            ) > 0
        );
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 14));
    });
}
