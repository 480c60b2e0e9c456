//! Rateless IBLT reconciliation of two sets of 1,000,000 40-byte digests
//! that differ in `d` elements (half on each side), for d = 1 to 100,000.
//!
//! - `riblt/symbols-per-diff/d=…` (symbols/diff, an extra row): coded symbols
//!   streamed until the decoder is done, divided by `d`, averaged over trials
//!   under fresh keys. The first trial streams the 1,000,000-element sketches
//!   of both sides; the others stream the symbols of the differences alone,
//!   which are the same symbols (shared elements cancel exactly; the first
//!   trial checks that the counts agree).
//! - `riblt/decode/d=…` (criterion) and `riblt/decode-rate/d=…` (diffs/s, an
//!   extra row): decoding the subtracted sketch prefix of the length needed,
//!   checked to decode to the true difference before timing.
//! - `riblt/encode-sketch-1M/m=…` (criterion): inserting 1,000,000 elements
//!   into a sketch of `m` symbols (hashing included) with `insert_all`; with
//!   `m = 1` it is the hashing alone (one Blake2b call and one update per
//!   element), with `m = 1400` about 13.5 updates per element more.
//! - `riblt/encode-stream-1M/m=…` (criterion): an encoder taking 1,000,000
//!   elements and producing its first `m` symbols.
//! - `riblt/encode-sketch-rate/m=1400` and `riblt/encode-stream-rate/m=1400`
//!   (MB/s of 40-byte elements, extra rows): the same, as throughput, to
//!   set against the ~120 MB/s per core of the RIBLT paper.
//!
//! Every group has strata's measurement only. Extra rows go to the directory
//! named by `STRATA_BENCH_EXTRA` (set by `cargo xtask bench`) as
//! `{"group", "unit", "value", "spread"}`, the spread being the interquartile
//! range of the rate over the timed runs. With `cargo xtask bench --quick` (criterion's
//! `--measurement-time 1`), `--quick` or `--test`, fewer trials run.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use strata_sync::riblt::{Decoder, Encoder, KEY_LEN, Key, Sketch};

const STRATA: &str = "strata";

type Element = [u8; 40];

/// Elements on each side.
const SET: usize = 1_000_000;
/// The differences measured.
const DIFFERENCES: [usize; 6] = [1, 10, 100, 1_000, 10_000, 100_000];
/// Sketch length for the encoding benchmarks: about what 1,000
/// differences need.
const ENCODE_LEN: usize = 1_400;

/// A deterministic stream of pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes<const L: usize>(&mut self) -> [u8; L] {
        let mut out = [0u8; L];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
        out
    }

    fn key(&mut self) -> Key {
        Key(self.bytes::<KEY_LEN>())
    }

    fn elements(&mut self, count: usize) -> Vec<Element> {
        (0..count).map(|_| self.bytes()).collect()
    }
}

/// Whether to run the short version: `cargo xtask bench --quick` passes
/// `--measurement-time 1`.
fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|arg| arg == "--quick" || arg == "--test")
        || args.windows(2).any(|pair| {
            pair[0] == "--measurement-time" && pair[1].parse().is_ok_and(|t: f64| t <= 1.0)
        })
}

/// Symbols needed to decode, streaming the symbols of `remote` into a
/// decoder holding an encoder of `local`.
fn symbols_needed(key: Key, remote: &[Element], local: &[Element]) -> usize {
    let mut sender = Encoder::new(key);
    sender.extend(remote);
    let mut mine = Encoder::new(key);
    mine.extend(local);
    let mut decoder = Decoder::with_encoder(mine);
    while !decoder.is_decoded() {
        decoder.receive(&sender.next_symbol()).unwrap();
    }
    assert_eq!(decoder.remote_only().len(), remote.len());
    assert_eq!(decoder.local_only().len(), local.len());
    decoder.symbols_received()
}

fn same_set(got: &[Element], want: &[Element]) -> bool {
    let got: HashSet<&Element> = got.iter().collect();
    got.len() == want.len() && want.iter().all(|e| got.contains(e))
}

