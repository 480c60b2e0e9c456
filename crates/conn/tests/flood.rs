//! An established peer during a handshake flood. A test binary of its own:
//! it measures latency, which other tests running at once would disturb.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use strata_conn::{Config, Event, Manager};
use strata_io::Clock;
use strata_socket::{Class, Codec, Outgoing, SharedLimits};
use strata_tls::{NodeKey, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

struct LenCodec;

#[derive(Debug, thiserror::Error)]
#[error("frame over 64 KiB")]
struct TooLarge;

impl Codec for LenCodec {
    type Frame = Bytes;
    type Error = TooLarge;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, TooLarge> {
        let Some(len) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > 65_536 {
            return Err(TooLarge);
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// The first flight of a TLS client: what a flood replays to make the
/// server do a key exchange and a signature, at no cost to itself.
fn client_hello() -> Vec<u8> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let tls = Tls::new(&NodeKey::generate().unwrap(), None).unwrap();
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            let connecting = tokio::spawn(async move { tls.connect(client, None).await });
            let mut head = [0u8; 5];
            server.read_exact(&mut head).await.unwrap();
            assert_eq!(head[0], strata_tls::TLS_RECORD);
            let len = u16::from_be_bytes([head[3], head[4]]) as usize;
            let mut record = head.to_vec();
            record.resize(5 + len, 0);
            server.read_exact(&mut record[5..]).await.unwrap();
            connecting.abort();
            record
        })
}

/// Runs a manager on a thread of its own, echoing every frame (and taking
/// the first as a finished handshake); returns it and its address.
fn server(config: Config) -> (Manager<LenCodec>, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let tls = Tls::new(&NodeKey::generate().unwrap(), None).unwrap();
            let (manager, mut events) = Manager::new(
                config,
                Some(tls),
                SharedLimits::default(),
                Clock::real(),
                || LenCodec,
            );
            let addr = manager
                .listen("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            tx.send((manager.clone(), addr)).unwrap();
            let mut handles = std::collections::HashMap::new();
            while let Some(event) = events.recv().await {
                match event {
                    Event::Connected(peer, handle) => {
                        handles.insert(peer.id, handle);
                    }
                    Event::Frame(id, body) => {
                        if let Some(handle) = handles.get(&id) {
                            handle.handshake_complete();
                            let _ = handle.try_send(
                                Class::Control,
                                Outgoing::new(frame(&body), Bytes::new()),
                            );
                        }
                    }
                    Event::Closed(id, _) => {
                        handles.remove(&id);
                    }
                }
            }
        });
    });
    rx.recv().unwrap()
}

/// A flood of TLS handshakes from 127.0.0.0/24 on a thread of its own:
/// `loops` at once, each connecting, replaying `hello`, waiting for the
/// first byte of an answer (the server did its work) or the close, and
/// starting over. Counts attempts.
fn flood(to: SocketAddr, hello: Vec<u8>, loops: usize, stop: Arc<AtomicBool>) -> Arc<AtomicU64> {
    let attempts = Arc::new(AtomicU64::new(0));
    let counted = attempts.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let hello = Arc::new(hello);
            let mut tasks = Vec::new();
            for i in 0..loops {
                let (hello, stop, attempts) = (hello.clone(), stop.clone(), counted.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        n += loops;
                        let from = Ipv4Addr::new(127, 0, 0, 2 + (n % 250) as u8);
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let Ok(mut stream) = connect_from(from, to).await else {
                            continue;
                        };
                        if stream.write_all(&hello).await.is_ok() {
                            let mut byte = [0u8; 1];
                            let _ = stream.read(&mut byte).await;
                        }
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
    });
    attempts
}

/// Round trips of a frame between an established peer and the server.
async fn round_trips(stream: &mut TcpStream, count: usize) -> Vec<Duration> {
    let ping = frame(b"ping");
    let mut reply = vec![0u8; ping.len()];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = Instant::now();
        stream.write_all(&ping).await.unwrap();
        stream.read_exact(&mut reply).await.unwrap();
        out.push(sent.elapsed());
    }
    out.sort();
    out
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

/// The server's round trip for an established peer while 32 loops replay
/// TLS handshakes from 127.0.0.0/24 as fast as they can. Without the
/// subnet's accept rate every admitted handshake costs the server a key
/// exchange and a signature, and the peer's median round trip grew from
/// about 0.08 ms to about 5 ms (debug build, two cores); with it the flood
/// is refused before any work is done. The bound is generous: five times
/// the idle median plus a millisecond.
#[test]
fn an_established_peer_is_served_during_a_handshake_flood() {
    let hello = client_hello();
    let (manager, addr) = server(Config::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut peer = connect_from(Ipv4Addr::new(127, 0, 1, 1), addr)
            .await
            .unwrap();
        peer.set_nodelay(true).unwrap();
        round_trips(&mut peer, 50).await;
        let idle = round_trips(&mut peer, 300).await;
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = flood(addr, hello, 32, stop.clone());
        while attempts.load(Ordering::Relaxed) < 2000 {
            tokio::task::yield_now().await;
            std::thread::yield_now();
        }
        let started = attempts.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let during = round_trips(&mut peer, 300).await;
        let rate = (attempts.load(Ordering::Relaxed) - started) as f64 / t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let stats = manager.stats();
        println!(
            "round trip idle: median {:?}, p90 {:?}; during a flood of {rate:.0} handshakes/s: \
             median {:?}, p90 {:?}; {stats:?}",
            median(&idle),
            idle[idle.len() * 9 / 10],
            median(&during),
            during[during.len() * 9 / 10],
        );
        let bound = median(&idle) * 5 + Duration::from_millis(1);
        assert!(
            median(&during) <= bound,
            "the peer's median round trip went from {:?} to {:?} during the flood",
            median(&idle),
            median(&during)
        );
        assert!(
            stats.refused_rate > stats.accepted,
            "the flood was refused by the subnet rate: {stats:?}"
        );
    });
}
