//! Against a live monerod on loopback, in both directions at once: our node
//! dials monerod and monerod answers its handshake and timed syncs, and
//! monerod, told to use our node as its exclusive peer, dials us,
//! handshakes and sends us its own timed sync.
//!
//! Needs Debian's `monerod` (package `monero`), which `cargo xtask test`
//! installs. Without it the test fails, unless `STRATA_SKIP_MONEROD=1`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use strata_io::Clock;
use strata_node::driver::{self, Running};
use strata_node::wire::CoreSyncData;
use strata_node::{Direction, Event, Network, State};
use strata_testkit::{Monerod, TESTNET_GENESIS};

use crate::{settings, within};

fn genesis() -> CoreSyncData {
    let mut top_id = [0; 32];
    top_id.copy_from_slice(&hex::decode(TESTNET_GENESIS).unwrap());
    CoreSyncData {
        cumulative_difficulty: 1,
        cumulative_difficulty_top64: 0,
        current_height: 1,
        pruning_seed: None,
        top_id,
        top_version: 1,
    }
}

async fn monero_node(
    listen: SocketAddr,
    exclusive: Vec<SocketAddr>,
    timed_sync: Duration,
) -> Running<CoreSyncData> {
    let mut s = settings(Vec::new(), None);
    s.node = strata_node::Config::new(Network::MONERO_TESTNET);
    // Tests stay on loopback: never the testnet's public seeds.
    s.node.fixed_seeds.clear();
    s.node.dns_seeds.clear();
    s.node.listen_port = 0;
    s.node.exclusive = exclusive;
    s.node.timed_sync_interval = timed_sync;
    s.node.idle_timeout = Duration::from_secs(600);
    s.listen = vec![listen];
    driver::start(s, genesis(), Clock::real()).await.unwrap()
}

/// Waits for `count` payloads from a peer (the handshake's, then one per
/// timed sync), failing if the peer goes first.
async fn payloads(node: &mut Running<CoreSyncData>, count: usize) {
    let mut seen = 0;
    while seen < count {
        match node.events.recv().await.unwrap() {
            Event::Payload(_, data) => {
                assert_eq!(data.top_id, genesis().top_id);
                seen += 1;
            }
            Event::PeerGone(_) => panic!("monerod dropped us"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monerod_in_both_directions() {
    within(400, async {
        // The node monerod will dial, on its own loopback address so that
        // monerod's one-connection-per-address rule does not mix it up with
        // the node that dials monerod from 127.0.0.1. Our own timed syncs
        // rarely, so the payloads it counts are monerod's requests.
        let listen_ip = Ipv4Addr::new(127, 0, 0, 2);
        let mut dialed = monero_node(
            SocketAddr::from((listen_ip, 0)),
            Vec::new(),
            Duration::from_secs(600),
        )
        .await;
        let Some(monerod) = Monerod::start(Some(dialed.listening[0])) else {
            return;
        };
        // The node that dials monerod times-syncs every few seconds: the
        // payloads it counts are monerod's answers.
        let mut dialer = monero_node(
            "127.0.0.1:0".parse().unwrap(),
            vec![monerod.addr],
            Duration::from_secs(3),
        )
        .await;

        // Both directions at once: monerod dials us, handshakes and sends
        // us a timed sync (monerod's interval is 60 s); we dial monerod and
        // it answers our handshake and two timed syncs.
        tokio::join!(payloads(&mut dialed, 2), payloads(&mut dialer, 3));

        let inbound = dialed.handle.peers().await.unwrap();
        assert!(inbound.iter().any(|p| {
            p.info.direction == Direction::Inbound
                && p.info.state == State::Ready
                && p.info.node_data.as_ref().map(|d| d.network_id)
                    == Some(Network::MONERO_TESTNET.id)
        }));
        let peers = dialer.handle.peers().await.unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].info.state, State::Ready);
        assert!(peers[0].info.rtt.is_some());
        dialer.handle.shutdown().await.unwrap();
        dialed.handle.shutdown().await.unwrap();
    })
    .await;
}
