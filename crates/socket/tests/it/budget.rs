//! The shared budget for partly received frames: frames past a connection's
//! allowance wait for it, one at a time goes past it, and a peer holding it
//! with a frame it never finishes is closed by the partial-frame timeout.

use std::sync::Arc;
use std::time::Duration;

use strata_socket::{Config, ReadBudget, ReadError, SharedLimits, Timeout, framed};
use tokio::io::AsyncWriteExt;

use crate::*;

const KIB: usize = 1024;

fn budgeted(total: usize) -> (SharedLimits, Arc<ReadBudget>) {
    let budget = Arc::new(ReadBudget::new(total));
    let shared = SharedLimits {
        budget: Some(budget.clone()),
        ..SharedLimits::default()
    };
    (shared, budget)
}

fn small_reads(allowance: usize) -> Config {
    Config {
        read_chunk: 4 * KIB,
        read_allowance: allowance,
        ..long_timeouts()
    }
}

/// A frame's length prefix and body.
fn wire(body_len: usize, byte: u8) -> Vec<u8> {
    let mut out = (body_len as u32).to_le_bytes().to_vec();
    out.extend(std::iter::repeat_n(byte, body_len));
    out
}

#[tokio::test]
async fn many_connections_with_big_declared_frames_stay_within_the_global_budget() {
    within(async {
        // Eight peers each send a 2 MiB frame at once; together they would
        // buffer 16 MiB. The budget is 512 KiB past an allowance of 16 KiB
        // each: reading pauses, one frame at a time goes past the total, and
        // every frame still arrives whole.
        const PEERS: usize = 8;
        const FRAME: usize = 2 * 1024 * KIB;
        let (clock, _hand) = Clock::manual(Instant::now());
        let (shared, budget) = budgeted(512 * KIB);
        let config = small_reads(16 * KIB);
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for i in 0..PEERS {
            let (mut peer, ours) = pair().await;
            let (mut reader, _, _) = framed(
                ours,
                LenCodec { max: 4 << 20 },
                &config,
                clock.clone(),
                &shared,
            );
            writers.push(tokio::spawn(async move {
                peer.write_all(&wire(FRAME, i as u8)).await.unwrap();
                peer
            }));
            readers.push(tokio::spawn(async move { reader.next().await }));
        }
        for (i, reader) in readers.into_iter().enumerate() {
            let frame = reader.await.unwrap().unwrap().unwrap();
            assert_eq!(frame.len(), FRAME);
            assert!(frame.iter().all(|b| *b == i as u8), "frame {i} intact");
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let bound = budget.total() + FRAME + PEERS * 4 * KIB;
        assert!(
            budget.peak() <= bound,
            "peak {} over {bound}",
            budget.peak()
        );
        assert!(budget.waits() > 0, "reading paused for the budget");
        assert!(
            budget.overdrafts() > 0,
            "frames past the total went one at a time"
        );
        assert_eq!(budget.in_use(), 0, "everything given back");
    })
    .await;
}

#[tokio::test]
async fn a_peer_holding_the_budget_with_an_unfinished_frame_is_timed_out() {
    within(async {
        let (clock, hand) = Clock::manual(Instant::now());
        let (shared, budget) = budgeted(64 * KIB);
        let config = Config {
            partial_frame_timeout: Duration::from_secs(30),
            ..small_reads(0)
        };
        // The attacker declares 1 MiB and sends 200 KiB of it: it holds the
        // whole budget, and the one pass beyond it.
        let (mut attacker, ours) = pair().await;
        let (mut held, _, held_handle) = framed(
            ours,
            LenCodec { max: 4 << 20 },
            &config,
            clock.clone(),
            &shared,
        );
        let mut partial = wire(1024 * KIB, 1);
        partial.truncate(4 + 200 * KIB);
        attacker.write_all(&partial).await.unwrap();
        let holding = tokio::spawn(async move { held.next().await });
        until("the attacker's bytes to be read", || {
            held_handle.stats().bytes_in() == partial.len() as u64
        })
        .await;
        assert!(budget.in_use() > budget.total());
        // A legitimate 100 KiB frame waits for the budget.
        let (mut legit, ours) = pair().await;
        let (mut reader, _, handle) = framed(
            ours,
            LenCodec { max: 4 << 20 },
            &config,
            clock.clone(),
            &shared,
        );
        legit.write_all(&wire(100 * KIB, 2)).await.unwrap();
        let reading = tokio::spawn(async move { reader.next().await });
        until("the legitimate reader to pause", || budget.waits() > 0).await;
        settle().await;
        assert!(!reading.is_finished());
        assert!(handle.stats().bytes_in() < 100 * KIB as u64);
        // The attacker's frame times out; its bytes go back; the other frame
        // arrives.
        hand.advance(Duration::from_secs(31));
        assert!(matches!(
            holding.await.unwrap(),
            Err(ReadError::Timeout(Timeout::PartialFrame))
        ));
        let frame = reading.await.unwrap().unwrap().unwrap();
        assert_eq!(frame.len(), 100 * KIB);
        assert_eq!(budget.in_use(), 0);
    })
    .await;
}

#[tokio::test]
async fn frames_within_the_allowance_never_wait_for_the_budget() {
    within(async {
        let (clock, _hand) = Clock::manual(Instant::now());
        let (shared, budget) = budgeted(0);
        let config = small_reads(64 * KIB);
        let (mut peer, ours) = pair().await;
        let (mut reader, _, _) = framed(ours, LenCodec { max: 4 << 20 }, &config, clock, &shared);
        for i in 0..20u8 {
            peer.write_all(&wire(32 * KIB, i)).await.unwrap();
            assert_eq!(reader.next().await.unwrap().unwrap().len(), 32 * KIB);
        }
        assert_eq!((budget.peak(), budget.waits()), (0, 0));
    })
    .await;
}

#[tokio::test]
async fn once_ready_a_connection_buffers_only_its_smaller_allowance_outside_the_budget() {
    within(async {
        // 32 KiB frames: within the allowance before the handshake, past
        // the ready allowance after it, where they count against the
        // budget (spent: each goes past it alone, and still arrives).
        let (clock, _hand) = Clock::manual(Instant::now());
        let (shared, budget) = budgeted(0);
        let config = Config {
            ready_allowance: 8 * KIB,
            ..small_reads(64 * KIB)
        };
        let (mut peer, ours) = pair().await;
        let (mut reader, _, _) = framed(ours, LenCodec { max: 4 << 20 }, &config, clock, &shared);
        peer.write_all(&wire(32 * KIB, 1)).await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap().len(), 32 * KIB);
        assert_eq!(budget.peak(), 0, "before the handshake: the allowance");
        reader.handle().handshake_complete();
        peer.write_all(&wire(32 * KIB, 2)).await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap().len(), 32 * KIB);
        assert!(
            budget.peak() >= 16 * KIB,
            "once ready, a 32 KiB frame counts against the budget past 8 KiB (peak {})",
            budget.peak()
        );
    })
    .await;
}
