//! The sync layer over loopback TCP and LMDB, against this machine's own
//! signature-verification rate measured in the same run.
//!
//! - `sync/verify-batch` (criterion, and records/s as an extra row): Ed25519
//!   batch verification of signed 100-byte records, one core, batches of
//!   64: the bound of catch-up.
//! - `sync/verify-batch-all-cores` (records/s): the same on every core at
//!   once, a thread each.
//! - `sync/catchup-rate` (records/s), `sync/catchup-vs-verify` (ratio to
//!   one core) and `sync/catchup-vs-verify-all-cores` (ratio to every core,
//!   goal ≥ 0.9): a fresh node catching up N signed 100-byte records from 3
//!   peers (N = 1,000,000; 20,000 in quick mode).
//! - `sync/propagation-p99` (ms) without and with a peer catching up, and
//!   `sync/propagation-p99-ratio` (goal ≤ 1.5): a record put on A until it is
//!   stored on C, over A - B - C, while D catches up from A and B.
//! - `sync/shares/*`: fair shares between catching-up and synchronized
//!   peers. A - B - C hold the N records, and A serves at most 12.5 MB/s
//!   (a 100 Mbit/s uplink); the propagation p99 from A to C idle and while
//!   three fresh nodes catch up all N from A alone, their ratio (goal ≤
//!   1.5), the slowest and fastest of the three catch-up rates, and the
//!   fastest over the slowest (goal ≤ 1.2).
//! - `sync/reconcile-d10k-bytes` (bytes) and `sync/reconcile-d10k-time`
//!   (ms): two nodes that each wrote 5,000 records while apart, until their
//!   stores are equal.
//!
//! Extra rows go to the directory named by `STRATA_BENCH_EXTRA` as
//! `{"group", "unit", "value", "better"}`. With `--quick`, `--test` or
//! `--measurement-time 1`, fewer records and samples.
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use strata_io::Clock;
use strata_node::driver;
use strata_node::{Config as NodeConfig, Network};
use strata_sync::ed25519_dalek::{self, Signature, SigningKey, VerifyingKey};
use strata_sync::runtime::{self, Running, Settings, SyncHandle};
use strata_sync::strata_store::{Config as StoreConfig, Durability, Record, Store};

struct Row {
    group: String,
    unit: &'static str,
    value: f64,
}

fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|arg| arg == "--quick" || arg == "--test")
        || args.windows(2).any(|pair| {
            pair[0] == "--measurement-time" && pair[1].parse().is_ok_and(|t: f64| t <= 1.0)
        })
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let n = NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("strata-bench-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn records(author: u8, prefix: &str, n: usize) -> Vec<Record> {
    let key = signer(author);
    (0..n)
        .map(|k| Record::sign(&key, format!("{prefix}{k}").as_bytes(), 1, &[author; 100]).unwrap())
        .collect()
}

fn open(dir: &Path) -> Arc<Store> {
    let config = StoreConfig {
        durability: Durability::NoSync,
        initial_map_size: 1 << 30,
        ..StoreConfig::default()
    };
    Arc::new(Store::open(dir, config).unwrap())
}

fn sync_config(seed: u8) -> strata_sync::Config {
    let mut c = strata_sync::Config::new(signer(seed));
    c.reconcile_interval = Duration::from_secs(1);
    c
}

/// A running sync node: its handle and where it listens.
struct Node {
    handle: SyncHandle,
    listening: Vec<SocketAddr>,
}

async fn start(store: Arc<Store>, config: strata_sync::Config, peers: Vec<SocketAddr>) -> Node {
    let mut node = NodeConfig::new(Network::STRATA);
    node.require_key = false;
    node.timed_sync_interval = Duration::from_millis(500);
    node.exclusive = peers;
    let settings = Settings::new(driver::Settings::loopback(node), config, store, None);
    let Running {
        handle,
        mut events,
        listening,
        ..
    } = runtime::start(settings, Clock::real()).await.unwrap();
    // The layer above reads every event (no gossip of its own here).
    let node = Node {
        handle: handle.clone(),
        listening,
    };
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let strata_sync::Event::Gossip { id, .. } = event {
                let _ = handle.verdict(id, strata_node::Verdict::Drop).await;
            }
        }
    });
    node
}

