//! strata's portable-storage codec against the baselines, decode and encode.
//!
//! Each group compares one workload: `strata` is strata's measurement (its
//! `Encode`/`Decode` derives: `encode`, `decode`), `strata-serde` the same
//! through serde's derives (`to_vec`, `from_slice`), every other function a
//! baseline measured in the same run. Before timing, every crate's result is
//! checked against strata's.
//!
//! What each side times, the same for every crate:
//! - decode: a whole body (a borrowed slice) to the crate's message structs,
//!   dropped afterwards; blobs borrow from the input where the crate can;
//! - encode: the crate's message structs (built beforehand, borrowed) to a
//!   freshly allocated `Vec<u8>` holding the whole body, dropped afterwards;
//! - encode-reused: the same into a buffer kept from one iteration to the
//!   next (cleared first), for the crates that can write into one: the cost
//!   of writing without the allocation.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_benches::baselines::{bin_serde, epee_encoding as ee, monero_epee as me};
use strata_benches::messages as m;
use strata_portable_storage::{
    decode, decode_bytes, encode, encode_into, from_bytes, from_slice, to_vec,
};

const STRATA: &str = "strata";
const STRATA_SERDE: &str = "strata-serde";
const BIN_SERDE: &str = "monero-epee-bin-serde";
const EPEE_ENCODING: &str = "epee-encoding";
const MONERO_EPEE: &str = "monero-epee";

/// Peers in the synthetic handshake.
const PEERS: u32 = 250;
const MIB: usize = 1 << 20;
const KIB: usize = 1 << 10;

/// Decodes `body` with every crate, checks they all agree with strata and
/// returns strata's result.
fn check_handshake_decoders(what: &str, body: &[u8]) -> m::HandshakeResponse {
    let strata: m::HandshakeResponse =
        decode(body).unwrap_or_else(|e| panic!("{what}: strata cannot decode: {e}"));
    let serde: m::HandshakeResponse =
        from_slice(body).unwrap_or_else(|e| panic!("{what}: strata-serde cannot decode: {e}"));
    assert_eq!(serde, strata, "{what}: {STRATA_SERDE}");
    let a: bin_serde::HandshakeResponse = monero_epee_bin_serde::from_bytes(body)
        .unwrap_or_else(|e| panic!("{what}: {BIN_SERDE} cannot decode: {e}"));
    assert_eq!(m::HandshakeResponse::from(a), strata, "{what}: {BIN_SERDE}");
    let b: ee::HandshakeResponse = epee_encoding::from_bytes(body)
        .unwrap_or_else(|e| panic!("{what}: {EPEE_ENCODING} cannot decode: {e:?}"));
    assert_eq!(
        m::HandshakeResponse::from(b),
        strata,
        "{what}: {EPEE_ENCODING}"
    );
    let c = me::decode_handshake(body)
        .unwrap_or_else(|e| panic!("{what}: {MONERO_EPEE} cannot decode: {e:?}"));
    assert_eq!(c, strata, "{what}: {MONERO_EPEE}");
    strata
}

/// Checks that a baseline encodes `message` byte for byte as strata does.
fn check_encoding(what: &str, who: &str, encoded: &[u8], strata: &[u8]) {
    assert!(
        encoded == strata,
        "{what}: {who} encodes other bytes than strata"
    );
}

fn decode_handshake_group(c: &mut Criterion, group: &str, body: &[u8]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(STRATA, |bench| {
        bench.iter(|| decode::<m::HandshakeResponse>(black_box(body)).unwrap());
    });
    g.bench_function(STRATA_SERDE, |bench| {
        bench.iter(|| from_slice::<m::HandshakeResponse>(black_box(body)).unwrap());
    });
    g.bench_function(BIN_SERDE, |bench| {
        bench.iter(|| {
            monero_epee_bin_serde::from_bytes::<bin_serde::HandshakeResponse, _>(black_box(body))
                .unwrap()
        });
    });
    g.bench_function(EPEE_ENCODING, |bench| {
        bench.iter(|| epee_encoding::from_bytes::<ee::HandshakeResponse>(black_box(body)).unwrap());
    });
    g.bench_function(MONERO_EPEE, |bench| {
        bench.iter(|| me::decode_handshake(black_box(body)).unwrap());
    });
    g.finish();
}

