//! Gossip over 50 nodes on loopback, push against ask-then-send: the time
//! for a message to reach every node (p50, p99), the duplication factor
//! (payload bytes received per node per message over the message size) and
//! the memory per node.
//!
//! Not a criterion bench: one network per mode, many messages. Rows go to
//! the directory named by `STRATA_BENCH_EXTRA` (set by `cargo xtask
//! bench`). With `--quick` (or criterion's `--measurement-time 1`) fewer
//! messages are sent.
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_io::Clock;
use strata_node::driver::{self, NodeHandle, Settings};
use strata_node::wire::CoreSyncData;
use strata_node::{Config, Event, MessageId, Network, State, Verdict};

const NODES: usize = 50;
const MESSAGE_SIZE: usize = 4096;

type Arrivals = Arc<Mutex<HashMap<MessageId, Vec<Instant>>>>;

fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|arg| arg == "--quick" || arg == "--test")
        || args.windows(2).any(|pair| {
            pair[0] == "--measurement-time" && pair[1].parse().is_ok_and(|t: f64| t <= 1.0)
        })
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn settings(seed: Option<SocketAddr>, push_threshold: usize) -> Settings {
    let mut node = Config::new(Network::STRATA);
    node.require_key = false;
    node.listen_port = 0;
    node.seeds = seed.into_iter().collect();
    node.gossip.push_threshold = push_threshold;
    Settings::loopback(node)
}

struct Result {
    p50: f64,
    p99: f64,
    duplication: f64,
    memory_per_node: f64,
}

async fn run(push_threshold: usize, messages: usize) -> Result {
    let arrivals: Arrivals = Arc::default();
    let before = rss();
    let mut handles: Vec<NodeHandle<CoreSyncData>> = Vec::new();
    let mut seed = None;
    let mut listening = Vec::new();
    for _ in 0..NODES {
        let seen = arrivals.clone();
        let running = driver::start(
            settings(seed, push_threshold),
            CoreSyncData::default(),
            Clock::real(),
        )
        .await
        .unwrap();
        seed.get_or_insert(running.listening[0]);
        listening.push(running.listening[0]);
        // The layer above: notes each arrival and passes the message on.
        let handle = running.handle.clone();
        let mut events = running.events;
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Event::Gossip { id, .. } = event {
                    seen.lock()
                        .unwrap()
                        .entry(id)
                        .or_default()
                        .push(Instant::now());
                    if handle.verdict(id, Verdict::Propagate).await.is_err() {
                        return;
                    }
                }
            }
        });
        handles.push(running.handle);
    }
    // The seed learns of no one from the connections that used it as a
    // seed (they close once answered): it is told of the others.
    handles[0].add_peers(listening[1..].to_vec()).await.unwrap();
    // Settle: every node has its peers, in one pass over all of them (the
    // seed's first peers are the others' seed connections).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut settled = true;
        for handle in &handles {
            let peers = handle.peers().await.unwrap();
            settled &= peers
                .iter()
                .filter(|p| p.info.state == State::Ready)
                .count()
                >= 6;
        }
        if settled || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let memory = rss().saturating_sub(before) as f64 / NODES as f64;
    let mut in_before = 0;
    for handle in &handles {
        in_before += handle.gossip_stats().await.unwrap().payload_bytes_in;
    }
    let mut times = Vec::new();
    for k in 0..messages {
        let mut payload = vec![0u8; MESSAGE_SIZE];
        payload[..8].copy_from_slice(&(k as u64).to_le_bytes());
        payload[8] = u8::from(push_threshold == 0);
        let from = k * 7 % NODES;
        let start = Instant::now();
        let id = handles[from].propagate(Bytes::from(payload)).await.unwrap();
        let deadline = start + Duration::from_secs(30);
        loop {
            let done = arrivals
                .lock()
                .unwrap()
                .get(&id)
                .map(|a| (a.len(), a.iter().max().copied()));
            match done {
                Some((n, Some(last))) if n >= NODES - 1 => {
                    times.push(last.duration_since(start).as_secs_f64() * 1000.0);
                    break;
                }
                _ if Instant::now() > deadline => {
                    times.push(f64::INFINITY);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    let mut received = 0;
    for handle in &handles {
        received += handle.gossip_stats().await.unwrap().payload_bytes_in;
    }
    for handle in &handles {
        handle.shutdown().await.unwrap();
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let at = ((times.len() - 1) as f64 * q).round();
        times[(at as usize).min(times.len() - 1)]
    };
    Result {
        p50: pick(0.5),
        p99: pick(0.99),
        duplication: (received - in_before) as f64 / (messages * MESSAGE_SIZE * (NODES - 1)) as f64,
        memory_per_node: memory,
    }
}

fn main() {
    let messages = if quick() { 30 } else { 200 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for (mode, threshold) in [("push", usize::MAX), ("ask-then-send", 0)] {
        let r = rt.block_on(run(threshold, messages));
        println!(
            "gossip/{NODES}-nodes/{mode}: p50 {:.2} ms, p99 {:.2} ms to reach every node; \
             duplication {:.3}; {:.0} bytes per node ({messages} messages of {MESSAGE_SIZE} B)",
            r.p50, r.p99, r.duplication, r.memory_per_node
        );
        for (what, unit, value) in [
            ("p50-to-all", "ms", r.p50),
            ("p99-to-all", "ms", r.p99),
            ("duplication", "ratio", r.duplication),
            ("memory-per-node", "bytes", r.memory_per_node),
        ] {
            rows.push(format!(
                "{{\"group\": \"gossip/{NODES}-nodes/{mode}/{what}\", \"unit\": \"{unit}\", \"value\": {value:.3}}}"
            ));
        }
    }
    if let Some(dir) = std::env::var_os("STRATA_BENCH_EXTRA") {
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::path::Path::new(&dir).join("gossip.json");
        std::fs::write(path, format!("[\n  {}\n]\n", rows.join(",\n  "))).unwrap();
    }
}