/// Records/s of batch verification on one core.
fn verify_rate(records: &[Record]) -> f64 {
    let start = Instant::now();
    for chunk in records.chunks(64) {
        let messages: Vec<Vec<u8>> = chunk.iter().map(Record::canonical_bytes).collect();
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let signatures: Vec<Signature> = chunk
            .iter()
            .map(|r| Signature::from_bytes(r.signature()))
            .collect();
        let keys: Vec<VerifyingKey> = chunk
            .iter()
            .map(|r| VerifyingKey::from_bytes(r.author()).unwrap())
            .collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).unwrap();
    }
    records.len() as f64 / start.elapsed().as_secs_f64()
}

/// Records/s of batch verification on every core: one thread per core,
/// each on its share of `records`, timed together.
fn verify_rate_all_cores(records: &[Record]) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let share = records.len().div_ceil(cores);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in records.chunks(share) {
            scope.spawn(move || verify_rate(part));
        }
    });
    records.len() as f64 / start.elapsed().as_secs_f64()
}

async fn wait(mut check: impl FnMut() -> bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "not done in {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `count` directories whose stores hold `all`.
fn seeded(all: &[Record], name: &str, count: usize) -> Vec<TempDir> {
    let source = TempDir::new(&format!("{name}-source"));
    let store = open(&source.0);
    store.put_batch(all).unwrap();
    drop(store);
    let dirs: Vec<TempDir> = (0..count)
        .map(|i| TempDir::new(&format!("{name}{i}")))
        .collect();
    for d in &dirs {
        std::fs::copy(source.0.join("data.mdb"), d.0.join("data.mdb")).unwrap();
    }
    dirs
}

/// A fresh node catching up `n` records from three peers: records/s.
async fn catchup(all: &[Record]) -> f64 {
    let dirs = seeded(all, "peer", 3);
    let mut peers = Vec::new();
    let mut addrs = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let node = start(
            open(&d.0),
            sync_config(50 + u8::try_from(i).unwrap()),
            vec![],
        )
        .await;
        addrs.push(node.listening[0]);
        peers.push(node);
    }
    let fresh_dir = TempDir::new("fresh");
    let fresh = open(&fresh_dir.0);
    let t = Instant::now();
    let node = start(fresh.clone(), sync_config(60), addrs).await;
    let n = all.len() as u64;
    wait(|| fresh.len().unwrap() >= n, Duration::from_secs(1800)).await;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    node.handle.shutdown().await.unwrap();
    for p in peers {
        p.handle.shutdown().await.unwrap();
    }
    rate
}

/// p99 of put-on-A to stored-on-C over A - B - C, in ms; with `catching`,
/// a fresh node D catches up `bulk` from A and B meanwhile.
async fn propagation(bulk: &[Record], samples: usize, catching: bool) -> f64 {
    let dirs: Vec<TempDir> = (0..4).map(|i| TempDir::new(&format!("prop{i}"))).collect();
    let stores: Vec<Arc<Store>> = dirs.iter().map(|d| open(&d.0)).collect();
    for s in &stores[..3] {
        s.put_batch(bulk).unwrap();
    }
    let a = start(stores[0].clone(), sync_config(70), vec![]).await;
    let b = start(stores[1].clone(), sync_config(71), vec![a.listening[0]]).await;
    let c = start(stores[2].clone(), sync_config(72), vec![b.listening[0]]).await;
    // Let the handshakes settle.
    let n0 = stores[2].len().unwrap();
    a.handle
        .insert(records(9, "warm", 1).remove(0))
        .await
        .unwrap();
    wait(|| stores[2].len().unwrap() > n0, Duration::from_secs(30)).await;
    let d = if catching {
        let mut config = sync_config(73);
        config.catchup_gap = 100;
        Some(
            start(
                stores[3].clone(),
                config,
                vec![a.listening[0], b.listening[0]],
            )
            .await,
        )
    } else {
        None
    };
    let latency = p99(&a, &stores[2], &format!("p{catching}"), samples).await;
    if let Some(d) = d {
        d.handle.shutdown().await.unwrap();
    }
    for node in [a, b, c] {
        node.handle.shutdown().await.unwrap();
    }
    latency
}

