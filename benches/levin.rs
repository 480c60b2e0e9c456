//! strata's Levin framing: headers, frames out of a read buffer, fragments.
//!
//! There is no baseline here: every group has strata's measurement only,
//! except `decode/levin-body-1MiB`, which compares strata on a 1 MiB body
//! (`strata`) with strata on a 64-byte body (`strata-64B`). Before timing,
//! every workload is checked to decode to what was encoded.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use strata_levin::{
    BucketDecoder, HEADER_LEN, Header, Limits, MessageDecoder, command, fragment, limits, noise,
};

const STRATA: &str = "strata";

/// Read buffers are rebuilt outside the timing, this many per batch.
const BATCH: BatchSize = BatchSize::NumIterations(16);

/// The header of a whole frame.
fn header_bytes(frame: &[u8]) -> &[u8; HEADER_LEN] {
    frame.first_chunk().unwrap()
}

/// Every frame `decoder` cuts off `buf`, until it wants more bytes.
fn drain(decoder: &mut BucketDecoder, buf: &mut BytesMut) -> Vec<(Header, Bytes)> {
    let mut out = Vec::new();
    while let Some(bucket) = decoder.decode(buf).unwrap() {
        out.push((bucket.header, bucket.body));
    }
    out
}

fn headers(c: &mut Criterion) {
    let frames = strata_benches::monerod_frames();
    let raw: Vec<[u8; HEADER_LEN]> = frames.iter().map(|(_, f)| *header_bytes(f)).collect();
    let decoded: Vec<Header> = raw.iter().map(|h| Header::decode(h).unwrap()).collect();
    for ((name, frame), header) in frames.iter().zip(&decoded) {
        assert_eq!(
            &header.encode(),
            header_bytes(frame),
            "{name}: header round trip"
        );
        assert_eq!(
            header.body_len,
            (frame.len() - HEADER_LEN) as u64,
            "{name}: body length"
        );
    }
    let bytes = (raw.len() * HEADER_LEN) as u64;

    let mut g = c.benchmark_group("decode/levin-headers");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(STRATA, |b| {
        b.iter(|| {
            for h in black_box(&raw) {
                black_box(Header::decode(h).unwrap());
            }
        });
    });
    g.finish();

    let mut g = c.benchmark_group("encode/levin-headers");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(STRATA, |b| {
        b.iter(|| {
            for h in black_box(&decoded) {
                black_box(h.encode());
            }
        });
    });
    g.finish();
}

/// Every captured frame back to back in one read buffer.
fn monerod_stream(c: &mut Criterion) {
    let frames = strata_benches::monerod_frames();
    let stream: Vec<u8> = frames.iter().flat_map(|(_, f)| f.iter().copied()).collect();
    let decoder = || {
        let mut d = BucketDecoder::new(Limits::monerod());
        d.handshake_complete();
        d
    };

    let mut buf = BytesMut::from(&stream[..]);
    let got = drain(&mut decoder(), &mut buf);
    assert!(buf.is_empty(), "the whole stream is consumed");
    assert_eq!(got.len(), frames.len());
    for ((name, frame), (header, body)) in frames.iter().zip(&got) {
        assert_eq!(&header.encode(), header_bytes(frame), "{name}");
        assert_eq!(&body[..], &frame[HEADER_LEN..], "{name}");
    }

    let mut g = c.benchmark_group("decode/levin-monerod-stream");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function(STRATA, |b| {
        b.iter_batched_ref(
            || (decoder(), BytesMut::from(&stream[..])),
            |(d, buf)| drain(d, buf),
            BATCH,
        );
    });
    g.finish();
}

/// A notification sent as fragments the size of noise, after a noise frame.
fn fragments(c: &mut Criterion) {
    const LEN: usize = 48 * 1024;
    let body: Vec<u8> = (0..=250u8).cycle().take(LEN).collect();
    let cut = fragment(command::NEW_TRANSACTIONS, &body, limits::NOISE_SIZE).unwrap();
    assert!(cut.len() > 2, "the body is cut into several fragments");
    let mut stream = noise(limits::NOISE_SIZE).unwrap().to_vec();
    for frame in &cut {
        stream.extend_from_slice(frame);
    }
    let decoder = || {
        let mut d = MessageDecoder::new(Limits::monerod());
        d.handshake_complete();
        d
    };

    let mut buf = BytesMut::from(&stream[..]);
    let message = decoder().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "the whole stream is consumed");
    assert_eq!(
        message.header,
        Header::notification(command::NEW_TRANSACTIONS, LEN as u64)
    );
    assert_eq!(&message.body[..], &body[..]);

    let mut g = c.benchmark_group("decode/levin-fragments-48KiB");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function(STRATA, |b| {
        b.iter_batched_ref(
            || (decoder(), BytesMut::from(&stream[..])),
            |(d, buf)| d.decode(buf).unwrap().unwrap(),
            BATCH,
        );
    });
    g.finish();

    let mut g = c.benchmark_group("encode/levin-fragments-48KiB");
    g.throughput(Throughput::Bytes((cut.len() * limits::NOISE_SIZE) as u64));
    g.bench_function(STRATA, |b| {
        b.iter(|| {
            fragment(
                command::NEW_TRANSACTIONS,
                black_box(&body),
                limits::NOISE_SIZE,
            )
            .unwrap()
        });
    });
    g.finish();
}

