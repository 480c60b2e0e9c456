//! Memory per idle connection: the growth of this process's resident memory
//! while a connection manager holds 2,000 idle connections, divided by
//! 2,000, in plaintext and in TLS. The connecting side runs in a child
//! process (this same binary), so only the serving side is counted.
//!
//! `conn/ping-p99-handshake-flood`: an established peer's 99th-percentile
//! round trip while 32 loops replay TLS handshakes from one /24 as fast as
//! they can, divided by its 99th percentile before the flood, measured in
//! the same run (1 is no slowdown).
//!
//! Rows go to the directory named by `STRATA_BENCH_EXTRA` (set by
//! `cargo xtask bench`), as `{"group", "unit", "value"}`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use strata_conn::{Config, Event, Manager};
use strata_io::Clock;
use strata_socket::{Class, Codec, Outgoing, SharedLimits};
use strata_tls::{NodeKey, Policy, PublicKey, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;

const CONNECTIONS: usize = 2000;
/// Set in the child: `addr count tls server-key`.
const CLIENT_ENV: &str = "STRATA_BENCH_CLIENT";

/// Frames never complete: the connections stay idle.
struct Idle;

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Codec for Idle {
    type Frame = ();
    type Error = Never;

    fn decode(&mut self, _: &mut BytesMut) -> Result<Option<()>, Never> {
        Ok(None)
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    if let Ok(spec) = std::env::var(CLIENT_ENV) {
        client(&spec);
        return;
    }
    let mut rows: Vec<String> = [false, true]
        .into_iter()
        .map(|tls| {
            let per_connection = measure(tls);
            let group = if tls {
                "socket/idle-memory-tls"
            } else {
                "socket/idle-memory"
            };
            println!(
                "{group}: {per_connection:.0} bytes per connection ({CONNECTIONS} connections)"
            );
            format!(
                "{{\"group\": \"{group}\", \"unit\": \"bytes\", \"value\": {per_connection:.0}}}"
            )
        })
        .collect();
    let (idle, flooded) = ping_under_flood();
    let ratio = flooded.as_secs_f64() / idle.as_secs_f64();
    println!(
        "conn/ping-p99-handshake-flood: {ratio:.2}× ({flooded:?} during the flood, {idle:?} idle)"
    );
    rows.push(format!(
        "{{\"group\": \"conn/ping-p99-handshake-flood\", \"unit\": \"× idle\", \"value\": {ratio:.3}}}"
    ));
    if let Some(dir) = std::env::var_os("STRATA_BENCH_EXTRA") {
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::path::Path::new(&dir).join("connections.json");
        std::fs::write(path, format!("[\n  {}\n]\n", rows.join(",\n  "))).unwrap();
    }
}

fn measure(tls: bool) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let key = NodeKey::generate().unwrap();
        let long = Duration::from_secs(3600);
        // Every connection comes from 127.0.0.1 and never finishes a
        // handshake: lift the subnet rate and the unfinished budget.
        let config = Config {
            max_inbound: CONNECTIONS,
            max_inbound_unfinished: CONNECTIONS,
            subnet_accept_rate: None,
            max_per_ip: CONNECTIONS,
            max_per_subnet: CONNECTIONS,
            inbound_tls: if tls {
                Policy::Required
            } else {
                Policy::Disabled
            },
            events: CONNECTIONS * 2,
            socket: strata_socket::Config {
                handshake_timeout: long,
                idle_timeout: long,
                ..strata_socket::Config::default()
            },
            ..Config::default()
        };
        let server_tls = tls.then(|| Tls::new(&key, None).unwrap());
        let (manager, mut events) = Manager::new(
            config,
            server_tls,
            SharedLimits::default(),
            Clock::real(),
            || Idle,
        );
        let addr = manager
            .listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let connected = Arc::new(AtomicUsize::new(0));
        let all = Arc::new(Notify::new());
        tokio::spawn({
            let (connected, all) = (connected.clone(), all.clone());
            async move {
                // The layer above keeps each connection's handle.
                let mut handles = Vec::new();
                while let Some(event) = events.recv().await {
                    if let Event::Connected(_, handle) = event {
                        handles.push(handle);
                        if connected.fetch_add(1, Ordering::SeqCst) + 1 == CONNECTIONS {
                            all.notify_one();
                        }
                    }
                }
            }
        });
        let before = rss();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(
                CLIENT_ENV,
                format!("{addr} {CONNECTIONS} {tls} {}", key.public()),
            )
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(120), all.notified())
            .await
            .expect("every connection came up");
        let after = rss();
        drop(child.stdin.take());
        child.wait().unwrap();
        manager
            .shutdown(Instant::now() + Duration::from_secs(5))
            .await;
        after.saturating_sub(before) as f64 / CONNECTIONS as f64
    })
}

