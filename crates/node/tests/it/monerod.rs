//! Against a live monerod on loopback, in both directions: our node dials
//! monerod and stays connected across monerod's timed syncs, and monerod,
//! told to use our node as its exclusive peer, dials us.
//!
//! Needs Debian's `monerod` (package `monero`), which `cargo xtask test`
//! installs. Without it the test fails, unless `STRATA_SKIP_MONEROD=1`.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use strata_io::Clock;
use strata_node::driver::{self, Running};
use strata_node::wire::CoreSyncData;
use strata_node::{Direction, Event, Network, State, Verdict};

use crate::{settings, until, within};

const TESTNET_GENESIS: &str = "48ca7cd3c8de5b6a4d53d2861fbdaedca141553559f9be9520068053cda8430b";

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

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Monerod {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Monerod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A testnet monerod whose only peer is `exclusive`; `None` when monerod is
/// missing and skipping was asked for.
fn monerod(exclusive: SocketAddr) -> Option<Monerod> {
    if Command::new("monerod").arg("--version").output().is_err() {
        if std::env::var("STRATA_SKIP_MONEROD").as_deref() == Ok("1") {
            println!("monerod not found: skipped because STRATA_SKIP_MONEROD=1");
            return None;
        }
        panic!(
            "monerod not found. Install it with `apt-get install monero` (or run \
             `cargo xtask test`, which does), or set STRATA_SKIP_MONEROD=1 to skip"
        );
    }
    let dir = std::env::temp_dir().join(format!("strata-node-monerod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (p2p, rpc) = (
        free_port(Ipv4Addr::LOCALHOST),
        free_port(Ipv4Addr::LOCALHOST),
    );
    let mut child = Command::new("monerod")
        .args([
            "--testnet",
            "--non-interactive",
            "--log-level",
            "1",
            "--no-zmq",
            "--no-igd",
        ])
        .args(["--disable-dns-checkpoints", "--check-updates", "disabled"])
        .args(["--p2p-bind-ip", "127.0.0.1", "--rpc-bind-ip", "127.0.0.1"])
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--p2p-bind-port",
            &p2p.to_string(),
            "--rpc-bind-port",
            &rpc.to_string(),
        ])
        .args(["--add-exclusive-node", &exclusive.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("Starting p2p net loop") {
                let _ = tx.send(());
            }
        }
    });
    let monerod = Monerod {
        child,
        dir,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, p2p)),
    };
    rx.recv_timeout(Duration::from_secs(60))
        .expect("monerod did not start its p2p loop");
    Some(monerod)
}

async fn monero_node(listen: SocketAddr, exclusive: Vec<SocketAddr>) -> Running<CoreSyncData> {
    let mut s = settings(Vec::new(), None);
    s.node = strata_node::Config::new(Network::MONERO_TESTNET);
    s.node.listen_port = 0;
    s.node.exclusive = exclusive;
    // Our own timed syncs rarely, so the payloads counted are monerod's.
    s.node.timed_sync_interval = Duration::from_secs(600);
    s.node.idle_timeout = Duration::from_secs(600);
    s.listen = vec![listen];
    let handler = Box::new(|_, _: &strata_node::MessageId, _: &bytes::Bytes| Verdict::Drop);
    driver::start(s, genesis(), handler, Clock::real())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monerod_in_both_directions() {
    within(300, async {
        // The node monerod will dial, on its own loopback address so that
        // monerod's one-connection-per-address rule does not mix it up with
        // the node that dials monerod from 127.0.0.1.
        let listen_ip = Ipv4Addr::new(127, 0, 0, 2);
        let dialed = monero_node(
            SocketAddr::from((listen_ip, free_port(listen_ip))),
            Vec::new(),
        )
        .await;
        let Some(monerod) = monerod(dialed.listening[0]) else {
            return;
        };

        // monerod dials us and completes the handshake.
        until(120, "monerod to dial us", || async {
            let peers = dialed.handle.peers().await.unwrap();
            peers.iter().any(|p| {
                p.info.direction == Direction::Inbound
                    && p.info.state == State::Ready
                    && p.info.node_data.as_ref().map(|d| d.network_id)
                        == Some(Network::MONERO_TESTNET.id)
            })
        })
        .await;

        // We dial monerod and stay through two of its timed syncs.
        let mut dialer = monero_node("127.0.0.1:0".parse().unwrap(), vec![monerod.addr]).await;
        let mut payloads = 0;
        while payloads < 3 {
            match dialer.events.recv().await.unwrap() {
                Event::Payload(_, data) => {
                    assert_eq!(data.top_id, genesis().top_id);
                    payloads += 1; // the handshake's, then one per timed sync
                }
                Event::PeerGone(_) => panic!("monerod dropped us"),
                _ => {}
            }
        }
        let peers = dialer.handle.peers().await.unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].info.state, State::Ready);
        assert!(peers[0].info.rtt.is_some());
        dialer.handle.shutdown().await.unwrap();
        dialed.handle.shutdown().await.unwrap();
    })
    .await;
}