/// p99, in ms, of `samples` records put on `a` until stored on `c`.
async fn p99(a: &Node, c: &Store, tag: &str, samples: usize) -> f64 {
    let mut latencies = Vec::with_capacity(samples);
    for r in records(8, tag, samples) {
        let t = Instant::now();
        a.handle.insert(r.clone()).await.unwrap();
        let digest = r.digest();
        wait(
            || c.get_by_digest(&digest).unwrap().is_some(),
            Duration::from_secs(30),
        )
        .await;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

/// Fair shares: A - B - C hold `all`; propagation p99 from A to C idle,
/// then while three fresh nodes catch up `all` from A alone; and the
/// catch-up rate of each of the three, in records/s.
async fn shares(all: &[Record], samples: usize) -> (f64, f64, Vec<f64>) {
    let dirs = seeded(all, "share", 3);
    let stores: Vec<Arc<Store>> = dirs.iter().map(|d| open(&d.0)).collect();
    // A serves from a 100 Mbit/s uplink.
    let mut serving = sync_config(90);
    serving.serve_total_rate = 12_500_000;
    let a = start(stores[0].clone(), serving, vec![]).await;
    let b = start(stores[1].clone(), sync_config(91), vec![a.listening[0]]).await;
    let c = start(stores[2].clone(), sync_config(92), vec![b.listening[0]]).await;
    // The first records also wait for the handshakes.
    p99(&a, &stores[2], "share-warm", 10).await;
    let idle = p99(&a, &stores[2], "share-idle", samples).await;
    let fresh_dirs: Vec<TempDir> = (0..3)
        .map(|i| TempDir::new(&format!("share-fresh{i}")))
        .collect();
    let fresh: Vec<Arc<Store>> = fresh_dirs.iter().map(|d| open(&d.0)).collect();
    let t = Instant::now();
    let mut catching = Vec::new();
    for (i, store) in fresh.iter().enumerate() {
        let mut config = sync_config(93 + u8::try_from(i).unwrap());
        config.catchup_gap = 100;
        catching.push(start(store.clone(), config, vec![a.listening[0]]).await);
    }
    let busy = p99(&a, &stores[2], "share-busy", samples).await;
    // Each fresh node's time to hold every record of A's at the start.
    let n = all.len() as u64;
    let mut done: Vec<Option<f64>> = vec![None; fresh.len()];
    wait(
        || {
            for (store, done) in fresh.iter().zip(done.iter_mut()) {
                if done.is_none() && store.len().unwrap() >= n {
                    *done = Some(t.elapsed().as_secs_f64());
                }
            }
            done.iter().all(Option::is_some)
        },
        Duration::from_secs(1800),
    )
    .await;
    let rates = done.into_iter().map(|s| n as f64 / s.unwrap()).collect();
    for node in catching.into_iter().chain([a, b, c]) {
        node.handle.shutdown().await.unwrap();
    }
    (idle, busy, rates)
}

/// Two nodes that wrote 5,000 records each while apart: bytes of sync
/// messages and time until equal.
async fn reconcile(base: &[Record]) -> (f64, f64) {
    let dirs: Vec<TempDir> = (0..2).map(|i| TempDir::new(&format!("rec{i}"))).collect();
    let stores: Vec<Arc<Store>> = dirs.iter().map(|d| open(&d.0)).collect();
    stores[0].put_batch(base).unwrap();
    stores[1].put_batch(base).unwrap();
    stores[0].put_batch(&records(11, "left", 5_000)).unwrap();
    stores[1].put_batch(&records(12, "right", 5_000)).unwrap();
    let a = start(stores[0].clone(), sync_config(80), vec![]).await;
    let t = Instant::now();
    let b = start(stores[1].clone(), sync_config(81), vec![a.listening[0]]).await;
    let want = base.len() as u64 + 10_000;
    wait(
        || stores[0].len().unwrap() == want && stores[1].len().unwrap() == want,
        Duration::from_secs(300),
    )
    .await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let sa = a.handle.stats().await.unwrap();
    let sb = b.handle.stats().await.unwrap();
    let bytes =
        sa.recon_bytes_sent + sa.record_bytes_sent + sb.recon_bytes_sent + sb.record_bytes_sent;
    a.handle.shutdown().await.unwrap();
    b.handle.shutdown().await.unwrap();
    (bytes as f64, ms)
}

fn main() {
    let quick = quick();
    let n = if quick { 20_000 } else { 1_000_000 };
    let mut rows = Vec::new();
    let mut criterion = Criterion::default().configure_from_args();
    let all = records(1, "bulk", n);

    let sample = &all[..all.len().min(4096)];
    let mut g = criterion.benchmark_group("sync/verify-batch");
    g.throughput(Throughput::Elements(sample.len() as u64));
    g.sample_size(10);
    g.bench_function("strata", |b| b.iter(|| verify_rate(sample)));
    g.finish();
    let verify = verify_rate(&all[..all.len().min(100_000)]);
    rows.push(Row {
        group: "sync/verify-batch".into(),
        unit: "records/s",
        value: verify,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rate = runtime.block_on(catchup(&all));
    rows.push(Row {
        group: format!("sync/catchup-rate/n={n}"),
        unit: "records/s",
        value: rate,
    });
    rows.push(Row {
        group: format!("sync/catchup-vs-verify/n={n}"),
        unit: "ratio",
        value: rate / verify,
    });
    let verify_all = verify_rate_all_cores(&all[..all.len().min(100_000)]);
    rows.push(Row {
        group: "sync/verify-batch-all-cores".into(),
        unit: "records/s",
        value: verify_all,
    });
    rows.push(Row {
        group: format!("sync/catchup-vs-verify-all-cores/n={n}"),
        unit: "ratio",
        value: rate / verify_all,
    });

    let bulk = &all[..if quick { 20_000 } else { 200_000 }];
    let samples = if quick { 100 } else { 300 };
    let calm = runtime.block_on(propagation(bulk, samples, false));
    let busy = runtime.block_on(propagation(bulk, samples, true));
    rows.push(Row {
        group: "sync/propagation-p99/idle".into(),
        unit: "ms",
        value: calm,
    });
    rows.push(Row {
        group: "sync/propagation-p99/catch-up".into(),
        unit: "ms",
        value: busy,
    });
    rows.push(Row {
        group: "sync/propagation-p99-ratio".into(),
        unit: "ratio",
        value: busy / calm,
    });

    let (idle, busy, rates) = runtime.block_on(shares(&all, samples));
    let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let fastest = rates.iter().copied().fold(0.0, f64::max);
    rows.push(Row {
        group: "sync/shares/propagation-p99/idle".into(),
        unit: "ms",
        value: idle,
    });
    rows.push(Row {
        group: "sync/shares/propagation-p99/three-catching-up".into(),
        unit: "ms",
        value: busy,
    });
    rows.push(Row {
        group: "sync/shares/propagation-p99-ratio".into(),
        unit: "ratio",
        value: busy / idle,
    });
    rows.push(Row {
        group: format!("sync/shares/catchup-rate-slowest/n={n}"),
        unit: "records/s",
        value: slowest,
    });
    rows.push(Row {
        group: format!("sync/shares/catchup-rate-fastest/n={n}"),
        unit: "records/s",
        value: fastest,
    });
    rows.push(Row {
        group: "sync/shares/catchup-rate-spread".into(),
        unit: "ratio",
        value: fastest / slowest,
    });

    let base = &all[..if quick { 10_000 } else { 100_000 }];
    let (bytes, ms) = runtime.block_on(reconcile(base));
    rows.push(Row {
        group: "sync/reconcile-d10k-bytes".into(),
        unit: "bytes",
        value: bytes,
    });
    rows.push(Row {
        group: "sync/reconcile-d10k-time".into(),
        unit: "ms",
        value: ms,
    });

    criterion.final_summary();
    for row in &rows {
        println!("{}: {:.3} {}", row.group, row.value, row.unit);
    }
    if let Some(dir) = std::env::var_os("STRATA_BENCH_EXTRA") {
        std::fs::create_dir_all(&dir).unwrap();
        let rows: Vec<String> = rows
            .iter()
            .map(|row| {
                // Rates, and the catch-up rate over the verification rate, are better higher.
                let better = if row.unit.ends_with("/s") || row.group.contains("catchup-vs-verify")
                {
                    "higher"
                } else {
                    "lower"
                };
                format!(
                    "{{\"group\": \"{}\", \"unit\": \"{}\", \"value\": {}, \"better\": \"{better}\"}}",
                    row.group, row.unit, row.value
                )
            })
            .collect();
        let path = Path::new(&dir).join("sync_catchup.json");
        std::fs::write(path, format!("[\n  {}\n]\n", rows.join(",\n  "))).unwrap();
    }
}
