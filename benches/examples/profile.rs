//! One workload of the portable-storage benches in a loop, for profilers
//! (see `docs/benchmarks.md`): `profile <workload> <iterations> [monerod]`.
//!
//! Workloads: `encode-strata`, `encode-serde`, `encode-ee` (epee-encoding),
//! `encode-bs` (monero-epee-bin-serde), `decode-strata`, `decode-serde`,
//! `decode-me` (monero-epee), `decode-ee`, and `none` (the setup alone), on
//! the 250-peer handshake, or monerod's with `monerod`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use strata_benches::baselines::{bin_serde, epee_encoding as ee, monero_epee as me};
use strata_benches::messages as m;
use strata_portable_storage::{decode, encode, from_slice, to_vec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("encode-strata");
    let n: usize = args.get(2).map_or(1000, |s| s.parse().unwrap());
    let message = if args.get(3).is_some_and(|a| a == "monerod") {
        from_slice(&strata_benches::monerod_handshake_response()).unwrap()
    } else {
        strata_benches::synthetic_handshake(250)
    };
    let body = to_vec(&message).unwrap();
    assert_eq!(encode(&message).unwrap(), body);
    assert_eq!(decode::<m::HandshakeResponse>(&body).unwrap(), message);
    eprintln!("body {} bytes", body.len());
    let a = bin_serde::HandshakeResponse::from(&message);
    let b = ee::HandshakeResponse::from(&message);
    for _ in 0..n {
        match what {
            "encode-strata" => drop(black_box(encode(black_box(&message)).unwrap())),
            "encode-serde" => drop(black_box(to_vec(black_box(&message)).unwrap())),
            "encode-ee" => drop(black_box(epee_encoding::to_bytes(black_box(&b)).unwrap())),
            "encode-bs" => drop(black_box(
                monero_epee_bin_serde::to_bytes(black_box(&a)).unwrap(),
            )),
            "decode-strata" => drop(black_box(
                decode::<m::HandshakeResponse>(black_box(&body)).unwrap(),
            )),
            "decode-serde" => drop(black_box(
                from_slice::<m::HandshakeResponse>(black_box(&body)).unwrap(),
            )),
            "decode-me" => drop(black_box(me::decode_handshake(black_box(&body)).unwrap())),
            "decode-ee" => drop(black_box(
                epee_encoding::from_bytes::<ee::HandshakeResponse>(black_box(&body)).unwrap(),
            )),
            "none" => {}
            _ => panic!("unknown workload"),
        }
    }
}
