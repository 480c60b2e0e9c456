//! RIBLT workloads in a loop, for profilers (see `docs/benchmarks.md`):
//! `riblt_profile <workload> <size> <iterations>`.
//!
//! - `decode d`: decoding the shortest sketch prefix that decodes a
//!   difference of `d` elements, half on each side (`riblt/decode`);
//! - `sketch n`: `insert_all` of `n` elements into 1,400 symbols;
//! - `stream n`: an encoder of `n` elements producing 1,400 symbols.
//!
//! Prints the rate; the setup is the same with 0 iterations, to subtract.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use strata_sync::riblt::{Decoder, Encoder, Key, Sketch};

fn elements(seed: u64, n: usize) -> Vec<[u8; 40]> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            let mut e = [0u8; 40];
            for c in e.chunks_mut(8) {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                c.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
            }
            e
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("decode", String::as_str);
    let d: usize = args.get(2).map_or(100_000, |s| s.parse().unwrap());
    let n: usize = args.get(3).map_or(3, |s| s.parse().unwrap());
    let key = Key([9; 32]);
    match what {
        "decode" => {
            // Half the difference on each side, as in the bench.
            let remote = elements(1, d.div_ceil(2));
            let local = elements(3, d / 2);
            let len = 2 * d + 64;
            let (mut a, mut b) = (Sketch::new(key, len), Sketch::new(key, len));
            for e in &remote {
                a.insert(e);
            }
            for e in &local {
                b.insert(e);
            }
            let mut sketch = &a - &b;
            let mut dec = Decoder::new(key);
            for s in sketch.symbols() {
                dec.receive(s).unwrap();
                if dec.is_decoded() {
                    break;
                }
            }
            sketch.truncate(dec.symbols_received());
            assert!(sketch.decode().unwrap().is_decoded());
            let t = Instant::now();
            for _ in 0..n {
                black_box(sketch.decode().unwrap());
            }
            eprintln!("{:.0} diffs/s", (d * n) as f64 / t.elapsed().as_secs_f64());
        }
        "sketch" => {
            let set = elements(2, d);
            let t = Instant::now();
            for _ in 0..n {
                let mut sketch = Sketch::new(key, 1400);
                sketch.insert_all(&set);
                black_box(sketch);
            }
            eprintln!(
                "{:.1} MB/s",
                (40 * d * n) as f64 / t.elapsed().as_secs_f64() / 1e6
            );
        }
        "stream" => {
            let set = elements(2, d);
            let t = Instant::now();
            for _ in 0..n {
                let mut encoder = Encoder::new(key);
                encoder.extend(&set);
                black_box(encoder.produce(1400));
            }
            eprintln!(
                "{:.1} MB/s",
                (40 * d * n) as f64 / t.elapsed().as_secs_f64() / 1e6
            );
        }
        _ => panic!("unknown workload"),
    }
}