fn encode_handshake_group(c: &mut Criterion, name: &str, message: &m::HandshakeResponse) {
    let group = &format!("encode/{name}");
    let strata = encode(message).unwrap();
    check_encoding(group, STRATA_SERDE, &to_vec(message).unwrap(), &strata);
    let a = bin_serde::HandshakeResponse::from(message);
    let b = ee::HandshakeResponse::from(message);
    check_encoding(
        group,
        BIN_SERDE,
        &monero_epee_bin_serde::to_bytes(&a).unwrap(),
        &strata,
    );
    check_encoding(
        group,
        EPEE_ENCODING,
        &epee_encoding::to_bytes(&b).unwrap(),
        &strata,
    );

    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(strata.len() as u64));
    g.bench_function(STRATA, |bench| {
        bench.iter(|| encode(black_box(message)).unwrap())
    });
    g.bench_function(STRATA_SERDE, |bench| {
        bench.iter(|| to_vec(black_box(message)).unwrap())
    });
    g.bench_function(BIN_SERDE, |bench| {
        bench.iter(|| monero_epee_bin_serde::to_bytes(black_box(&a)).unwrap());
    });
    g.bench_function(EPEE_ENCODING, |bench| {
        bench.iter(|| epee_encoding::to_bytes(black_box(&b)).unwrap());
    });
    g.finish();

    // Into a buffer kept between iterations: epee-encoding writes through its
    // public pieces (header, field count, fields), as its `to_bytes` does.
    let mut reused = Vec::new();
    ee::write_body(&b, &mut reused);
    check_encoding(group, EPEE_ENCODING, &reused, &strata);
    let mut g = c.benchmark_group(format!("encode-reused/{name}"));
    g.throughput(Throughput::Bytes(strata.len() as u64));
    g.bench_function(STRATA, |bench| {
        let mut out = Vec::new();
        bench.iter(|| {
            out.clear();
            encode_into(&mut out, black_box(message)).unwrap();
            black_box(out.len())
        });
    });
    g.bench_function(EPEE_ENCODING, |bench| {
        let mut out = Vec::new();
        bench.iter(|| {
            out.clear();
            ee::write_body(black_box(&b), &mut out);
            black_box(out.len())
        });
    });
    g.finish();
}

fn handshake_monerod(c: &mut Criterion) {
    let body = strata_benches::monerod_handshake_response();
    let message = check_handshake_decoders("monerod handshake", &body);
    assert_eq!(
        encode(&message).unwrap(),
        body,
        "strata re-encodes monerod's bytes"
    );
    decode_handshake_group(c, "decode/handshake-monerod", &body);
    encode_handshake_group(c, "handshake-monerod", &message);
}

fn handshake_250_peers(c: &mut Criterion) {
    let message = strata_benches::synthetic_handshake(PEERS);
    let body = encode(&message).unwrap();
    assert_eq!(
        check_handshake_decoders("synthetic handshake", &body),
        message
    );
    decode_handshake_group(c, "decode/handshake-250-peers", &body);
    encode_handshake_group(c, "handshake-250-peers", &message);
}

/// Encodes a blob message and checks every crate decodes it to the same
/// fields, strata's blob as a view of the input.
fn blob_body(len: usize) -> (m::BlobMessage, Bytes) {
    let message = strata_benches::blob_message(len);
    let body = Bytes::from(encode(&message).unwrap());
    assert_eq!(to_vec(&message).unwrap(), &body[..]);
    let strata: m::BlobMessage = decode_bytes(&body).unwrap();
    assert_eq!(strata, message);
    let serde: m::BlobMessage = from_bytes(&body).unwrap();
    assert_eq!(serde, message);
    let range = body.as_ptr_range();
    assert!(
        range.contains(&strata.blob.as_ptr()) && strata.blob.as_ptr_range().end <= range.end,
        "strata's blob is a view of the input"
    );
    let a: bin_serde::BlobMessage = monero_epee_bin_serde::from_bytes(&body[..]).unwrap();
    assert_eq!(m::BlobMessage::from(a), message, "{BIN_SERDE}");
    let b: ee::BlobMessage = epee_encoding::from_bytes(&body).unwrap();
    assert_eq!(m::BlobMessage::from(b), message, "{EPEE_ENCODING}");
    let borrowed: m::BorrowedBlobMessage<'_> = decode(&body).unwrap();
    assert_eq!(borrowed.blob, &message.blob[..]);
    assert_eq!(
        from_slice::<m::BorrowedBlobMessage<'_>>(&body).unwrap(),
        borrowed
    );
    assert_eq!(me::decode_blob(&body).unwrap(), borrowed, "{MONERO_EPEE}");
    (message, body)
}