/// One frame with a body of `len` bytes.
fn frame_of(len: usize) -> Vec<u8> {
    let mut frame = Header::notification(command::NEW_TRANSACTIONS, len as u64)
        .encode()
        .to_vec();
    frame.extend((0..=252u8).cycle().take(len));
    frame
}

/// Header parse and body split for 64 B, 4 KiB and 1 MiB bodies. Splitting
/// a body off the read buffer does not copy it, so the time should not
/// depend on the body's size: `decode/levin-body-1MiB` also times a 64-byte
/// frame (`strata-64B`) as its reference. Every frame sits in a read buffer
/// as long as the 1 MiB one (followed by the start of another frame), so
/// every setup copies as much and leaves the caches alike.
fn body_sizes(c: &mut Criterion) {
    let large = frame_of(1 << 20);
    let decoder = || {
        let mut d = BucketDecoder::new(Limits::monerod());
        d.handshake_complete();
        d
    };
    let buffer_for = |frame: &[u8]| {
        let mut buffer = frame.to_vec();
        buffer.extend_from_slice(&large[..large.len() - frame.len()]);
        buffer
    };
    let cases = [
        ("64B", frame_of(64)),
        ("4KiB", frame_of(4 << 10)),
        ("1MiB", large.clone()),
    ];
    let buffers: Vec<Vec<u8>> = cases.iter().map(|(_, frame)| buffer_for(frame)).collect();
    for ((_, frame), buffer) in cases.iter().zip(&buffers) {
        let mut buf = BytesMut::from(&buffer[..]);
        let bucket = decoder().decode(&mut buf).unwrap().unwrap();
        assert_eq!(&bucket.body[..], &frame[HEADER_LEN..]);
        assert_eq!(buf.len(), buffer.len() - frame.len());
    }

    let time = |g: &mut criterion::BenchmarkGroup<'_, _>, id: &str, buffer: &[u8]| {
        g.bench_function(id, |b| {
            b.iter_batched_ref(
                || (decoder(), BytesMut::from(buffer)),
                |(d, buf)| d.decode(buf).unwrap().unwrap(),
                // Each right after its setup: batches of megabyte buffers
                // would time cache misses more than the decoder.
                BatchSize::PerIteration,
            );
        });
    };
    for ((size, _), buffer) in cases.iter().zip(&buffers) {
        let mut g = c.benchmark_group(format!("decode/levin-body-{size}"));
        time(&mut g, STRATA, buffer);
        if *size == "1MiB" {
            time(&mut g, "strata-64B", &buffers[0]);
        }
        g.finish();
    }
}

/// Header parse and body split of one real frame, monerod's 435-byte
/// handshake response, through the public path a connection takes
/// (`MessageDecoder::decode` on its read buffer). `header` times the
/// header's decode alone, the floor of the split. The read buffer has had
/// frames split off before, as a connection's has after its first frame
/// (its storage is then shared, so a split allocates nothing), and is in
/// the cache, as bytes just read are: batches are small.
fn one_frame(c: &mut Criterion) {
    let frame = strata_benches::monerod_frame("testnet/handshake_response");
    assert_eq!(frame.len(), 435, "the frame the row names");
    let decoder = || {
        let mut d = MessageDecoder::new(Limits::monerod());
        d.handshake_complete();
        d
    };
    let mut buf = BytesMut::from(&frame[..]);
    let bucket = decoder().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    assert_eq!(&bucket.body[..], &frame[HEADER_LEN..]);

    let mut g = c.benchmark_group("decode/levin-frame-435B");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function(STRATA, |b| {
        b.iter_batched_ref(
            || {
                let mut buf = BytesMut::from(&frame[..]);
                drop(buf.split_to(0));
                (decoder(), buf)
            },
            |(d, buf)| d.decode(buf).unwrap().unwrap(),
            BATCH,
        );
    });
    let raw = *header_bytes(&frame);
    g.bench_function("header", |b| {
        b.iter(|| Header::decode(black_box(&raw)).unwrap());
    });
    g.finish();
}

criterion_group!(
    benches,
    headers,
    monerod_stream,
    fragments,
    body_sizes,
    one_frame
);
criterion_main!(benches);
