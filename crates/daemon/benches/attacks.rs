//! `stratad` (release) under two attacks, as rows of `cargo xtask bench`
//! that are not timings:
//!
//! - `daemon/ping-p99-handshake-flood`: a legitimate peer's
//!   99th-percentile ping round trip while 16 loops open connections from
//!   64 /24s (each within its subnet's accept rate), complete a handshake
//!   (three in four) or replay a TLS client hello (one in four) and hang
//!   up, divided by its 99th percentile idle, measured just before in the
//!   same run (1 is no slowdown).
//! - `daemon/ping-p99-flood-elsewhere`: the same ping while the same
//!   flood hits a second daemon on this machine (the flood, the peer and
//!   both daemons share its cores), over idle; and
//!   `daemon/ping-p99-flood-vs-elsewhere`, the flood's p99 over it: what
//!   the flood costs the peer beyond the load it puts on the machine.
//! - `daemon/rss-peak-big-frames`: the daemon's peak resident memory
//!   (`VmHWM`) while 1,000 connections (8 to a /24, the per-subnet limit)
//!   each complete a handshake, declare an 8 MiB RANGE and trickle all of
//!   it but the last byte. The daemon is started with `p2p.max_inbound`
//!   raised to hold them all; connections it refuses anyway (limits,
//!   eviction) are counted and printed, and the figure is what it holds
//!   while refusing them.
//!
//! Rows go to the directory named by `STRATA_BENCH_EXTRA` (set by `cargo
//! xtask bench`) as `{"group", "unit", "value"}`. `--quick` shortens the
//! ping windows.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_levin::Header;
use tokio::io::AsyncWriteExt as _;
use tokio::task::JoinSet;

#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/it/attacks/wire.rs"]
mod wire;

use common::{Daemon, Scope};
use wire::{FloodCount, Identity, Wire, flood, lo};

/// Loops of the handshake flood.
const FLOOD_LOOPS: usize = 16;
/// /24s the flood comes from.
const FLOOD_SUBNETS: usize = 64;
/// Connections of the big-frame attack.
const BIG_FRAME_PEERS: usize = 1000;
/// Connections of the big-frame attack per /24: the daemon's per-subnet
/// limit.
const PER_SUBNET: usize = 8;
/// The frame each declares: a RANGE of 8 MiB, under the command's cap.
const DECLARED: usize = 8 << 20;
/// Handshakes of the big-frame attack in flight at once: within the
/// daemon's budget of unfinished handshakes, so that none is evicted.
const HANDSHAKES_AT_ONCE: usize = 16;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let window = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    };
    let root = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();

    let (idle, elsewhere, flooded, handshakes) = ping_under_flood(root.path(), window);
    let ratio = flooded.as_secs_f64() / idle.as_secs_f64();
    println!(
        "daemon/ping-p99-handshake-flood: {ratio:.2}× ({flooded:?} during the flood, {idle:?} \
         idle; {handshakes} handshakes answered)"
    );
    rows.push(format!(
        "{{\"group\": \"daemon/ping-p99-handshake-flood\", \"unit\": \"× idle\", \"value\": {ratio:.3}}}"
    ));
    let elsewhere_ratio = elsewhere.as_secs_f64() / idle.as_secs_f64();
    let beyond = flooded.as_secs_f64() / elsewhere.as_secs_f64();
    println!(
        "daemon/ping-p99-flood-elsewhere: {elsewhere_ratio:.2}× ({elsewhere:?} while the flood \
         hits another daemon); the flood on the node against it: {beyond:.2}×"
    );
    rows.push(format!(
        "{{\"group\": \"daemon/ping-p99-flood-elsewhere\", \"unit\": \"× idle\", \"value\": {elsewhere_ratio:.3}}}"
    ));
    rows.push(format!(
        "{{\"group\": \"daemon/ping-p99-flood-vs-elsewhere\", \"unit\": \"× elsewhere\", \"value\": {beyond:.3}}}"
    ));

    let (peak, held, refused) = rss_under_big_frames(root.path());
    let mib = peak as f64 / 1024.0;
    println!(
        "daemon/rss-peak-big-frames: {mib:.1} MiB peak resident ({held} of {BIG_FRAME_PEERS} \
         connections holding a partial {} MiB frame, {refused} refused)",
        DECLARED >> 20
    );
    rows.push(format!(
        "{{\"group\": \"daemon/rss-peak-big-frames\", \"unit\": \"MiB\", \"value\": {mib:.1}}}"
    ));

    if let Some(dir) = std::env::var_os("STRATA_BENCH_EXTRA") {
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::path::Path::new(&dir).join("daemon-attacks.json");
        std::fs::write(path, format!("[\n  {}\n]\n", rows.join(",\n  "))).unwrap();
    }
}

