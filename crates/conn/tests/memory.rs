//! Memory a peer can make the node hold with declared frame sizes, over
//! real TCP on loopback with the real Levin decoder. A test binary of its
//! own: it measures the whole process (`/proc/self/status`), so its tests
//! run one at a time.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use strata_conn::{Config, Event, Manager};
use strata_io::Clock;
use strata_levin::{Bucket, Header, Limits, MessageDecoder, command, limits};
use strata_socket::{Codec, Handle, SharedLimits};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;

/// One test at a time: each measures the process.
static ALONE: Mutex<()> = Mutex::const_new(());

const MB: usize = 1_000_000;

/// Levin frames of a connection whose handshake is done, as the node's
/// codec is once a handshake has passed.
struct Levin(MessageDecoder);

impl Codec for Levin {
    type Frame = Bucket;
    type Error = strata_levin::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bucket>, Self::Error> {
        self.0.decode(buf)
    }
}

fn levin() -> Levin {
    let mut decoder = MessageDecoder::new(Limits::monerod());
    decoder.handshake_complete();
    Levin(decoder)
}

/// A field of `/proc/self/status`, in bytes.
fn status(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

async fn connect_from(last: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// A manager for `peers` connections from one subnet, and the handles of
/// its connections as they come.
async fn server(
    peers: usize,
    read_budget: usize,
) -> (
    Manager<Levin>,
    SocketAddr,
    Arc<std::sync::Mutex<Vec<Handle>>>,
) {
    let config = Config {
        max_inbound: peers,
        max_inbound_unfinished: peers,
        max_per_subnet: peers,
        subnet_accept_rate: None,
        read_budget,
        ..Config::default()
    };
    let (manager, mut events) =
        Manager::new(config, None, SharedLimits::default(), Clock::real(), levin);
    let addr = manager
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let handles = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn({
        let handles = handles.clone();
        async move {
            while let Some(event) = events.recv().await {
                if let Event::Connected(_, handle) = event {
                    handle.handshake_complete();
                    handles.lock().unwrap().push(handle);
                }
            }
        }
    });
    (manager, addr, handles)
}

/// Bytes read from all connections so far.
fn read_in(handles: &std::sync::Mutex<Vec<Handle>>) -> u64 {
    handles
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.stats().bytes_in())
        .sum()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("gave up waiting for {what}");
}

/// A header declaring the largest block body allowed after the handshake.
fn hundred_megabyte_header() -> [u8; 33] {
    let len = limits::MAX_BODY;
    assert_eq!(len, 100_000_000);
    Header::notification(command::NEW_BLOCK, len).encode()
}

#[tokio::test]
async fn declared_hundred_megabyte_frames_do_not_reserve_memory() {
    let _alone = ALONE.lock().await;
    const PEERS: usize = 20;
    let (_manager, addr, handles) = server(PEERS, strata_socket::READ_BUDGET).await;
    let before = status("VmSize:");
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let mut peer = connect_from(2 + i as u8, addr).await;
        peer.write_all(&hundred_megabyte_header()).await.unwrap();
        peer.write_all(&[0; 1024]).await.unwrap();
        peers.push(peer);
    }
    let sent = (PEERS * (33 + 1024)) as u64;
    until("every header and its first bytes to be read", || {
        read_in(&handles) == sent
    })
    .await;
    let grown = status("VmSize:").saturating_sub(before);
    println!("address space grew by {grown} bytes for {PEERS} declared 100 MB frames");
    // A quarter of what the headers declare (2 GB): room for the
    // allocator's own reservations, far from reserving the frames.
    assert!(
        grown < PEERS * 100 * MB / 4,
        "{PEERS} headers reserved {grown} bytes of address space"
    );
}

#[tokio::test]
async fn many_connections_with_big_declared_frames_stay_within_the_global_budget() {
    let _alone = ALONE.lock().await;
    // 32 peers declare 100 MB blocks and send 20 MB of each: 640 MB if
    // buffered. The budget is 32 MiB past each connection's allowance.
    const PEERS: usize = 32;
    const SENT: usize = 20 * MB;
    let budget = 32 * 1024 * 1024;
    let (manager, addr, handles) = server(PEERS, budget).await;
    let body = Arc::new(vec![0x5a_u8; SENT]);
    let before = status("VmRSS:");
    let done = Arc::new(AtomicUsize::new(0));
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let mut peer = connect_from(2 + i as u8, addr).await;
        let (body, done) = (body.clone(), done.clone());
        peers.push(tokio::spawn(async move {
            peer.write_all(&hundred_megabyte_header()).await.unwrap();
            peer.write_all(&body).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
            peer
        }));
    }
    // With the budget: one peer at a time is read past it and gets all of
    // its 20 MB in, the others pause. Without: every peer gets all in.
    until("the server to buffer what it will", || {
        let finished = done.load(Ordering::SeqCst);
        let waits = manager.stats().read_budget_waits;
        finished == PEERS || (finished >= 1 && waits >= PEERS as u64 - 1)
    })
    .await;
    let stats = manager.stats();
    let grown = status("VmRSS:").saturating_sub(before);
    let buffered = read_in(&handles);
    println!(
        "RSS grew by {grown} bytes; {buffered} bytes read; budget {} of {} in use",
        stats.read_budget_in_use, stats.read_budget_total
    );
    // The budget, one frame let past it, and each connection's allowance
    // and read chunk.
    let bound = budget + SENT + PEERS * (strata_socket::READ_ALLOWANCE + 16 * 1024);
    assert!(
        buffered as usize <= bound,
        "{buffered} bytes buffered, over {bound}"
    );
    assert!(
        stats.read_budget_in_use <= bound,
        "{} bytes counted",
        stats.read_budget_in_use
    );
    assert!(
        grown < 2 * bound,
        "RSS grew by {grown} bytes, over twice {bound}"
    );
    drop(peers);
    tokio::time::timeout(Duration::from_secs(30), async {
        manager.shutdown(std::time::Instant::now()).await
    })
    .await
    .unwrap();
}