struct Row {
    group: String,
    unit: &'static str,
    value: f64,
    /// The interquartile range of the value, when it was timed more than once.
    spread: Option<(f64, f64)>,
}

/// Times `run` at least `min` times and for at least `budget`, returning the
/// 25th, 50th and 75th percentiles of the times in seconds.
fn time(min: usize, budget: Duration, mut run: impl FnMut()) -> [f64; 3] {
    let mut times = Vec::new();
    let timing = Instant::now();
    while times.len() < min || (timing.elapsed() < budget && times.len() < 1000) {
        let started = Instant::now();
        run();
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let last = times.len() - 1;
    [
        times[last / 4],
        times[last / 2],
        times[(3 * last).div_ceil(4)],
    ]
}

/// A rate of `amount` per run from the percentiles of [`time`]: the median
/// and the range of the interquartile times.
fn rate(amount: f64, [fast, median, slow]: [f64; 3]) -> (f64, (f64, f64)) {
    (amount / median, (amount / slow, amount / fast))
}

fn main() {
    let quick = quick();
    let mut criterion = Criterion::default().configure_from_args();
    let mut rows = Vec::new();

    let mut rng = Rng(0x5eed);
    let key = rng.key();
    // Shared by both sides; each side then drops the same `remote.len()`
    // elements and adds its own, so both hold about SET elements.
    let shared = rng.elements(SET);
    let max = *DIFFERENCES.iter().max().unwrap();
    let remote_pool = rng.elements(max.div_ceil(2));
    let local_pool = rng.elements(max / 2);
    let prefix = |d: usize| 2 * d + 64;

    let started = Instant::now();
    let mut base = Sketch::new(key, prefix(max));
    base.insert_all(&shared);
    println!(
        "riblt: sketch of {SET} elements, {} symbols, in {:.2?}",
        base.len(),
        started.elapsed()
    );

    for d in DIFFERENCES {
        let remote = &remote_pool[..d.div_ceil(2)];
        let local = &local_pool[..d / 2];
        let side = |extra: &[Element]| {
            let mut sketch = base.clone();
            sketch.truncate(prefix(d));
            for element in &shared[..remote.len()] {
                sketch.remove(element);
            }
            for element in extra {
                sketch.insert(element);
            }
            sketch
        };
        let (a, b) = (side(remote), side(local));

        // The first trial: the full sets, streamed symbol by symbol.
        let mut decoder = Decoder::with_sketch(b.clone());
        while !decoder.is_decoded() {
            let next = decoder.symbols_received();
            decoder.receive(&a.symbols()[next]).unwrap();
        }
        let needed = decoder.symbols_received();
        assert!(same_set(decoder.remote_only(), remote));
        assert!(same_set(decoder.local_only(), local));
        assert_eq!(symbols_needed(key, remote, local), needed);

        // More trials under fresh keys, on the differences alone.
        let budget = if quick { 200_000 } else { 2_000_000 };
        let trials = (budget / d).clamp(2, if quick { 200 } else { 1_000 });
        let mut total = needed;
        for _ in 1..trials {
            let remote = rng.elements(d.div_ceil(2));
            let local = rng.elements(d / 2);
            total += symbols_needed(rng.key(), &remote, &local);
        }
        let per_diff = total as f64 / (trials * d) as f64;
        println!("riblt/symbols-per-diff/d={d}: {per_diff:.3} ({trials} trials)");
        rows.push(Row {
            group: format!("riblt/symbols-per-diff/d={d}"),
            unit: "symbols/diff",
            value: per_diff,
            spread: None,
        });

        // Decoding the prefix needed, once checked, then timed.
        let mut difference = &a - &b;
        difference.truncate(needed);
        let decoded = difference.decode().unwrap();
        assert!(decoded.is_decoded());
        assert!(same_set(decoded.remote_only(), remote));
        assert!(same_set(decoded.local_only(), local));

        let times = time(5, Duration::from_millis(300), || {
            black_box(difference.decode().unwrap());
        });
        let (rate, spread) = rate(d as f64, times);
        println!("riblt/decode-rate/d={d}: {rate:.0} diffs/s");
        rows.push(Row {
            group: format!("riblt/decode-rate/d={d}"),
            unit: "diffs/s",
            value: rate,
            spread: Some(spread),
        });

        let mut g = criterion.benchmark_group("riblt/decode");
        g.throughput(Throughput::Elements(d as u64));
        if d >= 10_000 {
            g.sample_size(10);
        }
        g.bench_with_input(
            BenchmarkId::new(STRATA, format!("d={d}")),
            &difference,
            |bench, difference| {
                bench.iter(|| black_box(difference.decode().unwrap()));
            },
        );
        g.finish();
    }

    let mut one_by_one = Sketch::new(key, ENCODE_LEN);
    shared.iter().for_each(|element| one_by_one.insert(element));
    let encode_sketch = |len: usize| {
        let mut sketch = Sketch::new(key, len);
        sketch.insert_all(&shared);
        sketch
    };
    assert!(encode_sketch(ENCODE_LEN) == one_by_one);
    let mut g = criterion.benchmark_group("riblt/encode-sketch-1M");
    g.throughput(Throughput::Elements(SET as u64));
    g.sample_size(10);
    for len in [1, ENCODE_LEN] {
        g.bench_function(BenchmarkId::new(STRATA, format!("m={len}")), |bench| {
            bench.iter(|| black_box(encode_sketch(len)));
        });
    }
    g.finish();
    let megabytes = (SET * size_of::<Element>()) as f64 / 1e6;
    let runs = if quick { 3 } else { 10 };
    let (value, spread) = rate(
        megabytes,
        time(runs, Duration::ZERO, || {
            black_box(encode_sketch(ENCODE_LEN));
        }),
    );
    println!("riblt/encode-sketch-rate/m={ENCODE_LEN}: {value:.1} MB/s");
    rows.push(Row {
        group: format!("riblt/encode-sketch-rate/m={ENCODE_LEN}"),
        unit: "MB/s",
        value,
        spread: Some(spread),
    });

    let mut g = criterion.benchmark_group("riblt/encode-stream-1M");
    g.throughput(Throughput::Elements(SET as u64));
    g.sample_size(10);
    g.bench_with_input(
        BenchmarkId::new(STRATA, format!("m={ENCODE_LEN}")),
        &shared,
        |bench, shared| {
            bench.iter(|| {
                let mut encoder = Encoder::new(key);
                encoder.extend(shared);
                black_box(encoder.produce(ENCODE_LEN))
            });
        },
    );
    g.finish();
    let (value, spread) = rate(
        megabytes,
        time(runs, Duration::ZERO, || {
            let mut encoder = Encoder::new(key);
            encoder.extend(&shared);
            black_box(encoder.produce(ENCODE_LEN));
        }),
    );
    println!("riblt/encode-stream-rate/m={ENCODE_LEN}: {value:.1} MB/s");
    rows.push(Row {
        group: format!("riblt/encode-stream-rate/m={ENCODE_LEN}"),
        unit: "MB/s",
        value,
        spread: Some(spread),
    });

    criterion.final_summary();

    if let Some(dir) = std::env::var_os("STRATA_BENCH_EXTRA") {
        std::fs::create_dir_all(&dir).unwrap();
        let rows: Vec<String> = rows
            .iter()
            .map(|row| {
                let spread = row
                    .spread
                    .map(|(lo, hi)| format!(", \"spread\": [{lo}, {hi}]"))
                    .unwrap_or_default();
                format!(
                    "{{\"group\": \"{}\", \"unit\": \"{}\", \"value\": {}{spread}}}",
                    row.group, row.unit, row.value
                )
            })
            .collect();
        let path = std::path::Path::new(&dir).join("riblt.json");
        std::fs::write(path, format!("[\n  {}\n]\n", rows.join(",\n  "))).unwrap();
    }
}