/// Starts a release `stratad` on `dir` with `extra` settings.
fn victim(scope: &Scope, dir: &std::path::Path, extra: &[&str]) -> Daemon {
    let mut flags: Vec<String> = ["--set", "p2p.timed_sync_secs=60"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    Daemon::start(scope, "victim", dir, "127.0.0.1:0", &flags)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The 99th percentile of pings sent every [`wire::PING_SPACING`] / 5 for
/// `window`.
async fn ping_p99(wire: &mut Wire, window: Duration) -> Duration {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(wire::PING_SPACING / 5);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rtts = Vec::new();
    while rtts.len() < 100 || started.elapsed() < window {
        ticks.tick().await;
        rtts.push(wire.ping().await);
    }
    rtts.sort();
    rtts[rtts.len() * 99 / 100]
}

/// The idle p99, the p99 while the same flood hits another daemon on
/// this machine, the p99 during the flood, and the handshakes the flood
/// got answered.
fn ping_under_flood(
    root: &std::path::Path,
    window: Duration,
) -> (Duration, Duration, Duration, u64) {
    let scope = Scope::default();
    let node = victim(&scope, &root.join("flood"), &[]);
    let decoy = victim(&scope, &root.join("decoy"), &[]);
    let rt = runtime();
    let mut legit = rt.block_on(Wire::join(lo(0, 250, 1), node.p2p, |_| {}));
    let idle = rt.block_on(async {
        ping_p99(&mut legit, Duration::from_secs(1)).await;
        ping_p99(&mut legit, window).await
    });
    let under = |to: SocketAddr, legit: &mut Wire| {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(FloodCount::default());
        let flooding = flood(to, FLOOD_LOOPS, FLOOD_SUBNETS, stop.clone(), count.clone());
        common::poll(Duration::from_secs(30), "the flood to get going", || {
            (count.answered.load(Ordering::Relaxed) > 100).then_some(())
        });
        let p99 = rt.block_on(ping_p99(legit, window));
        stop.store(true, Ordering::Relaxed);
        flooding.join().unwrap();
        (p99, count.answered.load(Ordering::Relaxed))
    };
    let (elsewhere, _) = under(decoy.p2p, &mut legit);
    drop(decoy);
    let (flooded, answered) = under(node.p2p, &mut legit);
    (idle, elsewhere, flooded, answered)
}

/// The soft limit of open files of this process (inherited by the
/// daemon), raised with util-linux's `prlimit` when below `needed`.
fn raise_open_files(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    if soft >= needed {
        return;
    }
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={needed}:"),
        ])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "{needed} open files are needed (the soft limit is {soft}): raise it with `ulimit -n`"
    );
}

/// The `i`th big-frame peer's address, [`PER_SUBNET`] to a /24.
fn big_framer(i: usize) -> Ipv4Addr {
    lo(
        (1 + i / PER_SUBNET / 250) as u8,
        (i / PER_SUBNET % 250) as u8,
        1 + (i % PER_SUBNET) as u8,
    )
}

/// The daemon's peak resident memory in KiB, the connections holding a
/// partial frame, and those refused.
fn rss_under_big_frames(root: &std::path::Path) -> (u64, usize, usize) {
    raise_open_files(2 * BIG_FRAME_PEERS as u64 + 256);
    let scope = Scope::default();
    let max = BIG_FRAME_PEERS.to_string();
    let node = victim(
        &scope,
        &root.join("frames"),
        &["--set", &format!("p2p.max_inbound={max}")],
    );
    let pid = node.child.as_ref().unwrap().id();
    let to = node.p2p;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (held, refused) = rt.block_on(async {
        // Handshakes a few at a time, then every frame at once.
        let mut wires = Vec::new();
        let mut refused = 0;
        let mut batch = JoinSet::new();
        for i in 0..BIG_FRAME_PEERS {
            batch.spawn(async move {
                let mut wire = Wire::connect(big_framer(i), to).await.ok()?;
                wire.handshake(&Identity::fresh()).await.map(|_| wire)
            });
            if batch.len() >= HANDSHAKES_AT_ONCE || i + 1 == BIG_FRAME_PEERS {
                while let Some(done) = batch.join_next().await {
                    match done.unwrap() {
                        Some(wire) => wires.push(wire),
                        None => refused += 1,
                    }
                }
            }
        }
        let mut tasks = JoinSet::new();
        for mut wire in wires {
            tasks.spawn(async move {
                let head = Header::notification(strata_sync::wire::command::RANGE, DECLARED as u64)
                    .encode();
                if wire.write(&head).await.is_err() {
                    return None;
                }
                let chunk = vec![0x5a_u8; 64 * 1024];
                let mut sent = 0;
                while sent + chunk.len() < DECLARED {
                    let write = wire.stream().write_all(&chunk);
                    match tokio::time::timeout(Duration::from_secs(1), write).await {
                        Ok(Ok(())) => sent += chunk.len(),
                        Ok(Err(_)) => return None,
                        Err(_) => break,
                    }
                }
                Some(wire)
            });
        }
        let mut held = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Some(wire) = done.unwrap() {
                held.push(wire);
            }
        }
        // Still open when the writing stopped: the daemon holds their
        // partial frames.
        let mut open = 0;
        for mut wire in held {
            if matches!(
                wire.next(Duration::from_millis(1)).await,
                wire::Got::Silent | wire::Got::Frame(_)
            ) {
                open += 1;
            }
        }
        (open, refused)
    });
    let peak = peak_rss_kib(pid);
    drop(node);
    (peak, held, refused)
}

/// The peak resident memory of process `pid` (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