fn blob(c: &mut Criterion) {
    let (message, body) = blob_body(MIB);
    let (_, small) = blob_body(KIB);

    // Every crate borrows the blob from the input here; `decode/blob-size`
    // measures strata's `Bytes` view.
    let mut g = c.benchmark_group("decode/blob-1MiB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(STRATA, |bench| {
        bench.iter(|| decode::<m::BorrowedBlobMessage<'_>>(black_box(&body)).unwrap());
    });
    g.bench_function(STRATA_SERDE, |bench| {
        bench.iter(|| from_slice::<m::BorrowedBlobMessage<'_>>(black_box(&body)).unwrap());
    });
    g.bench_function(BIN_SERDE, |bench| {
        bench.iter(|| {
            monero_epee_bin_serde::from_bytes::<bin_serde::BlobMessage, _>(black_box(&body[..]))
                .unwrap()
        });
    });
    g.bench_function(EPEE_ENCODING, |bench| {
        bench.iter(|| epee_encoding::from_bytes::<ee::BlobMessage>(black_box(&body)).unwrap());
    });
    g.bench_function(MONERO_EPEE, |bench| {
        bench.iter(|| me::decode_blob(black_box(&body)).unwrap());
    });
    g.finish();

    let a = bin_serde::BlobMessage::from(&message);
    let b = ee::BlobMessage::from(&message);
    let group = "encode/blob-1MiB";
    check_encoding(
        group,
        BIN_SERDE,
        &monero_epee_bin_serde::to_bytes(&a).unwrap(),
        &body,
    );
    check_encoding(
        group,
        EPEE_ENCODING,
        &epee_encoding::to_bytes(&b).unwrap(),
        &body,
    );
    // Encoding is one copy of the blob for every crate; its speed depends on
    // where the source sits, so strata encodes from epee-encoding's buffer.
    // strata sizes the output once; the others grow it as they write.
    let borrowed = m::BorrowedBlobMessage {
        blob: &b.blob,
        height: message.height,
        top_id: message.top_id,
    };
    assert_eq!(encode(&borrowed).unwrap(), &body[..]);
    assert_eq!(to_vec(&borrowed).unwrap(), &body[..]);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(STRATA, |bench| {
        bench.iter(|| encode(black_box(&borrowed)).unwrap())
    });
    g.bench_function(STRATA_SERDE, |bench| {
        bench.iter(|| to_vec(black_box(&borrowed)).unwrap())
    });
    g.bench_function(BIN_SERDE, |bench| {
        bench.iter(|| monero_epee_bin_serde::to_bytes(black_box(&a)).unwrap());
    });
    g.bench_function(EPEE_ENCODING, |bench| {
        bench.iter(|| epee_encoding::to_bytes(black_box(&b)).unwrap());
    });
    g.finish();

    // Decoding time should not depend on the blob's size: `strata` decodes
    // 1 MiB, its baseline 1 KiB, both into a `Bytes` view of the input.
    let mut g = c.benchmark_group("decode/blob-size");
    g.bench_function(STRATA, |bench| {
        bench.iter(|| decode_bytes::<m::BlobMessage>(black_box(&body)).unwrap());
    });
    g.bench_function("strata-1KiB", |bench| {
        bench.iter(|| decode_bytes::<m::BlobMessage>(black_box(&small)).unwrap());
    });
    g.finish();
}

criterion_group!(benches, handshake_monerod, handshake_250_peers, blob);
criterion_main!(benches);
