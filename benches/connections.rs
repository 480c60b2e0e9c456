//! Memory per idle connection: the growth of this process's resident memory
//! while a connection manager holds 2,000 idle connections, divided by
//! 2,000, in plaintext and in TLS. The connecting side runs in a child
//! process (this same binary), so only the serving side is counted.
//!
//! Rows go to the directory named by `STRATA_BENCH_EXTRA` (set by
//! `cargo xtask bench`), as `{"group", "unit", "value"}`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_conn::{Config, Event, Manager};
use strata_io::Clock;
use strata_socket::{Codec, SharedLimits};
use strata_tls::{NodeKey, Policy, PublicKey, Tls};
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
    let rows: Vec<String> = [false, true]
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
        let config = Config {
            max_inbound: CONNECTIONS,
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
