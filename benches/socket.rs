//! Framed sockets over loopback TCP against raw tokio TCP, in one run.
//!
//! `socket/throughput-64KiB`: 16 MiB in 64 KiB frames through one
//! connection, strata's framed plaintext (`strata`) against `tokio-tcp`
//! writing and reading the same bytes with `write_all` / `read_exact`.
//! `socket/throughput-64KiB-tls`: the same through framed TLS 1.3.
//! `socket/frames-256B`: 4,096 frames of 256 bytes through one connection.
//! `socket/setup`: one TCP connection set up (`tokio-tcp`) against one set
//! up with strata's TLS handshake on top (`strata`).
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_possible_truncation)]

use bytes::{Buf, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_io::Clock;
use strata_socket::{Class, Codec, Config, Handle, Outgoing, SharedLimits, framed};
use strata_tls::{MaybeTls, NodeKey, Policy, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const STRATA: &str = "strata";
const TOKIO: &str = "tokio-tcp";

/// A u32 length, then the body.
struct LenCodec;

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Codec for LenCodec {
    type Frame = Bytes;
    type Error = Never;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Never> {
        let Some(len) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        // Nothing reserved: the reader grows the buffer as bytes arrive.
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a, b) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    (a.unwrap(), b.unwrap().0)
}

/// Two connected streams with TLS between them.
async fn tls_pair() -> (MaybeTls<TcpStream>, MaybeTls<TcpStream>) {
    let (a, b) = pair().await;
    let (server_key, client_key) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let (server, client) = (
        Tls::new(&server_key, None).unwrap(),
        Tls::new(&client_key, None).unwrap(),
    );
    let (dialed, accepted) = tokio::join!(
        client.connect_with(a, Policy::Required, Some(server_key.public())),
        server.accept_with(b, Policy::Required, Some(strata_tls::TLS_RECORD)),
    );
    (dialed.unwrap().0, accepted.unwrap().0)
}

/// A framed sender and a receiving task that reports each `batch` frames.
async fn framed_pair(batch: usize, tls: bool) -> (Handle, mpsc::Receiver<usize>) {
    let (a, b) = if tls {
        tls_pair().await
    } else {
        let (a, b) = pair().await;
        (MaybeTls::Plain(a), MaybeTls::Plain(b))
    };
    let config = Config::default();
    let (_, writer, handle) = framed(
        a,
        LenCodec,
        &config,
        Clock::real(),
        &SharedLimits::default(),
    );
    let (mut reader, _, peer) = framed(
        b,
        LenCodec,
        &config,
        Clock::real(),
        &SharedLimits::default(),
    );
    peer.handshake_complete();
    handle.handshake_complete();
    tokio::spawn(writer.run());
    let (done_tx, done_rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut bytes = 0;
        let mut frames = 0;
        while let Ok(Some(frame)) = reader.next().await {
            bytes += frame.len();
            frames += 1;
            if frames == batch {
                done_tx.send(bytes).await.unwrap();
                (bytes, frames) = (0, 0);
            }
        }
    });
    (handle, done_rx)
}

fn throughput(c: &mut Criterion) {
    const FRAME: usize = 64 * 1024;
    const FRAMES: usize = 256;
    let rt = Runtime::new().unwrap();
    let body = Bytes::from(vec![7u8; FRAME - 4]);
    let head = Bytes::copy_from_slice(&((FRAME - 4) as u32).to_le_bytes());
    let (mut raw_tx, mut raw_rx) = rt.block_on(pair());
    let raw_frame = vec![7u8; FRAME];

    for (group, tls) in [
        ("socket/throughput-64KiB", false),
        ("socket/throughput-64KiB-tls", true),
    ] {
        let (handle, mut done) = rt.block_on(framed_pair(FRAMES, tls));
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Bytes((FRAME * FRAMES) as u64));
        g.bench_function(STRATA, |b| {
            b.iter(|| {
                rt.block_on(async {
                    for _ in 0..FRAMES {
                        handle
                            .send(Class::Bulk, Outgoing::new(head.clone(), body.clone()))
                            .await
                            .unwrap();
                    }
                    assert_eq!(done.recv().await.unwrap(), FRAMES * (FRAME - 4));
                });
            });
        });
        g.bench_function(TOKIO, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let sending = async {
                        for _ in 0..FRAMES {
                            raw_tx.write_all(&raw_frame).await.unwrap();
                        }
                    };
                    let receiving = async {
                        let mut buf = vec![0u8; FRAME];
                        for _ in 0..FRAMES {
                            raw_rx.read_exact(&mut buf).await.unwrap();
                        }
                    };
                    tokio::join!(sending, receiving);
                });
            });
        });
        g.finish();
    }
}

fn setup(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("socket/setup");
    g.bench_function(STRATA, |b| b.iter(|| rt.block_on(tls_pair())));
    g.bench_function(TOKIO, |b| b.iter(|| rt.block_on(pair())));
    g.finish();
}

fn small_frames(c: &mut Criterion) {
    const FRAMES: usize = 4096;
    let rt = Runtime::new().unwrap();
    let (handle, mut done) = rt.block_on(framed_pair(FRAMES, false));
    let body = Bytes::from(vec![3u8; 252]);
    let head = Bytes::copy_from_slice(&252u32.to_le_bytes());
    let mut g = c.benchmark_group("socket/frames-256B");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function(STRATA, |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..FRAMES {
                    handle
                        .send(Class::Relay, Outgoing::new(head.clone(), body.clone()))
                        .await
                        .unwrap();
                }
                assert_eq!(done.recv().await.unwrap(), FRAMES * 252);
            });
        });
    });
    g.finish();
}

criterion_group!(benches, throughput, small_frames, setup);
criterion_main!(benches);