/// The connecting side: opens the connections and holds them until its
/// standard input closes.
fn client(spec: &str) {
    let mut parts = spec.split(' ');
    let addr: SocketAddr = parts.next().unwrap().parse().unwrap();
    let count: usize = parts.next().unwrap().parse().unwrap();
    let tls = parts.next().unwrap() == "true";
    let key_hex = parts.next().unwrap();
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let server = PublicKey(key);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _held = rt.block_on(async {
        let ours = Tls::new(&NodeKey::generate().unwrap(), None).unwrap();
        let mut held = Vec::with_capacity(count);
        for _ in 0..count {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let policy = if tls {
                Policy::Required
            } else {
                Policy::Disabled
            };
            held.push(
                ours.connect_with(stream, policy, Some(server))
                    .await
                    .unwrap()
                    .0,
            );
        }
        held
    });
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// A u32 length, then the body.
struct LenCodec;

impl Codec for LenCodec {
    type Frame = Bytes;
    type Error = Never;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Never> {
        let Some(len) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > 65_536 {
            return Err(Never);
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

fn len_frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A TLS client's first flight, to replay.
fn client_hello() -> Vec<u8> {
    current_thread().block_on(async {
        let tls = Tls::new(&NodeKey::generate().unwrap(), None).unwrap();
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let connecting = tokio::spawn(async move { tls.connect(client, None).await });
        let mut head = [0u8; 5];
        server.read_exact(&mut head).await.unwrap();
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut record = head.to_vec();
        record.resize(5 + len, 0);
        server.read_exact(&mut record[5..]).await.unwrap();
        connecting.abort();
        record
    })
}

/// An established peer's p99 round trip before and during a flood of
/// replayed TLS handshakes from 127.0.0.0/24, against a manager with the
/// default settings on a thread of its own that echoes every frame.
fn ping_under_flood() -> (Duration, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        current_thread().block_on(async move {
            let tls = Tls::new(&NodeKey::generate().unwrap(), None).unwrap();
            let (manager, mut events) = Manager::new(
                Config::default(),
                Some(tls),
                SharedLimits::default(),
                Clock::real(),
                || LenCodec,
            );
            let addr = manager
                .listen("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            tx.send(addr).unwrap();
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
                                Outgoing::new(len_frame(&body), Bytes::new()),
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
    let addr: SocketAddr = rx.recv().unwrap();
    let hello = Arc::new(client_hello());
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let p99 = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() * 99 / 100]
    };
    let result = current_thread().block_on(async {
        let mut peer = connect_from(Ipv4Addr::new(127, 0, 1, 1), addr)
            .await
            .unwrap();
        peer.set_nodelay(true).unwrap();
        round_trips(&mut peer, 1000).await;
        let idle = p99(round_trips(&mut peer, 5000).await);
        let flood = flood(addr, hello, stop.clone(), attempts.clone());
        // Let it get going first.
        while attempts.load(Ordering::Relaxed) < 5000 {
            std::thread::yield_now();
        }
        let flooded = p99(round_trips(&mut peer, 5000).await);
        (idle, flooded, flood)
    });
    stop.store(true, Ordering::Relaxed);
    let (idle, flooded, flood) = result;
    flood.join().unwrap();
    (idle, flooded)
}

/// Round trips of a small frame to the echoing manager.
async fn round_trips(peer: &mut TcpStream, count: usize) -> Vec<Duration> {
    let ping = len_frame(b"ping");
    let mut reply = vec![0u8; ping.len()];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = Instant::now();
        peer.write_all(&ping).await.unwrap();
        peer.read_exact(&mut reply).await.unwrap();
        out.push(sent.elapsed());
    }
    out
}

/// 32 loops on a thread of their own, each connecting from 127.0.0.0/24,
/// replaying `hello`, waiting for the first byte of an answer or the close,
/// and starting over until `stop`.
fn flood(
    addr: SocketAddr,
    hello: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        current_thread().block_on(async move {
            let tasks: Vec<_> = (0..32usize)
                .map(|i| {
                    let (hello, stop, attempts) = (hello.clone(), stop.clone(), attempts.clone());
                    tokio::spawn(async move {
                        let mut n = i;
                        while !stop.load(Ordering::Relaxed) {
                            n += 32;
                            let last = u8::try_from(2 + n % 250).unwrap();
                            attempts.fetch_add(1, Ordering::Relaxed);
                            let Ok(mut stream) =
                                connect_from(Ipv4Addr::new(127, 0, 0, last), addr).await
                            else {
                                continue;
                            };
                            if stream.write_all(&hello).await.is_ok() {
                                let _ = stream.read(&mut [0u8; 1]).await;
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                let _ = task.await;
            }
        });
    })
}
