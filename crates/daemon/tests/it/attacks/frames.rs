//! Frames that declare more than they send: headers announcing huge bodies,
//! and big frames trickled by many peers at once. The read budget itself
//! is tested in depth in `strata-conn` (`tests/memory.rs`) and
//! `strata-socket` (`tests/it/budget.rs`); here it is the daemon's.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_levin::{Header, command};
use strata_node::wire::command as p2p;
use strata_sync::wire::command as sync;
use tokio::io::AsyncWriteExt as _;
use tokio::task::JoinSet;

use super::wire::{Wire, lo, runtime};
use super::{Legit, assert_logged, assert_up, pid, victim};
use crate::common::{Daemon, bounded, rss_kib};

/// Connections that declare 100 MB before their handshake.
const HUGE_HEADERS: u8 = 20;
/// Growth of the resident memory those may cause: nothing is reserved for
/// a declared size, so a few MiB of connections and their buffers, far
/// from the 2 GB they declare.
const HUGE_HEADERS_GROWTH_KIB: u64 = 32 * 1024;

#[test]
fn headers_declaring_huge_bodies_are_refused_before_the_bodies_arrive() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        let before = rss_kib(pid(&node));

        rt.block_on(async {
            // Before the handshake: over the 256 KiB any frame may have then.
            let mut held = Vec::new();
            for i in 0..HUGE_HEADERS {
                let mut wire = Wire::connect(lo(0, 2, 1 + i), to).await.unwrap();
                let declared = match i {
                    0 => u64::MAX,
                    1 => strata_levin::limits::MAX_BODY + 1,
                    _ => strata_levin::limits::MAX_BODY,
                };
                wire.write(&Header::request(command::HANDSHAKE, declared).encode())
                    .await
                    .unwrap();
                held.push(wire);
            }
            for (i, wire) in held.iter_mut().enumerate() {
                assert!(
                    wire.closed_within(Duration::from_secs(10)).await,
                    "a header declaring 100 MB (attacker {i}) was not refused"
                );
            }
            // A block, which the node passes over on strata's network, gets
            // the small default cap too.
            let mut block = Wire::connect(lo(0, 2, 100), to).await.unwrap();
            block
                .write(&Header::notification(command::NEW_BLOCK, 1 << 20).encode())
                .await
                .unwrap();
            assert!(block.closed_within(Duration::from_secs(10)).await);

            // After the handshake, each command has its own cap.
            let over_caps = [
                (p2p::GOSSIP_MESSAGE, 2 << 20),
                (p2p::GOSSIP_ANNOUNCE, 1 << 20),
                (sync::RANGE, 40 << 20),
                (sync::RECON_REQUEST, 1 << 20),
                (3999, 1 << 20),
                (command::PING, 1 << 20),
            ];
            for (i, (cmd, declared)) in over_caps.into_iter().enumerate() {
                let mut wire = Wire::join(lo(0, 3, 1 + i as u8), to, |_| {}).await;
                wire.write(&Header::notification(cmd, declared).encode())
                    .await
                    .unwrap();
                assert!(
                    wire.closed_within(Duration::from_secs(10)).await,
                    "command {cmd} declaring {declared} bytes was not refused"
                );
            }
        });
        // Framing errors close without a score, as monerod does; the log
        // says why.
        assert_logged(&node, "BadFrame");
        let grown = rss_kib(pid(&node)).saturating_sub(before);
        assert!(
            grown < HUGE_HEADERS_GROWTH_KIB,
            "{grown} KiB more resident after headers declaring 2 GB"
        );
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 3));
    });
}

/// Peers that trickle a big frame each.
const TRICKLERS: usize = 48;
/// The frame each declares: a RANGE of 8 MiB, under the command's cap.
const TRICKLED: usize = 8 << 20;
/// What all of them may make the daemon buffer: the read budget (64 MiB),
/// one frame let past it, and each connection's own allowance once ready
/// and read chunk (64 + 16 KiB); plus their handshakes. Without the budget
/// they would put 48 × 8 MiB = 384 MiB in.
fn trickle_buffered() -> u64 {
    let conn = strata_conn::Config::default();
    let per_connection = conn.socket.ready_allowance + conn.socket.read_chunk;
    (conn.read_budget + TRICKLED + TRICKLERS * per_connection + (1 << 20)) as u64
}

/// The resident memory that allows, in KiB: the buffered bound, the
/// daemon's own (about 30 MiB in a debug build) and room for the
/// allocator (96 MiB in all).
fn trickle_rss_kib() -> u64 {
    trickle_buffered() / 1024 + 96 * 1024
}

/// The `i`th trickler's address: 24 to a /24 (the subnet's accept burst is
/// 32).
fn trickler(i: usize) -> Ipv4Addr {
    lo(0, 4 + (i / 24) as u8, 1 + (i % 24) as u8)
}

/// Bytes the daemon read from peers whose address starts `127.0.4.` to
/// `127.0.7.`, as `/v1/peers` counts them.
fn trickled_in(node: &Daemon) -> u64 {
    let peers = node.get_json("/v1/peers");
    peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["address"]
                .as_str()
                .is_some_and(|a| (4..8).any(|s| a.starts_with(&format!("127.0.{s}."))))
        })
        .map(|p: &Value| p["bytes_in"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn big_frames_trickled_by_many_peers_are_held_to_the_read_budget() {
    bounded(Duration::from_secs(180), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // Every trickler completes a handshake, then declares its frame and
        // writes all of it but the last byte, 64 KiB at a time, giving up
        // on a write that makes no progress for a second (the daemon
        // stopped reading it).
        let wires = rt.block_on(async {
            let mut wires = Vec::new();
            for i in 0..TRICKLERS {
                wires.push(Wire::join(trickler(i), to, |_| {}).await);
            }
            wires
        });
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for mut wire in wires {
            tasks.spawn_on(
                async move {
                    let head = Header::notification(sync::RANGE, TRICKLED as u64).encode();
                    wire.write(&head).await.unwrap();
                    let chunk = vec![0x5a_u8; 64 * 1024];
                    let mut sent = 0;
                    while sent + chunk.len() < TRICKLED {
                        let write = wire.stream().write_all(&chunk);
                        match tokio::time::timeout(Duration::from_secs(1), write).await {
                            Ok(Ok(())) => sent += chunk.len(),
                            Ok(Err(_)) | Err(_) => break,
                        }
                    }
                    (sent, wire)
                },
                rt.handle(),
            );
        }
        let (attempted, _held) = rt.block_on(async {
            let mut attempted = 0;
            let mut held = Vec::new();
            while let Some(done) = tasks.join_next().await {
                let (sent, wire) = done.unwrap();
                attempted += sent;
                held.push(wire);
            }
            (attempted, held)
        });
        println!(
            "{TRICKLERS} peers wrote {} MiB of {} MiB frames in {:?}",
            attempted >> 20,
            TRICKLED >> 20,
            started.elapsed()
        );
        // While the frames are held: memory and what was read are bounded,
        // and the legitimate peer is served.
        let buffered = trickled_in(&node);
        assert!(
            buffered <= trickle_buffered(),
            "the daemon read {buffered} bytes of partial frames, over {}",
            trickle_buffered()
        );
        let rss = rss_kib(pid(&node));
        assert!(
            rss < trickle_rss_kib(),
            "{rss} KiB resident while holding partial frames (bound {} KiB)",
            trickle_rss_kib()
        );
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 4));
    });
}
