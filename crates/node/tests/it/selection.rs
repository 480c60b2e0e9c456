//! The low-latency outbound slots over real TCP on loopback, with far
//! peers made far by a relay that holds every chunk in each direction.

use std::net::SocketAddr;
use std::time::Duration;

use strata_node::DialKind;
use strata_node::driver::PeerSummary;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{TestNode, settings, start, until};

/// One-way delay of a far peer's relay.
const FAR: Duration = Duration::from_millis(250);

/// A relay on `ip` to `to` that holds what it carries for [`FAR`] each
/// way: on loopback, a peer as far as another continent.
async fn far_relay(ip: [u8; 4], to: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::from((ip, 0))).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(to).await else {
                    return;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::join!(held(in_read, out_write), held(out_read, in_write));
            });
        }
    });
    addr
}

/// Copies `from` to `to`, each chunk [`FAR`] after it was read.
async fn held(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if tx
                .send((Instant::now() + FAR, buf[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// A node that only listens, on `ip`.
async fn listener_at(ip: [u8; 4]) -> TestNode {
    let mut s = settings(Vec::new(), None);
    s.node.outbound = 0;
    s.node.feeler_interval = Duration::from_secs(86_400);
    s.listen = vec![SocketAddr::from((ip, 0))];
    start(s).await
}

async fn outbound(node: &TestNode, kind: DialKind) -> Vec<PeerSummary> {
    let peers = node.handle.peers().await.unwrap();
    peers
        .into_iter()
        .filter(|p| p.info.kind == Some(kind) && p.info.state == strata_node::State::Ready)
        .collect()
}

async fn passed_over(node: &TestNode) -> u64 {
    node.handle.counters().await.unwrap().node.fast_passed_over
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_latency_slot_passes_over_far_peers_at_most_twice_and_takes_a_near_one() {
    let near1 = listener_at([127, 0, 0, 11]).await;
    let near2 = listener_at([127, 0, 0, 12]).await;
    let mut far_nodes = Vec::new();
    let mut far = Vec::new();
    for k in 0..5u8 {
        let node = listener_at([127, 0, 0, 21 + k]).await;
        far.push(far_relay([127, 0, 0, 31 + k], node.addr).await);
        far_nodes.push(node);
    }
    let mut s = settings(Vec::new(), None);
    s.node.outbound = 2;
    s.node.fast_slots = 1;
    // No feeler takes a far address out of the draws meanwhile.
    s.node.feeler_interval = Duration::from_secs(86_400);
    let a = start(s).await;

    // Only a near address is known: the low-latency slot, drawn first,
    // takes it (there is no bar yet).
    a.handle.add_peers(vec![near1.addr]).await.unwrap();
    until(30, "the near peer in the low-latency slot", || async {
        outbound(&a, DialKind::Fast).await.len() == 1
    })
    .await;
    // Far addresses arrive: the random slot takes one and measures it.
    a.handle.add_peers(far.clone()).await.unwrap();
    until(30, "a far peer in the random slot", || async {
        outbound(&a, DialKind::Outbound).await.len() == 1
    })
    .await;
    assert_eq!(passed_over(&a).await, 0);
    let random = outbound(&a, DialKind::Outbound).await[0].info.remote;
    assert!(far.contains(&random));

    // The near peer goes: every address left is far, over the typical
    // round trip. Two are dialed and passed over; the third is kept.
    let fast = outbound(&a, DialKind::Fast).await[0].info.id;
    assert!(a.handle.disconnect(fast).await.unwrap());
    until(30, "a far peer kept after two passed over", || async {
        let kept = outbound(&a, DialKind::Fast).await;
        passed_over(&a).await >= 2 && kept.len() == 1 && far.contains(&kept[0].info.remote)
    })
    .await;
    assert_eq!(passed_over(&a).await, 2, "at most two in a row");

    // A near address is known again: the next draw for the slot takes it,
    // passing over at most the one far address not yet tried.
    a.handle.add_peers(vec![near2.addr]).await.unwrap();
    let fast = outbound(&a, DialKind::Fast).await[0].info.id;
    assert!(a.handle.disconnect(fast).await.unwrap());
    until(
        30,
        "the second near peer in the low-latency slot",
        || async {
            let kept = outbound(&a, DialKind::Fast).await;
            kept.len() == 1 && kept[0].info.remote == near2.addr
        },
    )
    .await;
    assert!(passed_over(&a).await <= 3);
    // The random slot never moved.
    assert_eq!(
        outbound(&a, DialKind::Outbound).await[0].info.remote,
        random
    );
}
